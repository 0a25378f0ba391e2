/*
 * The CPU core's side of VMX: decode VMX instructions and their operands,
 * hand them to the VMX unit, apply the results (RFLAGS per VMsucceed/
 * VMfail, destinations, whole-state VM transitions), turn non-root events
 * into VM exits with their instruction length/information, and inject
 * events on VM entry. SDM Vol. 3C chapters 26–28, 31.
 */
#include <string.h>

#include "cpu/operand.h"
#include "cpu/vmx_glue.h"
#include "vmx/vmcs.h"

/* --- services the VMX unit uses (struct vmx_ops) ---------------------- */

static uint8_t *ops_ptr(void *ctx, uint64_t pa, size_t len)
{
    struct cpu *c = ctx;
    if (pa >= c->ram_size || len > c->ram_size - pa)
        return NULL;
    return c->ram + pa;
}

static bool ops_rdmsr(void *ctx, uint32_t idx, uint64_t *val) { return cpu_rdmsr(ctx, idx, val); }
static bool ops_wrmsr(void *ctx, uint32_t idx, uint64_t val) { return cpu_wrmsr(ctx, idx, val); }

static bool ops_load_pdptes(void *ctx, const struct x86_state *st, uint64_t pdpte[4])
{
    struct cpu *c = ctx;
    struct paging_state ps;
    cpu_paging_state(c, &ps);
    ps.cr0 = st->cr0;
    ps.cr3 = st->cr3;
    ps.cr4 = st->cr4;
    ps.efer = st->efer;
    return paging_load_pdptes(&ps, cpu_phys_mem(c), st->cr3, pdpte);
}

const struct vmx_ops *cpu_vmx_ops(struct cpu *c)
{
    c->vmx_ops = (struct vmx_ops){.ctx = c, .ptr = ops_ptr, .rdmsr = ops_rdmsr,
                                  .wrmsr = ops_wrmsr, .load_pdptes = ops_load_pdptes};
    return &c->vmx_ops;
}

/* --- RFLAGS for VMsucceed / VMfailInvalid / VMfailValid (SDM §31.2) ---- */

#define VMX_FLAGS (X86_RFLAGS_CF | X86_RFLAGS_PF | X86_RFLAGS_AF | X86_RFLAGS_ZF | X86_RFLAGS_SF | X86_RFLAGS_OF)

/* fl: RFLAGS before the instruction. */
static void set_vmx_flags(struct cpu *c, uint64_t fl, uint64_t set)
{
    cpu_set_reg(c, UC_X86_REG_RFLAGS, (fl & ~VMX_FLAGS) | set);
}

static void advance_past(struct cpu *c, const cs_insn *insn)
{
    uint64_t rip = insn->address + insn->size;
    if (cpu_code_bits(c) != 64)
        rip &= 0xFFFFFFFFull;
    cpu_set_reg(c, UC_X86_REG_RIP, rip);
    c->insns++;
    c->cycles++;
}

/* --- the VMX-instruction information field (SDM §28.2.5, Table 28-14) -- */

static unsigned addr_size_code(const cs_insn *insn)
{
    unsigned a = insn->detail->x86.addr_size;
    return a == 2 ? 0 : a == 4 ? 1 : 2;
}

static unsigned seg_code(x86_reg seg, x86_reg base)
{
    switch (seg) {
    case X86_REG_ES: return 0;
    case X86_REG_CS: return 1;
    case X86_REG_SS: return 2;
    case X86_REG_FS: return 4;
    case X86_REG_GS: return 5;
    case X86_REG_DS: return 3;
    default:
        return (base == X86_REG_RSP || base == X86_REG_RBP || base == X86_REG_ESP || base == X86_REG_EBP) ? 2 : 3;
    }
}

/*
 * Memory-operand part of the instruction information; *disp gets the
 * exit qualification: the displacement, or for RIP-relative addressing the
 * displacement plus the next RIP (the operand's address).
 */
