/*
 * The architectural TLB (tlb.h): set-associative arrays of linear/combined
 * and guest-physical mappings, deterministic LRU replacement, and one
 * invalidation rule per architectural operation, each a predicate over the
 * entry tags built from the SDM text it cites.
 *
 * SDM Vol. 3A §4.10 (TLBs, PCIDs, global pages, invalidation), Vol. 3C
 * §29.4 (linear, combined and guest-physical mappings with VPIDs and EPT).
 */
#include "paging/tlb.h"

#include <stdlib.h>
#include <string.h>

/* One way of a set: the entry, whether it holds one, and its LRU age. */
struct tlb_slot {
    struct tlb_entry e;
    uint64_t stamp;
    bool valid;
};

struct tlb_gpa_slot {
    struct tlb_gpa_entry e;
    uint64_t stamp;
    bool valid;
};

struct tlb {
    struct tlb_config cfg;
    struct tlb_slot *small; /* cfg.small.sets × ways, set-major */
    struct tlb_slot *large; /* cfg.large.sets × ways */
    struct tlb_gpa_slot *gpa;
    uint64_t clock;         /* LRU time: bumped by every insert and hit */
    uint64_t gen;           /* bumped by every invalidating operation (tlb_generation) */
    struct tlb_stats stats;
};

static const uint64_t large_sizes[] = {TLB_PAGE_2M, TLB_PAGE_4M, TLB_PAGE_1G};

#define N_LARGE_SIZES (sizeof(large_sizes) / sizeof(large_sizes[0]))

struct tlb_config tlb_config_default(void)
{
    struct tlb_config c = {
        .small = {64, 8},
        .large = {8, 4},
        .gpa = {16, 4},
    };
    return c;
}

static const char *const cause_names[TLB_CAUSE_COUNT] = {
#define TLB_CAUSE_NAME(id, name) [TLB_CAUSE_##id] = name,
    TLB_CAUSES(TLB_CAUSE_NAME)
#undef TLB_CAUSE_NAME
};

const char *tlb_cause_name(enum tlb_cause c)
{
    return (unsigned)c < TLB_CAUSE_COUNT ? cause_names[c] : "?";
}

/* ==== Geometry and allocation ==== */

static unsigned geo_entries(struct tlb_geometry g) { return g.sets * g.ways; }

/* Both zero (no such TLB), or both non-zero within TLB_MAX_ENTRIES. */
static bool geo_valid(struct tlb_geometry g)
{
    if (g.sets == 0 || g.ways == 0)
        return g.sets == 0 && g.ways == 0;
    return g.sets <= TLB_MAX_ENTRIES && g.ways <= TLB_MAX_ENTRIES / g.sets;
}

vmxsim_err tlb_init(struct tlb **out, const struct tlb_config *cfg)
{
    struct tlb_config c = cfg ? *cfg : tlb_config_default();
    struct tlb *t;

    *out = NULL;
    if (!geo_valid(c.small) || !geo_valid(c.large) || !geo_valid(c.gpa))
        return VMXSIM_ERR_BAD_ARG;
    t = calloc(1, sizeof *t);
    if (!t)
        return VMXSIM_ERR_NOMEM;
    t->cfg = c;
    t->small = calloc(geo_entries(c.small) ? geo_entries(c.small) : 1, sizeof *t->small);
    t->large = calloc(geo_entries(c.large) ? geo_entries(c.large) : 1, sizeof *t->large);
    t->gpa = calloc(geo_entries(c.gpa) ? geo_entries(c.gpa) : 1, sizeof *t->gpa);
    if (!t->small || !t->large || !t->gpa) {
        tlb_free(t);
        return VMXSIM_ERR_NOMEM;
    }
    *out = t;
    return VMXSIM_OK;
}

void tlb_free(struct tlb *t)
{
    if (!t)
        return;
    free(t->small);
    free(t->large);
    free(t->gpa);
    free(t);
}

/* ==== Sets ==== */

static unsigned page_shift(uint64_t size) { return (unsigned)__builtin_ctzll(size); }

static bool linear_size_valid(uint64_t s)
{
    return s == TLB_PAGE_4K || s == TLB_PAGE_2M || s == TLB_PAGE_4M || s == TLB_PAGE_1G;
}

static bool gpa_size_valid(uint64_t s)
{
    return s == TLB_PAGE_4K || s == TLB_PAGE_2M || s == TLB_PAGE_1G;
}

/* Set index: page number modulo the set count (hardware indexes by address bits only). */
static unsigned set_of(struct tlb_geometry g, uint64_t addr, uint64_t size)
{
    return (unsigned)((addr >> page_shift(size)) % g.sets);
}

