/*
 * VM-entry checks: the check table (entry_checks.def) and what every check
 * file shares — recording a failure, running SDM-ordered steps, and the
 * capability, address and MSR-value helpers (DESIGN §3, STYLE 4).
 */
#include "vmx/checks_common.h"

static const char *const check_name[VMX_CHECK_COUNT] = {
    [VMX_CHECK_NONE] = "NONE",
#define VMX_CHECK(id, stage, msg) [VMX_CHECK_##id] = #id,
#include "vmx/entry_checks.def"
#undef VMX_CHECK
};

static const char *const check_message[VMX_CHECK_COUNT] = {
    [VMX_CHECK_NONE] = "no check failed",
#define VMX_CHECK(id, stage, msg) [VMX_CHECK_##id] = msg,
#include "vmx/entry_checks.def"
#undef VMX_CHECK
};

static const enum vmx_check_stage check_stage[VMX_CHECK_COUNT] = {
    [VMX_CHECK_NONE] = VMX_STAGE_CONTROLS,
#define VMX_CHECK(id, stage, msg) [VMX_CHECK_##id] = stage,
#include "vmx/entry_checks.def"
#undef VMX_CHECK
};

const char *vmx_check_name(enum vmx_check_id id)
{
    return (unsigned)id < VMX_CHECK_COUNT ? check_name[id] : NULL;
}

const char *vmx_check_message(enum vmx_check_id id)
{
    return (unsigned)id < VMX_CHECK_COUNT ? check_message[id] : NULL;
}

enum vmx_check_stage vmx_check_stage_of(enum vmx_check_id id)
{
    return (unsigned)id < VMX_CHECK_COUNT ? check_stage[id] : VMX_STAGE_CONTROLS;
}

/* SDM Vol. 3C §27.8: exit qualification of a VM entry failing a guest-state check. */
uint32_t vmx_check_qualification(enum vmx_check_id id)
{
    switch (id) {
    case VMX_CHECK_GUEST_PDPTE0_RESERVED:
    case VMX_CHECK_GUEST_PDPTE1_RESERVED:
    case VMX_CHECK_GUEST_PDPTE2_RESERVED:
    case VMX_CHECK_GUEST_PDPTE3_RESERVED:
        return ENTRY_FAIL_PDPTE;
    case VMX_CHECK_GUEST_INTR_NMI_STI:
        return ENTRY_FAIL_NMI;
    case VMX_CHECK_GUEST_LINK_PTR_ALIGN:
    case VMX_CHECK_GUEST_LINK_PTR_WIDTH:
    case VMX_CHECK_GUEST_LINK_PTR_REVISION:
    case VMX_CHECK_GUEST_LINK_PTR_SHADOW:
    case VMX_CHECK_GUEST_LINK_PTR_CURRENT:
    case VMX_CHECK_GUEST_LINK_PTR_EXECUTIVE:
        return ENTRY_FAIL_VMCS_LINK_PTR;
    default:
        return ENTRY_FAIL_DEFAULT;
    }
}

/*
 * SDM Vol. 3C §27.2.1.1, §27.2.1.2: with "activate secondary controls" (or
 * its tertiary / secondary-exit counterpart) 0, VM entry performs no check on
 * that field and the processor operates as if all its controls were 0.
 */
