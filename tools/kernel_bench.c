/*
 * kernel_bench.c — times the CPU provider's hot kernels and prints GFLOP/s.
 *
 * Build by hand from the repository root (same flags as Package.swift uses for CDiffKernels;
 * SwiftPM compiles C with clang; with gcc add -fno-trapping-math or the exp loops stay scalar):
 *   clang -O3 -march=x86-64-v3 -fno-math-errno -ICSources/CDiffKernels/include \
 *      -I/usr/include/x86_64-linux-gnu/openblas-pthread \
 *      tools/kernel_bench.c CSources/CDiffKernels/cpu_*.c CSources/CDiffKernels/registry.c \
 *      -lopenblas -lpthread -lm -o /tmp/kernel_bench
 *   /tmp/kernel_bench [threads [groups]]   threads 0 or absent = all cores;
 *                                          groups: any of gemm,conv,attn,gn,vae,bf16 (default all but vae, bf16)
 *                                          KB_CASE=m,n,k,wa with bf16: that GEMM only (wa 1: the weight is A);
 *                                          KB_VARIANTS=bitmask of the columns; KB_REPS=repetitions
 * bf16: f32 compute (OpenBLAS sgemm) beside bf16 compute on AMX tiles and on vdpbf16ps (cpu_bf16.c) and i16 compute on
 * AVX512-VNNI (cpu_i16.c), f16
 * weights (auto: also bf16 weights), SD 1.5 linear and im2col shapes, best of KB_REPS (5), the variants taking
 * turns (the machine may be busy).
 * "cpu-est" = work / (process CPU seconds / threads): on a shared, loaded machine it estimates the
 * unloaded rate better than wall time. Knobs (environment): DIFFEDIT_WINOGRAD=2|4 forces
 * F(2x2,3x3) or F(4x4,3x3), DIFFEDIT_NO_WINOGRAD=1 uses im2col + sgemm for every conv,
 * DIFFEDIT_KERNEL_PROFILE=1 prints time per op kind at exit (also works for `diffedit bench`),
 * DIFFEDIT_COMPUTE=f32|bf16|auto: the GEMMs' precision (default auto: bf16 terms for reduced weights on AMX;
 * DIFFEDIT_BF16_KERNEL=avx512bf16: without AMX). The f32 groups' weights are f32, which auto leaves f32.
 *
 * Cases (SD1.5 UNet at 64x64 latents, batch 2):
 *   conv2d 3x3 320->320, 64x64, pad 1           15.1 GFLOP
 *   conv2d 3x3 640->640, 32x32, pad 1 (+bias/res)
 *   conv2d 1x1 320->320, 64x64
 *   attention 4096 x 4096 tokens, 8 heads x 40 dims ([B, L, H*D] strides)     21.5 GFLOP
 *   attention 4096 x 77 tokens (cross-attention), 8 heads x 40 dims
 *   group norm 32 groups + SiLU on [2, 320, 64x64] (GB/s)
 *   sgemm 2048^3 (the OpenBLAS ceiling, for comparison)
 */
#include "de_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process: on a shared, loaded machine, work / cpu-time * threads
 * estimates the unloaded rate better than wall time (printed as "cpu-est"). */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int g_threads = 1;
static double g_c0;
#define T_START() do { g_c0 = cpu_now(); } while (0)
#define CPU_EST(flops, reps) ((flops) * (reps) / ((cpu_now() - g_c0) / g_threads) * 1e-9)

static float *rnd(size_t n) {
    float *p = malloc(n * sizeof(float));
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) { s = s * 1664525u + 1013904223u; p[i] = (float)(s >> 8) / 16777216.0f - 0.5f; }
    return p;
}

static void bench_conv(de_backend *be, int n, int c, int hw, int co, int k, int fused, int reps) {
    int pad = k / 2;
    float *x = rnd((size_t)n * c * hw * hw), *w = rnd((size_t)co * c * k * k), *b = rnd(co);
    float *r = fused ? rnd((size_t)n * co * hw * hw) : NULL;
    float *y = malloc((size_t)n * co * hw * hw * sizeof(float));
    de_conv2d_op op = {0};
    op.dtype = DE_F32; op.n = n; op.c_in = c; op.h = hw; op.w = hw; op.c_out = co; op.kh = k; op.kw = k;
    op.stride_h = op.stride_w = 1; op.pad_t = op.pad_l = op.pad_b = op.pad_r = pad;
    op.x = x; op.weight = w; op.bias = b; op.residual = r; op.y = y;
    de_conv2d(be, &op); /* warm-up */
    double t0 = now(); T_START();
    for (int i = 0; i < reps; i++)
        if (de_conv2d(be, &op) != DE_OK) { printf("conv failed: %s\n", de_backend_last_error(be)); return; }
    double dt = (now() - t0) / reps;
    double fl = 2.0 * n * co * (double)hw * hw * c * k * k;
    printf("conv2d %dx%d %4d->%4d %3dx%-3d n=%d%s: %8.2f ms  %6.1f GFLOP/s  (cpu-est %6.1f)\n", k, k, c, co, hw, hw, n,
           fused ? " +res" : "     ", dt * 1e3, fl / dt * 1e-9, CPU_EST(fl, reps));
    free(x); free(w); free(b); free(r); free(y);
}

