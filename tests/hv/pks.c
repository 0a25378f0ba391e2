/*
 * Protection keys for supervisor pages (PKS) as a hypervisor sees it:
 *   - enumeration: CPUID.(07H,0):ECX[31]; CR4.PKS (bit 24) allowed by
 *     IA32_VMX_CR4_FIXED1; IA32_PKRS (6E1H) 32 rights bits, 63:32 reserved
 *     (SDM Vol. 3A §2.5, §4.6.2; Vol. 4 Table 2-2);
 *   - VM entry loads IA32_PKRS from GUEST_IA32_PKRS (2818H) with the entry
 *     control "load IA32_PKRS" (bit 22, §27.3.2.1); VM exit saves it into
 *     GUEST_IA32_PKRS whenever the processor supports that entry control
 *     (§28.3.1) and loads HOST_IA32_PKRS (2C06H) with the exit control
 *     "load IA32_PKRS" (bit 29, §28.5.1); bits 63:32 of the guest field →
 *     VM-entry failure exit 33 (§27.3.1.1), of the host field →
 *     VMfailValid(8) (§27.2.2);
 *   - MSR bitmaps intercept RDMSR/WRMSR of 6E1H (§25.6.9);
 *   - paging (§4.6.2, §4.7): with CR4.PKS = 1 and 4-level paging, AD/WD of
 *     the page's key in IA32_PKRS deny supervisor-page data accesses (WD
 *     only when CR0.WP = 1), the #PF error code has PK (bit 5); user pages,
 *     other keys, CR4.PKS = 0, paging off and PAE paging are unaffected;
 *   - on a CPU without PKS (variants): CPUID bit 0, MOV to CR4 setting PKS
 *     and RDMSR/WRMSR of 6E1H #GP (root and guest), the load-PKRS controls
 *     not allowed (VM entry with one → VMfailValid(7)), the PKRS VMCS
 *     fields unsupported (VMREAD/VMWRITE → VMfailValid(12)).
 * The paging-off / PAE guest runs under "unrestricted guest" with an EPT
 * identity map.
 *
# ARGS: --cpu sapphire-rapids
# EXPECT-OUT: PASS pks_enumerated
# EXPECT-OUT: PASS pks_msr_in_root
# EXPECT-OUT: PASS pks_guest_paging_off_sees_guest_pkrs
# EXPECT-OUT: PASS pks_no_effect_paging_off_or_pae
# EXPECT-OUT: PASS pks_host_pkrs_stale_field_is_loaded
# EXPECT-OUT: PASS pks_host_pkrs_loaded_on_exit
# EXPECT-OUT: PASS pks_no_exit_load_keeps_guest_pkrs
# EXPECT-OUT: PASS pks_guest_pkrs_saved_on_exit
# EXPECT-OUT: PASS pks_guest_pkrs_saved_without_entry_load
# EXPECT-OUT: PASS pks_guest_pkrs_reserved_entry_fail_33
# EXPECT-OUT: PASS pks_host_pkrs_reserved_vmfail_8
# EXPECT-OUT: PASS pks_unchecked_without_controls
# EXPECT-OUT: PASS pks_msr_bitmap_read_exits
# EXPECT-OUT: PASS pks_msr_bitmap_write_exits
# EXPECT-OUT: PASS pks_msr_bitmap_clear_no_exit
# EXPECT-OUT: PASS pks_pf_access_disable
# EXPECT-OUT: PASS pks_pf_write_disable
# EXPECT-OUT: PASS pks_wd_ignored_when_wp_clear
# EXPECT-OUT: PASS pks_supervisor_leaf_under_user_tables
# EXPECT-OUT: PASS pks_not_for_user_pages_other_keys_or_pks_off
# EXPECT-OUT: PASS pks_pf_exit_error_code
# EXPECT-EXIT: 1
# VARIANT nopks ARGS: --cpu sapphire-rapids,-pks
# VARIANT nopks EXPECT-OUT: PASS pks_absent_cpuid_and_caps
# VARIANT nopks EXPECT-OUT: PASS pks_absent_cr4_gp_root
# VARIANT nopks EXPECT-OUT: PASS pks_absent_msr_gp_root
# VARIANT nopks EXPECT-OUT: PASS pks_absent_guest_cr4_and_msr_gp
# VARIANT nopks EXPECT-OUT: PASS pks_absent_entry_control_vmfail_7
# VARIANT nopks EXPECT-OUT: PASS pks_absent_exit_control_vmfail_7
# VARIANT nopks EXPECT-OUT: PASS pks_absent_vmcs_fields
# VARIANT skylake ARGS: --cpu skylake-server
# VARIANT skylake EXPECT-OUT: PASS pks_absent_cpuid_and_caps
# VARIANT skylake EXPECT-OUT: PASS pks_absent_cr4_gp_root
# VARIANT skylake EXPECT-OUT: PASS pks_absent_msr_gp_root
# VARIANT skylake EXPECT-OUT: PASS pks_absent_guest_cr4_and_msr_gp
# VARIANT skylake EXPECT-OUT: PASS pks_absent_entry_control_vmfail_7
# VARIANT skylake EXPECT-OUT: PASS pks_absent_exit_control_vmfail_7
# VARIANT skylake EXPECT-OUT: PASS pks_absent_vmcs_fields
 */
#include "guest.h"

/* ---- Architectural numbers (SDM), not in hv.h ------------------------------------ */

