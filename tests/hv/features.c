/*
 * The CPU feature model as software sees it, on every CPU profile (DESIGN
 * §5: a feature that is off behaves as absent hardware): what CPUID
 * enumerates must agree with
 *   - CR4: MOV to CR4 setting a feature's bit succeeds iff CPUID has it, in
 *     VMX root operation (64-bit) and in a 32-bit paging-off guest
 *     (unrestricted guest), where CR4.LA57 can be set at all (in IA-32e mode
 *     changing it is #GP whatever CPUID says; SDM Vol. 2B MOV CR, Vol. 3A
 *     §2.5, §4.1.1) and CR4.PCIDE cannot (§4.10.1);
 *   - IA32_VMX_CR4_FIXED1 (Vol. 3D A.8): exactly the enumerated CR4 bits;
 *   - MSRs: RDMSR/WRMSR #GP iff the CPUID condition of Vol. 4 Table 2-2 is
 *     false (split-lock MSR_TEST_CTRL from IA32_CORE_CAPABILITIES[5]);
 *   - VMX capabilities: controls that need a CPU feature (load IA32_PKRS,
 *     enable RDTSCP/INVPCID, RDRAND/RDSEED exiting, IA-32e mode guest, PAT)
 *     are allowed-1 iff CPUID enumerates it (Vol. 3C Tables 25-5..25-15).
 * One image, run on each profile by the variants below.
 *
# ARGS: --cpu sapphire-rapids
# EXPECT-OUT: PASS features_cr4_fixed1_matches_cpuid
# EXPECT-OUT: PASS features_cr4_root_matches_cpuid
# EXPECT-OUT: PASS features_la57_change_in_ia32e_gp
# EXPECT-OUT: PASS features_msrs_match_cpuid
# EXPECT-OUT: PASS features_split_lock_msr
# EXPECT-OUT: PASS features_vmx_controls_match_cpuid
# EXPECT-OUT: PASS features_cr4_guest32_matches_cpuid
# EXPECT-EXIT: 1
# VARIANT skylake ARGS: --cpu skylake-server
# VARIANT icelake ARGS: --cpu icelake-server
# VARIANT skylake_la57 ARGS: --cpu skylake-server,+la57
# VARIANT spr_no_la57_pks_umip ARGS: --cpu sapphire-rapids,-la57,-pks,-umip
# VARIANT spr_no_split_lock ARGS: --cpu sapphire-rapids,-split_lock_detect,-tsc_deadline
# VARIANT minimal ARGS: --cpu minimal
# VARIANT minimal EXPECT-OUT: PASS features_cr4_fixed1_matches_cpuid
# VARIANT minimal EXPECT-OUT: PASS features_cr4_root_matches_cpuid
# VARIANT minimal EXPECT-OUT: PASS features_la57_change_in_ia32e_gp
# VARIANT minimal EXPECT-OUT: PASS features_msrs_match_cpuid
# VARIANT minimal EXPECT-OUT: PASS features_split_lock_msr
# VARIANT minimal EXPECT-OUT: PASS features_vmx_controls_match_cpuid
# VARIANT minimal EXPECT-OUT: SKIP features_cr4_guest32_matches_cpuid
 */
#include "guest.h"

enum { EAX, EBX, ECX, EDX };

struct cpuid_bit {
    uint32_t leaf, subleaf;
    uint8_t reg, bit;
};

static bool cpuid_has(struct cpuid_bit b)
{
    uint32_t r[4], max[4];
    cpuid(b.leaf & 0x80000000u, 0, max);
    if (b.leaf > max[0])
        return false;
    cpuid(b.leaf, b.subleaf, r);
    return (r[b.reg] >> b.bit) & 1;
}

#define C1(reg, bit) ((struct cpuid_bit){1, 0, reg, bit})
#define C7(reg, bit) ((struct cpuid_bit){7, 0, reg, bit})

