/*
 * State that VM entries and exits do not switch, and code and translations
 * that must stay coherent across them. vmxsim runs VMX root operation and
 * each guest VMCS in separate engines (src/cpu/contexts.c); on hardware
 * they are one processor, so:
 * - the GPRs, x87/SSE registers, DR0-DR3 and MSRs without a VMCS field
 *   (IA32_KERNEL_GS_BASE here) are what the other side left
 *   (SDM Vol. 3C §28.1: "the processor state not loaded ... is unchanged");
 * - a store to code is seen by the next instruction fetch from it, whoever
 *   wrote it (the host, another guest, or a VMX instruction's memory
 *   operand) and whatever the writer did with the page before (a load)
 *   (Vol. 3A §9.1.3 "Handling Self- and Cross-Modifying Code");
 * - an EPT change followed by INVEPT is seen by the guest (Vol. 3C §29.4.3.1);
 * - a guest page-table change is seen after a VM entry without VPID (entries
 *   and exits then invalidate VPID 0's linear mappings, §29.4.3.1), and with
 *   VPID after INVVPID for the guest's VPID;
 * - more guests than vmxsim keeps engines for still run correctly.
 *
# ARGS: --cpu sapphire-rapids
# EXPECT-OUT: PASS sse_registers_not_switched
# EXPECT-OUT: PASS kernel_gs_base_not_switched
# EXPECT-OUT: PASS dr0_dr3_not_switched
# EXPECT-OUT: PASS guest_rewrites_host_code
# EXPECT-OUT: PASS guest_reads_then_rewrites_host_code
# EXPECT-OUT: PASS guest_rewrites_other_guests_code
# EXPECT-OUT: PASS vmread_to_memory_rewrites_guest_code
# EXPECT-OUT: PASS ept_remap_after_invept_seen
# EXPECT-OUT: PASS pte_change_seen_after_entry_without_vpid
# EXPECT-OUT: PASS pte_change_seen_after_invvpid
# EXPECT-OUT: PASS seven_guests_round_robin
# EXPECT-EXIT: 1
 */
#include "ept_map.h"
#include "guest.h"

#define MSR_IA32_KERNEL_GS_BASE MSR_KERNEL_GS_BASE
#define STEP_MARK 0x57455053ull /* RAX of an intermediate VMCALL ("STEP") */

static const struct vmx_extras vpid_extras = {.proc2 = (uint32_t)CPU2_VPID};

static void step_vmcall(uint64_t rbx)
{
    uint64_t a = STEP_MARK;
    asm volatile("vmcall" : "+a"(a) : "b"(rbx) : "memory");
}

/* An intermediate VMCALL happened (not the guest's final one). */
static bool at_step(const struct vmx_test_ctx *c)
{
    return CHECK(c->vmfail == VMSUCCEED && c->exit_reason == EXIT_VMCALL && c->regs[R_RAX] == STEP_MARK,
                 " want the guest's step VMCALL, got %s", vmx_exit_str(c));
}

/* ---- registers VMX does not switch ------------------------------------------------------------- */

static const uint64_t xmm_guest[2] = {0x1122334455667788ull, 0x99AABBCCDDEEFF00ull};
static const uint64_t xmm_host[2] = {0x0F1E2D3C4B5A6978ull, 0x8796A5B4C3D2E1F0ull};

static void g_sse(void *arg)
{
    (void)arg;
    /* No clobber named: the code is built with -mgeneral-regs-only, the compiler keeps off XMM. */
    asm volatile("movdqu %0, %%xmm0" : : "m"(xmm_guest));
    step_vmcall(0);
    asm volatile("movdqu %%xmm1, %0" : "=m"(*(volatile uint64_t(*)[2])g_val) : : "memory");
}

static void test_sse(void)
{
    uint64_t got[2];
    start_guest(g_sse, NULL, &vpid_extras);
    if (at_step(&ctx)) {
        asm volatile("movdqu %%xmm0, %0" : "=m"(got));
        CHECK(got[0] == xmm_guest[0] && got[1] == xmm_guest[1], " host's XMM0 after the exit: %lx %lx", got[0],
              got[1]);
        asm volatile("movdqu %0, %%xmm1" : : "m"(xmm_host));
        if (CHECK(vmx_skip_and_enter(&ctx) == VMSUCCEED && vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx)))
            CHECK(g_val[0] == xmm_host[0] && g_val[1] == xmm_host[1], " guest's XMM1 after the entry: %lx %lx",
                  g_val[0], g_val[1]);
    }
    report_checks("sse_registers_not_switched");
}

static void g_swapgs(void *arg)
{
    (void)arg;
    asm volatile("swapgs" : : : "memory");
}

