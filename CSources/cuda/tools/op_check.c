/* op_check.c — every op of the CUDA provider against the CPU provider (relative error per op, timing).
 *
 * Built where a C compiler and OpenBLAS are (scripts/gpu_check.sh builds it; it links the CPU provider
 * and the registry from CSources/CDiffKernels statically) and loads libdiffedit_cuda.so through the same
 * loader the library uses (de_backend_load "cuda", DIFFEDIT_BACKEND_PATH). Shapes are SD 1.5 ones at
 * 512x512 (64x64 latents) where the CPU reference stays fast enough.
 * Weights are given both ways: as constants uploaded once (de_backend_constant_upload, what the Swift
 * layer does at model load; the op gets the provider's handle) and as plain host pointers (copied in by
 * every op). The resident chain counts host operands (de_backend_stats): with inputs in backend memory
 * and weights as constants it must meet none.
 * Every case checks the first (cold) call's output and the second's. Also: GEMMs with stride-0 weights, beta 1 +
 * bias into device memory at an unaligned offset, convs with 3, 4 and 8 channels and the upsampler's 2x2 phase
 * conv, outputs above fp16's range, masked and 4096-wide softmax rows, head_dim 512, a VAE-sized tensor through
 * chunked staging, the pool's reuse, and the bf16 option (a second instance).
 * Output: one line per case "op <name> relerr=<e> (cold <e>) tol=<t> cpu_ms=<t> cuda_ms=<t> <PASS|FAIL>"; exit 0
 * when every case is within its tolerance (16-bit paths, GEMM and conv: 1e-2, --tol X; f32 ops: 1e-5), 1 when
 * one is not, 3 when no CUDA backend loads (the reason is printed). --self-test: a second CPU provider, in
 * staged mode (own blocks for alloc and constants, host operands counted), stands in for CUDA. --emu: the
 * CUDA emulation build (docs/cuda_emulation.md; make test-cuda-emu) at smaller shapes of the same kinds
 * (--full: the SD 1.5 shapes), plus injected failures (cuBLASLt finds no algorithm: the cuBLAS fallback; an
 * allocation fails; last, a kernel faults) and zero emulator violations. */
#include "de_backend.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static de_backend *cpu, *gpu;
static double tol = 1e-2;        /* 16-bit paths (GEMM, conv: fp16/bf16 operands, f32 accumulation); --tol */
static double tol32 = 1e-5;      /* f32 ops (norms, softmax, attention, elementwise, copies) */
static double cur_tol = 1e-2;    /* the tolerance of the case being run */
static int full = 1;             /* SD 1.5 shapes; --emu without --full: small shapes (the emulator is slow) */
static const char *label_prefix = "";
#define SZ(big, small) (full ? (big) : (small))
static int failures = 0, cases = 0;
static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

static float frand(void) { /* uniform [-1, 1) */
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.f - 1.f;
}

static float *rnd(size_t n, float scale) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}

