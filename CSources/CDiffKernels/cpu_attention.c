/* cpu_attention.c — fused flash-style attention for the CPU provider.
 *
 * Everything is computed transposed, so that queries run along the SIMD lanes and no K or V
 * packing is needed (K and V rows are read in place with their strides):
 * One task = (batch b, head h, block of BQ queries):
 *   QT[D, BQ]    = scale * q^T                         (packed once per task, zero-padded columns)
 *   for each block of BK keys (k0 .. k0 + bk):
 *     ST[bk, BQ]  = K[bk, D] @ QT[D, BQ]               (4x16 register-tiled kernel, K in place)
 *     online softmax down the columns (one column = one query, vectorized across queries),
 *     in base 2 (QT carries log2 e): m_new = max(m, max_j ST[j, :]); P = 2^(ST - m_new);
 *       l = l * c + sum_j P; OT *= c, with c = 2^(m - m_new)
 *     OT[D, BQ]  += V^T[D, bk] @ P[bk, BQ]             (same kernel; V^T read in place)
 *   o[i, :] = OT[:, i] / l[i]
 * Scratch per thread: (BK + 2 D + 5) * BQ floats. Never [q_len, kv_len].
 * Any bk and head_dim: rows are covered by 6/4/2/1-row kernels; queries are padded to NR lanes
 * (zero columns of QT; their results are never written out).
 *
 * Two builds of the task: the portable one below (plain C the compiler vectorises for the target, AVX2 at
 * -march=x86-64-v3) and, on x86-64 CPUs with AVX-512F (ctx->simd512), one written with AVX-512 intrinsics:
 * 32 queries per register pair (6x32 kernels, 12 zmm accumulators) and the online softmax in registers,
 * one strip of 32 queries at a time. On CPUs with two 512-bit FMA ports (Sapphire Rapids) 256-bit FMAs run
 * at half the machine's rate: measured on SD 1.5's 4096-token self-attention (batch 2, 8 heads, head_dim 40,
 * one thread) 0.85 s portable vs 0.40 s AVX-512 (tools: /tmp microbenchmark, numbers in docs/performance.md).
 * Both compute the same sums in the same order up to FMA contraction; both are checked against a
 * double-precision reference (KernelOpTests).
 */
#include "cpu_internal.h"

#ifndef BQ
#define BQ 128  /* queries per task (multiple of NR) */
#endif
#ifndef BK
#define BK 128  /* keys per block */
#endif
#define NR 16
_Static_assert(BQ % 32 == 0, "BQ must be a multiple of both kernels' query widths (16, 32)");

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* 2^x, relative error ~2e-7 on [-126, 126] (clamped outside): scores are kept in base-2 units
 * (log2(e) is folded into the query scale), which saves the range-reduction multiply of exp. */
static inline float exp2_f(float x) {
    x = x < -126.0f ? -126.0f : x;
    x = x > 126.0f ? 126.0f : x;
    const float magic = 12582912.0f;          /* 1.5 * 2^23: round to nearest */
    const float n = (x + magic) - magic;
    const float f = x - n;                     /* [-0.5, 0.5] */
    float p = 1.5403530393381608e-4f;          /* ln2^k / k! */
    p = p * f + 1.3333558146428443e-3f;
    p = p * f + 9.6181291076284772e-3f;
    p = p * f + 5.5504108664821580e-2f;
    p = p * f + 2.4022650695910071e-1f;
    p = p * f + 6.9314718055994531e-1f;
    p = p * f + 1.0f;
    return p * de_bits_to_f(((int32_t)n + 127) << 23);
}

/* C[M, NR] (=|+=) A[M, K] @ B[K, NR], M in {6, 4, 2, 1}
 * A(r, k) = a[r * a_rs + k * a_cs]; B(k, j) = b[k * ldb + j]; C(r, j) = c[r * ldc + j].
 * 6 x 16 keeps 12 accumulators in ymm registers (enough to hide the FMA latency). */
