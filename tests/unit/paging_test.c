/*
 * Paging unit tests (DESIGN §4): page tables built in a small fake physical
 * memory, then vectors {state, la, access} → {status, pa or fault, allowed,
 * accessed/dirty flags after}. Expected values are worked out by hand from
 * SDM Vol. 3A chapter 4; the entry and error-code bits below are written
 * down from the SDM tables, not taken from src/paging.
 *
 * Vectors: paging_walk_vectors.inc (walks), paging_pdpte_vectors.inc
 * (PAE PDPTE loads). Special cases (A/D races, accessor failures during
 * A/D updates, mode selection) are separate tests at the end.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86.h"
#include "paging/paging.h"

/* Paging-structure entry bits — SDM Vol. 3A Tables 4-4 to 4-20 */
#define E_P 0x1ULL                          /* present */
#define E_RW 0x2ULL                         /* read/write */
#define E_US 0x4ULL                         /* user/supervisor */
#define E_A 0x20ULL                         /* accessed */
#define E_D 0x40ULL                         /* dirty */
#define E_PS 0x80ULL                        /* page size */
#define E_G 0x100ULL                        /* global */
#define E_XD 0x8000000000000000ULL          /* execute-disable */
#define E_PK(k) ((uint64_t)(k) << 59)       /* protection key, bits 62:59 */
#define B(n) (1ULL << (n))                  /* any other single bit */

#define URW (E_P | E_RW | E_US) /* user, writable */
#define URO (E_P | E_US)        /* user, read-only */
#define SRW (E_P | E_RW)        /* supervisor, writable */
#define SRO (E_P)               /* supervisor, read-only */

/* #PF error code — SDM Vol. 3A §4.7, Figure 4-12 */
#define EC_P 0x01u
#define EC_W 0x02u
#define EC_U 0x04u
#define EC_RSVD 0x08u
#define EC_I 0x10u
#define EC_PK 0x20u

/* Control bits — SDM Vol. 3A §2.5, §2.2.1 */
#define WP (1ULL << 16)    /* CR0.WP */
#define PSE (1ULL << 4)    /* CR4.PSE */
#define PGE (1ULL << 7)    /* CR4.PGE */
#define SMEP (1ULL << 20)  /* CR4.SMEP */
#define SMAP (1ULL << 21)  /* CR4.SMAP */
#define PKE (1ULL << 22)   /* CR4.PKE */
#define PKS (1ULL << 24)   /* CR4.PKS */
#define NXE (1ULL << 11)   /* IA32_EFER.NXE */
#define AD(k) (1u << (2 * (k)))     /* PKRU/PKRS access-disable for key k */
#define WD(k) (1u << (2 * (k) + 1)) /* PKRU/PKRS write-disable for key k */

/* Accesses: kernel (CPL < 3) or user, read/write/fetch, and modifiers. */
#define K_R PAGING_ACC_READ
#define K_W PAGING_ACC_WRITE
#define K_X PAGING_ACC_FETCH
#define U_R PAGING_ACC_USER
#define U_W (PAGING_ACC_USER | PAGING_ACC_WRITE)
#define U_X (PAGING_ACC_USER | PAGING_ACC_FETCH)
#define AC PAGING_ACC_AC
#define IMPL PAGING_ACC_IMPLICIT
#define NOAD PAGING_ACC_NO_AD

#define AL_0 0u
#define AL_R PAGING_ALLOW_R
#define AL_X PAGING_ALLOW_X
#define AL_RX (PAGING_ALLOW_R | PAGING_ALLOW_X)
#define AL_RW (PAGING_ALLOW_R | PAGING_ALLOW_W)
#define AL_RWX (PAGING_ALLOW_R | PAGING_ALLOW_W | PAGING_ALLOW_X)

#define SZ_4K 0x1000ULL
#define SZ_2M 0x200000ULL
#define SZ_4M 0x400000ULL
#define SZ_1G 0x40000000ULL

/* Fake physical memory: one table page per level, everything else unbacked. */
#define FAKE_SIZE 0x20000ULL
#define TBL(level) (0x10000ULL + 0x1000ULL * (level))
#define BAD_TABLE 0x40000000ULL /* outside FAKE_SIZE */
#define DEFAULT_MAXPHY 46

