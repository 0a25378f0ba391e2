# Exceptions and interrupts in 32-bit protected mode (SDM Vol. 3A ch. 6):
# a Multiboot kernel that stays in 32-bit protected mode, installs a 32-bit
# IDT of 8-byte gates (§6.11, Figure 6-2) and checks delivery at CPL 0.
# Every event prints one line
#   <tag>: EXC vv ERR eeeeeeee CS cccc EIP <ok> FRAME <ok> IF i SAVEDIF s [CR2 ...]
# EIP ok: the pushed EIP is the faulting instruction (faults) or the next
# one (INT n). FRAME ok: ESP at entry is the interrupted ESP minus 12 (EIP,
# CS, EFLAGS), or minus 16 with an error code — no SS:ESP and no 16-byte
# alignment without a privilege change in protected mode (§6.12.1,
# Figure 6-4; the alignment is IA-32e only, §6.14.2). IF is EFLAGS.IF in the
# handler, SAVEDIF the pushed one.
#
#   de      DIV by zero: #DE, no error code (§6.15 Interrupt 0)
#   ud      UD2: #UD (Interrupt 6)
#   gp-ds   MOV DS with selector 1230h beyond the GDT limit: #GP(1230h)
#           (Vol. 2B MOV "#GP(selector) If segment selector index is outside
#           descriptor table limits")
#   gp-ss   MOV SS with the code selector 18h: #GP(18h) (Vol. 2B MOV: SS
#           must be a writable data segment)
#   gp-msr  RDMSR of an unknown MSR: #GP(0)
#   pf-*    32-bit paging with CR4.PSE (§4.3): a not-present 4-KByte page
#           (read: error 0), a read-only 4-KByte page with CR0.WP = 1
#           (write: error 3), a not-present PDE (error 0), a read-only
#           4-MByte page (write: error 3); CR2 = the faulting address (§4.7)
#   int-ig  INT 40h through an interrupt gate: IF cleared in the handler,
#           the pushed EFLAGS has IF = 1 (§6.12.1.3)
#   int-tg  INT 41h through a trap gate: IF unchanged (1) in the handler
#   np      INT 42h through a not-present gate: #NP(42h*8+2 = 212h) (§6.12.1,
#           Interrupt 11; error code IDT bit, EXT = 0 for INT n)
#   idtlim  INT 90h beyond the IDT limit: #GP(90h*8+2 = 482h) (§6.10, §6.13)
#   np-ext  UD2 with gate 6 not present: #NP(6*8+2+1 = 33h), EXT = 1 for a
#           hardware exception (§6.13 "Error Code")
#   df      #GP with gate 13 not present: #NP during its delivery, two
#           contributory exceptions: #DF, error code 0 (§6.15 Interrupt 8,
#           Table 6-5); the saved EIP of a #DF is undefined (not checked)
# FORMAT: elf32
# EXPECT-OUT: 32-bit protected mode, paging off
# EXPECT-OUT: de: EXC 00 ERR 00000000 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0
# EXPECT-OUT: ud: EXC 06 ERR 00000000 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0
# EXPECT-OUT: gp-ds: EXC 0d ERR 00001230 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0
# EXPECT-OUT: ds still 0010
# EXPECT-OUT: gp-ss: EXC 0d ERR 00000018 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0
# EXPECT-OUT: gp-msr: EXC 0d ERR 00000000 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0
# EXPECT-OUT: paging on
# EXPECT-OUT: pf-np4k: EXC 0e ERR 00000000 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0 CR2 00300004
# EXPECT-OUT: pf-ro4k: EXC 0e ERR 00000003 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0 CR2 00301ffc
# EXPECT-OUT: pf-nppde: EXC 0e ERR 00000000 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0 CR2 01000010
# EXPECT-OUT: pf-ro4m: EXC 0e ERR 00000003 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0 CR2 00c00020
# EXPECT-OUT: int-ig: EXC 40 ERR 00000000 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 1
# EXPECT-OUT: int-tg: EXC 41 ERR 00000000 CS 0018 EIP ok FRAME ok IF 1 SAVEDIF 1
# EXPECT-OUT: after iret IF 1
# EXPECT-OUT: np: EXC 0b ERR 00000212 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0
# EXPECT-OUT: idtlim: EXC 0d ERR 00000482 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0
# EXPECT-OUT: np-ext: EXC 0b ERR 00000033 CS 0018 EIP ok FRAME ok IF 0 SAVEDIF 0
# EXPECT-OUT: df: EXC 08 ERR 00000000 CS 0018 EIP
# EXPECT-OUT: events 0000000f
# EXPECT-EXIT: 1
    .set IDT_ENTRIES, 0x80          # IDT limit 3FFh: vectors 80h-FFh are beyond it

    .section .multiboot
    .balign 4
    .long 0x1BADB002
    .long 0x00000003
    .long -(0x1BADB002 + 0x00000003)

