/*
 * VM-entry checks on the VMX controls — SDM Vol. 3C §27.2.1: VM-execution
 * (§27.2.1.1), VM-exit (§27.2.1.2) and VM-entry (§27.2.1.3) control fields.
 * A failure is VMfailValid(VMXERR_ENTRY_INVALID_CONTROL_FIELD).
 *
 * One step per SDM rule group, run in SDM order; each failing rule records
 * its check id (entry_checks.def) and the offending value.
 */
#include "vmx/checks_common.h"

/* Not supported by any vmxsim model: IA32_VMX_EXIT_CTLS2 allows no bit. */
#define CHK_EXIT2_ALLOWED1 0ull

/* ---- §27.2.1.1 VM-execution control fields -------------------------------- */

/* Bits the capability MSR requires (allowed-0 = 1) or forbids (allowed-1 = 0). */
static bool ctl_allowed(struct vmx_chk *c, uint32_t val, uint64_t msr, enum vmx_check_id id0,
                        enum vmx_check_id id1)
{
    uint32_t missing = chk_allowed0(msr) & ~val;
    uint32_t extra = val & ~chk_allowed1(msr);
    if (missing)
        return !chk_fail(c, id0, missing);
    if (extra)
        return !chk_fail(c, id1, extra);
    return true;
}

/* Reserved bits in the pin-based controls must be set properly (A.3.1). */
static bool pin_controls(struct vmx_chk *c)
{
    return ctl_allowed(c, c->pin, chk_pin_msr(c->caps), VMX_CHECK_CTL_PIN_ALLOWED0,
                       VMX_CHECK_CTL_PIN_ALLOWED1);
}

/* Reserved bits in the primary processor-based controls (A.3.2). */
static bool proc_controls(struct vmx_chk *c)
{
    return ctl_allowed(c, c->proc, chk_proc_msr(c->caps), VMX_CHECK_CTL_PROC_ALLOWED0,
                       VMX_CHECK_CTL_PROC_ALLOWED1);
}

/* Secondary controls, checked only when activated (A.3.3). */
static bool proc2_controls(struct vmx_chk *c)
{
    uint64_t msr = c->caps->procbased2;
    uint32_t bad = (chk_allowed0(msr) & ~c->proc2) | (c->proc2 & ~chk_allowed1(msr));
    if (!(c->proc & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS))
        return true;
    return !CC(c, bad, CTL_PROC2_RESERVED, bad);
}

/* Tertiary controls, checked only when activated (A.3.4: allowed-1 bits). */
static bool proc3_controls(struct vmx_chk *c)
{
    uint64_t bad = c->proc3 & ~c->caps->procbased3;
    return !CC(c, bad, CTL_PROC3_RESERVED, bad);
}

/* The CR3-target count must not exceed IA32_VMX_MISC[24:16] (A.6). */
static bool cr3_target_count(struct vmx_chk *c)
{
    uint32_t n = VMCS_READ32(c->vmcs, CR3_TARGET_COUNT);
    uint32_t max = (uint32_t)((c->caps->misc & VMX_MISC_CR3_TARGETS_MASK) >> VMX_MISC_CR3_TARGETS_SHIFT);
    return !CC(c, n > max, CTL_CR3_TARGET_COUNT, n);
}

/* Use I/O bitmaps: both addresses 4-KByte aligned and within MAXPHYADDR. */
static bool io_bitmaps(struct vmx_chk *c)
{
    uint64_t a = VMCS_READ64(c->vmcs, IO_BITMAP_A), b = VMCS_READ64(c->vmcs, IO_BITMAP_B);
    if (!(c->proc & CPU_BASED_USE_IO_BITMAPS))
        return true;
    return !CC(c, !chk_addr_ok(c->caps, a, CHK_PAGE_MASK), CTL_IO_BITMAP_A, a) &&
           !CC(c, !chk_addr_ok(c->caps, b, CHK_PAGE_MASK), CTL_IO_BITMAP_B, b);
}

