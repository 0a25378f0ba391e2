/*
 * Emulation of sensitive instructions: those Unicorn would run natively
 * with QEMU's semantics instead of ours, or that must be able to cause a
 * VM exit. The run loop calls here with RIP at the instruction; on success
 * RIP moves past it, on a fault the fault is delivered and RIP stays.
 * Each instruction cites its SDM Vol. 2 page; privilege checks come first
 * (#UD before #GP where the SDM orders them so).
 */
#include <string.h>

#include "cpu/operand.h"
#include "cpu/vmx_glue.h"

#define FAULT(v, e) ((struct x86_fault){.vector = (v), .has_error = true, .error_code = (e)})
#define UD ((struct x86_fault){.vector = X86_UD})

/* WRPKRU is 0F 01 EF (SDM Vol. 2B); Capstone 4 does not decode it. */
unsigned cpu_raw_sensitive(const uint8_t *code, size_t len)
{
    if (len >= 3 && code[0] == 0x0F && code[1] == 0x01 && code[2] == 0xEF)
        return 3;
    return 0;
}

bool cpu_is_vmx_insn(const cs_insn *insn)
{
    switch (insn->id) {
    case X86_INS_VMXON: case X86_INS_VMXOFF: case X86_INS_VMCLEAR: case X86_INS_VMPTRLD:
    case X86_INS_VMPTRST: case X86_INS_VMREAD: case X86_INS_VMWRITE: case X86_INS_VMLAUNCH:
    case X86_INS_VMRESUME: case X86_INS_INVEPT: case X86_INS_INVVPID: case X86_INS_VMCALL:
    case X86_INS_VMFUNC:
        return true;
    default:
        return false;
    }
}

bool cpu_is_sensitive(const cs_insn *insn)
{
    switch (insn->id) {
    case X86_INS_CPUID:
    case X86_INS_RDMSR:
    case X86_INS_WRMSR:
    case X86_INS_RDTSC:
    case X86_INS_RDTSCP:
    case X86_INS_HLT:
    case X86_INS_IN:
    case X86_INS_OUT:
    case X86_INS_INSB:
    case X86_INS_INSW:
    case X86_INS_INSD:
    case X86_INS_OUTSB:
    case X86_INS_OUTSW:
    case X86_INS_OUTSD:
    case X86_INS_CLTS:
    case X86_INS_LMSW:
    case X86_INS_INVLPG:
    case X86_INS_WBINVD:
    case X86_INS_INVD:
    case X86_INS_XSETBV:
    case X86_INS_MONITOR:
    case X86_INS_MWAIT:
    case X86_INS_PAUSE:
    case X86_INS_RDPMC:
    case X86_INS_RDRAND:
    case X86_INS_RDSEED:
    case X86_INS_LGDT:
    case X86_INS_LIDT:
    case X86_INS_SGDT:
    case X86_INS_SIDT:
    case X86_INS_LLDT:
    case X86_INS_LTR:
    case X86_INS_SLDT:
    case X86_INS_STR:
    case X86_INS_IRET:
    case X86_INS_IRETD:
    case X86_INS_IRETQ:
    case X86_INS_LJMP: /* a task switch in non-root operation is a VM exit (task.c) */
    case X86_INS_LCALL:
        return true;
    case X86_INS_MOV: {
        const cs_x86 *x = &insn->detail->x86;
        for (int i = 0; i < x->op_count; i++) {
            x86_reg r = x->operands[i].reg;
            if (x->operands[i].type == X86_OP_REG &&
                ((r >= X86_REG_CR0 && r <= X86_REG_CR15) || (r >= X86_REG_DR0 && r <= X86_REG_DR15)))
                return true;
        }
        return false;
    }
    default:
        return false;
    }
}

static void advance(struct cpu *c, const cs_insn *insn)
{
    uint64_t rip = insn->address + insn->size;
    if (cpu_code_bits(c) != 64)
        rip &= 0xFFFFFFFFull;
    cpu_set_reg(c, UC_X86_REG_RIP, rip);
    c->insns++;
    c->cycles += 1;
}

static void set_edx_eax(struct cpu *c, uint64_t v)
{
    cpu_set_reg(c, UC_X86_REG_RAX, (uint32_t)v);
    cpu_set_reg(c, UC_X86_REG_RDX, (uint32_t)(v >> 32));
}

/* CPUID — SDM Vol. 2A: EAX/EBX/ECX/EDX from the model for leaf EAX, subleaf ECX. */
void cpu_cpuid(struct cpu *c)
{
    uint32_t out[4];
    model_cpuid(&c->model, (uint32_t)cpu_reg(c, UC_X86_REG_RAX), (uint32_t)cpu_reg(c, UC_X86_REG_RCX),
                c->cr4, 0, out);
    cpu_set_reg(c, UC_X86_REG_RAX, out[0]);
    cpu_set_reg(c, UC_X86_REG_RBX, out[1]);
    cpu_set_reg(c, UC_X86_REG_RCX, out[2]);
    cpu_set_reg(c, UC_X86_REG_RDX, out[3]);
}

static bool do_cpuid(struct cpu *c, struct x86_fault *f)
{
    (void)f;
    cpu_cpuid(c);
    return true;
}

