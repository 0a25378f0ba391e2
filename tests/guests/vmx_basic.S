# A minimal hypervisor: VMXON, VMCS set-up from the TRUE capability MSRs,
# VMLAUNCH of a 64-bit guest that executes CPUID (unconditional exit, SDM
# Vol. 3C §26.1.2), VMCALL (unconditional) and HLT (HLT exiting); the
# exit handler reads the exit reason and instruction length and resumes.
# VM exits do not save general registers (SDM Vol. 3C §28.3): after VMCALL
# the guest sees in RAX what the host left there, the last VMWRITE's field
# encoding GUEST_RIP (0x681e).
# FORMAT: elf64
# EXPECT-OUT: vmlaunch
# EXPECT-OUT: exit 000000000000000a len 0000000000000002
# EXPECT-OUT: exit 0000000000000012 len 0000000000000003
# EXPECT-OUT: guest rax 000000000000681e
# EXPECT-OUT: exit 000000000000000c len 0000000000000001
# EXPECT-OUT: done
# EXPECT-EXIT: 1
.include "guest.inc"
.include "vmx.inc"
    .set VMX_PROC_WANTED, 0x80     # HLT exiting
    .text
    .globl _start
_start:
    call idt64_install
    VMX_SETUP
    PUTS m_launch
    vmlaunch
    jmp vmx_failed

vmexit_handler:
    VMR 0x4402, %r12               # VM_EXIT_REASON
    VMR 0x440c, %r13               # VM_EXIT_INSTRUCTION_LEN
    PUTS m_exit
    PUTHEX %r12
    PUTS m_len
    PUTHEX %r13
    call put_nl
    cmp $12, %r12
    je 1f
    VMR 0x681e, %r14               # GUEST_RIP
    add %r13, %r14
    VMW 0x681e, %r14
    vmresume
    jmp vmx_failed
1:  PUTS m_done
    EXIT 0

guest_entry:
    mov $0, %eax
    cpuid
    mov $0xabcd, %rax
    vmcall
    PUTS m_grax                    # guest output (the port is not intercepted)
    PUTHEX %rax
    call put_nl
    hlt
    GUEST_LIB64
    VMX_DATA
    .section .rodata
m_launch: .asciz "vmlaunch\n"
m_exit: .asciz "exit "
m_len: .asciz " len "
m_done: .asciz "done\n"
m_grax: .asciz "guest rax "
