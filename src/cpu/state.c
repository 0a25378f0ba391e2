/*
 * Whole-state snapshots for VM transitions: the core's architectural state
 * (struct cpu, Unicorn's registers and segment caches, the MSR file) to and
 * from struct x86_state. Used at stops only (DESIGN §2).
 */
#include <string.h>

#include "cpu/cpu_priv.h"

static const int gpr_ucreg[X86_GPR_COUNT] = {
    UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX,
    UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_RSI, UC_X86_REG_RDI,
    UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15,
};

int cpu_gpr_ucreg(unsigned n) { return n < X86_GPR_COUNT ? gpr_ucreg[n] : UC_X86_REG_INVALID; }

void cpu_save_state(struct cpu *c, struct x86_state *st)
{
    memset(st, 0, sizeof *st);
    cpu_get_gprs(c, st->gpr, &st->rip);
    memcpy(c->gpr_snap, st->gpr, sizeof c->gpr_snap); /* cpu_load_state writes back only what changed */
    c->gpr_snap_valid = true;
    st->rflags = cpu_reg(c, UC_X86_REG_RFLAGS);
    st->cr0 = c->cr0;
    st->cr2 = c->cr2;
    st->cr3 = c->cr3;
    st->cr4 = c->cr4;
    st->cr8 = c->cr8;
    st->dr7 = cpu_reg(c, UC_X86_REG_DR7);
    for (int s = 0; s < X86_SEG_COUNT; s++)
        cpu_get_seg(c, (enum x86_seg)s, &st->seg[s]);
    cpu_get_dtables(c, &st->gdtr, &st->idtr);
    st->efer = c->efer;
    st->pat = msr_get_raw(&c->msrs, MSR_ID_IA32_CR_PAT);
    st->debugctl = msr_get_raw(&c->msrs, MSR_ID_IA32_DEBUGCTLMSR);
    st->pkrs = msr_get_raw(&c->msrs, MSR_ID_IA32_PKRS);
    st->spec_ctrl = msr_get_raw(&c->msrs, MSR_ID_IA32_SPEC_CTRL);
    /* Only WRMSR and VM transitions write them, both through the MSR file. */
    st->sysenter_cs = msr_get_raw(&c->msrs, MSR_ID_IA32_SYSENTER_CS);
    st->sysenter_esp = msr_get_raw(&c->msrs, MSR_ID_IA32_SYSENTER_ESP);
    st->sysenter_eip = msr_get_raw(&c->msrs, MSR_ID_IA32_SYSENTER_EIP);
    memcpy(st->pdpte, c->pdpte, sizeof st->pdpte);
    st->activity = c->activity;
    /* Blocking by STI / MOV SS lives in QEMU's inhibit flag (SDM Vol. 3C Table 25-3). */
    st->interruptibility = c->interruptibility & ~(uint32_t)(GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS);
    if (cpu_inhibited(c))
        st->interruptibility |= cpu_movss_blocking(c) ? GUEST_INTR_STATE_MOV_SS : GUEST_INTR_STATE_STI;
    /* Bit 3: virtual-NMI blocking with "virtual NMIs", else blocking by NMI (Table 25-3). */
    st->interruptibility &= ~(uint32_t)GUEST_INTR_STATE_NMI;
    if (c->vmx.non_root ? (c->vnmi_on ? c->vnmi_blocked : c->nmi_blocked) : c->nmi_blocked)
        st->interruptibility |= GUEST_INTR_STATE_NMI;
    st->pending_dbg = c->pending_dbg;
}

/* SYSENTER_CS/ESP/EIP: the MSR file and the engine's copy, written when they change. */
static void load_sysenter(struct cpu *c, const struct x86_state *st)
{
    static const struct {
        enum msr_id id;
        uint32_t index;
    } m[3] = {{MSR_ID_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_CS},
              {MSR_ID_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_ESP},
              {MSR_ID_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_EIP}};
    const uint64_t v[3] = {st->sysenter_cs, st->sysenter_esp, st->sysenter_eip};
    for (int i = 0; i < 3; i++) {
        if (msr_get_raw(&c->msrs, m[i].id) == v[i])
            continue;
        msr_set_raw(&c->msrs, m[i].id, v[i]);
        uc_x86_msr r = {.rid = m[i].index, .value = v[i]};
        uc_reg_write(c->uc, UC_X86_REG_MSR, &r);
        cpu_ctx_dirty(c);
    }
}

/* Load a whole state (VM entry/exit result) into the engine of the context it enters. */
void cpu_load_state(struct cpu *c, const struct x86_state *st)
{
    bool snap = c->gpr_snap_valid;
    cpu_ctx_enter(c); /* the engine of the context being entered (contexts.c) */
    (void)cpu_load_cr_state(c, st->cr0, st->cr3, st->cr4, st->efer);
    c->cr2 = st->cr2;
    c->cr8 = st->cr8;
    memcpy(c->pdpte, st->pdpte, sizeof c->pdpte);
    /* VM transitions load RSP; the other GPRs are as cpu_save_state found them. */
    for (int i = 0; i < X86_GPR_COUNT; i++)
        if (!snap || st->gpr[i] != c->gpr_snap[i])
            cpu_set_reg(c, gpr_ucreg[i], st->gpr[i]);
    if (st->dr7 != cpu_reg(c, UC_X86_REG_DR7)) /* QEMU re-arms its breakpoints on each write */
        cpu_set_reg(c, UC_X86_REG_DR7, st->dr7);
    cpu_set_reg(c, UC_X86_REG_RFLAGS, st->rflags);
    cpu_load_segs(c, st->seg, 0xFFu, &st->gdtr, &st->idtr);
    msr_set_raw(&c->msrs, MSR_ID_IA32_CR_PAT, st->pat);
    msr_set_raw(&c->msrs, MSR_ID_IA32_DEBUGCTLMSR, st->debugctl);
    msr_set_raw(&c->msrs, MSR_ID_IA32_PKRS, st->pkrs);
    msr_set_raw(&c->msrs, MSR_ID_IA32_SPEC_CTRL, st->spec_ctrl);
    msr_set_raw(&c->msrs, MSR_ID_EFER, st->efer);
    load_sysenter(c, st);
    c->activity = st->activity;
    /* NMI blocking is not part of a state load: VM entry and exit apply their own rules. */
    c->interruptibility = st->interruptibility & ~(uint32_t)(GUEST_INTR_STATE_NMI | GUEST_INTR_STATE_STI |
                                                              GUEST_INTR_STATE_MOV_SS);
    c->pending_dbg = st->pending_dbg;
    cpu_set_reg(c, UC_X86_REG_RIP, st->rip);
    /* Blocking by STI / MOV SS is the transition's to set (SDM Vol. 3C §27.7.1, §28.5). */
    cpu_clear_inhibit(c);
    /* Translation context changes (EPT, VPID, the TLB itself) need a flush even with the same CR3. */
    cpu_ctx_validate(c, st);
    cpu_blocks_retag(c);
}
