/*
 * VMX instructions in VMX root operation (SDM Vol. 3C chapter 31 "VMX
 * Instruction Reference"): the #UD and #GP conditions in the order the
 * pseudocode checks them, then VMsucceed / VMfailInvalid / VMfailValid with
 * the VM-instruction error numbers of Table 31-1. VM exits caused by these
 * instructions in non-root operation are decided by the core (intercept.c).
 */
#include <string.h>

#include "vmx/vmcs.h"
#include "vmx/vmx_priv.h"

void vmx_init(struct vmx *v, const struct cpu_model *model)
{
    memset(v, 0, sizeof *v);
    vmx_caps_init(&v->caps, model);
    v->current_vmcs = VMX_NO_VMCS;
}

uint8_t *vmx_current_vmcs(const struct vmx *v, const struct vmx_ops *ops)
{
    if (v->current_vmcs == VMX_NO_VMCS)
        return NULL;
    return ops->ptr(ops->ctx, v->current_vmcs, 4096);
}

static void succeed(struct vmx_result *r) { r->kind = VMXR_SUCCEED; }

static void fault(struct vmx_result *r, uint8_t vector)
{
    r->kind = VMXR_FAULT;
    r->fault = (struct x86_fault){.vector = vector, .has_error = vector == X86_GP};
}

/* VMfail(error) — SDM Vol. 3C §31.2: VMfailValid with a current VMCS, else VMfailInvalid. */
void vmx_fail(struct vmx *v, const struct vmx_ops *ops, struct vmx_result *r, uint32_t err)
{
    uint8_t *vmcs = vmx_current_vmcs(v, ops);
    if (!vmcs) {
        r->kind = VMXR_FAIL_INVALID;
        return;
    }
    r->kind = VMXR_FAIL_VALID;
    r->error = err;
    VMCS_WRITE32(vmcs, VM_INSTRUCTION_ERROR, err);
}

/* Physical-address operand checks: 4 KiB aligned, within MAXPHYADDR. */
static bool bad_pa(const struct vmx *v, uint64_t pa)
{
    return (pa & 0xFFF) || (pa >> v->caps.maxphyaddr);
}

/*
 * #UD conditions shared by every VMX instruction but VMXON: not in VMX
 * operation, RFLAGS.VM, or compatibility mode (SDM Vol. 3C ch. 31).
 */
static bool common_ud(const struct vmx *v, const struct vmx_cpu *cpu)
{
    return !v->in_vmx || !cpu->protected_mode || cpu->v86 || (cpu->ia32e && !cpu->cs_l);
}

/* VMXON — SDM Vol. 3C §31.3 "VMXON". */
static void do_vmxon(struct vmx *v, const struct vmx_cpu *cpu, const struct vmx_insn *in,
                     const struct vmx_ops *ops, struct vmx_result *r)
{
    if (!cpu->protected_mode || !(cpu->cr4 & X86_CR4_VMXE) || cpu->v86 || (cpu->ia32e && !cpu->cs_l))
        return fault(r, X86_UD);
    if (v->in_vmx) {
        if (cpu->cpl > 0)
            return fault(r, X86_GP);
        return vmx_fail(v, ops, r, VMXERR_VMXON_IN_VMX_ROOT_OPERATION);
    }
    bool cr0_ok = (cpu->cr0 & v->caps.cr0_fixed0) == v->caps.cr0_fixed0 &&
                  !(cpu->cr0 & ~v->caps.cr0_fixed1 & 0xFFFFFFFFull);
    bool cr4_ok = (cpu->cr4 & v->caps.cr4_fixed0) == v->caps.cr4_fixed0 &&
                  !(cpu->cr4 & ~v->caps.cr4_fixed1);
    bool fc_ok = (cpu->feature_control & FEAT_CTL_LOCKED_BIT) &&
                 (cpu->feature_control & FEAT_CTL_VMX_OUTSIDE_SMX);
    if (cpu->cpl > 0 || !cr0_ok || !cr4_ok || !fc_ok)
        return fault(r, X86_GP);
    const uint8_t *region = bad_pa(v, in->ptr) ? NULL : ops->ptr(ops->ctx, in->ptr, 4096);
    if (!region || vmcs_region_revision(region) != VMXSIM_VMCS_REVISION ||
        vmcs_region_is_shadow(region)) {
        r->kind = VMXR_FAIL_INVALID;
        return;
    }
    v->in_vmx = true;
    v->vmxon_ptr = in->ptr;
    v->current_vmcs = VMX_NO_VMCS;
    v->blocking_init = true;
    succeed(r);
}

/* VMXOFF — SDM Vol. 3C §31.3 "VMXOFF". */
static void do_vmxoff(struct vmx *v, struct vmx_result *r)
{
    v->in_vmx = false;
    v->blocking_init = false;
    v->current_vmcs = VMX_NO_VMCS;
    r->kind = VMXR_VMXOFF_DONE;
}

