/*
 * CPU feature model (src/model): profiles, --cpu spec parsing, dependency
 * rules, CPUID encodings, reserved CR4/EFER bits, and the promise of
 * DESIGN §5 that one toggle changes CPUID, CR4, EFER and MSR existence
 * together. Feature expectations come from features.def rows (SDM/Linux
 * verified positions), not from running the model.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86.h"
#include "model/model.h"
#include "msr/msr.h"
#include "vmx/vmcs.h"
#include "vmx/vmx.h"

struct feat_row {
    enum cpu_feature id;
    const char *name;
    uint32_t leaf, subleaf;
    enum cpuid_reg reg;
    unsigned bit;
    uint64_t cr4, efer;
};

static const struct feat_row feat_rows[] = {
#define FEATURE(id, nm, lf, sl, rg, bt, c4, ef, ds) { FEAT_##id, nm, lf, sl, rg, bt, c4, ef },
#include "model/features.def"
#undef FEATURE
};

#define N_FEAT_ROWS (sizeof(feat_rows) / sizeof(feat_rows[0]))

static struct cpu_model parse_ok(const char *spec)
{
    struct cpu_model m;
    char err[256] = "";

    ck_assert_msg(model_parse(spec, &m, err, sizeof(err)), "'%s': %s", spec ? spec : "(null)", err);
    return m;
}

static uint32_t cpuid_reg(const struct cpu_model *m, uint32_t leaf, uint32_t subleaf, uint64_t cr4,
                          enum cpuid_reg r)
{
    uint32_t out[4];

    model_cpuid(m, leaf, subleaf, cr4, 0, out);
    return out[r];
}

static bool cpuid_has(const struct cpu_model *m, const struct feat_row *r)
{
    return (cpuid_reg(m, r->leaf, r->subleaf, 0, r->reg) >> r->bit) & 1;
}

static bool msr_gate_on(const struct cpu_model *m, enum msr_id id)
{
    enum cpu_feature any[MSR_GATE_MAX];
    unsigned n = msr_gate_features(id, any);

    if (!model_has(m, FEAT_MSR))
        return false;
    if (n == 0)
        return true;
    for (unsigned i = 0; i < n; i++)
        if (model_has(m, any[i]))
            return true;
    return false;
}

/*
 * DESIGN §5: a feature is on iff its CPUID bit is set, its CR4/EFER bits are
 * allowed, and the MSRs it gates exist — all at once.
 */
static void check_consistent(const struct cpu_model *m, const char *what)
{
    struct msr_file f;
    char err[256];

    ck_assert_msg(model_check(m, err, sizeof(err)), "%s: %s", what, err);
    for (size_t i = 0; i < N_FEAT_ROWS; i++) {
        const struct feat_row *r = &feat_rows[i];
        bool on = model_has(m, r->id);
        uint64_t cr4_rsvd = model_cr4_reserved(m) & r->cr4;
        uint64_t efer_rsvd = model_efer_reserved(m) & r->efer;

        if (r->leaf != CPUID_LEAF_NONE)
            ck_assert_msg(cpuid_has(m, r) == on, "%s: CPUID bit of %s", what, r->name);
        ck_assert_msg(cr4_rsvd == (on ? 0 : r->cr4), "%s: CR4 bits of %s", what, r->name);
        ck_assert_msg(efer_rsvd == (on ? 0 : r->efer), "%s: EFER bits of %s", what, r->name);
    }
    msr_reset(&f, m);
    for (unsigned id = 0; id < MSR_ID_COUNT; id++)
        ck_assert_msg(msr_exists(&f, msr_index(id)) == msr_gate_on(m, id), "%s: existence of %s",
                      what, msr_name(msr_index(id)));
}

/* Features whose only gate is f exist iff f is on. */
static unsigned msrs_gated_only_by(enum cpu_feature f, enum msr_id *out)
{
    unsigned n = 0;

    for (unsigned id = 0; id < MSR_ID_COUNT; id++) {
        enum cpu_feature any[MSR_GATE_MAX];
        if (msr_gate_features(id, any) == 1 && any[0] == f)
            out[n++] = id;
    }
    return n;
}

START_TEST(test_feature_table_sane)
{
    ck_assert_uint_eq(N_FEAT_ROWS, FEAT_COUNT);
    for (size_t i = 0; i < N_FEAT_ROWS; i++) {
        enum cpu_feature f;
        ck_assert_uint_eq(feat_rows[i].id, i);
        ck_assert_msg(model_feature_lookup(feat_rows[i].name, &f) && f == feat_rows[i].id, "%s",
                      feat_rows[i].name);
        ck_assert_str_eq(model_feature_name(f), feat_rows[i].name);
        ck_assert_ptr_nonnull(model_feature_desc(f));
        ck_assert_uint_lt(feat_rows[i].bit, 32);
        for (size_t j = i + 1; j < N_FEAT_ROWS; j++) {
            const struct feat_row *a = &feat_rows[i], *b = &feat_rows[j];
            ck_assert_str_ne(a->name, b->name);
            ck_assert_msg(a->leaf == CPUID_LEAF_NONE || a->leaf != b->leaf ||
                              a->subleaf != b->subleaf || a->reg != b->reg || a->bit != b->bit,
                          "%s and %s share a CPUID bit", a->name, b->name);
            ck_assert_msg(!(a->cr4 & b->cr4) && !(a->efer & b->efer), "%s and %s share a bit",
                          a->name, b->name);
        }
    }
}
END_TEST

