/*
 * C tests of the streaming video API (diff_edit_stream_*) and of diff_edit_video's consistent method,
 * compiled with `cc -std=c99 -Wall -Wextra -Werror` against the INSTALLED header (make test-cabi).
 *
 * Usage: test_stream [--valgrind] MODEL_PATH
 * Exit status 0 when every check passed.
 */
#define _POSIX_C_SOURCE 200809L
#include <diffedit.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_checks = 0, g_failures = 0;

#define CHECK(cond) check_impl((cond), #cond, __FILE__, __LINE__)
static void check_impl(int ok, const char *what, const char *file, int line) {
    g_checks++;
    if (!ok) { g_failures++; fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what); }
}

/* status == want and the context's and thread's last error name `field` (want OK: no message check). */
#define EXPECT(st, want, ctx, field) expect_impl((st), (want), (ctx), (field), __FILE__, __LINE__)
static void expect_impl(diff_edit_status st, diff_edit_status want, const diff_edit_ctx *ctx, const char *field,
                        const char *file, int line) {
    g_checks++;
    const char *tmsg = diff_edit_last_error(NULL), *cmsg = ctx ? diff_edit_last_error(ctx) : tmsg;
    int ok = st == want;
    if (ok && field) ok = strstr(tmsg, field) != NULL && strstr(cmsg, field) != NULL;
    if (!ok) {
        g_failures++;
        fprintf(stderr, "FAIL %s:%d: status %d (%s), want %d (%s); message \"%s\" should name \"%s\"\n", file, line,
                (int)st, diff_edit_status_string(st), (int)want, diff_edit_status_string(want), cmsg,
                field ? field : "");
    }
}

enum { W = 48, H = 40, PAD = 5, CANARY = 0xA5, N = 6, STEPS = 3 };

static diff_edit_buffer frame_new(void) {
    diff_edit_buffer b;
    b.width = W; b.height = H; b.format = DIFF_EDIT_RGBA8; b.stride = W * 4 + PAD;
    b.data = malloc((size_t)b.stride * H);
    memset(b.data, CANARY, (size_t)b.stride * H);
    return b;
}

/* Frame t: a static two-tone background with a red square moving right; alpha varies per pixel. */
static void frame_draw(diff_edit_buffer *b, int t) {
    for (uint32_t y = 0; y < H; y++) {
        uint8_t *row = (uint8_t *)b->data + (size_t)y * b->stride;
        for (uint32_t x = 0; x < W; x++) {
            uint8_t *p = row + 4 * x;
            int in = (int)x >= 6 + 3 * t && (int)x < 18 + 3 * t && y >= 10 && y < 22;
            p[0] = in ? 220 : (uint8_t)(y < H / 2 ? 240 : 60);
            p[1] = in ? 30 : (uint8_t)(y < H / 2 ? 240 : 90);
            p[2] = in ? 40 : (uint8_t)(y < H / 2 ? 230 : 200);
            p[3] = (uint8_t)(x * 5 + y);
        }
    }
}

static int padding_intact(const diff_edit_buffer *b) {
    for (uint32_t y = 0; y < H; y++) {
        const uint8_t *row = (const uint8_t *)b->data + (size_t)y * b->stride;
        for (uint32_t k = W * 4; k < b->stride; k++) if (row[k] != CANARY) return 0;
    }
    return 1;
}

static int alpha_kept(const diff_edit_buffer *b) {
    for (uint32_t y = 0; y < H; y++) {
        const uint8_t *row = (const uint8_t *)b->data + (size_t)y * b->stride;
        for (uint32_t x = 0; x < W; x++) if (row[4 * x + 3] != (uint8_t)(x * 5 + y)) return 0;
    }
    return 1;
}

static int max_diff(const diff_edit_buffer *a, const diff_edit_buffer *b) {
    int m = 0;
    for (uint32_t y = 0; y < H; y++) {
        const uint8_t *ra = (const uint8_t *)a->data + (size_t)y * a->stride;
        const uint8_t *rb = (const uint8_t *)b->data + (size_t)y * b->stride;
        for (uint32_t k = 0; k < W * 4; k++) { int d = abs((int)ra[k] - (int)rb[k]); if (d > m) m = d; }
    }
    return m;
}

static void params(diff_edit_params *p) {
    diff_edit_params_default(p);
    p->method = DIFF_EDIT_METHOD_SDEDIT;
    p->prompt = "a blue square on a white background";
    p->steps = STEPS;
    p->strength = 0.8f;
    p->seed = 99;
}

