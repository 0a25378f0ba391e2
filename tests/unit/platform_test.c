/*
 * Platform loaders and boot contract (DESIGN §8, README "Boot").
 *
 * Images are built in memory (ELF32/ELF64 via the <elf.h> structures,
 * Multiboot headers, a.out-kludge binaries) and loaded into a 64 MiB RAM
 * pre-filled with 0xCC, so zeroed bss and untouched bytes are visible.
 * Expected Multiboot offsets are spelled as the specification's numbers,
 * independently of src/platform/multiboot.h.
 */
#include <check.h>
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/bootinfo.h"
#include "platform/platform.h"

#define RAM_SIZE (64ull << 20)
#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define IMG_CAP 0x4000

/* The standard test kernel: text, data + bss, a non-load phdr. */
#define K_TEXT_PA 0x100000ull
#define K_TEXT_OFF 0x1000u
#define K_TEXT_SZ 0x400u
#define K_DATA_PA 0x200000ull
#define K_DATA_OFF 0x1400u
#define K_DATA_FSZ 0x100u
#define K_DATA_MSZ 0x3000u
#define K_ENTRY 0x100010ull
#define K_LEN 0x1500u
#define K_MB_OFF 0x200u /* Multiboot header file offset */

/* The standard a.out-kludge kernel: file offset 0 at 1 MiB. */
#define A_LOAD 0x100000u
#define A_HDR_OFF 0x40u
#define A_LEN 0x800u
#define A_BSS_END 0x102000u
#define A_ENTRY 0x100100u

#define MB_FLAGS_PAGE_MEM 0x3u
#define MB_AOUT (1u << 16)

struct image {
    uint8_t b[IMG_CAP];
    size_t len;
};

struct seg {
    uint32_t type;
    uint64_t off, vaddr, paddr, filesz, memsz;
};

static struct plat_ram g_ram;
static char g_err[256];
static struct plat_boot g_boot;

static void ram_setup(void)
{
    g_ram.size = RAM_SIZE;
    g_ram.base = malloc(RAM_SIZE);
    ck_assert_ptr_nonnull(g_ram.base);
    memset(g_ram.base, 0xCC, RAM_SIZE);
    memset(&g_boot, 0, sizeof g_boot);
    g_err[0] = 0;
}

static void ram_teardown(void)
{
    free(g_ram.base);
    g_ram.base = NULL;
}

/* ---- little helpers ---------------------------------------------------- */

static uint8_t pattern(uint64_t off) { return (uint8_t)(off * 13 + 5); }

static void put(struct image *im, size_t off, const void *p, size_t n)
{
    ck_assert_uint_le(off + n, IMG_CAP);
    memcpy(im->b + off, p, n);
    if (off + n > im->len)
        im->len = off + n;
}

static void put32(struct image *im, size_t off, uint32_t v) { put(im, off, &v, 4); }
static void put64(struct image *im, size_t off, uint64_t v) { put(im, off, &v, 8); }

static uint32_t rd32(uint64_t pa)
{
    uint32_t v;
    memcpy(&v, g_ram.base + pa, 4);
    return v;
}

static uint64_t rd64(uint64_t pa)
{
    uint64_t v;
    memcpy(&v, g_ram.base + pa, 8);
    return v;
}

static uint16_t rd16(uint64_t pa)
{
    uint16_t v;
    memcpy(&v, g_ram.base + pa, 2);
    return v;
}

static const char *ram_str(uint64_t pa) { return (const char *)g_ram.base + pa; }

static bool ram_all(uint64_t pa, uint64_t n, uint8_t v)
{
    for (uint64_t i = 0; i < n; i++)
        if (g_ram.base[pa + i] != v)
            return false;
    return true;
}

static uint64_t page_up(uint64_t x) { return (x + 0xFFF) & ~0xFFFull; }

/* ---- image builders ---------------------------------------------------- */

static void fill_pattern(struct image *im, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        im->b[off + i] = pattern(off + i);
    if (off + n > im->len)
        im->len = off + n;
}

static void build_elf64(struct image *im, uint16_t machine, uint64_t entry, const struct seg *s,
                        unsigned n)
{
    Elf64_Ehdr eh = { 0 };

    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = machine;
    eh.e_version = EV_CURRENT;
    eh.e_entry = entry;
    eh.e_phoff = sizeof eh;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = (uint16_t)n;
    put(im, 0, &eh, sizeof eh);
    for (unsigned i = 0; i < n; i++) {
        Elf64_Phdr ph = { .p_type = s[i].type, .p_offset = s[i].off, .p_vaddr = s[i].vaddr,
                          .p_paddr = s[i].paddr, .p_filesz = s[i].filesz, .p_memsz = s[i].memsz };
        put(im, sizeof eh + i * sizeof ph, &ph, sizeof ph);
    }
}

static void build_elf32(struct image *im, uint16_t machine, uint32_t entry, const struct seg *s,
                        unsigned n)
{
    Elf32_Ehdr eh = { 0 };

    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS32;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = machine;
    eh.e_version = EV_CURRENT;
    eh.e_entry = entry;
    eh.e_phoff = sizeof eh;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf32_Phdr);
    eh.e_phnum = (uint16_t)n;
    put(im, 0, &eh, sizeof eh);
    for (unsigned i = 0; i < n; i++) {
        Elf32_Phdr ph = { .p_type = s[i].type, .p_offset = (uint32_t)s[i].off,
                          .p_vaddr = (uint32_t)s[i].vaddr, .p_paddr = (uint32_t)s[i].paddr,
                          .p_filesz = (uint32_t)s[i].filesz, .p_memsz = (uint32_t)s[i].memsz };
        put(im, sizeof eh + i * sizeof ph, &ph, sizeof ph);
    }
}

static void std_segs(struct seg s[3], uint64_t vbias)
{
    s[0] = (struct seg){ PT_LOAD, K_TEXT_OFF, K_TEXT_PA + vbias, K_TEXT_PA, K_TEXT_SZ, K_TEXT_SZ };
    s[1] = (struct seg){ PT_LOAD, K_DATA_OFF, K_DATA_PA + vbias, K_DATA_PA, K_DATA_FSZ,
                         K_DATA_MSZ };
    s[2] = (struct seg){ PT_GNU_STACK, 0xFFFFFFF0, 0, 0, 0x100, 0x100 }; /* ignored */
}

static void mb_header(struct image *im, size_t off, uint32_t flags)
{
    put32(im, off, 0x1BADB002u);
    put32(im, off + 4, flags);
    put32(im, off + 8, (uint32_t)-(0x1BADB002u + flags));
}

/* ELF64 x86-64 standard kernel, optionally with a Multiboot header. */
static void kernel64(struct image *im, bool mb, uint32_t mb_flags)
{
    struct seg s[3];

    memset(im, 0, sizeof *im);
    std_segs(s, 0);
    fill_pattern(im, K_TEXT_OFF, K_LEN - K_TEXT_OFF);
    build_elf64(im, EM_X86_64, K_ENTRY, s, 3);
    if (mb)
        mb_header(im, K_MB_OFF, mb_flags);
}

/* ELF32 standard kernel with a Multiboot header. */
static void kernel32(struct image *im, uint16_t machine, uint32_t mb_flags)
{
    struct seg s[3];

    memset(im, 0, sizeof *im);
    std_segs(s, 0);
    fill_pattern(im, K_TEXT_OFF, K_LEN - K_TEXT_OFF);
    build_elf32(im, machine, (uint32_t)K_ENTRY, s, 3);
    mb_header(im, K_MB_OFF, mb_flags);
}

static void aout_fields(struct image *im, size_t off, uint32_t hdr, uint32_t load,
                        uint32_t load_end, uint32_t bss_end, uint32_t entry)
{
    put32(im, off + 12, hdr);
    put32(im, off + 16, load);
    put32(im, off + 20, load_end);
    put32(im, off + 24, bss_end);
    put32(im, off + 28, entry);
}

