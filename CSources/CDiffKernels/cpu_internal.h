/*
 * cpu_internal.h — internals of the CPU provider (not part of any interface).
 *
 * The CPU backend context holds:
 *  - a small persistent pthread pool (parallel-for over rows / planes / heads); the calling
 *    thread is worker 0, so n_threads = 1 means no extra threads at all;
 *  - per-thread scratch buffers that are grown, never shrunk, and reused across calls;
 *  - the last error message;
 *  - an op lock: one op at a time per backend (pool and scratch are not re-entrant).
 * OpenBLAS is set to 1 thread; every parallel region (including sgemm, split by rows or
 * columns in cpu_sgemm) runs on this pool, so threads never oversubscribe the cores.
 *
 * Files: cpu_backend.c (context, vtable, f16/bf16, profiling), cpu_pool.c (pool, reductions),
 * cpu_gemm_conv.c (gemm, conv2d dispatch, im2col), cpu_winograd.c / cpu_winograd4.c
 * (F(2x2,3x3) / F(4x4,3x3)), cpu_attention.c, cpu_norm.c, cpu_elementwise.c.
 * cpu_bf16.c: GEMMs in bf16 (AMX / AVX512_BF16) under options.cpu_compute bf16 / auto.
 * Knobs come from de_backend_options at creation (winograd, winograd_tiles, winograd_channels, im2col_rows, kernel_profile, cpu_compute,
 * cpu_bf16_kernel (DIFFEDIT_COMPUTE, DIFFEDIT_BF16_KERNEL);
 * de_backend_options_from_env fills them from DIFFEDIT_WINOGRAD=2|4, DIFFEDIT_NO_WINOGRAD=1,
 * DIFFEDIT_WINOGRAD_TILES=N, DIFFEDIT_WINOGRAD_CHANNELS=N, DIFFEDIT_IM2COL_ROWS=N, DIFFEDIT_KERNEL_PROFILE=1); no op reads the environment.
 *
 * Staged mode (options.cpu_staged, the test mode of the resident code paths): alloc'd blocks and constant
 * copies are recorded in a table of address ranges; the provider reports DE_CAP_RESIDENT | DE_CAP_CONSTANTS,
 * and every op operand outside the table is counted as a host operand (de_backend_stats), which is what
 * would be a host<->device copy on the CUDA provider. The ops themselves run the same code as in plain mode.
 */
#ifndef DE_CPU_INTERNAL_H
#define DE_CPU_INTERNAL_H

#include "de_backend.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define DE_MAX_THREADS 256

/* fn(arg, begin, end, tid) processes items [begin, end) on thread tid in [0, n_threads). */
typedef void (*de_range_fn)(void *arg, int64_t begin, int64_t end, int tid);

typedef struct de_pool {
    int n_threads;               /* total, including the caller (tid 0) */
    pthread_t *threads;          /* [n_threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    uint64_t generation;         /* bumped once per parallel_for */
    int active;                  /* workers still inside the current job */
    int quit;
    de_range_fn fn;
    void *arg;
    int64_t total, grain;
    _Atomic int64_t next;
} de_pool;

int de_pool_init(de_pool *p, int n_threads);   /* 0 on success */
void de_pool_destroy(de_pool *p);
/* Runs fn over [0, total) in chunks of `grain` (0 = automatic). Serial when small. */
void de_pool_for(de_pool *p, int64_t total, int64_t grain, de_range_fn fn, void *arg);

typedef struct de_scratch {
    float *ptr;
    size_t cap;                  /* floats */
} de_scratch;

/* staged mode: live alloc'd blocks and constants, sorted by address */
typedef struct cpu_block { const char *begin, *end; int constant; } cpu_block;

