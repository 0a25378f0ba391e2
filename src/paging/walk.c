/*
 * Guest linear-address translation (DESIGN §4): paging mode, canonicality,
 * the table walk for 32-bit, PAE, 4-level and 5-level paging, access-rights
 * checks (access.c), reserved bits (rsvd.c) and accessed/dirty updates.
 *
 * SDM Vol. 3A chapter 4.
 */
#include <string.h>

#include "paging/paging_priv.h"

/* Shape of each paging mode — SDM Vol. 3A §4.2, Table 4-2 */
static const struct pg_mode_desc pg_modes[] = {
    [PAGING_MODE_NONE] = {.la_width = PG_LA_32},
    [PAGING_MODE_32BIT] = {.top_level = 2, .entry_size = PG32_ENTRY_SIZE,
                           .index_bits = PG32_INDEX_BITS, .la_width = PG_LA_32},
    [PAGING_MODE_PAE] = {.top_level = 3, .entry_size = 8, .index_bits = 9, .la_width = PG_LA_32},
    [PAGING_MODE_4LEVEL] = {.top_level = 4, .entry_size = 8, .index_bits = 9,
                            .la_width = PG_LA_48},
    [PAGING_MODE_5LEVEL] = {.top_level = 5, .entry_size = 8, .index_bits = 9,
                            .la_width = PG_LA_57},
};

/* SDM Vol. 3A §4.1.1, Table 4-1: CR0.PG, CR4.PAE, IA32_EFER.LMA, CR4.LA57. */
enum paging_mode paging_mode_of(const struct paging_state *st)
{
    if (!(st->cr0 & X86_CR0_PG))
        return PAGING_MODE_NONE;
    if (!(st->cr4 & X86_CR4_PAE))
        return PAGING_MODE_32BIT;
    if (!(st->efer & X86_EFER_LMA))
        return PAGING_MODE_PAE;
    return (st->cr4 & X86_CR4_LA57) ? PAGING_MODE_5LEVEL : PAGING_MODE_4LEVEL;
}

/* SDM Vol. 3A §4.1.1: 32-bit linear addresses unless IA-32e paging (48 or 57). */
unsigned paging_la_width(const struct paging_state *st)
{
    return pg_modes[paging_mode_of(st)].la_width;
}

/* SDM Vol. 3A §4.7: #PF with CR2 = la; P, W/R, U/S, I/D from the access. */
static enum paging_status page_fault(const struct pg_walk *w, uint32_t bits,
                                     struct paging_result *res)
{
    res->fault = (struct x86_fault){
        .vector = X86_PF,
        .has_error = true,
        .error_code = bits | pg_pf_error_base(w->st, w->mode, &w->acc),
        .cr2 = w->la,
    };
    return PAGING_FAULT;
}

/* SDM Vol. 3A §3.3.7.1, §4.5: a non-canonical address is #GP(0) (the caller picks #SS). */
static enum paging_status general_protection(struct paging_result *res)
{
    res->fault = (struct x86_fault){.vector = X86_GP, .has_error = true};
    return PAGING_FAULT;
}

/* Map an accessor failure on a paging-structure entry to the walk status. */
static enum paging_status mem_failure(enum paging_mem_status ms, uint64_t pa,
                                      struct paging_result *res)
{
    if (ms == PAGING_MEM_NESTED)
        return PAGING_NESTED;
    res->bad_pa = pa;
    return PAGING_BAD_PHYS;
}

/* SDM Vol. 3A §4.3-§4.5: base of the table CR3 points at (PAE: none, registers). */
static uint64_t root_table(const struct pg_walk *w)
{
    if (w->mode == PAGING_MODE_32BIT)
        return w->st->cr3 & PG32_ADDR;
    return w->st->cr3 & GENMASK64(pg_maxphyaddr(w->st) - 1, PTE_ADDR_LOW);
}

/* SDM Vol. 3A §4.3-§4.5: table referenced by a non-leaf entry. */
static uint64_t next_table(const struct pg_walk *w, uint64_t e)
{
    if (w->mode == PAGING_MODE_32BIT)
        return e & PG32_ADDR;
    return e & GENMASK64(pg_maxphyaddr(w->st) - 1, PTE_ADDR_LOW);
}

/* SDM Vol. 3A §4.2: linear-address bits that select the entry at level. */
static unsigned entry_index(const struct pg_walk *w, unsigned level)
{
    unsigned shift = PTE_ADDR_LOW + w->md->index_bits * (level - 1);

    return (unsigned)(w->la >> shift) & ((1u << w->md->index_bits) - 1);
}

