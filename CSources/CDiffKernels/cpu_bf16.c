/* cpu_bf16.c — GEMM in bf16 with f32 accumulation: AMX tiles (tdpbf16ps) or AVX512_BF16 (vdpbf16ps).
 *
 * C[m, n] = alpha * op(A)[m, k] @ op(B)[k, n] + beta * C (+ bias[n] per row), row-major, f32 C.
 * Both operands are converted to bf16 (round to nearest even) while packing, once per call:
 *   - A into row tiles: tile (i, kb) = rows 16i..16i+15, k 32kb..32kb+31, 16 rows of 32 bf16 (1 KB), the
 *     tiles of one row strip contiguous over kb; element (r, kk) at r * 32 + kk;
 *   - B into column tiles in the pair-interleaved ("VNNI") layout tdpbf16ps / vdpbf16ps read: tile (j, kb)
 *     = columns 16j..16j+15, k 32kb..; element (k = 2p + q, column c) at p * 32 + 2c + q.
 * m and n are padded to multiples of 32 and k to a multiple of 32 with zeros, so the compute kernels always
 * run 2x2 tiles (32 x 32 of C); the epilogue writes only the valid part. Sources: f32 in either layout
 * (trans flags), or a weight operand stored f16 / bf16 / q8_0 read by rows (A untransposed, B transposed),
 * as de_gemm_op allows.
 * Kernels: AMX (tiles 0-3 accumulate C, 4-5 A, 6-7 B; tile config loaded per worker per call) where cpuid
 * reports AMX-TILE + AMX-BF16 and Linux grants the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM,
 * XFEATURE_XTILEDATA); else AVX512_BF16 (8 rows x 32 columns of accumulators); else none (the caller keeps
 * f32). Functions that use the instructions carry __attribute__((target)), so the rest of the library
 * still builds for generic x86-64 and is never run on a CPU without them (runtime detection here).
 */
#include "cpu_internal.h"

#include <stdlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DE_HAVE_X86_BF16 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define BF_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

/* ---------------------------------------------------------------- detection */

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static int detected = DE_BF16_KERNEL_NONE;
static int has_avx512 = 0, has_vnni = 0;

#ifdef DE_HAVE_X86_BF16
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static void detect(void) {
#ifdef DE_HAVE_X86_BF16
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return;          /* OSXSAVE */
    const uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0xe6) != 0xe6) return;                                          /* SSE, AVX, opmask, ZMM state */
    if (__get_cpuid_max(0, NULL) < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    const int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    const int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    const int avx512bf16 = (a1 >> 5) & 1;
    has_avx512 = f && bw && vl && ((b >> 17) & 1);                              /* F, BW, VL, DQ */
    has_vnni = has_avx512 && ((c >> 11) & 1);                                   /* AVX512_VNNI */
    if (!(f && bw && vl && avx512bf16)) return;
    detected = DE_BF16_KERNEL_AVX512;
    if (!(amx_tile && amx_bf16)) return;
#if defined(__linux__)
    /* Linux >= 5.16: the tile data state is enabled per process on request (XFEATURE_XTILEDATA = 18);
     * refused (older kernel, seccomp): no AMX */
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18) != 0) return;
    if ((xgetbv0() & (3u << 17)) != (3u << 17)) return;                        /* XTILECFG + XTILEDATA */
    detected = DE_BF16_KERNEL_AMX;
#endif
#endif
}

int de_cpu_bf16_kernel(void) {
    pthread_once(&detect_once, detect);
    return detected;
}

int de_cpu_has_avx512(void) {
    pthread_once(&detect_once, detect);
    return has_avx512;
}

int de_cpu_has_avx512vnni(void) {
    pthread_once(&detect_once, detect);
    return has_vnni;
}

/* auto keeps f32-class parity: rounding activations to bf16 moved the fixtures' final latents by 2.1e-2 to
 * 2.8e-2 (issue 17's bound: 1e-2), so under auto the activation is split into bf16 hi + lo (16 bits of
 * mantissa); a bf16 weight is one term exactly, a q8_0 weight's d * q one term rounded (below q8_0's own step),
 * an f16 weight hi + lo exactly (11 bits fit in 16): three AMX terms, hi hi + lo hi + hi lo (lo lo is below
 * 2^-16 of the product). f16 weights on the sd1 fixture: latents 4.2e-5 from diffusers (f32 compute 1.7e-6),
 * image 97 dB. f32 weights stay f32 (sgemm): hi + lo holds 16 of their 24 bits, and on the f32 fixtures
 * (SDXL DDIM 2.1e-3 against a 1e-3 bound) that was not f32 parity. compute bf16: one term, everything rounded. */
