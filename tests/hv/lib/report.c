/*
 * Sub-test reporting. Output, one line per sub-test:
 *   PASS <name>
 *   FAIL <name> (<condition>: <details>)
 * A name ending in "_KNOWN_BUG" marks a documented vmxsim bug: FAIL is
 * expected and does not fail the program; PASS means the bug is gone and
 * fails the program until the suffix is removed (like an XPASS).
 * At the end: a SUMMARY line, then OUT 0 (all good) or 1 to port 0xF4.
 */
#include "hv.h"

#define KNOWN_BUG_SUFFIX "_KNOWN_BUG"

static unsigned n_pass, n_fail, n_known_fail, n_known_pass, n_skip;
static bool check_failed;
static char check_detail[320];

static bool is_known_bug(const char *name)
{
    size_t n = strlen(name), k = sizeof KNOWN_BUG_SUFFIX - 1;
    return n >= k && !strcmp(name + n - k, KNOWN_BUG_SUFFIX);
}

static void emit(const char *name, bool pass, const char *detail)
{
    bool known = is_known_bug(name);
    if (pass) {
        printf("PASS %s\n", name);
        if (known) {
            n_known_pass++;
            printf("  ^ known bug no longer reproduces: remove the %s suffix\n", KNOWN_BUG_SUFFIX);
        } else {
            n_pass++;
        }
    } else {
        printf("FAIL %s (%s)\n", name, detail);
        if (known)
            n_known_fail++;
        else
            n_fail++;
    }
}

void hv_report(const char *name, bool pass, const char *cond, const char *fmt, ...)
{
    char extra[200], detail[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof extra, fmt, ap);
    va_end(ap);
    if (strcmp(extra, " ") == 0)
        snprintf(detail, sizeof detail, "%s", cond);
    else
        snprintf(detail, sizeof detail, "%s:%s", cond, extra);
    emit(name, pass, detail);
}

bool hv_check(bool ok, int line, const char *cond, const char *fmt, ...)
{
    char extra[220];
    va_list ap;
    if (ok || check_failed)
        return ok;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof extra, fmt, ap);
    va_end(ap);
    check_failed = true;
    if (line)
        snprintf(check_detail, sizeof check_detail, "line %d: %s:%s", line, cond, extra);
    else
        snprintf(check_detail, sizeof check_detail, "%s:%s", cond, extra);
    return ok;
}

void report_checks(const char *name)
{
    emit(name, !check_failed, check_detail);
    check_failed = false;
    check_detail[0] = 0;
}

void report_skip(const char *name, const char *why)
{
    printf("SKIP %s (%s)\n", name, why);
    n_skip++;
}

void report_info(const char *fmt, ...)
{
    va_list ap;
    printf("INFO ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

__attribute__((noreturn)) void hv_report_summary_and_exit(void)
{
    if (check_failed) /* checks recorded outside any sub-test */
        report_checks("unreported_checks");
    printf("SUMMARY: %u passed, %u failed, %u known bugs failing, %u known bugs passing, %u skipped\n", n_pass,
           n_fail, n_known_fail, n_known_pass, n_skip);
    hv_exit(n_fail || n_known_pass ? 1 : 0);
}