/* RDMSR / WRMSR — SDM Vol. 2B: CPL > 0, unknown index or reserved bits → #GP(0). */
/*
 * "Virtualize IA32_SPEC_CTRL" (SDM Vol. 3C §26.3; vmx/spec_ctrl.c): a guest
 * RDMSR/WRMSR of 48H that the MSR bitmap let through (nonroot_exit ran
 * first) reads/writes the shadow; WRMSR merges the mask into the real MSR.
 * Only the instructions: MSR-load/store areas use cpu_rdmsr/cpu_wrmsr.
 */
static bool spec_ctrl_virtualized(struct cpu *c, uint32_t idx)
{
    return idx == MSR_IA32_SPEC_CTRL && c->vmx.non_root && msr_exists(&c->msrs, idx) &&
           vmx_spec_ctrl_virtualized(&c->vmx, cpu_vmx_ops(c));
}

static bool do_rdmsr(struct cpu *c, struct x86_fault *f)
{
    uint32_t idx = (uint32_t)cpu_reg(c, UC_X86_REG_RCX);
    uint64_t v;
    if (cpu_cpl(c) == 0 && spec_ctrl_virtualized(c, idx)) {
        set_edx_eax(c, vmx_spec_ctrl_rdmsr(&c->vmx, cpu_vmx_ops(c)));
        return true;
    }
    if (cpu_cpl(c) != 0 || !cpu_rdmsr(c, idx, &v)) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    set_edx_eax(c, v);
    return true;
}

static bool do_wrmsr(struct cpu *c, struct x86_fault *f)
{
    uint32_t idx = (uint32_t)cpu_reg(c, UC_X86_REG_RCX);
    uint64_t v = (cpu_reg(c, UC_X86_REG_RDX) << 32) | (uint32_t)cpu_reg(c, UC_X86_REG_RAX);
    if (cpu_cpl(c) == 0 && spec_ctrl_virtualized(c, idx)) {
        uint64_t checked = v, real;
        if (msr_check_write(&c->msrs, idx, &checked) != MSR_OK) {
            *f = FAULT(X86_GP, 0);
            return false;
        }
        vmx_spec_ctrl_wrmsr(&c->vmx, cpu_vmx_ops(c), msr_get_raw(&c->msrs, MSR_ID_IA32_SPEC_CTRL), v, &real);
        msr_set_raw(&c->msrs, MSR_ID_IA32_SPEC_CTRL, real);
        return true;
    }
    if (cpu_cpl(c) != 0 || !cpu_wrmsr(c, idx, v)) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    return true;
}

/* RDTSC / RDTSCP — SDM Vol. 2B: CR4.TSD and CPL > 0 → #GP(0). */
static bool do_rdtsc(struct cpu *c, const cs_insn *insn, struct x86_fault *f)
{
    uint64_t tsc;
    if ((c->cr4 & X86_CR4_TSD) && cpu_cpl(c) != 0) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    if (insn->id == X86_INS_RDTSCP && !model_has(&c->model, FEAT_RDTSCP)) {
        *f = UD;
        return false;
    }
    (void)cpu_rdmsr(c, MSR_IA32_TSC, &tsc);
    set_edx_eax(c, tsc);
    if (insn->id == X86_INS_RDTSCP && c->vmx.non_root && !vmx_rdtscp_enabled(&c->vmx, cpu_vmx_ops(c))) {
        *f = UD;
        return false;
    }
    if (insn->id == X86_INS_RDTSCP)
        cpu_set_reg(c, UC_X86_REG_RCX, (uint32_t)msr_get_raw(&c->msrs, MSR_ID_TSC_AUX));
    return true;
}

/*
 * HLT — SDM Vol. 2A: CPL > 0 → #GP(0). With nothing that could ever wake
 * the processor (no interrupt source yet), the machine stops with a report.
 */
static bool do_hlt(struct cpu *c, struct x86_fault *f)
{
    if (cpu_cpl(c) != 0) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    bool intr = (cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_IF) != 0;
    advance(c, c->cur_insn);
    c->rip_written = true;
    cpu_clear_inhibit(c);
    c->activity = GUEST_ACTIVITY_HLT;
    if (cpu_events_wait(c))
        return true;
    cpu_request_stop(c, VMXSIM_STOP_HALT, 0,
                     intr ? "HLT with no interrupt source pending"
                          : "HLT with interrupts disabled");
    return true;
}

/*
 * I/O permission — SDM Vol. 1 §19.5: in protected mode with CPL > IOPL (or
 * in virtual-8086 mode) every port byte must be clear in the TSS I/O bitmap.
 */