void cpu_bf16_splits(const cpu_ctx *ctx, de_dtype wdt, int *split_act, int *split_w) {
    *split_act = *split_w = 0;
    if (ctx->compute != DE_COMPUTE_AUTO) return;
    *split_act = 1;
    *split_w = wdt == DE_F16 || wdt == DE_F32;
}

const char *de_bf16_kernel_name(int kernel) {
    switch (kernel) {
    case DE_BF16_KERNEL_AMX: return "amx";
    case DE_BF16_KERNEL_AVX512: return "avx512bf16";
    default: return "none";
    }
}

int cpu_use_bf16(const cpu_ctx *ctx, de_dtype wdt) {
    if (ctx->bf16_kernel == DE_BF16_KERNEL_NONE) return 0;
    if (ctx->compute == DE_COMPUTE_BF16) return 1;
    /* auto: AMX only (vdpbf16ps in two or three terms is slower than OpenBLAS sgemm); reduced weights, in the
     * terms cpu_bf16_splits gives (three for f16: 1.3-2.3x sgemm's speed, tools/kernel_bench bf16); f32 stays */
    return ctx->compute == DE_COMPUTE_AUTO && wdt != DE_F32 && ctx->bf16_kernel == DE_BF16_KERNEL_AMX;
}

/* the same decision as cpu_use_bf16, for AMX only (the worker's own GEMM has no vdpbf16ps form) */
int cpu_bgemm_local_ok(const cpu_ctx *ctx, de_dtype wdt) {
    return ctx->bf_local && ctx->bf16_kernel == DE_BF16_KERNEL_AMX && cpu_use_bf16(ctx, wdt);
}

int64_t cpu_bf16_panel_budget = (int64_t)16 << 20;

#ifdef DE_HAVE_X86_BF16

/* ---------------------------------------------------------------- packing */

typedef struct {
    /* source: element (r, kk) of the packed operand's rows r (A: rows of op(A); B: columns of op(B)) */
    de_dtype dt;
    const void *p;
    int64_t ld;
    int by_rows;             /* 1: (r, kk) at row r, column kk of the stored matrix; 0: at row kk, column r (f32) */
    int64_t rows, k;         /* valid extent */
    int vnni;                /* 1: B layout (pairs of k interleaved per column), 0: A layout */
    int64_t KB, RT;          /* k blocks, 16-row tiles */
    uint16_t *dst;           /* hi parts bf16(x): [tiles][KB][512] */
    uint16_t *dst_lo;        /* NULL, or the lo parts bf16(x - bf16(x)) in the same layout (one pass makes both) */
} pack_job;

static inline BF_TARGET __m512i bf16x32(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

/* hi = bf16(x) (round to nearest even); lo = bf16(x - hi), the rounding residual, so that the two parts hold
 * 16 bits of x's mantissa (x0: elements 0-15, x1: 16-31); lo NULL: hi only */
static inline BF_TARGET __m512i bf16_parts(__m512 x0, __m512 x1, __m512i *lo) {
    const __m512i v = bf16x32(x0, x1);
    if (lo) {
        const __m512 h0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(v)), 16));
        const __m512 h1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1)), 16));
        *lo = bf16x32(_mm512_sub_ps(x0, h0), _mm512_sub_ps(x1, h1));
    }
    return v;
}

/* 32 elements k0..k0+cnt of one stored row (a weight row or an f32 row) as bf16 into out (and its residual
 * into out_lo unless NULL; zero after cnt) */
