/*
 * "Unrestricted guest" (SDM Vol. 3C §25.6.2 secondary control bit 7,
 * §27.2.1.1, §27.3.1, §27.3.2, §27.6.1, §26.3, §28.2): guests that are not
 * in IA-32e mode, entered directly in the mode under test from the VMCS,
 * with EPT (an identity map of guest RAM, lib/ept_map.h) and CR0.PG = 0, so
 * guest-linear = guest-physical = host-physical. The guests are
 * hand-assembled 16/32-bit code (top-level .code16/.code32 assembly below),
 * each copied to its own 4-KiB page in low memory that the 64-bit boot
 * contract leaves free: code 0x20000 + 0x1000 * n (real-mode CS =
 * 0x2000 + 0x100 * n; the basic real-mode guest has CS 0x2000, base
 * 0x20000), IVT 0x10000 (IDTR.base), data 0x30000 (DS 0x3000), stack
 * segment 0x40000 (SS 0x4000, SP 0xFFF0).
 *   - real-address mode (CR0 = CR0_FIXED0 without PE/PG, CS AR 9BH limit
 *     FFFFH, data AR 93H, TR a busy 32-bit or 16-bit TSS, LDTR unusable):
 *     OUT imm8 exits (qualification, RIP = IP, length), CPUID exits and the
 *     guest sees the host's EAX, segment arithmetic (a store through DS
 *     0x3000 lands at 0x30000 + offset, PUSH at SS.base + SP - 2), HLT exits
 *     with the real-mode segment state saved; CS of type 3 (data, DPL 0) is
 *     allowed; IA32_EFER.LME is left alone by a VM entry without "load
 *     IA32_EFER" that loads CR0.PG = 0 (§27.3.2.1); INT n goes through the
 *     IVT at IDTR.base (FLAGS/CS/IP frame, IF cleared, IRET); a #GP in the
 *     exception bitmap exits without an error code (bit 11 is always 0 in
 *     real-address mode, §28.2.2); an injected hardware exception goes
 *     through the IVT without an error code (§27.6.1.2), and injecting one
 *     with an error code is VMfailValid 7 (§27.2.1.3); SS.DPL 3 with
 *     CR0.PE = 0 fails the entry; EPT violations on the first fetch (CS.base
 *     + IP) and on a store through DS: qualification with bits 7 and 8 and,
 *     with advanced information, bits 9 and 10 set and 11 clear ("if CR0.PG
 *     = 0, the translation of every linear address is a user-mode linear
 *     address", read/write, executable; §28.2.1 Table 28-7), guest-linear =
 *     guest-physical = the byte;
 *   - 32-bit protected mode without paging (CR0.PE = 1, PG = 0), flat
 *     segments from a guest GDT: MOV to DS reloads from the GDT, stores,
 *     PUSH, MOV from CR0, an I/O exit;
 *   - a mode switch inside the guest: real mode, LGDT, MOV to CR0 setting
 *     PE (CR0 guest/host mask 0: no exit), far JMP to 32-bit code, OUT exits
 *     with CS 08H / AR C09BH / base 0 / limit FFFFFFFFH, CR0.PE and the GDTR
 *     saved; and back (16-bit code segment, MOV to CR0 clearing PE,
 *     real-mode far JMP, real-mode segment arithmetic again);
 *   - the CR0 guest/host mask owning PE (and PG): the real-mode MOV to CR0
 *     setting PE exits (CR access, qualification 0x300: CR0, MOV to, EBX),
 *     the host emulates it (GUEST_CR0 with the fixed bits, CR0_READ_SHADOW)
 *     and resumes; the guest far-jumps to 32-bit code and reads PE from the
 *     shadow;
 *   - without "unrestricted guest": CR0.PE = 0, and CR0.PE = 1 with PG = 0,
 *     fail VM entry (exit 33 | bit 31, qualification 0; vmxsim names the
 *     GUEST_CR0_FIXED0 check on stderr) while the same VMCS with PE = PG = 1
 *     enters; "unrestricted guest" without "enable EPT" is VMfailValid 7
 *     (§27.2.1.1);
 *   - task switches (§26.4.2): a 32-bit guest's far JMP to a TSS, CALL
 *     through a task gate, IRET with NT = 1, INT n and an exception through
 *     a task gate in the IDT each exit with reason 9 and the qualification
 *     of Table 28-2 (event deliveries with IDT-vectoring information) and
 *     switch nothing; a busy TSS (#GP) or a short one (#TS) faults first;
 *   - the host replacing a guest's code in a page it ran before: the guest
 *     must run the new code (SDM Vol. 3A "Self-Modifying Code", "Handling
 *     Self- and Cross-Modifying Code").
 * Variants: skylake (skylake-server profile, same expectations); noug
 * (without the unrestricted-guest capability: the real-mode entry fails,
 * and setting the control is VMfailValid 7).
 * Bugs these tests found (fixed; the names stay): EFER_LME, VM entry
 *   without "load IA32_EFER" cleared IA32_EFER.LME when it loaded CR0.PG = 0
 *   (the SDM leaves it unmodified); GP_ERRCODE, an exception exit from
 *   real-address mode set bit 11 (error code valid) of the VM-exit
 *   interruption information; STALE_CODE, the host's rewrite of a guest code
 *   page invalidated only the translated blocks overlapping the first byte
 *   written (Unicorn 2.1's notdirty_write makes the TLB entry write-fast
 *   after one write), so the guest ran its old code. vmxsim now runs root and
 *   guest in separate engines and drops a guest's translations of a page the
 *   host wrote (src/cpu/contexts.c).
 *
# ARGS: --cpu sapphire-rapids
# EXPECT-ERR: [GUEST_SS_AR_DPL_ZERO]
# EXPECT-ERR: [GUEST_CR0_FIXED0]
# EXPECT-ERR: [CTL_UNRESTRICTED_WITHOUT_EPT]
# EXPECT-OUT: PASS real_mode_entry_io_exit
# EXPECT-OUT: PASS real_mode_cpuid_exit
# EXPECT-OUT: PASS real_mode_segment_arithmetic
# EXPECT-OUT: PASS real_mode_hlt_exit_saved_state
# EXPECT-OUT: PASS real_mode_tr_16bit_busy_tss
# EXPECT-OUT: PASS real_mode_cs_type3_data_segment
# EXPECT-OUT: PASS real_mode_efer_lme_unmodified
# EXPECT-OUT: PASS real_mode_int_n_through_ivt
# EXPECT-OUT: PASS real_mode_gp_exit_no_error_code
# EXPECT-OUT: PASS real_mode_fault_loop_preemption_timer
# EXPECT-OUT: PASS real_mode_inject_exception_through_ivt
# EXPECT-OUT: PASS real_mode_inject_error_code_vmfail
# EXPECT-OUT: PASS real_mode_ss_dpl3_entry_fails
# EXPECT-OUT: PASS real_mode_ept_fetch_violation
# EXPECT-OUT: PASS real_mode_ept_write_violation
# EXPECT-OUT: PASS pm32_nopaging_io_exit
# EXPECT-OUT: PASS pm32_nopaging_memory_and_cr0
# EXPECT-OUT: PASS task_switch_jmp_tss
# EXPECT-OUT: PASS task_switch_call_task_gate
# EXPECT-OUT: PASS task_switch_iret_nt
# EXPECT-OUT: PASS task_switch_int_task_gate
# EXPECT-OUT: PASS task_switch_exception_task_gate
# EXPECT-OUT: PASS task_switch_busy_tss_gp
# EXPECT-OUT: PASS task_switch_small_tss_ts
# EXPECT-OUT: PASS mode_switch_mov_cr0_no_exit
# EXPECT-OUT: PASS mode_switch_saved_cs_and_cr0
# EXPECT-OUT: PASS mode_switch_store_and_hlt
# EXPECT-OUT: PASS mode_switch_back_to_real_mode
# EXPECT-OUT: PASS cr0_mask_pe_mov_to_cr0_exits
# EXPECT-OUT: PASS cr0_mask_pe_host_emulates_and_resumes
# EXPECT-OUT: PASS no_unrestricted_real_mode_entry_fails
# EXPECT-OUT: PASS no_unrestricted_pe_without_pg_entry_fails
# EXPECT-OUT: PASS no_unrestricted_same_state_with_pe_pg_enters
# EXPECT-OUT: PASS unrestricted_without_ept_vmfail
# EXPECT-OUT: PASS host_rewritten_guest_code_runs
# EXPECT-EXIT: 1
# VARIANT skylake ARGS: --cpu skylake-server
# VARIANT noug ARGS: --cpu sapphire-rapids,-unrestricted_guest
# VARIANT noug EXPECT-OUT: PASS no_unrestricted_real_mode_entry_fails
# VARIANT noug EXPECT-OUT: PASS unrestricted_control_not_allowed_vmfail
# VARIANT noug EXPECT-ERR: [GUEST_CR0_FIXED0]
# VARIANT noug EXPECT-EXIT: 1
 */
#include "ept_map.h"
#include "guest.h"

/* Sub-tests named after the bugs they found (see the report). */
#define EFER_LME "real_mode_efer_lme_unmodified"
#define GP_ERRCODE "real_mode_gp_exit_no_error_code"
#define STALE_CODE "host_rewritten_guest_code_runs"

/*
 * Guest memory (free in the 64-bit boot contract: [0x10000, 0x70000)).
 * Plain numbers: they are also pasted into the assembly below.
 */
#define UR_IVT 0x10000        /* real-mode IVT (IDTR.base) */
#define UR_CODE 0x20000       /* page of the basic real-mode guest; CS = 0x2000 */
#define UR_DATA 0x30000       /* real-mode DS = 0x3000 */
#define UR_DS_SEL 0x3000
#define UR_STACK_BASE 0x40000 /* real-mode SS = 0x4000 */
#define UR_SS_SEL 0x4000
#define UR_SP 0xFFF0          /* real-mode SP; 32-bit ESP = UR_STACK_BASE + UR_SP */
#define UR_PM_ESP 0x4FFF0
/* One code page per guest (see STALE_CODE): UR_CODE + 0x1000 * n. */
#define PG_RM 0x20000
#define PG_EFER 0x21000
#define PG_IVT 0x22000
#define PG_GP 0x23000
#define PG_PM 0x24000
#define PG_SW 0x25000
#define PG_OWN 0x26000
#define PG_BACK 0x27000
#define PG_SMC 0x28000
#define PG_TASK 0x29000
#define TASK_TSS_CUR 0x30100  /* the guest's TSS (TR 18H); its link field names 38H */
#define TASK_TSS_NEW 0x30200  /* GDT 20H: available 32-bit TSS */
#define TASK_TSS_LINK 0x30300 /* GDT 38H: busy 32-bit TSS */

