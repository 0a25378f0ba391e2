/*
 * VM entry (SDM Vol. 3C chapter 27), in the SDM's order:
 *   §27.1 basic checks (VMLAUNCH/VMRESUME launch state, MOV-SS blocking)
 *   §27.2 checks on controls (VMfailValid 7) and host state (VMfailValid 8)
 *   §27.3 guest-state checks, then loading guest state (failure: exit 33)
 *   §27.4 MSR loading (failure: exit 34, qualification = entry number)
 *   §27.5/§27.6 event injection (left to the core, which delivers it)
 * A failure after §27.2 is a VM exit that loads host state (§27.8).
 */
#include <string.h>

#include "vmx/checks_env.h"
#include "vmx/vmx_priv.h"

/* Load one guest segment register from the VMCS (§27.3.2.2). */
static void load_guest_seg(const uint8_t *vmcs, enum x86_seg s, struct x86_seg_state *out)
{
    out->selector = (uint16_t)vmx_rd(vmcs, vmx_guest_sel(s));
    out->base = vmx_rd(vmcs, vmx_guest_base(s));
    out->limit = (uint32_t)vmx_rd(vmcs, vmx_guest_limit(s));
    out->ar = (uint32_t)vmx_rd(vmcs, vmx_guest_ar(s)) & 0x1F0FFu;
}

/* §27.3.2.1 control registers, debug registers and MSRs. */
static void load_guest_regs(const uint8_t *vmcs, struct x86_state *st)
{
    uint64_t entry = VMCS_READ32(vmcs, VM_ENTRY_CONTROLS);
    st->cr0 = VMCS_READNATW(vmcs, GUEST_CR0);
    st->cr3 = VMCS_READNATW(vmcs, GUEST_CR3);
    st->cr4 = VMCS_READNATW(vmcs, GUEST_CR4);
    if (entry & VM_ENTRY_LOAD_DEBUG_CONTROLS) {
        st->dr7 = VMCS_READNATW(vmcs, GUEST_DR7);
        st->debugctl = VMCS_READ64(vmcs, GUEST_IA32_DEBUGCTL);
    }
    st->sysenter_cs = VMCS_READ32(vmcs, GUEST_SYSENTER_CS);
    st->sysenter_esp = VMCS_READNATW(vmcs, GUEST_SYSENTER_ESP);
    st->sysenter_eip = VMCS_READNATW(vmcs, GUEST_SYSENTER_EIP);
    if (entry & VM_ENTRY_LOAD_IA32_PAT)
        st->pat = VMCS_READ64(vmcs, GUEST_IA32_PAT);
    if (entry & VM_ENTRY_LOAD_IA32_EFER) {
        st->efer = VMCS_READ64(vmcs, GUEST_IA32_EFER);
    } else {
        /* SDM Vol. 3C §27.3.2.1: LMA follows the IA-32e mode guest control;
         * LME follows it only when CR0 is loaded with PG = 1, otherwise LME
         * is unmodified. Other bits unchanged. */
        st->efer &= ~X86_EFER_LMA;
        if (entry & VM_ENTRY_IA32E_MODE)
            st->efer |= X86_EFER_LMA;
        if (st->cr0 & X86_CR0_PG) {
            st->efer &= ~X86_EFER_LME;
            if (entry & VM_ENTRY_IA32E_MODE)
                st->efer |= X86_EFER_LME;
        }
    }
    if (entry & VM_ENTRY_LOAD_IA32_PKRS)
        st->pkrs = VMCS_READ64(vmcs, GUEST_IA32_PKRS);
}

static void load_guest_state(const uint8_t *vmcs, struct x86_state *st)
{
    load_guest_regs(vmcs, st);
    for (int s = 0; s < X86_SEG_COUNT; s++)
        load_guest_seg(vmcs, (enum x86_seg)s, &st->seg[s]);
    st->gdtr.base = VMCS_READNATW(vmcs, GUEST_GDTR_BASE);
    st->gdtr.limit = (uint16_t)VMCS_READ32(vmcs, GUEST_GDTR_LIMIT);
    st->idtr.base = VMCS_READNATW(vmcs, GUEST_IDTR_BASE);
    st->idtr.limit = (uint16_t)VMCS_READ32(vmcs, GUEST_IDTR_LIMIT);
    st->rip = VMCS_READNATW(vmcs, GUEST_RIP);
    st->gpr[X86_RSP] = VMCS_READNATW(vmcs, GUEST_RSP);
    st->rflags = VMCS_READNATW(vmcs, GUEST_RFLAGS);
    st->activity = VMCS_READ32(vmcs, GUEST_ACTIVITY_STATE);
    st->interruptibility = VMCS_READ32(vmcs, GUEST_INTERRUPTIBILITY_INFO);
    st->pending_dbg = VMCS_READNATW(vmcs, GUEST_PENDING_DBG_EXCEPTIONS);
}

static bool pae_guest(const struct x86_state *st)
{
    return (st->cr0 & X86_CR0_PG) && (st->cr4 & X86_CR4_PAE) && !(st->efer & X86_EFER_LMA);
}

/*
 * PDPTEs of a PAE guest (§27.3.1.6, §27.3.2.4): from the guest-state fields
 * with EPT (the checks ran already), otherwise from the table at guest CR3.
 */