typedef struct cpu_ctx {
    int n_threads;
    /* options (de_backend_options), fixed at creation */
    int staged;                  /* cpu_staged */
    int winograd;                /* de_winograd_mode */
    int winograd_tiles;          /* 0 = automatic */
    int im2col_rows;             /* 0 = automatic */
    int winograd_channels;       /* Winograd output-channel block, 0 = automatic (cpu_wino_out_block) */
    int compute;                 /* de_compute_mode */
    int bf16_kernel;             /* de_bf16_kernel in use (options.cpu_bf16_kernel clipped to the CPU's) */
    int i16_kernel;              /* the CPU has AVX512-VNNI (cpu_i16.c; used under compute i16) */
    int simd512;                 /* AVX-512F kernels in use (cpu_attention.c): the CPU and OS have them and
                                  * options.cpu_simd does not cap at 256 bits */
    _Atomic int64_t bf16_gemms;  /* de_backend_stats.bf16_gemms */
    /* staged bookkeeping (mem_lock) and counters */
    pthread_mutex_t mem_lock;
    cpu_block *blocks; size_t n_blocks, cap_blocks;
    _Atomic int64_t n_constants, constant_bytes, host_operands;
    de_pool pool;
    pthread_mutex_t op_lock;
    de_scratch shared;           /* one big buffer for single-threaded-BLAS phases (conv) */
    de_scratch shared2;
    de_scratch wconv;            /* a small reduced-precision weight converted whole (cpu_weights.c) */
    de_scratch bf_a, bf_b;       /* bf16 GEMM packed operands (cpu_bf16.c) */
    de_scratch bf_acc;           /* bf16 GEMM accumulators, per worker (cpu_bf16.c, AMX) */
    de_scratch i16_r, i16_p;     /* i16 GEMM packed operands (cpu_i16.c) */
    de_scratch *bf_local;        /* [n_threads * 3]: a worker's own packs + accumulators (cpu_bgemm_local) */
    de_scratch *per_thread;      /* [n_threads] */
    char err[512];
} cpu_ctx;

/* 1 when the CPU has AVX-512 F, DQ, BW and VL and the OS saves the ZMM state (cpuid, xgetbv; cpu_bf16.c). */
int de_cpu_has_avx512(void);

/* i16 compute (cpu_i16.c): C[m, n] = alpha op(A) op(B) + beta C (+ bias[n] per row) where the weight w (rows of k
 * elements stored as wdt: f32, f16, bf16, q8_0) is A (w_is_a: C = w x, x [k, n]) or B transposed (C = x w^T, x [m, k]),
 * x untransposed f32; both operands quantized per 64-element block of k (the activation to 14 bits, the weight to 13),
 * products in int32 (vpdpwssd), f32 across blocks. DE_ERR_UNSUPPORTED when it does not apply (the caller takes the f32
 * path). */
int cpu_use_i16(const cpu_ctx *ctx);
/* int16 elements of one packed chunk of cpu_igemm's activation, and of its weight (8 MB; tests lower it) */
extern int64_t cpu_i16_chunk;
de_status cpu_igemm(cpu_ctx *ctx, int w_is_a, de_dtype wdt, const void *w, int64_t ldw, const float *x, int64_t ldx,
                    int64_t m, int64_t n, int64_t k, float alpha, float beta, float *c, int64_t ldc, const float *bias);
/* Winograd under compute i16: cpu_i16_u_alloc reserves U's packed rows for a channel block (rows = points * cn, row
 * e * cn + c for point e and channel c of the block, with their scales; ctx->i16_r); the weight transform quantizes
 * channel c's `points` rows of k floats (point e's at rows + e k) into them with cpu_i16_quant_u. cpu_i16_local, on
 * pool worker tid, computes C [m, n] = A B for the m packed rows from r0 and the f32 B [k, n] (ld ldb; packed into
 * ctx->bf_local[3 tid]). DE_ERR_OOM (local: without a message) or DE_ERR_UNSUPPORTED off x86. */
