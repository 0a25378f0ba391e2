/*
 * Architectural TLB unit tests (src/paging/tlb.c). Expectations are written
 * from the SDM text, not from the implementation:
 *   Vol. 3A §4.10.1 (PCIDs), §4.10.2 (TLB contents and use, global pages),
 *   §4.10.4.1 (operations that invalidate), §4.6 (access rights), §4.8 (D);
 *   Vol. 3C §29.4.1-§29.4.3 (linear, combined and guest-physical mappings;
 *   INVVPID, INVEPT, VMX transitions, EPT violations).
 *
 * The invalidation table runs each architectural operation on one fixed
 * population of entries (below) and lists exactly which entries it must
 * drop: every other entry must survive (the "no more" half of the rule).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86.h"
#include "paging/paging.h"
#include "paging/tlb.h"

#define K4 TLB_PAGE_4K
#define M2 TLB_PAGE_2M
#define M4 TLB_PAGE_4M
#define G1 TLB_PAGE_1G

#define EP1 0x0000000012345000ULL /* an EP4TA (EPTP bits 51:12) */
#define EP2 0x00000000abcde000ULL /* another one */

static struct tlb *new_tlb(const struct tlb_config *cfg)
{
    struct tlb *t = NULL;

    ck_assert_int_eq(tlb_init(&t, cfg), VMXSIM_OK);
    ck_assert_ptr_nonnull(t);
    return t;
}

static struct tlb_ctx lin(uint16_t vpid, uint16_t pcid)
{
    struct tlb_ctx c = {.vpid = vpid, .pcid = pcid};
    return c;
}

static struct tlb_ctx comb(uint16_t vpid, uint16_t pcid, uint64_t ep4ta)
{
    struct tlb_ctx c = {.vpid = vpid, .pcid = pcid, .ept = true, .ep4ta = ep4ta};
    return c;
}

/* A present, accessed, user, writable, dirty translation (rights varied per test). */
static struct tlb_entry xlat(uint64_t la, uint64_t size, uint64_t guest_size, bool global)
{
    struct tlb_entry e = {
        .la = la,
        .page_size = size,
        .guest_page_size = guest_size,
        .pa = (la & ~(size - 1)) + 0x100000000ULL,
        .global = global,
        .user = true,
        .writable = true,
        .dirty = true,
        .ept_allowed = PAGING_ALLOW_R | PAGING_ALLOW_W | PAGING_ALLOW_X,
    };
    return e;
}

static void insert(struct tlb *t, struct tlb_ctx c, struct tlb_entry e)
{
    ck_assert_int_eq(tlb_insert(t, &c, &e), VMXSIM_OK);
}

/* ==== The population for the invalidation table ==== */

#define LA_X 0x0000000000001000ULL      /* a 4 KiB page */
#define LA_X2 0x0000000000002000ULL     /* the next one */
#define LA_BIG 0x0000000000200000ULL    /* a 2 MiB page: 0x200000-0x3FFFFF */
#define LA_GLB 0x0000000000005000ULL    /* a global page */
#define LA_GLB7 0x0000000000006000ULL   /* a global page created under PCID 7 */
#define LA_FRAG 0x00000000007FF000ULL   /* 4 KiB fragment of a guest 2 MiB page 0x600000 */
#define LA_HI 0xFFFF800000403000ULL     /* a canonical high address */

struct pop {
    char name;
    bool combined;
    uint16_t vpid, pcid;
    uint64_t ep4ta;
    uint64_t la, size, guest_size;
    bool global;
};

static const struct pop pop[] = {
    /* VPID 0 (host, or VPID disabled), linear mappings */
    {'a', false, 0, 0, 0, LA_X, K4, K4, false},
    {'b', false, 0, 0, 0, LA_X2, K4, K4, false},
    {'c', false, 0, 0, 0, LA_BIG, M2, M2, false},
    {'d', false, 0, 0, 0, LA_GLB, K4, K4, true},
    {'e', false, 0, 7, 0, LA_X, K4, K4, false},
    {'f', false, 0, 7, 0, LA_GLB7, K4, K4, true},
    /* VPID 5 */
    {'g', false, 5, 0, 0, LA_X, K4, K4, false},
    {'h', false, 5, 0, 0, LA_GLB, K4, K4, true},
    {'i', true, 5, 0, EP1, LA_X, K4, K4, false},
    {'j', true, 5, 0, EP2, LA_X, K4, K4, false},
    {'k', true, 5, 0, EP1, LA_FRAG, K4, M2, false},
    {'m', true, 5, 0, EP1, LA_GLB, K4, K4, true},
    /* combined mapping of VPID 0 (EPT with "enable VPID" = 0) */
    {'l', true, 0, 0, EP1, LA_X, K4, K4, false},
    /* VPID 9 */
    {'n', false, 9, 0, 0, LA_HI, K4, K4, false},
    /* 1 GiB page of VPID 0 */
    {'o', false, 0, 0, 0, 0x40000000ULL, G1, G1, false},
};

#define N_POP (sizeof(pop) / sizeof(pop[0]))

/* Guest-physical mappings: name, EP4TA, GPA, size. */
struct gpop {
    char name;
    uint64_t ep4ta, gpa, size;
};

static const struct gpop gpop[] = {
    {'P', EP1, 0x1000, K4},
    {'Q', EP2, 0x1000, K4},
    {'R', EP1, 0x200000, M2},
};

#define N_GPOP (sizeof(gpop) / sizeof(gpop[0]))

static struct tlb *populated(void)
{
    struct tlb *t = new_tlb(NULL);

    for (unsigned i = 0; i < N_POP; i++) {
        const struct pop *p = &pop[i];
        struct tlb_ctx c = p->combined ? comb(p->vpid, p->pcid, p->ep4ta) : lin(p->vpid, p->pcid);
        insert(t, c, xlat(p->la, p->size, p->guest_size, p->global));
    }
    for (unsigned i = 0; i < N_GPOP; i++) {
        struct tlb_gpa_entry g = {.gpa = gpop[i].gpa, .page_size = gpop[i].size,
                                  .hpa = 0x80000000ULL, .perms = EPT_PERM_R, .dirty = true};
        ck_assert_int_eq(tlb_gpa_insert(t, gpop[i].ep4ta, &g), VMXSIM_OK);
    }
    ck_assert_uint_eq(tlb_count(t), N_POP);
    ck_assert_uint_eq(tlb_gpa_count(t), N_GPOP);
    return t;
}

static bool holds(struct tlb *t, const struct pop *p)
{
    struct tlb_entry all[64];
    unsigned n = tlb_entries(t, all, 64);

    for (unsigned i = 0; i < n && i < 64; i++) {
        const struct tlb_entry *e = &all[i];
        if (e->kind == (p->combined ? TLB_COMBINED : TLB_LINEAR) && e->vpid == p->vpid &&
            e->pcid == p->pcid && e->ep4ta == p->ep4ta && e->la == p->la &&
            e->page_size == p->size)
            return true;
    }
    return false;
}

static bool holds_gpa(struct tlb *t, const struct gpop *g)
{
    struct tlb_gpa_entry e;

    return tlb_gpa_lookup(t, g->ep4ta, g->gpa, &e) && e.page_size == g->size;
}

/* ==== The invalidation table ==== */

enum op {
    OP_INVLPG, OP_PAGE_FAULT, OP_INVPCID, OP_CR0, OP_CR3, OP_CR4, OP_TASK,
    OP_VM_ENTRY, OP_VM_EXIT, OP_VMFUNC, OP_EPT_VIOL, OP_INVVPID, OP_INVEPT, OP_RESET,
};

struct inv_row {
    const char *rule;   /* the SDM sentence the row checks */
    enum op op;
    struct tlb_ctx cur; /* context the operation executes in */
    uint64_t a, b, c;   /* operands (see apply) */
    const char *drops;  /* names of the entries that must go; all others stay */
    enum tlb_cause cause;
};

#define CR4_PCIDE X86_CR4_PCIDE
#define CUR0 {.vpid = 0, .pcid = 0}
#define CUR0P7 {.vpid = 0, .pcid = 7}
#define CUR5 {.vpid = 5, .pcid = 0}
#define CUR5E1 {.vpid = 5, .pcid = 0, .ept = true, .ep4ta = EP1}
#define CUR5P3E1 {.vpid = 5, .pcid = 3, .ept = true, .ep4ta = EP1}
#define CUR5E2 {.vpid = 5, .pcid = 0, .ept = true, .ep4ta = EP2}
#define CUR0E1 {.vpid = 0, .pcid = 0, .ept = true, .ep4ta = EP1}