.macro TAG name
    movl $\name, cur_tag
.endm
# The next event is a fault of the instruction at `at`; resume at `resume`.
.macro FAULT_AT at, resume
    movl $\at, expect_eip
    movl %esp, expect_esp
    movl $\resume, resume_eip
.endm
.macro PUTS32 label
    push %esi
    mov $\label, %esi
    call puts32
    pop %esi
.endm

    .text
    .code32
    .globl _start
_start:
    cmp $0x2BADB002, %eax
    jne fail
    mov $stack_top, %esp
    PUTS32 m_start

    # IDT: vectors 0-31 and 40h/41h interrupt gates (type 0Eh), 41h a trap
    # gate (type 0Fh), 42h not present; everything else an interrupt gate
    # to the "unexpected" stub.
    xor %ecx, %ecx
1:  mov $unexpected, %eax
    cmp $32, %ecx
    jae 2f
    mov exc_stub_table(,%ecx,4), %eax
2:  mov $0x8e00, %edx               # P, DPL 0, 32-bit interrupt gate
    call set_gate
    inc %ecx
    cmp $IDT_ENTRIES, %ecx
    jb 1b
    mov $0x40, %ecx
    mov $int40_stub, %eax
    mov $0x8e00, %edx
    call set_gate
    mov $0x41, %ecx
    mov $int41_stub, %eax
    mov $0x8f00, %edx               # P, DPL 0, 32-bit trap gate
    call set_gate
    mov $0x42, %ecx
    mov $unexpected, %eax
    mov $0x0e00, %edx               # not present
    call set_gate
    lidt idt_ptr

    TAG t_de
    xor %edx, %edx
    xor %ecx, %ecx
    mov $1, %eax
    FAULT_AT 1f, 2f
1:  div %ecx
2:  TAG t_ud
    FAULT_AT 1f, 2f
1:  ud2
2:  TAG t_gp_ds
    mov $0x1230, %ax
    FAULT_AT 1f, 2f
1:  mov %ax, %ds
2:  PUTS32 m_ds
    mov %ds, %ax
    call puthex16
    call putnl
    TAG t_gp_ss
    mov $0x18, %ax
    FAULT_AT 1f, 2f
1:  mov %ax, %ss
2:  TAG t_gp_msr
    mov $0xdeadbeef, %ecx
    FAULT_AT 1f, 2f
1:  rdmsr
2:
    # 32-bit paging (§4.3): PD[0] -> page table (4 KiB pages, 0-4 MiB),
    # PD[1..3] 4-MByte pages (PD[3] read-only), PD[4..] not present; in the
    # page table 300000h is not present and 301000h read-only.
    mov $page_table, %edi
    xor %ecx, %ecx
3:  mov %ecx, %eax
    shl $12, %eax
    or $3, %eax                     # P, R/W
    mov %eax, (%edi,%ecx,4)
    inc %ecx
    cmp $1024, %ecx
    jb 3b
    movl $0, page_table + 0x300 * 4
    andl $~2, page_table + 0x301 * 4
    mov $page_dir, %edi
    xor %eax, %eax
    mov $1024, %ecx
    rep stosl
    movl $page_table + 3, page_dir
    movl $0x00400083, page_dir + 4  # P, R/W, PS
    movl $0x00800083, page_dir + 8
    movl $0x00c00081, page_dir + 12 # P, PS, read-only
    mov %cr4, %eax
    or $0x10, %eax                  # PSE
    mov %eax, %cr4
    mov $page_dir, %eax
    mov %eax, %cr3
    mov %cr0, %eax
    or $0x80010000, %eax            # PG, WP
    mov %eax, %cr0
    PUTS32 m_paging

    TAG t_pf_np4k
    mov $0x300000, %ebx
    FAULT_AT 1f, 2f