static BF_TARGET void row_chunk(de_dtype dt, const void *row, int64_t k0, int cnt, uint16_t *out, uint16_t *out_lo) {
    const __mmask16 m0 = cnt >= 16 ? 0xffff : (__mmask16)((1u << cnt) - 1);
    const __mmask16 m1 = cnt <= 16 ? 0 : cnt >= 32 ? 0xffff : (__mmask16)((1u << (cnt - 16)) - 1);
    __m512i v, lo = _mm512_setzero_si512();
    __m512i *lp = out_lo ? &lo : NULL;
    switch (dt) {
    case DE_F16: {
        const uint16_t *s = (const uint16_t *)row + k0;
        v = bf16_parts(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m0, s)), _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m1, s + 16)), lp);
        break;
    }
    case DE_BF16: {
        const __mmask32 m = cnt >= 32 ? 0xffffffffu : (__mmask32)((1ull << cnt) - 1);
        v = _mm512_maskz_loadu_epi16(m, (const uint16_t *)row + k0); /* exact: no residual */
        break;
    }
    case DE_Q8_0: { /* k0 is a block boundary (k % 32 == 0 for q8_0) */
        const uint8_t *blk = (const uint8_t *)row + k0 / DE_Q8_0_BLOCK * DE_Q8_0_BYTES;
        uint16_t hs;
        memcpy(&hs, blk, 2);
        const __m512 d = _mm512_cvtph_ps(_mm256_set1_epi16((short)hs));
        const __m128i q0 = _mm_loadu_si128((const __m128i *)(blk + 2)), q1 = _mm_loadu_si128((const __m128i *)(blk + 18));
        v = bf16_parts(_mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0))),
                       _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1))), lp);
        break;
    }
    default: {
        const float *s = (const float *)row + k0;
        v = bf16_parts(_mm512_maskz_loadu_ps(m0, s), _mm512_maskz_loadu_ps(m1, s + 16), lp);
        break;
    }
    }
    _mm512_storeu_si512(out, v);
    if (out_lo) _mm512_storeu_si512(out_lo, lo);
}

/* rows x0..x0+cnt of two stored f32 rows (k = kk, kk + 1) interleaved: out[2x + q] = row_q[x] (zero past
 * cnt; row1 NULL = zeros); the residuals likewise into out_lo unless NULL */
static BF_TARGET void pair_chunk(const float *row0, const float *row1, int cnt, uint16_t *out, uint16_t *out_lo) {
    const __mmask16 m = cnt >= 16 ? 0xffff : (__mmask16)((1u << cnt) - 1);
    const __m512 a = row0 ? _mm512_maskz_loadu_ps(m, row0) : _mm512_setzero_ps();
    const __m512 b = row1 ? _mm512_maskz_loadu_ps(m, row1) : _mm512_setzero_ps();
    __m512i lo;
    const __m512i v = bf16_parts(a, b, out_lo ? &lo : NULL); /* [a0..a15, b0..b15] */
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    _mm512_storeu_si512(out, _mm512_permutexvar_epi16(idx, v));
    if (out_lo) _mm512_storeu_si512(out_lo, _mm512_permutexvar_epi16(idx, lo));
}

/* 16 x 16 32-bit transpose: d[i][j] = s[j][i] */
static void transpose16(const uint32_t *s, uint32_t *d) {
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) d[i * 16 + j] = s[j * 16 + i];
}

static const void *src_row(const pack_job *j, int64_t r) {
    return j->dt == DE_F32 ? (const void *)((const float *)j->p + r * j->ld) : cpu_weight_at(j->dt, j->p, r * j->ld);
}

/* one tile (t, kb) of both parts: t = 16-row group of the packed operand; lo NULL: hi only */
static BF_TARGET void pack_tile(const pack_job *j, int64_t t, int64_t kb, uint16_t *tile, uint16_t *lo) {
    const int64_t r0 = t * 16, k0 = kb * 32;
    const int rv = r0 >= j->rows ? 0 : (int)(j->rows - r0 < 16 ? j->rows - r0 : 16);
    const int kv = (int)(j->k - k0 < 32 ? j->k - k0 : 32);
    uint16_t tmp[2][512] __attribute__((aligned(64)));
    /* "natural" layouts need no transpose: A by rows, B (VNNI) from stored rows of k */
    if (j->by_rows) {
        uint16_t *o = j->vnni ? tmp[0] : tile, *ol = lo ? (j->vnni ? tmp[1] : lo) : NULL;
        for (int r = 0; r < 16; r++) {
            if (r < rv) row_chunk(j->dt, src_row(j, r0 + r), k0, kv, o + r * 32, ol ? ol + r * 32 : NULL);
            else { memset(o + r * 32, 0, 64); if (ol) memset(ol + r * 32, 0, 64); }
        }
        if (j->vnni) { /* [c][p] -> [p][c] */
            transpose16((const uint32_t *)tmp[0], (uint32_t *)tile);
            if (lo) transpose16((const uint32_t *)tmp[1], (uint32_t *)lo);
        }
    } else {
        const float *base = (const float *)j->p + r0;
        uint16_t *o = j->vnni ? tile : tmp[0], *ol = lo ? (j->vnni ? lo : tmp[1]) : NULL;
        for (int p = 0; p < 16; p++) {
            const int64_t kk = k0 + 2 * p;
            if (rv == 0 || kk >= j->k) { memset(o + p * 32, 0, 64); if (ol) memset(ol + p * 32, 0, 64); continue; }
            pair_chunk(base + kk * j->ld, kk + 1 < j->k ? base + (kk + 1) * j->ld : NULL, rv, o + p * 32, ol ? ol + p * 32 : NULL);
        }
        if (!j->vnni) { /* [p][r] -> [r][p] */
            transpose16((const uint32_t *)tmp[0], (uint32_t *)tile);
            if (lo) transpose16((const uint32_t *)tmp[1], (uint32_t *)lo);
        }
    }
}