/* a.out-kludge kernel: the whole file at A_LOAD, bss to A_BSS_END. */
static void kernel_aout(struct image *im, uint32_t flags)
{
    memset(im, 0, sizeof *im);
    fill_pattern(im, 0, A_LEN);
    mb_header(im, A_HDR_OFF, flags | MB_AOUT);
    aout_fields(im, A_HDR_OFF, A_LOAD + A_HDR_OFF, A_LOAD, 0, A_BSS_END, A_ENTRY);
}

static vmxsim_err load(const struct image *im, const struct plat_load_opts *opts)
{
    return plat_load(&g_ram, im->b, im->len, opts, &g_boot, g_err, sizeof g_err);
}

static void load_ok(const struct image *im, const struct plat_load_opts *opts)
{
    vmxsim_err rc = load(im, opts);

    ck_assert_msg(rc == VMXSIM_OK, "load failed (%d): %s", rc, g_err);
}

static void expect_bad(const struct image *im, const struct plat_load_opts *opts, const char *word)
{
    vmxsim_err rc = load(im, opts);

    ck_assert_msg(rc == VMXSIM_ERR_BAD_IMAGE, "rc %d, err '%s' (wanted '%s')", rc, g_err, word);
    ck_assert_msg(strstr(g_err, word) != NULL, "err '%s' lacks '%s'", g_err, word);
    ck_assert_msg(strchr(g_err, '\n') == NULL, "err is not one line: '%s'", g_err);
}

/* Standard kernel segments landed, bss zeroed, bytes around untouched. */
static void check_std_kernel_bytes(void)
{
    for (unsigned i = 0; i < K_TEXT_SZ; i++)
        ck_assert_uint_eq(g_ram.base[K_TEXT_PA + i], pattern(K_TEXT_OFF + i));
    for (unsigned i = 0; i < K_DATA_FSZ; i++)
        ck_assert_uint_eq(g_ram.base[K_DATA_PA + i], pattern(K_DATA_OFF + i));
    ck_assert(ram_all(K_DATA_PA + K_DATA_FSZ, K_DATA_MSZ - K_DATA_FSZ, 0));
    ck_assert(ram_all(K_TEXT_PA + K_TEXT_SZ, 0x100, 0xCC));
    ck_assert(ram_all(K_DATA_PA + K_DATA_MSZ, 0x100, 0xCC));
    ck_assert_uint_eq(g_boot.image_lo, K_TEXT_PA);
    ck_assert_uint_eq(g_boot.image_hi, K_DATA_PA + K_DATA_MSZ);
}

/* ---- detection ---------------------------------------------------------- */

START_TEST(t_detect_basic)
{
    static struct image im;
    static const uint8_t junk[] = { 0x90, 0x90, 0xF4 };

    ck_assert_int_eq(plat_detect(NULL, 0), PLAT_IMAGE_FLAT);
    ck_assert_int_eq(plat_detect(junk, 0), PLAT_IMAGE_FLAT);
    ck_assert_int_eq(plat_detect(junk, sizeof junk), PLAT_IMAGE_FLAT);
    ck_assert_int_eq(plat_detect((const uint8_t *)"\x7f" "EL", 3), PLAT_IMAGE_FLAT);
    ck_assert_int_eq(plat_detect((const uint8_t *)"\x7f" "ELF", 4), PLAT_IMAGE_ELF64);
    kernel64(&im, false, 0);
    ck_assert_int_eq(plat_detect(im.b, im.len), PLAT_IMAGE_ELF64);
}
END_TEST

START_TEST(t_detect_mb_precedence)
{
    static struct image im;

    kernel64(&im, true, MB_FLAGS_PAGE_MEM); /* ELF64 with a Multiboot header */
    ck_assert_int_eq(plat_detect(im.b, im.len), PLAT_IMAGE_MULTIBOOT);
    kernel32(&im, EM_386, 0);
    ck_assert_int_eq(plat_detect(im.b, im.len), PLAT_IMAGE_MULTIBOOT);
    kernel_aout(&im, 0);
    ck_assert_int_eq(plat_detect(im.b, im.len), PLAT_IMAGE_MULTIBOOT);
}
END_TEST

START_TEST(t_detect_mb_placement)
{
    static struct image im;

    memset(&im, 0, sizeof im);
    mb_header(&im, 8192 - 12, 0); /* last aligned slot fully inside 8 KiB */
    ck_assert_int_eq(plat_detect(im.b, im.len), PLAT_IMAGE_MULTIBOOT);
    ck_assert_int_eq(plat_detect(im.b, im.len - 1), PLAT_IMAGE_FLAT); /* checksum cut off */

    memset(&im, 0, sizeof im);
    mb_header(&im, 8192, 0); /* beyond the first 8192 bytes */
    ck_assert_int_eq(plat_detect(im.b, im.len), PLAT_IMAGE_FLAT);

    memset(&im, 0, sizeof im);
    mb_header(&im, 8192 - 8, 0); /* straddles the 8 KiB limit */
    ck_assert_int_eq(plat_detect(im.b, im.len), PLAT_IMAGE_FLAT);

    memset(&im, 0, sizeof im);
    mb_header(&im, 0x102, 0); /* not 32-bit aligned */
    ck_assert_int_eq(plat_detect(im.b, im.len), PLAT_IMAGE_FLAT);
}
END_TEST

/* A near-miss (bad checksum) is not a Multiboot header (§3.1.2). */
START_TEST(t_detect_bad_checksum)
{
    static struct image im;

    kernel64(&im, true, 0);
    put32(&im, K_MB_OFF + 8, 0x12345678);
    ck_assert_int_eq(plat_detect(im.b, im.len), PLAT_IMAGE_ELF64);
    load_ok(&im, NULL); /* so it boots as a plain ELF64 */
    ck_assert(g_boot.cpu.long_mode);

    kernel32(&im, EM_386, 0);
    put32(&im, K_MB_OFF + 8, 0);
    ck_assert_int_eq(plat_detect(im.b, im.len), PLAT_IMAGE_ELF64);
    expect_bad(&im, NULL, "without a Multiboot header");
}
END_TEST

/* ---- 64-bit contract ---------------------------------------------------- */

START_TEST(t_elf64_load)
{
    static struct image im;

    kernel64(&im, false, 0);
    load_ok(&im, NULL);
    ck_assert_int_eq(g_boot.kind, PLAT_IMAGE_ELF64);
    ck_assert_str_eq(g_err, "");
    check_std_kernel_bytes();
    ck_assert_uint_eq(g_boot.cpu.rip, K_ENTRY);
}
END_TEST

START_TEST(t_elf64_cpu_state)
{
    static struct image im;
    const struct plat_cpu_init *c = &g_boot.cpu;

    kernel64(&im, false, 0);
    load_ok(&im, NULL);
    ck_assert(c->long_mode);
    ck_assert_uint_eq(c->cr0, 0x80050033u);
    ck_assert_uint_eq(c->cr4, 0x6A0u);
    ck_assert_uint_eq(c->efer, 0xD01u);
    ck_assert_uint_eq(c->cr3, PLAT_BOOT_PML4);
    ck_assert_uint_eq(c->rsp, PLAT_BOOT_STACK_TOP);
    ck_assert_uint_eq(c->rflags, 0x2);
    ck_assert_uint_eq(c->rdi, RAM_SIZE);
    ck_assert_uint_eq(c->rsi, PLAT_BOOT_INFO);
    ck_assert_uint_eq(c->rax, 0);
    ck_assert_uint_eq(c->rbx, 0);
    ck_assert_uint_eq(c->gdtr.base, PLAT_BOOT_GDT);
    ck_assert_uint_eq(c->gdtr.limit, 0x2F);
    ck_assert_uint_eq(c->idtr.base, PLAT_BOOT_IDT);
    ck_assert_uint_eq(c->idtr.limit, 0xFFF);
    ck_assert_uint_eq(c->seg[X86_SEG_CS].selector, PLAT_SEL_CODE64);
    ck_assert_uint_eq(c->seg[X86_SEG_CS].ar, 0xA09B);
    ck_assert_uint_eq(c->seg[X86_SEG_CS].base, 0);
    for (int s = X86_SEG_ES; s <= X86_SEG_GS; s++) {
        if (s == X86_SEG_CS)
            continue;
        ck_assert_uint_eq(c->seg[s].selector, PLAT_SEL_DATA);
        ck_assert_uint_eq(c->seg[s].ar, 0xC093);
        ck_assert_uint_eq(c->seg[s].base, 0);
        ck_assert_uint_eq(c->seg[s].limit, 0xFFFFFFFFu);
    }
    ck_assert_uint_eq(c->seg[X86_SEG_LDTR].selector, 0);
    ck_assert_uint_eq(c->seg[X86_SEG_LDTR].ar, 0x10000);
    ck_assert_uint_eq(c->seg[X86_SEG_TR].selector, PLAT_SEL_TSS);
    ck_assert_uint_eq(c->seg[X86_SEG_TR].base, PLAT_BOOT_TSS);
    ck_assert_uint_eq(c->seg[X86_SEG_TR].limit, 0x67);
    ck_assert_uint_eq(c->seg[X86_SEG_TR].ar, 0x8B);
}
END_TEST

