# Privilege levels in IA-32e mode: events from CPL 3 through our own GDT,
# TSS (RSP0, IST1, I/O bitmap) and IDT (SDM Vol. 3A ch. 6, §6.12, §6.14).
#
# The guest copies the boot GDT, adds DPL-3 code/data and a 64-bit TSS,
# LTRs it, marks the first 2 MiB user-accessible, and IRETQs to CPL 3.
# Ring 3 prints through a syscall-like gate (INT 86h). Each check sets a
# tag; every event goes to one handler (CPL 0) that prints one line:
#   <tag>: EV vec ERR err CS <pushed CS> SS <pushed SS> NEWSS <SS now>
#   CPL <handler CPL> STK <which stack> ALIGN <frame 16-aligned>
#   RIP <pushed RIP as expected> OLDRSP <pushed RSP as expected> [CR2 ...]
# STK is "rsp0" when the frame sits at TSS.RSP0 rounded down to 16, "ist1"
# for TSS.IST1 rounded down, "same" for the interrupted RSP rounded down.
# RSP0 and IST1 are deliberately not 16-byte aligned (SDM §6.14.2: "the
# RSP is aligned to a 16-byte boundary before pushing the stack frame").
#
#  r0a  INT 80h at CPL 0, RSP = 8 mod 16: same stack, aligned (§6.14.2),
#       SS unchanged (no CPL change)
#  r0b  #GP(0) (RDMSR of an unknown MSR) at CPL 0 through an IST1 gate: the
#       IST stack even without a CPL change (§6.14.5)
#  a    INT 80h at CPL 3 through a DPL-3 gate: CPL 0, RSP0 stack, pushed
#       SS:RSP/CS of ring 3 (RPL 3), new SS = NULL selector with RPL 0
#       (§6.14.4), RIP = the next instruction (§6.12.1)
#  b    INT 81h at CPL 3 through a DPL-0 gate: #GP with error code
#       81h*8+2 = 040Ah (IDT bit set, EXT = 0), §6.12.1.2 and INT n
#       (Vol. 2A); a fault: the pushed RIP is the INT instruction (§6.5,
#       Interrupt 13 "Saved Instruction Pointer")
#  c    HLT and WRMSR at CPL 3: #GP(0) (Vol. 2A HLT, Vol. 2B WRMSR) on IST1
#  d    I/O at CPL 3 with IOPL 0 (SDM Vol. 1 §19.5): OUT to 0E9h, whose
#       bitmap bit is clear, works; IN from 80h (bit set), a word IN from
#       0E9h (0EAh's bit is set) and IN from 400h (its bitmap byte is beyond
#       the TSS limit) are #GP(0); with IOPL = 3 (set by a syscall-like
#       gate) IN from 80h works whatever the bitmap says (§19.5.1)
#  e    RDTSC at CPL 3 works with CR4.TSD = 0 and is #GP(0) with CR4.TSD = 1
#       (Vol. 2B RDTSC)
#  f    user read / write / fetch of a present supervisor page: #PF with
#       error code 5 / 7 / 15h (P, W, U, I/D with EFER.NXE = 1; §4.7) and
#       CR2 = the address, on the RSP0 stack
#  exit INT 82h (DPL-3 gate) back to CPL 0, then the debug exit.
# An instruction that must not fault prints "<tag>: no event" after it.
#
# FORMAT: elf64
# EXPECT-OUT: r0-int80: EV 0080 ERR 0000 CS 0008 SS 0010 NEWSS 0010 CPL 0000 STK same ALIGN ok RIP ok OLDRSP ok
# EXPECT-OUT: r0-rdmsr: EV 000d ERR 0000 CS 0008 SS 0010 NEWSS 0010 CPL 0000 STK ist1 ALIGN ok RIP ok OLDRSP ok
# EXPECT-OUT: in ring 3
# EXPECT-OUT: a-int80: EV 0080 ERR 0000 CS 002b SS 0023 NEWSS 0000 CPL 0000 STK rsp0 ALIGN ok RIP ok OLDRSP ok
# EXPECT-OUT: b-int81: EV 000d ERR 040a CS 002b SS 0023 NEWSS 0000 CPL 0000 STK ist1 ALIGN ok RIP ok OLDRSP ok
# EXPECT-OUT: c-hlt: EV 000d ERR 0000 CS 002b SS 0023 NEWSS 0000 CPL 0000 STK ist1 ALIGN ok RIP ok OLDRSP ok
# EXPECT-OUT: c-wrmsr: EV 000d ERR 0000 CS 002b SS 0023 NEWSS 0000 CPL 0000 STK ist1 ALIGN ok RIP ok OLDRSP ok
# EXPECT-OUT: d-out-e9: no event
# EXPECT-OUT: d-in-80: EV 000d ERR 0000 CS 002b SS 0023 NEWSS 0000 CPL 0000 STK ist1 ALIGN ok RIP ok OLDRSP ok
# EXPECT-OUT: d-inw-e9: EV 000d ERR 0000 CS 002b SS 0023 NEWSS 0000 CPL 0000 STK ist1 ALIGN ok RIP ok OLDRSP ok
# EXPECT-OUT: d-in-400: EV 000d ERR 0000 CS 002b SS 0023 NEWSS 0000 CPL 0000 STK ist1 ALIGN ok RIP ok OLDRSP ok
# EXPECT-OUT: d-iopl3-in-80: no event
# EXPECT-OUT: e-rdtsc-tsd0: no event
# EXPECT-OUT: e-rdtsc-tsd1: EV 000d ERR 0000 CS 002b SS 0023 NEWSS 0000 CPL 0000 STK ist1 ALIGN ok RIP ok OLDRSP ok
# EXPECT-OUT: f-read: EV 000e ERR 0005 CS 002b SS 0023 NEWSS 0000 CPL 0000 STK rsp0 ALIGN ok RIP ok OLDRSP ok CR2 0000000000400010
# EXPECT-OUT: f-write: EV 000e ERR 0007 CS 002b SS 0023 NEWSS 0000 CPL 0000 STK rsp0 ALIGN ok RIP ok OLDRSP ok CR2 0000000000400ff8
# EXPECT-OUT: f-fetch: EV 000e ERR 0015 CS 002b SS 0023 NEWSS 0000 CPL 0000 STK rsp0 ALIGN ok RIP ok OLDRSP ok CR2 0000000000400000
# EXPECT-OUT: back in ring 0: CS 0008 SS 0000 from CS 002b SS 0023
# EXPECT-EXIT: 1
.include "guest.inc"
.include "ring3.inc"

    .set SEL_UDATA, 0x23            # GDT 0x20, RPL 3
    .set SEL_UCODE, 0x2b            # GDT 0x28, RPL 3
    .set SEL_TSS, 0x30
    .set TSS_IOMAP, 104             # I/O map base: right after the 104-byte TSS
    .set TSS_LIMIT, TSS_IOMAP + 128 # bitmap for ports 0-3FFh; 400h+ is beyond the limit
    .set SUPER_PAGE, 0x400000       # 2 MiB page 2: present, supervisor (boot map)