static bool load_pdptes(const uint8_t *vmcs, struct x86_state *st, const struct vmx_ops *ops)
{
    bool ept = (VMCS_READ32(vmcs, CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) &&
               (VMCS_READ32(vmcs, SECONDARY_VM_EXEC_CONTROL) & SECONDARY_EXEC_ENABLE_EPT);
    if (!pae_guest(st))
        return true;
    if (ept) {
        st->pdpte[0] = VMCS_READ64(vmcs, GUEST_PDPTR0);
        st->pdpte[1] = VMCS_READ64(vmcs, GUEST_PDPTR1);
        st->pdpte[2] = VMCS_READ64(vmcs, GUEST_PDPTR2);
        st->pdpte[3] = VMCS_READ64(vmcs, GUEST_PDPTR3);
        return true;
    }
    return ops->load_pdptes(ops->ctx, st, st->pdpte);
}

/* A VM-entry failure after the host checks: record it and exit to the host (§27.8). */
static void entry_failure(struct vmx *v, uint8_t *vmcs, uint32_t reason, uint32_t qual,
                          struct x86_state *st, const struct vmx_ops *ops, struct vmx_result *r)
{
    uint32_t abort;
    VMCS_WRITE32(vmcs, VM_EXIT_REASON, reason | (uint32_t)VMX_EXIT_REASONS_FAILED_VMENTRY);
    VMCS_WRITENATW(vmcs, EXIT_QUALIFICATION, qual);
    VMCS_WRITE32(vmcs, VM_EXIT_INTR_INFO, 0);
    VMCS_WRITE32(vmcs, IDT_VECTORING_INFO_FIELD, 0);
    r->kind = VMXR_ENTRY_FAIL_EXIT;
    if (!vmx_load_host_state(v, vmcs, st, ops, &abort)) {
        r->kind = VMXR_FAULT;
        r->fault.vector = 0xFE; /* VMX abort: the core shuts down */
        r->error = abort;
    }
}

static bool basic_checks(struct vmx *v, const struct vmx_cpu *cpu, bool launch, uint8_t *vmcs,
                         const struct vmx_ops *ops, struct vmx_result *r)
{
    if (cpu->movss_blocking) {
        vmx_fail(v, ops, r, VMXERR_ENTRY_EVENTS_BLOCKED_BY_MOV_SS);
        return false;
    }
    enum vmcs_launch_state ls = vmcs_region_launch_state(vmcs);
    if (launch && ls != VMCS_LAUNCH_CLEAR) {
        vmx_fail(v, ops, r, VMXERR_VMLAUNCH_NONCLEAR_VMCS);
        return false;
    }
    if (!launch && ls != VMCS_LAUNCH_LAUNCHED) {
        vmx_fail(v, ops, r, VMXERR_VMRESUME_NONLAUNCHED_VMCS);
        return false;
    }
    return true;
}

void vmx_vmentry(struct vmx *v, const struct vmx_cpu *cpu, bool launch, struct x86_state *st,
                 const struct vmx_ops *ops, struct vmx_result *r)
{
    uint8_t *vmcs = vmx_current_vmcs(v, ops);
    struct vmx_mem mem = {.ctx = ops->ctx, .ptr = ops->ptr};
    struct vmx_check_fail *f = &v->last_fail;
    memset(f, 0, sizeof *f);
    if (!vmcs) {
        r->kind = VMXR_FAIL_INVALID;
        return;
    }
    if (!basic_checks(v, cpu, launch, vmcs, ops, r))
        return;
    /* The processor state the checks depend on (§27.2.4 host mode, §27.3.1.5 link pointer). */
    struct vmx_entry_env env = {.host_in_ia32e = cpu->ia32e, .in_smm = false,
                                .current_vmcs = v->current_vmcs, .executive_vmcs = VMX_NO_VMCS};
    if (!vmx_check_controls_env(&v->caps, vmcs, &mem, &env, f))
        return vmx_fail(v, ops, r, VMXERR_ENTRY_INVALID_CONTROL_FIELD);
    if (!vmx_check_host_state_env(&v->caps, vmcs, &env, f))
        return vmx_fail(v, ops, r, VMXERR_ENTRY_INVALID_HOST_STATE_FIELD);
    if (!vmx_check_guest_state_env(&v->caps, vmcs, &mem, &env, f))
        return entry_failure(v, vmcs, EXIT_REASON_INVALID_STATE, f->qualification, st, ops, r);
    struct x86_state host = *st;
    load_guest_state(vmcs, st);
    if (!load_pdptes(vmcs, st, ops)) {
        *st = host;
        f->id = VMX_CHECK_NONE;
        f->stage = VMX_STAGE_GUEST;
        f->qualification = ENTRY_FAIL_PDPTE;
        return entry_failure(v, vmcs, EXIT_REASON_INVALID_STATE, ENTRY_FAIL_PDPTE, st, ops, r);
    }
    /* §27.4 */
    uint32_t bad = vmx_msr_area_load(VMCS_READ64(vmcs, VM_ENTRY_MSR_LOAD_ADDR),
                                     VMCS_READ32(vmcs, VM_ENTRY_MSR_LOAD_COUNT), st, ops);
    if (bad) {
        *st = host;
        return entry_failure(v, vmcs, EXIT_REASON_MSR_LOAD_FAIL, bad, st, ops, r);
    }
    uint32_t info = VMCS_READ32(vmcs, VM_ENTRY_INTR_INFO_FIELD);
    v->inject_pending = (info & INTR_INFO_VALID_MASK) != 0;
    v->inject_info = info;
    v->inject_error = VMCS_READ32(vmcs, VM_ENTRY_EXCEPTION_ERROR_CODE);
    v->inject_len = VMCS_READ32(vmcs, VM_ENTRY_INSTRUCTION_LEN);
    if (launch)
        vmcs_region_set_launch_state(vmcs, VMCS_LAUNCH_LAUNCHED);
    v->non_root = true;
    v->mtf_pending = false;
    r->kind = VMXR_ENTERED;
}
