/*
 * VM-entry checks on the guest-state area — SDM Vol. 3C §27.3.1: control
 * registers, debug registers and MSRs (§27.3.1.1), segment registers
 * (§27.3.1.2), descriptor-table registers (§27.3.1.3), RIP and RFLAGS
 * (§27.3.1.4), non-register state (§27.3.1.5) and the PDPTE fields with EPT
 * (§27.3.1.6). A failure is a VM exit with reason 33 | bit 31 and the
 * qualification vmx_check_qualification() gives.
 *
 * Canonicality: segment, descriptor-table and MSR bases are checked against
 * the processor's linear-address width (57 with 5-level paging); RIP and SSP
 * are "bits 63:N identical" for that width N, as the SDM words it.
 */
#include "vmx/checks_common.h"

/* ---- Decoded guest state the rules share ---------------------------------- */

struct seg_fields {
    uint32_t sel, base, limit, ar;
};

/* VMCS fields of each segment register, in enum x86_seg order. */
static const struct seg_fields seg_fields[X86_SEG_COUNT] = {
    [X86_SEG_ES] = {GUEST_ES_SELECTOR, GUEST_ES_BASE, GUEST_ES_LIMIT, GUEST_ES_AR_BYTES},
    [X86_SEG_CS] = {GUEST_CS_SELECTOR, GUEST_CS_BASE, GUEST_CS_LIMIT, GUEST_CS_AR_BYTES},
    [X86_SEG_SS] = {GUEST_SS_SELECTOR, GUEST_SS_BASE, GUEST_SS_LIMIT, GUEST_SS_AR_BYTES},
    [X86_SEG_DS] = {GUEST_DS_SELECTOR, GUEST_DS_BASE, GUEST_DS_LIMIT, GUEST_DS_AR_BYTES},
    [X86_SEG_FS] = {GUEST_FS_SELECTOR, GUEST_FS_BASE, GUEST_FS_LIMIT, GUEST_FS_AR_BYTES},
    [X86_SEG_GS] = {GUEST_GS_SELECTOR, GUEST_GS_BASE, GUEST_GS_LIMIT, GUEST_GS_AR_BYTES},
    [X86_SEG_LDTR] = {GUEST_LDTR_SELECTOR, GUEST_LDTR_BASE, GUEST_LDTR_LIMIT, GUEST_LDTR_AR_BYTES},
    [X86_SEG_TR] = {GUEST_TR_SELECTOR, GUEST_TR_BASE, GUEST_TR_LIMIT, GUEST_TR_AR_BYTES},
};

/* The checks ask for the same segments many times: read each once per VM entry. */
static struct guest_seg seg(struct vmx_chk *c, enum x86_seg s)
{
    if (!(c->seg_read & (1u << s))) {
        c->seg[s] = (struct guest_seg){
            .sel = (uint16_t)chk_read(c, seg_fields[s].sel),
            .base = chk_read(c, seg_fields[s].base),
            .limit = (uint32_t)chk_read(c, seg_fields[s].limit),
            .ar = (uint32_t)chk_read(c, seg_fields[s].ar),
        };
        c->seg_read |= (uint8_t)(1u << s);
    }
    return c->seg[s];
}

static bool usable(const struct guest_seg *s)
{
    return !(s->ar & X86_AR_UNUSABLE);
}

static bool ia32e_guest(const struct vmx_chk *c)
{
    return (c->entry & VM_ENTRY_IA32E_MODE) != 0;
}

static bool unrestricted(const struct vmx_chk *c)
{
    return (c->proc2 & SECONDARY_EXEC_UNRESTRICTED_GUEST) != 0;
}

static uint64_t guest_cr0(const struct vmx_chk *c)
{
    return VMCS_READNATW(c->vmcs, GUEST_CR0);
}

static uint64_t guest_rflags(const struct vmx_chk *c)
{
    return VMCS_READNATW(c->vmcs, GUEST_RFLAGS);
}

/* RFLAGS.VM = 1: the guest will be virtual-8086. */
static bool v86(const struct vmx_chk *c)
{
    return (guest_rflags(c) & X86_RFLAGS_VM) != 0;
}

/* ---- §27.3.1.1 control registers, debug registers and MSRs ---------------- */

/* CR0 against the fixed bits (PE and PG exempt with unrestricted guest); PG needs PE. */
static bool guest_cr0_rules(struct vmx_chk *c)
{
    uint64_t cr0 = guest_cr0(c), must1 = c->caps->cr0_fixed0;
    if (unrestricted(c))
        must1 &= ~(X86_CR0_PE | X86_CR0_PG);
    return !CC(c, must1 & ~cr0, GUEST_CR0_FIXED0, cr0) &&
           !CC(c, cr0 & ~c->caps->cr0_fixed1, GUEST_CR0_FIXED1, cr0) &&
           !CC(c, (cr0 & X86_CR0_PG) && !(cr0 & X86_CR0_PE), GUEST_CR0_PG_WITHOUT_PE, cr0);
}

