/*
 * VMX capability MSRs from the CPU model (SDM Vol. 3D Appendix A).
 *
 * An allowed-1 bit here is a promise: the VMX unit implements that control.
 * Controls whose hardware feature the model lacks are absent (allowed-1 = 0),
 * so VM entry with them set fails with VMfailValid(7), as on hardware
 * without the feature (DESIGN §5). Nothing else in vmxsim lists controls.
 */
#include "vmx/vmx_priv.h"

/* A control and the model feature it needs (FEAT_COUNT: none). */
struct ctl_cap {
    uint64_t bit;
    enum cpu_feature feat;
};

#define NOFEAT FEAT_COUNT

static const struct ctl_cap pin_caps[] = {
    {PIN_BASED_EXT_INTR_MASK, NOFEAT},
    {PIN_BASED_NMI_EXITING, NOFEAT},
    {PIN_BASED_VIRTUAL_NMIS, NOFEAT},
    {PIN_BASED_VMX_PREEMPTION_TIMER, FEAT_VMX_PREEMPTION_TIMER},
};

static const struct ctl_cap proc_caps[] = {
    {CPU_BASED_INTR_WINDOW_EXITING, NOFEAT},
    {CPU_BASED_USE_TSC_OFFSETTING, NOFEAT},
    {CPU_BASED_HLT_EXITING, NOFEAT},
    {CPU_BASED_INVLPG_EXITING, NOFEAT},
    {CPU_BASED_MWAIT_EXITING, NOFEAT},
    {CPU_BASED_RDPMC_EXITING, NOFEAT},
    {CPU_BASED_RDTSC_EXITING, NOFEAT},
    {CPU_BASED_CR3_LOAD_EXITING, NOFEAT},
    {CPU_BASED_CR3_STORE_EXITING, NOFEAT},
    {CPU_BASED_ACTIVATE_TERTIARY_CONTROLS, FEAT_TERTIARY_CONTROLS},
    {CPU_BASED_CR8_LOAD_EXITING, FEAT_LM},
    {CPU_BASED_CR8_STORE_EXITING, FEAT_LM},
    {CPU_BASED_NMI_WINDOW_EXITING, NOFEAT},
    {CPU_BASED_MOV_DR_EXITING, NOFEAT},
    {CPU_BASED_UNCOND_IO_EXITING, NOFEAT},
    {CPU_BASED_USE_IO_BITMAPS, NOFEAT},
    {CPU_BASED_MONITOR_TRAP_FLAG, NOFEAT},
    {CPU_BASED_USE_MSR_BITMAPS, NOFEAT},
    {CPU_BASED_MONITOR_EXITING, NOFEAT},
    {CPU_BASED_PAUSE_EXITING, NOFEAT},
    {CPU_BASED_ACTIVATE_SECONDARY_CONTROLS, NOFEAT},
};

static const struct ctl_cap proc2_caps[] = {
    {SECONDARY_EXEC_ENABLE_EPT, FEAT_EPT},
    {SECONDARY_EXEC_DESC, NOFEAT},
    {SECONDARY_EXEC_ENABLE_RDTSCP, FEAT_RDTSCP},
    {SECONDARY_EXEC_ENABLE_VPID, FEAT_VPID},
    {SECONDARY_EXEC_WBINVD_EXITING, NOFEAT},
    {SECONDARY_EXEC_UNRESTRICTED_GUEST, FEAT_UNRESTRICTED_GUEST},
    {SECONDARY_EXEC_RDRAND_EXITING, FEAT_RDRAND},
    {SECONDARY_EXEC_ENABLE_INVPCID, FEAT_INVPCID},
    {SECONDARY_EXEC_RDSEED_EXITING, FEAT_RDSEED},
    {SECONDARY_EXEC_MODE_BASED_EPT_EXEC, FEAT_MBEC},
    {SECONDARY_EXEC_TSC_SCALING, FEAT_VMX_TSC_SCALING},
};

static const struct ctl_cap proc3_caps[] = {
    {TERTIARY_EXEC_VIRT_SPEC_CTRL, FEAT_SPEC_CTRL_VIRT},
};

