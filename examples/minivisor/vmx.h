/*
 * The VMX architecture the minivisor needs: capability MSRs, control bits,
 * VMCS field encodings, exit reasons, EPT formats — under their Linux names
 * (arch/x86/include/asm/vmx.h, msr-index.h) with values from the Intel SDM
 * Vol. 3C/3D — and one C wrapper per VMX instruction.
 *
 * Self-contained on purpose: a hypervisor for real VT-x hardware, not a
 * client of vmxsim. Section and table numbers are those of the 2023-2024
 * SDM editions (they shift between editions; the titles do not).
 */
#ifndef MINIVISOR_VMX_H
#define MINIVISOR_VMX_H

#include <stdbool.h>
#include <stdint.h>

/* ---- Capability MSRs — SDM Vol. 3D Appendix A -------------------------- */
#define MSR_IA32_VMX_BASIC 0x00000480
#define MSR_IA32_VMX_PINBASED_CTLS 0x00000481
#define MSR_IA32_VMX_PROCBASED_CTLS 0x00000482
#define MSR_IA32_VMX_EXIT_CTLS 0x00000483
#define MSR_IA32_VMX_ENTRY_CTLS 0x00000484
#define MSR_IA32_VMX_MISC 0x00000485
#define MSR_IA32_VMX_CR0_FIXED0 0x00000486
#define MSR_IA32_VMX_CR0_FIXED1 0x00000487
#define MSR_IA32_VMX_CR4_FIXED0 0x00000488
#define MSR_IA32_VMX_CR4_FIXED1 0x00000489
#define MSR_IA32_VMX_PROCBASED_CTLS2 0x0000048b
#define MSR_IA32_VMX_EPT_VPID_CAP 0x0000048c
#define MSR_IA32_VMX_TRUE_PINBASED_CTLS 0x0000048d
#define MSR_IA32_VMX_TRUE_PROCBASED_CTLS 0x0000048e
#define MSR_IA32_VMX_TRUE_EXIT_CTLS 0x0000048f
#define MSR_IA32_VMX_TRUE_ENTRY_CTLS 0x00000490

/* IA32_VMX_BASIC — Appendix A.1 */
#define VMX_BASIC_REVISION_MASK UINT64_C(0x7fffffff)  /* bits 30:0 */
#define VMX_BASIC_VMCS_SIZE_SHIFT 32            /* bits 44:32 */
#define VMX_BASIC_VMCS_SIZE_MASK UINT64_C(0x1fff)
#define VMX_BASIC_32BIT_PHYS_ADDR_ONLY (UINT64_C(1) << 48)
#define VMX_BASIC_MEM_TYPE_SHIFT 50             /* bits 53:50 */
#define VMX_BASIC_MEM_TYPE_MASK UINT64_C(0xf)
#define VMX_BASIC_MEM_TYPE_WB UINT64_C(6)
#define VMX_BASIC_TRUE_CTLS (UINT64_C(1) << 55)

/*
 * IA32_VMX_EPT_VPID_CAP — Appendix A.10. Linux reads it as two dwords:
 * "ept" = bits 31:0, "vpid" = bits 63:32 (so the VPID bits are numbered
 * from bit 32 of the MSR).
 */
#define VMX_EPT_EXECUTE_ONLY_BIT (1u << 0)
#define VMX_EPT_PAGE_WALK_4_BIT (1u << 6)
#define VMX_EPTP_UC_BIT (1u << 8)
#define VMX_EPTP_WB_BIT (1u << 14)
#define VMX_EPT_2MB_PAGE_BIT (1u << 16)
#define VMX_EPT_1GB_PAGE_BIT (1u << 17)
#define VMX_EPT_INVEPT_BIT (1u << 20)
#define VMX_EPT_AD_BIT (1u << 21)
#define VMX_EPT_EXTENT_CONTEXT_BIT (1u << 25)
#define VMX_EPT_EXTENT_GLOBAL_BIT (1u << 26)
#define VMX_VPID_INVVPID_BIT (1u << 0)                /* MSR bit 32 */
#define VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT (1u << 9)  /* MSR bit 41 */
#define VMX_VPID_EXTENT_GLOBAL_CONTEXT_BIT (1u << 10) /* MSR bit 42 */

