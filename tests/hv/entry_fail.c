/*
 * VM-entry failures as a hypervisor sees them (SDM Vol. 3C chapter 27,
 * §31.4 VM-instruction errors):
 *   - basic checks: VMLAUNCH/VMRESUME without a current VMCS (VMfailInvalid),
 *     VMRESUME of a clear VMCS (error 5), VMLAUNCH of a launched one (4);
 *   - checks on the controls (§27.2.1, VMfailValid 7): every bit of every
 *     control field that the TRUE capability MSRs fix (a must-be-0 bit set, a
 *     must-be-1 bit cleared), and a few field checks;
 *   - checks on the host state (§27.2.2-27.2.4, VMfailValid 8);
 *   - checks on the guest state (§27.3.1): a VM-entry failure exit with
 *     reason 33 | bit 31 (qualification 4 for the VMCS link pointer);
 *   - MSR loading (§27.4): reason 34 | bit 31, qualification = the failing
 *     entry's number (from 1);
 *   - after a failure exit the host resumes at HOST_RIP with the host state
 *     of the VMCS (§27.8).
 *
# EXPECT-OUT: PASS entry_baseline_ok
# EXPECT-OUT: PASS vmlaunch_without_current_vmcs_fails_invalid
# EXPECT-OUT: PASS vmresume_clear_vmcs_error_5
# EXPECT-OUT: PASS vmlaunch_launched_vmcs_error_4
# EXPECT-OUT: PASS ctl_pin_reserved_bits
# EXPECT-OUT: PASS ctl_proc_reserved_bits
# EXPECT-OUT: PASS ctl_proc2_reserved_bits
# EXPECT-OUT: PASS ctl_exit_reserved_bits
# EXPECT-OUT: PASS ctl_entry_reserved_bits
# EXPECT-OUT: PASS ctl_cr3_target_count_too_big
# EXPECT-OUT: PASS ctl_io_bitmap_unaligned
# EXPECT-OUT: PASS ctl_msr_bitmap_unaligned
# EXPECT-OUT: PASS ctl_entry_msr_load_addr_unaligned
# EXPECT-OUT: PASS ctl_entry_intr_type_reserved
# EXPECT-OUT: PASS host_cr0_pe_clear
# EXPECT-OUT: PASS host_cr0_pg_clear
# EXPECT-OUT: PASS host_cr4_vmxe_clear
# EXPECT-OUT: PASS host_cs_selector_rpl
# EXPECT-OUT: PASS host_tr_selector_null
# EXPECT-OUT: PASS host_rip_noncanonical
# EXPECT-OUT: PASS host_gdtr_base_noncanonical
# EXPECT-OUT: PASS guest_cr0_ne_clear
# EXPECT-OUT: PASS guest_cr4_vmxe_clear
# EXPECT-OUT: PASS guest_rflags_bit1_clear
# EXPECT-OUT: PASS guest_rflags_reserved_bit_set
# EXPECT-OUT: PASS guest_cs_access_rights_data_segment
# EXPECT-OUT: PASS guest_cs_access_rights_not_present
# EXPECT-OUT: PASS guest_vmcs_link_pointer_bad_revision
# EXPECT-OUT: PASS host_state_loaded_after_failure_exit
# EXPECT-OUT: PASS msr_load_reserved_bits_entry_number
# EXPECT-OUT: PASS msr_load_fs_base_entry_number
# EXPECT-OUT: PASS msr_load_unknown_msr_entry_number
# EXPECT-OUT: PASS msr_load_first_entry_bad
# EXPECT-OUT: PASS entry_after_failures_ok
# EXPECT-EXIT: 1
 */
#include "guest.h"

static void g_nothing(void *a)
{
    (void)a;
    g_val[0] = 0x600d;
}

/* Fresh context; the caller changes fields, then calls attempt(). */
static void fresh(void)
{
    exc_clear();
    memset((void *)g_val, 0, sizeof g_val);
    vmx_ctx_init(&ctx, g_nothing, NULL, NULL);
}