de_status cpu_i16_u_alloc(cpu_ctx *ctx, int64_t rows, int64_t k, int16_t **q, float **s);
void cpu_i16_quant_u(const float *rows, int points, int64_t k, int64_t cn, int64_t c, int16_t *Uq, float *Us);
/* Attention under compute i16 (cpu_attention.c's attn_task512 with j->i16): cpu_i16_attn_prepare quantizes every (b, h)'s K rows
 * over the head dimension (blocks of kbd) and V^T rows over the keys (blocks of 64) into ctx->i16_r / i16_p, and sizes
 * each worker's panels for blocks of bq queries (a multiple of 32) and 128 keys (DE_ERR_UNSUPPORTED: odd head_dim, no
 * per-worker buffers; the f32 kernel runs). On worker tid: cpu_i16_attn_pack_q packs the block's QT [D, nq] (ld ldq)
 * as panels; cpu_i16_attn_qk writes ST[bk, nq] (ld lds) = K[k0 .. k0 + bk] QT; cpu_i16_attn_pv adds V^T[:, k0 .. k0 +
 * bk] P to OT [D, nq] (ld ldo), P [bk, nq] (ld ldp) quantized per 64 keys. k0: a multiple of 64, bk <= 128.
 * cpu_i16_attn_thread_floats: the extra per-thread scratch (floats) prepare needs (a V column). */
typedef struct {
    int16_t *K, *VT;           /* [B H Lk][Dp], [B H D][Lkp] */
    float *sK, *sVT;           /* [B H Lk][Dp / kbd], [B H D][Lkp / 64] */
    int32_t Dp, kbd, Lkp;
} cpu_i16_attn;
size_t cpu_i16_attn_thread_floats(const de_attention_op *op);
de_status cpu_i16_attn_prepare(cpu_ctx *ctx, const de_attention_op *op, int32_t bq, cpu_i16_attn *a);
void cpu_i16_attn_pack_q(cpu_ctx *ctx, int tid, const cpu_i16_attn *a, const float *QT, int64_t ldq, int32_t D, int32_t nq);
void cpu_i16_attn_qk(cpu_ctx *ctx, int tid, const cpu_i16_attn *a, int64_t bh, int64_t kv_len, int32_t k0, int32_t bk, int32_t nq,
                     float *ST, int64_t lds);
void cpu_i16_attn_pv(cpu_ctx *ctx, int tid, const cpu_i16_attn *a, int64_t bh, int32_t D, int32_t k0, int32_t bk, const float *P,
                     int64_t ldp, int32_t nq, float *OT, int64_t ldo);
de_status cpu_i16_local(cpu_ctx *ctx, int tid, const int16_t *Uq, const float *Us, int64_t r0, int64_t m, int64_t k, const float *b,
                        int64_t n, int64_t ldb, float *c, int64_t ldc);

/* Ensures s holds at least n floats (64-byte aligned). Returns NULL on OOM. */
float *de_scratch_get(de_scratch *s, size_t n);

/* Op profiling: options.kernel_profile (DIFFEDIT_KERNEL_PROFILE=1) on any backend created in the process
 * sums wall time per op kind over the whole process and prints a table to stderr at exit. */
extern int de_prof_enabled;
double de_prof_now(void);
void de_prof_add(const char *name, double seconds, double flops);

