/* bf16_check.c — the CPU provider's bf16 compute (cpu_bf16.c; options.cpu_compute) against double references.
 *
 * Every case runs one op (gemm or conv2d) on a provider created with cpu_compute = bf16 (and auto) and checks:
 *   - exact: against the double-precision product of the operands rounded to bf16 (round to nearest even; what
 *     the kernel multiplies), relative L2 error <= 2e-6: catches any packing / layout / edge-tile mistake;
 *   - bound: against the double-precision product of the operands' own values, relative L2 error <= 1e-2 (the
 *     bf16 tolerance), and > 1e-5 on cases with k >= 32 (the result really was rounded: not the f32 path);
 *   - ran: the provider's bf16_gemms counter moved (de_backend_stats).
 * compute = auto: bf16 only for a reduced (f16 / bf16 / q8_0) weight and only with AMX: the activation split into
 * hi + lo, an f16 weight too (three terms); f32 weights and all-f32 gemms stay f32.
 * Winograd 3x3 convolutions (planes of >= 512 outputs) take the bf16 GEMMs only with AMX (cpu_bgemm_local): their
 * products are of transformed operands, so only the bound is checked (auto: 1e-4; bf16: 1e-2 and > 1e-5).
 * Kernels: the best this CPU has (AMX tiles where Linux grants them), then vdpbf16ps alone
 * (cpu_bf16_kernel = avx512bf16), then none (cpu_bf16_kernel = -1: bf16 asked for but not offered: the op
 * runs in f32, bf16_gemms stays 0, error <= 1e-5 against the double reference). On a CPU without AVX512_BF16
 * only the last runs (and the program says so).
 * Cases: odd m / n / k around the 16 / 32 tile edges, the four trans combinations, batch with strides and
 * a stride-0 shared weight, alpha / beta / bias, f16 / bf16 / q8_0 weights as a (conv layout) and b (linear),
 * and conv2d through im2col (stride 2, odd channels), 1x1 on a large plane, a 3x3 with residual.
 * compute = i16 (cpu_i16.c, CPUs with AVX512-VNNI): GEMMs with a reduced weight and the convolutions' im2col / 1x1
 * GEMMs quantize both operands per 64-element block of k (rows of op(A), columns of op(B)) to 14 / 13-bit integers:
 *   - exact: against the double product of the operands so quantized (per block s = max|v| / L, q = v * (L / max|v|)
 *     rounded to nearest even, L = 8191 for the activation and 4000 for the weight, as the kernel computes them),
 *     relative L2 error <= 2e-6;
 *   - bound: against the double product of the operands' own values, <= 2e-3 and > 1e-6 with k >= 32 (quantized);
 *   Winograd convolutions (their per-point GEMMs, cpu_winograd.c) and im2col / 1x1 ones: the bound only; the cases
 *   that stay f32 (a transposed activation, f32-weight gemms) <= 1e-5.
 * Exit 0 when every case passes. Build: make test-opcheck (build/tests/bf16_check). */
#include "de_backend.h"
#include <stdint.h>
extern int64_t cpu_bf16_panel_budget; /* cpu_internal.h: bytes of one packed operand chunk */
extern int64_t cpu_i16_chunk;         /* cpu_internal.h: int16 of one packed i16 chunk */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, cases = 0;
static unsigned long long rng = 0x243F6A8885A308D3ull;

static float frand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) / (double)(1ull << 24)) * 2.f - 1.f;
}
static float *rnd(size_t n, float s) {
    float *p = malloc(n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++) p[i] = frand() * s;
    return p;
}

/* f32 -> bf16 -> f32, round to nearest even (finite inputs) */
static double bf(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    x += 0x7fff + ((x >> 16) & 1);
    x &= 0xffff0000u;
    float r;
    memcpy(&r, &x, 4);
    return r;
}

/* what the kernel multiplies for one product x * w (x the activation, w the weight of storage wdt): compute
 * bf16: bf(x) bf(w); auto: x = hi + lo (and an f16 weight too), terms hi hi + lo hi (+ hi lo) */
static int g_auto = 0;
static double prod(float x, float w, de_dtype wdt) {
    const double xh = bf(x), wh = bf(w);
    if (!g_auto) return xh * wh;
    double s = xh * wh + bf((float)((double)x - xh)) * wh;
    if (wdt == DE_F16) s += xh * bf((float)((double)w - wh));
    return s;
}

