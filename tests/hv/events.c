/*
 * Events in VMX non-root operation (SDM Vol. 3C §26.2, §26.5.1, §26.5.2,
 * §27.6.2, §27.7.1, §27.7.2, §27.7.4, §27.7.5, §28.1, §28.2.1, §28.2.2,
 * §28.3.4; local APIC: Vol. 3A chapter 11):
 *   - monitor trap flag: an MTF exit (37) after each guest instruction, with
 *     GUEST_RIP at the next one, also in code that ran before without MTF;
 *     an instruction that exits itself (CPUID) gives its own exit, not an
 *     MTF exit; clearing the control lets the guest run on; MTF exits come
 *     after the delivery of a fault and before the first instruction after
 *     an injected event; a pending MTF exit can be injected (type 7,
 *     vector 0) without the control;
 *   - interrupt-window exiting (7): at entry when RFLAGS.IF = 1; after STI
 *     only once its blocking has ended; blocking by STI loaded from the
 *     interruptibility state holds it back for one instruction; a guest that
 *     exited in an STI shadow and is re-entered with that blocking cleared
 *     from the field is not blocked any more (§27.7.1);
 *   - external-interrupt exiting (1), whatever the guest's RFLAGS.IF: with
 *     "acknowledge interrupt on exit" the vector is in the exit interruption
 *     information and the interrupt is in service (IRR clear, ISR set);
 *     without it the information is invalid and the interrupt stays pending,
 *     to be delivered in the host once it executes STI;
 *   - VMX-preemption timer (52): after value << IA32_VMX_MISC[4:0] TSC
 *     cycles; "save VMX-preemption timer value" stores what is left on other
 *     exits (and 0 when it expired); without it the field is not modified;
 *     value 0 exits before the first guest instruction; it wakes a HLT;
 *   - HLT: activity state HLT at VM entry executes nothing until an event;
 *     exits out of the HLT state save activity state HLT (§28.1, §28.3.4).
 *
# ARGS: --cpu sapphire-rapids
# EXPECT-OUT: PASS mtf_exits_after_each_instruction
# EXPECT-OUT: PASS mtf_exiting_instruction_exits_instead
# EXPECT-OUT: PASS mtf_cleared_guest_runs_on
# EXPECT-OUT: PASS mtf_exit_after_fault_delivery
# EXPECT-OUT: PASS mtf_steps_code_that_ran_before
# EXPECT-OUT: PASS mtf_exit_before_injected_event_handler
# EXPECT-OUT: PASS mtf_pending_exit_injected
# EXPECT-OUT: PASS intr_window_exit_at_entry_when_if_set
# EXPECT-OUT: PASS intr_window_exit_after_sti_blocking
# EXPECT-OUT: PASS intr_window_held_by_entry_sti_blocking
# EXPECT-OUT: PASS intr_window_after_exit_in_sti_shadow_cleared
# EXPECT-OUT: PASS ext_intr_exit_with_ack
# EXPECT-OUT: PASS ext_intr_exit_without_ack_stays_pending
# EXPECT-OUT: PASS preemption_timer_expires
# EXPECT-OUT: PASS preemption_timer_value_saved
# EXPECT-OUT: PASS preemption_timer_value_not_saved_without_control
# EXPECT-OUT: PASS preemption_timer_wakes_guest_hlt
# EXPECT-OUT: PASS preemption_timer_zero_exits_before_first_instruction
# EXPECT-OUT: PASS guest_hlt_ext_intr_exit_saves_hlt_state
# EXPECT-OUT: PASS activity_hlt_at_entry_waits_for_interrupt
# EXPECT-EXIT: 1
 */
#include "guest.h"

/* Known vmxsim bugs (see the report): sub-tests expected to fail until fixed. */
#define MTF_INJECTED_EVENT "mtf_exit_before_injected_event_handler"
#define MTF_PENDING "mtf_pending_exit_injected"
#define MTF_CACHED "mtf_steps_code_that_ran_before"
#define IW_ENTRY_STI "intr_window_held_by_entry_sti_blocking"
#define PT_ZERO "preemption_timer_zero_exits_before_first_instruction"
#define HLT_AT_ENTRY "activity_hlt_at_entry_waits_for_interrupt"

#define EXIT_SAVE_PREEMPTION_TIMER BIT(22) /* VM-exit control (Table 25-13) */
#define VMX_PREEMPTION_TIMER_VALUE 0x482E  /* guest-state field (Appendix B.3.3) */
#define ACTIVITY_HLT 1
#define INTR_STATE_STI BIT(0)
#define TIMER_VECTOR 0x50

extern char hv_exc_stubs[]; /* the shared IDT's entry points, 16 bytes apart (entry.S) */
static uint64_t exc_stub(unsigned vector) { return (uint64_t)(uintptr_t)hv_exc_stubs + 16 * vector; }

/* Busy-wait n PAUSEs (events are recognised at the boundaries in between). */
static __noinline void spin(unsigned n)
{
    if (n)
        asm volatile("1: pause\n\tsub $1, %0\n\tja 1b" : "+r"(n) : : "memory", "cc");
}