static const struct inv_row inv_rows[] = {
    /* Vol. 3A §4.10.4.1 INVLPG + Vol. 3C §29.4.3.1 (current VPID, all EP4TAs) */
    {"INVLPG: current PCID's entry and the combined one of every EP4TA", OP_INVLPG, CUR0,
     LA_X, 0, 0, "al", TLB_CAUSE_INVLPG},
    {"INVLPG: any address inside a 2 MiB page", OP_INVLPG, CUR0, LA_BIG + 0x1FF123, 0, 0, "c",
     TLB_CAUSE_INVLPG},
    {"INVLPG: any address inside a 1 GiB page", OP_INVLPG, CUR0, 0x7FFFFFFFULL, 0, 0, "o",
     TLB_CAUSE_INVLPG},
    {"INVLPG: global entry of another PCID goes; same VPID only", OP_INVLPG, CUR0P7, LA_GLB, 0,
     0, "d", TLB_CAUSE_INVLPG},
    {"INVLPG: non-global entry of another PCID stays", OP_INVLPG, CUR0P7, LA_X, 0, 0, "e",
     TLB_CAUSE_INVLPG},
    {"INVLPG: all 4 KiB fragments of a guest large page, any EP4TA", OP_INVLPG, CUR5E2,
     0x600000, 0, 0, "k", TLB_CAUSE_INVLPG},
    {"INVLPG without EPT: linear and combined mappings of the VPID", OP_INVLPG, CUR5, LA_X, 0,
     0, "gij", TLB_CAUSE_INVLPG},
    {"INVLPG: an unmapped page drops nothing", OP_INVLPG, CUR0, 0x9000, 0, 0, "",
     TLB_CAUSE_INVLPG},
    /* Vol. 3A §4.10.4.1 page faults */
    {"#PF: entries for the faulting page, current PCID and globals", OP_PAGE_FAULT, CUR0,
     LA_X + 0x123, 0, 0, "al", TLB_CAUSE_PAGE_FAULT},
    {"#PF: a global entry of another PCID that may have faulted", OP_PAGE_FAULT, CUR0P7,
     LA_GLB, 0, 0, "d", TLB_CAUSE_PAGE_FAULT},
    /* Vol. 3A §4.10.4.1 INVPCID */
    {"INVPCID 0: the PCID's mapping of la", OP_INVPCID, CUR0, TLB_INVPCID_ADDR, 7, LA_X, "e",
     TLB_CAUSE_INVPCID},
    {"INVPCID 0: not for the current PCID unless named", OP_INVPCID, CUR0P7, TLB_INVPCID_ADDR,
     0, LA_X, "al", TLB_CAUSE_INVPCID},
    {"INVPCID 0: global translations stay", OP_INVPCID, CUR0, TLB_INVPCID_ADDR, 0, LA_GLB, "",
     TLB_CAUSE_INVPCID},
    {"INVPCID 0: fragments of a guest large page", OP_INVPCID, CUR5, TLB_INVPCID_ADDR, 0,
     0x612345, "k", TLB_CAUSE_INVPCID},
    {"INVPCID 1: the PCID except globals", OP_INVPCID, CUR0P7, TLB_INVPCID_SINGLE, 0, 0, "abclo",
     TLB_CAUSE_INVPCID},
    {"INVPCID 1: PCID 7 except its global", OP_INVPCID, CUR0, TLB_INVPCID_SINGLE, 7, 0, "e",
     TLB_CAUSE_INVPCID},
    {"INVPCID 2: all PCIDs including globals, current VPID", OP_INVPCID, CUR0,
     TLB_INVPCID_ALL_GLOBAL, 0, 0, "abcdeflo", TLB_CAUSE_INVPCID},
    {"INVPCID 3: all PCIDs except globals", OP_INVPCID, CUR0, TLB_INVPCID_ALL_NONGLOBAL, 0, 0,
     "abcelo", TLB_CAUSE_INVPCID},
    {"INVPCID 2 in VPID 5", OP_INVPCID, CUR5E1, TLB_INVPCID_ALL_GLOBAL, 0, 0, "ghijkm",
     TLB_CAUSE_INVPCID},
    /* Vol. 3A §4.10.4.1 MOV to CR0 */
    {"MOV CR0 PG 1->0: everything of the VPID, globals included", OP_CR0, CUR0, X86_CR0_PG | 1,
     1, 0, "abcdeflo", TLB_CAUSE_MOV_CR0},
    {"MOV CR0 PG 0->1: nothing", OP_CR0, CUR0, 1, X86_CR0_PG | 1, 0, "", TLB_CAUSE_MOV_CR0},
    {"MOV CR0 WP 1->0: nothing (WP is checked at use)", OP_CR0, CUR0,
     X86_CR0_PG | X86_CR0_WP | 1, X86_CR0_PG | 1, 0, "", TLB_CAUSE_MOV_CR0},
    {"MOV CR0 WP 0->1: nothing", OP_CR0, CUR0, X86_CR0_PG | 1, X86_CR0_PG | X86_CR0_WP | 1, 0,
     "", TLB_CAUSE_MOV_CR0},
    {"MOV CR0 CD/NW: nothing required", OP_CR0, CUR0, X86_CR0_PG | 1,
     X86_CR0_PG | X86_CR0_CD | X86_CR0_NW | 1, 0, "", TLB_CAUSE_MOV_CR0},
    {"MOV CR0 PG 1->0 in VPID 5", OP_CR0, CUR5, X86_CR0_PG, 0, 0, "ghijkm", TLB_CAUSE_MOV_CR0},
    /* Vol. 3A §4.10.4.1 MOV to CR3 */
    {"MOV CR3, PCIDE=0: non-global entries of PCID 000H", OP_CR3, CUR0, 0, 0x3000, 0, "abclo",
     TLB_CAUSE_MOV_CR3},
    {"MOV CR3, PCIDE=1: non-global entries of the new PCID", OP_CR3, CUR0, CR4_PCIDE, 0x3007, 0,
     "e", TLB_CAUSE_MOV_CR3},
    {"MOV CR3, PCIDE=1, bit 63: nothing", OP_CR3, CUR0, CR4_PCIDE,
     X86_CR3_PCID_NOFLUSH | 0x3000, 0, "", TLB_CAUSE_MOV_CR3},
    {"MOV CR3, PCIDE=0: bit 63 means nothing (the core #GPs first)", OP_CR3, CUR0, 0,
     X86_CR3_PCID_NOFLUSH | 0x3000, 0, "abclo", TLB_CAUSE_MOV_CR3},
    {"MOV CR3, PCIDE=0, in VPID 5 (linear and combined)", OP_CR3, CUR5, 0, 0x3000, 0, "gijk",
     TLB_CAUSE_MOV_CR3},
    /* Vol. 3A §4.10.4.1 MOV to CR4 */
    {"MOV CR4 PGE 1->0: everything of the VPID", OP_CR4, CUR0, X86_CR4_PGE, 0, 0, "abcdeflo",
     TLB_CAUSE_MOV_CR4},
    {"MOV CR4 PGE 0->1: everything of the VPID", OP_CR4, CUR0, 0, X86_CR4_PGE, 0, "abcdeflo",
     TLB_CAUSE_MOV_CR4},
    {"MOV CR4 PCIDE 1->0: everything of the VPID", OP_CR4, CUR0P7, CR4_PCIDE | X86_CR4_PAE,
     X86_CR4_PAE, 0, "abcdeflo", TLB_CAUSE_MOV_CR4},
    {"MOV CR4 PCIDE 0->1: nothing", OP_CR4, CUR0, X86_CR4_PAE, CR4_PCIDE | X86_CR4_PAE, 0, "",
     TLB_CAUSE_MOV_CR4},
    {"MOV CR4 SMEP 0->1: current PCID, its globals too", OP_CR4, CUR0, 0, X86_CR4_SMEP, 0,
     "abcdlo", TLB_CAUSE_MOV_CR4},
    {"MOV CR4 SMEP 0->1 under PCID 7", OP_CR4, CUR0P7, CR4_PCIDE, CR4_PCIDE | X86_CR4_SMEP, 0,
     "ef", TLB_CAUSE_MOV_CR4},
    {"MOV CR4 PAE change: current PCID", OP_CR4, CUR0, X86_CR4_PAE, 0, 0, "abcdlo",
     TLB_CAUSE_MOV_CR4},
    {"MOV CR4 SMEP 1->0: nothing required", OP_CR4, CUR0, X86_CR4_SMEP, 0, 0, "",
     TLB_CAUSE_MOV_CR4},
    {"MOV CR4 SMAP/PKE/PKS/PSE/LA57 changes: nothing required", OP_CR4, CUR0, 0,
     X86_CR4_SMAP | X86_CR4_PKE | X86_CR4_PKS | X86_CR4_PSE | X86_CR4_LA57, 0, "",
     TLB_CAUSE_MOV_CR4},
    /* Vol. 3A §4.10.4.1 task switch */
    {"task switch changing CR3: non-global entries of PCID 000H", OP_TASK, CUR0, 0x1000, 0x2000,
     0, "abclo", TLB_CAUSE_TASK_SWITCH},
    {"task switch keeping CR3: nothing", OP_TASK, CUR0, 0x1000, 0x1000, 0, "",
     TLB_CAUSE_TASK_SWITCH},
    /* Vol. 3C §29.4.3.1 VMX transitions */
    {"VM entry, enable VPID = 0: VPID 0000H, all PCIDs and EP4TAs", OP_VM_ENTRY, CUR0, 0, 0, 0,
     "abcdeflo", TLB_CAUSE_VM_ENTRY},
    {"VM entry, enable VPID = 1: nothing", OP_VM_ENTRY, CUR0, 1, 0, 0, "", TLB_CAUSE_VM_ENTRY},
    {"VM exit, enable VPID = 0: VPID 0000H", OP_VM_EXIT, CUR0, 0, 0, 0, "abcdeflo",
     TLB_CAUSE_VM_EXIT},
    {"VM exit, enable VPID = 1: nothing (host entries survive)", OP_VM_EXIT, CUR5E1, 1, 0, 0,
     "", TLB_CAUSE_VM_EXIT},
    {"EPTP-switching VMFUNC, VPID off: combined mappings of VPID 0", OP_VMFUNC, CUR0E1, 0, 0, 0,
     "l", TLB_CAUSE_VMFUNC},
    {"EPTP-switching VMFUNC, VPID on: nothing", OP_VMFUNC, CUR5E1, 1, 0, 0, "",
     TLB_CAUSE_VMFUNC},
    /* Vol. 3C §29.4.3.1 EPT violations */
    {"EPT violation: GPA mapping of the EP4TA, combined mapping of la", OP_EPT_VIOL, CUR5E1,
     0x1000, 1, LA_X, "iP", TLB_CAUSE_EPT_VIOLATION},
    {"EPT violation on a paging-structure access: GPA only", OP_EPT_VIOL, CUR5E1, 0x1234, 0,
     LA_X, "P", TLB_CAUSE_EPT_VIOLATION},
    {"EPT violation: 2 MiB GPA mapping, other EP4TA's stay", OP_EPT_VIOL, CUR5E2, 0x3FF000, 0,
     0, "", TLB_CAUSE_EPT_VIOLATION},
    {"EPT violation: global combined entry of another PCID the access would use", OP_EPT_VIOL,
     CUR5P3E1, 0x5000, 1, LA_GLB, "m", TLB_CAUSE_EPT_VIOLATION},
    {"EPT violation: non-global entry of another PCID stays", OP_EPT_VIOL, CUR5P3E1, 0x9000, 1,
     LA_X, "", TLB_CAUSE_EPT_VIOLATION},
    {"EPT violation: only the entry for la, not other fragments of its guest page", OP_EPT_VIOL,
     CUR5E1, 0x9000, 1, 0x600000, "", TLB_CAUSE_EPT_VIOLATION},
    /* Vol. 3C §29.4.3.1 INVVPID */
    {"INVVPID 0: la in the VPID, all PCIDs and EP4TAs", OP_INVVPID, CUR0, TLB_INVVPID_ADDR, 5,
     LA_X, "gij", TLB_CAUSE_INVVPID},
    {"INVVPID 0: globals of that address too", OP_INVVPID, CUR0, TLB_INVVPID_ADDR, 5, LA_GLB,
     "hm", TLB_CAUSE_INVVPID},
    {"INVVPID 0: all fragments of a guest large page", OP_INVVPID, CUR0, TLB_INVVPID_ADDR, 5,
     0x600000, "k", TLB_CAUSE_INVVPID},
    {"INVVPID 1: the VPID, globals included", OP_INVVPID, CUR0, TLB_INVVPID_SINGLE, 5, 0,
     "ghijkm", TLB_CAUSE_INVVPID},
    {"INVVPID 2: every VPID except 0000H", OP_INVVPID, CUR0, TLB_INVVPID_ALL, 0, 0, "ghijkmn",
     TLB_CAUSE_INVVPID},
    {"INVVPID 3: the VPID except globals", OP_INVVPID, CUR0, TLB_INVVPID_SINGLE_KEEP_GLOBALS, 5,
     0, "gijk", TLB_CAUSE_INVVPID},
    /* Vol. 3C §29.4.3.1 INVEPT */
    {"INVEPT single: combined and GPA mappings of the EP4TA, any VPID", OP_INVEPT, CUR0,
     TLB_INVEPT_SINGLE, EP1 | 0x5E, 0, "iklmPR", TLB_CAUSE_INVEPT},
    {"INVEPT all: every combined and GPA mapping, no linear one", OP_INVEPT, CUR0,
     TLB_INVEPT_ALL, 0, 0, "ijklmPQR", TLB_CAUSE_INVEPT},
    /* Vol. 3C §29.4.3.1 power-up/reset, Vol. 3A §10.1 INIT */
    {"RESET/INIT: everything", OP_RESET, CUR0, 0, 0, 0, "abcdefghijklmnoPQR", TLB_CAUSE_RESET},
};

