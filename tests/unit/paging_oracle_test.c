/*
 * Differential test of the guest-paging walker (src/paging, DESIGN §4)
 * against an independent oracle: QEMU's own x86 MMU as built into Unicorn
 * (UC_TLB_CPU, the default TLB mode, so QEMU walks the page tables itself).
 * docs/PAGING_ORACLE.md explains the method and every named exception.
 *
 * Each case is a random paging state (32-bit with/without PSE, PAE, 4- and
 * 5-level paging; CR0.WP, CR4.PSE/PGE/SMEP/SMAP/PKE, EFER.NXE, PKRU,
 * RFLAGS.AC, CPL 0 or 3) with random paging structures and one access:
 * a data read, a data write, an instruction fetch, or an implicit
 * supervisor-mode read (and, when the descriptor's accessed bit is clear,
 * write) of a segment descriptor in the LDT.
 *
 * vmxsim side: paging_walk() over a mirror of the physical memory image.
 * Oracle side: the same image mapped into Unicorn; QEMU executes ONE access
 * instruction (after WRPKRU and IRET to CPL 3 where the case needs them):
 *   - success outside RAM: Unicorn's *_UNMAPPED hook reports the physical
 *     address QEMU translated to;
 *   - success inside RAM: every 8-byte slot of the data region is
 *     "B8 <tag> <pa/8:24> F4 00 00": as data it names its own physical
 *     address, as code it is "mov eax, imm32; hlt", as a segment descriptor
 *     it is a present DPL-3 data segment whose base is pa/8;
 *   - a fault: UC_HOOK_INTR gives the vector, uc_reg_read the CR2, and the
 *     error code comes from QEMU's env->error_code in a saved context, at
 *     an offset found by calibration against hand-computed faults;
 *   - the accessed/dirty flags: the whole page-table region is compared.
 * Both sides must agree exactly, except for the NAMED EXCEPTIONS below,
 * each of which turns the SDM answer into QEMU's documented answer for one
 * precisely described class of cases and then compares everything.
 *
 * Environment: PAGING_ORACLE_SEED (default below), PAGING_ORACLE_CASES
 * (default 120000), PAGING_ORACLE_CASE=<n> (run only case n, verbosely),
 * PAGING_ORACLE_DEBUG=1 (trace the error-code calibration).
 */
#include <check.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unicorn/unicorn.h>

#include "arch/x86.h"
#include "paging/paging.h"

#define DEFAULT_SEED 0x5EED0F0A0C1E2024ULL
#define DEFAULT_CASES 120000UL
#define MAX_REPORTED 12 /* mismatches printed in full */

/* ---- architectural constants, written down from the SDM ----------------- */

/* Paging-structure entry bits — SDM Vol. 3A Tables 4-4 to 4-20 */
#define E_P 0x1ULL
#define E_RW 0x2ULL
#define E_US 0x4ULL
#define E_PWT 0x8ULL
#define E_PCD 0x10ULL
#define E_A 0x20ULL
#define E_D 0x40ULL
#define E_PS 0x80ULL
#define E_G 0x100ULL
#define E_XD 0x8000000000000000ULL
#define E_PK(k) ((uint64_t)(k) << 59)
#define B(n) (1ULL << (n))
#define MASK(hi, lo) ((~0ULL >> (63 - (hi))) & (~0ULL << (lo)))

/* #PF error code — SDM Vol. 3A §4.7 */
#define EC_P 0x01u
#define EC_W 0x02u
#define EC_U 0x04u
#define EC_RSVD 0x08u
#define EC_I 0x10u
#define EC_PK 0x20u

#define CR0_PE B(0)
#define CR0_ET B(4)
#define CR0_WP B(16)
#define CR0_PG B(31)
#define CR4_PSE B(4)
#define CR4_PAE B(5)
#define CR4_PGE B(7)
#define CR4_LA57 B(12)
#define CR4_SMEP B(20)
#define CR4_SMAP B(21)
#define CR4_PKE B(22)
#define EFER_LME B(8)
#define EFER_LMA B(10)
#define EFER_NXE B(11)
#define RFLAGS_AC B(18)
#define MSR_EFER 0xC0000080u

/* QEMU TCG's physical-address width (target/i386/cpu.h TCG_PHYS_ADDR_BITS). */
#define MAXPHY 40

/* ---- physical memory layout --------------------------------------------- */

#define RAM_SIZE 0x400000ULL /* 4 MiB at physical 0; everything above is unbacked */
#define DATA_BASE 0x100000ULL /* [1 MiB, 4 MiB): self-describing slots */
#define PG 0x1000ULL

#define PA_CODE_SUP_L 0x01000ULL /* 64-bit harness code, CPL 0 */
#define PA_CODE_USR_L 0x02000ULL /* 64-bit harness code, CPL 3 */
#define PA_CODE_SUP_P 0x03000ULL /* 32-bit harness code, CPL 0 */
#define PA_CODE_USR_P 0x04000ULL /* 32-bit harness code, CPL 3 */
#define PA_GDT_L 0x05000ULL
#define PA_GDT_P 0x06000ULL
#define PA_STACK 0x07000ULL
#define PA_STUB_P 0x08000ULL /* one-time segment set-up of the 32-bit engine */
#define PA_H32_PT 0x10000ULL /* harness tables (constant) */
#define PA_HPAE_PD 0x11000ULL
#define PA_HPAE_PT 0x12000ULL
#define PA_HL_PML4 0x13000ULL
#define PA_HL_PDPT 0x14000ULL
#define PA_HL_PD 0x15000ULL
#define PA_HL_PT 0x16000ULL
#define PA_POOL 0x20000ULL /* per-case tables */
#define POOL_PAGES 8
#define TABLES_LO PA_H32_PT
#define TABLES_HI (PA_POOL + POOL_PAGES * PG)

/* Harness window (linear): supervisor code, user code, GDT, stack pages. */
#define H_SUP 0x0000ULL
#define H_USR 0x1000ULL
#define H_GDT 0x2000ULL
#define H_STK 0x3000ULL
#define STK_FRAME 0xF00ULL /* IRET frame offset in the stack page */

/* Selectors of the harness GDTs (entries 1..4). */
#define SEL_UCODE 0x1B
#define SEL_UDATA 0x23

#define SLOT_TAG 0x5Au

enum acc_kind { AK_READ, AK_WRITE, AK_FETCH, AK_IMPLICIT, AK_COUNT };
static const char *const acc_name[AK_COUNT] = {"read", "write", "fetch", "implicit"};
static const char *mode_name(enum paging_mode m)
{
    static const char *const n[] = {"none", "32-bit", "PAE", "4-level", "5-level"};
    return n[m];
}
static bool is_long(enum paging_mode m)
{
    return m == PAGING_MODE_4LEVEL || m == PAGING_MODE_5LEVEL;
}
static unsigned top_level(enum paging_mode m)
{
    return m == PAGING_MODE_32BIT ? 2 : m == PAGING_MODE_PAE ? 3 : m == PAGING_MODE_4LEVEL ? 4 : 5;
}

/* ---- memory images ------------------------------------------------------- */

static uint8_t *ram;   /* what QEMU sees (mapped with uc_mem_map_ptr) */
static uint8_t *vmram; /* what paging_walk sees: the expected image */
static uint8_t *ram0;  /* pristine image, for restoring after each case */

static uint64_t ld(const uint8_t *m, uint64_t pa, unsigned size)
{
    uint64_t v = 0;
    memcpy(&v, m + pa, size);
    return v;
}
static void st(uint8_t *m, uint64_t pa, unsigned size, uint64_t v) { memcpy(m + pa, &v, size); }

static uint64_t slot_value(uint64_t pa)
{
    return 0xB8ULL | ((uint64_t)SLOT_TAG << 8) | ((pa >> 3) << 16) | (0xF4ULL << 40);
}
static bool slot_decode(uint64_t v, uint64_t *pa)
{
    if ((v & 0xFFFF) != (0xB8u | SLOT_TAG << 8) || ((v >> 40) & 0xFE) != 0xF4 || (v >> 48) != 0)
        return false;
    *pa = ((v >> 16) & 0xFFFFFF) << 3;
    return true;
}

/* Accessor for paging_walk over vmram, recording the entries it reads. */
struct vm_trace {
    unsigned n;
    uint64_t pa[8], val[8]; /* entries read by the current walk, root first, as read */
    unsigned size[8];
};
static struct vm_trace trace;
static bool trace_misaligned;
static uint64_t touched[64]; /* every entry any walk of the case read: restored afterwards */
static unsigned ntouched;

static enum paging_mem_status vm_read(void *ctx, uint64_t pa, unsigned size, uint64_t *val)
{
    (void)ctx;
    if (pa % size != 0)
        trace_misaligned = true;
    if (pa + size > RAM_SIZE)
        return PAGING_MEM_UNBACKED;
    if (trace.n < 8) {
        trace.pa[trace.n] = pa;
        trace.val[trace.n] = ld(vmram, pa, size);
        trace.size[trace.n++] = size;
    }
    if (ntouched < 64)
        touched[ntouched++] = pa;
    *val = ld(vmram, pa, size);
    return PAGING_MEM_OK;
}
static enum paging_mem_status vm_cmpxchg(void *ctx, uint64_t pa, unsigned size, uint64_t expect,
                                         uint64_t desired, uint64_t *cur)
{
    (void)ctx;
    if (pa + size > RAM_SIZE)
        return PAGING_MEM_UNBACKED;
    *cur = ld(vmram, pa, size);
    if (*cur == expect)
        st(vmram, pa, size, desired);
    return PAGING_MEM_OK;
}
static const struct paging_mem vmmem = {.read = vm_read, .cmpxchg = vm_cmpxchg};

/* ---- the harness (code, GDTs, tables) ------------------------------------ */

/* Access instructions: rbx = la, rsi = marker, di = LDT selector. */
static const uint8_t acc_l[AK_COUNT][6] = {
    {0x48, 0x8B, 0x03},       /* mov rax, [rbx] */
    {0x48, 0x89, 0x33},       /* mov [rbx], rsi */
    {0xFF, 0xE3},             /* jmp rbx */
    {0x8E, 0xE7},             /* mov fs, di: descriptor load from the LDT */
};
static const unsigned acc_l_len[AK_COUNT] = {3, 3, 2, 2};
static const uint8_t acc_p[AK_COUNT][6] = {
    {0x8B, 0x03, 0x8B, 0x53, 0x04}, /* mov eax, [ebx]; mov edx, [ebx+4] */
    {0x89, 0x33},                   /* mov [ebx], esi */
    {0xFF, 0xE3},                   /* jmp ebx */
    {0x8E, 0xE7},                   /* mov fs, di */
};
static const unsigned acc_p_len[AK_COUNT] = {5, 2, 2, 2};
#define OFF_ACC(k) (0x100u + 0x20u * (k)) /* access stubs; +0x100 more: WRPKRU first */
#define OFF_IRET 0x000u
#define OFF_PKRU_IRET 0x010u

static uint64_t sext(uint64_t v, unsigned bits)
{
    unsigned s = 64 - bits;
    return (uint64_t)((int64_t)(v << s) >> s);
}