#define VMX_PREEMPTION_TIMER_VALUE 0x482E
#define UR_WATCHDOG 0x400000u /* preemption-timer ticks: a guest that runs away exits (52) */

#define STR_(x) #x
#define XSTR(x) STR_(x)

/*
 * The guests. Labels are offsets from the guest's first label once it is
 * copied to its page: real-mode IP = offset (CS.base = the page); 32-bit
 * EIP = page + offset (flat CS). Encodings (GNU as) in the comments.
 */
asm(".pushsection .rodata.unrestricted_guests, \"a\", @progbits\n"

    /* ---- real mode: OUT, CPUID, DS:offset store, PUSH, HLT (page PG_RM) ---- */
    ".code16\n"
    "ur_rm:\n"
    "    mov $0x41, %al\n"                /* b0 41 */
    "ur_rm_out:\n"
    "    out %al, $0x80\n"                /* e6 80: I/O exit */
    "ur_rm_cpuid:\n"
    "    cpuid\n"                         /* 0f a2: CPUID exit */
    "    mov %eax, %esi\n"                /* 66 89 c6: the host's EAX */
    "    mov $" XSTR(UR_DS_SEL) ", %ax\n" /* b8 00 30 */
    "    mov %ax, %ds\n"                  /* 8e d8: DS.base = 0x30000 */
    "ur_rm_store:\n"
    "    mov %esi, 0x10\n"                /* 66 89 36 10 00: [0x30010] */
    "    movw $0xBEEF, 0x14\n"            /* c7 06 14 00 ef be: [0x30014] */
    "    push %ds\n"                      /* 1e: [0x4FFEE] = 0x3000 */
    "ur_rm_hlt:\n"
    "    hlt\n"                           /* f4: HLT exit */
    "    jmp ur_rm_hlt\n"                 /* eb fd */
    "ur_rm_end:\n"

    /* ---- real mode: RDMSR IA32_EFER, HLT (PG_EFER) ---- */
    "ur_efer:\n"
    "    mov $0xC0000080, %ecx\n"         /* 66 b9 80 00 00 c0 */
    "    rdmsr\n"                         /* 0f 32: MSR bitmap 0, no exit */
    "ur_efer_hlt:\n"
    "    hlt\n"
    "    jmp ur_efer_hlt\n"
    "ur_efer_end:\n"

    /* ---- real mode: INT 0x30 through the IVT; the handler IRETs (PG_IVT) ---- */
    "ur_ivt:\n"
    "    int $0x30\n"                     /* cd 30 */
    "ur_ivt_hlt:\n"
    "    hlt\n"
    "    jmp ur_ivt_hlt\n"
    "ur_ivt_handler:\n"                   /* IVT[0x30] (and [13] for the injection) */
    "    mov $0x7777, %cx\n"              /* b9 77 77 */
    "    pushf\n"                         /* 9c */
    "    pop %bx\n"                       /* 5b: FLAGS in the handler */
    "    mov %sp, %dx\n"                  /* 89 e2: SP below the frame */
    "    iret\n"                          /* cf: 16-bit IRET */
    "ur_ivt_end:\n"

    /* ---- real mode: MOV to CR0 setting PG without PE, #GP(0) (PG_GP) ---- */
    "ur_gp:\n"
    "    mov %cr0, %eax\n"                /* 0f 20 c0 */
    "    or $0x80000000, %eax\n"          /* 66 0d 00 00 00 80 */
    "ur_gp_mov:\n"
    "    mov %eax, %cr0\n"                /* 0f 22 c0: #GP(0) */
    "ur_gp_hlt:\n"
    "    hlt\n"
    "    jmp ur_gp_hlt\n"
    "ur_gp_end:\n"

    /* ---- 32-bit protected mode, paging off, flat segments (PG_PM) ---- */
    ".code32\n"
    "ur_pm:\n"
    "    mov $0x10, %eax\n"               /* b8 10 00 00 00 */
    "    mov %eax, %ds\n"                 /* 8e d8: descriptor from the guest GDT */
    "    mov %cr0, %ebx\n"                /* 0f 20 c3 */
    "    mov %ebx, 0x30040\n"             /* 89 1d 40 00 03 00 */
    "    movl $0xC0DE1234, 0x30044\n"     /* c7 05 44 00 03 00 34 12 de c0 */
    "    push $0x5A5A5A5A\n"              /* 68 5a 5a 5a 5a: [0x4FFEC] */
    "    mov $0x42, %al\n"                /* b0 42 */
    "ur_pm_out:\n"
    "    out %al, $0x80\n"                /* e6 80: I/O exit */
    "ur_pm_hlt:\n"
    "    hlt\n"
    "    jmp ur_pm_hlt\n"
    "    .balign 8\n"
    "ur_pm_gdt:\n"
    "    .quad 0\n"
    "    .quad 0x00CF9B000000FFFF\n"      /* 08: 32-bit code, flat, accessed */
    "    .quad 0x00CF93000000FFFF\n"      /* 10: data, flat, accessed */
    "ur_pm_end:\n"

    /* ---- real mode -> LGDT, MOV to CR0 (PE), far JMP -> 32-bit code (PG_SW) ---- */
    ".code16\n"
    "ur_sw:\n"
    "    lgdtl %cs:(ur_sw_gdtr - ur_sw)\n" /* 2e 66 0f 01 16 disp16 */
    "    mov %cr0, %eax\n"                /* 0f 20 c0 */
    "    or $1, %al\n"                    /* 0c 01 */
    "ur_sw_movcr0:\n"
    "    mov %eax, %cr0\n"                /* 0f 22 c0: mask 0, no exit */
    "    ljmpl $0x08, $(" XSTR(PG_SW) " + ur_sw_pm - ur_sw)\n" /* 66 ea imm32 08 00 */
    ".code32\n"
    "ur_sw_pm:\n"
    "    mov $0x10, %eax\n"
    "    mov %eax, %ds\n"
    "    mov %eax, %es\n"
    "    mov %eax, %ss\n"
    "    mov $" XSTR(UR_PM_ESP) ", %esp\n"
    "    mov %cr0, %ebx\n"
    "    mov %ebx, 0x30050\n"             /* CR0 as the guest reads it */
    "    mov $0x43, %al\n"
    "ur_sw_out:\n"
    "    out %al, $0x80\n"                /* e6 80: I/O exit from 32-bit code */
    "    movl $0x600DF00D, 0x30054\n"
    "ur_sw_hlt:\n"
    "    hlt\n"
    "    jmp ur_sw_hlt\n"
    "    .balign 8\n"
    "ur_sw_gdt:\n"
    "    .quad 0\n"
    "    .quad 0x00CF9B000000FFFF\n"
    "    .quad 0x00CF93000000FFFF\n"
    "ur_sw_gdtr:\n"
    "    .word 23\n"
    "    .long " XSTR(PG_SW) " + (ur_sw_gdt - ur_sw)\n"
    "ur_sw_end:\n"

    /* ---- as above, MOV to CR0 from EBX: the CR0 mask owns PE, it exits (PG_OWN) ---- */
    ".code16\n"
    "ur_own:\n"
    "    lgdtl %cs:(ur_own_gdtr - ur_own)\n"
    "    mov %cr0, %ebx\n"                /* 0f 20 c3 */
    "    or $1, %bl\n"                    /* 80 cb 01 */
    "ur_own_movcr0:\n"
    "    mov %ebx, %cr0\n"                /* 0f 22 c3: CR access exit, qualification 0x300 */
    "    ljmpl $0x08, $(" XSTR(PG_OWN) " + ur_own_pm - ur_own)\n"
    ".code32\n"
    "ur_own_pm:\n"
    "    mov $0x10, %eax\n"
    "    mov %eax, %ds\n"
    "    mov %cr0, %eax\n"                /* PE from the read shadow */
    "    mov %eax, 0x30060\n"
    "    mov $0x44, %al\n"
    "ur_own_out:\n"
    "    out %al, $0x80\n"
    "ur_own_hlt:\n"
    "    hlt\n"
    "    jmp ur_own_hlt\n"
    "    .balign 8\n"
    "ur_own_gdt:\n"
    "    .quad 0\n"
    "    .quad 0x00CF9B000000FFFF\n"
    "    .quad 0x00CF93000000FFFF\n"
    "ur_own_gdtr:\n"
    "    .word 23\n"
    "    .long " XSTR(PG_OWN) " + (ur_own_gdt - ur_own)\n"
    "ur_own_end:\n"

    /* ---- 32-bit PM -> 16-bit PM -> MOV to CR0 clearing PE -> real mode (PG_BACK) ---- */
    ".code32\n"
    "ur_back:\n"
    "    ljmp $0x18, $(ur_back16 - ur_back)\n" /* ea imm32 18 00: 16-bit code, base PG_BACK */
    ".code16\n"
    "ur_back16:\n"
    "    mov $0x20, %ax\n"                /* 16-bit data, base 0, limit FFFFH */
    "    mov %ax, %ds\n"
    "    mov %ax, %ss\n"
    "    mov %cr0, %eax\n"
    "    and $0xFE, %al\n"                /* 24 fe: PE = 0 */
    "ur_back_movcr0:\n"
    "    mov %eax, %cr0\n"                /* 0f 22 c0: mask 0, no exit */
    "    ljmp $(" XSTR(PG_BACK) " >> 4), $(ur_back_rm - ur_back)\n" /* ea off16 sel16 */
    "ur_back_rm:\n"
    "    mov $" XSTR(UR_DS_SEL) ", %ax\n"
    "    mov %ax, %ds\n"                  /* DS.base = 0x30000 */
    "    mov $" XSTR(UR_SS_SEL) ", %ax\n"
    "    mov %ax, %ss\n"                  /* SS.base = 0x40000 */
    "    mov $" XSTR(UR_SP) ", %sp\n"
    "    movw $0x1234, 0x58\n"            /* [0x30058] */
    "    push %ds\n"                      /* [0x4FFEE] = 0x3000 */
    "    mov $0x46, %al\n"
    "ur_back_out:\n"
    "    out %al, $0x80\n"
    "ur_back_hlt:\n"
    "    hlt\n"
    "    jmp ur_back_hlt\n"
    "    .balign 8\n"
    "ur_back_gdt:\n"
    "    .quad 0\n"
    "    .quad 0x00CF9B000000FFFF\n"      /* 08: 32-bit code, flat */
    "    .quad 0x00CF93000000FFFF\n"      /* 10: 32-bit data, flat */
    "    .word 0xFFFF, " XSTR(PG_BACK) " & 0xFFFF\n" /* 18: 16-bit code, base PG_BACK, limit FFFFH */
    "    .byte (" XSTR(PG_BACK) " >> 16) & 0xFF, 0x9B, 0x00, " XSTR(PG_BACK) " >> 24\n"
    "    .quad 0x000093000000FFFF\n"      /* 20: 16-bit data, base 0, limit FFFFH */
    "ur_back_end:\n"

    /* ---- two versions of one page (PG_SMC): entered at offset 16 ---- */
    ".code16\n"
    "ur_smc1:\n"
    "    .fill 16, 1, 0xF4\n"
    "    mov $0x1111, %ax\n"              /* b8 11 11 */
    "    hlt\n"
    "ur_smc1_end:\n"
    "ur_smc2:\n"
    "    .fill 16, 1, 0xF4\n"
    "    mov $0x2222, %ax\n"              /* b8 22 22 */
    "    hlt\n"
    "ur_smc2_end:\n"

    /* ---- 32-bit PM: attempts to switch tasks (PG_TASK); each is entered on its own ---- */
    ".code32\n"
    "ur_task:\n"
    "ur_task_jmp:\n"
    "    ljmp $0x20, $0\n"                /* ea 00 00 00 00 20 00: JMP to a TSS */
    "ur_task_call:\n"
    "    lcall $0x28, $0\n"               /* 9a ... 28 00: CALL through a task gate */
    "ur_task_iret:\n"
    "    pushf\n"                         /* 9c */
    "    orl $0x4000, (%esp)\n"           /* 81 0c 24 00 40 00 00: EFLAGS.NT */
    "    popf\n"                          /* 9d */
    "ur_task_iret_insn:\n"
    "    iret\n"                          /* cf: task return to the link field's TSS */
    "ur_task_int:\n"
    "    int $0x40\n"                     /* cd 40: IDT 40H is a task gate */
    "ur_task_ud:\n"
    "    ud2\n"                           /* 0f 0b: #UD, IDT 6 is a task gate */
    "ur_task_busy:\n"
    "    ljmp $0x38, $0\n"                /* a busy TSS: #GP(38H) */
    "ur_task_small:\n"
    "    ljmp $0x30, $0\n"                /* a TSS with limit 20H: #TS(30H) */
    "ur_task_hlt:\n"
    "    hlt\n"
    "    jmp ur_task_hlt\n"
    "    .balign 256\n"
    "ur_task_gdt:\n"
    "    .quad 0\n"
    "    .quad 0x00CF9B000000FFFF\n"      /* 08: 32-bit code, flat */
    "    .quad 0x00CF93000000FFFF\n"      /* 10: data, flat */
    "    .word 0x67, 0x0100\n"            /* 18: busy 32-bit TSS at 0x30100 (TR) */
    "    .byte 0x03, 0x8B, 0x00, 0x00\n"
    "    .word 0x67, 0x0200\n"            /* 20: available 32-bit TSS at 0x30200 */
    "    .byte 0x03, 0x89, 0x00, 0x00\n"
    "    .word 0, 0x20\n"                 /* 28: task gate to 20H, DPL 0 */
    "    .byte 0, 0x85, 0, 0\n"
    "    .word 0x20, 0x0400\n"            /* 30: available 32-bit TSS, limit 20H (too small) */
    "    .byte 0x03, 0x89, 0x00, 0x00\n"
    "    .word 0x67, 0x0300\n"            /* 38: busy 32-bit TSS at 0x30300 */
    "    .byte 0x03, 0x8B, 0x00, 0x00\n"
    "    .balign 256\n"
    "ur_task_idt:\n"
    "    .fill 6, 8, 0\n"
    "    .word 0, 0x20\n"                 /* 6 (#UD): task gate to 20H */
    "    .byte 0, 0x85, 0, 0\n"
    "    .fill 0x40 - 7, 8, 0\n"
    "    .word 0, 0x20\n"                 /* 40H: task gate to 20H, DPL 0 */
    "    .byte 0, 0x85, 0, 0\n"
    "ur_task_end:\n"

    ".code64\n"
    ".popsection\n");

