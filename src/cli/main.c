/*
 * vmxsim — command-line front end of libvmxsim.
 *
 *   vmxsim run [IMAGE] [options]     run an image (no IMAGE: the built-in demo)
 *   vmxsim cpu list                  list CPU profiles
 *   vmxsim cpu show NAME[,+f,-f]     show a profile's features
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "vmxsim/vmxsim.h"

extern const unsigned char vmxsim_demo_image[];
extern const size_t vmxsim_demo_image_len;

#define MAX_MODULES 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vmxsim run [IMAGE] [OPTIONS]\n"
            "       vmxsim cpu list\n"
            "       vmxsim cpu show MODEL\n"
            "       vmxsim --help | --version\n"
            "\n"
            "Runs x86-64 hypervisor code in VMX root operation and its guests in\n"
            "non-root operation on a software x86 core (no VT-x needed).\n"
            "\n"
            "IMAGE is a Multiboot v1 kernel (a Multiboot header in its first 8 KiB,\n"
            "ELF32, ELF64 or a.out kludge), or an ELF64 or flat binary entered in\n"
            "64-bit mode (see README \"Boot contract\"). Without IMAGE, vmxsim runs\n"
            "its built-in demo.\n"
            "\n"
            "Options for run:\n"
            "  -m, --mem SIZE        guest RAM, e.g. 256M, 1G, 65536K (default 256M)\n"
            "  -c, --cpu MODEL       CPU profile and feature toggles, e.g.\n"
            "                        sapphire-rapids,-pks or skylake-server,+la57\n"
            "                        (see `vmxsim cpu list`; default %s)\n"
            "  -n, --max-insns N     stop after N guest instructions (exit status 6)\n"
            "  -a, --append CMDLINE  Multiboot command line (64-bit entry: boot info)\n"
            "  -M, --module FILE[=STRING]\n"
            "                        load FILE as a Multiboot module (repeatable);\n"
            "                        STRING is its module string (default: FILE)\n"
            "      --unlocked-feature-control\n"
            "                        leave IA32_FEATURE_CONTROL unlocked at 64-bit entry\n"
            "  -h, --help            this text\n"
            "\n"
            "Guest output (COM1 at 0x3F8 and port 0xE9) goes to stdout; reports\n"
            "(triple fault, VM-entry failures, errors) go to stderr.\n"
            "\n"
            "Exit status: the guest's debug-exit status ((value << 1) | 1, from an\n"
            "OUT to port 0xF4), or 0 when the guest halted or wrote \"Shutdown\" to\n"
            "port 0x8900, 2 bad input (option, image, CPU model), 4 triple fault,\n"
            "6 instruction limit reached, 8 simulator error.\n",
            model_default_name());
}

static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || s[0] == '-')
        return false;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mem", required_argument, NULL, 'm'},      {"cpu", required_argument, NULL, 'c'},
        {"max-insns", required_argument, NULL, 'n'}, {"append", required_argument, NULL, 'a'},
        {"module", required_argument, NULL, 'M'},   {"unlocked-feature-control", no_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct vmxsim_config cfg;
    struct vmxsim_module mods[MAX_MODULES];
    char *modstr[MAX_MODULES];
    size_t nmods = 0;
    int ch, rc = VMXSIM_EXIT_BAD_INPUT;
    vmxsim_config_init(&cfg);
    optind = 1;
    while ((ch = getopt_long(argc, argv, "m:c:n:a:M:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            if (!parse_size(optarg, &cfg.mem_size)) {
                fprintf(stderr, "vmxsim: bad --mem value '%s'\n", optarg);
                goto out;
            }
            break;
        case 'c': cfg.cpu = optarg; break;
        case 'n':
            if (!parse_size(optarg, &cfg.max_insns) || cfg.max_insns == 0) {
                fprintf(stderr, "vmxsim: bad --max-insns value '%s'\n", optarg);
                goto out;
            }
            break;
        case 'a': cfg.cmdline = optarg; break;
        case 'M': {
            if (nmods == MAX_MODULES) {
                fprintf(stderr, "vmxsim: at most %d modules\n", MAX_MODULES);
                goto out;
            }
            char *s = strdup(optarg), *eq = s ? strchr(s, '=') : NULL;
            if (!s)
                goto out;
            if (eq)
                *eq++ = '\0';
            modstr[nmods] = s;
            mods[nmods++] = (struct vmxsim_module){.path = s, .cmdline = eq};
            break;
        }
        case 'U': cfg.feature_control_unlocked = true; break;
        case 'h': usage(stdout); rc = 0; goto out;
        default: usage(stderr); goto out;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "vmxsim: run takes at most one IMAGE\n");
        goto out;
    }
    cfg.modules = mods;
    cfg.n_modules = nmods;

    vmxsim *m;
    vmxsim_err e = vmxsim_create(&cfg, &m);
    if (e == VMXSIM_OK)
        e = optind < argc ? vmxsim_load_file(m, argv[optind])
                          : vmxsim_load_image(m, vmxsim_demo_image, vmxsim_demo_image_len, "demo");
    struct vmxsim_result res;
    if (e == VMXSIM_OK)
        e = vmxsim_run(m, &res);
    if (e != VMXSIM_OK) {
        fprintf(stderr, "vmxsim: %s\n", m && vmxsim_last_error(m)[0] ? vmxsim_last_error(m) : vmxsim_strerror(e));
        rc = (e == VMXSIM_ERR_UNICORN || e == VMXSIM_ERR_INTERNAL || e == VMXSIM_ERR_NOMEM)
                 ? VMXSIM_EXIT_SIM_ERROR
                 : VMXSIM_EXIT_BAD_INPUT;
    } else {
        rc = vmxsim_exit_code(&res);
        if (getenv("VMXSIM_STATS"))
            fprintf(stderr, "vmxsim: %" PRIu64 " instructions, %" PRIu64 " cycles\n", res.insns, res.cycles);
    }
    vmxsim_destroy(m);
out:
    for (size_t i = 0; i < nmods; i++)
        free(modstr[i]);
    return rc;
}

static int cmd_cpu(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "list")) {
        for (size_t i = 0; i < model_profile_count(); i++)
            printf("%-20s %s%s\n", model_profile_name(i), model_profile_desc(i),
                   strcmp(model_profile_name(i), model_default_name()) ? "" : " (default)");
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "show")) {
        struct cpu_model m;
        char err[256];
        if (!model_parse(argv[2], &m, err, sizeof err)) {
            fprintf(stderr, "vmxsim: %s\n", err);
            return VMXSIM_EXIT_BAD_INPUT;
        }
        model_describe(&m, stdout);
        return 0;
    }
    fprintf(stderr, "usage: vmxsim cpu list | vmxsim cpu show MODEL\n");
    return VMXSIM_EXIT_BAD_INPUT;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return VMXSIM_EXIT_BAD_INPUT;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vmxsim 0.1\n");
        return 0;
    }
    if (!strcmp(argv[1], "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "cpu"))
        return cmd_cpu(argc - 1, argv + 1);
    fprintf(stderr, "vmxsim: unknown command '%s' (try --help)\n", argv[1]);
    return VMXSIM_EXIT_BAD_INPUT;
}
