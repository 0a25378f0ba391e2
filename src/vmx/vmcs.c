/*
 * VMCS field table and width-checked access (DESIGN §3). The table is
 * vmx/vmcs_fields.def; the layout is documented in vmcs.h and
 * docs/VMCS_LAYOUT.md.
 */
#include "vmx/vmcs.h"

#include <string.h>

static const uint32_t field_enc[VMCS_FIELD_COUNT] = {
#define VMCS_FIELD(name, enc, dep) (enc),
#include "vmx/vmcs_fields.def"
#undef VMCS_FIELD
};

static const uint8_t field_dep[VMCS_FIELD_COUNT] = {
#define VMCS_FIELD(name, enc, dep) (dep),
#include "vmx/vmcs_fields.def"
#undef VMCS_FIELD
};

static const char *const field_name[VMCS_FIELD_COUNT] = {
#define VMCS_FIELD(name, enc, dep) #name,
#include "vmx/vmcs_fields.def"
#undef VMCS_FIELD
};

/* Name of the high access; only looked up for 64-bit fields. */
static const char *const field_name_high[VMCS_FIELD_COUNT] = {
#define VMCS_FIELD(name, enc, dep) #name "_HIGH",
#include "vmx/vmcs_fields.def"
#undef VMCS_FIELD
};

static const char *const dep_name[VMCS_DEP_COUNT] = {
#define VMCS_DEP_NAME_(tok, desc) #tok,
    VMCS_DEPS(VMCS_DEP_NAME_)
#undef VMCS_DEP_NAME_
};

static const char *const dep_desc[VMCS_DEP_COUNT] = {
#define VMCS_DEP_DESC_(tok, desc) desc,
    VMCS_DEPS(VMCS_DEP_DESC_)
#undef VMCS_DEP_DESC_
};

_Static_assert(VMCS_DEP_COUNT <= 256, "field_dep holds a token in a byte");
_Static_assert(VMCS_FIELD_COUNT <= UINT16_MAX, "field_count is 16 bits in the header");

/* Value mask of a full access by width — SDM Vol. 3C §25.11.2. */

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t load_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void store_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* ---- Table queries -------------------------------------------------------- */

const int16_t vmcs_field_lut[1u << 13] = {
#define VMCS_FIELD(name, e, dep) [VMCS_ENC_KEY(e)] = VMCS_##name + 1,
#include "vmx/vmcs_fields.def"
#undef VMCS_FIELD
};

/* SDM Vol. 3C §25.11.2: reserved bits 31:15 and 12 clear, a known index, and
 * the high access only for 64-bit fields — all decided by the lookup. */
bool vmcs_field_valid(uint32_t enc)
{
    return vmcs_field_lookup(enc) >= 0;
}

/* SDM Vol. 3C §25.11.2: type 1 is the VM-exit information (read-only) area. */
bool vmcs_field_read_only(uint32_t enc)
{
    return vmcs_field_valid(enc) && VMCS_FIELD_TYPE(enc) == VMCS_TYPE_READ_ONLY;
}

const char *vmcs_field_name(uint32_t enc)
{
    int idx = vmcs_field_lookup(enc);
    if (idx < 0)
        return NULL;
    return VMCS_FIELD_IS_HIGH(enc) ? field_name_high[idx] : field_name[idx];
}

enum vmcs_dep vmcs_field_dep(uint32_t enc)
{
    int idx = vmcs_field_lookup(enc);
    return idx < 0 ? VMCS_DEP_COUNT : (enum vmcs_dep)field_dep[idx];
}

const char *vmcs_dep_name(enum vmcs_dep dep)
{
    return (unsigned)dep < VMCS_DEP_COUNT ? dep_name[dep] : NULL;
}

const char *vmcs_dep_description(enum vmcs_dep dep)
{
    return (unsigned)dep < VMCS_DEP_COUNT ? dep_desc[dep] : NULL;
}

size_t vmcs_field_count(void)
{
    return VMCS_FIELD_COUNT;
}

uint32_t vmcs_field_encoding(size_t index)
{
    return index < VMCS_FIELD_COUNT ? field_enc[index] : 0xffffffffu;
}

