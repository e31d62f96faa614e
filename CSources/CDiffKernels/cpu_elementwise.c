/* cpu_elementwise.c — unary activations, GEGLU, broadcast binary ops, nearest upsample,
 * batched transpose, strided copy and lincomb for the CPU provider. All loops are plain C the compiler vectorizes
 * (activations use the libm-free approximations in cpu_internal.h). */
#include "cpu_internal.h"

#define EW_GRAIN (1 << 16)

/* ---------------------------------------------------------------- unary */

typedef struct { const float *x; float *y; de_unary_kind kind; float alpha, beta; } un_job;

static void un_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    un_job *j = va;
    const float *x = j->x;
    float *y = j->y;
    switch (j->kind) {
    case DE_UNARY_SILU: for (int64_t i = b; i < e; i++) y[i] = de_siluf(x[i]); break;
    case DE_UNARY_GELU: for (int64_t i = b; i < e; i++) y[i] = de_geluf(x[i]); break;
    case DE_UNARY_GELU_TANH: for (int64_t i = b; i < e; i++) y[i] = de_gelu_tanhf(x[i]); break;
    case DE_UNARY_QUICK_GELU: for (int64_t i = b; i < e; i++) y[i] = de_quick_geluf(x[i]); break;
    case DE_UNARY_SCALE: {
        const float a = j->alpha, c = j->beta;
        for (int64_t i = b; i < e; i++) y[i] = a * x[i] + c;
        break;
    }
    }
}

de_status cpu_unary(de_backend *be, const de_unary_op *op) {
    CPU_BEGIN("unary")
    CPU_CHECK(op->kind >= DE_UNARY_SILU && op->kind <= DE_UNARY_SCALE, "unary", "unknown kind %d", (int)op->kind);
    CPU_CHECK(op->n > 0, "unary", "n must be positive (got %lld)", (long long)op->n);
    CPU_CHECK(op->x != NULL, "unary", "x is NULL");
    CPU_CHECK(op->y != NULL, "unary", "y is NULL");
    {
        un_job j = { op->x, op->y, op->kind, op->alpha, op->beta };
        de_pool_for(&ctx->pool, op->n, EW_GRAIN, un_task, &j);
    }
out__:
    CPU_END()
}

/* ---------------------------------------------------------------- geglu */

typedef struct { const float *x; float *y; int32_t cols; } gg_job;

static void gg_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    gg_job *j = va;
    const int32_t c = j->cols;
    for (int64_t r = b; r < e; r++) {
        const float *xa = j->x + r * 2 * c, *xg = xa + c;
        float *y = j->y + r * c;
        for (int32_t i = 0; i < c; i++) y[i] = xa[i] * de_geluf(xg[i]);
    }
}

de_status cpu_geglu(de_backend *be, const de_geglu_op *op) {
    CPU_BEGIN("geglu")
    CPU_CHECK(op->rows > 0 && op->cols > 0, "geglu", "rows and cols must be positive (got rows=%lld cols=%d)", (long long)op->rows, op->cols);
    CPU_CHECK(op->x != NULL, "geglu", "x is NULL");
    CPU_CHECK(op->y != NULL, "geglu", "y is NULL");
    CPU_CHECK(op->y != op->x, "geglu", "y aliases x");
    {
        gg_job j = { op->x, op->y, op->cols };
        de_pool_for(&ctx->pool, op->rows, EW_GRAIN / op->cols + 1, gg_task, &j);
    }
out__:
    CPU_END()
}

/* ---------------------------------------------------------------- binary */

/* y[i] = a[i] (op) b[(i / b_inner) % b_len]. Work is split into units of `unit` elements that
 * share one pattern: b_inner == 1: unit = b_len (y row = a row (op) b); else unit = b_inner
 * (y segment = a segment (op) scalar). */
typedef struct { const float *a, *b; float *y; int64_t n, b_len, b_inner, unit; de_binary_kind kind; } bin_job;