/* The array holding entries of this (effective) page size, and its geometry. */
static struct tlb_slot *array_for(const struct tlb *t, uint64_t size, struct tlb_geometry *g)
{
    if (size == TLB_PAGE_4K) {
        *g = t->cfg.small;
        return t->small;
    }
    *g = t->cfg.large;
    return t->large;
}

/* LRU victim: the first invalid way, else the oldest stamp (lowest way on a tie). */
static unsigned victim_way(const struct tlb_slot *set, unsigned ways)
{
    unsigned v = 0;

    for (unsigned w = 0; w < ways; w++) {
        if (!set[w].valid)
            return w;
        if (set[w].stamp < set[v].stamp)
            v = w;
    }
    return v;
}

static unsigned gpa_victim_way(const struct tlb_gpa_slot *set, unsigned ways)
{
    unsigned v = 0;

    for (unsigned w = 0; w < ways; w++) {
        if (!set[w].valid)
            return w;
        if (set[w].stamp < set[v].stamp)
            v = w;
    }
    return v;
}

/* ==== Lookup ==== */

/* The entry's context tags fit ctx, ignoring PCID (§29.4.2). */
static bool context_matches(const struct tlb_entry *e, const struct tlb_ctx *ctx)
{
    if (e->vpid != ctx->vpid)
        return false;
    if (ctx->ept)
        return e->kind == TLB_COMBINED && e->ep4ta == (ctx->ep4ta & TLB_EP4TA_MASK);
    return e->kind == TLB_LINEAR;
}

/* 2: exact PCID; 1: a global entry of another PCID (§4.10.2.4); 0: unusable. */
static int use_rank(const struct tlb_entry *e, const struct tlb_ctx *ctx, uint64_t la,
                    uint64_t size)
{
    if (e->page_size != size || e->la != (la & ~(size - 1)) || !context_matches(e, ctx))
        return 0;
    if (e->pcid == ctx->pcid)
        return 2;
    return e->global ? 1 : 0;
}

/* Best way of one set for la at one page size, or NULL. */
static struct tlb_slot *find_in_set(struct tlb_slot *set, unsigned ways,
                                    const struct tlb_ctx *ctx, uint64_t la, uint64_t size)
{
    struct tlb_slot *best = NULL;
    int best_rank = 0;

    for (unsigned w = 0; w < ways; w++) {
        int r = set[w].valid ? use_rank(&set[w].e, ctx, la, size) : 0;
        if (r > best_rank) {
            best = &set[w];
            best_rank = r;
        }
    }
    return best;
}

static struct tlb_slot *find(const struct tlb *t, const struct tlb_ctx *ctx, uint64_t la)
{
    struct tlb_slot *s = NULL;

    if (t->cfg.small.sets) {
        struct tlb_geometry g = t->cfg.small;
        s = find_in_set(&t->small[set_of(g, la, TLB_PAGE_4K) * g.ways], g.ways, ctx, la,
                        TLB_PAGE_4K);
    }
    for (unsigned i = 0; !s && t->cfg.large.sets && i < N_LARGE_SIZES; i++) {
        struct tlb_geometry g = t->cfg.large;
        s = find_in_set(&t->large[set_of(g, la, large_sizes[i]) * g.ways], g.ways, ctx, la,
                        large_sizes[i]);
    }
    return s;
}

bool tlb_probe(const struct tlb *t, const struct tlb_ctx *ctx, uint64_t la, struct tlb_entry *out)
{
    const struct tlb_slot *s = find(t, ctx, la);

    if (s && out)
        *out = s->e;
    return s != NULL;
}

bool tlb_lookup(struct tlb *t, const struct tlb_ctx *ctx, uint64_t la, struct tlb_entry *out)
{
    struct tlb_slot *s = find(t, ctx, la);

    t->stats.linear.lookups++;
    if (!s) {
        t->stats.linear.misses++;
        return false;
    }
    t->stats.linear.hits++;
    s->stamp = ++t->clock;
    if (out)
        *out = s->e;
    return true;
}

/* ==== Insert ==== */

/* Same tags and page: a new walk result replaces the old entry in place. */
static bool same_key(const struct tlb_entry *a, const struct tlb_entry *b)
{
    return a->kind == b->kind && a->vpid == b->vpid && a->pcid == b->pcid &&
           a->ep4ta == b->ep4ta && a->la == b->la && a->page_size == b->page_size;
}

/* §4.10.1, §29.4.2: new entries take the current VPID, PCID and (with EPT) EP4TA. */
static struct tlb_entry tagged(const struct tlb_ctx *ctx, const struct tlb_entry *in)
{
    struct tlb_entry e = *in;

