# The architectural TLB (SDM Vol. 3A §4.10): after a PTE is changed without
# invalidation the old translation may stay in use; a global translation
# (G=1, CR4.PGE=1) survives MOV to CR3 (§4.10.4.1); INVLPG drops it.
# FORMAT: elf64
# EXPECT-OUT: first read aaaaaaaaaaaaaaaa
# EXPECT-OUT: stale read aaaaaaaaaaaaaaaa
# EXPECT-OUT: after cr3 reload aaaaaaaaaaaaaaaa
# EXPECT-OUT: after invlpg bbbbbbbbbbbbbbbb
# EXPECT-OUT: non-global after cr3 reload aaaaaaaaaaaaaaaa
# EXPECT-EXIT: 1
.include "guest.inc"
    .set VA, 0x40000000
    .text
    .globl _start
_start:
    call idt64_install
    mov $0xaaaaaaaaaaaaaaaa, %rax
    mov %rax, page_a(%rip)
    mov $0xbbbbbbbbbbbbbbbb, %rax
    mov %rax, page_b(%rip)
    mov $0xcccccccccccccccc, %rax
    mov %rax, page_c(%rip)
    # PD for the second GiB (boot page tables: 0x4000) entry 0 -> our page table
    lea pt(%rip), %rax
    or $0x3, %rax
    mov %rax, 0x4000
    lea page_a(%rip), %rax
    or $0x103, %rax                 # P | RW | G
    mov %rax, pt(%rip)
    mov %cr3, %rax
    mov %rax, %cr3
    mov $VA, %rbx
    PUTS m1
    PUTHEX (%rbx)
    call put_nl
    lea page_b(%rip), %rax          # remap to page B, no invalidation
    or $0x103, %rax
    mov %rax, pt(%rip)
    PUTS m2
    PUTHEX (%rbx)
    call put_nl
    mov %cr3, %rax                  # flushes non-global translations only
    mov %rax, %cr3
    PUTS m3
    PUTHEX (%rbx)
    call put_nl
    invlpg (%rbx)
    PUTS m4
    PUTHEX (%rbx)
    call put_nl
    lea page_c(%rip), %rax          # a non-global mapping is dropped by MOV to CR3
    or $0x3, %rax
    mov %rax, pt(%rip)
    invlpg (%rbx)
    mov (%rbx), %rax                # cache the non-global mapping to C
    lea page_a(%rip), %rax          # remap to A without invalidation
    or $0x3, %rax
    mov %rax, pt(%rip)
    mov %cr3, %rax
    mov %rax, %cr3
    PUTS m5
    PUTHEX (%rbx)
    call put_nl
    EXIT 0
    GUEST_LIB64
    .bss
    .balign 4096
pt: .skip 4096
page_a: .skip 4096
page_b: .skip 4096
page_c: .skip 4096
    .section .rodata
m1: .asciz "first read "
m2: .asciz "stale read "
m3: .asciz "after cr3 reload "
m4: .asciz "after invlpg "
m5: .asciz "non-global after cr3 reload "
