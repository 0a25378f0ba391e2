/*
 * CPU core (src/cpu) on a real struct cpu: Unicorn engine, a 4 MiB RAM, a
 * CPU model from model_parse ("sapphire-rapids", "skylake-server", with
 * toggles), put into a known state with cpu_load_boot_state.
 *
 *   control_registers  table-driven: the #GP rules of MOV to CR0/CR3/CR4/CR8
 *                      (cpu_write_cr) and the WRMSR rules of IA32_EFER
 *                      (cpu_write_efer), in 64-bit, compatibility, 32-bit
 *                      protected (paging off / PAE) mode
 *   vmx_fixed_bits     after a real VMXON (run through cpu_run): the CR0/CR4
 *                      bits IA32_VMX_CR0/CR4_FIXED0/1 fix
 *   delivery           event delivery (except.c) through cpu_run: real mode
 *                      IVT, 32-bit CPL 3 -> 0 with the TSS stack, IA-32e
 *                      gate checks, IST, non-canonical stack / offset
 *
 * Every vector names the SDM rule it checks. References:
 *   [MOVCR]  SDM Vol. 2B, "MOV—Move to/from Control Registers", Protected
 *            Mode / 64-Bit Mode Exceptions
 *   [CR]     SDM Vol. 3A §2.5 "Control Registers" (reserved bits, ET, CR8)
 *   [CR0]    SDM Vol. 3A §2.5 and Table 11-5 (CD/NW): NW=1 with CD=0 is invalid
 *   [IA32E]  SDM Vol. 3A §10.8.5 "Initializing IA-32e Mode", §10.8.5.4
 *            "Switching Out of IA-32e Mode Operation"
 *   [PAE]    SDM Vol. 3A §4.4.1 "PDPTE Registers" (loads and reserved bits)
 *   [CR3]    SDM Vol. 3A §4.5 Tables 4-12/4-13 (CR3 with 4-level paging),
 *            §4.10.4.1 (CR3[63] with PCIDE)
 *   [PCID]   SDM Vol. 3A §4.10.1 "Process-Context Identifiers"
 *   [CET]    SDM Vol. 3A §2.5 (CR4.CET requires CR0.WP; WP cannot be
 *            cleared while CR4.CET = 1); Vol. 1 ch. 18
 *   [EFER]   SDM Vol. 3A §2.2.1 "Extended Feature Enable Register", Vol. 4
 *            Table 2-2 (IA32_EFER: bits 0, 8, 10 (read-only LMA), 11), WRMSR
 *   [VMXFIX] SDM Vol. 3C §24.8 "Restrictions on VMX Operation", App. A.7/A.8
 *
 * A vector flagged known_bug documents a vmxsim deviation from the SDM: the
 * test asserts the opposite of the SDM outcome (what vmxsim does today) and
 * prints a KNOWN-BUG warning, so it fails — and must be updated — once the
 * bug is fixed.
 */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu/cpu_priv.h"

#define RAM_SIZE (4ull << 20)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* RAM layout of the test machine. */
#define PML4 0x1000ull       /* 4-level: PML4 -> PDPT 0x2000 -> PD 0x3000 (2 x 2 MiB) */
#define PDPT4 0x2000ull
#define PD4 0x3000ull
#define PAE_OK 0x5000ull     /* PAE PDPT: entry 0 -> PD 0x6000, others not present */
#define PAE_RSVD_RW 0x5020ull   /* entry 0 present with bit 1 (reserved in a PDPTE) */
#define PAE_RSVD_8_5 0x5040ull  /* entry 1 present with bit 5 (bits 8:5 reserved) */
#define PAE_NP_RSVD 0x5060ull   /* entry 2 NOT present, reserved bits set: no #GP */
#define PAE_RSVD_MAXPA 0x5080ull /* entry 3 present with bit 46 (>= MAXPHYADDR 46) */
#define PAE_PD 0x6000ull
#define GDT 0x7000ull     /* code64 08, data 10, code32 18, TSS64 20, user data 33, user code64 3B */
#define GDT32 0x7100ull   /* code 0x08, data 0x10, user code 0x1B, user data 0x23, TSS32 0x28 */
#define TSS 0x7800ull     /* 64-bit TSS */
#define TSS32 0x7900ull   /* 32-bit TSS */
#define IDT 0x8000ull
#define CODE 0x10000ull
#define VMXON_REGION 0x20000ull
#define VMXON_PTR 0x21000ull /* the VMXON operand: a qword holding VMXON_REGION */
#define STACK_TOP 0x80000ull

/* Default register states. */
#define LM_CR0 0x80050033ull /* PE MP ET NE WP AM PG (the 64-bit boot contract) */
#define LM_CR4 0x6A0ull      /* PAE PGE OSFXSR OSXMMEXCPT */
#define LM_EFER 0xD01ull     /* SCE LME LMA NXE */
#define PM_CR0 (X86_CR0_PE | X86_CR0_ET)
#define PAE_CR0 (X86_CR0_PE | X86_CR0_ET | X86_CR0_PG)

enum mode {
    M_LONG,   /* IA-32e mode, 64-bit code segment */
    M_COMPAT, /* IA-32e mode, compatibility mode (CS.L = 0, CS.D = 1) */
    M_PROT,   /* 32-bit protected mode (paging as the CRs say) */
};

enum target { T_CR0 = 0, T_CR3 = 3, T_CR4 = 4, T_CR8 = 8, T_EFER = 100 };

struct regs {
    uint64_t cr0, cr3, cr4, efer;
};

#define S_LONG {LM_CR0, PML4, LM_CR4, LM_EFER}
#define S_PROT {PM_CR0, 0, 0, 0}
#define S_PAE {PAE_CR0, PAE_OK, X86_CR4_PAE, 0}

struct cr_vec {
    const char *name;
    const char *model;   /* "sapphire-rapids", "skylake-server", ... */
    enum mode mode;
    struct regs init;
    enum target target;
    uint64_t value;
    bool ok;             /* SDM: the write succeeds (else #GP(0) / WRMSR #GP) */
    uint64_t expect;     /* ok: the value the target register reads back */
    bool check_efer;     /* ok: also check EFER afterwards (LMA transitions) */
    uint64_t expect_efer;
    bool check_pdpte;    /* ok: PDPTE register 0 was loaded with this */
    uint64_t expect_pdpte0;
    bool known_bug;      /* vmxsim deviates from the SDM (see header) */
    const char *bug;
};

#define SPR "sapphire-rapids"
#define SKX "skylake-server"

/* Vector constructors: GP = the write must fault, OK = it must succeed and read back `exp`. */
#define R(cr0, cr3, cr4, efer) {cr0, cr3, cr4, efer}
#define GP(n, m, md, in, t, v) {n, m, md, in, t, v, false, 0, false, 0, false, 0, false, NULL}
#define OK(n, m, md, in, t, v, exp) {n, m, md, in, t, v, true, exp, false, 0, false, 0, false, NULL}
#define OK_EFER(n, m, md, in, t, v, exp, ef) {n, m, md, in, t, v, true, exp, true, ef, false, 0, false, NULL}
#define OK_PDPTE(n, m, md, in, t, v, exp, p0) {n, m, md, in, t, v, true, exp, false, 0, true, p0, false, NULL}
/* A vector on which vmxsim deviates from the SDM: `sdm_ok` is the SDM outcome. */
#define BUG(n, m, md, in, t, v, sdm_ok, exp, why) \
    {n, m, md, in, t, v, sdm_ok, exp, false, 0, false, 0, true, why}

