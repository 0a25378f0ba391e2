/*
 * VMCS field table, encodings, layout and accessors (src/vmx/vmcs.[ch]).
 * Walks the whole table (STYLE 3, 8) and checks it against expectations
 * typed in independently from SDM Vol. 3D Appendix B, so a wrong row fails.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmx/vmcs.h"

static uint8_t region[VMCS_REGION_SIZE];

static void setup(void)
{
    memset(region, 0, sizeof(region));
}

/* Value mask of a full access, from the width bits (SDM Vol. 3C §25.11.2). */
static uint64_t mask_of(uint32_t enc)
{
    switch (VMCS_FIELD_WIDTH(enc)) {
    case VMCS_WIDTH_16:
        return 0xffffull;
    case VMCS_WIDTH_32:
        return 0xffffffffull;
    default:
        return ~0ull;
    }
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- The table as declared: VMCS_GROUP sections from the .def ----------- */

struct row {
    const char *name;
    uint32_t enc;
    int type;  /* declared by the section's VMCS_GROUP */
    int width; /* declared by the section's VMCS_GROUP */
    int dep;
};

static struct row rows[VMCS_FIELD_COUNT + 1];
static size_t nrows;

static void add_row(const char *name, uint32_t enc, int type, int width, int dep)
{
    ck_assert_uint_lt(nrows, VMCS_FIELD_COUNT + 1);
    rows[nrows++] = (struct row){name, enc, type, width, dep};
}

static void collect_rows(void)
{
    int type = -1, width = -1;
    nrows = 0;
#define VMCS_GROUP(t, w)        \
    type = VMCS_TYPE_##t;       \
    width = VMCS_WIDTH_##w;
#define VMCS_FIELD(name, enc, dep) add_row(#name, (enc), type, width, (dep));
#include "vmx/vmcs_fields.def"
#undef VMCS_FIELD
#undef VMCS_GROUP
}

START_TEST(test_row_count_and_order)
{
    collect_rows();
    ck_assert_uint_eq(nrows, VMCS_FIELD_COUNT);
    ck_assert_uint_eq(vmcs_field_count(), VMCS_FIELD_COUNT);
    /* Tripwire: a new row must update this number on purpose. */
    ck_assert_uint_eq(VMCS_FIELD_COUNT, 199);
    for (size_t i = 0; i < nrows; i++) {
        ck_assert_uint_eq(vmcs_field_encoding(i), rows[i].enc);
        ck_assert_int_eq(vmcs_field_lookup(rows[i].enc), (int)i);
        ck_assert_str_eq(vmcs_field_name(rows[i].enc), rows[i].name);
        ck_assert_int_eq(vmcs_field_dep(rows[i].enc), rows[i].dep);
    }
    ck_assert_uint_eq(vmcs_field_encoding(VMCS_FIELD_COUNT), 0xffffffffu);
}
END_TEST

/* SDM Vol. 3C §25.11.2: bits 31:15 and 12 reserved; full access is even. */
START_TEST(test_encoding_reserved_bits)
{
    for (size_t i = 0; i < vmcs_field_count(); i++) {
        uint32_t enc = vmcs_field_encoding(i);
        ck_assert_msg((enc & VMCS_ENC_RESERVED_31_15) == 0, "%s: bits 31:15", vmcs_field_name(enc));
        ck_assert_msg((enc & VMCS_ENC_RESERVED_12) == 0, "%s: bit 12", vmcs_field_name(enc));
        ck_assert_msg(!VMCS_FIELD_IS_HIGH(enc), "%s: full access must be even", vmcs_field_name(enc));
        ck_assert(vmcs_field_valid(enc));
        ck_assert_uint_eq(VMCS_ENCODE(VMCS_FIELD_WIDTH(enc), VMCS_FIELD_TYPE(enc), VMCS_FIELD_INDEX(enc)),
                          enc);
    }
}
END_TEST

/* Every row's type and width bits agree with its Appendix B section. */
START_TEST(test_declared_groups)
{
    collect_rows();
    for (size_t i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        ck_assert_msg(r->type >= 0 && r->width >= 0, "%s outside a VMCS_GROUP", r->name);
        ck_assert_msg((int)VMCS_FIELD_TYPE(r->enc) == r->type, "%s: type %u, section says %d", r->name,
                      VMCS_FIELD_TYPE(r->enc), r->type);
        ck_assert_msg((int)VMCS_FIELD_WIDTH(r->enc) == r->width, "%s: width %u, section says %d",
                      r->name, VMCS_FIELD_WIDTH(r->enc), r->width);
        ck_assert_int_eq(vmcs_field_read_only(r->enc), r->type == VMCS_TYPE_READ_ONLY);
    }
}
END_TEST

/* Independent cross-checks from the names alone (Linux naming habits). */
START_TEST(test_names_agree_with_bits)
{
    collect_rows();
    for (size_t i = 0; i < nrows; i++) {
        const char *n = rows[i].name;
        uint32_t enc = rows[i].enc, type = VMCS_FIELD_TYPE(enc), width = VMCS_FIELD_WIDTH(enc);
        if (strncmp(n, "GUEST_", 6) == 0)
            ck_assert_msg(type == VMCS_TYPE_GUEST || type == VMCS_TYPE_READ_ONLY, "%s", n);
        else if (strncmp(n, "HOST_", 5) == 0)
            ck_assert_msg(type == VMCS_TYPE_HOST, "%s", n);
        if (type == VMCS_TYPE_HOST)
            ck_assert_msg(strncmp(n, "HOST_", 5) == 0, "%s", n);
        if (has_suffix(n, "_SELECTOR"))
            ck_assert_msg(width == VMCS_WIDTH_16, "%s", n);
        if (has_suffix(n, "_LIMIT") || has_suffix(n, "_AR_BYTES") || has_suffix(n, "_CONTROL") ||
            has_suffix(n, "_COUNT") || has_suffix(n, "_CONTROLS"))
            ck_assert_msg(width == VMCS_WIDTH_32 ||
                              /* 64-bit control words (SDM Table B-4) */
                              strcmp(n, "TERTIARY_VM_EXEC_CONTROL") == 0 ||
                              strcmp(n, "VM_FUNCTION_CONTROL") == 0 ||
                              strcmp(n, "SECONDARY_VM_EXIT_CONTROLS") == 0,
                          "%s", n);
        if (has_suffix(n, "_BASE") || strncmp(n, "GUEST_CR", 8) == 0 || strncmp(n, "HOST_CR", 7) == 0)
            ck_assert_msg(width == VMCS_WIDTH_NATURAL, "%s", n);
        if (has_suffix(n, "_POINTER") || strstr(n, "PDPTR") || strstr(n, "FRED"))
            ck_assert_msg(width == VMCS_WIDTH_64, "%s", n);
        if ((strncmp(n, "GUEST_IA32_", 11) == 0 || strncmp(n, "HOST_IA32_", 10) == 0) && !strstr(n, "SYSENTER"))
            ck_assert_msg(width == VMCS_WIDTH_64, "%s", n);
        if (strstr(n, "FRED") || strstr(n, "EVENT_DATA"))
            ck_assert_msg(rows[i].dep == VMCS_DEP_FRED, "%s", n);
        else if (strstr(n, "SSP") || strstr(n, "S_CET"))
            ck_assert_msg(rows[i].dep == VMCS_DEP_CET, "%s", n);
        if (strstr(n, "PKRS"))
            ck_assert_msg(rows[i].dep == VMCS_DEP_PKS, "%s", n);
        if (strstr(n, "PDPTR") || strstr(n, "EPT_POINTER") == n)
            ck_assert_msg(rows[i].dep == VMCS_DEP_EPT, "%s", n);
        if (strstr(n, "EOI_EXIT"))
            ck_assert_msg(rows[i].dep == VMCS_DEP_APICV, "%s", n);
    }
}
END_TEST

START_TEST(test_no_duplicates)
{
    size_t n = vmcs_field_count();
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            ck_assert_msg(vmcs_field_encoding(i) != vmcs_field_encoding(j), "duplicate encoding %#x",
                          vmcs_field_encoding(i));
            ck_assert_msg(strcmp(vmcs_field_name(vmcs_field_encoding(i)),
                                 vmcs_field_name(vmcs_field_encoding(j))) != 0,
                          "duplicate name %s", vmcs_field_name(vmcs_field_encoding(i)));
        }
    }
    for (int a = 0; a < VMCS_DEP_COUNT; a++) {
        ck_assert_ptr_nonnull(vmcs_dep_name((enum vmcs_dep)a));
        ck_assert_ptr_nonnull(vmcs_dep_description((enum vmcs_dep)a));
        for (int b = a + 1; b < VMCS_DEP_COUNT; b++)
            ck_assert_str_ne(vmcs_dep_name((enum vmcs_dep)a), vmcs_dep_name((enum vmcs_dep)b));
    }
    ck_assert_ptr_null(vmcs_dep_name(VMCS_DEP_COUNT));
}
END_TEST