#define MSR_IA32_PKRS 0x6E1
#define X86_CR4_SMAP BIT(21)
#define X86_CR4_PKS BIT(24)
#define ENTRY_LOAD_PKRS BIT(22) /* Table 25-15 */
#define EXIT_LOAD_PKRS BIT(29)  /* Table 25-13 */
#define GUEST_IA32_PKRS 0x2818  /* Table B-6 */
#define HOST_IA32_PKRS 0x2C06   /* Table B-7 */
#define PFERR_PK BIT(5)
#define PTE_PKEY(k) ((uint64_t)(k) << 59) /* bits 62:59 of a 4-level leaf */
#define PKR_AD(k) (1u << (2 * (k)))
#define PKR_WD(k) (2u << (2 * (k)))
#define VMXERR_UNSUPPORTED_COMPONENT 12
#define EPT_RWX 7ull
#define EPT_MT_WB (6ull << 3)
#define EPT_LEAF_PS BIT(7)

#define KEY 5
#define VA_SUP 0x8000000000ull  /* supervisor leaf, supervisor tables (PML4 slot 1) */
#define VA_MIX 0x8040000000ull  /* supervisor leaf under user-accessible tables */
#define VA_USER 0x8080000000ull /* user page */
#define PAGE_MAGIC 0x5EC0DE0F5EC0DE0Full

static uint64_t pa(const void *p) { return (uint64_t)(uintptr_t)p; }

static bool has_pks(void)
{
    uint32_t r[4];
    cpuid(7, 0, r);
    return (r[2] >> 31) & 1;
}

/* ---- Small helpers ------------------------------------------------------------------ */

/* Fresh context with MSR bitmaps (all clear) and the given PKRS controls and fields. */
static void fresh(void (*fn)(void *), uint32_t entry, uint32_t exit, uint64_t guest_pkrs, uint64_t host_pkrs)
{
    exc_clear();
    exc_return_ok = false;
    g_rip = g_end = 0;
    memset((void *)g_val, 0, sizeof g_val);
    vmx_ctx_init(&ctx, fn, NULL, &(struct vmx_extras){.proc = CPU_MSR_BITMAPS, .entry = entry, .exit = exit});
    CHECK(!ctx.ctl_unsupported, " a requested control is not supported");
    vmcs_write(GUEST_IA32_PKRS, guest_pkrs);
    vmcs_write(HOST_IA32_PKRS, host_pkrs);
}

static void g_nothing(void *a) { (void)a; }

/* ---- Enumeration and the MSR in root operation ---------------------------------------- */

static void test_enumeration(void)
{
    uint64_t v = 0;
    CHECK(has_pks(), " CPUID.(7,0):ECX[31] = 0");
    CHECK((rdmsr(MSR_IA32_VMX_TRUE_ENTRY_CTLS) >> 32) & ENTRY_LOAD_PKRS, " TRUE_ENTRY_CTLS allowed-1 bit 22");
    CHECK((rdmsr(MSR_IA32_VMX_TRUE_EXIT_CTLS) >> 32) & EXIT_LOAD_PKRS, " TRUE_EXIT_CTLS allowed-1 bit 29");
    CHECK((rdmsr(MSR_IA32_VMX_ENTRY_CTLS) >> 32) & ENTRY_LOAD_PKRS, " ENTRY_CTLS allowed-1 bit 22");
    CHECK((rdmsr(MSR_IA32_VMX_EXIT_CTLS) >> 32) & EXIT_LOAD_PKRS, " EXIT_CTLS allowed-1 bit 29");
    CHECK(rdmsr(MSR_IA32_VMX_CR4_FIXED1) & X86_CR4_PKS, " CR4_FIXED1 lacks bit 24");
    vmx_ctx_init(&ctx, g_nothing, NULL, NULL);
    CHECK(vmread_raw(GUEST_IA32_PKRS, &v) == VMSUCCEED, " VMREAD GUEST_IA32_PKRS failed");
    CHECK(vmread_raw(HOST_IA32_PKRS, &v) == VMSUCCEED, " VMREAD HOST_IA32_PKRS failed");
    report_checks("pks_enumerated");
}

/* IA32_PKRS exists with CPUID PKS alone (CR4.PKS = 0 or 1); bits 63:32 reserved. */
static void test_msr_root(void)
{
    uint64_t v = 0, cr4 = read_cr4();
    CHECK(rdmsr_try(MSR_IA32_PKRS, &v) == -1 && v == 0, " RDMSR after RESET: vector %d value 0x%lx",
          exc_last.vector, v);
    CHECK(wrmsr_try(MSR_IA32_PKRS, 0x12345678) == -1, " WRMSR 12345678H: vector %d", exc_last.vector);
    CHECK(rdmsr(MSR_IA32_PKRS) == 0x12345678, " read back 0x%lx", rdmsr(MSR_IA32_PKRS));
    for (unsigned b = 32; b < 64; b += 7)
        CHECK(wrmsr_try(MSR_IA32_PKRS, BIT(b)) == GP_VECTOR, " WRMSR bit %u: vector %d", b, exc_last.vector);
    CHECK(rdmsr(MSR_IA32_PKRS) == 0x12345678, " a refused WRMSR changed it: 0x%lx", rdmsr(MSR_IA32_PKRS));
    /* CR4.PKS can be set and cleared (key 0 of 12345678H grants everything). */
    CHECK(mov_cr4_try(cr4 | X86_CR4_PKS) == -1, " MOV to CR4 with PKS: vector %d", exc_last.vector);
    CHECK(read_cr4() & X86_CR4_PKS, " CR4.PKS did not stick");
    CHECK(mov_cr4_try(cr4) == -1, " clearing CR4.PKS: vector %d", exc_last.vector);
    wrmsr(MSR_IA32_PKRS, 0);
    report_checks("pks_msr_in_root");
}

