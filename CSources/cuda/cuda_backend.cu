/* cuda_backend.cu — the CUDA provider: entry point, vtable, errors, arena, staging, weight cache,
 * layout/precision conversion kernels. Ops: cuda_gemm_conv.cu, cuda_kernels.cu, cuda_attention.cu. */
#include "cuda_internal.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DE_EXPORT extern "C" __attribute__((visibility("default")))

de_status cu_fail(cuda_ctx *c, de_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return st;
}

de_status cu_check_launch(cuda_ctx *c, const char *op, const char *kernel) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return cu_fail(c, DE_ERR_BACKEND, "%s: kernel %s failed to launch: %s", op, kernel, cudaGetErrorString(e));
    return DE_OK;
}

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

static de_status pinned_reserve(cuda_ctx *c, size_t bytes, const char *op) {
    if (bytes <= c->pinned_cap) return DE_OK;
    CUDA_TRY(c, cudaStreamSynchronize(c->stream), op);
    if (c->pinned) cudaFreeHost(c->pinned);
    c->pinned = NULL;
    c->pinned_cap = 0;
    size_t want = bytes < ((size_t)64 << 20) ? ((size_t)64 << 20) : bytes;
    CUDA_TRY(c, cudaHostAlloc((void **)&c->pinned, want, cudaHostAllocDefault), op);
    c->pinned_cap = want;
    return DE_OK;
}

#define STAGE_CHUNK ((size_t)32 << 20)

de_status cu_copy_in(cuda_ctx *c, void *dst, const void *host, size_t bytes, const char *op) {
    if (bytes == 0 || dst == host) return DE_OK;
    if (cu_is_dev(c, host)) {
        CUDA_TRY(c, cudaMemcpyAsync(dst, host, bytes, cudaMemcpyDeviceToDevice, c->stream), op);
        return DE_OK;
    }
    c->host_io = 1;
    ST_TRY(pinned_reserve(c, 2 * STAGE_CHUNK, op));
    /* double-buffered: memcpy into one half while the other half's DMA runs */
    size_t done = 0;
    int half = 0;
    while (done < bytes) {
        size_t n = bytes - done < STAGE_CHUNK ? bytes - done : STAGE_CHUNK;
        char *buf = c->pinned + (size_t)half * STAGE_CHUNK;
        CUDA_TRY(c, cudaStreamSynchronize(c->stream), op); /* the DMA that last used buf is done */
        memcpy(buf, (const char *)host + done, n);
        CUDA_TRY(c, cudaMemcpyAsync((char *)dst + done, buf, n, cudaMemcpyHostToDevice, c->stream), op);
        done += n;
        half ^= 1;
    }
    return DE_OK;
}

de_status cu_copy_out(cuda_ctx *c, void *host, const void *src, size_t bytes, const char *op) {
    if (bytes == 0 || host == src) return DE_OK;
    if (cu_is_dev(c, host)) {
        CUDA_TRY(c, cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToDevice, c->stream), op);
        return DE_OK;
    }
    c->host_io = 1;
    ST_TRY(pinned_reserve(c, 2 * STAGE_CHUNK, op));
    size_t done = 0;
    while (done < bytes) {
        size_t n = bytes - done < STAGE_CHUNK ? bytes - done : STAGE_CHUNK;
        CUDA_TRY(c, cudaMemcpyAsync(c->pinned, (const char *)src + done, n, cudaMemcpyDeviceToHost, c->stream), op);
        CUDA_TRY(c, cudaStreamSynchronize(c->stream), op);
        memcpy((char *)host + done, c->pinned, n);
        done += n;
    }
    return DE_OK;
}

/* ---- conversion kernels ---- */

template <typename H> __device__ __forceinline__ H to_half(float v);
template <> __device__ __forceinline__ __half to_half<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 to_half<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ float to_half<float>(float v) { return v; }  /* plain f32 transpose */
__device__ __forceinline__ float from_half(__half v) { return __half2float(v); }
__device__ __forceinline__ float from_half(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename H>
__global__ void k_f32_to_half(H *dst, const float *src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = to_half<H>(src[i]);
}

/* [n, c, hw] f32 -> [n, hw, c] half (or f32: the transpose op), 32x32 tiles through shared memory */
template <typename H>
__global__ void k_nchw_to_nhwc(H *dst, const float *src, int ch, int hw) {
    __shared__ float tile[32][33];
    int b = blockIdx.z;
    int p0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    const float *s = src + (int64_t)b * ch * hw;
    H *d = dst + (int64_t)b * ch * hw;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int cc = c0 + i, p = p0 + threadIdx.x;
        tile[i][threadIdx.x] = (cc < ch && p < hw) ? s[(int64_t)cc * hw + p] : 0.f;
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int p = p0 + i, cc = c0 + threadIdx.x;
        if (p < hw && cc < ch) d[(int64_t)p * ch + cc] = to_half<H>(tile[threadIdx.x][i]);
    }
}