/* SDM Vol. 3C §25.11.2: only 64-bit fields have a high access (enc | 1). */
START_TEST(test_high_access_validity)
{
    char want[96];
    for (size_t i = 0; i < vmcs_field_count(); i++) {
        uint32_t enc = vmcs_field_encoding(i), hi = VMCS_HIGH(enc);
        uint64_t v;
        if (VMCS_FIELD_WIDTH(enc) == VMCS_WIDTH_64) {
            ck_assert(vmcs_field_valid(hi));
            ck_assert_int_eq(vmcs_field_lookup(hi), (int)i);
            snprintf(want, sizeof(want), "%s_HIGH", vmcs_field_name(enc));
            ck_assert_str_eq(vmcs_field_name(hi), want);
            ck_assert_int_eq(vmcs_field_read_only(hi), vmcs_field_read_only(enc));
            ck_assert_int_eq(vmcs_field_dep(hi), vmcs_field_dep(enc));
        } else {
            ck_assert_msg(!vmcs_field_valid(hi), "%s high access accepted", vmcs_field_name(enc));
            ck_assert_int_eq(vmcs_field_lookup(hi), -1);
            ck_assert_ptr_null(vmcs_field_name(hi));
            ck_assert_int_eq(vmcs_read(region, hi, &v), VMXSIM_ERR_INTERNAL);
            ck_assert_int_eq(vmcs_write(region, hi, 1), VMXSIM_ERR_INTERNAL);
        }
    }
}
END_TEST

