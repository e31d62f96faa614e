/*
 * de_backend.h — the kernel shim: backend vtable (ggml-style) and op descriptors.
 *
 * Internal to diffedit (not the public ABI; that is include/diffedit.h).
 * A backend is { api_version, iface (vtable), context }. The CPU provider is linked in;
 * the CUDA provider is a separate shared library loaded with dlopen (de_backend_load).
 *
 * Conventions
 *  - All tensors are dense, row-major, with explicit element strides where an op says so.
 *  - Image tensors are NCHW. Token tensors are [batch, tokens, channels].
 *  - dtype describes x/y/a/b/c data; bias, gamma, beta and residual are always f32.
 *    The CPU provider implements DE_F32 for every op; other dtypes return DE_ERR_UNSUPPORTED there.
 *  - Pointers in op descriptors are one of three things, and a provider never guesses which from the data:
 *      1. backend memory from the alloc slot (device memory on CUDA; on the CPU provider host memory),
 *         which is where a resident backend (DE_CAP_RESIDENT) keeps activations between ops;
 *      2. constant handles from the constant_upload slot (weights, biases, norm parameters), uploaded
 *         once at model load and recognised by the provider in its own table of handles. A handle
 *         plus an element offset addresses that element of the constant (views of a weight);
 *      3. plain host memory: accepted by every op of every provider; a device provider copies it in
 *         (and a host output back out) for that op alone, every time (nothing is cached by address).
 *    On the CPU provider all three are host addresses; it reads them in place.
 *  - Every op returns DE_OK or a negative status; on failure the backend's last error
 *    (de_backend_last_error) holds a message naming the op and the argument at fault.
 */
#ifndef DE_BACKEND_H
#define DE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: the copy op; alloc returns device memory.
 * 3: the lincomb op (a slot at the end of the vtable; the scheduler / guidance / editing latent arithmetic).
 * 4: capabilities (caps), constants uploaded once and used by handle (constant_upload / constant_release),
 *    counters (stats), and de_backend_options given at creation: the CUDA entry point takes the options.
 * 5: weight operands in their storage dtype: de_gemm_op.a_dtype / b_dtype and de_conv2d_op.weight_dtype
 *    (f16, bf16, q8_0), DE_CAP_WEIGHT_DTYPES; the trim slot and de_backend_stats.scratch_bytes. */
#define DE_BACKEND_API_VERSION 5

/* DE_Q8_0: only as a weight operand's storage (a_dtype / b_dtype / weight_dtype): each row of the matrix
 * is split in blocks of 32 elements, each block stored as { uint16_t d (fp16 scale); int8_t q[32]; }
 * (34 bytes, GGUF's block_q8_0), value = d * q. A row of k elements (k % 32 == 0) is k / 32 blocks; a row
 * stride ld (ld % 32 == 0) is ld / 32 blocks, and an element offset e (e % 32 == 0) is byte e / 32 * 34. */
typedef enum de_dtype { DE_F32 = 0, DE_F16 = 1, DE_BF16 = 2, DE_Q8_0 = 3 } de_dtype;

/* Bytes of a q8_0 block and elements per block. */
#define DE_Q8_0_BLOCK 32
#define DE_Q8_0_BYTES 34

typedef enum de_status {
    DE_OK = 0,
    DE_ERR_INVALID = -1,     /* bad descriptor (shape, stride, NULL pointer) */
    DE_ERR_UNSUPPORTED = -2, /* op/dtype not implemented by this backend */
    DE_ERR_OOM = -3,         /* allocation failed */
    DE_ERR_BACKEND = -4      /* device/runtime failure */
} de_status;

/* C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b] (+ bias[n] per row), row-major.
 * op(A) is [m, k], op(B) is [k, n], C is [m, n]. b in [0, batch). */