/* ---- CR4 bits and their CPUID bits (SDM Vol. 3A §2.5, Vol. 2A Table 3-8) ------------------- */

#define CR4_LA57 BIT(12)
#define CR4_PCIDE BIT(17)
#define CR4_VMXE BIT(13)

static const struct cr4_row {
    const char *name;
    struct cpuid_bit id;
    uint64_t cr4;
} cr4_rows[] = {
    {"vme", {1, 0, EDX, 1}, BIT(0) | BIT(1)},  /* VME, PVI */
    {"tsc", {1, 0, EDX, 4}, BIT(2)},           /* TSD */
    {"de", {1, 0, EDX, 2}, BIT(3)},
    {"pse", {1, 0, EDX, 3}, BIT(4)},
    {"pae", {1, 0, EDX, 6}, BIT(5)},
    {"mce", {1, 0, EDX, 7}, BIT(6)},
    {"pge", {1, 0, EDX, 13}, BIT(7)},
    {"fxsr", {1, 0, EDX, 24}, BIT(9)},         /* OSFXSR */
    {"sse", {1, 0, EDX, 25}, BIT(10)},         /* OSXMMEXCPT */
    {"umip", {7, 0, ECX, 2}, BIT(11)},
    {"la57", {7, 0, ECX, 16}, CR4_LA57},
    {"vmx", {1, 0, ECX, 5}, CR4_VMXE},
    {"fsgsbase", {7, 0, EBX, 0}, BIT(16)},
    {"pcid", {1, 0, ECX, 17}, CR4_PCIDE},
    {"xsave", {1, 0, ECX, 26}, BIT(18)},       /* OSXSAVE */
    {"smep", {7, 0, EBX, 7}, BIT(20)},
    {"smap", {7, 0, EBX, 20}, BIT(21)},
    {"pku", {7, 0, ECX, 3}, BIT(22)},          /* PKE */
    {"pks", {7, 0, ECX, 31}, BIT(24)},
};
#define CR4_PCE BIT(8) /* no CPUID condition */

static void test_cr4_fixed1(void)
{
    uint64_t fixed1 = rdmsr(MSR_IA32_VMX_CR4_FIXED1), enumerated = CR4_PCE;
    for (unsigned i = 0; i < ARRAY_SIZE(cr4_rows); i++) {
        bool has = cpuid_has(cr4_rows[i].id);
        if (has)
            enumerated |= cr4_rows[i].cr4;
        CHECK((fixed1 & cr4_rows[i].cr4) == (has ? cr4_rows[i].cr4 : 0), " %s: CPUID %d, CR4_FIXED1 0x%lx",
              cr4_rows[i].name, has, fixed1);
    }
    CHECK(!(fixed1 & ~enumerated), " CR4_FIXED1 allows bits 0x%lx that nothing enumerates", fixed1 & ~enumerated);
    report_checks("features_cr4_fixed1_matches_cpuid");
}

/* Before VMXON (CR4.VMXE may still change): set each bit that is clear, expect #GP iff absent. */
static void test_cr4_root(void)
{
    uint64_t cr4 = read_cr4();
    for (unsigned i = 0; i < ARRAY_SIZE(cr4_rows); i++) {
        const struct cr4_row *r = &cr4_rows[i];
        bool has = cpuid_has(r->id);
        if ((cr4 & r->cr4) == r->cr4) {
            CHECK(has, " CR4.%s is set but CPUID does not enumerate it", r->name);
            continue;
        }
        if (r->cr4 == CR4_LA57) /* IA-32e mode: #GP either way (next sub-test) */
            continue;
        int v = mov_cr4_try(cr4 | r->cr4);
        CHECK(v == (has ? -1 : GP_VECTOR), " MOV to CR4 | 0x%lx (%s, CPUID %d): vector %d", r->cr4, r->name, has,
              v);
        if (v == -1)
            CHECK(mov_cr4_try(cr4) == -1, " restoring CR4 after %s: vector %d", r->name, exc_last.vector);
    }
    CHECK(read_cr4() == cr4, " CR4 0x%lx, was 0x%lx", read_cr4(), cr4);
    report_checks("features_cr4_root_matches_cpuid");

    CHECK(mov_cr4_try(cr4 | CR4_LA57) == GP_VECTOR, " setting CR4.LA57 in IA-32e mode: vector %d", exc_last.vector);
    CHECK(read_cr4() == cr4, " CR4 0x%lx", read_cr4());
    report_checks("features_la57_change_in_ia32e_gp");
}

