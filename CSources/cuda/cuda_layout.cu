/* cuda_layout.cu — precision and layout conversion kernels of the CUDA provider: f32 -> fp16/bf16,
 * NCHW <-> NHWC (with bias and residual on the way back), conv weights KCRS -> KRSC, bias rows. */
#include "cuda_internal.h"


template <typename H> __device__ __forceinline__ H to_half(float v);
template <> __device__ __forceinline__ __half to_half<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 to_half<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ float to_half<float>(float v) { return v; }  /* plain f32 transpose */
__device__ __forceinline__ float from_half(__half v) { return __half2float(v); }
__device__ __forceinline__ float from_half(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename H>
__global__ void k_f32_to_half(H *dst, const float *src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = to_half<H>(src[i]);
}

/* [n, c, hw] f32 -> [n, hw, c] half (or f32: the transpose op), 32x32 tiles through shared memory */
template <typename H>
__global__ void k_nchw_to_nhwc(H *dst, const float *src, int ch, int hw, float scale) {
    __shared__ float tile[32][33];
    int b = blockIdx.z;
    int p0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    const float *s = src + (int64_t)b * ch * hw;
    H *d = dst + (int64_t)b * ch * hw;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int cc = c0 + i, p = p0 + threadIdx.x;
        tile[i][threadIdx.x] = (cc < ch && p < hw) ? s[(int64_t)cc * hw + p] : 0.f;
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int p = p0 + i, cc = c0 + threadIdx.x;
        if (p < hw && cc < ch) d[(int64_t)p * ch + cc] = to_half<H>(tile[threadIdx.x][i] * scale);
    }
}

template <typename H>
__global__ void k_nhwc_to_nchw(float *dst, const H *src, const float *bias, const float *res, int ch, int hw, float scale) {
    __shared__ float tile[32][33];
    int b = blockIdx.z;
    int p0 = blockIdx.x * 32, c0 = blockIdx.y * 32;
    const H *s = src + (int64_t)b * ch * hw;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int p = p0 + i, cc = c0 + threadIdx.x;
        tile[i][threadIdx.x] = (p < hw && cc < ch) ? from_half(s[(int64_t)p * ch + cc]) : 0.f;
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        int cc = c0 + i, p = p0 + threadIdx.x;
        if (cc < ch && p < hw) {
            int64_t o = (int64_t)b * ch * hw + (int64_t)cc * hw + p;
            float v = tile[threadIdx.x][i] * scale;
            if (bias) v += bias[cc];
            if (res) v += res[o];
            dst[o] = v;
        }
    }
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

/* weight [k, c, r, s] (f32 or 16-bit) -> [k, r, s, c] 16-bit */
template <typename S, typename H>
__global__ void k_kcrs_to_krsc(H *dst, const S *src, int k, int c, int rs) {
    int64_t n = (int64_t)k * c * rs;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t kk = i / ((int64_t)c * rs), rem = i % ((int64_t)c * rs);
        int64_t cc = rem / rs, pos = rem % rs;
        dst[kk * rs * c + pos * c + cc] = to_half<H>(to_f32(src[i]));
    }
}

static unsigned grid_for(int64_t n, int block) {
    int64_t g = (n + block - 1) / block;
    if (g > 65535 * 8) g = 65535 * 8;
    if (g < 1) g = 1;
    return (unsigned)g;
}

de_status cu_f32_to_half(cuda_ctx *c, void *dst, const float *src, int64_t n, const char *op) {
    if (n <= 0) return DE_OK;
    if (c->use_bf16) CU_LAUNCH(grid_for(n, 256), 256, 0, c->stream, k_f32_to_half<__nv_bfloat16>)((__nv_bfloat16 *)dst, src, n);
    else CU_LAUNCH(grid_for(n, 256), 256, 0, c->stream, k_f32_to_half<__half>)((__half *)dst, src, n);
    return cu_check_launch(c, op, "f32_to_half");
}