/* CR4 against the fixed bits; CR4.CET requires CR0.WP. */
static bool guest_cr4_rules(struct vmx_chk *c)
{
    uint64_t cr4 = VMCS_READNATW(c->vmcs, GUEST_CR4);
    return !CC(c, c->caps->cr4_fixed0 & ~cr4, GUEST_CR4_FIXED0, cr4) &&
           !CC(c, cr4 & ~c->caps->cr4_fixed1, GUEST_CR4_FIXED1, cr4) &&
           !CC(c, (cr4 & X86_CR4_CET) && !(guest_cr0(c) & X86_CR0_WP), GUEST_CR4_CET_WITHOUT_WP, cr4);
}

/* Load debug controls: IA32_DEBUGCTL sets no reserved bit. */
static bool guest_debugctl(struct vmx_chk *c)
{
    uint64_t dbg = VMCS_READ64(c->vmcs, GUEST_IA32_DEBUGCTL);
    return !CC(c, (c->entry & VM_ENTRY_LOAD_DEBUG_CONTROLS) && (dbg & ~CHK_DEBUGCTL_VALID),
               GUEST_DEBUGCTL_RESERVED, dbg);
}

/* IA-32e mode guest: CR0.PG and CR4.PAE; otherwise CR4.PCIDE 0. */
static bool guest_paging_mode(struct vmx_chk *c)
{
    uint64_t cr0 = guest_cr0(c), cr4 = VMCS_READNATW(c->vmcs, GUEST_CR4);
    bool ia32e = ia32e_guest(c);
    return !CC(c, ia32e && !(cr0 & X86_CR0_PG), GUEST_IA32E_WITHOUT_PG, cr0) &&
           !CC(c, ia32e && !(cr4 & X86_CR4_PAE), GUEST_IA32E_WITHOUT_PAE, cr4) &&
           !CC(c, !ia32e && (cr4 & X86_CR4_PCIDE), GUEST_CR4_PCIDE_NOT_IA32E, cr4);
}

/* CR3: no bit at or above MAXPHYADDR. */
static bool guest_cr3(struct vmx_chk *c)
{
    uint64_t cr3 = VMCS_READNATW(c->vmcs, GUEST_CR3);
    return !CC(c, !chk_paddr_ok(c->caps, cr3), GUEST_CR3_RESERVED, cr3);
}

/* Load debug controls: DR7 bits 63:32 zero. */
static bool guest_dr7(struct vmx_chk *c)
{
    uint64_t dr7 = VMCS_READNATW(c->vmcs, GUEST_DR7);
    return !CC(c, (c->entry & VM_ENTRY_LOAD_DEBUG_CONTROLS) && (dr7 >> 32), GUEST_DR7_HIGH, dr7);
}

/* IA32_SYSENTER_ESP and IA32_SYSENTER_EIP canonical. */
static bool guest_sysenter(struct vmx_chk *c)
{
    uint64_t esp = VMCS_READNATW(c->vmcs, GUEST_SYSENTER_ESP), eip = VMCS_READNATW(c->vmcs, GUEST_SYSENTER_EIP);
    return !CC(c, !chk_canonical(c->caps, esp), GUEST_SYSENTER_ESP_CANONICAL, esp) &&
           !CC(c, !chk_canonical(c->caps, eip), GUEST_SYSENTER_EIP_CANONICAL, eip);
}

/* Load IA32_PERF_GLOBAL_CTRL: no reserved bit. */
static bool guest_perf_global_ctrl(struct vmx_chk *c)
{
    uint64_t v = VMCS_READ64(c->vmcs, GUEST_IA32_PERF_GLOBAL_CTRL);
    return !CC(c, (c->entry & VM_ENTRY_LOAD_IA32_PERF_GLOBAL_CTRL) && (v & ~CHK_PERF_GLOBAL_CTRL_VALID),
               GUEST_PERF_GLOBAL_CTRL_RESERVED, v);
}

/* Load IA32_PAT: a value WRMSR would accept. */
static bool guest_pat(struct vmx_chk *c)
{
    uint64_t pat = VMCS_READ64(c->vmcs, GUEST_IA32_PAT);
    return !CC(c, (c->entry & VM_ENTRY_LOAD_IA32_PAT) && !chk_pat_ok(pat), GUEST_PAT, pat);
}

/* Load IA32_EFER: no reserved bit; LMA = IA-32e mode guest; LME = LMA when CR0.PG = 1. */
static bool guest_efer(struct vmx_chk *c)
{
    uint64_t efer = VMCS_READ64(c->vmcs, GUEST_IA32_EFER);
    bool lma = efer & X86_EFER_LMA, lme = efer & X86_EFER_LME;
    if (!(c->entry & VM_ENTRY_LOAD_IA32_EFER))
        return true;
    return !CC(c, efer & ~CHK_EFER_VALID, GUEST_EFER_RESERVED, efer) &&
           !CC(c, lma != ia32e_guest(c), GUEST_EFER_LMA, efer) &&
           !CC(c, (guest_cr0(c) & X86_CR0_PG) && lme != lma, GUEST_EFER_LME, efer);
}

/* Load IA32_BNDCFGS: bits 11:2 zero, bits 63:12 a canonical address. */
static bool guest_bndcfgs(struct vmx_chk *c)
{
    uint64_t v = VMCS_READ64(c->vmcs, GUEST_BNDCFGS);
    if (!(c->entry & VM_ENTRY_LOAD_BNDCFGS))
        return true;
    return !CC(c, v & BNDCFGS_RESERVED_11_2, GUEST_BNDCFGS_RESERVED, v) &&
           !CC(c, !chk_canonical(c->caps, v & BNDCFGS_BASE), GUEST_BNDCFGS_CANONICAL, v);
}

