/* cpu_winograd4.c — 3x3 stride-1 convolution by Winograd F(4x4, 3x3) (Lavin & Gray 2015).
 *
 * y = A^T [ (G g G^T) . (B^T d B) ] A per 4x4 output tile, with 6x6 input tiles d:
 * 36 GEMMs of [c_out, c_in] @ [c_in, tiles], 4x fewer multiply-adds than direct convolution
 * (F(2x2, 3x3) gives 2.25x). Relative error ~5e-6 per layer in f32 (F(2x2) ~2e-7).
 * Layout per block of TB tiles (tiles numbered over the whole batch):
 *   U[36][CB][c_in], V[36][c_in][TB], M[36][CB][TB] = U[e] @ V[e], for blocks of CB output channels
 *   (cpu_wino_out_block: U under CPU_WINO_U_BUDGET floats).
 * Matrices (points 0, 1, -1, 2, -2):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 */
#include "cpu_internal.h"

#include <stdlib.h>

#define WINO4_BUDGET (6u << 20) /* floats for V + M: 24 MB */

/* r = B^T z for a 6-vector (stride-free helpers, inlined and unrolled) */
static inline void bt6(const float z[6], float r[6]) {
    r[0] = 4.0f * z[0] - 5.0f * z[2] + z[4];
    r[1] = -4.0f * (z[1] + z[2]) + z[3] + z[4];
    r[2] = 4.0f * (z[1] - z[2]) - z[3] + z[4];
    r[3] = -2.0f * (z[1] - z[3]) - z[2] + z[4];
    r[4] = 2.0f * (z[1] - z[3]) - z[2] + z[4];
    r[5] = 4.0f * z[1] - 5.0f * z[3] + z[5];
}

/* o = A^T m for a 6-vector */
static inline void at6(const float m[6], float o[4]) {
    const float a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
    o[0] = m[0] + a + c;
    o[1] = b + 2.0f * d;
    o[2] = a + 4.0f * c;
    o[3] = b + 8.0f * d + m[5];
}

/* U[e][co][ci] = (G g G^T)[e]; 8 input channels at a time, transposed into lanes so that the
 * arithmetic vectorizes across channels and the 36 output streams are written contiguously */
