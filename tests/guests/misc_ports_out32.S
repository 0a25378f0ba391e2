# Debug exit with a 32-bit OUT (README: "any width"): OUT imm8, EAX with
# EAX = 12345678h stops the machine with status (value << 1) | 1 =
# 2468ACF1h, of which a process exit status keeps F1h = 241. If the OUT did
# not stop the run, the byte-wide fallback exit gives 33.
# FORMAT: elf64
# EXPECT-OUT: dword out to f4
# EXPECT-EXIT: 241
.include "guest.inc"
    .text
    .globl _start
_start:
    PUTS m_msg
    mov $0x12345678, %eax
    out %eax, $0xf4
    PUTS m_fail
    EXIT 0x10
    GUEST_LIB64
    .section .rodata
m_msg: .asciz "dword out to f4\n"
m_fail: .asciz "FAIL: still running after the dword OUT\n"
