/*
 * The 2-D walk (DESIGN §4): a guest linear address is translated by the
 * guest's paging structures, every one of which lives at a guest-physical
 * address that EPT translates first; the guest-physical address the walk
 * produces is then translated by EPT for the access itself.
 *
 * The guest walker (walk.c) is reused unchanged: it reaches guest memory
 * through a struct paging_mem, and the one here runs each access through
 * ept_walk(). The accessor also records the U/S, R/W and XD bits of the
 * guest entries read by the walk attempt that completed, because MBEC and
 * the advanced exit information need to know whether the linear address is
 * a user-mode, writable or execute-disable address. It relies on one
 * property of paging_walk(): an attempt reads its entries root first and
 * only then updates A/D flags, so the first read after an update starts a
 * new attempt (walk.c retries after a lost A/D race).
 *
 * SDM Vol. 3C §29.3.3 (EPT-induced VM exits during a 2-D walk), §29.3.5
 * (EPT A/D flags), §28.2.1 Table 28-7 (exit qualification bits 7-11).
 */
#include <string.h>

#include "paging/ept_priv.h"
#include "paging/paging_priv.h"
#include "vmx/vmx_arch.h"

/* Whether the linear address is user-mode, writable, execute-disable (Table 28-7 bits 9-11). */
struct gla_rights {
    bool user;
    bool writable;
    bool xd;
};

/* A walk attempt starts: no guest entry read yet. */
static void begin_attempt(struct ept_nested_mem *nm)
{
    nm->after_update = false;
    nm->user = true;
    nm->writable = true;
    nm->xd = false;
}

/*
 * SDM Vol. 3A §4.6.1: a linear address is user-mode if U/S = 1 in every
 * entry, writable if R/W = 1 in every entry, execute-disable if XD = 1 in
 * any (8-byte entries only). PAE PDPTE registers are never read here and
 * carry none of these bits (Table 4-8).
 */
static void note_entry(struct ept_nested_mem *nm, uint64_t e, unsigned size)
{
    nm->user = nm->user && (e & PTE_US);
    nm->writable = nm->writable && (e & PTE_RW);
    if (size == 8)
        nm->xd = nm->xd || (e & PTE_XD);
}

/*
 * SDM Vol. 3C §29.3.3.2, §29.3.5: the EPT access made by a guest
 * paging-structure access. Reads are data reads, A/D updates data writes;
 * with EPT A/D flags enabled every such access is treated as a write (and
 * the exit qualification then reports both read and write, Table 28-7
 * note). MOV-to-CR PDPTE loads stay plain reads. An A/D update without EPT
 * A/D flags reports a write only: whether a read-modify-write also sets
 * bit 0 is implementation-specific (§28.2.1).
 */
static unsigned structure_access(const struct ept_nested_mem *nm, bool update)
{
    unsigned acc = (nm->flags & EPT_NESTED_NO_AD) ? EPT_ACC_NO_AD : 0;

    if (ept_ad_enabled(nm->ept) && (update || !(nm->flags & EPT_NESTED_PDPTE_LOAD)))
        return acc | EPT_ACC_READ | EPT_ACC_WRITE;
    return acc | (update ? EPT_ACC_WRITE : EPT_ACC_READ);
}

/* Translate the guest-physical address of a paging-structure entry; record any failure. */
static enum paging_mem_status translate(struct ept_nested_mem *nm, uint64_t gpa, unsigned acc,
                                        uint64_t *hpa)
{
    struct ept_result eres;
    enum paging_status s = ept_walk(nm->ept, nm->host, gpa, acc, &eres);

    if (s == PAGING_OK) {
        *hpa = eres.hpa;
        return PAGING_MEM_OK;
    }
    if (s == PAGING_BAD_PHYS) {
        nm->unbacked = true;
        nm->bad_pa = eres.bad_pa;
        return PAGING_MEM_UNBACKED;
    }
    nm->faulted = true;
    nm->eres = eres;
    return PAGING_MEM_NESTED;
}

/* A host access to a translated entry failed: remember where. */
static enum paging_mem_status host_failure(struct ept_nested_mem *nm, enum paging_mem_status ms,
                                           uint64_t hpa)
{
    nm->unbacked = true;
    nm->bad_pa = hpa;
    return ms;
}

/* struct paging_mem read: a guest paging-structure entry (or PDPTE) through EPT. */
static enum paging_mem_status nested_read(void *ctx, uint64_t gpa, unsigned size, uint64_t *val)
{
    struct ept_nested_mem *nm = ctx;
    uint64_t hpa = 0;

    if (nm->after_update)
        begin_attempt(nm);
    enum paging_mem_status ms = translate(nm, gpa, structure_access(nm, false), &hpa);
    if (ms != PAGING_MEM_OK)
        return ms;
    ms = nm->host->read(nm->host->ctx, hpa, size, val);
    if (ms != PAGING_MEM_OK)
        return host_failure(nm, ms, hpa);
    note_entry(nm, *val, size);
    return PAGING_MEM_OK;
}

/* struct paging_mem cmpxchg: a guest A/D update, an EPT data write (§29.3.3.2). */
static enum paging_mem_status nested_cmpxchg(void *ctx, uint64_t gpa, unsigned size,
                                             uint64_t expect, uint64_t desired, uint64_t *cur)
{
    struct ept_nested_mem *nm = ctx;
    uint64_t hpa = 0;

    nm->after_update = true;
    enum paging_mem_status ms = translate(nm, gpa, structure_access(nm, true), &hpa);
    if (ms != PAGING_MEM_OK)
        return ms;
    ms = nm->host->cmpxchg(nm->host->ctx, hpa, size, expect, desired, cur);
    if (ms != PAGING_MEM_OK)
        return host_failure(nm, ms, hpa);
    return PAGING_MEM_OK;
}

