/* emu_dnn.cpp — CPU stand-ins for the cuDNN calls of the CUDA provider (legacy convolution API), written
 * from NVIDIA's documentation: 4-d tensors in NCHW or NHWC, filters [k, c, r, s] in NCHW (KCRS) or NHWC
 * (KRSC) order, y = alpha conv(x, w) + beta y (y not read when beta == 0), output size
 * 1 + (in + 2 pad - ((k - 1) dil + 1)) / stride which yDesc must match, PSEUDO_HALF / PSEUDO_BFLOAT16
 * configurations (16-bit data, f32 compute: products summed in f32, the result rounded to the data type;
 * an fp16 result above 65504 becomes inf as on the device) and FLOAT_CONFIG. One emulated algorithm
 * (IMPLICIT_PRECOMP_GEMM, asking for a workspace); a too small workspace, a mismatched descriptor or an
 * unimplemented combination is an error and a VIOLATION. Which algorithm real cuDNN picks, and whether it
 * has one for a given channel count, is beyond this file: that needs a GPU (scripts/gpu_check.sh). */
#include "cudnn.h"

#include <stdio.h>

#include <vector>

using emu::violation;

struct emu_dnn { cudaStream_t stream; };
struct emu_dnn_tensor { bool set; cudnnTensorFormat_t f; cudnnDataType_t t; int n, c, h, w; };
struct emu_dnn_filter { bool set; cudnnTensorFormat_t f; cudnnDataType_t t; int k, c, r, s; };
struct emu_dnn_conv { bool set; int ph, pw, u, v, dh, dw; cudnnConvolutionMode_t mode; cudnnDataType_t compute; cudnnMathType_t math; };

static size_t dsize(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT ? 4 : t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16 ? 2 : 0; }

static float dload(const void *p, cudnnDataType_t t, int64_t i) {
    return t == CUDNN_DATA_FLOAT ? ((const float *)p)[i] : t == CUDNN_DATA_HALF ? (float)((const __half *)p)[i] : (float)((const __nv_bfloat16 *)p)[i];
}
static void dstore(void *p, cudnnDataType_t t, int64_t i, float v) {
    if (t == CUDNN_DATA_FLOAT) ((float *)p)[i] = v;
    else if (t == CUDNN_DATA_HALF) ((__half *)p)[i] = __half(v);
    else ((__nv_bfloat16 *)p)[i] = __nv_bfloat16(v);
}

static int64_t tidx(const emu_dnn_tensor &d, int n, int c, int h, int w) {
    return d.f == CUDNN_TENSOR_NHWC ? (((int64_t)n * d.h + h) * d.w + w) * d.c + c : (((int64_t)n * d.c + c) * d.h + h) * d.w + w;
}
static int64_t fidx(const emu_dnn_filter &d, int k, int c, int r, int s) {
    return d.f == CUDNN_TENSOR_NHWC ? (((int64_t)k * d.r + r) * d.s + s) * d.c + c : (((int64_t)k * d.c + c) * d.r + r) * d.s + s;
}

static const size_t CONV_WS = (size_t)4 << 20; /* the emulated algorithm's workspace */

