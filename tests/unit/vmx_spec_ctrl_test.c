/*
 * "Virtualize IA32_SPEC_CTRL" (src/vmx/spec_ctrl.c):
 *   - the architectural numbers: primary control bit 17, tertiary bit 7,
 *     IA32_VMX_PROCBASED_CTLS3 (492H), fields 2034H / 204AH / 204CH and their
 *     feature gating (SDM Vol. 3C Tables 25-6, 25-8; Vol. 3D A.3.4, Table B-4);
 *   - when the control is in effect (non-root, both activation bits, model);
 *   - RDMSR returns the shadow; WRMSR writes the shadow and merges
 *     (real & mask) | (value & ~mask), vector table;
 *   - a WRMSR is visible to the next RDMSR (the Bochs bug, DESIGN §9);
 *   - VM entry with the control on a model without it: VMfailValid(7) check.
 */
#include <check.h>
#include <string.h>

#include "model/model.h"
#include "msr/msr.h"
#include "vmx/vmcs.h"
#include "vmx/vmx.h"

/* ---- A VMCS in fake guest RAM ------------------------------------------------ */

#define RAM_BASE 0x200000ull
#define VMCS_PA RAM_BASE

static uint8_t ram[VMCS_REGION_SIZE];

static uint8_t *ram_ptr(void *ctx, uint64_t pa, size_t len)
{
    (void)ctx;
    if (pa < RAM_BASE || pa - RAM_BASE > sizeof ram || len > sizeof ram - (pa - RAM_BASE))
        return NULL;
    return ram + (pa - RAM_BASE);
}

static const struct vmx_ops ops = {.ctx = NULL, .ptr = ram_ptr};

static void wr(uint32_t enc, uint64_t val)
{
    ck_assert_msg(vmcs_write(ram, enc, val) == VMXSIM_OK, "VMCS field %#x", enc);
}

static uint64_t rd(uint32_t enc)
{
    uint64_t v = 0;
    ck_assert_msg(vmcs_read(ram, enc, &v) == VMXSIM_OK, "VMCS field %#x", enc);
    return v;
}

static struct cpu_model model_of(const char *spec)
{
    struct cpu_model m;
    char err[160];
    ck_assert_msg(model_parse(spec, &m, err, sizeof err), "%s: %s", spec, err);
    return m;
}

/*
 * A guest running with the current VMCS at VMCS_PA on `spec`; proc and proc3
 * are the primary and tertiary controls, mask/shadow the two fields.
 */
static void guest_on(struct vmx *v, const char *spec, uint32_t proc, uint64_t proc3, uint64_t mask,
                     uint64_t shadow)
{
    struct cpu_model m = model_of(spec);
    vmx_init(v, &m);
    memset(ram, 0, sizeof ram);
    vmcs_region_clear(ram);
    v->in_vmx = true;
    v->current_vmcs = VMCS_PA;
    v->non_root = true;
    wr(CPU_BASED_VM_EXEC_CONTROL, proc);
    wr(TERTIARY_VM_EXEC_CONTROL, proc3);
    wr(IA32_SPEC_CTRL_MASK, mask);
    wr(IA32_SPEC_CTRL_SHADOW, shadow);
}

#define ON ((uint32_t)CPU_BASED_ACTIVATE_TERTIARY_CONTROLS)
#define VIRT TERTIARY_EXEC_VIRT_SPEC_CTRL

/* ---- Numbers ------------------------------------------------------------------- */

