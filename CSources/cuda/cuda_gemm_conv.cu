/* cuda_gemm_conv.cu — GEMM through cuBLASLt (16-bit A/B, f32 C/D, f32 accumulate) and conv2d through
 * cuDNN (NHWC 16-bit tensors, tensor-op math, algorithm chosen once per shape and cached). */
#include "cuda_internal.h"

#include <stdint.h>
#include <string.h>

#define GEMM_WS ((size_t)32 << 20)
#define CONV_WS_LIMIT ((size_t)512 << 20)

static int64_t extent(int batch, int64_t stride, int64_t rows, int64_t ld, int64_t cols) {
    if (rows <= 0 || cols <= 0) return 0;
    return (batch > 1 ? (int64_t)(batch - 1) * stride : 0) + (rows - 1) * ld + cols;
}

#define LT_TRY(c, call, op)                                                                            \
    do {                                                                                               \
        cublasStatus_t s_ = (call);                                                                    \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                             \
            st = cu_fail((c), s_ == CUBLAS_STATUS_ALLOC_FAILED ? DE_ERR_OOM : DE_ERR_BACKEND,           \
                         "%s: %s failed: %s", (op), #call, cublasGetStatusString(s_));                 \
            goto done;                                                                                 \
        }                                                                                              \
    } while (0)

static cublasStatus_t set_layout_batch(cublasLtMatrixLayout_t l, int batch, int64_t stride) {
    int32_t b = batch;
    cublasStatus_t s = cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b, sizeof b);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    return cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride);
}

/* the largest power of two <= 256 that divides p's address and the batch stride in bytes */
static uint32_t op_align(const void *p, int64_t stride_bytes) {
    uint64_t v = (uint64_t)(uintptr_t)p | (uint64_t)stride_bytes | 256u;
    return (uint32_t)(v & (~v + 1));
}

/* a constant uploaded as DE_CONST_WEIGHT: a GEMM reads its 16-bit device copy in place */
static bool weight_const(const cuda_ctx *c, const void *p) {
    const cu_const *e = cu_const_find(c, p, NULL);
    return e && e->kind == DE_CONST_WEIGHT;
}

/* A non-constant f32 GEMM operand of `ext` elements (host, pool memory or a constant read as f32) as a 16-bit
 * copy in the op's arena: f32 view, copy in, convert. */
static de_status gemm_half_operand(cuda_ctx *c, const void *x, int64_t ext, const void **out, const char *name) {
    float *x32 = CU_VIEW(c, x, ext * 4);
    void *x16 = cu_arena_take(c, ext * 2);
    if (!x32 || !x16) return cu_fail(c, DE_ERR_BACKEND, "gemm: internal: arena too small");
    ST_TRY(cu_copy_in(c, x32, x, ext * 4, name));
    ST_TRY(cu_f32_to_half(c, x16, x32, ext, name));
    *out = x16;
    return DE_OK;
}

