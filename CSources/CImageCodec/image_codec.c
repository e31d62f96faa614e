/* image_codec.c — PNG (libpng simplified API) and JPEG (libjpeg with a setjmp error manager). */
#include "de_image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

static void set_err(char *err, size_t n, const char *fmt, ...) {
    if (!err || n == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

void de_image_free(uint8_t *pixels) { free(pixels); }

/* The header-size check shared by the decoders (see DE_IMAGE_MAX_DIMENSION / DE_IMAGE_MAX_PIXELS).
 * Returns 0 when width x height may be decoded, else DE_IMAGE_ERR_DIMENSION, DE_IMAGE_ERR_TOO_LARGE or
 * DE_IMAGE_ERR, with a message. */
static int check_size(const char *path, const char *kind, uint32_t width, uint32_t height, char *err, size_t n) {
    if (width == 0 || height == 0) {
        set_err(err, n, "%s: %s size %ux%u is empty", path, kind, width, height);
        return DE_IMAGE_ERR;
    }
    if (width > DE_IMAGE_MAX_DIMENSION || height > DE_IMAGE_MAX_DIMENSION) {
        set_err(err, n, "%s: %s size %ux%u is too large: at most %d pixels a side (DIFF_EDIT_MAX_DIMENSION); "
                "downscale the image", path, kind, width, height, DE_IMAGE_MAX_DIMENSION);
        return DE_IMAGE_ERR_DIMENSION;
    }
    uint64_t px = (uint64_t)width * height;
    if (px > (uint64_t)DE_IMAGE_MAX_PIXELS) {
        set_err(err, n, "%s: %s size %ux%u is too large: %llu pixels, above the decoder's budget of %lld "
                "(64 Mpixel, e.g. 8192x8192); downscale the image", path, kind, width, height,
                (unsigned long long)px, (long long)DE_IMAGE_MAX_PIXELS);
        return DE_IMAGE_ERR_TOO_LARGE;
    }
    return 0;
}

/* ---------------------------------------------------------------- EXIF orientation */

/* The EXIF Orientation tag (0x0112) of a TIFF block, 1 (normal) when absent or malformed. */
static int exif_orientation(const uint8_t *t, size_t len) {
    if (!t || len < 8) return 1;
    int le;
    if (t[0] == 'I' && t[1] == 'I') le = 1;
    else if (t[0] == 'M' && t[1] == 'M') le = 0;
    else return 1;
#define RD16(p) (le ? (uint32_t)((p)[0] | (p)[1] << 8) : (uint32_t)((p)[0] << 8 | (p)[1]))
#define RD32(p) (le ? ((uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 | (uint32_t)(p)[2] << 16 | (uint32_t)(p)[3] << 24) \
                    : ((uint32_t)(p)[0] << 24 | (uint32_t)(p)[1] << 16 | (uint32_t)(p)[2] << 8 | (uint32_t)(p)[3]))
    if (RD16(t + 2) != 42) return 1;
    uint32_t ifd = RD32(t + 4);
    if (ifd > len || len - ifd < 2) return 1;
    uint32_t count = RD16(t + ifd);
    for (uint32_t i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > len) break;
        if (RD16(t + e) == 0x0112 && RD16(t + e + 2) == 3) {
            uint32_t v = RD16(t + e + 8);
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
    return 1;
#undef RD16
#undef RD32
}

/* Applies an EXIF orientation as PIL's ImageOps.exif_transpose does (diffusers' load_image uses it).
 * Replaces *pix (freed) and may swap *w / *h. Returns 0, or -1 when out of memory. */
static int apply_orientation(uint8_t **pix, int *w, int *h, int c, int o) {
    if (o <= 1 || o > 8) return 0;
    int W = *w, H = *h;
    int ow = o >= 5 ? H : W, oh = o >= 5 ? W : H;
    uint8_t *src = *pix;
    uint8_t *dst = malloc((size_t)W * H * c);
    if (!dst) return -1;
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (o) {
            case 2: sx = W - 1 - x; sy = y; break;             /* mirror horizontal */
            case 3: sx = W - 1 - x; sy = H - 1 - y; break;     /* rotate 180 */
            case 4: sx = x; sy = H - 1 - y; break;             /* mirror vertical */
            case 5: sx = y; sy = x; break;                     /* transpose */
            case 6: sx = y; sy = H - 1 - x; break;             /* rotate 90 clockwise */
            case 7: sx = W - 1 - y; sy = H - 1 - x; break;     /* transverse */
            default: sx = W - 1 - y; sy = x; break;            /* 8: rotate 90 counter-clockwise */
            }
            memcpy(dst + ((size_t)y * ow + x) * c, src + ((size_t)sy * W + sx) * c, (size_t)c);
        }
    }
    free(src);
    *pix = dst; *w = ow; *h = oh;
    return 0;
}