static const struct cr_vec cr_vecs[] = {
    /* ---- CR0 ---------------------------------------------------------- */
    /* [MOVCR] "#GP(0) If an attempt is made to write a 1 to any reserved bit in CR0[63:32]" */
    GP("cr0 bit 32 set in 64-bit mode", SPR, M_LONG, S_LONG, T_CR0, LM_CR0 | BIT64(32)),
    GP("cr0 bit 63 set in 64-bit mode", SKX, M_LONG, S_LONG, T_CR0, LM_CR0 | BIT64(63)),
    /* [MOVCR] "#GP(0) If an attempt is made to set the PG flag with PE = 0" */
    GP("cr0 PG without PE", SPR, M_PROT, S_PROT, T_CR0, X86_CR0_PG | X86_CR0_ET),
    /* [MOVCR] "#GP(0) If an attempt is made to set the NW flag with CD = 0" */
    GP("cr0 NW without CD", SPR, M_PROT, S_PROT, T_CR0, PM_CR0 | X86_CR0_NW),
    OK("cr0 NW with CD", SPR, M_PROT, S_PROT, T_CR0, PM_CR0 | X86_CR0_NW | X86_CR0_CD,
       PM_CR0 | X86_CR0_NW | X86_CR0_CD),
    OK("cr0 CD alone", SKX, M_PROT, S_PROT, T_CR0, PM_CR0 | X86_CR0_CD, PM_CR0 | X86_CR0_CD),
    /* [CR] ET is hardwired to 1: a write of 0 reads back 1 */
    OK("cr0 ET reads 1 (write without ET)", SPR, M_PROT, S_PROT, T_CR0, X86_CR0_PE, PM_CR0),
    OK("cr0 ET reads 1 in 64-bit mode", SKX, M_LONG, S_LONG, T_CR0, LM_CR0 & ~X86_CR0_ET, LM_CR0),
    /* [CR] "Attempting to set any reserved bits in CR0[31:0] is ignored" (bit 6, bit 17) */
    OK("cr0 reserved bits 31:0 ignored", SPR, M_PROT, S_PROT, T_CR0, PM_CR0 | BIT64(6) | BIT64(17),
       PM_CR0),
    OK("cr0 TS set in 64-bit mode", SPR, M_LONG, S_LONG, T_CR0, LM_CR0 | X86_CR0_TS,
       LM_CR0 | X86_CR0_TS),
    /* clearing PE with paging off returns to real-address mode: allowed */
    OK("cr0 clear PE with paging off", SKX, M_PROT, S_PROT, T_CR0, X86_CR0_ET, X86_CR0_ET),
    /* 32-bit paging: PG 0->1 with PAE = 0 and LME = 0 (no PDPTEs involved) */
    OK_EFER("cr0 PG 0->1 into 32-bit paging", SPR, M_PROT, R(PM_CR0, PAE_RSVD_RW, 0, 0), T_CR0, PAE_CR0,
            PAE_CR0, 0),
    /* [IA32E]/[MOVCR] "#GP(0) If an attempt is made to set PG = 1 with EFER.LME = 1 and CR4.PAE = 0" */
    GP("cr0 PG 0->1 with LME and PAE=0", SPR, M_PROT, R(PM_CR0, PML4, 0, X86_EFER_LME), T_CR0,
       PM_CR0 | X86_CR0_PG),
    /* [IA32E] PG 0->1 with LME=1, PAE=1 activates IA-32e mode: EFER.LMA = 1 */
    OK_EFER("cr0 PG 0->1 with LME and PAE sets LMA", SPR, M_PROT,
            R(PM_CR0, PML4, X86_CR4_PAE, X86_EFER_LME), T_CR0, PM_CR0 | X86_CR0_PG, PM_CR0 | X86_CR0_PG,
            X86_EFER_LME | X86_EFER_LMA),
    /* [MOVCR] 64-Bit Mode Exceptions: "#GP(0) If an attempt is made to clear CR0.PG" */
    GP("cr0 clear PG in 64-bit mode", SPR, M_LONG, S_LONG, T_CR0, LM_CR0 & ~X86_CR0_PG),
    GP("cr0 clear PE (and PG) in 64-bit mode", SKX, M_LONG, S_LONG, T_CR0,
       LM_CR0 & ~(X86_CR0_PG | X86_CR0_PE)),
    /* [IA32E] §10.8.5.4: from compatibility mode, clearing PG leaves IA-32e mode (LMA = 0) */
    OK_EFER("cr0 clear PG in compatibility mode", SPR, M_COMPAT, S_LONG, T_CR0, LM_CR0 & ~X86_CR0_PG,
            LM_CR0 & ~X86_CR0_PG, LM_EFER & ~X86_EFER_LMA),
    /* [MOVCR] "#GP(0) If an attempt is made to clear CR0.PG while CR4.PCIDE = 1"
     * (compatibility mode, so the 64-bit-mode rule cannot be what fires) */
    GP("cr0 clear PG with PCIDE=1 (compatibility mode)", SPR, M_COMPAT,
       R(LM_CR0, PML4, LM_CR4 | X86_CR4_PCIDE, LM_EFER), T_CR0, LM_CR0 & ~X86_CR0_PG),
    /* [CET] "#GP(0) If an attempt is made to clear CR0.WP while CR4.CET = 1". No profile has
     * CET, so CR4.CET = 1 is loaded directly as the initial state to reach the CR0 rule. */
    GP("cr0 clear WP with CR4.CET=1", SPR, M_LONG, R(LM_CR0, PML4, LM_CR4 | X86_CR4_CET, LM_EFER), T_CR0,
       LM_CR0 & ~X86_CR0_WP),
    OK("cr0 other change with CR4.CET=1 keeps WP: ok", SPR, M_LONG,
       R(LM_CR0, PML4, LM_CR4 | X86_CR4_CET, LM_EFER), T_CR0, LM_CR0 & ~X86_CR0_AM,
       LM_CR0 & ~X86_CR0_AM),
    OK("cr0 clear WP without CET: ok", SPR, M_LONG, S_LONG, T_CR0, LM_CR0 & ~X86_CR0_WP,
       LM_CR0 & ~X86_CR0_WP),
    /* [PAE] PG 0->1 with PAE paging loads the PDPTEs; a present PDPTE with a reserved bit → #GP */
    GP("cr0 PG 0->1 into PAE paging, PDPTE reserved bit", SPR, M_PROT,
       R(PM_CR0, PAE_RSVD_RW, X86_CR4_PAE, 0), T_CR0, PAE_CR0),
    OK_PDPTE("cr0 PG 0->1 into PAE paging loads PDPTEs", SPR, M_PROT, R(PM_CR0, PAE_OK, X86_CR4_PAE, 0),
             T_CR0, PAE_CR0, PAE_CR0, PAE_PD | 1),
    /* [PAE] a MOV to CR0 changing CD or NW under PAE paging reloads the PDPTEs */
    GP("cr0 CD change under PAE paging reloads bad PDPTEs", SKX, M_PROT,
       R(PAE_CR0, PAE_RSVD_8_5, X86_CR4_PAE, 0), T_CR0, PAE_CR0 | X86_CR0_CD),
    OK("cr0 TS change under PAE paging does not reload", SKX, M_PROT,
       R(PAE_CR0, PAE_RSVD_8_5, X86_CR4_PAE, 0), T_CR0, PAE_CR0 | X86_CR0_TS, PAE_CR0 | X86_CR0_TS),

    /* ---- CR4 ---------------------------------------------------------- */
    /* [MOVCR] "#GP(0) If an attempt is made to write a 1 to any reserved bit in CR4" —
     * reserved = not defined, or the feature is absent (CPUID) */
    GP("cr4 bit 15 (reserved)", SPR, M_LONG, S_LONG, T_CR4, LM_CR4 | BIT64(15)),
    GP("cr4 bit 32 (reserved)", SPR, M_LONG, S_LONG, T_CR4, LM_CR4 | BIT64(32)),
    GP("cr4 bit 63 (reserved)", SKX, M_LONG, S_LONG, T_CR4, LM_CR4 | BIT64(63)),
    GP("cr4 PKS on skylake-server (no PKS)", SKX, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_PKS),
    GP("cr4 PKS on skylake-server, protected mode", SKX, M_PROT, S_PROT, T_CR4, X86_CR4_PKS),
    OK("cr4 PKS on sapphire-rapids", SPR, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_PKS,
       LM_CR4 | X86_CR4_PKS),
    GP("cr4 UMIP on skylake-server (no UMIP)", SKX, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_UMIP),
    OK("cr4 UMIP on sapphire-rapids", SPR, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_UMIP,
       LM_CR4 | X86_CR4_UMIP),
    /* SMX is not modelled (CPUID.01H:ECX.SMX = 0 on every profile): CR4.SMXE is reserved */
    GP("cr4 SMXE (no SMX), sapphire-rapids", SPR, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_SMXE),
    GP("cr4 SMXE (no SMX), skylake-server", SKX, M_PROT, S_PROT, T_CR4, X86_CR4_SMXE),
    /* LA57: reserved without the feature; outside IA-32e mode it may be set when present */
    GP("cr4 LA57 on skylake-server, protected mode", SKX, M_PROT, S_PROT, T_CR4, X86_CR4_LA57),
    OK("cr4 LA57 on sapphire-rapids, protected mode", SPR, M_PROT, S_PROT, T_CR4, X86_CR4_LA57,
       X86_CR4_LA57),
    /* [MOVCR] "#GP(0) If an attempt is made to change CR4.LA57 while IA-32e mode is active" */
    GP("cr4 LA57 0->1 in IA-32e mode", SPR, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_LA57),
    GP("cr4 LA57 1->0 in IA-32e mode", SPR, M_LONG, R(LM_CR0, PML4, LM_CR4 | X86_CR4_LA57, LM_EFER),
       T_CR4, LM_CR4),
    OK("cr4 LA57 unchanged (1) in IA-32e mode", SPR, M_LONG,
       R(LM_CR0, PML4, LM_CR4 | X86_CR4_LA57, LM_EFER), T_CR4, LM_CR4 | X86_CR4_LA57 | X86_CR4_TSD,
       LM_CR4 | X86_CR4_LA57 | X86_CR4_TSD),
    /* [MOVCR] "#GP(0) If an attempt is made to clear CR4.PAE while IA-32e mode is active" */
    GP("cr4 clear PAE in IA-32e mode", SPR, M_LONG, S_LONG, T_CR4, LM_CR4 & ~X86_CR4_PAE),
    GP("cr4 clear PAE in compatibility mode", SKX, M_COMPAT, S_LONG, T_CR4, LM_CR4 & ~X86_CR4_PAE),
    OK("cr4 clear PAE with paging off", SPR, M_PROT, R(PM_CR0, 0, X86_CR4_PAE, 0), T_CR4, 0, 0),
    /* [PCID]/[MOVCR] "#GP(0) If an attempt is made to change CR4.PCIDE from 0 to 1 while
     * CR3[11:0] ≠ 000H"; protected mode: "#GP(0) If an attempt is made to write a 1 to CR4.PCIDE" */
    OK("cr4 PCIDE 0->1 with CR3[11:0]=0", SPR, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_PCIDE,
       LM_CR4 | X86_CR4_PCIDE),
    GP("cr4 PCIDE 0->1 with CR3[11:0]=001", SPR, M_LONG, R(LM_CR0, PML4 | 1, LM_CR4, LM_EFER), T_CR4,
       LM_CR4 | X86_CR4_PCIDE),
    GP("cr4 PCIDE 0->1 with CR3 PWT|PCD", SKX, M_LONG, R(LM_CR0, PML4 | 0x18, LM_CR4, LM_EFER), T_CR4,
       LM_CR4 | X86_CR4_PCIDE),
    GP("cr4 PCIDE in protected mode", SPR, M_PROT, S_PROT, T_CR4, X86_CR4_PCIDE),
    GP("cr4 PCIDE in PAE paging", SPR, M_PROT, S_PAE, T_CR4, X86_CR4_PAE | X86_CR4_PCIDE),
    OK("cr4 PCIDE 0->1 in compatibility mode (IA-32e)", SPR, M_COMPAT, S_LONG, T_CR4,
       LM_CR4 | X86_CR4_PCIDE, LM_CR4 | X86_CR4_PCIDE),
    /* [CET] "#GP(0) If an attempt is made to set CR4.CET when CR0.WP = 0". No profile has CET,
     * so CR4.CET is also reserved: both vectors #GP (and only the WP=0 one is the CET rule). */
    GP("cr4 CET with WP=0", SPR, M_LONG, R(LM_CR0 & ~X86_CR0_WP, PML4, LM_CR4, LM_EFER), T_CR4,
       LM_CR4 | X86_CR4_CET),
    GP("cr4 CET with WP=1 (CET absent: reserved)", SPR, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_CET),
    OK("cr4 VMXE outside VMX operation", SKX, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_VMXE,
       LM_CR4 | X86_CR4_VMXE),
    /* [PAE] under PAE paging a MOV to CR4 changing PGE/PSE/PAE/SMEP reloads the PDPTEs */
    GP("cr4 PGE change under PAE paging reloads bad PDPTEs", SPR, M_PROT,
       R(PAE_CR0, PAE_RSVD_RW, X86_CR4_PAE, 0), T_CR4, X86_CR4_PAE | X86_CR4_PGE),
    OK("cr4 TSD change under PAE paging does not reload", SPR, M_PROT,
       R(PAE_CR0, PAE_RSVD_RW, X86_CR4_PAE, 0), T_CR4, X86_CR4_PAE | X86_CR4_TSD,
       X86_CR4_PAE | X86_CR4_TSD),
    GP("cr4 PAE 0->1 with paging on (32-bit -> PAE) checks PDPTEs", SKX, M_PROT,
       R(PAE_CR0, PAE_RSVD_8_5, 0, 0), T_CR4, X86_CR4_PAE),

    /* clearing PCIDE is always allowed (CR3[11:0] need not be 0) */
    OK("cr4 PCIDE 1->0 in IA-32e mode", SPR, M_LONG,
       R(LM_CR0, PML4 | 7, LM_CR4 | X86_CR4_PCIDE, LM_EFER),
       T_CR4, LM_CR4, LM_CR4),
    /* Feature toggles (README "The CPU feature model"): a CR4 bit of an absent feature is reserved */
    GP("cr4 VMXE without VMX (sapphire-rapids,-vmx)", SPR ",-vmx", M_LONG, S_LONG, T_CR4,
       LM_CR4 | X86_CR4_VMXE),
    GP("cr4 OSXSAVE without XSAVE (skylake-server,-xsave)", SKX ",-xsave", M_LONG, S_LONG, T_CR4,
       LM_CR4 | X86_CR4_OSXSAVE),
    OK("cr4 OSXSAVE with XSAVE", SKX, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_OSXSAVE,
       LM_CR4 | X86_CR4_OSXSAVE),
    GP("cr4 PKE without PKU (sapphire-rapids,-pku)", SPR ",-pku", M_LONG, S_LONG, T_CR4,
       LM_CR4 | X86_CR4_PKE),
    OK("cr4 PKE on skylake-server", SKX, M_LONG, S_LONG, T_CR4, LM_CR4 | X86_CR4_PKE,
       LM_CR4 | X86_CR4_PKE),

    /* ---- CR3 ---------------------------------------------------------- */
    /* [CR3]/[MOVCR] 64-bit mode: "#GP(0) If an attempt is made to write a 1 to any reserved bit
     * in CR3" — bits 63:MAXPHYADDR (46 on both profiles) */
    GP("cr3 bit 46 (>= MAXPHYADDR) in IA-32e mode", SPR, M_LONG, S_LONG, T_CR3, PML4 | BIT64(46)),
    GP("cr3 bit 51 in IA-32e mode", SKX, M_LONG, S_LONG, T_CR3, PML4 | BIT64(51)),
    OK("cr3 bit 45 (< MAXPHYADDR) in IA-32e mode", SPR, M_LONG, S_LONG, T_CR3, PML4 | BIT64(45),
       PML4 | BIT64(45)),
    OK("cr3 PWT|PCD in IA-32e mode", SPR, M_LONG, S_LONG, T_CR3, PML4 | 0x18, PML4 | 0x18),
    /* [CR3] §4.10.4.1: with PCIDE = 1, bit 63 selects "no flush" and is not written to CR3 */
    OK("cr3 bit 63 with PCIDE=1 ignored", SPR, M_LONG, R(LM_CR0, PML4, LM_CR4 | X86_CR4_PCIDE, LM_EFER),
       T_CR3, PML4 | 5 | BIT64(63), PML4 | 5),
    GP("cr3 bit 63 with PCIDE=0 reserved", SPR, M_LONG, S_LONG, T_CR3, PML4 | BIT64(63)),
    OK("cr3 PCID with PCIDE=1", SKX, M_LONG, R(LM_CR0, PML4, LM_CR4 | X86_CR4_PCIDE, LM_EFER), T_CR3,
       PML4 | 0xABC, PML4 | 0xABC),
    OK("cr3 with paging off (32-bit)", SPR, M_PROT, S_PROT, T_CR3, 0xFFFFF000ull, 0xFFFFF000ull),
    /* outside IA-32e mode MOV to CR3 has a 32-bit operand: bits 63:32 of the value are not used */
    OK("cr3 outside IA-32e mode takes 32 bits", SKX, M_PROT, S_PROT, T_CR3, BIT64(40) | 0x3000, 0x3000),
    /* [PAE] MOV to CR3 under PAE paging loads the PDPTEs from CR3[31:5]: a present PDPTE with a
     * reserved bit (2:1, 8:5, 63:MAXPHYADDR) → #GP(0), CR3 unchanged */
    GP("cr3 PAE: PDPTE bit 1 reserved", SPR, M_PROT, S_PAE, T_CR3, PAE_RSVD_RW),
    GP("cr3 PAE: PDPTE bit 5 reserved", SKX, M_PROT, S_PAE, T_CR3, PAE_RSVD_8_5),
    GP("cr3 PAE: PDPTE bit 46 (>= MAXPHYADDR) reserved", SPR, M_PROT, S_PAE, T_CR3, PAE_RSVD_MAXPA),
    OK_PDPTE("cr3 PAE: reserved bits of a not-present PDPTE ignored", SPR, M_PROT, S_PAE, T_CR3,
             PAE_NP_RSVD, PAE_NP_RSVD, PAE_PD | 1),
    OK_PDPTE("cr3 PAE: bits 4:0 ignored for the PDPT address", SPR, M_PROT,
             R(PAE_CR0, PAE_RSVD_RW, X86_CR4_PAE, 0), T_CR3, PAE_OK | 0x18, PAE_OK | 0x18, PAE_PD | 1),

    /* ---- CR8 ---------------------------------------------------------- */
    /* [MOVCR] 64-bit mode: "#GP(0) If an attempt is made to write a 1 to any reserved bit in CR8"
     * (bits 63:4, [CR] §2.5 CR8) */
    OK("cr8 = 0xF", SPR, M_LONG, S_LONG, T_CR8, 0xF, 0xF),
    GP("cr8 bit 4", SPR, M_LONG, S_LONG, T_CR8, 0x10),
    GP("cr8 bit 63", SKX, M_LONG, S_LONG, T_CR8, BIT64(63) | 1),

    /* ---- IA32_EFER (WRMSR) -------------------------------------------- */
    /* [EFER] reserved bits → #GP: bit 1, SVME (12) and FFXSR (14) are AMD-only, bit 63 */
    GP("efer bit 1 reserved", SPR, M_LONG, S_LONG, T_EFER, LM_EFER | BIT64(1)),
    GP("efer bit 12 (AMD SVME) reserved", SKX, M_LONG, S_LONG, T_EFER, LM_EFER | X86_EFER_SVME),
    GP("efer bit 14 (AMD FFXSR) reserved", SPR, M_PROT, S_PROT, T_EFER, X86_EFER_FFXSR),
    GP("efer bit 63 reserved", SPR, M_PROT, S_PROT, T_EFER, BIT64(63)),
    /* [EFER]/WRMSR "#GP(0) ... if an attempt is made to change IA32_EFER.LME while CR0.PG = 1" */
    GP("efer clear LME with paging on (IA-32e)", SPR, M_LONG, S_LONG, T_EFER, LM_EFER & ~X86_EFER_LME),
    GP("efer set LME with PAE paging on", SKX, M_PROT, S_PAE, T_EFER, X86_EFER_LME),
    OK("efer set LME with paging off", SPR, M_PROT, S_PROT, T_EFER, X86_EFER_LME, X86_EFER_LME),
    GP("efer NXE without NX (sapphire-rapids,-nx)", SPR ",-nx", M_PROT, S_PROT, T_EFER, X86_EFER_NXE),
    GP("efer SCE without SYSCALL (skylake-server,-syscall)", SKX ",-syscall", M_PROT, S_PROT, T_EFER,
       X86_EFER_SCE),
    OK("efer NXE|SCE with paging off", SKX, M_PROT, S_PROT, T_EFER, X86_EFER_NXE | X86_EFER_SCE,
       X86_EFER_NXE | X86_EFER_SCE),
    /* [EFER] LMA is read-only: a write does not change it (either way) */
    OK("efer LMA=1 written with paging off stays 0", SPR, M_PROT, S_PROT, T_EFER,
       X86_EFER_LME | X86_EFER_LMA, X86_EFER_LME),
    OK("efer LMA=0 written in IA-32e mode stays 1", SKX, M_LONG, S_LONG, T_EFER, LM_EFER & ~X86_EFER_LMA,
       LM_EFER),
    OK("efer clear NXE in IA-32e mode", SPR, M_LONG, S_LONG, T_EFER, LM_EFER & ~X86_EFER_NXE,
       LM_EFER & ~X86_EFER_NXE),
    OK("efer clear SCE in IA-32e mode", SKX, M_LONG, S_LONG, T_EFER, LM_EFER & ~X86_EFER_SCE,
       LM_EFER & ~X86_EFER_SCE),
};

