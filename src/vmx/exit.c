/*
 * VM exits (SDM Vol. 3C chapter 28), in the SDM's order:
 *   §28.2 record exit information
 *   §28.3 save guest state
 *   §28.4 save MSRs (MSR-store area)
 *   §28.5 load host state
 *   §28.6 load MSRs (VM-exit MSR-load area)
 * A failure in §28.4–§28.6 is a VMX abort (§28.7): the abort indicator is
 * written to the VMCS and the processor shuts down.
 */

#include "vmx/vmx_priv.h"

/* VMX-abort indicators — SDM Vol. 3C §28.7 */
#define VMX_ABORT_SAVE_GUEST_MSR_FAIL 1
#define VMX_ABORT_LOAD_HOST_PDPTE_FAIL 2
#define VMX_ABORT_LOAD_HOST_MSR_FAIL 4

static const char *const exit_names[] = {
#define EXIT_REASON(name, num, desc) [num] = #name,
#include "vmx/exit_reasons.def"
#undef EXIT_REASON
};

const char *vmx_exit_reason_name(uint32_t reason)
{
    uint32_t basic = reason & 0xFFFF;
    if (basic >= sizeof exit_names / sizeof exit_names[0] || !exit_names[basic])
        return "UNKNOWN";
    return exit_names[basic];
}

/* §28.2: the exit-information fields. */
static void record_exit_info(uint8_t *vmcs, const struct vmx_exit *ex)
{
    VMCS_WRITE32(vmcs, VM_EXIT_REASON, ex->reason);
    VMCS_WRITENATW(vmcs, EXIT_QUALIFICATION, ex->qualification);
    VMCS_WRITENATW(vmcs, GUEST_LINEAR_ADDRESS, ex->guest_linear);
    VMCS_WRITE64(vmcs, GUEST_PHYSICAL_ADDRESS, ex->guest_physical);
    VMCS_WRITE32(vmcs, VM_EXIT_INTR_INFO, ex->intr_info);
    VMCS_WRITE32(vmcs, VM_EXIT_INTR_ERROR_CODE, ex->intr_error);
    VMCS_WRITE32(vmcs, IDT_VECTORING_INFO_FIELD, ex->idt_vectoring_info);
    VMCS_WRITE32(vmcs, IDT_VECTORING_ERROR_CODE, ex->idt_vectoring_error);
    VMCS_WRITE32(vmcs, VM_EXIT_INSTRUCTION_LEN, ex->insn_len);
    VMCS_WRITE32(vmcs, VMX_INSTRUCTION_INFO, ex->insn_info);
    VMCS_WRITENATW(vmcs, IO_RCX, ex->io_rcx);
    VMCS_WRITENATW(vmcs, IO_RSI, ex->io_rsi);
    VMCS_WRITENATW(vmcs, IO_RDI, ex->io_rdi);
    VMCS_WRITENATW(vmcs, IO_RIP, ex->io_rip);
    /* VM exits clear the valid bit of the VM-entry interruption information (§28.2.5? §25.8.3). */
    VMCS_WRITE32(vmcs, VM_ENTRY_INTR_INFO_FIELD,
                 VMCS_READ32(vmcs, VM_ENTRY_INTR_INFO_FIELD) & ~(uint32_t)INTR_INFO_VALID_MASK);
}

static void save_guest_seg(uint8_t *vmcs, enum x86_seg s, const struct x86_seg_state *g)
{
    vmx_wr(vmcs, vmx_guest_sel(s), g->selector);
    vmx_wr(vmcs, vmx_guest_base(s), g->base);
    vmx_wr(vmcs, vmx_guest_limit(s), g->limit);
    vmx_wr(vmcs, vmx_guest_ar(s), g->ar & 0x1F0FFu);
}

