/*
 * EPT unit tests (DESIGN §4): EPT paging structures and guest page tables
 * built in a small fake host memory, then vectors → {status, host address,
 * permissions, exit qualification, A/D flags after}. Expected values are
 * worked out by hand from SDM Vol. 3C §29.3 (EPT), §28.2.1 Table 28-7 (exit
 * qualification for EPT violations), §27.2.1.1 (EPTP checks) and Appendix
 * A.10 (IA32_VMX_EPT_VPID_CAP); the bit values below are written down from
 * the SDM tables, not taken from src/paging.
 *
 * Vectors: ept_walk_vectors.inc (ept_walk), ept_eptp_vectors.inc
 * (ept_eptp_valid), ept_nested_vectors.inc (paging_walk_nested). Special
 * cases (races, unbacked memory, page-size combination, PDPTE loads through
 * EPT) are separate tests at the end.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86.h"
#include "paging/paging.h"

#define B(n) (1ULL << (n)) /* any single bit */

/* EPT entry bits — SDM Vol. 3C Tables 29-1 to 29-7 */
#define E_R 0x1ULL                       /* read */
#define E_W 0x2ULL                       /* write */
#define E_X 0x4ULL                       /* execute (supervisor with MBEC) */
#define MT(t) ((uint64_t)(t) << 3)       /* memory type, bits 5:3 */
#define E_IPAT 0x40ULL                   /* ignore PAT */
#define E_PS 0x80ULL                     /* maps a page (PDE, PDPTE) */
#define E_A 0x100ULL                     /* accessed */
#define E_D 0x200ULL                     /* dirty */
#define E_XU 0x400ULL                    /* user execute (MBEC) */
#define RWX (E_R | E_W | E_X)
#define RW (E_R | E_W)
#define RX (E_R | E_X)
#define WB MT(6)

/* IA32_VMX_EPT_VPID_CAP — SDM Vol. 3D Appendix A.10 */
#define C_XO B(0)   /* execute-only translations */
#define C_PWL4 B(6) /* page-walk length 4 */
#define C_PWL5 B(7) /* page-walk length 5 */
#define C_UC B(8)   /* EPTP memory type UC */
#define C_WB B(14)  /* EPTP memory type WB */
#define C_2M B(16)  /* 2-MByte EPT pages */
#define C_1G B(17)  /* 1-GByte EPT pages */
#define C_AD B(21)  /* EPT accessed and dirty flags */
#define C_ADV B(22) /* advanced VM-exit information for EPT violations */
#define C_SSS B(23) /* supervisor shadow-stack control */
#define C_ALL (C_XO | C_PWL4 | C_PWL5 | C_UC | C_WB | C_2M | C_1G | C_AD | C_ADV)

/* EPTP — SDM Vol. 3C §25.6.11, Table 25-9 */
#define PT_UC 0ULL
#define PT_WB 6ULL
#define PT_PWL4 (3ULL << 3)
#define PT_PWL5 (4ULL << 3)
#define EPTP_AD B(6)

/* Exit qualification for EPT violations — SDM Vol. 3C Table 28-7 */
#define Q_R 0x1ULL     /* data read */
#define Q_W 0x2ULL     /* data write */
#define Q_X 0x4ULL     /* instruction fetch */
#define Q_PR 0x8ULL    /* AND of bit 0 */
#define Q_PW 0x10ULL   /* AND of bit 1 */
#define Q_PX 0x20ULL   /* AND of bit 2 */
#define Q_PXU 0x40ULL  /* AND of bit 10 (MBEC) */
#define Q_GLA 0x80ULL  /* guest-linear address valid */
#define Q_FIN 0x100ULL /* translation of the linear address */
#define Q_US 0x200ULL  /* user-mode linear address */
#define Q_RW 0x400ULL  /* writable linear address */
#define Q_XD 0x800ULL  /* execute-disable linear address */

/* Guest paging-structure bits — SDM Vol. 3A Tables 4-4 to 4-20 */
#define G_P 0x1ULL
#define G_RW 0x2ULL
#define G_US 0x4ULL
#define GA 0x20ULL
#define GD 0x40ULL
#define XD B(63)
#define URW (G_P | G_RW | G_US)
#define URO (G_P | G_US)
#define SRW (G_P | G_RW)
#define SRO (G_P)

/* #PF error code — SDM Vol. 3A §4.7 */
#define EC_P 0x01u
#define EC_W 0x02u
#define EC_U 0x04u
#define EC_RSVD 0x08u
#define EC_I 0x10u

/* Control bits — SDM Vol. 3A §2.5, §2.2.1 */
#define SMEP (1ULL << 20) /* CR4.SMEP */
#define NXE (1ULL << 11)  /* IA32_EFER.NXE */

/* EPT accesses (paging.h) and guest accesses. */
#define A_R EPT_ACC_READ
#define A_W EPT_ACC_WRITE
#define A_X EPT_ACC_FETCH
#define A_U EPT_ACC_USER_LINEAR
#define A_NOAD EPT_ACC_NO_AD
#define K_R PAGING_ACC_READ
#define K_W PAGING_ACC_WRITE
#define K_X PAGING_ACC_FETCH
#define U_R PAGING_ACC_USER
#define U_W (PAGING_ACC_USER | PAGING_ACC_WRITE)
#define U_X (PAGING_ACC_USER | PAGING_ACC_FETCH)
#define NOAD PAGING_ACC_NO_AD

