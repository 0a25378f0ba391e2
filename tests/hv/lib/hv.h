/*
 * hv: a freestanding C library for hypervisor tests that run on vmxsim in
 * VMX root operation (kvm-unit-tests style). Self-contained: it names the
 * architectural constants it needs itself (SDM Vol. 3C chapters 25-28,
 * Vol. 3D Appendices A-C) and includes no vmxsim header.
 *
 *   serial printf              printf() on COM1
 *   IDT                        256 gates; the handler records the last
 *                              exception and resumes at a recovery point
 *   VMX wrappers               vmxon() ... invvpid(): 0, VMFAIL_INVALID or
 *                              VMFAIL_VALID
 *   struct vmx_test_ctx        one VMCS with a 64-bit guest sharing the
 *                              host's page tables, GDT and IDT; runs a C
 *                              function as the guest and returns on each
 *                              VM exit with the exit information
 *   report()                   "PASS <name>" / "FAIL <name> (<details>)"
 *
 * A test program defines `void hv_test_main(void)`. When it returns, the
 * library prints a summary and writes 0 (all passed) or 1 to port 0xF4.
 */
#ifndef HV_H
#define HV_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BIT(n) ((uint64_t)1 << (n))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PAGE_SIZE 4096ull
#define __aligned(n) __attribute__((aligned(n)))
#define __noinline __attribute__((noinline))

/* ---- Architectural constants (SDM Vol. 3A/3C) -------------------------- */

/* Exception vectors */
enum {
    DE_VECTOR = 0, DB_VECTOR = 1, NMI_VECTOR = 2, BP_VECTOR = 3, OF_VECTOR = 4, BR_VECTOR = 5,
    UD_VECTOR = 6, NM_VECTOR = 7, DF_VECTOR = 8, TS_VECTOR = 10, NP_VECTOR = 11, SS_VECTOR = 12,
    GP_VECTOR = 13, PF_VECTOR = 14, MF_VECTOR = 16, AC_VECTOR = 17, MC_VECTOR = 18, XM_VECTOR = 19,
};

#define X86_CR0_PE BIT(0)
#define X86_CR0_MP BIT(1)
#define X86_CR0_EM BIT(2)
#define X86_CR0_TS BIT(3)
#define X86_CR0_ET BIT(4)
#define X86_CR0_NE BIT(5)
#define X86_CR0_WP BIT(16)
#define X86_CR0_AM BIT(18)
#define X86_CR0_NW BIT(29)
#define X86_CR0_CD BIT(30)
#define X86_CR0_PG BIT(31)

#define X86_CR4_VME BIT(0)
#define X86_CR4_PVI BIT(1)
#define X86_CR4_TSD BIT(2)
#define X86_CR4_DE BIT(3)
#define X86_CR4_PSE BIT(4)
#define X86_CR4_PAE BIT(5)
#define X86_CR4_MCE BIT(6)
#define X86_CR4_PGE BIT(7)
#define X86_CR4_PCE BIT(8)
#define X86_CR4_OSFXSR BIT(9)
#define X86_CR4_OSXMMEXCPT BIT(10)
#define X86_CR4_VMXE BIT(13)
#define X86_CR4_OSXSAVE BIT(18)

#define X86_RFLAGS_CF BIT(0)
#define X86_RFLAGS_FIXED BIT(1)
#define X86_RFLAGS_ZF BIT(6)
#define X86_RFLAGS_IF BIT(9)
#define X86_RFLAGS_DF BIT(10)

/* Page-table entry bits */
#define PTE_P BIT(0)
#define PTE_W BIT(1)
#define PTE_U BIT(2)
#define PTE_PS BIT(7)
#define PTE_ADDR 0x000FFFFFFFFFF000ull

/* Page-fault error code */
#define PFERR_P BIT(0)
#define PFERR_W BIT(1)
#define PFERR_U BIT(2)

/* MSRs */
#define MSR_IA32_TSC 0x10
#define MSR_IA32_FEATURE_CONTROL 0x3A
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_PAT 0x277
#define MSR_IA32_EFER 0xC0000080
#define MSR_STAR 0xC0000081
#define MSR_LSTAR 0xC0000082
#define MSR_CSTAR 0xC0000083
#define MSR_SYSCALL_MASK 0xC0000084
#define MSR_FS_BASE 0xC0000100
#define MSR_GS_BASE 0xC0000101
#define MSR_KERNEL_GS_BASE 0xC0000102
#define MSR_TSC_AUX 0xC0000103

