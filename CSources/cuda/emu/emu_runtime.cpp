/* emu_runtime.cpp — the CUDA runtime and kernel execution of the emulation build (cuda_emu.h says what
 * is emulated and how). Test-only: linked into libdiffedit_cuda_emu.so, never into the shipped provider. */
#include "cuda_emu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <mutex>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace emu {

/* ---- state ---- */

static std::recursive_mutex mu;                 /* one API call (and the work it runs) at a time */
static cudaError_t sticky = cudaSuccess, last = cudaSuccess;
de_cuda_emu_counts counts;
static std::map<std::string, int> injections;

void violation(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cuda-emu: VIOLATION: %s\n", buf);
    counts.violations++;
}

int inject_hit(const char *what) {
    std::lock_guard<std::recursive_mutex> g(mu);
    auto it = injections.find(what);
    if (it == injections.end() || it->second <= 0) return 0;
    return --it->second == 0;
}

static cudaError_t fail(cudaError_t e) { last = e; return e; }
#define STICKY_CHECK() do { if (sticky != cudaSuccess) return sticky; } while (0)

/* ---- device memory: one reserved range, PROT_NONE while host code runs ---- */

static char *dev_base = nullptr;
static const size_t dev_reserve = (size_t)1 << 37;    /* 128 GiB of addresses, nothing committed */
static size_t dev_top = 0, dev_live_bytes = 0;
static std::map<size_t, size_t> dev_free, dev_live;  /* offset -> size */
static std::map<uintptr_t, size_t> pinned;           /* cudaHostAlloc blocks */
static int open_depth = 0;
static size_t open_len = 0;
static const size_t page = 4096;

static bool dev_init() {
    if (dev_base) return true;
    void *p = mmap(nullptr, dev_reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    dev_base = (char *)p;
    return true;
}

/* device memory readable/writable (kernels, copies, library calls run between open and close) */
static void dev_open() {
    open_depth++;
    size_t want = (dev_top + page - 1) & ~(page - 1);
    if (want > open_len) {
        mprotect(dev_base, want, PROT_READ | PROT_WRITE);
        open_len = want;
    }
}
static void dev_close() {
    if (--open_depth == 0 && open_len) {
        mprotect(dev_base, open_len, PROT_NONE);
        open_len = 0;
    }
}

static void *dev_alloc(size_t bytes) {
    if (!dev_init()) return nullptr;
    size_t size = bytes ? (bytes + 255) & ~(size_t)255 : 256;
    size_t off = (size_t)-1;
    for (auto it = dev_free.begin(); it != dev_free.end(); ++it)
        if (it->second >= size) {
            off = it->first;
            size_t rest = it->second - size;
            dev_free.erase(it);
            if (rest) dev_free[off + size] = rest;
            break;
        }
    if (off == (size_t)-1) {
        if (dev_top + size > dev_reserve) return nullptr;
        off = dev_top;
        dev_top += size;
    }
    dev_live[off] = size;
    dev_live_bytes += size;
    /* not filled here: memory from the free list was filled with 0xFF when freed (NaN), memory new from the
     * reserve reads as zero and stays uncommitted until used (filling it would commit every page of a 256 MB
     * pool chunk and make each protection switch walk them all) */
    return dev_base + off;
}

static bool dev_release(void *p) {
    if (!dev_base || (char *)p < dev_base || (char *)p >= dev_base + dev_top) return false;
    size_t off = (size_t)((char *)p - dev_base);
    auto it = dev_live.find(off);
    if (it == dev_live.end()) return false;
    size_t size = it->second;
    dev_live.erase(it);
    dev_live_bytes -= size;
    dev_open();
    memset(dev_base + off, 0xff, size); /* a read after free sees NaN */
    dev_close();
    auto nx = dev_free.lower_bound(off);
    if (nx != dev_free.end() && nx->first == off + size) { size += nx->second; dev_free.erase(nx); }
    auto pv = dev_free.lower_bound(off);
    if (pv != dev_free.begin()) {
        --pv;
        if (pv->first + pv->second == off) { pv->second += size; return true; }
    }
    dev_free[off] = size;
    return true;
}

static bool in_region(const void *p) { return dev_base && (const char *)p >= dev_base && (const char *)p < dev_base + dev_reserve; }

bool is_device(const void *p, size_t bytes) {
    if (!in_region(p)) return false;
    size_t off = (size_t)((const char *)p - dev_base);
    auto it = dev_live.upper_bound(off);
    if (it == dev_live.begin()) return false;
    --it;
    return off + bytes <= it->first + it->second;
}

static bool is_pinned(const void *p, size_t bytes) {
    auto it = pinned.upper_bound((uintptr_t)p);
    if (it == pinned.begin()) return false;
    --it;
    return (uintptr_t)p + bytes <= it->first + it->second;
}

/* ---- streams ---- */

struct op { uint64_t seq; const char *what; std::function<void()> fn; };
} // namespace emu