static uint64_t pattern(size_t i)
{
    return 0xfedcba9876543210ull ^ (0x0101010101010101ull * (uint64_t)(i + 1));
}

/* Write every field, then read every field: truncation per width, one slot
 * per field, nothing overlaps, the header is untouched. */
START_TEST(test_round_trip_all_fields)
{
    size_t n = vmcs_field_count();
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(vmcs_write(region, vmcs_field_encoding(i), pattern(i)), VMXSIM_OK);
    for (size_t i = 0; i < n; i++) {
        uint32_t enc = vmcs_field_encoding(i);
        uint64_t v = 0, raw = 0;
        ck_assert_int_eq(vmcs_read(region, enc, &v), VMXSIM_OK);
        ck_assert_msg(v == (pattern(i) & mask_of(enc)), "%s: read %#llx", vmcs_field_name(enc),
                      (unsigned long long)v);
        for (int b = 7; b >= 0; b--)
            raw = raw << 8 | region[VMCS_OFF_FIELDS + 8 * i + (size_t)b];
        ck_assert_msg(raw == (pattern(i) & mask_of(enc)), "%s: slot %zu holds %#llx",
                      vmcs_field_name(enc), i, (unsigned long long)raw);
    }
    for (size_t b = 0; b < VMCS_OFF_FIELDS; b++)
        ck_assert_uint_eq(region[b], 0);
    for (size_t b = VMCS_SLOT_OFFSET(n); b < VMCS_REGION_SIZE; b++)
        ck_assert_uint_eq(region[b], 0);
}
END_TEST

/* Reads mask to the width even if the slot holds stray upper bits (a guest
 * that scribbled on its VMCS region). */
START_TEST(test_read_masks_stray_bits)
{
    memset(region + VMCS_OFF_FIELDS, 0xff, 8u * VMCS_FIELD_COUNT);
    for (size_t i = 0; i < vmcs_field_count(); i++) {
        uint32_t enc = vmcs_field_encoding(i);
        uint64_t v;
        ck_assert_int_eq(vmcs_read(region, enc, &v), VMXSIM_OK);
        ck_assert_uint_eq(v, mask_of(enc));
    }
}
END_TEST

/* SDM Vol. 3C §25.11.2: high access reads/writes bits 63:32 only. */
START_TEST(test_high_access_semantics)
{
    for (size_t i = 0; i < vmcs_field_count(); i++) {
        uint32_t enc = vmcs_field_encoding(i), hi = VMCS_HIGH(enc);
        uint64_t v;
        if (VMCS_FIELD_WIDTH(enc) != VMCS_WIDTH_64)
            continue;
        ck_assert_int_eq(vmcs_write(region, enc, 0x1111111122222222ull), VMXSIM_OK);
        ck_assert_int_eq(vmcs_write(region, hi, 0xaaaaaaaabbbbbbbbull), VMXSIM_OK);
        ck_assert_int_eq(vmcs_read(region, enc, &v), VMXSIM_OK);
        ck_assert_uint_eq(v, 0xbbbbbbbb22222222ull);
        ck_assert_int_eq(vmcs_read(region, hi, &v), VMXSIM_OK);
        ck_assert_uint_eq(v, 0xbbbbbbbbull);
        ck_assert_int_eq(vmcs_write(region, enc, 0x3333333344444444ull), VMXSIM_OK);
        ck_assert_int_eq(vmcs_read(region, hi, &v), VMXSIM_OK);
        ck_assert_uint_eq(v, 0x33333333ull);
        ck_assert_int_eq(vmcs_write(region, hi, 0), VMXSIM_OK);
        ck_assert_int_eq(vmcs_read(region, enc, &v), VMXSIM_OK);
        ck_assert_uint_eq(v, 0x44444444ull);
    }
}
END_TEST

