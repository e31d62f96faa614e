/* cuda_kernels.cu — memory-bound ops in f32 on the device: GroupNorm(+SiLU), LayerNorm, softmax,
 * unary activations, GEGLU, broadcast binary, lincomb, nearest upsample, batched transpose.
 * Reductions are two-pass (mean, then centred sum of squares), accumulated in f32. */
#include "cuda_internal.h"

#include <math.h>

/* ---- helpers ---- */

static unsigned grid1d(int64_t n, int block) {
    int64_t g = (n + block - 1) / block;
    if (g > 65535 * 16) g = 65535 * 16;
    return (unsigned)(g < 1 ? 1 : g);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* block-wide reduction; every thread gets the result. blockDim.x a multiple of 32, <= 1024. */
template <bool MAX>
__device__ float block_reduce(float v) {
    __shared__ float part[32];
    __shared__ float result;
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    if (lane == 0) part[wid] = v;
    __syncthreads();
    if (wid == 0) {
        int nw = (blockDim.x + 31) >> 5;
        float t = lane < nw ? part[lane] : (MAX ? -INFINITY : 0.f);
        t = MAX ? warp_max(t) : warp_sum(t);
        if (lane == 0) result = t;
    }
    __syncthreads();
    float r = result;
    __syncthreads();
    return r;
}

__device__ __forceinline__ float silu_f(float x) { return x / (1.f + expf(-x)); }

/* x and y as device pointers: device memory as is; a host x is copied into the arena, a host y gets an
 * arena block (the op's final cu_copy_out writes it back; a no-op for device y). Room is reserved for
 * the host case either way. */
static de_status io_begin(cuda_ctx *c, const char *name, size_t in_bytes, size_t out_bytes, bool alias,
                          const void *x, const void *y, float **dx, float **dy, size_t extra) {
    ST_TRY(cu_arena_begin(c, CU_ALIGN(in_bytes) + (alias ? 0 : CU_ALIGN(out_bytes)) + extra, name));
    *dx = CU_VIEW(c, x, in_bytes);
    *dy = alias ? *dx : CU_VIEW(c, y, out_bytes);
    if (!*dx || !*dy) return cu_fail(c, DE_ERR_BACKEND, "%s: internal: arena too small", name);
    return cu_copy_in(c, *dx, x, in_bytes, name);
}

/* ---- group norm ---- */

__global__ void k_group_norm(float *y, const float *x, const float *gamma, const float *beta, int c, int hw, int groups,
                             float eps, bool silu) {
    int ng = blockIdx.x; /* n * groups + g */
    int g = ng % groups;
    int cpg = c / groups;
    int64_t len = (int64_t)cpg * hw;
    const float *xs = x + (int64_t)ng * len; /* group g of item n is contiguous in NCHW */
    float *ys = y + (int64_t)ng * len;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) s += xs[i];
    float mean = block_reduce<false>(s) / (float)len;
    float q = 0.f;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) { float d = xs[i] - mean; q += d * d; }
    float rstd = rsqrtf(block_reduce<false>(q) / (float)len + eps);
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
        int ch = g * cpg + (int)(i / hw);
        float v = (xs[i] - mean) * rstd;
        if (gamma) v *= gamma[ch];
        if (beta) v += beta[ch];
        ys[i] = silu ? silu_f(v) : v;
    }
}

de_status cu_group_norm(de_backend *be, const de_group_norm_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "group_norm";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "group_norm: dtype %d", (int)op->dtype);
    if (!op->x || !op->y) return cu_fail(c, DE_ERR_INVALID, "group_norm: NULL x or y");
    if (op->n < 0 || op->c <= 0 || op->hw < 0 || op->groups <= 0 || op->c % op->groups != 0)
        return cu_fail(c, DE_ERR_INVALID, "group_norm: c=%d groups=%d", op->c, op->groups);
    int64_t n = (int64_t)op->n * op->c * op->hw;
    if (n == 0) return DE_OK;
    float *dx, *dy;
    ST_TRY(io_begin(c, name, n * 4, n * 4, op->x == op->y, op->x, op->y, &dx, &dy, 2 * CU_ALIGN((size_t)op->c * 4) * 2));
    const void *g = NULL, *b = NULL;
    if (op->gamma) ST_TRY(cu_weight(c, op->gamma, op->c, CW_F32, NULL, &g, name));
    if (op->beta) ST_TRY(cu_weight(c, op->beta, op->c, CW_F32, NULL, &b, name));
    CU_LAUNCH((unsigned)(op->n * op->groups), 512, 0, c->stream, k_group_norm)(dy, dx, (const float *)g, (const float *)b, op->c,
                                                                        op->hw, op->groups, op->eps, op->silu);
    ST_TRY(cu_check_launch(c, name, "group_norm"));
    return cu_copy_out(c, op->y, dy, n * 4, name);
}

