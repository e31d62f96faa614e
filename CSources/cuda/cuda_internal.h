/* cuda_internal.h — the CUDA provider's context and helpers (libdiffedit_cuda.so).
 *
 * Memory model (see docs/performance.md, "CUDA provider"): the Swift layer hands every op HOST f32
 * pointers. Per op the provider
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

/* Host -> device (into dst, already in the arena) through the pinned staging buffer; likewise back. */
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
