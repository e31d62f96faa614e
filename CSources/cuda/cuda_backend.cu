/* cuda_backend.cu — the CUDA provider: entry point (takes de_backend_options), vtable, errors, the op
 * wrapper, upload/download, capabilities and counters. Memory: cuda_pool.cu; constants:
 * cuda_constants.cu; conversions: cuda_layout.cu; ops: cuda_gemm_conv.cu, cuda_kernels.cu, cuda_attention.cu. */
#include "cuda_internal.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DE_EXPORT extern "C" __attribute__((visibility("default")))

de_status cu_fail(cuda_ctx *c, de_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return st;
}

de_status cu_check_launch(cuda_ctx *c, const char *op, const char *kernel) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return cu_fail(c, DE_ERR_BACKEND, "%s: kernel %s failed to launch: %s", op, kernel, cudaGetErrorString(e));
    return DE_OK;
}

/* ---- vtable ---- */

static const char *cu_name(de_backend *be) { (void)be; return "cuda"; }

static void cu_free(de_backend *be) {
    if (!be) return;
    cuda_ctx *c = cu_of(be);
    if (c) {
        cudaSetDevice(c->device);
        cudaStreamSynchronize(c->stream);
        cu_consts_destroy(c);
        cu_staging_destroy(c);
        cu_pool_destroy(c);
        if (c->cudnn) cudnnDestroy(c->cudnn);
        if (c->lt) cublasLtDestroy(c->lt);
        if (c->cublas) cublasDestroy(c->cublas);
        if (c->stream) cudaStreamDestroy(c->stream);
        pthread_mutex_destroy(&c->lock);
        free(c);
    }
    free(be);
}

static void cu_memory(de_backend *be, size_t *fr, size_t *total) {
    cuda_ctx *c = cu_of(be);
    size_t f = 0, t = 0;
    pthread_mutex_lock(&c->lock);
    cudaSetDevice(c->device);
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) { cudaGetLastError(); f = t = 0; }
    pthread_mutex_unlock(&c->lock);
    if (fr) *fr = f;
    if (total) *total = t;
}

/* Backend memory of this provider is device memory from the pool (activations stay on the device). */
static void *cu_alloc(de_backend *be, size_t bytes) {
    cuda_ctx *c = cu_of(be);
    pthread_mutex_lock(&c->lock);
    cudaSetDevice(c->device);
    void *p = cu_pool_alloc(c, bytes ? bytes : 1);
    pthread_mutex_unlock(&c->lock);
    return p;
}

static void cu_release(de_backend *be, void *p) {
    if (!p) return;
    cuda_ctx *c = cu_of(be);
    pthread_mutex_lock(&c->lock);
    cu_pool_release(c, p); /* stream order makes reuse safe: later work on the stream runs after earlier readers */
    pthread_mutex_unlock(&c->lock);
}

/* Any of the four directions, judged by what each pointer is (pool memory or a constant handle is
 * device memory, anything else host memory); host memory is never touched with memcpy unless both sides
 * are host memory. Waits for the stream first (so a download also reports failures of queued ops) and
 * until the copy is done. */
static de_status cu_transfer(de_backend *be, void *dst, const void *src, size_t bytes, const char *name) {
    cuda_ctx *c = cu_of(be);
    if (bytes == 0) return DE_OK;
    if (!dst || !src) return cu_fail(c, DE_ERR_INVALID, "%s: NULL %s", name, dst ? "src" : "dst");
    pthread_mutex_lock(&c->lock);
    cudaSetDevice(c->device);
    de_status st = DE_OK;
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) st = cu_fail(c, DE_ERR_BACKEND, "%s: an earlier op failed: %s", name, cudaGetErrorString(e));
    const int dst_dev = cu_is_dev(c, dst), src_dev = cu_is_dev(c, src);
    if (st == DE_OK) {
        if (!dst_dev && !src_dev) {
            memmove(dst, src, bytes);                           /* host -> host */
        } else if (cu_in_const_space(c, dst)) {
            st = cu_fail(c, DE_ERR_INVALID, "%s: dst is a constant handle (constants are read-only)", name);
        } else if (dst_dev) {
            st = cu_copy_in(c, dst, src, bytes, name);          /* host/device/constant -> device */
        } else {
            const float *s = cu_view(c, src, bytes);            /* device or constant -> host */
            st = s ? cu_copy_out(c, dst, s, bytes, name) : DE_ERR_INVALID;
        }
    }
    if (st == DE_OK && (e = cudaStreamSynchronize(c->stream)) != cudaSuccess)
        st = cu_fail(c, DE_ERR_BACKEND, "%s: %s", name, cudaGetErrorString(e));
    if (st != DE_OK) cudaGetLastError();
    pthread_mutex_unlock(&c->lock);
    return st;
}

