/*
 * VMX bring-up, VMCS set-up and EPT, in the order of the Intel SDM Vol. 3C
 * "Discovering Support for VMX", "Enabling and Entering VMX Operation" and
 * the VM-entry checks of "Checks on VMX Controls and Host-State Area" and
 * "Checks on the Guest State Area".
 */
#include "minivisor.h"
#include "vmx.h"
#include "x86.h"

#define EPT_HOLE_GPA UINT64_C(0x20000000) /* 512 MiB: one 2 MiB region left unmapped */
#define GUEST_VPID 1               /* any non-zero value: VPID 0 is the host's */
#define DEBUG_EXIT_PORT 0xF4
#define COM1_FIRST 0x3F8
#define COM1_LAST 0x3FF

/* Guest segment selectors (the guest GDT below) and VMCS access rights. */
#define GUEST_SEL_CODE 0x08
#define GUEST_SEL_DATA 0x10
#define GUEST_SEL_TSS 0x18
#define AR_CODE64 0xA09B   /* type 11 (exec/read, accessed), S, DPL 0, P, L, G */
#define AR_DATA 0xC093     /* type 3 (read/write, accessed), S, DPL 0, P, D/B, G */
#define AR_TSS_BUSY 0x008B /* type 11 (busy 64-bit TSS), P */
#define AR_UNUSABLE VMX_AR_UNUSABLE_MASK
#define TSS_LIMIT 0x67     /* 104-byte 64-bit TSS */

/* Guest paging-structure entries (SDM Vol. 3A §4.5). */
#define PTE_P (UINT64_C(1) << 0)
#define PTE_RW (UINT64_C(1) << 1)
#define PTE_PS (UINT64_C(1) << 7)

/*
 * Everything the CPU reads by physical address, 4 KiB aligned. Global (not
 * static) so the compiler cannot assume nobody reads what C code stores.
 */
struct vm_pages {
    uint8_t vmxon[PAGE_SIZE];       /* VMXON region */
    uint8_t vmcs[PAGE_SIZE];        /* the guest's VMCS */
    uint8_t io_bitmap_a[PAGE_SIZE]; /* ports 0x0000-0x7FFF, one bit each */
    uint8_t io_bitmap_b[PAGE_SIZE]; /* ports 0x8000-0xFFFF */
    uint8_t msr_bitmap[PAGE_SIZE];  /* all zero: no RDMSR/WRMSR exits */
    uint64_t ept_pml4[512];
    uint64_t ept_pdpt[512];
    uint64_t ept_pd[512];           /* guest-physical 0-1 GiB */
    uint64_t guest_pml4[512];       /* the guest's own page tables */
    uint64_t guest_pdpt[512];
    uint64_t guest_pd[512];         /* guest-linear 0-1 GiB, 2 MiB pages */
    uint8_t guest_idt[PAGE_SIZE];   /* not-present gates: the guest takes no events */
    uint64_t guest_gdt[5];          /* null, code64, data, 16-byte TSS descriptor */
    uint8_t guest_tss[104] __attribute__((aligned(16)));
};
struct vm_pages vm_pages __attribute__((aligned(4096)));

uint8_t guest_stack[16384] __attribute__((aligned(16)));
uint8_t host_stack[16384] __attribute__((aligned(16)));

struct vm vm;
static uint64_t vmx_basic;

/* ---- Error reporting ------------------------------------------------------ */

const char *vmx_insn_error_name(uint64_t err)
{
    /* SDM Vol. 3C "VM Instruction Error Numbers" */
    static const char *const names[] = {
        [1] = "VMCALL executed in VMX root operation",
        [2] = "VMCLEAR with invalid physical address",
        [3] = "VMCLEAR with VMXON pointer",
        [4] = "VMLAUNCH with non-clear VMCS",
        [5] = "VMRESUME with non-launched VMCS",
        [6] = "VMRESUME after VMXOFF",
        [7] = "VM entry with invalid control field(s)",
        [8] = "VM entry with invalid host-state field(s)",
        [9] = "VMPTRLD with invalid physical address",
        [10] = "VMPTRLD with VMXON pointer",
        [11] = "VMPTRLD with incorrect VMCS revision identifier",
        [12] = "VMREAD/VMWRITE from/to unsupported VMCS component",
        [13] = "VMWRITE to read-only VMCS component",
        [15] = "VMXON executed in VMX root operation",
        [16] = "VM entry with invalid executive-VMCS pointer",
        [17] = "VM entry with non-launched executive VMCS",
        [18] = "VM entry with executive-VMCS pointer not VMXON pointer",
        [19] = "VMCALL with non-clear VMCS",
        [20] = "VMCALL with invalid VM-exit control fields",
        [22] = "VMCALL with incorrect MSEG revision identifier",
        [23] = "VMXOFF under dual-monitor treatment of SMIs and SMM",
        [24] = "VMCALL with invalid SMM-monitor features",
        [25] = "VM entry with invalid VM-execution control fields in executive VMCS",
        [26] = "VM entry with events blocked by MOV SS",
        [28] = "invalid operand to INVEPT/INVVPID",
    };

    if (err < sizeof names / sizeof names[0] && names[err])
        return names[err];
    return "unknown VM-instruction error";
}