#define P_R 1u
#define P_W 2u
#define P_X 4u
#define P_XU 8u
#define P_RW (P_R | P_W)
#define P_RX (P_R | P_X)
#define P_RWX (P_R | P_W | P_X)

#define AL_R PAGING_ALLOW_R
#define AL_X PAGING_ALLOW_X
#define AL_RX (PAGING_ALLOW_R | PAGING_ALLOW_X)
#define AL_RW (PAGING_ALLOW_R | PAGING_ALLOW_W)
#define AL_RWX (PAGING_ALLOW_R | PAGING_ALLOW_W | PAGING_ALLOW_X)

#define SZ_4K 0x1000ULL
#define SZ_2M 0x200000ULL
#define SZ_1G 0x40000000ULL

/* Fake host memory: EPT tables at ETBL(level), guest pages at HOST(gpa). */
#define MEM_SIZE 0x40000ULL
#define ETBL(level) (0x10000ULL + 0x1000ULL * (level))
#define HOST(gpa) ((gpa) + 0x20000ULL) /* GPA page k ↔ host 0x20000 + 0x1000 k */
#define DEFAULT_MAXPHY 46

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

enum ad_expect {
    AD_NONE, /* no entry changes */
    AD_A,    /* A set in every entry used */
    AD_AD,   /* A everywhere, D in the leaf */
};

/* ---- fake host memory ---------------------------------------------------- */

struct fake_mem {
    uint8_t bytes[MEM_SIZE];
    bool race_armed; /* next cmpxchg of race_pa first stores race_value */
    uint64_t race_pa, race_value;
    unsigned xchgs;
    bool misaligned;
};

static struct fake_mem fm;
static uint8_t expect_bytes[MEM_SIZE];

static uint64_t load(const uint8_t *mem, uint64_t pa, unsigned size)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)mem[pa + i] << (8 * i);
    return v;
}

static void store_to(uint8_t *mem, uint64_t pa, unsigned size, uint64_t v)
{
    for (unsigned i = 0; i < size; i++)
        mem[pa + i] = (uint8_t)(v >> (8 * i));
}

static void set_bits(uint8_t *mem, uint64_t pa, unsigned size, uint64_t bits)
{
    store_to(mem, pa, size, load(mem, pa, size) | bits);
}

static bool backed(uint64_t pa, unsigned size)
{
    if ((size != 4 && size != 8) || pa % size != 0)
        fm.misaligned = true;
    return pa < MEM_SIZE && pa + size <= MEM_SIZE;
}

static enum paging_mem_status fake_read(void *ctx, uint64_t pa, unsigned size, uint64_t *val)
{
    (void)ctx;
    if (!backed(pa, size))
        return PAGING_MEM_UNBACKED;
    *val = load(fm.bytes, pa, size);
    return PAGING_MEM_OK;
}

static enum paging_mem_status fake_cmpxchg(void *ctx, uint64_t pa, unsigned size, uint64_t expect,
                                           uint64_t desired, uint64_t *cur)
{
    (void)ctx;
    fm.xchgs++;
    if (!backed(pa, size))
        return PAGING_MEM_UNBACKED;
    if (fm.race_armed && pa == fm.race_pa) {
        fm.race_armed = false;
        store_to(fm.bytes, pa, size, fm.race_value);
    }
    *cur = load(fm.bytes, pa, size);
    if (*cur == expect)
        store_to(fm.bytes, pa, size, desired);
    return PAGING_MEM_OK;
}

static const struct paging_mem host = {.ctx = &fm, .read = fake_read, .cmpxchg = fake_cmpxchg};

static void check_memory(const char *name, int changed)
{
    if (memcmp(fm.bytes, expect_bytes, sizeof expect_bytes) != 0) {
        uint64_t pa = 0;
        while (fm.bytes[pa] == expect_bytes[pa])
            pa++;
        ck_abort_msg("%s: byte %#llx is %#x after the walk, want %#x", name,
                     (unsigned long long)pa, fm.bytes[pa], expect_bytes[pa]);
    }
    if (changed >= 0)
        ck_assert_msg(fm.xchgs == (unsigned)changed, "%s: %u cmpxchg calls, want %d", name,
                      fm.xchgs, changed);
    ck_assert_msg(!fm.misaligned, "%s: entry access not naturally aligned", name);
}

/* ---- ept_walk vectors ----------------------------------------------------- */

/* GPA64: PML4E 0x0F5, PDPTE 0x0F0, PDE 0x091, PTE 0x145, offset 0x678. */
#define GPA64 0x00007ABC12345678ULL
#define GPA57 0x000B7ABC12345678ULL /* PML5E 0x00B (bits 56:48), then as GPA64 */
#define FR_4K 0x3456789A000ULL
#define FR_2M 0x34567800000ULL
#define FR_1G 0x34540000000ULL
#define FR_SMALL 0x12345000ULL
#define HPA_4K 0x3456789A678ULL /* FR_4K | 0x678 */
#define HPA_2M 0x34567945678ULL /* FR_2M | 0x145678 */
#define HPA_1G 0x34552345678ULL /* FR_1G | 0x12345678 */

enum walk_want { W_OK, W_VIOL, W_MISC };

struct ept_vec {
    const char *name;
    uint64_t caps;   /* 0 = C_ALL */
    uint64_t eptp_x; /* extra EPTP bits */
    bool pwl5;       /* EPTP[5:3] = 4 */
    bool mbec;
    uint8_t maxphy;  /* 0 = DEFAULT_MAXPHY */
    uint64_t e[6];   /* e[level]; non-leaf entries get ETBL(level - 1) */
    unsigned leaf;
    uint64_t gpa;    /* 0 = GPA64 */
    unsigned acc;
    /* expected */
    enum walk_want want;
    uint64_t hpa, size;
    uint8_t perms, allow;
    uint8_t mt;      /* MTX(type); 0 = WB */
    bool ipat;
    uint64_t qual;
    int level;
    enum ad_expect ad;
};