/* SWAPGS in the guest: IA32_KERNEL_GS_BASE has no VMCS field, the host sees the guest's. */
static void test_kernel_gs_base(void)
{
    const uint64_t host_kgs = 0x1111000, guest_gs = 0x2222000;
    uint64_t saved = rdmsr(MSR_IA32_KERNEL_GS_BASE);
    exc_clear();
    wrmsr(MSR_IA32_KERNEL_GS_BASE, host_kgs);
    vmx_ctx_init(&ctx, g_swapgs, NULL, &vpid_extras);
    vmcs_write(GUEST_GS_BASE, guest_gs);
    if (CHECK(vmx_enter(&ctx) == VMSUCCEED && vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx))) {
        CHECK(rdmsr(MSR_IA32_KERNEL_GS_BASE) == guest_gs, " IA32_KERNEL_GS_BASE 0x%lx, want the guest's 0x%lx",
              rdmsr(MSR_IA32_KERNEL_GS_BASE), guest_gs);
        CHECK(vmcs_read(GUEST_GS_BASE) == host_kgs, " GUEST_GS_BASE 0x%lx, want 0x%lx", vmcs_read(GUEST_GS_BASE),
              host_kgs);
    }
    wrmsr(MSR_IA32_KERNEL_GS_BASE, saved);
    report_checks("kernel_gs_base_not_switched");
}

static void g_dr(void *arg)
{
    (void)arg;
    uint64_t v;
    asm volatile("mov %%dr0, %0" : "=r"(v));
    g_val[0] = v;
    v = 0x3000;
    asm volatile("mov %0, %%dr1" : : "r"(v));
}

/* Without "MOV-DR exiting" the guest reads the host's DR0; the host reads the guest's DR1. */
static void test_debug_registers(void)
{
    uint64_t v = 0x4000;
    asm volatile("mov %0, %%dr0" : : "r"(v));
    v = 0;
    asm volatile("mov %0, %%dr1" : : "r"(v));
    exc_clear();
    for (unsigned i = 0; i < ARRAY_SIZE(g_val); i++)
        g_val[i] = 0;
    vmx_ctx_init(&ctx, g_dr, NULL, &vpid_extras);
    if (CHECK(!(ctx.proc & CPU_MOV_DR), " MOV-DR exiting is fixed to 1") &&
        CHECK(vmx_enter(&ctx) == VMSUCCEED && vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx))) {
        CHECK(g_val[0] == 0x4000, " guest's DR0 0x%lx, want 0x4000", g_val[0]);
        asm volatile("mov %%dr1, %0" : "=r"(v));
        CHECK(v == 0x3000, " host's DR1 0x%lx, want 0x3000", v);
    }
    v = 0;
    asm volatile("mov %0, %%dr0\n\tmov %0, %%dr1" : : "r"(v));
    report_checks("dr0_dr3_not_switched");
}

/* ---- code written on one side, run on the other --------------------------------------------- */

/* A page of code: "mov $imm32, %eax; ret" at offset 0, "movabs $imm64, %rax; ret" at 16. */
static uint8_t code_page[4096] __aligned(4096);

static void put_ret_imm32(uint32_t v)
{
    volatile uint8_t *p = code_page;
    p[0] = 0xB8;
    for (int i = 0; i < 4; i++)
        p[1 + i] = (uint8_t)(v >> (8 * i));
    p[5] = 0xC3;
}

static void put_ret_imm64(uint64_t v)
{
    volatile uint8_t *p = code_page + 16;
    p[0] = 0x48;
    p[1] = 0xB8;
    for (int i = 0; i < 8; i++)
        p[2 + i] = (uint8_t)(v >> (8 * i));
    p[10] = 0xC3;
}

static uint64_t call_code(unsigned off)
{
    uint64_t (*fn)(void) = (uint64_t(*)(void))(uintptr_t)(code_page + off);
    return fn();
}

static void g_patch(void *arg)
{
    put_ret_imm32((uint32_t)(uintptr_t)arg);
}

/* The host runs the page, a guest rewrites it (natively), the host runs it again. */
static void test_guest_rewrites_host_code(void)
{
    put_ret_imm32(0x1001);
    CHECK(call_code(0) == 0x1001, " host's first call");
    for (uint32_t v = 0x2002; v <= 0x3003; v += 0x1001) {
        start_guest(g_patch, (void *)(uintptr_t)v, &vpid_extras);
        if (CHECK(ctx.vmfail == VMSUCCEED && vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx)))
            CHECK(call_code(0) == v, " host ran 0x%lx after the guest wrote 0x%x", call_code(0), v);
    }
    report_checks("guest_rewrites_host_code");
}

static void g_read_then_patch(void *arg)
{
    g_val[0] = *(volatile uint8_t *)code_page; /* a load first: the page's translation is made for reading */
    put_ret_imm32((uint32_t)(uintptr_t)arg);
}