/* Walk the boot page tables (SDM Vol. 3A §4.5) for every 2-MiB page of 4 GiB. */
START_TEST(t_elf64_page_tables)
{
    static struct image im;
    const uint64_t addr_mask = 0x000FFFFFFFFFF000ull;

    kernel64(&im, false, 0);
    load_ok(&im, NULL);
    for (uint64_t a = 0; a < 4 * GIB; a += 2 * MIB) {
        uint64_t e4 = rd64(PLAT_BOOT_PML4 + ((a >> 39) & 511) * 8);
        uint64_t e3 = rd64((e4 & addr_mask) + ((a >> 30) & 511) * 8);
        uint64_t e2 = rd64((e3 & addr_mask) + ((a >> 21) & 511) * 8);

        ck_assert_uint_eq(e4 & 0x7, 0x3);   /* P, RW, supervisor */
        ck_assert_uint_eq(e3 & 0x87, 0x3);  /* no 1-GiB page */
        ck_assert_uint_eq(e2 & 0x87, 0x83); /* P, RW, supervisor, PS */
        ck_assert_uint_eq(e2 & 0x000FFFFFFFE00000ull, a);
        ck_assert_uint_eq(e4 >> 63 | e3 >> 63 | e2 >> 63, 0); /* NX clear */
    }
    ck_assert_uint_eq(rd64(PLAT_BOOT_PML4) & addr_mask, PLAT_BOOT_PDPT);
    ck_assert(ram_all(PLAT_BOOT_PML4 + 8, 0x1000 - 8, 0));   /* PML4[1..511] */
    ck_assert(ram_all(PLAT_BOOT_PDPT + 32, 0x1000 - 32, 0)); /* PDPT[4..511] */
}
END_TEST

/* Decode a code/data descriptor (SDM Vol. 3A §3.4.5) into VMCS-format AR. */
static void decode_desc(uint64_t d, uint64_t *base, uint32_t *limit, uint32_t *ar)
{
    uint32_t raw = (uint32_t)((d & 0xFFFF) | ((d >> 32) & 0xF0000));

    *base = ((d >> 16) & 0xFFFFFF) | ((d >> 32) & 0xFF000000);
    *ar = (uint32_t)(((d >> 40) & 0xFF) | ((d >> 52) & 0xF) << 12);
    *limit = (*ar & 0x8000) ? raw << 12 | 0xFFF : raw;
}

static void check_gdt_matches(const struct plat_cpu_init *c)
{
    uint64_t base;
    uint32_t limit, ar;

    ck_assert_uint_eq(rd64(PLAT_BOOT_GDT), 0);
    for (int s = X86_SEG_ES; s <= X86_SEG_GS; s++) {
        decode_desc(rd64(PLAT_BOOT_GDT + c->seg[s].selector), &base, &limit, &ar);
        ck_assert_uint_eq(ar, c->seg[s].ar);
        ck_assert_uint_eq(base, c->seg[s].base);
        ck_assert_uint_eq(limit, c->seg[s].limit);
    }
    decode_desc(rd64(PLAT_BOOT_GDT + 0x08), &base, &limit, &ar);
    ck_assert_uint_eq(ar, 0xA09B);
    decode_desc(rd64(PLAT_BOOT_GDT + 0x10), &base, &limit, &ar);
    ck_assert_uint_eq(ar, 0xC093);
    decode_desc(rd64(PLAT_BOOT_GDT + 0x18), &base, &limit, &ar);
    ck_assert_uint_eq(ar, 0xC09B);
    ck_assert_uint_eq(limit, 0xFFFFFFFFu);
    /* 16-byte TSS descriptor: type 0xB busy, base 63:32 in the upper half */
    decode_desc(rd64(PLAT_BOOT_GDT + 0x20), &base, &limit, &ar);
    ck_assert_uint_eq(ar, 0x8B);
    ck_assert_uint_eq(limit, 0x67);
    ck_assert_uint_eq(base | rd64(PLAT_BOOT_GDT + 0x28) << 32, PLAT_BOOT_TSS);
    ck_assert_uint_eq(ar, c->seg[X86_SEG_TR].ar);
}

START_TEST(t_elf64_gdt_tss_idt)
{
    static struct image im;

    kernel64(&im, false, 0);
    load_ok(&im, NULL);
    check_gdt_matches(&g_boot.cpu);
    ck_assert_uint_eq(rd64(PLAT_BOOT_TSS + 4), PLAT_BOOT_STACK_TOP); /* RSP0 */
    ck_assert_uint_eq(rd16(PLAT_BOOT_TSS + 102), 104);               /* no I/O bitmap */
    ck_assert(ram_all(PLAT_BOOT_TSS + 12, 90, 0));
    ck_assert(ram_all(PLAT_BOOT_IDT, 256 * 16, 0));
    ck_assert(ram_all(PLAT_BOOT_STACK_LO, PLAT_BOOT_STACK_TOP - PLAT_BOOT_STACK_LO, 0));
}
END_TEST

static const uint8_t mod_a[5000] = { 1, 2, 3 };
static const uint8_t mod_b[3] = { 'x', 'y', 'z' };
static const struct plat_module test_mods[] = {
    { mod_a, sizeof mod_a, "mod-a arg=1" },
    { mod_b, sizeof mod_b, "b" },
    { NULL, 0, NULL },
};
static const struct plat_load_opts test_opts = {
    .cmdline = "console=ttyS0 quiet",
    .modules = test_mods,
    .n_modules = 3,
};

START_TEST(t_elf64_boot_info)
{
    static struct image im;
    struct plat_boot_info64 bi;
    struct plat_boot_module64 m[3];
    uint64_t expect = page_up(K_DATA_PA + K_DATA_MSZ);

    kernel64(&im, false, 0);
    load_ok(&im, &test_opts);
    memcpy(&bi, g_ram.base + PLAT_BOOT_INFO, sizeof bi);
    ck_assert_uint_eq(bi.magic, 0x53584D56u);
    ck_assert_mem_eq(g_ram.base + PLAT_BOOT_INFO, "VMXS", 4);
    ck_assert_uint_eq(bi.version, 1);
    ck_assert_uint_eq(bi.mem_size, RAM_SIZE);
    ck_assert_str_eq(ram_str(bi.cmdline), "console=ttyS0 quiet");
    ck_assert_uint_eq(bi.cmdline_len, strlen("console=ttyS0 quiet"));
    ck_assert_uint_eq(bi.mods_count, 3);
    ck_assert_uint_ge(bi.mods_addr, PLAT_BOOT_INFO + sizeof bi);
    ck_assert_uint_le(bi.mods_addr + sizeof m, PLAT_BOOT_INFO_END);
    memcpy(m, g_ram.base + bi.mods_addr, sizeof m);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(m[i].start, expect);
        ck_assert_uint_eq(m[i].end - m[i].start, test_mods[i].len);
        if (test_mods[i].len)
            ck_assert_mem_eq(g_ram.base + m[i].start, test_mods[i].data, test_mods[i].len);
        ck_assert_str_eq(ram_str(m[i].cmdline), test_mods[i].cmdline ? test_mods[i].cmdline : "");
        ck_assert_uint_eq(m[i].cmdline_len, strlen(ram_str(m[i].cmdline)));
        ck_assert_uint_lt(m[i].cmdline, PLAT_BOOT_INFO_END);
        expect = page_up(m[i].end);
    }
}
END_TEST