1:  mov 4(%ebx), %eax
2:  TAG t_pf_ro4k
    mov $0x301000, %ebx
    FAULT_AT 1f, 2f
1:  movl $1, 0xffc(%ebx)
2:  TAG t_pf_nppde
    FAULT_AT 1f, 2f
1:  mov 0x1000010, %eax
2:  TAG t_pf_ro4m
    FAULT_AT 1f, 2f
1:  movb $1, 0xc00020
2:
    sti                             # IF = 1 (nothing can interrupt: no sources)
    TAG t_int_ig
    movl $1f, expect_eip
    movl %esp, expect_esp
    int $0x40
1:  TAG t_int_tg
    movl $1f, expect_eip
    movl %esp, expect_esp
    int $0x41
1:  PUTS32 m_afteriret
    pushf
    pop %eax
    shr $9, %eax
    and $1, %eax
    call puthex4
    call putnl
    cli

    TAG t_np
    FAULT_AT 1f, 2f
1:  int $0x42
2:  TAG t_idtlim
    FAULT_AT 1f, 2f
1:  int $0x90
2:
    # A hardware exception through a not-present gate: #NP with EXT = 1
    # (6*8 + IDT 2 + EXT 1 = 33h), reported on the UD2 (§6.13, Interrupt 11).
    TAG t_np_ext
    andb $0x7f, idt + 6 * 8 + 5     # gate 6: P = 0
    FAULT_AT 1f, 2f
1:  ud2
2:  orb $0x80, idt + 6 * 8 + 5
    # #GP whose gate is not present: the #NP while delivering it is
    # contributory on contributory: #DF with error code 0 (§6.15 Table 6-5).
    TAG t_df
    andb $0x7f, idt + 13 * 8 + 5
    mov $0xdeadbeef, %ecx
    FAULT_AT 1f, 2f
1:  rdmsr
2:  orb $0x80, idt + 13 * 8 + 5
    PUTS32 m_events
    mov ev_count, %eax
    call puthex32
    call putnl
    mov $0, %al
    out %al, $0xf4
fail:
    mov $0x20, %al
    out %al, $0xf4
    hlt

# set_gate: ECX = vector, EAX = handler, EDX = attribute word (P DPL type << 8)
set_gate:
    mov %ax, idt(,%ecx,8)
    movw $0x18, idt + 2(,%ecx,8)
    mov %dx, idt + 4(,%ecx,8)
    shr $16, %eax
    mov %ax, idt + 6(,%ecx,8)
    ret

# Exception stubs: ESP at entry saved, vector and a uniform error code pushed.
.irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,29,30,31
exc_stub_\v:
    mov %esp, ev_esp
    push $0
    push $\v
    jmp exc_common
.endr
.irp v, 8,10,11,12,13,14,17,21
exc_stub_\v:
    mov %esp, ev_esp
    push $\v
    jmp exc_common
.endr
int40_stub:
    mov %esp, ev_esp
    push $0
    push $0x40
    jmp exc_common
int41_stub:
    mov %esp, ev_esp
    push $0
    push $0x41
    jmp exc_common
unexpected:
    PUTS32 m_unexpected
    mov $0x7f, %al
    out %al, $0xf4
    hlt

# Stack after PUSHA: 32 vector, 36 error, 40 EIP, 44 CS, 48 EFLAGS.
exc_common:
    pusha
    pushf
    pop %edi                        # EFLAGS in the handler
    incl ev_count
    mov cur_tag, %esi
    call puts32
    PUTS32 m_exc
    mov 32(%esp), %eax
    call puthex8
    PUTS32 m_err
    mov 36(%esp), %eax
    call puthex32
    PUTS32 m_cs
    mov 44(%esp), %eax
    call puthex16
    PUTS32 m_eip
    mov expect_eip, %eax
    cmp 40(%esp), %eax
    jne 1f
    PUTS32 m_ok
    jmp 2f
1:  PUTS32 m_bad
    mov 40(%esp), %eax
    call puthex32
2:  PUTS32 m_frame
    mov 32(%esp), %ecx              # vector: which ones push an error code
    mov $12, %eax
    cmp $32, %ecx
    jae 3f
    bt %ecx, errmask
    jnc 3f
    mov $16, %eax
3:  add ev_esp, %eax
    cmp expect_esp, %eax
    jne 4f
    PUTS32 m_ok
    jmp 5f
