/*
 * Private state of the CPU core. Only the files of src/cpu include this.
 */
#ifndef VMXSIM_CPU_PRIV_H
#define VMXSIM_CPU_PRIV_H

#include <capstone/capstone.h>
#include <unicorn/unicorn.h>

#include "cpu/cpu.h"
#include "msr/msr.h"
#include "paging/paging.h"
#include "paging/tlb.h"
#include "platform/lapic.h"
#include "vmx/vmx.h"

#define CPU_WARN_UNUSED __attribute__((warn_unused_result))

/* Record a fault with an error code in *fp and evaluate to false (checks that fault). */
#define CPU_FAULT(fp, v, e) (*(fp) = (struct x86_fault){.vector = (v), .has_error = true, .error_code = (e)}, false)

/*
 * Offsets into Unicorn's saved CPU context (a copy of QEMU's CPUX86State),
 * found at start-up by writing known values through the public register API
 * and locating them (engine.c). They let the core load hidden segment state
 * (base/limit/access rights) exactly, which the public API cannot, and
 * read the error code of exceptions QEMU raises natively.
 */
struct cpu_env_layout {
    size_t size;        /* bytes in the context blob */
    size_t regs;        /* regs[16] (RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8..R15) */
    size_t eflags;      /* after eip */
    size_t hflags;      /* uint32_t, HF_* bits */
    size_t segs;        /* SegmentCache segs[6] in QEMU order ES CS SS DS FS GS, then LDT, TR */
    size_t seg_stride;  /* sizeof(SegmentCache) */
    size_t error_code;  /* int: error code of the exception being raised */
    size_t exception_is_int;
    size_t old_exception; /* int: QEMU's "exception in flight" (DESIGN §2 bug) */
    /* An engine's own mode state (contexts.c): hflags .. cr[4] and a20_mask, and efer. */
    size_t mode_lo, mode_hi, efer;
    size_t dbg_lo, dbg_hi; /* dr[7] and QEMU's breakpoint pointers */
};

struct cpu_fetch_page {
    bool valid;
    unsigned acc;
    uint64_t la_page, pa_page;
    const struct cpu_engine *engine;
    uint64_t flushes, tlb_gen;
};

struct cpu_hookset {
    uint64_t *addrs;  /* open-addressing set of addresses with a CODE hook */
    size_t cap, count;
};

/*
 * Everything Unicorn's TLB entries of an engine were filled under (our
 * TLB-fill hook's inputs, and the architectural TLB's generation): while it
 * is unchanged, the engine's TLB is still exact (contexts.c).
 */
struct cpu_fill_ctx {
    uint64_t cr0, cr3, cr4, efer, pdpte[4];
    uint64_t gdt_base, idt_base, ldt_base, tr_base;
    uint32_t gdt_limit, idt_limit, ldt_limit, tr_limit;
    uint64_t eptp, ept_caps, tlb_gen;
    uint32_t pkru, pkrs;
    uint16_t vpid;
    uint8_t ept_on, mbec, non_root, unrestricted;
};

#define CPU_TCG_BUFFER_SIZE (64u << 20) /* translated code per engine */
#define CPU_MAX_ENGINES 5   /* VMX root operation + up to 4 guest VMCSs */
#define CPU_ENGINE_ROOT ~0ull /* key of the root engine (no VMCS address is all ones) */

/* One Unicorn engine: a translation context with its own TLB and code cache (DESIGN §2). */
struct cpu_engine {
    uc_engine *uc;
    uc_context *ctx;          /* its CPU state while it does not run */
    uint64_t key;             /* CPU_ENGINE_ROOT or the guest's VMCS address */
    uint64_t last_use;
    unsigned index;
    bool cloned;              /* ctx holds a whole state (the engine has run or been loaded) */
    uint64_t cr0, cr3, cr4, efer; /* the control registers its QEMU state holds */
    struct cpu_fill_ctx fill; /* what its TLB was filled under (valid while fill_valid) */
    bool fill_valid;
    bool tlb_stale;           /* another engine started code on a page this one may write */
    bool tb_stale;            /* a page this engine translated code from was written */
    struct cpu_hookset hooked; /* addresses with a CODE hook in this engine */
    uint8_t *code_pages;      /* bitmap of RAM pages it translated code from */
};

