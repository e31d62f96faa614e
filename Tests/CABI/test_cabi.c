/*
 * C ABI tests of libdiffedit, compiled with `cc -std=c99 -Wall -Wextra -Werror` against the
 * INSTALLED header (make test-cabi installs into build/stage first).
 *
 * Usage: test_cabi [--valgrind] [--no-model] [--instruct INSTRUCT_MODEL] [--lora LORA_DIR] [MODEL_PATH]
 *   MODEL_PATH  model for the success paths (default: the library's default model)
 *   --instruct  an InstructPix2Pix checkpoint for the AUTO/INSTRUCT tests
 *   --lora      Tests/Fixtures/lora (LoRA files for the sd1 fixture model given as MODEL_PATH)
 *   --no-model  run only the tests that need no model (argument checks of loads, NULL contexts)
 *   --valgrind  smaller images and fewer repeats (for `make valgrind-cabi`)
 *   --alloc-limit-child  (internal) what test_alloc_limit runs with DIFFEDIT_TEST_ALLOC_LIMIT set
 *
 * Every error-path check asserts the status AND that diff_edit_last_error names the field at fault.
 * Exit status 0 when every check passed.
 */
#define _POSIX_C_SOURCE 200809L
#include <diffedit.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_checks = 0, g_failures = 0;
static int g_valgrind = 0;
static const char *g_model_path = NULL;   /* model of the success-path tests */
static const char *g_controlnet_dir = NULL;   /* --controlnet: Tests/Fixtures/controlnet */
static const char *g_self = NULL;             /* argv[0]: test_alloc_limit runs it again */

#define CHECK(cond) check_impl((cond), #cond, __FILE__, __LINE__)
static void check_impl(int ok, const char *what, const char *file, int line) {
    g_checks++;
    if (!ok) {
        g_failures++;
        fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what);
    }
}

/* status == want, and both the context's (when ctx) and the thread's last error contain `field`. */
#define EXPECT_ERR(st, want, ctx, field) expect_err_impl((st), (want), (ctx), (field), __FILE__, __LINE__)
static void expect_err_impl(diff_edit_status st, diff_edit_status want, const diff_edit_ctx *ctx,
                            const char *field, const char *file, int line) {
    const char *tmsg = diff_edit_last_error(NULL);
    const char *cmsg = ctx ? diff_edit_last_error(ctx) : tmsg;
    g_checks++;
    if (st != want || tmsg == NULL || cmsg == NULL || strstr(tmsg, field) == NULL ||
        strstr(cmsg, field) == NULL) {
        g_failures++;
        fprintf(stderr, "FAIL %s:%d: status %d (%s), want %d (%s); message \"%s\" / ctx \"%s\" should name \"%s\"\n",
                file, line, (int)st, diff_edit_status_string(st), (int)want, diff_edit_status_string(want),
                tmsg ? tmsg : "(null)", cmsg ? cmsg : "(null)", field);
    }
}

#define EXPECT_OK(st, ctx) expect_ok_impl((st), (ctx), __FILE__, __LINE__)
static void expect_ok_impl(diff_edit_status st, const diff_edit_ctx *ctx, const char *file, int line) {
    g_checks++;
    if (st != DIFF_EDIT_OK) {
        g_failures++;
        fprintf(stderr, "FAIL %s:%d: status %d (%s): %s\n", file, line, (int)st,
                diff_edit_status_string(st), diff_edit_last_error(ctx));
    }
}

/* ------------------------------------------------------------------------------------------------
 * Images with canary-filled stride padding
 * ---------------------------------------------------------------------------------------------- */

enum { CANARY = 0xA5, PAD = 7 };

static uint32_t bpp_of(diff_edit_pixel_format f) {
    switch (f) {
    case DIFF_EDIT_RGB8: case DIFF_EDIT_BGR8: return 3;
    case DIFF_EDIT_RGBA8: case DIFF_EDIT_BGRA8: return 4;
    default: return 1;
    }
}

/* A buffer of w x h with PAD canary bytes after each row (and after the last row). */
static diff_edit_buffer image_new(uint32_t w, uint32_t h, diff_edit_pixel_format f) {
    diff_edit_buffer b;
    b.width = w; b.height = h; b.format = f;
    b.stride = w * bpp_of(f) + PAD;
    b.data = malloc((size_t)b.stride * h);
    memset(b.data, CANARY, (size_t)b.stride * h);
    return b;
}

/* Fills the pixels (not the padding) with a deterministic pattern; alpha gets its own pattern. */
static void image_fill(diff_edit_buffer *b, uint32_t salt) {
    uint32_t bpp = bpp_of(b->format);
    for (uint32_t y = 0; y < b->height; y++) {
        uint8_t *row = (uint8_t *)b->data + (size_t)y * b->stride;
        for (uint32_t x = 0; x < b->width; x++)
            for (uint32_t c = 0; c < bpp; c++)
                row[x * bpp + c] = (uint8_t)((x * 13 + y * 7 + c * 61 + salt * 29) & 0xFF);
    }
}

static int padding_intact(const diff_edit_buffer *b) {
    uint32_t row = b->width * bpp_of(b->format);
    for (uint32_t y = 0; y < b->height; y++) {
        const uint8_t *p = (const uint8_t *)b->data + (size_t)y * b->stride;
        for (uint32_t x = row; x < b->stride; x++)
            if (p[x] != CANARY) return 0;
    }
    return 1;
}

/* True when every pixel byte (not padding) is still CANARY: the buffer was not written. */
static int pixels_untouched(const diff_edit_buffer *b) {
    uint32_t row = b->width * bpp_of(b->format);
    for (uint32_t y = 0; y < b->height; y++) {
        const uint8_t *p = (const uint8_t *)b->data + (size_t)y * b->stride;
        for (uint32_t x = 0; x < row; x++)
            if (p[x] != CANARY) return 0;
    }
    return 1;
}

static int pixels_equal(const diff_edit_buffer *a, const diff_edit_buffer *b) {
    uint32_t row = a->width * bpp_of(a->format);
    if (a->width != b->width || a->height != b->height || a->format != b->format) return 0;
    for (uint32_t y = 0; y < a->height; y++)
        if (memcmp((const uint8_t *)a->data + (size_t)y * a->stride,
                   (const uint8_t *)b->data + (size_t)y * b->stride, row) != 0)
            return 0;
    return 1;
}

static void image_reset(diff_edit_buffer *b) { memset(b->data, CANARY, (size_t)b->stride * b->height); }
static void image_free(diff_edit_buffer *b) { free(b->data); b->data = NULL; }

/* ------------------------------------------------------------------------------------------------
 * Tests without a model
 * ---------------------------------------------------------------------------------------------- */

static void test_versions_and_strings(void) {
    CHECK(diff_edit_abi_version() == DIFF_EDIT_ABI_VERSION);
    CHECK(DIFF_EDIT_ABI_VERSION == 1);
    const char *v = diff_edit_version();
    CHECK(v != NULL && v[0] != '\0');
    /* Contract values, never reused. */
    CHECK(DIFF_EDIT_OK == 0 && DIFF_EDIT_CANCELLED == 1 && DIFF_EDIT_ERR_INVALID_ARGUMENT == -1 &&
          DIFF_EDIT_ERR_UNSUPPORTED == -2 && DIFF_EDIT_ERR_OUT_OF_MEMORY == -3 &&
          DIFF_EDIT_ERR_BACKEND == -4 && DIFF_EDIT_ERR_IO == -5 && DIFF_EDIT_ERR_MODEL == -6 &&
          DIFF_EDIT_ERR_BUSY == -7);
    CHECK(DIFF_EDIT_RGB8 == 0 && DIFF_EDIT_RGBA8 == 1 && DIFF_EDIT_BGR8 == 2 && DIFF_EDIT_BGRA8 == 3 &&
          DIFF_EDIT_GRAY8 == 4);
    CHECK(DIFF_EDIT_METHOD_AUTO == 0 && DIFF_EDIT_METHOD_SDEDIT == 1 && DIFF_EDIT_METHOD_DDIM == 2 &&
          DIFF_EDIT_METHOD_P2P == 3 && DIFF_EDIT_METHOD_INSTRUCT == 4);
    static const diff_edit_status all[] = {DIFF_EDIT_OK, DIFF_EDIT_CANCELLED, DIFF_EDIT_ERR_INVALID_ARGUMENT,
        DIFF_EDIT_ERR_UNSUPPORTED, DIFF_EDIT_ERR_OUT_OF_MEMORY, DIFF_EDIT_ERR_BACKEND, DIFF_EDIT_ERR_IO,
        DIFF_EDIT_ERR_MODEL, DIFF_EDIT_ERR_BUSY};
    const char *unknown = diff_edit_status_string((diff_edit_status)42);
    CHECK(unknown != NULL && strstr(unknown, "unknown") != NULL);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *s = diff_edit_status_string(all[i]);
        CHECK(s != NULL && s[0] != '\0' && strcmp(s, unknown) != 0);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(s, diff_edit_status_string(all[j])) != 0);
    }
    CHECK(strcmp(diff_edit_status_string(DIFF_EDIT_ERR_BUSY), "busy") == 0);
    CHECK(diff_edit_last_error(NULL) != NULL);
}

static void test_defaults(void) {
    diff_edit_model_params mp;
    memset(&mp, 0xFF, sizeof mp);
    diff_edit_model_params_default(&mp);
    CHECK(mp.struct_size == sizeof(diff_edit_model_params));
    CHECK(mp.path == NULL);
    CHECK(mp.backend != NULL && strcmp(mp.backend, "auto") == 0);
    CHECK(mp.device == 0 && mp.n_threads == 0 && mp.log == NULL && mp.log_user == NULL && mp.max_memory == 0);
    CHECK(mp.weights_dtype == NULL);
    diff_edit_model_params_default(NULL); /* ignored */

    diff_edit_params p;
    memset(&p, 0xFF, sizeof p);
    diff_edit_params_default(&p);
    CHECK(p.struct_size == sizeof(diff_edit_params));
    CHECK(p.method == DIFF_EDIT_METHOD_AUTO);
    CHECK(p.prompt != NULL && p.prompt[0] == '\0');
    CHECK(p.source_prompt == NULL && p.negative_prompt == NULL);
    CHECK(p.guidance == 0.0f && p.image_guidance == 0.0f && p.strength == 0.0f && p.steps == 0);
    CHECK(p.seed == 0 && p.mask == NULL && p.mask_out == NULL && p.progress == NULL && p.progress_user == NULL);
    CHECK(p.watermark == 0);
    diff_edit_params_default(NULL); /* ignored */
}