/* u numbers the tiles k-major when the source is read by columns (by_rows 0), so that consecutive tiles read
 * consecutive bytes of the same stored rows (row-tile-major, each tile reading 32 rows 64 bytes wide, missed
 * the cache on every row: the three-term W @ x GEMM ran at sgemm's speed) */
static void pack_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    const pack_job *j = va;
    for (int64_t u = b; u < e; u++) {
        const int64_t t = j->by_rows ? u / j->KB : u % j->RT, kb = j->by_rows ? u % j->KB : u / j->RT;
        const size_t o = (size_t)(t * j->KB + kb) * 512;
        pack_tile(j, t, kb, j->dst + o, j->dst_lo ? j->dst_lo + o : NULL);
    }
}

/* ---------------------------------------------------------------- compute */

typedef struct {
    const uint16_t *a_hi, *b_hi; /* packed operands (bf16, or the hi parts of split ones) */
    const uint16_t *a_lo, *b_lo; /* the lo parts (NULL: not split) */
    int64_t KB, MP, NP;      /* k blocks, row-tile pairs, column-tile pairs */
    int64_t m, n;
    float alpha, beta;
    float *c; int64_t ldc;
    const float *bias;
    int64_t rb;              /* row pairs per task */
    /* AMX (amx_task) */
    int64_t cb, CG, kc;      /* column pairs per task, column groups, k blocks per chunk */
    float *acc;              /* per worker: rb * cb blocks of 32 x 32 */
    size_t acc_stride;       /* floats between workers' acc (0: one worker) */
} bc_job;

/* C block (32 x 32 at row0, col0; valid mr x nr) = alpha * acc + beta * C + bias */
static BF_TARGET void epilogue(const bc_job *j, const float *acc, int64_t row0, int64_t col0) {
    const int mr = (int)(j->m - row0 < 32 ? j->m - row0 : 32), nr = (int)(j->n - col0 < 32 ? j->n - col0 : 32);
    const __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr <= 16 ? 0 : nr >= 32 ? 0xffff : (__mmask16)((1u << (nr - 16)) - 1);
    const __m512 al = _mm512_set1_ps(j->alpha), be = _mm512_set1_ps(j->beta);
    const __m512 b0 = j->bias ? _mm512_maskz_loadu_ps(m0, j->bias + col0) : _mm512_setzero_ps();
    const __m512 b1 = j->bias ? _mm512_maskz_loadu_ps(m1, j->bias + col0 + 16) : _mm512_setzero_ps();
    for (int i = 0; i < mr; i++) {
        float *cr = j->c + (row0 + i) * j->ldc + col0;
        __m512 v0 = _mm512_fmadd_ps(al, _mm512_loadu_ps(acc + i * 32), b0);
        __m512 v1 = _mm512_fmadd_ps(al, _mm512_loadu_ps(acc + i * 32 + 16), b1);
        if (j->beta != 0.0f) {
            v0 = _mm512_fmadd_ps(be, _mm512_maskz_loadu_ps(m0, cr), v0);
            v1 = _mm512_fmadd_ps(be, _mm512_maskz_loadu_ps(m1, cr + 16), v1);
        }
        _mm512_mask_storeu_ps(cr, m0, v0);
        _mm512_mask_storeu_ps(cr + 16, m1, v1);
    }
}

/* The product terms of j, C = sum over t of A[t] @ B[t]: hi(A) hi(B), then lo(A) hi(B), then hi(A) lo(B) (the
 * lo x lo term is below f32's own rounding). Returns their count (1 to 3). */
static int bc_terms(const bc_job *j, const uint16_t *A[3], const uint16_t *B[3]) {
    int n = 0;
    A[n] = j->a_hi; B[n] = j->b_hi; n++;
    if (j->a_lo) { A[n] = j->a_lo; B[n] = j->b_hi; n++; }
    if (j->b_lo) { A[n] = j->a_hi; B[n] = j->b_lo; n++; }
    return n;
}

