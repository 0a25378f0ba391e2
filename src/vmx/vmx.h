/*
 * VMX unit (DESIGN §3): VMX operation — VMXON…INVVPID, the VMCS, VM-entry
 * checks, VM entry/exit and the controls that decide what exits.
 *
 * The unit never touches Unicorn: the CPU core decodes the instruction and
 * reads its memory operands, hands the VMX unit a struct x86_state snapshot,
 * and applies the result. Guest-physical memory (the VMCS, bitmaps, MSR
 * areas) is reached through struct vmx_mem.
 */
#ifndef VMXSIM_VMX_H
#define VMXSIM_VMX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86_state.h"
#include "model/model.h"
#include "vmx/vmx_arch.h"

#define VMX_WARN_UNUSED __attribute__((warn_unused_result))

/* Capability MSR values (SDM Vol. 3D Appendix A), computed from the CPU model. */
struct vmx_caps {
    uint64_t basic;
    uint64_t pinbased, procbased, exit, entry;             /* allowed-0 in 31:0, allowed-1 in 63:32 */
    uint64_t true_pinbased, true_procbased, true_exit, true_entry;
    uint64_t procbased2;
    uint64_t procbased3;                                   /* allowed-1 bits (all 64) */
    uint64_t misc;
    uint64_t cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1;
    uint64_t vmcs_enum;
    uint64_t ept_vpid;
    uint64_t vmfunc;
    uint8_t maxphyaddr;
    uint64_t vmcs_deps; /* bit per enum vmcs_dep whose fields exist on this model */
};

/* Fill caps from the model: only what the VMX unit implements, gated by features. */
void vmx_caps_init(struct vmx_caps *caps, const struct cpu_model *model);

/* Value of capability MSR index (0x480..0x493); false if not present on this model. */
bool vmx_caps_msr(const struct vmx_caps *caps, uint32_t index, uint64_t *val);

/* Guest-physical memory as the VMX unit sees it. */
struct vmx_mem {
    void *ctx;
    /* Host pointer to [pa, pa+len) if it is ordinary RAM, else NULL. */
    uint8_t *(*ptr)(void *ctx, uint64_t pa, size_t len);
};

/*
 * VM-entry checks (SDM Vol. 3C §27.2 controls and host state, §27.3.1
 * guest state). Every check has a stable id and message (entry_checks.def).
 */
enum vmx_check_id {
    VMX_CHECK_NONE = 0,
#define VMX_CHECK(id, stage, msg) VMX_CHECK_##id,
#include "vmx/entry_checks.def"
#undef VMX_CHECK
    VMX_CHECK_COUNT
};

enum vmx_check_stage {
    VMX_STAGE_CONTROLS,  /* failure: VMfailValid(7) */
    VMX_STAGE_HOST,      /* failure: VMfailValid(8) */
    VMX_STAGE_GUEST,     /* failure: VM exit, reason 33 | bit 31, qualification */
};

struct vmx_check_fail {
    enum vmx_check_id id;
    enum vmx_check_stage stage;
    uint32_t qualification; /* ENTRY_FAIL_* for guest-state failures */
    uint64_t value;         /* the offending value (for the message) */
};

const char *vmx_check_name(enum vmx_check_id id);    /* "HOST_CR4_VMXE" */
const char *vmx_check_message(enum vmx_check_id id); /* "host CR4.VMXE must be 1" */
enum vmx_check_stage vmx_check_stage_of(enum vmx_check_id id);

/*
 * Run the checks of one stage in SDM order on the VMCS at `vmcs` (a region
 * in vmcs.h layout). Returns true when every check passes; otherwise fills
 * *fail with the first failing check.
 */
bool vmx_check_controls(const struct vmx_caps *caps, const uint8_t *vmcs,
                        const struct vmx_mem *mem, struct vmx_check_fail *fail) VMX_WARN_UNUSED;
bool vmx_check_host_state(const struct vmx_caps *caps, const uint8_t *vmcs,
                          struct vmx_check_fail *fail) VMX_WARN_UNUSED;
bool vmx_check_guest_state(const struct vmx_caps *caps, const uint8_t *vmcs,
                           const struct vmx_mem *mem, struct vmx_check_fail *fail) VMX_WARN_UNUSED;

