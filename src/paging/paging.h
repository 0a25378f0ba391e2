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
    /* What a TLB entry caches (SDM Vol. 3A §4.10.2.2), when PAGING_OK: */
    bool user;              /* AND of the U/S flags */
    bool writable;          /* AND of the R/W flags */
    bool xd;                /* OR of the XD flags */
    bool dirty;             /* leaf D flag (after this access's update) */
    uint8_t pkey;           /* leaf protection key */
    uint64_t guest_page_size; /* the guest paging structures' page size (≥ page_size with EPT) */
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

/* ==== EPT (SDM Vol. 3C §29.3) and the 2-D walk (ept.c, nested.c) ==== */

/* EPT paging-structure entry bits — SDM Vol. 3C §29.3.2, Tables 29-1 to 29-7 */
#define EPT_READ BIT64(0)              /* reads allowed */
#define EPT_WRITE BIT64(1)             /* writes allowed (W without R: misconfiguration) */
#define EPT_EXEC BIT64(2)              /* fetches allowed (MBEC: supervisor-mode addresses) */
#define EPT_MEMTYPE GENMASK64(5, 3)    /* leaf: EPT memory type; non-leaf: reserved (bits 7:3) */
#define EPT_MEMTYPE_SHIFT 3            /* lowest bit of EPT_MEMTYPE */
#define EPT_IPAT BIT64(6)              /* leaf: ignore PAT memory type */
#define EPT_LARGE BIT64(7)             /* PDE/PDPTE maps a 2M/1G page; reserved in PML4E/PML5E */
#define EPT_ACCESSED BIT64(8)          /* accessed (EPTP bit 6 with IA32_VMX_EPT_VPID_CAP[21]) */
#define EPT_DIRTY BIT64(9)             /* dirty, entries that map a page only (same condition) */
#define EPT_USER_EXEC BIT64(10)        /* MBEC: fetches from user-mode addresses; else ignored */
#define EPT_SUPPRESS_VE BIT64(63)      /* suppress #VE (EPT-violation #VE control); else ignored */
#define EPT_ADDR_LOW 12                /* lowest address bit of a table or 4-KByte frame */

/* EPT memory types in a leaf's bits 5:3 — SDM Vol. 3C §29.3.7; 2, 3 and 7 are reserved */
#define EPT_MT_UC 0u
#define EPT_MT_WC 1u
#define EPT_MT_WT 4u
#define EPT_MT_WP 5u
#define EPT_MT_WB 6u

/* Exit qualification for EPT violations — SDM Vol. 3C §28.2.1, Table 28-7 (Linux names) */
#define EPT_VIOLATION_ACC_READ BIT64(0)           /* the access was a data read */
#define EPT_VIOLATION_ACC_WRITE BIT64(1)          /* the access was a data write */
#define EPT_VIOLATION_ACC_INSTR BIT64(2)          /* the access was an instruction fetch */
#define EPT_VIOLATION_PROT_READ BIT64(3)          /* AND of bit 0 over the entries used */
#define EPT_VIOLATION_PROT_WRITE BIT64(4)         /* AND of bit 1 */
#define EPT_VIOLATION_PROT_EXEC BIT64(5)          /* AND of bit 2 (supervisor execute with MBEC) */
#define EPT_VIOLATION_EXEC_FOR_RING3_LIN BIT64(6) /* MBEC: AND of bit 10; else 0 (undefined) */
#define EPT_VIOLATION_GVA_IS_VALID BIT64(7)       /* guest-linear-address field valid */
#define EPT_VIOLATION_GVA_TRANSLATED BIT64(8)     /* access to the linear address's translation */
#define EPT_VIOLATION_GVA_USER BIT64(9)           /* advanced info: user-mode linear address */
#define EPT_VIOLATION_GVA_WRITABLE BIT64(10)      /* advanced info: linear address is read/write */
#define EPT_VIOLATION_GVA_XD BIT64(11)            /* advanced info: linear address is XD */

/* What an EPT translation is for (flags, or-ed; bits 2:0 become qualification bits 2:0). */
#define EPT_ACC_READ (1u << 0)        /* data read */
#define EPT_ACC_WRITE (1u << 1)       /* data write (READ | WRITE: read-modify-write) */
#define EPT_ACC_FETCH (1u << 2)       /* instruction fetch */
#define EPT_ACC_USER_LINEAR (1u << 3) /* MBEC: user-mode linear address (U/S = 1 at all levels) */
#define EPT_ACC_NO_AD (1u << 4)       /* probe: do not set EPT accessed/dirty flags */

/* EPT permissions AND-ed over the entries used (ept_result.perms). */
#define EPT_PERM_R (1u << 0)  /* bit 0 */
#define EPT_PERM_W (1u << 1)  /* bit 1 */
#define EPT_PERM_X (1u << 2)  /* bit 2: execute, or supervisor-mode execute with MBEC */
#define EPT_PERM_XU (1u << 3) /* bit 10 with MBEC: user-mode execute (never set without MBEC) */

