/*
 * The run loop (DESIGN §1, §2): start Unicorn at RIP, and when a hook stops
 * it, do what the stop asks (emulate a sensitive instruction, deliver an
 * exception, restart after hooking a new block), then start again. Units
 * never call back up into the loop: hooks only record a cause and stop.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/operand.h"
#include "cpu/vmx_glue.h"
#include "timing/timing.h"

#define NO_STOP_ADDR 0x8000000000000000ULL /* non-canonical: never executed */

static void on_intr(uc_engine *uc, uint32_t intno, void *ud)
{
    struct cpu *c = ud;
    if (c->invalid_pending && intno == X86_UD) {
        c->invalid_pending = false;
        return;
    }
    c->cause = CAUSE_EXCEPTION;
    c->intno = (int)intno;
    uc_emu_stop(uc);
}

static bool on_invalid(uc_engine *uc, void *ud)
{
    struct cpu *c = ud;
    c->invalid_pending = true; /* Unicorn reports the same #UD to INTR hooks next */
    if (cpu_vmx_fast(c))
        return true; /* emulated in place; Unicorn continues at the new RIP */
    c->cause = CAUSE_INVALID;
    uc_emu_stop(uc);
    return true;
}

/*
 * CPUID run natively (root operation, or no VMX): the model's answer instead
 * of QEMU's (SDM Vol. 2A CPUID; blocks.c lets it run only outside non-root).
 */
static int on_cpuid(uc_engine *uc, void *ud)
{
    (void)uc;
    cpu_cpuid(ud);
    return 1; /* skip QEMU's own CPUID */
}

/* Fallbacks: a sensitive instruction reached without its CODE hook. */
static uint32_t on_in(uc_engine *uc, uint32_t port, int size, void *ud)
{
    struct cpu *c = ud;
    (void)uc;
    return c->io.in(c->io.ctx, (uint16_t)port, (unsigned)size);
}

static void on_out(uc_engine *uc, uint32_t port, int size, uint32_t val, void *ud)
{
    struct cpu *c = ud;
    (void)uc;
    c->io.out(c->io.ctx, (uint16_t)port, (unsigned)size, val);
}

/* xAPIC registers at the default APIC base (SDM Vol. 3A §11.4.1). */
static uint64_t apic_mmio_read(uc_engine *uc, uint64_t off, unsigned size, void *ud)
{
    struct cpu *c = ud;
    (void)uc;
    (void)size;
    return lapic_read(&c->apic, (uint32_t)off & 0xFF0, c->cycles);
}

static void apic_mmio_write(uc_engine *uc, uint64_t off, unsigned size, uint64_t val, void *ud)
{
    struct cpu *c = ud;
    (void)uc;
    (void)size;
    lapic_write(&c->apic, (uint32_t)off & 0xFF0, (uint32_t)val, c->cycles);
    cpu_events_schedule(c);
    c->next_event = c->cycles + 1; /* EOI, ICR or a timer write: look at events after this block */
}

/* The hooks of every engine (contexts.c opens more than one). */
vmxsim_err cpu_engine_hooks(struct cpu *c, uc_engine *uc)
{
    uc_hook h;
    uc_err e = uc_hook_add(uc, &h, UC_HOOK_TLB_FILL, (void *)cpu_tlb_fill, c, 1, 0);
    if (!e)
        e = uc_hook_add(uc, &h, UC_HOOK_INTR, (void *)on_intr, c, 1, 0);
    if (!e)
        e = uc_hook_add(uc, &h, UC_HOOK_INSN_INVALID, (void *)on_invalid, c, 1, 0);
    if (!e)
        e = uc_hook_add(uc, &h, UC_HOOK_INSN, (void *)on_in, c, 1, 0, UC_X86_INS_IN);
    if (!e)
        e = uc_hook_add(uc, &h, UC_HOOK_INSN, (void *)on_out, c, 1, 0, UC_X86_INS_OUT);
    if (!e)
        e = uc_hook_add(uc, &h, UC_HOOK_INSN, (void *)on_cpuid, c, 1, 0, UC_X86_INS_CPUID);
    /* The xAPIC page needs a hole in RAM; with more RAM only x2APIC MSRs reach the APIC. */
    if (!e && c->ram_size <= LAPIC_DEFAULT_BASE)
        e = uc_mmio_map(uc, LAPIC_DEFAULT_BASE, 0x1000, apic_mmio_read, c, apic_mmio_write, c);
    if (e)
        return VMXSIM_ERR_UNICORN;
    return cpu_blocks_hook(c, uc);
}

