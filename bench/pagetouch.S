# Page-touching loop under native paging (no VMX), for bench/paging.sh: the
# same loop as the minivisor's touch mode (examples/minivisor/guest.c), which
# runs it as a guest under 4-level EPT.
#
# Flat image, 64-bit boot contract (README "Boot contract"): RDI = RAM size,
# RSI = boot information (command line at +16). Command line
# "touch=N touch_rounds=R": the first decimal number is N (default 4096),
# the second R (default 50). The N pages at 0x4000000 (as in the minivisor)
# are mapped with 4 KiB pages (page tables at 0x3000000, replacing the boot
# map's 2 MiB PDEs), so every TLB miss is a full 4-level walk. Each round
# ADDs 1 to the first quadword of each page (a read and a write).
# Exit (port 0xF4): 0 when the first and last pages counted R (status 1);
# 1 on a wrong count (status 3); 2 if the pages do not fit in RAM (status 5).
    .code64
    .set TOUCH_GPA, 0x4000000
    .set PT_AREA, 0x3000000
    .set BOOT_PD0, 0x3000            # boot page directory of guest-linear 0-1 GiB
    .globl _start
_start:
    mov %rdi, %r12                   # RAM size
    mov $4096, %r8                   # N
    mov $50, %r9                     # R
    mov 16(%rsi), %rsi               # command line (physical = linear)
    test %rsi, %rsi
    jz 5f
    call number                      # first number -> N
    jc 5f
    mov %rax, %r8
    call number                      # second number -> R
    jc 5f
    mov %rax, %r9
5:  test %r8, %r8
    jz 9f
    test %r9, %r9
    jz 9f
    mov %r8, %rax                    # TOUCH_GPA + N * 4096 <= RAM
    shl $12, %rax
    add $TOUCH_GPA, %rax
    cmp %r12, %rax
    ja 9f

    # Page tables: one per 2 MiB of the region, 512 4-KiB entries each.
    lea 511(%r8), %r10
    shr $9, %r10                     # PTs needed
    mov $PT_AREA, %rdi
    mov $TOUCH_GPA | 3, %rax         # P | RW
    mov $(BOOT_PD0 + (TOUCH_GPA >> 21) * 8), %rdx
1:  mov %rdi, %rbx
    or $3, %rbx
    mov %rbx, (%rdx)                 # PDE -> this PT
    add $8, %rdx
    mov $512, %ecx
2:  mov %rax, (%rdi)
    add $4096, %rax
    add $8, %rdi
    dec %ecx
    jnz 2b
    dec %r10
    jnz 1b
    mov %cr3, %rax                   # flush the 2 MiB translations
    mov %rax, %cr3

    # The first and last pages start at 0 (they are checked at the end).
    mov $TOUCH_GPA, %rsi
    movq $0, (%rsi)
    lea -1(%r8), %rax
    shl $12, %rax
    movq $0, (%rsi,%rax)

    # The loop (4 instructions per page, as in the minivisor guest).
    mov %r9, %rdx
3:  mov $TOUCH_GPA, %rsi
    mov %r8, %rcx
4:  addq $1, (%rsi)
    add $4096, %rsi
    dec %rcx
    jnz 4b
    dec %rdx
    jnz 3b

    mov $TOUCH_GPA, %rsi
    lea -1(%r8), %rax
    shl $12, %rax
    cmp %r9, (%rsi)
    jne 8f
    cmp %r9, (%rsi,%rax)
    jne 8f
    mov $0, %al
    out %al, $0xf4
    hlt
8:  mov $1, %al
    out %al, $0xf4
    hlt
9:  mov $2, %al
    out %al, $0xf4
    hlt

# number: the next decimal number at RSI (skipping other characters) in RAX;
# RSI moves past it. CF = 1 when the string ends first.
number:
    xor %eax, %eax
1:  movzbl (%rsi), %ecx
    test %ecx, %ecx
    jz 4f
    sub $'0', %ecx
    cmp $9, %ecx
    jbe 2f
    inc %rsi
    jmp 1b
2:  imul $10, %rax, %rax
    add %rcx, %rax
    inc %rsi
    movzbl (%rsi), %ecx
    sub $'0', %ecx
    cmp $9, %ecx
    jbe 2b
    clc
    ret
4:  stc
    ret
