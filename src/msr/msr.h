/*
 * MSR unit (DESIGN §5): one X-macro table (msr/msr_table.def) of every MSR
 * vmxsim implements — index, Linux name, CPUID gate (a model feature),
 * reserved-bit mask, RESET and INIT values, read/write handler. RDMSR/WRMSR
 * of an index not in the table, of a gated MSR whose feature is off, or a
 * write setting a reserved bit, is #GP(0) (SDM Vol. 4; Vol. 2B RDMSR/WRMSR).
 *
 * Values live here. MSRs whose live value also matters to the CPU core
 * (EFER, FS/GS base, SYSCALL MSRs, TSC, APIC base, ...) carry MSR_F_CORE:
 * the core applies the side effect after a successful msr_write and
 * refreshes the value before msr_read (msr_set_raw).
 */
#ifndef VMXSIM_MSR_H
#define VMXSIM_MSR_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86.h"
#include "model/model.h"

enum msr_id {
#define MSR(id, index, gate, flags, rsvd, reset, handler) MSR_ID_##id,
#include "msr/msr_table.def"
#undef MSR
    MSR_ID_COUNT
};

/* Architectural indices as Linux names them, generated from the table. */
enum {
#define MSR(id, index, gate, flags, rsvd, reset, handler) MSR_##id = (index),
#include "msr/msr_table.def"
#undef MSR
};

#define MSR_F_CORE (1u << 0)     /* the core applies side effects / supplies the live value */
#define MSR_F_RO (1u << 1)       /* read-only: WRMSR → #GP */
#define MSR_F_WO (1u << 2)       /* write-only: RDMSR → #GP */
#define MSR_F_KEEP_INIT (1u << 3) /* value preserved by INIT (SDM Vol. 3A Table 10-1) */
#define MSR_F_COMPUTED (1u << 4)  /* read-only value computed from the model; reset column unused */

/*
 * Gates of msr_table.def that are not a single feature: the MSR exists when
 * any of the listed features is on (msr_gate_features). FEAT_NONE: no CPUID
 * gate. Every MSR also needs FEAT_MSR (RDMSR/WRMSR exist at all).
 */
enum msr_gate {
    FEAT_NONE = FEAT_COUNT, /* architectural on every model */
    FEAT_LM_OR_NX,          /* IA32_EFER: CPUID.80000001H:EDX[29] or EDX[20] */
    FEAT_RDTSCP_OR_RDPID,   /* IA32_TSC_AUX: CPUID.80000001H:EDX[27] or CPUID.(7,0):ECX[22] */
    FEAT_ANY_SPEC_CTRL,     /* IA32_SPEC_CTRL: CPUID.(7,0):EDX[26] IBRS, [27] STIBP or [31] SSBD */
};
#define MSR_GATE_MAX 3