    e.kind = ctx->ept ? TLB_COMBINED : TLB_LINEAR;
    e.vpid = ctx->vpid;
    e.pcid = ctx->pcid & TLB_PCID_MASK;
    e.ep4ta = ctx->ept ? ctx->ep4ta & TLB_EP4TA_MASK : 0;
    if (e.guest_page_size == 0)
        e.guest_page_size = e.page_size;
    e.la &= ~(e.page_size - 1);
    e.pa &= ~(e.page_size - 1);
    if (e.kind == TLB_LINEAR)
        e.ept_allowed = 0;
    return e;
}

vmxsim_err tlb_insert(struct tlb *t, const struct tlb_ctx *ctx, const struct tlb_entry *in)
{
    struct tlb_geometry g;
    struct tlb_slot *arr, *set;
    struct tlb_entry e;
    unsigned w;

    if (!linear_size_valid(in->page_size) ||
        (in->guest_page_size && (!linear_size_valid(in->guest_page_size) ||
                                 in->guest_page_size < in->page_size)))
        return VMXSIM_ERR_BAD_ARG;
    e = tagged(ctx, in);
    arr = array_for(t, e.page_size, &g);
    if (!g.sets)
        return VMXSIM_OK;
    set = &arr[set_of(g, e.la, e.page_size) * g.ways];
    for (w = 0; w < g.ways; w++)
        if (set[w].valid && same_key(&set[w].e, &e))
            break;
    if (w == g.ways) {
        w = victim_way(set, g.ways);
        if (set[w].valid)
            t->stats.linear.evictions++;
    }
    set[w].e = e;
    set[w].valid = true;
    set[w].stamp = ++t->clock;
    t->stats.linear.inserts++;
    return VMXSIM_OK;
}

/* ==== Access rights of a cached translation (SDM Vol. 3A §4.6) ==== */

enum acc_kind { ACC_READ, ACC_WRITE, ACC_FETCH };

struct acc {
    enum acc_kind kind;
    bool user;     /* user-mode access: CPL 3 and not implicit (§4.6.1) */
    bool implicit; /* implicit supervisor-mode access */
    bool ac;       /* RFLAGS.AC */
};

static struct acc acc_decode(unsigned access)
{
    struct acc a = {
        .kind = (access & PAGING_ACC_FETCH)   ? ACC_FETCH
                : (access & PAGING_ACC_WRITE) ? ACC_WRITE
                                              : ACC_READ,
        .implicit = (access & PAGING_ACC_IMPLICIT) != 0,
        .ac = (access & PAGING_ACC_AC) != 0,
    };
    a.user = (access & PAGING_ACC_USER) && !a.implicit;
    return a;
}

/* §4.6.1: SMAP blocks supervisor data accesses to user-mode addresses unless AC (explicit). */
static bool smap_blocks(const struct paging_state *st, const struct acc *a)
{
    return (st->cr4 & X86_CR4_SMAP) && (a->implicit || !a->ac);
}

/*
 * §4.6.2: the key register for the page: PKRU (CR4.PKE) for user-mode
 * addresses, IA32_PKRS (CR4.PKS) for supervisor-mode ones; keys exist only
 * with 4/5-level paging (EFER.LMA = 1).
 */
static bool pk_register(const struct tlb_entry *e, const struct paging_state *st, uint32_t *reg)
{
    if (!(st->efer & X86_EFER_LMA))
        return false;
    if (e->user && (st->cr4 & X86_CR4_PKE)) {
        *reg = st->pkru;
        return true;
    }
    if (!e->user && (st->cr4 & X86_CR4_PKS)) {
        *reg = st->pkrs;
        return true;
    }
    return false;
}

/* §4.6.2: AD denies data accesses; WD denies writes by user mode, or with CR0.WP = 1. */
static bool pk_denies(const struct tlb_entry *e, const struct paging_state *st,
                      const struct acc *a, enum acc_kind kind)
{
    uint32_t reg;
    unsigned key = e->pkey & 0xFu;

    if (kind == ACC_FETCH || !pk_register(e, st, &reg))
        return false;
    if (reg & (1u << (2 * key)))
        return true;
    return kind == ACC_WRITE && (reg & (1u << (2 * key + 1))) &&
           (a->user || (st->cr0 & X86_CR0_WP));
}