/* ---- (a) a guest that starts with paging off ---------------------------------------- */

/*
 * 32-bit protected mode, paging off (unrestricted guest): write memory, set
 * CR4.PKS, read and write memory, RDMSR IA32_PKRS → ESI:EDI; then PAE paging
 * (still not IA-32e): read and write memory, RDMSR → EAX:EDX, VMCALL.
 * IA32_PKRS = 55555555H denies data access for every key, key 0 included:
 * any effect of PKS outside 4-level paging would fault.
 */
volatile uint32_t g32_scratch __attribute__((used));
volatile uint32_t g32_pae_cr3 __attribute__((used));
extern char g32_pks[];
asm(".pushsection .text\n"
    ".code32\n"
    ".globl g32_pks\n"
    "g32_pks:\n"
    "    movl $0x1234, g32_scratch\n"
    "    mov %cr4, %eax\n"
    "    or $0x1000000, %eax\n" /* CR4.PKS */
    "    mov %eax, %cr4\n"
    "    movl g32_scratch, %ebx\n"
    "    incl %ebx\n"
    "    movl %ebx, g32_scratch\n"
    "    mov $0x6e1, %ecx\n"
    "    rdmsr\n"
    "    mov %eax, %esi\n"
    "    mov %edx, %edi\n"
    "    mov $0xc0000080, %ecx\n" /* EFER.LME is still the host's (SDM Vol. 3C */
    "    rdmsr\n"                 /* §27.3.2.1: unmodified when CR0.PG = 0 is */
    "    and $~0x100, %eax\n"     /* loaded): clear it, or PG would enter */
    "    wrmsr\n"                 /* IA-32e mode instead of PAE paging */
    "    mov %cr4, %eax\n"
    "    or $0x20, %eax\n" /* CR4.PAE */
    "    mov %eax, %cr4\n"
    "    movl g32_pae_cr3, %eax\n"
    "    mov %eax, %cr3\n"
    "    mov %cr0, %eax\n"
    "    or $0x80000000, %eax\n" /* CR0.PG: PAE paging */
    "    mov %eax, %cr0\n"
    "    jmp 1f\n"
    "1:  movl g32_scratch, %ebx\n"
    "    incl %ebx\n"
    "    movl %ebx, g32_scratch\n"
    "    mov $0x6e1, %ecx\n"
    "    rdmsr\n"
    "    vmcall\n"
    "    ud2\n"
    ".code64\n"
    ".popsection\n");

/* EPT identity map of the first GiB with 2-MiB pages (SDM Vol. 3C §29.3.2). */
static uint64_t ept_identity(void)
{
    static uint64_t eptp;
    if (!eptp) {
        uint64_t *pml4 = alloc_page(), *pdpt = alloc_page(), *pd = alloc_page();
        for (uint64_t i = 0; i < 512; i++)
            pd[i] = i << 21 | EPT_RWX | EPT_MT_WB | EPT_LEAF_PS;
        pdpt[0] = pa(pd) | EPT_RWX;
        pml4[0] = pa(pdpt) | EPT_RWX;
        eptp = pa(pml4) | 6 | 3 << 3; /* WB, 4-level */
    }
    return eptp;
}

/* PAE paging structures: identity map of the first GiB with 2-MiB pages (§4.4). */
static uint32_t pae_identity(void)
{
    uint64_t *pdpt = alloc_page(), *pd = alloc_page();
    for (uint64_t i = 0; i < 512; i++)
        pd[i] = i << 21 | PTE_P | PTE_W | PTE_PS;
    pdpt[0] = pa(pd) | PTE_P;
    return (uint32_t)pa(pdpt);
}

static bool has_unrestricted_guest(void)
{
    return (rdmsr(MSR_IA32_VMX_PROCBASED_CTLS2) >> 32 & (CPU2_EPT | CPU2_UNRESTRICTED)) ==
           (CPU2_EPT | CPU2_UNRESTRICTED);
}