/* Why uc_emu_start returned (set by hooks). */
enum cpu_stop_cause {
    CAUSE_NONE = 0,
    CAUSE_SENSITIVE,  /* CODE hook on a sensitive instruction at RIP */
    CAUSE_INVALID,    /* #UD-raising opcode at RIP (VMX instructions land here) */
    CAUSE_EXCEPTION,  /* QEMU raised an exception (INTR hook) */
    CAUSE_FILL_FAULT, /* our TLB-fill hook refused a translation */
    CAUSE_BLOCK_NEW,  /* block hook hooked new sensitive instructions: restart */
    CAUSE_MACHINE,    /* a device or the instruction limit asked to stop */
    CAUSE_EVENT,      /* simulated time reached next_event */
};

/* A decoded basic block (keyed by linear address and size). */
struct cpu_block {
    uint64_t addr;
    uint32_t size;
    uint32_t ninsns;
    uint64_t cost;   /* static cycle cost (timing unit) */
    uint64_t tag;    /* decode generation (cpu_blocks_invalidate bumps it) */
    uint16_t *off;   /* byte offset of each instruction */
    uint32_t *cum;   /* cost of the instructions before each one */
};

#define CPU_BLOCK_CACHE_SIZE 4096 /* direct mapped, power of two */
#define CPU_ICACHE_SIZE 256       /* decoded instructions for emulation */
#define CPU_FETCH_PAGES 8         /* code pages the simulator decodes from */

struct cpu_icache {
    uint64_t rip, la;
    unsigned bits;
    uint8_t bytes[16];
    cs_insn *insn;
};


struct cpu {
    uc_engine *uc;             /* the running engine (cur->uc) */
    struct cpu_engine eng[CPU_MAX_ENGINES];
    struct cpu_engine *cur;
    uint64_t engine_clock;
    bool engines_shared;       /* a guest ran in another context's engine (no memory for its own) */
    csh cs[3]; /* Capstone for 16-, 32- and 64-bit code */
    struct cpu_model model;
    struct msr_file msrs;
    uint8_t *ram;
    uint64_t ram_size;
    struct cpu_io io;
    struct paging_mem pmem;
    FILE *log;

    /* Architectural state owned here (SDM Vol. 3A §2.5). */
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, xcr0;
    uint64_t pdpte[4];
    uint32_t pkru;
    uint32_t activity;          /* enum vmx_activity (HLT, shutdown, ...) */
    uint32_t interruptibility;  /* GUEST_INTR_STATE_* blocking other than STI/MOV SS/NMI */
    bool nmi_blocked;           /* blocking by NMI (physical), until IRET (SDM Vol. 3A §6.7.1) */
    bool vnmi_blocked;          /* virtual-NMI blocking of the current guest (Vol. 3C §26.7.1) */
    bool vnmi_on, nmi_exiting;  /* the current guest's "virtual NMIs" / "NMI exiting" */
    bool unrestricted;          /* the current guest runs with "unrestricted guest" */
    uint64_t block_stop_addr;   /* linear address of the block a block-hook stop happened at */
    bool block_stop;            /* RIP must be taken from block_stop_addr (Unicorn did not sync it) */
    bool mtf_stepping;          /* translated blocks were flushed for MTF single-stepping */
    /* The event being delivered (for an EPT exit during its delivery, SDM Vol. 3C §28.2.4). */
    bool delivering;
    uint32_t deliver_info, deliver_error, deliver_len;
    uint64_t pending_dbg;

    /* The local APIC (part of the processor) and pending-event bookkeeping. */
    struct lapic apic;
    uint64_t next_event;        /* cycle at which the block hook stops for events */
    bool events_poll;           /* an event waits for IF=1 / a window: check every block */
    bool rip_written;           /* the emulation already moved RIP */
    const cs_insn *cur_insn;    /* instruction being emulated */

