/* vmxsim_strerror: one message per vmxsim_err value (STYLE 9). */
#include "vmxsim/vmxsim.h"

const char *vmxsim_strerror(vmxsim_err err)
{
    static const char *const msg[VMXSIM_ERR_COUNT] = {
        [VMXSIM_OK] = "success",
        [VMXSIM_ERR_NOMEM] = "out of memory",
        [VMXSIM_ERR_IO] = "file could not be read or written",
        [VMXSIM_ERR_BAD_IMAGE] = "bad image",
        [VMXSIM_ERR_BAD_ARG] = "invalid argument",
        [VMXSIM_ERR_CPU_MODEL] = "invalid CPU model",
        [VMXSIM_ERR_UNICORN] = "the Unicorn engine refused an operation",
        [VMXSIM_ERR_STATE] = "operation not valid in this state",
        [VMXSIM_ERR_INTERNAL] = "internal error (a vmxsim bug)",
    };
    if ((unsigned)err >= VMXSIM_ERR_COUNT || !msg[err])
        return "unknown error";
    return msg[err];
}