static uint32_t mem_info(const cs_insn *insn, const cs_x86_op *op, uint64_t *disp)
{
    uint32_t info = addr_size_code(insn) << 7;
    int idx = op_sdm_gpr(op->mem.index), base = op_sdm_gpr(op->mem.base);
    if (op->mem.base == X86_REG_RIP) {
        *disp = (uint64_t)op->mem.disp + insn->address + insn->size;
        return info | seg_code(op->mem.segment, op->mem.base) << 15 | 1u << 22 | 1u << 27;
    }
    switch (op->mem.scale) {
    case 2: info |= 1; break;
    case 4: info |= 2; break;
    case 8: info |= 3; break;
    default: break;
    }
    info |= seg_code(op->mem.segment, op->mem.base) << 15;
    info |= idx >= 0 ? (uint32_t)idx << 18 : 1u << 22;
    info |= base >= 0 ? (uint32_t)base << 23 : 1u << 27;
    *disp = (uint64_t)op->mem.disp;
    return info;
}

/* Identity of a descriptor-table instruction (Tables 28-10, 28-11, bits 29:28). */
static int desc_identity(unsigned id)
{
    switch (id) {
    case X86_INS_SGDT: case X86_INS_SLDT: return 0;
    case X86_INS_SIDT: case X86_INS_STR: return 1;
    case X86_INS_LGDT: case X86_INS_LLDT: return 2;
    case X86_INS_LIDT: case X86_INS_LTR: return 3;
    default: return -1;
    }
}

/* RDRAND/RDSEED: destination register and operand size (Table 28-12). */
static uint32_t rand_info(const cs_insn *insn)
{
    const cs_x86_op *op = &insn->detail->x86.operands[0];
    uint32_t size = op->size == 2 ? 0 : op->size == 4 ? 1 : 2;
    return (uint32_t)op_sdm_gpr(op->reg) << 3 | size << 11;
}

/* Instruction information and qualification of a VMX instruction exit. */
static uint32_t vmx_insn_info(const cs_insn *insn, uint64_t *qual)
{
    const cs_x86 *x = &insn->detail->x86;
    uint32_t info = 0;
    *qual = 0;
    if (insn->id == X86_INS_RDRAND || insn->id == X86_INS_RDSEED)
        return rand_info(insn);
    int ident = desc_identity(insn->id);
    if (ident >= 0) {
        const cs_x86_op *op = &x->operands[0];
        if (op->type == X86_OP_REG) /* SLDT/STR/LLDT/LTR with a register */
            return 1u << 10 | (uint32_t)op_sdm_gpr(op->reg) << 3 | addr_size_code(insn) << 7 |
                   (uint32_t)ident << 28;
        info = mem_info(insn, op, qual) | (uint32_t)ident << 28;
        if (insn->id == X86_INS_SGDT || insn->id == X86_INS_SIDT || insn->id == X86_INS_LGDT ||
            insn->id == X86_INS_LIDT)
            info |= (x->prefix[2] == 0x66 ? 0u : 1u) << 11; /* operand size: 16 or 32 bits */
        return info;
    }
    for (int i = 0; i < x->op_count; i++) {
        const cs_x86_op *op = &x->operands[i];
        if (op->type == X86_OP_MEM)
            info |= mem_info(insn, op, qual);
    }
    if (insn->id == X86_INS_VMREAD || insn->id == X86_INS_VMWRITE) {
        /* VMREAD r/m, reg2; VMWRITE reg2, r/m: reg2 holds the field encoding. */
        const cs_x86_op *rm = &x->operands[insn->id == X86_INS_VMREAD ? 0 : 1];
        const cs_x86_op *r2 = &x->operands[insn->id == X86_INS_VMREAD ? 1 : 0];
        if (rm->type == X86_OP_REG)
            info |= 1u << 10 | (uint32_t)op_sdm_gpr(rm->reg) << 3;
        info |= (uint32_t)op_sdm_gpr(r2->reg) << 28;
    } else if (insn->id == X86_INS_INVEPT || insn->id == X86_INS_INVVPID || insn->id == X86_INS_INVPCID) {
        info |= (uint32_t)op_sdm_gpr(x->operands[0].reg) << 28;
    }
    return info;
}

/* --- VM exits ----------------------------------------------------------- */

static void vmx_abort(struct cpu *c, uint32_t indicator)
{
    char msg[96];
    snprintf(msg, sizeof msg, "VMX abort (indicator %u): the processor shut down", indicator);
    cpu_request_stop(c, VMXSIM_STOP_TRIPLE_FAULT, 0, msg);
}

