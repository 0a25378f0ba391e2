/*
 * The VMCS: field table, encodings, in-memory layout and width-checked
 * access (DESIGN §3; SDM Vol. 3C chapter 25, Vol. 3D Appendix B).
 *
 * Every field is one row of vmx/vmcs_fields.def (STYLE 1). From it come
 *   - enum vmcs_field   VMCS_<NAME>: the row's index = its slot in memory;
 *   - enum vmcs_encoding <NAME> = encoding, the Linux names, so code reads
 *     like KVM: VMCS_WRITE32(vmcs, VM_EXIT_REASON, reason);
 *   - vmcs_field_lookup(), a table indexed by the encoding's width, type and
 *     index (vmcs.c; a duplicate row is a compile error: an initializer
 *     overriding another, -Woverride-init / -Winitializer-overrides).
 * Width, type and index are bits of the encoding, never stored.
 *
 * The VMCS lives in guest-physical memory in the layout below
 * (docs/VMCS_LAYOUT.md). Every accessor takes a pointer to the 4-KiB region
 * as bytes, so the same functions serve the region in guest RAM and a host
 * copy cached while the VMCS is current.
 */
#ifndef VMXSIM_VMX_VMCS_H
#define VMXSIM_VMX_VMCS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vmxsim/vmxsim.h"

/*
 * Structure of a VMCS-component encoding — SDM Vol. 3C §25.11.2, table
 * "Structure of VMCS Component Encoding". One mask per line.
 */
#define VMCS_ENC_ACCESS_HIGH 0x00000001u       /* bit 0: access type (0 full, 1 high) */
#define VMCS_ENC_INDEX_MASK 0x000003feu        /* bits 9:1: index */
#define VMCS_ENC_TYPE_MASK 0x00000c00u         /* bits 11:10: type */
#define VMCS_ENC_RESERVED_12 0x00001000u       /* bit 12: reserved, must be 0 */
#define VMCS_ENC_WIDTH_MASK 0x00006000u        /* bits 14:13: width */
#define VMCS_ENC_RESERVED_31_15 0xffff8000u    /* bits 31:15: reserved, must be 0 */
#define VMCS_ENC_RESERVED (VMCS_ENC_RESERVED_31_15 | VMCS_ENC_RESERVED_12)

#define VMCS_FIELD_WIDTH(enc) (((uint32_t)(enc) >> 13) & 3u) /* enum vmcs_width */
#define VMCS_FIELD_TYPE(enc) (((uint32_t)(enc) >> 10) & 3u)  /* enum vmcs_type */
#define VMCS_FIELD_INDEX(enc) (((uint32_t)(enc) >> 1) & 0x1ffu)
#define VMCS_FIELD_IS_HIGH(enc) (((uint32_t)(enc) & VMCS_ENC_ACCESS_HIGH) != 0)
/* The "high" access encoding of a 64-bit field (bits 63:32 only). */
#define VMCS_HIGH(enc) ((uint32_t)(enc) | VMCS_ENC_ACCESS_HIGH)
/* Build an encoding from its parts (full access). */
#define VMCS_ENCODE(width, type, index) \
    ((((uint32_t)(width) & 3u) << 13) | (((uint32_t)(type) & 3u) << 10) | (((uint32_t)(index) & 0x1ffu) << 1))

/* Bits 14:13 */
enum vmcs_width {
    VMCS_WIDTH_16 = 0,
    VMCS_WIDTH_64 = 1,
    VMCS_WIDTH_32 = 2,
    VMCS_WIDTH_NATURAL = 3, /* 64 bits: vmxsim models an Intel 64 processor */
};

/* Bits 11:10 */
enum vmcs_type {
    VMCS_TYPE_CONTROL = 0,
    VMCS_TYPE_READ_ONLY = 1, /* VM-exit information and VM-instruction error */
    VMCS_TYPE_GUEST = 2,
    VMCS_TYPE_HOST = 3,
};

/*
 * The CPU feature a field exists with: the SDM Appendix B footnote "This
 * field exists only on processors that support the 1-setting of …". The CPU
 * model maps each token to its features (DESIGN §5); a field whose token is
 * off is an unsupported VMCS component (VMREAD/VMWRITE fail with VM-
 * instruction error 12) and does not count in IA32_VMX_VMCS_ENUM.
 */