#define DEF_KERN(M)                                                                                       \
    static inline void kern_##M##x16(const float *restrict a, int64_t a_rs, int64_t a_cs,                 \
                                     const float *restrict b, int64_t ldb, int32_t K, float *restrict c,   \
                                     int64_t ldc, int accumulate) {                                        \
        float acc[M][NR];                                                                                 \
        for (int r = 0; r < M; r++)                                                                       \
            for (int j = 0; j < NR; j++) acc[r][j] = accumulate ? c[r * ldc + j] : 0.0f;                  \
        for (int32_t k = 0; k < K; k++) {                                                                 \
            const float *br = b + (int64_t)k * ldb;                                                       \
            const float *ak = a + (int64_t)k * a_cs;                                                      \
            for (int r = 0; r < M; r++) {                                                                 \
                const float av = ak[r * a_rs];                                                            \
                for (int j = 0; j < NR; j++) acc[r][j] += av * br[j];                                     \
            }                                                                                             \
        }                                                                                                 \
        for (int r = 0; r < M; r++)                                                                       \
            for (int j = 0; j < NR; j++) c[r * ldc + j] = acc[r][j];                                      \
    }
DEF_KERN(6)
DEF_KERN(4)
DEF_KERN(2)
DEF_KERN(1)

/* C[M, ncols] (=|+=) A[M, K] @ B[K, ncols], ncols a multiple of W; any M: rows by the 6/4/2/1-row kernels
 * KP<R>x<W> (addressing as kern_MxNR). One definition for both builds: tile_gemm over the portable 16-lane
 * kernels above, tile_gemm512 over the AVX-512 32-lane ones (ATTR: their target attribute). */
#define TILE_ROWS(R, KP, W)                                                                                   \
    for (; r0 + R <= M; r0 += R)                                                                              \
        for (int32_t c0 = 0; c0 < ncols; c0 += W)                                                             \
            KP##R##x##W(a + r0 * a_rs, a_rs, a_cs, b + c0, ldb, K, c + (int64_t)r0 * ldc + c0, ldc, accumulate);
#define DEF_TILE_GEMM(NAME, ATTR, KP, W)                                                                      \
    ATTR static void NAME(int32_t M, const float *a, int64_t a_rs, int64_t a_cs, const float *b, int64_t ldb,  \
                          int32_t K, float *c, int64_t ldc, int32_t ncols, int accumulate) {                  \
        int32_t r0 = 0;                                                                                       \
        TILE_ROWS(6, KP, W)                                                                                   \
        TILE_ROWS(4, KP, W)                                                                                   \
        TILE_ROWS(2, KP, W)                                                                                   \
        TILE_ROWS(1, KP, W)                                                                                   \
    }
DEF_TILE_GEMM(tile_gemm, , kern_, 16)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DE_ATTN_AVX512 1
#include <immintrin.h>
#define A512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
#define NR5 32   /* queries per kernel column block: two zmm */

/* exp2_f on 16 lanes: the same clamp and polynomial; 2^n applied with vscalefps */
A512 static inline __m512 exp2_512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-126.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(126.0f));
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.5403530393381608e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076284772e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108664821580e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650695910071e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718055994531e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* C[M, 32] (=|+=) A[M, K] @ B[K, 32], M in {6, 4, 2, 1}; addressing as kern_MxNR */
#define DEF_KERN512(M)                                                                                      \
    A512 static inline void kern5_##M##x32(const float *restrict a, int64_t a_rs, int64_t a_cs,            \
                                           const float *restrict b, int64_t ldb, int32_t K,                 \
                                           float *restrict c, int64_t ldc, int accumulate) {                \
        __m512 lo[M], hi[M];                                                                                \
        for (int r = 0; r < M; r++) {                                                                       \
            lo[r] = accumulate ? _mm512_loadu_ps(c + r * ldc) : _mm512_setzero_ps();                        \
            hi[r] = accumulate ? _mm512_loadu_ps(c + r * ldc + 16) : _mm512_setzero_ps();                   \
        }                                                                                                   \
        for (int32_t k = 0; k < K; k++) {                                                                   \
            const float *br = b + (int64_t)k * ldb;                                                         \
            const __m512 b0 = _mm512_loadu_ps(br), b1 = _mm512_loadu_ps(br + 16);                           \
            const float *ak = a + (int64_t)k * a_cs;                                                        \
            for (int r = 0; r < M; r++) {                                                                   \
                const __m512 av = _mm512_set1_ps(ak[r * a_rs]);                                             \
                lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);                                                     \
                hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);                                                     \
            }                                                                                               \
        }                                                                                                   \
        for (int r = 0; r < M; r++) {                                                                       \
            _mm512_storeu_ps(c + r * ldc, lo[r]);                                                           \
            _mm512_storeu_ps(c + r * ldc + 16, hi[r]);                                                      \
        }                                                                                                   \
    }
