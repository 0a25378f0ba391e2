/*
 * Platform: guest RAM, image loaders and the boot contract (DESIGN §8).
 *
 * Loaders are pure functions over a RAM buffer: they validate the image,
 * copy its segments, build Multiboot information or the 64-bit boot
 * structures, and describe the CPU state the core must start in.
 */
#ifndef VMXSIM_PLATFORM_H
#define VMXSIM_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86.h"
#include "vmxsim/vmxsim.h"

/* Fixed low-memory layout used by the 64-bit entry contract (README "Boot"). */
#define PLAT_BOOT_PML4 0x1000ULL    /* PML4; PDPT at 0x2000; 4 PDs (2 MiB pages) 0x3000-0x6FFF */
#define PLAT_BOOT_PDPT 0x2000ULL
#define PLAT_BOOT_PD 0x3000ULL
#define PLAT_BOOT_GDT 0x7000ULL     /* GDT (see PLAT_SEL_*) */
#define PLAT_BOOT_TSS 0x7800ULL     /* 64-bit TSS (104 bytes) */
#define PLAT_BOOT_IDT 0x8000ULL     /* 256 not-present gates, limit 0xFFF */
#define PLAT_BOOT_INFO 0x9000ULL    /* Multiboot info / 64-bit boot info, up to 0x10000 */
#define PLAT_BOOT_INFO_END 0x10000ULL
#define PLAT_BOOT_STACK_LO 0x70000ULL /* 64 KiB boot stack */
#define PLAT_BOOT_STACK_TOP 0x80000ULL
#define PLAT_BOOT_AREA_END 0x80000ULL /* image segments may not overlap [0x1000, this) */
#define PLAT_FLAT_LOAD 0x100000ULL  /* flat images load and start here */

/* GDT selectors of the boot GDT. */
#define PLAT_SEL_CODE64 0x08
#define PLAT_SEL_DATA 0x10
#define PLAT_SEL_CODE32 0x18
#define PLAT_SEL_TSS 0x20 /* 16-byte system descriptor */

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u

struct plat_ram {
    uint8_t *base;
    uint64_t size;
};

enum plat_image_kind { PLAT_IMAGE_MULTIBOOT, PLAT_IMAGE_ELF64, PLAT_IMAGE_FLAT };

/* Module data already read into memory by the caller. */
struct plat_module {
    const uint8_t *data;
    size_t len;
    const char *cmdline;
};

struct plat_load_opts {
    const char *cmdline;
    const struct plat_module *modules;
    size_t n_modules;
};

/* The CPU state the core starts in. */
struct plat_cpu_init {
    bool long_mode;              /* true: 64-bit entry; false: 32-bit protected mode */
    uint64_t rip, rsp, rax, rbx, rdi, rsi;
    uint64_t rflags;
    uint64_t cr0, cr3, cr4, efer;
    struct x86_dtable gdtr, idtr;
    struct x86_seg_state seg[X86_SEG_COUNT];
};

struct plat_boot {
    enum plat_image_kind kind;
    struct plat_cpu_init cpu;
    uint64_t image_lo, image_hi; /* physical extent of the loaded image */
};

/*
 * Load an image into RAM and describe how to start it. On failure returns
 * VMXSIM_ERR_BAD_IMAGE (or NOMEM) and writes a one-line reason to err.
 */
vmxsim_err plat_load(struct plat_ram *ram, const uint8_t *img, size_t len,
                     const struct plat_load_opts *opts, struct plat_boot *boot,
                     char *err, size_t errlen);

/* Detect the image kind without loading (Multiboot header in the first 8 KiB wins). */
enum plat_image_kind plat_detect(const uint8_t *img, size_t len);
#endif