/*
 * An xAPIC write, then PAUSE. vmxsim emulates PAUSE, so it stops there, and an
 * event the write made pending (IPI, EOI, timer) is recognised at that exact
 * boundary. Otherwise it is recognised at a later block boundary, where
 * vmxsim may report a stale RIP: event_rip_in_repeated_code (events_nmi.c)
 * documents that bug; the other sub-tests stay clear of it.
 */
static __noinline void apic_wr(uint32_t reg, uint32_t v)
{
    apic_write(reg, v);
    asm volatile("pause" : : : "memory");
}

/* A fresh context without entering it. */
static void init_guest(void (*fn)(void *), const struct vmx_extras *ex)
{
    exc_clear();
    exc_return_ok = false;
    g_rip = g_end = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(g_val); i++)
        g_val[i] = 0;
    vmx_ctx_init(&ctx, fn, NULL, ex);
    CHECK(!ctx.ctl_unsupported, " a requested control is not supported");
}

static bool exit_is(uint32_t reason) { return ctx.vmfail == VMSUCCEED && ctx.exit_reason == reason; }

/* Resume with a control cleared and expect the guest to finish. */
static bool finish_without(uint32_t field, uint32_t value, uint32_t clear)
{
    vmcs_write(field, value & ~clear);
    vmx_enter(&ctx);
    return vmx_finish(&ctx);
}

/* ---- Local APIC timer ------------------------------------------------------------------------ */

/* One-shot timer, divide by 1, TIMER_VECTOR (Vol. 3A §11.5.4). */
static void apic_timer_arm(uint32_t count)
{
    apic_wr(APIC_REG_TIMER_DIVIDE, 0xB);
    apic_wr(APIC_REG_LVT_TIMER, TIMER_VECTOR);
    apic_wr(APIC_REG_TIMER_INITIAL, count);
}

/*
 * HOST_RIP of the sub-tests that use the timer: stop the one-shot timer (it
 * fired, or the sub-test failed) and raise the TPR to 0xF0 (that masks
 * every interrupt by priority, Vol. 3A §11.8.3), then the library's exit
 * stub. What the timer requested stays requested, but no timer deadline
 * and nothing deliverable is left while the host does its bookkeeping with
 * IF = 0 (vmxsim would stop at block boundaries for them, where it may
 * report a stale RIP), until host_unmask_and_take() lets it in.
 */
void exit_stub_quiet_apic(void);
asm(".text\n"
    "exit_stub_quiet_apic:\n"
    "    push %rax\n"
    "    movabs $0xFEE00380, %rax\n" /* timer initial count */
    "    movl $0, (%rax)\n"
    "    pause\n"
    "    movabs $0xFEE00080, %rax\n" /* TPR */
    "    movl $0xF0, (%rax)\n"
    "    pause\n"
    "    pop %rax\n"
    "    jmp hv_vmexit_stub\n");

/*
 * TPR = 0 with RFLAGS.IF = 0: the interrupt is deliverable but IF holds it
 * (a few instruction boundaries pass); then STI. Returns the number of
 * events the host took before the STI.
 */
static __noinline unsigned host_unmask_and_take(void)
{
    unsigned held;
    asm volatile("movl $0, (%1)\n\t"
                 "pause\n\tpause\n\tpause\n\tpause\n\t" /* boundaries with IF = 0 */
                 "movl %2, %0\n\t"
                 "sti\n\tnop\n\tnop\n\tcli"
                 : "=&r"(held)
                 : "r"(APIC_DEFAULT_BASE + APIC_REG_TPR), "m"(exc_last.count)
                 : "memory");
    return held;
}

/* Arm the timer for the guest about to run; its exits come through exit_stub_quiet_apic. */
static void arm_guest_timer(uint32_t count)
{
    vmcs_write(HOST_RIP, (uint64_t)(uintptr_t)exit_stub_quiet_apic);
    apic_timer_arm(count);
}

/* Stop the timer, take whatever is still requested (vectors >= 32 return), end every in-service interrupt. */
static void apic_quiesce(void)
{
    apic_wr(APIC_REG_TIMER_INITIAL, 0);
    apic_wr(APIC_REG_LVT_TIMER, APIC_LVT_MASKED | TIMER_VECTOR);
    (void)host_unmask_and_take();
    for (int i = 0; i < 8; i++)
        apic_wr(APIC_REG_EOI, 0);
    exc_clear();
}

/* ---- Guests ---------------------------------------------------------------------------------- */

static void g_nothing(void *a) { (void)a; }

static void g_mark(void *a)
{
    (void)a;
    g_val[0] = 1;
}

static void g_spin(void *a)
{
    (void)a;
    spin(30000);
    g_val[0] = 1;
}

static void g_spin_cpuid_spin(void *a)
{
    (void)a;
    spin(200);
    uint32_t eax = 0, ebx, ecx = 0, edx;
    asm volatile(MARK("cpuid") : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx) : : "r11", "memory");
    spin(100000);
    g_val[0] = 1;
}