struct emu_stream { std::deque<emu::op> q; };
struct emu_event { emu_stream *s; uint64_t seq; bool recorded; };

namespace emu {

static emu_stream legacy;
static std::set<emu_stream *> streams = {&legacy};
static uint64_t next_seq = 1;

static emu_stream *resolve(cudaStream_t s) { return s ? s : &legacy; }

void enqueue(cudaStream_t s, const char *what, std::function<void()> fn) {
    std::lock_guard<std::recursive_mutex> g(mu);
    emu_stream *st = resolve(s);
    if (!streams.count(st)) { violation("%s queued on a destroyed or unknown stream %p", what, (void *)s); sticky = cudaErrorInvalidResourceHandle; return; }
    st->q.push_back(op{next_seq++, what, std::move(fn)});
}

static void run_queue(emu_stream *st, uint64_t upto) {
    if (st->q.empty()) return;
    dev_open();
    while (!st->q.empty() && st->q.front().seq <= upto) {
        op o = std::move(st->q.front());
        st->q.pop_front();
        if (sticky == cudaSuccess) o.fn(); /* after a fault nothing more runs, as on a device */
    }
    dev_close();
}

static void flush_all() { for (emu_stream *s : streams) run_queue(s, UINT64_MAX); }

/* ---- fibers: each CUDA thread of a block ---- */

thread_local thread_state *cur = nullptr;
thread_local uint3 block_idx;
thread_local dim3 block_dim, grid_dim;

#if defined(__x86_64__)
extern "C" void emu_ctx_switch(void **save_sp, void *load_sp);
asm(R"(
.text
.globl emu_ctx_switch
.hidden emu_ctx_switch
.type emu_ctx_switch,@function
emu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size emu_ctx_switch,.-emu_ctx_switch
)");
#else
#error "the CUDA emulator's fibers are written for x86-64"
#endif

enum { F_RUN = 0, F_WAIT = 1, F_DONE = 2 };
struct fiber { void *sp; thread_state ts; int state; };
struct warp_slot { unsigned present, mask, gen; const char *what; uint64_t vals[32], result[32]; };

static const size_t stack_size = 256 << 10, guard = 4096;
struct block_sched {
    std::vector<fiber> f;
    std::vector<warp_slot> warps;
    void *sched_sp = nullptr;
    fiber *running = nullptr;
    int alive = 0, arrived = 0;
    unsigned gen = 0;
    uint64_t progress = 0;
    bool failed = false;
    const char *kernel = "";
    const std::function<void()> *body = nullptr;
    char *stacks = nullptr;
    size_t n_stacks = 0;
};
static thread_local block_sched *S = nullptr;

static void yield_to_sched() { emu_ctx_switch(&S->running->sp, S->sched_sp); }

static void fiber_main() {
    (*S->body)();
    fiber *me = S->running;
    me->state = F_DONE;
    S->alive--;
    S->progress++;
    if (S->arrived > 0) {
        violation("kernel %s: thread (%u,%u,%u) of block (%u,%u,%u) exited while others wait at __syncthreads", S->kernel,
                  me->ts.tid.x, me->ts.tid.y, me->ts.tid.z, block_idx.x, block_idx.y, block_idx.z);
        S->failed = true;
    }
    emu_ctx_switch(&me->sp, S->sched_sp);
    abort(); /* never resumed */
}

void syncthreads() {
    block_sched *s = S;
    s->arrived++;
    s->progress++;
    if (s->arrived == s->alive) { s->arrived = 0; s->gen++; return; }
    unsigned g = s->gen;
    s->running->state = F_WAIT;
    while (s->gen == g && !s->failed) yield_to_sched();
    s->running->state = F_RUN;
}

unsigned lane_id() { return (unsigned)cur->linear & 31u; }

const uint64_t *warp_exchange(unsigned mask, uint64_t v, const char *what) {
    block_sched *s = S;
    const int linear = cur->linear, lane = linear & 31, w = linear >> 5;
    const int n = (int)s->f.size(), lanes = n - w * 32 < 32 ? n - w * 32 : 32;
    warp_slot &W = s->warps[(size_t)w];
    if (!(mask >> lane & 1u)) { violation("kernel %s: %s with mask 0x%08x on lane %d outside the mask", s->kernel, what, mask, lane); s->failed = true; }
    if (lanes < 32 && (mask >> lanes) != 0) { violation("kernel %s: %s mask 0x%08x names lanes a %d-thread warp lacks", s->kernel, what, mask, lanes); s->failed = true; }
    if (W.present == 0) { W.mask = mask; W.what = what; }
    else if (W.mask != mask || strcmp(W.what, what) != 0) {
        violation("kernel %s: warp %d: lane %d calls %s(0x%08x) while other lanes wait in %s(0x%08x)", s->kernel, w, lane, what, mask, W.what, W.mask);
        s->failed = true;
    }
    if (s->failed) { static uint64_t zero[32]; return zero; }
    W.vals[lane] = v;
    W.present |= 1u << lane;
    s->progress++;
    if (W.present == mask) {
        memcpy(W.result, W.vals, sizeof W.vals);
        W.present = 0;
        W.gen++;
        return W.result;
    }
    unsigned g = W.gen;
    s->running->state = F_WAIT;
    while (W.gen == g && !s->failed) yield_to_sched();
    s->running->state = F_RUN;
    return W.result;
}

static block_sched *sched_for(int nthreads) {
    static thread_local block_sched *bs = nullptr;
    if (!bs) bs = new block_sched();
    if (bs->n_stacks < (size_t)nthreads) {
        if (bs->stacks) munmap(bs->stacks, bs->n_stacks * (stack_size + guard));
        size_t len = (size_t)nthreads * (stack_size + guard);
        bs->stacks = (char *)mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (bs->stacks == MAP_FAILED) { bs->stacks = nullptr; bs->n_stacks = 0; return nullptr; }
        for (int i = 0; i < nthreads; i++) mprotect(bs->stacks + (size_t)i * (stack_size + guard), guard, PROT_NONE);
        bs->n_stacks = (size_t)nthreads;
    }
    return bs;
}

/* one block: every thread a fiber, round robin; returns false on a violation (deadlock, misuse) */
static bool run_block(const char *kernel, const std::function<void()> &body) {
    const int bx = (int)block_dim.x, by = (int)block_dim.y, n = bx * by * (int)block_dim.z;
    block_sched *s = sched_for(n);
    if (!s) { violation("kernel %s: no memory for %d fiber stacks", kernel, n); return false; }
    s->f.assign((size_t)n, fiber());
    s->warps.assign((size_t)(n + 31) / 32, warp_slot());
    s->alive = n; s->arrived = 0; s->gen = 0; s->failed = false; s->kernel = kernel; s->body = &body;
    for (int i = 0; i < n; i++) {
        fiber &f = s->f[(size_t)i];
        f.ts.tid = uint3{(unsigned)(i % bx), (unsigned)(i / bx % by), (unsigned)(i / (bx * by))};
        f.ts.linear = i;
        f.state = F_RUN;
        char *top = s->stacks + (size_t)(i + 1) * (stack_size + guard);
        uint64_t *sp = (uint64_t *)top;
        *--sp = 0;                          /* fiber_main's return address (never used) */
        *--sp = (uint64_t)(uintptr_t)&fiber_main;
        for (int r = 0; r < 6; r++) *--sp = 0; /* rbp rbx r12 r13 r14 r15 */
        *--sp = 0x037F00001F80ull;          /* mxcsr (low) and x87 control word (high) */
        f.sp = sp;
    }
    block_sched *saved = S;
    thread_state *saved_cur = cur;
    S = s;
    while (s->alive > 0 && !s->failed) {
        uint64_t before = s->progress;
        bool any_ran = false;
        for (int i = 0; i < n && !s->failed; i++) {
            fiber &f = s->f[(size_t)i];
            if (f.state == F_DONE) continue;
            any_ran = true;
            s->running = &f;
            cur = &f.ts;
            emu_ctx_switch(&s->sched_sp, f.sp);
        }
        if (!any_ran) break;
        if (s->alive > 0 && s->progress == before && !s->failed) {
            violation("kernel %s: block (%u,%u,%u) deadlocks: %d threads wait at __syncthreads or a warp op that the other threads never reach",
                      kernel, block_idx.x, block_idx.y, block_idx.z, s->alive);
            s->failed = true;
        }
    }
    S = saved;
    cur = saved_cur;
    return !s->failed;
}

bool launch_check(const char *kernel, dim3 g, dim3 b, size_t shmem) {
    std::lock_guard<std::recursive_mutex> lk(mu);
    (void)shmem;
    uint64_t threads = (uint64_t)b.x * b.y * b.z;
    if (threads == 0 || threads > 1024 || b.z > 64 || g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 || g.z > 65535 ||
        g.x > 0x7fffffffu) {
        violation("kernel %s: launch configuration grid (%u,%u,%u) block (%u,%u,%u) is invalid", kernel, g.x, g.y, g.z, b.x, b.y, b.z);
        last = cudaErrorInvalidConfiguration;
        return false;
    }
    if (sticky != cudaSuccess) return false;
    return true;
}

bool check_pointer_arg(const char *kernel, int index, const void *p) {
    std::lock_guard<std::recursive_mutex> lk(mu);
    if (!p || is_device(p, 1)) return true;
    violation("kernel %s: argument %d (%p) is not device memory", kernel, index, p);
    sticky = cudaErrorIllegalAddress; /* what the kernel would meet when it dereferences it */
    return false;
}

void enqueue_kernel(cudaStream_t s, const char *kernel, dim3 grid, dim3 block, std::function<void()> body) {
    std::lock_guard<std::recursive_mutex> lk(mu);
    const bool fault = inject_hit("kernel");
    enqueue(s, kernel, [kernel, grid, block, body, fault]() {
        counts.kernels++;
        if (fault) { fprintf(stderr, "cuda-emu: injected fault in kernel %s\n", kernel); sticky = cudaErrorIllegalAddress; return; }
        const uint3 saved_b = block_idx;
        const dim3 saved_bd = block_dim, saved_gd = grid_dim;
        grid_dim = grid;
        block_dim = block;
        for (unsigned z = 0; z < grid.z && sticky == cudaSuccess; z++)
            for (unsigned y = 0; y < grid.y && sticky == cudaSuccess; y++)
                for (unsigned x = 0; x < grid.x && sticky == cudaSuccess; x++) {
                    block_idx = uint3{x, y, z};
                    if (!run_block(kernel, body)) sticky = cudaErrorLaunchFailure;
                }
        block_idx = saved_b; block_dim = saved_bd; grid_dim = saved_gd;
    });
}

} // namespace emu

