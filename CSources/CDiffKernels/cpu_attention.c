/* cpu_attention.c — fused flash-style attention for the CPU provider.
 *
 * One task = (batch b, head h, block of BQ queries). For each block of BK keys:
 *   S[bq, bk]  = scale * Q[bq, D] @ K[bk, D]^T          (sgemm, OpenBLAS single-threaded)
 *   online softmax: m_i = max(m_i, max_j S_ij); P = exp(S - m_i); l_i = l_i * c + sum_j P_ij;
 *                   O_i *= c where c = exp(m_old - m_new)
 *   O[bq, D]  += P[bq, bk] @ V[bk, D]                    (sgemm)
 * then o = O / l. Memory per thread: BQ*BK + BQ*D (+ packed copies when a token stride is
 * smaller than head_dim). Never allocates [q_len, kv_len].
 */
#include "cpu_internal.h"

#include <cblas.h>

#define BQ 64
#define BK 256

typedef struct {
    const de_attention_op *op;
    cpu_ctx *ctx;
    int32_t nqb;        /* query blocks per (b, h) */
    size_t per_thread;  /* floats of scratch per thread */
} attn_job;

/* copy rows [n, D] with token stride st into dst [n, D] */
static void pack_rows(const float *src, int64_t st, int32_t n, int32_t d, float *dst) {
    for (int32_t i = 0; i < n; i++) memcpy(dst + (int64_t)i * d, src + i * st, sizeof(float) * (size_t)d);
}

