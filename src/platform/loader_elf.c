/*
 * ELF program-header loading (System V gABI, "Program Loading"): parse and
 * validate the ELF header, check every PT_LOAD, place it at p_paddr, find
 * the physical entry point. ELFCLASS32 and ELFCLASS64, little-endian only.
 *
 * Field offsets come from the system <elf.h> structures (offsetof); the
 * bytes are decoded explicitly as little-endian, so no unaligned or
 * host-endian access happens and nothing outside [img, img + len) is read.
 */
#include <elf.h>
#include <string.h>

#include "platform/elf_load.h"

#define EH32(field) offsetof(Elf32_Ehdr, field)
#define EH64(field) offsetof(Elf64_Ehdr, field)
#define PH32(field) offsetof(Elf32_Phdr, field)
#define PH64(field) offsetof(Elf64_Phdr, field)

bool plat_elf_has_magic(const uint8_t *img, size_t len)
{
    return len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0;
}

static void elf_read_ehdr32(const uint8_t *p, struct elf_file *f)
{
    f->machine = ld_le16(p + EH32(e_machine));
    f->entry = ld_le32(p + EH32(e_entry));
    f->phoff = ld_le32(p + EH32(e_phoff));
    f->phentsize = ld_le16(p + EH32(e_phentsize));
    f->phnum = ld_le16(p + EH32(e_phnum));
}

static void elf_read_ehdr64(const uint8_t *p, struct elf_file *f)
{
    f->machine = ld_le16(p + EH64(e_machine));
    f->entry = ld_le64(p + EH64(e_entry));
    f->phoff = ld_le64(p + EH64(e_phoff));
    f->phentsize = ld_le16(p + EH64(e_phentsize));
    f->phnum = ld_le16(p + EH64(e_phnum));
}

/* e_ident: magic, class, data encoding, version (gABI "ELF Identification"). */
static vmxsim_err elf_check_ident(const struct load_env *env)
{
    const uint8_t *id = env->img;

    if (env->len < EI_NIDENT || !plat_elf_has_magic(id, env->len))
        return load_fail(env, "truncated ELF header (%zu bytes)", env->len);
    if (id[EI_CLASS] != ELFCLASS32 && id[EI_CLASS] != ELFCLASS64)
        return load_fail(env, "unsupported ELF class %u", id[EI_CLASS]);
    if (id[EI_DATA] != ELFDATA2LSB)
        return load_fail(env, "unsupported ELF data encoding %u (only little-endian ELFDATA2LSB)",
                         id[EI_DATA]);
    if (id[EI_VERSION] != EV_CURRENT)
        return load_fail(env, "unsupported ELF version %u", id[EI_VERSION]);
    return VMXSIM_OK;
}

/*
 * ELF64 must be EM_X86_64. ELF32 may be EM_386 or EM_X86_64: test kernels
 * are linked for x86-64 and converted with objcopy -O elf32-i386.
 */
static bool elf_machine_ok(const struct elf_file *f)
{
    if (f->machine == EM_X86_64)
        return true;
    return f->cls == ELFCLASS32 && f->machine == EM_386;
}

static vmxsim_err elf_check_header(const struct load_env *env, const struct elf_file *f,
                                   uint16_t type)
{
    size_t want = f->cls == ELFCLASS64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);

    if (type != ET_EXEC && type != ET_DYN)
        return load_fail(env, "ELF type %u is not an executable (ET_EXEC or ET_DYN)", type);
    if (!elf_machine_ok(f))
        return load_fail(env, "ELF machine %u is not x86 (EM_X86_64%s)", f->machine,
                         f->cls == ELFCLASS32 ? " or EM_386" : "");
    if (f->phentsize != want)
        return load_fail(env, "ELF e_phentsize %u does not match the class (expected %zu)",
                         f->phentsize, want);
    if (!load_range_ok(f->phoff, (uint64_t)f->phnum * f->phentsize, env->len))
        return load_fail(env, "ELF program headers [0x%llx, +%u*%u) beyond end of file (%zu bytes)",
                         (unsigned long long)f->phoff, f->phnum, f->phentsize, env->len);
    return VMXSIM_OK;
}

