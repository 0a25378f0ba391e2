/*
 * Serial output (COM1, polled 16550), a small printf, string helpers the
 * compiler may call, the page allocator, 4-KiB mappings, and program start.
 */
#include "hv.h"

#define COM1 0x3F8
#define COM1_LSR (COM1 + 5)
#define LSR_THRE 0x20
#define DEBUG_EXIT_PORT 0xF4

uint64_t hv_ram_size;
extern char __heap_start[];
static uint64_t heap_next;

void *memset(void *d, int c, size_t n)
{
    uint8_t *p = d;
    while (n--)
        *p++ = (uint8_t)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;
    if (p < q)
        return memcpy(d, s, n);
    while (n--)
        p[n] = q[n];
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *p = a, *q = b;
    for (size_t i = 0; i < n; i++)
        if (p[i] != q[i])
            return p[i] < q[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

static void serial_putc(char ch)
{
    while (!(inb(COM1_LSR) & LSR_THRE))
        ;
    outb(COM1, (uint8_t)ch);
}

void puts_serial(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

/* ---- printf -------------------------------------------------------------- */

struct out {
    char *buf; /* NULL: serial */
    size_t size, len;
};

static void out_ch(struct out *o, char ch)
{
    if (!o->buf)
        serial_putc(ch);
    else if (o->len + 1 < o->size)
        o->buf[o->len] = ch;
    o->len++;
}

static void out_num(struct out *o, uint64_t v, unsigned base, bool upper, bool neg, int width, char pad,
                    bool left)
{
    char tmp[24];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    int len = n + (neg ? 1 : 0);
    if (neg && pad == '0')
        out_ch(o, '-');
    if (!left)
        for (; len < width; len++)
            out_ch(o, pad);
    if (neg && pad != '0')
        out_ch(o, '-');
    while (n)
        out_ch(o, tmp[--n]);
    if (left)
        for (; len < width; len++)
            out_ch(o, ' ');
}

static int format(struct out *o, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            out_ch(o, *fmt);
            continue;
        }
        fmt++;
        bool left = false;
        char pad = ' ';
        int width = 0, lng = 0;
        for (;; fmt++) {
            if (*fmt == '-')
                left = true;
            else if (*fmt == '0')
                pad = '0';
            else
                break;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        for (;; fmt++) {
            if (*fmt == 'l')
                lng++;
            else if (*fmt == 'z')
                lng = 2;
            else if (*fmt != 'h')
                break;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            out_num(o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, false, v < 0, width, pad, left);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            out_num(o, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', false, width, pad, left);
            break;
        }
        case 'p':
            out_ch(o, '0');
            out_ch(o, 'x');
            out_num(o, (uint64_t)(uintptr_t)va_arg(ap, void *), 16, false, false, width, pad, left);
            break;
        case 'c':
            out_ch(o, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int len = 0;
            if (!s)
                s = "(null)";
            len = (int)strlen(s);
            if (!left)
                for (; len < width; len++)
                    out_ch(o, ' ');
            while (*s)
                out_ch(o, *s++);
            if (left)
                for (; len < width; len++)
                    out_ch(o, ' ');
            break;
        }
        case '%':
            out_ch(o, '%');
            break;
        case 0:
            return (int)o->len;
        default:
            out_ch(o, '%');
            out_ch(o, *fmt);
            break;
        }
    }
    return (int)o->len;
}

int vprintf(const char *fmt, va_list ap)
{
    struct out o = {0};
    return format(&o, fmt, ap);
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int vsnprintf(char *buf, size_t n, const char *fmt, va_list ap)
{
    struct out o = {.buf = buf, .size = n};
    int len = format(&o, fmt, ap);
    if (n)
        buf[o.len < n ? o.len : n - 1] = 0;
    return len;
}

int snprintf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return len;
}

__attribute__((noreturn)) void hv_exit(uint8_t value)
{
    for (;;)
        outb(DEBUG_EXIT_PORT, value);
}

/* ---- Memory --------------------------------------------------------------- */

void *alloc_page(void)
{
    if (!heap_next)
        heap_next = ((uint64_t)(uintptr_t)__heap_start + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    if (heap_next + PAGE_SIZE > hv_ram_size) {
        printf("hv: out of memory\n");
        hv_exit(1);
    }
    void *p = (void *)(uintptr_t)heap_next;
    heap_next += PAGE_SIZE;
    memset(p, 0, PAGE_SIZE);
    return p;
}

/* Next-level table of entry e, allocating it when not present. */
static uint64_t *next_table(uint64_t *e)
{
    if (!(*e & PTE_P))
        *e = (uint64_t)(uintptr_t)alloc_page() | PTE_P | PTE_W;
    return (uint64_t *)(uintptr_t)(*e & PTE_ADDR);
}

void map_page_4k(uint64_t va, uint64_t pa, uint64_t flags)
{
    uint64_t *pml4 = (uint64_t *)(uintptr_t)(read_cr3() & PTE_ADDR);
    uint64_t *pdpt = next_table(&pml4[(va >> 39) & 511]);
    uint64_t *pd = next_table(&pdpt[(va >> 30) & 511]);
    uint64_t *pt = next_table(&pd[(va >> 21) & 511]);
    pt[(va >> 12) & 511] = (pa & PTE_ADDR) | flags;
    asm volatile("invlpg (%0)" : : "r"(va) : "memory");
}

/* ---- Start ------------------------------------------------------------------ */

void hv_report_summary_and_exit(void) __attribute__((noreturn));

__attribute__((noreturn)) void hv_start(uint64_t ram_size)
{
    hv_ram_size = ram_size;
    idt_install();
    hv_test_main();
    hv_report_summary_and_exit();
}