vmxsim_err cpu_create(const struct cpu_config *cfg, struct cpu **out, char *err, size_t errlen)
{
    struct cpu *c = calloc(1, sizeof *c);
    vmxsim_err r;
    *out = NULL;
    if (!c)
        return VMXSIM_ERR_NOMEM;
    c->model = *cfg->model;
    c->ram = cfg->ram;
    c->ram_size = cfg->ram_size;
    c->io = cfg->io;
    c->log = cfg->log;
    c->max_insns = cfg->max_insns;
    c->insn_limit = cfg->max_insns ? cfg->max_insns : UINT64_MAX;
    c->feature_control_unlocked = cfg->feature_control_unlocked;
    c->debug = getenv("VMXSIM_DEBUG") != NULL;
    cpu_phys_mem(c);
    msr_reset(&c->msrs, &c->model);
    vmx_init(&c->vmx, &c->model);
    lapic_reset(&c->apic);
    c->next_event = UINT64_MAX;
    r = cpu_engine_open(c, err, errlen);
    if (r == VMXSIM_OK)
        r = tlb_init(&c->tlb, NULL);
    if (r == VMXSIM_OK)
        r = cpu_blocks_init(c);
    if (r == VMXSIM_OK)
        r = cpu_engine_hooks(c, c->uc);
    if (r != VMXSIM_OK) {
        if (!err[0])
            snprintf(err, errlen, "%s", vmxsim_strerror(r));
        cpu_destroy(c);
        return r;
    }
    *out = c;
    return VMXSIM_OK;
}

void cpu_destroy(struct cpu *c)
{
    if (!c)
        return;
    cpu_blocks_free(c);
    cpu_engine_close(c);
    tlb_free(c->tlb);
    free(c);
}

/* IA32_FEATURE_CONTROL at 64-bit entry: locked, VMX outside SMX (README "Boot"). */
#define FEATURE_CONTROL_LOCKED (1ull << 0)
#define FEATURE_CONTROL_VMXON_OUTSIDE_SMX (1ull << 2)

vmxsim_err cpu_load_boot_state(struct cpu *c, const struct plat_cpu_init *in)
{
    struct plat_cpu_init st = *in;
    uc_x86_mmr gdtr = {.base = st.gdtr.base, .limit = st.gdtr.limit};
    uc_x86_mmr idtr = {.base = st.idtr.base, .limit = st.idtr.limit};
    /* Enter from the RESET state (paging off) so QEMU sees each transition. */
    c->cr0 = X86_CR0_ET;
    c->cr4 = 0;
    c->efer = 0;
    c->cr3 = 0;
    cpu_sync_cr_to_engine(c);
    c->cr4 = st.cr4;
    c->efer = st.efer & ~X86_EFER_LMA;
    c->cr3 = st.cr3;
    c->cr0 = st.cr0;
    if ((c->cr0 & X86_CR0_PG) && (c->efer & X86_EFER_LME))
        c->efer |= X86_EFER_LMA;
    cpu_sync_cr_to_engine(c);
    uc_reg_write(c->uc, UC_X86_REG_GDTR, &gdtr);
    uc_reg_write(c->uc, UC_X86_REG_IDTR, &idtr);
    cpu_ctx_dirty(c);
    cpu_set_reg(c, UC_X86_REG_RFLAGS, st.rflags | X86_RFLAGS_FIXED);
    cpu_set_segs(c, st.seg, 0xFFu);
    cpu_set_reg(c, UC_X86_REG_RAX, st.rax);
    cpu_set_reg(c, UC_X86_REG_RBX, st.rbx);
    cpu_set_reg(c, UC_X86_REG_RDI, st.rdi);
    cpu_set_reg(c, UC_X86_REG_RSI, st.rsi);
    cpu_set_reg(c, UC_X86_REG_RSP, st.rsp);
    cpu_set_reg(c, UC_X86_REG_RIP, st.rip);
    if (st.long_mode) {
        uint64_t fc = FEATURE_CONTROL_VMXON_OUTSIDE_SMX;
        if (!c->feature_control_unlocked)
            fc |= FEATURE_CONTROL_LOCKED;
        msr_set_raw(&c->msrs, MSR_ID_IA32_FEAT_CTL, fc);
    }
    cpu_flush_tlb(c);
    cpu_blocks_retag(c);
    return VMXSIM_OK;
}