template <typename H>
__global__ void k_nhwc_to_nchw(float *dst, const H *src, const float *bias, const float *res, int ch, int hw) {
    __shared__ float tile[32][33];
    int b = blockIdx.z;
    int p0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    const H *s = src + (int64_t)b * ch * hw;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int p = p0 + i, cc = c0 + threadIdx.x;
        tile[i][threadIdx.x] = (p < hw && cc < ch) ? from_half(s[(int64_t)p * ch + cc]) : 0.f;
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int cc = c0 + i, p = p0 + threadIdx.x;
        if (cc < ch && p < hw) {
            int64_t o = (int64_t)b * ch * hw + (int64_t)cc * hw + p;
            float v = tile[threadIdx.x][i];
            if (bias) v += bias[cc];
            if (res) v += res[o];
            dst[o] = v;
        }
    }
}

/* weight [k, c, r, s] f32 -> [k, r, s, c] half */
template <typename H>
__global__ void k_kcrs_to_krsc(H *dst, const float *src, int k, int c, int rs) {
    int64_t n = (int64_t)k * c * rs;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t kk = i / ((int64_t)c * rs), rem = i % ((int64_t)c * rs);
        int64_t cc = rem / rs, pos = rem % rs;
        dst[kk * rs * c + pos * c + cc] = to_half<H>(src[i]);
    }
}

static unsigned grid_for(int64_t n, int block) {
    int64_t g = (n + block - 1) / block;
    if (g > 65535 * 8) g = 65535 * 8;
    if (g < 1) g = 1;
    return (unsigned)g;
}

de_status cu_f32_to_half(cuda_ctx *c, void *dst, const float *src, int64_t n, const char *op) {
    if (n <= 0) return DE_OK;
    if (c->use_bf16) k_f32_to_half<__nv_bfloat16><<<grid_for(n, 256), 256, 0, c->stream>>>((__nv_bfloat16 *)dst, src, n);
    else k_f32_to_half<__half><<<grid_for(n, 256), 256, 0, c->stream>>>((__half *)dst, src, n);
    return cu_check_launch(c, op, "f32_to_half");
}

de_status cu_nchw_f32_to_nhwc_half(cuda_ctx *c, void *dst, const float *src, int n, int ch, int hw, const char *op) {
    dim3 grid((unsigned)((hw + 31) / 32), (unsigned)((ch + 31) / 32), (unsigned)n), block(32, 8);
    if (c->use_bf16) k_nchw_to_nhwc<__nv_bfloat16><<<grid, block, 0, c->stream>>>((__nv_bfloat16 *)dst, src, ch, hw);
    else k_nchw_to_nhwc<__half><<<grid, block, 0, c->stream>>>((__half *)dst, src, ch, hw);
    return cu_check_launch(c, op, "nchw_to_nhwc");
}

de_status cu_transpose_f32(cuda_ctx *c, float *dst, const float *src, int batch, int rows, int cols, const char *op) {
    dim3 grid((unsigned)((cols + 31) / 32), (unsigned)((rows + 31) / 32), (unsigned)batch), block(32, 8);
    k_nchw_to_nhwc<float><<<grid, block, 0, c->stream>>>(dst, src, rows, cols);
    return cu_check_launch(c, op, "transpose");
}

de_status cu_nhwc_half_to_nchw_f32(cuda_ctx *c, float *dst, const void *src, const float *bias, const float *residual,
                                   int n, int ch, int hw, const char *op) {
    dim3 grid((unsigned)((hw + 31) / 32), (unsigned)((ch + 31) / 32), (unsigned)n), block(32, 8);
    if (c->use_bf16)
        k_nhwc_to_nchw<__nv_bfloat16><<<grid, block, 0, c->stream>>>(dst, (const __nv_bfloat16 *)src, bias, residual, ch, hw);
    else k_nhwc_to_nchw<__half><<<grid, block, 0, c->stream>>>(dst, (const __half *)src, bias, residual, ch, hw);
    return cu_check_launch(c, op, "nhwc_to_nchw");
}