vmxsim_err plat_elf_parse(const struct load_env *env, struct elf_file *f)
{
    vmxsim_err rc = elf_check_ident(env);
    size_t need;
    uint16_t type;

    if (rc)
        return rc;
    memset(f, 0, sizeof *f);
    f->cls = env->img[EI_CLASS];
    need = f->cls == ELFCLASS64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    if (env->len < need)
        return load_fail(env, "truncated ELF header (%zu bytes, need %zu)", env->len, need);
    if (f->cls == ELFCLASS64)
        elf_read_ehdr64(env->img, f);
    else
        elf_read_ehdr32(env->img, f);
    type = ld_le16(env->img + EH64(e_type)); /* same offset in both classes */
    return elf_check_header(env, f, type);
}

/* Program header i (bounds checked by plat_elf_parse), widened to a load_seg. */
static uint32_t elf_get_phdr(const uint8_t *img, const struct elf_file *f, unsigned i,
                             struct load_seg *s)
{
    const uint8_t *p = img + f->phoff + (uint64_t)i * f->phentsize;

    *s = (struct load_seg){ .what = "ELF segment", .index = i };
    if (f->cls == ELFCLASS64) {
        s->file_off = ld_le64(p + PH64(p_offset));
        s->vaddr = ld_le64(p + PH64(p_vaddr));
        s->paddr = ld_le64(p + PH64(p_paddr));
        s->filesz = ld_le64(p + PH64(p_filesz));
        s->memsz = ld_le64(p + PH64(p_memsz));
        return ld_le32(p + PH64(p_type));
    }
    s->file_off = ld_le32(p + PH32(p_offset));
    s->vaddr = ld_le32(p + PH32(p_vaddr));
    s->paddr = ld_le32(p + PH32(p_paddr));
    s->filesz = ld_le32(p + PH32(p_filesz));
    s->memsz = ld_le32(p + PH32(p_memsz));
    return ld_le32(p + PH32(p_type));
}

/*
 * e_entry is a virtual address: find the PT_LOAD whose [p_vaddr, +p_memsz)
 * holds it and translate to p_paddr (as GRUB 2 does for higher-half
 * kernels; identical when vaddr == paddr). Outside every segment: error.
 */
static vmxsim_err elf_plan_entry(const struct load_env *env, const struct elf_file *f,
                                 struct load_plan *plan)
{
    struct load_seg s;

    for (unsigned i = 0; i < f->phnum; i++) {
        if (elf_get_phdr(env->img, f, i, &s) != PT_LOAD || !s.memsz)
            continue;
        if (f->entry >= s.vaddr && f->entry - s.vaddr < s.memsz) {
            plan->entry = s.paddr + (f->entry - s.vaddr);
            return VMXSIM_OK;
        }
    }
    return load_fail(env, "entry point 0x%llx is not inside a loaded segment",
                     (unsigned long long)f->entry);
}

vmxsim_err plat_elf_plan(const struct load_env *env, const struct elf_file *f,
                         struct load_plan *plan)
{
    struct load_seg s;
    vmxsim_err rc;

    plan->is_elf = true;
    plan->elf = *f;
    for (unsigned i = 0; i < f->phnum; i++) {
        if (elf_get_phdr(env->img, f, i, &s) != PT_LOAD)
            continue;
        rc = plat_load_check_seg(env, &s);
        if (rc)
            return rc;
        if (s.memsz)
            plat_load_plan_add(plan, &s);
    }
    if (!plan->n_loaded)
        return load_fail(env, "ELF has no PT_LOAD segment with memory (phnum %u)", f->phnum);
    return elf_plan_entry(env, f, plan);
}

/* Copy every PT_LOAD (all checked by plat_elf_plan): filesz bytes, then zeros. */
void plat_elf_commit(const struct load_env *env, const struct elf_file *f)
{
    struct load_seg s;

    for (unsigned i = 0; i < f->phnum; i++)
        if (elf_get_phdr(env->img, f, i, &s) == PT_LOAD)
            plat_load_copy_seg(env, &s);
}