/* ---------------------------------------------------------------- PNG */

/* Low-level libpng (errors by longjmp, caught here): 8-bit output with no gamma or colour-management
 * transforms, as PIL reads PNGs (16-bit samples keep their high byte; palette and tRNS expanded). */
static void png_error_cb(png_structp png, png_const_charp msg) {
    char *buf = (char *)png_get_error_ptr(png);
    if (buf) { strncpy(buf, msg ? msg : "error", 199); buf[199] = 0; }
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static int read_png(FILE *f, const char *path, uint8_t **pixels, int *w, int *h, int *ch, char *err, size_t n) {
    char msg[200] = "unknown error";
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, msg, png_error_cb, png_warning_cb);
    if (!png) { set_err(err, n, "%s: cannot read PNG (out of memory)", path); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); set_err(err, n, "%s: cannot read PNG (out of memory)", path); return -1; }
    uint8_t *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        set_err(err, n, "%s: cannot decode PNG (%s)", path, msg);
        png_destroy_read_struct(&png, &info, NULL);
        free(buf);
        free(rows);
        return -1;
    }
    png_init_io(png, f);
    png_set_user_limits(png, 0x7fffffffu, 0x7fffffffu);   /* check_size judges the size, naming it */
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    int size_rc = check_size(path, "PNG", width, height, err, n);
    if (size_rc != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        return size_rc;
    }
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    if (depth == 16) png_set_strip_16(png);   /* high byte, as PIL does */
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (has_trns) png_set_tRNS_to_alpha(png);
    int alpha = has_trns || (color & PNG_COLOR_MASK_ALPHA);
    int colour = (color & PNG_COLOR_MASK_COLOR) || color == PNG_COLOR_TYPE_PALETTE;
    if (alpha && !colour) png_set_gray_to_rgb(png);   /* gray+alpha -> RGBA */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    if (c != 1 && c != 3 && c != 4) {
        set_err(err, n, "%s: unexpected PNG channel count %d", path, c);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    size_t stride = (size_t)width * (size_t)c;
    if (png_get_rowbytes(png, info) != stride) {
        set_err(err, n, "%s: unexpected PNG row size", path);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    buf = malloc(stride * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!buf || !rows) {
        set_err(err, n, "%s: out of memory for a %ux%u image", path, width, height);
        png_destroy_read_struct(&png, &info, NULL);
        free(buf); free(rows);
        return -1;
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = buf + stride * y;
    png_read_image(png, rows);
    png_read_end(png, info);
    int orient = 1;
#ifdef PNG_eXIf_SUPPORTED
    png_bytep exif = NULL;
    png_uint_32 exif_len = 0;
    if (png_get_eXIf_1(png, info, &exif_len, &exif) && exif) orient = exif_orientation(exif, exif_len);
#endif
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    uint8_t *out = buf;
    int ow = (int)width, oh = (int)height;
    if (apply_orientation(&out, &ow, &oh, c, orient) != 0) {
        set_err(err, n, "%s: out of memory rotating a %ux%u image", path, width, height);
        free(out);
        return -1;
    }
    *pixels = out; *w = ow; *h = oh; *ch = c;
    return 0;
}

int de_image_write_png(const char *path, const uint8_t *pixels, int width, int height, int channels,
                       char *err, size_t n) {
    return de_image_write_png_xmp(path, pixels, width, height, channels, NULL, err, n);
}

int de_image_write_png_xmp(const char *path, const uint8_t *pixels, int width, int height, int channels,
                           const char *xmp, char *err, size_t n) {
    if (width <= 0 || height <= 0 || !pixels) { set_err(err, n, "%s: empty image", path); return -1; }
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)width;
    img.height = (png_uint_32)height;
    switch (channels) {
    case 1: img.format = PNG_FORMAT_GRAY; break;
    case 3: img.format = PNG_FORMAT_RGB; break;
    case 4: img.format = PNG_FORMAT_RGBA; break;
    default: set_err(err, n, "%s: cannot write %d channels as PNG", path, channels); return -1;
    }
    if (!xmp || !*xmp) {
        if (!png_image_write_to_file(&img, path, 0, pixels, width * channels, NULL)) {
            set_err(err, n, "%s: cannot write PNG (%s)", path, img.message);
            png_image_free(&img);
            return -1;
        }
        png_image_free(&img);
        return 0;
    }
    /* The simplified API writes no text chunks: encode to memory, then insert the iTXt chunk after IHDR. */
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&img, NULL, &size, 0, pixels, width * channels, NULL)) {
        set_err(err, n, "%s: cannot encode PNG (%s)", path, img.message);
        png_image_free(&img);
        return -1;
    }
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) { set_err(err, n, "%s: out of memory encoding PNG", path); png_image_free(&img); return -1; }
    if (!png_image_write_to_memory(&img, buf, &size, 0, pixels, width * channels, NULL)) {
        set_err(err, n, "%s: cannot encode PNG (%s)", path, img.message);
        png_image_free(&img);
        free(buf);
        return -1;
    }
    png_image_free(&img);
    int rc = de_png_write_with_xmp(path, buf, (size_t)size, xmp, err, n);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- JPEG */