/*
 * VMX-preemption timer (SDM Vol. 3C §26.5.1): counts down at the TSC rate
 * divided by 2^IA32_VMX_MISC[4:0] while the guest runs; "save VMX-preemption
 * timer value" stores what is left on VM exit (§28.3.3).
 */
static void preemption_timer_entry(struct cpu *c)
{
    uint8_t *vmcs = vmx_current_vmcs(&c->vmx, cpu_vmx_ops(c));
    unsigned rate = (unsigned)(c->vmx.caps.misc & VMX_MISC_PREEMPTION_TIMER_RATE_MASK);
    c->vmx.preempt_deadline = 0;
    if (VMCS_READ32(vmcs, PIN_BASED_VM_EXEC_CONTROL) & PIN_BASED_VMX_PREEMPTION_TIMER)
        c->vmx.preempt_deadline = c->cycles + ((uint64_t)VMCS_READ32(vmcs, VMX_PREEMPTION_TIMER_VALUE) << rate);
}

static void preemption_timer_exit(struct cpu *c)
{
    uint8_t *vmcs = vmx_current_vmcs(&c->vmx, cpu_vmx_ops(c));
    unsigned rate = (unsigned)(c->vmx.caps.misc & VMX_MISC_PREEMPTION_TIMER_RATE_MASK);
    if (!(VMCS_READ32(vmcs, VM_EXIT_CONTROLS) & VM_EXIT_SAVE_VMX_PREEMPTION_TIMER))
        return;
    uint64_t d = c->vmx.preempt_deadline, left = d > c->cycles ? (d - c->cycles) >> rate : 0;
    VMCS_WRITE32(vmcs, VMX_PREEMPTION_TIMER_VALUE, (uint32_t)left);
}

/* Perform a VM exit: the guest state is the core's current state. */
void cpu_vmexit(struct cpu *c, struct vmx_exit *ex)
{
    struct x86_state st;
    uint32_t abort = 0;
    preemption_timer_exit(c);
    cpu_save_state(c, &st);
    cpu_ctx_leave(c, &st);
    c->vmexits++;
    if (c->debug)
        fprintf(c->log, "[vmexit] %s (%u) qual %#llx rip %#llx\n", vmx_exit_reason_name(ex->reason),
                ex->reason & 0xFFFF, (unsigned long long)ex->qualification, (unsigned long long)st.rip);
    /* SDM Vol. 3C §29.4.3.2: without VPIDs, VM exit flushes VPID 0's mappings. */
    tlb_vm_exit(c->tlb, c->vpid_on);
    c->ept_on = false;
    c->vpid_on = false;
    c->vpid = 0;
    if (vmx_vmexit(&c->vmx, ex, &st, cpu_vmx_ops(c), &abort) != VMX_EXIT_OK) {
        vmx_abort(c, abort);
        return;
    }
    cpu_load_state(c, &st);
}

/* A VM exit caused by the instruction at RIP (length and information from its decode). */
void cpu_vmexit_insn(struct cpu *c, struct vmx_exit *ex, const cs_insn *insn)
{
    uint64_t disp;
    ex->insn_len = insn->size;
    if (!ex->insn_info) {
        ex->insn_info = vmx_insn_info(insn, &disp);
        if (!ex->qualification && (ex->reason == EXIT_REASON_GDTR_IDTR || ex->reason == EXIT_REASON_LDTR_TR ||
                                   ex->reason == EXIT_REASON_VMCLEAR || ex->reason == EXIT_REASON_VMPTRLD ||
                                   ex->reason == EXIT_REASON_VMPTRST || ex->reason == EXIT_REASON_VMON ||
                                   ex->reason == EXIT_REASON_VMREAD || ex->reason == EXIT_REASON_VMWRITE ||
                                   ex->reason == EXIT_REASON_INVEPT || ex->reason == EXIT_REASON_INVVPID ||
                                   ex->reason == EXIT_REASON_INVPCID))
            ex->qualification = disp;
    }
    cpu_vmexit(c, ex);
}