DEF_KERN512(6)
DEF_KERN512(4)
DEF_KERN512(2)
DEF_KERN512(1)

DEF_TILE_GEMM(tile_gemm512, A512, kern5_, 32)
#endif

typedef struct {
    const de_attention_op *op;
    cpu_ctx *ctx;
    int32_t nqb;        /* query blocks per (b, h) */
    const cpu_i16_attn *i16;  /* compute i16: K and V^T quantized (attn_task512 takes the i16 GEMMs) */
} attn_job;

/* One task's block of queries (b, h, queries q0 .. q0 + bq): its scratch, where it reads K / V and writes o. */
typedef struct {
    float *QT, *ST, *OT, *m, *l;   /* per-thread scratch: [D, BQ], [BK, BQ], [D, BQ], [BQ], [BQ] */
    const float *kbase, *vbase;    /* K and V of (b, h) */
    float *o;                      /* output row of the first query */
    int32_t bq, nq;                /* valid queries; columns computed (bq rounded up to the kernel's lanes) */
} attn_block;

/* Task t's block: QT[D, nq] = scale * log2(e) * q^T (zero columns past bq), OT = 0, m = -inf, l = 0.
 * Shared by both builds of the task (lanes: 16 portable, 32 AVX-512). */
static void attn_begin(const attn_job *j, int64_t t, int tid, int32_t lanes, attn_block *a) {
    const de_attention_op *op = j->op;
    const int32_t D = op->head_dim;
    a->QT = j->ctx->per_thread[tid].ptr;
    a->ST = a->QT + (size_t)D * BQ;
    a->OT = a->ST + (size_t)BK * BQ;
    a->m = a->OT + (size_t)D * BQ;
    a->l = a->m + BQ;
    const int64_t bh = t / j->nqb;
    const int32_t qb = (int32_t)(t % j->nqb);
    const int64_t b = bh / op->heads, h = bh % op->heads;
    const int32_t q0 = qb * BQ;
    a->bq = op->q_len - q0 < BQ ? op->q_len - q0 : BQ;
    a->nq = (int32_t)round_up(a->bq, lanes);
    a->kbase = (const float *)op->k + b * op->k_sb + h * op->k_sh;
    a->vbase = (const float *)op->v + b * op->v_sb + h * op->v_sh;
    a->o = (float *)op->o + b * op->o_sb + h * op->o_sh + (int64_t)q0 * op->o_st;
    const float *q = (const float *)op->q + b * op->q_sb + h * op->q_sh + (int64_t)q0 * op->q_st;
    const float scale = op->scale * 1.44269504088896341f;   /* scores in log2 units */
    for (int32_t i = 0; i < a->nq; i++) {
        if (i < a->bq) {
            const float *src = q + (int64_t)i * op->q_st;
            for (int32_t d = 0; d < D; d++) a->QT[(int64_t)d * BQ + i] = src[d] * scale;
        } else {
            for (int32_t d = 0; d < D; d++) a->QT[(int64_t)d * BQ + i] = 0.0f;
        }
    }
    for (int32_t d = 0; d < D; d++) memset(a->OT + (int64_t)d * BQ, 0, sizeof(float) * (size_t)a->nq);
    for (int32_t i = 0; i < a->nq; i++) { a->m[i] = -INFINITY; a->l[i] = 0.0f; }
}