/* Use MSR bitmaps: the address 4-KByte aligned and within MAXPHYADDR. */
static bool msr_bitmap(struct vmx_chk *c)
{
    uint64_t a = VMCS_READ64(c->vmcs, MSR_BITMAP);
    if (!(c->proc & CPU_BASED_USE_MSR_BITMAPS))
        return true;
    return !CC(c, !chk_addr_ok(c->caps, a, CHK_PAGE_MASK), CTL_MSR_BITMAP, a);
}

/* Use TPR shadow: the virtual-APIC address 4-KByte aligned and within MAXPHYADDR. */
static bool virtual_apic_page(struct vmx_chk *c)
{
    uint64_t a = VMCS_READ64(c->vmcs, VIRTUAL_APIC_PAGE_ADDR);
    if (!(c->proc & CPU_BASED_TPR_SHADOW))
        return true;
    return !CC(c, !chk_addr_ok(c->caps, a, CHK_PAGE_MASK), CTL_VIRTUAL_APIC_ADDR, a);
}

/*
 * VTPR, byte 80H of the virtual-APIC page. A page that is not ordinary RAM
 * reads as all ones (no device answers), so the comparison cannot fail.
 */
static unsigned read_vtpr(const struct vmx_chk *c)
{
    uint64_t page = VMCS_READ64(c->vmcs, VIRTUAL_APIC_PAGE_ADDR);
    const uint8_t *p = (c->mem && c->mem->ptr) ? c->mem->ptr(c->mem->ctx, page + 0x80, 1) : NULL;
    return p ? *p : 0xFFu;
}

/*
 * TPR threshold: bits 31:4 are 0 with TPR shadow and no virtual-interrupt
 * delivery; without APIC-access virtualization too, bits 3:0 must not
 * exceed VTPR[7:4].
 */
static bool tpr_threshold(struct vmx_chk *c)
{
    uint32_t thr = VMCS_READ32(c->vmcs, TPR_THRESHOLD);
    bool vid = c->proc2 & SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY;
    bool apic_access = c->proc2 & SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES;
    if (!(c->proc & CPU_BASED_TPR_SHADOW) || vid)
        return true;
    if (CC(c, thr & ~0xFu, CTL_TPR_THRESHOLD_RESERVED, thr))
        return false;
    return apic_access || !CC(c, thr > (read_vtpr(c) >> 4), CTL_TPR_THRESHOLD_VTPR, thr);
}

/* Without TPR shadow: virtualize x2APIC mode, APIC-register virtualization, virtual-interrupt delivery are 0. */
static bool apicv_needs_tpr_shadow(struct vmx_chk *c)
{
    uint64_t bad = c->proc2 & (SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE | SECONDARY_EXEC_APIC_REGISTER_VIRT |
                               SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY);
    return (c->proc & CPU_BASED_TPR_SHADOW) || !CC(c, bad, CTL_APICV_WITHOUT_TPR_SHADOW, bad);
}

/* Virtual NMIs need NMI exiting; NMI-window exiting needs virtual NMIs. */
static bool nmi_controls(struct vmx_chk *c)
{
    return !CC(c, (c->pin & PIN_BASED_VIRTUAL_NMIS) && !(c->pin & PIN_BASED_NMI_EXITING),
               CTL_VIRTUAL_NMIS_WITHOUT_NMI_EXITING, c->pin) &&
           !CC(c, (c->proc & CPU_BASED_NMI_WINDOW_EXITING) && !(c->pin & PIN_BASED_VIRTUAL_NMIS),
               CTL_NMI_WINDOW_WITHOUT_VIRTUAL_NMIS, c->proc);
}

/* Virtualize APIC accesses: the APIC-access address 4-KByte aligned and within MAXPHYADDR. */
static bool apic_access_page(struct vmx_chk *c)
{
    uint64_t a = VMCS_READ64(c->vmcs, APIC_ACCESS_ADDR);
    if (!(c->proc2 & SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES))
        return true;
    return !CC(c, !chk_addr_ok(c->caps, a, CHK_PAGE_MASK), CTL_APIC_ACCESS_ADDR, a);
}