/* Everything an EPT walk depends on; the caller fills it from the VMCS and the CPU model. */
struct ept_state {
    uint64_t eptp;      /* EPT pointer (SDM Vol. 3C §25.6.11) */
    uint64_t caps;      /* IA32_VMX_EPT_VPID_CAP (VMX_EPT_* in vmx/vmx_arch.h) */
    uint8_t maxphyaddr; /* CPUID.80000008H:EAX[7:0] */
    bool mbec;          /* secondary control "mode-based execute control for EPT" */
};

/* Outcome of one EPT translation (ept_walk) or of the EPT part of a 2-D walk. */
struct ept_result {
    uint64_t gpa;           /* the guest-physical address translated (VMCS field of that name) */
    uint64_t hpa;           /* host physical address of the accessed byte (when PAGING_OK) */
    uint64_t page_size;     /* 4 KiB, 2 MiB or 1 GiB */
    uint8_t perms;          /* EPT_PERM_*, AND over the entries used (0 once one is not present) */
    uint8_t allowed;        /* PAGING_ALLOW_* the same context may use without a new walk */
    uint8_t memtype;        /* leaf EPT memory type (EPT_MT_*) */
    bool ignore_pat;        /* leaf bit 6 */
    bool violation;         /* EPT violation (exit reason 48) */
    bool misconfig;         /* EPT misconfiguration (exit reason 49, no qualification) */
    uint64_t qualification; /* violation: bits 6:0 (ept_walk), 11:7 (paging_walk_nested) */
    int level_failed;       /* 5..1: not-present or misconfigured entry (5 also: 4-level EPT and
                               GPA bits 51:48 not 0); 0: walk completed */
    uint64_t bad_pa;        /* PAGING_BAD_PHYS: host address that is not backed */
};

/*
 * Translate gpa through the EPT paging structures in host memory (SDM Vol.
 * 3C §29.3): 4-level, or 5-level when EPTP[5:3] = 4 and the CPU supports it.
 * Returns PAGING_OK (res->hpa), PAGING_NESTED (res->violation or
 * res->misconfig) or PAGING_BAD_PHYS (res->bad_pa). Sets EPT accessed and
 * dirty flags (SDM §29.3.5) only on success, unless EPT_ACC_NO_AD.
 */
enum paging_status ept_walk(const struct ept_state *ept, const struct paging_mem *host,
                            uint64_t gpa, unsigned access,
                            struct ept_result *res) PAGING_WARN_UNUSED;

/* SDM Vol. 3C §27.2.1.1: may VM entry use this EPTP with ept->caps and ept->maxphyaddr? */
bool ept_eptp_valid(const struct ept_state *ept, uint64_t eptp);

/*
 * Guest-physical memory for the guest walker (nested.c): every guest
 * paging-structure access is translated through EPT first. Reads are EPT
 * data reads and A/D updates EPT data writes; with EPT A/D flags enabled
 * both are treated as writes (SDM §29.3.3.2, §29.3.5). An EPT fault makes
 * the accessor return PAGING_MEM_NESTED and leaves the details in eres.
 *
 * paging_load_pdptes() works through it unchanged: build it with
 * EPT_NESTED_PDPTE_LOAD for MOV to CR0/CR3/CR4, whose PDPTE loads are plain
 * reads (§29.3.3.2); on failure check faulted (EPT exit, qualification bit
 * 7 = 0) before raising #GP.
 */
#define EPT_NESTED_PDPTE_LOAD (1u << 0) /* reads are PAE PDPTE loads */
#define EPT_NESTED_NO_AD (1u << 1)      /* probe: leave EPT accessed/dirty flags alone */

struct ept_nested_mem {
    const struct ept_state *ept;
    const struct paging_mem *host;
    unsigned flags;         /* EPT_NESTED_* */
    /* results */
    bool faulted;           /* an EPT violation or misconfiguration: see eres */
    bool unbacked;          /* host memory missing at bad_pa */
    uint64_t bad_pa;        /* host physical address */
    struct ept_result eres; /* the failed EPT translation (gpa = the entry's GPA) */
    /* rights of the guest entries read since the last A/D update (nested.c) */
    bool after_update;
    bool user, writable, xd;
};

/* Initialise nm and return the accessor that uses it (SDM Vol. 3C §29.3.3). */
struct paging_mem ept_nested_mem_init(struct ept_nested_mem *nm, const struct ept_state *ept,
                                      const struct paging_mem *host, unsigned flags);

/*
 * The 2-D walk (SDM Vol. 3C §29.3.3): translate la with the guest's paging
 * structures, each reached through EPT, then the final guest-physical
 * address through EPT for the access itself. Returns PAGING_OK (res->pa =
 * host physical, res->allowed = guest ∩ EPT rights), PAGING_FAULT (guest
 * #PF/#GP, no final EPT translation), PAGING_NESTED (EPT fault: *eres, with
 * *eres_final = true for the final translation, false for a guest
 * paging-structure access) or PAGING_BAD_PHYS (res->bad_pa: host address).
 */
enum paging_status paging_walk_nested(const struct paging_state *st, const struct ept_state *ept,
                                      const struct paging_mem *host, uint64_t la, unsigned access,
                                      struct paging_result *res, struct ept_result *eres,
                                      bool *eres_final) PAGING_WARN_UNUSED;

#endif