extern const uint8_t ur_rm[], ur_rm_out[], ur_rm_cpuid[], ur_rm_store[], ur_rm_hlt[], ur_rm_end[];
extern const uint8_t ur_efer[], ur_efer_hlt[], ur_efer_end[];
extern const uint8_t ur_ivt[], ur_ivt_hlt[], ur_ivt_handler[], ur_ivt_end[];
extern const uint8_t ur_gp[], ur_gp_mov[], ur_gp_end[];
extern const uint8_t ur_pm[], ur_pm_out[], ur_pm_hlt[], ur_pm_gdt[], ur_pm_end[];
extern const uint8_t ur_sw[], ur_sw_movcr0[], ur_sw_out[], ur_sw_hlt[], ur_sw_gdt[], ur_sw_end[];
extern const uint8_t ur_own[], ur_own_movcr0[], ur_own_out[], ur_own_hlt[], ur_own_end[];
extern const uint8_t ur_back[], ur_back_out[], ur_back_hlt[], ur_back_gdt[], ur_back_end[];
extern const uint8_t ur_smc1[], ur_smc1_end[], ur_smc2[], ur_smc2_end[];
extern const uint8_t ur_task[], ur_task_jmp[], ur_task_call[], ur_task_iret[], ur_task_iret_insn[], ur_task_int[];
extern const uint8_t ur_task_ud[], ur_task_busy[], ur_task_small[], ur_task_gdt[], ur_task_idt[], ur_task_end[];

/* A guest: its bytes and the page it runs in. */
struct ur_guest {
    const uint8_t *start, *end;
    uint32_t page;
};
#define GUEST(name, pg) ((struct ur_guest){name, name##_end, pg})
#define G_RM GUEST(ur_rm, PG_RM)
#define G_EFER GUEST(ur_efer, PG_EFER)
#define G_IVT GUEST(ur_ivt, PG_IVT)
#define G_GP GUEST(ur_gp, PG_GP)
#define G_PM GUEST(ur_pm, PG_PM)
#define G_SW GUEST(ur_sw, PG_SW)
#define G_OWN GUEST(ur_own, PG_OWN)
#define G_BACK GUEST(ur_back, PG_BACK)
#define G_TASK GUEST(ur_task, PG_TASK)

/* Offset of a label in its guest (= real-mode IP). */
#define OFF(label, guest) ((uint32_t)((label) - (guest)))

static struct ept_map ept;
static uint64_t cr0_fixed0, cr0_fixed1, cr4_fixed0;
static bool has_timer, adv_info;

/* Segment registers in VMCS-encoding order: field = GUEST_ES_x + 2 * reg. */
enum { UR_ES, UR_CS, UR_SS, UR_DS, UR_FS, UR_GS, UR_LDTR, UR_TR };

#define AR_UNUSABLE 0x10000u
#define AR_CODE16 0x9Bu   /* present, S, DPL 0, execute/read accessed code; D = 0, G = 0 */
#define AR_DATA16 0x93u   /* present, S, DPL 0, read/write accessed data */
#define AR_CODE32 0xC09Bu /* with D/B and G */
#define AR_DATA32 0xC093u
#define AR_TSS32_BUSY 0x8Bu
#define AR_TSS16_BUSY 0x83u

/* The capability MSR that reports a control field's allowed settings (the TRUE one when it exists). */
static uint32_t ctl_msr(uint32_t msr)
{
    if (!(rdmsr(MSR_IA32_VMX_BASIC) & VMX_BASIC_TRUE_CTLS))
        return msr;
    return msr == MSR_IA32_VMX_PINBASED_CTLS ? MSR_IA32_VMX_TRUE_PINBASED_CTLS
           : msr == MSR_IA32_VMX_EXIT_CTLS   ? MSR_IA32_VMX_TRUE_EXIT_CTLS
                                             : msr;
}

static uint16_t rd16(uint64_t pa) { return *(volatile uint16_t *)(uintptr_t)pa; }
static uint32_t rd32(uint64_t pa) { return *(volatile uint32_t *)(uintptr_t)pa; }

static void set_seg(unsigned r, uint16_t sel, uint64_t base, uint32_t limit, uint32_t ar)
{
    vmcs_write(GUEST_ES_SELECTOR + 2 * r, sel);
    vmcs_write(GUEST_ES_BASE + 2 * r, base);
    vmcs_write(GUEST_ES_LIMIT + 2 * r, limit);
    vmcs_write(GUEST_ES_AR_BYTES + 2 * r, ar);
}

/* CR0 of a real-mode guest: IA32_VMX_CR0_FIXED0 without PE and PG (NE), ET. */
static uint64_t real_cr0(void)
{
    return ((cr0_fixed0 & ~(X86_CR0_PE | X86_CR0_PG)) | X86_CR0_ET) & cr0_fixed1;
}

enum ur_mode { UR_REAL, UR_PM32 };

struct ur_opts {
    bool no_unrestricted; /* leave "unrestricted guest" 0 */
    bool no_ept;          /* leave "enable EPT" 0 */
    uint32_t exc_bitmap;
    uint32_t exit;        /* extra VM-exit controls */
};

/*
 * Fresh memory (IVT, data and stack pages; the guest's page filled with HLT,
 * then its code) and a fresh VMCS with the guest state of the mode, entering
 * at label entry. Does not enter: the caller may change fields first.
 */
