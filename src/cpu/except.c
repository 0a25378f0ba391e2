/*
 * Exception and interrupt delivery through the IDT (SDM Vol. 3A chapter 6).
 * Unicorn never delivers events itself (DESIGN §2): every exception QEMU
 * raises, every #PF from our TLB-fill hook and every fault of an emulated
 * instruction comes here.
 */
#include <string.h>

#include "cpu/vmx_glue.h"
#include "timing/timing.h"

struct gate {
    uint16_t selector;
    uint64_t offset;
    unsigned type, dpl, ist;
    bool present;
};

/* A pending nested fault while delivering an event. */
#define NESTED(fp, v, e) CPU_FAULT(fp, v, e)

/* Exception classes for double-fault detection — SDM Vol. 3A Table 6-4/6-5. */
static bool contributory(unsigned v) { return v == X86_DE || (v >= X86_TS && v <= X86_GP); }

void cpu_decode_desc(uint64_t d, uint16_t sel, struct x86_seg_state *s)
{
    s->selector = sel;
    s->base = ((d >> 16) & 0xFFFFFFull) | (((d >> 56) & 0xFFull) << 24);
    s->limit = (uint32_t)((d & 0xFFFFull) | (((d >> 48) & 0xFull) << 16));
    s->ar = (uint32_t)(d >> 40) & 0xF0FFu;
    if (s->ar & X86_AR_G)
        s->limit = (s->limit << 12) | 0xFFFu;
}

/* Read a segment descriptor for sel (implicit supervisor access). */
bool cpu_read_desc(struct cpu *c, uint16_t sel, uint64_t *d, uint32_t ext, struct x86_fault *f)
{
    uc_x86_mmr t;
    uc_reg_read(c->uc, X86_SEL_TI(sel) ? UC_X86_REG_LDTR : UC_X86_REG_GDTR, &t);
    uint64_t off = (uint64_t)X86_SEL_INDEX(sel) * 8;
    if (off + 7 > t.limit)
        return NESTED(f, X86_GP, (sel & 0xFFFCu) | ext);
    return cpu_lin_read(c, t.base + off, d, 8, PAGING_ACC_IMPLICIT, f);
}

static bool read_gate(struct cpu *c, uint8_t vector, uint32_t ext, struct gate *g, struct x86_fault *f)
{
    uc_x86_mmr idt;
    uint64_t d[2] = {0, 0};
    bool lm = cpu_long_mode(c);
    unsigned sz = lm ? 16 : 8;
    uc_reg_read(c->uc, UC_X86_REG_IDTR, &idt);
    if ((uint64_t)vector * sz + sz - 1 > idt.limit)
        return NESTED(f, X86_GP, vector * 8u + 2u + ext);
    if (!cpu_lin_read(c, idt.base + (uint64_t)vector * sz, d, sz, PAGING_ACC_IMPLICIT, f))
        return false;
    g->selector = (uint16_t)(d[0] >> 16);
    g->type = (unsigned)(d[0] >> 40) & 0x1Fu; /* includes S */
    g->dpl = (unsigned)(d[0] >> 45) & 3u;
    g->present = (d[0] >> 47) & 1u;
    g->ist = lm ? (unsigned)(d[0] >> 32) & 7u : 0;
    g->offset = (d[0] & 0xFFFFull) | ((d[0] >> 32) & 0xFFFF0000ull);
    if (lm)
        g->offset |= d[1] << 32;
    return true;
}

/* Gate types allowed in the IDT — SDM Vol. 3A §6.11 / §6.14.1. */
static bool gate_type_ok(struct cpu *c, unsigned type)
{
    if (cpu_long_mode(c))
        return type == X86_SYS_INTR_GATE || type == X86_SYS_TRAP_GATE;
    return type == 0x6 || type == 0x7 || type == X86_SYS_INTR_GATE || type == X86_SYS_TRAP_GATE;
}

