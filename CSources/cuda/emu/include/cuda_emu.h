/* cuda_emu.h — the CUDA emulation used by tests (libdiffedit_cuda_emu.so, make cuda-emu): the kernel
 * language and the CUDA runtime API the provider uses, for compiling the provider's .cu files as host C++.
 * The shipped provider (make cuda) is built by nvcc against the real headers and never sees this file.
 *
 * Kernel language: __global__/__device__/__shared__, threadIdx/blockIdx/blockDim/gridDim, __syncthreads
 * (a real barrier across the threads of one block: each CUDA thread is a fiber, blocks run one at a time,
 * so a block's __shared__ variables, emulated as function-local statics, are the block's own), warp
 * shuffles and votes with their documented semantics (a warp's lanes exchange through a warp barrier; a
 * lane named in the mask that never arrives is a deadlock, reported), atomics, __half / __nv_bfloat16
 * (round-to-nearest-even conversions, overflow to inf as on the device).
 * Launches: CU_LAUNCH(grid, block, shmem, stream, kernel)(args...) is kernel<<<grid, block, shmem,
 * stream>>>(args...) under nvcc; here it checks the configuration (block <= 1024 threads, grid y/z <=
 * 65535), checks that every pointer argument is NULL or device memory, and queues the kernel on the stream.
 * Streams run lazily, in order, when the host waits (cudaStreamSynchronize, cudaEventSynchronize, a
 * synchronous copy, cudaFree): work the host queued is really asynchronous, so a host buffer reused before
 * the copy that reads it has run gives wrong data here as on a GPU. Device memory lives in a reserved
 * range that is PROT_NONE while host code runs: a host read or write of device memory faults.
 * Freed device memory is filled with 0xFF bytes (NaN as f32, fp16 and bf16), so a read after free, or of a
 * reused block before it was written, sees NaN; memory fresh from the reserve reads as zero. */
#ifndef DE_CUDA_EMU_H
#define DE_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <tuple>
#include <type_traits>
#include <utility>
#include <functional>

#define DE_CUDA_EMU 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __restrict__ __restrict

/* ---- runtime types ---- */

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchFailure = 719,
    cudaErrorNoDevice = 100,
    cudaErrorInsufficientDriver = 35,
} cudaError_t;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;

typedef enum cudaDataType_t {
    CUDA_R_16F = 2,
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_16BF = 14,
} cudaDataType_t, cudaDataType;

struct emu_stream;
struct emu_event;
typedef struct emu_stream *cudaStream_t;
typedef struct emu_event *cudaEvent_t;

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaHostAllocDefault 0x00
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct cudaDeviceProp {
    char name[256];
    int major, minor;
    size_t totalGlobalMem;
    int multiProcessorCount;
    int warpSize;
};

extern "C" {
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t s);
cudaError_t cudaFreeAsync(void *p, cudaStream_t s);
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
}

/* ---- the emulator's internals the kernel language needs ---- */

namespace emu {

struct thread_state { uint3 tid; int linear; };
extern thread_local thread_state *cur;       /* the running CUDA thread */
extern thread_local uint3 block_idx;
extern thread_local dim3 block_dim, grid_dim;

void syncthreads();
/* a warp-wide exchange: every lane in mask contributes v; returns the values of all 32 lanes */
const uint64_t *warp_exchange(unsigned mask, uint64_t v, const char *what);
unsigned lane_id();

/* the host side of a launch: checks, then queues run(block) on the stream */
bool launch_check(const char *kernel, dim3 grid, dim3 block, size_t shmem);
bool check_pointer_arg(const char *kernel, int index, const void *p);
void enqueue_kernel(cudaStream_t s, const char *kernel, dim3 grid, dim3 block, std::function<void()> body);

template <class T> inline bool check_arg(const char *k, int i, const T &v) {
    if constexpr (std::is_pointer<T>::value) return check_pointer_arg(k, i, (const void *)v);
    else return true;
}

template <class... P>
struct Launch {
    dim3 grid, block;
    size_t shmem;
    cudaStream_t stream;
    void (*kernel)(P...);
    const char *name;
    Launch(dim3 g, dim3 b, size_t sh, cudaStream_t s, void (*k)(P...), const char *n)
        : grid(g), block(b), shmem(sh), stream(s), kernel(k), name(n) {}
    template <class... A> void operator()(A &&...a) {
        static_assert(sizeof...(A) == sizeof...(P), "kernel argument count");
        std::tuple<typename std::decay<P>::type...> args(std::forward<A>(a)...); /* converted as a call would */
        if (!launch_check(name, grid, block, shmem)) return;
        bool ok = true;
        int i = 0;
        std::apply([&](const auto &...x) { ((ok = check_arg(name, i++, x) && ok), ...); }, args);
        if (!ok) return;
        auto k = kernel;
        enqueue_kernel(stream, name, grid, block, [k, args]() { std::apply(k, args); });
    }
};

template <class... P>
Launch<P...> make_launch(dim3 g, dim3 b, size_t sh, cudaStream_t s, const char *n, void (*k)(P...)) {
    return Launch<P...>(g, b, sh, s, k, n);
}

} // namespace emu

#define CU_LAUNCH(grid, block, shmem, stream, ...) ::emu::make_launch((grid), (block), (shmem), (stream), #__VA_ARGS__, __VA_ARGS__)

