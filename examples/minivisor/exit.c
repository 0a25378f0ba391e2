/*
 * The VM-exit handler. vmx_exit_stub (entry.S) saves the guest's GPRs and
 * calls handle_exit(); when it returns, the stub restores them and
 * VMRESUMEs. Instruction exits advance GUEST_RIP past the instruction; an
 * EPT violation is fixed and the faulting instruction runs again.
 */
#include "minivisor.h"
#include "vmx.h"
#include "x86.h"

#define DEBUG_EXIT_PORT 0xF4
#define COM1 0x3F8

uint64_t tsc_at_launch;
static uint64_t exit_count;
static uint64_t exits_by_reason[EXIT_REASON_MAX + 1];

/* Basic exit reasons, SDM Vol. 3C Appendix C (Linux EXIT_REASON_* names). */
static const char *const exit_reason_names[EXIT_REASON_MAX + 1] = {
    [0] = "EXCEPTION_NMI", [1] = "EXTERNAL_INTERRUPT", [2] = "TRIPLE_FAULT",
    [3] = "INIT_SIGNAL", [4] = "SIPI_SIGNAL", [5] = "IO_SMI", [6] = "OTHER_SMI",
    [7] = "INTERRUPT_WINDOW", [8] = "NMI_WINDOW", [9] = "TASK_SWITCH", [10] = "CPUID",
    [11] = "GETSEC", [12] = "HLT", [13] = "INVD", [14] = "INVLPG", [15] = "RDPMC",
    [16] = "RDTSC", [17] = "RSM", [18] = "VMCALL", [19] = "VMCLEAR", [20] = "VMLAUNCH",
    [21] = "VMPTRLD", [22] = "VMPTRST", [23] = "VMREAD", [24] = "VMRESUME", [25] = "VMWRITE",
    [26] = "VMOFF", [27] = "VMON", [28] = "CR_ACCESS", [29] = "DR_ACCESS",
    [30] = "IO_INSTRUCTION", [31] = "MSR_READ", [32] = "MSR_WRITE", [33] = "INVALID_STATE",
    [34] = "MSR_LOAD_FAIL", [36] = "MWAIT_INSTRUCTION", [37] = "MONITOR_TRAP_FLAG",
    [39] = "MONITOR_INSTRUCTION", [40] = "PAUSE_INSTRUCTION", [41] = "MCE_DURING_VMENTRY",
    [43] = "TPR_BELOW_THRESHOLD", [44] = "APIC_ACCESS", [45] = "EOI_INDUCED",
    [46] = "GDTR_IDTR", [47] = "LDTR_TR", [48] = "EPT_VIOLATION", [49] = "EPT_MISCONFIG",
    [50] = "INVEPT", [51] = "RDTSCP", [52] = "PREEMPTION_TIMER", [53] = "INVVPID",
    [54] = "WBINVD", [55] = "XSETBV", [56] = "APIC_WRITE", [57] = "RDRAND", [58] = "INVPCID",
    [59] = "VMFUNC", [60] = "ENCLS", [61] = "RDSEED", [62] = "PML_FULL", [63] = "XSAVES",
    [64] = "XRSTORS", [66] = "SPP", [67] = "UMWAIT", [68] = "TPAUSE", [69] = "LOADIWKEY",
    [70] = "ENCLV", [72] = "ENQCMD_PASID", [73] = "ENQCMDS_PASID", [74] = "BUS_LOCK",
    [75] = "NOTIFY", [76] = "SEAMCALL", [77] = "TDCALL",
};

static const char *exit_reason_name(uint32_t reason)
{
    if (reason <= EXIT_REASON_MAX && exit_reason_names[reason])
        return exit_reason_names[reason];
    return "UNKNOWN";
}

/* Instruction exits: continue after the instruction (SDM Vol. 3C "VM-Exit Instruction Length"). */
static void skip_instruction(uint64_t rip)
{
    uint64_t intr = vmcs_read(GUEST_INTERRUPTIBILITY_INFO);

    vmcs_write(GUEST_RIP, rip + vmcs_read(VM_EXIT_INSTRUCTION_LEN));
    /* Blocking by STI / MOV SS covers only the next instruction, which we just emulated. */
    if (intr & (GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS))
        vmcs_write(GUEST_INTERRUPTIBILITY_INFO,
                   intr & ~(uint64_t)(GUEST_INTR_STATE_STI | GUEST_INTR_STATE_MOV_SS));
}

