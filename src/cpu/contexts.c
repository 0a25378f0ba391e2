/*
 * Translation contexts (DESIGN §2): one Unicorn engine for VMX root
 * operation and one per guest VMCS, all mapping the same RAM, so that a VM
 * exit or entry does not throw away QEMU's TLB and translated code.
 *
 * A transition hands the state VMX does not switch (SDM Vol. 3C §27.3,
 * §28.5 load only what they list: GPRs, x87/SSE/AVX, DR0-DR6, MSRs such
 * as STAR or KERNEL_GS_BASE stay as they are) to the other engine and
 * keeps that engine's own mode state (hflags, segment caches, CR0/CR3/CR4,
 * EFER, DR7 with QEMU's breakpoint objects); the transition then loads
 * what the SDM says it loads, writing only what differs.
 *
 * Two things keep the caches exact:
 * - An engine's TLB holds what our TLB-fill hook answered under a given
 *   state (struct cpu_fill_ctx: control registers, PKRU/PKRS, EPT, VPID,
 *   descriptor tables, the architectural TLB's generation). When that
 *   state differs on its next entry, the engine's TLB is flushed; otherwise
 *   it outlives the transition as the processor's TLB may (Vol. 3C
 *   §29.4.3.1: with VPIDs, VM entries and exits invalidate nothing).
 * - Translated code: each engine records the RAM pages it translated code
 *   from (Vol. 3A §11.6 "Self-Modifying Code": a write to a code location
 *   invalidates what was cached of it). A store by another engine to such a page is seen by the fill
 *   hook (which grants write access to those pages only on a store), a
 *   store by the simulator by cpu_phys_write and the A/D updates; the code
 *   engine then drops its translations before it runs again. An engine
 *   that starts code on a page flushes the other engines' TLBs first, so
 *   none keeps a write permission given before the page held code.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_priv.h"

/* Bitmaps of RAM pages an engine translated code from. */
static bool page_bit(const uint8_t *map, uint64_t pg) { return map && (map[pg >> 3] >> (pg & 7)) & 1; }

static size_t code_map_bytes(const struct cpu *c) { return (size_t)((c->ram_size / 4096 + 7) / 8); }

static void fill_ctx_of(const struct cpu *c, const struct x86_state *st, struct cpu_fill_ctx *f)
{
    memset(f, 0, sizeof *f);
    f->cr0 = st->cr0;
    f->cr3 = st->cr3;
    f->cr4 = st->cr4;
    f->efer = st->efer;
    memcpy(f->pdpte, st->pdpte, sizeof f->pdpte);
    /* Implicit supervisor accesses at CPL 3 are recognised by these tables. */
    f->gdt_base = st->gdtr.base;
    f->gdt_limit = st->gdtr.limit;
    f->idt_base = st->idtr.base;
    f->idt_limit = st->idtr.limit;
    f->ldt_base = st->seg[X86_SEG_LDTR].base;
    f->ldt_limit = st->seg[X86_SEG_LDTR].limit;
    f->tr_base = st->seg[X86_SEG_TR].base;
    f->tr_limit = st->seg[X86_SEG_TR].limit;
    f->pkru = c->pkru;
    f->pkrs = (uint32_t)st->pkrs;
    f->ept_on = c->ept_on;
    if (c->ept_on) {
        f->eptp = c->ept.eptp;
        f->ept_caps = c->ept.caps;
        f->mbec = c->ept.mbec;
    }
    f->vpid = c->vpid;
    f->non_root = c->vmx.non_root;
    f->unrestricted = c->unrestricted;
    f->tlb_gen = tlb_generation(c->tlb);
}

/* A VM transition begins: st is the state the current engine leaves with. */
void cpu_ctx_leave(struct cpu *c, const struct x86_state *st)
{
    fill_ctx_of(c, st, &c->cur->fill);
    c->cur->fill_valid = true;
}

