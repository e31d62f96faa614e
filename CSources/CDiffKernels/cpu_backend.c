/* cpu_backend.c — the CPU provider: context, options, vtable, memory slots, constants, the staged test
 * mode, error reporting, and the fp16/bf16 -> f32 converters. Ops live in cpu_gemm_conv.c, cpu_norm.c,
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

/* ---- op profiling (options.kernel_profile, DIFFEDIT_KERNEL_PROFILE=1) ---- */

int de_prof_enabled = 0;
static pthread_mutex_t prof_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { const char *name; double seconds, flops; long calls; } prof_tab[32];
static int prof_n = 0;

double de_prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void de_prof_add(const char *name, double seconds, double flops) {
    pthread_mutex_lock(&prof_mu);
    int i = 0;
    while (i < prof_n && strcmp(prof_tab[i].name, name) != 0) i++;
    if (i == prof_n && prof_n < 32) {
        prof_tab[i].name = name; prof_tab[i].seconds = 0; prof_tab[i].flops = 0; prof_tab[i].calls = 0; prof_n++;
    }
    if (i < 32) { prof_tab[i].seconds += seconds; prof_tab[i].flops += flops; prof_tab[i].calls++; }
    pthread_mutex_unlock(&prof_mu);
}

static void prof_report(void) {
    double total = 0;
    for (int i = 0; i < prof_n; i++) total += prof_tab[i].seconds;
    fprintf(stderr, "diffedit kernel profile (cpu backend): %.3f s in ops\n", total);
    for (int i = 0; i < prof_n; i++) {
        fprintf(stderr, "  %-18s %9.3f s  %5.1f%%  %8ld calls", prof_tab[i].name, prof_tab[i].seconds,
                total > 0 ? 100.0 * prof_tab[i].seconds / total : 0.0, prof_tab[i].calls);
        /* GEMM, conv and attention count their multiply-adds as 2 flops (a convolution as its direct form, so
         * Winograd shows as a rate above the machine's peak) */
        if (prof_tab[i].flops > 0 && prof_tab[i].seconds > 0)
            fprintf(stderr, "  %8.1f GFLOP  %7.1f GFLOP/s", prof_tab[i].flops * 1e-9, prof_tab[i].flops * 1e-9 / prof_tab[i].seconds);
        fputc('\n', stderr);
    }
}

/* the first backend created with kernel_profile turns profiling on for the process (one table) */
static void prof_enable_once(void) {
    if (de_prof_enabled) return;
    de_prof_enabled = 1;
    atexit(prof_report);
}

static const char *cpu_name(de_backend *be) { (void)be; return "cpu"; }

