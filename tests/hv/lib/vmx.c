/*
 * VMX operation for hypervisor tests: VMXON, the test context (one VMCS
 * with a 64-bit guest that shares the host's paging, GDT and IDT, like
 * tests/guests/vmx.inc), entering it and collecting the exit information.
 * Controls come from the TRUE capability MSRs (SDM Vol. 3D Appendix A.2):
 * ctl = (wanted | allowed-0) & allowed-1.
 */
#include "hv.h"

_Static_assert(offsetof(struct vmx_test_ctx, regs) == CTX_REGS_OFFSET, "entry.S needs regs at offset 0");

static uint8_t vmxon_region[4096] __aligned(4096);
static uint8_t vmcs_page[4096] __aligned(4096);
static uint8_t io_bitmap_a_page[4096] __aligned(4096);
static uint8_t io_bitmap_b_page[4096] __aligned(4096);
static uint8_t msr_bitmap_page[4096] __aligned(4096);
static uint8_t guest_stack[16384] __aligned(16);
static bool vmx_on;

static uint64_t pa(const void *p) { return (uint64_t)(uintptr_t)p; }

uint64_t vmcs_read(uint64_t field)
{
    uint64_t v;
    int st = vmread_raw(field, &v);
    if (st != VMSUCCEED) {
        hv_check(false, 0, "vmread", " field 0x%lx: VMfail %d error %u", field, st,
                 st == VMFAIL_VALID ? vmx_insn_error() : 0);
        return 0;
    }
    return v;
}

void vmcs_write(uint64_t field, uint64_t val)
{
    int st = vmwrite_raw(field, val);
    if (st != VMSUCCEED)
        hv_check(false, 0, "vmwrite", " field 0x%lx value 0x%lx: VMfail %d error %u", field, val, st,
                 st == VMFAIL_VALID ? vmx_insn_error() : 0);
}

uint32_t vmx_insn_error(void)
{
    uint64_t v = 0;
    (void)vmread_raw(VM_INSTRUCTION_ERROR, &v);
    return (uint32_t)v;
}

static uint32_t true_msr(uint32_t msr)
{
    if (!(rdmsr(MSR_IA32_VMX_BASIC) & VMX_BASIC_TRUE_CTLS))
        return msr;
    switch (msr) {
    case MSR_IA32_VMX_PINBASED_CTLS: return MSR_IA32_VMX_TRUE_PINBASED_CTLS;
    case MSR_IA32_VMX_PROCBASED_CTLS: return MSR_IA32_VMX_TRUE_PROCBASED_CTLS;
    case MSR_IA32_VMX_EXIT_CTLS: return MSR_IA32_VMX_TRUE_EXIT_CTLS;
    case MSR_IA32_VMX_ENTRY_CTLS: return MSR_IA32_VMX_TRUE_ENTRY_CTLS;
    default: return msr;
    }
}

uint32_t vmx_adjust_ctl(uint32_t msr, uint32_t want)
{
    uint64_t v = rdmsr(msr);
    return (want | (uint32_t)v) & (uint32_t)(v >> 32);
}

bool vmx_ctl_allowed1(uint32_t msr, uint32_t bits)
{
    return ((rdmsr(msr) >> 32) & bits) == bits;
}

bool vmx_enable(void)
{
    if (vmx_on)
        return true;
    uint64_t fc = rdmsr(MSR_IA32_FEATURE_CONTROL);
    if ((fc & 5) != 5) {
        printf("hv: IA32_FEATURE_CONTROL 0x%lx does not allow VMXON\n", fc);
        return false;
    }
    write_cr4(read_cr4() | X86_CR4_VMXE);
    *(uint32_t *)vmxon_region = (uint32_t)rdmsr(MSR_IA32_VMX_BASIC) & 0x7FFFFFFF;
    int st = vmxon(pa(vmxon_region));
    if (st != VMSUCCEED) {
        printf("hv: VMXON failed (%d)\n", st);
        return false;
    }
    vmx_on = true;
    return true;
}

static uint32_t ctl(struct vmx_test_ctx *ctx, uint32_t msr, uint32_t want)
{
    uint32_t v = vmx_adjust_ctl(msr, want);
    if ((v & want) != want) {
        printf("hv: control bits 0x%x not allowed by MSR 0x%x\n", want & ~v, msr);
        ctx->ctl_unsupported = true;
    }
    return v;
}

