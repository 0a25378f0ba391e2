# Straight-line register loop: 8 instructions per iteration.
    .code64
    .globl _start
_start:
    mov $100000000, %rcx
    xor %rax, %rax
    xor %rbx, %rbx
1:  add $3, %rax
    xor %rax, %rbx
    lea 1(%rbx), %rdx
    imul $7, %rdx
    sub %rdx, %rax
    ror $5, %rbx
    dec %rcx
    jnz 1b
    mov $0, %al
    out %al, $0xf4
    hlt