/* Load IA32_RTIT_CTL: no reserved bit. */
static bool guest_rtit_ctl(struct vmx_chk *c)
{
    uint64_t v = VMCS_READ64(c->vmcs, GUEST_IA32_RTIT_CTL);
    return !CC(c, (c->entry & VM_ENTRY_LOAD_IA32_RTIT_CTL) && (v & ~CHK_RTIT_CTL_VALID), GUEST_RTIT_CTL_RESERVED,
               v);
}

/* Load CET state: IA32_S_CET valid, SSP 4-byte aligned with bits 63:N identical, SSP table canonical. */
static bool guest_cet_state(struct vmx_chk *c)
{
    uint64_t s_cet = VMCS_READNATW(c->vmcs, GUEST_S_CET), ssp = VMCS_READNATW(c->vmcs, GUEST_SSP);
    uint64_t tbl = VMCS_READNATW(c->vmcs, GUEST_INTR_SSP_TABLE);
    bool s_cet_ok = !(s_cet & CET_RESERVED_9_6) &&
                    (s_cet & (CET_SUPPRESS | CET_TRACKER)) != (CET_SUPPRESS | CET_TRACKER);
    if (!(c->entry & VM_ENTRY_LOAD_CET_STATE))
        return true;
    return !CC(c, !s_cet_ok, GUEST_S_CET_RESERVED, s_cet) && !CC(c, ssp & 3, GUEST_SSP_ALIGN, ssp) &&
           !CC(c, !x86_is_canonical(ssp, chk_la_width(c->caps) + 1), GUEST_SSP_CANONICAL, ssp) &&
           !CC(c, !chk_canonical(c->caps, tbl), GUEST_SSP_TABLE_CANONICAL, tbl);
}

/* Load IA32_LBR_CTL: no reserved bit. */
static bool guest_lbr_ctl(struct vmx_chk *c)
{
    uint64_t v = VMCS_READ64(c->vmcs, GUEST_IA32_LBR_CTL);
    return !CC(c, (c->entry & VM_ENTRY_LOAD_IA32_LBR_CTL) && (v & ~CHK_LBR_CTL_VALID), GUEST_LBR_CTL_RESERVED, v);
}

/* Load IA32_PKRS: bits 63:32 zero. */
static bool guest_pkrs(struct vmx_chk *c)
{
    uint64_t v = VMCS_READ64(c->vmcs, GUEST_IA32_PKRS);
    return !CC(c, (c->entry & VM_ENTRY_LOAD_IA32_PKRS) && (v >> 32), GUEST_PKRS_RESERVED, v);
}

/* ---- §27.3.1.2 segment registers ------------------------------------------ */

/* Per-register check ids of the rules that apply to CS, SS, DS, ES, FS, GS alike. */
struct seg_ids {
    enum vmx_check_id v86_base, v86_limit, v86_ar;
    enum vmx_check_id type, s, dpl, p, rsvd, g; /* data segments (DS, ES, FS, GS) */
};

#define SEG_V86_IDS(S) VMX_CHECK_GUEST_##S##_V86_BASE, VMX_CHECK_GUEST_##S##_V86_LIMIT, VMX_CHECK_GUEST_##S##_V86_AR
#define SEG_AR_IDS(S)                                                                                        \
    VMX_CHECK_GUEST_##S##_AR_TYPE, VMX_CHECK_GUEST_##S##_AR_S, VMX_CHECK_GUEST_##S##_AR_DPL,                 \
        VMX_CHECK_GUEST_##S##_AR_P, VMX_CHECK_GUEST_##S##_AR_RESERVED, VMX_CHECK_GUEST_##S##_AR_G

static const struct seg_ids seg_ids[X86_SEG_LDTR] = {
    [X86_SEG_ES] = {SEG_V86_IDS(ES), SEG_AR_IDS(ES)},
    [X86_SEG_CS] = {SEG_V86_IDS(CS), VMX_CHECK_NONE, VMX_CHECK_NONE, VMX_CHECK_NONE, VMX_CHECK_NONE,
                    VMX_CHECK_NONE, VMX_CHECK_NONE},
    [X86_SEG_SS] = {SEG_V86_IDS(SS), VMX_CHECK_NONE, VMX_CHECK_NONE, VMX_CHECK_NONE, VMX_CHECK_NONE,
                    VMX_CHECK_NONE, VMX_CHECK_NONE},
    [X86_SEG_DS] = {SEG_V86_IDS(DS), SEG_AR_IDS(DS)},
    [X86_SEG_FS] = {SEG_V86_IDS(FS), SEG_AR_IDS(FS)},
    [X86_SEG_GS] = {SEG_V86_IDS(GS), SEG_AR_IDS(GS)},
};

/* G consistent with the limit: limit[11:0] all ones if G = 1, limit[31:20] zero if G = 0. */
static bool limit_g_ok(uint32_t limit, uint32_t ar)
{
    return (ar & X86_AR_G) ? (limit & 0xFFFu) == 0xFFFu : (limit & 0xFFF00000u) == 0;
}

