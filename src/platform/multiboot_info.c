/*
 * Multiboot v1 boot information (§3.3) and machine state (§3.2).
 *
 * Info area layout (all below 64 KiB, inside [PLAT_BOOT_INFO, _END)):
 *   0x9000  multiboot_info (116 bytes, through the framebuffer table)
 *   0x9080  memory map: up to 3 entries of 24 bytes (size field first)
 *   0x90C8  module array: 16 bytes per module
 *   then    strings: "vmxsim", command line, module strings
 * Module data lies page-aligned at or above max(image end, 1 MiB).
 */
#include <string.h>

#include "platform/multiboot.h"

#define MB_MMAP_ADDR (PLAT_BOOT_INFO + 0x80)
#define MB_MODS_ADDR (MB_MMAP_ADDR + MB_MMAP_MAX_ENTRIES * MB_MMAP_ENTRY_SIZE)

static uint64_t mb_strings_base(size_t n_modules)
{
    return MB_MODS_ADDR + (uint64_t)n_modules * MB_MOD_SIZE;
}

vmxsim_err plat_mb_check_info(const struct load_env *env, const struct plat_load_opts *opts)
{
    return plat_load_check_info_area(env, opts, MB_MODS_ADDR, MB_MOD_SIZE,
                                sizeof MB_BOOT_LOADER_NAME);
}

/* §3.3 mem_upper: KiB from 1 MiB to the first hole, i.e. the end of RAM. */
static uint32_t mb_mem_upper(uint64_t ram_size)
{
    uint64_t kib = (ram_size - LOAD_MIN_RAM) / 1024;

    return kib > UINT32_MAX ? UINT32_MAX : (uint32_t)kib;
}

/*
 * §3.3 memory map: usable [0, 0x9FC00), reserved [0x9FC00, 1 MiB) (EBDA,
 * VGA, BIOS as on a PC), usable [1 MiB, RAM end). mmap_addr points at the
 * first entry's size field; mmap_length is the total buffer size.
 */
static void mb_write_mmap(struct plat_ram *ram, uint8_t *mbi)
{
    const struct { uint64_t base, end; uint32_t type; } map[MB_MMAP_MAX_ENTRIES] = {
        { 0, MB_LOW_RAM_END, MB_MMAP_AVAILABLE },
        { MB_LOW_RAM_END, LOAD_MIN_RAM, MB_MMAP_RESERVED },
        { LOAD_MIN_RAM, ram->size, MB_MMAP_AVAILABLE },
    };
    uint8_t *e = ram->base + MB_MMAP_ADDR;

    for (unsigned i = 0; i < MB_MMAP_MAX_ENTRIES; i++) {
        if (map[i].end <= map[i].base)
            continue;
        st_le32(e + MB_MMAP_SIZE, MB_MMAP_ENTRY_SIZE - 4);
        st_le64(e + MB_MMAP_BASE, map[i].base);
        st_le64(e + MB_MMAP_LENGTH, map[i].end - map[i].base);
        st_le32(e + MB_MMAP_TYPE, map[i].type);
        e += MB_MMAP_ENTRY_SIZE;
    }
    st_le32(mbi + MBI_MMAP_LENGTH, (uint32_t)(e - (ram->base + MB_MMAP_ADDR)));
    st_le32(mbi + MBI_MMAP_ADDR, (uint32_t)MB_MMAP_ADDR);
}

/* §3.3 modules: mod_start, mod_end (exclusive), string, reserved 0. */
static void mb_write_mods(struct plat_ram *ram, uint8_t *mbi, const struct plat_load_opts *opts,
                          const struct load_plan *plan, uint64_t *str)
{
    uint64_t at = plat_load_modules_base(plan);

    for (size_t i = 0; i < opts->n_modules; i++) {
        uint8_t *m = ram->base + MB_MODS_ADDR + i * MB_MOD_SIZE;
        size_t len = opts->modules[i].len;

        st_le32(m + MB_MOD_START, (uint32_t)at);
        st_le32(m + MB_MOD_END, (uint32_t)(at + len));
        st_le32(m + MB_MOD_STRING, (uint32_t)plat_load_put_str(ram, str, opts->modules[i].cmdline));
        st_le32(m + MB_MOD_RESERVED, 0);
        at = plat_load_module_next(at, len);
    }
    st_le32(mbi + MBI_MODS_COUNT, (uint32_t)opts->n_modules);
    st_le32(mbi + MBI_MODS_ADDR, (uint32_t)MB_MODS_ADDR);
}