static void cpu_free(de_backend *be) {
    if (!be) return;
    cpu_ctx *c = cpu_of(be);
    if (c) {
        de_pool_destroy(&c->pool);
        free(c->shared.ptr);
        free(c->shared2.ptr);
        free(c->wconv.ptr);
        free(c->bf_a.ptr);
        free(c->bf_b.ptr);
        free(c->bf_acc.ptr);
        free(c->i16_r.ptr);
        free(c->i16_p.ptr);
        if (c->per_thread)
            for (int i = 0; i < c->n_threads; i++) free(c->per_thread[i].ptr);
        free(c->per_thread);
        if (c->bf_local)
            for (int i = 0; i < 3 * c->n_threads; i++) free(c->bf_local[i].ptr);
        free(c->bf_local);
        pthread_mutex_destroy(&c->op_lock);
        for (size_t k = 0; k < c->n_blocks; k++)
            if (c->blocks[k].constant) free((void *)c->blocks[k].begin); /* constants the caller never released */
        free(c->blocks);
        pthread_mutex_destroy(&c->mem_lock);
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

/* ---- staged mode: the table of the provider's own blocks ---- */

/* index of the first block with begin > p (blocks sorted by begin, never overlapping) */
static size_t block_upper(const cpu_ctx *c, const char *p) {
    size_t lo = 0, hi = c->n_blocks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->blocks[mid].begin <= p) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static int block_add(cpu_ctx *c, const void *p, size_t bytes, int constant) {
    pthread_mutex_lock(&c->mem_lock);
    if (c->n_blocks == c->cap_blocks) {
        size_t cap = c->cap_blocks ? c->cap_blocks * 2 : 256;
        cpu_block *b = realloc(c->blocks, cap * sizeof *b);
        if (!b) { pthread_mutex_unlock(&c->mem_lock); return -1; }
        c->blocks = b;
        c->cap_blocks = cap;
    }
    size_t i = block_upper(c, p);
    memmove(c->blocks + i + 1, c->blocks + i, (c->n_blocks - i) * sizeof *c->blocks);
    c->blocks[i] = (cpu_block){ p, (const char *)p + (bytes ? bytes : 1), constant };
    c->n_blocks++;
    pthread_mutex_unlock(&c->mem_lock);
    return 0;
}

/* removes the block that begins at p (only a constant one when want_constant); 1 when there was one */
static int block_remove(cpu_ctx *c, const void *p, int want_constant) {
    pthread_mutex_lock(&c->mem_lock);
    size_t i = block_upper(c, p);
    int found = i > 0 && c->blocks[i - 1].begin == (const char *)p && (!want_constant || c->blocks[i - 1].constant);
    if (found) {
        memmove(c->blocks + i - 1, c->blocks + i, (c->n_blocks - i) * sizeof *c->blocks);
        c->n_blocks--;
    }
    pthread_mutex_unlock(&c->mem_lock);
    return found;
}

void cpu_note_operand(cpu_ctx *c, const void *p) {
    if (!p) return;
    pthread_mutex_lock(&c->mem_lock);
    size_t i = block_upper(c, p);
    int inside = i > 0 && (const char *)p < c->blocks[i - 1].end;
    pthread_mutex_unlock(&c->mem_lock);
    if (!inside) atomic_fetch_add(&c->host_operands, 1);
}

static void *cpu_alloc(de_backend *be, size_t bytes) {
    size_t b = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, b ? b : 64);
    cpu_ctx *c = cpu_of(be);
    if (p && c->staged && block_add(c, p, bytes, 0) != 0) { free(p); return NULL; }
    return p;
}

static void cpu_release(de_backend *be, void *ptr) {
    cpu_ctx *c = cpu_of(be);
    if (ptr && c->staged) block_remove(c, ptr, 0);
    free(ptr);
}

/* Plain mode: the host pointer itself (weights are memory-mapped; no copy, no second resident set).
 * Staged mode: a copy in the provider's own block, so that a constant the caller forgot to upload is
 * counted as a host operand, as it would be copied on a device provider. */
static void *cpu_constant_upload(de_backend *be, const void *host, size_t bytes, de_const_kind kind) {
    (void)kind;
    cpu_ctx *c = cpu_of(be);
    if (!host) { cpu_fail(c, DE_ERR_INVALID, "constant_upload: host is NULL"); return NULL; }
    if (!c->staged) return (void *)host;
    size_t b = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, b ? b : 64);
    if (!p) { cpu_fail(c, DE_ERR_OOM, "constant_upload: out of memory for %zu bytes", bytes); return NULL; }
    memcpy(p, host, bytes);
    if (block_add(c, p, bytes, 1) != 0) {
        free(p);
        cpu_fail(c, DE_ERR_OOM, "constant_upload: out of memory for the block table");
        return NULL;
    }
    atomic_fetch_add(&c->n_constants, 1);
    atomic_fetch_add(&c->constant_bytes, (int64_t)bytes);
    return p;
}

static void cpu_constant_release(de_backend *be, void *handle) {
    cpu_ctx *c = cpu_of(be);
    if (!handle || !c->staged) return;           /* plain mode: the handle is the caller's host memory */
    if (block_remove(c, handle, 1)) free(handle); /* anything else (not a constant of ours) is left alone */
}

static uint32_t cpu_caps(de_backend *be) {
    return DE_CAP_F32 | DE_CAP_WEIGHT_DTYPES | (cpu_of(be)->staged ? DE_CAP_RESIDENT | DE_CAP_CONSTANTS : 0u);
}

