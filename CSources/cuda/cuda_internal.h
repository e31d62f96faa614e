/* cuda_internal.h — the CUDA provider's context and helpers (libdiffedit_cuda.so).
 *
 * Memory model (see docs/performance.md, "CUDA provider"). Activations are device-resident: the Swift
 * layer allocates op outputs through the alloc slot (a caching pool of device chunks, cu_pool_*), so
 * an op's inputs and outputs are normally device pointers, used in place (cu_is_dev tells them apart
 * from host pointers by address range). Host pointers are still accepted everywhere; for them the
 * provider
 *   - looks up constant inputs (conv/linear weights, biases, gamma/beta) in a weight cache keyed by
 *     host pointer + byte size (+ a sampled fingerprint that catches a reused address), uploading them
 *     once as fp16 (bf16 with DIFFEDIT_CUDA_DTYPE=bf16) or f32 (biases, norms);
 *   - copies activations in through a pinned staging buffer into a per-op arena carved from one
 *     grow-only device buffer (cudaMalloc happens only when a larger op than any before arrives, i.e.
 *     during the first denoising step, never in steady state);
 *   - runs the op on one stream and copies the result out through the staging buffer.
 * Every CUDA/cuBLAS/cuDNN failure is returned as a status with a message in ctx->err.
 */
#ifndef DE_CUDA_INTERNAL_H
#define DE_CUDA_INTERNAL_H

#include "de_backend.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define DE_CUDA_MAX_WEIGHTS 8192
#define DE_CUDA_MAX_PLANS 512

typedef struct cuda_weight {
    const void *host;        /* key: host address */
    size_t bytes;            /* key: host byte size (f32) */
    int kind;                /* key: CW_* (layout/dtype of the device copy) */
    uint64_t fingerprint;    /* sampled host values at upload time */
    void *dev;               /* device copy */
} cuda_weight;

enum { CW_F32 = 0, CW_HALF = 1, CW_HALF_KRSC = 2 }; /* f32 as is; 16-bit as is; 16-bit conv weight in KRSC (NHWC) */

typedef struct conv_plan {
    int32_t key[12];
    int algo;                /* cudnnConvolutionFwdAlgo_t */
    size_t workspace;
} conv_plan;

typedef struct gemm_plan {
    int64_t key[12];
    cublasLtMatmulAlgo_t algo;
    size_t workspace;
    int valid;
} gemm_plan;

/* the device pool: chunks carved bump-style into blocks, freed blocks kept in per-size bins (LIFO,
 * so a denoising loop that allocates the same sizes each step gets the same blocks back and never
 * calls cudaMalloc after its first step); a hash of live blocks remembers each block's size */
#define DE_CUDA_MAX_CHUNKS 64
typedef struct cu_chunk { char *base; size_t size, used; } cu_chunk;
typedef struct cu_bin { size_t size; void **blocks; int n, cap; } cu_bin;
typedef struct cu_pool {
    cu_chunk chunks[DE_CUDA_MAX_CHUNKS]; int n_chunks;
    cu_bin *bins; int n_bins, cap_bins;
    void **live_key; size_t *live_size; size_t live_cap, live_n;  /* open addressing, power-of-two capacity */
} cu_pool;

typedef struct cuda_ctx {
    int device;
    char name[256];
    cudaStream_t stream;
    cublasHandle_t cublas;
    cublasLtHandle_t lt;
    cudnnHandle_t cudnn;
    int use_bf16;            /* 16-bit type: 0 = fp16, 1 = bf16 */
    int cache_weights;       /* DIFFEDIT_CUDA_WEIGHT_CACHE=0 turns the weight cache off */
    /* per-op device arena */
    char *arena; size_t arena_cap, arena_used;
    /* pinned staging */
    char *pinned; size_t pinned_cap;
    /* weights */
    cuda_weight *weights; int n_weights;
    size_t weight_bytes;
    /* plans */
    conv_plan conv_plans[DE_CUDA_MAX_PLANS]; int n_conv_plans;
    gemm_plan gemm_plans[DE_CUDA_MAX_PLANS]; int n_gemm_plans;
    cu_pool pool;            /* device memory handed out by the alloc slot */
    void *deferred[16]; int n_deferred; /* stream-ordered frees queued after the current op's kernels */
    int host_io;             /* the current op read or wrote host memory (it then waits for the stream) */
    int always_sync;         /* DIFFEDIT_CUDA_SYNC=1: wait for the stream after every op (debugging) */
    pthread_mutex_t lock;    /* one op at a time per backend */
    char err[512];
} cuda_ctx;

