/*
 * CPU profiles (DESIGN §5): each is a base profile plus the features it
 * adds. The CPUID signatures are those of the named parts (family 6:
 * Skylake-SP 0x55, Ice Lake-SP 0x6A, Sapphire Rapids 0x8F; Core 2 0x0F
 * for the minimal profile). Features follow the parts as far as features.def
 * can express them; see model_describe() / `vmxsim cpu show NAME`.
 */
#include "model/model_priv.h"

/* VMX + long mode + the CPUID.01H:EDX basics: the smallest useful target. */
static const enum cpu_feature minimal_add[] = {
    FEAT_FPU, FEAT_VME, FEAT_DE, FEAT_PSE, FEAT_TSC, FEAT_MSR, FEAT_PAE, FEAT_MCE,
    FEAT_CX8, FEAT_APIC, FEAT_SEP, FEAT_MTRR, FEAT_PGE, FEAT_MCA, FEAT_CMOV, FEAT_PAT,
    FEAT_PSE36, FEAT_CLFLUSH, FEAT_MMX, FEAT_FXSR, FEAT_SSE, FEAT_SSE2,
    FEAT_VMX, FEAT_SYSCALL, FEAT_NX, FEAT_LM,
    FEAT_COUNT
};

/* Skylake-SP: PKU, no UMIP/LA57/RDPID/PKS, no split-lock detection, no MBEC. */
static const enum cpu_feature skylake_add[] = {
    FEAT_SSE3, FEAT_PCLMUL, FEAT_MONITOR, FEAT_SSSE3, FEAT_CX16, FEAT_PCID, FEAT_SSE4_1,
    FEAT_SSE4_2, FEAT_X2APIC, FEAT_MOVBE, FEAT_POPCNT, FEAT_TSC_DEADLINE, FEAT_AES,
    FEAT_XSAVE, FEAT_RDRAND,
    FEAT_FSGSBASE, FEAT_TSC_ADJUST, FEAT_BMI1, FEAT_SMEP, FEAT_BMI2, FEAT_ERMS,
    FEAT_INVPCID, FEAT_RDSEED, FEAT_ADX, FEAT_SMAP, FEAT_CLFLUSHOPT, FEAT_PKU,
    FEAT_MD_CLEAR, FEAT_SPEC_CTRL, FEAT_STIBP, FEAT_SSBD,
    FEAT_XSAVEOPT, FEAT_XSAVEC, FEAT_XSAVES,
    FEAT_LAHF_LM, FEAT_GBPAGES, FEAT_RDTSCP, FEAT_INVTSC,
    FEAT_EPT, FEAT_VPID, FEAT_UNRESTRICTED_GUEST, FEAT_EPT_AD, FEAT_VMX_PREEMPTION_TIMER,
    FEAT_VMX_VMWRITE_ANY, FEAT_VMX_TSC_SCALING,
    FEAT_COUNT
};

/* Ice Lake-SP: + UMIP, LA57, RDPID, IA32_ARCH/CORE_CAPABILITIES, split-lock detect, MBEC, 5-level EPT. */
static const enum cpu_feature icelake_add[] = {
    FEAT_UMIP, FEAT_LA57, FEAT_RDPID, FEAT_ARCH_CAPABILITIES, FEAT_CORE_CAPABILITIES,
    FEAT_SPLIT_LOCK_DETECT, FEAT_MBEC, FEAT_EPT_5LEVEL,
    FEAT_COUNT
};

/* Sapphire Rapids: + PKS, WAITPKG, tertiary controls, virtualize IA32_SPEC_CTRL. */
static const enum cpu_feature sapphire_add[] = {
    FEAT_PKS, FEAT_WAITPKG, FEAT_TERTIARY_CONTROLS, FEAT_SPEC_CTRL_VIRT,
    FEAT_COUNT
};

const struct model_profile model_profiles[] = {
    {
        .name = "minimal",
        .desc = "VMX + long mode + CPUID.01H:EDX basics (no EPT/VPID); for tests",
        .brand = "vmxsim minimal CPU",
        .base = -1,
        .family = 6, .model = 0x0F, .stepping = 11,
        .maxphyaddr = 36,
        .tsc_hz = 2000000000ull,
        .add = minimal_add,
    },
    {
        .name = "skylake-server",
        .desc = "Skylake-SP (Xeon Scalable 1st gen): PKU; no PKS, LA57, UMIP, split-lock detect",
        .brand = "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz",
        .base = 0,
        .family = 6, .model = 0x55, .stepping = 4,
        .maxphyaddr = 46,
        .tsc_hz = 2400000000ull,
        .add = skylake_add,
    },
    {
        .name = "icelake-server",
        .desc = "Ice Lake-SP (Xeon Scalable 3rd gen): PKU, LA57, split-lock detect; no PKS",
        .brand = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        .base = 1,
        .family = 6, .model = 0x6A, .stepping = 6,
        .maxphyaddr = 46,
        .tsc_hz = 2000000000ull,
        .add = icelake_add,
    },
    {
        .name = "sapphire-rapids",
        .desc = "Sapphire Rapids (Xeon Scalable 4th gen): PKS, PKU, LA57, split-lock detect, "
                "tertiary controls, SPEC_CTRL virtualization",
        .brand = "Intel(R) Xeon(R) Platinum 8480+",
        .base = 2,
        .family = 6, .model = 0x8F, .stepping = 8,
        .maxphyaddr = 46,
        .tsc_hz = 2000000000ull,
        .add = sapphire_add,
    },
};

const size_t model_profiles_count = sizeof(model_profiles) / sizeof(model_profiles[0]);
const size_t model_profile_default = 3;