enum ad_expect {
    AD_NONE, /* no entry changes */
    AD_A,    /* A set in every in-memory entry used */
    AD_AD,   /* A set in every in-memory entry used, D in the leaf */
};

struct walk_vec {
    const char *name;
    /* state */
    enum paging_mode mode;
    uint64_t cr0, cr3x, cr4, efer; /* extra bits; the mode's own bits are implied */
    uint32_t pkru, pkrs;
    uint8_t maxphy; /* 0 = DEFAULT_MAXPHY */
    uint32_t features;
    /* tables: e[level] (1 = PTE ... 5 = PML5E); non-leaf entries get TBL(level - 1) */
    uint64_t e[6];
    unsigned leaf;
    unsigned bad_level;    /* entry at this level (top + 1 = CR3) points to BAD_TABLE */
    unsigned nested_level; /* the entry at this level reads as PAGING_MEM_NESTED */
    /* access */
    uint64_t la;
    unsigned acc;
    /* expected */
    enum paging_status want;
    uint64_t pa, size;
    uint8_t allow;
    bool global;
    bool gp;
    uint32_t err;
    enum ad_expect ad;
    uint64_t bad_pa;
};

#define M_NONE .mode = PAGING_MODE_NONE
#define M_32 .mode = PAGING_MODE_32BIT
#define M_PAE .mode = PAGING_MODE_PAE
#define M_4 .mode = PAGING_MODE_4LEVEL
#define M_5 .mode = PAGING_MODE_5LEVEL

/* Entries root first; the last one maps the page (its frame included). */
#define T4K(pde, pte) .e = {[2] = (pde), [1] = (pte)}, .leaf = 1
#define T4M(pde) .e = {[2] = (pde)}, .leaf = 2
#define P4K(pdpte, pde, pte) .e = {[3] = (pdpte), [2] = (pde), [1] = (pte)}, .leaf = 1
#define P2M(pdpte, pde) .e = {[3] = (pdpte), [2] = (pde)}, .leaf = 2
#define L4K(l4, l3, l2, l1) .e = {[4] = (l4), [3] = (l3), [2] = (l2), [1] = (l1)}, .leaf = 1
#define L2M(l4, l3, l2) .e = {[4] = (l4), [3] = (l3), [2] = (l2)}, .leaf = 2
#define L1G(l4, l3) .e = {[4] = (l4), [3] = (l3)}, .leaf = 3
#define F4K(l5, l4, l3, l2, l1) \
    .e = {[5] = (l5), [4] = (l4), [3] = (l3), [2] = (l2), [1] = (l1)}, .leaf = 1
#define F2M(l5, l4, l3, l2) .e = {[5] = (l5), [4] = (l4), [3] = (l3), [2] = (l2)}, .leaf = 2
#define F1G(l5, l4, l3) .e = {[5] = (l5), [4] = (l4), [3] = (l3)}, .leaf = 3

#define OK(pa_, size_, allow_, ad_) \
    .want = PAGING_OK, .pa = (pa_), .size = (size_), .allow = (allow_), .ad = (ad_)
#define PF(err_) .want = PAGING_FAULT, .err = (err_), .ad = AD_NONE
#define GP0 .want = PAGING_FAULT, .gp = true, .ad = AD_NONE
#define BADPHYS(pa_) .want = PAGING_BAD_PHYS, .bad_pa = (pa_), .ad = AD_NONE
#define NESTED .want = PAGING_NESTED, .ad = AD_NONE

/* Linear addresses and frames used by most vectors (PA = frame | offset). */
#define LA32 0x12345678ULL             /* PDE 0x048, PTE 0x345, offset 0x678 */
#define FR32_4K 0x0ABCD000ULL          /* → 0x0ABCD678 */
#define FR32_4M 0x00C00000ULL          /* → 0x00F45678 (4M offset 0x345678) */
#define LAPAE 0x92345678ULL            /* PDPTE 2, PDE 0x091, PTE 0x145 */
#define FRPAE_2M 0x7FE00000ULL         /* → 0x7FF45678 (2M offset 0x145678) */
#define LA64 0x00007ABC12345678ULL     /* PML4E 0x0F5, PDPTE 0x0F0, PDE 0x091, PTE 0x145 */
#define FR_4K 0x3456789A000ULL         /* → 0x3456789A678 */
#define FR_2M 0x34567800000ULL         /* → 0x34567945678 */
#define FR_1G 0x34540000000ULL         /* → 0x34552345678 (1G offset 0x12345678) */
#define LA57 0x00AB7ABC12345678ULL     /* PML5E 0x0AB, then as LA64 */

