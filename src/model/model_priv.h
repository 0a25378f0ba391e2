/*
 * Private to the model unit: the profile table (profiles.c), read by model.c.
 */
#ifndef VMXSIM_MODEL_PRIV_H
#define VMXSIM_MODEL_PRIV_H

#include "model/model.h"

/*
 * A named CPU profile. Features are the base profile's plus `add`
 * (a list ended by FEAT_COUNT); `base` is an index into model_profiles[]
 * lower than the profile's own, or -1.
 */
struct model_profile {
    const char *name;
    const char *desc;
    const char *brand;        /* CPUID.80000002H-80000004H, at most 48 chars */
    int base;
    uint32_t family, model, stepping;
    uint8_t maxphyaddr;       /* CPUID.80000008H:EAX[7:0] */
    uint64_t tsc_hz;          /* nominal TSC frequency */
    const enum cpu_feature *add;
};

extern const struct model_profile model_profiles[];
extern const size_t model_profiles_count;
/* Index of the default profile (sapphire-rapids). */
extern const size_t model_profile_default;

#endif