/* VMLAUNCH must fail with VMfailValid(err) and the guest must not have run. */
static bool expect_vmfail(unsigned err, const char *what)
{
    vmx_enter(&ctx);
    bool ok = CHECK(ctx.vmfail == VMFAIL_VALID && ctx.insn_error == err, " %s: want VMfailValid(%u), got %s", what,
                    err, vmx_exit_str(&ctx));
    CHECK(g_val[0] == 0, " %s: the guest ran", what);
    return ok;
}

/* VMLAUNCH must end in a VM-entry failure exit with this basic reason and qualification. */
static bool expect_entry_fail_exit(unsigned reason, uint64_t qual, const char *what)
{
    vmx_enter(&ctx);
    bool ok = CHECK(ctx.vmfail == VMSUCCEED && ctx.exit_reason == (reason | (uint32_t)EXIT_REASON_FAILED_ENTRY),
                    " %s: want exit 0x%x, got %s", what, reason | (uint32_t)EXIT_REASON_FAILED_ENTRY,
                    vmx_exit_str(&ctx));
    if (ok)
        CHECK(ctx.exit_qual == qual, " %s: qualification %lu, want %lu", what, ctx.exit_qual, qual);
    CHECK(g_val[0] == 0, " %s: the guest ran", what);
    return ok;
}

/* ---- Basic checks (§27.1) -------------------------------------------------------------- */

static void test_basic(void)
{
    fresh();
    vmx_enter(&ctx);
    CHECK(vmx_guest_done(&ctx) && g_val[0] == 0x600d, " %s", vmx_exit_str(&ctx));
    report_checks("entry_baseline_ok");

    /* VMCLEAR of the current VMCS leaves none current: VMLAUNCH → VMfailInvalid (CF = 1). */
    fresh();
    vmclear((uint64_t)(uintptr_t)ctx.vmcs);
    vmx_enter(&ctx);
    CHECK(ctx.vmfail == VMFAIL_INVALID, " %s", vmx_exit_str(&ctx));
    CHECK(g_val[0] == 0, " the guest ran");
    report_checks("vmlaunch_without_current_vmcs_fails_invalid");

    fresh();
    ctx.launched = true; /* VMRESUME */
    expect_vmfail(VMXERR_VMRESUME_NONLAUNCHED, "VMRESUME of a clear VMCS");
    report_checks("vmresume_clear_vmcs_error_5");

    fresh();
    vmx_enter(&ctx);
    if (CHECK(vmx_guest_done(&ctx), " first launch: %s", vmx_exit_str(&ctx))) {
        g_val[0] = 0;
        ctx.launched = false; /* VMLAUNCH again */
        expect_vmfail(VMXERR_VMLAUNCH_NONCLEAR, "VMLAUNCH of a launched VMCS");
    }
    report_checks("vmlaunch_launched_vmcs_error_4");
}

/* ---- Control fields against the capability MSRs (§27.2.1, Appendix A.3-A.5) --------------- */

struct ctl_field {
    const char *name;
    uint32_t field, msr;
    uint32_t *base;
};