/* A VMX instruction failed during set-up: say which and why, then stop. */
static _Noreturn void vmx_insn_failed(const char *insn, uint64_t operand, enum vmx_status st)
{
    if (st == VMX_FAIL_VALID) {
        uint64_t err = 0;

        (void)vmread_checked(VM_INSTRUCTION_ERROR, &err);
        fail(EXIT_SETUP_FAILED, "%s 0x%lx: VMfailValid, VM-instruction error %lu (%s)", insn,
             operand, err, vmx_insn_error_name(err));
    }
    fail(EXIT_SETUP_FAILED, "%s 0x%lx: VMfailInvalid (CF = 1)", insn, operand);
}

uint64_t vmcs_read(uint64_t field)
{
    uint64_t value;
    enum vmx_status st = vmread_checked(field, &value);

    if (st != VMX_OK)
        vmx_insn_failed("VMREAD", field, st);
    return value;
}

void vmcs_write(uint64_t field, uint64_t value)
{
    enum vmx_status st = vmwrite_checked(field, value);

    if (st != VMX_OK)
        vmx_insn_failed("VMWRITE", field, st);
}

/* ---- Discovering support for VMX (SDM Vol. 3C §24.6) --------------------- */

static void vmx_discover(void)
{
    uint32_t a, b, c, d;
    char vendor[13];
    uint64_t feat;

    cpuid_count(0, 0, &a, &b, &c, &d);
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = '\0';
    cpuid_count(1, 0, &a, &b, &c, &d);
    if (!(c & CPUID_1_ECX_VMX))
        fail(EXIT_SETUP_FAILED, "%s CPU without VMX (CPUID.1:ECX[5] = 0)", vendor);
    printf("[minivisor] CPU: %s, CPUID.1:ECX.VMX = 1\n", vendor);

    /*
     * IA32_FEATURE_CONTROL: VMXON outside SMX needs bit 2 set and the MSR
     * locked (bit 0). Firmware normally locks it; if not, enable and lock.
     */
    feat = rdmsr(MSR_IA32_FEAT_CTL);
    if (!(feat & FEAT_CTL_LOCKED)) {
        wrmsr(MSR_IA32_FEAT_CTL, feat | FEAT_CTL_LOCKED | FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX);
        printf("[minivisor] IA32_FEATURE_CONTROL was unlocked (0x%lx): enabled VMX outside SMX "
               "and locked it\n", feat);
        feat = rdmsr(MSR_IA32_FEAT_CTL);
    }
    if (!(feat & FEAT_CTL_VMX_ENABLED_OUTSIDE_SMX))
        fail(EXIT_SETUP_FAILED, "IA32_FEATURE_CONTROL = 0x%lx: locked with VMX disabled outside "
             "SMX (enable VT-x in the firmware setup)", feat);
    printf("[minivisor] IA32_FEATURE_CONTROL = 0x%lx (locked, VMX outside SMX)\n", feat);

    /* IA32_VMX_BASIC (SDM Vol. 3D A.1) */
    vmx_basic = rdmsr(MSR_IA32_VMX_BASIC);
    uint64_t size = (vmx_basic >> VMX_BASIC_VMCS_SIZE_SHIFT) & VMX_BASIC_VMCS_SIZE_MASK;
    uint64_t memtype = (vmx_basic >> VMX_BASIC_MEM_TYPE_SHIFT) & VMX_BASIC_MEM_TYPE_MASK;

    if (size == 0 || size > PAGE_SIZE)
        fail(EXIT_SETUP_FAILED, "IA32_VMX_BASIC = 0x%lx: VMCS size %lu", vmx_basic, size);
    printf("[minivisor] IA32_VMX_BASIC = 0x%lx: revision 0x%lx, VMCS %lu bytes, memory type %lu%s\n",
           vmx_basic, vmx_basic & VMX_BASIC_REVISION_MASK, size, memtype,
           (vmx_basic & VMX_BASIC_TRUE_CTLS) ? ", TRUE controls" : "");
    if (memtype != VMX_BASIC_MEM_TYPE_WB)
        printf("[minivisor] note: VMCS memory type %lu is not WB; our regions are WB memory\n",
               memtype);
}

/* ---- Enabling and entering VMX operation (SDM Vol. 3C §24.7) ------------- */

static uint32_t vmcs_revision(void)
{
    return (uint32_t)(vmx_basic & VMX_BASIC_REVISION_MASK); /* bit 31 = 0: ordinary VMCS */
}

