/*
 * Self-test of the hv library itself, so that a failure elsewhere can be
 * trusted to be vmxsim's: printf formatting, exception recovery in the host
 * (hv_try, ASM_TRY), the capability-MSR adjustment of controls, a guest
 * crash reported through VMCALL, and GPR preservation across a VM exit
 * with the host modifying nothing.
 *
# EXPECT-OUT: PASS lib_snprintf
# EXPECT-OUT: PASS lib_hv_try_catches_host_exception
# EXPECT-OUT: PASS lib_hv_try_nested
# EXPECT-OUT: PASS lib_asm_try
# EXPECT-OUT: PASS lib_adjust_ctl
# EXPECT-OUT: PASS lib_guest_runs_and_finishes
# EXPECT-OUT: PASS lib_guest_crash_reported
# EXPECT-OUT: PASS lib_guest_exception_with_recovery
# EXPECT-OUT: PASS lib_vmxon_in_root_fails_valid_15
# EXPECT-EXIT: 1
 */
#include "guest.h"

static void do_ud(void *a)
{
    (void)a;
    asm volatile("ud2");
}

static void do_gp(void *a)
{
    (void)a;
    wrmsr(0x1FFF, 0); /* unimplemented MSR: #GP(0) */
}

static void do_nothing(void *a)
{
    (void)a;
}

static void do_nested(void *a)
{
    (void)a;
    int inner = hv_try(do_gp, NULL);
    g_val[0] = (uint64_t)inner;
    asm volatile("ud2"); /* caught by the outer hv_try */
}

static void test_printf(void)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%d %u %x %lx %5s|%-3d|%05d %c %%", -12, 34u, 0xabu, (uint64_t)0x123456789, "ab", 7, 42, 'z');
    report("lib_snprintf", strcmp(buf, "-12 34 ab 123456789    ab|7  |00042 z %") == 0, "got \"%s\"", buf);
}

static void test_try(void)
{
    int v1 = hv_try(do_ud, NULL), v2 = hv_try(do_gp, NULL), v3 = hv_try(do_nothing, NULL);
    CHECK(v1 == UD_VECTOR, " #UD: %d", v1);
    CHECK(v2 == GP_VECTOR && exc_last.error_code == 0, " #GP: %d error 0x%lx", v2, exc_last.error_code);
    CHECK(v3 == -1, " no exception: %d", v3);
    report_checks("lib_hv_try_catches_host_exception");

    int outer = hv_try(do_nested, NULL);
    CHECK(g_val[0] == GP_VECTOR && outer == UD_VECTOR, " inner %ld outer %d", (long)g_val[0], outer);
    report_checks("lib_hv_try_nested");

    exc_clear();
    asm volatile(ASM_TRY "ud2\n\t" ASM_TRY_END : : : "memory");
    CHECK(exc_last.vector == UD_VECTOR && exc_resume_rip == 0, " vector %d", exc_last.vector);
    exc_clear();
    asm volatile(ASM_TRY "nop\n\t" ASM_TRY_END : : : "memory");
    CHECK(exc_last.vector == -1 && exc_resume_rip == 0, " vector %d", exc_last.vector);
    report_checks("lib_asm_try");
}

static void test_adjust(void)
{
    uint64_t m = rdmsr(MSR_IA32_VMX_TRUE_PROCBASED_CTLS);
    uint32_t v = vmx_adjust_ctl(MSR_IA32_VMX_TRUE_PROCBASED_CTLS, (uint32_t)CPU_HLT);
    CHECK((v & (uint32_t)m) == (uint32_t)m, " must-be-1 bits missing: 0x%x", v);
    CHECK(!(v & ~(uint32_t)(m >> 32)), " bits not allowed: 0x%x", v);
    CHECK(v & CPU_HLT, " HLT exiting dropped");
    report_checks("lib_adjust_ctl");
}

static void g_ud_unprotected(void *a)
{
    (void)a;
    asm volatile("ud2");
}

static void g_ud_protected(void *a)
{
    (void)a;
    g_val[0] = (uint64_t)hv_try(do_ud, NULL);
}

static void test_guest(void)
{
    start_guest(do_nothing, NULL, NULL);
    CHECK(vmx_guest_done(&ctx) && ctx.exits == 1, " %s", vmx_exit_str(&ctx));
    CHECK(hv_exit_rflags == X86_RFLAGS_FIXED, " RFLAGS at HOST_RIP 0x%lx", hv_exit_rflags);
    report_checks("lib_guest_runs_and_finishes");

    /* An unexpected guest exception comes back as a VMCALL with HV_GUEST_CRASH (RBX = vector). */
    start_guest(g_ud_unprotected, NULL, NULL);
    CHECK(ctx.exit_reason == EXIT_VMCALL && ctx.regs[R_RAX] == HV_GUEST_CRASH && ctx.regs[R_RBX] == UD_VECTOR,
          " %s rbx %lu", vmx_exit_str(&ctx), ctx.regs[R_RBX]);
    report_checks("lib_guest_crash_reported");

    start_guest(g_ud_protected, NULL, NULL);
    CHECK(vmx_guest_done(&ctx) && g_val[0] == UD_VECTOR, " %s, hv_try in the guest: %ld", vmx_exit_str(&ctx),
          (long)g_val[0]);
    report_checks("lib_guest_exception_with_recovery");

    /* VMXON in VMX root operation with a current VMCS: VMfailValid(15). */
    uint64_t cur = 0;
    vmptrst(&cur);
    int st = vmxon(0x1000);
    CHECK(cur != ~0ull && st == VMFAIL_VALID && vmx_insn_error() == VMXERR_VMXON_IN_ROOT, " VMXON: %d error %u", st,
          vmx_insn_error());
    report_checks("lib_vmxon_in_root_fails_valid_15");
}

void hv_test_main(void)
{
    test_printf();
    test_try();
    if (!vmx_enable())
        return;
    test_adjust();
    test_guest();
}
