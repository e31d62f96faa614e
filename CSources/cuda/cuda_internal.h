/* cuda_internal.h — the CUDA provider's context and helpers (libdiffedit_cuda.so).
 *
 * Files: cuda_backend.cu (entry point, options, vtable, op wrapper, transfers, caps, stats),
 * cuda_pool.cu (device pool for the alloc slot, per-op arena, pinned staging: cu_copy_in / cu_copy_out),
 * cuda_constants.cu (constants: upload, handles, the layouts ops need), cuda_layout.cu (precision and
 * layout conversion kernels), cuda_gemm_conv.cu (cuBLASLt GEMM, cuDNN conv), cuda_attention.cu,
 * cuda_kernels.cu (memory-bound ops).
 *
 * Memory model (see docs/performance.md, "CUDA provider"). An op operand is one of (de_backend.h):
 *   - pool memory (cu_is_pool): device memory the Swift layer allocated through the alloc slot for op
 *     outputs; activations stay there between ops (resident mode) and are used in place;
 *   - a constant handle (cu_const_find): an address inside a range of host address space the provider
 *     reserves with PROT_NONE (so a handle can never be dereferenced on the host by mistake). Each
 *     constant_upload gets its own sub-range of the f32 data's byte size, so handle + element offset
 *     addresses that element. The device copies behind it: a WEIGHT has its 16-bit copy (fp16, or bf16
 *     by option) made at upload and its conv layout (KRSC) made at the first conv2d that reads it; a
 *     PARAM (bias, norm) has an f32 copy. Ops find the entry by a binary search of the table of handles;
 *     nothing is recognised by host address or by sampling host data;
 *   - host memory (anything else): copied in through a pinned staging buffer into a per-op arena carved
 *     from one grow-only device buffer, every time, and results copied back out (counted in the stats
 *     as host operands). Nothing is cached by host address.
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

#define DE_CUDA_MAX_PLANS 512

/* the layout an op wants a weight-slot operand in */
enum { CW_F32 = 0, CW_HALF = 1, CW_HALF_KRSC = 2 }; /* f32 as is; 16-bit as is; 16-bit conv weight in KRSC (NHWC) */

/* one constant (constant_upload) */
typedef struct cu_const {
    const char *handle;      /* start of its range of the handle space */
    size_t bytes;            /* f32 bytes of the host data = the length of the range */
    int kind;                /* de_const_kind */
    const float *host;       /* the caller's host data (valid until constant_release) */
    float *dev32;            /* f32 copy: PARAM at upload, WEIGHT on its first f32 use */
    void *dev16;             /* WEIGHT: 16-bit copy, made at upload (dropped once a full-size KRSC copy exists) */
    void *krsc;              /* WEIGHT read by conv2d: 16-bit KRSC copy of [k, c, r, s] at krsc_off */
    int64_t krsc_off;        /* element offset of that view */
    int32_t krsc_dims[4];
    size_t dev_bytes;        /* device bytes held */
} cu_const;

typedef struct cu_consts {
    char *space; size_t space_size, space_used;   /* reserved PROT_NONE host address range for handles */
    cu_const *tab; int n, cap;                    /* sorted by handle (handles are handed out in order) */
    size_t dev_bytes;                             /* device bytes of all constants */
} cu_consts;

typedef struct conv_plan {
    int32_t key[12];
    int algo;                /* cudnnConvolutionFwdAlgo_t */
    size_t workspace;
} conv_plan;

