/* Private to src/cpu: decoded-operand helpers (operand.c). */
#ifndef VMXSIM_CPU_OPERAND_H
#define VMXSIM_CPU_OPERAND_H

#include "cpu/cpu_priv.h"

bool op_gpr(x86_reg r, int *uc, unsigned *width);
uint64_t op_read_gpr(struct cpu *c, x86_reg r);
void op_write_gpr(struct cpu *c, x86_reg r, uint64_t v);
uint64_t op_mem_la(struct cpu *c, const cs_insn *insn, const cs_x86_op *op);
const cs_x86_op *op_first_mem(const cs_insn *insn);
/* SDM register number (RAX=0 … R15=15) of a 64/32/16-bit GPR, or -1. */
int op_sdm_gpr(x86_reg r);
#endif