#define N_INV_ROWS (sizeof(inv_rows) / sizeof(inv_rows[0]))

static void apply(struct tlb *t, const struct inv_row *r)
{
    const struct tlb_ctx *cur = &r->cur;

    switch (r->op) {
    case OP_INVLPG: tlb_invlpg(t, cur, r->a); break;
    case OP_PAGE_FAULT: tlb_page_fault(t, cur, r->a); break;
    case OP_INVPCID: tlb_invpcid(t, cur, (enum tlb_invpcid_type)r->a, (uint16_t)r->b, r->c); break;
    case OP_CR0: tlb_mov_cr0(t, cur, r->a, r->b); break;
    case OP_CR3: tlb_mov_cr3(t, cur, r->a, r->b); break;
    case OP_CR4: tlb_mov_cr4(t, cur, r->a, r->b); break;
    case OP_TASK: tlb_task_switch(t, cur, r->a, r->b); break;
    case OP_VM_ENTRY: tlb_vm_entry(t, r->a != 0); break;
    case OP_VM_EXIT: tlb_vm_exit(t, r->a != 0); break;
    case OP_VMFUNC: tlb_vmfunc_eptp_switch(t, r->a != 0); break;
    case OP_EPT_VIOL: tlb_ept_violation(t, cur, r->a, r->b != 0, r->c); break;
    case OP_INVVPID: tlb_invvpid(t, (enum tlb_invvpid_type)r->a, (uint16_t)r->b, r->c); break;
    case OP_INVEPT: tlb_invept(t, (enum tlb_invept_type)r->a, r->b); break;
    case OP_RESET: tlb_reset(t); break;
    }
}

START_TEST(invalidation_rule)
{
    const struct inv_row *r = &inv_rows[_i];
    struct tlb *t = populated();
    unsigned expect_dropped = (unsigned)strlen(r->drops);
    uint64_t gen = tlb_generation(t);

    apply(t, r);
    /* Caches of translations (each engine's Unicorn TLB) are current only while the generation
     * is: it moves with every invalidating operation, and only with those. */
    bool invalidated = tlb_stats(t)->ops[r->cause] != 0;
    ck_assert_msg((tlb_generation(t) != gen) == invalidated, "%s: generation %s", r->rule,
                  invalidated ? "unchanged by an invalidation" : "changed by a no-op");
    for (unsigned i = 0; i < N_POP; i++) {
        bool must_go = strchr(r->drops, pop[i].name) != NULL;
        ck_assert_msg(holds(t, &pop[i]) != must_go, "%s: entry '%c' %s", r->rule, pop[i].name,
                      must_go ? "survived" : "was dropped");
    }
    for (unsigned i = 0; i < N_GPOP; i++) {
        bool must_go = strchr(r->drops, gpop[i].name) != NULL;
        ck_assert_msg(holds_gpa(t, &gpop[i]) != must_go, "%s: GPA entry '%c' %s", r->rule,
                      gpop[i].name, must_go ? "survived" : "was dropped");
    }
    ck_assert_uint_eq(tlb_stats(t)->dropped[r->cause], expect_dropped);
    /* an operation that drops nothing because the SDM asks nothing is not a flush */
    tlb_free(t);
}
END_TEST