#define MTX(t) ((t) + 1)
#define L4K(f) ((f) | WB | FR_4K)
#define L2M(f) ((f) | E_PS | WB | FR_2M)
#define L1G(f) ((f) | E_PS | WB | FR_1G)
#define W4K(l4, l3, l2, l1) .e = {[4] = (l4), [3] = (l3), [2] = (l2), [1] = (l1)}, .leaf = 1
#define W2M(l4, l3, l2) .e = {[4] = (l4), [3] = (l3), [2] = (l2)}, .leaf = 2
#define W1G(l4, l3) .e = {[4] = (l4), [3] = (l3)}, .leaf = 3
#define W5_4K(l5, l4, l3, l2, l1) \
    .pwl5 = true, .e = {[5] = (l5), [4] = (l4), [3] = (l3), [2] = (l2), [1] = (l1)}, .leaf = 1
#define W5_1G(l5, l4, l3) .pwl5 = true, .e = {[5] = (l5), [4] = (l4), [3] = (l3)}, .leaf = 3

#define OK(hpa_, size_, perms_, allow_, ad_) \
    .want = W_OK, .hpa = (hpa_), .size = (size_), .perms = (perms_), .allow = (allow_), .ad = (ad_)
#define VIOL(level_, qual_) .want = W_VIOL, .level = (level_), .qual = (qual_), .ad = AD_NONE
#define MISC(level_) .want = W_MISC, .level = (level_), .ad = AD_NONE

static const struct ept_vec walk_vecs[] = {
#include "ept_walk_vectors.inc"
};

static uint64_t caps_of(uint64_t caps)
{
    return caps ? caps : C_ALL;
}

/* SDM Vol. 3C §29.3.2: 5 levels only with EPTP[5:3] = 4 and CAP[7]. */
static unsigned walk_top(const struct ept_vec *v)
{
    return (v->pwl5 && (caps_of(v->caps) & C_PWL5)) ? 5 : 4;
}

static uint64_t walk_gpa(const struct ept_vec *v)
{
    return v->gpa ? v->gpa : GPA64;
}

/* SDM Vol. 3C §29.3.2: entry address bits 11:3 are GPA bits (20 + 9 (l - 1)):(12 + 9 (l - 1)). */
static uint64_t entry_pa_of(uint64_t table, uint64_t gpa, unsigned level)
{
    return table + ((gpa >> (12 + 9 * (level - 1))) & 0x1FF) * 8;
}

static struct ept_state walk_state(const struct ept_vec *v)
{
    return (struct ept_state){
        .eptp = ETBL(walk_top(v)) | PT_WB | (v->pwl5 ? PT_PWL5 : PT_PWL4) | v->eptp_x,
        .caps = caps_of(v->caps),
        .maxphyaddr = v->maxphy ? v->maxphy : DEFAULT_MAXPHY,
        .mbec = v->mbec,
    };
}

static void build_walk(const struct ept_vec *v, uint64_t entry_pa[6])
{
    unsigned top = walk_top(v);

    memset(&fm, 0, sizeof fm);
    memset(entry_pa, 0, 6 * sizeof entry_pa[0]);
    for (unsigned level = top; level >= v->leaf; level--) {
        uint64_t val = v->e[level];

        if (level > v->leaf)
            val |= ETBL(level - 1);
        entry_pa[level] = entry_pa_of(ETBL(level), walk_gpa(v), level);
        store_to(fm.bytes, entry_pa[level], 8, val);
    }
}

/* Memory after the walk per SDM §29.3.5; returns how many entries change. */
static int expected_walk_memory(const struct ept_vec *v, const uint64_t entry_pa[6])
{
    int changed = 0;

    memcpy(expect_bytes, fm.bytes, sizeof expect_bytes);
    if (v->ad == AD_NONE)
        return 0;
    for (unsigned level = v->leaf; level <= walk_top(v); level++) {
        uint64_t old = load(fm.bytes, entry_pa[level], 8), val = old | E_A;
        if (level == v->leaf && v->ad == AD_AD)
            val |= E_D;
        store_to(expect_bytes, entry_pa[level], 8, val);
        changed += val != old;
    }
    return changed;
}

static void check_walk_ok(const struct ept_vec *v, const struct ept_result *r)
{
    unsigned mt = v->mt ? v->mt - 1u : 6u;

    ck_assert_msg(!r->violation && !r->misconfig && r->qualification == 0 && r->level_failed == 0,
                  "%s: success with fault fields set", v->name);
    ck_assert_msg(r->hpa == v->hpa, "%s: hpa %#llx, want %#llx", v->name,
                  (unsigned long long)r->hpa, (unsigned long long)v->hpa);
    ck_assert_msg(r->page_size == v->size, "%s: page size %#llx, want %#llx", v->name,
                  (unsigned long long)r->page_size, (unsigned long long)v->size);
    ck_assert_msg(r->perms == v->perms, "%s: perms %#x, want %#x", v->name, r->perms, v->perms);
    ck_assert_msg(r->allowed == v->allow, "%s: allowed %#x, want %#x", v->name, r->allowed,
                  v->allow);
    ck_assert_msg(r->memtype == mt && r->ignore_pat == v->ipat, "%s: memtype %u/%d, want %u/%d",
                  v->name, r->memtype, r->ignore_pat, mt, v->ipat);
}