/* In non-root operation, ask the VMX unit whether ev exits; if so, exit. */
bool cpu_vmx_intercept(struct cpu *c, const struct vmx_event *ev, const cs_insn *insn)
{
    struct vmx_exit ex;
    if (!c->vmx.non_root || !vmx_intercept(&c->vmx, cpu_vmx_ops(c), ev, &ex))
        return false;
    if (insn)
        cpu_vmexit_insn(c, &ex, insn);
    else
        cpu_vmexit(c, &ex);
    return true;
}

/*
 * EPT violation / misconfiguration (SDM Vol. 3C §28.2.1 Table 28-7): the
 * walker filled qualification bits 11:0; the guest-linear address field is
 * valid when bit 7 says so.
 */
void cpu_ept_exit(struct cpu *c, const struct ept_result *er, bool final, uint64_t la)
{
    /* §28.2.1: the guest-physical address of the byte accessed. The fill hook only
     * learns the page; for the final translation the byte offset is la's. */
    struct vmx_exit ex = {.guest_physical = final ? (er->gpa & ~0xFFFull) | (la & 0xFFF) : er->gpa};
    if (er->misconfig) {
        ex.reason = EXIT_REASON_EPT_MISCONFIG;
    } else {
        ex.reason = EXIT_REASON_EPT_VIOLATION;
        ex.qualification = er->qualification;
        if (er->qualification & EPT_VIOLATION_GVA_IS_VALID)
            ex.guest_linear = la;
    }
    cpu_vmexit_delivering(c, &ex);
}

/* A VM exit that may interrupt an event delivery: §28.2.4, IDT-vectoring information (and length). */
void cpu_vmexit_delivering(struct cpu *c, struct vmx_exit *ex)
{
    if (c->delivering) {
        ex->idt_vectoring_info = c->deliver_info;
        ex->idt_vectoring_error = c->deliver_error;
        ex->insn_len = c->deliver_len;
    }
    cpu_vmexit(c, ex);
}

/* EPT for the guest about to run (SDM Vol. 3C §25.6.11): cached at VM entry. */
static void ept_entry(struct cpu *c)
{
    uint8_t *vmcs = vmx_current_vmcs(&c->vmx, cpu_vmx_ops(c));
    uint32_t proc = VMCS_READ32(vmcs, CPU_BASED_VM_EXEC_CONTROL);
    uint32_t proc2 = (proc & CPU_BASED_ACTIVATE_SECONDARY_CONTROLS) ? VMCS_READ32(vmcs, SECONDARY_VM_EXEC_CONTROL) : 0;
    uint32_t pin = VMCS_READ32(vmcs, PIN_BASED_VM_EXEC_CONTROL);
    c->nmi_exiting = (pin & PIN_BASED_NMI_EXITING) != 0;
    c->vnmi_on = (pin & PIN_BASED_VIRTUAL_NMIS) != 0;
    c->ept_on = (proc2 & SECONDARY_EXEC_ENABLE_EPT) != 0;
    c->unrestricted = (proc2 & SECONDARY_EXEC_UNRESTRICTED_GUEST) != 0;
    c->vpid_on = (proc2 & SECONDARY_EXEC_ENABLE_VPID) != 0;
    c->vpid = c->vpid_on ? VMCS_READ16(vmcs, VIRTUAL_PROCESSOR_ID) : 0;
    /* SDM Vol. 3C §29.4.3.2: without VPIDs, VM entry flushes VPID 0's mappings. */
    tlb_vm_entry(c->tlb, c->vpid_on);
    c->ept = (struct ept_state){.eptp = VMCS_READ64(vmcs, EPT_POINTER), .caps = c->vmx.caps.ept_vpid,
                                .maxphyaddr = c->model.maxphyaddr,
                                .mbec = (proc2 & SECONDARY_EXEC_MODE_BASED_EPT_EXEC) != 0};
}

/* --- event injection on VM entry (SDM §27.6) ---------------------------- */

