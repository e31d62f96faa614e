/* cpu_gemm_conv.c — strided batched GEMM (OpenBLAS) and conv2d for the CPU provider.
 *
 * conv2d paths (all NCHW, f32):
 *  - 3x3 stride 1, n*oh*ow >= 512: Winograd F(2x2, 3x3) (cpu_winograd.c).
 *  - 1x1, stride 1, no padding, planes >= 1024 pixels: per image y[c_out, hw] = W @ x[c_in, hw].
 *  - anything else: im2col over a block of output rows numbered across the batch (buffer
 *    bounded by COL_BUDGET floats) + sgemm into y (or into a buffer, then scattered, when the
 *    block spans images).
 * Bias and residual are written into y first and the sgemm accumulates (beta = 1).
 * A reduced-precision weight (weight_dtype f16 / bf16 / q8_0) is read in place: converted a panel of
 * output channels at a time (cpu_wgemm) or a row at a time in the Winograd weight transform.
 * Everything runs on our pool; OpenBLAS is single-threaded and each sgemm is split over
 * the pool by cpu_sgemm (no oversubscription, no OpenBLAS spin-waiting threads).
 */
#include "cpu_internal.h"

#include <cblas.h>
#include <stdlib.h>

#define COL_BUDGET (2u << 20) /* floats in the im2col buffer: 8 MB */

/* ---------------------------------------------------------------- threaded sgemm */

/* OpenBLAS runs single-threaded (set once at init); large products are split over our pool
 * along M (rows of C) or N (columns of C), one single-threaded sgemm per block. Bias (per
 * column) and beta are applied per block before the product, so they are threaded too. */
typedef struct {
    int ta, tb;
    int64_t m, n, k;
    float alpha, beta;
    const float *a; int64_t lda;
    const float *b; int64_t ldb;
    float *c; int64_t ldc;
    const float *bias;
    int split_m;
    int64_t chunk;
} psg_job;

static void sgemm_block(const psg_job *j, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const float *a = j->ta ? j->a + r0 : j->a + r0 * j->lda;       /* op(A) rows r0.. */
    const float *b = j->tb ? j->b + c0 * j->ldb : j->b + c0;       /* op(B) cols c0.. */
    float *c = j->c + r0 * j->ldc + c0;
    float beta = j->beta;
    if (j->bias) {
        for (int64_t i = 0; i < r1 - r0; i++) {
            float *row = c + i * j->ldc;
            const float *bb = j->bias + c0;
            if (beta == 0.0f) for (int64_t q = 0; q < c1 - c0; q++) row[q] = bb[q];
            else for (int64_t q = 0; q < c1 - c0; q++) row[q] = beta * row[q] + bb[q];
        }
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
                (int)(r1 - r0), (int)(c1 - c0), (int)j->k, j->alpha, a, (int)j->lda, b, (int)j->ldb, beta, c, (int)j->ldc);
}

static void psg_task(void *va, int64_t bb, int64_t be_, int tid) {
    (void)tid;
    const psg_job *j = va;
    for (int64_t blk = bb; blk < be_; blk++) {
        const int64_t s0 = blk * j->chunk;
        if (j->split_m) sgemm_block(j, s0, s0 + j->chunk < j->m ? s0 + j->chunk : j->m, 0, j->n);
        else sgemm_block(j, 0, j->m, s0, s0 + j->chunk < j->n ? s0 + j->chunk : j->n);
    }
}

void cpu_sgemm(cpu_ctx *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *b, int64_t ldb, float beta, float *c, int64_t ldc, const float *bias) {
    psg_job j = { ta, tb, m, n, k, alpha, beta, a, lda, b, ldb, c, ldc, bias, 1, m };
    const int T = ctx->n_threads;
    const double flops = 2.0 * (double)m * (double)n * (double)k;
    if (T == 1 || flops < 4e6 || (m < 32 && n < 32)) {
        sgemm_block(&j, 0, m, 0, n);
        return;
    }
    /* split the larger dimension into ~2 blocks per thread (dynamic: tolerates a busy core),
     * blocks a multiple of 16 and at least 64 long */
    j.split_m = m >= n;
    const int64_t dim = j.split_m ? m : n;
    int64_t chunk = (dim + 2 * T - 1) / (2 * T);
    if (chunk < 64) chunk = 64;
    chunk = (chunk + 15) / 16 * 16;
    j.chunk = chunk;
    de_pool_for(&ctx->pool, (dim + chunk - 1) / chunk, 1, psg_task, &j);
}

