/*
 * MSRs with semantics beyond "reserved mask + stored value": model-dependent
 * reserved bits, computed read-only values, locks and memory-type checks.
 * Each handler is one msr_handler_fn (msr.h) named in msr_table.def.
 */
#include "msr/msr_handlers.h"

/* Bits at and above MAXPHYADDR (SDM Vol. 3A §4.1.4: physical-address width). */
static uint64_t above_maxphyaddr(const struct msr_file *f)
{
    unsigned w = f->model->maxphyaddr;

    return w >= 64 ? 0 : GENMASK64(63, w);
}

/* x2APIC mode of an IA32_APIC_BASE value: 0 disabled, 1 xAPIC, 2 invalid, 3 x2APIC. */
static unsigned apic_mode(uint64_t v)
{
    return (v & MSR_IA32_APICBASE_ENABLE ? 1u : 0u) | (v & MSR_IA32_APICBASE_EXTD ? 2u : 0u);
}

/*
 * IA32_APIC_BASE — SDM Vol. 3A §11.4.4 and §11.12.5 (x2APIC state
 * transitions): base above MAXPHYADDR and EXTD without x2APIC are reserved;
 * EN=0,EXTD=1 is invalid; x2APIC→xAPIC and disabled→x2APIC are illegal
 * transitions (#GP). BSP is a status bit: writes leave it unchanged.
 */
MSR_HANDLER(msr_apic_base)
{
    uint64_t rsvd = above_maxphyaddr(f);
    unsigned from = apic_mode(f->val[id]), to;

    if (op != MSR_OP_WRITE)
        return MSR_OK;
    if (!model_has(f->model, FEAT_X2APIC))
        rsvd |= MSR_IA32_APICBASE_EXTD;
    to = apic_mode(*val);
    if ((*val & rsvd) || to == 2 || (from == 3 && to == 1) || (from == 0 && to == 3))
        return MSR_GP;
    *val = (*val & ~MSR_IA32_APICBASE_BSP) | (f->val[id] & MSR_IA32_APICBASE_BSP);
    return MSR_OK;
}

/*
 * IA32_FEATURE_CONTROL — SDM Vol. 4 Table 2-2, Vol. 3C §24.7: "When set,
 * locks this MSR from being written; writes to this bit will result in
 * GP(0)": once locked every WRMSR faults until RESET.
 */
MSR_HANDLER(msr_feat_ctl)
{
    (void)val;
    if (op == MSR_OP_WRITE && (f->val[id] & FEAT_CTL_LOCKED))
        return MSR_GP;
    return MSR_OK;
}

/* IA32_SPEC_CTRL — SDM Vol. 4 Table 2-2: each bit exists only with its CPUID bit. */
MSR_HANDLER(msr_spec_ctrl)
{
    uint64_t ok = 0;

    (void)id;
    if (op != MSR_OP_WRITE)
        return MSR_OK;
    if (model_has(f->model, FEAT_SPEC_CTRL))
        ok |= SPEC_CTRL_IBRS;
    if (model_has(f->model, FEAT_STIBP))
        ok |= SPEC_CTRL_STIBP;
    if (model_has(f->model, FEAT_SSBD))
        ok |= SPEC_CTRL_SSBD;
    return (*val & ~ok) ? MSR_GP : MSR_OK;
}

/* IA32_CORE_CAPABILITIES — SDM Vol. 4 Table 2-2: bit 5 = split-lock disable supported. */
MSR_HANDLER(msr_core_caps)
{
    (void)id;
    if (op == MSR_OP_WRITE)
        return MSR_OK;
    *val = model_has(f->model, FEAT_SPLIT_LOCK_DETECT) ? MSR_IA32_CORE_CAPS_SPLIT_LOCK_DETECT : 0;
    return MSR_OK;
}

/*
 * IA32_ARCH_CAPABILITIES — SDM Vol. 4 Table 2-2. A simulator has no
 * speculative side channels, so it reports the classic "not susceptible"
 * bits; IBRS_ALL (enhanced IBRS) only where IBRS exists.
 */
MSR_HANDLER(msr_arch_caps)
{
    (void)id;
    if (op == MSR_OP_WRITE)
        return MSR_OK;
    *val = ARCH_CAP_RDCL_NO | ARCH_CAP_SKIP_VMENTRY_L1DFLUSH | ARCH_CAP_MDS_NO |
           ARCH_CAP_PSCHANGE_MC_NO | ARCH_CAP_TAA_NO;
    if (model_has(f->model, FEAT_SPEC_CTRL))
        *val |= ARCH_CAP_IBRS_ALL;
    return MSR_OK;
}

/* IA32_SYSENTER_CS — SDM Vol. 4 Table 2-2: bits 63:32 "writes ignored; reads return zero". */
MSR_HANDLER(msr_sysenter_cs)
{
    (void)f;
    (void)id;
    if (op == MSR_OP_WRITE)
        *val &= GENMASK64(31, 0);
    return MSR_OK;
}