/* BAD_PARAM / NOT_SUPPORTED with a violation when the descriptors are not a documented, implemented set */
static cudnnStatus_t conv_check(const emu_dnn_tensor *x, const emu_dnn_filter *w, const emu_dnn_conv *c, const emu_dnn_tensor *y,
                                const char *fn) {
    if (!x || !w || !c || !y || !x->set || !w->set || !c->set || !y->set) { violation("%s: a descriptor is NULL or was never set", fn); return CUDNN_STATUS_BAD_PARAM; }
    if (x->t != w->t || x->t != y->t || x->f != y->f || x->f != w->f) {
        violation("%s: x/w/y types %d/%d/%d, formats %d/%d/%d differ", fn, x->t, w->t, y->t, x->f, w->f, y->f);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    /* documented configurations: FLOAT_CONFIG, PSEUDO_HALF_CONFIG, PSEUDO_BFLOAT16_CONFIG (and TRUE_HALF, not implemented) */
    if (c->compute != CUDNN_DATA_FLOAT || !dsize(x->t)) {
        violation("%s: data type %d with compute type %d is not implemented by the emulator", fn, x->t, c->compute);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    if (w->c != x->c) { violation("%s: filter has %d input channels, x has %d (groups are not implemented)", fn, w->c, x->c); return CUDNN_STATUS_BAD_PARAM; }
    const int oh = 1 + (x->h + 2 * c->ph - ((w->r - 1) * c->dh + 1)) / c->u, ow = 1 + (x->w + 2 * c->pw - ((w->s - 1) * c->dw + 1)) / c->v;
    if (y->n != x->n || y->c != w->k || y->h != oh || y->w != ow || oh <= 0 || ow <= 0) {
        violation("%s: yDesc %dx%dx%dx%d, the convolution gives %dx%dx%dx%d", fn, y->n, y->c, y->h, y->w, x->n, w->k, oh, ow);
        return CUDNN_STATUS_BAD_PARAM;
    }
    return CUDNN_STATUS_SUCCESS;
}

extern "C" {

cudnnStatus_t cudnnCreate(cudnnHandle_t *h) { *h = new emu_dnn{nullptr}; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroy(cudnnHandle_t h) { delete h; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) { if (!h) return CUDNN_STATUS_BAD_PARAM; h->stream = s; return CUDNN_STATUS_SUCCESS; }

const char *cudnnGetErrorString(cudnnStatus_t s) {
    switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_ALLOC_FAILED: return "CUDNN_STATUS_ALLOC_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: return "CUDNN_STATUS_INTERNAL_ERROR";
    }
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d) { *d = new emu_dnn_tensor(); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n, int c, int h, int w) {
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
    if (f != CUDNN_TENSOR_NCHW && f != CUDNN_TENSOR_NHWC) { violation("cudnnSetTensor4dDescriptor: format %d is not implemented", f); return CUDNN_STATUS_NOT_SUPPORTED; }
    if (!dsize(t)) { violation("cudnnSetTensor4dDescriptor: data type %d is not implemented", t); return CUDNN_STATUS_NOT_SUPPORTED; }
    *d = emu_dnn_tensor{true, f, t, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d) { *d = new emu_dnn_filter(); return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k, int c, int h, int w) {
    if (k <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
    if ((f != CUDNN_TENSOR_NCHW && f != CUDNN_TENSOR_NHWC) || !dsize(t)) { violation("cudnnSetFilter4dDescriptor: format %d / type %d is not implemented", f, t); return CUDNN_STATUS_NOT_SUPPORTED; }
    *d = emu_dnn_filter{true, f, t, k, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d) { *d = new emu_dnn_conv(); (*d)->math = CUDNN_DEFAULT_MATH; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d) { delete d; return CUDNN_STATUS_SUCCESS; }
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u, int v, int dh, int dw,
                                              cudnnConvolutionMode_t mode, cudnnDataType_t compute) {
    if (ph < 0 || pw < 0 || u <= 0 || v <= 0 || dh <= 0 || dw <= 0 || (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION))
        return CUDNN_STATUS_BAD_PARAM;
    cudnnMathType_t math = d->math;
    *d = emu_dnn_conv{true, ph, pw, u, v, dh, dw, mode, compute, math};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
    if (m < CUDNN_DEFAULT_MATH || m > CUDNN_FMA_MATH) return CUDNN_STATUS_BAD_PARAM;
    d->math = m;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                                                     cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y, int requested,
                                                     int *returned, cudnnConvolutionFwdAlgoPerf_t *perf) {
    if (!h || requested < 1 || !returned || !perf) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t s = conv_check(x, w, c, y, "cudnnGetConvolutionForwardAlgorithm_v7");
    if (s != CUDNN_STATUS_SUCCESS) return s;
    memset(perf, 0, sizeof *perf);
    perf[0].algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    perf[0].status = CUDNN_STATUS_SUCCESS;
    perf[0].memory = CONV_WS;
    perf[0].mathType = c->math;
    perf[0].determinism = CUDNN_DETERMINISTIC;
    *returned = 1;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha, cudnnTensorDescriptor_t xd, const void *x,
                                      cudnnFilterDescriptor_t wd, const void *w, cudnnConvolutionDescriptor_t cd,
                                      cudnnConvolutionFwdAlgo_t algo, void *ws, size_t ws_size, const void *beta,
                                      cudnnTensorDescriptor_t yd, void *y) {
    const char *fn = "cudnnConvolutionForward";
    if (!h || !alpha || !beta) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t s = conv_check(xd, wd, cd, yd, fn);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    if (algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) { violation("%s: algo %d was not offered by the emulator", fn, algo); return CUDNN_STATUS_NOT_SUPPORTED; }
    if (ws_size < CONV_WS || !emu::is_device(ws, CONV_WS)) {
        violation("%s: workspace %p of %zu bytes, the algo needs %zu bytes of device memory", fn, ws, ws_size, CONV_WS);
        return CUDNN_STATUS_BAD_PARAM;
    }
    const emu_dnn_tensor X = *xd, Y = *yd;
    const emu_dnn_filter W = *wd;
    const emu_dnn_conv C = *cd;
    const size_t es = dsize(X.t);
    if (!emu::is_device(x, (size_t)X.n * X.c * X.h * X.w * es) || !emu::is_device(w, (size_t)W.k * W.c * W.r * W.s * es) ||
        !emu::is_device(y, (size_t)Y.n * Y.c * Y.h * Y.w * es)) {
        violation("%s: x %p, w %p or y %p is not device memory of the described size", fn, x, w, y);
        return CUDNN_STATUS_BAD_PARAM;
    }
    const float a = *(const float *)alpha, b = *(const float *)beta;
    emu::enqueue(h->stream, fn, [=]() {
        /* f32 copies in [n][h][w][c] and [k][r][s][c] order, then one dot product over c per tap */
        std::vector<float> xf((size_t)X.n * X.h * X.w * X.c), wf((size_t)W.k * W.r * W.s * W.c);
        for (int n = 0; n < X.n; n++)
            for (int c = 0; c < X.c; c++)
                for (int i = 0; i < X.h; i++)
                    for (int j = 0; j < X.w; j++) xf[(((size_t)n * X.h + i) * X.w + j) * X.c + c] = dload(x, X.t, tidx(X, n, c, i, j));
        for (int k = 0; k < W.k; k++)
            for (int c = 0; c < W.c; c++)
                for (int r = 0; r < W.r; r++)
                    for (int q = 0; q < W.s; q++) {
                        const int rr = C.mode == CUDNN_CONVOLUTION ? W.r - 1 - r : r, qq = C.mode == CUDNN_CONVOLUTION ? W.s - 1 - q : q;
                        wf[(((size_t)k * W.r + r) * W.s + q) * W.c + c] = dload(w, W.t, fidx(W, k, c, rr, qq));
                    }
        for (int n = 0; n < Y.n; n++)
            for (int oi = 0; oi < Y.h; oi++)
                for (int oj = 0; oj < Y.w; oj++)
                    for (int k = 0; k < Y.c; k++) {
                        float acc = 0.f;
                        for (int r = 0; r < W.r; r++) {
                            const int i = oi * C.u - C.ph + r * C.dh;
                            if (i < 0 || i >= X.h) continue;
                            for (int q = 0; q < W.s; q++) {
                                const int j = oj * C.v - C.pw + q * C.dw;
                                if (j < 0 || j >= X.w) continue;
                                const float *xp = &xf[(((size_t)n * X.h + i) * X.w + j) * X.c];
                                const float *wp = &wf[(((size_t)k * W.r + r) * W.s + q) * W.c];
                                float s4[4] = {0, 0, 0, 0};
                                int c = 0;
                                for (; c + 4 <= X.c; c += 4)
                                    for (int t = 0; t < 4; t++) s4[t] += xp[c + t] * wp[c + t];
                                for (; c < X.c; c++) s4[0] += xp[c] * wp[c];
                                acc += (s4[0] + s4[1]) + (s4[2] + s4[3]);
                            }
                        }
                        const int64_t o = tidx(Y, n, k, oi, oj);
                        float v = a * acc;
                        if (b != 0.f) v += b * dload(y, Y.t, o);
                        dstore(y, Y.t, o, v);
                    }
    });
    return CUDNN_STATUS_SUCCESS;
}

} /* extern "C" */