__global__ void k_add_bias_rows(float *y, const float *bias, int64_t rows, int64_t ld, int32_t cols, int64_t stride) {
    int64_t per = rows * cols;
    int64_t b = blockIdx.y;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < per; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, col = i % cols;
        y[b * stride + r * ld + col] += bias[col];
    }
}

de_status cu_add_bias_rows(cuda_ctx *c, float *y, const float *bias, int64_t rows, int64_t ld, int32_t cols, int batch,
                           int64_t stride, const char *op) {
    dim3 grid(grid_for(rows * cols, 256), (unsigned)batch);
    k_add_bias_rows<<<grid, 256, 0, c->stream>>>(y, bias, rows, ld, cols, stride);
    return cu_check_launch(c, op, "add_bias_rows");
}

/* ---- weight cache ---- */

static uint64_t fingerprint(const float *host, int64_t n) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)n;
    const uint32_t *w = (const uint32_t *)host;
    int64_t samples = n < 64 ? n : 64;
    for (int64_t i = 0; i < samples; i++) {
        int64_t idx = samples > 1 ? i * (n - 1) / (samples - 1) : 0;
        h = (h ^ w[idx]) * 1099511628211ull;
    }
    return h;
}

/* f32 device data -> the 16-bit layout of a CW_HALF / CW_HALF_KRSC weight, on the stream */
static de_status weight_to_half(cuda_ctx *c, void *dst, const float *src, int64_t n, int kind, const int32_t *kcrs,
                                const char *op) {
    if (kind == CW_HALF) return cu_f32_to_half(c, dst, src, n, op);
    int k = kcrs[0], ch = kcrs[1], rs = kcrs[2] * kcrs[3];
    if (c->use_bf16)
        k_kcrs_to_krsc<__nv_bfloat16><<<grid_for(n, 256), 256, 0, c->stream>>>((__nv_bfloat16 *)dst, src, k, ch, rs);
    else k_kcrs_to_krsc<__half><<<grid_for(n, 256), 256, 0, c->stream>>>((__half *)dst, src, k, ch, rs);
    return cu_check_launch(c, op, "kcrs_to_krsc");
}

de_status cu_weight(cuda_ctx *c, const float *host, int64_t n, int kind, const int32_t *kcrs,
                    const void **dev, const char *op) {
    size_t bytes = (size_t)n * sizeof(float);
    if (cu_is_dev(c, host)) {
        /* a computed tensor in a weight slot (device memory): no caching, convert on the stream */
        if (kind == CW_F32) { *dev = host; return DE_OK; }
        void *d = NULL;
        CUDA_TRY(c, cudaMallocAsync(&d, (size_t)n * 2, c->stream), op);
        de_status st = weight_to_half(c, d, host, n, kind, kcrs, op);
        *dev = d;
        cu_defer_free(c, d); /* released after the op's kernels are queued */
        return st;
    }
    uint64_t fp = fingerprint(host, n);
    cuda_weight *slot = NULL;
    if (c->cache_weights) {
        for (int i = c->n_weights - 1; i >= 0; i--) {
            cuda_weight *w = &c->weights[i];
            if (w->host == host && w->bytes == bytes && w->kind == kind) {
                if (w->fingerprint == fp) { *dev = w->dev; return DE_OK; }
                slot = w; /* same address, new contents: upload again into the same device block */
                break;
            }
        }
    }
    size_t dev_bytes = kind == CW_F32 ? bytes : (size_t)n * 2;
    void *d = slot ? slot->dev : NULL;
    int will_cache = c->cache_weights && (slot || c->n_weights < DE_CUDA_MAX_WEIGHTS);
    if (!d) {
        /* cached weights: cudaMalloc once; an uncached copy: stream-ordered alloc/free */
        cudaError_t e = will_cache ? cudaMalloc(&d, dev_bytes) : cudaMallocAsync(&d, dev_bytes, c->stream);
        if (e != cudaSuccess) {
            cudaGetLastError();
            return cu_fail(c, DE_ERR_OOM, "%s: out of device memory for a %zu-byte weight (%zu bytes cached)", op,
                           dev_bytes, c->weight_bytes);
        }
    }
    /* upload f32 into a temporary arena block (ops reserve room for it: cu_weight is called before
     * activations are taken, with the arena sized by the op for its largest weight), then convert */
    float *tmp = (float *)cu_arena_take(c, bytes);
    de_status st = DE_OK;
    if (!tmp) st = cu_fail(c, DE_ERR_BACKEND, "%s: internal: arena too small for a weight", op);
    if (st == DE_OK) st = cu_copy_in(c, kind == CW_F32 ? d : (void *)tmp, host, bytes, op);
    if (st == DE_OK && kind != CW_F32) st = weight_to_half(c, d, tmp, n, kind, kcrs, op);
    /* the temporary is released from the arena again (weights are taken first, so it is on top) */
    if (tmp) c->arena_used -= CU_ALIGN(bytes);
    if (st != DE_OK) {
        if (!slot) { if (will_cache) cudaFree(d); else cudaFreeAsync(d, c->stream); }
        return st;
    }
    int cached = 0;
    if (will_cache) {
        if (slot) {
            slot->fingerprint = fp;
            cached = 1;
        } else if (c->n_weights < DE_CUDA_MAX_WEIGHTS) {
            cuda_weight *w = &c->weights[c->n_weights++];
            w->host = host; w->bytes = bytes; w->kind = kind; w->fingerprint = fp; w->dev = d;
            c->weight_bytes += dev_bytes;
            cached = 1;
        }
    }
    *dev = d;
    /* an uncached copy (cache off or full) is freed stream-ordered, after the op's kernels */
    if (!cached) cu_defer_free(c, d);
    return DE_OK;
}