static void ur_setup(struct ur_guest g, const uint8_t *entry, enum ur_mode mode, const struct ur_opts *o)
{
    static const struct ur_opts none;
    if (!o)
        o = &none;
    struct vmx_extras ex = {
        .pin = has_timer ? (uint32_t)PIN_PREEMPTION_TIMER : 0,
        .proc = (uint32_t)(CPU_HLT | CPU_UNCOND_IO | CPU_MSR_BITMAPS),
        .proc2 = (o->no_ept ? 0 : (uint32_t)CPU2_EPT) | (o->no_unrestricted ? 0 : (uint32_t)CPU2_UNRESTRICTED),
        .exit = o->exit,
        .exc_bitmap = o->exc_bitmap,
    };
    exc_clear();
    exc_return_ok = false;
    memset((void *)(uintptr_t)UR_IVT, 0, 0x1000);
    memset((void *)(uintptr_t)g.page, 0xF4, 0x1000);
    memcpy((void *)(uintptr_t)g.page, g.start, (size_t)(g.end - g.start));
    memset((void *)(uintptr_t)UR_DATA, 0, 0x1000);
    memset((void *)(uintptr_t)(UR_STACK_BASE + 0xF000), 0, 0x1000);

    vmx_ctx_init(&ctx, NULL, NULL, &ex);
    CHECK(!ctx.ctl_unsupported, " a requested control is not supported");
    ctx.entry_ctl &= ~(uint32_t)ENTRY_IA32E;
    vmcs_write(VM_ENTRY_CONTROLS, ctx.entry_ctl);
    if (!o->no_ept)
        vmcs_write(EPT_POINTER, ept_eptp(&ept, false));
    if (has_timer)
        vmcs_write(VMX_PREEMPTION_TIMER_VALUE, UR_WATCHDOG);
    for (unsigned i = 0; i < 16; i++)
        ctx.regs[i] = 0;

    uint64_t cr0 = real_cr0() | (mode == UR_PM32 ? X86_CR0_PE : 0);
    vmcs_write(GUEST_CR0, cr0);
    vmcs_write(CR0_READ_SHADOW, cr0);
    vmcs_write(GUEST_CR3, 0);
    vmcs_write(GUEST_CR4, cr4_fixed0);
    vmcs_write(CR4_READ_SHADOW, 0);
    vmcs_write(GUEST_DR7, 0x400);
    vmcs_write(GUEST_RFLAGS, X86_RFLAGS_FIXED);
    vmcs_write(GUEST_SYSENTER_ESP, 0);
    vmcs_write(GUEST_SYSENTER_EIP, 0);
    set_seg(UR_LDTR, 0, 0, 0, AR_UNUSABLE);
    if (mode == UR_REAL) {
        set_seg(UR_CS, (uint16_t)(g.page >> 4), g.page, 0xFFFF, AR_CODE16);
        set_seg(UR_SS, UR_SS_SEL, UR_STACK_BASE, 0xFFFF, AR_DATA16);
        set_seg(UR_DS, 0, 0, 0xFFFF, AR_DATA16);
        set_seg(UR_ES, 0, 0, 0xFFFF, AR_DATA16);
        set_seg(UR_FS, 0, 0, 0xFFFF, AR_DATA16);
        set_seg(UR_GS, 0, 0, 0xFFFF, AR_DATA16);
        set_seg(UR_TR, 0, 0, 0xFFFF, AR_TSS32_BUSY);
        vmcs_write(GUEST_GDTR_BASE, 0);
        vmcs_write(GUEST_GDTR_LIMIT, 0xFFFF);
        vmcs_write(GUEST_IDTR_BASE, UR_IVT);
        vmcs_write(GUEST_IDTR_LIMIT, 0x3FF);
        vmcs_write(GUEST_RIP, OFF(entry, g.start));
        vmcs_write(GUEST_RSP, UR_SP);
    } else {
        set_seg(UR_CS, 0x08, 0, 0xFFFFFFFF, AR_CODE32);
        set_seg(UR_SS, 0x10, 0, 0xFFFFFFFF, AR_DATA32);
        set_seg(UR_DS, 0x10, 0, 0xFFFFFFFF, AR_DATA32);
        set_seg(UR_ES, 0x10, 0, 0xFFFFFFFF, AR_DATA32);
        set_seg(UR_FS, 0x10, 0, 0xFFFFFFFF, AR_DATA32);
        set_seg(UR_GS, 0x10, 0, 0xFFFFFFFF, AR_DATA32);
        set_seg(UR_TR, 0x18, 0, 0x67, AR_TSS32_BUSY);
        vmcs_write(GUEST_GDTR_BASE, 0);
        vmcs_write(GUEST_GDTR_LIMIT, 0);
        vmcs_write(GUEST_IDTR_BASE, 0);
        vmcs_write(GUEST_IDTR_LIMIT, 0);
        vmcs_write(GUEST_RIP, g.page + OFF(entry, g.start));
        vmcs_write(GUEST_RSP, UR_PM_ESP);
    }
}

/* The current exit has this reason (a VM exit, not a VMfail or a failed entry). */
static bool check_reason(uint32_t reason)
{
    return CHECK(ctx.vmfail == VMSUCCEED && ctx.exit_reason == reason, " want exit %u (%s), got %s", reason,
                 exit_reason_name(reason), vmx_exit_str(&ctx));
}

/* An instruction exit at rip with the instruction's length. */
static bool check_insn_exit(uint32_t reason, uint64_t rip, uint32_t len)
{
    if (!check_reason(reason))
        return false;
    CHECK(ctx.guest_rip == rip, " GUEST_RIP 0x%lx, want 0x%lx", ctx.guest_rip, rip);
    CHECK(ctx.insn_len == len, " instruction length %u, want %u", ctx.insn_len, len);
    return true;
}

/* A VM-entry failure exit for invalid guest state: reason 33 | bit 31, qualification 0 (§27.8). */
static void check_entry_fail_33(void)
{
    CHECK(ctx.vmfail == VMSUCCEED && ctx.exit_reason == (EXIT_INVALID_STATE | (uint32_t)EXIT_REASON_FAILED_ENTRY),
          " want a VM-entry failure exit 33, got %s", vmx_exit_str(&ctx));
    CHECK(ctx.exit_qual == 0, " qualification %lu, want 0 (default)", ctx.exit_qual);
    CHECK(!ctx.launched, " a failed VM entry launched the VMCS");
}

static void check_seg(const char *name, unsigned r, uint16_t sel, uint64_t base, uint32_t limit, uint32_t ar)
{
    uint64_t s = vmcs_read(GUEST_ES_SELECTOR + 2 * r), b = vmcs_read(GUEST_ES_BASE + 2 * r);
    uint64_t l = vmcs_read(GUEST_ES_LIMIT + 2 * r), a = vmcs_read(GUEST_ES_AR_BYTES + 2 * r);
    CHECK(s == sel && b == base && l == limit && a == ar,
          " saved %s: selector 0x%lx base 0x%lx limit 0x%lx AR 0x%lx, want 0x%x 0x%lx 0x%x 0x%x", name, s, b, l, a,
          sel, base, limit, ar);
}

/* OUT imm8 of AL: size 1, OUT, not string, immediate operand, port 0x80 (Table 28-5). */
#define OUT80_QUAL IOQ(1, false, false, false, true, 0x80)

/* ---- 1. Real-address mode ------------------------------------------------------------------- */

static void test_real_mode_basic(void)
{
    const uint32_t cpuid_eax = 0xCAFE1234;
    ur_setup(G_RM, ur_rm, UR_REAL, NULL);
    vmx_enter(&ctx);
    if (check_insn_exit(EXIT_IO, OFF(ur_rm_out, ur_rm), 2)) {
        CHECK(ctx.exit_qual == OUT80_QUAL, " qualification 0x%lx, want 0x%lx", ctx.exit_qual, OUT80_QUAL);
        CHECK((uint8_t)ctx.regs[R_RAX] == 0x41, " AL 0x%lx", ctx.regs[R_RAX] & 0xFF);
        uint64_t cr0 = vmcs_read(GUEST_CR0);
        CHECK(!(cr0 & (X86_CR0_PE | X86_CR0_PG)), " saved GUEST_CR0 0x%lx has PE or PG", cr0);
        CHECK(!(vmcs_read(VM_ENTRY_CONTROLS) & ENTRY_IA32E), " IA-32e mode guest set by the exit");
        check_seg("CS", UR_CS, 0x2000, UR_CODE, 0xFFFF, AR_CODE16);
    }
    report_checks("real_mode_entry_io_exit");

    if (ctx.exit_reason != EXIT_IO)
        return;
    vmx_skip_and_enter(&ctx);
    if (check_insn_exit(EXIT_CPUID, OFF(ur_rm_cpuid, ur_rm), 2)) {
        ctx.regs[R_RAX] = cpuid_eax;
        ctx.regs[R_RBX] = ctx.regs[R_RCX] = ctx.regs[R_RDX] = 0;
    }
    report_checks("real_mode_cpuid_exit");

    if (ctx.exit_reason != EXIT_CPUID)
        return;
    vmx_skip_and_enter(&ctx);
    bool halted = check_insn_exit(EXIT_HLT, OFF(ur_rm_hlt, ur_rm), 1);
    /* DS = 0x3000: DS:0x10 is linear (= physical: PG = 0, identity EPT) 0x30010. */
    CHECK(rd32(UR_DATA + 0x10) == cpuid_eax, " [0x30010] = 0x%x, want the host's CPUID EAX 0x%x",
          rd32(UR_DATA + 0x10), cpuid_eax);
    CHECK(rd16(UR_DATA + 0x14) == 0xBEEF, " [0x30014] = 0x%x, want 0xBEEF", rd16(UR_DATA + 0x14));
    /* PUSH DS: SS.base 0x40000 + SP 0xFFF0 - 2. */
    CHECK(rd16(UR_STACK_BASE + UR_SP - 2) == UR_DS_SEL, " [SS:SP-2] = 0x%x, want 0x%x",
          rd16(UR_STACK_BASE + UR_SP - 2), UR_DS_SEL);
    report_checks("real_mode_segment_arithmetic");

    if (!halted)
        return;
    CHECK(ctx.guest_rsp == UR_SP - 2, " GUEST_RSP 0x%lx, want 0x%x", ctx.guest_rsp, UR_SP - 2);
    check_seg("DS", UR_DS, UR_DS_SEL, UR_DATA, 0xFFFF, AR_DATA16);
    check_seg("SS", UR_SS, UR_SS_SEL, UR_STACK_BASE, 0xFFFF, AR_DATA16);
    check_seg("CS", UR_CS, 0x2000, UR_CODE, 0xFFFF, AR_CODE16);
    check_seg("ES", UR_ES, 0, 0, 0xFFFF, AR_DATA16);
    check_seg("TR", UR_TR, 0, 0, 0xFFFF, AR_TSS32_BUSY);
    CHECK(vmcs_read(GUEST_LDTR_AR_BYTES) & AR_UNUSABLE, " LDTR AR 0x%lx not unusable",
          vmcs_read(GUEST_LDTR_AR_BYTES));
    CHECK(vmcs_read(GUEST_IDTR_BASE) == UR_IVT && vmcs_read(GUEST_IDTR_LIMIT) == 0x3FF, " IDTR 0x%lx/0x%lx",
          vmcs_read(GUEST_IDTR_BASE), vmcs_read(GUEST_IDTR_LIMIT));
    CHECK(vmcs_read(GUEST_CR0) == real_cr0(), " GUEST_CR0 0x%lx, want 0x%lx", vmcs_read(GUEST_CR0), real_cr0());
    /* Arithmetic flags (CF PF AF ZF SF OF) may be anything; the rest is as entered. */
    CHECK((ctx.guest_rflags & ~(uint64_t)0x8D5) == X86_RFLAGS_FIXED, " GUEST_RFLAGS 0x%lx", ctx.guest_rflags);
    report_checks("real_mode_hlt_exit_saved_state");
}

