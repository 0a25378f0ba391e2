/*
 * Unicorn set-up and access to state the public register API cannot reach.
 *
 * DESIGN §2: guest RAM is one host buffer mapped once; our paging unit
 * translates every access through UC_TLB_VIRTUAL + UC_HOOK_TLB_FILL.
 *
 * Hidden segment state (base, limit, access rights) must be loaded exactly
 * for IDT delivery, VM entry and VM exit, but Unicorn's 64-bit register API
 * only writes selectors. Unicorn's CPU context is a byte copy of QEMU's
 * CPUX86State; we locate the fields we need at start-up by writing known
 * values through the public API and finding them in a saved context, then
 * patch a saved context and restore it. The calibration verifies itself and
 * refuses to run (clear error) if the layout is not what it expects.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_priv.h"

/* QEMU hflags bits (target/i386/cpu.h) that follow from segment state. */
#define HF_CPL_MASK 0x3u
#define HF_CS32_MASK (1u << 4)
#define HF_SS32_MASK (1u << 5)
#define HF_ADDSEG_MASK (1u << 6)
#define HF_PE_MASK (1u << 7)
#define HF_LMA_MASK (1u << 14)
#define HF_CS64_MASK (1u << 15)
#define HF_VM_MASK (1u << 17)


uint64_t cpu_reg(struct cpu *c, int ucreg)
{
    uint64_t v = 0;
    uc_reg_read(c->uc, ucreg, &v);
    return v;
}

/* Registers whose writes leave QEMU's segment caches and hflags as they are. */
static bool plain_reg(int ucreg)
{
    switch (ucreg) {
    case UC_X86_REG_RAX: case UC_X86_REG_RBX: case UC_X86_REG_RCX: case UC_X86_REG_RDX:
    case UC_X86_REG_RSI: case UC_X86_REG_RDI: case UC_X86_REG_RBP: case UC_X86_REG_RSP:
    case UC_X86_REG_R8: case UC_X86_REG_R9: case UC_X86_REG_R10: case UC_X86_REG_R11:
    case UC_X86_REG_R12: case UC_X86_REG_R13: case UC_X86_REG_R14: case UC_X86_REG_R15:
    case UC_X86_REG_RIP: case UC_X86_REG_RFLAGS:
        return true;
    default:
        return false;
    }
}

void cpu_set_reg(struct cpu *c, int ucreg, uint64_t v)
{
    uc_reg_write(c->uc, ucreg, &v);
    c->ctx_valid = false;
    c->pfx_valid = false;
    c->gpr_snap_valid = false;
    if (!plain_reg(ucreg))
        c->seg_valid = false;
}

static uint8_t *ctx_bytes(struct cpu *c) { return (uint8_t *)c->ctx; }

/*
 * The saved context is a 5.5 KB copy of QEMU's CPU state: take it once per
 * stop and reuse it until a register write or a run makes it stale.
 */
static void ctx_fresh(struct cpu *c)
{
    if (c->ctx_valid)
        return;
    uc_context_save(c->uc, c->ctx);
    c->ctx_valid = true;
}


void cpu_ctx_dirty(struct cpu *c)
{
    c->ctx_valid = false;
    c->pfx_valid = false;
    c->seg_valid = false;
    c->gpr_snap_valid = false;
}

/*
 * Segment caches and hflags sit in the first ~500 bytes of the context: a
 * short context c->pfx (the same header with a smaller size,
 * calibrate_prefix) saves and restores only those. Its segment caches and
 * hflags stay current across writes of GPRs, RIP and RFLAGS (seg_valid);
 * the whole prefix only until any register write (pfx_valid).
 */
static const uint8_t *seg_bytes(struct cpu *c)
{
    if (!c->seg_valid) {
        uc_context_save(c->uc, c->pfx);
        c->pfx_valid = c->seg_valid = true;
    }
    return (const uint8_t *)c->pfx;
}

/* The prefix, current, to change in place and write back with pfx_store. */
static uint8_t *pfx_bytes(struct cpu *c)
{
    if (!c->pfx_valid) {
        uc_context_save(c->uc, c->pfx);
        c->pfx_valid = c->seg_valid = true;
    }
    return (uint8_t *)c->pfx;
}

static void pfx_store(struct cpu *c)
{
    uc_context_restore(c->uc, c->pfx);
    c->ctx_valid = false;
}