static void test_model_load_errors(void) {
    diff_edit_model_params mp;
    diff_edit_model *m = (diff_edit_model *)&mp; /* garbage that must be reset to NULL */
    diff_edit_model_params_default(&mp);

    EXPECT_ERR(diff_edit_model_load(&mp, NULL), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "out");
    EXPECT_ERR(diff_edit_model_load(NULL, &m), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "params");
    CHECK(m == NULL);

    mp.struct_size = 0;
    m = (diff_edit_model *)&mp;
    EXPECT_ERR(diff_edit_model_load(&mp, &m), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "struct_size");
    CHECK(m == NULL);

    /* Cut inside a field. */
    diff_edit_model_params_default(&mp);
    mp.struct_size = 6;
    EXPECT_ERR(diff_edit_model_load(&mp, &m), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "struct_size");

    /* A newer caller's struct: a non-zero unknown tail is unsupported; a zero tail is fine. */
    struct { diff_edit_model_params p; uint64_t future[2]; } big;
    memset(&big, 0, sizeof big);
    diff_edit_model_params_default(&big.p);
    big.p.struct_size = sizeof big;
    big.p.path = "/nonexistent/diffedit-model";
    big.future[1] = 1;
    EXPECT_ERR(diff_edit_model_load(&big.p, &m), DIFF_EDIT_ERR_UNSUPPORTED, NULL, "struct_size");
    big.future[1] = 0;
    EXPECT_ERR(diff_edit_model_load(&big.p, &m), DIFF_EDIT_ERR_IO, NULL, "/nonexistent/diffedit-model");
    CHECK(m == NULL);

    diff_edit_model_params_default(&mp);
    mp.backend = "gpu";
    EXPECT_ERR(diff_edit_model_load(&mp, &m), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "backend");
    diff_edit_model_params_default(&mp);
    mp.device = -1;
    EXPECT_ERR(diff_edit_model_load(&mp, &m), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "device");
    diff_edit_model_params_default(&mp);
    mp.n_threads = -3;
    EXPECT_ERR(diff_edit_model_load(&mp, &m), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "n_threads");
    diff_edit_model_params_default(&mp);
    mp.weights_dtype = "fp8";
    EXPECT_ERR(diff_edit_model_load(&mp, &m), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "weights_dtype");
    EXPECT_ERR(diff_edit_model_load(&mp, &m), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "q8_0");
    diff_edit_model_params_default(&mp);
    mp.path = "\xff\xfe not utf-8";   /* paths are bytes: accepted, then missing (IO), shown escaped */
    EXPECT_ERR(diff_edit_model_load(&mp, &m), DIFF_EDIT_ERR_IO, NULL, "\\xFF\\xFE not utf-8");
    diff_edit_model_params_default(&mp);
    mp.path = "/nonexistent/diffedit-model.safetensors";
    mp.backend = "cpu";
    EXPECT_ERR(diff_edit_model_load(&mp, &m), DIFF_EDIT_ERR_IO, NULL, "/nonexistent/diffedit-model.safetensors");
    CHECK(m == NULL);
}

/* path NULL or "": the default model installed with the library (PREFIX/share/diffedit/models/toy-instruct).
 * Where it is not installed the load fails with DIFF_EDIT_ERR_IO and says where it looked. */
static void test_default_model(void) {
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.backend = "cpu";
    for (int i = 0; i < 2; i++) {
        mp.path = i == 0 ? NULL : "";
        diff_edit_model *m = NULL;
        diff_edit_status st = diff_edit_model_load(&mp, &m);
        if (st == DIFF_EDIT_OK) {
            CHECK(m != NULL);
            diff_edit_model_free(m);
        } else {
            EXPECT_ERR(st, DIFF_EDIT_ERR_IO, NULL, "default model");
            CHECK(m == NULL);
            if (i == 0) fprintf(stderr, "note: no default model installed: %s\n", diff_edit_last_error(NULL));
        }
    }
}

/* backend "cuda" without a usable CUDA provider fails with DIFF_EDIT_ERR_BACKEND (never silently CPU). */
static void test_cuda_backend(void) {
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.path = g_model_path;
    mp.backend = "cuda";
    diff_edit_model *m = NULL;
    diff_edit_status st = diff_edit_model_load(&mp, &m);
    if (st == DIFF_EDIT_OK) {
        CHECK(m != NULL);
        diff_edit_model_free(m);
        fprintf(stderr, "note: CUDA backend available\n");
    } else {
        EXPECT_ERR(st, DIFF_EDIT_ERR_BACKEND, NULL, "cuda");
        CHECK(m == NULL);
    }
}

static void test_null_handles(void) {
    diff_edit_ctx *c = (diff_edit_ctx *)&c;
    EXPECT_ERR(diff_edit_ctx_create(NULL, &c), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "model");
    CHECK(c == NULL);
    EXPECT_ERR(diff_edit_ctx_create((diff_edit_model *)&c, NULL), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "out");

    diff_edit_params p;
    diff_edit_params_default(&p);
    diff_edit_buffer in = image_new(8, 8, DIFF_EDIT_RGB8), out = image_new(8, 8, DIFF_EDIT_RGB8);
    EXPECT_ERR(diff_edit_image(NULL, &p, &in, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "ctx");
    EXPECT_ERR(diff_edit_video(NULL, &p, &in, 1, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "ctx");
    CHECK(pixels_untouched(&out));
    image_free(&in); image_free(&out);

    diff_edit_model_free(NULL);
    diff_edit_ctx_free(NULL);
    diff_edit_cancel(NULL);
}

/* The thread's last error is per thread. */
static void *other_thread_error(void *arg) {
    const char **seen = (const char **)arg;
    diff_edit_model *m = NULL;
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.n_threads = -7;
    diff_edit_model_load(&mp, &m);
    seen[0] = strstr(diff_edit_last_error(NULL), "n_threads") ? "n_threads" : "other";
    return NULL;
}

static void test_thread_local_errors(void) {
    diff_edit_model *m = NULL;
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.device = -2;
    diff_edit_model_load(&mp, &m);
    CHECK(strstr(diff_edit_last_error(NULL), "device") != NULL);
    const char *seen[1] = {NULL};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread_error, seen) == 0);
    pthread_join(t, NULL);
    CHECK(seen[0] != NULL && strcmp(seen[0], "n_threads") == 0);
    /* This thread's message is unchanged by the other thread's failure. */
    CHECK(strstr(diff_edit_last_error(NULL), "device") != NULL);
}

/* ------------------------------------------------------------------------------------------------
 * Tests with a model
 * ---------------------------------------------------------------------------------------------- */

static uint32_t g_w = 40, g_h = 24;   /* odd, non-multiple-of-8 sizes exercise pad-and-crop */
enum { STEPS = 4 };

static void base_params(diff_edit_params *p) {
    diff_edit_params_default(p);
    p->method = DIFF_EDIT_METHOD_SDEDIT;
    p->prompt = "a red square on a blue background";
    p->steps = STEPS;
    p->strength = 1.0f;
    p->guidance = 5.0f;
    p->seed = 1234;
}

static int g_log_calls = 0;
static void log_cb(void *user, int level, const char *message) {
    (void)level;
    CHECK(user == (void *)&g_log_calls && message != NULL);
    g_log_calls++;
}

static diff_edit_model *load_model(void) {
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.path = g_model_path;
    mp.backend = "cpu";
    mp.n_threads = 2;
    mp.log = log_cb;
    mp.log_user = &g_log_calls;
    diff_edit_model *m = NULL;
    diff_edit_status st = diff_edit_model_load(&mp, &m);
    if (st != DIFF_EDIT_OK) {
        fprintf(stderr, "FAIL: cannot load model %s: %s: %s\n", g_model_path ? g_model_path : "(default)",
                diff_edit_status_string(st), diff_edit_last_error(NULL));
        g_failures++;
        return NULL;
    }
    CHECK(m != NULL);
    return m;
}

static void test_image_errors(diff_edit_ctx *ctx) {
    diff_edit_params p;
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_RGB8), out = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    image_fill(&in, 1);
    base_params(&p);