/* TR may be a busy 16-bit TSS (type 3) outside IA-32e mode (§27.3.1.2). */
static void test_real_mode_tr16(void)
{
    ur_setup(G_RM, ur_rm, UR_REAL, NULL);
    set_seg(UR_TR, 0, 0, 0xFFFF, AR_TSS16_BUSY);
    vmx_enter(&ctx);
    if (check_insn_exit(EXIT_IO, OFF(ur_rm_out, ur_rm), 2))
        check_seg("TR", UR_TR, 0, 0, 0xFFFF, AR_TSS16_BUSY);
    report_checks("real_mode_tr_16bit_busy_tss");
}

/* With "unrestricted guest", CS may be a read/write accessed data segment with DPL 0 (§27.3.1.2). */
static void test_real_mode_cs_type3(void)
{
    ur_setup(G_RM, ur_rm, UR_REAL, NULL);
    set_seg(UR_CS, 0x2000, UR_CODE, 0xFFFF, AR_DATA16);
    vmx_enter(&ctx);
    if (check_insn_exit(EXIT_IO, OFF(ur_rm_out, ur_rm), 2)) {
        check_seg("CS", UR_CS, 0x2000, UR_CODE, 0xFFFF, AR_DATA16);
        vmx_skip_and_enter(&ctx);
        if (check_insn_exit(EXIT_CPUID, OFF(ur_rm_cpuid, ur_rm), 2)) {
            vmx_skip_and_enter(&ctx);
            check_insn_exit(EXIT_HLT, OFF(ur_rm_hlt, ur_rm), 1);
        }
    }
    report_checks("real_mode_cs_type3_data_segment");
}

/*
 * §27.3.2.1: without "load IA32_EFER", VM entry loads EFER.LMA from "IA-32e
 * mode guest" (0) and EFER.LME only "if CR0 is being loaded so that CR0.PG
 * = 1"; otherwise LME is unmodified: the host's 1. The guest reads EFER
 * with RDMSR (MSR bitmap 0: no exit); "save IA32_EFER" stores it too.
 */
static void test_real_mode_efer(void)
{
    uint64_t host_efer = rdmsr(MSR_IA32_EFER);
    uint64_t want = host_efer & ~(uint64_t)BIT(10); /* LMA 0; LME (bit 8) and the rest are the host's */
    bool save = vmx_ctl_allowed1(ctl_msr(MSR_IA32_VMX_EXIT_CTLS), (uint32_t)EXIT_SAVE_EFER);
    struct ur_opts o = {.exit = save ? (uint32_t)EXIT_SAVE_EFER : 0};
    ur_setup(G_EFER, ur_efer, UR_REAL, &o);
    vmx_enter(&ctx);
    if (check_insn_exit(EXIT_HLT, OFF(ur_efer_hlt, ur_efer), 1)) {
        uint64_t got = (uint32_t)ctx.regs[R_RAX] | (uint64_t)(uint32_t)ctx.regs[R_RDX] << 32;
        CHECK(got == want, " guest RDMSR(EFER) 0x%lx, want 0x%lx (host 0x%lx, LME unmodified)", got, want,
              host_efer);
        if (save)
            CHECK(vmcs_read(GUEST_IA32_EFER) == want, " saved GUEST_IA32_EFER 0x%lx, want 0x%lx",
                  vmcs_read(GUEST_IA32_EFER), want);
    }
    CHECK(rdmsr(MSR_IA32_EFER) == host_efer, " host EFER 0x%lx after the exit, was 0x%lx", rdmsr(MSR_IA32_EFER),
          host_efer);
    report_checks(EFER_LME);
}

static void set_ivt(unsigned vector, uint16_t cs, uint16_t ip)
{
    *(volatile uint32_t *)(uintptr_t)(UR_IVT + 4u * vector) = (uint32_t)cs << 16 | ip;
}

/* The IVT handler ran (CX), on a 3-word frame (no error code) that returns to ret_ip; IRET popped it. */
static void check_ivt_handler(uint16_t ret_ip)
{
    CHECK((uint16_t)ctx.regs[R_RCX] == 0x7777, " the IVT handler did not run: CX 0x%lx", ctx.regs[R_RCX]);
    CHECK((uint16_t)ctx.regs[R_RDX] == UR_SP - 6, " SP in the handler 0x%lx, want 0x%x (FLAGS, CS, IP)",
          ctx.regs[R_RDX] & 0xFFFF, UR_SP - 6);
    CHECK(!(ctx.regs[R_RBX] & X86_RFLAGS_IF), " IF set in the handler: FLAGS 0x%lx", ctx.regs[R_RBX] & 0xFFFF);
    CHECK(rd16(UR_STACK_BASE + UR_SP - 6) == ret_ip, " frame IP 0x%x, want 0x%x", rd16(UR_STACK_BASE + UR_SP - 6),
          ret_ip);
    CHECK(rd16(UR_STACK_BASE + UR_SP - 4) == PG_IVT >> 4, " frame CS 0x%x, want 0x%x",
          rd16(UR_STACK_BASE + UR_SP - 4), PG_IVT >> 4);
    CHECK(ctx.guest_rsp == UR_SP, " GUEST_RSP 0x%lx after IRET, want 0x%x", ctx.guest_rsp, UR_SP);
    check_seg("CS", UR_CS, PG_IVT >> 4, PG_IVT, 0xFFFF, AR_CODE16);
}

/* INT n in real mode: IVT at IDTR.base, FLAGS/CS/IP pushed, IF cleared; IRET returns (SDM Vol. 3A §20.1.4). */
static void test_real_mode_int_n(void)
{
    ur_setup(G_IVT, ur_ivt, UR_REAL, NULL);
    set_ivt(0x30, PG_IVT >> 4, (uint16_t)OFF(ur_ivt_handler, ur_ivt));
    vmcs_write(GUEST_RFLAGS, X86_RFLAGS_FIXED | X86_RFLAGS_IF);
    vmx_enter(&ctx);
    if (check_insn_exit(EXIT_HLT, OFF(ur_ivt_hlt, ur_ivt), 1)) {
        check_ivt_handler((uint16_t)OFF(ur_ivt_hlt, ur_ivt));
        CHECK(rd16(UR_STACK_BASE + UR_SP - 2) & X86_RFLAGS_IF, " frame FLAGS 0x%x without IF",
              rd16(UR_STACK_BASE + UR_SP - 2));
        CHECK(ctx.guest_rflags & X86_RFLAGS_IF, " IRET did not restore IF: RFLAGS 0x%lx", ctx.guest_rflags);
    }
    report_checks("real_mode_int_n_through_ivt");
}

/*
 * A #GP in real-address mode with GP in the exception bitmap: exit 0,
 * vector 13, type 3 (hardware exception), and bit 11 clear: "This bit is
 * always 0 if the VM exit occurred while the logical processor was in
 * real-address mode (CR0.PE=0)" (§28.2.2). MOV to CR0 with PG = 1 and
 * PE = 0 is #GP(0) (SDM Vol. 2B MOV CR).
 */
static void test_real_mode_gp_exit(void)
{
    struct ur_opts o = {.exc_bitmap = (uint32_t)BIT(GP_VECTOR)};
    ur_setup(G_GP, ur_gp, UR_REAL, &o);
    vmx_enter(&ctx);
    if (check_reason(EXIT_EXCEPTION_NMI)) {
        uint32_t want = INTR_INFO(GP_VECTOR, INTR_TYPE_HW_EXC, false);
        CHECK(INTR_INFO_VECTOR(ctx.intr_info) == GP_VECTOR && INTR_INFO_TYPE(ctx.intr_info) == INTR_TYPE_HW_EXC,
              " interruption information 0x%x: not a #GP hardware exception", ctx.intr_info);
        CHECK(ctx.guest_rip == OFF(ur_gp_mov, ur_gp), " GUEST_RIP 0x%lx, want 0x%x", ctx.guest_rip,
              OFF(ur_gp_mov, ur_gp));
        CHECK(!(vmcs_read(GUEST_CR0) & (X86_CR0_PG | X86_CR0_PE)), " GUEST_CR0 0x%lx", vmcs_read(GUEST_CR0));
        CHECK(!(ctx.idt_vec_info & INTR_INFO_VALID), " IDT-vectoring information 0x%x", ctx.idt_vec_info);
        CHECK((ctx.intr_info & ~(uint32_t)BIT(12)) == want,
              " interruption information 0x%x, want 0x%x (bit 11 is 0 in real-address mode; error code 0x%x)",
              ctx.intr_info, want, ctx.intr_error);
    }
    report_checks(GP_ERRCODE);
}

/*
 * A real-mode fault loop: the #GP handler in the IVT is the faulting MOV to
 * CR0 itself, so the guest retires no instruction while #GP is delivered
 * forever (the stack wraps inside its segment). Time still passes: the
 * VMX-preemption timer counts down in non-root operation whatever the guest
 * does (§26.5.1) and ends the loop with exit 52.
 */
static void test_real_mode_fault_loop_timer(void)
{
    if (!has_timer) {
        report_skip("real_mode_fault_loop_preemption_timer", "no VMX-preemption timer");
        return;
    }
    ur_setup(G_GP, ur_gp, UR_REAL, NULL);
    set_ivt(GP_VECTOR, PG_GP >> 4, (uint16_t)OFF(ur_gp_mov, ur_gp));
    vmcs_write(VMX_PREEMPTION_TIMER_VALUE, 64);
    vmx_enter(&ctx);
    if (check_reason(EXIT_PREEMPTION_TIMER))
        CHECK(ctx.guest_rip == OFF(ur_gp_mov, ur_gp), " GUEST_RIP 0x%lx, want the faulting MOV at 0x%x",
              ctx.guest_rip, OFF(ur_gp_mov, ur_gp));
    report_checks("real_mode_fault_loop_preemption_timer");
}

/*
 * VM-entry injection of a hardware exception into a real-mode guest
 * (§27.6.1.2): delivered through the IVT (vector 13 here) with no error
 * code pushed; the handler IRETs to GUEST_RIP.
 */