/* ---- vtable ---- */

static const char *cu_name(de_backend *be) { (void)be; return "cuda"; }

static void cu_free(de_backend *be) {
    if (!be) return;
    cuda_ctx *c = cu_of(be);
    if (c) {
        cudaSetDevice(c->device);
        cudaStreamSynchronize(c->stream);
        for (int i = 0; i < c->n_weights; i++) cudaFree(c->weights[i].dev);
        free(c->weights);
        if (c->arena) cudaFree(c->arena);
        if (c->pinned) cudaFreeHost(c->pinned);
        cu_pool_destroy(c);
        if (c->cudnn) cudnnDestroy(c->cudnn);
        if (c->lt) cublasLtDestroy(c->lt);
        if (c->cublas) cublasDestroy(c->cublas);
        if (c->stream) cudaStreamDestroy(c->stream);
        pthread_mutex_destroy(&c->lock);
        free(c);
    }
    free(be);
}

static void cu_memory(de_backend *be, size_t *fr, size_t *total) {
    cuda_ctx *c = cu_of(be);
    size_t f = 0, t = 0;
    pthread_mutex_lock(&c->lock);
    cudaSetDevice(c->device);
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) { cudaGetLastError(); f = t = 0; }
    pthread_mutex_unlock(&c->lock);
    if (fr) *fr = f;
    if (total) *total = t;
}

/* ---- device pool ---- */

#define POOL_CHUNK ((size_t)256 << 20)

static size_t pool_round(size_t bytes) { return bytes <= 512 ? 512 : (bytes + 511) & ~(size_t)511; }