static unsigned ar_type(uint32_t ar)
{
    return ar & X86_AR_TYPE_MASK;
}

/* Selectors: TR.TI 0; LDTR.TI 0 if usable; SS.RPL = CS.RPL unless virtual-8086 or unrestricted guest. */
static bool seg_selectors(struct vmx_chk *c)
{
    struct guest_seg tr = seg(c, X86_SEG_TR), ldtr = seg(c, X86_SEG_LDTR);
    struct guest_seg cs = seg(c, X86_SEG_CS), ss = seg(c, X86_SEG_SS);
    return !CC(c, X86_SEL_TI(tr.sel), GUEST_TR_SEL_TI, tr.sel) &&
           !CC(c, usable(&ldtr) && X86_SEL_TI(ldtr.sel), GUEST_LDTR_SEL_TI, ldtr.sel) &&
           !CC(c, !v86(c) && !unrestricted(c) && X86_SEL_RPL(ss.sel) != X86_SEL_RPL(cs.sel), GUEST_SS_SEL_RPL,
               ss.sel);
}

/* Virtual-8086: every base of CS..GS is its selector shifted left 4 bits. */
static bool seg_v86_bases(struct vmx_chk *c)
{
    for (enum x86_seg s = X86_SEG_ES; v86(c) && s <= X86_SEG_GS; s++) {
        struct guest_seg g = seg(c, s);
        if (g.base != (uint64_t)g.sel << 4)
            return !chk_fail(c, seg_ids[s].v86_base, g.base);
    }
    return true;
}

/* TR, FS, GS (and usable LDTR) bases canonical; CS and usable SS, DS, ES bases below 4 GByte. */
static bool seg_bases(struct vmx_chk *c)
{
    struct guest_seg tr = seg(c, X86_SEG_TR), fs = seg(c, X86_SEG_FS), gs = seg(c, X86_SEG_GS);
    struct guest_seg ldtr = seg(c, X86_SEG_LDTR), cs = seg(c, X86_SEG_CS), ss = seg(c, X86_SEG_SS);
    struct guest_seg ds = seg(c, X86_SEG_DS), es = seg(c, X86_SEG_ES);
    return !CC(c, !chk_canonical(c->caps, tr.base), GUEST_TR_BASE_CANONICAL, tr.base) &&
           !CC(c, !chk_canonical(c->caps, fs.base), GUEST_FS_BASE_CANONICAL, fs.base) &&
           !CC(c, !chk_canonical(c->caps, gs.base), GUEST_GS_BASE_CANONICAL, gs.base) &&
           !CC(c, usable(&ldtr) && !chk_canonical(c->caps, ldtr.base), GUEST_LDTR_BASE_CANONICAL, ldtr.base) &&
           !CC(c, cs.base >> 32, GUEST_CS_BASE_HIGH, cs.base) &&
           !CC(c, usable(&ss) && (ss.base >> 32), GUEST_SS_BASE_HIGH, ss.base) &&
           !CC(c, usable(&ds) && (ds.base >> 32), GUEST_DS_BASE_HIGH, ds.base) &&
           !CC(c, usable(&es) && (es.base >> 32), GUEST_ES_BASE_HIGH, es.base);
}

/* Virtual-8086: every limit of CS..GS is 0000FFFFH and every access-rights field 000000F3H. */
static bool seg_v86_limits_ar(struct vmx_chk *c)
{
    for (enum x86_seg s = X86_SEG_ES; v86(c) && s <= X86_SEG_GS; s++)
        if (seg(c, s).limit != 0xFFFFu)
            return !chk_fail(c, seg_ids[s].v86_limit, seg(c, s).limit);
    for (enum x86_seg s = X86_SEG_ES; v86(c) && s <= X86_SEG_GS; s++)
        if (seg(c, s).ar != 0xF3u)
            return !chk_fail(c, seg_ids[s].v86_ar, seg(c, s).ar);
    return true;
}

/* CS DPL: 0 for type 3; = SS.DPL for non-conforming code; <= SS.DPL for conforming code. */
static bool cs_dpl_ok(uint32_t cs_ar, uint32_t ss_ar)
{
    unsigned type = ar_type(cs_ar), dpl = x86_ar_dpl(cs_ar), ss_dpl = x86_ar_dpl(ss_ar);
    if (type == 3)
        return dpl == 0;
    if (type == 9 || type == 11)
        return dpl == ss_dpl;
    return dpl <= ss_dpl; /* 13, 15; other types fail the type check first */
}

/* CS access rights (not virtual-8086): type, S, DPL, P, reserved bits, D/B with L, G. */
static bool cs_access_rights(struct vmx_chk *c)
{
    struct guest_seg cs = seg(c, X86_SEG_CS), ss = seg(c, X86_SEG_SS);
    unsigned type = ar_type(cs.ar);
    bool type_ok = type == 9 || type == 11 || type == 13 || type == 15 || (type == 3 && unrestricted(c));
    if (v86(c))
        return true;
    return !CC(c, !type_ok, GUEST_CS_AR_TYPE, cs.ar) && !CC(c, !(cs.ar & X86_AR_S), GUEST_CS_AR_S, cs.ar) &&
           !CC(c, !cs_dpl_ok(cs.ar, ss.ar), GUEST_CS_AR_DPL, cs.ar) &&
           !CC(c, !(cs.ar & X86_AR_P), GUEST_CS_AR_P, cs.ar) &&
           !CC(c, cs.ar & AR_RESERVED, GUEST_CS_AR_RESERVED, cs.ar) &&
           !CC(c, ia32e_guest(c) && (cs.ar & X86_AR_L) && (cs.ar & X86_AR_DB), GUEST_CS_AR_DB, cs.ar) &&
           !CC(c, !limit_g_ok(cs.limit, cs.ar), GUEST_CS_AR_G, cs.limit);
}