/* Operations that the SDM does not make flushes are not counted as flushes. */
START_TEST(noop_operations_not_counted)
{
    struct tlb *t = populated();
    struct tlb_ctx c = lin(0, 0);
    struct tlb_entry e;
    uint64_t gen = tlb_generation(t);

    (void)tlb_lookup(t, &c, 0x9000, &e); /* lookups and probes are not invalidations */
    (void)tlb_probe(t, &c, 0x9000, &e);
    tlb_mov_cr3(t, &c, X86_CR4_PCIDE, X86_CR3_PCID_NOFLUSH | 0x1000);
    tlb_mov_cr0(t, &c, X86_CR0_PG | X86_CR0_WP, X86_CR0_PG);
    tlb_mov_cr4(t, &c, 0, X86_CR4_SMAP);
    tlb_vm_entry(t, true);
    tlb_vm_exit(t, true);
    tlb_task_switch(t, &c, 0x1000, 0x1000);
    for (unsigned i = 0; i < TLB_CAUSE_COUNT; i++)
        ck_assert_msg(tlb_stats(t)->ops[i] == 0, "cause %s counted", tlb_cause_name(i));
    ck_assert_uint_eq(tlb_generation(t), gen);
    tlb_invlpg(t, &c, 0x9000); /* an INVLPG is an invalidation even when nothing matches */
    ck_assert_uint_ne(tlb_generation(t), gen);
    ck_assert_uint_eq(tlb_stats(t)->ops[TLB_CAUSE_INVLPG], 1);
    ck_assert_uint_eq(tlb_stats(t)->dropped[TLB_CAUSE_INVLPG], 0);
    ck_assert_uint_eq(tlb_count(t), N_POP);
    tlb_free(t);
}
END_TEST

/* Unknown INVPCID/INVVPID/INVEPT types fault or VMfail before reaching the TLB: no effect. */
START_TEST(unknown_types_do_nothing)
{
    struct tlb *t = populated();
    struct tlb_ctx c = lin(0, 0);

    tlb_invpcid(t, &c, (enum tlb_invpcid_type)4, 0, 0);
    tlb_invvpid(t, (enum tlb_invvpid_type)4, 5, 0);
    tlb_invept(t, (enum tlb_invept_type)0, EP1);
    tlb_invept(t, (enum tlb_invept_type)3, EP1);
    ck_assert_uint_eq(tlb_count(t), N_POP);
    ck_assert_uint_eq(tlb_gpa_count(t), N_GPOP);
    tlb_free(t);
}
END_TEST

/* ==== Lookup (Vol. 3C §29.4.2, Vol. 3A §4.10.2.3, §4.10.2.4) ==== */

START_TEST(lookup_tags)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx h = lin(0, 0), p3 = lin(0, 3), v5 = lin(5, 0);
    struct tlb_ctx e1 = comb(0, 0, EP1), e2 = comb(0, 0, EP2);
    struct tlb_entry out;

    insert(t, h, xlat(0x1000, K4, 0, false));
    insert(t, h, xlat(0x5000, K4, 0, true));
    ck_assert(tlb_lookup(t, &h, 0x1FFF, &out));
    ck_assert_uint_eq(out.la, 0x1000);
    ck_assert_uint_eq(out.pa, 0x100001000ULL);
    ck_assert_int_eq(out.kind, TLB_LINEAR);
    /* another PCID: only the global entry (§4.10.2.4) */
    ck_assert(!tlb_lookup(t, &p3, 0x1000, NULL));
    ck_assert(tlb_lookup(t, &p3, 0x5000, &out));
    ck_assert(out.global && out.pcid == 0);
    /* another VPID: nothing, not even the global entry */
    ck_assert(!tlb_lookup(t, &v5, 0x1000, NULL));
    ck_assert(!tlb_lookup(t, &v5, 0x5000, NULL));
    /* EPT in use: linear mappings are not used (§29.4.2) */
    ck_assert(!tlb_lookup(t, &e1, 0x1000, NULL));
    ck_assert(!tlb_lookup(t, &e1, 0x5000, NULL));
    /* combined mappings: only with EPT and the same EP4TA */
    insert(t, e1, xlat(0x2000, K4, 0, true));
    ck_assert(tlb_lookup(t, &e1, 0x2000, &out));
    ck_assert_int_eq(out.kind, TLB_COMBINED);
    ck_assert_uint_eq(out.ep4ta, EP1);
    ck_assert(!tlb_lookup(t, &e2, 0x2000, NULL));
    ck_assert(!tlb_lookup(t, &h, 0x2000, NULL));
    ck_assert_uint_eq(tlb_stats(t)->linear.hits, 3);
    ck_assert_uint_eq(tlb_stats(t)->linear.misses, 7);
    ck_assert_uint_eq(tlb_stats(t)->linear.lookups, 10);
    tlb_free(t);
}
END_TEST

START_TEST(lookup_large_pages)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx h = lin(0, 0);
    struct tlb_entry big = xlat(0x00654321, M2, 0, false), out; /* la → 0x600000 */

    big.pa = 0x12354321; /* a byte address, as paging_result.pa: aligned down too */
    insert(t, h, big);
    insert(t, h, xlat(0x00C00000, M4, 0, false));
    insert(t, h, xlat(0x80000000, G1, 0, false));
    ck_assert(tlb_lookup(t, &h, 0x7FFFFF, &out));
    ck_assert_uint_eq(out.la, 0x600000);
    ck_assert_uint_eq(out.pa, 0x12200000);
    ck_assert_uint_eq(out.page_size, M2);
    ck_assert_uint_eq(out.guest_page_size, M2);
    ck_assert(!tlb_lookup(t, &h, 0x800000, NULL));
    ck_assert(tlb_lookup(t, &h, 0xFFFFFF, &out));
    ck_assert_uint_eq(out.page_size, M4);
    ck_assert(tlb_lookup(t, &h, 0xBFFFFFFFULL, &out));
    ck_assert_uint_eq(out.page_size, G1);
    ck_assert_uint_eq(out.pa, 0x180000000ULL);
    tlb_free(t);
}
END_TEST

/* Both a 4 KiB and a 2 MiB translation of one address (§4.10.2.3): the 4 KiB one, always. */
START_TEST(lookup_overlap_deterministic)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx h = lin(0, 0);
    struct tlb_entry small = xlat(0x201000, K4, 0, false), out;

    small.pa = 0x5000;
    insert(t, h, xlat(0x200000, M2, 0, false));
    insert(t, h, small);
    for (int i = 0; i < 3; i++) {
        ck_assert(tlb_lookup(t, &h, 0x201234, &out));
        ck_assert_uint_eq(out.page_size, K4);
        ck_assert_uint_eq(out.pa, 0x5000);
    }
    ck_assert(tlb_lookup(t, &h, 0x202000, &out));
    ck_assert_uint_eq(out.page_size, M2);
    tlb_free(t);
}
END_TEST

/* An entry of the current PCID wins over a global entry created under another PCID. */
START_TEST(lookup_prefers_current_pcid)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx p1 = lin(0, 1), p2 = lin(0, 2);
    struct tlb_entry g = xlat(0x3000, K4, 0, true), own = xlat(0x3000, K4, 0, false), out;

    g.pa = 0xA000;
    own.pa = 0xB000;
    insert(t, p1, g);
    insert(t, p2, own);
    ck_assert(tlb_lookup(t, &p2, 0x3000, &out));
    ck_assert_uint_eq(out.pa, 0xB000);
    ck_assert(tlb_lookup(t, &p1, 0x3000, &out));
    ck_assert_uint_eq(out.pa, 0xA000);
    tlb_free(t);
}
END_TEST

START_TEST(probe_has_no_side_effects)
{
    struct tlb_config cfg = {.small = {1, 2}, .large = {1, 1}, .gpa = {1, 1}};
    struct tlb *t = new_tlb(&cfg);
    struct tlb_ctx h = lin(0, 0);

    insert(t, h, xlat(0x1000, K4, 0, false));
    insert(t, h, xlat(0x2000, K4, 0, false));
    ck_assert(tlb_probe(t, &h, 0x1000, NULL)); /* must not refresh 0x1000 */
    ck_assert_uint_eq(tlb_stats(t)->linear.lookups, 0);
    insert(t, h, xlat(0x3000, K4, 0, false)); /* evicts the LRU: 0x1000 */
    ck_assert(!tlb_probe(t, &h, 0x1000, NULL));
    ck_assert(tlb_probe(t, &h, 0x2000, NULL));
    tlb_free(t);
}
END_TEST