static void g_hlt(void *a)
{
    (void)a;
    asm volatile(MARK("hlt") : : : "r11", "memory");
    g_val[0] = 1;
}

/*
 * Straight-line code entered through GUEST_RIP: the MTF sequence (five
 * plain instructions, then CPUID), the STI sequence, a #UD site.
 */
extern char mtf_i0[], mtf_i1[], mtf_i2[], mtf_i3[], mtf_i4[], mtf_i5[], mtf_i6[], mtf_i7[];
extern char iw_seq[], iw_shadow[], iw_after[], ud_site[], ud_after[];
extern char iw_cpuid_seq[], iw_cpuid[], iw_cpuid_after[];
extern char rerun_i0[], rerun_i1[], rerun_i2[];
asm(".text\n"
    "mtf_i0: mov $1, %eax\n"
    "mtf_i1: add $2, %eax\n"
    "mtf_i2: lea 4(%rax), %ecx\n"
    "mtf_i3: imul %ecx, %eax\n"
    "mtf_i4: mov %eax, %edx\n"
    "mtf_i5: cpuid\n"
    "mtf_i6: mov $0x66, %esi\n"
    "mtf_i7: nop\n"
    "    movabs $0x454E4F4454534547, %rax\n" /* HV_GUEST_DONE */
    "    vmcall\n"
    "    ud2\n"
    "iw_seq: nop\n"
    "    sti\n"
    "iw_shadow: nop\n"
    "iw_after: nop\n"
    "    nop\n    nop\n    nop\n    nop\n    nop\n    nop\n    nop\n"
    "    movabs $0x454E4F4454534547, %rax\n"
    "    vmcall\n"
    "    ud2\n"
    "iw_cpuid_seq: sti\n"
    "iw_cpuid: cpuid\n" /* exits in the STI shadow */
    "iw_cpuid_after: nop\n"
    "    nop\n    nop\n    nop\n"
    "    movabs $0x454E4F4454534547, %rax\n"
    "    vmcall\n"
    "    ud2\n"
    "rerun_i0: mov $5, %eax\n"
    "rerun_i1: add %eax, %eax\n"
    "rerun_i2: add %eax, %eax\n"
    "    nop\n    nop\n    nop\n    nop\n"
    "    movabs $0x454E4F4454534547, %rax\n"
    "    vmcall\n"
    "    ud2\n"
    "ud_site: ud2\n"
    "ud_after: movabs $0x454E4F4454534547, %rax\n"
    "    vmcall\n"
    "    ud2\n");

/* ---- Monitor trap flag ------------------------------------------------------------------------- */

