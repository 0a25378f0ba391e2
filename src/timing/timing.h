/*
 * Timing unit (DESIGN §6): cycles = Σ per-block static cost (computed once
 * per block from the Capstone decode) + event costs. Until the cost model
 * lands, every instruction costs one cycle and events cost nothing; the
 * guest TSC is the simulated cycle count.
 */
#ifndef VMXSIM_TIMING_H
#define VMXSIM_TIMING_H

#include <stdint.h>

#include <capstone/capstone.h>

/* Events the core charges (their costs come from the CPU profile). */
enum timing_event {
    TIMING_EV_TLB_FILL,
    TIMING_EV_EXCEPTION,
    TIMING_EV_MSR_ACCESS,
    TIMING_EV_CPUID,
    TIMING_EV_IO,
    TIMING_EV_COUNT
};

/* Static cost of one decoded instruction. */
uint32_t timing_insn_cost(const cs_insn *insn);

/* Cost of one event. */
uint32_t timing_event_cost(enum timing_event ev);
#endif
