/*
 * MSR unit (src/msr): every row of msr_table.def — RESET values, reserved
 * bits one by one, RO/WO, CPUID gating — then the MSRs with special rules
 * (SDM Vol. 4 Table 2-2; Vol. 2B RDMSR/WRMSR; Vol. 3A chapters cited).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86.h"
#include "model/model.h"
#include "msr/msr.h"

struct msr_row {
    enum msr_id id;
    const char *name;
    uint32_t index;
    unsigned flags;
    uint64_t rsvd, reset;
    const char *handler;
};

static const struct msr_row rows[] = {
#define MSR(id, idx, gt, fl, rs, rv, hd) { MSR_ID_##id, "MSR_" #id, idx, fl, rs, rv, #hd },
#include "msr/msr_table.def"
#undef MSR
};

#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

/* Parsed models live for the whole test (an msr_file points at its model). */
static struct {
    char spec[96];
    struct cpu_model m;
} models[32];

static const struct cpu_model *model_of(const char *spec)
{
    size_t i;
    char err[256] = "";

    for (i = 0; i < sizeof(models) / sizeof(models[0]) && models[i].spec[0]; i++)
        if (strcmp(models[i].spec, spec) == 0)
            return &models[i].m;
    ck_assert_uint_lt(i, sizeof(models) / sizeof(models[0]));
    ck_assert_msg(model_parse(spec, &models[i].m, err, sizeof(err)), "%s: %s", spec, err);
    snprintf(models[i].spec, sizeof(models[i].spec), "%s", spec);
    return &models[i].m;
}

static void setup(struct msr_file *f, const char *spec)
{
    msr_reset(f, model_of(spec));
}

static bool has_handler(const struct msr_row *r)
{
    return strcmp(r->handler, "NULL") != 0;
}

static uint64_t rd(const struct msr_file *f, uint32_t index)
{
    uint64_t v = 0xDEADBEEFull;

    ck_assert_msg(msr_read(f, index, &v) == MSR_OK, "RDMSR %#x faulted", index);
    return v;
}

static void expect_wr(struct msr_file *f, uint32_t index, uint64_t v, enum msr_result want)
{
    ck_assert_msg(msr_write(f, index, v) == want, "WRMSR %s <- %#llx: expected %s", msr_name(index),
                  (unsigned long long)v, want == MSR_OK ? "OK" : "#GP");
}

START_TEST(test_table_sorted_and_named)
{
    ck_assert_uint_eq(N_ROWS, MSR_ID_COUNT);
    for (size_t i = 0; i < N_ROWS; i++) {
        enum msr_id id;
        ck_assert_uint_eq(rows[i].id, i);
        if (i)
            ck_assert_msg(rows[i - 1].index < rows[i].index, "%s out of order", rows[i].name);
        ck_assert(msr_lookup(rows[i].index, &id) && id == rows[i].id);
        ck_assert_str_eq(msr_name(rows[i].index), rows[i].name);
        ck_assert_uint_eq(msr_index(rows[i].id), rows[i].index);
        ck_assert_uint_eq(msr_flags(rows[i].id), rows[i].flags);
        ck_assert_msg(!((rows[i].flags & MSR_F_RO) && (rows[i].flags & MSR_F_WO)), "%s", rows[i].name);
        ck_assert_msg(!(rows[i].flags & MSR_F_COMPUTED) || has_handler(&rows[i]), "%s", rows[i].name);
    }
    ck_assert_uint_eq(MSR_IA32_PKRS, 0x6E1);
    ck_assert_uint_eq(MSR_EFER, 0xC0000080);
}
END_TEST

/* SDM Vol. 2B RDMSR/WRMSR: an unimplemented index is #GP(0) (unlike QEMU TCG, DESIGN §9). */
START_TEST(test_unknown_index)
{
    static const uint32_t unknown[] = { 0x0, 0x11, 0x480, 0x48C, 0x802, 0x830, 0xC0000104,
                                        0x40000000, 0xC0010000, 0xFFFFFFFF };
    struct msr_file f;
    uint64_t v;

    setup(&f, "sapphire-rapids");
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        ck_assert(!msr_exists(&f, unknown[i]));
        ck_assert_ptr_null(msr_name(unknown[i]));
        ck_assert_int_eq(msr_read(&f, unknown[i], &v), MSR_GP);
        ck_assert_int_eq(msr_write(&f, unknown[i], 0), MSR_GP);
    }
}
END_TEST

