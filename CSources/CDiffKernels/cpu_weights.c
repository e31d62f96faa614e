/* cpu_weights.c — weights kept in reduced precision (f16, bf16, q8_0) on the CPU provider.
 *
 * A weight operand of gemm (a untransposed or b transposed) or conv2d is a matrix of rows of k elements
 * (linear: [out, in]; conv: [c_out, c_in * kh * kw]) stored as f32, f16, bf16 or q8_0 (de_backend.h).
 * Reduced weights are read in place (an mmap'd fp16 checkpoint needs no second copy) and converted to
 * f32 while packing: a panel of rows at a time into the worker's own buffer, then OpenBLAS sgemm on the
 * panel, so accumulation is f32 and the converted panel never exceeds WPANEL_FLOATS per thread.
 * Small weights (at most WWHOLE_FLOATS) are converted whole, once per op, and run through cpu_sgemm.
 *
 * Also here: the converters the loader uses (f32 -> f16 / bf16, q8_0 quantize / dequantize).
 */
#include "cpu_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__F16C__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#define WPANEL_FLOATS (2u << 20) /* per-thread panel: 8 MB */
#define WWHOLE_FLOATS (1u << 20) /* weights converted whole when at most 4 MB as f32 */

/* ---------------------------------------------------------------- scalar conversions */