/* §4.6.1 for one access kind on the cached rights, the D flag aside. */
static bool rights_permit(const struct tlb_entry *e, const struct paging_state *st,
                          const struct acc *a, enum acc_kind kind)
{
    bool ok;

    switch (kind) {
    case ACC_WRITE:
        if (a->user)
            ok = e->user && e->writable;
        else if (e->user && smap_blocks(st, a))
            ok = false;
        else
            ok = e->writable || !(st->cr0 & X86_CR0_WP);
        break;
    case ACC_FETCH:
        /* XD is cached "only if IA32_EFER.NXE = 1" (§4.10.2.2): it counts only then. */
        if (e->xd && (st->efer & X86_EFER_NXE))
            ok = false;
        else if (a->user)
            ok = e->user;
        else
            ok = !e->user || !(st->cr4 & X86_CR4_SMEP);
        break;
    default:
        ok = a->user ? e->user : (!e->user || !smap_blocks(st, a));
        break;
    }
    return ok && !pk_denies(e, st, a, kind);
}

static uint8_t allow_bit(enum acc_kind k)
{
    return k == ACC_WRITE ? PAGING_ALLOW_W : k == ACC_FETCH ? PAGING_ALLOW_X : PAGING_ALLOW_R;
}

/*
 * SDM Vol. 3A §4.6 on the rights of §4.10.2.2, §4.8 for the D flag, and for
 * a combined entry the EPT side (§29.4.1: "derived from both").
 */
enum tlb_verdict tlb_check(const struct tlb_entry *e, const struct paging_state *st,
                           unsigned access, uint8_t *allowed)
{
    struct acc a = acc_decode(access);
    uint8_t mask = 0;

    if (rights_permit(e, st, &a, ACC_READ))
        mask |= PAGING_ALLOW_R;
    if (e->dirty && rights_permit(e, st, &a, ACC_WRITE))
        mask |= PAGING_ALLOW_W;
    if (rights_permit(e, st, &a, ACC_FETCH))
        mask |= PAGING_ALLOW_X;
    if (e->kind == TLB_COMBINED)
        mask &= e->ept_allowed;
    if (allowed)
        *allowed = mask;
    if (!rights_permit(e, st, &a, a.kind))
        return TLB_DENY;
    return (mask & allow_bit(a.kind)) ? TLB_GRANT : TLB_WALK;
}

/* ==== Guest-physical mappings ==== */

static struct tlb_gpa_slot *gpa_find(const struct tlb *t, uint64_t ep4ta, uint64_t gpa)
{
    static const uint64_t sizes[] = {TLB_PAGE_4K, TLB_PAGE_2M, TLB_PAGE_1G};
    struct tlb_geometry g = t->cfg.gpa;

    if (!g.sets)
        return NULL;
    ep4ta &= TLB_EP4TA_MASK;
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct tlb_gpa_slot *set = &t->gpa[set_of(g, gpa, sizes[i]) * g.ways];
        for (unsigned w = 0; w < g.ways; w++) {
            const struct tlb_gpa_entry *e = &set[w].e;
            if (set[w].valid && e->page_size == sizes[i] && e->ep4ta == ep4ta &&
                e->gpa == (gpa & ~(sizes[i] - 1)))
                return &set[w];
        }
    }
    return NULL;
}

/* SDM Vol. 3C §29.4.2: guest-physical mappings associated with the current EP4TA. */
bool tlb_gpa_lookup(struct tlb *t, uint64_t ep4ta, uint64_t gpa, struct tlb_gpa_entry *out)
{
    struct tlb_gpa_slot *s = gpa_find(t, ep4ta, gpa);

    t->stats.gpa.lookups++;
    if (!s) {
        t->stats.gpa.misses++;
        return false;
    }
    t->stats.gpa.hits++;
    s->stamp = ++t->clock;
    if (out)
        *out = s->e;
    return true;
}

vmxsim_err tlb_gpa_insert(struct tlb *t, uint64_t ep4ta, const struct tlb_gpa_entry *in)
{
    struct tlb_geometry g = t->cfg.gpa;
    struct tlb_gpa_entry e = *in;
    struct tlb_gpa_slot *set;
    unsigned w;

    if (!gpa_size_valid(e.page_size))
        return VMXSIM_ERR_BAD_ARG;
    if (!g.sets)
        return VMXSIM_OK;
    e.ep4ta = ep4ta & TLB_EP4TA_MASK;
    e.gpa &= ~(e.page_size - 1);
    e.hpa &= ~(e.page_size - 1);
    set = &t->gpa[set_of(g, e.gpa, e.page_size) * g.ways];
    for (w = 0; w < g.ways; w++)
        if (set[w].valid && set[w].e.ep4ta == e.ep4ta && set[w].e.gpa == e.gpa &&
            set[w].e.page_size == e.page_size)
            break;
    if (w == g.ways) {
        w = gpa_victim_way(set, g.ways);
        if (set[w].valid)
            t->stats.gpa.evictions++;
    }
    set[w].e = e;
    set[w].valid = true;
    set[w].stamp = ++t->clock;
    t->stats.gpa.inserts++;
    return VMXSIM_OK;
}

