/*
 * The architectural TLB (DESIGN §4): a pure data structure the CPU core
 * consults before walking, so that software that forgets an invalidation
 * sees stale translations exactly as the SDM allows, and every invalidating
 * operation drops exactly what the SDM requires and no more.
 *
 * SDM Vol. 3A §4.10 ("Caching Translation Information"), Vol. 3C §29.4
 * (the same with VPIDs and EPT). Three kinds of mappings (§29.4.1):
 *   linear mappings         EPT not in use: tagged by VPID and PCID;
 *   combined mappings       EPT in use: tagged by VPID, PCID and EP4TA;
 *   guest-physical mappings EPT only: GPA page → HPA page, tagged by EP4TA.
 * Paging-structure caches are not modelled: every miss is a full walk,
 * which is always allowed (§4.10.3.1: "may or may not implement").
 *
 * An entry keeps what §4.10.2.2 says a TLB entry holds: the frame, the
 * AND of R/W and U/S, the OR of XD, the protection key and the dirty flag,
 * not permissions evaluated for one context. Permissions are evaluated at
 * use (tlb_check) with the current CR0.WP, CR4.SMEP/SMAP/PKE/PKS,
 * EFER.NXE, PKRU and IA32_PKRS, which need no invalidation when they change.
 *
 * Capacity: set-associative arrays with deterministic LRU replacement, so a
 * run is reproducible; an evicted entry is simply gone (§4.10.2.2: a
 * processor may drop any entry at any time).
 */
#ifndef VMXSIM_PAGING_TLB_H
#define VMXSIM_PAGING_TLB_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86.h"
#include "paging/paging.h"
#include "vmxsim/vmxsim.h"

#define TLB_WARN_UNUSED __attribute__((warn_unused_result))

/* Page sizes an entry may have — SDM Vol. 3A §4.10.2.1 */
#define TLB_PAGE_4K BIT64(12)
#define TLB_PAGE_2M BIT64(21)
#define TLB_PAGE_4M BIT64(22) /* 32-bit paging with CR4.PSE */
#define TLB_PAGE_1G BIT64(30)

#define TLB_PCID_MASK GENMASK64(11, 0)   /* CR3[11:0] with CR4.PCIDE = 1 (§4.10.1) */
#define TLB_EP4TA_MASK GENMASK64(51, 12) /* EPTP bits 51:12 (SDM Vol. 3C §29.4.2) */

/* ==== Geometry (per CPU model) ==== */

/* One set-associative array; {0, 0} means the CPU caches nothing of that kind. */
struct tlb_geometry {
    unsigned sets, ways;
};

struct tlb_config {
    struct tlb_geometry small; /* linear/combined entries of 4 KiB pages */
    struct tlb_geometry large; /* linear/combined entries of 2 MiB, 4 MiB and 1 GiB pages */
    struct tlb_geometry gpa;   /* guest-physical mappings, all page sizes */
};

#define TLB_MAX_ENTRIES (1u << 20) /* per array: sets × ways */

/* 64 × 8 small, 8 × 4 large, 16 × 4 guest-physical (a Skylake-class order of size). */
struct tlb_config tlb_config_default(void);

/* ==== Tags ==== */

/* The translation context of the logical processor (SDM Vol. 3C §29.4.2). */
struct tlb_ctx {
    uint16_t vpid;  /* current VPID: VMCS VPID in non-root with "enable VPID", else 0 */
    uint16_t pcid;  /* current PCID: CR3[11:0] if CR4.PCIDE = 1, else 0 */
    bool ept;       /* EPT in use: VMX non-root with "enable EPT" */
    uint64_t ep4ta; /* EPTP & TLB_EP4TA_MASK when ept, else ignored */
};

/* Build the context from architectural state (eptp ignored unless ept). */
static inline struct tlb_ctx tlb_ctx_of(uint16_t vpid, uint64_t cr3, uint64_t cr4, bool ept,
                                        uint64_t eptp)
{
    struct tlb_ctx c = {
        .vpid = vpid,
        .pcid = (cr4 & X86_CR4_PCIDE) ? (uint16_t)(cr3 & TLB_PCID_MASK) : 0,
        .ept = ept,
        .ep4ta = ept ? eptp & TLB_EP4TA_MASK : 0,
    };
    return c;
}

