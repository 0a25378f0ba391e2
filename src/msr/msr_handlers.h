/*
 * Private to the MSR unit: handlers named in msr_table.def (msr_handler_fn).
 */
#ifndef VMXSIM_MSR_HANDLERS_H
#define VMXSIM_MSR_HANDLERS_H

#include "msr/msr.h"

#define MSR_HANDLER(name) \
    enum msr_result name(const struct msr_file *f, enum msr_id id, enum msr_op op, uint64_t *val)

MSR_HANDLER(msr_apic_base);
MSR_HANDLER(msr_feat_ctl);
MSR_HANDLER(msr_spec_ctrl);
MSR_HANDLER(msr_core_caps);
MSR_HANDLER(msr_arch_caps);
MSR_HANDLER(msr_sysenter_cs);
MSR_HANDLER(msr_canonical);
MSR_HANDLER(msr_misc_enable);
MSR_HANDLER(msr_mtrr_physbase);
MSR_HANDLER(msr_mtrr_physmask);
MSR_HANDLER(msr_mtrr_fixed);
MSR_HANDLER(msr_mtrr_deftype);
MSR_HANDLER(msr_pat);
MSR_HANDLER(msr_efer);

#endif