/* VMX capability MSRs — SDM Vol. 3D Appendix A */
#define MSR_IA32_VMX_BASIC 0x480
#define MSR_IA32_VMX_PINBASED_CTLS 0x481
#define MSR_IA32_VMX_PROCBASED_CTLS 0x482
#define MSR_IA32_VMX_EXIT_CTLS 0x483
#define MSR_IA32_VMX_ENTRY_CTLS 0x484
#define MSR_IA32_VMX_MISC 0x485
#define MSR_IA32_VMX_CR0_FIXED0 0x486
#define MSR_IA32_VMX_CR0_FIXED1 0x487
#define MSR_IA32_VMX_CR4_FIXED0 0x488
#define MSR_IA32_VMX_CR4_FIXED1 0x489
#define MSR_IA32_VMX_VMCS_ENUM 0x48A
#define MSR_IA32_VMX_PROCBASED_CTLS2 0x48B
#define MSR_IA32_VMX_EPT_VPID_CAP 0x48C
#define MSR_IA32_VMX_TRUE_PINBASED_CTLS 0x48D
#define MSR_IA32_VMX_TRUE_PROCBASED_CTLS 0x48E
#define MSR_IA32_VMX_TRUE_EXIT_CTLS 0x48F
#define MSR_IA32_VMX_TRUE_ENTRY_CTLS 0x490

#define VMX_BASIC_INOUT BIT(54)
#define VMX_BASIC_TRUE_CTLS BIT(55)

/* Pin-based controls — SDM Vol. 3C Table 25-5 */
#define PIN_EXT_INTR_EXITING BIT(0)
#define PIN_NMI_EXITING BIT(3)
#define PIN_VIRTUAL_NMIS BIT(5)
#define PIN_PREEMPTION_TIMER BIT(6)

/* Primary processor-based controls — SDM Vol. 3C Table 25-6 */
#define CPU_INTR_WINDOW BIT(2)
#define CPU_TSC_OFFSETTING BIT(3)
#define CPU_HLT BIT(7)
#define CPU_INVLPG BIT(9)
#define CPU_MWAIT BIT(10)
#define CPU_RDPMC BIT(11)
#define CPU_RDTSC BIT(12)
#define CPU_CR3_LOAD BIT(15)
#define CPU_CR3_STORE BIT(16)
#define CPU_TERTIARY BIT(17)
#define CPU_CR8_LOAD BIT(19)
#define CPU_CR8_STORE BIT(20)
#define CPU_TPR_SHADOW BIT(21)
#define CPU_NMI_WINDOW BIT(22)
#define CPU_MOV_DR BIT(23)
#define CPU_UNCOND_IO BIT(24)
#define CPU_IO_BITMAPS BIT(25)
#define CPU_MTF BIT(27)
#define CPU_MSR_BITMAPS BIT(28)
#define CPU_MONITOR BIT(29)
#define CPU_PAUSE BIT(30)
#define CPU_SECONDARY BIT(31)

/* Secondary processor-based controls — SDM Vol. 3C Table 25-7 */
#define CPU2_VIRT_APIC_ACCESSES BIT(0)
#define CPU2_EPT BIT(1)
#define CPU2_DESC BIT(2)
#define CPU2_RDTSCP BIT(3)
#define CPU2_VIRT_X2APIC BIT(4)
#define CPU2_VPID BIT(5)
#define CPU2_WBINVD BIT(6)
#define CPU2_UNRESTRICTED BIT(7)
#define CPU2_RDRAND BIT(11)
#define CPU2_INVPCID BIT(12)
#define CPU2_VMFUNC BIT(13)
#define CPU2_RDSEED BIT(16)
#define CPU2_TSC_SCALING BIT(25)

/* VM-exit controls — SDM Vol. 3C Table 25-13 */
#define EXIT_SAVE_DEBUG BIT(2)
#define EXIT_HOST_ADDR_SPACE BIT(9)
#define EXIT_ACK_INTR BIT(15)
#define EXIT_SAVE_PAT BIT(18)
#define EXIT_LOAD_PAT BIT(19)
#define EXIT_SAVE_EFER BIT(20)
#define EXIT_LOAD_EFER BIT(21)

/* VM-entry controls — SDM Vol. 3C Table 25-15 */
#define ENTRY_LOAD_DEBUG BIT(2)
#define ENTRY_IA32E BIT(9)
#define ENTRY_LOAD_PAT BIT(14)
#define ENTRY_LOAD_EFER BIT(15)