de_status cu_nchw_f32_to_nhwc_half(cuda_ctx *c, void *dst, const float *src, int n, int ch, int hw, float scale, const char *op) {
    dim3 grid((unsigned)((hw + 31) / 32), (unsigned)((ch + 31) / 32), (unsigned)n), block(32, 8);
    if (c->use_bf16) CU_LAUNCH(grid, block, 0, c->stream, k_nchw_to_nhwc<__nv_bfloat16>)((__nv_bfloat16 *)dst, src, ch, hw, scale);
    else CU_LAUNCH(grid, block, 0, c->stream, k_nchw_to_nhwc<__half>)((__half *)dst, src, ch, hw, scale);
    return cu_check_launch(c, op, "nchw_to_nhwc");
}

de_status cu_transpose_f32(cuda_ctx *c, float *dst, const float *src, int batch, int rows, int cols, const char *op) {
    dim3 grid((unsigned)((cols + 31) / 32), (unsigned)((rows + 31) / 32), (unsigned)batch), block(32, 8);
    CU_LAUNCH(grid, block, 0, c->stream, k_nchw_to_nhwc<float>)(dst, src, rows, cols, 1.f);
    return cu_check_launch(c, op, "transpose");
}

de_status cu_nhwc_half_to_nchw_f32(cuda_ctx *c, float *dst, const void *src, const float *bias, const float *residual,
                                   int n, int ch, int hw, float scale, const char *op) {
    dim3 grid((unsigned)((hw + 31) / 32), (unsigned)((ch + 31) / 32), (unsigned)n), block(32, 8);
    if (c->use_bf16)
        CU_LAUNCH(grid, block, 0, c->stream, k_nhwc_to_nchw<__nv_bfloat16>)(dst, (const __nv_bfloat16 *)src, bias, residual, ch, hw, scale);
    else CU_LAUNCH(grid, block, 0, c->stream, k_nhwc_to_nchw<__half>)(dst, (const __half *)src, bias, residual, ch, hw, scale);
    return cu_check_launch(c, op, "nhwc_to_nchw");
}

__global__ void k_add_bias_rows(float *y, const float *bias, int64_t rows, int64_t ld, int32_t cols, int64_t stride) {
    int64_t per = rows * cols;
    int64_t b = blockIdx.y;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < per; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, col = i % cols;
        y[b * stride + r * ld + col] += bias[col];
    }
}

de_status cu_add_bias_rows(cuda_ctx *c, float *y, const float *bias, int64_t rows, int64_t ld, int32_t cols, int batch,
                           int64_t stride, const char *op) {
    dim3 grid(grid_for(rows * cols, 256), (unsigned)batch);
    CU_LAUNCH(grid, 256, 0, c->stream, k_add_bias_rows)(y, bias, rows, ld, cols, stride);
    return cu_check_launch(c, op, "add_bias_rows");
}

de_status cu_kcrs_to_krsc(cuda_ctx *c, void *dst, const void *src, int src_half, const int32_t *kcrs, const char *op) {
    const int k = kcrs[0], ch = kcrs[1], rs = kcrs[2] * kcrs[3];
    const int64_t n = (int64_t)k * ch * rs;
    if (n <= 0) return DE_OK;
    const unsigned g = grid_for(n, 256);
    if (c->use_bf16) {
        if (src_half) CU_LAUNCH(g, 256, 0, c->stream, k_kcrs_to_krsc<__nv_bfloat16, __nv_bfloat16>)((__nv_bfloat16 *)dst, (const __nv_bfloat16 *)src, k, ch, rs);
        else CU_LAUNCH(g, 256, 0, c->stream, k_kcrs_to_krsc<float, __nv_bfloat16>)((__nv_bfloat16 *)dst, (const float *)src, k, ch, rs);
    } else {
        if (src_half) CU_LAUNCH(g, 256, 0, c->stream, k_kcrs_to_krsc<__half, __half>)((__half *)dst, (const __half *)src, k, ch, rs);
        else CU_LAUNCH(g, 256, 0, c->stream, k_kcrs_to_krsc<float, __half>)((__half *)dst, (const float *)src, k, ch, rs);
    }
    return cu_check_launch(c, op, "kcrs_to_krsc");
}