/*
 * SS access rights (not virtual-8086). Type, S, P, reserved bits and G
 * only if usable; the DPL rules always (SS.DPL is the CPL after VM entry).
 */
static bool ss_access_rights(struct vmx_chk *c)
{
    struct guest_seg ss = seg(c, X86_SEG_SS), cs = seg(c, X86_SEG_CS);
    bool use = usable(&ss);
    unsigned type = ar_type(ss.ar), dpl = x86_ar_dpl(ss.ar);
    bool dpl_zero = ar_type(cs.ar) == 3 || !(guest_cr0(c) & X86_CR0_PE);
    if (v86(c))
        return true;
    return !CC(c, use && type != 3 && type != 7, GUEST_SS_AR_TYPE, ss.ar) &&
           !CC(c, use && !(ss.ar & X86_AR_S), GUEST_SS_AR_S, ss.ar) &&
           !CC(c, !unrestricted(c) && dpl != X86_SEL_RPL(ss.sel), GUEST_SS_AR_DPL_RPL, ss.ar) &&
           !CC(c, dpl_zero && dpl != 0, GUEST_SS_AR_DPL_ZERO, ss.ar) &&
           !CC(c, use && !(ss.ar & X86_AR_P), GUEST_SS_AR_P, ss.ar) &&
           !CC(c, use && (ss.ar & AR_RESERVED), GUEST_SS_AR_RESERVED, ss.ar) &&
           !CC(c, use && !limit_g_ok(ss.limit, ss.ar), GUEST_SS_AR_G, ss.limit);
}

/* DS, ES, FS or GS type: accessed; readable if code. */
static bool data_type_ok(uint32_t ar)
{
    unsigned type = ar_type(ar);
    return (type & X86_AR_TYPE_ACCESSED) && (!(type & X86_AR_TYPE_CODE) || (type & X86_AR_TYPE_WRITABLE));
}

/* One usable data-segment register (not virtual-8086). */
static bool data_seg_access_rights(struct vmx_chk *c, enum x86_seg s)
{
    struct guest_seg g = seg(c, s);
    const struct seg_ids *id = &seg_ids[s];
    bool dpl_low = !unrestricted(c) && ar_type(g.ar) <= 11 && x86_ar_dpl(g.ar) < X86_SEL_RPL(g.sel);
    if (!usable(&g))
        return true;
    if (!data_type_ok(g.ar))
        return !chk_fail(c, id->type, g.ar);
    if (!(g.ar & X86_AR_S))
        return !chk_fail(c, id->s, g.ar);
    if (dpl_low)
        return !chk_fail(c, id->dpl, g.ar);
    if (!(g.ar & X86_AR_P))
        return !chk_fail(c, id->p, g.ar);
    if (g.ar & AR_RESERVED)
        return !chk_fail(c, id->rsvd, g.ar);
    if (!limit_g_ok(g.limit, g.ar))
        return !chk_fail(c, id->g, g.limit);
    return true;
}

/* DS, ES, FS, GS access rights, in the SDM's order of registers. */
static bool data_segs_access_rights(struct vmx_chk *c)
{
    static const enum x86_seg order[] = {X86_SEG_DS, X86_SEG_ES, X86_SEG_FS, X86_SEG_GS};
    for (size_t i = 0; !v86(c) && i < sizeof(order) / sizeof(order[0]); i++)
        if (!data_seg_access_rights(c, order[i]))
            return false;
    return true;
}

/* TR: busy TSS (16-bit only outside IA-32e mode), S 0, P 1, reserved bits 0, G, usable. */
static bool tr_access_rights(struct vmx_chk *c)
{
    struct guest_seg tr = seg(c, X86_SEG_TR);
    unsigned type = ar_type(tr.ar);
    bool type_ok = type == X86_SYS_TSS_BUSY || (type == 3 && !ia32e_guest(c));
    return !CC(c, !type_ok, GUEST_TR_AR_TYPE, tr.ar) && !CC(c, tr.ar & X86_AR_S, GUEST_TR_AR_S, tr.ar) &&
           !CC(c, !(tr.ar & X86_AR_P), GUEST_TR_AR_P, tr.ar) &&
           !CC(c, tr.ar & AR_RESERVED, GUEST_TR_AR_RESERVED, tr.ar) &&
           !CC(c, !limit_g_ok(tr.limit, tr.ar), GUEST_TR_AR_G, tr.limit) &&
           !CC(c, !usable(&tr), GUEST_TR_AR_UNUSABLE, tr.ar);
}