static bool read_tss(struct cpu *c, uint64_t off, void *buf, size_t len, uint32_t ext, struct x86_fault *f)
{
    uc_x86_mmr tr;
    uc_reg_read(c->uc, UC_X86_REG_TR, &tr);
    if (off + len - 1 > tr.limit)
        return NESTED(f, X86_TS, (tr.selector & 0xFFFCu) | ext);
    return cpu_lin_read(c, tr.base + off, buf, len, PAGING_ACC_IMPLICIT, f);
}

/* New SS for a legacy inter-privilege delivery — SDM Vol. 3A §6.12.1. */
static bool load_legacy_ss(struct cpu *c, unsigned cpl, uint32_t ext, struct x86_seg_state *ss,
                           uint64_t *sp, struct x86_fault *f)
{
    uint32_t esp;
    uint16_t sel;
    uint64_t d;
    if (!read_tss(c, 4 + 8 * cpl, &esp, 4, ext, f) || !read_tss(c, 8 + 8 * cpl, &sel, 2, ext, f))
        return false;
    if ((sel & 0xFFFCu) == 0)
        return NESTED(f, X86_TS, ext);
    if (!cpu_read_desc(c, sel, &d, ext, f))
        return false;
    cpu_decode_desc(d, sel, ss);
    bool writable_data = (ss->ar & X86_AR_S) && !(ss->ar & X86_AR_TYPE_CODE) &&
                         (ss->ar & X86_AR_TYPE_WRITABLE);
    if (X86_SEL_RPL(sel) != cpl || x86_ar_dpl(ss->ar) != cpl || !writable_data)
        return NESTED(f, X86_TS, (sel & 0xFFFCu) | ext);
    if (!(ss->ar & X86_AR_P))
        return NESTED(f, X86_SS, (sel & 0xFFFCu) | ext);
    *sp = esp;
    return true;
}

/* Push the frame; the stack is written by the new privilege level. */
static bool push_frame(struct cpu *c, const struct x86_seg_state *ss, uint64_t *sp, unsigned width,
                       const uint64_t *vals, unsigned n, unsigned cpl, struct x86_fault *f)
{
    uint8_t buf[8 * 8];
    uint64_t base = cpu_long_mode(c) ? 0 : ss->base;
    uint64_t nsp = *sp - (uint64_t)width * n;
    if (!(ss->ar & X86_AR_DB) && !cpu_long_mode(c))
        nsp &= 0xFFFF;
    else if (!cpu_long_mode(c))
        nsp &= 0xFFFFFFFFull;
    for (unsigned i = 0; i < n; i++) /* vals[0] is pushed first (highest address) */
        memcpy(buf + (size_t)(n - 1 - i) * width, &vals[i], width);
    unsigned acc = cpl == 3 ? PAGING_ACC_USER : 0;
    if (!cpu_lin_write(c, base + nsp, buf, (size_t)width * n, acc, f))
        return false;
    *sp = nsp;
    return true;
}

/* Real-address mode: IVT at IDTR.base, 4-byte vectors — SDM Vol. 3A §20.1.4. */
static bool deliver_real(struct cpu *c, uint8_t vector, uint64_t rip, struct x86_fault *f)
{
    uc_x86_mmr idt;
    uint32_t ivt;
    struct x86_seg_state cs, ss;
    uc_reg_read(c->uc, UC_X86_REG_IDTR, &idt);
    if ((uint64_t)vector * 4 + 3 > idt.limit)
        return NESTED(f, X86_GP, 0);
    if (!cpu_lin_read(c, idt.base + vector * 4u, &ivt, 4, 0, f))
        return false;
    cpu_get_seg(c, X86_SEG_CS, &cs);
    cpu_get_seg(c, X86_SEG_SS, &ss);
    uint64_t fl = cpu_reg(c, UC_X86_REG_RFLAGS), sp = cpu_reg(c, UC_X86_REG_RSP) & 0xFFFF;
    uint64_t vals[3] = {fl & 0xFFFF, cs.selector, rip & 0xFFFF};
    if (!push_frame(c, &ss, &sp, 2, vals, 3, 0, f))
        return false;
    cs.selector = (uint16_t)(ivt >> 16);
    cs.base = (uint64_t)cs.selector << 4;
    struct x86_seg_state segs[X86_SEG_COUNT];
    segs[X86_SEG_CS] = cs;
    cpu_set_segs(c, segs, 1u << X86_SEG_CS);
    cpu_set_reg(c, UC_X86_REG_RSP, (cpu_reg(c, UC_X86_REG_RSP) & ~0xFFFFull) | sp);
    cpu_set_reg(c, UC_X86_REG_RFLAGS, fl & ~(X86_RFLAGS_IF | X86_RFLAGS_TF | X86_RFLAGS_AC));
    cpu_set_reg(c, UC_X86_REG_RIP, ivt & 0xFFFF);
    return true;
}

