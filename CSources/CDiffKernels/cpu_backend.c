/* cpu_backend.c — the CPU provider: context, vtable, memory slots, error reporting,
 * and the fp16/bf16 -> f32 converters. Ops live in cpu_gemm_conv.c, cpu_norm.c,
 * cpu_attention.c and cpu_elementwise.c. */
#include "cpu_internal.h"

#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

de_status cpu_fail(cpu_ctx *c, de_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return st;
}

/* ---- op profiling (DIFFEDIT_KERNEL_PROFILE) ---- */

int de_prof_enabled = 0;
static pthread_mutex_t prof_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { const char *name; double seconds; long calls; } prof_tab[32];
static int prof_n = 0;

double de_prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void de_prof_add(const char *name, double seconds) {
    pthread_mutex_lock(&prof_mu);
    int i = 0;
    while (i < prof_n && strcmp(prof_tab[i].name, name) != 0) i++;
    if (i == prof_n && prof_n < 32) { prof_tab[i].name = name; prof_tab[i].seconds = 0; prof_tab[i].calls = 0; prof_n++; }
    if (i < 32) { prof_tab[i].seconds += seconds; prof_tab[i].calls++; }
    pthread_mutex_unlock(&prof_mu);
}

static void prof_report(void) {
    double total = 0;
    for (int i = 0; i < prof_n; i++) total += prof_tab[i].seconds;
    fprintf(stderr, "diffedit kernel profile (cpu backend): %.3f s in ops\n", total);
    for (int i = 0; i < prof_n; i++)
        fprintf(stderr, "  %-18s %9.3f s  %5.1f%%  %8ld calls\n", prof_tab[i].name, prof_tab[i].seconds,
                total > 0 ? 100.0 * prof_tab[i].seconds / total : 0.0, prof_tab[i].calls);
}

static void prof_init_once(void) {
    static int done = 0;
    if (done) return;
    done = 1;
    const char *e = getenv("DIFFEDIT_KERNEL_PROFILE");
    if (e && *e && strcmp(e, "0") != 0) {
        de_prof_enabled = 1;
        atexit(prof_report);
    }
}

static const char *cpu_name(de_backend *be) { (void)be; return "cpu"; }

static void cpu_free(de_backend *be) {
    if (!be) return;
    cpu_ctx *c = cpu_of(be);
    if (c) {
        de_pool_destroy(&c->pool);
        free(c->shared.ptr);
        free(c->shared2.ptr);
        if (c->per_thread)
            for (int i = 0; i < c->n_threads; i++) free(c->per_thread[i].ptr);
        free(c->per_thread);
        pthread_mutex_destroy(&c->op_lock);
        free(c);
    }
    free(be);
}

static void cpu_memory(de_backend *be, size_t *free_b, size_t *total_b) {
    (void)be;
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
    if (total_b) *total_b = pages > 0 && ps > 0 ? (size_t)pages * (size_t)ps : 0;
    if (free_b) *free_b = avail > 0 && ps > 0 ? (size_t)avail * (size_t)ps : 0;
}

static void *cpu_alloc(de_backend *be, size_t bytes) {
    (void)be;
    size_t b = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, b ? b : 64);
}

static void cpu_release(de_backend *be, void *ptr) { (void)be; free(ptr); }

static de_status cpu_copy(de_backend *be, void *dst, const void *src, size_t bytes) {
    if (!be || !be->context) return DE_ERR_INVALID;
    if (bytes == 0) return DE_OK;
    if (!dst || !src) return cpu_fail(cpu_of(be), DE_ERR_INVALID, "upload/download: %s pointer is NULL", dst ? "src" : "dst");
    memmove(dst, src, bytes);
    return DE_OK;
}

static const char *cpu_last_error(de_backend *be) {
    if (!be || !be->context) return "";
    return cpu_of(be)->err;
}

