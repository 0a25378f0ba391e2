/*
 * Paging unit internals: paging-structure entry formats, the per-walk state
 * and the helpers split across walk.c (driver, A/D), rsvd.c (reserved bits
 * and 32-bit PSE frames), access.c (access rights, protection keys, error
 * codes) and pdpte.c (PAE PDPTE registers). Not for use outside src/paging.
 *
 * SDM Vol. 3A chapter 4. Levels are numbered as in the SDM tables:
 * 1 = PTE, 2 = PDE, 3 = PDPTE, 4 = PML4E, 5 = PML5E.
 */
#ifndef VMXSIM_PAGING_PRIV_H
#define VMXSIM_PAGING_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86.h"
#include "paging/paging.h"

/* Paging-structure entry bits common to all modes — SDM Vol. 3A Tables 4-4 to 4-20 */
#define PTE_P BIT64(0)                  /* present */
#define PTE_RW BIT64(1)                 /* read/write: 0 = writes may be disallowed */
#define PTE_US BIT64(2)                 /* user/supervisor: 0 = supervisor-mode address */
#define PTE_PWT BIT64(3)                /* page-level write-through */
#define PTE_PCD BIT64(4)                /* page-level cache disable */
#define PTE_A BIT64(5)                  /* accessed */
#define PTE_D BIT64(6)                  /* dirty (entries that map a page) */
#define PTE_PS BIT64(7)                 /* page size (PDE, PDPTE; reserved in PML4E/PML5E) */
#define PTE_G BIT64(8)                  /* global (entries that map a page, CR4.PGE = 1) */
#define PTE_PAT_LARGE BIT64(12)         /* PAT bit of a 4-MByte/2-MByte/1-GByte leaf */
#define PTE_PKEY GENMASK64(62, 59)      /* protection key of a 4/5-level leaf (§4.6.2) */
#define PTE_PKEY_SHIFT 59               /* lowest bit of PTE_PKEY */
#define PTE_XD BIT64(63)                /* execute-disable; reserved when EFER.NXE = 0 */
#define PTE_ADDR_LOW 12                 /* lowest address bit of a table or 4-KByte frame */

/* 32-bit paging — SDM Vol. 3A §4.3, Tables 4-3 to 4-6 */
#define PG32_ADDR GENMASK64(31, 12)      /* CR3, PDE → page table, PTE → 4-KByte frame */
#define PG32_4M_ADDR_31_22 GENMASK64(31, 22) /* PDE bits 31:22 = physical bits 31:22 */
#define PG32_4M_HIGH_SHIFT 13            /* PDE bits (M-20):13 = physical bits (M-1):32 */
#define PG32_4M_RSVD_TOP 21              /* reserved range is 21:(M-19) */
#define PG32_PSE36_MAX_M 40              /* PSE-36: M = min(MAXPHYADDR, 40) */
#define PG32_INDEX_BITS 10               /* 1024 entries per table */
#define PG32_ENTRY_SIZE 4                /* bytes per PDE/PTE */

/* PAE paging — SDM Vol. 3A §4.4, Tables 4-7 to 4-11 */
#define PAE_CR3_PDPT GENMASK64(31, 5)       /* CR3 bits 31:5: 32-byte aligned PDPT */
#define PAE_PDPTE_RSVD_2_1 GENMASK64(2, 1)  /* PDPTE bits 2:1 reserved */
#define PAE_PDPTE_RSVD_8_5 GENMASK64(8, 5)  /* PDPTE bits 8:5 reserved */
#define PAE_PDPTE_COUNT 4                   /* PDPTE registers */
#define PAE_PDPTE_SHIFT 30                  /* linear bits 31:30 select the PDPTE */

/* PAE and 4/5-level large pages */
#define PDE_2M_RSVD_20_13 GENMASK64(20, 13)   /* 2-MByte PDE bits 20:13 reserved */
#define PDPTE_1G_RSVD_29_13 GENMASK64(29, 13) /* 1-GByte PDPTE bits 29:13 reserved */