static void print_summary(void)
{
    printf("[minivisor] %lu exits by reason:\n", exit_count);
    for (uint32_t r = 0; r <= EXIT_REASON_MAX; r++)
        if (exits_by_reason[r])
            printf("[minivisor]   %2u %-16s %lu\n", r, exit_reason_name(r), exits_by_reason[r]);
}

/* ---- The guest's console: a 16550 at COM1 that is always ready ------------ */

static char guest_line[128];
static unsigned guest_line_len;
static uint8_t guest_uart_lcr;

static void guest_console_flush(void)
{
    if (!guest_line_len)
        return;
    guest_line[guest_line_len] = '\0';
    printf("[guest] %s\n", guest_line);
    guest_line_len = 0;
}

/* One line of guest output per console line, so it is not interleaved with the exit log. */
static void guest_console_putc(char c)
{
    if (c == '\n') {
        guest_console_flush();
        return;
    }
    if (c == '\r')
        return;
    guest_line[guest_line_len++] = c;
    if (guest_line_len == sizeof guest_line - 1)
        guest_console_flush();
}

static uint32_t guest_uart_in(unsigned reg)
{
    switch (reg) {
    case 2: return 0x01;            /* IIR: no interrupt pending */
    case 3: return guest_uart_lcr;  /* LCR */
    case 5: return 0x60;            /* LSR: THR empty, transmitter empty */
    case 6: return 0xB0;            /* MSR: DCD, DSR, CTS */
    default: return 0;              /* RBR (no input), IER, MCR, SCR */
    }
}

static void guest_uart_out(unsigned reg, uint8_t v)
{
    if (reg == 0 && !(guest_uart_lcr & 0x80))
        guest_console_putc((char)v); /* THR */
    else if (reg == 3)
        guest_uart_lcr = v;          /* LCR (bit 7: divisor latch access) */
    /* divisor latch, IER, FCR, MCR, SCR: accepted and ignored */
}

/* ---- Exit handlers ---------------------------------------------------------- */

static bool expect(bool ok, const char *what)
{
    if (!ok)
        printf("[minivisor] CHECK FAILED: %s\n", what);
    return ok;
}

/* HLT: the guest is done. Print the summary, check that every demonstrated exit happened. */
static _Noreturn void finish(void)
{
    uint64_t cycles = rdtsc() - tsc_at_launch;
    bool ok = true;

    guest_console_flush();
    if (cfg.touch) {
        volatile uint64_t *first = phys_to_virt(TOUCH_GPA);
        volatile uint64_t *last = phys_to_virt(TOUCH_GPA + (cfg.touch_n - 1) * PAGE_SIZE);
        uint64_t touches = cfg.touch_n * cfg.touch_rounds;

        printf("touch: %lu pages x %lu rounds = %lu page touches, %lu exits\n", cfg.touch_n,
               cfg.touch_rounds, touches, exit_count);
        printf("touch: %lu TSC cycles per touch (%lu in total)\n", cycles / touches, cycles);
        ok = *first == cfg.touch_rounds && *last == cfg.touch_rounds;
        if (!ok)
            printf("[minivisor] CHECK FAILED: first/last page counted %lu/%lu, want %lu\n", *first, *last,
                   cfg.touch_rounds);
        sim_exit(ok ? EXIT_OK : EXIT_UNEXPECTED);
    }
    if (cfg.bench) {
        uint64_t n = exits_by_reason[EXIT_REASON_CPUID];

        printf("bench: %lu cpuid exits\n", n);
        if (n)
            printf("bench: %lu TSC cycles per exit (%lu in total)\n", cycles / n, cycles);
        sim_exit(n == cfg.bench_n ? EXIT_OK : EXIT_UNEXPECTED);
    }
    printf("[minivisor] the guest halted\n");
    print_summary();
    if (vm.hole_hpa)
        printf("[minivisor] the guest's write to gpa 0x%lx is at hpa 0x%lx: 0x%lx\n", vm.hole_gpa,
               vm.hole_hpa, *(volatile uint64_t *)phys_to_virt(vm.hole_hpa));
    ok &= expect(exits_by_reason[EXIT_REASON_CPUID] == 1, "one CPUID exit");
    ok &= expect(exits_by_reason[EXIT_REASON_VMCALL] == 1, "one VMCALL exit");
    ok &= expect(exits_by_reason[EXIT_REASON_EPT_VIOLATION] == 1 && vm.hole_hpa,
                 "one EPT violation, for the write into the hole");
    ok &= expect(vm.hole_hpa &&
                     *(volatile uint64_t *)phys_to_virt(vm.hole_hpa) == GUEST_EPT_MAGIC,
                 "the guest's write reached the page mapped for the hole");
    if (!ok) {
        printf("[minivisor] stopping with exit value 0x%x\n", EXIT_UNEXPECTED);
        sim_exit(EXIT_UNEXPECTED);
    }
    printf("[minivisor] all checks passed, exiting with value 0\n");
    sim_exit(EXIT_OK);
}

