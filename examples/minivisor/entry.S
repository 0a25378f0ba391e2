/*
 * minivisor entry points (GNU as, AT&T syntax, 64-bit).
 *
 *   _start          64-bit entry: zero .bss, switch to our stack, call main
 *   exception_stubs host IDT entry points for vectors 0-31
 *   vmx_launch      load the guest's GPRs and VMLAUNCH
 *   vmx_exit_stub   HOST_RIP: save guest GPRs, handle_exit(), VMRESUME
 *   guest_start     GUEST_RIP: the guest's first instruction (non-root)
 *
 * struct regs (minivisor.h): 16 qwords, slot i = x86 register number i
 * (rax rcx rdx rbx rsp rbp rsi rdi r8-r15); the RSP slot is unused.
 */

    .code64

/* ---- 64-bit entry --------------------------------------------------------
 * Boot contract (vmxsim README): long mode, CPL 0, IF = 0, identity map of
 * 4 GiB, RDI = RAM size, RSI = boot information. Keep RDI/RSI in callee-
 * saved registers while .bss (which holds our stack) is cleared.
 */
    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    cli
    cld
    mov %rdi, %r12
    mov %rsi, %r13
    lea __bss_start(%rip), %rdi
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %r12, %rdi
    mov %r13, %rsi
    call main                       /* never returns */
1:  cli
    hlt
    jmp 1b
    .size _start, . - _start

/* ---- Host exceptions -----------------------------------------------------
 * One stub per vector: push a zero error code where the CPU pushes none, so
 * exception_common always sees { vector, error code, RIP, CS, RFLAGS, RSP, SS }.
 */
    .text
    .macro EXCEPTION_STUB vec
    .align 16
exception_\vec:
    .if ((1 << \vec) & 0x60227d00) == 0    /* vectors 8, 10-14, 17, 21, 29, 30 push one */
    push $0
    .endif
    push $\vec
    jmp exception_common
    .endm

    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    EXCEPTION_STUB \v
    .endr

exception_common:
    mov %rsp, %rdi                  /* struct exception_frame * */
    and $-16, %rsp
    call host_exception             /* never returns */
    ud2

    .section .rodata
    .align 8
    .globl exception_stubs
exception_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exception_\v
    .endr

/* ---- VM entry ------------------------------------------------------------
 * _Noreturn void vmx_launch(const struct regs *guest)
 * The VMCS holds only RSP, RIP and RFLAGS of the guest; every other GPR is
 * loaded here, RDI last. On success control never comes back: VM exits go
 * to vmx_exit_stub on the host stack. On VMfail, CF or ZF is set: report.
 */
    .text
    .globl vmx_launch
    .type vmx_launch, @function
vmx_launch:
    mov 0x00(%rdi), %rax
    mov 0x08(%rdi), %rcx
    mov 0x10(%rdi), %rdx
    mov 0x18(%rdi), %rbx
    mov 0x28(%rdi), %rbp
    mov 0x30(%rdi), %rsi
    mov 0x40(%rdi), %r8
    mov 0x48(%rdi), %r9
    mov 0x50(%rdi), %r10
    mov 0x58(%rdi), %r11
    mov 0x60(%rdi), %r12
    mov 0x68(%rdi), %r13
    mov 0x70(%rdi), %r14
    mov 0x78(%rdi), %r15
    mov 0x38(%rdi), %rdi
    vmlaunch
    pushfq                          /* VMfailInvalid (CF) or VMfailValid (ZF) */
    pop %rdi
    mov $1, %esi                    /* launch = 1 */
    and $-16, %rsp
    call vmx_entry_failed           /* never returns */
    ud2
    .size vmx_launch, . - vmx_launch

/* ---- VM exit -------------------------------------------------------------
 * HOST_RIP. The CPU loaded the host state: RSP = HOST_RSP (top of the host
 * stack, 16-byte aligned), RFLAGS = 0x2 (IF = DF = 0). Save the guest's
 * GPRs as a struct regs (16 slots keep RSP 16-byte aligned for the call),
 * let C handle the exit, restore the GPRs (handle_exit may have changed
 * them) and VMRESUME. VMRESUME only falls through on VMfail.
 */
    .globl vmx_exit_stub
    .type vmx_exit_stub, @function
vmx_exit_stub:
    push %r15
    push %r14
    push %r13
    push %r12
    push %r11
    push %r10
    push %r9
    push %r8
    push %rdi
    push %rsi
    push %rbp
    push $0                         /* RSP slot: the guest RSP is GUEST_RSP */
    push %rbx
    push %rdx
    push %rcx
    push %rax
    mov %rsp, %rdi                  /* struct regs * */
    call handle_exit
    pop %rax
    pop %rcx
    pop %rdx
    pop %rbx
    add $8, %rsp
    pop %rbp
    pop %rsi
    pop %rdi
    pop %r8
    pop %r9
    pop %r10
    pop %r11
    pop %r12
    pop %r13
    pop %r14
    pop %r15
    vmresume
    pushfq                          /* VMfailInvalid (CF) or VMfailValid (ZF) */
    pop %rdi
    xor %esi, %esi                  /* launch = 0 */
    call vmx_entry_failed           /* RSP is HOST_RSP again: aligned */
    ud2
    .size vmx_exit_stub, . - vmx_exit_stub

/* ---- The guest's entry point (VMX non-root operation) --------------------
 * GUEST_RSP = top of the guest stack (16-byte aligned), so the call leaves
 * the stack as the ABI expects. RDI/RSI were loaded by vmx_launch:
 * guest_main(bench_n, bench). guest_main ends with HLT, which exits.
 */
    .globl guest_start
    .type guest_start, @function
guest_start:
    call guest_main
2:  hlt
    jmp 2b
    .size guest_start, . - guest_start

/* ---- The boot stack (in .bss: cleared before use, never touched before) */
    .section .bss
    .align 16
boot_stack:
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