/* SDM Vol. 2A CPUID Table 3-8: a sample of positions, restated independently of features.def. */
START_TEST(test_feature_positions)
{
    static const struct {
        const char *name;
        uint32_t leaf;
        enum cpuid_reg reg;
        unsigned bit;
    } pos[] = {
        { "vmx", 1, CPUID_ECX, 5 },       { "x2apic", 1, CPUID_ECX, 21 },
        { "xsave", 1, CPUID_ECX, 26 },    { "pae", 1, CPUID_EDX, 6 },
        { "smep", 7, CPUID_EBX, 7 },      { "smap", 7, CPUID_EBX, 20 },
        { "pku", 7, CPUID_ECX, 3 },       { "la57", 7, CPUID_ECX, 16 },
        { "pks", 7, CPUID_ECX, 31 },      { "spec_ctrl", 7, CPUID_EDX, 26 },
        { "core_capabilities", 7, CPUID_EDX, 30 }, { "ssbd", 7, CPUID_EDX, 31 },
        { "gbpages", 0x80000001, CPUID_EDX, 26 },  { "lm", 0x80000001, CPUID_EDX, 29 },
        { "nx", 0x80000001, CPUID_EDX, 20 },       { "lahf_lm", 0x80000001, CPUID_ECX, 0 },
    };
    for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
        enum cpu_feature f;
        ck_assert(model_feature_lookup(pos[i].name, &f));
        ck_assert_uint_eq(feat_rows[f].leaf, pos[i].leaf);
        ck_assert_uint_eq(feat_rows[f].reg, pos[i].reg);
        ck_assert_uint_eq(feat_rows[f].bit, pos[i].bit);
    }
}
END_TEST

START_TEST(test_every_profile_parses)
{
    ck_assert_uint_ge(model_profile_count(), 4);
    for (size_t i = 0; i < model_profile_count(); i++) {
        struct cpu_model m = parse_ok(model_profile_name(i));
        ck_assert_str_eq(m.name, model_profile_name(i));
        ck_assert_ptr_nonnull(model_profile_desc(i));
        ck_assert(model_has(&m, FEAT_VMX) && model_has(&m, FEAT_LM));
        ck_assert_uint_le(m.maxphyaddr, 52);
        ck_assert_uint_gt(m.tsc_hz, 0);
        check_consistent(&m, m.name);
    }
    ck_assert_ptr_null(model_profile_name(model_profile_count()));
}
END_TEST

START_TEST(test_default_profile)
{
    struct cpu_model m = parse_ok(NULL);

    ck_assert_str_eq(model_default_name(), "sapphire-rapids");
    ck_assert_str_eq(m.name, "sapphire-rapids");
    /* a spec that starts with a toggle applies to the default profile */
    m = parse_ok("-pks");
    ck_assert_str_eq(m.name, "sapphire-rapids");
    ck_assert(!model_has(&m, FEAT_PKS));
}
END_TEST

/* The differences the brief (DESIGN §5) names between the server profiles. */
START_TEST(test_profile_contents)
{
    struct cpu_model skx = parse_ok("skylake-server"), icx = parse_ok("icelake-server");
    struct cpu_model spr = parse_ok("sapphire-rapids"), min = parse_ok("minimal");

    ck_assert(!model_has(&skx, FEAT_PKS) && !model_has(&skx, FEAT_SPLIT_LOCK_DETECT));
    ck_assert(!model_has(&skx, FEAT_LA57) && !model_has(&skx, FEAT_SPEC_CTRL_VIRT));
    ck_assert(model_has(&icx, FEAT_PKU) && model_has(&icx, FEAT_LA57));
    ck_assert(model_has(&icx, FEAT_SPLIT_LOCK_DETECT) && !model_has(&icx, FEAT_PKS));
    ck_assert(model_has(&spr, FEAT_PKS) && model_has(&spr, FEAT_SPLIT_LOCK_DETECT));
    ck_assert(model_has(&spr, FEAT_SPEC_CTRL_VIRT) && model_has(&spr, FEAT_TERTIARY_CONTROLS));
    ck_assert(model_has(&spr, FEAT_LA57) && model_has(&spr, FEAT_PKU));
    ck_assert(model_has(&spr, FEAT_GBPAGES));
    ck_assert(model_has(&min, FEAT_VMX) && model_has(&min, FEAT_LM) && model_has(&min, FEAT_SSE2));
    ck_assert(!model_has(&min, FEAT_EPT) && !model_has(&min, FEAT_XSAVE));
}
END_TEST

/*
 * Loop over features.def: turning a feature off clears its CPUID bit,
 * reserves its CR4/EFER bits and removes the MSRs it alone gates; turning
 * one on does the opposite or is refused with a message naming it.
 */
static void toggle_off(const struct cpu_model *base, const struct feat_row *r)
{
    char spec[128];
    enum msr_id gated[MSR_ID_COUNT];
    unsigned n = msrs_gated_only_by(r->id, gated);
    struct cpu_model m;
    struct msr_file f;

    snprintf(spec, sizeof(spec), "%s,-%s", base->name, r->name);
    m = parse_ok(spec);
    ck_assert_msg(!model_has(&m, r->id), "%s", spec);
    check_consistent(&m, spec);
    if (r->leaf != CPUID_LEAF_NONE)
        ck_assert_msg(cpuid_has(base, r) && !cpuid_has(&m, r), "%s: CPUID unchanged", spec);
    ck_assert_uint_eq(model_cr4_reserved(base) & r->cr4, 0);
    ck_assert_uint_eq(model_cr4_reserved(&m) & r->cr4, r->cr4);
    ck_assert_uint_eq(model_efer_reserved(&m) & r->efer, r->efer);
    msr_reset(&f, &m);
    for (unsigned i = 0; i < n; i++)
        ck_assert_msg(!msr_exists(&f, msr_index(gated[i])), "%s: %s still exists", spec,
                      msr_name(msr_index(gated[i])));
    for (unsigned g = 0; g < FEAT_COUNT; g++) {
        enum cpu_feature req[8];
        size_t k = model_feature_requires(g, req, 8);
        for (size_t j = 0; j < k; j++)
            if (req[j] == r->id)
                ck_assert_msg(!model_has(&m, g), "%s: dependent %s still on", spec,
                              model_feature_name(g));
    }
}

