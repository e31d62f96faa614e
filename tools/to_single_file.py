#!/usr/bin/env python3
"""Converts an SD 1.x-style diffusers folder (CLIP text encoder) into one original-layout (CompVis LDM)
.safetensors file, the form most checkpoints are shared in. Needs numpy only (no PyTorch).

    python3 tools/to_single_file.py models/toy-instruct /tmp/toy-instruct.safetensors

The folder's configs travel in the file's __metadata__ ("diffedit.unet_config", "diffedit.vae_config",
"diffedit.text_config", "diffedit.scheduler_config"; the folder's diffedit.json, if any, under
"diffedit.edit_defaults"), so non-standard sizes (the toy models' norm groups,
head counts, VAE scaling factor, prediction type) load without --config-from. Tensors keep their dtype.
Used by python/tests/test_single_file.py: the folder and the single file must give identical edits.
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ldm_names  # noqa: E402

DTYPES = {"F16": np.float16, "F32": np.float32, "I64": np.int64, "F64": np.float64, "I32": np.int32}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def read_safetensors(path):
    """{name: numpy array} of a .safetensors file (F16/F32/F64/I32/I64)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        if v["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {k}: dtype {v['dtype']} not supported by this converter")
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=DTYPES[v["dtype"]]).reshape(v["shape"])
    return out


def write_safetensors(tensors, path, metadata):
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        b = a.tobytes()
        header[k] = {"dtype": NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def component(folder, name):
    d = os.path.join(folder, name)
    files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"{d}: no .safetensors weights")
    sd = {}
    for f in files:
        sd.update(read_safetensors(os.path.join(d, f)))
    cfg_name = "scheduler_config.json" if name == "scheduler" else "config.json"
    with open(os.path.join(d, cfg_name)) as f:
        cfg = json.load(f)
    return sd, cfg


def convert(folder, out):
    unet, ucfg = component(folder, "unet")
    vae, vcfg = component(folder, "vae")
    text, tcfg = component(folder, "text_encoder")
    with open(os.path.join(folder, "scheduler", "scheduler_config.json")) as f:
        scfg = json.load(f)
    if tcfg.get("model_type", "clip_text_model") != "clip_text_model" or "text_projection.weight" in text:
        raise ValueError(f"{folder}: only SD 1.x-style CLIP text encoders are converted")
    text = {(k[len("text_model."):] if k.startswith("text_model.") else k): v for k, v in text.items()}
    n_pos = tcfg.get("max_position_embeddings", 77)
    tensors = {}
    tensors.update(ldm_names.unet_to_ldm(unet, ucfg))
    tensors.update(ldm_names.vae_to_ldm(vae, vcfg))
    tensors.update(ldm_names.clip_to_ldm(text, np.arange(n_pos, dtype=np.int64)[None]))
    meta = {"format": "pt", "diffedit.unet_config": json.dumps(ucfg), "diffedit.vae_config": json.dumps(vcfg),
            "diffedit.text_config": json.dumps(tcfg), "diffedit.scheduler_config": json.dumps(scfg),
            "modelspec.prediction_type": scfg.get("prediction_type", "epsilon")}
    hints = os.path.join(folder, "diffedit.json")  # the model's recommended edit settings
    if os.path.exists(hints):
        with open(hints) as f:
            meta["diffedit.edit_defaults"] = json.dumps(json.load(f))
    write_safetensors(tensors, out, meta)
    return len(tensors)


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[0] + "\nusage: to_single_file.py FOLDER OUT.safetensors", file=sys.stderr)
        sys.exit(2)
    n = convert(sys.argv[1], sys.argv[2])
    print(f"{sys.argv[2]}: {n} tensors, {os.path.getsize(sys.argv[2]) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