/* ---------------------------------------------------------------- gemm */

typedef struct { const de_gemm_op *op; } bgemm_job;

/* one task = one batch item, single-threaded sgemm (used when batch >= threads) */
static void bgemm_task(void *va, int64_t b0, int64_t b1, int tid) {
    (void)tid;
    const de_gemm_op *op = ((bgemm_job *)va)->op;
    for (int64_t bi = b0; bi < b1; bi++) {
        psg_job j = { op->trans_a, op->trans_b, op->m, op->n, op->k, op->alpha, op->beta,
                      (const float *)op->a + bi * op->stride_a, op->lda, (const float *)op->b + bi * op->stride_b, op->ldb,
                      (float *)op->c + bi * op->stride_c, op->ldc, op->bias, 1, op->m };
        sgemm_block(&j, 0, op->m, 0, op->n);
    }
}

de_status cpu_gemm(de_backend *be, const de_gemm_op *op) {
    CPU_BEGIN("gemm")
    CPU_CHECK(op->batch > 0, "gemm", "batch must be positive (got %d)", op->batch);
    CPU_CHECK(op->m > 0 && op->n > 0 && op->k > 0, "gemm", "m, n, k must be positive (got m=%d n=%d k=%d)", op->m, op->n, op->k);
    CPU_CHECK(op->a != NULL, "gemm", "a is NULL");
    CPU_CHECK(op->b != NULL, "gemm", "b is NULL");
    CPU_CHECK(op->c != NULL, "gemm", "c is NULL");
    CPU_CHECK(op->lda >= (op->trans_a ? op->m : op->k), "gemm", "lda %lld is smaller than the row length %d of A",
              (long long)op->lda, op->trans_a ? op->m : op->k);
    CPU_CHECK(op->ldb >= (op->trans_b ? op->k : op->n), "gemm", "ldb %lld is smaller than the row length %d of B",
              (long long)op->ldb, op->trans_b ? op->k : op->n);
    CPU_CHECK(op->ldc >= op->n, "gemm", "ldc %lld is smaller than n %d", (long long)op->ldc, op->n);
    CPU_CHECK(op->lda <= INT32_MAX && op->ldb <= INT32_MAX && op->ldc <= INT32_MAX, "gemm",
              "leading dimension too large for BLAS (lda %lld, ldb %lld, ldc %lld)", (long long)op->lda, (long long)op->ldb,
              (long long)op->ldc);
    CPU_CHECK(op->stride_a >= 0 && op->stride_b >= 0 && op->stride_c >= 0, "gemm", "negative batch stride (a %lld, b %lld, c %lld)",
              (long long)op->stride_a, (long long)op->stride_b, (long long)op->stride_c);
    CPU_CHECK(op->batch == 1 || op->stride_c >= (int64_t)(op->m - 1) * op->ldc + op->n, "gemm",
              "stride_c %lld makes the outputs of batch items overlap", (long long)op->stride_c);
    CPU_PROFILE_FLOPS(2.0 * op->batch * op->m * op->n * op->k);
    if (op->a_dtype != DE_F32 || op->b_dtype != DE_F32) {
        /* a reduced-precision weight operand (cpu_weights.c) */
        const int w_is_a = op->a_dtype != DE_F32;
        const de_dtype wdt = w_is_a ? op->a_dtype : op->b_dtype;
        CPU_CHECK(!(op->a_dtype != DE_F32 && op->b_dtype != DE_F32), "gemm", "a_dtype %s and b_dtype %s: at most one operand may be reduced",
                  de_dtype_name(op->a_dtype), de_dtype_name(op->b_dtype));
        CPU_CHECK(!w_is_a || !op->trans_a, "gemm", "a_dtype %s: a reduced a must not be transposed", de_dtype_name(wdt));
        CPU_CHECK(w_is_a || op->trans_b, "gemm", "b_dtype %s: a reduced b must be transposed", de_dtype_name(wdt));
        const char *why = cpu_weight_check(wdt, op->k, w_is_a ? op->lda : op->ldb, w_is_a ? op->stride_a : op->stride_b);
        CPU_CHECK(why == NULL, "gemm", "%s %s (k %d): %s", w_is_a ? "a_dtype" : "b_dtype", de_dtype_name(wdt), op->k, why ? why : "");
        CPU_PROFILE_AS(cpu_use_bf16(ctx, wdt) ? "gemm.reduced.bf16" : cpu_use_i16(ctx) ? "gemm.reduced.i16" : "gemm.reduced");
        for (int32_t bi = 0; bi < op->batch && st__ == DE_OK; bi++) {
            const int64_t ws = w_is_a ? op->stride_a : op->stride_b;
            const void *w = cpu_weight_at(wdt, w_is_a ? op->a : op->b, (int64_t)bi * ws);
            const float *x = (const float *)(w_is_a ? op->b : op->a) + (int64_t)bi * (w_is_a ? op->stride_b : op->stride_a);
            st__ = cpu_wgemm(ctx, w_is_a, wdt, w, w_is_a ? op->lda : op->ldb, w_is_a ? op->trans_b : op->trans_a, x,
                             w_is_a ? op->ldb : op->lda, op->m, op->n, op->k, op->alpha, op->beta,
                             (float *)op->c + (int64_t)bi * op->stride_c, op->ldc, op->bias);
        }
    } else if (cpu_use_bf16(ctx, DE_F32)) { /* options.cpu_compute bf16: every GEMM (cpu_bf16.c) */
        CPU_PROFILE_AS("gemm.bf16");
        for (int32_t bi = 0; bi < op->batch && st__ == DE_OK; bi++)
            st__ = cpu_bgemm(ctx, op->trans_a, DE_F32, (const float *)op->a + (int64_t)bi * op->stride_a, op->lda, op->trans_b, DE_F32,
                             (const float *)op->b + (int64_t)bi * op->stride_b, op->ldb, op->m, op->n, op->k, op->alpha, op->beta,
                             (float *)op->c + (int64_t)bi * op->stride_c, op->ldc, op->bias, 0, 0);
    } else if (op->batch >= ctx->n_threads && op->batch > 1) {
        bgemm_job j = { op };
        de_pool_for(&ctx->pool, op->batch, 1, bgemm_task, &j);
    } else {
        for (int32_t bi = 0; bi < op->batch; bi++)
            cpu_sgemm(ctx, op->trans_a, op->trans_b, op->m, op->n, op->k, op->alpha,
                      (const float *)op->a + (int64_t)bi * op->stride_a, op->lda,
                      (const float *)op->b + (int64_t)bi * op->stride_b, op->ldb, op->beta,
                      (float *)op->c + (int64_t)bi * op->stride_c, op->ldc, op->bias);
    }
out__:
    CPU_END()
}

