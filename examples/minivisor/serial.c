/*
 * Console: a polled 16550 UART on COM1 and a small printf.
 *
 * printf understands %s %c %d %i %u %x %X %p %% with the flags '-' and '0',
 * a field width, and the length modifiers l, ll and z.
 */
#include "minivisor.h"
#include "x86.h"

#define COM1 0x3F8
#define UART_THR 0 /* transmit holding register (write, DLAB = 0) */
#define UART_DLL 0 /* divisor latch low (DLAB = 1) */
#define UART_IER 1 /* interrupt enable (DLAB = 0) */
#define UART_DLM 1 /* divisor latch high (DLAB = 1) */
#define UART_FCR 2 /* FIFO control (write) */
#define UART_LCR 3 /* line control */
#define UART_MCR 4 /* modem control */
#define UART_LSR 5 /* line status */
#define UART_LCR_DLAB 0x80
#define UART_LCR_8N1 0x03
#define UART_LSR_THRE 0x20 /* transmit holding register empty */

bool serial_crlf; /* "crlf" on the command line: send "\r\n" for "\n" */

/* 115200 baud 8N1, FIFOs on, no interrupts (the minivisor polls). */
void serial_init(void)
{
    outb(COM1 + UART_IER, 0x00);
    outb(COM1 + UART_LCR, UART_LCR_DLAB);
    outb(COM1 + UART_DLL, 0x01); /* divisor 1: 115200 baud */
    outb(COM1 + UART_DLM, 0x00);
    outb(COM1 + UART_LCR, UART_LCR_8N1);
    outb(COM1 + UART_FCR, 0xC7); /* enable and clear FIFOs, 14-byte threshold */
    outb(COM1 + UART_MCR, 0x03); /* DTR, RTS */
}

static void serial_put_raw(char c)
{
    while (!(inb(COM1 + UART_LSR) & UART_LSR_THRE))
        ;
    outb(COM1 + UART_THR, (uint8_t)c);
}

void serial_putc(char c)
{
    if (c == '\n' && serial_crlf)
        serial_put_raw('\r');
    serial_put_raw(c);
}

/* ---- printf -------------------------------------------------------------- */

struct fmt_spec {
    bool left;  /* '-': pad on the right */
    bool zero;  /* '0': pad numbers with zeros */
    int width;
};

static int put_padded(const char *s, int len, const struct fmt_spec *sp, bool number)
{
    int pad = sp->width > len ? sp->width - len : 0;
    char padc = (sp->zero && number && !sp->left) ? '0' : ' ';
    int n = 0;

    /* A zero-padded negative number keeps its sign in front of the zeros. */
    if (padc == '0' && len > 0 && s[0] == '-') {
        serial_putc('-');
        s++;
        len--;
        n++;
    }
    if (!sp->left)
        for (; pad > 0; pad--, n++)
            serial_putc(padc);
    for (int i = 0; i < len; i++, n++)
        serial_putc(s[i]);
    for (; pad > 0; pad--, n++)
        serial_putc(' ');
    return n;
}

/* Digits of v in base 10 or 16 into buf (at least 21 bytes), returns the length. */
static int format_unsigned(char *buf, uint64_t v, unsigned base, bool upper, bool negative)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0, len = 0;

    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    if (negative)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    return len;
}

int vprintf(const char *fmt, va_list ap)
{
    int out = 0;

    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            serial_putc(*fmt);
            out++;
            continue;
        }
        struct fmt_spec sp = { 0 };
        int lng = 0; /* 0: int, 1: long, 2: long long, 3: size_t */
        char buf[24];
        int len;

        fmt++;
        for (;; fmt++) {
            if (*fmt == '-')
                sp.left = true;
            else if (*fmt == '0')
                sp.zero = true;
            else
                break;
        }
        while (*fmt >= '0' && *fmt <= '9')
            sp.width = sp.width * 10 + (*fmt++ - '0');
        if (*fmt == 'z') {
            lng = 3;
            fmt++;
        } else {
            while (*fmt == 'l' && lng < 2) {
                lng++;
                fmt++;
            }
        }
        switch (*fmt) {
        case 'c':
            buf[0] = (char)va_arg(ap, int);
            out += put_padded(buf, 1, &sp, false);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int slen = 0;

            if (!s)
                s = "(null)";
            while (s[slen])
                slen++;
            out += put_padded(s, slen, &sp, false);
            break;
        }
        case 'd':
        case 'i': {
            int64_t v = lng == 0 ? va_arg(ap, int) : lng == 3 ? (int64_t)va_arg(ap, size_t)
                      : lng == 1 ? va_arg(ap, long) : va_arg(ap, long long);
            uint64_t mag = v < 0 ? -(uint64_t)v : (uint64_t)v;

            len = format_unsigned(buf, mag, 10, false, v < 0);
            out += put_padded(buf, len, &sp, true);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng == 0 ? va_arg(ap, unsigned) : lng == 3 ? va_arg(ap, size_t)
                       : lng == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned long long);

            len = format_unsigned(buf, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', false);
            out += put_padded(buf, len, &sp, true);
            break;
        }
        case 'p': {
            uint64_t v = (uint64_t)(uintptr_t)va_arg(ap, void *);

            buf[0] = '0';
            buf[1] = 'x';
            len = 2 + format_unsigned(buf + 2, v, 16, false, false);
            out += put_padded(buf, len, &sp, false);
            break;
        }
        case '%':
            serial_putc('%');
            out++;
            break;
        case '\0':
            return out; /* a lone '%' at the end */
        default:        /* unknown conversion: print it as written */
            serial_putc('%');
            serial_putc(*fmt);
            out += 2;
            break;
        }
    }
    return out;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}
