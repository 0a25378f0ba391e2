/*
 * Task switches in VMX non-root operation (SDM Vol. 3C §26.4.2): a guest
 * never switches tasks. The instruction or the event delivery makes the
 * checks it makes before switching (gate and TSS descriptor privilege,
 * type, busy and present; the new TSS's limit), and then, instead of the
 * switch, there is a VM exit with reason 9 and the exit qualification of
 * SDM Vol. 3C Table 28-2: bits 15:0 the new TSS's selector, bits 31:30 the
 * source (CALL, IRET, JMP, or a task gate in the IDT).
 *
 * Task switches exist only in protected mode outside IA-32e mode: there a
 * far CALL or JMP may name a TSS or a task gate, IRET with EFLAGS.NT = 1
 * returns to the task in the current TSS's link field, and an IDT entry may
 * be a task gate. In IA-32e mode QEMU raises the architectural #GP itself.
 * The instruction pseudo-code of SDM Vol. 2 (CALL, JMP, IRET, INT n) gives
 * the checks and their error codes.
 */
#include "cpu/operand.h"
#include "cpu/vmx_glue.h"

#define TSS16_BUSY 0x3u
#define TSS32_BUSY X86_SYS_TSS_BUSY

static unsigned sys_type(uint32_t ar) { return ar & (X86_AR_S | X86_AR_TYPE_MASK); }

static bool is_tss(uint32_t ar, bool busy)
{
    unsigned t = sys_type(ar);
    return busy ? (t == TSS16_BUSY || t == TSS32_BUSY) : (t == X86_SYS_TSS16_AVAIL || t == X86_SYS_TSS_AVAIL);
}

/* Task switch step 2 (SDM Vol. 3A §7.3): the new TSS holds at least a whole task state. */
static bool tss_limit_ok(const struct x86_seg_state *tss)
{
    unsigned t = sys_type(tss->ar) & 0x8u ? 0x67u : 0x2Bu;
    return tss->limit >= t;
}

/* The switch's last checks on the new TSS: present (#NP), large enough (#TS); err = its selector. */
static bool tss_usable(const struct x86_seg_state *tss, uint32_t err, struct x86_fault *f)
{
    if (!(tss->ar & X86_AR_P))
        return CPU_FAULT(f, X86_NP, err);
    if (!tss_limit_ok(tss))
        return CPU_FAULT(f, X86_TS, err);
    return true;
}

/*
 * The TSS a task gate names (INT n / CALL / JMP "TASK-GATE"): in the GDT,
 * not busy, present, large enough.
 */
static bool gate_tss(struct cpu *c, uint16_t sel, uint32_t ext, struct x86_seg_state *tss, struct x86_fault *f)
{
    uint64_t d;
    uint32_t err = (sel & 0xFFFCu) | ext;
    if (X86_SEL_TI(sel))
        return CPU_FAULT(f, X86_GP, err);
    if (!cpu_read_desc(c, sel, &d, ext, f))
        return false;
    cpu_decode_desc(d, sel, tss);
    if (!is_tss(tss->ar, false))
        return CPU_FAULT(f, X86_GP, err);
    return tss_usable(tss, err, f);
}

static bool task_exit(struct cpu *c, uint16_t tss, enum vmx_task_source src, const cs_insn *insn)
{
    struct vmx_event ev = {.kind = VMX_EV_TASK_SWITCH, .tss = tss, .task_source = src};
    return cpu_vmx_intercept(c, &ev, insn);
}

static bool legacy_protected(struct cpu *c)
{
    return (c->cr0 & X86_CR0_PE) && !cpu_long_mode(c) && !(cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_VM);
}

/* The selector of a far CALL/JMP: ptr16:16/32 (immediates), or m16:16/32 (offset, then selector). */
static bool far_selector(struct cpu *c, const cs_insn *insn, uint16_t *sel, struct x86_fault *f)
{
    const cs_x86 *x = &insn->detail->x86;
    const cs_x86_op *op = &x->operands[0];
    if (x->op_count == 2 && op->type == X86_OP_IMM) {
        *sel = (uint16_t)op->imm;
        return true;
    }
    if (x->op_count != 1 || op->type != X86_OP_MEM || op->size < 4)
        return false;
    unsigned acc = cpu_cpl(c) == 3 ? PAGING_ACC_USER : 0;
    return cpu_lin_read(c, op_mem_la(c, insn, op) + op->size - 2, sel, 2, acc, f);
}

