/* cpu_i16.c — GEMMs with a weight operand in 16-bit integer terms on AVX512-VNNI (vpdpwssd), for CPUs without AMX
 * (AMD Zen 4: vpdpwssd does 32 multiply-adds per cycle and core, twice vfmadd231ps; measured 230 against 116
 * GFLOP/s on one core). Options.cpu_compute i16 (DIFFEDIT_COMPUTE=i16, `--compute i16`).
 *
 * C[i, j] = sum_k R[i, k] P[k, j]. Both operands are quantized while packing, per row of R / column of P and block
 * of I16_KB = 64 k values, to integers q = round(v * L / max|v|) with scale s = max|v| / L over the block: L = 8191
 * for the activation (14 bits), 4000 for the weight (13 bits), so a block's products sum exactly in int32
 * (64 * 8191 * 4000 < 2^31), and
 *     C[i, j] = sum_b sR[i, b] sP[b, j] sum_{k in b} qR[i, k] qP[k, j]     (f32, one fma per block)
 * The error per element is at most s / 2: 2^-14 (activation) / 2^-13 (weight) of its block's largest magnitude,
 * a GEMM's relative error ~1e-4 (bf16 rounding: ~2e-3), with f32 accumulation across blocks.
 *
 * Layouts (Kp = k rounded up to I16_KB, zero padded; nb = Kp / I16_KB):
 *   R: int16 rows [rows][Kp], scales sR [rows][nb]                           (broadcast a k pair per row)
 *   P: panels of 32 columns, int16 [Kp / 2][32][2] (lane j holds column j's k pair, vpdpwssd's operand form),
 *      scales sP [nb][32]
 * Orientation (cpu_weights.c's cpu_wgemm): a linear layer (the weight is b, transposed) has R = x rows and P = the
 * weight rows; a convolution (the weight is a) has R = the weight rows and P = x's columns. The activation is packed
 * in chunks of at most cpu_i16_chunk int16 and the weight in chunks of as many, so scratch stays bounded
 * (the VAE's 1x1 convolution at 512 px reads a [512, 262144] activation).
 * Microkernel: 6 rows x 32 columns, 12 int32 accumulators flushed into 12 f32 ones every block; k in passes of
 * I16_KC (a 16 KB panel slice in L1) over a task's rows (I16_MC: their slice in L2).
 */
#include "cpu_internal.h"

#include <stdlib.h>

#define I16_KB 64
#define I16_QA 8191.0f                /* activation levels: 14 bits */
#define I16_QW 4000.0f                /* weight levels: 13 bits; 64 * 8191 * 4000 = 2.097e9 < 2^31 */
#define I16_KC 256                    /* k per pass */
#define I16_MR 6
#define I16_MC 96                     /* rows per task */
#define I16_PG 8                      /* panels per task */
int64_t cpu_i16_chunk = (int64_t)4 << 20;   /* int16 of a packed activation chunk, and of a weight chunk: 8 MB */