typedef struct de_gemm_op {
    de_dtype dtype;
    int32_t batch, m, n, k;
    bool trans_a, trans_b;
    const void *a; int64_t lda, stride_a;
    const void *b; int64_t ldb, stride_b;
    void *c;       int64_t ldc, stride_c;
    float alpha, beta;
    const float *bias;             /* [n] or NULL */
    /* API 5: storage of a weight operand when it differs from dtype (DE_F32 = 0 = as dtype). A reduced
     * operand (f16, bf16, q8_0) is a weight matrix read row by row: a only untransposed (rows of a = rows
     * of C), b only transposed (rows of b = columns of C); at most one of the two. Accumulation is f32.
     * Providers without DE_CAP_WEIGHT_DTYPES return DE_ERR_UNSUPPORTED for anything but DE_F32 here. */
    de_dtype a_dtype, b_dtype;
} de_gemm_op;

/* y[n, c_out, oh, ow] = conv(x[n, c_in, h, w], weight[c_out, c_in, kh, kw]) + bias + residual
 * oh = (h + pad_t + pad_b - kh) / stride_h + 1, likewise ow. Zero padding. */
typedef struct de_conv2d_op {
    de_dtype dtype;
    int32_t n, c_in, h, w;
    int32_t c_out, kh, kw;
    int32_t stride_h, stride_w;
    int32_t pad_t, pad_l, pad_b, pad_r;
    const void *x;
    const void *weight;
    const float *bias;             /* [c_out] or NULL */
    const float *residual;         /* [n, c_out, oh, ow] or NULL, added last */
    void *y;                       /* must not alias x */
    /* API 5: storage of weight when it differs from dtype (DE_F32 = 0 = as dtype): f16, bf16 or q8_0
     * (q8_0: c_in * kh * kw % 32 == 0), rows of c_in * kh * kw elements; f32 accumulation. */
    de_dtype weight_dtype;
} de_conv2d_op;

/* GroupNorm over x[n, c, hw] with `groups` groups, then y = norm * gamma[c] + beta[c],
 * then SiLU when silu is true. y may alias x. */
typedef struct de_group_norm_op {
    de_dtype dtype;
    int32_t n, c, hw, groups;
    float eps;
    const float *gamma, *beta;     /* [c] or NULL (= 1 / 0) */
    bool silu;
    const void *x;
    void *y;
} de_group_norm_op;

/* LayerNorm over the last dim of x[rows, cols]. y may alias x. */
typedef struct de_layer_norm_op {
    de_dtype dtype;
    int64_t rows;
    int32_t cols;
    float eps;
    const float *gamma, *beta;     /* [cols] or NULL */
    const void *x;
    void *y;
} de_layer_norm_op;

/* y[r, :] = softmax(scale * x[r, :]) for each row. y may alias x. */
typedef struct de_softmax_op {
    de_dtype dtype;
    int64_t rows;
    int32_t cols;
    float scale;
    const void *x;
    void *y;
} de_softmax_op;

/* Fused scaled-dot-product attention, never materialising [q_len, kv_len] at once:
 *   o[b, h, i, :] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h,j,:]) v[b,h,j,:]
 * Each of q/k/v/o is addressed by element strides per (batch, head, token); the last
 * (head_dim) dimension is contiguous. For a [B, L, H*D] projection output:
 *   stride_b = L*H*D, stride_h = D, stride_t = H*D. */
typedef struct de_attention_op {
    de_dtype dtype;
    int32_t batch, heads, q_len, kv_len, head_dim;
    float scale;
    const void *q; int64_t q_sb, q_sh, q_st;
    const void *k; int64_t k_sb, k_sh, k_st;
    const void *v; int64_t v_sb, v_sh, v_st;
    void *o;       int64_t o_sb, o_sh, o_st;
} de_attention_op;

typedef enum de_unary_kind {
    DE_UNARY_SILU = 0,        /* x * sigmoid(x) */
    DE_UNARY_GELU = 1,        /* exact, erf */
    DE_UNARY_GELU_TANH = 2,   /* tanh approximation */
    DE_UNARY_QUICK_GELU = 3,  /* x * sigmoid(1.702 x) */
    DE_UNARY_SCALE = 4        /* y = alpha * x + beta */
} de_unary_kind;

typedef struct de_unary_op {
    de_dtype dtype;
    de_unary_kind kind;
    int64_t n;
    float alpha, beta;        /* DE_UNARY_SCALE only */
    const void *x;
    void *y;                  /* may alias x */
} de_unary_op;

