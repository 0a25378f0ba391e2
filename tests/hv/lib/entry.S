/*
 * hv library entry points (GNU as, AT&T syntax, 64-bit).
 *
 *   _start           64-bit boot contract entry (vmxsim README): clear .bss,
 *                    switch to our stack, hv_start(RAM size)
 *   hv_exc_stubs     256 IDT entry points, 16 bytes apart; each pushes a
 *                    uniform { vector, error code } and calls hv_exception()
 *   hv_try           run fn(arg) with a recovery point for exceptions
 *   hv_vmenter       load the guest GPRs from ctx->regs, VMLAUNCH/VMRESUME
 *   hv_vmexit_stub   HOST_RIP: save the guest GPRs into ctx->regs and return
 *                    0 from hv_vmenter
 *   hv_guest_entry   GUEST_RIP of a fresh context: fn(arg), then VMCALL with
 *                    RAX = HV_GUEST_DONE
 *
 * ctx->regs is at offset 0 of struct vmx_test_ctx: slot i = SDM register i
 * (rax rcx rdx rbx rsp rbp rsi rdi r8-r15); the RSP slot is unused.
 */
    .code64

/* ---- 64-bit entry ------------------------------------------------------ */
    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    cli
    cld
    mov %rdi, %r12                  /* RAM size */
    lea __bss_start(%rip), %rdi
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    lea hv_boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %r12, %rdi
    call hv_start                   /* never returns */
1:  cli
    hlt
    jmp 1b
    .size _start, . - _start

/* ---- Exceptions --------------------------------------------------------- */
    .text
    .altmacro
    .macro EXC_STUB v
    .balign 16
    .if ((\v == 8) || ((\v >= 10) && (\v <= 14)) || (\v == 17) || (\v == 21))
    .else
    pushq $0                        /* uniform frame: a zero error code */
    .endif
    pushq $\v
    jmp exc_common
    .endm

    .balign 16
    .globl hv_exc_stubs, hv_exc_stubs_end
hv_exc_stubs:
    .set vec, 0
    .rept 256
    EXC_STUB %vec
    .set vec, vec + 1
    .endr
    .balign 16
hv_exc_stubs_end:
    .noaltmacro

/* Stack: r15 ... rax, vector, error code, RIP, CS, RFLAGS, RSP, SS (struct exc_frame). */
exc_common:
    push %rax
    push %rcx
    push %rdx
    push %rbx
    push %rbp
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call hv_exception
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rbp
    pop %rbx
    pop %rdx
    pop %rcx
    pop %rax
    add $16, %rsp
    iretq

/* int hv_try(void (*fn)(void *), void *arg): -1, or the vector of the exception fn took. */
    .globl hv_try
    .type hv_try, @function
hv_try:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    push hv_try_rsp(%rip)           /* nesting: keep the outer recovery RSP */
    mov %rsp, hv_try_rsp(%rip)
    lea .Ltry_landing(%rip), %rax
    mov %rax, exc_resume_rip(%rip)
    mov %rdi, %rax
    mov %rsi, %rdi
    call *%rax
    mov $-1, %eax
    jmp .Ltry_out
.Ltry_landing:                      /* hv_exception() resumed here */
    mov hv_try_rsp(%rip), %rsp
    mov exc_last(%rip), %eax        /* exc_last.vector (offset 0) */
.Ltry_out:
    pop hv_try_rsp(%rip)            /* the outer hv_try's, or 0 */
    movq $0, exc_resume_rip(%rip)
    cmpq $0, hv_try_rsp(%rip)
    je 1f
    lea .Ltry_landing(%rip), %rcx   /* re-arm the outer recovery point */
    mov %rcx, exc_resume_rip(%rip)
1:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret
    .size hv_try, . - hv_try

/* ---- VM entry and VM exit ------------------------------------------------ */

/* int hv_vmenter(struct vmx_test_ctx *ctx, int launch) */
    .globl hv_vmenter
    .type hv_vmenter, @function
hv_vmenter:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    push %rdi                       /* ctx at 0(%rsp): the exit stub finds it there */
    mov $0x6c14, %eax               /* HOST_RSP */
    vmwrite %rsp, %rax
    jbe .Lvmfail
    movb $1, hv_in_guest(%rip)
    test %esi, %esi                 /* the MOVs below leave the flags alone */
    mov 8*0(%rdi), %rax
    mov 8*1(%rdi), %rcx
    mov 8*2(%rdi), %rdx
    mov 8*3(%rdi), %rbx
    mov 8*5(%rdi), %rbp
    mov 8*6(%rdi), %rsi
    mov 8*8(%rdi), %r8
    mov 8*9(%rdi), %r9
    mov 8*10(%rdi), %r10
    mov 8*11(%rdi), %r11
    mov 8*12(%rdi), %r12
    mov 8*13(%rdi), %r13
    mov 8*14(%rdi), %r14
    mov 8*15(%rdi), %r15
    mov 8*7(%rdi), %rdi
    jnz 1f
    vmresume
    jmp .Lvmfail
1:  vmlaunch
.Lvmfail:                           /* VMfail: RFLAGS has CF (invalid) or ZF (valid) */
    pushfq
    pop %rax
    movb $0, hv_in_guest(%rip)
    mov $1, %edx
    test $0x01, %al
    jnz 2f
    mov $2, %edx
    test $0x40, %al
    jnz 2f
    mov $3, %edx                    /* neither: should not happen */
2:  mov %edx, %eax
    add $8, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret
    .size hv_vmenter, . - hv_vmenter

/* HOST_RIP. RSP = HOST_RSP: ctx, then hv_vmenter's saved registers. */
    .globl hv_vmexit_stub
    .type hv_vmexit_stub, @function
hv_vmexit_stub:
    pushfq                          /* RFLAGS as the VM exit left it (for tests) */
    popq hv_exit_rflags(%rip)
    push %rax
    mov 8(%rsp), %rax
    mov %rcx, 8*1(%rax)
    mov %rdx, 8*2(%rax)
    mov %rbx, 8*3(%rax)
    mov %rbp, 8*5(%rax)
    mov %rsi, 8*6(%rax)
    mov %rdi, 8*7(%rax)
    mov %r8, 8*8(%rax)
    mov %r9, 8*9(%rax)
    mov %r10, 8*10(%rax)
    mov %r11, 8*11(%rax)
    mov %r12, 8*12(%rax)
    mov %r13, 8*13(%rax)
    mov %r14, 8*14(%rax)
    mov %r15, 8*15(%rax)
    pop %rcx
    mov %rcx, 8*0(%rax)
    movb $0, hv_in_guest(%rip)
    add $8, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    xor %eax, %eax
    ret
    .size hv_vmexit_stub, . - hv_vmexit_stub

/* GUEST_RIP of a fresh context: RDI = arg, RSI = fn, RSP 16-byte aligned. */
    .globl hv_guest_entry
    .type hv_guest_entry, @function
hv_guest_entry:
    call *%rsi
    movabs $0x454E4F4454534547, %rax /* HV_GUEST_DONE */
    vmcall
    ud2
    .size hv_guest_entry, . - hv_guest_entry

    .data
    .balign 8
hv_try_rsp: .quad 0
    .globl hv_exit_rflags
hv_exit_rflags: .quad 0

    .bss
    .balign 16
hv_boot_stack: .skip 65536
hv_boot_stack_top:

    .section .note.GNU-stack, "", @progbits