static void close_engine(struct cpu_engine *e)
{
    if (e->ctx)
        uc_context_free(e->ctx);
    if (e->uc)
        uc_close(e->uc);
    free(e->hooked.addrs);
    free(e->code_pages);
    memset(e, 0, sizeof *e);
}

static bool open_engine(struct cpu *c, struct cpu_engine *e, unsigned index)
{
    memset(e, 0, sizeof *e);
    e->index = index;
    if (cpu_engine_new(c, &e->uc) != UC_ERR_OK) {
        e->uc = NULL;
        return false;
    }
    if (uc_context_alloc(e->uc, &e->ctx) != UC_ERR_OK || cpu_engine_hooks(c, e->uc) != VMXSIM_OK) {
        close_engine(e);
        return false;
    }
    return true;
}

/* The engine for the context being entered: root, or the current VMCS's guest. */
static struct cpu_engine *engine_for(struct cpu *c)
{
    uint64_t key = c->vmx.non_root ? c->vmx.current_vmcs : CPU_ENGINE_ROOT;
    struct cpu_engine *lru = NULL;
    for (unsigned i = 0; i < CPU_MAX_ENGINES; i++)
        if (c->eng[i].uc && c->eng[i].key == key)
            return &c->eng[i];
    for (unsigned i = 1; i < CPU_MAX_ENGINES; i++) {
        struct cpu_engine *e = &c->eng[i];
        if (!e->uc) {
            if (!open_engine(c, e, i)) {
                /* No memory for another engine: share this one, root code included. */
                if (!c->engines_shared) {
                    c->engines_shared = true;
                    cpu_blocks_invalidate(c); /* CPUID in root code needs its hook again */
                }
                return c->cur;
            }
            e->key = key;
            return e;
        }
        if (e != c->cur && (!lru || e->last_use < lru->last_use))
            lru = e;
    }
    if (!lru)
        return c->cur;
    lru->key = key; /* another VMCS takes the least recently used guest engine */
    lru->fill_valid = false;
    return lru;
}

/* Copy the ranges of a context blob an engine keeps as its own (mode state, EFER, DR7 and breakpoints). */
static void copy_owned(const struct cpu_env_layout *L, uint8_t *dst, const uint8_t *src)
{
    memcpy(dst + L->mode_lo, src + L->mode_lo, L->mode_hi - L->mode_lo);
    memcpy(dst + L->efer, src + L->efer, 8);
    memcpy(dst + L->dbg_lo, src + L->dbg_lo, L->dbg_hi - L->dbg_lo);
}

/*
 * Hand the running engine's state to t, keeping t's own mode state: the
 * running state goes straight into t's blob (one copy of the whole state,
 * one restore); the owned ranges of both engines are moved around it.
 * s->ctx needs only its owned ranges: the rest comes from the engine that
 * runs before s does again.
 */
static void switch_to(struct cpu *c, struct cpu_engine *t)
{
    struct cpu_engine *s = c->cur;
    const struct cpu_env_layout *L = &c->env;
    uint8_t *tb = (uint8_t *)t->ctx, *sb = (uint8_t *)s->ctx;
    s->cr0 = c->cr0;
    s->cr3 = c->cr3;
    s->cr4 = c->cr4;
    s->efer = c->efer;
    if (t->cloned)
        copy_owned(L, c->ctx_keep, tb);
    if (c->ctx_valid)
        memcpy(tb, sb, L->size);
    else
        uc_context_save(s->uc, t->ctx);
    copy_owned(L, sb, tb); /* s's mode state, for its next entry */
    if (t->cloned) {
        copy_owned(L, tb, c->ctx_keep);
    } else { /* a new engine starts as a copy of the running one */
        t->cr0 = s->cr0;
        t->cr3 = s->cr3;
        t->cr4 = s->cr4;
        t->efer = s->efer;
        t->cloned = true;
        t->fill_valid = false;
    }
    uc_context_restore(t->uc, t->ctx);
    c->cur = t;
    c->uc = t->uc;
    c->ctx = t->ctx;
    c->ctx_valid = true;
    c->pfx_valid = c->seg_valid = false; /* it held the other engine's */
    /* What this engine's QEMU state holds: the transition writes only what differs. */
    c->cr0 = t->cr0;
    c->cr3 = t->cr3;
    c->cr4 = t->cr4;
    c->efer = t->efer;
}