/* ==== Linear and combined mappings ==== */

enum tlb_kind {
    TLB_LINEAR,   /* created with EPT not in use (§29.4.1) */
    TLB_COMBINED, /* created with EPT in use: guest paging ∘ EPT */
};

/*
 * One cached translation. For tlb_insert the caller fills the translation
 * fields; the tags (kind, vpid, pcid, ep4ta) come from the context, and la,
 * pa are aligned down to page_size.
 */
struct tlb_entry {
    /* tags */
    enum tlb_kind kind;
    uint16_t vpid;
    uint16_t pcid;             /* PCID current when the entry was created */
    uint64_t ep4ta;            /* TLB_COMBINED only (0 for TLB_LINEAR) */
    uint64_t la;               /* linear page base */
    uint64_t page_size;        /* TLB_PAGE_*: range the entry translates */
    uint64_t guest_page_size;  /* page size the guest paging structures specify (≥ page_size;
                                  larger when EPT maps a smaller page: §4.10.2.3 fragments) */
    /* translation — SDM Vol. 3A §4.10.2.2 */
    uint64_t pa;               /* physical page base (host-physical for TLB_COMBINED) */
    bool global;               /* leaf G = 1 with CR4.PGE = 1 (§4.10.2.4) */
    bool user;                 /* AND of the U/S flags */
    bool writable;             /* AND of the R/W flags */
    bool xd;                   /* OR of the XD flags */
    bool dirty;                /* leaf D flag */
    uint8_t pkey;              /* leaf bits 62:59 (4/5-level paging) */
    uint8_t ept_allowed;       /* TLB_COMBINED: PAGING_ALLOW_* of the final EPT translation
                                  (ept_result.allowed); ignored for TLB_LINEAR */
};

/* What the core should do with an entry for one access (tlb_check). */
enum tlb_verdict {
    TLB_GRANT, /* use the entry: *allowed lists what the same context may do */
    TLB_WALK,  /* the guest rights allow it, but a walk is needed: a write while the cached
                  D flag is 0 (§4.8), or the EPT side of a combined entry refuses
                  (EPT violations need the walk's qualification) */
    TLB_DENY,  /* the cached guest rights forbid the access (§4.6). The SDM allows a #PF
                  from the stale entry (§4.10.4.3, "spurious" faults); a re-walk is
                  equally allowed (entries may be dropped at any time) */
};

struct tlb;

/* Allocate a TLB with cfg (NULL: tlb_config_default()). NOMEM, or BAD_ARG for bad geometry. */
vmxsim_err tlb_init(struct tlb **out, const struct tlb_config *cfg) TLB_WARN_UNUSED;
void tlb_free(struct tlb *t);

/*
 * SDM Vol. 3C §29.4.2: find the entry the processor would use for la in
 * ctx: combined mappings for (VPID, PCID, EP4TA) when EPT is in use, else
 * linear mappings for (VPID, PCID); global entries match any PCID within
 * the same VPID (and EP4TA). The 4 KiB array is searched first, then the
 * large-page array (§4.10.2.3 lets any of several overlapping entries be
 * used); an exact PCID match wins over a global one of another PCID.
 * Counts a hit or miss and refreshes the LRU age.
 */
bool tlb_lookup(struct tlb *t, const struct tlb_ctx *ctx, uint64_t la, struct tlb_entry *out);

/* tlb_lookup without side effects (no statistics, no LRU update): for debuggers and tests. */
bool tlb_probe(const struct tlb *t, const struct tlb_ctx *ctx, uint64_t la, struct tlb_entry *out);

/*
 * Cache a translation produced by a successful walk in ctx (§4.10.2.3: only
 * present, non-reserved, accessed entries — i.e. paging_walk/paging_walk_nested
 * returned PAGING_OK). An entry with the same tags and page replaces the old
 * one; otherwise the least recently used way of the set is evicted.
 * BAD_ARG if page_size or guest_page_size is not a TLB_PAGE_* value
 * (guest_page_size 0 means page_size).
 */
