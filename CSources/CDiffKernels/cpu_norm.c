/* cpu_norm.c — group norm (+ fused SiLU), layer norm and row softmax for the CPU provider.
 * Statistics are two-pass (mean, then sum of squared deviations) with float lanes flushed
 * into double accumulators, so large groups (e.g. 40 channels x 4096 pixels) stay accurate. */
#include "cpu_internal.h"

/* ---------------------------------------------------------------- group norm */

typedef struct {
    const float *x; float *y;
    const float *gamma, *beta;
    int32_t c, hw, groups;
    float eps;
    int silu;
} gn_job;

/* one task = one (image, group): x[n, g*cpg : (g+1)*cpg, hw] */
static void gn_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    gn_job *j = va;
    const int32_t cpg = j->c / j->groups;
    const int64_t len = (int64_t)cpg * j->hw;
    for (int64_t t = b; t < e; t++) {
        const int64_t ni = t / j->groups, g = t % j->groups;
        const int64_t off = (ni * j->c + g * cpg) * (int64_t)j->hw;
        const float *x = j->x + off;
        float *y = j->y + off;
        const float mean = (float)(de_sum_f64(x, len) / (double)len);
        const double var = de_sumsq_dev_f64(x, len, mean) / (double)len;
        const float rstd = (float)(1.0 / sqrt(var + (double)j->eps));
        for (int32_t cc = 0; cc < cpg; cc++) {
            const int64_t ch = g * cpg + cc;
            const float ga = j->gamma ? j->gamma[ch] : 1.0f, be = j->beta ? j->beta[ch] : 0.0f;
            const float a = rstd * ga, bb = be - mean * a;
            const float *xs = x + (int64_t)cc * j->hw;
            float *ys = y + (int64_t)cc * j->hw;
            if (j->silu) for (int32_t p = 0; p < j->hw; p++) ys[p] = de_siluf(xs[p] * a + bb);
            else for (int32_t p = 0; p < j->hw; p++) ys[p] = xs[p] * a + bb;
        }
    }
}

de_status cpu_group_norm(de_backend *be, const de_group_norm_op *op) {
    CPU_BEGIN("group_norm")
    CPU_CHECK(op->n > 0 && op->c > 0 && op->hw > 0, "group_norm", "shape [n, c, hw] must be positive (got [%d, %d, %d])", op->n, op->c, op->hw);
    CPU_CHECK(op->groups > 0, "group_norm", "groups must be positive (got %d)", op->groups);
    CPU_CHECK(op->c % op->groups == 0, "group_norm", "c %d is not a multiple of groups %d", op->c, op->groups);
    CPU_CHECK(op->eps >= 0, "group_norm", "eps must be non-negative (got %g)", (double)op->eps);
    CPU_CHECK(op->x != NULL, "group_norm", "x is NULL");
    CPU_CHECK(op->y != NULL, "group_norm", "y is NULL");
    {
        gn_job j = { op->x, op->y, op->gamma, op->beta, op->c, op->hw, op->groups, op->eps, op->silu ? 1 : 0 };
        de_pool_for(&ctx->pool, (int64_t)op->n * op->groups, 1, gn_task, &j);
    }
out__:
    CPU_END()
}

/* ---------------------------------------------------------------- layer norm */

typedef struct {
    const float *x; float *y;
    const float *gamma, *beta;
    int32_t cols;
    float eps;
} ln_job;

static void ln_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    ln_job *j = va;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * j->cols;
        float *y = j->y + r * j->cols;
        const float mean = (float)(de_sum_f64(x, j->cols) / (double)j->cols);
        const double var = de_sumsq_dev_f64(x, j->cols, mean) / (double)j->cols;
        const float rstd = (float)(1.0 / sqrt(var + (double)j->eps));
        if (j->gamma && j->beta)
            for (int32_t i = 0; i < j->cols; i++) y[i] = (x[i] - mean) * rstd * j->gamma[i] + j->beta[i];
        else if (j->gamma)
            for (int32_t i = 0; i < j->cols; i++) y[i] = (x[i] - mean) * rstd * j->gamma[i];
        else if (j->beta)
            for (int32_t i = 0; i < j->cols; i++) y[i] = (x[i] - mean) * rstd + j->beta[i];
        else
            for (int32_t i = 0; i < j->cols; i++) y[i] = (x[i] - mean) * rstd;
    }
}

de_status cpu_layer_norm(de_backend *be, const de_layer_norm_op *op) {
    CPU_BEGIN("layer_norm")
    CPU_CHECK(op->rows > 0 && op->cols > 0, "layer_norm", "rows and cols must be positive (got rows=%lld cols=%d)", (long long)op->rows, op->cols);
    CPU_CHECK(op->eps >= 0, "layer_norm", "eps must be non-negative (got %g)", (double)op->eps);
    CPU_CHECK(op->x != NULL, "layer_norm", "x is NULL");
    CPU_CHECK(op->y != NULL, "layer_norm", "y is NULL");
    {
        ln_job j = { op->x, op->y, op->gamma, op->beta, op->cols, op->eps };
        int64_t grain = (1 << 15) / op->cols + 1;
        de_pool_for(&ctx->pool, op->rows, grain, ln_task, &j);
    }
out__:
    CPU_END()
}

/* ---------------------------------------------------------------- softmax */

typedef struct { const float *x; float *y; int32_t cols; float scale; } sm_job;

/* y = softmax(scale * x) on one row; y may alias x */
static void softmax_row(const float *x, float *y, int32_t n, float scale) {
    float mx, mn;
    mx = de_max_f32(x, n);
    {   /* min as -max(-x) for negative scales */
        float m = -x[0];
        for (int32_t i = 1; i < n; i++) m = -x[i] > m ? -x[i] : m;
        mn = -m;
    }
    const float ref = scale >= 0 ? mx * scale : mn * scale; /* max of scale*x */
    float sum[16] = {0};
    int32_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) { float v = de_expf(x[i + k] * scale - ref); y[i + k] = v; sum[k] += v; }
    for (; i < n; i++) { float v = de_expf(x[i] * scale - ref); y[i] = v; sum[0] += v; }
    double s = 0;
    for (int k = 0; k < 16; k++) s += sum[k];
    const float inv = (float)(1.0 / s);
    for (i = 0; i < n; i++) y[i] *= inv;
}

static void sm_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    sm_job *j = va;
    for (int64_t r = b; r < e; r++) softmax_row(j->x + r * j->cols, j->y + r * j->cols, j->cols, j->scale);
}

de_status cpu_softmax(de_backend *be, const de_softmax_op *op) {
    CPU_BEGIN("softmax")
    CPU_CHECK(op->rows > 0 && op->cols > 0, "softmax", "rows and cols must be positive (got rows=%lld cols=%d)", (long long)op->rows, op->cols);
    CPU_CHECK(op->x != NULL, "softmax", "x is NULL");
    CPU_CHECK(op->y != NULL, "softmax", "y is NULL");
    CPU_CHECK(isfinite(op->scale), "softmax", "scale is not finite");
    {
        sm_job j = { op->x, op->y, op->cols, op->scale };
        int64_t grain = (1 << 15) / op->cols + 1;
        de_pool_for(&ctx->pool, op->rows, grain, sm_task, &j);
    }
out__:
    CPU_END()
}