/* ---- MSRs and their CPUID conditions (SDM Vol. 4 Table 2-2) ----------------------------------- */

static const struct msr_row {
    uint32_t index;
    const char *name;
    struct cpuid_bit any[3]; /* the MSR exists if any is set; {0} ends */
} msr_rows[] = {
    {0x10, "IA32_TIME_STAMP_COUNTER", {{1, 0, EDX, 4}}},
    {0x3B, "IA32_TSC_ADJUST", {{7, 0, EBX, 1}}},
    {0x48, "IA32_SPEC_CTRL", {{7, 0, EDX, 26}, {7, 0, EDX, 27}, {7, 0, EDX, 31}}},
    {0xCF, "IA32_CORE_CAPABILITIES", {{7, 0, EDX, 30}}},
    {0xFE, "IA32_MTRRCAP", {{1, 0, EDX, 12}}},
    {0x10A, "IA32_ARCH_CAPABILITIES", {{7, 0, EDX, 29}}},
    {0x174, "IA32_SYSENTER_CS", {{1, 0, EDX, 11}}},
    {0x179, "IA32_MCG_CAP", {{1, 0, EDX, 14}}},
    {0x277, "IA32_PAT", {{1, 0, EDX, 16}}},
    {0x480, "IA32_VMX_BASIC", {{1, 0, ECX, 5}}},
    {0x6E0, "IA32_TSC_DEADLINE", {{1, 0, ECX, 24}}},
    {0x6E1, "IA32_PKRS", {{7, 0, ECX, 31}}},
    {0xDA0, "IA32_XSS", {{0xD, 1, EAX, 3}}},
    {0xC0000081, "IA32_STAR", {{0x80000001u, 0, EDX, 29}}},
    {0xC0000103, "IA32_TSC_AUX", {{0x80000001u, 0, EDX, 27}, {7, 0, ECX, 22}}},
};

#define MSR_TEST_CTRL 0x33
#define MSR_CORE_CAPS 0xCF
#define CORE_CAPS_SPLIT_LOCK BIT(5)
#define TEST_CTRL_SPLIT_LOCK BIT(29)
#define MSR_PRED_CMD 0x49

static void test_msrs(void)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(msr_rows); i++) {
        const struct msr_row *r = &msr_rows[i];
        bool exists = false;
        for (unsigned k = 0; k < 3 && r->any[k].leaf; k++)
            exists = exists || cpuid_has(r->any[k]);
        int vec = rdmsr_try(r->index, &v);
        CHECK(vec == (exists ? -1 : GP_VECTOR), " RDMSR %s (%x): vector %d, CPUID says %s", r->name, r->index, vec,
              exists ? "present" : "absent");
    }
    /* IA32_PRED_CMD: write-only, with IBRS/IBPB (CPUID.(7,0):EDX[26]). */
    bool ibpb = cpuid_has(C7(EDX, 26));
    CHECK(rdmsr_try(MSR_PRED_CMD, &v) == GP_VECTOR, " RDMSR IA32_PRED_CMD: vector %d", exc_last.vector);
    CHECK(wrmsr_try(MSR_PRED_CMD, 0) == (ibpb ? -1 : GP_VECTOR), " WRMSR IA32_PRED_CMD 0: vector %d (IBPB %d)",
          exc_last.vector, ibpb);
    /* Secondary/tertiary capability MSRs follow the controls that activate them (Vol. 3D A.3.3, A.3.4). */
    if (cpuid_has(C1(ECX, 5))) {
        bool sec = (rdmsr(MSR_IA32_VMX_PROCBASED_CTLS) >> 32) & CPU_SECONDARY;
        bool ter = (rdmsr(MSR_IA32_VMX_TRUE_PROCBASED_CTLS) >> 32) & CPU_TERTIARY;
        CHECK(rdmsr_try(MSR_IA32_VMX_PROCBASED_CTLS2, &v) == (sec ? -1 : GP_VECTOR), " RDMSR 48BH: vector %d",
              exc_last.vector);
        CHECK(rdmsr_try(0x492, &v) == (ter ? -1 : GP_VECTOR), " RDMSR 492H: vector %d (tertiary %d)",
              exc_last.vector, ter);
    }
    report_checks("features_msrs_match_cpuid");
}