void vmx_ctx_load(struct vmx_test_ctx *ctx)
{
    if (vmptrld(pa(ctx->vmcs)) != VMSUCCEED)
        hv_check(false, 0, "vmptrld", " of the test VMCS failed");
}

void vmx_ctx_init(struct vmx_test_ctx *ctx, void (*fn)(void *), void *arg, const struct vmx_extras *ex)
{
    vmx_ctx_init_in(ctx, vmcs_page, guest_stack + sizeof guest_stack, fn, arg, ex);
}

void vmx_ctx_init_in(struct vmx_test_ctx *ctx, uint8_t *vmcs, uint8_t *stack_top, void (*fn)(void *), void *arg,
                     const struct vmx_extras *ex)
{
    static const struct vmx_extras none;
    struct dtr gdt, idt;
    if (!ex)
        ex = &none;
    if (!vmx_enable())
        hv_exit(1);
    memset(ctx, 0, sizeof *ctx);
    ctx->fn = fn;
    ctx->arg = arg;
    ctx->vmcs = vmcs;
    ctx->io_bitmap_a = io_bitmap_a_page;
    ctx->io_bitmap_b = io_bitmap_b_page;
    ctx->msr_bitmap = msr_bitmap_page;
    ctx->guest_stack_top = stack_top;
    memset(vmcs, 0, 4096);
    memset(io_bitmap_a_page, 0, 4096);
    memset(io_bitmap_b_page, 0, 4096);
    memset(msr_bitmap_page, 0, 4096);
    *(uint32_t *)vmcs = (uint32_t)rdmsr(MSR_IA32_VMX_BASIC) & 0x7FFFFFFF;
    if (vmclear(pa(vmcs)) != VMSUCCEED)
        hv_check(false, 0, "vmclear", " of the test VMCS failed");
    vmx_ctx_load(ctx);

    /* Controls */
    bool has_secondary = vmx_ctl_allowed1(true_msr(MSR_IA32_VMX_PROCBASED_CTLS), (uint32_t)CPU_SECONDARY);
    ctx->pin = ctl(ctx, true_msr(MSR_IA32_VMX_PINBASED_CTLS), ex->pin);
    ctx->proc = ctl(ctx, true_msr(MSR_IA32_VMX_PROCBASED_CTLS),
                    ex->proc | (has_secondary ? (uint32_t)CPU_SECONDARY : 0));
    ctx->proc2 = has_secondary ? ctl(ctx, MSR_IA32_VMX_PROCBASED_CTLS2, ex->proc2) : 0;
    if (!has_secondary && ex->proc2)
        ctx->ctl_unsupported = true;
    ctx->exit_ctl = ctl(ctx, true_msr(MSR_IA32_VMX_EXIT_CTLS), ex->exit | (uint32_t)EXIT_HOST_ADDR_SPACE);
    ctx->entry_ctl = ctl(ctx, true_msr(MSR_IA32_VMX_ENTRY_CTLS), ex->entry | (uint32_t)ENTRY_IA32E);
    vmcs_write(PIN_BASED_VM_EXEC_CONTROL, ctx->pin);
    vmcs_write(CPU_BASED_VM_EXEC_CONTROL, ctx->proc);
    if (has_secondary)
        vmcs_write(SECONDARY_VM_EXEC_CONTROL, ctx->proc2);
    vmcs_write(VM_EXIT_CONTROLS, ctx->exit_ctl);
    vmcs_write(VM_ENTRY_CONTROLS, ctx->entry_ctl);
    vmcs_write(EXCEPTION_BITMAP, ex->exc_bitmap);
    vmcs_write(PAGE_FAULT_ERROR_CODE_MASK, 0);
    vmcs_write(PAGE_FAULT_ERROR_CODE_MATCH, 0);
    vmcs_write(CR3_TARGET_COUNT, 0);
    vmcs_write(IO_BITMAP_A, pa(io_bitmap_a_page));
    vmcs_write(IO_BITMAP_B, pa(io_bitmap_b_page));
    vmcs_write(MSR_BITMAP, pa(msr_bitmap_page));
    vmcs_write(VM_EXIT_MSR_STORE_COUNT, 0);
    vmcs_write(VM_EXIT_MSR_LOAD_COUNT, 0);
    vmcs_write(VM_ENTRY_MSR_LOAD_COUNT, 0);
    vmcs_write(VM_ENTRY_INTR_INFO_FIELD, 0);
    vmcs_write(VM_ENTRY_EXCEPTION_ERROR_CODE, 0);
    vmcs_write(VM_ENTRY_INSTRUCTION_LEN, 0);
    vmcs_write(TSC_OFFSET, 0);
    vmcs_write(CR0_GUEST_HOST_MASK, 0);
    vmcs_write(CR4_GUEST_HOST_MASK, 0);
    vmcs_write(CR0_READ_SHADOW, read_cr0());
    vmcs_write(CR4_READ_SHADOW, read_cr4());
    if (ctx->proc2 & CPU2_VPID)
        vmcs_write(VPID, 1);

    /* Host state: the current environment; RSP is written by hv_vmenter. */
    sgdt(&gdt);
    sidt(&idt);
    vmcs_write(HOST_CR0, read_cr0());
    vmcs_write(HOST_CR3, read_cr3());
    vmcs_write(HOST_CR4, read_cr4());
    vmcs_write(HOST_CS_SELECTOR, 0x08);
    vmcs_write(HOST_SS_SELECTOR, 0x10);
    vmcs_write(HOST_DS_SELECTOR, 0x10);
    vmcs_write(HOST_ES_SELECTOR, 0x10);
    vmcs_write(HOST_FS_SELECTOR, 0x10);
    vmcs_write(HOST_GS_SELECTOR, 0x10);
    vmcs_write(HOST_TR_SELECTOR, 0x20);
    vmcs_write(HOST_FS_BASE, rdmsr(MSR_FS_BASE));
    vmcs_write(HOST_GS_BASE, rdmsr(MSR_GS_BASE));
    vmcs_write(HOST_TR_BASE, 0x7800);
    vmcs_write(HOST_GDTR_BASE, gdt.base);
    vmcs_write(HOST_IDTR_BASE, idt.base);
    vmcs_write(HOST_IA32_SYSENTER_CS, rdmsr(MSR_IA32_SYSENTER_CS));
    vmcs_write(HOST_IA32_SYSENTER_ESP, rdmsr(MSR_IA32_SYSENTER_ESP));
    vmcs_write(HOST_IA32_SYSENTER_EIP, rdmsr(MSR_IA32_SYSENTER_EIP));
    vmcs_write(HOST_RIP, pa(hv_vmexit_stub));
    if (ctx->exit_ctl & EXIT_LOAD_EFER)
        vmcs_write(HOST_IA32_EFER, rdmsr(MSR_IA32_EFER));
    if (ctx->exit_ctl & EXIT_LOAD_PAT)
        vmcs_write(HOST_IA32_PAT, rdmsr(MSR_IA32_PAT));

    /* Guest state: a copy of the host's 64-bit environment. */
    vmcs_write(GUEST_CR0, read_cr0());
    vmcs_write(GUEST_CR3, read_cr3());
    vmcs_write(GUEST_CR4, read_cr4());
    vmcs_write(GUEST_DR7, 0x400);
    vmcs_write(GUEST_IA32_DEBUGCTL, 0);
    if (ctx->entry_ctl & ENTRY_LOAD_EFER)
        vmcs_write(GUEST_IA32_EFER, rdmsr(MSR_IA32_EFER));
    if (ctx->entry_ctl & ENTRY_LOAD_PAT)
        vmcs_write(GUEST_IA32_PAT, rdmsr(MSR_IA32_PAT));
    vmcs_write(GUEST_CS_SELECTOR, 0x08);
    vmcs_write(GUEST_CS_AR_BYTES, 0xa09b);
    vmcs_write(GUEST_CS_LIMIT, 0xffffffff);
    vmcs_write(GUEST_CS_BASE, 0);
    static const uint32_t data_segs[5][4] = {
        {GUEST_ES_SELECTOR, GUEST_ES_AR_BYTES, GUEST_ES_LIMIT, GUEST_ES_BASE},
        {GUEST_SS_SELECTOR, GUEST_SS_AR_BYTES, GUEST_SS_LIMIT, GUEST_SS_BASE},
        {GUEST_DS_SELECTOR, GUEST_DS_AR_BYTES, GUEST_DS_LIMIT, GUEST_DS_BASE},
        {GUEST_FS_SELECTOR, GUEST_FS_AR_BYTES, GUEST_FS_LIMIT, GUEST_FS_BASE},
        {GUEST_GS_SELECTOR, GUEST_GS_AR_BYTES, GUEST_GS_LIMIT, GUEST_GS_BASE},
    };
    for (unsigned i = 0; i < 5; i++) {
        vmcs_write(data_segs[i][0], 0x10);
        vmcs_write(data_segs[i][1], 0xc093);
        vmcs_write(data_segs[i][2], 0xffffffff);
        vmcs_write(data_segs[i][3], 0);
    }
    vmcs_write(GUEST_LDTR_SELECTOR, 0);
    vmcs_write(GUEST_LDTR_AR_BYTES, 0x10000); /* unusable */
    vmcs_write(GUEST_LDTR_LIMIT, 0);
    vmcs_write(GUEST_LDTR_BASE, 0);
    vmcs_write(GUEST_TR_SELECTOR, 0x20);
    vmcs_write(GUEST_TR_AR_BYTES, 0x8b);
    vmcs_write(GUEST_TR_LIMIT, 0x67);
    vmcs_write(GUEST_TR_BASE, 0x7800);
    vmcs_write(GUEST_GDTR_BASE, gdt.base);
    vmcs_write(GUEST_GDTR_LIMIT, gdt.limit);
    vmcs_write(GUEST_IDTR_BASE, idt.base);
    vmcs_write(GUEST_IDTR_LIMIT, idt.limit);
    vmcs_write(GUEST_RFLAGS, X86_RFLAGS_FIXED);
    vmcs_write(GUEST_RSP, pa(ctx->guest_stack_top));
    vmcs_write(GUEST_RIP, pa(hv_guest_entry));
    vmcs_write(GUEST_ACTIVITY_STATE, 0);
    vmcs_write(GUEST_INTERRUPTIBILITY_INFO, 0);
    vmcs_write(GUEST_PENDING_DBG_EXCEPTIONS, 0);
    vmcs_write(GUEST_SYSENTER_CS, 0);
    vmcs_write(GUEST_SYSENTER_ESP, 0);
    vmcs_write(GUEST_SYSENTER_EIP, 0);
    vmcs_write(VMCS_LINK_POINTER, ~0ull);

    ctx->regs[R_RDI] = (uint64_t)(uintptr_t)arg;
    ctx->regs[R_RSI] = (uint64_t)(uintptr_t)fn;
}