static void bench_attn(de_backend *be, int B, int H, int Lq, int Lk, int D, int reps) {
    int inner = H * D;
    float *q = rnd((size_t)B * Lq * inner), *k = rnd((size_t)B * Lk * inner), *v = rnd((size_t)B * Lk * inner);
    float *o = malloc((size_t)B * Lq * inner * sizeof(float));
    de_attention_op op = {0};
    op.dtype = DE_F32; op.batch = B; op.heads = H; op.q_len = Lq; op.kv_len = Lk; op.head_dim = D;
    op.scale = 0.158f;
    op.q = q; op.q_sb = (int64_t)Lq * inner; op.q_sh = D; op.q_st = inner;
    op.k = k; op.k_sb = (int64_t)Lk * inner; op.k_sh = D; op.k_st = inner;
    op.v = v; op.v_sb = (int64_t)Lk * inner; op.v_sh = D; op.v_st = inner;
    op.o = o; op.o_sb = (int64_t)Lq * inner; op.o_sh = D; op.o_st = inner;
    de_attention(be, &op);
    double t0 = now(); T_START();
    for (int i = 0; i < reps; i++)
        if (de_attention(be, &op) != DE_OK) { printf("attention failed: %s\n", de_backend_last_error(be)); return; }
    double dt = (now() - t0) / reps;
    double fl = 4.0 * B * H * (double)Lq * Lk * D;
    printf("attention B=%d H=%d q=%d kv=%d D=%d:    %8.2f ms  %6.1f GFLOP/s  (cpu-est %6.1f)\n", B, H, Lq, Lk, D, dt * 1e3,
           fl / dt * 1e-9, CPU_EST(fl, reps));
    free(q); free(k); free(v); free(o);
}

static void bench_gn(de_backend *be, int n, int c, int hw, int reps) {
    size_t cnt = (size_t)n * c * hw;
    float *x = rnd(cnt), *y = malloc(cnt * sizeof(float)), *g = rnd(c), *b = rnd(c);
    de_group_norm_op op = {0};
    op.dtype = DE_F32; op.n = n; op.c = c; op.hw = hw; op.groups = 32; op.eps = 1e-5f;
    op.gamma = g; op.beta = b; op.silu = true; op.x = x; op.y = y;
    de_group_norm(be, &op);
    double t0 = now(); T_START();
    for (int i = 0; i < reps; i++) de_group_norm(be, &op);
    double dt = (now() - t0) / reps;
    printf("group_norm+silu [%d, %d, %d]:            %8.2f ms  %6.1f GB/s\n", n, c, hw, dt * 1e3, 2.0 * cnt * 4 / dt * 1e-9);
    free(x); free(y); free(g); free(b);
}

/* y[m, n] = x[m, k] @ w[n, k]^T + b (torch Linear) */
static void bench_linear(de_backend *be, int m, int n, int k, int reps) {
    float *a = rnd((size_t)m * k), *w = rnd((size_t)n * k), *b = rnd(n), *c = malloc((size_t)m * n * sizeof(float));
    de_gemm_op op = {0};
    op.dtype = DE_F32; op.batch = 1; op.m = m; op.n = n; op.k = k; op.trans_b = true;
    op.a = a; op.lda = k; op.b = w; op.ldb = k; op.c = c; op.ldc = n; op.alpha = 1; op.beta = 0; op.bias = b;
    de_gemm(be, &op);
    double t0 = now(); T_START();
    for (int i = 0; i < reps; i++) de_gemm(be, &op);
    double dt = (now() - t0) / reps;
    double fl = 2.0 * m * n * (double)k;
    printf("linear [%d, %d] @ [%d, %d]^T + b:      %8.2f ms  %6.1f GFLOP/s  (cpu-est %6.1f)\n", m, k, n, k, dt * 1e3, fl / dt * 1e-9,
           CPU_EST(fl, reps));
    free(a); free(w); free(b); free(c);
}

