#!/usr/bin/env python3
"""Pixel checks for the host tests (Tests/hosts/test_gimp.sh, test_krita.sh). Standard library only
(a small PNG reader: 8-bit, non-interlaced, colour types 0/2/4/6), so CI needs nothing but python3.

    pngcheck.py same A.png B.png                      every pixel (all channels) identical
    pngcheck.py edit SRC.png NEW.png X Y W H          outside the rectangle identical (all channels),
                                                      alpha identical everywhere, some pixel inside
                                                      changed
    pngcheck.py changed SRC.png NEW.png MIN_FRACTION  at least that fraction of pixels changed
    pngcheck.py recolour SRC.png NEW.png CX CY R COLOUR
                                                      inside the disc (centre CX,CY, radius R) the mean
                                                      colour moved towards COLOUR (red|green|blue):
                                                      that channel now dominates the other two
    pngcheck.py at A.png X Y V                        the first channel of pixel (X,Y) is V
    pngcheck.py info A.png                            width height channels
    pngcheck.py source A.png|A.jpg URI|none           the file's XMP packet (PNG iTXt/zTXt/tEXt
                                                      XML:com.adobe.xmp, JPEG APP1) parses (xml.etree) and its
                                                      Iptc4xmpExt:DigitalSourceType is URI; none: the file has
                                                      no DigitalSourceType
Exit status 0 = pass, 1 = fail (with a message), 2 = usage/read error.
"""
import struct
import sys
import zlib


def read_png(path):
    """(width, height, channels, rows) with rows a list of bytes objects of width * channels."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, ctype, _comp, _filt, interlace = hdr
    if depth != 8 or interlace != 0 or ctype not in (0, 2, 4, 6):
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(b"".join(idat))
    stride = w * ch
    rows, prev, p = [], bytearray(stride), 0
    for _ in range(h):
        ft = raw[p]
        line = bytearray(raw[p + 1:p + 1 + stride])
        p += 1 + stride
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b = prev[i]
            c = prev[i - ch] if i >= ch else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, ch, rows


def px(img, x, y):
    w, h, ch, rows = img
    return tuple(rows[y][x * ch:(x + 1) * ch])


def rgb(p):
    """(r, g, b) of a pixel of 1..4 channels."""
    if len(p) <= 2:
        return (p[0], p[0], p[0])
    return p[:3]


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def same_size(a, b, na, nb):
    if a[:2] != b[:2]:
        fail(f"{na} is {a[0]}x{a[1]}, {nb} is {b[0]}x{b[1]}")


def cmd_same(a_path, b_path):
    a, b = read_png(a_path), read_png(b_path)
    same_size(a, b, a_path, b_path)
    diff = [(x, y) for y in range(a[1]) for x in range(a[0]) if px(a, x, y) != px(b, x, y)]
    if diff:
        x, y = diff[0]
        fail(f"{len(diff)} pixels differ, first at ({x},{y}): {px(a, x, y)} vs {px(b, x, y)}")
    print(f"ok: {a_path} and {b_path} identical ({a[0]}x{a[1]}x{a[2]})")


def cmd_edit(src_path, new_path, x0, y0, w, h):
    s, n = read_png(src_path), read_png(new_path)
    same_size(s, n, src_path, new_path)
    x0, y0, w, h = int(x0), int(y0), int(w), int(h)
    outside_diff, inside_changed, alpha_diff = [], 0, []
    for y in range(s[1]):
        for x in range(s[0]):
            ps, pn = px(s, x, y), px(n, x, y)
            inside = x0 <= x < x0 + w and y0 <= y < y0 + h
            if s[2] in (2, 4) and ps[-1] != pn[-1]:
                alpha_diff.append((x, y))
            if not inside and ps != pn:
                outside_diff.append((x, y))
            if inside and rgb(ps) != rgb(pn):
                inside_changed += 1
    if outside_diff:
        x, y = outside_diff[0]
        fail(f"{len(outside_diff)} pixels outside the selection changed, first ({x},{y}): "
             f"{px(s, x, y)} -> {px(n, x, y)}")
    if alpha_diff:
        x, y = alpha_diff[0]
        fail(f"alpha changed at {len(alpha_diff)} pixels, first ({x},{y}): {px(s, x, y)} -> {px(n, x, y)}")
    if inside_changed == 0:
        fail("no pixel inside the selection changed")
    print(f"ok: outside the selection identical, alpha preserved, {inside_changed}/{w * h} pixels inside changed")


def cmd_changed(src_path, new_path, frac):
    s, n = read_png(src_path), read_png(new_path)
    same_size(s, n, src_path, new_path)
    c = sum(1 for y in range(s[1]) for x in range(s[0]) if px(s, x, y) != px(n, x, y))
    f = c / (s[0] * s[1])
    if f < float(frac):
        fail(f"only {c} pixels ({f:.3f}) changed, expected at least {frac}")
    print(f"ok: {c} pixels ({f:.3f}) changed")


def mean_rgb(img, cx, cy, r):
    acc, k = [0, 0, 0], 0
    for y in range(img[1]):
        for x in range(img[0]):
            if (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r:
                p = rgb(px(img, x, y))
                for i in range(3):
                    acc[i] += p[i]
                k += 1
    return [a / max(k, 1) for a in acc]


def cmd_recolour(src_path, new_path, cx, cy, r, colour):
    s, n = read_png(src_path), read_png(new_path)
    same_size(s, n, src_path, new_path)
    idx = {"red": 0, "green": 1, "blue": 2}[colour]
    ms, mn = mean_rgb(s, float(cx), float(cy), float(r)), mean_rgb(n, float(cx), float(cy), float(r))
    others = [mn[i] for i in range(3) if i != idx]
    fmt = lambda m: "(" + ", ".join(f"{v:.0f}" for v in m) + ")"  # noqa: E731
    if not (mn[idx] > max(others) + 20 and mn[idx] > ms[idx] + 30):
        fail(f"mean colour in the disc {fmt(ms)} -> {fmt(mn)}: not recoloured towards {colour}")
    print(f"ok: mean colour in the disc {fmt(ms)} -> {fmt(mn)} ({colour} dominates)")


def cmd_at(path, x, y, v):
    img = read_png(path)
    p = px(img, int(x), int(y))
    if p[0] != int(v):
        fail(f"{path}: pixel ({x},{y}) is {p}, expected first channel {v}")
    print(f"ok: {path} ({x},{y}) = {p[0]}")


def read_xmp(path):
    """The XMP packet (bytes) of a PNG or JPEG, or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        pos = 8
        while pos + 12 <= len(data):
            (n,) = struct.unpack(">I", data[pos:pos + 4])
            kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
            pos += 12 + n
            key, _, rest = body.partition(b"\0")
            if key == b"XML:com.adobe.xmp":
                if kind == b"iTXt":
                    comp = rest[0]
                    text = rest[2:].split(b"\0", 2)[2]
                    return zlib.decompress(text) if comp else text
                if kind == b"zTXt":
                    return zlib.decompress(rest[1:])
                if kind == b"tEXt":
                    return rest
        return None
    if data[:2] == b"\xff\xd8":
        pos, ns = 2, b"http://ns.adobe.com/xap/1.0/\0"
        while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] not in (0xDA, 0xD9):
            (n,) = struct.unpack(">H", data[pos + 2:pos + 4])
            seg = data[pos + 4:pos + 2 + n]
            if data[pos + 1] == 0xE1 and seg.startswith(ns):
                return seg[len(ns):]
            pos += 2 + n
        return None
    raise ValueError(f"{path}: not a PNG or JPEG")