/* STYLE 3: exactly the accessor of the field's width accepts it. */
START_TEST(test_typed_accessors)
{
    for (size_t i = 0; i < vmcs_field_count(); i++) {
        uint32_t enc = vmcs_field_encoding(i), w = VMCS_FIELD_WIDTH(enc);
        uint16_t v16;
        uint32_t v32;
        uint64_t v64;
        ck_assert_int_eq(vmcs_write16(region, enc, 0xbeef) == VMXSIM_OK, w == VMCS_WIDTH_16);
        ck_assert_int_eq(vmcs_write32(region, enc, 0xdeadbeef) == VMXSIM_OK, w == VMCS_WIDTH_32);
        ck_assert_int_eq(vmcs_write64(region, enc, 0x0123456789abcdefull) == VMXSIM_OK, w == VMCS_WIDTH_64);
        ck_assert_int_eq(vmcs_writenatw(region, enc, 0xfedcba9876543210ull) == VMXSIM_OK,
                         w == VMCS_WIDTH_NATURAL);
        ck_assert_int_eq(vmcs_read16(region, enc, &v16) == VMXSIM_OK, w == VMCS_WIDTH_16);
        ck_assert_int_eq(vmcs_read32(region, enc, &v32) == VMXSIM_OK, w == VMCS_WIDTH_32);
        ck_assert_int_eq(vmcs_read64(region, enc, &v64) == VMXSIM_OK, w == VMCS_WIDTH_64);
        if (w == VMCS_WIDTH_16)
            ck_assert_uint_eq(v16, 0xbeef);
        if (w == VMCS_WIDTH_32)
            ck_assert_uint_eq(v32, 0xdeadbeef);
        if (w == VMCS_WIDTH_64) {
            ck_assert_uint_eq(v64, 0x0123456789abcdefull);
            /* typed accessors take whole fields only */
            ck_assert_int_eq(vmcs_read64(region, VMCS_HIGH(enc), &v64), VMXSIM_ERR_INTERNAL);
            ck_assert_int_eq(vmcs_write64(region, VMCS_HIGH(enc), 1), VMXSIM_ERR_INTERNAL);
            ck_assert_int_eq(vmcs_read32(region, VMCS_HIGH(enc), &v32), VMXSIM_ERR_INTERNAL);
        }
        ck_assert_int_eq(vmcs_readnatw(region, enc, &v64) == VMXSIM_OK, w == VMCS_WIDTH_NATURAL);
        if (w == VMCS_WIDTH_NATURAL)
            ck_assert_uint_eq(v64, 0xfedcba9876543210ull);
    }
    ck_assert_int_eq(vmcs_write32(region, 0x482c, 1), VMXSIM_ERR_INTERNAL); /* unused index */
}
END_TEST

/* The compile-time-checked macros on constant encodings. */
START_TEST(test_static_accessors)
{
    uint64_t v;
    VMCS_WRITE16(region, GUEST_CS_SELECTOR, 0x12345); /* truncated to 0x2345 */
    VMCS_WRITE32(region, VM_EXIT_REASON, 0x80000021u);
    VMCS_WRITE64(region, EPT_POINTER, 0x000000012345601eull);
    VMCS_WRITENATW(region, GUEST_RIP, 0xffffffff81000000ull);
    ck_assert_uint_eq(VMCS_READ16(region, GUEST_CS_SELECTOR), 0x2345);
    ck_assert_uint_eq(VMCS_READ32(region, VM_EXIT_REASON), 0x80000021u);
    ck_assert_uint_eq(VMCS_READ64(region, EPT_POINTER), 0x000000012345601eull);
    ck_assert_uint_eq(VMCS_READNATW(region, GUEST_RIP), 0xffffffff81000000ull);
    ck_assert_int_eq(vmcs_read(region, VMCS_HIGH(EPT_POINTER), &v), VMXSIM_OK);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(vmcs_read(region, GUEST_CS_SELECTOR, &v), VMXSIM_OK);
    ck_assert_uint_eq(v, 0x2345);
    /* The slot sits where the layout says: 0x20 + 8 * table index. */
    ck_assert_uint_eq(region[VMCS_SLOT_OFFSET(VMCS_GUEST_RIP) + 3], 0x81);
    ck_assert_uint_eq(region[VMCS_SLOT_OFFSET(VMCS_GUEST_RIP) + 7], 0xff);
    ck_assert_int_eq(vmcs_field_lookup(GUEST_RIP), VMCS_GUEST_RIP);
#ifdef VMCS_TEST_COMPILE_FAIL
    /* Must not compile: a 32-bit field through the 16-bit accessor. */
    (void)VMCS_READ16(region, VM_EXIT_REASON);
    /* Must not compile: a natural-width field through the 64-bit accessor. */
    VMCS_WRITE64(region, GUEST_RIP, 0);
    /* Must not compile: not a row of the table. */
    (void)VMCS_READ32(region, GUEST_IA32_SPEC_CTRL);
#endif
}
END_TEST

