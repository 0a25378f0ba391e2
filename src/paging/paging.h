/*
 * Paging unit: guest linear-address translation as pure functions over a
 * small state struct (DESIGN §4). No Unicorn here: the CPU core's TLB-fill
 * hook calls paging_walk() and turns the result into a Unicorn TLB entry or
 * a #PF/#GP delivered through the IDT.
 *
 * SDM Vol. 3A chapter 4 ("Paging").
 */
#ifndef VMXSIM_PAGING_H
#define VMXSIM_PAGING_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86.h"

#define PAGING_WARN_UNUSED __attribute__((warn_unused_result))

enum paging_mode {
    PAGING_MODE_NONE,   /* CR0.PG = 0: linear = physical */
    PAGING_MODE_32BIT,  /* CR4.PAE = 0 (§4.3) */
    PAGING_MODE_PAE,    /* CR4.PAE = 1, EFER.LMA = 0 (§4.4) */
    PAGING_MODE_4LEVEL, /* EFER.LMA = 1, CR4.LA57 = 0 (§4.5) */
    PAGING_MODE_5LEVEL, /* EFER.LMA = 1, CR4.LA57 = 1 (§4.5) */
};

/* Processor features that change paging and have no CR4/EFER bit of their own. */
#define PAGING_F_GBPAGES (1u << 0) /* CPUID.80000001H:EDX[26]: 1-GByte pages */
#define PAGING_F_PSE36 (1u << 1)   /* CPUID.01H:EDX[17]: 4-MByte pages above 4 GiB */

/* Everything a walk depends on. The caller fills it from architectural state. */
struct paging_state {
    uint64_t cr0, cr3, cr4, efer;
    uint32_t pkru;        /* PKRU register (user pages, CR4.PKE) */
    uint32_t pkrs;        /* IA32_PKRS[31:0] (supervisor pages, CR4.PKS) */
    uint64_t pdpte[4];    /* PAE PDPTE registers (§4.4.1), loaded by paging_load_pdptes */
    uint8_t maxphyaddr;   /* CPUID.80000008H:EAX[7:0] */
    uint32_t features;    /* PAGING_F_* */
};

/* What kind of access is being translated (flags, or-ed). */
#define PAGING_ACC_READ 0u
#define PAGING_ACC_WRITE (1u << 0)     /* data write */
#define PAGING_ACC_FETCH (1u << 1)     /* instruction fetch */
#define PAGING_ACC_USER (1u << 2)      /* user-mode access: CPL = 3 and not implicit (§4.6) */
#define PAGING_ACC_IMPLICIT (1u << 3)  /* implicit supervisor access (GDT/LDT/IDT/TSS reads, ...) */
#define PAGING_ACC_AC (1u << 4)        /* RFLAGS.AC = 1 at the time of the access */
#define PAGING_ACC_NO_AD (1u << 5)     /* probe: do not set accessed/dirty flags */

/* Access kinds the same context could make without another walk (result.allowed). */
#define PAGING_ALLOW_R (1u << 0)
#define PAGING_ALLOW_W (1u << 1) /* only when the dirty flag is already (or now) set */
#define PAGING_ALLOW_X (1u << 2)

/*
 * Physical memory seen by the walker. The CPU core backs this with guest RAM
 * (and, for a guest under EPT, with an EPT-translating accessor). Entries
 * are 4 or 8 bytes, naturally aligned.
 */
enum paging_mem_status {
    PAGING_MEM_OK = 0,
    PAGING_MEM_UNBACKED, /* no memory at that physical address */
    PAGING_MEM_NESTED,   /* the accessor itself faulted (e.g. EPT); details are in its ctx */
};

struct paging_mem {
    void *ctx;
    enum paging_mem_status (*read)(void *ctx, uint64_t pa, unsigned size, uint64_t *val);
    /* Atomic compare-and-exchange; *cur receives the value found. */
    enum paging_mem_status (*cmpxchg)(void *ctx, uint64_t pa, unsigned size, uint64_t expect,
                                      uint64_t desired, uint64_t *cur);
};

enum paging_status {
    PAGING_OK = 0,
    PAGING_FAULT,     /* result.fault is the architectural fault (#PF or #GP) */
    PAGING_BAD_PHYS,  /* a paging-structure entry lies outside memory (result.bad_pa) */
    PAGING_NESTED,    /* the memory accessor reported PAGING_MEM_NESTED */
};

struct paging_result {
    uint64_t pa;            /* physical address of the accessed byte */
    uint64_t page_size;     /* 4 KiB, 2 MiB, 4 MiB or 1 GiB */
    uint8_t allowed;        /* PAGING_ALLOW_* for the same access context */
    bool global;            /* leaf G flag with CR4.PGE = 1 */
    struct x86_fault fault; /* when PAGING_FAULT */
    uint64_t bad_pa;        /* when PAGING_BAD_PHYS */
};

enum paging_mode paging_mode_of(const struct paging_state *st);

/* Linear-address width: 32 (no paging / 32-bit / PAE), 48 or 57. */
unsigned paging_la_width(const struct paging_state *st);

/*
 * Translate la for one access. Sets accessed/dirty flags (unless
 * PAGING_ACC_NO_AD) exactly as SDM §4.8 describes; checks P, R/W with
 * CR0.WP, U/S, NX with EFER.NXE, SMEP, SMAP (with RFLAGS.AC and implicit
 * accesses), PKU, PKS, reserved bits from MAXPHYADDR and the paging mode,
 * and canonicality (non-canonical → #GP(0)).
 */
enum paging_status paging_walk(const struct paging_state *st, const struct paging_mem *mem,
                               uint64_t la, unsigned access,
                               struct paging_result *res) PAGING_WARN_UNUSED;

/*
 * Load the four PAE PDPTE registers from CR3 (SDM §4.4.1). Returns false
 * when a present PDPTE has a reserved bit set: MOV to CR0/CR3/CR4 then #GPs.
 */
bool paging_load_pdptes(const struct paging_state *st, const struct paging_mem *mem,
                        uint64_t cr3, uint64_t pdpte[4]) PAGING_WARN_UNUSED;

#endif