/* Every present, readable MSR reads its RESET value (computed ones: raw == read). */
START_TEST(test_reset_values)
{
    for (size_t p = 0; p < model_profile_count(); p++) {
        struct msr_file f;
        setup(&f, model_profile_name(p));
        for (size_t i = 0; i < N_ROWS; i++) {
            const struct msr_row *r = &rows[i];
            if (!msr_exists(&f, r->index) || (r->flags & MSR_F_WO))
                continue;
            uint64_t v = rd(&f, r->index);
            ck_assert_uint_eq(v, msr_get_raw(&f, r->id));
            if (!(r->flags & MSR_F_COMPUTED) && r->id != MSR_ID_IA32_MISC_ENABLE)
                ck_assert_msg(v == r->reset, "%s on %s: %#llx", r->name, model_profile_name(p),
                              (unsigned long long)v);
        }
    }
}
END_TEST

/*
 * Loop bit 0..63 of every writable MSR: a bit in the table's reserved mask
 * faults; for MSRs without special rules every other bit is written and
 * read back.
 */
START_TEST(test_reserved_bits)
{
    for (size_t p = 0; p < model_profile_count(); p++) {
        for (size_t i = 0; i < N_ROWS; i++) {
            const struct msr_row *r = &rows[i];
            struct msr_file f;
            msr_reset(&f, model_of(model_profile_name(p)));
            if (!msr_exists(&f, r->index) || (r->flags & MSR_F_RO))
                continue;
            for (unsigned b = 0; b < 64; b++) {
                msr_reset(&f, f.model);
                uint64_t before = msr_get_raw(&f, r->id);
                if (r->rsvd & BIT64(b)) {
                    expect_wr(&f, r->index, BIT64(b), MSR_GP);
                    ck_assert_uint_eq(msr_get_raw(&f, r->id), before);
                } else if (!has_handler(r)) {
                    expect_wr(&f, r->index, BIT64(b), MSR_OK);
                    if (!(r->flags & MSR_F_WO))
                        ck_assert_uint_eq(rd(&f, r->index), BIT64(b));
                }
            }
        }
    }
}
END_TEST

/* Read-only: WRMSR #GP even of the current value; write-only: RDMSR #GP. */
START_TEST(test_ro_wo)
{
    struct msr_file f;
    uint64_t v;

    setup(&f, "sapphire-rapids");
    for (size_t i = 0; i < N_ROWS; i++) {
        const struct msr_row *r = &rows[i];
        if (!msr_exists(&f, r->index))
            continue;
        if (r->flags & MSR_F_RO)
            expect_wr(&f, r->index, rd(&f, r->index), MSR_GP);
        if (r->flags & MSR_F_WO) {
            ck_assert_int_eq(msr_read(&f, r->index, &v), MSR_GP);
            expect_wr(&f, r->index, 0, MSR_OK);
        }
    }
    ck_assert(msr_flags(MSR_ID_IA32_PRED_CMD) & MSR_F_WO);
    ck_assert(msr_flags(MSR_ID_IA32_CORE_CAPS) & MSR_F_RO);
    ck_assert(msr_flags(MSR_ID_IA32_ARCH_CAPABILITIES) & MSR_F_RO);
    ck_assert(msr_flags(MSR_ID_MTRRcap) & MSR_F_RO);
}
END_TEST

/* Loop the table: with every gate feature off (and its dependents), the MSR is #GP. */
START_TEST(test_gates)
{
    for (size_t i = 0; i < N_ROWS; i++) {
        const struct msr_row *r = &rows[i];
        enum cpu_feature any[MSR_GATE_MAX];
        unsigned n = msr_gate_features(r->id, any);
        struct cpu_model m = *model_of("sapphire-rapids");
        struct msr_file f;
        uint64_t v;

        msr_reset(&f, &m);
        ck_assert_msg(msr_exists(&f, r->index), "%s absent on sapphire-rapids", r->name);
        for (unsigned k = 0; k < n; k++)
            ck_assert(model_toggle(&m, any[k], false, NULL, 0));
        if (n == 0)
            ck_assert(model_toggle(&m, FEAT_MSR, false, NULL, 0)); /* no RDMSR/WRMSR at all */
        msr_reset(&f, &m);
        ck_assert_msg(!msr_exists(&f, r->index), "%s present with its gate off", r->name);
        ck_assert_int_eq(msr_read(&f, r->index, &v), MSR_GP);
        ck_assert_int_eq(msr_write(&f, r->index, r->reset), MSR_GP);
    }
}
END_TEST