void cpu_request_stop(struct cpu *c, enum vmxsim_stop why, int status, const char *msg)
{
    if (c->stop != VMXSIM_STOP_NONE)
        return;
    c->stop = why;
    c->exit_status = status;
    snprintf(c->stop_msg, sizeof c->stop_msg, "%s", msg ? msg : "");
    if (c->uc)
        uc_emu_stop(c->uc);
}

uint64_t cpu_cycles(const struct cpu *c) { return c->cycles; }

/* --- MSRs with side effects in the core (MSR_F_CORE) ------------------ */

struct live_msr {
    uint32_t index;
    int ucreg; /* 0: through UC_X86_REG_MSR */
};

static const struct live_msr live_msrs[] = {
    {MSR_FS_BASE, UC_X86_REG_FS_BASE},
    {MSR_GS_BASE, UC_X86_REG_GS_BASE},
    {MSR_KERNEL_GS_BASE, 0},
    {MSR_STAR, 0},
    {MSR_LSTAR, 0},
    {MSR_CSTAR, 0},
    {MSR_SYSCALL_MASK, 0},
    {MSR_IA32_SYSENTER_CS, 0},
    {MSR_IA32_SYSENTER_ESP, 0},
    {MSR_IA32_SYSENTER_EIP, 0},
};

static const struct live_msr *live_msr(uint32_t idx)
{
    for (size_t i = 0; i < sizeof live_msrs / sizeof live_msrs[0]; i++)
        if (live_msrs[i].index == idx)
            return &live_msrs[i];
    return NULL;
}

static uint64_t engine_msr(struct cpu *c, const struct live_msr *m)
{
    if (m->ucreg)
        return cpu_reg(c, m->ucreg);
    uc_x86_msr r = {.rid = m->index};
    uc_reg_read(c->uc, UC_X86_REG_MSR, &r);
    return r.value;
}

static void set_engine_msr(struct cpu *c, const struct live_msr *m, uint64_t v)
{
    if (m->ucreg) {
        cpu_set_reg(c, m->ucreg, v);
        return;
    }
    uc_x86_msr r = {.rid = m->index, .value = v};
    uc_reg_write(c->uc, UC_X86_REG_MSR, &r);
    cpu_ctx_dirty(c);
}

/* RDMSR as the architecture defines it (CPL checked by the caller). */
bool cpu_rdmsr(struct cpu *c, uint32_t idx, uint64_t *val)
{
    const struct live_msr *m = live_msr(idx);
    enum msr_id id;
    if (cpu_vmx_rdmsr(c, idx, val))
        return true;
    if (idx >= 0x800 && idx <= 0x8FF)
        return lapic_msr_read(&c->apic, idx, val, c->cycles);
    if (idx == MSR_IA32_TSC_DEADLINE && msr_exists(&c->msrs, idx)) {
        *val = c->apic.tsc_deadline;
        return true;
    }
    if (!msr_exists(&c->msrs, idx) || !msr_lookup(idx, &id))
        return false;
    if (m) {
        msr_set_raw(&c->msrs, id, engine_msr(c, m));
    } else if (idx == MSR_IA32_TSC) {
        uint64_t tsc = c->cycles + c->tsc_offset;
        if (c->vmx.non_root) /* SDM Vol. 3C §26.3: RDMSR of IA32_TSC sees the offset */
            tsc = vmx_guest_tsc(&c->vmx, cpu_vmx_ops(c), tsc);
        msr_set_raw(&c->msrs, id, tsc);
    }
    else if (idx == MSR_EFER)
        msr_set_raw(&c->msrs, id, c->efer);
    return msr_read(&c->msrs, idx, val) == MSR_OK;
}

