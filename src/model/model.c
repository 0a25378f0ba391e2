/*
 * The CPU feature model (DESIGN §5). Every answer — CPUID, reserved CR4 and
 * EFER bits, XSAVE layout — is computed from the feature bits of struct
 * cpu_model and the rows of features.def / feature_deps.def; nothing here
 * keeps a per-feature list of its own.
 */
#include "model/model.h"

#include <stdarg.h>
#include <string.h>

#include "arch/x86.h"
#include "model/model_priv.h"

struct feature_info {
    const char *name;
    const char *desc;
    uint32_t leaf, subleaf;
    enum cpuid_reg reg;
    uint8_t bit;
    uint64_t cr4, efer;
};

static const struct feature_info features[FEAT_COUNT] = {
#define FEATURE(id, nm, lf, sl, rg, bt, c4, ef, ds) \
    [FEAT_##id] = { .name = nm, .desc = ds, .leaf = lf, .subleaf = sl, .reg = rg, .bit = bt, \
                    .cr4 = c4, .efer = ef },
#include "model/features.def"
#undef FEATURE
};

struct feature_dep {
    enum cpu_feature feature, requires;
};

static const struct feature_dep feature_deps[] = {
#define DEP(f, r) { FEAT_##f, FEAT_##r },
#include "model/feature_deps.def"
#undef DEP
};

#define N_DEPS (sizeof(feature_deps) / sizeof(feature_deps[0]))

/* CPUID ranges this model implements (SDM Vol. 2A CPUID, Table 3-8). */
#define MODEL_MAX_BASIC_LEAF 0x1Fu
#define MODEL_MAX_EXT_LEAF 0x80000008u
#define MODEL_CRYSTAL_HZ 25000000ull /* core crystal clock of server parts (CPUID.15H:ECX) */

/* XSAVE state components (SDM Vol. 1 §13.2): x87 and SSE live in the legacy region. */
#define XSAVE_LEGACY_AND_HEADER 576u
#define XFEATURE_X87 BIT64(0)
#define XFEATURE_SSE BIT64(1)
#define XFEATURE_PKRU BIT64(9)
#define XFEATURE_PKRU_OFFSET 2688u /* standard-format offset, as on Intel parts and QEMU */
#define XFEATURE_PKRU_SIZE 8u

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool model_has(const struct cpu_model *m, enum cpu_feature f)
{
    if ((unsigned)f >= FEAT_COUNT)
        return false;
    return (m->feat[f / 64] >> (f % 64)) & 1;
}

void model_set(struct cpu_model *m, enum cpu_feature f, bool on)
{
    if ((unsigned)f >= FEAT_COUNT)
        return;
    if (on)
        m->feat[f / 64] |= BIT64(f % 64);
    else
        m->feat[f / 64] &= ~BIT64(f % 64);
}

const char *model_feature_name(enum cpu_feature f)
{
    return (unsigned)f < FEAT_COUNT ? features[f].name : NULL;
}

const char *model_feature_desc(enum cpu_feature f)
{
    return (unsigned)f < FEAT_COUNT ? features[f].desc : NULL;
}

bool model_feature_lookup(const char *name, enum cpu_feature *out)
{
    for (unsigned f = 0; f < FEAT_COUNT; f++) {
        if (strcmp(features[f].name, name) == 0) {
            *out = (enum cpu_feature)f;
            return true;
        }
    }
    return false;
}

size_t model_feature_requires(enum cpu_feature f, enum cpu_feature *out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < N_DEPS; i++) {
        if (feature_deps[i].feature != f)
            continue;
        if (n < max)
            out[n] = feature_deps[i].requires;
        n++;
    }
    return n;
}

/* Clear every feature whose prerequisite is off, until nothing changes. */
static void drop_dependents(struct cpu_model *m)
{
    bool changed;

    do {
        changed = false;
        for (size_t i = 0; i < N_DEPS; i++) {
            const struct feature_dep *d = &feature_deps[i];
            if (model_has(m, d->feature) && !model_has(m, d->requires)) {
                model_set(m, d->feature, false);
                changed = true;
            }
        }
    } while (changed);
}