/* ---- Control bits — SDM Vol. 3C §25.6–25.8 ----------------------------- */
/* Primary processor-based VM-execution controls — Table 25-6 */
#define CPU_BASED_HLT_EXITING (1u << 7)
#define CPU_BASED_CR3_LOAD_EXITING (1u << 15)
#define CPU_BASED_CR3_STORE_EXITING (1u << 16)
#define CPU_BASED_UNCOND_IO_EXITING (1u << 24)
#define CPU_BASED_USE_IO_BITMAPS (1u << 25)
#define CPU_BASED_USE_MSR_BITMAPS (1u << 28)
#define CPU_BASED_ACTIVATE_SECONDARY_CONTROLS (1u << 31)

/* Secondary processor-based VM-execution controls — Table 25-7 */
#define SECONDARY_EXEC_ENABLE_EPT (1u << 1)
#define SECONDARY_EXEC_ENABLE_VPID (1u << 5)
#define SECONDARY_EXEC_UNRESTRICTED_GUEST (1u << 7)

/* Primary VM-exit controls — Table 25-13 */
#define VM_EXIT_HOST_ADDR_SPACE_SIZE (1u << 9)
#define VM_EXIT_SAVE_IA32_PAT (1u << 18)
#define VM_EXIT_LOAD_IA32_PAT (1u << 19)
#define VM_EXIT_SAVE_IA32_EFER (1u << 20)
#define VM_EXIT_LOAD_IA32_EFER (1u << 21)

/* VM-entry controls — Table 25-15 */
#define VM_ENTRY_LOAD_DEBUG_CONTROLS (1u << 2)
#define VM_ENTRY_IA32E_MODE (1u << 9)
#define VM_ENTRY_LOAD_IA32_PAT (1u << 14)
#define VM_ENTRY_LOAD_IA32_EFER (1u << 15)

