/*
 * Local APIC — SDM Vol. 3A chapter 11. The timer counts down at the
 * simulated cycle rate divided by the divide configuration (the bus clock
 * equals the core clock here); TSC-deadline mode compares against the TSC.
 */
#include <string.h>

#include "platform/lapic.h"

#define APIC_ID 0x20
#define APIC_LVR 0x30
#define APIC_TASKPRI 0x80
#define APIC_ARBPRI 0x90
#define APIC_PROCPRI 0xA0
#define APIC_EOI 0xB0
#define APIC_LDR 0xD0
#define APIC_DFR 0xE0
#define APIC_SPIV 0xF0
#define APIC_ISR 0x100
#define APIC_TMR 0x180
#define APIC_IRR 0x200
#define APIC_ESR 0x280
#define APIC_LVTCMCI 0x2F0
#define APIC_ICR 0x300
#define APIC_ICR2 0x310
#define APIC_LVTT 0x320
#define APIC_LVTERR 0x370
#define APIC_TMICT 0x380
#define APIC_TMCCT 0x390
#define APIC_TDCR 0x3E0
#define APIC_SELF_IPI 0x3F0 /* x2APIC only */

#define APIC_VERSION 0x00050014u /* version 0x14, max LVT 5 (6 entries) */
#define APIC_LVT_MASKED (1u << 16)
#define APIC_LVT_TIMER_PERIODIC (1u << 17)
#define APIC_LVT_TIMER_TSCDEADLINE (2u << 17)
#define APIC_LVT_TIMER_MODE_MASK (3u << 17)
#define APIC_SPIV_ENABLED (1u << 8)

#define ICR_DM_MASK (7u << 8)
#define ICR_DM_FIXED (0u << 8)
#define ICR_DM_NMI (4u << 8)
#define ICR_DM_INIT (5u << 8)
#define ICR_SHORTHAND_MASK (3u << 18)
#define ICR_SHORTHAND_SELF (1u << 18)
#define ICR_SHORTHAND_ALL (2u << 18)
#define ICR_SHORTHAND_OTHERS (3u << 18)

static void set_bit(uint32_t *v, unsigned n) { v[n / 32] |= 1u << (n % 32); }
static void clear_bit(uint32_t *v, unsigned n) { v[n / 32] &= ~(1u << (n % 32)); }

static int highest(const uint32_t *v)
{
    for (int i = 7; i >= 0; i--)
        if (v[i])
            return i * 32 + 31 - __builtin_clz(v[i]);
    return -1;
}

void lapic_reset(struct lapic *a)
{
    memset(a, 0, sizeof *a);
    a->dfr = 0xFFFFFFFFu;
    a->svr = 0xFF;
    for (int i = 0; i < 7; i++)
        a->lvt[i] = APIC_LVT_MASKED;
}

static bool enabled(const struct lapic *a) { return (a->svr & APIC_SPIV_ENABLED) != 0; }

/* Processor priority — SDM Vol. 3A §11.8.3.1. */
static uint32_t ppr(const struct lapic *a)
{
    int isr = highest(a->isr);
    uint32_t isrv = isr < 0 ? 0 : (uint32_t)isr;
    if ((a->tpr >> 4) >= (isrv >> 4))
        return a->tpr & 0xFF;
    return isrv & 0xF0;
}

int lapic_pending_vector(const struct lapic *a)
{
    int v = highest(a->irr);
    if (v < 0 || !enabled(a))
        return -1;
    if ((uint32_t)(v & 0xF0) <= (ppr(a) & 0xF0))
        return -1;
    return v;
}

void lapic_ack(struct lapic *a, uint8_t vector)
{
    clear_bit(a->irr, vector);
    set_bit(a->isr, vector);
}

void lapic_set_irq(struct lapic *a, uint8_t vector)
{
    if (vector < 16) { /* illegal vector: send-accept error (SDM §11.5.3) */
        a->esr |= 1u << 6;
        return;
    }
    set_bit(a->irr, vector);
}