vmxsim_err tlb_insert(struct tlb *t, const struct tlb_ctx *ctx,
                      const struct tlb_entry *e) TLB_WARN_UNUSED;

/*
 * May the access (PAGING_ACC_* flags, as for paging_walk) use e under the
 * current state st (CR0.WP, CR4.SMEP/SMAP/PKE/PKS, EFER.NXE/LMA, PKRU,
 * IA32_PKRS)? SDM Vol. 3A §4.6 on the cached rights of §4.10.2.2; XD counts
 * only with EFER.NXE = 1, keys only with IA-32e paging. *allowed (may be
 * NULL) receives the PAGING_ALLOW_* mask for the same context — W only when
 * the cached D flag is set — AND-ed with ept_allowed for a combined entry.
 */
enum tlb_verdict tlb_check(const struct tlb_entry *e, const struct paging_state *st,
                           unsigned access, uint8_t *allowed);

/* ==== Guest-physical mappings (EPT only, SDM Vol. 3C §29.4.1) ==== */

struct tlb_gpa_entry {
    uint64_t ep4ta;     /* tag (set by tlb_gpa_insert) */
    uint64_t gpa;       /* guest-physical page base */
    uint64_t page_size; /* TLB_PAGE_4K, _2M or _1G */
    uint64_t hpa;       /* host-physical page base */
    uint8_t perms;      /* EPT_PERM_* AND over the EPT entries used (ept_result.perms) */
    bool dirty;         /* no EPT dirty-flag update pending: EPTP A/D off, or leaf D = 1 */
    uint8_t memtype;    /* EPT_MT_* of the leaf */
    bool ignore_pat;    /* leaf bit 6 */
};

bool tlb_gpa_lookup(struct tlb *t, uint64_t ep4ta, uint64_t gpa, struct tlb_gpa_entry *out);
vmxsim_err tlb_gpa_insert(struct tlb *t, uint64_t ep4ta,
                          const struct tlb_gpa_entry *e) TLB_WARN_UNUSED;

/*
 * May an access (EPT_ACC_* flags) use e? GRANT or WALK only: a refusal
 * needs the walk to build the EPT-violation qualification, and a write
 * with an EPT dirty-flag update pending needs the walk to set it (§29.3.5).
 * mbec: "mode-based execute control for EPT" (fetches from user-mode linear
 * addresses then need EPT_PERM_XU).
 */
enum tlb_verdict tlb_gpa_check(const struct tlb_gpa_entry *e, unsigned ept_access, bool mbec);

/* ==== Invalidation: one function per architectural operation ==== */

/* Causes, for statistics and traces (SDM section of each rule in tlb.c). */
#define TLB_CAUSES(X)                         \
    X(INVLPG, "invlpg")                       \
    X(PAGE_FAULT, "page-fault")               \
    X(INVPCID, "invpcid")                     \
    X(MOV_CR0, "mov-cr0")                     \
    X(MOV_CR3, "mov-cr3")                     \
    X(MOV_CR4, "mov-cr4")                     \
    X(TASK_SWITCH, "task-switch")             \
    X(VM_ENTRY, "vm-entry")                   \
    X(VM_EXIT, "vm-exit")                     \
    X(VMFUNC, "vmfunc-eptp-switch")           \
    X(EPT_VIOLATION, "ept-violation")         \
    X(INVVPID, "invvpid")                     \
    X(INVEPT, "invept")                       \
    X(RESET, "reset-init")

enum tlb_cause {
#define TLB_CAUSE_ENUM(id, name) TLB_CAUSE_##id,
    TLB_CAUSES(TLB_CAUSE_ENUM)
#undef TLB_CAUSE_ENUM
    TLB_CAUSE_COUNT
};

const char *tlb_cause_name(enum tlb_cause c);

/* INVPCID types — SDM Vol. 2A INVPCID, Vol. 3A §4.10.4.1 */
enum tlb_invpcid_type {
    TLB_INVPCID_ADDR = 0,          /* individual address, except globals */
    TLB_INVPCID_SINGLE = 1,        /* single context, except globals */
    TLB_INVPCID_ALL_GLOBAL = 2,    /* all contexts, including globals */
    TLB_INVPCID_ALL_NONGLOBAL = 3, /* all contexts, except globals */
};