/* AVX512_BF16: a 32 x 32 block of C, 8 rows at a time (16 accumulators) */
static BF_TARGET void avx_block(const bc_job *j, int64_t ip, int64_t jp, float *acc) {
    const int64_t KB = j->KB;
    const uint16_t *A[3], *B[3];
    const int terms = bc_terms(j, A, B);
    for (int half = 0; half < 2; half++) {
        for (int r8 = 0; r8 < 16; r8 += 8) {
            __m512 c0[8], c1[8];
            for (int r = 0; r < 8; r++) { c0[r] = _mm512_setzero_ps(); c1[r] = _mm512_setzero_ps(); }
            for (int64_t tk = 0; tk < terms * KB; tk++) {
                const int64_t kb = tk % KB;
                const uint16_t *At = A[tk / KB] + (2 * ip + half) * KB * 512;
                const uint16_t *B0 = B[tk / KB] + (2 * jp) * KB * 512, *B1 = B0 + KB * 512;
                const uint32_t *a = (const uint32_t *)(At + kb * 512) + r8 * 16;
                const uint16_t *b0 = B0 + kb * 512, *b1 = B1 + kb * 512;
                for (int p = 0; p < 16; p++) {
                    const __m512bh v0 = (__m512bh)_mm512_loadu_si512(b0 + p * 32);
                    const __m512bh v1 = (__m512bh)_mm512_loadu_si512(b1 + p * 32);
                    for (int r = 0; r < 8; r++) {
                        const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r * 16 + p]);
                        c0[r] = _mm512_dpbf16_ps(c0[r], av, v0);
                        c1[r] = _mm512_dpbf16_ps(c1[r], av, v1);
                    }
                }
            }
            for (int r = 0; r < 8; r++) {
                float *o = acc + (half * 16 + r8 + r) * 32;
                _mm512_storeu_ps(o, c0[r]);
                _mm512_storeu_ps(o + 16, c1[r]);
            }
        }
    }
}

static BF_TARGET void avx_task(void *va, int64_t b, int64_t e, int tid) {
    (void)tid;
    const bc_job *j = va;
    float acc[32 * 32] __attribute__((aligned(64)));
    for (int64_t t = b; t < e; t++) {
        const int64_t jp = t % j->NP, ip0 = t / j->NP * j->rb;
        for (int64_t ip = ip0; ip < ip0 + j->rb && ip < j->MP; ip++) {
            avx_block(j, ip, jp, acc);
            epilogue(j, acc, ip * 32, jp * 32);
        }
    }
}

typedef struct __attribute__((packed, aligned(64))) {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

/* AMX: the task's C region (rb row pairs x cb column pairs) is computed in k chunks of KC blocks (KC * 32 k):
 * within a chunk, one row pair's A tiles (2 x KC x parts KB, in L1) meet every column pair's B tiles (in L2);
 * the accumulators of each 32 x 32 block go to the task's acc buffer (4 KB per block) between chunks and the
 * epilogue writes C after the last chunk. All product terms of one k block run together, so that a lo part
 * meets the hi tiles while they are still loaded: per k block, hi(A) hi(B); then (split_b) hi(A) lo(B); then
 * (split_a) lo(A) hi(B). Before (each term swept the whole k, A and B streamed from L2 or L3 once per term),
 * the three-term product ran at sgemm's speed. */
/* C tiles 0-3 += A tiles 4, 5 x B tiles 6, 7 (the tile numbers are immediates) */
#define DP_2X2() do { _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(2, 5, 6); _tile_dpbf16ps(3, 5, 7); } while (0)

static AMX_TARGET void amx_task(void *va, int64_t b, int64_t e, int tid) {
    const bc_job *j = va;
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.colsb[t] = 64; cfg.rows[t] = 16; }
    _tile_loadconfig(&cfg);
    const int64_t KB = j->KB, KC = j->kc;
    float *accs = j->acc + (size_t)tid * j->acc_stride;
    const uint16_t *Ah = j->a_hi, *Bh = j->b_hi, *Al = j->a_lo, *Bl = j->b_lo;
    const size_t tileKB = (size_t)KB * 512;
    for (int64_t t = b; t < e; t++) {
        const int64_t ip0 = t / j->CG * j->rb, jp0 = t % j->CG * j->cb;
        const int64_t ip1 = ip0 + j->rb < j->MP ? ip0 + j->rb : j->MP, jp1 = jp0 + j->cb < j->NP ? jp0 + j->cb : j->NP;
        for (int64_t k0 = 0; k0 < KB; k0 += KC) {
            const int64_t k1 = k0 + KC < KB ? k0 + KC : KB;
            const int last = k1 == KB;
            for (int64_t ip = ip0; ip < ip1; ip++) {
                const size_t ao = (size_t)(2 * ip) * tileKB;
                for (int64_t jp = jp0; jp < jp1; jp++) {
                    float *acc = accs + (size_t)((ip - ip0) * j->cb + (jp - jp0)) * 1024;
                    if (k0 == 0) { _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3); }
                    else {
                        _tile_loadd(0, acc, 128); _tile_loadd(1, acc + 16, 128);
                        _tile_loadd(2, acc + 16 * 32, 128); _tile_loadd(3, acc + 16 * 32 + 16, 128);
                    }
                    const size_t bo = (size_t)(2 * jp) * tileKB;
                    for (int64_t kb = k0; kb < k1; kb++) {
                        const size_t o = (size_t)kb * 512;
                        _tile_loadd(4, Ah + ao + o, 64);
                        _tile_loadd(6, Bh + bo + o, 64);
                        _tile_loadd(5, Ah + ao + tileKB + o, 64);
                        _tile_loadd(7, Bh + bo + tileKB + o, 64);
                        DP_2X2();
                        if (Bl) {
                            _tile_loadd(6, Bl + bo + o, 64);
                            _tile_loadd(7, Bl + bo + tileKB + o, 64);
                            DP_2X2();
                            if (Al) {
                                _tile_loadd(6, Bh + bo + o, 64);
                                _tile_loadd(7, Bh + bo + tileKB + o, 64);
                            }
                        }
                        if (Al) {
                            _tile_loadd(4, Al + ao + o, 64);
                            _tile_loadd(5, Al + ao + tileKB + o, 64);
                            DP_2X2();
                        }
                    }
                    _tile_stored(0, acc, 128);
                    _tile_stored(1, acc + 16, 128);
                    _tile_stored(2, acc + 16 * 32, 128);
                    _tile_stored(3, acc + 16 * 32 + 16, 128);
                    if (last) epilogue(j, acc, ip * 32, jp * 32);
                }
            }
        }
    }
    _tile_release();
}