static bool find_u64(const uint8_t *blob, size_t size, uint64_t v, size_t *off)
{
    for (size_t i = 0; i + 8 <= size; i += 4) {
        uint64_t x;
        memcpy(&x, blob + i, 8);
        if (x == v) {
            *off = i;
            return true;
        }
    }
    return false;
}

static int32_t ctx_i32(struct cpu *c, size_t off)
{
    int32_t v;
    memcpy(&v, ctx_bytes(c) + off, 4);
    return v;
}

/*
 * An engine's mode state (contexts.c): hflags, hflags2, segs[6], ldt, tr,
 * gdt, idt, cr[5], a20_mask in one run, and efer further on. Find cr[3] and
 * efer by writing them (paging is off after reset, so nothing else moves;
 * Unicorn's 64-bit reset state has LME and LMA set, and the write keeps LMA).
 */
static bool calibrate_mode(struct cpu *c)
{
    struct cpu_env_layout *L = &c->env;
    const uint64_t cr3 = 0x5d3c1000ull, efer = 0x801; /* SCE | NXE */
    size_t off = 0;
    uint8_t *before = malloc(L->size);
    bool ok = false;
    if (!before)
        return false;
    uc_context_save(c->uc, c->ctx);
    memcpy(before, ctx_bytes(c), L->size);
    cpu_set_reg(c, UC_X86_REG_CR3, cr3);
    uc_x86_msr m = {.rid = 0xC0000080u, .value = efer};
    uc_reg_write(c->uc, UC_X86_REG_MSR, &m);
    uc_context_save(c->uc, c->ctx);
    const uint8_t *b = ctx_bytes(c);
    size_t cr = L->segs + 10 * L->seg_stride; /* after segs[6], ldt, tr, gdt, idt */
    if (!find_u64(b, L->size, cr3, &off) || off != cr + 3 * 8)
        goto out;
    L->mode_lo = L->hflags;
    L->mode_hi = cr + 5 * 8 + 4;
    L->efer = 0;
    for (size_t i = L->mode_hi; i + 8 <= L->size; i += 4) { /* the blob's header is not 8 bytes long */
        uint64_t x, y;
        memcpy(&x, b + i, 8);
        memcpy(&y, before + i, 8);
        if ((x & efer) == efer && !(y & efer) && ((x ^ y) & ~(efer | X86_EFER_LME)) == 0) {
            if (L->efer)
                goto out; /* ambiguous */
            L->efer = i;
        }
    }
    ok = L->efer > L->mode_hi;
out:
    m.value = 0;
    uc_reg_write(c->uc, UC_X86_REG_MSR, &m);
    cpu_set_reg(c, UC_X86_REG_CR3, 0);
    free(before);
    return ok;
}

/*
 * The short context: Unicorn's context header (its first field is the
 * number of state bytes that follow) with a smaller count. Used only if a
 * short save reproduces the full one's prefix exactly.
 */
static bool calibrate_prefix(struct cpu *c)
{
    struct cpu_env_layout *L = &c->env;
    size_t data = L->regs, n; /* regs[] is the first field of the state */
    memcpy(&n, ctx_bytes(c), sizeof n);
    uint8_t *p = malloc(L->size);
    if (!p)
        return false;
    c->pfx = (uc_context *)(void *)p;
    memcpy(p, ctx_bytes(c), L->size);
    /* (The allocation rounds the header up to 24 bytes; the state starts at 20.) */
    if (data < sizeof n || data + n > L->size || L->size - (data + n) >= 8 || L->mode_hi <= data)
        return true; /* a whole context, as it is */
    size_t short_n = L->mode_hi - data;
    memcpy(p, &short_n, sizeof n);
    uc_context_save(c->uc, c->ctx);
    memset(p + data, 0xA5, short_n);
    if (uc_context_save(c->uc, c->pfx) != UC_ERR_OK || memcmp(p + data, ctx_bytes(c) + data, short_n))
        memcpy(p, &n, sizeof n); /* not as expected: use whole contexts */
    return true;
}