static void bin_task(void *va, int64_t ub, int64_t ue, int tid) {
    (void)tid;
    bin_job *j = va;
    for (int64_t u = ub; u < ue; u++) {
        const int64_t s = u * j->unit, len = s + j->unit <= j->n ? j->unit : j->n - s;
        const float *a = j->a + s;
        float *y = j->y + s;
        if (j->b_inner == 1) {
            const float *b = j->b;
            switch (j->kind) {
            case DE_BINARY_ADD: for (int64_t i = 0; i < len; i++) y[i] = a[i] + b[i]; break;
            case DE_BINARY_SUB: for (int64_t i = 0; i < len; i++) y[i] = a[i] - b[i]; break;
            case DE_BINARY_MUL: for (int64_t i = 0; i < len; i++) y[i] = a[i] * b[i]; break;
            }
        } else {
            const float bv = j->b[u % j->b_len];
            switch (j->kind) {
            case DE_BINARY_ADD: for (int64_t i = 0; i < len; i++) y[i] = a[i] + bv; break;
            case DE_BINARY_SUB: for (int64_t i = 0; i < len; i++) y[i] = a[i] - bv; break;
            case DE_BINARY_MUL: for (int64_t i = 0; i < len; i++) y[i] = a[i] * bv; break;
            }
        }
    }
}

/* plain elementwise (b_len >= n, b_inner == 1) split into flat chunks */
static void bin_flat_task(void *va, int64_t s, int64_t e, int tid) {
    (void)tid;
    bin_job *j = va;
    const float *a = j->a, *b = j->b;
    float *y = j->y;
    switch (j->kind) {
    case DE_BINARY_ADD: for (int64_t i = s; i < e; i++) y[i] = a[i] + b[i]; break;
    case DE_BINARY_SUB: for (int64_t i = s; i < e; i++) y[i] = a[i] - b[i]; break;
    case DE_BINARY_MUL: for (int64_t i = s; i < e; i++) y[i] = a[i] * b[i]; break;
    }
}

de_status cpu_binary(de_backend *be, const de_binary_op *op) {
    CPU_BEGIN("binary")
    CPU_CHECK(op->kind >= DE_BINARY_ADD && op->kind <= DE_BINARY_MUL, "binary", "unknown kind %d", (int)op->kind);
    CPU_CHECK(op->n > 0, "binary", "n must be positive (got %lld)", (long long)op->n);
    CPU_CHECK(op->b_len > 0, "binary", "b_len must be positive (got %lld)", (long long)op->b_len);
    CPU_CHECK(op->b_inner > 0, "binary", "b_inner must be positive (got %lld)", (long long)op->b_inner);
    CPU_CHECK(op->a != NULL, "binary", "a is NULL");
    CPU_CHECK(op->b != NULL, "binary", "b is NULL");
    CPU_CHECK(op->y != NULL, "binary", "y is NULL");
    {
        bin_job j = { op->a, op->b, op->y, op->n, op->b_len, op->b_inner, 0, op->kind };
        if (op->b_inner == 1 && op->b_len >= op->n) {
            de_pool_for(&ctx->pool, op->n, EW_GRAIN, bin_flat_task, &j);
        } else {
            j.unit = op->b_inner == 1 ? op->b_len : op->b_inner;
            const int64_t units = (op->n + j.unit - 1) / j.unit;
            de_pool_for(&ctx->pool, units, EW_GRAIN / j.unit + 1, bin_task, &j);
        }
    }
out__:
    CPU_END()
}

/* ---------------------------------------------------------------- upsample */

typedef struct { const float *x; float *y; int32_t h, w, f; } up_job;

static void up_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    up_job *j = va;
    const int32_t f = j->f, ow = j->w * f;
    for (int64_t p = b; p < e; p++) {
        const float *x = j->x + p * j->h * j->w;
        float *y = j->y + p * (int64_t)j->h * f * ow;
        for (int32_t iy = 0; iy < j->h; iy++) {
            float *row = y + (int64_t)iy * f * ow;
            const float *xr = x + (int64_t)iy * j->w;
            if (f == 2) for (int32_t ix = 0; ix < j->w; ix++) { row[2 * ix] = xr[ix]; row[2 * ix + 1] = xr[ix]; }
            else for (int32_t ox = 0; ox < ow; ox++) row[ox] = xr[ox / f];
            for (int32_t r = 1; r < f; r++) memcpy(row + (int64_t)r * ow, row, sizeof(float) * (size_t)ow);
        }
    }
}

