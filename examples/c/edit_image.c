/*
 * edit_image — edit a PNG with a text prompt through libdiffedit's C ABI.
 *
 *   edit_image IN.png OUT.png "PROMPT" [MODEL] [--source "SOURCE PROMPT"] [--steps N] [--seed S]
 *              [--strength F] [--method auto|sdedit|ddim|p2p|instruct]
 *
 * MODEL is a diffusers folder or .safetensors file; without it the default model installed with the
 * library is used. Build: make examples (against the installed header and pkg-config file), or
 *   cc -std=c99 edit_image.c $(pkg-config --cflags --libs diffedit libpng) -o edit_image
 */
#include <diffedit.h>

#include <png.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads any PNG as 8-bit RGBA (libpng's simplified API). Returns NULL with a message on failure. */
static uint8_t *read_png(const char *path, uint32_t *w, uint32_t *h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) {
        fprintf(stderr, "edit_image: cannot read %s: %s\n", path, img.message);
        return NULL;
    }
    img.format = PNG_FORMAT_RGBA;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
    if (!px || !png_image_finish_read(&img, NULL, px, 0, NULL)) {
        fprintf(stderr, "edit_image: cannot decode %s: %s\n", path, img.message);
        free(px);
        png_image_free(&img);
        return NULL;
    }
    *w = img.width;
    *h = img.height;
    return px;
}

static bool write_png(const char *path, const uint8_t *px, uint32_t w, uint32_t h) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = w;
    img.height = h;
    img.format = PNG_FORMAT_RGBA;
    if (!png_image_write_to_file(&img, path, 0, px, 0, NULL)) {
        fprintf(stderr, "edit_image: cannot write %s: %s\n", path, img.message);
        return false;
    }
    return true;
}

/* Prints the progress on one line; returning true keeps going. */
static bool on_progress(void *user, uint32_t step, uint32_t steps, uint32_t frame, uint32_t frames) {
    (void)user; (void)frame; (void)frames;
    fprintf(stderr, "\rstep %u/%u", step, steps);
    if (step == steps) fputc('\n', stderr);
    return true;
}

static void on_log(void *user, int level, const char *message) {
    (void)user;
    fprintf(stderr, "[%s] %s\n", level >= DIFF_EDIT_LOG_WARN ? "warn" : "info", message);
}

static int usage(void) {
    fprintf(stderr, "usage: edit_image IN.png OUT.png \"PROMPT\" [MODEL] [--source TEXT] [--steps N] [--seed S]\n"
                    "                  [--strength F] [--method auto|sdedit|ddim|p2p|instruct]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 4) return usage();
    const char *in_path = argv[1], *out_path = argv[2], *prompt = argv[3], *model_path = NULL;

    if (diff_edit_abi_version() != DIFF_EDIT_ABI_VERSION) {
        fprintf(stderr, "edit_image: library ABI %u, header ABI %d\n", diff_edit_abi_version(), DIFF_EDIT_ABI_VERSION);
        return 1;
    }

    diff_edit_params params;
    diff_edit_params_default(&params);
    params.prompt = prompt;
    params.progress = on_progress;
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--source") == 0 && v) { params.source_prompt = v; i++; }
        else if (strcmp(a, "--steps") == 0 && v) { params.steps = (uint32_t)strtoul(v, NULL, 10); i++; }
        else if (strcmp(a, "--seed") == 0 && v) { params.seed = strtoull(v, NULL, 10); i++; }
        else if (strcmp(a, "--strength") == 0 && v) { params.strength = strtof(v, NULL); i++; }
        else if (strcmp(a, "--method") == 0 && v) {
            static const char *names[] = {"auto", "sdedit", "ddim", "p2p", "instruct"};
            int found = -1;
            for (int k = 0; k < 5; k++) if (strcmp(v, names[k]) == 0) found = k;
            if (found < 0) return usage();
            params.method = (diff_edit_method)found;
            i++;
        } else if (a[0] != '-' && !model_path) model_path = a;
        else return usage();
    }

    uint32_t w = 0, h = 0;
    uint8_t *pixels = read_png(in_path, &w, &h);
    if (!pixels) return 1;

    diff_edit_model_params mp;
    diff_edit_model_params_default(&mp);
    mp.path = model_path;
    mp.log = on_log;
    diff_edit_model *model = NULL;
    diff_edit_status st = diff_edit_model_load(&mp, &model);
    if (st != DIFF_EDIT_OK) {
        fprintf(stderr, "edit_image: cannot load the model: %s: %s\n", diff_edit_status_string(st),
                diff_edit_last_error(NULL));
        free(pixels);
        return 1;
    }
    diff_edit_ctx *ctx = NULL;
    st = diff_edit_ctx_create(model, &ctx);
    if (st != DIFF_EDIT_OK) {
        fprintf(stderr, "edit_image: %s: %s\n", diff_edit_status_string(st), diff_edit_last_error(NULL));
        diff_edit_model_free(model);
        free(pixels);
        return 1;
    }

    /* Edit in place: output is the input buffer (the library reads it fully first); alpha is kept. */
    diff_edit_buffer buf = {w, h, w * 4, DIFF_EDIT_RGBA8, pixels};
    st = diff_edit_image(ctx, &params, &buf, &buf);
    int rc = 0;
    if (st != DIFF_EDIT_OK) {
        fprintf(stderr, "edit_image: edit failed: %s: %s\n", diff_edit_status_string(st), diff_edit_last_error(ctx));
        rc = 1;
    } else if (!write_png(out_path, pixels, w, h)) {
        rc = 1;
    } else {
        fprintf(stderr, "edit_image: wrote %s (%ux%u)\n", out_path, w, h);
    }
    diff_edit_ctx_free(ctx);
    diff_edit_model_free(model);
    free(pixels);
    return rc;
}