/* Harness window base: its top-level index never equals the case's. */
static unsigned harness_top(enum paging_mode m, unsigned alt)
{
    switch (m) {
    case PAGING_MODE_32BIT:
        return alt ? 0x2FF : 0x3FF;
    case PAGING_MODE_PAE:
        return alt ? 2 : 3;
    default:
        return alt ? 0x0FE : 0x1FE;
    }
}
static uint64_t harness_base(enum paging_mode m, unsigned alt)
{
    uint64_t t = harness_top(m, alt);
    switch (m) {
    case PAGING_MODE_32BIT:
        return t << 22;
    case PAGING_MODE_PAE:
        return (t << 30) | (0x1FFULL << 21);
    case PAGING_MODE_4LEVEL:
        return sext((t << 39) | (0x1FFULL << 30) | (0x1FFULL << 21), 48);
    default:
        return sext((t << 48) | (0x1FFULL << 39) | (0x1FFULL << 30) | (0x1FFULL << 21), 57);
    }
}
static unsigned top_index(enum paging_mode m, uint64_t la)
{
    switch (m) {
    case PAGING_MODE_32BIT:
        return (unsigned)(la >> 22) & 0x3FF;
    case PAGING_MODE_PAE:
        return (unsigned)(la >> 30) & 3;
    case PAGING_MODE_4LEVEL:
        return (unsigned)(la >> 39) & 0x1FF;
    default:
        return (unsigned)(la >> 48) & 0x1FF;
    }
}

static void put_code(uint64_t pa, const uint8_t *b, unsigned n) { memcpy(ram0 + pa, b, n); }

static void build_harness(void)
{
    static const uint8_t iretq[] = {0x48, 0xCF}, iretd[] = {0xCF};
    static const uint8_t wrpkru[] = {0x0F, 0x01, 0xEF}, hlt[] = {0xF4};

    memset(ram0, 0, RAM_SIZE);
    for (uint64_t pa = DATA_BASE; pa < RAM_SIZE; pa += 8)
        st(ram0, pa, 8, slot_value(pa));
    /* code: CPL-0 entries (IRET to CPL 3, or the access itself) and CPL-3 access stubs */
    for (int l = 0; l < 2; l++) {
        uint64_t sup = l ? PA_CODE_SUP_L : PA_CODE_SUP_P, usr = l ? PA_CODE_USR_L : PA_CODE_USR_P;
        const uint8_t *iret = l ? iretq : iretd;
        unsigned ilen = l ? 2 : 1;
        memset(ram0 + sup, 0xF4, PG);
        memset(ram0 + usr, 0xF4, PG);
        put_code(sup + OFF_IRET, iret, ilen);
        put_code(sup + OFF_PKRU_IRET, wrpkru, 3);
        put_code(sup + OFF_PKRU_IRET + 3, iret, ilen);
        for (unsigned k = 0; k < AK_COUNT; k++) {
            const uint8_t *a = l ? acc_l[k] : acc_p[k];
            unsigned n = l ? acc_l_len[k] : acc_p_len[k];
            put_code(sup + OFF_ACC(k), a, n);
            put_code(sup + OFF_ACC(k) + n, hlt, 1);
            put_code(sup + 0x100 + OFF_ACC(k), wrpkru, 3);
            put_code(sup + 0x100 + OFF_ACC(k) + 3, a, n);
            put_code(sup + 0x100 + OFF_ACC(k) + 3 + n, hlt, 1);
            put_code(usr + OFF_ACC(k), a, n);
            put_code(usr + OFF_ACC(k) + n, hlt, 1);
        }
    }
    /* GDTs: 08 code DPL0, 10 data DPL0, 18 code DPL3, 20 data DPL3 (accessed bits set) */
    static const uint64_t gdt_l[5] = {0, 0x00AF9B000000FFFFULL, 0x00CF93000000FFFFULL,
                                      0x00AFFB000000FFFFULL, 0x00CFF3000000FFFFULL};
    static const uint64_t gdt_p[5] = {0, 0x00CF9B000000FFFFULL, 0x00CF93000000FFFFULL,
                                      0x00CFFB000000FFFFULL, 0x00CFF3000000FFFFULL};
    memcpy(ram0 + PA_GDT_L, gdt_l, sizeof gdt_l);
    memcpy(ram0 + PA_GDT_P, gdt_p, sizeof gdt_p);
    /* 32-bit engine set-up, paging off: ss=10, ds=es=fs=gs=23, ljmp 08:next; hlt */
    static const uint8_t stub[] = {
        0x66, 0xB8, 0x10, 0x00, 0x8E, 0xD0,             /* mov ax, 0x10; mov ss, ax */
        0x66, 0xB8, 0x23, 0x00, 0x8E, 0xD8, 0x8E, 0xC0, /* mov ax, 0x23; mov ds, ax; mov es, ax */
        0x8E, 0xE0, 0x8E, 0xE8,                         /* mov fs, ax; mov gs, ax */
        0xEA, 0x19, 0x80, 0x00, 0x00, 0x08, 0x00,       /* ljmp 0x08:PA_STUB_P+0x19 */
        0xF4,                                           /* hlt */
    };
    put_code(PA_STUB_P, stub, sizeof stub);

    /* Harness tables: everything accessed (and leaves dirty), so QEMU never writes them. */
    const uint64_t up = E_P | E_RW | E_US | E_A;
    const uint64_t leaf_sup_code = E_P | E_A | E_D, leaf_usr_code = E_P | E_US | E_A | E_D;
    const uint64_t leaf_data = E_P | E_RW | E_A | E_D;
    /* 32-bit: PT entries 0..3 */
    st(ram0, PA_H32_PT + 0, 4, PA_CODE_SUP_P | leaf_sup_code);
    st(ram0, PA_H32_PT + 4, 4, PA_CODE_USR_P | leaf_usr_code);
    st(ram0, PA_H32_PT + 8, 4, PA_GDT_P | leaf_data);
    st(ram0, PA_H32_PT + 12, 4, PA_STACK | leaf_data);
    /* PAE: PD[0x1FF] -> PT */
    st(ram0, PA_HPAE_PD + 0x1FF * 8, 8, PA_HPAE_PT | up);
    st(ram0, PA_HPAE_PT + 0, 8, PA_CODE_SUP_P | leaf_sup_code);
    st(ram0, PA_HPAE_PT + 8, 8, PA_CODE_USR_P | leaf_usr_code);
    st(ram0, PA_HPAE_PT + 16, 8, PA_GDT_P | leaf_data);
    st(ram0, PA_HPAE_PT + 24, 8, PA_STACK | leaf_data);
    /* 4/5-level: (PML4[0x1FF] ->) PDPT[0x1FF] -> PD[0x1FF] -> PT */
    st(ram0, PA_HL_PML4 + 0x1FF * 8, 8, PA_HL_PDPT | up);
    st(ram0, PA_HL_PDPT + 0x1FF * 8, 8, PA_HL_PD | up);
    st(ram0, PA_HL_PD + 0x1FF * 8, 8, PA_HL_PT | up);
    st(ram0, PA_HL_PT + 0, 8, PA_CODE_SUP_L | leaf_sup_code);
    st(ram0, PA_HL_PT + 8, 8, PA_CODE_USR_L | leaf_usr_code);
    st(ram0, PA_HL_PT + 16, 8, PA_GDT_L | leaf_data);
    st(ram0, PA_HL_PT + 24, 8, PA_STACK | leaf_data);
}

/* The harness entry in the case's root table. */
static void harness_root_entry(enum paging_mode m, unsigned alt, uint64_t root, uint64_t *pa,
                               uint64_t *val, unsigned *size)
{
    unsigned t = harness_top(m, alt);
    const uint64_t up = E_P | E_RW | E_US | E_A;

    switch (m) {
    case PAGING_MODE_32BIT:
        *pa = root + 4ULL * t, *val = PA_H32_PT | up, *size = 4;
        break;
    case PAGING_MODE_PAE:
        *pa = root + 8ULL * t, *val = PA_HPAE_PD | E_P, *size = 8;
        break;
    case PAGING_MODE_4LEVEL:
        *pa = root + 8ULL * t, *val = PA_HL_PDPT | up, *size = 8;
        break;
    default:
        *pa = root + 8ULL * t, *val = PA_HL_PML4 | up, *size = 8;
        break;
    }
}

/* ---- a case --------------------------------------------------------------- */

struct entry_w {
    uint64_t pa, val;
    uint8_t size;
    int8_t level; /* 0: harness root entry, -1: other (filler) */
};

struct ocase {
    unsigned long index;
    enum paging_mode mode;
    uint64_t cr0, cr3, cr4, efer;
    uint32_t pkru;
    bool ac;
    unsigned cpl;
    enum acc_kind kind;
    unsigned alt;
    uint64_t la;
    uint64_t marker;
    bool desc_a;          /* implicit: the target slot's descriptor has A = 1 (no write) */
    uint64_t intended_pa; /* where the generator meant the access to land */
    unsigned leaf;        /* intended leaf level */
    unsigned nent;
    struct entry_w ent[16];
};

static void add_entry(struct ocase *c, uint64_t pa, uint64_t val, unsigned size, int level)
{
    ck_assert_uint_lt(c->nent, 16);
    c->ent[c->nent++] = (struct entry_w){pa, val, (uint8_t)size, (int8_t)level};
}

enum out_kind { OUT_OK, OUT_FAULT, OUT_BROKEN };
struct outcome {
    enum out_kind kind;
    unsigned vector;
    uint32_t err;
    uint64_t cr2;
    bool pa_known;
    uint64_t pa;
    bool value_known;
    uint64_t value;
    char why[200];
};

/* ---- named exceptions ----------------------------------------------------- */

/*
 * Each entry describes one class of cases where QEMU (Unicorn 2.1.1) is known
 * to differ from the SDM. The code that applies it (marked with the enum
 * name below) turns the SDM answer into QEMU's answer for exactly that class;
 * everything else is still compared. docs/PAGING_ORACLE.md has the evidence.
 * A VMXSIM_BUG_ entry would mark a walker bug the lead has not fixed yet.
 */
enum exc_id {
    /* QEMU sets A in each non-leaf entry as it descends (x86_stl_phys_notdirty
     * in handle_mmu_fault), so a walk that then faults leaves those A flags set.
     * SDM §4.8 sets A in entries "used as part of linear-address translation";
     * Intel CPUs (and vmxsim) update A/D only after a successful walk. */
    EXC_QEMU_A_ON_FAULTING_WALK,
    /* QEMU sets A in a 1-GByte PDPTE before checking its reserved bits 29:13
     * and the access rights, so the leaf itself gets A on a faulting access. */
    EXC_QEMU_A_ON_FAULTING_1G_LEAF,
    /* QEMU's cpu_mmu_index_kernel() exempts implicit supervisor accesses from
     * SMAP when CPL < 3 and RFLAGS.AC = 1; SDM §4.6.1: with CR4.SMAP = 1, an
     * implicit access may not read (or write) any user-mode address,
     * whatever RFLAGS.AC. QEMU's answer is that of an explicit access. */
    EXC_QEMU_SMAP_IMPLICIT_IGNORES_AC,
    /* QEMU has no PDPTE registers: it reads the PAE PDPTE from memory on each
     * walk and checks only bits 63:MAXPHYADDR (#PF RSVD), ignoring bits 2:1
     * and 8:5. SDM §4.4.1/§4.7: a reserved bit in a present PDPTE makes the
     * MOV to CR0/CR3/CR4 fail with #GP(0), "not page-fault exceptions". */
    EXC_QEMU_PAE_PDPTE_CHECKED_AT_WALK,
    /* DESIGN §9: QEMU's reserved-bit #PF error code lacks P (upstream QEMU
     * >= 7: "do_fault_rsvd: error_code = PG_ERROR_RSVD_MASK"). SDM §4.7: RSVD
     * faults have P = 1. Unicorn 2.1.1 (QEMU 5.0.1) sets P, so this entry is
     * armed only when the sanity probe sees QEMU leave P out. */
    EXC_QEMU_RSVD_FAULT_WITHOUT_P,
    EXC_COUNT
};