static void vmx_enable(void)
{
    uint64_t cr0 = read_cr0(), cr4 = read_cr4();
    uint64_t pa = virt_to_phys(vm_pages.vmxon);
    enum vmx_status st;

    /* Bits fixed in VMX operation (SDM Vol. 3D A.7, A.8): 1 in FIXED0 -> 1, 0 in FIXED1 -> 0. */
    cr0 = (cr0 | rdmsr(MSR_IA32_VMX_CR0_FIXED0)) & rdmsr(MSR_IA32_VMX_CR0_FIXED1);
    write_cr0(cr0);
    cr4 = (cr4 | rdmsr(MSR_IA32_VMX_CR4_FIXED0) | X86_CR4_VMXE) & rdmsr(MSR_IA32_VMX_CR4_FIXED1);
    write_cr4(cr4);
    if (!(read_cr4() & X86_CR4_VMXE))
        fail(EXIT_SETUP_FAILED, "CR4.VMXE did not stick (CR4 = 0x%lx)", read_cr4());
    if ((vmx_basic & VMX_BASIC_32BIT_PHYS_ADDR_ONLY) && (virt_to_phys(&vm_pages + 1) >> 32))
        fail(EXIT_SETUP_FAILED, "VMX structures above 4 GiB, IA32_VMX_BASIC[48] = 1");

    /* VMXON region: 4 KiB aligned, revision identifier in bits 30:0 of the first dword. */
    *(volatile uint32_t *)vm_pages.vmxon = vmcs_revision();
    st = vmxon(pa);
    if (st != VMX_OK)
        vmx_insn_failed("VMXON", pa, st);
    printf("[minivisor] CR0 = 0x%lx, CR4 = 0x%lx; VMXON 0x%lx: in VMX root operation\n", read_cr0(),
           read_cr4(), pa);
}

/* ---- VM-execution, VM-exit and VM-entry controls --------------------------
 * SDM Vol. 3D A.3-A.5: a control may be 0 only if bit X of the capability
 * MSR's low dword is 0 (must-be-one otherwise), and 1 only if bit X of the
 * high dword is 1. With IA32_VMX_BASIC[55] = 1 the TRUE_* MSRs give the
 * exact must-be-one bits (some "default1" controls may then be 0).
 */
static uint32_t adjust_controls(uint32_t msr, uint32_t want)
{
    uint64_t cap = rdmsr(msr);
    uint32_t must_be_one = (uint32_t)cap, may_be_one = (uint32_t)(cap >> 32);

    return (want | must_be_one) & may_be_one;
}

static void require_controls(const char *what, uint32_t have, uint32_t need)
{
    if ((have & need) != need)
        fail(EXIT_SETUP_FAILED, "%s controls: the CPU does not allow 0x%x (result 0x%x)", what,
             need & ~have, have);
}

static void setup_controls(void)
{
    bool true_ctls = vmx_basic & VMX_BASIC_TRUE_CTLS;
    uint32_t proc_need = CPU_BASED_HLT_EXITING | CPU_BASED_USE_IO_BITMAPS |
                         CPU_BASED_USE_MSR_BITMAPS | CPU_BASED_ACTIVATE_SECONDARY_CONTROLS;
    uint32_t proc2_may_be_one, proc2_want = SECONDARY_EXEC_ENABLE_EPT;
    uint64_t cap;

    /* The TRUE_* MSRs exist only if IA32_VMX_BASIC[55] = 1. */
    vm.pin = adjust_controls(true_ctls ? MSR_IA32_VMX_TRUE_PINBASED_CTLS
                                       : MSR_IA32_VMX_PINBASED_CTLS, 0);
    vm.proc = adjust_controls(true_ctls ? MSR_IA32_VMX_TRUE_PROCBASED_CTLS
                                        : MSR_IA32_VMX_PROCBASED_CTLS, proc_need);
    require_controls("primary processor-based", vm.proc, proc_need);

    /*
     * IA32_VMX_PROCBASED_CTLS2 exists only if "activate secondary controls"
     * may be 1 (checked just above); IA32_VMX_EPT_VPID_CAP only if "enable
     * EPT" or "enable VPID" may be 1. Reading either otherwise is a #GP.
     */
    proc2_may_be_one = (uint32_t)(rdmsr(MSR_IA32_VMX_PROCBASED_CTLS2) >> 32);
    require_controls("secondary processor-based", proc2_may_be_one, SECONDARY_EXEC_ENABLE_EPT);
    cap = rdmsr(MSR_IA32_VMX_EPT_VPID_CAP);
    vm.ept_cap = (uint32_t)cap;
    vm.vpid_cap = (uint32_t)(cap >> 32);

    /* VPID only with INVVPID all-context, to flush stale VPID-tagged mappings first (as KVM). */
    if ((proc2_may_be_one & SECONDARY_EXEC_ENABLE_VPID) && (vm.vpid_cap & VMX_VPID_INVVPID_BIT) &&
        (vm.vpid_cap & VMX_VPID_EXTENT_GLOBAL_CONTEXT_BIT))
        proc2_want |= SECONDARY_EXEC_ENABLE_VPID;
    vm.proc2 = adjust_controls(MSR_IA32_VMX_PROCBASED_CTLS2, proc2_want);
    require_controls("secondary processor-based", vm.proc2, SECONDARY_EXEC_ENABLE_EPT);

    vm.exit = adjust_controls(true_ctls ? MSR_IA32_VMX_TRUE_EXIT_CTLS : MSR_IA32_VMX_EXIT_CTLS,
                              VM_EXIT_HOST_ADDR_SPACE_SIZE | VM_EXIT_SAVE_IA32_PAT |
                                  VM_EXIT_LOAD_IA32_PAT | VM_EXIT_SAVE_IA32_EFER |
                                  VM_EXIT_LOAD_IA32_EFER);
    require_controls("VM-exit", vm.exit, VM_EXIT_HOST_ADDR_SPACE_SIZE);

    vm.entry = adjust_controls(true_ctls ? MSR_IA32_VMX_TRUE_ENTRY_CTLS : MSR_IA32_VMX_ENTRY_CTLS,
                               VM_ENTRY_IA32E_MODE | VM_ENTRY_LOAD_IA32_EFER |
                                   VM_ENTRY_LOAD_IA32_PAT);
    require_controls("VM-entry", vm.entry, VM_ENTRY_IA32E_MODE);

    printf("[minivisor] controls: pin 0x%08x proc 0x%08x proc2 0x%08x exit 0x%08x entry 0x%08x\n",
           vm.pin, vm.proc, vm.proc2, vm.exit, vm.entry);
}