/* ---- VMCS field encodings — SDM Vol. 3D Appendix B --------------------- */
enum vmcs_field {
    /* 16-bit control (Table B-1) */
    VIRTUAL_PROCESSOR_ID = 0x00000000,
    /* 16-bit guest state (Table B-2) */
    GUEST_ES_SELECTOR = 0x00000800,
    GUEST_CS_SELECTOR = 0x00000802,
    GUEST_SS_SELECTOR = 0x00000804,
    GUEST_DS_SELECTOR = 0x00000806,
    GUEST_FS_SELECTOR = 0x00000808,
    GUEST_GS_SELECTOR = 0x0000080a,
    GUEST_LDTR_SELECTOR = 0x0000080c,
    GUEST_TR_SELECTOR = 0x0000080e,
    /* 16-bit host state (Table B-3) */
    HOST_ES_SELECTOR = 0x00000c00,
    HOST_CS_SELECTOR = 0x00000c02,
    HOST_SS_SELECTOR = 0x00000c04,
    HOST_DS_SELECTOR = 0x00000c06,
    HOST_FS_SELECTOR = 0x00000c08,
    HOST_GS_SELECTOR = 0x00000c0a,
    HOST_TR_SELECTOR = 0x00000c0c,
    /* 64-bit control (Table B-4) */
    IO_BITMAP_A = 0x00002000,
    IO_BITMAP_B = 0x00002002,
    MSR_BITMAP = 0x00002004,
    VM_EXIT_MSR_STORE_ADDR = 0x00002006,
    VM_EXIT_MSR_LOAD_ADDR = 0x00002008,
    VM_ENTRY_MSR_LOAD_ADDR = 0x0000200a,
    TSC_OFFSET = 0x00002010,
    EPT_POINTER = 0x0000201a,
    /* 64-bit read-only data (Table B-5) */
    GUEST_PHYSICAL_ADDRESS = 0x00002400,
    /* 64-bit guest state (Table B-6) */
    VMCS_LINK_POINTER = 0x00002800,
    GUEST_IA32_DEBUGCTL = 0x00002802,
    GUEST_IA32_PAT = 0x00002804,
    GUEST_IA32_EFER = 0x00002806,
    /* 64-bit host state (Table B-7) */
    HOST_IA32_PAT = 0x00002c00,
    HOST_IA32_EFER = 0x00002c02,
    /* 32-bit control (Table B-8) */
    PIN_BASED_VM_EXEC_CONTROL = 0x00004000,
    CPU_BASED_VM_EXEC_CONTROL = 0x00004002,
    EXCEPTION_BITMAP = 0x00004004,
    PAGE_FAULT_ERROR_CODE_MASK = 0x00004006,
    PAGE_FAULT_ERROR_CODE_MATCH = 0x00004008,
    CR3_TARGET_COUNT = 0x0000400a,
    VM_EXIT_CONTROLS = 0x0000400c,
    VM_EXIT_MSR_STORE_COUNT = 0x0000400e,
    VM_EXIT_MSR_LOAD_COUNT = 0x00004010,
    VM_ENTRY_CONTROLS = 0x00004012,
    VM_ENTRY_MSR_LOAD_COUNT = 0x00004014,
    VM_ENTRY_INTR_INFO_FIELD = 0x00004016,
    VM_ENTRY_EXCEPTION_ERROR_CODE = 0x00004018,
    VM_ENTRY_INSTRUCTION_LEN = 0x0000401a,
    SECONDARY_VM_EXEC_CONTROL = 0x0000401e,
    /* 32-bit read-only data (Table B-9) */
    VM_INSTRUCTION_ERROR = 0x00004400,
    VM_EXIT_REASON = 0x00004402,
    VM_EXIT_INTR_INFO = 0x00004404,
    VM_EXIT_INTR_ERROR_CODE = 0x00004406,
    IDT_VECTORING_INFO_FIELD = 0x00004408,
    VM_EXIT_INSTRUCTION_LEN = 0x0000440c,
    /* 32-bit guest state (Table B-10) */
    GUEST_ES_LIMIT = 0x00004800,
    GUEST_CS_LIMIT = 0x00004802,
    GUEST_SS_LIMIT = 0x00004804,
    GUEST_DS_LIMIT = 0x00004806,
    GUEST_FS_LIMIT = 0x00004808,
    GUEST_GS_LIMIT = 0x0000480a,
    GUEST_LDTR_LIMIT = 0x0000480c,
    GUEST_TR_LIMIT = 0x0000480e,
    GUEST_GDTR_LIMIT = 0x00004810,
    GUEST_IDTR_LIMIT = 0x00004812,
    GUEST_ES_AR_BYTES = 0x00004814,
    GUEST_CS_AR_BYTES = 0x00004816,
    GUEST_SS_AR_BYTES = 0x00004818,
    GUEST_DS_AR_BYTES = 0x0000481a,
    GUEST_FS_AR_BYTES = 0x0000481c,
    GUEST_GS_AR_BYTES = 0x0000481e,
    GUEST_LDTR_AR_BYTES = 0x00004820,
    GUEST_TR_AR_BYTES = 0x00004822,
    GUEST_INTERRUPTIBILITY_INFO = 0x00004824,
    GUEST_ACTIVITY_STATE = 0x00004826,
    GUEST_SYSENTER_CS = 0x0000482a,
    /* 32-bit host state (Table B-11) */
    HOST_IA32_SYSENTER_CS = 0x00004c00,
    /* natural-width control (Table B-12) */
    CR0_GUEST_HOST_MASK = 0x00006000,
    CR4_GUEST_HOST_MASK = 0x00006002,
    CR0_READ_SHADOW = 0x00006004,
    CR4_READ_SHADOW = 0x00006006,
    /* natural-width read-only data (Table B-13) */
    EXIT_QUALIFICATION = 0x00006400,
    GUEST_LINEAR_ADDRESS = 0x0000640a,
    /* natural-width guest state (Table B-14) */
    GUEST_CR0 = 0x00006800,
    GUEST_CR3 = 0x00006802,
    GUEST_CR4 = 0x00006804,
    GUEST_ES_BASE = 0x00006806,
    GUEST_CS_BASE = 0x00006808,
    GUEST_SS_BASE = 0x0000680a,
    GUEST_DS_BASE = 0x0000680c,
    GUEST_FS_BASE = 0x0000680e,
    GUEST_GS_BASE = 0x00006810,
    GUEST_LDTR_BASE = 0x00006812,
    GUEST_TR_BASE = 0x00006814,
    GUEST_GDTR_BASE = 0x00006816,
    GUEST_IDTR_BASE = 0x00006818,
    GUEST_DR7 = 0x0000681a,
    GUEST_RSP = 0x0000681c,
    GUEST_RIP = 0x0000681e,
    GUEST_RFLAGS = 0x00006820,
    GUEST_PENDING_DBG_EXCEPTIONS = 0x00006822,
    GUEST_SYSENTER_ESP = 0x00006824,
    GUEST_SYSENTER_EIP = 0x00006826,
    /* natural-width host state (Table B-15) */
    HOST_CR0 = 0x00006c00,
    HOST_CR3 = 0x00006c02,
    HOST_CR4 = 0x00006c04,
    HOST_FS_BASE = 0x00006c06,
    HOST_GS_BASE = 0x00006c08,
    HOST_TR_BASE = 0x00006c0a,
    HOST_GDTR_BASE = 0x00006c0c,
    HOST_IDTR_BASE = 0x00006c0e,
    HOST_IA32_SYSENTER_ESP = 0x00006c10,
    HOST_IA32_SYSENTER_EIP = 0x00006c12,
    HOST_RSP = 0x00006c14,
    HOST_RIP = 0x00006c16,
};