/* Basic exit reasons — SDM Vol. 3C Appendix C */
enum {
    EXIT_EXCEPTION_NMI = 0, EXIT_EXTERNAL_INTR = 1, EXIT_TRIPLE_FAULT = 2, EXIT_INIT = 3,
    EXIT_SIPI = 4, EXIT_INTR_WINDOW = 7, EXIT_NMI_WINDOW = 8, EXIT_TASK_SWITCH = 9,
    EXIT_CPUID = 10, EXIT_GETSEC = 11, EXIT_HLT = 12, EXIT_INVD = 13, EXIT_INVLPG = 14,
    EXIT_RDPMC = 15, EXIT_RDTSC = 16, EXIT_RSM = 17, EXIT_VMCALL = 18, EXIT_VMCLEAR = 19,
    EXIT_VMLAUNCH = 20, EXIT_VMPTRLD = 21, EXIT_VMPTRST = 22, EXIT_VMREAD = 23,
    EXIT_VMRESUME = 24, EXIT_VMWRITE = 25, EXIT_VMXOFF = 26, EXIT_VMXON = 27,
    EXIT_CR_ACCESS = 28, EXIT_DR_ACCESS = 29, EXIT_IO = 30, EXIT_MSR_READ = 31,
    EXIT_MSR_WRITE = 32, EXIT_INVALID_STATE = 33, EXIT_MSR_LOAD_FAIL = 34, EXIT_MWAIT = 36,
    EXIT_MTF = 37, EXIT_MONITOR = 39, EXIT_PAUSE = 40, EXIT_MCE_ENTRY = 41,
    EXIT_TPR_BELOW = 43, EXIT_APIC_ACCESS = 44, EXIT_GDTR_IDTR = 46, EXIT_LDTR_TR = 47,
    EXIT_EPT_VIOLATION = 48, EXIT_EPT_MISCONFIG = 49, EXIT_INVEPT = 50, EXIT_RDTSCP = 51,
    EXIT_PREEMPTION_TIMER = 52, EXIT_INVVPID = 53, EXIT_WBINVD = 54, EXIT_XSETBV = 55,
    EXIT_RDRAND = 57, EXIT_INVPCID = 58, EXIT_VMFUNC = 59, EXIT_RDSEED = 61,
};
#define EXIT_REASON_FAILED_ENTRY BIT(31)

/* VM-instruction errors — SDM Vol. 3C §31.4 */
enum {
    VMXERR_VMCALL_ROOT = 1, VMXERR_VMCLEAR_BAD_ADDR = 2, VMXERR_VMCLEAR_VMXON_PTR = 3,
    VMXERR_VMLAUNCH_NONCLEAR = 4, VMXERR_VMRESUME_NONLAUNCHED = 5,
    VMXERR_ENTRY_BAD_CONTROL = 7, VMXERR_ENTRY_BAD_HOST_STATE = 8,
    VMXERR_VMPTRLD_BAD_ADDR = 9, VMXERR_VMPTRLD_VMXON_PTR = 10, VMXERR_VMPTRLD_BAD_REV = 11,
    VMXERR_UNSUPPORTED_FIELD = 12, VMXERR_VMWRITE_RO = 13, VMXERR_VMXON_IN_ROOT = 15,
    VMXERR_ENTRY_MOVSS = 26, VMXERR_INVEPT_INVVPID_OPERAND = 28,
};

/* Interruption information (entry injection, exit, IDT vectoring) — SDM §25.8.3, §25.9.2 */
#define INTR_INFO_VECTOR(x) ((x) & 0xFFu)
#define INTR_INFO_TYPE(x) (((x) >> 8) & 7u)
#define INTR_INFO_ERRCODE BIT(11)
#define INTR_INFO_VALID BIT(31)
enum {
    INTR_TYPE_EXT_INTR = 0, INTR_TYPE_NMI = 2, INTR_TYPE_HW_EXC = 3, INTR_TYPE_SOFT_INTR = 4,
    INTR_TYPE_PRIV_SW_EXC = 5, INTR_TYPE_SOFT_EXC = 6, INTR_TYPE_OTHER = 7,
};
#define INTR_INFO(vector, type, errcode) \
    ((uint32_t)(vector) | (uint32_t)(type) << 8 | ((errcode) ? (uint32_t)INTR_INFO_ERRCODE : 0u) | (uint32_t)INTR_INFO_VALID)