/* ---- EPT (SDM Vol. 3C §29.3) ----------------------------------------------
 * 4-level EPT identity-mapping guest-physical [0, 1 GiB) with RWX, write-
 * back 2 MiB pages (4 KiB pages if the CPU has no 2 MiB EPT pages), except
 * the 2 MiB region at EPT_HOLE_GPA, left not-present to show EPT-violation
 * handling. Non-leaf entries: RWX + address. Leaf entries: RWX, memory
 * type in bits 5:3, bit 7 (PS) set in a PDE that maps a 2 MiB page.
 */
static uint64_t ept_leaf(uint64_t hpa)
{
    return hpa | VMX_EPT_RWX_MASK | (X86_MEMTYPE_WB << VMX_EPT_MT_EPTE_SHIFT);
}

/* PD entry mapping the 2 MiB guest-physical region at hpa (a 2 MiB page or a PT of 512 pages). */
static uint64_t ept_pde_for(uint64_t hpa)
{
    uint64_t *pt;

    if (vm.ept_2m)
        return ept_leaf(hpa) | EPT_PAGE_SIZE_BIT;
    pt = alloc_pages(PAGE_SIZE, PAGE_SIZE);
    for (int i = 0; i < 512; i++)
        pt[i] = ept_leaf(hpa + (uint64_t)i * PAGE_SIZE);
    return virt_to_phys(pt) | VMX_EPT_RWX_MASK;
}

static void setup_ept(void)
{
    uint64_t memtype;

    if (!(vm.ept_cap & VMX_EPT_PAGE_WALK_4_BIT))
        fail(EXIT_SETUP_FAILED, "EPT: no 4-level page walk (IA32_VMX_EPT_VPID_CAP[6] = 0)");
    if (vm.ept_cap & VMX_EPTP_WB_BIT)
        memtype = VMX_EPTP_MT_WB;
    else if (vm.ept_cap & VMX_EPTP_UC_BIT)
        memtype = VMX_EPTP_MT_UC;
    else
        fail(EXIT_SETUP_FAILED, "EPT: neither WB nor UC paging-structure memory type");
    vm.ept_2m = vm.ept_cap & VMX_EPT_2MB_PAGE_BIT;
    vm.hole_gpa = EPT_HOLE_GPA;

    vm_pages.ept_pml4[0] = virt_to_phys(vm_pages.ept_pdpt) | VMX_EPT_RWX_MASK;
    vm_pages.ept_pdpt[0] = virt_to_phys(vm_pages.ept_pd) | VMX_EPT_RWX_MASK;
    for (uint64_t i = 0; i < 512; i++) {
        uint64_t gpa = i * SIZE_2M;

        if (gpa != EPT_HOLE_GPA)
            vm_pages.ept_pd[i] = ept_pde_for(gpa); /* identity: hpa = gpa */
    }
    /* EPTP (SDM Vol. 3C "Extended-Page-Table Pointer"): memory type, walk length - 1, PML4 address. */
    vm.eptp = virt_to_phys(vm_pages.ept_pml4) | memtype | VMX_EPTP_PWL_4;
    printf("[minivisor] EPT: 4-level, %s, %s pages, identity map of 0-1 GiB except a hole at "
           "0x%lx; EPTP 0x%lx\n", memtype == VMX_EPTP_MT_WB ? "WB" : "UC",
           vm.ept_2m ? "2 MiB" : "4 KiB", vm.hole_gpa, vm.eptp);
}

/*
 * Touch mode: map the touched region with 4 KiB pages in the guest's page
 * tables and in EPT, so that a translation is a full 4-level guest walk
 * whose every step (and the final address) is a 4-level EPT walk ("4x4").
 * The region is identity-mapped in both, like the rest of 0-1 GiB.
 */