int cpu_use_i16(const cpu_ctx *ctx) { return ctx->compute == DE_COMPUTE_I16 && ctx->i16_kernel; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define I16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")))

static inline int64_t kpad(int64_t k) { return (k + I16_KB - 1) / I16_KB * I16_KB; }

static inline I16_TARGET __mmask16 mask16(int64_t n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* one block of kb (<= 64, even) values held in v[0 .. ceil(kb / 16)) (zero past the row's end): its scale *s and
 * q[0, kb) */
static inline I16_TARGET void quant_block(const __m512 v[4], int kb, int16_t *q, float *s, float levels) {
    __m512 mx = _mm512_setzero_ps();
    for (int i = 0; 16 * i < kb; i++) mx = _mm512_max_ps(mx, _mm512_abs_ps(v[i]));
    const float amax = _mm512_reduce_max_ps(mx);
    *s = amax / levels;
    const __m512 inv = _mm512_set1_ps(amax > 0.0f ? levels / amax : 0.0f);
    for (int i = 0; 16 * i < kb; i++)
        _mm256_mask_storeu_epi16(q + 16 * i, mask16(kb - 16 * i), _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(_mm512_mul_ps(v[i], inv))));
}

/* q[0, Kp) and s[0, Kp / kb) from the f32 row x[0, k), blocks of kb (even, <= 64) values */
static I16_TARGET void quant_row(const float *x, int64_t k, int64_t Kp, int16_t *q, float *s, float levels, int kb) {
    for (int64_t b0 = 0; b0 < Kp; b0 += kb) {
        __m512 v[4];
        for (int i = 0; 16 * i < kb; i++) v[i] = _mm512_maskz_loadu_ps(mask16((k - b0 < kb ? k - b0 : kb) - 16 * i), x + b0 + 16 * i);
        quant_block(v, kb, q + b0, s + b0 / kb, levels);
    }
}

/* quant_row for an f16 row (a weight read in place), blocks of I16_KB: converted in registers, no f32 copy */
static I16_TARGET void quant_row_f16(const uint16_t *h, int64_t k, int64_t Kp, int16_t *q, float *s, float levels) {
    for (int64_t b0 = 0; b0 < Kp; b0 += I16_KB) {
        __m512 v[4];
        for (int i = 0; i < I16_KB / 16; i++) v[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(k - b0 - 16 * i), h + b0 + 16 * i));
        quant_block(v, I16_KB, q + b0, s + b0 / I16_KB, levels);
    }
}

/* a source of f32 rows: x rows (f32, ld) or weight rows (wdt, converted into tmp) */
typedef struct {
    de_dtype dt;
    const void *p;
    int64_t ld, k;
} i16_src;

/* row r of src quantized in blocks of I16_KB: f32 in place, f16 straight from its halves, bf16 / q8_0 through the f32
 * row tmp */
static I16_TARGET void quant_src_row(const i16_src *src, int64_t r, int64_t Kp, int16_t *q, float *s, float levels, float *tmp) {
    if (src->dt == DE_F16) {
        quant_row_f16((const uint16_t *)src->p + r * src->ld, src->k, Kp, q, s, levels);
        return;
    }
    const float *x = (const float *)src->p + r * src->ld;
    if (src->dt != DE_F32) {
        cpu_weight_rows_f32(src->dt, src->p, src->ld, r, 1, src->k, tmp);
        x = tmp;
    }
    quant_row(x, src->k, Kp, q, s, levels, I16_KB);
}

typedef struct {
    cpu_ctx *ctx;
    i16_src src;
    int64_t Kp, r0;        /* rows r0 + [b, e) of src */
    float levels;          /* pack_rows: I16_QA (an activation) or I16_QW (a weight) */
    int kb;                /* pack_panels_x: block length along k (0: I16_KB) */
    int16_t *q;            /* [rows][Kp] */
    float *s;              /* [rows][nb] */
    /* panels from an f32 [k, cols] matrix (x of a convolution) */
    const float *x;
    int64_t ldx, cols, c0; /* columns c0 + 32 * [b, e) */
} pack_job;

static I16_TARGET void pack_rows(void *va, int64_t b, int64_t e, int tid) {
    pack_job *j = va;
    const int64_t nb = j->Kp / I16_KB;
    float *tmp = j->ctx->per_thread[tid].ptr;
    for (int64_t r = b; r < e; r++) quant_src_row(&j->src, j->r0 + r, j->Kp, j->q + r * j->Kp, j->s + r * nb, j->levels, tmp);
}

/* panels whose columns are rows of src (a linear layer's weight): rows r0 + 32 p + [0, 32) */
static I16_TARGET void pack_panels_rows(void *va, int64_t b, int64_t e, int tid) {
    pack_job *j = va;
    const int64_t Kp = j->Kp, nb = Kp / I16_KB, nrows = j->cols;
    float *tmp = j->ctx->per_thread[tid].ptr;
    int16_t *qrow = (int16_t *)(tmp + Kp);
    for (int64_t p = b; p < e; p++) {
        int32_t *pan = (int32_t *)(j->q + p * Kp * 32);
        float *sp = j->s + p * nb * 32;
        for (int c = 0; c < 32; c++) {
            const int64_t r = 32 * p + c;
            float srow[Kp / I16_KB];
            if (r < nrows) quant_src_row(&j->src, j->r0 + r, Kp, qrow, srow, I16_QW, tmp);
            else { memset(qrow, 0, sizeof(int16_t) * (size_t)Kp); memset(srow, 0, sizeof(float) * (size_t)nb); }
            const int32_t *q32 = (const int32_t *)qrow;
            for (int64_t kp = 0; kp < Kp / 2; kp++) pan[kp * 32 + c] = q32[kp];
            for (int64_t bb = 0; bb < nb; bb++) sp[bb * 32 + c] = srow[bb];
        }
    }
}

/* panels of columns c0 + 32 p + [0, 32) of the f32 matrix x [k, cols] (a convolution's activation) */
static I16_TARGET void pack_panels_x(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    pack_job *j = va;
    const int64_t kb = j->kb ? j->kb : I16_KB, Kp = j->Kp, nb = Kp / kb, k = j->src.k;
    const __m512i lo16 = _mm512_set1_epi32(0xffff);
    for (int64_t p = b; p < e; p++) {
        const int64_t c = j->c0 + 32 * p, nc = j->cols - c;
        const __mmask16 m0 = mask16(nc), m1 = mask16(nc - 16);
        __m512i *pan = (__m512i *)(j->q + p * Kp * 32);
        float *sp = j->s + p * nb * 32;
        for (int64_t bb = 0; bb < nb; bb++) {
            const int64_t k0 = bb * kb, k1 = k0 + kb < k ? k0 + kb : k;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            for (int64_t kk = k0; kk < k1; kk++) {
                const float *xr = j->x + kk * j->ldx + c;
                a0 = _mm512_max_ps(a0, _mm512_abs_ps(_mm512_maskz_loadu_ps(m0, xr)));
                a1 = _mm512_max_ps(a1, _mm512_abs_ps(_mm512_maskz_loadu_ps(m1, xr + 16)));
            }
            _mm512_storeu_ps(sp + bb * 32, _mm512_div_ps(a0, _mm512_set1_ps(I16_QA)));
            _mm512_storeu_ps(sp + bb * 32 + 16, _mm512_div_ps(a1, _mm512_set1_ps(I16_QA)));
            const __m512 q = _mm512_set1_ps(I16_QA);
            const __m512 i0 = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(a0, _mm512_setzero_ps(), _CMP_GT_OQ), q, a0);
            const __m512 i1 = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(a1, _mm512_setzero_ps(), _CMP_GT_OQ), q, a1);
            for (int64_t kk = k0; kk < k0 + kb; kk += 2) {
                __m512i q0 = _mm512_setzero_si512(), q1 = _mm512_setzero_si512(), q2 = q0, q3 = q0;
                if (kk < k) {
                    const float *xr = j->x + kk * j->ldx + c;
                    q0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m0, xr), i0));
                    q1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m1, xr + 16), i1));
                }
                if (kk + 1 < k) {
                    const float *xr = j->x + (kk + 1) * j->ldx + c;
                    q2 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m0, xr), i0));
                    q3 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m1, xr + 16), i1));
                }
                _mm512_storeu_si512(pan + kk, _mm512_or_si512(_mm512_and_si512(q0, lo16), _mm512_slli_epi32(q2, 16)));
                _mm512_storeu_si512(pan + kk + 1, _mm512_or_si512(_mm512_and_si512(q1, lo16), _mm512_slli_epi32(q3, 16)));
            }
        }
    }
}

