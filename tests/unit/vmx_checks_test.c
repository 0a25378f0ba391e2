/*
 * VM-entry checks (src/vmx/checks_*.c, entry_checks.def) — SDM Vol. 3C
 * §27.2 and §27.3.1, table-driven (STYLE 8):
 *   - a known-good VMCS (64-bit guest and host, EPT, VPID, MSR bitmaps)
 *     passes all three stages on every CPU profile;
 *   - one vector per check id (vmx_checks_vectors.inc) breaks exactly that
 *     rule; an id without a vector fails the test;
 *   - every bit of every control field against the capability MSRs of two
 *     CPU profiles (kvm-unit-tests style);
 *   - boundary positives (largest allowed values, optional features on).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "vmx/checks_env.h"
#include "vmx/vmcs.h"
#include "vmx/vmx.h"

/* ---- Fake guest RAM for struct vmx_mem ------------------------------------ */

#define RAM_BASE 0x100000ull
#define RAM_SIZE 0x10000ull
#define LINK_PA (RAM_BASE + 0x1000) /* a VMCS region for the VMCS link pointer */
#define VAPIC_PA (RAM_BASE + 0x2000) /* a virtual-APIC page, VTPR = 20H */
#define VTPR_VALUE 0x20u

static uint8_t ram[RAM_SIZE];

static uint8_t *ram_ptr(void *ctx, uint64_t pa, size_t len)
{
    (void)ctx;
    if (pa < RAM_BASE || pa - RAM_BASE > RAM_SIZE - len)
        return NULL;
    return ram + (pa - RAM_BASE);
}

static const struct vmx_mem mem = {NULL, ram_ptr};

static void put32(uint64_t pa, uint32_t v)
{
    memcpy(ram_ptr(NULL, pa, 4), &v, 4);
}

/* ---- Capabilities --------------------------------------------------------- */

static struct vmx_caps caps_of(const char *profile)
{
    struct cpu_model m;
    struct vmx_caps k;
    char err[128];
    ck_assert_msg(model_parse(profile, &m, err, sizeof err), "%s: %s", profile, err);
    vmx_caps_init(&k, &m);
    return k;
}

/* Every control allowed to be 1 (must-be-1 bits as the model has them), all
 * optional EPT/VMFUNC/MISC features and CET: reaches rules vmxsim's own
 * capabilities never let a VMCS get to. */
static struct vmx_caps permissive_caps(void)
{
    struct vmx_caps k = caps_of("sapphire-rapids");
    k.true_pinbased |= 0xFFFFFFFFull << 32;
    k.true_procbased |= 0xFFFFFFFFull << 32;
    k.true_exit |= 0xFFFFFFFFull << 32;
    k.true_entry |= 0xFFFFFFFFull << 32;
    k.procbased2 = 0xFFFFFFFFull << 32;
    k.procbased3 = ~0ull;
    k.misc |= VMX_MISC_ACTIVITY_HLT | VMX_MISC_ACTIVITY_SHUTDOWN | VMX_MISC_ACTIVITY_WAIT_SIPI | VMX_MISC_ZERO_LEN_INS;
    k.ept_vpid |= VMX_EPT_PAGE_WALK_5_BIT | VMX_EPT_AD_BIT | VMX_EPT_SUPERVISOR_SHADOW_STACK | VMX_EPTP_UC_BIT;
    k.vmfunc = VMX_VMFUNC_EPTP_SWITCHING;
    k.cr4_fixed1 |= X86_CR4_CET;
    return k;
}

/* ---- The known-good VMCS ---------------------------------------------------- */

#define PIN PIN_BASED_VM_EXEC_CONTROL
#define PROC CPU_BASED_VM_EXEC_CONTROL
#define PROC2 SECONDARY_VM_EXEC_CONTROL
#define EXIT VM_EXIT_CONTROLS
#define ENTRY VM_ENTRY_CONTROLS
#define INFO VM_ENTRY_INTR_INFO_FIELD

#define EPTP_GOOD_BASE 0x3000ull
#define EPTP_GOOD (EPTP_GOOD_BASE | VMX_EPTP_PWL_4 | VMX_EPTP_MT_WB)
#define PAT_GOOD 0x0007040600070406ull
#define EFER_LONG (X86_EFER_SCE | X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE)
#define CR0_GOOD (X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_AM | X86_CR0_PG)
#define NONCANON 0x4000000000000000ull /* bits 63:N differ for every width N */
#define PENDING_BS BIT64(14)
#define INJ(type, vec) (INTR_INFO_VALID_MASK | ((uint32_t)(type) << INTR_INFO_INTR_TYPE_SHIFT) | (vec))

static void wr(uint8_t *v, uint32_t enc, uint64_t val)
{
    ck_assert_msg(vmcs_write(v, enc, val) == VMXSIM_OK, "VMCS field %#x", enc);
}

static uint64_t rd(const uint8_t *v, uint32_t enc)
{
    uint64_t val = 0;
    ck_assert_msg(vmcs_read(v, enc, &val) == VMXSIM_OK, "VMCS field %#x", enc);
    return val;
}

static void wr_seg(uint8_t *v, enum x86_seg s, uint16_t sel, uint64_t base, uint32_t limit, uint32_t ar)
{
    static const uint32_t f[X86_SEG_COUNT][4] = {
        [X86_SEG_ES] = {GUEST_ES_SELECTOR, GUEST_ES_BASE, GUEST_ES_LIMIT, GUEST_ES_AR_BYTES},
        [X86_SEG_CS] = {GUEST_CS_SELECTOR, GUEST_CS_BASE, GUEST_CS_LIMIT, GUEST_CS_AR_BYTES},
        [X86_SEG_SS] = {GUEST_SS_SELECTOR, GUEST_SS_BASE, GUEST_SS_LIMIT, GUEST_SS_AR_BYTES},
        [X86_SEG_DS] = {GUEST_DS_SELECTOR, GUEST_DS_BASE, GUEST_DS_LIMIT, GUEST_DS_AR_BYTES},
        [X86_SEG_FS] = {GUEST_FS_SELECTOR, GUEST_FS_BASE, GUEST_FS_LIMIT, GUEST_FS_AR_BYTES},
        [X86_SEG_GS] = {GUEST_GS_SELECTOR, GUEST_GS_BASE, GUEST_GS_LIMIT, GUEST_GS_AR_BYTES},
        [X86_SEG_LDTR] = {GUEST_LDTR_SELECTOR, GUEST_LDTR_BASE, GUEST_LDTR_LIMIT, GUEST_LDTR_AR_BYTES},
        [X86_SEG_TR] = {GUEST_TR_SELECTOR, GUEST_TR_BASE, GUEST_TR_LIMIT, GUEST_TR_AR_BYTES},
    };
    wr(v, f[s][0], sel);
    wr(v, f[s][1], base);
    wr(v, f[s][2], limit);
    wr(v, f[s][3], ar);
}