#define VMCS_DEPS(X)                                                              \
    X(NONE, "every VMX processor")                                                \
    X(VPID, "enable VPID")                                                        \
    X(POSTED, "process posted interrupts")                                        \
    X(EPT_VE, "EPT-violation #VE")                                                \
    X(HLAT, "enable HLAT (tertiary)")                                             \
    X(IPI_VIRT, "IPI virtualization (tertiary)")                                  \
    X(APICV, "virtual-interrupt delivery")                                        \
    X(PML, "enable PML")                                                          \
    X(UINTR, "load/clear UINV (user interrupts)")                                 \
    X(TPR_SHADOW, "use TPR shadow")                                               \
    X(APIC_ACCESS, "virtualize APIC accesses")                                    \
    X(VMFUNC, "enable VM functions (EPTP switching)")                             \
    X(EPT, "enable EPT")                                                          \
    X(SHADOW_VMCS, "VMCS shadowing")                                              \
    X(XSAVES, "enable XSAVES/XRSTORS")                                            \
    X(ENCLS, "enable ENCLS exiting")                                              \
    X(SPP, "sub-page write permissions for EPT")                                  \
    X(TSC_SCALING, "use TSC scaling")                                             \
    X(TERTIARY, "activate tertiary controls")                                     \
    X(ENCLV, "enable ENCLV exiting")                                              \
    X(PASID, "PASID translation")                                                 \
    X(SEAM, "SEAM (TDX) shared EPTP")                                             \
    X(PCONFIG, "enable PCONFIG")                                                  \
    X(SECONDARY_EXIT, "activate secondary VM-exit controls")                      \
    X(SPEC_CTRL_VIRT, "virtualize IA32_SPEC_CTRL (tertiary)")                     \
    X(FRED, "FRED state load/save")                                               \
    X(PAT, "load/save IA32_PAT")                                                  \
    X(EFER, "load/save IA32_EFER")                                                \
    X(PERF_GLOBAL_CTRL, "load IA32_PERF_GLOBAL_CTRL")                             \
    X(MPX, "load/clear IA32_BNDCFGS")                                             \
    X(PT, "load/clear IA32_RTIT_CTL")                                             \
    X(LBR, "load/clear IA32_LBR_CTL")                                             \
    X(PKS, "load IA32_PKRS")                                                      \
    X(SECONDARY, "activate secondary controls")                                   \
    X(PLE, "PAUSE-loop exiting")                                                  \
    X(NOTIFY, "instruction-timeout (notify) VM exit")                             \
    X(PREEMPTION_TIMER, "activate VMX-preemption timer")                          \
    X(CET, "load CET state")

enum vmcs_dep {
#define VMCS_DEP_ENUM_(tok, desc) VMCS_DEP_##tok,
    VMCS_DEPS(VMCS_DEP_ENUM_)
#undef VMCS_DEP_ENUM_
    VMCS_DEP_COUNT
};

/* The flags column of vmcs_fields.def. */
#define VMCS_DEP(tok) VMCS_DEP_##tok

/* Table index of each field: its slot in the VMCS region. */
enum vmcs_field {
#define VMCS_FIELD(name, enc, dep) VMCS_##name,
#include "vmx/vmcs_fields.def"
#undef VMCS_FIELD
    VMCS_FIELD_COUNT
};

/* Architectural encodings under their Linux names (full access). */
enum vmcs_encoding {
#define VMCS_FIELD(name, enc, dep) name = (enc),
#include "vmx/vmcs_fields.def"
#undef VMCS_FIELD
};

/*
 * Encoding → table index, or -1 when the encoding names no field: reserved
 * bits set, unknown index, or the high access of a 16-bit, 32-bit or
 * natural-width field (SDM Vol. 3C §25.11.2). The high access of a 64-bit
 * field maps to the same index as its full access. Inline so a constant
 * encoding folds to a constant slot.
 */
/* Width, type and index of an encoding: 13 bits, the key of vmcs_field_lut. */
#define VMCS_ENC_KEY(enc) ((((uint32_t)(enc) >> 2) & 0x1800u) | (((uint32_t)(enc) >> 1) & 0x7FFu))
#define VMCS_ENC_KEY_BITS 0x6FFEu /* bits 14:13, 11:10, 9:1; bit 0 is the access type */
/* VMCS_ENC_KEY(encoding) -> row index + 1, 0 for no field (vmcs.c). */
extern const int16_t vmcs_field_lut[1u << 13];

static inline int vmcs_field_lookup(uint32_t enc)
{
    if (enc & VMCS_ENC_ACCESS_HIGH) {
        if (VMCS_FIELD_WIDTH(enc) != VMCS_WIDTH_64)
            return -1;
        enc &= ~VMCS_ENC_ACCESS_HIGH;
    }
    if (enc & ~VMCS_ENC_KEY_BITS) /* reserved bits 31:15 and 12 */
        return -1;
    return vmcs_field_lut[VMCS_ENC_KEY(enc)] - 1;
}