.macro TAG name                     # name the next check (printed by the handler)
    lea \name(%rip), %rax
    mov %rax, cur_tag(%rip)
.endm

# The next event must be a fault of the instruction at `at`, with RSP as
# now; resume at `resume`.
.macro FAULT_AT at, resume
    lea \at(%rip), %rax
    mov %rax, expect_rip(%rip)
    mov %rsp, expect_rsp(%rip)
    lea \resume(%rip), %rax
    mov %rax, resume_at(%rip)
.endm

# The instructions up to `resume` must not fault: arm recovery, and after
# them print "<tag>: no event" when nothing was delivered.
.macro NOFAULT_BEGIN resume
    lea \resume(%rip), %rax
    mov %rax, resume_at(%rip)
    movq $0, ev_flag(%rip)
.endm
.macro NOFAULT_END
    movq $0, resume_at(%rip)
    cmpq $0, ev_flag(%rip)
    jne .Lnf_\@
    int $0x87                       # print "<tag>: no event"
.Lnf_\@:
.endm

.macro UPUTS label                  # print from ring 3 (INT 86h, RSI = string)
    lea \label(%rip), %rsi
    int $0x86
.endm

    .text
    .globl _start
_start:
    call idt64_install              # default handlers: print EXC and stop

    # The first 2 MiB (this image, its stacks) become user pages: U/S in
    # PML4[0], PDPT[0] and PD0[0] of the boot identity map (SDM §4.6).
    orq $4, 0x1000
    orq $4, 0x2000
    orq $4, 0x3000
    mov %cr3, %rax
    mov %rax, %cr3

    # GDT: the boot GDT's null, code64, data, code32, then user data/code, TSS.
    lea gdt(%rip), %rdi
    mov $0x7000, %rsi
    mov $4, %ecx
    rep movsq
    movq $0x00cff3000000ffff, %rax  # 0x20: data, DPL 3, writable
    mov %rax, gdt + 0x20(%rip)
    movq $0x00affb000000ffff, %rax  # 0x28: 64-bit code, DPL 3
    mov %rax, gdt + 0x28(%rip)
    TSS64_DESC gdt + 0x30, tss64, TSS_LIMIT
    lgdt gdt_ptr(%rip)

    # TSS: RSP0 and IST1 8 bytes off 16-byte alignment; I/O bitmap all
    # ones but port 0E9h; the limit ends at the bitmap's last byte, so the
    # bytes for ports 400h and up are beyond it.
    lea r0_stack_top - 8(%rip), %rax
    mov %rax, tss64 + 4(%rip)
    lea ist1_stack_top - 0x18(%rip), %rax
    mov %rax, tss64 + 0x24(%rip)
    movw $TSS_IOMAP, tss64 + 102(%rip)
    lea tss64 + TSS_IOMAP(%rip), %rdi
    mov $0xff, %al
    mov $129, %ecx
    rep stosb
    andb $~(1 << (0xe9 & 7)), tss64 + TSS_IOMAP + (0xe9 / 8)(%rip)
    mov $SEL_TSS, %ax
    ltr %ax

    SET_GATE64 idt64, 13, h_gp, 0x8e01      # #GP: DPL 0, IST1
    SET_GATE64 idt64, 14, h_pf, 0x8e00      # #PF: DPL 0, no IST
    SET_GATE64 idt64, 0x80, h_i80, 0xee00   # DPL 3: INT 80h allowed from ring 3
    SET_GATE64 idt64, 0x81, h_i81, 0x8e00   # DPL 0: INT 81h from ring 3 is #GP
    SET_GATE64 idt64, 0x82, h_exit, 0xee00  # DPL 3: back to ring 0 for good
    SET_GATE64 idt64, 0x83, h_tsd, 0xee00   # DPL 3: set CR4.TSD
    SET_GATE64 idt64, 0x84, h_iopl3, 0xee00 # DPL 3: return with IOPL = 3
    SET_GATE64 idt64, 0x85, h_iopl0, 0xee00 # DPL 3: return with IOPL = 0
    SET_GATE64 idt64, 0x86, h_print, 0xee00 # DPL 3: print the string at RSI
    SET_GATE64 idt64, 0x87, h_noevent, 0xee00 # DPL 3: print "<tag>: no event"

    # r0a: INT 80h at CPL 0 with RSP = 8 (mod 16).
    TAG t_r0_int80
    sub $8, %rsp
    lea 1f(%rip), %rax
    mov %rax, expect_rip(%rip)
    mov %rsp, expect_rsp(%rip)
    int $0x80