struct de_jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int truncated;
};

static void jpeg_error_exit_cb(j_common_ptr cinfo) {
    struct de_jpeg_err *e = (struct de_jpeg_err *)cinfo->err;
    longjmp(e->jump, 1);
}

static void jpeg_emit_cb(j_common_ptr cinfo, int level) {
    struct de_jpeg_err *e = (struct de_jpeg_err *)cinfo->err;
    if (level < 0 && e->pub.msg_code == JWRN_JPEG_EOF) e->truncated = 1;
    if (level < 0) e->pub.num_warnings++;
}

static void jpeg_output_cb(j_common_ptr cinfo) { (void)cinfo; }

/* libjpeg's standard error manager with ours on top: errors longjmp to jerr->jump, warnings are counted (and a
 * premature end noted), nothing is printed. The caller still does the setjmp. */
static struct jpeg_error_mgr *de_jpeg_err_init(struct de_jpeg_err *jerr) {
    struct jpeg_error_mgr *m = jpeg_std_error(&jerr->pub);
    jerr->pub.error_exit = jpeg_error_exit_cb;
    jerr->pub.emit_message = jpeg_emit_cb;
    jerr->pub.output_message = jpeg_output_cb;
    jerr->truncated = 0;
    return m;
}

static int read_jpeg(FILE *f, const char *path, uint8_t **pixels, int *w, int *h, int *ch, char *err, size_t n) {
    struct jpeg_decompress_struct cinfo;
    struct de_jpeg_err jerr;
    uint8_t *volatile buf = NULL;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = de_jpeg_err_init(&jerr);
    if (setjmp(jerr.jump)) {
        char msg[JMSG_LENGTH_MAX];
        (*jerr.pub.format_message)((j_common_ptr)&cinfo, msg);
        set_err(err, n, "%s: cannot decode JPEG (%s)", path, msg);
        jpeg_destroy_decompress(&cinfo);
        free(buf);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    /* saved markers live in the image pool, freed by jpeg_finish_decompress: read the EXIF now */
    int orient = 1;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            orient = exif_orientation(m->data + 6, m->data_length - 6);
            break;
        }
    }
    int size_rc = check_size(path, "JPEG", cinfo.image_width, cinfo.image_height, err, n);
    if (size_rc != 0) {
        jpeg_destroy_decompress(&cinfo);
        return size_rc;
    }
    if (cinfo.jpeg_color_space == JCS_GRAYSCALE) cinfo.out_color_space = JCS_GRAYSCALE;
    else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        set_err(err, n, "%s: CMYK JPEG is not supported (convert it to RGB)", path);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    } else cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int c = cinfo.output_components;
    size_t stride = (size_t)cinfo.output_width * (size_t)c;
    buf = malloc(stride * cinfo.output_height + 1);
    if (!buf) {
        set_err(err, n, "%s: out of memory for a %ux%u image", path, cinfo.output_width, cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = buf + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
        if (jerr.truncated) break;
    }
    if (jerr.truncated) {
        set_err(err, n, "%s: truncated JPEG file", path);
        jpeg_destroy_decompress(&cinfo);
        free(buf);
        return -1;
    }
    jpeg_finish_decompress(&cinfo);
    uint8_t *out = buf;
    int ow = (int)cinfo.output_width, oh = (int)cinfo.output_height;
    jpeg_destroy_decompress(&cinfo);
    if (apply_orientation(&out, &ow, &oh, c, orient) != 0) {
        set_err(err, n, "%s: out of memory rotating a %dx%d image", path, ow, oh);
        free(out);
        return -1;
    }
    *pixels = out; *w = ow; *h = oh; *ch = c;
    return 0;
}

