/* cpu_winograd.c — 3x3 stride-1 convolution by Winograd F(2x2, 3x3) (Lavin & Gray 2015).
 *
 * y = A^T [ (G g G^T) . (B^T d B) ] A per 2x2 output tile, with 4x4 input tiles d.
 * 16 GEMMs of [c_out, c_in] @ [c_in, tiles] replace one [c_out, 9 c_in] @ [9 c_in, pixels]:
 * 2.25x fewer multiply-adds. Layout (per block of TB tiles of one image):
 *   U[16][CB][c_in]     transformed weights of a block of CB output channels (once per call)
 *   V[16][c_in][TB]     transformed input tiles
 *   M[16][CB][TB]       = U[e] @ V[e]   (16 single-threaded sgemms spread over our pool)
 * then the output transform adds bias and residual and writes y.
 * Output channels run in blocks of CB (cpu_wino_out_block) so that U stays under CPU_WINO_U_BUDGET floats:
 * all of U for SD 1.5's 2560 -> 1280 convs would be 210 MB of scratch.
 * Tiles are numbered over the whole batch, so one block of TB tiles may span images and the
 * weights are streamed once per block, not once per image (matters at 8x8 .. 16x16).
 * Scratch is bounded: TB is chosen so that V + M stay under WINO_BUDGET floats.
 */
#include "cpu_internal.h"

#include <cblas.h>
#include <stdlib.h>

#define WINO_BUDGET (6u << 20) /* floats for V + M: 24 MB */

/* U[e][co - co0][ci] = (G g G^T)[e] for the block's channels co0 + [b, e); the inner loop runs over ci with 16
 * contiguous output streams */