/*
 * SDM Vol. 3C §29.3.3.2 (permissions: bit 0 reads, bit 1 writes, bit 2 or,
 * with MBEC, bit 10 for user-mode linear addresses, fetches) and §29.3.5
 * (a write sets the leaf's dirty flag when EPT A/D flags are enabled).
 */
enum tlb_verdict tlb_gpa_check(const struct tlb_gpa_entry *e, unsigned ept_access, bool mbec)
{
    uint8_t need = 0;

    if (ept_access & EPT_ACC_READ)
        need |= EPT_PERM_R;
    if (ept_access & EPT_ACC_WRITE)
        need |= EPT_PERM_W;
    if (ept_access & EPT_ACC_FETCH)
        need |= (mbec && (ept_access & EPT_ACC_USER_LINEAR)) ? EPT_PERM_XU : EPT_PERM_X;
    if ((e->perms & need) != need)
        return TLB_WALK;
    if ((ept_access & EPT_ACC_WRITE) && !e->dirty)
        return TLB_WALK;
    return TLB_GRANT;
}

/* ==== Invalidation ==== */

#define KIND_LINEAR (1u << TLB_LINEAR)
#define KIND_COMBINED (1u << TLB_COMBINED)
#define KIND_BOTH (KIND_LINEAR | KIND_COMBINED)

enum vpid_sel { VPID_ANY, VPID_EQ, VPID_NONZERO };
enum pcid_sel { PCID_ANY, PCID_EQ, PCID_EQ_OR_GLOBAL };
enum addr_sel {
    ADDR_ANY,
    ADDR_TRANSLATION, /* every entry of the translation the paging structures specify for la,
                         including fragments of a larger guest page (§4.10.4.1 last paragraph) */
    ADDR_USED,        /* entries that would be used to translate la (page_size range) */
};

/* Which linear/combined entries an operation invalidates; one per SDM rule below. */
struct inval {
    enum tlb_cause cause;
    unsigned kinds;
    enum vpid_sel vpid_sel;
    uint16_t vpid;
    enum pcid_sel pcid_sel;
    uint16_t pcid;
    bool keep_global;
    bool by_ep4ta;
    uint64_t ep4ta;
    enum addr_sel addr_sel;
    uint64_t la;
};

static bool covers(uint64_t base, uint64_t size, uint64_t addr)
{
    return base == (addr & ~(size - 1));
}

static bool inval_matches(const struct inval *iv, const struct tlb_entry *e)
{
    if (!(iv->kinds & (1u << e->kind)))
        return false;
    if ((iv->vpid_sel == VPID_EQ && e->vpid != iv->vpid) ||
        (iv->vpid_sel == VPID_NONZERO && e->vpid == 0))
        return false;
    if ((iv->pcid_sel == PCID_EQ && e->pcid != iv->pcid) ||
        (iv->pcid_sel == PCID_EQ_OR_GLOBAL && e->pcid != iv->pcid && !e->global))
        return false;
    if ((iv->keep_global && e->global) || (iv->by_ep4ta && e->ep4ta != iv->ep4ta))
        return false;
    if (iv->addr_sel == ADDR_TRANSLATION)
        return covers(e->la & ~(e->guest_page_size - 1), e->guest_page_size, iv->la);
    if (iv->addr_sel == ADDR_USED)
        return covers(e->la, e->page_size, iv->la);
    return true;
}

static unsigned sweep(struct tlb_slot *arr, unsigned n, const struct inval *iv)
{
    unsigned dropped = 0;

    for (unsigned i = 0; i < n; i++) {
        if (arr[i].valid && inval_matches(iv, &arr[i].e)) {
            arr[i].valid = false;
            dropped++;
        }
    }
    return dropped;
}

static unsigned inval_linear(struct tlb *t, const struct inval *iv)
{
    return sweep(t->small, geo_entries(t->cfg.small), iv) +
           sweep(t->large, geo_entries(t->cfg.large), iv);
}

/* Guest-physical mappings of one EP4TA (or all), optionally only those translating gpa. */
static unsigned inval_gpa(struct tlb *t, bool by_ep4ta, uint64_t ep4ta, bool by_addr,
                          uint64_t gpa)
{
    unsigned dropped = 0;

    for (unsigned i = 0; i < geo_entries(t->cfg.gpa); i++) {
        struct tlb_gpa_slot *s = &t->gpa[i];
        if (!s->valid || (by_ep4ta && s->e.ep4ta != ep4ta) ||
            (by_addr && !covers(s->e.gpa, s->e.page_size, gpa)))
            continue;
        s->valid = false;
        dropped++;
    }
    return dropped;
}

