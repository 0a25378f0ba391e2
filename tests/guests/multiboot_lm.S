# A Multiboot v1 test kernel (ELF32 carrying 64-bit code, as kvm-unit-tests
# style kernels are built): entered in 32-bit protected mode with paging off,
# EAX = 0x2BADB002 and EBX = Multiboot info; it builds page tables, enables
# PAE and EFER.LME, turns paging on and far-jumps to 64-bit code itself.
# FORMAT: elf32
# ARGS: --append hello-cmdline
# EXPECT-OUT: multiboot magic ok
# EXPECT-OUT: in long mode
# EXPECT-OUT: cmdline hello-cmdline
# EXPECT-EXIT: 1
.include "guest.inc"
    .section .multiboot
    .balign 4
    .long 0x1BADB002
    .long 0x00000003
    .long -(0x1BADB002 + 0x00000003)

    .text
    .code32
    .globl _start
_start:
    cmp $0x2BADB002, %eax
    jne 9f
    mov %ebx, mbinfo
    mov $msg32, %esi
1:  movb (%esi), %al
    test %al, %al
    jz 2f
    mov $0xe9, %dx
    out %al, %dx
    inc %esi
    jmp 1b
2:  # identity-map 4 GiB with 2 MiB pages at 0x200000
    mov $0x200000, %edi
    xor %eax, %eax
    mov $(6 * 4096 / 4), %ecx
    rep stosl
    movl $0x201003, 0x200000          # PML4[0] -> PDPT
    mov $0, %ecx
3:  mov %ecx, %eax
    shl $12, %eax
    add $0x202003, %eax
    mov %eax, 0x201000(,%ecx,8)       # PDPT[i] -> PD i
    inc %ecx
    cmp $4, %ecx
    jb 3b
    mov $0, %ecx
4:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                    # P, RW, PS
    mov %eax, 0x202000(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jb 4b
    mov $0x200000, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax                    # PAE
    mov %eax, %cr4
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax                   # LME
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax              # PG | PE
    mov %eax, %cr0
    lgdt gdt_ptr
    ljmp $0x08, $long64
9:  mov $0x20, %al
    out %al, $0xf4

    .code64
long64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %ss
    PUTS msg64
    PUTS msg_cmd
    mov mbinfo(%rip), %eax
    mov 16(%rax), %esi                # cmdline
    call serial_puts
    call put_nl
    EXIT 0
    GUEST_LIB64
    .section .rodata
msg32: .asciz "multiboot magic ok\n"
msg64: .asciz "in long mode\n"
msg_cmd: .asciz "cmdline "
    .balign 8
gdt:
    .quad 0
    .quad 0x00af9b000000ffff              # 0x08: 64-bit code
    .quad 0x00cf93000000ffff              # 0x10: data
gdt_ptr:
    .word 3 * 8 - 1
    .long gdt
    .data
mbinfo: .long 0