#define IMG_ERR(want, field) do { \
        EXPECT_ERR(diff_edit_image(ctx, &p, &in, &out), (want), ctx, (field)); \
        CHECK(pixels_untouched(&out) && padding_intact(&out)); \
        base_params(&p); \
    } while (0)

    EXPECT_ERR(diff_edit_image(ctx, NULL, &in, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "params");
    EXPECT_ERR(diff_edit_image(ctx, &p, NULL, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "input");
    EXPECT_ERR(diff_edit_image(ctx, &p, &in, NULL), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "output");

    p.struct_size = 0; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "struct_size");
    p.struct_size = 10; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "struct_size");
    {
        struct { diff_edit_params p; uint32_t future[4]; } big;
        memset(&big, 0, sizeof big);
        base_params(&big.p);
        big.p.struct_size = sizeof big;
        big.future[3] = 9;
        EXPECT_ERR(diff_edit_image(ctx, &big.p, &in, &out), DIFF_EDIT_ERR_UNSUPPORTED, ctx, "struct_size");
        CHECK(pixels_untouched(&out));
    }
    p.watermark = 2; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "watermark");
    p.method = (diff_edit_method)6; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "method");
    p.method = (diff_edit_method)-1; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "method");
    p.prompt = NULL; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "prompt");
    p.prompt = "caf\xc3"; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "prompt");
    p.negative_prompt = "\xff"; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "negative_prompt");
    p.method = DIFF_EDIT_METHOD_P2P; p.source_prompt = NULL; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "source_prompt");
    p.method = DIFF_EDIT_METHOD_P2P; p.source_prompt = " "; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "source_prompt");
    p.method = DIFF_EDIT_METHOD_DDIM; p.source_prompt = NULL; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "source_prompt");
    p.source_prompt = "\xc0\xaf"; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "source_prompt");
    p.guidance = NAN; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "guidance");
    p.guidance = INFINITY; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "guidance");
    p.guidance = -1.0f; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "guidance");
    p.guidance = 1000.0f; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "guidance");
    p.image_guidance = NAN; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "image_guidance");
    p.image_guidance = -INFINITY; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "image_guidance");
    p.strength = NAN; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "strength");
    p.strength = 1.5f; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "strength");
    p.strength = -0.25f; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "strength");
    p.steps = DIFF_EDIT_MAX_STEPS + 1; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "steps");

    /* Input buffer fields. */
    diff_edit_buffer bad = in;
    bad.width = 0;
    EXPECT_ERR(diff_edit_image(ctx, &p, &bad, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "input->width");
    bad = in; bad.height = 0;
    EXPECT_ERR(diff_edit_image(ctx, &p, &bad, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "input->height");
    bad = in; bad.width = DIFF_EDIT_MAX_DIMENSION + 1;
    EXPECT_ERR(diff_edit_image(ctx, &p, &bad, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "input->width");
    bad = in; bad.height = 0xFFFFFFFFu;
    EXPECT_ERR(diff_edit_image(ctx, &p, &bad, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "input->height");
    bad = in; bad.stride = in.width * 3 - 1;
    EXPECT_ERR(diff_edit_image(ctx, &p, &bad, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "input->stride");
    bad = in; bad.format = DIFF_EDIT_RGBA8; /* stride = 3w+7 < 4w for w = 40 */
    EXPECT_ERR(diff_edit_image(ctx, &p, &bad, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "input->stride");
    bad = in; bad.format = (diff_edit_pixel_format)9;
    EXPECT_ERR(diff_edit_image(ctx, &p, &bad, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "input->format");
    bad = in; bad.data = NULL;
    EXPECT_ERR(diff_edit_image(ctx, &p, &bad, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "input->data");
    CHECK(pixels_untouched(&out));

    /* Output buffer fields. */
    bad = out; bad.width = g_w + 1;
    EXPECT_ERR(diff_edit_image(ctx, &p, &in, &bad), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "output");
    bad = out; bad.height = g_h - 1;
    EXPECT_ERR(diff_edit_image(ctx, &p, &in, &bad), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "output");
    bad = out; bad.stride = 5;
    EXPECT_ERR(diff_edit_image(ctx, &p, &in, &bad), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "output->stride");
    bad = out; bad.data = NULL;
    EXPECT_ERR(diff_edit_image(ctx, &p, &in, &bad), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "output->data");
    bad = out; bad.format = (diff_edit_pixel_format)77;
    EXPECT_ERR(diff_edit_image(ctx, &p, &in, &bad), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "output->format");
    CHECK(pixels_untouched(&out) && padding_intact(&out));

    /* Masks: GRAY8, the input's size. */
    diff_edit_buffer mask = image_new(g_w, g_h, DIFF_EDIT_GRAY8), mask_rgb = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    diff_edit_buffer mask_small = image_new(g_w / 2, g_h, DIFF_EDIT_GRAY8);
    image_fill(&mask, 3);
    p.mask = &mask_rgb; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "mask->format");
    p.mask = &mask_small; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->mask");
    bad = mask; bad.stride = 1;
    p.mask = &bad; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->mask->stride");
    p.mask_out = &mask_rgb; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "mask_out->format");
    p.mask_out = &mask_small; IMG_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->mask_out");
    CHECK(pixels_untouched(&mask_small) && pixels_untouched(&mask_rgb));

    /* INSTRUCT needs an instruct checkpoint (the fixture is not one). */
    p.method = DIFF_EDIT_METHOD_INSTRUCT; IMG_ERR(DIFF_EDIT_ERR_UNSUPPORTED, "INSTRUCT");

    /* The context's and the thread's messages agree after a failure. */
    p.strength = 2.0f;
    EXPECT_ERR(diff_edit_image(ctx, &p, &in, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "strength");
    CHECK(strcmp(diff_edit_last_error(ctx), diff_edit_last_error(NULL)) == 0);
#undef IMG_ERR
    image_free(&mask); image_free(&mask_rgb); image_free(&mask_small);
    image_free(&in); image_free(&out);
}

static void test_video_errors(diff_edit_ctx *ctx) {
    diff_edit_params p;
    base_params(&p);
    diff_edit_buffer in[3], out[3];
    for (int i = 0; i < 3; i++) {
        in[i] = image_new(g_w, g_h, DIFF_EDIT_RGB8); image_fill(&in[i], (uint32_t)i);
        out[i] = image_new(g_w, g_h, DIFF_EDIT_RGBA8);
    }
    EXPECT_ERR(diff_edit_video(ctx, &p, NULL, 3, out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "frames_in");
    EXPECT_ERR(diff_edit_video(ctx, &p, in, 3, NULL), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "frames_out");
    EXPECT_ERR(diff_edit_video(ctx, &p, in, 0, out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "n_frames");
    EXPECT_ERR(diff_edit_video(ctx, NULL, in, 3, out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "params");
    p.steps = 100000;
    EXPECT_ERR(diff_edit_video(ctx, &p, in, 3, out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "steps");
    base_params(&p);
    uint32_t s = in[1].stride;
    in[1].stride = 2;
    EXPECT_ERR(diff_edit_video(ctx, &p, in, 3, out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "frames_in[1]->stride");
    in[1].stride = s;
    in[2].width = g_w - 2;
    EXPECT_ERR(diff_edit_video(ctx, &p, in, 3, out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "frames_in[2]");
    in[2].width = g_w;
    out[2].height = g_h + 1;
    EXPECT_ERR(diff_edit_video(ctx, &p, in, 3, out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "frames_out[2]");
    out[2].height = g_h;
    {
        void *d = out[1].data;
        out[1].data = NULL;
        EXPECT_ERR(diff_edit_video(ctx, &p, in, 3, out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "frames_out[1]->data");
        out[1].data = d;
    }
    for (int i = 0; i < 3; i++) CHECK(pixels_untouched(&out[i]) && padding_intact(&out[i]));
    for (int i = 0; i < 3; i++) { image_free(&in[i]); image_free(&out[i]); }
}

/* Progress recorder. */
typedef struct {
    uint32_t calls, last_step, last_steps, last_frame, last_frames, max_frame;
    uint32_t cancel_at;         /* return false at this call (0 = never) */
    int cancel_via_api;         /* call diff_edit_cancel instead of returning false */
    diff_edit_ctx *ctx;
} progress_rec;

static bool progress_cb(void *user, uint32_t step, uint32_t steps, uint32_t frame, uint32_t frames) {
    progress_rec *r = (progress_rec *)user;
    r->calls++;
    r->last_step = step; r->last_steps = steps; r->last_frame = frame; r->last_frames = frames;
    if (frame > r->max_frame) r->max_frame = frame;
    if (r->cancel_at && r->calls == r->cancel_at) {
        if (r->cancel_via_api) { diff_edit_cancel(r->ctx); return true; }
        return false;
    }
    return true;
}

/* diff_edit_last_provenance and params->watermark. */
static void test_provenance(diff_edit_model *model) {
    diff_edit_ctx *ctx = NULL;
    EXPECT_OK(diff_edit_ctx_create(model, &ctx), NULL);
    if (!ctx) return;
    CHECK(diff_edit_last_provenance(NULL) != NULL && diff_edit_last_provenance(NULL)[0] == '\0');
    CHECK(diff_edit_last_provenance(ctx) != NULL && diff_edit_last_provenance(ctx)[0] == '\0'); /* no call yet */
    diff_edit_params p;
    base_params(&p);
    p.seed = 7;
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_RGB8), out = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    diff_edit_buffer outw = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    image_fill(&in, 3);
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);
    const char *x = diff_edit_last_provenance(ctx);
    CHECK(strstr(x, "<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/"
                    "compositeWithTrainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>") != NULL);
    CHECK(strstr(x, "<diffedit:Seed>7</diffedit:Seed>") != NULL && strstr(x, "<diffedit:Method>sdedit</diffedit:Method>") != NULL);
    CHECK(strstr(x, "<diffedit:Prompt>a red square on a blue background</diffedit:Prompt>") != NULL);
    const char *h = strstr(x, "<diffedit:ModelSHA256>");
    CHECK(h != NULL && strspn(h + strlen("<diffedit:ModelSHA256>"), "0123456789abcdef") == 64);
    CHECK(strstr(x, "<diffedit:Watermark>none</diffedit:Watermark>") != NULL);
    CHECK(diff_edit_last_provenance(ctx) == x); /* stable until the next editing call */
    /* under 256 px a side nothing is marked: the same pixels */
    p.watermark = 1;
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &outw), ctx);
    CHECK(pixels_equal(&out, &outw));
    /* a failed call leaves no record */
    p.strength = 2.0f;
    EXPECT_ERR(diff_edit_image(ctx, &p, &in, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "strength");
    CHECK(diff_edit_last_provenance(ctx)[0] == '\0');
    image_free(&in); image_free(&out); image_free(&outw);
    if (!g_valgrind) {
        /* 256x256: the mark changes the pixels a little (PSNR >= 38 dB against the unmarked edit) */
        diff_edit_buffer bi = image_new(256, 256, DIFF_EDIT_RGB8), b0 = image_new(256, 256, DIFF_EDIT_RGB8),
                         b1 = image_new(256, 256, DIFF_EDIT_RGB8);
        image_fill(&bi, 4);
        base_params(&p);
        p.steps = 2;
        EXPECT_OK(diff_edit_image(ctx, &p, &bi, &b0), ctx);
        p.watermark = 1;
        EXPECT_OK(diff_edit_image(ctx, &p, &bi, &b1), ctx);
        CHECK(strstr(diff_edit_last_provenance(ctx), "dwtDctSvd") != NULL);
        double se = 0;
        for (uint32_t y = 0; y < 256; y++)
            for (uint32_t i = 0; i < 256 * 3; i++) {
                double d = (double)((uint8_t *)b0.data)[(size_t)y * b0.stride + i] - ((uint8_t *)b1.data)[(size_t)y * b1.stride + i];
                se += d * d;
            }
        double mse = se / (256.0 * 256 * 3);
        CHECK(mse > 0 && mse <= 10.306); /* PSNR = 10 log10(255^2 / mse) >= 38 dB */
        CHECK(padding_intact(&b1));
        image_free(&bi); image_free(&b0); image_free(&b1);
    }
    diff_edit_ctx_free(ctx);
}

static void test_image_success(diff_edit_ctx *ctx) {
    diff_edit_params p;
    base_params(&p);
    progress_rec rec;
    memset(&rec, 0, sizeof rec);
    p.progress = progress_cb;
    p.progress_user = &rec;

    /* RGBA in, RGBA out: alpha copied unchanged, padding untouched. */
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_RGBA8), out = image_new(g_w, g_h, DIFF_EDIT_RGBA8);
    image_fill(&in, 5);
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);
    CHECK(padding_intact(&out) && padding_intact(&in));
    int alpha_ok = 1, changed = 0;
    for (uint32_t y = 0; y < g_h; y++) {
        const uint8_t *a = (const uint8_t *)in.data + (size_t)y * in.stride;
        const uint8_t *b = (const uint8_t *)out.data + (size_t)y * out.stride;
        for (uint32_t x = 0; x < g_w; x++) {
            if (a[x * 4 + 3] != b[x * 4 + 3]) alpha_ok = 0;
            if (memcmp(a + x * 4, b + x * 4, 3) != 0) changed = 1;
        }
    }
    CHECK(alpha_ok);
    CHECK(changed); /* the edit did something */
    CHECK(rec.calls >= 1 && rec.last_frames == 1 && rec.last_frame == 0 && rec.last_step == rec.last_steps);

    /* Same seed, same input: bit-identical. */
    diff_edit_buffer out2 = image_new(g_w, g_h, DIFF_EDIT_RGBA8);
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out2), ctx);
    CHECK(pixels_equal(&out, &out2));

    /* BGRA out of RGBA in: same colours, swapped; GRAY8 out; RGB8 out. */
    diff_edit_buffer bgra = image_new(g_w, g_h, DIFF_EDIT_BGRA8), gray = image_new(g_w, g_h, DIFF_EDIT_GRAY8);
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &bgra), ctx);
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &gray), ctx);
    CHECK(padding_intact(&bgra) && padding_intact(&gray));
    int swap_ok = 1, gray_ok = 1;
    for (uint32_t y = 0; y < g_h; y++) {
        const uint8_t *a = (const uint8_t *)out.data + (size_t)y * out.stride;
        const uint8_t *b = (const uint8_t *)bgra.data + (size_t)y * bgra.stride;
        const uint8_t *g = (const uint8_t *)gray.data + (size_t)y * gray.stride;
        for (uint32_t x = 0; x < g_w; x++) {
            if (a[x * 4] != b[x * 4 + 2] || a[x * 4 + 1] != b[x * 4 + 1] || a[x * 4 + 2] != b[x * 4] ||
                a[x * 4 + 3] != b[x * 4 + 3]) swap_ok = 0;
            int l = (299 * a[x * 4] + 587 * a[x * 4 + 1] + 114 * a[x * 4 + 2] + 500) / 1000;
            if (g[x] != l) gray_ok = 0;
        }
    }
    CHECK(swap_ok);
    CHECK(gray_ok);

    /* In place (output is the input). */
    diff_edit_buffer inplace = image_new(g_w, g_h, DIFF_EDIT_RGBA8);
    image_fill(&inplace, 5);
    EXPECT_OK(diff_edit_image(ctx, &p, &inplace, &inplace), ctx);
    CHECK(pixels_equal(&inplace, &out) && padding_intact(&inplace));

    /* A struct from a newer header with a zero tail works like the known part. */
    struct { diff_edit_params p; uint64_t future[3]; } big;
    memset(&big, 0, sizeof big);
    big.p = p;
    big.p.struct_size = sizeof big;
    image_reset(&out2);
    EXPECT_OK(diff_edit_image(ctx, &big.p, &in, &out2), ctx);
    CHECK(pixels_equal(&out, &out2));

    /* An older, shorter struct (ending before `mask`): the rest takes defaults. */
    diff_edit_params older = p;
    older.struct_size = (uint32_t)offsetof(diff_edit_params, mask);
    diff_edit_buffer junk = image_new(3, 3, DIFF_EDIT_RGB8);
    older.mask = &junk; /* beyond struct_size: must not be read (it would be invalid) */
    older.mask_out = &junk;
    EXPECT_OK(diff_edit_image(ctx, &older, &in, &out2), ctx);
    CHECK(pixels_equal(&out, &out2));
    CHECK(pixels_untouched(&junk));
    image_free(&junk);
    /* A struct from before `watermark` (it ended at progress_user): a junk watermark past it is not read. */
    older = p;
    older.struct_size = (uint32_t)offsetof(diff_edit_params, watermark);
    older.watermark = 7;
    EXPECT_OK(diff_edit_image(ctx, &older, &in, &out2), ctx);
    CHECK(pixels_equal(&out, &out2));

    /* Odd sizes (the library resizes/pads to what the model needs and back): a GIMP-like 333x517 layer,
     * and a small one. */
    if (!g_valgrind) {
        diff_edit_buffer gi = image_new(333, 517, DIFF_EDIT_RGBA8), go = image_new(333, 517, DIFF_EDIT_RGBA8);
        image_fill(&gi, 12);
        EXPECT_OK(diff_edit_image(ctx, &p, &gi, &go), ctx);
        int a_ok = 1;
        for (uint32_t y = 0; y < 517; y++)
            for (uint32_t x = 0; x < 333; x++)
                if (((uint8_t *)gi.data)[(size_t)y * gi.stride + x * 4 + 3] != ((uint8_t *)go.data)[(size_t)y * go.stride + x * 4 + 3])
                    a_ok = 0;
        CHECK(a_ok && padding_intact(&go) && !pixels_untouched(&go));
        image_free(&gi); image_free(&go);
    }
    {
        uint32_t w = g_valgrind ? 13 : 33, h = g_valgrind ? 9 : 17;
        diff_edit_buffer oi = image_new(w, h, DIFF_EDIT_BGR8), oo = image_new(w, h, DIFF_EDIT_BGR8);
        image_fill(&oi, 9);
        EXPECT_OK(diff_edit_image(ctx, &p, &oi, &oo), ctx);
        CHECK(padding_intact(&oo) && !pixels_untouched(&oo));
        image_free(&oi); image_free(&oo);
    }

    /* Mask: where it is 0 the output keeps the input; mask_out receives the mask used. */
    {
        diff_edit_buffer mask = image_new(g_w, g_h, DIFF_EDIT_GRAY8), mask_out = image_new(g_w, g_h, DIFF_EDIT_GRAY8);
        for (uint32_t y = 0; y < g_h; y++)
            memset((uint8_t *)mask.data + (size_t)y * mask.stride, 0, g_w),
            memset((uint8_t *)mask.data + (size_t)y * mask.stride, 255, g_w / 2);
        diff_edit_params mp = p;
        mp.mask = &mask;
        mp.mask_out = &mask_out;
        image_reset(&out2);
        EXPECT_OK(diff_edit_image(ctx, &mp, &in, &out2), ctx);
        int keep_ok = 1, mask_ok = 1;
        for (uint32_t y = 0; y < g_h; y++) {
            const uint8_t *a = (const uint8_t *)in.data + (size_t)y * in.stride;
            const uint8_t *b = (const uint8_t *)out2.data + (size_t)y * out2.stride;
            const uint8_t *mo = (const uint8_t *)mask_out.data + (size_t)y * mask_out.stride;
            for (uint32_t x = g_w / 2; x < g_w; x++) {
                if (memcmp(a + x * 4, b + x * 4, 4) != 0) keep_ok = 0;
                if (mo[x] != 0) mask_ok = 0;
            }
        }
        CHECK(keep_ok);
        CHECK(mask_ok);
        CHECK(padding_intact(&mask_out) && padding_intact(&mask));

        /* Without a user mask (SDEDIT edits everything): mask_out is all 255. */
        mp.mask = NULL;
        image_reset(&mask_out);
        EXPECT_OK(diff_edit_image(ctx, &mp, &in, &out2), ctx);
        int full = 1;
        for (uint32_t y = 0; y < g_h; y++)
            for (uint32_t x = 0; x < g_w; x++)
                if (((const uint8_t *)mask_out.data)[(size_t)y * mask_out.stride + x] != 255) full = 0;
        CHECK(full);
        CHECK(padding_intact(&mask_out));
        image_free(&mask); image_free(&mask_out);
    }

    /* Every method either works or says it is unsupported, never crashes. */
    {
        static const diff_edit_method methods[] = {DIFF_EDIT_METHOD_AUTO, DIFF_EDIT_METHOD_SDEDIT,
                                                   DIFF_EDIT_METHOD_DDIM, DIFF_EDIT_METHOD_P2P};
        for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
            diff_edit_params q = p;
            q.method = methods[i];
            q.source_prompt = "a blue square on a red background";
            image_reset(&out2);
            diff_edit_status st = diff_edit_image(ctx, &q, &in, &out2);
            CHECK(st == DIFF_EDIT_OK || st == DIFF_EDIT_ERR_UNSUPPORTED);
            if (st == DIFF_EDIT_OK) CHECK(padding_intact(&out2) && !pixels_untouched(&out2));
            else {
                CHECK(diff_edit_last_error(ctx)[0] != '\0' && pixels_untouched(&out2));
                fprintf(stderr, "note: method %d unsupported: %s\n", (int)methods[i], diff_edit_last_error(ctx));
            }
        }
    }

    image_free(&in); image_free(&out); image_free(&out2); image_free(&bgra); image_free(&gray);
    image_free(&inplace);
}

static void test_cancel_from_callback(diff_edit_ctx *ctx) {
    diff_edit_params p;
    base_params(&p);
    progress_rec rec;
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_RGB8), out = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    image_fill(&in, 2);
    p.progress = progress_cb;
    p.progress_user = &rec;

    for (int via_api = 0; via_api < 2; via_api++) {
        memset(&rec, 0, sizeof rec);
        rec.cancel_at = 1;
        rec.cancel_via_api = via_api;
        rec.ctx = ctx;
        EXPECT_ERR(diff_edit_image(ctx, &p, &in, &out), DIFF_EDIT_CANCELLED, ctx, "cancel");
        CHECK(rec.calls == 1); /* the step after a cancel never reaches the callback */
        CHECK(pixels_untouched(&out));
        /* Still usable afterwards, and a cancel does not leak into the next call. */
        memset(&rec, 0, sizeof rec);
        EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);
        CHECK(rec.calls >= 1 && !pixels_untouched(&out));
        image_reset(&out);
    }
    /* A cancel with no call running does nothing. */
    diff_edit_cancel(ctx);
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);
    image_free(&in); image_free(&out);
}

