#!/usr/bin/env python3
"""Reference outputs of `edit --method inpaint` (issue 18), for the Swift parity tests.

Developers run it (CI does not: it needs PyTorch + diffusers):
    python3 tools/make_inpaint_fixtures.py [--model Tests/Fixtures/sd1] [--out Tests/Fixtures/edit]

The model: the sd1 fixture with a random (seeded) 9-input-channel UNet, as SD 1.x/2.x inpainting checkpoints
have (4 latent + 1 mask + 4 masked-image-latent channels): out/inpaint/model (diffusers folder; the other parts
are links to the sd1 fixture). The single-file layout is not committed (fixture budget): InpaintTests builds it
from Tests/Fixtures/sd1.safetensors with this UNet's tensors.

Reference: diffusers StableDiffusionInpaintPipeline with DDIM built from the checkpoint's scheduler config, the
VAE posterior mean instead of a sample (diffedit encodes with the mean; the pipeline's `retrieve_latents` is
patched to argmax) and the saved noise (its `randn_tensor` is patched).

Cases (out/<case>/): inpaint (strength 1: pure noise) and inpaint_half (strength 0.6: the input's latents
noised to the first timestep). Files: input.png, mask.png (GRAY8, 255 = repaint, edges off the 8-pixel grid),
noise.npy [1,4,h,w], latents.npy (final latents), image.npy [1,3,H,W] in [0,1] (decoded, before any overlay);
described in out/inpaint_manifest.json.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_edit_fixtures import decode, make_input, make_variant_model, save, STEPS, GUIDANCE  # noqa: E402

import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint as inp  # noqa: E402
from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline  # noqa: E402


def make_inpaint_model(sd1, out):
    """The sd1 fixture with a 9-input-channel UNet (random, seeded), saved in fp16 as published checkpoints are."""
    def tweak(unet):
        # random init leaves the mask/masked-image channels' influence small: make them matter
        unet.conv_in.weight[:, 4:] *= 4
    make_variant_model(sd1, out, 9, "StableDiffusionInpaintPipeline", 4321, tweak)


def make_mask(w, h):
    """255 over a box around the input's red disc (edges off the 8-pixel latent grid), 0 elsewhere."""
    m = np.zeros((h, w), dtype=np.uint8)
    m[int(0.17 * h):int(0.77 * h) + 1, int(0.09 * w):int(0.55 * w) + 1] = 255
    return m


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--model", default=os.path.join(here, "Tests/Fixtures/sd1"))
    ap.add_argument("--out", default=os.path.join(here, "Tests/Fixtures/edit"))
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    mdir = os.path.join(args.out, "inpaint", "model")
    make_inpaint_model(args.model, mdir)

    pipe = StableDiffusionInpaintPipeline.from_pretrained(mdir, safety_checker=None,
                                                          requires_safety_checker=False).to(torch.float32)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    vf = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    size = pipe.unet.config.sample_size * vf
    img = make_input(size, size)
    mask = make_mask(size, size)

    orig_retrieve, orig_randn = inp.retrieve_latents, inp.randn_tensor
    inp.retrieve_latents = lambda enc, generator=None, sample_mode="sample": orig_retrieve(enc, sample_mode="argmax")
    g = torch.Generator().manual_seed(7)
    manifest = {"steps": STEPS, "guidance": GUIDANCE, "size": size, "scheduler": "ddim",
                "model": "inpaint/model", "cases": {}}
    for name, strength in (("inpaint", 1.0), ("inpaint_half", 0.6)):
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        Image.fromarray(img).save(os.path.join(d, "input.png"))
        Image.fromarray(mask, mode="L").save(os.path.join(d, "mask.png"))
        noise = torch.randn((1, 4, size // vf, size // vf), generator=g)
        save(os.path.join(d, "noise.npy"), noise)
        inp.randn_tensor = lambda shape, generator=None, device=None, dtype=None, **kw: noise.clone()
        case = {"prompt": "a blue circle on a white background", "negative_prompt": "", "strength": strength}
        out = pipe(prompt=case["prompt"], negative_prompt=case["negative_prompt"], image=Image.fromarray(img),
                   mask_image=Image.fromarray(mask, mode="L"), strength=strength, num_inference_steps=STEPS,
                   guidance_scale=GUIDANCE, height=size, width=size, output_type="latent").images
        save(os.path.join(d, "latents.npy"), out)
        save(os.path.join(d, "image.npy"), decode(pipe.vae, out))
        # how far the mask conditioning moves the result (the test tolerance is 1e-3): a mask one box smaller
        other = mask.copy()
        other[:, : int(0.3 * size)] = 0
        alt = pipe(prompt=case["prompt"], negative_prompt=case["negative_prompt"], image=Image.fromarray(img),
                   mask_image=Image.fromarray(other, mode="L"), strength=strength, num_inference_steps=STEPS,
                   guidance_scale=GUIDANCE, height=size, width=size, output_type="latent").images
        effect = float((alt - out).norm() / out.norm())
        manifest["cases"][name] = {**case, "method": "inpaint", "other_mask_rel_change": effect}
    inp.retrieve_latents, inp.randn_tensor = orig_retrieve, orig_randn
    json.dump(manifest, open(os.path.join(args.out, "inpaint_manifest.json"), "w"), indent=2)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