/* The guest's first access to the host's code page is a load; its store must still be seen. */
static void test_guest_reads_then_rewrites_host_code(void)
{
    put_ret_imm32(0x7007);
    CHECK(call_code(0) == 0x7007, " host's first call");
    start_guest(g_read_then_patch, (void *)(uintptr_t)0x8008, &vpid_extras);
    if (CHECK(ctx.vmfail == VMSUCCEED && vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx))) {
        CHECK(g_val[0] == 0xB8, " the guest read 0x%lx", g_val[0]);
        CHECK(call_code(0) == 0x8008, " host ran 0x%lx after the guest wrote 0x8008", call_code(0));
    }
    report_checks("guest_reads_then_rewrites_host_code");
}

static uint8_t vmcs_a[4096] __aligned(4096), vmcs_b[4096] __aligned(4096);
static uint8_t stack_a[4096] __aligned(16), stack_b[4096] __aligned(16);

static void g_call(void *arg)
{
    (void)arg;
    g_val[0] = call_code(0);
}

/* Guest A runs the page, guest B (another VMCS) rewrites it, guest A runs it again. */
static void test_guest_rewrites_other_guests_code(void)
{
    struct vmx_test_ctx a, b;
    put_ret_imm32(0x4004);
    for (int round = 0; round < 2; round++) {
        uint32_t want = round ? 0x5005 : 0x4004;
        g_val[0] = 0;
        vmx_ctx_init_in(&a, vmcs_a, stack_a + sizeof stack_a, g_call, NULL, &vpid_extras);
        if (CHECK(vmx_enter(&a) == VMSUCCEED && vmx_guest_done(&a), " guest A: %s", vmx_exit_str(&a)))
            CHECK(g_val[0] == want, " guest A ran 0x%lx, want 0x%x", g_val[0], want);
        vmx_ctx_init_in(&b, vmcs_b, stack_b + sizeof stack_b, g_patch, (void *)(uintptr_t)0x5005, &vpid_extras);
        CHECK(vmx_enter(&b) == VMSUCCEED && vmx_guest_done(&b), " guest B: %s", vmx_exit_str(&b));
    }
    report_checks("guest_rewrites_other_guests_code");
}

static void g_imm64_twice(void *arg)
{
    (void)arg;
    g_val[0] = call_code(16);
    step_vmcall(0);
    g_val[1] = call_code(16);
}

/* VMREAD with a memory destination (an emulated store) into the immediate of the guest's code. */
static void test_vmread_to_code(void)
{
    const uint64_t val = 0x5CA1AB1E600DCAFEull;
    put_ret_imm64(0x6006);
    start_guest(g_imm64_twice, NULL, &vpid_extras);
    if (at_step(&ctx)) {
        CHECK(g_val[0] == 0x6006, " first run 0x%lx", g_val[0]);
        vmcs_write(CR3_TARGET_VALUE0, val); /* no effect: CR3-target count is 0 */
        uint64_t field = CR3_TARGET_VALUE0;
        asm volatile("vmread %1, %0" : "=m"(*(uint64_t *)(code_page + 18)) : "r"(field) : "cc", "memory");
        if (CHECK(vmx_skip_and_enter(&ctx) == VMSUCCEED && vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx)))
            CHECK(g_val[1] == val, " second run 0x%lx, want 0x%lx", g_val[1], val);
    }
    report_checks("vmread_to_memory_rewrites_guest_code");
}

/* ---- translations ----------------------------------------------------------------------------- */

static struct ept_map ept;
static uint64_t page_x[512] __aligned(4096), page_y[512] __aligned(4096);

static void g_read_x_twice(void *arg)
{
    (void)arg;
    g_val[0] = *(volatile uint64_t *)page_x;
    step_vmcall(0);
    g_val[1] = *(volatile uint64_t *)page_x;
}

/* With VPID and EPT: the host remaps a guest-physical page and runs INVEPT; the guest sees the new page. */
static void test_ept_remap(void)
{
    struct vmx_extras ex = {.proc2 = (uint32_t)(CPU2_EPT | CPU2_VPID)};
    page_x[0] = 0xAAAA;
    page_y[0] = 0xBBBB;
    ept_map_init(&ept, (hv_ram_size + 0x1FFFFF) & ~0x1FFFFFull);
    exc_clear();
    vmx_ctx_init(&ctx, g_read_x_twice, NULL, &ex);
    vmcs_write(EPT_POINTER, ept_eptp(&ept, false));
    CHECK(ept_invept(&ept) == VMSUCCEED, " INVEPT failed (error %u)", vmx_insn_error());
    vmx_enter(&ctx);
    if (at_step(&ctx)) {
        CHECK(g_val[0] == 0xAAAA, " first read 0x%lx", g_val[0]);
        uint64_t *pte = ept_pte(&ept, (uint64_t)(uintptr_t)page_x);
        *pte = (*pte & ~ept.addr_mask) | (uint64_t)(uintptr_t)page_y;
        CHECK(ept_invept(&ept) == VMSUCCEED, " INVEPT failed (error %u)", vmx_insn_error());
        if (CHECK(vmx_skip_and_enter(&ctx) == VMSUCCEED && vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx)))
            CHECK(g_val[1] == 0xBBBB, " second read 0x%lx, want the new page's 0xBBBB", g_val[1]);
    }
    report_checks("ept_remap_after_invept_seen");
}