/* Locate regs[], segs[], error_code and old_exception in the context. */
static bool calibrate(struct cpu *c, char *err, size_t errlen)
{
    static const int gpr[16] = {
        UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX,
        UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_RSI, UC_X86_REG_RDI,
        UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
        UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15,
    };
    const uint64_t magic = 0x5d3c1a7700000000ULL;
    struct cpu_env_layout *L = &c->env;
    size_t fs, gs, dr0;

    for (int i = 0; i < 16; i++)
        cpu_set_reg(c, gpr[i], magic | (uint64_t)(i + 1) << 8);
    cpu_set_reg(c, UC_X86_REG_FS_BASE, magic | 0xF5);
    cpu_set_reg(c, UC_X86_REG_GS_BASE, magic | 0x65);
    for (int i = 0; i < 4; i++)
        cpu_set_reg(c, UC_X86_REG_DR0 + i, magic | 0xD0 | (uint64_t)i);
    uc_context_save(c->uc, c->ctx);

    const uint8_t *b = ctx_bytes(c);
    if (!find_u64(b, L->size, magic | 1 << 8, &L->regs))
        goto fail;
    for (int i = 1; i < 16; i++) {
        uint64_t v;
        memcpy(&v, b + L->regs + 8 * (size_t)i, 8);
        if (v != (magic | (uint64_t)(i + 1) << 8))
            goto fail;
    }
    if (!find_u64(b, L->size, magic | 0xF5, &fs) || !find_u64(b, L->size, magic | 0x65, &gs) ||
        gs <= fs)
        goto fail;
    L->seg_stride = gs - fs;
    L->segs = fs - 4 * L->seg_stride - 8; /* SegmentCache: selector, base, limit, flags */
    L->hflags = L->segs - 8;              /* hflags, hflags2 precede segs[] */
    L->eflags = L->regs + 16 * 8 + 8;     /* regs[16], eip, eflags */
    if (!find_u64(b, L->size, magic | 0xD0, &dr0))
        goto fail;
    L->error_code = dr0 - 16;       /* error_code, exception_is_int, exception_next_eip, dr[8] */
    L->exception_is_int = dr0 - 12;
    L->old_exception = dr0 + 8 * 8 + 4 * sizeof(void *); /* after dr[8] and 4 pointers */
    L->dbg_lo = dr0 + 7 * 8;
    L->dbg_hi = L->old_exception;
    /* After reset QEMU's old_exception is -1; anything else means a layout change. */
    if (L->seg_stride != 24 || ctx_i32(c, L->old_exception) != -1)
        goto fail;
    if (!calibrate_mode(c) || !calibrate_prefix(c) || !(c->ctx_keep = malloc(L->size)))
        goto fail;
    for (int i = 0; i < 16; i++)
        cpu_set_reg(c, gpr[i], 0);
    for (int i = 0; i < 4; i++)
        cpu_set_reg(c, UC_X86_REG_DR0 + i, 0);
    return true;
fail:
    snprintf(err, errlen,
             "this Unicorn build's CPU context layout is not the one vmxsim knows "
             "(Unicorn %s); vmxsim is tested with Unicorn 2.1.x",
             uc_version(NULL, NULL) ? "2.x" : "?");
    return false;
}

/* VMCS access rights → QEMU descriptor flags (descriptor bits 40..55 → 8..23). */
static uint32_t ar_to_flags(uint32_t ar)
{
    /* An unusable segment is not present; keep its DPL (SS.DPL is the CPL). */
    if (ar & X86_AR_UNUSABLE)
        return (ar & X86_AR_DPL_MASK) << 8;
    return (ar & 0xF0FFu) << 8;
}

static uint32_t flags_to_ar(uint32_t flags, enum x86_seg s)
{
    uint32_t ar = (flags >> 8) & 0xF0FFu;
    /* A null selector loaded in 64-bit mode is not present: unusable. */
    if (!(ar & X86_AR_P) && s != X86_SEG_CS)
        return X86_AR_UNUSABLE | (ar & X86_AR_DPL_MASK);
    return ar;
}

struct qseg {
    uint32_t selector;
    uint32_t pad;
    uint64_t base;
    uint32_t limit;
    uint32_t flags;
};

static void get_qseg(const struct cpu *c, const uint8_t *b, unsigned idx, struct qseg *q)
{
    memcpy(q, b + c->env.segs + idx * c->env.seg_stride, sizeof *q);
}

static void put_qseg(const struct cpu *c, uint8_t *b, unsigned idx, const struct qseg *q)
{
    memcpy(b + c->env.segs + idx * c->env.seg_stride, q, sizeof *q);
}

