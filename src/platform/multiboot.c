/*
 * Multiboot v1 OS image format (specification 0.6.96, §3.1): find and
 * validate the header, then plan the load from the a.out-kludge address
 * fields (flag 16) or from the ELF program headers.
 *
 * Interpretations (README "Boot"):
 *  - Flag 16 set: the address fields are used even when the file is ELF
 *    (what GRUB 2 and QEMU do); flag 16 clear: the file must be ELF32
 *    (EM_386 or EM_X86_64) or ELF64 (EM_X86_64).
 *  - Requirement bits 0-15 (§3.1.2): 0 (page-aligned modules) and 1 (memory
 *    information) are always honoured; 2 (video mode) is honoured by
 *    reporting the EGA text mode (§3.3 framebuffer_type 2) — the graphics
 *    header fields are only preferences and are ignored. Any other
 *    requirement bit makes the load fail, as §3.1.2 demands. Optional bits
 *    17-31 are ignored.
 */
#include <string.h>

#include "platform/multiboot.h"

static bool mb_header_at(const uint8_t *p)
{
    uint32_t magic = ld_le32(p + MB_HDR_MAGIC);
    uint32_t flags = ld_le32(p + MB_HDR_FLAGS);
    uint32_t sum = ld_le32(p + MB_HDR_CHECKSUM);

    return magic == MB_HEADER_MAGIC && (uint32_t)(magic + flags + sum) == 0;
}

/* §3.1.1: 32-bit aligned, the magic fields inside the first 8192 bytes. */
bool plat_mb_find_header(const uint8_t *img, size_t len, size_t *off)
{
    size_t limit = len < MB_HEADER_SEARCH ? len : MB_HEADER_SEARCH;

    for (size_t o = 0; limit >= MB_HDR_MIN_SIZE && o <= limit - MB_HDR_MIN_SIZE;
         o += MB_HEADER_ALIGN) {
        if (mb_header_at(img + o)) {
            *off = o;
            return true;
        }
    }
    return false;
}

struct mb_header {
    uint32_t offset; /* file offset of the header (< 8192) */
    uint32_t flags;
    uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

static vmxsim_err mb_read_header(const struct load_env *env, size_t off, struct mb_header *h)
{
    const uint8_t *p = env->img + off;
    uint32_t unknown;

    memset(h, 0, sizeof *h);
    h->offset = (uint32_t)off;
    h->flags = ld_le32(p + MB_HDR_FLAGS);
    unknown = h->flags & MB_HDR_F_REQUIRED_MASK & ~MB_HDR_F_SUPPORTED;
    if (unknown)
        return load_fail(env, "unsupported Multiboot requirement flags 0x%x (header flags 0x%x)",
                         unknown, h->flags);
    if (!(h->flags & MB_HDR_F_AOUT_KLUDGE))
        return VMXSIM_OK;
    if (!load_range_ok(off, MB_HDR_AOUT_SIZE, load_min(env->len, MB_HEADER_SEARCH)))
        return load_fail(env, "Multiboot header at 0x%zx truncated: address fields (flag 16) "
                              "beyond the file or its first 8192 bytes", off);
    h->header_addr = ld_le32(p + MB_HDR_HEADER_ADDR);
    h->load_addr = ld_le32(p + MB_HDR_LOAD_ADDR);
    h->load_end_addr = ld_le32(p + MB_HDR_LOAD_END_ADDR);
    h->bss_end_addr = ld_le32(p + MB_HDR_BSS_END_ADDR);
    h->entry_addr = ld_le32(p + MB_HDR_ENTRY_ADDR);
    return VMXSIM_OK;
}

/*
 * §3.1.3: the text starts at file offset (header offset - (header_addr -
 * load_addr)); load_end_addr 0 loads to the end of the file; bss_end_addr
 * 0 means no bss. Computes the single segment, unchecked against RAM.
 */
static vmxsim_err mb_aout_segment(const struct load_env *env, const struct mb_header *h,
                                  struct load_seg *s)
{
    uint64_t delta, file_off, size, memsz;

