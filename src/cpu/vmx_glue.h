/* Private to src/cpu: the core's side of VMX (vmx_glue.c). */
#ifndef VMXSIM_CPU_VMX_GLUE_H
#define VMXSIM_CPU_VMX_GLUE_H

#include "cpu/cpu_priv.h"

const struct vmx_ops *cpu_vmx_ops(struct cpu *c);
void cpu_vmx_instruction(struct cpu *c, const cs_insn *insn);
/* Non-root: VM exit if the VMX unit says ev exits (insn gives length/info). */
bool cpu_vmx_intercept(struct cpu *c, const struct vmx_event *ev, const cs_insn *insn);
void cpu_vmexit(struct cpu *c, struct vmx_exit *ex);
void cpu_vmexit_insn(struct cpu *c, struct vmx_exit *ex, const cs_insn *insn);
void cpu_vmexit_delivering(struct cpu *c, struct vmx_exit *ex);
/* An EPT violation or misconfiguration of an access to la: VM exit 48/49. */
void cpu_ept_exit(struct cpu *c, const struct ept_result *er, bool final, uint64_t la);
bool cpu_vmx_mtf(struct cpu *c);
bool cpu_vmx_fast(struct cpu *c);
bool cpu_vmx_rdmsr(struct cpu *c, uint32_t idx, uint64_t *val);
bool cpu_vmx_cr_allowed(const struct cpu *c, int cr, uint64_t val);
#endif