/*
 * Encodings typed in from SDM Vol. 3D Appendix B (Tables B-1 … B-15),
 * independent of vmcs_fields.def: a wrong row fails here.
 */
static const struct {
    const char *name;
    uint32_t enc;
} sdm_spot[] = {
    {"VIRTUAL_PROCESSOR_ID", 0x0000},
    {"POSTED_INTR_NV", 0x0002},
    {"EPTP_INDEX", 0x0004},
    {"GUEST_ES_SELECTOR", 0x0800},
    {"GUEST_TR_SELECTOR", 0x080e},
    {"GUEST_INTR_STATUS", 0x0810},
    {"GUEST_PML_INDEX", 0x0812},
    {"GUEST_UINV", 0x0814},
    {"HOST_ES_SELECTOR", 0x0c00},
    {"HOST_TR_SELECTOR", 0x0c0c},
    {"IO_BITMAP_A", 0x2000},
    {"IO_BITMAP_B", 0x2002},
    {"MSR_BITMAP", 0x2004},
    {"VM_EXIT_MSR_STORE_ADDR", 0x2006},
    {"VM_ENTRY_MSR_LOAD_ADDR", 0x200a},
    {"PML_ADDRESS", 0x200e},
    {"TSC_OFFSET", 0x2010},
    {"TSC_OFFSET_HIGH", 0x2011},
    {"VIRTUAL_APIC_PAGE_ADDR", 0x2012},
    {"APIC_ACCESS_ADDR", 0x2014},
    {"POSTED_INTR_DESC_ADDR", 0x2016},
    {"EPT_POINTER", 0x201a},
    {"EPT_POINTER_HIGH", 0x201b},
    {"EOI_EXIT_BITMAP3", 0x2022},
    {"VMREAD_BITMAP", 0x2026},
    {"VMWRITE_BITMAP", 0x2028},
    {"XSS_EXIT_BITMAP", 0x202c},
    {"TSC_MULTIPLIER", 0x2032},
    {"TERTIARY_VM_EXEC_CONTROL", 0x2034},
    {"HLAT_POINTER", 0x2040},
    {"PID_POINTER_TABLE", 0x2042},
    {"SECONDARY_VM_EXIT_CONTROLS", 0x2044},
    {"IA32_SPEC_CTRL_MASK", 0x204a},
    {"IA32_SPEC_CTRL_SHADOW", 0x204c},
    {"INJECTED_EVENT_DATA", 0x2052},
    {"GUEST_PHYSICAL_ADDRESS", 0x2400},
    {"ORIGINAL_EVENT_DATA", 0x2404},
    {"VMCS_LINK_POINTER", 0x2800},
    {"GUEST_IA32_DEBUGCTL", 0x2802},
    {"GUEST_IA32_PAT", 0x2804},
    {"GUEST_IA32_EFER", 0x2806},
    {"GUEST_PDPTR0", 0x280a},
    {"GUEST_PDPTR3", 0x2810},
    {"GUEST_BNDCFGS", 0x2812},
    {"GUEST_IA32_RTIT_CTL", 0x2814},
    {"GUEST_IA32_LBR_CTL", 0x2816},
    {"GUEST_IA32_PKRS", 0x2818},
    {"GUEST_IA32_PKRS_HIGH", 0x2819},
    {"GUEST_IA32_FRED_CONFIG", 0x281a},
    {"HOST_IA32_PAT", 0x2c00},
    {"HOST_IA32_EFER", 0x2c02},
    {"HOST_IA32_PERF_GLOBAL_CTRL", 0x2c04},
    {"HOST_IA32_PKRS", 0x2c06},
    {"HOST_IA32_FRED_SSP3", 0x2c16},
    {"PIN_BASED_VM_EXEC_CONTROL", 0x4000},
    {"CPU_BASED_VM_EXEC_CONTROL", 0x4002},
    {"EXCEPTION_BITMAP", 0x4004},
    {"CR3_TARGET_COUNT", 0x400a},
    {"VM_EXIT_CONTROLS", 0x400c},
    {"VM_ENTRY_CONTROLS", 0x4012},
    {"VM_ENTRY_INTR_INFO_FIELD", 0x4016},
    {"TPR_THRESHOLD", 0x401c},
    {"SECONDARY_VM_EXEC_CONTROL", 0x401e},
    {"NOTIFY_WINDOW", 0x4024},
    {"VM_INSTRUCTION_ERROR", 0x4400},
    {"VM_EXIT_REASON", 0x4402},
    {"VM_EXIT_INTR_INFO", 0x4404},
    {"IDT_VECTORING_INFO_FIELD", 0x4408},
    {"VM_EXIT_INSTRUCTION_LEN", 0x440c},
    {"VMX_INSTRUCTION_INFO", 0x440e},
    {"GUEST_ES_LIMIT", 0x4800},
    {"GUEST_IDTR_LIMIT", 0x4812},
    {"GUEST_ES_AR_BYTES", 0x4814},
    {"GUEST_TR_AR_BYTES", 0x4822},
    {"GUEST_INTERRUPTIBILITY_INFO", 0x4824},
    {"GUEST_ACTIVITY_STATE", 0x4826},
    {"GUEST_SMBASE", 0x4828},
    {"GUEST_SYSENTER_CS", 0x482a},
    {"VMX_PREEMPTION_TIMER_VALUE", 0x482e},
    {"HOST_IA32_SYSENTER_CS", 0x4c00},
    {"CR0_GUEST_HOST_MASK", 0x6000},
    {"CR4_READ_SHADOW", 0x6006},
    {"CR3_TARGET_VALUE0", 0x6008},
    {"EXIT_QUALIFICATION", 0x6400},
    {"IO_RCX", 0x6402},
    {"IO_RIP", 0x6408},
    {"GUEST_LINEAR_ADDRESS", 0x640a},
    {"GUEST_CR0", 0x6800},
    {"GUEST_CR3", 0x6802},
    {"GUEST_ES_BASE", 0x6806},
    {"GUEST_DR7", 0x681a},
    {"GUEST_RIP", 0x681e},
    {"GUEST_RFLAGS", 0x6820},
    {"GUEST_PENDING_DBG_EXCEPTIONS", 0x6822},
    {"GUEST_S_CET", 0x6828},
    {"GUEST_SSP", 0x682a},
    {"GUEST_INTR_SSP_TABLE", 0x682c},
    {"HOST_CR0", 0x6c00},
    {"HOST_FS_BASE", 0x6c06},
    {"HOST_IA32_SYSENTER_EIP", 0x6c12},
    {"HOST_RSP", 0x6c14},
    {"HOST_RIP", 0x6c16},
    {"HOST_S_CET", 0x6c18},
    {"HOST_SSP", 0x6c1a},
    {"HOST_INTR_SSP_TABLE", 0x6c1c},
};

