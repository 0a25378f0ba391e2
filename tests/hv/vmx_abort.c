/*
 * VMX abort (SDM Vol. 3C §28.4, §28.7): a VM exit stores the guest MSRs
 * listed in the VM-exit MSR-store area; an entry whose index has bits 31:8
 * equal to 000008H (the x2APIC MSRs, here 808H) cannot be stored, and the
 * failure is a VMX abort: the processor writes abort indicator 1 ("failure
 * saving guest MSRs") into the VMCS region and shuts down — the VM exit
 * never reaches the host. vmxsim reports the shutdown on stderr and exits
 * with status 4.
 *
 * The guest exits twice with CPUID: the first exit (empty MSR-store area)
 * comes back normally; before resuming, the host lists a valid MSR
 * (IA32_TSC_AUX) and then 808H in the MSR-store area, so the second exit
 * aborts.
 *
# ARGS: --cpu sapphire-rapids
# EXPECT-OUT: vmx_abort: first CPUID exit came back to the host
# EXPECT-OUT: vmx_abort: resuming; the next exit stores MSRs 0xc0000103 and 0x808
# EXPECT-ERR: VMX abort
# EXPECT-ERR: indicator 1
# EXPECT-EXIT: 4
 */
#include "guest.h"

struct msr_entry {
    uint32_t index, reserved;
    uint64_t value;
};

static void g_two_cpuids(void *a)
{
    (void)a;
    for (int i = 0; i < 2; i++) {
        uint32_t eax = 0, ebx, ecx = 0, edx;
        asm volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx) : : "memory");
    }
}

void hv_test_main(void)
{
    if (!vmx_enable())
        return;
    struct msr_entry *area = alloc_page();
    area[0] = (struct msr_entry){.index = MSR_TSC_AUX};
    area[1] = (struct msr_entry){.index = 0x808}; /* x2APIC TPR: bits 31:8 = 000008H */

    start_guest(g_two_cpuids, NULL, NULL);
    if (!CHECK(ctx.vmfail == VMSUCCEED && ctx.exit_reason == EXIT_CPUID, " %s", vmx_exit_str(&ctx))) {
        report_checks("vmx_abort");
        return;
    }
    printf("vmx_abort: first CPUID exit came back to the host\n");
    vmcs_write(VM_EXIT_MSR_STORE_ADDR, (uint64_t)(uintptr_t)area);
    vmcs_write(VM_EXIT_MSR_STORE_COUNT, 2);
    printf("vmx_abort: resuming; the next exit stores MSRs 0x%x and 0x%x (VMX abort expected)\n", area[0].index,
           area[1].index);
    vmx_skip_and_enter(&ctx);
    /* Not reached on a correct processor: the VM exit above shuts it down. */
    CHECK(false, " the VM exit came back to the host: %s", vmx_exit_str(&ctx));
    report_checks("vmx_abort");
}
