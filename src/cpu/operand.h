/* Private to src/cpu: decoded-operand helpers (operand.c). */
#ifndef VMXSIM_CPU_OPERAND_H
#define VMXSIM_CPU_OPERAND_H

#include "cpu/cpu_priv.h"

bool op_gpr(x86_reg r, int *uc, unsigned *width);
uint64_t op_read_gpr(struct cpu *c, x86_reg r);
void op_write_gpr(struct cpu *c, x86_reg r, uint64_t v);
uint64_t op_mem_la(struct cpu *c, const cs_insn *insn, const cs_x86_op *op);
const cs_x86_op *op_first_mem(const cs_insn *insn);
#endif