static void account(struct tlb *t, enum tlb_cause c, unsigned dropped)
{
    t->gen++;
    t->stats.ops[c]++;
    t->stats.dropped[c] += dropped;
}

static void run(struct tlb *t, const struct inval *iv)
{
    account(t, iv->cause, inval_linear(t, iv));
}

/*
 * Vol. 3C §29.4.3.1: operations that invalidate TLB entries independently
 * of VMX do so for linear and combined mappings of the current VPID, for
 * all EP4TAs, whether or not EPT is in use now.
 */
static struct inval current_vpid(enum tlb_cause c, const struct tlb_ctx *cur)
{
    struct inval iv = {
        .cause = c, .kinds = KIND_BOTH, .vpid_sel = VPID_EQ, .vpid = cur->vpid,
    };
    return iv;
}

/*
 * Vol. 3A §4.10.4.1 INVLPG: entries for the page number of la associated
 * with the current PCID, and global entries for it regardless of PCID. All
 * fragments of a large page go with it (§4.10.4.1, last paragraph).
 */
static void invlpg_rule(struct tlb *t, enum tlb_cause c, const struct tlb_ctx *cur, uint64_t la)
{
    struct inval iv = current_vpid(c, cur);

    iv.pcid_sel = PCID_EQ_OR_GLOBAL;
    iv.pcid = cur->pcid;
    iv.addr_sel = ADDR_TRANSLATION;
    iv.la = la;
    run(t, &iv);
}

void tlb_invlpg(struct tlb *t, const struct tlb_ctx *cur, uint64_t la)
{
    invlpg_rule(t, TLB_CAUSE_INVLPG, cur, la);
}

/*
 * Vol. 3A §4.10.4.1: a #PF for la invalidates its entries associated with
 * the current PCID so that the fault does not recur from a stale entry; a
 * global entry of another PCID can be the one that faulted (§4.10.2.4), so
 * the INVLPG rule applies. Call when the #PF is recognised, whether it is
 * delivered or causes a VM exit.
 */
void tlb_page_fault(struct tlb *t, const struct tlb_ctx *cur, uint64_t la)
{
    invlpg_rule(t, TLB_CAUSE_PAGE_FAULT, cur, la);
}

/*
 * Vol. 3A §4.10.4.1 INVPCID: type 0 — la in the descriptor's PCID except
 * globals (all fragments: INVPCID footnote); type 1 — the PCID except
 * globals; type 2 — all PCIDs including globals; type 3 — all PCIDs except
 * globals. Current VPID (§29.4.3.1). Unknown types (#GP before this) do nothing.
 */
void tlb_invpcid(struct tlb *t, const struct tlb_ctx *cur, enum tlb_invpcid_type type,
                 uint16_t pcid, uint64_t la)
{
    struct inval iv = current_vpid(TLB_CAUSE_INVPCID, cur);

    switch (type) {
    case TLB_INVPCID_ADDR:
        iv.addr_sel = ADDR_TRANSLATION;
        iv.la = la;
        /* fall through */
    case TLB_INVPCID_SINGLE:
        iv.pcid_sel = PCID_EQ;
        iv.pcid = pcid & TLB_PCID_MASK;
        iv.keep_global = true;
        break;
    case TLB_INVPCID_ALL_GLOBAL:
        break;
    case TLB_INVPCID_ALL_NONGLOBAL:
        iv.keep_global = true;
        break;
    default:
        return;
    }
    run(t, &iv);
}

/*
 * Vol. 3A §4.10.4.1 MOV to CR0: everything, globals included, for all
 * PCIDs, when CR0.PG goes from 1 to 0. Nothing else is required: not for
 * CR0.WP (evaluated at use by tlb_check), CD or NW ("may invalidate").
 */
void tlb_mov_cr0(struct tlb *t, const struct tlb_ctx *cur, uint64_t old_cr0, uint64_t new_cr0)
{
    struct inval iv = current_vpid(TLB_CAUSE_MOV_CR0, cur);

    if ((old_cr0 & X86_CR0_PG) && !(new_cr0 & X86_CR0_PG))
        run(t, &iv);
}

/*
 * Vol. 3A §4.10.4.1 MOV to CR3: with CR4.PCIDE = 0, non-global entries of
 * PCID 000H; with CR4.PCIDE = 1, non-global entries of the PCID in bits
 * 11:0 of the source, unless bit 63 is 1 (then nothing). cr4: CR4 at the
 * time of the MOV.
 */