/* Far CALL/JMP to a TSS descriptor or a task gate (SDM Vol. 2A CALL, Vol. 2A JMP). */
static bool far_transfer(struct cpu *c, const cs_insn *insn, struct x86_fault *f, bool *exited)
{
    uint16_t sel = 0;
    uint64_t d;
    struct x86_seg_state desc, tss;
    f->vector = 0;
    if (!far_selector(c, insn, &sel, f))
        return f->vector == 0; /* no selector: not ours (QEMU decides) */
    if ((sel & 0xFFFCu) == 0)
        return true; /* null selector: QEMU's #GP(0) */
    if (!cpu_read_desc(c, sel, &d, 0, f))
        return false;
    cpu_decode_desc(d, sel, &desc);
    unsigned cpl = cpu_cpl(c), rpl = sel & 3u, dpl = x86_ar_dpl(desc.ar);
    uint32_t err = sel & 0xFFFCu;
    enum vmx_task_source src = insn->id == X86_INS_LCALL ? VMX_TASK_CALL : VMX_TASK_JMP;
    if (sys_type(desc.ar) == X86_SYS_TASK_GATE) {
        if (dpl < cpl || dpl < rpl)
            return CPU_FAULT(f, X86_GP, err);
        if (!(desc.ar & X86_AR_P))
            return CPU_FAULT(f, X86_NP, err);
        uint16_t tsel = (uint16_t)(d >> 16); /* the gate's TSS selector */
        if (!gate_tss(c, tsel, 0, &tss, f))
            return false;
        *exited = task_exit(c, tsel, src, insn);
        return true;
    }
    if (is_tss(desc.ar, false) || is_tss(desc.ar, true)) {
        /* "TSS DPL < CPL or RPL, TI indicates LDT, or TSS not available: #GP(TSS selector)" */
        if (dpl < cpl || dpl < rpl || X86_SEL_TI(sel) || is_tss(desc.ar, true))
            return CPU_FAULT(f, X86_GP, err);
        if (!tss_usable(&desc, err, f))
            return false;
        *exited = task_exit(c, sel, src, insn);
        return true;
    }
    return true; /* a code segment or call gate: no task switch */
}

/* IRET with EFLAGS.NT = 1: return to the task in the link field (SDM Vol. 2A IRET "TASK-RETURN"). */
static bool task_return(struct cpu *c, const cs_insn *insn, struct x86_fault *f, bool *exited)
{
    struct x86_seg_state tr, tss;
    uint16_t link;
    uint64_t d;
    cpu_get_seg(c, X86_SEG_TR, &tr);
    if (tr.limit < 1)
        return CPU_FAULT(f, X86_TS, tr.selector & 0xFFFCu);
    if (!cpu_lin_read(c, tr.base, &link, 2, PAGING_ACC_IMPLICIT, f))
        return false;
    uint32_t err = link & 0xFFFCu;
    if (X86_SEL_TI(link))
        return CPU_FAULT(f, X86_TS, err);
    f->vector = 0;
    if (!cpu_read_desc(c, link, &d, 0, f)) {
        if (f->vector == X86_GP) /* beyond the GDT: #TS, not #GP, for the link field */
            return CPU_FAULT(f, X86_TS, err);
        return false;
    }
    cpu_decode_desc(d, link, &tss);
    if (!is_tss(tss.ar, true))
        return CPU_FAULT(f, X86_TS, err);
    if (!tss_usable(&tss, err, f))
        return false;
    *exited = task_exit(c, link, VMX_TASK_IRET, insn);
    return true;
}

/*
 * A far CALL/JMP or IRET in non-root operation: false with *f when the
 * checks before a task switch fault; *exited when the VM exit happened;
 * otherwise the instruction is not a task switch and runs as usual.
 */
bool cpu_task_insn(struct cpu *c, const cs_insn *insn, struct x86_fault *f, bool *exited)
{
    *exited = false;
    if (!c->vmx.non_root || !legacy_protected(c))
        return true;
    switch (insn->id) {
    case X86_INS_LJMP:
    case X86_INS_LCALL:
        return far_transfer(c, insn, f, exited);
    case X86_INS_IRET:
    case X86_INS_IRETD:
        if (!(cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_NT))
            return true;
        return task_return(c, insn, f, exited);
    default:
        return true;
    }
}

/*
 * Event delivery through a task gate in the IDT (SDM Vol. 2A INT n
 * "TASK-GATE"; the gate's P bit and, for software interrupts, DPL were
 * checked by the caller). In non-root operation: the VM exit, with the
 * event in the IDT-vectoring information (§28.2.4); f->vector = 0xFF then
 * says delivery is over. Outside it: not modelled, the run stops.
 */
bool cpu_task_gate(struct cpu *c, uint16_t tss, uint32_t ext, struct x86_fault *f)
{
    struct x86_seg_state desc;
    if (!c->vmx.non_root) {
        cpu_request_stop(c, VMXSIM_STOP_ERROR, 0, "task-gate delivery outside VMX non-root operation is not implemented");
        f->vector = 0xFF;
        return false;
    }
    if (!gate_tss(c, tss, ext, &desc, f))
        return false;
    struct vmx_event ev = {.kind = VMX_EV_TASK_SWITCH, .tss = tss, .task_source = VMX_TASK_GATE};
    struct vmx_exit ex;
    if (vmx_intercept(&c->vmx, cpu_vmx_ops(c), &ev, &ex))
        cpu_vmexit_delivering(c, &ex);
    f->vector = 0xFF;
    return false;
}
