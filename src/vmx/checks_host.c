/*
 * VM-entry checks on the host-state area — SDM Vol. 3C §27.2.2 (control
 * registers and MSRs), §27.2.3 (segment and descriptor-table registers) and
 * §27.2.4 (address-space size). A failure is
 * VMfailValid(VMXERR_ENTRY_INVALID_HOST_STATE_FIELD).
 *
 * Canonicality: host RIP is checked against the paging mode the VM exit
 * will establish (host CR4.LA57); the other host addresses are loaded like
 * MSR or descriptor-table bases, which need only be canonical for the
 * processor's linear-address width.
 */
#include "vmx/checks_common.h"

static bool host64(const struct vmx_chk *c)
{
    return (c->exit & VM_EXIT_HOST_ADDR_SPACE_SIZE) != 0;
}

static bool load_cet(const struct vmx_chk *c)
{
    return (c->exit & VM_EXIT_LOAD_CET_STATE) != 0;
}

/* ---- §27.2.2 host control registers and MSRs ------------------------------ */

/* CR0 and CR4 must hold the values VMX operation fixes (IA32_VMX_CR0/CR4_FIXED0/1). */
static bool host_cr0_cr4(struct vmx_chk *c)
{
    uint64_t cr0 = VMCS_READNATW(c->vmcs, HOST_CR0), cr4 = VMCS_READNATW(c->vmcs, HOST_CR4);
    const struct vmx_caps *k = c->caps;
    return !CC(c, k->cr0_fixed0 & ~cr0, HOST_CR0_FIXED0, cr0) && !CC(c, cr0 & ~k->cr0_fixed1, HOST_CR0_FIXED1, cr0) &&
           !CC(c, k->cr4_fixed0 & ~cr4, HOST_CR4_FIXED0, cr4) && !CC(c, cr4 & ~k->cr4_fixed1, HOST_CR4_FIXED1, cr4);
}

/* CR3: no bit at or above MAXPHYADDR. */
static bool host_cr3(struct vmx_chk *c)
{
    uint64_t cr3 = VMCS_READNATW(c->vmcs, HOST_CR3);
    return !CC(c, !chk_paddr_ok(c->caps, cr3), HOST_CR3_RESERVED, cr3);
}

/* CR4.CET requires CR0.WP. */
static bool host_cet_wp(struct vmx_chk *c)
{
    uint64_t cr0 = VMCS_READNATW(c->vmcs, HOST_CR0), cr4 = VMCS_READNATW(c->vmcs, HOST_CR4);
    return !CC(c, (cr4 & X86_CR4_CET) && !(cr0 & X86_CR0_WP), HOST_CR4_CET_WITHOUT_WP, cr4);
}

/* IA32_SYSENTER_ESP and IA32_SYSENTER_EIP canonical. */
static bool host_sysenter(struct vmx_chk *c)
{
    uint64_t esp = VMCS_READNATW(c->vmcs, HOST_IA32_SYSENTER_ESP);
    uint64_t eip = VMCS_READNATW(c->vmcs, HOST_IA32_SYSENTER_EIP);
    return !CC(c, !chk_canonical(c->caps, esp), HOST_SYSENTER_ESP_CANONICAL, esp) &&
           !CC(c, !chk_canonical(c->caps, eip), HOST_SYSENTER_EIP_CANONICAL, eip);
}

/* IA32_S_CET: bits 9:6 reserved; SUPPRESS and TRACKER not both set. */
static bool s_cet_ok(uint64_t s_cet)
{
    return !(s_cet & CET_RESERVED_9_6) && (s_cet & (CET_SUPPRESS | CET_TRACKER)) != (CET_SUPPRESS | CET_TRACKER);
}

/* Load CET state: IA32_S_CET valid, SSP 4-byte aligned, SSP table canonical. */
static bool host_cet_state(struct vmx_chk *c)
{
    uint64_t s_cet = VMCS_READNATW(c->vmcs, HOST_S_CET), ssp = VMCS_READNATW(c->vmcs, HOST_SSP);
    uint64_t tbl = VMCS_READNATW(c->vmcs, HOST_INTR_SSP_TABLE);
    if (!load_cet(c))
        return true;
    return !CC(c, !s_cet_ok(s_cet), HOST_S_CET_RESERVED, s_cet) && !CC(c, ssp & 3, HOST_SSP_ALIGN, ssp) &&
           !CC(c, !chk_canonical(c->caps, tbl), HOST_SSP_TABLE_CANONICAL, tbl);
}