/*
 * Read the entry at level into the walk record. PAE PDPTEs come from the
 * registers (SDM §4.4.1), everything else from memory through the accessor.
 */
static enum paging_status read_entry(struct pg_walk *w, unsigned level, uint64_t table,
                                     struct paging_result *res)
{
    unsigned i = w->n++;

    if (w->mode == PAGING_MODE_PAE && level == 3) {
        w->entry[i] = w->st->pdpte[(w->la >> PAE_PDPTE_SHIFT) & (PAE_PDPTE_COUNT - 1)];
        w->in_memory[i] = false;
        return PAGING_OK;
    }
    w->entry_pa[i] = table + (uint64_t)entry_index(w, level) * w->md->entry_size;
    w->in_memory[i] = true;
    enum paging_mem_status ms =
        w->mem->read(w->mem->ctx, w->entry_pa[i], w->md->entry_size, &w->entry[i]);
    if (ms != PAGING_MEM_OK)
        return mem_failure(ms, w->entry_pa[i], res);
    w->entry[i] &= GENMASK64(8 * w->md->entry_size - 1, 0);
    return PAGING_OK;
}

/*
 * SDM Vol. 3A §4.6.1: U/S and R/W must be 1 in every entry, XD 1 in any.
 * PAE PDPTEs hold no access rights (Table 4-8).
 */
static void add_rights(struct pg_walk *w, unsigned level, uint64_t e)
{
    if (w->mode == PAGING_MODE_PAE && level == 3)
        return;
    w->rights.user = w->rights.user && (e & PTE_US);
    w->rights.writable = w->rights.writable && (e & PTE_RW);
    w->rights.xd = w->rights.xd || (e & PTE_XD);
}

/*
 * SDM Vol. 3A §4.3, §4.4.2, §4.5.4: does the entry map a page? PS selects a
 * 4-MByte (CR4.PSE = 1), 2-MByte or 1-GByte page; PS where it is reserved
 * has already faulted.
 */
static bool maps_page(const struct pg_walk *w, unsigned level, uint64_t e)
{
    if (level == 1)
        return true;
    if (!(e & PTE_PS))
        return false;
    if (level == 2)
        return w->mode != PAGING_MODE_32BIT || (w->st->cr4 & X86_CR4_PSE);
    return level == 3 && w->mode != PAGING_MODE_PAE;
}

/* SDM Vol. 3A §4.3-§4.5, §4.10.2.2: physical address, size and attributes of the page. */
static void map_leaf(struct pg_walk *w, unsigned level, uint64_t e)
{
    uint64_t frame;

    if (w->mode == PAGING_MODE_32BIT) {
        w->page_size = level == 2 ? PG_PAGE_4M : PG_PAGE_4K;
        frame = level == 2 ? pg_pse_frame(w->st, e) : e & PG32_ADDR;
    } else {
        unsigned shift = PTE_ADDR_LOW + w->md->index_bits * (level - 1);

        w->page_size = 1ULL << shift;
        frame = e & GENMASK64(pg_maxphyaddr(w->st) - 1, shift);
    }
    w->pa = frame | (w->la & (w->page_size - 1));
    w->global = (e & PTE_G) && (w->st->cr4 & X86_CR4_PGE);
    w->rights.dirty = (e & PTE_D) != 0;
    w->rights.pkey = (unsigned)((e & PTE_PKEY) >> PTE_PKEY_SHIFT);
}

/*
 * SDM Vol. 3A §4.3-§4.5, §4.7: walk from the root to the entry that maps
 * the page. A not-present entry faults with P = 0; a present entry with a
 * reserved bit faults with P = RSVD = 1; either ends the walk.
 */
static enum paging_status walk_tables(struct pg_walk *w, struct paging_result *res)
{
    uint64_t table = root_table(w);

    for (unsigned level = w->md->top_level;; level--) {
        enum paging_status s = read_entry(w, level, table, res);
        if (s != PAGING_OK)
            return s;
        uint64_t e = w->entry[w->n - 1];
        if (!(e & PTE_P))
            return page_fault(w, 0, res);
        if (e & pg_rsvd_mask(w->st, w->mode, level, e))
            return page_fault(w, X86_PF_P | X86_PF_RSVD, res);
        add_rights(w, level, e);
        if (maps_page(w, level, e)) {
            map_leaf(w, level, e);
            return PAGING_OK;
        }
        table = next_table(w, e);
    }
}