static bool io_allowed(struct cpu *c, uint16_t port, unsigned size)
{
    uint64_t fl = cpu_reg(c, UC_X86_REG_RFLAGS);
    if (!(c->cr0 & X86_CR0_PE))
        return true;
    if (!(fl & X86_RFLAGS_VM) && cpu_cpl(c) <= ((fl & X86_RFLAGS_IOPL) >> 12))
        return true;
    struct x86_seg_state tr;
    struct x86_fault f;
    uint16_t base, bits;
    cpu_get_seg(c, X86_SEG_TR, &tr);
    if ((tr.ar & X86_AR_TYPE_MASK) != X86_SYS_TSS_BUSY || tr.limit < 103)
        return false;
    if (!cpu_lin_read(c, tr.base + 102, &base, 2, PAGING_ACC_IMPLICIT, &f))
        return false;
    uint64_t off = (uint64_t)base + port / 8;
    if (off + 1 > tr.limit)
        return false;
    if (!cpu_lin_read(c, tr.base + off, &bits, 2, PAGING_ACC_IMPLICIT, &f))
        return false;
    return ((bits >> (port & 7)) & ((1u << size) - 1)) == 0;
}

/*
 * INS/OUTS operand size from the encoding itself: 6C/6E are byte forms;
 * 6D/6F are word with a 66 prefix (anywhere among the prefixes), else dword
 * (16-bit code: the reverse). Capstone 4 decodes 66 F3 6D as INSD.
 */
static unsigned string_io_size(const cs_insn *insn, unsigned code_bits)
{
    bool opsize = false;
    unsigned i = 0;
    for (; i < insn->size; i++) {
        uint8_t b = insn->bytes[i];
        if (b == 0x66)
            opsize = true;
        else if (!(b == 0xF3 || b == 0xF2 || b == 0x67 || b == 0x26 || b == 0x2E || b == 0x36 ||
                   b == 0x3E || b == 0x64 || b == 0x65 || (code_bits == 64 && (b & 0xF0) == 0x40)))
            break;
    }
    if (i >= insn->size || insn->bytes[i] == 0x6C || insn->bytes[i] == 0x6E)
        return 1;
    return (opsize != (code_bits == 16)) ? 2 : 4;
}

static unsigned io_size_bits(const cs_insn *insn, unsigned code_bits)
{
    switch (insn->id) {
    case X86_INS_INSB: case X86_INS_OUTSB: case X86_INS_INSW: case X86_INS_OUTSW:
    case X86_INS_INSD: case X86_INS_OUTSD:
        return string_io_size(insn, code_bits);
    default:
        break;
    }
    /* IN/OUT: the size of the accumulator operand. */
    const cs_x86 *x = &insn->detail->x86;
    for (int i = 0; i < x->op_count; i++) {
        x86_reg r = x->operands[i].reg;
        if (x->operands[i].type != X86_OP_REG)
            continue;
        if (r == X86_REG_AL)
            return 1;
        if (r == X86_REG_AX)
            return 2;
        if (r == X86_REG_EAX)
            return 4;
    }
    return 1;
}

static unsigned io_size_of(struct cpu *c, const cs_insn *insn) { return io_size_bits(insn, cpu_code_bits(c)); }

static uint16_t io_port(struct cpu *c, const cs_insn *insn)
{
    const cs_x86 *x = &insn->detail->x86;
    for (int i = 0; i < x->op_count; i++)
        if (x->operands[i].type == X86_OP_IMM)
            return (uint16_t)x->operands[i].imm;
    return (uint16_t)cpu_reg(c, UC_X86_REG_RDX);
}

/* IN / OUT — SDM Vol. 2A/2B. */
static bool do_inout(struct cpu *c, const cs_insn *insn, struct x86_fault *f)
{
    unsigned size = io_size_of(c, insn);
    uint16_t port = io_port(c, insn);
    if (!io_allowed(c, port, size)) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    if (insn->id == X86_INS_OUT) {
        uint64_t v = cpu_reg(c, UC_X86_REG_RAX);
        c->io.out(c->io.ctx, port, size, (uint32_t)(v & (size == 4 ? 0xFFFFFFFFu : (1u << (size * 8)) - 1)));
        return true;
    }
    uint32_t v = c->io.in(c->io.ctx, port, size);
    op_write_gpr(c, size == 1 ? X86_REG_AL : size == 2 ? X86_REG_AX : X86_REG_EAX, v);
    return true;
}

/* Segment of a string I/O memory operand: DS (overridable) for OUTS, ES for INS. */
static enum x86_seg string_io_seg(const cs_insn *insn, bool out)
{
    const cs_x86 *x = &insn->detail->x86;
    x86_reg sreg = out && x->operands[1].type == X86_OP_MEM ? x->operands[1].mem.segment : X86_REG_INVALID;
    if (!out)
        return X86_SEG_ES;
    switch (sreg) {
    case X86_REG_FS: return X86_SEG_FS;
    case X86_REG_GS: return X86_SEG_GS;
    case X86_REG_ES: return X86_SEG_ES;
    case X86_REG_SS: return X86_SEG_SS;
    case X86_REG_CS: return X86_SEG_CS;
    default: return X86_SEG_DS;
    }
}

/* Linear address of the next string I/O element (the VM-exit guest-linear address, §28.2.1). */
static uint64_t string_io_linear(struct cpu *c, const cs_insn *insn, bool out)
{
    unsigned asz = insn->detail->x86.addr_size;
    uint64_t amask = asz == 8 ? ~0ull : asz == 4 ? 0xFFFFFFFFull : 0xFFFF;
    struct x86_seg_state seg;
    enum x86_seg which = string_io_seg(insn, out);
    cpu_get_seg(c, which, &seg);
    bool lm = cpu_code_bits(c) == 64;
    uint64_t base = (lm && which != X86_SEG_FS && which != X86_SEG_GS) ? 0 : seg.base;
    return base + (cpu_reg(c, out ? UC_X86_REG_RSI : UC_X86_REG_RDI) & amask);
}

