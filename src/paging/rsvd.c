/*
 * Reserved bits of paging-structure entries, per paging mode and level, and
 * the 32-bit-paging 4-MByte frame (PSE-36). A present entry with a reserved
 * bit set is unusable: the walk ends in #PF with P = RSVD = 1 (SDM §4.7).
 */
#include "paging/paging_priv.h"

/* SDM Vol. 3A §4.1.4: MAXPHYADDR, kept within what paging can express. */
unsigned pg_maxphyaddr(const struct paging_state *st)
{
    if (st->maxphyaddr < PG_MIN_PHYADDR)
        return PG_MIN_PHYADDR;
    if (st->maxphyaddr > PG_MAX_PHYADDR)
        return PG_MAX_PHYADDR;
    return st->maxphyaddr;
}

/*
 * SDM Vol. 3A §4.3, Table 4-4: M for a 4-MByte PDE. Without PSE-36 the
 * frame is 32 bits wide; with it, M = min(MAXPHYADDR, 40).
 */
static unsigned pse_width(const struct paging_state *st)
{
    unsigned m = pg_maxphyaddr(st);

    if (!(st->features & PAGING_F_PSE36))
        return PG_MIN_PHYADDR;
    return m < PG32_PSE36_MAX_M ? m : PG32_PSE36_MAX_M;
}

/*
 * SDM Vol. 3A §4.3: with 32-bit paging only a 4-MByte PDE (CR4.PSE = 1,
 * PS = 1) has reserved bits: 21:13 without PSE-36, else 21:(M-19).
 */
static uint64_t rsvd_32bit(const struct paging_state *st, unsigned level, uint64_t e)
{
    if (level != 2 || !(e & PTE_PS) || !(st->cr4 & X86_CR4_PSE))
        return 0;
    return GENMASK64(PG32_4M_RSVD_TOP, pse_width(st) - 19);
}

/*
 * SDM Vol. 3A §4.3, Table 4-4: physical address of a 4-MByte page: bits
 * 31:22 from PDE bits 31:22, bits (M-1):32 from PDE bits (M-20):13.
 */
uint64_t pg_pse_frame(const struct paging_state *st, uint64_t pde)
{
    unsigned high_bits = pse_width(st) - PG_MIN_PHYADDR;
    uint64_t frame = pde & PG32_4M_ADDR_31_22;

    if (high_bits == 0)
        return frame;
    return frame | (((pde >> PG32_4M_HIGH_SHIFT) & GENMASK64(high_bits - 1, 0)) << 32);
}

/* SDM Vol. 3A §4.4.2, §4.5.4: XD (bit 63) is reserved while EFER.NXE = 0. */
static uint64_t rsvd_xd(const struct paging_state *st)
{
    return (st->efer & X86_EFER_NXE) ? 0 : PTE_XD;
}

/*
 * SDM Vol. 3A §4.4.2, Tables 4-9 to 4-11: PAE PDE/PTE reserve bits 62:M
 * (and 63 without NXE); a 2-MByte PDE also reserves 20:13. The PDPTEs
 * (level 3) are registers checked when loaded (pg_pae_pdpte_rsvd).
 */
static uint64_t rsvd_pae(const struct paging_state *st, unsigned level, uint64_t e)
{
    uint64_t m = GENMASK64(62, pg_maxphyaddr(st)) | rsvd_xd(st);

    if (level == 2 && (e & PTE_PS))
        m |= PDE_2M_RSVD_20_13;
    return m;
}

/*
 * SDM Vol. 3A §4.5.4, Tables 4-14 to 4-20: 4/5-level entries reserve bits
 * 51:M (and 63 without NXE). PS is reserved in PML5E/PML4E, and in a PDPTE
 * unless 1-GByte pages are supported (§4.1.4); a 1-GByte PDPTE reserves
 * 29:13 and a 2-MByte PDE 20:13.
 */
static uint64_t rsvd_long(const struct paging_state *st, unsigned level, uint64_t e)
{
    uint64_t m = GENMASK64(51, pg_maxphyaddr(st)) | rsvd_xd(st);

    if (level >= 4)
        return m | PTE_PS;
    if (!(e & PTE_PS))
        return m;
    if (level == 3)
        return m | ((st->features & PAGING_F_GBPAGES) ? PDPTE_1G_RSVD_29_13 : PTE_PS);
    return level == 2 ? m | PDE_2M_RSVD_20_13 : m;
}

/* Reserved bits of a present entry at level in mode (SDM Vol. 3A §4.3-§4.5). */
uint64_t pg_rsvd_mask(const struct paging_state *st, enum paging_mode mode, unsigned level,
                      uint64_t entry)
{
    switch (mode) {
    case PAGING_MODE_32BIT:
        return rsvd_32bit(st, level, entry);
    case PAGING_MODE_PAE:
        return rsvd_pae(st, level, entry);
    case PAGING_MODE_4LEVEL:
    case PAGING_MODE_5LEVEL:
        return rsvd_long(st, level, entry);
    case PAGING_MODE_NONE:
        break;
    }
    return 0;
}