static size_t scratch_bytes(const cpu_ctx *c) {
    size_t b = (c->shared.ptr ? c->shared.cap : 0) + (c->shared2.ptr ? c->shared2.cap : 0) + (c->wconv.ptr ? c->wconv.cap : 0) +
               (c->bf_a.ptr ? c->bf_a.cap : 0) + (c->bf_b.ptr ? c->bf_b.cap : 0) + (c->bf_acc.ptr ? c->bf_acc.cap : 0) +
               (c->i16_r.ptr ? c->i16_r.cap : 0) + (c->i16_p.ptr ? c->i16_p.cap : 0);
    for (int i = 0; i < c->n_threads; i++) b += c->per_thread[i].ptr ? c->per_thread[i].cap : 0;
    for (int i = 0; c->bf_local && i < 3 * c->n_threads; i++) b += c->bf_local[i].ptr ? c->bf_local[i].cap : 0;
    return b * sizeof(float);
}

static void scratch_free(de_scratch *s) {
    free(s->ptr);
    s->ptr = NULL;
    s->cap = 0;
}

/* frees every scratch buffer between ops (the op lock waits for a running one) */
static void cpu_trim(de_backend *be) {
    cpu_ctx *c = cpu_of(be);
    pthread_mutex_lock(&c->op_lock);
    scratch_free(&c->shared);
    scratch_free(&c->shared2);
    scratch_free(&c->wconv);
    scratch_free(&c->bf_a);
    scratch_free(&c->bf_b);
    scratch_free(&c->bf_acc);
    scratch_free(&c->i16_r);
    scratch_free(&c->i16_p);
    for (int i = 0; i < c->n_threads; i++) scratch_free(&c->per_thread[i]);
    for (int i = 0; c->bf_local && i < 3 * c->n_threads; i++) scratch_free(&c->bf_local[i]);
    pthread_mutex_unlock(&c->op_lock);
}

static void cpu_stats(de_backend *be, de_backend_stats *out) {
    cpu_ctx *c = cpu_of(be);
    pthread_mutex_lock(&c->op_lock);
    const int64_t sb = (int64_t)scratch_bytes(c);
    pthread_mutex_unlock(&c->op_lock);
    de_backend_stats s = { sizeof s, atomic_load(&c->n_constants), atomic_load(&c->constant_bytes),
                           atomic_load(&c->host_operands), sb, atomic_load(&c->bf16_gemms) };
    size_t n = out->struct_size < sizeof s ? out->struct_size : sizeof s;
    memcpy((char *)out + sizeof(size_t), (char *)&s + sizeof(size_t), n - sizeof(size_t));
}

/* ---- staged mode: every op notes its operands, then runs the plain op ---- */

#define NOTE(p) cpu_note_operand(c, (p))
#define STAGED(name, fn, type, notes)                                   \
    static de_status name(de_backend *be, const type *op) {             \
        if (be && be->context && op) {                                  \
            cpu_ctx *c = cpu_of(be);                                    \
            notes;                                                      \
        }                                                               \
        return fn(be, op);                                              \
    }
STAGED(st_gemm, cpu_gemm, de_gemm_op, { NOTE(op->a); NOTE(op->b); NOTE(op->c); NOTE(op->bias); })
STAGED(st_conv2d, cpu_conv2d, de_conv2d_op, { NOTE(op->x); NOTE(op->weight); NOTE(op->bias); NOTE(op->residual); NOTE(op->y); })
STAGED(st_group_norm, cpu_group_norm, de_group_norm_op, { NOTE(op->x); NOTE(op->gamma); NOTE(op->beta); NOTE(op->y); })
STAGED(st_layer_norm, cpu_layer_norm, de_layer_norm_op, { NOTE(op->x); NOTE(op->gamma); NOTE(op->beta); NOTE(op->y); })
STAGED(st_softmax, cpu_softmax, de_softmax_op, { NOTE(op->x); NOTE(op->y); })
STAGED(st_attention, cpu_attention, de_attention_op, { NOTE(op->q); NOTE(op->k); NOTE(op->v); NOTE(op->o); })
STAGED(st_unary, cpu_unary, de_unary_op, { NOTE(op->x); NOTE(op->y); })
STAGED(st_geglu, cpu_geglu, de_geglu_op, { NOTE(op->x); NOTE(op->y); })
STAGED(st_binary, cpu_binary, de_binary_op, { NOTE(op->a); NOTE(op->b); NOTE(op->y); })
STAGED(st_upsample, cpu_upsample, de_upsample_op, { NOTE(op->x); NOTE(op->y); })
STAGED(st_transpose, cpu_transpose, de_transpose_op, { NOTE(op->x); NOTE(op->y); })
STAGED(st_copy, cpu_copy_op, de_copy_op, { NOTE(op->x); NOTE(op->y); })
STAGED(st_lincomb, cpu_lincomb, de_lincomb_op, {
    for (int t = 0; t < op->terms && t < 4; t++) NOTE(op->x[t]);
    NOTE(op->y);
})
#undef STAGED
#undef NOTE

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
    de_backend_options o;
    de_backend_options_init(&o);
    o.threads = n_threads;
    return de_backend_cpu_init_opts(&o);
}