/* Load IA32_PERF_GLOBAL_CTRL: no reserved bit. */
static bool host_perf_global_ctrl(struct vmx_chk *c)
{
    uint64_t v = VMCS_READ64(c->vmcs, HOST_IA32_PERF_GLOBAL_CTRL);
    return !CC(c, (c->exit & VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL) && (v & ~CHK_PERF_GLOBAL_CTRL_VALID),
               HOST_PERF_GLOBAL_CTRL_RESERVED, v);
}

/* Load IA32_PAT: a value WRMSR would accept. */
static bool host_pat(struct vmx_chk *c)
{
    uint64_t pat = VMCS_READ64(c->vmcs, HOST_IA32_PAT);
    return !CC(c, (c->exit & VM_EXIT_LOAD_IA32_PAT) && !chk_pat_ok(pat), HOST_PAT, pat);
}

/* Load IA32_EFER: no reserved bit; LMA and LME both equal host address-space size. */
static bool host_efer(struct vmx_chk *c)
{
    uint64_t efer = VMCS_READ64(c->vmcs, HOST_IA32_EFER);
    if (!(c->exit & VM_EXIT_LOAD_IA32_EFER))
        return true;
    return !CC(c, efer & ~CHK_EFER_VALID, HOST_EFER_RESERVED, efer) &&
           !CC(c, !(efer & X86_EFER_LMA) != !host64(c), HOST_EFER_LMA, efer) &&
           !CC(c, !(efer & X86_EFER_LME) != !host64(c), HOST_EFER_LME, efer);
}

/* Load IA32_PKRS: bits 63:32 zero (the MSR is 32 bits wide). */
static bool host_pkrs(struct vmx_chk *c)
{
    uint64_t pkrs = VMCS_READ64(c->vmcs, HOST_IA32_PKRS);
    return !CC(c, (c->exit & VM_EXIT_LOAD_IA32_PKRS) && (pkrs >> 32), HOST_PKRS_RESERVED, pkrs);
}

/* ---- §27.2.3 host segment and descriptor-table registers ------------------ */

struct host_field {
    uint32_t enc;
    enum vmx_check_id id;
};

static const struct host_field host_selectors[] = {
    {HOST_ES_SELECTOR, VMX_CHECK_HOST_ES_SEL_RPL_TI}, {HOST_CS_SELECTOR, VMX_CHECK_HOST_CS_SEL_RPL_TI},
    {HOST_SS_SELECTOR, VMX_CHECK_HOST_SS_SEL_RPL_TI}, {HOST_DS_SELECTOR, VMX_CHECK_HOST_DS_SEL_RPL_TI},
    {HOST_FS_SELECTOR, VMX_CHECK_HOST_FS_SEL_RPL_TI}, {HOST_GS_SELECTOR, VMX_CHECK_HOST_GS_SEL_RPL_TI},
    {HOST_TR_SELECTOR, VMX_CHECK_HOST_TR_SEL_RPL_TI},
};

static const struct host_field host_bases[] = {
    {HOST_FS_BASE, VMX_CHECK_HOST_FS_BASE_CANONICAL},     {HOST_GS_BASE, VMX_CHECK_HOST_GS_BASE_CANONICAL},
    {HOST_GDTR_BASE, VMX_CHECK_HOST_GDTR_BASE_CANONICAL}, {HOST_IDTR_BASE, VMX_CHECK_HOST_IDTR_BASE_CANONICAL},
    {HOST_TR_BASE, VMX_CHECK_HOST_TR_BASE_CANONICAL},
};

/* RPL and TI of ES, CS, SS, DS, FS, GS and TR selectors are 0. */
static bool host_selector_bits(struct vmx_chk *c)
{
    for (size_t i = 0; i < sizeof(host_selectors) / sizeof(host_selectors[0]); i++) {
        uint64_t sel = chk_read(c, host_selectors[i].enc);
        if (sel & 7u)
            return !chk_fail(c, host_selectors[i].id, sel);
    }
    return true;
}

/* CS and TR are not null; SS is not null for a 32-bit host. */
static bool host_null_selectors(struct vmx_chk *c)
{
    uint16_t cs = VMCS_READ16(c->vmcs, HOST_CS_SELECTOR), tr = VMCS_READ16(c->vmcs, HOST_TR_SELECTOR);
    uint16_t ss = VMCS_READ16(c->vmcs, HOST_SS_SELECTOR);
    return !CC(c, cs == 0, HOST_CS_SEL_NULL, cs) && !CC(c, tr == 0, HOST_TR_SEL_NULL, tr) &&
           !CC(c, ss == 0 && !host64(c), HOST_SS_SEL_NULL, ss);
}