/* VMCS field encodings — SDM Vol. 3D Appendix B */
enum vmcs_field {
    VPID = 0x0000,
    GUEST_ES_SELECTOR = 0x0800, GUEST_CS_SELECTOR = 0x0802, GUEST_SS_SELECTOR = 0x0804,
    GUEST_DS_SELECTOR = 0x0806, GUEST_FS_SELECTOR = 0x0808, GUEST_GS_SELECTOR = 0x080a,
    GUEST_LDTR_SELECTOR = 0x080c, GUEST_TR_SELECTOR = 0x080e,
    HOST_ES_SELECTOR = 0x0c00, HOST_CS_SELECTOR = 0x0c02, HOST_SS_SELECTOR = 0x0c04,
    HOST_DS_SELECTOR = 0x0c06, HOST_FS_SELECTOR = 0x0c08, HOST_GS_SELECTOR = 0x0c0a,
    HOST_TR_SELECTOR = 0x0c0c,
    IO_BITMAP_A = 0x2000, IO_BITMAP_B = 0x2002, MSR_BITMAP = 0x2004,
    VM_EXIT_MSR_STORE_ADDR = 0x2006, VM_EXIT_MSR_LOAD_ADDR = 0x2008, VM_ENTRY_MSR_LOAD_ADDR = 0x200a,
    TSC_OFFSET = 0x2010, VIRTUAL_APIC_PAGE_ADDR = 0x2012, EPT_POINTER = 0x201a, TSC_MULTIPLIER = 0x2032,
    GUEST_PHYSICAL_ADDRESS = 0x2400,
    VMCS_LINK_POINTER = 0x2800, GUEST_IA32_DEBUGCTL = 0x2802, GUEST_IA32_PAT = 0x2804,
    GUEST_IA32_EFER = 0x2806,
    HOST_IA32_PAT = 0x2c00, HOST_IA32_EFER = 0x2c02,
    PIN_BASED_VM_EXEC_CONTROL = 0x4000, CPU_BASED_VM_EXEC_CONTROL = 0x4002, EXCEPTION_BITMAP = 0x4004,
    PAGE_FAULT_ERROR_CODE_MASK = 0x4006, PAGE_FAULT_ERROR_CODE_MATCH = 0x4008, CR3_TARGET_COUNT = 0x400a,
    VM_EXIT_CONTROLS = 0x400c, VM_EXIT_MSR_STORE_COUNT = 0x400e, VM_EXIT_MSR_LOAD_COUNT = 0x4010,
    VM_ENTRY_CONTROLS = 0x4012, VM_ENTRY_MSR_LOAD_COUNT = 0x4014, VM_ENTRY_INTR_INFO_FIELD = 0x4016,
    VM_ENTRY_EXCEPTION_ERROR_CODE = 0x4018, VM_ENTRY_INSTRUCTION_LEN = 0x401a, TPR_THRESHOLD = 0x401c,
    SECONDARY_VM_EXEC_CONTROL = 0x401e,
    VM_INSTRUCTION_ERROR = 0x4400, VM_EXIT_REASON = 0x4402, VM_EXIT_INTR_INFO = 0x4404,
    VM_EXIT_INTR_ERROR_CODE = 0x4406, IDT_VECTORING_INFO_FIELD = 0x4408, IDT_VECTORING_ERROR_CODE = 0x440a,
    VM_EXIT_INSTRUCTION_LEN = 0x440c, VMX_INSTRUCTION_INFO = 0x440e,
    GUEST_ES_LIMIT = 0x4800, GUEST_CS_LIMIT = 0x4802, GUEST_SS_LIMIT = 0x4804, GUEST_DS_LIMIT = 0x4806,
    GUEST_FS_LIMIT = 0x4808, GUEST_GS_LIMIT = 0x480a, GUEST_LDTR_LIMIT = 0x480c, GUEST_TR_LIMIT = 0x480e,
    GUEST_GDTR_LIMIT = 0x4810, GUEST_IDTR_LIMIT = 0x4812,
    GUEST_ES_AR_BYTES = 0x4814, GUEST_CS_AR_BYTES = 0x4816, GUEST_SS_AR_BYTES = 0x4818,
    GUEST_DS_AR_BYTES = 0x481a, GUEST_FS_AR_BYTES = 0x481c, GUEST_GS_AR_BYTES = 0x481e,
    GUEST_LDTR_AR_BYTES = 0x4820, GUEST_TR_AR_BYTES = 0x4822,
    GUEST_INTERRUPTIBILITY_INFO = 0x4824, GUEST_ACTIVITY_STATE = 0x4826, GUEST_SYSENTER_CS = 0x482a,
    HOST_IA32_SYSENTER_CS = 0x4c00,
    CR0_GUEST_HOST_MASK = 0x6000, CR4_GUEST_HOST_MASK = 0x6002, CR0_READ_SHADOW = 0x6004,
    CR4_READ_SHADOW = 0x6006, CR3_TARGET_VALUE0 = 0x6008, CR3_TARGET_VALUE1 = 0x600a,
    CR3_TARGET_VALUE2 = 0x600c, CR3_TARGET_VALUE3 = 0x600e,
    EXIT_QUALIFICATION = 0x6400, IO_RCX = 0x6402, IO_RSI = 0x6404, IO_RDI = 0x6406, IO_RIP = 0x6408,
    GUEST_LINEAR_ADDRESS = 0x640a,
    GUEST_CR0 = 0x6800, GUEST_CR3 = 0x6802, GUEST_CR4 = 0x6804,
    GUEST_ES_BASE = 0x6806, GUEST_CS_BASE = 0x6808, GUEST_SS_BASE = 0x680a, GUEST_DS_BASE = 0x680c,
    GUEST_FS_BASE = 0x680e, GUEST_GS_BASE = 0x6810, GUEST_LDTR_BASE = 0x6812, GUEST_TR_BASE = 0x6814,
    GUEST_GDTR_BASE = 0x6816, GUEST_IDTR_BASE = 0x6818, GUEST_DR7 = 0x681a, GUEST_RSP = 0x681c,
    GUEST_RIP = 0x681e, GUEST_RFLAGS = 0x6820, GUEST_PENDING_DBG_EXCEPTIONS = 0x6822,
    GUEST_SYSENTER_ESP = 0x6824, GUEST_SYSENTER_EIP = 0x6826,
    HOST_CR0 = 0x6c00, HOST_CR3 = 0x6c02, HOST_CR4 = 0x6c04, HOST_FS_BASE = 0x6c06,
    HOST_GS_BASE = 0x6c08, HOST_TR_BASE = 0x6c0a, HOST_GDTR_BASE = 0x6c0c, HOST_IDTR_BASE = 0x6c0e,
    HOST_IA32_SYSENTER_ESP = 0x6c10, HOST_IA32_SYSENTER_EIP = 0x6c12, HOST_RSP = 0x6c14,
    HOST_RIP = 0x6c16,
};