/* SDM Vol. 3C §29.3.3: the accessor for guest paging structures under EPT (paging.h). */
struct paging_mem ept_nested_mem_init(struct ept_nested_mem *nm, const struct ept_state *ept,
                                      const struct paging_mem *host, unsigned flags)
{
    memset(nm, 0, sizeof *nm);
    nm->ept = ept;
    nm->host = host;
    nm->flags = flags;
    begin_attempt(nm);
    return (struct paging_mem){.ctx = nm, .read = nested_read, .cmpxchg = nested_cmpxchg};
}

/*
 * SDM Vol. 3C §28.2.1, Table 28-7 notes on bits 9-11: with CR0.PG = 0 every
 * linear address is a user-mode, read/write, executable address (this is
 * also the address type MBEC uses, §29.3.3.2).
 */
static struct gla_rights linear_rights(const struct paging_state *st,
                                       const struct ept_nested_mem *nm)
{
    if (paging_mode_of(st) == PAGING_MODE_NONE)
        return (struct gla_rights){.user = true, .writable = true, .xd = false};
    return (struct gla_rights){.user = nm->user, .writable = nm->writable, .xd = nm->xd};
}

/* The EPT access of the data access or fetch itself (§29.3.3.2). */
static unsigned final_access(unsigned access, const struct gla_rights *r)
{
    unsigned acc = EPT_ACC_READ;

    if (access & PAGING_ACC_FETCH)
        acc = EPT_ACC_FETCH;
    else if (access & PAGING_ACC_WRITE)
        acc = EPT_ACC_WRITE;
    if (r->user)
        acc |= EPT_ACC_USER_LINEAR;
    if (access & PAGING_ACC_NO_AD)
        acc |= EPT_ACC_NO_AD;
    return acc;
}

/*
 * SDM Vol. 3C §28.2.1, Table 28-7: bit 7 (guest-linear address valid), bit
 * 8 (the access was to the translation of the linear address) and, with
 * advanced VM-exit information (IA32_VMX_EPT_VPID_CAP[22]), bits 9-11.
 */
static uint64_t final_qualification(const struct ept_state *ept, const struct gla_rights *r)
{
    uint64_t q = EPT_VIOLATION_GVA_IS_VALID | EPT_VIOLATION_GVA_TRANSLATED;

    if (!(ept->caps & VMX_EPT_ADVANCED_EXIT_INFO))
        return q;
    if (r->user)
        q |= EPT_VIOLATION_GVA_USER;
    if (r->writable)
        q |= EPT_VIOLATION_GVA_WRITABLE;
    if (r->xd)
        q |= EPT_VIOLATION_GVA_XD;
    return q;
}

/* No translation to hand out after a failed final EPT translation. */
static void drop_translation(struct paging_result *res)
{
    res->pa = 0;
    res->page_size = 0;
    res->allowed = 0;
    res->global = false;
}

/*
 * The guest walk succeeded: translate its guest-physical address through EPT.
 * A TLB entry may cover only what both translations map uniformly (the
 * smaller page) and grant only what both allow.
 */
static enum paging_status final_translation(const struct paging_state *st,
                                            const struct ept_nested_mem *nm, unsigned access,
                                            struct paging_result *res, struct ept_result *eres,
                                            bool *eres_final)
{
    struct gla_rights r = linear_rights(st, nm);
    enum paging_status s = ept_walk(nm->ept, nm->host, res->pa, final_access(access, &r), eres);

    if (s == PAGING_OK) {
        res->pa = eres->hpa;
        if (eres->page_size < res->page_size)
            res->page_size = eres->page_size;
        res->allowed &= eres->allowed;
        return PAGING_OK;
    }
    drop_translation(res);
    if (s == PAGING_BAD_PHYS) {
        res->bad_pa = eres->bad_pa;
        return s;
    }
    *eres_final = true;
    if (eres->violation)
        eres->qualification |= final_qualification(nm->ept, &r);
    return s;
}

/* An EPT fault on a guest paging-structure access: bit 7 = 1, bit 8 = 0 (Table 28-7). */
static enum paging_status structure_fault(const struct ept_nested_mem *nm,
                                          struct ept_result *eres)
{
    if (!nm->faulted)
        return PAGING_NESTED;
    *eres = nm->eres;
    if (eres->violation)
        eres->qualification |= EPT_VIOLATION_GVA_IS_VALID;
    return PAGING_NESTED;
}

/* SDM Vol. 3C §29.3.3: the 2-D walk (paging.h). */
enum paging_status paging_walk_nested(const struct paging_state *st, const struct ept_state *ept,
                                      const struct paging_mem *host, uint64_t la, unsigned access,
                                      struct paging_result *res, struct ept_result *eres,
                                      bool *eres_final)
{
    struct ept_nested_mem nm;
    unsigned flags = (access & PAGING_ACC_NO_AD) ? EPT_NESTED_NO_AD : 0;
    struct paging_mem mem = ept_nested_mem_init(&nm, ept, host, flags);
    enum paging_status s = paging_walk(st, &mem, la, access, res);

    memset(eres, 0, sizeof *eres);
    *eres_final = false;
    switch (s) {
    case PAGING_OK:
        return final_translation(st, &nm, access, res, eres, eres_final);
    case PAGING_NESTED:
        return structure_fault(&nm, eres);
    case PAGING_BAD_PHYS:
        if (nm.unbacked)
            res->bad_pa = nm.bad_pa;
        return s;
    case PAGING_FAULT:
        break;
    }
    return s;
}