/* C[r, c] (+)= alpha sum over blocks [kb0, kb1) for rows [0, nr) and columns [0, nc) of a 6 x 32 tile; first: the
 * tile's first k pass (C = beta C + bias + alpha acc), else C += alpha acc */
static I16_TARGET void tile6x32(const int16_t *R, const float *sR, int64_t Kp, int nr, const int16_t *P, const float *sP,
                                int64_t kb0, int64_t kb1, float *C, int64_t ldc, int64_t nc, float alpha, float beta,
                                const float *bias, int first, int kbp) {
    const int64_t nb = Kp / (2 * kbp);
    __m512 f00 = _mm512_setzero_ps(), f01 = f00, f10 = f00, f11 = f00, f20 = f00, f21 = f00;
    __m512 f30 = f00, f31 = f00, f40 = f00, f41 = f00, f50 = f00, f51 = f00;
    const int32_t *x0 = (const int32_t *)R, *x1 = (const int32_t *)(R + (nr > 1 ? 1 : 0) * Kp);
    const int32_t *x2 = (const int32_t *)(R + (nr > 2 ? 2 : 0) * Kp), *x3 = (const int32_t *)(R + (nr > 3 ? 3 : 0) * Kp);
    const int32_t *x4 = (const int32_t *)(R + (nr > 4 ? 4 : 0) * Kp), *x5 = (const int32_t *)(R + (nr > 5 ? 5 : 0) * Kp);
    const float *s0 = sR, *s1 = sR + (nr > 1 ? 1 : 0) * nb, *s2 = sR + (nr > 2 ? 2 : 0) * nb;
    const float *s3 = sR + (nr > 3 ? 3 : 0) * nb, *s4 = sR + (nr > 4 ? 4 : 0) * nb, *s5 = sR + (nr > 5 ? 5 : 0) * nb;
    for (int64_t b = kb0; b < kb1; b++) {
        __m512i a00 = _mm512_setzero_si512(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
        __m512i a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
        const __m512i *pp = (const __m512i *)(P + b * kbp * 64);
        const int64_t k0 = b * kbp;
        for (int kp = 0; kp < kbp; kp++) {
            const __m512i w0 = _mm512_loadu_si512(pp + 2 * kp), w1 = _mm512_loadu_si512(pp + 2 * kp + 1);
            __m512i t;
            t = _mm512_set1_epi32(x0[k0 + kp]); a00 = _mm512_dpwssd_epi32(a00, w0, t); a01 = _mm512_dpwssd_epi32(a01, w1, t);
            t = _mm512_set1_epi32(x1[k0 + kp]); a10 = _mm512_dpwssd_epi32(a10, w0, t); a11 = _mm512_dpwssd_epi32(a11, w1, t);
            t = _mm512_set1_epi32(x2[k0 + kp]); a20 = _mm512_dpwssd_epi32(a20, w0, t); a21 = _mm512_dpwssd_epi32(a21, w1, t);
            t = _mm512_set1_epi32(x3[k0 + kp]); a30 = _mm512_dpwssd_epi32(a30, w0, t); a31 = _mm512_dpwssd_epi32(a31, w1, t);
            t = _mm512_set1_epi32(x4[k0 + kp]); a40 = _mm512_dpwssd_epi32(a40, w0, t); a41 = _mm512_dpwssd_epi32(a41, w1, t);
            t = _mm512_set1_epi32(x5[k0 + kp]); a50 = _mm512_dpwssd_epi32(a50, w0, t); a51 = _mm512_dpwssd_epi32(a51, w1, t);
        }
        const __m512 p0 = _mm512_loadu_ps(sP + b * 32), p1 = _mm512_loadu_ps(sP + b * 32 + 16);
        __m512 sc;
#define I16_FLUSH(r)                                                                              \
        sc = _mm512_set1_ps(s##r[b]);                                                             \
        f##r##0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a##r##0), _mm512_mul_ps(sc, p0), f##r##0);   \
        f##r##1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a##r##1), _mm512_mul_ps(sc, p1), f##r##1);
        I16_FLUSH(0) I16_FLUSH(1) I16_FLUSH(2) I16_FLUSH(3) I16_FLUSH(4) I16_FLUSH(5)
#undef I16_FLUSH
    }
    const __mmask16 m0 = mask16(nc), m1 = mask16(nc - 16);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __m512 b0 = first && bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 b1 = first && bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    __m512 fr[6][2] = { { f00, f01 }, { f10, f11 }, { f20, f21 }, { f30, f31 }, { f40, f41 }, { f50, f51 } };
    for (int r = 0; r < nr; r++) {
        float *c = C + r * ldc;
        __m512 v0 = _mm512_fmadd_ps(fr[r][0], va, b0), v1 = _mm512_fmadd_ps(fr[r][1], va, b1);
        if (!first) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c + 16));
        } else if (beta != 0.0f) {
            v0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, c), vb, v0);
            v1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, c + 16), vb, v1);
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
    }
}