static void test_mtf(void)
{
    static char *const insn[] = {mtf_i0, mtf_i1, mtf_i2, mtf_i3, mtf_i4, mtf_i5, mtf_i6, mtf_i7};
    static const uint64_t rax_after[5] = {1, 3, 3, 21, 21};
    const uint64_t entry = (uint64_t)(uintptr_t)hv_guest_entry;
    bool ok;

    /* §26.5.2: with MTF, an MTF exit is pending on the boundary after each instruction; §28.2.1: no qualification. */
    init_guest(g_nothing, &(struct vmx_extras){.proc = CPU_MTF});
    vmcs_write(GUEST_RIP, (uint64_t)(uintptr_t)mtf_i0);
    vmx_enter(&ctx);
    ok = true;
    for (int k = 0; k < 5 && ok; k++) {
        ok = CHECK(exit_is(EXIT_MTF), " step %d: %s", k, vmx_exit_str(&ctx));
        if (!ok)
            break;
        ok = CHECK(ctx.guest_rip == (uint64_t)(uintptr_t)insn[k + 1], " step %d: GUEST_RIP 0x%lx, want 0x%lx", k,
                   ctx.guest_rip, (uint64_t)(uintptr_t)insn[k + 1]);
        CHECK(ctx.exit_qual == 0, " step %d: qualification 0x%lx", k, ctx.exit_qual);
        CHECK(ctx.regs[R_RAX] == rax_after[k], " step %d: RAX %lu, want %lu", k, ctx.regs[R_RAX], rax_after[k]);
        if (k == 2)
            CHECK(ctx.regs[R_RCX] == 7, " RCX %lu after LEA", ctx.regs[R_RCX]);
        if (k == 4)
            CHECK(ctx.regs[R_RDX] == 21, " RDX %lu after MOV", ctx.regs[R_RDX]);
        if (ok && k < 4)
            vmx_enter(&ctx);
    }
    report_checks("mtf_exits_after_each_instruction");

    /*
     * An instruction that causes a VM exit does not complete: the CPUID exit
     * is taken, no MTF exit. After skipping it, the next MTF exit follows the
     * next instruction (MOV to ESI).
     */
    if (ok) {
        vmx_enter(&ctx);
        if (CHECK(exit_is(EXIT_CPUID), " want the CPUID exit, got %s", vmx_exit_str(&ctx))) {
            CHECK(ctx.guest_rip == (uint64_t)(uintptr_t)mtf_i5 && ctx.insn_len == 2, " CPUID exit at 0x%lx length %u",
                  ctx.guest_rip, ctx.insn_len);
            vmx_skip_and_enter(&ctx);
            ok = CHECK(exit_is(EXIT_MTF) && ctx.guest_rip == (uint64_t)(uintptr_t)mtf_i7,
                       " after the skipped CPUID: %s, want MTF at 0x%lx", vmx_exit_str(&ctx),
                       (uint64_t)(uintptr_t)mtf_i7);
            CHECK(ctx.regs[R_RSI] == 0x66, " RSI 0x%lx", ctx.regs[R_RSI]);
        } else {
            ok = false;
        }
    } else {
        CHECK(false, " the single-step sequence failed");
    }
    report_checks("mtf_exiting_instruction_exits_instead");

    /* Clearing the control: the guest runs to its end without further exits. */
    if (ok)
        finish_without(CPU_BASED_VM_EXEC_CONTROL, ctx.proc, CPU_MTF);
    else
        CHECK(false, " the earlier MTF steps failed");
    report_checks("mtf_cleared_guest_runs_on");

    /*
     * §26.5.2: if the instruction faults, the MTF exit is pending on the
     * boundary following delivery of the fault: at the first instruction of
     * the #UD handler, which has not run yet.
     */
    init_guest(g_nothing, &(struct vmx_extras){.proc = CPU_MTF});
    vmcs_write(GUEST_RIP, (uint64_t)(uintptr_t)ud_site);
    exc_resume_rip = (uint64_t)(uintptr_t)ud_after; /* the handler resumes there */
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_MTF), " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.guest_rip == exc_stub(UD_VECTOR), " GUEST_RIP 0x%lx, want the #UD handler 0x%lx", ctx.guest_rip,
              exc_stub(UD_VECTOR));
        CHECK(exc_last.count == 0, " the handler already ran");
        if (finish_without(CPU_BASED_VM_EXEC_CONTROL, ctx.proc, CPU_MTF))
            CHECK(exc_last.vector == UD_VECTOR && exc_last.rip == (uint64_t)(uintptr_t)ud_site,
                  " handler saw vector %d at 0x%lx", exc_last.vector, exc_last.rip);
    }
    exc_resume_rip = 0;
    report_checks("mtf_exit_after_fault_delivery");

    /*
     * Single-stepping must not depend on whether the code ran before: the
     * same three instructions, first run without MTF, then stepped.
     */
    init_guest(g_nothing, NULL);
    vmcs_write(GUEST_RIP, (uint64_t)(uintptr_t)rerun_i0);
    vmx_enter(&ctx);
    if (vmx_finish(&ctx)) {
        init_guest(g_nothing, &(struct vmx_extras){.proc = CPU_MTF});
        vmcs_write(GUEST_RIP, (uint64_t)(uintptr_t)rerun_i0);
        vmx_enter(&ctx);
        if (CHECK(exit_is(EXIT_MTF) && ctx.guest_rip == (uint64_t)(uintptr_t)rerun_i1,
                  " first step: %s, want MTF at 0x%lx", vmx_exit_str(&ctx), (uint64_t)(uintptr_t)rerun_i1)) {
            vmx_enter(&ctx);
            CHECK(exit_is(EXIT_MTF) && ctx.guest_rip == (uint64_t)(uintptr_t)rerun_i2 && ctx.regs[R_RAX] == 10,
                  " second step: %s, RAX %lu, want MTF at 0x%lx", vmx_exit_str(&ctx), ctx.regs[R_RAX],
                  (uint64_t)(uintptr_t)rerun_i2);
        }
        if (!vmx_guest_done(&ctx))
            finish_without(CPU_BASED_VM_EXEC_CONTROL, ctx.proc, CPU_MTF);
    }
    report_checks(MTF_CACHED);

    /*
     * §26.5.2: with MTF and a vectored event injected by VM entry, the MTF
     * exit is pending "on the instruction boundary before the first
     * instruction following the VM entry": at the handler of the injected
     * external interrupt (vector 0x60, whose handler never ran before), its
     * frame pushed (RSP 40 bytes lower), no handler instruction executed.
     */
    init_guest(g_nothing, &(struct vmx_extras){.proc = CPU_MTF});
    vmcs_write(VM_ENTRY_INTR_INFO_FIELD, INTR_INFO(0x60, INTR_TYPE_EXT_INTR, 0));
    vmcs_write(GUEST_RFLAGS, X86_RFLAGS_FIXED | X86_RFLAGS_IF);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_MTF), " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.guest_rip == exc_stub(0x60) && ctx.guest_rsp == (uint64_t)(uintptr_t)ctx.guest_stack_top - 40,
              " GUEST_RIP 0x%lx RSP 0x%lx, want the handler's first instruction 0x%lx, RSP 0x%lx", ctx.guest_rip,
              ctx.guest_rsp, exc_stub(0x60), (uint64_t)(uintptr_t)ctx.guest_stack_top - 40);
        CHECK(exc_last.count == 0, " the handler already ran");
        if (finish_without(CPU_BASED_VM_EXEC_CONTROL, ctx.proc, CPU_MTF))
            CHECK(exc_last.vector == 0x60 && exc_last.rip == entry, " handler saw vector %d at 0x%lx",
                  exc_last.vector, exc_last.rip);
    }
    report_checks(MTF_INJECTED_EVENT);

    /*
     * §27.6.2: interruption type 7 (other event), vector 0 injects a pending
     * MTF exit — "even if the monitor trap flag VM-execution control is 0" —
     * on the boundary before the first guest instruction.
     */
    init_guest(g_mark, NULL);
    vmcs_write(VM_ENTRY_INTR_INFO_FIELD, INTR_INFO(0, INTR_TYPE_OTHER, 0));
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_MTF), " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.guest_rip == entry && g_val[0] == 0, " GUEST_RIP 0x%lx (entry 0x%lx), guest ran: %lu", ctx.guest_rip,
              entry, g_val[0]);
        vmx_enter(&ctx);
        vmx_finish(&ctx);
    }
    report_checks(MTF_PENDING);
}

