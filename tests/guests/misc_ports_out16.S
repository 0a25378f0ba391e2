# Debug exit with a 16-bit OUT (README: "the guest wrote value to port 0xF4
# (debug exit, any width)"): OUT DX, AX with AX = 7F21h stops the machine
# with status (value << 1) | 1 = FE43h; a process exit status keeps the low
# 8 bits: 43h = 67. If the OUT did not stop the run, the byte-wide fallback
# exit gives 33.
# FORMAT: elf64
# EXPECT-OUT: word out to f4
# EXPECT-EXIT: 67
.include "guest.inc"
    .text
    .globl _start
_start:
    PUTS m_msg
    mov $0xf4, %dx
    mov $0x7f21, %ax
    out %ax, %dx
    PUTS m_fail
    EXIT 0x10
    GUEST_LIB64
    .section .rodata
m_msg: .asciz "word out to f4\n"
m_fail: .asciz "FAIL: still running after the word OUT\n"