struct event {
    uint8_t vector;
    enum cpu_event_kind kind;
    bool has_error;
    uint32_t error_code;
    uint64_t rip; /* return address pushed */
    uint64_t cr2; /* #PF: the faulting address (CR2 is written only on delivery) */
};

/* Target code segment of a gate — SDM Vol. 3A §6.12.1.1, §6.14.1. */
static bool load_target_cs(struct cpu *c, const struct gate *g, unsigned cpl, uint32_t ext,
                           struct x86_seg_state *cs, struct x86_fault *f)
{
    uint64_t d;
    if ((g->selector & 0xFFFCu) == 0)
        return NESTED(f, X86_GP, ext);
    if (!cpu_read_desc(c, g->selector, &d, ext, f))
        return false;
    cpu_decode_desc(d, g->selector, cs);
    uint32_t err = (g->selector & 0xFFFCu) | ext;
    if (!(cs->ar & X86_AR_S) || !(cs->ar & X86_AR_TYPE_CODE) || x86_ar_dpl(cs->ar) > cpl)
        return NESTED(f, X86_GP, err);
    if (!(cs->ar & X86_AR_P))
        return NESTED(f, X86_NP, err);
    if (cpu_long_mode(c) && (!(cs->ar & X86_AR_L) || (cs->ar & X86_AR_DB)))
        return NESTED(f, X86_GP, err);
    return true;
}

static unsigned lin_width(const struct cpu *c) { return (c->cr4 & X86_CR4_LA57) ? 57 : 48; }