/* Another thread waits for the first progress report, then acts (cancel, or a second call). */
typedef struct {
    diff_edit_ctx *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, acted;
    int action; /* 0 = cancel, 1 = a concurrent diff_edit_image on the same ctx */
    diff_edit_status second_status;
    int second_msg_ok;
    diff_edit_buffer *in, *out;
} sync_state;

static bool sync_progress(void *user, uint32_t step, uint32_t steps, uint32_t frame, uint32_t frames) {
    (void)step; (void)steps; (void)frame; (void)frames;
    sync_state *s = (sync_state *)user;
    pthread_mutex_lock(&s->mu);
    if (!s->started) {
        s->started = 1;
        pthread_cond_broadcast(&s->cv);
        while (!s->acted) pthread_cond_wait(&s->cv, &s->mu);   /* hold the call open until acted */
    }
    pthread_mutex_unlock(&s->mu);
    return true;
}

static void *sync_actor(void *arg) {
    sync_state *s = (sync_state *)arg;
    pthread_mutex_lock(&s->mu);
    while (!s->started) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (s->action == 0) {
        diff_edit_cancel(s->ctx);
    } else {
        diff_edit_params p;
        base_params(&p);
        s->second_status = diff_edit_image(s->ctx, &p, s->in, s->out);
        s->second_msg_ok = strstr(diff_edit_last_error(NULL), "busy") != NULL;
    }
    pthread_mutex_lock(&s->mu);
    s->acted = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void run_with_actor(diff_edit_ctx *ctx, int action, diff_edit_status *first, sync_state *s,
                           diff_edit_buffer *in, diff_edit_buffer *out, diff_edit_buffer *out_second) {
    memset(s, 0, sizeof *s);
    s->ctx = ctx; s->action = action; s->in = in; s->out = out_second;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, sync_actor, s) == 0);
    diff_edit_params p;
    base_params(&p);
    p.progress = sync_progress;
    p.progress_user = s;
    *first = diff_edit_image(ctx, &p, in, out);
    pthread_join(t, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static void test_cancel_from_thread_and_busy(diff_edit_ctx *ctx) {
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_RGB8), out = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    diff_edit_buffer out_second = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    image_fill(&in, 4);
    sync_state s;
    diff_edit_status st;

    run_with_actor(ctx, 0, &st, &s, &in, &out, &out_second);
    CHECK(st == DIFF_EDIT_CANCELLED);
    CHECK(strstr(diff_edit_last_error(ctx), "cancel") != NULL);
    CHECK(pixels_untouched(&out));

    /* Usable after the cancel. */
    diff_edit_params p;
    base_params(&p);
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);

    /* BUSY: a second call while the first runs. The first one then completes normally. */
    image_reset(&out);
    run_with_actor(ctx, 1, &st, &s, &in, &out, &out_second);
    CHECK(s.second_status == DIFF_EDIT_ERR_BUSY);
    CHECK(s.second_msg_ok);
    CHECK(pixels_untouched(&out_second));
    EXPECT_OK(st, ctx);
    CHECK(!pixels_untouched(&out));
    image_free(&in); image_free(&out); image_free(&out_second);
}

/* Two contexts over one model in two threads: both succeed and match a sequential run. */
typedef struct {
    diff_edit_ctx *ctx;
    diff_edit_buffer *in, *out;
    diff_edit_status st;
} par_job;

static void *par_run(void *arg) {
    par_job *j = (par_job *)arg;
    diff_edit_params p;
    base_params(&p);
    j->st = diff_edit_image(j->ctx, &p, j->in, j->out);
    return NULL;
}

static void test_two_contexts(diff_edit_model *model, diff_edit_ctx *ctx1) {
    diff_edit_ctx *ctx2 = NULL;
    EXPECT_OK(diff_edit_ctx_create(model, &ctx2), NULL);
    if (!ctx2) return;
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_RGB8), ref = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    diff_edit_buffer o1 = image_new(g_w, g_h, DIFF_EDIT_RGB8), o2 = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    image_fill(&in, 8);
    diff_edit_params p;
    base_params(&p);
    EXPECT_OK(diff_edit_image(ctx1, &p, &in, &ref), ctx1);

    par_job j1 = {ctx1, &in, &o1, DIFF_EDIT_ERR_BACKEND}, j2 = {ctx2, &in, &o2, DIFF_EDIT_ERR_BACKEND};
    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, par_run, &j1) == 0);
    CHECK(pthread_create(&t2, NULL, par_run, &j2) == 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    EXPECT_OK(j1.st, ctx1);
    EXPECT_OK(j2.st, ctx2);
    CHECK(pixels_equal(&o1, &ref));
    CHECK(pixels_equal(&o2, &ref));
    diff_edit_ctx_free(ctx2);
    image_free(&in); image_free(&ref); image_free(&o1); image_free(&o2);
}

