/*
 * The CPU feature model (DESIGN §5): one table of features, each mapped to
 * its CPUID bit(s), CR4 bit, EFER bit, MSRs and VMX capability bits, and a
 * set of named CPU profiles with per-run toggles ("icelake-server,-pks").
 * A feature that is off vanishes from CPUID, CR4, MSRs and the VMX
 * capability MSRs together, as on hardware that lacks it. Nothing else in
 * vmxsim keeps a per-feature list: ask this unit.
 */
#ifndef VMXSIM_MODEL_H
#define VMXSIM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cpu_feature {
#define FEATURE(id, name, leaf, subleaf, reg, bit, cr4, efer, desc) FEAT_##id,
#include "model/features.def"
#undef FEATURE
    FEAT_COUNT
};

#define MODEL_FEAT_WORDS ((FEAT_COUNT + 63) / 64)

enum cpuid_reg { CPUID_EAX = 0, CPUID_EBX = 1, CPUID_ECX = 2, CPUID_EDX = 3 };

/* features.def leaf for features without a CPUID bit (VMX capabilities, MSR-enumerated). */
#define CPUID_LEAF_NONE 0xFFFFFFFFu

struct cpu_model {
    char name[48];              /* profile name */
    char brand[49];             /* CPUID brand string */
    uint32_t family, model, stepping;
    uint8_t maxphyaddr;         /* CPUID.80000008H:EAX[7:0] */
    uint64_t feat[MODEL_FEAT_WORDS];
    uint64_t tsc_hz;            /* nominal TSC frequency (CPUID.15H) */
};

/* Build a model from "name[,+feat|-feat]...". On error returns false and writes a message. */
bool model_parse(const char *spec, struct cpu_model *out, char *err, size_t errlen);

/* Name of the default profile used when no --cpu is given. */
const char *model_default_name(void);

bool model_has(const struct cpu_model *m, enum cpu_feature f);
void model_set(struct cpu_model *m, enum cpu_feature f, bool on);

/* Feature metadata (from features.def). */
const char *model_feature_name(enum cpu_feature f);
const char *model_feature_desc(enum cpu_feature f);
bool model_feature_lookup(const char *name, enum cpu_feature *out);

/* Profiles, for `vmxsim cpu list` / `vmxsim cpu show NAME`. */
size_t model_profile_count(void);
const char *model_profile_name(size_t i);
const char *model_profile_desc(size_t i);

/*
 * CPUID as the guest sees it (SDM Vol. 2A CPUID). cr4 supplies the bits
 * that mirror control registers (OSXSAVE, OSPKE). apic_id fills leaf 1/0xB.
 */
void model_cpuid(const struct cpu_model *m, uint32_t leaf, uint32_t subleaf, uint64_t cr4,
                 uint32_t apic_id, uint32_t out[4]);

/* CR4 bits that are reserved (MOV to CR4 setting one → #GP) on this model. */
uint64_t model_cr4_reserved(const struct cpu_model *m);
/* EFER bits that are reserved (WRMSR setting one → #GP) on this model. */
uint64_t model_efer_reserved(const struct cpu_model *m);

/* Print the profile and every feature with on/off (for `vmxsim cpu show`). */
void model_describe(const struct cpu_model *m, FILE *out);

/*
 * Turn a feature on or off honouring feature_deps.def: off also turns off
 * every feature that (transitively) requires it; on fails, with a message
 * naming the missing prerequisite, unless every prerequisite is on.
 * model_set() above is the raw bit, with no dependency handling.
 */
bool model_toggle(struct cpu_model *m, enum cpu_feature f, bool on, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* True when every dependency of every enabled feature holds; else a message. */
bool model_check(const struct cpu_model *m, char *err, size_t errlen);
/* The features f directly requires (feature_deps.def); returns how many (≤ max stored). */
size_t model_feature_requires(enum cpu_feature f, enum cpu_feature *out, size_t max);

/* Linear-address width: 57 with LA57, else 48 (CPUID.80000008H:EAX[15:8]). */
unsigned model_linear_width(const struct cpu_model *m);
/* XCR0 bits XSETBV may set (CPUID.(0DH,0):EDX:EAX); 0 without XSAVE. */
uint64_t model_xcr0_supported(const struct cpu_model *m);
/* Standard-format XSAVE area size for the components in xcr0 (CPUID.(0DH,0):EBX). */
uint32_t model_xsave_size(const struct cpu_model *m, uint64_t xcr0);
#endif
