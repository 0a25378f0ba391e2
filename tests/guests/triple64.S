# Triple fault (SDM Vol. 3A §6.15, interrupt 8): an IDT too small for any
# vector turns #UD into #GP, #GP into #DF, and a fault delivering #DF into
# shutdown. vmxsim reports it with registers and exits with status 4.
# FORMAT: elf64
# EXPECT-ERR: triple fault
# EXPECT-ERR: rip
# EXPECT-EXIT: 4
.include "guest.inc"
    .text
    .globl _start
_start:
    lidt empty_idt(%rip)
    ud2
    EXIT 0x10
    GUEST_LIB64
    .data
empty_idt: .word 0
    .quad 0
