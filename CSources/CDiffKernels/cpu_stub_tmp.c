/* TEMPORARY: replaced by the CPU provider (cpu_backend.c). */
#include "de_backend.h"
#include <stdlib.h>
static const char *nm(de_backend *be) { (void)be; return "cpu"; }
static void fr(de_backend *be) { free(be); }
static const char *le(de_backend *be) { (void)be; return "not implemented yet"; }
de_backend *de_backend_cpu_init(int n_threads) {
    (void)n_threads;
    de_backend *be = calloc(1, sizeof *be);
    if (!be) return NULL;
    be->api_version = DE_BACKEND_API_VERSION;
    be->iface.get_name = nm; be->iface.free = fr; be->iface.last_error = le;
    return be;
}
void de_f16_to_f32(const uint16_t *src, float *dst, int64_t n) { (void)src; (void)dst; (void)n; }
void de_bf16_to_f32(const uint16_t *src, float *dst, int64_t n) { (void)src; (void)dst; (void)n; }
