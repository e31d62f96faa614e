/* cuda_attention.cu — fused scaled-dot-product attention, flash-attention style: each thread block
 * owns BQ query rows of one (batch, head), streams keys/values through shared memory in tiles of BK,
 * and keeps a running max / sum (online softmax, base 2 with log2(e) folded into the query scale),
 * so the [q_len, kv_len] score matrix is never written anywhere. f32 on CUDA cores: correct on any
 * head_dim <= 256 (wider heads, the VAE's 512: attention_wide, cuBLAS + softmax); a tensor-core (mma.sync,
 * fp16) version is the next step for speed. */
#include "cuda_internal.h"

#include <math.h>

#define BQ 64

template <int DMAX, int BK>
__global__ void __launch_bounds__(BQ) k_flash(const float *q, const float *k, const float *v, float *o, int q_len, int kv_len,
                                              int d, float scale_log2, int64_t q_sb, int64_t q_sh, int64_t q_st, int64_t k_sb,
                                              int64_t k_sh, int64_t k_st, int64_t v_sb, int64_t v_sh, int64_t v_st,
                                              int64_t o_sb, int64_t o_sh, int64_t o_st) {
    __shared__ float ks[BK][DMAX];
    __shared__ float vs[BK][DMAX];
    const int b = blockIdx.z, h = blockIdx.y;
    const int row = blockIdx.x * BQ + threadIdx.x;
    const bool active = row < q_len;
    float qr[DMAX], acc[DMAX];
#pragma unroll
    for (int i = 0; i < DMAX; i++) {
        qr[i] = (active && i < d) ? q[b * q_sb + h * q_sh + (int64_t)row * q_st + i] * scale_log2 : 0.f;
        acc[i] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    const float *kb = k + b * k_sb + h * k_sh;
    const float *vb = v + b * v_sb + h * v_sh;
    for (int j0 = 0; j0 < kv_len; j0 += BK) {
        const int nk = kv_len - j0 < BK ? kv_len - j0 : BK;
        __syncthreads();
        for (int e = threadIdx.x; e < BK * DMAX; e += BQ) {
            int jj = e / DMAX, i = e % DMAX;
            bool ok = jj < nk && i < d;
            ks[jj][i] = ok ? kb[(int64_t)(j0 + jj) * k_st + i] : 0.f;
            vs[jj][i] = ok ? vb[(int64_t)(j0 + jj) * v_st + i] : 0.f;
        }
        __syncthreads();
        float s[BK];
        float tmax = -INFINITY;
#pragma unroll
        for (int jj = 0; jj < BK; jj++) {
            float dot = 0.f;
#pragma unroll
            for (int i = 0; i < DMAX; i++) dot += qr[i] * ks[jj][i];
            s[jj] = jj < nk ? dot : -INFINITY;
            tmax = fmaxf(tmax, s[jj]);
        }
        const float m_new = fmaxf(m, tmax);
        const float corr = exp2f(m - m_new); /* m = -inf on the first tile: corr = 0 */
        l *= corr;
#pragma unroll
        for (int i = 0; i < DMAX; i++) acc[i] *= corr;
#pragma unroll
        for (int jj = 0; jj < BK; jj++) {
            float p = exp2f(s[jj] - m_new); /* masked keys: exp2(-inf) = 0 */
            l += p;
#pragma unroll
            for (int i = 0; i < DMAX; i++) acc[i] += p * vs[jj][i];
        }
        m = m_new;
    }
    if (active) {
        float inv = l > 0.f ? 1.f / l : 0.f;
        float *orow = o + b * o_sb + h * o_sh + (int64_t)row * o_st;
        for (int i = 0; i < d; i++) orow[i] = acc[i] * inv;
    }
}

static int64_t att_extent(int batch, int heads, int len, int d, int64_t sb, int64_t sh, int64_t st) {
    return (int64_t)(batch - 1) * sb + (int64_t)(heads - 1) * sh + (int64_t)(len - 1) * st + d;
}

template <int DMAX, int BK>
static void launch(cudaStream_t s, const de_attention_op *op, const float *q, const float *k, const float *v, float *o) {
    dim3 grid((unsigned)((op->q_len + BQ - 1) / BQ), (unsigned)op->heads, (unsigned)op->batch);
    const float scale_log2 = op->scale * 1.4426950408889634f;
    CU_LAUNCH(grid, BQ, 0, s, k_flash<DMAX, BK>)(q, k, v, o, op->q_len, op->kv_len, op->head_dim, scale_log2, op->q_sb, op->q_sh,
                                          op->q_st, op->k_sb, op->k_sh, op->k_st, op->v_sb, op->v_sh, op->v_st, op->o_sb,
                                          op->o_sh, op->o_st);
}

/* head_dim above the flash kernel's 256 (the VAE mid-block: one head of 512 channels): per (batch, head)
 * S = scale Q K^T into the arena with cuBLAS (f32), row softmax, O = P V. Materialises one [q_len, kv_len]
 * score matrix at a time (64 MB at the VAE's 64x64 latents). */
static de_status attention_wide(cuda_ctx *c, const de_attention_op *op, const float *q, const float *k, const float *v,
                                float *o, float *s, const char *name) {
    const float one = 1.f, zero = 0.f;
    for (int b = 0; b < op->batch; b++)
        for (int h = 0; h < op->heads; h++) {
            const float *qb = q + b * op->q_sb + h * op->q_sh, *kb = k + b * op->k_sb + h * op->k_sh;
            const float *vb = v + b * op->v_sb + h * op->v_sh;
            float *ob = o + b * op->o_sb + h * op->o_sh;
            /* column-major: S^T[kv, q] = K[kv, d] . Q[q, d]^T, i.e. row-major S[q, kv] */
            cublasStatus_t st = cublasGemmEx(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, op->kv_len, op->q_len, op->head_dim, &one,
                                             kb, CUDA_R_32F, (int)op->k_st, qb, CUDA_R_32F, (int)op->q_st, &zero, s, CUDA_R_32F,
                                             op->kv_len, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            if (st != CUBLAS_STATUS_SUCCESS)
                return cu_fail(c, DE_ERR_BACKEND, "%s: cublasGemmEx (scores) failed: %s", name, cublasGetStatusString(st));
            ST_TRY(cu_softmax_rows(c, s, s, op->q_len, op->kv_len, op->scale, name));
            /* column-major: O^T[d, q] = V^T[d, kv] . P^T[kv, q], i.e. row-major O[q, d] = P V */
            st = cublasGemmEx(c->cublas, CUBLAS_OP_N, CUBLAS_OP_N, op->head_dim, op->q_len, op->kv_len, &one, vb, CUDA_R_32F,
                              (int)op->v_st, s, CUDA_R_32F, op->kv_len, &zero, ob, CUDA_R_32F, (int)op->o_st, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT);
            if (st != CUBLAS_STATUS_SUCCESS)
                return cu_fail(c, DE_ERR_BACKEND, "%s: cublasGemmEx (values) failed: %s", name, cublasGetStatusString(st));
        }
    return DE_OK;
}

de_status cu_attention(de_backend *be, const de_attention_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "attention";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "attention: dtype %d", (int)op->dtype);
    if (!op->q || !op->k || !op->v || !op->o) return cu_fail(c, DE_ERR_INVALID, "attention: NULL q, k, v or o");
    if (op->batch < 0 || op->heads < 0 || op->q_len < 0 || op->kv_len <= 0 || op->head_dim <= 0)
        return cu_fail(c, DE_ERR_INVALID, "attention: bad shape (kv_len and head_dim must be positive)");
    if (op->heads > 65535 || op->batch > 65535) return cu_fail(c, DE_ERR_UNSUPPORTED, "attention: batch/heads above 65535");
    /* as the CPU provider: no negative strides */
    if (op->q_sb < 0 || op->q_sh < 0 || op->q_st < 0 || op->k_sb < 0 || op->k_sh < 0 || op->k_st < 0 || op->v_sb < 0 ||
        op->v_sh < 0 || op->v_st < 0 || op->o_sb < 0 || op->o_sh < 0 || op->o_st < 0)
        return cu_fail(c, DE_ERR_INVALID, "attention: strides must be non-negative");
    if (!isfinite(op->scale)) return cu_fail(c, DE_ERR_INVALID, "attention: scale is not finite");
    if (op->batch == 0 || op->heads == 0 || op->q_len == 0) return DE_OK;
    const int d = op->head_dim;
    const int64_t eq = att_extent(op->batch, op->heads, op->q_len, d, op->q_sb, op->q_sh, op->q_st);
    const int64_t ek = att_extent(op->batch, op->heads, op->kv_len, d, op->k_sb, op->k_sh, op->k_st);
    const int64_t ev = att_extent(op->batch, op->heads, op->kv_len, d, op->v_sb, op->v_sh, op->v_st);
    const int64_t eo = att_extent(op->batch, op->heads, op->q_len, d, op->o_sb, op->o_sh, op->o_st);
    const bool o_dense = eo == (int64_t)op->batch * op->heads * op->q_len * d;
    const bool wide = d > 256;
    if (wide && (op->q_st > INT32_MAX || op->k_st > INT32_MAX || op->v_st > INT32_MAX || op->o_st > INT32_MAX))
        return cu_fail(c, DE_ERR_UNSUPPORTED, "attention: head_dim %d > 256 with a token stride above INT32_MAX", d);
    const size_t scores = wide ? CU_ALIGN((size_t)op->q_len * op->kv_len * 4) : 0;
    ST_TRY(cu_arena_begin(c, CU_ALIGN(eq * 4) + CU_ALIGN(ek * 4) + CU_ALIGN(ev * 4) + CU_ALIGN(eo * 4) + scores, name));
    float *dq = CU_VIEW(c, op->q, eq * 4), *dk = CU_VIEW(c, op->k, ek * 4);
    float *dv = CU_VIEW(c, op->v, ev * 4), *dout = CU_VIEW(c, op->o, eo * 4);
    if (!dq || !dk || !dv || !dout) return cu_fail(c, DE_ERR_BACKEND, "attention: internal: arena too small");
    ST_TRY(cu_copy_in(c, dq, op->q, eq * 4, name));
    ST_TRY(cu_copy_in(c, dk, op->k, ek * 4, name));
    ST_TRY(cu_copy_in(c, dv, op->v, ev * 4, name));
    if (!o_dense) ST_TRY(cu_copy_in(c, dout, op->o, eo * 4, name)); /* keep what lies between the rows */
    if (wide) {
        float *sc = (float *)cu_arena_take(c, scores);
        if (!sc) return cu_fail(c, DE_ERR_BACKEND, "attention: internal: arena too small");
        ST_TRY(attention_wide(c, op, dq, dk, dv, dout, sc, name));
        return cu_copy_out(c, op->o, dout, eo * 4, name);
    }
    if (d <= 32) launch<32, 32>(c->stream, op, dq, dk, dv, dout);
    else if (d <= 64) launch<64, 32>(c->stream, op, dq, dk, dv, dout);
    else if (d <= 96) launch<96, 32>(c->stream, op, dq, dk, dv, dout);
    else if (d <= 128) launch<128, 16>(c->stream, op, dq, dk, dv, dout);
    else if (d <= 160) launch<160, 16>(c->stream, op, dq, dk, dv, dout);
    else launch<256, 8>(c->stream, op, dq, dk, dv, dout);
    ST_TRY(cu_check_launch(c, name, "flash_attention"));
    return cu_copy_out(c, op->o, dout, eo * 4, name);
}