static void test_guest_paging_off(void)
{
    const uint64_t all_ad = 0x55555555;
    if (!has_unrestricted_guest()) {
        report_skip("pks_guest_paging_off_sees_guest_pkrs", "no unrestricted guest");
        report_skip("pks_no_effect_paging_off_or_pae", "no unrestricted guest");
        return;
    }
    g32_scratch = 0;
    g32_pae_cr3 = pae_identity();
    exc_clear();
    vmx_ctx_init(&ctx, NULL, NULL,
                 &(struct vmx_extras){.proc = CPU_MSR_BITMAPS, .proc2 = CPU2_EPT | CPU2_UNRESTRICTED,
                                      .entry = ENTRY_LOAD_PKRS, .exit = EXIT_LOAD_PKRS, .exc_bitmap = ~0u});
    CHECK(!ctx.ctl_unsupported, " a requested control is not supported");
    vmcs_write(VM_ENTRY_CONTROLS, ctx.entry_ctl & ~(uint32_t)ENTRY_IA32E);
    vmcs_write(EPT_POINTER, ept_identity());
    vmcs_write(GUEST_CR0, X86_CR0_PE | X86_CR0_ET | X86_CR0_NE);
    vmcs_write(GUEST_CR3, 0);
    vmcs_write(GUEST_CR4, X86_CR4_VMXE);
    vmcs_write(GUEST_CS_SELECTOR, 0x18);
    vmcs_write(GUEST_CS_AR_BYTES, 0xc09b);
    vmcs_write(GUEST_RIP, pa(g32_pks));
    vmcs_write(GUEST_IA32_PKRS, all_ad);
    vmcs_write(HOST_IA32_PKRS, 0);
    vmx_enter(&ctx);
    bool exited = CHECK(ctx.vmfail == VMSUCCEED && ctx.exit_reason == EXIT_VMCALL, " %s", vmx_exit_str(&ctx));
    if (exited) {
        CHECK((uint32_t)ctx.regs[R_RSI] == all_ad && (uint32_t)ctx.regs[R_RDI] == 0,
              " RDMSR IA32_PKRS with paging off: %x:%08x, want 0:%08lx", (uint32_t)ctx.regs[R_RDI],
              (uint32_t)ctx.regs[R_RSI], all_ad);
        CHECK(vmcs_read(GUEST_CR4) & X86_CR4_PKS, " GUEST_CR4 0x%lx lacks PKS", vmcs_read(GUEST_CR4));
    }
    report_checks("pks_guest_paging_off_sees_guest_pkrs");
    if (exited) {
        CHECK(g32_scratch == 0x1236, " scratch 0x%x: memory accesses with PKS on did not all happen", g32_scratch);
        CHECK((vmcs_read(GUEST_CR0) & X86_CR0_PG) && (vmcs_read(GUEST_CR4) & X86_CR4_PAE),
              " not in PAE paging: CR0 0x%lx CR4 0x%lx", vmcs_read(GUEST_CR0), vmcs_read(GUEST_CR4));
        CHECK((uint32_t)ctx.regs[R_RAX] == all_ad, " RDMSR IA32_PKRS under PAE paging: 0x%x",
              (uint32_t)ctx.regs[R_RAX]);
        CHECK(vmcs_read(GUEST_IA32_PKRS) == all_ad, " saved GUEST_IA32_PKRS 0x%lx", vmcs_read(GUEST_IA32_PKRS));
    } else {
        CHECK(false, " the guest did not reach its VMCALL");
    }
    CHECK(rdmsr(MSR_IA32_PKRS) == 0, " host IA32_PKRS 0x%lx after the exit", rdmsr(MSR_IA32_PKRS));
    report_checks("pks_no_effect_paging_off_or_pae");
}

/* ---- (b) HOST_IA32_PKRS on VM exit --------------------------------------------------------- */

static void g_write_pkrs(void *a)
{
    wrmsr(MSR_IA32_PKRS, (uint64_t)(uintptr_t)a);
}

static void test_host_pkrs(void)
{
    const uint64_t host = 0x0C000000, stale = 0x30000000, guest = 0x00030000;

    /* The host runs with `host` and forgets to put it into HOST_IA32_PKRS. */
    wrmsr(MSR_IA32_PKRS, host);
    fresh(g_write_pkrs, ENTRY_LOAD_PKRS, EXIT_LOAD_PKRS, 0, stale);
    ctx.regs[R_RDI] = guest;
    vmx_enter(&ctx);
    CHECK(vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx));
    CHECK(rdmsr(MSR_IA32_PKRS) == stale, " host IA32_PKRS 0x%lx after the exit, want the stale field 0x%lx",
          rdmsr(MSR_IA32_PKRS), stale);
    report_checks("pks_host_pkrs_stale_field_is_loaded");

    wrmsr(MSR_IA32_PKRS, host);
    fresh(g_write_pkrs, ENTRY_LOAD_PKRS, EXIT_LOAD_PKRS, 0, host);
    ctx.regs[R_RDI] = guest;
    vmx_enter(&ctx);
    CHECK(vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx));
    CHECK(rdmsr(MSR_IA32_PKRS) == host, " host IA32_PKRS 0x%lx, want 0x%lx", rdmsr(MSR_IA32_PKRS), host);
    report_checks("pks_host_pkrs_loaded_on_exit");

    /* Without the exit control the guest's value stays in the MSR. */
    wrmsr(MSR_IA32_PKRS, host);
    fresh(g_write_pkrs, ENTRY_LOAD_PKRS, 0, 0, host);
    ctx.regs[R_RDI] = guest;
    vmx_enter(&ctx);
    CHECK(vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx));
    CHECK(rdmsr(MSR_IA32_PKRS) == guest, " host IA32_PKRS 0x%lx, want the guest's 0x%lx", rdmsr(MSR_IA32_PKRS),
          guest);
    wrmsr(MSR_IA32_PKRS, 0);
    report_checks("pks_no_exit_load_keeps_guest_pkrs");
}

/* ---- (c) GUEST_IA32_PKRS saved on VM exit ------------------------------------------------- */

static void g_read_write_pkrs(void *a)
{
    g_val[0] = rdmsr(MSR_IA32_PKRS);
    wrmsr(MSR_IA32_PKRS, (uint64_t)(uintptr_t)a);
}