void tlb_mov_cr3(struct tlb *t, const struct tlb_ctx *cur, uint64_t cr4, uint64_t new_cr3)
{
    struct inval iv = current_vpid(TLB_CAUSE_MOV_CR3, cur);
    bool pcide = (cr4 & X86_CR4_PCIDE) != 0;

    if (pcide && (new_cr3 & X86_CR3_PCID_NOFLUSH))
        return;
    iv.pcid_sel = PCID_EQ;
    iv.pcid = pcide ? (uint16_t)(new_cr3 & TLB_PCID_MASK) : 0;
    iv.keep_global = true;
    run(t, &iv);
}

/*
 * Vol. 3A §4.10.4.1 MOV to CR4: everything, globals included, for all
 * PCIDs, if CR4.PGE changes or CR4.PCIDE goes from 1 to 0; else everything
 * associated with the current PCID if CR4.PAE changes or CR4.SMEP goes from
 * 0 to 1. Nothing is required for PSE, SMEP 1→0, SMAP, PKE, PKS, LA57 (it
 * cannot change with paging on in IA-32e mode) or PCIDE 0→1.
 */
void tlb_mov_cr4(struct tlb *t, const struct tlb_ctx *cur, uint64_t old_cr4, uint64_t new_cr4)
{
    struct inval iv = current_vpid(TLB_CAUSE_MOV_CR4, cur);
    uint64_t changed = old_cr4 ^ new_cr4;
    uint64_t set = ~old_cr4 & new_cr4;

    if ((changed & X86_CR4_PGE) || ((old_cr4 & X86_CR4_PCIDE) && !(new_cr4 & X86_CR4_PCIDE))) {
        run(t, &iv);
        return;
    }
    if ((changed & X86_CR4_PAE) || (set & X86_CR4_SMEP)) {
        iv.pcid_sel = PCID_EQ;
        iv.pcid = cur->pcid;
        run(t, &iv);
    }
}

/*
 * Vol. 3A §4.10.4.1: a task switch that changes CR3 invalidates the
 * non-global entries of PCID 000H (task switches imply CR4.PCIDE = 0).
 */
void tlb_task_switch(struct tlb *t, const struct tlb_ctx *cur, uint64_t old_cr3,
                     uint64_t new_cr3)
{
    struct inval iv = current_vpid(TLB_CAUSE_TASK_SWITCH, cur);

    if (old_cr3 == new_cr3)
        return;
    iv.pcid_sel = PCID_EQ;
    iv.pcid = 0;
    iv.keep_global = true;
    run(t, &iv);
}

/*
 * Vol. 3C §29.4.3.1: an EPT violation invalidates the guest-physical
 * mappings of the current EP4TA for gpa and, when gpa was the translation
 * of la, the combined mappings for la of the current VPID, PCID and EP4TA —
 * the ones the access could use (§29.4.3.4: "any mappings that would be
 * used by the access"), so global ones of another PCID too.
 */
void tlb_ept_violation(struct tlb *t, const struct tlb_ctx *cur, uint64_t gpa, bool la_valid,
                       uint64_t la)
{
    unsigned dropped = inval_gpa(t, true, cur->ep4ta & TLB_EP4TA_MASK, true, gpa);

    if (la_valid) {
        struct inval iv = {
            .kinds = KIND_COMBINED, .vpid_sel = VPID_EQ, .vpid = cur->vpid,
            .pcid_sel = PCID_EQ_OR_GLOBAL, .pcid = cur->pcid,
            .by_ep4ta = true, .ep4ta = cur->ep4ta & TLB_EP4TA_MASK,
            .addr_sel = ADDR_USED, .la = la,
        };
        dropped += inval_linear(t, &iv);
    }
    account(t, TLB_CAUSE_EPT_VIOLATION, dropped);
}

/*
 * Vol. 3C §29.4.3.1: with "enable VPID" = 0, VM entries and VM exits
 * invalidate linear and combined mappings of VPID 0000H, all PCIDs, all
 * EP4TAs (globals included). With "enable VPID" = 1 nothing (§29.4.3.2);
 * guest-physical mappings never.
 */
static void vmx_transition(struct tlb *t, enum tlb_cause c, bool enable_vpid)
{
    struct inval iv = {.cause = c, .kinds = KIND_BOTH, .vpid_sel = VPID_EQ, .vpid = 0};

    if (!enable_vpid)
        run(t, &iv);
}

void tlb_vm_entry(struct tlb *t, bool enable_vpid)
{
    vmx_transition(t, TLB_CAUSE_VM_ENTRY, enable_vpid);
}

void tlb_vm_exit(struct tlb *t, bool enable_vpid)
{
    vmx_transition(t, TLB_CAUSE_VM_EXIT, enable_vpid);
}