/* I/O exit qualification (SDM Vol. 3C "Exit Qualification for I/O Instructions"). */
static void handle_io(struct regs *r, uint64_t qual)
{
    unsigned size = (qual & IO_QUAL_SIZE_MASK) + 1; /* 1, 2 or 4 bytes */
    bool in = qual & IO_QUAL_IN;
    uint16_t port = (uint16_t)(qual >> IO_QUAL_PORT_SHIFT);
    uint32_t mask = size == 4 ? 0xFFFFFFFFu : (1u << (8 * size)) - 1;

    if (qual & IO_QUAL_STRING)
        fail(EXIT_UNEXPECTED, "string I/O (INS/OUTS) to port 0x%x is not emulated", port);
    if (in) {
        uint32_t v = (port >= COM1 && port < COM1 + 8) ? guest_uart_in(port - COM1) : mask;

        v &= mask;
        if (size == 4)
            r->rax = v; /* IN EAX zero-extends into RAX, like any 32-bit destination */
        else
            r->rax = (r->rax & ~(uint64_t)mask) | v;
        return;
    }
    if (port == DEBUG_EXIT_PORT) {
        guest_console_flush();
        printf("[minivisor] the guest wrote 0x%x to the debug-exit port\n",
               (uint32_t)(r->rax & mask));
        sim_exit((uint8_t)r->rax);
    }
    if (port >= COM1 && port < COM1 + 8)
        guest_uart_out(port - COM1, (uint8_t)r->rax);
}

static void handle_cpuid(struct regs *r)
{
    uint32_t leaf = (uint32_t)r->rax, subleaf = (uint32_t)r->rcx;
    uint32_t a, b, c, d;

    cpuid_count(leaf, subleaf, &a, &b, &c, &d);
    if (leaf == 1) {
        /* No nested VMX: hide it. OSXSAVE reports the guest's CR4, not ours. */
        c &= ~(CPUID_1_ECX_VMX | CPUID_1_ECX_OSXSAVE);
        if (vmcs_read(GUEST_CR4) & X86_CR4_OSXSAVE)
            c |= CPUID_1_ECX_OSXSAVE;
    }
    r->rax = a;                /* CPUID writes 32-bit registers: upper halves become 0 */
    r->rbx = b;
    r->rcx = c;
    r->rdx = d;
    if (leaf == 0 && !cfg.bench) {
        char vendor[13];

        memcpy(vendor, &b, 4);
        memcpy(vendor + 4, &d, 4);
        memcpy(vendor + 8, &c, 4);
        vendor[12] = '\0';
        printf("[minivisor] cpuid leaf 0: max leaf 0x%x, vendor \"%s\"\n", a, vendor);
    }
}

/* Hypercalls: RAX = number, RBX = argument; result in RAX (0 = success). */
static void handle_vmcall(struct regs *r)
{
    switch (r->rax) {
    case GUEST_HYPERCALL_HELLO:
        printf("[minivisor] hypercall 1 arg=0x%lx\n", r->rbx);
        r->rax = 0;
        break;
    default:
        printf("[minivisor] unknown hypercall %lu\n", r->rax);
        r->rax = ~UINT64_C(0);
        break;
    }
}