int vmx_enter(struct vmx_test_ctx *ctx)
{
    uint64_t v = 0;
    ctx->vmfail = hv_vmenter(ctx, !ctx->launched);
    ctx->insn_error = 0;
    if (ctx->vmfail != VMSUCCEED) {
        ctx->exit_reason = ~0u;
        if (ctx->vmfail == VMFAIL_VALID)
            ctx->insn_error = vmx_insn_error();
        return ctx->vmfail;
    }
    ctx->exits++;
    ctx->exit_reason = (uint32_t)vmcs_read(VM_EXIT_REASON);
    ctx->exit_qual = vmcs_read(EXIT_QUALIFICATION);
    ctx->insn_len = (uint32_t)vmcs_read(VM_EXIT_INSTRUCTION_LEN);
    ctx->insn_info = (uint32_t)vmcs_read(VMX_INSTRUCTION_INFO);
    ctx->guest_linear = vmcs_read(GUEST_LINEAR_ADDRESS);
    ctx->guest_phys = vmread_raw(GUEST_PHYSICAL_ADDRESS, &v) == VMSUCCEED ? v : 0;
    ctx->intr_info = (uint32_t)vmcs_read(VM_EXIT_INTR_INFO);
    ctx->intr_error = (uint32_t)vmcs_read(VM_EXIT_INTR_ERROR_CODE);
    ctx->idt_vec_info = (uint32_t)vmcs_read(IDT_VECTORING_INFO_FIELD);
    ctx->idt_vec_error = (uint32_t)vmcs_read(IDT_VECTORING_ERROR_CODE);
    ctx->guest_rip = vmcs_read(GUEST_RIP);
    ctx->guest_rsp = vmcs_read(GUEST_RSP);
    ctx->guest_rflags = vmcs_read(GUEST_RFLAGS);
    if (!(ctx->exit_reason & EXIT_REASON_FAILED_ENTRY))
        ctx->launched = true;
    if ((ctx->exit_reason & 0xFFFF) == EXIT_VMCALL && ctx->regs[R_RAX] == HV_GUEST_CRASH)
        printf("hv: the guest took an unexpected exception %lu (error 0x%lx) at rip 0x%lx\n",
               ctx->regs[R_RBX], ctx->regs[R_RDX], ctx->regs[R_RCX]);
    return VMSUCCEED;
}

