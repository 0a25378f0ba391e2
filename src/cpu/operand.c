/*
 * Operands of decoded instructions: Capstone registers mapped to Unicorn
 * registers, and effective linear addresses of memory operands
 * (SDM Vol. 1 §3.7.5, Vol. 3A §3.4.4 segment bases in 64-bit mode).
 */
#include "cpu/operand.h"

struct regmap {
    x86_reg cs;
    int uc;
    uint8_t width;
};

static const struct regmap gprs[] = {
    {X86_REG_RAX, UC_X86_REG_RAX, 8}, {X86_REG_RBX, UC_X86_REG_RBX, 8},
    {X86_REG_RCX, UC_X86_REG_RCX, 8}, {X86_REG_RDX, UC_X86_REG_RDX, 8},
    {X86_REG_RSI, UC_X86_REG_RSI, 8}, {X86_REG_RDI, UC_X86_REG_RDI, 8},
    {X86_REG_RBP, UC_X86_REG_RBP, 8}, {X86_REG_RSP, UC_X86_REG_RSP, 8},
    {X86_REG_R8, UC_X86_REG_R8, 8},   {X86_REG_R9, UC_X86_REG_R9, 8},
    {X86_REG_R10, UC_X86_REG_R10, 8}, {X86_REG_R11, UC_X86_REG_R11, 8},
    {X86_REG_R12, UC_X86_REG_R12, 8}, {X86_REG_R13, UC_X86_REG_R13, 8},
    {X86_REG_R14, UC_X86_REG_R14, 8}, {X86_REG_R15, UC_X86_REG_R15, 8},
    {X86_REG_EAX, UC_X86_REG_RAX, 4}, {X86_REG_EBX, UC_X86_REG_RBX, 4},
    {X86_REG_ECX, UC_X86_REG_RCX, 4}, {X86_REG_EDX, UC_X86_REG_RDX, 4},
    {X86_REG_ESI, UC_X86_REG_RSI, 4}, {X86_REG_EDI, UC_X86_REG_RDI, 4},
    {X86_REG_EBP, UC_X86_REG_RBP, 4}, {X86_REG_ESP, UC_X86_REG_RSP, 4},
    {X86_REG_R8D, UC_X86_REG_R8, 4},  {X86_REG_R9D, UC_X86_REG_R9, 4},
    {X86_REG_R10D, UC_X86_REG_R10, 4}, {X86_REG_R11D, UC_X86_REG_R11, 4},
    {X86_REG_R12D, UC_X86_REG_R12, 4}, {X86_REG_R13D, UC_X86_REG_R13, 4},
    {X86_REG_R14D, UC_X86_REG_R14, 4}, {X86_REG_R15D, UC_X86_REG_R15, 4},
    {X86_REG_AX, UC_X86_REG_RAX, 2},  {X86_REG_BX, UC_X86_REG_RBX, 2},
    {X86_REG_CX, UC_X86_REG_RCX, 2},  {X86_REG_DX, UC_X86_REG_RDX, 2},
    {X86_REG_SI, UC_X86_REG_RSI, 2},  {X86_REG_DI, UC_X86_REG_RDI, 2},
    {X86_REG_BP, UC_X86_REG_RBP, 2},  {X86_REG_SP, UC_X86_REG_RSP, 2},
    {X86_REG_R8W, UC_X86_REG_R8, 2},  {X86_REG_R9W, UC_X86_REG_R9, 2},
    {X86_REG_R10W, UC_X86_REG_R10, 2}, {X86_REG_R11W, UC_X86_REG_R11, 2},
    {X86_REG_R12W, UC_X86_REG_R12, 2}, {X86_REG_R13W, UC_X86_REG_R13, 2},
    {X86_REG_R14W, UC_X86_REG_R14, 2}, {X86_REG_R15W, UC_X86_REG_R15, 2},
    {X86_REG_AL, UC_X86_REG_RAX, 1},  {X86_REG_BL, UC_X86_REG_RBX, 1},
    {X86_REG_CL, UC_X86_REG_RCX, 1},  {X86_REG_DL, UC_X86_REG_RDX, 1},
    {X86_REG_SIL, UC_X86_REG_RSI, 1}, {X86_REG_DIL, UC_X86_REG_RDI, 1},
    {X86_REG_BPL, UC_X86_REG_RBP, 1}, {X86_REG_SPL, UC_X86_REG_RSP, 1},
    {X86_REG_R8B, UC_X86_REG_R8, 1},  {X86_REG_R9B, UC_X86_REG_R9, 1},
    {X86_REG_R10B, UC_X86_REG_R10, 1}, {X86_REG_R11B, UC_X86_REG_R11, 1},
    {X86_REG_R12B, UC_X86_REG_R12, 1}, {X86_REG_R13B, UC_X86_REG_R13, 1},
    {X86_REG_R14B, UC_X86_REG_R14, 1}, {X86_REG_R15B, UC_X86_REG_R15, 1},
};

