/*
 * Instructions and events that cause VM exits in VMX non-root operation
 * (SDM Vol. 3C §26.1.2 unconditional, §26.1.3 control-dependent, §26.2
 * exceptions), their exit qualifications (§28.2.1), and the non-exiting
 * side effects of the CR guest/host masks and TSC offsetting (§26.3).
 */
#include <string.h>

#include "vmx/vmx_priv.h"

static uint32_t ctl_pin(const uint8_t *vmcs) { return VMCS_READ32(vmcs, PIN_BASED_VM_EXEC_CONTROL); }
static uint32_t ctl_proc(const uint8_t *vmcs) { return VMCS_READ32(vmcs, CPU_BASED_VM_EXEC_CONTROL); }

static uint32_t ctl_proc2(const uint8_t *vmcs)
{
    if (!(ctl_proc(vmcs) & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS))
        return 0;
    return VMCS_READ32(vmcs, SECONDARY_VM_EXEC_CONTROL);
}

/* I/O bitmaps A (ports 0-7FFFH) and B (8000H-FFFFH) — SDM §25.6.4, §26.1.3. */
static bool io_exits(const uint8_t *vmcs, const struct vmx_ops *ops, uint16_t port, unsigned size)
{
    uint32_t proc = ctl_proc(vmcs);
    if (!(proc & CPU_BASED_USE_IO_BITMAPS))
        return (proc & CPU_BASED_UNCOND_IO_EXITING) != 0;
    if ((uint32_t)port + size > 0x10000) /* wraps around: always exits */
        return true;
    for (unsigned i = 0; i < size; i++) {
        uint16_t p = (uint16_t)(port + i);
        uint64_t base = p < 0x8000 ? VMCS_READ64(vmcs, IO_BITMAP_A) : VMCS_READ64(vmcs, IO_BITMAP_B);
        const uint8_t *b = ops->ptr(ops->ctx, base + (p & 0x7FFF) / 8, 1);
        if (!b || ((*b >> (p & 7)) & 1))
            return true;
    }
    return false;
}

/* MSR bitmaps: read low/high at 0/1024, write low/high at 2048/3072 — SDM §25.6.9. */
static bool msr_exits(const uint8_t *vmcs, const struct vmx_ops *ops, uint32_t msr, bool write)
{
    if (!(ctl_proc(vmcs) & CPU_BASED_USE_MSR_BITMAPS))
        return true;
    uint64_t off;
    if (msr <= 0x1FFF)
        off = 0;
    else if (msr >= 0xC0000000u && msr <= 0xC0001FFFu)
        off = 1024;
    else
        return true;
    off += write ? 2048 : 0;
    uint32_t bit = msr & 0x1FFF;
    const uint8_t *b = ops->ptr(ops->ctx, VMCS_READ64(vmcs, MSR_BITMAP) + off + bit / 8, 1);
    return !b || ((*b >> (bit & 7)) & 1);
}

static uint64_t cr_mask(const uint8_t *vmcs, int cr)
{
    return cr == 0 ? VMCS_READNATW(vmcs, CR0_GUEST_HOST_MASK) : VMCS_READNATW(vmcs, CR4_GUEST_HOST_MASK);
}

static uint64_t cr_shadow(const uint8_t *vmcs, int cr)
{
    return cr == 0 ? VMCS_READNATW(vmcs, CR0_READ_SHADOW) : VMCS_READNATW(vmcs, CR4_READ_SHADOW);
}

/* MOV to CR3 exits unless the value is one of the first CR3-target-count targets. */
static bool cr3_target_hit(const uint8_t *vmcs, uint64_t val)
{
    uint32_t n = VMCS_READ32(vmcs, CR3_TARGET_COUNT);
    static const uint32_t targets[4] = {0x6008, 0x600A, 0x600C, 0x600E}; /* CR3_TARGET_VALUE0..3 */
    for (uint32_t i = 0; i < n && i < 4; i++)
        if (vmx_rd(vmcs, targets[i]) == val)
            return true;
    return false;
}