/*
 * In-memory layout of a VMCS region (SDM Vol. 3C §25.2 "Format of the VMCS
 * Region"; the data format after byte 8 is implementation-specific, this is
 * vmxsim's). All multi-byte values are little-endian.
 *
 *   offset  size  contents
 *   0x000   4     bits 30:0 VMCS revision identifier (IA32_VMX_BASIC[30:0]),
 *                 bit 31 shadow-VMCS indicator            — architectural
 *   0x004   4     VMX-abort indicator (SDM Vol. 3C §28.7)  — architectural
 *   0x008   4     magic VMCS_REGION_MAGIC ("VMXS"): written by VMCLEAR
 *   0x00C   4     launch state: 0 clear, 1 launched (SDM Vol. 3C §25.1)
 *   0x010   2     layout version VMCS_LAYOUT_VERSION
 *   0x012   2     number of field slots (VMCS_FIELD_COUNT)
 *   0x014   12    reserved, zero
 *   0x020   8*N   one 8-byte slot per vmcs_fields.def row, in table order:
 *                 slot i at 0x20 + 8*i holds the field's value zero-extended
 *                 (a 64-bit field's high access is bits 63:32 of its slot)
 *   ...           unused up to 4 KiB, left as software wrote it
 *
 * Software should not access bytes 8 and up directly (SDM Vol. 3C
 * §25.11.1); a guest that does sees its writes through VMREAD (masked to
 * the field's width), which the architecture leaves unpredictable.
 */
#define VMCS_REGION_SIZE 4096u
#define VMCS_REVISION_MASK 0x7fffffffu      /* bits 30:0 of dword 0 */
#define VMCS_SHADOW_INDICATOR 0x80000000u   /* bit 31 of dword 0 */
#define VMCS_REGION_MAGIC 0x53584d56u       /* bytes 'V' 'M' 'X' 'S' */
#define VMCS_LAYOUT_VERSION 1u

enum vmcs_launch_state {
    VMCS_LAUNCH_CLEAR = 0,
    VMCS_LAUNCH_LAUNCHED = 1,
};

struct vmcs_region {
    uint32_t revision_id;   /* 30:0 revision, 31 shadow-VMCS indicator */
    uint32_t abort;         /* VMX-abort indicator */
    uint32_t magic;         /* VMCS_REGION_MAGIC once VMCLEARed */
    uint32_t launch_state;  /* enum vmcs_launch_state */
    uint16_t layout_version;
    uint16_t field_count;
    uint8_t reserved_1f_14[12];
    uint64_t field[VMCS_FIELD_COUNT]; /* slot per table row */
    uint8_t unused[VMCS_REGION_SIZE - 32 - 8 * VMCS_FIELD_COUNT];
};

#define VMCS_OFF_REVISION 0x00u
#define VMCS_OFF_ABORT 0x04u
#define VMCS_OFF_MAGIC 0x08u
#define VMCS_OFF_LAUNCH_STATE 0x0cu
#define VMCS_OFF_LAYOUT_VERSION 0x10u
#define VMCS_OFF_FIELD_COUNT 0x12u
#define VMCS_OFF_FIELDS 0x20u
#define VMCS_SLOT_OFFSET(idx) (VMCS_OFF_FIELDS + 8u * (uint32_t)(idx))

_Static_assert(sizeof(struct vmcs_region) == VMCS_REGION_SIZE, "VMCS region is 4 KiB");
_Static_assert(offsetof(struct vmcs_region, abort) == VMCS_OFF_ABORT, "layout");
_Static_assert(offsetof(struct vmcs_region, magic) == VMCS_OFF_MAGIC, "layout");
_Static_assert(offsetof(struct vmcs_region, launch_state) == VMCS_OFF_LAUNCH_STATE, "layout");
_Static_assert(offsetof(struct vmcs_region, layout_version) == VMCS_OFF_LAYOUT_VERSION, "layout");
_Static_assert(offsetof(struct vmcs_region, field_count) == VMCS_OFF_FIELD_COUNT, "layout");
_Static_assert(offsetof(struct vmcs_region, field) == VMCS_OFF_FIELDS, "layout");
_Static_assert(VMCS_SLOT_OFFSET(VMCS_FIELD_COUNT) <= VMCS_REGION_SIZE, "fields fit in 4 KiB");