static bool qemu_rsvd_without_p; /* armed by the sanity probe */

struct named_exception {
    const char *name;
    const char *what;
    unsigned long hits;
    unsigned long first_case;
};

static struct named_exception exceptions[EXC_COUNT] = {
    [EXC_QEMU_A_ON_FAULTING_WALK] = {"QEMU_A_ON_FAULTING_WALK",
                                     "faulting walk: QEMU leaves A set in the non-leaf "
                                     "entries it passed", 0, 0},
    [EXC_QEMU_A_ON_FAULTING_1G_LEAF] = {"QEMU_A_ON_FAULTING_1G_LEAF",
                                        "faulting access through a 1-GByte PDPTE: QEMU sets "
                                        "its A before the reserved-bit/rights checks", 0, 0},
    [EXC_QEMU_SMAP_IMPLICIT_IGNORES_AC] = {"QEMU_SMAP_IMPLICIT_IGNORES_AC",
                                           "implicit supervisor access at CPL<3 with AC=1: "
                                           "QEMU skips SMAP", 0, 0},
    [EXC_QEMU_PAE_PDPTE_CHECKED_AT_WALK] = {"QEMU_PAE_PDPTE_CHECKED_AT_WALK",
                                            "PAE PDPTE with reserved bits (load would #GP): "
                                            "QEMU walks it, #PF(RSVD) only for bits 63:40", 0,
                                            0},
    [EXC_QEMU_RSVD_FAULT_WITHOUT_P] = {"QEMU_RSVD_FAULT_WITHOUT_P",
                                       "reserved-bit #PF: QEMU >= 7 leaves P out (armed only "
                                       "if this QEMU does)", 0, 0},
};

static unsigned case_exc_mask; /* exceptions applied to the current case */

static void exception_hit(enum exc_id id, const struct ocase *c)
{
    case_exc_mask |= 1u << id;
    if (exceptions[id].hits++ == 0)
        exceptions[id].first_case = c->index;
}

/* ---- vmxsim side ---------------------------------------------------------- */

static struct paging_state state_of(const struct ocase *c)
{
    return (struct paging_state){
        .cr0 = c->cr0, .cr3 = c->cr3, .cr4 = c->cr4, .efer = c->efer, .pkru = c->pkru,
        .maxphyaddr = MAXPHY, .features = PAGING_F_GBPAGES | PAGING_F_PSE36,
    };
}

static unsigned access_flags(const struct ocase *c)
{
    unsigned a = (c->cpl == 3 ? PAGING_ACC_USER : 0) | (c->ac ? PAGING_ACC_AC : 0);
    switch (c->kind) {
    case AK_WRITE:
        return a | PAGING_ACC_WRITE;
    case AK_FETCH:
        return a | PAGING_ACC_FETCH;
    case AK_IMPLICIT:
        return a | PAGING_ACC_IMPLICIT;
    default:
        return a;
    }
}

static unsigned data_size(const struct ocase *c)
{
    return c->mode == PAGING_MODE_32BIT || c->mode == PAGING_MODE_PAE ? 4 : 8;
}

static void out_of_walk(enum paging_status s, const struct paging_result *r, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    if (s == PAGING_OK) {
        o->kind = OUT_OK;
        o->pa_known = true;
        o->pa = r->pa;
    } else if (s == PAGING_FAULT) {
        o->kind = OUT_FAULT;
        o->vector = r->fault.vector;
        o->err = r->fault.has_error ? r->fault.error_code : 0;
        o->cr2 = r->fault.vector == X86_PF ? r->fault.cr2 : 0;
    } else {
        o->kind = OUT_BROKEN;
        snprintf(o->why, sizeof o->why, "paging_walk status %d (bad_pa %#" PRIx64 ")", (int)s,
                 r->bad_pa);
    }
}

static bool set_a(uint64_t pa, unsigned size)
{
    uint64_t e = ld(vmram, pa, size);
    if (e & E_A)
        return false;
    st(vmram, pa, size, e | E_A);
    return true;
}

/*
 * EXC_QEMU_A_ON_FAULTING_WALK and EXC_QEMU_A_ON_FAULTING_1G_LEAF: given the
 * entries the faulting walk read (root first), set the A flags QEMU sets.
 */
static bool qemu_a_on_fault(const struct ocase *c, const struct vm_trace *t, unsigned esize)
{
    bool walk = false;

    /* The exception is only valid on top of the SDM answer: vmxsim's faulting
     * walk must have left every entry it read as it was. */
    for (unsigned i = 0; i < t->n; i++)
        if (ld(vmram, t->pa[i], t->size[i]) != t->val[i])
            return false;

    for (unsigned i = 0; i + 1 < t->n; i++)
        walk |= set_a(t->pa[i], esize);
    if (walk)
        exception_hit(EXC_QEMU_A_ON_FAULTING_WALK, c);
    if (is_long(c->mode) && t->n >= 1 && top_level(c->mode) - (t->n - 1) == 3) {
        uint64_t e = ld(vmram, t->pa[t->n - 1], 8);
        uint64_t qemu_rsvd = MASK(51, MAXPHY) | ((c->efer & EFER_NXE) ? 0 : E_XD);
        if ((e & E_P) && !(e & qemu_rsvd) && set_a(t->pa[t->n - 1], 8))
            exception_hit(EXC_QEMU_A_ON_FAULTING_1G_LEAF, c);
    }
    return true;
}

static void fault_effects(const struct ocase *c, unsigned esize, struct outcome *o)
{
    if (o->err & EC_RSVD) {
        /* EXC_QEMU_RSVD_FAULT_WITHOUT_P, on top of the SDM answer (P = 1). */
        if (!(o->err & EC_P)) {
            o->kind = OUT_BROKEN;
            snprintf(o->why, sizeof o->why, "vmxsim reported RSVD without P");
            return;
        }
        if (qemu_rsvd_without_p) {
            o->err &= ~EC_P;
            exception_hit(EXC_QEMU_RSVD_FAULT_WITHOUT_P, c);
        }
    }
    if (!qemu_a_on_fault(c, &trace, esize)) {
        o->kind = OUT_BROKEN;
        snprintf(o->why, sizeof o->why,
                 "vmxsim changed a paging-structure entry during a faulting walk");
    }
}

/* SDM §4.7 error-code bits describing the access (for the PAE exception). */
static uint32_t pf_access_bits(const struct ocase *c, unsigned acc)
{
    uint32_t e = 0;
    if (acc & PAGING_ACC_WRITE)
        e |= EC_W;
    if ((acc & PAGING_ACC_USER) && !(acc & PAGING_ACC_IMPLICIT))
        e |= EC_U;
    if ((acc & PAGING_ACC_FETCH) &&
        ((c->cr4 & CR4_SMEP) || ((c->cr4 & CR4_PAE) && (c->efer & EFER_NXE))))
        e |= EC_I;
    return e;
}

/*
 * One walk with its memory effects, plus the data side of the access on
 * vmram (marker for writes, descriptor accessed bit for implicit loads).
 */
struct vm_ctx {
    const struct ocase *c;
    struct paging_state st;
    bool pdpte_raw; /* EXC_QEMU_PAE_PDPTE_CHECKED_AT_WALK in force */
};

static enum paging_status vm_walk(struct vm_ctx *v, uint64_t la, unsigned acc,
                                  struct paging_result *r)
{
    const struct ocase *c = v->c;

    trace.n = 0;
    if (v->pdpte_raw) {
        uint64_t e = v->st.pdpte[(la >> 30) & 3];
        if ((e & E_P) && (e & MASK(63, MAXPHY))) {
            memset(r, 0, sizeof *r);
            r->fault = (struct x86_fault){.vector = X86_PF, .has_error = true,
                                          .error_code = EC_P | EC_RSVD | pf_access_bits(c, acc),
                                          .cr2 = la & 0xFFFFFFFFULL};
            return PAGING_FAULT;
        }
    }
    return paging_walk(&v->st, &vmmem, la, acc, r);
}

static void vm_expect(const struct ocase *c, struct outcome *o)
{
    struct vm_ctx v = {.c = c, .st = state_of(c)};
    struct paging_result r;
    enum paging_status s;
    unsigned acc = access_flags(c);
    unsigned esize = c->mode == PAGING_MODE_32BIT ? 4 : 8;

    if (c->mode == PAGING_MODE_PAE) {
        trace.n = 0;
        if (!paging_load_pdptes(&v.st, &vmmem, c->cr3, v.st.pdpte)) {
            /* EXC_QEMU_PAE_PDPTE_CHECKED_AT_WALK: SDM answer is #GP(0) at the MOV
             * to CR3 and no walk at all; QEMU walks with the in-memory PDPTEs. */
            for (unsigned i = 0; i < 4; i++)
                v.st.pdpte[i] = ld(vmram, (c->cr3 & 0xFFFFFFE0ULL) + 8 * i, 8);
            v.pdpte_raw = true;
            exception_hit(EXC_QEMU_PAE_PDPTE_CHECKED_AT_WALK, c);
        }
    }

    if (c->kind == AK_IMPLICIT && c->cpl < 3 && c->ac && (c->cr4 & CR4_SMAP)) {
        /* EXC_QEMU_SMAP_IMPLICIT_IGNORES_AC: QEMU answers as for an explicit
         * supervisor access with AC = 1. Count the cases where that matters. */
        struct paging_result a, b;
        enum paging_status sa = paging_walk(&v.st, &vmmem, c->la, acc | PAGING_ACC_NO_AD, &a);
        unsigned q = acc & ~PAGING_ACC_IMPLICIT;
        enum paging_status sb = paging_walk(&v.st, &vmmem, c->la, q | PAGING_ACC_NO_AD, &b);
        bool differ = sa != sb || (sa == PAGING_FAULT && a.fault.error_code != b.fault.error_code);
        if (!differ && sa == PAGING_OK) {
            sa = paging_walk(&v.st, &vmmem, c->la,
                             acc | PAGING_ACC_WRITE | PAGING_ACC_NO_AD, &a);
            sb = paging_walk(&v.st, &vmmem, c->la, q | PAGING_ACC_WRITE | PAGING_ACC_NO_AD, &b);
            differ = sa != sb ||
                     (sa == PAGING_FAULT && a.fault.error_code != b.fault.error_code);
        }
        if (differ)
            exception_hit(EXC_QEMU_SMAP_IMPLICIT_IGNORES_AC, c);
        acc = q;
    }

    s = vm_walk(&v, c->la, acc, &r);
    out_of_walk(s, &r, o);
    if (s == PAGING_FAULT && r.fault.vector == X86_PF) {
        fault_effects(c, esize, o);
        return;
    }
    if (s != PAGING_OK || r.pa >= RAM_SIZE)
        return;

    switch (c->kind) {
    case AK_READ:
        o->value_known = true;
        o->value = ld(vmram, r.pa, 8);
        break;
    case AK_WRITE:
        st(vmram, r.pa, data_size(c), c->marker);
        break;
    case AK_IMPLICIT:
        if (!(vmram[r.pa + 5] & 1)) {
            /* The processor sets the descriptor's accessed bit: an implicit
             * write, which QEMU makes as a dword store to the descriptor's
             * high half (helper_load_seg: cpu_stl_kernel_ra(ptr + 4)). */
            uint64_t pa = r.pa + 4;
            s = vm_walk(&v, c->la + 4, acc | PAGING_ACC_WRITE, &r);
            if (s != PAGING_OK) {
                out_of_walk(s, &r, o);
                if (s == PAGING_FAULT && r.fault.vector == X86_PF)
                    fault_effects(c, esize, o);
                return;
            }
            if (r.pa != pa) {
                o->kind = OUT_BROKEN;
                snprintf(o->why, sizeof o->why, "read and write walks disagree");
                return;
            }
            vmram[r.pa + 1] |= 1;
        }
        break;
    default:
        break;
    }
}