static void toggle_on(const struct cpu_model *base, const struct feat_row *r)
{
    char spec[128], err[256] = "";
    struct cpu_model m;
    enum cpu_feature req[8];
    size_t k = model_feature_requires(r->id, req, 8);
    bool prereqs = true;

    for (size_t j = 0; j < k; j++)
        prereqs = prereqs && model_has(base, req[j]);
    snprintf(spec, sizeof(spec), "%s,+%s", base->name, r->name);
    if (!prereqs) {
        ck_assert_msg(!model_parse(spec, &m, err, sizeof(err)), "%s accepted", spec);
        ck_assert_msg(strstr(err, r->name), "%s: message '%s' does not name it", spec, err);
        return;
    }
    m = parse_ok(spec);
    ck_assert(model_has(&m, r->id));
    check_consistent(&m, spec);
    if (r->leaf != CPUID_LEAF_NONE)
        ck_assert_msg(cpuid_has(&m, r), "%s", spec);
    ck_assert_uint_eq(model_cr4_reserved(&m) & r->cr4, 0);
    ck_assert_uint_eq(model_efer_reserved(&m) & r->efer, 0);
}

START_TEST(test_every_toggle)
{
    for (size_t p = 0; p < model_profile_count(); p++) {
        struct cpu_model base = parse_ok(model_profile_name(p));
        for (size_t i = 0; i < N_FEAT_ROWS; i++) {
            if (model_has(&base, feat_rows[i].id))
                toggle_off(&base, &feat_rows[i]);
            else
                toggle_on(&base, &feat_rows[i]);
        }
    }
}
END_TEST

/* Examples named in feature_deps.def and the brief. */
START_TEST(test_dependencies)
{
    static const enum cpu_feature vmx_dependents[] = {
        FEAT_EPT, FEAT_VPID, FEAT_UNRESTRICTED_GUEST, FEAT_EPT_AD, FEAT_MBEC, FEAT_EPT_5LEVEL,
        FEAT_VMX_PREEMPTION_TIMER, FEAT_TERTIARY_CONTROLS, FEAT_SPEC_CTRL_VIRT, FEAT_VMX_TSC_SCALING,
    };
    static const enum cpu_feature lm_dependents[] = {
        FEAT_LA57, FEAT_GBPAGES, FEAT_PCID, FEAT_SYSCALL, FEAT_LAHF_LM, FEAT_PKS, FEAT_PKU,
    };
    struct cpu_model m = parse_ok("sapphire-rapids,-vmx");
    char err[256];

    for (size_t i = 0; i < sizeof(vmx_dependents) / sizeof(vmx_dependents[0]); i++)
        ck_assert(!model_has(&m, vmx_dependents[i]));
    ck_assert(model_cr4_reserved(&m) & X86_CR4_VMXE);
    m = parse_ok("sapphire-rapids,-lm");
    for (size_t i = 0; i < sizeof(lm_dependents) / sizeof(lm_dependents[0]); i++)
        ck_assert(!model_has(&m, lm_dependents[i]));
    ck_assert_uint_eq(model_efer_reserved(&m) & (X86_EFER_LME | X86_EFER_LMA),
                      X86_EFER_LME | X86_EFER_LMA);
    m = parse_ok("sapphire-rapids,-xsave");
    ck_assert(!model_has(&m, FEAT_XSAVES) && !model_has(&m, FEAT_PKU));
    ck_assert(!(cpuid_reg(&m, 1, 0, X86_CR4_OSXSAVE, CPUID_ECX) & (1u << 27)));
    m = parse_ok("sapphire-rapids,-core_capabilities");
    ck_assert(!model_has(&m, FEAT_SPLIT_LOCK_DETECT));
    m = parse_ok("sapphire-rapids,-spec_ctrl");
    ck_assert(!model_has(&m, FEAT_SPEC_CTRL_VIRT) && model_has(&m, FEAT_TERTIARY_CONTROLS));
    /* +X after its prerequisite was removed is refused; order matters */
    ck_assert(!model_parse("skylake-server,-lm,+la57", &m, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "la57"));
    ck_assert_ptr_nonnull(strstr(err, "lm"));
    m = parse_ok("skylake-server,+la57,-lm");
    ck_assert(!model_has(&m, FEAT_LA57));
    m = parse_ok("minimal,+ept,+unrestricted_guest");
    ck_assert(model_has(&m, FEAT_UNRESTRICTED_GUEST));
    ck_assert(!model_parse("minimal,+unrestricted_guest", &m, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "ept"));
}
END_TEST