static void test_ctl_bits(void)
{
    bool true_ctls = (rdmsr(MSR_IA32_VMX_BASIC) & VMX_BASIC_TRUE_CTLS) != 0;
    fresh(); /* for the base values */
    uint32_t base[5] = {ctx.pin, ctx.proc, ctx.proc2, ctx.exit_ctl, ctx.entry_ctl};
    const struct ctl_field f[] = {
        {"ctl_pin_reserved_bits", PIN_BASED_VM_EXEC_CONTROL,
         true_ctls ? MSR_IA32_VMX_TRUE_PINBASED_CTLS : MSR_IA32_VMX_PINBASED_CTLS, &base[0]},
        {"ctl_proc_reserved_bits", CPU_BASED_VM_EXEC_CONTROL,
         true_ctls ? MSR_IA32_VMX_TRUE_PROCBASED_CTLS : MSR_IA32_VMX_PROCBASED_CTLS, &base[1]},
        {"ctl_proc2_reserved_bits", SECONDARY_VM_EXEC_CONTROL, MSR_IA32_VMX_PROCBASED_CTLS2, &base[2]},
        {"ctl_exit_reserved_bits", VM_EXIT_CONTROLS, true_ctls ? MSR_IA32_VMX_TRUE_EXIT_CTLS : MSR_IA32_VMX_EXIT_CTLS,
         &base[3]},
        {"ctl_entry_reserved_bits", VM_ENTRY_CONTROLS,
         true_ctls ? MSR_IA32_VMX_TRUE_ENTRY_CTLS : MSR_IA32_VMX_ENTRY_CTLS, &base[4]},
    };
    CHECK(ctx.proc & CPU_SECONDARY, " secondary controls are not active: the proc2 bits would not be checked");
    for (unsigned i = 0; i < ARRAY_SIZE(f); i++) {
        uint64_t caps = rdmsr(f[i].msr);
        uint32_t must1 = (uint32_t)caps, may1 = (uint32_t)(caps >> 32);
        unsigned tested = 0;
        for (unsigned b = 0; b < 32; b++) {
            uint32_t bit = 1u << b, val;
            if (!(may1 & bit))
                val = *f[i].base | bit; /* must be 0: set it */
            else if (must1 & bit)
                val = *f[i].base & ~bit; /* must be 1: clear it */
            else
                continue;
            tested++;
            fresh();
            vmcs_write(f[i].field, val);
            char what[64];
            snprintf(what, sizeof what, "bit %u (%s)", b, (may1 & bit) ? "must be 1, cleared" : "must be 0, set");
            expect_vmfail(VMXERR_ENTRY_BAD_CONTROL, what);
        }
        report_info("%s: MSR 0x%x = 0x%lx, %u fixed bits tested", f[i].name, f[i].msr, caps, tested);
        report_checks(f[i].name);
    }
}

static void test_ctl_fields(void)
{
    uint64_t misc = rdmsr(MSR_IA32_VMX_MISC);
    unsigned max_targets = (misc >> 16) & 0x1FF;
    fresh();
    vmcs_write(CR3_TARGET_COUNT, max_targets + 1);
    expect_vmfail(VMXERR_ENTRY_BAD_CONTROL, "CR3-target count above IA32_VMX_MISC[24:16]");
    report_checks("ctl_cr3_target_count_too_big");

    /* §27.2.1.1: with "use I/O bitmaps", bits 11:0 of each bitmap address are 0. */
    exc_clear();
    memset((void *)g_val, 0, sizeof g_val);
    vmx_ctx_init(&ctx, g_nothing, NULL, &(struct vmx_extras){.proc = CPU_IO_BITMAPS});
    vmcs_write(IO_BITMAP_B, (uint64_t)(uintptr_t)ctx.io_bitmap_b + 0x10);
    expect_vmfail(VMXERR_ENTRY_BAD_CONTROL, "I/O bitmap B not 4-KiB aligned");
    report_checks("ctl_io_bitmap_unaligned");

    exc_clear();
    memset((void *)g_val, 0, sizeof g_val);
    vmx_ctx_init(&ctx, g_nothing, NULL, &(struct vmx_extras){.proc = CPU_MSR_BITMAPS});
    vmcs_write(MSR_BITMAP, (uint64_t)(uintptr_t)ctx.msr_bitmap + 8);
    expect_vmfail(VMXERR_ENTRY_BAD_CONTROL, "MSR bitmap not 4-KiB aligned");
    report_checks("ctl_msr_bitmap_unaligned");

    /* §27.2.1.3: with a nonzero VM-entry MSR-load count, bits 3:0 of the address are 0. */
    uint8_t *area = alloc_page();
    fresh();
    vmcs_write(VM_ENTRY_MSR_LOAD_COUNT, 1);
    vmcs_write(VM_ENTRY_MSR_LOAD_ADDR, (uint64_t)(uintptr_t)area + 8);
    expect_vmfail(VMXERR_ENTRY_BAD_CONTROL, "VM-entry MSR-load address not 16-byte aligned");
    report_checks("ctl_entry_msr_load_addr_unaligned");

    /* §27.2.1.3: interruption type 1 is reserved. */
    fresh();
    vmcs_write(VM_ENTRY_INTR_INFO_FIELD, INTR_INFO(0x30, 1, 0));
    expect_vmfail(VMXERR_ENTRY_BAD_CONTROL, "VM-entry interruption type 1");
    report_checks("ctl_entry_intr_type_reserved");
}