START_TEST(t_elf64_no_opts_info)
{
    static struct image im;
    struct plat_boot_info64 bi;

    kernel64(&im, false, 0);
    load_ok(&im, NULL);
    memcpy(&bi, g_ram.base + PLAT_BOOT_INFO, sizeof bi);
    ck_assert_uint_eq(bi.mods_count, 0);
    ck_assert_uint_eq(bi.cmdline_len, 0);
    ck_assert_str_eq(ram_str(bi.cmdline), "");
}
END_TEST

/* Higher-half ELF: e_entry is virtual, translated through its segment. */
START_TEST(t_elf64_virtual_entry)
{
    static struct image im;
    struct seg s[3];
    const uint64_t bias = 0xFFFFFFFF80000000ull;

    memset(&im, 0, sizeof im);
    std_segs(s, bias);
    fill_pattern(&im, K_TEXT_OFF, K_LEN - K_TEXT_OFF);
    build_elf64(&im, EM_X86_64, K_ENTRY + bias, s, 3);
    load_ok(&im, NULL);
    ck_assert_uint_eq(g_boot.cpu.rip, K_ENTRY);
    check_std_kernel_bytes();
}
END_TEST

/* Page 0 is not part of the boot area; the boot area ends at 0x80000. */
START_TEST(t_elf64_boot_area_edges)
{
    static struct image im;
    struct seg s[2] = {
        { PT_LOAD, K_TEXT_OFF, 0, 0, 0x100, 0x1000 },
        { PT_LOAD, K_TEXT_OFF, 0x80000, 0x80000, 0x100, 0x100 },
    };

    memset(&im, 0, sizeof im);
    fill_pattern(&im, K_TEXT_OFF, 0x100);
    build_elf64(&im, EM_X86_64, 0x80000, s, 2);
    load_ok(&im, NULL);
    ck_assert_uint_eq(g_boot.image_lo, 0);
    ck_assert_uint_eq(g_boot.image_hi, 0x80100);
    ck_assert_uint_eq(g_ram.base[0x80000], pattern(K_TEXT_OFF));
}
END_TEST

/* A PT_LOAD with memsz 0 occupies nothing: its addresses are not checked or used. */
START_TEST(t_elf64_empty_segment_ignored)
{
    static struct image im;
    struct seg s[3];

    memset(&im, 0, sizeof im);
    std_segs(s, 0);
    s[2] = (struct seg){ PT_LOAD, 0, UINT64_MAX - 1, UINT64_MAX - 1, 0, 0 };
    fill_pattern(&im, K_TEXT_OFF, K_LEN - K_TEXT_OFF);
    build_elf64(&im, EM_X86_64, K_ENTRY, s, 3);
    load_ok(&im, NULL);
    check_std_kernel_bytes();
}
END_TEST

START_TEST(t_flat)
{
    static const uint8_t code[] = { 0xB0, 0x41, 0xE6, 0xE9, 0xF4 };
    struct plat_boot_info64 bi;

    ck_assert_int_eq(plat_load(&g_ram, code, sizeof code, NULL, &g_boot, g_err, sizeof g_err),
                     VMXSIM_OK);
    ck_assert_int_eq(g_boot.kind, PLAT_IMAGE_FLAT);
    ck_assert_mem_eq(g_ram.base + PLAT_FLAT_LOAD, code, sizeof code);
    ck_assert_uint_eq(g_ram.base[PLAT_FLAT_LOAD + sizeof code], 0xCC);
    ck_assert_uint_eq(g_boot.cpu.rip, PLAT_FLAT_LOAD);
    ck_assert_uint_eq(g_boot.image_lo, PLAT_FLAT_LOAD);
    ck_assert_uint_eq(g_boot.image_hi, PLAT_FLAT_LOAD + sizeof code);
    ck_assert(g_boot.cpu.long_mode);
    ck_assert_uint_eq(g_boot.cpu.cr3, PLAT_BOOT_PML4);
    check_gdt_matches(&g_boot.cpu);
    memcpy(&bi, g_ram.base + PLAT_BOOT_INFO, sizeof bi);
    ck_assert_uint_eq(bi.magic, PLAT_BOOT_INFO64_MAGIC);
}
END_TEST

/* ---- Multiboot ---------------------------------------------------------- */

static void check_mb_cpu(uint64_t entry)
{
    const struct plat_cpu_init *c = &g_boot.cpu;

    ck_assert_int_eq(g_boot.kind, PLAT_IMAGE_MULTIBOOT);
    ck_assert(!c->long_mode);
    ck_assert_uint_eq(c->rip, entry);
    ck_assert_uint_eq(c->rax, 0x2BADB002u);
    ck_assert_uint_eq(c->rbx, PLAT_BOOT_INFO);
    ck_assert_uint_eq(c->rsp, PLAT_BOOT_STACK_TOP);
    ck_assert_uint_eq(c->rflags, 0x2);
    ck_assert_uint_eq(c->cr0, 0x11);
    ck_assert_uint_eq(c->cr3, 0);
    ck_assert_uint_eq(c->cr4, 0);
    ck_assert_uint_eq(c->efer, 0);
    ck_assert_uint_eq(c->seg[X86_SEG_CS].selector, PLAT_SEL_CODE32);
    ck_assert_uint_eq(c->seg[X86_SEG_CS].ar, 0xC09B);
    ck_assert_uint_eq(c->seg[X86_SEG_CS].base, 0);
    ck_assert_uint_eq(c->seg[X86_SEG_CS].limit, 0xFFFFFFFFu);
    for (int s = X86_SEG_ES; s <= X86_SEG_GS; s++) {
        if (s == X86_SEG_CS)
            continue;
        ck_assert_uint_eq(c->seg[s].selector, PLAT_SEL_DATA);
        ck_assert_uint_eq(c->seg[s].ar, 0xC093);
        ck_assert_uint_eq(c->seg[s].base, 0);
        ck_assert_uint_eq(c->seg[s].limit, 0xFFFFFFFFu);
    }
    ck_assert_uint_eq(c->seg[X86_SEG_LDTR].ar, 0x10000);
    ck_assert_uint_eq(c->seg[X86_SEG_TR].ar, 0x8B);
    ck_assert_uint_eq(c->gdtr.base, PLAT_BOOT_GDT);
    ck_assert_uint_eq(c->gdtr.limit, 0x2F);
    ck_assert_uint_eq(c->idtr.base, 0);
    ck_assert_uint_eq(c->idtr.limit, 0x3FF);
    check_gdt_matches(c);
}

START_TEST(t_mb_elf32)
{
    static struct image im;

    kernel32(&im, EM_386, MB_FLAGS_PAGE_MEM);
    load_ok(&im, NULL);
    check_std_kernel_bytes();
    check_mb_cpu(K_ENTRY);
    ck_assert_uint_eq(rd32(PLAT_BOOT_TSS + 4), PLAT_BOOT_STACK_TOP); /* ESP0 */
    ck_assert_uint_eq(rd16(PLAT_BOOT_TSS + 8), PLAT_SEL_DATA);       /* SS0 */
    ck_assert_uint_eq(rd16(PLAT_BOOT_TSS + 102), 104);
}
END_TEST

/* x86-64 code linked then objcopy'd to elf32-i386 keeps EM_X86_64 in places. */
START_TEST(t_mb_elf32_x86_64_machine)
{
    static struct image im;

    kernel32(&im, EM_X86_64, 0);
    load_ok(&im, NULL);
    check_std_kernel_bytes();
    check_mb_cpu(K_ENTRY);
}
END_TEST

