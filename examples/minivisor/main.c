/*
 * minivisor: main, command line, page allocator, host IDT, exit paths.
 */
#include "minivisor.h"
#include "x86.h"

#define DEBUG_EXIT_PORT 0xF4 /* vmxsim: exit status (value << 1) | 1 */

struct config cfg;

extern char __image_end[]; /* minivisor.ld: end of .bss, page-aligned */

/* ---- Freestanding C support ---------------------------------------------
 * GCC may emit calls to memset/memcpy even with -ffreestanding; these are
 * plain string instructions so the compiler cannot turn them into calls to
 * themselves.
 */
void *memset(void *dst, int c, size_t n)
{
    void *d = dst;

    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;

    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

/* ---- Exit paths ---------------------------------------------------------- */

_Noreturn void sim_exit(unsigned value)
{
    outb(DEBUG_EXIT_PORT, (uint8_t)value); /* vmxsim stops here */
    halt_forever();                         /* real hardware: nothing listens */
}

_Noreturn void fail(unsigned value, const char *fmt, ...)
{
    va_list ap;

    printf("[minivisor] FAIL: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n[minivisor] stopping with exit value 0x%x\n", value);
    sim_exit(value);
}

/* ---- Page allocator -------------------------------------------------------
 * A bump allocator over RAM above the image, below min(RAM size, 4 GiB)
 * (the boot identity map covers 4 GiB). Nothing is ever freed.
 */
static uint64_t alloc_next, alloc_end;

static void alloc_init(uint64_t mem_size)
{
    alloc_next = (virt_to_phys(__image_end) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    alloc_end = mem_size < 4 * SIZE_1G ? mem_size : 4 * SIZE_1G;
}

void *alloc_pages(uint64_t size, uint64_t align)
{
    uint64_t at = (alloc_next + align - 1) & ~(align - 1);

    if (at + size < at || at + size > alloc_end)
        fail(EXIT_SETUP_FAILED, "out of memory: need 0x%lx bytes at 0x%lx, RAM ends at 0x%lx",
             size, at, alloc_end);
    alloc_next = at + size;
    return memset(phys_to_virt(at), 0, size);
}

/* ---- Host IDT -------------------------------------------------------------
 * The boot IDT has only not-present gates. Install interrupt gates for the
 * 32 exception vectors so a fault in the minivisor itself is reported, not
 * a silent triple fault. The table has all 256 entries: VM exits set the
 * IDTR limit to 0xFFFF (SDM Vol. 3C "Loading Host Segment and Descriptor-
 * Table Registers"), and entries past 31 stay not-present (-> #NP, reported).
 */
struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr; /* 0x8E: present, DPL 0, 64-bit interrupt gate */
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
};
_Static_assert(sizeof(struct idt_gate) == 16, "64-bit IDT gate");

static struct idt_gate host_idt[256] __attribute__((aligned(16)));

struct exception_frame {
    uint64_t vector, error_code; /* pushed by the stub */
    uint64_t rip, cs, rflags, rsp, ss;
};

static void idt_install(void)
{
    uint16_t cs = READ_SEG(cs);
    struct desc_ptr idtr = { .limit = sizeof host_idt - 1, .base = virt_to_phys(host_idt) };

    for (int v = 0; v < 32; v++) {
        uint64_t h = exception_stubs[v];

        host_idt[v] = (struct idt_gate){
            .offset_lo = (uint16_t)h,
            .selector = cs,
            .type_attr = 0x8E,
            .offset_mid = (uint16_t)(h >> 16),
            .offset_hi = (uint32_t)(h >> 32),
        };
    }
    lidt(&idtr);
}

_Noreturn void host_exception(const struct exception_frame *f);
_Noreturn void host_exception(const struct exception_frame *f)
{
    uint64_t cr2;

    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    fail(EXIT_UNEXPECTED, "host exception %lu error 0x%lx at rip 0x%lx (cr2 0x%lx)",
         f->vector, f->error_code, f->rip, cr2);
}

/* ---- Command line -------------------------------------------------------- */

/* The value of "key=..." when key starts a word, else NULL. */
static const char *cmdline_value(const char *cmd, const char *key)
{
    for (const char *p = cmd; *p; p++) {
        if (p != cmd && p[-1] != ' ')
            continue;
        const char *k = key, *q = p;

        while (*k && *q == *k) {
            k++;
            q++;
        }
        if (!*k && *q == '=')
            return q + 1;
    }
    return NULL;
}

static bool cmdline_flag(const char *cmd, const char *word)
{
    for (const char *p = cmd; *p; p++) {
        if (p != cmd && p[-1] != ' ')
            continue;
        const char *k = word, *q = p;

        while (*k && *q == *k) {
            k++;
            q++;
        }
        if (!*k && (*q == ' ' || *q == '\0'))
            return true;
    }
    return false;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return *s == ' ' || *s == '\0';
}

/* ---- main ---------------------------------------------------------------- */

_Noreturn void main(uint64_t mem_size, const struct boot_info *bi);
_Noreturn void main(uint64_t mem_size, const struct boot_info *bi)
{
    const char *bench, *touch, *rounds;

    cfg.mem_size = mem_size;
    cfg.cmdline = "";
    if (bi && bi->magic == BOOT_INFO_MAGIC && bi->cmdline)
        cfg.cmdline = (const char *)phys_to_virt(bi->cmdline);
    serial_crlf = cmdline_flag(cfg.cmdline, "crlf");
    serial_init();
    idt_install();
    alloc_init(mem_size);

    printf("[minivisor] minivisor: a small VMX hypervisor (RAM %lu MiB, command line \"%s\")\n",
           mem_size >> 20, cfg.cmdline);
    bench = cmdline_value(cfg.cmdline, "bench");
    if (bench) {
        if (!parse_u64(bench, &cfg.bench_n))
            fail(EXIT_SETUP_FAILED, "bad bench=%s (want a decimal count)", bench);
        cfg.bench = true;
    }
    touch = cmdline_value(cfg.cmdline, "touch");
    rounds = cmdline_value(cfg.cmdline, "touch_rounds");
    cfg.touch_rounds = TOUCH_ROUNDS_DEFAULT;
    if (touch) {
        if (cfg.bench)
            fail(EXIT_SETUP_FAILED, "bench= and touch= exclude each other");
        if (!parse_u64(touch, &cfg.touch_n) || cfg.touch_n == 0)
            fail(EXIT_SETUP_FAILED, "bad touch=%s (want a decimal page count > 0)", touch);
        if (rounds && (!parse_u64(rounds, &cfg.touch_rounds) || cfg.touch_rounds == 0))
            fail(EXIT_SETUP_FAILED, "bad touch_rounds=%s (want a decimal count > 0)", rounds);
        cfg.touch = true;
    }

    vmx_init();
    if (cfg.bench)
        printf("[minivisor] bench mode: the guest executes CPUID %lu times\n", cfg.bench_n);
    if (cfg.touch)
        printf("[minivisor] touch mode: the guest reads and writes %lu pages at 0x%lx, %lu rounds\n",
               cfg.touch_n, TOUCH_GPA, cfg.touch_rounds);
    vmx_run_guest();
}