/* EPT-violation qualification (SDM Vol. 3C "Exit Qualification for EPT Violations"). */
static void handle_ept_violation(uint64_t qual)
{
    uint64_t gpa = vmcs_read(GUEST_PHYSICAL_ADDRESS);
    bool gla_valid = qual & EPT_VIOLATION_GVA_IS_VALID;
    uint64_t gla = gla_valid ? vmcs_read(GUEST_LINEAR_ADDRESS) : 0;

    /* A read-modify-write sets both read and write: call it a write. */
    const char *kind = (qual & EPT_VIOLATION_ACC_WRITE)   ? "write"
                       : (qual & EPT_VIOLATION_ACC_INSTR) ? "fetch"
                                                          : "read";
    printf("[minivisor] EPT violation: gpa 0x%lx, gla %s0x%lx, a %s access to a %s address\n",
           gpa, gla_valid ? "" : "(invalid) ", gla, kind,
           (qual & EPT_VIOLATION_RWX_MASK) ? "mapped" : "not-present");
    if (vm.hole_hpa || gpa < vm.hole_gpa || gpa >= vm.hole_gpa + SIZE_2M)
        fail(EXIT_UNEXPECTED, "EPT violation outside the hole (gpa 0x%lx, qualification 0x%lx)",
             gpa, qual);
    ept_map_hole();
    /* No RIP change: the faulting instruction runs again, now with a mapping. */
}

static _Noreturn void handle_exception(uint64_t qual)
{
    uint64_t info = vmcs_read(VM_EXIT_INTR_INFO);
    uint64_t err = (info & INTR_INFO_DELIVER_CODE_MASK) ? vmcs_read(VM_EXIT_INTR_ERROR_CODE) : 0;

    fail(EXIT_UNEXPECTED, "guest exception: vector %lu, type %lu, error code 0x%lx, "
         "qualification (CR2 for #PF) 0x%lx", info & INTR_INFO_VECTOR_MASK,
         (info & INTR_INFO_INTR_TYPE_MASK) >> 8, err, qual);
}

void handle_exit(struct regs *r)
{
    uint32_t full_reason = (uint32_t)vmcs_read(VM_EXIT_REASON);
    uint32_t reason = full_reason & VMX_EXIT_REASON_BASIC_MASK;
    uint64_t qual = vmcs_read(EXIT_QUALIFICATION);
    uint64_t rip = vmcs_read(GUEST_RIP);

    exit_count++;
    if (reason <= EXIT_REASON_MAX)
        exits_by_reason[reason]++;
    if (!cfg.bench && !cfg.touch)
        printf("[minivisor] exit %lu %s rip=0x%lx qual=0x%lx\n", exit_count,
               exit_reason_name(reason), rip, qual);

    /* Bit 31: the VM entry failed while loading guest state (reason 33) or MSRs (34). */
    if (full_reason & VMX_EXIT_REASONS_FAILED_VMENTRY) {
        printf("[minivisor] VM-entry failure: exit reason 0x%x (%s), qualification 0x%lx\n",
               full_reason, exit_reason_name(reason), qual);
        printf("[minivisor] stopping with exit value 0x%x\n", EXIT_VMENTRY_FAILED);
        sim_exit(EXIT_VMENTRY_FAILED);
    }

    switch (reason) {
    case EXIT_REASON_IO_INSTRUCTION:
        handle_io(r, qual);
        skip_instruction(rip);
        break;
    case EXIT_REASON_CPUID:
        handle_cpuid(r);
        skip_instruction(rip);
        break;
    case EXIT_REASON_VMCALL:
        handle_vmcall(r);
        skip_instruction(rip);
        break;
    case EXIT_REASON_EPT_VIOLATION:
        handle_ept_violation(qual);
        break;
    case EXIT_REASON_HLT:
        finish();
    case EXIT_REASON_EXCEPTION_NMI:
        handle_exception(qual);
    default:
        fail(EXIT_UNEXPECTED, "unexpected exit reason %u (%s) at rip 0x%lx, qualification 0x%lx",
             reason, exit_reason_name(reason), rip, qual);
    }
}

/* VMLAUNCH or VMRESUME fell through (entry.S): VMfailInvalid or VMfailValid. */
_Noreturn void vmx_entry_failed(uint64_t rflags, int launch)
{
    const char *insn = launch ? "VMLAUNCH" : "VMRESUME";

    if (rflags & X86_EFLAGS_ZF) {
        uint64_t err = 0;

        (void)vmread_checked(VM_INSTRUCTION_ERROR, &err);
        printf("[minivisor] %s failed: VMfailValid, VM-instruction error %lu (%s)\n", insn, err,
               vmx_insn_error_name(err));
    } else {
        printf("[minivisor] %s failed: VMfailInvalid (rflags 0x%lx)\n", insn, rflags);
    }
    printf("[minivisor] stopping with exit value 0x%x\n", EXIT_VMENTRY_INSN);
    sim_exit(EXIT_VMENTRY_INSN);
}