static void wino_weights(void *va, int64_t b, int64_t e, int tid) {
    cpu_wino_job *j = va;
    b += j->co0, e += j->co0;
    const int32_t ci_n = j->op->c_in;
    const int64_t plane = j->cn * ci_n;
    float *tmp = j->Uq ? j->ctx->per_thread[tid].ptr + (int64_t)ci_n * 9 : NULL;   /* i16: this channel's 16 rows */
    for (int64_t co = b; co < e; co++) {
        const float *g = cpu_conv_weight_row(j->ctx, j->op, co, (int64_t)ci_n * 9, tid);
        float *u[16];
        for (int k = 0; k < 16; k++) u[k] = tmp ? tmp + k * ci_n : j->U + k * plane + (co - j->co0) * ci_n;
        /* 8 input channels at a time: transpose their 3x3 kernels into gt[9][8] so that the
         * arithmetic below runs across channels in SIMD lanes */
        for (int32_t c0 = 0; c0 < ci_n; c0 += 8) {
            const int32_t nc = ci_n - c0 < 8 ? ci_n - c0 : 8;
            float gt[9][8];
            for (int32_t l = 0; l < 8; l++)
                for (int k = 0; k < 9; k++) gt[k][l] = l < nc ? g[(int64_t)(c0 + l) * 9 + k] : 0.0f;
            float o[16][8];
            for (int l = 0; l < 8; l++) {
                const float g0 = gt[0][l], g1 = gt[1][l], g2 = gt[2][l], g3 = gt[3][l], g4 = gt[4][l];
                const float g5 = gt[5][l], g6 = gt[6][l], g7 = gt[7][l], g8 = gt[8][l];
                /* t = G g (4 x 3) */
                const float t00 = g0, t01 = g1, t02 = g2;
                const float t10 = 0.5f * (g0 + g3 + g6), t11 = 0.5f * (g1 + g4 + g7), t12 = 0.5f * (g2 + g5 + g8);
                const float t20 = 0.5f * (g0 - g3 + g6), t21 = 0.5f * (g1 - g4 + g7), t22 = 0.5f * (g2 - g5 + g8);
                const float t30 = g6, t31 = g7, t32 = g8;
                /* U = t G^T (4 x 4) */
                o[0][l] = t00;  o[1][l] = 0.5f * (t00 + t01 + t02);  o[2][l] = 0.5f * (t00 - t01 + t02);  o[3][l] = t02;
                o[4][l] = t10;  o[5][l] = 0.5f * (t10 + t11 + t12);  o[6][l] = 0.5f * (t10 - t11 + t12);  o[7][l] = t12;
                o[8][l] = t20;  o[9][l] = 0.5f * (t20 + t21 + t22);  o[10][l] = 0.5f * (t20 - t21 + t22); o[11][l] = t22;
                o[12][l] = t30; o[13][l] = 0.5f * (t30 + t31 + t32); o[14][l] = 0.5f * (t30 - t31 + t32); o[15][l] = t32;
            }
            for (int k = 0; k < 16; k++)
                for (int32_t l = 0; l < nc; l++) u[k][c0 + l] = o[k][l];
        }
        if (tmp) cpu_i16_quant_u(tmp, 16, ci_n, j->cn, co - j->co0, j->Uq, j->Us);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define W2_AVX512 1
#define W2_TARGET __attribute__((target("avx512f,avx512dq")))
/* 16 interior tiles side by side: row r of their 4 x 34 input window starts at xr[r] (column 2 i + c of tile i);
 * writes (B^T d B)[e] of tile i to vt[e * plane + i] */
static W2_TARGET void wino_input16(const float *const xr[4], float *vt, int64_t plane) {
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512 d[4][4];
    for (int r = 0; r < 4; r++) {
        const float *p = xr[r];
        const __m512 z0 = _mm512_loadu_ps(p), z1 = _mm512_loadu_ps(p + 16);
        d[r][0] = _mm512_permutex2var_ps(z0, ev, z1);
        d[r][1] = _mm512_permutex2var_ps(z0, od, z1);
        /* columns 2 and 3 of tile i are columns 0 and 1 of tile i + 1; tile 15's are p[32], p[33] */
        d[r][2] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(_mm512_set1_ps(p[32])), _mm512_castps_si512(d[r][0]), 1));
        d[r][3] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(_mm512_set1_ps(p[33])), _mm512_castps_si512(d[r][1]), 1));
    }
    __m512 w[4][4];   /* B^T d: rows */
    for (int c = 0; c < 4; c++) {
        w[0][c] = _mm512_sub_ps(d[0][c], d[2][c]);
        w[1][c] = _mm512_add_ps(d[1][c], d[2][c]);
        w[2][c] = _mm512_sub_ps(d[2][c], d[1][c]);
        w[3][c] = _mm512_sub_ps(d[1][c], d[3][c]);
    }
    for (int r = 0; r < 4; r++) {   /* (B^T d) B */
        _mm512_storeu_ps(vt + (r * 4 + 0) * plane, _mm512_sub_ps(w[r][0], w[r][2]));
        _mm512_storeu_ps(vt + (r * 4 + 1) * plane, _mm512_add_ps(w[r][1], w[r][2]));
        _mm512_storeu_ps(vt + (r * 4 + 2) * plane, _mm512_sub_ps(w[r][2], w[r][1]));
        _mm512_storeu_ps(vt + (r * 4 + 3) * plane, _mm512_sub_ps(w[r][1], w[r][3]));
    }
}
#endif