/* GEGLU: x[rows, 2*cols] -> y[rows, cols] = x[:, :cols] * gelu(x[:, cols:]) (exact gelu). */
typedef struct de_geglu_op {
    de_dtype dtype;
    int64_t rows;
    int32_t cols;
    const void *x;
    void *y;                  /* must not alias x */
} de_geglu_op;

typedef enum de_binary_kind { DE_BINARY_ADD = 0, DE_BINARY_SUB = 1, DE_BINARY_MUL = 2 } de_binary_kind;

/* y[i] = a[i] (op) b[(i / b_inner) % b_len] for i in [0, n).
 * Plain elementwise: b_len = n, b_inner = 1. Per-channel bias on NCHW: b_len = C, b_inner = H*W.
 * y may alias a. */
typedef struct de_binary_op {
    de_dtype dtype;
    de_binary_kind kind;
    int64_t n;
    int64_t b_len, b_inner;
    const void *a;
    const void *b;
    void *y;
} de_binary_op;

/* Nearest-neighbour upsample x[planes, h, w] -> y[planes, h*factor, w*factor]. */
typedef struct de_upsample_op {
    de_dtype dtype;
    int64_t planes;
    int32_t h, w, factor;
    const void *x;
    void *y;
} de_upsample_op;

/* Batched 2-D transpose x[batch, rows, cols] -> y[batch, cols, rows]. y must not alias x. */
typedef struct de_transpose_op {
    de_dtype dtype;
    int64_t batch;
    int32_t rows, cols;
    const void *x;
    void *y;
} de_transpose_op;

/* Strided copy of up to 4 dimensions (unused leading dims = 1, element strides):
 *   y[i0*ys0 + i1*ys1 + i2*ys2 + i3*ys3] = x[i0*xs0 + i1*xs1 + i2*xs2 + i3*xs3]
 * Channel concatenation, slices, interleaves and gathers without a round trip through the host.
 * x and y must not overlap. */
typedef struct de_copy_op {
    de_dtype dtype;
    int64_t shape[4];
    const void *x; int64_t x_stride[4];
    void *y;       int64_t y_stride[4];
} de_copy_op;

/* y[i] = c[0]*x[0][i] + c[1]*x[1][i] + ... + c[terms-1]*x[terms-1][i], i in [0, n), f32, evaluated left to
 * right as ((c0*x0 + c1*x1) + c2*x2) + c3*x3, 1 <= terms <= 4. y may alias any x. The scheduler updates,
 * classifier-free guidance and the editing methods' latent arithmetic run through it so a denoising step
 * never leaves a resident backend. */
typedef struct de_lincomb_op { de_dtype dtype; int64_t n; int32_t terms; float c[4]; const void *x[4]; void *y; } de_lincomb_op;

typedef struct de_backend de_backend;

/* ---- capabilities (API 4) ---- */

enum {
    DE_CAP_RESIDENT = 1u << 0,  /* alloc returns the backend's own memory: op outputs live there until host
                                 * code downloads them (CUDA; the CPU provider only in its staged test mode) */
    DE_CAP_CONSTANTS = 1u << 1, /* constant_upload makes a copy: a model should upload its weights once and
                                 * pass the handles (the plain CPU provider returns the host pointer itself) */
    DE_CAP_ASYNC = 1u << 2,     /* ops may return before their work is done (synchronize waits) */
    DE_CAP_F32 = 1u << 8,       /* op descriptors accept dtype DE_F32 (every provider) */
    DE_CAP_F16 = 1u << 9,       /* ... DE_F16 */
    DE_CAP_BF16 = 1u << 10,     /* ... DE_BF16 */
    DE_CAP_WEIGHT_DTYPES = 1u << 11 /* API 5: gemm a_dtype / b_dtype and conv2d weight_dtype accept DE_F16,
                                     * DE_BF16 and DE_Q8_0 weights read in place (the CPU provider) */
};