static const struct ctl_cap exit_caps[] = {
    {VM_EXIT_SAVE_DEBUG_CONTROLS, NOFEAT},
    {VM_EXIT_HOST_ADDR_SPACE_SIZE, FEAT_LM},
    {VM_EXIT_ACK_INTR_ON_EXIT, NOFEAT},
    {VM_EXIT_SAVE_IA32_PAT, FEAT_PAT},
    {VM_EXIT_LOAD_IA32_PAT, FEAT_PAT},
    {VM_EXIT_SAVE_IA32_EFER, NOFEAT},
    {VM_EXIT_LOAD_IA32_EFER, NOFEAT},
    {VM_EXIT_SAVE_VMX_PREEMPTION_TIMER, FEAT_VMX_PREEMPTION_TIMER},
    {VM_EXIT_LOAD_IA32_PKRS, FEAT_PKS},
};

static const struct ctl_cap entry_caps[] = {
    {VM_ENTRY_LOAD_DEBUG_CONTROLS, NOFEAT},
    {VM_ENTRY_IA32E_MODE, FEAT_LM},
    {VM_ENTRY_LOAD_IA32_PAT, FEAT_PAT},
    {VM_ENTRY_LOAD_IA32_EFER, NOFEAT},
    {VM_ENTRY_LOAD_IA32_PKRS, FEAT_PKS},
};

static uint64_t allowed1(const struct cpu_model *m, const struct ctl_cap *t, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i].feat == NOFEAT || model_has(m, t[i].feat))
            v |= t[i].bit;
    return v;
}

#define ALLOWED1(m, t) allowed1((m), (t), sizeof(t) / sizeof((t)[0]))

/* Control MSR: allowed-0 settings in 31:0, allowed-1 in 63:32 (Appendix A.3). */
static uint64_t ctl_msr(uint64_t must1, uint64_t may1) { return (may1 | must1) << 32 | must1; }

/* Which VMCS field groups exist on this model (IA32_VMX_VMCS_ENUM). */
static uint64_t vmcs_enum(const struct cpu_model *m, uint64_t *deps)
{
    bool present[VMCS_DEP_COUNT] = {false};
    present[VMCS_DEP_NONE] = true;
    present[VMCS_DEP_SECONDARY] = true;
    present[VMCS_DEP_PAT] = model_has(m, FEAT_PAT);
    present[VMCS_DEP_EFER] = true;
    present[VMCS_DEP_EPT] = model_has(m, FEAT_EPT);
    present[VMCS_DEP_VPID] = model_has(m, FEAT_VPID);
    present[VMCS_DEP_PKS] = model_has(m, FEAT_PKS);
    present[VMCS_DEP_TERTIARY] = model_has(m, FEAT_TERTIARY_CONTROLS);
    present[VMCS_DEP_SPEC_CTRL_VIRT] = model_has(m, FEAT_SPEC_CTRL_VIRT);
    present[VMCS_DEP_PREEMPTION_TIMER] = model_has(m, FEAT_VMX_PREEMPTION_TIMER);
    present[VMCS_DEP_TSC_SCALING] = model_has(m, FEAT_VMX_TSC_SCALING);
    *deps = 0;
    for (int i = 0; i < VMCS_DEP_COUNT; i++)
        if (present[i])
            *deps |= 1ull << i;
    return vmcs_enum_value_for(present);
}

static uint64_t ept_vpid_caps(const struct cpu_model *m)
{
    uint64_t v = 0;
    if (model_has(m, FEAT_EPT)) {
        v |= VMX_EPT_EXECUTE_ONLY_BIT | VMX_EPT_PAGE_WALK_4_BIT | VMX_EPTP_UC_BIT |
             VMX_EPTP_WB_BIT | VMX_EPT_2MB_PAGE_BIT | VMX_EPT_INVEPT_BIT |
             VMX_EPT_ADVANCED_EXIT_INFO | VMX_EPT_EXTENT_CONTEXT_BIT | VMX_EPT_EXTENT_GLOBAL_BIT;
        if (model_has(m, FEAT_GBPAGES))
            v |= VMX_EPT_1GB_PAGE_BIT;
        if (model_has(m, FEAT_EPT_5LEVEL))
            v |= VMX_EPT_PAGE_WALK_5_BIT;
        if (model_has(m, FEAT_EPT_AD))
            v |= VMX_EPT_AD_BIT;
    }
    if (model_has(m, FEAT_VPID))
        v |= VMX_VPID_INVVPID_BIT | VMX_VPID_EXTENT_INDIVIDUAL_ADDR_BIT |
             VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT | VMX_VPID_EXTENT_GLOBAL_CONTEXT_BIT |
             VMX_VPID_EXTENT_SINGLE_NON_GLOBAL_BIT;
    return v;
}