/* Virtualize x2APIC mode excludes virtualize APIC accesses. */
static bool x2apic_mode(struct vmx_chk *c)
{
    uint64_t both = SECONDARY_EXEC_VIRTUALIZE_X2APIC_MODE | SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES;
    return !CC(c, (c->proc2 & both) == both, CTL_X2APIC_WITH_APIC_ACCESS, c->proc2);
}

/* Virtual-interrupt delivery needs external-interrupt exiting. */
static bool virtual_intr_delivery(struct vmx_chk *c)
{
    return !CC(c, (c->proc2 & SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY) && !(c->pin & PIN_BASED_EXT_INTR_MASK),
               CTL_VID_WITHOUT_EXT_INTR_EXITING, c->pin);
}

/*
 * Process posted interrupts: virtual-interrupt delivery, acknowledge
 * interrupt on exit, a notification vector below 256 and a 64-byte aligned
 * descriptor within MAXPHYADDR.
 */
static bool posted_interrupts(struct vmx_chk *c)
{
    uint16_t nv = VMCS_READ16(c->vmcs, POSTED_INTR_NV);
    uint64_t desc = VMCS_READ64(c->vmcs, POSTED_INTR_DESC_ADDR);
    if (!(c->pin & PIN_BASED_POSTED_INTR))
        return true;
    return !CC(c, !(c->proc2 & SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY), CTL_POSTED_INTR_WITHOUT_VID, c->proc2) &&
           !CC(c, !(c->exit & VM_EXIT_ACK_INTR_ON_EXIT), CTL_POSTED_INTR_WITHOUT_ACK_INTR, c->exit) &&
           !CC(c, nv & POSTED_INTR_NV_RESERVED, CTL_POSTED_INTR_NV, nv) &&
           !CC(c, !chk_addr_ok(c->caps, desc, POSTED_INTR_DESC_ALIGN), CTL_POSTED_INTR_DESC_ADDR, desc);
}

/* Enable VPID: the VPID is not 0000H. */
static bool vpid(struct vmx_chk *c)
{
    uint16_t v = VMCS_READ16(c->vmcs, VIRTUAL_PROCESSOR_ID);
    return !CC(c, (c->proc2 & SECONDARY_EXEC_ENABLE_VPID) && v == 0, CTL_VPID_ZERO, v);
}

/* EPTP memory type: UC or WB, each only if IA32_VMX_EPT_VPID_CAP reports it. */
static bool eptp_memtype_ok(uint64_t eptp, uint64_t cap)
{
    uint64_t mt = eptp & VMX_EPTP_MT_MASK;
    return (mt == VMX_EPTP_MT_UC && (cap & VMX_EPTP_UC_BIT)) || (mt == VMX_EPTP_MT_WB && (cap & VMX_EPTP_WB_BIT));
}

/* EPTP page-walk length: 4, or 5 if IA32_VMX_EPT_VPID_CAP[7]. */
static bool eptp_walk_ok(uint64_t eptp, uint64_t cap)
{
    uint64_t pwl = eptp & VMX_EPTP_PWL_MASK;
    return (pwl == VMX_EPTP_PWL_4 && (cap & VMX_EPT_PAGE_WALK_4_BIT)) ||
           (pwl == VMX_EPTP_PWL_5 && (cap & VMX_EPT_PAGE_WALK_5_BIT));
}

/* Enable EPT: the EPTP (SDM Vol. 3C §25.6.11, Table 25-9) against IA32_VMX_EPT_VPID_CAP. */
static bool eptp(struct vmx_chk *c)
{
    uint64_t e = VMCS_READ64(c->vmcs, EPT_POINTER), cap = c->caps->ept_vpid;
    if (!(c->proc2 & SECONDARY_EXEC_ENABLE_EPT))
        return true;
    return !CC(c, !eptp_memtype_ok(e, cap), CTL_EPTP_MEMTYPE, e) &&
           !CC(c, !eptp_walk_ok(e, cap), CTL_EPTP_WALK_LENGTH, e) &&
           !CC(c, (e & VMX_EPTP_AD_ENABLE_BIT) && !(cap & VMX_EPT_AD_BIT), CTL_EPTP_AD, e) &&
           !CC(c, (e & VMX_EPTP_SSS_BIT) && !(cap & VMX_EPT_SUPERVISOR_SHADOW_STACK), CTL_EPTP_SSS, e) &&
           !CC(c, (e & VMX_EPTP_RESERVED_11_8) || !chk_paddr_ok(c->caps, e), CTL_EPTP_RESERVED, e);
}