static void inject_event(struct cpu *c)
{
    uint32_t info = c->vmx.inject_info;
    uint8_t vector = info & INTR_INFO_VECTOR_MASK;
    unsigned type = (info & INTR_INFO_INTR_TYPE_MASK) >> INTR_INFO_INTR_TYPE_SHIFT;
    bool has_err = (info & INTR_INFO_DELIVER_CODE_MASK) != 0;
    uint64_t rip = cpu_reg(c, UC_X86_REG_RIP);
    c->vmx.inject_pending = false;
    switch (type) {
    case INTR_TYPE_SOFT_INTR:
        cpu_inject(c, vector, EV_SW_INT, false, 0, rip + c->vmx.inject_len);
        break;
    case INTR_TYPE_SOFT_EXCEPTION:
    case INTR_TYPE_PRIV_SW_EXCEPTION:
        cpu_inject(c, vector, EV_SW_EXCEPTION, false, 0, rip + c->vmx.inject_len);
        break;
    case INTR_TYPE_NMI_INTR:
        cpu_inject(c, vector, EV_NMI, false, 0, rip);
        if (c->vnmi_on) /* SDM §27.6.1.2: injecting an NMI blocks (virtual) NMIs */
            c->vnmi_blocked = true;
        else
            c->nmi_blocked = true;
        break;
    case INTR_TYPE_EXT_INTR:
        cpu_inject(c, vector, EV_EXT_INT, false, 0, rip);
        break;
    case INTR_TYPE_OTHER_EVENT: /* pending MTF VM exit (vector 0) */
        c->vmx.mtf_pending = true;
        break;
    default:
        cpu_inject(c, vector, EV_HW_EXCEPTION, has_err, c->vmx.inject_error, rip);
        break;
    }
}

/* --- VMX instructions ---------------------------------------------------- */

static bool vmx_opcode(unsigned id, enum vmx_insn_op *op, uint32_t *reason)
{
    static const struct {
        unsigned id;
        enum vmx_insn_op op;
        uint32_t reason;
    } t[] = {
        {X86_INS_VMXON, VMXI_VMXON, EXIT_REASON_VMON},
        {X86_INS_VMXOFF, VMXI_VMXOFF, EXIT_REASON_VMOFF},
        {X86_INS_VMCLEAR, VMXI_VMCLEAR, EXIT_REASON_VMCLEAR},
        {X86_INS_VMPTRLD, VMXI_VMPTRLD, EXIT_REASON_VMPTRLD},
        {X86_INS_VMPTRST, VMXI_VMPTRST, EXIT_REASON_VMPTRST},
        {X86_INS_VMREAD, VMXI_VMREAD, EXIT_REASON_VMREAD},
        {X86_INS_VMWRITE, VMXI_VMWRITE, EXIT_REASON_VMWRITE},
        {X86_INS_VMLAUNCH, VMXI_VMLAUNCH, EXIT_REASON_VMLAUNCH},
        {X86_INS_VMRESUME, VMXI_VMRESUME, EXIT_REASON_VMRESUME},
        {X86_INS_INVEPT, VMXI_INVEPT, EXIT_REASON_INVEPT},
        {X86_INS_INVVPID, VMXI_INVVPID, EXIT_REASON_INVVPID},
        {X86_INS_VMCALL, VMXI_VMCALL, EXIT_REASON_VMCALL},
        {X86_INS_VMFUNC, VMXI_VMFUNC, EXIT_REASON_VMFUNC},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].id == id) {
            *op = t[i].op;
            *reason = t[i].reason;
            return true;
        }
    return false;
}

static void fill_vmx_cpu(struct cpu *c, struct vmx_cpu *v)
{
    struct x86_seg_state cs;
    cpu_get_seg(c, X86_SEG_CS, &cs);
    v->cpl = cpu_cpl(c);
    v->protected_mode = (c->cr0 & X86_CR0_PE) != 0;
    v->rflags = cpu_reg(c, UC_X86_REG_RFLAGS);
    v->v86 = (v->rflags & X86_RFLAGS_VM) != 0;
    v->ia32e = cpu_long_mode(c);
    v->cs_l = v->ia32e && (cs.ar & X86_AR_L);
    v->cr0 = c->cr0;
    v->cr4 = c->cr4;
    v->efer = c->efer;
    v->feature_control = msr_get_raw(&c->msrs, MSR_ID_IA32_FEAT_CTL);
    v->movss_blocking = cpu_movss_blocking(c);
}