4:  PUTS32 m_bad
    call puthex32
5:  PUTS32 m_if
    mov %edi, %eax
    shr $9, %eax
    and $1, %eax
    call puthex4
    PUTS32 m_savedif
    mov 48(%esp), %eax
    shr $9, %eax
    and $1, %eax
    call puthex4
    cmpl $14, 32(%esp)
    jne 6f
    PUTS32 m_cr2
    mov %cr2, %eax
    call puthex32
6:  call putnl
    movl $0, expect_eip
    movl $0, expect_esp
    mov resume_eip, %eax
    test %eax, %eax
    jz 7f
    mov %eax, 40(%esp)
    movl $0, resume_eip
7:  popa
    add $8, %esp
    iret

# --- 32-bit serial output (COM1) ---
putc32:                             # BL = character
    push %eax
    push %edx
1:  mov $0x3fd, %dx
    in %dx, %al
    test $0x20, %al
    jz 1b
    mov $0x3f8, %dx
    mov %bl, %al
    out %al, %dx
    pop %edx
    pop %eax
    ret
puts32:                             # ESI = string
    push %ebx
    push %esi
1:  movb (%esi), %bl
    test %bl, %bl
    jz 2f
    call putc32
    inc %esi
    jmp 1b
2:  pop %esi
    pop %ebx
    ret
puthex32:                           # EAX, 8 digits
    push %ecx
    mov $8, %ecx
    jmp puthex_n
puthex16:                           # AX, 4 digits
    push %ecx
    shl $16, %eax
    mov $4, %ecx
    jmp puthex_n
puthex8:                            # AL, 2 digits
    push %ecx
    shl $24, %eax
    mov $2, %ecx
    jmp puthex_n
puthex4:                            # AL[3:0], 1 digit
    push %ecx
    shl $28, %eax
    mov $1, %ecx
puthex_n:
    push %ebx
1:  rol $4, %eax
    mov %al, %bl
    and $0xf, %bl
    add $'0', %bl
    cmp $'9', %bl
    jbe 2f
    add $('a' - '9' - 1), %bl
2:  call putc32
    dec %ecx
    jnz 1b
    pop %ebx
    pop %ecx
    ret
putnl:
    push %ebx
    mov $'\n', %bl
    call putc32
    pop %ebx
    ret

    .section .rodata
t_de: .asciz "de"
t_ud: .asciz "ud"
t_gp_ds: .asciz "gp-ds"
t_gp_ss: .asciz "gp-ss"
t_gp_msr: .asciz "gp-msr"
t_pf_np4k: .asciz "pf-np4k"
t_pf_ro4k: .asciz "pf-ro4k"
t_pf_nppde: .asciz "pf-nppde"
t_pf_ro4m: .asciz "pf-ro4m"
t_int_ig: .asciz "int-ig"
t_int_tg: .asciz "int-tg"
t_np: .asciz "np"
t_idtlim: .asciz "idtlim"
t_np_ext: .asciz "np-ext"
t_df: .asciz "df"
m_start: .asciz "32-bit protected mode, paging off\n"
m_ds: .asciz "ds still "
m_paging: .asciz "paging on\n"
m_afteriret: .asciz "after iret IF "
m_events: .asciz "events "
m_unexpected: .asciz "FAIL: unexpected vector\n"
m_exc: .asciz ": EXC "
m_err: .asciz " ERR "
m_cs: .asciz " CS "
m_eip: .asciz " EIP "
m_frame: .asciz " FRAME "
m_if: .asciz " IF "
m_savedif: .asciz " SAVEDIF "
m_cr2: .asciz " CR2 "
m_ok: .asciz "ok"
m_bad: .asciz "bad "
    .balign 4
errmask: .long (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 17) | (1 << 21)
exc_stub_table:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .long exc_stub_\v
.endr
idt_ptr:
    .word IDT_ENTRIES * 8 - 1
    .long idt

    .data
    .balign 8
cur_tag: .long 0
ev_esp: .long 0
ev_count: .long 0
expect_eip: .long 0
expect_esp: .long 0
resume_eip: .long 0
    .balign 8
idt: .skip IDT_ENTRIES * 8

    .bss
    .balign 4096
page_dir: .skip 4096
page_table: .skip 4096
    .skip 8192
stack_top:
