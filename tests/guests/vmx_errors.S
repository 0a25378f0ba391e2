# VMX instruction failures (SDM Vol. 3C §31.4 Table 31-1, ch. 31 pseudocode):
# #UD outside VMX operation and with CR4.VMXE=0, VMfailInvalid without a
# current VMCS, and VMfailValid with each error number: 1 (VMCALL in root),
# 2/3 (VMCLEAR), 4/5 (launch state), 7 (controls), 8 (host state), 9/10/11
# (VMPTRLD), 12 (unsupported field), 13 (read-only field, on a model without
# IA32_VMX_MISC[29]), 15 (VMXON in root), 26 (MOV-SS blocking), 28 (INVEPT/
# INVVPID operand).
# FORMAT: elf64
# ARGS: --cpu sapphire-rapids,-vmx_vmwrite_any
# EXPECT-OUT: EXC 0000000000000006
# EXPECT-OUT: #UD vmptrld outside VMX ok
# EXPECT-OUT: EXC 0000000000000006
# EXPECT-OUT: #UD vmxon without CR4.VMXE ok
# EXPECT-OUT: vmfailinvalid ok: vmxon bad revision
# EXPECT-OUT: vmfailinvalid ok: vmxon unaligned
# EXPECT-OUT: vmfailinvalid ok: vmread without current VMCS
# EXPECT-OUT: vmfail 0000000000000002 ok
# EXPECT-OUT: vmfail 0000000000000003 ok
# EXPECT-OUT: vmfail 0000000000000009 ok
# EXPECT-OUT: vmfail 000000000000000a ok
# EXPECT-OUT: vmfail 000000000000000b ok
# EXPECT-OUT: vmfail 000000000000000c ok
# EXPECT-OUT: vmfail 000000000000000d ok
# EXPECT-OUT: vmfail 000000000000000f ok
# EXPECT-OUT: vmfail 0000000000000005 ok
# EXPECT-OUT: vmfail 000000000000001c ok
# EXPECT-OUT: vmfail 000000000000001c ok
# EXPECT-OUT: vmfail 0000000000000001 ok
# EXPECT-OUT: vmfail 000000000000001a ok
# EXPECT-OUT: vmfail 0000000000000007 ok
# EXPECT-OUT: vmfail 0000000000000008 ok
# EXPECT-OUT: guest ran
# EXPECT-OUT: vmfail 0000000000000004 ok
# EXPECT-OUT: vmxoff ok
# EXPECT-OUT: EXC 0000000000000006
# EXPECT-OUT: #UD vmxoff outside VMX ok
# EXPECT-OUT: all done
# EXPECT-EXIT: 1
.include "guest.inc"
.include "vmx.inc"
    .set VMX_PROC_WANTED, 0x80

# After a VMX instruction: expect VMfailValid with error \err.
.macro EXPECT_VALID err
    mov $\err, %r15
    call check_valid
.endm
.macro EXPECT_INVALID msg
    lea \msg(%rip), %rsi
    call check_invalid
.endm

    .text
    .globl _start
_start:
    call idt64_install
    lea vmcs_region(%rip), %rax
    mov %rax, vmx_ptr(%rip)
    RESUME_AT 1f
    vmptrld vmx_ptr(%rip)
1:  PUTS m_ud1
    RESUME_AT 1f
    vmxon vmx_ptr(%rip)