bool model_toggle(struct cpu_model *m, enum cpu_feature f, bool on, char *err, size_t errlen)
{
    if ((unsigned)f >= FEAT_COUNT) {
        set_err(err, errlen, "no feature number %u", (unsigned)f);
        return false;
    }
    if (!on) {
        model_set(m, f, false);
        drop_dependents(m);
        return true;
    }
    for (size_t i = 0; i < N_DEPS; i++) {
        const struct feature_dep *d = &feature_deps[i];
        if (d->feature == f && !model_has(m, d->requires)) {
            set_err(err, errlen, "'+%s' requires '%s', which is off", features[f].name,
                    features[d->requires].name);
            return false;
        }
    }
    model_set(m, f, true);
    return true;
}

bool model_check(const struct cpu_model *m, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_DEPS; i++) {
        const struct feature_dep *d = &feature_deps[i];
        if (model_has(m, d->feature) && !model_has(m, d->requires)) {
            set_err(err, errlen, "'%s' is on but requires '%s', which is off",
                    features[d->feature].name, features[d->requires].name);
            return false;
        }
    }
    return true;
}

/* ---- profiles ---- */

size_t model_profile_count(void)
{
    return model_profiles_count;
}

const char *model_profile_name(size_t i)
{
    return i < model_profiles_count ? model_profiles[i].name : NULL;
}

const char *model_profile_desc(size_t i)
{
    return i < model_profiles_count ? model_profiles[i].desc : NULL;
}

const char *model_default_name(void)
{
    return model_profiles[model_profile_default].name;
}

static void add_profile_features(struct cpu_model *m, size_t i)
{
    const struct model_profile *p = &model_profiles[i];

    if (p->base >= 0 && (size_t)p->base < i)
        add_profile_features(m, (size_t)p->base);
    for (const enum cpu_feature *f = p->add; *f != FEAT_COUNT; f++)
        model_set(m, *f, true);
}

static void load_profile(struct cpu_model *m, size_t i)
{
    const struct model_profile *p = &model_profiles[i];

    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%s", p->name);
    snprintf(m->brand, sizeof(m->brand), "%s", p->brand);
    m->family = p->family;
    m->model = p->model;
    m->stepping = p->stepping;
    m->maxphyaddr = p->maxphyaddr;
    m->tsc_hz = p->tsc_hz;
    add_profile_features(m, i);
}