/* ------------------------------------------------------------------ */
/* VMX operation state and the instructions (SDM Vol. 3C ch. 24, 31).  */

#define VMX_NO_VMCS (~0ull) /* current-VMCS pointer when there is none */

/* Services of the CPU core the VMX unit needs during entry and exit. */
struct vmx_ops {
    void *ctx;
    /* Host pointer to [pa, pa+len) of guest RAM, or NULL. */
    uint8_t *(*ptr)(void *ctx, uint64_t pa, size_t len);
    /* RDMSR/WRMSR as the architecture defines them (MSR-load/store areas, SDM §27.4, §28.6). */
    bool (*rdmsr)(void *ctx, uint32_t index, uint64_t *val);
    bool (*wrmsr)(void *ctx, uint32_t index, uint64_t val);
    /* Load PAE PDPTEs from guest memory for CR3 (false: reserved bit set). */
    bool (*load_pdptes)(void *ctx, const struct x86_state *st, uint64_t pdpte[4]);
};

struct vmx {
    struct vmx_caps caps;
    bool in_vmx;           /* VMX operation (after VMXON) */
    bool non_root;         /* a guest is running */
    uint64_t vmxon_ptr;
    uint64_t current_vmcs; /* VMX_NO_VMCS when none */
    bool blocking_init;    /* INIT is blocked in VMX root operation */
    /* Event injection left for the core after a successful VM entry. */
    bool inject_pending;
    uint32_t inject_info, inject_error, inject_len;
    bool mtf_pending;      /* monitor trap flag: exit after the next instruction */
    uint64_t preempt_deadline; /* cycle at which the VMX-preemption timer expires (0: off) */
    struct vmx_check_fail last_fail; /* last failed VM-entry check (for reports) */
};

void vmx_init(struct vmx *v, const struct cpu_model *model);

/* What the core knows about the processor when a VMX instruction runs. */
struct vmx_cpu {
    unsigned cpl;
    bool protected_mode, v86, ia32e, cs_l; /* cs_l: 64-bit mode */
    uint64_t cr0, cr4, efer, rflags;
    uint64_t feature_control;              /* IA32_FEATURE_CONTROL */
    bool movss_blocking;                   /* blocking by MOV SS (VMLAUNCH/VMRESUME: error 26) */
};

enum vmx_insn_op {
    VMXI_VMXON, VMXI_VMXOFF, VMXI_VMCLEAR, VMXI_VMPTRLD, VMXI_VMPTRST, VMXI_VMREAD,
    VMXI_VMWRITE, VMXI_VMLAUNCH, VMXI_VMRESUME, VMXI_INVEPT, VMXI_INVVPID, VMXI_VMCALL,
    VMXI_VMFUNC,
};

struct vmx_insn {
    enum vmx_insn_op op;
    uint64_t ptr;      /* VMXON/VMCLEAR/VMPTRLD: the 64-bit operand read from memory */
    uint64_t field;    /* VMREAD/VMWRITE: the field-encoding register */
    uint64_t value;    /* VMWRITE: the source operand */
    uint64_t type;     /* INVEPT/INVVPID: the type register */
    uint64_t desc[2];  /* INVEPT/INVVPID: the 128-bit descriptor */
};

enum vmx_result_kind {
    VMXR_SUCCEED,      /* RFLAGS: CF=PF=AF=ZF=SF=OF=0 */
    VMXR_FAIL_INVALID, /* CF=1 */
    VMXR_FAIL_VALID,   /* ZF=1, error in VM_INSTRUCTION_ERROR */
    VMXR_FAULT,        /* fault: #UD or #GP(0) */
    VMXR_ENTERED,      /* VM entry done: load result state, run the guest */
    VMXR_ENTRY_FAIL_EXIT, /* VM entry failed on guest state / MSR load: host state loaded */
    VMXR_VMXOFF_DONE,
};

struct vmx_result {
    enum vmx_result_kind kind;
    uint32_t error;           /* VMFAIL_VALID: VM-instruction error */
    struct x86_fault fault;   /* VMXR_FAULT */
    uint64_t value;           /* VMREAD value / VMPTRST pointer */
    bool flush_ept, flush_vpid, flush_all; /* INVEPT/INVVPID: what to invalidate */
    uint64_t inv_type;        /* INVEPT/INVVPID type */
    uint64_t eptp;            /* INVEPT single-context: the descriptor's EPTP */
    uint16_t vpid;            /* flush_vpid: which VPID */
    uint64_t flush_la;        /* INVVPID individual address (flush_vpid with a valid address) */
    bool flush_la_valid;
};

