/*
 * Control registers and EFER: the #GP rules of MOV to CR0/CR3/CR4/CR8 and
 * WRMSR to IA32_EFER, mode transitions (EFER.LMA), PAE PDPTE loads, and
 * keeping Unicorn's copy (which drives QEMU's translator flags) in step.
 * SDM Vol. 2B "MOV—Move to/from Control Registers", Vol. 3A §2.5, §4.1.
 */
#include "cpu/vmx_glue.h"

#define GP0(f) (*(f) = (struct x86_fault){.vector = X86_GP, .has_error = true, .error_code = 0}, false)

/* CR0 bits 31:0 that exist; the others are reserved and ignored on write. */
#define CR0_DEFINED (X86_CR0_PE | X86_CR0_MP | X86_CR0_EM | X86_CR0_TS | X86_CR0_ET | \
                     X86_CR0_NE | X86_CR0_WP | X86_CR0_AM | X86_CR0_NW | X86_CR0_CD | X86_CR0_PG)

static bool pae_paging(uint64_t cr0, uint64_t cr4, uint64_t efer)
{
    return (cr0 & X86_CR0_PG) && (cr4 & X86_CR4_PAE) && !(efer & X86_EFER_LME);
}

/* Load PDPTEs for PAE paging (SDM Vol. 3A §4.4.1); false → #GP. */
static bool load_pdptes(struct cpu *c, uint64_t cr0, uint64_t cr3, uint64_t cr4)
{
    struct paging_state st;
    uint64_t p[4];
    cpu_paging_state(c, &st);
    st.cr0 = cr0;
    st.cr3 = cr3;
    st.cr4 = cr4;
    if (!paging_load_pdptes(&st, cpu_phys_mem(c), cr3, p))
        return false;
    for (int i = 0; i < 4; i++)
        c->pdpte[i] = p[i];
    return true;
}

/* Write our state to Unicorn: QEMU recomputes its mode flags from it. */
void cpu_sync_cr_to_engine(struct cpu *c)
{
    uc_x86_msr efer = {.rid = 0xC0000080u, .value = c->efer};
    cpu_set_reg(c, UC_X86_REG_CR4, c->cr4);
    uc_reg_write(c->uc, UC_X86_REG_MSR, &efer);
    cpu_ctx_dirty(c);
    cpu_set_reg(c, UC_X86_REG_CR3, c->cr3);
    cpu_set_reg(c, UC_X86_REG_CR0, c->cr0);
    cpu_flush_tlb(c);
}

/*
 * QEMU flushes its TLB itself when CR3 is written while paging is on (CR3 is
 * written before CR0 here, so the old CR0.PG counts), and on the PG-off
 * round trip of an LMA change.
 */
static bool lma_flip_or_cr3(const struct cpu *c, uint64_t cr3, uint64_t efer)
{
    return ((c->efer ^ efer) & X86_EFER_LMA) || (cr3 != c->cr3 && (c->cr0 & X86_CR0_PG));
}

/*
 * Load CR0/CR3/CR4/EFER together (VM transitions). QEMU derives EFER.LMA
 * only from a CR0.PG 0→1 transition with LME, so when LMA must change the
 * load goes through paging-off first. Only registers that change are
 * written: each write makes QEMU flush its TLB and jump cache.
 */
bool cpu_load_cr_state(struct cpu *c, uint64_t cr0, uint64_t cr3, uint64_t cr4, uint64_t efer)
{
    bool flushed = lma_flip_or_cr3(c, cr3, efer);
    bool lma_flip = ((c->efer ^ efer) & X86_EFER_LMA) != 0;
    uc_x86_msr m = {.rid = 0xC0000080u};
    if (lma_flip) {
        c->cr0 = X86_CR0_ET | (cr0 & X86_CR0_PE);
        c->efer = efer & ~X86_EFER_LMA;
        c->cr4 = cr4;
        c->cr3 = cr3;
        cpu_sync_cr_to_engine(c);
        c->cr0 = cr0;
        c->efer = efer;
        cpu_sync_cr_to_engine(c);
        return true;
    }
    if (cr4 != c->cr4)
        cpu_set_reg(c, UC_X86_REG_CR4, cr4);
    if (efer != c->efer) {
        m.value = efer;
        uc_reg_write(c->uc, UC_X86_REG_MSR, &m);
        cpu_ctx_dirty(c);
    }
    if (cr3 != c->cr3)
        cpu_set_reg(c, UC_X86_REG_CR3, cr3);
    if (cr0 != c->cr0)
        cpu_set_reg(c, UC_X86_REG_CR0, cr0);
    c->cr0 = cr0;
    c->cr3 = cr3;
    c->cr4 = cr4;
    c->efer = efer;
    return flushed;
}