/* SDM Vol. 3D §A.9: IA32_VMX_VMCS_ENUM bits 9:1 = highest index value used
 * for any VMCS encoding; the other bits are reserved (0). */
uint64_t vmcs_enum_value_for(const bool present[VMCS_DEP_COUNT])
{
    uint32_t max_index = 0;
    for (size_t i = 0; i < VMCS_FIELD_COUNT; i++) {
        enum vmcs_dep dep = (enum vmcs_dep)field_dep[i];
        if (dep != VMCS_DEP_NONE && present && !present[dep])
            continue;
        if (VMCS_FIELD_INDEX(field_enc[i]) > max_index)
            max_index = VMCS_FIELD_INDEX(field_enc[i]);
    }
    return (uint64_t)max_index << 1;
}

uint64_t vmcs_enum_value(void)
{
    return vmcs_enum_value_for(NULL);
}

/* ---- Architectural access ------------------------------------------------- */

/*
 * SDM Vol. 3C §25.11.2, VMREAD in 64-bit mode: a 16/32-bit field is returned
 * zero-extended, a 64-bit or natural-width field whole, the high access of
 * a 64-bit field as bits 63:32 moved to 31:0 with 63:32 cleared.
 */

/*
 * SDM Vol. 3C §25.11.2, VMWRITE in 64-bit mode: bits 15:0 / 31:0 of the
 * source go to a 16/32-bit field (the rest is not used), all 64 bits to a
 * 64-bit or natural-width field; the high access writes source bits 31:0
 * into field bits 63:32 and leaves bits 31:0 of the field unchanged.
 */
vmxsim_err vmcs_write(uint8_t *region, uint32_t enc, uint64_t val)
{
    int idx = vmcs_field_lookup(enc);
    if (idx < 0)
        return VMXSIM_ERR_INTERNAL;
    uint8_t *p = region + VMCS_SLOT_OFFSET(idx);
    if (VMCS_FIELD_IS_HIGH(enc))
        val = (vmcs_load_le64_(p) & 0xffffffffull) | (val << 32);
    else
        val &= vmcs_width_mask(enc);
    vmcs_store_le64_(p, val);
    return VMXSIM_OK;
}

/* ---- Width-checked access (STYLE 3) -------------------------------------- */

/* Slot of a full-access encoding of the given width, or -1. */
static int checked_index(uint32_t enc, enum vmcs_width width)
{
    if (VMCS_FIELD_IS_HIGH(enc) || VMCS_FIELD_WIDTH(enc) != (uint32_t)width)
        return -1;
    return vmcs_field_lookup(enc);
}

static vmxsim_err checked_read(const uint8_t *region, uint32_t enc, enum vmcs_width width,
                               uint64_t *val)
{
    int idx = checked_index(enc, width);
    if (idx < 0)
        return VMXSIM_ERR_INTERNAL;
    *val = vmcs_load_le64_(region + VMCS_SLOT_OFFSET(idx)) & vmcs_width_mask(enc);
    return VMXSIM_OK;
}

static vmxsim_err checked_write(uint8_t *region, uint32_t enc, enum vmcs_width width,
                                uint64_t val)
{
    int idx = checked_index(enc, width);
    if (idx < 0)
        return VMXSIM_ERR_INTERNAL;
    vmcs_store_le64_(region + VMCS_SLOT_OFFSET(idx), val & vmcs_width_mask(enc));
    return VMXSIM_OK;
}

vmxsim_err vmcs_read16(const uint8_t *region, uint32_t enc, uint16_t *val)
{
    uint64_t v = 0;
    vmxsim_err err = checked_read(region, enc, VMCS_WIDTH_16, &v);
    if (err == VMXSIM_OK)
        *val = (uint16_t)v;
    return err;
}

vmxsim_err vmcs_read32(const uint8_t *region, uint32_t enc, uint32_t *val)
{
    uint64_t v = 0;
    vmxsim_err err = checked_read(region, enc, VMCS_WIDTH_32, &v);
    if (err == VMXSIM_OK)
        *val = (uint32_t)v;
    return err;
}