/* ---- oracle side (Unicorn / QEMU) ----------------------------------------- */

struct engine {
    uc_engine *uc;
    uc_context *base, *scratch;
    size_t ctx_size;
    bool is64;
    /* hook results of the current run */
    bool intr_seen;
    uint32_t intno;
    bool unm_seen;
    uc_mem_type unm_type;
    uint64_t unm_pa;
    unsigned blocks;
    bool runaway;
};

static long err_off = -1; /* offset of QEMU's env->error_code in a saved context */

static void hook_intr(uc_engine *uc, uint32_t intno, void *user)
{
    struct engine *E = user;
    if (!E->intr_seen) {
        E->intr_seen = true;
        E->intno = intno;
    }
    uc_emu_stop(uc);
}

static bool hook_unmapped(uc_engine *uc, uc_mem_type type, uint64_t addr, int size, int64_t value,
                          void *user)
{
    struct engine *E = user;
    (void)uc, (void)size, (void)value;
    if (!E->unm_seen) {
        E->unm_seen = true;
        E->unm_type = type;
        E->unm_pa = addr;
    }
    return false;
}

static void hook_block(uc_engine *uc, uint64_t addr, uint32_t size, void *user)
{
    struct engine *E = user;
    (void)addr, (void)size;
    if (++E->blocks > 16) {
        E->runaway = true;
        uc_emu_stop(uc);
    }
}