def cmd_source(path, uri):
    import xml.etree.ElementTree as ET
    packet = read_xmp(path)
    key = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}DigitalSourceType"
    values = []
    if packet is not None:
        start = packet.find(b"<x:xmpmeta")
        if start < 0:
            start = packet.find(b"<rdf:RDF")
        end = packet.rfind(b"?>") if packet.rstrip().endswith(b"?>") else len(packet)
        body = packet[start:packet.rfind(b"<?xpacket")] if b"<?xpacket end" in packet else packet[start:end]
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            fail(f"{path}: XMP does not parse: {e}")
        for el in root.iter():
            if el.tag == key:
                values.append((el.text or el.get("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}resource") or "").strip())
            if key in el.attrib:
                values.append(el.attrib[key])
    if uri == "none":
        if values:
            fail(f"{path}: has DigitalSourceType {values}")
        print(f"ok: {path} has no DigitalSourceType")
        return
    if values != [uri]:
        fail(f"{path}: DigitalSourceType {values or 'missing'} (XMP {'present' if packet else 'absent'}), expected {uri}")
    print(f"ok: {path} DigitalSourceType {uri}")


def main(argv):
    cmds = {"at": (cmd_at, 4), "same": (cmd_same, 2), "edit": (cmd_edit, 6), "changed": (cmd_changed, 3),
            "recolour": (cmd_recolour, 6), "info": (None, 1), "source": (cmd_source, 2)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        print(__doc__)
        return 2
    try:
        if argv[1] == "info":
            w, h, ch, _ = read_png(argv[2])
            print(w, h, ch)
            return 0
        cmds[argv[1]][0](*argv[2:])
    except (OSError, ValueError) as e:
        print("ERROR:", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
