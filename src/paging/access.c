/*
 * Access rights of a complete translation (SDM Vol. 3A §4.6): U/S, R/W with
 * CR0.WP, XD with EFER.NXE, SMEP, SMAP with RFLAGS.AC and implicit accesses,
 * protection keys (PKU for user-mode addresses, PKS for supervisor-mode
 * addresses), and the #PF error-code bits that describe the access (§4.7).
 */
#include "paging/paging_priv.h"

/*
 * SDM Vol. 3A §4.6.1: implicit supervisor-mode accesses (GDT, IDT, TSS, ...)
 * are supervisor-mode accesses whatever the CPL, so IMPLICIT overrides USER.
 */
struct pg_access pg_access_decode(unsigned access)
{
    struct pg_access acc = {
        .kind = PG_READ,
        .implicit = (access & PAGING_ACC_IMPLICIT) != 0,
        .ac = (access & PAGING_ACC_AC) != 0,
        .no_ad = (access & PAGING_ACC_NO_AD) != 0,
    };

    acc.user = (access & PAGING_ACC_USER) && !acc.implicit;
    if (access & PAGING_ACC_FETCH)
        acc.kind = PG_FETCH;
    else if (access & PAGING_ACC_WRITE)
        acc.kind = PG_WRITE;
    return acc;
}

static bool long_mode(enum paging_mode mode)
{
    return mode == PAGING_MODE_4LEVEL || mode == PAGING_MODE_5LEVEL;
}

/*
 * SDM Vol. 3A §4.6.2: the key register governing a page, if any. Keys exist
 * only with 4/5-level paging; PKRU (CR4.PKE) covers user-mode addresses,
 * IA32_PKRS (CR4.PKS) supervisor-mode addresses. "Supervisor-mode" means
 * U/S = 0 in any entry, not just in the leaf.
 */
static bool pk_register(const struct paging_state *st, enum paging_mode mode,
                        const struct pg_rights *r, uint32_t *reg)
{
    if (!long_mode(mode))
        return false;
    if (r->user && (st->cr4 & X86_CR4_PKE)) {
        *reg = st->pkru;
        return true;
    }
    if (!r->user && (st->cr4 & X86_CR4_PKS)) {
        *reg = st->pkrs;
        return true;
    }
    return false;
}

/*
 * SDM Vol. 3A §4.6.2, §4.7 (PK flag): a data access is denied by the key if
 * AD = 1, or if it is a write with WD = 1 and either a user-mode access or
 * CR0.WP = 1. Keys never apply to instruction fetches.
 */
bool pg_pk_denies(const struct paging_state *st, enum paging_mode mode, const struct pg_rights *r,
                  const struct pg_access *acc, enum pg_kind kind)
{
    uint32_t reg;

    if (kind == PG_FETCH || !pk_register(st, mode, r, &reg))
        return false;
    if (reg & PKR_AD(r->pkey))
        return true;
    return kind == PG_WRITE && (reg & PKR_WD(r->pkey)) &&
           (acc->user || (st->cr0 & X86_CR0_WP));
}

/* SDM Vol. 3A §4.6.1: SMAP blocks supervisor data accesses to user-mode addresses. */
static bool smap_blocks(const struct paging_state *st, const struct pg_access *acc)
{
    return (st->cr4 & X86_CR4_SMAP) && (acc->implicit || !acc->ac);
}

/* SDM Vol. 3A §4.6.1: data reads, before protection keys. */
static bool read_ok(const struct paging_state *st, const struct pg_rights *r,
                    const struct pg_access *acc)
{
    if (acc->user)
        return r->user;
    return !r->user || !smap_blocks(st, acc);
}

/* SDM Vol. 3A §4.6.1: data writes (CR0.WP for supervisor), before protection keys. */
static bool write_ok(const struct paging_state *st, const struct pg_rights *r,
                     const struct pg_access *acc)
{
    if (acc->user)
        return r->user && r->writable;
    if (r->user && smap_blocks(st, acc))
        return false;
    return r->writable || !(st->cr0 & X86_CR0_WP);
}

/*
 * SDM Vol. 3A §4.6.1: instruction fetches. XD counts only with NXE = 1
 * (otherwise a set XD bit already faulted as reserved); SMEP forbids
 * supervisor fetches from user-mode addresses.
 */
static bool fetch_ok(const struct paging_state *st, const struct pg_rights *r,
                     const struct pg_access *acc)
{
    if (r->xd)
        return false;
    if (acc->user)
        return r->user;
    return !r->user || !(st->cr4 & X86_CR4_SMEP);
}

/* SDM Vol. 3A §4.6: may acc's context perform an access of this kind on the page? */
bool pg_permitted(const struct paging_state *st, enum paging_mode mode, const struct pg_rights *r,
                  const struct pg_access *acc, enum pg_kind kind)
{
    bool ok;

    switch (kind) {
    case PG_WRITE:
        ok = write_ok(st, r, acc);
        break;
    case PG_FETCH:
        ok = fetch_ok(st, r, acc);
        break;
    default:
        ok = read_ok(st, r, acc);
        break;
    }
    return ok && !pg_pk_denies(st, mode, r, acc, kind);
}

/*
 * PAGING_ALLOW_* for acc's context: writes only once the leaf is dirty, so
 * that a cached write never skips the D-flag update of SDM §4.8.
 */
uint8_t pg_allowed(const struct paging_state *st, enum paging_mode mode, const struct pg_rights *r,
                   const struct pg_access *acc)
{
    uint8_t allowed = 0;

    if (pg_permitted(st, mode, r, acc, PG_READ))
        allowed |= PAGING_ALLOW_R;
    if (r->dirty && pg_permitted(st, mode, r, acc, PG_WRITE))
        allowed |= PAGING_ALLOW_W;
    if (pg_permitted(st, mode, r, acc, PG_FETCH))
        allowed |= PAGING_ALLOW_X;
    return allowed;
}

/*
 * SDM Vol. 3A §4.7: error-code bits describing the access: W/R, U/S, and
 * I/D for fetches when CR4.SMEP = 1 or (CR4.PAE = 1 and EFER.NXE = 1).
 */
uint32_t pg_pf_error_base(const struct paging_state *st, enum paging_mode mode,
                          const struct pg_access *acc)
{
    uint32_t err = 0;
    bool nx_paging = mode != PAGING_MODE_32BIT && (st->efer & X86_EFER_NXE);

    if (acc->kind == PG_WRITE)
        err |= X86_PF_W;
    if (acc->user)
        err |= X86_PF_U;
    if (acc->kind == PG_FETCH && ((st->cr4 & X86_CR4_SMEP) || nx_paging))
        err |= X86_PF_I;
    return err;
}