/* Architectural MSR bits, Linux names (msr-index.h); SDM Vol. 4 Table 2-2 unless noted. */
#define MSR_IA32_APICBASE_BSP BIT64(8)      /* bootstrap processor (read-only here) */
#define MSR_IA32_APICBASE_EXTD BIT64(10)    /* x2APIC mode (Linux: X2APIC_ENABLE) */
#define MSR_IA32_APICBASE_ENABLE BIT64(11)  /* xAPIC global enable */
#define MSR_IA32_APICBASE_BASE GENMASK64(63, 12) /* APIC base, up to MAXPHYADDR */
#define MSR_TEST_CTRL_SPLIT_LOCK_DETECT BIT64(29) /* SDM MSR_MEMORY_CTRL.SPLIT_LOCK_DISABLE */
#define FEAT_CTL_LOCKED BIT64(0)            /* IA32_FEATURE_CONTROL lock */
#define FEAT_CTL_VMX_ENABLED_INSIDE_SMX BIT64(1)
#define FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX BIT64(2)
#define SPEC_CTRL_IBRS BIT64(0)             /* needs CPUID.(7,0):EDX[26] */
#define SPEC_CTRL_STIBP BIT64(1)            /* needs CPUID.(7,0):EDX[27] */
#define SPEC_CTRL_SSBD BIT64(2)             /* needs CPUID.(7,0):EDX[31] */
#define PRED_CMD_IBPB BIT64(0)              /* indirect branch prediction barrier */
#define MSR_IA32_CORE_CAPS_SPLIT_LOCK_DETECT BIT64(5)
#define ARCH_CAP_RDCL_NO BIT64(0)           /* not susceptible to Meltdown */
#define ARCH_CAP_IBRS_ALL BIT64(1)          /* enhanced IBRS */
#define ARCH_CAP_SKIP_VMENTRY_L1DFLUSH BIT64(3)
#define ARCH_CAP_MDS_NO BIT64(5)
#define ARCH_CAP_PSCHANGE_MC_NO BIT64(6)
#define ARCH_CAP_TAA_NO BIT64(8)
#define MSR_IA32_MISC_ENABLE_FAST_STRING BIT64(0)
#define MSR_IA32_MISC_ENABLE_EMON BIT64(7)         /* performance monitoring available (RO) */
#define MSR_IA32_MISC_ENABLE_BTS_UNAVAIL BIT64(11) /* RO */
#define MSR_IA32_MISC_ENABLE_PEBS_UNAVAIL BIT64(12) /* RO */
#define MSR_IA32_MISC_ENABLE_MWAIT BIT64(18)       /* ENABLE MONITOR FSM */
#define MSR_IA32_MISC_ENABLE_LIMIT_CPUID BIT64(22)
#define MSR_IA32_MISC_ENABLE_XD_DISABLE BIT64(34)
#define DEBUGCTLMSR_LBR BIT64(0)
#define DEBUGCTLMSR_BTF BIT64(1)
#define MTRR_PHYSMASK_V BIT64(11)           /* IA32_MTRR_PHYSMASKn valid */
#define MTRR_DEF_TYPE_FE BIT64(10)          /* fixed-range MTRRs enable */
#define MTRR_DEF_TYPE_E BIT64(11)           /* MTRRs enable */
/* Bits 7:3 of every byte: a memory type above 7 (PAT entries, fixed MTRRs). */
#define MSR_MEMTYPE_BYTES_RSVD 0xF8F8F8F8F8F8F8F8ull

enum msr_result {
    MSR_OK = 0,
    MSR_GP, /* #GP(0) */
};

struct msr_file {
    const struct cpu_model *model;
    uint64_t val[MSR_ID_COUNT];
};

/*
 * Special semantics of one MSR (msr_table.def handler column). Called after
 * the generic checks (existence, RO/WO, the table's reserved mask):
 *   MSR_OP_RESET  *val holds the table's reset value; adjust it for the model
 *   MSR_OP_READ   *val holds the stored value; replace it (computed values)
 *   MSR_OP_WRITE  *val holds the value written; return MSR_GP to refuse it,
 *                 or change it (bits that ignore writes) before it is stored
 * Handlers see the whole msr_file (and so f->model) but never change it.
 */
enum msr_op { MSR_OP_RESET, MSR_OP_READ, MSR_OP_WRITE };
typedef enum msr_result (*msr_handler_fn)(const struct msr_file *f, enum msr_id id,
                                          enum msr_op op, uint64_t *val);

/* RESET (power-up) or INIT values (SDM Vol. 3A §10.1, Table 10-1). */
void msr_reset(struct msr_file *f, const struct cpu_model *model);
void msr_init(struct msr_file *f);

/* Table lookup: false when vmxsim has no such MSR. */
bool msr_lookup(uint32_t index, enum msr_id *id);
/* Exists on this model (in the table and its gate feature is on). */
bool msr_exists(const struct msr_file *f, uint32_t index);
const char *msr_name(uint32_t index); /* "MSR_IA32_PKRS", or NULL */
unsigned msr_flags(enum msr_id id);
uint32_t msr_index(enum msr_id id);
/* Features any one of which makes the MSR exist; 0 for FEAT_NONE. */
unsigned msr_gate_features(enum msr_id id, enum cpu_feature out[MSR_GATE_MAX]);

/* Architectural RDMSR/WRMSR (CPL checks are the core's). */
enum msr_result msr_read(const struct msr_file *f, uint32_t index, uint64_t *val);
enum msr_result msr_write(struct msr_file *f, uint32_t index, uint64_t val);
/*
 * Every WRMSR check without the store: MSR_OK and *val = the value WRMSR
 * would store, or MSR_GP. For VM-entry checks and MSR-load areas (VMX unit).
 */
enum msr_result msr_check_write(const struct msr_file *f, uint32_t index, uint64_t *val)
    __attribute__((warn_unused_result));

/* Direct access for the core and the VMX unit (no checks). */
uint64_t msr_get_raw(const struct msr_file *f, enum msr_id id);
void msr_set_raw(struct msr_file *f, enum msr_id id, uint64_t val);
#endif