/* packed bf16 buffer of `elems` uint16 in a scratch of floats */
static uint16_t *pack_buf(de_scratch *s, size_t elems) { return (uint16_t *)de_scratch_get(s, (elems + 1) / 2); }

/* The larger packed operand is packed and used in chunks of at most cpu_bf16_panel_budget bytes (whole row or
 * column pairs), the other one once: the panels of a reduced weight in hi + lo are twice the weight's f16 bytes
 * (the UNet's 2560 -> 1280 im2col weight, [1280, 23040]: 118 MB), and those of the VAE decoder's activations at
 * 512 px 268 MB; whole, they stayed in the scratch and were the peak of `--compute auto` (issue 17). No element
 * is packed twice, so chunks cost no work: only more, smaller pool rounds. */

/* the source of rows r0.. of a packed operand (rows of op(A), or columns of op(B)) */
static const void *src_from(de_dtype dt, const void *p, int64_t ld, int by_rows, int64_t r0) {
    if (!by_rows) return (const float *)p + r0;  /* read by columns: f32 only */
    return dt == DE_F32 ? (const void *)((const float *)p + r0 * ld) : cpu_weight_at(dt, p, r0 * ld);
}

/* pack rows [r0, r0 + rows) of an operand (32-aligned r0) into dst (and dst_lo) */
static void pack_part(cpu_ctx *ctx, int tid, de_dtype dt, const void *p, int64_t ld, int by_rows, int vnni, int64_t r0,
                      int64_t rows, int64_t k, int64_t KB, uint16_t *dst, uint16_t *dst_lo) {
    const int64_t RT = 2 * ((rows + 31) / 32), tiles = RT * KB;
    pack_job pj = { dt, src_from(dt, p, ld, by_rows, r0), ld, by_rows, rows, k, vnni, KB, RT, dst, dst_lo };
    if (tid >= 0) pack_task(&pj, 0, tiles, tid);
    else de_pool_for(&ctx->pool, tiles, tiles * 512 >= 65536 ? 0 : tiles, pack_task, &pj);
}

