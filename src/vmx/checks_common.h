/*
 * Shared by the VM-entry check files (checks_controls.c, checks_host.c,
 * checks_guest.c): the check context, the CC() recorder and the address,
 * canonicality and MSR-value helpers the SDM rules are written in.
 * Private to the VMX unit.
 */
#ifndef VMXSIM_VMX_CHECKS_COMMON_H
#define VMXSIM_VMX_CHECKS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmx/checks_env.h"
#include "vmx/vmcs.h"
#include "vmx/vmx.h"

/* Field formats vmx_arch.h does not name (SDM Vol. 3C §25.6, §25.7.2). */
#define POSTED_INTR_NV_RESERVED GENMASK64(15, 8) /* notification vector bits 15:8 */
#define POSTED_INTR_DESC_ALIGN 0x3Full           /* descriptor: 64-byte aligned */
#define MSR_AREA_ALIGN 0xFull                    /* MSR-load/store areas: 16-byte aligned */
#define MSR_AREA_ENTRY_SIZE 16ull
#define VMX_MISC_CR3_TARGETS_MASK GENMASK64(24, 16)
#define VMX_MISC_ACTIVITY_SHIFT 6           /* bits 8:6: HLT, shutdown, wait-for-SIPI */

/* IA32_S_CET (SDM Vol. 1 §18.3, Vol. 4 Table 2-2) */
#define CET_RESERVED_9_6 GENMASK64(9, 6)
#define CET_SUPPRESS BIT64(10)
#define CET_TRACKER BIT64(11)

/* IA32_BNDCFGS (SDM Vol. 1 §17.3.4): 0 EN, 1 BNDPRESERVE, 11:2 reserved, 63:12 base */
#define BNDCFGS_RESERVED_11_2 GENMASK64(11, 2)
#define BNDCFGS_BASE GENMASK64(63, 12)

/*
 * Bits of MSRs VM entry may load that the modelled processors implement.
 * IA32_EFER on Intel: SCE, LME, LMA, NXE (SDM Vol. 4 Table 2-2); vmxsim
 * models no PMU, Intel PT or architectural LBRs, so every bit of
 * IA32_PERF_GLOBAL_CTRL, IA32_RTIT_CTL and IA32_LBR_CTL is reserved.
 * IA32_DEBUGCTL: LBR and BTF only (msr/msr_table.def).
 */
#define CHK_EFER_VALID (X86_EFER_SCE | X86_EFER_LME | X86_EFER_LMA | X86_EFER_NXE)
#define CHK_PERF_GLOBAL_CTRL_VALID 0ull
#define CHK_RTIT_CTL_VALID 0ull
#define CHK_LBR_CTL_VALID 0ull
#define CHK_DEBUGCTL_VALID (BIT64(0) | BIT64(1)) /* DEBUGCTLMSR_LBR | DEBUGCTLMSR_BTF */
#define CHK_DEBUGCTL_BTF BIT64(1)

/* Pending debug exceptions (SDM Vol. 3C Table 25-4) */
#define PENDING_DBG_RESERVED (GENMASK64(11, 4) | BIT64(13) | BIT64(15) | GENMASK64(63, 17))
#define PENDING_DBG_BS BIT64(14)
#define PENDING_DBG_RTM BIT64(16)

/* Guest interruptibility state bits 31:5 reserved (SDM Vol. 3C Table 25-3) */
#define GUEST_INTR_STATE_RESERVED GENMASK64(31, 5)

/* RFLAGS bits 63:22, 15, 5, 3 reserved (must be 0); bit 1 must be 1 */
#define RFLAGS_RESERVED (GENMASK64(63, 22) | BIT64(15) | BIT64(5) | BIT64(3))

/* PAE PDPTE reserved bits below MAXPHYADDR (SDM Vol. 3A Table 4-8) */
#define PAE_PDPTE_P BIT64(0)
#define PAE_PDPTE_RESERVED_LOW (GENMASK64(2, 1) | GENMASK64(8, 5))

/* Segment access-rights bits 11:8 and 31:17 (SDM Vol. 3C Table 25-2) */
#define AR_RESERVED (GENMASK64(11, 8) | GENMASK64(31, 17))

/*
 * One VM entry being checked. The controls are as VM entry sees them:
 * secondary, tertiary and secondary-exit controls read as 0 unless their
 * activate bit is 1 (SDM Vol. 3C §27.2.1.1, §27.2.1.2).
 */
/* A guest segment register as the guest-state area holds it (SDM Vol. 3C §25.4.1). */
struct guest_seg {
    uint16_t sel;
    uint64_t base;
    uint32_t limit, ar;
};

struct vmx_chk {
    const struct vmx_caps *caps;
    const uint8_t *vmcs;
    const struct vmx_mem *mem;
    struct vmx_entry_env env;
    struct vmx_check_fail *fail;
    uint32_t pin, proc, proc2, exit, entry;
    uint64_t proc3, exit2;
    struct guest_seg seg[8];  /* guest segments read so far (checks_guest.c), bit per enum x86_seg: */
    uint8_t seg_read;
};

void chk_init(struct vmx_chk *c, const struct vmx_caps *caps, const uint8_t *vmcs,
              const struct vmx_mem *mem, const struct vmx_entry_env *env,
              struct vmx_check_fail *fail);

/* Record a failed check (id, stage, qualification, value); returns true. */
bool chk_fail(struct vmx_chk *c, enum vmx_check_id id, uint64_t value);

/*
 * KVM's CC(): evaluates to true, and records the check, when `bad` holds.
 *   if (CC(c, vpid == 0, CTL_VPID_ZERO, vpid)) return false;
 */
#define CC(c, bad, ID, value) ((bad) ? chk_fail((c), VMX_CHECK_##ID, (uint64_t)(value)) : false)

/* One SDM rule group: true when every rule of the group holds. */
typedef bool (*chk_step)(struct vmx_chk *c);

/* A field by encoding (for tables of fields); 0 if enc is not a vmcs_fields.def row. */
uint64_t chk_read(const struct vmx_chk *c, uint32_t enc);

/* The VM-entry interruption-information field if its valid bit is 1, else 0. */
uint32_t chk_injection(const struct vmx_chk *c);
static inline unsigned chk_intr_type(uint32_t info)
{
    return (info & INTR_INFO_INTR_TYPE_MASK) >> INTR_INFO_INTR_TYPE_SHIFT;
}
static inline unsigned chk_intr_vector(uint32_t info) { return info & INTR_INFO_VECTOR_MASK; }

/* Run the steps in order; stop at the first that fails. */
bool chk_run(struct vmx_chk *c, const chk_step *steps, size_t n);
#define CHK_RUN(c, steps) chk_run((c), (steps), sizeof(steps) / sizeof((steps)[0]))

/* ---- Capabilities --------------------------------------------------------- */

/* The control MSR VM entry uses: TRUE_* when IA32_VMX_BASIC[55] (Appendix A.2). */
uint64_t chk_pin_msr(const struct vmx_caps *caps);
uint64_t chk_proc_msr(const struct vmx_caps *caps);
uint64_t chk_exit_msr(const struct vmx_caps *caps);
uint64_t chk_entry_msr(const struct vmx_caps *caps);

static inline uint32_t chk_allowed0(uint64_t msr) { return (uint32_t)msr; }         /* must be 1 */
static inline uint32_t chk_allowed1(uint64_t msr) { return (uint32_t)(msr >> 32); } /* may be 1 */

/* Linear-address width of the processor: 57 with 5-level paging, else 48. */
unsigned chk_la_width(const struct vmx_caps *caps);
/* Canonical relative to the processor's linear-address width. */
bool chk_canonical(const struct vmx_caps *caps, uint64_t la);
/* Bits 63:MAXPHYADDR clear. */
bool chk_paddr_ok(const struct vmx_caps *caps, uint64_t pa);
/* Bits `align_mask` clear and bits 63:MAXPHYADDR clear. */
bool chk_addr_ok(const struct vmx_caps *caps, uint64_t pa, uint64_t align_mask);
#define CHK_PAGE_MASK 0xFFFull

/* Every byte a PAT memory type WRMSR accepts: 0, 1, 4, 5, 6, 7 (SDM Vol. 3A §12.12.2). */
bool chk_pat_ok(uint64_t pat);

/* True when CET exists on this processor (CR4.CET may be set). */
static inline bool chk_has_cet(const struct vmx_caps *caps) { return (caps->cr4_fixed1 & X86_CR4_CET) != 0; }

#endif
