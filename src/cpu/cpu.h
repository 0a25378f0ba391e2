/*
 * CPU core: the run loop over Unicorn, architectural state (CRs, EFER, MSRs,
 * mode), exception delivery through the IDT, the CPUID model and the
 * dispatch of sensitive instructions (DESIGN §1, §2).
 *
 * Architectural state has one owner: struct cpu. Unicorn holds GPRs, RIP,
 * RFLAGS and segments while running; they are synchronised at stops only.
 */
#ifndef VMXSIM_CPU_H
#define VMXSIM_CPU_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arch/x86.h"
#include "model/model.h"
#include "platform/platform.h"
#include "vmxsim/vmxsim.h"

struct cpu;

/* Port and MMIO devices, supplied by the platform. */
struct cpu_io {
    void *ctx;
    uint32_t (*in)(void *ctx, uint16_t port, unsigned size);
    void (*out)(void *ctx, uint16_t port, unsigned size, uint32_t val);
};

struct cpu_config {
    const struct cpu_model *model;
    uint8_t *ram;
    uint64_t ram_size;
    struct cpu_io io;
    uint64_t max_insns;          /* 0: unlimited */
    bool feature_control_unlocked;
    FILE *log;                   /* reports (never NULL) */
};

vmxsim_err cpu_create(const struct cpu_config *cfg, struct cpu **out, char *err, size_t errlen);
void cpu_destroy(struct cpu *c);

/* Put the core into the state a loader described (RESET values elsewhere). */
vmxsim_err cpu_load_boot_state(struct cpu *c, const struct plat_cpu_init *init);

/* Run until something stops the machine. */
vmxsim_err cpu_run(struct cpu *c, struct vmxsim_result *res);

/* Devices ask the core to stop at the next instruction boundary. */
void cpu_request_stop(struct cpu *c, enum vmxsim_stop why, int status, const char *msg);

uint64_t cpu_cycles(const struct cpu *c);
#endif
