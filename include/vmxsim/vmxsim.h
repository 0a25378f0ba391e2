/*
 * libvmxsim — public API. A machine is one x86-64 core (hypervisor code in
 * VMX root operation, guests in non-root operation), guest RAM and devices.
 *
 *   struct vmxsim_config cfg; vmxsim_config_init(&cfg);
 *   vmxsim *m; vmxsim_create(&cfg, &m);
 *   vmxsim_load_file(m, "kernel.elf");
 *   struct vmxsim_result r; vmxsim_run(m, &r);
 *   vmxsim_destroy(m);
 */
#ifndef VMXSIM_VMXSIM_H
#define VMXSIM_VMXSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One error enum for the whole library (STYLE 9). */
typedef enum vmxsim_err {
    VMXSIM_OK = 0,
    VMXSIM_ERR_NOMEM,       /* any: allocation failed */
    VMXSIM_ERR_IO,          /* load/save: file could not be read or written */
    VMXSIM_ERR_BAD_IMAGE,   /* loaders: truncated, wrong machine, segment outside RAM, ... */
    VMXSIM_ERR_BAD_ARG,     /* config/CLI: invalid option value */
    VMXSIM_ERR_CPU_MODEL,   /* config: unknown CPU model or feature toggle */
    VMXSIM_ERR_UNICORN,     /* core: the Unicorn engine refused an operation */
    VMXSIM_ERR_STATE,       /* API misuse: e.g. run before load */
    VMXSIM_ERR_INTERNAL,    /* a simulator invariant failed (a bug: please report) */
    VMXSIM_ERR_COUNT
} vmxsim_err;

const char *vmxsim_strerror(vmxsim_err err);

/* Why a run stopped. */
enum vmxsim_stop {
    VMXSIM_STOP_NONE = 0,
    VMXSIM_STOP_DEBUG_EXIT,   /* OUT to port 0xF4: status = (value << 1) | 1 */
    VMXSIM_STOP_SHUTDOWN,     /* "Shutdown" written to port 0x8900 */
    VMXSIM_STOP_TRIPLE_FAULT, /* shutdown after a triple fault */
    VMXSIM_STOP_HALT,         /* HLT with interrupts disabled and nothing pending */
    VMXSIM_STOP_INSN_LIMIT,   /* --max-insns reached */
    VMXSIM_STOP_ERROR,        /* the simulator could not continue (see message) */
};

/* CLI exit codes other than the guest's debug-exit status (always odd). */
#define VMXSIM_EXIT_OK 0           /* guest halted or wrote "Shutdown" to 0x8900 */
#define VMXSIM_EXIT_BAD_INPUT 2    /* bad option, missing/corrupt image or model */
#define VMXSIM_EXIT_TRIPLE_FAULT 4 /* guest triple-faulted (shutdown report on stderr) */
#define VMXSIM_EXIT_INSN_LIMIT 6   /* --max-insns reached */
#define VMXSIM_EXIT_SIM_ERROR 8    /* the simulator stopped on an internal error */

struct vmxsim_module {
    const char *path;    /* file to load as a Multiboot module */
    const char *cmdline; /* module string (may be NULL) */
};

struct vmxsim_config {
    uint64_t mem_size;          /* guest RAM in bytes (default 256 MiB) */
    const char *cpu;            /* CPU model spec "name[,+feat][,-feat]..." (NULL: default) */
    uint64_t max_insns;         /* stop after this many guest instructions (0: no limit) */
    const char *cmdline;        /* Multiboot command line (NULL: empty) */
    const struct vmxsim_module *modules;
    size_t n_modules;
    bool feature_control_unlocked; /* leave IA32_FEATURE_CONTROL unlocked at 64-bit entry */
    FILE *console;              /* guest serial/0xE9 output (NULL: stdout) */
    FILE *log;                  /* diagnostics: reports, VM-entry failures (NULL: stderr) */
};

void vmxsim_config_init(struct vmxsim_config *cfg);

struct vmxsim_result {
    enum vmxsim_stop stop;
    int exit_status;      /* for VMXSIM_STOP_DEBUG_EXIT: (value << 1) | 1 */
    uint64_t insns;       /* guest instructions retired */
    uint64_t cycles;      /* simulated cycles (= guest TSC before offsetting) */
    char message[512];    /* human-readable reason (report details go to cfg.log) */
};

typedef struct vmxsim vmxsim;

vmxsim_err vmxsim_create(const struct vmxsim_config *cfg, vmxsim **out);
void vmxsim_destroy(vmxsim *m);

/* Load an image: Multiboot v1 (header in the first 8 KiB), ELF64 or flat. */
vmxsim_err vmxsim_load_image(vmxsim *m, const void *image, size_t len, const char *name);
vmxsim_err vmxsim_load_file(vmxsim *m, const char *path);

/* Run until the guest stops; the result says why. */
vmxsim_err vmxsim_run(vmxsim *m, struct vmxsim_result *res);

/* Exit status the CLI uses for a result. */
int vmxsim_exit_code(const struct vmxsim_result *res);

/* Last detailed error message (for load/create failures). */
const char *vmxsim_last_error(const vmxsim *m);

#ifdef __cplusplus
}
#endif
#endif