de_status cpu_upsample(de_backend *be, const de_upsample_op *op) {
    CPU_BEGIN("upsample")
    CPU_CHECK(op->planes > 0 && op->h > 0 && op->w > 0, "upsample", "planes, h, w must be positive (got %lld, %d, %d)",
              (long long)op->planes, op->h, op->w);
    CPU_CHECK(op->factor > 0, "upsample", "factor must be positive (got %d)", op->factor);
    CPU_CHECK(op->x != NULL, "upsample", "x is NULL");
    CPU_CHECK(op->y != NULL, "upsample", "y is NULL");
    CPU_CHECK(op->y != op->x, "upsample", "y aliases x");
    {
        up_job j = { op->x, op->y, op->h, op->w, op->factor };
        int64_t per = (int64_t)op->h * op->w * op->factor * op->factor;
        de_pool_for(&ctx->pool, op->planes, EW_GRAIN / per + 1, up_task, &j);
    }
out__:
    CPU_END()
}

/* ---------------------------------------------------------------- transpose */

#define TT 32
typedef struct { const float *x; float *y; int32_t rows, cols, rt, ct; } tr_job;

/* one task = one TT-row stripe of one batch item: x[b, r0:r0+TT, :] -> y[b, :, r0:r0+TT] */
static void tr_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    tr_job *j = va;
    const int64_t plane = (int64_t)j->rows * j->cols;
    for (int64_t t = b; t < e; t++) {
        const int64_t bi = t / j->rt, r0 = (t % j->rt) * TT;
        const int32_t r1 = r0 + TT < j->rows ? (int32_t)r0 + TT : j->rows;
        const float *x = j->x + bi * plane;
        float *y = j->y + bi * plane;
        for (int32_t c0 = 0; c0 < j->cols; c0 += TT) {
            const int32_t c1 = c0 + TT < j->cols ? c0 + TT : j->cols;
            for (int32_t c = c0; c < c1; c++)
                for (int32_t r = (int32_t)r0; r < r1; r++)
                    y[(int64_t)c * j->rows + r] = x[(int64_t)r * j->cols + c];
        }
    }
}

de_status cpu_transpose(de_backend *be, const de_transpose_op *op) {
    CPU_BEGIN("transpose")
    CPU_CHECK(op->batch > 0 && op->rows > 0 && op->cols > 0, "transpose", "batch, rows, cols must be positive (got %lld, %d, %d)",
              (long long)op->batch, op->rows, op->cols);
    CPU_CHECK(op->x != NULL, "transpose", "x is NULL");
    CPU_CHECK(op->y != NULL, "transpose", "y is NULL");
    CPU_CHECK(op->y != op->x, "transpose", "y aliases x");
    {
        tr_job j = { op->x, op->y, op->rows, op->cols, (op->rows + TT - 1) / TT, (op->cols + TT - 1) / TT };
        de_pool_for(&ctx->pool, op->batch * j.rt, 0, tr_task, &j);
    }
out__:
    CPU_END()
}

/* ---------------------------------------------------------------- strided copy */

typedef struct { const float *x; float *y; int64_t shape[4], xs[4], ys[4]; } cp_job;

/* one task = one (i0, i1, i2) row of the innermost dimension */
static void cp_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    cp_job *j = va;
    const int64_t n3 = j->shape[3];
    for (int64_t t = b; t < e; t++) {
        const int64_t i2 = t % j->shape[2], i1 = (t / j->shape[2]) % j->shape[1], i0 = t / (j->shape[2] * j->shape[1]);
        const float *x = j->x + i0 * j->xs[0] + i1 * j->xs[1] + i2 * j->xs[2];
        float *y = j->y + i0 * j->ys[0] + i1 * j->ys[1] + i2 * j->ys[2];
        if (j->xs[3] == 1 && j->ys[3] == 1) memcpy(y, x, (size_t)n3 * sizeof(float));
        else for (int64_t i = 0; i < n3; i++) y[i * j->ys[3]] = x[i * j->xs[3]];
    }
}

