/*
 * Asynchronous events at instruction boundaries (SDM Vol. 3A §6.9 priority,
 * Vol. 3C §26.2 / §26.7 VMX non-root behaviour): the local-APIC timer, the
 * VMX-preemption timer, NMIs, INIT, external interrupts and the interrupt
 * and NMI windows. They are checked at every stop; the block hook stops
 * emulation when simulated time reaches c->next_event. Delivery is at a
 * block boundary at the latest, which the architecture allows (interrupts
 * are recognised at some instruction boundary after they become pending).
 */
#include "cpu/vmx_glue.h"
#include "vmx/vmcs.h"


static uint8_t *cur_vmcs(struct cpu *c) { return vmx_current_vmcs(&c->vmx, cpu_vmx_ops(c)); }

static uint32_t vmcs32(struct cpu *c, uint32_t enc)
{
    uint64_t v = 0;
    if (vmcs_read(cur_vmcs(c), enc, &v) != VMXSIM_OK)
        return 0;
    return (uint32_t)v;
}

static bool nonroot_ctl(struct cpu *c, uint32_t enc, uint32_t bit)
{
    return c->vmx.non_root && (vmcs32(c, enc) & bit);
}

static void exit_simple(struct cpu *c, uint32_t reason, uint32_t intr_info)
{
    struct vmx_exit ex = {.reason = reason, .intr_info = intr_info};
    cpu_vmexit(c, &ex);
}

/* External interrupt from the local APIC (SDM Vol. 3C §26.2: exits regardless of RFLAGS.IF). */
static bool external_interrupt(struct cpu *c, bool can_deliver)
{
    int v = lapic_pending_vector(&c->apic);
    if (v < 0)
        return false;
    if (nonroot_ctl(c, PIN_BASED_VM_EXEC_CONTROL, PIN_BASED_EXT_INTR_MASK)) {
        uint32_t info = 0;
        if (vmcs32(c, VM_EXIT_CONTROLS) & VM_EXIT_ACK_INTR_ON_EXIT) {
            lapic_ack(&c->apic, (uint8_t)v);
            info = (uint32_t)v | INTR_TYPE_EXT_INTR << INTR_INFO_INTR_TYPE_SHIFT | (uint32_t)INTR_INFO_VALID_MASK;
        }
        exit_simple(c, EXIT_REASON_EXTERNAL_INTERRUPT, info);
        return true;
    }
    if (!can_deliver)
        return false;
    lapic_ack(&c->apic, (uint8_t)v);
    c->activity = GUEST_ACTIVITY_ACTIVE;
    cpu_deliver(c, (uint8_t)v, EV_EXT_INT, false, 0, cpu_reg(c, UC_X86_REG_RIP));
    return true;
}

/*
 * NMI (SDM Vol. 3A §6.7.1): blocked from delivery until the next IRET. In
 * non-root operation (Vol. 3C §26.2, §26.3): with NMI exiting the NMI is a
 * VM exit; with "virtual NMIs" the guest's NMI-blocking bit is virtual and
 * does not hold back physical NMIs. After a VM exit caused by an NMI, NMIs
 * stay blocked in the host until its IRET.
 */
static bool nmi(struct cpu *c)
{
    if (!c->apic.nmi_pending || c->nmi_blocked)
        return false;
    c->apic.nmi_pending = false;
    c->nmi_blocked = true;
    if (c->vmx.non_root && c->nmi_exiting) {
        exit_simple(c, EXIT_REASON_EXCEPTION_NMI,
                    X86_NMI | INTR_TYPE_NMI_INTR << INTR_INFO_INTR_TYPE_SHIFT | (uint32_t)INTR_INFO_VALID_MASK);
        return true;
    }
    c->activity = GUEST_ACTIVITY_ACTIVE;
    cpu_deliver(c, X86_NMI, EV_NMI, false, 0, cpu_reg(c, UC_X86_REG_RIP));
    return true;
}

