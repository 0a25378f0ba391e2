# Guest-paging permission rules at CPL 0 (SDM Vol. 3A §4.6, §4.7 error codes):
#   SMEP: a supervisor fetch from a user page → #PF P|I/D (0x11)
#   SMAP: a supervisor read of a user page with RFLAGS.AC=0 → #PF P (0x01); STAC allows it
#   NX:   a fetch from an XD page (EFER.NXE=1) → #PF P|I/D (0x11)
#   RSVD: a reserved bit (above MAXPHYADDR) in a PTE → #PF P|RSVD (0x09)
#   WP:   a supervisor write to a read-only page: #PF P|W (0x03) with CR0.WP=1, allowed with WP=0
# FORMAT: elf64
# ARGS: --cpu sapphire-rapids
# EXPECT-OUT: EXC 000000000000000e ERR 0000000000000011 CR2 0000000040000000
# EXPECT-OUT: smep ok
# EXPECT-OUT: EXC 000000000000000e ERR 0000000000000001 CR2 0000000040000008
# EXPECT-OUT: smap ok
# EXPECT-OUT: stac read 1122334455667788
# EXPECT-OUT: EXC 000000000000000e ERR 0000000000000011 CR2 0000000040001000
# EXPECT-OUT: nx ok
# EXPECT-OUT: EXC 000000000000000e ERR 0000000000000009 CR2 0000000040002010
# EXPECT-OUT: rsvd ok
# EXPECT-OUT: EXC 000000000000000e ERR 0000000000000003 CR2 0000000040003000
# EXPECT-OUT: wp=1 ok
# EXPECT-OUT: wp=0 write 0000000000000077
# EXPECT-EXIT: 1
.include "guest.inc"
.include "paging.inc"
    .text
    .globl _start
_start:
    call idt64_install
    movb $0xc3, page_u(%rip)              # ret
    mov $0x1122334455667788, %rax
    mov %rax, page_u+8(%rip)
    movb $0xc3, page_nx(%rip)
    SET_PTE pt, 0, page_u, 0x7            # user, writable
    SET_PTE pt, 1, page_nx, 0x8000000000000003   # XD, supervisor
    SET_PTE pt, 2, page_rsvd, 0x0004000000000003 # bit 50 set (MAXPHYADDR 46)
    SET_PTE pt, 3, page_ro, 0x1           # supervisor, read-only
    MAP_2ND_GIB_PT pt, 1
    mov %cr4, %rax
    or $0x300000, %rax                    # SMEP | SMAP
    mov %rax, %cr4

    RESUME_AT 1f
    mov $0x40000000, %rax
    call *%rax
1:  PUTS m_smep
    RESUME_AT 1f
    mov 0x40000008, %rax
1:  PUTS m_smap
    stac
    mov 0x40000008, %rbx
    clac
    PUTS m_stac
    PUTHEX %rbx
    call put_nl
    RESUME_AT 1f
    mov $0x40001000, %rax
    call *%rax
1:  PUTS m_nx
    RESUME_AT 1f
    mov 0x40002010, %rax
1:  PUTS m_rsvd
    RESUME_AT 1f
    movq $0x77, 0x40003000
1:  PUTS m_wp1
    mov %cr0, %rax
    btr $16, %rax                         # CR0.WP = 0
    mov %rax, %cr0
    movq $0x77, 0x40003000
    PUTS m_wp0
    PUTHEX 0x40003000
    call put_nl
    EXIT 0
    GUEST_LIB64
    .bss
    .balign 4096
pt: .skip 4096
page_u: .skip 4096
page_nx: .skip 4096
page_rsvd: .skip 4096
page_ro: .skip 4096
    .section .rodata
m_smep: .asciz "smep ok\n"
m_smap: .asciz "smap ok\n"
m_stac: .asciz "stac read "
m_nx: .asciz "nx ok\n"
m_rsvd: .asciz "rsvd ok\n"
m_wp1: .asciz "wp=1 ok\n"
m_wp0: .asciz "wp=0 write "
