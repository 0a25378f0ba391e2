/*
 * EPT translation (DESIGN §4): the walk of the extended page tables for one
 * guest-physical access, EPT misconfigurations vs EPT violations, the
 * exit-qualification bits that describe the access, EPT accessed/dirty
 * flags, and the EPTP checks of VM entry.
 *
 * SDM Vol. 3C §29.3 ("The Extended Page Table Mechanism"), §28.2.1 (exit
 * qualification for EPT violations), §25.6.11 (EPTP), §27.2.1.1 (checks).
 */
#include <string.h>

#include "paging/ept_priv.h"
#include "vmx/vmx_arch.h"

/* Guest-physical bits 4-level EPT cannot translate (see ept_walk). */
#define EPT_GPA_ABOVE_4LEVEL GENMASK64(EPT_MAX_PHYADDR - 1, EPT_GPA_4LEVEL)

/* One EPT translation attempt. */
struct ept_walker {
    const struct ept_state *ept;
    const struct paging_mem *host;
    uint64_t gpa;
    unsigned acc;                      /* EPT_ACC_* */
    unsigned top;                      /* level of the root structure: 4 or 5 */
    unsigned n;                        /* entries read, root first */
    uint64_t entry[EPT_MAX_LEVELS];    /* values as read */
    uint64_t entry_pa[EPT_MAX_LEVELS]; /* host addresses they were read from */
    uint8_t perms;                     /* EPT_PERM_* AND-ed over the entries read */
    unsigned leaf;                     /* level of the entry that maps the page */
};

/* SDM Vol. 3C §29.3.5: A/D flags need EPTP bit 6 and IA32_VMX_EPT_VPID_CAP bit 21. */
bool ept_ad_enabled(const struct ept_state *ept)
{
    return (ept->eptp & VMX_EPTP_AD_ENABLE_BIT) && (ept->caps & VMX_EPT_AD_BIT);
}

/* SDM Vol. 3C §29.3.2: MAXPHYADDR, kept within what the EPT formats can express. */
unsigned ept_maxphyaddr(const struct ept_state *ept)
{
    if (ept->maxphyaddr < EPT_MIN_PHYADDR)
        return EPT_MIN_PHYADDR;
    if (ept->maxphyaddr > EPT_MAX_PHYADDR)
        return EPT_MAX_PHYADDR;
    return ept->maxphyaddr;
}

/*
 * SDM Vol. 3C §29.3.2: 5-level EPT when EPTP[5:3] = 4 (page-walk length 5)
 * and IA32_VMX_EPT_VPID_CAP[7] says it exists; 4-level otherwise.
 */
static unsigned top_level(const struct ept_state *ept)
{
    bool five = (ept->eptp & VMX_EPTP_PWL_MASK) == VMX_EPTP_PWL_5 &&
                (ept->caps & VMX_EPT_PAGE_WALK_5_BIT);

    return five ? 5 : 4;
}

/* SDM Vol. 3C §29.3.2: bits (MAXPHYADDR-1):12 of the EPTP or an entry locate the next table. */
static uint64_t table_address(const struct ept_state *ept, uint64_t v)
{
    return v & GENMASK64(ept_maxphyaddr(ept) - 1, EPT_ADDR_LOW);
}

/* SDM Vol. 3C §29.3.2: guest-physical bits that select the entry at level. */
static unsigned entry_index(uint64_t gpa, unsigned level)
{
    unsigned shift = EPT_ADDR_LOW + EPT_INDEX_BITS * (level - 1);

    return (unsigned)(gpa >> shift) & ((1u << EPT_INDEX_BITS) - 1);
}

/* SDM Vol. 3C §29.3.2: present if any of bits 2:0 is 1, or bit 10 with MBEC. */
static bool is_present(const struct ept_state *ept, uint64_t e)
{
    if (e & (EPT_READ | EPT_WRITE | EPT_EXEC))
        return true;
    return ept->mbec && (e & EPT_USER_EXEC);
}

/* EPT_PERM_* granted by one entry; bit 10 counts only with MBEC (§29.3.3.2). */
static uint8_t entry_perms(const struct ept_state *ept, uint64_t e)
{
    uint8_t p = 0;

    if (e & EPT_READ)
        p |= EPT_PERM_R;
    if (e & EPT_WRITE)
        p |= EPT_PERM_W;
    if (e & EPT_EXEC)
        p |= EPT_PERM_X;
    if (ept->mbec && (e & EPT_USER_EXEC))
        p |= EPT_PERM_XU;
    return p;
}

/*
 * SDM Vol. 3C §29.3.3.1: writes allowed without reads; or, without
 * execute-only support (IA32_VMX_EPT_VPID_CAP[0]), fetches allowed without
 * reads — from supervisor-mode addresses (bit 2) or, with MBEC, from
 * user-mode addresses (bit 10).
 */