/* §28.3: save the guest state the controls ask for. */
static void save_guest_state(const struct vmx *v, uint8_t *vmcs, const struct x86_state *st)
{
    uint32_t exit = VMCS_READ32(vmcs, VM_EXIT_CONTROLS);
    VMCS_WRITENATW(vmcs, GUEST_CR0, st->cr0);
    VMCS_WRITENATW(vmcs, GUEST_CR3, st->cr3);
    VMCS_WRITENATW(vmcs, GUEST_CR4, st->cr4);
    if (exit & VM_EXIT_SAVE_DEBUG_CONTROLS) {
        VMCS_WRITENATW(vmcs, GUEST_DR7, st->dr7);
        VMCS_WRITE64(vmcs, GUEST_IA32_DEBUGCTL, st->debugctl);
    }
    VMCS_WRITE32(vmcs, GUEST_SYSENTER_CS, (uint32_t)st->sysenter_cs);
    VMCS_WRITENATW(vmcs, GUEST_SYSENTER_ESP, st->sysenter_esp);
    VMCS_WRITENATW(vmcs, GUEST_SYSENTER_EIP, st->sysenter_eip);
    if (exit & VM_EXIT_SAVE_IA32_PAT)
        VMCS_WRITE64(vmcs, GUEST_IA32_PAT, st->pat);
    if (exit & VM_EXIT_SAVE_IA32_EFER)
        VMCS_WRITE64(vmcs, GUEST_IA32_EFER, st->efer);
    /* §28.3.1: IA32_PKRS is saved on every VM exit when the processor supports
     * the 1-setting of the "load IA32_PKRS" VM-entry control. */
    if ((v->caps.true_entry >> 32) & VM_ENTRY_LOAD_IA32_PKRS)
        VMCS_WRITE64(vmcs, GUEST_IA32_PKRS, st->pkrs);
    for (int s = 0; s < X86_SEG_COUNT; s++)
        save_guest_seg(vmcs, (enum x86_seg)s, &st->seg[s]);
    VMCS_WRITENATW(vmcs, GUEST_GDTR_BASE, st->gdtr.base);
    VMCS_WRITE32(vmcs, GUEST_GDTR_LIMIT, st->gdtr.limit);
    VMCS_WRITENATW(vmcs, GUEST_IDTR_BASE, st->idtr.base);
    VMCS_WRITE32(vmcs, GUEST_IDTR_LIMIT, st->idtr.limit);
    VMCS_WRITENATW(vmcs, GUEST_RIP, st->rip);
    VMCS_WRITENATW(vmcs, GUEST_RSP, st->gpr[X86_RSP]);
    VMCS_WRITENATW(vmcs, GUEST_RFLAGS, st->rflags);
    VMCS_WRITE32(vmcs, GUEST_ACTIVITY_STATE, st->activity);
    VMCS_WRITE32(vmcs, GUEST_INTERRUPTIBILITY_INFO, st->interruptibility);
    VMCS_WRITENATW(vmcs, GUEST_PENDING_DBG_EXCEPTIONS, st->pending_dbg);
    /* §28.3.4: EFER.LMA is saved into the IA-32e mode guest entry control. */
    uint32_t entry = VMCS_READ32(vmcs, VM_ENTRY_CONTROLS) & ~(uint32_t)VM_ENTRY_IA32E_MODE;
    if (st->efer & X86_EFER_LMA)
        entry |= VM_ENTRY_IA32E_MODE;
    VMCS_WRITE32(vmcs, VM_ENTRY_CONTROLS, entry);
    bool ept = (VMCS_READ32(vmcs, CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) &&
               (VMCS_READ32(vmcs, SECONDARY_VM_EXEC_CONTROL) & SECONDARY_EXEC_ENABLE_EPT);
    if (ept && (st->cr0 & X86_CR0_PG) && (st->cr4 & X86_CR4_PAE) && !(st->efer & X86_EFER_LMA)) {
        VMCS_WRITE64(vmcs, GUEST_PDPTR0, st->pdpte[0]);
        VMCS_WRITE64(vmcs, GUEST_PDPTR1, st->pdpte[1]);
        VMCS_WRITE64(vmcs, GUEST_PDPTR2, st->pdpte[2]);
        VMCS_WRITE64(vmcs, GUEST_PDPTR3, st->pdpte[3]);
    }
}

/* Host data segment after a VM exit (§28.5.2). */
static struct x86_seg_state host_data_seg(uint16_t sel, uint64_t base)
{
    struct x86_seg_state s = {.selector = sel, .base = base, .limit = 0xFFFFFFFFu,
                              .ar = 0x3u | X86_AR_S | X86_AR_P | X86_AR_DB | X86_AR_G};
    if (sel == 0)
        s.ar = X86_AR_UNUSABLE;
    return s;
}

/* §28.5.1, §28.5.2: control registers, MSRs, segments, RIP/RSP/RFLAGS. */
static void host_regs(const uint8_t *vmcs, struct x86_state *st)
{
    uint32_t exit = VMCS_READ32(vmcs, VM_EXIT_CONTROLS);
    bool l = (exit & VM_EXIT_HOST_ADDR_SPACE_SIZE) != 0;
    /* CR0: host value except that bits the processor keeps fixed stay as they are. */
    st->cr0 = VMCS_READNATW(vmcs, HOST_CR0);
    st->cr3 = VMCS_READNATW(vmcs, HOST_CR3);
    st->cr4 = VMCS_READNATW(vmcs, HOST_CR4);
    if (l)
        st->cr4 |= X86_CR4_PAE;
    st->dr7 = 0x400;
    st->debugctl = 0;
    st->sysenter_cs = VMCS_READ32(vmcs, HOST_IA32_SYSENTER_CS);
    st->sysenter_esp = VMCS_READNATW(vmcs, HOST_IA32_SYSENTER_ESP);
    st->sysenter_eip = VMCS_READNATW(vmcs, HOST_IA32_SYSENTER_EIP);
    if (exit & VM_EXIT_LOAD_IA32_PAT)
        st->pat = VMCS_READ64(vmcs, HOST_IA32_PAT);
    if (exit & VM_EXIT_LOAD_IA32_EFER) {
        st->efer = VMCS_READ64(vmcs, HOST_IA32_EFER);
    } else {
        st->efer &= ~(X86_EFER_LMA | X86_EFER_LME);
        if (l)
            st->efer |= X86_EFER_LMA | X86_EFER_LME;
    }
    if (exit & VM_EXIT_LOAD_IA32_PKRS)
        st->pkrs = VMCS_READ64(vmcs, HOST_IA32_PKRS);
    st->seg[X86_SEG_CS] = (struct x86_seg_state){
        .selector = VMCS_READ16(vmcs, HOST_CS_SELECTOR), .base = 0, .limit = 0xFFFFFFFFu,
        .ar = 0xBu | X86_AR_S | X86_AR_P | X86_AR_G | (l ? X86_AR_L : X86_AR_DB)};
    st->seg[X86_SEG_SS] = host_data_seg(VMCS_READ16(vmcs, HOST_SS_SELECTOR), 0);
    st->seg[X86_SEG_DS] = host_data_seg(VMCS_READ16(vmcs, HOST_DS_SELECTOR), 0);
    st->seg[X86_SEG_ES] = host_data_seg(VMCS_READ16(vmcs, HOST_ES_SELECTOR), 0);
    st->seg[X86_SEG_FS] = host_data_seg(VMCS_READ16(vmcs, HOST_FS_SELECTOR), VMCS_READNATW(vmcs, HOST_FS_BASE));
    st->seg[X86_SEG_GS] = host_data_seg(VMCS_READ16(vmcs, HOST_GS_SELECTOR), VMCS_READNATW(vmcs, HOST_GS_BASE));
    if (st->seg[X86_SEG_FS].ar & X86_AR_UNUSABLE)
        st->seg[X86_SEG_FS].base = VMCS_READNATW(vmcs, HOST_FS_BASE);
    if (st->seg[X86_SEG_GS].ar & X86_AR_UNUSABLE)
        st->seg[X86_SEG_GS].base = VMCS_READNATW(vmcs, HOST_GS_BASE);
    st->seg[X86_SEG_TR] = (struct x86_seg_state){
        .selector = VMCS_READ16(vmcs, HOST_TR_SELECTOR), .base = VMCS_READNATW(vmcs, HOST_TR_BASE),
        .limit = 0x67, .ar = X86_SYS_TSS_BUSY | X86_AR_P};
    st->seg[X86_SEG_LDTR] = (struct x86_seg_state){.ar = X86_AR_UNUSABLE};
    st->gdtr = (struct x86_dtable){.base = VMCS_READNATW(vmcs, HOST_GDTR_BASE), .limit = 0xFFFF};
    st->idtr = (struct x86_dtable){.base = VMCS_READNATW(vmcs, HOST_IDTR_BASE), .limit = 0xFFFF};
    st->rip = VMCS_READNATW(vmcs, HOST_RIP);
    st->gpr[X86_RSP] = VMCS_READNATW(vmcs, HOST_RSP);
    st->rflags = X86_RFLAGS_FIXED;
    st->activity = GUEST_ACTIVITY_ACTIVE;
    st->interruptibility = 0;
    st->pending_dbg = 0;
}

bool vmx_load_host_state(struct vmx *v, uint8_t *vmcs, struct x86_state *st, const struct vmx_ops *ops,
                         uint32_t *abort)
{
    host_regs(vmcs, st);
    v->non_root = false;
    v->inject_pending = false;
    v->mtf_pending = false;
    v->preempt_deadline = 0;
    /* §28.5.4: a host using PAE paging (not IA-32e) reloads its PDPTEs. */
    if ((st->cr0 & X86_CR0_PG) && (st->cr4 & X86_CR4_PAE) && !(st->efer & X86_EFER_LMA) &&
        !ops->load_pdptes(ops->ctx, st, st->pdpte)) {
        *abort = VMX_ABORT_LOAD_HOST_PDPTE_FAIL;
        vmcs_region_set_abort(vmcs, *abort);
        return false;
    }
    if (vmx_msr_area_load(VMCS_READ64(vmcs, VM_EXIT_MSR_LOAD_ADDR), VMCS_READ32(vmcs, VM_EXIT_MSR_LOAD_COUNT), st,
                          ops)) { /* §28.6 */
        *abort = VMX_ABORT_LOAD_HOST_MSR_FAIL;
        vmcs_region_set_abort(vmcs, *abort);
        return false;
    }
    return true;
}

enum vmx_exit_outcome vmx_vmexit(struct vmx *v, const struct vmx_exit *ex, struct x86_state *st,
                                 const struct vmx_ops *ops, uint32_t *abort)
{
    uint8_t *vmcs = vmx_current_vmcs(v, ops);
    record_exit_info(vmcs, ex);
    save_guest_state(v, vmcs, st);
    if (!vmx_msr_area_store(VMCS_READ64(vmcs, VM_EXIT_MSR_STORE_ADDR), VMCS_READ32(vmcs, VM_EXIT_MSR_STORE_COUNT),
                            ops)) { /* §28.4 */
        *abort = VMX_ABORT_SAVE_GUEST_MSR_FAIL;
        vmcs_region_set_abort(vmcs, *abort);
        v->non_root = false;
        return VMX_EXIT_ABORT;
    }
    return vmx_load_host_state(v, vmcs, st, ops, abort) ? VMX_EXIT_OK : VMX_EXIT_ABORT;
}
