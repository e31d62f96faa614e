/* Backend registry and op dispatchers. See include/de_backend.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr */
#endif
#include "de_backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A descriptor the registry itself rejects (de_lincomb) has no provider to hold the message: it is
 * kept per thread, for that backend, until the next dispatch on the thread, and de_backend_last_error
 * returns it (checked before the provider's own message). */
static _Thread_local de_backend *reg_err_be;
static _Thread_local char reg_err[256];

static de_status reg_fail(de_backend *be, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static de_status reg_fail(de_backend *be, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reg_err, sizeof reg_err, fmt, ap);
    va_end(ap);
    reg_err_be = be;
    return DE_ERR_INVALID;
}

#define DISPATCH(fn, slot, type)                                              \
    de_status fn(de_backend *be, const type *op) {                            \
        if (reg_err_be) reg_err_be = NULL;                                    \
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
DISPATCH(de_copy, copy, de_copy_op)

de_status de_lincomb(de_backend *be, const de_lincomb_op *op) {
    if (reg_err_be) reg_err_be = NULL;
    if (!be) return DE_ERR_INVALID;
    if (!op) return reg_fail(be, "lincomb: op descriptor is NULL");
    if (op->n < 0) return reg_fail(be, "lincomb: n must not be negative (got %lld)", (long long)op->n);
    if (op->terms < 1 || op->terms > 4) return reg_fail(be, "lincomb: terms must be 1...4 (got %d)", (int)op->terms);
    for (int j = 0; j < op->terms; j++)
        if (!op->x[j]) return reg_fail(be, "lincomb: x[%d] is NULL", j);
    if (!op->y) return reg_fail(be, "lincomb: y is NULL");
    /* y may alias an x exactly, never overlap one partially (4 bytes an element for every dtype the
     * providers accept today: f32) */
    const size_t bytes = (size_t)op->n * 4;
    const char *y = (const char *)op->y;
    for (int j = 0; j < op->terms; j++) {
        const char *x = (const char *)op->x[j];
        if (x != y && x < y + bytes && y < x + bytes)
            return reg_fail(be, "lincomb: y overlaps x[%d] without being the same array", j);
    }
    if (!be->iface.lincomb) return DE_ERR_UNSUPPORTED;
    return be->iface.lincomb(be, op);
}

void *de_backend_alloc(de_backend *be, size_t bytes) {
    return (be && be->iface.alloc) ? be->iface.alloc(be, bytes) : NULL;
}

void de_backend_release(de_backend *be, void *ptr) {
    if (be && be->iface.release && ptr) be->iface.release(be, ptr);
}

de_status de_backend_download(de_backend *be, void *host_dst, const void *src, size_t bytes) {
    if (!be) return DE_ERR_INVALID;
    if (!be->iface.download) return DE_ERR_UNSUPPORTED;
    return be->iface.download(be, host_dst, src, bytes);
}

de_status de_backend_upload(de_backend *be, void *dst, const void *host_src, size_t bytes) {
    if (!be) return DE_ERR_INVALID;
    if (!be->iface.upload) return DE_ERR_UNSUPPORTED;
    return be->iface.upload(be, dst, host_src, bytes);
}

de_status de_backend_synchronize(de_backend *be) {
    if (!be) return DE_ERR_INVALID;
    return be->iface.synchronize ? be->iface.synchronize(be) : DE_OK;
}

void de_backend_free(de_backend *be) {
    if (be && be->iface.free) be->iface.free(be);
}

const char *de_backend_name(de_backend *be) {
    return (be && be->iface.get_name) ? be->iface.get_name(be) : "none";
}

const char *de_backend_last_error(de_backend *be) {
    if (be && reg_err_be == be) return reg_err;
    const char *e = (be && be->iface.last_error) ? be->iface.last_error(be) : NULL;
    return e ? e : "";
}

uint32_t de_backend_caps(de_backend *be) {
    if (!be) return 0;
    return be->iface.caps ? be->iface.caps(be) : DE_CAP_F32;
}

void *de_backend_constant_upload(de_backend *be, const void *host, size_t bytes, de_const_kind kind) {
    if (!be || !host) return NULL;
    if (!be->iface.constant_upload) return (void *)host;
    return be->iface.constant_upload(be, host, bytes, kind);
}

void de_backend_constant_release(de_backend *be, void *handle) {
    if (be && handle && be->iface.constant_release) be->iface.constant_release(be, handle);
}

void de_backend_trim(de_backend *be) {
    if (be && be->iface.trim) be->iface.trim(be);
}

void de_backend_stats_get(de_backend *be, de_backend_stats *out) {
    if (!out || out->struct_size < sizeof(size_t)) return;
    size_t sz = out->struct_size < sizeof *out ? out->struct_size : sizeof *out;
    memset((char *)out + sizeof(size_t), 0, sz - sizeof(size_t));
    if (be && be->iface.stats) be->iface.stats(be, out);
}

/* ---- options ---- */

void de_backend_options_init(de_backend_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->winograd = DE_WINOGRAD_AUTO;
    o->cuda_dtype = DE_F16;
    o->cuda_weight_cache = true;
    o->cuda_resident = true;
    o->cpu_compute = DE_COMPUTE_AUTO; /* f32 where it is not AMX or the weights are f32 (cpu_bf16.c) */
}

static const char *env_get(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void de_backend_options_from_env(de_backend_options *o) {
    if (!o) return;
    de_backend_options_init(o);
    const char *v;
    if ((v = env_get("DIFFEDIT_CPU_STAGED"))) o->cpu_staged = strcmp(v, "1") == 0;
    if ((v = env_get("DIFFEDIT_WINOGRAD"))) o->winograd = v[0] == '2' ? DE_WINOGRAD_F2 : v[0] == '4' ? DE_WINOGRAD_F4 : DE_WINOGRAD_AUTO;
    if (env_get("DIFFEDIT_NO_WINOGRAD")) o->winograd = DE_WINOGRAD_OFF;   /* set at all: as before */
    if ((v = env_get("DIFFEDIT_WINOGRAD_TILES")) && atoi(v) > 0) o->winograd_tiles = atoi(v);
    if ((v = env_get("DIFFEDIT_IM2COL_ROWS")) && atoi(v) > 0) o->im2col_rows = atoi(v);
    if ((v = env_get("DIFFEDIT_WINOGRAD_CHANNELS")) && atoi(v) > 0) o->winograd_channels = atoi(v);
    if ((v = env_get("DIFFEDIT_KERNEL_PROFILE"))) o->kernel_profile = strcmp(v, "0") != 0;
    if ((v = env_get("DIFFEDIT_CUDA_DTYPE"))) o->cuda_dtype = strcmp(v, "bf16") == 0 ? DE_BF16 : DE_F16;
    if ((v = env_get("DIFFEDIT_CUDA_WEIGHT_CACHE"))) o->cuda_weight_cache = strcmp(v, "0") != 0;
    if ((v = env_get("DIFFEDIT_CUDA_SYNC"))) o->cuda_sync = strcmp(v, "1") == 0;
    if ((v = env_get("DIFFEDIT_CUDA_RESIDENT"))) o->cuda_resident = strcmp(v, "0") != 0;
    if ((v = env_get("DIFFEDIT_BACKEND_PATH"))) snprintf(o->backend_path, sizeof o->backend_path, "%s", v);
    if ((v = env_get("DIFFEDIT_COMPUTE")))
        o->cpu_compute = strcmp(v, "bf16") == 0 ? DE_COMPUTE_BF16 : strcmp(v, "auto") == 0 ? DE_COMPUTE_AUTO
                         : strcmp(v, "i16") == 0 ? DE_COMPUTE_I16 : DE_COMPUTE_F32;
    if ((v = env_get("DIFFEDIT_BF16_KERNEL")))
        o->cpu_bf16_kernel = strcmp(v, "amx") == 0 ? DE_BF16_KERNEL_AMX : strcmp(v, "avx512bf16") == 0 ? DE_BF16_KERNEL_AVX512
                           : strcmp(v, "none") == 0 ? -1 : 0;
    if ((v = env_get("DIFFEDIT_CPU_SIMD"))) o->cpu_simd = atoi(v) == 256 ? 256 : 0;
}

/* The caller's options copied into a full-size struct (fields it did not know keep their defaults). */
static void options_copy(de_backend_options *dst, const de_backend_options *src) {
    de_backend_options_init(dst);
    if (!src || src->struct_size < sizeof(size_t)) return;
    size_t n = src->struct_size < sizeof *dst ? src->struct_size : sizeof *dst;
    memcpy(dst, src, n);
    dst->struct_size = sizeof *dst;
    dst->backend_path[sizeof dst->backend_path - 1] = 0;
}

static void set_err(char *err, size_t len, const char *msg) {
    if (err && len) snprintf(err, len, "%s", msg);
}

/* ---- the CUDA provider loader ----
 *
 * libdiffedit_cuda.so is looked for, in this order:
 *   1. options.backend_path (DIFFEDIT_BACKEND_PATH through de_backend_options_from_env): a ':'-separated
 *      list of files or folders (a folder means FOLDER/libdiffedit_cuda.so);
 *   2. the folder of the binary that contains this code (dladdr): libdiffedit.so, the CLI or a test bundle;
 *   3. that folder's ../lib (build/bin/diffedit next to build/lib/libdiffedit_cuda.so, PREFIX/bin vs PREFIX/lib).
 * The first existing file is dlopen'ed (RTLD_NOW | RTLD_LOCAL); later candidates are not tried when it
 * fails, so the reason names the file that was found. The provider is checked in three steps:
 * the optional export `de_backend_api_version` (an int function, checked before anything else is called),
 * the entry point DE_BACKEND_ENTRY_SYMBOL (which returns NULL with a reason when no device is usable),
 * and the api_version of the backend it returns. Once its entry point has run, a provider stays loaded
 * (never dlclose'd, even when init failed). */
#define DE_CUDA_PROVIDER_FILE "libdiffedit_cuda.so"

static int file_exists(const char *p) {
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Fills out[out_len] with the first existing candidate; returns 1 when one exists.
 * looked[] collects the places tried (for the message). */
static int find_provider(const char *search, char *out, size_t out_len, char *looked, size_t looked_len) {
    char cand[PATH_MAX + 64];
    size_t used = 0;
    looked[0] = 0;
#define TRY(path)                                                                              \
    do {                                                                                       \
        if (file_exists(path)) { snprintf(out, out_len, "%s", path); return 1; }               \
        if (used < looked_len) {                                                               \
            int w = snprintf(looked + used, looked_len - used, "%s%s", used ? ", " : "", path); \
            if (w > 0) used += (size_t)w;                                                      \
        }                                                                                      \
    } while (0)
    if (search && *search) {
        const char *p = search;
        while (*p) {
            const char *e = strchr(p, ':');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (len > 0 && len < PATH_MAX) {
                char item[PATH_MAX];
                memcpy(item, p, len);
                item[len] = 0;
                struct stat st;
                if (stat(item, &st) == 0 && S_ISDIR(st.st_mode)) {
                    snprintf(cand, sizeof cand, "%s/%s", item, DE_CUDA_PROVIDER_FILE);
                    TRY(cand);
                } else {
                    TRY(item);
                }
            }
            if (!e) break;
            p = e + 1;
        }
    }
    Dl_info info;
    if (dladdr((const void *)&de_backend_load, &info) && info.dli_fname && *info.dli_fname) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", info.dli_fname);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
        snprintf(cand, sizeof cand, "%s/%s", dir, DE_CUDA_PROVIDER_FILE);
        TRY(cand);
        snprintf(cand, sizeof cand, "%s/../lib/%s", dir, DE_CUDA_PROVIDER_FILE);
        TRY(cand);
    }
#undef TRY
    return 0;
}

/* Loads and checks the provider; NULL with the reason in err. */
static de_backend *load_cuda(const de_backend_options *opts, char *err, size_t err_len) {
    char path[PATH_MAX + 64], looked[1024];
    const int device = opts->device;
    if (!find_provider(opts->backend_path, path, sizeof path, looked, sizeof looked)) {
        if (err && err_len)
            snprintf(err, err_len, "CUDA provider %s not found (looked in: %s; set DIFFEDIT_BACKEND_PATH or the backend_path option)",
                     DE_CUDA_PROVIDER_FILE, looked[0] ? looked : "nowhere");
        return NULL;
    }
#if defined(__linux__)
    /* The provider found next to the library (not one the caller named in backend_path: the CUDA emulator and
     * the loader tests' providers) is not opened without the NVIDIA driver: its RTLD_NOW load maps and relocates
     * its CUDA libraries (~150 MB of RSS, kept: a provider is never dlclose'd once its entry point ran) only for
     * its entry point to fail on the same missing libcuda.so.1. Same message as the provider's. */
    if (!opts->backend_path[0]) {
        dlerror();
        void *drv = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
        if (!drv) {
            const char *why = dlerror();
            if (err && err_len)
                snprintf(err, err_len, "%s: no usable CUDA device %d: no NVIDIA driver (%s)", path, device,
                         why ? why : "libcuda.so.1 cannot be loaded");
            return NULL;
        }
        dlclose(drv);
    }
#endif
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        if (err && err_len) snprintf(err, err_len, "%s: cannot be loaded: %s", path, why ? why : "unknown dlopen error");
        return NULL;
    }
    typedef int (*version_fn)(void);
    version_fn ver = (version_fn)dlsym(h, "de_backend_api_version");
    if (ver) {
        int v = ver();
        if (v != DE_BACKEND_API_VERSION) {
            if (err && err_len)
                snprintf(err, err_len, "%s: backend API version %d, this library needs %d (rebuild the provider)",
                         path, v, DE_BACKEND_API_VERSION);
            dlclose(h);
            return NULL;
        }
    }
    de_backend_init_fn init = (de_backend_init_fn)dlsym(h, DE_BACKEND_ENTRY_SYMBOL);
    if (!init) {
        if (err && err_len) snprintf(err, err_len, "%s: entry point %s not exported", path, DE_BACKEND_ENTRY_SYMBOL);
        dlclose(h);
        return NULL;
    }
    char why[512];
    why[0] = 0;
    de_backend *be = init(opts, why, sizeof why);
    if (!be) {
        if (err && err_len)
            snprintf(err, err_len, "%s: no usable CUDA device %d: %s", path, device, why[0] ? why : "no reason given");
        /* not dlclose'd: a failed init may have created the device's primary context and handles inside the
         * provider's statically linked cudart (and registered exit handlers there); unmapping that code under
         * them is what could crash later. The provider stays mapped, unused. */
        return NULL;
    }
    if (be->api_version != DE_BACKEND_API_VERSION) {
        /* The vtable layout of another API version is unknown: nothing of it is called, not even free
         * (the object leaks), and the library stays mapped. */
        if (err && err_len)
            snprintf(err, err_len, "%s: backend API version %d, this library needs %d (rebuild the provider)",
                     path, be->api_version, DE_BACKEND_API_VERSION);
        return NULL;
    }
    if (!be->iface.get_name || !be->iface.free || !be->iface.last_error) {
        if (err && err_len) snprintf(err, err_len, "%s: backend vtable lacks get_name/free/last_error", path);
        return NULL;
    }
    return be; /* h stays open for the life of the process */
}

de_backend *de_backend_load_opts(const char *name, const de_backend_options *opts_in, char *err, size_t err_len) {
    set_err(err, err_len, "");
    de_backend_options opts;
    if (opts_in) options_copy(&opts, opts_in);
    else de_backend_options_from_env(&opts);
    if (!name || !*name) name = "auto";
    if (strcmp(name, "cpu") == 0) return de_backend_cpu_init_opts(&opts);
    if (strcmp(name, "auto") != 0 && strcmp(name, "cuda") != 0) {
        set_err(err, err_len, "unknown backend name (use auto, cpu or cuda)");
        return NULL;
    }
    char why[1536];
    why[0] = 0;
    de_backend *be = load_cuda(&opts, why, sizeof why);
    if (be) return be;
    if (strcmp(name, "cuda") == 0) {
        set_err(err, err_len, why);
        return NULL;
    }
    if (err && err_len) snprintf(err, err_len, "%s; using CPU", why);
    return de_backend_cpu_init_opts(&opts);
}

de_backend *de_backend_load(const char *name, int device, int n_threads, char *err, size_t err_len) {
    de_backend_options opts;
    de_backend_options_from_env(&opts);
    opts.device = device;
    opts.threads = n_threads;
    return de_backend_load_opts(name, &opts, err, err_len);
}