/* MSR_TEST_CTRL exists iff IA32_CORE_CAPABILITIES[5]; only bit 29 (SDM Vol. 4 Table 2-2). */
static void test_split_lock(void)
{
    uint64_t caps = 0, v = 0;
    bool sld = cpuid_has(C7(EDX, 30)) && rdmsr_try(MSR_CORE_CAPS, &caps) == -1 && (caps & CORE_CAPS_SPLIT_LOCK);
    if (sld) {
        CHECK(rdmsr_try(MSR_TEST_CTRL, &v) == -1 && v == 0, " RDMSR TEST_CTRL: vector %d value 0x%lx",
              exc_last.vector, v);
        CHECK(wrmsr_try(MSR_TEST_CTRL, TEST_CTRL_SPLIT_LOCK) == -1, " WRMSR bit 29: vector %d", exc_last.vector);
        CHECK(rdmsr(MSR_TEST_CTRL) == TEST_CTRL_SPLIT_LOCK, " read back 0x%lx", rdmsr(MSR_TEST_CTRL));
        CHECK(wrmsr_try(MSR_TEST_CTRL, BIT(28)) == GP_VECTOR, " WRMSR bit 28: vector %d", exc_last.vector);
        CHECK(wrmsr_try(MSR_TEST_CTRL, 0) == -1, " WRMSR 0: vector %d", exc_last.vector);
    } else {
        CHECK(rdmsr_try(MSR_TEST_CTRL, &v) == GP_VECTOR, " RDMSR TEST_CTRL without split-lock detection: vector %d",
              exc_last.vector);
        CHECK(wrmsr_try(MSR_TEST_CTRL, TEST_CTRL_SPLIT_LOCK) == GP_VECTOR, " WRMSR TEST_CTRL: vector %d",
              exc_last.vector);
    }
    report_checks("features_split_lock_msr");
}

/* ---- VMX controls that need a CPU feature --------------------------------------------------- */

static const struct vmx_row {
    const char *name;
    struct cpuid_bit id;
    uint32_t msr; /* TRUE control MSR or PROCBASED_CTLS2 */
    uint32_t bits;
} vmx_rows[] = {
    {"load IA32_PKRS (entry)", {7, 0, ECX, 31}, MSR_IA32_VMX_TRUE_ENTRY_CTLS, 1u << 22},
    {"load IA32_PKRS (exit)", {7, 0, ECX, 31}, MSR_IA32_VMX_TRUE_EXIT_CTLS, 1u << 29},
    {"IA-32e mode guest", {0x80000001u, 0, EDX, 29}, MSR_IA32_VMX_TRUE_ENTRY_CTLS, 1u << 9},
    {"host address-space size", {0x80000001u, 0, EDX, 29}, MSR_IA32_VMX_TRUE_EXIT_CTLS, 1u << 9},
    {"load IA32_PAT (entry)", {1, 0, EDX, 16}, MSR_IA32_VMX_TRUE_ENTRY_CTLS, 1u << 14},
    {"save/load IA32_PAT (exit)", {1, 0, EDX, 16}, MSR_IA32_VMX_TRUE_EXIT_CTLS, 3u << 18},
    {"enable RDTSCP", {0x80000001u, 0, EDX, 27}, MSR_IA32_VMX_PROCBASED_CTLS2, CPU2_RDTSCP},
    {"enable INVPCID", {7, 0, EBX, 10}, MSR_IA32_VMX_PROCBASED_CTLS2, CPU2_INVPCID},
    {"RDRAND exiting", {1, 0, ECX, 30}, MSR_IA32_VMX_PROCBASED_CTLS2, CPU2_RDRAND},
    {"RDSEED exiting", {7, 0, EBX, 18}, MSR_IA32_VMX_PROCBASED_CTLS2, CPU2_RDSEED},
};