static const struct walk_vec walk_vecs[] = {
#include "paging_walk_vectors.inc"
};

/* ---- fake physical memory ---------------------------------------------- */

struct fake_mem {
    uint8_t bytes[FAKE_SIZE];
    bool nested;                  /* reads of nested_pa fail as NESTED */
    uint64_t nested_pa;
    enum paging_mem_status xchg_status; /* forced cmpxchg failure (OK = none) */
    bool race_armed;              /* next cmpxchg of race_pa first stores race_value */
    uint64_t race_pa, race_value;
    unsigned reads, xchgs;
    bool misaligned;              /* an access was not a naturally aligned 4/8 bytes */
};

static struct fake_mem fm;
static uint8_t expect_bytes[FAKE_SIZE];

static uint64_t load(uint64_t pa, unsigned size)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)fm.bytes[pa + i] << (8 * i);
    return v;
}

static void store_to(uint8_t *mem, uint64_t pa, unsigned size, uint64_t v)
{
    for (unsigned i = 0; i < size; i++)
        mem[pa + i] = (uint8_t)(v >> (8 * i));
}

static bool check_access(uint64_t pa, unsigned size)
{
    if ((size != 4 && size != 8) || pa % size != 0)
        fm.misaligned = true;
    return pa < FAKE_SIZE && pa + size <= FAKE_SIZE;
}

static enum paging_mem_status fake_read(void *ctx, uint64_t pa, unsigned size, uint64_t *val)
{
    (void)ctx;
    fm.reads++;
    if (fm.nested && pa == fm.nested_pa)
        return PAGING_MEM_NESTED;
    if (!check_access(pa, size))
        return PAGING_MEM_UNBACKED;
    *val = load(pa, size);
    return PAGING_MEM_OK;
}

static enum paging_mem_status fake_cmpxchg(void *ctx, uint64_t pa, unsigned size, uint64_t expect,
                                           uint64_t desired, uint64_t *cur)
{
    (void)ctx;
    fm.xchgs++;
    if (fm.xchg_status != PAGING_MEM_OK)
        return fm.xchg_status;
    if (!check_access(pa, size))
        return PAGING_MEM_UNBACKED;
    if (fm.race_armed && pa == fm.race_pa) {
        fm.race_armed = false;
        store_to(fm.bytes, pa, size, fm.race_value);
    }
    *cur = load(pa, size);
    if (*cur == expect)
        store_to(fm.bytes, pa, size, desired);
    return PAGING_MEM_OK;
}

static const struct paging_mem fake = {.ctx = &fm, .read = fake_read, .cmpxchg = fake_cmpxchg};

/* ---- building a vector's page tables ------------------------------------ */

/* SDM Vol. 3A §4.1.1, Table 4-1: control bits that select each mode. */
static struct paging_state state_for(const struct walk_vec *v)
{
    struct paging_state st = {
        .cr0 = X86_CR0_PE | X86_CR0_ET | v->cr0,
        .cr4 = v->cr4,
        .efer = v->efer,
        .pkru = v->pkru,
        .pkrs = v->pkrs,
        .maxphyaddr = v->maxphy ? v->maxphy : DEFAULT_MAXPHY,
        .features = v->features,
    };

    if (v->mode != PAGING_MODE_NONE)
        st.cr0 |= X86_CR0_PG;
    if (v->mode >= PAGING_MODE_PAE)
        st.cr4 |= X86_CR4_PAE;
    if (v->mode >= PAGING_MODE_4LEVEL)
        st.efer |= X86_EFER_LME | X86_EFER_LMA;
    if (v->mode == PAGING_MODE_5LEVEL)
        st.cr4 |= X86_CR4_LA57;
    return st;
}

static unsigned top_level(enum paging_mode mode)
{
    static const unsigned top[] = {0, 2, 3, 4, 5};
    return top[mode];
}