START_TEST(insert_tags_from_context)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx c = comb(7, 0x123, EP1 | 0x5E); /* EPTP low bits are not part of EP4TA */
    struct tlb_ctx l = lin(7, 0x123);
    struct tlb_entry e = xlat(0x7000, K4, 0, false), out;

    e.kind = TLB_LINEAR; /* ignored: tags come from the context */
    e.vpid = 99;
    e.pcid = 99;
    e.ep4ta = EP2;
    insert(t, c, e);
    ck_assert(tlb_lookup(t, &c, 0x7000, &out));
    ck_assert(out.kind == TLB_COMBINED && out.vpid == 7 && out.pcid == 0x123 &&
              out.ep4ta == EP1);
    e.ept_allowed = PAGING_ALLOW_R;
    insert(t, l, e);
    ck_assert(tlb_lookup(t, &l, 0x7000, &out));
    ck_assert(out.kind == TLB_LINEAR && out.ep4ta == 0 && out.ept_allowed == 0);
    tlb_free(t);
}
END_TEST

START_TEST(ctx_of_state)
{
    struct tlb_ctx c = tlb_ctx_of(3, 0x12345ABC, X86_CR4_PCIDE, true, 0x000FEDCBA987605EULL);

    ck_assert_uint_eq(c.vpid, 3);
    ck_assert_uint_eq(c.pcid, 0xABC);
    ck_assert(c.ept);
    ck_assert_uint_eq(c.ep4ta, 0x000FEDCBA9876000ULL);
    c = tlb_ctx_of(0, 0x12345ABC, 0, false, 0x5E);
    ck_assert_uint_eq(c.pcid, 0); /* CR4.PCIDE = 0: PCID 000H (§4.10.1) */
    ck_assert_uint_eq(c.ep4ta, 0);
}
END_TEST

START_TEST(insert_replaces_same_page)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx h = lin(0, 0);
    struct tlb_entry e = xlat(0x1000, K4, 0, false), out;

    e.dirty = false;
    insert(t, h, e);
    e.dirty = true; /* a walk for a write set D: the new entry replaces the old one */
    insert(t, h, e);
    ck_assert_uint_eq(tlb_count(t), 1);
    ck_assert_uint_eq(tlb_stats(t)->linear.evictions, 0);
    ck_assert_uint_eq(tlb_stats(t)->linear.inserts, 2);
    ck_assert(tlb_lookup(t, &h, 0x1000, &out));
    ck_assert(out.dirty);
    tlb_free(t);
}
END_TEST

START_TEST(insert_rejects_bad_sizes)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx h = lin(0, 0);
    struct tlb_entry e = xlat(0x1000, 0x2000, 0, false);
    struct tlb_gpa_entry g = {.gpa = 0, .page_size = M4};

    ck_assert_int_eq(tlb_insert(t, &h, &e), VMXSIM_ERR_BAD_ARG);
    e = xlat(0x200000, M2, K4, false); /* guest page smaller than the entry */
    ck_assert_int_eq(tlb_insert(t, &h, &e), VMXSIM_ERR_BAD_ARG);
    e = xlat(0x200000, K4, 0x3000, false);
    ck_assert_int_eq(tlb_insert(t, &h, &e), VMXSIM_ERR_BAD_ARG);
    ck_assert_int_eq(tlb_gpa_insert(t, EP1, &g), VMXSIM_ERR_BAD_ARG); /* no 4 MiB EPT pages */
    ck_assert_uint_eq(tlb_count(t) + tlb_gpa_count(t), 0);
    tlb_free(t);
}
END_TEST

/* ==== Access rights at use (Vol. 3A §4.6, §4.8; Vol. 3C §29.4.1) ==== */

#define R PAGING_ALLOW_R
#define W PAGING_ALLOW_W
#define X PAGING_ALLOW_X
#define ACC_U PAGING_ACC_USER
#define ACC_W PAGING_ACC_WRITE
#define ACC_F PAGING_ACC_FETCH
#define ACC_IMP PAGING_ACC_IMPLICIT
#define ACC_AC PAGING_ACC_AC
#define LMA X86_EFER_LMA
#define NXE X86_EFER_NXE
#define WP X86_CR0_WP
#define PG X86_CR0_PG

struct rights_row {
    const char *rule;
    bool user, writable, xd, dirty;
    uint8_t pkey;
    bool combined;
    uint8_t ept_allowed;
    uint64_t cr0, cr4, efer;
    uint32_t pkru, pkrs;
    unsigned access;
    enum tlb_verdict verdict;
    uint8_t allowed;
};

static const struct rights_row rights_rows[] = {
    {"user RW page, user read", true, true, false, true, 0, false, 0, PG, 0, 0, 0, 0, ACC_U,
     TLB_GRANT, R | W | X},
    {"supervisor page, user read", false, true, false, true, 0, false, 0, PG, 0, 0, 0, 0, ACC_U,
     TLB_DENY, 0},
    {"supervisor page, supervisor read", false, false, false, true, 0, false, 0, PG | WP, 0, 0,
     0, 0, 0, TLB_GRANT, R | X},
    {"user page, supervisor read, SMAP, AC = 0", true, true, false, true, 0, false, 0, PG,
     X86_CR4_SMAP, 0, 0, 0, 0, TLB_DENY, X},
    {"user page, supervisor read, SMAP, AC = 1", true, true, false, true, 0, false, 0, PG,
     X86_CR4_SMAP, 0, 0, 0, ACC_AC, TLB_GRANT, R | W | X},
    {"user page, implicit supervisor read, SMAP, AC = 1", true, true, false, true, 0, false, 0,
     PG, X86_CR4_SMAP, 0, 0, 0, ACC_IMP | ACC_AC | ACC_U, TLB_DENY, X},
    {"read-only page, supervisor write, WP = 0", true, false, false, true, 0, false, 0, PG, 0,
     0, 0, 0, ACC_W, TLB_GRANT, R | W | X},
    {"read-only page, supervisor write, WP = 1", true, false, false, true, 0, false, 0, PG | WP,
     0, 0, 0, 0, ACC_W, TLB_DENY, R | X},
    {"read-only page, user write", true, false, false, true, 0, false, 0, PG, 0, 0, 0, 0,
     ACC_U | ACC_W, TLB_DENY, R | X},
    {"writable page, D = 0, write: walk to set D (§4.8)", true, true, false, false, 0, false, 0,
     PG, 0, 0, 0, 0, ACC_U | ACC_W, TLB_WALK, R | X},
    {"writable page, D = 0, read: no walk", true, true, false, false, 0, false, 0, PG, 0, 0, 0,
     0, ACC_U, TLB_GRANT, R | X},
    {"read-only page, D = 0, write with WP = 1: the rights deny first", false, false, false,
     false, 0, false, 0, PG | WP, 0, 0, 0, 0, ACC_W, TLB_DENY, R | X},
    {"XD page, NXE = 1, fetch", true, true, true, true, 0, false, 0, PG, 0, NXE, 0, 0,
     ACC_U | ACC_F, TLB_DENY, R | W},
    {"XD page, NXE = 0, fetch: XD is only cached with NXE = 1", true, true, true, true, 0, false,
     0, PG, 0, 0, 0, 0, ACC_U | ACC_F, TLB_GRANT, R | W | X},
    {"user page, supervisor fetch, SMEP", true, true, false, true, 0, false, 0, PG, X86_CR4_SMEP,
     0, 0, 0, ACC_F, TLB_DENY, R | W},
    {"user page, supervisor fetch, no SMEP", true, true, false, true, 0, false, 0, PG, 0, 0, 0,
     0, ACC_F, TLB_GRANT, R | W | X},
    {"supervisor page, user fetch", false, true, false, true, 0, false, 0, PG, 0, 0, 0, 0,
     ACC_U | ACC_F, TLB_DENY, 0},
    /* protection keys: PKRU bit 2k = AD, 2k+1 = WD (§4.6.2) */
    {"PKU AD, user read", true, true, false, true, 3, false, 0, PG, X86_CR4_PKE, LMA, 1u << 6,
     0, ACC_U, TLB_DENY, X},
    {"PKU AD, user fetch: keys do not apply to fetches", true, true, false, true, 3, false, 0,
     PG, X86_CR4_PKE, LMA, 1u << 6, 0, ACC_U | ACC_F, TLB_GRANT, X},
    {"PKU AD, CR4.PKE = 0", true, true, false, true, 3, false, 0, PG, 0, LMA, 1u << 6, 0, ACC_U,
     TLB_GRANT, R | W | X},
    {"PKU AD, not IA-32e paging", true, true, false, true, 3, false, 0, PG, X86_CR4_PKE, 0,
     1u << 6, 0, ACC_U, TLB_GRANT, R | W | X},
    {"PKU AD of another key", true, true, false, true, 2, false, 0, PG, X86_CR4_PKE, LMA,
     1u << 6, 0, ACC_U, TLB_GRANT, R | W | X},
    {"PKU WD, user write", true, true, false, true, 1, false, 0, PG, X86_CR4_PKE, LMA, 1u << 3,
     0, ACC_U | ACC_W, TLB_DENY, R | X},
    {"PKU WD, supervisor write, WP = 0", true, true, false, true, 1, false, 0, PG, X86_CR4_PKE,
     LMA, 1u << 3, 0, ACC_W, TLB_GRANT, R | W | X},
    {"PKU WD, supervisor write, WP = 1", true, true, false, true, 1, false, 0, PG | WP,
     X86_CR4_PKE, LMA, 1u << 3, 0, ACC_W, TLB_DENY, R | X},
    {"PKS AD, supervisor read", false, true, false, true, 2, false, 0, PG, X86_CR4_PKS, LMA, 0,
     1u << 4, 0, TLB_DENY, X},
    {"PKS AD, CR4.PKS = 0", false, true, false, true, 2, false, 0, PG, 0, LMA, 0, 1u << 4, 0,
     TLB_GRANT, R | W | X},
    {"PKRU does not govern supervisor pages", false, true, false, true, 2, false, 0, PG,
     X86_CR4_PKE, LMA, 1u << 4, 0, 0, TLB_GRANT, R | W | X},
    /* combined entries: guest rights AND the EPT side (§29.4.1) */
    {"combined, EPT read-only, write: walk for the EPT violation", true, true, false, true, 0,
     true, R, PG, 0, 0, 0, 0, ACC_U | ACC_W, TLB_WALK, R},
    {"combined, EPT read-only, read", true, true, false, true, 0, true, R, PG, 0, 0, 0, 0, ACC_U,
     TLB_GRANT, R},
    {"combined, guest denies: guest #PF first", false, true, false, true, 0, true, R | W | X, PG,
     0, 0, 0, 0, ACC_U, TLB_DENY, 0},
    {"combined, EPT execute-only, fetch", true, true, false, true, 0, true, X, PG, 0, 0, 0, 0,
     ACC_U | ACC_F, TLB_GRANT, X},
};