static void check_walk_fault(const struct ept_vec *v, const struct ept_result *r)
{
    bool misc = v->want == W_MISC;

    ck_assert_msg(r->misconfig == misc && r->violation == !misc, "%s: violation %d misconfig %d",
                  v->name, r->violation, r->misconfig);
    ck_assert_msg(r->level_failed == v->level, "%s: level %d, want %d", v->name, r->level_failed,
                  v->level);
    ck_assert_msg(r->qualification == (misc ? 0 : v->qual), "%s: qualification %#llx, want %#llx",
                  v->name, (unsigned long long)r->qualification,
                  (unsigned long long)(misc ? 0 : v->qual));
}

START_TEST(test_walk_vector)
{
    const struct ept_vec *v = &walk_vecs[_i];
    struct ept_state ept = walk_state(v);
    uint64_t entry_pa[6];
    struct ept_result r;

    build_walk(v, entry_pa);
    int changed = expected_walk_memory(v, entry_pa);
    memset(&r, 0xA5, sizeof r);
    enum paging_status s = ept_walk(&ept, &host, walk_gpa(v), v->acc, &r);

    ck_assert_msg(s == (v->want == W_OK ? PAGING_OK : PAGING_NESTED), "%s: status %d", v->name, s);
    ck_assert_msg(r.gpa == walk_gpa(v), "%s: gpa %#llx", v->name, (unsigned long long)r.gpa);
    if (v->want == W_OK)
        check_walk_ok(v, &r);
    else
        check_walk_fault(v, &r);
    check_memory(v->name, changed);
}
END_TEST

/* ---- EPTP validity -------------------------------------------------------- */

struct eptp_vec {
    const char *name;
    uint64_t caps;  /* 0 = C_ALL */
    uint8_t maxphy; /* 0 = DEFAULT_MAXPHY */
    uint64_t eptp;
    bool valid;
};

#define ROOT 0x12345000ULL

static const struct eptp_vec eptp_vecs[] = {
#include "ept_eptp_vectors.inc"
};

START_TEST(test_eptp_vector)
{
    const struct eptp_vec *v = &eptp_vecs[_i];
    struct ept_state ept = {.caps = caps_of(v->caps),
                            .maxphyaddr = v->maxphy ? v->maxphy : DEFAULT_MAXPHY};

    ck_assert_msg(ept_eptp_valid(&ept, v->eptp) == v->valid, "%s: eptp %#llx valid != %d",
                  v->name, (unsigned long long)v->eptp, v->valid);
}
END_TEST

/* ---- 2-D walks ------------------------------------------------------------- */

/* Guest tables: PT, PD, PDPT, PML4 at GPA pages 1-4, data at page 5. */
#define GTBL(level) (0x1000ULL * (level))
#define GDATA 0x5000ULL
#define DATA 0x5678ULL
#define HDATA HOST(DATA)
#define LA64 0x00007ABC12345678ULL /* indices 0x0F5, 0x0F0, 0x091, 0x145 */
#define LA32 0x12345678ULL         /* 32-bit: PDE 0x048, PTE 0x345 */
#define LAPAE 0x92345678ULL        /* PAE: PDPTE 2, PDE 0x091, PTE 0x145 */
#define E4_PML4 (GTBL(4) + 0x0F5 * 8)
#define E4_PDPT (GTBL(3) + 0x0F0 * 8)
#define E4_PD (GTBL(2) + 0x091 * 8)
#define E4_PT (GTBL(1) + 0x145 * 8)
#define E32_PD (GTBL(2) + 0x048 * 4)
#define E32_PT (GTBL(1) + 0x345 * 4)
#define PG(k) (1u << (k))
#define LV(l) (1u << (l))
#define STRUCT4 (PG(1) | PG(2) | PG(3) | PG(4))
#define GA_ALL (LV(1) | LV(2) | LV(3) | LV(4))
#define EPT_PAGES 8

struct nested_vec {
    const char *name;
    uint64_t caps; /* 0 = C_ALL */
    bool ept_ad, mbec;
    enum paging_mode mode;
    uint64_t cr4x, efer;
    uint64_t g[5];              /* guest entries by level; frames added */
    uint64_t ept[EPT_PAGES];    /* EPT PTE flags for GPA page k; 0 = RWX | WB */
    unsigned np;                /* GPA pages whose EPT PTE is not present */
    uint64_t la;                /* 0 = the mode's default */
    unsigned acc;
    /* expected */
    enum paging_status want;
    uint64_t pa;
    uint8_t allow;
    uint32_t err;
    bool final, misc;
    uint64_t fgpa, qual;
    unsigned ga;                /* guest levels whose entry gains A */
    bool gd;                    /* guest PTE gains D */
    unsigned ea, ed;            /* GPA pages whose EPT PTE gains A / D */
};

#define M4 .mode = PAGING_MODE_4LEVEL
#define M_32 .mode = PAGING_MODE_32BIT
#define M_PAE .mode = PAGING_MODE_PAE
#define M_NONE .mode = PAGING_MODE_NONE
#define G4(l4, l3, l2, l1) .g = {[4] = (l4), [3] = (l3), [2] = (l2), [1] = (l1)}
#define G32(pde, pte) .g = {[2] = (pde), [1] = (pte)}
#define GPAE(pde, pte) .g = {[2] = (pde), [1] = (pte)}
#define NOK(pa_, allow_) .want = PAGING_OK, .pa = (pa_), .allow = (allow_)
#define NPF(err_) .want = PAGING_FAULT, .err = (err_)
#define NVIOL(final_, gpa_, qual_) \
    .want = PAGING_NESTED, .final = (final_), .fgpa = (gpa_), .qual = (qual_)