de_backend *de_backend_cpu_init_opts(const de_backend_options *opts) {
    de_backend_options o;
    de_backend_options_init(&o);
    if (opts && opts->struct_size >= sizeof(size_t))
        memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size : sizeof o);
    int n_threads = o.threads;
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (n_threads > DE_MAX_THREADS) n_threads = DE_MAX_THREADS;
    if (o.kernel_profile) {
        pthread_mutex_lock(&prof_mu);
        prof_enable_once();
        pthread_mutex_unlock(&prof_mu);
    }
    de_backend *be = calloc(1, sizeof *be);
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) { free(be); free(c); return NULL; }
    if (de_pool_init(&c->pool, n_threads) != 0) { free(be); free(c); return NULL; }
    c->n_threads = c->pool.n_threads;
    c->per_thread = calloc((size_t)c->n_threads, sizeof(de_scratch));
    if (!c->per_thread) { de_pool_destroy(&c->pool); free(be); free(c); return NULL; }
    c->bf_local = calloc((size_t)c->n_threads * 3, sizeof(de_scratch)); /* NULL: Winograd stays on sgemm */
    pthread_mutex_init(&c->op_lock, NULL);
    pthread_mutex_init(&c->mem_lock, NULL);
    c->staged = o.cpu_staged;
    c->winograd = o.winograd;
    c->winograd_tiles = o.winograd_tiles > 0 ? o.winograd_tiles : 0;
    c->im2col_rows = o.im2col_rows > 0 ? o.im2col_rows : 0;
    c->winograd_channels = o.winograd_channels > 0 ? o.winograd_channels : 0;
    c->compute = o.cpu_compute == DE_COMPUTE_BF16 || o.cpu_compute == DE_COMPUTE_AUTO || o.cpu_compute == DE_COMPUTE_I16
                     ? o.cpu_compute : DE_COMPUTE_F32;
    c->i16_kernel = de_cpu_has_avx512vnni();
    c->bf16_kernel = de_cpu_bf16_kernel();
    if (o.cpu_bf16_kernel < 0) c->bf16_kernel = DE_BF16_KERNEL_NONE;
    else if (o.cpu_bf16_kernel > 0 && o.cpu_bf16_kernel < c->bf16_kernel) c->bf16_kernel = o.cpu_bf16_kernel;
    c->simd512 = o.cpu_simd != 256 && de_cpu_has_avx512();
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
    const int st = c->staged;
    i->gemm = st ? st_gemm : cpu_gemm;
    i->conv2d = st ? st_conv2d : cpu_conv2d;
    i->group_norm = st ? st_group_norm : cpu_group_norm;
    i->layer_norm = st ? st_layer_norm : cpu_layer_norm;
    i->softmax = st ? st_softmax : cpu_softmax;
    i->attention = st ? st_attention : cpu_attention;
    i->unary = st ? st_unary : cpu_unary;
    i->geglu = st ? st_geglu : cpu_geglu;
    i->binary = st ? st_binary : cpu_binary;
    i->upsample = st ? st_upsample : cpu_upsample;
    i->transpose = st ? st_transpose : cpu_transpose;
    i->last_error = cpu_last_error;
    i->copy = st ? st_copy : cpu_copy_op;
    i->lincomb = st ? st_lincomb : cpu_lincomb;
    i->caps = cpu_caps;
    i->constant_upload = cpu_constant_upload;
    i->constant_release = cpu_constant_release;
    i->stats = cpu_stats;
    i->trim = cpu_trim;
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