static uint32_t get_hflags(const struct cpu *c, const uint8_t *b)
{
    uint32_t hf;
    memcpy(&hf, b + c->env.hflags, 4);
    return hf;
}

static void put_hflags(const struct cpu *c, uint8_t *b, uint32_t hf) { memcpy(b + c->env.hflags, &hf, 4); }

/*
 * GPRs and RIP from the context prefix (QEMU keeps regs[16] and eip first):
 * exact at a stop, cheaper than 17 register reads.
 */
void cpu_get_gprs(struct cpu *c, uint64_t gpr[16], uint64_t *rip)
{
    const uint8_t *b = pfx_bytes(c);
    memcpy(gpr, b + c->env.regs, 16 * sizeof gpr[0]);
    memcpy(rip, b + c->env.regs + 16 * 8, sizeof *rip);
}

/* QEMU keeps LDTR and TR right after segs[6], then GDTR and IDTR, all as SegmentCache. */
enum { QSEG_GDT = 8, QSEG_IDT = 9 };

void cpu_get_seg(struct cpu *c, enum x86_seg s, struct x86_seg_state *out)
{
    struct qseg q;
    get_qseg(c, seg_bytes(c), (unsigned)s, &q);
    out->selector = (uint16_t)q.selector;
    out->base = q.base;
    out->limit = q.limit;
    out->ar = flags_to_ar(q.flags, s);
}

void cpu_get_dtables(struct cpu *c, struct x86_dtable *gdtr, struct x86_dtable *idtr)
{
    struct qseg g, i;
    const uint8_t *b = seg_bytes(c);
    get_qseg(c, b, QSEG_GDT, &g);
    get_qseg(c, b, QSEG_IDT, &i);
    *gdtr = (struct x86_dtable){g.base, (uint16_t)g.limit};
    *idtr = (struct x86_dtable){i.base, (uint16_t)i.limit};
}

/*
 * Recompute the hflags bits QEMU derives from segment state, with the
 * meaning QEMU gives them (CPL from SS.DPL as in VMX, SDM Vol. 3C §27.3.2).
 */
static uint32_t derive_hflags(uint32_t hf, const struct qseg *q, uint64_t cr0, uint64_t eflags)
{
    uint32_t cs = q[X86_SEG_CS].flags, ss = q[X86_SEG_SS].flags;
    hf &= ~(HF_CPL_MASK | HF_CS32_MASK | HF_SS32_MASK | HF_ADDSEG_MASK | HF_CS64_MASK);
    hf |= (ss >> 13) & 3u;
    if ((hf & HF_LMA_MASK) && (cs & (1u << 21))) {
        hf |= HF_CS64_MASK | HF_CS32_MASK | HF_SS32_MASK;
        return hf;
    }
    if (cs & (1u << 22))
        hf |= HF_CS32_MASK;
    if (ss & (1u << 22))
        hf |= HF_SS32_MASK;
    if (!(cr0 & X86_CR0_PE) || (eflags & X86_RFLAGS_VM) || !(hf & HF_CS32_MASK))
        hf |= HF_ADDSEG_MASK;
    else if ((q[X86_SEG_DS].base | q[X86_SEG_ES].base | q[X86_SEG_SS].base) != 0)
        hf |= HF_ADDSEG_MASK;
    return hf;
}

/*
 * Load the segments selected by mask (bit per enum x86_seg) with exact
 * hidden state, and GDTR/IDTR when given, in one write of the context.
 */
void cpu_load_segs(struct cpu *c, const struct x86_seg_state *segs, unsigned mask, const struct x86_dtable *gdtr,
                   const struct x86_dtable *idtr)
{
    if (!(mask & 0xFFu) && !gdtr && !idtr)
        return;
    uint64_t eflags = cpu_reg(c, UC_X86_REG_RFLAGS);
    struct qseg q[X86_SEG_COUNT];
    uint8_t *b = pfx_bytes(c);
    for (unsigned s = 0; s < X86_SEG_COUNT; s++) {
        get_qseg(c, b, s, &q[s]);
        if (!(mask & (1u << s)))
            continue;
        q[s].selector = segs[s].selector;
        q[s].base = segs[s].base;
        q[s].limit = segs[s].limit;
        q[s].flags = ar_to_flags(segs[s].ar);
        put_qseg(c, b, s, &q[s]);
    }
    const struct x86_dtable *dt[2] = {gdtr, idtr};
    for (unsigned i = 0; i < 2; i++) {
        struct qseg t;
        if (!dt[i])
            continue;
        get_qseg(c, b, QSEG_GDT + i, &t);
        t.base = dt[i]->base;
        t.limit = dt[i]->limit;
        put_qseg(c, b, QSEG_GDT + i, &t);
    }
    if (mask & 0x3Fu)
        put_hflags(c, b, derive_hflags(get_hflags(c, b), q, c->cr0, eflags));
    pfx_store(c);
}