/* LDTR (if usable): type 2, S 0, P 1, reserved bits 0, G. */
static bool ldtr_access_rights(struct vmx_chk *c)
{
    struct guest_seg l = seg(c, X86_SEG_LDTR);
    if (!usable(&l))
        return true;
    return !CC(c, ar_type(l.ar) != X86_SYS_LDT, GUEST_LDTR_AR_TYPE, l.ar) &&
           !CC(c, l.ar & X86_AR_S, GUEST_LDTR_AR_S, l.ar) && !CC(c, !(l.ar & X86_AR_P), GUEST_LDTR_AR_P, l.ar) &&
           !CC(c, l.ar & AR_RESERVED, GUEST_LDTR_AR_RESERVED, l.ar) &&
           !CC(c, !limit_g_ok(l.limit, l.ar), GUEST_LDTR_AR_G, l.limit);
}

/* ---- §27.3.1.3 descriptor-table registers --------------------------------- */

/* GDTR and IDTR: canonical bases, limits below 64 KByte. */
static bool descriptor_tables(struct vmx_chk *c)
{
    uint64_t gb = VMCS_READNATW(c->vmcs, GUEST_GDTR_BASE), ib = VMCS_READNATW(c->vmcs, GUEST_IDTR_BASE);
    uint32_t gl = VMCS_READ32(c->vmcs, GUEST_GDTR_LIMIT), il = VMCS_READ32(c->vmcs, GUEST_IDTR_LIMIT);
    return !CC(c, !chk_canonical(c->caps, gb), GUEST_GDTR_BASE_CANONICAL, gb) &&
           !CC(c, !chk_canonical(c->caps, ib), GUEST_IDTR_BASE_CANONICAL, ib) &&
           !CC(c, gl >> 16, GUEST_GDTR_LIMIT, gl) && !CC(c, il >> 16, GUEST_IDTR_LIMIT, il);
}

/* ---- §27.3.1.4 RIP and RFLAGS ---------------------------------------------- */

/* RIP: below 4 GByte unless entering 64-bit mode; there bits 63:N identical. */
static bool guest_rip(struct vmx_chk *c)
{
    uint64_t rip = VMCS_READNATW(c->vmcs, GUEST_RIP);
    bool mode64 = ia32e_guest(c) && (seg(c, X86_SEG_CS).ar & X86_AR_L);
    if (!mode64)
        return !CC(c, rip >> 32, GUEST_RIP_HIGH, rip);
    return !CC(c, !x86_is_canonical(rip, chk_la_width(c->caps) + 1), GUEST_RIP_CANONICAL, rip);
}

/* RFLAGS: reserved bits; VM only for a protected-mode non-IA-32e guest; IF to inject an external interrupt. */
static bool guest_rflags_rules(struct vmx_chk *c)
{
    uint64_t rf = guest_rflags(c);
    uint32_t info = chk_injection(c);
    bool ext_intr = info && chk_intr_type(info) == INTR_TYPE_EXT_INTR;
    return !CC(c, (rf & RFLAGS_RESERVED) || !(rf & X86_RFLAGS_FIXED), GUEST_RFLAGS_RESERVED, rf) &&
           !CC(c, (rf & X86_RFLAGS_VM) && (ia32e_guest(c) || !(guest_cr0(c) & X86_CR0_PE)), GUEST_RFLAGS_VM, rf) &&
           !CC(c, ext_intr && !(rf & X86_RFLAGS_IF), GUEST_RFLAGS_IF, rf);
}

/* ---- §27.3.1.5 non-register state ------------------------------------------ */

static uint32_t activity(const struct vmx_chk *c)
{
    return VMCS_READ32(c->vmcs, GUEST_ACTIVITY_STATE);
}

static uint32_t interruptibility(const struct vmx_chk *c)
{
    return VMCS_READ32(c->vmcs, GUEST_INTERRUPTIBILITY_INFO);
}

/* Active always; HLT, shutdown, wait-for-SIPI when IA32_VMX_MISC[6], [7], [8]. */
static bool activity_supported(const struct vmx_caps *caps, uint32_t act)
{
    return act == GUEST_ACTIVITY_ACTIVE ||
           (act <= GUEST_ACTIVITY_WAIT_SIPI && ((caps->misc >> (VMX_MISC_ACTIVITY_SHIFT - 1 + act)) & 1));
}

/* Events an inactive state lets through: HLT external interrupt, NMI, #DB, #MC, MTF; shutdown NMI, #MC. */
static bool injection_allowed(uint32_t act, uint32_t info)
{
    unsigned type = chk_intr_type(info), vec = chk_intr_vector(info);
    bool nmi = type == INTR_TYPE_NMI_INTR;
    bool mc = type == INTR_TYPE_HARD_EXCEPTION && vec == X86_MC;
    switch (act) {
    case GUEST_ACTIVITY_ACTIVE:
        return true;
    case GUEST_ACTIVITY_HLT:
        return type == INTR_TYPE_EXT_INTR || nmi || mc ||
               (type == INTR_TYPE_HARD_EXCEPTION && vec == X86_DB) || (type == INTR_TYPE_OTHER_EVENT && vec == 0);
    case GUEST_ACTIVITY_SHUTDOWN:
        return nmi || mc;
    default:
        return false;
    }
}

/*
 * Activity state: supported; HLT needs SS.DPL 0; STI/MOV-SS blocking needs
 * active; no injection the state blocks; no wait-for-SIPI into SMM.
 */