static unsigned entry_size(enum paging_mode mode)
{
    return mode == PAGING_MODE_32BIT ? 4 : 8;
}

/* SDM Vol. 3A Table 4-2: linear-address bits that select the entry at level. */
static unsigned index_of(enum paging_mode mode, unsigned level, uint64_t la)
{
    if (mode == PAGING_MODE_32BIT)
        return (unsigned)(la >> (12 + 10 * (level - 1))) & 0x3FF;
    if (mode == PAGING_MODE_PAE && level == 3)
        return (unsigned)(la >> 30) & 3;
    return (unsigned)(la >> (12 + 9 * (level - 1))) & 0x1FF;
}

/* Write the vector's entries; entry_pa[level] = 0 for a PAE PDPTE register. */
static void build(const struct walk_vec *v, struct paging_state *st, uint64_t entry_pa[6])
{
    unsigned top = top_level(v->mode), size = entry_size(v->mode);

    memset(&fm, 0, sizeof fm);
    memset(entry_pa, 0, 6 * sizeof entry_pa[0]);
    if (v->mode == PAGING_MODE_NONE)
        return;
    st->cr3 = (v->bad_level == top + 1 ? BAD_TABLE : TBL(top)) | v->cr3x;
    for (unsigned level = top; level >= v->leaf && level > 0; level--) {
        uint64_t val = v->e[level];
        unsigned idx = index_of(v->mode, level, v->la);

        if (level > v->leaf)
            val |= v->bad_level == level ? BAD_TABLE : TBL(level - 1);
        if (v->mode == PAGING_MODE_PAE && level == 3) {
            st->pdpte[idx] = val;
            continue;
        }
        entry_pa[level] = TBL(level) + (uint64_t)idx * size;
        store_to(fm.bytes, entry_pa[level], size, val);
        if (v->nested_level == level) {
            fm.nested = true;
            fm.nested_pa = entry_pa[level];
        }
    }
}

/* Memory after the walk per SDM §4.8; returns how many entries change. */
static unsigned expected_memory(const struct walk_vec *v, const uint64_t entry_pa[6])
{
    unsigned size = entry_size(v->mode), changed = 0;

    memcpy(expect_bytes, fm.bytes, sizeof expect_bytes);
    if (v->ad == AD_NONE)
        return 0;
    for (unsigned level = v->leaf; level <= top_level(v->mode); level++) {
        if (entry_pa[level] == 0)
            continue;
        uint64_t old = load(entry_pa[level], size), val = old | E_A;
        if (level == v->leaf && v->ad == AD_AD)
            val |= E_D;
        store_to(expect_bytes, entry_pa[level], size, val);
        changed += val != old;
    }
    return changed;
}

static void check_fault(const struct walk_vec *v, const struct paging_result *r)
{
    uint64_t cr2 = v->mode >= PAGING_MODE_4LEVEL ? v->la : v->la & 0xFFFFFFFFULL;

    ck_assert_msg(r->fault.has_error, "%s: fault without error code", v->name);
    ck_assert_msg(r->allowed == 0 && r->pa == 0, "%s: fault with a translation", v->name);
    if (v->gp) {
        ck_assert_msg(r->fault.vector == X86_GP && r->fault.error_code == 0,
                      "%s: vector %u error %#x, want #GP(0)", v->name, r->fault.vector,
                      r->fault.error_code);
        return;
    }
    ck_assert_msg(r->fault.vector == X86_PF, "%s: vector %u, want #PF", v->name,
                  r->fault.vector);
    ck_assert_msg(r->fault.error_code == v->err, "%s: error code %#x, want %#x", v->name,
                  r->fault.error_code, v->err);
    ck_assert_msg(r->fault.cr2 == cr2, "%s: cr2 %#llx, want %#llx", v->name,
                  (unsigned long long)r->fault.cr2, (unsigned long long)cr2);
}

static void check_translation(const struct walk_vec *v, const struct paging_result *r)
{
    ck_assert_msg(r->pa == v->pa, "%s: pa %#llx, want %#llx", v->name,
                  (unsigned long long)r->pa, (unsigned long long)v->pa);
    ck_assert_msg(r->page_size == v->size, "%s: page size %#llx, want %#llx", v->name,
                  (unsigned long long)r->page_size, (unsigned long long)v->size);
    ck_assert_msg(r->allowed == v->allow, "%s: allowed %#x, want %#x", v->name, r->allowed,
                  v->allow);
    ck_assert_msg(r->global == v->global, "%s: global %d, want %d", v->name, r->global,
                  v->global);
}