/* What a constant is, so a provider can choose how to keep it. */
typedef enum de_const_kind {
    DE_CONST_WEIGHT = 0, /* matrix / conv weight (linear and conv2d weight slots, gemm b): may be stored in
                          * reduced precision (the CUDA provider keeps fp16, or bf16 by option) */
    DE_CONST_PARAM = 1   /* f32 parameter (bias, norm gamma/beta, embeddings): kept in f32 exactly */
} de_const_kind;

/* Counters since the backend was created (a test and benchmark aid; API 4). */
typedef struct de_backend_stats {
    size_t struct_size;          /* the caller sets sizeof(de_backend_stats) */
    int64_t constants;           /* constant_upload calls that made a copy */
    int64_t constant_bytes;      /* bytes those copies hold in the backend (after any precision reduction) */
    int64_t host_operands;       /* op operands that were plain host memory (on CUDA: one host<->device copy
                                  * each; on the staged CPU provider: counted, read in place) */
    int64_t scratch_bytes;       /* API 5: bytes the provider's reusable op buffers hold now (CPU: im2col,
                                  * Winograd, weight panels, attention tiles; they grow to the largest request
                                  * and stay until trim) */
    int64_t bf16_gemms;          /* CPU: GEMMs computed in bf16 (options.cpu_compute; one per gemm batch item
                                  * or conv GEMM block) */
} de_backend_stats;

/* ---- options given at creation (API 4) ----
 * One struct for every provider: de_backend_options_init gives the defaults, de_backend_options_from_env
 * overlays the DIFFEDIT_* environment variables (read there, once; no op reads the environment). */
typedef enum de_winograd_mode {
    DE_WINOGRAD_AUTO = 0,        /* F(4x4) or F(2x2) by shape, as measured (cpu_gemm_conv.c) */
    DE_WINOGRAD_F2 = 2,          /* DIFFEDIT_WINOGRAD=2 */
    DE_WINOGRAD_F4 = 4,          /* DIFFEDIT_WINOGRAD=4 */
    DE_WINOGRAD_OFF = -1         /* DIFFEDIT_NO_WINOGRAD=1: im2col / 1x1 GEMM only */
} de_winograd_mode;

/* CPU compute precision of GEMMs (gemm, conv2d's im2col / 1x1 GEMMs): f32, or bf16 operands (rounded to
 * nearest even while packing) with f32 accumulation on AMX / AVX512_BF16 CPUs (cpu_bf16.c). */
typedef enum de_compute_mode {
    DE_COMPUTE_F32 = 0,          /* f32 everywhere (DIFFEDIT_COMPUTE=f32; the default until 2026-12-03) */
    DE_COMPUTE_BF16 = 1,         /* every GEMM with both operands rounded to bf16, where the CPU has a bf16 kernel
                                  * (DIFFEDIT_COMPUTE=bf16); fastest, activations lose 16 bits */
    DE_COMPUTE_AUTO = 2,         /* on AMX, GEMMs with a reduced (f16 / bf16 / q8_0) weight in bf16 terms that keep
                                  * f32-class parity: activation = hi + lo (two bf16); an f16 weight hi + lo too (three
                                  * terms: hi hi + lo hi + hi lo), bf16 / q8_0 one (two terms); also the Winograd GEMMs
                                  * of convolutions with such weights. f32 for f32 weights and without AMX
                                  * (DIFFEDIT_COMPUTE=auto; the default: de_backend_options_init) */
    DE_COMPUTE_I16 = 3           /* on AVX512-VNNI CPUs (cpu_i16.c): GEMMs with a reduced weight (linear layers), the
                                  * GEMMs of convolutions (im2col, 1x1, Winograd's per-point ones) and attention's
                                  * QK^T and PV (even head_dim), operands quantized per block of 64 to 14-bit
                                  * (activation) / 13-bit (weight) integers (vpdpwssd: twice the f32 FMA rate on AMD
                                  * Zen 4); f32 elsewhere (f32-weight linears, the softmax) and on other CPUs
                                  * (DIFFEDIT_COMPUTE=i16) */
} de_compute_mode;