typedef struct gemm_plan {
    int64_t key[13];         /* shape, strides, dtype, operand alignments */
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
    /* options (de_backend_options), fixed at creation */
    int use_bf16;            /* 16-bit type: 0 = fp16, 1 = bf16 (cuda_dtype) */
    int cache_weights;       /* cuda_weight_cache: constant_upload copies (else it returns the host pointer) */
    int resident;            /* cuda_resident: report DE_CAP_RESIDENT */
    /* per-op device arena */
    char *arena; size_t arena_cap, arena_used;
    /* pinned staging */
    char *pinned; size_t pinned_cap;
    cudaEvent_t stage_ev[2]; /* end of the last host-to-device DMA from each half of the staging buffer */
    int stage_half;          /* the half the next host-to-device copy fills first */
    /* constants */
    cu_consts consts;
    /* counters (de_backend_stats) */
    int64_t n_constants, host_operands;
    int in_op;               /* inside an op (host copies there count as host operands) */
    /* plans */
    conv_plan conv_plans[DE_CUDA_MAX_PLANS]; int n_conv_plans;
    gemm_plan gemm_plans[DE_CUDA_MAX_PLANS]; int n_gemm_plans;
    cu_pool pool;            /* device memory handed out by the alloc slot */
    void *deferred[16]; int n_deferred; /* stream-ordered frees queued after the current op's kernels */
    int host_io;             /* the current op read or wrote host memory (it then waits for the stream) */
    int always_sync;         /* cuda_sync: wait for the stream after every op (debugging) */
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

/* Device pool. cu_is_pool: p lies inside one of the pool's chunks (a device activation).
 * cu_is_dev: p is not host memory (pool memory or a constant handle). */
void *cu_pool_alloc(cuda_ctx *c, size_t bytes);
void cu_pool_release(cuda_ctx *c, void *p);
void cu_pool_destroy(cuda_ctx *c);
int cu_is_pool(const cuda_ctx *c, const void *p);
int cu_is_dev(const cuda_ctx *c, const void *p);
de_status cu_pinned_reserve(cuda_ctx *c, size_t bytes, const char *op);
void cu_staging_destroy(cuda_ctx *c);
/* cudaFreeAsync(p) once the current op's kernels are queued (an op frees at most 16 temporaries) */
static inline void cu_defer_free(cuda_ctx *c, void *p) {
    if (c->n_deferred < 16) c->deferred[c->n_deferred++] = p;
    /* else: cannot happen (an op has at most 4 weight operands); leaking beats freeing too early */
}
/* An op's f32 operand: pool memory itself, a constant's f32 device copy (+ offset), or a fresh arena
 * block for a host pointer (which cu_copy_in then fills and cu_copy_out writes back; both are no-ops
 * when the two are the same). NULL: arena too small (an internal error) or a constant's f32 copy could
 * not be made (ctx->err says why). */
float *cu_view(cuda_ctx *c, const void *p, size_t bytes);
#define CU_VIEW(c, p, bytes) cu_view((c), (p), (bytes))

/* Into dst (device) from src: host memory through the pinned staging buffer (a host operand when inside
 * an op), pool memory or a constant device-to-device on the stream; dst == src (after resolving a
 * constant) is a no-op. cu_copy_out: from src (device) to dst: host memory through staging, pool memory
 * device-to-device; a constant handle as dst is refused. */
de_status cu_copy_in(cuda_ctx *c, void *dst, const void *src, size_t bytes, const char *op);
de_status cu_copy_out(cuda_ctx *c, void *dst, const void *src, size_t bytes, const char *op);

/* ---- constants (cuda_constants.cu) ---- */
void *cu_constant_upload(de_backend *be, const void *host, size_t bytes, de_const_kind kind);
void cu_constant_release(de_backend *be, void *handle);
void cu_consts_destroy(cuda_ctx *c);
/* the constant whose range holds p (and p's byte offset in it), or NULL */
cu_const *cu_const_find(const cuda_ctx *c, const void *p, int64_t *off_bytes);
/* p lies in the handle space (a live or released handle) */
int cu_in_const_space(const cuda_ctx *c, const void *p);
/* e's f32 device copy (made from the host data on first use for a WEIGHT); NULL with ctx->err set */
float *cu_const_f32(cuda_ctx *c, cu_const *e, const char *op);

/* A weight-slot operand (conv/linear weight, bias, norm parameter) in the layout `kind` (CW_*; conv dims
 * [k, c, r, s] for CW_HALF_KRSC): a constant's device copy in that layout, else (pool or host memory) a
 * temporary conversion on the stream, freed after the op. */
de_status cu_weight(cuda_ctx *c, const float *p, int64_t n, int kind, const int32_t *kcrs,
                    const void **dev, const char *op);

/* Device conversions (stream-ordered; cuda_layout.cu). */
de_status cu_f32_to_half(cuda_ctx *c, void *dst, const float *src, int64_t n, const char *op);
/* weight [k, c, r, s] -> 16-bit [k, r, s, c]; from f32 (src_half 0) or from the provider's 16-bit type */
de_status cu_kcrs_to_krsc(cuda_ctx *c, void *dst, const void *src, int src_half, const int32_t *kcrs, const char *op);
/* batched [rows, cols] -> [cols, rows], f32, on the stream */
de_status cu_transpose_f32(cuda_ctx *c, float *dst, const float *src, int batch, int rows, int cols, const char *op);
/* x f32 NCHW [n,c,hw] -> y half NHWC [n,hw,c] of scale * x */
de_status cu_nchw_f32_to_nhwc_half(cuda_ctx *c, void *dst, const float *src, int n, int ch, int hw, float scale, const char *op);
/* y half NHWC [n,hw,c] -> f32 NCHW scale * y (+ bias[c]) (+ residual NCHW f32) */
de_status cu_nhwc_half_to_nchw_f32(cuda_ctx *c, float *dst, const void *src, const float *bias, const float *residual,
                                   int n, int ch, int hw, float scale, const char *op);
de_status cu_add_bias_rows(cuda_ctx *c, float *y, const float *bias, int64_t rows, int64_t ld, int32_t cols, int batch,
                           int64_t stride, const char *op);
de_status cu_check_launch(cuda_ctx *c, const char *op, const char *kernel);
/* row softmax of scale * x on the device (y may be x) */
de_status cu_softmax_rows(cuda_ctx *c, float *y, const float *x, int64_t rows, int cols, float scale, const char *op);

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

/* Kernel launches: CU_LAUNCH(grid, block, shmem, stream, kernel)(args...) is kernel<<<grid, block, shmem, stream>>>(args...)
 * under nvcc; the test build (make cuda-emu: CSources/cuda/emu, DE_CUDA_EMU) defines it to queue the kernel on its
 * CPU emulator instead. */
#ifndef DE_CUDA_EMU
#define CU_LAUNCH(grid, block, shmem, stream, ...) __VA_ARGS__<<<grid, block, shmem, stream>>>
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
