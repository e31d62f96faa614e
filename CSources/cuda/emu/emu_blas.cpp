/* emu_blas.cpp — CPU stand-ins for the cuBLAS / cuBLASLt calls of the CUDA provider, written from NVIDIA's
 * documentation of each call: column-major storage, op(X) = X or X^T, leading dimensions (lda >= rows of
 * the stored matrix), strided batches (stride 0 allowed: the same matrix for every item), D = alpha op(A)
 * op(B) + beta C with C not read when beta == 0, f32 accumulation of 16-bit inputs. cuBLASLt's algorithms
 * carry the buffer alignment their heuristic assumed (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES, default
 * 256): a cublasLtMatmul on less aligned pointers is refused. Anything the stand-in does not implement
 * (another epilogue, compute type, order, pointer mode...) is an error and a VIOLATION, never a guess.
 * Work runs on the handle's stream, in order, when the host waits (cuda_emu.h). */
#include "cublasLt.h"

#include <stdio.h>
#include <stdlib.h>

#include <memory>
#include <vector>

using emu::violation;

struct emu_cublas { cudaStream_t stream; };
struct emu_lt { int unused; };
struct emu_lt_desc { cublasComputeType_t compute; cudaDataType_t scale; cublasOperation_t ta, tb; };
struct emu_lt_layout { cudaDataType_t type; uint64_t rows, cols; int64_t ld; int32_t batch; int64_t stride; };
struct emu_lt_pref { uint64_t max_ws; uint32_t align[4]; };

static size_t type_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : t == CUDA_R_16F || t == CUDA_R_16BF ? 2 : 0; }

static float load(const void *p, cudaDataType_t t, int64_t i) {
    switch (t) {
    case CUDA_R_32F: return ((const float *)p)[i];
    case CUDA_R_16F: return (float)((const __half *)p)[i];
    case CUDA_R_16BF: return (float)((const __nv_bfloat16 *)p)[i];
    default: abort();
    }
}
static void store(void *p, cudaDataType_t t, int64_t i, float v) {
    switch (t) {
    case CUDA_R_32F: ((float *)p)[i] = v; break;
    case CUDA_R_16F: ((__half *)p)[i] = __half(v); break;
    case CUDA_R_16BF: ((__nv_bfloat16 *)p)[i] = __nv_bfloat16(v); break;
    default: abort();
    }
}

/* the supported (documented) type combinations: compute 32F with f32 scale; A and B of one type; C f32 or
 * A's type */
static bool types_ok(cublasComputeType_t compute, cudaDataType_t at, cudaDataType_t bt, cudaDataType_t ct, const char *fn) {
    bool ok = compute == CUBLAS_COMPUTE_32F && at == bt && type_size(at) && (ct == CUDA_R_32F || ct == at);
    if (!ok) violation("%s: compute type %d with A %d, B %d, C %d is not implemented by the emulator", fn, (int)compute, (int)at, (int)bt, (int)ct);
    return ok;
}

struct gemm_args {
    bool ta, tb;
    int64_t m, n, k;
    float alpha, beta;
    const void *A; cudaDataType_t at; int64_t lda, sa;
    const void *B; cudaDataType_t bt; int64_t ldb, sb;
    const void *C; cudaDataType_t ct; int64_t ldc, sc;
    void *D; cudaDataType_t dt; int64_t ldd, sd;
    int batch;
};

/* column-major: D(i, j) = alpha sum_p op(A)(i, p) op(B)(p, j) + beta C(i, j) */
static void gemm_run(const gemm_args &g) {
    std::vector<float> a((size_t)(g.m * g.k)), bt((size_t)(g.n * g.k));
    for (int b = 0; b < g.batch; b++) {
        const int64_t oa = b * g.sa, ob = b * g.sb, oc = b * g.sc, od = b * g.sd;
        for (int64_t i = 0; i < g.m; i++)
            for (int64_t p = 0; p < g.k; p++)
                a[(size_t)(i * g.k + p)] = load(g.A, g.at, oa + (g.ta ? p + i * g.lda : i + p * g.lda));
        for (int64_t j = 0; j < g.n; j++)
            for (int64_t p = 0; p < g.k; p++)
                bt[(size_t)(j * g.k + p)] = load(g.B, g.bt, ob + (g.tb ? j + p * g.ldb : p + j * g.ldb));
        for (int64_t j = 0; j < g.n; j++) {
            const float *bj = &bt[(size_t)(j * g.k)];
            for (int64_t i = 0; i < g.m; i++) {
                const float *ai = &a[(size_t)(i * g.k)];
                float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                int64_t p = 0;
                for (; p + 8 <= g.k; p += 8)
                    for (int q = 0; q < 8; q++) s[q] += ai[p + q] * bj[p + q];
                for (; p < g.k; p++) s[0] += ai[p] * bj[p];
                float acc = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
                float v = g.alpha * acc;
                if (g.beta != 0.f) v += g.beta * load(g.C, g.ct, oc + i + j * g.ldc); /* beta == 0: C is not read */
                store(g.D, g.dt, od + i + j * g.ldd, v);
            }
        }
    }
}

