/*
 * The 64-bit IDT shared by the host and (by default) every guest: 256
 * interrupt gates to the stubs in entry.S. hv_exception() records the
 * event in exc_last and then
 *   - resumes at exc_resume_rip if armed (hv_try, ASM_TRY),
 *   - returns to the interrupted RIP for vectors >= 32 or if exc_return_ok,
 *   - in a guest: reports the crash to the host with VMCALL (HV_GUEST_CRASH),
 *   - in the host: prints the frame and exits with status 1.
 */
#include "hv.h"

struct exc_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
    uint64_t vector, error_code, rip, cs, rflags, rsp, ss;
};

uint8_t hv_idt[256 * 16] __aligned(16);
volatile struct exc_info exc_last = {.vector = -1};
volatile uint64_t exc_resume_rip;
volatile bool exc_return_ok;
volatile bool hv_in_guest; /* set by hv_vmenter while a guest may run */

extern char hv_exc_stubs[], hv_exc_stubs_end[];

void idt_set_gate(uint8_t vector, void *handler)
{
    uint64_t off = (uint64_t)(uintptr_t)handler;
    uint8_t *g = &hv_idt[vector * 16];
    uint16_t sel = 0x08, attr = 0x8E00; /* present, DPL 0, 64-bit interrupt gate */
    uint16_t lo = (uint16_t)off, mid = (uint16_t)(off >> 16);
    uint32_t hi = (uint32_t)(off >> 32), zero = 0;
    memcpy(g + 0, &lo, 2);
    memcpy(g + 2, &sel, 2);
    memcpy(g + 4, &attr, 2);
    memcpy(g + 6, &mid, 2);
    memcpy(g + 8, &hi, 4);
    memcpy(g + 12, &zero, 4);
}

void idt_install(void)
{
    if (hv_exc_stubs_end - hv_exc_stubs != 256 * 16) {
        puts_serial("hv: exception stubs are not 16 bytes apart\n");
        hv_exit(1);
    }
    for (int v = 0; v < 256; v++)
        idt_set_gate((uint8_t)v, hv_exc_stubs + 16 * v);
    struct dtr d = {.limit = sizeof hv_idt - 1, .base = (uint64_t)(uintptr_t)hv_idt};
    lidt(&d);
}

void exc_clear(void)
{
    exc_last.vector = -1;
    exc_last.error_code = 0;
    exc_last.cr2 = 0;
    exc_last.rip = 0;
    exc_last.rflags = 0;
    exc_last.rsp = 0;
    exc_last.count = 0;
}

void hv_exception(struct exc_frame *f)
{
    exc_last.vector = (int)f->vector;
    exc_last.error_code = f->error_code;
    exc_last.cr2 = f->vector == PF_VECTOR ? read_cr2() : 0;
    exc_last.rip = f->rip;
    exc_last.rflags = f->rflags;
    exc_last.rsp = f->rsp;
    exc_last.count++;
    if (exc_resume_rip) {
        f->rip = exc_resume_rip;
        exc_resume_rip = 0;
        return;
    }
    if (f->vector >= 32 || exc_return_ok)
        return;
    if (hv_in_guest) {
        /* Tell the host; it reports the sub-test as failed and does not resume us. */
        asm volatile("vmcall" : : "a"(HV_GUEST_CRASH), "b"(f->vector), "c"(f->rip), "d"(f->error_code)
                     : "memory");
        for (;;)
            asm volatile("ud2");
    }
    printf("hv: unexpected exception %lu error 0x%lx at rip 0x%lx (cr2 0x%lx)\n", f->vector, f->error_code,
           f->rip, read_cr2());
    printf("FAIL unexpected_exception (vector %lu at 0x%lx)\n", f->vector, f->rip);
    hv_exit(1);
}

int mov_cr4_try(uint64_t v)
{
    exc_clear();
    asm volatile(ASM_TRY "mov %0, %%cr4\n\t" ASM_TRY_END : : "r"(v) : "memory");
    return exc_last.vector;
}

int rdmsr_try(uint32_t idx, uint64_t *val)
{
    uint32_t lo = 0, hi = 0;
    exc_clear();
    asm volatile(ASM_TRY "rdmsr\n\t" ASM_TRY_END : "=a"(lo), "=d"(hi) : "c"(idx) : "memory");
    *val = (uint64_t)hi << 32 | lo;
    return exc_last.vector;
}

int wrmsr_try(uint32_t idx, uint64_t v)
{
    exc_clear();
    asm volatile(ASM_TRY "wrmsr\n\t" ASM_TRY_END : : "c"(idx), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
                 : "memory");
    return exc_last.vector;
}