de_backend *de_backend_cpu_init(int n_threads) {
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (n_threads > DE_MAX_THREADS) n_threads = DE_MAX_THREADS;
    pthread_mutex_lock(&prof_mu);
    prof_init_once();
    pthread_mutex_unlock(&prof_mu);
    de_backend *be = calloc(1, sizeof *be);
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) { free(be); free(c); return NULL; }
    if (de_pool_init(&c->pool, n_threads) != 0) { free(be); free(c); return NULL; }
    c->n_threads = c->pool.n_threads;
    c->per_thread = calloc((size_t)c->n_threads, sizeof(de_scratch));
    if (!c->per_thread) { de_pool_destroy(&c->pool); free(be); free(c); return NULL; }
    pthread_mutex_init(&c->op_lock, NULL);
    /* OpenBLAS single-threaded: all parallelism comes from our pool (see cpu_sgemm). */
    openblas_set_num_threads(1);

    be->api_version = DE_BACKEND_API_VERSION;
    be->context = c;
    struct de_backend_i *i = &be->iface;
    i->get_name = cpu_name;
    i->free = cpu_free;
    i->memory = cpu_memory;
    i->alloc = cpu_alloc;
    i->release = cpu_release;
    i->upload = cpu_copy;
    i->download = cpu_copy;
    i->synchronize = NULL; /* synchronous */
    i->gemm = cpu_gemm;
    i->conv2d = cpu_conv2d;
    i->group_norm = cpu_group_norm;
    i->layer_norm = cpu_layer_norm;
    i->softmax = cpu_softmax;
    i->attention = cpu_attention;
    i->unary = cpu_unary;
    i->geglu = cpu_geglu;
    i->binary = cpu_binary;
    i->upsample = cpu_upsample;
    i->transpose = cpu_transpose;
    i->last_error = cpu_last_error;
    i->copy = cpu_copy_op;
    i->lincomb = cpu_lincomb;
    return be;
}

/* ---- fp16 / bf16 -> f32 (host memory; large inputs split over a few short-lived threads) ---- */

static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal: value = man * 2^-24 */
            float f = (float)man * 5.9604644775390625e-8f;
            memcpy(&bits, &f, 4);
            bits |= sign;
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void f16_range(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
    for (; i < n; i++) dst[i] = half_to_float(src[i]);
}

static void bf16_range(const uint16_t *src, float *dst, int64_t n) {
    uint32_t *d = (uint32_t *)dst;
    for (int64_t i = 0; i < n; i++) d[i] = (uint32_t)src[i] << 16;
}

typedef struct { const uint16_t *src; float *dst; int64_t n; int bf16; } conv_job;

static void *conv_thread(void *a) {
    conv_job *j = a;
    if (j->bf16) bf16_range(j->src, j->dst, j->n);
    else f16_range(j->src, j->dst, j->n);
    return NULL;
}

static void convert_threaded(const uint16_t *src, float *dst, int64_t n, int bf16) {
    if (!src || !dst || n <= 0) return;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = nc > 1 ? (int)(nc > 8 ? 8 : nc) : 1;
    if (n < (1 << 20) || nt == 1) {
        conv_job j = { src, dst, n, bf16 };
        conv_thread(&j);
        return;
    }
    conv_job jobs[8];
    pthread_t th[8];
    int started[8] = {0};
    int64_t per = (n + nt - 1) / nt;
    for (int t = 0; t < nt; t++) {
        int64_t b = (int64_t)t * per, e = b + per < n ? b + per : n;
        jobs[t] = (conv_job){ src + b, dst + b, e > b ? e - b : 0, bf16 };
    }
    for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], NULL, conv_thread, &jobs[t]) == 0;
    conv_thread(&jobs[0]);
    for (int t = 1; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else conv_thread(&jobs[t]);
    }
}

void de_f16_to_f32(const uint16_t *src, float *dst, int64_t n) { convert_threaded(src, dst, n, 0); }
void de_bf16_to_f32(const uint16_t *src, float *dst, int64_t n) { convert_threaded(src, dst, n, 1); }