static void build_controls(uint8_t *v, const struct vmx_caps *k)
{
    wr(v, PIN, (uint32_t)k->true_pinbased);
    wr(v, PROC, (uint32_t)k->true_procbased | CPU_BASED_USE_MSR_BITMAPS | CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    wr(v, PROC2, SECONDARY_EXEC_ENABLE_EPT | SECONDARY_EXEC_ENABLE_VPID);
    wr(v, EXIT, (uint32_t)k->true_exit | VM_EXIT_HOST_ADDR_SPACE_SIZE | VM_EXIT_LOAD_IA32_EFER |
                    VM_EXIT_LOAD_IA32_PAT | VM_EXIT_SAVE_IA32_PAT | VM_EXIT_SAVE_IA32_EFER);
    wr(v, ENTRY, (uint32_t)k->true_entry | VM_ENTRY_IA32E_MODE | VM_ENTRY_LOAD_IA32_EFER | VM_ENTRY_LOAD_IA32_PAT);
    wr(v, VIRTUAL_PROCESSOR_ID, 1);
    wr(v, EPT_POINTER, EPTP_GOOD);
    wr(v, MSR_BITMAP, 0x4000);
}

static void build_host(uint8_t *v)
{
    wr(v, HOST_CR0, CR0_GOOD);
    wr(v, HOST_CR3, 0x1000);
    wr(v, HOST_CR4, X86_CR4_PAE | X86_CR4_PGE | X86_CR4_VMXE);
    wr(v, HOST_ES_SELECTOR, 0x10);
    wr(v, HOST_CS_SELECTOR, 0x08);
    wr(v, HOST_SS_SELECTOR, 0x10);
    wr(v, HOST_DS_SELECTOR, 0x10);
    wr(v, HOST_FS_SELECTOR, 0);
    wr(v, HOST_GS_SELECTOR, 0);
    wr(v, HOST_TR_SELECTOR, 0x40);
    wr(v, HOST_FS_BASE, 0x00007F0000000000ull);
    wr(v, HOST_GS_BASE, 0xFFFF888000000000ull);
    wr(v, HOST_TR_BASE, 0xFFFFFE0000001000ull);
    wr(v, HOST_GDTR_BASE, 0xFFFFFE0000000000ull);
    wr(v, HOST_IDTR_BASE, 0xFFFFFE0000002000ull);
    wr(v, HOST_IA32_SYSENTER_ESP, 0);
    wr(v, HOST_IA32_SYSENTER_EIP, 0xFFFFFFFF81200000ull);
    wr(v, HOST_RSP, 0xFFFFC90000004000ull);
    wr(v, HOST_RIP, 0xFFFFFFFF81000000ull);
    wr(v, HOST_IA32_EFER, EFER_LONG);
    wr(v, HOST_IA32_PAT, PAT_GOOD);
}

static void build_guest(uint8_t *v)
{
    wr(v, GUEST_CR0, CR0_GOOD);
    wr(v, GUEST_CR3, 0x2000);
    wr(v, GUEST_CR4, X86_CR4_PAE | X86_CR4_PGE | X86_CR4_VMXE);
    wr(v, GUEST_DR7, 0x400);
    wr_seg(v, X86_SEG_CS, 0x08, 0, 0xFFFFFFFF, 0xA09B); /* 64-bit code, DPL 0 */
    wr_seg(v, X86_SEG_SS, 0x10, 0, 0xFFFFFFFF, 0xC093);
    wr_seg(v, X86_SEG_DS, 0x10, 0, 0xFFFFFFFF, 0xC093);
    wr_seg(v, X86_SEG_ES, 0x10, 0, 0xFFFFFFFF, 0xC093);
    wr_seg(v, X86_SEG_FS, 0x10, 0x00007F0000000000ull, 0xFFFFFFFF, 0xC093);
    wr_seg(v, X86_SEG_GS, 0x10, 0xFFFF888000000000ull, 0xFFFFFFFF, 0xC093);
    wr_seg(v, X86_SEG_LDTR, 0, 0, 0, X86_AR_UNUSABLE);
    wr_seg(v, X86_SEG_TR, 0x18, 0x3000, 0x67, 0x8B); /* busy 64-bit TSS */
    wr(v, GUEST_GDTR_BASE, 0x5000);
    wr(v, GUEST_GDTR_LIMIT, 0x27);
    wr(v, GUEST_IDTR_BASE, 0x6000);
    wr(v, GUEST_IDTR_LIMIT, 0xFFF);
    wr(v, GUEST_RSP, 0x8000);
    wr(v, GUEST_RIP, 0x400000);
    wr(v, GUEST_RFLAGS, X86_RFLAGS_FIXED);
    wr(v, GUEST_IA32_EFER, EFER_LONG);
    wr(v, GUEST_IA32_PAT, PAT_GOOD);
    wr(v, VMCS_LINK_POINTER, ~0ull);
}

/* A 32-bit protected-mode guest with PAE paging (PDPTEs from the VMCS with EPT). */
static void make_guest32(uint8_t *v)
{
    wr(v, ENTRY, rd(v, ENTRY) & ~VM_ENTRY_IA32E_MODE);
    wr(v, GUEST_IA32_EFER, X86_EFER_SCE | X86_EFER_NXE);
    wr(v, GUEST_CS_AR_BYTES, 0xC09B);
}

/* A virtual-8086 guest: the 32-bit guest with RFLAGS.VM and real-mode style segments. */
static void make_v86(uint8_t *v)
{
    make_guest32(v);
    wr(v, GUEST_RFLAGS, X86_RFLAGS_FIXED | X86_RFLAGS_VM);
    for (enum x86_seg s = X86_SEG_ES; s <= X86_SEG_GS; s++) {
        uint16_t sel = (uint16_t)(0x1000 + 0x100 * s);
        wr_seg(v, s, sel, (uint64_t)sel << 4, 0xFFFF, 0xF3);
    }
}

/* A real-mode guest under unrestricted guest (CR0.PE = PG = 0, CS type 3). */
static void make_realmode(uint8_t *v)
{
    make_guest32(v);
    wr(v, PROC2, rd(v, PROC2) | SECONDARY_EXEC_UNRESTRICTED_GUEST);
    wr(v, GUEST_CR0, X86_CR0_ET | X86_CR0_NE);
    wr(v, GUEST_CR4, X86_CR4_VMXE);
    wr(v, GUEST_IA32_EFER, 0);
    wr_seg(v, X86_SEG_CS, 0xF000, 0xF0000, 0xFFFF, 0x93);
    for (enum x86_seg s = X86_SEG_ES; s <= X86_SEG_GS; s++)
        if (s != X86_SEG_CS)
            wr_seg(v, s, 0, 0, 0xFFFF, 0x93);
    wr_seg(v, X86_SEG_TR, 0, 0, 0xFFFF, 0x83); /* busy 16-bit TSS */
    wr(v, GUEST_RIP, 0xFFF0);
}

/* A 32-bit host (VM entry outside IA-32e mode) and so a 32-bit guest. */
static void make_host32(uint8_t *v)
{
    make_guest32(v);
    wr(v, EXIT, rd(v, EXIT) & ~VM_EXIT_HOST_ADDR_SPACE_SIZE);
    wr(v, HOST_IA32_EFER, X86_EFER_SCE | X86_EFER_NXE);
    wr(v, HOST_RIP, 0x101000);
    wr(v, HOST_FS_BASE, 0);
    wr(v, HOST_GS_BASE, 0);
}

static void build_good(uint8_t *v, const struct vmx_caps *k)
{
    memset(v, 0, VMCS_REGION_SIZE);
    vmcs_region_clear(v);
    build_controls(v, k);
    build_host(v);
    build_guest(v);
}

static void reset_ram(const struct vmx_caps *k)
{
    memset(ram, 0, sizeof ram);
    put32(LINK_PA, (uint32_t)(k->basic & VMX_BASIC_REVISION_MASK));
    ram[VAPIC_PA - RAM_BASE + 0x80] = VTPR_VALUE;
}

/* ---- Running the three stages ----------------------------------------------- */

struct outcome {
    bool ok;
    enum vmx_check_stage stage; /* the stage whose function failed */
    struct vmx_check_fail f;
};

static struct outcome run_checks(const struct vmx_caps *k, const uint8_t *v, const struct vmx_entry_env *env)
{
    struct outcome o = {.ok = false};
    if (!vmx_check_controls_env(k, v, &mem, env, &o.f)) {
        o.stage = VMX_STAGE_CONTROLS;
        return o;
    }
    if (!vmx_check_host_state_env(k, v, env, &o.f)) {
        o.stage = VMX_STAGE_HOST;
        return o;
    }
    if (!vmx_check_guest_state_env(k, v, &mem, env, &o.f)) {
        o.stage = VMX_STAGE_GUEST;
        return o;
    }
    o.ok = true;
    return o;
}

static void assert_passes(const char *what, const struct vmx_caps *k, const uint8_t *v,
                          const struct vmx_entry_env *env)
{
    struct outcome o = run_checks(k, v, env);
    ck_assert_msg(o.ok, "%s: failed %s (value %#llx): %s", what, vmx_check_name(o.f.id),
                  (unsigned long long)o.f.value, vmx_check_message(o.f.id));
}

/* ---- Vectors ------------------------------------------------------------------ */

enum mut_op { OP_NONE, OP_SET, OP_OR, OP_CLR };

struct mut {
    uint32_t enc;
    enum mut_op op;
    uint64_t val;
};

#define MAX_MUTS 8

struct vec {
    enum vmx_check_id id;
    uint32_t qual;
    unsigned flags;
    struct mut m[MAX_MUTS];
};

enum {
    F_REAL = 1u << 0,        /* sapphire-rapids capabilities, not the permissive ones */
    F_SKX = 1u << 1,         /* skylake-server capabilities */
    F_HOST32 = 1u << 2,      /* 32-bit host, VM entry outside IA-32e mode */
    F_GUEST32 = 1u << 3,     /* 32-bit PAE guest */
    F_V86 = 1u << 4,         /* virtual-8086 guest */
    F_REALMODE = 1u << 5,    /* real-mode guest with unrestricted guest */
    F_SMM = 1u << 6,         /* VM entry executed in SMM */
    F_CURRENT = 1u << 7,     /* current-VMCS pointer = LINK_PA */
    F_EXECUTIVE = 1u << 8,   /* executive-VMCS pointer = LINK_PA */
    F_LINK_BAD_REV = 1u << 9,
    F_LINK_SHADOW = 1u << 10, /* link region has the shadow-VMCS indicator */
    F_ERRCODE_CC = 1u << 11, /* IA32_VMX_BASIC[56] = 0 */
    F_NO_MTF = 1u << 12,
    F_NO_ZERO_LEN = 1u << 13,
    F_NO_CET = 1u << 14,
    F_NO_EPT_AD = 1u << 15,
    F_NO_SSS = 1u << 16,
    F_NO_EPT_UC = 1u << 17,
};

#define SET(enc, val) {(enc), OP_SET, (uint64_t)(val)}
#define OR(enc, val) {(enc), OP_OR, (uint64_t)(val)}
#define CLR(enc, val) {(enc), OP_CLR, (uint64_t)(val)}
#define NOP {0, OP_NONE, 0}
#define V(ID, flags, ...) {VMX_CHECK_##ID, ENTRY_FAIL_DEFAULT, (flags), {__VA_ARGS__}}
#define VQ(ID, qual, flags, ...) {VMX_CHECK_##ID, (qual), (flags), {__VA_ARGS__}}
#define LDTR_USABLE SET(GUEST_LDTR_SELECTOR, 0x28), SET(GUEST_LDTR_AR_BYTES, 0x82), SET(GUEST_LDTR_LIMIT, 0xFFFF)
#define V86_SEG(S)                                                                                             \
    V(GUEST_##S##_V86_BASE, F_V86, OR(GUEST_##S##_BASE, 1)),                                                   \
        V(GUEST_##S##_V86_LIMIT, F_V86, SET(GUEST_##S##_LIMIT, 0xFFFE)),                                       \
        V(GUEST_##S##_V86_AR, F_V86, SET(GUEST_##S##_AR_BYTES, 0xF1))
#define DATA_SEG(S)                                                                                            \
    V(GUEST_##S##_AR_TYPE, 0, SET(GUEST_##S##_AR_BYTES, 0xC092)),                                              \
        V(GUEST_##S##_AR_TYPE, 0, SET(GUEST_##S##_AR_BYTES, 0xC099)),                                          \
        V(GUEST_##S##_AR_S, 0, CLR(GUEST_##S##_AR_BYTES, X86_AR_S)),                                           \
        V(GUEST_##S##_AR_DPL, 0, OR(GUEST_##S##_SELECTOR, 3)),                                                 \
        V(GUEST_##S##_AR_P, 0, CLR(GUEST_##S##_AR_BYTES, X86_AR_P)),                                           \
        V(GUEST_##S##_AR_RESERVED, 0, OR(GUEST_##S##_AR_BYTES, BIT64(11))),                                    \
        V(GUEST_##S##_AR_G, 0, SET(GUEST_##S##_LIMIT, 0xFFFFF000))

static const struct vec vectors[] = {
#include "vmx_checks_vectors.inc"
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static void tweak_caps(struct vmx_caps *k, unsigned flags)
{
    if (flags & F_REAL)
        *k = caps_of("sapphire-rapids");
    if (flags & F_SKX)
        *k = caps_of("skylake-server");
    if (flags & F_ERRCODE_CC)
        k->basic &= ~VMX_BASIC_NO_HW_ERROR_CODE_CC;
    if (flags & F_NO_MTF)
        k->true_procbased &= ~((uint64_t)CPU_BASED_MONITOR_TRAP_FLAG << 32);
    if (flags & F_NO_ZERO_LEN)
        k->misc &= ~VMX_MISC_ZERO_LEN_INS;
    if (flags & F_NO_CET)
        k->cr4_fixed1 &= ~X86_CR4_CET;
    if (flags & F_NO_EPT_AD)
        k->ept_vpid &= ~VMX_EPT_AD_BIT;
    if (flags & F_NO_SSS)
        k->ept_vpid &= ~VMX_EPT_SUPERVISOR_SHADOW_STACK;
    if (flags & F_NO_EPT_UC)
        k->ept_vpid &= ~VMX_EPTP_UC_BIT;
}

static void apply(uint8_t *v, const struct mut *m)
{
    uint64_t cur;
    if (m->op == OP_NONE)
        return;
    cur = rd(v, m->enc);
    wr(v, m->enc, m->op == OP_SET ? m->val : m->op == OP_OR ? (cur | m->val) : (cur & ~m->val));
}

/* Capabilities, VMCS, guest RAM and environment of a vector, before its mutations. */
static void setup_vector(const struct vec *t, struct vmx_caps *k, uint8_t *v, struct vmx_entry_env *env)
{
    *k = permissive_caps();
    tweak_caps(k, t->flags);
    build_good(v, k);
    reset_ram(k);
    *env = VMX_ENTRY_ENV_DEFAULT;
    if (t->flags & F_GUEST32)
        make_guest32(v);
    if (t->flags & F_V86)
        make_v86(v);
    if (t->flags & F_REALMODE)
        make_realmode(v);
    if (t->flags & F_HOST32) {
        make_host32(v);
        env->host_in_ia32e = false;
    }
    env->in_smm = (t->flags & F_SMM) != 0;
    if (t->flags & F_CURRENT)
        env->current_vmcs = LINK_PA;
    if (t->flags & F_EXECUTIVE)
        env->executive_vmcs = LINK_PA;
    if (t->flags & F_LINK_BAD_REV)
        put32(LINK_PA, (uint32_t)(k->basic & VMX_BASIC_REVISION_MASK) + 1);
    if (t->flags & F_LINK_SHADOW)
        put32(LINK_PA, (uint32_t)(k->basic & VMX_BASIC_REVISION_MASK) | VMCS_SHADOW_INDICATOR);
}

/* The configuration a vector starts from passes: the vector breaks only its own rule. */
START_TEST(test_vector_base_passes)
{
    static uint8_t v[VMCS_REGION_SIZE];
    const struct vec *t = &vectors[_i];
    struct vmx_caps k;
    struct vmx_entry_env env;
    char what[96];
    setup_vector(t, &k, v, &env);
    if (t->flags & (F_LINK_BAD_REV | F_LINK_SHADOW | F_CURRENT | F_EXECUTIVE))
        return; /* only a link pointer to LINK_PA makes these fail */
    snprintf(what, sizeof what, "base of vector %d (%s)", _i, vmx_check_name(t->id));
    assert_passes(what, &k, v, &env);
}
END_TEST

START_TEST(test_vector)
{
    static uint8_t v[VMCS_REGION_SIZE];
    const struct vec *t = &vectors[_i];
    struct vmx_caps k;
    struct vmx_entry_env env;
    struct outcome o;
    setup_vector(t, &k, v, &env);
    for (int i = 0; i < MAX_MUTS; i++)
        apply(v, &t->m[i]);
    o = run_checks(&k, v, &env);
    ck_assert_msg(!o.ok, "vector %d: expected %s to fail, all checks passed", _i, vmx_check_name(t->id));
    ck_assert_msg(o.f.id == t->id, "vector %d: expected %s, got %s (value %#llx)", _i, vmx_check_name(t->id),
                  vmx_check_name(o.f.id), (unsigned long long)o.f.value);
    ck_assert_int_eq(o.f.stage, o.stage);
    ck_assert_int_eq(vmx_check_stage_of(t->id), o.stage);
    ck_assert_uint_eq(o.f.qualification, o.stage == VMX_STAGE_GUEST ? t->qual : 0);
}
END_TEST

/* Every id of entry_checks.def has at least one vector. */
START_TEST(test_every_id_has_a_vector)
{
    char missing[4096] = "";
    size_t n = 0;
    for (int id = VMX_CHECK_NONE + 1; id < VMX_CHECK_COUNT; id++) {
        bool found = false;
        for (size_t i = 0; i < NVECTORS && !found; i++)
            found = vectors[i].id == (enum vmx_check_id)id;
        if (!found && strlen(missing) + 64 < sizeof missing) {
            strcat(missing, " ");
            strcat(missing, vmx_check_name((enum vmx_check_id)id));
            n++;
        }
    }
    ck_assert_msg(n == 0, "%zu check ids without a vector:%s", n, missing);
}
END_TEST

/* Names, messages and stages: present, and the stage matches the id's prefix. */
START_TEST(test_check_table)
{
    ck_assert_str_eq(vmx_check_name(VMX_CHECK_NONE), "NONE");
    ck_assert_ptr_null(vmx_check_name(VMX_CHECK_COUNT));
    for (int id = VMX_CHECK_NONE + 1; id < VMX_CHECK_COUNT; id++) {
        const char *name = vmx_check_name((enum vmx_check_id)id);
        const char *msg = vmx_check_message((enum vmx_check_id)id);
        enum vmx_check_stage st = vmx_check_stage_of((enum vmx_check_id)id);
        enum vmx_check_stage want = !strncmp(name, "HOST_", 5)    ? VMX_STAGE_HOST
                                    : !strncmp(name, "GUEST_", 6) ? VMX_STAGE_GUEST
                                                                  : VMX_STAGE_CONTROLS;
        ck_assert_ptr_nonnull(msg);
        ck_assert_msg(strlen(msg) > 10, "%s: message too short", name);
        ck_assert_msg(st == want, "%s: stage %d", name, st);
        ck_assert_msg(want != VMX_STAGE_CONTROLS || !strncmp(name, "CTL_", 4) || !strncmp(name, "EXIT", 4) ||
                          !strncmp(name, "ENTRY_", 6),
                      "%s: unknown prefix", name);
        if (st != VMX_STAGE_GUEST)
            ck_assert_uint_eq(vmx_check_qualification((enum vmx_check_id)id), ENTRY_FAIL_DEFAULT);
    }
}
END_TEST

/* ---- Known-good VMCS on every profile ------------------------------------------ */

static const char *const profiles[] = {"skylake-server", "icelake-server", "sapphire-rapids"};

START_TEST(test_good_vmcs_passes)
{
    static uint8_t v[VMCS_REGION_SIZE];
    struct vmx_caps k = _i < 3 ? caps_of(profiles[_i]) : permissive_caps();
    struct vmx_check_fail f;
    build_good(v, &k);
    reset_ram(&k);
    assert_passes(_i < 3 ? profiles[_i] : "permissive", &k, v, NULL);
    /* The vmx.h entry points (default environment) agree. */
    ck_assert(vmx_check_controls(&k, v, &mem, &f));
    ck_assert(vmx_check_host_state(&k, v, &f));
    ck_assert(vmx_check_guest_state(&k, v, &mem, &f));
    ck_assert_int_eq(f.id, VMX_CHECK_NONE);
}
END_TEST

/* The minimal profile has no EPT/VPID: the good VMCS fails on secondary controls. */
START_TEST(test_minimal_profile_rejects_ept)
{
    static uint8_t v[VMCS_REGION_SIZE];
    struct vmx_caps k = caps_of("minimal");
    struct outcome o;
    build_good(v, &k);
    o = run_checks(&k, v, NULL);
    ck_assert(!o.ok);
    ck_assert_int_eq(o.f.id, VMX_CHECK_CTL_PROC2_RESERVED);
    ck_assert_uint_eq(o.f.value, SECONDARY_EXEC_ENABLE_EPT | SECONDARY_EXEC_ENABLE_VPID);
}
END_TEST

/* ---- Every control bit against the capability MSRs -------------------------------- */

struct ctl_field {
    const char *name;
    uint32_t enc;
    unsigned bits;
    enum vmx_check_id allowed0, allowed1;
};

static const struct ctl_field ctl_fields[] = {
    {"pin", PIN, 32, VMX_CHECK_CTL_PIN_ALLOWED0, VMX_CHECK_CTL_PIN_ALLOWED1},
    {"proc", PROC, 32, VMX_CHECK_CTL_PROC_ALLOWED0, VMX_CHECK_CTL_PROC_ALLOWED1},
    {"proc2", PROC2, 32, VMX_CHECK_CTL_PROC2_RESERVED, VMX_CHECK_CTL_PROC2_RESERVED},
    {"proc3", TERTIARY_VM_EXEC_CONTROL, 64, VMX_CHECK_CTL_PROC3_RESERVED, VMX_CHECK_CTL_PROC3_RESERVED},
    {"exit", EXIT, 32, VMX_CHECK_EXIT_ALLOWED0, VMX_CHECK_EXIT_ALLOWED1},
    {"entry", ENTRY, 32, VMX_CHECK_ENTRY_ALLOWED0, VMX_CHECK_ENTRY_ALLOWED1},
};

/* allowed-0 (must be 1) and allowed-1 (may be 1) of a field, 64-bit for tertiary. */
static void field_caps(const struct vmx_caps *k, const struct ctl_field *c, uint64_t *must1, uint64_t *may1)
{
    uint64_t msr = c->enc == PIN ? k->true_pinbased : c->enc == PROC ? k->true_procbased
                 : c->enc == PROC2 ? k->procbased2 : c->enc == EXIT ? k->true_exit : k->true_entry;
    if (c->enc == TERTIARY_VM_EXEC_CONTROL) {
        *must1 = 0;
        *may1 = k->procbased3;
        return;
    }
    *must1 = (uint32_t)msr;
    *may1 = msr >> 32;
}

static void check_control_bit(const char *profile, const struct vmx_caps *k, const struct ctl_field *c,
                              unsigned bit)
{
    static uint8_t v[VMCS_REGION_SIZE];
    uint64_t must1, may1, b = BIT64(bit);
    bool tert_ok = (k->true_procbased >> 32) & CPU_BASED_ACTIVATE_TERTIARY_CONTROLS;
    struct vmx_check_fail f;
    bool ok;
    field_caps(k, c, &must1, &may1);
    build_good(v, k);
    reset_ram(k);
    if (c->enc == TERTIARY_VM_EXEC_CONTROL && tert_ok)
        wr(v, PROC, rd(v, PROC) | CPU_BASED_ACTIVATE_TERTIARY_CONTROLS);
    if (must1 & b) {
        wr(v, c->enc, rd(v, c->enc) & ~b);
        ok = vmx_check_controls(k, v, &mem, &f);
        ck_assert_msg(!ok && f.id == c->allowed0 && f.stage == VMX_STAGE_CONTROLS,
                      "%s: clearing must-be-1 %s bit %u: %s", profile, c->name, bit, ok ? "passed" : vmx_check_name(f.id));
    } else if (!(may1 & b)) {
        wr(v, c->enc, rd(v, c->enc) | b);
        ok = vmx_check_controls(k, v, &mem, &f);
        if (c->enc == TERTIARY_VM_EXEC_CONTROL && !tert_ok) {
            /* Not activated: the tertiary field is not checked at all. */
            ck_assert_msg(ok, "%s: tertiary bit %u without activate tertiary controls: %s", profile, bit,
                          vmx_check_name(f.id));
            return;
        }
        ck_assert_msg(!ok && f.id == c->allowed1 && f.stage == VMX_STAGE_CONTROLS,
                      "%s: setting forbidden %s bit %u: %s", profile, c->name, bit, ok ? "passed" : vmx_check_name(f.id));
    } else {
        /* Either setting is allowed: flipping it never fails the capability check. */
        wr(v, c->enc, rd(v, c->enc) ^ b);
        ok = vmx_check_controls(k, v, &mem, &f);
        ck_assert_msg(ok || (f.id != c->allowed0 && f.id != c->allowed1), "%s: optional %s bit %u: %s", profile,
                      c->name, bit, vmx_check_name(f.id));
    }
}

START_TEST(test_control_bits)
{
    static const char *const two[] = {"skylake-server", "sapphire-rapids"};
    struct vmx_caps k = caps_of(two[_i]);
    for (size_t i = 0; i < sizeof(ctl_fields) / sizeof(ctl_fields[0]); i++)
        for (unsigned bit = 0; bit < ctl_fields[i].bits; bit++)
            check_control_bit(two[_i], &k, &ctl_fields[i], bit);
}
END_TEST

/* Feature-gated controls differ between the two profiles, both ways. */
START_TEST(test_feature_gated_controls)
{
    static uint8_t v[VMCS_REGION_SIZE];
    struct vmx_caps skx = caps_of("skylake-server"), spr = caps_of("sapphire-rapids");
    struct vmx_check_fail f;
    /* load IA32_PKRS (PKS): sapphire-rapids only. */
    build_good(v, &spr);
    wr(v, ENTRY, rd(v, ENTRY) | VM_ENTRY_LOAD_IA32_PKRS);
    wr(v, EXIT, rd(v, EXIT) | VM_EXIT_LOAD_IA32_PKRS);
    ck_assert(vmx_check_controls(&spr, v, &mem, &f));
    ck_assert(!vmx_check_controls(&skx, v, &mem, &f));
    ck_assert_int_eq(f.id, VMX_CHECK_EXIT_ALLOWED1);
    /* activate tertiary + virtualize IA32_SPEC_CTRL: sapphire-rapids only. */
    build_good(v, &spr);
    wr(v, PROC, rd(v, PROC) | CPU_BASED_ACTIVATE_TERTIARY_CONTROLS);
    wr(v, TERTIARY_VM_EXEC_CONTROL, TERTIARY_EXEC_VIRT_SPEC_CTRL);
    ck_assert(vmx_check_controls(&spr, v, &mem, &f));
    ck_assert(!vmx_check_controls(&skx, v, &mem, &f));
    ck_assert_int_eq(f.id, VMX_CHECK_CTL_PROC_ALLOWED1);
    /* mode-based execute control (MBEC): icelake and later. */
    build_good(v, &spr);
    wr(v, PROC2, rd(v, PROC2) | SECONDARY_EXEC_MODE_BASED_EPT_EXEC);
    ck_assert(vmx_check_controls(&spr, v, &mem, &f));
    ck_assert(!vmx_check_controls(&skx, v, &mem, &f));
    ck_assert_int_eq(f.id, VMX_CHECK_CTL_PROC2_RESERVED);
}
END_TEST

/* Secondary controls are not checked (and act as 0) unless activated. */
START_TEST(test_secondary_ignored_when_not_activated)
{
    static uint8_t v[VMCS_REGION_SIZE];
    struct vmx_caps k = caps_of("sapphire-rapids");
    struct vmx_check_fail f;
    build_good(v, &k);
    wr(v, PROC, rd(v, PROC) & ~CPU_BASED_ACTIVATE_SECONDARY_CONTROLS);
    wr(v, PROC2, 0xFFFFFFFF);
    ck_assert_msg(vmx_check_controls(&k, v, &mem, &f), "%s", vmx_check_name(f.id));
}
END_TEST

/* Without IA32_VMX_BASIC[55] the legacy MSRs apply: CR3-load exiting is must-be-1. */
START_TEST(test_legacy_control_msrs)
{
    static uint8_t v[VMCS_REGION_SIZE];
    struct vmx_caps k = caps_of("sapphire-rapids");
    struct vmx_check_fail f;
    build_good(v, &k);
    wr(v, PROC, rd(v, PROC) & ~CPU_BASED_CR3_LOAD_EXITING);
    ck_assert(vmx_check_controls(&k, v, &mem, &f));
    k.basic &= ~VMX_BASIC_TRUE_CTLS;
    wr(v, PROC, rd(v, PROC) | (uint32_t)k.procbased);
    wr(v, PIN, rd(v, PIN) | (uint32_t)k.pinbased);
    wr(v, EXIT, rd(v, EXIT) | (uint32_t)k.exit);
    wr(v, ENTRY, rd(v, ENTRY) | (uint32_t)k.entry);
    ck_assert_msg(vmx_check_controls(&k, v, &mem, &f), "%s", vmx_check_name(f.id));
    wr(v, PROC, rd(v, PROC) & ~CPU_BASED_CR3_LOAD_EXITING);
    ck_assert(!vmx_check_controls(&k, v, &mem, &f));
    ck_assert_int_eq(f.id, VMX_CHECK_CTL_PROC_ALLOWED0);
    ck_assert_uint_eq(f.value, CPU_BASED_CR3_LOAD_EXITING);
}
END_TEST

/* ---- Boundary positives ------------------------------------------------------------ */

struct pos {
    const char *what;
    const char *profile; /* NULL: permissive capabilities */
    unsigned flags;
    struct mut m[MAX_MUTS];
};

#define P(what, profile, flags, ...) {(what), (profile), (flags), {__VA_ARGS__}}

static const struct pos positives[] = {
    P("CR3-target count = IA32_VMX_MISC[24:16]", "sapphire-rapids", 0, SET(CR3_TARGET_COUNT, 4)),
    P("EPTP memory type UC", "sapphire-rapids", 0, SET(EPT_POINTER, EPTP_GOOD_BASE | VMX_EPTP_PWL_4 | VMX_EPTP_MT_UC)),
    P("5-level EPTP with IA32_VMX_EPT_VPID_CAP[7]", "sapphire-rapids", 0,
      SET(EPT_POINTER, EPTP_GOOD_BASE | VMX_EPTP_PWL_5 | VMX_EPTP_MT_WB)),
    P("5-level EPTP on icelake", "icelake-server", 0, SET(EPT_POINTER, EPTP_GOOD_BASE | VMX_EPTP_PWL_5 | VMX_EPTP_MT_WB)),
    P("EPT A/D with IA32_VMX_EPT_VPID_CAP[21]", "skylake-server", 0, OR(EPT_POINTER, VMX_EPTP_AD_ENABLE_BIT)),
    P("EPTP supervisor shadow-stack bit with IA32_VMX_EPT_VPID_CAP[23]", NULL, 0, OR(EPT_POINTER, VMX_EPTP_SSS_BIT)),
    P("EPTP address just below MAXPHYADDR", "skylake-server", 0, SET(EPT_POINTER, (BIT64(46) - 0x1000) | 0x1E)),
    P("MSR-load area ending at 2^MAXPHYADDR - 1", "sapphire-rapids", 0, SET(VM_ENTRY_MSR_LOAD_COUNT, 2),
      SET(VM_ENTRY_MSR_LOAD_ADDR, BIT64(46) - 32)),
    P("MSR-store count 0 ignores the address", "sapphire-rapids", 0, SET(VM_EXIT_MSR_STORE_ADDR, 0x7)),
    P("TPR threshold = VTPR[7:4]", NULL, 0, OR(PROC, CPU_BASED_TPR_SHADOW), SET(VIRTUAL_APIC_PAGE_ADDR, VAPIC_PA),
      SET(TPR_THRESHOLD, VTPR_VALUE >> 4)),
    P("TPR threshold above VTPR with APIC-access virtualization", NULL, 0, OR(PROC, CPU_BASED_TPR_SHADOW),
      SET(VIRTUAL_APIC_PAGE_ADDR, VAPIC_PA), OR(PROC2, SECONDARY_EXEC_VIRTUALIZE_APIC_ACCESSES),
      SET(APIC_ACCESS_ADDR, 0xFEE00000), SET(TPR_THRESHOLD, 0xF)),
    P("posted interrupts fully configured", NULL, 0, OR(PIN, PIN_BASED_POSTED_INTR | PIN_BASED_EXT_INTR_MASK),
      OR(PROC, CPU_BASED_TPR_SHADOW), SET(VIRTUAL_APIC_PAGE_ADDR, VAPIC_PA), OR(PROC2, SECONDARY_EXEC_VIRTUAL_INTR_DELIVERY),
      OR(EXIT, VM_EXIT_ACK_INTR_ON_EXIT), SET(POSTED_INTR_NV, 0xF2), SET(POSTED_INTR_DESC_ADDR, 0x9040)),
    P("#PF injected with error code", "sapphire-rapids", 0, SET(INFO, INJ(INTR_TYPE_HARD_EXCEPTION, X86_PF) | INTR_INFO_DELIVER_CODE_MASK),
      SET(VM_ENTRY_EXCEPTION_ERROR_CODE, 0x8000)),
    P("#UD with error code when IA32_VMX_BASIC[56] = 1", "sapphire-rapids", 0,
      SET(INFO, INJ(INTR_TYPE_HARD_EXCEPTION, X86_UD) | INTR_INFO_DELIVER_CODE_MASK)),
    P("#CP with error code on a CET processor", NULL, F_ERRCODE_CC,
      SET(INFO, INJ(INTR_TYPE_HARD_EXCEPTION, X86_CP) | INTR_INFO_DELIVER_CODE_MASK)),
    P("#GP with error code, IA32_VMX_BASIC[56] = 0", NULL, F_ERRCODE_CC,
      SET(INFO, INJ(INTR_TYPE_HARD_EXCEPTION, X86_GP) | INTR_INFO_DELIVER_CODE_MASK)),
    P("#DF with error code, unrestricted guest, CR0.PE = 1", NULL, F_ERRCODE_CC, OR(PROC2, SECONDARY_EXEC_UNRESTRICTED_GUEST),
      SET(INFO, INJ(INTR_TYPE_HARD_EXCEPTION, X86_DF) | INTR_INFO_DELIVER_CODE_MASK)),
    P("software interrupt, instruction length 15", "sapphire-rapids", 0, SET(INFO, INJ(INTR_TYPE_SOFT_INTR, 0x80)),
      SET(VM_ENTRY_INSTRUCTION_LEN, 15)),
    P("software exception, length 0 with IA32_VMX_MISC[30]", "sapphire-rapids", 0,
      SET(INFO, INJ(INTR_TYPE_SOFT_EXCEPTION, X86_BP)), SET(VM_ENTRY_INSTRUCTION_LEN, 0)),
    P("pending MTF (other event, vector 0)", "sapphire-rapids", 0, SET(INFO, INJ(INTR_TYPE_OTHER_EVENT, 0))),
    P("external interrupt with RFLAGS.IF = 1", "sapphire-rapids", 0, SET(INFO, INJ(INTR_TYPE_EXT_INTR, 0x30)),
      OR(GUEST_RFLAGS, X86_RFLAGS_IF)),
    P("NMI into HLT", "sapphire-rapids", 0, SET(GUEST_ACTIVITY_STATE, GUEST_ACTIVITY_HLT), SET(INFO, INJ(INTR_TYPE_NMI_INTR, X86_NMI))),
    P("#MC into shutdown", "sapphire-rapids", 0, SET(GUEST_ACTIVITY_STATE, GUEST_ACTIVITY_SHUTDOWN),
      SET(INFO, INJ(INTR_TYPE_HARD_EXCEPTION, X86_MC))),
    P("NMI with NMI blocking, virtual NMIs off", "sapphire-rapids", 0, SET(GUEST_INTERRUPTIBILITY_INFO, GUEST_INTR_STATE_NMI),
      SET(INFO, INJ(INTR_TYPE_NMI_INTR, X86_NMI))),
    P("STI blocking, TF = 1, BS = 1", "sapphire-rapids", 0, SET(GUEST_INTERRUPTIBILITY_INFO, GUEST_INTR_STATE_STI),
      OR(GUEST_RFLAGS, X86_RFLAGS_IF | X86_RFLAGS_TF), SET(GUEST_PENDING_DBG_EXCEPTIONS, PENDING_BS | 1)),
    P("BS without blocking is not checked", "sapphire-rapids", 0, SET(GUEST_PENDING_DBG_EXCEPTIONS, PENDING_BS)),
    P("guest RIP 0000_8000_0000_0000: bits 63:48 identical", "skylake-server", 0, SET(GUEST_RIP, 0x0000800000000000ull)),
    P("guest RIP 57-bit with LA57 processor", "sapphire-rapids", 0, SET(GUEST_RIP, 0x00FF000000000000ull)),
    P("host RIP 57-bit canonical with host CR4.LA57", "sapphire-rapids", 0, OR(HOST_CR4, X86_CR4_LA57),
      SET(HOST_RIP, 0xFF7FFFFF81000000ull)),
    P("host FS base canonical for 57 bits on an LA57 processor", "sapphire-rapids", 0, SET(HOST_FS_BASE, 0x00FF000000000000ull)),
    P("guest compatibility mode (IA-32e, CS.L = 0)", "sapphire-rapids", 0, SET(GUEST_CS_AR_BYTES, 0xC09B)),
    P("unusable LDTR with garbage", "sapphire-rapids", 0, SET(GUEST_LDTR_AR_BYTES, X86_AR_UNUSABLE | 0xFFFF),
      SET(GUEST_LDTR_SELECTOR, 0xFFFF), SET(GUEST_LDTR_BASE, NONCANON)),
    P("unusable DS/ES with base above 4G", "sapphire-rapids", 0, SET(GUEST_DS_AR_BYTES, X86_AR_UNUSABLE),
      SET(GUEST_DS_BASE, BIT64(40)), SET(GUEST_ES_AR_BYTES, X86_AR_UNUSABLE), SET(GUEST_ES_SELECTOR, 3)),
    P("conforming CS with DPL not above SS.DPL", "sapphire-rapids", 0, SET(GUEST_CS_AR_BYTES, 0xA09F)),
    P("32-bit PAE guest with valid PDPTEs", "sapphire-rapids", F_GUEST32, SET(GUEST_PDPTR0, 0x5001), SET(GUEST_PDPTR1, 0x6001),
      SET(GUEST_PDPTR2, 0x3FFFFFFF001ull), SET(GUEST_PDPTR3, 0)),
    P("PDPTE reserved bits ignored without EPT", "sapphire-rapids", F_GUEST32, CLR(PROC2, SECONDARY_EXEC_ENABLE_EPT),
      SET(GUEST_PDPTR0, 0x5001 | BIT64(1))),
    P("not-present PDPTE with reserved bits", "sapphire-rapids", F_GUEST32, SET(GUEST_PDPTR0, 0x5000 | BIT64(1))),
    P("virtual-8086 guest", "sapphire-rapids", F_V86, NOP),
    P("real-mode guest with unrestricted guest", "sapphire-rapids", F_REALMODE, NOP),
    P("protected-mode guest, paging off, unrestricted guest", "sapphire-rapids", F_GUEST32,
      OR(PROC2, SECONDARY_EXEC_UNRESTRICTED_GUEST), CLR(GUEST_CR0, X86_CR0_PG)),
    P("VMCS link pointer to a valid region", "sapphire-rapids", 0, SET(VMCS_LINK_POINTER, LINK_PA)),
    P("VMCS link pointer to a shadow VMCS with VMCS shadowing", NULL, F_LINK_SHADOW, SET(VMCS_LINK_POINTER, LINK_PA),
      OR(PROC2, SECONDARY_EXEC_SHADOW_VMCS), SET(VMREAD_BITMAP, 0x9000), SET(VMWRITE_BITMAP, 0xA000)),
    P("VMCS link pointer = current VMCS in SMM without entry to SMM", NULL, F_SMM | F_CURRENT, SET(VMCS_LINK_POINTER, LINK_PA)),
    P("entry to SMM from SMM with SMI blocking", NULL, F_SMM, OR(ENTRY, VM_ENTRY_SMM),
      SET(GUEST_INTERRUPTIBILITY_INFO, GUEST_INTR_STATE_SMI)),
    P("SMI blocking in SMM", NULL, F_SMM, SET(GUEST_INTERRUPTIBILITY_INFO, GUEST_INTR_STATE_SMI)),
    P("deactivate dual-monitor treatment in SMM", NULL, F_SMM, OR(ENTRY, VM_ENTRY_DEACT_DUAL_MONITOR)),
    P("load IA32_PKRS with bits 31:0 set", "sapphire-rapids", 0, OR(ENTRY, VM_ENTRY_LOAD_IA32_PKRS),
      OR(EXIT, VM_EXIT_LOAD_IA32_PKRS), SET(GUEST_IA32_PKRS, 0xFFFFFFFF), SET(HOST_IA32_PKRS, 0xFFFFFFFF)),
    P("load debug controls", "sapphire-rapids", 0, OR(ENTRY, VM_ENTRY_LOAD_DEBUG_CONTROLS), SET(GUEST_IA32_DEBUGCTL, 3),
      SET(GUEST_DR7, 0xFFFFFFFF)),
    P("EFER.LME != LMA while CR0.PG = 0", NULL, F_REALMODE, SET(GUEST_IA32_EFER, X86_EFER_LME)),
    P("CET state loaded, valid", NULL, 0, OR(ENTRY, VM_ENTRY_LOAD_CET_STATE), OR(EXIT, VM_EXIT_LOAD_CET_STATE),
      SET(GUEST_SSP, 0x0000FFFFFFFFF000ull), SET(GUEST_S_CET, BIT64(10)), SET(HOST_SSP, 0xFFFFFFFFFFFFF000ull),
      OR(GUEST_CR4, X86_CR4_CET)),
    P("guest SSP with bits 63:57 identical but not canonical", NULL, 0, OR(ENTRY, VM_ENTRY_LOAD_CET_STATE),
      SET(GUEST_SSP, 0x0100000000000000ull)),
    P("TSC scaling with multiplier 1", NULL, 0, OR(PROC2, SECONDARY_EXEC_TSC_SCALING), SET(TSC_MULTIPLIER, 1)),
    P("BNDCFGS enabled with canonical base", NULL, 0, OR(ENTRY, VM_ENTRY_LOAD_BNDCFGS), SET(GUEST_BNDCFGS, 0xFFFF800000001003ull)),
};

#define NPOSITIVES (sizeof(positives) / sizeof(positives[0]))

START_TEST(test_positive)
{
    static uint8_t v[VMCS_REGION_SIZE];
    const struct pos *p = &positives[_i];
    struct vec t = {.flags = p->flags};
    struct vmx_caps k;
    struct vmx_entry_env env;
    setup_vector(&t, &k, v, &env);
    if (p->profile) {
        k = caps_of(p->profile);
        tweak_caps(&k, p->flags);
        build_good(v, &k);
        reset_ram(&k);
        if (p->flags & F_GUEST32)
            make_guest32(v);
        if (p->flags & F_V86)
            make_v86(v);
        if (p->flags & F_REALMODE)
            make_realmode(v);
    }
    for (int i = 0; i < MAX_MUTS; i++)
        apply(v, &p->m[i]);
    assert_passes(p->what, &k, v, &env);
}
END_TEST

/* A 32-bit host (VM entry outside IA-32e mode) passes the host-state checks. */
START_TEST(test_host32_passes)
{
    static uint8_t v[VMCS_REGION_SIZE];
    struct vmx_caps k = caps_of("sapphire-rapids");
    struct vmx_entry_env env = VMX_ENTRY_ENV_DEFAULT;
    struct vmx_check_fail f;
    build_good(v, &k);
    make_host32(v);
    env.host_in_ia32e = false;
    ck_assert_msg(vmx_check_controls_env(&k, v, &mem, &env, &f), "%s", vmx_check_name(f.id));
    ck_assert_msg(vmx_check_host_state_env(&k, v, &env, &f), "%s", vmx_check_name(f.id));
    ck_assert_msg(vmx_check_guest_state_env(&k, v, &mem, &env, &f), "%s", vmx_check_name(f.id));
    /* The same VMCS from 64-bit mode: the host must be 64-bit. */
    ck_assert(!vmx_check_host_state(&k, v, &f));
    ck_assert_int_eq(f.id, VMX_CHECK_HOST_ADDR_SIZE_IN_IA32E);
}
END_TEST

/* The offending value is recorded (KVM's CC() records only the condition). */
START_TEST(test_failure_value)
{
    static uint8_t v[VMCS_REGION_SIZE];
    struct vmx_caps k = caps_of("sapphire-rapids");
    struct vmx_check_fail f;
    build_good(v, &k);
    wr(v, PIN, rd(v, PIN) | PIN_BASED_POSTED_INTR | BIT64(30));
    ck_assert(!vmx_check_controls(&k, v, &mem, &f));
    ck_assert_int_eq(f.id, VMX_CHECK_CTL_PIN_ALLOWED1);
    ck_assert_uint_eq(f.value, PIN_BASED_POSTED_INTR | BIT64(30));
    build_good(v, &k);
    wr(v, GUEST_RFLAGS, 0x8002);
    ck_assert(!vmx_check_guest_state(&k, v, &mem, &f));
    ck_assert_int_eq(f.id, VMX_CHECK_GUEST_RFLAGS_RESERVED);
    ck_assert_uint_eq(f.value, 0x8002);
    ck_assert_uint_eq(f.qualification, ENTRY_FAIL_DEFAULT);
    ck_assert_int_eq(f.stage, VMX_STAGE_GUEST);
}
END_TEST

static Suite *vmx_checks_suite(void)
{
    Suite *s = suite_create("vmx_checks");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_check_table);
    tcase_add_test(tc, test_every_id_has_a_vector);
    suite_add_tcase(s, tc);

    tc = tcase_create("good");
    tcase_add_loop_test(tc, test_good_vmcs_passes, 0, 4);
    tcase_add_test(tc, test_minimal_profile_rejects_ept);
    tcase_add_test(tc, test_host32_passes);
    tcase_add_test(tc, test_failure_value);
    suite_add_tcase(s, tc);

    tc = tcase_create("vectors");
    tcase_add_loop_test(tc, test_vector_base_passes, 0, (int)NVECTORS);
    tcase_add_loop_test(tc, test_vector, 0, (int)NVECTORS);
    suite_add_tcase(s, tc);

    tc = tcase_create("controls");
    tcase_add_loop_test(tc, test_control_bits, 0, 2);
    tcase_add_test(tc, test_feature_gated_controls);
    tcase_add_test(tc, test_secondary_ignored_when_not_activated);
    tcase_add_test(tc, test_legacy_control_msrs);
    suite_add_tcase(s, tc);

    tc = tcase_create("positives");
    tcase_add_loop_test(tc, test_positive, 0, (int)NPOSITIVES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(vmx_checks_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