    /* VMX operation (the VMX unit's state) and its statistics. */
    struct vmx vmx;
    struct vmx_ops vmx_ops;
    uint64_t vmexits, vmentries;
    uint64_t stops, fills;      /* statistics: emulation stops, TLB fills */
    bool ept_on;                /* non-root with "enable EPT": translate through ept */
    uint16_t vpid;              /* non-root with "enable VPID": the VPID, else 0 */
    bool vpid_on;
    struct tlb *tlb;            /* the architectural TLB (paging/tlb.h) */
    struct ept_state ept;

    /* Run state set by hooks, consumed by the run loop. */
    enum cpu_stop_cause cause;
    int intno;                  /* CAUSE_EXCEPTION */
    bool invalid_pending;       /* INSN_INVALID handled; ignore the INTR(6) that follows */
    uint64_t native_once;       /* let the hooked instruction at this RIP run natively once */
    uint64_t new_block_addr;    /* CAUSE_BLOCK_NEW: drop this translated block */
    uint32_t new_block_size;
    struct x86_fault fill_fault; /* CAUSE_FILL_FAULT */
    bool fill_ept;              /* the fill failed in EPT (fill_eres says how) */
    struct ept_result fill_eres;
    bool fill_eres_final;
    uint64_t fill_page;
    unsigned fill_access;

    /* Machine stop request. */
    enum vmxsim_stop stop;
    int exit_status;
    char stop_msg[256];

    /* Counters (timing unit charges cycles). */
    uint64_t cycles, insns, max_insns;
    uint64_t insn_limit;        /* max_insns, or UINT64_MAX: one compare per block */
    uint64_t tsc_offset;        /* IA32_TSC = cycles + tsc_offset */
    uint64_t exceptions_delivered;
    unsigned idle_stops;

    /* Decode cache and per-address CODE hooks. */
    struct cpu_block *blocks;
    struct cpu_block *cur_block; /* last block entered (charged on entry) */
    uint64_t block_tag;         /* translation context of cached decodes (cpu_blocks_retag) */
    uint64_t block_gen;         /* explicit invalidations */
    struct cpu_icache icache[CPU_ICACHE_SIZE];
    struct cpu_fetch_page fetch_pages[CPU_FETCH_PAGES]; /* blocks.c read_insn_bytes */
    uint64_t tlb_flushes;       /* cpu_flush_tlb calls */

    /* Unicorn context used to patch hidden state. */
    struct cpu_env_layout env;
    uc_context *ctx;            /* cur->ctx */
    bool ctx_valid;             /* ctx equals the engine's state (engine.c) */
    uint8_t *ctx_keep;          /* env.size bytes: an engine's owned ranges during a switch (contexts.c) */
    uc_context *pfx;            /* a short context: its first env.mode_hi bytes (engine.c) */
    bool pfx_valid;             /* pfx equals the engine's state */
    bool seg_valid;             /* pfx's segment caches and hflags do */
    uint64_t gpr_snap[16];      /* GPRs at the last cpu_save_state ... */
    bool gpr_snap_valid;        /* ... and no register written or run since */

    bool feature_control_unlocked;
    bool sld;                   /* MSR_TEST_CTRL.SPLIT_LOCK_DETECT: locked ops are checked */
    bool ac_mode;               /* alignment checking in force when blocks were decoded */
    bool last_ac_split_lock;    /* the last #AC came from split-lock detection (reports) */
    bool debug; /* VMXSIM_DEBUG: log every stop to the log stream */
};

/* engine.c — Unicorn set-up and hidden-state access. */
vmxsim_err cpu_engine_open(struct cpu *c, char *err, size_t errlen);
void cpu_engine_close(struct cpu *c);
uc_err cpu_engine_new(struct cpu *c, uc_engine **uc); /* opened and mapped, no hooks */
uint64_t cpu_reg(struct cpu *c, int ucreg);
void cpu_set_reg(struct cpu *c, int ucreg, uint64_t v);
void cpu_get_seg(struct cpu *c, enum x86_seg s, struct x86_seg_state *out);
void cpu_set_segs(struct cpu *c, const struct x86_seg_state *segs, unsigned mask);
void cpu_load_segs(struct cpu *c, const struct x86_seg_state *segs, unsigned mask, const struct x86_dtable *gdtr,
                   const struct x86_dtable *idtr);
