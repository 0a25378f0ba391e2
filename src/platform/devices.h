/*
 * Port devices of the platform (DESIGN §8): COM1 16550 (polled output),
 * port 0xE9 console, debug exit at 0xF4, the 0x8900 "Shutdown" port, PIC
 * and PCI configuration ports answered harmlessly, fw_cfg basics.
 */
#ifndef VMXSIM_PLATFORM_DEVICES_H
#define VMXSIM_PLATFORM_DEVICES_H

#include <stdint.h>
#include <stdio.h>

struct cpu;

struct plat_devices {
    FILE *console;
    struct cpu *cpu;       /* to request a stop */
    uint8_t uart_lcr, uart_ier, uart_mcr, uart_scr, uart_dll, uart_dlm;
    uint8_t pic_imr[2];
    uint32_t pci_addr;
    uint16_t fwcfg_sel;
    uint32_t fwcfg_off;
    char shutdown_buf[8];
    unsigned shutdown_len;
};

void plat_devices_init(struct plat_devices *d, FILE *console, struct cpu *cpu);
uint32_t plat_io_in(void *ctx, uint16_t port, unsigned size);
void plat_io_out(void *ctx, uint16_t port, unsigned size, uint32_t val);
#endif