/* Exit qualification for control-register accesses — SDM Table 28-3. */
static uint64_t cr_qual(const struct vmx_event *ev, unsigned type)
{
    uint64_t q = (uint64_t)(ev->cr & 0xF) | (uint64_t)type << 4 | (uint64_t)(ev->gpr & 0xF) << 8;
    if (ev->kind == VMX_EV_LMSW)
        q = 0 | 3u << 4 | (ev->mem_operand ? 1u << 6 : 0) | (ev->value & 0xFFFF) << 16;
    if (ev->kind == VMX_EV_CLTS)
        q = 2u << 4;
    return q;
}

static bool mov_to_cr_exits(const uint8_t *vmcs, const struct vmx_event *ev)
{
    uint32_t proc = ctl_proc(vmcs);
    switch (ev->cr) {
    case 0:
    case 4:
        return (cr_mask(vmcs, ev->cr) & (ev->value ^ cr_shadow(vmcs, ev->cr))) != 0;
    case 3:
        return (proc & CPU_BASED_CR3_LOAD_EXITING) && !cr3_target_hit(vmcs, ev->value);
    case 8:
        return (proc & CPU_BASED_CR8_LOAD_EXITING) != 0;
    default:
        return false;
    }
}

/* LMSW exits for owned bits that would differ from the shadow; it never clears PE (§26.1.3). */
static bool lmsw_exits(const uint8_t *vmcs, uint64_t src)
{
    uint64_t mask = cr_mask(vmcs, 0), shadow = cr_shadow(vmcs, 0);
    if ((mask & 1) && (src & 1) && !(shadow & 1))
        return true;
    return (mask & 0xE & (src ^ shadow)) != 0;
}

static bool exception_exits(const uint8_t *vmcs, const struct vmx_event *ev)
{
    if (ev->intr_type == INTR_TYPE_NMI_INTR)
        return (ctl_pin(vmcs) & PIN_BASED_NMI_EXITING) != 0;
    if (ev->intr_type == INTR_TYPE_SOFT_INTR)
        return false; /* INT n never consults the exception bitmap */
    bool bit = (VMCS_READ32(vmcs, EXCEPTION_BITMAP) >> ev->vector) & 1;
    if (ev->vector != X86_PF)
        return bit;
    /* #PF: error-code mask/match (SDM §26.2). */
    bool match = (ev->error_code & VMCS_READ32(vmcs, PAGE_FAULT_ERROR_CODE_MASK)) ==
                 VMCS_READ32(vmcs, PAGE_FAULT_ERROR_CODE_MATCH);
    return bit ? match : !match;
}

static void exception_exit(const struct vmx_event *ev, struct vmx_exit *ex)
{
    ex->reason = EXIT_REASON_EXCEPTION_NMI;
    ex->intr_info = ev->vector | ev->intr_type << INTR_INFO_INTR_TYPE_SHIFT | (uint32_t)INTR_INFO_VALID_MASK;
    if (ev->has_error) {
        ex->intr_info |= (uint32_t)INTR_INFO_DELIVER_CODE_MASK;
        ex->intr_error = ev->error_code;
    }
    if (ev->vector == X86_PF)
        ex->qualification = ev->cr2;
}