static void check_memory(const struct walk_vec *v, unsigned changed)
{
    if (memcmp(fm.bytes, expect_bytes, sizeof expect_bytes) != 0) {
        uint64_t pa = 0;
        while (fm.bytes[pa] == expect_bytes[pa])
            pa++;
        ck_abort_msg("%s: byte %#llx is %#x after the walk, want %#x", v->name,
                     (unsigned long long)pa, fm.bytes[pa], expect_bytes[pa]);
    }
    ck_assert_msg(fm.xchgs == changed, "%s: %u cmpxchg calls, want %u (one per changed entry)",
                  v->name, fm.xchgs, changed);
    ck_assert_msg(!fm.misaligned, "%s: entry access not naturally aligned", v->name);
}

START_TEST(test_walk_vector)
{
    const struct walk_vec *v = &walk_vecs[_i];
    struct paging_state st = state_for(v);
    uint64_t entry_pa[6];
    struct paging_result r;

    build(v, &st, entry_pa);
    unsigned changed = expected_memory(v, entry_pa);
    memset(&r, 0xA5, sizeof r);
    enum paging_status s = paging_walk(&st, &fake, v->la, v->acc, &r);

    ck_assert_msg(s == v->want, "%s: status %d, want %d", v->name, s, v->want);
    if (s == PAGING_OK)
        check_translation(v, &r);
    else if (s == PAGING_FAULT)
        check_fault(v, &r);
    else if (s == PAGING_BAD_PHYS)
        ck_assert_msg(r.bad_pa == v->bad_pa, "%s: bad_pa %#llx, want %#llx", v->name,
                      (unsigned long long)r.bad_pa, (unsigned long long)v->bad_pa);
    check_memory(v, changed);
}
END_TEST

/* ---- PAE PDPTE loads (SDM Vol. 3A §4.4.1) -------------------------------- */

struct pdpte_vec {
    const char *name;
    uint8_t maxphy;
    uint64_t cr3;       /* PDPT at cr3 & 0xFFFFFFE0 */
    uint64_t mem[4];    /* PDPTEs in memory */
    bool ok;            /* load succeeds; registers then equal mem[] */
};

static const struct pdpte_vec pdpte_vecs[] = {
#include "paging_pdpte_vectors.inc"
};

START_TEST(test_pdpte_vector)
{
    const struct pdpte_vec *v = &pdpte_vecs[_i];
    struct paging_state st = {.cr0 = X86_CR0_PE | X86_CR0_PG, .cr4 = X86_CR4_PAE,
                              .maxphyaddr = v->maxphy};
    uint64_t regs[4] = {0x1111, 0x2222, 0x3333, 0x4444};
    uint64_t base = v->cr3 & 0xFFFFFFE0ULL;

    memset(&fm, 0, sizeof fm);
    for (unsigned i = 0; i < 4; i++)
        if (base + 8 * i + 8 <= FAKE_SIZE)
            store_to(fm.bytes, base + 8 * i, 8, v->mem[i]);
    bool ok = paging_load_pdptes(&st, &fake, v->cr3, regs);

    ck_assert_msg(ok == v->ok, "%s: load returned %d, want %d", v->name, ok, v->ok);
    for (unsigned i = 0; i < 4; i++) {
        uint64_t want = v->ok ? v->mem[i] : 0x1111ULL * (i + 1);
        ck_assert_msg(regs[i] == want, "%s: PDPTE%u = %#llx, want %#llx", v->name, i,
                      (unsigned long long)regs[i], (unsigned long long)want);
    }
    ck_assert_msg(!fm.misaligned, "%s: PDPTE read not 8-byte aligned", v->name);
}
END_TEST