START_TEST(t_mb_elf64)
{
    static struct image im;

    kernel64(&im, true, MB_FLAGS_PAGE_MEM);
    load_ok(&im, NULL);
    check_std_kernel_bytes();
    check_mb_cpu(K_ENTRY);
}
END_TEST

/* Every Multiboot info field (§3.3), at the specification's offsets. */
START_TEST(t_mb_info)
{
    static struct image im;
    const uint64_t mbi = PLAT_BOOT_INFO;
    uint32_t flags, mods, mmap, mmap_len;
    uint64_t expect = page_up(K_DATA_PA + K_DATA_MSZ);

    kernel32(&im, EM_386, MB_FLAGS_PAGE_MEM);
    load_ok(&im, &test_opts);
    flags = rd32(mbi + 0);
    ck_assert_uint_eq(flags, 0x24D); /* mem, cmdline, mods, mmap, loader name */
    ck_assert_uint_eq(rd32(mbi + 4), 640);
    ck_assert_uint_eq(rd32(mbi + 8), (RAM_SIZE - MIB) / 1024);
    ck_assert_str_eq(ram_str(rd32(mbi + 16)), "console=ttyS0 quiet");
    ck_assert_str_eq(ram_str(rd32(mbi + 64)), "vmxsim");
    ck_assert_uint_lt(rd32(mbi + 16), PLAT_BOOT_INFO_END);

    ck_assert_uint_eq(rd32(mbi + 20), 3);
    mods = rd32(mbi + 24);
    for (uint32_t i = 0; i < 3; i++) {
        uint32_t start = rd32(mods + i * 16), end = rd32(mods + i * 16 + 4);

        ck_assert_uint_eq(start % 4096, 0);
        ck_assert_uint_eq(start, expect);
        ck_assert_uint_ge(start, K_DATA_PA + K_DATA_MSZ);
        ck_assert_uint_eq(end - start, test_mods[i].len);
        if (test_mods[i].len)
            ck_assert_mem_eq(g_ram.base + start, test_mods[i].data, test_mods[i].len);
        ck_assert_str_eq(ram_str(rd32(mods + i * 16 + 8)),
                         test_mods[i].cmdline ? test_mods[i].cmdline : "");
        ck_assert_uint_eq(rd32(mods + i * 16 + 12), 0);
        expect = page_up(end);
    }

    mmap_len = rd32(mbi + 44);
    mmap = rd32(mbi + 48);
    ck_assert_uint_eq(mmap_len, 3 * 24);
    {
        const uint64_t want[3][3] = { { 0, 0x9FC00, 1 }, { 0x9FC00, 0x60400, 2 },
                                      { MIB, RAM_SIZE - MIB, 1 } };
        uint32_t p = mmap;

        for (int i = 0; i < 3; i++) {
            ck_assert_uint_eq(rd32(p), 20);
            ck_assert_uint_eq(rd64(p + 4), want[i][0]);
            ck_assert_uint_eq(rd64(p + 12), want[i][1]);
            ck_assert_uint_eq(rd32(p + 20), want[i][2]);
            p += rd32(p) + 4;
        }
        ck_assert_uint_eq(p, mmap + mmap_len);
    }
    /* absent: boot_device, syms, drives, config, APM, VBE, framebuffer */
    ck_assert_uint_eq(flags & (1u << 1 | 1u << 4 | 1u << 5 | 1u << 7 | 1u << 8 | 1u << 10 |
                               1u << 11 | 1u << 12),
                      0);
    ck_assert(ram_all(mbi + 28, 16, 0));
}
END_TEST

START_TEST(t_mb_info_no_opts)
{
    static struct image im;

    kernel32(&im, EM_386, 0);
    load_ok(&im, NULL);
    ck_assert_uint_eq(rd32(PLAT_BOOT_INFO + 20), 0);
    ck_assert_str_eq(ram_str(rd32(PLAT_BOOT_INFO + 16)), "");
}
END_TEST

/* Flag 2 (video mode) is honoured with an 80x25 EGA text framebuffer. */
START_TEST(t_mb_video_flag)
{
    static struct image im;
    const uint64_t mbi = PLAT_BOOT_INFO;

    kernel32(&im, EM_386, 0x7);
    load_ok(&im, NULL);
    ck_assert_uint_eq(rd32(mbi), 0x24D | 1u << 12);
    ck_assert_uint_eq(rd64(mbi + 88), 0xB8000);
    ck_assert_uint_eq(rd32(mbi + 96), 160);
    ck_assert_uint_eq(rd32(mbi + 100), 80);
    ck_assert_uint_eq(rd32(mbi + 104), 25);
    ck_assert_uint_eq(g_ram.base[mbi + 108], 16);
    ck_assert_uint_eq(g_ram.base[mbi + 109], 2);
}
END_TEST

/* With exactly 1 MiB of RAM there is no upper memory: two mmap entries. */
START_TEST(t_mb_min_ram)
{
    static struct image im;
    struct plat_ram one = { g_ram.base, MIB };

    kernel_aout(&im, 0);
    aout_fields(&im, A_HDR_OFF, 0x80000 + A_HDR_OFF, 0x80000, 0, 0, 0x80000);
    ck_assert_int_eq(plat_load(&one, im.b, im.len, NULL, &g_boot, g_err, sizeof g_err), VMXSIM_OK);
    ck_assert_uint_eq(rd32(PLAT_BOOT_INFO + 8), 0);       /* mem_upper */
    ck_assert_uint_eq(rd32(PLAT_BOOT_INFO + 44), 2 * 24); /* mmap_length */
    ck_assert_uint_eq(g_boot.cpu.rip, 0x80000);
}
END_TEST

/* Optional bits 17-31 that we do not know are ignored (§3.1.2). */
START_TEST(t_mb_optional_flags_ignored)
{
    static struct image im;

    kernel32(&im, EM_386, 0x3u | 1u << 20 | 1u << 31);
    load_ok(&im, NULL);
    check_mb_cpu(K_ENTRY);
}
END_TEST

START_TEST(t_mb_aout)
{
    static struct image im;

    kernel_aout(&im, MB_FLAGS_PAGE_MEM);
    load_ok(&im, NULL);
    check_mb_cpu(A_ENTRY);
    ck_assert_mem_eq(g_ram.base + A_LOAD, im.b, A_LEN); /* whole file, header included */
    ck_assert(ram_all(A_LOAD + A_LEN, A_BSS_END - A_LOAD - A_LEN, 0));
    ck_assert_uint_eq(g_ram.base[A_BSS_END], 0xCC);
    ck_assert_uint_eq(g_boot.image_lo, A_LOAD);
    ck_assert_uint_eq(g_boot.image_hi, A_BSS_END);
}
END_TEST

/* load_end_addr loads part of the file; header not at file offset 0 of the text. */
START_TEST(t_mb_aout_partial)
{
    static struct image im;
    const uint32_t load = 0x300000, text_off = 0x20; /* text starts at file offset 0x20 */

    kernel_aout(&im, 0);
    aout_fields(&im, A_HDR_OFF, load + (A_HDR_OFF - text_off), load, load + 0x200, 0, load + 0x10);
    load_ok(&im, NULL);
    check_mb_cpu(load + 0x10);
    ck_assert_mem_eq(g_ram.base + load, im.b + text_off, 0x200);
    ck_assert_uint_eq(g_ram.base[load + 0x200], 0xCC);
    ck_assert_uint_eq(g_boot.image_hi, load + 0x200);
}
END_TEST

/* Flag 16 wins over the ELF program headers (as GRUB 2 and QEMU do). */
START_TEST(t_mb_aout_in_elf)
{
    static struct image im;
    const uint32_t load = 0x400000;

    kernel32(&im, EM_386, MB_AOUT);
    aout_fields(&im, K_MB_OFF, load + K_MB_OFF, load, 0, 0, load + 0x1000);
    load_ok(&im, NULL);
    check_mb_cpu(load + 0x1000);
    ck_assert_mem_eq(g_ram.base + load, im.b, im.len);
    ck_assert_uint_eq(g_ram.base[K_TEXT_PA], 0xCC); /* phdrs not used */
}
END_TEST