/* Before a transition loads its state: move to the engine of the new context. */
void cpu_ctx_enter(struct cpu *c)
{
    struct cpu_engine *t = engine_for(c);
    if (t != c->cur)
        switch_to(c, t);
    t->last_use = ++c->engine_clock;
}

/* The transition's state is loaded (st): is the engine's TLB and code still good? */
void cpu_ctx_validate(struct cpu *c, const struct x86_state *st)
{
    struct cpu_engine *e = c->cur;
    struct cpu_fill_ctx now;
    fill_ctx_of(c, st, &now);
    if (!e->fill_valid || e->tlb_stale || memcmp(&now, &e->fill, sizeof now))
        cpu_flush_tlb(c);
    e->fill_valid = false;
    e->tlb_stale = false;
    if (e->tb_stale) {
        uc_ctl_flush_tb(e->uc);
        if (e->code_pages)
            memset(e->code_pages, 0, code_map_bytes(c));
        cpu_blocks_invalidate(c); /* decodes are re-done, which records the pages again */
        e->tb_stale = false;
    }
}


/* The running engine translated code from the RAM page holding pa. */
void cpu_ctx_code_page(struct cpu *c, uint64_t pa)
{
    struct cpu_engine *e = c->cur;
    uint64_t pg = pa >> 12;
    if (pa >= c->ram_size)
        return;
    if (!e->code_pages) {
        e->code_pages = calloc(code_map_bytes(c), 1);
        if (!e->code_pages) {
            cpu_request_stop(c, VMXSIM_STOP_ERROR, 0, "out of memory (code page map)");
            return;
        }
    }
    if (page_bit(e->code_pages, pg))
        return;
    e->code_pages[pg >> 3] |= (uint8_t)(1u << (pg & 7));
    /* Others may hold a write permission for it from before: make them ask again. */
    for (unsigned i = 0; i < CPU_MAX_ENGINES; i++)
        if (&c->eng[i] != e && c->eng[i].uc)
            c->eng[i].tlb_stale = true;
}

/* Does an engine other than the running one hold code from the page of pa? */
bool cpu_ctx_foreign_code(const struct cpu *c, uint64_t pa)
{
    uint64_t pg = pa >> 12;
    if (pa >= c->ram_size)
        return false;
    for (unsigned i = 0; i < CPU_MAX_ENGINES; i++)
        if (&c->eng[i] != c->cur && page_bit(c->eng[i].code_pages, pg))
            return true;
    return false;
}

/* RAM [pa, pa+len) was (or may now be, natively) written by the running engine or the simulator. */
void cpu_ctx_wrote(struct cpu *c, uint64_t pa, uint64_t len)
{
    if (!len || pa >= c->ram_size)
        return;
    uint64_t last = pa + len - 1 < c->ram_size ? pa + len - 1 : c->ram_size - 1;
    for (unsigned i = 0; i < CPU_MAX_ENGINES; i++) {
        struct cpu_engine *e = &c->eng[i];
        if (e == c->cur || !e->code_pages || e->tb_stale)
            continue;
        for (uint64_t pg = pa >> 12; pg <= last >> 12; pg++)
            if (page_bit(e->code_pages, pg)) {
                e->tb_stale = true;
                break;
            }
    }
}

void cpu_ctx_close(struct cpu *c)
{
    for (unsigned i = 0; i < CPU_MAX_ENGINES; i++)
        close_engine(&c->eng[i]);
}