#define N_RIGHTS_ROWS (sizeof(rights_rows) / sizeof(rights_rows[0]))

START_TEST(rights_at_use)
{
    const struct rights_row *r = &rights_rows[_i];
    struct tlb_entry e = xlat(0x1000, K4, 0, false);
    struct paging_state st = {.cr0 = r->cr0, .cr4 = r->cr4, .efer = r->efer,
                              .pkru = r->pkru, .pkrs = r->pkrs};
    uint8_t allowed = 0xFF;

    e.kind = r->combined ? TLB_COMBINED : TLB_LINEAR;
    e.user = r->user;
    e.writable = r->writable;
    e.xd = r->xd;
    e.dirty = r->dirty;
    e.pkey = r->pkey;
    e.ept_allowed = r->ept_allowed;
    ck_assert_msg(tlb_check(&e, &st, r->access, &allowed) == r->verdict, "%s: verdict", r->rule);
    ck_assert_msg(allowed == r->allowed, "%s: allowed %#x, expected %#x", r->rule, allowed,
                  r->allowed);
    ck_assert(tlb_check(&e, &st, r->access, NULL) == r->verdict);
}
END_TEST

/* CR0.WP, PKRU and SMAP changes need no invalidation: the cached rights are re-evaluated. */
START_TEST(rights_follow_state_without_flush)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx h = lin(0, 0);
    struct tlb_entry e = xlat(0x1000, K4, 0, false), out;
    struct paging_state st = {.cr0 = PG, .efer = LMA, .cr4 = X86_CR4_PKE};

    e.writable = false;
    e.user = false;
    insert(t, h, e);
    tlb_mov_cr0(t, &h, PG, PG | WP);
    ck_assert(tlb_lookup(t, &h, 0x1000, &out));
    ck_assert(tlb_check(&out, &st, ACC_W, NULL) == TLB_GRANT);
    st.cr0 |= WP;
    ck_assert(tlb_check(&out, &st, ACC_W, NULL) == TLB_DENY);
    /* user page under WRPKRU (no flush instruction at all) */
    e = xlat(0x2000, K4, 0, false);
    e.pkey = 5;
    insert(t, h, e);
    ck_assert(tlb_lookup(t, &h, 0x2000, &out));
    ck_assert(tlb_check(&out, &st, ACC_U, NULL) == TLB_GRANT);
    st.pkru = 1u << 10;
    ck_assert(tlb_check(&out, &st, ACC_U, NULL) == TLB_DENY);
    tlb_free(t);
}
END_TEST

/* ==== Guest-physical mappings ==== */

struct gpa_row {
    const char *rule;
    uint8_t perms;
    bool dirty, mbec;
    unsigned access;
    enum tlb_verdict verdict;
};

static const struct gpa_row gpa_rows[] = {
    {"read with R", EPT_PERM_R, true, false, EPT_ACC_READ, TLB_GRANT},
    {"write with R only", EPT_PERM_R, true, false, EPT_ACC_WRITE, TLB_WALK},
    {"write with RW, dirty", EPT_PERM_R | EPT_PERM_W, true, false, EPT_ACC_WRITE, TLB_GRANT},
    {"write with RW, dirty update pending (§29.3.5)", EPT_PERM_R | EPT_PERM_W, false, false,
     EPT_ACC_WRITE, TLB_WALK},
    {"read, dirty update pending", EPT_PERM_R | EPT_PERM_W, false, false, EPT_ACC_READ,
     TLB_GRANT},
    {"read-modify-write with R only", EPT_PERM_R, true, false, EPT_ACC_READ | EPT_ACC_WRITE,
     TLB_WALK},
    {"fetch with X", EPT_PERM_X, true, false, EPT_ACC_FETCH, TLB_GRANT},
    {"fetch without X", EPT_PERM_R, true, false, EPT_ACC_FETCH, TLB_WALK},
    {"MBEC, user-linear fetch, X only", EPT_PERM_X, true, true,
     EPT_ACC_FETCH | EPT_ACC_USER_LINEAR, TLB_WALK},
    {"MBEC, user-linear fetch, XU", EPT_PERM_XU, true, true, EPT_ACC_FETCH | EPT_ACC_USER_LINEAR,
     TLB_GRANT},
    {"MBEC, supervisor-linear fetch, XU only", EPT_PERM_XU, true, true, EPT_ACC_FETCH, TLB_WALK},
    {"no MBEC: user-linear fetch uses bit 2", EPT_PERM_X, true, false,
     EPT_ACC_FETCH | EPT_ACC_USER_LINEAR, TLB_GRANT},
};

#define N_GPA_ROWS (sizeof(gpa_rows) / sizeof(gpa_rows[0]))

START_TEST(gpa_rights)
{
    const struct gpa_row *r = &gpa_rows[_i];
    struct tlb_gpa_entry e = {.page_size = K4, .perms = r->perms, .dirty = r->dirty};

    ck_assert_msg(tlb_gpa_check(&e, r->access, r->mbec) == r->verdict, "%s", r->rule);
}
END_TEST

START_TEST(gpa_lookup)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_gpa_entry e = {.gpa = 0x40123456, .page_size = M2, .hpa = 0x7654321,
                              .perms = EPT_PERM_R, .dirty = true, .memtype = EPT_MT_WB,
                              .ignore_pat = true}, out;

    ck_assert_int_eq(tlb_gpa_insert(t, EP1 | 0x1E, &e), VMXSIM_OK);
    ck_assert(tlb_gpa_lookup(t, EP1, 0x401FFFFF, &out));
    ck_assert_uint_eq(out.gpa, 0x40000000);
    ck_assert_uint_eq(out.hpa, 0x7600000);
    ck_assert_uint_eq(out.ep4ta, EP1);
    ck_assert(out.memtype == EPT_MT_WB && out.ignore_pat);
    ck_assert(!tlb_gpa_lookup(t, EP2, 0x40000000, NULL));
    ck_assert(!tlb_gpa_lookup(t, EP1, 0x40200000, NULL));
    /* guest-physical mappings are not linear ones */
    struct tlb_ctx c = comb(0, 0, EP1);
    ck_assert(!tlb_probe(t, &c, 0x40000000, NULL));
    ck_assert_uint_eq(tlb_stats(t)->gpa.hits, 1);
    ck_assert_uint_eq(tlb_stats(t)->gpa.misses, 2);
    tlb_free(t);
}
END_TEST

/* ==== Capacity, LRU, geometry ==== */