static void test_guest_pkrs_saved(void)
{
    fresh(g_read_write_pkrs, ENTRY_LOAD_PKRS, EXIT_LOAD_PKRS, 0x00C00000, 0);
    ctx.regs[R_RDI] = 0x0ABC0000;
    vmx_enter(&ctx);
    CHECK(vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx));
    CHECK(g_val[0] == 0x00C00000, " the guest read 0x%lx at entry, want GUEST_IA32_PKRS", g_val[0]);
    CHECK(vmcs_read(GUEST_IA32_PKRS) == 0x0ABC0000, " GUEST_IA32_PKRS 0x%lx after the exit",
          vmcs_read(GUEST_IA32_PKRS));
    CHECK(rdmsr(MSR_IA32_PKRS) == 0, " host IA32_PKRS 0x%lx", rdmsr(MSR_IA32_PKRS));
    report_checks("pks_guest_pkrs_saved_on_exit");

    /* §28.3.1: saved on every exit when the processor supports the entry control, used or not. */
    wrmsr(MSR_IA32_PKRS, 0x00300000);
    fresh(g_read_write_pkrs, 0, EXIT_LOAD_PKRS, 0x11111110, 0);
    ctx.regs[R_RDI] = 0x0DEF0000;
    vmx_enter(&ctx);
    CHECK(vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx));
    CHECK(g_val[0] == 0x00300000, " without the entry control the guest read 0x%lx, want the host's value",
          g_val[0]);
    CHECK(vmcs_read(GUEST_IA32_PKRS) == 0x0DEF0000, " GUEST_IA32_PKRS 0x%lx after the exit",
          vmcs_read(GUEST_IA32_PKRS));
    report_checks("pks_guest_pkrs_saved_without_entry_load");
}

/* ---- (d) checks on the PKRS fields ---------------------------------------------------------- */

static void test_field_checks(void)
{
    fresh(g_write_pkrs, ENTRY_LOAD_PKRS, EXIT_LOAD_PKRS, BIT(32) | 0x4, 0);
    ctx.regs[R_RDI] = 0;
    vmx_enter(&ctx);
    CHECK(ctx.vmfail == VMSUCCEED && ctx.exit_reason == (EXIT_INVALID_STATE | (uint32_t)EXIT_REASON_FAILED_ENTRY),
          " %s", vmx_exit_str(&ctx));
    CHECK(ctx.exit_qual == 0, " qualification %lu", ctx.exit_qual);
    report_checks("pks_guest_pkrs_reserved_entry_fail_33");

    fresh(g_write_pkrs, ENTRY_LOAD_PKRS, EXIT_LOAD_PKRS, 0, BIT(40));
    vmx_enter(&ctx);
    CHECK(ctx.vmfail == VMFAIL_VALID && ctx.insn_error == VMXERR_ENTRY_BAD_HOST_STATE, " %s", vmx_exit_str(&ctx));
    report_checks("pks_host_pkrs_reserved_vmfail_8");

    /* Without the controls the fields are not checked (nor loaded). */
    fresh(g_write_pkrs, 0, 0, BIT(63), BIT(63));
    ctx.regs[R_RDI] = 0;
    vmx_enter(&ctx);
    CHECK(vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx));
    report_checks("pks_unchecked_without_controls");
}

/* ---- (e) MSR bitmaps ------------------------------------------------------------------------- */

static void g_rdmsr_pkrs(void *a)
{
    uint32_t lo, hi;
    (void)a;
    asm volatile(MARK("rdmsr") : "=a"(lo), "=d"(hi) : "c"(MSR_IA32_PKRS) : "r11", "memory");
    g_val[0] = (uint64_t)hi << 32 | lo;
}

static void g_wrmsr_pkrs(void *a)
{
    (void)a;
    asm volatile(MARK("wrmsr") : : "c"(MSR_IA32_PKRS), "a"(0x00F00000), "d"(0) : "r11", "memory");
    g_val[0] = rdmsr(MSR_IA32_PKRS);
}

static void test_msr_bitmap(void)
{
    fresh(g_rdmsr_pkrs, ENTRY_LOAD_PKRS, EXIT_LOAD_PKRS, 0x00050000, 0);
    vmx_set_msr_bit(&ctx, MSR_READ_LOW, MSR_IA32_PKRS);
    vmx_enter(&ctx);
    if (check_exit(EXIT_MSR_READ)) {
        CHECK((uint32_t)ctx.regs[R_RCX] == MSR_IA32_PKRS, " ecx 0x%lx", ctx.regs[R_RCX]);
        ctx.regs[R_RAX] = 0x777;
        ctx.regs[R_RDX] = 0;
        skip_and_finish();
        CHECK(g_val[0] == 0x777, " the guest read 0x%lx, want the hypervisor's 0x777", g_val[0]);
    }
    report_checks("pks_msr_bitmap_read_exits");

    fresh(g_wrmsr_pkrs, ENTRY_LOAD_PKRS, EXIT_LOAD_PKRS, 0x00050000, 0);
    vmx_set_msr_bit(&ctx, MSR_WRITE_LOW, MSR_IA32_PKRS);
    vmx_enter(&ctx);
    if (check_exit(EXIT_MSR_WRITE)) {
        CHECK((uint32_t)ctx.regs[R_RCX] == MSR_IA32_PKRS && (uint32_t)ctx.regs[R_RAX] == 0x00F00000,
              " ecx 0x%lx eax 0x%lx", ctx.regs[R_RCX], ctx.regs[R_RAX]);
        skip_and_finish();
        CHECK(g_val[0] == 0x00050000, " the exiting WRMSR changed IA32_PKRS to 0x%lx", g_val[0]);
    }
    report_checks("pks_msr_bitmap_write_exits");

    fresh(g_wrmsr_pkrs, ENTRY_LOAD_PKRS, EXIT_LOAD_PKRS, 0x00050000, 0);
    vmx_set_msr_bit(&ctx, MSR_READ_LOW, MSR_IA32_PKRS + 1); /* a neighbour's bits do not matter */
    vmx_set_msr_bit(&ctx, MSR_WRITE_LOW, MSR_IA32_PKRS - 1);
    vmx_enter(&ctx);
    CHECK(vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx));
    CHECK(g_val[0] == 0x00F00000, " the guest read back 0x%lx", g_val[0]);
    CHECK(vmcs_read(GUEST_IA32_PKRS) == 0x00F00000, " GUEST_IA32_PKRS 0x%lx", vmcs_read(GUEST_IA32_PKRS));
    report_checks("pks_msr_bitmap_clear_no_exit");
}