/* Preemption-timer rate: the timer counts down every 2^5 TSC cycles. */
#define VMXSIM_PREEMPTION_TIMER_RATE 5u
#define VMXSIM_CR3_TARGETS 4u

void vmx_caps_init(struct vmx_caps *caps, const struct cpu_model *m)
{
    uint64_t pin1 = ALLOWED1(m, pin_caps), proc1 = ALLOWED1(m, proc_caps);
    uint64_t exit1 = ALLOWED1(m, exit_caps), entry1 = ALLOWED1(m, entry_caps);
    *caps = (struct vmx_caps){0};
    caps->maxphyaddr = m->maxphyaddr;
    caps->basic = VMXSIM_VMCS_REVISION | (4096ull << VMX_BASIC_VMCS_SIZE_SHIFT) |
                  (VMX_BASIC_MEM_TYPE_WB << VMX_BASIC_MEM_TYPE_SHIFT) | VMX_BASIC_INOUT |
                  VMX_BASIC_TRUE_CTLS | VMX_BASIC_NO_HW_ERROR_CODE_CC;
    /* Default1 controls stay must-be-1 in the legacy MSRs; the TRUE MSRs
     * let the ones vmxsim can run with cleared be 0 (Appendix A.2). */
    caps->pinbased = ctl_msr(PIN_BASED_ALWAYSON_WITHOUT_TRUE_MSR, pin1);
    caps->true_pinbased = ctl_msr(PIN_BASED_ALWAYSON_WITHOUT_TRUE_MSR, pin1);
    caps->procbased = ctl_msr(CPU_BASED_ALWAYSON_WITHOUT_TRUE_MSR, proc1);
    caps->true_procbased = ctl_msr(CPU_BASED_ALWAYSON_WITHOUT_TRUE_MSR &
                                       ~(CPU_BASED_CR3_LOAD_EXITING | CPU_BASED_CR3_STORE_EXITING),
                                   proc1);
    caps->exit = ctl_msr(VM_EXIT_ALWAYSON_WITHOUT_TRUE_MSR, exit1);
    caps->true_exit = ctl_msr(VM_EXIT_ALWAYSON_WITHOUT_TRUE_MSR & ~VM_EXIT_SAVE_DEBUG_CONTROLS, exit1);
    caps->entry = ctl_msr(VM_ENTRY_ALWAYSON_WITHOUT_TRUE_MSR, entry1);
    caps->true_entry = ctl_msr(VM_ENTRY_ALWAYSON_WITHOUT_TRUE_MSR & ~VM_ENTRY_LOAD_DEBUG_CONTROLS, entry1);
    caps->procbased2 = ctl_msr(0, ALLOWED1(m, proc2_caps));
    caps->procbased3 = ALLOWED1(m, proc3_caps);
    caps->misc = VMXSIM_PREEMPTION_TIMER_RATE | VMX_MISC_SAVE_EFER_LMA | VMX_MISC_ACTIVITY_HLT |
                 VMX_MISC_ACTIVITY_SHUTDOWN | ((uint64_t)VMXSIM_CR3_TARGETS << VMX_MISC_CR3_TARGETS_SHIFT) |
                 VMX_MISC_ZERO_LEN_INS;
    if (model_has(m, FEAT_VMX_VMWRITE_ANY))
        caps->misc |= VMX_MISC_VMWRITE_SHADOW_RO_FIELDS;
    /* CR0.PE, NE, PG must be 1 in VMX operation; CR4.VMXE must be 1 (Appendix A.7, A.8). */
    caps->cr0_fixed0 = X86_CR0_PE | X86_CR0_NE | X86_CR0_PG;
    caps->cr0_fixed1 = 0xFFFFFFFFull;
    caps->cr4_fixed0 = X86_CR4_VMXE;
    caps->cr4_fixed1 = ~model_cr4_reserved(m);
    caps->vmcs_enum = vmcs_enum(m, &caps->vmcs_deps);
    caps->ept_vpid = ept_vpid_caps(m);
    caps->vmfunc = 0;
}