/* Sets the error message and returns status. */
de_status cpu_fail(cpu_ctx *c, de_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* C[m, n] = alpha op(A) op(B) + beta C (+ bias[n] per row), row-major, split over the pool.
 * OpenBLAS itself is kept at 1 thread (set in de_backend_cpu_init). */
void cpu_sgemm(cpu_ctx *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *b, int64_t ldb, float beta, float *c, int64_t ldc, const float *bias);

/* bf16 compute (cpu_bf16.c): C[m, n] = alpha op(A) op(B) + beta C (+ bias[n] per row) with both operands
 * rounded to bf16 while packing (once per call) and f32 accumulation, split over the pool. A and B are f32,
 * or a weight stored as adt / bdt read by rows (a untransposed, b transposed). split_a / split_b: that operand
 * is x = hi + lo (both bf16; 16 bits of mantissa) and the product gains the term lo(A) hi(B) / hi(A) lo(B).
 * DE_ERR_UNSUPPORTED when ctx->bf16_kernel is none. Counts ctx->bf16_gemms. */
de_status cpu_bgemm(cpu_ctx *ctx, int ta, de_dtype adt, const void *a, int64_t lda, int tb, de_dtype bdt, const void *b,
                    int64_t ldb, int64_t m, int64_t n, int64_t k, float alpha, float beta, float *c, int64_t ldc,
                    const float *bias, int split_a, int split_b);
/* Bytes of one packed operand chunk: the larger of a call's two bf16 panels is packed and used in chunks of at
 * most this many bytes (whole row / column pairs), the other once (cpu_bf16.c). 16 MiB; tests set it lower to
 * run the chunked path on small shapes (Tests/OpCheck/bf16_check.c); set it only while no op runs. */
extern int64_t cpu_bf16_panel_budget;
/* The same on the calling worker tid only (inside a pool task: Winograd's per-point GEMMs), both operands f32
 * untransposed, C = A @ B; auto: both split (three terms), bf16: one term. Packs into ctx->bf_local[3 tid ..].
 * cpu_bgemm_local_ok: whether it is used here for a conv whose stored weight is wdt (AMX; compute bf16, or
 * auto with a reduced weight: f32 weights stay f32 as in cpu_use_bf16). DE_ERR_OOM without a message. */
int cpu_bgemm_local_ok(const cpu_ctx *ctx, de_dtype wdt);
de_status cpu_bgemm_local(cpu_ctx *ctx, int tid, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                          int64_t ldb, float *c, int64_t ldc);
/* Winograd (cpu_winograd.c, cpu_winograd4.c): one conv's state, shared by the transforms of F(2x2) and F(4x4).
 * Tiles (t x t outputs: th x tw per image) are numbered over the whole batch. */
typedef struct {
    const de_conv2d_op *op;
    int32_t oh, ow, th, tw;
    int64_t T;                 /* tiles per image; tile t of the batch = image t / T, tile t % T */
    int64_t t0, nt;            /* tile block [t0, t0 + nt) over the whole batch (may span images) */
    int64_t co0, cn;           /* output channel block [co0, co0 + cn): U and M hold these */
    float *U, *V, *M;          /* U[P][cn][c_in], V[P][c_in][nt], M[P][cn][nt] (P = 16 or 36 points) */
    cpu_ctx *ctx;              /* for the weight conversion buffers (reduced weight_dtype) */
    int16_t *Uq;               /* compute i16: U's rows packed ([P * cn][Kp], cpu_i16_u_alloc) and their scales, written */
    float *Us;                 /* by the weight transform a channel at a time (cpu_i16_quant_u); U (f32) is not used */
    _Atomic int failed;        /* a worker's bf16 GEMM ran out of memory */
} cpu_wino_job;
/* The blocked driver of both: output channels in blocks of cpu_wino_out_block, tiles in blocks of TB (V + M under
 * budget floats, at least tb_min); per block the weight transform (tasks over the block's channels), the input
 * transform (over c_in), the per-point GEMMs, the output transform (over the block's channels). j->op, oh, ow,
 * th, tw and T set by the caller. DE_OK or DE_ERR_OOM (message set). */
de_status cpu_wino_run(cpu_ctx *ctx, cpu_wino_job *j, int points, int64_t budget, int64_t tb_min, de_range_fn weights,
                       de_range_fn input, de_range_fn output);
/* Floats of transformed weights a Winograd conv holds at once (32 MB): above it, output channels run in blocks. */
#define CPU_WINO_U_BUDGET (8u << 20)
/* Output channels per block for a transform of `points` points (16 or 36): all of c_out when U fits the budget,
 * else a multiple of 32 (at least 32); ctx->winograd_channels when set (tests). */
int64_t cpu_wino_out_block(const cpu_ctx *ctx, int points, int32_t c_in, int32_t c_out);
/* Whether a GEMM whose weight operand is stored as wdt (DE_F32 for all-f32 GEMMs) runs in bf16 here. */
int cpu_use_bf16(const cpu_ctx *ctx, de_dtype wdt);
/* Which operands of such a GEMM are split into bf16 hi + lo parts (cpu_bgemm split_a / split_b). */
void cpu_bf16_splits(const cpu_ctx *ctx, de_dtype wdt, int *split_act, int *split_w);

/* Reduced-precision weights (cpu_weights.c). A weight matrix has rows of k elements, row stride ld.
 * cpu_wgemm: C = alpha * W @ op(X) (w_is_a; W [m, k]) or alpha * op(X) @ W^T (W [n, k]) + beta C (+ bias[n]),
 * W stored as wdt (f32 goes straight to cpu_sgemm), converted to f32 a panel at a time while packing. */
de_status cpu_wgemm(cpu_ctx *ctx, int w_is_a, de_dtype wdt, const void *w, int64_t ldw, int tx, const float *x, int64_t ldx,
                    int64_t m, int64_t n, int64_t k, float alpha, float beta, float *c, int64_t ldc, const float *bias);
/* Address of element `elem` (a multiple of 32 for q8_0) of a weight stored as dt. */
const void *cpu_weight_at(de_dtype dt, const void *w, int64_t elem);
/* Rows [r0, r0 + nr) of a weight (row stride ld) as f32 into dst [nr, k]. */
void cpu_weight_rows_f32(de_dtype dt, const void *w, int64_t ld, int64_t r0, int64_t nr, int64_t k, float *dst);
/* Every worker's per_thread scratch holds at least `floats` (DE_ERR_OOM with the message set otherwise). */
de_status cpu_weight_reserve(cpu_ctx *ctx, size_t floats);
/* Row co (K elements) of op's weight as f32: in place for f32, else converted into per_thread[tid]
 * (reserved for K floats with cpu_weight_reserve before the parallel region). */
const float *cpu_conv_weight_row(cpu_ctx *ctx, const de_conv2d_op *op, int64_t co, int64_t K, int tid);
/* NULL when a weight operand of dtype dt with row length k, row stride ld and batch stride is valid,
 * else what is wrong (for the op's message). */
const char *cpu_weight_check(de_dtype dt, int64_t k, int64_t ld, int64_t stride);

/* ops (each takes the lock, validates, runs) */
de_status cpu_gemm(de_backend *be, const de_gemm_op *op);
de_status cpu_conv2d(de_backend *be, const de_conv2d_op *op);
de_status cpu_group_norm(de_backend *be, const de_group_norm_op *op);
de_status cpu_layer_norm(de_backend *be, const de_layer_norm_op *op);
de_status cpu_softmax(de_backend *be, const de_softmax_op *op);
de_status cpu_attention(de_backend *be, const de_attention_op *op);
de_status cpu_unary(de_backend *be, const de_unary_op *op);
de_status cpu_geglu(de_backend *be, const de_geglu_op *op);
de_status cpu_binary(de_backend *be, const de_binary_op *op);
de_status cpu_upsample(de_backend *be, const de_upsample_op *op);
de_status cpu_transpose(de_backend *be, const de_transpose_op *op);
de_status cpu_copy_op(de_backend *be, const de_copy_op *op);
de_status cpu_lincomb(de_backend *be, const de_lincomb_op *op);
/* staged mode: counts p as a host operand unless it lies in an alloc'd block or a constant */
void cpu_note_operand(cpu_ctx *c, const void *p);
/* 3x3 stride-1 conv by Winograd F(2x2, 3x3); op already validated. */
de_status cpu_conv2d_winograd(cpu_ctx *ctx, const de_conv2d_op *op, int32_t oh, int32_t ow);
/* 3x3 stride-1 conv by Winograd F(4x4, 3x3) (cpu_winograd4.c); op already validated. */
de_status cpu_conv2d_winograd4(cpu_ctx *ctx, const de_conv2d_op *op, int32_t oh, int32_t ow);

static inline cpu_ctx *cpu_of(de_backend *be) { return (cpu_ctx *)be->context; }

static inline const char *de_dtype_name(de_dtype t) {
    switch (t) {
    case DE_F32: return "f32";
    case DE_F16: return "f16";
    case DE_BF16: return "bf16";
    case DE_Q8_0: return "q8_0";
    default: return "unknown";
    }
}

/* Common prologue: NULL checks, lock. Use CPU_BEGIN / CPU_END around an op body. */
#define CPU_BEGIN(name)                                                                   \
    if (!be || !be->context) return DE_ERR_INVALID;                                       \
    cpu_ctx *ctx = cpu_of(be);                                                            \
    if (!op) return cpu_fail(ctx, DE_ERR_INVALID, name ": op descriptor is NULL");        \
    if (op->dtype != DE_F32)                                                              \
        return cpu_fail(ctx, DE_ERR_UNSUPPORTED, name ": dtype %s is not supported by the cpu backend (f32 only)", \
                        de_dtype_name(op->dtype));                                        \
    pthread_mutex_lock(&ctx->op_lock);                                                    \
    const char *prof_name__ = name;                                                       \
    const double prof_t0__ = de_prof_enabled ? de_prof_now() : 0.0;                       \
    double prof_flops__ = 0.0;                                                            \
    de_status st__ = DE_OK;

#define CPU_END()                                                                         \
    if (de_prof_enabled) de_prof_add(prof_name__, de_prof_now() - prof_t0__, st__ == DE_OK ? prof_flops__ : 0.0); \
    pthread_mutex_unlock(&ctx->op_lock);                                                  \
    return st__;

/* Set the profile bucket of the current op (e.g. "conv2d.winograd"); a string literal. */
#define CPU_PROFILE_AS(label) (prof_name__ = (label))
/* The op's arithmetic for the profile's GFLOP/s column (2 per multiply-add) */
#define CPU_PROFILE_FLOPS(f) (prof_flops__ = (double)(f))

/* Validation helpers: set st__ and jump to out__ on failure (lock is held). */
#define CPU_CHECK(cond, name, ...)                                                        \
    do {                                                                                  \
        if (!(cond)) { st__ = cpu_fail(ctx, DE_ERR_INVALID, name ": " __VA_ARGS__); goto out__; } \
    } while (0)

/* ---- vectorizable math (no libm calls, so loops vectorize without -ffast-math) ---- */

static inline float de_bits_to_f(int32_t i) { float f; memcpy(&f, &i, 4); return f; }

/* exp(x), relative error ~2e-7 over [-87, 88]; clamps outside. */
static inline float de_expf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* n = round(x / ln 2) via the 1.5 * 2^23 trick (no libm call, vectorizes under gcc and clang) */
    const float magic = 12582912.0f;
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    return p * de_bits_to_f(e);
}

