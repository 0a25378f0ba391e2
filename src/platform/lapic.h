/*
 * Local APIC (DESIGN §8): xAPIC registers (MMIO at IA32_APIC_BASE, default
 * 0xFEE00000) and x2APIC MSRs (0x800-0x8FF), the timer (one-shot, periodic,
 * TSC-deadline) on simulated time, self-IPIs (fixed, NMI, INIT) through the
 * ICR, IRR/ISR/TPR/PPR priority logic and EOI. SDM Vol. 3A chapter 11.
 * One processor: every IPI destination is this APIC or nobody.
 */
#ifndef VMXSIM_PLATFORM_LAPIC_H
#define VMXSIM_PLATFORM_LAPIC_H

#include <stdbool.h>
#include <stdint.h>

#define LAPIC_DEFAULT_BASE 0xFEE00000ull

struct lapic {
    uint32_t id, tpr, ldr, dfr, svr, esr, icr_hi;
    uint32_t lvt[7];   /* CMCI(0x2F0) timer thermal perf LINT0 LINT1 error (0x320..0x370) */
    uint32_t irr[8], isr[8], tmr[8];
    uint32_t timer_initial, timer_divide;
    uint64_t timer_start;    /* cycle count when the count was loaded */
    uint64_t timer_deadline; /* cycle count at expiry (0: not armed) */
    uint64_t tsc_deadline;   /* IA32_TSC_DEADLINE */
    bool nmi_pending, init_pending;
    bool x2apic;
};

void lapic_reset(struct lapic *a);

/* Register access by xAPIC offset (0x000-0xFF0); `now` is the cycle count. */
uint32_t lapic_read(struct lapic *a, uint32_t off, uint64_t now);
void lapic_write(struct lapic *a, uint32_t off, uint32_t val, uint64_t now);

/* x2APIC MSR access (SDM Vol. 3A §11.12.1); false → #GP. */
bool lapic_msr_read(struct lapic *a, uint32_t msr, uint64_t *val, uint64_t now);
bool lapic_msr_write(struct lapic *a, uint32_t msr, uint64_t val, uint64_t now);

/* Raise a fixed interrupt (edge). */
void lapic_set_irq(struct lapic *a, uint8_t vector);

/* Fire expired timers at `now`. */
void lapic_tick(struct lapic *a, uint64_t now);
/* Cycle count of the next timer event, or UINT64_MAX. */
uint64_t lapic_next_event(const struct lapic *a);

/* Highest-priority interrupt deliverable past TPR/ISR, or -1. */
int lapic_pending_vector(const struct lapic *a);
/* The processor accepted `vector`: IRR → ISR (interrupt acknowledge). */
void lapic_ack(struct lapic *a, uint8_t vector);
#endif
