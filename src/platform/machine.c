/*
 * The machine behind the public API: guest RAM, devices, the CPU core and
 * the image loaders, wired together (DESIGN §1).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu/cpu.h"
#include "platform/devices.h"
#include "platform/platform.h"

#define DEFAULT_MEM (256ull << 20)
#define MIN_MEM (2ull << 20)
#define MAX_MEM (64ull << 30)

struct vmxsim {
    struct vmxsim_config cfg;
    struct cpu_model model;
    struct plat_ram ram;
    struct plat_devices dev;
    struct cpu *cpu;
    bool loaded;
    char err[512];
};

static void set_err(vmxsim *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, sizeof m->err, fmt, ap);
    va_end(ap);
}

void vmxsim_config_init(struct vmxsim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->mem_size = DEFAULT_MEM;
}

const char *vmxsim_last_error(const vmxsim *m) { return m ? m->err : "no machine"; }

static vmxsim_err create_cpu(vmxsim *m)
{
    struct cpu_config cc = {
        .model = &m->model,
        .ram = m->ram.base,
        .ram_size = m->ram.size,
        .io = {.ctx = &m->dev, .in = plat_io_in, .out = plat_io_out},
        .max_insns = m->cfg.max_insns,
        .feature_control_unlocked = m->cfg.feature_control_unlocked,
        .log = m->cfg.log,
    };
    vmxsim_err r = cpu_create(&cc, &m->cpu, m->err, sizeof m->err);
    if (r == VMXSIM_OK)
        plat_devices_init(&m->dev, m->cfg.console, m->cpu);
    return r;
}

vmxsim_err vmxsim_create(const struct vmxsim_config *cfg, vmxsim **out)
{
    vmxsim *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m)
        return VMXSIM_ERR_NOMEM;
    m->cfg = *cfg;
    if (!m->cfg.console)
        m->cfg.console = stdout;
    if (!m->cfg.log)
        m->cfg.log = stderr;
    *out = m;
    if (cfg->mem_size < MIN_MEM || cfg->mem_size > MAX_MEM || (cfg->mem_size & 0xFFF)) {
        set_err(m, "memory size must be a multiple of 4 KiB between 2 MiB and 64 GiB");
        return VMXSIM_ERR_BAD_ARG;
    }
    if (!model_parse(cfg->cpu ? cfg->cpu : model_default_name(), &m->model, m->err, sizeof m->err))
        return VMXSIM_ERR_CPU_MODEL;
    m->ram.size = cfg->mem_size;
    void *p = mmap(NULL, m->ram.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        set_err(m, "cannot allocate %llu bytes of guest RAM", (unsigned long long)m->ram.size);
        return VMXSIM_ERR_NOMEM;
    }
    m->ram.base = p;
    return create_cpu(m);
}

void vmxsim_destroy(vmxsim *m)
{
    if (!m)
        return;
    cpu_destroy(m->cpu);
    if (m->ram.base)
        munmap(m->ram.base, m->ram.size);
    free(m);
}

static vmxsim_err read_file(vmxsim *m, const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    *buf = NULL;
    *len = 0;
    if (!f) {
        set_err(m, "cannot open %s: %s", path, strerror(errno));
        return VMXSIM_ERR_IO;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    for (;;) {
        if (!b) {
            fclose(f);
            set_err(m, "out of memory reading %s", path);
            return VMXSIM_ERR_NOMEM;
        }
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        uint8_t *nb = realloc(b, cap);
        if (!nb)
            free(b);
        b = nb;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        set_err(m, "error reading %s", path);
        return VMXSIM_ERR_IO;
    }
    *buf = b;
    *len = n;
    return VMXSIM_OK;
}

vmxsim_err vmxsim_load_image(vmxsim *m, const void *image, size_t len, const char *name)
{
    struct plat_module *mods = NULL;
    uint8_t **bufs = NULL;
    struct plat_boot boot;
    char err[256] = "";
    vmxsim_err r = VMXSIM_OK;
    if (m->loaded) {
        set_err(m, "an image is already loaded");
        return VMXSIM_ERR_STATE;
    }
    if (m->cfg.n_modules) {
        mods = calloc(m->cfg.n_modules, sizeof *mods);
        bufs = calloc(m->cfg.n_modules, sizeof *bufs);
        if (!mods || !bufs) {
            r = VMXSIM_ERR_NOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < m->cfg.n_modules; i++) {
        r = read_file(m, m->cfg.modules[i].path, &bufs[i], &mods[i].len);
        if (r != VMXSIM_OK)
            goto out;
        mods[i].data = bufs[i];
        mods[i].cmdline = m->cfg.modules[i].cmdline ? m->cfg.modules[i].cmdline : m->cfg.modules[i].path;
    }
    struct plat_load_opts opts = {.cmdline = m->cfg.cmdline, .modules = mods, .n_modules = m->cfg.n_modules};
    r = plat_load(&m->ram, image, len, &opts, &boot, err, sizeof err);
    if (r != VMXSIM_OK) {
        set_err(m, "%s: %s", name ? name : "image", err[0] ? err : vmxsim_strerror(r));
        goto out;
    }
    r = cpu_load_boot_state(m->cpu, &boot.cpu);
    if (r == VMXSIM_OK)
        m->loaded = true;
out:
    for (size_t i = 0; bufs && i < m->cfg.n_modules; i++)
        free(bufs[i]);
    free(bufs);
    free(mods);
    return r;
}

vmxsim_err vmxsim_load_file(vmxsim *m, const char *path)
{
    uint8_t *buf;
    size_t len;
    vmxsim_err r = read_file(m, path, &buf, &len);
    if (r != VMXSIM_OK)
        return r;
    r = vmxsim_load_image(m, buf, len, path);
    free(buf);
    return r;
}

vmxsim_err vmxsim_run(vmxsim *m, struct vmxsim_result *res)
{
    if (!m->loaded) {
        set_err(m, "no image loaded");
        return VMXSIM_ERR_STATE;
    }
    vmxsim_err r = cpu_run(m->cpu, res);
    fflush(m->cfg.console);
    fflush(m->cfg.log);
    return r;
}

int vmxsim_exit_code(const struct vmxsim_result *res)
{
    switch (res->stop) {
    case VMXSIM_STOP_DEBUG_EXIT: return res->exit_status & 0xFF;
    case VMXSIM_STOP_SHUTDOWN:
    case VMXSIM_STOP_HALT: return VMXSIM_EXIT_OK;
    case VMXSIM_STOP_TRIPLE_FAULT: return VMXSIM_EXIT_TRIPLE_FAULT;
    case VMXSIM_STOP_INSN_LIMIT: return VMXSIM_EXIT_INSN_LIMIT;
    default: return VMXSIM_EXIT_SIM_ERROR;
    }
}