/* ---- layer norm / softmax (one block per row) ---- */

__global__ void k_layer_norm(float *y, const float *x, const float *gamma, const float *beta, int cols, float eps) {
    const float *xr = x + (int64_t)blockIdx.x * cols;
    float *yr = y + (int64_t)blockIdx.x * cols;
    float s = 0.f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) s += xr[i];
    float mean = block_reduce<false>(s) / (float)cols;
    float q = 0.f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) { float d = xr[i] - mean; q += d * d; }
    float rstd = rsqrtf(block_reduce<false>(q) / (float)cols + eps);
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = (xr[i] - mean) * rstd;
        if (gamma) v *= gamma[i];
        if (beta) v += beta[i];
        yr[i] = v;
    }
}

de_status cu_layer_norm(de_backend *be, const de_layer_norm_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "layer_norm";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "layer_norm: dtype %d", (int)op->dtype);
    if (!op->x || !op->y) return cu_fail(c, DE_ERR_INVALID, "layer_norm: NULL x or y");
    if (op->rows < 0 || op->cols <= 0 || op->rows > 0x7fffffff) return cu_fail(c, DE_ERR_INVALID, "layer_norm: rows/cols");
    int64_t n = op->rows * op->cols;
    if (n == 0) return DE_OK;
    float *dx, *dy;
    ST_TRY(io_begin(c, name, n * 4, n * 4, op->x == op->y, op->x, op->y, &dx, &dy, 2 * CU_ALIGN((size_t)op->cols * 4) * 2));
    const void *g = NULL, *b = NULL;
    if (op->gamma) ST_TRY(cu_weight(c, op->gamma, op->cols, CW_F32, NULL, &g, name));
    if (op->beta) ST_TRY(cu_weight(c, op->beta, op->cols, CW_F32, NULL, &b, name));
    int threads = op->cols >= 1024 ? 512 : op->cols >= 256 ? 256 : 128;
    CU_LAUNCH((unsigned)op->rows, threads, 0, c->stream, k_layer_norm)(dy, dx, (const float *)g, (const float *)b, op->cols, op->eps);
    ST_TRY(cu_check_launch(c, name, "layer_norm"));
    return cu_copy_out(c, op->y, dy, n * 4, name);
}

__global__ void k_softmax(float *y, const float *x, int cols, float scale) {
    const float *xr = x + (int64_t)blockIdx.x * cols;
    float *yr = y + (int64_t)blockIdx.x * cols;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, scale * xr[i]);
    m = block_reduce<true>(m);
    float s = 0.f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) s += expf(scale * xr[i] - m);
    float inv = 1.f / block_reduce<false>(s);
    for (int i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = expf(scale * xr[i] - m) * inv;
}

de_status cu_softmax(de_backend *be, const de_softmax_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "softmax";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "softmax: dtype %d", (int)op->dtype);
    if (!op->x || !op->y) return cu_fail(c, DE_ERR_INVALID, "softmax: NULL x or y");
    if (op->rows < 0 || op->cols <= 0 || op->rows > 0x7fffffff) return cu_fail(c, DE_ERR_INVALID, "softmax: rows/cols");
    int64_t n = op->rows * op->cols;
    if (n == 0) return DE_OK;
    float *dx, *dy;
    ST_TRY(io_begin(c, name, n * 4, n * 4, op->x == op->y, op->x, op->y, &dx, &dy, 0));
    int threads = op->cols >= 1024 ? 512 : op->cols >= 256 ? 256 : 128;
    CU_LAUNCH((unsigned)op->rows, threads, 0, c->stream, k_softmax)(dy, dx, op->cols, op->scale);
    ST_TRY(cu_check_launch(c, name, "softmax"));
    return cu_copy_out(c, op->y, dy, n * 4, name);
}

