/*
 * The 64-bit entry contract (DESIGN §8, README "Boot"), used for ELF64
 * images without a Multiboot header and for flat images: the state a UEFI
 * application or a 64-bit boot stub would leave, built in the boot area.
 *
 *   PLAT_BOOT_PML4 0x1000  PML4[0] -> PDPT
 *   PLAT_BOOT_PDPT 0x2000  PDPT[0..3] -> PD0..PD3
 *   PLAT_BOOT_PD   0x3000  4 PDs, 2048 2-MiB pages: identity map of 0..4 GiB
 *   PLAT_BOOT_GDT  0x7000  boot GDT (boot_gdt.c)
 *   PLAT_BOOT_TSS  0x7800  64-bit TSS: RSP0 = PLAT_BOOT_STACK_TOP, no I/O bitmap
 *   PLAT_BOOT_IDT  0x8000  256 zeroed (not-present) 16-byte gates, limit 0xFFF
 *   PLAT_BOOT_INFO 0x9000  struct plat_boot_info64 (bootinfo.h), modules, strings
 *   0x70000-0x80000        64 KiB stack, RSP = 0x80000
 */
#include <string.h>

#include "platform/bootinfo.h"
#include "platform/elf_load.h"

/* Paging-structure entry bits, SDM Vol. 3A §4.5, Tables 4-15, 4-17, 4-18. */
#define BOOT_PTE_P (1ull << 0)  /* present */
#define BOOT_PTE_RW (1ull << 1) /* writable; U/S (bit 2) clear: supervisor */
#define BOOT_PTE_PS (1ull << 7) /* PDE maps a 2-MiB page */
#define BOOT_PD_COUNT 4         /* 4 PDs x 512 x 2 MiB = 4 GiB */
#define BOOT_PT_ENTRIES 512
#define BOOT_2MIB 0x200000ull
#define BOOT_IDT_GATES 256
#define BOOT_IDT_GATE_SIZE 16

#define BI64_MODS_ADDR (PLAT_BOOT_INFO + 64)
#define BI64_FIELD(f) offsetof(struct plat_boot_info64, f)
#define BI64_MOD_FIELD(f) offsetof(struct plat_boot_module64, f)

vmxsim_err plat_boot64_check_info(const struct load_env *env, const struct plat_load_opts *opts)
{
    return plat_load_check_info_area(env, opts, BI64_MODS_ADDR, sizeof(struct plat_boot_module64),
                                     0);
}

/* Identity map of [0, 4 GiB) with 2-MiB pages, all P|RW, supervisor, NX clear. */
static void boot64_write_page_tables(struct plat_ram *ram)
{
    uint8_t *pml4 = ram->base + PLAT_BOOT_PML4;
    uint8_t *pdpt = ram->base + PLAT_BOOT_PDPT;

    memset(pml4, 0, LOAD_PAGE_SIZE);
    memset(pdpt, 0, LOAD_PAGE_SIZE);
    st_le64(pml4, PLAT_BOOT_PDPT | BOOT_PTE_P | BOOT_PTE_RW);
    for (unsigned i = 0; i < BOOT_PD_COUNT; i++) {
        uint64_t pd = PLAT_BOOT_PD + i * LOAD_PAGE_SIZE;

        st_le64(pdpt + i * 8, pd | BOOT_PTE_P | BOOT_PTE_RW);
        for (unsigned j = 0; j < BOOT_PT_ENTRIES; j++) {
            uint64_t page = ((uint64_t)i * BOOT_PT_ENTRIES + j) * BOOT_2MIB;

            st_le64(ram->base + pd + j * 8, page | BOOT_PTE_P | BOOT_PTE_RW | BOOT_PTE_PS);
        }
    }
}

/* 64-bit TSS (SDM Vol. 3A §7.7, Figure 7-11): RSP0, I/O map base past the limit. */
static void boot64_write_tss(struct plat_ram *ram)
{
    uint8_t *tss = ram->base + PLAT_BOOT_TSS;

    memset(tss, 0, BOOT_TSS_LIMIT + 1);
    st_le64(tss + 4, PLAT_BOOT_STACK_TOP);  /* RSP0 */
    st_le16(tss + 102, BOOT_TSS_LIMIT + 1); /* I/O map base = 104: no bitmap */
}

/*
 * IDT of not-present gates (SDM Vol. 3A §6.14.1): an exception before the
 * guest loads its own IDT escalates to #DF and then shutdown.
 */
