# 5-level paging (SDM Vol. 3A §4.5): a Multiboot kernel sets CR4.LA57 before
# turning paging on (it cannot change in IA-32e mode), identity-maps 4 GiB
# through a PML5, and maps VA 0x0080_0000_0000_0000 (bit 55: canonical only
# with 57-bit linear addresses, §3.3.7.1) to the same physical page as a buffer;
# bit 56 set without bits 63:57 is non-canonical even with LA57.
# On a model without LA57, MOV to CR4 with bit 12 set is #GP (second file).
# FORMAT: elf32
# ARGS: --cpu sapphire-rapids
# EXPECT-OUT: la57 long mode
# EXPECT-OUT: cr4.la57 0000000000000001
# EXPECT-OUT: high va read 5757575757575757
# EXPECT-OUT: EXC 000000000000000d ERR 0000000000000000
# EXPECT-OUT: non-canonical 57-bit address: #GP
# EXPECT-EXIT: 1
.include "guest.inc"
    .section .multiboot
    .balign 4
    .long 0x1BADB002, 0x00000003, -(0x1BADB002 + 0x00000003)

    .text
    .code32
    .globl _start
_start:
    # tables at 0x200000: PML5, PML4, PDPT, 4 PDs; 0x207000: PML4 for VA bit 56, ...
    mov $0x200000, %edi
    xor %eax, %eax
    mov $(12 * 4096 / 4), %ecx
    rep stosl
    movl $0x201003, 0x200000          # PML5[0] -> PML4 (0x201000)
    movl $0x202003, 0x201000          # PML4[0] -> PDPT (0x202000)
    mov $0, %ecx
1:  mov %ecx, %eax
    shl $12, %eax
    add $0x203003, %eax
    mov %eax, 0x202000(,%ecx,8)       # PDPT[i] -> PD i
    inc %ecx
    cmp $4, %ecx
    jb 1b
    mov $0, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, 0x203000(,%ecx,8)       # 2 MiB identity pages
    inc %ecx
    cmp $2048, %ecx
    jb 2b
    # VA 0x0080000000000000: PML5 index = VA[56:48] = 128 -> its own chain
    movl $0x207003, 0x200000 + 8 * 128 # PML5[128]
    movl $0x208003, 0x207000          # PML4[0] -> PDPT
    movl $0x209003, 0x208000          # PDPT[0] -> PD
    movl $0x20a003, 0x209000          # PD[0] -> PT
    mov $highbuf, %eax
    or $0x3, %eax
    mov %eax, 0x20a000                # PT[0] -> highbuf
    mov $0x200000, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x1020, %eax                  # PAE | LA57
    mov %eax, %cr4
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    lgdt gdt_ptr
    ljmp $0x08, $long64

    .code64
long64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %ss
    lea stack_top(%rip), %rsp
    call idt64_install
    PUTS m_lm
    PUTS m_cr4
    mov %cr4, %rax
    shr $12, %rax
    and $1, %rax
    PUTHEX %rax
    call put_nl
    mov $0x5757575757575757, %rax
    mov %rax, highbuf(%rip)
    mov $0x0080000000000000, %rbx
    PUTS m_hi
    PUTHEX (%rbx)
    call put_nl
    RESUME_AT 1f
    mov $0x0100000000000000, %rbx     # bit 56 set, bits 63:57 clear: not canonical
    mov (%rbx), %rax
1:  PUTS m_nc
    EXIT 0
    GUEST_LIB64
    .section .rodata
m_lm: .asciz "la57 long mode\n"
m_cr4: .asciz "cr4.la57 "
m_hi: .asciz "high va read "
m_nc: .asciz "non-canonical 57-bit address: #GP\n"
    .balign 8
gdt:
    .quad 0
    .quad 0x00af9b000000ffff
    .quad 0x00cf93000000ffff
gdt_ptr:
    .word 3 * 8 - 1
    .long gdt
    .bss
    .balign 4096
highbuf: .skip 4096
stack: .skip 8192
stack_top:
