/*
 * Block pre-decode (DESIGN §2, §6).
 *
 * A BLOCK hook runs at the start of every translated block. The first time
 * a block is seen it is decoded with Capstone: its static cycle cost comes
 * from the timing unit, and every sensitive instruction in it (those that
 * Unicorn would execute natively with the wrong semantics or without a
 * VM exit: RDMSR, WRMSR, MOV CR, CPUID, IN/OUT, HLT, ...) gets a CODE hook
 * on its single address. Because the TB was translated before the hooks
 * existed, the hook stops emulation before the TB runs (Unicorn checks the
 * exit request after the block hook), drops the TB and restarts.
 *
 * Retired instructions and cycles are charged per block on entry; a stop in
 * the middle of a block refunds the part that did not run, so counts are
 * exact at every stop.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_priv.h"
#include "timing/timing.h"

#define MAX_HOOKS 65536

static size_t block_slot(uint64_t addr) { return (size_t)((addr ^ (addr >> 12)) & (CPU_BLOCK_CACHE_SIZE - 1)); }

static bool hookset_add(struct cpu_hookset *h, uint64_t addr)
{
    if (h->count * 2 >= h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 1024;
        uint64_t *n = calloc(ncap, sizeof *n);
        if (!n)
            return false;
        for (size_t i = 0; i < h->cap; i++) {
            uint64_t a = h->addrs[i];
            if (!a)
                continue;
            size_t j = (size_t)(a * 0x9E3779B97F4A7C15ULL) & (ncap - 1);
            while (n[j])
                j = (j + 1) & (ncap - 1);
            n[j] = a;
        }
        free(h->addrs);
        h->addrs = n;
        h->cap = ncap;
    }
    uint64_t key = addr + 1; /* 0 marks an empty slot */
    size_t j = (size_t)(key * 0x9E3779B97F4A7C15ULL) & (h->cap - 1);
    while (h->addrs[j]) {
        if (h->addrs[j] == key)
            return false;
        j = (j + 1) & (h->cap - 1);
    }
    h->addrs[j] = key;
    h->count++;
    return true;
}

static void on_sensitive(uc_engine *uc, uint64_t addr, uint32_t size, void *ud)
{
    struct cpu *c = ud;
    (void)size;
    if (c->native_once == addr + 1) {
        c->native_once = 0;
        return;
    }
    c->cause = CAUSE_SENSITIVE;
    uc_emu_stop(uc);
}

static unsigned code_access(struct cpu *c)
{
    unsigned acc = PAGING_ACC_FETCH | PAGING_ACC_NO_AD;
    if ((c->cr0 & X86_CR0_PE) && (cpu_reg(c, UC_X86_REG_CS) & 3) == 3)
        acc |= PAGING_ACC_USER;
    return acc;
}

/*
 * CPUID outside non-root operation needs no stop: Unicorn's CPUID hook
 * (cpu.c on_cpuid) answers it from the model in place. In non-root
 * operation it exits (SDM Vol. 3C §26.1.2), which needs a stop before it.
 */
static void on_cpuid_code(uc_engine *uc, uint64_t addr, uint32_t size, void *ud)
{
    struct cpu *c = ud;
    if (!c->vmx.non_root && !c->debug)
        return;
    on_sensitive(uc, addr, size, ud);
}

/* Read the code bytes of [addr, addr+len) without side effects on A/D flags. */
static bool read_code(struct cpu *c, uint64_t addr, uint8_t *buf, size_t len)
{
    struct x86_fault f;
    return cpu_lin_read(c, addr, buf, len, code_access(c), &f);
}

/* The RAM pages this engine now holds translated code from (contexts.c watches writes to them). */
static void note_code_pages(struct cpu *c, uint64_t addr, uint32_t size)
{
    uint64_t pa, last = addr + size - 1;
    unsigned acc = code_access(c);
    if (cpu_lin_to_phys(c, addr, acc, &pa))
        cpu_ctx_code_page(c, pa);
    if (((last ^ addr) >> 12) && cpu_lin_to_phys(c, last, acc, &pa))
        cpu_ctx_code_page(c, pa);
}

static csh capstone_for(struct cpu *c)
{
    switch (cpu_code_bits(c)) {
    case 16:
        return c->cs[0];
    case 32:
        return c->cs[1];
    default:
        return c->cs[2];
    }
}

static bool hook_insn(struct cpu *c, uint64_t addr, bool cpuid)
{
    uc_hook h;
    if (!hookset_add(&c->cur->hooked, addr))
        return false;
    if (c->cur->hooked.count > MAX_HOOKS) {
        cpu_request_stop(c, VMXSIM_STOP_ERROR, 0,
                         "too many distinct sensitive-instruction addresses (>65536)");
        return false;
    }
    uc_hook_add(c->uc, &h, UC_HOOK_CODE, cpuid ? (void *)on_cpuid_code : (void *)on_sensitive, c, addr, addr);
    return true;
}

/*
 * Instructions that need a look before they run in the current mode: locked
 * accesses with split-lock detection, data accesses while alignment checking
 * is in force, and POPF while CR0.AM = 1 (it may turn alignment checking on).
 */
static bool needs_check(const struct cpu *c, const cs_insn *insn)
{
    if (c->sld && cpu_is_locked_access(insn))
        return true;
    if (c->ac_mode && cpu_has_data_operand(insn))
        return true;
    return (c->cr0 & X86_CR0_AM) &&
           (insn->id == X86_INS_POPF || insn->id == X86_INS_POPFD || insn->id == X86_INS_POPFQ);
}

/* Decode a block; returns true when new CODE hooks were added. */
static bool decode_block(struct cpu *c, uint64_t addr, uint32_t size, struct cpu_block *b)
{
    uint8_t stackbuf[1024];
    uint8_t *code = size <= sizeof stackbuf ? stackbuf : malloc(size);
    bool added = false;
    free(b->off);
    free(b->cum);
    memset(b, 0, sizeof *b);
    b->addr = addr;
    b->size = size;
    b->tag = c->block_tag;
    if (!code)
        return false;
    b->off = calloc((size_t)size + 1, sizeof *b->off);
    b->cum = calloc((size_t)size + 1, sizeof *b->cum);
    if (!b->off || !b->cum || !read_code(c, addr, code, size)) {
        b->ninsns = 1;
        b->cost = 1;
        goto out;
    }
    note_code_pages(c, addr, size);
    csh cs = capstone_for(c);
    cs_insn *insn = cs_malloc(cs);
    const uint8_t *p = code;
    size_t left = size;
    uint64_t a = addr;
    while (left && insn) {
        uint64_t at = a;
        unsigned raw = cpu_raw_sensitive(p, left);
        if (raw) { /* an encoding Capstone does not know */
            p += raw;
            left -= raw;
            a += raw;
        } else if (!cs_disasm_iter(cs, &p, &left, &a, insn)) {
            break;
        }
        b->off[b->ninsns] = (uint16_t)(at - addr);
        b->cum[b->ninsns] = (uint32_t)b->cost;
        b->ninsns++;
        b->cost += raw ? 1 : timing_insn_cost(insn);
        bool cpuid = !raw && insn->id == X86_INS_CPUID && !needs_check(c, insn);
        /* An engine that only ever runs root code needs no CODE hook for CPUID:
         * it never exits there, and every CODE hook slows all the others (Unicorn
         * walks its whole list of CODE hooks at each one). */
        if (cpuid && c->cur->key == CPU_ENGINE_ROOT && !c->engines_shared)
            continue;
        if (raw || cpu_is_sensitive(insn) || needs_check(c, insn))
            added |= hook_insn(c, at, cpuid);
    }
    if (left) { /* bytes Capstone does not know: count them as one instruction */
        b->off[b->ninsns] = (uint16_t)(size - left);
        b->cum[b->ninsns] = (uint32_t)b->cost;
        b->ninsns++;
        b->cost += 1;
    }
    if (insn)
        cs_free(insn, 1);
out:
    if (code != stackbuf)
        free(code);
    return added;
}

static void __attribute__((noinline)) block_miss(struct cpu *c, uint64_t addr, uint32_t size,
                                                  struct cpu_block *b)
{
    bool added = decode_block(c, addr, size, b);
    cpu_ctx_dirty(c); /* the engine runs on: what the decode saw of its state goes stale */
    if (added) {
        c->cause = CAUSE_BLOCK_NEW;
        c->new_block_addr = addr;
        c->new_block_size = size;
        c->cur_block = NULL;
        uc_emu_stop(c->uc);
    }
}

/* Hot path: runs at the start of every block execution. */
static void on_block(uc_engine *uc, uint64_t addr, uint32_t size, void *ud)
{
    struct cpu *c = ud;
    struct cpu_block *b = &c->blocks[block_slot(addr)];
    (void)uc;
    if (__builtin_expect(b->addr != addr || b->size != size || b->tag != c->block_tag, 0)) {
        block_miss(c, addr, size, b);
        if (c->cause == CAUSE_BLOCK_NEW)
            return;
    }
    if (__builtin_expect(c->insns >= c->insn_limit || c->cycles >= c->next_event, 0)) {
        c->cur_block = NULL;
        /* A chained block does not sync RIP before its hook: remember where we are. */
        c->block_stop_addr = addr;
        c->block_stop = true;
        if (c->insns >= c->insn_limit) {
            cpu_request_stop(c, VMXSIM_STOP_INSN_LIMIT, 0, "instruction limit reached");
        } else {
            c->cause = CAUSE_EVENT;
            uc_emu_stop(uc);
        }
        return;
    }
    c->insns += b->ninsns;
    c->cycles += b->cost;
    c->cur_block = b;
}

/*
 * Emulation stopped at rip inside the current block: refund the
 * instructions from rip on (they have not retired).
 */
void cpu_blocks_refund(struct cpu *c, uint64_t rip)
{
    struct cpu_block *b = c->cur_block;
    c->cur_block = NULL;
    if (!b || rip < b->addr || rip >= b->addr + b->size || !b->off)
        return;
    uint32_t off = (uint32_t)(rip - b->addr), i = 0;
    while (i + 1 < b->ninsns && b->off[i + 1] <= off)
        i++;
    c->insns -= b->ninsns - i;
    c->cycles -= b->cost - b->cum[i];
}

/*
 * Decoded blocks are tagged with the translation context they were decoded
 * in (CR3, paging mode, EPTP, root or non-root) plus a generation for
 * explicit invalidations, so VM transitions switch between cached contexts
 * instead of throwing decodes away. (A mode change by a native far jump
 * at an address already decoded in the other mode is not seen: such code is
 * re-decoded only when its TB changes size. Documented limitation.)
 */
void cpu_blocks_retag(struct cpu *c)
{
    uint64_t h = c->block_gen * 0x9E3779B97F4A7C15ULL;
    h ^= c->cr3 * 0xC2B2AE3D27D4EB4FULL;
    h ^= (c->cr0 & X86_CR0_PG) | (c->cr4 & (X86_CR4_PAE | X86_CR4_LA57)) | (c->efer & X86_EFER_LMA);
    if (c->ept_on)
        h ^= c->ept.eptp * 0x165667B19E3779F9ULL;
    h ^= c->vmx.non_root ? 0x5555555555555555ULL : 0;
    /* CODE hooks belong to one engine: a block decoded in another has none here. */
    h ^= (uint64_t)c->cur->index * 0x27D4EB2F165667C5ULL;
    /* Which instructions get checks depends on these (needs_check). */
    h ^= (c->sld ? 0x1000ULL : 0) | (c->ac_mode ? 0x2000ULL : 0) | ((c->cr0 & X86_CR0_AM) ? 0x4000ULL : 0);
    c->block_tag = h | 1; /* never 0: the tag of an empty slot */
}

/* Forget decoded blocks and instructions (code may have changed). */
void cpu_blocks_invalidate(struct cpu *c)
{
    c->block_gen++;
    cpu_blocks_retag(c);
}

/*
 * Code pages the simulator decoded from recently (direct mapped): valid
 * while the engine, its TLB (cpu_flush_tlb) and the architectural TLB are
 * unchanged.
 */
static struct cpu_fetch_page *fetch_slot(struct cpu *c, uint64_t la)
{
    return &c->fetch_pages[(la >> 12) & (CPU_FETCH_PAGES - 1)];
}

static bool fetch_page_hit(struct cpu *c, uint64_t la, unsigned acc)
{
    const struct cpu_fetch_page *p = fetch_slot(c, la);
    return p->valid && p->la_page == (la & ~0xFFFull) && p->acc == acc && p->engine == c->cur &&
           p->flushes == c->tlb_flushes && p->tlb_gen == tlb_generation(c->tlb);
}

static void fetch_page_fill(struct cpu *c, uint64_t la, unsigned acc)
{
    struct cpu_fetch_page *p = fetch_slot(c, la);
    uint64_t pa;
    p->valid = false;
    if (!cpu_lin_to_phys(c, la, acc, &pa) || (pa | 0xFFF) >= c->ram_size)
        return;
    *p = (struct cpu_fetch_page){.valid = true, .la_page = la & ~0xFFFull, .pa_page = pa & ~0xFFFull, .acc = acc,
                                 .engine = c->cur, .flushes = c->tlb_flushes, .tlb_gen = tlb_generation(c->tlb)};
}

/* Read up to 15 code bytes at rip without faulting on a page it does not need. */
static size_t read_insn_bytes(struct cpu *c, uint64_t rip, uint8_t *code, struct x86_fault *f)
{
    unsigned acc = PAGING_ACC_FETCH | PAGING_ACC_NO_AD;
    size_t n = 15;
    if ((c->cr0 & X86_CR0_PE) && cpu_cs_rpl(c) == 3)
        acc |= PAGING_ACC_USER;
    if ((rip & 0xFFF) <= 0x1000 - n && fetch_page_hit(c, rip, acc)) {
        memcpy(code, c->ram + fetch_slot(c, rip)->pa_page + (rip & 0xFFF), n);
        return n;
    }
    if (cpu_lin_read(c, rip, code, n, acc, f)) {
        if ((rip & 0xFFF) <= 0x1000 - n)
            fetch_page_fill(c, rip, acc);
        return n;
    }
    n = 4096 - (rip & 0xFFF);
    if (n > 15 || !cpu_lin_read(c, rip, code, n, acc, f))
        return 0;
    return n;
}

/*
 * Decode the instruction at rip through a small cache (Capstone formats text
 * on every decode, ~1-2 us). An entry is reused only if the mode and the
 * instruction's bytes are the same. The result stays valid until the next
 * cpu_fetch_insn; *out is NULL for bytes Capstone does not know.
 */
bool cpu_fetch_insn(struct cpu *c, uint64_t rip, cs_insn **out, struct x86_fault *f)
{
    uint8_t code[16];
    uint64_t la = cpu_cs_base(c) + rip; /* code is fetched at CS.base + RIP */
    size_t n = read_insn_bytes(c, la, code, f);
    unsigned bits = cpu_code_bits(c);
    struct cpu_icache *e = &c->icache[(la ^ (la >> 7)) & (CPU_ICACHE_SIZE - 1)];
    *out = NULL;
    if (!n)
        return false;
    if (e->insn && e->rip == rip && e->la == la && e->bits == bits && e->insn->size <= n &&
        !memcmp(e->bytes, code, e->insn->size)) {
        *out = e->insn;
        return true;
    }
    csh cs = bits == 16 ? c->cs[0] : bits == 32 ? c->cs[1] : c->cs[2];
    if (!e->insn && !(e->insn = cs_malloc(cs)))
        return true;
    const uint8_t *p = code;
    uint64_t a = rip;
    e->rip = ~0ull;
    if (!cs_disasm_iter(cs, &p, &n, &a, e->insn))
        return true;
    e->rip = rip;
    e->la = la;
    e->bits = bits;
    memcpy(e->bytes, code, e->insn->size);
    *out = e->insn;
    return true;
}

vmxsim_err cpu_blocks_init(struct cpu *c)
{
    static const cs_mode modes[3] = {CS_MODE_16, CS_MODE_32, CS_MODE_64};
    c->blocks = calloc(CPU_BLOCK_CACHE_SIZE, sizeof *c->blocks);
    if (!c->blocks)
        return VMXSIM_ERR_NOMEM;
    for (int i = 0; i < 3; i++) {
        if (cs_open(CS_ARCH_X86, modes[i], &c->cs[i]) != CS_ERR_OK)
            return VMXSIM_ERR_INTERNAL;
        cs_option(c->cs[i], CS_OPT_DETAIL, CS_OPT_ON);
    }
    return VMXSIM_OK;
}

vmxsim_err cpu_blocks_hook(struct cpu *c, uc_engine *uc)
{
    uc_hook h;
    if (uc_hook_add(uc, &h, UC_HOOK_BLOCK, (void *)on_block, c, 1, 0) != UC_ERR_OK)
        return VMXSIM_ERR_UNICORN;
    return VMXSIM_OK;
}

void cpu_blocks_free(struct cpu *c)
{
    if (c->blocks) {
        for (size_t i = 0; i < CPU_BLOCK_CACHE_SIZE; i++) {
            free(c->blocks[i].off);
            free(c->blocks[i].cum);
        }
    }
    free(c->blocks);
    for (size_t i = 0; i < CPU_ICACHE_SIZE; i++)
        if (c->icache[i].insn)
            cs_free(c->icache[i].insn, 1);
    for (int i = 0; i < 3; i++)
        if (c->cs[i])
            cs_close(&c->cs[i]);
}
