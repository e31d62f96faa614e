/* cuda_pool.cu — the CUDA provider's memory: the device pool behind the alloc slot (activations that
 * stay on the device), the per-op arena, and host <-> device copies through pinned staging. */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

de_status cu_arena_begin(cuda_ctx *c, size_t bytes, const char *op) {
    c->arena_used = 0;
    if (bytes <= c->arena_cap) return DE_OK;
    /* grow: only while the first step meets shapes it has not seen (never in steady state) */
    CUDA_TRY(c, cudaStreamSynchronize(c->stream), op);
    if (c->arena) cudaFree(c->arena);
    c->arena = NULL;
    c->arena_cap = 0;
    size_t want = bytes + bytes / 4;
    if (cudaMalloc((void **)&c->arena, want) != cudaSuccess) {
        cudaGetLastError();
        if (cudaMalloc((void **)&c->arena, bytes) != cudaSuccess) {
            cudaGetLastError();
            c->arena = NULL;
            return cu_fail(c, DE_ERR_OOM, "%s: out of device memory for %zu bytes of activations", op, bytes);
        }
        want = bytes;
    }
    c->arena_cap = want;
    return DE_OK;
}

void *cu_arena_take(cuda_ctx *c, size_t bytes) {
    size_t b = CU_ALIGN(bytes);
    if (c->arena_used + b > c->arena_cap) return NULL; /* caller reserved too little: internal bug */
    void *p = c->arena + c->arena_used;
    c->arena_used += b;
    return p;
}

/* ---- pinned staging ---- */

de_status cu_pinned_reserve(cuda_ctx *c, size_t bytes, const char *op) {
    if (bytes <= c->pinned_cap) return DE_OK;
    CUDA_TRY(c, cudaStreamSynchronize(c->stream), op);
    if (c->pinned) cudaFreeHost(c->pinned);
    c->pinned = NULL;
    c->pinned_cap = 0;
    size_t want = bytes < ((size_t)64 << 20) ? ((size_t)64 << 20) : bytes;
    for (int i = 0; i < 2; i++)
        if (!c->stage_ev[i]) CUDA_TRY(c, cudaEventCreateWithFlags(&c->stage_ev[i], cudaEventDisableTiming), op);
    CUDA_TRY(c, cudaHostAlloc((void **)&c->pinned, want, cudaHostAllocDefault), op);
    c->pinned_cap = want;
    return DE_OK;
}

#define STAGE_CHUNK ((size_t)32 << 20)

/* a host copy inside an op: the op waits for the stream, and the copy counts as a host operand */
static void note_host(cuda_ctx *c) {
    c->host_io = 1;
    if (c->in_op) c->host_operands++;
}

de_status cu_copy_in(cuda_ctx *c, void *dst, const void *src, size_t bytes, const char *op) {
    if (bytes == 0 || dst == src) return DE_OK;
    if (cu_in_const_space(c, src)) {
        const float *s = cu_view(c, src, bytes); /* a constant: its f32 device copy (never the arena) */
        if (!s) return DE_ERR_BACKEND;           /* cu_const_f32 / the lookup said why */
        if ((const void *)s == dst) return DE_OK;
        CUDA_TRY(c, cudaMemcpyAsync(dst, s, bytes, cudaMemcpyDeviceToDevice, c->stream), op);
        return DE_OK;
    }
    if (cu_is_pool(c, src)) {
        CUDA_TRY(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream), op);
        return DE_OK;
    }
    note_host(c);
    ST_TRY(cu_pinned_reserve(c, 2 * STAGE_CHUNK, op));
    /* double-buffered: memcpy into one half while the other half's DMA runs; each half's event marks the
     * end of the last DMA that read it (the stream's other work is not waited for) */
    size_t done = 0;
    int half = c->stage_half; /* the half after the one the last copy filled */
    while (done < bytes) {
        size_t n = bytes - done < STAGE_CHUNK ? bytes - done : STAGE_CHUNK;
        char *buf = c->pinned + (size_t)half * STAGE_CHUNK;
        CUDA_TRY(c, cudaEventSynchronize(c->stage_ev[half]), op); /* the DMA that last read buf is done */
        memcpy(buf, (const char *)src + done, n);
        CUDA_TRY(c, cudaMemcpyAsync((char *)dst + done, buf, n, cudaMemcpyHostToDevice, c->stream), op);
        CUDA_TRY(c, cudaEventRecord(c->stage_ev[half], c->stream), op);
        done += n;
        half ^= 1;
    }
    c->stage_half = half;
    return DE_OK;
}