void cpu_set_segs(struct cpu *c, const struct x86_seg_state *segs, unsigned mask)
{
    cpu_load_segs(c, segs, mask, NULL, NULL);
}

/* Error code and INT-ness of the exception QEMU is raising (INTR hook). */
int cpu_native_error_code(struct cpu *c, bool *is_int)
{
    ctx_fresh(c);
    *is_int = ctx_i32(c, c->env.exception_is_int) != 0;
    return ctx_i32(c, c->env.error_code);
}

/*
 * QEMU records the exception in flight and only clears it in its own IDT
 * delivery, which Unicorn replaces with our hook: left alone, the next two
 * contributory faults would turn into #DF and a silent triple fault
 * (DESIGN §2). We deliver exceptions ourselves, so clear it at every stop.
 */
void cpu_clear_old_exception(struct cpu *c)
{
    int32_t none = -1;
    ctx_fresh(c);
    if (ctx_i32(c, c->env.old_exception) == -1)
        return;
    memcpy(ctx_bytes(c) + c->env.old_exception, &none, 4);
    uc_context_restore(c->uc, c->ctx); /* the prefix saved in c->pfx is still what it was */
}

void cpu_flush_tlb(struct cpu *c)
{
    uc_ctl_flush_tlb(c->uc);
    c->tlb_flushes++;
}

unsigned cpu_cpl(struct cpu *c)
{
    struct qseg q;
    if (!(c->cr0 & X86_CR0_PE))
        return 0;
    /* Virtual-8086 mode (CPL 3) does not exist in IA-32e mode. */
    if (!cpu_long_mode(c) && (cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_VM))
        return 3;
    get_qseg(c, seg_bytes(c), X86_SEG_SS, &q);
    return (q.flags >> 13) & 3u;
}

bool cpu_long_mode(const struct cpu *c) { return (c->efer & X86_EFER_LMA) != 0; }

/* CS.RPL from the segment cache (at a stop; hooks running mid-block read the selector live). */
unsigned cpu_cs_rpl(struct cpu *c)
{
    struct qseg q;
    get_qseg(c, seg_bytes(c), X86_SEG_CS, &q);
    return q.selector & 3u;
}

unsigned cpu_code_bits(struct cpu *c)
{
    struct qseg q;
    get_qseg(c, seg_bytes(c), X86_SEG_CS, &q);
    if (cpu_long_mode(c) && (q.flags & (1u << 21)))
        return 64;
    if (!(c->cr0 & X86_CR0_PE) || (!cpu_long_mode(c) && (cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_VM)))
        return 16;
    return (q.flags & (1u << 22)) ? 32 : 16;
}

/* An engine with guest RAM mapped and no hooks yet. */
uc_err cpu_engine_new(struct cpu *c, uc_engine **out)
{
    uc_engine *uc;
    uc_err e = uc_open(UC_ARCH_X86, UC_MODE_64, &uc);
    if (e != UC_ERR_OK)
        return e;
    /* Unicorn's default code buffer is 1 GiB, mapped and touched at start-up (~0.4 s of page
     * faults per engine); a VMX run opens several engines. Full buffers are flushed and reused. */
    e = uc_ctl_set_tcg_buffer_size(uc, CPU_TCG_BUFFER_SIZE);
    /* QEMU's Icelake-Server model: SMAP and PKU present, so QEMU's
     * user/supervisor/SMAP TLB split matches our permission checks. */
    if (e == UC_ERR_OK)
        e = uc_ctl_set_cpu_model(uc, UC_CPU_X86_ICELAKE_SERVER);
    if (e == UC_ERR_OK)
        e = uc_ctl_tlb_mode(uc, UC_TLB_VIRTUAL);
    /* An empty exit set: otherwise every uc_emu_start ends by invalidating
     * the TB before its `until` address, which asks our TLB-fill hook to
     * translate that address and clobbers the real stop cause. */
    if (e == UC_ERR_OK)
        e = uc_ctl_exits_enable(uc);
    if (e == UC_ERR_OK)
        e = uc_mem_map_ptr(uc, 0, c->ram_size, UC_PROT_ALL, c->ram);
    if (e != UC_ERR_OK) {
        uc_close(uc);
        return e;
    }
    *out = uc;
    return UC_ERR_OK;
}