1:  add $8, %rsp
    # r0b: #GP at CPL 0 through the IST1 gate.
    TAG t_r0_rdmsr
    mov $0xdeadbeef, %ecx
    FAULT_AT 1f, 2f
1:  rdmsr
2:
    IRET_TO_RING3 SEL_UCODE, SEL_UDATA, user_stack_top, user_main, 0x2

# ---------------------------------------------------------------- ring 3
user_main:
    UPUTS m_ring3

    TAG t_a                         # (a) INT 80h through a DPL-3 gate
    lea 1f(%rip), %rax
    mov %rax, expect_rip(%rip)
    mov %rsp, expect_rsp(%rip)
    int $0x80
1:
    TAG t_b                         # (b) INT 81h through a DPL-0 gate
    FAULT_AT 1f, 2f
1:  int $0x81
2:
    TAG t_c_hlt                     # (c) privileged instructions
    FAULT_AT 1f, 2f
1:  hlt
2:  TAG t_c_wrmsr
    FAULT_AT 1f, 2f
1:  wrmsr
2:
    TAG t_d_oute9                   # (d) I/O permission: bitmap allows 0E9h
    NOFAULT_BEGIN 1f
    mov $'\n', %al
    out %al, $0xe9
1:  NOFAULT_END
    TAG t_d_in80
    FAULT_AT 1f, 2f
1:  in $0x80, %al
2:  TAG t_d_inw_e9
    FAULT_AT 1f, 2f
1:  in $0xe9, %ax
2:  TAG t_d_in400
    mov $0x400, %dx
    FAULT_AT 1f, 2f
1:  in %dx, %al
2:  TAG t_d_iopl3
    int $0x84                       # IOPL = 3: CPL <= IOPL allows any port
    NOFAULT_BEGIN 1f
    in $0x80, %al