/* C rows [0, m) x columns [0, n) from packed panels of m rows (A) and n columns (B) */
static de_status bc_run(cpu_ctx *ctx, int tid, de_scratch *accbuf, const uint16_t *Ap, const uint16_t *Al, const uint16_t *Bp,
                        const uint16_t *Bl, int64_t m, int64_t n, int64_t k, int64_t KB, float alpha, float beta, float *c,
                        int64_t ldc, const float *bias) {
    const int64_t MP = (m + 31) / 32, NP = (n + 31) / 32;
    bc_job j;
    memset(&j, 0, sizeof j);
    j.KB = KB; j.MP = MP; j.NP = NP; j.m = m; j.n = n; j.alpha = alpha; j.beta = beta; j.c = c; j.ldc = ldc;
    j.bias = bias;
    j.a_hi = Ap; j.b_hi = Bp; j.a_lo = Al; j.b_lo = Bl;
    const uint16_t *tA[3], *tB[3];
    const double flops = 2.0 * (double)m * (double)n * (double)k * bc_terms(&j, tA, tB);
    const int T = tid >= 0 ? 1 : ctx->n_threads;
    int64_t tasks;
    de_range_fn fn;
    if (ctx->bf16_kernel == DE_BF16_KERNEL_AMX) {
        /* tasks: rb row pairs x cb column pairs (acc: 4 KB a block, per worker); enough tasks for the pool to
         * balance; k chunks of 32 KB of A tiles per row pair (L1) */
        int64_t rb = MP < 4 ? MP : 4, cb = NP < 8 ? NP : 8;
        while (rb > 1 && (MP + rb - 1) / rb * ((NP + cb - 1) / cb) < 2 * T) rb /= 2;
        while (cb > 1 && (MP + rb - 1) / rb * ((NP + cb - 1) / cb) < 2 * T) cb /= 2;
        j.rb = rb; j.cb = cb; j.CG = (NP + cb - 1) / cb; j.kc = Al ? 8 : 16;
        j.acc = de_scratch_get(accbuf, (size_t)T * (size_t)(rb * cb) * 1024);   /* T: ctx->n_threads = the pool's */
        j.acc_stride = tid >= 0 ? 0 : (size_t)(rb * cb) * 1024;
        if (!j.acc) return tid >= 0 ? DE_ERR_OOM : cpu_fail(ctx, DE_ERR_OOM, "gemm: out of memory for the bf16 accumulators");
        tasks = (MP + rb - 1) / rb * j.CG;
        fn = amx_task;
    } else {
        /* tasks: rb row pairs x one column pair */
        int64_t rb = 4;
        while (rb > 1 && (MP + rb - 1) / rb * NP < 4 * T) rb /= 2;
        j.rb = rb;
        tasks = (MP + rb - 1) / rb * NP;
        fn = avx_task;
    }
    if (tid >= 0) fn(&j, 0, tasks, tid);
    else de_pool_for(&ctx->pool, tasks, flops < 2e6 ? tasks : 1, fn, &j);
    return DE_OK;
}

/* tid < 0: the call's packing and tiles are spread over the pool (buffers bf_a, bf_b, bf_acc); tid >= 0: all
 * on the calling worker tid, inside a pool task (buffers bf_local[3 tid ..]) */