/* ---- Interrupt-window exiting -------------------------------------------------------------------- */

static void test_interrupt_window(void)
{
    const uint64_t entry = (uint64_t)(uintptr_t)hv_guest_entry;

    /*
     * §26.2: a VM exit "before execution of any instruction if RFLAGS.IF = 1
     * and there is no blocking of events by STI or by MOV SS"; §27.7.5: right
     * after VM entry if so.
     */
    init_guest(g_nothing, &(struct vmx_extras){.proc = CPU_INTR_WINDOW});
    vmcs_write(GUEST_RFLAGS, X86_RFLAGS_FIXED | X86_RFLAGS_IF);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_INTR_WINDOW), " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.guest_rip == entry, " GUEST_RIP 0x%lx, want the entry point 0x%lx", ctx.guest_rip, entry);
        CHECK(ctx.exit_qual == 0 && !(ctx.intr_info & INTR_INFO_VALID), " qualification 0x%lx info 0x%x", ctx.exit_qual,
              ctx.intr_info);
        finish_without(CPU_BASED_VM_EXEC_CONTROL, ctx.proc, CPU_INTR_WINDOW);
    }
    report_checks("intr_window_exit_at_entry_when_if_set");

    /*
     * With IF = 0 nothing happens until STI; STI blocks events for one
     * instruction (Vol. 2B STI, Table 25-3 bit 0), so the exit comes after
     * the instruction that follows STI, with no blocking left to save.
     */
    init_guest(g_nothing, &(struct vmx_extras){.proc = CPU_INTR_WINDOW});
    vmcs_write(GUEST_RIP, (uint64_t)(uintptr_t)iw_seq);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_INTR_WINDOW), " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.guest_rip == (uint64_t)(uintptr_t)iw_after, " GUEST_RIP 0x%lx, want 0x%lx (STI shadow at 0x%lx)",
              ctx.guest_rip, (uint64_t)(uintptr_t)iw_after, (uint64_t)(uintptr_t)iw_shadow);
        CHECK(ctx.guest_rflags & X86_RFLAGS_IF, " RFLAGS 0x%lx", ctx.guest_rflags);
        CHECK((vmcs_read(GUEST_INTERRUPTIBILITY_INFO) & 3) == 0, " interruptibility 0x%lx",
              vmcs_read(GUEST_INTERRUPTIBILITY_INFO));
        finish_without(CPU_BASED_VM_EXEC_CONTROL, ctx.proc, CPU_INTR_WINDOW);
    }
    report_checks("intr_window_exit_after_sti_blocking");

    /*
     * §27.7.1: without injection, "events are blocked by STI if and only if
     * bit 0 in the interruptibility-state field is 1", cleared after the
     * guest executes one instruction: the exit follows the first instruction
     * (the CALL in hv_guest_entry), at the called function.
     */
    init_guest(g_nothing, &(struct vmx_extras){.proc = CPU_INTR_WINDOW});
    vmcs_write(GUEST_RFLAGS, X86_RFLAGS_FIXED | X86_RFLAGS_IF);
    vmcs_write(GUEST_INTERRUPTIBILITY_INFO, INTR_STATE_STI);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_INTR_WINDOW), " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.guest_rip == (uint64_t)(uintptr_t)g_nothing, " GUEST_RIP 0x%lx, want 0x%lx after one instruction",
              ctx.guest_rip, (uint64_t)(uintptr_t)g_nothing);
        finish_without(CPU_BASED_VM_EXEC_CONTROL, ctx.proc, CPU_INTR_WINDOW);
    }
    report_checks(IW_ENTRY_STI);

    /*
     * The guest exits on CPUID inside its STI shadow (bit 0 saved); the host
     * clears the field and turns interrupt-window exiting on. §27.7.1: no
     * blocking by STI now, so the exit comes at entry, before the NOP.
     */
    init_guest(g_nothing, NULL);
    vmcs_write(GUEST_RIP, (uint64_t)(uintptr_t)iw_cpuid_seq);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_CPUID), " %s", vmx_exit_str(&ctx))) {
        CHECK(vmcs_read(GUEST_INTERRUPTIBILITY_INFO) & INTR_STATE_STI, " interruptibility 0x%lx: no STI blocking",
              vmcs_read(GUEST_INTERRUPTIBILITY_INFO));
        vmcs_write(GUEST_INTERRUPTIBILITY_INFO, 0);
        ctx.proc |= (uint32_t)CPU_INTR_WINDOW;
        vmcs_write(CPU_BASED_VM_EXEC_CONTROL, ctx.proc);
        vmx_skip_and_enter(&ctx);
        if (CHECK(exit_is(EXIT_INTR_WINDOW), " %s", vmx_exit_str(&ctx))) {
            CHECK(ctx.guest_rip == (uint64_t)(uintptr_t)iw_cpuid_after, " GUEST_RIP 0x%lx, want 0x%lx",
                  ctx.guest_rip, (uint64_t)(uintptr_t)iw_cpuid_after);
            finish_without(CPU_BASED_VM_EXEC_CONTROL, ctx.proc, CPU_INTR_WINDOW);
        }
    }
    report_checks("intr_window_after_exit_in_sti_shadow_cleared");
}

