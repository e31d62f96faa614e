/* cpu_pool.c — persistent pthread pool with a dynamic-chunk parallel-for, and shared helpers
 * (scratch buffers, lane-wise reductions) for the CPU provider. */
#include "cpu_internal.h"

#include <stdlib.h>

static void run_chunks(de_pool *p, int tid) {
    for (;;) {
        int64_t b = atomic_fetch_add_explicit(&p->next, p->grain, memory_order_relaxed);
        if (b >= p->total) break;
        int64_t e = b + p->grain < p->total ? b + p->grain : p->total;
        p->fn(p->arg, b, e, tid);
    }
}

typedef struct { de_pool *p; int tid; } worker_arg;

static void *worker_main(void *va) {
    worker_arg wa = *(worker_arg *)va;
    free(va);
    de_pool *p = wa.p;
    uint64_t seen = 0; /* generation is 0 when the pool is created; a late-starting worker still joins job 1 */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->generation == seen && !p->quit) pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_chunks(p, wa.tid);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int de_pool_init(de_pool *p, int n_threads) {
    memset(p, 0, sizeof *p);
    if (n_threads < 1) n_threads = 1;
    p->n_threads = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    atomic_store(&p->next, 0);
    if (n_threads == 1) return 0;
    p->threads = calloc((size_t)n_threads - 1, sizeof(pthread_t));
    if (!p->threads) return -1;
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) break;
        wa->p = p; wa->tid = i;
        if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) { free(wa); break; }
        p->n_threads = i + 1;
    }
    return 0;
}

void de_pool_destroy(de_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads - 1; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
}

void de_pool_for(de_pool *p, int64_t total, int64_t grain, de_range_fn fn, void *arg) {
    if (total <= 0) return;
    if (grain <= 0) {
        grain = total / ((int64_t)p->n_threads * 4);
        if (grain < 1) grain = 1;
    }
    if (p->n_threads == 1 || total <= grain) {
        fn(arg, 0, total, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn; p->arg = arg; p->total = total; p->grain = grain;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->active = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

float *de_scratch_get(de_scratch *s, size_t n) {
    if (n <= s->cap && s->ptr) return s->ptr;
    size_t cap = n + n / 4 + 1024;
    size_t bytes = (cap * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (!p) return NULL;
    free(s->ptr);
    s->ptr = p;
    s->cap = cap;
    return p;
}

/* ---- reductions with explicit lanes (vectorize without -ffast-math) ---- */

#define LANES 16
#define BLOCK 1024

double de_sum_f64(const float *x, int64_t n) {
    double total = 0;
    int64_t i = 0;
    while (i < n) {
        int64_t end = i + BLOCK < n ? i + BLOCK : n;
        float acc[LANES] = {0};
        for (; i + LANES <= end; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += x[i + j];
        for (; i < end; i++) acc[0] += x[i];
        double s = 0;
        for (int j = 0; j < LANES; j++) s += acc[j];
        total += s;
    }
    return total;
}

double de_sumsq_dev_f64(const float *x, int64_t n, float mean) {
    double total = 0;
    int64_t i = 0;
    while (i < n) {
        int64_t end = i + BLOCK < n ? i + BLOCK : n;
        float acc[LANES] = {0};
        for (; i + LANES <= end; i += LANES)
            for (int j = 0; j < LANES; j++) { float d = x[i + j] - mean; acc[j] += d * d; }
        for (; i < end; i++) { float d = x[i] - mean; acc[0] += d * d; }
        double s = 0;
        for (int j = 0; j < LANES; j++) s += acc[j];
        total += s;
    }
    return total;
}

float de_max_f32(const float *x, int64_t n) {
    float m = x[0];
    int64_t i = 0;
    if (n >= LANES) {
        float acc[LANES];
        for (int j = 0; j < LANES; j++) acc[j] = x[j];
        for (i = LANES; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
        for (int j = 0; j < LANES; j++) m = acc[j] > m ? acc[j] : m;
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}