START_TEST(test_bad_specs)
{
    static const struct {
        const char *spec, *needle;
    } bad[] = {
        { "", "empty" },
        { "nosuchcpu", "'nosuchcpu'" },
        { "Icelake-Server", "'Icelake-Server'" },
        { "icelake-server,+nosuch", "'nosuch'" },
        { "icelake-server,-NoSuch", "'NoSuch'" },
        { "icelake-server,pks", "'pks'" },
        { "icelake-server,,-pks", "empty item" },
        { "icelake-server,-pks,", "empty item" },
        { "icelake-server,+", "'+'" },
        { "sapphire-rapids,icelake-server", "'icelake-server'" },
        { "icelake-server,+ pks", "' pks'" },
        { "minimal,+la57,*pks", "'*pks'" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cpu_model m, before;
        char err[256] = "";
        memset(&m, 0xA5, sizeof(m));
        before = m;
        ck_assert_msg(!model_parse(bad[i].spec, &m, err, sizeof(err)), "'%s' accepted", bad[i].spec);
        ck_assert_msg(strstr(err, bad[i].needle), "'%s': message '%s' lacks %s", bad[i].spec, err,
                      bad[i].needle);
        ck_assert_msg(memcmp(&m, &before, sizeof(m)) == 0, "'%s' changed the output", bad[i].spec);
    }
}
END_TEST

/* SDM Vol. 2A Figure 3-6: stepping 3:0, model 7:4, family 11:8, ext. model 19:16, ext. family 27:20. */
START_TEST(test_cpuid_signature)
{
    static const struct {
        uint32_t family, model, stepping, eax;
    } sig[] = {
        { 6, 0x8F, 8, 0x000806F8 },  /* Sapphire Rapids */
        { 6, 0x55, 4, 0x00050654 },  /* Skylake-SP */
        { 6, 0x6A, 6, 0x000606A6 },  /* Ice Lake-SP */
        { 6, 0x0F, 11, 0x000006FB }, /* Core 2 */
        { 0xF, 0x6B, 1, 0x00060FB1 }, /* family 0FH: no extended family */
        { 0x19, 0x21, 0, 0x00A20F10 }, /* family 19H = 0FH + extended family 0AH */
    };
    struct cpu_model m = parse_ok("sapphire-rapids");

    ck_assert_uint_eq(cpuid_reg(&m, 1, 0, 0, CPUID_EAX), 0x000806F8);
    for (size_t i = 0; i < sizeof(sig) / sizeof(sig[0]); i++) {
        m.family = sig[i].family;
        m.model = sig[i].model;
        m.stepping = sig[i].stepping;
        ck_assert_uint_eq(cpuid_reg(&m, 1, 0, 0, CPUID_EAX), sig[i].eax);
    }
}
END_TEST

/* Leaf 01H EBX: CLFLUSH line 8 (×8 = 64 bytes) at 15:8, 1 logical at 23:16, APIC ID at 31:24. */
START_TEST(test_cpuid_leaf1_ebx)
{
    struct cpu_model m = parse_ok("icelake-server");
    uint32_t out[4];

    model_cpuid(&m, 1, 0, 0, 0x5A, out);
    ck_assert_uint_eq(out[CPUID_EBX], 0x5A010800);
    ck_assert(!(out[CPUID_ECX] & (1u << 31))); /* no hypervisor bit on a bare-metal model */
}
END_TEST

/* CPUID.01H:ECX[27] OSXSAVE mirrors CR4.OSXSAVE; CPUID.(7,0):ECX[4] OSPKE mirrors CR4.PKE. */
START_TEST(test_cpuid_cr4_mirrors)
{
    struct cpu_model spr = parse_ok("sapphire-rapids"), min = parse_ok("minimal");
    struct cpu_model nopku = parse_ok("sapphire-rapids,-pku");

    ck_assert(!(cpuid_reg(&spr, 1, 0, 0, CPUID_ECX) & (1u << 27)));
    ck_assert(cpuid_reg(&spr, 1, 0, X86_CR4_OSXSAVE, CPUID_ECX) & (1u << 27));
    ck_assert(!(cpuid_reg(&min, 1, 0, X86_CR4_OSXSAVE, CPUID_ECX) & (1u << 27)));
    ck_assert(!(cpuid_reg(&spr, 7, 0, 0, CPUID_ECX) & (1u << 4)));
    ck_assert(cpuid_reg(&spr, 7, 0, X86_CR4_PKE, CPUID_ECX) & (1u << 4));
    ck_assert(!(cpuid_reg(&nopku, 7, 0, X86_CR4_PKE, CPUID_ECX) & (1u << 4)));
    ck_assert(!(cpuid_reg(&spr, 7, 0, X86_CR4_OSXSAVE, CPUID_ECX) & (1u << 4)));
}
END_TEST

START_TEST(test_cpuid_vendor_and_ranges)
{
    struct cpu_model m = parse_ok("sapphire-rapids");
    uint32_t out[4];
    char vendor[13];

    model_cpuid(&m, 0, 0, 0, 0, out);
    memcpy(vendor, &out[CPUID_EBX], 4);
    memcpy(vendor + 4, &out[CPUID_EDX], 4);
    memcpy(vendor + 8, &out[CPUID_ECX], 4);
    vendor[12] = '\0';
    ck_assert_str_eq(vendor, "GenuineIntel");
    ck_assert_uint_ge(out[CPUID_EAX], 0x16); /* 0xB, 0xD, 0x15, 0x16 are implemented */
    ck_assert_uint_ge(cpuid_reg(&m, 0x80000000, 0, 0, CPUID_EAX), 0x80000008);
}
END_TEST

/*
 * SDM Vol. 2A CPUID: above the maximum basic or extended leaf (and in
 * 40000000H-4FFFFFFFH) the highest basic leaf is returned, ECX honoured.
 */
START_TEST(test_cpuid_above_max)
{
    struct cpu_model m = parse_ok("sapphire-rapids");
    uint32_t max = cpuid_reg(&m, 0, 0, 0, CPUID_EAX);
    uint32_t max_ext = cpuid_reg(&m, 0x80000000, 0, 0, CPUID_EAX);
    const uint32_t leaves[] = { max + 1, 0x40000000, 0x4FFFFFFF, max_ext + 1, 0xFFFFFFFF };

    for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
        for (uint32_t sub = 0; sub < 3; sub++) {
            uint32_t a[4], b[4];
            model_cpuid(&m, leaves[i], sub, 0, 3, a);
            model_cpuid(&m, max, sub, 0, 3, b);
            ck_assert_msg(memcmp(a, b, sizeof(a)) == 0, "leaf %#x sub %u", leaves[i], sub);
        }
    }
}
END_TEST

/* Leaf 0BH/1FH: level type SMT (1), core (2), then invalid (0); EDX = x2APIC ID. */
START_TEST(test_cpuid_topology)
{
    struct cpu_model m = parse_ok("icelake-server");
    uint32_t out[4];

    for (uint32_t leaf = 0xB; leaf <= 0x1F; leaf += 0x14) {
        model_cpuid(&m, leaf, 0, 0, 7, out);
        ck_assert_uint_eq((out[CPUID_ECX] >> 8) & 0xFF, 1);
        ck_assert_uint_eq(out[CPUID_EBX] & 0xFFFF, 1);
        ck_assert_uint_eq(out[CPUID_EDX], 7);
        model_cpuid(&m, leaf, 1, 0, 7, out);
        ck_assert_uint_eq((out[CPUID_ECX] >> 8) & 0xFF, 2);
        ck_assert_uint_eq(out[CPUID_ECX] & 0xFF, 1);
        model_cpuid(&m, leaf, 2, 0, 7, out);
        ck_assert_uint_eq((out[CPUID_ECX] >> 8) & 0xFF, 0);
        ck_assert_uint_eq(out[CPUID_EBX], 0);
    }
}
END_TEST