/* Read the memory operands the instruction needs; false after delivering a fault. */
static bool read_operands(struct cpu *c, const cs_insn *insn, struct vmx_insn *in)
{
    const cs_x86 *x = &insn->detail->x86;
    struct x86_fault f = {0};
    const cs_x86_op *mem = op_first_mem(insn);
    unsigned acc = cpu_cpl(c) == 3 ? PAGING_ACC_USER : 0;
    bool w64 = cpu_code_bits(c) == 64;
    switch (in->op) {
    case VMXI_VMXON:
    case VMXI_VMCLEAR:
    case VMXI_VMPTRLD:
        if (!mem) {
            in->op = VMXI_VMFUNC; /* register form: #UD below */
            return true;
        }
        if (!cpu_lin_read(c, op_mem_la(c, insn, mem), &in->ptr, 8, acc, &f))
            goto fault;
        return true;
    case VMXI_VMREAD:
        in->field = op_read_gpr(c, x->operands[1].reg);
        return true;
    case VMXI_VMWRITE:
        in->field = op_read_gpr(c, x->operands[0].reg);
        if (x->operands[1].type == X86_OP_REG) {
            in->value = op_read_gpr(c, x->operands[1].reg);
        } else if (!cpu_lin_read(c, op_mem_la(c, insn, &x->operands[1]), &in->value, w64 ? 8 : 4, acc, &f)) {
            goto fault;
        }
        return true;
    case VMXI_INVEPT:
    case VMXI_INVVPID:
        in->type = op_read_gpr(c, x->operands[0].reg);
        if (!w64)
            in->type &= 0xFFFFFFFFull;
        if (!cpu_lin_read(c, op_mem_la(c, insn, &x->operands[1]), in->desc, 16, acc, &f))
            goto fault;
        return true;
    default:
        return true;
    }
fault:
    cpu_raise(c, &f);
    return false;
}

/* Write a VMREAD/VMPTRST destination; false after delivering a fault. */
static bool write_result(struct cpu *c, const cs_insn *insn, enum vmx_insn_op op, uint64_t val)
{
    const cs_x86 *x = &insn->detail->x86;
    struct x86_fault f = {0};
    unsigned acc = cpu_cpl(c) == 3 ? PAGING_ACC_USER : 0;
    const cs_x86_op *dst = &x->operands[0];
    if (op == VMXI_VMREAD && dst->type == X86_OP_REG) {
        op_write_gpr(c, dst->reg, val);
        return true;
    }
    unsigned size = op == VMXI_VMPTRST ? 8 : cpu_code_bits(c) == 64 ? 8 : 4;
    if (!cpu_lin_write(c, op_mem_la(c, insn, dst), &val, size, acc, &f)) {
        cpu_raise(c, &f);
        return false;
    }
    return true;
}

/* INVEPT / INVVPID (SDM Vol. 3C §29.4.3.1): the architectural TLB, then Unicorn's. */
static void apply_flushes(struct cpu *c, const struct vmx_result *r)
{
    if (r->flush_ept)
        tlb_invept(c->tlb, (enum tlb_invept_type)r->inv_type, r->eptp);
    if (r->flush_vpid)
        tlb_invvpid(c->tlb, (enum tlb_invvpid_type)r->inv_type, r->vpid, r->flush_la);
    if (r->flush_ept || r->flush_vpid)
        cpu_flush_tlb(c);
}

/*
 * After guest state is loaded (SDM Vol. 3C §27.7): non-register state —
 * NMI blocking (virtual with "virtual NMIs", §27.7.1), STI/MOV-SS blocking,
 * the activity state (§27.7.2) — then event injection (§27.6) and a pending
 * MTF VM exit (§26.5.2: after an injected event, before its handler runs).
 */
