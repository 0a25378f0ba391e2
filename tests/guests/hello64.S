# 64-bit entry contract: long mode, paging, CPL0, IF=0, RDI = RAM size,
# RSI = boot info ("VMXS"), IA32_FEATURE_CONTROL locked with VMX enabled.
# FORMAT: elf64
# ARGS: --mem 64M
# EXPECT-OUT: hello from the 64-bit entry
# EXPECT-OUT: ram 0000000004000000
# EXPECT-OUT: efer.lma ok
# EXPECT-OUT: cr0.pg ok
# EXPECT-OUT: cpl0 ok
# EXPECT-OUT: bootinfo ok
# EXPECT-OUT: feature-control 0000000000000005
# EXPECT-EXIT: 1
.include "guest.inc"
    .text
    .globl _start
_start:
    PUTS msg_hello
    PUTS msg_ram
    PUTHEX %rdi
    call put_nl
    mov $0xc0000080, %ecx
    rdmsr
    bt $10, %eax
    jnc fail
    PUTS msg_lma
    mov %cr0, %rax
    bt $31, %rax
    jnc fail
    PUTS msg_pg
    mov %cs, %ax
    test $3, %ax
    jnz fail
    PUTS msg_cpl
    cmpl $0x53584d56, (%rsi)
    jne fail
    PUTS msg_bootinfo
    PUTS msg_fc
    mov $0x3a, %ecx
    rdmsr
    shl $32, %rdx
    or %rdx, %rax
    PUTHEX %rax
    call put_nl
    EXIT 0
fail:
    PUTS msg_fail
    EXIT 0x10
    GUEST_LIB64
    .section .rodata
msg_hello: .asciz "hello from the 64-bit entry\n"
msg_ram: .asciz "ram "
msg_lma: .asciz "efer.lma ok\n"
msg_pg: .asciz "cr0.pg ok\n"
msg_cpl: .asciz "cpl0 ok\n"
msg_bootinfo: .asciz "bootinfo ok\n"
msg_fc: .asciz "feature-control "
msg_fail: .asciz "FAIL\n"