START_TEST(test_sdm_spot_checks)
{
    for (size_t i = 0; i < sizeof(sdm_spot) / sizeof(sdm_spot[0]); i++) {
        const char *got = vmcs_field_name(sdm_spot[i].enc);
        ck_assert_msg(got != NULL, "%s (%#x) unknown", sdm_spot[i].name, sdm_spot[i].enc);
        ck_assert_msg(strcmp(got, sdm_spot[i].name) == 0, "%#x is %s, SDM says %s", sdm_spot[i].enc,
                      got, sdm_spot[i].name);
    }
    /* The generated constants are the architectural encodings. */
    ck_assert_uint_eq(GUEST_ES_SELECTOR, 0x800);
    ck_assert_uint_eq(HOST_RIP, 0x6c16);
    ck_assert_uint_eq(VM_EXIT_REASON, 0x4402);
    ck_assert_uint_eq(EPT_POINTER, 0x201a);
    ck_assert_uint_eq(GUEST_IA32_PKRS, 0x2818);
    ck_assert_uint_eq(HOST_IA32_PKRS, 0x2c06);
    ck_assert_uint_eq(TERTIARY_VM_EXEC_CONTROL, 0x2034);
}
END_TEST

START_TEST(test_dependency_tokens)
{
    static const struct {
        uint32_t enc;
        enum vmcs_dep dep;
    } want[] = {
        {GUEST_ES_SELECTOR, VMCS_DEP_NONE},          {VIRTUAL_PROCESSOR_ID, VMCS_DEP_VPID},
        {POSTED_INTR_NV, VMCS_DEP_POSTED},           {EPT_POINTER, VMCS_DEP_EPT},
        {GUEST_PHYSICAL_ADDRESS, VMCS_DEP_EPT},      {GUEST_IA32_PKRS, VMCS_DEP_PKS},
        {HOST_IA32_PKRS, VMCS_DEP_PKS},              {TERTIARY_VM_EXEC_CONTROL, VMCS_DEP_TERTIARY},
        {IA32_SPEC_CTRL_MASK, VMCS_DEP_SPEC_CTRL_VIRT}, {IA32_SPEC_CTRL_SHADOW, VMCS_DEP_SPEC_CTRL_VIRT},
        {VMX_PREEMPTION_TIMER_VALUE, VMCS_DEP_PREEMPTION_TIMER}, {PML_ADDRESS, VMCS_DEP_PML},
        {VM_FUNCTION_CONTROL, VMCS_DEP_VMFUNC},      {VIRTUAL_APIC_PAGE_ADDR, VMCS_DEP_TPR_SHADOW},
        {GUEST_S_CET, VMCS_DEP_CET},                 {HOST_INTR_SSP_TABLE, VMCS_DEP_CET},
        {GUEST_IA32_RTIT_CTL, VMCS_DEP_PT},          {GUEST_BNDCFGS, VMCS_DEP_MPX},
        {TSC_MULTIPLIER, VMCS_DEP_TSC_SCALING},      {XSS_EXIT_BITMAP, VMCS_DEP_XSAVES},
        {VE_INFORMATION_ADDRESS, VMCS_DEP_EPT_VE},   {ENCLS_EXITING_BITMAP, VMCS_DEP_ENCLS},
        {VMREAD_BITMAP, VMCS_DEP_SHADOW_VMCS},       {GUEST_IA32_LBR_CTL, VMCS_DEP_LBR},
        {POSTED_INTR_DESC_ADDR, VMCS_DEP_POSTED},    {HLAT_POINTER, VMCS_DEP_HLAT},
        {PID_POINTER_TABLE, VMCS_DEP_IPI_VIRT},      {LAST_PID_POINTER_INDEX, VMCS_DEP_IPI_VIRT},
        {TSC_OFFSET, VMCS_DEP_NONE},                 {VM_EXIT_REASON, VMCS_DEP_NONE},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(vmcs_field_dep(want[i].enc) == want[i].dep, "%s: %s", vmcs_field_name(want[i].enc),
                      vmcs_dep_name(vmcs_field_dep(want[i].enc)));
    ck_assert_str_eq(vmcs_dep_name(VMCS_DEP_PKS), "PKS");
    ck_assert_int_eq(vmcs_field_dep(0x482c), VMCS_DEP_COUNT);
}
END_TEST

/* SDM Vol. 3D §A.9: IA32_VMX_VMCS_ENUM bits 9:1 = highest index in use. */
START_TEST(test_vmcs_enum)
{
    uint32_t max_index = 0;
    bool present[VMCS_DEP_COUNT];
    for (size_t i = 0; i < vmcs_field_count(); i++)
        if (VMCS_FIELD_INDEX(vmcs_field_encoding(i)) > max_index)
            max_index = VMCS_FIELD_INDEX(vmcs_field_encoding(i));
    ck_assert_uint_eq(vmcs_enum_value(), (uint64_t)max_index << 1);
    ck_assert_uint_eq(vmcs_enum_value() & ~0x3feull, 0);
    /* Independent: the highest index is INJECTED_EVENT_DATA (2052H), 41. */
    ck_assert_uint_eq(vmcs_enum_value(), 41u << 1);

    memset(present, 0, sizeof(present));
    /* Only fields every VMX processor has: GUEST_SYSENTER_CS (482AH), 21. */
    ck_assert_uint_eq(vmcs_enum_value_for(present), 21u << 1);
    present[VMCS_DEP_PREEMPTION_TIMER] = true; /* 482EH, 23 */
    ck_assert_uint_eq(vmcs_enum_value_for(present), 23u << 1);
    for (int d = 0; d < VMCS_DEP_COUNT; d++)
        present[d] = d != VMCS_DEP_FRED;
    /* Without FRED: IA32_SPEC_CTRL_SHADOW (204CH), 38. */
    ck_assert_uint_eq(vmcs_enum_value_for(present), 38u << 1);
    present[VMCS_DEP_FRED] = true;
    ck_assert_uint_eq(vmcs_enum_value_for(present), vmcs_enum_value());
}
END_TEST

START_TEST(test_invalid_encodings)
{
    static const uint32_t bad[] = {
        0x00008000, /* bit 15 (reserved 31:15) */
        0x00010800, /* bit 16 + GUEST_ES_SELECTOR */
        0x80000800, /* bit 31 + GUEST_ES_SELECTOR */
        0xffffffff,
        0x00001800, /* bit 12 + GUEST_ES_SELECTOR */
        0x00003000, /* bit 12 + IO_BITMAP_A */
        0x00000801, /* high access of a 16-bit field */
        0x00004401, /* high access of a 32-bit field */
        0x00006801, /* high access of a natural-width field */
        0x0000482c, /* unused 32-bit guest index 22 */
        0x00000c0e, /* no 16-bit host LDTR selector */
        0x00004c02, 0x00006c1e, 0x00006410, 0x0000402a,
        0x00002046, 0x00002048, 0x0000204e, 0x00002050, /* gaps in Table B-4 */
        0x0000000a, 0x00002402, 0x0000282e, 0x00002830, 0x00002c1a, 0x00004026, /* not in the table */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 0x5a5a;
        ck_assert_msg(!vmcs_field_valid(bad[i]), "%#x accepted", bad[i]);
        ck_assert_int_eq(vmcs_field_lookup(bad[i]), -1);
        ck_assert(!vmcs_field_read_only(bad[i]));
        ck_assert_ptr_null(vmcs_field_name(bad[i]));
        ck_assert_int_eq(vmcs_field_dep(bad[i]), VMCS_DEP_COUNT);
        ck_assert_int_eq(vmcs_read(region, bad[i], &v), VMXSIM_ERR_INTERNAL);
        ck_assert_uint_eq(v, 0x5a5a);
        ck_assert_int_eq(vmcs_write(region, bad[i], 1), VMXSIM_ERR_INTERNAL);
    }
    for (size_t b = 0; b < VMCS_REGION_SIZE; b++)
        ck_assert_uint_eq(region[b], 0);
}
END_TEST

/* SDM Vol. 3C §25.2 header, launch state, VMCLEAR formatting. */
START_TEST(test_region_header)
{
    uint64_t v;
    region[0] = 0x01;
    region[3] = 0x80; /* revision 1, shadow-VMCS indicator */
    ck_assert_uint_eq(vmcs_region_revision(region), 1);
    ck_assert(vmcs_region_is_shadow(region));
    region[3] = 0x12;
    ck_assert_uint_eq(vmcs_region_revision(region), 0x12000001u);
    ck_assert(!vmcs_region_is_shadow(region));
    vmcs_region_set_abort(region, 3);
    ck_assert_uint_eq(vmcs_region_abort(region), 3);
    ck_assert_uint_eq(region[4], 3);

    memset(region + 8, 0xa5, VMCS_REGION_SIZE - 8); /* never VMCLEARed: garbage */
    ck_assert(!vmcs_region_formatted(region));
    vmcs_region_clear(region);
    ck_assert(vmcs_region_formatted(region));
    ck_assert_mem_eq(region + VMCS_OFF_MAGIC, "VMXS", 4);
    ck_assert_int_eq(vmcs_region_launch_state(region), VMCS_LAUNCH_CLEAR);
    ck_assert_uint_eq(vmcs_region_revision(region), 0x12000001u);
    ck_assert_uint_eq(vmcs_region_abort(region), 3);
    for (size_t i = 0; i < vmcs_field_count(); i++) {
        ck_assert_int_eq(vmcs_read(region, vmcs_field_encoding(i), &v), VMXSIM_OK);
        ck_assert_uint_eq(v, 0);
    }
    ck_assert_uint_eq(region[VMCS_SLOT_OFFSET(VMCS_FIELD_COUNT)], 0xa5); /* tail untouched */

    VMCS_WRITENATW(region, GUEST_RIP, 0x1000);
    vmcs_region_set_launch_state(region, VMCS_LAUNCH_LAUNCHED);
    ck_assert_int_eq(vmcs_region_launch_state(region), VMCS_LAUNCH_LAUNCHED);
    vmcs_region_clear(region); /* again: data kept, launch state clear */
    ck_assert_int_eq(vmcs_region_launch_state(region), VMCS_LAUNCH_CLEAR);
    ck_assert_uint_eq(VMCS_READNATW(region, GUEST_RIP), 0x1000);
}
END_TEST

static Suite *vmcs_suite(void)
{
    Suite *s = suite_create("vmcs");
    TCase *tc = tcase_create("fields");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_row_count_and_order);
    tcase_add_test(tc, test_encoding_reserved_bits);
    tcase_add_test(tc, test_declared_groups);
    tcase_add_test(tc, test_names_agree_with_bits);
    tcase_add_test(tc, test_no_duplicates);
    tcase_add_test(tc, test_high_access_validity);
    tcase_add_test(tc, test_round_trip_all_fields);
    tcase_add_test(tc, test_read_masks_stray_bits);
    tcase_add_test(tc, test_high_access_semantics);
    tcase_add_test(tc, test_typed_accessors);
    tcase_add_test(tc, test_static_accessors);
    tcase_add_test(tc, test_sdm_spot_checks);
    tcase_add_test(tc, test_dependency_tokens);
    tcase_add_test(tc, test_vmcs_enum);
    tcase_add_test(tc, test_invalid_encodings);
    tcase_add_test(tc, test_region_header);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(vmcs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