static uint32_t divide_value(uint32_t tdcr)
{
    uint32_t v = (tdcr & 3) | ((tdcr >> 1) & 4); /* bits 0, 1, 3 */
    return v == 7 ? 1 : 2u << v;
}

static uint32_t timer_mode(const struct lapic *a) { return a->lvt[1] & APIC_LVT_TIMER_MODE_MASK; }

static void arm_timer(struct lapic *a, uint64_t now)
{
    a->timer_start = now;
    a->timer_deadline = a->timer_initial ? now + (uint64_t)a->timer_initial * divide_value(a->timer_divide) : 0;
}

static uint32_t current_count(const struct lapic *a, uint64_t now)
{
    if (!a->timer_deadline || now >= a->timer_deadline)
        return 0;
    return (uint32_t)((a->timer_deadline - now) / divide_value(a->timer_divide));
}

void lapic_tick(struct lapic *a, uint64_t now)
{
    uint32_t lvt = a->lvt[1];
    if (timer_mode(a) == APIC_LVT_TIMER_TSCDEADLINE) {
        if (a->tsc_deadline && now >= a->tsc_deadline) {
            a->tsc_deadline = 0;
            if (!(lvt & APIC_LVT_MASKED))
                lapic_set_irq(a, lvt & 0xFF);
        }
        return;
    }
    if (!a->timer_deadline || now < a->timer_deadline)
        return;
    if (!(lvt & APIC_LVT_MASKED))
        lapic_set_irq(a, lvt & 0xFF);
    if (timer_mode(a) == APIC_LVT_TIMER_PERIODIC)
        arm_timer(a, a->timer_deadline);
    else
        a->timer_deadline = 0;
}

uint64_t lapic_next_event(const struct lapic *a)
{
    if (timer_mode(a) == APIC_LVT_TIMER_TSCDEADLINE)
        return a->tsc_deadline ? a->tsc_deadline : UINT64_MAX;
    return a->timer_deadline ? a->timer_deadline : UINT64_MAX;
}

/* ICR write: only this processor exists (SDM Vol. 3A §11.6.1). */
static void send_ipi(struct lapic *a, uint32_t lo, uint32_t dest)
{
    uint32_t sh = lo & ICR_SHORTHAND_MASK;
    bool to_self = sh == ICR_SHORTHAND_SELF || sh == ICR_SHORTHAND_ALL ||
                   (sh == 0 && (dest == a->id || dest == (a->x2apic ? 0xFFFFFFFFu : 0xFFu)));
    if (!to_self)
        return;
    switch (lo & ICR_DM_MASK) {
    case ICR_DM_FIXED: lapic_set_irq(a, lo & 0xFF); break;
    case ICR_DM_NMI: a->nmi_pending = true; break;
    case ICR_DM_INIT:
        if (sh != ICR_SHORTHAND_SELF) /* INIT to self by shorthand is not allowed */
            a->init_pending = true;
        break;
    default: break;
    }
}

uint32_t lapic_read(struct lapic *a, uint32_t off, uint64_t now)
{
    if (off >= APIC_ISR && off < APIC_ISR + 0x80)
        return a->isr[(off - APIC_ISR) / 16];
    if (off >= APIC_TMR && off < APIC_TMR + 0x80)
        return a->tmr[(off - APIC_TMR) / 16];
    if (off >= APIC_IRR && off < APIC_IRR + 0x80)
        return a->irr[(off - APIC_IRR) / 16];
    if (off >= APIC_LVTCMCI && off <= APIC_LVTERR && (off == APIC_LVTCMCI || off >= APIC_LVTT))
        return a->lvt[off == APIC_LVTCMCI ? 0 : (off - APIC_LVTT) / 16 + 1];
    switch (off) {
    case APIC_ID: return a->x2apic ? a->id : a->id << 24;
    case APIC_LVR: return APIC_VERSION;
    case APIC_TASKPRI: return a->tpr;
    case APIC_ARBPRI: return 0;
    case APIC_PROCPRI: return ppr(a);
    case APIC_LDR: return a->ldr;
    case APIC_DFR: return a->dfr;
    case APIC_SPIV: return a->svr;
    case APIC_ESR: return a->esr;
    case APIC_ICR: return 0; /* delivery status: idle */
    case APIC_ICR2: return a->icr_hi;
    case APIC_TMICT: return a->timer_initial;
    case APIC_TMCCT: return current_count(a, now);
    case APIC_TDCR: return a->timer_divide;
    default: return 0;
    }
}