START_TEST(test_architectural_numbers)
{
    ck_assert_uint_eq(CPU_BASED_ACTIVATE_TERTIARY_CONTROLS, 1ull << 17);
    ck_assert_uint_eq(TERTIARY_EXEC_VIRT_SPEC_CTRL, 1ull << 7);
    ck_assert_uint_eq(MSR_IA32_VMX_PROCBASED_CTLS3, 0x492);
    ck_assert_uint_eq(MSR_IA32_SPEC_CTRL, 0x48);
    ck_assert_uint_eq(TERTIARY_VM_EXEC_CONTROL, 0x2034);
    ck_assert_uint_eq(IA32_SPEC_CTRL_MASK, 0x204A);
    ck_assert_uint_eq(IA32_SPEC_CTRL_SHADOW, 0x204C);
    /* 64-bit control fields (encoding bits 14:13 = 1, 11:10 = 0) */
    ck_assert_uint_eq(VMCS_FIELD_WIDTH(IA32_SPEC_CTRL_MASK), VMCS_WIDTH_64);
    ck_assert_uint_eq(VMCS_FIELD_TYPE(IA32_SPEC_CTRL_SHADOW), VMCS_TYPE_CONTROL);
    ck_assert_int_eq(vmcs_field_dep(IA32_SPEC_CTRL_MASK), VMCS_DEP_SPEC_CTRL_VIRT);
    ck_assert_int_eq(vmcs_field_dep(IA32_SPEC_CTRL_SHADOW), VMCS_DEP_SPEC_CTRL_VIRT);
    ck_assert_int_eq(vmcs_field_dep(TERTIARY_VM_EXEC_CONTROL), VMCS_DEP_TERTIARY);
}
END_TEST