/* ---- (f) protection-key faults in the guest's 64-bit kernel ---------------------------------- */

static uint64_t key_page[3][512] __aligned(4096);

/* OR U/S into the paging-structure entries above the leaf of va (the boot map has none). */
static void user_tables(uint64_t va)
{
    uint64_t *t = (uint64_t *)(uintptr_t)(read_cr3() & PTE_ADDR);
    for (int shift = 39; shift >= 21; shift -= 9) {
        uint64_t *e = &t[(va >> shift) & 511];
        *e |= PTE_U;
        t = (uint64_t *)(uintptr_t)(*e & PTE_ADDR);
    }
}

static void map_key_pages(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    for (int i = 0; i < 3; i++)
        key_page[i][0] = PAGE_MAGIC + (uint64_t)i;
    map_page_4k(VA_SUP, pa(key_page[0]), PTE_P | PTE_W | PTE_PKEY(KEY));
    map_page_4k(VA_MIX, pa(key_page[1]), PTE_P | PTE_W | PTE_PKEY(KEY));
    map_page_4k(VA_USER, pa(key_page[2]), PTE_P | PTE_W | PTE_U | PTE_PKEY(KEY));
    user_tables(VA_MIX);
    user_tables(VA_USER);
    write_cr3(read_cr3());
}

enum {
    P_AD_READ, P_AD_WRITE, P_WD_READ, P_WD_WRITE, P_WD_WRITE_WP0, P_MIX_READ, P_USER_READ, P_OTHER_KEY,
    P_PKS_OFF, P_NO_RIGHTS_WRITE, P_COUNT
};
/* What each access in the guest saw: vector (or -1), error code, CR2 (or the value read). */
static volatile uint64_t probes[3 * P_COUNT];

static void probe(unsigned i, uint64_t va, bool write, uint64_t val)
{
    uint64_t got = 0;
    exc_clear();
    if (write)
        asm volatile(ASM_TRY "movq %1, (%0)\n\t" ASM_TRY_END : : "r"(va), "r"(val) : "memory");
    else
        asm volatile(ASM_TRY "movq (%1), %0\n\t" ASM_TRY_END : "=r"(got) : "r"(va) : "memory");
    probes[3 * i] = (uint64_t)(int64_t)exc_last.vector;
    probes[3 * i + 1] = exc_last.error_code;
    probes[3 * i + 2] = exc_last.vector == PF_VECTOR ? exc_last.cr2 : got;
}

static void g_pks_probes(void *a)
{
    uint64_t cr4 = read_cr4() & ~X86_CR4_SMAP, cr0 = read_cr0();
    (void)a;
    write_cr4(cr4 | X86_CR4_PKS);
    wrmsr(MSR_IA32_PKRS, PKR_AD(KEY));
    probe(P_AD_READ, VA_SUP, false, 0);
    probe(P_AD_WRITE, VA_SUP, true, 1);
    probe(P_MIX_READ, VA_MIX, false, 0);
    probe(P_USER_READ, VA_USER, false, 0);
    wrmsr(MSR_IA32_PKRS, PKR_WD(KEY));
    probe(P_WD_READ, VA_SUP, false, 0);
    probe(P_WD_WRITE, VA_SUP, true, 2);
    write_cr0(cr0 & ~X86_CR0_WP);
    probe(P_WD_WRITE_WP0, VA_SUP, true, 3);
    write_cr0(cr0);
    wrmsr(MSR_IA32_PKRS, PKR_AD(KEY + 1) | PKR_WD(KEY + 1));
    probe(P_OTHER_KEY, VA_SUP, false, 0);
    write_cr4(cr4);
    wrmsr(MSR_IA32_PKRS, PKR_AD(KEY) | PKR_WD(KEY));
    probe(P_PKS_OFF, VA_SUP, false, 0);
    write_cr4(cr4 | X86_CR4_PKS);
    wrmsr(MSR_IA32_PKRS, 0);
    probe(P_NO_RIGHTS_WRITE, VA_SUP, true, 4);
    write_cr4(cr4);
}

static void run_probes(void)
{
    map_key_pages();
    key_page[0][0] = PAGE_MAGIC;
    memset((void *)probes, 0xff, sizeof probes);
    fresh(g_pks_probes, ENTRY_LOAD_PKRS, EXIT_LOAD_PKRS, 0, 0);
    vmx_enter(&ctx);
    CHECK(vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx));
}

#define PV(i) ((int64_t)probes[3 * (i)])
#define PE(i) (probes[3 * (i) + 1])
#define PX(i) (probes[3 * (i) + 2])