static void test_video_success(diff_edit_ctx *ctx) {
    enum { N = 3 };
    diff_edit_buffer in[N], out[N], single = image_new(g_w, g_h, DIFF_EDIT_RGBA8);
    for (int i = 0; i < N; i++) {
        in[i] = image_new(g_w, g_h, DIFF_EDIT_RGBA8); image_fill(&in[i], 20 + (uint32_t)i);
        out[i] = image_new(g_w, g_h, DIFF_EDIT_RGBA8);
    }
    diff_edit_params p;
    base_params(&p);
    progress_rec rec;
    memset(&rec, 0, sizeof rec);
    p.progress = progress_cb;
    p.progress_user = &rec;
    EXPECT_OK(diff_edit_video(ctx, &p, in, N, out), ctx);
    CHECK(rec.last_frames == N && rec.max_frame == N - 1 && rec.last_frame == N - 1);
    /* The consistent video method (Tests/CABI/test_stream.c compares it with the streaming API):
     * every frame edited, padding intact, and a second call gives the same bytes. */
    for (int i = 0; i < N; i++) {
        CHECK(padding_intact(&out[i]));
        CHECK(!pixels_equal(&out[i], &in[i]));
        image_reset(&single);
    }
    {
        diff_edit_buffer again[N];
        for (int i = 0; i < N; i++) again[i] = image_new(g_w, g_h, DIFF_EDIT_RGBA8);
        p.progress = NULL;
        EXPECT_OK(diff_edit_video(ctx, &p, in, N, again), ctx);
        for (int i = 0; i < N; i++) { CHECK(pixels_equal(&again[i], &out[i])); image_free(&again[i]); }
    }
    /* Cancel while the (only) window is edited: every frame untouched. */
    for (int i = 0; i < N; i++) image_reset(&out[i]);
    memset(&rec, 0, sizeof rec);
    p.progress = progress_cb;
    p.progress_user = &rec;
    rec.cancel_at = 2;
    EXPECT_ERR(diff_edit_video(ctx, &p, in, N, out), DIFF_EDIT_CANCELLED, ctx, "cancel");
    for (int i = 0; i < N; i++) CHECK(pixels_untouched(&out[i]));

    /* With a mask, frames are edited one by one with diff_edit_image semantics and one seed. */
    {
        diff_edit_buffer mask = image_new(g_w, g_h, DIFF_EDIT_GRAY8);
        for (uint32_t y = 0; y < g_h; y++) memset((uint8_t *)mask.data + (size_t)y * mask.stride, 255, g_w);
        diff_edit_params m = p;
        m.mask = &mask;
        m.progress = NULL;
        for (int i = 0; i < N; i++) image_reset(&out[i]);
        EXPECT_OK(diff_edit_video(ctx, &m, in, N, out), ctx);
        for (int i = 0; i < N; i++) {
            image_reset(&single);
            EXPECT_OK(diff_edit_image(ctx, &m, &in[i], &single), ctx);
            CHECK(pixels_equal(&single, &out[i]) && padding_intact(&out[i]));
        }
        /* Cancel at the first step of frame 1: frame 0 written, later frames untouched. */
        progress_rec count;
        memset(&count, 0, sizeof count);
        m.progress = progress_cb;
        m.progress_user = &count;
        EXPECT_OK(diff_edit_image(ctx, &m, &in[0], &single), ctx);
        for (int i = 0; i < N; i++) image_reset(&out[i]);
        memset(&rec, 0, sizeof rec);
        rec.cancel_at = count.calls + 1;
        m.progress_user = &rec;
        EXPECT_ERR(diff_edit_video(ctx, &m, in, N, out), DIFF_EDIT_CANCELLED, ctx, "cancel");
        CHECK(rec.last_frame == 1);
        CHECK(!pixels_untouched(&out[0]) && pixels_untouched(&out[1]) && pixels_untouched(&out[2]));
        image_free(&mask);
    }
    for (int i = 0; i < N; i++) { image_free(&in[i]); image_free(&out[i]); }
    image_free(&single);
}

static void test_model_outlives_handle(void) {
    diff_edit_model *m = load_model();
    if (!m) return;
    diff_edit_ctx *c = NULL;
    EXPECT_OK(diff_edit_ctx_create(m, &c), NULL);
    diff_edit_model_free(m);  /* the context keeps the weights alive */
    if (!c) return;
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_GRAY8), out = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    image_fill(&in, 6);
    diff_edit_params p;
    base_params(&p);
    EXPECT_OK(diff_edit_image(c, &p, &in, &out), c);
    CHECK(padding_intact(&out) && !pixels_untouched(&out));
    diff_edit_ctx_free(c);
    image_free(&in); image_free(&out);
}

/* Issue 21. max_memory: the weights' size, estimated from the configs, is checked at load (before any tensor is
 * read) and a request's working set beside the weights before the request runs; both fail with OUT_OF_MEMORY
 * naming the limit, and the model stays usable. strength below 1/steps (1e-30 is inside (0, 1]) runs no step:
 * the VAE reconstruction. The seed's low 32 bits are what count (torch's generator). */
static void test_memory_strength_seed(void) {
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    CHECK(mp.max_memory == 0);
    mp.path = g_model_path;
    mp.backend = "cpu";
    mp.n_threads = 2;
    mp.max_memory = 4096;   /* below any model's weights */
    diff_edit_model *m = (diff_edit_model *)&mp;
    EXPECT_ERR(diff_edit_model_load(&mp, &m), DIFF_EDIT_ERR_OUT_OF_MEMORY, NULL, "max_memory, 4096 bytes");
    CHECK(m == NULL);
    /* the message gives the estimate: with max_memory 1 KB above it the weights load but no request fits */
    unsigned long long need = 0;
    const char *at = strstr(diff_edit_last_error(NULL), "need about ");
    CHECK(at != NULL && sscanf(at, "need about %llu bytes", &need) == 1 && need > 4096);
    mp.max_memory = need + 1024;
    EXPECT_OK(diff_edit_model_load(&mp, &m), NULL);
    diff_edit_params p;
    base_params(&p);
    if (m) {
        diff_edit_ctx *tight = NULL;
        EXPECT_OK(diff_edit_ctx_create(m, &tight), NULL);
        diff_edit_buffer i2 = image_new(g_w, g_h, DIFF_EDIT_GRAY8), o2 = image_new(g_w, g_h, DIFF_EDIT_GRAY8);
        image_fill(&i2, 3);
        for (int k = 0; tight && k < 2; k++) {   /* refused each time, before running: no BUSY, output untouched */
            EXPECT_ERR(diff_edit_image(tight, &p, &i2, &o2), DIFF_EDIT_ERR_OUT_OF_MEMORY, tight, "raise max_memory");
            CHECK(pixels_untouched(&o2));
            /* what an ABI caller can change: not the working size (the model's), max_memory, with the figure */
            const char *msg = diff_edit_last_error(tight);
            unsigned long long enough = 0;
            const char *r = strstr(msg, "raise max_memory to at least ");
            CHECK(strstr(msg, "width/height") == NULL);
            CHECK(r != NULL && sscanf(r, "raise max_memory to at least %llu bytes", &enough) == 1 && enough > need + 1024);
        }
        image_free(&i2); image_free(&o2);
        diff_edit_ctx_free(tight);
        diff_edit_model_free(m);
    }
    /* a ControlNet counts too: checked at load against what max_memory leaves beside the weights (issue 21) */
    if (g_controlnet_dir) {
        char a_path[1024];
        snprintf(a_path, sizeof a_path, "%s/cn_a", g_controlnet_dir);
        mp.max_memory = need + 64;
        EXPECT_OK(diff_edit_model_load(&mp, &m), NULL);
        diff_edit_controlnet *net = (diff_edit_controlnet *)&mp;
        if (m) {
            EXPECT_ERR(diff_edit_controlnet_load(m, a_path, &net), DIFF_EDIT_ERR_OUT_OF_MEMORY, NULL, a_path);
            CHECK(net == NULL);
            CHECK(strstr(diff_edit_last_error(NULL), "the ControlNet's weights need about ") != NULL);
            CHECK(strstr(diff_edit_last_error(NULL), "raise max_memory to at least ") != NULL);
            diff_edit_model_free(m);
        }
        mp.max_memory = 256u << 20;
        EXPECT_OK(diff_edit_model_load(&mp, &m), NULL);
        if (m) {
            EXPECT_OK(diff_edit_controlnet_load(m, a_path, &net), NULL);
            diff_edit_controlnet_free(net);
            diff_edit_model_free(m);
        }
    }
    mp.max_memory = 256u << 20;   /* room for the fixture's weights and its requests */
    EXPECT_OK(diff_edit_model_load(&mp, &m), NULL);
    if (!m) return;
    diff_edit_ctx *ctx = NULL;
    EXPECT_OK(diff_edit_ctx_create(m, &ctx), NULL);
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_RGB8), a = image_new(g_w, g_h, DIFF_EDIT_RGB8),
                     b = image_new(g_w, g_h, DIFF_EDIT_RGB8), full = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    image_fill(&in, 9);
    if (ctx) {
        EXPECT_OK(diff_edit_image(ctx, &p, &in, &full), ctx);
        p.strength = 1e-30f;
        EXPECT_OK(diff_edit_image(ctx, &p, &in, &a), ctx);
        p.strength = 0.2f;    /* 0.2 x 4 steps < 1: no step either */
        EXPECT_OK(diff_edit_image(ctx, &p, &in, &b), ctx);
        CHECK(pixels_equal(&a, &b) && !pixels_equal(&a, &full));
        /* seed: seed + 2^32 is the same noise, seed + 1 is not */
        p.strength = 1.0f;
        p.seed = 1234 + ((uint64_t)1 << 32);
        EXPECT_OK(diff_edit_image(ctx, &p, &in, &a), ctx);
        CHECK(pixels_equal(&a, &full));
        p.seed = 1235;
        EXPECT_OK(diff_edit_image(ctx, &p, &in, &b), ctx);
        CHECK(!pixels_equal(&b, &full));
        diff_edit_ctx_free(ctx);
    }
    image_free(&in); image_free(&a); image_free(&b); image_free(&full);
    diff_edit_model_free(m);
}

/* Issue 21: an allocation that fails is DIFF_EDIT_ERR_OUT_OF_MEMORY naming the bytes and the buffer, not an abort,
 * and the context stays usable. The library's allocator has a test limit (DIFFEDIT_TEST_ALLOC_LIMIT, read once):
 * this program runs itself with it at 8 MB (--alloc-limit-child): a 2048x2048 input (12 MB as RGB) fails, a small
 * one on the same context then succeeds. (At 1 MB already the load fails, with OUT_OF_MEMORY naming the tensor.) */
