#!/usr/bin/env python3
"""SDXL LoRA fixtures (issue 20): LoRA files for the tiny SDXL model (Tests/Fixtures/sdxl/model) and diffusers'
final latents with each fused (developers run this; CI only reads its outputs).

    python3 tools/make_sdxl_lora_fixtures.py [--out Tests/Fixtures/sdxl]

Writes out/lora/:
- peft.safetensors: diffusers' `StableDiffusionXLPipeline.save_lora_weights` of PEFT adapters on the UNet and both
  text encoders (`unet.*`, `text_encoder.text_model.*`, `text_encoder_2.text_model.*`), lora_alpha 6, rank 4.
- kohya.safetensors: the same adapters in kohya's SDXL spelling (`lora_unet_<module>`, `lora_te1_text_model_*`,
  `lora_te2_text_model_*`, `.lora_down.weight` / `.lora_up.weight` / `.alpha` 6).
- manifest.json, <case>_latents.npy: `load_lora_weights(file)`, `fuse_lora(lora_scale=0.7)`, then the generate
  case of out/manifest.json (same prompt, steps, guidance, x_T): final latents; `moved` = how far from the base.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_lora_fixtures as mlf  # noqa: E402  (peft version shim)

from diffusers import StableDiffusionXLPipeline  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE, RANK = 0.7, 4
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def load(fix):
    p = StableDiffusionXLPipeline.from_pretrained(os.path.join(fix, "model"), torch_dtype=torch.float32)
    p.set_progress_bar_config(disable=True)
    return p


def generate(pipe, man, noise):
    c = man["cases"]["generate"]
    size = man["size"]
    return pipe(prompt=c["prompt"], num_inference_steps=man["steps"], guidance_scale=man["guidance"], height=size,
                width=size, latents=noise.clone(), output_type="latent").images.numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "Fixtures", "sdxl"))
    fix = ap.parse_args().out
    out = os.path.join(fix, "lora")
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    man = json.load(open(os.path.join(fix, "manifest.json")))
    noise = torch.from_numpy(np.load(os.path.join(fix, "generate", "noise.npy")))
    base = generate(load(fix), man, noise)

    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    pipe = load(fix)
    pipe.unet.add_adapter(LoraConfig(r=RANK, lora_alpha=6, target_modules=UNET_TARGETS, init_lora_weights="gaussian"))
    for te in (pipe.text_encoder, pipe.text_encoder_2):
        te.add_adapter(LoraConfig(r=RANK, lora_alpha=6, target_modules=TEXT_TARGETS, init_lora_weights="gaussian"))
    g = torch.Generator().manual_seed(2001)
    for model in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
        for name, p in sorted(model.named_parameters()):
            if "lora_" in name:
                p.copy_((torch.randn(p.shape, generator=g) * (0.8 / p[0].numel() ** 0.5)).half().float())

    def te_sd(m):
        sd = get_peft_model_state_dict(m)
        return {("text_model." + k if not k.startswith("text_model.") else k): v.half() for k, v in sd.items()}
    unet_sd = {k: v.half() for k, v in get_peft_model_state_dict(pipe.unet).items()}
    t1, t2 = te_sd(pipe.text_encoder), te_sd(pipe.text_encoder_2)
    StableDiffusionXLPipeline.save_lora_weights(out, unet_lora_layers=unet_sd, text_encoder_lora_layers=t1,
                                                text_encoder_2_lora_layers=t2, weight_name="peft.safetensors",
                                                safe_serialization=True)
    # kohya spelling of the same adapters
    kohya = {}
    for prefix, sd in (("lora_unet_", unet_sd), ("lora_te1_", t1), ("lora_te2_", t2)):
        for k, v in sd.items():
            mod, role = k.rsplit(".lora_", 1)
            name = prefix + mod.replace(".", "_")
            kohya[name + (".lora_down.weight" if role.startswith("A") else ".lora_up.weight")] = v
            kohya[name + ".alpha"] = torch.tensor(6.0, dtype=torch.float16)
    mlf.save(kohya, os.path.join(out, "kohya.safetensors"))

    manifest = {"scale": SCALE, "case": "generate", "cases": {}}
    for name in ("peft", "kohya"):
        p = load(fix)
        p.load_lora_weights(out, weight_name=f"{name}.safetensors")
        p.fuse_lora(lora_scale=SCALE)
        lat = generate(p, man, noise)
        moved = mlf.rel(lat, base)
        np.save(os.path.join(out, f"{name}_latents.npy"), lat.astype(np.float32))
        manifest["cases"][name] = {"file": f"{name}.safetensors", "latents": f"{name}_latents.npy", "moved": moved}
        print(f"{name}: moved {moved:.4f}")
        assert moved > 0.05, (name, moved)
    json.dump(manifest, open(os.path.join(out, "manifest.json"), "w"), indent=2)
    print("wrote", out, sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)), "bytes")


if __name__ == "__main__":
    main()