static void w4_weights(void *va, int64_t b, int64_t e, int tid) {
    cpu_wino_job *j = va;
    b += j->co0, e += j->co0;                      /* channels co0 + [b, e) */
    const int32_t ci_n = j->op->c_in;
    float *tmp = j->Uq ? j->ctx->per_thread[tid].ptr + (int64_t)ci_n * 9 : NULL;   /* i16: this channel's 36 rows */
    const int64_t plane = tmp ? ci_n : j->cn * ci_n;
    for (int64_t co = b; co < e; co++) {
        const float *g = cpu_conv_weight_row(j->ctx, j->op, co, (int64_t)ci_n * 9, tid);
        float *u = tmp ? tmp : j->U + (co - j->co0) * ci_n;
        for (int32_t c0 = 0; c0 < ci_n; c0 += 8) {
            const int32_t nc = ci_n - c0 < 8 ? ci_n - c0 : 8;
            float gt[9][8];
            for (int32_t l = 0; l < 8; l++)
                for (int k = 0; k < 9; k++) gt[k][l] = l < nc ? g[(int64_t)(c0 + l) * 9 + k] : 0.0f;
            float t[6][3][8];   /* t = G g, column by column */
            for (int c = 0; c < 3; c++)
                for (int l = 0; l < 8; l++) {
                    const float g0 = gt[c][l], g1 = gt[3 + c][l], g2 = gt[6 + c][l];
                    t[0][c][l] = 0.25f * g0;
                    t[1][c][l] = -(g0 + g1 + g2) * (1.0f / 6.0f);
                    t[2][c][l] = -(g0 - g1 + g2) * (1.0f / 6.0f);
                    t[3][c][l] = g0 * (1.0f / 24.0f) + g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
                    t[4][c][l] = g0 * (1.0f / 24.0f) - g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
                    t[5][c][l] = g2;
                }
            float o[36][8];     /* U = t G^T, row by row */
            for (int r = 0; r < 6; r++)
                for (int l = 0; l < 8; l++) {
                    const float g0 = t[r][0][l], g1 = t[r][1][l], g2 = t[r][2][l];
                    o[r * 6 + 0][l] = 0.25f * g0;
                    o[r * 6 + 1][l] = -(g0 + g1 + g2) * (1.0f / 6.0f);
                    o[r * 6 + 2][l] = -(g0 - g1 + g2) * (1.0f / 6.0f);
                    o[r * 6 + 3][l] = g0 * (1.0f / 24.0f) + g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
                    o[r * 6 + 4][l] = g0 * (1.0f / 24.0f) - g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
                    o[r * 6 + 5][l] = g2;
                }
            for (int k = 0; k < 36; k++)
                for (int32_t l = 0; l < nc; l++) u[k * plane + c0 + l] = o[k][l];
        }
        if (tmp) cpu_i16_quant_u(tmp, 36, ci_n, j->cn, co - j->co0, j->Uq, j->Us);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define W4_AVX512 1
#define W4_TARGET __attribute__((target("avx512f,avx512dq")))

/* bt6 on 16 tiles at once */
static inline W4_TARGET void bt6v(const __m512 z[6], __m512 r[6]) {
    const __m512 c4 = _mm512_set1_ps(4.0f), c5 = _mm512_set1_ps(5.0f), c2 = _mm512_set1_ps(2.0f);
    const __m512 z1m3 = _mm512_sub_ps(z[1], z[3]), z24 = _mm512_sub_ps(z[4], z[2]);
    r[0] = _mm512_add_ps(_mm512_fnmadd_ps(c5, z[2], _mm512_mul_ps(c4, z[0])), z[4]);
    r[1] = _mm512_fnmadd_ps(c4, _mm512_add_ps(z[1], z[2]), _mm512_add_ps(z[3], z[4]));
    r[2] = _mm512_fmadd_ps(c4, _mm512_sub_ps(z[1], z[2]), _mm512_sub_ps(z[4], z[3]));
    r[3] = _mm512_fnmadd_ps(c2, z1m3, z24);
    r[4] = _mm512_fmadd_ps(c2, z1m3, z24);
    r[5] = _mm512_add_ps(_mm512_fnmadd_ps(c5, z[3], _mm512_mul_ps(c4, z[1])), z[5]);
}

/* columns [c0, c0 + 16) of a row, zero outside [0, W) (masked: lanes outside are never read) */
static inline W4_TARGET __m512 load_cols(const float *row, int64_t c0, int64_t W) {
    const int64_t lo = c0 < 0 ? -c0 : 0, hi = W - c0 < 16 ? W - c0 : 16;
    if (hi <= lo) return _mm512_setzero_ps();
    const __mmask16 m = (__mmask16)(((hi >= 16 ? 0x10000u : (1u << hi)) - 1u) & ~((1u << lo) - 1u));
    return _mm512_maskz_loadu_ps(m, row + c0);
}

/* n (1..16) tiles side by side in one tile row: tile i's 6 x 6 window is rows[r] (NULL: a padding row), columns
 * ix0 + 4 i + c (zero outside [0, W)); writes (B^T d B)[e] of tile i to vt[e * plane + i] */
static W4_TARGET void w4_input16(const float *const rows[6], int64_t ix0, int64_t W, int n, float *vt, int64_t plane) {
    /* lanes 0..7 of permutex2var(lo, idx_c, hi): elements c, c + 4, ..., c + 28 of the 32 floats lo:hi */
    const __m512i idx[4] = {
        _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 28, 24, 20, 16, 12, 8, 4, 0),
        _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 29, 25, 21, 17, 13, 9, 5, 1),
        _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 30, 26, 22, 18, 14, 10, 6, 2),
        _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 31, 27, 23, 19, 15, 11, 7, 3),
    };
    const int interior = ix0 >= 0 && ix0 + 66 <= W;
    __m512 tcol[6][6];   /* tcol[k][c] = (B^T d)[k][c] */
    __m512 d[6][6];      /* d[r][c]: element (r, c) of the 16 tiles */
    for (int r = 0; r < 6; r++) {
        const float *p = rows[r];
        if (!p) {
            for (int c = 0; c < 6; c++) d[r][c] = _mm512_setzero_ps();
            continue;
        }
        __m512 z[4];
        float e64, e65;
        if (interior) {
            for (int q = 0; q < 4; q++) z[q] = _mm512_loadu_ps(p + ix0 + 16 * q);
            e64 = p[ix0 + 64];
            e65 = p[ix0 + 65];
        } else {
            for (int q = 0; q < 4; q++) z[q] = load_cols(p, ix0 + 16 * q, W);
            e64 = ix0 + 64 >= 0 && ix0 + 64 < W ? p[ix0 + 64] : 0.0f;
            e65 = ix0 + 65 >= 0 && ix0 + 65 < W ? p[ix0 + 65] : 0.0f;
        }
        for (int c = 0; c < 4; c++)
            d[r][c] = _mm512_shuffle_f32x4(_mm512_permutex2var_ps(z[0], idx[c], z[1]), _mm512_permutex2var_ps(z[2], idx[c], z[3]), 0x44);
        /* columns 4 and 5 of tile i are columns 0 and 1 of tile i + 1; tile 15's are elements 64, 65 */
        d[r][4] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(_mm512_set1_ps(e64)), _mm512_castps_si512(d[r][0]), 1));
        d[r][5] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(_mm512_set1_ps(e65)), _mm512_castps_si512(d[r][1]), 1));
    }
    for (int c = 0; c < 6; c++) {
        __m512 z[6] = { d[0][c], d[1][c], d[2][c], d[3][c], d[4][c], d[5][c] }, r6[6];
        bt6v(z, r6);
        for (int k = 0; k < 6; k++) tcol[k][c] = r6[k];
    }
    const __mmask16 mn = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
    for (int r = 0; r < 6; r++) {
        __m512 o[6];
        bt6v(tcol[r], o);
        for (int c = 0; c < 6; c++) _mm512_mask_storeu_ps(vt + (r * 6 + c) * plane, mn, o[c]);
    }
}

