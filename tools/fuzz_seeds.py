#!/usr/bin/env python3
"""Writes the fuzz harnesses' seed corpora, Tests/Fuzz/corpus/<name>/ (scripts/fuzz.sh). Deterministic; small.

  safetensors  small valid files (F32/F16/BF16/I64, metadata, zero-size tensor, unaligned F32) and a few broken ones
  config       the fixtures' unet/vae/text/scheduler configs, SD 1.5's, and edit defaults
  singlefile   the JSON headers of Tests/Fixtures/sd1.safetensors and sd2.safetensors without biases (fewer bytes;
               the detection reads weights only), and sd2's with a UNet config in __metadata__ (a mismatch: sd1's)
  tokenizer    prompts: ASCII, special tokens, Unicode case and whitespace, emoji, invalid UTF-8
  image        tiny PNGs (gray, RGB, RGBA, palette + tRNS, 16-bit, gray+alpha, eXIf orientation) and
               JPEGs (gray, RGB, progressive, EXIF orientation 6)
Needs numpy and Pillow (tools only; CI uses the committed files)."""
import io, json, os, shutil, struct, sys

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fuzz", "corpus")


def put(name, fname, data):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, fname), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors_bytes(tensors, metadata=None, pad=0):
    """tensors: list of (name, dtype, shape, raw bytes). pad: extra header spaces (alignment)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode() + b" " * pad
    return struct.pack("<Q", len(h)) + h + data


def seeds_safetensors():
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal(6).astype("<f4")
    f16 = rng.standard_normal(4).astype("<f2")
    bf16 = (rng.standard_normal(4).astype("<f4").view("<u4") >> 16).astype("<u2")
    put("safetensors", "valid_mixed.safetensors", safetensors_bytes(
        [("w", "F32", [2, 3], f32.tobytes()), ("h", "F16", [4], f16.tobytes()), ("b", "BF16", [2, 2], bf16.tobytes()),
         ("ids", "I64", [2], np.arange(2, dtype="<i8").tobytes()), ("empty", "F32", [0, 3], b"")],
        metadata={"format": "pt", "note": "seed"}))
    put("safetensors", "valid_unaligned.safetensors", safetensors_bytes([("x", "F32", [3], f32[:3].tobytes())], pad=1))
    put("safetensors", "scalar.safetensors", safetensors_bytes([("s", "F32", [], f32[:1].tobytes())]))
    put("safetensors", "bad_offsets.safetensors",
        struct.pack("<Q", 60) + b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}}    ' + b"\0" * 8)
    put("safetensors", "overlap.safetensors", safetensors_bytes(
        [("a", "F16", [2], f16[:2].tobytes())]).replace(b'"data_offsets":[0,4]}', b'"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}'))
    put("safetensors", "huge_length.safetensors", struct.pack("<Q", 1 << 62) + b"{}")


def seeds_config():
    fx = os.path.join(ROOT, "Tests", "Fixtures")
    for model in ("sd1", "sd2"):
        for part, fname in (("unet", "config.json"), ("vae", "config.json"), ("text_encoder", "config.json"),
                            ("scheduler", "scheduler_config.json")):
            with open(os.path.join(fx, model, part, fname)) as f:
                put("config", f"{model}_{part}.json", json.dumps(json.load(f), separators=(",", ":")))
    sd15_unet = {"block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2, "cross_attention_dim": 768,
                 "attention_head_dim": 8, "sample_size": 64, "transformer_layers_per_block": [1, 1, 1, 1]}
    put("config", "sd15_unet.json", json.dumps(sd15_unet))
    put("config", "edit_defaults.json", json.dumps({"method": "p2p", "steps": 20, "guidance": 7.5, "strength": 0.8}))
    put("config", "scheduler_float.json", '{"num_train_timesteps":1000.5,"beta_schedule":"linear","beta_end":0.02}')


def seeds_singlefile():
    for model in ("sd1", "sd2"):
        with open(os.path.join(ROOT, "Tests", "Fixtures", f"{model}.safetensors"), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        small = {k: v for k, v in header.items() if not k.endswith(".bias") or k.startswith("cond_stage_model.model.")}
        put("singlefile", f"{model}_weights.json", json.dumps(small, separators=(",", ":")))
    # sd1 with its UNet config given in the metadata (SingleFileCheckpoint.metadataKeys), checked against the shapes
    with open(os.path.join(ROOT, "Tests", "Fixtures", "sd1", "unet", "config.json")) as f:
        unet = json.dumps(json.load(f), separators=(",", ":"))
    small["__metadata__"] = {"diffedit.unet_config": unet, "modelspec.prediction_type": "epsilon"}
    put("singlefile", "sd2_weights_unet_meta.json", json.dumps(small, separators=(",", ":")))


def seeds_tokenizer():
    prompts = [
        "a photo of a cat", "A PHOTO OF A DOG, oil painting!!! 4k", "<|startoftext|>red<|endoftext|>blue !",
        "İstanbul ΣΊΣΥΦΟΣ straße ﬁ café", "tabs\tand\u3000ideographic\u00a0spaces\n\nnewlines", "🐱🐶 👩‍👩‍👧 x²",
        "don't we'll they've I'm it's", "12345 3.14 $%^&*()", "",
    ]
    for i, p in enumerate(prompts):
        put("tokenizer", f"prompt_{i}.txt", p)
    put("tokenizer", "invalid_utf8.txt", b"caf\xc3 \xff\xfe broken \xe2\x82")


def png(img, **kw):
    b = io.BytesIO()
    img.save(b, "PNG", **kw)
    return b.getvalue()


def jpeg(img, **kw):
    b = io.BytesIO()
    img.save(b, "JPEG", **kw)
    return b.getvalue()


def seeds_image():
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8), "RGB")
    put("image", "rgb.png", png(rgb))
    put("image", "gray.png", png(rgb.convert("L")))
    put("image", "rgba.png", png(rgb.convert("RGBA")))
    put("image", "gray_alpha.png", png(rgb.convert("LA")))
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=4)
    put("image", "palette_trns.png", png(pal, transparency=0))
    put("image", "gray16.png", png(Image.fromarray((rng.integers(0, 65536, (4, 3))).astype(np.uint16))))
    exif = Image.Exif()
    exif[0x0112] = 6
    put("image", "orient6.png", png(rgb, exif=exif.tobytes()))
    put("image", "rgb.jpg", jpeg(rgb, quality=90))
    put("image", "gray.jpg", jpeg(rgb.convert("L"), quality=80))
    put("image", "progressive.jpg", jpeg(rgb, quality=75, progressive=True))
    put("image", "orient6.jpg", jpeg(rgb, quality=85, exif=exif.tobytes()))


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    seeds_safetensors(); seeds_config(); seeds_singlefile(); seeds_tokenizer(); seeds_image()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {total} bytes")


if __name__ == "__main__":
    sys.exit(main())