/* Leaf 80000008H: EAX[7:0] physical, EAX[15:8] linear (57 with LA57). */
START_TEST(test_cpuid_address_sizes)
{
    struct cpu_model spr = parse_ok("sapphire-rapids"), skx = parse_ok("skylake-server");
    struct cpu_model no57 = parse_ok("sapphire-rapids,-la57");

    ck_assert_uint_eq(cpuid_reg(&spr, 0x80000008, 0, 0, CPUID_EAX) & 0xFFFF, 57u << 8 | spr.maxphyaddr);
    ck_assert_uint_eq(cpuid_reg(&skx, 0x80000008, 0, 0, CPUID_EAX) & 0xFFFF, 48u << 8 | 46);
    ck_assert_uint_eq((cpuid_reg(&no57, 0x80000008, 0, 0, CPUID_EAX) >> 8) & 0xFF, 48);
    ck_assert_uint_eq(model_linear_width(&spr), 57);
    ck_assert_uint_eq(model_linear_width(&skx), 48);
}
END_TEST

/* Leaf 80000001H as the SDM lists it, and the brand string leaves. */
START_TEST(test_cpuid_extended)
{
    struct cpu_model m = parse_ok("sapphire-rapids");
    uint32_t edx = cpuid_reg(&m, 0x80000001, 0, 0, CPUID_EDX);
    char brand[49];

    ck_assert_uint_eq(edx, (1u << 11) | (1u << 20) | (1u << 26) | (1u << 27) | (1u << 29));
    ck_assert_uint_eq(cpuid_reg(&m, 0x80000001, 0, 0, CPUID_ECX), 1);
    for (uint32_t i = 0; i < 3; i++) {
        uint32_t out[4];
        model_cpuid(&m, 0x80000002 + i, 0, 0, 0, out);
        memcpy(brand + 16 * i, out, 16);
    }
    brand[48] = '\0';
    ck_assert_str_eq(brand, m.brand);
}
END_TEST

/* Leaf 15H: TSC = crystal (ECX) × EBX / EAX; leaf 16H base frequency in MHz. */
START_TEST(test_cpuid_tsc)
{
    for (size_t p = 0; p < model_profile_count(); p++) {
        struct cpu_model m = parse_ok(model_profile_name(p));
        uint32_t out[4];
        model_cpuid(&m, 0x15, 0, 0, 0, out);
        ck_assert_uint_ne(out[CPUID_EAX], 0);
        ck_assert_uint_eq((uint64_t)out[CPUID_ECX] * out[CPUID_EBX] / out[CPUID_EAX], m.tsc_hz);
        model_cpuid(&m, 0x16, 0, 0, 0, out);
        ck_assert_uint_eq(out[CPUID_EAX], m.tsc_hz / 1000000);
    }
}
END_TEST

/* Leaf 0DH (SDM Vol. 1 §13.2): legacy area 512 + header 64; PKRU is component 9. */
START_TEST(test_cpuid_xsave)
{
    struct cpu_model spr = parse_ok("sapphire-rapids"), min = parse_ok("minimal");
    struct cpu_model nopku = parse_ok("sapphire-rapids,-pku");
    uint32_t out[4];

    model_cpuid(&spr, 0xD, 0, 0, 0, out);
    ck_assert_uint_eq(out[CPUID_EAX], 0x203);
    ck_assert_uint_eq(out[CPUID_EDX], 0);
    ck_assert_uint_eq(out[CPUID_ECX], 2688 + 8);
    model_cpuid(&spr, 0xD, 9, 0, 0, out);
    ck_assert_uint_eq(out[CPUID_EAX], 8);
    ck_assert_uint_eq(out[CPUID_EBX], 2688);
    model_cpuid(&spr, 0xD, 1, 0, 0, out);
    ck_assert_uint_eq(out[CPUID_EAX] & 0xB, 0xB); /* XSAVEOPT, XSAVEC, XSAVES */
    model_cpuid(&nopku, 0xD, 0, 0, 0, out);
    ck_assert_uint_eq(out[CPUID_EAX], 0x3);
    ck_assert_uint_eq(out[CPUID_ECX], 576);
    model_cpuid(&min, 0xD, 0, 0, 0, out);
    ck_assert_uint_eq(out[CPUID_EAX] | out[CPUID_EBX] | out[CPUID_ECX] | out[CPUID_EDX], 0);
    ck_assert_uint_eq(model_xcr0_supported(&min), 0);
    ck_assert_uint_eq(model_xsave_size(&spr, 0x3), 576);
}
END_TEST

/* SDM Vol. 3A §2.5: bits reserved on every model here (no SMX, KL, CET, UINTR, LAM). */
START_TEST(test_cr4_reserved)
{
    const uint64_t always = X86_CR4_SMXE | BIT64(15) | X86_CR4_KL | X86_CR4_CET | X86_CR4_UINTR |
                            BIT64(26) | BIT64(27) | X86_CR4_LAM_SUP | GENMASK64(63, 29);
    struct cpu_model skx = parse_ok("skylake-server"), spr = parse_ok("sapphire-rapids");

    for (size_t p = 0; p < model_profile_count(); p++) {
        struct cpu_model m = parse_ok(model_profile_name(p));
        ck_assert_uint_eq(model_cr4_reserved(&m) & always, always);
        ck_assert_uint_eq(model_cr4_reserved(&m) & (X86_CR4_PCE | X86_CR4_VMXE | X86_CR4_PAE), 0);
    }
    ck_assert_uint_eq(model_cr4_reserved(&skx) & (X86_CR4_PKS | X86_CR4_LA57 | X86_CR4_UMIP),
                      X86_CR4_PKS | X86_CR4_LA57 | X86_CR4_UMIP);
    ck_assert_uint_eq(model_cr4_reserved(&skx) & (X86_CR4_PKE | X86_CR4_SMEP | X86_CR4_SMAP), 0);
    ck_assert_uint_eq(model_cr4_reserved(&spr) & (X86_CR4_PKS | X86_CR4_LA57 | X86_CR4_PCIDE), 0);
}
END_TEST

/* SDM Vol. 3A §2.2.1: on Intel only EFER bits 0, 8, 10, 11 exist. */
START_TEST(test_efer_reserved)
{
    const uint64_t defined = X86_EFER_SCE | X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE;

    for (size_t p = 0; p < model_profile_count(); p++) {
        struct cpu_model m = parse_ok(model_profile_name(p));
        ck_assert_uint_eq(model_efer_reserved(&m), ~defined);
    }
    struct cpu_model nonx = parse_ok("minimal,-nx");
    ck_assert_uint_eq(model_efer_reserved(&nonx), ~(defined & ~X86_EFER_NXE));
}
END_TEST