/* A multi-feature gate: any one feature keeps the MSR (SDM Vol. 4 Table 2-2 conditions). */
START_TEST(test_multi_gates)
{
    struct msr_file f;

    setup(&f, "sapphire-rapids,-rdtscp");
    ck_assert(msr_exists(&f, MSR_TSC_AUX)); /* CPUID.(7,0):ECX[22] RDPID */
    setup(&f, "sapphire-rapids,-rdtscp,-rdpid");
    ck_assert(!msr_exists(&f, MSR_TSC_AUX));
    setup(&f, "minimal");
    ck_assert(!msr_exists(&f, MSR_TSC_AUX));
    setup(&f, "minimal,-lm");
    ck_assert(msr_exists(&f, MSR_EFER)); /* NX alone keeps IA32_EFER */
    ck_assert(!msr_exists(&f, MSR_LSTAR));
    expect_wr(&f, MSR_EFER, X86_EFER_NXE, MSR_OK);
    expect_wr(&f, MSR_EFER, X86_EFER_LME, MSR_GP);
    setup(&f, "minimal,-lm,-nx");
    ck_assert(!msr_exists(&f, MSR_EFER));
}
END_TEST

/* IA32_FEATURE_CONTROL: writable until locked, then every write #GP; RESET unlocks (Vol. 3C §24.7). */
START_TEST(test_feature_control_lock)
{
    struct msr_file f;

    setup(&f, "icelake-server");
    ck_assert_uint_eq(rd(&f, MSR_IA32_FEAT_CTL), 0);
    expect_wr(&f, MSR_IA32_FEAT_CTL, FEAT_CTL_VMX_ENABLED_INSIDE_SMX, MSR_GP); /* no SMX */
    expect_wr(&f, MSR_IA32_FEAT_CTL, FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX, MSR_OK);
    expect_wr(&f, MSR_IA32_FEAT_CTL, 0, MSR_OK);
    expect_wr(&f, MSR_IA32_FEAT_CTL, FEAT_CTL_LOCKED | FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX, MSR_OK);
    ck_assert_uint_eq(rd(&f, MSR_IA32_FEAT_CTL), 5);
    expect_wr(&f, MSR_IA32_FEAT_CTL, 5, MSR_GP);
    expect_wr(&f, MSR_IA32_FEAT_CTL, 0, MSR_GP);
    expect_wr(&f, MSR_IA32_FEAT_CTL, FEAT_CTL_LOCKED, MSR_GP);
    ck_assert_uint_eq(rd(&f, MSR_IA32_FEAT_CTL), 5);
    msr_init(&f);
    ck_assert_uint_eq(rd(&f, MSR_IA32_FEAT_CTL), 5);
    expect_wr(&f, MSR_IA32_FEAT_CTL, 0, MSR_GP);
    msr_reset(&f, f.model);
    ck_assert_uint_eq(rd(&f, MSR_IA32_FEAT_CTL), 0);
    expect_wr(&f, MSR_IA32_FEAT_CTL, 0, MSR_OK);
}
END_TEST

/* IA32_PKRS (Vol. 3A §4.6.2): 32 rights bits, 63:32 reserved; only with PKS; cleared by INIT. */
START_TEST(test_pkrs)
{
    struct msr_file f;
    uint64_t v;

    setup(&f, "sapphire-rapids");
    expect_wr(&f, MSR_IA32_PKRS, 0xFFFFFFFF, MSR_OK);
    ck_assert_uint_eq(rd(&f, MSR_IA32_PKRS), 0xFFFFFFFF);
    for (unsigned b = 32; b < 64; b++)
        expect_wr(&f, MSR_IA32_PKRS, 0x55555555 | BIT64(b), MSR_GP);
    ck_assert_uint_eq(rd(&f, MSR_IA32_PKRS), 0xFFFFFFFF);
    msr_init(&f);
    ck_assert_uint_eq(rd(&f, MSR_IA32_PKRS), 0);
    setup(&f, "icelake-server");
    ck_assert_int_eq(msr_read(&f, MSR_IA32_PKRS, &v), MSR_GP);
    ck_assert_int_eq(msr_write(&f, MSR_IA32_PKRS, 0), MSR_GP);
    setup(&f, "sapphire-rapids,-pks");
    ck_assert_int_eq(msr_read(&f, MSR_IA32_PKRS, &v), MSR_GP);
}
END_TEST