/* rows of x [rows, cols] on the device, in place allowed (cuda_attention.cu's fallback for wide heads) */
de_status cu_softmax_rows(cuda_ctx *c, float *y, const float *x, int64_t rows, int cols, float scale, const char *op) {
    if (rows <= 0) return DE_OK;
    int threads = cols >= 1024 ? 512 : cols >= 256 ? 256 : 128;
    CU_LAUNCH((unsigned)rows, threads, 0, c->stream, k_softmax)(y, x, cols, scale);
    return cu_check_launch(c, op, "softmax");
}

/* ---- elementwise ---- */

__global__ void k_unary(float *y, const float *x, int64_t n, int kind, float alpha, float beta) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = x[i], r;
        switch (kind) {
        case DE_UNARY_SILU: r = silu_f(v); break;
        case DE_UNARY_GELU: r = 0.5f * v * (1.f + erff(v * 0.70710678118654752f)); break;
        case DE_UNARY_GELU_TANH: r = 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v))); break;
        case DE_UNARY_QUICK_GELU: r = v / (1.f + expf(-1.702f * v)); break;
        default: r = alpha * v + beta; break;
        }
        y[i] = r;
    }
}

de_status cu_unary(de_backend *be, const de_unary_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "unary";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "unary: dtype %d", (int)op->dtype);
    if (!op->x || !op->y || op->n < 0) return cu_fail(c, DE_ERR_INVALID, "unary: NULL x/y or negative n");
    if ((int)op->kind < DE_UNARY_SILU || (int)op->kind > DE_UNARY_SCALE) return cu_fail(c, DE_ERR_INVALID, "unary: kind %d", (int)op->kind);
    if (op->n == 0) return DE_OK;
    float *dx, *dy;
    ST_TRY(io_begin(c, name, op->n * 4, op->n * 4, op->x == op->y, op->x, op->y, &dx, &dy, 0));
    CU_LAUNCH(grid1d(op->n, 256), 256, 0, c->stream, k_unary)(dy, dx, op->n, (int)op->kind, op->alpha, op->beta);
    ST_TRY(cu_check_launch(c, name, "unary"));
    return cu_copy_out(c, op->y, dy, op->n * 4, name);
}

__global__ void k_geglu(float *y, const float *x, int64_t rows, int cols) {
    int64_t n = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, col = i % cols;
        float a = x[r * 2 * cols + col], g = x[r * 2 * cols + cols + col];
        y[i] = a * 0.5f * g * (1.f + erff(g * 0.70710678118654752f));
    }
}

de_status cu_geglu(de_backend *be, const de_geglu_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "geglu";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "geglu: dtype %d", (int)op->dtype);
    if (!op->x || !op->y || op->rows < 0 || op->cols <= 0) return cu_fail(c, DE_ERR_INVALID, "geglu: NULL x/y or bad shape");
    int64_t n = op->rows * op->cols;
    if (n == 0) return DE_OK;
    float *dx, *dy;
    ST_TRY(io_begin(c, name, n * 8, n * 4, false, op->x, op->y, &dx, &dy, 0));
    CU_LAUNCH(grid1d(n, 256), 256, 0, c->stream, k_geglu)(dy, dx, op->rows, op->cols);
    ST_TRY(cu_check_launch(c, name, "geglu"));
    return cu_copy_out(c, op->y, dy, n * 4, name);
}

__global__ void k_binary(float *y, const float *a, const float *b, int64_t n, int64_t b_len, int64_t b_inner, int kind) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float bv = b[(i / b_inner) % b_len], av = a[i];
        y[i] = kind == DE_BINARY_ADD ? av + bv : kind == DE_BINARY_SUB ? av - bv : av * bv;
    }
}

de_status cu_binary(de_backend *be, const de_binary_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "binary";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "binary: dtype %d", (int)op->dtype);
    if (!op->a || !op->b || !op->y || op->n < 0 || op->b_len <= 0 || op->b_inner <= 0)
        return cu_fail(c, DE_ERR_INVALID, "binary: NULL a/b/y or bad n/b_len/b_inner");
    if ((int)op->kind < DE_BINARY_ADD || (int)op->kind > DE_BINARY_MUL) return cu_fail(c, DE_ERR_INVALID, "binary: kind %d", (int)op->kind);
    if (op->n == 0) return DE_OK;
    int64_t nb = op->b_len;
    float *da, *dy;
    ST_TRY(io_begin(c, name, op->n * 4, op->n * 4, op->a == op->y, op->a, op->y, &da, &dy, CU_ALIGN(nb * 4)));
    float *db = (op->b == op->a) ? da : CU_VIEW(c, op->b, nb * 4);
    if (!db) return cu_fail(c, DE_ERR_BACKEND, "binary: internal: arena too small");
    if (op->b != op->a) ST_TRY(cu_copy_in(c, db, op->b, nb * 4, name));
    CU_LAUNCH(grid1d(op->n, 256), 256, 0, c->stream, k_binary)(dy, da, db, op->n, op->b_len, op->b_inner, (int)op->kind);
    ST_TRY(cu_check_launch(c, name, "binary"));
    return cu_copy_out(c, op->y, dy, op->n * 4, name);
}