#define NMISC(final_, gpa_) .want = PAGING_NESTED, .misc = true, .final = (final_), .fgpa = (gpa_)

static const struct nested_vec nested_vecs[] = {
#include "ept_nested_vectors.inc"
};

static unsigned guest_top(enum paging_mode mode)
{
    static const unsigned top[] = {0, 2, 2, 4, 5}; /* PAE: the PDPTEs are registers */
    return top[mode];
}

static unsigned guest_entry_size(enum paging_mode mode)
{
    return mode == PAGING_MODE_32BIT ? 4 : 8;
}

static uint64_t guest_la(const struct nested_vec *v)
{
    static const uint64_t la[] = {DATA, LA32, LAPAE, LA64, LA64};
    return v->la ? v->la : la[v->mode];
}

/* SDM Vol. 3A Table 4-2: guest-physical address of the guest entry at level. */
static uint64_t guest_entry_gpa(enum paging_mode mode, unsigned level, uint64_t la)
{
    if (mode == PAGING_MODE_32BIT)
        return GTBL(level) + ((la >> (12 + 10 * (level - 1))) & 0x3FF) * 4;
    return GTBL(level) + ((la >> (12 + 9 * (level - 1))) & 0x1FF) * 8;
}

static struct paging_state guest_state(const struct nested_vec *v)
{
    struct paging_state st = {
        .cr0 = X86_CR0_PE | X86_CR0_ET,
        .cr4 = v->cr4x,
        .efer = v->efer,
        .maxphyaddr = DEFAULT_MAXPHY,
    };

    if (v->mode != PAGING_MODE_NONE)
        st.cr0 |= X86_CR0_PG;
    if (v->mode >= PAGING_MODE_PAE)
        st.cr4 |= X86_CR4_PAE;
    if (v->mode >= PAGING_MODE_4LEVEL)
        st.efer |= X86_EFER_LME | X86_EFER_LMA;
    st.cr3 = v->mode == PAGING_MODE_PAE ? GTBL(3) : GTBL(guest_top(v->mode));
    if (v->mode == PAGING_MODE_PAE)
        st.pdpte[(LAPAE >> 30) & 3] = GTBL(2) | G_P;
    return st;
}

/* EPT: PML4E[0] → PDPTE[0] → PDE[0] → PT mapping GPA page k to HOST(k << 12). */
static struct ept_state build_ept(uint64_t caps, bool ad, bool mbec, const uint64_t *flags,
                                  unsigned np)
{
    uint64_t up = RWX | (mbec ? E_XU : 0);

    store_to(fm.bytes, ETBL(4), 8, ETBL(3) | up);
    store_to(fm.bytes, ETBL(3), 8, ETBL(2) | up);
    store_to(fm.bytes, ETBL(2), 8, ETBL(1) | up);
    for (unsigned k = 1; k < EPT_PAGES; k++) {
        if (np & PG(k))
            continue;
        uint64_t f = flags && flags[k] ? flags[k] : RWX | WB;
        store_to(fm.bytes, ETBL(1) + 8 * k, 8, HOST(0x1000ULL * k) | f);
    }
    return (struct ept_state){
        .eptp = ETBL(4) | PT_WB | PT_PWL4 | (ad ? EPTP_AD : 0),
        .caps = caps_of(caps),
        .maxphyaddr = DEFAULT_MAXPHY,
        .mbec = mbec,
    };
}

static void build_guest(const struct nested_vec *v)
{
    unsigned size = guest_entry_size(v->mode);
    uint64_t la = guest_la(v);

    for (unsigned level = guest_top(v->mode); level >= 1 && v->mode != PAGING_MODE_NONE;
         level--) {
        uint64_t val = v->g[level] | (level > 1 ? GTBL(level - 1) : GDATA);
        store_to(fm.bytes, HOST(guest_entry_gpa(v->mode, level, la)), size, val);
    }
}

/* Memory after the walk: guest A/D (SDM Vol. 3A §4.8) and EPT A/D (§29.3.5). */
static void expected_nested_memory(const struct nested_vec *v)
{
    unsigned size = guest_entry_size(v->mode);

    memcpy(expect_bytes, fm.bytes, sizeof expect_bytes);
    for (unsigned level = 1; level <= 4; level++)
        if (v->ga & LV(level))
            set_bits(expect_bytes, HOST(guest_entry_gpa(v->mode, level, guest_la(v))), size, GA);
    if (v->gd)
        set_bits(expect_bytes, HOST(guest_entry_gpa(v->mode, 1, guest_la(v))), size, GD);
    for (unsigned k = 1; k < EPT_PAGES; k++) {
        if (v->ea & PG(k))
            set_bits(expect_bytes, ETBL(1) + 8 * k, 8, E_A);
        if (v->ed & PG(k))
            set_bits(expect_bytes, ETBL(1) + 8 * k, 8, E_D);
    }
    if (v->ea) {
        set_bits(expect_bytes, ETBL(4), 8, E_A);
        set_bits(expect_bytes, ETBL(3), 8, E_A);
        set_bits(expect_bytes, ETBL(2), 8, E_A);
    }
}