vmxsim_err vmcs_read64(const uint8_t *region, uint32_t enc, uint64_t *val)
{
    return checked_read(region, enc, VMCS_WIDTH_64, val);
}

vmxsim_err vmcs_readnatw(const uint8_t *region, uint32_t enc, uint64_t *val)
{
    return checked_read(region, enc, VMCS_WIDTH_NATURAL, val);
}

vmxsim_err vmcs_write16(uint8_t *region, uint32_t enc, uint16_t val)
{
    return checked_write(region, enc, VMCS_WIDTH_16, val);
}

vmxsim_err vmcs_write32(uint8_t *region, uint32_t enc, uint32_t val)
{
    return checked_write(region, enc, VMCS_WIDTH_32, val);
}

vmxsim_err vmcs_write64(uint8_t *region, uint32_t enc, uint64_t val)
{
    return checked_write(region, enc, VMCS_WIDTH_64, val);
}

vmxsim_err vmcs_writenatw(uint8_t *region, uint32_t enc, uint64_t val)
{
    return checked_write(region, enc, VMCS_WIDTH_NATURAL, val);
}

/* ---- Region header -------------------------------------------------------- */

/* SDM Vol. 3C §25.2: bytes 0-3 hold the revision identifier in bits 30:0. */
uint32_t vmcs_region_revision(const uint8_t *region)
{
    return load_le32(region + VMCS_OFF_REVISION) & VMCS_REVISION_MASK;
}

/* SDM Vol. 3C §25.2: bit 31 of bytes 0-3 is the shadow-VMCS indicator. */
bool vmcs_region_is_shadow(const uint8_t *region)
{
    return (load_le32(region + VMCS_OFF_REVISION) & VMCS_SHADOW_INDICATOR) != 0;
}

/* SDM Vol. 3C §25.2, §28.7: bytes 4-7, written by a VMX abort. */
uint32_t vmcs_region_abort(const uint8_t *region)
{
    return load_le32(region + VMCS_OFF_ABORT);
}

void vmcs_region_set_abort(uint8_t *region, uint32_t indicator)
{
    store_le32(region + VMCS_OFF_ABORT, indicator);
}

/* SDM Vol. 3C §25.1: "clear" after VMCLEAR, "launched" after VMLAUNCH. */
enum vmcs_launch_state vmcs_region_launch_state(const uint8_t *region)
{
    return load_le32(region + VMCS_OFF_LAUNCH_STATE) == VMCS_LAUNCH_LAUNCHED ? VMCS_LAUNCH_LAUNCHED
                                                                              : VMCS_LAUNCH_CLEAR;
}

void vmcs_region_set_launch_state(uint8_t *region, enum vmcs_launch_state state)
{
    store_le32(region + VMCS_OFF_LAUNCH_STATE, (uint32_t)state);
}

bool vmcs_region_formatted(const uint8_t *region)
{
    return load_le32(region + VMCS_OFF_MAGIC) == VMCS_REGION_MAGIC &&
           load_le16(region + VMCS_OFF_LAYOUT_VERSION) == VMCS_LAYOUT_VERSION &&
           load_le16(region + VMCS_OFF_FIELD_COUNT) == VMCS_FIELD_COUNT;
}

/* SDM Vol. 3C §25.11.3 and VMCLEAR: launch state := clear; data kept. */
void vmcs_region_clear(uint8_t *region)
{
    if (!vmcs_region_formatted(region)) {
        store_le32(region + VMCS_OFF_MAGIC, VMCS_REGION_MAGIC);
        store_le16(region + VMCS_OFF_LAYOUT_VERSION, VMCS_LAYOUT_VERSION);
        store_le16(region + VMCS_OFF_FIELD_COUNT, VMCS_FIELD_COUNT);
        memset(region + VMCS_OFF_FIELD_COUNT + 2, 0, VMCS_OFF_FIELDS - (VMCS_OFF_FIELD_COUNT + 2));
        memset(region + VMCS_OFF_FIELDS, 0, 8u * VMCS_FIELD_COUNT);
    }
    vmcs_region_set_launch_state(region, VMCS_LAUNCH_CLEAR);
}