/* SDM §4.4.1: PDPTEs loaded from CR3 then drive the walk; memory PDPTEs are not re-read. */
START_TEST(test_pae_loaded_registers_drive_walk)
{
    struct paging_state st = {.cr0 = X86_CR0_PE | X86_CR0_PG, .cr4 = X86_CR4_PAE,
                              .cr3 = TBL(3), .maxphyaddr = 36};
    struct paging_result r;

    memset(&fm, 0, sizeof fm);
    store_to(fm.bytes, TBL(3) + 2 * 8, 8, TBL(2) | E_P);
    store_to(fm.bytes, TBL(2) + 0x091 * 8, 8, TBL(1) | URW);
    store_to(fm.bytes, TBL(1) + 0x145 * 8, 8, FR32_4K | URW);
    ck_assert(paging_load_pdptes(&st, &fake, st.cr3, st.pdpte));
    ck_assert_uint_eq(st.pdpte[2], TBL(2) | E_P);
    /* Clearing the in-memory PDPTE changes nothing until the next load. */
    store_to(fm.bytes, TBL(3) + 2 * 8, 8, 0);
    ck_assert_int_eq(paging_walk(&st, &fake, LAPAE, U_R, &r), PAGING_OK);
    ck_assert_uint_eq(r.pa, 0x0ABCD678ULL);
    ck_assert_uint_eq(load(TBL(3) + 2 * 8, 8), 0); /* PDPTE registers get no A flag */
}
END_TEST

/* ---- accessed/dirty races and failures (SDM Vol. 3A §4.8) ----------------- */

/* 4-level tables for LA64 (indices as in the comment on LA64). */
static struct paging_state race_setup(uint64_t pte)
{
    struct paging_state st = {.cr0 = X86_CR0_PE | X86_CR0_PG, .cr4 = X86_CR4_PAE,
                              .efer = X86_EFER_LME | X86_EFER_LMA, .cr3 = TBL(4),
                              .maxphyaddr = DEFAULT_MAXPHY};

    memset(&fm, 0, sizeof fm);
    store_to(fm.bytes, TBL(4) + 0x0F5 * 8, 8, TBL(3) | URW);
    store_to(fm.bytes, TBL(3) + 0x0F0 * 8, 8, TBL(2) | URW);
    store_to(fm.bytes, TBL(2) + 0x091 * 8, 8, TBL(1) | URW);
    store_to(fm.bytes, TBL(1) + 0x145 * 8, 8, pte);
    return st;
}

#define PDE_PA (TBL(2) + 0x091 * 8)
#define PTE_PA (TBL(1) + 0x145 * 8)

START_TEST(test_race_ignored_bit_retries)
{
    struct paging_state st = race_setup(FR_4K | URW);
    struct paging_result r;

    /* Another agent sets an ignored bit (9) in the PDE between read and cmpxchg. */
    fm.race_armed = true;
    fm.race_pa = PDE_PA;
    fm.race_value = TBL(1) | URW | B(9);
    ck_assert_int_eq(paging_walk(&st, &fake, LA64, U_W, &r), PAGING_OK);
    ck_assert_uint_eq(r.pa, 0x3456789A678ULL);
    ck_assert_uint_eq(load(PDE_PA, 8), TBL(1) | URW | B(9) | E_A); /* its bit survives */
    ck_assert_uint_eq(load(PTE_PA, 8), FR_4K | URW | E_A | E_D);
    ck_assert_uint_eq(r.allowed, AL_RWX);
}
END_TEST

START_TEST(test_race_not_present_faults)
{
    struct paging_state st = race_setup(FR_4K | URW);
    struct paging_result r;

    /* The PTE is cleared before its A flag lands: the re-walk finds it not present. */
    fm.race_armed = true;
    fm.race_pa = PTE_PA;
    fm.race_value = FR_4K | E_RW | E_US;
    ck_assert_int_eq(paging_walk(&st, &fake, LA64, U_R, &r), PAGING_FAULT);
    ck_assert_uint_eq(r.fault.vector, X86_PF);
    ck_assert_uint_eq(r.fault.error_code, EC_U);
    ck_assert_uint_eq(load(PTE_PA, 8), FR_4K | E_RW | E_US); /* no A on the dead entry */
}
END_TEST