static double rel_l2(const float *got, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        const double d = got[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int64_t bf16_count(de_backend *be) {
    de_backend_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    de_backend_stats_get(be, &s);
    return s.bf16_gemms;
}

static int g_wino_channels;  /* winograd_channels of the backends made (0: automatic) */

static de_backend *make(int compute, int kernel) {
    de_backend_options o;
    de_backend_options_init(&o);
    o.threads = 2;
    o.winograd_channels = g_wino_channels;
    o.cpu_compute = compute;
    o.cpu_bf16_kernel = kernel;
    de_backend *be = de_backend_cpu_init_opts(&o);
    if (!be) { printf("bf16_check: no CPU backend\n"); exit(1); }
    return be;
}

static int g_kernel;  /* the kernel the backend under test uses (NONE: f32 expected) */
static int g_i16 = 0; /* compute i16 on a VNNI CPU: 1 = the case is expected to take the i16 kernel (gemm: exact
                       * reference), 2 = to stay f32, 3 = i16 with the bound only (conv2d: im2col / 1x1) */

/* v[0..k) (stride st) as the i16 kernel quantizes it, per block of 64 with `levels` levels (activation 8191, weight
 * 4000): s * q in double */
static void i16_deq(const float *v, int64_t k, int64_t st, double *out, float levels) {
    for (int64_t b0 = 0; b0 < k; b0 += 64) {
        const int64_t b1 = b0 + 64 < k ? b0 + 64 : k;
        float amax = 0;
        for (int64_t i = b0; i < b1; i++) amax = fabsf(v[i * st]) > amax ? fabsf(v[i * st]) : amax;
        const float s = amax / levels, inv = amax > 0 ? levels / amax : 0.0f;
        for (int64_t i = b0; i < b1; i++) out[i] = (double)s * nearbyintf(v[i * st] * inv);
    }
}
static double g_auto_bound = 1e-2; /* auto: per weight dtype (set by the cases) */
static int g_wino = 0;             /* a Winograd case: no exact reference; bf16 only where the kernel is AMX */

static void verdict(const char *name, double exact, double bound, int64_t ran, int k_big, de_status st, de_backend *be) {
    cases++;
    if (st != DE_OK) {
        failures++;
        printf("case %-44s status=%d \"%s\" FAIL\n", name, (int)st, de_backend_last_error(be));
        return;
    }
    int ok;
    if (g_i16 == 1) ok = exact <= 2e-6 && bound <= 2e-3 && (!k_big || bound > 1e-6);
    else if (g_i16 == 3) ok = bound <= 2e-3 && (!k_big || bound > 1e-6);
    else if (g_i16 == 2) ok = bound <= 1e-5;
    else if (g_wino && g_kernel != DE_BF16_KERNEL_AMX) ok = bound <= 1e-5 && ran == 0;
    else if (g_wino && g_auto) ok = bound <= g_auto_bound && ran > 0;
    else if (g_wino) ok = bound <= 1e-2 && bound > 1e-5 && ran > 0;
    else if (g_kernel == DE_BF16_KERNEL_NONE) ok = bound <= 1e-5 && ran == 0;
    else if (g_auto) ok = exact <= 2e-6 && bound <= g_auto_bound && ran > 0;
    else ok = exact <= 2e-6 && bound <= 1e-2 && (!k_big || bound > 1e-5) && ran > 0;
    if (!ok) failures++;
    printf("case %-44s exact=%.2e bound=%.2e bf16_gemms+%lld %s\n", name, exact, bound, (long long)ran, ok ? "PASS" : "FAIL");
    fflush(stdout);
}

/* The values a weight stored as dt holds (n f32 source values w; q8_0: n % 32 == 0, blocks of 32 in order).
 * Writes the stored form to *stored. */
static float *weight_as(de_dtype dt, const float *w, size_t n, void **stored) {
    float *v = malloc(n * sizeof(float));
    if (dt == DE_F16) {
        uint16_t *h = malloc(n * 2); de_f32_to_f16(w, h, (int64_t)n); de_f16_to_f32(h, v, (int64_t)n); *stored = h;
    } else if (dt == DE_BF16) {
        uint16_t *h = malloc(n * 2); de_f32_to_bf16(w, h, (int64_t)n); de_bf16_to_f32(h, v, (int64_t)n); *stored = h;
    } else if (dt == DE_Q8_0) {
        void *q = malloc(n / 32 * 34); de_quantize_q8_0(w, q, (int64_t)(n / 32), 32); de_dequantize_q8_0(q, v, (int64_t)n); *stored = q;
    } else {
        memcpy(v, w, n * sizeof(float)); *stored = NULL;
    }
    return v;
}

/* gemm: op(A) [m, k], op(B) [k, n]; wdt: a weight operand's storage (wa: A is the weight, else B) */
static void check_gemm(de_backend *be, const char *label, int batch, int m, int n, int k, int ta, int tb, float alpha, float beta,
                       int bias, de_dtype wdt, int wa, int shared) {
    const int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
    const int64_t sa = (wa && shared) ? 0 : (ta ? (int64_t)k * lda : (int64_t)m * lda) + 7;
    const int64_t sb = (!wa && shared) ? 0 : (tb ? (int64_t)n * ldb : (int64_t)k * ldb) + 9;
    const int64_t sc = (int64_t)m * ldc + 4;
    int64_t lda_ = lda, ldb_ = ldb, sa_ = sa, sb_ = sb;
    if (wdt == DE_Q8_0) { /* row strides and batch strides in whole blocks */
        if (wa) { lda_ = (k + 31) / 32 * 32 + 32; sa_ = shared ? 0 : (int64_t)m * lda_; }
        else { ldb_ = (k + 31) / 32 * 32 + 32; sb_ = shared ? 0 : (int64_t)n * ldb_; }
    }
    const size_t na = (size_t)((batch - 1) * sa_ + (ta ? (int64_t)k * lda_ : (int64_t)m * lda_));
    const size_t nb = (size_t)((batch - 1) * sb_ + (tb ? (int64_t)n * ldb_ : (int64_t)k * ldb_));
    const size_t nc = (size_t)((batch - 1) * sc + (int64_t)m * ldc);
    float *a = rnd(na, 1.f), *b = rnd(nb, 0.5f), *c0 = rnd(nc, 1.f), *bb = bias ? rnd((size_t)n, 1.f) : NULL;
    /* the reduced weight: stored form + the values it holds (rows of k with the row stride as given) */
    void *wst = NULL;
    float *av = a, *bv = b;
    if (wdt != DE_F32) {
        if (wa) av = weight_as(wdt, a, na, &wst);
        else bv = weight_as(wdt, b, nb, &wst);
    }
    float *c = malloc(nc * sizeof(float));
    memcpy(c, c0, nc * sizeof(float));
    de_gemm_op op;
    memset(&op, 0, sizeof op);
    op.dtype = DE_F32; op.batch = batch; op.m = m; op.n = n; op.k = k; op.trans_a = ta; op.trans_b = tb;
    op.a = (wdt != DE_F32 && wa) ? wst : a; op.lda = lda_; op.stride_a = sa_;
    op.b = (wdt != DE_F32 && !wa) ? wst : b; op.ldb = ldb_; op.stride_b = sb_;
    op.c = c; op.ldc = ldc; op.stride_c = sc; op.alpha = alpha; op.beta = beta; op.bias = bb;
    op.a_dtype = wa ? wdt : DE_F32; op.b_dtype = wa ? DE_F32 : wdt;
    const int64_t r0 = bf16_count(be);
    de_status st = de_gemm(be, &op);
    const int64_t ran = bf16_count(be) - r0;
    const size_t nout = (size_t)batch * m * n;
    double *re = malloc(nout * sizeof(double)), *rb = malloc(nout * sizeof(double));
    float *got = malloc(nout * sizeof(float));
    /* i16: rows of op(A) and columns of op(B), quantized per block of k */
    double *qa = g_i16 == 1 ? malloc((size_t)m * k * sizeof(double)) : NULL, *qb = g_i16 == 1 ? malloc((size_t)n * k * sizeof(double)) : NULL;
    for (int bi = 0; bi < batch; bi++) {
        if (qa) {
            for (int i = 0; i < m; i++)
                i16_deq(av + bi * sa_ + (ta ? i : (int64_t)i * lda_), k, ta ? lda_ : 1, qa + (size_t)i * k, wa ? 4000.0f : 8191.0f);
            for (int j = 0; j < n; j++)
                i16_deq(bv + bi * sb_ + (tb ? (int64_t)j * ldb_ : j), k, tb ? 1 : ldb_, qb + (size_t)j * k, wa ? 8191.0f : 4000.0f);
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double se = 0, sv = 0;
                for (int kk = 0; kk < k; kk++) {
                    const float x = av[bi * sa_ + (ta ? (int64_t)kk * lda_ + i : (int64_t)i * lda_ + kk)];
                    const float y = bv[bi * sb_ + (tb ? (int64_t)j * ldb_ + kk : (int64_t)kk * ldb_ + j)];
                    se += qa ? qa[(size_t)i * k + kk] * qb[(size_t)j * k + kk] : wa ? prod(y, x, wdt) : prod(x, y, wdt);
                    sv += (double)x * y;
                }
                const size_t o = ((size_t)bi * m + i) * n + j;
                const double cin = c0[bi * sc + (int64_t)i * ldc + j], bz = bb ? bb[j] : 0;
                re[o] = alpha * se + (beta != 0 ? beta * cin : 0) + bz;
                rb[o] = alpha * sv + (beta != 0 ? beta * cin : 0) + bz;
                got[o] = c[bi * sc + (int64_t)i * ldc + j];
            }
    }
    free(qa); free(qb);
    /* the padding between C's rows and batch items is never written */
    int pad_ok = 1;
    for (int bi = 0; bi < batch; bi++)
        for (int i = 0; i < m; i++)
            for (int64_t j = n; j < ldc && (bi * sc + (int64_t)i * ldc + j) < (int64_t)nc; j++)
                if (c[bi * sc + (int64_t)i * ldc + j] != c0[bi * sc + (int64_t)i * ldc + j]) pad_ok = 0;
    char name[160];
    snprintf(name, sizeof name, "gemm.%s.%dx%dx%dx%d.t%d%d.%s%s", label, batch, m, n, k, ta, tb,
             wdt == DE_F32 ? "f32" : wdt == DE_F16 ? "f16" : wdt == DE_BF16 ? "bf16" : "q8_0", wdt == DE_F32 ? "" : wa ? ".wA" : ".wB");
    verdict(name, rel_l2(got, re, nout), rel_l2(got, rb, nout), ran, k >= 32 && alpha != 0, pad_ok ? st : DE_ERR_BACKEND, be);
    if (!pad_ok) printf("  (elements outside C were written)\n");
    free(a); free(b); free(c0); free(bb); free(c); free(re); free(rb); free(got); free(wst);
    if (av != a) free(av);
    if (bv != b) free(bv);
}

static void check_conv(de_backend *be, const char *label, int n, int cin, int h, int w, int cout, int kk, int stride, int pad, int residual,
                       de_dtype wdt) {
    const int oh = (h + 2 * pad - kk) / stride + 1, ow = (w + 2 * pad - kk) / stride + 1;
    const int64_t K = (int64_t)cin * kk * kk;
    const size_t ny = (size_t)n * cout * oh * ow;
    float *x = rnd((size_t)n * cin * h * w, 1.f), *w32 = rnd((size_t)cout * K, 1.f / sqrtf((float)K)), *bias = rnd((size_t)cout, 1.f);
    float *res = residual ? rnd(ny, 1.f) : NULL, *y = malloc(ny * sizeof(float));
    void *wst = NULL;
    float *wv = weight_as(wdt, w32, (size_t)cout * K, &wst);
    de_conv2d_op op;
    memset(&op, 0, sizeof op);
    op.dtype = DE_F32; op.n = n; op.c_in = cin; op.h = h; op.w = w; op.c_out = cout; op.kh = kk; op.kw = kk;
    op.stride_h = op.stride_w = stride; op.pad_t = op.pad_l = op.pad_b = op.pad_r = pad;
    op.x = x; op.weight = wdt == DE_F32 ? (const void *)w32 : wst; op.bias = bias; op.residual = res; op.y = y; op.weight_dtype = wdt;
    const int64_t r0 = bf16_count(be);
    de_status st = de_conv2d(be, &op);
    const int64_t ran = bf16_count(be) - r0;
    double *re = malloc(ny * sizeof(double)), *rb = malloc(ny * sizeof(double));
    for (int ni = 0; ni < n; ni++)
        for (int o = 0; o < cout; o++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double se = 0, sv = 0;
                    for (int ci = 0; ci < cin; ci++)
                        for (int ky = 0; ky < kk; ky++)
                            for (int kx = 0; kx < kk; kx++) {
                                const int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                const float xv = x[(((size_t)ni * cin + ci) * h + iy) * w + ix];
                                const float wvv = wv[((size_t)o * cin + ci) * kk * kk + ky * kk + kx];
                                se += prod(xv, wvv, wdt);
                                sv += (double)xv * wvv;
                            }
                    const size_t idx = (((size_t)ni * cout + o) * oh + oy) * ow + ox;
                    const double add = bias[o] + (res ? res[idx] : 0);
                    re[idx] = se + add;
                    rb[idx] = sv + add;
                }
    /* bias and residual are added in f32 and the output is O(1): compare the convolution part */
    char name[160];
    snprintf(name, sizeof name, "conv2d.%s.%dx%dx%dx%d->%d.k%ds%d.%s", label, n, cin, h, w, cout, kk, stride,
             wdt == DE_F32 ? "f32" : wdt == DE_F16 ? "f16" : wdt == DE_BF16 ? "bf16" : "q8_0");
    verdict(name, rel_l2(y, re, ny), rel_l2(y, rb, ny), ran, K >= 32, st, be);
    free(x); free(w32); free(bias); free(res); free(y); free(wst); free(wv); free(re); free(rb);
}

/* Winograd with output channels in blocks of 16 (40 = 16 + 16 + 8): the per-point GEMMs on a block's rows */
static void check_wino_blocks16(int compute, const char *label, de_dtype d1, de_dtype d2, int cin2) {
    g_wino_channels = 16;
    de_backend *blk = make(compute, 0);
    g_wino_channels = 0;
    check_conv(blk, label, 1, 24, 40, 36, 40, 3, 1, 1, 1, d1);
    check_conv(blk, label, 2, cin2, 24, 24, 40, 3, 1, 1, 0, d2);
    de_backend_free(blk);
}

/* the larger panel in chunks (cpu_bf16_panel_budget lowered to 24 KB): a weight A in row chunks (the last one
 * partial), a linear weight B in column chunks (bias per chunk), an f32 activation B read by columns in column
 * chunks, and a batch (each item chunked) */
static void run_chunks(de_backend *be) {
    const int64_t saved = cpu_bf16_panel_budget;
    cpu_bf16_panel_budget = 24 << 10;
    check_gemm(be, "chunks.rows", 1, 200, 40, 96, 0, 0, 1.f, 0.5f, 0, DE_F16, 1, 0);
    check_gemm(be, "chunks.cols", 1, 40, 300, 96, 0, 1, 1.f, 0.f, 1, DE_F16, 0, 0);
    check_gemm(be, "chunks.xcols", 1, 33, 500, 64, 0, 0, 1.f, 1.f, 0, DE_BF16, 1, 0);
    const double bound = g_auto_bound;
    g_auto_bound = 1e-2; /* auto: q8_0's d * q rounded to bf16 */
    check_gemm(be, "chunks.batch", 2, 40, 300, 96, 0, 1, 0.5f, 0.f, 1, DE_Q8_0, 0, 1);
    g_auto_bound = bound;
    check_conv(be, "chunks.1x1", 1, 40, 24, 40, 24, 1, 1, 0, 1, DE_F16);
    cpu_bf16_panel_budget = saved;
}

static void run_all(de_backend *be) {
    /* tile edges: 1, 15/16/17, 31/32/33, 47, k not a multiple of 32 */
    check_gemm(be, "tiny", 1, 1, 1, 1, 0, 0, 1.f, 0.f, 0, DE_F32, 0, 0);
    check_gemm(be, "edges", 1, 17, 33, 45, 0, 0, 1.f, 0.f, 0, DE_F32, 0, 0);
    check_gemm(be, "edges", 1, 33, 15, 31, 0, 1, 1.f, 0.f, 1, DE_F32, 0, 0);
    check_gemm(be, "edges", 1, 47, 31, 65, 1, 0, 0.5f, 0.7f, 0, DE_F32, 0, 0);
    check_gemm(be, "edges", 1, 16, 16, 16, 1, 1, -1.5f, 1.f, 1, DE_F32, 0, 0);
    check_gemm(be, "full", 1, 64, 96, 128, 0, 0, 1.f, 1.f, 0, DE_F32, 0, 0);   /* AMX accumulates on C */
    check_gemm(be, "full", 1, 64, 96, 128, 0, 1, 1.f, 0.f, 0, DE_F32, 0, 0);   /* AMX stores to C */
    check_gemm(be, "bmm", 3, 40, 77, 64, 0, 1, 0.125f, 0.f, 0, DE_F32, 0, 0);
    check_gemm(be, "bmm", 3, 77, 40, 77, 0, 0, 1.f, 0.5f, 0, DE_F32, 0, 0);
    check_gemm(be, "large", 1, 300, 200, 320, 0, 1, 1.f, 0.f, 1, DE_F32, 0, 0);
    check_gemm(be, "kchunks", 1, 70, 300, 1100, 1, 0, 1.f, 0.5f, 1, DE_F32, 0, 0); /* AMX: several k chunks, a from columns */
    /* reduced weights: b transposed (linear), a untransposed (conv / proj_out layout), shared over a batch */
    const de_dtype wd[3] = {DE_F16, DE_BF16, DE_Q8_0};
    for (int t = 0; t < 3; t++) {
        check_gemm(be, "linear", 1, 70, 45, 96, 0, 1, 1.f, 0.f, 1, wd[t], 0, 0);
        check_gemm(be, "linear.xT", 2, 50, 33, 64, 1, 1, 1.f, 0.f, 1, wd[t], 0, 1);   /* proj_in: x^T @ W^T, W shared */
        check_gemm(be, "convlike", 1, 37, 90, 160, 0, 0, 1.f, 1.f, 0, wd[t], 1, 0);
        check_gemm(be, "proj_out", 2, 40, 50, 64, 0, 1, 1.f, 1.f, 0, wd[t], 1, 1);   /* W @ h^T, W shared */
    }
    check_gemm(be, "linear.k40", 1, 33, 20, 40, 0, 1, 1.f, 0.f, 1, DE_F16, 0, 0);
    run_chunks(be);
    /* conv2d: im2col (stride 2, 3 input channels), 1x1 on a plane >= 1024, 3x3 with residual (pad 1) */
    check_conv(be, "im2col", 2, 3, 33, 31, 20, 3, 2, 1, 0, DE_F32);
    check_conv(be, "im2col", 1, 16, 17, 17, 40, 3, 2, 1, 1, DE_F16);
    check_conv(be, "1x1", 1, 40, 32, 40, 24, 1, 1, 0, 0, DE_F16);
    check_conv(be, "1x1", 2, 64, 8, 8, 33, 1, 1, 0, 1, DE_Q8_0);
    check_conv(be, "3x3", 1, 32, 9, 9, 17, 3, 1, 1, 1, DE_BF16);
    g_wino = 1; /* Winograd F(4x4) (40x36) and F(2x2) (24x24 x2: 576 outputs, 16x16 tiles... both per the provider) */
    check_conv(be, "wino", 1, 24, 40, 36, 40, 3, 1, 1, 1, DE_F16);
    check_conv(be, "wino", 2, 33, 24, 24, 17, 3, 1, 1, 0, DE_F32);
    g_wino = 0;
}

/* compute i16 (cpu_i16.c) */
static void run_i16(void) {
    de_backend *be = make(DE_COMPUTE_I16, 0);
    if (!de_cpu_has_avx512vnni()) {
        printf("-- compute i16: no AVX512-VNNI on this CPU: f32\n");
        g_i16 = 2;
        check_gemm(be, "i16.none.linear", 1, 70, 45, 96, 0, 1, 1.f, 0.f, 1, DE_F16, 0, 0);
        check_conv(be, "i16.none.im2col", 1, 16, 17, 17, 40, 3, 2, 1, 1, DE_F16);
        de_backend_free(be);
        g_i16 = 0;
        return;
    }
    printf("-- compute i16\n");
    const de_dtype wd[3] = {DE_F16, DE_BF16, DE_Q8_0};
    for (int t = 0; t < 3; t++) {
        g_i16 = 1;
        /* k: one partial block, several blocks with a partial last, several k passes (> 256); m, n off the 6 x 32 tile */
        check_gemm(be, "i16.linear", 1, 70, 45, wd[t] == DE_Q8_0 ? 32 : 40, 0, 1, 1.f, 0.f, 1, wd[t], 0, 0);
        check_gemm(be, "i16.linear", 1, 13, 97, 160, 0, 1, 0.5f, 0.7f, 1, wd[t], 0, 0);
        check_gemm(be, "i16.linear", 1, 200, 64, 608, 0, 1, 1.f, 1.f, 0, wd[t], 0, 0);
        check_gemm(be, "i16.convlike", 1, 37, 90, 160, 0, 0, 1.f, 1.f, 0, wd[t], 1, 0);
        check_gemm(be, "i16.convlike", 1, 100, 33, 416, 0, 0, 1.f, 0.f, 0, wd[t], 1, 0);
        g_i16 = 2;
        check_gemm(be, "i16.proj_out", 2, 40, 50, 64, 0, 1, 1.f, 1.f, 0, wd[t], 1, 1);   /* W @ h^T: h transposed, f32 */
        check_gemm(be, "i16.linear.xT", 2, 50, 33, 64, 1, 1, 1.f, 0.f, 1, wd[t], 0, 1);  /* x transposed: f32 */
    }
    {   /* chunks of 4096 int16 (k 160 -> Kp 192): activation rows / columns and weight panels / rows in several chunks
         * each, the weight packed once when it is one chunk and again per activation chunk when it is several */
        const int64_t saved = cpu_i16_chunk;
        cpu_i16_chunk = 4096;
        g_i16 = 1;
        check_gemm(be, "i16.chunks.linear", 1, 200, 97, 160, 0, 1, 1.f, 0.5f, 1, DE_F16, 0, 0);
        check_gemm(be, "i16.chunks.linear.w1", 1, 200, 20, 160, 0, 1, 1.f, 0.f, 1, DE_BF16, 0, 0);
        check_gemm(be, "i16.chunks.convlike", 1, 130, 500, 160, 0, 0, 1.f, 1.f, 0, DE_F16, 1, 0);
        check_gemm(be, "i16.chunks.convlike.w1", 1, 20, 500, 160, 0, 0, 1.f, 0.f, 0, DE_Q8_0, 1, 0);
        cpu_i16_chunk = saved;
    }
    g_i16 = 3;
    check_conv(be, "i16.im2col", 2, 3, 33, 31, 20, 3, 2, 1, 0, DE_F32);
    check_conv(be, "i16.im2col", 1, 16, 17, 17, 40, 3, 2, 1, 1, DE_F16);
    check_conv(be, "i16.1x1", 1, 40, 32, 40, 24, 1, 1, 0, 0, DE_F16);
    check_conv(be, "i16.1x1", 2, 64, 8, 8, 33, 1, 1, 0, 1, DE_Q8_0);
    /* Winograd F(4x4) (40x36) and F(2x2) (24x24 x2): U packed once per channel block, V per point on the worker;
     * then output channels in blocks of 16 (40 = 16 + 16 + 8) */
    check_conv(be, "i16.wino", 1, 24, 40, 36, 40, 3, 1, 1, 1, DE_F16);
    check_conv(be, "i16.wino", 2, 33, 24, 24, 17, 3, 1, 1, 0, DE_F32);
    check_wino_blocks16(DE_COMPUTE_I16, "i16.wino.blocks16", DE_BF16, DE_F16, 70);
    g_i16 = 2;
    check_gemm(be, "i16.f32", 1, 70, 45, 96, 0, 1, 1.f, 0.f, 1, DE_F32, 0, 0);
    g_i16 = 0;
    de_backend_free(be);
}

int main(void) {
    const int best = de_cpu_bf16_kernel();
    printf("bf16_check: this CPU's bf16 kernel: %s\n", de_bf16_kernel_name(best));
    /* the best kernel, then vdpbf16ps alone (where AMX is the best), then none */
    int kernels[3], nk = 0;
    if (best >= DE_BF16_KERNEL_AVX512) kernels[nk++] = best;
    if (best == DE_BF16_KERNEL_AMX) kernels[nk++] = DE_BF16_KERNEL_AVX512;
    kernels[nk++] = -1;
    for (int i = 0; i < nk; i++) {
        de_backend *be = make(DE_COMPUTE_BF16, kernels[i]);
        g_kernel = kernels[i] < 0 ? DE_BF16_KERNEL_NONE : kernels[i];
        printf("-- kernel %s (compute bf16)\n", kernels[i] < 0 ? "none (forced)" : de_bf16_kernel_name(kernels[i]));
        run_all(be);
        de_backend_free(be);
    }
    /* auto: bf16 only with a reduced weight and only on AMX; f32 weights and all-f32 gemms stay f32, and so does
     * everything with vdpbf16ps alone */
    if (best != DE_BF16_KERNEL_NONE) {
        de_backend *fb = make(DE_COMPUTE_AUTO, DE_BF16_KERNEL_AVX512);
        printf("-- compute auto, kernel avx512bf16 at most: f32\n");
        g_kernel = DE_BF16_KERNEL_NONE;
        check_gemm(fb, "auto.avx512.reduced", 1, 70, 45, 96, 0, 1, 1.f, 0.f, 1, DE_BF16, 0, 0);
        de_backend_free(fb);
        de_backend *be = make(DE_COMPUTE_AUTO, 0);
        printf("-- compute auto\n");
        g_kernel = best == DE_BF16_KERNEL_AMX ? best : DE_BF16_KERNEL_NONE;
        g_auto = 1;
        for (int t = 0; t < 3; t++) {
            const de_dtype wd[3] = {DE_F16, DE_BF16, DE_Q8_0};
            g_auto_bound = wd[t] == DE_Q8_0 ? 1e-2 : 3e-5; /* q8_0's d * q is rounded to bf16; f16, bf16 exact */
            g_kernel = best == DE_BF16_KERNEL_AMX ? best : DE_BF16_KERNEL_NONE;
            check_gemm(be, "auto.linear", 1, 70, 45, 96, 0, 1, 1.f, 0.f, 1, wd[t], 0, 0);
            check_gemm(be, "auto.linear.xT", 2, 50, 33, 64, 1, 1, 1.f, 0.f, 1, wd[t], 0, 1);
            check_gemm(be, "auto.convlike", 1, 37, 90, 160, 0, 0, 1.f, 1.f, 0, wd[t], 1, 0);
            check_gemm(be, "auto.large", 1, 300, 200, 1088, 0, 1, 1.f, 0.f, 1, wd[t], 0, 0); /* several k chunks */
            check_conv(be, "auto.1x1", 2, 64, 8, 8, 33, 1, 1, 0, 1, wd[t]);
        }

        g_kernel = best == DE_BF16_KERNEL_AMX ? best : DE_BF16_KERNEL_NONE;
        check_conv(be, "auto.im2col", 1, 32, 17, 17, 40, 3, 2, 1, 0, DE_Q8_0);
        g_auto_bound = 3e-5;
        check_conv(be, "auto.im2col", 1, 16, 17, 17, 40, 3, 2, 1, 1, DE_BF16);
        check_conv(be, "auto.im2col", 1, 16, 17, 17, 40, 3, 2, 1, 1, DE_F16);
        run_chunks(be);
        /* Winograd with an f16 weight: U = G g G^T (f32) and V rounded to 16 bits of mantissa each */
        g_wino = 1;
        g_auto_bound = 1e-4;
        check_conv(be, "auto.wino", 1, 24, 40, 36, 40, 3, 1, 1, 1, DE_F16);
        check_conv(be, "auto.wino", 2, 33, 24, 24, 17, 3, 1, 1, 0, DE_F16);
        check_wino_blocks16(DE_COMPUTE_AUTO, "auto.wino.blocks16", DE_F16, DE_F16, 33);
        g_wino = 0;
        g_auto = 0;
        g_kernel = DE_BF16_KERNEL_NONE;
        check_gemm(be, "auto.f32", 1, 70, 45, 96, 0, 1, 1.f, 0.f, 1, DE_F32, 0, 0);
        check_conv(be, "auto.f32", 1, 16, 17, 17, 40, 3, 2, 1, 0, DE_F32);
        g_wino = 1; /* f32 weights: Winograd stays sgemm under auto */
        check_conv(be, "auto.f32.wino", 1, 24, 40, 36, 40, 3, 1, 1, 1, DE_F32);
        g_wino = 0;
        de_backend_free(be);
    } else {
        printf("bf16_check: no AVX512_BF16 on this CPU: only the f32 fallback was checked\n");
    }
    run_i16();
    printf("bf16_check: %d cases, %d failed\n", cases, failures);
    return failures ? 1 : 0;
}