/* WRMSR: the MSR unit checks existence and reserved bits; we apply effects. */
bool cpu_wrmsr(struct cpu *c, uint32_t idx, uint64_t val)
{
    const struct live_msr *m = live_msr(idx);
    if (idx == MSR_EFER) {
        enum msr_id id;
        if (!msr_lookup(idx, &id) || !cpu_write_efer(c, val))
            return false;
        msr_set_raw(&c->msrs, id, c->efer);
        return true;
    }
    if (idx >= 0x800 && idx <= 0x8FF) {
        bool ok = lapic_msr_write(&c->apic, idx, val, c->cycles);
        cpu_events_schedule(c);
        c->next_event = c->cycles + 1; /* an IPI or EOI may make an interrupt deliverable */
        return ok;
    }
    if (msr_write(&c->msrs, idx, val) != MSR_OK)
        return false;
    if (idx == MSR_IA32_APICBASE)
        c->apic.x2apic = (val >> 10) & 1; /* EXTD: x2APIC mode (SDM Vol. 3A §11.12.1) */
    else if (idx == MSR_IA32_TSC_DEADLINE) {
        c->apic.tsc_deadline = val;
        cpu_events_schedule(c);
    }
    if (m)
        set_engine_msr(c, m, val);
    else if (idx == MSR_IA32_TSC)
        c->tsc_offset = val - c->cycles;
    else if (idx == MSR_IA32_PKRS)
        cpu_flush_tlb(c);
    else if (idx == MSR_TEST_CTRL) {
        c->sld = (val & MSR_TEST_CTRL_SPLIT_LOCK_DETECT) != 0;
        cpu_blocks_retag(c); /* locked instructions need (or no longer need) checks */
    }
    return true;
}

/* --- Page faults from the TLB-fill hook -------------------------------- */

static bool overlaps(uint64_t la, uint64_t len, uint64_t page)
{
    return la < page + 4096 && la + len > page;
}

/*
 * The hook only learns the page; CR2 must be the faulting byte (SDM Vol. 3A
 * §4.7). Recover it from the instruction: its memory operands, or the
 * implicit stack and string operands.
 */
static uint64_t fault_address(struct cpu *c, uint64_t page, unsigned acc)
{
    uint64_t rip = cpu_reg(c, UC_X86_REG_RIP), lin = cpu_cs_base(c) + rip;
    cs_insn *insn = NULL;
    struct x86_fault f;
    uint64_t la = page;
    if (acc & PAGING_ACC_FETCH)
        return overlaps(lin, 1, page) ? lin : page;
    if (!cpu_fetch_insn(c, rip, &insn, &f) || !insn)
        return page;
    const cs_x86 *x = &insn->detail->x86;
    uint64_t width = cpu_code_bits(c) / 8;
    uint64_t rsp = cpu_reg(c, UC_X86_REG_RSP);
    for (int i = 0; i < x->op_count; i++) {
        const cs_x86_op *op = &x->operands[i];
        if (op->type != X86_OP_MEM)
            continue;
        uint64_t a = op_mem_la(c, insn, op);
        if (overlaps(a, op->size ? op->size : 1, page)) {
            la = a > page ? a : page;
            goto out;
        }
    }
    switch (insn->id) {
    case X86_INS_PUSH:
    case X86_INS_PUSHFQ:
    case X86_INS_PUSHFD:
    case X86_INS_CALL:
        if (overlaps(rsp - width, width, page))
            la = rsp - width > page ? rsp - width : page;
        break;
    case X86_INS_POP:
    case X86_INS_POPFQ:
    case X86_INS_RET:
    case X86_INS_IRETQ:
    case X86_INS_IRETD:
        if (overlaps(rsp, width, page))
            la = rsp > page ? rsp : page;
        break;
    default:
        break;
    }
out:
    return la;
}