/* Capabilities and field existence per model (Vol. 3D A.3.2, A.3.4, A.9). */
START_TEST(test_capabilities_per_model)
{
    static const struct {
        const char *spec;
        bool tertiary, virt;
    } rows[] = {
        {"sapphire-rapids", true, true},
        {"sapphire-rapids,-spec_ctrl_virt", true, false},
        {"sapphire-rapids,-spec_ctrl", true, false}, /* the MSR itself gone: nothing to virtualize */
        {"sapphire-rapids,-tertiary_controls", false, false},
        {"icelake-server", false, false},
        {"skylake-server", false, false},
        {"minimal", false, false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct cpu_model m = model_of(rows[i].spec);
        struct vmx_caps k;
        uint64_t v = 0;
        vmx_caps_init(&k, &m);
        bool bit17 = ((k.true_procbased >> 32) & CPU_BASED_ACTIVATE_TERTIARY_CONTROLS) != 0;
        ck_assert_msg(bit17 == rows[i].tertiary, "%s: TRUE_PROCBASED allowed-1 bit 17", rows[i].spec);
        ck_assert_msg(vmx_caps_msr(&k, MSR_IA32_VMX_PROCBASED_CTLS3, &v) == rows[i].tertiary,
                      "%s: IA32_VMX_PROCBASED_CTLS3 present", rows[i].spec);
        if (rows[i].tertiary)
            ck_assert_msg(((v & TERTIARY_EXEC_VIRT_SPEC_CTRL) != 0) == rows[i].virt, "%s: CTLS3 = %#llx",
                          rows[i].spec, (unsigned long long)v);
        ck_assert_msg(((k.vmcs_deps >> VMCS_DEP_SPEC_CTRL_VIRT) & 1) == rows[i].virt, "%s: 204AH/204CH exist",
                      rows[i].spec);
        ck_assert_msg(((k.vmcs_deps >> VMCS_DEP_TERTIARY) & 1) == rows[i].tertiary, "%s: 2034H exists",
                      rows[i].spec);
    }
}
END_TEST

/* ---- When the control is in effect -------------------------------------------- */

START_TEST(test_virtualized_conditions)
{
    static const struct {
        const char *spec;
        bool non_root;
        uint32_t proc;
        uint64_t proc3;
        bool want;
    } rows[] = {
        {"sapphire-rapids", true, ON, VIRT, true},
        {"sapphire-rapids", true, ON, VIRT | TERTIARY_EXEC_IPI_VIRT, true},
        {"sapphire-rapids", false, ON, VIRT, false}, /* root operation: never */
        {"sapphire-rapids", true, 0, VIRT, false},   /* tertiary controls not activated: as if 0 */
        {"sapphire-rapids", true, ON, 0, false},
        {"sapphire-rapids", true, ON, ~VIRT, false},
        {"sapphire-rapids,-spec_ctrl_virt", true, ON, VIRT, false}, /* unsupported: cannot be in effect */
        {"icelake-server", true, ON, VIRT, false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct vmx v;
        guest_on(&v, rows[i].spec, rows[i].proc, rows[i].proc3, 0, 0);
        v.non_root = rows[i].non_root;
        ck_assert_msg(vmx_spec_ctrl_virtualized(&v, &ops) == rows[i].want, "row %zu (%s)", i, rows[i].spec);
    }
    /* No current VMCS */
    struct vmx v;
    guest_on(&v, "sapphire-rapids", ON, VIRT, 0, 0);
    v.current_vmcs = VMX_NO_VMCS;
    ck_assert(!vmx_spec_ctrl_virtualized(&v, &ops));
    /* ... and the accessors are harmless then (callers check first). */
    uint64_t real = 0;
    ck_assert_uint_eq(vmx_spec_ctrl_rdmsr(&v, &ops), 0);
    vmx_spec_ctrl_wrmsr(&v, &ops, SPEC_CTRL_SSBD, SPEC_CTRL_IBRS, &real);
    ck_assert_uint_eq(real, SPEC_CTRL_SSBD);
}
END_TEST

/* ---- RDMSR / WRMSR ------------------------------------------------------------- */

START_TEST(test_rdmsr_returns_shadow)
{
    static const uint64_t shadows[] = {0, SPEC_CTRL_IBRS, SPEC_CTRL_STIBP | SPEC_CTRL_SSBD, 7};
    for (size_t i = 0; i < sizeof shadows / sizeof shadows[0]; i++) {
        struct vmx v;
        guest_on(&v, "sapphire-rapids", ON, VIRT, SPEC_CTRL_SSBD, shadows[i]);
        ck_assert(vmx_spec_ctrl_virtualized(&v, &ops));
        ck_assert_uint_eq(vmx_spec_ctrl_rdmsr(&v, &ops), shadows[i]);
    }
}
END_TEST

/* (current & mask) | (value & ~mask); the shadow takes value unchanged. */
START_TEST(test_wrmsr_vectors)
{
    enum { I = SPEC_CTRL_IBRS, S = SPEC_CTRL_STIBP, B = SPEC_CTRL_SSBD };
    static const struct {
        uint64_t current, mask, value, want;
        const char *what;
    } rows[] = {
        {0, 0, I | S | B, I | S | B, "no mask: the guest owns every bit"},
        {I | S | B, 0, 0, 0, "no mask: the guest clears everything"},
        {I | B, I | B, 0, I | B, "masked bits stay set when the guest writes 0"},
        {I | B, I | B, S, I | S | B, "unmasked bit follows the guest, masked stay set"},
        {0, I, I, 0, "masked bit stays clear when the guest sets it"},
        {I, I | S | B, 0, I, "everything masked: real value unchanged"},
        {S, I | S | B, I | B, S, "everything masked: guest cannot set either"},
        {I | S, S, B, S | B, "mixed: IBRS unmasked (cleared), STIBP masked (kept), SSBD set"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct vmx v;
        uint64_t real = ~0ull;
        guest_on(&v, "sapphire-rapids", ON, VIRT, rows[i].mask, 0x5A5A);
        vmx_spec_ctrl_wrmsr(&v, &ops, rows[i].current, rows[i].value, &real);
        ck_assert_msg(real == rows[i].want, "%s: real %#llx, want %#llx", rows[i].what, (unsigned long long)real,
                      (unsigned long long)rows[i].want);
        ck_assert_msg(rd(IA32_SPEC_CTRL_SHADOW) == rows[i].value, "%s: shadow", rows[i].what);
        ck_assert_msg(rd(IA32_SPEC_CTRL_MASK) == rows[i].mask, "%s: mask changed", rows[i].what);
        ck_assert_uint_eq(vmx_spec_ctrl_merge(rows[i].current, rows[i].mask, rows[i].value), rows[i].want);
    }
}
END_TEST

/* A virtualized WRMSR is what the next RDMSR returns (Bochs leaves the shadow stale). */
START_TEST(test_write_then_read)
{
    struct vmx v;
    uint64_t real = SPEC_CTRL_SSBD;
    guest_on(&v, "sapphire-rapids", ON, VIRT, SPEC_CTRL_SSBD, 0);
    vmx_spec_ctrl_wrmsr(&v, &ops, real, SPEC_CTRL_IBRS, &real);
    ck_assert_uint_eq(vmx_spec_ctrl_rdmsr(&v, &ops), SPEC_CTRL_IBRS);
    ck_assert_uint_eq(real, SPEC_CTRL_IBRS | SPEC_CTRL_SSBD);
    vmx_spec_ctrl_wrmsr(&v, &ops, real, 0, &real);
    ck_assert_uint_eq(vmx_spec_ctrl_rdmsr(&v, &ops), 0);
    ck_assert_uint_eq(real, SPEC_CTRL_SSBD);
}
END_TEST

/*
 * The core's order for a guest WRMSR (the reserved-bit #GP comes from the MSR
 * unit, on EDX:EAX, before either value changes): reserved bits of
 * IA32_SPEC_CTRL on sapphire-rapids are 63:3.
 */
START_TEST(test_reserved_bits_are_the_msr_units)
{
    struct cpu_model m = model_of("sapphire-rapids");
    struct msr_file f;
    msr_reset(&f, &m);
    for (unsigned b = 0; b < 64; b++) {
        uint64_t val = 1ull << b;
        bool ok = msr_check_write(&f, MSR_IA32_SPEC_CTRL, &val) == MSR_OK;
        ck_assert_msg(ok == (b < 3), "bit %u", b);
    }
}
END_TEST

/* ---- VM entry -------------------------------------------------------------------- */

static struct vmx_check_fail entry_controls(const char *spec, bool tertiary, uint64_t proc3)
{
    struct cpu_model m = model_of(spec);
    struct vmx_caps k;
    struct vmx_check_fail f;
    struct vmx_mem mem = {.ctx = NULL, .ptr = ram_ptr};
    vmx_caps_init(&k, &m);
    memset(ram, 0, sizeof ram);
    vmcs_region_clear(ram);
    wr(PIN_BASED_VM_EXEC_CONTROL, (uint32_t)k.true_pinbased);
    wr(CPU_BASED_VM_EXEC_CONTROL, (uint32_t)k.true_procbased | (tertiary ? ON : 0));
    wr(VM_EXIT_CONTROLS, (uint32_t)k.true_exit | VM_EXIT_HOST_ADDR_SPACE_SIZE);
    wr(VM_ENTRY_CONTROLS, (uint32_t)k.true_entry | VM_ENTRY_IA32E_MODE);
    wr(TERTIARY_VM_EXEC_CONTROL, proc3);
    if (vmx_check_controls(&k, ram, &mem, &f))
        f.id = VMX_CHECK_NONE;
    return f;
}

/* SDM Vol. 3C §27.2.1.1: a control whose allowed-1 bit is 0 → VMfailValid(7). */
START_TEST(test_entry_checks)
{
    struct vmx_check_fail f = entry_controls("sapphire-rapids", true, VIRT);
    ck_assert_msg(f.id == VMX_CHECK_NONE, "%s", vmx_check_name(f.id));
    f = entry_controls("sapphire-rapids,-spec_ctrl_virt", true, VIRT);
    ck_assert_int_eq(f.id, VMX_CHECK_CTL_PROC3_RESERVED);
    ck_assert_int_eq(f.stage, VMX_STAGE_CONTROLS);
    f = entry_controls("icelake-server", true, VIRT);
    ck_assert_int_eq(f.id, VMX_CHECK_CTL_PROC_ALLOWED1);
    /* tertiary controls not activated: the field is not checked at all */
    f = entry_controls("sapphire-rapids,-spec_ctrl_virt", false, VIRT);
    ck_assert_msg(f.id == VMX_CHECK_NONE, "%s", vmx_check_name(f.id));
}
END_TEST

static Suite *spec_ctrl_suite(void)
{
    Suite *s = suite_create("vmx_spec_ctrl");
    TCase *t = tcase_create("spec_ctrl");
    tcase_add_test(t, test_architectural_numbers);
    tcase_add_test(t, test_capabilities_per_model);
    tcase_add_test(t, test_virtualized_conditions);
    tcase_add_test(t, test_rdmsr_returns_shadow);
    tcase_add_test(t, test_wrmsr_vectors);
    tcase_add_test(t, test_write_then_read);
    tcase_add_test(t, test_reserved_bits_are_the_msr_units);
    tcase_add_test(t, test_entry_checks);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(spec_ctrl_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
