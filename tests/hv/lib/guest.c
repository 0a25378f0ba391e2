/* Common sub-test shapes (guest.h). */
#include "guest.h"

volatile uint64_t g_rip, g_end;
volatile uint64_t g_val[16];
struct vmx_test_ctx ctx;

void start_guest(void (*fn)(void *), void *arg, const struct vmx_extras *ex)
{
    exc_clear();
    exc_return_ok = false;
    g_rip = g_end = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(g_val); i++)
        g_val[i] = 0;
    vmx_ctx_init(&ctx, fn, arg, ex);
    CHECK(!ctx.ctl_unsupported, " a requested control is not supported");
    vmx_enter(&ctx);
}

bool check_exit(uint32_t reason)
{
    bool ok = CHECK(ctx.vmfail == VMSUCCEED && ctx.exit_reason == reason, " want %u (%s), got %s", reason,
                    exit_reason_name(reason), vmx_exit_str(&ctx));
    if (ok) {
        CHECK(ctx.guest_rip == g_rip, " GUEST_RIP 0x%lx, instruction at 0x%lx", ctx.guest_rip, g_rip);
        CHECK(ctx.insn_len == g_end - g_rip, " length %u, want %lu", ctx.insn_len, g_end - g_rip);
    }
    return ok;
}

bool expect_exit(void (*fn)(void *), const struct vmx_extras *ex, uint32_t reason)
{
    start_guest(fn, NULL, ex);
    return check_exit(reason);
}

bool skip_and_finish(void)
{
    vmx_skip_and_enter(&ctx);
    return vmx_finish(&ctx);
}

bool expect_no_exit(void (*fn)(void *), const struct vmx_extras *ex)
{
    start_guest(fn, NULL, ex);
    return vmx_finish(&ctx);
}