/* The CPU's bf16 GEMM kernels, best last. */
typedef enum de_bf16_kernel {
    DE_BF16_KERNEL_NONE = 0,     /* neither: bf16 compute is not offered (GEMMs stay f32) */
    DE_BF16_KERNEL_AVX512 = 1,   /* AVX512_BF16 vdpbf16ps */
    DE_BF16_KERNEL_AMX = 2       /* AMX-BF16 tiles (tdpbf16ps), granted by the kernel (arch_prctl) */
} de_bf16_kernel;

/* The best bf16 kernel this CPU and OS offer (cpuid, xgetbv, and for AMX the Linux permission request,
 * made once per process). */
int de_cpu_bf16_kernel(void);
/* "amx", "avx512bf16", "none" */
const char *de_bf16_kernel_name(int kernel);
/* 1 when the CPU and OS offer AVX-512 with VNNI (vpdpwssd): the i16 kernel of DE_COMPUTE_I16 (cpu_i16.c) */
int de_cpu_has_avx512vnni(void);

typedef struct de_backend_options {
    size_t struct_size;          /* sizeof(de_backend_options); a provider reads only what fits */
    int32_t threads;             /* CPU worker threads, 0 = all cores */
    int32_t device;              /* CUDA device index */
    bool cpu_staged;             /* CPU: alloc'd outputs and constants in the provider's own blocks, reports
                                  * DE_CAP_RESIDENT / DE_CAP_CONSTANTS (test mode; DIFFEDIT_CPU_STAGED=1) */
    int32_t winograd;            /* de_winograd_mode (DIFFEDIT_WINOGRAD=2|4, DIFFEDIT_NO_WINOGRAD=1) */
    int32_t winograd_tiles;      /* CPU Winograd tile block, 0 = automatic (DIFFEDIT_WINOGRAD_TILES) */
    int32_t im2col_rows;         /* CPU im2col row block, 0 = automatic (DIFFEDIT_IM2COL_ROWS) */
    bool kernel_profile;         /* CPU: per-op wall time table on stderr at exit (DIFFEDIT_KERNEL_PROFILE=1) */
    int32_t cuda_dtype;          /* de_dtype of CUDA GEMM/conv operands: DE_F16 (default) or DE_BF16
                                  * (DIFFEDIT_CUDA_DTYPE=bf16) */
    bool cuda_weight_cache;      /* CUDA: constant_upload copies (default true); false: constants stay host
                                  * memory and every op copies them in (DIFFEDIT_CUDA_WEIGHT_CACHE=0) */
    bool cuda_sync;              /* CUDA: wait for the stream after every op (DIFFEDIT_CUDA_SYNC=1) */
    bool cuda_resident;          /* CUDA: report DE_CAP_RESIDENT (default true); false: the Swift layer keeps
                                  * activations in host memory (DIFFEDIT_CUDA_RESIDENT=0) */
    char backend_path[1024];     /* where to look for libdiffedit_cuda.so first, ':'-separated files or
                                  * folders ("" = only next to the library; DIFFEDIT_BACKEND_PATH) */
    int32_t cpu_compute;         /* CPU: de_compute_mode (DIFFEDIT_COMPUTE=f32|bf16|auto|i16) */
    int32_t cpu_bf16_kernel;     /* CPU: the best de_bf16_kernel to use, 0 = the best the CPU has
                                  * (DIFFEDIT_BF16_KERNEL=amx|avx512bf16|none; none = -1: bf16 never used) */
    int32_t cpu_simd;            /* CPU: widest vectors of the hand-written f32 kernels (attention): 0 = the widest
                                  * the CPU has (AVX-512 where present), 256 = AVX2 only (DIFFEDIT_CPU_SIMD=256;
                                  * a test and comparison aid) */
    int32_t winograd_channels;   /* CPU Winograd output-channel block, 0 = automatic: all channels while their
                                  * transformed weights stay under 32 MB (DIFFEDIT_WINOGRAD_CHANNELS) */
} de_backend_options;

/* Defaults: struct_size set, threads 0, device 0, winograd auto, cuda_dtype DE_F16, cuda_weight_cache and
 * cuda_resident true, everything else 0 / false / "". */
void de_backend_options_init(de_backend_options *o);
/* de_backend_options_init, then the DIFFEDIT_* variables named above (getenv here and nowhere else). */
void de_backend_options_from_env(de_backend_options *o);