static bool ept_on(const struct vmx_chk *c)
{
    return (c->proc2 & SECONDARY_EXEC_ENABLE_EPT) != 0;
}

/* Enable PML needs enable EPT and a 4-KByte aligned PML address within MAXPHYADDR. */
static bool pml(struct vmx_chk *c)
{
    uint64_t a = VMCS_READ64(c->vmcs, PML_ADDRESS);
    if (!(c->proc2 & SECONDARY_EXEC_ENABLE_PML))
        return true;
    return !CC(c, !ept_on(c), CTL_PML_WITHOUT_EPT, c->proc2) &&
           !CC(c, !chk_addr_ok(c->caps, a, CHK_PAGE_MASK), CTL_PML_ADDR, a);
}

/* Unrestricted guest and mode-based execute control need enable EPT. */
static bool ept_dependents(struct vmx_chk *c)
{
    return !CC(c, (c->proc2 & SECONDARY_EXEC_UNRESTRICTED_GUEST) && !ept_on(c), CTL_UNRESTRICTED_WITHOUT_EPT,
               c->proc2) &&
           !CC(c, (c->proc2 & SECONDARY_EXEC_MODE_BASED_EPT_EXEC) && !ept_on(c), CTL_MBEC_WITHOUT_EPT, c->proc2);
}

/* Sub-page write permissions need enable EPT and a 4-KByte aligned SPPTP within MAXPHYADDR. */
static bool spp(struct vmx_chk *c)
{
    uint64_t a = VMCS_READ64(c->vmcs, SPPT_POINTER);
    if (!(c->proc2 & SECONDARY_EXEC_SPP))
        return true;
    return !CC(c, !ept_on(c), CTL_SPP_WITHOUT_EPT, c->proc2) &&
           !CC(c, !chk_addr_ok(c->caps, a, CHK_PAGE_MASK), CTL_SPPTP_ADDR, a);
}

/* Intel PT uses guest physical addresses: enable EPT, load and clear IA32_RTIT_CTL. */
static bool pt_guest_physical(struct vmx_chk *c)
{
    if (!(c->proc2 & SECONDARY_EXEC_PT_USE_GPA))
        return true;
    return !CC(c, !ept_on(c), CTL_PT_GPA_WITHOUT_EPT, c->proc2) &&
           !CC(c, !(c->entry & VM_ENTRY_LOAD_IA32_RTIT_CTL), CTL_PT_GPA_WITHOUT_ENTRY_RTIT, c->entry) &&
           !CC(c, !(c->exit & VM_EXIT_CLEAR_IA32_RTIT_CTL), CTL_PT_GPA_WITHOUT_EXIT_RTIT, c->exit);
}

/*
 * Enable VM functions: no VM function IA32_VMX_VMFUNC lacks; EPTP switching
 * needs enable EPT and a 4-KByte aligned EPTP list within MAXPHYADDR.
 */
static bool vm_functions(struct vmx_chk *c)
{
    uint64_t f = VMCS_READ64(c->vmcs, VM_FUNCTION_CONTROL);
    uint64_t list = VMCS_READ64(c->vmcs, EPTP_LIST_ADDRESS);
    if (!(c->proc2 & SECONDARY_EXEC_ENABLE_VMFUNC))
        return true;
    if (CC(c, f & ~c->caps->vmfunc, CTL_VMFUNC_RESERVED, f & ~c->caps->vmfunc))
        return false;
    if (!(f & VMX_VMFUNC_EPTP_SWITCHING))
        return true;
    return !CC(c, !ept_on(c), CTL_EPTP_SWITCHING_WITHOUT_EPT, c->proc2) &&
           !CC(c, !chk_addr_ok(c->caps, list, CHK_PAGE_MASK), CTL_EPTP_LIST_ADDR, list);
}

