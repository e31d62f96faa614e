/* de_image.h — PNG / JPEG file reading and writing for diffedit (libpng simplified API, libjpeg).
 * libjpeg reports errors by longjmp, which Swift cannot catch; these wrappers turn every failure into
 * a non-zero return with a message in `err` (always NUL-terminated) and never exit or abort. */
#ifndef DE_IMAGE_H
#define DE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest image accepted when reading (width * height). */
#define DE_IMAGE_MAX_PIXELS ((int64_t)1 << 28)

/* Reads a PNG or JPEG (detected from the first bytes, not the name). 8-bit output, row-major, no
 * padding. *channels is 1 (gray), 3 (RGB) or 4 (RGBA; any file with alpha or tRNS, gray+alpha
 * expanded to RGBA). Palette images are expanded; 16-bit samples keep their high byte; no gamma or
 * colour-profile transforms (as PIL reads files). An EXIF Orientation (JPEG APP1, PNG eXIf) is applied
 * as PIL's ImageOps.exif_transpose does, so width/height may be swapped.
 * *pixels is malloc'ed: free with de_image_free.
 * Returns 0 on success, -1 with a message on failure. */
int de_image_read(const char *path, uint8_t **pixels, int *width, int *height, int *channels,
                  char *err, size_t err_len);

void de_image_free(uint8_t *pixels);

/* Writes 8-bit pixels (channels 1, 3 or 4), rows of width*channels bytes. Returns 0 or -1. */
int de_image_write_png(const char *path, const uint8_t *pixels, int width, int height, int channels,
                       char *err, size_t err_len);

/* channels 1 or 3; quality 1..100. Returns 0 or -1. */
int de_image_write_jpeg(const char *path, const uint8_t *pixels, int width, int height, int channels,
                        int quality, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* DE_IMAGE_H */