de_status cpu_copy_op(de_backend *be, const de_copy_op *op) {
    CPU_BEGIN("copy")
    CPU_CHECK(op->x != NULL && op->y != NULL, "copy", "x or y is NULL");
    CPU_CHECK(op->shape[0] >= 0 && op->shape[1] >= 0 && op->shape[2] >= 0 && op->shape[3] >= 0, "copy",
              "negative dimension in [%lld, %lld, %lld, %lld]", (long long)op->shape[0], (long long)op->shape[1],
              (long long)op->shape[2], (long long)op->shape[3]);
    {
        cp_job j = { op->x, op->y, { 0 }, { 0 }, { 0 } };
        for (int d = 0; d < 4; d++) { j.shape[d] = op->shape[d]; j.xs[d] = op->x_stride[d]; j.ys[d] = op->y_stride[d]; }
        const int64_t rows = j.shape[0] * j.shape[1] * j.shape[2];
        if (rows > 0 && j.shape[3] > 0) de_pool_for(&ctx->pool, rows, EW_GRAIN / j.shape[3] + 1, cp_task, &j);
    }
out__:
    CPU_END()
}

/* ---------------------------------------------------------------- lincomb */

/* y = c0 x0 + c1 x1 + ..., left to right; y may be any x (each element is read before it is written).
 * One code path for every caller (plain and staged CPU alike). */
typedef struct { const float *x[4]; float c[4]; float *y; int terms; } lc_job;

static void lc_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    const lc_job *j = va;
    const float c0 = j->c[0], c1 = j->c[1], c2 = j->c[2], c3 = j->c[3];
    const float *x0 = j->x[0], *x1 = j->x[1], *x2 = j->x[2], *x3 = j->x[3];
    float *y = j->y;
    switch (j->terms) {
    case 1:
        for (int64_t i = b; i < e; i++) y[i] = c0 * x0[i];
        break;
    case 2:
        for (int64_t i = b; i < e; i++) { float acc = c0 * x0[i]; acc = acc + c1 * x1[i]; y[i] = acc; }
        break;
    case 3:
        for (int64_t i = b; i < e; i++) {
            float acc = c0 * x0[i];
            acc = acc + c1 * x1[i];
            acc = acc + c2 * x2[i];
            y[i] = acc;
        }
        break;
    default:
        for (int64_t i = b; i < e; i++) {
            float acc = c0 * x0[i];
            acc = acc + c1 * x1[i];
            acc = acc + c2 * x2[i];
            acc = acc + c3 * x3[i];
            y[i] = acc;
        }
        break;
    }
}

de_status cpu_lincomb(de_backend *be, const de_lincomb_op *op) {
    CPU_BEGIN("lincomb")
    CPU_CHECK(op->n >= 0, "lincomb", "n must not be negative (got %lld)", (long long)op->n);
    CPU_CHECK(op->terms >= 1 && op->terms <= 4, "lincomb", "terms must be 1...4 (got %d)", (int)op->terms);
    CPU_CHECK(op->y != NULL, "lincomb", "y is NULL");
    for (int t = 0; t < op->terms; t++) CPU_CHECK(op->x[t] != NULL, "lincomb", "x[%d] is NULL", t);
    {
        lc_job j = { { NULL, NULL, NULL, NULL }, { 0, 0, 0, 0 }, op->y, op->terms };
        for (int t = 0; t < op->terms; t++) { j.x[t] = op->x[t]; j.c[t] = op->c[t]; }
        if (op->n > 0) de_pool_for(&ctx->pool, op->n, EW_GRAIN, lc_task, &j);
    }
out__:
    CPU_END()
}