/* V[e][ci][t - t0] = (B^T d B)[e] for the tiles of the block */
static void wino_input(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    cpu_wino_job *j = va;
    const de_conv2d_op *op = j->op;
    const int32_t H = op->h, W = op->w;
    const int64_t nt = j->nt, plane = (int64_t)op->c_in * nt;
    const int64_t hw = (int64_t)H * W;
    for (int64_t ci = b; ci < e; ci++) {
        float *v = j->V + ci * nt;
        int64_t t = j->t0;
        const int64_t tend = j->t0 + nt;
        while (t < tend) {
            const int64_t img = t / j->T, tl = t % j->T;
            const float *xc = (const float *)op->x + (img * op->c_in + ci) * hw;
            const int32_t ty = (int32_t)(tl / j->tw), tx0 = (int32_t)(tl % j->tw);
            int32_t tx1 = j->tw;
            if (tend - t < tx1 - tx0) tx1 = tx0 + (int32_t)(tend - t);
            const int32_t iy0 = 2 * ty - op->pad_t;
            /* interior range of tx: all 4 rows and 4 columns inside the image */
            const int rows_in = iy0 >= 0 && iy0 + 3 < H;
            int32_t fx0 = tx0, fx1 = tx1;
            if (rows_in) {
                while (fx0 < tx1 && 2 * fx0 - op->pad_l < 0) fx0++;
                while (fx1 > fx0 && 2 * (fx1 - 1) - op->pad_l + 3 >= W) fx1--;
            } else {
                fx0 = fx1 = tx1;
            }
            float *vt = v + (t - j->t0) - tx0;  /* index by tx */
            /* general (border) tiles */
            for (int32_t tx = tx0; tx < tx1; tx++) {
                if (tx == fx0 && fx1 > fx0) { tx = fx1 - 1; continue; }
                const int32_t ix0 = 2 * tx - op->pad_l;
                float d[4][4];
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 4; c++) {
                        const int32_t iy = iy0 + r, ix = ix0 + c;
                        d[r][c] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xc[(int64_t)iy * W + ix] : 0.0f;
                    }
                float w[4][4];
                for (int c = 0; c < 4; c++) {
                    w[0][c] = d[0][c] - d[2][c];
                    w[1][c] = d[1][c] + d[2][c];
                    w[2][c] = d[2][c] - d[1][c];
                    w[3][c] = d[1][c] - d[3][c];
                }
                for (int r = 0; r < 4; r++) {
                    vt[(r * 4 + 0) * plane + tx] = w[r][0] - w[r][2];
                    vt[(r * 4 + 1) * plane + tx] = w[r][1] + w[r][2];
                    vt[(r * 4 + 2) * plane + tx] = w[r][2] - w[r][1];
                    vt[(r * 4 + 3) * plane + tx] = w[r][1] - w[r][3];
                }
            }
            /* interior tiles: no bounds checks (vectorizable across tx) */
            if (fx1 > fx0) {
                const float *r0 = xc + (int64_t)iy0 * W - op->pad_l, *r1 = r0 + W, *r2 = r1 + W, *r3 = r2 + W;
                int32_t tx = fx0;
#ifdef W2_AVX512
                /* 16 at a time (their 4 x 34 window is the interior tiles' own) */
                if (j->ctx->simd512)
                    for (; tx + 16 <= fx1; tx += 16) {
                        const float *xr[4] = { r0 + 2 * tx, r1 + 2 * tx, r2 + 2 * tx, r3 + 2 * tx };
                        wino_input16(xr, vt + tx, plane);
                    }
#endif
                for (; tx < fx1; tx++) {
                    const int32_t c = 2 * tx;
                    float w0[4], w1[4], w2[4], w3[4];
                    for (int k = 0; k < 4; k++) {
                        w0[k] = r0[c + k] - r2[c + k];
                        w1[k] = r1[c + k] + r2[c + k];
                        w2[k] = r2[c + k] - r1[c + k];
                        w3[k] = r1[c + k] - r3[c + k];
                    }
                    vt[0 * plane + tx] = w0[0] - w0[2];  vt[1 * plane + tx] = w0[1] + w0[2];
                    vt[2 * plane + tx] = w0[2] - w0[1];  vt[3 * plane + tx] = w0[1] - w0[3];
                    vt[4 * plane + tx] = w1[0] - w1[2];  vt[5 * plane + tx] = w1[1] + w1[2];
                    vt[6 * plane + tx] = w1[2] - w1[1];  vt[7 * plane + tx] = w1[1] - w1[3];
                    vt[8 * plane + tx] = w2[0] - w2[2];  vt[9 * plane + tx] = w2[1] + w2[2];
                    vt[10 * plane + tx] = w2[2] - w2[1]; vt[11 * plane + tx] = w2[1] - w2[3];
                    vt[12 * plane + tx] = w3[0] - w3[2]; vt[13 * plane + tx] = w3[1] + w3[2];
                    vt[14 * plane + tx] = w3[2] - w3[1]; vt[15 * plane + tx] = w3[1] - w3[3];
                }
            }
            t += tx1 - tx0;
        }
    }
}

