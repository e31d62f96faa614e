#!/usr/bin/env python3
"""Export the trained toy models as diffusers folders with fp16 safetensors.

    python3 tools/train_export.py --work /work/toytrain --out models

Writes models/toy-instruct (StableDiffusionInstructPix2PixPipeline layout, the default model) and, when
WORK/t2i exists, models/toy-sd (StableDiffusionPipeline layout). Both share WORK/tokenizer and the VAE:
WORK/vae_dec (train_vae.py --decoder-only) where it exists, else WORK/vae; --vae NAME takes WORK/NAME
instead (a decoder trained with train_vae.py --edit-model belongs to that one UNet: export it with --only
instruct). The one taken is printed.
Text-encoder tensors are written with the real-world `text_model.` prefix (as published SD folders have
them; transformers 5 would otherwise drop it). The scheduler is SD1's DDIMScheduler config with the
run's prediction_type (train_unet.py --prediction).
"""
import argparse
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "toyworld"))
import sdparts  # noqa: E402


def fix_text_encoder(folder):
    from safetensors.torch import load_file, save_file
    p = os.path.join(folder, "text_encoder", "model.safetensors")
    sd = load_file(p)
    sd = {(k if k.startswith("text_model.") else "text_model." + k): v.contiguous() for k, v in sd.items()}
    save_file(sd, p, metadata={"format": "pt"})


def models_from(kind, work, from_ckpt, name):
    """(unet, text encoder, prediction type) of training run WORK/<name>."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    src = os.path.join(work, name)
    if not from_ckpt:
        pt = os.path.join(src, "prediction_type")
        pred = open(pt).read().strip() if os.path.exists(pt) else "epsilon"
        return (UNet2DConditionModel.from_pretrained(os.path.join(src, "unet")),
                CLIPTextModel.from_pretrained(os.path.join(src, "text_encoder")), pred)
    ck = torch.load(src + ".ckpt", map_location="cpu", weights_only=False)
    # runs of train_unet.py record their UNet config (--transformer-layers); older checkpoints have the default
    unet = UNet2DConditionModel(**ck.get("unet_config", sdparts.unet_config(8 if kind == "instruct" else 4)))
    unet.load_state_dict(ck["unet"])
    te = CLIPTextModel(CLIPTextConfig(**sdparts.TEXT_CONFIG))
    te.load_state_dict(ck["te"])
    print(f"{kind}: checkpoint {name} at step {ck['step']}")
    return unet, te, ck.get("prediction", "epsilon")


def check_decoder_owner(vae_dir, out_dir):
    """A decoder trained with train_vae.py --edit-model (vae_dir/edit_model.json) was fitted to that model's
    UNet latents: say so when the exported UNet is another one (the edits would decode worse than with the
    decoder it was trained beside)."""
    rec = os.path.join(vae_dir, "edit_model.json")
    if not os.path.exists(rec):
        return
    want = json.load(open(rec))
    got = sdparts.unet_sha256(out_dir)
    if got == want["unet_sha256"]:
        print(f"{vae_dir}: decoder trained on this UNet's edit latents (sha256 {got[:12]}...)")
    else:
        print(f"WARNING: {vae_dir}'s decoder was trained on the edit latents of {want['edit_model']} (UNet sha256 "
              f"{want['unet_sha256'][:12]}...), but the exported UNet is another one ({got[:12]}...): retrain the "
              f"decoder with train_vae.py --decoder-only --edit-model <this export>", file=sys.stderr)


def export(kind, work, out_dir, from_ckpt=False, name=None, edit_defaults=None, vae_name=None):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline
    from transformers import CLIPTokenizer
    if vae_name:
        vae_dir = os.path.join(work, vae_name)
        if not os.path.exists(os.path.join(vae_dir, "config.json")):
            raise SystemExit(f"--vae {vae_name}: no VAE folder at {vae_dir}")
    else:
        vae_dir = os.path.join(work, "vae_dec") if os.path.exists(os.path.join(work, "vae_dec")) else os.path.join(work, "vae")
    vae = AutoencoderKL.from_pretrained(vae_dir)  # vae_dec: same encoder, fine-tuned decoder
    print(f"{kind}: VAE from {vae_dir}")
    unet, te, pred = models_from(kind, work, from_ckpt, name or ("instruct" if kind == "instruct" else "t2i"))
    tok = CLIPTokenizer.from_pretrained(os.path.join(work, "tokenizer"))
    sched = DDIMScheduler(**{**sdparts.SCHEDULER_CONFIG, "prediction_type": pred})
    cls = StableDiffusionInstructPix2PixPipeline if kind == "instruct" else StableDiffusionPipeline
    pipe = cls(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched, safety_checker=None,
               feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    fix_text_encoder(out_dir)
    check_decoder_owner(vae_dir, out_dir)
    if edit_defaults:  # the model's recommended edit settings (read by diffedit for unset options)
        with open(os.path.join(out_dir, "diffedit.json"), "w") as f:
            json.dump(json.loads(edit_defaults), f, indent=1)
            f.write("\n")
    # the tokenizer folder as published SD folders have it: the CLIP BPE files (transformers 5 would
    # write only tokenizer.json)
    tdir = os.path.join(out_dir, "tokenizer")
    shutil.rmtree(tdir)
    shutil.copytree(os.path.join(work, "tokenizer"), tdir)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out_dir) for f in fs)
    print(f"{out_dir}: {total / 1e6:.2f} MB")
    print(json.dumps(json.load(open(os.path.join(out_dir, "model_index.json")))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/work/toytrain")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                  "models"))
    ap.add_argument("--from-ckpt", action="store_true",
                    help="export the latest training checkpoints (WORK/<name>.ckpt) instead of the final models")
    ap.add_argument("--instruct-name", default="instruct", help="training run name (train_unet.py --name)")
    ap.add_argument("--t2i-name", default="t2i")
    ap.add_argument("--only", choices=["instruct", "t2i"], default=None)
    ap.add_argument("--instruct-defaults", default=None,
                    help='JSON written to toy-instruct/diffedit.json, e.g. \'{"guidance": 4.0}\'')
    ap.add_argument("--t2i-defaults", default=None, help="JSON written to toy-sd/diffedit.json")
    ap.add_argument("--vae", default=None, help="the VAE folder in WORK to export (default: vae_dec, else vae)")
    a = ap.parse_args()
    if a.only != "t2i":
        export("instruct", a.work, os.path.join(a.out, "toy-instruct"), a.from_ckpt, a.instruct_name,
               a.instruct_defaults, a.vae)
    t2i = os.path.join(a.work, a.t2i_name + ".ckpt" if a.from_ckpt else os.path.join(a.t2i_name, "unet"))
    if a.only != "instruct" and os.path.exists(t2i):
        export("t2i", a.work, os.path.join(a.out, "toy-sd"), a.from_ckpt, a.t2i_name, a.t2i_defaults, a.vae)


if __name__ == "__main__":
    main()
