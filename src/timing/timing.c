/*
 * Skeleton cost model: one cycle per instruction, no event costs. The cost
 * model issue replaces this with a per-class table in a CPU profile, each
 * constant with its source and confidence.
 */
#include "timing/timing.h"

uint32_t timing_insn_cost(const cs_insn *insn)
{
    (void)insn;
    return 1;
}

uint32_t timing_event_cost(enum timing_event ev)
{
    (void)ev;
    return 0;
}