int64_t cpu_wino_out_block(const cpu_ctx *ctx, int points, int32_t c_in, int32_t c_out) {
    if (ctx->winograd_channels > 0) return ctx->winograd_channels < c_out ? ctx->winograd_channels : c_out;
    const int64_t per = (int64_t)points * c_in;   /* U floats per output channel */
    if ((int64_t)c_out * per <= CPU_WINO_U_BUDGET) return c_out;
    int64_t cb = (int64_t)CPU_WINO_U_BUDGET / per / 32 * 32;
    return cb < 32 ? 32 : cb;
}

/* M[e][co][nt] = U[e][co][ci] @ V[e][ci][nt] for the points b..e of one tile block (F(2x2): 16, F(4x4): 36), on pool
 * worker tid: OpenBLAS single-threaded inside, or with compute auto / bf16 on AMX the worker's own bf16 GEMM
 * (cpu_bgemm_local; auto with a reduced weight: three terms, U rounded to 16 bits of mantissa). One task per point. */
static void wino_gemm(void *va, int64_t b, int64_t e, int tid) {
    cpu_wino_job *j = va;
    const int32_t ci = j->op->c_in;
    const int64_t co = j->cn, nt = j->nt;
    const int bf = cpu_bgemm_local_ok(j->ctx, j->op->weight_dtype);
    for (int64_t k = b; k < e; k++) {
        const float *v = j->V + k * (int64_t)ci * nt;
        float *m = j->M + k * co * nt;
        if (j->Uq) {   /* compute i16 (cpu_i16.c): U's rows packed once per channel block; there is no f32 U */
            if (cpu_i16_local(j->ctx, tid, j->Uq, j->Us, k * co, co, ci, v, nt, nt, m, nt) != DE_OK)
                atomic_store(&j->failed, 1);
            continue;
        }
        const float *u = j->U + k * co * ci;
        if (bf) {
            if (cpu_bgemm_local(j->ctx, tid, co, nt, ci, u, ci, v, nt, m, nt) != DE_OK) atomic_store(&j->failed, 1);
        } else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)co, (int)nt, ci, 1.0f, u, ci, v, (int)nt, 0.0f, m,
                        (int)nt);
    }
}

de_status cpu_wino_run(cpu_ctx *ctx, cpu_wino_job *j, int points, int64_t budget, int64_t tb_min, de_range_fn weights,
                       de_range_fn input, de_range_fn output) {
    const de_conv2d_op *op = j->op;
    const int64_t CB = cpu_wino_out_block(ctx, points, op->c_in, op->c_out);
    const int64_t usz = points * CB * op->c_in;
    const int64_t NT = (int64_t)op->n * j->T;   /* tiles of the whole batch: one GEMM block may span images */
    int64_t TB = budget / (points * ((int64_t)op->c_in + CB));
    if (TB < tb_min) TB = tb_min;
    if (ctx->winograd_tiles > 0) TB = ctx->winograd_tiles; /* testing: force small tile blocks */
    if (TB > NT) TB = NT;
    /* compute i16: the weight transform writes U's rows quantized (cpu_i16_quant_u), a channel's points at a time
     * through each worker's buffer after its converted weight row; no f32 U */
    const int i16 = cpu_use_i16(ctx);
    j->Uq = NULL;
    j->Us = NULL;
    if (i16) {
        de_status st = cpu_weight_reserve(ctx, (size_t)(9 + points) * (size_t)op->c_in);
        if (st == DE_OK) st = cpu_i16_u_alloc(ctx, points * CB, op->c_in, &j->Uq, &j->Us);
        if (st != DE_OK) return st;
    }
    float *U = i16 ? NULL : de_scratch_get(&ctx->shared2, (size_t)usz);
    float *VM = de_scratch_get(&ctx->shared, (size_t)(points * TB * ((int64_t)op->c_in + CB)));
    if ((!i16 && !U) || !VM) return cpu_fail(ctx, DE_ERR_OOM, "conv2d: out of memory for Winograd buffers (%lld floats)",
                                   (long long)(usz + points * TB * ((int64_t)op->c_in + CB)));
    j->U = U;
    j->ctx = ctx;
    atomic_store(&j->failed, 0);
    for (j->co0 = 0; j->co0 < op->c_out; j->co0 += CB) {
        j->cn = op->c_out - j->co0 < CB ? op->c_out - j->co0 : CB;
        de_pool_for(&ctx->pool, j->cn, 0, weights, j);
        for (int64_t t0 = 0; t0 < NT; t0 += TB) {
            j->t0 = t0;
            j->nt = NT - t0 < TB ? NT - t0 : TB;
            j->V = VM;
            j->M = VM + points * j->nt * op->c_in;
            /* with one tile block for the whole batch, V stays valid across output channel blocks */
            if (j->co0 == 0 || TB < NT) de_pool_for(&ctx->pool, op->c_in, 0, input, j);
            de_pool_for(&ctx->pool, points, 1, wino_gemm, j);
            if (atomic_load(&j->failed))
                return cpu_fail(ctx, DE_ERR_OOM, "conv2d: out of memory for the bf16 / i16 Winograd GEMM buffers (%d -> %d channels)",
                                op->c_in, op->c_out);
            de_pool_for(&ctx->pool, j->cn, 0, output, j);
        }
    }
    return DE_OK;
}