/* MSR_TEST_CTRL: only bit 29 (split-lock #AC), and only with split-lock detection. */
START_TEST(test_test_ctrl)
{
    static const char *const with[] = { "icelake-server", "sapphire-rapids" };
    static const char *const without[] = { "skylake-server", "minimal",
                                           "sapphire-rapids,-split_lock_detect",
                                           "sapphire-rapids,-core_capabilities" };
    struct msr_file f;
    uint64_t v;

    for (size_t i = 0; i < 2; i++) {
        setup(&f, with[i]);
        expect_wr(&f, MSR_TEST_CTRL, MSR_TEST_CTRL_SPLIT_LOCK_DETECT, MSR_OK);
        ck_assert_uint_eq(rd(&f, MSR_TEST_CTRL), BIT64(29));
        for (unsigned b = 0; b < 64; b++)
            if (b != 29)
                expect_wr(&f, MSR_TEST_CTRL, BIT64(b), MSR_GP);
        expect_wr(&f, MSR_TEST_CTRL, 0, MSR_OK);
    }
    for (size_t i = 0; i < 4; i++) {
        setup(&f, without[i]);
        ck_assert_int_eq(msr_read(&f, MSR_TEST_CTRL, &v), MSR_GP);
        ck_assert_int_eq(msr_write(&f, MSR_TEST_CTRL, BIT64(29)), MSR_GP);
    }
}
END_TEST

/* IA32_CORE_CAPABILITIES: gated by CPUID.(7,0):EDX[30]; bit 5 = split-lock detection. */
START_TEST(test_core_capabilities)
{
    struct msr_file f;
    uint64_t v;

    setup(&f, "sapphire-rapids");
    ck_assert_uint_eq(rd(&f, MSR_IA32_CORE_CAPS), MSR_IA32_CORE_CAPS_SPLIT_LOCK_DETECT);
    expect_wr(&f, MSR_IA32_CORE_CAPS, 0, MSR_GP);
    setup(&f, "sapphire-rapids,-split_lock_detect");
    ck_assert_uint_eq(rd(&f, MSR_IA32_CORE_CAPS), 0);
    setup(&f, "skylake-server");
    ck_assert_int_eq(msr_read(&f, MSR_IA32_CORE_CAPS, &v), MSR_GP);
    setup(&f, "sapphire-rapids,-core_capabilities");
    ck_assert_int_eq(msr_read(&f, MSR_IA32_CORE_CAPS, &v), MSR_GP);
}
END_TEST

/* IA32_ARCH_CAPABILITIES: read-only, only with CPUID.(7,0):EDX[29]; eIBRS only with IBRS. */
START_TEST(test_arch_capabilities)
{
    struct msr_file f;
    uint64_t v;

    setup(&f, "sapphire-rapids");
    v = rd(&f, MSR_IA32_ARCH_CAPABILITIES);
    ck_assert(v & ARCH_CAP_RDCL_NO);
    ck_assert(v & ARCH_CAP_IBRS_ALL);
    expect_wr(&f, MSR_IA32_ARCH_CAPABILITIES, v, MSR_GP);
    setup(&f, "sapphire-rapids,-spec_ctrl");
    ck_assert(!(rd(&f, MSR_IA32_ARCH_CAPABILITIES) & ARCH_CAP_IBRS_ALL));
    setup(&f, "skylake-server");
    ck_assert_int_eq(msr_read(&f, MSR_IA32_ARCH_CAPABILITIES, &v), MSR_GP);
}
END_TEST

