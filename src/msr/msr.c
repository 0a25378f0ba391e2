/*
 * MSR unit (DESIGN §5): the table of msr_table.def, lookup by index,
 * architectural RDMSR/WRMSR checks (SDM Vol. 2B RDMSR/WRMSR: unimplemented
 * index, reserved bit → #GP(0)), RESET and INIT values.
 */
#include "msr/msr.h"

#include <string.h>

#include "msr/msr_handlers.h"

struct msr_info {
    uint32_t index;
    unsigned gate; /* enum cpu_feature or enum msr_gate */
    unsigned flags;
    uint64_t rsvd;
    uint64_t reset;
    msr_handler_fn handler;
    const char *name;
};

static const struct msr_info msrs[MSR_ID_COUNT] = {
#define MSR(id, idx, gt, fl, rs, rv, hd)                                                  \
    [MSR_ID_##id] = { .index = (idx), .gate = FEAT_##gt, .flags = (fl), .rsvd = (rs), \
                      .reset = (rv), .handler = (hd), .name = "MSR_" #id },
#include "msr/msr_table.def"
#undef MSR
};

/* Gates that name several features (enum msr_gate): any one of them suffices. */
static const struct {
    unsigned gate;
    enum cpu_feature any[MSR_GATE_MAX];
    unsigned n;
} multi_gates[] = {
    { FEAT_LM_OR_NX, { FEAT_LM, FEAT_NX }, 2 },
    { FEAT_RDTSCP_OR_RDPID, { FEAT_RDTSCP, FEAT_RDPID }, 2 },
    { FEAT_ANY_SPEC_CTRL, { FEAT_SPEC_CTRL, FEAT_STIBP, FEAT_SSBD }, 3 },
};

unsigned msr_gate_features(enum msr_id id, enum cpu_feature out[MSR_GATE_MAX])
{
    unsigned gate = msrs[id].gate;

    if (gate < FEAT_COUNT) {
        out[0] = (enum cpu_feature)gate;
        return 1;
    }
    for (size_t i = 0; i < sizeof(multi_gates) / sizeof(multi_gates[0]); i++) {
        if (multi_gates[i].gate != gate)
            continue;
        memcpy(out, multi_gates[i].any, multi_gates[i].n * sizeof(out[0]));
        return multi_gates[i].n;
    }
    return 0; /* FEAT_NONE */
}

/* The table is sorted by index (checked by msr_test): bisect it. */
bool msr_lookup(uint32_t index, enum msr_id *id)
{
    size_t lo = 0, hi = MSR_ID_COUNT;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (msrs[mid].index == index) {
            *id = (enum msr_id)mid;
            return true;
        }
        if (msrs[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* SDM Vol. 4 Table 2-2 "Comment" column: the CPUID conditions under which an MSR exists. */
static bool id_exists(const struct msr_file *f, enum msr_id id)
{
    enum cpu_feature any[MSR_GATE_MAX];
    unsigned n = msr_gate_features(id, any);

    if (!model_has(f->model, FEAT_MSR))
        return false;
    if (n == 0)
        return true;
    for (unsigned i = 0; i < n; i++)
        if (model_has(f->model, any[i]))
            return true;
    return false;
}

bool msr_exists(const struct msr_file *f, uint32_t index)
{
    enum msr_id id;

    return msr_lookup(index, &id) && id_exists(f, id);
}

const char *msr_name(uint32_t index)
{
    enum msr_id id;

    return msr_lookup(index, &id) ? msrs[id].name : NULL;
}

unsigned msr_flags(enum msr_id id)
{
    return (unsigned)id < MSR_ID_COUNT ? msrs[id].flags : 0;
}

uint32_t msr_index(enum msr_id id)
{
    return (unsigned)id < MSR_ID_COUNT ? msrs[id].index : 0;
}

static uint64_t reset_value(const struct msr_file *f, enum msr_id id)
{
    uint64_t v = msrs[id].reset;

    if (msrs[id].handler)
        msrs[id].handler(f, id, MSR_OP_RESET, &v);
    return v;
}

/* SDM Vol. 3A §10.1.1, Table 10-1: state after power-up/RESET; IA32_FEATURE_CONTROL unlocked. */
void msr_reset(struct msr_file *f, const struct cpu_model *model)
{
    memset(f, 0, sizeof(*f));
    f->model = model;
    for (unsigned id = 0; id < MSR_ID_COUNT; id++)
        f->val[id] = reset_value(f, (enum msr_id)id);
}

/* SDM Vol. 3A §10.1: INIT leaves MSRs unchanged except those without MSR_F_KEEP_INIT. */
void msr_init(struct msr_file *f)
{
    for (unsigned id = 0; id < MSR_ID_COUNT; id++)
        if (!(msrs[id].flags & MSR_F_KEEP_INIT))
            f->val[id] = reset_value(f, (enum msr_id)id);
}

/* SDM Vol. 2B RDMSR: #GP(0) for an unimplemented (or absent, or write-only) MSR. */
enum msr_result msr_read(const struct msr_file *f, uint32_t index, uint64_t *val)
{
    enum msr_id id;
    uint64_t v;

    if (!msr_lookup(index, &id) || !id_exists(f, id) || (msrs[id].flags & MSR_F_WO))
        return MSR_GP;
    v = f->val[id];
    if (msrs[id].handler && msrs[id].handler(f, id, MSR_OP_READ, &v) != MSR_OK)
        return MSR_GP;
    *val = v;
    return MSR_OK;
}

/* SDM Vol. 2B WRMSR: #GP(0) for an unimplemented MSR or a value setting reserved bits. */
enum msr_result msr_check_write(const struct msr_file *f, uint32_t index, uint64_t *val)
{
    enum msr_id id;

    if (!msr_lookup(index, &id) || !id_exists(f, id) || (msrs[id].flags & MSR_F_RO))
        return MSR_GP;
    if (*val & msrs[id].rsvd)
        return MSR_GP;
    if (msrs[id].handler)
        return msrs[id].handler(f, id, MSR_OP_WRITE, val);
    return MSR_OK;
}

enum msr_result msr_write(struct msr_file *f, uint32_t index, uint64_t val)
{
    enum msr_id id;

    if (msr_check_write(f, index, &val) != MSR_OK || !msr_lookup(index, &id))
        return MSR_GP;
    f->val[id] = val;
    return MSR_OK;
}

uint64_t msr_get_raw(const struct msr_file *f, enum msr_id id)
{
    return f->val[id];
}

void msr_set_raw(struct msr_file *f, enum msr_id id, uint64_t val)
{
    f->val[id] = val;
}