1:  NOFAULT_END
    int $0x85

    TAG t_e_tsd0                    # (e) RDTSC and CR4.TSD
    NOFAULT_BEGIN 1f
    rdtsc
1:  NOFAULT_END
    int $0x83
    TAG t_e_tsd1
    FAULT_AT 1f, 2f
1:  rdtsc
2:
    TAG t_f_read                    # (f) supervisor page from ring 3
    FAULT_AT 1f, 2f
1:  mov SUPER_PAGE + 0x10, %rax
2:  TAG t_f_write
    FAULT_AT 1f, 2f
1:  movq $1, SUPER_PAGE + 0xff8
2:  TAG t_f_fetch
    movq $SUPER_PAGE, expect_rip(%rip)
    mov %rsp, expect_rsp(%rip)
    lea 2f(%rip), %rax
    mov %rax, resume_at(%rip)
    mov $SUPER_PAGE, %rax
    jmp *%rax
2:
    int $0x82
    UPUTS m_notreached
    jmp .

# ---------------------------------------------------------------- handlers
h_gp:
    mov %rsp, ev_rsp(%rip)
    movq $13, ev_vec(%rip)
    movq $1, ev_haserr(%rip)
    jmp ev_common
h_pf:
    mov %rsp, ev_rsp(%rip)
    movq $14, ev_vec(%rip)
    movq $1, ev_haserr(%rip)
    jmp ev_common
h_i80:
    mov %rsp, ev_rsp(%rip)
    movq $0x80, ev_vec(%rip)
    movq $0, ev_haserr(%rip)
    jmp ev_common
h_i81:
    mov %rsp, ev_rsp(%rip)
    movq $0x81, ev_vec(%rip)
    movq $0, ev_haserr(%rip)
    jmp ev_common

# Frame (r12): 0 RIP, 8 CS, 16 RFLAGS, 24 RSP, 32 SS; its top (r12 + 40) is
# where RSP was after the stack switch and the 16-byte alignment.
ev_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %r12
    push %r13
    movq $1, ev_flag(%rip)
    mov ev_rsp(%rip), %r12
    xor %r13, %r13
    cmpq $0, ev_haserr(%rip)
    je 1f
    mov (%r12), %r13                # error code
    add $8, %r12
1:  mov cur_tag(%rip), %rsi
    call serial_puts
    PUTS m_ev
    PUTHEX16 ev_vec(%rip)
    PUTS m_err
    PUTHEX16 %r13
    PUTS m_cs
    PUTHEX16 8(%r12)
    PUTS m_ss
    PUTHEX16 32(%r12)
    PUTS m_newss
    mov %ss, %ax
    PUTHEX16 %rax
    PUTS m_cpl
    mov %cs, %ax
    and $3, %eax
    PUTHEX16 %rax

    PUTS m_stk
    lea 40(%r12), %rax
    mov tss64 + 4(%rip), %rdx
    and $-16, %rdx
    cmp %rdx, %rax
    jne 2f
    PUTS m_rsp0
    jmp 5f
2:  mov tss64 + 0x24(%rip), %rdx
    and $-16, %rdx
    cmp %rdx, %rax
    jne 3f
    PUTS m_ist1
    jmp 5f
3:  mov 24(%r12), %rdx
    and $-16, %rdx
    cmp %rdx, %rax
    jne 4f
    PUTS m_same
    jmp 5f
4:  PUTS m_other
    PUTHEX %rax
5:  PUTS m_align
    test $0xf, %al
    jnz 6f
    PUTS m_ok
    jmp 7f
6:  PUTS m_bad
7:  PUTS m_rip
    mov expect_rip(%rip), %rdx
    test %rdx, %rdx
    jz 9f
    cmp (%r12), %rdx
    jne 8f
    PUTS m_ok
    jmp 10f
8:  PUTS m_bad
    PUTHEX (%r12)
    jmp 10f
9:  PUTS m_none
10: PUTS m_oldrsp
    mov expect_rsp(%rip), %rdx
    test %rdx, %rdx
    jz 12f
    cmp 24(%r12), %rdx
    jne 11f
    PUTS m_ok
    jmp 13f
11: PUTS m_bad
    PUTHEX 24(%r12)
    jmp 13f
12: PUTS m_none
13: cmpq $14, ev_vec(%rip)
    jne 14f
    PUTS m_cr2
    mov %cr2, %rax
    PUTHEX %rax