using namespace emu;

/* ---- the runtime API ---- */

extern "C" {

int de_cuda_emu_inject(const char *what, int n) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!what || (strcmp(what, "malloc") && strcmp(what, "kernel") && strcmp(what, "heuristic"))) return -1;
    injections[what] = n;
    return 0;
}

void de_cuda_emu_counters(de_cuda_emu_counts *out) {
    std::lock_guard<std::recursive_mutex> g(mu);
    *out = counts;
}

static bool emu_enabled() { const char *v = getenv("DIFFEDIT_CUDA_EMU"); return v && strcmp(v, "1") == 0; }

cudaError_t cudaGetDeviceCount(int *count) {
    if (!emu_enabled()) { *count = 0; return fail(cudaErrorNoDevice); } /* the test-only switch */
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "CUDA emulator (CPU, tests only)");
    prop->major = 9; prop->minor = 0;
    prop->totalGlobalMem = (size_t)80 << 30;
    prop->multiProcessorCount = 1;
    prop->warpSize = 32;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaDeviceSynchronize(void) {
    std::lock_guard<std::recursive_mutex> g(mu);
    flush_all();
    return sticky;
}

cudaError_t cudaGetLastError(void) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (sticky != cudaSuccess) return sticky;
    cudaError_t e = last;
    last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) {
    std::lock_guard<std::recursive_mutex> g(mu);
    return sticky != cudaSuccess ? sticky : last;
}

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulator: see the VIOLATION above)";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected (the CUDA emulator runs only with DIFFEDIT_CUDA_EMU=1)";
    default: return cudaGetErrorName(e);
    }
}