static int alloc_limit_child(void) {
    diff_edit_model *m = load_model();
    diff_edit_ctx *ctx = NULL;
    if (m) EXPECT_OK(diff_edit_ctx_create(m, &ctx), NULL);
    if (ctx) {
        diff_edit_params p;
        base_params(&p);
        diff_edit_buffer bi = image_new(2048, 2048, DIFF_EDIT_GRAY8), bo = image_new(2048, 2048, DIFF_EDIT_GRAY8);
        image_fill(&bi, 5);
        for (int k = 0; k < 2; k++) {
            EXPECT_ERR(diff_edit_image(ctx, &p, &bi, &bo), DIFF_EDIT_ERR_OUT_OF_MEMORY, ctx,
                       "out of memory allocating 12582912 bytes for input as RGB (2048x2048)");
            CHECK(pixels_untouched(&bo));
        }
        diff_edit_buffer si = image_new(g_w, g_h, DIFF_EDIT_GRAY8), so = image_new(g_w, g_h, DIFF_EDIT_GRAY8);
        image_fill(&si, 6);
        EXPECT_OK(diff_edit_image(ctx, &p, &si, &so), ctx);
        CHECK(!pixels_untouched(&so) && padding_intact(&so));
        image_free(&bi); image_free(&bo); image_free(&si); image_free(&so);
        diff_edit_ctx_free(ctx);
    }
    diff_edit_model_free(m);
    printf("test_cabi --alloc-limit-child: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}

extern char **environ;

static void test_alloc_limit(void) {
    /* the environment and arguments are made before fork: the child only execs */
    size_t n = 0;
    while (environ[n]) n++;
    char **envp = calloc(n + 2, sizeof *envp);
    if (!envp) { CHECK(!"calloc"); return; }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) if (strncmp(environ[i], "DIFFEDIT_TEST_ALLOC_LIMIT=", 26) != 0) envp[k++] = environ[i];
    envp[k++] = "DIFFEDIT_TEST_ALLOC_LIMIT=8388608";
    envp[k] = NULL;
    /* argv[0], not /proc/self/exe: under valgrind that is the tool, and the child runs natively */
    char *argv[4] = { (char *)g_self, "--alloc-limit-child", (char *)g_model_path, NULL };
    fflush(stdout); fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        execve(g_self, argv, envp);
        _exit(127);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);   /* not a signal (SIGABRT): the child's checks passed */
    free(envp);
}

/* weights_dtype: the same edit with the weights in f32, the file's fp16 (auto) and q8_0: f32 and auto hold
 * the same values (identical pixels), q8_0 quantizes them (other pixels; on the plain CPU provider); an older
 * struct_size that stops before weights_dtype loads as auto. */
static void weights_dtype_edit(const char *dtype, uint32_t struct_size, diff_edit_buffer *out) {
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.path = g_model_path; mp.backend = "cpu"; mp.n_threads = 2; mp.weights_dtype = dtype;
    if (struct_size) mp.struct_size = struct_size;
    diff_edit_model *m = NULL;
    EXPECT_OK(diff_edit_model_load(&mp, &m), NULL);
    if (!m) return;
    diff_edit_ctx *c = NULL;
    EXPECT_OK(diff_edit_ctx_create(m, &c), NULL);
    diff_edit_model_free(m);
    if (!c) return;
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_GRAY8);
    image_fill(&in, 6);
    diff_edit_params p;
    base_params(&p);
    EXPECT_OK(diff_edit_image(c, &p, &in, out), c);
    diff_edit_ctx_free(c);
    image_free(&in);
}

static void test_weights_dtype(void) {
    diff_edit_buffer f32 = image_new(g_w, g_h, DIFF_EDIT_RGB8), aut = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    diff_edit_buffer q8 = image_new(g_w, g_h, DIFF_EDIT_RGB8), old = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    /* f32 compute (read at model load): the default, auto, takes f16 weights in bf16 terms on AMX CPUs and f32
     * weights in f32, so only f32 compute makes the first two the same numbers */
    const char *compute = getenv("DIFFEDIT_COMPUTE");
    char *saved = compute ? strdup(compute) : NULL;
    setenv("DIFFEDIT_COMPUTE", "f32", 1);
    weights_dtype_edit("f32", 0, &f32);
    weights_dtype_edit("", 0, &aut);
    weights_dtype_edit("q8_0", 0, &q8);
    weights_dtype_edit("q8_0", (uint32_t)offsetof(diff_edit_model_params, weights_dtype), &old);
    if (saved) { setenv("DIFFEDIT_COMPUTE", saved, 1); free(saved); } else unsetenv("DIFFEDIT_COMPUTE");
    CHECK(pixels_equal(&f32, &aut));
    /* the staged CPU provider (like CUDA) takes f32 constants whatever weights_dtype says */
    const char *staged = getenv("DIFFEDIT_CPU_STAGED");
    if (staged && strcmp(staged, "1") == 0) CHECK(pixels_equal(&f32, &q8));
    else CHECK(!pixels_equal(&f32, &q8));
    CHECK(pixels_equal(&old, &aut));
    image_free(&f32); image_free(&aut); image_free(&q8); image_free(&old);
}

/* An InstructPix2Pix checkpoint (8-channel UNet): AUTO picks INSTRUCT; other methods are unsupported. */
static const char *g_instruct_path = NULL;

static void test_instruct_model(void) {
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.path = g_instruct_path;
    mp.backend = "cpu";
    diff_edit_model *m = NULL;
    diff_edit_ctx *c = NULL;
    EXPECT_OK(diff_edit_model_load(&mp, &m), NULL);
    if (!m) return;
    EXPECT_OK(diff_edit_ctx_create(m, &c), NULL);
    diff_edit_model_free(m);
    if (!c) return;
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_BGRA8), out = image_new(g_w, g_h, DIFF_EDIT_BGRA8);
    diff_edit_buffer again = image_new(g_w, g_h, DIFF_EDIT_BGRA8);
    image_fill(&in, 11);
    diff_edit_params p;
    base_params(&p);
    p.method = DIFF_EDIT_METHOD_AUTO;
    p.prompt = "make the square green";
    p.strength = 0.0f;
    EXPECT_OK(diff_edit_image(c, &p, &in, &out), c);
    CHECK(padding_intact(&out) && !pixels_untouched(&out));
    EXPECT_OK(diff_edit_image(c, &p, &in, &again), c);
    CHECK(pixels_equal(&out, &again));
    p.method = DIFF_EDIT_METHOD_INSTRUCT;
    image_reset(&again);
    EXPECT_OK(diff_edit_image(c, &p, &in, &again), c);
    CHECK(pixels_equal(&out, &again));   /* AUTO is INSTRUCT here */
    int alpha_ok = 1;
    for (uint32_t y = 0; y < g_h; y++)
        for (uint32_t x = 0; x < g_w; x++)
            if (((uint8_t *)in.data)[(size_t)y * in.stride + x * 4 + 3] != ((uint8_t *)out.data)[(size_t)y * out.stride + x * 4 + 3])
                alpha_ok = 0;
    CHECK(alpha_ok);
    image_reset(&again);
    p.method = DIFF_EDIT_METHOD_SDEDIT;
    EXPECT_ERR(diff_edit_image(c, &p, &in, &again), DIFF_EDIT_ERR_UNSUPPORTED, c, "method");
    p.method = DIFF_EDIT_METHOD_P2P;
    p.source_prompt = "a red square";
    EXPECT_ERR(diff_edit_image(c, &p, &in, &again), DIFF_EDIT_ERR_UNSUPPORTED, c, "method");
    p.method = DIFF_EDIT_METHOD_INSTRUCT;
    p.image_guidance = NAN;
    EXPECT_ERR(diff_edit_image(c, &p, &in, &again), DIFF_EDIT_ERR_INVALID_ARGUMENT, c, "image_guidance");
    CHECK(pixels_untouched(&again));
    diff_edit_ctx_free(c);
    image_free(&in); image_free(&out); image_free(&again);
}

/* An inpainting checkpoint (9-channel UNet): INPAINT (and AUTO with a mask) repaints the mask, pixels outside
 * it are the input's bytes; bad input; video and streams with one mask for every frame. */
static const char *g_inpaint_path = NULL;