static void test_vmx_controls(void)
{
    bool sec = (rdmsr(MSR_IA32_VMX_PROCBASED_CTLS) >> 32) & CPU_SECONDARY;
    for (unsigned i = 0; i < ARRAY_SIZE(vmx_rows); i++) {
        const struct vmx_row *r = &vmx_rows[i];
        if (r->msr == MSR_IA32_VMX_PROCBASED_CTLS2 && !sec)
            continue;
        bool has = cpuid_has(r->id);
        uint32_t allowed1 = (uint32_t)(rdmsr(r->msr) >> 32) & r->bits;
        CHECK(allowed1 == (has ? r->bits : 0), " %s: allowed-1 0x%x, CPUID %d", r->name, allowed1, has);
    }
    report_checks("features_vmx_controls_match_cpuid");
}

/* ---- CR4 in a 32-bit paging-off guest (unrestricted guest, EPT identity map) ---------------- */

/*
 * For each mask in g32_cr4_bits (0-terminated): CR4 |= mask, then restore.
 * A #GP exits (exception bitmap); the host records it for index ESI and
 * skips the 3-byte MOV to CR4 (0F 22 E0).
 */
volatile uint32_t g32_cr4_bits[ARRAY_SIZE(cr4_rows) + 1] __attribute__((used));
static volatile bool g32_faulted[ARRAY_SIZE(cr4_rows)];
extern char g32_cr4_loop[], g32_cr4_mov[];
asm(".pushsection .text\n"
    ".code32\n"
    ".globl g32_cr4_loop, g32_cr4_mov\n"
    "g32_cr4_loop:\n"
    "    xor %esi, %esi\n"
    "1:  movl g32_cr4_bits(,%esi,4), %ebx\n"
    "    test %ebx, %ebx\n"
    "    jz 2f\n"
    "    mov %cr4, %edx\n"
    "    mov %edx, %eax\n"
    "    or %ebx, %eax\n"
    "g32_cr4_mov:\n"
    "    mov %eax, %cr4\n"
    "    mov %edx, %cr4\n"
    "    inc %esi\n"
    "    jmp 1b\n"
    "2:  vmcall\n"
    "    ud2\n"
    ".code64\n"
    ".popsection\n");

static uint64_t ept_identity(void)
{
    uint64_t *pml4 = alloc_page(), *pdpt = alloc_page(), *pd = alloc_page();
    for (uint64_t i = 0; i < 512; i++)
        pd[i] = i << 21 | 7 | 6 << 3 | BIT(7); /* RWX, WB, 2-MiB page */
    pdpt[0] = (uint64_t)(uintptr_t)pd | 7;
    pml4[0] = (uint64_t)(uintptr_t)pdpt | 7;
    return (uint64_t)(uintptr_t)pml4 | 6 | 3 << 3; /* WB, 4-level */
}