typedef struct {
    const int16_t *R; const float *sR; int64_t rows;     /* packed R chunk */
    const int16_t *P; const float *sP; int64_t cols;     /* packed P chunk (cols columns, ceil(cols / 32) panels) */
    int64_t Kp;
    float *C; int64_t ldc;                               /* C at the chunks' first row and column */
    float alpha, beta;
    const float *bias;                                   /* at the chunk's first column, or NULL */
    int64_t ngp;                                         /* panel groups */
} run_job;

/* rows [r0, r1) x panels [p0, p1) of C: k in passes of I16_KC, each over the panels and, per panel, the rows */
static I16_TARGET void run_range(const run_job *j, int64_t r0, int64_t r1, int64_t p0, int64_t p1) {
    const int64_t Kp = j->Kp, nb = Kp / I16_KB;
    for (int64_t kb = 0; kb < nb; kb += I16_KC / I16_KB) {
        const int64_t kb1 = kb + I16_KC / I16_KB < nb ? kb + I16_KC / I16_KB : nb;
        for (int64_t p = p0; p < p1; p++) {
            const int16_t *P = j->P + p * Kp * 32;
            const float *sP = j->sP + p * nb * 32;
            for (int64_t r = r0; r < r1; r += I16_MR) {
                const int nr = r1 - r < I16_MR ? (int)(r1 - r) : I16_MR;
                tile6x32(j->R + r * Kp, j->sR + r * nb, Kp, nr, P, sP, kb, kb1, j->C + r * j->ldc + 32 * p, j->ldc,
                         j->cols - 32 * p, j->alpha, j->beta, j->bias ? j->bias + 32 * p : NULL, kb == 0, I16_KB / 2);
            }
        }
    }
}

static void run_tasks(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    const run_job *j = va;
    const int64_t npan = (j->cols + 31) / 32;
    for (int64_t t = b; t < e; t++) {
        const int64_t rg = t / j->ngp, pg = t % j->ngp;
        const int64_t r0 = rg * I16_MC, r1 = r0 + I16_MC < j->rows ? r0 + I16_MC : j->rows;
        const int64_t p0 = pg * I16_PG, p1 = p0 + I16_PG < npan ? p0 + I16_PG : npan;
        run_range(j, r0, r1, p0, p1);
    }
}

static void run_chunk(cpu_ctx *ctx, run_job *j) {
    const int64_t npan = (j->cols + 31) / 32;
    j->ngp = (npan + I16_PG - 1) / I16_PG;
    const int64_t ngr = (j->rows + I16_MC - 1) / I16_MC;
    de_pool_for(&ctx->pool, ngr * j->ngp, 1, run_tasks, j);
}