/* ---- validation: one test per error ------------------------------------ */

START_TEST(t_bad_empty)
{
    static struct image im;

    memset(&im, 0, sizeof im);
    expect_bad(&im, NULL, "empty");
}
END_TEST

START_TEST(t_bad_truncated_ehdr)
{
    static struct image im;

    kernel64(&im, false, 0);
    im.len = 10;
    expect_bad(&im, NULL, "truncated ELF header");
    im.len = 40; /* identification fine, e_phoff etc. missing */
    expect_bad(&im, NULL, "truncated ELF header");
    kernel32(&im, EM_386, 0); /* Multiboot header at 0x200 stays, ELF32 header cut */
    memmove(im.b + 0x20, im.b + K_MB_OFF, 12);
    im.len = 0x2C;
    expect_bad(&im, NULL, "truncated ELF header");
}
END_TEST

START_TEST(t_bad_phdrs_truncated)
{
    static struct image im;

    kernel64(&im, false, 0);
    im.len = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + 10;
    expect_bad(&im, NULL, "program headers");
}
END_TEST

START_TEST(t_bad_phoff_overflow)
{
    static struct image im;

    kernel64(&im, false, 0);
    put64(&im, offsetof(Elf64_Ehdr, e_phoff), UINT64_MAX - 8);
    expect_bad(&im, NULL, "program headers");
}
END_TEST

START_TEST(t_bad_machine)
{
    static struct image im;
    uint16_t arm = EM_ARM, i386 = EM_386;

    kernel64(&im, false, 0);
    put(&im, offsetof(Elf64_Ehdr, e_machine), &arm, 2);
    expect_bad(&im, NULL, "machine");
    kernel64(&im, false, 0);
    put(&im, offsetof(Elf64_Ehdr, e_machine), &i386, 2); /* EM_386 only in ELFCLASS32 */
    expect_bad(&im, NULL, "machine");
    kernel32(&im, EM_ARM, 0);
    expect_bad(&im, NULL, "machine");
}
END_TEST

START_TEST(t_bad_class)
{
    static struct image im;

    kernel64(&im, false, 0);
    im.b[EI_CLASS] = 3;
    expect_bad(&im, NULL, "class");
    im.b[EI_CLASS] = ELFCLASSNONE;
    expect_bad(&im, NULL, "class");
}
END_TEST

START_TEST(t_bad_big_endian)
{
    static struct image im;

    kernel64(&im, false, 0);
    im.b[EI_DATA] = ELFDATA2MSB;
    expect_bad(&im, NULL, "little-endian");
}
END_TEST

START_TEST(t_bad_version_and_type)
{
    static struct image im;
    uint16_t rel = ET_REL;

    kernel64(&im, false, 0);
    im.b[EI_VERSION] = 0;
    expect_bad(&im, NULL, "version");
    kernel64(&im, false, 0);
    put(&im, offsetof(Elf64_Ehdr, e_type), &rel, 2);
    expect_bad(&im, NULL, "not an executable");
}
END_TEST

START_TEST(t_bad_phentsize)
{
    static struct image im;
    uint16_t sz = sizeof(Elf32_Phdr);

    kernel64(&im, false, 0);
    put(&im, offsetof(Elf64_Ehdr, e_phentsize), &sz, 2);
    expect_bad(&im, NULL, "phentsize");
}
END_TEST

static void kernel64_seg1(struct image *im, struct seg s1)
{
    struct seg s[3];

    memset(im, 0, sizeof *im);
    std_segs(s, 0);
    s[1] = s1;
    fill_pattern(im, K_TEXT_OFF, K_LEN - K_TEXT_OFF);
    build_elf64(im, EM_X86_64, K_ENTRY, s, 3);
}

START_TEST(t_bad_seg_file_range)
{
    static struct image im;

    kernel64_seg1(&im, (struct seg){ PT_LOAD, K_DATA_OFF, K_DATA_PA, K_DATA_PA, 0x200, 0x200 });
    expect_bad(&im, NULL, "beyond end of file");
    kernel64_seg1(&im, (struct seg){ PT_LOAD, UINT64_MAX - 4, K_DATA_PA, K_DATA_PA, 0x10, 0x10 });
    expect_bad(&im, NULL, "beyond end of file");
}
END_TEST

START_TEST(t_bad_filesz_gt_memsz)
{
    static struct image im;

    kernel64_seg1(&im, (struct seg){ PT_LOAD, K_DATA_OFF, K_DATA_PA, K_DATA_PA, 0x100, 0x80 });
    expect_bad(&im, NULL, "filesz");
}
END_TEST

START_TEST(t_bad_seg_outside_ram)
{
    static struct image im;

    kernel64_seg1(&im, (struct seg){ PT_LOAD, K_DATA_OFF, 0, RAM_SIZE - 0x80, 0x100, 0x100 });
    expect_bad(&im, NULL, "outside RAM");
    kernel64_seg1(&im, (struct seg){ PT_LOAD, K_DATA_OFF, 0, 8 * GIB, 0x100, 0x100 });
    expect_bad(&im, NULL, "outside RAM");
}
END_TEST

START_TEST(t_bad_seg_wraps)
{
    static struct image im;

    kernel64_seg1(&im, (struct seg){ PT_LOAD, K_DATA_OFF, 0, UINT64_MAX - 0x10, 0x100, 0x100 });
    expect_bad(&im, NULL, "wraps");
}
END_TEST

START_TEST(t_bad_seg_boot_area)
{
    static struct image im;

    kernel64_seg1(&im, (struct seg){ PT_LOAD, K_DATA_OFF, 0x9000, 0x9000, 0x100, 0x100 });
    expect_bad(&im, NULL, "boot area");
    /* straddles 0x1000 */
    kernel64_seg1(&im, (struct seg){ PT_LOAD, K_DATA_OFF, 0, 0, 0x100, 0x1001 });
    expect_bad(&im, NULL, "boot area");
    kernel64_seg1(&im, (struct seg){ PT_LOAD, K_DATA_OFF, 0x7FFFF, 0x7FFFF, 0x1, 0x1 });
    expect_bad(&im, NULL, "boot area");
}
END_TEST

START_TEST(t_bad_no_pt_load)
{
    static struct image im;
    struct seg note = { PT_NOTE, K_TEXT_OFF, K_TEXT_PA, K_TEXT_PA, 0x10, 0x10 };
    struct seg empty = { PT_LOAD, K_TEXT_OFF, K_TEXT_PA, K_TEXT_PA, 0, 0 };

    memset(&im, 0, sizeof im);
    fill_pattern(&im, K_TEXT_OFF, 0x100);
    build_elf64(&im, EM_X86_64, K_TEXT_PA, &note, 1);
    expect_bad(&im, NULL, "PT_LOAD");
    build_elf64(&im, EM_X86_64, K_TEXT_PA, &empty, 1);
    expect_bad(&im, NULL, "PT_LOAD");
    build_elf64(&im, EM_X86_64, K_TEXT_PA, NULL, 0);
    expect_bad(&im, NULL, "PT_LOAD");
}
END_TEST

START_TEST(t_bad_entry)
{
    static struct image im;

    kernel64(&im, false, 0);
    put64(&im, offsetof(Elf64_Ehdr, e_entry), K_TEXT_PA + K_TEXT_SZ); /* one past text */
    expect_bad(&im, NULL, "entry point");
    kernel64(&im, true, 0); /* Multiboot ELF64 with an entry above 4 GiB */
    put64(&im, offsetof(Elf64_Ehdr, e_entry), 0x100100000ull);
    expect_bad(&im, NULL, "entry point");
}
END_TEST

START_TEST(t_bad_elf32_without_mb)
{
    static struct image im;

    kernel32(&im, EM_386, 0);
    memset(im.b + K_MB_OFF, 0, 12);
    expect_bad(&im, NULL, "without a Multiboot header");
}
END_TEST

START_TEST(t_bad_mb_requirement)
{
    static struct image im;

    for (unsigned bit = 3; bit < 16; bit++) {
        kernel32(&im, EM_386, 1u << bit);
        expect_bad(&im, NULL, "requirement");
    }
}
END_TEST