/* ---- External-interrupt exiting ------------------------------------------------------------------ */

static void test_external_interrupts(void)
{
    const uint32_t info = INTR_INFO(TIMER_VECTOR, INTR_TYPE_EXT_INTR, 0);

    /*
     * §26.2: with external-interrupt exiting, an interrupt exits whatever the
     * guest's RFLAGS.IF (here 0). §28.2.2 / Table 25-13: with "acknowledge
     * interrupt on exit" the processor acknowledges the controller and stores
     * the vector: the interrupt is in service, no longer requested.
     */
    init_guest(g_spin, &(struct vmx_extras){.pin = PIN_EXT_INTR_EXITING, .exit = EXIT_ACK_INTR});
    arm_guest_timer(3000);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_EXTERNAL_INTR), " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.intr_info == info, " interruption info 0x%x, want 0x%x", ctx.intr_info, info);
        CHECK(ctx.exit_qual == 0, " qualification 0x%lx", ctx.exit_qual);
        CHECK(!apic_irr(TIMER_VECTOR) && apic_isr(TIMER_VECTOR), " IRR %d ISR %d", apic_irr(TIMER_VECTOR),
              apic_isr(TIMER_VECTOR));
        apic_wr(APIC_REG_EOI, 0);
        CHECK(!apic_isr(TIMER_VECTOR), " ISR still set after EOI");
        vmx_enter(&ctx);
        if (vmx_finish(&ctx))
            CHECK(g_val[0] == 1 && exc_last.vector == -1, " guest done %lu, took vector %d", g_val[0], exc_last.vector);
    }
    report_checks("ext_intr_exit_with_ack");
    apic_quiesce();

    /*
     * Without acknowledgement the exit interruption information is invalid
     * (§28.2.2) and the interrupt stays requested (§28.1: "does not
     * acknowledge the interrupt controller and the interrupt remains
     * pending"); the host (IF = 0 after the exit) takes it after STI.
     */
    init_guest(g_spin, &(struct vmx_extras){.pin = PIN_EXT_INTR_EXITING});
    arm_guest_timer(3000);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_EXTERNAL_INTR), " %s", vmx_exit_str(&ctx))) {
        CHECK(!(ctx.intr_info & INTR_INFO_VALID), " interruption info 0x%x", ctx.intr_info);
        CHECK(apic_irr(TIMER_VECTOR) && !apic_isr(TIMER_VECTOR), " IRR %d ISR %d", apic_irr(TIMER_VECTOR),
              apic_isr(TIMER_VECTOR));
        CHECK(!(hv_exit_rflags & X86_RFLAGS_IF), " host RFLAGS 0x%lx after the exit", hv_exit_rflags);
        unsigned held = host_unmask_and_take();
        CHECK(held == 0, " the host took vector %d with IF = 0", exc_last.vector);
        CHECK(exc_last.vector == TIMER_VECTOR && exc_last.count == 1, " after STI the host took vector %d (%u events)",
              exc_last.vector, exc_last.count);
        CHECK(!apic_irr(TIMER_VECTOR) && apic_isr(TIMER_VECTOR), " after delivery IRR %d ISR %d",
              apic_irr(TIMER_VECTOR), apic_isr(TIMER_VECTOR));
        apic_wr(APIC_REG_EOI, 0);
        exc_clear();
        vmx_enter(&ctx);
        vmx_finish(&ctx);
    }
    report_checks("ext_intr_exit_without_ack_stays_pending");
    apic_quiesce();
}