de_status cpu_igemm(cpu_ctx *ctx, int w_is_a, de_dtype wdt, const void *w, int64_t ldw, const float *x, int64_t ldx,
                    int64_t m, int64_t n, int64_t k, float alpha, float beta, float *c, int64_t ldc, const float *bias) {
    const int64_t Kp = kpad(k), nb = Kp / I16_KB;
    if (nb > 4096) return DE_ERR_UNSUPPORTED;   /* pack_panels_rows keeps a row's scales on the stack */
    /* per worker: an f32 row + its int16 form (pack_rows, pack_panels_rows) */
    for (int t = 0; t < ctx->n_threads; t++)
        if (!de_scratch_get(&ctx->per_thread[t], (size_t)(Kp + Kp / 2 + 16)))
            return cpu_fail(ctx, DE_ERR_OOM, "gemm (i16): out of memory for a %lld-element row", (long long)Kp);
    /* R: rows of C; P: columns of C. act_is_r: the activation is R (linear), else P (convolution). */
    const int act_is_r = !w_is_a;
    const int64_t rows = m, cols = n, npan = (n + 31) / 32;
    /* chunks: rows of R (rc, a multiple of I16_MC) and panels of P (pc) */
    int64_t rc = cpu_i16_chunk / Kp / I16_MC * I16_MC;
    int64_t pc = cpu_i16_chunk / (Kp * 32);
    if (rc < I16_MC) rc = I16_MC;
    if (pc < 1) pc = 1;
    if (rc > rows) rc = rows;
    if (pc > npan) pc = npan;
    int16_t *Rq = (int16_t *)de_scratch_get(&ctx->i16_r, (size_t)(rc * Kp / 2 + rc * nb));
    int16_t *Pq = (int16_t *)de_scratch_get(&ctx->i16_p, (size_t)(pc * Kp * 16 + pc * nb * 32));
    if (!Rq || !Pq)
        return cpu_fail(ctx, DE_ERR_OOM, "gemm (i16): out of memory for the packed operands (%lld x %lld, k %lld)", (long long)m,
                        (long long)n, (long long)k);
    float *sR = (float *)(Rq + rc * Kp), *sP = (float *)(Pq + pc * Kp * 32);
    const i16_src wsrc = { wdt, w, ldw, k }, xsrc = { DE_F32, x, ldx, k };
    /* the activation chunks outside, the weight's inside; a weight in one chunk is packed once */
    const int64_t n_act = act_is_r ? (rows + rc - 1) / rc : (npan + pc - 1) / pc;
    const int64_t n_w = act_is_r ? (npan + pc - 1) / pc : (rows + rc - 1) / rc;
    for (int64_t ai = 0; ai < n_act; ai++) {
        for (int64_t wi = 0; wi < n_w; wi++) {
            const int64_t ri = act_is_r ? ai : wi, pi = act_is_r ? wi : ai;
            const int64_t r0 = ri * rc, nr = rows - r0 < rc ? rows - r0 : rc;
            const int64_t p0 = pi * pc, np = npan - p0 < pc ? npan - p0 : pc;
            const int64_t c0 = 32 * p0, ncols = cols - c0 < 32 * np ? cols - c0 : 32 * np;
            const int pack_r = act_is_r ? wi == 0 : !(n_w == 1 && ai > 0);
            const int pack_p = act_is_r ? !(n_w == 1 && ai > 0) : wi == 0;
            if (pack_r) {
                pack_job pj = { .ctx = ctx, .src = act_is_r ? xsrc : wsrc, .Kp = Kp, .r0 = r0, .q = Rq, .s = sR,
                                .levels = act_is_r ? I16_QA : I16_QW };
                de_pool_for(&ctx->pool, nr, 0, pack_rows, &pj);
            }
            if (pack_p) {
                if (act_is_r) {   /* the weight's rows r0 = c0 + [0, ncols) become panels */
                    pack_job pj = { .ctx = ctx, .src = wsrc, .Kp = Kp, .r0 = c0, .q = Pq, .s = sP, .cols = ncols };
                    de_pool_for(&ctx->pool, np, 1, pack_panels_rows, &pj);
                } else {
                    pack_job pj = { .ctx = ctx, .src = xsrc, .Kp = Kp, .q = Pq, .s = sP, .x = x, .ldx = ldx, .cols = cols, .c0 = c0 };
                    de_pool_for(&ctx->pool, np, 1, pack_panels_x, &pj);
                }
            }
            run_job rj = { Rq, sR, nr, Pq, sP, ncols, Kp, c + r0 * ldc + c0, ldc, alpha, beta, bias ? bias + c0 : NULL, 0 };
            run_chunk(ctx, &rj);
        }
    }
    return DE_OK;
}

/* ---------------------------------------------------------------- Winograd (cpu_winograd.c) */

de_status cpu_i16_u_alloc(cpu_ctx *ctx, int64_t rows, int64_t k, int16_t **q, float **s) {
    const int64_t Kp = kpad(k), nb = Kp / I16_KB;
    int16_t *Rq = (int16_t *)de_scratch_get(&ctx->i16_r, (size_t)(rows * Kp / 2 + rows * nb));
    if (!Rq) return cpu_fail(ctx, DE_ERR_OOM, "conv2d (i16 Winograd): out of memory packing %lld x %lld weights", (long long)rows,
                             (long long)k);
    *q = Rq;
    *s = (float *)(Rq + rows * Kp);
    return DE_OK;
}

void cpu_i16_quant_u(const float *rows, int points, int64_t k, int64_t cn, int64_t c, int16_t *Uq, float *Us) {
    const int64_t Kp = kpad(k), nb = Kp / I16_KB;
    for (int e = 0; e < points; e++) {
        const int64_t r = e * cn + c;
        quant_row(rows + e * k, k, Kp, Uq + r * Kp, Us + r * nb, I16_QW, I16_KB);
    }
}