/* ---------------------------------------------------------------- conv2d */

/* y rows [c_out] x cols: y[co, p] = bias[co] (+ residual[co, p]), or 0 when neither (returns beta). */
typedef struct {
    float *y; const float *res; const float *bias;
    int64_t cols, ld;   /* cols written per row; row stride of y and residual */
} prefill_job;

static void prefill_rows(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    prefill_job *j = va;
    for (int64_t co = b; co < e; co++) {
        float *y = j->y + co * j->ld;
        float bv = j->bias ? j->bias[co] : 0.0f;
        if (j->res) {
            const float *r = j->res + co * j->ld;
            for (int64_t p = 0; p < j->cols; p++) y[p] = r[p] + bv;
        } else {
            for (int64_t p = 0; p < j->cols; p++) y[p] = bv;
        }
    }
}

typedef struct {
    const float *x;       /* [n, c_in, h, w] all images */
    float *col;           /* [c_in*kh*kw, rows*ow] */
    int32_t c_in, h, w, kh, kw, sh, sw, pt, pl, oh, ow;
    int64_t R0;           /* first global output row (image R / oh, row R % oh) */
    int32_t rows;
} im2col_job;

/* one task = one input channel (kh*kw rows of the column matrix) */
static void im2col_rows(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    im2col_job *j = va;
    const int64_t cols = (int64_t)j->rows * j->ow, hw = (int64_t)j->h * j->w;
    for (int64_t ci = b; ci < e; ci++) {
        for (int32_t ky = 0; ky < j->kh; ky++) {
            for (int32_t kx = 0; kx < j->kw; kx++) {
                float *dst = j->col + ((ci * j->kh + ky) * j->kw + kx) * cols;
                /* valid ox range: 0 <= ox*sw - pl + kx < w */
                int32_t ox_lo = 0, ox_hi = j->ow; /* [lo, hi) */
                while (ox_lo < j->ow && ox_lo * j->sw - j->pl + kx < 0) ox_lo++;
                while (ox_hi > ox_lo && (ox_hi - 1) * j->sw - j->pl + kx >= j->w) ox_hi--;
                for (int32_t r = 0; r < j->rows; r++) {
                    const int64_t R = j->R0 + r, img = R / j->oh;
                    const int32_t oy = (int32_t)(R % j->oh);
                    const int32_t iy = oy * j->sh - j->pt + ky;
                    float *d = dst + (int64_t)r * j->ow;
                    if (iy < 0 || iy >= j->h) {
                        memset(d, 0, sizeof(float) * (size_t)j->ow);
                        continue;
                    }
                    const float *src = j->x + (img * j->c_in + ci) * hw + (int64_t)iy * j->w;
                    for (int32_t ox = 0; ox < ox_lo; ox++) d[ox] = 0;
                    if (j->sw == 1) {
                        int32_t off = -j->pl + kx;
                        if (ox_hi > ox_lo) memcpy(d + ox_lo, src + ox_lo + off, sizeof(float) * (size_t)(ox_hi - ox_lo));
                    } else {
                        for (int32_t ox = ox_lo; ox < ox_hi; ox++) d[ox] = src[ox * j->sw - j->pl + kx];
                    }
                    for (int32_t ox = ox_hi; ox < j->ow; ox++) d[ox] = 0;
                }
            }
        }
    }
}