START_TEST(t_bad_mb_above_4g)
{
    static struct image im;
    struct seg s[3];

    memset(&im, 0, sizeof im);
    std_segs(s, 0);
    s[1].paddr = s[1].vaddr = 4 * GIB;
    fill_pattern(&im, K_TEXT_OFF, K_LEN - K_TEXT_OFF);
    build_elf64(&im, EM_X86_64, K_ENTRY, s, 3);
    mb_header(&im, K_MB_OFF, 0);
    expect_bad(&im, NULL, "4 GiB");
}
END_TEST

START_TEST(t_bad_mb_not_elf)
{
    static struct image im;

    memset(&im, 0, sizeof im);
    fill_pattern(&im, 0, 0x100);
    mb_header(&im, 0x10, 0);
    expect_bad(&im, NULL, "address fields");
}
END_TEST

START_TEST(t_bad_aout_load_addr)
{
    static struct image im;

    kernel_aout(&im, 0);
    aout_fields(&im, A_HDR_OFF, A_LOAD, A_LOAD + 0x100, 0, 0, A_ENTRY);
    expect_bad(&im, NULL, "load_addr");
}
END_TEST

START_TEST(t_bad_aout_load_offset)
{
    static struct image im;

    kernel_aout(&im, 0);
    aout_fields(&im, A_HDR_OFF, A_LOAD + A_HDR_OFF + 4, A_LOAD, 0, 0, A_ENTRY);
    expect_bad(&im, NULL, "load offset");
}
END_TEST

START_TEST(t_bad_aout_load_end)
{
    static struct image im;

    kernel_aout(&im, 0);
    aout_fields(&im, A_HDR_OFF, A_LOAD + A_HDR_OFF, A_LOAD, A_LOAD - 1, 0, A_ENTRY);
    expect_bad(&im, NULL, "load_end_addr");
    aout_fields(&im, A_HDR_OFF, A_LOAD + A_HDR_OFF, A_LOAD, A_LOAD + A_LEN + 1, 0, A_ENTRY);
    expect_bad(&im, NULL, "beyond end of file");
    aout_fields(&im, A_HDR_OFF, A_LOAD + A_HDR_OFF, A_LOAD, 0xFFFFFFFF, 0, A_ENTRY);
    expect_bad(&im, NULL, "beyond end of file");
}
END_TEST

START_TEST(t_bad_aout_bss_end)
{
    static struct image im;

    kernel_aout(&im, 0);
    aout_fields(&im, A_HDR_OFF, A_LOAD + A_HDR_OFF, A_LOAD, 0, A_LOAD + A_LEN - 1, A_ENTRY);
    expect_bad(&im, NULL, "bss_end_addr");
}
END_TEST

START_TEST(t_bad_aout_entry)
{
    static struct image im;

    kernel_aout(&im, 0);
    aout_fields(&im, A_HDR_OFF, A_LOAD + A_HDR_OFF, A_LOAD, 0, A_BSS_END, A_BSS_END);
    expect_bad(&im, NULL, "entry point");
    aout_fields(&im, A_HDR_OFF, A_LOAD + A_HDR_OFF, A_LOAD, 0, 0, A_LOAD - 1);
    expect_bad(&im, NULL, "entry point");
}
END_TEST

START_TEST(t_bad_aout_header_truncated)
{
    static struct image im;

    memset(&im, 0, sizeof im);
    fill_pattern(&im, 0, 0x40);
    mb_header(&im, 0x30, MB_AOUT); /* address fields would run past 0x40 */
    im.len = 0x40;
    expect_bad(&im, NULL, "truncated");
    memset(&im, 0, sizeof im);
    mb_header(&im, 8192 - 16, MB_AOUT); /* address fields past the first 8 KiB */
    fill_pattern(&im, 8192, 0x100);
    expect_bad(&im, NULL, "truncated");
}
END_TEST

START_TEST(t_bad_aout_boot_area)
{
    static struct image im;

    kernel_aout(&im, 0);
    aout_fields(&im, A_HDR_OFF, 0x8000 + A_HDR_OFF, 0x8000, 0, 0, 0x8000);
    expect_bad(&im, NULL, "boot area");
}
END_TEST

START_TEST(t_bad_module_fit)
{
    static struct image im;
    struct plat_module big = { mod_a, RAM_SIZE, "big" }; /* length only: never copied */
    struct plat_load_opts opts = { .modules = &big, .n_modules = 1 };

    kernel64(&im, false, 0);
    expect_bad(&im, &opts, "module 0");
    kernel32(&im, EM_386, 0);
    expect_bad(&im, &opts, "does not fit");
    ck_assert(ram_all(K_TEXT_PA, 0x1000, 0xCC)); /* failed loads write nothing */
    ck_assert(ram_all(PLAT_BOOT_PML4, 0x1000, 0xCC));
}
END_TEST

/*
 * A module that would cross 4 GiB is refused for Multiboot. Validation runs
 * before any write, so a RAM that only claims 6 GiB is enough here.
 */
START_TEST(t_bad_module_above_4g)
{
    static struct image im;
    struct plat_module m = { mod_a, 512 * MIB, "m" };
    struct plat_load_opts opts = { .modules = &m, .n_modules = 1 };
    struct plat_ram fake = { g_ram.base, 6 * GIB };
    struct seg s = { PT_LOAD, K_TEXT_OFF, 0xE0000000, 0xE0000000, 0x100, 0x100 };

    memset(&im, 0, sizeof im);
    fill_pattern(&im, K_TEXT_OFF, 0x100);
    build_elf32(&im, EM_386, 0xE0000000, &s, 1);
    mb_header(&im, K_MB_OFF, 0);
    ck_assert_int_eq(plat_load(&fake, im.b, im.len, &opts, &g_boot, g_err, sizeof g_err),
                     VMXSIM_ERR_BAD_IMAGE);
    ck_assert_msg(strstr(g_err, "below 4 GiB") != NULL, "%s", g_err);
    m.len = 0x100000000ull - 0xE0001000ull; /* would end exactly at 4 GiB: mod_end overflows */
    ck_assert_int_eq(plat_load(&fake, im.b, im.len, &opts, &g_boot, g_err, sizeof g_err),
                     VMXSIM_ERR_BAD_IMAGE);
    ck_assert_msg(strstr(g_err, "below 4 GiB") != NULL, "%s", g_err);
}
END_TEST

START_TEST(t_bad_cmdline_too_long)
{
    static struct image im;
    static char line[0x8000];
    struct plat_load_opts opts = { .cmdline = line };

    memset(line, 'a', sizeof line - 1);
    kernel32(&im, EM_386, 0);
    expect_bad(&im, &opts, "too long");
    kernel64(&im, false, 0);
    expect_bad(&im, &opts, "command line");
    /* the largest line that fits still loads */
    line[0x6000] = 0;
    load_ok(&im, &opts);
    ck_assert_uint_eq(strlen(ram_str(rd64(PLAT_BOOT_INFO + 16))), 0x6000);
}
END_TEST

START_TEST(t_bad_too_many_modules)
{
    static struct image im;
    static struct plat_module many[2000];
    struct plat_load_opts opts = { .modules = many, .n_modules = 2000 };

    kernel32(&im, EM_386, 0);
    expect_bad(&im, &opts, "too many modules");
    kernel64(&im, false, 0);
    expect_bad(&im, &opts, "too many modules");
}
END_TEST

START_TEST(t_bad_flat_too_big)
{
    static uint8_t flat[64];
    struct plat_ram small = { g_ram.base, PLAT_FLAT_LOAD + 32 };

    memset(flat, 0x90, sizeof flat);
    ck_assert_int_eq(plat_load(&small, flat, sizeof flat, NULL, &g_boot, g_err, sizeof g_err),
                     VMXSIM_ERR_BAD_IMAGE);
    ck_assert_msg(strstr(g_err, "does not fit") != NULL, "%s", g_err);
}
END_TEST

