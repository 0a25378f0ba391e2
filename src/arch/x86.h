/*
 * Architectural constants shared by every unit: control-register, EFER and
 * RFLAGS bits, exception vectors, segment state and the fault value type.
 * Names follow Linux (arch/x86/include/asm/processor-flags.h, msr-index.h).
 * One commented mask per line; SDM Vol. 3A chapter 2 unless noted.
 */
#ifndef VMXSIM_ARCH_X86_H
#define VMXSIM_ARCH_X86_H

#include <stdbool.h>
#include <stdint.h>

#define BIT64(n) (1ULL << (n))
#define GENMASK64(hi, lo) ((~0ULL >> (63 - (hi))) & (~0ULL << (lo)))

/* CR0 — SDM Vol. 3A §2.5 */
#define X86_CR0_PE BIT64(0)  /* protection enable */
#define X86_CR0_MP BIT64(1)  /* monitor coprocessor */
#define X86_CR0_EM BIT64(2)  /* emulation */
#define X86_CR0_TS BIT64(3)  /* task switched */
#define X86_CR0_ET BIT64(4)  /* extension type (fixed 1) */
#define X86_CR0_NE BIT64(5)  /* numeric error */
#define X86_CR0_WP BIT64(16) /* write protect */
#define X86_CR0_AM BIT64(18) /* alignment mask */
#define X86_CR0_NW BIT64(29) /* not write-through */
#define X86_CR0_CD BIT64(30) /* cache disable */
#define X86_CR0_PG BIT64(31) /* paging */
/* bits 63:32 must be zero; bits 28:19, 17, 15:6 are reserved (ignored on write) */
#define X86_CR0_RESERVED_63_32 GENMASK64(63, 32)

/* CR3 — SDM Vol. 3A §4.5 */
#define X86_CR3_PCD BIT64(4)
#define X86_CR3_PWT BIT64(3)
#define X86_CR3_PCID_MASK GENMASK64(11, 0)
#define X86_CR3_PCID_NOFLUSH BIT64(63) /* MOV to CR3 with CR4.PCIDE: keep TLB */
#define X86_CR3_LAM_U57 BIT64(61)
#define X86_CR3_LAM_U48 BIT64(62)

/* CR4 — SDM Vol. 3A §2.5 */
#define X86_CR4_VME BIT64(0)         /* virtual-8086 mode extensions */
#define X86_CR4_PVI BIT64(1)         /* protected-mode virtual interrupts */
#define X86_CR4_TSD BIT64(2)         /* time stamp disable */
#define X86_CR4_DE BIT64(3)          /* debugging extensions */
#define X86_CR4_PSE BIT64(4)         /* page size extensions */
#define X86_CR4_PAE BIT64(5)         /* physical address extension */
#define X86_CR4_MCE BIT64(6)         /* machine-check enable */
#define X86_CR4_PGE BIT64(7)         /* page global enable */
#define X86_CR4_PCE BIT64(8)         /* performance-counter enable */
#define X86_CR4_OSFXSR BIT64(9)      /* FXSAVE/FXRSTOR support */
#define X86_CR4_OSXMMEXCPT BIT64(10) /* unmasked SIMD FP exceptions */
#define X86_CR4_UMIP BIT64(11)       /* user-mode instruction prevention */
#define X86_CR4_LA57 BIT64(12)       /* 57-bit linear addresses */
#define X86_CR4_VMXE BIT64(13)       /* VMX enable */
#define X86_CR4_SMXE BIT64(14)       /* SMX enable */
#define X86_CR4_FSGSBASE BIT64(16)   /* RDFSBASE etc. */
#define X86_CR4_PCIDE BIT64(17)      /* PCID enable */
#define X86_CR4_OSXSAVE BIT64(18)    /* XSAVE enable */
#define X86_CR4_KL BIT64(19)         /* key locker */
#define X86_CR4_SMEP BIT64(20)       /* supervisor-mode execution prevention */
#define X86_CR4_SMAP BIT64(21)       /* supervisor-mode access prevention */
#define X86_CR4_PKE BIT64(22)        /* protection keys for user pages */
#define X86_CR4_CET BIT64(23)        /* control-flow enforcement */
#define X86_CR4_PKS BIT64(24)        /* protection keys for supervisor pages */
#define X86_CR4_UINTR BIT64(25)      /* user interrupts */
#define X86_CR4_LAM_SUP BIT64(28)    /* linear-address masking, supervisor */

/* EFER (MSR 0xC0000080) — SDM Vol. 3A §2.2.1 */
#define X86_EFER_SCE BIT64(0)    /* SYSCALL enable */
#define X86_EFER_LME BIT64(8)    /* long mode enable */
#define X86_EFER_LMA BIT64(10)   /* long mode active (read-only) */
#define X86_EFER_NXE BIT64(11)   /* execute-disable enable */
#define X86_EFER_SVME BIT64(12)  /* AMD only: reserved on Intel */
#define X86_EFER_FFXSR BIT64(14) /* AMD only: reserved on Intel */

/* RFLAGS — SDM Vol. 1 §3.4.3 */
#define X86_RFLAGS_CF BIT64(0)
#define X86_RFLAGS_FIXED BIT64(1) /* always 1 */
#define X86_RFLAGS_PF BIT64(2)
#define X86_RFLAGS_AF BIT64(4)
#define X86_RFLAGS_ZF BIT64(6)
#define X86_RFLAGS_SF BIT64(7)
#define X86_RFLAGS_TF BIT64(8)
#define X86_RFLAGS_IF BIT64(9)
#define X86_RFLAGS_DF BIT64(10)
#define X86_RFLAGS_OF BIT64(11)
#define X86_RFLAGS_IOPL GENMASK64(13, 12)
#define X86_RFLAGS_NT BIT64(14)
#define X86_RFLAGS_RF BIT64(16)
#define X86_RFLAGS_VM BIT64(17)
#define X86_RFLAGS_AC BIT64(18)
#define X86_RFLAGS_VIF BIT64(19)
#define X86_RFLAGS_VIP BIT64(20)
#define X86_RFLAGS_ID BIT64(21)

