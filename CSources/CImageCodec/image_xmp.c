/* image_xmp.c — XMP packets in PNG (iTXt "XML:com.adobe.xmp") and JPEG (APP1 "http://ns.adobe.com/xap/1.0/"):
 * inserting one into an encoded PNG, and reading one from a file without decoding its pixels. Every length
 * read from a file is checked against what is left of it; a broken container is an error with a message,
 * never a crash. */
#include "de_image.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

static void xmp_err(char *err, size_t n, const char *fmt, ...) {
    if (!err || n == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
}

static const char xmp_keyword[] = "XML:com.adobe.xmp";
static const char xmp_jpeg_ns[] = "http://ns.adobe.com/xap/1.0/";   /* followed by a NUL in the segment */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int de_png_write_with_xmp(const char *path, const uint8_t *png, size_t len, const char *xmp, char *err, size_t n) {
    /* signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 CRC) */
    const size_t head = 8 + 25;
    if (len < head || memcmp(png + 12, "IHDR", 4) != 0) { xmp_err(err, n, "%s: internal error: encoded PNG has no IHDR", path); return -1; }
    size_t text_len = strlen(xmp);
    size_t data_len = sizeof xmp_keyword + 2 + 1 + 1 + text_len;  /* keyword\0, flag, method, lang\0, translated\0, text */
    if (data_len > 0x7FFFFFFFu) { xmp_err(err, n, "%s: XMP packet too large", path); return -1; }
    uint8_t *chunk = malloc(12 + data_len);
    if (!chunk) { xmp_err(err, n, "%s: out of memory", path); return -1; }
    put_be32(chunk, (uint32_t)data_len);
    memcpy(chunk + 4, "iTXt", 4);
    uint8_t *d = chunk + 8;
    memcpy(d, xmp_keyword, sizeof xmp_keyword); d += sizeof xmp_keyword;
    *d++ = 0;   /* compression flag: uncompressed (readers scan for the packet in the raw file) */
    *d++ = 0;   /* compression method */
    *d++ = 0;   /* empty language tag */
    *d++ = 0;   /* empty translated keyword */
    memcpy(d, xmp, text_len);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, chunk + 4, (uInt)(4 + data_len));
    put_be32(chunk + 8 + data_len, (uint32_t)crc);

    FILE *f = fopen(path, "wb");
    if (!f) { xmp_err(err, n, "%s: cannot open for writing (%s)", path, strerror(errno)); free(chunk); return -1; }
    int ok = fwrite(png, 1, head, f) == head && fwrite(chunk, 1, 12 + data_len, f) == 12 + data_len
             && fwrite(png + head, 1, len - head, f) == len - head;
    free(chunk);
    if (fclose(f) != 0) ok = 0;
    if (!ok) { xmp_err(err, n, "%s: cannot write PNG (%s)", path, strerror(errno)); return -1; }
    return 0;
}

/* The whole file, at most 1 GiB. */
static uint8_t *slurp(const char *path, size_t *len, char *err, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) xmp_err(err, n, "%s: no such file", path);
        else xmp_err(err, n, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, used = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + used, 1, cap - used, f);
        used += got;
        if (used < cap) break;
        if (cap >= ((size_t)1 << 30)) { xmp_err(err, n, "%s: file larger than 1 GiB", path); free(buf); buf = NULL; break; }
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb) { free(buf); buf = NULL; xmp_err(err, n, "%s: out of memory", path); break; }
        buf = nb; cap *= 2;
    }
    if (buf && ferror(f)) { xmp_err(err, n, "%s: read error", path); free(buf); buf = NULL; }
    fclose(f);
    *len = used;
    return buf;
}

static char *copy_text(const uint8_t *p, size_t len) {
    char *s = malloc(len + 1);
    if (!s) return NULL;
    memcpy(s, p, len);
    s[len] = 0;
    return s;
}

/* zlib-inflates an iTXt text of at most 16 MiB. */
static char *inflate_text(const uint8_t *p, size_t len, size_t *out_len) {
    size_t cap = len * 4 + 1024, limit = (size_t)16 << 20;
    for (;;) {
        if (cap > limit) cap = limit;
        uint8_t *buf = malloc(cap + 1);
        if (!buf) return NULL;
        uLongf dl = (uLongf)cap;
        int rc = uncompress(buf, &dl, p, (uLong)len);
        if (rc == Z_OK) { buf[dl] = 0; *out_len = dl; return (char *)buf; }
        free(buf);
        if (rc != Z_BUF_ERROR || cap >= limit) return NULL;
        cap *= 2;
    }
}