static bool guest_activity(struct vmx_chk *c)
{
    uint32_t act = activity(c), info = chk_injection(c);
    uint32_t ss_ar = (uint32_t)chk_read(c, GUEST_SS_AR_BYTES);
    bool blocking = interruptibility(c) & (GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS);
    return !CC(c, !activity_supported(c->caps, act), GUEST_ACTIVITY_STATE, act) &&
           !CC(c, act == GUEST_ACTIVITY_HLT && x86_ar_dpl(ss_ar) != 0, GUEST_ACTIVITY_HLT_SS_DPL, ss_ar) &&
           !CC(c, blocking && act != GUEST_ACTIVITY_ACTIVE, GUEST_ACTIVITY_BLOCKING, act) &&
           !CC(c, info && !injection_allowed(act, info), GUEST_ACTIVITY_INJECTION, info) &&
           !CC(c, (c->entry & VM_ENTRY_SMM) && act == GUEST_ACTIVITY_WAIT_SIPI, GUEST_ACTIVITY_SIPI_SMM, act);
}

/* Interruptibility: reserved bits, STI vs MOV-SS, STI vs IF, blocking vs injected external interrupt or NMI. */
static bool guest_interruptibility_blocking(struct vmx_chk *c)
{
    uint32_t intr = interruptibility(c), info = chk_injection(c);
    bool sti = intr & GUEST_INTR_STATE_STI, movss = intr & GUEST_INTR_STATE_MOV_SS;
    bool ext = info && chk_intr_type(info) == INTR_TYPE_EXT_INTR;
    bool nmi = info && chk_intr_type(info) == INTR_TYPE_NMI_INTR;
    return !CC(c, intr & GUEST_INTR_STATE_RESERVED, GUEST_INTR_RESERVED, intr) &&
           !CC(c, sti && movss, GUEST_INTR_STI_AND_MOVSS, intr) &&
           !CC(c, sti && !(guest_rflags(c) & X86_RFLAGS_IF), GUEST_INTR_STI_IF0, intr) &&
           !CC(c, ext && (sti || movss), GUEST_INTR_EXT_INTR_BLOCKED, intr) &&
           !CC(c, nmi && movss, GUEST_INTR_NMI_MOVSS, intr);
}

/*
 * Interruptibility: SMI blocking only in SMM and required for entry to SMM;
 * no NMI injection under STI blocking (model-specific; vmxsim enforces it,
 * exit qualification 3); no NMI injection under virtual-NMI blocking;
 * enclave interruption needs SGX (absent from every vmxsim model).
 */
static bool guest_interruptibility_special(struct vmx_chk *c)
{
    uint32_t intr = interruptibility(c), info = chk_injection(c);
    bool nmi = info && chk_intr_type(info) == INTR_TYPE_NMI_INTR;
    bool smi = intr & GUEST_INTR_STATE_SMI;
    return !CC(c, smi && !c->env.in_smm, GUEST_INTR_SMI_OUTSIDE_SMM, intr) &&
           !CC(c, (c->entry & VM_ENTRY_SMM) && !smi, GUEST_INTR_SMI_ENTRY_SMM, intr) &&
           !CC(c, nmi && (intr & GUEST_INTR_STATE_STI), GUEST_INTR_NMI_STI, intr) &&
           !CC(c, nmi && (c->pin & PIN_BASED_VIRTUAL_NMIS) && (intr & GUEST_INTR_STATE_NMI), GUEST_INTR_VNMI_BLOCKED,
               intr) &&
           !CC(c, intr & GUEST_INTR_STATE_ENCLAVE_INTR, GUEST_INTR_ENCLAVE, intr);
}

/*
 * Pending debug exceptions: reserved bits; RTM (bit 16) unsupported; with
 * STI or MOV-SS blocking or HLT, BS mirrors "single-step pending":
 * RFLAGS.TF = 1 and IA32_DEBUGCTL.BTF = 0.
 */
static bool guest_pending_debug(struct vmx_chk *c)
{
    uint64_t pd = VMCS_READNATW(c->vmcs, GUEST_PENDING_DBG_EXCEPTIONS);
    bool tf = guest_rflags(c) & X86_RFLAGS_TF;
    bool btf = VMCS_READ64(c->vmcs, GUEST_IA32_DEBUGCTL) & CHK_DEBUGCTL_BTF;
    bool checked = (interruptibility(c) & (GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS)) ||
                   activity(c) == GUEST_ACTIVITY_HLT;
    bool single_step = tf && !btf;
    return !CC(c, pd & PENDING_DBG_RESERVED, GUEST_PENDING_DBG_RESERVED, pd) &&
           !CC(c, pd & PENDING_DBG_RTM, GUEST_PENDING_DBG_RTM, pd) &&
           !CC(c, checked && single_step && !(pd & PENDING_DBG_BS), GUEST_PENDING_DBG_BS_SET, pd) &&
           !CC(c, checked && !single_step && (pd & PENDING_DBG_BS), GUEST_PENDING_DBG_BS_CLEAR, pd);
}

/*
 * First 4 bytes of the region the link pointer references. A region that is
 * not ordinary RAM reads as all ones, which no revision identifier matches.
 */