/*
 * SDM Vol. 3C ch. 26, VM Functions, "EPTP Switching": with "enable VPID" =
 * 0 the VMFUNC invalidates combined mappings of VPID 0000H "for all PCIDs
 * and for all EP4TA values"; linear and guest-physical mappings stay.
 */
void tlb_vmfunc_eptp_switch(struct tlb *t, bool enable_vpid)
{
    struct inval iv = {
        .cause = TLB_CAUSE_VMFUNC, .kinds = KIND_COMBINED, .vpid_sel = VPID_EQ, .vpid = 0,
    };

    if (!enable_vpid)
        run(t, &iv);
}

/*
 * Vol. 3C §29.4.3.1 INVVPID, linear and combined mappings for all PCIDs and
 * EP4TAs: type 0 — la in the VPID (globals too); type 1 — the VPID; type 2 —
 * every VPID except 0000H; type 3 — the VPID except globals. The VMX unit
 * VMfails the VPID-0 and unsupported cases before calling.
 */
void tlb_invvpid(struct tlb *t, enum tlb_invvpid_type type, uint16_t vpid, uint64_t la)
{
    struct inval iv = {
        .cause = TLB_CAUSE_INVVPID, .kinds = KIND_BOTH, .vpid_sel = VPID_EQ, .vpid = vpid,
    };

    switch (type) {
    case TLB_INVVPID_ADDR:
        iv.addr_sel = ADDR_TRANSLATION;
        iv.la = la;
        break;
    case TLB_INVVPID_SINGLE:
        break;
    case TLB_INVVPID_ALL:
        iv.vpid_sel = VPID_NONZERO;
        break;
    case TLB_INVVPID_SINGLE_KEEP_GLOBALS:
        iv.keep_global = true;
        break;
    default:
        return;
    }
    run(t, &iv);
}

/*
 * Vol. 3C §29.4.3.1 INVEPT: single-context — guest-physical and combined
 * mappings of the descriptor's EP4TA (all VPIDs, PCIDs); all-context — those
 * of every EP4TA. Linear mappings stay (§29.4.3.2).
 */
void tlb_invept(struct tlb *t, enum tlb_invept_type type, uint64_t eptp)
{
    bool single = type == TLB_INVEPT_SINGLE;
    struct inval iv = {
        .cause = TLB_CAUSE_INVEPT, .kinds = KIND_COMBINED,
        .by_ep4ta = single, .ep4ta = eptp & TLB_EP4TA_MASK,
    };

    if (type != TLB_INVEPT_SINGLE && type != TLB_INVEPT_ALL)
        return;
    account(t, TLB_CAUSE_INVEPT, inval_linear(t, &iv) + inval_gpa(t, single, iv.ep4ta, false, 0));
}

/* Vol. 3C §29.4.3.1: power-up or reset invalidates every mapping; Vol. 3A §10.1: INIT too. */
void tlb_reset(struct tlb *t)
{
    struct inval iv = {.cause = TLB_CAUSE_RESET, .kinds = KIND_BOTH};

    account(t, TLB_CAUSE_RESET, inval_linear(t, &iv) + inval_gpa(t, false, 0, false, 0));
}

/* ==== Statistics ==== */

const struct tlb_stats *tlb_stats(const struct tlb *t) { return &t->stats; }

uint64_t tlb_generation(const struct tlb *t) { return t->gen; }

void tlb_stats_clear(struct tlb *t) { memset(&t->stats, 0, sizeof t->stats); }

static unsigned count_valid(const struct tlb_slot *arr, unsigned n)
{
    unsigned c = 0;

    for (unsigned i = 0; i < n; i++)
        c += arr[i].valid;
    return c;
}

unsigned tlb_count(const struct tlb *t)
{
    return count_valid(t->small, geo_entries(t->cfg.small)) +
           count_valid(t->large, geo_entries(t->cfg.large));
}

unsigned tlb_entries(const struct tlb *t, struct tlb_entry *out, unsigned max)
{
    unsigned n = 0;
    const struct tlb_slot *arrays[] = {t->small, t->large};
    unsigned sizes[] = {geo_entries(t->cfg.small), geo_entries(t->cfg.large)};

    for (unsigned a = 0; a < 2; a++)
        for (unsigned i = 0; i < sizes[a]; i++)
            if (arrays[a][i].valid && n++ < max && out)
                out[n - 1] = arrays[a][i].e;
    return n;
}

unsigned tlb_gpa_count(const struct tlb *t)
{
    unsigned c = 0;

    for (unsigned i = 0; i < geo_entries(t->cfg.gpa); i++)
        c += t->gpa[i].valid;
    return c;
}