static void test_real_mode_inject(void)
{
    ur_setup(G_IVT, ur_ivt_hlt, UR_REAL, NULL);
    set_ivt(GP_VECTOR, PG_IVT >> 4, (uint16_t)OFF(ur_ivt_handler, ur_ivt));
    vmcs_write(VM_ENTRY_INTR_INFO_FIELD, INTR_INFO(GP_VECTOR, INTR_TYPE_HW_EXC, false));
    vmx_enter(&ctx);
    if (check_insn_exit(EXIT_HLT, OFF(ur_ivt_hlt, ur_ivt), 1)) {
        check_ivt_handler((uint16_t)OFF(ur_ivt_hlt, ur_ivt));
        CHECK(!(vmcs_read(VM_ENTRY_INTR_INFO_FIELD) & INTR_INFO_VALID), " entry interruption info still valid");
    }
    report_checks("real_mode_inject_exception_through_ivt");
}

/*
 * §27.2.1.3: deliver-error-code must be 0 unless "unrestricted guest" is 0
 * or guest CR0.PE is 1: VMfailValid 7 for a real-mode guest; the same
 * injection with CR0.PE = 1 is accepted.
 */
static void test_real_mode_inject_errcode(void)
{
    ur_setup(G_IVT, ur_ivt_hlt, UR_REAL, NULL);
    vmcs_write(VM_ENTRY_INTR_INFO_FIELD, INTR_INFO(GP_VECTOR, INTR_TYPE_HW_EXC, true));
    vmcs_write(VM_ENTRY_EXCEPTION_ERROR_CODE, 0);
    vmx_enter(&ctx);
    CHECK(ctx.vmfail == VMFAIL_VALID && ctx.insn_error == VMXERR_ENTRY_BAD_CONTROL,
          " want VMfailValid 7, got %s", vmx_exit_str(&ctx));
    if (ctx.vmfail == VMFAIL_VALID) {
        vmcs_write(GUEST_CR0, real_cr0() | X86_CR0_PE);
        vmcs_write(GUEST_IDTR_LIMIT, 0); /* the delivery faults: the guest ends in a fault exit */
        vmx_enter(&ctx);
        CHECK(ctx.vmfail == VMSUCCEED && !(ctx.exit_reason & EXIT_REASON_FAILED_ENTRY),
              " with CR0.PE = 1 the entry should succeed, got %s", vmx_exit_str(&ctx));
    }
    report_checks("real_mode_inject_error_code_vmfail");
}

/*
 * §27.3.1.2: SS.DPL must be 0 when CR0.PE = 0 (or CS is of type 3). CS is a
 * type-3 segment with DPL 0 here, so the CS rules hold and the SS rule fails.
 */
static void test_real_mode_ss_dpl3(void)
{
    ur_setup(G_RM, ur_rm, UR_REAL, NULL);
    set_seg(UR_CS, 0x2000, UR_CODE, 0xFFFF, AR_DATA16);
    set_seg(UR_SS, UR_SS_SEL, UR_STACK_BASE, 0xFFFF, 0xF3);
    vmx_enter(&ctx);
    check_entry_fail_33();
    report_checks("real_mode_ss_dpl3_entry_fails");
}

/*
 * EPT violations from real mode (§28.2.1 Table 28-7): bit 7 (guest-linear
 * address valid), bit 8 (the access is to the translation of the linear
 * address), bits 5:3 the rights of the EPT entries; with advanced exit
 * information: bit 9 = 1 ("if CR0.PG = 0, the translation of every linear
 * address is a user-mode linear address"), bit 10 = 1 ("every linear
 * address is read/write"), bit 11 = 0 (executable).
 */
static uint64_t rm_ept_qual(uint64_t acc, uint64_t rights)
{
    uint64_t q = acc | (rights & EPT_RWX) << EPT_VIOLATION_PROT_SHIFT | EPT_VIOLATION_GVA_IS_VALID |
                 EPT_VIOLATION_GVA_TRANSLATED;
    if (adv_info)
        q |= EPT_VIOLATION_GVA_USER | EPT_VIOLATION_GVA_WRITABLE;
    return q;
}

static void test_real_mode_ept_violations(void)
{
    /* The first fetch, at CS.base + IP, from a page without X. */
    ur_setup(G_RM, ur_rm, UR_REAL, NULL);
    ept_set_rights(&ept, PG_RM, EPT_R | EPT_W);
    CHECK(ept_invept(&ept) == VMSUCCEED, " INVEPT failed");
    vmx_enter(&ctx);
    if (check_reason(EXIT_EPT_VIOLATION)) {
        uint64_t want = rm_ept_qual(EPT_VIOLATION_ACC_INSTR, EPT_R | EPT_W);
        CHECK(ctx.exit_qual == want, " qualification 0x%lx, want 0x%lx", ctx.exit_qual, want);
        CHECK(ctx.guest_rip == 0, " GUEST_RIP 0x%lx, want 0 (IP of the first instruction)", ctx.guest_rip);
        CHECK(ctx.guest_linear == PG_RM, " guest-linear 0x%lx, want CS.base + IP = 0x%x", ctx.guest_linear, PG_RM);
        CHECK(ctx.guest_phys == PG_RM, " guest-physical 0x%lx, want 0x%x", ctx.guest_phys, PG_RM);
        ept_set_rights(&ept, PG_RM, EPT_RWX);
        CHECK(ept_invept(&ept) == VMSUCCEED, " INVEPT failed");
        vmx_enter(&ctx);
        check_insn_exit(EXIT_IO, OFF(ur_rm_out, ur_rm), 2);
    }
    ept_set_rights(&ept, PG_RM, EPT_RWX);
    CHECK(ept_invept(&ept) == VMSUCCEED, " INVEPT failed");
    report_checks("real_mode_ept_fetch_violation");

    /* The store through DS = 0x3000 to a read-only page; then retried. */
    ur_setup(G_RM, ur_rm, UR_REAL, NULL);
    ept_set_rights(&ept, UR_DATA, EPT_R);
    CHECK(ept_invept(&ept) == VMSUCCEED, " INVEPT failed");
    vmx_enter(&ctx);
    if (check_insn_exit(EXIT_IO, OFF(ur_rm_out, ur_rm), 2) && (vmx_skip_and_enter(&ctx), true) &&
        check_insn_exit(EXIT_CPUID, OFF(ur_rm_cpuid, ur_rm), 2)) {
        ctx.regs[R_RAX] = 0x11223344;
        vmx_skip_and_enter(&ctx);
        if (check_reason(EXIT_EPT_VIOLATION)) {
            uint64_t want = rm_ept_qual(EPT_VIOLATION_ACC_WRITE, EPT_R);
            CHECK(ctx.exit_qual == want, " qualification 0x%lx, want 0x%lx", ctx.exit_qual, want);
            CHECK(ctx.guest_rip == OFF(ur_rm_store, ur_rm), " GUEST_RIP 0x%lx, want 0x%x", ctx.guest_rip,
                  OFF(ur_rm_store, ur_rm));
            CHECK(ctx.guest_linear == UR_DATA + 0x10, " guest-linear 0x%lx, want DS.base + 0x10", ctx.guest_linear);
            CHECK(ctx.guest_phys == UR_DATA + 0x10, " guest-physical 0x%lx, want 0x%x", ctx.guest_phys,
                  UR_DATA + 0x10);
            ept_set_rights(&ept, UR_DATA, EPT_RWX);
            CHECK(ept_invept(&ept) == VMSUCCEED, " INVEPT failed");
            vmx_enter(&ctx);
            check_insn_exit(EXIT_HLT, OFF(ur_rm_hlt, ur_rm), 1);
            CHECK(rd32(UR_DATA + 0x10) == 0x11223344, " [0x30010] = 0x%x after the retry", rd32(UR_DATA + 0x10));
        }
    }
    ept_set_rights(&ept, UR_DATA, EPT_RWX);
    CHECK(ept_invept(&ept) == VMSUCCEED, " INVEPT failed");
    report_checks("real_mode_ept_write_violation");
}

/* ---- 2. 32-bit protected mode without paging ------------------------------------------------ */

static void test_pm32_nopaging(void)
{
    ur_setup(G_PM, ur_pm, UR_PM32, NULL);
    vmcs_write(GUEST_GDTR_BASE, PG_PM + OFF(ur_pm_gdt, ur_pm));
    vmcs_write(GUEST_GDTR_LIMIT, 23);
    /* DS starts with another base: the guest's MOV to DS must load base 0 from its GDT. */
    set_seg(UR_DS, 0x10, 0x1000, 0xFFFFFFFF, AR_DATA32);
    vmx_enter(&ctx);
    bool io = check_insn_exit(EXIT_IO, PG_PM + OFF(ur_pm_out, ur_pm), 2);
    if (io) {
        CHECK(ctx.exit_qual == OUT80_QUAL, " qualification 0x%lx", ctx.exit_qual);
        CHECK((uint8_t)ctx.regs[R_RAX] == 0x42, " AL 0x%lx", ctx.regs[R_RAX] & 0xFF);
        uint64_t cr0 = vmcs_read(GUEST_CR0);
        CHECK((cr0 & X86_CR0_PE) && !(cr0 & X86_CR0_PG), " saved GUEST_CR0 0x%lx", cr0);
        check_seg("CS", UR_CS, 0x08, 0, 0xFFFFFFFF, AR_CODE32);
        check_seg("DS", UR_DS, 0x10, 0, 0xFFFFFFFF, AR_DATA32);
    }
    report_checks("pm32_nopaging_io_exit");

    if (!io)
        return;
    uint32_t cr0_seen = rd32(UR_DATA + 0x40);
    CHECK(cr0_seen == (uint32_t)(real_cr0() | X86_CR0_PE), " MOV from CR0 gave 0x%x, want 0x%lx", cr0_seen,
          real_cr0() | X86_CR0_PE);
    CHECK(rd32(UR_DATA + 0x44) == 0xC0DE1234, " [0x30044] = 0x%x", rd32(UR_DATA + 0x44));
    CHECK(rd32(UR_PM_ESP - 4) == 0x5A5A5A5A, " [ESP-4] = 0x%x", rd32(UR_PM_ESP - 4));
    CHECK(ctx.guest_rsp == UR_PM_ESP - 4, " GUEST_RSP 0x%lx", ctx.guest_rsp);
    vmx_skip_and_enter(&ctx);
    check_insn_exit(EXIT_HLT, PG_PM + OFF(ur_pm_hlt, ur_pm), 1);
    report_checks("pm32_nopaging_memory_and_cr0");
}

/* ---- 3. Mode switches inside the guest ------------------------------------------------------ */