static void boot64_write_idt(struct plat_ram *ram)
{
    memset(ram->base + PLAT_BOOT_IDT, 0, BOOT_IDT_GATES * BOOT_IDT_GATE_SIZE);
}

static void boot64_write_mods(struct plat_ram *ram, const struct plat_load_opts *opts,
                              const struct load_plan *plan, uint64_t *str)
{
    uint64_t at = plat_load_modules_base(plan);

    for (size_t i = 0; i < opts->n_modules; i++) {
        uint8_t *m = ram->base + BI64_MODS_ADDR + i * sizeof(struct plat_boot_module64);
        const char *s = opts->modules[i].cmdline;

        st_le64(m + BI64_MOD_FIELD(start), at);
        st_le64(m + BI64_MOD_FIELD(end), at + opts->modules[i].len);
        st_le64(m + BI64_MOD_FIELD(cmdline_len), plat_load_strsize(s) - 1);
        st_le64(m + BI64_MOD_FIELD(cmdline), plat_load_put_str(ram, str, s));
        at = plat_load_module_next(at, opts->modules[i].len);
    }
}

/* struct plat_boot_info64 at PLAT_BOOT_INFO, written field by field (LE). */
static void boot64_write_info(struct plat_ram *ram, const struct plat_load_opts *opts,
                              const struct load_plan *plan)
{
    uint8_t *bi = ram->base + PLAT_BOOT_INFO;
    uint64_t str = BI64_MODS_ADDR + (uint64_t)opts->n_modules * sizeof(struct plat_boot_module64);

    memset(bi, 0, BI64_MODS_ADDR - PLAT_BOOT_INFO);
    st_le32(bi + BI64_FIELD(magic), PLAT_BOOT_INFO64_MAGIC);
    st_le32(bi + BI64_FIELD(version), PLAT_BOOT_INFO64_VERSION);
    st_le64(bi + BI64_FIELD(mem_size), ram->size);
    st_le64(bi + BI64_FIELD(mods_count), opts->n_modules);
    st_le64(bi + BI64_FIELD(mods_addr), BI64_MODS_ADDR);
    boot64_write_mods(ram, opts, plan, &str);
    st_le64(bi + BI64_FIELD(cmdline_len), plat_load_strsize(opts->cmdline) - 1);
    st_le64(bi + BI64_FIELD(cmdline), plat_load_put_str(ram, &str, opts->cmdline));
}

/*
 * IA-32e mode as after SDM Vol. 3A §9.8.5 (initializing IA-32e mode):
 * CR0 = PE|MP|ET|NE|WP|AM|PG (0x80050033, the value Linux runs with; AM
 * only matters at CPL 3 with RFLAGS.AC), CR4 = PAE|PGE|OSFXSR|OSXMMEXCPT,
 * EFER = SCE|LME|LMA|NXE, CS = 64-bit code, RFLAGS = 2 (IF = 0).
 */
static void boot64_cpu_init(struct plat_cpu_init *cpu, uint64_t entry, uint64_t ram_size)
{
    cpu->long_mode = true;
    cpu->rip = entry;
    cpu->rsp = PLAT_BOOT_STACK_TOP;
    cpu->rdi = ram_size;
    cpu->rsi = PLAT_BOOT_INFO;
    cpu->rflags = X86_RFLAGS_FIXED;
    cpu->cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_AM |
               X86_CR0_PG;
    cpu->cr3 = PLAT_BOOT_PML4;
    cpu->cr4 = X86_CR4_PAE | X86_CR4_PGE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT;
    cpu->efer = X86_EFER_SCE | X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE;
    cpu->gdtr = (struct x86_dtable){ .base = PLAT_BOOT_GDT, .limit = BOOT_GDT_LIMIT };
    cpu->idtr = (struct x86_dtable){ .base = PLAT_BOOT_IDT,
                                     .limit = BOOT_IDT_GATES * BOOT_IDT_GATE_SIZE - 1 };
    plat_boot_set_segments(cpu, PLAT_SEL_CODE64, BOOT_AR_CODE64);
}

void plat_boot64_enter(struct plat_ram *ram, const struct plat_load_opts *opts,
                       const struct load_plan *plan, struct plat_cpu_init *cpu)
{
    boot64_write_page_tables(ram);
    boot64_write_tss(ram);
    boot64_write_idt(ram);
    boot64_write_info(ram, opts, plan);
    boot64_cpu_init(cpu, plan->entry, ram->size);
}