de_status cu_gemm(de_backend *be, const de_gemm_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "gemm";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "gemm: dtype %d (the CUDA provider takes f32)", (int)op->dtype);
    if (op->a_dtype != DE_F32 || op->b_dtype != DE_F32)
        return cu_fail(c, DE_ERR_UNSUPPORTED, "gemm: a_dtype %d / b_dtype %d (the CUDA provider keeps its own 16-bit weight copies: pass f32 constants)",
                       (int)op->a_dtype, (int)op->b_dtype);
    if (op->batch < 0 || op->m < 0 || op->n < 0 || op->k < 0) return cu_fail(c, DE_ERR_INVALID, "gemm: negative dimension");
    if (op->batch == 0 || op->m == 0 || op->n == 0) return DE_OK;
    if (op->k == 0) return cu_fail(c, DE_ERR_INVALID, "gemm: k = 0");
    if (!op->a || !op->b || !op->c) return cu_fail(c, DE_ERR_INVALID, "gemm: NULL a, b or c");
    const int batch = op->batch;
    const int64_t m = op->m, n = op->n, k = op->k;
    const int64_t a_rows = op->trans_a ? k : m, a_cols = op->trans_a ? m : k;
    const int64_t b_rows = op->trans_b ? n : k, b_cols = op->trans_b ? k : n;
    if (op->lda < a_cols || op->ldb < b_cols || op->ldc < n) return cu_fail(c, DE_ERR_INVALID, "gemm: lda/ldb/ldc below the row length");
    /* as the CPU provider: cuBLAS takes int leading dimensions; batch items may share inputs (stride 0)
     * but never write over each other */
    if (op->lda > INT32_MAX || op->ldb > INT32_MAX || op->ldc > INT32_MAX)
        return cu_fail(c, DE_ERR_INVALID, "gemm: lda/ldb/ldc above INT32_MAX (%lld, %lld, %lld)", (long long)op->lda,
                       (long long)op->ldb, (long long)op->ldc);
    if (op->stride_a < 0 || op->stride_b < 0 || op->stride_c < 0)
        return cu_fail(c, DE_ERR_INVALID, "gemm: negative batch stride (a %lld, b %lld, c %lld)", (long long)op->stride_a,
                       (long long)op->stride_b, (long long)op->stride_c);
    if (batch > 1 && op->stride_c < (m - 1) * op->ldc + n)
        return cu_fail(c, DE_ERR_INVALID, "gemm: stride_c %lld makes the outputs of batch items overlap", (long long)op->stride_c);
    const int64_t ext_a = extent(batch, op->stride_a, a_rows, op->lda, a_cols);
    const int64_t ext_b = extent(batch, op->stride_b, b_rows, op->ldb, b_cols);
    const int64_t ext_c = extent(batch, op->stride_c, m, op->ldc, n);
    /* weights uploaded as constants are read in their 16-bit copy whatever the batch stride (Linear: B;
     * Transformer2DModel proj_in / proj_out at batch 2 with stride 0: B / A); anything else is f32,
     * converted into the arena for this op */
    const bool a_w = weight_const(c, op->a), b_w = weight_const(c, op->b);
    const bool c_dense = op->ldc == n && (batch == 1 || op->stride_c == m * n);
    const bool c_in = op->beta != 0.f || !c_dense;
    size_t need = (a_w ? 0 : CU_ALIGN(ext_a * 4) + CU_ALIGN(ext_a * 2)) + (b_w ? 0 : CU_ALIGN(ext_b * 4) + CU_ALIGN(ext_b * 2)) +
                  CU_ALIGN(ext_c * 4) + GEMM_WS + (op->bias ? CU_ALIGN(n * 4) : 0);
    ST_TRY(cu_arena_begin(c, need, name));
    const void *d_a = NULL, *d_b = NULL;
    const float *d_bias = NULL;
    if (a_w) ST_TRY(cu_weight(c, (const float *)op->a, ext_a, CW_HALF, NULL, &d_a, name));
    if (b_w) ST_TRY(cu_weight(c, (const float *)op->b, ext_b, CW_HALF, NULL, &d_b, name));
    if (op->bias) {
        const void *p = NULL;
        ST_TRY(cu_weight(c, op->bias, n, CW_F32, NULL, &p, name));
        d_bias = (const float *)p;
    }
    float *c32 = CU_VIEW(c, op->c, ext_c * 4);
    void *ws = cu_arena_take(c, GEMM_WS);
    if (!c32 || !ws) return cu_fail(c, DE_ERR_BACKEND, "gemm: internal: arena too small");
    if (!a_w) ST_TRY(gemm_half_operand(c, op->a, ext_a, &d_a, name));
    if (!b_w) ST_TRY(gemm_half_operand(c, op->b, ext_b, &d_b, name));
    if (c_in) ST_TRY(cu_copy_in(c, c32, op->c, ext_c * 4, name));

    {
        de_status st = DE_OK;
        cudaDataType_t t16 = c->use_bf16 ? CUDA_R_16BF : CUDA_R_16F;
        cublasLtMatmulDesc_t desc = NULL;
        cublasLtMatrixLayout_t lb = NULL, la = NULL, lc = NULL;
        cublasLtMatmulPreference_t pref = NULL;
        /* row-major C[m,n] = op(A) op(B) is column-major C^T[n,m] = op(B)^T op(A)^T: B goes first */
        cublasOperation_t tb = op->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
        cublasOperation_t ta = op->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
        LT_TRY(c, cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), name);
        LT_TRY(c, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &tb, sizeof tb), name);
        LT_TRY(c, cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &ta, sizeof ta), name);
        /* stored column-major shapes: B^T is [b_cols, b_rows], A^T is [a_cols, a_rows], C^T is [n, m] */
        LT_TRY(c, cublasLtMatrixLayoutCreate(&lb, t16, (uint64_t)b_cols, (uint64_t)b_rows, op->ldb), name);
        LT_TRY(c, cublasLtMatrixLayoutCreate(&la, t16, (uint64_t)a_cols, (uint64_t)a_rows, op->lda), name);
        LT_TRY(c, cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, (uint64_t)n, (uint64_t)m, op->ldc), name);
        if (batch > 1) {
            LT_TRY(c, set_layout_batch(lb, batch, op->stride_b), name);
            LT_TRY(c, set_layout_batch(la, batch, op->stride_a), name);
            LT_TRY(c, set_layout_batch(lc, batch, op->stride_c), name);
        }
        {
            /* cuBLASLt picks algorithms for buffers aligned to MIN_ALIGNMENT_*_BYTES (default 256); a weight view
             * (handle + offset), C at an offset or an odd batch stride is less aligned: say so, and plan per
             * alignment (make test-cuda-emu: "gemm.bmm.transB" has a 9856-byte batch stride) */
            const uint32_t al_b = op_align(d_b, batch > 1 ? op->stride_b * 2 : 0), al_a = op_align(d_a, batch > 1 ? op->stride_a * 2 : 0);
            const uint32_t al_c = op_align(c32, batch > 1 ? op->stride_c * 4 : 0);
            int64_t key[13] = {batch, m, n, k, op->trans_a, op->trans_b, op->lda, op->ldb, op->ldc,
                               op->stride_a, op->stride_b, op->stride_c * 2 + c->use_bf16,
                               (int64_t)al_b << 32 | (int64_t)al_a << 16 | al_c};
            gemm_plan *plan = NULL;
            for (int i = 0; i < c->n_gemm_plans; i++)
                if (memcmp(c->gemm_plans[i].key, key, sizeof key) == 0) { plan = &c->gemm_plans[i]; break; }
            if (!plan) {
                /* cuBLASLt's heuristic either finds an algorithm or says NOT_SUPPORTED / returns none / one
                 * whose state is not SUCCESS: then (valid = 0, remembered) the classic strided-batched GEMM */
                size_t wsz = GEMM_WS;
                int found = 0;
                cublasLtMatmulHeuristicResult_t res;
                memset(&res, 0, sizeof res);
                LT_TRY(c, cublasLtMatmulPreferenceCreate(&pref), name);
                LT_TRY(c, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz, sizeof wsz), name);
                LT_TRY(c, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_b, sizeof al_b), name);
                LT_TRY(c, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_a, sizeof al_a), name);
                LT_TRY(c, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c), name);
                LT_TRY(c, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c), name);
                cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(c->lt, desc, lb, la, lc, lc, pref, 1, &res, &found);
                if (hs != CUBLAS_STATUS_SUCCESS && hs != CUBLAS_STATUS_NOT_SUPPORTED) {
                    st = cu_fail(c, hs == CUBLAS_STATUS_ALLOC_FAILED ? DE_ERR_OOM : DE_ERR_BACKEND,
                                 "gemm: cublasLtMatmulAlgoGetHeuristic failed: %s", cublasGetStatusString(hs));
                    goto done;
                }
                gemm_plan tmp;
                memset(&tmp, 0, sizeof tmp);
                memcpy(tmp.key, key, sizeof key);
                tmp.valid = hs == CUBLAS_STATUS_SUCCESS && found >= 1 && res.state == CUBLAS_STATUS_SUCCESS &&
                            res.workspaceSize <= GEMM_WS;
                if (tmp.valid) { tmp.algo = res.algo; tmp.workspace = res.workspaceSize; }
                if (c->n_gemm_plans < DE_CUDA_MAX_PLANS) { c->gemm_plans[c->n_gemm_plans] = tmp; plan = &c->gemm_plans[c->n_gemm_plans++]; }
                else { c->gemm_plans[0] = tmp; plan = &c->gemm_plans[0]; }
            }
            if (plan->valid) {
                LT_TRY(c, cublasLtMatmul(c->lt, desc, &op->alpha, d_b, lb, d_a, la, &op->beta, c32, lc, c32, lc, &plan->algo, ws,
                                         plan->workspace, c->stream), name);
            } else {
                /* no cuBLASLt algorithm for this shape: the classic strided-batched GEMM (same types) */
                LT_TRY(c, cublasGemmStridedBatchedEx(c->cublas, tb, ta, (int)n, (int)m, (int)k, &op->alpha, d_b, t16,
                                                     (int)op->ldb, op->stride_b, d_a, t16, (int)op->lda, op->stride_a,
                                                     &op->beta, c32, CUDA_R_32F, (int)op->ldc, op->stride_c, batch,
                                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                       name);
            }
        }
    done:
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        if (lc) cublasLtMatrixLayoutDestroy(lc);
        if (la) cublasLtMatrixLayoutDestroy(la);
        if (lb) cublasLtMatrixLayoutDestroy(lb);
        if (desc) cublasLtMatmulDescDestroy(desc);
        if (st != DE_OK) return st;
    }
    if (d_bias) ST_TRY(cu_add_bias_rows(c, c32, d_bias, m, op->ldc, (int32_t)n, batch, op->stride_c, name));
    return cu_copy_out(c, op->c, c32, ext_c * 4, name);
}