#define UCK(call)                                                                                 \
    do {                                                                                          \
        uc_err e_ = (call);                                                                       \
        if (e_ != UC_ERR_OK)                                                                      \
            ck_abort_msg("%s: %s", #call, uc_strerror(e_));                                       \
    } while (0)

static void wreg(struct engine *E, int reg, uint64_t v)
{
    if (E->is64) {
        UCK(uc_reg_write(E->uc, reg, &v));
    } else {
        uint32_t v32 = (uint32_t)v;
        UCK(uc_reg_write(E->uc, reg, &v32));
    }
}
static uint64_t rreg(struct engine *E, int reg)
{
    if (E->is64) {
        uint64_t v = 0;
        UCK(uc_reg_read(E->uc, reg, &v));
        return v;
    }
    uint32_t v32 = 0;
    UCK(uc_reg_read(E->uc, reg, &v32));
    return v32;
}

static void engine_open(struct engine *E, bool is64)
{
    uc_hook h;

    memset(E, 0, sizeof *E);
    E->is64 = is64;
    UCK(uc_open(UC_ARCH_X86, is64 ? UC_MODE_64 : UC_MODE_32, &E->uc));
    /* The harness needs a few hundred TBs; Unicorn's default code buffer
     * (1 GiB) costs seconds of page faults per engine. */
    UCK(uc_ctl_set_tcg_buffer_size(E->uc, 32u << 20));
    /* SMEP, SMAP, PKU, 1-GByte pages, NX, LA57: QEMU's Icelake-Server model. */
    UCK(uc_ctl_set_cpu_model(E->uc, UC_CPU_X86_ICELAKE_SERVER));
    /* Empty exit set: uc_emu_start's `until` is then ignored, so Unicorn does
     * not translate (walk!) that address to invalidate its TB after each run. */
    UCK(uc_ctl_exits_enable(E->uc));
    UCK(uc_mem_map_ptr(E->uc, 0, RAM_SIZE, UC_PROT_ALL, ram));
    UCK(uc_hook_add(E->uc, &h, UC_HOOK_INTR, (void *)hook_intr, E, 1, 0));
    UCK(uc_hook_add(E->uc, &h, UC_HOOK_MEM_UNMAPPED, (void *)hook_unmapped, E, 1, 0));
    UCK(uc_hook_add(E->uc, &h, UC_HOOK_BLOCK, (void *)hook_block, E, 1, 0));
    if (!is64) {
        /* Flat 32-bit protected mode at CPL 0, loaded from the GDT by QEMU itself. */
        uc_x86_mmr gdtr = {.base = PA_GDT_P, .limit = 0x27};
        UCK(uc_reg_write(E->uc, UC_X86_REG_GDTR, &gdtr));
        E->intr_seen = E->unm_seen = false;
        UCK(uc_emu_start(E->uc, PA_STUB_P, 0, 0, 0));
        ck_assert_msg(!E->intr_seen && !E->unm_seen, "32-bit engine set-up faulted");
        ck_assert_uint_eq(rreg(E, UC_X86_REG_CS), 0x08);
        ck_assert_uint_eq(rreg(E, UC_X86_REG_SS), 0x10);
    }
    E->ctx_size = uc_context_size(E->uc);
    UCK(uc_context_alloc(E->uc, &E->base));
    UCK(uc_context_alloc(E->uc, &E->scratch));
    UCK(uc_context_save(E->uc, E->base));
}

static void engine_close(struct engine *E)
{
    uc_context_free(E->base);
    uc_context_free(E->scratch);
    uc_close(E->uc);
}

static uint64_t sup_entry(const struct ocase *c)
{
    bool pke = (c->cr4 & CR4_PKE) != 0;
    uint64_t base = harness_base(c->mode, c->alt) + H_SUP;
    if (c->cpl == 3)
        return base + (pke ? OFF_PKRU_IRET : OFF_IRET);
    return base + (pke ? 0x100u : 0u) + OFF_ACC(c->kind);
}

/* RIP of the access instruction, and where the harness signals completion. */
static uint64_t access_rip(const struct ocase *c)
{
    if (c->kind == AK_FETCH)
        return c->la;
    if (c->cpl == 3)
        return harness_base(c->mode, c->alt) + H_USR + OFF_ACC(c->kind);
    return sup_entry(c) + ((c->cr4 & CR4_PKE) ? 3 : 0);
}
static uint64_t hlt_rip(const struct ocase *c)
{
    bool l = is_long(c->mode);
    if (c->kind == AK_FETCH)
        return c->la + 5;
    return access_rip(c) + (l ? acc_l_len[c->kind] : acc_p_len[c->kind]);
}

static void q_run(struct engine *E, const struct ocase *c, struct outcome *o)
{
    uint64_t hb = harness_base(c->mode, c->alt);
    uint64_t mask = E->is64 ? ~0ULL : 0xFFFFFFFFULL;

    memset(o, 0, sizeof *o);
    UCK(uc_context_restore(E->uc, E->base));
    /* Order matters: PAE/LA57 before CR0.PG (QEMU enters long mode on the
     * CR0 write when EFER.LME = 1 and CR4.PAE = 1). */
    wreg(E, UC_X86_REG_CR4, c->cr4);
    uc_x86_msr efer = {.rid = MSR_EFER, .value = c->efer};
    UCK(uc_reg_write(E->uc, UC_X86_REG_MSR, &efer));
    wreg(E, UC_X86_REG_CR3, c->cr3);
    wreg(E, UC_X86_REG_CR0, c->cr0);
    uc_x86_mmr gdtr = {.base = (hb + H_GDT) & mask, .limit = 0x27};
    UCK(uc_reg_write(E->uc, UC_X86_REG_GDTR, &gdtr));
    uc_x86_mmr ldtr = {.selector = 0x28, .base = c->la & mask, .limit = 0xFFFF, .flags = 0x82};
    UCK(uc_reg_write(E->uc, UC_X86_REG_LDTR, &ldtr));
    uint64_t rflags = 0x2 | (c->ac ? RFLAGS_AC : 0);
    uint64_t sp = hb + H_STK + STK_FRAME;
    if (c->cpl == 3) {
        uint64_t ret = hb + H_USR + OFF_ACC(c->kind), usp = hb + H_STK + 0x800;
        if (E->is64) {
            uint64_t f[5] = {ret, SEL_UCODE, rflags, usp, SEL_UDATA};
            memcpy(ram + PA_STACK + STK_FRAME, f, sizeof f);
        } else {
            uint32_t f[5] = {(uint32_t)ret, SEL_UCODE, (uint32_t)rflags, (uint32_t)usp,
                             SEL_UDATA};
            memcpy(ram + PA_STACK + STK_FRAME, f, sizeof f);
        }
        rflags = 0x2;
    }
    if (E->is64) {
        wreg(E, UC_X86_REG_RFLAGS, rflags);
        wreg(E, UC_X86_REG_RSP, sp);
        wreg(E, UC_X86_REG_RAX, c->pkru);
        wreg(E, UC_X86_REG_RCX, 0);
        wreg(E, UC_X86_REG_RDX, 0);
        wreg(E, UC_X86_REG_RBX, c->la);
        wreg(E, UC_X86_REG_RSI, c->marker);
        wreg(E, UC_X86_REG_RDI, 0x04 | c->cpl);
    } else {
        wreg(E, UC_X86_REG_EFLAGS, rflags);
        wreg(E, UC_X86_REG_ESP, sp);
        wreg(E, UC_X86_REG_EAX, c->pkru);
        wreg(E, UC_X86_REG_ECX, 0);
        wreg(E, UC_X86_REG_EDX, 0);
        wreg(E, UC_X86_REG_EBX, c->la);
        wreg(E, UC_X86_REG_ESI, c->marker);
        wreg(E, UC_X86_REG_EDI, 0x04 | c->cpl);
    }
    UCK(uc_ctl_flush_tlb(E->uc));
    E->intr_seen = E->unm_seen = E->runaway = false;
    E->blocks = 0;
    uc_err ue = uc_emu_start(E->uc, sup_entry(c) & mask, 0, 0, 0);
    uint64_t rip = rreg(E, E->is64 ? UC_X86_REG_RIP : UC_X86_REG_EIP);

    if (E->runaway) {
        o->kind = OUT_BROKEN;
        snprintf(o->why, sizeof o->why, "runaway execution (rip %#" PRIx64 ")", rip);
        return;
    }
    if (E->unm_seen) {
        static const uc_mem_type want[AK_COUNT] = {UC_MEM_READ_UNMAPPED, UC_MEM_WRITE_UNMAPPED,
                                                   UC_MEM_FETCH_UNMAPPED, UC_MEM_READ_UNMAPPED};
        if (E->unm_type != want[c->kind]) {
            o->kind = OUT_BROKEN;
            snprintf(o->why, sizeof o->why, "unmapped access type %d at pa %#" PRIx64 " rip %#"
                     PRIx64, (int)E->unm_type, E->unm_pa, rip);
            return;
        }
        o->kind = OUT_OK;
        o->pa_known = true;
        o->pa = E->unm_pa;
        return;
    }
    bool done = false;
    if (E->intr_seen) {
        if (c->cpl == 3 && E->intno == X86_GP && rip == (hlt_rip(c) & mask)) {
            done = true; /* HLT at CPL 3: the access completed */
        } else if (E->intno == X86_PF || E->intno == X86_GP) {
            int32_t err;
            UCK(uc_context_save(E->uc, E->scratch));
            memcpy(&err, (const uint8_t *)E->scratch + err_off, 4);
            o->kind = OUT_FAULT;
            o->vector = E->intno;
            o->err = (uint32_t)err;
            o->cr2 = E->intno == X86_PF ? rreg(E, UC_X86_REG_CR2) : 0;
            if (rip != (access_rip(c) & mask)) {
                o->kind = OUT_BROKEN;
                snprintf(o->why, sizeof o->why,
                         "vector %u err %#x cr2 %#" PRIx64 " at rip %#" PRIx64
                         " (access at %#" PRIx64 ")", E->intno, (unsigned)err, o->cr2, rip,
                         access_rip(c) & mask);
            }
            return;
        } else {
            o->kind = OUT_BROKEN;
            snprintf(o->why, sizeof o->why, "exception %u at rip %#" PRIx64, E->intno, rip);
            return;
        }
    } else if (ue == UC_ERR_OK && c->cpl == 0 && rip == ((hlt_rip(c) + 1) & mask)) {
        done = true; /* HLT at CPL 0 ends the run */
    }
    if (!done) {
        o->kind = OUT_BROKEN;
        snprintf(o->why, sizeof o->why, "stopped: %s, rip %#" PRIx64, uc_strerror(ue), rip);
        return;
    }
    o->kind = OUT_OK;
    switch (c->kind) {
    case AK_READ:
        o->value_known = true;
        if (E->is64)
            o->value = rreg(E, UC_X86_REG_RAX);
        else
            o->value = rreg(E, UC_X86_REG_EAX) | rreg(E, UC_X86_REG_EDX) << 32;
        o->pa_known = slot_decode(o->value, &o->pa);
        break;
    case AK_FETCH: {
        uint64_t eax = rreg(E, UC_X86_REG_EAX) & 0xFFFFFFFFULL;
        if ((eax & 0xFF) == SLOT_TAG) {
            o->pa_known = true;
            o->pa = (eax >> 8) << 3;
        }
        break;
    }
    case AK_IMPLICIT: {
        uint64_t base = rreg(E, UC_X86_REG_FS_BASE);
        if (base < RAM_SIZE / 8) {
            o->pa_known = true;
            o->pa = base << 3;
        }
        break;
    }
    default:
        break; /* writes: found by comparing memory */
    }
}

/* ---- materialising a case, comparing, restoring --------------------------- */

static void materialize(const struct ocase *c)
{
    for (unsigned i = 0; i < c->nent; i++) {
        st(ram, c->ent[i].pa, c->ent[i].size, c->ent[i].val);
        st(vmram, c->ent[i].pa, c->ent[i].size, c->ent[i].val);
    }
    if (c->kind == AK_IMPLICIT && c->desc_a && c->intended_pa >= DATA_BASE &&
        c->intended_pa < RAM_SIZE) {
        ram[c->intended_pa + 5] |= 1;
        vmram[c->intended_pa + 5] |= 1;
    }
    /* the IRET frame is written into ram by q_run; keep vmram identical */
}

static void restore_range(uint64_t pa, uint64_t len)
{
    if (pa >= RAM_SIZE)
        return;
    if (pa + len > RAM_SIZE)
        len = RAM_SIZE - pa;
    memcpy(ram + pa, ram0 + pa, len);
    memcpy(vmram + pa, ram0 + pa, len);
}

static void restore_case(const struct ocase *c, const struct outcome *e, const struct outcome *q)
{
    for (unsigned i = 0; i < c->nent; i++)
        restore_range(c->ent[i].pa, c->ent[i].size);
    for (unsigned i = 0; i < ntouched; i++)
        restore_range(touched[i] & ~7ULL, 8);
    ntouched = 0;
    restore_range(c->intended_pa & ~7ULL, 8);
    if (e->kind == OUT_OK)
        restore_range(e->pa & ~7ULL, 8);
    if (q->kind == OUT_OK && q->pa_known)
        restore_range(q->pa & ~7ULL, 8);
    restore_range(PA_STACK + STK_FRAME, 64);
}

static void full_restore(struct engine *E[2])
{
    memcpy(ram, ram0, RAM_SIZE);
    memcpy(vmram, ram0, RAM_SIZE);
    for (int i = 0; i < 2; i++)
        uc_ctl_flush_tb(E[i]->uc);
}

static void describe_outcome(char *buf, size_t n, const struct outcome *o)
{
    switch (o->kind) {
    case OUT_OK:
        snprintf(buf, n, "ok pa=%s%#" PRIx64 "%s%#" PRIx64, o->pa_known ? "" : "?", o->pa,
                 o->value_known ? " value=" : " ", o->value_known ? o->value : 0);
        break;
    case OUT_FAULT:
        snprintf(buf, n, "fault vector=%u err=%#x cr2=%#" PRIx64, o->vector, o->err, o->cr2);
        break;
    default:
        snprintf(buf, n, "BROKEN: %s", o->why);
        break;
    }
}

static void dump_case(const struct ocase *c, const struct outcome *e, const struct outcome *q)
{
    char be[256], bq[256];

    printf("  case %lu: %s paging, CPL%u %s of la %#" PRIx64 "\n", c->index, mode_name(c->mode),
           c->cpl, acc_name[c->kind], c->la);
    printf("    CR0=%#" PRIx64 " CR3=%#" PRIx64 " CR4=%#" PRIx64 " EFER=%#" PRIx64
           " PKRU=%#x RFLAGS.AC=%d%s\n", c->cr0, c->cr3, c->cr4, c->efer, c->pkru, c->ac,
           c->kind == AK_IMPLICIT ? (c->desc_a ? " (descriptor A=1)" : " (descriptor A=0)")
                                  : "");
    for (unsigned i = 0; i < c->nent; i++)
        printf("    %s entry at pa %#" PRIx64 ": %#0*" PRIx64 "\n",
               c->ent[i].level == 0 ? "harness" : c->ent[i].level < 0 ? "extra" :
               (const char *[]){"", "level-1", "level-2", "level-3", "level-4", "level-5"}
                   [c->ent[i].level], c->ent[i].pa, c->ent[i].size * 2 + 2, c->ent[i].val);
    if (e) {
        describe_outcome(be, sizeof be, e);
        describe_outcome(bq, sizeof bq, q);
        printf("    expected (SDM/vmxsim + named exceptions): %s\n", be);
        printf("    QEMU:                                     %s\n", bq);
        for (unsigned i = 0; i < c->nent; i++)
            if (c->ent[i].level > 0)
                printf("    level-%d entry after: QEMU %#" PRIx64 ", expected %#" PRIx64 "\n",
                       c->ent[i].level, ld(ram, c->ent[i].pa, c->ent[i].size),
                       ld(vmram, c->ent[i].pa, c->ent[i].size));
        for (int x = 0; x < EXC_COUNT; x++)
            if (case_exc_mask & (1u << x))
                printf("    named exception applied: %s\n", exceptions[x].name);
    }
}

/* Compare; returns a description of the first difference, or NULL. */
static const char *compare(const struct ocase *c, const struct outcome *e, const struct outcome *q,
                           char *why, size_t n)
{
    if (e->kind == OUT_BROKEN || q->kind == OUT_BROKEN)
        return "a side could not run the case";
    if (e->kind != q->kind)
        return e->kind == OUT_OK ? "vmxsim translates, QEMU faults" : "vmxsim faults, QEMU translates";
    if (e->kind == OUT_FAULT) {
        if (e->vector != q->vector)
            return "vector";
        if (e->err != q->err)
            return "error code";
        if (e->cr2 != q->cr2)
            return "CR2";
    } else {
        if (e->pa < RAM_SIZE && c->kind == AK_WRITE) {
            if (memcmp(ram + (e->pa & ~7ULL), vmram + (e->pa & ~7ULL), 8) != 0)
                return "write did not land at vmxsim's physical address";
        } else if (c->kind == AK_READ && e->value_known) {
            if (!q->value_known || q->value != e->value)
                return "value read";
            if (q->pa_known && q->pa != e->pa)
                return "physical address";
        } else if (!q->pa_known || q->pa != e->pa) {
            return "physical address";
        }
    }
    unsigned es = c->mode == PAGING_MODE_32BIT ? 4 : 8;
    for (uint64_t pa = TABLES_LO; pa < TABLES_HI; pa += PG) {
        if (memcmp(ram + pa, vmram + pa, PG) != 0) {
            for (uint64_t a = pa; a < pa + PG; a += es) {
                if (ld(ram, a, es) != ld(vmram, a, es)) {
                    snprintf(why, n, "paging-structure memory at %#" PRIx64 ": QEMU %#" PRIx64
                             ", expected %#" PRIx64, a, ld(ram, a, es), ld(vmram, a, es));
                    return why;
                }
            }
        }
    }
    if (e->kind == OUT_OK && e->pa < RAM_SIZE &&
        memcmp(ram + (e->pa & ~7ULL), vmram + (e->pa & ~7ULL), 8) != 0)
        return "data at the accessed physical address";
    return NULL;
}

/* ---- random cases ---------------------------------------------------------- */

struct rng {
    uint64_t s;
};
static uint64_t rnd(struct rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static bool pct(struct rng *r, unsigned p) { return rnd(r) % 100 < p; }
static uint64_t below(struct rng *r, uint64_t n) { return rnd(r) % n; }

/* A random page-aligned frame (of 2^shift bytes) outside RAM, below 2^bits. */
static uint64_t far_frame(struct rng *r, unsigned shift, unsigned bits)
{
    for (;;) {
        uint64_t f = pct(r, 20) ? RAM_SIZE + (below(r, 64) << shift) : rnd(r);
        f &= MASK(bits - 1, shift);
        if (f >= RAM_SIZE)
            return f;
    }
}

/* Random flags of an entry: P, R/W, U/S, PWT, PCD, A, D, G, bits 11:9. */
static uint64_t rand_flags(struct rng *r, unsigned p_present)
{
    uint64_t f = 0;
    if (pct(r, p_present))
        f |= E_P;
    if (pct(r, 82))
        f |= E_RW;
    if (pct(r, 82))
        f |= E_US;
    if (pct(r, 15))
        f |= E_PWT;
    if (pct(r, 15))
        f |= E_PCD;
    if (pct(r, 50))
        f |= E_A;
    if (pct(r, 50))
        f |= E_D;
    if (pct(r, 25))
        f |= E_G;
    f |= (rnd(r) & 7) << 9;
    return f;
}

/* One random bit from [lo, hi]. */
static uint64_t rand_bit(struct rng *r, unsigned hi, unsigned lo)
{
    return B(lo + below(r, hi - lo + 1));
}

static void gen_case(uint64_t seed, unsigned long idx, struct ocase *c)
{
    struct rng r = {seed ^ (idx * 0xD1B54A32D192ED03ULL)};
    rnd(&r);
    memset(c, 0, sizeof *c);
    c->index = idx;

    unsigned u = (unsigned)below(&r, 100);
    c->mode = u < 18 ? PAGING_MODE_32BIT : u < 36 ? PAGING_MODE_PAE
              : u < 70 ? PAGING_MODE_4LEVEL : PAGING_MODE_5LEVEL;
    c->cpl = pct(&r, 50) ? 3 : 0;
    u = (unsigned)below(&r, 100);
    c->kind = u < 32 ? AK_READ : u < 60 ? AK_WRITE : u < 82 ? AK_FETCH : AK_IMPLICIT;
    c->cr0 = CR0_PE | CR0_ET | CR0_PG | (pct(&r, 50) ? CR0_WP : 0);
    c->cr4 = (pct(&r, 50) ? CR4_PSE : 0) | (pct(&r, 30) ? CR4_PGE : 0) |
             (pct(&r, 45) ? CR4_SMEP : 0) | (pct(&r, 50) ? CR4_SMAP : 0) |
             (pct(&r, 55) ? CR4_PKE : 0);
    if (c->mode != PAGING_MODE_32BIT)
        c->cr4 |= CR4_PAE;
    if (c->mode == PAGING_MODE_5LEVEL)
        c->cr4 |= CR4_LA57;
    c->efer = pct(&r, 70) ? EFER_NXE : 0;
    if (is_long(c->mode))
        c->efer |= EFER_LME | EFER_LMA;
    c->ac = pct(&r, 50);
    c->alt = pct(&r, 50);
    c->desc_a = pct(&r, 50);
    c->marker = is_long(c->mode) ? 0x4D4B520000000000ULL | (idx & 0xFFFFFFFF)
                                 : 0x4D000000ULL | (idx & 0xFFFFFF);

    const bool weird_ok = c->kind == AK_READ || c->kind == AK_WRITE;
    const bool pae_like = c->mode != PAGING_MODE_32BIT;
    const unsigned top = top_level(c->mode);
    const unsigned esize = pae_like ? 8 : 4;

    /* Leaf level and PS placement. */
    bool ps32 = false;
    switch (c->mode) {
    case PAGING_MODE_32BIT:
        ps32 = pct(&r, 40);
        c->leaf = ps32 && (c->cr4 & CR4_PSE) ? 2 : 1;
        break;
    case PAGING_MODE_PAE:
        c->leaf = pct(&r, 30) ? 2 : 1;
        break;
    default:
        u = (unsigned)below(&r, 100);
        c->leaf = u < 15 ? 3 : u < 40 ? 2 : 1;
        break;
    }
    const unsigned shift = c->leaf == 1 ? 12 : c->mode == PAGING_MODE_32BIT ? 22
                           : c->leaf == 2 ? 21 : 30;
    const uint64_t size = 1ULL << shift;

    /* Target: a data slot in RAM, a table page (reads/writes), or far away. */
    uint64_t frame, off;
    bool table_target = weird_ok && c->leaf == 1 && pct(&r, 4);
    if (table_target) {
        frame = pct(&r, 50) ? PA_POOL + below(&r, POOL_PAGES) * PG : TABLES_LO + below(&r, 7) * PG;
        off = below(&r, PG) & ~7ULL;
    } else if (pct(&r, 45)) {
        uint64_t pa = DATA_BASE + (below(&r, RAM_SIZE - DATA_BASE) & ~7ULL);
        if (c->leaf > 1 && size > RAM_SIZE) /* 1 GiB */
            frame = 0;
        else if (c->leaf > 1) {
            frame = 0;
            if (pa >= size)
                pa = DATA_BASE + (below(&r, size - DATA_BASE) & ~7ULL);
        } else
            frame = pa & ~(PG - 1);
        off = pa - frame;
    } else {
        frame = far_frame(&r, shift, c->mode == PAGING_MODE_32BIT && c->leaf == 1 ? 32 : MAXPHY);
        off = below(&r, size) & ~7ULL;
    }
    c->intended_pa = frame + off;

    /* Linear address: random indices above the leaf; top index avoids the harness. */
    unsigned ht = harness_top(c->mode, c->alt);
    uint64_t la = off;
    unsigned idxbits = c->mode == PAGING_MODE_32BIT ? 10 : 9;
    for (unsigned lv = c->leaf; lv <= top; lv++) {
        unsigned sh = 12 + idxbits * (lv - 1);
        uint64_t ix;
        if (c->mode == PAGING_MODE_PAE && lv == 3)
            ix = below(&r, 4);
        else
            ix = below(&r, 1ULL << idxbits);
        if (lv == top)
            while (ix == ht)
                ix = c->mode == PAGING_MODE_PAE ? below(&r, 4) : below(&r, 1ULL << idxbits);
        la |= ix << sh;
    }
    if (c->mode == PAGING_MODE_4LEVEL)
        la = sext(la, 48);
    else if (c->mode == PAGING_MODE_5LEVEL)
        la = sext(la, 57);
    ck_assert_uint_ne(top_index(c->mode, la), ht);
    if (is_long(c->mode) && pct(&r, 2)) /* non-canonical: #GP(0) */
        la ^= B((c->mode == PAGING_MODE_4LEVEL ? 48 : 57) + below(&r, 6));
    c->la = la;

    /* Table pages: a random assignment of pool pages to levels. */
    uint64_t page[6] = {0};
    unsigned perm[POOL_PAGES];
    for (unsigned i = 0; i < POOL_PAGES; i++)
        perm[i] = i;
    for (unsigned i = POOL_PAGES - 1; i > 0; i--) {
        unsigned j = (unsigned)below(&r, i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (unsigned lv = 1; lv <= top; lv++)
        page[lv] = PA_POOL + perm[lv - 1] * PG;

    /* CR3 and the root (PAE: a 32-byte aligned PDPT somewhere in the root page). */
    uint64_t root = page[top];
    if (c->mode == PAGING_MODE_PAE) {
        root += 32 * below(&r, 128);
        c->cr3 = root | (rnd(&r) & 0x1F);
    } else {
        c->cr3 = root | (pct(&r, 20) ? E_PWT : 0) | (pct(&r, 20) ? E_PCD : 0);
    }
    {
        uint64_t hpa, hval;
        unsigned hsz;
        harness_root_entry(c->mode, c->alt, root, &hpa, &hval, &hsz);
        add_entry(c, hpa, hval, hsz, 0);
    }

    /* PKRU: none, random, or aimed at the leaf's key. */
    unsigned key = (unsigned)below(&r, 16);
    u = (unsigned)below(&r, 100);
    c->pkru = u < 30 ? 0 : (uint32_t)rnd(&r);
    if (u >= 60)
        c->pkru = (c->pkru & ~(3u << (2 * key))) | (uint32_t)(below(&r, 4) << (2 * key));

    /* Entries, root first. */
    for (unsigned lv = top; lv >= c->leaf; lv--) {
        unsigned sh = 12 + idxbits * (lv - 1);
        unsigned ix = (unsigned)((la >> sh) & ((1u << idxbits) - 1));
        uint64_t epa, e;
        bool leaf = lv == c->leaf;

        if (c->mode == PAGING_MODE_PAE && lv == 3) {
            /* PDPTE: P, PWT, PCD, ignored 11:9; reserved 2:1, 8:5, 63:M. */
            epa = root + 8ULL * ((la >> 30) & 3);
            e = page[2] | (pct(&r, 95) ? E_P : 0) | (rnd(&r) & (E_PWT | E_PCD)) |
                ((rnd(&r) & 7) << 9);
            if (pct(&r, 5)) {
                static const unsigned rb[] = {1, 2, 5, 6, 7, 8};
                e |= pct(&r, 50) ? B(rb[below(&r, 6)]) : rand_bit(&r, 63, MAXPHY);
            }
            add_entry(c, epa, e, 8, (int)lv);
            continue;
        }
        epa = page[lv] + (uint64_t)ix * esize;
        e = rand_flags(&r, leaf ? 90 : 95);
        if (!leaf) {
            uint64_t next = page[lv - 1];
            if (weird_ok && pct(&r, 3)) /* alias: another table, or a harness table */
                next = pct(&r, 50) ? page[1 + below(&r, top)] : TABLES_LO + below(&r, 7) * PG;
            e = (e & ~E_PS) | next;
            if (c->mode == PAGING_MODE_32BIT && ps32 && lv == 2)
                e |= E_PS; /* PS with CR4.PSE = 0: ignored, still a table */
        } else if (c->mode == PAGING_MODE_32BIT) {
            if (lv == 2) {
                e |= E_PS | (frame & 0xFFC00000ULL) | (((frame >> 32) & 0xFF) << 13);
                if (pct(&r, 20))
                    e |= B(12); /* PAT */
                if (pct(&r, 4))
                    e |= B(21); /* reserved */
            } else {
                e = (e & ~E_PS) | frame | (pct(&r, 15) ? E_PS : 0); /* bit 7: PAT in a PTE */
            }
        } else {
            e |= frame;
            if (lv > 1) {
                e |= E_PS;
                if (pct(&r, 20))
                    e |= B(12); /* PAT of a large page */
            } else {
                e = (e & ~E_PS) | (pct(&r, 15) ? E_PS : 0); /* PAT in a PTE */
            }
        }
        if (pae_like) {
            if (pct(&r, 10))
                e |= E_XD;
            if (is_long(c->mode)) {
                e |= rnd(&r) & MASK(58, 52); /* ignored */
                e |= leaf ? E_PK(pct(&r, 50) ? key : below(&r, 16)) : E_PK(below(&r, 16));
            }
            if (pct(&r, 3)) { /* reserved bits */
                if (c->mode == PAGING_MODE_PAE)
                    e |= rand_bit(&r, 62, MAXPHY);
                else if (lv >= 4 && pct(&r, 40))
                    e |= E_PS;
                else
                    e |= rand_bit(&r, 51, MAXPHY);
            }
            if (leaf && lv > 1 && pct(&r, 3))
                e |= rand_bit(&r, lv == 3 ? 29 : 20, 13);
        }
        add_entry(c, epa, e, esize, (int)lv);
        if (lv == 1)
            break;
    }
    /* Occasionally a present PDPTE with reserved bits in an unused PAE slot. */
    if (c->mode == PAGING_MODE_PAE && pct(&r, 2)) {
        unsigned used = (unsigned)((la >> 30) & 3), slot;
        do
            slot = (unsigned)below(&r, 4);
        while (slot == used || slot == ht);
        add_entry(c, root + 8ULL * slot, page[1] | E_P | B(5 + below(&r, 4)), 8, -1);
    }
}

/* ---- hand-written sanity cases (answers from the SDM, not from vmxsim) --- */

struct hand {
    const char *name;
    enum paging_mode mode;
    unsigned cpl;
    enum acc_kind kind;
    uint64_t cr0x, cr4x, eferx;
    uint32_t pkru;
    bool ac, desc_a;
    uint64_t e[6];     /* per level: flags (non-leaf), flags | frame (leaf) */
    uint64_t after[6]; /* the same after the access */
    unsigned leaf;
    uint64_t la;
    bool ok;
    uint64_t pa; /* when ok */
    unsigned vector;
    uint32_t err; /* when !ok */
    bool rsvd_probe; /* DESIGN §9 probe: QEMU may leave P out (EXC_QEMU_RSVD_FAULT_WITHOUT_P) */
};

#define UP (E_P | E_RW | E_US)
#define UPA (UP | E_A)
#define LA4 0x00007ABC12345678ULL /* PML4 0x0F5, PDPT 0x0F0, PD 0x091, PT 0x145 */
#define LA4A (LA4 & ~7ULL)
#define LA5 0x00AB7ABC12345678ULL
#define FAR 0xF456789000ULL /* below 2^MAXPHY */
#define SLOT 0x123000ULL

static const struct hand hands[] = {
    {"user read, 4-level, CPL3, in RAM", PAGING_MODE_4LEVEL, 3, AK_READ, 0, 0, 0, 0, 0, 0,
     {[4] = UP, [3] = UP, [2] = UP, [1] = SLOT | UP}, {[4] = UPA, [3] = UPA, [2] = UPA,
     [1] = SLOT | UPA}, 1, LA4A, true, SLOT | (LA4A & 0xFFF), 0, 0, false},
    {"not-present PTE, CPL3 read", PAGING_MODE_4LEVEL, 3, AK_READ, 0, 0, 0, 0, 0, 0,
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | E_RW | E_US},
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | E_RW | E_US}, 1, LA4A, false, 0, 14, EC_U, false},
    {"not-present PDE, CPL0 write", PAGING_MODE_4LEVEL, 0, AK_WRITE, 0, 0, 0, 0, 0, 0,
     {[4] = UPA, [3] = UPA, [2] = 0, [1] = 0}, {[4] = UPA, [3] = UPA, [2] = 0}, 2, LA4A, false,
     0, 14, EC_W, false},
    {"CPL3 write to read-only user page", PAGING_MODE_4LEVEL, 3, AK_WRITE, CR0_WP, 0, 0, 0, 0, 0,
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | E_P | E_US}, {[4] = UPA, [3] = UPA, [2] = UPA,
     [1] = FAR | E_P | E_US}, 1, LA4A, false, 0, 14, EC_P | EC_W | EC_U, false},
    {"CPL0 fetch from XD page (NXE)", PAGING_MODE_4LEVEL, 0, AK_FETCH, 0, 0, EFER_NXE, 0, 0, 0,
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | E_P | E_RW | E_XD},
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | E_P | E_RW | E_XD}, 1, LA4A, false, 0, 14,
     EC_P | EC_I, false},
    {"CPL3 read, PKRU.AD for key 5", PAGING_MODE_4LEVEL, 3, AK_READ, 0, CR4_PKE, 0, 1u << 10, 0,
     0, {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | UP | E_PK(5)},
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | UP | E_PK(5)}, 1, LA4A, false, 0, 14,
     EC_P | EC_U | EC_PK, false},
    {"CPL3 write, outside RAM: D set", PAGING_MODE_4LEVEL, 3, AK_WRITE, 0, 0, 0, 0, 0, 0,
     {[4] = UP, [3] = UP, [2] = UP, [1] = FAR | UP}, {[4] = UPA, [3] = UPA, [2] = UPA,
     [1] = FAR | UPA | E_D}, 1, LA4A, true, FAR | (LA4A & 0xFFF), 0, 0, false},
    {"CPL0 read of user page, SMAP, AC=0", PAGING_MODE_4LEVEL, 0, AK_READ, 0, CR4_SMAP, 0, 0, 0,
     0, {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | UPA}, {[4] = UPA, [3] = UPA, [2] = UPA,
     [1] = FAR | UPA}, 1, LA4A, false, 0, 14, EC_P, false},
    {"CPL0 read of user page, SMAP, AC=1", PAGING_MODE_4LEVEL, 0, AK_READ, 0, CR4_SMAP, 0, 0, 1,
     0, {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | UPA}, {[4] = UPA, [3] = UPA, [2] = UPA,
     [1] = FAR | UPA}, 1, LA4A, true, FAR | (LA4A & 0xFFF), 0, 0, false},
    {"CPL3 implicit read, not present: supervisor", PAGING_MODE_4LEVEL, 3, AK_IMPLICIT, 0, 0, 0,
     0, 0, 1, {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | E_RW | E_US},
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | E_RW | E_US}, 1, LA4A, false, 0, 14, 0, false},
    {"CPL0 implicit read+write of a descriptor", PAGING_MODE_4LEVEL, 0, AK_IMPLICIT, 0, 0, 0, 0,
     0, 0, {[4] = UP, [3] = UP, [2] = UP, [1] = SLOT | UP},
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = SLOT | UPA | E_D}, 1, LA4A, true,
     SLOT | (LA4A & 0xFFF), 0, 0, false},
    {"reserved bit 45 in a PTE: P=1 RSVD=1", PAGING_MODE_4LEVEL, 0, AK_READ, 0, 0, 0, 0, 0, 0,
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | UP | B(45)},
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = FAR | UP | B(45)}, 1, LA4A, false, 0, 14,
     EC_P | EC_RSVD, true},
    {"5-level CPL3 fetch, not present (NXE)", PAGING_MODE_5LEVEL, 3, AK_FETCH, 0, 0, EFER_NXE, 0,
     0, 0, {[5] = UPA, [4] = UPA, [3] = UPA, [2] = UPA, [1] = 0},
     {[5] = UPA, [4] = UPA, [3] = UPA, [2] = UPA, [1] = 0}, 1, LA5 & ~7ULL, false, 0, 14,
     EC_U | EC_I, false},
    {"5-level CPL0 fetch of a slot, 1-GByte page", PAGING_MODE_5LEVEL, 0, AK_FETCH, 0, 0, 0, 0, 0,
     0, {[5] = E_P | E_RW, [4] = E_P | E_RW, [3] = E_P | E_PS},
     {[5] = E_P | E_RW | E_A, [4] = E_P | E_RW | E_A, [3] = E_P | E_PS | E_A}, 3,
     0x00AB7ABC00200008ULL, true, 0x200008, 0, 0, false},
    {"32-bit CPL3 read, 4 KiB, in RAM", PAGING_MODE_32BIT, 3, AK_READ, 0, 0, 0, 0, 0, 0,
     {[2] = UP, [1] = SLOT | UP}, {[2] = UPA, [1] = SLOT | UPA}, 1, 0x12345678 & ~7u, true,
     SLOT | 0x678, 0, 0, false},
    {"32-bit CPL0 write, not present", PAGING_MODE_32BIT, 0, AK_WRITE, 0, 0, 0, 0, 0, 0,
     {[2] = UPA, [1] = 0}, {[2] = UPA, [1] = 0}, 1, 0x12345678 & ~7u, false, 0, 14, EC_W, false},
    {"32-bit CPL3 write, 4 MiB page read-only", PAGING_MODE_32BIT, 3, AK_WRITE, 0, CR4_PSE, 0, 0,
     0, 0, {[2] = E_P | E_US | E_PS | 0xC00000}, {[2] = E_P | E_US | E_PS | 0xC00000}, 2,
     0x12345678 & ~7u, false, 0, 14, EC_P | EC_W | EC_U, false},
    {"PAE CPL0 fetch of a slot, 2 MiB page", PAGING_MODE_PAE, 0, AK_FETCH, 0, 0, EFER_NXE, 0, 0,
     0, {[3] = E_P, [2] = E_P | E_PS}, {[3] = E_P, [2] = E_P | E_PS | E_A}, 2, 0x80123450, true,
     0x123450, 0, 0, false},
    {"PAE CPL0 read, XD page and NXE=0: reserved", PAGING_MODE_PAE, 0, AK_READ, 0, 0, 0, 0, 0, 0,
     {[3] = E_P, [2] = UPA, [1] = FAR | UP | E_XD}, {[3] = E_P, [2] = UPA, [1] = FAR | UP | E_XD},
     1, 0x80123450, false, 0, 14, EC_P | EC_RSVD, false},
    {"PAE CPL3 write, not present", PAGING_MODE_PAE, 3, AK_WRITE, 0, 0, 0, 0, 0, 0,
     {[3] = E_P, [2] = UPA, [1] = 0}, {[3] = E_P, [2] = UPA, [1] = 0}, 1, 0x80123450, false, 0, 14,
     EC_W | EC_U, false},
    /* Deviation probes: QEMU's documented answer where it differs from the SDM
     * (the SDM answer is in the comment); each backs one named exception. */
    /* EXC_QEMU_A_ON_FAULTING_WALK. SDM/Intel/vmxsim: #PF(0), no entry changes. */
    {"QEMU deviation: A set on a faulting walk", PAGING_MODE_4LEVEL, 0, AK_READ, 0, 0, 0, 0, 0, 0,
     {[4] = E_P | E_RW, [3] = E_P | E_RW, [2] = E_P | E_RW, [1] = 0},
     {[4] = E_P | E_RW | E_A, [3] = E_P | E_RW | E_A, [2] = E_P | E_RW | E_A, [1] = 0}, 1, LA4A,
     false, 0, 14, 0, false},
    /* EXC_QEMU_A_ON_FAULTING_1G_LEAF. SDM/vmxsim: #PF(P|RSVD), PDPTE unchanged. */
    {"QEMU deviation: A set in a reserved 1G PDPTE", PAGING_MODE_4LEVEL, 0, AK_READ, 0, 0, 0, 0, 0,
     0, {[4] = E_P | E_RW | E_A, [3] = E_P | E_RW | E_PS | B(13)},
     {[4] = E_P | E_RW | E_A, [3] = E_P | E_RW | E_PS | B(13) | E_A}, 3, LA4A, false, 0, 14,
     EC_P | EC_RSVD, false},
    /* EXC_QEMU_SMAP_IMPLICIT_IGNORES_AC. SDM/vmxsim: #PF(P), the implicit read
     * of a user page with CR4.SMAP = 1 is not allowed whatever RFLAGS.AC. */
    {"QEMU deviation: implicit read, SMAP, AC=1, CPL0", PAGING_MODE_4LEVEL, 0, AK_IMPLICIT, 0,
     CR4_SMAP, 0, 0, 1, 1, {[4] = UPA, [3] = UPA, [2] = UPA, [1] = SLOT | UPA | E_D},
     {[4] = UPA, [3] = UPA, [2] = UPA, [1] = SLOT | UPA | E_D}, 1, LA4A, true,
     SLOT | (LA4A & 0xFFF), 0, 0, false},
    /* EXC_QEMU_PAE_PDPTE_CHECKED_AT_WALK. SDM/vmxsim: PDPTE bit 1 is reserved,
     * MOV to CR3 #GP(0); no walk happens. */
    {"QEMU deviation: PAE PDPTE with bit 1 is used", PAGING_MODE_PAE, 0, AK_READ, 0, 0, 0, 0, 0,
     0, {[3] = E_P | B(1), [2] = E_P | E_RW | E_A, [1] = FAR | E_P | E_RW | E_A},
     {[3] = E_P | B(1), [2] = E_P | E_RW | E_A, [1] = FAR | E_P | E_RW | E_A}, 1, 0x80123450,
     true, FAR | 0x450, 0, 0, false},
    /* EXC_QEMU_PAE_PDPTE_CHECKED_AT_WALK. SDM/vmxsim: #GP(0) at MOV to CR3. */
    {"QEMU deviation: PAE PDPTE bit 63 at walk time", PAGING_MODE_PAE, 0, AK_READ, 0, 0,
     EFER_NXE, 0, 0, 0, {[3] = E_P | E_XD, [2] = E_P | E_RW | E_A, [1] = FAR | E_P | E_RW},
     {[3] = E_P | E_XD, [2] = E_P | E_RW | E_A, [1] = FAR | E_P | E_RW}, 1, 0x80123450, false, 0,
     14, EC_P | EC_RSVD, false},
};