/* Fallible functions: the caller must look at the result (STYLE 5). */
#define VMCS_MUST_CHECK __attribute__((warn_unused_result))

/* ---- Field table queries ------------------------------------------------ */

/* SDM Vol. 3C §25.11.2: the encoding names a field vmxsim knows (full access,
 * or high access of a 64-bit field). Model gating is the caller's (vmcs_field_dep). */
bool vmcs_field_valid(uint32_t enc);
/* Type 1 (VM-exit information): VMWRITE fails with VM-instruction error 13
 * unless IA32_VMX_MISC[29] — the caller's check. False for invalid encodings. */
bool vmcs_field_read_only(uint32_t enc);
/* "GUEST_CS_SELECTOR", "EPT_POINTER_HIGH"; NULL when not valid. */
const char *vmcs_field_name(uint32_t enc);
/* Feature token of the field; VMCS_DEP_COUNT when not valid. */
enum vmcs_dep vmcs_field_dep(uint32_t enc);
const char *vmcs_dep_name(enum vmcs_dep dep);        /* "PKS"; NULL if out of range */
const char *vmcs_dep_description(enum vmcs_dep dep); /* the control it stands for */

/* Iteration over every row, in table (= slot) order, for tests and dumps. */
size_t vmcs_field_count(void);
uint32_t vmcs_field_encoding(size_t index); /* full-access encoding; 0xffffffff past the end */

/* IA32_VMX_VMCS_ENUM (SDM Vol. 3D §A.9): bits 9:1 = highest index of any
 * field. vmcs_enum_value() counts every row; vmcs_enum_value_for() only rows
 * whose token is present (present[VMCS_DEP_NONE] is taken as true). */
uint64_t vmcs_enum_value(void);
uint64_t vmcs_enum_value_for(const bool present[VMCS_DEP_COUNT]);

/* ---- Architectural access (VMREAD/VMWRITE semantics) --------------------- */

/*
 * SDM Vol. 3C §25.11.2 (operation of VMREAD/VMWRITE by width and access
 * type), 64-bit mode: a 16- or 32-bit field reads zero-extended and writes
 * keep bits 15:0 / 31:0 of val; 64-bit and natural-width fields hold all 64
 * bits; the high access of a 64-bit field reads bits 63:32 into 31:0 and
 * writes bits 31:0 of val into bits 63:32, leaving 31:0 alone.
 * Operand-size truncation outside 64-bit mode and the "encoding bits 63:32
 * set" failure are the instruction's job. These functions check neither
 * read-only-ness nor the CPU model (vmcs_write also records VM-exit
 * information). VMXSIM_ERR_INTERNAL: enc is not vmcs_field_valid.
 */
static inline VMCS_MUST_CHECK vmxsim_err vmcs_read(const uint8_t *region, uint32_t enc, uint64_t *val);
VMCS_MUST_CHECK vmxsim_err vmcs_write(uint8_t *region, uint32_t enc, uint64_t val);

/* ---- Width-checked access for simulator code (STYLE 3) ------------------ */

/*
 * Runtime-checked: VMXSIM_ERR_INTERNAL (a bug in the caller) when enc is not
 * a valid full-access encoding of a field of that width. natw = natural width.
 */
VMCS_MUST_CHECK vmxsim_err vmcs_read16(const uint8_t *region, uint32_t enc, uint16_t *val);
VMCS_MUST_CHECK vmxsim_err vmcs_read32(const uint8_t *region, uint32_t enc, uint32_t *val);
VMCS_MUST_CHECK vmxsim_err vmcs_read64(const uint8_t *region, uint32_t enc, uint64_t *val);
VMCS_MUST_CHECK vmxsim_err vmcs_readnatw(const uint8_t *region, uint32_t enc, uint64_t *val);
VMCS_MUST_CHECK vmxsim_err vmcs_write16(uint8_t *region, uint32_t enc, uint16_t val);
VMCS_MUST_CHECK vmxsim_err vmcs_write32(uint8_t *region, uint32_t enc, uint32_t val);
VMCS_MUST_CHECK vmxsim_err vmcs_write64(uint8_t *region, uint32_t enc, uint64_t val);
VMCS_MUST_CHECK vmxsim_err vmcs_writenatw(uint8_t *region, uint32_t enc, uint64_t val);