/* ---- lincomb: y = c0 x0 + c1 x1 + ..., left to right; y may be any x ---- */

struct lc_args { const float *x[4]; float c[4]; };

__global__ void k_lincomb(float *y, lc_args a, int64_t n, int terms) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float acc = a.c[0] * a.x[0][i];
        if (terms > 1) acc = acc + a.c[1] * a.x[1][i];
        if (terms > 2) acc = acc + a.c[2] * a.x[2][i];
        if (terms > 3) acc = acc + a.c[3] * a.x[3][i];
        y[i] = acc;
    }
}

de_status cu_lincomb(de_backend *be, const de_lincomb_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "lincomb";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "lincomb: dtype %d", (int)op->dtype);
    if (op->n < 0 || op->terms < 1 || op->terms > 4 || !op->y)
        return cu_fail(c, DE_ERR_INVALID, "lincomb: n=%lld terms=%d y=%p", (long long)op->n, (int)op->terms, op->y);
    for (int j = 0; j < op->terms; j++)
        if (!op->x[j]) return cu_fail(c, DE_ERR_INVALID, "lincomb: x[%d] is NULL", j);
    if (op->n == 0) return DE_OK;
    const size_t bytes = (size_t)op->n * 4;
    /* arena room for each distinct host operand (a device operand is used in place) */
    size_t need = 0;
    for (int j = 0; j < op->terms; j++) {
        bool seen = false;
        for (int k = 0; k < j; k++) seen = seen || op->x[k] == op->x[j];
        if (!seen && !cu_is_dev(c, op->x[j])) need += CU_ALIGN(bytes);
    }
    if (!cu_is_dev(c, op->y)) need += CU_ALIGN(bytes);
    ST_TRY(cu_arena_begin(c, need, name));
    lc_args a;
    float *dy = NULL;
    for (int j = 0; j < 4; j++) { a.x[j] = NULL; a.c[j] = j < op->terms ? op->c[j] : 0.f; }
    for (int j = 0; j < op->terms; j++) {
        for (int k = 0; k < j && !a.x[j]; k++)
            if (op->x[k] == op->x[j]) a.x[j] = a.x[k];
        if (!a.x[j]) {
            float *d = CU_VIEW(c, op->x[j], bytes);
            if (!d) return cu_fail(c, DE_ERR_BACKEND, "lincomb: internal: arena too small");
            ST_TRY(cu_copy_in(c, d, op->x[j], bytes, name));
            a.x[j] = d;
        }
        if (op->x[j] == op->y) dy = (float *)a.x[j]; /* in place: the operand's view is the output */
    }
    if (!dy) dy = CU_VIEW(c, op->y, bytes);
    if (!dy) return cu_fail(c, DE_ERR_BACKEND, "lincomb: internal: arena too small");
    CU_LAUNCH(grid1d(op->n, 256), 256, 0, c->stream, k_lincomb)(dy, a, op->n, op->terms);
    ST_TRY(cu_check_launch(c, name, "lincomb"));
    return cu_copy_out(c, op->y, dy, bytes, name);
}

__global__ void k_upsample(float *y, const float *x, int64_t planes, int h, int w, int f) {
    int64_t oh = (int64_t)h * f, ow = (int64_t)w * f, n = planes * oh * ow;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t p = i / (oh * ow), rem = i % (oh * ow);
        int64_t yy = rem / ow, xx = rem % ow;
        y[i] = x[p * h * w + (yy / f) * w + xx / f];
    }
}