/* RDMSR of a capability MSR — SDM Vol. 3D Appendix A: present only with VMX,
 * PROCBASED_CTLS2 only with secondary controls, EPT_VPID_CAP only with EPT or
 * VPID, VMFUNC only with VM functions, PROCBASED_CTLS3 only with tertiary. */
bool vmx_caps_msr(const struct vmx_caps *caps, uint32_t index, uint64_t *val)
{
    bool secondary = (caps->procbased >> 32) & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS;
    bool tertiary = (caps->procbased >> 32) & CPU_BASED_ACTIVATE_TERTIARY_CONTROLS;
    uint64_t p2 = caps->procbased2 >> 32;
    switch (index) {
    case MSR_IA32_VMX_BASIC: *val = caps->basic; return true;
    case MSR_IA32_VMX_PINBASED_CTLS: *val = caps->pinbased; return true;
    case MSR_IA32_VMX_PROCBASED_CTLS: *val = caps->procbased; return true;
    case MSR_IA32_VMX_EXIT_CTLS: *val = caps->exit; return true;
    case MSR_IA32_VMX_ENTRY_CTLS: *val = caps->entry; return true;
    case MSR_IA32_VMX_MISC: *val = caps->misc; return true;
    case MSR_IA32_VMX_CR0_FIXED0: *val = caps->cr0_fixed0; return true;
    case MSR_IA32_VMX_CR0_FIXED1: *val = caps->cr0_fixed1; return true;
    case MSR_IA32_VMX_CR4_FIXED0: *val = caps->cr4_fixed0; return true;
    case MSR_IA32_VMX_CR4_FIXED1: *val = caps->cr4_fixed1; return true;
    case MSR_IA32_VMX_VMCS_ENUM: *val = caps->vmcs_enum; return true;
    case MSR_IA32_VMX_PROCBASED_CTLS2: *val = caps->procbased2; return secondary;
    case MSR_IA32_VMX_EPT_VPID_CAP:
        *val = caps->ept_vpid;
        return secondary && (p2 & (SECONDARY_EXEC_ENABLE_EPT | SECONDARY_EXEC_ENABLE_VPID));
    case MSR_IA32_VMX_TRUE_PINBASED_CTLS: *val = caps->true_pinbased; return true;
    case MSR_IA32_VMX_TRUE_PROCBASED_CTLS: *val = caps->true_procbased; return true;
    case MSR_IA32_VMX_TRUE_EXIT_CTLS: *val = caps->true_exit; return true;
    case MSR_IA32_VMX_TRUE_ENTRY_CTLS: *val = caps->true_entry; return true;
    case MSR_IA32_VMX_VMFUNC: *val = caps->vmfunc; return secondary && (p2 & SECONDARY_EXEC_ENABLE_VMFUNC);
    case MSR_IA32_VMX_PROCBASED_CTLS3: *val = caps->procbased3; return tertiary;
    default: return false;
    }
}

/* A field exists when its encoding is valid and its feature group is present. */
bool vmx_field_supported(const struct vmx *v, uint32_t enc)
{
    return vmcs_field_valid(enc) && ((v->caps.vmcs_deps >> vmcs_field_dep(enc)) & 1);
}

/* EPTP validity — SDM Vol. 3C §27.2.1.1 (also used by INVEPT). */
bool vmx_eptp_valid(const struct vmx *v, uint64_t eptp)
{
    uint64_t caps = v->caps.ept_vpid, mt = eptp & VMX_EPTP_MT_MASK, pwl = eptp & VMX_EPTP_PWL_MASK;
    if (!((mt == VMX_EPTP_MT_UC && (caps & VMX_EPTP_UC_BIT)) || (mt == VMX_EPTP_MT_WB && (caps & VMX_EPTP_WB_BIT))))
        return false;
    if (!(pwl == VMX_EPTP_PWL_4 || (pwl == VMX_EPTP_PWL_5 && (caps & VMX_EPT_PAGE_WALK_5_BIT))))
        return false;
    if ((eptp & VMX_EPTP_AD_ENABLE_BIT) && !(caps & VMX_EPT_AD_BIT))
        return false;
    if ((eptp & VMX_EPTP_SSS_BIT) && !(caps & VMX_EPT_SUPERVISOR_SHADOW_STACK))
        return false;
    return !(eptp & VMX_EPTP_RESERVED_11_8) && !(eptp >> v->caps.maxphyaddr);
}