/* VMCS shadowing: VMREAD and VMWRITE bitmaps 4-KByte aligned and within MAXPHYADDR. */
static bool vmcs_shadowing(struct vmx_chk *c)
{
    uint64_t rd = VMCS_READ64(c->vmcs, VMREAD_BITMAP), wr = VMCS_READ64(c->vmcs, VMWRITE_BITMAP);
    if (!(c->proc2 & SECONDARY_EXEC_SHADOW_VMCS))
        return true;
    return !CC(c, !chk_addr_ok(c->caps, rd, CHK_PAGE_MASK), CTL_VMREAD_BITMAP, rd) &&
           !CC(c, !chk_addr_ok(c->caps, wr, CHK_PAGE_MASK), CTL_VMWRITE_BITMAP, wr);
}

/* EPT-violation #VE: the #VE information address 4-KByte aligned and within MAXPHYADDR. */
static bool ept_violation_ve(struct vmx_chk *c)
{
    uint64_t a = VMCS_READ64(c->vmcs, VE_INFORMATION_ADDRESS);
    if (!(c->proc2 & SECONDARY_EXEC_EPT_VIOLATION_VE))
        return true;
    return !CC(c, !chk_addr_ok(c->caps, a, CHK_PAGE_MASK), CTL_VE_INFO_ADDR, a);
}

/* Use TSC scaling: a TSC multiplier of 0 is invalid. */
static bool tsc_scaling(struct vmx_chk *c)
{
    uint64_t m = VMCS_READ64(c->vmcs, TSC_MULTIPLIER);
    return !CC(c, (c->proc2 & SECONDARY_EXEC_TSC_SCALING) && m == 0, CTL_TSC_MULTIPLIER_ZERO, m);
}

/* ---- §27.2.1.2 VM-exit control fields ------------------------------------- */

/* Reserved bits in the primary VM-exit controls (A.4.1). */
static bool exit_controls(struct vmx_chk *c)
{
    return ctl_allowed(c, c->exit, chk_exit_msr(c->caps), VMX_CHECK_EXIT_ALLOWED0, VMX_CHECK_EXIT_ALLOWED1);
}

/* Secondary VM-exit controls, checked only when activated (A.4.2). */
static bool exit2_controls(struct vmx_chk *c)
{
    uint64_t bad = c->exit2 & ~CHK_EXIT2_ALLOWED1;
    return !CC(c, bad, EXIT2_RESERVED, bad);
}

/* Save VMX-preemption timer value needs activate VMX-preemption timer. */
static bool preemption_timer_save(struct vmx_chk *c)
{
    return !CC(c, (c->exit & VM_EXIT_SAVE_VMX_PREEMPTION_TIMER) && !(c->pin & PIN_BASED_VMX_PREEMPTION_TIMER),
               EXIT_SAVE_TIMER_WITHOUT_TIMER, c->exit);
}

/* An MSR area of `count` 16-byte entries: 16-byte aligned, first and last byte within MAXPHYADDR. */
static bool msr_area(struct vmx_chk *c, uint64_t addr, uint32_t count, enum vmx_check_id addr_id,
                     enum vmx_check_id end_id)
{
    uint64_t last = addr + (uint64_t)count * MSR_AREA_ENTRY_SIZE - 1;
    if (count == 0)
        return true;
    if (!chk_addr_ok(c->caps, addr, MSR_AREA_ALIGN))
        return !chk_fail(c, addr_id, addr);
    if (!chk_paddr_ok(c->caps, last))
        return !chk_fail(c, end_id, last);
    return true;
}

static bool exit_msr_store(struct vmx_chk *c)
{
    return msr_area(c, VMCS_READ64(c->vmcs, VM_EXIT_MSR_STORE_ADDR), VMCS_READ32(c->vmcs, VM_EXIT_MSR_STORE_COUNT),
                    VMX_CHECK_EXIT_MSR_STORE_ADDR, VMX_CHECK_EXIT_MSR_STORE_END);
}