de_status cu_upsample(de_backend *be, const de_upsample_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "upsample";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "upsample: dtype %d", (int)op->dtype);
    if (!op->x || !op->y || op->planes < 0 || op->h < 0 || op->w < 0 || op->factor <= 0)
        return cu_fail(c, DE_ERR_INVALID, "upsample: NULL x/y or bad shape");
    int64_t nin = op->planes * op->h * op->w, nout = nin * op->factor * op->factor;
    if (nin == 0) return DE_OK;
    float *dx, *dy;
    ST_TRY(io_begin(c, name, nin * 4, nout * 4, false, op->x, op->y, &dx, &dy, 0));
    CU_LAUNCH(grid1d(nout, 256), 256, 0, c->stream, k_upsample)(dy, dx, op->planes, op->h, op->w, op->factor);
    ST_TRY(cu_check_launch(c, name, "upsample"));
    return cu_copy_out(c, op->y, dy, nout * 4, name);
}

de_status cu_transpose(de_backend *be, const de_transpose_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "transpose";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "transpose: dtype %d", (int)op->dtype);
    if (!op->x || !op->y || op->batch < 0 || op->rows < 0 || op->cols < 0 || op->batch > 65535)
        return cu_fail(c, DE_ERR_INVALID, "transpose: NULL x/y or bad shape (batch <= 65535)");
    int64_t n = op->batch * op->rows * op->cols;
    if (n == 0) return DE_OK;
    float *dx, *dy;
    ST_TRY(io_begin(c, name, n * 4, n * 4, false, op->x, op->y, &dx, &dy, 0));
    ST_TRY(cu_transpose_f32(c, dy, dx, op->batch, op->rows, op->cols, name));
    return cu_copy_out(c, op->y, dy, n * 4, name);
}

/* ---- strided copy (up to 4 dims) ---- */

typedef struct { int64_t shape[4], xs[4], ys[4]; } copy_geom;

__global__ void k_copy4(float *__restrict__ y, const float *__restrict__ x, copy_geom g, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i;
        const int64_t i3 = t % g.shape[3]; t /= g.shape[3];
        const int64_t i2 = t % g.shape[2]; t /= g.shape[2];
        const int64_t i1 = t % g.shape[1];
        const int64_t i0 = t / g.shape[1];
        y[i0 * g.ys[0] + i1 * g.ys[1] + i2 * g.ys[2] + i3 * g.ys[3]] = x[i0 * g.xs[0] + i1 * g.xs[1] + i2 * g.xs[2] + i3 * g.xs[3]];
    }
}

/* elements spanned by a strided view (non-negative strides) */
static int64_t span4(const int64_t *shape, const int64_t *stride) {
    int64_t last = 0;
    for (int d = 0; d < 4; d++) last += (shape[d] - 1) * stride[d];
    return last + 1;
}

de_status cu_copy(de_backend *be, const de_copy_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "copy";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "copy: dtype %d", (int)op->dtype);
    if (!op->x || !op->y) return cu_fail(c, DE_ERR_INVALID, "copy: NULL x or y");
    copy_geom g;
    int64_t n = 1;
    for (int d = 0; d < 4; d++) {
        if (op->shape[d] < 0 || op->x_stride[d] < 0 || op->y_stride[d] < 0)
            return cu_fail(c, DE_ERR_INVALID, "copy: negative size or stride in dimension %d", d);
        g.shape[d] = op->shape[d]; g.xs[d] = op->x_stride[d]; g.ys[d] = op->y_stride[d];
        n *= op->shape[d];
    }
    if (n == 0) return DE_OK;
    const int64_t ex = span4(g.shape, g.xs), ey = span4(g.shape, g.ys);
    ST_TRY(cu_arena_begin(c, CU_ALIGN(ex * 4) + CU_ALIGN(ey * 4), name));
    float *dx = CU_VIEW(c, op->x, ex * 4), *dy = CU_VIEW(c, op->y, ey * 4);
    if (!dx || !dy) return cu_fail(c, DE_ERR_BACKEND, "copy: internal: arena too small");
    ST_TRY(cu_copy_in(c, dx, op->x, ex * 4, name));
    ST_TRY(cu_copy_in(c, dy, op->y, ey * 4, name)); /* a host y keeps what lies between the copied elements */
    CU_LAUNCH(grid1d(n, 256), 256, 0, c->stream, k_copy4)(dy, dx, g, n);
    ST_TRY(cu_check_launch(c, name, "copy4"));
    return cu_copy_out(c, op->y, dy, ey * 4, name);
}