typedef struct { int calls, cancel_at; uint32_t max_frame; } progress_rec;
static bool progress_cb(void *user, uint32_t step, uint32_t steps, uint32_t frame, uint32_t frames) {
    progress_rec *r = user;
    (void)step; (void)steps; (void)frames;
    r->calls++;
    if (frame > r->max_frame) r->max_frame = frame;
    return !(r->cancel_at > 0 && r->calls >= r->cancel_at);
}

static void test_errors_without_stream(diff_edit_ctx *ctx) {
    diff_edit_params p;
    params(&p);
    diff_edit_buffer f = frame_new();
    frame_draw(&f, 0);
    EXPECT(diff_edit_stream_begin(NULL, &p, W, H, DIFF_EDIT_RGBA8), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "ctx");
    EXPECT(diff_edit_stream_push(ctx, &f), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "diff_edit_stream_begin");
    EXPECT(diff_edit_stream_pull(ctx, &f), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "diff_edit_stream_begin");
    EXPECT(diff_edit_stream_end(ctx), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "diff_edit_stream_begin");
    EXPECT(diff_edit_stream_begin(ctx, NULL, W, H, DIFF_EDIT_RGBA8), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "params");
    EXPECT(diff_edit_stream_begin(ctx, &p, 0, H, DIFF_EDIT_RGBA8), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "width");
    EXPECT(diff_edit_stream_begin(ctx, &p, W, H, DIFF_EDIT_GRAY8), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "format");
    EXPECT(diff_edit_stream_begin(ctx, &p, W, H, (diff_edit_pixel_format)77), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "format");
    EXPECT(diff_edit_stream_set_lookahead(ctx, 16), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "lookahead");
    EXPECT(diff_edit_stream_set_lookahead(NULL, 1), DIFF_EDIT_ERR_INVALID_ARGUMENT, NULL, "ctx");
    p.strength = 2.0f;
    EXPECT(diff_edit_stream_begin(ctx, &p, W, H, DIFF_EDIT_RGBA8), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "strength");
    params(&p);
    uint8_t gray[W * H];
    memset(gray, 255, sizeof gray);
    diff_edit_buffer mask = { W, H, W, DIFF_EDIT_GRAY8, gray };
    p.mask = &mask;
    EXPECT(diff_edit_stream_begin(ctx, &p, W, H, DIFF_EDIT_RGBA8), DIFF_EDIT_ERR_UNSUPPORTED, ctx, "mask");
    CHECK(strcmp(diff_edit_status_string(DIFF_EDIT_AGAIN), "again") == 0);
    free(f.data);
}

/* Stream N frames with the default lookahead; compare with diff_edit_video on the same frames. */
static void test_stream_vs_video(diff_edit_ctx *ctx) {
    diff_edit_params p;
    params(&p);
    diff_edit_buffer in[N], streamed[N], batch[N], bad = frame_new();
    for (int i = 0; i < N; i++) {
        in[i] = frame_new(); frame_draw(&in[i], i);
        streamed[i] = frame_new(); batch[i] = frame_new();
    }
    EXPECT(diff_edit_stream_begin(ctx, &p, W, H, DIFF_EDIT_RGBA8), DIFF_EDIT_OK, ctx, NULL);
    EXPECT(diff_edit_stream_begin(ctx, &p, W, H, DIFF_EDIT_RGBA8), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "already open");
    EXPECT(diff_edit_stream_pull(ctx, &streamed[0]), DIFF_EDIT_AGAIN, ctx, NULL);   /* pull before push */
    int pulled = 0;
    for (int i = 0; i < N; i++) {
        EXPECT(diff_edit_stream_push(ctx, &in[i]), DIFF_EDIT_OK, ctx, NULL);
        diff_edit_status st;
        while (pulled < N && (st = diff_edit_stream_pull(ctx, &streamed[pulled])) == DIFF_EDIT_OK) pulled++;
        CHECK(pulled >= i + 1 - 3);   /* default lookahead: 3 frames */
        if (i == 2) CHECK(pulled == 0);
        if (i == 3) CHECK(pulled == 4);
    }
    /* a frame of another size or format */
    bad.width = W - 2;
    EXPECT(diff_edit_stream_push(ctx, &bad), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "frame size");
    bad.width = W; bad.format = DIFF_EDIT_BGRA8;
    EXPECT(diff_edit_stream_push(ctx, &bad), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "format");
    EXPECT(diff_edit_stream_end(ctx), DIFF_EDIT_OK, ctx, NULL);
    EXPECT(diff_edit_stream_push(ctx, &in[0]), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "after diff_edit_stream_end");
    while (pulled < N && diff_edit_stream_pull(ctx, &streamed[pulled]) == DIFF_EDIT_OK) pulled++;
    CHECK(pulled == N);
    EXPECT(diff_edit_stream_pull(ctx, &streamed[0]), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "ended");
    for (int i = 0; i < N; i++) {
        CHECK(padding_intact(&streamed[i]));
        CHECK(alpha_kept(&streamed[i]));
        CHECK(max_diff(&streamed[i], &in[i]) > 0);   /* edited */
    }
    /* diff_edit_video: the same consistent method and windows */
    EXPECT(diff_edit_video(ctx, &p, in, N, batch), DIFF_EDIT_OK, ctx, NULL);
    int worst = 0;
    for (int i = 0; i < N; i++) {
        int d = max_diff(&batch[i], &streamed[i]);
        if (d > worst) worst = d;
        CHECK(padding_intact(&batch[i]) && alpha_kept(&batch[i]));
    }
    printf("test_stream: stream vs diff_edit_video: max difference %d\n", worst);
    CHECK(worst <= 1);
    for (int i = 0; i < N; i++) { free(in[i].data); free(streamed[i].data); free(batch[i].data); }
    free(bad.data);
}