static cudaError_t alloc_common(void **p, size_t bytes) {
    if (!p) return fail(cudaErrorInvalidValue);
    *p = nullptr;
    STICKY_CHECK();
    if (inject_hit("malloc")) { fprintf(stderr, "cuda-emu: injected allocation failure (%zu bytes)\n", bytes); return fail(cudaErrorMemoryAllocation); }
    *p = dev_alloc(bytes);
    return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> g(mu);
    return alloc_common(p, bytes);
}

cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!streams.count(resolve(s))) return fail(cudaErrorInvalidResourceHandle);
    return alloc_common(p, bytes);
}

cudaError_t cudaFree(void *p) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!p) return cudaSuccess;
    flush_all(); /* cudaFree waits for the device */
    if (!dev_release(p)) { violation("cudaFree(%p): not a live device allocation", p); return fail(cudaErrorInvalidValue); }
    return sticky;
}

cudaError_t cudaFreeAsync(void *p, cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!p) return cudaSuccess;
    if (!is_device(p, 1)) { violation("cudaFreeAsync(%p): not a live device allocation", p); return fail(cudaErrorInvalidValue); }
    enqueue(s, "cudaFreeAsync", [p]() { if (!dev_release(p)) violation("cudaFreeAsync(%p) ran on freed memory", p); });
    return sticky;
}

cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags) {
    std::lock_guard<std::recursive_mutex> g(mu);
    (void)flags;
    if (!p) return fail(cudaErrorInvalidValue);
    void *q = nullptr;
    if (posix_memalign(&q, 4096, bytes ? bytes : 1) != 0) { *p = nullptr; return fail(cudaErrorMemoryAllocation); }
    pinned[(uintptr_t)q] = bytes ? bytes : 1;
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }

cudaError_t cudaFreeHost(void *p) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!p) return cudaSuccess;
    flush_all();
    auto it = pinned.find((uintptr_t)p);
    if (it == pinned.end()) { violation("cudaFreeHost(%p): not a cudaHostAlloc block", p); return fail(cudaErrorInvalidValue); }
    pinned.erase(it);
    free(p);
    return cudaSuccess;
}

/* checks a copy's pointers against its kind; false (a violation) when one lies */
static bool copy_check(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *fn) {
    const bool dd = is_device(dst, bytes), sd = is_device(src, bytes);
    const bool dr = in_region(dst), sr = in_region(src);
    bool ok = true;
    switch (kind) {
    case cudaMemcpyHostToDevice: ok = dd && !sr; break;
    case cudaMemcpyDeviceToHost: ok = sd && !dr; break;
    case cudaMemcpyDeviceToDevice: ok = dd && sd; break;
    case cudaMemcpyHostToHost: ok = !dr && !sr; break;
    case cudaMemcpyDefault: ok = (dd || !dr) && (sd || !sr); break;
    }
    if (!ok)
        violation("%s(dst %p%s, src %p%s, %zu bytes, kind %d): the pointers do not match the kind (or leave their allocation)", fn, dst,
                  dd ? " device" : dr ? " device, out of bounds" : " host", src, sd ? " device" : sr ? " device, out of bounds" : " host",
                  bytes, (int)kind);
    return ok;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> g(mu);
    STICKY_CHECK();
    if (bytes == 0) return cudaSuccess;
    if (!dst || !src || !copy_check(dst, src, bytes, kind, "cudaMemcpyAsync")) return fail(cudaErrorInvalidValue);
    if (kind == cudaMemcpyDefault) kind = in_region(dst) ? (in_region(src) ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                                         : (in_region(src) ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    if (kind == cudaMemcpyHostToDevice) {
        counts.h2d_bytes += (long long)bytes;
        if (is_pinned(src, bytes)) {   /* DMA from pinned memory: reads the buffer when it runs */
            enqueue(s, "memcpy HtoD", [dst, src, bytes]() { memcpy(dst, src, bytes); });
        } else {                       /* pageable: staged now, the host buffer may be reused at once */
            auto snap = std::make_shared<std::vector<char>>((const char *)src, (const char *)src + bytes);
            enqueue(s, "memcpy HtoD (pageable)", [dst, snap]() { memcpy(dst, snap->data(), snap->size()); });
        }
    } else if (kind == cudaMemcpyDeviceToHost) {
        counts.d2h_bytes += (long long)bytes;
        if (is_pinned(dst, bytes)) {
            enqueue(s, "memcpy DtoH", [dst, src, bytes]() { memcpy(dst, src, bytes); });
        } else {                       /* pageable: returns once the copy is done */
            run_queue(resolve(s), UINT64_MAX);
            if (sticky != cudaSuccess) return sticky;
            dev_open();
            memcpy(dst, src, bytes);
            dev_close();
        }
    } else if (kind == cudaMemcpyDeviceToDevice) {
        enqueue(s, "memcpy DtoD", [dst, src, bytes]() { memmove(dst, src, bytes); });
    } else {
        run_queue(resolve(s), UINT64_MAX);
        memmove(dst, src, bytes);
    }
    return sticky;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    std::lock_guard<std::recursive_mutex> g(mu);
    flush_all();
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
    flush_all();
    return e != cudaSuccess ? e : sticky;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> g(mu);
    STICKY_CHECK();
    if (!is_device(dst, bytes)) { violation("cudaMemsetAsync(%p, %zu bytes): not device memory", dst, bytes); return fail(cudaErrorInvalidValue); }
    enqueue(s, "memset", [dst, value, bytes]() { memset(dst, value, bytes); });
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    std::lock_guard<std::recursive_mutex> g(mu);
    const size_t t = (size_t)80 << 30;
    if (free_bytes) *free_bytes = dev_live_bytes < t ? t - dev_live_bytes : 0;
    if (total) *total = t;
    return sticky;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    std::lock_guard<std::recursive_mutex> g(mu);
    (void)flags;
    STICKY_CHECK();
    *s = new emu_stream();
    streams.insert(*s);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!s || !streams.count(s)) return fail(cudaErrorInvalidResourceHandle);
    run_queue(s, UINT64_MAX); /* queued work still completes */
    streams.erase(s);
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> g(mu);
    emu_stream *st = resolve(s);
    if (!streams.count(st)) return fail(cudaErrorInvalidResourceHandle);
    run_queue(&legacy, UINT64_MAX); /* the legacy stream orders with every blocking stream; harmless here */
    run_queue(st, UINT64_MAX);
    return sticky;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    (void)flags;
    *e = new emu_event{nullptr, 0, false};
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> g(mu);
    STICKY_CHECK();
    e->s = resolve(s);
    e->seq = next_seq++;  /* everything queued before it on s has a smaller sequence number */
    e->recorded = true;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!e->recorded) return cudaSuccess; /* an event never recorded is complete */
    if (streams.count(e->s)) run_queue(e->s, e->seq);
    return sticky;
}

cudaError_t cudaEventQuery(cudaEvent_t e) {
    std::lock_guard<std::recursive_mutex> g(mu);
    if (!e->recorded || !streams.count(e->s)) return cudaSuccess;
    return !e->s->q.empty() && e->s->q.front().seq < e->seq ? cudaErrorNotReady : sticky;
}

} /* extern "C" */