/* the memory each operand spans must be device memory */
static bool operand_ok(const char *fn, const char *which, const void *p, cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld,
                       int batch, int64_t stride) {
    if (rows == 0 || cols == 0) return true;
    int64_t last = (int64_t)(batch - 1) * stride + (cols - 1) * ld + rows;
    if (!p || !emu::is_device(p, (size_t)last * type_size(t))) {
        violation("%s: %s (%p, %lld elements) is not device memory", fn, which, p, (long long)last);
        return false;
    }
    return true;
}

static cublasStatus_t classic(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha,
                              const void *A, cudaDataType_t at, int lda, long long sa, const void *B, cudaDataType_t bt, int ldb,
                              long long sb, const void *beta, void *C, cudaDataType_t ct, int ldc, long long sc, int batch,
                              cublasComputeType_t compute, cublasGemmAlgo_t algo, const char *fn) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) || algo != CUBLAS_GEMM_DEFAULT) {
        violation("%s: op %d/%d or algo %d is not implemented by the emulator", fn, (int)ta, (int)tb, (int)algo);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (!types_ok(compute, at, bt, ct, fn)) return CUBLAS_STATUS_NOT_SUPPORTED;
    const int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
    if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) ||
        ldc < (m > 1 ? m : 1) || !alpha || !beta) {
        violation("%s: m %d n %d k %d lda %d ldb %d ldc %d batch %d: invalid (documented: lda >= max(1, %d), ldb >= max(1, %d), ldc >= max(1, m))",
                  fn, m, n, k, lda, ldb, ldc, batch, a_rows, b_rows);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
    gemm_args g{ta == CUBLAS_OP_T, tb == CUBLAS_OP_T, m, n, k, *(const float *)alpha, *(const float *)beta,
                A, at, lda, sa, B, bt, ldb, sb, C, ct, ldc, sc, C, ct, ldc, sc, batch};
    if (!operand_ok(fn, "A", A, at, a_rows, ta == CUBLAS_OP_N ? k : m, lda, batch, sa) ||
        !operand_ok(fn, "B", B, bt, b_rows, tb == CUBLAS_OP_N ? n : k, ldb, batch, sb) ||
        !operand_ok(fn, "C", C, ct, m, n, ldc, batch, sc))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (k == 0) g.k = 0;
    emu::enqueue(h->stream, fn, [g]() { gemm_run(g); });
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = new emu_cublas{nullptr}; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) { if (!h) return CUBLAS_STATUS_NOT_INITIALIZED; h->stream = s; return CUBLAS_STATUS_SUCCESS; }

const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_INTERNAL_ERROR";
    }
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType_t at, int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta,
                            void *C, cudaDataType_t ct, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    return classic(h, ta, tb, m, n, k, alpha, A, at, lda, 0, B, bt, ldb, 0, beta, C, ct, ldc, 0, 1, compute, algo, "cublasGemmEx");
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType_t at, int lda, long long sa, const void *B,
                                          cudaDataType_t bt, int ldb, long long sb, const void *beta, void *C, cudaDataType_t ct,
                                          int ldc, long long sc, int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    return classic(h, ta, tb, m, n, k, alpha, A, at, lda, sa, B, bt, ldb, sb, beta, C, ct, ldc, sc, batch, compute, algo,
                   "cublasGemmStridedBatchedEx");
}

