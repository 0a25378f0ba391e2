/*
 * Skeleton cost model: one cycle per instruction, one per event delivery,
 * other events free. The cost model issue replaces this with a per-class
 * table in a CPU profile, each constant with its source and confidence.
 */
#include "timing/timing.h"

uint32_t timing_insn_cost(const cs_insn *insn)
{
    (void)insn;
    return 1;
}

uint32_t timing_event_cost(enum timing_event ev)
{
    /* Event delivery charges one cycle so simulated time advances in a
     * loop of faults that retires no instruction (timers must still fire). */
    return ev == TIMING_EV_EXCEPTION ? 1 : 0;
}