/* INIT: a VM exit in non-root operation; blocked in VMX root operation (SDM Vol. 3C §24.8). */
static bool init_signal(struct cpu *c)
{
    if (!c->apic.init_pending)
        return false;
    if (c->vmx.non_root) {
        c->apic.init_pending = false;
        exit_simple(c, EXIT_REASON_INIT_SIGNAL, 0);
        return true;
    }
    if (c->vmx.in_vmx)
        return false; /* stays pending until VMXOFF or a VM entry */
    c->apic.init_pending = false;
    cpu_request_stop(c, VMXSIM_STOP_ERROR, 0, "INIT signal outside VMX operation (processor reset is not modelled)");
    return true;
}

static bool preemption_timer(struct cpu *c)
{
    if (!c->vmx.non_root || !c->vmx.preempt_deadline || c->cycles < c->vmx.preempt_deadline)
        return false;
    c->vmx.preempt_deadline = 0;
    exit_simple(c, EXIT_REASON_PREEMPTION_TIMER, 0);
    return true;
}

/* Recompute when the block hook must stop next. */
void cpu_events_schedule(struct cpu *c)
{
    uint64_t next = lapic_next_event(&c->apic);
    if (c->vmx.non_root && c->vmx.preempt_deadline && c->vmx.preempt_deadline < next)
        next = c->vmx.preempt_deadline;
    if (c->events_poll)
        next = c->cycles + 1; /* waiting for RFLAGS.IF or a window: check after the next block */
    c->next_event = next;
}

/*
 * Check pending events at an instruction boundary. Returns true when one
 * was taken (delivered or a VM exit happened).
 */
bool cpu_events_check(struct cpu *c)
{
    bool taken = false;
    lapic_tick(&c->apic, c->cycles + c->tsc_offset);
    c->events_poll = false;
    if (preemption_timer(c) || init_signal(c) || nmi(c)) {
        taken = true;
    } else if (lapic_pending_vector(&c->apic) >= 0 ||
               nonroot_ctl(c, CPU_BASED_VM_EXEC_CONTROL,
                           CPU_BASED_INTR_WINDOW_EXITING | CPU_BASED_NMI_WINDOW_EXITING)) {
        bool blocked = cpu_inhibited(c);
        bool iflag = (cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_IF) != 0;
        if (external_interrupt(c, iflag && !blocked)) {
            taken = true;
        } else if (nonroot_ctl(c, CPU_BASED_VM_EXEC_CONTROL, CPU_BASED_INTR_WINDOW_EXITING)) {
            if (iflag && !blocked) { /* SDM Vol. 3C §26.7.5 */
                exit_simple(c, EXIT_REASON_INTERRUPT_WINDOW, 0);
                taken = true;
            } else {
                c->events_poll = true;
            }
        } else if (nonroot_ctl(c, CPU_BASED_VM_EXEC_CONTROL, CPU_BASED_NMI_WINDOW_EXITING) &&
                   !(c->vnmi_on ? c->vnmi_blocked : c->nmi_blocked)) {
            exit_simple(c, EXIT_REASON_NMI_WINDOW, 0); /* SDM Vol. 3C §26.7.6 */
            taken = true;
        } else if (lapic_pending_vector(&c->apic) >= 0) {
            c->events_poll = true; /* waiting for IF = 1 */
        }
    }
    cpu_events_schedule(c);
    return taken;
}

/*
 * HLT (or activity state HLT): skip simulated time to the next event and
 * take it. Returns false when nothing can ever wake the processor.
 */
bool cpu_events_wait(struct cpu *c)
{
    bool iflag = (cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_IF) != 0;
    for (int guard = 0; guard < 4; guard++) {
        if (cpu_events_check(c))
            return true;
        uint64_t next = lapic_next_event(&c->apic);
        if (c->vmx.non_root && c->vmx.preempt_deadline && c->vmx.preempt_deadline < next)
            next = c->vmx.preempt_deadline;
        bool vmexit_source = c->vmx.non_root && c->vmx.preempt_deadline;
        if (next == UINT64_MAX || (!iflag && !vmexit_source &&
                                   !nonroot_ctl(c, PIN_BASED_VM_EXEC_CONTROL, PIN_BASED_EXT_INTR_MASK)))
            return false;
        if (next > c->cycles)
            c->cycles = next; /* idle: time passes with nothing retired */
    }
    return false;
}