/*
 * Execute a VMX instruction in VMX root operation (or VMXON outside VMX
 * operation). The core has already decoded operands and read memory ones;
 * it applies the result (RFLAGS, destination, RIP). VMLAUNCH/VMRESUME also
 * transform *st: on VMXR_ENTERED it holds the guest state, on
 * VMXR_ENTRY_FAIL_EXIT the host state after the failure exit.
 */
void vmx_execute(struct vmx *v, const struct vmx_cpu *cpu, const struct vmx_insn *in,
                 struct x86_state *st, const struct vmx_ops *ops, struct vmx_result *res);

/* VM exit information the core supplies (SDM Vol. 3C §28.2). */
struct vmx_exit {
    uint32_t reason;          /* basic reason (| bit 31 for entry failures) */
    uint64_t qualification;
    uint64_t guest_linear;    /* GUEST_LINEAR_ADDRESS when defined */
    uint64_t guest_physical;  /* GUEST_PHYSICAL_ADDRESS (EPT exits) */
    uint32_t intr_info;       /* VM_EXIT_INTR_INFO */
    uint32_t intr_error;      /* VM_EXIT_INTR_ERROR_CODE */
    uint32_t insn_len;        /* VM_EXIT_INSTRUCTION_LEN */
    uint32_t insn_info;       /* VMX_INSTRUCTION_INFO */
    uint64_t io_rcx, io_rsi, io_rdi, io_rip; /* SMI exits only */
    uint32_t idt_vectoring_info, idt_vectoring_error;
};

enum vmx_exit_outcome { VMX_EXIT_OK, VMX_EXIT_ABORT };

/*
 * VM exit (SDM Vol. 3C ch. 28): record exit information, save guest state
 * from *st into the current VMCS, MSR-store, load host state into *st,
 * MSR-load. Returns VMX_EXIT_ABORT (with *abort = indicator) on a VMX abort.
 */
enum vmx_exit_outcome vmx_vmexit(struct vmx *v, const struct vmx_exit *ex, struct x86_state *st,
                                 const struct vmx_ops *ops, uint32_t *abort);

/* ------------------------------------------------------------------ */
/* Non-root operation: what causes a VM exit (SDM Vol. 3C §26.1, §26.2) */

enum vmx_event_kind {
    VMX_EV_CPUID, VMX_EV_GETSEC, VMX_EV_INVD, VMX_EV_XSETBV, VMX_EV_VMX_INSN, VMX_EV_HLT,
    VMX_EV_INVLPG, VMX_EV_RDPMC, VMX_EV_RDTSC, VMX_EV_RDTSCP, VMX_EV_MOV_TO_CR,
    VMX_EV_MOV_FROM_CR, VMX_EV_CLTS, VMX_EV_LMSW, VMX_EV_MOV_DR, VMX_EV_IO, VMX_EV_RDMSR,
    VMX_EV_WRMSR, VMX_EV_MWAIT, VMX_EV_MONITOR, VMX_EV_PAUSE, VMX_EV_WBINVD, VMX_EV_RDRAND,
    VMX_EV_RDSEED, VMX_EV_INVPCID, VMX_EV_DESC_GDTR_IDTR, VMX_EV_DESC_LDTR_TR, VMX_EV_EXCEPTION,
    VMX_EV_TRIPLE_FAULT, VMX_EV_VMFUNC, VMX_EV_TASK_SWITCH,
};

/* Source of a task switch: exit qualification bits 31:30 (SDM Vol. 3C Table 28-2). */
enum vmx_task_source { VMX_TASK_CALL = 0, VMX_TASK_IRET = 1, VMX_TASK_JMP = 2, VMX_TASK_GATE = 3 };