/* ---- Exit reasons — SDM Vol. 3C Appendix C ----------------------------- */
#define EXIT_REASON_EXCEPTION_NMI 0
#define EXIT_REASON_TRIPLE_FAULT 2
#define EXIT_REASON_CPUID 10
#define EXIT_REASON_HLT 12
#define EXIT_REASON_VMCALL 18
#define EXIT_REASON_IO_INSTRUCTION 30
#define EXIT_REASON_INVALID_STATE 33
#define EXIT_REASON_MSR_LOAD_FAIL 34
#define EXIT_REASON_EPT_VIOLATION 48
#define EXIT_REASON_EPT_MISCONFIG 49
#define EXIT_REASON_MAX 77                       /* highest number named in exit.c */
#define VMX_EXIT_REASON_BASIC_MASK 0xffffu       /* bits 15:0: basic exit reason */
#define VMX_EXIT_REASONS_FAILED_VMENTRY (1u << 31)

/* Exit qualification for I/O instructions — SDM Vol. 3C Table 28-5 */
#define IO_QUAL_SIZE_MASK 0x7u     /* 2:0 size - 1: 0 = 1 byte, 1 = 2 bytes, 3 = 4 bytes */
#define IO_QUAL_IN (1u << 3)       /* 3: direction, 1 = IN */
#define IO_QUAL_STRING (1u << 4)   /* 4: INS/OUTS */
#define IO_QUAL_REP (1u << 5)      /* 5: REP prefix */
#define IO_QUAL_IMM (1u << 6)      /* 6: port in an immediate (else DX) */
#define IO_QUAL_PORT_SHIFT 16      /* 31:16: port */

/* Exit qualification for EPT violations — SDM Vol. 3C Table 28-7 */
#define EPT_VIOLATION_ACC_READ (1u << 0)
#define EPT_VIOLATION_ACC_WRITE (1u << 1)
#define EPT_VIOLATION_ACC_INSTR (1u << 2)
#define EPT_VIOLATION_RWX_MASK (7u << 3) /* 5:3: R/W/X allowed by the translation (0: not present) */
#define EPT_VIOLATION_GVA_IS_VALID (1u << 7)
#define EPT_VIOLATION_GVA_TRANSLATED (1u << 8)

/* Interruption information (exit, IDT vectoring) — SDM Vol. 3C §25.9.2 */
#define INTR_INFO_VECTOR_MASK 0xffu
#define INTR_INFO_INTR_TYPE_MASK 0x700u
#define INTR_INFO_DELIVER_CODE_MASK (1u << 11)
#define INTR_INFO_VALID_MASK (1u << 31)

/* Guest interruptibility state — SDM Vol. 3C Table 25-3 */
#define GUEST_INTR_STATE_STI (1u << 0)
#define GUEST_INTR_STATE_MOV_SS (1u << 1)

#define GUEST_ACTIVITY_ACTIVE 0

/* Segment access rights in the VMCS format — SDM Vol. 3C Table 25-2 */
#define VMX_AR_UNUSABLE_MASK (1u << 16)

/* ---- EPT — SDM Vol. 3C §29.3.2, §25.6.11 ------------------------------- */
#define VMX_EPTP_MT_UC UINT64_C(0)
#define VMX_EPTP_MT_WB UINT64_C(6)
#define VMX_EPTP_PWL_4 UINT64_C(0x18)          /* bits 5:3 = walk length - 1 = 3 */
#define VMX_EPT_READABLE_MASK UINT64_C(0x1)
#define VMX_EPT_WRITABLE_MASK UINT64_C(0x2)
#define VMX_EPT_EXECUTABLE_MASK UINT64_C(0x4)
#define VMX_EPT_RWX_MASK UINT64_C(0x7)
#define VMX_EPT_MT_EPTE_SHIFT 3         /* leaf entries: memory type in bits 5:3 */
#define EPT_PAGE_SIZE_BIT (UINT64_C(1) << 7)   /* PDE/PDPTE: maps a page (not a table) */
#define X86_MEMTYPE_WB UINT64_C(6)