static void bench_gemm(de_backend *be, int s, int reps) {
    float *a = rnd((size_t)s * s), *b = rnd((size_t)s * s), *c = malloc((size_t)s * s * sizeof(float));
    de_gemm_op op = {0};
    op.dtype = DE_F32; op.batch = 1; op.m = op.n = op.k = s;
    op.a = a; op.lda = s; op.b = b; op.ldb = s; op.c = c; op.ldc = s; op.alpha = 1; op.beta = 0;
    de_gemm(be, &op);
    double t0 = now(); T_START();
    for (int i = 0; i < reps; i++) de_gemm(be, &op);
    double dt = (now() - t0) / reps;
    double fl = 2.0 * s * s * (double)s;
    printf("sgemm %d^3:                               %8.2f ms  %6.1f GFLOP/s  (cpu-est %6.1f)\n", s, dt * 1e3, fl / dt * 1e-9,
           CPU_EST(fl, reps));
    free(a); free(b); free(c);
}

/* f32 compute vs bf16 compute (AMX tiles, vdpbf16ps) on one GEMM with an f16 weight (auto: a bf16 weight):
 * wa = 0: y[m, n] = x[m, k] @ W[n, k]^T + b (linear); wa = 1: y[m, n] = W[m, k] @ x[k, n] (conv im2col / 1x1) */
#define NV 6
static void bench_bf16_case(int threads, int m, int n, int k, int wa, int reps) {
    const size_t nw = (size_t)(wa ? m : n) * k, nx = wa ? (size_t)k * n : (size_t)m * k;
    float *w32 = rnd(nw), *x = rnd(nx), *b = rnd(n), *c = malloc((size_t)m * n * sizeof(float));
    uint16_t *w = malloc(nw * 2), *wb = malloc(nw * 2);
    de_f32_to_f16(w32, w, (int64_t)nw);
    de_f32_to_bf16(w32, wb, (int64_t)nw);   /* the "auto (bf16 w)" column: bf16 weights (two terms) */
    const char *names[NV] = {"f32 (sgemm)", "bf16 amx", "auto amx (bf16 w)", "bf16 avx512bf16", "auto amx (f16 w)", "i16 vnni"};
    const int compute[NV] = {DE_COMPUTE_F32, DE_COMPUTE_BF16, DE_COMPUTE_AUTO, DE_COMPUTE_BF16, DE_COMPUTE_AUTO, DE_COMPUTE_I16};
    const int kernel[NV] = {0, DE_BF16_KERNEL_AMX, DE_BF16_KERNEL_AMX, DE_BF16_KERNEL_AVX512, DE_BF16_KERNEL_AMX, 0};
    double ms[NV] = {0, 0, 0, 0, 0, 0};
    de_backend *bes[NV] = {NULL, NULL, NULL, NULL, NULL, NULL};
    de_gemm_op ops[NV];
    const int only = getenv("KB_VARIANTS") ? atoi(getenv("KB_VARIANTS")) : 63; /* bit v: run variant v */
    for (int v = 0; v < NV; v++) {
        if ((v > 0 && de_cpu_bf16_kernel() < kernel[v]) || !(only >> v & 1)) continue;
        if (compute[v] == DE_COMPUTE_I16 && !de_cpu_has_avx512vnni()) continue;
        de_backend_options o;
        de_backend_options_init(&o);
        o.threads = threads; o.cpu_compute = compute[v]; o.cpu_bf16_kernel = kernel[v];
        de_backend *be = de_backend_cpu_init_opts(&o);
        de_gemm_op op = {0};
        op.dtype = DE_F32; op.batch = 1; op.m = m; op.n = n; op.k = k; op.alpha = 1; op.c = c; op.ldc = n;
        const de_dtype wdt = v == 2 ? DE_BF16 : DE_F16;
        const uint16_t *wv = v == 2 ? wb : w;
        if (wa) { op.a = wv; op.lda = k; op.a_dtype = wdt; op.b = x; op.ldb = n; }
        else { op.a = x; op.lda = k; op.b = wv; op.ldb = k; op.trans_b = true; op.b_dtype = wdt; op.bias = b; }
        if (de_gemm(be, &op) != DE_OK) { printf("gemm failed: %s\n", de_backend_last_error(be)); de_backend_free(be); continue; }
        bes[v] = be; ops[v] = op; ms[v] = 1e30;
    }
    /* the variants take turns, so that a busy spell of the (shared) machine hits them alike */
    for (int i = 0; i < reps; i++)
        for (int v = 0; v < NV; v++) {
            if (!bes[v]) continue;
            double t0 = now();
            de_gemm(bes[v], &ops[v]);
            double dt = (now() - t0) * 1e3;
            if (dt < ms[v]) ms[v] = dt;
        }
    for (int v = 0; v < NV; v++) if (bes[v]) de_backend_free(bes[v]);
    const double fl = 2.0 * m * n * (double)k;
    printf("%s m=%5d n=%5d k=%5d threads %d:", wa ? "W@x  " : "x@W^T", m, n, k, threads);
    for (int v = 0; v < NV; v++)
        if (ms[v] > 0) printf("  %s %7.2f ms %5.0f GF/s", names[v], ms[v], fl / ms[v] * 1e-6);
    printf("\n");
    fflush(stdout);
    free(w32); free(x); free(b); free(c); free(w); free(wb);
}