#define REMAP_VA 0x40000000000ull /* 4 TiB: mapped only by the test's own 4-KiB PTE */
#define INVVPID_SINGLE_CONTEXT 1ull

static void g_read_va_twice(void *arg)
{
    (void)arg;
    g_val[0] = *(volatile uint64_t *)(uintptr_t)REMAP_VA;
    step_vmcall(0);
    g_val[1] = *(volatile uint64_t *)(uintptr_t)REMAP_VA;
}

/*
 * The guest shares the host's page tables. Between its two reads the host
 * points REMAP_VA's PTE at another page with a plain store (no INVLPG), and
 * with VPID runs INVVPID single-context for the guest's VPID (1).
 */
static void pte_change(bool vpid, const char *name)
{
    struct vmx_extras ex = {.proc2 = vpid ? (uint32_t)CPU2_VPID : 0};
    page_x[0] = 0xAAAA;
    page_y[0] = 0xBBBB;
    map_page_4k(REMAP_VA, (uint64_t)(uintptr_t)page_x, PTE_P | PTE_W);
    start_guest(g_read_va_twice, NULL, &ex);
    if (at_step(&ctx)) {
        CHECK(g_val[0] == 0xAAAA, " first read 0x%lx", g_val[0]);
        uint64_t *pte = guest_pte_at(REMAP_VA, 1);
        if (CHECK(pte != NULL, " no PTE for the test address")) {
            *pte = (uint64_t)(uintptr_t)page_y | PTE_P | PTE_W;
            if (vpid) {
                struct invvpid_desc d = {.vpid = 1};
                CHECK(invvpid(INVVPID_SINGLE_CONTEXT, &d) == VMSUCCEED, " INVVPID failed (error %u)",
                      vmx_insn_error());
            }
        }
        if (CHECK(vmx_skip_and_enter(&ctx) == VMSUCCEED && vmx_guest_done(&ctx), " %s", vmx_exit_str(&ctx)))
            CHECK(g_val[1] == 0xBBBB, " second read 0x%lx, want the new page's 0xBBBB", g_val[1]);
    }
    map_page_4k(REMAP_VA, 0, 0);
    report_checks(name);
}

/* ---- more guests than engines --------------------------------------------------------------------- */

#define N_GUESTS 7
#define N_STEPS 3

static void g_counter(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    for (uint64_t k = 0; k < N_STEPS; k++)
        step_vmcall(id * 100 + k);
}

/* Seven VMCSs entered in turn, each guest in the middle of its own loop. */
static void test_round_robin(void)
{
    static struct vmx_test_ctx g[N_GUESTS];
    for (unsigned i = 0; i < N_GUESTS; i++) {
        uint8_t *vmcs = alloc_page(), *stack = alloc_page();
        vmx_ctx_init_in(&g[i], vmcs, stack + PAGE_SIZE, g_counter, (void *)(uintptr_t)i, &vpid_extras);
    }
    for (unsigned k = 0; k <= N_STEPS; k++)
        for (unsigned i = 0; i < N_GUESTS; i++) {
            vmx_ctx_load(&g[i]);
            int r = k ? vmx_skip_and_enter(&g[i]) : vmx_enter(&g[i]);
            if (!CHECK(r == VMSUCCEED, " guest %u step %u: %s", i, k, vmx_exit_str(&g[i])))
                continue;
            if (k == N_STEPS)
                CHECK(vmx_guest_done(&g[i]), " guest %u did not finish: %s", i, vmx_exit_str(&g[i]));
            else if (at_step(&g[i]))
                CHECK(g[i].regs[R_RBX] == i * 100 + k, " guest %u step %u reported %lu", i, k, g[i].regs[R_RBX]);
        }
    report_checks("seven_guests_round_robin");
}

void hv_test_main(void)
{
    test_sse();
    test_kernel_gs_base();
    test_debug_registers();
    test_guest_rewrites_host_code();
    test_guest_reads_then_rewrites_host_code();
    test_guest_rewrites_other_guests_code();
    test_vmread_to_code();
    test_ept_remap();
    pte_change(false, "pte_change_seen_after_entry_without_vpid");
    pte_change(true, "pte_change_seen_after_invvpid");
    test_round_robin();
}