/* ---- Host state (§27.2.2-§27.2.4) ------------------------------------------------------------- */

static void host_case(const char *name, uint32_t field, uint64_t val)
{
    fresh();
    vmcs_write(field, val);
    expect_vmfail(VMXERR_ENTRY_BAD_HOST_STATE, name);
    report_checks(name);
}

static void test_host_state(void)
{
    uint64_t cr0 = read_cr0(), cr4 = read_cr4();
    /* IA32_VMX_CR0_FIXED0 has PE and PG (PE is needed for PG); IA32_VMX_CR4_FIXED0 has VMXE. */
    CHECK((rdmsr(MSR_IA32_VMX_CR0_FIXED0) & (X86_CR0_PE | X86_CR0_PG)) == (X86_CR0_PE | X86_CR0_PG) &&
              (rdmsr(MSR_IA32_VMX_CR4_FIXED0) & X86_CR4_VMXE),
          " fixed-0 MSRs CR0 0x%lx CR4 0x%lx", rdmsr(MSR_IA32_VMX_CR0_FIXED0), rdmsr(MSR_IA32_VMX_CR4_FIXED0));
    host_case("host_cr0_pe_clear", HOST_CR0, cr0 & ~X86_CR0_PE);
    host_case("host_cr0_pg_clear", HOST_CR0, cr0 & ~X86_CR0_PG);
    host_case("host_cr4_vmxe_clear", HOST_CR4, cr4 & ~X86_CR4_VMXE);
    host_case("host_cs_selector_rpl", HOST_CS_SELECTOR, 0x0b);
    host_case("host_tr_selector_null", HOST_TR_SELECTOR, 0);
    host_case("host_rip_noncanonical", HOST_RIP, 0x0000800000000000ull | (uint64_t)(uintptr_t)hv_vmexit_stub);
    host_case("host_gdtr_base_noncanonical", HOST_GDTR_BASE, 0x8000000000007000ull);
}

/* ---- Guest state (§27.3.1) and the state after a failure exit (§27.8) -------------------------- */

static uint8_t *link_page;

static void guest_case(const char *name, uint32_t field, uint64_t val, uint64_t qual)
{
    fresh();
    vmcs_write(field, val);
    expect_entry_fail_exit(EXIT_INVALID_STATE, qual, name);
    report_checks(name);
}

static void test_guest_state(void)
{
    uint64_t cr0 = read_cr0(), cr4 = read_cr4();
    guest_case("guest_cr0_ne_clear", GUEST_CR0, cr0 & ~X86_CR0_NE, 0);
    guest_case("guest_cr4_vmxe_clear", GUEST_CR4, cr4 & ~X86_CR4_VMXE, 0);
    guest_case("guest_rflags_bit1_clear", GUEST_RFLAGS, 0, 0);
    guest_case("guest_rflags_reserved_bit_set", GUEST_RFLAGS, X86_RFLAGS_FIXED | BIT(15), 0);
    guest_case("guest_cs_access_rights_data_segment", GUEST_CS_AR_BYTES, 0xa093, 0);
    guest_case("guest_cs_access_rights_not_present", GUEST_CS_AR_BYTES, 0xa01b, 0);

    /* §27.3.1.5: a link pointer other than ~0 must reference a VMCS with the right revision → qualification 4. */
    link_page = alloc_page();
    *(uint32_t *)link_page = ((uint32_t)rdmsr(MSR_IA32_VMX_BASIC) & 0x7FFFFFFF) ^ 0x1234;
    guest_case("guest_vmcs_link_pointer_bad_revision", VMCS_LINK_POINTER, (uint64_t)(uintptr_t)link_page, 4);

    /*
     * After a failure exit the processor loads the host state (§27.8): RIP =
     * HOST_RIP (we are back), RFLAGS = 2, CR0/CR3/CR4 from the fields, GS
     * base from HOST_GS_BASE; the VMCS stays current.
     */
    const uint64_t marker = 0xffff800012340000ull;
    fresh();
    vmcs_write(GUEST_RFLAGS, 0);
    vmcs_write(HOST_GS_BASE, marker);
    uint64_t cr3 = read_cr3();
    if (expect_entry_fail_exit(EXIT_INVALID_STATE, 0, "RFLAGS 0")) {
        uint64_t gs = rdmsr(MSR_GS_BASE);
        wrmsr(MSR_GS_BASE, 0);
        CHECK(gs == marker, " GS base 0x%lx, want HOST_GS_BASE 0x%lx", gs, marker);
        CHECK(hv_exit_rflags == X86_RFLAGS_FIXED, " RFLAGS 0x%lx at HOST_RIP", hv_exit_rflags);
        CHECK(read_cr0() == vmcs_read(HOST_CR0) && read_cr3() == cr3 && read_cr4() == vmcs_read(HOST_CR4),
              " CR0 0x%lx CR3 0x%lx CR4 0x%lx", read_cr0(), read_cr3(), read_cr4());
        uint64_t cur = 0;
        vmptrst(&cur);
        CHECK(cur == (uint64_t)(uintptr_t)ctx.vmcs, " current VMCS 0x%lx", cur);
        CHECK(!(ctx.intr_info & INTR_INFO_VALID), " VM-exit interruption info 0x%x", ctx.intr_info);
    }
    report_checks("host_state_loaded_after_failure_exit");
}