/* SDM Vol. 2B WRMSR: these six take only canonical addresses, checked at the CPU's width. */
START_TEST(test_canonical_bases)
{
    static const uint32_t canon[] = { MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_LSTAR,
                                      MSR_IA32_SYSENTER_EIP, MSR_IA32_SYSENTER_ESP };
    const uint64_t c57 = 0x00FF000000000000ull; /* canonical for 57 bits, not for 48 */
    struct msr_file skx, spr;

    setup(&skx, "skylake-server");
    setup(&spr, "sapphire-rapids");
    for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
        expect_wr(&skx, canon[i], 0xFFFF800000000000ull, MSR_OK);
        expect_wr(&skx, canon[i], 0x00007FFFFFFFF000ull, MSR_OK);
        expect_wr(&skx, canon[i], 0x0000800000000000ull, MSR_GP);
        expect_wr(&skx, canon[i], c57, MSR_GP);
        expect_wr(&spr, canon[i], c57, MSR_OK);
        ck_assert_uint_eq(rd(&spr, canon[i]), c57);
        expect_wr(&spr, canon[i], 0x8000000000000000ull, MSR_GP);
        expect_wr(&spr, canon[i], 0xFF00000000000000ull, MSR_OK);
        ck_assert_uint_eq(rd(&spr, canon[i]), 0xFF00000000000000ull);
    }
    /* IA32_CSTAR is not in the WRMSR list: no canonical check on Intel */
    expect_wr(&skx, MSR_CSTAR, 0x8000000000000000ull, MSR_OK);
}
END_TEST

/* IA32_SPEC_CTRL: IBRS/STIBP/SSBD each exist only with their CPUID bit. */
START_TEST(test_spec_ctrl)
{
    static const struct {
        const char *spec;
        uint64_t ok;
    } cases[] = {
        { "sapphire-rapids", SPEC_CTRL_IBRS | SPEC_CTRL_STIBP | SPEC_CTRL_SSBD },
        { "sapphire-rapids,-stibp", SPEC_CTRL_IBRS | SPEC_CTRL_SSBD },
        { "sapphire-rapids,-ssbd,-stibp", SPEC_CTRL_IBRS },
        { "sapphire-rapids,-spec_ctrl", SPEC_CTRL_STIBP | SPEC_CTRL_SSBD },
        { "sapphire-rapids,-spec_ctrl,-stibp", SPEC_CTRL_SSBD },
    };
    struct msr_file f;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        setup(&f, cases[i].spec);
        for (unsigned b = 0; b < 3; b++)
            expect_wr(&f, MSR_IA32_SPEC_CTRL, BIT64(b), (cases[i].ok & BIT64(b)) ? MSR_OK : MSR_GP);
        expect_wr(&f, MSR_IA32_SPEC_CTRL, cases[i].ok, MSR_OK);
        ck_assert_uint_eq(rd(&f, MSR_IA32_SPEC_CTRL), cases[i].ok);
    }
    setup(&f, "sapphire-rapids,-spec_ctrl");
    ck_assert(!msr_exists(&f, MSR_IA32_PRED_CMD)); /* IBPB: CPUID.(7,0):EDX[26] */
    setup(&f, "sapphire-rapids,-spec_ctrl,-stibp,-ssbd");
    ck_assert(!msr_exists(&f, MSR_IA32_SPEC_CTRL));
}
END_TEST

/* IA32_EFER: model-dependent reserved bits; WRMSR cannot change LMA (Vol. 3A §2.2.1). */
START_TEST(test_efer)
{
    struct msr_file f;

    setup(&f, "sapphire-rapids");
    expect_wr(&f, MSR_EFER, X86_EFER_SCE | X86_EFER_LME | X86_EFER_NXE, MSR_OK);
    ck_assert_uint_eq(rd(&f, MSR_EFER), X86_EFER_SCE | X86_EFER_LME | X86_EFER_NXE);
    expect_wr(&f, MSR_EFER, X86_EFER_LME | X86_EFER_LMA, MSR_OK);
    ck_assert_uint_eq(rd(&f, MSR_EFER), X86_EFER_LME);
    msr_set_raw(&f, MSR_ID_EFER, X86_EFER_LME | X86_EFER_LMA); /* the core entered long mode */
    expect_wr(&f, MSR_EFER, X86_EFER_LME | X86_EFER_NXE, MSR_OK);
    ck_assert_uint_eq(rd(&f, MSR_EFER), X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE);
    expect_wr(&f, MSR_EFER, X86_EFER_SVME, MSR_GP);
    expect_wr(&f, MSR_EFER, X86_EFER_FFXSR, MSR_GP);
    setup(&f, "sapphire-rapids,-nx");
    expect_wr(&f, MSR_EFER, X86_EFER_NXE, MSR_GP);
    setup(&f, "sapphire-rapids,-syscall");
    expect_wr(&f, MSR_EFER, X86_EFER_SCE, MSR_GP);
}
END_TEST