START_TEST(test_describe)
{
    struct cpu_model m = parse_ok("icelake-server");
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(out);
    model_describe(&m, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(buf, "icelake-server"));
    ck_assert_ptr_nonnull(strstr(buf, m.brand));
    for (size_t i = 0; i < N_FEAT_ROWS; i++)
        ck_assert_msg(strstr(buf, feat_rows[i].name), "%s missing", feat_rows[i].name);
    ck_assert_ptr_nonnull(strstr(buf, "[x] pku"));
    ck_assert_ptr_nonnull(strstr(buf, "[ ] pks"));
    ck_assert_ptr_null(strstr(buf, "changed"));
    free(buf);
}
END_TEST

/* `vmxsim cpu show PROFILE,-x`: the toggles and what they dragged along are listed. */
START_TEST(test_describe_changes)
{
    struct cpu_model m = parse_ok("sapphire-rapids,-lm,+umip");
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(out);
    model_describe(&m, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(buf, "changed "));
    ck_assert_ptr_nonnull(strstr(buf, "-lm"));
    ck_assert_ptr_nonnull(strstr(buf, "-pks"));
    ck_assert_ptr_nonnull(strstr(buf, "-la57"));
    ck_assert_ptr_null(strstr(buf, "+umip")); /* already on: no change */
    ck_assert_ptr_nonnull(strstr(buf, "[ ] pks"));
    free(buf);
    m = parse_ok("skylake-server,+la57");
    buf = NULL;
    out = open_memstream(&buf, &len);
    model_describe(&m, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(buf, "changed     +la57 "));
    free(buf);
}
END_TEST

/* ---- VMX capabilities: "off" means allowed-1 = 0 and VM entry fails (DESIGN §5) ---- */

/*
 * The VMX capability bits each feature brings, typed in from the SDM (not
 * from src/vmx/caps.c): Vol. 3C Tables 25-5 (pin), 25-6 (primary), 25-7
 * (secondary), 25-8 (tertiary), 25-13 (exit), 25-15 (entry); Vol. 3D A.6
 * (IA32_VMX_MISC), A.10 (IA32_VMX_EPT_VPID_CAP). Control MSRs carry the
 * allowed-1 settings in bits 63:32 (HI); IA32_VMX_PROCBASED_CTLS3 in all 64.
 * CR4 bits (IA32_VMX_CR4_FIXED1, A.8) come from the cr4 column of features.def.
 */
#define HI(n) (1ull << (32 + (n)))
#define LO(n) (1ull << (n))
enum {
    CAP_PIN = 0x48D, CAP_PROC = 0x48E, CAP_EXIT = 0x48F, CAP_ENTRY = 0x490, /* TRUE_* */
    CAP_MISC = 0x485, CAP_CR4_FIXED1 = 0x489, CAP_VMCS_ENUM = 0x48A, CAP_PROC2 = 0x48B,
    CAP_EPT_VPID = 0x48C, CAP_PROC3 = 0x492,
};
#define MAX_CAPS 4

struct cap_bits {
    uint32_t msr;
    uint64_t bits;
};

static const struct feat_vmx {
    enum cpu_feature f;
    struct cap_bits caps[MAX_CAPS];
    int vmcs_dep; /* VMCS fields that exist only with the feature, or -1 */
} feat_vmx[] = {
    {FEAT_PKS, {{CAP_ENTRY, HI(22)}, {CAP_EXIT, HI(29)}}, VMCS_DEP_PKS},       /* load IA32_PKRS */
    {FEAT_LM, {{CAP_ENTRY, HI(9)}, {CAP_EXIT, HI(9)}, {CAP_PROC, HI(19) | HI(20)}}, -1},
    {FEAT_PAT, {{CAP_ENTRY, HI(14)}, {CAP_EXIT, HI(18) | HI(19)}}, VMCS_DEP_PAT},
    {FEAT_VMX_PREEMPTION_TIMER, {{CAP_PIN, HI(6)}, {CAP_EXIT, HI(22)}}, VMCS_DEP_PREEMPTION_TIMER},
    {FEAT_TERTIARY_CONTROLS, {{CAP_PROC, HI(17)}}, VMCS_DEP_TERTIARY},
    {FEAT_SPEC_CTRL_VIRT, {{CAP_PROC3, LO(7)}}, VMCS_DEP_SPEC_CTRL_VIRT},
    {FEAT_EPT, {{CAP_PROC2, HI(1)}, {CAP_EPT_VPID, LO(6) | LO(14) | LO(20)}}, VMCS_DEP_EPT},
    {FEAT_VPID, {{CAP_PROC2, HI(5)}, {CAP_EPT_VPID, LO(32)}}, VMCS_DEP_VPID},
    {FEAT_RDTSCP, {{CAP_PROC2, HI(3)}}, -1},
    {FEAT_UNRESTRICTED_GUEST, {{CAP_PROC2, HI(7)}}, -1},
    {FEAT_RDRAND, {{CAP_PROC2, HI(11)}}, -1},
    {FEAT_INVPCID, {{CAP_PROC2, HI(12)}}, -1},
    {FEAT_RDSEED, {{CAP_PROC2, HI(16)}}, -1},
    {FEAT_MBEC, {{CAP_PROC2, HI(22)}}, -1},
    {FEAT_EPT_5LEVEL, {{CAP_EPT_VPID, LO(7)}}, -1},
    {FEAT_GBPAGES, {{CAP_EPT_VPID, LO(17)}}, -1},
    {FEAT_EPT_AD, {{CAP_EPT_VPID, LO(21)}}, -1},
    {FEAT_VMX_VMWRITE_ANY, {{CAP_MISC, LO(29)}}, -1},
    {FEAT_VMX_TSC_SCALING, {{CAP_PROC2, HI(25)}}, VMCS_DEP_TSC_SCALING},
};