/* INS / OUTS with optional REP — SDM Vol. 2A "INS", Vol. 2B "OUTS". */
static bool do_string_io(struct cpu *c, const cs_insn *insn, struct x86_fault *f)
{
    const cs_x86 *x = &insn->detail->x86;
    unsigned size = io_size_of(c, insn), asz = x->addr_size;
    bool out = insn->id == X86_INS_OUTSB || insn->id == X86_INS_OUTSW || insn->id == X86_INS_OUTSD;
    bool rep = x->prefix[0] == X86_PREFIX_REP;
    uint16_t port = (uint16_t)cpu_reg(c, UC_X86_REG_RDX);
    uint64_t amask = asz == 8 ? ~0ull : asz == 4 ? 0xFFFFFFFFull : 0xFFFF;
    int ireg = out ? UC_X86_REG_RSI : UC_X86_REG_RDI;
    int64_t step = (cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_DF) ? -(int64_t)size : (int64_t)size;
    unsigned acc = cpu_cpl(c) == 3 ? PAGING_ACC_USER : 0;
    bool lm = cpu_code_bits(c) == 64;
    if (!io_allowed(c, port, size)) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    /* Source DS (overridable) for OUTS, ES for INS; in 64-bit mode only FS/GS have bases. */
    enum x86_seg which = string_io_seg(insn, out);
    struct x86_seg_state seg;
    cpu_get_seg(c, which, &seg);
    uint64_t sbase = (lm && which != X86_SEG_FS && which != X86_SEG_GS) ? 0 : seg.base;
    for (;;) {
        uint64_t cnt = cpu_reg(c, UC_X86_REG_RCX) & amask;
        if (rep && cnt == 0)
            return true;
        uint64_t idx = cpu_reg(c, ireg), la = sbase + (idx & amask);
        uint32_t v = 0;
        if (out) {
            if (!cpu_lin_read(c, la, &v, size, acc, f))
                return false;
            c->io.out(c->io.ctx, port, size, v);
        } else {
            v = c->io.in(c->io.ctx, port, size);
            if (!cpu_lin_write(c, la, &v, size, acc, f))
                return false;
        }
        cpu_set_reg(c, ireg, (idx & ~amask) | ((idx + (uint64_t)step) & amask));
        if (!rep)
            return true;
        cpu_set_reg(c, UC_X86_REG_RCX, (cpu_reg(c, UC_X86_REG_RCX) & ~amask) | ((cnt - 1) & amask));
    }
}

/* MOV to/from CRn — SDM Vol. 2B: CPL > 0 → #GP(0); invalid CR → #UD. */
static bool do_mov_cr(struct cpu *c, const cs_insn *insn, struct x86_fault *f)
{
    const cs_x86 *x = &insn->detail->x86;
    x86_reg dst = x->operands[0].reg, src = x->operands[1].reg;
    bool to_cr = dst >= X86_REG_CR0 && dst <= X86_REG_CR15;
    int cr = (int)((to_cr ? dst : src) - X86_REG_CR0);
    if (cr != 0 && cr != 2 && cr != 3 && cr != 4 && cr != 8) {
        *f = UD;
        return false;
    }
    if (cpu_cpl(c) != 0) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    if (!to_cr) {
        uint64_t v = cpu_read_cr(c, cr);
        if (c->vmx.non_root && (cr == 0 || cr == 4))
            v = vmx_guest_cr_read(&c->vmx, cpu_vmx_ops(c), cr, v);
        op_write_gpr(c, dst, v);
        return true;
    }
    uint64_t v = op_read_gpr(c, src);
    if (c->vmx.non_root && (cr == 0 || cr == 4))
        v = vmx_guest_cr_write(&c->vmx, cpu_vmx_ops(c), cr, cpu_read_cr(c, cr), v);
    return cpu_write_cr(c, cr, v, f);
}

/* MOV to/from DRn: executed natively after the CPL check (no VM exit yet). */
static bool do_mov_dr(struct cpu *c, struct x86_fault *f)
{
    if (cpu_cpl(c) != 0) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    c->native_once = cpu_rip_linear(c) + 1;
    return true;
}

/* CLTS — SDM Vol. 2A. */
static bool do_clts(struct cpu *c, struct x86_fault *f)
{
    if (cpu_cpl(c) != 0) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    uint64_t v = c->cr0 & ~X86_CR0_TS;
    if (c->vmx.non_root)
        v = vmx_guest_cr_write(&c->vmx, cpu_vmx_ops(c), 0, c->cr0, v);
    return cpu_write_cr(c, 0, v, f);
}

