/* libFuzzer harness (C, ASan + UBSan): the input is an image file for de_image_read, the PNG/JPEG
 * decoder of the CLI and the Swift API (CSources/CImageCodec). Written to an unlinked scratch file read
 * through /proc/self/fd/N. A decoded image must have the size and channel count it reports; every byte
 * of it is read so that ASan sees a short buffer. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "de_image.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd < 0) {
        char tmpl[] = "/tmp/diffedit-fuzz-image-XXXXXX";
        fd = mkstemp(tmpl);
        if (fd < 0) abort();
        unlink(tmpl);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size)) abort();
    uint8_t *pixels = NULL;
    int w = 0, h = 0, c = 0;
    char err[256];
    int rc = de_image_read(path, &pixels, &w, &h, &c, err, sizeof err);
    if (rc == 0) {
        if (!pixels || w <= 0 || h <= 0 || w > DE_IMAGE_MAX_DIMENSION || h > DE_IMAGE_MAX_DIMENSION ||
            (int64_t)w * h > DE_IMAGE_MAX_PIXELS || !(c == 1 || c == 3 || c == 4)) abort();
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)w * h * c; i++) sum += pixels[i];
        if (sum == 0xFFFFFFFFu) fprintf(stderr, "%u\n", sum);
        de_image_free(pixels);
    } else {
        if (pixels) abort();
        if (rc != DE_IMAGE_ERR && rc != DE_IMAGE_ERR_DIMENSION && rc != DE_IMAGE_ERR_TOO_LARGE) abort();
        if (err[0] == 0) abort();   /* every failure has a message */
    }
    return 0;
}