static bool deliver_protected(struct cpu *c, const struct event *ev, struct x86_fault *f)
{
    struct gate g;
    struct x86_seg_state cs, ss, old_cs, old_ss;
    bool lm = cpu_long_mode(c);
    bool soft = ev->kind == EV_SW_INT || ev->kind == EV_SW_EXCEPTION;
    uint32_t ext = soft ? 0 : 1;
    unsigned cpl = cpu_cpl(c);

    if (!read_gate(c, ev->vector, ext, &g, f))
        return false;
    uint32_t idt_err = ev->vector * 8u + 2u + ext;
    if (!gate_type_ok(c, g.type)) {
        if (!lm && g.type == X86_SYS_TASK_GATE) { /* SDM Vol. 2A INT n "TASK-GATE" */
            if (soft && g.dpl < cpl)
                return NESTED(f, X86_GP, ev->vector * 8u + 2u);
            if (!g.present)
                return NESTED(f, X86_NP, idt_err);
            return cpu_task_gate(c, g.selector, ext, f);
        }
        return NESTED(f, X86_GP, idt_err);
    }
    if (soft && g.dpl < cpl)
        return NESTED(f, X86_GP, ev->vector * 8u + 2u);
    if (!g.present)
        return NESTED(f, X86_NP, idt_err);
    if (!load_target_cs(c, &g, cpl, ext, &cs, f))
        return false;
    /* SDM Vol. 2A INT n (IA-32e): a non-canonical gate offset is #GP(EXT). */
    if (lm && !x86_is_canonical(g.offset, lin_width(c)))
        return NESTED(f, X86_GP, ext);

    bool conforming = (cs.ar & 0x4u) != 0;
    unsigned ncpl = conforming ? cpl : x86_ar_dpl(cs.ar);
    cpu_get_seg(c, X86_SEG_CS, &old_cs);
    cpu_get_seg(c, X86_SEG_SS, &old_ss);
    uint64_t rsp = cpu_reg(c, UC_X86_REG_RSP), fl = cpu_reg(c, UC_X86_REG_RFLAGS);
    uint64_t sp = rsp;
    bool switch_stack = ncpl < cpl;
    ss = old_ss;
    if (lm) {
        if (g.ist || switch_stack) {
            uint64_t off = g.ist ? 0x24 + 8ull * (g.ist - 1) : 4 + 8ull * ncpl;
            if (!read_tss(c, off, &sp, 8, ext, f))
                return false;
        }
        if (switch_stack) /* SDM §6.14.4: SS = NULL selector with RPL = new CPL */
            ss = (struct x86_seg_state){.selector = (uint16_t)ncpl,
                                        .ar = X86_AR_UNUSABLE | (ncpl << X86_AR_DPL_SHIFT)};
        sp &= ~0xFull; /* SDM Vol. 3A §6.14.2: align RSP to 16 bytes */
        /* SDM Vol. 2A INT n: a non-canonical new stack (from the TSS, or the
         * frame pushed on the current one) is #SS(EXT). */
        if (!x86_is_canonical(sp, lin_width(c)) || !x86_is_canonical(sp - 6 * 8, lin_width(c)))
            return NESTED(f, X86_SS, ext);
    } else if (switch_stack && !load_legacy_ss(c, ncpl, ext, &ss, &sp, f)) {
        return false;
    }

    unsigned width = lm ? 8 : (g.type & 0x8) ? 4 : 2;
    uint64_t vals[6];
    unsigned n = 0;
    if (lm || switch_stack) {
        vals[n++] = old_ss.selector;
        vals[n++] = rsp;
    }
    vals[n++] = fl;
    vals[n++] = old_cs.selector;
    vals[n++] = ev->rip;
    if (ev->has_error)
        vals[n++] = ev->error_code;
    if (!push_frame(c, &ss, &sp, width, vals, n, ncpl, f))
        return false;

    /* Commit: nothing above changed architectural state. */
    struct x86_seg_state segs[X86_SEG_COUNT];
    cs.selector = (uint16_t)((cs.selector & 0xFFFCu) | ncpl);
    segs[X86_SEG_CS] = cs;
    segs[X86_SEG_SS] = ss;
    fl &= ~(X86_RFLAGS_TF | X86_RFLAGS_NT | X86_RFLAGS_RF | X86_RFLAGS_VM);
    if ((g.type & 0x7) == 0x6) /* interrupt gate */
        fl &= ~X86_RFLAGS_IF;
    cpu_set_reg(c, UC_X86_REG_RFLAGS, fl);
    cpu_set_segs(c, segs, (1u << X86_SEG_CS) | (1u << X86_SEG_SS));
    cpu_set_reg(c, UC_X86_REG_RSP, lm || (ss.ar & X86_AR_DB) ? sp : ((rsp & ~0xFFFFull) | sp));
    cpu_set_reg(c, UC_X86_REG_RIP, width == 2 ? g.offset & 0xFFFF : g.offset);
    return true;
}

static bool deliver_once(struct cpu *c, const struct event *ev, struct x86_fault *f)
{
    /* SDM Vol. 3C §28.1: a #PF that causes a VM exit does not write CR2; delivery does. */
    if (ev->vector == X86_PF && ev->kind == EV_HW_EXCEPTION) {
        c->cr2 = ev->cr2;
        cpu_set_reg(c, UC_X86_REG_CR2, c->cr2);
    }
    if (!(c->cr0 & X86_CR0_PE))
        return deliver_real(c, ev->vector, ev->rip, f);
    return deliver_protected(c, ev, f);
}