/* §3.3 framebuffer table for header flag 2: 80x25 EGA text at 0xB8000. */
static void mb_write_framebuffer(uint8_t *mbi)
{
    st_le64(mbi + MBI_FB_ADDR, MB_FB_EGA_ADDR);
    st_le32(mbi + MBI_FB_PITCH, MB_FB_EGA_COLS * 2);
    st_le32(mbi + MBI_FB_WIDTH, MB_FB_EGA_COLS);
    st_le32(mbi + MBI_FB_HEIGHT, MB_FB_EGA_ROWS);
    mbi[MBI_FB_BPP] = 16;
    mbi[MBI_FB_TYPE] = MB_FB_EGA_TEXT;
}

/* §3.3: boot_device, syms, drives, config, APM and VBE are absent. */
static void mb_write_info(struct plat_ram *ram, const struct plat_load_opts *opts,
                          const struct load_plan *plan)
{
    uint8_t *mbi = ram->base + PLAT_BOOT_INFO;
    uint64_t str = mb_strings_base(opts->n_modules);
    uint32_t flags =
        MBI_F_MEMORY | MBI_F_CMDLINE | MBI_F_MODS | MBI_F_MMAP | MBI_F_BOOT_LOADER_NAME;

    memset(mbi, 0, MBI_SIZE);
    st_le32(mbi + MBI_MEM_LOWER, MB_MEM_LOWER_KIB);
    st_le32(mbi + MBI_MEM_UPPER, mb_mem_upper(ram->size));
    st_le32(mbi + MBI_BOOT_LOADER_NAME,
            (uint32_t)plat_load_put_str(ram, &str, MB_BOOT_LOADER_NAME));
    st_le32(mbi + MBI_CMDLINE, (uint32_t)plat_load_put_str(ram, &str, opts->cmdline));
    mb_write_mods(ram, mbi, opts, plan, &str);
    mb_write_mmap(ram, mbi);
    if (plan->mb_flags & MB_HDR_F_VIDEO_MODE) {
        flags |= MBI_F_FRAMEBUFFER;
        mb_write_framebuffer(mbi);
    }
    st_le32(mbi + MBI_FLAGS, flags);
}

/* 32-bit TSS (SDM Vol. 3A §7.2.1, Figure 7-2): ESP0, SS0, no I/O bitmap. */
static void mb_write_tss32(struct plat_ram *ram)
{
    uint8_t *tss = ram->base + PLAT_BOOT_TSS;

    memset(tss, 0, BOOT_TSS_LIMIT + 1);
    st_le32(tss + 4, (uint32_t)PLAT_BOOT_STACK_TOP); /* ESP0 */
    st_le16(tss + 8, PLAT_SEL_DATA);                 /* SS0 */
    st_le16(tss + 102, BOOT_TSS_LIMIT + 1);          /* I/O map base = limit + 1: none */
}

/*
 * §3.2 machine state: EAX magic, EBX info, flat 32-bit CS and data
 * segments, CR0.PE=1 PG=0, EFLAGS.IF=VM=0. A20 is always enabled (the
 * simulator has no A20 gate). ESP, GDTR, IDTR are undefined by the
 * specification; we give a stack and the boot GDT anyway, and the real-mode
 * IVT limits for IDTR.
 */
static void mb_cpu_init(struct plat_cpu_init *cpu, uint64_t entry)
{
    cpu->long_mode = false;
    cpu->rip = entry;
    cpu->rsp = PLAT_BOOT_STACK_TOP;
    cpu->rax = MULTIBOOT_BOOTLOADER_MAGIC;
    cpu->rbx = PLAT_BOOT_INFO;
    cpu->rflags = X86_RFLAGS_FIXED;
    cpu->cr0 = X86_CR0_PE | X86_CR0_ET;
    cpu->gdtr = (struct x86_dtable){ .base = PLAT_BOOT_GDT, .limit = BOOT_GDT_LIMIT };
    cpu->idtr = (struct x86_dtable){ .base = 0, .limit = 0x3FF };
    plat_boot_set_segments(cpu, PLAT_SEL_CODE32, BOOT_AR_CODE32);
}

void plat_mb_enter(struct plat_ram *ram, const struct plat_load_opts *opts,
                   const struct load_plan *plan, struct plat_cpu_init *cpu)
{
    mb_write_info(ram, opts, plan);
    mb_write_tss32(ram);
    mb_cpu_init(cpu, plan->entry);
}