/* EOI: clear the highest in-service vector (SDM Vol. 3A §11.8.5). */
static void eoi(struct lapic *a)
{
    int v = highest(a->isr);
    if (v >= 0)
        clear_bit(a->isr, (unsigned)v);
}

void lapic_write(struct lapic *a, uint32_t off, uint32_t val, uint64_t now)
{
    if (off == APIC_LVTCMCI || (off >= APIC_LVTT && off <= APIC_LVTERR && !(off & 0xF))) {
        unsigned i = off == APIC_LVTCMCI ? 0 : (off - APIC_LVTT) / 16 + 1;
        a->lvt[i] = enabled(a) ? val : val | APIC_LVT_MASKED;
        return;
    }
    switch (off) {
    case APIC_ID: if (!a->x2apic) a->id = val >> 24; break;
    case APIC_TASKPRI: a->tpr = val & 0xFF; break;
    case APIC_EOI: eoi(a); break;
    case APIC_LDR: a->ldr = val; break;
    case APIC_DFR: a->dfr = val | 0x0FFFFFFFu; break;
    case APIC_SPIV:
        a->svr = val & 0x3FF;
        if (!enabled(a))
            for (int i = 0; i < 7; i++)
                a->lvt[i] |= APIC_LVT_MASKED;
        break;
    case APIC_ESR: a->esr = 0; break;
    case APIC_ICR2: a->icr_hi = val; break;
    case APIC_ICR: send_ipi(a, val, a->x2apic ? a->icr_hi : a->icr_hi >> 24); break;
    case APIC_TMICT:
        a->timer_initial = val;
        if (timer_mode(a) != APIC_LVT_TIMER_TSCDEADLINE)
            arm_timer(a, now);
        break;
    case APIC_TDCR: a->timer_divide = val & 0xB; break;
    case APIC_SELF_IPI: if (a->x2apic) lapic_set_irq(a, val & 0xFF); break;
    default: break;
    }
}

/* x2APIC: MSR 800H + offset/16; ICR is one 64-bit MSR (SDM Vol. 3A §11.12.1). */
bool lapic_msr_read(struct lapic *a, uint32_t msr, uint64_t *val, uint64_t now)
{
    uint32_t off = (msr - 0x800u) << 4;
    if (!a->x2apic || msr < 0x800 || msr > 0x8FF || off == APIC_EOI || off == APIC_SELF_IPI ||
        off == APIC_DFR || off == APIC_ICR2)
        return false;
    if (off == APIC_ICR) {
        *val = (uint64_t)a->icr_hi << 32;
        return true;
    }
    *val = lapic_read(a, off, now);
    return true;
}

bool lapic_msr_write(struct lapic *a, uint32_t msr, uint64_t val, uint64_t now)
{
    uint32_t off = (msr - 0x800u) << 4;
    if (!a->x2apic || msr < 0x800 || msr > 0x8FF || off == APIC_ID || off == APIC_LVR ||
        off == APIC_PROCPRI || off == APIC_LDR || off == APIC_ICR2 || off == APIC_TMCCT ||
        (off >= APIC_ISR && off < APIC_IRR + 0x80))
        return false;
    if (off == APIC_ICR) {
        a->icr_hi = (uint32_t)(val >> 32);
        send_ipi(a, (uint32_t)val, a->icr_hi);
        return true;
    }
    if (val >> 32)
        return false;
    lapic_write(a, off, (uint32_t)val, now);
    return true;
}
