/* Backend registry and op dispatchers. See include/de_backend.h. */
#include "de_backend.h"

#include <stdio.h>
#include <string.h>

#define DISPATCH(fn, slot, type)                                              \
    de_status fn(de_backend *be, const type *op) {                            \
        if (!be || !op) return DE_ERR_INVALID;                                \
        if (!be->iface.slot) return DE_ERR_UNSUPPORTED;                       \
        return be->iface.slot(be, op);                                        \
    }

DISPATCH(de_gemm, gemm, de_gemm_op)
DISPATCH(de_conv2d, conv2d, de_conv2d_op)
DISPATCH(de_group_norm, group_norm, de_group_norm_op)
DISPATCH(de_layer_norm, layer_norm, de_layer_norm_op)
DISPATCH(de_softmax, softmax, de_softmax_op)
DISPATCH(de_attention, attention, de_attention_op)
DISPATCH(de_unary, unary, de_unary_op)
DISPATCH(de_geglu, geglu, de_geglu_op)
DISPATCH(de_binary, binary, de_binary_op)
DISPATCH(de_upsample, upsample, de_upsample_op)
DISPATCH(de_transpose, transpose, de_transpose_op)

void de_backend_free(de_backend *be) {
    if (be && be->iface.free) be->iface.free(be);
}

const char *de_backend_name(de_backend *be) {
    return (be && be->iface.get_name) ? be->iface.get_name(be) : "none";
}

const char *de_backend_last_error(de_backend *be) {
    const char *e = (be && be->iface.last_error) ? be->iface.last_error(be) : NULL;
    return e ? e : "";
}

static void set_err(char *err, size_t len, const char *msg) {
    if (err && len) snprintf(err, len, "%s", msg);
}

de_backend *de_backend_load(const char *name, int device, int n_threads, char *err, size_t err_len) {
    set_err(err, err_len, "");
    if (!name || !*name) name = "auto";
    if (strcmp(name, "cpu") == 0) return de_backend_cpu_init(n_threads);
    if (strcmp(name, "auto") != 0 && strcmp(name, "cuda") != 0) {
        set_err(err, err_len, "unknown backend name (use auto, cpu or cuda)");
        return NULL;
    }
    (void)device;
    /* The CUDA provider loader lands with the CUDA issue. */
    if (strcmp(name, "cuda") == 0) {
        set_err(err, err_len, "CUDA provider libdiffedit_cuda.so not found");
        return NULL;
    }
    set_err(err, err_len, "CUDA provider not available; using CPU");
    return de_backend_cpu_init(n_threads);
}