static float *dup(const float *x, size_t n) {
    float *p = malloc(n * sizeof(float));
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* a constant on the checked backend (its handle), or the host pointer itself when it keeps none */
static const void *cst(const float *host, size_t n, de_const_kind kind) {
    void *h = de_backend_constant_upload(gpu, host, n * sizeof(float), kind);
    if (!h) { printf("op_check: constant_upload of %zu floats failed: %s\n", n, de_backend_last_error(gpu)); exit(1); }
    return h;
}

static void cst_free(const void *h) { de_backend_constant_release(gpu, (void *)h); }

static int64_t host_operands(void) {
    de_backend_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    de_backend_stats_get(gpu, &s);
    return s.host_operands;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double relerr(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        if (isnan(a[i])) return INFINITY;
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* cold: the relative error of the first (cold) call's output, < 0 when not measured; the case passes when
 * both calls are within the tolerance */
static void report_cold(const char *name, const float *got, const float *ref, size_t n, double cpu_s, double gpu_s, de_status st,
                        double cold) {
    cases++;
    if (st != DE_OK) {
        failures++;
        printf("op %s%-28s status=%d error=\"%s\" FAIL\n", label_prefix, name, (int)st, de_backend_last_error(gpu));
        return;
    }
    double e = relerr(got, ref, n);
    int ok = e <= cur_tol && cold <= cur_tol;
    if (!ok) failures++;
    char c[40] = "";
    if (cold >= 0) snprintf(c, sizeof c, " (cold %.2e)", cold);
    printf("op %s%-28s relerr=%.2e%s tol=%.0e cpu_ms=%.2f cuda_ms=%.2f %s\n", label_prefix, name, e, c, cur_tol, cpu_s * 1e3,
           gpu_s * 1e3, ok ? "PASS" : "FAIL");
    fflush(stdout);
}

static void report(const char *name, const float *got, const float *ref, size_t n, double cpu_s, double gpu_s, de_status st) {
    report_cold(name, got, ref, n, cpu_s, gpu_s, st, -1);
}

/* a pass/fail line for a property (no tensor) */
static void verdict(const char *name, int ok, const char *detail) {
    cases++;
    if (!ok) failures++;
    printf("op %s%-28s %s %s\n", label_prefix, name, detail, ok ? "PASS" : "FAIL");
    fflush(stdout);
}

/* run fn on CPU into ref and on CUDA into got (same descriptor with y swapped); time both (CUDA: second run).
 * RUN2: the CUDA run gets its own descriptor GOP (the same op with constants' handles for the weights). */
#define RUN(fnname, OP, YFIELD, REF, GOT, N, LABEL) RUN2(fnname, OP, OP, YFIELD, REF, GOT, N, LABEL)
#define RUN2(fnname, OP, GOP, YFIELD, REF, GOT, N, LABEL)                                          \
    do {                                                                                           \
        double t0 = now();                                                                         \
        (OP).YFIELD = (REF);                                                                       \
        de_status s0 = fnname(cpu, &(OP));                                                         \
        double t1 = now();                                                                         \
        if (s0 != DE_OK) { printf("op %s: CPU failed: %s\n", LABEL, de_backend_last_error(cpu)); exit(1); } \
        (GOP).YFIELD = (GOT);                                                                      \
        float *save_ = dup((GOT), (N)); /* an accumulating op (beta != 0) must start twice from the same y */ \
        de_status s1 = fnname(gpu, &(GOP));                                                        \
        double cold_ = s1 == DE_OK ? relerr((GOT), (REF), (N)) : 0; /* the first call's output */  \
        memcpy((GOT), save_, (N) * sizeof(float));                                                 \
        free(save_);                                                                               \
        double t2 = now();                                                                         \
        if (s1 == DE_OK) s1 = fnname(gpu, &(GOP));                                                 \
        double t3 = now();                                                                         \
        report_cold(LABEL, (GOT), (REF), (N), t1 - t0, s1 == DE_OK ? t3 - t2 : 0, s1, cold_);      \
        (void)t2;                                                                                  \
    } while (0)

/* weight_like: B is a [n, k] weight shared by the batch (stride 0), checked as a host pointer and as a
 * constant; a_weight: A is the shared weight instead (Transformer2DModel proj_out: stride_a 0) */
static void check_gemm(const char *label, int batch, int m, int n, int k, int ta, int tb, float beta, int bias, int weight_like) {
    cur_tol = tol;
    de_gemm_op op;
    memset(&op, 0, sizeof op);
    op.dtype = DE_F32; op.batch = batch; op.m = m; op.n = n; op.k = k; op.trans_a = ta; op.trans_b = tb;
    op.lda = ta ? m : k; op.ldb = tb ? k : n; op.ldc = n;
    op.stride_a = (int64_t)m * k; op.stride_b = weight_like ? 0 : (int64_t)k * n; op.stride_c = (int64_t)m * n;
    size_t na = (size_t)batch * m * k, nb = weight_like ? (size_t)k * n : (size_t)batch * k * n, nc = (size_t)batch * m * n;
    float *a = rnd(na, 1.f), *b = rnd(nb, 0.1f), *c0 = rnd(nc, 1.f), *bb = bias ? rnd(n, 1.f) : NULL;
    float *ref = dup(c0, nc), *got = dup(c0, nc);
    op.a = a; op.b = b; op.alpha = 1.f; op.beta = beta; op.bias = bb;
    RUN(de_gemm, op, c, ref, got, nc, label);
    if (weight_like) { /* the weight and bias as constants (handles) */
        de_gemm_op g = op;
        g.b = cst(b, nb, DE_CONST_WEIGHT);
        g.bias = bb ? (const float *)cst(bb, n, DE_CONST_PARAM) : NULL;
        memcpy(ref, c0, nc * 4); memcpy(got, c0, nc * 4);
        char l2[96];
        snprintf(l2, sizeof l2, "%s.const", label);
        RUN2(de_gemm, op, g, c, ref, got, nc, l2);
        cst_free(g.b);
        if (g.bias) cst_free(g.bias);
    }
    free(a); free(b); free(c0); free(bb); free(ref); free(got);
}

/* Transformer2DModel proj_out at batch 2: y[b] (+)= W[c, inner] @ h[b]^T with W shared (stride_a 0),
 * W as a constant; and proj_in: tokens[b] = x[b]^T @ W^T (stride_b 0). */
static void check_gemm_shared_weight(void) {
    cur_tol = tol;
    const int batch = 2, c = 320, inner = 320, hw = SZ(1024, 256);
    float *w = rnd((size_t)c * inner, 0.05f), *h = rnd((size_t)batch * hw * inner, 1.f), *y0 = rnd((size_t)batch * c * hw, 1.f);
    size_t ny = (size_t)batch * c * hw;
    float *ref = dup(y0, ny), *got = dup(y0, ny);
    de_gemm_op op;
    memset(&op, 0, sizeof op);
    op.dtype = DE_F32; op.batch = batch; op.m = c; op.n = hw; op.k = inner; op.trans_b = true;
    op.a = w; op.lda = inner; op.stride_a = 0;
    op.b = h; op.ldb = inner; op.stride_b = (int64_t)hw * inner;
    op.ldc = hw; op.stride_c = (int64_t)c * hw; op.alpha = 1; op.beta = 1;
    de_gemm_op g = op;
    g.a = cst(w, (size_t)c * inner, DE_CONST_WEIGHT);
    RUN2(de_gemm, op, g, c, ref, got, ny, "gemm.proj_out.sharedA.const");
    cst_free(g.a);
    free(w); free(h); free(y0); free(ref); free(got);
}

static void check_conv(const char *label, int n, int cin, int h, int w, int cout, int k, int stride, int pt, int pl, int pb, int pr,
                       int residual) {
    cur_tol = tol;
    de_conv2d_op op;
    memset(&op, 0, sizeof op);
    op.dtype = DE_F32; op.n = n; op.c_in = cin; op.h = h; op.w = w; op.c_out = cout; op.kh = k; op.kw = k;
    op.stride_h = stride; op.stride_w = stride; op.pad_t = pt; op.pad_l = pl; op.pad_b = pb; op.pad_r = pr;
    int oh = (h + pt + pb - k) / stride + 1, ow = (w + pl + pr - k) / stride + 1;
    size_t ny = (size_t)n * cout * oh * ow;
    float *x = rnd((size_t)n * cin * h * w, 1.f), *wt = rnd((size_t)cout * cin * k * k, 1.f / sqrtf((float)cin * k * k));
    float *bias = rnd(cout, 1.f), *res = residual ? rnd(ny, 1.f) : NULL;
    float *ref = malloc(ny * 4), *got = malloc(ny * 4);
    op.x = x; op.weight = wt; op.bias = bias; op.residual = res;
    RUN(de_conv2d, op, y, ref, got, ny, label);
    de_conv2d_op g = op; /* the weight and bias as constants */
    g.weight = cst(wt, (size_t)cout * cin * k * k, DE_CONST_WEIGHT);
    g.bias = (const float *)cst(bias, cout, DE_CONST_PARAM);
    char l2[96];
    snprintf(l2, sizeof l2, "%s.const", label);
    RUN2(de_conv2d, op, g, y, ref, got, ny, l2);
    cst_free(g.weight); cst_free(g.bias);
    free(x); free(wt); free(bias); free(res); free(ref); free(got);
}

static void check_attention(const char *label, int b, int h, int lq, int lk, int d) {
    cur_tol = tol32;
    de_attention_op op;
    memset(&op, 0, sizeof op);
    int inner = h * d;
    op.dtype = DE_F32; op.batch = b; op.heads = h; op.q_len = lq; op.kv_len = lk; op.head_dim = d;
    op.scale = 1.f / sqrtf((float)d);
    float *q = rnd((size_t)b * lq * inner, 2.f), *k = rnd((size_t)b * lk * inner, 2.f), *v = rnd((size_t)b * lk * inner, 1.f);
    size_t no = (size_t)b * lq * inner;
    float *ref = malloc(no * 4), *got = malloc(no * 4);
    op.q = q; op.q_sb = (int64_t)lq * inner; op.q_sh = d; op.q_st = inner;
    op.k = k; op.k_sb = (int64_t)lk * inner; op.k_sh = d; op.k_st = inner;
    op.v = v; op.v_sb = (int64_t)lk * inner; op.v_sh = d; op.v_st = inner;
    op.o_sb = (int64_t)lq * inner; op.o_sh = d; op.o_st = inner;
    RUN(de_attention, op, o, ref, got, no, label);
    free(q); free(k); free(v); free(ref); free(got);
}

/* The strided copy op on host pointers: the UNet upsampler's 2x2 interleave. */
static void check_copy(void) {
    cur_tol = tol32;
    int n = 2, c = 64, h = 32, w = 32, pw = w + 1, plane = (h + 1) * pw;
    size_t nin = (size_t)n * 4 * c * plane, nout = (size_t)n * c * 4 * h * w;
    float *x = rnd(nin, 1.f), *ref = calloc(nout, 4), *got = calloc(nout, 4);
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 2; q++) {
            de_copy_op op = {DE_F32, {n, c, h, w}, x + (p * 2 + q) * c * plane + p * pw + q,
                             {4LL * c * plane, plane, pw, 1}, NULL, {(int64_t)c * 4 * h * w, 4LL * h * w, 4LL * w, 2}};
            op.y = ref + p * 2 * w + q;
            if (de_copy(cpu, &op) != DE_OK) { printf("op copy: CPU failed: %s\n", de_backend_last_error(cpu)); exit(1); }
            op.y = got + p * 2 * w + q;
            de_status s = de_copy(gpu, &op);
            if (s != DE_OK) { report("copy.interleave", got, ref, nout, 0, 0, s); free(x); free(ref); free(got); return; }
        }
    report("copy.interleave", got, ref, nout, 0, 0, DE_OK);
    free(x); free(ref); free(got);
}

/* lincomb, 1...4 terms on host pointers, and in place (y = x[1]) */
static void check_lincomb(void) {
    cur_tol = tol32;
    const size_t cnt = (size_t)2 * 4 * 64 * 64;
    float *x[4], *ref = malloc(cnt * 4), *got = malloc(cnt * 4);
    for (int j = 0; j < 4; j++) x[j] = rnd(cnt, 2.f);
    for (int terms = 1; terms <= 4; terms++) {
        de_lincomb_op op;
        memset(&op, 0, sizeof op);
        op.dtype = DE_F32; op.n = (int64_t)cnt; op.terms = terms;
        for (int j = 0; j < terms; j++) { op.c[j] = 0.5f - 0.3f * j; op.x[j] = x[j]; }
        char l[48];
        snprintf(l, sizeof l, "lincomb.%d", terms);
        RUN(de_lincomb, op, y, ref, got, cnt, l);
    }
    { /* in place: y = x[1] on both backends (each on its own copy) */
        float *xr = dup(x[1], cnt), *xg = dup(x[1], cnt);
        de_lincomb_op a = {DE_F32, (int64_t)cnt, 3, {0.9f, -0.2f, 1.5f, 0.f}, {x[0], xr, x[2], NULL}, xr};
        de_lincomb_op b = {DE_F32, (int64_t)cnt, 3, {0.9f, -0.2f, 1.5f, 0.f}, {x[0], xg, x[2], NULL}, xg};
        de_status s0 = de_lincomb(cpu, &a), s1 = de_lincomb(gpu, &b);
        if (s0 != DE_OK) { printf("op lincomb.inplace: CPU failed: %s\n", de_backend_last_error(cpu)); exit(1); }
        report("lincomb.inplace", xg, xr, cnt, 0, 0, s1);
        free(xr); free(xg);
    }
    for (int j = 0; j < 4; j++) free(x[j]);
    free(ref); free(got);
}

/* Device-resident activations, as the Swift layer drives the provider: inputs uploaded once into
 * memory from the alloc slot, a chain of ops on device pointers only with the weights as constants (one
 * upload each, before the chain), one download at the end, against the same chain on the CPU provider.
 * The chain must meet no host operand (de_backend_stats): nothing is copied between host and device. */
static void check_resident_chain(void) {
    cur_tol = tol;
    const int n = 2, c = 320, h = SZ(32, 16), w = SZ(32, 16), hw = h * w, heads = 8, d = c / heads;
    const size_t cnt = (size_t)n * c * hw;
    float *x = rnd(cnt, 1.f), *wt = rnd((size_t)c * c * 9, 1.f / sqrtf(c * 9.f)), *bias = rnd(c, 1.f);
    float *g = rnd(c, 1.f), *bt = rnd(c, 1.f), *lw = rnd((size_t)c * c, 1.f / sqrtf((float)c)), *lb = rnd(c, 1.f);
    de_backend *bes[2] = {cpu, gpu};
    float *out[2] = {malloc(cnt * 2 * 4), malloc(cnt * 2 * 4)};
    de_status st = DE_OK;
    double t[2] = {0, 0};
    int64_t host_ops = -1;
    for (int k = 0; k < 2 && st == DE_OK; k++) {
        de_backend *be = bes[k];
        /* constants on this backend (the CPU reference: the host pointers themselves) */
        const float *cwt = de_backend_constant_upload(be, wt, (size_t)c * c * 9 * 4, DE_CONST_WEIGHT);
        const float *cbias = de_backend_constant_upload(be, bias, (size_t)c * 4, DE_CONST_PARAM);
        const float *cg = de_backend_constant_upload(be, g, (size_t)c * 4, DE_CONST_PARAM);
        const float *cbt = de_backend_constant_upload(be, bt, (size_t)c * 4, DE_CONST_PARAM);
        const float *clw = de_backend_constant_upload(be, lw, (size_t)c * c * 4, DE_CONST_WEIGHT);
        const float *clb = de_backend_constant_upload(be, lb, (size_t)c * 4, DE_CONST_PARAM);
        if (!cwt || !cbias || !cg || !cbt || !clw || !clb) { printf("op resident.chain: constant_upload failed on %s\n", de_backend_name(be)); st = DE_ERR_OOM; }
        float *dx = be->iface.alloc(be, cnt * 4), *y1 = be->iface.alloc(be, cnt * 4), *tok = be->iface.alloc(be, cnt * 4);
        float *lin = be->iface.alloc(be, cnt * 4), *att = be->iface.alloc(be, cnt * 4), *cat = be->iface.alloc(be, cnt * 2 * 4);
        if (!dx || !y1 || !tok || !lin || !att || !cat) { printf("op resident.chain: alloc failed on %s\n", de_backend_name(be)); st = DE_ERR_OOM; }
        if (st == DE_OK) st = be->iface.upload(be, dx, x, cnt * 4);
        const int64_t h0 = be == gpu ? host_operands() : 0;
        double t0 = now();
        for (int rep = 0; rep < 2 && st == DE_OK; rep++) { /* second pass: the cached, steady state */
            if (rep == 1) t0 = now();
            de_conv2d_op cv = {DE_F32, n, c, h, w, c, 3, 3, 1, 1, 1, 1, 1, 1, dx, cwt, cbias, dx, y1, DE_F32};   /* + residual x */
            st = de_conv2d(be, &cv);
            de_group_norm_op gn = {DE_F32, n, c, hw, 32, 1e-5f, cg, cbt, true, y1, y1};
            if (st == DE_OK) st = de_group_norm(be, &gn);
            de_transpose_op tr = {DE_F32, n, c, hw, y1, tok};                                        /* [n, hw, c] */
            if (st == DE_OK) st = de_transpose(be, &tr);
            de_gemm_op gm;
            memset(&gm, 0, sizeof gm);
            gm.dtype = DE_F32; gm.batch = 1; gm.m = n * hw; gm.n = c; gm.k = c; gm.trans_b = true;
            gm.a = tok; gm.lda = c; gm.b = clw; gm.ldb = c; gm.c = lin; gm.ldc = c; gm.alpha = 1; gm.bias = clb;
            if (st == DE_OK) st = de_gemm(be, &gm);
            de_attention_op at;
            memset(&at, 0, sizeof at);
            at.dtype = DE_F32; at.batch = n; at.heads = heads; at.q_len = hw; at.kv_len = hw; at.head_dim = d;
            at.scale = 1.f / sqrtf((float)d);
            at.q = lin; at.k = tok; at.v = lin; at.o = att;
            at.q_sb = at.k_sb = at.v_sb = at.o_sb = (int64_t)hw * c;
            at.q_sh = at.k_sh = at.v_sh = at.o_sh = d;
            at.q_st = at.k_st = at.v_st = at.o_st = c;
            if (st == DE_OK) st = de_attention(be, &at);
            /* channel concatenation [n, hw*c] ++ [n, hw*c] -> [n, 2*hw*c] */
            de_copy_op c1 = {DE_F32, {1, 1, n, (int64_t)hw * c}, att, {0, 0, (int64_t)hw * c, 1}, cat, {0, 0, 2LL * hw * c, 1}};
            de_copy_op c2 = {DE_F32, {1, 1, n, (int64_t)hw * c}, dx, {0, 0, (int64_t)hw * c, 1}, cat + (size_t)hw * c, {0, 0, 2LL * hw * c, 1}};
            if (st == DE_OK) st = de_copy(be, &c1);
            if (st == DE_OK) st = de_copy(be, &c2);
            /* a scheduler-style update in place: cat = 0.9 cat - 0.1 (first half) ... on the device */
            de_lincomb_op lc = {DE_F32, (int64_t)cnt, 2, {0.9f, -0.1f, 0.f, 0.f}, {cat, att, NULL, NULL}, cat};
            if (st == DE_OK) st = de_lincomb(be, &lc);
        }
        if (be == gpu) host_ops = host_operands() - h0;
        if (st == DE_OK) st = be->iface.download(be, out[k], cat, cnt * 2 * 4);
        t[k] = now() - t0;
        if (st != DE_OK) printf("op resident.chain on %s: %s\n", de_backend_name(be), de_backend_last_error(be));
        be->iface.release(be, dx); be->iface.release(be, y1); be->iface.release(be, tok);
        be->iface.release(be, lin); be->iface.release(be, att); be->iface.release(be, cat);
        de_backend_constant_release(be, (void *)cwt); de_backend_constant_release(be, (void *)cbias);
        de_backend_constant_release(be, (void *)cg); de_backend_constant_release(be, (void *)cbt);
        de_backend_constant_release(be, (void *)clw); de_backend_constant_release(be, (void *)clb);
    }
    report("resident.chain(conv,gn,tr,gemm,attn,copy,lincomb)", out[1], out[0], cnt * 2, t[0], t[1], st);
    cases++;
    if (host_ops != 0) { failures++; printf("op resident.chain.no-host-operands host_operands=%lld FAIL\n", (long long)host_ops); }
    else printf("op resident.chain.no-host-operands host_operands=0 PASS\n");
    free(out[0]); free(out[1]);
    free(x); free(wt); free(bias); free(g); free(bt); free(lw); free(lb);
}


/* beta = 1 and a bias into device memory, C at an unaligned offset with ldc > n (a slice of a wider pool buffer):
 * the elements between C's rows must survive */
static void check_gemm_device_c(void) {
    cur_tol = tol;
    const int m = SZ(512, 128), n = 320, k = 320, ldc = 400, off = 17;
    const size_t ext = (size_t)off + (size_t)(m - 1) * ldc + n + 5;
    float *a = rnd((size_t)m * k, 1.f), *w = rnd((size_t)n * k, 0.1f), *bias = rnd(n, 1.f), *c0 = rnd(ext, 1.f);
    float *ref = dup(c0, ext), *got = malloc(ext * 4);
    de_gemm_op op;
    memset(&op, 0, sizeof op);
    op.dtype = DE_F32; op.batch = 1; op.m = m; op.n = n; op.k = k; op.trans_b = true;
    op.a = a; op.lda = k; op.b = w; op.ldb = k; op.ldc = ldc; op.alpha = 1; op.beta = 1; op.bias = bias;
    op.c = ref + off;
    if (de_gemm(cpu, &op) != DE_OK) { printf("op gemm.devC: CPU failed: %s\n", de_backend_last_error(cpu)); exit(1); }
    float *dc = gpu->iface.alloc(gpu, ext * 4);
    de_gemm_op g = op;
    g.b = cst(w, (size_t)n * k, DE_CONST_WEIGHT);
    g.bias = (const float *)cst(bias, n, DE_CONST_PARAM);
    g.c = dc + off;
    de_status st = dc ? gpu->iface.upload(gpu, dc, c0, ext * 4) : DE_ERR_OOM;
    if (st == DE_OK) st = de_gemm(gpu, &g);
    if (st == DE_OK) st = gpu->iface.download(gpu, got, dc, ext * 4);
    report("gemm.beta1+bias.devC@off17", got, ref, ext, 0, 0, st);
    gpu->iface.release(gpu, dc);
    cst_free(g.b); cst_free(g.bias);
    free(a); free(w); free(bias); free(c0); free(ref); free(got);
}

/* Transformer2DModel proj_out on device memory with the weight a constant at batch stride 0: read by handle,
 * no host operand (it used to be copied from the host every step) */
static void check_shared_weight_resident(void) {
    cur_tol = tol;
    const int batch = 2, c = 320, inner = 320, hw = SZ(1024, 128);
    float *w = rnd((size_t)c * inner, 0.05f), *h = rnd((size_t)batch * hw * inner, 1.f);
    size_t ny = (size_t)batch * c * hw;
    float *ref = malloc(ny * 4), *got = malloc(ny * 4);
    de_gemm_op op;
    memset(&op, 0, sizeof op);
    op.dtype = DE_F32; op.batch = batch; op.m = c; op.n = hw; op.k = inner; op.trans_b = true;
    op.a = w; op.lda = inner; op.stride_a = 0; op.b = h; op.ldb = inner; op.stride_b = (int64_t)hw * inner;
    op.ldc = hw; op.stride_c = (int64_t)c * hw; op.alpha = 1; op.beta = 0; op.c = ref;
    if (de_gemm(cpu, &op) != DE_OK) { printf("op gemm.sharedA.resident: CPU failed\n"); exit(1); }
    float *dh = gpu->iface.alloc(gpu, (size_t)batch * hw * inner * 4), *dy = gpu->iface.alloc(gpu, ny * 4);
    de_gemm_op g = op;
    g.a = cst(w, (size_t)c * inner, DE_CONST_WEIGHT); g.b = dh; g.c = dy;
    de_status st = dh && dy ? gpu->iface.upload(gpu, dh, h, (size_t)batch * hw * inner * 4) : DE_ERR_OOM;
    const int64_t h0 = host_operands();
    if (st == DE_OK) st = de_gemm(gpu, &g);
    const int64_t used = host_operands() - h0;
    if (st == DE_OK) st = gpu->iface.download(gpu, got, dy, ny * 4);
    report("gemm.sharedA.stride0.resident", got, ref, ny, 0, 0, st);
    char d[64];
    snprintf(d, sizeof d, "host_operands=%lld", (long long)used);
    verdict("gemm.sharedA.stride0.no-host-operands", used == 0, d);
    gpu->iface.release(gpu, dh); gpu->iface.release(gpu, dy);
    cst_free(g.a);
    free(w); free(h); free(ref); free(got);
}

/* what the CPU provider rejects, the checked one must reject too (INVALID, nothing written) */
static void check_rejections(void) {
    float a[64], b[64], c[64];
    for (int i = 0; i < 64; i++) { a[i] = b[i] = 1.f; c[i] = 0.f; }
    struct { const char *name; de_gemm_op op; } g[3];
    for (int i = 0; i < 3; i++) {
        memset(&g[i].op, 0, sizeof g[i].op);
        de_gemm_op *o = &g[i].op;
        o->dtype = DE_F32; o->batch = 2; o->m = 2; o->n = 2; o->k = 2; o->a = a; o->b = b; o->c = c;
        o->lda = 2; o->ldb = 2; o->ldc = 2; o->stride_a = 4; o->stride_b = 4; o->stride_c = 4; o->alpha = 1;
    }
    g[0].name = "reject.gemm.negative-stride"; g[0].op.stride_a = -4;
    g[1].name = "reject.gemm.ld-above-int32"; g[1].op.batch = 1; g[1].op.m = 1; g[1].op.ldb = (int64_t)1 << 32;
    g[2].name = "reject.gemm.overlapping-c"; g[2].op.stride_c = 2;
    for (int i = 0; i < 3; i++) {
        de_status sc = de_gemm(cpu, &g[i].op), sg = de_gemm(gpu, &g[i].op);
        char d[640];
        snprintf(d, sizeof d, "cpu=%d cuda=%d \"%s\"", (int)sc, (int)sg, de_backend_last_error(gpu));
        verdict(g[i].name, sc == DE_ERR_INVALID && sg == DE_ERR_INVALID, d);
    }
    de_attention_op at;
    memset(&at, 0, sizeof at);
    at.dtype = DE_F32; at.batch = 1; at.heads = 1; at.q_len = 2; at.kv_len = 2; at.head_dim = 4; at.scale = 0.5f;
    at.q = a; at.k = a; at.v = a; at.o = c;
    at.q_st = at.k_st = at.v_st = at.o_st = 4;
    at.k_st = -4;
    de_status sc = de_attention(cpu, &at), sg = de_attention(gpu, &at);
    char d[640];
    snprintf(d, sizeof d, "cpu=%d cuda=%d \"%s\"", (int)sc, (int)sg, de_backend_last_error(gpu));
    verdict("reject.attention.negative-stride", sc == DE_ERR_INVALID && sg == DE_ERR_INVALID, d);
}

/* softmax rows with masked (-inf) entries, 77 and 4096 wide */
static void check_softmax_masked(int64_t rows, int cols, const char *label) {
    cur_tol = tol32;
    size_t cnt = (size_t)rows * cols;
    float *x = rnd(cnt, 8.f), *ref = malloc(cnt * 4), *got = malloc(cnt * 4);
    for (size_t i = 0; i < cnt; i++) if (i % 3 == 1 || ((i / cols) % 7 == 0 && i % cols > 2)) x[i] = -INFINITY;
    de_softmax_op op = {DE_F32, rows, cols, 0.125f, x, NULL};
    RUN(de_softmax, op, y, ref, got, cnt, label);
    free(x); free(ref); free(got);
}

/* outputs near 1e5: above fp16's 65504 (the provider scales fp16 conv operands) */
static void check_conv_fp16_range(void) {
    cur_tol = tol;
    const int n = 1, c = 64, h = 16, w = 16;
    float *x = rnd((size_t)n * c * h * w, 4000.f), *wt = rnd((size_t)c * c * 9, 1.f), *ref = malloc((size_t)n * c * h * w * 4);
    float *got = malloc((size_t)n * c * h * w * 4);
    de_conv2d_op op = {DE_F32, n, c, h, w, c, 3, 3, 1, 1, 1, 1, 1, 1, x, wt, NULL, NULL, NULL};
    RUN(de_conv2d, op, y, ref, got, (size_t)n * c * h * w, "conv2d.fp16-range");
    float mx = 0;
    for (size_t i = 0; i < (size_t)n * c * h * w; i++) mx = fmaxf(mx, fabsf(ref[i]));
    char d[64];
    snprintf(d, sizeof d, "max|y|=%.3g", mx);
    verdict("conv2d.fp16-range.fixture", mx > 65504.f, d); /* the case means something only above fp16's range */
    free(x); free(wt); free(ref); free(got);
}

/* the pool hands a released block back to the next alloc of its size, and the provider never dereferences it */
static void check_pool_reuse(void) {
    void *p = gpu->iface.alloc(gpu, 1 << 20);
    gpu->iface.release(gpu, p);
    void *q = gpu->iface.alloc(gpu, 1 << 20);
    char d[64];
    snprintf(d, sizeof d, "%s", p && p == q ? "same block" : "another block");
    verdict("pool.reuse", p && p == q, d);
    gpu->iface.release(gpu, q);
}

typedef int (*inject_fn)(const char *, int);
typedef struct { long long kernels, h2d_bytes, d2h_bytes, violations, heuristic_fallbacks; } emu_counts;
typedef void (*counters_fn)(emu_counts *);
static inject_fn emu_inject;
static counters_fn emu_counters;

/* the emulator's test hooks (libdiffedit_cuda_emu.so, already loaded by the backend loader) */
static int emu_hooks(void) {
    const char *path = getenv("DIFFEDIT_BACKEND_PATH");
    void *h = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
    if (!h) return 0;
    emu_inject = (inject_fn)dlsym(h, "de_cuda_emu_inject");
    emu_counters = (counters_fn)dlsym(h, "de_cuda_emu_counters");
    return emu_inject && emu_counters;
}

/* injected failures (emulator only): cuBLASLt finds no algorithm (the cuBLAS fallback must give the same
 * result), an allocation fails (a status, the backend stays usable) */
static void check_forced_failures(void) {
    emu_counts c0, c1;
    emu_counters(&c0);
    emu_inject("heuristic", 1);
    check_gemm("gemm.cublas-fallback", 3, 96, 72, 40, 0, 1, 0.f, 1, 0);
    emu_counters(&c1);
    verdict("gemm.cublas-fallback.injected", c1.heuristic_fallbacks == c0.heuristic_fallbacks + 1, "heuristic refused once");
    /* a host weight makes the conv allocate a temporary: the injected failure must come back as OOM */
    const int n = 1, c = 8, h = 8, w = 8;
    float *x = rnd((size_t)n * c * h * w, 1.f), *wt = rnd((size_t)c * c * 9, 0.3f), *y = malloc((size_t)n * c * h * w * 4);
    de_conv2d_op op = {DE_F32, n, c, h, w, c, 3, 3, 1, 1, 1, 1, 1, 1, x, wt, NULL, NULL, y};
    emu_inject("malloc", 1);
    de_status st = de_conv2d(gpu, &op);
    char d[600];
    snprintf(d, sizeof d, "status=%d \"%s\"", (int)st, de_backend_last_error(gpu));
    verdict("forced-oom.status", st == DE_ERR_OOM, d);
    free(x); free(wt); free(y);
    check_gemm("gemm.after-oom", 1, 64, 64, 64, 0, 1, 0.f, 1, 1);
}

/* last: a kernel faults (sticky, as on a device): the op that waits for it and every later transfer return an
 * error naming it; nothing crashes */
static void check_kernel_fault(void) {
    const size_t cnt = 4096;
    float *x = rnd(cnt, 1.f), *y = malloc(cnt * 4);
    de_unary_op op = {DE_F32, DE_UNARY_SILU, (int64_t)cnt, 0, 0, x, y};
    emu_inject("kernel", 1);
    de_status st = de_unary(gpu, &op);
    char d[600];
    snprintf(d, sizeof d, "status=%d \"%s\"", (int)st, de_backend_last_error(gpu));
    verdict("forced-kernel-fault.status", st == DE_ERR_BACKEND && strstr(de_backend_last_error(gpu), "illegal"), d);
    float *dev = gpu->iface.alloc(gpu, 64);
    st = dev ? gpu->iface.download(gpu, y, dev, 64) : DE_ERR_BACKEND;
    snprintf(d, sizeof d, "status=%d \"%s\"", (int)st, de_backend_last_error(gpu));
    verdict("forced-kernel-fault.later-download", st != DE_OK, d);
    free(x); free(y);
}

/* the bf16 option: a second provider instance with cuda_dtype = DE_BF16 (8-bit mantissa: 2e-2) */
static void check_bf16(void) {
    de_backend_options opts;
    de_backend_options_from_env(&opts);
    opts.cuda_dtype = DE_BF16;
    char err[1024];
    de_backend *b16 = de_backend_load_opts("cuda", &opts, err, sizeof err);
    if (!b16) { verdict("bf16.load", 0, err); return; }
    de_backend *saved = gpu;
    const double saved_tol = tol;
    gpu = b16;
    tol = 2e-2;
    label_prefix = "bf16.";
    check_gemm("gemm.linear+bias", 1, SZ(2 * 1024, 256), 320, 320, 0, 1, 0.f, 1, 1);
    check_gemm("gemm.bmm.transB", 4, 64, 77, 64, 0, 1, 0.f, 0, 0);
    check_conv("conv2d.3x3.res", 1, 64, 16, 16, 64, 3, 1, 1, 1, 1, 1, 1);
    check_conv_fp16_range(); /* bf16 has f32's range */
    label_prefix = "";
    tol = saved_tol;
    gpu = saved;
    de_backend_free(b16);
}

int main(int argc, char **argv) {
    int emu = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc) tol = atof(argv[++i]);
        else if (strcmp(argv[i], "--emu") == 0) { emu = 1; full = 0; }
        else if (strcmp(argv[i], "--full") == 0) full = 2;
    }
    if (full == 2) full = 1;
    char err[1024];
    cpu = de_backend_load("cpu", 0, 0, err, sizeof err);
    /* --self-test: the CPU provider stands in for CUDA (checks this program on machines without a GPU) */
    int self_test = 0;
    for (int i = 1; i < argc; i++) if (strcmp(argv[i], "--self-test") == 0) self_test = 1;
    de_backend_options opts;
    de_backend_options_from_env(&opts);
    opts.cpu_staged = self_test; /* the stand-in keeps its own blocks and counts host operands, as CUDA does */
    gpu = de_backend_load_opts(self_test ? "cpu" : "cuda", &opts, err, sizeof err);
    if (!gpu) { printf("op_check: no CUDA backend: %s\n", err); return 3; }
    const uint32_t caps = de_backend_caps(gpu);
    printf("op_check: backend %s loaded (caps:%s%s%s); tolerance %.0e (relative L2 error vs the CPU provider, f32)\n",
           de_backend_name(gpu), caps & DE_CAP_RESIDENT ? " resident" : "", caps & DE_CAP_CONSTANTS ? " constants" : "",
           caps & DE_CAP_ASYNC ? " async" : "", tol);
    if (!(caps & DE_CAP_RESIDENT) || !(caps & DE_CAP_CONSTANTS))
        printf("op_check: note: the backend does not report resident + constants (options?)\n");

    /* shapes: SD 1.5 at 512x512 (64x64 latents); with --emu, smaller ones of the same kinds */
    check_gemm("gemm.linear+bias", 1, SZ(2 * 4096, 256), 320, 320, 0, 1, 0.f, 1, 1);
    check_gemm("gemm.linear.ff", 1, SZ(2 * 1024, 128), SZ(2560, 640), 640, 0, 1, 0.f, 1, 1);
    check_gemm("gemm.bmm.transB", SZ(16, 4), SZ(256, 64), 77, 64, 0, 1, 0.f, 0, 0); /* 77: odd batch strides */
    check_gemm("gemm.bmm.transA.beta", 4, 128, 96, 64, 1, 0, 0.5f, 0, 0);
    check_gemm("gemm.proj_in.sharedB", 2, SZ(1024, 256), 320, 320, 1, 1, 0.f, 1, 1); /* stride-0 B */
    check_gemm_shared_weight();                                                       /* stride-0 A */
    check_gemm_device_c();
    check_shared_weight_resident();
    check_rejections();
    check_conv("conv2d.3x3.320", 2, 320, SZ(64, 16), SZ(64, 16), 320, 3, 1, 1, 1, 1, 1, 0);
    check_conv("conv2d.3x3.res.640", 2, 640, SZ(32, 8), SZ(32, 8), 640, 3, 1, 1, 1, 1, 1, 1);
    check_conv("conv2d.conv_in.4ch", 2, 4, SZ(64, 32), SZ(64, 32), 320, 3, 1, 1, 1, 1, 1, 0);
    check_conv("conv2d.conv_out.4ch", 2, 320, SZ(64, 16), SZ(64, 16), 4, 3, 1, 1, 1, 1, 1, 0);
    check_conv("conv2d.1x1", 2, 320, SZ(32, 16), SZ(32, 16), 640, 1, 1, 0, 0, 0, 0, 0);
    check_conv("conv2d.down.s2", 2, 320, SZ(64, 16), SZ(64, 16), 320, 3, 2, 1, 1, 1, 1, 0);
    check_conv("conv2d.upsampler.phase2x2", 2, SZ(1280, 64), SZ(16, 8), SZ(16, 8), SZ(4 * 1280, 256), 2, 1, 1, 1, 1, 1, 0);
    check_conv("conv2d.vae.conv_in.3ch", 1, 3, SZ(512, 64), SZ(512, 64), 128, 3, 1, 1, 1, 1, 1, 0);
    check_conv("conv2d.vae.conv_out.3ch", 1, 128, SZ(512, 32), SZ(512, 32), 3, 3, 1, 1, 1, 1, 1, 0);
    check_conv("conv2d.vae.enc_out.8ch", 1, SZ(512, 128), SZ(64, 16), SZ(64, 16), 8, 3, 1, 1, 1, 1, 1, 0);
    check_conv("conv2d.vae.quant.8to8", 1, 8, SZ(64, 32), SZ(64, 32), 8, 1, 1, 0, 0, 0, 0, 0);
    check_conv("conv2d.vae.down.asym", 1, 128, SZ(64, 32), SZ(64, 32), 128, 3, 2, 0, 0, 1, 1, 0);
    check_conv_fp16_range();
    cur_tol = tol32;
    {
        int n = 2, c = 320, hw = SZ(64 * 64, 16 * 16);
        size_t cnt = (size_t)n * c * hw;
        float *x = rnd(cnt, 3.f), *g = rnd(c, 1.f), *b = rnd(c, 1.f), *ref = malloc(cnt * 4), *got = malloc(cnt * 4);
        de_group_norm_op op = {DE_F32, n, c, hw, 32, 1e-5f, g, b, true, x, NULL};
        RUN(de_group_norm, op, y, ref, got, cnt, "group_norm+silu");
        op.silu = false;
        RUN(de_group_norm, op, y, ref, got, cnt, "group_norm");
        free(x); free(g); free(b); free(ref); free(got);
    }
    { /* a VAE-decoder-sized tensor (67 MB: more than the 64 MB staging buffer, so the copies go in chunks) */
        int n = 1, c = 128, hw = 256 * 512;
        size_t cnt = (size_t)n * c * hw;
        float *x = rnd(cnt, 3.f), *ref = malloc(cnt * 4), *got = malloc(cnt * 4);
        de_group_norm_op op = {DE_F32, n, c, hw, 32, 1e-6f, NULL, NULL, true, x, NULL};
        RUN(de_group_norm, op, y, ref, got, cnt, "group_norm.vae.128x256x512");
        free(x); free(ref); free(got);
    }
    {
        int64_t rows = SZ(2 * 4096, 512); int cols = 320;
        size_t cnt = (size_t)rows * cols;
        float *x = rnd(cnt, 3.f), *g = rnd(cols, 1.f), *b = rnd(cols, 1.f), *ref = malloc(cnt * 4), *got = malloc(cnt * 4);
        de_layer_norm_op op = {DE_F32, rows, cols, 1e-5f, g, b, x, NULL};
        RUN(de_layer_norm, op, y, ref, got, cnt, "layer_norm");
        free(x); free(g); free(b); free(ref); free(got);
    }
    {
        int64_t rows = SZ(16 * 1024, 512); int cols = 77;
        size_t cnt = (size_t)rows * cols;
        float *x = rnd(cnt, 8.f), *ref = malloc(cnt * 4), *got = malloc(cnt * 4);
        de_softmax_op op = {DE_F32, rows, cols, 0.125f, x, NULL};
        RUN(de_softmax, op, y, ref, got, cnt, "softmax");
        free(x); free(ref); free(got);
    }
    check_softmax_masked(SZ(1024, 64), 77, "softmax.masked.77");
    check_softmax_masked(SZ(512, 16), 4096, "softmax.masked.4096");
    check_attention("attention.self.4096.d40", 2, SZ(8, 2), SZ(4096, 256), SZ(4096, 256), 40);
    check_attention("attention.cross.77.d80", 2, SZ(8, 2), SZ(1024, 128), 77, 80);
    check_attention("attention.self.64.d160", 2, SZ(8, 2), 64, 64, 160);
    check_attention("attention.sd2.d64", 2, SZ(5, 2), SZ(1024, 128), SZ(1024, 128), 64);
    check_attention("attention.vae.d512", 1, 1, SZ(4096, 256), SZ(4096, 256), 512); /* head_dim > 256: cuBLAS + softmax */
    cur_tol = tol32;
    {
        size_t cnt = (size_t)2 * 320 * SZ(64 * 64, 16 * 16);
        float *x = rnd(cnt, 4.f), *ref = malloc(cnt * 4), *got = malloc(cnt * 4);
        const char *names[] = {"unary.silu", "unary.gelu", "unary.gelu_tanh", "unary.quick_gelu", "unary.scale"};
        for (int kind = 0; kind <= 4; kind++) {
            de_unary_op op = {DE_F32, (de_unary_kind)kind, (int64_t)cnt, 0.5f, 0.25f, x, NULL};
            RUN(de_unary, op, y, ref, got, cnt, names[kind]);
        }
        free(x); free(ref); free(got);
    }
    {
        int64_t rows = SZ(2 * 4096, 512); int cols = 1280;
        size_t cnt = (size_t)rows * cols;
        float *x = rnd(cnt * 2, 3.f), *ref = malloc(cnt * 4), *got = malloc(cnt * 4);
        de_geglu_op op = {DE_F32, rows, cols, x, NULL};
        RUN(de_geglu, op, y, ref, got, cnt, "geglu");
        free(x); free(ref); free(got);
    }
    {
        int n = 2, c = 320, hw = SZ(64 * 64, 16 * 16);
        size_t cnt = (size_t)n * c * hw;
        float *a = rnd(cnt, 1.f), *b = rnd(cnt, 1.f), *v = rnd((size_t)n * c, 1.f), *ref = malloc(cnt * 4), *got = malloc(cnt * 4);
        de_binary_op op = {DE_F32, DE_BINARY_ADD, (int64_t)cnt, (int64_t)cnt, 1, a, b, NULL};
        RUN(de_binary, op, y, ref, got, cnt, "binary.add");
        op.kind = DE_BINARY_MUL;
        RUN(de_binary, op, y, ref, got, cnt, "binary.mul");
        de_binary_op pc = {DE_F32, DE_BINARY_SUB, (int64_t)cnt, (int64_t)n * c, hw, a, v, NULL};
        RUN(de_binary, pc, y, ref, got, cnt, "binary.sub.per_channel");
        free(a); free(b); free(v); free(ref); free(got);
    }
    {
        int64_t planes = 2 * SZ(640, 64); int h = SZ(32, 16), w = SZ(32, 16);
        size_t nin = (size_t)planes * h * w, nout = nin * 4;
        float *x = rnd(nin, 1.f), *ref = malloc(nout * 4), *got = malloc(nout * 4);
        de_upsample_op op = {DE_F32, planes, h, w, 2, x, NULL};
        RUN(de_upsample, op, y, ref, got, nout, "upsample.x2");
        free(x); free(ref); free(got);
    }
    {
        int64_t batch = 2; int rows = 320, cols = SZ(4096, 1000);
        size_t cnt = (size_t)batch * rows * cols;
        float *x = rnd(cnt, 1.f), *ref = malloc(cnt * 4), *got = malloc(cnt * 4);
        de_transpose_op op = {DE_F32, batch, rows, cols, x, NULL};
        RUN(de_transpose, op, y, ref, got, cnt, "transpose");
        free(x); free(ref); free(got);
    }
    check_copy();
    check_lincomb();
    check_resident_chain();
    check_pool_reuse();
    { /* an error must come back as a status, and the backend must stay usable afterwards */
        de_conv2d_op bad;
        memset(&bad, 0, sizeof bad);
        bad.dtype = DE_F32; bad.n = 1; bad.c_in = 1; bad.h = 1; bad.w = 1; bad.c_out = 1; bad.kh = 3; bad.kw = 3;
        bad.stride_h = bad.stride_w = 1;
        float x = 1, w = 1, y = 0;
        bad.x = &x; bad.weight = &w; bad.y = &y;
        de_status s = de_conv2d(gpu, &bad);
        cases++;
        if (s == DE_OK) { failures++; printf("op error-status FAIL (a 3x3 kernel on a 1x1 input returned OK)\n"); }
        else printf("op error-status: %d \"%s\" PASS\n", (int)s, de_backend_last_error(gpu));
        check_gemm("gemm.after-error", 1, 64, 64, 64, 0, 1, 0.f, 1, 1);
    }
    if (strcmp(de_backend_name(gpu), "cuda") == 0) check_bf16();
    const int hooks = emu && emu_hooks();
    if (emu && !hooks) verdict("emu.hooks", 0, "--emu given but de_cuda_emu_inject not found in DIFFEDIT_BACKEND_PATH");
    if (hooks) check_forced_failures();
    if (hooks) {
        emu_counts c;
        emu_counters(&c);
        char d[160];
        snprintf(d, sizeof d, "violations=%lld kernels=%lld h2d=%.1fMB d2h=%.1fMB", c.violations, c.kernels, c.h2d_bytes / 1e6, c.d2h_bytes / 1e6);
        verdict("emu.no-violations", c.violations == 0, d);
        check_kernel_fault(); /* last: the context is dead afterwards, as on a device */
    }
    size_t fr = 0, total = 0;
    if (gpu->iface.memory) gpu->iface.memory(gpu, &fr, &total);
    printf("op_check: %d cases, %d failed; device memory %.2f / %.2f GB free\n", cases, failures, fr / 1e9, total / 1e9);
    de_backend_free(gpu);
    de_backend_free(cpu);
    return failures ? 1 : 0;
}