/* IA32_APIC_BASE (Vol. 3A §11.4.4, §11.12.5): reserved bits, x2APIC mode transitions, BSP. */
START_TEST(test_apic_base)
{
    const uint64_t base = 0xFEE00000, en = MSR_IA32_APICBASE_ENABLE, x2 = MSR_IA32_APICBASE_EXTD;
    struct msr_file f;

    setup(&f, "sapphire-rapids"); /* MAXPHYADDR 46 */
    ck_assert_uint_eq(rd(&f, MSR_IA32_APICBASE), 0xFEE00900);
    expect_wr(&f, MSR_IA32_APICBASE, base | en | x2, MSR_OK); /* xAPIC → x2APIC */
    ck_assert_uint_eq(rd(&f, MSR_IA32_APICBASE), base | en | x2 | MSR_IA32_APICBASE_BSP);
    expect_wr(&f, MSR_IA32_APICBASE, base | en, MSR_GP); /* x2APIC → xAPIC */
    expect_wr(&f, MSR_IA32_APICBASE, base | x2, MSR_GP); /* EN=0, EXTD=1: invalid */
    expect_wr(&f, MSR_IA32_APICBASE, base, MSR_OK);      /* x2APIC → disabled */
    expect_wr(&f, MSR_IA32_APICBASE, base | en | x2, MSR_GP); /* disabled → x2APIC */
    expect_wr(&f, MSR_IA32_APICBASE, base | en, MSR_OK);      /* disabled → xAPIC */
    expect_wr(&f, MSR_IA32_APICBASE, BIT64(45) | en, MSR_OK);
    expect_wr(&f, MSR_IA32_APICBASE, BIT64(46) | en, MSR_GP);
    expect_wr(&f, MSR_IA32_APICBASE, base | en, MSR_OK); /* BSP stays set: a status bit */
    ck_assert(rd(&f, MSR_IA32_APICBASE) & MSR_IA32_APICBASE_BSP);
    setup(&f, "minimal"); /* no x2APIC, MAXPHYADDR 36 */
    expect_wr(&f, MSR_IA32_APICBASE, base | en | x2, MSR_GP);
    expect_wr(&f, MSR_IA32_APICBASE, BIT64(36) | en, MSR_GP);
}
END_TEST

/* IA32_PAT (Vol. 3A §12.12.2): encodings 2 and 3 reserved in every entry. */
START_TEST(test_pat)
{
    struct msr_file f;

    setup(&f, "skylake-server");
    ck_assert_uint_eq(rd(&f, MSR_IA32_CR_PAT), 0x0007040600070406ull);
    for (unsigned e = 0; e < 8; e++) {
        expect_wr(&f, MSR_IA32_CR_PAT, 2ull << (8 * e), MSR_GP);
        expect_wr(&f, MSR_IA32_CR_PAT, 3ull << (8 * e), MSR_GP);
        expect_wr(&f, MSR_IA32_CR_PAT, 8ull << (8 * e), MSR_GP);
        expect_wr(&f, MSR_IA32_CR_PAT, 7ull << (8 * e), MSR_OK);
    }
    expect_wr(&f, MSR_IA32_CR_PAT, 0x0706050401000000ull, MSR_OK);
    ck_assert_uint_eq(rd(&f, MSR_IA32_CR_PAT), 0x0706050401000000ull);
}
END_TEST

/* MTRRs (Vol. 3A §12.11.2): valid types only (no UC-), addresses below MAXPHYADDR. */
START_TEST(test_mtrr)
{
    struct msr_file f;
    unsigned vcnt = 0;

    setup(&f, "skylake-server"); /* MAXPHYADDR 46 */
    for (size_t i = 0; i < N_ROWS; i++)
        vcnt += strncmp(rows[i].name, "MSR_MTRRphysBase", 16) == 0;
    ck_assert_uint_eq(rd(&f, MSR_MTRRcap) & 0xFF, vcnt); /* VCNT matches the table */
    ck_assert(rd(&f, MSR_MTRRcap) & BIT64(8));          /* fixed ranges supported */
    for (unsigned t = 0; t < 8; t++) {
        bool ok = t == 0 || t == 1 || t == 4 || t == 5 || t == 6;
        expect_wr(&f, MSR_MTRRdefType, MTRR_DEF_TYPE_E | MTRR_DEF_TYPE_FE | t, ok ? MSR_OK : MSR_GP);
        expect_wr(&f, MSR_MTRRphysBase3, 0x80000000ull | t, ok ? MSR_OK : MSR_GP);
        expect_wr(&f, MSR_MTRRfix4K_C8000, 0x0606060606060600ull | t, ok ? MSR_OK : MSR_GP);
    }
    expect_wr(&f, MSR_MTRRphysBase0, BIT64(45) | 6, MSR_OK);
    expect_wr(&f, MSR_MTRRphysBase0, BIT64(46) | 6, MSR_GP);
    expect_wr(&f, MSR_MTRRphysMask0, GENMASK64(45, 12) | MTRR_PHYSMASK_V, MSR_OK);
    expect_wr(&f, MSR_MTRRphysMask0, GENMASK64(46, 12) | MTRR_PHYSMASK_V, MSR_GP);
}
END_TEST