/* Exit-qualification layouts — SDM Vol. 3C Tables 28-3 (CR), 28-4 (MOV DR), 28-5 (I/O) */
#define CRQ(cr, type, gpr) ((uint64_t)(cr) | (uint64_t)(type) << 4 | (uint64_t)(gpr) << 8)
#define CRQ_LMSW(mem, src) ((uint64_t)3 << 4 | ((mem) ? BIT(6) : 0) | (uint64_t)(uint16_t)(src) << 16)
enum { CR_TYPE_MOV_TO = 0, CR_TYPE_MOV_FROM = 1, CR_TYPE_CLTS = 2, CR_TYPE_LMSW = 3 };
#define DRQ(dr, from_dr, gpr) ((uint64_t)(dr) | ((from_dr) ? BIT(4) : 0) | (uint64_t)(gpr) << 8)
#define IOQ(size, in, string, rep, imm, port)                                                    \
    ((uint64_t)((size) - 1) | ((in) ? BIT(3) : 0) | ((string) ? BIT(4) : 0) | ((rep) ? BIT(5) : 0) | \
     ((imm) ? BIT(6) : 0) | (uint64_t)(uint16_t)(port) << 16)

/* SDM register numbers (exit qualifications, instruction information, ctx->regs) */
enum { R_RAX, R_RCX, R_RDX, R_RBX, R_RSP, R_RBP, R_RSI, R_RDI,
       R_R8, R_R9, R_R10, R_R11, R_R12, R_R13, R_R14, R_R15 };

/* VM-exit instruction-information field — SDM Vol. 3C §28.2.5, Tables 28-8 .. 28-14 */
#define II_SCALE(x) ((x) & 3u)
#define II_REG1(x) (((x) >> 3) & 0xFu)
#define II_ASIZE(x) (((x) >> 7) & 7u)
#define II_REGFORM(x) (((x) >> 10) & 1u)
#define II_SEG(x) (((x) >> 15) & 7u)
#define II_INDEX(x) (((x) >> 18) & 0xFu)
#define II_INDEX_INVALID(x) (((x) >> 22) & 1u)
#define II_BASE(x) (((x) >> 23) & 0xFu)
#define II_BASE_INVALID(x) (((x) >> 27) & 1u)
#define II_REG2(x) (((x) >> 28) & 0xFu)
#define II_IDENTITY(x) (((x) >> 28) & 3u)
enum { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS };
enum { ASIZE_16, ASIZE_32, ASIZE_64 };

/* ---- Basic instructions ---------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint64_t rdmsr(uint32_t idx)
{
    uint32_t lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(idx) : "memory");
    return (uint64_t)hi << 32 | lo;
}
static inline void wrmsr(uint32_t idx, uint64_t v)
{
    asm volatile("wrmsr" : : "c"(idx), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return (uint64_t)hi << 32 | lo;
}
#define DEFINE_CR(n)                                                                    \
    static inline uint64_t read_cr##n(void)                                             \
    {                                                                                   \
        uint64_t v;                                                                     \
        asm volatile("mov %%cr" #n ", %0" : "=r"(v) : : "memory");                      \
        return v;                                                                       \
    }                                                                                   \
    static inline void write_cr##n(uint64_t v) { asm volatile("mov %0, %%cr" #n : : "r"(v) : "memory"); }
DEFINE_CR(0)
DEFINE_CR(2)
DEFINE_CR(3)
DEFINE_CR(4)
DEFINE_CR(8)
#undef DEFINE_CR

struct __attribute__((packed)) dtr {
    uint16_t limit;
    uint64_t base;
};
static inline void sgdt(struct dtr *d) { asm volatile("sgdt %0" : "=m"(*d)); }
static inline void sidt(struct dtr *d) { asm volatile("sidt %0" : "=m"(*d)); }
static inline void lidt(const struct dtr *d) { asm volatile("lidt %0" : : "m"(*d)); }
static inline void cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    asm volatile("cpuid" : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3]) : "a"(leaf), "c"(subleaf));
}
static inline uint64_t read_rflags(void)
{
    uint64_t f;
    asm volatile("pushfq; popq %0" : "=r"(f));
    return f;
}

/* ---- Local APIC (xAPIC MMIO at the default base) — SDM Vol. 3A chapter 11 ---- */