static bool exit_msr_load(struct vmx_chk *c)
{
    return msr_area(c, VMCS_READ64(c->vmcs, VM_EXIT_MSR_LOAD_ADDR), VMCS_READ32(c->vmcs, VM_EXIT_MSR_LOAD_COUNT),
                    VMX_CHECK_EXIT_MSR_LOAD_ADDR, VMX_CHECK_EXIT_MSR_LOAD_END);
}

/* ---- §27.2.1.3 VM-entry control fields ------------------------------------ */

/* Reserved bits in the VM-entry controls (A.5). */
static bool entry_controls(struct vmx_chk *c)
{
    return ctl_allowed(c, c->entry, chk_entry_msr(c->caps), VMX_CHECK_ENTRY_ALLOWED0, VMX_CHECK_ENTRY_ALLOWED1);
}

/* Interruption type: 1 is reserved; 7 (other event) needs monitor trap flag support. */
static bool injection_type(struct vmx_chk *c)
{
    uint32_t info = chk_injection(c);
    unsigned type = chk_intr_type(info);
    bool mtf = chk_allowed1(chk_proc_msr(c->caps)) & CPU_BASED_MONITOR_TRAP_FLAG;
    if (!info)
        return true;
    return !CC(c, type == INTR_TYPE_RESERVED, ENTRY_INTR_TYPE_RESERVED, info) &&
           !CC(c, type == INTR_TYPE_OTHER_EVENT && !mtf, ENTRY_INTR_TYPE_OTHER, info);
}

/* Vector consistent with the type: NMI 2, hardware exception <= 31, other event 0. */
static bool injection_vector(struct vmx_chk *c)
{
    uint32_t info = chk_injection(c);
    unsigned type = chk_intr_type(info), vec = chk_intr_vector(info);
    if (!info)
        return true;
    return !CC(c, type == INTR_TYPE_NMI_INTR && vec != X86_NMI, ENTRY_INTR_NMI_VECTOR, info) &&
           !CC(c, type == INTR_TYPE_HARD_EXCEPTION && vec > 31, ENTRY_INTR_HW_EXC_VECTOR, info) &&
           !CC(c, type == INTR_TYPE_OTHER_EVENT && vec != 0, ENTRY_INTR_OTHER_VECTOR, info);
}

/* Exceptions that deliver an error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC, and #CP with CET. */
static bool exception_has_error_code(const struct vmx_caps *caps, unsigned vec)
{
    uint32_t mask = BIT64(X86_DF) | BIT64(X86_TS) | BIT64(X86_NP) | BIT64(X86_SS) | BIT64(X86_GP) |
                    BIT64(X86_PF) | BIT64(X86_AC);
    if (chk_has_cet(caps))
        mask |= BIT64(X86_CP);
    return vec < 32 && (mask >> vec) & 1u;
}

/*
 * Deliver-error-code: 0 unless a hardware exception goes to a protected-mode
 * guest ("unrestricted guest" 0, or guest CR0.PE 1); there it must match the
 * vector, a check IA32_VMX_BASIC[56] lifts.
 */
static bool injection_error_code_bit(struct vmx_chk *c)
{
    uint32_t info = chk_injection(c);
    bool urg = c->proc2 & SECONDARY_EXEC_UNRESTRICTED_GUEST;
    bool prot = !urg || (VMCS_READNATW(c->vmcs, GUEST_CR0) & X86_CR0_PE);
    bool code = info & INTR_INFO_DELIVER_CODE_MASK;
    if (!info)
        return true;
    if (!prot || chk_intr_type(info) != INTR_TYPE_HARD_EXCEPTION)
        return !CC(c, code, ENTRY_INTR_ERROR_CODE_NOT_ALLOWED, info);
    if (c->caps->basic & VMX_BASIC_NO_HW_ERROR_CODE_CC)
        return true;
    return !CC(c, code != exception_has_error_code(c->caps, chk_intr_vector(info)), ENTRY_INTR_ERROR_CODE_MISMATCH,
               info);
}