#define threadIdx (::emu::cur->tid)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)
static const int warpSize = 32;

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { (void)emu::warp_exchange(mask, 0, "__syncwarp"); }

template <class T> inline uint64_t emu_bits(T v) { static_assert(sizeof(T) <= 8, "shuffle of a wide type"); uint64_t b = 0; memcpy(&b, &v, sizeof v); return b; }
template <class T> inline T emu_from_bits(uint64_t b) { T v; memcpy(&v, &b, sizeof v); return v; }

/* __shfl_*_sync: lanes are split into segments of `width` (a power of two <= 32) */
template <class T> inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    const uint64_t *all = emu::warp_exchange(mask, emu_bits(v), "__shfl_sync");
    unsigned lane = emu::lane_id(), base = lane & ~(unsigned)(width - 1);
    return emu_from_bits<T>(all[base + ((unsigned)src & (unsigned)(width - 1))]);
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    const uint64_t *all = emu::warp_exchange(mask, emu_bits(v), "__shfl_xor_sync");
    unsigned lane = emu::lane_id(), base = lane & ~(unsigned)(width - 1), s = lane ^ (unsigned)lane_mask;
    return s >= base + (unsigned)width ? v : emu_from_bits<T>(all[s]); /* a later segment: own value */
}
template <class T> inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const uint64_t *all = emu::warp_exchange(mask, emu_bits(v), "__shfl_up_sync");
    unsigned lane = emu::lane_id(), seg = lane & (unsigned)(width - 1);
    return seg < delta ? v : emu_from_bits<T>(all[lane - delta]);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const uint64_t *all = emu::warp_exchange(mask, emu_bits(v), "__shfl_down_sync");
    unsigned lane = emu::lane_id(), seg = lane & (unsigned)(width - 1);
    return seg + delta >= (unsigned)width ? v : emu_from_bits<T>(all[lane + delta]);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    const uint64_t *all = emu::warp_exchange(mask, pred != 0, "__ballot_sync");
    unsigned r = 0;
    for (int i = 0; i < 32; i++) if ((mask >> i & 1u) && all[i]) r |= 1u << i;
    return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == mask; }

/* atomics (blocks may run on several host threads: real atomics) */
template <class T> inline T atomicAdd(T *p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline float atomicAdd(float *p, float v) {
    float old, want;
    __atomic_load(p, &old, __ATOMIC_SEQ_CST);
    do { want = old + v; } while (!__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    return old;
}
template <class T> inline T atomicMax(T *p, T v) { T o = __atomic_load_n(p, __ATOMIC_SEQ_CST); while (o < v && !__atomic_compare_exchange_n(p, &o, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {} return o; }
template <class T> inline T atomicMin(T *p, T v) { T o = __atomic_load_n(p, __ATOMIC_SEQ_CST); while (o > v && !__atomic_compare_exchange_n(p, &o, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {} return o; }
template <class T> inline T atomicExch(T *p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
template <class T> inline T atomicCAS(T *p, T cmp, T v) { __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); return cmp; }

/* device math the host lacks */
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __fdividef(float a, float b) { return a / b; }

/* ---- 16-bit types ---- */

struct __half {
    _Float16 v;
    __half() = default;
    __half(float f) : v((_Float16)f) {}            /* round to nearest even; |f| > 65504 rounds to inf */
    operator float() const { return (float)v; }
};
struct __nv_bfloat16 {
    uint16_t bits;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) {
        uint32_t u;
        memcpy(&u, &f, 4);
        if ((u & 0x7fffffffu) > 0x7f800000u) bits = (uint16_t)((u >> 16) | 0x40); /* NaN stays a quiet NaN */
        else bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);          /* round to nearest even */
    }
    operator float() const { uint32_t u = (uint32_t)bits << 16; float f; memcpy(&f, &u, 4); return f; }
};
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __float2half(float f) { return __half(f); }
inline float __half2float(__half h) { return (float)h; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return (float)h; }

/* ---- test hooks (exported by libdiffedit_cuda_emu.so) ----
 * de_cuda_emu_inject(what, n): the n-th next call of `what` fails (n = 1: the next one):
 *   "malloc"    cudaMalloc / cudaMallocAsync: cudaErrorMemoryAllocation (not sticky)
 *   "kernel"    that kernel faults when it runs: cudaErrorIllegalAddress, sticky (every later call fails)
 *   "heuristic" cublasLtMatmulAlgoGetHeuristic: CUBLAS_STATUS_NOT_SUPPORTED (n calls in a row)
 * de_cuda_emu_counters: kernels run, bytes copied host<->device, emulator violations seen. */
extern "C" __attribute__((visibility("default"))) int de_cuda_emu_inject(const char *what, int n);
struct de_cuda_emu_counts { long long kernels, h2d_bytes, d2h_bytes, violations, heuristic_fallbacks; };
extern "C" __attribute__((visibility("default"))) void de_cuda_emu_counters(struct de_cuda_emu_counts *out);

namespace emu {
/* shared by the library stand-ins (emu_blas.cpp, emu_dnn.cpp) */
void enqueue(cudaStream_t s, const char *what, std::function<void()> fn);
bool is_device(const void *p, size_t bytes);
void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int inject_hit(const char *what);
extern de_cuda_emu_counts counts;
}

#endif