/*
 * Compile-time-checked, by field name (the usual case in simulator code):
 *   uint32_t reason = VMCS_READ32(vmcs, VM_EXIT_REASON);
 *   VMCS_WRITENATW(vmcs, GUEST_RIP, rip);
 * The name must be a row of the table (else VMCS_<name> is undeclared) and
 * its encoding's width must match the accessor (else a _Static_assert
 * fails). The slot offset is a constant: no lookup at run time. Writes
 * truncate val to the field's width, as VMWRITE does.
 */
#define VMCS_STATIC_WIDTH_(name, w)                                                      \
    (0u * sizeof(struct {                                                                \
         _Static_assert(VMCS_FIELD_WIDTH(name) == (w),                                   \
                        "VMCS accessor width does not match the field's encoding");     \
         char c_;                                                                        \
     }))
#define VMCS_SLOT_(region, name, w) ((region) + VMCS_SLOT_OFFSET(VMCS_##name) + VMCS_STATIC_WIDTH_(name, w))

#define VMCS_READ16(region, name) ((uint16_t)vmcs_load_le64_(VMCS_SLOT_(region, name, VMCS_WIDTH_16)))
#define VMCS_READ32(region, name) ((uint32_t)vmcs_load_le64_(VMCS_SLOT_(region, name, VMCS_WIDTH_32)))
#define VMCS_READ64(region, name) vmcs_load_le64_(VMCS_SLOT_(region, name, VMCS_WIDTH_64))
#define VMCS_READNATW(region, name) vmcs_load_le64_(VMCS_SLOT_(region, name, VMCS_WIDTH_NATURAL))
#define VMCS_WRITE16(region, name, val) \
    vmcs_store_le64_(VMCS_SLOT_(region, name, VMCS_WIDTH_16), (uint16_t)(val))
#define VMCS_WRITE32(region, name, val) \
    vmcs_store_le64_(VMCS_SLOT_(region, name, VMCS_WIDTH_32), (uint32_t)(val))
#define VMCS_WRITE64(region, name, val) \
    vmcs_store_le64_(VMCS_SLOT_(region, name, VMCS_WIDTH_64), (uint64_t)(val))
#define VMCS_WRITENATW(region, name, val) \
    vmcs_store_le64_(VMCS_SLOT_(region, name, VMCS_WIDTH_NATURAL), (uint64_t)(val))

/* Little-endian 8-byte slot access (helpers of the macros above). The VMCS
 * is guest memory in x86 byte order; vmxsim hosts are little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vmcs.h assumes a little-endian host"
#endif

static inline uint64_t vmcs_load_le64_(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void vmcs_store_le64_(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

/* Bits of a slot a field of this width uses (64-bit and natural width: all, on Intel 64). */
static inline uint64_t vmcs_width_mask(uint32_t enc)
{
    static const uint64_t mask[4] = {0xffffull, ~0ull, 0xffffffffull, ~0ull};
    return mask[VMCS_FIELD_WIDTH(enc)];
}

/* Inline: VM entry reads a hundred fields per entry through it. */
static inline vmxsim_err vmcs_read(const uint8_t *region, uint32_t enc, uint64_t *val)
{
    int idx = vmcs_field_lookup(enc);
    if (idx < 0)
        return VMXSIM_ERR_INTERNAL;
    uint64_t slot = vmcs_load_le64_(region + VMCS_SLOT_OFFSET(idx));
    *val = VMCS_FIELD_IS_HIGH(enc) ? slot >> 32 : slot & vmcs_width_mask(enc);
    return VMXSIM_OK;
}

/* ---- Region header (SDM Vol. 3C §25.2) ----------------------------------- */

uint32_t vmcs_region_revision(const uint8_t *region); /* bits 30:0 */
bool vmcs_region_is_shadow(const uint8_t *region);    /* bit 31 */
uint32_t vmcs_region_abort(const uint8_t *region);
void vmcs_region_set_abort(uint8_t *region, uint32_t indicator);
enum vmcs_launch_state vmcs_region_launch_state(const uint8_t *region);
void vmcs_region_set_launch_state(uint8_t *region, enum vmcs_launch_state state);
/* The vmxsim header (magic, version, count) is present: VMCLEAR has run. */
bool vmcs_region_formatted(const uint8_t *region);
/*
 * VMCLEAR's effect on the region (SDM Vol. 3C §25.11.3, VMCLEAR): launch
 * state := clear. The first VMCLEAR of a region also writes the vmxsim
 * header and zeroes every slot, so field values are deterministic; later
 * ones keep the data (VMCLEAR writes cached data back, it does not erase).
 * Bytes 0-7 (revision, shadow indicator, abort indicator) are untouched.
 */
void vmcs_region_clear(uint8_t *region);

#endif