14: call put_nl
    movq $0, expect_rip(%rip)
    movq $0, expect_rsp(%rip)
    mov resume_at(%rip), %rax
    test %rax, %rax
    jz 15f
    mov %rax, (%r12)
    movq $0, resume_at(%rip)
    jmp 17f
15: cmpq $0, ev_haserr(%rip)        # a fault nobody expected: stop, do not loop on it
    je 17f
    PUTS m_unexpected
    EXIT 0x7e
17: pop %r13
    pop %r12
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    cmpq $0, ev_haserr(%rip)
    je 16f
    add $8, %rsp
16: iretq

h_tsd:                              # INT 83h: CR4.TSD = 1
    push %rax
    mov %cr4, %rax
    or $4, %rax
    mov %rax, %cr4
    pop %rax
    iretq
h_iopl3:                            # INT 84h: return with RFLAGS.IOPL = 3
    orq $0x3000, 16(%rsp)
    iretq
h_iopl0:                            # INT 85h: return with RFLAGS.IOPL = 0
    andq $~0x3000, 16(%rsp)
    iretq
h_print:                            # INT 86h: print the string at RSI
    call serial_puts
    iretq
h_noevent:                          # INT 87h: "<tag>: no event"
    push %rsi
    mov cur_tag(%rip), %rsi
    call serial_puts
    PUTS m_noevent
    pop %rsi
    iretq

h_exit:                             # INT 82h from ring 3: stay in ring 0
    mov 8(%rsp), %r8                # pushed CS
    mov 32(%rsp), %r9               # pushed SS
    PUTS m_back
    mov %cs, %ax
    PUTHEX16 %rax
    PUTS m_ss
    mov %ss, %ax
    PUTHEX16 %rax
    PUTS m_from
    PUTHEX16 %r8
    PUTS m_ss
    PUTHEX16 %r9
    call put_nl
    EXIT 0

    GUEST_LIB64
    RING3_LIB

    .section .rodata
t_r0_int80: .asciz "r0-int80"
t_r0_rdmsr: .asciz "r0-rdmsr"
t_a: .asciz "a-int80"
t_b: .asciz "b-int81"
t_c_hlt: .asciz "c-hlt"
t_c_wrmsr: .asciz "c-wrmsr"
t_d_oute9: .asciz "d-out-e9"
t_d_in80: .asciz "d-in-80"
t_d_inw_e9: .asciz "d-inw-e9"
t_d_in400: .asciz "d-in-400"
t_d_iopl3: .asciz "d-iopl3-in-80"
t_e_tsd0: .asciz "e-rdtsc-tsd0"
t_e_tsd1: .asciz "e-rdtsc-tsd1"
t_f_read: .asciz "f-read"
t_f_write: .asciz "f-write"
t_f_fetch: .asciz "f-fetch"
m_ring3: .asciz "in ring 3\n"
m_notreached: .asciz "FAIL: INT 82h returned\n"
m_noevent: .asciz ": no event\n"
m_ev: .asciz ": EV "
m_err: .asciz " ERR "
m_cs: .asciz " CS "
m_ss: .asciz " SS "
m_newss: .asciz " NEWSS "
m_cpl: .asciz " CPL "
m_stk: .asciz " STK "
m_rsp0: .asciz "rsp0"
m_ist1: .asciz "ist1"
m_same: .asciz "same"
m_other: .asciz "other "
m_align: .asciz " ALIGN "
m_rip: .asciz " RIP "
m_oldrsp: .asciz " OLDRSP "
m_cr2: .asciz " CR2 "
m_ok: .asciz "ok"
m_bad: .asciz "bad "
m_none: .asciz "-"
m_back: .asciz "back in ring 0: CS "
m_from: .asciz " from CS "
m_unexpected: .asciz "FAIL: unexpected fault\n"

    .data
    .balign 4096
gdt: .skip 0x40
gdt_ptr:
    .word 0x40 - 1
    .quad gdt
    .balign 8
cur_tag: .quad 0
ev_rsp: .quad 0
ev_vec: .quad 0
ev_haserr: .quad 0
ev_flag: .quad 0
expect_rip: .quad 0
expect_rsp: .quad 0
resume_at: .quad 0
    .balign 4096
tss64: .skip TSS_LIMIT + 1

    .bss
    .balign 4096
    .skip 4096
r0_stack_top:
    .skip 4096
ist1_stack_top:
    .skip 4096
user_stack_top:
    .skip 16