static int read_png_xmp(const char *path, const uint8_t *b, size_t len, char **xmp, size_t *out_len, char *err, size_t n) {
    size_t i = 8;
    while (i + 12 <= len) {
        uint32_t clen = get_be32(b + i);
        const uint8_t *type = b + i + 4;
        if (clen > len - i - 12) { xmp_err(err, n, "%s: PNG chunk at byte %zu runs past the end of the file", path, i); return -1; }
        const uint8_t *d = b + i + 8;
        if (memcmp(type, "iTXt", 4) == 0 && clen >= sizeof xmp_keyword + 2 && memcmp(d, xmp_keyword, sizeof xmp_keyword) == 0) {
            size_t k = sizeof xmp_keyword;
            int compressed = d[k];
            k += 2;
            const uint8_t *lang_end = memchr(d + k, 0, clen - k);
            if (!lang_end) { xmp_err(err, n, "%s: malformed iTXt chunk (language tag)", path); return -1; }
            k = (size_t)(lang_end - d) + 1;
            const uint8_t *tk_end = k < clen ? memchr(d + k, 0, clen - k) : NULL;
            if (!tk_end) { xmp_err(err, n, "%s: malformed iTXt chunk (translated keyword)", path); return -1; }
            k = (size_t)(tk_end - d) + 1;
            if (compressed) {
                *xmp = inflate_text(d + k, clen - k, out_len);
                if (!*xmp) { xmp_err(err, n, "%s: the compressed XMP iTXt chunk does not inflate", path); return -1; }
            } else {
                *xmp = copy_text(d + k, clen - k);
                if (!*xmp) { xmp_err(err, n, "%s: out of memory", path); return -1; }
                *out_len = clen - k;
            }
            return 0;
        }
        if (memcmp(type, "IEND", 4) == 0) break;
        i += 12 + clen;
    }
    return 0;
}

static int read_jpeg_xmp(const char *path, const uint8_t *b, size_t len, char **xmp, size_t *out_len, char *err, size_t n) {
    size_t i = 2;
    while (i + 4 <= len) {
        if (b[i] != 0xFF) { xmp_err(err, n, "%s: JPEG marker expected at byte %zu", path, i); return -1; }
        uint8_t m = b[i + 1];
        if (m == 0xFF) { i++; continue; }                    /* fill byte */
        if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) { i += 2; continue; }
        if (m == 0xDA || m == 0xD9) break;                   /* start of scan / end: no more headers */
        size_t seg = (size_t)b[i + 2] << 8 | b[i + 3];
        if (seg < 2 || seg > len - i - 2) { xmp_err(err, n, "%s: JPEG segment at byte %zu runs past the end of the file", path, i); return -1; }
        const uint8_t *d = b + i + 4;
        size_t dlen = seg - 2;
        if (m == 0xE1 && dlen >= sizeof xmp_jpeg_ns && memcmp(d, xmp_jpeg_ns, sizeof xmp_jpeg_ns) == 0) {
            *xmp = copy_text(d + sizeof xmp_jpeg_ns, dlen - sizeof xmp_jpeg_ns);
            if (!*xmp) { xmp_err(err, n, "%s: out of memory", path); return -1; }
            *out_len = dlen - sizeof xmp_jpeg_ns;
            return 0;
        }
        i += 2 + seg;
    }
    return 0;
}

int de_image_read_xmp(const char *path, char **xmp, size_t *len, char *err, size_t n) {
    if (!path || !xmp || !len) { xmp_err(err, n, "de_image_read_xmp: NULL argument"); return -1; }
    *xmp = NULL; *len = 0;
    size_t size = 0;
    uint8_t *b = slurp(path, &size, err, n);
    if (!b) return -1;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    int rc;
    if (size >= 8 && memcmp(b, png_sig, 8) == 0) rc = read_png_xmp(path, b, size, xmp, len, err, n);
    else if (size >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) rc = read_jpeg_xmp(path, b, size, xmp, len, err, n);
    else { xmp_err(err, n, "%s: not a PNG or JPEG file", path); rc = -1; }
    free(b);
    if (rc != 0) { free(*xmp); *xmp = NULL; *len = 0; }
    return rc;
}

void de_image_free_xmp(char *xmp) { free(xmp); }
