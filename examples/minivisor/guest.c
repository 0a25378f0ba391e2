/*
 * The guest: 64-bit code in the minivisor image that runs in VMX non-root
 * operation, on its own stack and page tables, at guest-physical addresses
 * that EPT maps 1:1 onto the image. It shares the image's code and read-only
 * data with the host; it writes only its stack, the A/D bits of its page
 * tables and the EPT hole.
 *
 * Every "sensitive" step below is a VM exit the minivisor handles:
 *   OUT to COM1    I/O bitmap  -> the byte is printed on the real console
 *   CPUID          always exits in VMX non-root operation
 *   VMCALL         always exits: hypercall 1 with an argument in RBX
 *   write 0x20000000  EPT violation: the hole is mapped, the write redone
 *   HLT            "HLT exiting" -> the minivisor prints its summary
 * (bench mode: CPUID N times; touch mode: N pages touched R times, no exits.)
 */
#include "minivisor.h"

#define GUEST_COM1 0x3F8
#define GUEST_EPT_HOLE UINT64_C(0x20000000)

static inline void guest_outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

/* The virtual UART is always ready: no need to poll LSR (which would exit too). */
static void guest_puts(const char *s)
{
    while (*s)
        guest_outb(GUEST_COM1, (uint8_t)*s++);
}

static inline void guest_cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static inline uint64_t guest_vmcall(uint64_t nr, uint64_t arg)
{
    uint64_t ret;

    __asm__ volatile("vmcall" : "=a"(ret) : "a"(nr), "b"(arg) : "memory");
    return ret;
}

static inline void guest_hlt(void)
{
    __asm__ volatile("hlt" : : : "memory");
}

/*
 * Touch mode: ADD 1 to the first quadword of each of n consecutive 4 KiB
 * pages (a read and a write), rounds times. The same four instructions per
 * page as bench/pagetouch.S, which runs the loop without VMX.
 */
static void guest_touch(uint64_t n, uint64_t rounds)
{
    __asm__ volatile("1: mov %[base], %%rsi\n\t"
                     "mov %[n], %%rcx\n\t"
                     "2: addq $1, (%%rsi)\n\t"
                     "add $4096, %%rsi\n\t"
                     "dec %%rcx\n\t"
                     "jnz 2b\n\t"
                     "dec %[r]\n\t"
                     "jnz 1b"
                     : [r] "+r"(rounds)
                     : [base] "r"(TOUCH_GPA), [n] "r"(n)
                     : "rcx", "rsi", "memory", "cc");
}

void guest_main(uint64_t n, uint64_t mode, uint64_t rounds)
{
    uint32_t a, b, c, d;

    if (mode == GUEST_MODE_CPUID_BENCH) {
        for (uint64_t i = 0; i < n; i++)
            guest_cpuid(0, &a, &b, &c, &d);
        guest_hlt();
        return;
    }
    if (mode == GUEST_MODE_TOUCH) {
        guest_touch(n, rounds);
        guest_hlt();
        return;
    }

    guest_puts("hello from the guest\n");
    guest_cpuid(0, &a, &b, &c, &d);
    if (guest_vmcall(GUEST_HYPERCALL_HELLO, GUEST_HYPERCALL_ARG) != 0)
        guest_puts("hypercall 1 failed\n");
    /* One store into the EPT hole: exits once, then completes after the minivisor maps it. */
    __asm__ volatile("movq %0, (%1)" : : "r"(GUEST_EPT_MAGIC), "r"(GUEST_EPT_HOLE) : "memory");
    guest_hlt();
}