/* ---- the test machine --------------------------------------------------- */

static uint32_t io_in(void *ctx, uint16_t port, unsigned size)
{
    (void)ctx;
    (void)port;
    (void)size;
    return 0xFFFFFFFFu;
}

static void io_out(void *ctx, uint16_t port, unsigned size, uint32_t val)
{
    (void)ctx;
    (void)port;
    (void)size;
    (void)val;
}

struct machine {
    FILE *log; /* the core's reports (a HLT stop says "guest halted") */
    uint8_t *ram;
    struct cpu_model model;
    struct cpu *cpu;
};

static void put64(uint8_t *ram, uint64_t pa, uint64_t v) { memcpy(ram + pa, &v, 8); }

/* Paging structures: 4-level identity map of 4 MiB, and the PAE PDPTs of the layout above. */
static void build_ram(uint8_t *ram)
{
    memset(ram, 0, RAM_SIZE);
    put64(ram, PML4, PDPT4 | 7); /* U/S = 1 down to the first 2 MiB: CPL 3 code runs there */
    put64(ram, PDPT4, PD4 | 7);
    put64(ram, PD4, 0x000000 | 0x87);
    put64(ram, PD4 + 8, 0x200000 | 0x83);
    put64(ram, PAE_OK, PAE_PD | 1);
    put64(ram, PAE_RSVD_RW, PAE_PD | 1 | 2);
    put64(ram, PAE_RSVD_RW + 8, 0);
    put64(ram, PAE_RSVD_8_5, PAE_PD | 1);
    put64(ram, PAE_RSVD_8_5 + 8, PAE_PD | 1 | BIT64(5));
    put64(ram, PAE_NP_RSVD, PAE_PD | 1);
    put64(ram, PAE_NP_RSVD + 16, PAE_PD | BIT64(1) | BIT64(5) | BIT64(50)); /* P = 0 */
    put64(ram, PAE_RSVD_MAXPA, PAE_PD | 1);
    put64(ram, PAE_RSVD_MAXPA + 24, PAE_PD | 1 | BIT64(46));
    put64(ram, PAE_PD, 0x000000 | 0x83);
    put64(ram, PAE_PD + 8, 0x200000 | 0x83);
    /* GDT as the boot contract's: null, code64, data, code32, TSS. */
    put64(ram, GDT + 0x08, 0x00af9b000000ffffull);
    put64(ram, GDT + 0x10, 0x00cf93000000ffffull);
    put64(ram, GDT + 0x18, 0x00cf9b000000ffffull);
    put64(ram, GDT + 0x20, 0x00008b0078000067ull); /* 64-bit TSS at 0x7800 (busy), upper half 0 */
    put64(ram, GDT + 0x30, 0x00cff3000000ffffull); /* user data, DPL 3 */
    put64(ram, GDT + 0x38, 0x00affb000000ffffull); /* user 64-bit code, DPL 3 */
    put64(ram, GDT32 + 0x08, 0x00cf9b000000ffffull);
    put64(ram, GDT32 + 0x10, 0x00cf93000000ffffull);
    put64(ram, GDT32 + 0x18, 0x00cffb000000ffffull); /* user 32-bit code, DPL 3 */
    put64(ram, GDT32 + 0x20, 0x00cff3000000ffffull); /* user data, DPL 3 */
    put64(ram, GDT32 + 0x28, 0x00008b0079000067ull); /* 32-bit TSS at 0x7900 (busy) */
}