int cu_is_dev(const cuda_ctx *c, const void *p) {
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

/* Backend memory of this provider is device memory from the pool (activations stay on the device). */
static void *cu_alloc(de_backend *be, size_t bytes) {
    cuda_ctx *c = cu_of(be);
    pthread_mutex_lock(&c->lock);
    cudaSetDevice(c->device);
    void *p = cu_pool_alloc(c, bytes ? bytes : 1);
    pthread_mutex_unlock(&c->lock);
    return p;
}

static void cu_release(de_backend *be, void *p) {
    if (!p) return;
    cuda_ctx *c = cu_of(be);
    pthread_mutex_lock(&c->lock);
    cu_pool_release(c, p); /* stream order makes reuse safe: later work on the stream runs after earlier readers */
    pthread_mutex_unlock(&c->lock);
}

/* host -> device memory (or host -> host); waits until the copy is done */
static de_status cu_upload(de_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_ctx *c = cu_of(be);
    if (bytes == 0) return DE_OK;
    if (!dst || !src) return cu_fail(c, DE_ERR_INVALID, "upload: NULL %s", dst ? "src" : "dst");
    pthread_mutex_lock(&c->lock);
    cudaSetDevice(c->device);
    de_status st = DE_OK;
    if (!cu_is_dev(c, dst)) memcpy(dst, src, bytes);
    else {
        st = cu_copy_in(c, dst, src, bytes, "upload");
        cudaError_t e = cudaStreamSynchronize(c->stream);
        if (st == DE_OK && e != cudaSuccess) st = cu_fail(c, DE_ERR_BACKEND, "upload: %s", cudaGetErrorString(e));
    }
    if (st != DE_OK) cudaGetLastError();
    pthread_mutex_unlock(&c->lock);
    return st;
}

/* device (or host) -> host; waits for the stream first, so it also reports failures of queued ops */
static de_status cu_download(de_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_ctx *c = cu_of(be);
    if (bytes == 0) return DE_OK;
    if (!dst || !src) return cu_fail(c, DE_ERR_INVALID, "download: NULL %s", dst ? "src" : "dst");
    pthread_mutex_lock(&c->lock);
    cudaSetDevice(c->device);
    de_status st = DE_OK;
    if (!cu_is_dev(c, src)) memcpy(dst, src, bytes);
    else {
        cudaError_t e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) st = cu_fail(c, DE_ERR_BACKEND, "download: an earlier op failed: %s", cudaGetErrorString(e));
        if (st == DE_OK) st = cu_copy_out(c, dst, src, bytes, "download");
    }
    if (st != DE_OK) cudaGetLastError();
    pthread_mutex_unlock(&c->lock);
    return st;
}

static de_status cu_sync(de_backend *be) {
    cuda_ctx *c = cu_of(be);
    pthread_mutex_lock(&c->lock);
    cudaError_t e = cudaStreamSynchronize(c->stream);
    de_status st = e == cudaSuccess ? DE_OK : cu_fail(c, DE_ERR_BACKEND, "synchronize: %s", cudaGetErrorString(e));
    pthread_mutex_unlock(&c->lock);
    return st;
}

static const char *cu_last_error(de_backend *be) { return cu_of(be)->err; }

/* Each op: lock, select the device, run. An op on device memory only returns as soon as its kernels
 * are queued (the CPU runs ahead; a failure surfaces at the next download or synchronize); an op that
 * touched host memory, failed, or runs under DIFFEDIT_CUDA_SYNC=1 waits for the stream. */