START_TEST(test_race_write_protect_faults)
{
    struct paging_state st = race_setup(FR_4K | URW);
    struct paging_result r;

    /* The PTE becomes read-only before the D flag lands: the write faults, no D. */
    fm.race_armed = true;
    fm.race_pa = PTE_PA;
    fm.race_value = FR_4K | URO;
    ck_assert_int_eq(paging_walk(&st, &fake, LA64, U_W, &r), PAGING_FAULT);
    ck_assert_uint_eq(r.fault.error_code, EC_P | EC_W | EC_U);
    ck_assert_uint_eq(load(PTE_PA, 8), FR_4K | URO);
}
END_TEST

START_TEST(test_ad_update_nested)
{
    struct paging_state st = race_setup(FR_4K | URW);
    struct paging_result r;

    fm.xchg_status = PAGING_MEM_NESTED;
    ck_assert_int_eq(paging_walk(&st, &fake, LA64, U_R, &r), PAGING_NESTED);
}
END_TEST

START_TEST(test_ad_update_unbacked)
{
    struct paging_state st = race_setup(FR_4K | URW);
    struct paging_result r;

    fm.xchg_status = PAGING_MEM_UNBACKED;
    ck_assert_int_eq(paging_walk(&st, &fake, LA64, U_R, &r), PAGING_BAD_PHYS);
    ck_assert_uint_eq(r.bad_pa, TBL(4) + 0x0F5 * 8); /* the first entry to update */
}
END_TEST

/* ---- mode selection (SDM Vol. 3A §4.1.1, Table 4-1) ----------------------- */

struct mode_vec {
    uint64_t cr0, cr4, efer;
    enum paging_mode mode;
    unsigned la_width;
};

static const struct mode_vec mode_vecs[] = {
    {0, 0, 0, PAGING_MODE_NONE, 32},
    {X86_CR0_PE, X86_CR4_PAE | X86_CR4_LA57, X86_EFER_LME, PAGING_MODE_NONE, 32},
    {X86_CR0_PE | X86_CR0_PG, 0, 0, PAGING_MODE_32BIT, 32},
    {X86_CR0_PE | X86_CR0_PG, X86_CR4_PSE | X86_CR4_LA57, X86_EFER_NXE, PAGING_MODE_32BIT, 32},
    {X86_CR0_PE | X86_CR0_PG, X86_CR4_PAE, 0, PAGING_MODE_PAE, 32},
    {X86_CR0_PE | X86_CR0_PG, X86_CR4_PAE | X86_CR4_LA57, 0, PAGING_MODE_PAE, 32},
    {X86_CR0_PE | X86_CR0_PG, X86_CR4_PAE, X86_EFER_LME | X86_EFER_LMA, PAGING_MODE_4LEVEL, 48},
    {X86_CR0_PE | X86_CR0_PG, X86_CR4_PAE | X86_CR4_LA57, X86_EFER_LME | X86_EFER_LMA,
     PAGING_MODE_5LEVEL, 57},
};

START_TEST(test_mode_vector)
{
    const struct mode_vec *v = &mode_vecs[_i];
    struct paging_state st = {.cr0 = v->cr0, .cr4 = v->cr4, .efer = v->efer};

    ck_assert_int_eq(paging_mode_of(&st), v->mode);
    ck_assert_uint_eq(paging_la_width(&st), v->la_width);
}
END_TEST

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *paging_suite(void)
{
    Suite *s = suite_create("paging");
    TCase *walk = tcase_create("walk_vectors");
    TCase *pdpte = tcase_create("pdpte");
    TCase *ad = tcase_create("accessed_dirty");
    TCase *mode = tcase_create("mode");

    tcase_add_loop_test(walk, test_walk_vector, 0, COUNT(walk_vecs));
    tcase_add_loop_test(pdpte, test_pdpte_vector, 0, COUNT(pdpte_vecs));
    tcase_add_test(pdpte, test_pae_loaded_registers_drive_walk);
    tcase_add_test(ad, test_race_ignored_bit_retries);
    tcase_add_test(ad, test_race_not_present_faults);
    tcase_add_test(ad, test_race_write_protect_faults);
    tcase_add_test(ad, test_ad_update_nested);
    tcase_add_test(ad, test_ad_update_unbacked);
    tcase_add_loop_test(mode, test_mode_vector, 0, COUNT(mode_vecs));
    suite_add_tcase(s, walk);
    suite_add_tcase(s, pdpte);
    suite_add_tcase(s, ad);
    suite_add_tcase(s, mode);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(paging_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