static void expect_pf(unsigned i, uint64_t va, uint64_t err, const char *what)
{
    CHECK(PV(i) == PF_VECTOR && PE(i) == err && PX(i) == va, " %s: vector %ld error 0x%lx cr2 0x%lx, want #PF 0x%lx",
          what, PV(i), PE(i), PX(i), err);
}

static void expect_ok(unsigned i, const char *what)
{
    CHECK(PV(i) == -1, " %s: vector %ld error 0x%lx", what, PV(i), PE(i));
}

static void test_pks_faults(void)
{
    run_probes();
    expect_pf(P_AD_READ, VA_SUP, PFERR_P | PFERR_PK, "AD: read");
    expect_pf(P_AD_WRITE, VA_SUP, PFERR_P | PFERR_W | PFERR_PK, "AD: write");
    report_checks("pks_pf_access_disable");
    expect_ok(P_WD_READ, "WD: read");
    CHECK(PV(P_WD_READ) != -1 || PX(P_WD_READ) == PAGE_MAGIC, " WD: read 0x%lx", PX(P_WD_READ));
    expect_pf(P_WD_WRITE, VA_SUP, PFERR_P | PFERR_W | PFERR_PK, "WD: write with CR0.WP = 1");
    report_checks("pks_pf_write_disable");
    expect_ok(P_WD_WRITE_WP0, "WD: write with CR0.WP = 0");
    CHECK(key_page[0][0] == 4 || key_page[0][0] == 3, " page holds 0x%lx", key_page[0][0]);
    report_checks("pks_wd_ignored_when_wp_clear");
    /* SDM Vol. 3A §4.6.1: U/S = 0 in any paging-structure entry makes the address supervisor. */
    expect_pf(P_MIX_READ, VA_MIX, PFERR_P | PFERR_PK, "supervisor leaf under user tables");
    report_checks("pks_supervisor_leaf_under_user_tables");
    expect_ok(P_USER_READ, "user page (PKS covers supervisor pages only)");
    CHECK(PV(P_USER_READ) != -1 || PX(P_USER_READ) == PAGE_MAGIC + 2, " user page read 0x%lx", PX(P_USER_READ));
    expect_ok(P_OTHER_KEY, "rights of another key");
    expect_ok(P_PKS_OFF, "CR4.PKS = 0");
    expect_ok(P_NO_RIGHTS_WRITE, "IA32_PKRS = 0");
    CHECK(key_page[0][0] == 4, " the last write left 0x%lx", key_page[0][0]);
    report_checks("pks_not_for_user_pages_other_keys_or_pks_off");
}

/* #PF through the exception bitmap: the hypervisor sees PK in VM_EXIT_INTR_ERROR_CODE. */
static void g_pks_read_fault(void *a)
{
    (void)a;
    write_cr4((read_cr4() & ~X86_CR4_SMAP) | X86_CR4_PKS);
    wrmsr(MSR_IA32_PKRS, PKR_AD(KEY));
    asm volatile(MARK("movq (%0), %%rax") : : "r"(VA_SUP) : "rax", "r11", "memory");
}