void cpu_get_dtables(struct cpu *c, struct x86_dtable *gdtr, struct x86_dtable *idtr);
void cpu_get_gprs(struct cpu *c, uint64_t gpr[16], uint64_t *rip);
int cpu_native_error_code(struct cpu *c, bool *is_int);
void cpu_clear_old_exception(struct cpu *c);
void cpu_flush_tlb(struct cpu *c);
void cpu_ctx_dirty(struct cpu *c);
bool cpu_movss_blocking(struct cpu *c);
bool cpu_inhibited(struct cpu *c); /* STI or MOV SS blocking in effect */
void cpu_clear_inhibit(struct cpu *c);
uint64_t cpu_cs_base(struct cpu *c);
uint64_t cpu_rip_linear(struct cpu *c); /* CS.base + RIP: what Unicorn's hooks report */
void cpu_set_inhibit(struct cpu *c);
unsigned cpu_cpl(struct cpu *c);
unsigned cpu_cs_rpl(struct cpu *c);
bool cpu_long_mode(const struct cpu *c);
unsigned cpu_code_bits(struct cpu *c); /* 16, 32 or 64 */

/* cpu.c — the hooks every engine carries. */
vmxsim_err cpu_engine_hooks(struct cpu *c, uc_engine *uc);

/* contexts.c — one engine per translation context (DESIGN §2). */
void cpu_ctx_leave(struct cpu *c, const struct x86_state *st);
void cpu_ctx_enter(struct cpu *c);
void cpu_ctx_validate(struct cpu *c, const struct x86_state *st);
void cpu_ctx_code_page(struct cpu *c, uint64_t pa);
void cpu_ctx_wrote(struct cpu *c, uint64_t pa, uint64_t len);
bool cpu_ctx_foreign_code(const struct cpu *c, uint64_t pa);
void cpu_ctx_close(struct cpu *c);

/* mem.c — linear and physical memory for the core. */
void cpu_paging_state(struct cpu *c, struct paging_state *st);
struct tlb_ctx cpu_tlb_ctx(const struct cpu *c);
/* One translation with full checks: guest paging, and EPT when it is on. */
enum paging_status cpu_translate(struct cpu *c, uint64_t la, unsigned acc, struct paging_result *r,
                                 struct ept_result *er, bool *er_final);
const struct paging_mem *cpu_phys_mem(struct cpu *c);
bool cpu_phys_read(struct cpu *c, uint64_t pa, void *buf, size_t len);
bool cpu_phys_write(struct cpu *c, uint64_t pa, const void *buf, size_t len);
/* Linear accesses with full paging checks; a fault is returned in *f. */
bool cpu_lin_read(struct cpu *c, uint64_t la, void *buf, size_t len, unsigned acc,
                  struct x86_fault *f) CPU_WARN_UNUSED;
bool cpu_lin_to_phys(struct cpu *c, uint64_t la, unsigned acc, uint64_t *pa) CPU_WARN_UNUSED;
bool cpu_lin_write(struct cpu *c, uint64_t la, const void *buf, size_t len, unsigned acc,
                   struct x86_fault *f) CPU_WARN_UNUSED;
bool cpu_tlb_fill(uc_engine *uc, uint64_t va, uc_mem_type type, uc_tlb_entry *e, void *ud);

/* blocks.c — pre-decode, CODE hooks on sensitive instructions, cycles. */
vmxsim_err cpu_blocks_init(struct cpu *c);
vmxsim_err cpu_blocks_hook(struct cpu *c, uc_engine *uc);
void cpu_blocks_free(struct cpu *c);
void cpu_blocks_invalidate(struct cpu *c);
void cpu_blocks_refund(struct cpu *c, uint64_t rip);
void cpu_blocks_retag(struct cpu *c);
bool cpu_fetch_insn(struct cpu *c, uint64_t rip, cs_insn **insn, struct x86_fault *f);