static struct x86_seg_state seg(uint16_t sel, uint64_t base, uint32_t limit, uint32_t ar)
{
    return (struct x86_seg_state){.selector = sel, .base = base, .limit = limit, .ar = ar};
}

#define AR_CODE64 0xA09Bu /* G L P S code/read/accessed */
#define AR_CODE32 0xC09Bu /* G D P S code */
#define AR_DATA 0xC093u
#define AR_TSS_BUSY 0x008Bu

/* Create the core on a fresh RAM and load `init` (cpu_load_boot_state). */
static void machine_boot(struct machine *m, const char *model, const struct plat_cpu_init *init)
{
    char err[256] = "";
    /* CPU_TEST_LOG=1: the core's reports (and VMXSIM_DEBUG traces) on stderr */
    m->log = getenv("CPU_TEST_LOG") ? fdopen(dup(2), "w") : tmpfile();
    ck_assert_ptr_nonnull(m->log);
    setvbuf(m->log, NULL, _IONBF, 0);
    m->ram = aligned_alloc(4096, RAM_SIZE);
    ck_assert_ptr_nonnull(m->ram);
    build_ram(m->ram);
    ck_assert_msg(model_parse(model, &m->model, err, sizeof err), "%s: %s", model, err);
    struct cpu_config cfg = {.model = &m->model, .ram = m->ram, .ram_size = RAM_SIZE,
                             .io = {.ctx = NULL, .in = io_in, .out = io_out}, .log = m->log};
    vmxsim_err e = cpu_create(&cfg, &m->cpu, err, sizeof err);
    ck_assert_msg(e == VMXSIM_OK, "cpu_create: %s", err);
    ck_assert_int_eq(cpu_load_boot_state(m->cpu, init), VMXSIM_OK);
}

/* The CPU state of `mode` with control registers `r`, CPL 0, flat segments. */
static struct plat_cpu_init make_init(enum mode mode, const struct regs *r, uint64_t rip, uint64_t rax)
{
    struct plat_cpu_init init;
    memset(&init, 0, sizeof init);
    init.long_mode = mode != M_PROT;
    init.rip = rip;
    init.rsp = STACK_TOP;
    init.rax = rax;
    init.rflags = X86_RFLAGS_FIXED;
    init.cr0 = r->cr0;
    init.cr3 = r->cr3;
    init.cr4 = r->cr4;
    init.efer = r->efer;
    init.gdtr = (struct x86_dtable){.base = GDT, .limit = 0x3F};
    init.idtr = (struct x86_dtable){.base = IDT, .limit = 0xFFF};
    if (mode == M_LONG)
        init.seg[X86_SEG_CS] = seg(0x08, 0, 0xFFFFFFFFu, AR_CODE64);
    else
        init.seg[X86_SEG_CS] = seg(0x18, 0, 0xFFFFFFFFu, AR_CODE32);
    init.seg[X86_SEG_SS] = init.seg[X86_SEG_DS] = init.seg[X86_SEG_ES] = init.seg[X86_SEG_FS] =
        init.seg[X86_SEG_GS] = seg(0x10, 0, 0xFFFFFFFFu, AR_DATA);
    init.seg[X86_SEG_LDTR] = seg(0, 0, 0, X86_AR_UNUSABLE);
    init.seg[X86_SEG_TR] = seg(0x20, TSS, 0x67, AR_TSS_BUSY);
    return init;
}

static void machine_open(struct machine *m, const char *model, enum mode mode, const struct regs *r,
                         uint64_t rip, uint64_t rax)
{
    struct plat_cpu_init init = make_init(mode, r, rip, rax);
    machine_boot(m, model, &init);

    /* The state is what we asked for (the test is meaningless otherwise). */
    ck_assert_uint_eq(cpu_read_cr(m->cpu, 0), r->cr0);
    ck_assert_uint_eq(cpu_read_cr(m->cpu, 3), r->cr3);
    ck_assert_uint_eq(cpu_read_cr(m->cpu, 4), r->cr4);
    ck_assert_uint_eq(m->cpu->efer & ~X86_EFER_LMA, r->efer & ~X86_EFER_LMA);
    ck_assert_uint_eq(cpu_long_mode(m->cpu), mode != M_PROT);
    ck_assert_uint_eq(cpu_code_bits(m->cpu), mode == M_LONG ? 64 : 32);
    ck_assert_uint_eq(cpu_cpl(m->cpu), 0);
}

