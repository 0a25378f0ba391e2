/*
 * Image loading (DESIGN §8): detection, dispatch to the Multiboot / ELF64 /
 * flat planners, the segment checks every format shares, boot modules and
 * the commit that finally writes guest RAM.
 *
 * Every check runs before the first byte of RAM is written, all bounds
 * arithmetic is overflow-safe (load_range_ok in elf_load.h), and every failure returns
 * VMXSIM_ERR_BAD_IMAGE (image problems) or VMXSIM_ERR_BAD_ARG (caller
 * problems) with a one-line reason in err.
 */
#include <elf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "platform/elf_load.h"
#include "platform/multiboot.h"

vmxsim_err plat_load_error(const struct load_env *env, vmxsim_err code, const char *fmt, ...)
{
    va_list ap;

    if (env->err && env->errlen) {
        va_start(ap, fmt);
        vsnprintf(env->err, env->errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

size_t plat_load_strsize(const char *s) { return s ? strlen(s) + 1 : 1; }

/*
 * The checks every loadable range passes: file bytes inside the file,
 * filesz <= memsz, no 64-bit wrap, inside RAM (and below 4 GiB for
 * Multiboot, which starts with paging off), clear of the boot area.
 */
vmxsim_err plat_load_check_seg(const struct load_env *env, const struct load_seg *s)
{
    unsigned long long pa = s->paddr, msz = s->memsz, end;

    if (s->filesz > s->memsz)
        return load_fail(env, "%s %u: filesz 0x%llx > memsz 0x%llx", s->what, s->index,
                         (unsigned long long)s->filesz, msz);
    if (!load_range_ok(s->file_off, s->filesz, env->len))
        return load_fail(env, "%s %u: file range [0x%llx, +0x%llx) beyond end of file (%zu bytes)",
                         s->what, s->index, (unsigned long long)s->file_off,
                         (unsigned long long)s->filesz, env->len);
    if (!msz)
        return VMXSIM_OK;
    if (pa > UINT64_MAX - msz)
        return load_fail(env, "%s %u: [0x%llx, +0x%llx) wraps the 64-bit address space", s->what,
                         s->index, pa, msz);
    end = pa + msz;
    if (env->below_4g && end > LOAD_4GIB)
        return load_fail(env, "%s %u: [0x%llx, 0x%llx) ends above 4 GiB "
                              "(Multiboot runs with paging off)", s->what, s->index, pa, end);
    if (end > env->ram->size)
        return load_fail(env, "%s %u: [0x%llx, 0x%llx) outside RAM (0x%llx bytes)", s->what,
                         s->index, pa, end, (unsigned long long)env->ram->size);
    if (pa < PLAT_BOOT_AREA_END && end > PLAT_BOOT_PML4)
        return load_fail(env, "%s %u: [0x%llx, 0x%llx) overlaps the boot area [0x%llx, 0x%llx)",
                         s->what, s->index, pa, end, PLAT_BOOT_PML4, PLAT_BOOT_AREA_END);
    return VMXSIM_OK;
}

void plat_load_plan_init(struct load_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->lo = UINT64_MAX;
}

/* Account a checked segment with memsz > 0 in the plan's extent. */
void plat_load_plan_add(struct load_plan *plan, const struct load_seg *s)
{
    plan->n_loaded++;
    plan->lo = load_min(plan->lo, s->paddr);
    plan->hi = load_max(plan->hi, s->paddr + s->memsz);
}

/* A memsz-0 segment was never range-checked: do not even form its address. */
void plat_load_copy_seg(const struct load_env *env, const struct load_seg *s)
{
    uint8_t *dst;

    if (!s->memsz)
        return;
    dst = env->ram->base + s->paddr;
    memcpy(dst, env->img + s->file_off, s->filesz);
    memset(dst + s->filesz, 0, s->memsz - s->filesz);
}

/* Modules start at the first page at or above max(image end, 1 MiB). */
uint64_t plat_load_modules_base(const struct load_plan *plan)
{
    return load_max(load_page_up(plan->hi), LOAD_MODULE_FLOOR);
}

uint64_t plat_load_module_next(uint64_t start, size_t len)
{
    return start > UINT64_MAX - len ? UINT64_MAX : load_page_up(start + len);
}

/* Command line plus every module string, NULs included (saturating). */
static size_t load_strings_size(const struct plat_load_opts *opts)
{
    size_t total = plat_load_strsize(opts->cmdline);

    for (size_t i = 0; i < opts->n_modules; i++) {
        size_t n = plat_load_strsize(opts->modules[i].cmdline);

        total = n > SIZE_MAX - total ? SIZE_MAX : total + n;
    }
    return total;
}

/*
 * The boot info area [mods, PLAT_BOOT_INFO_END) must hold the module array
 * (n_modules * mod_size bytes), fixed_str bytes of loader strings and then
 * the command line and module strings. Nothing is truncated.
 */
vmxsim_err plat_load_check_info_area(const struct load_env *env,
                                     const struct plat_load_opts *opts, uint64_t mods,
                                     size_t mod_size, size_t fixed_str)
{
    uint64_t room = PLAT_BOOT_INFO_END - mods;
    size_t strings = load_strings_size(opts);

    if (opts->n_modules > room / mod_size)
        return load_fail(env, "too many modules (%zu) for the boot info area [0x%llx, 0x%llx)",
                         opts->n_modules, PLAT_BOOT_INFO, PLAT_BOOT_INFO_END);
    room -= opts->n_modules * mod_size;
    if (fixed_str > room || strings > room - fixed_str)
        return load_fail(env, "command line and module strings too long for the boot info area "
                              "(%zu bytes, %llu free)", strings,
                         (unsigned long long)(room > fixed_str ? room - fixed_str : 0));
    return VMXSIM_OK;
}

/* Copy a string (NULL: "") to *cursor in RAM; returns its address. */
uint64_t plat_load_put_str(struct plat_ram *ram, uint64_t *cursor, const char *s)
{
    uint64_t at = *cursor;
    size_t n = plat_load_strsize(s);

    if (s)
        memcpy(ram->base + at, s, n);
    else
        ram->base[at] = 0;
    *cursor += n;
    return at;
}

/* Flat binary: the whole file at PLAT_FLAT_LOAD, entered there. */
static vmxsim_err load_plan_flat(const struct load_env *env, struct load_plan *plan)
{
    struct load_seg *s = &plan->seg;

    if (env->len == 0)
        return load_fail(env, "empty image (0 bytes)");
    if (!load_range_ok(PLAT_FLAT_LOAD, env->len, env->ram->size))
        return load_fail(env, "flat image (%zu bytes) does not fit in RAM (0x%llx bytes) at 0x%llx",
                         env->len, (unsigned long long)env->ram->size, PLAT_FLAT_LOAD);
    *s = (struct load_seg){ .what = "flat image", .file_off = 0, .filesz = env->len,
                            .paddr = PLAT_FLAT_LOAD, .vaddr = PLAT_FLAT_LOAD, .memsz = env->len };
    plat_load_plan_add(plan, s);
    plan->entry = PLAT_FLAT_LOAD;
    return VMXSIM_OK;
}

/* ELF without a Multiboot header: ELF64 x86-64 only, 64-bit entry contract. */
static vmxsim_err load_plan_elf64(const struct load_env *env, struct load_plan *plan)
{
    struct elf_file f;
    vmxsim_err rc = plat_elf_parse(env, &f);

    if (rc)
        return rc;
    if (f.cls != ELFCLASS64)
        return load_fail(env, "32-bit ELF image without a Multiboot header "
                              "(only ELF64 boots in long mode)");
    return plat_elf_plan(env, &f, plan);
}

static vmxsim_err load_plan_image(struct load_env *env, enum plat_image_kind kind,
                                  struct load_plan *plan)
{
    plat_load_plan_init(plan);
    switch (kind) {
    case PLAT_IMAGE_MULTIBOOT:
        env->below_4g = true;
        return plat_mb_plan(env, plan);
    case PLAT_IMAGE_ELF64:
        return load_plan_elf64(env, plan);
    case PLAT_IMAGE_FLAT:
        break;
    }
    return load_plan_flat(env, plan);
}

/*
 * Every module lands page-aligned above the image, inside RAM. Multiboot
 * mod_start/mod_end are 32-bit with mod_end exclusive, so there a module
 * must end at or below 0xFFFFFFFF.
 */
static vmxsim_err load_check_modules(const struct load_env *env, const struct plat_load_opts *opts,
                                     const struct load_plan *plan)
{
    uint64_t limit = env->below_4g ? load_min(env->ram->size, LOAD_4GIB - 1) : env->ram->size;
    uint64_t at = plat_load_modules_base(plan);

    for (size_t i = 0; i < opts->n_modules; i++) {
        size_t len = opts->modules[i].len;

        if (!load_range_ok(at, len, limit))
            return load_fail(env, "module %zu (%zu bytes) does not fit in RAM%s at 0x%llx", i, len,
                             env->below_4g ? " below 4 GiB" : "", (unsigned long long)at);
        at = plat_load_module_next(at, len);
    }
    return VMXSIM_OK;
}

static vmxsim_err load_check_args(const struct load_env *env, const struct plat_load_opts *opts,
                                  const struct plat_boot *boot)
{
    if (!env->ram || !env->ram->base || !boot)
        return plat_load_error(env, VMXSIM_ERR_BAD_ARG,
                               "plat_load: no guest RAM or boot description");
    if (!env->img && env->len)
        return plat_load_error(env, VMXSIM_ERR_BAD_ARG, "plat_load: image pointer is NULL");
    if (env->ram->size < LOAD_MIN_RAM)
        return plat_load_error(env, VMXSIM_ERR_BAD_ARG,
                               "guest RAM too small (0x%llx bytes, need at least 1 MiB)",
                               (unsigned long long)env->ram->size);
    if (opts->n_modules && !opts->modules)
        return plat_load_error(env, VMXSIM_ERR_BAD_ARG, "plat_load: module array is NULL");
    for (size_t i = 0; i < opts->n_modules; i++)
        if (!opts->modules[i].data && opts->modules[i].len)
            return plat_load_error(env, VMXSIM_ERR_BAD_ARG, "plat_load: module %zu has no data", i);
    return VMXSIM_OK;
}

static void load_copy_modules(const struct load_env *env, const struct plat_load_opts *opts,
                              const struct load_plan *plan)
{
    uint64_t at = plat_load_modules_base(plan);

    for (size_t i = 0; i < opts->n_modules; i++) {
        if (opts->modules[i].len)
            memcpy(env->ram->base + at, opts->modules[i].data, opts->modules[i].len);
        at = plat_load_module_next(at, opts->modules[i].len);
    }
}

/* Write RAM: clear the boot area, image, modules, GDT, then the contract. */
static void load_commit(const struct load_env *env, const struct plat_load_opts *opts,
                        enum plat_image_kind kind, const struct load_plan *plan,
                        struct plat_boot *boot)
{
    memset(env->ram->base + PLAT_BOOT_PML4, 0, PLAT_BOOT_AREA_END - PLAT_BOOT_PML4);
    if (plan->is_elf)
        plat_elf_commit(env, &plan->elf);
    else
        plat_load_copy_seg(env, &plan->seg);
    load_copy_modules(env, opts, plan);
    plat_boot_write_gdt(env->ram);
    memset(boot, 0, sizeof *boot);
    boot->kind = kind;
    boot->image_lo = plan->lo;
    boot->image_hi = plan->hi;
    if (kind == PLAT_IMAGE_MULTIBOOT)
        plat_mb_enter(env->ram, opts, plan, &boot->cpu);
    else
        plat_boot64_enter(env->ram, opts, plan, &boot->cpu);
}

/*
 * Multiboot v1 §3.1.1: a header (magic 0x1BADB002, magic + flags + checksum
 * == 0 mod 2^32) 32-bit aligned in the first 8192 bytes wins over anything
 * else; a near-miss (bad checksum) is simply not a header. Then \x7fELF,
 * then flat.
 */
enum plat_image_kind plat_detect(const uint8_t *img, size_t len)
{
    size_t off;

    if (!img)
        return PLAT_IMAGE_FLAT;
    if (plat_mb_find_header(img, len, &off))
        return PLAT_IMAGE_MULTIBOOT;
    if (plat_elf_has_magic(img, len))
        return PLAT_IMAGE_ELF64;
    return PLAT_IMAGE_FLAT;
}

vmxsim_err plat_load(struct plat_ram *ram, const uint8_t *img, size_t len,
                     const struct plat_load_opts *opts, struct plat_boot *boot, char *err,
                     size_t errlen)
{
    static const struct plat_load_opts no_opts;
    struct load_env env = { .ram = ram, .img = img, .len = len, .err = err, .errlen = errlen };
    enum plat_image_kind kind = plat_detect(img, len);
    struct load_plan plan;
    vmxsim_err rc;

    if (err && errlen)
        err[0] = '\0';
    if (!opts)
        opts = &no_opts;
    rc = load_check_args(&env, opts, boot);
    if (!rc)
        rc = load_plan_image(&env, kind, &plan);
    if (!rc)
        rc = load_check_modules(&env, opts, &plan);
    if (!rc)
        rc = kind == PLAT_IMAGE_MULTIBOOT ? plat_mb_check_info(&env, opts)
                                          : plat_boot64_check_info(&env, opts);
    if (rc)
        return rc;
    load_commit(&env, opts, kind, &plan, boot);
    return VMXSIM_OK;
}