/* ---- MSR loading (§27.4) ------------------------------------------------------------------------ */

struct msr_entry {
    uint32_t index, reserved;
    uint64_t value;
};

static void msr_case(const char *name, const struct msr_entry *e, unsigned n, uint64_t qual)
{
    struct msr_entry *area = alloc_page();
    memcpy(area, e, n * sizeof *e);
    fresh();
    vmcs_write(VM_ENTRY_MSR_LOAD_COUNT, n);
    vmcs_write(VM_ENTRY_MSR_LOAD_ADDR, (uint64_t)(uintptr_t)area);
    expect_entry_fail_exit(EXIT_MSR_LOAD_FAIL, qual, name);
    report_checks(name);
}

static void test_msr_load(void)
{
    const struct msr_entry rsvd[] = {
        {MSR_IA32_SYSENTER_CS, 0, 0x11},
        {MSR_IA32_SYSENTER_ESP, 0, 0x22},
        {MSR_IA32_SYSENTER_EIP, 1, 0x33}, /* bits 63:32 of the first quadword are reserved */
    };
    msr_case("msr_load_reserved_bits_entry_number", rsvd, 3, 3);

    const struct msr_entry fs[] = {
        {MSR_IA32_SYSENTER_CS, 0, 0x11},
        {MSR_FS_BASE, 0, 0x1000}, /* FS/GS base cannot be loaded this way (§27.4) */
    };
    msr_case("msr_load_fs_base_entry_number", fs, 2, 2);

    const struct msr_entry unknown[] = {
        {MSR_IA32_SYSENTER_CS, 0, 0x11},
        {MSR_IA32_SYSENTER_ESP, 0, 0x22},
        {MSR_IA32_SYSENTER_EIP, 0, 0x33},
        {0x1FFF, 0, 0}, /* WRMSR would #GP */
    };
    msr_case("msr_load_unknown_msr_entry_number", unknown, 4, 4);

    const struct msr_entry first[] = {{MSR_IA32_SYSENTER_CS, 0xffffffff, 0}};
    msr_case("msr_load_first_entry_bad", first, 1, 1);

    /* A clean VMCS still enters after all these failures. */
    fresh();
    vmx_enter(&ctx);
    CHECK(vmx_guest_done(&ctx) && g_val[0] == 0x600d, " %s", vmx_exit_str(&ctx));
    report_checks("entry_after_failures_ok");
}

void hv_test_main(void)
{
    if (!vmx_enable())
        return;
    test_basic();
    test_ctl_bits();
    test_ctl_fields();
    test_host_state();
    test_guest_state();
    test_msr_load();
}