/* Decide control-dependent instruction exits; returns the exit reason or -1. */
static int insn_exit_reason(const uint8_t *vmcs, const struct vmx_ops *ops, const struct vmx_event *ev,
                            uint64_t *qual)
{
    uint32_t proc = ctl_proc(vmcs), proc2 = ctl_proc2(vmcs);
    switch (ev->kind) {
    case VMX_EV_HLT: return (proc & CPU_BASED_HLT_EXITING) ? EXIT_REASON_HLT : -1;
    case VMX_EV_INVLPG:
        *qual = ev->value;
        return (proc & CPU_BASED_INVLPG_EXITING) ? EXIT_REASON_INVLPG : -1;
    case VMX_EV_INVPCID: return (proc & CPU_BASED_INVLPG_EXITING) ? EXIT_REASON_INVPCID : -1;
    case VMX_EV_RDPMC: return (proc & CPU_BASED_RDPMC_EXITING) ? EXIT_REASON_RDPMC : -1;
    case VMX_EV_RDTSC: return (proc & CPU_BASED_RDTSC_EXITING) ? EXIT_REASON_RDTSC : -1;
    case VMX_EV_RDTSCP: return (proc & CPU_BASED_RDTSC_EXITING) ? EXIT_REASON_RDTSCP : -1;
    case VMX_EV_MWAIT: return (proc & CPU_BASED_MWAIT_EXITING) ? EXIT_REASON_MWAIT_INSTRUCTION : -1;
    case VMX_EV_MONITOR: return (proc & CPU_BASED_MONITOR_EXITING) ? EXIT_REASON_MONITOR_INSTRUCTION : -1;
    case VMX_EV_PAUSE: return (proc & CPU_BASED_PAUSE_EXITING) ? EXIT_REASON_PAUSE_INSTRUCTION : -1;
    case VMX_EV_WBINVD: return (proc2 & SECONDARY_EXEC_WBINVD_EXITING) ? EXIT_REASON_WBINVD : -1;
    case VMX_EV_RDRAND: return (proc2 & SECONDARY_EXEC_RDRAND_EXITING) ? EXIT_REASON_RDRAND : -1;
    case VMX_EV_RDSEED: return (proc2 & SECONDARY_EXEC_RDSEED_EXITING) ? EXIT_REASON_RDSEED : -1;
    case VMX_EV_DESC_GDTR_IDTR: return (proc2 & SECONDARY_EXEC_DESC) ? EXIT_REASON_GDTR_IDTR : -1;
    case VMX_EV_DESC_LDTR_TR: return (proc2 & SECONDARY_EXEC_DESC) ? EXIT_REASON_LDTR_TR : -1;
    case VMX_EV_MOV_DR:
        *qual = (uint64_t)(ev->dr & 7) | (ev->dr_read ? 1u << 4 : 0) | (uint64_t)(ev->gpr & 0xF) << 8;
        return (proc & CPU_BASED_MOV_DR_EXITING) ? EXIT_REASON_DR_ACCESS : -1;
    case VMX_EV_IO:
        *qual = (ev->size - 1) | (ev->in ? 1u << 3 : 0) | (ev->string ? 1u << 4 : 0) |
                (ev->rep ? 1u << 5 : 0) | (ev->imm ? 1u << 6 : 0) | (uint64_t)ev->port << 16;
        return io_exits(vmcs, ops, ev->port, ev->size) ? EXIT_REASON_IO_INSTRUCTION : -1;
    case VMX_EV_RDMSR: return msr_exits(vmcs, ops, ev->msr, false) ? EXIT_REASON_MSR_READ : -1;
    case VMX_EV_WRMSR: return msr_exits(vmcs, ops, ev->msr, true) ? EXIT_REASON_MSR_WRITE : -1;
    case VMX_EV_MOV_TO_CR:
        *qual = cr_qual(ev, 0);
        return mov_to_cr_exits(vmcs, ev) ? EXIT_REASON_CR_ACCESS : -1;
    case VMX_EV_MOV_FROM_CR:
        *qual = cr_qual(ev, 1);
        if (ev->cr == 3)
            return (proc & CPU_BASED_CR3_STORE_EXITING) ? EXIT_REASON_CR_ACCESS : -1;
        if (ev->cr == 8)
            return (proc & CPU_BASED_CR8_STORE_EXITING) ? EXIT_REASON_CR_ACCESS : -1;
        return -1;
    case VMX_EV_CLTS:
        *qual = cr_qual(ev, 2);
        return ((cr_mask(vmcs, 0) & cr_shadow(vmcs, 0)) & X86_CR0_TS) ? EXIT_REASON_CR_ACCESS : -1;
    case VMX_EV_LMSW:
        *qual = cr_qual(ev, 3);
        return lmsw_exits(vmcs, ev->value) ? EXIT_REASON_CR_ACCESS : -1;
    default: return -1;
    }
}