static de_status cu_upload(de_backend *be, void *dst, const void *src, size_t bytes) {
    return cu_transfer(be, dst, src, bytes, "upload");
}

static de_status cu_download(de_backend *be, void *dst, const void *src, size_t bytes) {
    return cu_transfer(be, dst, src, bytes, "download");
}

static uint32_t cu_caps(de_backend *be) {
    cuda_ctx *c = cu_of(be);
    return DE_CAP_F32 | DE_CAP_ASYNC | (c->resident ? (uint32_t)DE_CAP_RESIDENT : 0u) |
           (c->cache_weights ? (uint32_t)DE_CAP_CONSTANTS : 0u);
}

static void cu_stats(de_backend *be, de_backend_stats *out) {
    cuda_ctx *c = cu_of(be);
    pthread_mutex_lock(&c->lock);
    de_backend_stats s;
    memset(&s, 0, sizeof s); /* fields this provider does not report (scratch, bf16_gemms) stay 0 */
    s.struct_size = sizeof s;
    s.constants = c->n_constants;
    s.constant_bytes = (int64_t)c->consts.dev_bytes;
    s.host_operands = c->host_operands;
    pthread_mutex_unlock(&c->lock);
    size_t n = out->struct_size < sizeof s ? out->struct_size : sizeof s;
    memcpy((char *)out + sizeof(size_t), (char *)&s + sizeof(size_t), n - sizeof(size_t));
}

static de_status cu_sync(de_backend *be) {
    cuda_ctx *c = cu_of(be);
    pthread_mutex_lock(&c->lock);
    cudaError_t e = cudaStreamSynchronize(c->stream);
    de_status st = e == cudaSuccess ? DE_OK : cu_fail(c, DE_ERR_BACKEND, "synchronize: %s", cudaGetErrorString(e));
    pthread_mutex_unlock(&c->lock);
    return st;
}

static const char *cu_last_error(de_backend *be) { return cu_of(be)->err; }

/* Each op: lock, select the device, run. An op on device memory only returns as soon as its kernels
 * are queued (the CPU runs ahead; a failure surfaces at the next download or synchronize); an op that
 * touched host memory, failed, or runs with the cuda_sync option waits for the stream. */