static void test_cr4_guest32(void)
{
    unsigned n = 0, idx[ARRAY_SIZE(cr4_rows)];
    uint64_t p2 = rdmsr(MSR_IA32_VMX_PROCBASED_CTLS2) >> 32;
    if (!(p2 & CPU2_UNRESTRICTED) || !(p2 & CPU2_EPT)) {
        report_skip("features_cr4_guest32_matches_cpuid", "no unrestricted guest on this CPU");
        return;
    }
    for (unsigned i = 0; i < ARRAY_SIZE(cr4_rows); i++)
        if (cr4_rows[i].cr4 != CR4_VMXE) { /* fixed to 1 in VMX operation */
            idx[n] = i;
            g32_cr4_bits[n++] = (uint32_t)cr4_rows[i].cr4;
        }
    g32_cr4_bits[n] = 0;
    exc_clear();
    vmx_ctx_init(&ctx, NULL, NULL,
                 &(struct vmx_extras){.proc2 = CPU2_EPT | CPU2_UNRESTRICTED, .exc_bitmap = 1u << GP_VECTOR});
    vmcs_write(VM_ENTRY_CONTROLS, ctx.entry_ctl & ~(uint32_t)ENTRY_IA32E);
    vmcs_write(EPT_POINTER, ept_identity());
    vmcs_write(GUEST_CR0, X86_CR0_PE | X86_CR0_ET | X86_CR0_NE);
    vmcs_write(GUEST_CR3, 0);
    vmcs_write(GUEST_CR4, X86_CR4_VMXE);
    vmcs_write(GUEST_CS_SELECTOR, 0x18);
    vmcs_write(GUEST_CS_AR_BYTES, 0xc09b);
    vmcs_write(GUEST_RIP, (uint64_t)(uintptr_t)g32_cr4_loop);
    for (unsigned k = 0; k < n; k++)
        g32_faulted[k] = false;
    for (unsigned guard = 0; guard <= n; guard++) {
        vmx_enter(&ctx);
        if (ctx.vmfail != VMSUCCEED || ctx.exit_reason != EXIT_EXCEPTION_NMI)
            break;
        if (!CHECK(INTR_INFO_VECTOR(ctx.intr_info) == GP_VECTOR && ctx.guest_rip == (uint64_t)(uintptr_t)g32_cr4_mov &&
                       ctx.regs[R_RSI] < n,
                   " unexpected exception: %s", vmx_exit_str(&ctx)))
            break;
        g32_faulted[ctx.regs[R_RSI]] = true;
        vmcs_write(GUEST_RIP, ctx.guest_rip + 3);
    }
    if (CHECK(ctx.vmfail == VMSUCCEED && ctx.exit_reason == EXIT_VMCALL, " the loop did not finish: %s",
              vmx_exit_str(&ctx))) {
        for (unsigned k = 0; k < n; k++) {
            const struct cr4_row *r = &cr4_rows[idx[k]];
            bool has = cpuid_has(r->id);
            /* CR4.PCIDE can be set only in IA-32e mode (SDM Vol. 3A §4.10.1): #GP here in any case. */
            bool want_gp = r->cr4 == CR4_PCIDE || !has;
            CHECK(g32_faulted[k] == want_gp, " CR4.%s (CPUID %d) in a 32-bit guest: %s", r->name, has,
                  g32_faulted[k] ? "#GP" : "accepted");
        }
    }
    report_checks("features_cr4_guest32_matches_cpuid");
}

void hv_test_main(void)
{
    uint32_t r1[4], r7[4];
    cpuid(1, 0, r1);
    cpuid(7, 0, r7);
    report_info("CPUID.01H:ECX 0x%08x EDX 0x%08x; CPUID.(07H,0):EBX 0x%08x ECX 0x%08x EDX 0x%08x", r1[2], r1[3],
                r7[1], r7[2], r7[3]);
    test_cr4_fixed1();
    test_cr4_root(); /* before VMXON */
    test_msrs();
    test_split_lock();
    if (!vmx_enable())
        return;
    test_vmx_controls();
    test_cr4_guest32();
}
