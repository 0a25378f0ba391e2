# 1-GByte pages (SDM Vol. 3A §4.5.4, Table 4-15): with CPUID.80000001H:EDX[26] (GBPAGES) a PDPTE with PS=1 maps 1 GiB;
# without GBPAGES (variant nogb), PS=1 in a PDPTE is a reserved bit: #PF P|RSVD (0x09).
# VA 5 GiB maps physical 0 with a 1-GiB page: VA 0x140007010 reads the boot GDT's data descriptor.
# FORMAT: elf64
# ARGS: --cpu sapphire-rapids
# EXPECT-OUT: 1g read 00cf93000000ffff
# EXPECT-OUT: 1g page ok
# EXPECT-EXIT: 1
# VARIANT nogb ARGS: --cpu sapphire-rapids,-gbpages
# VARIANT nogb EXPECT-OUT: EXC 000000000000000e ERR 0000000000000009 CR2 0000000140007010
# VARIANT nogb EXPECT-OUT: no 1g page: rsvd fault
.include "guest.inc"
.include "paging.inc"
    .text
    .globl _start
_start:
    call idt64_install
    movq $0x83, 0x2028                  # PDPTE[5]: P | RW | PS, frame 0
    FLUSH_ALL
    RESUME_AT 1f
    mov $0x140007010, %rbx
    mov (%rbx), %rax
    PUTS m_read
    PUTHEX %rax
    call put_nl
    PUTS m_ok
    EXIT 0
1:  PUTS m_rsvd
    EXIT 0
    GUEST_LIB64
    .section .rodata
m_read: .asciz "1g read "
m_ok: .asciz "1g page ok\n"
m_rsvd: .asciz "no 1g page: rsvd fault\n"