static inline float de_sigmoidf(float x) { return 1.0f / (1.0f + de_expf(-x)); }
static inline float de_siluf(float x) { return x / (1.0f + de_expf(-x)); }

/* erfc(z) for z >= 0 with fractional error < 1.2e-7 (Numerical Recipes erfcc). */
static inline float de_erfc_pos(float z) {
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t + -0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t + -1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t + -0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t + -1.26551223f;
    return t * de_expf(-z * z + p);
}

/* exact (erf) GELU: 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2) */
static inline float de_geluf(float x) {
    float z = x * 0.70710678118654752f;
    float az = z < 0 ? -z : z;
    float e = de_erfc_pos(az);
    float c = x < 0 ? e : 2.0f - e;
    return 0.5f * x * c;
}

/* tanh-approximate GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) = x * sigmoid(2u) */
static inline float de_gelu_tanhf(float x) {
    float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return x / (1.0f + de_expf(-2.0f * u));
}

static inline float de_quick_geluf(float x) { return x / (1.0f + de_expf(-1.702f * x)); }

/* Sum of x[0..n) accumulated in double (16 float lanes per block of 1024, flushed to double). */
double de_sum_f64(const float *x, int64_t n);
/* Sum of (x - mean)^2 accumulated in double. */
double de_sumsq_dev_f64(const float *x, int64_t n, float mean);
/* max of x[0..n) (n > 0) */
float de_max_f32(const float *x, int64_t n);

#endif /* DE_CPU_INTERNAL_H */