static inline float h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else {
            float f = (float)man * 5.9604644775390625e-8f; /* man * 2^-24 */
            memcpy(&bits, &f, 4);
            bits |= sign;
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* f32 -> fp16, round to nearest even, overflow -> inf, NaN stays NaN */
static inline uint16_t f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {                                 /* below 2^-14: subnormal or zero */
        if (ax < 0x33000000u) return (uint16_t)sign;        /* < 2^-25: rounds to 0 */
        const uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        const uint32_t shift = 126 - e;                     /* value = m * 2^(e-150); unit 2^-24 */
        uint32_t q = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax + 0xfff + ((ax >> 13) & 1);            /* round mantissa to 10 bits */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static inline uint16_t f2bf(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static void f16_row(const uint16_t *s, float *d, int64_t n) {
    int64_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
#endif
    for (; i < n; i++) d[i] = h2f(s[i]);
}

static void bf16_row(const uint16_t *s, float *d, int64_t n) {
    uint32_t *o = (uint32_t *)d;
    for (int64_t i = 0; i < n; i++) o[i] = (uint32_t)s[i] << 16;
}

static void q8_row(const uint8_t *s, float *d, int64_t n) {
    for (int64_t b = 0; b < n / DE_Q8_0_BLOCK; b++) {
        const uint8_t *blk = s + b * DE_Q8_0_BYTES;
        uint16_t hs;
        memcpy(&hs, blk, 2);
        const float sc = h2f(hs);
        const int8_t *q = (const int8_t *)(blk + 2);
        float *o = d + b * DE_Q8_0_BLOCK;
        for (int i = 0; i < DE_Q8_0_BLOCK; i++) o[i] = sc * (float)q[i];
    }
}

const void *cpu_weight_at(de_dtype dt, const void *w, int64_t elem) {
    switch (dt) {
    case DE_F16: case DE_BF16: return (const uint16_t *)w + elem;
    case DE_Q8_0: return (const uint8_t *)w + elem / DE_Q8_0_BLOCK * DE_Q8_0_BYTES;
    default: return (const float *)w + elem;
    }
}

void cpu_weight_rows_f32(de_dtype dt, const void *w, int64_t ld, int64_t r0, int64_t nr, int64_t k, float *dst) {
    for (int64_t r = 0; r < nr; r++) {
        const void *row = cpu_weight_at(dt, w, (r0 + r) * ld);
        float *d = dst + r * k;
        switch (dt) {
        case DE_F16: f16_row(row, d, k); break;
        case DE_BF16: bf16_row(row, d, k); break;
        case DE_Q8_0: q8_row(row, d, k); break;
        default: memcpy(d, row, sizeof(float) * (size_t)k); break;
        }
    }
}

const float *cpu_conv_weight_row(cpu_ctx *ctx, const de_conv2d_op *op, int64_t co, int64_t K, int tid) {
    if (op->weight_dtype == DE_F32) return (const float *)op->weight + co * K;
    float *buf = ctx->per_thread[tid].ptr; /* sized by cpu_weight_reserve */
    cpu_weight_rows_f32(op->weight_dtype, op->weight, K, co, 1, K, buf);
    return buf;
}

de_status cpu_weight_reserve(cpu_ctx *ctx, size_t floats) {
    for (int t = 0; t < ctx->n_threads; t++)
        if (!de_scratch_get(&ctx->per_thread[t], floats))
            return cpu_fail(ctx, DE_ERR_OOM, "out of memory for weight conversion buffers (%zu floats per thread)", floats);
    return DE_OK;
}

const char *cpu_weight_check(de_dtype dt, int64_t k, int64_t ld, int64_t stride) {
    if (dt != DE_F32 && dt != DE_F16 && dt != DE_BF16 && dt != DE_Q8_0) return "is not one of f32, f16, bf16, q8_0";
    if (dt == DE_Q8_0 && (k % DE_Q8_0_BLOCK || ld % DE_Q8_0_BLOCK || stride % DE_Q8_0_BLOCK))
        return "q8_0 needs the row length, the row stride and the batch stride to be multiples of 32";
    return NULL;
}

/* ---------------------------------------------------------------- GEMM with a reduced weight operand */

typedef struct {
    cpu_ctx *ctx;
    int w_is_a, tx;
    de_dtype wdt;
    const void *w; int64_t ldw;
    const float *x; int64_t ldx;
    int64_t m, n, k, wrows, pb;
    float alpha, beta;
    float *c; int64_t ldc;
    const float *bias;
} wgemm_job;

static void apply_bias_beta(float *c, int64_t ldc, int64_t rows, int64_t cols, const float *bias, float beta) {
    for (int64_t i = 0; i < rows; i++) {
        float *row = c + i * ldc;
        if (beta == 0.0f) for (int64_t q = 0; q < cols; q++) row[q] = bias[q];
        else for (int64_t q = 0; q < cols; q++) row[q] = beta * row[q] + bias[q];
    }
}

static void wgemm_panel(void *va, int64_t p0, int64_t p1, int tid) {
    wgemm_job *j = va;
    float *P = j->ctx->per_thread[tid].ptr;
    for (int64_t p = p0; p < p1; p++) {
        const int64_t r0 = p * j->pb, nr = j->wrows - r0 < j->pb ? j->wrows - r0 : j->pb;
        cpu_weight_rows_f32(j->wdt, j->w, j->ldw, r0, nr, j->k, P);
        float beta = j->beta;
        if (j->w_is_a) { /* C[r0:r0+nr, :] = P[nr, k] @ op(X)[k, n] */
            float *c = j->c + r0 * j->ldc;
            if (j->bias) { apply_bias_beta(c, j->ldc, nr, j->n, j->bias, beta); beta = 1.0f; }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, j->tx ? CblasTrans : CblasNoTrans, (int)nr, (int)j->n, (int)j->k,
                        j->alpha, P, (int)j->k, j->x, (int)j->ldx, beta, c, (int)j->ldc);
        } else {         /* C[:, r0:r0+nr] = op(X)[m, k] @ P[nr, k]^T */
            float *c = j->c + r0;
            if (j->bias) { apply_bias_beta(c, j->ldc, j->m, nr, j->bias + r0, beta); beta = 1.0f; }
            cblas_sgemm(CblasRowMajor, j->tx ? CblasTrans : CblasNoTrans, CblasTrans, (int)j->m, (int)nr, (int)j->k,
                        j->alpha, j->x, (int)j->ldx, P, (int)j->k, beta, c, (int)j->ldc);
        }
    }
}

typedef struct { de_dtype dt; const void *w; int64_t ld, k; float *dst; } wconv_job;

static void wconv_rows(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    wconv_job *j = va;
    cpu_weight_rows_f32(j->dt, j->w, j->ld, b, e - b, j->k, j->dst + b * j->k);
}

de_status cpu_wgemm(cpu_ctx *ctx, int w_is_a, de_dtype wdt, const void *w, int64_t ldw, int tx, const float *x, int64_t ldx,
                    int64_t m, int64_t n, int64_t k, float alpha, float beta, float *c, int64_t ldc, const float *bias) {
    if (cpu_use_bf16(ctx, wdt)) { /* bf16 compute (cpu_bf16.c): the weight is converted while packing */
        int sx, sw;
        cpu_bf16_splits(ctx, wdt, &sx, &sw);
        if (w_is_a) return cpu_bgemm(ctx, 0, wdt, w, ldw, tx, DE_F32, x, ldx, m, n, k, alpha, beta, c, ldc, bias, sw, sx);
        return cpu_bgemm(ctx, tx, DE_F32, x, ldx, 1, wdt, w, ldw, m, n, k, alpha, beta, c, ldc, bias, sx, sw);
    }
    if (cpu_use_i16(ctx) && !tx) { /* i16 compute (cpu_i16.c), f32 or reduced weights */
        const de_status st = cpu_igemm(ctx, w_is_a, wdt, w, ldw, x, ldx, m, n, k, alpha, beta, c, ldc, bias);
        if (st != DE_ERR_UNSUPPORTED) return st;
    }
    if (wdt == DE_F32) {
        if (w_is_a) cpu_sgemm(ctx, 0, tx, m, n, k, alpha, w, ldw, x, ldx, beta, c, ldc, bias);
        else cpu_sgemm(ctx, tx, 1, m, n, k, alpha, x, ldx, w, ldw, beta, c, ldc, bias);
        return DE_OK;
    }
    const int64_t wrows = w_is_a ? m : n;
    if ((uint64_t)(wrows * k) <= WWHOLE_FLOATS) {
        float *W = de_scratch_get(&ctx->wconv, (size_t)(wrows * k));
        if (!W) return cpu_fail(ctx, DE_ERR_OOM, "gemm: out of memory converting a %lld x %lld weight", (long long)wrows, (long long)k);
        wconv_job cj = { wdt, w, ldw, k, W };
        de_pool_for(&ctx->pool, wrows, (wrows * k >= 65536) ? 0 : wrows, wconv_rows, &cj);
        if (w_is_a) cpu_sgemm(ctx, 0, tx, m, n, k, alpha, W, k, x, ldx, beta, c, ldc, bias);
        else cpu_sgemm(ctx, tx, 1, m, n, k, alpha, x, ldx, W, k, beta, c, ldc, bias);
        return DE_OK;
    }
    /* panels of pb weight rows (a multiple of 16, about 2 per thread when the weight is small) */
    const int T = ctx->n_threads;
    int64_t pb = (int64_t)(WPANEL_FLOATS / (uint64_t)k);
    if (pb < 16) pb = 16;
    int64_t bal = (wrows + 2 * T - 1) / (2 * T);
    bal = (bal + 15) / 16 * 16;
    if (bal < pb) pb = bal;
    pb = pb / 16 * 16;
    if (pb < 16) pb = 16;
    de_status st = cpu_weight_reserve(ctx, (size_t)(pb * k));
    if (st != DE_OK) return st;
    wgemm_job j = { ctx, w_is_a, tx, wdt, w, ldw, x, ldx, m, n, k, wrows, pb, alpha, beta, c, ldc, bias };
    de_pool_for(&ctx->pool, (wrows + pb - 1) / pb, 1, wgemm_panel, &j);
    return DE_OK;
}

/* ---------------------------------------------------------------- loader converters */

static void to_f16(const float *s, uint16_t *d, int64_t n) {
    int64_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i < n; i++) d[i] = f2h(s[i]);
}

void de_f32_to_f16(const float *src, uint16_t *dst, int64_t n) {
    if (src && dst && n > 0) to_f16(src, dst, n);
}

void de_f32_to_bf16(const float *src, uint16_t *dst, int64_t n) {
    if (!src || !dst) return;
    for (int64_t i = 0; i < n; i++) dst[i] = f2bf(src[i]);
}

void de_quantize_q8_0(const float *src, void *dst, int64_t rows, int64_t k) {
    if (!src || !dst || rows <= 0 || k <= 0 || k % DE_Q8_0_BLOCK) return;
    const int64_t nb = rows * k / DE_Q8_0_BLOCK;
    uint8_t *o = dst;
    for (int64_t b = 0; b < nb; b++) {
        const float *x = src + b * DE_Q8_0_BLOCK;
        float amax = 0.0f;
        for (int i = 0; i < DE_Q8_0_BLOCK; i++) { const float a = fabsf(x[i]); amax = a > amax ? a : amax; }
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t hd = f2h(d);
        uint8_t *blk = o + b * DE_Q8_0_BYTES;
        memcpy(blk, &hd, 2);
        int8_t *q = (int8_t *)(blk + 2);
        for (int i = 0; i < DE_Q8_0_BLOCK; i++) {
            float v = roundf(x[i] * id);
            v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
            q[i] = (int8_t)v;
        }
    }
}

void de_dequantize_q8_0(const void *src, float *dst, int64_t n) {
    if (src && dst && n > 0 && n % DE_Q8_0_BLOCK == 0) q8_row(src, dst, n);
}