/* ---- VMX-preemption timer --------------------------------------------------------------------------- */

static void test_preemption_timer(void)
{
    const unsigned rate = (unsigned)(rdmsr(MSR_IA32_VMX_MISC) & 0x1F);
    const uint64_t entry = (uint64_t)(uintptr_t)hv_guest_entry;
    const uint32_t v = 200;

    /*
     * §26.5.1: the timer counts down by 1 each time bit X of the TSC changes,
     * X = IA32_VMX_MISC[4:0]; at 0 it exits (reason 52). The guest spins far
     * longer than v << X cycles; the host measures with RDTSC around the entry.
     */
    init_guest(g_spin, &(struct vmx_extras){.pin = PIN_PREEMPTION_TIMER});
    vmcs_write(VMX_PREEMPTION_TIMER_VALUE, v);
    uint64_t t0 = rdtsc();
    vmx_enter(&ctx);
    uint64_t t1 = rdtsc();
    if (CHECK(exit_is(EXIT_PREEMPTION_TIMER), " %s", vmx_exit_str(&ctx))) {
        uint64_t want = (uint64_t)v << rate, elapsed = t1 - t0;
        report_info("preemption timer: value %u, rate %u: %lu TSC cycles from entry to exit", v, rate, elapsed);
        CHECK(elapsed >= want - (1ull << rate) && elapsed <= want + (2ull << rate) + 2000,
              " %lu TSC cycles, want about %lu", elapsed, want);
        CHECK(ctx.exit_qual == 0 && g_val[0] == 0, " qualification 0x%lx, guest done %lu", ctx.exit_qual, g_val[0]);
        CHECK(vmcs_read(VMX_PREEMPTION_TIMER_VALUE) == v, " the value field became %lu without the save control",
              vmcs_read(VMX_PREEMPTION_TIMER_VALUE));
        finish_without(PIN_BASED_VM_EXEC_CONTROL, ctx.pin, PIN_PREEMPTION_TIMER);
    }
    report_checks("preemption_timer_expires");

    /*
     * §28.3.4: with "save VMX-preemption timer value", an exit stores the
     * value the timer had counted down to: on the CPUID exit before expiry it
     * is lower but not 0; resuming counts on from there, and the timer exit
     * saves 0.
     */
    const uint32_t big = 2000;
    init_guest(g_spin_cpuid_spin,
               &(struct vmx_extras){.pin = PIN_PREEMPTION_TIMER, .exit = (uint32_t)EXIT_SAVE_PREEMPTION_TIMER});
    vmcs_write(VMX_PREEMPTION_TIMER_VALUE, big);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_CPUID), " %s", vmx_exit_str(&ctx))) {
        uint64_t left = vmcs_read(VMX_PREEMPTION_TIMER_VALUE);
        CHECK(left > 0 && left < big, " saved value %lu (loaded %u)", left, big);
        t0 = rdtsc();
        vmx_skip_and_enter(&ctx);
        t1 = rdtsc();
        if (CHECK(exit_is(EXIT_PREEMPTION_TIMER), " after the CPUID: %s", vmx_exit_str(&ctx))) {
            CHECK(vmcs_read(VMX_PREEMPTION_TIMER_VALUE) == 0, " saved value %lu at the timer exit",
                  vmcs_read(VMX_PREEMPTION_TIMER_VALUE));
            CHECK(t1 - t0 >= (left - 1) << rate && t1 - t0 <= ((left + 2) << rate) + 2000,
                  " resumed with %lu: exit after %lu TSC cycles", left, t1 - t0);
            vmcs_write(VMX_PREEMPTION_TIMER_VALUE, 0xFFFFFFFF); /* let the guest finish */
            vmx_enter(&ctx);
            vmx_finish(&ctx);
        }
    }
    report_checks("preemption_timer_value_saved");

    /* Without the save control the field keeps the value software wrote. */
    init_guest(g_spin_cpuid_spin, &(struct vmx_extras){.pin = PIN_PREEMPTION_TIMER});
    vmcs_write(VMX_PREEMPTION_TIMER_VALUE, big);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_CPUID), " %s", vmx_exit_str(&ctx))) {
        CHECK(vmcs_read(VMX_PREEMPTION_TIMER_VALUE) == big, " value field %lu, wrote %u",
              vmcs_read(VMX_PREEMPTION_TIMER_VALUE), big);
        vmcs_write(GUEST_RIP, ctx.guest_rip + ctx.insn_len);
        finish_without(PIN_BASED_VM_EXEC_CONTROL, ctx.pin, PIN_PREEMPTION_TIMER);
    }
    report_checks("preemption_timer_value_not_saved_without_control");

    /* The timer keeps counting in the HLT state and wakes it with its exit; the state saved is HLT (§28.3.4). */
    init_guest(g_hlt, &(struct vmx_extras){.pin = PIN_PREEMPTION_TIMER});
    vmcs_write(VMX_PREEMPTION_TIMER_VALUE, v);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_PREEMPTION_TIMER), " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.guest_rip == g_end, " GUEST_RIP 0x%lx, want after the HLT 0x%lx", ctx.guest_rip, g_end);
        CHECK(vmcs_read(GUEST_ACTIVITY_STATE) == ACTIVITY_HLT, " activity state %lu", vmcs_read(GUEST_ACTIVITY_STATE));
        vmcs_write(GUEST_ACTIVITY_STATE, 0);
        finish_without(PIN_BASED_VM_EXEC_CONTROL, ctx.pin, PIN_PREEMPTION_TIMER);
    }
    report_checks("preemption_timer_wakes_guest_hlt");

    /*
     * §27.7.4: with the value 0, "a VM exit occurs before execution of any
     * instruction following VM entry".
     */
    init_guest(g_mark, &(struct vmx_extras){.pin = PIN_PREEMPTION_TIMER});
    vmcs_write(VMX_PREEMPTION_TIMER_VALUE, 0);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_PREEMPTION_TIMER), " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.guest_rip == entry && ctx.guest_rsp == (uint64_t)(uintptr_t)ctx.guest_stack_top,
              " GUEST_RIP 0x%lx RSP 0x%lx: the guest ran (entry 0x%lx)", ctx.guest_rip, ctx.guest_rsp, entry);
        finish_without(PIN_BASED_VM_EXEC_CONTROL, ctx.pin, PIN_PREEMPTION_TIMER);
    }
    report_checks(PT_ZERO);
}