static de_status bgemm_run(cpu_ctx *ctx, int tid, int ta, de_dtype adt, const void *a, int64_t lda, int tb, de_dtype bdt,
                           const void *b, int64_t ldb, int64_t m, int64_t n, int64_t k, float alpha, float beta, float *c,
                           int64_t ldc, const float *bias, int split_a, int split_b) {
    const int kern = ctx->bf16_kernel;
    if (kern == DE_BF16_KERNEL_NONE) return cpu_fail(ctx, DE_ERR_UNSUPPORTED, "gemm: bf16 compute is not available on this CPU");
    if ((adt != DE_F32 && ta) || (bdt != DE_F32 && !tb))
        return cpu_fail(ctx, DE_ERR_INVALID, "gemm: a reduced operand must be read by rows (a untransposed, b transposed)");
    if (adt == DE_BF16) split_a = 0; /* a bf16 weight has no residual */
    if (bdt == DE_BF16) split_b = 0;
    const int64_t KB = (k + 31) / 32, MP = (m + 31) / 32, NP = (n + 31) / 32;
    const int na = 1 + !!split_a, nb = 1 + !!split_b;
    /* bytes of one row pair of A's panel (all parts), one column pair of B's; the larger panel goes in chunks */
    const int64_t a_pair = 2 * KB * 1024 * na, b_pair = 2 * KB * 1024 * nb;
    int64_t a_step = MP, b_step = NP;      /* row pairs / column pairs per chunk */
    const int64_t budget = cpu_bf16_panel_budget;
    if (MP * a_pair >= NP * b_pair) { if (MP * a_pair > budget) a_step = budget / a_pair > 1 ? budget / a_pair : 1; }
    else if (NP * b_pair > budget) b_step = budget / b_pair > 1 ? budget / b_pair : 1;
    const int64_t ua = 2 * a_step * KB, ub = 2 * b_step * KB;  /* tiles of one part of a chunk */
    de_scratch *bufs[3] = { &ctx->bf_a, &ctx->bf_b, &ctx->bf_acc };
    if (tid >= 0) for (int i = 0; i < 3; i++) bufs[i] = &ctx->bf_local[3 * tid + i];
    uint16_t *Ap = pack_buf(bufs[0], (size_t)(na * ua) * 512);
    uint16_t *Bp = pack_buf(bufs[1], (size_t)(nb * ub) * 512);
    if (!Ap || !Bp) {
        if (tid >= 0) return DE_ERR_OOM; /* on a worker: the caller reports it */
        return cpu_fail(ctx, DE_ERR_OOM, "gemm: out of memory for the bf16 panels (%lld + %lld bytes)",
                        (long long)(na * ua * 1024), (long long)(nb * ub * 1024));
    }
    uint16_t *Al = split_a ? Ap + (size_t)ua * 512 : NULL, *Bl = split_b ? Bp + (size_t)ub * 512 : NULL; /* lo parts */
    /* one of the two loops runs once: the operand packed whole is packed on its first pass only */
    for (int64_t i0 = 0; i0 < MP; i0 += a_step) {
        const int64_t r0 = 32 * i0, mr = m - r0 < 32 * a_step ? m - r0 : 32 * a_step;
        pack_part(ctx, tid, adt, a, lda, !ta, 0, r0, mr, k, KB, Ap, Al);
        for (int64_t j0 = 0; j0 < NP; j0 += b_step) {
            const int64_t c0 = 32 * j0, nc = n - c0 < 32 * b_step ? n - c0 : 32 * b_step;
            if (b_step < NP || i0 == 0) pack_part(ctx, tid, bdt, b, ldb, tb, 1, c0, nc, k, KB, Bp, Bl);
            const de_status st = bc_run(ctx, tid, bufs[2], Ap, Al, Bp, Bl, mr, nc, k, KB, alpha, beta, c + r0 * ldc + c0, ldc,
                                        bias ? bias + c0 : NULL);
            if (st != DE_OK) return st;
        }
    }
    atomic_fetch_add(&ctx->bf16_gemms, 1);
    return DE_OK;
}

de_status cpu_bgemm(cpu_ctx *ctx, int ta, de_dtype adt, const void *a, int64_t lda, int tb, de_dtype bdt, const void *b,
                    int64_t ldb, int64_t m, int64_t n, int64_t k, float alpha, float beta, float *c, int64_t ldc,
                    const float *bias, int split_a, int split_b) {
    return bgemm_run(ctx, -1, ta, adt, a, lda, tb, bdt, b, ldb, m, n, k, alpha, beta, c, ldc, bias, split_a, split_b);
}

de_status cpu_bgemm_local(cpu_ctx *ctx, int tid, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                          int64_t ldb, float *c, int64_t ldc) {
    int sx, sw; /* a: the (f32) transformed weight, b: the activation */
    cpu_bf16_splits(ctx, DE_F32, &sx, &sw);
    return bgemm_run(ctx, tid, 0, DE_F32, a, lda, 0, DE_F32, b, ldb, m, n, k, 1.0f, 0.0f, c, ldc, NULL, sw, sx);
}

#else /* not x86-64 with GCC/Clang: no bf16 kernels */

de_status cpu_bgemm(cpu_ctx *ctx, int ta, de_dtype adt, const void *a, int64_t lda, int tb, de_dtype bdt, const void *b,
                    int64_t ldb, int64_t m, int64_t n, int64_t k, float alpha, float beta, float *c, int64_t ldc,
                    const float *bias, int split_a, int split_b) {
    (void)ta; (void)split_a; (void)split_b; (void)adt; (void)a; (void)lda; (void)tb; (void)bdt; (void)b; (void)ldb; (void)m; (void)n; (void)k;
    (void)alpha; (void)beta; (void)c; (void)ldc; (void)bias;
    return cpu_fail(ctx, DE_ERR_UNSUPPORTED, "gemm: bf16 compute is not available on this CPU");
}

de_status cpu_bgemm_local(cpu_ctx *ctx, int tid, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                          int64_t ldb, float *c, int64_t ldc) {
    (void)ctx; (void)tid; (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)c; (void)ldc;
    return DE_ERR_UNSUPPORTED;
}

#endif
