/* cpu_attention.c — fused flash-style attention for the CPU provider.
 *
 * One task = (batch b, head h, block of BQ queries). Per task:
 *   Qp[BQ, D]   = scale * q rows (packed, zero-padded)
 *   for each block of BK keys:
 *     KT[D, BKp] = k block transposed (packed, zero-padded; BKp = bk rounded up to 16)
 *     Vp[BKp, Dp] = v block (packed, zero-padded; Dp = D rounded up to 16)
 *     S[BQ, BKp]  = Qp @ KT                                  (4x16 register-tiled kernel)
 *     online softmax per row: m_new = max(m, max_j S); P = exp(S - m_new);
 *                             l = l * c + sum_j P; O *= c, with c = exp(m - m_new)
 *     O[BQ, Dp]  += P @ Vp                                   (same kernel, accumulating)
 *   o = O / l
 * Scratch per thread: BQ*BK + BQ*Dp + D*BK + BK*Dp + BQ*D + 2*BQ floats. Never [q_len, kv_len].
 * Works for any element strides (q/k/v rows are gathered by the packing step).
 */
#include "cpu_internal.h"

#define BQ 64   /* queries per task (multiple of MR) */
#define BK 128  /* keys per block (multiple of NR) */
#define MR 4
#define NR 16

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* C[MR, NR] (=|+=) A[MR, K] @ B[K, NR]; A row stride lda, B row stride ldb, C row stride ldc. */
static inline void kern_4x16(const float *restrict a, int64_t lda, const float *restrict b, int64_t ldb, int32_t K,
                             float *restrict c, int64_t ldc, int accumulate) {
    float acc[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) acc[r][j] = accumulate ? c[r * ldc + j] : 0.0f;
    for (int32_t k = 0; k < K; k++) {
        const float *br = b + (int64_t)k * ldb;
        for (int r = 0; r < MR; r++) {
            const float av = a[r * lda + k];
            for (int j = 0; j < NR; j++) acc[r][j] += av * br[j];
        }
    }
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) c[r * ldc + j] = acc[r][j];
}

typedef struct {
    const de_attention_op *op;
    cpu_ctx *ctx;
    int32_t nqb;        /* query blocks per (b, h) */
    int32_t dp;         /* head_dim rounded up to NR */
} attn_job;

