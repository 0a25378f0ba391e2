# Exceptions delivered through our IDT (SDM Vol. 3A ch. 6): #DE, #UD, #GP
# from an unknown MSR (SDM Vol. 2B RDMSR), #GP from a non-canonical access,
# #PF with exact CR2 and error code for a read and a write to a not-present
# page, and three faults in a row (DESIGN §2: QEMU's stale old_exception
# would turn the second and third into #DF and a triple fault).
# FORMAT: elf64
# EXPECT-OUT: EXC 0000000000000000 ERR 0000000000000000
# EXPECT-OUT: after #DE
# EXPECT-OUT: EXC 0000000000000006 ERR 0000000000000000
# EXPECT-OUT: after #UD
# EXPECT-OUT: EXC 000000000000000d ERR 0000000000000000
# EXPECT-OUT: after rdmsr
# EXPECT-OUT: EXC 000000000000000d ERR 0000000000000000
# EXPECT-OUT: after wrmsr
# EXPECT-OUT: EXC 000000000000000d ERR 0000000000000000
# EXPECT-OUT: after non-canonical
# EXPECT-OUT: EXC 000000000000000e ERR 0000000000000000 CR2 0000000040000013
# EXPECT-OUT: after #PF read
# EXPECT-OUT: EXC 000000000000000e ERR 0000000000000002 CR2 0000000040000ffc
# EXPECT-OUT: after #PF write
# EXPECT-OUT: EXC 000000000000000d ERR 0000000000000000
# EXPECT-OUT: EXC 000000000000000d ERR 0000000000000000
# EXPECT-OUT: EXC 000000000000000d ERR 0000000000000000
# EXPECT-OUT: three in a row ok
# EXPECT-OUT: count 000000000000000a
# EXPECT-EXIT: 1
.include "guest.inc"
    .text
    .globl _start
_start:
    call idt64_install

    RESUME_AT 1f
    xor %edx, %edx
    xor %ecx, %ecx
    mov $1, %eax
    div %ecx
1:  PUTS m_de

    RESUME_AT 1f
    ud2
1:  PUTS m_ud

    RESUME_AT 1f
    mov $0xdeadbeef, %ecx
    rdmsr
1:  PUTS m_rdmsr

    RESUME_AT 1f
    mov $0xdeadbeef, %ecx
    wrmsr
1:  PUTS m_wrmsr

    RESUME_AT 1f
    mov $0x8000000000000000, %rax
    mov (%rax), %rax
1:  PUTS m_noncanon

    # Make 1 GiB..1 GiB+2 MiB not present: PD for the second GiB is at 0x4000.
    movq $0, 0x4000
    mov %cr3, %rax
    mov %rax, %cr3
    RESUME_AT 1f
    mov $0x40000010, %rbx
    mov 3(%rbx), %rax
1:  PUTS m_pfr
    RESUME_AT 1f
    mov $0x40000ffc, %rbx
    movl $1, (%rbx)
1:  PUTS m_pfw

    RESUME_AT 1f
    mov $0xdeadbeef, %ecx
    rdmsr
1:  RESUME_AT 1f
    rdmsr
1:  RESUME_AT 1f
    rdmsr
1:  PUTS m_three
    PUTS m_count
    PUTHEX exc_count(%rip)
    call put_nl
    EXIT 0
    GUEST_LIB64
    .section .rodata
m_de: .asciz "after #DE\n"
m_ud: .asciz "after #UD\n"
m_rdmsr: .asciz "after rdmsr\n"
m_wrmsr: .asciz "after wrmsr\n"
m_noncanon: .asciz "after non-canonical\n"
m_pfr: .asciz "after #PF read\n"
m_pfw: .asciz "after #PF write\n"
m_three: .asciz "three in a row ok\n"
m_count: .asciz "count "