START_TEST(lru_eviction_order)
{
    struct tlb_config cfg = {.small = {1, 2}, .large = {1, 1}, .gpa = {1, 1}};
    struct tlb *t = new_tlb(&cfg);
    struct tlb_ctx h = lin(0, 0);

    insert(t, h, xlat(0x1000, K4, 0, false));
    insert(t, h, xlat(0x2000, K4, 0, false));
    ck_assert(tlb_lookup(t, &h, 0x1000, NULL)); /* 0x2000 is now least recently used */
    insert(t, h, xlat(0x3000, K4, 0, false));
    ck_assert(tlb_probe(t, &h, 0x1000, NULL));
    ck_assert(!tlb_probe(t, &h, 0x2000, NULL));
    ck_assert(tlb_probe(t, &h, 0x3000, NULL));
    ck_assert_uint_eq(tlb_stats(t)->linear.evictions, 1);
    /* large pages live in their own array: they do not evict 4 KiB entries */
    insert(t, h, xlat(0x200000, M2, 0, false));
    insert(t, h, xlat(0x40000000, G1, 0, false)); /* evicts the 2 MiB entry (1 way) */
    ck_assert(!tlb_probe(t, &h, 0x200000, NULL));
    ck_assert(tlb_probe(t, &h, 0x40000000, NULL));
    ck_assert(tlb_probe(t, &h, 0x1000, NULL) && tlb_probe(t, &h, 0x3000, NULL));
    ck_assert_uint_eq(tlb_stats(t)->linear.evictions, 2);
    /* an invalidated way is refilled before any valid one is evicted */
    tlb_invlpg(t, &h, 0x3000);
    insert(t, h, xlat(0x4000, K4, 0, false));
    ck_assert(tlb_probe(t, &h, 0x1000, NULL));
    ck_assert_uint_eq(tlb_stats(t)->linear.evictions, 2);
    tlb_free(t);
}
END_TEST

START_TEST(gpa_lru)
{
    struct tlb_config cfg = {.small = {1, 1}, .large = {1, 1}, .gpa = {1, 2}};
    struct tlb *t = new_tlb(&cfg);
    struct tlb_gpa_entry e = {.page_size = K4, .perms = EPT_PERM_R, .dirty = true};

    for (uint64_t g = 0x1000; g <= 0x2000; g += 0x1000) {
        e.gpa = g;
        ck_assert_int_eq(tlb_gpa_insert(t, EP1, &e), VMXSIM_OK);
    }
    ck_assert(tlb_gpa_lookup(t, EP1, 0x1000, NULL));
    e.gpa = 0x3000;
    ck_assert_int_eq(tlb_gpa_insert(t, EP1, &e), VMXSIM_OK);
    ck_assert(tlb_gpa_lookup(t, EP1, 0x1000, NULL));
    ck_assert(!tlb_gpa_lookup(t, EP1, 0x2000, NULL));
    ck_assert_uint_eq(tlb_stats(t)->gpa.evictions, 1);
    tlb_free(t);
}
END_TEST

/* An independent LRU model: per set, keys in recency order (most recent last). */
struct model {
    unsigned sets, ways;
    uint64_t keys[64][16];
    unsigned n[64];
    uint64_t evictions;
};

static void model_touch(struct model *m, unsigned s, unsigned at)
{
    uint64_t k = m->keys[s][at];

    memmove(&m->keys[s][at], &m->keys[s][at + 1], (m->n[s] - at - 1) * sizeof(uint64_t));
    m->keys[s][m->n[s] - 1] = k;
}

static int model_find(const struct model *m, unsigned s, uint64_t key)
{
    for (unsigned i = 0; i < m->n[s]; i++)
        if (m->keys[s][i] == key)
            return (int)i;
    return -1;
}

static void model_insert(struct model *m, uint64_t page)
{
    unsigned s = (unsigned)(page % m->sets);
    int at = model_find(m, s, page);

    if (at >= 0) {
        model_touch(m, s, (unsigned)at);
        return;
    }
    if (m->n[s] == m->ways) {
        memmove(&m->keys[s][0], &m->keys[s][1], (m->ways - 1) * sizeof(uint64_t));
        m->n[s]--;
        m->evictions++;
    }
    m->keys[s][m->n[s]++] = page;
}

static bool model_lookup(struct model *m, uint64_t page)
{
    unsigned s = (unsigned)(page % m->sets);
    int at = model_find(m, s, page);

    if (at >= 0)
        model_touch(m, s, (unsigned)at);
    return at >= 0;
}

static const struct tlb_geometry geometries[] = {
    {1, 1}, {1, 4}, {4, 2}, {3, 3}, {5, 1}, {7, 4}, {64, 8}, {16, 16},
};

#define N_GEOMETRIES (sizeof(geometries) / sizeof(geometries[0]))

/* A fixed pseudo-random sequence: the TLB must behave as the reference LRU model. */
START_TEST(lru_matches_model)
{
    struct tlb_config cfg = {.small = geometries[_i], .large = {1, 1}, .gpa = {1, 1}};
    struct tlb *t = new_tlb(&cfg);
    struct model *m = calloc(1, sizeof *m);
    struct tlb_ctx h = lin(0, 0);
    uint32_t seed = 12345;

    ck_assert_ptr_nonnull(m);
    m->sets = cfg.small.sets;
    m->ways = cfg.small.ways;
    for (int step = 0; step < 4000; step++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t page = (seed >> 8) % 200;
        if ((seed >> 20) & 1) {
            bool hit = tlb_lookup(t, &h, page << 12, NULL);
            ck_assert_msg(hit == model_lookup(m, page), "step %d page %llu", step,
                          (unsigned long long)page);
        } else {
            insert(t, h, xlat(page << 12, K4, 0, false));
            model_insert(m, page);
        }
    }
    ck_assert_uint_eq(tlb_stats(t)->linear.evictions, m->evictions);
    free(m);
    tlb_free(t);
}
END_TEST

static bool same_entry(const struct tlb_entry *a, const struct tlb_entry *b)
{
    return a->kind == b->kind && a->vpid == b->vpid && a->pcid == b->pcid &&
           a->ep4ta == b->ep4ta && a->la == b->la && a->page_size == b->page_size &&
           a->guest_page_size == b->guest_page_size && a->pa == b->pa &&
           a->global == b->global && a->user == b->user && a->writable == b->writable &&
           a->xd == b->xd && a->dirty == b->dirty && a->pkey == b->pkey &&
           a->ept_allowed == b->ept_allowed;
}

/* Same sequence → same entries, same statistics (reproducible runs). */
START_TEST(determinism)
{
    struct tlb_config cfg = {.small = {4, 2}, .large = {2, 2}, .gpa = {2, 2}};
    struct tlb_entry a[64], b[64];
    struct tlb_stats sa, sb;
    unsigned na = 0, nb = 0;

    for (int run = 0; run < 2; run++) {
        struct tlb *t = new_tlb(&cfg);
        uint32_t seed = 777;
        for (int step = 0; step < 2000; step++) {
            seed = seed * 1664525u + 1013904223u;
            struct tlb_ctx c = lin((uint16_t)((seed >> 28) & 1), (uint16_t)((seed >> 24) & 3));
            uint64_t la = (uint64_t)((seed >> 4) & 0x3F) << ((seed & 1) ? 21 : 12);
            switch ((seed >> 12) & 7) {
            case 0: tlb_invlpg(t, &c, la); break;
            case 1: tlb_mov_cr3(t, &c, X86_CR4_PCIDE, c.pcid); break;
            case 2: case 3: (void)tlb_lookup(t, &c, la, NULL); break;
            default:
                insert(t, c, xlat(la, (seed & 1) ? M2 : K4, 0, ((seed >> 16) & 7) == 0));
                break;
            }
        }
        if (run == 0) {
            na = tlb_entries(t, a, 64);
            sa = *tlb_stats(t);
        } else {
            nb = tlb_entries(t, b, 64);
            sb = *tlb_stats(t);
        }
        tlb_free(t);
    }
    ck_assert_uint_eq(na, nb);
    ck_assert(na <= 64);
    for (unsigned i = 0; i < na; i++)
        ck_assert_msg(same_entry(&a[i], &b[i]), "entry %u differs", i);
    ck_assert(memcmp(&sa, &sb, sizeof sa) == 0);
    ck_assert(sa.linear.evictions > 0);
}
END_TEST

/* sets = 3: pages 0, 3, 6 share set 0; a 1-way set keeps only the last of them. */
START_TEST(geometry_non_power_of_two)
{
    struct tlb_config cfg = {.small = {3, 1}, .large = {1, 1}, .gpa = {1, 1}};
    struct tlb *t = new_tlb(&cfg);
    struct tlb_ctx h = lin(0, 0);

    for (uint64_t p = 0; p < 9; p++)
        insert(t, h, xlat(p << 12, K4, 0, false));
    for (uint64_t p = 0; p < 9; p++)
        ck_assert_msg(tlb_probe(t, &h, p << 12, NULL) == (p >= 6), "page %llu",
                      (unsigned long long)p);
    ck_assert_uint_eq(tlb_count(t), 3);
    tlb_free(t);
}
END_TEST