/* LMSW — SDM Vol. 2A: loads CR0[3:0]; cannot clear PE. */
static bool do_lmsw(struct cpu *c, const cs_insn *insn, struct x86_fault *f)
{
    const cs_x86_op *op = &insn->detail->x86.operands[0];
    uint16_t v;
    if (cpu_cpl(c) != 0) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    if (op->type == X86_OP_MEM) {
        if (!cpu_lin_read(c, op_mem_la(c, insn, op), &v, 2, 0, f))
            return false;
    } else {
        v = (uint16_t)op_read_gpr(c, op->reg);
    }
    uint64_t cr0 = (c->cr0 & ~0xEull) | (v & 0xEu) | (c->cr0 & X86_CR0_PE) | (v & 1u);
    if (c->vmx.non_root)
        cr0 = vmx_guest_cr_write(&c->vmx, cpu_vmx_ops(c), 0, c->cr0, cr0);
    return cpu_write_cr(c, 0, cr0, f);
}

/* INVLPG — SDM Vol. 2A: CPL > 0 → #GP(0); a non-canonical address is a no-op. */
static bool do_invlpg(struct cpu *c, const cs_insn *insn, struct x86_fault *f)
{
    if (cpu_cpl(c) != 0) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    struct tlb_ctx ctx = cpu_tlb_ctx(c);
    uint64_t la = op_mem_la(c, insn, op_first_mem(insn));
    unsigned width = cpu_code_bits(c) != 64 ? 32 : (c->cr4 & X86_CR4_LA57) ? 57 : 48;
    if (width == 32 || x86_is_canonical(la, width))
        tlb_invlpg(c->tlb, &ctx, width == 32 ? (uint32_t)la : la);
    cpu_flush_tlb(c);
    return true;
}

/* Privileged instructions that are harmless no-ops here (WBINVD, INVD). */
static bool do_priv_nop(struct cpu *c, struct x86_fault *f)
{
    if (cpu_cpl(c) != 0) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    return true;
}

/* WRPKRU — SDM Vol. 2B: CR4.PKE = 0 → #UD; ECX or EDX ≠ 0 → #GP(0). */
static bool do_wrpkru(struct cpu *c, struct x86_fault *f)
{
    if (!(c->cr4 & X86_CR4_PKE)) {
        *f = UD;
        return false;
    }
    if ((uint32_t)cpu_reg(c, UC_X86_REG_RCX) || (uint32_t)cpu_reg(c, UC_X86_REG_RDX)) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    c->pkru = (uint32_t)cpu_reg(c, UC_X86_REG_RAX);
    cpu_flush_tlb(c);
    c->native_once = cpu_rip_linear(c) + 1; /* QEMU keeps its copy for RDPKRU */
    return true;
}

/*
 * RDPMC — SDM Vol. 2B: CPL > 0 with CR4.PCE = 0 → #GP(0); the model has no
 * performance counters (CPUID.0AH is zero), so every counter index is
 * invalid → #GP(0).
 */
static bool do_rdpmc(struct cpu *c, struct x86_fault *f)
{
    (void)c;
    *f = FAULT(X86_GP, 0);
    return false;
}

/*
 * MONITOR / MWAIT — SDM Vol. 2B: #UD without CPUID.01H:ECX.MONITOR or at
 * CPL > 0; ECX must be 0 for MONITOR (no extensions) and ECX[31:1] 0 for
 * MWAIT. The monitored range is not modelled: MWAIT returns at once, which
 * the SDM allows ("may wake up for any reason").
 */
static bool do_monitor_mwait(struct cpu *c, const cs_insn *insn, struct x86_fault *f)
{
    uint32_t ecx = (uint32_t)cpu_reg(c, UC_X86_REG_RCX);
    if (!model_has(&c->model, FEAT_MONITOR) || cpu_cpl(c) != 0) {
        *f = UD;
        return false;
    }
    if (insn->id == X86_INS_MONITOR ? ecx != 0 : (ecx >> 1) != 0) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    return true;
}

/*
 * IRET ends blocking by NMI (SDM Vol. 3A §6.7.1) — and, in non-root
 * operation with "virtual NMIs", virtual-NMI blocking (Vol. 3C §26.3). QEMU
 * then executes the IRET itself.
 */
static bool do_iret(struct cpu *c)
{
    if (c->vmx.non_root && c->vnmi_on)
        c->vnmi_blocked = false;  /* the guest's IRET ends virtual-NMI blocking only */
    else if (!(c->vmx.non_root && c->nmi_exiting))
        c->nmi_blocked = false;   /* with NMI exiting, blocking lasts while in the guest */
    c->native_once = cpu_rip_linear(c) + 1;
    c->next_event = c->cycles + 1; /* a held NMI or an NMI window may open after it */
    return true;
}

/* LTR (SDM Vol. 2A): QEMU leaves TR's type "available"; the core loads it busy. */
static bool do_ltr(struct cpu *c, const cs_insn *insn, struct x86_fault *f)
{
    const cs_x86_op *op = &insn->detail->x86.operands[0];
    uint16_t sel;
    if (!(c->cr0 & X86_CR0_PE) || (cpu_reg(c, UC_X86_REG_RFLAGS) & X86_RFLAGS_VM)) {
        *f = UD;
        return false;
    }
    if (cpu_cpl(c) != 0) {
        *f = FAULT(X86_GP, 0);
        return false;
    }
    if (op->type == X86_OP_MEM) {
        if (!cpu_lin_read(c, op_mem_la(c, insn, op), &sel, 2, 0, f))
            return false;
    } else {
        sel = (uint16_t)op_read_gpr(c, op->reg);
    }
    return cpu_load_tr(c, sel, f);
}