#define APIC_DEFAULT_BASE 0xFEE00000ull /* identity-mapped by the boot page tables */
enum {
    APIC_REG_ID = 0x20, APIC_REG_TPR = 0x80, APIC_REG_EOI = 0xB0, APIC_REG_SVR = 0xF0,
    APIC_REG_ISR = 0x100, APIC_REG_IRR = 0x200, APIC_REG_ICR_LO = 0x300, APIC_REG_ICR_HI = 0x310,
    APIC_REG_LVT_TIMER = 0x320, APIC_REG_TIMER_INITIAL = 0x380, APIC_REG_TIMER_CURRENT = 0x390,
    APIC_REG_TIMER_DIVIDE = 0x3E0,
};
#define APIC_SVR_ENABLE BIT(8)
#define APIC_LVT_MASKED BIT(16)
/* ICR low word (§11.6.1): delivery mode, level, destination shorthand */
#define APIC_ICR_FIXED (0u << 8)
#define APIC_ICR_NMI (4u << 8)
#define APIC_ICR_INIT (5u << 8)
#define APIC_ICR_ASSERT (1u << 14)
#define APIC_ICR_SELF (1u << 18)
#define APIC_ICR_ALL_INCL_SELF (2u << 18)
#define APIC_ICR_ALL_EXCL_SELF (3u << 18)

static inline uint32_t apic_read(uint32_t reg) { return *(volatile uint32_t *)(uintptr_t)(APIC_DEFAULT_BASE + reg); }
static inline void apic_write(uint32_t reg, uint32_t v) { *(volatile uint32_t *)(uintptr_t)(APIC_DEFAULT_BASE + reg) = v; }
/* The xAPIC ID (bits 31:24 of the ID register). */
static inline uint8_t apic_id(void) { return (uint8_t)(apic_read(APIC_REG_ID) >> 24); }
/* IRR / ISR bit of a vector (eight 32-bit registers 16 bytes apart). */
static inline bool apic_irr(uint8_t v) { return (apic_read(APIC_REG_IRR + (v / 32u) * 16u) >> (v % 32u)) & 1; }
static inline bool apic_isr(uint8_t v) { return (apic_read(APIC_REG_ISR + (v / 32u) * 16u) >> (v % 32u)) & 1; }
/* An IPI with no shorthand to a physical APIC ID (the valid way to send NMI or INIT to oneself, §11.6.1). */
static inline void apic_ipi_to(uint8_t dest, uint32_t icr_lo)
{
    apic_write(APIC_REG_ICR_HI, (uint32_t)dest << 24);
    apic_write(APIC_REG_ICR_LO, icr_lo);
}

/* ---- Library ---------------------------------------------------------------- */

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
int snprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t n, const char *fmt, va_list ap);
void puts_serial(const char *s);

/* Debug exit: OUT value to port 0xF4 (vmxsim exits with (value << 1) | 1). */
__attribute__((noreturn)) void hv_exit(uint8_t value);

/* Zeroed 4-KiB pages above the image (never freed). */
void *alloc_page(void);
extern uint64_t hv_ram_size;

/*
 * Map one 4-KiB page va → pa with leaf flags (PTE_P|PTE_W...) in the live
 * page tables (shared by host and guests), creating page tables as needed.
 * Meant for addresses outside the boot identity map (>= 512 GiB).
 */
void map_page_4k(uint64_t va, uint64_t pa, uint64_t flags);

/* ---- Exceptions -------------------------------------------------------------- */

struct exc_info {
    int vector;          /* -1: none since exc_clear() */
    uint64_t error_code; /* 0 when the vector pushes none */
    uint64_t cr2;        /* for #PF */
    uint64_t rip;        /* RIP in the frame */
    uint64_t rflags;     /* RFLAGS in the frame */
    uint64_t rsp;        /* RSP in the frame */
    unsigned count;      /* events handled since exc_clear() */
};
extern volatile struct exc_info exc_last;
/* If nonzero, the next exception resumes there (and this is cleared). */
extern volatile uint64_t exc_resume_rip;
/*
 * If true, exceptions (vectors 0-31) without a recovery point are recorded
 * and return to the interrupted RIP (for injected events). Vectors 32-255
 * always record and return.
 */
extern volatile bool exc_return_ok;

void exc_clear(void);
/* Run fn(arg); returns -1 if it completed, else the vector of the exception it took. */
int hv_try(void (*fn)(void *), void *arg);

/*
 * Inline-asm helper: arm a recovery point at local label 1: after the
 * instruction, e.g.  asm volatile(ASM_TRY "ud2\n1:" ::: "memory");
 * exc_last.vector tells whether it faulted (call exc_clear() first).
 */