static void machine_close(struct machine *m)
{
    cpu_destroy(m->cpu);
    free(m->ram);
    fclose(m->log);
    m->cpu = NULL;
    m->ram = NULL;
}

static uint64_t read_target(struct cpu *c, enum target t)
{
    return t == T_EFER ? c->efer : cpu_read_cr(c, (int)t);
}

/* ---- the table ------------------------------------------------------------ */

START_TEST(test_cr_vector)
{
    const struct cr_vec *v = &cr_vecs[_i];
    struct machine m;
    struct x86_fault f = {.vector = 0xEE, .has_error = false, .error_code = 0xDEAD};
    machine_open(&m, v->model, v->mode, &v->init, CODE, 0);
    uint64_t before = read_target(m.cpu, v->target), efer_before = m.cpu->efer;
    bool ok = v->target == T_EFER ? cpu_write_efer(m.cpu, v->value)
                                  : cpu_write_cr(m.cpu, (int)v->target, v->value, &f);
    uint64_t after = read_target(m.cpu, v->target);

    if (v->known_bug) {
        fprintf(stderr, "cpu_test: KNOWN-BUG [%s]: %s (SDM: %s; vmxsim: %s)\n", v->name, v->bug,
                v->ok ? "succeeds" : "#GP(0)", ok ? "succeeds" : "#GP(0)");
        ck_assert_msg(ok != v->ok, "[%s] known bug no longer reproduces: drop the known_bug flag", v->name);
        machine_close(&m);
        return;
    }
    if (!v->ok) {
        ck_assert_msg(!ok, "[%s] write of %#llx succeeded (now %#llx); SDM says #GP(0)", v->name,
                      (unsigned long long)v->value, (unsigned long long)after);
        if (v->target != T_EFER) {
            ck_assert_msg(f.vector == X86_GP && f.has_error && f.error_code == 0,
                          "[%s] fault is vector %u has_error %d error %#x, expected #GP(0)", v->name,
                          f.vector, f.has_error, f.error_code);
        }
        /* A faulting MOV/WRMSR changes nothing. */
        ck_assert_msg(after == before, "[%s] register changed by a faulting write: %#llx -> %#llx",
                      v->name, (unsigned long long)before, (unsigned long long)after);
        ck_assert_msg(m.cpu->efer == efer_before, "[%s] EFER changed by a faulting write", v->name);
    } else {
        ck_assert_msg(ok, "[%s] write of %#llx faulted (vector %u); SDM says it succeeds", v->name,
                      (unsigned long long)v->value, f.vector);
        ck_assert_msg(after == v->expect, "[%s] reads back %#llx, expected %#llx", v->name,
                      (unsigned long long)after, (unsigned long long)v->expect);
        if (v->check_efer)
            ck_assert_msg(m.cpu->efer == v->expect_efer, "[%s] EFER %#llx, expected %#llx", v->name,
                          (unsigned long long)m.cpu->efer, (unsigned long long)v->expect_efer);
        if (v->check_pdpte)
            ck_assert_msg(m.cpu->pdpte[0] == v->expect_pdpte0, "[%s] PDPTE0 %#llx, expected %#llx",
                          v->name, (unsigned long long)m.cpu->pdpte[0],
                          (unsigned long long)v->expect_pdpte0);
    }
    machine_close(&m);

    /* IA32_EFER through the MSR path (what WRMSR/RDMSR 0xC0000080 run): same outcome. */
    if (v->target == T_EFER) {
        uint64_t rd = 0;
        machine_open(&m, v->model, v->mode, &v->init, CODE, 0);
        ck_assert_msg(cpu_wrmsr(m.cpu, 0xC0000080u, v->value) == v->ok, "[%s] WRMSR EFER disagrees",
                      v->name);
        ck_assert(cpu_rdmsr(m.cpu, 0xC0000080u, &rd));
        ck_assert_msg(rd == (v->ok ? v->expect : efer_before), "[%s] RDMSR EFER %#llx", v->name,
                      (unsigned long long)rd);
        machine_close(&m);
    }
}
END_TEST

/* Every vector is meaningful: the SDM outcome differs from "anything goes" in both directions. */
START_TEST(test_table_covers_both_outcomes)
{
    unsigned ok = 0, gp = 0;
    for (size_t i = 0; i < COUNT(cr_vecs); i++) {
        if (cr_vecs[i].ok)
            ok++;
        else
            gp++;
    }
    ck_assert_uint_gt(ok, 10);
    ck_assert_uint_gt(gp, 10);
}
END_TEST

/* ---- VMX operation: CR0/CR4 fixed bits ([VMXFIX]) ------------------------ */

/*
 * Enter VMX operation the way software does: CR4.VMXE = 1 (initial state),
 * IA32_FEATURE_CONTROL locked with VMX outside SMX (the 64-bit boot state),
 * and VMXON [RAX] on a region holding the VMCS revision id, then HLT
 * (IF = 0: the run stops). Afterwards MOV to CR0/CR4 must keep the bits
 * IA32_VMX_CR0_FIXED0 / IA32_VMX_CR4_FIXED0 say are fixed to 1
 * (PE, NE, PG; VMXE): SDM Vol. 3C §24.8 "Any attempt to set one of these
 * bits to an unsupported value while in VMX operation (including VMX root
 * operation) using any of the CLTS, LMSW, or MOV CR instructions causes a
 * general-protection exception".
 */
static void enter_vmx(struct machine *m)
{
    static const uint8_t code[] = {0xF3, 0x0F, 0xC7, 0x30, /* vmxon (%rax): [RAX] = VMXON_REGION */
                                   0xF4};                  /* hlt */
    struct regs r = {LM_CR0, PML4, LM_CR4 | X86_CR4_VMXE, LM_EFER};
    struct vmxsim_result res;
    machine_open(m, SPR, M_LONG, &r, CODE, VMXON_PTR);
    memcpy(m->ram + CODE, code, sizeof code);
    put64(m->ram, VMXON_PTR, VMXON_REGION);
    uint32_t rev = VMXSIM_VMCS_REVISION;
    memcpy(m->ram + VMXON_REGION, &rev, 4);
    ck_assert_int_eq(cpu_run(m->cpu, &res), VMXSIM_OK);
    ck_assert_msg(res.stop == VMXSIM_STOP_HALT, "run stopped with %d: %s", res.stop, res.message);
    ck_assert_msg(m->cpu->vmx.in_vmx, "VMXON did not enter VMX operation");
    ck_assert_uint_eq(cpu_reg(m->cpu, UC_X86_REG_RFLAGS) & (X86_RFLAGS_CF | X86_RFLAGS_ZF), 0);
}

struct vmx_vec {
    const char *name;
    int cr;
    uint64_t value;
    bool ok;
};

static const struct vmx_vec vmx_vecs[] = {
    {"cr0 clear NE (FIXED0)", 0, LM_CR0 & ~X86_CR0_NE, false},
    {"cr0 clear PE|PG (FIXED0)", 0, LM_CR0 & ~(X86_CR0_PE | X86_CR0_PG), false},
    {"cr0 set TS (free)", 0, LM_CR0 | X86_CR0_TS, true},
    {"cr0 set CD (free, FIXED1)", 0, LM_CR0 | X86_CR0_CD, true},
    {"cr4 clear VMXE (FIXED0)", 4, LM_CR4, false},
    {"cr4 set TSD (free)", 4, LM_CR4 | X86_CR4_VMXE | X86_CR4_TSD, true},
    {"cr4 set SMXE (not in FIXED1)", 4, LM_CR4 | X86_CR4_VMXE | X86_CR4_SMXE, false},
};

START_TEST(test_vmx_fixed_bits)
{
    const struct vmx_vec *v = &vmx_vecs[_i];
    struct machine m;
    struct x86_fault f = {0};
    enter_vmx(&m);
    uint64_t before = cpu_read_cr(m.cpu, v->cr);
    bool ok = cpu_write_cr(m.cpu, v->cr, v->value, &f);
    if (v->ok) {
        ck_assert_msg(ok, "[%s] #GP in VMX operation", v->name);
        ck_assert_uint_eq(cpu_read_cr(m.cpu, v->cr), v->value);
    } else {
        ck_assert_msg(!ok, "[%s] accepted in VMX operation", v->name);
        ck_assert_msg(f.vector == X86_GP && f.has_error && f.error_code == 0, "[%s] not #GP(0)", v->name);
        ck_assert_uint_eq(cpu_read_cr(m.cpu, v->cr), before);
    }
    machine_close(&m);
}
END_TEST

/* Outside VMX operation the same NE clear is allowed (the rule is VMX-only). */
START_TEST(test_vmx_fixed_bits_only_in_vmx)
{
    struct machine m;
    struct x86_fault f = {0};
    struct regs r = {LM_CR0, PML4, LM_CR4 | X86_CR4_VMXE, LM_EFER};
    machine_open(&m, SPR, M_LONG, &r, CODE, 0);
    ck_assert(cpu_write_cr(m.cpu, 0, LM_CR0 & ~X86_CR0_NE, &f));
    ck_assert(cpu_write_cr(m.cpu, 4, LM_CR4, &f));
    machine_close(&m);
}
END_TEST