de_status cu_copy_out(cuda_ctx *c, void *dst, const void *src, size_t bytes, const char *op) {
    if (bytes == 0 || dst == src) return DE_OK;
    if (cu_in_const_space(c, dst)) return cu_fail(c, DE_ERR_INVALID, "%s: the output is a constant handle", op);
    if (cu_is_pool(c, dst)) {
        CUDA_TRY(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream), op);
        return DE_OK;
    }
    note_host(c);
    ST_TRY(cu_pinned_reserve(c, 2 * STAGE_CHUNK, op));
    size_t done = 0;
    while (done < bytes) {
        size_t n = bytes - done < STAGE_CHUNK ? bytes - done : STAGE_CHUNK;
        CUDA_TRY(c, cudaMemcpyAsync(c->pinned, (const char *)src + done, n, cudaMemcpyDeviceToHost, c->stream), op);
        CUDA_TRY(c, cudaStreamSynchronize(c->stream), op);
        memcpy((char *)dst + done, c->pinned, n);
        done += n;
    }
    return DE_OK;
}

void cu_staging_destroy(cuda_ctx *c) {
    if (c->arena) cudaFree(c->arena);
    if (c->pinned) cudaFreeHost(c->pinned);
    for (int i = 0; i < 2; i++) if (c->stage_ev[i]) cudaEventDestroy(c->stage_ev[i]);
    c->stage_ev[0] = c->stage_ev[1] = NULL;
    c->arena = NULL; c->pinned = NULL;
    c->arena_cap = c->arena_used = c->pinned_cap = 0;
}

/* ---- device pool ---- */

#define POOL_CHUNK ((size_t)256 << 20)

static size_t pool_round(size_t bytes) { return bytes <= 512 ? 512 : (bytes + 511) & ~(size_t)511; }

int cu_is_dev(const cuda_ctx *c, const void *p) { return cu_is_pool(c, p) || cu_in_const_space(c, p); }

float *cu_view(cuda_ctx *c, const void *p, size_t bytes) {
    if (cu_is_pool(c, p)) return (float *)p;
    if (cu_in_const_space(c, p)) {
        int64_t off = 0;
        cu_const *e = cu_const_find(c, p, &off);
        if (!e) { cu_fail(c, DE_ERR_INVALID, "operand %p is a released or unknown constant handle", p); return NULL; }
        if ((size_t)off + bytes > e->bytes) {
            cu_fail(c, DE_ERR_INVALID, "operand reads %zu bytes at offset %lld of a %zu-byte constant", bytes, (long long)off, e->bytes);
            return NULL;
        }
        float *d = cu_const_f32(c, e, "operand");
        return d ? (float *)((char *)d + off) : NULL;
    }
    return (float *)cu_arena_take(c, bytes);
}

int cu_is_pool(const cuda_ctx *c, const void *p) {
    const char *q = (const char *)p;
    for (int i = 0; i < c->pool.n_chunks; i++) {
        const cu_chunk *k = &c->pool.chunks[i];
        if (q >= k->base && q < k->base + k->size) return 1;
    }
    return 0;
}

static size_t live_slot(const cu_pool *pl, const void *p) {
    uint64_t h = (uint64_t)(uintptr_t)p;
    h ^= h >> 33; h *= 0xff51afd7ed558ccdull; h ^= h >> 33;
    return (size_t)h & (pl->live_cap - 1);
}

static int live_put(cu_pool *pl, void *p, size_t size) {
    if ((pl->live_n + 1) * 2 > pl->live_cap) {
        size_t cap = pl->live_cap ? pl->live_cap * 2 : 1024;
        void **keys = (void **)calloc(cap, sizeof(void *));
        size_t *sizes = (size_t *)calloc(cap, sizeof(size_t));
        if (!keys || !sizes) { free(keys); free(sizes); return -1; }
        cu_pool old = *pl;
        pl->live_key = keys; pl->live_size = sizes; pl->live_cap = cap; pl->live_n = 0;
        for (size_t i = 0; i < old.live_cap; i++)
            if (old.live_key[i]) live_put(pl, old.live_key[i], old.live_size[i]);
        free(old.live_key); free(old.live_size);
    }
    size_t i = live_slot(pl, p);
    while (pl->live_key[i]) i = (i + 1) & (pl->live_cap - 1);
    pl->live_key[i] = p; pl->live_size[i] = size; pl->live_n++;
    return 0;
}