#ifdef __cplusplus
extern "C" {
#endif

static inline cuda_ctx *cu_of(de_backend *be) { return (cuda_ctx *)be->context; }

de_status cu_fail(cuda_ctx *c, de_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Arena: reset at the start of each op; cu_arena_reserve grows it (the only cudaMalloc of activations). */
de_status cu_arena_begin(cuda_ctx *c, size_t bytes, const char *op);
void *cu_arena_take(cuda_ctx *c, size_t bytes);

/* Device pool. cu_is_dev: p lies inside one of the pool's chunks (a device activation). */
void *cu_pool_alloc(cuda_ctx *c, size_t bytes);
void cu_pool_release(cuda_ctx *c, void *p);
void cu_pool_destroy(cuda_ctx *c);
int cu_is_dev(const cuda_ctx *c, const void *p);
/* cudaFreeAsync(p) once the current op's kernels are queued (an op frees at most 16 temporaries) */
static inline void cu_defer_free(cuda_ctx *c, void *p) {
    if (c->n_deferred < 16) c->deferred[c->n_deferred++] = p;
    /* else: cannot happen (an op has at most 4 weight operands); leaking beats freeing too early */
}
/* An op's f32 operand: the device pointer itself, or a fresh arena block for a host pointer (which
 * cu_copy_in then fills and cu_copy_out writes back; both are no-ops when the two are the same). */
#define CU_VIEW(c, p, bytes) (cu_is_dev((c), (p)) ? (float *)(p) : (float *)cu_arena_take((c), (bytes)))

/* Host -> device (into dst, already in the arena) through the pinned staging buffer; likewise back.
 * A device source/destination is copied device-to-device on the stream; dst == src is a no-op. */
de_status cu_copy_in(cuda_ctx *c, void *dst, const void *host, size_t bytes, const char *op);
de_status cu_copy_out(cuda_ctx *c, void *host, const void *src, size_t bytes, const char *op);

/* Constant input: device copy of host[n floats] in the given kind (CW_*). conv dims for CW_HALF_KRSC. */
de_status cu_weight(cuda_ctx *c, const float *host, int64_t n, int kind, const int32_t *kcrs,
                    const void **dev, const char *op);

/* Device conversions (stream-ordered). */
de_status cu_f32_to_half(cuda_ctx *c, void *dst, const float *src, int64_t n, const char *op);
/* batched [rows, cols] -> [cols, rows], f32, on the stream */
de_status cu_transpose_f32(cuda_ctx *c, float *dst, const float *src, int batch, int rows, int cols, const char *op);
/* x f32 NCHW [n,c,hw] -> y half NHWC [n,hw,c] */
de_status cu_nchw_f32_to_nhwc_half(cuda_ctx *c, void *dst, const float *src, int n, int ch, int hw, const char *op);
/* y half NHWC [n,hw,c] -> f32 NCHW (+ bias[c]) (+ residual NCHW f32) */
de_status cu_nhwc_half_to_nchw_f32(cuda_ctx *c, float *dst, const void *src, const float *bias, const float *residual,
                                   int n, int ch, int hw, const char *op);
de_status cu_add_bias_rows(cuda_ctx *c, float *y, const float *bias, int64_t rows, int64_t ld, int32_t cols, int batch,
                           int64_t stride, const char *op);
de_status cu_check_launch(cuda_ctx *c, const char *op, const char *kernel);

/* Ops (host f32 descriptors). */
de_status cu_gemm(de_backend *be, const de_gemm_op *op);
de_status cu_conv2d(de_backend *be, const de_conv2d_op *op);
de_status cu_group_norm(de_backend *be, const de_group_norm_op *op);
de_status cu_layer_norm(de_backend *be, const de_layer_norm_op *op);
de_status cu_softmax(de_backend *be, const de_softmax_op *op);
de_status cu_attention(de_backend *be, const de_attention_op *op);
de_status cu_unary(de_backend *be, const de_unary_op *op);
de_status cu_geglu(de_backend *be, const de_geglu_op *op);
de_status cu_binary(de_backend *be, const de_binary_op *op);
de_status cu_upsample(de_backend *be, const de_upsample_op *op);
de_status cu_transpose(de_backend *be, const de_transpose_op *op);
de_status cu_copy(de_backend *be, const de_copy_op *op);
de_status cu_lincomb(de_backend *be, const de_lincomb_op *op);

#ifdef __cplusplus
}
#endif

#define CU_ALIGN(x) (((x) + 255) & ~(size_t)255)

#define CUDA_TRY(c, call, op)                                                                          \
    do {                                                                                               \
        cudaError_t e_ = (call);                                                                       \
        if (e_ != cudaSuccess)                                                                         \
            return cu_fail((c), e_ == cudaErrorMemoryAllocation ? DE_ERR_OOM : DE_ERR_BACKEND,        \
                           "%s: %s failed: %s", (op), #call, cudaGetErrorString(e_));                  \
    } while (0)

#define ST_TRY(expr)                 \
    do {                             \
        de_status s_ = (expr);       \
        if (s_ != DE_OK) return s_;  \
    } while (0)

#endif