/* The root engine (the first translation context); guest engines come later (contexts.c). */
vmxsim_err cpu_engine_open(struct cpu *c, char *err, size_t errlen)
{
    struct cpu_engine *r = &c->eng[0];
    uc_err e = cpu_engine_new(c, &r->uc);
    if (e != UC_ERR_OK) {
        snprintf(err, errlen, "unicorn set-up: %s", uc_strerror(e));
        return VMXSIM_ERR_UNICORN;
    }
    r->key = CPU_ENGINE_ROOT;
    r->cloned = true;
    c->cur = r;
    c->uc = r->uc;
    c->env.size = uc_context_size(c->uc);
    if (uc_context_alloc(c->uc, &r->ctx) != UC_ERR_OK) {
        snprintf(err, errlen, "uc_context_alloc failed");
        return VMXSIM_ERR_NOMEM;
    }
    c->ctx = r->ctx;
    if (!calibrate(c, err, errlen))
        return VMXSIM_ERR_UNICORN;
    return VMXSIM_OK;
}

void cpu_engine_close(struct cpu *c)
{
    cpu_ctx_close(c);
    free(c->pfx);
    free(c->ctx_keep);
    c->pfx = NULL;
    c->ctx_keep = NULL;
    c->ctx = NULL;
    c->uc = NULL;
    c->cur = NULL;
}

/*
 * Blocking by MOV SS (SDM Vol. 3A §6.8.3): the instruction after MOV SS or
 * POP SS runs with events inhibited. QEMU keeps one inhibit flag for STI and
 * MOV SS; tell them apart by the bytes before RIP (STI is FB; MOV SS is
 * 8E /2 with a register operand).
 */
#define HF_INHIBIT_IRQ_MASK (1u << 3)
bool cpu_inhibited(struct cpu *c) { return (get_hflags(c, seg_bytes(c)) & HF_INHIBIT_IRQ_MASK) != 0; }

bool cpu_movss_blocking(struct cpu *c)
{
    uint8_t b[2];
    struct x86_fault f;
    if (!cpu_inhibited(c))
        return false;
    uint64_t rip = cpu_rip_linear(c);
    if (!cpu_lin_read(c, rip - 2, b, 2, PAGING_ACC_FETCH | PAGING_ACC_NO_AD, &f))
        return false;
    if (b[1] == 0xFB)
        return false;
    return (b[0] == 0x8E && (b[1] & 0xF8) == 0xD0) || b[1] == 0x17;
}

/* The STI/MOV SS shadow ends when an emulated instruction completes (HLT: SDM Vol. 3A §6.8.3). */
void cpu_clear_inhibit(struct cpu *c)
{
    uint8_t *b = pfx_bytes(c);
    uint32_t hf = get_hflags(c, b);
    if (!(hf & HF_INHIBIT_IRQ_MASK))
        return;
    put_hflags(c, b, hf & ~HF_INHIBIT_IRQ_MASK);
    pfx_store(c);
}

/* Blocking by STI or MOV SS loaded by VM entry (SDM Vol. 3C §27.7.1): QEMU's inhibit flag. */
void cpu_set_inhibit(struct cpu *c)
{
    uint8_t *b = pfx_bytes(c);
    put_hflags(c, b, get_hflags(c, b) | HF_INHIBIT_IRQ_MASK);
    pfx_store(c);
}

/* CS base for code addresses: 0 in 64-bit mode (SDM Vol. 3A §3.4.4), else the hidden base. */
uint64_t cpu_cs_base(struct cpu *c)
{
    struct qseg q;
    if (cpu_code_bits(c) == 64)
        return 0;
    get_qseg(c, seg_bytes(c), X86_SEG_CS, &q);
    return q.base;
}

uint64_t cpu_rip_linear(struct cpu *c) { return cpu_cs_base(c) + cpu_reg(c, UC_X86_REG_RIP); }