bool op_gpr(x86_reg r, int *uc, unsigned *width)
{
    for (size_t i = 0; i < sizeof gprs / sizeof gprs[0]; i++) {
        if (gprs[i].cs == r) {
            *uc = gprs[i].uc;
            *width = gprs[i].width;
            return true;
        }
    }
    return false;
}

uint64_t op_read_gpr(struct cpu *c, x86_reg r)
{
    int uc;
    unsigned w;
    if (r == X86_REG_AH || r == X86_REG_BH || r == X86_REG_CH || r == X86_REG_DH) {
        int base = r == X86_REG_AH ? UC_X86_REG_RAX : r == X86_REG_BH ? UC_X86_REG_RBX
                   : r == X86_REG_CH ? UC_X86_REG_RCX : UC_X86_REG_RDX;
        return (cpu_reg(c, base) >> 8) & 0xFF;
    }
    if (r == X86_REG_RIP)
        return cpu_reg(c, UC_X86_REG_RIP);
    if (!op_gpr(r, &uc, &w))
        return 0;
    uint64_t v = cpu_reg(c, uc);
    return w == 8 ? v : v & ((1ull << (w * 8)) - 1);
}

/* Register write with x86 semantics: 32-bit writes zero-extend (SDM Vol. 1 §3.4.1.1). */
void op_write_gpr(struct cpu *c, x86_reg r, uint64_t v)
{
    int uc;
    unsigned w;
    if (!op_gpr(r, &uc, &w))
        return;
    if (w == 8 || w == 4) {
        cpu_set_reg(c, uc, w == 8 ? v : (uint32_t)v);
        return;
    }
    uint64_t mask = (1ull << (w * 8)) - 1, old = cpu_reg(c, uc);
    cpu_set_reg(c, uc, (old & ~mask) | (v & mask));
}

static uint64_t seg_base_for(struct cpu *c, x86_reg seg, x86_reg base, bool lm)
{
    struct x86_seg_state s;
    enum x86_seg which;
    if (seg == X86_REG_INVALID)
        seg = (base == X86_REG_RSP || base == X86_REG_RBP || base == X86_REG_ESP ||
               base == X86_REG_EBP || base == X86_REG_SP || base == X86_REG_BP)
                  ? X86_REG_SS
                  : X86_REG_DS;
    switch (seg) {
    case X86_REG_ES: which = X86_SEG_ES; break;
    case X86_REG_CS: which = X86_SEG_CS; break;
    case X86_REG_SS: which = X86_SEG_SS; break;
    case X86_REG_FS: which = X86_SEG_FS; break;
    case X86_REG_GS: which = X86_SEG_GS; break;
    default: which = X86_SEG_DS; break;
    }
    if (lm && which != X86_SEG_FS && which != X86_SEG_GS)
        return 0;
    cpu_get_seg(c, which, &s);
    return s.base;
}

/* Effective linear address of a memory operand. */
uint64_t op_mem_la(struct cpu *c, const cs_insn *insn, const cs_x86_op *op)
{
    const cs_x86 *x = &insn->detail->x86;
    bool lm = cpu_code_bits(c) == 64;
    uint64_t ea = (uint64_t)op->mem.disp;
    if (op->mem.base == X86_REG_RIP)
        ea += insn->address + insn->size;
    else if (op->mem.base != X86_REG_INVALID)
        ea += op_read_gpr(c, op->mem.base);
    if (op->mem.index != X86_REG_INVALID)
        ea += op_read_gpr(c, op->mem.index) * (uint64_t)op->mem.scale;
    if (x->addr_size == 4)
        ea &= 0xFFFFFFFFull;
    else if (x->addr_size == 2)
        ea &= 0xFFFF;
    uint64_t la = ea + seg_base_for(c, op->mem.segment, op->mem.base, lm);
    return lm ? la : la & 0xFFFFFFFFull;
}

const cs_x86_op *op_first_mem(const cs_insn *insn)
{
    const cs_x86 *x = &insn->detail->x86;
    for (int i = 0; i < x->op_count; i++)
        if (x->operands[i].type == X86_OP_MEM)
            return &x->operands[i];
    return NULL;
}

int op_sdm_gpr(x86_reg r)
{
    static const int ucregs[16] = {
        UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX,
        UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_RSI, UC_X86_REG_RDI,
        UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
        UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15,
    };
    int uc;
    unsigned w;
    if (r == X86_REG_INVALID || !op_gpr(r, &uc, &w))
        return -1;
    for (int i = 0; i < 16; i++)
        if (ucregs[i] == uc)
            return i;
    return -1;
}