/* Build a hand case: level L's table in pool page (top - L), root at PA_POOL. */
static void hand_case(const struct hand *h, unsigned long idx, struct ocase *c)
{
    unsigned top = top_level(h->mode);
    unsigned esize = h->mode == PAGING_MODE_32BIT ? 4 : 8;
    unsigned idxbits = h->mode == PAGING_MODE_32BIT ? 10 : 9;

    memset(c, 0, sizeof *c);
    c->index = idx;
    c->mode = h->mode;
    c->cpl = h->cpl;
    c->kind = h->kind;
    c->cr0 = CR0_PE | CR0_ET | CR0_PG | h->cr0x;
    c->cr4 = h->cr4x | (h->mode != PAGING_MODE_32BIT ? CR4_PAE : 0) |
             (h->mode == PAGING_MODE_5LEVEL ? CR4_LA57 : 0);
    c->efer = h->eferx | (is_long(h->mode) ? EFER_LME | EFER_LMA : 0);
    c->pkru = h->pkru;
    c->ac = h->ac;
    c->desc_a = h->desc_a;
    c->la = h->la;
    c->leaf = h->leaf;
    c->intended_pa = h->ok ? h->pa : 0;
    c->marker = is_long(h->mode) ? 0x4D4B52FFFFFFFFFFULL : 0x4DFFFFFFULL;
    c->cr3 = PA_POOL;
    uint64_t hpa, hval;
    unsigned hsz;
    harness_root_entry(c->mode, 0, PA_POOL, &hpa, &hval, &hsz);
    add_entry(c, hpa, hval, hsz, 0);
    for (unsigned lv = top; lv >= h->leaf; lv--) {
        uint64_t table = PA_POOL + (top - lv) * PG;
        unsigned ix = (unsigned)((h->la >> (12 + idxbits * (lv - 1))) & ((1u << idxbits) - 1));
        if (h->mode == PAGING_MODE_PAE && lv == 3)
            ix = (unsigned)((h->la >> 30) & 3);
        uint64_t next = lv > h->leaf ? PA_POOL + (top - lv + 1) * PG : 0;
        add_entry(c, table + (uint64_t)ix * esize, next | h->e[lv], esize, (int)lv);
        if (lv == 1)
            break;
    }
}