static bool bad_permissions(const struct ept_state *ept, uint64_t e)
{
    if (e & EPT_READ)
        return false;
    if (e & EPT_WRITE)
        return true;
    if (ept->caps & VMX_EPT_EXECUTE_ONLY_BIT)
        return false;
    return (e & EPT_EXEC) || (ept->mbec && (e & EPT_USER_EXEC));
}

/* SDM Vol. 3C §29.3.2: the entry maps a page (PTE, or PDE/PDPTE with bit 7 = 1). */
static bool maps_page(unsigned level, uint64_t e)
{
    if (level == 1)
        return true;
    return (level == 2 || level == 3) && (e & EPT_LARGE);
}

/*
 * SDM Vol. 3C §29.3.2, Tables 29-1 to 29-7: reserved bits of a present
 * entry. Bits 51:MAXPHYADDR everywhere; bits 7:3 in PML5E, PML4E and entries
 * that reference a table; bit 7 in a PDPTE/PDE without 1-GByte/2-MByte EPT
 * pages (IA32_VMX_EPT_VPID_CAP[17]/[16]); address bits 29:12/20:12 of a
 * 1-GByte/2-MByte page.
 */
static uint64_t rsvd_mask(const struct ept_state *ept, unsigned level, uint64_t e)
{
    uint64_t m = GENMASK64(EPT_MAX_PHYADDR - 1, ept_maxphyaddr(ept));

    if (level >= 4)
        return m | EPT_NONLEAF_RSVD_7_3;
    if (level == 1)
        return m;
    if (!(e & EPT_LARGE))
        return m | EPT_NONLEAF_RSVD_7_3;
    if (level == 3)
        return m | ((ept->caps & VMX_EPT_1GB_PAGE_BIT) ? EPT_1G_RSVD_29_12 : EPT_LARGE);
    return m | ((ept->caps & VMX_EPT_2MB_PAGE_BIT) ? EPT_2M_RSVD_20_12 : EPT_LARGE);
}

/* SDM Vol. 3C §29.3.3.1, §29.3.7: memory types 2, 3 and 7 are reserved in a leaf. */
static bool bad_memtype(uint64_t e)
{
    unsigned mt = (unsigned)((e & EPT_MEMTYPE) >> EPT_MEMTYPE_SHIFT);

    return mt == 2 || mt == 3 || mt == 7;
}

/* SDM Vol. 3C §29.3.3.1: is this present entry an EPT misconfiguration? */
static bool misconfigured(const struct ept_state *ept, unsigned level, uint64_t e)
{
    if (bad_permissions(ept, e) || (e & rsvd_mask(ept, level, e)))
        return true;
    return maps_page(level, e) && bad_memtype(e);
}

/*
 * EPT_PERM_* an instruction fetch needs (SDM Vol. 3C §29.3.3.2): bit 2, or
 * with MBEC bit 2 for a supervisor-mode and bit 10 for a user-mode address.
 */
static uint8_t exec_perm(const struct ept_state *ept, unsigned acc)
{
    if (ept->mbec && (acc & EPT_ACC_USER_LINEAR))
        return EPT_PERM_XU;
    return EPT_PERM_X;
}

/* SDM Vol. 3C §29.3.3.2: permissions the access needs in every entry. */
static uint8_t needed_perms(const struct ept_state *ept, unsigned acc)
{
    uint8_t need = 0;

    if (acc & EPT_ACC_READ)
        need |= EPT_PERM_R;
    if (acc & EPT_ACC_WRITE)
        need |= EPT_PERM_W;
    if (acc & EPT_ACC_FETCH)
        need |= exec_perm(ept, acc);
    return need;
}

/*
 * SDM Vol. 3C §28.2.1, Table 28-7, bits 6:0: the access (read, write,
 * fetch) and the AND of bits 0, 1, 2 (and 10 with MBEC; bit 6 is left 0
 * otherwise) over the entries used — 0 once one of them is not present.
 */
static uint64_t violation_qualification(const struct ept_state *ept, unsigned acc, uint8_t perms)
{
    uint64_t q = 0;

    if (acc & EPT_ACC_READ)
        q |= EPT_VIOLATION_ACC_READ;
    if (acc & EPT_ACC_WRITE)
        q |= EPT_VIOLATION_ACC_WRITE;
    if (acc & EPT_ACC_FETCH)
        q |= EPT_VIOLATION_ACC_INSTR;
    if (perms & EPT_PERM_R)
        q |= EPT_VIOLATION_PROT_READ;
    if (perms & EPT_PERM_W)
        q |= EPT_VIOLATION_PROT_WRITE;
    if (perms & EPT_PERM_X)
        q |= EPT_VIOLATION_PROT_EXEC;
    if (ept->mbec && (perms & EPT_PERM_XU))
        q |= EPT_VIOLATION_EXEC_FOR_RING3_LIN;
    return q;
}

