/*
 * VM-entry and VM-exit MSR areas: 16-byte entries (SDM Vol. 3C §25.7.2,
 * Table 25-15: bits 31:0 index, 63:32 reserved, 127:64 data). The VM-entry
 * MSR-load area (§27.4) and the VM-exit MSR-load area (§28.6) follow one set
 * of rules, so one loader serves both; the VM-exit MSR-store area (§28.4)
 * has its own list of MSRs that cannot be stored.
 */
#include <string.h>

#include "vmx/vmx_priv.h"

#define MSR_IA32_SMM_MONITOR_CTL 0x9Bu
#define MSR_IA32_SMBASE 0x9Eu
#define MSR_IA32_FS_BASE 0xC0000100u
#define MSR_IA32_GS_BASE 0xC0000101u

/* Bits 31:8 = 000008H: an x2APIC register (§27.4, §28.4, §28.6). */
static bool x2apic_index(uint32_t index) { return (index >> 8) == 0x8u; }

/*
 * MSRs an MSR-load area must not name (§27.4, §28.6): FS/GS base (they are
 * state fields), the x2APIC registers, and MSRs writable only in SMM
 * (IA32_SMM_MONITOR_CTL; vmxsim never runs in SMM).
 */
static bool load_forbidden(uint32_t index)
{
    return index == MSR_IA32_FS_BASE || index == MSR_IA32_GS_BASE || index == MSR_IA32_SMM_MONITOR_CTL ||
           x2apic_index(index);
}

/*
 * MSRs the MSR-store area must not name (§28.4): the x2APIC registers and
 * MSRs readable only in SMM (IA32_SMBASE).
 */
static bool store_forbidden(uint32_t index) { return index == MSR_IA32_SMBASE || x2apic_index(index); }

/*
 * MSRs the state snapshot also carries: a loaded value must reach the
 * snapshot too, or committing the snapshot would undo the load.
 */
static void msr_into_state(struct x86_state *st, uint32_t index, uint64_t val)
{
    switch (index) {
    case 0xC0000080u: st->efer = val; break;
    case 0x277u: st->pat = val; break;
    case 0x1D9u: st->debugctl = val; break;
    case 0x6E1u: st->pkrs = val; break;
    case 0x174u: st->sysenter_cs = val; break;
    case 0x175u: st->sysenter_esp = val; break;
    case 0x176u: st->sysenter_eip = val; break;
    default: break;
    }
}

uint32_t vmx_msr_area_load(uint64_t addr, uint32_t count, struct x86_state *st, const struct vmx_ops *ops)
{
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = ops->ptr(ops->ctx, addr + 16ull * i, 16);
        uint32_t index, rsvd;
        uint64_t val;
        if (!e)
            return i + 1;
        memcpy(&index, e, 4);
        memcpy(&rsvd, e + 4, 4);
        memcpy(&val, e + 8, 8);
        if (rsvd || load_forbidden(index) || !ops->wrmsr(ops->ctx, index, val))
            return i + 1;
        msr_into_state(st, index, val);
    }
    return 0;
}

bool vmx_msr_area_store(uint64_t addr, uint32_t count, const struct vmx_ops *ops)
{
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *e = ops->ptr(ops->ctx, addr + 16ull * i, 16);
        uint32_t index, rsvd;
        uint64_t val;
        if (!e)
            return false;
        memcpy(&index, e, 4);
        memcpy(&rsvd, e + 4, 4);
        if (rsvd || store_forbidden(index) || !ops->rdmsr(ops->ctx, index, &val))
            return false;
        memcpy(e + 8, &val, 8);
    }
    return true;
}
