/*
 * minivisor: a small VMX hypervisor for real VT-x hardware (and vmxsim).
 * Declarations shared by its C files; the layout of struct regs is also
 * known to entry.S.
 */
#ifndef MINIVISOR_H
#define MINIVISOR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGE_SIZE UINT64_C(4096)
#define SIZE_2M UINT64_C(0x200000)
#define SIZE_1G UINT64_C(0x40000000)

/*
 * Exit values written to the debug-exit port 0xF4 (vmxsim: exit status
 * (value << 1) | 1; on real hardware nothing listens and the CPU halts).
 */
#define EXIT_OK 0x00             /* guest halted, or bench done */
#define EXIT_SETUP_FAILED 0x10   /* no VMX, VMX instruction failed during setup */
#define EXIT_VMENTRY_INSN 0x11   /* VMLAUNCH/VMRESUME failed (VMfailInvalid/VMfailValid) */
#define EXIT_VMENTRY_FAILED 0x12 /* VM exit with reason bit 31: VM-entry failure */
#define EXIT_UNEXPECTED 0x13     /* unexpected VM exit, guest or host exception */

/*
 * The guest's general-purpose registers, saved by the exit stub (entry.S)
 * on the host stack. Slot i holds register number i in the x86 encoding;
 * slot 4 (RSP) is unused: the guest RSP lives in the VMCS (GUEST_RSP).
 */
struct regs {
    uint64_t rax, rcx, rdx, rbx, rsp_unused, rbp, rsi, rdi;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
};
_Static_assert(sizeof(struct regs) == 16 * 8, "struct regs is 16 slots (entry.S)");

/* The boot information of vmxsim's 64-bit entry (README "Boot contract"). */
#define BOOT_INFO_MAGIC 0x53584D56u /* "VMXS" */
struct boot_info {
    uint32_t magic;
    uint32_t version;
    uint64_t mem_size;
    uint64_t cmdline;     /* physical address of a NUL-terminated string */
    uint64_t cmdline_len;
    uint64_t mods_count;
    uint64_t mods_addr;
};

struct config {
    uint64_t mem_size;   /* RAM in bytes, from RDI at entry */
    const char *cmdline; /* never NULL */
    bool bench;          /* "bench=N" on the command line */
    uint64_t bench_n;
    bool touch;          /* "touch=N": the guest touches N 4-KiB pages ... */
    uint64_t touch_n;
    uint64_t touch_rounds; /* ... R times ("touch_rounds=R", default TOUCH_ROUNDS_DEFAULT) */
};
extern struct config cfg;

/* The host runs on the identity map it was booted with: virtual == physical. */
static inline uint64_t virt_to_phys(const void *p)
{
    return (uint64_t)(uintptr_t)p;
}

static inline void *phys_to_virt(uint64_t pa)
{
    return (void *)(uintptr_t)pa;
}

/* main.c */
void *alloc_pages(uint64_t size, uint64_t align); /* zeroed, from RAM above the image */
_Noreturn void sim_exit(unsigned value);
_Noreturn void fail(unsigned value, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

/* serial.c */
void serial_init(void);
void serial_putc(char c);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
extern bool serial_crlf;

/* vmx.c */
struct vm {
    uint32_t pin, proc, proc2, exit, entry; /* the controls in use */
    uint32_t ept_cap, vpid_cap;             /* IA32_VMX_EPT_VPID_CAP, low and high dword */
    uint64_t eptp;
    bool ept_2m;                            /* EPT maps with 2 MiB pages (else 4 KiB) */
    uint64_t hole_gpa;                      /* the unmapped 2 MiB region */
    uint64_t hole_hpa;                      /* its backing once mapped (0: not yet) */
};
extern struct vm vm;
void vmx_init(void);                        /* discovery, VMXON, VMCS, EPT */
_Noreturn void vmx_run_guest(void);         /* VMLAUNCH; exits go to handle_exit */
void ept_map_hole(void);
uint64_t vmcs_read(uint64_t field);
void vmcs_write(uint64_t field, uint64_t value);
const char *vmx_insn_error_name(uint64_t err);

/* exit.c */
void handle_exit(struct regs *r);                   /* called by vmx_exit_stub */
_Noreturn void vmx_entry_failed(uint64_t rflags, int launch); /* called by entry.S */
extern uint64_t tsc_at_launch;

/* entry.S */
extern char vmx_exit_stub[];                        /* HOST_RIP */
_Noreturn void vmx_launch(const struct regs *guest); /* load GPRs, VMLAUNCH */
extern char guest_start[];                          /* GUEST_RIP */
extern const uint64_t exception_stubs[32];

/* guest.c — runs in VMX non-root operation */
void guest_main(uint64_t n, uint64_t mode, uint64_t rounds);
#define GUEST_MODE_DEMO 0
#define GUEST_MODE_CPUID_BENCH 1 /* n CPUIDs */
#define GUEST_MODE_TOUCH 2       /* n pages at TOUCH_GPA, rounds times */
/* Touch mode: guest-linear = guest-physical region mapped with 4 KiB pages in both the guest's page tables and EPT. */
#define TOUCH_GPA UINT64_C(0x4000000)
#define TOUCH_ROUNDS_DEFAULT 50
#define GUEST_HYPERCALL_HELLO 1
#define GUEST_HYPERCALL_ARG UINT64_C(0x1234abcd)
#define GUEST_EPT_MAGIC UINT64_C(0x5ca1ab1e600dcafe)
#endif