/* ---- conv2d ---- */

template <typename H>
__global__ void k_pad_nchw_to_nhwc(H *dst, const float *src, int ch, int h, int w, int ph, int pw, int pad_t, int pad_l,
                                   float scale) {
    int64_t per = (int64_t)ph * pw * ch;
    int b = blockIdx.y;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < per; i += (int64_t)gridDim.x * blockDim.x) {
        int cc = (int)(i % ch);
        int64_t p = i / ch;
        int y = (int)(p / pw) - pad_t, x = (int)(p % pw) - pad_l;
        float v = (y >= 0 && y < h && x >= 0 && x < w) ? src[(((int64_t)b * ch + cc) * h + y) * w + x] : 0.f;
        dst[(int64_t)b * per + i] = (H)(v * scale);
    }
}

#define DNN_TRY(c, call, op)                                                                           \
    do {                                                                                               \
        cudnnStatus_t s_ = (call);                                                                     \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                                              \
            st = cu_fail((c), s_ == CUDNN_STATUS_ALLOC_FAILED ? DE_ERR_OOM : DE_ERR_BACKEND,            \
                         "%s: %s failed: %s", (op), #call, cudnnGetErrorString(s_));                   \
            goto done;                                                                                 \
        }                                                                                              \
    } while (0)

de_status cu_conv2d(de_backend *be, const de_conv2d_op *op) {
    cuda_ctx *c = cu_of(be);
    const char *name = "conv2d";
    if (op->dtype != DE_F32) return cu_fail(c, DE_ERR_UNSUPPORTED, "conv2d: dtype %d (the CUDA provider takes host f32)", (int)op->dtype);
    if (op->weight_dtype != DE_F32)
        return cu_fail(c, DE_ERR_UNSUPPORTED, "conv2d: weight_dtype %d (the CUDA provider keeps its own 16-bit weight copies: pass f32 constants)",
                       (int)op->weight_dtype);
    if (!op->x || !op->weight || !op->y) return cu_fail(c, DE_ERR_INVALID, "conv2d: NULL x, weight or y");
    if (op->n <= 0 || op->c_in <= 0 || op->h <= 0 || op->w <= 0 || op->c_out <= 0 || op->kh <= 0 || op->kw <= 0 ||
        op->stride_h <= 0 || op->stride_w <= 0 || op->pad_t < 0 || op->pad_l < 0 || op->pad_b < 0 || op->pad_r < 0)
        return cu_fail(c, DE_ERR_INVALID, "conv2d: bad shape/stride/padding");
    const int ph = op->h + op->pad_t + op->pad_b, pw = op->w + op->pad_l + op->pad_r;
    if (ph < op->kh || pw < op->kw) return cu_fail(c, DE_ERR_INVALID, "conv2d: kernel larger than the padded input");
    const int oh = (ph - op->kh) / op->stride_h + 1, ow = (pw - op->kw) / op->stride_w + 1;
    const bool sym = op->pad_t == op->pad_b && op->pad_l == op->pad_r;
    /* asymmetric padding: pad explicitly while converting to NHWC, convolve with pad 0 */
    const int ih = sym ? op->h : ph, iw = sym ? op->w : pw;
    const int cph = sym ? op->pad_t : 0, cpw = sym ? op->pad_l : 0;
    const int64_t nx = (int64_t)op->n * op->c_in * op->h * op->w;
    const int64_t nxp = (int64_t)op->n * op->c_in * ih * iw;
    const int64_t nw = (int64_t)op->c_out * op->c_in * op->kh * op->kw;
    const int64_t ny = (int64_t)op->n * op->c_out * oh * ow;
    const cudnnDataType_t dt = c->use_bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    /* fp16 tops out at 65504: the input goes in at 2^-8 of its value (exact: a power of two) and the output
     * comes back times 2^8, so inputs and outputs up to ~1.7e7 fit (a VAE decoder's activations); only values
     * under 2^-6 lose bits (to subnormals: 1.5e-5 absolute at most). bf16 has f32's range: no scaling.
     * make test-cuda-emu: conv2d.fp16-range (outputs near 1e5). */
    const float in_scale = c->use_bf16 ? 1.f : 1.f / 256.f;
    de_status st = DE_OK;
    cudnnTensorDescriptor_t xd = NULL, yd = NULL;
    cudnnFilterDescriptor_t wd = NULL;
    cudnnConvolutionDescriptor_t cd = NULL;
    conv_plan *plan = NULL;
    DNN_TRY(c, cudnnCreateTensorDescriptor(&xd), name);
    DNN_TRY(c, cudnnCreateTensorDescriptor(&yd), name);
    DNN_TRY(c, cudnnCreateFilterDescriptor(&wd), name);
    DNN_TRY(c, cudnnCreateConvolutionDescriptor(&cd), name);
    DNN_TRY(c, cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NHWC, dt, op->n, op->c_in, ih, iw), name);
    DNN_TRY(c, cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NHWC, dt, op->n, op->c_out, oh, ow), name);
    DNN_TRY(c, cudnnSetFilter4dDescriptor(wd, dt, CUDNN_TENSOR_NHWC, op->c_out, op->c_in, op->kh, op->kw), name);
    DNN_TRY(c, cudnnSetConvolution2dDescriptor(cd, cph, cpw, op->stride_h, op->stride_w, 1, 1, CUDNN_CROSS_CORRELATION,
                                               CUDNN_DATA_FLOAT), name);
    DNN_TRY(c, cudnnSetConvolutionMathType(cd, CUDNN_TENSOR_OP_MATH), name);
    {
        int32_t key[12] = {op->n, op->c_in, ih, iw, op->c_out, op->kh, op->kw, op->stride_h, op->stride_w, cph, cpw, c->use_bf16};
        for (int i = 0; i < c->n_conv_plans; i++)
            if (memcmp(c->conv_plans[i].key, key, sizeof key) == 0) { plan = &c->conv_plans[i]; break; }
        if (!plan) {
            cudnnConvolutionFwdAlgoPerf_t perf[16];
            int got = 0;
            DNN_TRY(c, cudnnGetConvolutionForwardAlgorithm_v7(c->cudnn, xd, wd, cd, yd, 16, &got, perf), name);
            int pick = -1;
            for (int i = 0; i < got; i++)
                if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= CONV_WS_LIMIT) { pick = i; break; }
            if (pick < 0) {
                st = cu_fail(c, DE_ERR_UNSUPPORTED, "conv2d: cuDNN has no algorithm for %dx%dx%dx%d * %dx%dx%d", op->n,
                             op->c_in, ih, iw, op->c_out, op->kh, op->kw);
                goto done;
            }
            conv_plan tmp;
            memcpy(tmp.key, key, sizeof key);
            tmp.algo = (int)perf[pick].algo;
            tmp.workspace = perf[pick].memory;
            if (c->n_conv_plans < DE_CUDA_MAX_PLANS) { c->conv_plans[c->n_conv_plans] = tmp; plan = &c->conv_plans[c->n_conv_plans++]; }
            else { c->conv_plans[0] = tmp; plan = &c->conv_plans[0]; }
        }
    }
    {
        size_t need = CU_ALIGN(nx * 4) + CU_ALIGN(nxp * 2) + CU_ALIGN(nw * 4) + CU_ALIGN(ny * 2) + CU_ALIGN(ny * 4) * 2 +
                      CU_ALIGN(plan->workspace) + CU_ALIGN((size_t)op->c_out * 4) + 256;
        st = cu_arena_begin(c, need, name);
        if (st != DE_OK) goto done;
        const void *w16 = NULL, *bias = NULL;
        int32_t kcrs[4] = {op->c_out, op->c_in, op->kh, op->kw};
        st = cu_weight(c, (const float *)op->weight, nw, CW_HALF_KRSC, kcrs, &w16, name);
        if (st == DE_OK && op->bias) st = cu_weight(c, op->bias, op->c_out, CW_F32, NULL, &bias, name);
        if (st != DE_OK) goto done;
        float *x32 = CU_VIEW(c, op->x, nx * 4);
        void *x16 = cu_arena_take(c, nxp * 2);
        void *y16 = cu_arena_take(c, ny * 2);
        float *y32 = CU_VIEW(c, op->y, ny * 4);
        float *r32 = op->residual ? CU_VIEW(c, op->residual, ny * 4) : NULL;
        void *ws = plan->workspace ? cu_arena_take(c, plan->workspace) : NULL;
        if (!x32 || !x16 || !y16 || !y32 || (op->residual && !r32) || (plan->workspace && !ws)) {
            st = cu_fail(c, DE_ERR_BACKEND, "conv2d: internal: arena too small");
            goto done;
        }
        st = cu_copy_in(c, x32, op->x, nx * 4, name);
        if (st == DE_OK && op->residual) st = cu_copy_in(c, r32, op->residual, ny * 4, name);
        if (st != DE_OK) goto done;
        if (sym) {
            st = cu_nchw_f32_to_nhwc_half(c, x16, x32, op->n, op->c_in, op->h * op->w, in_scale, name);
        } else {
            int64_t per = (int64_t)ph * pw * op->c_in;
            dim3 grid((unsigned)((per + 255) / 256 > 65535 ? 65535 : (per + 255) / 256), (unsigned)op->n);
            if (c->use_bf16)
                CU_LAUNCH(grid, 256, 0, c->stream, k_pad_nchw_to_nhwc<__nv_bfloat16>)((__nv_bfloat16 *)x16, x32, op->c_in, op->h, op->w,
                                                                               ph, pw, op->pad_t, op->pad_l, in_scale);
            else
                CU_LAUNCH(grid, 256, 0, c->stream, k_pad_nchw_to_nhwc<__half>)((__half *)x16, x32, op->c_in, op->h, op->w, ph, pw,
                                                                       op->pad_t, op->pad_l, in_scale);
            st = cu_check_launch(c, name, "pad_nchw_to_nhwc");
        }
        if (st != DE_OK) goto done;
        const float one = 1.f, zero = 0.f;
        DNN_TRY(c, cudnnConvolutionForward(c->cudnn, &one, xd, x16, wd, w16, cd, (cudnnConvolutionFwdAlgo_t)plan->algo, ws,
                                           plan->workspace, &zero, yd, y16), name);
        st = cu_nhwc_half_to_nchw_f32(c, y32, y16, (const float *)bias, r32, op->n, op->c_out, oh * ow, 1.f / in_scale, name);
        if (st == DE_OK) st = cu_copy_out(c, op->y, y32, ny * 4, name);
    }
done:
    if (cd) cudnnDestroyConvolutionDescriptor(cd);
    if (wd) cudnnDestroyFilterDescriptor(wd);
    if (yd) cudnnDestroyTensorDescriptor(yd);
    if (xd) cudnnDestroyTensorDescriptor(xd);
    return st;
}