static void test_inpaint_model(diff_edit_ctx *sd_ctx) {
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.path = g_inpaint_path;
    mp.backend = "cpu";
    diff_edit_model *m = NULL;
    diff_edit_ctx *c = NULL;
    EXPECT_OK(diff_edit_model_load(&mp, &m), NULL);
    if (!m) return;
    EXPECT_OK(diff_edit_ctx_create(m, &c), NULL);
    diff_edit_model_free(m);
    if (!c) return;
    const uint32_t w = g_w, h = g_h;
    diff_edit_buffer in = image_new(w, h, DIFF_EDIT_RGBA8), out = image_new(w, h, DIFF_EDIT_RGBA8);
    diff_edit_buffer again = image_new(w, h, DIFF_EDIT_RGBA8), mask = image_new(w, h, DIFF_EDIT_GRAY8);
    diff_edit_buffer small = image_new(w / 2, h, DIFF_EDIT_GRAY8);
    image_fill(&in, 5);
    memset(mask.data, 0, (size_t)mask.stride * h);
    memset(small.data, 255, (size_t)small.stride * h);
    for (uint32_t y = h / 4; y < 3 * h / 4; y++)
        for (uint32_t x = w / 4; x < w / 2 + 3; x++) ((uint8_t *)mask.data)[(size_t)y * mask.stride + x] = 255;
    diff_edit_params p;
    base_params(&p);
    p.method = DIFF_EDIT_METHOD_INPAINT;
    p.prompt = "a blue circle";
    p.strength = 0.0f;
    /* no mask: an error that says a mask is needed, for INPAINT and for AUTO */
    EXPECT_ERR(diff_edit_image(c, &p, &in, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, c, "params->mask");
    CHECK(strstr(diff_edit_last_error(c), "inpaint") != NULL);
    p.method = DIFF_EDIT_METHOD_AUTO;
    EXPECT_ERR(diff_edit_image(c, &p, &in, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, c, "params->mask");
    CHECK(pixels_untouched(&out));
    /* a mask of the wrong size */
    p.mask = &small;
    EXPECT_ERR(diff_edit_image(c, &p, &in, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, c, "mask");
    CHECK(pixels_untouched(&out));
    /* another method on an inpainting checkpoint */
    p.mask = &mask;
    p.method = DIFF_EDIT_METHOD_SDEDIT;
    EXPECT_ERR(diff_edit_image(c, &p, &in, &out), DIFF_EDIT_ERR_UNSUPPORTED, c, "DIFF_EDIT_METHOD_SDEDIT");
    /* INPAINT, then AUTO: the same pixels; outside the mask the input's bytes, inside repainted */
    p.method = DIFF_EDIT_METHOD_INPAINT;
    EXPECT_OK(diff_edit_image(c, &p, &in, &out), c);
    CHECK(padding_intact(&out));
    int outside_same = 1, inside_changed = 0;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            const uint8_t *a = (const uint8_t *)in.data + (size_t)y * in.stride + x * 4;
            const uint8_t *b = (const uint8_t *)out.data + (size_t)y * out.stride + x * 4;
            int same = !memcmp(a, b, 4);
            if (((uint8_t *)mask.data)[(size_t)y * mask.stride + x] == 0) outside_same &= same;
            else inside_changed += !same;
        }
    CHECK(outside_same);
    CHECK(inside_changed > 10);
    p.method = DIFF_EDIT_METHOD_AUTO;
    EXPECT_OK(diff_edit_image(c, &p, &in, &again), c);
    CHECK(pixels_equal(&out, &again));
    /* video (a mask: frame by frame) and a stream (one mask for every frame) */
    diff_edit_buffer frames[2] = { in, in }, fouts[2];
    fouts[0] = image_new(w, h, DIFF_EDIT_RGBA8); fouts[1] = image_new(w, h, DIFF_EDIT_RGBA8);
    p.method = DIFF_EDIT_METHOD_INPAINT;
    EXPECT_OK(diff_edit_video(c, &p, frames, 2, fouts), c);
    CHECK(pixels_equal(&fouts[0], &out) && pixels_equal(&fouts[1], &out));
    EXPECT_OK(diff_edit_stream_begin(c, &p, w, h, DIFF_EDIT_RGBA8), c);
    EXPECT_OK(diff_edit_stream_push(c, &in), c);
    EXPECT_OK(diff_edit_stream_end(c), c);
    image_reset(&again);
    EXPECT_OK(diff_edit_stream_pull(c, &again), c);
    outside_same = 1; inside_changed = 0;
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            int same = !memcmp((const uint8_t *)in.data + (size_t)y * in.stride + x * 4,
                               (const uint8_t *)again.data + (size_t)y * again.stride + x * 4, 4);
            if (((uint8_t *)mask.data)[(size_t)y * mask.stride + x] == 0) outside_same &= same;
            else inside_changed += !same;
        }
    CHECK(outside_same && inside_changed > 10);
    p.mask = &small;
    EXPECT_ERR(diff_edit_stream_begin(c, &p, w, h, DIFF_EDIT_RGBA8), DIFF_EDIT_ERR_INVALID_ARGUMENT, c, "params->mask");
    /* a stream with a mask on a text-to-image model: unsupported */
    if (sd_ctx) {
        p.mask = &mask;
        p.method = DIFF_EDIT_METHOD_SDEDIT;
        EXPECT_ERR(diff_edit_stream_begin(sd_ctx, &p, w, h, DIFF_EDIT_RGBA8), DIFF_EDIT_ERR_UNSUPPORTED, sd_ctx, "mask");
        p.method = DIFF_EDIT_METHOD_INPAINT;
        EXPECT_ERR(diff_edit_image(sd_ctx, &p, &in, &again), DIFF_EDIT_ERR_UNSUPPORTED, sd_ctx, "9 input channels");
    }
    diff_edit_ctx_free(c);
    image_free(&in); image_free(&out); image_free(&again); image_free(&mask); image_free(&small);
    image_free(&fouts[0]); image_free(&fouts[1]);
}

/* ------------------------------------------------------------------------------------------------
 * ControlNet (issue 19): --controlnet DIR = Tests/Fixtures/controlnet (cn_a folder, cn_b single file)
 * ---------------------------------------------------------------------------------------------- */

static void test_controlnet(diff_edit_model *model, diff_edit_ctx *ctx) {
    char a_path[1024], b_path[1024], sd2_path[1024];
    snprintf(a_path, sizeof a_path, "%s/cn_a", g_controlnet_dir);
    snprintf(b_path, sizeof b_path, "%s/cn_b.safetensors", g_controlnet_dir);
    snprintf(sd2_path, sizeof sd2_path, "%s/../sd2", g_controlnet_dir);

    diff_edit_control dc;
    memset(&dc, 0x5A, sizeof dc);
    diff_edit_control_default(&dc);
    CHECK(dc.struct_size == sizeof(diff_edit_control) && dc.net == NULL && dc.preprocessor == NULL &&
          dc.image == NULL && dc.scale == 1.0f && dc.start == 0.0f && dc.end == 1.0f);
    diff_edit_control_default(NULL);
    diff_edit_params pd;
    diff_edit_params_default(&pd);
    CHECK(pd.n_controls == 0 && pd.controls == NULL);

    /* loading: bad arguments, missing file, not a ControlNet, a ControlNet for another base */
    diff_edit_controlnet *a = NULL, *b = NULL, *x = (diff_edit_controlnet *)&dc;
    EXPECT_ERR(diff_edit_controlnet_load(NULL, a_path, &x), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "model");
    CHECK(x == NULL);
    EXPECT_ERR(diff_edit_controlnet_load(model, NULL, &x), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "path");
    EXPECT_ERR(diff_edit_controlnet_load(model, "", &x), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "path");
    EXPECT_ERR(diff_edit_controlnet_load(model, a_path, NULL), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "out");
    EXPECT_ERR(diff_edit_controlnet_load(model, "/nonexistent/cn.safetensors", &x), DIFF_EDIT_ERR_IO, NULL,
               "/nonexistent/cn.safetensors");
    char sd1file[1024];
    snprintf(sd1file, sizeof sd1file, "%s/../sd1.safetensors", g_controlnet_dir);
    EXPECT_ERR(diff_edit_controlnet_load(model, sd1file, &x), DIFF_EDIT_ERR_MODEL, NULL, "not a ControlNet");
    CHECK(x == NULL);
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.path = sd2_path; mp.backend = "cpu"; mp.n_threads = 2;
    diff_edit_model *sd2 = NULL;
    EXPECT_OK(diff_edit_model_load(&mp, &sd2), NULL);
    if (sd2) {
        EXPECT_ERR(diff_edit_controlnet_load(sd2, b_path, &x), DIFF_EDIT_ERR_MODEL, NULL,
                   "control_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight");
        CHECK(x == NULL);
    }
    EXPECT_OK(diff_edit_controlnet_load(model, a_path, &a), NULL);
    EXPECT_OK(diff_edit_controlnet_load(model, b_path, &b), NULL);
    if (!a || !b) { diff_edit_model_free(sd2); return; }

    uint32_t w = g_w, h = g_h;
    diff_edit_buffer in = image_new(w, h, DIFF_EDIT_RGB8), plain = image_new(w, h, DIFF_EDIT_RGB8);
    diff_edit_buffer out = image_new(w, h, DIFF_EDIT_RGB8), zero = image_new(w, h, DIFF_EDIT_RGB8);
    diff_edit_buffer cimg = image_new(w, h, DIFF_EDIT_RGBA8), small = image_new(w / 2, h, DIFF_EDIT_RGB8);
    diff_edit_buffer map = image_new(w, h, DIFF_EDIT_GRAY8), mask = image_new(w, h, DIFF_EDIT_GRAY8);
    image_fill(&in, 3); image_fill(&cimg, 9); image_fill(&small, 2);
    for (uint32_t y = 0; y < h; y++) memset((uint8_t *)mask.data + (size_t)y * mask.stride, y < h / 2 ? 255 : 0, w);
    diff_edit_params p;
    base_params(&p);
    p.strength = 0.8f;
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &plain), ctx);

    diff_edit_control cs[2];
    diff_edit_control_default(&cs[0]);
    diff_edit_control_default(&cs[1]);
    cs[0].net = b; cs[0].preprocessor = "canny"; cs[0].scale = 0.8f;
    cs[1].net = a; cs[1].image = &cimg; cs[1].start = 0.25f;
    p.n_controls = 2; p.controls = cs;
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);
    CHECK(!pixels_equal(&out, &plain));
    /* scale 0 on both: exactly no ControlNet */
    cs[0].scale = 0; cs[1].scale = 0;
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &zero), ctx);
    CHECK(pixels_equal(&zero, &plain));
    cs[0].scale = 0.8f; cs[1].scale = 1;

    /* bad controls: nothing written, the field named */
#define CN_ERR(want, field) do { \
        image_reset(&zero); \
        EXPECT_ERR(diff_edit_image(ctx, &p, &in, &zero), (want), ctx, (field)); \
        CHECK(pixels_untouched(&zero)); \
    } while (0)
    cs[0].preprocessor = "sobel";
    CN_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->controls[0].preprocessor");
    cs[0].preprocessor = "canny";
    cs[1].scale = NAN;
    CN_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->controls[1].scale");
    cs[1].scale = 1; cs[1].start = 0.9f; cs[1].end = 0.5f;
    CN_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->controls[1]");
    cs[1].start = 0; cs[1].end = 1; cs[1].image = &small;
    CN_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->controls[1].image");
    cs[1].image = NULL;
    CN_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->controls[1]");
    cs[1].image = &cimg; cs[1].preprocessor = "tile";
    CN_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "not both");
    cs[1].preprocessor = NULL; cs[1].net = NULL;
    CN_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->controls[1].net");
    cs[1].net = a; cs[0].preprocessor = "inpaint";
    CN_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->controls[0]");
    cs[0].preprocessor = "canny"; cs[1].struct_size = 8;
    CN_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->controls[1].struct_size");
    cs[1].struct_size = sizeof(diff_edit_control);
    p.controls = NULL;
    CN_ERR(DIFF_EDIT_ERR_INVALID_ARGUMENT, "params->controls");
    p.controls = cs;
    /* a net of another model */
    if (sd2) {
        diff_edit_ctx *c2 = NULL;
        EXPECT_OK(diff_edit_ctx_create(sd2, &c2), NULL);
        if (c2) {
            p.n_controls = 1;
            image_reset(&zero);
            EXPECT_ERR(diff_edit_image(c2, &p, &in, &zero), DIFF_EDIT_ERR_INVALID_ARGUMENT, c2, "params->controls[0].net");
            p.n_controls = 2;
            diff_edit_ctx_free(c2);
        }
    }
    /* inpaint with a mask; a video with one canny map per frame */
    cs[0].preprocessor = "inpaint";
    p.mask = &mask;
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);
    p.mask = NULL; cs[0].preprocessor = "canny";
    diff_edit_buffer fin[2] = {in, cimg}, fout[2];
    fout[0] = image_new(w, h, DIFF_EDIT_RGB8); fout[1] = image_new(w, h, DIFF_EDIT_RGB8);
    EXPECT_OK(diff_edit_video(ctx, &p, fin, 2, fout), ctx);
    CHECK(!pixels_untouched(&fout[0]) && !pixels_untouched(&fout[1]));
    image_free(&fout[0]); image_free(&fout[1]);

    /* the maps for hosts */
    EXPECT_OK(diff_edit_control_map("canny", &in, NULL, &map), NULL);
    CHECK(padding_intact(&map));
    EXPECT_OK(diff_edit_control_map("inpaint", &in, &mask, &out), NULL);
    CHECK(((uint8_t *)out.data)[0] == 0 && ((uint8_t *)out.data)[(size_t)(h - 1) * out.stride] ==
          ((uint8_t *)in.data)[(size_t)(h - 1) * in.stride]);
    EXPECT_ERR(diff_edit_control_map("sobel", &in, NULL, &map), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "preprocessor");
    EXPECT_ERR(diff_edit_control_map("inpaint", &in, NULL, &map), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "mask");
    EXPECT_ERR(diff_edit_control_map("tile", &in, NULL, &small), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "output");
    EXPECT_ERR(diff_edit_control_map(NULL, &in, NULL, &map), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "preprocessor");

    diff_edit_controlnet_free(a);
    diff_edit_controlnet_free(b);
    diff_edit_controlnet_free(NULL);
    diff_edit_model_free(sd2);
    image_free(&in); image_free(&plain); image_free(&out); image_free(&zero); image_free(&cimg);
    image_free(&small); image_free(&map); image_free(&mask);
}

/* Runs one test function and reports it on stderr (unbuffered, so slow valgrind runs show progress). */
#define SECTION(call) do { \
        int before_ = g_failures; \
        call; \
        fprintf(stderr, "test_cabi: %-48s %s\n", #call, g_failures == before_ ? "ok" : "FAILED"); \
    } while (0)

/* ------------------------------------------------------------------------------------------------
 * LoRA (diff_edit_model_set_loras) with the fixtures of Tests/Fixtures/lora (--lora DIR)
 * ---------------------------------------------------------------------------------------------- */

static const char *g_lora_dir = NULL;

static const char *lora_file(const char *name) {
    static char buf[4][1024];
    static int next = 0;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "%s/%s", g_lora_dir, name);
    return b;
}

static diff_edit_status set_one_lora(diff_edit_model *m, const char *path, float scale) {
    diff_edit_lora l;
    diff_edit_lora_default(&l);
    l.path = path;
    l.scale = scale;
    return diff_edit_model_set_loras(m, &l, 1);
}

typedef struct {
    diff_edit_model *model;
    diff_edit_status from_callback;
    int called;
} lora_cb_state;

/* From inside a progress callback of a running call on the model: BUSY. */
static bool lora_progress(void *user, uint32_t step, uint32_t steps, uint32_t frame, uint32_t frames) {
    (void)step; (void)steps; (void)frame; (void)frames;
    lora_cb_state *s = (lora_cb_state *)user;
    if (!s->called) s->from_callback = diff_edit_model_set_loras(s->model, NULL, 0);
    s->called = 1;
    return true;
}

static void test_loras(diff_edit_model *model, diff_edit_ctx *ctx) {
    diff_edit_buffer in = image_new(g_w, g_h, DIFF_EDIT_RGB8), base = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    diff_edit_buffer out = image_new(g_w, g_h, DIFF_EDIT_RGB8), fused = image_new(g_w, g_h, DIFF_EDIT_RGB8);
    image_fill(&in, 31);
    diff_edit_params p;
    base_params(&p);
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &base), ctx);

    diff_edit_lora d;
    memset(&d, 0xCC, sizeof d);
    diff_edit_lora_default(&d);
    CHECK(d.struct_size == sizeof(diff_edit_lora) && d.path == NULL && d.scale == 1.0f);
    diff_edit_lora_default(NULL);

    /* Bad input: the status, a message naming the field / file / key / tensor, and the model unchanged. */
    char kohya[1024];
    snprintf(kohya, sizeof kohya, "%s", lora_file("kohya.safetensors"));
    diff_edit_lora l;
    diff_edit_lora_default(&l);
    l.path = kohya;
    l.scale = 0.7f;
    EXPECT_ERR(diff_edit_model_set_loras(NULL, &l, 1), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "model");
    EXPECT_ERR(diff_edit_model_set_loras(model, NULL, 1), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "loras");
    diff_edit_lora bad = l;
    bad.struct_size = 0;
    EXPECT_ERR(diff_edit_model_set_loras(model, &bad, 1), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "struct_size");
    bad = l; bad.path = NULL;
    EXPECT_ERR(diff_edit_model_set_loras(model, &bad, 1), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "loras[0].path");
    bad = l; bad.scale = NAN;
    EXPECT_ERR(diff_edit_model_set_loras(model, &bad, 1), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "loras[0].scale");
    bad = l; bad.scale = INFINITY;
    EXPECT_ERR(diff_edit_model_set_loras(model, &bad, 1), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "loras[0].scale");
    {
        diff_edit_lora two[2] = {l, l};
        two[1].scale = -INFINITY;
        EXPECT_ERR(diff_edit_model_set_loras(model, two, 2), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "loras[1].scale");
        struct { diff_edit_lora l; uint64_t newer; } big;
        memset(&big, 0, sizeof big);
        big.l = l;
        big.l.struct_size = (uint32_t)sizeof big;
        big.newer = 1;
        EXPECT_ERR(diff_edit_model_set_loras(model, &big.l, 1), DIFF_EDIT_ERR_UNSUPPORTED, NULL, "struct_size");
        big.newer = 0;   /* a zero unknown tail is accepted */
        EXPECT_OK(diff_edit_model_set_loras(model, &big.l, 1), NULL);
        EXPECT_OK(diff_edit_model_set_loras(model, NULL, 0), NULL);
    }
    EXPECT_ERR(set_one_lora(model, lora_file("no_such_lora.safetensors"), 1), DIFF_EDIT_ERR_IO, NULL, "no_such_lora.safetensors");
    EXPECT_ERR(set_one_lora(model, lora_file("unknown_key.safetensors"), 1), DIFF_EDIT_ERR_MODEL, NULL,
               "lora_unet_down_blocks_7_attentions_0_proj_in");
    EXPECT_ERR(set_one_lora(model, lora_file("sd2_arch.safetensors"), 1), DIFF_EDIT_ERR_MODEL, NULL,
               "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight");
    EXPECT_ERR(set_one_lora(model, lora_file("loha.safetensors"), 1), DIFF_EDIT_ERR_UNSUPPORTED, NULL, "hada_w1_a");
    /* still usable, still the base model */
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);
    CHECK(pixels_equal(&out, &base));

    /* Fused: another image; a failed change keeps it. */
    EXPECT_OK(set_one_lora(model, kohya, 0.7f), NULL);
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &fused), ctx);
    CHECK(!pixels_equal(&fused, &base));
    EXPECT_ERR(set_one_lora(model, lora_file("sd2_arch.safetensors"), 0.7f), DIFF_EDIT_ERR_MODEL, NULL, "lora_A.weight");
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);
    CHECK(pixels_equal(&out, &fused));
    /* Another scale, then back: the same bytes; a second context of the model sees the LoRA too. */
    EXPECT_OK(set_one_lora(model, kohya, 0.2f), NULL);
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);
    CHECK(!pixels_equal(&out, &fused));
    EXPECT_OK(set_one_lora(model, kohya, 0.7f), NULL);
    {
        diff_edit_ctx *ctx2 = NULL;
        EXPECT_OK(diff_edit_ctx_create(model, &ctx2), NULL);
        if (ctx2) {
            image_reset(&out);
            EXPECT_OK(diff_edit_image(ctx2, &p, &in, &out), ctx2);
            CHECK(pixels_equal(&out, &fused));
            diff_edit_ctx_free(ctx2);
        }
    }

    /* BUSY from inside a running call's progress callback; the call itself completes. */
    lora_cb_state cs = {model, DIFF_EDIT_OK, 0};
    diff_edit_params pc = p;
    pc.progress = lora_progress;
    pc.progress_user = &cs;
    EXPECT_OK(diff_edit_image(ctx, &pc, &in, &out), ctx);
    CHECK(cs.called && cs.from_callback == DIFF_EDIT_ERR_BUSY);
    CHECK(strstr(diff_edit_last_error(NULL), "in use") != NULL);
    CHECK(pixels_equal(&out, &fused));

    /* Video and streams use the fused weights; BUSY while a stream is open. */
    {
        enum { N = 2 };
        diff_edit_buffer vin[N], vlora[N], vbase[N];
        for (int i = 0; i < N; i++) {
            vin[i] = image_new(g_w, g_h, DIFF_EDIT_RGB8); image_fill(&vin[i], 40 + (uint32_t)i);
            vlora[i] = image_new(g_w, g_h, DIFF_EDIT_RGB8); vbase[i] = image_new(g_w, g_h, DIFF_EDIT_RGB8);
        }
        EXPECT_OK(diff_edit_video(ctx, &p, vin, N, vlora), ctx);
        EXPECT_OK(diff_edit_stream_begin(ctx, &p, g_w, g_h, DIFF_EDIT_RGB8), ctx);
        EXPECT_ERR(diff_edit_model_set_loras(model, NULL, 0), DIFF_EDIT_ERR_BUSY, NULL, "stream");
        for (int i = 0; i < N; i++) EXPECT_OK(diff_edit_stream_push(ctx, &vin[i]), ctx);
        EXPECT_OK(diff_edit_stream_end(ctx), ctx);
        for (int i = 0; i < N; i++) {
            image_reset(&out);
            EXPECT_OK(diff_edit_stream_pull(ctx, &out), ctx);
            CHECK(pixels_equal(&out, &vlora[i]));
        }
        CHECK(diff_edit_stream_pull(ctx, &out) == DIFF_EDIT_ERR_INVALID_ARGUMENT);   /* drained: closed */
        EXPECT_OK(diff_edit_model_set_loras(model, NULL, 0), NULL);
        EXPECT_OK(diff_edit_video(ctx, &p, vin, N, vbase), ctx);
        for (int i = 0; i < N; i++) {
            CHECK(!pixels_equal(&vbase[i], &vlora[i]));
            image_free(&vin[i]); image_free(&vlora[i]); image_free(&vbase[i]);
        }
    }
    /* Removed: exactly the base model's bytes again. */
    EXPECT_OK(diff_edit_image(ctx, &p, &in, &out), ctx);
    CHECK(pixels_equal(&out, &base));
    image_free(&in); image_free(&base); image_free(&out); image_free(&fused);
}

int main(int argc, char **argv) {
    int no_model = 0, alloc_child = 0;
    g_self = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--valgrind") == 0) g_valgrind = 1;
        else if (strcmp(argv[i], "--alloc-limit-child") == 0) alloc_child = 1;
        else if (strcmp(argv[i], "--no-model") == 0) no_model = 1;
        else if (strcmp(argv[i], "--instruct") == 0 && i + 1 < argc) g_instruct_path = argv[++i];
        else if (strcmp(argv[i], "--inpaint") == 0 && i + 1 < argc) g_inpaint_path = argv[++i];
        else if (strcmp(argv[i], "--lora") == 0 && i + 1 < argc) g_lora_dir = argv[++i];
        else if (strcmp(argv[i], "--controlnet") == 0 && i + 1 < argc) g_controlnet_dir = argv[++i];
        else g_model_path = argv[i];
    }
    if (g_valgrind) { g_w = 24; g_h = 16; }
    if (alloc_child) return alloc_limit_child();

    SECTION(test_versions_and_strings());
    SECTION(test_defaults());
    SECTION(test_model_load_errors());
    SECTION(test_null_handles());
    if (!no_model) SECTION(test_default_model());
    if (!no_model && g_model_path) SECTION(test_cuda_backend());
    SECTION(test_thread_local_errors());
    printf("test_cabi: model-free tests: %d checks, %d failures\n", g_checks, g_failures);

    if (!no_model) {
        diff_edit_model *model = load_model();
        if (model) {
            CHECK(g_log_calls >= 1);
            diff_edit_ctx *ctx = NULL;
            CHECK(diff_edit_ctx_create(model, NULL) == DIFF_EDIT_ERR_INVALID_ARGUMENT);
            EXPECT_OK(diff_edit_ctx_create(model, &ctx), NULL);
            if (ctx) {
                CHECK(diff_edit_last_error(ctx) != NULL && diff_edit_last_error(ctx)[0] == '\0');
                SECTION(test_image_errors(ctx));
                SECTION(test_video_errors(ctx));
                SECTION(test_image_success(ctx));
                SECTION(test_cancel_from_callback(ctx));
                SECTION(test_cancel_from_thread_and_busy(ctx));
                SECTION(test_two_contexts(model, ctx));
                SECTION(test_video_success(ctx));
                if (g_lora_dir) SECTION(test_loras(model, ctx));
                else printf("test_cabi: no --lora fixtures: LoRA tests not run\n");
                if (g_controlnet_dir) SECTION(test_controlnet(model, ctx));
                else printf("test_cabi: no --controlnet fixtures: ControlNet tests not run\n");
                if (g_inpaint_path) SECTION(test_inpaint_model(ctx));
                else printf("test_cabi: no --inpaint model: inpaint tests not run\n");
                SECTION(test_provenance(model));
                diff_edit_ctx_free(ctx);
            }
            diff_edit_model_free(model);
            SECTION(test_model_outlives_handle());
            SECTION(test_weights_dtype());
            SECTION(test_memory_strength_seed());
            SECTION(test_alloc_limit());
            if (g_instruct_path) SECTION(test_instruct_model());
            else printf("test_cabi: no --instruct model: instruct tests not run\n");
        }
    } else {
        printf("test_cabi: --no-model: success-path tests not run\n");
    }
    printf("test_cabi: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