de_status cpu_i16_local(cpu_ctx *ctx, int tid, const int16_t *Uq, const float *Us, int64_t r0, int64_t m, int64_t k, const float *b,
                        int64_t n, int64_t ldb, float *c, int64_t ldc) {
    const int64_t Kp = kpad(k), nb = Kp / I16_KB, npan = (n + 31) / 32;
    if (!ctx->bf_local) return DE_ERR_OOM;
    int16_t *Pq = (int16_t *)de_scratch_get(&ctx->bf_local[3 * tid], (size_t)(npan * Kp * 16 + npan * nb * 32));
    if (!Pq) return DE_ERR_OOM;
    float *sP = (float *)(Pq + npan * Kp * 32);
    pack_job pj = { .ctx = ctx, .src = { DE_F32, b, ldb, k }, .Kp = Kp, .q = Pq, .s = sP, .x = b, .ldx = ldb, .cols = n, .c0 = 0 };
    pack_panels_x(&pj, 0, npan, tid);
    const run_job rj = { Uq + r0 * Kp, Us + r0 * nb, m, Pq, sP, n, Kp, c, ldc, 1.0f, 0.0f, NULL, 0 };
    run_range(&rj, 0, m, 0, npan);
    return DE_OK;
}

/* ---------------------------------------------------------------- attention (cpu_attention.c) */

/* the block along the head dimension: D itself up to 64, else its largest even divisor of at least 16 that is at most
 * 64 (80, 160 -> 40; 128 -> 64), else 64 with zero padding */
static int attn_kb(int32_t D) {
    if (D <= 64) return D;
    for (int kb = 64; kb >= 16; kb -= 2)
        if (D % kb == 0) return kb;
    return 64;
}

typedef struct {
    const de_attention_op *op;
    cpu_ctx *ctx;
    cpu_i16_attn *a;
} attn_prep_job;

/* K rows [B H Lk] (row r = (b h, key)) over the head dimension */
static I16_TARGET void prep_k(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    const attn_prep_job *j = va;
    const de_attention_op *op = j->op;
    const cpu_i16_attn *a = j->a;
    const int64_t nbd = a->Dp / a->kbd;
    for (int64_t r = b; r < e; r++) {
        const int64_t bh = r / op->kv_len, key = r % op->kv_len;
        const float *src = (const float *)op->k + (bh / op->heads) * op->k_sb + (bh % op->heads) * op->k_sh + key * op->k_st;
        quant_row(src, op->head_dim, a->Dp, a->K + r * a->Dp, a->sK + r * nbd, I16_QW, a->kbd);
    }
}

/* V^T rows [B H D] (row r = (b h, d)) over the keys */
static I16_TARGET void prep_vt(void *va, int64_t b, int64_t e, int tid) {
    const attn_prep_job *j = va;
    const de_attention_op *op = j->op;
    const cpu_i16_attn *a = j->a;
    float *tmp = j->ctx->per_thread[tid].ptr;   /* kv_len floats (cpu_i16_attn_thread_floats) */
    for (int64_t r = b; r < e; r++) {
        const int64_t bh = r / op->head_dim, d = r % op->head_dim;
        const float *src = (const float *)op->v + (bh / op->heads) * op->v_sb + (bh % op->heads) * op->v_sh + d;
        for (int64_t key = 0; key < op->kv_len; key++) tmp[key] = src[key * op->v_st];
        quant_row(tmp, op->kv_len, a->Lkp, a->VT + r * a->Lkp, a->sVT + r * (a->Lkp / I16_KB), I16_QW, I16_KB);
    }
}

size_t cpu_i16_attn_thread_floats(const de_attention_op *op) { return (size_t)op->kv_len + 64; }

de_status cpu_i16_attn_prepare(cpu_ctx *ctx, const de_attention_op *op, int32_t bq, cpu_i16_attn *a) {
    const int32_t D = op->head_dim;
    if (D % 2 != 0 || bq % 32 != 0 || !ctx->bf_local) return DE_ERR_UNSUPPORTED;
    a->kbd = attn_kb(D);
    a->Dp = (D + a->kbd - 1) / a->kbd * a->kbd;
    a->Lkp = kpad(op->kv_len);
    const int64_t BH = (int64_t)op->batch * op->heads, nbd = a->Dp / a->kbd, nbk = a->Lkp / I16_KB;
    a->K = (int16_t *)de_scratch_get(&ctx->i16_r, (size_t)(BH * op->kv_len * (a->Dp / 2 + nbd)));
    a->VT = (int16_t *)de_scratch_get(&ctx->i16_p, (size_t)(BH * D * (a->Lkp / 2 + nbk)));
    if (!a->K || !a->VT) return cpu_fail(ctx, DE_ERR_OOM, "attention (i16): out of memory for the quantized K and V");
    a->sK = (float *)(a->K + BH * op->kv_len * a->Dp);
    a->sVT = (float *)(a->VT + BH * D * a->Lkp);
    /* per worker: the query panels and the probability panels of a block of keys (128) */
    const int64_t npan = bq / 32;
    for (int t = 0; t < ctx->n_threads; t++)
        if (!de_scratch_get(&ctx->bf_local[3 * t + 1], (size_t)(npan * a->Dp * 16 + npan * nbd * 32)) ||
            !de_scratch_get(&ctx->bf_local[3 * t + 2], (size_t)(npan * 128 * 16 + npan * 2 * 32)))
            return cpu_fail(ctx, DE_ERR_OOM, "attention (i16): out of memory for the per-thread panels");
    attn_prep_job j = { op, ctx, a };
    de_pool_for(&ctx->pool, BH * op->kv_len, 0, prep_k, &j);
    de_pool_for(&ctx->pool, BH * D, 0, prep_vt, &j);
    return DE_OK;
}

