/*
 * A snapshot of the architectural state a VM transition reads and writes
 * (SDM Vol. 3C §25.4 guest-state area, §25.5 host-state area). The CPU core
 * fills it at a stop and loads it back; the VMX unit transforms it with
 * pure functions (VM entry loads guest state into it, VM exit saves it to
 * the VMCS and loads host state).
 */
#ifndef VMXSIM_ARCH_X86_STATE_H
#define VMXSIM_ARCH_X86_STATE_H

#include "arch/x86.h"

/* General registers in the SDM's register-number order. */
enum x86_gpr {
    X86_RAX, X86_RCX, X86_RDX, X86_RBX, X86_RSP, X86_RBP, X86_RSI, X86_RDI,
    X86_R8, X86_R9, X86_R10, X86_R11, X86_R12, X86_R13, X86_R14, X86_R15,
    X86_GPR_COUNT
};

struct x86_state {
    uint64_t gpr[X86_GPR_COUNT];
    uint64_t rip, rflags;
    uint64_t cr0, cr2, cr3, cr4, cr8;
    uint64_t dr7;
    struct x86_seg_state seg[X86_SEG_COUNT];
    struct x86_dtable gdtr, idtr;
    /* MSRs that VM entry/exit load or save */
    uint64_t efer, pat, debugctl, pkrs, spec_ctrl;
    uint64_t sysenter_cs, sysenter_esp, sysenter_eip;
    uint64_t pdpte[4];            /* PAE PDPTE registers */
    /* non-register state (SDM Vol. 3C §25.4.2) */
    uint32_t activity;            /* enum vmx_activity */
    uint32_t interruptibility;    /* GUEST_INTR_STATE_* */
    uint64_t pending_dbg;
};
#endif