#define WRAP(name, fn, type)                                             \
    static de_status name(de_backend *be, const type *op) {              \
        cuda_ctx *c = cu_of(be);                                         \
        pthread_mutex_lock(&c->lock);                                    \
        cudaSetDevice(c->device);                                        \
        c->host_io = 0;                                                  \
        c->in_op = 1;                                                    \
        de_status st = fn(be, op);                                       \
        c->in_op = 0;                                                    \
        for (int i_ = 0; i_ < c->n_deferred; i_++) cudaFreeAsync(c->deferred[i_], c->stream); \
        c->n_deferred = 0;                                               \
        if (c->host_io || c->always_sync || st != DE_OK) {               \
            cudaError_t e = cudaStreamSynchronize(c->stream);            \
            if (st == DE_OK && e != cudaSuccess)                         \
                st = cu_fail(c, DE_ERR_BACKEND, "%s: %s", #fn, cudaGetErrorString(e)); \
        }                                                                \
        if (st != DE_OK) cudaGetLastError(); /* clear non-sticky errors */ \
        pthread_mutex_unlock(&c->lock);                                  \
        return st;                                                       \
    }

WRAP(w_gemm, cu_gemm, de_gemm_op)
WRAP(w_conv2d, cu_conv2d, de_conv2d_op)
WRAP(w_group_norm, cu_group_norm, de_group_norm_op)
WRAP(w_layer_norm, cu_layer_norm, de_layer_norm_op)
WRAP(w_softmax, cu_softmax, de_softmax_op)
WRAP(w_attention, cu_attention, de_attention_op)
WRAP(w_unary, cu_unary, de_unary_op)
WRAP(w_geglu, cu_geglu, de_geglu_op)
WRAP(w_binary, cu_binary, de_binary_op)
WRAP(w_upsample, cu_upsample, de_upsample_op)
WRAP(w_transpose, cu_transpose, de_transpose_op)
WRAP(w_copy, cu_copy, de_copy_op)
WRAP(w_lincomb, cu_lincomb, de_lincomb_op)

__global__ void k_probe(int *x) { if (x) *x = 1; }

static void set_err(char *err, size_t len, const char *fmt, ...) {
    if (!err || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

DE_EXPORT int de_backend_api_version(void) { return DE_BACKEND_API_VERSION; }

DE_EXPORT de_backend *de_backend_cuda_init(const de_backend_options *opts_in, char *err, size_t err_len) {
    set_err(err, err_len, "");
    de_backend_options opts;
    memset(&opts, 0, sizeof opts);
    opts.cuda_dtype = DE_F16;
    opts.cuda_weight_cache = true;
    opts.cuda_resident = true;
    if (opts_in && opts_in->struct_size >= sizeof(size_t))
        memcpy(&opts, opts_in, opts_in->struct_size < sizeof opts ? opts_in->struct_size : sizeof opts);
    const int device = opts.device;
#ifndef DE_CUDA_EMU /* the emulator (tests only) has no driver; it runs only with DIFFEDIT_CUDA_EMU=1 */
    /* without the driver, cudart only says "insufficient driver": name the missing library instead */
    void *drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!drv) {
        const char *why = dlerror();
        set_err(err, err_len, "no NVIDIA driver (%s)", why ? why : "libcuda.so.1 cannot be loaded");
        return NULL;
    }
    dlclose(drv);
#endif
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        set_err(err, err_len, "cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
        cudaGetLastError();
        return NULL;
    }
    if (count == 0) { set_err(err, err_len, "no CUDA device present"); return NULL; }
    if (device < 0 || device >= count) { set_err(err, err_len, "device %d out of range (%d present)", device, count); return NULL; }
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess) {
        set_err(err, err_len, "cudaGetDeviceProperties: %s", cudaGetErrorString(e));
        return NULL;
    }
    if (prop.major < 8) {
        set_err(err, err_len, "%s has compute capability %d.%d; this provider is built for 8.0 and newer", prop.name,
                prop.major, prop.minor);
        return NULL;
    }
    if ((e = cudaSetDevice(device)) != cudaSuccess) {
        set_err(err, err_len, "cudaSetDevice(%d): %s", device, cudaGetErrorString(e));
        return NULL;
    }
    /* a launch proves the fatbinary has code for this device */
    CU_LAUNCH(1, 1, 0, 0, k_probe)((int *)NULL);
    if ((e = cudaGetLastError()) != cudaSuccess || (e = cudaDeviceSynchronize()) != cudaSuccess) {
        set_err(err, err_len, "test kernel on %s failed: %s", prop.name, cudaGetErrorString(e));
        return NULL;
    }
    de_backend *be = (de_backend *)calloc(1, sizeof *be);
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be); free(c);
        set_err(err, err_len, "out of host memory");
        return NULL;
    }
    c->device = device;
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    pthread_mutex_init(&c->lock, NULL);
    c->use_bf16 = opts.cuda_dtype == DE_BF16;
    c->cache_weights = opts.cuda_weight_cache;
    c->always_sync = opts.cuda_sync;
    c->resident = opts.cuda_resident;
    be->api_version = DE_BACKEND_API_VERSION;
    be->context = c;
    struct de_backend_i *i = &be->iface;
    i->get_name = cu_name;
    i->free = cu_free;
    i->memory = cu_memory;
    i->alloc = cu_alloc;
    i->release = cu_release;
    i->upload = cu_upload;
    i->download = cu_download;
    i->synchronize = cu_sync;
    i->gemm = w_gemm;
    i->conv2d = w_conv2d;
    i->group_norm = w_group_norm;
    i->layer_norm = w_layer_norm;
    i->softmax = w_softmax;
    i->attention = w_attention;
    i->unary = w_unary;
    i->geglu = w_geglu;
    i->binary = w_binary;
    i->upsample = w_upsample;
    i->transpose = w_transpose;
    i->last_error = cu_last_error;
    i->copy = w_copy;
    i->lincomb = w_lincomb;
    i->caps = cu_caps;
    i->constant_upload = cu_constant_upload;
    i->constant_release = cu_constant_release;
    i->stats = cu_stats;
    const char *what = NULL;
    if (cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess) what = "cudaStreamCreate";
    else if (cublasCreate(&c->cublas) != CUBLAS_STATUS_SUCCESS) what = "cublasCreate";
    else if (cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS) what = "cublasLtCreate";
    else if (cudnnCreate(&c->cudnn) != CUDNN_STATUS_SUCCESS) what = "cudnnCreate (is libcudnn.so.9 installed?)";
    else if (cublasSetStream(c->cublas, c->stream) != CUBLAS_STATUS_SUCCESS) what = "cublasSetStream";
    else if (cudnnSetStream(c->cudnn, c->stream) != CUDNN_STATUS_SUCCESS) what = "cudnnSetStream";
    if (what) {
        set_err(err, err_len, "%s failed on %s", what, prop.name);
        cudaGetLastError();
        cu_free(be);
        return NULL;
    }
    return be;
}