/*
 * Deliver an event; a fault while delivering combines with it as SDM Vol. 3A
 * §6.15 "Interrupt 8—Double Fault Exception" (Table 6-5) says: contributory
 * on contributory, or contributory/#PF on #PF, becomes #DF; anything on #DF
 * is a triple fault (shutdown); otherwise the new fault is delivered.
 */
/* VMX interruption type of an event (SDM Vol. 3C Table 25-17). */
static uint32_t intr_type(const struct event *ev)
{
    switch (ev->kind) {
    case EV_SW_INT: return INTR_TYPE_SOFT_INTR;
    case EV_SW_EXCEPTION: return INTR_TYPE_SOFT_EXCEPTION;
    case EV_NMI: return INTR_TYPE_NMI_INTR;
    case EV_EXT_INT: return INTR_TYPE_EXT_INTR;
    default: return INTR_TYPE_HARD_EXCEPTION;
    }
}

static uint32_t vectoring_info(const struct event *ev)
{
    return ev->vector | intr_type(ev) << INTR_INFO_INTR_TYPE_SHIFT | (uint32_t)INTR_INFO_VALID_MASK |
           (ev->has_error ? (uint32_t)INTR_INFO_DELIVER_CODE_MASK : 0);
}

/*
 * In VMX non-root operation an exception may be a VM exit instead (SDM
 * Vol. 3C §26.2, exception bitmap); `outer` is the event being delivered
 * when this one occurred (IDT-vectoring information, §28.2.4).
 */
static bool exception_exits(struct cpu *c, const struct event *ev, const struct event *outer)
{
    if (!c->vmx.non_root || ev->kind == EV_EXT_INT)
        return false;
    struct vmx_event ve = {.kind = VMX_EV_EXCEPTION, .vector = ev->vector, .intr_type = intr_type(ev),
                           .has_error = ev->has_error, .error_code = ev->error_code, .cr2 = ev->cr2};
    struct vmx_exit ex;
    if (!vmx_intercept(&c->vmx, cpu_vmx_ops(c), &ve, &ex))
        return false;
    if (outer) {
        ex.idt_vectoring_info = vectoring_info(outer);
        ex.idt_vectoring_error = outer->error_code;
    }
    if (ev->kind == EV_SW_EXCEPTION || ev->kind == EV_SW_INT)
        ex.insn_len = (uint32_t)(ev->rip - cpu_reg(c, UC_X86_REG_RIP));
    cpu_vmexit(c, &ex);
    return true;
}

static void deliver_event(struct cpu *c, struct event ev, bool injected)
{
    struct event outer;
    bool nested = false;
    for (int depth = 0; depth < 4; depth++) {
        struct x86_fault f = {0};
        /* Real-address mode pushes no error code, and an exception exit from
         * it reports none (SDM Vol. 3A §20.1.4; Vol. 3C §28.2.2: bit 11 "is
         * always 0 ... in real-address mode"). */
        if (!(c->cr0 & X86_CR0_PE))
            ev.has_error = false;
        /* Delivery takes time: a fault loop that executes no instruction must
         * still advance the TSC, so the preemption timer (SDM Vol. 3C §26.5.1)
         * and the APIC timer fire. */
        c->cycles += timing_event_cost(TIMING_EV_EXCEPTION);
        /* SDM Vol. 3C §27.6.1.2: an injected event never causes a VM exit directly. */
        if (!(injected && depth == 0) && exception_exits(c, &ev, nested ? &outer : NULL))
            return;
        c->delivering = true;
        c->deliver_info = vectoring_info(&ev);
        c->deliver_error = ev.error_code;
        c->deliver_len = (ev.kind == EV_SW_INT || ev.kind == EV_SW_EXCEPTION)
                             ? (uint32_t)(ev.rip - cpu_reg(c, UC_X86_REG_RIP)) : 0;
        bool ok = deliver_once(c, &ev, &f);
        c->delivering = false;
        if (ok) {
            c->exceptions_delivered++;
            cpu_flush_tlb(c);
            return;
        }
        if (f.vector == 0xFF) /* the machine stopped (reported already) */
            return;
        if (ev.vector == X86_DF) {
            cpu_triple_fault(c, "fault while delivering #DF");
            return;
        }
        bool df = (contributory(ev.vector) && contributory(f.vector)) ||
                  (ev.vector == X86_PF && (contributory(f.vector) || f.vector == X86_PF));
        outer = ev;
        /* A #DF is not "during delivery" of the first event (SDM Vol. 3C §28.2.4). */
        nested = !df;
        /* A fault while delivering INT n / INT3 / INTO is a fault of that
         * instruction: it reports the instruction, not the next one (SDM Vol. 3A §6.5). */
        uint64_t frip = (ev.kind == EV_SW_INT || ev.kind == EV_SW_EXCEPTION) ? cpu_reg(c, UC_X86_REG_RIP) : ev.rip;
        if (df)
            ev = (struct event){X86_DF, EV_HW_EXCEPTION, true, 0, frip, 0};
        else
            ev = (struct event){f.vector, EV_HW_EXCEPTION, f.has_error, f.error_code, frip, f.cr2};
    }
    cpu_triple_fault(c, "unbounded nested faults during event delivery");
}