int de_image_write_jpeg(const char *path, const uint8_t *pixels, int width, int height, int channels,
                        int quality, char *err, size_t n) {
    return de_image_write_jpeg_xmp(path, pixels, width, height, channels, quality, NULL, err, n);
}

int de_image_write_jpeg_xmp(const char *path, const uint8_t *pixels, int width, int height, int channels,
                            int quality, const char *xmp, char *err, size_t n) {
    size_t xmp_len = xmp ? strlen(xmp) : 0;
    if (xmp_len > DE_IMAGE_MAX_JPEG_XMP) {
        set_err(err, n, "%s: XMP packet of %zu bytes is larger than a JPEG APP1 segment holds (%d)", path, xmp_len,
                DE_IMAGE_MAX_JPEG_XMP);
        return -1;
    }
    if (width <= 0 || height <= 0 || !pixels) { set_err(err, n, "%s: empty image", path); return -1; }
    if (channels != 1 && channels != 3) { set_err(err, n, "%s: cannot write %d channels as JPEG", path, channels); return -1; }
    if (width > 65500 || height > 65500) { set_err(err, n, "%s: %dx%d is too large for JPEG", path, width, height); return -1; }
    FILE *volatile f = fopen(path, "wb");
    if (!f) { set_err(err, n, "%s: cannot open for writing (%s)", path, strerror(errno)); return -1; }
    struct jpeg_compress_struct cinfo;
    struct de_jpeg_err jerr;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = de_jpeg_err_init(&jerr);
    if (setjmp(jerr.jump)) {
        char msg[JMSG_LENGTH_MAX];
        (*jerr.pub.format_message)((j_common_ptr)&cinfo, msg);
        set_err(err, n, "%s: cannot write JPEG (%s)", path, msg);
        jpeg_destroy_compress(&cinfo);
        fclose(f);
        return -1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality < 1 ? 1 : (quality > 100 ? 100 : quality), TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    if (xmp_len > 0) {
        /* APP1: the XMP namespace, NUL, the packet (after the JFIF APP0 written by jpeg_start_compress) */
        static const char ns[] = "http://ns.adobe.com/xap/1.0/";
        size_t total = sizeof ns + xmp_len;
        JOCTET *seg = malloc(total);
        if (!seg) { set_err(err, n, "%s: out of memory", path); jpeg_destroy_compress(&cinfo); fclose(f); return -1; }
        memcpy(seg, ns, sizeof ns);
        memcpy(seg + sizeof ns, xmp, xmp_len);
        jpeg_write_marker(&cinfo, JPEG_APP0 + 1, seg, (unsigned int)total);
        free(seg);
    }
    size_t stride = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + stride * cinfo.next_scanline);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    if (fclose(f) != 0) { set_err(err, n, "%s: cannot write JPEG (%s)", path, strerror(errno)); return -1; }
    return 0;
}

/* ---------------------------------------------------------------- dispatch */

int de_image_read(const char *path, uint8_t **pixels, int *width, int *height, int *channels,
                  char *err, size_t n) {
    if (!path || !pixels || !width || !height || !channels) { set_err(err, n, "de_image_read: NULL argument"); return -1; }
    *pixels = NULL; *width = 0; *height = 0; *channels = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) set_err(err, n, "%s: no such file", path);
        else set_err(err, n, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    unsigned char magic[8] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    rewind(f);
    int rc;
    if (got >= 8 && png_sig_cmp(magic, 0, 8) == 0) {
        rc = read_png(f, path, pixels, width, height, channels, err, n);
    } else if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) {
        rc = read_jpeg(f, path, pixels, width, height, channels, err, n);
    } else {
        set_err(err, n, "%s: not a PNG or JPEG file", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}