/* o[i, :] = OT[:, i] / l[i] for the block's valid queries */
static void attn_end(const attn_job *j, const attn_block *a) {
    const de_attention_op *op = j->op;
    for (int32_t i = 0; i < a->bq; i++) {
        const float inv = 1.0f / a->l[i];
        float *dst = a->o + (int64_t)i * op->o_st;
        for (int32_t d = 0; d < op->head_dim; d++) dst[d] = a->OT[(int64_t)d * BQ + i] * inv;
    }
}

static void attn_task(void *va, int64_t tb, int64_t te, int tid) {
    attn_job *j = va;
    const de_attention_op *op = j->op;
    const int32_t D = op->head_dim, Lk = op->kv_len;
    for (int64_t t = tb; t < te; t++) {
        attn_block a;
        attn_begin(j, t, tid, NR, &a);
        float *ST = a.ST, *OT = a.OT, *m = a.m, *l = a.l;
        float *cf = l + BQ, *mx = cf + BQ, *sm = mx + BQ;   /* [BQ] each */
        const int32_t nq = a.nq;
        const float *kbase = a.kbase, *vbase = a.vbase;
        const float *QT = a.QT;

        for (int32_t k0 = 0; k0 < Lk; k0 += BK) {
            const int32_t bk = Lk - k0 < BK ? Lk - k0 : BK;
            /* ST[bk, nq] = K[bk, D] @ QT[D, nq]  (K rows in place) */
            tile_gemm(bk, kbase + (int64_t)k0 * op->k_st, op->k_st, 1, QT, BQ, D, ST, BQ, nq, 0);

            /* online softmax down the columns, rows j < bk */
            for (int32_t i = 0; i < nq; i++) mx[i] = ST[i];
            for (int32_t r = 1; r < bk; r++) {
                const float *s = ST + (int64_t)r * BQ;
                for (int32_t i = 0; i < nq; i++) mx[i] = s[i] > mx[i] ? s[i] : mx[i];
            }
            for (int32_t i = 0; i < nq; i++) {
                const float mn = mx[i] > m[i] ? mx[i] : m[i];
                cf[i] = exp2_f(m[i] - mn);   /* m = -inf on the first block: c ~ 0, and l = O = 0 anyway */
                m[i] = mn;
                sm[i] = 0.0f;
            }
            for (int32_t r = 0; r < bk; r++) {
                float *s = ST + (int64_t)r * BQ;
                for (int32_t i = 0; i < nq; i++) { const float p = exp2_f(s[i] - m[i]); s[i] = p; sm[i] += p; }
            }
            for (int32_t i = 0; i < nq; i++) l[i] = l[i] * cf[i] + sm[i];
            if (k0 > 0)
                for (int32_t d = 0; d < D; d++) {
                    float *o = OT + (int64_t)d * BQ;
                    for (int32_t i = 0; i < nq; i++) o[i] *= cf[i];
                }

            /* OT[D, nq] += V^T[D, bk] @ P[bk, nq];  V^T(d, j) = v[j * v_st + d], read in place */
            tile_gemm(D, vbase + (int64_t)k0 * op->v_st, 1, op->v_st, ST, BQ, bk, OT, BQ, nq, 1);
        }
        attn_end(j, &a);
    }
}

#ifdef DE_ATTN_AVX512
/* The online softmax of one block of keys, strip by strip (32 queries = two zmm): the column maxima, then
 * P = 2^(ST - m_new) in place with the column sums, l and OT's rescale (not on the first block), all in registers. */
