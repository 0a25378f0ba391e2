/*
 * Memory as the core sees it: physical RAM (one host buffer), linear
 * accesses through the paging unit, and the TLB-fill hook through which
 * Unicorn asks us to translate every page it touches (DESIGN §2, §4).
 */
#include <string.h>

#include "cpu/cpu_priv.h"

static enum paging_mem_status ram_read(void *ctx, uint64_t pa, unsigned size, uint64_t *val)
{
    struct cpu *c = ctx;
    if (pa >= c->ram_size || size > c->ram_size - pa)
        return PAGING_MEM_UNBACKED;
    if (size == 8) {
        *val = __atomic_load_n((uint64_t *)(void *)(c->ram + pa), __ATOMIC_RELAXED);
    } else {
        uint32_t v = __atomic_load_n((uint32_t *)(void *)(c->ram + pa), __ATOMIC_RELAXED);
        *val = v;
    }
    return PAGING_MEM_OK;
}

/* Paging-structure A/D updates are locked read-modify-writes (SDM Vol. 3A §4.8). */
static enum paging_mem_status ram_cmpxchg(void *ctx, uint64_t pa, unsigned size, uint64_t expect,
                                          uint64_t desired, uint64_t *cur)
{
    struct cpu *c = ctx;
    if (pa >= c->ram_size || size > c->ram_size - pa)
        return PAGING_MEM_UNBACKED;
    cpu_ctx_wrote(c, pa, size);
    if (size == 8) {
        uint64_t e = expect;
        __atomic_compare_exchange_n((uint64_t *)(void *)(c->ram + pa), &e, desired, false,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        *cur = e;
    } else {
        uint32_t e = (uint32_t)expect;
        __atomic_compare_exchange_n((uint32_t *)(void *)(c->ram + pa), &e, (uint32_t)desired,
                                    false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        *cur = e;
    }
    return PAGING_MEM_OK;
}

const struct paging_mem *cpu_phys_mem(struct cpu *c)
{
    if (!c->pmem.read) {
        c->pmem.ctx = c;
        c->pmem.read = ram_read;
        c->pmem.cmpxchg = ram_cmpxchg;
    }
    return &c->pmem;
}

bool cpu_phys_read(struct cpu *c, uint64_t pa, void *buf, size_t len)
{
    if (pa >= c->ram_size || len > c->ram_size - pa)
        return false;
    memcpy(buf, c->ram + pa, len);
    return true;
}

bool cpu_phys_write(struct cpu *c, uint64_t pa, const void *buf, size_t len)
{
    if (pa >= c->ram_size || len > c->ram_size - pa)
        return false;
    memcpy(c->ram + pa, buf, len);
    cpu_ctx_wrote(c, pa, len);
    return true;
}

void cpu_paging_state(struct cpu *c, struct paging_state *st)
{
    memset(st, 0, sizeof *st);
    st->cr0 = c->cr0;
    st->cr3 = c->cr3;
    st->cr4 = c->cr4;
    st->efer = c->efer;
    st->pkru = c->pkru;
    st->pkrs = (uint32_t)msr_get_raw(&c->msrs, MSR_ID_IA32_PKRS);
    memcpy(st->pdpte, c->pdpte, sizeof st->pdpte);
    st->maxphyaddr = c->model.maxphyaddr;
    if (model_has(&c->model, FEAT_GBPAGES))
        st->features |= PAGING_F_GBPAGES;
    if (model_has(&c->model, FEAT_PSE36))
        st->features |= PAGING_F_PSE36;
}

/* The current translation context (SDM Vol. 3C §29.4.2): VPID, PCID, EP4TA. */
struct tlb_ctx cpu_tlb_ctx(const struct cpu *c)
{
    return tlb_ctx_of(c->vpid, c->cr3, c->cr4, c->ept_on, c->ept.eptp);
}

static void tlb_fill_entry(struct cpu *c, const struct tlb_ctx *ctx, uint64_t la,
                           const struct paging_result *r, const struct ept_result *er)
{
    struct tlb_entry e = {.la = la, .page_size = r->page_size, .guest_page_size = r->guest_page_size,
                          .pa = r->pa, .global = r->global, .user = r->user, .writable = r->writable,
                          .xd = r->xd, .dirty = r->dirty, .pkey = r->pkey,
                          .ept_allowed = c->ept_on ? er->allowed : 0};
    if (tlb_insert(c->tlb, ctx, &e) != VMXSIM_OK)
        return; /* a page size the TLB does not cache: simply not cached */
}

/*
 * One translation: the architectural TLB first (SDM Vol. 3A §4.10.2), then
 * the walk, whose result is cached. A faulting walk invalidates what it
 * used (§4.10.4.1); an EPT violation likewise (Vol. 3C §29.4.3.4). Nothing
 * is cached with paging off or for side-effect-free probes.
 */
enum paging_status cpu_translate(struct cpu *c, uint64_t la, unsigned acc, struct paging_result *r,
                                 struct ept_result *er, bool *er_final)
{
    struct paging_state st;
    struct tlb_ctx ctx = cpu_tlb_ctx(c);
    bool cache = (c->cr0 & X86_CR0_PG) && !(acc & PAGING_ACC_NO_AD);
    struct tlb_entry e;
    cpu_paging_state(c, &st);
    /* A side-effect-free read (the simulator decoding code) may use what the TLB holds, untouched. */
    bool held = cache ? tlb_lookup(c->tlb, &ctx, la, &e)
                      : (c->cr0 & X86_CR0_PG) && !(acc & PAGING_ACC_WRITE) && tlb_probe(c->tlb, &ctx, la, &e);
    if (held && tlb_check(&e, &st, acc, &r->allowed) == TLB_GRANT) {
        r->pa = e.pa + (la & (e.page_size - 1));
        r->page_size = e.page_size;
        r->global = e.global;
        return PAGING_OK;
    }
    enum paging_status s = c->ept_on ? paging_walk_nested(&st, &c->ept, cpu_phys_mem(c), la, acc, r, er, er_final)
                                     : paging_walk(&st, cpu_phys_mem(c), la, acc, r);
    if (!cache)
        return s;
    if (s == PAGING_OK)
        tlb_fill_entry(c, &ctx, la, r, er);
    else if (s == PAGING_FAULT)
        tlb_page_fault(c->tlb, &ctx, la);
    else if (s == PAGING_NESTED && er->violation)
        tlb_ept_violation(c->tlb, &ctx, er->gpa, (er->qualification & EPT_VIOLATION_GVA_IS_VALID) != 0, la);
    return s;
}

/* Translate one page-bounded piece; on failure fill *f (or report a bad walk). */
static bool translate(struct cpu *c, uint64_t la, unsigned acc, uint64_t *pa, struct x86_fault *f)
{
    struct paging_result r;
    struct ept_result er;
    bool final = false;
    switch (cpu_translate(c, la, acc, &r, &er, &final)) {
    case PAGING_OK:
        *pa = r.pa;
        return true;
    case PAGING_FAULT:
        *f = r.fault;
        return false;
    case PAGING_NESTED:
        /* An EPT violation/misconfiguration of an emulated access: a VM exit. */
        cpu_ept_exit(c, &er, final, la);
        f->vector = 0xFF;
        return false;
    default:
        /* A paging structure outside RAM: the machine cannot continue. */
        cpu_request_stop(c, VMXSIM_STOP_ERROR, 0, "page walk touched unbacked physical memory");
        f->vector = 0xFF;
        return false;
    }
}

/* Access len bytes at la, split at page boundaries (SDM Vol. 3A §4.10.1). */
static bool lin_access(struct cpu *c, uint64_t la, void *buf, size_t len, unsigned acc,
                       bool write, struct x86_fault *f)
{
    uint64_t pas[2];
    size_t first = 4096 - (la & 0xFFF);
    if (first > len)
        first = len;
    /* Translate every piece before touching memory: a fault changes nothing. */
    if (!translate(c, la, acc, &pas[0], f))
        return false;
    if (first < len && !translate(c, la + first, acc, &pas[1], f))
        return false;
    uint8_t *p = buf;
    for (int i = 0; i < 2 && len; i++) {
        size_t n = i == 0 ? first : len;
        bool ok = write ? cpu_phys_write(c, pas[i], p, n) : cpu_phys_read(c, pas[i], p, n);
        if (!ok) {
            /* Unbacked physical memory reads as all ones; writes are dropped. */
            if (!write)
                memset(p, 0xFF, n);
        }
        p += n;
        len -= n;
    }
    return true;
}

/* Where la is in RAM, with no side effect (acc should carry PAGING_ACC_NO_AD). */
bool cpu_lin_to_phys(struct cpu *c, uint64_t la, unsigned acc, uint64_t *pa)
{
    struct paging_result r;
    struct ept_result er;
    bool final = false;
    if (cpu_translate(c, la, acc, &r, &er, &final) != PAGING_OK)
        return false;
    *pa = r.pa;
    return true;
}

bool cpu_lin_read(struct cpu *c, uint64_t la, void *buf, size_t len, unsigned acc,
                  struct x86_fault *f)
{
    return lin_access(c, la, buf, len, acc & ~PAGING_ACC_WRITE, false, f);
}

bool cpu_lin_write(struct cpu *c, uint64_t la, const void *buf, size_t len, unsigned acc,
                   struct x86_fault *f)
{
    return lin_access(c, la, (void *)buf, len, acc | PAGING_ACC_WRITE, true, f);
}

/* CPL as a hook may compute it cheaply: CS.RPL in protected mode. */
static unsigned hook_cpl(struct cpu *c)
{
    if (!(c->cr0 & X86_CR0_PE))
        return 0;
    return (unsigned)cpu_reg(c, UC_X86_REG_CS) & 3u;
}

static bool in_table(uint64_t va, uint64_t base, uint64_t limit)
{
    return va + 4096 > base && va <= base + limit;
}

/*
 * QEMU reads descriptor tables with "kernel" accesses even at CPL 3, but the
 * hook is not told the access kind. Accesses to a page of the GDT, LDT, IDT
 * or TSS at CPL 3 are taken as implicit supervisor accesses (SDM Vol. 3A
 * §4.6: "implicit supervisor-mode accesses").
 */
static bool implicit_table_page(struct cpu *c, uint64_t va)
{
    uc_x86_mmr m;
    static const int regs[] = {UC_X86_REG_GDTR, UC_X86_REG_IDTR, UC_X86_REG_LDTR, UC_X86_REG_TR};
    for (unsigned i = 0; i < sizeof regs / sizeof regs[0]; i++) {
        uc_reg_read(c->uc, regs[i], &m);
        if (m.limit && in_table(va, m.base, m.limit))
            return true;
    }
    return false;
}

bool cpu_tlb_fill(uc_engine *uc, uint64_t va, uc_mem_type type, uc_tlb_entry *e, void *ud)
{
    struct cpu *c = ud;
    struct paging_result r;
    unsigned acc = type == UC_MEM_WRITE ? PAGING_ACC_WRITE
                   : type == UC_MEM_FETCH ? PAGING_ACC_FETCH
                                          : PAGING_ACC_READ;
    (void)uc;
    if (hook_cpl(c) == 3) {
        if (type != UC_MEM_FETCH && implicit_table_page(c, va))
            acc |= PAGING_ACC_IMPLICIT;
        else
            acc |= PAGING_ACC_USER;
    }
    if (cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_AC)
        acc |= PAGING_ACC_AC;
    if (c->debug)
        fprintf(c->log, "[fill] va %#llx type %d rip %#llx\n", (unsigned long long)va, type,
                (unsigned long long)cpu_reg(c, UC_X86_REG_RIP));
    c->fill_ept = false;
    c->fills++;
    switch (cpu_translate(c, va, acc, &r, &c->fill_eres, &c->fill_eres_final)) {
    case PAGING_OK:
        e->paddr = r.pa & ~0xFFFULL;
        e->perms = (uc_prot)(((r.allowed & PAGING_ALLOW_R) ? UC_PROT_READ : 0) |
                             ((r.allowed & PAGING_ALLOW_W) ? UC_PROT_WRITE : 0) |
                             ((r.allowed & PAGING_ALLOW_X) ? UC_PROT_EXEC : 0));
        /* Another engine's code on this page: its native stores are the last we see of them. */
        if ((r.allowed & PAGING_ALLOW_W) && cpu_ctx_foreign_code(c, e->paddr)) {
            if (type == UC_MEM_WRITE)
                cpu_ctx_wrote(c, e->paddr, 4096);
            else
                e->perms = (uc_prot)(e->perms & ~UC_PROT_WRITE); /* a store comes back here */
        }
        /* The hook must grant what was asked, or Unicorn raises a fault. */
        return true;
    case PAGING_FAULT:
        c->fill_fault = r.fault;
        break;
    case PAGING_NESTED:
        c->fill_ept = true;
        c->fill_fault.vector = 0;
        break;
    default:
        c->fill_fault.vector = 0xFF;
        break;
    }
    c->cause = CAUSE_FILL_FAULT;
    c->fill_page = va;
    c->fill_access = acc;
    return false;
}