/* y[img, co, oy, :] = ybuf[co, rr * ow ..] + bias[co] (+ residual) for the rows of a block that spans images */
typedef struct {
    const float *ybuf; float *y; const float *res; const float *bias;
    int64_t R0, cols;
    int32_t rows, oh, ow, c_out;
} scatter_job;

static void scatter_rows(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    scatter_job *j = va;
    const int64_t ohw = (int64_t)j->oh * j->ow;
    for (int64_t co = b; co < e; co++) {
        const float bv = j->bias ? j->bias[co] : 0.0f;
        for (int32_t rr = 0; rr < j->rows; rr++) {
            const int64_t R = j->R0 + rr, img = R / j->oh, oy = R % j->oh;
            const int64_t off = (img * j->c_out + co) * ohw + oy * j->ow;
            const float *src = j->ybuf + co * j->cols + (int64_t)rr * j->ow;
            float *dst = j->y + off;
            if (j->res) { const float *r = j->res + off; for (int32_t x = 0; x < j->ow; x++) dst[x] = src[x] + bv + r[x]; }
            else for (int32_t x = 0; x < j->ow; x++) dst[x] = src[x] + bv;
        }
    }
}

de_status cpu_conv2d(de_backend *be, const de_conv2d_op *op) {
    CPU_BEGIN("conv2d")
    CPU_CHECK(op->n > 0 && op->c_in > 0 && op->h > 0 && op->w > 0, "conv2d", "input shape [n, c_in, h, w] must be positive (got [%d, %d, %d, %d])",
              op->n, op->c_in, op->h, op->w);
    CPU_CHECK(op->c_out > 0 && op->kh > 0 && op->kw > 0, "conv2d", "weight shape [c_out, c_in, kh, kw] must be positive (got c_out=%d kh=%d kw=%d)",
              op->c_out, op->kh, op->kw);
    CPU_CHECK(op->stride_h > 0 && op->stride_w > 0, "conv2d", "stride must be positive (got %d, %d)", op->stride_h, op->stride_w);
    CPU_CHECK(op->pad_t >= 0 && op->pad_l >= 0 && op->pad_b >= 0 && op->pad_r >= 0, "conv2d",
              "padding must be non-negative (got t=%d l=%d b=%d r=%d)", op->pad_t, op->pad_l, op->pad_b, op->pad_r);
    CPU_CHECK(op->h + op->pad_t + op->pad_b >= op->kh && op->w + op->pad_l + op->pad_r >= op->kw, "conv2d",
              "kernel %dx%d is larger than the padded input %dx%d", op->kh, op->kw, op->h + op->pad_t + op->pad_b, op->w + op->pad_l + op->pad_r);
    CPU_CHECK(op->x != NULL, "conv2d", "x is NULL");
    CPU_CHECK(op->weight != NULL, "conv2d", "weight is NULL");
    CPU_CHECK(op->y != NULL, "conv2d", "y is NULL");
    CPU_CHECK(op->y != op->x, "conv2d", "y aliases x");
    {
        const char *why = cpu_weight_check(op->weight_dtype, (int64_t)op->c_in * op->kh * op->kw, (int64_t)op->c_in * op->kh * op->kw, 0);
        CPU_CHECK(why == NULL, "conv2d", "weight_dtype %s (c_in * kh * kw = %lld): %s", de_dtype_name(op->weight_dtype),
                  (long long)op->c_in * op->kh * op->kw, why ? why : "");
    }
    {
        const int32_t oh = (op->h + op->pad_t + op->pad_b - op->kh) / op->stride_h + 1;
        const int32_t ow = (op->w + op->pad_l + op->pad_r - op->kw) / op->stride_w + 1;
        const int64_t ohw = (int64_t)oh * ow, hw = (int64_t)op->h * op->w;
        const int64_t K = (int64_t)op->c_in * op->kh * op->kw;
        CPU_PROFILE_FLOPS(2.0 * op->n * ohw * op->c_out * K);
        const float *X = op->x;
        const void *W = op->weight;
        const de_dtype wdt = op->weight_dtype;
        float *Y = op->y;
        const int direct = op->kh == 1 && op->kw == 1 && op->stride_h == 1 && op->stride_w == 1 &&
                           op->pad_t == 0 && op->pad_l == 0 && op->pad_b == 0 && op->pad_r == 0;
        const float beta = (op->bias || op->residual) ? 1.0f : 0.0f;
        /* 3x3 stride 1 with enough pixels to amortise the weight transform: Winograd F(2x2, 3x3) */
        if (op->kh == 3 && op->kw == 3 && op->stride_h == 1 && op->stride_w == 1 && (int64_t)op->n * ohw >= 512 &&
            ctx->winograd != DE_WINOGRAD_OFF) {
            /* F(4x4, 3x3) when the transformed weights stay moderate (36 c_out c_in floats) and there
             * are enough tiles to amortise transforming and packing them (measured: 64x64 and 32x32 x2 win;
             * 16x16 x2 at 1280 channels loses); options.winograd F2 / F4 force one or the other. */
            const int64_t tiles4 = (int64_t)op->n * ((oh + 3) / 4) * ((ow + 3) / 4);
            int use4 = (int64_t)op->c_in * op->c_out <= 768 * 768 && tiles4 >= 96;
            if (ctx->winograd == DE_WINOGRAD_F2) use4 = 0;
            if (ctx->winograd == DE_WINOGRAD_F4) use4 = 1;
            if (wdt != DE_F32 && (st__ = cpu_weight_reserve(ctx, (size_t)K)) != DE_OK) goto out__;
            if (use4) {
                CPU_PROFILE_AS("conv2d.winograd4");
                st__ = cpu_conv2d_winograd4(ctx, op, oh, ow);
                goto out__;
            }
            CPU_PROFILE_AS("conv2d.winograd");
            st__ = cpu_conv2d_winograd(ctx, op, oh, ow);
            goto out__;
        }
        CPU_PROFILE_AS(direct ? "conv2d.1x1" : "conv2d.im2col");
        if (direct && ohw >= 1024) {
            /* large planes: per image y[c_out, hw] = W[c_out, c_in] @ x[c_in, hw], x used in place */
            for (int32_t ni = 0; ni < op->n; ni++) {
                const float *x = X + (int64_t)ni * op->c_in * hw;     /* [c_in, h, w] */
                float *y = Y + (int64_t)ni * op->c_out * ohw;          /* [c_out, oh, ow] */
                const float *res = op->residual ? op->residual + (int64_t)ni * op->c_out * ohw : NULL;
                if (beta != 0.0f) {
                    prefill_job pj = { y, res, op->bias, ohw, ohw };
                    de_pool_for(&ctx->pool, op->c_out, 0, prefill_rows, &pj);
                }
                st__ = cpu_wgemm(ctx, 1, wdt, W, op->c_in, 0, x, hw, op->c_out, ohw, op->c_in, 1.0f, beta, y, ohw, NULL);
                if (st__ != DE_OK) goto out__;
            }
            goto out__;
        }
        /* im2col over blocks of output rows numbered across the whole batch ([n * oh] rows), so
         * that small planes (8x8, 16x16) get one wide GEMM and the weights are read once */
        const int64_t NR = (int64_t)op->n * oh;
        int64_t rows = COL_BUDGET / (K * ow);
        if (ctx->im2col_rows > 0) rows = ctx->im2col_rows;  /* testing: force small row blocks */
        if (rows < 1) rows = 1;
        if (rows > NR) rows = NR;
        float *col = de_scratch_get(&ctx->shared, (size_t)(K * rows * ow));
        float *ybuf = de_scratch_get(&ctx->shared2, (size_t)((int64_t)op->c_out * rows * ow));
        if (!col || !ybuf) {
            st__ = cpu_fail(ctx, DE_ERR_OOM, "conv2d: out of memory for the im2col buffers (%lld floats)",
                            (long long)((K + op->c_out) * rows * ow));
            goto out__;
        }
        for (int64_t R0 = 0; R0 < NR; R0 += rows) {
            const int32_t r = (int32_t)(NR - R0 < rows ? NR - R0 : rows);
            const int64_t cols = (int64_t)r * ow;
            im2col_job ij = { X, col, op->c_in, op->h, op->w, op->kh, op->kw, op->stride_h, op->stride_w,
                              op->pad_t, op->pad_l, oh, ow, R0, r };
            de_pool_for(&ctx->pool, op->c_in, 0, im2col_rows, &ij);
            const int64_t img0 = R0 / oh, img1 = (R0 + r - 1) / oh;
            if (img0 == img1) {   /* block inside one image: GEMM straight into y */
                const int64_t off = img0 * op->c_out * ohw + (R0 % oh) * ow;
                float *yb = Y + off;
                if (beta != 0.0f) {
                    prefill_job pj = { yb, op->residual ? op->residual + off : NULL, op->bias, cols, ohw };
                    de_pool_for(&ctx->pool, op->c_out, 0, prefill_rows, &pj);
                }
                st__ = cpu_wgemm(ctx, 1, wdt, W, K, 0, col, cols, op->c_out, cols, K, 1.0f, beta, yb, ohw, NULL);
                if (st__ != DE_OK) goto out__;
            } else {              /* block spans images: GEMM into ybuf, then scatter (+ bias, residual) */
                st__ = cpu_wgemm(ctx, 1, wdt, W, K, 0, col, cols, op->c_out, cols, K, 1.0f, 0.0f, ybuf, cols, NULL);
                if (st__ != DE_OK) goto out__;
                scatter_job sj = { ybuf, Y, op->residual, op->bias, R0, cols, r, oh, ow, op->c_out };
                de_pool_for(&ctx->pool, op->c_out, 0, scatter_rows, &sj);
            }
        }
    }
out__:
    CPU_END()
}