#define VMX_EPT_EXTENT_CONTEXT 1
#define VMX_EPT_EXTENT_GLOBAL 2
#define VMX_VPID_EXTENT_ALL_CONTEXT 2

/* ---- VMX instructions ---------------------------------------------------
 * Every VMX instruction reports through RFLAGS (SDM Vol. 3C §31.2):
 * VMsucceed: CF = ZF = 0; VMfailInvalid: CF = 1 (no current VMCS);
 * VMfailValid: ZF = 1, error number in the VM-instruction error field.
 * GNU as (AT&T) operand order: vmread <encoding reg>, <dest r/m64>;
 * vmwrite <source r/m64>, <encoding reg>; invept <m128>, <type reg>.
 */
enum vmx_status {
    VMX_OK = 0,
    VMX_FAIL_INVALID = 1,
    VMX_FAIL_VALID = 2,
};

static inline enum vmx_status vmx_status_of(bool cf, bool zf)
{
    return cf ? VMX_FAIL_INVALID : zf ? VMX_FAIL_VALID : VMX_OK;
}

static inline enum vmx_status vmxon(uint64_t phys)
{
    bool cf, zf;
    __asm__ volatile("vmxon %[pa]" : "=@ccc"(cf), "=@ccz"(zf) : [pa] "m"(phys) : "memory");
    return vmx_status_of(cf, zf);
}

static inline enum vmx_status vmclear(uint64_t phys)
{
    bool cf, zf;
    __asm__ volatile("vmclear %[pa]" : "=@ccc"(cf), "=@ccz"(zf) : [pa] "m"(phys) : "memory");
    return vmx_status_of(cf, zf);
}

static inline enum vmx_status vmptrld(uint64_t phys)
{
    bool cf, zf;
    __asm__ volatile("vmptrld %[pa]" : "=@ccc"(cf), "=@ccz"(zf) : [pa] "m"(phys) : "memory");
    return vmx_status_of(cf, zf);
}

static inline enum vmx_status vmread_checked(uint64_t field, uint64_t *value)
{
    bool cf, zf;
    uint64_t v;
    __asm__ volatile("vmread %[field], %[val]"
                     : [val] "=r"(v), "=@ccc"(cf), "=@ccz"(zf)
                     : [field] "r"(field)
                     : "memory");
    *value = v;
    return vmx_status_of(cf, zf);
}

static inline enum vmx_status vmwrite_checked(uint64_t field, uint64_t value)
{
    bool cf, zf;
    __asm__ volatile("vmwrite %[val], %[field]"
                     : "=@ccc"(cf), "=@ccz"(zf)
                     : [val] "r"(value), [field] "r"(field)
                     : "memory");
    return vmx_status_of(cf, zf);
}

/* INVEPT descriptor — SDM Vol. 2B "INVEPT": bits 63:0 EPTP, 127:64 reserved (0). */
struct invept_desc {
    uint64_t eptp;
    uint64_t reserved;
};

/* INVVPID descriptor — SDM Vol. 2B "INVVPID": 15:0 VPID, 63:16 reserved, 127:64 linear address. */
struct invvpid_desc {
    uint64_t vpid;
    uint64_t gla;
};

static inline enum vmx_status invept(uint64_t type, const struct invept_desc *desc)
{
    bool cf, zf;
    __asm__ volatile("invept %[desc], %[type]"
                     : "=@ccc"(cf), "=@ccz"(zf)
                     : [desc] "m"(*desc), [type] "r"(type)
                     : "memory");
    return vmx_status_of(cf, zf);
}

static inline enum vmx_status invvpid(uint64_t type, const struct invvpid_desc *desc)
{
    bool cf, zf;
    __asm__ volatile("invvpid %[desc], %[type]"
                     : "=@ccc"(cf), "=@ccz"(zf)
                     : [desc] "m"(*desc), [type] "r"(type)
                     : "memory");
    return vmx_status_of(cf, zf);
}
#endif