#define ASM_TRY "movq $1f, exc_resume_rip(%%rip)\n\t"
#define ASM_TRY_END "1:\n\tmovq $0, exc_resume_rip(%%rip)\n\t"

/* One instruction with a recovery point: -1, or the vector it took (idt.c). */
int mov_cr4_try(uint64_t v);
int rdmsr_try(uint32_t idx, uint64_t *val);
int wrmsr_try(uint32_t idx, uint64_t v);

void idt_install(void);
extern uint8_t hv_idt[256 * 16];
void idt_set_gate(uint8_t vector, void *handler);

/* ---- VMX instructions: 0 = VMsucceed, else VMfailInvalid / VMfailValid ---- */

enum { VMSUCCEED = 0, VMFAIL_INVALID = 1, VMFAIL_VALID = 2 };
#define VMX_STATUS(cf, zf) ((cf) ? VMFAIL_INVALID : (zf) ? VMFAIL_VALID : VMSUCCEED)

static inline int vmxon(uint64_t pa)
{
    bool cf, zf;
    asm volatile("vmxon %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(pa) : "memory", "cc");
    return VMX_STATUS(cf, zf);
}
static inline int vmxoff(void)
{
    bool cf, zf;
    asm volatile("vmxoff" : "=@ccc"(cf), "=@ccz"(zf) : : "memory", "cc");
    return VMX_STATUS(cf, zf);
}
static inline int vmclear(uint64_t pa)
{
    bool cf, zf;
    asm volatile("vmclear %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(pa) : "memory", "cc");
    return VMX_STATUS(cf, zf);
}
static inline int vmptrld(uint64_t pa)
{
    bool cf, zf;
    asm volatile("vmptrld %2" : "=@ccc"(cf), "=@ccz"(zf) : "m"(pa) : "memory", "cc");
    return VMX_STATUS(cf, zf);
}
static inline int vmptrst(uint64_t *pa)
{
    bool cf, zf;
    asm volatile("vmptrst %2" : "=@ccc"(cf), "=@ccz"(zf), "=m"(*pa) : : "memory", "cc");
    return VMX_STATUS(cf, zf);
}
static inline int vmread_raw(uint64_t field, uint64_t *val)
{
    bool cf, zf;
    uint64_t v = 0;
    asm volatile("vmread %3, %2" : "=@ccc"(cf), "=@ccz"(zf), "=r"(v) : "r"(field) : "memory", "cc");
    *val = v;
    return VMX_STATUS(cf, zf);
}
static inline int vmwrite_raw(uint64_t field, uint64_t val)
{
    bool cf, zf;
    asm volatile("vmwrite %3, %2" : "=@ccc"(cf), "=@ccz"(zf) : "r"(field), "rm"(val) : "memory", "cc");
    return VMX_STATUS(cf, zf);
}
struct invept_desc {
    uint64_t eptp, rsvd;
};
struct invvpid_desc {
    uint64_t vpid, gla;
};
static inline int invept(uint64_t type, const struct invept_desc *d)
{
    bool cf, zf;
    asm volatile("invept %2, %3" : "=@ccc"(cf), "=@ccz"(zf) : "m"(*d), "r"(type) : "memory", "cc");
    return VMX_STATUS(cf, zf);
}
static inline int invvpid(uint64_t type, const struct invvpid_desc *d)
{
    bool cf, zf;
    asm volatile("invvpid %2, %3" : "=@ccc"(cf), "=@ccz"(zf) : "m"(*d), "r"(type) : "memory", "cc");
    return VMX_STATUS(cf, zf);
}

/* Checked accessors: a VMfail is reported as a test failure (and counted). */
uint64_t vmcs_read(uint64_t field);
void vmcs_write(uint64_t field, uint64_t val);
/* The VM-instruction error of the current VMCS. */
uint32_t vmx_insn_error(void);

/* ---- Test context ---------------------------------------------------------------- */

/* Controls a test wants on top of what the capability MSRs force. */
struct vmx_extras {
    uint32_t pin, proc, proc2, exit, entry;
    uint32_t exc_bitmap;
};

#define HV_GUEST_DONE 0x454E4F4454534547ull  /* "GSTDONE" marker in RAX at the final VMCALL */
#define HV_GUEST_CRASH 0x48534152435453ull   /* unexpected exception in the guest: RBX = vector */

struct vmx_test_ctx {
    /* guest GPRs by SDM number (the RSP slot is unused: GUEST_RSP), saved/restored around entries */
    uint64_t regs[16];
    /* set by vmx_ctx_init */
    void (*fn)(void *);
    void *arg;
    uint8_t *vmcs;       /* 4-KiB region */
    uint8_t *io_bitmap_a, *io_bitmap_b, *msr_bitmap;
    uint8_t *guest_stack_top;
    uint32_t pin, proc, proc2, exit_ctl, entry_ctl; /* what was written */
    bool launched;
    bool ctl_unsupported; /* a requested control is not allowed-1 */
    /* the last VM entry attempt */
    int vmfail;          /* VMSUCCEED (a VM exit happened) or VMFAIL_* */
    uint32_t insn_error; /* VM-instruction error after VMFAIL_VALID */
    /* exit information of the last VM exit */
    uint32_t exit_reason;
    uint64_t exit_qual;
    uint32_t insn_len, insn_info;
    uint64_t guest_linear, guest_phys;
    uint32_t intr_info, intr_error, idt_vec_info, idt_vec_error;
    uint64_t guest_rip, guest_rsp, guest_rflags;
    unsigned exits;
};

/* Offsets used by the assembly stub (checked by _Static_assert in vmx.c). */
#define CTX_REGS_OFFSET 0

/* MSR-bitmap areas: byte offsets of the four 1-KiB bitmaps (SDM Vol. 3C §25.6.9). */
enum { MSR_READ_LOW = 0, MSR_READ_HIGH = 1024, MSR_WRITE_LOW = 2048, MSR_WRITE_HIGH = 3072 };
/* Set the bit for msr (its low 13 bits) in one area of the context's MSR bitmap. */
void vmx_set_msr_bit(struct vmx_test_ctx *c, unsigned area, uint32_t msr);

uint32_t vmx_adjust_ctl(uint32_t msr, uint32_t want);
bool vmx_ctl_allowed1(uint32_t msr, uint32_t bits);
/* VMXON (once per program); false with a printed reason on failure. */
bool vmx_enable(void);
/*
 * Fresh VMCS (VMCLEAR + VMPTRLD + every field): a 64-bit guest that runs
 * fn(arg) on its own stack and then executes VMCALL with RAX = HV_GUEST_DONE.
 * extras may be NULL. Control bits that are not allowed-1 are dropped and
 * ctx->ctl_unsupported is set.
 */
void vmx_ctx_init(struct vmx_test_ctx *ctx, void (*fn)(void *), void *arg, const struct vmx_extras *extras);
/*
 * The same with the context's own VMCS region (4 KiB, aligned) and guest
 * stack, for tests that keep several guests alive at once (the I/O and MSR
 * bitmaps stay shared and are cleared again).
 */
void vmx_ctx_init_in(struct vmx_test_ctx *ctx, uint8_t *vmcs, uint8_t *stack_top, void (*fn)(void *), void *arg,
                     const struct vmx_extras *ex);
/* Make ctx's VMCS current again (after another ctx was used). */
void vmx_ctx_load(struct vmx_test_ctx *ctx);
/*
 * VMLAUNCH (first time) or VMRESUME. Returns VMSUCCEED when a VM exit
 * (or VM-entry failure exit) brought the host back; the exit information is
 * in ctx. Otherwise VMFAIL_INVALID/VMFAIL_VALID (ctx->insn_error).
 */
int vmx_enter(struct vmx_test_ctx *ctx);
/* GUEST_RIP += VM-exit instruction length; then vmx_enter(). */
int vmx_skip_and_enter(struct vmx_test_ctx *ctx);
/* The last exit is the guest's final VMCALL (fn returned). */
bool vmx_guest_done(const struct vmx_test_ctx *ctx);
/* Resume until the guest is done; false (with a message) if any other exit happens. */
bool vmx_finish(struct vmx_test_ctx *ctx);
const char *exit_reason_name(uint32_t reason);
/* One-line description of the last exit, for failure details. */
const char *vmx_exit_str(const struct vmx_test_ctx *ctx);

/* Assembly (entry.S) */
extern volatile uint64_t hv_exit_rflags; /* RFLAGS at HOST_RIP on the last VM exit */
int hv_vmenter(struct vmx_test_ctx *ctx, int launch);
void hv_vmexit_stub(void);
void hv_guest_entry(void);

/* ---- Reporting ---------------------------------------------------------------- */

/*
 * report(name, cond[, fmt, args...]): "PASS name" or "FAIL name (cond: details)".
 * A name ending in "_KNOWN_BUG" documents a known vmxsim bug: its FAIL does
 * not fail the program; its PASS does (remove it from the known-bug list).
 */
#define report(name, cond, ...) hv_report((name), !!(cond), #cond, " " __VA_ARGS__)
void hv_report(const char *name, bool pass, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Sub-tests with many checks: CHECK() records the first failing condition
 * with its line; report_checks(name) reports them all as one sub-test.
 */
#define CHECK(cond, ...) hv_check(!!(cond), __LINE__, #cond, " " __VA_ARGS__)
bool hv_check(bool ok, int line, const char *cond, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void report_checks(const char *name);
void report_skip(const char *name, const char *why);
void report_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void hv_test_main(void);

#endif