/* Interruption-information bits 30:12 are 0; error code bits 31:16 are 0. */
static bool injection_reserved(struct vmx_chk *c)
{
    uint32_t info = chk_injection(c);
    uint32_t err = VMCS_READ32(c->vmcs, VM_ENTRY_EXCEPTION_ERROR_CODE);
    if (!info)
        return true;
    return !CC(c, info & INTR_INFO_RESVD_BITS_MASK, ENTRY_INTR_RESERVED, info) &&
           !CC(c, (info & INTR_INFO_DELIVER_CODE_MASK) && (err & 0xFFFF0000u), ENTRY_EXC_ERROR_CODE_RESERVED, err);
}

/* Software interrupts and (privileged) software exceptions: instruction length 1..15, or 0 with MISC[30]. */
static bool injection_insn_len(struct vmx_chk *c)
{
    uint32_t info = chk_injection(c);
    uint32_t len = VMCS_READ32(c->vmcs, VM_ENTRY_INSTRUCTION_LEN);
    unsigned type = chk_intr_type(info);
    bool zero_ok = c->caps->misc & VMX_MISC_ZERO_LEN_INS;
    if (!info || (type != INTR_TYPE_SOFT_INTR && type != INTR_TYPE_PRIV_SW_EXCEPTION &&
                  type != INTR_TYPE_SOFT_EXCEPTION))
        return true;
    return !CC(c, len > 15 || (len == 0 && !zero_ok), ENTRY_INSN_LEN, len);
}

static bool entry_msr_load(struct vmx_chk *c)
{
    return msr_area(c, VMCS_READ64(c->vmcs, VM_ENTRY_MSR_LOAD_ADDR), VMCS_READ32(c->vmcs, VM_ENTRY_MSR_LOAD_COUNT),
                    VMX_CHECK_ENTRY_MSR_LOAD_ADDR, VMX_CHECK_ENTRY_MSR_LOAD_END);
}

/* Entry to SMM and deactivate dual-monitor treatment: 0 outside SMM, never both 1. */
static bool smm_controls(struct vmx_chk *c)
{
    bool smm = c->entry & VM_ENTRY_SMM, deact = c->entry & VM_ENTRY_DEACT_DUAL_MONITOR;
    return !CC(c, smm && !c->env.in_smm, ENTRY_SMM_OUTSIDE_SMM, c->entry) &&
           !CC(c, deact && !c->env.in_smm, ENTRY_DEACT_DUAL_OUTSIDE_SMM, c->entry) &&
           !CC(c, smm && deact, ENTRY_SMM_AND_DEACT_DUAL, c->entry);
}

static const chk_step control_steps[] = {
    /* §27.2.1.1 */
    pin_controls, proc_controls, proc2_controls, proc3_controls, cr3_target_count, io_bitmaps, msr_bitmap,
    virtual_apic_page, tpr_threshold, apicv_needs_tpr_shadow, nmi_controls, apic_access_page, x2apic_mode,
    virtual_intr_delivery, posted_interrupts, vpid, eptp, pml, ept_dependents, spp, pt_guest_physical,
    vm_functions, vmcs_shadowing, ept_violation_ve, tsc_scaling,
    /* §27.2.1.2 */
    exit_controls, exit2_controls, preemption_timer_save, exit_msr_store, exit_msr_load,
    /* §27.2.1.3 */
    entry_controls, injection_type, injection_vector, injection_error_code_bit, injection_reserved,
    injection_insn_len, entry_msr_load, smm_controls,
};

bool vmx_check_controls_env(const struct vmx_caps *caps, const uint8_t *vmcs, const struct vmx_mem *mem,
                            const struct vmx_entry_env *env, struct vmx_check_fail *fail)
{
    struct vmx_chk c;
    chk_init(&c, caps, vmcs, mem, env, fail);
    return CHK_RUN(&c, control_steps);
}

bool vmx_check_controls(const struct vmx_caps *caps, const uint8_t *vmcs, const struct vmx_mem *mem,
                        struct vmx_check_fail *fail)
{
    return vmx_check_controls_env(caps, vmcs, mem, NULL, fail);
}