static void attn_task(void *va, int64_t tb, int64_t te, int tid) {
    attn_job *j = va;
    const de_attention_op *op = j->op;
    const int32_t D = op->head_dim, Dp = j->dp, Lk = op->kv_len;
    float *S = j->ctx->per_thread[tid].ptr;        /* [BQ, BK] */
    float *O = S + (size_t)BQ * BK;                /* [BQ, Dp] */
    float *KT = O + (size_t)BQ * Dp;               /* [D, BK] */
    float *Vp = KT + (size_t)D * BK;               /* [BK, Dp] */
    float *Qp = Vp + (size_t)BK * Dp;              /* [BQ, D] */
    float *m = Qp + (size_t)BQ * D;                /* [BQ] */
    float *l = m + BQ;                             /* [BQ] */
    const float *Q = op->q, *K = op->k, *V = op->v;
    float *Out = op->o;
    const float scale = op->scale;

    for (int64_t t = tb; t < te; t++) {
        const int64_t bh = t / j->nqb;
        const int32_t qb = (int32_t)(t % j->nqb);
        const int64_t b = bh / op->heads, h = bh % op->heads;
        const int32_t q0 = qb * BQ, bq = op->q_len - q0 < BQ ? op->q_len - q0 : BQ;
        const int32_t bqp = (int32_t)round_up(bq, MR);
        const float *q = Q + b * op->q_sb + h * op->q_sh + (int64_t)q0 * op->q_st;
        const float *kbase = K + b * op->k_sb + h * op->k_sh;
        const float *vbase = V + b * op->v_sb + h * op->v_sh;

        /* Qp[bqp, D] = scale * q (rows past bq zero) */
        for (int32_t i = 0; i < bqp; i++) {
            float *dst = Qp + (int64_t)i * D;
            if (i < bq) { const float *src = q + (int64_t)i * op->q_st; for (int32_t d = 0; d < D; d++) dst[d] = src[d] * scale; }
            else memset(dst, 0, sizeof(float) * (size_t)D);
        }
        memset(O, 0, sizeof(float) * (size_t)bqp * Dp);
        for (int32_t i = 0; i < bqp; i++) { m[i] = -INFINITY; l[i] = 0.0f; }

        for (int32_t k0 = 0; k0 < Lk; k0 += BK) {
            const int32_t bk = Lk - k0 < BK ? Lk - k0 : BK;
            const int32_t bkp = (int32_t)round_up(bk, NR);
            /* KT[D, bkp] = k[k0 : k0 + bk, :]^T ; Vp[bkp, Dp] = v rows, zero-padded */
            for (int32_t jj = 0; jj < bkp; jj++) {
                float *vd = Vp + (int64_t)jj * Dp;
                if (jj < bk) {
                    const float *kr = kbase + (int64_t)(k0 + jj) * op->k_st;
                    const float *vr = vbase + (int64_t)(k0 + jj) * op->v_st;
                    for (int32_t d = 0; d < D; d++) KT[(int64_t)d * BK + jj] = kr[d];
                    memcpy(vd, vr, sizeof(float) * (size_t)D);
                    for (int32_t d = D; d < Dp; d++) vd[d] = 0.0f;
                } else {
                    for (int32_t d = 0; d < D; d++) KT[(int64_t)d * BK + jj] = 0.0f;
                    memset(vd, 0, sizeof(float) * (size_t)Dp);
                }
            }
            /* S[bqp, bkp] = Qp @ KT */
            for (int32_t i0 = 0; i0 < bqp; i0 += MR)
                for (int32_t c0 = 0; c0 < bkp; c0 += NR)
                    kern_4x16(Qp + (int64_t)i0 * D, D, KT + c0, BK, D, S + (int64_t)i0 * BK + c0, BK, 0);
            /* online softmax over the first bk columns; padded columns get P = 0 */
            for (int32_t i = 0; i < bq; i++) {
                float *s = S + (int64_t)i * BK;
                const float mx = de_max_f32(s, bk);
                const float mnew = mx > m[i] ? mx : m[i];
                float acc[16] = {0};
                int32_t jj = 0;
                for (; jj + 16 <= bk; jj += 16)
                    for (int u = 0; u < 16; u++) { float p = de_expf(s[jj + u] - mnew); s[jj + u] = p; acc[u] += p; }
                for (; jj < bk; jj++) { float p = de_expf(s[jj] - mnew); s[jj] = p; acc[0] += p; }
                for (; jj < bkp; jj++) s[jj] = 0.0f;
                float sum = 0;
                for (int u = 0; u < 16; u++) sum += acc[u];
                if (m[i] == -INFINITY) {
                    l[i] = sum;
                } else {
                    const float c = de_expf(m[i] - mnew);
                    l[i] = l[i] * c + sum;
                    if (c != 1.0f) {
                        float *oi = O + (int64_t)i * Dp;
                        for (int32_t d = 0; d < Dp; d++) oi[d] *= c;
                    }
                }
                m[i] = mnew;
            }
            for (int32_t i = bq; i < bqp; i++) memset(S + (int64_t)i * BK, 0, sizeof(float) * (size_t)bkp);
            /* O[bqp, Dp] += P[bqp, bkp] @ Vp[bkp, Dp] */
            for (int32_t i0 = 0; i0 < bqp; i0 += MR)
                for (int32_t c0 = 0; c0 < Dp; c0 += NR)
                    kern_4x16(S + (int64_t)i0 * BK, BK, Vp + c0, Dp, bkp, O + (int64_t)i0 * Dp + c0, Dp, 1);
        }
        float *o = Out + b * op->o_sb + h * op->o_sh + (int64_t)q0 * op->o_st;
        for (int32_t i = 0; i < bq; i++) {
            const float inv = 1.0f / l[i];
            const float *oi = O + (int64_t)i * Dp;
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
    CPU_CHECK(op->o_sb >= 0 && op->o_sh >= 0 && op->o_st >= 0, "attention", "o strides must be non-negative");
    CPU_CHECK(isfinite(op->scale), "attention", "scale is not finite");
    {
        const int32_t D = op->head_dim, Dp = (int32_t)round_up(D, NR);
        const size_t need = (size_t)BQ * BK + (size_t)BQ * Dp + (size_t)D * BK + (size_t)BK * Dp + (size_t)BQ * D + 2 * BQ + 64;
        for (int t = 0; t < ctx->n_threads; t++)
            if (!de_scratch_get(&ctx->per_thread[t], need)) {
                st__ = cpu_fail(ctx, DE_ERR_OOM, "attention: out of memory for scratch (%zu floats per thread)", need);
                goto out__;
            }
        attn_job j = { op, ctx, (op->q_len + BQ - 1) / BQ, Dp };
        const int64_t tasks = (int64_t)op->batch * op->heads * j.nqb;
        de_pool_for(&ctx->pool, tasks, 1, attn_task, &j);
    }
out__:
    CPU_END()
}
