# Split-lock detection (MSR_TEST_CTRL[29], enumerated by IA32_CORE_CAPABILITIES[5];
# SDM Vol. 3A §6.15): a LOCK-prefixed access crossing a 64-byte line is
# #AC(0) at CPL 0 with CR0.AM = 0 — before memory changes; an aligned locked
# access, and any access with detection off, completes. In a guest: #AC in
# the exception bitmap → exit reason 0 with vector 17; otherwise the guest's
# IDT handles it.
# FORMAT: elf64
# ARGS: --cpu sapphire-rapids
# EXPECT-OUT: core-caps 0000000000000020
# EXPECT-OUT: EXC 0000000000000011 ERR 0000000000000000
# EXPECT-OUT: memory unchanged 1111111111111111
# EXPECT-OUT: aligned lock ok 0000000000000002
# EXPECT-OUT: xchg split EXC
# EXPECT-OUT: EXC 0000000000000011
# EXPECT-OUT: detection off: completed 0000000000000003
# EXPECT-OUT: guest exit 0000000000000000 info 0000000080000b11
# EXPECT-OUT: EXC 0000000000000011
# EXPECT-OUT: guest handled #AC
# EXPECT-EXIT: 1
.include "guest.inc"
.include "vmx.inc"
    .set VMX_PROC_WANTED, 0x80

    .text
    .globl _start
_start:
    call idt64_install
    mov $0xcf, %ecx                 # IA32_CORE_CAPABILITIES
    rdmsr
    PUTS m_caps
    PUTHEX %rax
    call put_nl
    mov $0x33, %ecx                 # MSR_TEST_CTRL: split-lock detect
    mov $0x20000000, %eax
    xor %edx, %edx
    wrmsr
    lea line(%rip), %rbx            # 64-byte aligned
    mov $0x1111111111111111, %rax
    mov %rax, 60(%rbx)
    RESUME_AT 1f
    lock incq 60(%rbx)              # bytes 60..67: crosses the line
1:  PUTS m_unch
    PUTHEX 60(%rbx)
    call put_nl
    movq $1, 8(%rbx)
    lock incq 8(%rbx)               # aligned: no #AC
    PUTS m_aligned
    PUTHEX 8(%rbx)
    call put_nl
    PUTS m_xchg
    RESUME_AT 1f
    xchg %rax, 60(%rbx)             # implicitly locked
1:  mov $0x33, %ecx                 # detection off
    xor %eax, %eax
    xor %edx, %edx
    wrmsr
    movq $2, 60(%rbx)
    lock incq 60(%rbx)
    PUTS m_off
    PUTHEX 60(%rbx)
    call put_nl
    # guest with #AC intercepted, then not intercepted
    mov $0x33, %ecx
    mov $0x20000000, %eax
    xor %edx, %edx
    wrmsr
    VMX_SETUP
    VMW 0x4004, $0x20000            # EXCEPTION_BITMAP: #AC
    vmlaunch
    jmp vmx_failed
vmexit_handler:
    VMR 0x4402, %r12
    cmp $12, %r12                   # HLT: the guest handled its own #AC
    je 2f
    VMR 0x4404, %r13
    PUTS m_gexit
    PUTHEX %r12
    PUTS m_info
    PUTHEX %r13
    call put_nl
    VMW 0x4004, $0                  # let the guest take #AC through its IDT
    vmresume
    jmp vmx_failed
2:  PUTS m_ghandled
    EXIT 0

guest_entry:
    lea line(%rip), %rbx
    RESUME_AT 1f
    lock incq 60(%rbx)
1:  hlt

    GUEST_LIB64
    VMX_DATA
    .data
    .balign 64
line: .skip 128
    .section .rodata
m_caps: .asciz "core-caps "
m_unch: .asciz "memory unchanged "
m_aligned: .asciz "aligned lock ok "
m_xchg: .asciz "xchg split EXC\n"
m_off: .asciz "detection off: completed "
m_gexit: .asciz "guest exit "
m_info: .asciz " info "
m_ghandled: .asciz "guest handled #AC\n"