static bool write_cr0(struct cpu *c, uint64_t v, struct x86_fault *f)
{
    uint64_t old = c->cr0;
    if (v & X86_CR0_RESERVED_63_32)
        return GP0(f);
    v = (v & CR0_DEFINED) | X86_CR0_ET; /* ET is hardwired to 1 */
    if ((v & X86_CR0_PG) && !(v & X86_CR0_PE))
        return GP0(f);
    if ((v & X86_CR0_NW) && !(v & X86_CR0_CD))
        return GP0(f);
    if (!(v & X86_CR0_WP) && (c->cr4 & X86_CR4_CET))
        return GP0(f);
    bool pg_on = (v & X86_CR0_PG) && !(old & X86_CR0_PG);
    bool pg_off = !(v & X86_CR0_PG) && (old & X86_CR0_PG);
    if (pg_on && (c->efer & X86_EFER_LME) && !(c->cr4 & X86_CR4_PAE))
        return GP0(f);
    if (pg_off && cpu_code_bits(c) == 64) /* cannot leave paging from 64-bit mode */
        return GP0(f);
    if (pg_off && (c->cr4 & X86_CR4_PCIDE))
        return GP0(f);
    bool reload = pae_paging(v, c->cr4, c->efer) &&
                  (pg_on || ((v ^ old) & (X86_CR0_CD | X86_CR0_NW)));
    if (reload && !load_pdptes(c, v, c->cr3, c->cr4))
        return GP0(f);
    struct tlb_ctx ctx = cpu_tlb_ctx(c);
    tlb_mov_cr0(c->tlb, &ctx, old, v);
    c->cr0 = v;
    if (pg_on && (c->efer & X86_EFER_LME))
        c->efer |= X86_EFER_LMA;
    if (pg_off)
        c->efer &= ~X86_EFER_LMA;
    return true;
}

static bool write_cr3(struct cpu *c, uint64_t v, struct x86_fault *f)
{
    uint64_t raw = v;
    if (cpu_long_mode(c)) {
        if (c->cr4 & X86_CR4_PCIDE)
            v &= ~X86_CR3_PCID_NOFLUSH; /* bit 63 selects no-flush; never stored */
        if (v & GENMASK64(63, c->model.maxphyaddr))
            return GP0(f);
    } else {
        v &= 0xFFFFFFFFull;
    }
    if (pae_paging(c->cr0, c->cr4, c->efer) && !load_pdptes(c, c->cr0, v, c->cr4))
        return GP0(f);
    struct tlb_ctx ctx = cpu_tlb_ctx(c);
    tlb_mov_cr3(c->tlb, &ctx, c->cr4, raw); /* bit 63 (no-flush) matters here */
    c->cr3 = v;
    return true;
}

static bool write_cr4(struct cpu *c, uint64_t v, struct x86_fault *f)
{
    uint64_t old = c->cr4, chg = v ^ old;
    if (v & model_cr4_reserved(&c->model))
        return GP0(f);
    if (cpu_long_mode(c) && !(v & X86_CR4_PAE))
        return GP0(f);
    if (cpu_long_mode(c) && (chg & X86_CR4_LA57))
        return GP0(f);
    if ((v & X86_CR4_PCIDE) && !(old & X86_CR4_PCIDE) &&
        (!cpu_long_mode(c) || (c->cr3 & X86_CR3_PCID_MASK)))
        return GP0(f);
    if ((v & X86_CR4_CET) && !(c->cr0 & X86_CR0_WP))
        return GP0(f);
    bool reload = pae_paging(c->cr0, v, c->efer) &&
                  (chg & (X86_CR4_PAE | X86_CR4_PGE | X86_CR4_PSE | X86_CR4_SMEP));
    if (reload && !load_pdptes(c, c->cr0, c->cr3, v))
        return GP0(f);
    struct tlb_ctx ctx = cpu_tlb_ctx(c);
    tlb_mov_cr4(c->tlb, &ctx, old, v);
    c->cr4 = v;
    return true;
}

/*
 * MOV to CRn at CPL 0 (the caller checked CPL and the encoding). Returns
 * false with *f = #GP(0) when the value is not allowed.
 */
bool cpu_write_cr(struct cpu *c, int cr, uint64_t val, struct x86_fault *f)
{
    bool ok;
    /* SDM Vol. 3C §24.8: in VMX operation CR0/CR4 bits fixed by the capability MSRs → #GP. */
    if (!cpu_vmx_cr_allowed(c, cr, cr == 0 ? ((val & CR0_DEFINED) | X86_CR0_ET) : val))
        return GP0(f);
    switch (cr) {
    case 0:
        ok = write_cr0(c, val, f);
        break;
    case 3:
        ok = write_cr3(c, val, f);
        break;
    case 4:
        ok = write_cr4(c, val, f);
        break;
    case 8:
        if (val & ~0xFull)
            return GP0(f);
        c->cr8 = val;
        c->apic.tpr = (uint32_t)val << 4; /* CR8 is TPR[7:4] (SDM Vol. 3A §11.8.6.1) */
        cpu_set_reg(c, UC_X86_REG_CR8, val);
        return true;
    case 2:
        c->cr2 = val;
        cpu_set_reg(c, UC_X86_REG_CR2, val);
        return true;
    default:
        return GP0(f);
    }
    if (ok) {
        cpu_sync_cr_to_engine(c);
        cpu_blocks_retag(c);
    }
    return ok;
}

uint64_t cpu_read_cr(struct cpu *c, int cr)
{
    switch (cr) {
    case 0:
        return c->cr0;
    case 2:
        return c->cr2;
    case 3:
        return c->cr3;
    case 4:
        return c->cr4;
    case 8:
        return (c->apic.tpr >> 4) & 0xF;
    default:
        return 0;
    }
}

/*
 * WRMSR to IA32_EFER: reserved bits per the model; LME may not change while
 * paging is on; LMA is read-only (SDM Vol. 3A §2.2.1, §10.8.5).
 */
bool cpu_write_efer(struct cpu *c, uint64_t val)
{
    if (val & model_efer_reserved(&c->model) & ~X86_EFER_LMA)
        return false;
    if ((c->cr0 & X86_CR0_PG) && ((val ^ c->efer) & X86_EFER_LME))
        return false;
    c->efer = (val & ~X86_EFER_LMA) | (c->efer & X86_EFER_LMA);
    cpu_sync_cr_to_engine(c);
    return true;
}