/* IA32_SYSENTER_CS (Vol. 4 Table 2-2): bits 63:32 ignore writes and read as zero. */
START_TEST(test_sysenter_cs)
{
    struct msr_file f;

    setup(&f, "minimal");
    expect_wr(&f, MSR_IA32_SYSENTER_CS, 0xFFFFFFFF00000010ull, MSR_OK);
    ck_assert_uint_eq(rd(&f, MSR_IA32_SYSENTER_CS), 0x10);
}
END_TEST

/* IA32_MISC_ENABLE: RESET has fast strings; RO bits keep their value; CPUID knobs reserved. */
START_TEST(test_misc_enable)
{
    const uint64_t ro = MSR_IA32_MISC_ENABLE_BTS_UNAVAIL | MSR_IA32_MISC_ENABLE_PEBS_UNAVAIL;
    struct msr_file f;

    setup(&f, "sapphire-rapids"); /* MONITOR on */
    ck_assert_uint_eq(rd(&f, MSR_IA32_MISC_ENABLE),
                      ro | MSR_IA32_MISC_ENABLE_FAST_STRING | MSR_IA32_MISC_ENABLE_MWAIT);
    expect_wr(&f, MSR_IA32_MISC_ENABLE, 0, MSR_OK);
    ck_assert_uint_eq(rd(&f, MSR_IA32_MISC_ENABLE), ro | MSR_IA32_MISC_ENABLE_MWAIT);
    expect_wr(&f, MSR_IA32_MISC_ENABLE, MSR_IA32_MISC_ENABLE_LIMIT_CPUID, MSR_GP);
    expect_wr(&f, MSR_IA32_MISC_ENABLE, MSR_IA32_MISC_ENABLE_XD_DISABLE, MSR_GP);
    setup(&f, "minimal"); /* no MONITOR */
    ck_assert_uint_eq(rd(&f, MSR_IA32_MISC_ENABLE), ro | MSR_IA32_MISC_ENABLE_FAST_STRING);
    expect_wr(&f, MSR_IA32_MISC_ENABLE, MSR_IA32_MISC_ENABLE_MWAIT, MSR_OK);
    ck_assert(!(rd(&f, MSR_IA32_MISC_ENABLE) & MSR_IA32_MISC_ENABLE_MWAIT));
}
END_TEST

/*
 * INIT (SDM Vol. 3A §10.1, Table 10-1): MSRs unchanged except IA32_EFER
 * (real mode), FS/GS base (segment state) and IA32_PKRS (cleared on INIT).
 */