/* ---- the runs -------------------------------------------------------------- */

static void setup_memory(void)
{
    ram = aligned_alloc(PG, RAM_SIZE);
    vmram = aligned_alloc(PG, RAM_SIZE);
    ram0 = aligned_alloc(PG, RAM_SIZE);
    ck_assert(ram && vmram && ram0);
    build_harness();
    memcpy(ram, ram0, RAM_SIZE);
    memcpy(vmram, ram0, RAM_SIZE);
}

static void teardown_memory(void)
{
    free(ram);
    free(vmram);
    free(ram0);
}

static struct engine *engine_for(struct engine *E[2], const struct ocase *c)
{
    return E[is_long(c->mode) ? 1 : 0];
}

/*
 * Run the hand cases on QEMU, find env->error_code in the saved context
 * from the faulting ones, then check every hand answer (vector, error code,
 * CR2, physical address, entries after). Fails the test if the oracle is
 * broken. Also fills the expected vmxsim-independent answers.
 */
static void calibrate_and_check_oracle(struct engine *E[2], bool verbose)
{
    enum { NH = sizeof hands / sizeof hands[0] };
    bool cand_init = false;
    size_t csize = E[0]->ctx_size;
    static bool cand[1 << 14];

    ck_assert_uint_eq(E[0]->ctx_size, E[1]->ctx_size);
    ck_assert_uint_lt(csize, sizeof cand);
    qemu_rsvd_without_p = false;
    err_off = 0; /* provisional: a readable offset until calibrated */
    for (unsigned pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < NH; i++) {
            const struct hand *h = &hands[i];
            struct ocase c;
            struct outcome q;
            struct engine *en;

            hand_case(h, i, &c);
            en = engine_for(E, &c);
            materialize(&c);
            q_run(en, &c, &q);
            if (pass == 0) {
                if (q.kind == OUT_FAULT && !h->ok && h->vector == X86_PF &&
                    !(h->err & EC_RSVD)) {
                    const uint8_t *b = (const uint8_t *)en->scratch;
                    for (size_t off = 0; off + 4 <= csize; off += 4) {
                        int32_t v;
                        memcpy(&v, b + off, 4);
                        bool m = v == (int32_t)h->err;
                        cand[off] = cand_init ? cand[off] && m : m;
                    }
                    cand_init = true;
                    if (getenv("PAGING_ORACLE_DEBUG")) {
                        unsigned nc = 0;
                        for (size_t off = 0; off + 4 <= csize; off += 4)
                            nc += cand[off];
                        printf("  calibration '%s': err %#x, %u candidates left\n", h->name, h->err, nc);
                    }
                } else if (pass == 0 && getenv("PAGING_ORACLE_DEBUG")) {
                    char msg[256];
                    describe_outcome(msg, sizeof msg, &q);
                    printf("  calibration '%s': %s\n", h->name, msg);
                }
            } else {
                char msg[256];
                describe_outcome(msg, sizeof msg, &q);
                if (verbose)
                    printf("  oracle sanity: %-46s -> %s\n", h->name, msg);
                if (h->ok) {
                    ck_assert_msg(q.kind == OUT_OK, "oracle broken: '%s': %s", h->name, msg);
                    ck_assert_msg(q.pa_known || h->kind == AK_WRITE,
                                  "oracle broken: '%s': no physical address", h->name);
                    if (h->kind == AK_WRITE && h->pa >= RAM_SIZE)
                        ck_assert_msg(q.pa == h->pa, "oracle broken: '%s': %s", h->name, msg);
                    else if (h->kind != AK_WRITE)
                        ck_assert_msg(q.pa == h->pa, "oracle broken: '%s': %s", h->name, msg);
                    if (h->kind == AK_READ && h->pa < RAM_SIZE)
                        ck_assert_msg(q.value == slot_value(h->pa & ~7ULL),
                                      "oracle broken: '%s': value", h->name);
                } else {
                    uint32_t want = h->err;
                    if (h->rsvd_probe && q.kind == OUT_FAULT && q.err == (h->err & ~EC_P)) {
                        qemu_rsvd_without_p = true; /* DESIGN §9 behaviour (QEMU >= 7) */
                        if (verbose)
                            printf("  QEMU leaves P out of RSVD faults: "
                                   "EXC_QEMU_RSVD_FAULT_WITHOUT_P armed\n");
                    }
                    if ((want & EC_RSVD) && qemu_rsvd_without_p)
                        want &= ~EC_P;
                    ck_assert_msg(q.kind == OUT_FAULT && q.vector == h->vector &&
                                      q.err == want &&
                                      q.cr2 == (h->vector == X86_PF ? h->la : 0),
                                  "oracle broken: '%s': %s (want vector %u err %#x)", h->name,
                                  msg, h->vector, want);
                    if (h->rsvd_probe && verbose && !qemu_rsvd_without_p)
                        printf("  QEMU sets P in RSVD faults (SDM): DESIGN §9's claim does not "
                               "hold for this Unicorn; EXC_QEMU_RSVD_FAULT_WITHOUT_P stays off\n");
                }
                for (unsigned k = 0; k < c.nent; k++) {
                    int lv = c.ent[k].level;
                    if (lv <= 0)
                        continue;
                    uint64_t want = (c.ent[k].val & ~0xFFFULL & ~E_XD & ~MASK(62, 59)) |
                                    h->after[lv];
                    if (lv == (int)h->leaf)
                        want = h->after[lv];
                    if (h->mode == PAGING_MODE_32BIT)
                        want &= 0xFFFFFFFFULL;
                    ck_assert_msg(ld(ram, c.ent[k].pa, c.ent[k].size) == want,
                                  "oracle broken: '%s': level-%d entry %#" PRIx64 ", want %#"
                                  PRIx64, h->name, lv, ld(ram, c.ent[k].pa, c.ent[k].size), want);
                }
            }
            for (unsigned k = 0; k < c.nent; k++)
                restore_range(c.ent[k].pa, c.ent[k].size);
            full_restore(E);
        }
        if (pass == 0) {
            long found = -1;
            unsigned n = 0;
            for (size_t off = 0; off + 4 <= csize; off += 4)
                if (cand_init && cand[off]) {
                    found = (long)off;
                    n++;
                }
            ck_assert_msg(n == 1, "oracle broken: %u candidate offsets for QEMU's error code", n);
            err_off = found;
        }
    }
}