static void attn_task(void *va, int64_t tb, int64_t te, int tid) {
    attn_job *j = va;
    const de_attention_op *op = j->op;
    const int32_t D = op->head_dim, Lk = op->kv_len;
    float *scr = j->ctx->per_thread[tid].ptr;
    float *S = scr;                          /* [BQ, BK] */
    float *O = S + BQ * BK;                  /* [BQ, D] */
    float *m = O + (size_t)BQ * D;           /* [BQ] */
    float *l = m + BQ;                       /* [BQ] */
    float *qp = l + BQ;                      /* [BQ, D] packed q when needed */
    float *kp = qp + (size_t)BQ * D;         /* [BK, D] packed k when needed */
    float *vp = kp + (size_t)BK * D;         /* [BK, D] packed v when needed */
    const float *Q = op->q, *K = op->k, *V = op->v;
    float *Out = op->o;

    for (int64_t t = tb; t < te; t++) {
        const int64_t bh = t / j->nqb;
        const int32_t qb = (int32_t)(t % j->nqb);
        const int64_t b = bh / op->heads, h = bh % op->heads;
        const int32_t q0 = qb * BQ, bq = op->q_len - q0 < BQ ? op->q_len - q0 : BQ;
        const float *q = Q + b * op->q_sb + h * op->q_sh + (int64_t)q0 * op->q_st;
        const float *kbase = K + b * op->k_sb + h * op->k_sh;
        const float *vbase = V + b * op->v_sb + h * op->v_sh;
        int64_t ldq = op->q_st;
        if (op->q_st < D) { pack_rows(q, op->q_st, bq, D, qp); q = qp; ldq = D; }

        memset(O, 0, sizeof(float) * (size_t)bq * D);
        for (int32_t i = 0; i < bq; i++) { m[i] = -INFINITY; l[i] = 0.0f; }

        for (int32_t k0 = 0; k0 < Lk; k0 += BK) {
            const int32_t bk = Lk - k0 < BK ? Lk - k0 : BK;
            const float *k = kbase + (int64_t)k0 * op->k_st;
            const float *v = vbase + (int64_t)k0 * op->v_st;
            int64_t ldk = op->k_st, ldv = op->v_st;
            if (op->k_st < D) { pack_rows(k, op->k_st, bk, D, kp); k = kp; ldk = D; }
            if (op->v_st < D) { pack_rows(v, op->v_st, bk, D, vp); v = vp; ldv = D; }
            /* S[bq, bk] = scale * q @ k^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, bk, D, op->scale, q, (int)ldq, k, (int)ldk,
                        0.0f, S, BK);
            for (int32_t i = 0; i < bq; i++) {
                float *s = S + (int64_t)i * BK;
                const float mx = de_max_f32(s, bk);
                const float mnew = mx > m[i] ? mx : m[i];
                float acc[16] = {0};
                int32_t jj = 0;
                for (; jj + 16 <= bk; jj += 16)
                    for (int u = 0; u < 16; u++) { float p = de_expf(s[jj + u] - mnew); s[jj + u] = p; acc[u] += p; }
                for (; jj < bk; jj++) { float p = de_expf(s[jj] - mnew); s[jj] = p; acc[0] += p; }
                float sum = 0;
                for (int u = 0; u < 16; u++) sum += acc[u];
                if (m[i] == -INFINITY) {
                    l[i] = sum;
                } else {
                    const float c = de_expf(m[i] - mnew);
                    l[i] = l[i] * c + sum;
                    if (c != 1.0f) {
                        float *oi = O + (int64_t)i * D;
                        for (int32_t d = 0; d < D; d++) oi[d] *= c;
                    }
                }
                m[i] = mnew;
            }
            /* O[bq, D] += P[bq, bk] @ v[bk, D] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, D, bk, 1.0f, S, BK, v, (int)ldv,
                        1.0f, O, D);
        }
        float *o = Out + b * op->o_sb + h * op->o_sh + (int64_t)q0 * op->o_st;
        for (int32_t i = 0; i < bq; i++) {
            const float inv = 1.0f / l[i];
            const float *oi = O + (int64_t)i * D;
            float *dst = o + (int64_t)i * op->o_st;
            for (int32_t d = 0; d < D; d++) dst[d] = oi[d] * inv;
        }
    }
}

de_status cpu_attention(de_backend *be, const de_attention_op *op) {
    CPU_BEGIN("attention")
    CPU_CHECK(op->batch > 0 && op->heads > 0, "attention", "batch and heads must be positive (got batch=%d heads=%d)", op->batch, op->heads);
    CPU_CHECK(op->q_len > 0 && op->kv_len > 0, "attention", "q_len and kv_len must be positive (got q_len=%d kv_len=%d)", op->q_len, op->kv_len);
    CPU_CHECK(op->head_dim > 0, "attention", "head_dim must be positive (got %d)", op->head_dim);
    CPU_CHECK(op->q != NULL, "attention", "q is NULL");
    CPU_CHECK(op->k != NULL, "attention", "k is NULL");
    CPU_CHECK(op->v != NULL, "attention", "v is NULL");
    CPU_CHECK(op->o != NULL, "attention", "o is NULL");
    CPU_CHECK(op->q_sb >= 0 && op->q_sh >= 0 && op->q_st >= 0, "attention", "q strides must be non-negative");
    CPU_CHECK(op->k_sb >= 0 && op->k_sh >= 0 && op->k_st >= 0, "attention", "k strides must be non-negative");
    CPU_CHECK(op->v_sb >= 0 && op->v_sh >= 0 && op->v_st >= 0, "attention", "v strides must be non-negative");
    CPU_CHECK(op->o_sb >= 0 && op->o_sh >= 0 && op->o_st >= op->head_dim, "attention",
              "o strides must be non-negative and o_st (%lld) >= head_dim (%d)", (long long)op->o_st, op->head_dim);
    CPU_CHECK(isfinite(op->scale), "attention", "scale is not finite");
    {
        const int32_t D = op->head_dim;
        const size_t need = (size_t)BQ * BK + (size_t)BQ * D + 2 * BQ + (size_t)BQ * D + 2 * (size_t)BK * D + 64;
        for (int t = 0; t < ctx->n_threads; t++)
            if (!de_scratch_get(&ctx->per_thread[t], need)) {
                st__ = cpu_fail(ctx, DE_ERR_OOM, "attention: out of memory for scratch (%zu floats per thread)", need);
                goto out__;
            }
        attn_job j = { op, ctx, (op->q_len + BQ - 1) / BQ, need };
        const int64_t tasks = (int64_t)op->batch * op->heads * j.nqb;
        cpu_blas_single(ctx);
        de_pool_for(&ctx->pool, tasks, 1, attn_task, &j);
        cpu_blas_restore(ctx);
    }
out__:
    CPU_END()
}
