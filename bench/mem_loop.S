# Load/store loop over a 64 KiB buffer at 2 MiB: 8 instructions per iteration.
    .code64
    .globl _start
_start:
    mov $100000000, %rcx
    mov $0x200000, %rsi
    xor %rdi, %rdi
1:  mov (%rsi,%rdi,8), %rax
    add %rcx, %rax
    mov %rax, 8(%rsi,%rdi,8)
    add $1, %rdi
    and $8191, %rdi
    mov %rax, %rdx
    dec %rcx
    jnz 1b
    mov $0, %al
    out %al, $0xf4
    hlt