/* The vtable. One slot a line; optional slots say what NULL means. */
struct de_backend_i {
    const char *(*get_name)(de_backend *be);                          /* "cpu", "cuda" */
    void (*free)(de_backend *be);                                     /* releases be and its context */
    void (*memory)(de_backend *be, size_t *free, size_t *total);     /* NULL: unknown (report 0, 0) */
    void *(*alloc)(de_backend *be, size_t bytes);                     /* NULL result = out of memory */
    void (*release)(de_backend *be, void *ptr);                       /* ptr from alloc (NULL ok) */
    de_status (*upload)(de_backend *be, void *dst, const void *src, size_t bytes);   /* host -> backend */
    de_status (*download)(de_backend *be, void *dst, const void *src, size_t bytes); /* backend -> host */
    de_status (*synchronize)(de_backend *be);                        /* NULL: ops are synchronous */
    de_status (*gemm)(de_backend *be, const de_gemm_op *op);
    de_status (*conv2d)(de_backend *be, const de_conv2d_op *op);
    de_status (*group_norm)(de_backend *be, const de_group_norm_op *op);
    de_status (*layer_norm)(de_backend *be, const de_layer_norm_op *op);
    de_status (*softmax)(de_backend *be, const de_softmax_op *op);
    de_status (*attention)(de_backend *be, const de_attention_op *op);
    de_status (*unary)(de_backend *be, const de_unary_op *op);
    de_status (*geglu)(de_backend *be, const de_geglu_op *op);
    de_status (*binary)(de_backend *be, const de_binary_op *op);
    de_status (*upsample)(de_backend *be, const de_upsample_op *op);
    de_status (*transpose)(de_backend *be, const de_transpose_op *op);
    const char *(*last_error)(de_backend *be);                       /* never NULL */
    de_status (*copy)(de_backend *be, const de_copy_op *op);          /* API 2 */
    de_status (*lincomb)(de_backend *be, const de_lincomb_op *op);   /* API 3 */
    uint32_t (*caps)(de_backend *be);                                 /* API 4: DE_CAP_* bits; NULL: DE_CAP_F32 */
    /* API 4: a handle for `bytes` of f32 host data that ops accept in place of the host pointer (see the
     * conventions above); the provider keeps its copy until constant_release. The host data must stay
     * valid and unchanged until then (a provider may read it again, e.g. for another layout). NULL result:
     * failure (last_error says why). NULL slot: constants are host pointers. */
    void *(*constant_upload)(de_backend *be, const void *host, size_t bytes, de_const_kind kind);
    void (*constant_release)(de_backend *be, void *handle);          /* API 4; handle from constant_upload */
    void (*stats)(de_backend *be, de_backend_stats *out);            /* API 4; NULL: all counters 0 */
    void (*trim)(de_backend *be);     /* API 5: frees the reusable op buffers (scratch) after a large request;
                                       * the next op allocates what it needs again. NULL: nothing to free */
};

struct de_backend {
    int api_version;                 /* DE_BACKEND_API_VERSION */
    struct de_backend_i iface;
    void *context;
};

/* The entry point a dynamically loaded provider exports (libdiffedit_cuda.so), API 4: takes the options
 * (device, dtype, ... ; never NULL); returns NULL and fills err when no usable device exists. */
typedef de_backend *(*de_backend_init_fn)(const de_backend_options *opts, char *err, size_t err_len);
#define DE_BACKEND_ENTRY_SYMBOL "de_backend_cuda_init"

/* ---- registry ---- */

/* CPU provider; n_threads 0 = all cores; default options (not the environment). Never NULL except on
 * out-of-memory. */
de_backend *de_backend_cpu_init(int n_threads);
/* CPU provider with options (opts NULL = defaults). */
de_backend *de_backend_cpu_init_opts(const de_backend_options *opts);

/* name: "auto", "cpu" or "cuda". "auto" tries CUDA (provider found in opts->backend_path, then next to
 * the loaded library) and falls back to CPU, writing the reason to err. "cuda" returns NULL with the
 * reason in err when no usable provider/device exists. opts NULL = de_backend_options_from_env. */