static void handle_fill_fault(struct cpu *c)
{
    struct x86_fault f = c->fill_fault;
    if (c->fill_ept) {
        cpu_ept_exit(c, &c->fill_eres, c->fill_eres_final,
                     fault_address(c, c->fill_page, c->fill_access));
        return;
    }
    if (f.vector == 0xFF) {
        cpu_request_stop(c, VMXSIM_STOP_ERROR, 0, "page walk touched unbacked physical memory");
        return;
    }
    if (f.vector == X86_PF)
        f.cr2 = fault_address(c, c->fill_page, c->fill_access);
    cpu_raise(c, &f);
}

/* QEMU raised an exception natively (#DE, #GP, #UD, INT n, ...). */
static void handle_native_exception(struct cpu *c)
{
    bool is_int;
    int err = cpu_native_error_code(c, &is_int);
    uint8_t v = (uint8_t)c->intno;
    bool has_err = v == X86_DF || (v >= X86_TS && v <= X86_PF) || v == X86_AC || v == X86_CP;
    uint64_t rip = cpu_reg(c, UC_X86_REG_RIP);
    cpu_clear_old_exception(c);
    if (is_int) {
        /* INT3 (CC) and INTO (CE) are software exceptions; INT n (CD nn, even
         * INT 3) a software interrupt (SDM Vol. 3C Table 25-17). QEMU left RIP
         * past the instruction: point it back so a VM exit saves the
         * instruction's address and length (§28.2.5, §28.3.3). */
        uint8_t b[2] = {0, 0};
        struct x86_fault f;
        unsigned len = 2;
        enum cpu_event_kind k = EV_SW_INT;
        if (cpu_lin_read(c, cpu_cs_base(c) + rip - 2, b, 2, PAGING_ACC_FETCH | PAGING_ACC_NO_AD, &f) &&
            (b[1] == 0xCC || b[1] == 0xCE)) {
            len = 1;
            k = EV_SW_EXCEPTION;
        }
        cpu_set_reg(c, UC_X86_REG_RIP, rip - len);
        cpu_deliver(c, v, k, false, 0, rip);
        return;
    }
    cpu_deliver(c, v, EV_HW_EXCEPTION, has_err && !is_int, (uint32_t)err, rip);
}

static void handle_unicorn_error(struct cpu *c, uc_err e)
{
    char msg[200];
    snprintf(msg, sizeof msg, "emulation stopped at rip %#llx: %s",
             (unsigned long long)cpu_reg(c, UC_X86_REG_RIP), uc_strerror(e));
    cpu_request_stop(c, VMXSIM_STOP_ERROR, 0, msg);
}

/*
 * Monitor trap flag (SDM Vol. 3C §26.5.2): a VM exit after each guest
 * instruction. While it is on, the guest runs one instruction per start.
 */
static void mtf_exit_if_done(struct cpu *c, uint64_t insns0, uint64_t rip0)
{
    if (!c->vmx.non_root || c->stop != VMXSIM_STOP_NONE)
        return;
    if (c->insns == insns0 && cpu_reg(c, UC_X86_REG_RIP) == rip0)
        return; /* nothing completed (a restart after hooking a block) */
    struct vmx_exit ex = {.reason = EXIT_REASON_MONITOR_TRAP_FLAG};
    cpu_vmexit(c, &ex);
}