static void check_nested_ok(const struct nested_vec *v, const struct paging_result *r,
                            const struct ept_result *e)
{
    ck_assert_msg(r->pa == v->pa && e->hpa == v->pa, "%s: pa %#llx/%#llx, want %#llx", v->name,
                  (unsigned long long)r->pa, (unsigned long long)e->hpa,
                  (unsigned long long)v->pa);
    ck_assert_msg(r->allowed == v->allow, "%s: allowed %#x, want %#x", v->name, r->allowed,
                  v->allow);
    ck_assert_msg(e->gpa == DATA && !e->violation && !e->misconfig,
                  "%s: final EPT result gpa %#llx", v->name, (unsigned long long)e->gpa);
    ck_assert_msg(r->page_size == SZ_4K, "%s: page size %#llx", v->name,
                  (unsigned long long)r->page_size);
}

static void check_nested_pf(const struct nested_vec *v, const struct paging_result *r,
                            const struct ept_result *e)
{
    ck_assert_msg(r->fault.vector == X86_PF && r->fault.error_code == v->err,
                  "%s: vector %u error %#x, want #PF %#x", v->name, r->fault.vector,
                  r->fault.error_code, v->err);
    ck_assert_msg(!e->violation && !e->misconfig && e->qualification == 0,
                  "%s: EPT result on a guest fault", v->name);
}

static void check_nested_ept(const struct nested_vec *v, const struct paging_result *r,
                             const struct ept_result *e)
{
    uint64_t qual = v->misc ? 0 : v->qual;

    ck_assert_msg(e->misconfig == v->misc && e->violation == !v->misc,
                  "%s: violation %d misconfig %d", v->name, e->violation, e->misconfig);
    ck_assert_msg(e->gpa == v->fgpa, "%s: gpa %#llx, want %#llx", v->name,
                  (unsigned long long)e->gpa, (unsigned long long)v->fgpa);
    ck_assert_msg(e->qualification == qual, "%s: qualification %#llx, want %#llx", v->name,
                  (unsigned long long)e->qualification, (unsigned long long)qual);
    ck_assert_msg(r->allowed == 0, "%s: EPT fault with a translation", v->name);
}

START_TEST(test_nested_vector)
{
    const struct nested_vec *v = &nested_vecs[_i];
    struct paging_state st = guest_state(v);
    struct paging_result r;
    struct ept_result e;
    bool final = !v->final;

    memset(&fm, 0, sizeof fm);
    struct ept_state ept = build_ept(v->caps, v->ept_ad, v->mbec, v->ept, v->np);
    build_guest(v);
    expected_nested_memory(v);
    memset(&e, 0xA5, sizeof e);
    enum paging_status s = paging_walk_nested(&st, &ept, &host, guest_la(v), v->acc, &r, &e,
                                              &final);

    ck_assert_msg(s == v->want, "%s: status %d, want %d", v->name, s, v->want);
    ck_assert_msg(final == v->final, "%s: final %d, want %d", v->name, final, v->final);
    if (s == PAGING_OK)
        check_nested_ok(v, &r, &e);
    else if (s == PAGING_FAULT)
        check_nested_pf(v, &r, &e);
    else if (s == PAGING_NESTED)
        check_nested_ept(v, &r, &e);
    check_memory(v->name, -1);
}
END_TEST

/* ---- special cases --------------------------------------------------------- */

/* The default 4-level EPT for GPA64 with a 4K RWX leaf. */
static struct ept_state race_setup(uint64_t eptp_x)
{
    memset(&fm, 0, sizeof fm);
    store_to(fm.bytes, entry_pa_of(ETBL(4), GPA64, 4), 8, ETBL(3) | RWX);
    store_to(fm.bytes, entry_pa_of(ETBL(3), GPA64, 3), 8, ETBL(2) | RWX);
    store_to(fm.bytes, entry_pa_of(ETBL(2), GPA64, 2), 8, ETBL(1) | RWX);
    store_to(fm.bytes, entry_pa_of(ETBL(1), GPA64, 1), 8, L4K(RWX));
    return (struct ept_state){.eptp = ETBL(4) | PT_WB | PT_PWL4 | eptp_x, .caps = C_ALL,
                              .maxphyaddr = DEFAULT_MAXPHY};
}

/* SDM §29.3.5: A/D set atomically; another agent's update between read and set → re-walk. */
START_TEST(test_ept_race_ignored_bit_retries)
{
    struct ept_state ept = race_setup(EPTP_AD);
    uint64_t pde = entry_pa_of(ETBL(2), GPA64, 2);
    struct ept_result r;

    fm.race_armed = true;
    fm.race_pa = pde;
    fm.race_value = ETBL(1) | RWX | B(11);
    ck_assert_int_eq(ept_walk(&ept, &host, GPA64, A_W, &r), PAGING_OK);
    ck_assert_uint_eq(r.hpa, HPA_4K);
    ck_assert_uint_eq(load(fm.bytes, pde, 8), ETBL(1) | RWX | B(11) | E_A);
    ck_assert_uint_eq(load(fm.bytes, entry_pa_of(ETBL(1), GPA64, 1), 8), L4K(RWX) | E_A | E_D);
}
END_TEST

START_TEST(test_ept_race_not_present_faults)
{
    struct ept_state ept = race_setup(EPTP_AD);
    uint64_t pte = entry_pa_of(ETBL(1), GPA64, 1);
    struct ept_result r;

    fm.race_armed = true;
    fm.race_pa = pte;
    fm.race_value = FR_4K | WB;
    ck_assert_int_eq(ept_walk(&ept, &host, GPA64, A_R, &r), PAGING_NESTED);
    ck_assert(r.violation);
    ck_assert_int_eq(r.level_failed, 1);
    ck_assert_uint_eq(r.qualification, Q_R);
    ck_assert_uint_eq(load(fm.bytes, pte, 8), FR_4K | WB);
}
END_TEST