static uint32_t link_region_header(const struct vmx_chk *c, uint64_t pa)
{
    const uint8_t *p = (c->mem && c->mem->ptr) ? c->mem->ptr(c->mem->ctx, pa, 4) : NULL;
    if (!p)
        return 0xFFFFFFFFu;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * VMCS link pointer other than FFFFFFFF_FFFFFFFFH: 4-KByte aligned, within
 * MAXPHYADDR, referencing a region with our revision identifier and a
 * shadow-VMCS indicator equal to "VMCS shadowing"; not the current VMCS
 * (outside SMM or entering SMM), not the executive VMCS (in SMM otherwise).
 */
static bool guest_link_pointer(struct vmx_chk *c)
{
    uint64_t lp = VMCS_READ64(c->vmcs, VMCS_LINK_POINTER);
    uint32_t hdr, rev = (uint32_t)(c->caps->basic & VMX_BASIC_REVISION_MASK);
    bool shadow = c->proc2 & SECONDARY_EXEC_SHADOW_VMCS;
    bool smm_stay = c->env.in_smm && !(c->entry & VM_ENTRY_SMM);
    if (lp == VMX_ENTRY_ENV_NO_VMCS)
        return true;
    if (CC(c, lp & CHK_PAGE_MASK, GUEST_LINK_PTR_ALIGN, lp) ||
        CC(c, !chk_paddr_ok(c->caps, lp), GUEST_LINK_PTR_WIDTH, lp))
        return false;
    hdr = link_region_header(c, lp);
    return !CC(c, (hdr & VMCS_REVISION_MASK) != rev, GUEST_LINK_PTR_REVISION, hdr) &&
           !CC(c, !(hdr & VMCS_SHADOW_INDICATOR) != !shadow, GUEST_LINK_PTR_SHADOW, hdr) &&
           !CC(c, !smm_stay && lp == c->env.current_vmcs, GUEST_LINK_PTR_CURRENT, lp) &&
           !CC(c, smm_stay && lp == c->env.executive_vmcs, GUEST_LINK_PTR_EXECUTIVE, lp);
}

/* ---- §27.3.1.6 PDPTEs ------------------------------------------------------- */

/*
 * A PAE-paging guest (CR0.PG, CR4.PAE, not IA-32e) with EPT takes its
 * PDPTEs from the GUEST_PDPTRn fields: a present one sets no reserved bit.
 * Without EPT they are read from guest memory while guest state is loaded.
 */
static bool guest_pdptes(struct vmx_chk *c)
{
    static const enum vmx_check_id ids[4] = {VMX_CHECK_GUEST_PDPTE0_RESERVED, VMX_CHECK_GUEST_PDPTE1_RESERVED,
                                             VMX_CHECK_GUEST_PDPTE2_RESERVED, VMX_CHECK_GUEST_PDPTE3_RESERVED};
    uint64_t cr4 = VMCS_READNATW(c->vmcs, GUEST_CR4);
    uint64_t rsvd = PAE_PDPTE_RESERVED_LOW | (c->caps->maxphyaddr < 64 ? GENMASK64(63, c->caps->maxphyaddr) : 0);
    bool pae = (guest_cr0(c) & X86_CR0_PG) && (cr4 & X86_CR4_PAE) && !ia32e_guest(c);
    if (!pae || !(c->proc2 & SECONDARY_EXEC_ENABLE_EPT))
        return true;
    for (unsigned i = 0; i < 4; i++) {
        uint64_t e = chk_read(c, GUEST_PDPTR0 + 2 * i);
        if ((e & PAE_PDPTE_P) && (e & rsvd))
            return !chk_fail(c, ids[i], e);
    }
    return true;
}

static const chk_step guest_steps[] = {
    /* §27.3.1.1 */
    guest_cr0_rules, guest_cr4_rules, guest_debugctl, guest_paging_mode, guest_cr3, guest_dr7, guest_sysenter,
    guest_perf_global_ctrl, guest_pat, guest_efer, guest_bndcfgs, guest_rtit_ctl, guest_cet_state, guest_lbr_ctl,
    guest_pkrs,
    /* §27.3.1.2 */
    seg_selectors, seg_v86_bases, seg_bases, seg_v86_limits_ar, cs_access_rights, ss_access_rights,
    data_segs_access_rights, tr_access_rights, ldtr_access_rights,
    /* §27.3.1.3 */
    descriptor_tables,
    /* §27.3.1.4 */
    guest_rip, guest_rflags_rules,
    /* §27.3.1.5 */
    guest_activity, guest_interruptibility_blocking, guest_interruptibility_special, guest_pending_debug,
    guest_link_pointer,
    /* §27.3.1.6 */
    guest_pdptes,
};

bool vmx_check_guest_state_env(const struct vmx_caps *caps, const uint8_t *vmcs, const struct vmx_mem *mem,
                               const struct vmx_entry_env *env, struct vmx_check_fail *fail)
{
    struct vmx_chk c;
    chk_init(&c, caps, vmcs, mem, env, fail);
    return CHK_RUN(&c, guest_steps);
}

bool vmx_check_guest_state(const struct vmx_caps *caps, const uint8_t *vmcs, const struct vmx_mem *mem,
                           struct vmx_check_fail *fail)
{
    return vmx_check_guest_state_env(caps, vmcs, mem, NULL, fail);
}