/* ---- cuBLASLt ---- */

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { *h = new emu_lt{0}; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale) {
    *d = new emu_lt_desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { delete d; return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *buf, size_t size) {
    if (a == CUBLASLT_MATMUL_DESC_TRANSA || a == CUBLASLT_MATMUL_DESC_TRANSB) {
        int32_t v;
        if (size != sizeof v) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&v, buf, sizeof v);
        if (v != CUBLAS_OP_N && v != CUBLAS_OP_T) { violation("cublasLtMatmulDescSetAttribute: op %d is not implemented", v); return CUBLAS_STATUS_NOT_SUPPORTED; }
        (a == CUBLASLT_MATMUL_DESC_TRANSA ? d->ta : d->tb) = (cublasOperation_t)v;
        return CUBLAS_STATUS_SUCCESS;
    }
    if (a == CUBLASLT_MATMUL_DESC_EPILOGUE) {
        int32_t v;
        if (size != sizeof v) return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&v, buf, sizeof v);
        if (v == CUBLASLT_EPILOGUE_DEFAULT) return CUBLAS_STATUS_SUCCESS;
    }
    violation("cublasLtMatmulDescSetAttribute: attribute %d is not implemented by the emulator", (int)a);
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld) {
    *l = new emu_lt_layout{type, rows, cols, ld, 1, 0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { delete l; return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a, const void *buf, size_t size) {
    if (a == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT && size == sizeof(int32_t)) { memcpy(&l->batch, buf, size); return CUBLAS_STATUS_SUCCESS; }
    if (a == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET && size == sizeof(int64_t)) { memcpy(&l->stride, buf, size); return CUBLAS_STATUS_SUCCESS; }
    if (a == CUBLASLT_MATRIX_LAYOUT_ORDER && size == sizeof(int32_t)) {
        int32_t v;
        memcpy(&v, buf, 4);
        if (v == CUBLASLT_ORDER_COL) return CUBLAS_STATUS_SUCCESS;
    }
    violation("cublasLtMatrixLayoutSetAttribute: attribute %d (size %zu) is not implemented by the emulator", (int)a, size);
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new emu_lt_pref{0, {256, 256, 256, 256}}; /* documented defaults: no workspace, 256-byte alignment */
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { delete p; return CUBLAS_STATUS_SUCCESS; }

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void *buf,
                                                    size_t size) {
    if (a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && size == sizeof(uint64_t)) { memcpy(&p->max_ws, buf, size); return CUBLAS_STATUS_SUCCESS; }
    if (a >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && a <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES && size == sizeof(uint32_t)) {
        memcpy(&p->align[a - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, size);
        return CUBLAS_STATUS_SUCCESS;
    }
    violation("cublasLtMatmulPreferenceSetAttribute: attribute %d (size %zu) is not implemented by the emulator", (int)a, size);
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

/* the problem a descriptor set describes: m, n, k from D and op(A); INVALID_VALUE when they disagree */
static cublasStatus_t lt_shape(const emu_lt_desc *op, const emu_lt_layout *a, const emu_lt_layout *b, const emu_lt_layout *c,
                               const emu_lt_layout *d, int64_t *m, int64_t *n, int64_t *k, const char *fn) {
    if (!op || !a || !b || !c || !d) return CUBLAS_STATUS_INVALID_VALUE;
    if (!types_ok(op->compute, a->type, b->type, c->type, fn) || op->scale != CUDA_R_32F || c->type != d->type) return CUBLAS_STATUS_NOT_SUPPORTED;
    *m = (int64_t)d->rows; *n = (int64_t)d->cols;
    *k = (int64_t)(op->ta == CUBLAS_OP_N ? a->cols : a->rows);
    const uint64_t am = op->ta == CUBLAS_OP_N ? a->rows : a->cols;
    const uint64_t bk = op->tb == CUBLAS_OP_N ? b->rows : b->cols, bn = op->tb == CUBLAS_OP_N ? b->cols : b->rows;
    const emu_lt_layout *ls[4] = {a, b, c, d};
    bool ok = am == d->rows && bk == (uint64_t)*k && bn == d->cols && c->rows == d->rows && c->cols == d->cols;
    for (int i = 0; i < 4; i++) ok = ok && ls[i]->ld >= (int64_t)(ls[i]->rows > 1 ? ls[i]->rows : 1) && ls[i]->batch == d->batch && ls[i]->batch >= 1;
    if (!ok) {
        violation("%s: layouts disagree: A %llux%llu ld %lld, B %llux%llu ld %lld, C %llux%llu ld %lld, D %llux%llu ld %lld, ops %d/%d, batches %d/%d/%d/%d",
                  fn, (unsigned long long)a->rows, (unsigned long long)a->cols, (long long)a->ld, (unsigned long long)b->rows,
                  (unsigned long long)b->cols, (long long)b->ld, (unsigned long long)c->rows, (unsigned long long)c->cols, (long long)c->ld,
                  (unsigned long long)d->rows, (unsigned long long)d->cols, (long long)d->ld, (int)op->ta, (int)op->tb, a->batch, b->batch,
                  c->batch, d->batch);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}

static const uint64_t ALGO_MAGIC = 0x454d55414c474f31ull; /* "EMUALGO1" */
static const size_t ALGO_WS = (size_t)1 << 20;          /* the emulated algorithm asks for 1 MiB of workspace */

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested, cublasLtMatmulHeuristicResult_t *res,
                                              int *returned) {
    if (!h || !pref || requested < 1 || !res || !returned) return CUBLAS_STATUS_INVALID_VALUE;
    *returned = 0;
    int64_t m, n, k;
    cublasStatus_t s = lt_shape(op, a, b, c, d, &m, &n, &k, "cublasLtMatmulAlgoGetHeuristic");
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (emu::inject_hit("heuristic")) { emu::counts.heuristic_fallbacks++; fprintf(stderr, "cuda-emu: injected: cuBLASLt heuristic finds no algorithm\n"); return CUBLAS_STATUS_NOT_SUPPORTED; }
    memset(&res[0], 0, sizeof res[0]);
    res[0].algo.data[0] = ALGO_MAGIC;
    for (int i = 0; i < 4; i++) res[0].algo.data[1 + i] = pref->align[i];
    res[0].workspaceSize = pref->max_ws >= ALGO_WS ? ALGO_WS : 0;
    res[0].algo.data[5] = res[0].workspaceSize;
    res[0].state = CUBLAS_STATUS_SUCCESS;
    res[0].wavesCount = 1.f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha, const void *A, cublasLtMatrixLayout_t ad,
                              const void *B, cublasLtMatrixLayout_t bd, const void *beta, const void *C, cublasLtMatrixLayout_t cd,
                              void *D, cublasLtMatrixLayout_t dd, const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_size,
                              cudaStream_t s) {
    const char *fn = "cublasLtMatmul";
    if (!h || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (!algo) { violation("%s: no algo (the emulator does not run its own heuristic)", fn); return CUBLAS_STATUS_NOT_SUPPORTED; }
    if (algo->data[0] != ALGO_MAGIC) { violation("%s: algo was not returned by cublasLtMatmulAlgoGetHeuristic", fn); return CUBLAS_STATUS_INVALID_VALUE; }
    int64_t m, n, k;
    cublasStatus_t st = lt_shape(op, ad, bd, cd, dd, &m, &n, &k, fn);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (ws_size < algo->data[5] || (algo->data[5] && !emu::is_device(ws, algo->data[5]))) {
        violation("%s: workspace %p of %zu bytes, the algo needs %llu bytes of device memory", fn, ws, ws_size, (unsigned long long)algo->data[5]);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    /* the algorithm was chosen for buffers aligned to at least these many bytes (each batch item too) */
    const void *ptrs[4] = {A, B, C, D};
    const emu_lt_layout *ls[4] = {ad, bd, cd, dd};
    for (int i = 0; i < 4; i++) {
        const uint64_t need = algo->data[1 + i];
        const uint64_t stride_bytes = ls[i]->batch > 1 ? (uint64_t)ls[i]->stride * type_size(ls[i]->type) : 0;
        if (need > 1 && ((uintptr_t)ptrs[i] % need != 0 || stride_bytes % need != 0)) {
            violation("%s: %c at %p (batch stride %llu bytes) is not aligned to the %llu bytes the algo was chosen for "
                      "(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%c_BYTES)", fn, "ABCD"[i], ptrs[i], (unsigned long long)stride_bytes,
                      (unsigned long long)need, "ABCD"[i]);
            return CUBLAS_STATUS_NOT_SUPPORTED;
        }
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    if (ad->stride < 0 || bd->stride < 0 || cd->stride < 0 || dd->stride < 0) { violation("%s: negative batch stride", fn); return CUBLAS_STATUS_NOT_SUPPORTED; }
    gemm_args g{op->ta == CUBLAS_OP_T, op->tb == CUBLAS_OP_T, m, n, k, *(const float *)alpha, *(const float *)beta,
                A, ad->type, ad->ld, ad->stride, B, bd->type, bd->ld, bd->stride, C, cd->type, cd->ld, cd->stride,
                D, dd->type, dd->ld, dd->stride, dd->batch};
    if (!operand_ok(fn, "A", A, ad->type, (int64_t)ad->rows, (int64_t)ad->cols, ad->ld, ad->batch, ad->stride) ||
        !operand_ok(fn, "B", B, bd->type, (int64_t)bd->rows, (int64_t)bd->cols, bd->ld, bd->batch, bd->stride) ||
        (g.beta != 0.f && !operand_ok(fn, "C", C, cd->type, (int64_t)cd->rows, (int64_t)cd->cols, cd->ld, cd->batch, cd->stride)) ||
        !operand_ok(fn, "D", D, dd->type, (int64_t)dd->rows, (int64_t)dd->cols, dd->ld, dd->batch, dd->stride))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (C != D && g.beta != 0.f) {
        /* out of place: C and D must not overlap (not checked further; the provider always passes C == D) */
    }
    emu::enqueue(s, fn, [g]() { gemm_run(g); });
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */
