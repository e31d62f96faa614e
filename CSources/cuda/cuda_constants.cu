/* cuda_constants.cu — constants of the CUDA provider (de_backend.h, constant_upload): model weights,
 * biases and norm parameters uploaded once at load and referred to by handle, and the weight-slot
 * operand of an op (cu_weight) in the layout the op needs.
 *
 * Handles are addresses inside a range of host address space reserved with PROT_NONE (never backed,
 * never readable: a handle that reaches host code faults instead of being read as data). Each constant
 * gets a sub-range as long as its f32 data, handed out in increasing order, so the table of constants is
 * sorted by handle and an op finds the constant of any address inside it (a view of a weight: handle +
 * offset) by binary search. Nothing is recognised by host address or host contents.
 *
 * Device copies: DE_CONST_PARAM -> f32, at upload. DE_CONST_WEIGHT -> 16-bit (fp16, or bf16 with the
 * cuda_dtype option) at upload; the first conv2d that reads it makes the KRSC (NHWC filter) layout cuDNN
 * wants and, when that covers the whole constant, drops the plain 16-bit copy (made again from the host
 * data if a GEMM ever reads it); an f32 copy is made only if an op reads the weight as f32. The host data
 * stays the caller's (valid until constant_release), which is what the lazily made layouts are made from. */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define STAGE_F32 ((size_t)32 << 20) /* f32 bytes converted per chunk at upload */

/* ---- the handle space and the table ---- */

static int space_init(cuda_ctx *c) {
    if (c->consts.space) return 0;
    const size_t sizes[] = { (size_t)1 << 38, (size_t)1 << 36, (size_t)1 << 34 }; /* 256, 64, 16 GiB of addresses */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = mmap(NULL, sizes[i], PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
            c->consts.space = (char *)p;
            c->consts.space_size = sizes[i];
            c->consts.space_used = 0;
            return 0;
        }
    }
    return -1;
}

int cu_in_const_space(const cuda_ctx *c, const void *p) {
    const char *q = (const char *)p;
    return c->consts.space && q >= c->consts.space && q < c->consts.space + c->consts.space_used;
}

cu_const *cu_const_find(const cuda_ctx *c, const void *p, int64_t *off_bytes) {
    if (!cu_in_const_space(c, p)) return NULL;
    const char *q = (const char *)p;
    int lo = 0, hi = c->consts.n; /* first entry with handle > q */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (c->consts.tab[mid].handle <= q) lo = mid + 1; else hi = mid;
    }
    if (lo == 0) return NULL;
    cu_const *e = &c->consts.tab[lo - 1];
    if (q >= e->handle + (e->bytes ? e->bytes : 1)) return NULL; /* a released constant's range */
    if (off_bytes) *off_bytes = (int64_t)(q - e->handle);
    return e;
}

/* ---- device copies ---- */

/* host f32 -> a new 16-bit device copy, through a temporary f32 chunk on the stream (no arena: this also
 * runs inside ops) */
static de_status make_half(cuda_ctx *c, cu_const *e, const char *op) {
    const size_t n = e->bytes / 4;
    void *d = NULL;
    if (cudaMalloc(&d, n ? n * 2 : 2) != cudaSuccess) {
        cudaGetLastError();
        return cu_fail(c, DE_ERR_OOM, "%s: out of device memory for a %zu-byte constant (%zu bytes of constants held)", op,
                       n * 2, c->consts.dev_bytes);
    }
    const size_t chunk = e->bytes < STAGE_F32 ? e->bytes : STAGE_F32;
    float *tmp = NULL;
    de_status st = DE_OK;
    if (chunk && cudaMallocAsync((void **)&tmp, chunk, c->stream) != cudaSuccess) {
        cudaGetLastError();
        st = cu_fail(c, DE_ERR_OOM, "%s: out of device memory for a %zu-byte staging chunk", op, chunk);
    }
    const int in_op = c->in_op;
    c->in_op = 0; /* making a constant's copy is not an op's host operand */
    for (size_t done = 0; st == DE_OK && done < e->bytes; done += chunk) {
        size_t len = e->bytes - done < chunk ? e->bytes - done : chunk;
        st = cu_copy_in(c, tmp, (const char *)e->host + done, len, op);
        if (st == DE_OK) st = cu_f32_to_half(c, (char *)d + done / 2, tmp, (int64_t)(len / 4), op);
    }
    c->in_op = in_op;
    if (tmp) cudaFreeAsync(tmp, c->stream);
    if (st != DE_OK) {
        cudaStreamSynchronize(c->stream);
        cudaFree(d);
        return st;
    }
    e->dev16 = d;
    e->dev_bytes += n * 2;
    c->consts.dev_bytes += n * 2;
    return DE_OK;
}

float *cu_const_f32(cuda_ctx *c, cu_const *e, const char *op) {
    if (e->dev32) return e->dev32;
    float *d = NULL;
    if (cudaMalloc((void **)&d, e->bytes ? e->bytes : 4) != cudaSuccess) {
        cudaGetLastError();
        cu_fail(c, DE_ERR_OOM, "%s: out of device memory for a %zu-byte f32 constant", op, e->bytes);
        return NULL;
    }
    const int in_op = c->in_op;
    c->in_op = 0;
    de_status st = cu_copy_in(c, d, e->host, e->bytes, op);
    c->in_op = in_op;
    if (st != DE_OK) {
        cudaStreamSynchronize(c->stream);
        cudaFree(d);
        return NULL;
    }
    e->dev32 = d;
    e->dev_bytes += e->bytes;
    c->consts.dev_bytes += e->bytes;
    return d;
}

/* ---- the slots ---- */

static int grow_table(cuda_ctx *c) {
    int cap = c->consts.cap ? c->consts.cap * 2 : 1024;
    cu_const *t = (cu_const *)realloc(c->consts.tab, (size_t)cap * sizeof(cu_const));
    if (!t) return -1;
    c->consts.tab = t;
    c->consts.cap = cap;
    return 0;
}

void *cu_constant_upload(de_backend *be, const void *host, size_t bytes, de_const_kind kind) {
    cuda_ctx *c = cu_of(be);
    if (!host) { cu_fail(c, DE_ERR_INVALID, "constant_upload: host is NULL"); return NULL; }
    if (bytes % 4) { cu_fail(c, DE_ERR_INVALID, "constant_upload: %zu bytes is not a whole number of f32 values", bytes); return NULL; }
    if (kind != DE_CONST_WEIGHT && kind != DE_CONST_PARAM) { cu_fail(c, DE_ERR_INVALID, "constant_upload: kind %d", (int)kind); return NULL; }
    if (!c->cache_weights) return (void *)host; /* option cuda_weight_cache off: constants stay host memory */
    pthread_mutex_lock(&c->lock);
    cudaSetDevice(c->device);
    void *handle = NULL;
    const size_t span = CU_ALIGN(bytes ? bytes : 1);
    if (space_init(c) != 0) {
        cu_fail(c, DE_ERR_OOM, "constant_upload: cannot reserve address space for constant handles");
    } else if (c->consts.space_used + span > c->consts.space_size) {
        cu_fail(c, DE_ERR_OOM, "constant_upload: the handle space (%zu bytes) is full", c->consts.space_size);
    } else if (c->consts.n == c->consts.cap && grow_table(c) != 0) {
        cu_fail(c, DE_ERR_OOM, "constant_upload: out of host memory for the table of constants");
    } else {
        cu_const e;
        memset(&e, 0, sizeof e);
        e.handle = c->consts.space + c->consts.space_used;
        e.bytes = bytes;
        e.kind = (int)kind;
        e.host = (const float *)host;
        de_status st = kind == DE_CONST_WEIGHT ? make_half(c, &e, "constant_upload")
                                               : (cu_const_f32(c, &e, "constant_upload") ? DE_OK : DE_ERR_OOM);
        cudaError_t ce = cudaStreamSynchronize(c->stream);
        if (st == DE_OK && ce != cudaSuccess) st = cu_fail(c, DE_ERR_BACKEND, "constant_upload: %s", cudaGetErrorString(ce));
        if (st == DE_OK) {
            c->consts.tab[c->consts.n++] = e;
            c->consts.space_used += span;
            c->n_constants++;
            handle = (void *)e.handle;
        } else {
            cudaGetLastError();
            if (e.dev16) cudaFree(e.dev16);
            if (e.dev32) cudaFree(e.dev32);
            c->consts.dev_bytes -= e.dev_bytes;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return handle;
}

static void const_free(cuda_ctx *c, cu_const *e) {
    if (e->dev16) cudaFree(e->dev16);
    if (e->dev32) cudaFree(e->dev32);
    if (e->krsc) cudaFree(e->krsc);
    c->consts.dev_bytes -= e->dev_bytes;
}

void cu_constant_release(de_backend *be, void *handle) {
    cuda_ctx *c = cu_of(be);
    if (!handle) return;
    pthread_mutex_lock(&c->lock);
    int64_t off = -1;
    cu_const *e = cu_const_find(c, handle, &off);
    if (e && off == 0) { /* anything else (a host pointer given back with the cache off) is not ours */
        cudaSetDevice(c->device);
        cudaStreamSynchronize(c->stream); /* queued ops may still read it */
        const_free(c, e);
        int i = (int)(e - c->consts.tab);
        memmove(e, e + 1, (size_t)(c->consts.n - i - 1) * sizeof *e);
        c->consts.n--;
        if (c->consts.n == 0) c->consts.space_used = 0; /* every handle is gone: the space starts over */
        else c->consts.space_used = (size_t)(c->consts.tab[c->consts.n - 1].handle + CU_ALIGN(c->consts.tab[c->consts.n - 1].bytes ? c->consts.tab[c->consts.n - 1].bytes : 1) - c->consts.space);
    }
    pthread_mutex_unlock(&c->lock);
}

void cu_consts_destroy(cuda_ctx *c) {
    for (int i = 0; i < c->consts.n; i++) const_free(c, &c->consts.tab[i]);
    free(c->consts.tab);
    if (c->consts.space) munmap(c->consts.space, c->consts.space_size);
    memset(&c->consts, 0, sizeof c->consts);
}

/* ---- weight-slot operands ---- */

/* f32 device data -> a temporary 16-bit copy in `kind`'s layout, freed after the op */
static de_status temp_half(cuda_ctx *c, const float *src, int64_t n, int kind, const int32_t *kcrs, const void **dev,
                           const char *op) {
    void *d = NULL;
    CUDA_TRY(c, cudaMallocAsync(&d, (size_t)n * 2, c->stream), op);
    de_status st = kind == CW_HALF ? cu_f32_to_half(c, d, src, n, op) : cu_kcrs_to_krsc(c, d, src, 0, kcrs, op);
    *dev = d;
    cu_defer_free(c, d); /* released after the op's kernels are queued */
    return st;
}

de_status cu_weight(cuda_ctx *c, const float *p, int64_t n, int kind, const int32_t *kcrs, const void **dev,
                    const char *op) {
    const size_t bytes = (size_t)n * sizeof(float);
    if (cu_in_const_space(c, p)) {
        int64_t off = 0;
        cu_const *e = cu_const_find(c, p, &off);
        if (!e) return cu_fail(c, DE_ERR_INVALID, "%s: a weight operand is a released or unknown constant handle", op);
        if ((size_t)off + bytes > e->bytes)
            return cu_fail(c, DE_ERR_INVALID, "%s: a weight operand reads %zu bytes at offset %lld of a %zu-byte constant", op,
                           bytes, (long long)off, e->bytes);
        if (kind == CW_F32 || e->kind != DE_CONST_WEIGHT) {
            float *d = cu_const_f32(c, e, op);
            if (!d) return DE_ERR_OOM;
            if (kind == CW_F32) { *dev = (const char *)d + off; return DE_OK; }
            return temp_half(c, (const float *)((const char *)d + off), n, kind, kcrs, dev, op); /* a PARAM in a 16-bit slot */
        }
        if (!e->dev16 && !(kind == CW_HALF_KRSC && e->krsc && e->krsc_off == off / 4 && memcmp(e->krsc_dims, kcrs, sizeof e->krsc_dims) == 0))
            ST_TRY(make_half(c, e, op));
        if (kind == CW_HALF) { *dev = (const char *)e->dev16 + off / 2; return DE_OK; }
        /* CW_HALF_KRSC */
        if (e->krsc && e->krsc_off == off / 4 && memcmp(e->krsc_dims, kcrs, sizeof e->krsc_dims) == 0) { *dev = e->krsc; return DE_OK; }
        void *k = NULL;
        const bool keep = e->krsc == NULL; /* one KRSC copy per constant; another view gets a temporary */
        if (keep) {
            if (cudaMalloc(&k, (size_t)n * 2) != cudaSuccess) {
                cudaGetLastError();
                return cu_fail(c, DE_ERR_OOM, "%s: out of device memory for a %lld-byte conv weight", op, (long long)n * 2);
            }
        } else {
            CUDA_TRY(c, cudaMallocAsync(&k, (size_t)n * 2, c->stream), op);
            cu_defer_free(c, k);
        }
        ST_TRY(cu_kcrs_to_krsc(c, k, (const char *)e->dev16 + off / 2, 1, kcrs, op));
        *dev = k;
        if (keep) {
            e->krsc = k;
            e->krsc_off = off / 4;
            memcpy(e->krsc_dims, kcrs, sizeof e->krsc_dims);
            e->dev_bytes += (size_t)n * 2;
            c->consts.dev_bytes += (size_t)n * 2;
            if (off == 0 && bytes == e->bytes) { /* the whole weight is a conv filter: the plain copy is not needed */
                /* cudaMalloc'd memory is not freed stream-ordered: wait for the conversion above (first use only) */
                CUDA_TRY(c, cudaStreamSynchronize(c->stream), op);
                cudaFree(e->dev16);
                e->dev16 = NULL;
                e->dev_bytes -= (size_t)n * 2;
                c->consts.dev_bytes -= (size_t)n * 2;
            }
        }
        return DE_OK;
    }
    if (cu_is_pool(c, p)) {
        /* a computed tensor in a weight slot (device memory): used in place, or converted for this op */
        if (kind == CW_F32) { *dev = p; return DE_OK; }
        return temp_half(c, p, n, kind, kcrs, dev, op);
    }
    /* host memory: copied in for this op only (nothing is cached by host address). The f32 staging block
     * comes from the arena (ops reserve room for their largest weight and call cu_weight before taking
     * their activations, so it is on top and is given back right after). */
    const size_t dev_bytes = kind == CW_F32 ? bytes : (size_t)n * 2;
    void *d = NULL;
    CUDA_TRY(c, cudaMallocAsync(&d, dev_bytes, c->stream), op);
    cu_defer_free(c, d);
    if (kind == CW_F32) {
        ST_TRY(cu_copy_in(c, d, p, bytes, op));
        *dev = d;
        return DE_OK;
    }
    float *tmp = (float *)cu_arena_take(c, bytes);
    if (!tmp) return cu_fail(c, DE_ERR_BACKEND, "%s: internal: arena too small for a weight", op);
    de_status st = cu_copy_in(c, tmp, p, bytes, op);
    if (st == DE_OK) st = kind == CW_HALF ? cu_f32_to_half(c, d, tmp, n, op) : cu_kcrs_to_krsc(c, d, tmp, 0, kcrs, op);
    c->arena_used -= CU_ALIGN(bytes);
    *dev = d;
    return st;
}