/* Lookahead 0: every frame comes out at once. Cancel from the callback breaks the stream; the context stays usable. */
static void test_lookahead_zero_and_cancel(diff_edit_ctx *ctx) {
    diff_edit_params p;
    params(&p);
    diff_edit_buffer in = frame_new(), out = frame_new();
    frame_draw(&in, 0);
    EXPECT(diff_edit_stream_set_lookahead(ctx, 0), DIFF_EDIT_OK, ctx, NULL);
    progress_rec rec = { 0, 0, 0 };
    p.progress = progress_cb;
    p.progress_user = &rec;
    EXPECT(diff_edit_stream_begin(ctx, &p, W, H, DIFF_EDIT_RGBA8), DIFF_EDIT_OK, ctx, NULL);
    for (int i = 0; i < 3; i++) {
        frame_draw(&in, i);
        EXPECT(diff_edit_stream_push(ctx, &in), DIFF_EDIT_OK, ctx, NULL);
        EXPECT(diff_edit_stream_pull(ctx, &out), DIFF_EDIT_OK, ctx, NULL);
        EXPECT(diff_edit_stream_pull(ctx, &out), DIFF_EDIT_AGAIN, ctx, NULL);
    }
    CHECK(rec.calls > 0 && rec.max_frame == 2);
    rec.cancel_at = rec.calls + 1;
    EXPECT(diff_edit_stream_push(ctx, &in), DIFF_EDIT_CANCELLED, ctx, "cancel");
    EXPECT(diff_edit_stream_push(ctx, &in), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "begin a new one");
    EXPECT(diff_edit_stream_end(ctx), DIFF_EDIT_OK, ctx, NULL);
    rec.cancel_at = 0;
    EXPECT(diff_edit_stream_begin(ctx, &p, W, H, DIFF_EDIT_RGBA8), DIFF_EDIT_OK, ctx, NULL);
    EXPECT(diff_edit_stream_push(ctx, &in), DIFF_EDIT_OK, ctx, NULL);
    EXPECT(diff_edit_stream_end(ctx), DIFF_EDIT_OK, ctx, NULL);
    EXPECT(diff_edit_stream_pull(ctx, &out), DIFF_EDIT_OK, ctx, NULL);
    EXPECT(diff_edit_stream_pull(ctx, &out), DIFF_EDIT_ERR_INVALID_ARGUMENT, ctx, "ended");
    EXPECT(diff_edit_stream_set_lookahead(ctx, 3), DIFF_EDIT_OK, ctx, NULL);
    free(in.data); free(out.data);
}

int main(int argc, char **argv) {
    const char *model_path = NULL;
    for (int i = 1; i < argc; i++) if (strcmp(argv[i], "--valgrind") != 0) model_path = argv[i];
    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.path = model_path;
    mp.backend = "cpu";
    diff_edit_model *model = NULL;
    diff_edit_ctx *ctx = NULL;
    if (diff_edit_model_load(&mp, &model) != DIFF_EDIT_OK || diff_edit_ctx_create(model, &ctx) != DIFF_EDIT_OK) {
        fprintf(stderr, "FAIL: cannot load model %s: %s\n", model_path ? model_path : "(default)", diff_edit_last_error(NULL));
        diff_edit_model_free(model);
        return 1;
    }
    test_errors_without_stream(ctx);
    test_stream_vs_video(ctx);
    test_lookahead_zero_and_cancel(ctx);
    diff_edit_ctx_free(ctx);
    diff_edit_model_free(model);
    printf("test_stream: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