/*
 * SDM Vol. 2B WRMSR: #GP if a non-canonical address is written to
 * IA32_FS_BASE, IA32_GS_BASE, IA32_KERNEL_GS_BASE, IA32_LSTAR,
 * IA32_SYSENTER_EIP or IA32_SYSENTER_ESP. The check is against the CPU's
 * linear-address width (57 with LA57 support, whatever CR4.LA57 says).
 */
MSR_HANDLER(msr_canonical)
{
    (void)id;
    if (op == MSR_OP_WRITE && !x86_is_canonical(*val, model_linear_width(f->model)))
        return MSR_GP;
    return MSR_OK;
}

/*
 * IA32_MISC_ENABLE — SDM Vol. 4 Table 2-2. Fast strings is read/write.
 * EMON, BTS/PEBS unavailable and ENABLE MONITOR FSM (which mirrors CPUID
 * MONITOR, set at RESET when the model has it) keep their value on writes.
 * LIMIT_CPUID and XD_DISABLE would change CPUID, which the model alone
 * decides: they are reserved here.
 */
MSR_HANDLER(msr_misc_enable)
{
    const uint64_t fixed = MSR_IA32_MISC_ENABLE_EMON | MSR_IA32_MISC_ENABLE_BTS_UNAVAIL |
                           MSR_IA32_MISC_ENABLE_PEBS_UNAVAIL | MSR_IA32_MISC_ENABLE_MWAIT;

    if (op == MSR_OP_RESET && model_has(f->model, FEAT_MONITOR))
        *val |= MSR_IA32_MISC_ENABLE_MWAIT;
    else if (op == MSR_OP_WRITE)
        *val = (*val & ~fixed) | (f->val[id] & fixed);
    return MSR_OK;
}

/* MTRR memory types — SDM Vol. 3A §12.11.2: UC 0, WC 1, WT 4, WP 5, WB 6. */
static bool mtrr_type_valid(unsigned t)
{
    return t == 0 || t == 1 || t == 4 || t == 5 || t == 6;
}

/* PAT memory types — SDM Vol. 3A §12.12.2: MTRR types plus UC- (7). */
static bool pat_type_valid(unsigned t)
{
    return mtrr_type_valid(t) || t == 7;
}

static bool bytes_valid(uint64_t v, bool (*valid)(unsigned))
{
    for (int i = 0; i < 8; i++)
        if (!valid((v >> (8 * i)) & 0xFF))
            return false;
    return true;
}

/* IA32_MTRR_PHYSBASEn — SDM Vol. 3A §12.11.2.3: valid type, base below MAXPHYADDR. */
MSR_HANDLER(msr_mtrr_physbase)
{
    (void)id;
    if (op != MSR_OP_WRITE)
        return MSR_OK;
    if ((*val & above_maxphyaddr(f)) || !mtrr_type_valid(*val & 0xFF))
        return MSR_GP;
    return MSR_OK;
}

/* IA32_MTRR_PHYSMASKn — SDM Vol. 3A §12.11.2.3: mask below MAXPHYADDR. */
MSR_HANDLER(msr_mtrr_physmask)
{
    (void)id;
    if (op == MSR_OP_WRITE && (*val & above_maxphyaddr(f)))
        return MSR_GP;
    return MSR_OK;
}

/* Fixed-range MTRRs — SDM Vol. 3A §12.11.2.2: eight types, each valid. */
MSR_HANDLER(msr_mtrr_fixed)
{
    (void)f;
    (void)id;
    if (op == MSR_OP_WRITE && !bytes_valid(*val, mtrr_type_valid))
        return MSR_GP;
    return MSR_OK;
}

/* IA32_MTRR_DEF_TYPE — SDM Vol. 3A §12.11.2.1: default type must be valid. */
MSR_HANDLER(msr_mtrr_deftype)
{
    (void)f;
    (void)id;
    if (op == MSR_OP_WRITE && !mtrr_type_valid(*val & 0xFF))
        return MSR_GP;
    return MSR_OK;
}

/* IA32_PAT — SDM Vol. 3A §12.12.2: reserved encodings 2 and 3 in any entry → #GP. */
MSR_HANDLER(msr_pat)
{
    (void)f;
    (void)id;
    if (op == MSR_OP_WRITE && !bytes_valid(*val, pat_type_valid))
        return MSR_GP;
    return MSR_OK;
}

/*
 * IA32_EFER — SDM Vol. 3A §2.2.1: bits of absent features are reserved
 * (model_efer_reserved). LMA is set by the processor, not by WRMSR: a write
 * leaves it unchanged. Whether LME may change (not while CR0.PG = 1) is the
 * core's check (MSR_F_CORE): this unit does not see CR0.
 */
MSR_HANDLER(msr_efer)
{
    if (op != MSR_OP_WRITE)
        return MSR_OK;
    if (*val & model_efer_reserved(f->model))
        return MSR_GP;
    *val = (*val & ~X86_EFER_LMA) | (f->val[id] & X86_EFER_LMA);
    return MSR_OK;
}
