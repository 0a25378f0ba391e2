/*
 * The baseline: run a flat 64-bit image under bare Unicorn (no hooks, no
 * paging, default TLB) until its `out %al, $0xf4`, and print the seconds.
 * usage: bare_unicorn IMAGE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unicorn/unicorn.h>

#define LOAD 0x100000ull
#define MEM (64ull << 20)

int main(int argc, char **argv)
{
    static unsigned char img[1 << 16];
    FILE *f = argc == 2 ? fopen(argv[1], "rb") : NULL;
    if (!f) {
        fprintf(stderr, "usage: bare_unicorn IMAGE\n");
        return 2;
    }
    size_t n = fread(img, 1, sizeof img, f);
    fclose(f);
    size_t exit_off = 0;
    for (size_t i = n; i-- > 1;)
        if (img[i - 1] == 0xE6 && img[i] == 0xF4) { /* out %al, $0xf4 */
            exit_off = i - 1;
            break;
        }
    uc_engine *uc;
    if (!exit_off || uc_open(UC_ARCH_X86, UC_MODE_64, &uc) || uc_mem_map(uc, 0, MEM, UC_PROT_ALL) ||
        uc_mem_write(uc, LOAD, img, n)) {
        fprintf(stderr, "bare_unicorn: set-up failed\n");
        return 1;
    }
    uint64_t rsp = 0x80000;
    uc_reg_write(uc, UC_X86_REG_RSP, &rsp);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    uc_err e = uc_emu_start(uc, LOAD, LOAD + exit_off, 0, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (e) {
        fprintf(stderr, "bare_unicorn: %s\n", uc_strerror(e));
        return 1;
    }
    printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    uc_close(uc);
    return 0;
}