#define WRAP(name, fn, type)                                             \
    static de_status name(de_backend *be, const type *op) {              \
        cuda_ctx *c = cu_of(be);                                         \
        pthread_mutex_lock(&c->lock);                                    \
        cudaSetDevice(c->device);                                        \
        c->host_io = 0;                                                  \
        de_status st = fn(be, op);                                       \
        for (int i_ = 0; i_ < c->n_deferred; i_++) cudaFreeAsync(c->deferred[i_], c->stream); \
        c->n_deferred = 0;                                               \
        if (c->host_io || c->always_sync || st != DE_OK) {               \
            cudaError_t e = cudaStreamSynchronize(c->stream);            \
            if (st == DE_OK && e != cudaSuccess)                         \
                st = cu_fail(c, DE_ERR_BACKEND, "%s: %s", #fn, cudaGetErrorString(e)); \
        }                                                                \
        if (st != DE_OK) cudaGetLastError(); /* clear non-sticky errors */ \
        pthread_mutex_unlock(&c->lock);                                  \
        return st;                                                       \
    }

WRAP(w_gemm, cu_gemm, de_gemm_op)
WRAP(w_conv2d, cu_conv2d, de_conv2d_op)
WRAP(w_group_norm, cu_group_norm, de_group_norm_op)
WRAP(w_layer_norm, cu_layer_norm, de_layer_norm_op)
WRAP(w_softmax, cu_softmax, de_softmax_op)
WRAP(w_attention, cu_attention, de_attention_op)
WRAP(w_unary, cu_unary, de_unary_op)
WRAP(w_geglu, cu_geglu, de_geglu_op)
WRAP(w_binary, cu_binary, de_binary_op)
WRAP(w_upsample, cu_upsample, de_upsample_op)
WRAP(w_transpose, cu_transpose, de_transpose_op)
WRAP(w_copy, cu_copy, de_copy_op)
WRAP(w_lincomb, cu_lincomb, de_lincomb_op)

__global__ void k_probe(int *x) { if (x) *x = 1; }

static void set_err(char *err, size_t len, const char *fmt, ...) {
    if (!err || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

DE_EXPORT int de_backend_api_version(void) { return DE_BACKEND_API_VERSION; }

DE_EXPORT de_backend *de_backend_cuda_init(int device, char *err, size_t err_len) {
    set_err(err, err_len, "");
    /* without the driver, cudart only says "insufficient driver": name the missing library instead */
    void *drv = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!drv) {
        const char *why = dlerror();
        set_err(err, err_len, "no NVIDIA driver (%s)", why ? why : "libcuda.so.1 cannot be loaded");
        return NULL;
    }
    dlclose(drv);
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        set_err(err, err_len, "cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
        cudaGetLastError();
        return NULL;
    }
    if (count == 0) { set_err(err, err_len, "no CUDA device present"); return NULL; }
    if (device < 0 || device >= count) { set_err(err, err_len, "device %d out of range (%d present)", device, count); return NULL; }
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess) {
        set_err(err, err_len, "cudaGetDeviceProperties: %s", cudaGetErrorString(e));
        return NULL;
    }
    if (prop.major < 8) {
        set_err(err, err_len, "%s has compute capability %d.%d; this provider is built for 8.0 and newer", prop.name,
                prop.major, prop.minor);
        return NULL;
    }
    if ((e = cudaSetDevice(device)) != cudaSuccess) {
        set_err(err, err_len, "cudaSetDevice(%d): %s", device, cudaGetErrorString(e));
        return NULL;
    }
    /* a launch proves the fatbinary has code for this device */
    k_probe<<<1, 1>>>(NULL);
    if ((e = cudaGetLastError()) != cudaSuccess || (e = cudaDeviceSynchronize()) != cudaSuccess) {
        set_err(err, err_len, "test kernel on %s failed: %s", prop.name, cudaGetErrorString(e));
        return NULL;
    }
    de_backend *be = (de_backend *)calloc(1, sizeof *be);
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    if (c) c->weights = (cuda_weight *)calloc(DE_CUDA_MAX_WEIGHTS, sizeof(cuda_weight));
    if (!be || !c || !c->weights) {
        if (c) free(c->weights);
        free(be); free(c);
        set_err(err, err_len, "out of host memory");
        return NULL;
    }
    c->device = device;
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    pthread_mutex_init(&c->lock, NULL);
    const char *dt = getenv("DIFFEDIT_CUDA_DTYPE");
    c->use_bf16 = dt && strcmp(dt, "bf16") == 0;
    const char *wc = getenv("DIFFEDIT_CUDA_WEIGHT_CACHE");
    c->cache_weights = !(wc && strcmp(wc, "0") == 0);
    const char *sy = getenv("DIFFEDIT_CUDA_SYNC");
    c->always_sync = sy && strcmp(sy, "1") == 0;
    be->api_version = DE_BACKEND_API_VERSION;
    be->context = c;
    struct de_backend_i *i = &be->iface;
    i->get_name = cu_name;
    i->free = cu_free;
    i->memory = cu_memory;
    i->alloc = cu_alloc;
    i->release = cu_release;
    i->upload = cu_upload;
    i->download = cu_download;
    i->synchronize = cu_sync;
    i->gemm = w_gemm;
    i->conv2d = w_conv2d;
    i->group_norm = w_group_norm;
    i->layer_norm = w_layer_norm;
    i->softmax = w_softmax;
    i->attention = w_attention;
    i->unary = w_unary;
    i->geglu = w_geglu;
    i->binary = w_binary;
    i->upsample = w_upsample;
    i->transpose = w_transpose;
    i->last_error = cu_last_error;
    i->copy = w_copy;
    i->lincomb = w_lincomb;
    const char *what = NULL;
    if (cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess) what = "cudaStreamCreate";
    else if (cublasCreate(&c->cublas) != CUBLAS_STATUS_SUCCESS) what = "cublasCreate";
    else if (cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS) what = "cublasLtCreate";
    else if (cudnnCreate(&c->cudnn) != CUDNN_STATUS_SUCCESS) what = "cudnnCreate (is libcudnn.so.9 installed?)";
    else if (cublasSetStream(c->cublas, c->stream) != CUBLAS_STATUS_SUCCESS) what = "cublasSetStream";
    else if (cudnnSetStream(c->cudnn, c->stream) != CUDNN_STATUS_SUCCESS) what = "cudnnSetStream";
    if (what) {
        set_err(err, err_len, "%s failed on %s", what, prop.name);
        cudaGetLastError();
        cu_free(be);
        return NULL;
    }
    return be;
}