/* Vol. 3D A.10: bits 31:0 of IA32_VMX_EPT_VPID_CAP describe EPT, bits 47:32 VPID. */
static const struct {
    enum cpu_feature f;
    struct cap_bits owns;
} feat_vmx_owns[] = {
    {FEAT_EPT, {CAP_EPT_VPID, 0x00000000FFFFFFFFull}},
    {FEAT_VPID, {CAP_EPT_VPID, 0x0000FFFF00000000ull}},
};

static const struct feat_vmx *vmx_row_of(enum cpu_feature f)
{
    for (size_t i = 0; i < sizeof(feat_vmx) / sizeof(feat_vmx[0]); i++)
        if (feat_vmx[i].f == f)
            return &feat_vmx[i];
    return NULL;
}

static uint64_t cap_msr(const struct vmx_caps *k, uint32_t msr)
{
    uint64_t v = 0;
    return vmx_caps_msr(k, msr, &v) ? v : 0;
}

/* The capability bits f owns in msr (the CR4_FIXED1 ones from features.def). */
static uint64_t expected_bits(enum cpu_feature f, uint32_t msr)
{
    const struct feat_vmx *r = vmx_row_of(f);
    uint64_t bits = 0;

    if (msr == CAP_CR4_FIXED1)
        return feat_rows[f].cr4;
    if (msr >= 0x481 && msr <= 0x484) /* legacy control MSRs: same allowed-1 bits as TRUE_* */
        msr += CAP_PIN - 0x481;
    for (unsigned i = 0; r && i < MAX_CAPS; i++)
        if (r->caps[i].msr == msr)
            bits |= r->caps[i].bits;
    for (size_t i = 0; i < sizeof(feat_vmx_owns) / sizeof(feat_vmx_owns[0]); i++)
        if (feat_vmx_owns[i].f == f && feat_vmx_owns[i].owns.msr == msr)
            bits |= feat_vmx_owns[i].owns.bits;
    return bits;
}

static struct vmx_caps caps_of_model(const struct cpu_model *m)
{
    struct vmx_caps k;
    vmx_caps_init(&k, m);
    return k;
}

/* A VMCS with only the must-be-1 controls, plus `bits` set in the control of `msr`. */
static uint8_t entry_vmcs[VMCS_REGION_SIZE];

static uint8_t *no_ram(void *ctx, uint64_t pa, size_t len)
{
    (void)ctx;
    (void)pa;
    (void)len;
    return NULL;
}

static struct vmx_check_fail entry_with(const struct vmx_caps *k, uint32_t msr, uint64_t bits)
{
    struct vmx_mem mem = {.ctx = NULL, .ptr = no_ram};
    uint32_t pin = (uint32_t)k->true_pinbased, proc = (uint32_t)k->true_procbased;
    uint32_t exit = (uint32_t)k->true_exit, entry = (uint32_t)k->true_entry;
    uint64_t proc2 = 0, proc3 = 0;
    struct vmx_check_fail f;

    switch (msr) {
    case CAP_PIN: pin |= (uint32_t)(bits >> 32); break;
    case CAP_PROC: proc |= (uint32_t)(bits >> 32); break;
    case CAP_EXIT: exit |= (uint32_t)(bits >> 32); break;
    case CAP_ENTRY: entry |= (uint32_t)(bits >> 32); break;
    case CAP_PROC2: proc |= 1u << 31; proc2 = bits >> 32; break; /* activate secondary controls */
    case CAP_PROC3: proc |= 1u << 17; proc3 = bits; break;        /* activate tertiary controls */
    default: ck_abort_msg("not a control MSR: %#x", msr);
    }
    memset(entry_vmcs, 0, sizeof(entry_vmcs));
    vmcs_region_clear(entry_vmcs);
    ck_assert(vmcs_write(entry_vmcs, PIN_BASED_VM_EXEC_CONTROL, pin) == VMXSIM_OK);
    ck_assert(vmcs_write(entry_vmcs, CPU_BASED_VM_EXEC_CONTROL, proc) == VMXSIM_OK);
    ck_assert(vmcs_write(entry_vmcs, SECONDARY_VM_EXEC_CONTROL, proc2) == VMXSIM_OK);
    ck_assert(vmcs_write(entry_vmcs, TERTIARY_VM_EXEC_CONTROL, proc3) == VMXSIM_OK);
    ck_assert(vmcs_write(entry_vmcs, VM_EXIT_CONTROLS, exit) == VMXSIM_OK);
    ck_assert(vmcs_write(entry_vmcs, VM_ENTRY_CONTROLS, entry) == VMXSIM_OK);
    if (vmx_check_controls(k, entry_vmcs, &mem, &f))
        f.id = VMX_CHECK_NONE;
    return f;
}

static bool is_control_msr(uint32_t msr)
{
    return msr == CAP_PIN || msr == CAP_PROC || msr == CAP_PROC2 || msr == CAP_PROC3 || msr == CAP_EXIT ||
           msr == CAP_ENTRY;
}

