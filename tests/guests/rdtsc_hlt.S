# RDTSC reads the simulated time stamp counter (SDM Vol. 2B RDTSC; README
# "cycle-approximate"; src/timing: every instruction costs one cycle until
# the cost model lands, so today delta = 13 = the first RDTSC, 2 MOVs and
# 10 NOPs — printed, not asserted). Asserted, whatever the cost model:
#   - a straight-line sequence between two RDTSCs advances the TSC (>= 1);
#   - the same sequence measured twice gives the same delta (determinism:
#     the first run decodes and hooks the blocks, the second runs cached
#     translations, and the counts must not depend on that);
#   - a longer sequence (20 more NOPs) never takes fewer cycles.
# Then HLT with RFLAGS.IF = 0 and no event source: nothing can wake the
# processor, so the run ends with status 0 and a "halted" report on stderr
# (README exit status 0; SDM Vol. 2A HLT). The fallback debug exit after the
# HLT would give status 33.
# FORMAT: elf64
# EXPECT-OUT: tsc advances ok
# EXPECT-OUT: deterministic ok
# EXPECT-OUT: longer not cheaper ok
# EXPECT-OUT: halting with IF=0
# EXPECT-ERR: halted
# EXPECT-ERR: HLT with interrupts disabled
# EXPECT-EXIT: 0
.include "guest.inc"
    .text
    .globl _start
_start:
    call measure
    mov %rax, %r12
    call measure
    mov %rax, %r13
    call measure_long
    mov %rax, %r14
    PUTS m_d1
    PUTHEX %r12
    call put_nl
    PUTS m_d2
    PUTHEX %r13
    call put_nl
    PUTS m_d3
    PUTHEX %r14
    call put_nl

    test %r12, %r12                 # delta >= 1 (and not "negative")
    jz fail
    bt $63, %r12
    jc fail
    PUTS m_adv
    cmp %r12, %r13
    jne fail
    PUTS m_det
    cmp %r12, %r14
    jb fail
    PUTS m_longer

    PUTS m_halt
    pushf                           # IF must be 0 here (64-bit entry contract)
    pop %rax
    bt $9, %rax
    jc fail
    hlt
    PUTS m_after
    EXIT 0x10
fail:
    PUTS m_fail
    EXIT 0x11

# RAX = TSC after - TSC before, across 2 MOVs and 10 NOPs.
measure:
    rdtsc
    mov %eax, %r8d
    mov %edx, %r9d
    .rept 10
    nop
    .endr
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    shl $32, %r9
    or %r9, %r8
    sub %r8, %rax
    ret

measure_long:                       # the same with 30 NOPs
    rdtsc
    mov %eax, %r8d
    mov %edx, %r9d
    .rept 30
    nop
    .endr
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    shl $32, %r9
    or %r9, %r8
    sub %r8, %rax
    ret
    GUEST_LIB64
    .section .rodata
m_d1: .asciz "delta (first run)  "
m_d2: .asciz "delta (second run) "
m_d3: .asciz "delta (30 nops)    "
m_adv: .asciz "tsc advances ok\n"
m_det: .asciz "deterministic ok\n"
m_longer: .asciz "longer not cheaper ok\n"
m_halt: .asciz "halting with IF=0\n"
m_after: .asciz "FAIL: HLT returned\n"
m_fail: .asciz "FAIL\n"
