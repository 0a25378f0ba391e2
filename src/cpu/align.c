/*
 * #AC (SDM Vol. 3A §6.15 "Interrupt 17—Alignment Check Exception"): Unicorn
 * raises neither kind, so the core checks before the instruction runs.
 *  - Split-lock detection (MSR_TEST_CTRL[29], enumerated by
 *    IA32_CORE_CAPABILITIES[5]): a locked access (LOCK prefix, or XCHG with
 *    memory) that crosses a 64-byte cache line is #AC(0), a fault, at any
 *    CPL regardless of CR0.AM and RFLAGS.AC, before memory changes.
 *  - Alignment checking: CPL 3, CR0.AM = 1, RFLAGS.AC = 1 and a data access
 *    not aligned to its size (Table 6-7: word 2, doubleword 4, quadword 8)
 *    is #AC(0).
 * Both are the same exception (vector 17, error code 0): on hardware a guest
 * cannot tell them apart, and neither can it here. In non-root operation the
 * exception bitmap decides whether it is a VM exit (the core's delivery).
 */
#include "cpu/operand.h"

#define CACHE_LINE 64u

bool cpu_is_locked_access(const cs_insn *insn)
{
    const cs_x86 *x = &insn->detail->x86;
    if (!op_first_mem(insn))
        return false;
    return x->prefix[0] == X86_PREFIX_LOCK || insn->id == X86_INS_XCHG;
}

/* Instructions whose memory operand is not a data access (no alignment check). */
static bool no_data_access(unsigned id)
{
    switch (id) {
    case X86_INS_LEA: case X86_INS_NOP: case X86_INS_PREFETCH: case X86_INS_PREFETCHNTA:
    case X86_INS_PREFETCHT0: case X86_INS_PREFETCHT1: case X86_INS_PREFETCHT2:
    case X86_INS_PREFETCHW: case X86_INS_CLFLUSH: case X86_INS_CLFLUSHOPT: case X86_INS_INVLPG:
        return true;
    default:
        return false;
    }
}

bool cpu_has_data_operand(const cs_insn *insn)
{
    return op_first_mem(insn) && !no_data_access(insn->id);
}

/* Alignment checking is in force (CPL 3, CR0.AM, RFLAGS.AC) — SDM Vol. 3A §6.15. */
bool cpu_ac_checking(struct cpu *c)
{
    return (c->cr0 & X86_CR0_AM) && (c->cr0 & X86_CR0_PE) &&
           (cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_AC) &&
           ((cpu_reg(c, UC_X86_REG_CS) & 3) == 3 || (cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_VM));
}

/*
 * Check an instruction about to run; false with *f = #AC(0) when it must
 * fault. Operands wider than 8 bytes are not checked (vector loads follow
 * their own alignment rules, #GP for MOVAPS-class).
 */
bool cpu_check_alignment(struct cpu *c, const cs_insn *insn, struct x86_fault *f)
{
    const cs_x86 *x = &insn->detail->x86;
    bool locked = cpu_is_locked_access(insn);
    bool sld = c->sld && locked;
    bool ac = !no_data_access(insn->id) && cpu_ac_checking(c);
    if (!sld && !ac)
        return true;
    for (int i = 0; i < x->op_count; i++) {
        const cs_x86_op *op = &x->operands[i];
        if (op->type != X86_OP_MEM)
            continue;
        uint64_t la = op_mem_la(c, insn, op);
        unsigned size = op->size ? op->size : 1;
        bool split = (la % CACHE_LINE) + size > CACHE_LINE;
        bool misaligned = size <= 8 && (la & (size - 1)) != 0;
        if ((sld && split) || (ac && misaligned)) {
            *f = (struct x86_fault){.vector = X86_AC, .has_error = true, .error_code = 0};
            c->last_ac_split_lock = sld && split;
            return false;
        }
    }
    return true;
}