de_backend *de_backend_load_opts(const char *name, const de_backend_options *opts, char *err, size_t err_len);
/* de_backend_load_opts with the environment's options and the given device and thread count. */
de_backend *de_backend_load(const char *name, int device, int n_threads, char *err, size_t err_len);
void de_backend_free(de_backend *be);
const char *de_backend_name(de_backend *be);
const char *de_backend_last_error(de_backend *be);

/* Dispatchers: check be and op, call the slot, or return DE_ERR_UNSUPPORTED when it is NULL. */
de_status de_gemm(de_backend *be, const de_gemm_op *op);
de_status de_conv2d(de_backend *be, const de_conv2d_op *op);
de_status de_group_norm(de_backend *be, const de_group_norm_op *op);
de_status de_layer_norm(de_backend *be, const de_layer_norm_op *op);
de_status de_softmax(de_backend *be, const de_softmax_op *op);
de_status de_attention(de_backend *be, const de_attention_op *op);
de_status de_unary(de_backend *be, const de_unary_op *op);
de_status de_geglu(de_backend *be, const de_geglu_op *op);
de_status de_binary(de_backend *be, const de_binary_op *op);
de_status de_upsample(de_backend *be, const de_upsample_op *op);
de_status de_transpose(de_backend *be, const de_transpose_op *op);
de_status de_copy(de_backend *be, const de_copy_op *op);
/* Also validates the descriptor itself (n >= 0, 1 <= terms <= 4, non-NULL x[0..terms) and y):
 * DE_ERR_INVALID with a message naming the field (in de_backend_last_error, or err of the call). */
de_status de_lincomb(de_backend *be, const de_lincomb_op *op);

/* Memory slots through the handle (alloc NULL = out of memory or no alloc slot). */
void *de_backend_alloc(de_backend *be, size_t bytes);
void de_backend_release(de_backend *be, void *ptr);
de_status de_backend_download(de_backend *be, void *host_dst, const void *src, size_t bytes);
de_status de_backend_upload(de_backend *be, void *dst, const void *host_src, size_t bytes);
de_status de_backend_synchronize(de_backend *be);

/* API 4 through the handle. caps: the provider's DE_CAP_* bits (DE_CAP_F32 when the slot is NULL).
 * constant_upload: the slot's handle, or `host` itself when the provider has no slot; NULL on failure.
 * constant_release: ignores NULL and handles that are the host pointer (no slot). stats: zeros without
 * the slot; out->struct_size must be set. */
uint32_t de_backend_caps(de_backend *be);
void *de_backend_constant_upload(de_backend *be, const void *host, size_t bytes, de_const_kind kind);
void de_backend_constant_release(de_backend *be, void *handle);
void de_backend_stats_get(de_backend *be, de_backend_stats *out);
/* API 5: the trim slot (nothing without one). Safe between ops from any thread (waits for a running op). */
void de_backend_trim(de_backend *be);

/* fp16/bf16 -> f32 conversion helpers used by the weight loader (host memory, threaded). */
void de_f16_to_f32(const uint16_t *src, float *dst, int64_t n);
void de_bf16_to_f32(const uint16_t *src, float *dst, int64_t n);
/* f32 -> fp16 / bf16, round to nearest even (NaN stays NaN; fp16 overflow -> inf), threaded. */
void de_f32_to_f16(const float *src, uint16_t *dst, int64_t n);
void de_f32_to_bf16(const float *src, uint16_t *dst, int64_t n);
/* rows x k f32 (row stride k) -> q8_0 (k % 32 == 0; rows * k / 32 blocks of 34 bytes): per block
 * d = max|x| / 127 rounded to fp16, q = round(x / d) (0 where d is 0), as GGUF's quantize_row_q8_0. */
void de_quantize_q8_0(const float *src, void *dst, int64_t rows, int64_t k);
/* n elements (n % 32 == 0) of q8_0 -> f32. */
void de_dequantize_q8_0(const void *src, float *dst, int64_t n);

#ifdef __cplusplus
}
#endif
#endif /* DE_BACKEND_H */