/* End the walk with an EPT violation or misconfiguration at level (0: after the walk). */
static enum paging_status ept_fault(const struct ept_walker *w, bool misconfig, unsigned level,
                                    struct ept_result *res)
{
    res->perms = w->perms;
    res->level_failed = (int)level;
    res->misconfig = misconfig;
    res->violation = !misconfig;
    if (!misconfig)
        res->qualification = violation_qualification(w->ept, w->acc, w->perms);
    return PAGING_NESTED;
}

/* Read the entry at level from the EPT paging structure at table (host memory). */
static enum paging_status read_entry(struct ept_walker *w, unsigned level, uint64_t table,
                                     struct ept_result *res)
{
    unsigned i = w->n++;

    w->entry_pa[i] = table + (uint64_t)entry_index(w->gpa, level) * EPT_ENTRY_SIZE;
    if (w->host->read(w->host->ctx, w->entry_pa[i], EPT_ENTRY_SIZE, &w->entry[i]) !=
        PAGING_MEM_OK) {
        res->bad_pa = w->entry_pa[i];
        return PAGING_BAD_PHYS;
    }
    return PAGING_OK;
}

/*
 * SDM Vol. 3C §29.3.3 (the iterative process): read an entry; not present →
 * EPT violation; present but misconfigured → EPT misconfiguration; a leaf
 * ends the walk, anything else leads to the next structure.
 */
static enum paging_status walk_tables(struct ept_walker *w, struct ept_result *res)
{
    uint64_t table = table_address(w->ept, w->ept->eptp);

    for (unsigned level = w->top;; level--) {
        enum paging_status s = read_entry(w, level, table, res);
        if (s != PAGING_OK)
            return s;
        uint64_t e = w->entry[w->n - 1];
        w->perms &= entry_perms(w->ept, e);
        if (!is_present(w->ept, e))
            return ept_fault(w, false, level, res);
        if (misconfigured(w->ept, level, e))
            return ept_fault(w, true, level, res);
        if (maps_page(level, e)) {
            w->leaf = level;
            return PAGING_OK;
        }
        table = table_address(w->ept, e);
    }
}

/*
 * SDM Vol. 3C §29.3.5: set the accessed flag in every entry used and the
 * dirty flag in the leaf for a write, each with an atomic
 * compare-and-exchange. A lost race asks for a fresh walk (*retry).
 */
static enum paging_status set_accessed_dirty(struct ept_walker *w, bool *retry,
                                             struct ept_result *res)
{
    for (unsigned i = 0; i < w->n; i++) {
        uint64_t want = w->entry[i] | EPT_ACCESSED;
        uint64_t cur;

        if (i == w->n - 1 && (w->acc & EPT_ACC_WRITE))
            want |= EPT_DIRTY;
        if (want == w->entry[i])
            continue;
        if (w->host->cmpxchg(w->host->ctx, w->entry_pa[i], EPT_ENTRY_SIZE, w->entry[i], want,
                             &cur) != PAGING_MEM_OK) {
            res->bad_pa = w->entry_pa[i];
            return PAGING_BAD_PHYS;
        }
        if (cur != w->entry[i]) {
            *retry = true;
            return PAGING_OK;
        }
        w->entry[i] = want;
    }
    return PAGING_OK;
}

/* One walk attempt: structures, then rights (§29.3.3.2), then A/D (§29.3.5). */
static enum paging_status walk_once(struct ept_walker *w, bool *retry, struct ept_result *res)
{
    enum paging_status s = walk_tables(w, res);

    if (s != PAGING_OK)
        return s;
    uint8_t need = needed_perms(w->ept, w->acc);
    if ((w->perms & need) != need)
        return ept_fault(w, false, 0, res);
    if ((w->acc & EPT_ACC_NO_AD) || !ept_ad_enabled(w->ept))
        return PAGING_OK;
    return set_accessed_dirty(w, retry, res);
}

/*
 * PAGING_ALLOW_* for later accesses from the same context (same user/
 * supervisor address type for MBEC): writes only once the leaf is dirty
 * when EPT A/D flags are on, so a cached write never skips §29.3.5.
 */
static uint8_t ept_allowed(const struct ept_walker *w)
{
    uint64_t leaf = w->entry[w->n - 1];
    uint8_t allowed = 0;

    if (w->perms & EPT_PERM_R)
        allowed |= PAGING_ALLOW_R;
    if ((w->perms & EPT_PERM_W) && (!ept_ad_enabled(w->ept) || (leaf & EPT_DIRTY)))
        allowed |= PAGING_ALLOW_W;
    if (w->perms & exec_perm(w->ept, w->acc))
        allowed |= PAGING_ALLOW_X;
    return allowed;
}