int vmx_skip_and_enter(struct vmx_test_ctx *ctx)
{
    vmcs_write(GUEST_RIP, vmcs_read(GUEST_RIP) + ctx->insn_len);
    return vmx_enter(ctx);
}

bool vmx_guest_done(const struct vmx_test_ctx *ctx)
{
    return ctx->vmfail == VMSUCCEED && ctx->exit_reason == EXIT_VMCALL && ctx->regs[R_RAX] == HV_GUEST_DONE;
}

bool vmx_finish(struct vmx_test_ctx *ctx)
{
    if (vmx_guest_done(ctx))
        return true;
    hv_check(false, 0, "guest done", " expected the final VMCALL, got %s", vmx_exit_str(ctx));
    return false;
}

const char *exit_reason_name(uint32_t reason)
{
    static const char *const names[] = {
        [0] = "EXCEPTION_NMI", [1] = "EXTERNAL_INTERRUPT", [2] = "TRIPLE_FAULT", [3] = "INIT",
        [7] = "INTERRUPT_WINDOW", [9] = "TASK_SWITCH", [10] = "CPUID", [12] = "HLT", [13] = "INVD",
        [14] = "INVLPG", [15] = "RDPMC", [16] = "RDTSC", [18] = "VMCALL", [19] = "VMCLEAR",
        [20] = "VMLAUNCH", [21] = "VMPTRLD", [22] = "VMPTRST", [23] = "VMREAD", [24] = "VMRESUME",
        [25] = "VMWRITE", [26] = "VMXOFF", [27] = "VMXON", [28] = "CR_ACCESS", [29] = "DR_ACCESS",
        [30] = "IO", [31] = "RDMSR", [32] = "WRMSR", [33] = "INVALID_GUEST_STATE",
        [34] = "MSR_LOAD_FAIL", [36] = "MWAIT", [37] = "MTF", [39] = "MONITOR", [40] = "PAUSE",
        [46] = "GDTR_IDTR", [47] = "LDTR_TR", [48] = "EPT_VIOLATION", [49] = "EPT_MISCONFIG",
        [50] = "INVEPT", [51] = "RDTSCP", [52] = "PREEMPTION_TIMER", [53] = "INVVPID",
        [54] = "WBINVD", [55] = "XSETBV", [57] = "RDRAND", [58] = "INVPCID", [59] = "VMFUNC",
        [61] = "RDSEED",
    };
    uint32_t b = reason & 0xFFFF;
    if (b < ARRAY_SIZE(names) && names[b])
        return names[b];
    return "?";
}