/* removes p (linear probing with backward-shift deletion); returns its size, 0 when unknown */
static size_t live_take(cu_pool *pl, const void *p) {
    if (!pl->live_cap) return 0;
    size_t mask = pl->live_cap - 1, i = live_slot(pl, p);
    while (pl->live_key[i] && pl->live_key[i] != p) i = (i + 1) & mask;
    if (!pl->live_key[i]) return 0;
    size_t size = pl->live_size[i];
    pl->live_key[i] = NULL; pl->live_n--;
    for (size_t j = (i + 1) & mask; pl->live_key[j]; j = (j + 1) & mask) {
        size_t home = live_slot(pl, pl->live_key[j]);
        /* move j back into the hole at i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            pl->live_key[i] = pl->live_key[j]; pl->live_size[i] = pl->live_size[j];
            pl->live_key[j] = NULL;
            i = j;
        }
    }
    return size;
}

static cu_bin *pool_bin(cu_pool *pl, size_t size, bool create) {
    for (int i = 0; i < pl->n_bins; i++) if (pl->bins[i].size == size) return &pl->bins[i];
    if (!create) return NULL;
    if (pl->n_bins == pl->cap_bins) {
        int cap = pl->cap_bins ? pl->cap_bins * 2 : 64;
        cu_bin *b = (cu_bin *)realloc(pl->bins, (size_t)cap * sizeof(cu_bin));
        if (!b) return NULL;
        pl->bins = b; pl->cap_bins = cap;
    }
    cu_bin *b = &pl->bins[pl->n_bins++];
    b->size = size; b->blocks = NULL; b->n = b->cap = 0;
    return b;
}

void *cu_pool_alloc(cuda_ctx *c, size_t bytes) {
    cu_pool *pl = &c->pool;
    size_t size = pool_round(bytes);
    void *p = NULL;
    cu_bin *bin = pool_bin(pl, size, false);
    if (bin && bin->n) p = bin->blocks[--bin->n];
    for (int i = 0; !p && i < pl->n_chunks; i++) {           /* room left in a chunk */
        cu_chunk *k = &pl->chunks[i];
        if (k->size - k->used >= size) { p = k->base + k->used; k->used += size; }
    }
    if (!p && pl->n_chunks < DE_CUDA_MAX_CHUNKS) {           /* a new chunk: the only cudaMalloc */
        size_t want = size > POOL_CHUNK ? size : POOL_CHUNK;
        char *base = NULL;
        if (cudaMalloc((void **)&base, want) != cudaSuccess) {
            cudaGetLastError();
            want = size;
            if (cudaMalloc((void **)&base, want) != cudaSuccess) { cudaGetLastError(); base = NULL; }
        }
        if (base) {
            cu_chunk *k = &pl->chunks[pl->n_chunks++];
            k->base = base; k->size = want; k->used = size;
            p = base;
        }
    }
    if (!p) {                                                 /* last resort: a free block up to 2x larger */
        for (int i = 0; !p && i < pl->n_bins; i++) {
            cu_bin *b = &pl->bins[i];
            if (b->n && b->size >= size && b->size <= 2 * size) { p = b->blocks[--b->n]; size = b->size; }
        }
    }
    if (!p) return NULL;
    if (live_put(pl, p, size) != 0) return NULL;
    return p;
}

void cu_pool_release(cuda_ctx *c, void *p) {
    cu_pool *pl = &c->pool;
    size_t size = live_take(pl, p);
    if (!size) return; /* not ours: ignore rather than corrupt the pool */
    cu_bin *bin = pool_bin(pl, size, true);
    if (!bin) return; /* out of host memory for the bin: the block is leaked, not reused */
    if (bin->n == bin->cap) {
        int cap = bin->cap ? bin->cap * 2 : 8;
        void **b = (void **)realloc(bin->blocks, (size_t)cap * sizeof(void *));
        if (!b) return;
        bin->blocks = b; bin->cap = cap;
    }
    bin->blocks[bin->n++] = p;
}

void cu_pool_destroy(cuda_ctx *c) {
    cu_pool *pl = &c->pool;
    for (int i = 0; i < pl->n_chunks; i++) cudaFree(pl->chunks[i].base);
    for (int i = 0; i < pl->n_bins; i++) free(pl->bins[i].blocks);
    free(pl->bins);
    free(pl->live_key);
    free(pl->live_size);
    memset(pl, 0, sizeof *pl);
}

