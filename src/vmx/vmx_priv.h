/* Private to src/vmx: shared helpers of the VMX unit. */
#ifndef VMXSIM_VMX_PRIV_H
#define VMXSIM_VMX_PRIV_H

#include "vmx/vmcs.h"
#include "vmx/vmx.h"

void vmx_fail(struct vmx *v, const struct vmx_ops *ops, struct vmx_result *r, uint32_t err);
/* The field exists on this model (valid encoding, its feature present). */
bool vmx_field_supported(const struct vmx *v, uint32_t enc);
bool vmx_eptp_valid(const struct vmx *v, uint64_t eptp);
void vmx_vmentry(struct vmx *v, const struct vmx_cpu *cpu, bool launch, struct x86_state *st,
                 const struct vmx_ops *ops, struct vmx_result *r);
/* Load host state after an exit or a VM-entry failure (SDM §28.5). */
bool vmx_load_host_state(struct vmx *v, uint8_t *vmcs, struct x86_state *st, const struct vmx_ops *ops,
                         uint32_t *abort);

/*
 * MSR areas (msr_area.c): load `count` entries at guest-physical `addr`
 * (§27.4, §28.6), returning 0 or the 1-based number of the failing entry;
 * store `count` entries (§28.4), false on failure.
 */
uint32_t vmx_msr_area_load(uint64_t addr, uint32_t count, struct x86_state *st, const struct vmx_ops *ops);
bool vmx_msr_area_store(uint64_t addr, uint32_t count, const struct vmx_ops *ops);

/* Encodings of the per-segment guest fields, in enum x86_seg order (Appendix B). */
static inline uint32_t vmx_guest_sel(enum x86_seg s) { return 0x0800u + 2u * (unsigned)s; }
static inline uint32_t vmx_guest_limit(enum x86_seg s) { return 0x4800u + 2u * (unsigned)s; }
static inline uint32_t vmx_guest_ar(enum x86_seg s) { return 0x4814u + 2u * (unsigned)s; }
static inline uint32_t vmx_guest_base(enum x86_seg s) { return 0x6806u + 2u * (unsigned)s; }

/* Field access by computed encoding; the encodings used are always valid. */
static inline uint64_t vmx_rd(const uint8_t *vmcs, uint32_t enc)
{
    uint64_t v = 0;
    if (vmcs_read(vmcs, enc, &v) != VMXSIM_OK)
        return 0;
    return v;
}

static inline void vmx_wr(uint8_t *vmcs, uint32_t enc, uint64_t v)
{
    if (vmcs_write(vmcs, enc, v) != VMXSIM_OK)
        return;
}
#endif