START_TEST(test_ept_unbacked_table)
{
    struct ept_state ept = race_setup(0);
    struct ept_result r;

    store_to(fm.bytes, entry_pa_of(ETBL(3), GPA64, 3), 8, 0x7000000ULL | RWX);
    ck_assert_int_eq(ept_walk(&ept, &host, GPA64, A_R, &r), PAGING_BAD_PHYS);
    ck_assert_uint_eq(r.bad_pa, entry_pa_of(0x7000000ULL, GPA64, 2));
    ck_assert(!r.violation && !r.misconfig);
}
END_TEST

/* Guest 4-level tables (all URW) for LA64 under the default EPT plus flags. */
static struct paging_state nested_setup(bool ad, bool mbec, const uint64_t *flags,
                                        struct ept_state *ept)
{
    static const struct nested_vec v = {M4, G4(URW, URW, URW, URW)};
    struct paging_state st = guest_state(&v);

    memset(&fm, 0, sizeof fm);
    *ept = build_ept(0, ad, mbec, flags, 0);
    build_guest(&v);
    return st;
}

START_TEST(test_nested_unbacked_structure)
{
    struct ept_state ept;
    struct paging_state st = nested_setup(false, false, NULL, &ept);
    struct paging_result r;
    struct ept_result e;
    bool final;

    /* EPT maps the guest PD page to a host page that does not exist. */
    store_to(fm.bytes, ETBL(1) + 8 * 2, 8, 0x9000000ULL | RWX | WB);
    ck_assert_int_eq(paging_walk_nested(&st, &ept, &host, LA64, U_R, &r, &e, &final),
                     PAGING_BAD_PHYS);
    ck_assert_uint_eq(r.bad_pa, 0x9000000ULL + 0x091 * 8);
    ck_assert(!final);
}
END_TEST

/*
 * A TLB entry may only cover what both translations map uniformly: the page
 * size of a 2-D translation is the smaller of the guest and EPT page sizes.
 */
START_TEST(test_nested_page_size_is_the_smaller)
{
    struct ept_state ept;
    struct paging_state st = nested_setup(false, false, NULL, &ept);
    struct paging_result r;
    struct ept_result e;
    bool final;

    /* EPT PDE[1]: 2M page for GPA 0x200000-0x3FFFFF at host 0x40000000. */
    store_to(fm.bytes, ETBL(2) + 8, 8, 0x40000000ULL | RWX | E_PS | WB);
    /* Guest 4K page at GPA 0x200000: 4K wins. */
    store_to(fm.bytes, HOST(E4_PT), 8, 0x200000ULL | URW);
    ck_assert_int_eq(paging_walk_nested(&st, &ept, &host, LA64, U_R, &r, &e, &final), PAGING_OK);
    ck_assert_uint_eq(r.pa, 0x40000678ULL);
    ck_assert_uint_eq(r.page_size, SZ_4K);
    ck_assert_uint_eq(e.page_size, SZ_2M);
    /* Guest 2M page at GPA 0x200000 (LA64 2M offset 0x145678): 2M on both sides. */
    store_to(fm.bytes, HOST(E4_PD), 8, 0x200000ULL | URW | E_PS);
    ck_assert_int_eq(paging_walk_nested(&st, &ept, &host, LA64, U_R, &r, &e, &final), PAGING_OK);
    ck_assert_uint_eq(r.pa, 0x40145678ULL);
    ck_assert_uint_eq(r.page_size, SZ_2M);
    /* Guest 2M page at GPA 0: EPT maps GPA page 0x145 with a 4K PTE: 4K wins. */
    store_to(fm.bytes, HOST(E4_PD), 8, 0x0ULL | URW | E_PS);
    store_to(fm.bytes, ETBL(1) + 8 * 0x145, 8, 0x30000ULL | RWX | WB);
    ck_assert_int_eq(paging_walk_nested(&st, &ept, &host, LA64, U_R, &r, &e, &final), PAGING_OK);
    ck_assert_uint_eq(r.pa, 0x30678ULL);
    ck_assert_uint_eq(r.page_size, SZ_4K);
    ck_assert_uint_eq(e.gpa, 0x145678ULL);
}
END_TEST

/*
 * MBEC uses the U/S bits of the entries that produced the translation: when
 * a guest A update loses a race and the walk restarts, only the entries of
 * the new walk count. Here the PDE turns from supervisor to user between the
 * read and its A update, so the address becomes user-mode and the fetch
 * needs bit 10 (SDM Vol. 3C §29.3.3.2, Vol. 3A §4.8).
 */
START_TEST(test_nested_mbec_uses_the_completed_walk)
{
    const uint64_t flags[EPT_PAGES] = {[5] = RX | WB};
    struct ept_state ept;
    struct paging_state st = nested_setup(false, true, flags, &ept);
    struct paging_result r;
    struct ept_result e;
    bool final;

    store_to(fm.bytes, HOST(E4_PD), 8, GTBL(1) | SRW);
    fm.race_armed = true;
    fm.race_pa = HOST(E4_PD);
    fm.race_value = GTBL(1) | URW;
    ck_assert_int_eq(paging_walk_nested(&st, &ept, &host, LA64, K_X, &r, &e, &final),
                     PAGING_NESTED);
    ck_assert(final && e.violation);
    ck_assert_uint_eq(e.qualification, Q_X | Q_PR | Q_PX | Q_GLA | Q_FIN | Q_US | Q_RW);
    /* Without the race the PDE keeps U/S = 0: supervisor address, bit 2 suffices. */
    st = nested_setup(false, true, flags, &ept);
    store_to(fm.bytes, HOST(E4_PD), 8, GTBL(1) | SRW);
    ck_assert_int_eq(paging_walk_nested(&st, &ept, &host, LA64, K_X, &r, &e, &final), PAGING_OK);
    ck_assert_uint_eq(r.pa, HDATA);
}
END_TEST

