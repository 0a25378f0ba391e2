/*
 * What the VM-entry checks need to know about the logical processor that
 * executes VMLAUNCH/VMRESUME, beyond the VMCS and the capability MSRs
 * (SDM Vol. 3C §27.2.1.3 SMM controls, §27.2.4 address-space size,
 * §27.3.1.5 VMCS link pointer).
 *
 * vmx.h's vmx_check_controls / vmx_check_host_state / vmx_check_guest_state
 * take no environment; they run with VMX_ENTRY_ENV_DEFAULT (VM entry from
 * 64-bit mode, outside SMM, current-VMCS pointer unknown). The *_env
 * variants below take it explicitly. Proposed for vmx.h: see the report of
 * the entry-checks change (the lead decides; nothing here depends on it).
 */
#ifndef VMXSIM_VMX_CHECKS_ENV_H
#define VMXSIM_VMX_CHECKS_ENV_H

#include <stdbool.h>
#include <stdint.h>

#include "vmx/vmx.h"

/* A VMCS pointer that names no VMCS (also the "no link" link-pointer value). */
#define VMX_ENTRY_ENV_NO_VMCS VMX_NO_VMCS

struct vmx_entry_env {
    bool host_in_ia32e;      /* IA32_EFER.LMA when VM entry executes (§27.2.4) */
    bool in_smm;             /* VM entry executes in SMM (§27.2.1.3, §27.3.1.5) */
    uint64_t current_vmcs;   /* current-VMCS pointer, or VMX_ENTRY_ENV_NO_VMCS if unknown */
    uint64_t executive_vmcs; /* executive-VMCS pointer (only used in SMM) */
};

#define VMX_ENTRY_ENV_DEFAULT                                                     \
    ((struct vmx_entry_env){.host_in_ia32e = true,                                \
                            .in_smm = false,                                      \
                            .current_vmcs = VMX_ENTRY_ENV_NO_VMCS,                \
                            .executive_vmcs = VMX_ENTRY_ENV_NO_VMCS})

/* As the vmx.h functions, with the environment; env NULL = VMX_ENTRY_ENV_DEFAULT. */
bool vmx_check_controls_env(const struct vmx_caps *caps, const uint8_t *vmcs,
                            const struct vmx_mem *mem, const struct vmx_entry_env *env,
                            struct vmx_check_fail *fail) VMX_WARN_UNUSED;
bool vmx_check_host_state_env(const struct vmx_caps *caps, const uint8_t *vmcs,
                              const struct vmx_entry_env *env,
                              struct vmx_check_fail *fail) VMX_WARN_UNUSED;
bool vmx_check_guest_state_env(const struct vmx_caps *caps, const uint8_t *vmcs,
                               const struct vmx_mem *mem, const struct vmx_entry_env *env,
                               struct vmx_check_fail *fail) VMX_WARN_UNUSED;

/* Exit qualification of a guest-state failure (ENTRY_FAIL_*); 0 for other stages. */
uint32_t vmx_check_qualification(enum vmx_check_id id);
#endif
