/*
 * Generic EPT helpers for hypervisor tests (header-only: the library's
 * object list in CMakeLists.txt stays as it is). An identity map of
 * guest-physical memory in 4-level EPT, finer 4-KiB entries where a test
 * needs to change one page, INVEPT, and the guest's own 4-level paging
 * entries (the guest shares the host's page tables).
 *
 * SDM Vol. 3C §29.3 (EPT), §25.6.11 (EPTP), §28.2.1 Table 28-7 (exit
 * qualification for EPT violations), Vol. 3D Appendix A.10
 * (IA32_VMX_EPT_VPID_CAP). Names follow src/paging/paging.h and Linux.
 */
#ifndef HV_EPT_MAP_H
#define HV_EPT_MAP_H

#include "hv.h"

/* EPT paging-structure entries — SDM Vol. 3C §29.3.2, Tables 29-1 to 29-7 */
#define EPT_R BIT(0)
#define EPT_W BIT(1)
#define EPT_X BIT(2)
#define EPT_RWX (EPT_R | EPT_W | EPT_X)
#define EPT_MT_SHIFT 3            /* leaf: memory type in bits 5:3 */
#define EPT_MT_MASK (7ull << 3)
#define EPT_MT_UC 0ull
#define EPT_MT_WB 6ull
#define EPT_IPAT BIT(6)
#define EPT_LARGE BIT(7)          /* PDE/PDPTE maps a page */
#define EPT_A BIT(8)              /* accessed (EPTP bit 6) */
#define EPT_D BIT(9)              /* dirty, leaf only (EPTP bit 6) */

/* EPTP — SDM Vol. 3C §25.6.11 */
#define EPTP_MT_UC 0ull
#define EPTP_MT_WB 6ull
#define EPTP_PWL4 (3ull << 3)     /* page-walk length - 1 */
#define EPTP_AD BIT(6)

/* IA32_VMX_EPT_VPID_CAP — SDM Vol. 3D Appendix A.10 */
#define EPT_CAP_EXEC_ONLY BIT(0)
#define EPT_CAP_PWL4 BIT(6)
#define EPT_CAP_UC BIT(8)
#define EPT_CAP_WB BIT(14)
#define EPT_CAP_2M BIT(16)
#define EPT_CAP_1G BIT(17)
#define EPT_CAP_INVEPT BIT(20)
#define EPT_CAP_AD BIT(21)
#define EPT_CAP_ADV_EXIT_INFO BIT(22)
#define EPT_CAP_INVEPT_SINGLE BIT(25)
#define EPT_CAP_INVEPT_ALL BIT(26)

/* INVEPT types — SDM Vol. 2B INVEPT */
#define INVEPT_SINGLE 1ull
#define INVEPT_ALL 2ull

/* Exit qualification for EPT violations — SDM Vol. 3C §28.2.1, Table 28-7 */
#define EPT_VIOLATION_ACC_READ BIT(0)
#define EPT_VIOLATION_ACC_WRITE BIT(1)
#define EPT_VIOLATION_ACC_INSTR BIT(2)
#define EPT_VIOLATION_PROT_SHIFT 3    /* bits 5:3: AND of bits 2:0 of the entries used */
#define EPT_VIOLATION_PROT_READ BIT(3)
#define EPT_VIOLATION_PROT_WRITE BIT(4)
#define EPT_VIOLATION_PROT_EXEC BIT(5)
#define EPT_VIOLATION_GVA_IS_VALID BIT(7)
#define EPT_VIOLATION_GVA_TRANSLATED BIT(8)
#define EPT_VIOLATION_GVA_USER BIT(9)     /* advanced information (CAP[22]), bit 8 = 1 */
#define EPT_VIOLATION_GVA_WRITABLE BIT(10)
#define EPT_VIOLATION_GVA_XD BIT(11)
#define EPT_VIOLATION_ADV_MASK (EPT_VIOLATION_GVA_USER | EPT_VIOLATION_GVA_WRITABLE | EPT_VIOLATION_GVA_XD)

/* Guest paging entries beyond hv.h's */
#define PTE_A BIT(5)
#define PTE_D BIT(6)
#define PTE_XD BIT(63)

struct ept_map {
    uint64_t *pml4;
    uint64_t eptp;       /* without the A/D bit: ept_eptp() adds it */
    uint64_t caps;       /* IA32_VMX_EPT_VPID_CAP */
    unsigned maxphyaddr; /* CPUID.80000008H:EAX[7:0] */
    uint64_t addr_mask;  /* bits (MAXPHYADDR-1):12 */
};

static inline unsigned cpu_maxphyaddr(void)
{
    uint32_t r[4];
    cpuid(0x80000000u, 0, r);
    if (r[0] < 0x80000008u)
        return 36;
    cpuid(0x80000008u, 0, r);
    return r[0] & 0xFF;
}