A512 static void attn_softmax512(float *ST, int32_t bk, int32_t nq, float *m, float *l, float *OT, int32_t D, int first) {
    for (int32_t c0 = 0; c0 < nq; c0 += NR5) {
        __m512 mx0 = _mm512_loadu_ps(ST + c0), mx1 = _mm512_loadu_ps(ST + c0 + 16);
        for (int32_t r = 1; r < bk; r++) {
            const float *s = ST + (int64_t)r * BQ + c0;
            mx0 = _mm512_max_ps(mx0, _mm512_loadu_ps(s));
            mx1 = _mm512_max_ps(mx1, _mm512_loadu_ps(s + 16));
        }
        const __m512 mo0 = _mm512_loadu_ps(m + c0), mo1 = _mm512_loadu_ps(m + c0 + 16);
        const __m512 mn0 = _mm512_max_ps(mx0, mo0), mn1 = _mm512_max_ps(mx1, mo1);
        /* m = -inf on the first block: c ~ 0, and l = O = 0 anyway */
        const __m512 cf0 = exp2_512(_mm512_sub_ps(mo0, mn0)), cf1 = exp2_512(_mm512_sub_ps(mo1, mn1));
        _mm512_storeu_ps(m + c0, mn0);
        _mm512_storeu_ps(m + c0 + 16, mn1);
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        for (int32_t r = 0; r < bk; r++) {
            float *s = ST + (int64_t)r * BQ + c0;
            const __m512 p0 = exp2_512(_mm512_sub_ps(_mm512_loadu_ps(s), mn0));
            const __m512 p1 = exp2_512(_mm512_sub_ps(_mm512_loadu_ps(s + 16), mn1));
            _mm512_storeu_ps(s, p0);
            _mm512_storeu_ps(s + 16, p1);
            s0 = _mm512_add_ps(s0, p0);
            s1 = _mm512_add_ps(s1, p1);
        }
        _mm512_storeu_ps(l + c0, _mm512_fmadd_ps(_mm512_loadu_ps(l + c0), cf0, s0));
        _mm512_storeu_ps(l + c0 + 16, _mm512_fmadd_ps(_mm512_loadu_ps(l + c0 + 16), cf1, s1));
        if (!first)
            for (int32_t d = 0; d < D; d++) {
                float *o = OT + (int64_t)d * BQ + c0;
                _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_loadu_ps(o), cf0));
                _mm512_storeu_ps(o + 16, _mm512_mul_ps(_mm512_loadu_ps(o + 16), cf1));
            }
    }
}

/* attn_task with AVX-512: queries padded to NR5 = 32 lanes, the softmax of each block in registers
 * (attn_softmax512); same scratch layout as attn_task. With j->i16 (compute i16, cpu_i16.c) both GEMMs in 16-bit
 * integer terms: K and V^T quantized once per op, the block's QT once per task, the probabilities per block of keys. */
A512 static void attn_task512(void *va, int64_t tb, int64_t te, int tid) {
    attn_job *j = va;
    const de_attention_op *op = j->op;
    const int32_t D = op->head_dim, Lk = op->kv_len;
    for (int64_t t = tb; t < te; t++) {
        attn_block a;
        attn_begin(j, t, tid, NR5, &a);
        const int64_t bh = t / j->nqb;
        if (j->i16) cpu_i16_attn_pack_q(j->ctx, tid, j->i16, a.QT, BQ, D, a.nq);
        for (int32_t k0 = 0; k0 < Lk; k0 += BK) {
            const int32_t bk = Lk - k0 < BK ? Lk - k0 : BK;
            if (j->i16) cpu_i16_attn_qk(j->ctx, tid, j->i16, bh, Lk, k0, bk, a.nq, a.ST, BQ);
            else tile_gemm512(bk, a.kbase + (int64_t)k0 * op->k_st, op->k_st, 1, a.QT, BQ, D, a.ST, BQ, a.nq, 0);
            attn_softmax512(a.ST, bk, a.nq, a.m, a.l, a.OT, D, k0 == 0);
            if (j->i16) cpu_i16_attn_pv(j->ctx, tid, j->i16, bh, D, k0, bk, a.ST, BQ, a.nq, a.OT, BQ);
            else tile_gemm512(D, a.vbase + (int64_t)k0 * op->v_st, 1, op->v_st, a.ST, BQ, bk, a.OT, BQ, a.nq, 1);
        }
        attn_end(j, &a);
    }
}