START_TEST(test_init)
{
    static const enum msr_id cleared[] = { MSR_ID_EFER, MSR_ID_FS_BASE, MSR_ID_GS_BASE,
                                           MSR_ID_IA32_PKRS };
    struct msr_file f;

    for (size_t i = 0; i < N_ROWS; i++) {
        bool expect_cleared = false;
        for (size_t k = 0; k < sizeof(cleared) / sizeof(cleared[0]); k++)
            expect_cleared |= rows[i].id == cleared[k];
        ck_assert_msg(!(rows[i].flags & MSR_F_KEEP_INIT) == expect_cleared, "%s", rows[i].name);
    }
    setup(&f, "sapphire-rapids");
    expect_wr(&f, MSR_EFER, X86_EFER_LME | X86_EFER_SCE, MSR_OK);
    expect_wr(&f, MSR_FS_BASE, 0x1000, MSR_OK);
    expect_wr(&f, MSR_GS_BASE, 0x2000, MSR_OK);
    expect_wr(&f, MSR_KERNEL_GS_BASE, 0x3000, MSR_OK);
    expect_wr(&f, MSR_IA32_PKRS, 0xC, MSR_OK);
    expect_wr(&f, MSR_LSTAR, 0x4000, MSR_OK);
    expect_wr(&f, MSR_IA32_CR_PAT, 0x0606060606060606ull, MSR_OK);
    msr_init(&f);
    ck_assert_uint_eq(rd(&f, MSR_EFER), 0);
    ck_assert_uint_eq(rd(&f, MSR_FS_BASE), 0);
    ck_assert_uint_eq(rd(&f, MSR_GS_BASE), 0);
    ck_assert_uint_eq(rd(&f, MSR_IA32_PKRS), 0);
    ck_assert_uint_eq(rd(&f, MSR_KERNEL_GS_BASE), 0x3000);
    ck_assert_uint_eq(rd(&f, MSR_LSTAR), 0x4000);
    ck_assert_uint_eq(rd(&f, MSR_IA32_CR_PAT), 0x0606060606060606ull);
}
END_TEST

/* msr_check_write runs every WRMSR check but stores nothing. */
START_TEST(test_check_write)
{
    struct msr_file f;
    uint64_t v = X86_EFER_LME | X86_EFER_LMA;

    setup(&f, "sapphire-rapids");
    ck_assert_int_eq(msr_check_write(&f, MSR_EFER, &v), MSR_OK);
    ck_assert_uint_eq(v, X86_EFER_LME); /* LMA is not software-writable */
    ck_assert_uint_eq(rd(&f, MSR_EFER), 0);
    v = BIT64(32);
    ck_assert_int_eq(msr_check_write(&f, MSR_IA32_PKRS, &v), MSR_GP);
    v = 0x8000000000000000ull;
    ck_assert_int_eq(msr_check_write(&f, MSR_FS_BASE, &v), MSR_GP);
}
END_TEST

/* IA32_XSS: present with XSAVES; no supervisor components here, so only 0 is valid. */
START_TEST(test_xss_and_mcg)
{
    struct msr_file f;
    uint64_t v;

    setup(&f, "sapphire-rapids");
    expect_wr(&f, MSR_IA32_XSS, 0, MSR_OK);
    expect_wr(&f, MSR_IA32_XSS, BIT64(8), MSR_GP);
    ck_assert_uint_eq(rd(&f, MSR_IA32_MCG_CAP), 0);
    expect_wr(&f, MSR_IA32_MCG_STATUS, 0x7, MSR_OK);
    expect_wr(&f, MSR_IA32_MCG_STATUS, 0x8, MSR_GP);
    setup(&f, "minimal");
    ck_assert_int_eq(msr_read(&f, MSR_IA32_XSS, &v), MSR_GP);
    setup(&f, "minimal,-mca");
    ck_assert_int_eq(msr_read(&f, MSR_IA32_MCG_CAP, &v), MSR_GP);
}
END_TEST

static Suite *msr_suite(void)
{
    Suite *s = suite_create("msr");
    TCase *t = tcase_create("table");

    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_table_sorted_and_named);
    tcase_add_test(t, test_unknown_index);
    tcase_add_test(t, test_reset_values);
    tcase_add_test(t, test_reserved_bits);
    tcase_add_test(t, test_ro_wo);
    tcase_add_test(t, test_gates);
    tcase_add_test(t, test_multi_gates);
    tcase_add_test(t, test_init);
    tcase_add_test(t, test_check_write);
    suite_add_tcase(s, t);
    t = tcase_create("special");
    tcase_add_test(t, test_feature_control_lock);
    tcase_add_test(t, test_pkrs);
    tcase_add_test(t, test_test_ctrl);
    tcase_add_test(t, test_core_capabilities);
    tcase_add_test(t, test_arch_capabilities);
    tcase_add_test(t, test_canonical_bases);
    tcase_add_test(t, test_spec_ctrl);
    tcase_add_test(t, test_efer);
    tcase_add_test(t, test_apic_base);
    tcase_add_test(t, test_pat);
    tcase_add_test(t, test_mtrr);
    tcase_add_test(t, test_sysenter_cs);
    tcase_add_test(t, test_misc_enable);
    tcase_add_test(t, test_xss_and_mcg);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(msr_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