START_TEST(t_bad_args)
{
    static struct image im;
    struct plat_ram tiny = { g_ram.base, 0x80000 };
    struct plat_load_opts opts = { .n_modules = 1 };
    struct plat_module nodata = { NULL, 10, NULL };
    struct plat_load_opts opts2 = { .modules = &nodata, .n_modules = 1 };

    kernel64(&im, false, 0);
    const size_t el = sizeof g_err;

    ck_assert_int_eq(plat_load(NULL, im.b, im.len, NULL, &g_boot, g_err, el), VMXSIM_ERR_BAD_ARG);
    ck_assert_int_eq(plat_load(&g_ram, im.b, im.len, NULL, NULL, g_err, el), VMXSIM_ERR_BAD_ARG);
    ck_assert_int_eq(plat_load(&g_ram, NULL, 10, NULL, &g_boot, g_err, el), VMXSIM_ERR_BAD_ARG);
    ck_assert_int_eq(plat_load(&tiny, im.b, im.len, NULL, &g_boot, g_err, el), VMXSIM_ERR_BAD_ARG);
    ck_assert_msg(strstr(g_err, "too small") != NULL, "%s", g_err);
    ck_assert_int_eq(load(&im, &opts), VMXSIM_ERR_BAD_ARG);
    ck_assert_int_eq(load(&im, &opts2), VMXSIM_ERR_BAD_ARG);
    /* no error buffer at all is fine */
    ck_assert_int_eq(plat_load(&g_ram, im.b, 10, NULL, &g_boot, NULL, 0), VMXSIM_ERR_BAD_IMAGE);
    ck_assert_int_eq(plat_load(&g_ram, im.b, im.len, NULL, &g_boot, g_err, 1), VMXSIM_OK);
}
END_TEST

/* ---- robustness: every truncation, random corruption ------------------- */

static void load_exact_copy(const uint8_t *src, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees any over-read */
    vmxsim_err rc;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, src, len);
    g_err[0] = 0;
    rc = plat_load(&g_ram, copy, len, NULL, &g_boot, g_err, sizeof g_err);
    ck_assert_msg(rc == VMXSIM_OK || (rc == VMXSIM_ERR_BAD_IMAGE && g_err[0]),
                  "len %zu: rc %d err '%s'", len, rc, g_err);
    free(copy);
}

static void truncate_all(const struct image *im)
{
    for (size_t n = 0; n <= im->len; n++)
        load_exact_copy(im->b, n);
    ck_assert_int_eq(load(im, NULL), VMXSIM_OK);
}

START_TEST(t_truncate_every_length)
{
    static struct image im;

    kernel64(&im, false, 0);
    truncate_all(&im);
    kernel64(&im, true, 0);
    truncate_all(&im);
    kernel32(&im, EM_386, MB_FLAGS_PAGE_MEM);
    truncate_all(&im);
    kernel_aout(&im, 0);
    truncate_all(&im);
}
END_TEST

/* Deterministic corruption of header bytes: never a crash, always a clean result. */
START_TEST(t_corrupt_headers)
{
    static struct image im, bad;
    uint64_t x = 0x9E3779B97F4A7C15ull;

    for (int k = 0; k < 4; k++) {
        if (k == 0)
            kernel64(&im, false, 0);
        else if (k == 1)
            kernel64(&im, true, 0);
        else if (k == 2)
            kernel32(&im, EM_386, 0);
        else
            kernel_aout(&im, 0);
        for (int iter = 0; iter < 3000; iter++) {
            bad = im;
            for (int j = 0; j < 3; j++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                bad.b[(x >> 8) % 0x240] = (uint8_t)x; /* ELF header, phdrs, MB header */
            }
            load_exact_copy(bad.b, bad.len);
        }
    }
}
END_TEST

static Suite *platform_suite(void)
{
    Suite *s = suite_create("platform");
    TCase *det = tcase_create("detect");
    TCase *b64 = tcase_create("boot64");
    TCase *mb = tcase_create("multiboot");
    TCase *bad = tcase_create("validation");
    TCase *rob = tcase_create("robustness");
    TCase *all[] = { det, b64, mb, bad, rob };

    for (unsigned i = 0; i < sizeof all / sizeof all[0]; i++) {
        tcase_add_checked_fixture(all[i], ram_setup, ram_teardown);
        suite_add_tcase(s, all[i]);
    }
    tcase_set_timeout(rob, 300);
    tcase_set_timeout(b64, 30);

    tcase_add_test(det, t_detect_basic);
    tcase_add_test(det, t_detect_mb_precedence);
    tcase_add_test(det, t_detect_mb_placement);
    tcase_add_test(det, t_detect_bad_checksum);

    tcase_add_test(b64, t_elf64_load);
    tcase_add_test(b64, t_elf64_cpu_state);
    tcase_add_test(b64, t_elf64_page_tables);
    tcase_add_test(b64, t_elf64_gdt_tss_idt);
    tcase_add_test(b64, t_elf64_boot_info);
    tcase_add_test(b64, t_elf64_no_opts_info);
    tcase_add_test(b64, t_elf64_virtual_entry);
    tcase_add_test(b64, t_elf64_boot_area_edges);
    tcase_add_test(b64, t_elf64_empty_segment_ignored);
    tcase_add_test(b64, t_flat);

    tcase_add_test(mb, t_mb_elf32);
    tcase_add_test(mb, t_mb_elf32_x86_64_machine);
    tcase_add_test(mb, t_mb_elf64);
    tcase_add_test(mb, t_mb_info);
    tcase_add_test(mb, t_mb_info_no_opts);
    tcase_add_test(mb, t_mb_video_flag);
    tcase_add_test(mb, t_mb_min_ram);
    tcase_add_test(mb, t_mb_optional_flags_ignored);
    tcase_add_test(mb, t_mb_aout);
    tcase_add_test(mb, t_mb_aout_partial);
    tcase_add_test(mb, t_mb_aout_in_elf);

    tcase_add_test(bad, t_bad_empty);
    tcase_add_test(bad, t_bad_truncated_ehdr);
    tcase_add_test(bad, t_bad_phdrs_truncated);
    tcase_add_test(bad, t_bad_phoff_overflow);
    tcase_add_test(bad, t_bad_machine);
    tcase_add_test(bad, t_bad_class);
    tcase_add_test(bad, t_bad_big_endian);
    tcase_add_test(bad, t_bad_version_and_type);
    tcase_add_test(bad, t_bad_phentsize);
    tcase_add_test(bad, t_bad_seg_file_range);
    tcase_add_test(bad, t_bad_filesz_gt_memsz);
    tcase_add_test(bad, t_bad_seg_outside_ram);
    tcase_add_test(bad, t_bad_seg_wraps);
    tcase_add_test(bad, t_bad_seg_boot_area);
    tcase_add_test(bad, t_bad_no_pt_load);
    tcase_add_test(bad, t_bad_entry);
    tcase_add_test(bad, t_bad_elf32_without_mb);
    tcase_add_test(bad, t_bad_mb_requirement);
    tcase_add_test(bad, t_bad_mb_above_4g);
    tcase_add_test(bad, t_bad_mb_not_elf);
    tcase_add_test(bad, t_bad_aout_load_addr);
    tcase_add_test(bad, t_bad_aout_load_offset);
    tcase_add_test(bad, t_bad_aout_load_end);
    tcase_add_test(bad, t_bad_aout_bss_end);
    tcase_add_test(bad, t_bad_aout_entry);
    tcase_add_test(bad, t_bad_aout_header_truncated);
    tcase_add_test(bad, t_bad_aout_boot_area);
    tcase_add_test(bad, t_bad_module_fit);
    tcase_add_test(bad, t_bad_module_above_4g);
    tcase_add_test(bad, t_bad_cmdline_too_long);
    tcase_add_test(bad, t_bad_too_many_modules);
    tcase_add_test(bad, t_bad_flat_too_big);
    tcase_add_test(bad, t_bad_args);

    tcase_add_test(rob, t_truncate_every_length);
    tcase_add_test(rob, t_corrupt_headers);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(platform_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