/* ---- event delivery (src/cpu/except.c), run through cpu_run ------------- *
 *
 * A few instructions at CODE raise an event; every IDT/IVT entry points at a
 * HLT (vector v's at HANDLERS + 16 * v), so the run stops in the handler of
 * the vector that was delivered and the test reads the frame it pushed.
 *   [DELIV]  SDM Vol. 3A §6.12.1 (frames, Figure 6-4), §6.12.1.2 (checks),
 *            §6.13 (error code), §6.14 (IA-32e: §6.14.2 alignment, §6.14.4
 *            SS, §6.14.5 IST), §6.15 (Table 6-5), Vol. 2A INT n pseudo-code
 *   [REAL]   SDM Vol. 3A §20.1.4 "Interrupt and Exception Handling" (8086
 *            emulation: IVT, FLAGS/CS/IP frame, IF/TF/AC cleared), Vol. 2A
 *            INT n "REAL-ADDRESS-MODE"
 */
#define HANDLERS 0x11000ull
#define USER_STACK 0x30000ull
#define KSTACK0 0x9000ull
#define NONCANON 0x0000800000000000ull /* bit 47 set, 63:48 clear: not canonical (48-bit) */

static void gate64(uint8_t *ram, unsigned vec, uint16_t sel, uint64_t off, uint8_t attr, unsigned ist)
{
    uint64_t lo = (off & 0xFFFF) | (uint64_t)sel << 16 | (uint64_t)ist << 32 | (uint64_t)attr << 40 |
                  ((off >> 16) & 0xFFFF) << 48;
    put64(ram, IDT + 16ull * vec, lo);
    put64(ram, IDT + 16ull * vec + 8, off >> 32);
}

static void gate32(uint8_t *ram, unsigned vec, uint16_t sel, uint32_t off, uint8_t attr)
{
    put64(ram, IDT + 8ull * vec,
          (off & 0xFFFF) | (uint64_t)sel << 16 | (uint64_t)attr << 40 | (uint64_t)(off >> 16) << 48);
}

static void ivt(uint8_t *ram, unsigned vec, uint16_t cs, uint16_t ip)
{
    uint32_t v = ip | (uint32_t)cs << 16;
    memcpy(ram + 4ull * vec, &v, 4);
}

static uint64_t get64(const uint8_t *ram, uint64_t pa)
{
    uint64_t v;
    memcpy(&v, ram + pa, 8);
    return v;
}

static uint32_t get32(const uint8_t *ram, uint64_t pa)
{
    uint32_t v;
    memcpy(&v, ram + pa, 4);
    return v;
}

static uint16_t get16(const uint8_t *ram, uint64_t pa)
{
    uint16_t v;
    memcpy(&v, ram + pa, 2);
    return v;
}

/* Every handler is a HLT; with RFLAGS.IF = 0 the run stops there. */
static void fill_handlers(uint8_t *ram) { memset(ram + HANDLERS, 0xF4, 0x1000); }

static void code(struct machine *m, const uint8_t *bytes, size_t n) { memcpy(m->ram + CODE, bytes, n); }

/* Run to the HLT of a handler; returns the vector whose handler stopped the run. */
static unsigned run_to_handler(struct machine *m)
{
    struct vmxsim_result res;
    struct x86_seg_state cs;
    ck_assert_int_eq(cpu_run(m->cpu, &res), VMXSIM_OK);
    ck_assert_msg(res.stop == VMXSIM_STOP_HALT, "run stopped with %d (%s), not in a handler", res.stop,
                  res.message);
    cpu_get_seg(m->cpu, X86_SEG_CS, &cs);
    uint64_t la = cs.base + cpu_reg(m->cpu, UC_X86_REG_RIP) - 1; /* the HLT */
    ck_assert_msg(la >= HANDLERS && la < HANDLERS + 0x1000 && (la & 15) == 0,
                  "halted at %#llx, not at a handler", (unsigned long long)la);
    return (unsigned)((la - HANDLERS) / 16);
}

/* Assert an SDM rule, or — for a documented vmxsim bug — that it still fails. */
static void sdm_check(bool holds, bool known_bug, const char *rule, const char *detail)
{
    if (known_bug) {
        fprintf(stderr, "cpu_test: KNOWN-BUG: %s (%s)\n", rule, detail);
        ck_assert_msg(!holds, "known bug fixed, drop the known_bug flag: %s", rule);
        return;
    }
    ck_assert_msg(holds, "%s (%s)", rule, detail);
}

/*
 * Real-address mode with CS = 0 (see test_nonzero_cs_base_hlt for why):
 * code at 0000h:0600h, SS:SP = 0000h:9000h, IVT at 0, vector v's handler at
 * 0000h:(REAL_HANDLERS + 16 v).
 */
#define REAL_CODE 0x600ull
#define REAL_HANDLERS 0x4000ull

static struct plat_cpu_init real_init(uint64_t rflags, uint16_t ivt_limit)
{
    struct plat_cpu_init in;
    memset(&in, 0, sizeof in);
    in.rip = REAL_CODE;
    in.rsp = KSTACK0;
    in.rflags = X86_RFLAGS_FIXED | rflags;
    in.cr0 = X86_CR0_ET;
    in.gdtr = (struct x86_dtable){.base = GDT, .limit = 0x3F};
    in.idtr = (struct x86_dtable){.base = 0, .limit = ivt_limit};
    in.seg[X86_SEG_CS] = seg(0, 0, 0xFFFF, 0x9B);
    in.seg[X86_SEG_SS] = in.seg[X86_SEG_DS] = in.seg[X86_SEG_ES] = in.seg[X86_SEG_FS] =
        in.seg[X86_SEG_GS] = seg(0, 0, 0xFFFF, 0x93);
    in.seg[X86_SEG_LDTR] = seg(0, 0, 0xFFFF, 0x82);
    in.seg[X86_SEG_TR] = seg(0, 0, 0xFFFF, 0x8B);
    return in;
}

static void real_setup(struct machine *m, const uint8_t *bytes, size_t n)
{
    memset(m->ram + REAL_HANDLERS, 0xF4, 0x1000);
    for (unsigned v = 0; v < 256; v++)
        ivt(m->ram, v, 0, (uint16_t)(REAL_HANDLERS + 16 * v));
    memcpy(m->ram + REAL_CODE, bytes, n);
}

static unsigned real_run_to_handler(struct machine *m)
{
    struct vmxsim_result res;
    ck_assert_int_eq(cpu_run(m->cpu, &res), VMXSIM_OK);
    ck_assert_msg(res.stop == VMXSIM_STOP_HALT, "run stopped with %d (%s)", res.stop, res.message);
    uint64_t ip = cpu_reg(m->cpu, UC_X86_REG_RIP) - 1;
    ck_assert_msg(ip >= REAL_HANDLERS && ip < REAL_HANDLERS + 0x1000 && (ip & 15) == 0,
                  "halted at %#llx, not at a handler", (unsigned long long)ip);
    return (unsigned)((ip - REAL_HANDLERS) / 16);
}

/* [REAL] INT n: FLAGS, CS, IP (next instruction) pushed as words; IF, TF, AC cleared. */
START_TEST(test_real_mode_int)
{
    static const uint8_t c[] = {0xCD, 0x20, 0xF4};
    struct machine m;
    struct plat_cpu_init in = real_init(X86_RFLAGS_IF | X86_RFLAGS_AC, 0x3FF);
    machine_boot(&m, SPR, &in);
    real_setup(&m, c, sizeof c);
    ck_assert_uint_eq(real_run_to_handler(&m), 0x20);
    ck_assert_uint_eq(cpu_reg(m.cpu, UC_X86_REG_RSP), KSTACK0 - 6);
    ck_assert_uint_eq(get16(m.ram, KSTACK0 - 6), REAL_CODE + 2); /* IP after INT 20h */
    ck_assert_uint_eq(get16(m.ram, KSTACK0 - 4), 0);             /* CS */
    ck_assert_uint_eq(get16(m.ram, KSTACK0 - 2), 0x0202);        /* FLAGS[15:0]: IF, bit 1 */
    uint64_t fl = cpu_reg(m.cpu, UC_X86_REG_RFLAGS);
    ck_assert_msg(!(fl & (X86_RFLAGS_IF | X86_RFLAGS_TF | X86_RFLAGS_AC)), "RFLAGS %#llx in the handler",
                  (unsigned long long)fl);
    machine_close(&m);
}
END_TEST

/* [REAL] a fault (#UD) pushes the IP of the faulting instruction. */
START_TEST(test_real_mode_ud)
{
    static const uint8_t c[] = {0x0F, 0x0B};
    struct machine m;
    struct plat_cpu_init in = real_init(0, 0x3FF);
    machine_boot(&m, SPR, &in);
    real_setup(&m, c, sizeof c);
    ck_assert_uint_eq(real_run_to_handler(&m), X86_UD);
    ck_assert_uint_eq(get16(m.ram, KSTACK0 - 6), REAL_CODE);
    machine_close(&m);
}
END_TEST

/*
 * [REAL] Vol. 2A INT n, real-address mode: "IF ((vector_number << 2) + 3) is
 * not within IDT limit THEN #GP" — a fault of the INT instruction, so the
 * pushed IP is the INT's, not the next instruction's.
 * (Was a vmxsim bug: the nested #GP took the INT's return address.)
 */