/* ---- HLT ----------------------------------------------------------------------------------------- */

static void test_hlt(void)
{
    const uint32_t info = INTR_INFO(TIMER_VECTOR, INTR_TYPE_EXT_INTR, 0);
    const struct vmx_extras ex = {.pin = PIN_EXT_INTR_EXITING, .exit = EXIT_ACK_INTR};

    /*
     * The guest executes HLT (IF = 0); the timer interrupt exits (external-
     * interrupt exiting ignores IF). §28.1: a VM exit out of an inactive
     * state returns to the active state "only after the VM exit completes";
     * §28.3.4 saves the activity state before the exit: HLT, with RIP after
     * the HLT.
     */
    init_guest(g_hlt, &ex);
    arm_guest_timer(3000);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_EXTERNAL_INTR), " %s", vmx_exit_str(&ctx))) {
        CHECK(ctx.intr_info == info, " interruption info 0x%x", ctx.intr_info);
        CHECK(ctx.guest_rip == g_end, " GUEST_RIP 0x%lx, want after the HLT 0x%lx", ctx.guest_rip, g_end);
        CHECK(vmcs_read(GUEST_ACTIVITY_STATE) == ACTIVITY_HLT, " activity state %lu", vmcs_read(GUEST_ACTIVITY_STATE));
        apic_wr(APIC_REG_EOI, 0);
        vmcs_write(GUEST_ACTIVITY_STATE, 0);
        vmx_enter(&ctx);
        if (vmx_finish(&ctx))
            CHECK(g_val[0] == 1, " the guest did not complete");
    }
    report_checks("guest_hlt_ext_intr_exit_saves_hlt_state");
    apic_quiesce();

    /*
     * §27.7.2: activity state HLT at VM entry (SS.DPL = 0, Table 25-3): the
     * guest executes nothing until an event wakes it; here the timer
     * interrupt exits before the first instruction, saving activity state HLT.
     */
    init_guest(g_mark, &ex);
    vmcs_write(GUEST_ACTIVITY_STATE, ACTIVITY_HLT);
    arm_guest_timer(3000);
    vmx_enter(&ctx);
    if (CHECK(exit_is(EXIT_EXTERNAL_INTR), " want the timer's exit, got %s; the guest ran: %lu, activity state %lu",
              vmx_exit_str(&ctx), g_val[0], vmcs_read(GUEST_ACTIVITY_STATE))) {
        CHECK(ctx.intr_info == info, " interruption info 0x%x", ctx.intr_info);
        CHECK(ctx.guest_rip == (uint64_t)(uintptr_t)hv_guest_entry && g_val[0] == 0, " GUEST_RIP 0x%lx, guest ran: %lu",
              ctx.guest_rip, g_val[0]);
        CHECK(vmcs_read(GUEST_ACTIVITY_STATE) == ACTIVITY_HLT, " activity state %lu", vmcs_read(GUEST_ACTIVITY_STATE));
        apic_wr(APIC_REG_EOI, 0);
        vmcs_write(GUEST_ACTIVITY_STATE, 0);
        vmx_enter(&ctx);
        if (vmx_finish(&ctx))
            CHECK(g_val[0] == 1, " the guest did not complete");
    }
    report_checks(HLT_AT_ENTRY);
    apic_quiesce();
}

void hv_test_main(void)
{
    if (!vmx_enable())
        return;
    apic_wr(APIC_REG_SVR, 0x1FF); /* software-enable the local APIC, spurious vector 0xFF */
    test_mtf();
    test_interrupt_window();
    test_external_interrupts();
    test_preemption_timer();
    test_hlt();
}
