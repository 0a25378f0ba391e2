/*
 * Multiboot v1 (specification 0.6.96): header, information structure and
 * the loader's internal entry points. Offsets are byte offsets as the
 * specification tables give them; structures are written field by field
 * (little-endian) so no host struct layout is involved.
 */
#ifndef VMXSIM_PLATFORM_MULTIBOOT_H
#define VMXSIM_PLATFORM_MULTIBOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform/elf_load.h"

/* §3.1.1 Header layout: 32-bit aligned, wholly inside the first 8192 bytes. */
#define MB_HEADER_MAGIC 0x1BADB002u
#define MB_HEADER_SEARCH 8192u
#define MB_HEADER_ALIGN 4u
#define MB_HDR_MAGIC 0
#define MB_HDR_FLAGS 4
#define MB_HDR_CHECKSUM 8
#define MB_HDR_HEADER_ADDR 12 /* address fields: valid when flag 16 is set (§3.1.3) */
#define MB_HDR_LOAD_ADDR 16
#define MB_HDR_LOAD_END_ADDR 20
#define MB_HDR_BSS_END_ADDR 24
#define MB_HDR_ENTRY_ADDR 28
#define MB_HDR_MIN_SIZE 12    /* magic, flags, checksum */
#define MB_HDR_AOUT_SIZE 32   /* ... plus the address fields */

/* §3.1.2 Header flags: bits 0-15 are requirements, 16-31 optional. */
#define MB_HDR_F_PAGE_ALIGN (1u << 0)  /* modules page-aligned */
#define MB_HDR_F_MEMORY_INFO (1u << 1) /* mem_* (and mmap_*) required */
#define MB_HDR_F_VIDEO_MODE (1u << 2)  /* video mode information required */
#define MB_HDR_F_AOUT_KLUDGE (1u << 16) /* address fields valid */
#define MB_HDR_F_REQUIRED_MASK 0xFFFFu
#define MB_HDR_F_SUPPORTED (MB_HDR_F_PAGE_ALIGN | MB_HDR_F_MEMORY_INFO | MB_HDR_F_VIDEO_MODE)

/* §3.3 Boot information format: field offsets. */
#define MBI_FLAGS 0
#define MBI_MEM_LOWER 4
#define MBI_MEM_UPPER 8
#define MBI_BOOT_DEVICE 12
#define MBI_CMDLINE 16
#define MBI_MODS_COUNT 20
#define MBI_MODS_ADDR 24
#define MBI_SYMS 28 /* 16 bytes: a.out symbols or ELF section headers */
#define MBI_MMAP_LENGTH 44
#define MBI_MMAP_ADDR 48
#define MBI_DRIVES_LENGTH 52
#define MBI_DRIVES_ADDR 56
#define MBI_CONFIG_TABLE 60
#define MBI_BOOT_LOADER_NAME 64
#define MBI_APM_TABLE 68
#define MBI_VBE_CONTROL_INFO 72
#define MBI_VBE_MODE_INFO 76
#define MBI_VBE_MODE 80
#define MBI_FB_ADDR 88   /* u64 */
#define MBI_FB_PITCH 96
#define MBI_FB_WIDTH 100
#define MBI_FB_HEIGHT 104
#define MBI_FB_BPP 108   /* u8 */
#define MBI_FB_TYPE 109  /* u8 */
#define MBI_SIZE 116     /* through color_info (110-115) */

/* §3.3 info flags: which fields are valid. */
#define MBI_F_MEMORY (1u << 0)
#define MBI_F_BOOTDEV (1u << 1)
#define MBI_F_CMDLINE (1u << 2)
#define MBI_F_MODS (1u << 3)
#define MBI_F_MMAP (1u << 6)
#define MBI_F_BOOT_LOADER_NAME (1u << 9)
#define MBI_F_FRAMEBUFFER (1u << 12)

/* §3.3 memory map entry: size (of the rest, 20), base_addr, length, type. */
#define MB_MMAP_SIZE 0
#define MB_MMAP_BASE 4
#define MB_MMAP_LENGTH 12
#define MB_MMAP_TYPE 20
#define MB_MMAP_ENTRY_SIZE 24
#define MB_MMAP_AVAILABLE 1u
#define MB_MMAP_RESERVED 2u
#define MB_MMAP_MAX_ENTRIES 3

/* §3.3 module structure: mod_start, mod_end (exclusive), string, reserved. */
#define MB_MOD_START 0
#define MB_MOD_END 4
#define MB_MOD_STRING 8
#define MB_MOD_RESERVED 12
#define MB_MOD_SIZE 16

/* Memory described to the kernel (RAM is one range from 0; README "Boot"). */
#define MB_MEM_LOWER_KIB 640u
#define MB_LOW_RAM_END 0x9FC00ULL /* conventional memory below the EBDA */
#define MB_BOOT_LOADER_NAME "vmxsim"

/* EGA text mode reported for header flag 2 (§3.3 framebuffer_type 2). */
#define MB_FB_EGA_TEXT 2u
#define MB_FB_EGA_ADDR 0xB8000ULL
#define MB_FB_EGA_COLS 80u
#define MB_FB_EGA_ROWS 25u

/* multiboot.c */
bool plat_mb_find_header(const uint8_t *img, size_t len, size_t *off);
LOAD_WUR vmxsim_err plat_mb_plan(const struct load_env *env, struct load_plan *plan);

/* multiboot_info.c */
LOAD_WUR vmxsim_err plat_mb_check_info(const struct load_env *env,
                                       const struct plat_load_opts *opts);
void plat_mb_enter(struct plat_ram *ram, const struct plat_load_opts *opts,
                   const struct load_plan *plan, struct plat_cpu_init *cpu);
#endif