START_TEST(test_real_mode_ivt_limit)
{
    static const uint8_t c[] = {0xCD, 0x20};
    struct machine m;
    struct plat_cpu_init in = real_init(0, 16 * 4 - 1); /* vectors 0-15 only */
    machine_boot(&m, SPR, &in);
    real_setup(&m, c, sizeof c);
    ck_assert_uint_eq(real_run_to_handler(&m), X86_GP);
    uint16_t ip = get16(m.ram, KSTACK0 - 6);
    char d[64];
    snprintf(d, sizeof d, "pushed IP %#x, SDM %#x", ip, (unsigned)REAL_CODE);
    sdm_check(ip == REAL_CODE, false, "#GP from INT n beyond the IVT limit reports the INT instruction", d);
    machine_close(&m);
}
END_TEST

/*
 * Run in a child process; true when cpu_run returned within `secs` (then
 * *stop is the stop reason), false when it was still running (killed).
 */
static bool run_bounded(struct machine *m, unsigned secs, int *stop)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct vmxsim_result res;
        alarm(secs + 5);
        cpu_run(m->cpu, &res);
        _exit(res.stop);
    }
    for (unsigned i = 0; i < secs * 20; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            *stop = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            return true;
        }
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return false;
}

/*
 * A HLT at a CS base other than 0 (real mode 1000h:0000h; 32-bit protected
 * mode with a CS base of 10000h) must stop the run like any HLT with IF = 0.
 * (Fixed vmxsim bug, kept as a regression test:) cpu_emulate_sensitive() (insn.c) fetches the sensitive
 * instruction at RIP as if it were the linear address (CS.base ignored),
 * finds other bytes there, sets native_once = RIP + 1 while Unicorn's CODE
 * hook compares the linear address: the hook stops again at once, forever
 * (the simulator hangs; every sensitive instruction — HLT, IN/OUT, CPUID,
 * MOV CR, RDMSR/WRMSR, ... — hangs the same way). SDM Vol. 3A §3.4
 * (linear address = segment base + offset), §20.1.1 (real-mode address
 * translation: (selector << 4) + offset).
 */
START_TEST(test_nonzero_cs_base_hlt)
{
    for (int pm = 0; pm < 2; pm++) {
        struct machine m;
        struct regs r = S_PROT;
        struct plat_cpu_init in = pm ? make_init(M_PROT, &r, 0, 0) : real_init(0, 0x3FF);
        int stop = -1;
        in.rip = 0;
        in.seg[X86_SEG_CS] = pm ? seg(0x18, CODE, 0xFFFF, 0x409B) : seg(CODE >> 4, CODE, 0xFFFF, 0x9B);
        machine_boot(&m, SPR, &in);
        m.ram[CODE] = 0xF4;
        bool done = run_bounded(&m, 3, &stop);
        char d[96];
        snprintf(d, sizeof d, "%s: %s", pm ? "32-bit CS base 10000h" : "real mode CS 1000h",
                 done ? "run returned" : "run still looping after 3 s");
        sdm_check(done && stop == VMXSIM_STOP_HALT, false, "HLT at a non-zero CS base stops the run", d);
        machine_close(&m);
    }
}
END_TEST

/*
 * [DELIV] 32-bit protected mode, INT 80h at CPL 3 through a DPL-3 32-bit
 * interrupt gate to a DPL-0 code segment: SS:ESP from TSS.SS0:ESP0, frame
 * of 5 dwords (EIP, CS, EFLAGS, ESP, SS of ring 3), CPL 0, IF cleared.
 */
START_TEST(test_pm32_ring3_int)
{
    static const uint8_t c[] = {0xCD, 0x80};
    struct machine m;
    struct regs r = S_PROT;
    struct plat_cpu_init in = make_init(M_PROT, &r, CODE, 0);
    in.rsp = USER_STACK;
    in.rflags |= X86_RFLAGS_IF;
    in.gdtr = (struct x86_dtable){.base = GDT32, .limit = 0x2F};
    in.idtr = (struct x86_dtable){.base = IDT, .limit = 0x7FF};
    in.seg[X86_SEG_CS] = seg(0x1B, 0, 0xFFFFFFFFu, 0xC0FB);
    in.seg[X86_SEG_SS] = in.seg[X86_SEG_DS] = in.seg[X86_SEG_ES] = in.seg[X86_SEG_FS] =
        in.seg[X86_SEG_GS] = seg(0x23, 0, 0xFFFFFFFFu, 0xC0F3);
    in.seg[X86_SEG_TR] = seg(0x28, TSS32, 0x67, AR_TSS_BUSY);
    machine_boot(&m, SPR, &in);
    ck_assert_uint_eq(cpu_cpl(m.cpu), 3);
    fill_handlers(m.ram);
    put64(m.ram, TSS32 + 4, KSTACK0 | (0x10ull << 32)); /* ESP0, SS0 */
    gate32(m.ram, 0x80, 0x08, (uint32_t)(HANDLERS + 16 * 0x80), 0xEE);
    code(&m, c, sizeof c);
    ck_assert_uint_eq(run_to_handler(&m), 0x80);
    struct x86_seg_state cs, ss;
    cpu_get_seg(m.cpu, X86_SEG_CS, &cs);
    cpu_get_seg(m.cpu, X86_SEG_SS, &ss);
    ck_assert_uint_eq(cs.selector, 0x08);
    ck_assert_uint_eq(ss.selector, 0x10);
    ck_assert_uint_eq(cpu_cpl(m.cpu), 0);
    uint64_t esp = cpu_reg(m.cpu, UC_X86_REG_RSP);
    ck_assert_uint_eq(esp, KSTACK0 - 20);
    ck_assert_uint_eq(get32(m.ram, esp), CODE + 2);
    ck_assert_uint_eq(get32(m.ram, esp + 4), 0x1B);
    ck_assert_uint_eq(get32(m.ram, esp + 8) & X86_RFLAGS_IF, X86_RFLAGS_IF);
    ck_assert_uint_eq(get32(m.ram, esp + 12), USER_STACK);
    ck_assert_uint_eq(get32(m.ram, esp + 16), 0x23);
    ck_assert_uint_eq(cpu_reg(m.cpu, UC_X86_REG_RFLAGS) & X86_RFLAGS_IF, 0);
    machine_close(&m);
}
END_TEST

/* 64-bit mode at CPL 3 (CS 3Bh, SS 33h), TR = the 64-bit TSS at TSS. */
static struct plat_cpu_init lm_user_init(void)
{
    struct regs r = S_LONG;
    struct plat_cpu_init in = make_init(M_LONG, &r, CODE, 0);
    in.rsp = USER_STACK;
    in.seg[X86_SEG_CS] = seg(0x3B, 0, 0xFFFFFFFFu, 0xA0FB);
    in.seg[X86_SEG_SS] = in.seg[X86_SEG_DS] = in.seg[X86_SEG_ES] = in.seg[X86_SEG_FS] =
        in.seg[X86_SEG_GS] = seg(0x33, 0, 0xFFFFFFFFu, 0xC0F3);
    return in;
}

/*
 * [DELIV] Vol. 2A INT n (IA-32e, inter-privilege): "IF NewRSP is
 * non-canonical THEN #SS(EXT)" — INT 80h from CPL 3 with TSS.RSP0
 * non-canonical is #SS with error code 0 (EXT = 0 for INT n), here
 * delivered on IST1.
 * (Fixed vmxsim bug, kept as a regression test:) deliver_protected() (except.c) does not check the new RSP;
 * push_frame() then fails the linear write with the paging unit's #GP(0)
 * (walk.c: "the caller picks #SS" — except.c does not), so #GP is
 * delivered instead of #SS. (With RSP0 = 800000000000h exactly the frame
 * lands at the canonical 7FFFFFFFFFD8h and is written if mapped.)
 */
START_TEST(test_lm_rsp0_noncanonical)
{
    static const uint8_t c[] = {0xCD, 0x80};
    struct machine m;
    struct plat_cpu_init in = lm_user_init();
    machine_boot(&m, SPR, &in);
    fill_handlers(m.ram);
    put64(m.ram, TSS + 4, NONCANON + 0x1000); /* RSP0: the frame below it is non-canonical too */
    put64(m.ram, TSS + 0x24, 0xA000); /* IST1 */
    gate64(m.ram, 0x80, 0x08, HANDLERS + 16 * 0x80, 0xEE, 0);
    gate64(m.ram, X86_SS, 0x08, HANDLERS + 16 * X86_SS, 0x8E, 1);
    gate64(m.ram, X86_GP, 0x08, HANDLERS + 16 * X86_GP, 0x8E, 1);
    code(&m, c, sizeof c);
    unsigned v = run_to_handler(&m);
    char d[64];
    snprintf(d, sizeof d, "vector %u delivered, SDM #SS (12)", v);
    ck_assert_msg(v == X86_SS || v == X86_GP, "vector %u", v);
    sdm_check(v == X86_SS, false, "non-canonical RSP0 on a privilege change is #SS", d);
    ck_assert_uint_eq(get64(m.ram, cpu_reg(m.cpu, UC_X86_REG_RSP)), 0); /* error code */
    machine_close(&m);
}
END_TEST

/*
 * [DELIV] IA-32e mode: the gate's target must be a 64-bit code segment
 * (L = 1, D = 0), else #GP(selector + EXT). UD2 (a hardware exception, so
 * EXT = 1) through a gate to the 32-bit code segment 18h: #GP(19h),
 * reported on the UD2.
 */