/* PAE guest: PDPT at GPA page 3 (CR3 = 0x3000), PDPTE 2 → PD at GPA page 2. */
static struct paging_state pdpte_setup(bool ad, const uint64_t *flags, unsigned np,
                                       struct ept_state *ept)
{
    static const struct nested_vec v = {M_PAE};
    struct paging_state st = guest_state(&v);

    memset(&fm, 0, sizeof fm);
    *ept = build_ept(0, ad, false, flags, np);
    store_to(fm.bytes, HOST(GTBL(3)) + 2 * 8, 8, GTBL(2) | G_P);
    memset(st.pdpte, 0, sizeof st.pdpte);
    return st;
}

/*
 * SDM Vol. 3C §29.3.3.2: with EPT A/D flags enabled, guest paging-structure
 * accesses are writes — but not the PDPTE loads of MOV to CR, which stay
 * reads (no violation for a read-only page, no EPT dirty flag).
 */
START_TEST(test_pdpte_load_is_a_read)
{
    const uint64_t flags[EPT_PAGES] = {[3] = E_R | WB};
    struct ept_state ept;
    struct paging_state st = pdpte_setup(true, flags, 0, &ept);
    struct ept_nested_mem nm;
    struct paging_mem mem = ept_nested_mem_init(&nm, &ept, &host, EPT_NESTED_PDPTE_LOAD);
    uint64_t pdpte[4];

    ck_assert(paging_load_pdptes(&st, &mem, st.cr3, pdpte));
    ck_assert_uint_eq(pdpte[2], GTBL(2) | G_P);
    ck_assert(!nm.faulted);
    ck_assert_uint_eq(load(fm.bytes, ETBL(1) + 8 * 3, 8), HOST(GTBL(3)) | E_R | WB | E_A);
}
END_TEST

START_TEST(test_structure_read_with_ad_is_a_write)
{
    const uint64_t flags[EPT_PAGES] = {[3] = E_R | WB};
    struct ept_state ept;
    struct paging_state st = pdpte_setup(true, flags, 0, &ept);
    struct ept_nested_mem nm;
    struct paging_mem mem = ept_nested_mem_init(&nm, &ept, &host, 0);
    uint64_t pdpte[4] = {0};

    ck_assert(!paging_load_pdptes(&st, &mem, st.cr3, pdpte));
    ck_assert(nm.faulted && nm.eres.violation);
    ck_assert_uint_eq(nm.eres.gpa, GTBL(3));
    ck_assert_uint_eq(nm.eres.qualification, Q_R | Q_W | Q_PR);
}
END_TEST

START_TEST(test_pdpte_load_not_present)
{
    struct ept_state ept;
    struct paging_state st = pdpte_setup(false, NULL, PG(3), &ept);
    struct ept_nested_mem nm;
    struct paging_mem mem = ept_nested_mem_init(&nm, &ept, &host, EPT_NESTED_PDPTE_LOAD);
    uint64_t pdpte[4] = {1, 2, 3, 4};

    ck_assert(!paging_load_pdptes(&st, &mem, st.cr3 | 0x20, pdpte));
    ck_assert(nm.faulted && nm.eres.violation);
    ck_assert_uint_eq(nm.eres.gpa, GTBL(3) | 0x20); /* CR3[31:5]: the PDPT is 32-byte aligned */
    ck_assert_uint_eq(nm.eres.qualification, Q_R);  /* bit 7 = 0 for PDPTE loads */
    ck_assert_uint_eq(pdpte[0], 1);
}
END_TEST

static Suite *ept_suite(void)
{
    Suite *s = suite_create("ept");
    TCase *walk = tcase_create("walk_vectors");
    TCase *eptp = tcase_create("eptp_vectors");
    TCase *nested = tcase_create("nested_vectors");
    TCase *special = tcase_create("special");

    tcase_add_loop_test(walk, test_walk_vector, 0, COUNT(walk_vecs));
    tcase_add_loop_test(eptp, test_eptp_vector, 0, COUNT(eptp_vecs));
    tcase_add_loop_test(nested, test_nested_vector, 0, COUNT(nested_vecs));
    tcase_add_test(special, test_ept_race_ignored_bit_retries);
    tcase_add_test(special, test_ept_race_not_present_faults);
    tcase_add_test(special, test_ept_unbacked_table);
    tcase_add_test(special, test_nested_unbacked_structure);
    tcase_add_test(special, test_nested_page_size_is_the_smaller);
    tcase_add_test(special, test_nested_mbec_uses_the_completed_walk);
    tcase_add_test(special, test_pdpte_load_is_a_read);
    tcase_add_test(special, test_structure_read_with_ad_is_a_write);
    tcase_add_test(special, test_pdpte_load_not_present);
    suite_add_tcase(s, walk);
    suite_add_tcase(s, eptp);
    suite_add_tcase(s, nested);
    suite_add_tcase(s, special);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ept_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