/* Exception vectors — SDM Vol. 3A §6.3.1, Table 6-1 */
enum x86_vector {
    X86_DE = 0,   /* divide error */
    X86_DB = 1,   /* debug */
    X86_NMI = 2,  /* non-maskable interrupt */
    X86_BP = 3,   /* breakpoint (INT3) */
    X86_OF = 4,   /* overflow (INTO) */
    X86_BR = 5,   /* BOUND range exceeded */
    X86_UD = 6,   /* invalid opcode */
    X86_NM = 7,   /* device not available */
    X86_DF = 8,   /* double fault (error code 0) */
    X86_TS = 10,  /* invalid TSS */
    X86_NP = 11,  /* segment not present */
    X86_SS = 12,  /* stack-segment fault */
    X86_GP = 13,  /* general protection */
    X86_PF = 14,  /* page fault */
    X86_MF = 16,  /* x87 FP error */
    X86_AC = 17,  /* alignment check (error code 0) */
    X86_MC = 18,  /* machine check */
    X86_XM = 19,  /* SIMD FP exception */
    X86_VE = 20,  /* virtualization exception */
    X86_CP = 21,  /* control protection */
};

/* #PF error code — SDM Vol. 3A §4.7 */
#define X86_PF_P BIT64(0)     /* protection violation (vs not present) */
#define X86_PF_W BIT64(1)     /* write access */
#define X86_PF_U BIT64(2)     /* user-mode access */
#define X86_PF_RSVD BIT64(3)  /* reserved bit set in a paging-structure entry */
#define X86_PF_I BIT64(4)     /* instruction fetch */
#define X86_PF_PK BIT64(5)    /* protection-key violation */
#define X86_PF_SS BIT64(6)    /* shadow-stack access */
#define X86_PF_SGX BIT64(15)  /* SGX-specific */

/*
 * A fault is a value (STYLE 5): returned up the chain, delivered by the CPU
 * core through the IDT or turned into a VM exit by the VMX unit.
 */
struct x86_fault {
    uint8_t vector;      /* enum x86_vector */
    bool has_error;      /* pushes an error code */
    uint32_t error_code; /* valid when has_error */
    uint64_t cr2;        /* faulting linear address for #PF */
};

/* Segment registers in the SDM/VMCS order (ES=0 … GS=5, then LDTR, TR). */
enum x86_seg {
    X86_SEG_ES = 0,
    X86_SEG_CS = 1,
    X86_SEG_SS = 2,
    X86_SEG_DS = 3,
    X86_SEG_FS = 4,
    X86_SEG_GS = 5,
    X86_SEG_LDTR = 6,
    X86_SEG_TR = 7,
    X86_SEG_COUNT = 8
};

/*
 * Segment access rights in the VMCS format (SDM Vol. 3C §25.4.1, Table 25-2):
 * bits 3:0 type, 4 S, 6:5 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G, 16 unusable.
 * These are descriptor bits 40:55 shifted down by 40 with bits 11:8 zero.
 */
#define X86_AR_TYPE_MASK 0xFu
#define X86_AR_TYPE_ACCESSED 0x1u /* data/code: accessed */
#define X86_AR_TYPE_WRITABLE 0x2u /* data: writable; code: readable */
#define X86_AR_TYPE_CODE 0x8u     /* code segment (S=1) */
#define X86_AR_S (1u << 4)        /* code/data (vs system) */
#define X86_AR_DPL_SHIFT 5
#define X86_AR_DPL_MASK (3u << 5)
#define X86_AR_P (1u << 7)        /* present */
#define X86_AR_AVL (1u << 12)
#define X86_AR_L (1u << 13)       /* 64-bit code segment */
#define X86_AR_DB (1u << 14)      /* default operation size */
#define X86_AR_G (1u << 15)       /* granularity */
#define X86_AR_UNUSABLE (1u << 16)

/* System-segment and gate types (S=0) — SDM Vol. 3A Table 3-2 */
#define X86_SYS_LDT 0x2u
#define X86_SYS_TSS16_AVAIL 0x1u
#define X86_SYS_TSS_AVAIL 0x9u /* 32-bit TSS or 64-bit TSS in long mode */
#define X86_SYS_TSS_BUSY 0xBu
#define X86_SYS_CALL_GATE 0xCu
#define X86_SYS_INTR_GATE 0xEu
#define X86_SYS_TRAP_GATE 0xFu
#define X86_SYS_TASK_GATE 0x5u

struct x86_seg_state {
    uint16_t selector;
    uint64_t base;
    uint32_t limit; /* byte granular (already scaled by G) */
    uint32_t ar;    /* VMCS access-rights format */
};

struct x86_dtable {
    uint64_t base;
    uint16_t limit;
};

/* Selector fields — SDM Vol. 3A §3.4.2 */
#define X86_SEL_RPL(s) ((s) & 3u)
#define X86_SEL_TI(s) (((s) >> 2) & 1u)
#define X86_SEL_INDEX(s) ((s) >> 3)

static inline uint32_t x86_ar_dpl(uint32_t ar) { return (ar >> X86_AR_DPL_SHIFT) & 3u; }

/* Canonical for a given linear-address width (48 or 57) — SDM Vol. 3A §3.3.7.1 */
static inline bool x86_is_canonical(uint64_t la, unsigned width)
{
    int64_t s = (int64_t)(la << (64 - width)) >> (64 - width);
    return (uint64_t)s == la;
}

#endif