void cpu_i16_attn_pack_q(cpu_ctx *ctx, int tid, const cpu_i16_attn *a, const float *QT, int64_t ldq, int32_t D, int32_t nq) {
    const int64_t npan = nq / 32;
    int16_t *Q = (int16_t *)ctx->bf_local[3 * tid + 1].ptr;
    pack_job pj = { .ctx = ctx, .src = { DE_F32, QT, ldq, D }, .Kp = a->Dp, .q = Q, .s = (float *)(Q + npan * a->Dp * 32),
                    .x = QT, .ldx = ldq, .cols = nq, .c0 = 0, .kb = a->kbd };
    pack_panels_x(&pj, 0, npan, tid);
}

/* the scores of 6 keys (rows of R, one block of kbp pairs) and 64 queries (two panels): 24 int32 accumulators, no f32
 * ones (a single block is scaled once); C rows [0, nr), all 64 columns written */
static I16_TARGET void qk_tile6x64(const int16_t *R, const float *sR, int64_t Kp, int nr, const int16_t *P, const float *sP,
                                   int64_t pstride, int64_t sstride, int kbp, float *C, int64_t ldc) {
    __m512i acc[6][4];
    const int32_t *x[6];
    for (int r = 0; r < 6; r++) {
        x[r] = (const int32_t *)(R + (r < nr ? r : 0) * Kp);
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_si512();
    }
    const __m512i *p0 = (const __m512i *)P, *p1 = (const __m512i *)(P + pstride);
    for (int kp = 0; kp < kbp; kp++) {
        const __m512i w0 = _mm512_loadu_si512(p0 + 2 * kp), w1 = _mm512_loadu_si512(p0 + 2 * kp + 1);
        const __m512i w2 = _mm512_loadu_si512(p1 + 2 * kp), w3 = _mm512_loadu_si512(p1 + 2 * kp + 1);
        for (int r = 0; r < 6; r++) {
            const __m512i t = _mm512_set1_epi32(x[r][kp]);
            acc[r][0] = _mm512_dpwssd_epi32(acc[r][0], w0, t);
            acc[r][1] = _mm512_dpwssd_epi32(acc[r][1], w1, t);
            acc[r][2] = _mm512_dpwssd_epi32(acc[r][2], w2, t);
            acc[r][3] = _mm512_dpwssd_epi32(acc[r][3], w3, t);
        }
    }
    const __m512 s0 = _mm512_loadu_ps(sP), s1 = _mm512_loadu_ps(sP + 16);
    const __m512 s2 = _mm512_loadu_ps(sP + sstride), s3 = _mm512_loadu_ps(sP + sstride + 16);
    for (int r = 0; r < nr; r++) {
        const __m512 sr = _mm512_set1_ps(sR[r]);
        float *c = C + r * ldc;
        _mm512_storeu_ps(c, _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][0]), _mm512_mul_ps(sr, s0)));
        _mm512_storeu_ps(c + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][1]), _mm512_mul_ps(sr, s1)));
        _mm512_storeu_ps(c + 32, _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][2]), _mm512_mul_ps(sr, s2)));
        _mm512_storeu_ps(c + 48, _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][3]), _mm512_mul_ps(sr, s3)));
    }
}

void cpu_i16_attn_qk(cpu_ctx *ctx, int tid, const cpu_i16_attn *a, int64_t bh, int64_t kv_len, int32_t k0, int32_t bk, int32_t nq,
                     float *ST, int64_t lds) {
    const int64_t npan = nq / 32, nbd = a->Dp / a->kbd;
    const int16_t *Q = (const int16_t *)ctx->bf_local[3 * tid + 1].ptr;
    const float *sQ = (const float *)(Q + npan * a->Dp * 32);
    const int16_t *K = a->K + (bh * kv_len + k0) * a->Dp;
    const float *sK = a->sK + (bh * kv_len + k0) * nbd;
    int64_t p0 = 0;
    if (nbd == 1)   /* the head dimension in one block (SD 1.5's 40, SDXL's 64): two panels per tile */
        for (; p0 + 2 <= npan; p0 += 2)
            for (int32_t r = 0; r < bk; r += I16_MR)
                qk_tile6x64(K + r * a->Dp, sK + r, a->Dp, bk - r < I16_MR ? bk - r : I16_MR, Q + p0 * a->Dp * 32, sQ + p0 * 32,
                            a->Dp * 32, 32, a->kbd / 2, ST + r * lds + 32 * p0, lds);
    for (int64_t p = p0; p < npan; p++)
        for (int32_t r = 0; r < bk; r += I16_MR)
            tile6x32(K + r * a->Dp, sK + r * nbd, a->Dp, bk - r < I16_MR ? bk - r : I16_MR, Q + p * a->Dp * 32, sQ + p * nbd * 32, 0,
                     nbd, ST + r * lds + 32 * p, lds, 32, 1.0f, 0.0f, NULL, 1, a->kbd / 2);
}