#endif

de_status cpu_attention(de_backend *be, const de_attention_op *op) {
    CPU_BEGIN("attention")
    CPU_CHECK(op->batch > 0 && op->heads > 0, "attention", "batch and heads must be positive (got batch=%d heads=%d)", op->batch, op->heads);
    CPU_CHECK(op->q_len > 0 && op->kv_len > 0, "attention", "q_len and kv_len must be positive (got q_len=%d kv_len=%d)", op->q_len, op->kv_len);
    CPU_CHECK(op->head_dim > 0, "attention", "head_dim must be positive (got %d)", op->head_dim);
    CPU_CHECK(op->q != NULL, "attention", "q is NULL");
    CPU_CHECK(op->k != NULL, "attention", "k is NULL");
    CPU_CHECK(op->v != NULL, "attention", "v is NULL");
    CPU_CHECK(op->o != NULL, "attention", "o is NULL");
    CPU_CHECK(op->q_sb >= 0 && op->q_sh >= 0 && op->q_st >= 0, "attention", "q strides must be non-negative");
    CPU_CHECK(op->k_sb >= 0 && op->k_sh >= 0 && op->k_st >= 0, "attention", "k strides must be non-negative");
    CPU_CHECK(op->v_sb >= 0 && op->v_sh >= 0 && op->v_st >= 0, "attention", "v strides must be non-negative");
    CPU_CHECK(op->o_sb >= 0 && op->o_sh >= 0 && op->o_st >= 0, "attention", "o strides must be non-negative");
    CPU_CHECK(isfinite(op->scale), "attention", "scale is not finite");
    {
        const int32_t D = op->head_dim;
        size_t need = (size_t)D * BQ + (size_t)BK * BQ + (size_t)D * BQ + 5 * BQ + 64;
        const int i16 = ctx->simd512 && cpu_use_i16(ctx);
        if (i16 && cpu_i16_attn_thread_floats(op) > need) need = cpu_i16_attn_thread_floats(op);
        for (int t = 0; t < ctx->n_threads; t++)
            if (!de_scratch_get(&ctx->per_thread[t], need)) {
                st__ = cpu_fail(ctx, DE_ERR_OOM, "attention: out of memory for scratch (%zu floats per thread)", need);
                goto out__;
            }
        attn_job j = { op, ctx, (op->q_len + BQ - 1) / BQ, NULL };
        CPU_PROFILE_FLOPS(4.0 * op->batch * op->heads * op->q_len * op->kv_len * D);  /* Q K^T and P V */
        const int64_t tasks = (int64_t)op->batch * op->heads * j.nqb;
#ifdef DE_ATTN_AVX512
        if (i16) {   /* compute i16 on AVX512-VNNI (cpu_i16.c); an unsupported shape (odd head_dim) stays f32 */
            cpu_i16_attn qa;
            const de_status st = cpu_i16_attn_prepare(ctx, op, BQ, &qa);
            if (st == DE_OK) {
                CPU_PROFILE_AS("attention.i16");
                j.i16 = &qa;
                de_pool_for(&ctx->pool, tasks, 1, attn_task512, &j);
                goto out__;
            }
            if (st != DE_ERR_UNSUPPORTED) { st__ = st; goto out__; }
        }
        if (ctx->simd512) { de_pool_for(&ctx->pool, tasks, 1, attn_task512, &j); goto out__; }
#else
        (void)i16;
#endif
        de_pool_for(&ctx->pool, tasks, 1, attn_task, &j);
    }
out__:
    CPU_END()
}