static bool find_profile(const char *name, size_t *out)
{
    for (size_t i = 0; i < model_profiles_count; i++) {
        if (strcmp(model_profiles[i].name, name) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

static void list_profiles(char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < model_profiles_count && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", model_profiles[i].name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* One "+feat" / "-feat" item of a --cpu spec. */
static bool apply_item(struct cpu_model *m, const char *item, char *err, size_t errlen)
{
    enum cpu_feature f;

    if (item[0] != '+' && item[0] != '-') {
        set_err(err, errlen, "malformed CPU spec item '%s': expected +feature or -feature", item);
        return false;
    }
    if (!model_feature_lookup(item + 1, &f)) {
        set_err(err, errlen, "unknown CPU feature '%s' in item '%s' (see `vmxsim cpu show`)",
                item + 1, item);
        return false;
    }
    return model_toggle(m, f, item[0] == '+', err, errlen);
}

/* The first item: a profile name, or a toggle applied to the default profile. */
static bool apply_first(struct cpu_model *m, const char *item, char *err, size_t errlen)
{
    size_t i;
    char known[256];

    if (item[0] == '+' || item[0] == '-') {
        load_profile(m, model_profile_default);
        return apply_item(m, item, err, errlen);
    }
    if (!find_profile(item, &i)) {
        list_profiles(known, sizeof(known));
        set_err(err, errlen, "unknown CPU profile '%s' (known: %s)", item, known);
        return false;
    }
    load_profile(m, i);
    return true;
}

/*
 * "profile[,+feat|-feat]..." (DESIGN §5). NULL means the default profile;
 * a spec that starts with a toggle applies it to the default profile.
 * Items are applied left to right (feature_deps.def rules, model_toggle).
 */
bool model_parse(const char *spec, struct cpu_model *out, char *err, size_t errlen)
{
    char buf[512];
    char *item, *next;
    struct cpu_model m;

    if (!spec)
        spec = model_default_name();
    if (spec[0] == '\0') {
        set_err(err, errlen, "empty CPU spec: expected a profile name");
        return false;
    }
    if (strlen(spec) >= sizeof(buf)) {
        set_err(err, errlen, "CPU spec longer than %zu characters", sizeof(buf) - 1);
        return false;
    }
    memcpy(buf, spec, strlen(spec) + 1);
    for (item = buf; item; item = next) {
        next = strchr(item, ',');
        if (next)
            *next++ = '\0';
        if (item[0] == '\0') {
            set_err(err, errlen, "empty item in CPU spec '%s' (stray comma?)", spec);
            return false;
        }
        if (item == buf ? !apply_first(&m, item, err, errlen)
                        : !apply_item(&m, item, err, errlen))
            return false;
    }
    if (!model_check(&m, err, errlen))
        return false;
    *out = m;
    return true;
}

/* ---- derived architectural values ---- */

unsigned model_linear_width(const struct cpu_model *m)
{
    return model_has(m, FEAT_LA57) ? 57 : 48;
}

/* SDM Vol. 1 §13.3: XCR0[0] is always 1; SSE and PKRU follow their features. */
uint64_t model_xcr0_supported(const struct cpu_model *m)
{
    uint64_t xcr0 = XFEATURE_X87;

    if (!model_has(m, FEAT_XSAVE))
        return 0;
    if (model_has(m, FEAT_SSE))
        xcr0 |= XFEATURE_SSE;
    if (model_has(m, FEAT_PKU))
        xcr0 |= XFEATURE_PKRU;
    return xcr0;
}

/* SDM Vol. 1 §13.4: legacy region + header, then each component at its offset. */
uint32_t model_xsave_size(const struct cpu_model *m, uint64_t xcr0)
{
    xcr0 &= model_xcr0_supported(m);
    if (xcr0 & XFEATURE_PKRU)
        return XFEATURE_PKRU_OFFSET + XFEATURE_PKRU_SIZE;
    return XSAVE_LEGACY_AND_HEADER;
}

/* SDM Vol. 3A §2.5: a CR4 bit is reserved unless a feature of the model defines it. */
uint64_t model_cr4_reserved(const struct cpu_model *m)
{
    uint64_t allowed = X86_CR4_PCE; /* performance-counter enable: no CPUID gate */

    for (unsigned f = 0; f < FEAT_COUNT; f++)
        if (model_has(m, (enum cpu_feature)f))
            allowed |= features[f].cr4;
    return ~allowed;
}

/* SDM Vol. 3A §2.2.1, Vol. 4 Table 2-2: on Intel only SCE, LME, LMA, NXE exist. */
uint64_t model_efer_reserved(const struct cpu_model *m)
{
    uint64_t allowed = 0;

    for (unsigned f = 0; f < FEAT_COUNT; f++)
        if (model_has(m, (enum cpu_feature)f))
            allowed |= features[f].efer;
    return ~allowed;
}

/* ---- CPUID (SDM Vol. 2A, CPUID) ---- */

/* OR in the bits features.def places at (leaf, subleaf). */
static void cpuid_feature_bits(const struct cpu_model *m, uint32_t leaf, uint32_t subleaf,
                               uint32_t out[4])
{
    for (unsigned f = 0; f < FEAT_COUNT; f++) {
        const struct feature_info *fi = &features[f];
        if (fi->leaf == leaf && fi->subleaf == subleaf && model_has(m, (enum cpu_feature)f))
            out[fi->reg] |= 1u << fi->bit;
    }
}

/*
 * CPUID.01H:EAX (SDM Vol. 2A Figure 3-6): stepping 3:0, model 7:4, family
 * 11:8, type 13:12, extended model 19:16, extended family 27:20. Family
 * above 0FH is 0FH + extended family; the extended model is the model's
 * high nibble (meaningful for families 06H and 0FH).
 */
static uint32_t cpuid_signature(const struct cpu_model *m)
{
    uint32_t fam = m->family > 0xF ? 0xF : m->family;
    uint32_t ext_fam = m->family > 0xF ? m->family - 0xF : 0;

    return (m->stepping & 0xF) | (m->model & 0xF) << 4 | (fam & 0xF) << 8 |
           ((m->model >> 4) & 0xF) << 16 | (ext_fam & 0xFF) << 20;
}

/* Leaf 01H: signature; EBX CLFLUSH line (8 × 8 bytes), 1 logical CPU, APIC ID. */
static void cpuid_leaf1(const struct cpu_model *m, uint64_t cr4, uint32_t apic_id, uint32_t out[4])
{
    out[CPUID_EAX] = cpuid_signature(m);
    out[CPUID_EBX] = (model_has(m, FEAT_CLFLUSH) ? 8u << 8 : 0) | 1u << 16 | (apic_id & 0xFF) << 24;
    cpuid_feature_bits(m, 1, 0, out);
    if (model_has(m, FEAT_XSAVE) && (cr4 & X86_CR4_OSXSAVE))
        out[CPUID_ECX] |= 1u << 27; /* OSXSAVE mirrors CR4.OSXSAVE */
}

/* Leaf 07H: only sub-leaf 0 is implemented (EAX = 0 = max sub-leaf). */
static void cpuid_leaf7(const struct cpu_model *m, uint32_t subleaf, uint64_t cr4, uint32_t out[4])
{
    if (subleaf != 0)
        return;
    cpuid_feature_bits(m, 7, 0, out);
    if (model_has(m, FEAT_PKU) && (cr4 & X86_CR4_PKE))
        out[CPUID_ECX] |= 1u << 4; /* OSPKE mirrors CR4.PKE */
}

/*
 * Leaves 0BH/1FH: one logical processor per core and one core per package.
 * Level 0 is SMT (type 1), level 1 is core (type 2), then invalid (type 0);
 * EDX is the x2APIC ID at every sub-leaf.
 */
static void cpuid_topology(uint32_t subleaf, uint32_t apic_id, uint32_t out[4])
{
    out[CPUID_ECX] = subleaf & 0xFF;
    out[CPUID_EDX] = apic_id;
    if (subleaf < 2) {
        out[CPUID_EBX] = 1;
        out[CPUID_ECX] |= (subleaf + 1) << 8;
    }
}

/* Leaf 0DH: XSAVE features and layout (SDM Vol. 1 §13.2). EBX assumes XCR0 = all supported. */
static void cpuid_xsave(const struct cpu_model *m, uint32_t subleaf, uint32_t out[4])
{
    uint64_t xcr0 = model_xcr0_supported(m);

    if (!xcr0)
        return;
    if (subleaf == 0) {
        out[CPUID_EAX] = (uint32_t)xcr0;
        out[CPUID_EDX] = (uint32_t)(xcr0 >> 32);
        out[CPUID_EBX] = model_xsave_size(m, xcr0);
        out[CPUID_ECX] = model_xsave_size(m, xcr0);
    } else if (subleaf == 1) {
        cpuid_feature_bits(m, 0xD, 1, out);
        if (model_has(m, FEAT_XSAVEC) || model_has(m, FEAT_XSAVES))
            out[CPUID_EBX] = XSAVE_LEGACY_AND_HEADER +
                             ((xcr0 & XFEATURE_PKRU) ? XFEATURE_PKRU_SIZE : 0);
    } else if (subleaf < 64 && (xcr0 & BIT64(subleaf))) {
        out[CPUID_EAX] = XFEATURE_PKRU_SIZE; /* only PKRU lies outside the legacy region */
        out[CPUID_EBX] = XFEATURE_PKRU_OFFSET;
    }
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Leaf 15H: TSC = crystal × EBX / EAX, reduced; zero when not representable. */
static void cpuid_tsc_ratio(const struct cpu_model *m, uint32_t out[4])
{
    uint64_t g, num, den;

    if (!model_has(m, FEAT_TSC) || !m->tsc_hz)
        return;
    g = gcd64(m->tsc_hz, MODEL_CRYSTAL_HZ);
    num = m->tsc_hz / g;
    den = MODEL_CRYSTAL_HZ / g;
    if (num > UINT32_MAX || den > UINT32_MAX)
        return;
    out[CPUID_EAX] = (uint32_t)den;
    out[CPUID_EBX] = (uint32_t)num;
    out[CPUID_ECX] = (uint32_t)MODEL_CRYSTAL_HZ;
}

/* Leaf 16H: base and maximum frequency (MHz) = nominal TSC, bus 100 MHz. */
static void cpuid_frequency(const struct cpu_model *m, uint32_t out[4])
{
    uint64_t mhz = m->tsc_hz / 1000000;

    out[CPUID_EAX] = (uint32_t)(mhz & 0xFFFF);
    out[CPUID_EBX] = (uint32_t)(mhz & 0xFFFF);
    out[CPUID_ECX] = 100;
}

static void cpuid_basic(const struct cpu_model *m, uint32_t leaf, uint32_t subleaf, uint64_t cr4,
                        uint32_t apic_id, uint32_t out[4])
{
    switch (leaf) {
    case 0x0:
        out[CPUID_EAX] = MODEL_MAX_BASIC_LEAF;
        out[CPUID_EBX] = 0x756E6547; /* "Genu" */
        out[CPUID_EDX] = 0x49656E69; /* "ineI" */
        out[CPUID_ECX] = 0x6C65746E; /* "ntel" */
        break;
    case 0x1:
        cpuid_leaf1(m, cr4, apic_id, out);
        break;
    case 0x5:
        if (model_has(m, FEAT_MONITOR))
            out[CPUID_EAX] = out[CPUID_EBX] = 64; /* monitor line size */
        break;
    case 0x7:
        cpuid_leaf7(m, subleaf, cr4, out);
        break;
    case 0xB:
    case 0x1F:
        cpuid_topology(subleaf, apic_id, out);
        break;
    case 0xD:
        cpuid_xsave(m, subleaf, out);
        break;
    case 0x15:
        cpuid_tsc_ratio(m, out);
        break;
    case 0x16:
        cpuid_frequency(m, out);
        break;
    default: /* within range but not implemented: all zero (SDM Vol. 2A CPUID) */
        break;
    }
}

/* Leaves 80000002H-80000004H: 16 brand bytes each, first byte in AL, NUL padded. */
static void cpuid_brand(const struct cpu_model *m, uint32_t leaf, uint32_t out[4])
{
    unsigned char brand[48] = { 0 };
    const unsigned char *p;

    memcpy(brand, m->brand, strnlen(m->brand, sizeof(brand)));
    p = brand + (leaf - 0x80000002u) * 16;
    for (int r = 0; r < 4; r++, p += 4)
        out[r] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void cpuid_extended(const struct cpu_model *m, uint32_t leaf, uint32_t out[4])
{
    switch (leaf) {
    case 0x80000000:
        out[CPUID_EAX] = MODEL_MAX_EXT_LEAF;
        break;
    case 0x80000001:
    case 0x80000007:
        cpuid_feature_bits(m, leaf, 0, out);
        break;
    case 0x80000002:
    case 0x80000003:
    case 0x80000004:
        cpuid_brand(m, leaf, out);
        break;
    case 0x80000008:
        out[CPUID_EAX] = m->maxphyaddr | model_linear_width(m) << 8;
        break;
    default:
        break;
    }
}

/*
 * SDM Vol. 2A CPUID: "If a value entered for CPUID.EAX is higher than the
 * maximum input value for basic or extended function for that processor
 * then the data for the highest basic information leaf is returned", with
 * its ECX dependence honoured. 40000000H-4FFFFFFFH are invalid too.
 */
void model_cpuid(const struct cpu_model *m, uint32_t leaf, uint32_t subleaf, uint64_t cr4,
                 uint32_t apic_id, uint32_t out[4])
{
    memset(out, 0, 4 * sizeof(out[0]));
    if (leaf >= 0x80000000u && leaf <= MODEL_MAX_EXT_LEAF) {
        cpuid_extended(m, leaf, out);
        return;
    }
    if (leaf > MODEL_MAX_BASIC_LEAF)
        leaf = MODEL_MAX_BASIC_LEAF;
    cpuid_basic(m, leaf, subleaf, cr4, apic_id, out);
}

/* ---- `vmxsim cpu show` ---- */

static void describe_cpuid_pos(const struct feature_info *fi, char *buf, size_t len)
{
    static const char regs[4][4] = { "EAX", "EBX", "ECX", "EDX" };

    if (fi->leaf == CPUID_LEAF_NONE)
        snprintf(buf, len, "(no CPUID bit)");
    else if (fi->leaf == 0x7 || fi->leaf == 0xD)
        snprintf(buf, len, "CPUID.(%02XH,%u):%s[%u]", fi->leaf, fi->subleaf, regs[fi->reg],
                 fi->bit);
    else
        snprintf(buf, len, "CPUID.%02XH:%s[%u]", fi->leaf, regs[fi->reg], fi->bit);
}

/*
 * The features a spec's toggles changed against its profile, dependents
 * included ("sapphire-rapids,-lm" also lists -la57, -pks, ...), so the
 * profile's description line is not mistaken for what is on.
 */
static void describe_changes(const struct cpu_model *m, size_t profile, FILE *out)
{
    struct cpu_model base;
    bool any = false;

    load_profile(&base, profile);
    for (unsigned f = 0; f < FEAT_COUNT; f++) {
        bool on = model_has(m, (enum cpu_feature)f);
        if (on == model_has(&base, (enum cpu_feature)f))
            continue;
        fprintf(out, "%s%c%s", any ? " " : "changed     ", on ? '+' : '-', features[f].name);
        any = true;
    }
    if (any)
        fprintf(out, "   (toggles and their dependents, against the profile)\n");
}

void model_describe(const struct cpu_model *m, FILE *out)
{
    char pos[40];
    size_t p;

    fprintf(out, "profile     %s\n", m->name);
    if (find_profile(m->name, &p)) {
        fprintf(out, "            %s\n", model_profiles[p].desc);
        describe_changes(m, p, out);
    }
    fprintf(out, "brand       %s\n", m->brand);
    fprintf(out, "signature   family %Xh model %Xh stepping %u (CPUID.01H:EAX = %08Xh)\n", m->family,
            m->model, m->stepping, cpuid_signature(m));
    fprintf(out, "maxphyaddr  %u bits, linear %u bits\n", m->maxphyaddr, model_linear_width(m));
    fprintf(out, "tsc         %llu Hz\n", (unsigned long long)m->tsc_hz);
    fprintf(out, "cr4 allowed %#llx  efer allowed %#llx\n",
            (unsigned long long)~model_cr4_reserved(m), (unsigned long long)~model_efer_reserved(m));
    fprintf(out, "features:\n");
    for (unsigned f = 0; f < FEAT_COUNT; f++) {
        describe_cpuid_pos(&features[f], pos, sizeof(pos));
        fprintf(out, "  [%c] %-22s %-24s %s\n", model_has(m, (enum cpu_feature)f) ? 'x' : ' ',
                features[f].name, pos, features[f].desc);
    }
}