/* at6 on 16 tiles at once */
static inline W4_TARGET void at6v(const __m512 m[6], __m512 o[4]) {
    const __m512 a = _mm512_add_ps(m[1], m[2]), b = _mm512_sub_ps(m[1], m[2]);
    const __m512 c = _mm512_add_ps(m[3], m[4]), d = _mm512_sub_ps(m[3], m[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(m[0], a), c);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d, b);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), c, a);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d, b), m[5]);
}

/* 16 tiles side by side in one tile row, all 4 x 4 outputs inside the plane: M of tile i at m[e * plane + i]; output
 * row r of the 16 tiles is y + r * ow (64 floats), plus bias and the residual rows res + r * ow (NULL: none) */
static W4_TARGET void w4_output16(const float *m, int64_t plane, float *y, const float *res, int64_t ow, float bias) {
    __m512 s[4][6];   /* s = A^T M, by columns */
    for (int c = 0; c < 6; c++) {
        __m512 z[6], o[4];
        for (int r = 0; r < 6; r++) z[r] = _mm512_loadu_ps(m + (r * 6 + c) * plane);
        at6v(z, o);
        for (int r = 0; r < 4; r++) s[r][c] = o[r];
    }
    /* interleave: 4 vectors (output columns 0..3 of 16 tiles) -> 64 floats in pixel order */
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const __m512i q0 = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0), q1 = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
    const __m512 bv = _mm512_set1_ps(bias);
    for (int r = 0; r < 4; r++) {
        __m512 o[4];
        at6v(s[r], o);
        const __m512 ab0 = _mm512_permutex2var_ps(o[0], lo, o[1]), ab1 = _mm512_permutex2var_ps(o[0], hi, o[1]);
        const __m512 cd0 = _mm512_permutex2var_ps(o[2], lo, o[3]), cd1 = _mm512_permutex2var_ps(o[2], hi, o[3]);
        __m512 v[4];
        v[0] = _mm512_castpd_ps(_mm512_permutex2var_pd(_mm512_castps_pd(ab0), q0, _mm512_castps_pd(cd0)));
        v[1] = _mm512_castpd_ps(_mm512_permutex2var_pd(_mm512_castps_pd(ab0), q1, _mm512_castps_pd(cd0)));
        v[2] = _mm512_castpd_ps(_mm512_permutex2var_pd(_mm512_castps_pd(ab1), q0, _mm512_castps_pd(cd1)));
        v[3] = _mm512_castpd_ps(_mm512_permutex2var_pd(_mm512_castps_pd(ab1), q1, _mm512_castps_pd(cd1)));
        float *yr = y + r * ow;
        const float *rr = res ? res + r * ow : NULL;
        for (int i = 0; i < 4; i++) {
            __m512 t = _mm512_add_ps(v[i], bv);
            if (rr) t = _mm512_add_ps(t, _mm512_loadu_ps(rr + 16 * i));
            _mm512_storeu_ps(yr + 16 * i, t);
        }
    }
}
#endif

