#!/usr/bin/env python3
"""Makes Tests/Fixtures/provenance (read by Tests/DiffEditTests/ProvenanceTests.swift; CI has no opencv, so the
files are committed):

  source.png          256x256 picture (smooth shapes plus mild texture), no mark
  py_marked.png       source.png marked by the invisible-watermark package's own encoder (dwtDctSvd, the
                      48 bits of diffusers' SDXL watermarker): diffedit's native decoder must read it
  native_marked.png   source.png marked by diffedit (`diffedit watermark`): imwatermark's reading of it is
                      recorded in expected.json (and the README)
  expected.json       what imwatermark's WatermarkDecoder('bits', 48).decode(bgr, 'dwtDctSvd') returns for
                      each of the three PNGs and for native_marked.png after JPEG quality 90 (OpenCV)
  foreign_xmp.jpg     64x64 JPEG whose APP1 XMP packet is another tool's (dc:creator, xmp:CreatorTool, and an
                      Iptc4xmpExt:DigitalSourceType of digitalCapture): an edit must keep the first two and replace
                      the third
  corrupt_xmp.png     64x64 PNG whose iTXt XML:com.adobe.xmp holds malformed XML: an edit must succeed and
                      replace it

    pip install invisible-watermark   # test-only (imwatermark, opencv-python, PyWavelets)
    make cli && python3 tools/make_provenance_fixtures.py [--diffedit build/bin/diffedit]
"""
import argparse
import json
import os
import struct
import subprocess
import zlib

import numpy as np
import cv2
from imwatermark import WatermarkDecoder, WatermarkEncoder

MESSAGE = 0b101100111110110010010000011110111011000110011110
BITS = [int(b) for b in bin(MESSAGE)[2:]]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "provenance")


def picture(w=256, h=256, seed=7):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([90 + 80 * x / w, 120 + 60 * np.sin(y / h * 3), 170 - 90 * y / h], -1)
    for _ in range(5):
        x0, y0, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(20, 70)
        col = rng.uniform(30, 225, 3)
        m = (np.hypot(x - x0, y - y0) < r)[..., None]
        img = np.where(m, col, img)
    img += 6 * np.sin(x / 2.3)[..., None] * np.cos(y / 3.1)[..., None]
    return img.clip(0, 255).round().astype(np.uint8)   # RGB


def decode(bgr):
    return "".join(str(int(b)) for b in WatermarkDecoder("bits", 48).decode(bgr, "dwtDctSvd"))


def xmp_packet(body):
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n' + body +
            '\n</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end="w"?>').encode("utf-8")


def png_with_itxt(png_bytes, text):
    data = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + text
    chunk = struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", zlib.crc32(b"iTXt" + data) & 0xFFFFFFFF)
    return png_bytes[:33] + chunk + png_bytes[33:]


def jpeg_with_xmp(jpg_bytes, packet):
    seg = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    app1 = b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg
    # after SOI and the JFIF APP0
    assert jpg_bytes[2:4] == b"\xff\xe0"
    app0_end = 4 + struct.unpack(">H", jpg_bytes[4:6])[0]
    return jpg_bytes[:app0_end] + app1 + jpg_bytes[app0_end:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffedit", default="build/bin/diffedit")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    rgb = picture()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    src = os.path.join(OUT, "source.png")
    cv2.imwrite(src, bgr)
    enc = WatermarkEncoder()
    enc.set_watermark("bits", BITS)
    cv2.imwrite(os.path.join(OUT, "py_marked.png"), enc.encode(bgr, "dwtDctSvd"))
    nat = os.path.join(OUT, "native_marked.png")
    subprocess.run([args.diffedit, "watermark", "--input", src, "--output", nat], check=True)
    ok, j = cv2.imencode(".jpg", cv2.imread(nat), [cv2.IMWRITE_JPEG_QUALITY, 90])
    expected = {
        "message": "".join(map(str, BITS)),
        "imwatermark_bits": {
            "source.png": decode(cv2.imread(src)),
            "py_marked.png": decode(cv2.imread(os.path.join(OUT, "py_marked.png"))),
            "native_marked.png": decode(cv2.imread(nat)),
            "native_marked.png after JPEG q90": decode(cv2.imdecode(j, cv2.IMREAD_COLOR)),
        },
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")

    small = np.ascontiguousarray(picture(64, 64, seed=3)[..., ::-1])
    ok, jb = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    foreign = xmp_packet(
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmp:CreatorTool="Some Camera 1.0">\n'
        ' <dc:creator><rdf:Seq><rdf:li>Ada Example</rdf:li></rdf:Seq></dc:creator>\n'
        ' <Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture</Iptc4xmpExt:DigitalSourceType>\n'
        '</rdf:Description>')
    with open(os.path.join(OUT, "foreign_xmp.jpg"), "wb") as f:
        f.write(jpeg_with_xmp(jb.tobytes(), foreign))
    ok, pb = cv2.imencode(".png", small)
    corrupt = xmp_packet('<rdf:Description rdf:about=""><dc:title>unclosed</rdf:Description>')
    with open(os.path.join(OUT, "corrupt_xmp.png"), "wb") as f:
        f.write(png_with_itxt(pb.tobytes(), corrupt))
    print(json.dumps(expected, indent=1))
    for n in sorted(os.listdir(OUT)):
        print(n, os.path.getsize(os.path.join(OUT, n)))


if __name__ == "__main__":
    main()