static void setup_touch_region(void)
{
    uint64_t end = TOUCH_GPA + cfg.touch_n * PAGE_SIZE;
    uint64_t limit = cfg.mem_size < vm.hole_gpa ? cfg.mem_size : vm.hole_gpa;
    volatile uint64_t *first = phys_to_virt(TOUCH_GPA);
    volatile uint64_t *last = phys_to_virt(end - PAGE_SIZE);

    if (limit <= TOUCH_GPA || cfg.touch_n > (limit - TOUCH_GPA) / PAGE_SIZE)
        fail(EXIT_SETUP_FAILED, "touch=%lu: 0x%lx + %lu pages goes past 0x%lx (RAM or the EPT hole)",
             cfg.touch_n, TOUCH_GPA, cfg.touch_n, limit);
    for (uint64_t gpa = TOUCH_GPA & ~(SIZE_2M - 1); gpa < end; gpa += SIZE_2M) {
        uint64_t *gpt = alloc_pages(PAGE_SIZE, PAGE_SIZE);
        uint64_t *ept = alloc_pages(PAGE_SIZE, PAGE_SIZE);

        for (uint64_t i = 0; i < 512; i++) {
            gpt[i] = (gpa + i * PAGE_SIZE) | PTE_P | PTE_RW;
            ept[i] = ept_leaf(gpa + i * PAGE_SIZE);
        }
        vm_pages.guest_pd[gpa / SIZE_2M] = virt_to_phys(gpt) | PTE_P | PTE_RW;
        vm_pages.ept_pd[gpa / SIZE_2M] = virt_to_phys(ept) | VMX_EPT_RWX_MASK;
    }
    /* The pages the exit handler checks start at 0 (the others are only counted up). */
    *first = 0;
    *last = 0;
    printf("[minivisor] touch region: gpa 0x%lx-0x%lx, 4 KiB pages in the guest page tables and in EPT\n",
           TOUCH_GPA, end - 1);
}

/*
 * Invalidate the guest-physical and combined mappings derived from our EPT
 * (SDM Vol. 2B INVEPT): single-context if the CPU has it, else all-context.
 */
static void ept_flush(bool verbose)
{
    struct invept_desc desc = { .eptp = vm.eptp, .reserved = 0 };
    enum vmx_status st;
    uint64_t type;

    if (!(vm.ept_cap & VMX_EPT_INVEPT_BIT))
        return; /* no INVEPT: an EPT violation flushes the mappings for its address anyway */
    if (vm.ept_cap & VMX_EPT_EXTENT_CONTEXT_BIT)
        type = VMX_EPT_EXTENT_CONTEXT;
    else if (vm.ept_cap & VMX_EPT_EXTENT_GLOBAL_BIT)
        type = VMX_EPT_EXTENT_GLOBAL;
    else
        return;
    st = invept(type, &desc);
    if (st != VMX_OK)
        vmx_insn_failed("INVEPT type", type, st);
    if (verbose)
        printf("[minivisor] INVEPT %s (EPTP 0x%lx)\n",
               type == VMX_EPT_EXTENT_CONTEXT ? "single-context" : "all-context", vm.eptp);
}

/* Map the hole (demand paging): back it with 2 MiB of RAM above the image. */
void ept_map_hole(void)
{
    uint64_t hpa = virt_to_phys(alloc_pages(SIZE_2M, SIZE_2M));

    vm_pages.ept_pd[vm.hole_gpa / SIZE_2M] = ept_pde_for(hpa);
    vm.hole_hpa = hpa;
    printf("[minivisor] mapped gpa 0x%lx-0x%lx -> hpa 0x%lx (RWX, WB)\n", vm.hole_gpa,
           vm.hole_gpa + SIZE_2M - 1, hpa);
    ept_flush(true);
}

/*
 * VMXON does not invalidate cached mappings: drop whatever an earlier VMX
 * user may have left for our EPTP and VPID before the first VM entry.
 */
static void flush_stale_mappings(void)
{
    struct invvpid_desc vd = { 0, 0 };
    enum vmx_status st;

    ept_flush(false);
    if (vm.proc2 & SECONDARY_EXEC_ENABLE_VPID) {
        st = invvpid(VMX_VPID_EXTENT_ALL_CONTEXT, &vd);
        if (st != VMX_OK)
            vmx_insn_failed("INVVPID type", VMX_VPID_EXTENT_ALL_CONTEXT, st);
    }
}

/* ---- I/O bitmaps (SDM Vol. 3C "I/O-Bitmap Addresses") --------------------
 * Bitmap A covers ports 0x0000-0x7FFF, B 0x8000-0xFFFF; bit (port % 0x8000)
 * set = IN/OUT to that port exits.
 */
