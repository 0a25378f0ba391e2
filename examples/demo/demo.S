# The built-in demo (`vmxsim run` with no image): a 64-bit guest that reads
# its CPU model through CPUID, takes a #PF through its own IDT and exits.
.include "guest.inc"
    .text
    .globl _start
_start:
    PUTS banner
    call idt64_install
    # CPUID brand string (leaves 0x80000002..4)
    lea brand(%rip), %rdi
    mov $0x80000002, %esi
1:  mov %esi, %eax
    cpuid
    mov %eax, (%rdi)
    mov %ebx, 4(%rdi)
    mov %ecx, 8(%rdi)
    mov %edx, 12(%rdi)
    add $16, %rdi
    inc %esi
    cmp $0x80000005, %esi
    jb 1b
    PUTS m_cpu
    PUTS brand
    call put_nl
    PUTS m_pf
    movq $0, 0x4000              # unmap 1 GiB..1 GiB+2 MiB (boot page tables)
    mov %cr3, %rax
    mov %rax, %cr3
    RESUME_AT 2f
    movq $42, 0x40001234
2:  PUTS m_done
    EXIT 0
    GUEST_LIB64
    .section .rodata
banner: .asciz "vmxsim demo: 64-bit guest running on the simulated core\n"
m_cpu: .asciz "CPU: "
m_pf: .asciz "writing to an unmapped page...\n"
m_done: .asciz "page fault handled; exiting through the debug-exit port\n"
    .data
brand: .fill 49, 1, 0