bool vmx_intercept(const struct vmx *v, const struct vmx_ops *ops, const struct vmx_event *ev,
                   struct vmx_exit *ex)
{
    const uint8_t *vmcs = vmx_current_vmcs(v, ops);
    memset(ex, 0, sizeof *ex);
    switch (ev->kind) {
    /* §26.1.2: instructions that cause VM exits unconditionally. */
    case VMX_EV_CPUID: ex->reason = EXIT_REASON_CPUID; return true;
    case VMX_EV_GETSEC: ex->reason = EXIT_REASON_GETSEC; return true;
    case VMX_EV_INVD: ex->reason = EXIT_REASON_INVD; return true;
    case VMX_EV_XSETBV: ex->reason = EXIT_REASON_XSETBV; return true;
    case VMX_EV_VMX_INSN: ex->reason = ev->reason; return true;
    case VMX_EV_TRIPLE_FAULT: ex->reason = EXIT_REASON_TRIPLE_FAULT; return true;
    case VMX_EV_VMFUNC: ex->reason = EXIT_REASON_VMFUNC; return true;
    case VMX_EV_TASK_SWITCH: /* §26.4.2: task switches are not allowed in non-root operation */
        ex->reason = EXIT_REASON_TASK_SWITCH;
        ex->qualification = ev->tss | (uint64_t)ev->task_source << 30;
        return true;
    case VMX_EV_EXCEPTION:
        if (!exception_exits(vmcs, ev))
            return false;
        exception_exit(ev, ex);
        return true;
    default: break;
    }
    uint64_t qual = 0;
    int reason = insn_exit_reason(vmcs, ops, ev, &qual);
    if (reason < 0)
        return false;
    ex->reason = (uint32_t)reason;
    ex->qualification = qual;
    /* §28.2.1: guest-linear address of LMSW from memory and of INS/OUTS. */
    if ((ev->kind == VMX_EV_LMSW && ev->mem_operand) || (ev->kind == VMX_EV_IO && ev->string))
        ex->guest_linear = ev->linear;
    return true;
}

uint64_t vmx_guest_cr_read(const struct vmx *v, const struct vmx_ops *ops, int cr, uint64_t real)
{
    const uint8_t *vmcs = vmx_current_vmcs(v, ops);
    uint64_t mask = cr_mask(vmcs, cr);
    return (real & ~mask) | (cr_shadow(vmcs, cr) & mask);
}

uint64_t vmx_guest_cr_write(const struct vmx *v, const struct vmx_ops *ops, int cr, uint64_t old, uint64_t val)
{
    uint64_t mask = cr_mask(vmx_current_vmcs(v, ops), cr);
    return (old & mask) | (val & ~mask);
}

/* TSC offsetting and scaling — SDM §25.6.5: TSC × multiplier / 2^48 + offset. */
uint64_t vmx_guest_tsc(const struct vmx *v, const struct vmx_ops *ops, uint64_t tsc)
{
    const uint8_t *vmcs = vmx_current_vmcs(v, ops);
    if (!(ctl_proc(vmcs) & CPU_BASED_USE_TSC_OFFSETTING))
        return tsc;
    if (ctl_proc2(vmcs) & SECONDARY_EXEC_TSC_SCALING) {
        unsigned __int128 p = (unsigned __int128)tsc * VMCS_READ64(vmcs, TSC_MULTIPLIER);
        tsc = (uint64_t)(p >> 48);
    }
    return tsc + VMCS_READ64(vmcs, TSC_OFFSET);
}

bool vmx_rdtscp_enabled(const struct vmx *v, const struct vmx_ops *ops)
{
    return (ctl_proc2(vmx_current_vmcs(v, ops)) & SECONDARY_EXEC_ENABLE_RDTSCP) != 0;
}

bool vmx_invpcid_enabled(const struct vmx *v, const struct vmx_ops *ops)
{
    return (ctl_proc2(vmx_current_vmcs(v, ops)) & SECONDARY_EXEC_ENABLE_INVPCID) != 0;
}

bool vmx_vmfunc_enabled(const struct vmx *v, const struct vmx_ops *ops, uint32_t function)
{
    const uint8_t *vmcs = vmx_current_vmcs(v, ops);
    if (!(ctl_proc2(vmcs) & SECONDARY_EXEC_ENABLE_VMFUNC) || function > 63)
        return false;
    return (VMCS_READ64(vmcs, VM_FUNCTION_CONTROL) >> function) & 1;
}