static void step(struct cpu *c)
{
    uint64_t rip = cpu_reg(c, UC_X86_REG_RIP), insns0 = c->insns;
    bool mtf = c->vmx.non_root && cpu_vmx_mtf(c);
    /* Unicorn applies its instruction count only to blocks translated with it. */
    if (mtf && !c->mtf_stepping)
        uc_ctl_flush_tb(c->uc);
    c->mtf_stepping = mtf;
    c->cause = CAUSE_NONE;
    c->block_stop = false;
    cpu_ctx_dirty(c);
    c->stops++;
    uc_err e = uc_emu_start(c->uc, rip, NO_STOP_ADDR, 0, mtf ? 1 : 0);
    cpu_ctx_dirty(c);
    if (c->block_stop) { /* stopped by the block hook: RIP is the block's start */
        struct x86_seg_state cs;
        cpu_get_seg(c, X86_SEG_CS, &cs);
        cpu_set_reg(c, UC_X86_REG_RIP, c->block_stop_addr - cs.base);
        c->block_stop = false;
    }
    if (c->stop != VMXSIM_STOP_NONE)
        return;
    rip = cpu_reg(c, UC_X86_REG_RIP);
    uint64_t rip_lin = cpu_cs_base(c) + rip; /* blocks are keyed by linear address */
    if (c->debug)
        fprintf(c->log, "[stop] cause %d uc %d rip %#llx intno %d fill %#llx/%u vec %d\n", c->cause, e,
                (unsigned long long)rip, c->intno, (unsigned long long)c->fill_page, c->fill_access,
                c->fill_fault.vector);
    if (c->cause != CAUSE_BLOCK_NEW)
        cpu_blocks_refund(c, rip_lin);
    switch (c->cause) {
    case CAUSE_SENSITIVE:
        cpu_emulate_sensitive(c);
        break;
    case CAUSE_INVALID:
        cpu_emulate_invalid(c);
        break;
    case CAUSE_EXCEPTION:
        handle_native_exception(c);
        break;
    case CAUSE_FILL_FAULT:
        handle_fill_fault(c);
        break;
    case CAUSE_BLOCK_NEW:
        uc_ctl_remove_cache(c->uc, c->new_block_addr, c->new_block_addr + c->new_block_size);
        break;
    case CAUSE_EVENT:
        break;
    default:
        if (e != UC_ERR_OK) {
            handle_unicorn_error(c, e);
            return;
        }
        if (!mtf && ++c->idle_stops > 1000) {
            cpu_request_stop(c, VMXSIM_STOP_ERROR, 0, "emulation keeps stopping with no cause");
            return;
        }
        break;
    }
    if (mtf)
        mtf_exit_if_done(c, insns0, rip);
    c->idle_stops = 0;
    /* Alignment checking turns on and off with CPL, CR0.AM and RFLAGS.AC: re-decode when it does. */
    bool ac = c->stop == VMXSIM_STOP_NONE && cpu_ac_checking(c);
    if (ac != c->ac_mode) {
        c->ac_mode = ac;
        cpu_blocks_retag(c);
    }
    /* Not while an instruction waits to run natively (IRET): events come after it. */
    if (c->stop == VMXSIM_STOP_NONE && !c->native_once)
        (void)cpu_events_check(c);
}

vmxsim_err cpu_run(struct cpu *c, struct vmxsim_result *res)
{
    memset(res, 0, sizeof *res);
    while (c->stop == VMXSIM_STOP_NONE)
        step(c);
    if (c->stop == VMXSIM_STOP_TRIPLE_FAULT || c->stop == VMXSIM_STOP_ERROR) {
        fprintf(c->log, "vmxsim: %s at rip %#llx after %llu instructions\n", c->stop_msg,
                (unsigned long long)cpu_reg(c, UC_X86_REG_RIP), (unsigned long long)c->insns);
        cpu_report_state(c, c->log);
    } else if (c->stop == VMXSIM_STOP_HALT) {
        fprintf(c->log, "vmxsim: guest halted: %s at rip %#llx\n", c->stop_msg,
                (unsigned long long)cpu_reg(c, UC_X86_REG_RIP));
    }
    if (getenv("VMXSIM_STATS"))
        fprintf(c->log, "vmxsim: %llu stops, %llu TLB fills, %llu VM exits, %llu VM entries\n",
                (unsigned long long)c->stops, (unsigned long long)c->fills,
                (unsigned long long)c->vmexits, (unsigned long long)c->vmentries);
    res->stop = c->stop;
    res->exit_status = c->exit_status;
    res->insns = c->insns;
    res->cycles = c->cycles;
    snprintf(res->message, sizeof res->message, "%s", c->stop_msg);
    return VMXSIM_OK;
}