/* except.c — exception and interrupt delivery (SDM Vol. 3A chapter 6). */
enum cpu_event_kind { EV_HW_EXCEPTION, EV_SW_INT, EV_SW_EXCEPTION, EV_EXT_INT, EV_NMI };
void cpu_raise(struct cpu *c, const struct x86_fault *f);
void cpu_deliver(struct cpu *c, uint8_t vector, enum cpu_event_kind kind, bool has_error,
                 uint32_t error_code, uint64_t next_rip);
void cpu_inject(struct cpu *c, uint8_t vector, enum cpu_event_kind kind, bool has_error,
                uint32_t error_code, uint64_t next_rip);
void cpu_triple_fault(struct cpu *c, const char *why);
/* Descriptor tables (implicit supervisor reads; #GP(sel|ext) beyond the table's limit). */
bool cpu_read_desc(struct cpu *c, uint16_t sel, uint64_t *d, uint32_t ext, struct x86_fault *f) CPU_WARN_UNUSED;
void cpu_decode_desc(uint64_t d, uint16_t sel, struct x86_seg_state *s);

/* task.c — task switches in VMX non-root operation (SDM Vol. 3C §26.4.2). */
bool cpu_task_insn(struct cpu *c, const cs_insn *insn, struct x86_fault *f, bool *exited) CPU_WARN_UNUSED;
bool cpu_task_gate(struct cpu *c, uint16_t tss, uint32_t ext, struct x86_fault *f) CPU_WARN_UNUSED;
bool cpu_load_tr(struct cpu *c, uint16_t sel, struct x86_fault *f) CPU_WARN_UNUSED;
void cpu_report_state(struct cpu *c, FILE *out);

/* insn.c — emulation of the sensitive instructions. */
void cpu_emulate_sensitive(struct cpu *c);
void cpu_emulate_invalid(struct cpu *c);
void cpu_cpuid(struct cpu *c);
bool cpu_is_sensitive(const cs_insn *insn);
bool cpu_is_vmx_insn(const cs_insn *insn);
void cpu_invpcid(struct cpu *c, const cs_insn *insn);

/* align.c — #AC from split-lock detection and alignment checking. */
bool cpu_is_locked_access(const cs_insn *insn);
bool cpu_has_data_operand(const cs_insn *insn);
bool cpu_ac_checking(struct cpu *c);
bool cpu_check_alignment(struct cpu *c, const cs_insn *insn, struct x86_fault *f) CPU_WARN_UNUSED;
/* Sensitive encodings Capstone 4 does not know (WRPKRU): their length, or 0. */
unsigned cpu_raw_sensitive(const uint8_t *code, size_t len);

/* events.c — interrupts, NMI, INIT, timers, windows. */
bool cpu_events_check(struct cpu *c);
bool cpu_events_wait(struct cpu *c);
void cpu_events_schedule(struct cpu *c);

/* cr.c — control registers and EFER. */
bool cpu_write_cr(struct cpu *c, int cr, uint64_t val, struct x86_fault *f) CPU_WARN_UNUSED;
uint64_t cpu_read_cr(struct cpu *c, int cr);
bool cpu_write_efer(struct cpu *c, uint64_t val);
void cpu_sync_cr_to_engine(struct cpu *c);
/* Returns true when QEMU already flushed its TLB (CR3 or mode changed). */
bool cpu_load_cr_state(struct cpu *c, uint64_t cr0, uint64_t cr3, uint64_t cr4, uint64_t efer);

/* msrs on the core side (side effects of MSR_F_CORE). */
bool cpu_rdmsr(struct cpu *c, uint32_t idx, uint64_t *val);
bool cpu_wrmsr(struct cpu *c, uint32_t idx, uint64_t val);
void cpu_ept_exit(struct cpu *c, const struct ept_result *er, bool final, uint64_t la);

/* state.c — whole-state snapshots for VM transitions. */
void cpu_save_state(struct cpu *c, struct x86_state *st);
void cpu_load_state(struct cpu *c, const struct x86_state *st);
int cpu_gpr_ucreg(unsigned n);

#endif