void cpu_i16_attn_pv(cpu_ctx *ctx, int tid, const cpu_i16_attn *a, int64_t bh, int32_t D, int32_t k0, int32_t bk, const float *P,
                     int64_t ldp, int32_t nq, float *OT, int64_t ldo) {
    const int64_t npan = nq / 32, Kp = kpad(bk), nbk = a->Lkp / I16_KB;
    int16_t *Pq = (int16_t *)ctx->bf_local[3 * tid + 2].ptr;
    float *sP = (float *)(Pq + npan * 128 * 32);
    pack_job pj = { .ctx = ctx, .src = { DE_F32, P, ldp, bk }, .Kp = Kp, .q = Pq, .s = sP, .x = P, .ldx = ldp, .cols = nq, .c0 = 0 };
    pack_panels_x(&pj, 0, npan, tid);
    const int16_t *VT = a->VT + bh * D * a->Lkp + k0;
    const float *sVT = a->sVT + bh * D * nbk + k0 / I16_KB;
    for (int64_t p = 0; p < npan; p++)
        for (int32_t r = 0; r < D; r += I16_MR)
            tile6x32(VT + r * a->Lkp, sVT + r * nbk, a->Lkp, D - r < I16_MR ? D - r : I16_MR, Pq + p * Kp * 32, sP + p * (Kp / I16_KB) * 32,
                     0, Kp / I16_KB, OT + r * ldo + 32 * p, ldo, 32, 1.0f, 0.0f, NULL, 0, I16_KB / 2);
}

#else
de_status cpu_i16_attn_prepare(cpu_ctx *ctx, const de_attention_op *op, int32_t bq, cpu_i16_attn *a) {
    (void)ctx, (void)op, (void)bq, (void)a;
    return DE_ERR_UNSUPPORTED;
}
size_t cpu_i16_attn_thread_floats(const de_attention_op *op) { (void)op; return 0; }
void cpu_i16_attn_pack_q(cpu_ctx *ctx, int tid, const cpu_i16_attn *a, const float *QT, int64_t ldq, int32_t D, int32_t nq) {
    (void)ctx, (void)tid, (void)a, (void)QT, (void)ldq, (void)D, (void)nq;
}
void cpu_i16_attn_qk(cpu_ctx *ctx, int tid, const cpu_i16_attn *a, int64_t bh, int64_t kv_len, int32_t k0, int32_t bk, int32_t nq,
                     float *ST, int64_t lds) {
    (void)ctx, (void)tid, (void)a, (void)bh, (void)kv_len, (void)k0, (void)bk, (void)nq, (void)ST, (void)lds;
}
void cpu_i16_attn_pv(cpu_ctx *ctx, int tid, const cpu_i16_attn *a, int64_t bh, int32_t D, int32_t k0, int32_t bk, const float *P,
                     int64_t ldp, int32_t nq, float *OT, int64_t ldo) {
    (void)ctx, (void)tid, (void)a, (void)bh, (void)D, (void)k0, (void)bk, (void)P, (void)ldp, (void)nq, (void)OT, (void)ldo;
}
de_status cpu_i16_u_alloc(cpu_ctx *ctx, int64_t rows, int64_t k, int16_t **q, float **s) {
    (void)ctx, (void)rows, (void)k, (void)q, (void)s;
    return DE_ERR_UNSUPPORTED;
}
void cpu_i16_quant_u(const float *rows, int points, int64_t k, int64_t cn, int64_t c, int16_t *Uq, float *Us) {
    (void)rows, (void)points, (void)k, (void)cn, (void)c, (void)Uq, (void)Us;
}
de_status cpu_i16_local(cpu_ctx *ctx, int tid, const int16_t *Uq, const float *Us, int64_t r0, int64_t m, int64_t k, const float *b,
                        int64_t n, int64_t ldb, float *c, int64_t ldc) {
    (void)ctx, (void)tid, (void)Uq, (void)Us, (void)r0, (void)m, (void)k, (void)b, (void)n, (void)ldb, (void)c, (void)ldc;
    return DE_ERR_UNSUPPORTED;
}
de_status cpu_igemm(cpu_ctx *ctx, int w_is_a, de_dtype wdt, const void *w, int64_t ldw, const float *x, int64_t ldx,
                    int64_t m, int64_t n, int64_t k, float alpha, float beta, float *c, int64_t ldc, const float *bias) {
    (void)ctx, (void)w_is_a, (void)wdt, (void)w, (void)ldw, (void)x, (void)ldx, (void)m, (void)n, (void)k, (void)alpha;
    (void)beta, (void)c, (void)ldc, (void)bias;
    return DE_ERR_UNSUPPORTED;
}
#endif
