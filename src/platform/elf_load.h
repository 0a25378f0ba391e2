/*
 * Internal interface of the image loaders (not installed, not for other
 * units): the validated load plan every format reduces to, ELF program
 * header parsing, the segment checks shared by all formats, and the boot
 * structure writers of boot_gdt.c / boot64.c.
 *
 * Flow (loader.c): detect -> plan (validate only, RAM untouched) -> check
 * modules and boot-info size -> commit (write RAM, describe the CPU). A
 * failed load therefore leaves guest RAM as it was.
 */
#ifndef VMXSIM_PLATFORM_ELF_LOAD_H
#define VMXSIM_PLATFORM_ELF_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform/platform.h"

#define LOAD_PAGE_SIZE 0x1000ULL
#define LOAD_4GIB 0x100000000ULL
#define LOAD_MIN_RAM 0x100000ULL      /* guest RAM must cover the first 1 MiB */
#define LOAD_MODULE_FLOOR 0x100000ULL /* boot modules never go below 1 MiB */

/* Boot GDT access rights (VMCS format, SDM Vol. 3C §25.4.1). */
#define BOOT_AR_CODE64 (X86_AR_G | X86_AR_L | X86_AR_P | X86_AR_S | X86_AR_TYPE_CODE | \
                        X86_AR_TYPE_WRITABLE | X86_AR_TYPE_ACCESSED) /* 0xA09B */
#define BOOT_AR_CODE32 (X86_AR_G | X86_AR_DB | X86_AR_P | X86_AR_S | X86_AR_TYPE_CODE | \
                        X86_AR_TYPE_WRITABLE | X86_AR_TYPE_ACCESSED) /* 0xC09B */
#define BOOT_AR_DATA (X86_AR_G | X86_AR_DB | X86_AR_P | X86_AR_S | X86_AR_TYPE_WRITABLE | \
                      X86_AR_TYPE_ACCESSED)                          /* 0xC093 */
#define BOOT_AR_TSS_BUSY (X86_AR_P | X86_SYS_TSS_BUSY)               /* 0x008B */
#define BOOT_GDT_ENTRIES 6 /* null, code64, data, code32, TSS (2 slots) */
#define BOOT_GDT_LIMIT (BOOT_GDT_ENTRIES * 8 - 1)
#define BOOT_TSS_LIMIT 0x67 /* 104-byte TSS, no I/O bitmap */
#define BOOT_FLAT_LIMIT 0xFFFFFFFFu

/* Little-endian field access: images and guest structures are LE. */
static inline uint16_t ld_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ld_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ld_le64(const uint8_t *p)
{
    return ld_le32(p) | (uint64_t)ld_le32(p + 4) << 32;
}
static inline void st_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void st_le32(uint8_t *p, uint32_t v)
{
    st_le16(p, (uint16_t)v);
    st_le16(p + 2, (uint16_t)(v >> 16));
}
static inline void st_le64(uint8_t *p, uint64_t v)
{
    st_le32(p, (uint32_t)v);
    st_le32(p + 4, (uint32_t)(v >> 32));
}

/* [off, off + len) lies inside [0, size), without overflow. */
static inline bool load_range_ok(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

/* Round up to a page; saturates at UINT64_MAX so later range checks fail. */
static inline uint64_t load_page_up(uint64_t x)
{
    return x > UINT64_MAX - (LOAD_PAGE_SIZE - 1) ? UINT64_MAX
                                                 : (x + LOAD_PAGE_SIZE - 1) & ~(LOAD_PAGE_SIZE - 1);
}

static inline uint64_t load_min(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t load_max(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* One load request: the image, where it may go, where errors are written. */
struct load_env {
    struct plat_ram *ram;
    const uint8_t *img;
    size_t len;
    bool below_4g; /* Multiboot: everything must end at or below 4 GiB */
    char *err;
    size_t errlen;
};

/* A loadable range: filesz bytes from file_off, then memsz - filesz zeros. */
struct load_seg {
    const char *what; /* "ELF segment", "a.out-kludge segment", "flat image" */
    unsigned index;
    uint64_t file_off, filesz;
    uint64_t paddr, vaddr, memsz;
};

/* ELF header fields the loaders need (ELFCLASS32 values widened). */
struct elf_file {
    unsigned cls; /* ELFCLASS32 or ELFCLASS64 */
    uint16_t machine;
    uint64_t entry, phoff;
    uint16_t phnum, phentsize;
};

/* A validated image: how to copy it at commit and where it starts. */
struct load_plan {
    bool is_elf;          /* copy every PT_LOAD of elf; else copy seg */
    struct elf_file elf;
    struct load_seg seg;
    unsigned n_loaded;    /* segments with memsz > 0 */
    uint64_t entry;       /* physical entry point */
    uint64_t lo, hi;      /* physical extent [lo, hi) */
    uint32_t mb_flags;    /* Multiboot header flags (0 for 64-bit images) */
};

#define LOAD_WUR __attribute__((warn_unused_result))

/* loader.c */
vmxsim_err plat_load_error(const struct load_env *env, vmxsim_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define load_fail(env, ...) plat_load_error((env), VMXSIM_ERR_BAD_IMAGE, __VA_ARGS__)
LOAD_WUR vmxsim_err plat_load_check_seg(const struct load_env *env, const struct load_seg *s);
void plat_load_plan_init(struct load_plan *plan);
void plat_load_plan_add(struct load_plan *plan, const struct load_seg *s);
void plat_load_copy_seg(const struct load_env *env, const struct load_seg *s);
uint64_t plat_load_modules_base(const struct load_plan *plan);
uint64_t plat_load_module_next(uint64_t start, size_t len);
size_t plat_load_strsize(const char *s); /* strlen + 1; "" for NULL */
LOAD_WUR vmxsim_err plat_load_check_info_area(const struct load_env *env,
                                              const struct plat_load_opts *opts, uint64_t mods,
                                              size_t mod_size, size_t fixed_str);
uint64_t plat_load_put_str(struct plat_ram *ram, uint64_t *cursor, const char *s);

/* loader_elf.c */
bool plat_elf_has_magic(const uint8_t *img, size_t len);
LOAD_WUR vmxsim_err plat_elf_parse(const struct load_env *env, struct elf_file *f);
LOAD_WUR vmxsim_err plat_elf_plan(const struct load_env *env, const struct elf_file *f,
                                  struct load_plan *plan);
void plat_elf_commit(const struct load_env *env, const struct elf_file *f);

/* boot_gdt.c */
void plat_boot_write_gdt(struct plat_ram *ram);
void plat_boot_set_segments(struct plat_cpu_init *cpu, uint16_t cs_sel, uint32_t cs_ar);

/* boot64.c */
LOAD_WUR vmxsim_err plat_boot64_check_info(const struct load_env *env,
                                           const struct plat_load_opts *opts);
void plat_boot64_enter(struct plat_ram *ram, const struct plat_load_opts *opts,
                       const struct load_plan *plan, struct plat_cpu_init *cpu);
#endif