static void vmentry_done(struct cpu *c, const struct x86_state *st)
{
    ept_entry(c);
    cpu_load_state(c, st);
    c->vmentries++;
    if (c->vnmi_on)
        c->vnmi_blocked = (st->interruptibility & GUEST_INTR_STATE_NMI) != 0;
    else
        c->nmi_blocked = (st->interruptibility & GUEST_INTR_STATE_NMI) != 0;
    if (st->interruptibility & (GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS))
        cpu_set_inhibit(c);
    preemption_timer_entry(c);
    cpu_events_schedule(c);
    if (c->debug)
        fprintf(c->log, "[vmentry] guest rip %#llx\n", (unsigned long long)st->rip);
    bool injected = c->vmx.inject_pending;
    if (injected)
        inject_event(c);
    if (c->vmx.non_root && (c->vmx.mtf_pending || (injected && cpu_vmx_mtf(c)))) {
        struct vmx_exit ex = {.reason = EXIT_REASON_MONITOR_TRAP_FLAG};
        c->vmx.mtf_pending = false;
        cpu_vmexit(c, &ex);
        return;
    }
    if (c->vmx.non_root && c->activity == GUEST_ACTIVITY_HLT && !cpu_events_wait(c))
        cpu_request_stop(c, VMXSIM_STOP_HALT, 0, "guest entered in HLT state with no event to wake it");
}

static void report_entry_failure(struct cpu *c, const struct vmx_result *r)
{
    const struct vmx_check_fail *f = &c->vmx.last_fail;
    if (r->kind == VMXR_FAIL_VALID && (r->error == VMXERR_ENTRY_INVALID_CONTROL_FIELD ||
                                       r->error == VMXERR_ENTRY_INVALID_HOST_STATE_FIELD))
        fprintf(c->log, "vmxsim: VM-entry failed (VMfailValid %u): %s [%s] (value %#llx)\n", r->error,
                vmx_check_message(f->id), vmx_check_name(f->id), (unsigned long long)f->value);
    else if (r->kind == VMXR_ENTRY_FAIL_EXIT)
        fprintf(c->log, "vmxsim: VM-entry failed (exit reason %u, qualification %u): %s [%s] (value %#llx)\n",
                33u + (f->id == VMX_CHECK_NONE && f->qualification != ENTRY_FAIL_PDPTE), f->qualification,
                f->id ? vmx_check_message(f->id) : "MSR-load area or PDPTE load failed",
                f->id ? vmx_check_name(f->id) : "ENTRY_LOAD", (unsigned long long)f->value);
}

static void apply_result(struct cpu *c, const cs_insn *insn, enum vmx_insn_op op, struct vmx_result *r,
                         const struct x86_state *st, uint64_t rflags)
{
    switch (r->kind) {
    case VMXR_FAULT:
        if (r->fault.vector == 0xFE)
            return vmx_abort(c, r->error);
        cpu_raise(c, &r->fault);
        return;
    case VMXR_ENTERED:
        return vmentry_done(c, st);
    case VMXR_ENTRY_FAIL_EXIT:
        report_entry_failure(c, r);
        cpu_load_state(c, st);
        return;
    case VMXR_FAIL_INVALID:
        set_vmx_flags(c, rflags, X86_RFLAGS_CF);
        break;
    case VMXR_FAIL_VALID:
        report_entry_failure(c, r);
        set_vmx_flags(c, rflags, X86_RFLAGS_ZF);
        break;
    case VMXR_SUCCEED:
    case VMXR_VMXOFF_DONE:
        if ((op == VMXI_VMREAD || op == VMXI_VMPTRST) && !write_result(c, insn, op, r->value))
            return;
        apply_flushes(c, r);
        set_vmx_flags(c, rflags, 0);
        break;
    }
    advance_past(c, insn);
}