START_TEST(test_lm_gate_target_not_64bit)
{
    static const uint8_t c[] = {0x0F, 0x0B};
    struct machine m;
    struct regs r = S_LONG;
    struct plat_cpu_init in = make_init(M_LONG, &r, CODE, 0);
    machine_boot(&m, SPR, &in);
    fill_handlers(m.ram);
    gate64(m.ram, X86_UD, 0x18, HANDLERS + 16 * X86_UD, 0x8E, 0);
    gate64(m.ram, X86_GP, 0x08, HANDLERS + 16 * X86_GP, 0x8E, 0);
    code(&m, c, sizeof c);
    ck_assert_uint_eq(run_to_handler(&m), X86_GP);
    uint64_t rsp = cpu_reg(m.cpu, UC_X86_REG_RSP);
    ck_assert_uint_eq(get64(m.ram, rsp), 0x19);
    ck_assert_uint_eq(get64(m.ram, rsp + 8), CODE);
    machine_close(&m);
}
END_TEST

/*
 * [DELIV] Vol. 2A INT n (IA-32e): "IF instruction pointer from interrupt
 * gate is not canonical THEN #GP(EXT)": INT 80h (EXT = 0) through a gate
 * whose offset is not canonical is #GP(0), a fault of the INT (pushed RIP =
 * the INT), delivered before anything is pushed for INT 80h.
 * (Fixed vmxsim bug, kept as a regression test:) deliver_protected() (except.c) does not check the offset: it
 * completes the INT 80h delivery with RIP = 800000000000h, and the fetch
 * there faults (#GP(0) from the paging unit) with RIP = 800000000000h
 * pushed, on top of the INT 80h frame already pushed.
 */
START_TEST(test_lm_gate_offset_noncanonical)
{
    static const uint8_t c[] = {0xCD, 0x80};
    struct machine m;
    struct regs r = S_LONG;
    struct plat_cpu_init in = make_init(M_LONG, &r, CODE, 0);
    machine_boot(&m, SPR, &in);
    fill_handlers(m.ram);
    gate64(m.ram, 0x80, 0x08, NONCANON, 0x8E, 0);
    gate64(m.ram, X86_GP, 0x08, HANDLERS + 16 * X86_GP, 0x8E, 0);
    code(&m, c, sizeof c);
    ck_assert_uint_eq(run_to_handler(&m), X86_GP);
    uint64_t rsp = cpu_reg(m.cpu, UC_X86_REG_RSP);
    ck_assert_uint_eq(get64(m.ram, rsp), 0);
    uint64_t rip = get64(m.ram, rsp + 8);
    char d[96];
    snprintf(d, sizeof d, "pushed RIP %#llx, SDM %#llx; RSP %#llx, SDM %#llx", (unsigned long long)rip,
             (unsigned long long)CODE, (unsigned long long)rsp, (unsigned long long)(STACK_TOP - 48));
    sdm_check(rip == CODE && rsp == STACK_TOP - 48, false,
              "a non-canonical gate offset is #GP on the INT, nothing pushed for it", d);
    machine_close(&m);
}
END_TEST

/* [DELIV] §6.14.5: IST = 2 takes RSP from TSS.IST2 (offset 2Ch), aligned down to 16. */
START_TEST(test_lm_ist2)
{
    static const uint8_t c[] = {0xCD, 0x80};
    struct machine m;
    struct regs r = S_LONG;
    struct plat_cpu_init in = make_init(M_LONG, &r, CODE, 0);
    machine_boot(&m, SPR, &in);
    fill_handlers(m.ram);
    put64(m.ram, TSS + 0x24, 0xA000);
    put64(m.ram, TSS + 0x2C, 0xB008);
    gate64(m.ram, 0x80, 0x08, HANDLERS + 16 * 0x80, 0x8E, 2);
    code(&m, c, sizeof c);
    ck_assert_uint_eq(run_to_handler(&m), 0x80);
    uint64_t rsp = cpu_reg(m.cpu, UC_X86_REG_RSP);
    ck_assert_uint_eq(rsp, 0xB000 - 40);
    ck_assert_uint_eq(get64(m.ram, rsp), CODE + 2);
    ck_assert_uint_eq(get64(m.ram, rsp + 24), STACK_TOP); /* old RSP */
    ck_assert_uint_eq(get64(m.ram, rsp + 32), 0x10);      /* old SS */
    machine_close(&m);
}
END_TEST

/* [DELIV] §6.12.1.3: a trap gate leaves IF alone, an interrupt gate clears it (64-bit gates). */
START_TEST(test_lm_trap_vs_interrupt_gate)
{
    static const uint8_t c[] = {0xCD, 0x80};
    for (int trap = 0; trap < 2; trap++) {
        struct machine m;
        struct regs r = S_LONG;
        struct plat_cpu_init in = make_init(M_LONG, &r, CODE, 0);
        in.rflags |= X86_RFLAGS_IF;
        machine_boot(&m, SPR, &in);
        fill_handlers(m.ram);
        gate64(m.ram, 0x80, 0x08, HANDLERS + 16 * 0x80, trap ? 0x8F : 0x8E, 0);
        code(&m, c, sizeof c);
        ck_assert_uint_eq(run_to_handler(&m), 0x80);
        uint64_t rsp = cpu_reg(m.cpu, UC_X86_REG_RSP);
        ck_assert_uint_eq(get64(m.ram, rsp + 16) & X86_RFLAGS_IF, X86_RFLAGS_IF);
        ck_assert_uint_eq(cpu_reg(m.cpu, UC_X86_REG_RFLAGS) & X86_RFLAGS_IF, trap ? X86_RFLAGS_IF : 0);
        machine_close(&m);
    }
}
END_TEST

/*
 * LTR (SDM Vol. 2A LTR): loads TR from an available TSS descriptor and
 * marks the TSS busy — in the descriptor and in TR's hidden access rights,
 * which then say type 11 (busy), as VM exits save them and VM entry checks
 * them (Vol. 3C §27.3.1.2: TR type must be 3 or 11). The I/O permission
 * check (io_allowed, insn.c) relies on it too.
 * (Fixed vmxsim bug, kept as a regression test:) vmxsim lets QEMU execute LTR natively (insn.c do_native);
 * QEMU sets the busy bit in the GDT but leaves type 9 in its TR cache, and
 * vmxsim does not fix it up: TR.ar reads 0x89. Consequences: at CPL > IOPL
 * every I/O instruction is #GP(0) after an LTR (io_allowed demands a busy
 * TR before reading the I/O bitmap; tests/guests/ring3.S "d-out-e9"), and a
 * guest that executed LTR gets TR type 9 saved in its VMCS on a VM exit.
 */
START_TEST(test_ltr_tr_busy)
{
    static const uint8_t c[] = {0x66, 0xB8, 0x40, 0x00, /* mov $0x40, %ax */
                                0x0F, 0x00, 0xD8,       /* ltr %ax */
                                0xF4};                  /* hlt */
    struct machine m;
    struct regs r = S_LONG;
    struct plat_cpu_init in = make_init(M_LONG, &r, CODE, 0);
    in.gdtr.limit = 0x4F;
    machine_boot(&m, SPR, &in);
    put64(m.ram, GDT + 0x40, 0x0000890090000067ull); /* available 64-bit TSS at 0x9000 */
    put64(m.ram, GDT + 0x48, 0);
    code(&m, c, sizeof c);
    struct vmxsim_result res;
    ck_assert_int_eq(cpu_run(m.cpu, &res), VMXSIM_OK);
    ck_assert_int_eq(res.stop, VMXSIM_STOP_HALT);
    struct x86_seg_state tr;
    cpu_get_seg(m.cpu, X86_SEG_TR, &tr);
    ck_assert_uint_eq(tr.selector, 0x40);
    ck_assert_uint_eq(tr.base, 0x9000);
    ck_assert_uint_eq(tr.limit, 0x67);
    ck_assert_uint_eq((get64(m.ram, GDT + 0x40) >> 40) & 0xF, X86_SYS_TSS_BUSY); /* descriptor busy */
    char d[64];
    snprintf(d, sizeof d, "TR access rights %#x, SDM type 11 (0x8b)", tr.ar);
    sdm_check((tr.ar & X86_AR_TYPE_MASK) == X86_SYS_TSS_BUSY, false, "LTR leaves TR busy", d);
    machine_close(&m);
}
END_TEST

static Suite *cpu_suite(void)
{
    Suite *s = suite_create("cpu");
    TCase *t = tcase_create("control_registers");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, test_cr_vector, 0, (int)COUNT(cr_vecs));
    tcase_add_test(t, test_table_covers_both_outcomes);
    suite_add_tcase(s, t);
    t = tcase_create("vmx_fixed_bits");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, test_vmx_fixed_bits, 0, (int)COUNT(vmx_vecs));
    tcase_add_test(t, test_vmx_fixed_bits_only_in_vmx);
    suite_add_tcase(s, t);
    t = tcase_create("delivery");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_real_mode_int);
    tcase_add_test(t, test_real_mode_ud);
    tcase_add_test(t, test_real_mode_ivt_limit);
    tcase_add_test(t, test_nonzero_cs_base_hlt);
    tcase_add_test(t, test_pm32_ring3_int);
    tcase_add_test(t, test_lm_rsp0_noncanonical);
    tcase_add_test(t, test_lm_gate_target_not_64bit);
    tcase_add_test(t, test_lm_gate_offset_noncanonical);
    tcase_add_test(t, test_lm_ist2);
    tcase_add_test(t, test_lm_trap_vs_interrupt_gate);
    tcase_add_test(t, test_ltr_tr_busy);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cpu_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
