/*
 * Port devices. Output goes to the console stream as the guest writes it;
 * the machine flushes it at every stop so nothing is lost.
 */
#include <string.h>

#include "cpu/cpu.h"
#include "platform/devices.h"

#define COM1 0x3F8
#define UART_LSR_THRE 0x20 /* transmit holding register empty */
#define UART_LSR_TEMT 0x40 /* transmitter empty */
#define UART_LCR_DLAB 0x80
#define PORT_E9 0xE9
#define PORT_DEBUG_EXIT 0xF4
#define PORT_SHUTDOWN 0x8900
#define PORT_PCI_ADDR 0xCF8
#define PORT_PCI_DATA 0xCFC
#define PORT_FWCFG_SEL 0x510
#define PORT_FWCFG_DATA 0x511

void plat_devices_init(struct plat_devices *d, FILE *console, struct cpu *cpu)
{
    memset(d, 0, sizeof *d);
    d->console = console;
    d->cpu = cpu;
    d->pic_imr[0] = d->pic_imr[1] = 0xFF;
}

static uint32_t uart_in(struct plat_devices *d, unsigned reg)
{
    bool dlab = d->uart_lcr & UART_LCR_DLAB;
    switch (reg) {
    case 0: return dlab ? d->uart_dll : 0;        /* RBR: no input */
    case 1: return dlab ? d->uart_dlm : d->uart_ier;
    case 2: return 0x01;                          /* IIR: no interrupt pending */
    case 3: return d->uart_lcr;
    case 4: return d->uart_mcr;
    case 5: return UART_LSR_THRE | UART_LSR_TEMT; /* LSR: always ready */
    case 6: return 0xB0;                          /* MSR: CTS, DSR, DCD */
    default: return d->uart_scr;
    }
}

static void uart_out(struct plat_devices *d, unsigned reg, uint8_t v)
{
    bool dlab = d->uart_lcr & UART_LCR_DLAB;
    switch (reg) {
    case 0:
        if (dlab)
            d->uart_dll = v;
        else
            fputc(v, d->console);
        break;
    case 1:
        if (dlab)
            d->uart_dlm = v;
        else
            d->uart_ier = v & 0x0F;
        break;
    case 3: d->uart_lcr = v; break;
    case 4: d->uart_mcr = v; break;
    case 7: d->uart_scr = v; break;
    default: break;
    }
}

/* fw_cfg: selector 0 = signature "QEMU", 1 = interface id 1; others read 0. */
static uint32_t fwcfg_in(struct plat_devices *d)
{
    static const char sig[4] = {'Q', 'E', 'M', 'U'};
    uint32_t off = d->fwcfg_off++;
    if (d->fwcfg_sel == 0)
        return off < 4 ? (uint8_t)sig[off] : 0;
    if (d->fwcfg_sel == 1)
        return off == 0 ? 1 : 0;
    return 0;
}

static void shutdown_port(struct plat_devices *d, uint8_t ch)
{
    static const char want[] = "Shutdown";
    if (ch != (uint8_t)want[d->shutdown_len]) {
        d->shutdown_len = ch == 'S' ? 1 : 0;
        return;
    }
    if (++d->shutdown_len == sizeof want - 1) {
        d->shutdown_len = 0;
        cpu_request_stop(d->cpu, VMXSIM_STOP_SHUTDOWN, 0, "guest wrote \"Shutdown\" to port 0x8900");
    }
}

uint32_t plat_io_in(void *ctx, uint16_t port, unsigned size)
{
    struct plat_devices *d = ctx;
    uint32_t ones = size >= 4 ? 0xFFFFFFFFu : (1u << (size * 8)) - 1;
    if (port >= COM1 && port < COM1 + 8)
        return uart_in(d, port - COM1);
    switch (port) {
    case 0x21: return d->pic_imr[0];
    case 0xA1: return d->pic_imr[1];
    case 0x20:
    case 0xA0: return 0;
    case 0x92: return 0x02;                    /* A20 enabled */
    case PORT_PCI_ADDR: return d->pci_addr;
    case PORT_FWCFG_DATA: return fwcfg_in(d);
    default: break;
    }
    if (port >= PORT_PCI_DATA && port < PORT_PCI_DATA + 4)
        return ones; /* no PCI device answers */
    return ones;     /* unclaimed port: the bus floats high */
}

void plat_io_out(void *ctx, uint16_t port, unsigned size, uint32_t val)
{
    struct plat_devices *d = ctx;
    if (port >= COM1 && port < COM1 + 8) {
        uart_out(d, port - COM1, (uint8_t)val);
        return;
    }
    switch (port) {
    case PORT_E9:
        fputc((int)(val & 0xFF), d->console);
        break;
    case PORT_DEBUG_EXIT: {
        char msg[64];
        uint32_t status = (val << 1) | 1u;
        snprintf(msg, sizeof msg, "debug exit: value %#x, status %u", val, status);
        cpu_request_stop(d->cpu, VMXSIM_STOP_DEBUG_EXIT, (int)status, msg);
        break;
    }
    case PORT_SHUTDOWN:
        shutdown_port(d, (uint8_t)val);
        break;
    case 0x21: d->pic_imr[0] = (uint8_t)val; break;
    case 0xA1: d->pic_imr[1] = (uint8_t)val; break;
    case PORT_PCI_ADDR:
        if (size == 4)
            d->pci_addr = val;
        break;
    case PORT_FWCFG_SEL:
        d->fwcfg_sel = (uint16_t)val;
        d->fwcfg_off = 0;
        break;
    default:
        break;
    }
}