/* Instructions QEMU executes correctly in root operation: run them natively once. */
static bool do_native(struct cpu *c, struct x86_fault *f)
{
    (void)f;
    c->native_once = cpu_rip_linear(c) + 1;
    return true;
}

static bool dispatch(struct cpu *c, const cs_insn *insn, struct x86_fault *f)
{
    switch (insn->id) {
    case X86_INS_CPUID: return do_cpuid(c, f);
    case X86_INS_RDMSR: return do_rdmsr(c, f);
    case X86_INS_WRMSR: return do_wrmsr(c, f);
    case X86_INS_RDTSC:
    case X86_INS_RDTSCP: return do_rdtsc(c, insn, f);
    case X86_INS_HLT: return do_hlt(c, f);
    case X86_INS_IN:
    case X86_INS_OUT: return do_inout(c, insn, f);
    case X86_INS_INSB:
    case X86_INS_INSW:
    case X86_INS_INSD:
    case X86_INS_OUTSB:
    case X86_INS_OUTSW:
    case X86_INS_OUTSD: return do_string_io(c, insn, f);
    case X86_INS_CLTS: return do_clts(c, f);
    case X86_INS_LMSW: return do_lmsw(c, insn, f);
    case X86_INS_INVLPG: return do_invlpg(c, insn, f);
    case X86_INS_WBINVD:
    case X86_INS_INVD: return do_priv_nop(c, f);
    case X86_INS_RDPMC: return do_rdpmc(c, f);
    case X86_INS_LTR: return do_ltr(c, insn, f);
    case X86_INS_IRET:
    case X86_INS_IRETD:
    case X86_INS_IRETQ: return do_iret(c);
    case X86_INS_MONITOR:
    case X86_INS_MWAIT: return do_monitor_mwait(c, insn, f);
    case X86_INS_MOV: {
        const cs_x86 *x = &insn->detail->x86;
        x86_reg r = x->operands[0].reg == X86_REG_INVALID ? x->operands[1].reg : x->operands[0].reg;
        bool dr = (x->operands[0].reg >= X86_REG_DR0 && x->operands[0].reg <= X86_REG_DR15) ||
                  (x->operands[1].reg >= X86_REG_DR0 && x->operands[1].reg <= X86_REG_DR15);
        (void)r;
        return dr ? do_mov_dr(c, f) : do_mov_cr(c, insn, f);
    }
    default: return do_native(c, f);
    }
}

/* --- VMX non-root operation: does the instruction exit? (SDM §26.1) ---- */

static bool privileged(unsigned id)
{
    switch (id) {
    case X86_INS_RDMSR: case X86_INS_WRMSR: case X86_INS_HLT: case X86_INS_CLTS:
    case X86_INS_LMSW: case X86_INS_INVLPG: case X86_INS_WBINVD: case X86_INS_INVD:
    case X86_INS_MOV: case X86_INS_LGDT: case X86_INS_LIDT: case X86_INS_LLDT: case X86_INS_LTR:
    case X86_INS_XSETBV:
        return true;
    default:
        return false;
    }
}

static void mov_cr_event(struct cpu *c, const cs_insn *insn, struct vmx_event *ev)
{
    const cs_x86 *x = &insn->detail->x86;
    x86_reg dst = x->operands[0].reg, src = x->operands[1].reg;
    bool dr = (dst >= X86_REG_DR0 && dst <= X86_REG_DR15) || (src >= X86_REG_DR0 && src <= X86_REG_DR15);
    if (dr) {
        ev->kind = VMX_EV_MOV_DR;
        ev->dr_read = src >= X86_REG_DR0 && src <= X86_REG_DR15;
        ev->dr = (int)((ev->dr_read ? src : dst) - X86_REG_DR0);
        ev->gpr = op_sdm_gpr(ev->dr_read ? dst : src);
        return;
    }
    bool to = dst >= X86_REG_CR0 && dst <= X86_REG_CR15;
    ev->kind = to ? VMX_EV_MOV_TO_CR : VMX_EV_MOV_FROM_CR;
    ev->cr = (int)((to ? dst : src) - X86_REG_CR0);
    ev->gpr = op_sdm_gpr(to ? src : dst);
    if (to)
        ev->value = op_read_gpr(c, src);
}

static void io_event(struct cpu *c, const cs_insn *insn, struct vmx_event *ev)
{
    const cs_x86 *x = &insn->detail->x86;
    ev->kind = VMX_EV_IO;
    ev->size = io_size_of(c, insn);
    ev->port = io_port(c, insn);
    ev->in = insn->id == X86_INS_IN || insn->id == X86_INS_INSB || insn->id == X86_INS_INSW ||
             insn->id == X86_INS_INSD;
    ev->string = insn->id != X86_INS_IN && insn->id != X86_INS_OUT;
    ev->rep = ev->string && x->prefix[0] == X86_PREFIX_REP;
    for (int i = 0; i < x->op_count; i++)
        ev->imm |= x->operands[i].type == X86_OP_IMM;
    if (ev->string)
        ev->linear = string_io_linear(c, insn, !ev->in);
}