/* A CPU without a TLB of some kind: {0, 0} caches nothing there, and says OK. */
START_TEST(geometry_absent_arrays)
{
    struct tlb_config cfg = {.small = {0, 0}, .large = {2, 2}, .gpa = {0, 0}};
    struct tlb *t = new_tlb(&cfg);
    struct tlb_ctx h = lin(0, 0);
    struct tlb_gpa_entry g = {.gpa = 0, .page_size = K4};

    insert(t, h, xlat(0x1000, K4, 0, false));
    insert(t, h, xlat(0x200000, M2, 0, false));
    ck_assert_int_eq(tlb_gpa_insert(t, EP1, &g), VMXSIM_OK);
    ck_assert(!tlb_lookup(t, &h, 0x1000, NULL));
    ck_assert(tlb_lookup(t, &h, 0x200000, NULL));
    ck_assert(!tlb_gpa_lookup(t, EP1, 0, NULL));
    tlb_invlpg(t, &h, 0x200000);
    tlb_reset(t);
    ck_assert_uint_eq(tlb_count(t), 0);
    tlb_free(t);
}
END_TEST

START_TEST(geometry_invalid)
{
    static const struct tlb_config bad[] = {
        {.small = {0, 8}, .large = {1, 1}, .gpa = {1, 1}},
        {.small = {8, 0}, .large = {1, 1}, .gpa = {1, 1}},
        {.small = {TLB_MAX_ENTRIES, 2}, .large = {1, 1}, .gpa = {1, 1}},
        {.small = {1, 1}, .large = {1u << 16, 1u << 16}, .gpa = {1, 1}},
        {.small = {1, 1}, .large = {1, 1}, .gpa = {3, 0}},
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct tlb *t = (struct tlb *)1;
        ck_assert_int_eq(tlb_init(&t, &bad[i]), VMXSIM_ERR_BAD_ARG);
        ck_assert_ptr_null(t);
    }
    struct tlb_config max = {.small = {TLB_MAX_ENTRIES / 4, 4}, .large = {1, 1}, .gpa = {1, 1}};
    struct tlb *t = new_tlb(&max);
    tlb_free(t);
    tlb_free(NULL);
}
END_TEST

START_TEST(geometry_default)
{
    struct tlb_config d = tlb_config_default();
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx h = lin(0, 0);

    ck_assert(d.small.sets == 64 && d.small.ways == 8);
    ck_assert(d.large.sets == 8 && d.large.ways == 4);
    ck_assert(d.gpa.sets == 16 && d.gpa.ways == 4);
    for (uint64_t p = 0; p < 512; p++) /* 512 consecutive pages fill 64 × 8 exactly */
        insert(t, h, xlat(p << 12, K4, 0, false));
    ck_assert_uint_eq(tlb_count(t), 512);
    ck_assert_uint_eq(tlb_stats(t)->linear.evictions, 0);
    insert(t, h, xlat(512ULL << 12, K4, 0, false));
    ck_assert_uint_eq(tlb_stats(t)->linear.evictions, 1);
    ck_assert(!tlb_probe(t, &h, 0, NULL)); /* page 0: oldest of set 0 */
    tlb_stats_clear(t);
    ck_assert_uint_eq(tlb_stats(t)->linear.inserts, 0);
    tlb_free(t);
}
END_TEST

START_TEST(cause_names)
{
    for (unsigned i = 0; i < TLB_CAUSE_COUNT; i++) {
        ck_assert_ptr_nonnull(tlb_cause_name(i));
        ck_assert_str_ne(tlb_cause_name(i), "?");
        for (unsigned j = 0; j < i; j++)
            ck_assert_str_ne(tlb_cause_name(i), tlb_cause_name(j));
    }
    ck_assert_str_eq(tlb_cause_name(TLB_CAUSE_COUNT), "?");
    ck_assert_str_eq(tlb_cause_name(TLB_CAUSE_INVVPID), "invvpid");
}
END_TEST

/* ==== Scenarios: stale translations as the SDM allows ==== */

/* A guest that remaps a page and forgets INVLPG keeps the old frame until it invalidates. */
START_TEST(scenario_forgotten_invlpg)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx g = comb(1, 0, EP1);
    struct tlb_entry e = xlat(0x400000, K4, 0, false), out;

    e.pa = 0x111000;
    insert(t, g, e);
    /* PTE rewritten to 0x222000, no invalidation: the stale frame is still used */
    ck_assert(tlb_lookup(t, &g, 0x400010, &out));
    ck_assert_uint_eq(out.pa, 0x111000);
    /* MOV to CR3 with the no-flush bit does not help; INVEPT of another EPTP does not either */
    tlb_mov_cr3(t, &g, X86_CR4_PCIDE, X86_CR3_PCID_NOFLUSH);
    tlb_invept(t, TLB_INVEPT_SINGLE, EP2);
    /* a VM exit and re-entry with VPIDs enabled keep it too */
    tlb_vm_exit(t, true);
    tlb_vm_entry(t, true);
    ck_assert(tlb_lookup(t, &g, 0x400010, &out));
    /* the hypervisor's INVVPID (individual address) finally removes it */
    tlb_invvpid(t, TLB_INVVPID_ADDR, 1, 0x400FFF);
    ck_assert(!tlb_lookup(t, &g, 0x400010, NULL));
    tlb_free(t);
}
END_TEST

/* Global pages survive CR3 writes (PCIDE = 0) until CR4.PGE toggles. */
START_TEST(scenario_global_across_cr3)
{
    struct tlb *t = new_tlb(NULL);
    struct tlb_ctx h = lin(0, 0);
    uint64_t cr4 = X86_CR4_PGE | X86_CR4_PAE;

    insert(t, h, xlat(0xFFFFFFFF80001000ULL, K4, 0, true));
    insert(t, h, xlat(0x1000, K4, 0, false));
    tlb_mov_cr3(t, &h, cr4, 0x5000);
    ck_assert(tlb_probe(t, &h, 0xFFFFFFFF80001000ULL, NULL));
    ck_assert(!tlb_probe(t, &h, 0x1000, NULL));
    tlb_mov_cr4(t, &h, cr4, cr4 & ~X86_CR4_PGE);
    ck_assert_uint_eq(tlb_count(t), 0); /* no global entry outlives a PGE change */
    tlb_free(t);
}
END_TEST

static Suite *tlb_suite(void)
{
    Suite *s = suite_create("tlb");
    TCase *tc = tcase_create("invalidation");

    tcase_add_loop_test(tc, invalidation_rule, 0, (int)N_INV_ROWS);
    tcase_add_test(tc, noop_operations_not_counted);
    tcase_add_test(tc, unknown_types_do_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("lookup");
    tcase_add_test(tc, lookup_tags);
    tcase_add_test(tc, lookup_large_pages);
    tcase_add_test(tc, lookup_overlap_deterministic);
    tcase_add_test(tc, lookup_prefers_current_pcid);
    tcase_add_test(tc, probe_has_no_side_effects);
    tcase_add_test(tc, insert_tags_from_context);
    tcase_add_test(tc, ctx_of_state);
    tcase_add_test(tc, insert_replaces_same_page);
    tcase_add_test(tc, insert_rejects_bad_sizes);
    suite_add_tcase(s, tc);

    tc = tcase_create("rights");
    tcase_add_loop_test(tc, rights_at_use, 0, (int)N_RIGHTS_ROWS);
    tcase_add_test(tc, rights_follow_state_without_flush);
    tcase_add_loop_test(tc, gpa_rights, 0, (int)N_GPA_ROWS);
    tcase_add_test(tc, gpa_lookup);
    suite_add_tcase(s, tc);

    tc = tcase_create("capacity");
    tcase_add_test(tc, lru_eviction_order);
    tcase_add_test(tc, gpa_lru);
    tcase_add_loop_test(tc, lru_matches_model, 0, (int)N_GEOMETRIES);
    tcase_add_test(tc, determinism);
    tcase_add_test(tc, geometry_non_power_of_two);
    tcase_add_test(tc, geometry_absent_arrays);
    tcase_add_test(tc, geometry_invalid);
    tcase_add_test(tc, geometry_default);
    tcase_add_test(tc, cause_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("scenarios");
    tcase_add_test(tc, scenario_forgotten_invlpg);
    tcase_add_test(tc, scenario_global_across_cr3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tlb_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