/* SDM Vol. 3A §4.6, §4.7: a denied access is #PF with P = 1 (and PK if a key denied it). */
static enum paging_status check_rights(const struct pg_walk *w, struct paging_result *res)
{
    const struct pg_access *acc = &w->acc;

    if (pg_permitted(w->st, w->mode, &w->rights, acc, acc->kind))
        return PAGING_OK;
    uint32_t bits = X86_PF_P;
    if (pg_pk_denies(w->st, w->mode, &w->rights, acc, acc->kind))
        bits |= X86_PF_PK;
    return page_fault(w, bits, res);
}

/*
 * SDM Vol. 3A §4.8: set A in every in-memory entry used and D in the leaf
 * for a write, each only if not already set, with an atomic
 * compare-and-exchange. If an entry changed since it was read, *retry asks
 * for a fresh walk (the new value may no longer translate, or differently).
 */
static enum paging_status set_accessed_dirty(struct pg_walk *w, bool *retry,
                                             struct paging_result *res)
{
    for (unsigned i = 0; i < w->n; i++) {
        uint64_t want = w->entry[i] | PTE_A;
        uint64_t cur;

        if (i == w->n - 1 && w->acc.kind == PG_WRITE)
            want |= PTE_D;
        if (!w->in_memory[i] || want == w->entry[i])
            continue;
        enum paging_mem_status ms = w->mem->cmpxchg(w->mem->ctx, w->entry_pa[i],
                                                    w->md->entry_size, w->entry[i], want, &cur);
        if (ms != PAGING_MEM_OK)
            return mem_failure(ms, w->entry_pa[i], res);
        if (cur != w->entry[i]) {
            *retry = true;
            return PAGING_OK;
        }
        w->entry[i] = want;
    }
    w->rights.dirty = w->rights.dirty || w->acc.kind == PG_WRITE;
    return PAGING_OK;
}

/* One walk attempt; *retry is set when an A/D update lost a race. */
static enum paging_status walk_once(struct pg_walk *w, bool *retry, struct paging_result *res)
{
    enum paging_status s = walk_tables(w, res);

    if (s == PAGING_OK)
        s = check_rights(w, res);
    if (s == PAGING_OK && !w->acc.no_ad)
        s = set_accessed_dirty(w, retry, res);
    return s;
}

/* SDM Vol. 3A §4.1: CR0.PG = 0: linear addresses (32 bits) are physical. */
static enum paging_status no_paging(uint64_t la, struct paging_result *res)
{
    res->pa = la & GENMASK64(PG_LA_32 - 1, 0);
    res->page_size = PG_PAGE_4K;
    res->allowed = PAGING_ALLOW_R | PAGING_ALLOW_W | PAGING_ALLOW_X;
    return PAGING_OK;
}

/*
 * SDM Vol. 3A §4.1-§4.8: translate la for one access (paging.h). A walk
 * that loses an A/D race starts over; the result then reflects the entries
 * as they are after the other agent's update.
 */
enum paging_status paging_walk(const struct paging_state *st, const struct paging_mem *mem,
                               uint64_t la, unsigned access, struct paging_result *res)
{
    enum paging_mode mode = paging_mode_of(st);
    const struct pg_mode_desc *md = &pg_modes[mode];

    memset(res, 0, sizeof *res);
    if (mode == PAGING_MODE_NONE)
        return no_paging(la, res);
    if (md->la_width == PG_LA_32)
        la &= GENMASK64(PG_LA_32 - 1, 0);
    else if (!x86_is_canonical(la, md->la_width))
        return general_protection(res);

    for (;;) {
        struct pg_walk w = {
            .st = st, .mem = mem, .mode = mode, .md = md, .la = la,
            .acc = pg_access_decode(access),
            .rights = {.user = true, .writable = true},
        };
        bool retry = false;
        enum paging_status s = walk_once(&w, &retry, res);

        if (s != PAGING_OK)
            return s;
        if (retry)
            continue;
        res->pa = w.pa;
        res->page_size = w.page_size;
        res->guest_page_size = w.page_size;
        res->global = w.global;
        res->allowed = pg_allowed(st, mode, &w.rights, &w.acc);
        res->user = w.rights.user;
        res->writable = w.rights.writable;
        res->xd = w.rights.xd;
        res->dirty = w.rights.dirty;
        res->pkey = (uint8_t)w.rights.pkey;
        return PAGING_OK;
    }
}
