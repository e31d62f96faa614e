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

/* Limits checked from the file's header before any pixel memory is allocated, so that a small file
 * claiming a huge size (a "decompression bomb": a 16000x16000 PNG of zeros is under 1 MB) is refused in
 * O(1) memory:
 * - each side at most DE_IMAGE_MAX_DIMENSION (16384, the C ABI's DIFF_EDIT_MAX_DIMENSION);
 * - width * height at most DE_IMAGE_MAX_PIXELS, 64 Mpixel (e.g. 8192x8192): the pipeline holds an
 *   image as RGB f32 (12 bytes a pixel, 768 MB at the budget) plus the decoded bytes and copies, so
 *   larger images would need gigabytes before any model work starts. */
#define DE_IMAGE_MAX_DIMENSION 16384
#define DE_IMAGE_MAX_PIXELS ((int64_t)1 << 26)

/* de_image_read's return codes (0 = success). */
#define DE_IMAGE_ERR (-1)           /* unreadable, malformed or unsupported file */
#define DE_IMAGE_ERR_DIMENSION (-2) /* a side above DE_IMAGE_MAX_DIMENSION (from the header) */
#define DE_IMAGE_ERR_TOO_LARGE (-3) /* width * height above DE_IMAGE_MAX_PIXELS (from the header) */

/* Reads a PNG or JPEG (detected from the first bytes, not the name). 8-bit output, row-major, no
 * padding. *channels is 1 (gray), 3 (RGB) or 4 (RGBA; any file with alpha or tRNS, gray+alpha
 * expanded to RGBA). Palette images are expanded; 16-bit samples keep their high byte; no gamma or
 * colour-profile transforms (as PIL reads files). An EXIF Orientation (JPEG APP1, PNG eXIf) is applied
 * as PIL's ImageOps.exif_transpose does, so width/height may be swapped.
 * *pixels is malloc'ed: free with de_image_free.
 * Returns 0 on success, DE_IMAGE_ERR_DIMENSION / DE_IMAGE_ERR_TOO_LARGE (refused from the header) or
 * DE_IMAGE_ERR (-1) with a message on failure. */
int de_image_read(const char *path, uint8_t **pixels, int *width, int *height, int *channels,
                  char *err, size_t err_len);

void de_image_free(uint8_t *pixels);

/* Writes 8-bit pixels (channels 1, 3 or 4), rows of width*channels bytes. Returns 0 or -1. */
int de_image_write_png(const char *path, const uint8_t *pixels, int width, int height, int channels,
                       char *err, size_t err_len);

/* channels 1 or 3; quality 1..100. Returns 0 or -1. */
int de_image_write_jpeg(const char *path, const uint8_t *pixels, int width, int height, int channels,
                        int quality, char *err, size_t err_len);

/* Largest XMP packet a JPEG APP1 segment holds (65533 payload bytes less the 29-byte namespace header). */
#define DE_IMAGE_MAX_JPEG_XMP 65504

/* As de_image_write_png / de_image_write_jpeg, with an XMP packet (NUL-terminated UTF-8; NULL or "" = none):
 * PNG gets an uncompressed iTXt chunk with keyword "XML:com.adobe.xmp" right after IHDR, JPEG an APP1
 * segment "http://ns.adobe.com/xap/1.0/\0" + packet after the JFIF header (at most DE_IMAGE_MAX_JPEG_XMP
 * bytes, else -1 with a message). */
int de_image_write_png_xmp(const char *path, const uint8_t *pixels, int width, int height, int channels,
                           const char *xmp, char *err, size_t err_len);
int de_image_write_jpeg_xmp(const char *path, const uint8_t *pixels, int width, int height, int channels,
                            int quality, const char *xmp, char *err, size_t err_len);

/* (image_xmp.c) Writes an encoded PNG `png` (signature + IHDR first, as libpng writes it) to `path` with an
 * iTXt XML:com.adobe.xmp chunk inserted after IHDR. Returns 0 or -1 with a message. */
int de_png_write_with_xmp(const char *path, const uint8_t *png, size_t len, const char *xmp, char *err, size_t err_len);

/* Reads the XMP packet of a PNG (the iTXt chunk XML:com.adobe.xmp, uncompressed or zlib-compressed) or of a
 * JPEG (the APP1 segment "http://ns.adobe.com/xap/1.0/"), without decoding pixels. *xmp receives a malloc'ed
 * NUL-terminated copy (free with de_image_free_xmp), or NULL when the file has none.
 * Returns 0 (found or not), -1 when the file cannot be read or its chunk/segment structure is broken
 * before the packet is found (message in err). */
int de_image_read_xmp(const char *path, char **xmp, size_t *len, char *err, size_t err_len);
void de_image_free_xmp(char *xmp);

#ifdef __cplusplus
}
#endif

#endif /* DE_IMAGE_H */