    if (h->load_addr > h->header_addr)
        return load_fail(env, "Multiboot load_addr 0x%x > header_addr 0x%x", h->load_addr,
                         h->header_addr);
    delta = (uint64_t)h->header_addr - h->load_addr;
    if (delta > h->offset)
        return load_fail(env, "Multiboot load offset before start of file (header at 0x%x, "
                              "header_addr - load_addr = 0x%llx)",
                         h->offset, (unsigned long long)delta);
    file_off = h->offset - delta;
    if (h->load_end_addr && h->load_end_addr < h->load_addr)
        return load_fail(env, "Multiboot load_end_addr 0x%x < load_addr 0x%x", h->load_end_addr,
                         h->load_addr);
    size = h->load_end_addr ? (uint64_t)h->load_end_addr - h->load_addr : env->len - file_off;
    if (!load_range_ok(file_off, size, env->len))
        return load_fail(env, "Multiboot load range [0x%llx, +0x%llx) beyond end of file "
                              "(%zu bytes)",
                         (unsigned long long)file_off, (unsigned long long)size, env->len);
    memsz = size;
    if (h->bss_end_addr && h->bss_end_addr < h->load_addr + size)
        return load_fail(env, "Multiboot bss_end_addr 0x%x < load end 0x%llx", h->bss_end_addr,
                         (unsigned long long)(h->load_addr + size));
    if (h->bss_end_addr)
        memsz = (uint64_t)h->bss_end_addr - h->load_addr;
    *s = (struct load_seg){ .what = "a.out-kludge segment", .file_off = file_off, .filesz = size,
                            .paddr = h->load_addr, .vaddr = h->load_addr, .memsz = memsz };
    return VMXSIM_OK;
}

static vmxsim_err mb_plan_aout(const struct load_env *env, const struct mb_header *h,
                               struct load_plan *plan)
{
    struct load_seg *s = &plan->seg;
    vmxsim_err rc = mb_aout_segment(env, h, s);

    if (!rc)
        rc = plat_load_check_seg(env, s);
    if (rc)
        return rc;
    if (s->memsz)
        plat_load_plan_add(plan, s);
    if (h->entry_addr < s->paddr || h->entry_addr - s->paddr >= s->memsz)
        return load_fail(env, "entry point 0x%x is not inside a loaded segment [0x%llx, +0x%llx)",
                         h->entry_addr, (unsigned long long)s->paddr, (unsigned long long)s->memsz);
    plan->entry = h->entry_addr;
    return VMXSIM_OK;
}

static vmxsim_err mb_plan_elf(const struct load_env *env, struct load_plan *plan)
{
    struct elf_file f;
    vmxsim_err rc;

    if (!plat_elf_has_magic(env->img, env->len))
        return load_fail(env, "Multiboot image is not ELF and its header has no address "
                              "fields (flag 16)");
    rc = plat_elf_parse(env, &f);
    if (!rc)
        rc = plat_elf_plan(env, &f, plan);
    if (!rc && plan->entry >= LOAD_4GIB)
        rc = load_fail(env, "Multiboot entry point 0x%llx is above 4 GiB",
                       (unsigned long long)plan->entry);
    return rc;
}

vmxsim_err plat_mb_plan(const struct load_env *env, struct load_plan *plan)
{
    struct mb_header h;
    size_t off = 0;
    vmxsim_err rc;

    if (!plat_mb_find_header(env->img, env->len, &off))
        return load_fail(env, "no Multiboot header in the first 8192 bytes");
    rc = mb_read_header(env, off, &h);
    if (rc)
        return rc;
    plan->mb_flags = h.flags;
    if (h.flags & MB_HDR_F_AOUT_KLUDGE)
        return mb_plan_aout(env, &h, plan);
    return mb_plan_elf(env, plan);
}