static void test_pf_exit(void)
{
    map_key_pages();
    exc_clear();
    g_rip = g_end = 0;
    vmx_ctx_init(&ctx, g_pks_read_fault, NULL,
                 &(struct vmx_extras){.proc = CPU_MSR_BITMAPS, .entry = ENTRY_LOAD_PKRS, .exit = EXIT_LOAD_PKRS,
                                      .exc_bitmap = 1u << PF_VECTOR});
    vmcs_write(GUEST_IA32_PKRS, 0);
    vmcs_write(HOST_IA32_PKRS, 0);
    vmx_enter(&ctx);
    if (CHECK(ctx.vmfail == VMSUCCEED && ctx.exit_reason == EXIT_EXCEPTION_NMI, " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.intr_info == INTR_INFO(PF_VECTOR, INTR_TYPE_HW_EXC, true), " intr info 0x%x", ctx.intr_info);
        CHECK(ctx.intr_error == (PFERR_P | PFERR_PK), " error code 0x%x, want 0x21 (P | PK)", ctx.intr_error);
        CHECK(ctx.exit_qual == VA_SUP, " qualification 0x%lx, want the address", ctx.exit_qual);
        CHECK(ctx.guest_rip == g_rip, " GUEST_RIP 0x%lx, instruction at 0x%lx", ctx.guest_rip, g_rip);
        CHECK(vmcs_read(GUEST_IA32_PKRS) == PKR_AD(KEY), " GUEST_IA32_PKRS 0x%lx", vmcs_read(GUEST_IA32_PKRS));
    }
    CHECK(rdmsr(MSR_IA32_PKRS) == 0, " host IA32_PKRS 0x%lx", rdmsr(MSR_IA32_PKRS));
    report_checks("pks_pf_exit_error_code");
}

/* ---- (g) a CPU without PKS --------------------------------------------------------------- */

static void g_pks_absent(void *a)
{
    uint64_t v = 0;
    (void)a;
    g_val[0] = (uint64_t)(int64_t)mov_cr4_try(read_cr4() | X86_CR4_PKS);
    g_val[1] = (uint64_t)(int64_t)rdmsr_try(MSR_IA32_PKRS, &v);
    g_val[2] = (uint64_t)(int64_t)wrmsr_try(MSR_IA32_PKRS, 0);
    g_val[3] = read_cr4();
}

static void test_absent(void)
{
    uint64_t v = 0;
    uint32_t r[4];
    cpuid(7, 0, r);
    CHECK(!(r[2] >> 31), " CPUID.(7,0):ECX 0x%x has PKS", r[2]);
    CHECK(!((rdmsr(MSR_IA32_VMX_TRUE_ENTRY_CTLS) >> 32) & ENTRY_LOAD_PKRS), " TRUE_ENTRY_CTLS allows load PKRS");
    CHECK(!((rdmsr(MSR_IA32_VMX_TRUE_EXIT_CTLS) >> 32) & EXIT_LOAD_PKRS), " TRUE_EXIT_CTLS allows load PKRS");
    CHECK(!((rdmsr(MSR_IA32_VMX_ENTRY_CTLS) >> 32) & ENTRY_LOAD_PKRS), " ENTRY_CTLS allows load PKRS");
    CHECK(!((rdmsr(MSR_IA32_VMX_EXIT_CTLS) >> 32) & EXIT_LOAD_PKRS), " EXIT_CTLS allows load PKRS");
    CHECK(!(rdmsr(MSR_IA32_VMX_CR4_FIXED1) & X86_CR4_PKS), " CR4_FIXED1 allows CR4.PKS");
    report_checks("pks_absent_cpuid_and_caps");

    CHECK(mov_cr4_try(read_cr4() | X86_CR4_PKS) == GP_VECTOR, " MOV to CR4 with PKS: vector %d", exc_last.vector);
    CHECK(!(read_cr4() & X86_CR4_PKS), " CR4.PKS set");
    report_checks("pks_absent_cr4_gp_root");

    CHECK(rdmsr_try(MSR_IA32_PKRS, &v) == GP_VECTOR, " RDMSR 6E1H: vector %d", exc_last.vector);
    CHECK(wrmsr_try(MSR_IA32_PKRS, 0) == GP_VECTOR, " WRMSR 6E1H: vector %d", exc_last.vector);
    report_checks("pks_absent_msr_gp_root");

    /* In the guest, MSR bitmaps all clear: no exit, the instructions fault as on bare metal. */
    exc_clear();
    memset((void *)g_val, 0, sizeof g_val);
    vmx_ctx_init(&ctx, g_pks_absent, NULL, &(struct vmx_extras){.proc = CPU_MSR_BITMAPS});
    vmx_enter(&ctx);
    if (CHECK(vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx))) {
        CHECK((int64_t)g_val[0] == GP_VECTOR, " guest MOV to CR4 with PKS: vector %ld", (int64_t)g_val[0]);
        CHECK((int64_t)g_val[1] == GP_VECTOR, " guest RDMSR 6E1H: vector %ld", (int64_t)g_val[1]);
        CHECK((int64_t)g_val[2] == GP_VECTOR, " guest WRMSR 6E1H: vector %ld", (int64_t)g_val[2]);
        CHECK(!(g_val[3] & X86_CR4_PKS), " guest CR4 0x%lx", g_val[3]);
    }
    report_checks("pks_absent_guest_cr4_and_msr_gp");

    exc_clear();
    vmx_ctx_init(&ctx, g_nothing, NULL, NULL);
    vmcs_write(VM_ENTRY_CONTROLS, ctx.entry_ctl | (uint32_t)ENTRY_LOAD_PKRS);
    vmx_enter(&ctx);
    CHECK(ctx.vmfail == VMFAIL_VALID && ctx.insn_error == VMXERR_ENTRY_BAD_CONTROL, " %s", vmx_exit_str(&ctx));
    report_checks("pks_absent_entry_control_vmfail_7");

    exc_clear();
    vmx_ctx_init(&ctx, g_nothing, NULL, NULL);
    vmcs_write(VM_EXIT_CONTROLS, ctx.exit_ctl | (uint32_t)EXIT_LOAD_PKRS);
    vmx_enter(&ctx);
    CHECK(ctx.vmfail == VMFAIL_VALID && ctx.insn_error == VMXERR_ENTRY_BAD_CONTROL, " %s", vmx_exit_str(&ctx));
    report_checks("pks_absent_exit_control_vmfail_7");

    /* Appendix B: the fields exist only with the 1-setting of the load-PKRS controls. */
    vmx_ctx_init(&ctx, g_nothing, NULL, NULL);
    CHECK(vmread_raw(GUEST_IA32_PKRS, &v) == VMFAIL_VALID && vmx_insn_error() == VMXERR_UNSUPPORTED_COMPONENT,
          " VMREAD GUEST_IA32_PKRS: error %u", vmx_insn_error());
    CHECK(vmwrite_raw(HOST_IA32_PKRS, 0) == VMFAIL_VALID && vmx_insn_error() == VMXERR_UNSUPPORTED_COMPONENT,
          " VMWRITE HOST_IA32_PKRS: error %u", vmx_insn_error());
    report_checks("pks_absent_vmcs_fields");
}

void hv_test_main(void)
{
    if (!vmx_enable())
        return;
    if (!has_pks()) {
        report_info("CPUID reports no PKS: checking that it behaves as absent hardware");
        test_absent();
        return;
    }
    test_enumeration();
    test_msr_root();
    test_guest_paging_off();
    test_host_pkrs();
    test_guest_pkrs_saved();
    test_field_checks();
    test_msr_bitmap();
    test_pks_faults();
    test_pf_exit();
}