static void test_mode_switch(void)
{
    ur_setup(G_SW, ur_sw, UR_REAL, NULL);
    vmx_enter(&ctx);
    /* CR0 guest/host mask 0: MOV to CR0 does not exit; the first exit is the OUT in 32-bit code. */
    bool io = check_reason(EXIT_IO);
    if (!io)
        CHECK(false, " (MOV to CR0 at IP 0x%x)", OFF(ur_sw_movcr0, ur_sw));
    report_checks("mode_switch_mov_cr0_no_exit");

    if (!io)
        return;
    CHECK(ctx.guest_rip == PG_SW + OFF(ur_sw_out, ur_sw), " GUEST_RIP 0x%lx, want 0x%x", ctx.guest_rip,
          PG_SW + OFF(ur_sw_out, ur_sw));
    CHECK(ctx.insn_len == 2, " length %u", ctx.insn_len);
    CHECK(ctx.exit_qual == OUT80_QUAL, " qualification 0x%lx", ctx.exit_qual);
    check_seg("CS", UR_CS, 0x08, 0, 0xFFFFFFFF, AR_CODE32);
    check_seg("DS", UR_DS, 0x10, 0, 0xFFFFFFFF, AR_DATA32);
    check_seg("SS", UR_SS, 0x10, 0, 0xFFFFFFFF, AR_DATA32);
    uint64_t cr0 = vmcs_read(GUEST_CR0);
    CHECK(cr0 == (real_cr0() | X86_CR0_PE), " saved GUEST_CR0 0x%lx, want 0x%lx", cr0, real_cr0() | X86_CR0_PE);
    CHECK(rd32(UR_DATA + 0x50) == (uint32_t)(real_cr0() | X86_CR0_PE), " guest MOV from CR0 0x%x",
          rd32(UR_DATA + 0x50));
    CHECK(vmcs_read(GUEST_GDTR_BASE) == PG_SW + OFF(ur_sw_gdt, ur_sw) && vmcs_read(GUEST_GDTR_LIMIT) == 23,
          " saved GDTR 0x%lx/0x%lx, want 0x%x/0x17 (the guest's LGDT)", vmcs_read(GUEST_GDTR_BASE),
          vmcs_read(GUEST_GDTR_LIMIT), PG_SW + OFF(ur_sw_gdt, ur_sw));
    CHECK(ctx.guest_rsp == UR_PM_ESP, " GUEST_RSP 0x%lx", ctx.guest_rsp);
    report_checks("mode_switch_saved_cs_and_cr0");

    vmx_skip_and_enter(&ctx);
    check_insn_exit(EXIT_HLT, PG_SW + OFF(ur_sw_hlt, ur_sw), 1);
    CHECK(rd32(UR_DATA + 0x54) == 0x600DF00D, " [0x30054] = 0x%x", rd32(UR_DATA + 0x54));
    report_checks("mode_switch_store_and_hlt");
}

/*
 * Back to real mode (SDM Vol. 3A "Switching Back to Real-Address Mode"): from 32-bit code, far JMP to a
 * 16-bit code segment, 16-bit data segments, MOV to CR0 clearing PE (mask
 * 0: no exit), real-mode far JMP; then real-mode segment arithmetic again.
 * (The hidden CS attributes after the real-mode far JMP are not checked.)
 */
static void test_back_to_real_mode(void)
{
    ur_setup(G_BACK, ur_back, UR_PM32, NULL);
    vmcs_write(GUEST_GDTR_BASE, PG_BACK + OFF(ur_back_gdt, ur_back));
    vmcs_write(GUEST_GDTR_LIMIT, 39);
    vmx_enter(&ctx);
    if (check_insn_exit(EXIT_IO, OFF(ur_back_out, ur_back), 2)) {
        uint64_t cr0 = vmcs_read(GUEST_CR0);
        CHECK(cr0 == real_cr0(), " saved GUEST_CR0 0x%lx, want 0x%lx", cr0, real_cr0());
        uint64_t cs = vmcs_read(GUEST_CS_SELECTOR), csb = vmcs_read(GUEST_CS_BASE);
        CHECK(cs == PG_BACK >> 4 && csb == PG_BACK && vmcs_read(GUEST_CS_LIMIT) == 0xFFFF,
              " saved CS 0x%lx base 0x%lx limit 0x%lx", cs, csb, vmcs_read(GUEST_CS_LIMIT));
        CHECK(!(vmcs_read(GUEST_CS_AR_BYTES) & (BIT(14) | BIT(13))), " CS AR 0x%lx: D or L set",
              vmcs_read(GUEST_CS_AR_BYTES));
        CHECK(vmcs_read(GUEST_DS_SELECTOR) == UR_DS_SEL && vmcs_read(GUEST_DS_BASE) == UR_DATA, " DS 0x%lx base 0x%lx",
              vmcs_read(GUEST_DS_SELECTOR), vmcs_read(GUEST_DS_BASE));
        CHECK(vmcs_read(GUEST_SS_SELECTOR) == UR_SS_SEL && vmcs_read(GUEST_SS_BASE) == UR_STACK_BASE,
              " SS 0x%lx base 0x%lx", vmcs_read(GUEST_SS_SELECTOR), vmcs_read(GUEST_SS_BASE));
        CHECK(rd16(UR_DATA + 0x58) == 0x1234, " [0x30058] = 0x%x", rd16(UR_DATA + 0x58));
        CHECK(rd16(UR_STACK_BASE + UR_SP - 2) == UR_DS_SEL, " [0x4FFEE] = 0x%x", rd16(UR_STACK_BASE + UR_SP - 2));
        vmx_skip_and_enter(&ctx);
        check_insn_exit(EXIT_HLT, OFF(ur_back_hlt, ur_back), 1);
    }
    report_checks("mode_switch_back_to_real_mode");
}

/* ---- 4. CR0 guest/host mask owning PE -------------------------------------------------------- */

static void test_cr0_mask_pe(void)
{
    const uint64_t mask = X86_CR0_PE | X86_CR0_PG;
    ur_setup(G_OWN, ur_own, UR_REAL, NULL);
    vmcs_write(CR0_GUEST_HOST_MASK, mask);
    vmcs_write(CR0_READ_SHADOW, real_cr0());
    vmx_enter(&ctx);
    bool cr = check_insn_exit(EXIT_CR_ACCESS, OFF(ur_own_movcr0, ur_own), 3);
    uint64_t val = ctx.regs[R_RBX];
    if (cr) {
        CHECK(ctx.exit_qual == CRQ(0, CR_TYPE_MOV_TO, R_RBX), " qualification 0x%lx, want 0x%lx", ctx.exit_qual,
              CRQ(0, CR_TYPE_MOV_TO, R_RBX));
        CHECK((uint32_t)val == (uint32_t)(real_cr0() | X86_CR0_PE), " EBX 0x%lx, want 0x%lx", val,
              real_cr0() | X86_CR0_PE);
        uint64_t cr0 = vmcs_read(GUEST_CR0);
        CHECK(!(cr0 & X86_CR0_PE), " the exiting MOV changed GUEST_CR0: 0x%lx", cr0);
        check_seg("CS", UR_CS, PG_OWN >> 4, PG_OWN, 0xFFFF, AR_CODE16);
    }
    report_checks("cr0_mask_pe_mov_to_cr0_exits");

    if (!cr)
        return;
    /* Emulate the MOV: the guest's value in CR0 (fixed bits kept), and in the shadow for the owned bits. */
    uint64_t newcr0 = ((uint32_t)val | (cr0_fixed0 & ~mask)) & cr0_fixed1;
    vmcs_write(GUEST_CR0, newcr0);
    vmcs_write(CR0_READ_SHADOW, (uint32_t)val);
    vmx_skip_and_enter(&ctx);
    if (check_insn_exit(EXIT_IO, PG_OWN + OFF(ur_own_out, ur_own), 2)) {
        check_seg("CS", UR_CS, 0x08, 0, 0xFFFFFFFF, AR_CODE32);
        CHECK(vmcs_read(GUEST_CR0) == newcr0, " GUEST_CR0 0x%lx, want 0x%lx", vmcs_read(GUEST_CR0), newcr0);
        uint32_t seen = rd32(UR_DATA + 0x60);
        uint32_t want = (uint32_t)((newcr0 & ~mask) | ((uint32_t)val & mask));
        CHECK(seen == want, " guest MOV from CR0 0x%x, want 0x%x", seen, want);
        vmx_skip_and_enter(&ctx);
        check_insn_exit(EXIT_HLT, PG_OWN + OFF(ur_own_hlt, ur_own), 1);
    }
    report_checks("cr0_mask_pe_host_emulates_and_resumes");
}

/* ---- 5. Without "unrestricted guest" --------------------------------------------------------- */

static void test_no_unrestricted(void)
{
    struct ur_opts o = {.no_unrestricted = true};
    /* CR0.PE = 0: IA32_VMX_CR0_FIXED0 requires PE (and PG), §27.3.1.1. */
    ur_setup(G_RM, ur_rm, UR_REAL, &o);
    vmx_enter(&ctx);
    check_entry_fail_33();
    CHECK(vmcs_read(GUEST_RIP) == 0, " GUEST_RIP changed: 0x%lx", vmcs_read(GUEST_RIP));
    report_checks("no_unrestricted_real_mode_entry_fails");

    /* CR0.PE = 1 with PG = 0 (32-bit protected mode without paging): PG is still required. */
    ur_setup(G_PM, ur_pm, UR_PM32, &o);
    vmcs_write(GUEST_GDTR_BASE, PG_PM + OFF(ur_pm_gdt, ur_pm));
    vmcs_write(GUEST_GDTR_LIMIT, 23);
    vmx_enter(&ctx);
    check_entry_fail_33();
    report_checks("no_unrestricted_pe_without_pg_entry_fails");

    /*
     * Control: the same VMCS with CR0.PE = PG = 1 over the host's paging (an
     * identity map: the 32-bit code runs as IA-32e compatibility mode)
     * enters, so CR0 was the failing check.
     */
    vmcs_write(GUEST_CR0, read_cr0());
    vmcs_write(GUEST_CR3, read_cr3());
    vmcs_write(GUEST_CR4, read_cr4());
    ctx.entry_ctl |= (uint32_t)ENTRY_IA32E;
    vmcs_write(VM_ENTRY_CONTROLS, ctx.entry_ctl);
    vmx_enter(&ctx);
    CHECK(ctx.vmfail == VMSUCCEED && !(ctx.exit_reason & EXIT_REASON_FAILED_ENTRY),
          " the entry should succeed, got %s", vmx_exit_str(&ctx));
    report_checks("no_unrestricted_same_state_with_pe_pg_enters");

    /* "Unrestricted guest" without "enable EPT": VMfailValid 7 (§27.2.1.1). */
    struct ur_opts o2 = {.no_ept = true};
    ur_setup(G_RM, ur_rm, UR_REAL, &o2);
    vmx_enter(&ctx);
    CHECK(ctx.vmfail == VMFAIL_VALID && ctx.insn_error == VMXERR_ENTRY_BAD_CONTROL, " want VMfailValid 7, got %s",
          vmx_exit_str(&ctx));
    report_checks("unrestricted_without_ept_vmfail");
}

