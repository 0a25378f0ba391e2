/*
 * The boot GDT shared by both entry contracts, and the matching hidden
 * segment state (what the descriptor caches hold after the loads a boot
 * loader would have done).
 *
 *   0x00 null
 *   0x08 code64  base 0, limit 0xFFFFF pages, AR 0xA09B (L=1, G=1)
 *   0x10 data    base 0, limit 0xFFFFF pages, AR 0xC093 (D/B=1, G=1)
 *   0x18 code32  base 0, limit 0xFFFFF pages, AR 0xC09B (D/B=1, G=1)
 *   0x20 TSS     16-byte system descriptor, base PLAT_BOOT_TSS, limit 0x67,
 *                type 0xB (busy: TR is loaded), AR 0x008B
 * GDTR = { PLAT_BOOT_GDT, 0x2F }.
 */
#include "platform/elf_load.h"

/*
 * Code/data segment descriptor (SDM Vol. 3A §3.4.5, Figure 3-8) from a
 * VMCS-format AR (bits 7:0 -> descriptor 47:40, bits 15:12 -> 55:52) and a
 * raw 20-bit limit.
 */
static uint64_t boot_desc(uint32_t base, uint32_t raw_limit, uint32_t ar)
{
    return (raw_limit & 0xFFFFull) | (uint64_t)(base & 0xFFFFFF) << 16 |
           (uint64_t)(ar & 0xFF) << 40 | (uint64_t)((raw_limit >> 16) & 0xF) << 48 |
           (uint64_t)((ar >> 12) & 0xF) << 52 | (uint64_t)(base >> 24) << 56;
}

/*
 * 16-byte TSS descriptor for IA-32e mode (SDM Vol. 3A §7.2.3, Figure 7-4):
 * the low 8 bytes as in legacy mode, then base 63:32 and a zero type field
 * (which legacy mode sees as a null-type descriptor at selector 0x28).
 */
static void boot_write_tss_desc(uint8_t *slot, uint64_t base)
{
    st_le64(slot, boot_desc((uint32_t)base, BOOT_TSS_LIMIT, BOOT_AR_TSS_BUSY));
    st_le64(slot + 8, base >> 32);
}

void plat_boot_write_gdt(struct plat_ram *ram)
{
    uint8_t *gdt = ram->base + PLAT_BOOT_GDT;

    st_le64(gdt, 0);
    st_le64(gdt + PLAT_SEL_CODE64, boot_desc(0, 0xFFFFF, BOOT_AR_CODE64));
    st_le64(gdt + PLAT_SEL_DATA, boot_desc(0, 0xFFFFF, BOOT_AR_DATA));
    st_le64(gdt + PLAT_SEL_CODE32, boot_desc(0, 0xFFFFF, BOOT_AR_CODE32));
    boot_write_tss_desc(gdt + PLAT_SEL_TSS, PLAT_BOOT_TSS);
}

static struct x86_seg_state boot_seg(uint16_t sel, uint64_t base, uint32_t limit, uint32_t ar)
{
    return (struct x86_seg_state){ .selector = sel, .base = base, .limit = limit, .ar = ar };
}

/*
 * CS from cs_sel/cs_ar; SS, DS, ES, FS, GS = the flat data selector; LDTR
 * unusable (selector 0); TR = the busy TSS (a usable TR of type 11 is what
 * VM entry demands of a guest too, SDM Vol. 3C §27.3.1.2).
 */
void plat_boot_set_segments(struct plat_cpu_init *cpu, uint16_t cs_sel, uint32_t cs_ar)
{
    static const enum x86_seg data[] = { X86_SEG_ES, X86_SEG_SS, X86_SEG_DS, X86_SEG_FS,
                                         X86_SEG_GS };

    cpu->seg[X86_SEG_CS] = boot_seg(cs_sel, 0, BOOT_FLAT_LIMIT, cs_ar);
    for (unsigned i = 0; i < sizeof data / sizeof data[0]; i++)
        cpu->seg[data[i]] = boot_seg(PLAT_SEL_DATA, 0, BOOT_FLAT_LIMIT, BOOT_AR_DATA);
    cpu->seg[X86_SEG_LDTR] = boot_seg(0, 0, 0, X86_AR_UNUSABLE);
    cpu->seg[X86_SEG_TR] = boot_seg(PLAT_SEL_TSS, PLAT_BOOT_TSS, BOOT_TSS_LIMIT, BOOT_AR_TSS_BUSY);
}