/* VMCLEAR — SDM Vol. 3C §31.3 "VMCLEAR". */
static void do_vmclear(struct vmx *v, const struct vmx_insn *in,
                       const struct vmx_ops *ops, struct vmx_result *r)
{
    uint8_t *region = bad_pa(v, in->ptr) ? NULL : ops->ptr(ops->ctx, in->ptr, 4096);
    if (!region)
        return vmx_fail(v, ops, r, VMXERR_VMCLEAR_INVALID_ADDRESS);
    if (in->ptr == v->vmxon_ptr)
        return vmx_fail(v, ops, r, VMXERR_VMCLEAR_VMXON_POINTER);
    vmcs_region_clear(region);
    if (in->ptr == v->current_vmcs)
        v->current_vmcs = VMX_NO_VMCS;
    succeed(r);
}

/* VMPTRLD — SDM Vol. 3C §31.3 "VMPTRLD". */
static void do_vmptrld(struct vmx *v, const struct vmx_insn *in,
                       const struct vmx_ops *ops, struct vmx_result *r)
{
    uint8_t *region = bad_pa(v, in->ptr) ? NULL : ops->ptr(ops->ctx, in->ptr, 4096);
    if (!region)
        return vmx_fail(v, ops, r, VMXERR_VMPTRLD_INVALID_ADDRESS);
    if (in->ptr == v->vmxon_ptr)
        return vmx_fail(v, ops, r, VMXERR_VMPTRLD_VMXON_POINTER);
    /* No VMCS shadowing: a shadow-VMCS indicator is as bad as a wrong revision. */
    if (vmcs_region_revision(region) != VMXSIM_VMCS_REVISION || vmcs_region_is_shadow(region))
        return vmx_fail(v, ops, r, VMXERR_VMPTRLD_INCORRECT_VMCS_REVISION_ID);
    if (!vmcs_region_formatted(region))
        vmcs_region_clear(region); /* never VMCLEARed: give it our layout */
    v->current_vmcs = in->ptr;
    succeed(r);
}

/* VMPTRST — SDM Vol. 3C §31.3 "VMPTRST". */
static void do_vmptrst(struct vmx *v, struct vmx_result *r)
{
    r->value = v->current_vmcs;
    succeed(r);
}

/* VMREAD — SDM Vol. 3C §31.3 "VMREAD". */
static void do_vmread(struct vmx *v, const struct vmx_cpu *cpu, const struct vmx_insn *in,
                      const struct vmx_ops *ops, struct vmx_result *r)
{
    uint8_t *vmcs = vmx_current_vmcs(v, ops);
    if (!vmcs) {
        r->kind = VMXR_FAIL_INVALID;
        return;
    }
    uint64_t val;
    if ((cpu->cs_l && (in->field >> 32)) || !vmx_field_supported(v, (uint32_t)in->field) ||
        vmcs_read(vmcs, (uint32_t)in->field, &val) != VMXSIM_OK)
        return vmx_fail(v, ops, r, VMXERR_UNSUPPORTED_VMCS_COMPONENT);
    r->value = cpu->cs_l ? val : (uint32_t)val;
    succeed(r);
}

/* VMWRITE — SDM Vol. 3C §31.3 "VMWRITE". */
static void do_vmwrite(struct vmx *v, const struct vmx_cpu *cpu, const struct vmx_insn *in,
                       const struct vmx_ops *ops, struct vmx_result *r)
{
    uint8_t *vmcs = vmx_current_vmcs(v, ops);
    if (!vmcs) {
        r->kind = VMXR_FAIL_INVALID;
        return;
    }
    uint32_t enc = (uint32_t)in->field;
    if ((cpu->cs_l && (in->field >> 32)) || !vmx_field_supported(v, enc))
        return vmx_fail(v, ops, r, VMXERR_UNSUPPORTED_VMCS_COMPONENT);
    if (vmcs_field_read_only(enc) && !(v->caps.misc & VMX_MISC_VMWRITE_SHADOW_RO_FIELDS))
        return vmx_fail(v, ops, r, VMXERR_VMWRITE_READ_ONLY_VMCS_COMPONENT);
    uint64_t val = cpu->cs_l ? in->value : (uint32_t)in->value;
    if (vmcs_write(vmcs, enc, val) != VMXSIM_OK)
        return vmx_fail(v, ops, r, VMXERR_UNSUPPORTED_VMCS_COMPONENT);
    succeed(r);
}