void chk_init(struct vmx_chk *c, const struct vmx_caps *caps, const uint8_t *vmcs,
              const struct vmx_mem *mem, const struct vmx_entry_env *env,
              struct vmx_check_fail *fail)
{
    *c = (struct vmx_chk){.caps = caps, .vmcs = vmcs, .mem = mem, .fail = fail};
    c->env = env ? *env : VMX_ENTRY_ENV_DEFAULT;
    c->pin = VMCS_READ32(vmcs, PIN_BASED_VM_EXEC_CONTROL);
    c->proc = VMCS_READ32(vmcs, CPU_BASED_VM_EXEC_CONTROL);
    c->exit = VMCS_READ32(vmcs, VM_EXIT_CONTROLS);
    c->entry = VMCS_READ32(vmcs, VM_ENTRY_CONTROLS);
    if (c->proc & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS)
        c->proc2 = VMCS_READ32(vmcs, SECONDARY_VM_EXEC_CONTROL);
    if (c->proc & CPU_BASED_ACTIVATE_TERTIARY_CONTROLS)
        c->proc3 = VMCS_READ64(vmcs, TERTIARY_VM_EXEC_CONTROL);
    if (c->exit & VM_EXIT_ACTIVATE_SECONDARY_CONTROLS)
        c->exit2 = VMCS_READ64(vmcs, SECONDARY_VM_EXIT_CONTROLS);
    *fail = (struct vmx_check_fail){.id = VMX_CHECK_NONE};
}

bool chk_fail(struct vmx_chk *c, enum vmx_check_id id, uint64_t value)
{
    enum vmx_check_stage stage = vmx_check_stage_of(id);
    *c->fail = (struct vmx_check_fail){
        .id = id,
        .stage = stage,
        .qualification = stage == VMX_STAGE_GUEST ? vmx_check_qualification(id) : 0,
        .value = value,
    };
    return true;
}

uint64_t chk_read(const struct vmx_chk *c, uint32_t enc)
{
    uint64_t v = 0;
    if (vmcs_read(c->vmcs, enc, &v) != VMXSIM_OK)
        return 0;
    return v;
}

uint32_t chk_injection(const struct vmx_chk *c)
{
    uint32_t info = VMCS_READ32(c->vmcs, VM_ENTRY_INTR_INFO_FIELD);
    return (info & INTR_INFO_VALID_MASK) ? info : 0;
}

bool chk_run(struct vmx_chk *c, const chk_step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!steps[i](c))
            return false;
    return true;
}

/* SDM Vol. 3D Appendix A.2: bit 55 of IA32_VMX_BASIC selects the TRUE_* MSRs. */
static bool true_ctls(const struct vmx_caps *caps)
{
    return (caps->basic & VMX_BASIC_TRUE_CTLS) != 0;
}

uint64_t chk_pin_msr(const struct vmx_caps *caps)
{
    return true_ctls(caps) ? caps->true_pinbased : caps->pinbased;
}

uint64_t chk_proc_msr(const struct vmx_caps *caps)
{
    return true_ctls(caps) ? caps->true_procbased : caps->procbased;
}

uint64_t chk_exit_msr(const struct vmx_caps *caps)
{
    return true_ctls(caps) ? caps->true_exit : caps->exit;
}

uint64_t chk_entry_msr(const struct vmx_caps *caps)
{
    return true_ctls(caps) ? caps->true_entry : caps->entry;
}

/*
 * Linear-address width (CPUID.80000008H:EAX[15:8]): 57 when the processor
 * supports 5-level paging, which vmxsim reports as CR4.LA57 being allowed
 * by IA32_VMX_CR4_FIXED1.
 */
unsigned chk_la_width(const struct vmx_caps *caps)
{
    return (caps->cr4_fixed1 & X86_CR4_LA57) ? 57 : 48;
}

bool chk_canonical(const struct vmx_caps *caps, uint64_t la)
{
    return x86_is_canonical(la, chk_la_width(caps));
}

bool chk_paddr_ok(const struct vmx_caps *caps, uint64_t pa)
{
    return caps->maxphyaddr >= 64 || (pa >> caps->maxphyaddr) == 0;
}

bool chk_addr_ok(const struct vmx_caps *caps, uint64_t pa, uint64_t align_mask)
{
    return (pa & align_mask) == 0 && chk_paddr_ok(caps, pa);
}

bool chk_pat_ok(uint64_t pat)
{
    for (unsigned i = 0; i < 8; i++) {
        unsigned type = (unsigned)(pat >> (8 * i)) & 0xFFu;
        if (type == 2 || type == 3 || type > 7)
            return false;
    }
    return true;
}