/* y tile = A^T M A (+ bias + residual), channels co0 + [b, e) */
static void wino_output(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    cpu_wino_job *j = va;
    b += j->co0, e += j->co0;
    const int64_t nt = j->nt, plane = j->cn * nt;
    const int64_t ohw = (int64_t)j->oh * j->ow;
    for (int64_t co = b; co < e; co++) {
        const float bias = j->op->bias ? j->op->bias[co] : 0.0f;
        const float *mm = j->M + (co - j->co0) * nt;
        for (int64_t t = j->t0; t < j->t0 + nt; t++) {
            const int64_t img = t / j->T, tl = t % j->T;
            float *yc = (float *)j->op->y + (img * j->op->c_out + co) * ohw;
            const float *rc = j->op->residual ? j->op->residual + (img * j->op->c_out + co) * ohw : NULL;
            const int32_t ty = (int32_t)(tl / j->tw), tx = (int32_t)(tl % j->tw);
            const float *m = mm + (t - j->t0);
            float s0[4], s1[4];
            for (int c = 0; c < 4; c++) {
                const float m0 = m[(0 + c) * plane], m1 = m[(4 + c) * plane], m2 = m[(8 + c) * plane], m3 = m[(12 + c) * plane];
                s0[c] = m0 + m1 + m2;
                s1[c] = m1 - m2 - m3;
            }
            const float y00 = s0[0] + s0[1] + s0[2], y01 = s0[1] - s0[2] - s0[3];
            const float y10 = s1[0] + s1[1] + s1[2], y11 = s1[1] - s1[2] - s1[3];
            const int32_t oy = 2 * ty, ox = 2 * tx;
            const int64_t p = (int64_t)oy * j->ow + ox;
            const int has_x1 = ox + 1 < j->ow, has_y1 = oy + 1 < j->oh;
            yc[p] = y00 + bias + (rc ? rc[p] : 0.0f);
            if (has_x1) yc[p + 1] = y01 + bias + (rc ? rc[p + 1] : 0.0f);
            if (has_y1) {
                yc[p + j->ow] = y10 + bias + (rc ? rc[p + j->ow] : 0.0f);
                if (has_x1) yc[p + j->ow + 1] = y11 + bias + (rc ? rc[p + j->ow + 1] : 0.0f);
            }
        }
    }
}

/* Caller has validated op: 3x3, stride 1. Returns DE_OK or DE_ERR_OOM (message set). */
de_status cpu_conv2d_winograd(cpu_ctx *ctx, const de_conv2d_op *op, int32_t oh, int32_t ow) {
    cpu_wino_job j = { .op = op, .oh = oh, .ow = ow, .th = (oh + 1) / 2, .tw = (ow + 1) / 2 };
    j.T = (int64_t)j.th * j.tw;
    return cpu_wino_run(ctx, &j, 16, WINO_BUDGET, 64, wino_weights, wino_input, wino_output);
}