/* FS, GS, GDTR, IDTR and TR bases canonical. */
static bool host_base_canonical(struct vmx_chk *c)
{
    for (size_t i = 0; i < sizeof(host_bases) / sizeof(host_bases[0]); i++) {
        uint64_t base = chk_read(c, host_bases[i].enc);
        if (!chk_canonical(c->caps, base))
            return !chk_fail(c, host_bases[i].id, base);
    }
    return true;
}

/* ---- §27.2.4 checks related to address-space size ------------------------- */

/* The processor mode executing VM entry: outside IA-32e mode both controls are 0; inside, a 64-bit host. */
static bool addr_space_processor_mode(struct vmx_chk *c)
{
    if (!c->env.host_in_ia32e)
        return !CC(c, host64(c), HOST_ADDR_SIZE_OUTSIDE_IA32E, c->exit) &&
               !CC(c, c->entry & VM_ENTRY_IA32E_MODE, HOST_IA32E_GUEST_OUTSIDE_IA32E, c->entry);
    return !CC(c, !host64(c), HOST_ADDR_SIZE_IN_IA32E, c->exit);
}

/*
 * Host address-space size 0: CR4.PCIDE 0, RIP (and CET state) below 4 GByte.
 * "IA-32e mode guest must be 0" is also listed here by the SDM, but a
 * 32-bit host implies VM entry outside IA-32e mode (else the previous step
 * fails), where HOST_IA32E_GUEST_OUTSIDE_IA32E already enforces it.
 */
static bool addr_space_32bit_host(struct vmx_chk *c)
{
    uint64_t cr4 = VMCS_READNATW(c->vmcs, HOST_CR4), rip = VMCS_READNATW(c->vmcs, HOST_RIP);
    uint64_t s_cet = VMCS_READNATW(c->vmcs, HOST_S_CET), ssp = VMCS_READNATW(c->vmcs, HOST_SSP);
    if (host64(c))
        return true;
    return !CC(c, cr4 & X86_CR4_PCIDE, HOST_CR4_PCIDE_32BIT, cr4) && !CC(c, rip >> 32, HOST_RIP_HIGH, rip) &&
           !CC(c, load_cet(c) && (s_cet >> 32), HOST_S_CET_HIGH, s_cet) &&
           !CC(c, load_cet(c) && (ssp >> 32), HOST_SSP_HIGH, ssp);
}

/* Host address-space size 1: CR4.PAE 1, RIP canonical for the host's paging mode, CET state canonical. */
static bool addr_space_64bit_host(struct vmx_chk *c)
{
    uint64_t cr4 = VMCS_READNATW(c->vmcs, HOST_CR4), rip = VMCS_READNATW(c->vmcs, HOST_RIP);
    uint64_t s_cet = VMCS_READNATW(c->vmcs, HOST_S_CET), ssp = VMCS_READNATW(c->vmcs, HOST_SSP);
    unsigned rip_width = (cr4 & X86_CR4_LA57) ? 57 : 48;
    if (!host64(c))
        return true;
    return !CC(c, !(cr4 & X86_CR4_PAE), HOST_CR4_PAE_64BIT, cr4) &&
           !CC(c, !x86_is_canonical(rip, rip_width), HOST_RIP_CANONICAL, rip) &&
           !CC(c, load_cet(c) && !chk_canonical(c->caps, s_cet), HOST_S_CET_CANONICAL, s_cet) &&
           !CC(c, load_cet(c) && !chk_canonical(c->caps, ssp), HOST_SSP_CANONICAL, ssp);
}

static const chk_step host_steps[] = {
    /* §27.2.2 */
    host_cr0_cr4, host_cr3, host_cet_wp, host_sysenter, host_cet_state, host_perf_global_ctrl, host_pat,
    host_efer, host_pkrs,
    /* §27.2.3 */
    host_selector_bits, host_null_selectors, host_base_canonical,
    /* §27.2.4 */
    addr_space_processor_mode, addr_space_32bit_host, addr_space_64bit_host,
};

bool vmx_check_host_state_env(const struct vmx_caps *caps, const uint8_t *vmcs, const struct vmx_entry_env *env,
                              struct vmx_check_fail *fail)
{
    struct vmx_chk c;
    chk_init(&c, caps, vmcs, NULL, env, fail);
    return CHK_RUN(&c, host_steps);
}

bool vmx_check_host_state(const struct vmx_caps *caps, const uint8_t *vmcs, struct vmx_check_fail *fail)
{
    return vmx_check_host_state_env(caps, vmcs, NULL, fail);
}