/* INVVPID types — SDM Vol. 3C §29.4.3.1 */
enum tlb_invvpid_type {
    TLB_INVVPID_ADDR = 0,                  /* individual address */
    TLB_INVVPID_SINGLE = 1,                /* single context */
    TLB_INVVPID_ALL = 2,                   /* all contexts but VPID 0000H */
    TLB_INVVPID_SINGLE_KEEP_GLOBALS = 3,   /* single context, retaining globals */
};

/* INVEPT types — SDM Vol. 3C §29.4.3.1 */
enum tlb_invept_type {
    TLB_INVEPT_SINGLE = 1, /* mappings of the descriptor's EP4TA */
    TLB_INVEPT_ALL = 2,    /* all EP4TAs */
};

/* cur: the context in which the operation executes (before it changes anything). */
void tlb_invlpg(struct tlb *t, const struct tlb_ctx *cur, uint64_t la);
void tlb_page_fault(struct tlb *t, const struct tlb_ctx *cur, uint64_t la);
void tlb_invpcid(struct tlb *t, const struct tlb_ctx *cur, enum tlb_invpcid_type type,
                 uint16_t pcid, uint64_t la);
void tlb_mov_cr0(struct tlb *t, const struct tlb_ctx *cur, uint64_t old_cr0, uint64_t new_cr0);
void tlb_mov_cr3(struct tlb *t, const struct tlb_ctx *cur, uint64_t cr4, uint64_t new_cr3);
void tlb_mov_cr4(struct tlb *t, const struct tlb_ctx *cur, uint64_t old_cr4, uint64_t new_cr4);
void tlb_task_switch(struct tlb *t, const struct tlb_ctx *cur, uint64_t old_cr3,
                     uint64_t new_cr3);
void tlb_ept_violation(struct tlb *t, const struct tlb_ctx *cur, uint64_t gpa, bool la_valid,
                       uint64_t la);

/* enable_vpid: the "enable VPID" control of the VMCS of the transition. */
void tlb_vm_entry(struct tlb *t, bool enable_vpid);
void tlb_vm_exit(struct tlb *t, bool enable_vpid);
void tlb_vmfunc_eptp_switch(struct tlb *t, bool enable_vpid);
void tlb_invvpid(struct tlb *t, enum tlb_invvpid_type type, uint16_t vpid, uint64_t la);
void tlb_invept(struct tlb *t, enum tlb_invept_type type, uint64_t eptp);

/* Power-up, RESET or INIT: everything (SDM Vol. 3C §29.4.3.1; INIT: Vol. 3A §10.1). */
void tlb_reset(struct tlb *t);

/* ==== Statistics (timing and trace units) ==== */

struct tlb_array_stats {
    uint64_t lookups, hits, misses;
    uint64_t inserts;   /* new entries and in-place replacements */
    uint64_t evictions; /* valid entries displaced by capacity */
};

struct tlb_stats {
    struct tlb_array_stats linear; /* linear and combined mappings (both arrays) */
    struct tlb_array_stats gpa;    /* guest-physical mappings */
    uint64_t ops[TLB_CAUSE_COUNT];     /* invalidating operations performed, by cause */
    uint64_t dropped[TLB_CAUSE_COUNT]; /* entries they invalidated, by cause */
};

const struct tlb_stats *tlb_stats(const struct tlb *t);
/*
 * Changes with every invalidating operation, whatever it dropped: a cache
 * of translations made from this TLB (Unicorn's, one per engine) is
 * current only while the generation it was filled under is.
 */
uint64_t tlb_generation(const struct tlb *t);
void tlb_stats_clear(struct tlb *t);

/* Valid linear/combined entries and guest-physical entries now held. */
unsigned tlb_count(const struct tlb *t);
unsigned tlb_gpa_count(const struct tlb *t);

/*
 * Copy up to max valid linear/combined entries to out (4 KiB array first,
 * set-major, then the large-page array); returns how many there are. For
 * debugger dumps, traces and tests.
 */
unsigned tlb_entries(const struct tlb *t, struct tlb_entry *out, unsigned max);

#endif