void cpu_deliver(struct cpu *c, uint8_t vector, enum cpu_event_kind kind, bool has_error,
                 uint32_t error_code, uint64_t next_rip)
{
    struct event ev = {vector, kind, has_error, error_code, next_rip, c->cr2};
    deliver_event(c, ev, false);
}

/* VM-entry event injection (SDM Vol. 3C §27.6): delivered, never an exit itself. */
void cpu_inject(struct cpu *c, uint8_t vector, enum cpu_event_kind kind, bool has_error,
                uint32_t error_code, uint64_t next_rip)
{
    struct event ev = {vector, kind, has_error, error_code, next_rip, c->cr2};
    deliver_event(c, ev, true);
}

/* A fault of the instruction at RIP: deliver with RIP pointing at it. */
void cpu_raise(struct cpu *c, const struct x86_fault *f)
{
    if (f->vector == 0xFF)
        return;
    struct event ev = {f->vector, EV_HW_EXCEPTION, f->has_error, f->error_code,
                       cpu_reg(c, UC_X86_REG_RIP), f->vector == X86_PF ? f->cr2 : c->cr2};
    deliver_event(c, ev, false);
}

void cpu_triple_fault(struct cpu *c, const char *why)
{
    char msg[200];
    if (c->vmx.non_root) { /* SDM Vol. 3C §26.2: a triple fault in a guest is a VM exit */
        struct vmx_exit ex = {.reason = EXIT_REASON_TRIPLE_FAULT};
        cpu_vmexit(c, &ex);
        return;
    }
    snprintf(msg, sizeof msg, "triple fault (%s)", why);
    cpu_request_stop(c, VMXSIM_STOP_TRIPLE_FAULT, 0, msg);
}