static void io_bitmap_trap(uint16_t port)
{
    uint8_t *bitmap = port < 0x8000 ? vm_pages.io_bitmap_a : vm_pages.io_bitmap_b;
    unsigned bit = port & 0x7FFF;

    bitmap[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/* ---- Host state (SDM Vol. 3C "Host-State Area") --------------------------- */

/* Base of the 16-byte TSS descriptor TR selects (SDM Vol. 3A "TSS Descriptor in 64-bit mode"). */
static uint64_t tss_base(const struct desc_ptr *gdtr, uint16_t tr)
{
    uint64_t off = tr & ~7u;
    const uint8_t *d = phys_to_virt(gdtr->base + off);

    if (off + 15 > gdtr->limit)
        fail(EXIT_SETUP_FAILED, "TR 0x%x outside the GDT (limit 0x%x)", tr, gdtr->limit);
    return (uint64_t)d[2] | (uint64_t)d[3] << 8 | (uint64_t)d[4] << 16 | (uint64_t)d[7] << 24 |
           (uint64_t)d[8] << 32 | (uint64_t)d[9] << 40 | (uint64_t)d[10] << 48 |
           (uint64_t)d[11] << 56;
}

static void setup_host_state(void)
{
    struct desc_ptr gdtr, idtr;
    uint16_t cs = READ_SEG(cs), ss = READ_SEG(ss), ds = READ_SEG(ds), es = READ_SEG(es);
    uint16_t fs = READ_SEG(fs), gs = READ_SEG(gs), tr = str();

    sgdt(&gdtr);
    sidt(&idtr);
    /* VM-entry checks: RPL = TI = 0 in every host selector; CS and TR not null. */
    if (((cs | ss | ds | es | fs | gs | tr) & 7) || !cs || !tr)
        fail(EXIT_SETUP_FAILED, "host selectors unusable: cs 0x%x ss 0x%x ds 0x%x es 0x%x "
             "fs 0x%x gs 0x%x tr 0x%x", cs, ss, ds, es, fs, gs, tr);

    vmcs_write(HOST_CR0, read_cr0());
    vmcs_write(HOST_CR3, read_cr3());
    vmcs_write(HOST_CR4, read_cr4());
    vmcs_write(HOST_CS_SELECTOR, cs);
    vmcs_write(HOST_SS_SELECTOR, ss);
    vmcs_write(HOST_DS_SELECTOR, ds);
    vmcs_write(HOST_ES_SELECTOR, es);
    vmcs_write(HOST_FS_SELECTOR, fs);
    vmcs_write(HOST_GS_SELECTOR, gs);
    vmcs_write(HOST_TR_SELECTOR, tr);
    vmcs_write(HOST_FS_BASE, rdmsr(MSR_FS_BASE));
    vmcs_write(HOST_GS_BASE, rdmsr(MSR_GS_BASE));
    vmcs_write(HOST_TR_BASE, tss_base(&gdtr, tr));
    vmcs_write(HOST_GDTR_BASE, gdtr.base);
    vmcs_write(HOST_IDTR_BASE, idtr.base);
    vmcs_write(HOST_IA32_SYSENTER_CS, (uint32_t)rdmsr(MSR_IA32_SYSENTER_CS));
    vmcs_write(HOST_IA32_SYSENTER_ESP, rdmsr(MSR_IA32_SYSENTER_ESP));
    vmcs_write(HOST_IA32_SYSENTER_EIP, rdmsr(MSR_IA32_SYSENTER_EIP));
    if (vm.exit & VM_EXIT_LOAD_IA32_EFER)
        vmcs_write(HOST_IA32_EFER, rdmsr(MSR_EFER));
    if (vm.exit & VM_EXIT_LOAD_IA32_PAT)
        vmcs_write(HOST_IA32_PAT, rdmsr(MSR_IA32_CR_PAT));
    vmcs_write(HOST_RSP, virt_to_phys(host_stack + sizeof host_stack));
    vmcs_write(HOST_RIP, virt_to_phys(vmx_exit_stub));
}

/* ---- Guest state (SDM Vol. 3C "Guest-State Area", "Checks on the Guest State Area") */

/* The guest's own page tables: guest-linear 0-1 GiB -> guest-physical, identity, 2 MiB pages. */
static uint64_t setup_guest_page_tables(void)
{
    vm_pages.guest_pml4[0] = virt_to_phys(vm_pages.guest_pdpt) | PTE_P | PTE_RW;
    vm_pages.guest_pdpt[0] = virt_to_phys(vm_pages.guest_pd) | PTE_P | PTE_RW;
    for (uint64_t i = 0; i < 512; i++)
        vm_pages.guest_pd[i] = i * SIZE_2M | PTE_P | PTE_RW | PTE_PS;
    return virt_to_phys(vm_pages.guest_pml4);
}

/* The guest GDT, matching the VMCS segment state (VM entry reads only the VMCS). */
static void setup_guest_gdt(void)
{
    uint64_t tss = virt_to_phys(vm_pages.guest_tss);

    vm_pages.guest_gdt[0] = 0;
    vm_pages.guest_gdt[1] = UINT64_C(0x00AF9B000000FFFF); /* 0x08: code64, AR 0xA09B */
    vm_pages.guest_gdt[2] = UINT64_C(0x00CF93000000FFFF); /* 0x10: data, AR 0xC093 */
    vm_pages.guest_gdt[3] = TSS_LIMIT | (tss & 0xFFFFFF) << 16 | (uint64_t)AR_TSS_BUSY << 40 |
                            ((tss >> 24) & 0xFF) << 56; /* 0x18: busy 64-bit TSS */
    vm_pages.guest_gdt[4] = tss >> 32;
    /* I/O map base = limit + 1: no I/O permission bitmap (the guest runs at CPL 0 anyway). */
    vm_pages.guest_tss[102] = TSS_LIMIT + 1;
    vm_pages.guest_tss[103] = 0;
}

struct seg_fields {
    uint32_t selector, base, limit, ar;
};

static const struct seg_fields guest_segs[] = {
    { GUEST_ES_SELECTOR, GUEST_ES_BASE, GUEST_ES_LIMIT, GUEST_ES_AR_BYTES },
    { GUEST_CS_SELECTOR, GUEST_CS_BASE, GUEST_CS_LIMIT, GUEST_CS_AR_BYTES },
    { GUEST_SS_SELECTOR, GUEST_SS_BASE, GUEST_SS_LIMIT, GUEST_SS_AR_BYTES },
    { GUEST_DS_SELECTOR, GUEST_DS_BASE, GUEST_DS_LIMIT, GUEST_DS_AR_BYTES },
    { GUEST_FS_SELECTOR, GUEST_FS_BASE, GUEST_FS_LIMIT, GUEST_FS_AR_BYTES },
    { GUEST_GS_SELECTOR, GUEST_GS_BASE, GUEST_GS_LIMIT, GUEST_GS_AR_BYTES },
    { GUEST_LDTR_SELECTOR, GUEST_LDTR_BASE, GUEST_LDTR_LIMIT, GUEST_LDTR_AR_BYTES },
    { GUEST_TR_SELECTOR, GUEST_TR_BASE, GUEST_TR_LIMIT, GUEST_TR_AR_BYTES },
};
enum { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_LDTR, SEG_TR };

static void guest_seg(int seg, uint16_t selector, uint64_t base, uint32_t limit, uint32_t ar)
{
    vmcs_write(guest_segs[seg].selector, selector);
    vmcs_write(guest_segs[seg].base, base);
    vmcs_write(guest_segs[seg].limit, limit);
    vmcs_write(guest_segs[seg].ar, ar);
}

static void setup_guest_state(void)
{
    uint64_t cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG;
    uint64_t cr4 = X86_CR4_PAE;

    /* Guest CR0/CR4 obey the same fixed bits (no unrestricted guest: PE = PG = 1, VMXE = 1). */
    cr0 = (cr0 | rdmsr(MSR_IA32_VMX_CR0_FIXED0)) & rdmsr(MSR_IA32_VMX_CR0_FIXED1);
    cr4 = (cr4 | rdmsr(MSR_IA32_VMX_CR4_FIXED0)) & rdmsr(MSR_IA32_VMX_CR4_FIXED1);
    vmcs_write(GUEST_CR0, cr0);
    vmcs_write(GUEST_CR3, setup_guest_page_tables());
    vmcs_write(GUEST_CR4, cr4);
    vmcs_write(CR0_GUEST_HOST_MASK, 0); /* the guest owns every CR0/CR4 bit */
    vmcs_write(CR4_GUEST_HOST_MASK, 0);
    vmcs_write(CR0_READ_SHADOW, cr0);
    vmcs_write(CR4_READ_SHADOW, cr4);
    vmcs_write(GUEST_DR7, 0x400);       /* DR7 reset value */
    vmcs_write(GUEST_IA32_DEBUGCTL, 0);

    setup_guest_gdt();
    guest_seg(SEG_CS, GUEST_SEL_CODE, 0, 0xFFFFFFFF, AR_CODE64);
    guest_seg(SEG_SS, GUEST_SEL_DATA, 0, 0xFFFFFFFF, AR_DATA);
    guest_seg(SEG_DS, GUEST_SEL_DATA, 0, 0xFFFFFFFF, AR_DATA);
    guest_seg(SEG_ES, GUEST_SEL_DATA, 0, 0xFFFFFFFF, AR_DATA);
    guest_seg(SEG_FS, GUEST_SEL_DATA, 0, 0xFFFFFFFF, AR_DATA);
    guest_seg(SEG_GS, GUEST_SEL_DATA, 0, 0xFFFFFFFF, AR_DATA);
    guest_seg(SEG_LDTR, 0, 0, 0, AR_UNUSABLE);
    guest_seg(SEG_TR, GUEST_SEL_TSS, virt_to_phys(vm_pages.guest_tss), TSS_LIMIT, AR_TSS_BUSY);
    vmcs_write(GUEST_GDTR_BASE, virt_to_phys(vm_pages.guest_gdt));
    vmcs_write(GUEST_GDTR_LIMIT, sizeof vm_pages.guest_gdt - 1);
    vmcs_write(GUEST_IDTR_BASE, virt_to_phys(vm_pages.guest_idt));
    vmcs_write(GUEST_IDTR_LIMIT, sizeof vm_pages.guest_idt - 1);

    vmcs_write(GUEST_SYSENTER_CS, 0);
    vmcs_write(GUEST_SYSENTER_ESP, 0);
    vmcs_write(GUEST_SYSENTER_EIP, 0);
    /* The fields exist when either of their controls does; write them when we use them. */
    if ((vm.entry & VM_ENTRY_LOAD_IA32_EFER) || (vm.exit & VM_EXIT_SAVE_IA32_EFER))
        vmcs_write(GUEST_IA32_EFER, EFER_LME | EFER_LMA); /* LMA = "IA-32e mode guest" */
    if ((vm.entry & VM_ENTRY_LOAD_IA32_PAT) || (vm.exit & VM_EXIT_SAVE_IA32_PAT))
        vmcs_write(GUEST_IA32_PAT, PAT_POWER_ON_VALUE);

    vmcs_write(GUEST_RSP, virt_to_phys(guest_stack + sizeof guest_stack));
    vmcs_write(GUEST_RIP, virt_to_phys(guest_start));
    vmcs_write(GUEST_RFLAGS, X86_EFLAGS_FIXED); /* IF = 0: the guest takes no interrupts */
    vmcs_write(GUEST_ACTIVITY_STATE, GUEST_ACTIVITY_ACTIVE);
    vmcs_write(GUEST_INTERRUPTIBILITY_INFO, 0);
    vmcs_write(GUEST_PENDING_DBG_EXCEPTIONS, 0);
    vmcs_write(VMCS_LINK_POINTER, ~UINT64_C(0)); /* no shadow VMCS */
}

/* ---- Control fields -------------------------------------------------------- */

static void setup_control_fields(void)
{
    for (uint16_t port = COM1_FIRST; port <= COM1_LAST; port++)
        io_bitmap_trap(port);
    io_bitmap_trap(DEBUG_EXIT_PORT);

    vmcs_write(PIN_BASED_VM_EXEC_CONTROL, vm.pin);
    vmcs_write(CPU_BASED_VM_EXEC_CONTROL, vm.proc);
    vmcs_write(SECONDARY_VM_EXEC_CONTROL, vm.proc2);
    vmcs_write(VM_EXIT_CONTROLS, vm.exit);
    vmcs_write(VM_ENTRY_CONTROLS, vm.entry);
    /* Every guest exception exits (#PF: error-code mask = match = 0, so all match). */
    vmcs_write(EXCEPTION_BITMAP, 0xFFFFFFFF);
    vmcs_write(PAGE_FAULT_ERROR_CODE_MASK, 0);
    vmcs_write(PAGE_FAULT_ERROR_CODE_MATCH, 0);
    vmcs_write(CR3_TARGET_COUNT, 0);
    vmcs_write(IO_BITMAP_A, virt_to_phys(vm_pages.io_bitmap_a));
    vmcs_write(IO_BITMAP_B, virt_to_phys(vm_pages.io_bitmap_b));
    vmcs_write(MSR_BITMAP, virt_to_phys(vm_pages.msr_bitmap));
    vmcs_write(VM_EXIT_MSR_STORE_COUNT, 0);
    vmcs_write(VM_EXIT_MSR_LOAD_COUNT, 0);
    vmcs_write(VM_ENTRY_MSR_LOAD_COUNT, 0);
    vmcs_write(VM_ENTRY_INTR_INFO_FIELD, 0); /* no event injection */
    vmcs_write(VM_ENTRY_EXCEPTION_ERROR_CODE, 0);
    vmcs_write(VM_ENTRY_INSTRUCTION_LEN, 0);
    vmcs_write(EPT_POINTER, vm.eptp);
    if (vm.proc2 & SECONDARY_EXEC_ENABLE_VPID)
        vmcs_write(VIRTUAL_PROCESSOR_ID, GUEST_VPID);
}

void vmx_init(void)
{
    uint64_t vmcs_pa = virt_to_phys(vm_pages.vmcs);
    enum vmx_status st;

    vmx_discover();
    vmx_enable();
    setup_controls();
    setup_ept();
    flush_stale_mappings();

    /* A new VMCS: revision identifier, VMCLEAR (launch state "clear"), VMPTRLD (current). */
    *(volatile uint32_t *)vm_pages.vmcs = vmcs_revision();
    st = vmclear(vmcs_pa);
    if (st != VMX_OK)
        vmx_insn_failed("VMCLEAR", vmcs_pa, st);
    st = vmptrld(vmcs_pa);
    if (st != VMX_OK)
        vmx_insn_failed("VMPTRLD", vmcs_pa, st);

    setup_control_fields();
    setup_host_state();
    setup_guest_state();
    if (cfg.touch)
        setup_touch_region();
    printf("[minivisor] VMCS 0x%lx ready%s; guest rip 0x%lx rsp 0x%lx cr3 0x%lx\n", vmcs_pa,
           (vm.proc2 & SECONDARY_EXEC_ENABLE_VPID) ? ", VPID 1" : "", vmcs_read(GUEST_RIP),
           vmcs_read(GUEST_RSP), vmcs_read(GUEST_CR3));
}

_Noreturn void vmx_run_guest(void)
{
    struct regs guest = { 0 };

    /* The VMCS has no GPRs besides RSP: the guest's arguments go in through vmx_launch. */
    guest.rdi = cfg.touch ? cfg.touch_n : cfg.bench_n;
    guest.rsi = cfg.touch ? GUEST_MODE_TOUCH : cfg.bench ? GUEST_MODE_CPUID_BENCH : GUEST_MODE_DEMO;
    guest.rdx = cfg.touch_rounds;
    if (!cfg.bench && !cfg.touch)
        printf("[minivisor] VMLAUNCH\n");
    tsc_at_launch = rdtsc();
    vmx_launch(&guest);
}