/* The event for a sensitive instruction; false when it never exits. */
static bool insn_event(struct cpu *c, const cs_insn *insn, struct vmx_event *ev)
{
    memset(ev, 0, sizeof *ev);
    switch (insn->id) {
    case X86_INS_CPUID: ev->kind = VMX_EV_CPUID; return true;
    case X86_INS_INVD: ev->kind = VMX_EV_INVD; return true;
    case X86_INS_XSETBV: ev->kind = VMX_EV_XSETBV; return true;
    case X86_INS_HLT: ev->kind = VMX_EV_HLT; return true;
    case X86_INS_RDPMC: ev->kind = VMX_EV_RDPMC; return true;
    case X86_INS_RDTSC: ev->kind = VMX_EV_RDTSC; return true;
    case X86_INS_RDTSCP: ev->kind = VMX_EV_RDTSCP; return true;
    case X86_INS_MWAIT: ev->kind = VMX_EV_MWAIT; return true;
    case X86_INS_MONITOR: ev->kind = VMX_EV_MONITOR; return true;
    case X86_INS_PAUSE: ev->kind = VMX_EV_PAUSE; return true;
    case X86_INS_WBINVD: ev->kind = VMX_EV_WBINVD; return true;
    case X86_INS_RDRAND: ev->kind = VMX_EV_RDRAND; return true;
    case X86_INS_RDSEED: ev->kind = VMX_EV_RDSEED; return true;
    case X86_INS_CLTS: ev->kind = VMX_EV_CLTS; return true;
    case X86_INS_RDMSR:
    case X86_INS_WRMSR:
        ev->kind = insn->id == X86_INS_RDMSR ? VMX_EV_RDMSR : VMX_EV_WRMSR;
        ev->msr = (uint32_t)cpu_reg(c, UC_X86_REG_RCX);
        return true;
    case X86_INS_INVLPG:
        ev->kind = VMX_EV_INVLPG;
        ev->value = op_mem_la(c, insn, op_first_mem(insn));
        return true;
    case X86_INS_LMSW: {
        const cs_x86_op *op = &insn->detail->x86.operands[0];
        struct x86_fault f;
        uint16_t v = 0;
        ev->kind = VMX_EV_LMSW;
        ev->mem_operand = op->type == X86_OP_MEM;
        if (ev->mem_operand) {
            ev->linear = op_mem_la(c, insn, op);
            if (!cpu_lin_read(c, ev->linear, &v, 2, 0, &f))
                v = 0; /* the emulation path raises the fault if there is no exit */
        } else {
            v = (uint16_t)op_read_gpr(c, op->reg);
        }
        ev->value = v;
        return true;
    }
    case X86_INS_LGDT: case X86_INS_LIDT: case X86_INS_SGDT: case X86_INS_SIDT:
        ev->kind = VMX_EV_DESC_GDTR_IDTR;
        return true;
    case X86_INS_LLDT: case X86_INS_LTR: case X86_INS_SLDT: case X86_INS_STR:
        ev->kind = VMX_EV_DESC_LDTR_TR;
        return true;
    case X86_INS_MOV: mov_cr_event(c, insn, ev); return true;
    case X86_INS_IN: case X86_INS_OUT: case X86_INS_INSB: case X86_INS_INSW: case X86_INS_INSD:
    case X86_INS_OUTSB: case X86_INS_OUTSW: case X86_INS_OUTSD:
        io_event(c, insn, ev);
        return true;
    default: return false;
    }
}

/*
 * Faults that take priority over VM exits (SDM §26.1.1): privilege-level
 * faults, #UD, and I/O-permission #GP. The normal emulation raises them.
 */
static bool fault_has_priority(struct cpu *c, const cs_insn *insn)
{
    unsigned cpl = cpu_cpl(c);
    if (privileged(insn->id) && cpl > 0)
        return true;
    if ((insn->id == X86_INS_RDTSC || insn->id == X86_INS_RDTSCP) && (c->cr4 & X86_CR4_TSD) && cpl > 0)
        return true;
    /* #UD outranks the exit: RDTSCP without "enable RDTSCP" (§26.3), XSETBV without CR4.OSXSAVE. */
    if (insn->id == X86_INS_RDTSCP && !vmx_rdtscp_enabled(&c->vmx, cpu_vmx_ops(c)))
        return true;
    if (insn->id == X86_INS_XSETBV && !(c->cr4 & X86_CR4_OSXSAVE))
        return true;
    if (insn->id == X86_INS_RDPMC && cpl > 0 && !(c->cr4 & X86_CR4_PCE))
        return true;
    if (insn->id == X86_INS_IN || insn->id == X86_INS_OUT || insn->id == X86_INS_INSB ||
        insn->id == X86_INS_INSW || insn->id == X86_INS_INSD || insn->id == X86_INS_OUTSB ||
        insn->id == X86_INS_OUTSW || insn->id == X86_INS_OUTSD)
        return !io_allowed(c, io_port(c, insn), io_size_of(c, insn));
    return false;
}