/* A VMX instruction at RIP (it arrived as #UD from Unicorn). */
void cpu_vmx_instruction(struct cpu *c, const cs_insn *insn)
{
    struct vmx_insn in = {0};
    uint32_t reason;
    if (!vmx_opcode(insn->id, &in.op, &reason))
        return;
    if (c->vmx.non_root) {
        /* §26.1.2: every VMX instruction exits from non-root operation. VMFUNC
         * is #UD unless "enable VM functions" and the function (EAX) are
         * enabled; vmxsim implements no VM function, so it never exits. */
        struct vmx_event ev = {.kind = VMX_EV_VMX_INSN, .reason = reason};
        if (in.op == VMXI_VMFUNC) {
            struct x86_fault ud = {.vector = X86_UD};
            if (!vmx_vmfunc_enabled(&c->vmx, cpu_vmx_ops(c), (uint32_t)cpu_reg(c, UC_X86_REG_RAX))) {
                cpu_raise(c, &ud);
                return;
            }
            ev.kind = VMX_EV_VMFUNC;
        }
        (void)cpu_vmx_intercept(c, &ev, insn);
        return;
    }
    if (!model_has(&c->model, FEAT_VMX)) {
        struct x86_fault ud = {.vector = X86_UD};
        cpu_raise(c, &ud);
        return;
    }
    struct vmx_cpu vc;
    struct vmx_result r;
    struct x86_state st;
    fill_vmx_cpu(c, &vc);
    if (!read_operands(c, insn, &in))
        return;
    if (in.op == VMXI_VMLAUNCH || in.op == VMXI_VMRESUME) {
        cpu_save_state(c, &st);
        cpu_ctx_leave(c, &st);
        st.rip = insn->address + insn->size; /* a failed entry resumes after it */
    }
    vmx_execute(&c->vmx, &vc, &in, &st, cpu_vmx_ops(c), &r);
    apply_result(c, insn, in.op, &r, &st, vc.rflags);
}

/* Capability MSRs and what VMX operation changes about CR writes. */
bool cpu_vmx_rdmsr(struct cpu *c, uint32_t idx, uint64_t *val)
{
    if (idx < MSR_IA32_VMX_BASIC || idx > MSR_IA32_VMX_EXIT_CTLS2 || !model_has(&c->model, FEAT_VMX))
        return false;
    return vmx_caps_msr(&c->vmx.caps, idx, val);
}

/* In VMX operation CR0/CR4 must respect the fixed bits (SDM §24.8): else #GP. */
bool cpu_vmx_cr_allowed(const struct cpu *c, int cr, uint64_t val)
{
    const struct vmx_caps *k = &c->vmx.caps;
    if (!c->vmx.in_vmx)
        return true;
    if (cr == 0) {
        /* "Unrestricted guest" relaxes CR0.PE and CR0.PG in non-root operation (§27.3.1.1). */
        uint64_t fixed0 = k->cr0_fixed0;
        if (c->vmx.non_root && c->unrestricted)
            fixed0 &= ~(X86_CR0_PE | X86_CR0_PG);
        return (val & fixed0) == fixed0 && !(val & ~k->cr0_fixed1 & 0xFFFFFFFFull);
    }
    if (cr == 4)
        return (val & k->cr4_fixed0) == k->cr4_fixed0 && !(val & ~k->cr4_fixed1);
    return true;
}

/* The current guest runs with the monitor trap flag (SDM Vol. 3C §25.6.2). */
bool cpu_vmx_mtf(struct cpu *c)
{
    uint8_t *vmcs = vmx_current_vmcs(&c->vmx, cpu_vmx_ops(c));
    return vmcs && (VMCS_READ32(vmcs, CPU_BASED_VM_EXEC_CONTROL) & CPU_BASED_MONITOR_TRAP_FLAG);
}

/*
 * Fast path, called from the invalid-opcode hook while Unicorn runs: a
 * VMREAD or VMWRITE with register operands, at CPL 0 in 64-bit VMX root
 * operation, cannot fault, so it is emulated on the spot; writing RIP lets
 * Unicorn continue at the next instruction without stopping. Returns false
 * when the instruction needs the ordinary stop.
 */
bool cpu_vmx_fast(struct cpu *c)
{
    cs_insn *insn = NULL;
    struct x86_fault f;
    if (!c->vmx.in_vmx || c->vmx.non_root || c->debug)
        return false;
    cpu_ctx_dirty(c);
    uint64_t rip = cpu_reg(c, UC_X86_REG_RIP);
    if (cpu_code_bits(c) != 64 || cpu_cpl(c) != 0 || !cpu_fetch_insn(c, rip, &insn, &f) || !insn)
        return false;
    const cs_x86 *x = &insn->detail->x86;
    if ((insn->id != X86_INS_VMREAD && insn->id != X86_INS_VMWRITE) || x->op_count != 2 ||
        x->operands[0].type != X86_OP_REG || x->operands[1].type != X86_OP_REG)
        return false;
    cpu_blocks_refund(c, rip); /* the rest of the block has not run */
    cpu_vmx_instruction(c, insn);
    cpu_ctx_dirty(c);
    return true;
}
