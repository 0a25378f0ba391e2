/*
 * x86 architectural constants and one-instruction helpers the minivisor
 * uses in VMX root operation (and a few the guest uses in non-root
 * operation). Names follow Linux (arch/x86/include/asm/msr-index.h,
 * uapi/asm/processor-flags.h); values are from the Intel SDM.
 */
#ifndef MINIVISOR_X86_H
#define MINIVISOR_X86_H

#include <stdbool.h>
#include <stdint.h>

/* CR0 — SDM Vol. 3A §2.5 */
#define X86_CR0_PE (UINT64_C(1) << 0)
#define X86_CR0_MP (UINT64_C(1) << 1)
#define X86_CR0_ET (UINT64_C(1) << 4)
#define X86_CR0_NE (UINT64_C(1) << 5)
#define X86_CR0_WP (UINT64_C(1) << 16)
#define X86_CR0_PG (UINT64_C(1) << 31)

/* CR4 — SDM Vol. 3A §2.5 */
#define X86_CR4_PAE (UINT64_C(1) << 5)
#define X86_CR4_VMXE (UINT64_C(1) << 13)
#define X86_CR4_OSXSAVE (UINT64_C(1) << 18)

/* IA32_EFER — SDM Vol. 3A §2.2.1 */
#define EFER_LME (UINT64_C(1) << 8)
#define EFER_LMA (UINT64_C(1) << 10)

/* RFLAGS: bit 1 is reserved and always 1 */
#define X86_EFLAGS_FIXED (UINT64_C(1) << 1)
#define X86_EFLAGS_CF (UINT64_C(1) << 0)
#define X86_EFLAGS_ZF (UINT64_C(1) << 6)

/* CPUID.01H:ECX[5] — VMX (SDM Vol. 3C §24.6); [27] OSXSAVE mirrors CR4.OSXSAVE */
#define CPUID_1_ECX_VMX (1u << 5)
#define CPUID_1_ECX_OSXSAVE (1u << 27)

/* MSRs — SDM Vol. 4, Table 2-2 */
#define MSR_IA32_FEAT_CTL 0x0000003a
#define FEAT_CTL_LOCKED (UINT64_C(1) << 0)
#define FEAT_CTL_VMX_ENABLED_INSIDE_SMX (UINT64_C(1) << 1)
#define FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX (UINT64_C(1) << 2)
#define MSR_IA32_SYSENTER_CS 0x00000174
#define MSR_IA32_SYSENTER_ESP 0x00000175
#define MSR_IA32_SYSENTER_EIP 0x00000176
#define MSR_IA32_CR_PAT 0x00000277
#define MSR_EFER 0xc0000080
#define MSR_FS_BASE 0xc0000100
#define MSR_GS_BASE 0xc0000101

/* The power-on value of IA32_PAT (SDM Vol. 3A "IA32_PAT MSR"): WB WT UC- UC, twice. */
#define PAT_POWER_ON_VALUE UINT64_C(0x0007040600070406)

/* Exceptions that push an error code (SDM Vol. 3A Table 6-1). */
#define X86_EXC_HAS_ERROR_CODE_MASK                                                         \
    ((1u << 8) | (1u << 10) | (1u << 11) | (1u << 12) | (1u << 13) | (1u << 14) | (1u << 17) | \
     (1u << 21) | (1u << 29) | (1u << 30))

/* GDTR/IDTR image stored by SGDT/SIDT in 64-bit mode. */
struct desc_ptr {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t val)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)val), "d"((uint32_t)(val >> 32))
                     : "memory");
}

static inline void cpuid_count(uint32_t leaf, uint32_t subleaf, uint32_t *a, uint32_t *b,
                               uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(subleaf));
}

static inline uint64_t read_cr0(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}

static inline uint64_t read_cr3(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}

static inline uint64_t read_cr4(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr4, %0" : "=r"(v));
    return v;
}

static inline void write_cr0(uint64_t v)
{
    __asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory");
}

static inline void write_cr4(uint64_t v)
{
    __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory");
}

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline void sgdt(struct desc_ptr *p)
{
    __asm__ volatile("sgdt %0" : "=m"(*p));
}

static inline void sidt(struct desc_ptr *p)
{
    __asm__ volatile("sidt %0" : "=m"(*p));
}

static inline void lidt(const struct desc_ptr *p)
{
    __asm__ volatile("lidt %0" : : "m"(*p) : "memory");
}

static inline uint16_t str(void)
{
    uint16_t sel;
    __asm__ volatile("str %0" : "=r"(sel));
    return sel;
}

/* Segment selectors: "mov %sreg, r16" reads the visible selector. */
#define READ_SEG(seg)                                            \
    ({                                                           \
        uint16_t sel_;                                           \
        __asm__ volatile("mov %%" #seg ", %0" : "=r"(sel_));     \
        sel_;                                                    \
    })

static inline _Noreturn void halt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt");
}
#endif