1:  PUTS m_ud2
    mov %cr4, %rax
    or $0x2000, %rax
    mov %rax, %cr4
    # vmxon_region still has revision 0: VMfailInvalid
    lea vmxon_region(%rip), %rax
    mov %rax, vmx_ptr(%rip)
    vmxon vmx_ptr(%rip)
    EXPECT_INVALID m_inv1
    mov $0x480, %ecx
    rdmsr
    mov %eax, vmxon_region(%rip)
    mov %eax, vmcs_region(%rip)
    mov %eax, vmcs2(%rip)
    lea vmxon_region+8(%rip), %rax
    mov %rax, vmx_ptr(%rip)
    vmxon vmx_ptr(%rip)
    EXPECT_INVALID m_inv2
    lea vmxon_region(%rip), %rax
    mov %rax, vmx_ptr(%rip)
    vmxon vmx_ptr(%rip)
    jbe vmx_failed
    mov $0x4402, %rax
    vmread %rax, %rbx
    EXPECT_INVALID m_inv3
    lea vmcs_region(%rip), %rax
    mov %rax, vmx_ptr(%rip)
    vmclear vmx_ptr(%rip)
    jbe vmx_failed
    vmptrld vmx_ptr(%rip)
    jbe vmx_failed
    # VMfailValid cases with a current VMCS
    lea vmcs_region+16(%rip), %rax
    mov %rax, tmp_ptr(%rip)
    vmclear tmp_ptr(%rip)
    EXPECT_VALID 2
    lea vmxon_region(%rip), %rax
    mov %rax, tmp_ptr(%rip)
    vmclear tmp_ptr(%rip)
    EXPECT_VALID 3
    lea vmcs_region+16(%rip), %rax
    mov %rax, tmp_ptr(%rip)
    vmptrld tmp_ptr(%rip)
    EXPECT_VALID 9
    lea vmxon_region(%rip), %rax
    mov %rax, tmp_ptr(%rip)
    vmptrld tmp_ptr(%rip)
    EXPECT_VALID 10
    lea vmcs_bad(%rip), %rax
    mov %rax, tmp_ptr(%rip)
    vmptrld tmp_ptr(%rip)
    EXPECT_VALID 11
    mov $0xffff, %rax
    vmread %rax, %rbx
    EXPECT_VALID 12
    mov $0x4402, %rax              # VM_EXIT_REASON is read-only
    vmwrite %rbx, %rax
    EXPECT_VALID 13
    lea vmxon_region(%rip), %rax
    mov %rax, tmp_ptr(%rip)
    vmxon tmp_ptr(%rip)
    EXPECT_VALID 15
    vmresume
    EXPECT_VALID 5
    mov $3, %rax                   # INVEPT type 3 does not exist
    invept inv_desc(%rip), %rax
    EXPECT_VALID 28
    mov $1, %rax                   # INVVPID single-context with VPID 0
    invvpid inv_desc(%rip), %rax
    EXPECT_VALID 28
    vmcall
    EXPECT_VALID 1
    # Build a full VMCS (VMX_SETUP re-enters VMX operation: leave it first)
    vmxoff
    VMX_SETUP
    mov %ss, %ax
    mov %ax, %ss
    vmlaunch
    EXPECT_VALID 26
    VMR 0x4000, %r12               # pin-based controls: set reserved bit 31
    bts $31, %r12
    VMW 0x4000, %r12
    vmlaunch
    EXPECT_VALID 7
    btr $31, %r12
    VMW 0x4000, %r12
    VMR 0x6c04, %r12               # host CR4 without VMXE
    btr $13, %r12
    VMW 0x6c04, %r12
    vmlaunch
    EXPECT_VALID 8
    bts $13, %r12
    VMW 0x6c04, %r12
    vmlaunch
    jmp vmx_failed
vmexit_handler:
    PUTS m_guest
    vmlaunch
    EXPECT_VALID 4
    vmxoff
    jbe vmx_failed
    PUTS m_off
    RESUME_AT 1f
    vmxoff
1:  PUTS m_ud3
    PUTS m_done
    EXIT 0

guest_entry:
    hlt

check_valid:                       # flags from the VMX instruction; r15 = expected error
    pushf
    pop %r14
    test $0x41, %r14               # ZF and CF
    jz 8f
    bt $0, %r14
    jc 8f
    mov $0x4400, %rax
    vmread %rax, %r13
    cmp %r15, %r13
    jne 8f
    PUTS m_vf
    PUTHEX %r15
    PUTS m_ok
    ret
8:  PUTS m_vf
    PUTHEX %r15
    PUTS m_wrong
    PUTHEX %r14
    call put_nl
    EXIT 0x7d

check_invalid:                     # rsi = message
    pushf
    pop %r14
    bt $0, %r14
    jnc 8b
    push %rsi
    PUTS m_vi
    pop %rsi
    call serial_puts
    call put_nl
    ret

    GUEST_LIB64
    VMX_DATA
    .data
    .balign 16
tmp_ptr: .quad 0
inv_desc: .quad 0, 0
    .bss
    .balign 4096
vmcs2: .skip 4096
vmcs_bad: .skip 4096
    .section .rodata
m_ud1: .asciz "#UD vmptrld outside VMX ok\n"
m_ud2: .asciz "#UD vmxon without CR4.VMXE ok\n"
m_ud3: .asciz "#UD vmxoff outside VMX ok\n"
m_inv1: .asciz "vmxon bad revision"
m_inv2: .asciz "vmxon unaligned"
m_inv3: .asciz "vmread without current VMCS"
m_vi: .asciz "vmfailinvalid ok: "
m_vf: .asciz "vmfail "
m_ok: .asciz " ok\n"
m_wrong: .asciz " WRONG rflags "
m_guest: .asciz "guest ran\n"
m_off: .asciz "vmxoff ok\n"
m_done: .asciz "all done\n"