static inline uint64_t *ept_table_of(const struct ept_map *m, uint64_t e)
{
    return (uint64_t *)(uintptr_t)(e & m->addr_mask);
}

static inline uint64_t ept_leaf_bits(void)
{
    return EPT_RWX | (EPT_MT_WB << EPT_MT_SHIFT);
}

/* The EPTP to put in the VMCS: with EPTP[6] when ad. */
static inline uint64_t ept_eptp(const struct ept_map *m, bool ad)
{
    return m->eptp | (ad ? EPTP_AD : 0);
}

/*
 * The entry at level (4 = PML4E ... 1 = PTE) on the way to gpa, creating
 * missing tables (RWX) and splitting a 2-MiB/1-GiB leaf above level into
 * a table of smaller leaves with the same rights and memory type.
 */
static inline uint64_t *ept_entry(struct ept_map *m, uint64_t gpa, unsigned level)
{
    uint64_t *table = m->pml4;
    for (unsigned l = 4;; l--) {
        uint64_t *e = &table[(gpa >> (12 + 9 * (l - 1))) & 511];
        if (l == level)
            return e;
        if (!(*e & EPT_RWX)) {
            *e = (uint64_t)(uintptr_t)alloc_page() | EPT_RWX;
        } else if ((l == 2 || l == 3) && (*e & EPT_LARGE)) {
            uint64_t *t = alloc_page();
            uint64_t step = 1ull << (12 + 9 * (l - 2));
            uint64_t base = *e & m->addr_mask & ~((1ull << (12 + 9 * (l - 1))) - 1);
            uint64_t attrs = *e & (EPT_RWX | EPT_MT_MASK | EPT_IPAT);
            for (unsigned i = 0; i < 512; i++)
                t[i] = (base + i * step) | attrs | (l - 1 > 1 ? EPT_LARGE : 0);
            *e = (uint64_t)(uintptr_t)t | EPT_RWX;
        }
        table = ept_table_of(m, *e);
    }
}

/* The 4-KiB leaf that maps gpa (splitting larger pages on the way). */
static inline uint64_t *ept_pte(struct ept_map *m, uint64_t gpa)
{
    return ept_entry(m, gpa, 1);
}

/* Identity map of guest-physical [0, end) with write-back RWX pages (2 MiB when the CPU has them). */
static inline void ept_map_init(struct ept_map *m, uint64_t end)
{
    memset(m, 0, sizeof *m);
    m->caps = rdmsr(MSR_IA32_VMX_EPT_VPID_CAP);
    m->maxphyaddr = cpu_maxphyaddr();
    m->addr_mask = ((1ull << m->maxphyaddr) - 1) & ~0xFFFull;
    m->pml4 = alloc_page();
    m->eptp = (uint64_t)(uintptr_t)m->pml4 | EPTP_PWL4 |
              ((m->caps & EPT_CAP_WB) ? EPTP_MT_WB : EPTP_MT_UC);
    bool big = m->caps & EPT_CAP_2M;
    uint64_t step = big ? 0x200000ull : PAGE_SIZE;
    for (uint64_t gpa = 0; gpa < end; gpa += step) {
        uint64_t *e = ept_entry(m, gpa, big ? 2 : 1);
        *e = gpa | ept_leaf_bits() | (big ? EPT_LARGE : 0);
    }
}

/* Set the rights (bits 2:0) of the 4-KiB leaf of gpa; other bits kept. */
static inline void ept_set_rights(struct ept_map *m, uint64_t gpa, uint64_t rights)
{
    uint64_t *e = ept_pte(m, gpa);
    *e = (*e & ~EPT_RWX) | rights;
}

/* INVEPT single-context for the map (all-context if that is all the CPU has); the VMfail status. */
static inline int ept_invept(const struct ept_map *m)
{
    struct invept_desc d = {.eptp = m->eptp, .rsvd = 0};
    uint64_t type = (m->caps & EPT_CAP_INVEPT_SINGLE) ? INVEPT_SINGLE : INVEPT_ALL;
    return invept(type, &d);
}

/*
 * The guest's (and host's) own 4-level paging entry at level for va, from
 * the live CR3; NULL where the walk stops at a non-present entry or a
 * larger page above level.
 */
static inline uint64_t *guest_pte_at(uint64_t va, unsigned level)
{
    uint64_t *table = (uint64_t *)(uintptr_t)(read_cr3() & PTE_ADDR);
    for (unsigned l = 4;; l--) {
        uint64_t *e = &table[(va >> (12 + 9 * (l - 1))) & 511];
        if (l == level)
            return e;
        if (!(*e & PTE_P) || (*e & PTE_PS))
            return NULL;
        table = (uint64_t *)(uintptr_t)(*e & PTE_ADDR);
    }
}

#endif
