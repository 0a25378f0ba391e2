/*
 * Helpers for test programs: marking the instruction under test in a guest,
 * and the common "run a guest, expect one exit, finish" shapes.
 */
#ifndef HV_GUEST_H
#define HV_GUEST_H

#include "hv.h"

/* Written by the guest: address and end of the instruction under test. */
extern volatile uint64_t g_rip, g_end;
/* Scratch values the guest hands to the host. */
extern volatile uint64_t g_val[16];

/*
 * MARK(insn): the instruction under test, with its address in g_rip and the
 * address after it in g_end (so the expected length is g_end - g_rip).
 * Uses local labels 2 and 3 and clobbers r11 (extended asm only).
 */
#define MARK(insn)                                         \
    "lea 2f(%%rip), %%r11\n\tmov %%r11, g_rip(%%rip)\n\t" \
    "lea 3f(%%rip), %%r11\n\tmov %%r11, g_end(%%rip)\n\t" \
    "2: " insn "\n3:\n\t"

/* The common context of a test program. */
extern struct vmx_test_ctx ctx;

/* Fresh context, clears exc_last/g_rip/g_val, enters once. */
void start_guest(void (*fn)(void *), void *arg, const struct vmx_extras *ex);
/*
 * start_guest(), then CHECK that the first exit has the reason, happened at
 * the marked instruction (GUEST_RIP = g_rip) and reports its length.
 * Returns whether the reason matched.
 */
bool expect_exit(void (*fn)(void *), const struct vmx_extras *ex, uint32_t reason);
/* CHECK the current exit (reason, RIP and length of the marked instruction). */
bool check_exit(uint32_t reason);
/* Skip the exiting instruction and CHECK that the guest then finishes. */
bool skip_and_finish(void);
/* start_guest() and CHECK that the guest finishes without any other exit. */
bool expect_no_exit(void (*fn)(void *), const struct vmx_extras *ex);

#endif