const char *vmx_exit_str(const struct vmx_test_ctx *ctx)
{
    static char buf[200];
    if (ctx->vmfail != VMSUCCEED)
        snprintf(buf, sizeof buf, "VMfail%s error %u", ctx->vmfail == VMFAIL_VALID ? "Valid" : "Invalid",
                 ctx->insn_error);
    else
        snprintf(buf, sizeof buf, "exit 0x%x %s qual 0x%lx len %u info 0x%x rip 0x%lx intr 0x%x err 0x%x%s",
                 ctx->exit_reason, exit_reason_name(ctx->exit_reason), ctx->exit_qual, ctx->insn_len,
                 ctx->insn_info, ctx->guest_rip, ctx->intr_info, ctx->intr_error,
                 (ctx->exit_reason == EXIT_VMCALL && ctx->regs[R_RAX] == HV_GUEST_CRASH) ? " (guest crashed)"
                 : vmx_guest_done(ctx)                                                 ? " (guest done)"
                                                                                       : "");
    return buf;
}

void vmx_set_msr_bit(struct vmx_test_ctx *c, unsigned area, uint32_t msr)
{
    uint32_t bit = msr & 0x1FFF;
    c->msr_bitmap[area + bit / 8] |= (uint8_t)(1u << (bit & 7));
}