void cpu_report_state(struct cpu *c, FILE *out)
{
    static const struct {
        const char *name;
        int reg;
    } gprs[] = {
        {"rax", UC_X86_REG_RAX}, {"rbx", UC_X86_REG_RBX}, {"rcx", UC_X86_REG_RCX},
        {"rdx", UC_X86_REG_RDX}, {"rsi", UC_X86_REG_RSI}, {"rdi", UC_X86_REG_RDI},
        {"rbp", UC_X86_REG_RBP}, {"rsp", UC_X86_REG_RSP}, {"r8", UC_X86_REG_R8},
        {"r9", UC_X86_REG_R9},   {"r10", UC_X86_REG_R10}, {"r11", UC_X86_REG_R11},
        {"r12", UC_X86_REG_R12}, {"r13", UC_X86_REG_R13}, {"r14", UC_X86_REG_R14},
        {"r15", UC_X86_REG_R15}, {"rip", UC_X86_REG_RIP}, {"rflags", UC_X86_REG_RFLAGS},
    };
    static const char *segn[X86_SEG_COUNT] = {"es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"};
    for (size_t i = 0; i < sizeof gprs / sizeof gprs[0]; i++)
        fprintf(out, "  %-6s %016llx%s", gprs[i].name, (unsigned long long)cpu_reg(c, gprs[i].reg),
                i % 3 == 2 ? "\n" : "");
    fprintf(out, "  cr0    %016llx  cr2    %016llx  cr3    %016llx\n", (unsigned long long)c->cr0,
            (unsigned long long)c->cr2, (unsigned long long)c->cr3);
    fprintf(out, "  cr4    %016llx  efer   %016llx  cpl    %u\n", (unsigned long long)c->cr4,
            (unsigned long long)c->efer, cpu_cpl(c));
    for (int s = 0; s < X86_SEG_COUNT; s++) {
        struct x86_seg_state st;
        cpu_get_seg(c, (enum x86_seg)s, &st);
        fprintf(out, "  %-4s sel %04x base %016llx limit %08x ar %05x\n", segn[s], st.selector,
                (unsigned long long)st.base, st.limit, st.ar);
    }
    uc_x86_mmr gdt, idt;
    uc_reg_read(c->uc, UC_X86_REG_GDTR, &gdt);
    uc_reg_read(c->uc, UC_X86_REG_IDTR, &idt);
    fprintf(out, "  gdtr %016llx/%04x  idtr %016llx/%04x\n", (unsigned long long)gdt.base, gdt.limit,
            (unsigned long long)idt.base, idt.limit);
}

/*
 * LTR — SDM Vol. 2A: #GP(0) at CPL > 0 (the caller) or for a null selector;
 * #GP(selector) for a selector in the LDT, beyond the GDT limit, or not an
 * available TSS (IA-32e mode: only the 64-bit TSS type 9; legacy: 1 or 9)
 * or a non-canonical 64-bit base; #NP(selector) when not present. The
 * descriptor is marked busy in the GDT and TR loaded with the busy type.
 */
bool cpu_load_tr(struct cpu *c, uint16_t sel, struct x86_fault *f)
{
    uint64_t d[2] = {0, 0};
    uc_x86_mmr gdt;
    bool lm = cpu_long_mode(c);
    uint32_t err = sel & 0xFFFCu;
    if (!err)
        return NESTED(f, X86_GP, 0);
    if (X86_SEL_TI(sel))
        return NESTED(f, X86_GP, err);
    uc_reg_read(c->uc, UC_X86_REG_GDTR, &gdt);
    uint64_t off = (uint64_t)X86_SEL_INDEX(sel) * 8, size = lm ? 16 : 8;
    if (off + size - 1 > gdt.limit)
        return NESTED(f, X86_GP, err);
    if (!cpu_lin_read(c, gdt.base + off, d, size, PAGING_ACC_IMPLICIT, f))
        return false;
    struct x86_seg_state tr;
    cpu_decode_desc(d[0], sel, &tr);
    unsigned type = tr.ar & 0x1Fu; /* with S */
    if (!(type == X86_SYS_TSS_AVAIL || (!lm && type == X86_SYS_TSS16_AVAIL)))
        return NESTED(f, X86_GP, err);
    if (!(tr.ar & X86_AR_P))
        return NESTED(f, X86_NP, err);
    if (lm) {
        tr.base |= (d[1] & 0xFFFFFFFFull) << 32;
        if (!x86_is_canonical(tr.base, lin_width(c)))
            return NESTED(f, X86_GP, err);
    }
    uint8_t busy = (uint8_t)((d[0] >> 40) | 0x2);
    if (!cpu_lin_write(c, gdt.base + off + 5, &busy, 1, PAGING_ACC_IMPLICIT, f))
        return false;
    tr.ar |= 0x2u;
    struct x86_seg_state segs[X86_SEG_COUNT];
    segs[X86_SEG_TR] = tr;
    cpu_set_segs(c, segs, 1u << X86_SEG_TR);
    return true;
}