/* Every capability bit of f: allowed with f on; with f off 0, and VM entry with it set → VMfail(7). */
static void check_vmx_off(const struct cpu_model *on, const struct cpu_model *off, enum cpu_feature f,
                          const char *spec)
{
    struct vmx_caps kon = caps_of_model(on), koff = caps_of_model(off);
    const struct feat_vmx *r = vmx_row_of(f);

    for (unsigned i = 0; r && i < MAX_CAPS && r->caps[i].msr; i++) {
        uint32_t msr = r->caps[i].msr;
        uint64_t bits = r->caps[i].bits;
        ck_assert_msg((cap_msr(&kon, msr) & bits) == bits, "%s: MSR %#x lacks %#llx with the feature on",
                      on->name, msr, (unsigned long long)bits);
        ck_assert_msg((cap_msr(&koff, msr) & bits) == 0, "%s: MSR %#x still allows %#llx", spec, msr,
                      (unsigned long long)(cap_msr(&koff, msr) & bits));
        if (!is_control_msr(msr))
            continue;
        for (unsigned b = 0; b < 64; b++) {
            if (!((bits >> b) & 1))
                continue;
            struct vmx_check_fail fon = entry_with(&kon, msr, 1ull << b);
            struct vmx_check_fail foff = entry_with(&koff, msr, 1ull << b);
            ck_assert_msg(foff.id != VMX_CHECK_NONE && foff.stage == VMX_STAGE_CONTROLS,
                          "%s: VM entry with control bit %u of MSR %#x passes the control checks", spec,
                          b % 32, msr);
            ck_assert_msg(fon.id != foff.id, "%s: control bit %u of MSR %#x fails the same way with %s on (%s)",
                          spec, b % 32, msr, model_feature_name(f), vmx_check_name(fon.id));
        }
    }
    if (r && r->vmcs_dep >= 0) {
        ck_assert_msg((kon.vmcs_deps >> r->vmcs_dep) & 1, "%s: VMCS fields missing", on->name);
        ck_assert_msg(!((koff.vmcs_deps >> r->vmcs_dep) & 1), "%s: VMCS fields of %s still exist", spec,
                      vmcs_dep_name((enum vmcs_dep)r->vmcs_dep));
    }
    if (feat_rows[f].cr4) {
        ck_assert_uint_eq(cap_msr(&kon, CAP_CR4_FIXED1) & feat_rows[f].cr4, feat_rows[f].cr4);
        ck_assert_msg(!(cap_msr(&koff, CAP_CR4_FIXED1) & feat_rows[f].cr4), "%s: IA32_VMX_CR4_FIXED1", spec);
    }
}

/*
 * Nothing else changes: every capability bit that -f removes belongs (per
 * the table above) to f or to a feature -f turned off with it; nothing
 * appears. IA32_VMX_VMCS_ENUM (the highest field index) is not a per-bit map.
 */
static void check_vmx_diff(const struct cpu_model *on, const struct cpu_model *off, const char *spec)
{
    struct vmx_caps kon = caps_of_model(on), koff = caps_of_model(off);

    for (uint32_t msr = 0x480; msr <= 0x492; msr++) {
        uint64_t a = cap_msr(&kon, msr), b = cap_msr(&koff, msr), owned = 0;
        if (msr == CAP_VMCS_ENUM)
            continue;
        for (unsigned g = 0; g < FEAT_COUNT; g++)
            if (model_has(on, g) && !model_has(off, g))
                owned |= expected_bits(g, msr);
        ck_assert_msg(!(b & ~a), "%s: MSR %#x gains %#llx", spec, msr, (unsigned long long)(b & ~a));
        ck_assert_msg(!(a & ~b & ~owned), "%s: MSR %#x loses %#llx that no removed feature owns", spec, msr,
                      (unsigned long long)(a & ~b & ~owned));
    }
}

/*
 * Loop over features.def × profiles: for each feature that is on, "-name"
 * must also take away its VMX capability bits (DESIGN §5, issue: "capability
 * allowed-1 bit 0 (VM entry with it set → VMfail 7)"). FEAT_VMX itself (and
 * what removes it: -msr) takes away VMX operation as a whole: CPUID.1:ECX[5]
 * and CR4.VMXE, checked by test_every_toggle; the core stops answering the
 * capability MSRs.
 */
START_TEST(test_off_means_no_vmx_capability)
{
    unsigned checked = 0;

    for (size_t p = 0; p < model_profile_count(); p++) {
        struct cpu_model base = parse_ok(model_profile_name(p));
        for (size_t i = 0; i < N_FEAT_ROWS; i++) {
            char spec[128];
            struct cpu_model off;
            if (!model_has(&base, feat_rows[i].id))
                continue;
            snprintf(spec, sizeof(spec), "%s,-%s", base.name, feat_rows[i].name);
            off = parse_ok(spec);
            if (!model_has(&off, FEAT_VMX))
                continue;
            check_vmx_off(&base, &off, feat_rows[i].id, spec);
            check_vmx_diff(&base, &off, spec);
            checked += vmx_row_of(feat_rows[i].id) != NULL;
        }
    }
    ck_assert_uint_gt(checked, 30);
}
END_TEST

/* Every row of the table names a feature that some profile has (no dead rows). */
START_TEST(test_vmx_table_rows_used)
{
    for (size_t i = 0; i < sizeof(feat_vmx) / sizeof(feat_vmx[0]); i++) {
        bool seen = false;
        for (size_t p = 0; p < model_profile_count(); p++) {
            struct cpu_model m = parse_ok(model_profile_name(p));
            seen = seen || model_has(&m, feat_vmx[i].f);
        }
        ck_assert_msg(seen, "%s is in no profile", model_feature_name(feat_vmx[i].f));
    }
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *t = tcase_create("features");

    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_feature_table_sane);
    tcase_add_test(t, test_feature_positions);
    tcase_add_test(t, test_every_profile_parses);
    tcase_add_test(t, test_default_profile);
    tcase_add_test(t, test_profile_contents);
    tcase_add_test(t, test_every_toggle);
    tcase_add_test(t, test_dependencies);
    tcase_add_test(t, test_bad_specs);
    suite_add_tcase(s, t);
    t = tcase_create("cpuid");
    tcase_add_test(t, test_cpuid_signature);
    tcase_add_test(t, test_cpuid_leaf1_ebx);
    tcase_add_test(t, test_cpuid_cr4_mirrors);
    tcase_add_test(t, test_cpuid_vendor_and_ranges);
    tcase_add_test(t, test_cpuid_above_max);
    tcase_add_test(t, test_cpuid_topology);
    tcase_add_test(t, test_cpuid_address_sizes);
    tcase_add_test(t, test_cpuid_extended);
    tcase_add_test(t, test_cpuid_tsc);
    tcase_add_test(t, test_cpuid_xsave);
    suite_add_tcase(s, t);
    t = tcase_create("control_registers");
    tcase_add_test(t, test_cr4_reserved);
    tcase_add_test(t, test_efer_reserved);
    tcase_add_test(t, test_describe);
    tcase_add_test(t, test_describe_changes);
    suite_add_tcase(s, t);
    t = tcase_create("vmx_capabilities");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_off_means_no_vmx_capability);
    tcase_add_test(t, test_vmx_table_rows_used);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(model_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