/* INVEPT — SDM Vol. 3C §31.3 "INVEPT". */
static void do_invept(struct vmx *v, const struct vmx_insn *in,
                      const struct vmx_ops *ops, struct vmx_result *r)
{
    uint64_t caps = v->caps.ept_vpid;
    bool single = in->type == VMX_EPT_EXTENT_CONTEXT && (caps & VMX_EPT_EXTENT_CONTEXT_BIT);
    bool global = in->type == VMX_EPT_EXTENT_GLOBAL && (caps & VMX_EPT_EXTENT_GLOBAL_BIT);
    if (!single && !global)
        return vmx_fail(v, ops, r, VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
    if (single && !vmx_eptp_valid(v, in->desc[0]))
        return vmx_fail(v, ops, r, VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
    r->flush_ept = true;
    r->flush_all = global;
    r->inv_type = in->type;
    r->eptp = in->desc[0];
    succeed(r);
}

/* INVVPID — SDM Vol. 3C §31.3 "INVVPID". */
static void do_invvpid(struct vmx *v, const struct vmx_cpu *cpu, const struct vmx_insn *in,
                       const struct vmx_ops *ops, struct vmx_result *r)
{
    uint64_t caps = v->caps.ept_vpid;
    static const uint64_t type_bit[4] = {
        VMX_VPID_EXTENT_INDIVIDUAL_ADDR_BIT, VMX_VPID_EXTENT_SINGLE_CONTEXT_BIT,
        VMX_VPID_EXTENT_GLOBAL_CONTEXT_BIT, VMX_VPID_EXTENT_SINGLE_NON_GLOBAL_BIT};
    uint64_t vpid = in->desc[0] & 0xFFFF, la = in->desc[1];
    if (in->type > 3 || !(caps & type_bit[in->type]) || (in->desc[0] >> 16))
        return vmx_fail(v, ops, r, VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
    if (in->type != VMX_VPID_EXTENT_ALL_CONTEXT && vpid == 0)
        return vmx_fail(v, ops, r, VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
    unsigned width = (cpu->cr4 & X86_CR4_LA57) ? 57 : 48;
    if (in->type == VMX_VPID_EXTENT_INDIVIDUAL_ADDR && !x86_is_canonical(la, width))
        return vmx_fail(v, ops, r, VMXERR_INVALID_OPERAND_TO_INVEPT_INVVPID);
    r->flush_vpid = true;
    r->flush_all = in->type == VMX_VPID_EXTENT_ALL_CONTEXT;
    r->inv_type = in->type;
    r->vpid = (uint16_t)vpid;
    r->flush_la_valid = in->type == VMX_VPID_EXTENT_INDIVIDUAL_ADDR;
    r->flush_la = la;
    succeed(r);
}

/*
 * VMCALL in VMX root operation — SDM Vol. 3C §31.3 "VMCALL": without the
 * dual-monitor treatment (vmxsim has no SMM) it is VMfail(1).
 */
static void do_vmcall(struct vmx *v, const struct vmx_cpu *cpu, const struct vmx_ops *ops,
                      struct vmx_result *r)
{
    if (!v->in_vmx || cpu->v86 || (cpu->ia32e && !cpu->cs_l))
        return fault(r, X86_UD);
    if (cpu->cpl > 0)
        return fault(r, X86_GP);
    vmx_fail(v, ops, r, VMXERR_VMCALL_IN_VMX_ROOT_OPERATION);
}

/*
 * The checks every VMX instruction but VMXON, VMCALL and VMFUNC begins with
 * (SDM Vol. 3C ch. 31): #UD outside VMX operation, in virtual-8086 or
 * compatibility mode, or when the processor lacks the instruction
 * (INVEPT/INVVPID per IA32_VMX_EPT_VPID_CAP); then #GP(0) at CPL > 0.
 */
static bool root_prologue(const struct vmx *v, const struct vmx_cpu *cpu, enum vmx_insn_op op,
                          struct vmx_result *r)
{
    if (op == VMXI_VMXON || op == VMXI_VMCALL || op == VMXI_VMFUNC)
        return true;
    bool absent = (op == VMXI_INVEPT && !(v->caps.ept_vpid & VMX_EPT_INVEPT_BIT)) ||
                  (op == VMXI_INVVPID && !(v->caps.ept_vpid & VMX_VPID_INVVPID_BIT));
    if (common_ud(v, cpu) || absent) {
        fault(r, X86_UD);
        return false;
    }
    if (cpu->cpl > 0) {
        fault(r, X86_GP);
        return false;
    }
    return true;
}

void vmx_execute(struct vmx *v, const struct vmx_cpu *cpu, const struct vmx_insn *in,
                 struct x86_state *st, const struct vmx_ops *ops, struct vmx_result *r)
{
    memset(r, 0, sizeof *r);
    if (!root_prologue(v, cpu, in->op, r))
        return;
    switch (in->op) {
    case VMXI_VMXON: do_vmxon(v, cpu, in, ops, r); break;
    case VMXI_VMXOFF: do_vmxoff(v, r); break;
    case VMXI_VMCLEAR: do_vmclear(v, in, ops, r); break;
    case VMXI_VMPTRLD: do_vmptrld(v, in, ops, r); break;
    case VMXI_VMPTRST: do_vmptrst(v, r); break;
    case VMXI_VMREAD: do_vmread(v, cpu, in, ops, r); break;
    case VMXI_VMWRITE: do_vmwrite(v, cpu, in, ops, r); break;
    case VMXI_VMLAUNCH:
    case VMXI_VMRESUME:
        vmx_vmentry(v, cpu, in->op == VMXI_VMLAUNCH, st, ops, r);
        break;
    case VMXI_INVEPT: do_invept(v, in, ops, r); break;
    case VMXI_INVVPID: do_invvpid(v, cpu, in, ops, r); break;
    case VMXI_VMCALL: do_vmcall(v, cpu, ops, r); break;
    case VMXI_VMFUNC: fault(r, X86_UD); break; /* #UD outside non-root operation */
    }
}