/* ---- 5b. Task switches: never in non-root operation (SDM Vol. 3C §26.4.2) ---------------- */

/* The PG_TASK guest entered at entry, with its GDT, IDT and TSS (TR 18H, link field 38H). */
static void task_setup(const uint8_t *entry, uint32_t exc_bitmap)
{
    struct ur_opts o = {.exc_bitmap = exc_bitmap};
    ur_setup(G_TASK, entry, UR_PM32, &o);
    vmcs_write(GUEST_GDTR_BASE, PG_TASK + OFF(ur_task_gdt, ur_task));
    vmcs_write(GUEST_GDTR_LIMIT, 0x3F);
    vmcs_write(GUEST_IDTR_BASE, PG_TASK + OFF(ur_task_idt, ur_task));
    vmcs_write(GUEST_IDTR_LIMIT, 0x41 * 8 - 1);
    set_seg(UR_TR, 0x18, TASK_TSS_CUR, 0x67, AR_TSS32_BUSY);
    *(volatile uint16_t *)(uintptr_t)TASK_TSS_CUR = 0x38; /* previous-task link */
}

/* Exit qualification for task switches (Table 28-2): TSS selector, source in bits 31:30. */
#define TASK_QUAL(sel, src) ((uint64_t)(sel) | (uint64_t)(src) << 30)
enum { TASK_CALL = 0, TASK_IRET = 1, TASK_JMP = 2, TASK_GATE = 3 };

static bool check_task_exit(const uint8_t *insn, uint32_t len, uint64_t qual)
{
    if (!check_insn_exit(EXIT_TASK_SWITCH, PG_TASK + OFF(insn, ur_task), len))
        return false;
    CHECK(ctx.exit_qual == qual, " qualification 0x%lx, want 0x%lx", ctx.exit_qual, qual);
    /* Nothing of the switch happened: still the old task. */
    CHECK(vmcs_read(GUEST_TR_SELECTOR) == 0x18, " TR 0x%lx", vmcs_read(GUEST_TR_SELECTOR));
    uint32_t hi20 = rd32(PG_TASK + OFF(ur_task_gdt, ur_task) + 0x20 + 4);
    CHECK(((hi20 >> 8) & 0xF) == 0x9, " the new TSS was marked busy (type 0x%x)", (hi20 >> 8) & 0xF);
    return true;
}

/* The attempt at entry faults (vector, error code) before any task switch: an exception exit. */
static void task_fault(const uint8_t *entry, unsigned vector, uint32_t error)
{
    task_setup(entry, (uint32_t)BIT(vector));
    vmx_enter(&ctx);
    if (check_reason(EXIT_EXCEPTION_NMI))
        CHECK(INTR_INFO_VECTOR(ctx.intr_info) == vector && ctx.intr_error == error,
              " interruption information 0x%x error code 0x%x, want vector %u error 0x%x", ctx.intr_info,
              ctx.intr_error, vector, error);
}

static void test_task_switch(void)
{
    task_setup(ur_task_jmp, 0);
    vmx_enter(&ctx);
    if (check_task_exit(ur_task_jmp, 7, TASK_QUAL(0x20, TASK_JMP)))
        CHECK(!(ctx.idt_vec_info & INTR_INFO_VALID), " IDT-vectoring information 0x%x", ctx.idt_vec_info);
    report_checks("task_switch_jmp_tss");

    /* Through a task gate the qualification names the TSS, not the gate. */
    task_setup(ur_task_call, 0);
    vmx_enter(&ctx);
    check_task_exit(ur_task_call, 7, TASK_QUAL(0x20, TASK_CALL));
    report_checks("task_switch_call_task_gate");

    task_setup(ur_task_iret, 0);
    vmx_enter(&ctx);
    if (check_task_exit(ur_task_iret_insn, 1, TASK_QUAL(0x38, TASK_IRET)))
        CHECK(ctx.guest_rflags & BIT(14), " GUEST_RFLAGS 0x%lx: NT clear", ctx.guest_rflags);
    report_checks("task_switch_iret_nt");

    /* INT n through a task gate: the event is in the IDT-vectoring information (§28.2.4). */
    task_setup(ur_task_int, 0);
    vmx_enter(&ctx);
    if (check_task_exit(ur_task_int, 2, TASK_QUAL(0x20, TASK_GATE)))
        CHECK(ctx.idt_vec_info == INTR_INFO(0x40, INTR_TYPE_SOFT_INTR, false), " IDT-vectoring information 0x%x",
              ctx.idt_vec_info);
    report_checks("task_switch_int_task_gate");

    task_setup(ur_task_ud, 0);
    vmx_enter(&ctx);
    if (check_reason(EXIT_TASK_SWITCH)) {
        CHECK(ctx.exit_qual == TASK_QUAL(0x20, TASK_GATE), " qualification 0x%lx", ctx.exit_qual);
        CHECK(ctx.guest_rip == PG_TASK + OFF(ur_task_ud, ur_task), " GUEST_RIP 0x%lx", ctx.guest_rip);
        CHECK(ctx.idt_vec_info == INTR_INFO(UD_VECTOR, INTR_TYPE_HW_EXC, false), " IDT-vectoring information 0x%x",
              ctx.idt_vec_info);
    }
    report_checks("task_switch_exception_task_gate");

    /* The checks before the switch come first: a busy TSS is #GP(selector), a short one #TS(selector). */
    task_fault(ur_task_busy, GP_VECTOR, 0x38);
    report_checks("task_switch_busy_tss_gp");
    task_fault(ur_task_small, TS_VECTOR, 0x30);
    report_checks("task_switch_small_tss_ts");
}

/* ---- 6. The host replaces a guest's code ------------------------------------------------------ */

/*
 * A hypervisor loads a new real-mode image into a page the guest ran before
 * (a second boot stage, a new option ROM): the next VM entry must run the
 * new code (SDM Vol. 3A "Self-Modifying Code": a write to a code location
 * invalidates what the processor cached of it). Both versions are entered at offset 16 (the
 * page is first filled with HLT, so the first byte written is offset 0).
 */
static void test_host_rewrites_code(void)
{
    ur_setup(GUEST(ur_smc1, PG_SMC), ur_smc1 + 16, UR_REAL, NULL);
    vmx_enter(&ctx);
    if (check_insn_exit(EXIT_HLT, 19, 1))
        CHECK((uint16_t)ctx.regs[R_RAX] == 0x1111, " first version: AX 0x%lx", ctx.regs[R_RAX] & 0xFFFF);
    ur_setup(GUEST(ur_smc2, PG_SMC), ur_smc2 + 16, UR_REAL, NULL);
    CHECK(rd16(PG_SMC + 17) == 0x2222, " the host's copy did not land: 0x%x", rd16(PG_SMC + 17));
    vmx_enter(&ctx);
    if (check_insn_exit(EXIT_HLT, 19, 1))
        CHECK((uint16_t)ctx.regs[R_RAX] == 0x2222, " the guest ran its old code: AX 0x%lx, want 0x2222",
              ctx.regs[R_RAX] & 0xFFFF);
    report_checks(STALE_CODE);
}

/*
 * A CPU without the control (IA32_VMX_PROCBASED_CTLS2[39] = 0): a real-mode
 * guest cannot be entered, and setting the control anyway is a reserved
 * control bit: VMfailValid 7 (§27.2.1.1).
 */
static void test_no_unrestricted_capability(void)
{
    struct ur_opts o = {.no_unrestricted = true};
    ur_setup(G_RM, ur_rm, UR_REAL, &o);
    vmx_enter(&ctx);
    check_entry_fail_33();
    report_checks("no_unrestricted_real_mode_entry_fails");

    ur_setup(G_RM, ur_rm, UR_REAL, &o);
    vmcs_write(SECONDARY_VM_EXEC_CONTROL, ctx.proc2 | (uint32_t)CPU2_UNRESTRICTED);
    vmx_enter(&ctx);
    CHECK(ctx.vmfail == VMFAIL_VALID && ctx.insn_error == VMXERR_ENTRY_BAD_CONTROL, " want VMfailValid 7, got %s",
          vmx_exit_str(&ctx));
    report_checks("unrestricted_control_not_allowed_vmfail");
}

void hv_test_main(void)
{
    if (!vmx_enable())
        return;
    uint64_t p2 = rdmsr(MSR_IA32_VMX_PROCBASED_CTLS2) >> 32;
    if (!(p2 & CPU2_EPT)) {
        report_skip("unrestricted", "no enable-EPT control");
        return;
    }
    cr0_fixed0 = rdmsr(MSR_IA32_VMX_CR0_FIXED0);
    cr0_fixed1 = rdmsr(MSR_IA32_VMX_CR0_FIXED1);
    cr4_fixed0 = rdmsr(MSR_IA32_VMX_CR4_FIXED0);
    has_timer = vmx_ctl_allowed1(ctl_msr(MSR_IA32_VMX_PINBASED_CTLS), (uint32_t)PIN_PREEMPTION_TIMER);
    ept_map_init(&ept, (hv_ram_size + 0x1FFFFF) & ~0x1FFFFFull);
    adv_info = ept.caps & EPT_CAP_ADV_EXIT_INFO;
    report_info("CR0_FIXED0 0x%lx CR0_FIXED1 0x%lx CR4_FIXED0 0x%lx; real-mode CR0 0x%lx; EPTP 0x%lx, "
                "advanced EPT exit information %d",
                cr0_fixed0, cr0_fixed1, cr4_fixed0, real_cr0(), ept.eptp, adv_info);
    if (!(p2 & CPU2_UNRESTRICTED)) {
        report_info("no unrestricted-guest control");
        test_no_unrestricted_capability();
        return;
    }

    test_real_mode_basic();
    test_real_mode_tr16();
    test_real_mode_cs_type3();
    test_real_mode_efer();
    test_real_mode_int_n();
    test_real_mode_gp_exit();
    test_real_mode_fault_loop_timer();
    test_real_mode_inject();
    test_real_mode_inject_errcode();
    test_real_mode_ss_dpl3();
    test_real_mode_ept_violations();
    test_pm32_nopaging();
    test_task_switch();
    test_mode_switch();
    test_back_to_real_mode();
    test_cr0_mask_pe();
    test_no_unrestricted();
    test_host_rewrites_code();
}