struct vmx_event {
    enum vmx_event_kind kind;
    uint32_t reason;     /* VMX_EV_VMX_INSN: the instruction's exit reason */
    int cr, dr, gpr;     /* CR/DR number; GPR number (SDM register order) */
    uint64_t value;      /* MOV to CR: new value; LMSW: source; INVLPG: linear address */
    bool mem_operand;    /* LMSW from memory */
    bool dr_read;        /* MOV from DR */
    uint16_t port;       /* I/O */
    unsigned size;       /* I/O: 1, 2 or 4 */
    bool in, string, rep, imm;
    uint32_t msr;        /* RDMSR/WRMSR index */
    uint8_t vector;      /* exception */
    uint32_t intr_type;  /* INTR_TYPE_* of the exception */
    bool has_error;
    uint32_t error_code;
    uint64_t cr2;        /* #PF: faulting address (exit qualification) */
    uint64_t linear;     /* LMSW memory / string I/O: the guest-linear address (§28.2.1) */
    uint16_t tss;        /* task switch: selector of the new task's TSS */
    enum vmx_task_source task_source;
};

/*
 * Does this event cause a VM exit from the current guest? If so, fill
 * ex->reason and ex->qualification (and the interruption fields for
 * exceptions); the core adds instruction length/information and addresses.
 */
bool vmx_intercept(const struct vmx *v, const struct vmx_ops *ops, const struct vmx_event *ev,
                   struct vmx_exit *ex);

/* MOV from CR0/CR4 in non-root operation: host-owned bits read from the shadow (§26.3). */
uint64_t vmx_guest_cr_read(const struct vmx *v, const struct vmx_ops *ops, int cr, uint64_t real);
/* Non-exiting MOV to CR0/CR4: host-owned bits keep their value (§26.3). */
uint64_t vmx_guest_cr_write(const struct vmx *v, const struct vmx_ops *ops, int cr, uint64_t old,
                            uint64_t val);
/* RDTSCP is #UD in non-root operation unless "enable RDTSCP" is set (§26.3). */
bool vmx_rdtscp_enabled(const struct vmx *v, const struct vmx_ops *ops);
/* INVPCID is #UD in non-root operation unless "enable INVPCID" is set (§26.3). */
bool vmx_invpcid_enabled(const struct vmx *v, const struct vmx_ops *ops);
/* VMFUNC is #UD unless "enable VM functions" is set and the function is enabled. */
bool vmx_vmfunc_enabled(const struct vmx *v, const struct vmx_ops *ops, uint32_t function);
/* TSC as the guest reads it: offset and scaling (§26.3, §25.6.5). */
uint64_t vmx_guest_tsc(const struct vmx *v, const struct vmx_ops *ops, uint64_t tsc);

/*
 * "Virtualize IA32_SPEC_CTRL" (tertiary control bit 7; spec_ctrl.c). For
 * RDMSR/WRMSR of IA32_SPEC_CTRL (48H) executed by the guest in non-root
 * operation after the MSR bitmap did not cause a VM exit (§26.1.3) and after
 * the usual #GP checks (CPL, reserved bits of EDX:EAX):
 *   vmx_spec_ctrl_virtualized  the control is in effect (non-root, primary
 *                              "activate tertiary controls" = 1, tertiary
 *                              bit 7 = 1, supported by the model)
 *   vmx_spec_ctrl_rdmsr        what RDMSR returns: the IA32_SPEC_CTRL shadow
 *   vmx_spec_ctrl_wrmsr        writes value to the shadow and sets *new_real,
 *                              the new IA32_SPEC_CTRL, to
 *                              (current_real & mask) | (value & ~mask)
 * The VM-exit MSR-store and VM-entry MSR-load areas are not virtualized.
 */
bool vmx_spec_ctrl_virtualized(const struct vmx *v, const struct vmx_ops *ops);
uint64_t vmx_spec_ctrl_rdmsr(const struct vmx *v, const struct vmx_ops *ops);
void vmx_spec_ctrl_wrmsr(const struct vmx *v, const struct vmx_ops *ops, uint64_t current_real,
                         uint64_t value, uint64_t *new_real);
/* The merge rule alone: (current_real & mask) | (value & ~mask). */
uint64_t vmx_spec_ctrl_merge(uint64_t current_real, uint64_t mask, uint64_t value);

/* Current VMCS (host pointer into guest RAM) or NULL. */
uint8_t *vmx_current_vmcs(const struct vmx *v, const struct vmx_ops *ops);
const char *vmx_exit_reason_name(uint32_t reason);
#endif