/* V[e][ci][t - t0] = (B^T d B)[e] */
static void w4_input(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    cpu_wino_job *j = va;
    const de_conv2d_op *op = j->op;
    const int32_t H = op->h, W = op->w;
    const int64_t nt = j->nt, plane = (int64_t)op->c_in * nt, hw = (int64_t)H * W;
#ifdef W4_AVX512
    const int v512 = j->ctx->simd512;
#endif
    for (int64_t ci = b; ci < e; ci++) {
        float *v = j->V + ci * nt;
        for (int64_t t = j->t0; t < j->t0 + nt; t++) {
            const int64_t img = t / j->T, tl = t % j->T;
            const float *xc = (const float *)op->x + (img * op->c_in + ci) * hw;
            const int32_t ty = (int32_t)(tl / j->tw), tx = (int32_t)(tl % j->tw);
            const int32_t iy0 = 4 * ty - op->pad_t, ix0 = 4 * tx - op->pad_l;
#ifdef W4_AVX512
            /* up to 16 tiles of this tile row inside the block at once, padding included: the vector path */
            if (v512) {
                int64_t n = j->tw - tx < 16 ? j->tw - tx : 16;
                if (j->t0 + nt - t < n) n = j->t0 + nt - t;
                const float *rows[6];
                for (int r = 0; r < 6; r++) rows[r] = iy0 + r >= 0 && iy0 + r < H ? xc + (int64_t)(iy0 + r) * W : NULL;
                w4_input16(rows, ix0, W, (int)n, v + (t - j->t0), plane);
                t += n - 1;
                continue;
            }
#endif
            float d[6][6];
            if (iy0 >= 0 && iy0 + 6 <= H && ix0 >= 0 && ix0 + 6 <= W) {
                for (int r = 0; r < 6; r++)
                    for (int c = 0; c < 6; c++) d[r][c] = xc[(int64_t)(iy0 + r) * W + ix0 + c];
            } else {
                for (int r = 0; r < 6; r++)
                    for (int c = 0; c < 6; c++) {
                        const int32_t iy = iy0 + r, ix = ix0 + c;
                        d[r][c] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xc[(int64_t)iy * W + ix] : 0.0f;
                    }
            }
            float tcol[6][6];   /* tcol = B^T d (columns) */
            for (int c = 0; c < 6; c++) {
                float z[6] = { d[0][c], d[1][c], d[2][c], d[3][c], d[4][c], d[5][c] }, r[6];
                bt6(z, r);
                for (int k = 0; k < 6; k++) tcol[k][c] = r[k];
            }
            float *vt = v + (t - j->t0);
            for (int r = 0; r < 6; r++) {   /* rows: (B^T d) B */
                float o[6];
                bt6(tcol[r], o);
                for (int c = 0; c < 6; c++) vt[(r * 6 + c) * plane] = o[c];
            }
        }
    }
}

/* y tile = A^T M A (+ bias + residual) */
static void w4_output(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    cpu_wino_job *j = va;
    b += j->co0, e += j->co0;                      /* channels co0 + [b, e) */
    const de_conv2d_op *op = j->op;
    const int64_t nt = j->nt, plane = j->cn * nt, ohw = (int64_t)j->oh * j->ow;
#ifdef W4_AVX512
    const int v512 = j->ctx->simd512;
#endif
    for (int64_t co = b; co < e; co++) {
        const float bias = op->bias ? op->bias[co] : 0.0f;
        const float *mm = j->M + (co - j->co0) * nt;
        for (int64_t t = j->t0; t < j->t0 + nt; t++) {
            const int64_t img = t / j->T, tl = t % j->T;
            float *yc = (float *)op->y + (img * op->c_out + co) * ohw;
            const float *rc = op->residual ? op->residual + (img * op->c_out + co) * ohw : NULL;
            const int32_t oy0 = 4 * (int32_t)(tl / j->tw), ox0 = 4 * (int32_t)(tl % j->tw);
            const float *m = mm + (t - j->t0);
#ifdef W4_AVX512
            /* 16 tiles of this tile row whose outputs all lie inside the plane: the vector path */
            if (v512 && tl % j->tw + 16 <= j->tw && ox0 + 64 <= j->ow && oy0 + 4 <= j->oh && t + 16 <= j->t0 + nt) {
                const int64_t p = (int64_t)oy0 * j->ow + ox0;
                w4_output16(m, plane, yc + p, rc ? rc + p : NULL, j->ow, bias);
                t += 15;
                continue;
            }
#endif
            float s[4][6];   /* s = A^T M (columns) */
            for (int c = 0; c < 6; c++) {
                float z[6], o[4];
                for (int r = 0; r < 6; r++) z[r] = m[(r * 6 + c) * plane];
                at6(z, o);
                for (int r = 0; r < 4; r++) s[r][c] = o[r];
            }
            const int32_t ny = j->oh - oy0 < 4 ? j->oh - oy0 : 4, nx = j->ow - ox0 < 4 ? j->ow - ox0 : 4;
            for (int r = 0; r < ny; r++) {
                float o[4];
                at6(s[r], o);
                const int64_t p = (int64_t)(oy0 + r) * j->ow + ox0;
                for (int c = 0; c < nx; c++) yc[p + c] = o[c] + bias + (rc ? rc[p + c] : 0.0f);
            }
        }
    }
}

/* Caller has validated op: 3x3, stride 1. */
de_status cpu_conv2d_winograd4(cpu_ctx *ctx, const de_conv2d_op *op, int32_t oh, int32_t ow) {
    cpu_wino_job j = { .op = op, .oh = oh, .ow = ow, .th = (oh + 3) / 4, .tw = (ow + 3) / 4 };
    j.T = (int64_t)j.th * j.tw;
    return cpu_wino_run(ctx, &j, 36, WINO4_BUDGET, 32, w4_weights, w4_input, w4_output);
}
