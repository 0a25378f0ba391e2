# Local APIC interrupts (SDM Vol. 3A ch. 11) and the VMX events they drive
# (SDM Vol. 3C §26.2, §26.5.1, §26.7.5):
#  1. xAPIC one-shot timer (MMIO) wakes a HLT with IF=1; the handler EOIs
#  2. x2APIC self-IPI through the SELF IPI MSR, delivered when STI opens the window
#  3. a guest with external-interrupt exiting + acknowledge-on-exit: the
#     timer interrupt becomes exit reason 1 with the vector in the exit
#     interruption information, and is no longer pending
#  4. VMX-preemption timer: exit reason 52 while the guest spins
#  5. interrupt-window exiting: exit reason 7 as soon as the guest has IF=1
# FORMAT: elf64
# EXPECT-OUT: IRQ 0000000000000040
# EXPECT-OUT: timer woke hlt
# EXPECT-OUT: IRQ 0000000000000041
# EXPECT-OUT: self-ipi ok
# EXPECT-OUT: exit 0000000000000001 info 0000000080000042
# EXPECT-OUT: exit 0000000000000034 info 0000000000000000
# EXPECT-OUT: exit 0000000000000007 info 0000000000000000
# EXPECT-OUT: irq count 0000000000000002
# EXPECT-EXIT: 1
.include "guest.inc"
.include "vmx.inc"
    .set VMX_PROC_WANTED, 0x80

    .text
    .globl _start
_start:
    call idt64_install
    # 1. xAPIC timer: enable (SVR bit 8), LVT timer vector 0x40 one-shot, divide by 1
    APIC_W 0xf0, 0x1ff
    APIC_W 0x3e0, 0xb
    APIC_W 0x320, 0x40
    APIC_W 0x380, 5000
    sti
    hlt
    cli
    cmpq $0x40, last_irq(%rip)
    jne fail
    PUTS m_t1
    # 2. x2APIC: IA32_APIC_BASE.EXTD, then SELF IPI (MSR 0x83F) vector 0x41
    mov $0x1b, %ecx
    rdmsr
    or $0xc00, %eax                # EN | EXTD
    wrmsr
    movb $1, apic_x2(%rip)
    mov $0x83f, %ecx
    mov $0x41, %eax
    xor %edx, %edx
    wrmsr                          # pending while IF=0
    cmpq $0x40, last_irq(%rip)
    jne fail
    sti
    nop
    nop
    cli
    cmpq $0x41, last_irq(%rip)
    jne fail
    PUTS m_t2
    # 3-5: VMX
    VMX_SETUP
    VMR 0x4000, %r8                # PIN: external-interrupt exiting | preemption timer
    or $0x41, %r8
    VMW 0x4000, %r8
    VMW 0x482e, $0                 # VMX_PREEMPTION_TIMER_VALUE: not yet (stays armed? see below)
    VMR 0x4000, %r8
    btr $6, %r8                    # first run: no preemption timer
    VMW 0x4000, %r8
    VMR 0x400c, %r8                # exit controls: acknowledge interrupt on exit
    bts $15, %r8
    VMW 0x400c, %r8
    mov $0x838, %ecx               # x2APIC initial count: timer vector 0x42
    mov $0x832, %ecx
    mov $0x42, %eax
    xor %edx, %edx
    wrmsr
    mov $0x838, %ecx
    mov $3000, %eax
    wrmsr
    movq $1, phase(%rip)
    vmlaunch
    jmp vmx_failed

vmexit_handler:
    VMR 0x4402, %r12
    VMR 0x4404, %r13               # VM_EXIT_INTR_INFO
    PUTS m_exit
    PUTHEX %r12
    PUTS m_info
    PUTHEX %r13
    call put_nl
    mov phase(%rip), %rax
    cmp $1, %rax
    je after_extint
    cmp $2, %rax
    je after_preempt
    # phase 3 done
    PUTS m_count
    PUTHEX irq_count(%rip)
    call put_nl
    EXIT 0
after_extint:
    # the vector was acknowledged: nothing pending for the host any more
    movq $2, phase(%rip)
    VMR 0x4000, %r8
    bts $6, %r8                    # preemption timer on
    VMW 0x4000, %r8
    VMW 0x482e, $100
    vmresume
    jmp vmx_failed
after_preempt:
    movq $3, phase(%rip)
    VMR 0x4000, %r8
    and $~0x41, %r8
    VMW 0x4000, %r8
    VMR 0x4002, %r8                # interrupt-window exiting
    bts $2, %r8
    VMW 0x4002, %r8
    lea guest_sti(%rip), %r8
    VMW 0x681e, %r8
    vmresume
    jmp vmx_failed

guest_entry:
1:  pause
    jmp 1b
guest_sti:
    nop
    sti
2:  jmp 2b

fail:
    PUTS m_fail
    EXIT 0x10
    GUEST_LIB64
    VMX_DATA
    .data
phase: .quad 0
    .section .rodata
m_t1: .asciz "timer woke hlt\n"
m_t2: .asciz "self-ipi ok\n"
m_exit: .asciz "exit "
m_info: .asciz " info "
m_count: .asciz "irq count "
m_fail: .asciz "FAIL\n"