/* SDM Vol. 3C §29.3.2: final physical address, page size and leaf attributes. */
static void map_leaf(const struct ept_walker *w, struct ept_result *res)
{
    uint64_t leaf = w->entry[w->n - 1];
    unsigned shift = EPT_ADDR_LOW + EPT_INDEX_BITS * (w->leaf - 1);

    res->page_size = 1ULL << shift;
    res->hpa = (leaf & GENMASK64(ept_maxphyaddr(w->ept) - 1, shift)) |
               (w->gpa & (res->page_size - 1));
    res->perms = w->perms;
    res->allowed = ept_allowed(w);
    res->memtype = (uint8_t)((leaf & EPT_MEMTYPE) >> EPT_MEMTYPE_SHIFT);
    res->ignore_pat = (leaf & EPT_IPAT) != 0;
}

/*
 * SDM Vol. 3C §29.3.2 (interpretation, see the report of this unit): 4-level
 * EPT translates guest-physical bits 47:0 only; a guest-physical address
 * with any of bits 51:48 set (MAXPHYADDR > 48) cannot be translated and is
 * reported as an EPT violation before any entry is read.
 */
static enum paging_status beyond_4level(const struct ept_state *ept, unsigned acc,
                                        struct ept_result *res)
{
    struct ept_walker w = {.ept = ept, .acc = acc, .perms = 0};

    return ept_fault(&w, false, 5, res);
}

/* SDM Vol. 3C §29.3: translate gpa for one access (paging.h). */
enum paging_status ept_walk(const struct ept_state *ept, const struct paging_mem *host,
                            uint64_t gpa, unsigned access, struct ept_result *res)
{
    unsigned top = top_level(ept);

    memset(res, 0, sizeof *res);
    res->gpa = gpa;
    if (top == 4 && (gpa & EPT_GPA_ABOVE_4LEVEL))
        return beyond_4level(ept, access, res);
    for (;;) {
        struct ept_walker w = {
            .ept = ept, .host = host, .gpa = gpa, .acc = access, .top = top,
            .perms = EPT_PERM_R | EPT_PERM_W | EPT_PERM_X | EPT_PERM_XU,
        };
        bool retry = false;
        enum paging_status s = walk_once(&w, &retry, res);

        if (s != PAGING_OK)
            return s;
        if (retry)
            continue;
        map_leaf(&w, res);
        return PAGING_OK;
    }
}

/* SDM Vol. 3C §27.2.1.1: memory type UC (CAP[8]) or WB (CAP[14]); nothing else. */
static bool eptp_memtype_ok(uint64_t caps, uint64_t eptp)
{
    uint64_t mt = eptp & VMX_EPTP_MT_MASK;

    if (mt == VMX_EPTP_MT_UC)
        return (caps & VMX_EPTP_UC_BIT) != 0;
    if (mt == VMX_EPTP_MT_WB)
        return (caps & VMX_EPTP_WB_BIT) != 0;
    return false;
}

/* SDM Vol. 3C §27.2.1.1: page-walk length 4 (CAP[6]) or 5 (CAP[7]). */
static bool eptp_walk_length_ok(uint64_t caps, uint64_t eptp)
{
    uint64_t pwl = eptp & VMX_EPTP_PWL_MASK;

    if (pwl == VMX_EPTP_PWL_4)
        return (caps & VMX_EPT_PAGE_WALK_4_BIT) != 0;
    if (pwl == VMX_EPTP_PWL_5)
        return (caps & VMX_EPT_PAGE_WALK_5_BIT) != 0;
    return false;
}

/* SDM Vol. 3C §27.2.1.1: bit 6 needs CAP[21] (A/D), bit 7 needs CAP[23] (SSS). */
static bool eptp_controls_ok(uint64_t caps, uint64_t eptp)
{
    if ((eptp & VMX_EPTP_AD_ENABLE_BIT) && !(caps & VMX_EPT_AD_BIT))
        return false;
    return !(eptp & VMX_EPTP_SSS_BIT) || (caps & VMX_EPT_SUPERVISOR_SHADOW_STACK);
}

/* SDM Vol. 3C §27.2.1.1: may VM entry use this EPTP (paging.h)? */
bool ept_eptp_valid(const struct ept_state *ept, uint64_t eptp)
{
    uint64_t rsvd = VMX_EPTP_RESERVED_11_8 | GENMASK64(63, ept_maxphyaddr(ept));

    return eptp_memtype_ok(ept->caps, eptp) && eptp_walk_length_ok(ept->caps, eptp) &&
           eptp_controls_ok(ept->caps, eptp) && !(eptp & rsvd);
}