/* Physical addresses — SDM Vol. 3A §4.1.4 */
#define PG_MAX_PHYADDR 52 /* architectural maximum of MAXPHYADDR */
#define PG_MIN_PHYADDR 32 /* every paging mode produces at least 32 bits */

/* Linear-address widths — SDM Vol. 3A §4.1.1 */
#define PG_LA_32 32
#define PG_LA_48 48
#define PG_LA_57 57

#define PG_PAGE_4K (1ULL << 12)
#define PG_PAGE_4M (1ULL << 22)

/* PKRU / IA32_PKRS: two bits per key — SDM Vol. 3A §4.6.2 */
#define PKR_AD(key) (1u << (2 * (key)))     /* access disable for key */
#define PKR_WD(key) (1u << (2 * (key) + 1)) /* write disable for key */

#define PG_MAX_LEVELS 5

enum pg_kind { PG_READ, PG_WRITE, PG_FETCH };

/* The access being translated, decoded from PAGING_ACC_* (§4.6.1). */
struct pg_access {
    enum pg_kind kind;
    bool user;     /* user-mode access (CPL 3, not implicit) */
    bool implicit; /* implicit supervisor-mode access */
    bool ac;       /* RFLAGS.AC */
    bool no_ad;    /* probe: leave accessed/dirty flags alone */
};

/* Access rights a complete translation grants (§4.6.1). */
struct pg_rights {
    bool user;      /* U/S = 1 in every entry: user-mode address */
    bool writable;  /* R/W = 1 in every entry */
    bool xd;        /* XD = 1 in some entry (only possible with EFER.NXE = 1) */
    bool dirty;     /* leaf D flag */
    unsigned pkey;  /* leaf bits 62:59 */
};

/* Paging mode → CR4/EFER-independent shape (§4.2, Table 4-2). */
struct pg_mode_desc {
    unsigned top_level;  /* level of the structure at the root */
    unsigned entry_size; /* bytes per entry */
    unsigned index_bits; /* linear-address bits consumed per level */
    unsigned la_width;   /* linear-address width */
};

/* One translation attempt. */
struct pg_walk {
    const struct paging_state *st;
    const struct paging_mem *mem;
    enum paging_mode mode;
    const struct pg_mode_desc *md;
    uint64_t la;
    struct pg_access acc;
    unsigned n;                       /* entries used, root first */
    uint64_t entry[PG_MAX_LEVELS];    /* values as read */
    uint64_t entry_pa[PG_MAX_LEVELS]; /* where they were read */
    bool in_memory[PG_MAX_LEVELS];    /* false for a PAE PDPTE register */
    struct pg_rights rights;
    uint64_t pa;
    uint64_t page_size;
    bool global;
};

/* rsvd.c */
unsigned pg_maxphyaddr(const struct paging_state *st);
uint64_t pg_rsvd_mask(const struct paging_state *st, enum paging_mode mode, unsigned level,
                      uint64_t entry);
uint64_t pg_pse_frame(const struct paging_state *st, uint64_t pde);

/* pdpte.c */
uint64_t pg_pae_pdpte_rsvd(const struct paging_state *st);

/* access.c */
struct pg_access pg_access_decode(unsigned access);
bool pg_permitted(const struct paging_state *st, enum paging_mode mode, const struct pg_rights *r,
                  const struct pg_access *acc, enum pg_kind kind);
bool pg_pk_denies(const struct paging_state *st, enum paging_mode mode, const struct pg_rights *r,
                  const struct pg_access *acc, enum pg_kind kind);
uint8_t pg_allowed(const struct paging_state *st, enum paging_mode mode, const struct pg_rights *r,
                   const struct pg_access *acc);
uint32_t pg_pf_error_base(const struct paging_state *st, enum paging_mode mode,
                          const struct pg_access *acc);

#endif