static unsigned long env_ul(const char *name, unsigned long def)
{
    const char *s = getenv(name);
    return s && *s ? strtoul(s, NULL, 0) : def;
}

START_TEST(test_oracle_sanity)
{
    struct engine e32, e64, *E[2] = {&e32, &e64};

    setup_memory();
    engine_open(&e32, false);
    engine_open(&e64, true);
    calibrate_and_check_oracle(E, true);
    printf("  QEMU error code found at context offset %ld\n", err_off);
    engine_close(&e32);
    engine_close(&e64);
    teardown_memory();
}
END_TEST

struct stats {
    unsigned long n[5][AK_COUNT][3]; /* mode, access, ok/#PF/#GP */
    unsigned long ec[64];            /* #PF error codes seen */
    unsigned long leaf_ok[4];        /* successful translations by leaf level */
};

START_TEST(test_differential)
{
    uint64_t seed = env_ul("PAGING_ORACLE_SEED", DEFAULT_SEED);
    unsigned long ncases = env_ul("PAGING_ORACLE_CASES", DEFAULT_CASES);
    const char *one = getenv("PAGING_ORACLE_CASE");
    unsigned long first = 0, last = ncases;
    struct engine e32, e64, *E[2] = {&e32, &e64};
    static struct stats S;
    unsigned long mismatches = 0, broken = 0;
    struct timespec t0, t1;

    if (one && *one) {
        first = strtoul(one, NULL, 0);
        last = first + 1;
    }
    printf("paging oracle: seed %#" PRIx64 " (PAGING_ORACLE_SEED), %lu cases "
           "(PAGING_ORACLE_CASES)\n", seed, last - first);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    setup_memory();
    engine_open(&e32, false);
    engine_open(&e64, true);
    calibrate_and_check_oracle(E, false);

    for (unsigned long i = first; i < last; i++) {
        struct ocase c;
        struct outcome e, q;
        char why[256];
        const char *diff;

        gen_case(seed, i, &c);
        case_exc_mask = 0;
        materialize(&c);
        vm_expect(&c, &e);
        q_run(engine_for(E, &c), &c, &q);
        diff = compare(&c, &e, &q, why, sizeof why);
        if (one && *one) {
            printf("  %s\n", diff ? diff : "agree");
            dump_case(&c, &e, &q);
        }
        if (diff) {
            if (q.kind == OUT_BROKEN || e.kind == OUT_BROKEN)
                broken++;
            if (mismatches++ < MAX_REPORTED) {
                printf("MISMATCH (%s):\n", diff);
                dump_case(&c, &e, &q);
            }
            full_restore(E);
        } else {
            int o = q.kind == OUT_OK ? 0 : q.vector == X86_PF ? 1 : 2;
            S.n[c.mode][c.kind][o]++;
            if (o == 1)
                S.ec[q.err & 63]++;
            if (o == 0)
                S.leaf_ok[c.leaf]++;
            restore_case(&c, &e, &q);
        }
        if ((i & 4095) == 4095 || i + 1 == last) {
            ck_assert_msg(memcmp(ram, ram0, RAM_SIZE) == 0 && memcmp(vmram, ram0, RAM_SIZE) == 0,
                          "memory not restored after case %lu", i);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    printf("paging oracle: %lu cases in %.1f s, %lu mismatches (%lu where a side could not run)\n",
           last - first, secs, mismatches, broken);
    printf("  %-8s %-9s %8s %8s %8s\n", "mode", "access", "ok", "#PF", "#GP");
    for (int m = 1; m < 5; m++)
        for (int k = 0; k < AK_COUNT; k++)
            printf("  %-8s %-9s %8lu %8lu %8lu\n", mode_name((enum paging_mode)m), acc_name[k],
                   S.n[m][k][0], S.n[m][k][1], S.n[m][k][2]);
    printf("  successful translations by page size: 4K %lu, 2M/4M %lu, 1G %lu\n", S.leaf_ok[1],
           S.leaf_ok[2], S.leaf_ok[3]);
    printf("  #PF error codes seen:");
    for (int x = 0; x < 64; x++)
        if (S.ec[x])
            printf(" %#x:%lu", x, S.ec[x]);
    printf("\n  named exceptions (cases where the QEMU answer differs from the SDM one):\n");
    for (int x = 0; x < EXC_COUNT; x++)
        printf("    %-36s %7lu  (first: case %lu) %s\n", exceptions[x].name, exceptions[x].hits,
               exceptions[x].first_case, exceptions[x].what);
    engine_close(&e32);
    engine_close(&e64);
    teardown_memory();
    ck_assert_msg(!trace_misaligned, "paging_walk read a misaligned entry");
    ck_assert_msg(mismatches == 0, "%lu cases where vmxsim and QEMU disagree (seed %#" PRIx64 ")",
                  mismatches, seed);
}
END_TEST

static Suite *oracle_suite(void)
{
    Suite *s = suite_create("paging_oracle");
    TCase *tc = tcase_create("oracle");

    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_oracle_sanity);
    tcase_add_test(tc, test_differential);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(oracle_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