/* SD 1.5 shapes at 64x64 latents (4096 tokens per image): attention projections, the feed-forward, the
 * im2col GEMM of a 3x3 conv at 640 channels on 32x32 (k = 640 * 9) */
static void bench_bf16(int threads, int reps) {
    printf("bf16 compute (cpu_bf16.c), f16 weights (auto: bf16 weights), best of %d; kernel on this CPU: %s\n", reps, de_bf16_kernel_name(de_cpu_bf16_kernel()));
    const char *one = getenv("KB_CASE"); /* "m,n,k,wa": that case only (for perf) */
    int cm, cn, ck, cw;
    if (one && sscanf(one, "%d,%d,%d,%d", &cm, &cn, &ck, &cw) == 4) { bench_bf16_case(threads, cm, cn, ck, cw, reps); return; }
    bench_bf16_case(threads, 4096, 320, 320, 0, reps);
    bench_bf16_case(threads, 4096, 1280, 320, 0, reps);
    bench_bf16_case(threads, 4096, 320, 1280, 0, reps);
    bench_bf16_case(threads, 1024, 640, 5760, 0, reps);
    bench_bf16_case(threads, 640, 1024, 5760, 1, reps);
    bench_bf16_case(threads, 320, 4096, 2880, 1, reps);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    const char *only = argc > 2 ? argv[2] : "";
    de_backend_options opts;
    de_backend_options_from_env(&opts);   /* DIFFEDIT_WINOGRAD, DIFFEDIT_COMPUTE, ... */
    opts.threads = threads;
    de_backend *be = de_backend_cpu_init_opts(&opts);
    g_threads = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (!be) { fprintf(stderr, "no backend\n"); return 1; }
    if (!*only || strstr(only, "gemm")) {
        bench_gemm(be, 2048, 3);
        bench_linear(be, 8192, 320, 320, 5);
        bench_linear(be, 8192, 2560, 320, 3);
        bench_linear(be, 2048, 640, 2560, 3);
    }
    if (!*only || strstr(only, "conv")) {
        bench_conv(be, 2, 320, 64, 320, 3, 0, 3);
        bench_conv(be, 2, 640, 32, 640, 3, 1, 3);
        bench_conv(be, 2, 1280, 16, 1280, 3, 0, 3);
        bench_conv(be, 2, 1280, 8, 1280, 3, 0, 3);
        bench_conv(be, 2, 320, 64, 320, 1, 0, 3);
    }
    if (!*only || strstr(only, "attn")) {
        bench_attn(be, 2, 8, 4096, 4096, 40, 2);
        bench_attn(be, 2, 8, 4096, 77, 40, 5);
        bench_attn(be, 2, 8, 1024, 1024, 80, 5);
    }
    if (!*only || strstr(only, "gn")) bench_gn(be, 2, 320, 4096, 10);
    if (strstr(only, "bf16")) bench_bf16(g_threads, getenv("KB_REPS") ? atoi(getenv("KB_REPS")) : 5);
    if (strstr(only, "vae")) {   /* SD VAE decoder at 512x512 output (not in the default set: slow) */
        bench_conv(be, 1, 512, 128, 512, 3, 0, 1);
        bench_conv(be, 1, 256, 256, 256, 3, 0, 1);
        bench_conv(be, 1, 128, 512, 128, 3, 0, 1);
        bench_attn(be, 1, 1, 4096, 4096, 512, 1);
        bench_gn(be, 1, 128, 512 * 512, 2);
    }
    de_backend_free(be);
    return 0;
}