static bool nonroot_exit(struct cpu *c, const cs_insn *insn)
{
    struct vmx_event ev;
    if (fault_has_priority(c, insn) || !insn_event(c, insn, &ev))
        return false;
    return cpu_vmx_intercept(c, &ev, insn);
}

/* RIP is at a hooked instruction: emulate it (or let it run natively once). */
void cpu_emulate_sensitive(struct cpu *c)
{
    cs_insn *insn = NULL;
    struct x86_fault f = {0};
    uint64_t rip = cpu_reg(c, UC_X86_REG_RIP);
    uint64_t lin = cpu_cs_base(c) + rip; /* hooks compare linear addresses */
    if (!cpu_fetch_insn(c, rip, &insn, &f)) {
        cpu_raise(c, &f);
        return;
    }
    if (!insn) {
        uint8_t code[3];
        struct x86_fault ff;
        if (cpu_lin_read(c, lin, code, 3, PAGING_ACC_FETCH | PAGING_ACC_NO_AD, &ff) &&
            cpu_raw_sensitive(code, 3)) {
            if (!do_wrpkru(c, &f))
                cpu_raise(c, &f);
            return;
        }
    }
    /* Not sensitive: a checked instruction (#AC, POPF), or the code changed since. */
    if (!insn || !cpu_is_sensitive(insn)) {
        if (insn && !cpu_check_alignment(c, insn, &f)) {
            cpu_raise(c, &f);
            return;
        }
        if (insn && (insn->id == X86_INS_POPF || insn->id == X86_INS_POPFD || insn->id == X86_INS_POPFQ))
            c->next_event = c->cycles + 1; /* look at RFLAGS.AC again after it */
        c->native_once = lin + 1;
        return;
    }
    if (c->vmx.non_root) {
        bool exited = false;
        if (!cpu_task_insn(c, insn, &f, &exited)) {
            cpu_raise(c, &f);
            return;
        }
        if (exited || nonroot_exit(c, insn))
            return;
    }
    c->cur_insn = insn;
    c->rip_written = false;
    if (!dispatch(c, insn, &f))
        cpu_raise(c, &f);
    else if (c->native_once != lin + 1 && !c->rip_written)
        advance(c, insn);
    c->cur_insn = NULL;
}

/*
 * RIP is at an opcode QEMU does not implement (#UD). VMX instructions will be
 * dispatched to the VMX unit here; everything else is #UD.
 */
void cpu_emulate_invalid(struct cpu *c)
{
    struct x86_fault ud = UD, f = {0};
    cs_insn *insn = NULL;
    if (!cpu_fetch_insn(c, cpu_reg(c, UC_X86_REG_RIP), &insn, &f)) {
        cpu_raise(c, &f);
        return;
    }
    if (insn && insn->detail && cpu_is_vmx_insn(insn)) {
        cpu_vmx_instruction(c, insn);
        return;
    }
    if (insn && insn->detail && insn->id == X86_INS_INVPCID) {
        cpu_invpcid(c, insn);
        return;
    }
    cpu_raise(c, &ud);
}

/*
 * INVPCID — SDM Vol. 2A: #UD without the feature (or, in non-root
 * operation, without "enable INVPCID"); a VM exit (reason 58) when INVLPG
 * exiting is on; CPL > 0, type > 3, descriptor bits 63:12 set, a
 * non-canonical address (type 0) or a non-zero PCID with CR4.PCIDE = 0
 * (types 0, 1) → #GP(0). The invalidation itself flushes the TLB.
 */
void cpu_invpcid(struct cpu *c, const cs_insn *insn)
{
    const cs_x86 *x = &insn->detail->x86;
    struct x86_fault f = UD;
    uint64_t desc[2];
    bool enabled = model_has(&c->model, FEAT_INVPCID) &&
                   (!c->vmx.non_root || vmx_invpcid_enabled(&c->vmx, cpu_vmx_ops(c)));
    if (!enabled) {
        cpu_raise(c, &f);
        return;
    }
    if (cpu_cpl(c) != 0) {
        f = FAULT(X86_GP, 0);
        cpu_raise(c, &f);
        return;
    }
    if (c->vmx.non_root) {
        struct vmx_event ev = {.kind = VMX_EV_INVPCID};
        if (cpu_vmx_intercept(c, &ev, insn))
            return;
    }
    uint64_t type = op_read_gpr(c, x->operands[0].reg);
    if (!cpu_lin_read(c, op_mem_la(c, insn, &x->operands[1]), desc, 16, 0, &f)) {
        cpu_raise(c, &f);
        return;
    }
    uint64_t pcid = desc[0] & 0xFFF;
    unsigned width = (c->cr4 & X86_CR4_LA57) ? 57 : 48;
    if (type > 3 || (desc[0] >> 12) || (type == 0 && !x86_is_canonical(desc[1], width)) ||
        (type <= 1 && pcid && !(c->cr4 & X86_CR4_PCIDE))) {
        f = FAULT(X86_GP, 0);
        cpu_raise(c, &f);
        return;
    }
    struct tlb_ctx ctx = cpu_tlb_ctx(c);
    tlb_invpcid(c->tlb, &ctx, (enum tlb_invpcid_type)type, (uint16_t)pcid, desc[1]);
    cpu_flush_tlb(c);
    advance(c, insn);
}
