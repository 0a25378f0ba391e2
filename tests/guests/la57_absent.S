# Without LA57 in the CPU model, CR4.LA57 (bit 12) is reserved: MOV to CR4
# setting it is #GP(0) (SDM Vol. 2B MOV to CR4; the feature model, issue 5),
# and CPUID.(7,0):ECX[16] is 0.
# FORMAT: elf64
# ARGS: --cpu sapphire-rapids,-la57
# EXPECT-OUT: cpuid la57 0000000000000000
# EXPECT-OUT: EXC 000000000000000d ERR 0000000000000000
# EXPECT-OUT: cr4.la57 #GP ok
# EXPECT-EXIT: 1
.include "guest.inc"
    .text
    .globl _start
_start:
    call idt64_install
    mov $7, %eax
    xor %ecx, %ecx
    cpuid
    shr $16, %rcx
    and $1, %rcx
    PUTS m_cpuid
    PUTHEX %rcx
    call put_nl
    RESUME_AT 1f
    mov %cr4, %rax
    bts $12, %rax
    mov %rax, %cr4
1:  PUTS m_gp
    EXIT 0
    GUEST_LIB64
    .section .rodata
m_cpuid: .asciz "cpuid la57 "
m_gp: .asciz "cr4.la57 #GP ok\n"
