/*
 * 64-bit boot information (README "Boot", DESIGN §8).
 *
 * A 64-bit image (ELF64 without a Multiboot header, or a flat binary) is
 * entered in long mode with RDI = RAM size in bytes and RSI = the physical
 * address of this structure (always PLAT_BOOT_INFO, 0x9000). Guests may
 * copy these declarations: the layout is fixed, little-endian, naturally
 * aligned, with no padding, and only grows at the end (bump version).
 *
 *   offset  field
 *        0  magic        0x53584D56 ("VMXS" in memory)
 *        4  version      1
 *        8  mem_size     guest RAM in bytes, one range [0, mem_size)
 *       16  cmdline      physical address of the NUL-terminated command line
 *       24  cmdline_len  its length without the NUL (0: empty)
 *       32  mods_count   number of boot modules
 *       40  mods_addr    physical address of mods_count plat_boot_module64
 *
 * Everything referenced (module array, strings) lies in the boot info area
 * [PLAT_BOOT_INFO, PLAT_BOOT_INFO_END); module data lies page-aligned above
 * the image (at or above 1 MiB). The guest owns all of it after entry.
 */
#ifndef VMXSIM_PLATFORM_BOOTINFO_H
#define VMXSIM_PLATFORM_BOOTINFO_H

#include <stdint.h>

#define PLAT_BOOT_INFO64_MAGIC 0x53584D56u /* "VMXS" */
#define PLAT_BOOT_INFO64_VERSION 1u

struct plat_boot_module64 {
    uint64_t start;       /* physical address of the first byte (4 KiB aligned) */
    uint64_t end;         /* physical address one past the last byte */
    uint64_t cmdline;     /* physical address of the NUL-terminated module string */
    uint64_t cmdline_len; /* its length without the NUL */
};

struct plat_boot_info64 {
    uint32_t magic;       /* PLAT_BOOT_INFO64_MAGIC */
    uint32_t version;     /* PLAT_BOOT_INFO64_VERSION */
    uint64_t mem_size;    /* RAM size in bytes (also in RDI) */
    uint64_t cmdline;     /* physical address of the command line ("" if none) */
    uint64_t cmdline_len; /* without the NUL */
    uint64_t mods_count;
    uint64_t mods_addr;   /* struct plat_boot_module64[mods_count] */
};

_Static_assert(sizeof(struct plat_boot_module64) == 32, "plat_boot_module64 layout");
_Static_assert(sizeof(struct plat_boot_info64) == 48, "plat_boot_info64 layout");
#endif
