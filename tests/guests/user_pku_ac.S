# CPL-3 rules (SDM Vol. 3A): PKU — a user-mode data access to a user page
# with protection key k is governed by PKRU.ADk/WDk when CR4.PKE=1 (§4.6.2):
# #PF with P|U|PK (0x25) for a read with ADk, P|W|U|PK (0x27) for a write
# with WDk. Alignment checking (§6.15): CPL 3, CR0.AM=1, RFLAGS.AC=1 and a
# misaligned access → #AC(0); a split-locked access at CPL 3 with alignment
# checking on is the same #AC(0) (issue 5: indistinguishable on hardware).
# The test has its own GDT (user code/data DPL 3) and runs ring 3 with IOPL 3.
# FORMAT: elf64
# ARGS: --cpu sapphire-rapids
# EXPECT-OUT: ring 3 pkru 0 read 4b4b4b4b4b4b4b4b
# EXPECT-OUT: EXC 000000000000000e ERR 0000000000000025 CR2 0000000040000000
# EXPECT-OUT: pkru ad: #PF
# EXPECT-OUT: EXC 000000000000000e ERR 0000000000000027 CR2 0000000040000008
# EXPECT-OUT: pkru wd: #PF, read still 4b4b4b4b4b4b4b4b
# EXPECT-OUT: aligned with AC ok
# EXPECT-OUT: EXC 0000000000000011 ERR 0000000000000000
# EXPECT-OUT: misaligned with AC: #AC
# EXPECT-OUT: EXC 0000000000000011 ERR 0000000000000000
# EXPECT-OUT: split lock with AC: #AC
# EXPECT-OUT: misaligned without AC ok
# EXPECT-EXIT: 1
.include "guest.inc"
    .text
    .globl _start
_start:
    call idt64_install
    lgdt gdt_ptr(%rip)
    # user-accessible: PML4E[0], PDPTE[0], PDPTE[1], PDE[0] (the image's 2 MiB)
    orq $0x4, 0x1000
    orq $0x4, 0x2000
    orq $0x4, 0x2008
    orq $0x4, 0x3000
    # VA 0x40000000: a 2-MiB user page at physical 0x400000 with protection key 1
    mov $0x400000, %rdi
    mov $0x4b4b4b4b4b4b4b4b, %rax
    mov %rax, (%rdi)
    mov %rax, 8(%rdi)
    mov $(0x400000 | 0x87 | (1 << 59)), %rax   # P RW US PS, key 1
    mov %rax, 0x4000
    mov %cr4, %rax
    bts $22, %rax                   # CR4.PKE
    mov %rax, %cr4
    mov %cr3, %rax
    mov %rax, %cr3
    # IRETQ to ring 3: SS 0x1b, RSP, RFLAGS (IOPL 3), CS 0x23, RIP
    pushq $0x1b
    lea user_stack_top(%rip), %rax
    push %rax
    pushq $0x3002
    pushq $0x23
    lea user_code(%rip), %rax
    push %rax
    iretq

user_code:
    mov $0x1b, %ax
    mov %ax, %ds
    mov %ax, %es
    xor %ecx, %ecx
    xor %edx, %edx
    xor %eax, %eax
    wrpkru                          # PKRU = 0
    mov $0x40000000, %rbx
    PUTS m_r0
    PUTHEX (%rbx)
    call put_nl
    mov $0x4, %eax                  # PKRU.AD1
    wrpkru
    RESUME_AT 1f
    mov (%rbx), %rax
1:  PUTS m_ad
    mov $0x8, %eax                  # PKRU.WD1
    xor %ecx, %ecx
    wrpkru
    RESUME_AT 1f
    movq $1, 8(%rbx)
1:  PUTS m_wd
    PUTHEX 8(%rbx)
    call put_nl
    xor %eax, %eax
    wrpkru
    # alignment checking: RFLAGS.AC = 1 at CPL 3 (CR0.AM = 1 in the boot state)
    pushf
    orq $0x40000, (%rsp)
    popf
    lea buf(%rip), %rbx
    mov 8(%rbx), %rax
    PUTS m_al
    RESUME_AT 1f
    mov 1(%rbx), %eax
1:  PUTS m_mis
    RESUME_AT 1f
    lock incl 62(%rbx)              # crosses a 64-byte line
1:  PUTS m_split
    pushf
    andq $~0x40000, (%rsp)
    popf
    mov 1(%rbx), %eax
    PUTS m_noac
    EXIT 0

    GUEST_LIB64
    .section .rodata
    .balign 8
gdt:
    .quad 0
    .quad 0x00af9b000000ffff        # 0x08 kernel code 64
    .quad 0x00cf93000000ffff        # 0x10 kernel data
    .quad 0x00cff3000000ffff        # 0x18 user data (DPL 3)
    .quad 0x00affb000000ffff        # 0x20 user code 64 (DPL 3)
gdt_ptr:
    .word 5 * 8 - 1
    .quad gdt
m_r0: .asciz "ring 3 pkru 0 read "
m_ad: .asciz "pkru ad: #PF\n"
m_wd: .asciz "pkru wd: #PF, read still "
m_al: .asciz "aligned with AC ok\n"
m_mis: .asciz "misaligned with AC: #AC\n"
m_split: .asciz "split lock with AC: #AC\n"
m_noac: .asciz "misaligned without AC ok\n"
    .data
    .balign 64
buf: .skip 128
    .bss
    .balign 16
user_stack: .skip 8192
user_stack_top:
