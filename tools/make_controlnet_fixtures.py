#!/usr/bin/env python3
"""ControlNet fixtures and reference outputs (issue 19), for the Swift parity tests.

Developers run it (CI does not: it needs PyTorch + diffusers + opencv-python-headless):
    pip install opencv-python-headless
    python3 tools/make_controlnet_fixtures.py [--model Tests/Fixtures/sd1] [--out Tests/Fixtures/controlnet]

Two tiny random ControlNets = ControlNetModel.from_unet(fixture UNet) with a small conditioning embedding,
their zero convolutions (controlnet_down_blocks, controlnet_mid_block, the embedding's conv_out) drawn non-zero
so that they move the latents:
  cn_a/                  diffusers ControlNetModel folder (config.json + diffusion_pytorch_model.safetensors)
  cn_b.safetensors       the original single-file layout (control_model.*: input_hint_block, zero_convs,
                         middle_block_out, the LDM UNet names), as lllyasviel's control_*.safetensors
Reference cases (DDIM from the fixture's scheduler config, final latents before decoding):
  generate       StableDiffusionControlNetPipeline, cn_a, control.png, saved noise
  img2img        StableDiffusionControlNetImg2ImgPipeline, cn_b, control = cv2.Canny of the input
                 (VAE posterior mean and the saved noise patched in, as tools/make_edit_fixtures.py does)
  multi          generate with MultiControlNet [cn_a, cn_b], own scales and start/end fractions
  guess          img2img with cn_a in guess mode
Each case also stores latents_plain.npy (the same run without ControlNet): the manifest records how far the
ControlNet moves the latents (relative L2), which must dwarf the tests' tolerance.
SDXL (--xl, Tests/Fixtures/sdxl/model): cn_xl/ = from_unet of the SDXL fixture UNet (add_embedding copied), case
  xl_generate = StableDiffusionXLControlNetPipeline (the model's Euler scheduler, guidance 5, 6 steps).
Canny: canny/<name>.png natural-looking test images and canny/<name>_canny.png = cv2.Canny(cv2.cvtColor(img,
COLOR_RGB2GRAY), 100, 200), so the Swift test needs no OpenCV.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ldm_names import unet_to_ldm  # noqa: E402

from diffusers import (ControlNetModel, DDIMScheduler, StableDiffusionControlNetImg2ImgPipeline,  # noqa: E402
                       StableDiffusionControlNetPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline)
from diffusers.models.controlnets import MultiControlNetModel  # noqa: E402

STEPS = 8
GUIDANCE = 7.5
PROMPT = "a blue circle on a white background"


def controlnet_to_ldm(sd, cfg):
    """diffusers ControlNetModel state dict -> control_model.* (the original ControlNet layout)."""
    enc = {k: v for k, v in sd.items() if not k.startswith(("controlnet_", "controlnet_cond_embedding"))}
    out = {"control_model." + k[len("model.diffusion_model."):]: v for k, v in unet_to_ldm(enc, cfg).items()}
    n_blocks = len(cfg["conditioning_embedding_out_channels"]) * 2 - 2
    hint = {"conv_in": 0, "conv_out": 2 * (n_blocks + 1)}
    hint.update({f"blocks.{i}": 2 * (i + 1) for i in range(n_blocks)})
    for k, v in sd.items():
        if k.startswith("controlnet_cond_embedding."):
            mod, leaf = k[len("controlnet_cond_embedding."):].rsplit(".", 1)
            out[f"control_model.input_hint_block.{hint[mod]}.{leaf}"] = v
        elif k.startswith("controlnet_down_blocks."):
            i, leaf = k[len("controlnet_down_blocks."):].split(".", 1)
            out[f"control_model.zero_convs.{i}.0.{leaf}"] = v
        elif k.startswith("controlnet_mid_block."):
            out["control_model.middle_block_out.0." + k[len("controlnet_mid_block."):]] = v
    assert len(out) == len(sd), (len(out), len(sd))
    return out


def make_controlnet(unet, seed):
    torch.manual_seed(seed)
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 16, 16))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        # the conditioning embedding is randomly initialised; its conv_out and the zero convs start at zero
        zero = [cn.controlnet_cond_embedding.conv_out, cn.controlnet_mid_block, *cn.controlnet_down_blocks]
        for m in zero:
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.3)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
    # stored as float16 (small fixtures): the reference runs on exactly the stored values
    return cn.half().float().eval()


def natural_images(rng):
    """Natural-looking test images: shaded shapes on a textured, lit background with sensor noise; smooth
    multi-scale noise (foliage/clouds); a photo-like scene with soft edges. uint8 RGB."""
    imgs = {}
    h, w = 96, 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def value_noise(scale, seed):
        r = np.random.default_rng(seed)
        small = r.random((h // scale + 2, w // scale + 2)).astype(np.float32)
        return cv2.resize(small, (w + 2 * scale, h + 2 * scale), interpolation=cv2.INTER_CUBIC)[scale:scale + h, scale:scale + w]

    light = 0.55 + 0.35 * (xx / w) * (1 - 0.5 * yy / h)
    tex = sum(value_noise(s, 10 + s) / (1 + i) for i, s in enumerate([32, 16, 8, 4]))
    base = np.stack([light * (150 + 40 * tex), light * (170 + 30 * tex), light * (120 + 50 * tex)], -1)
    disc = ((xx - 40) ** 2 + (yy - 50) ** 2) ** 0.5
    shade = np.clip(1.2 - disc / 30, 0.3, 1)
    alpha = np.clip(26 - disc, 0, 1)[..., None]
    base = base * (1 - alpha) + alpha * np.stack([210 * shade, 60 * shade, 50 * shade], -1)
    box = np.clip(np.minimum(np.minimum(xx - 75, 112 - xx), np.minimum(yy - 20, 70 - yy)), 0, 1)[..., None]
    base = base * (1 - box) + box * np.stack([60 + 30 * tex, 90 + 20 * tex, 170 + 0 * tex], -1)
    imgs["scene"] = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)

    clouds = sum(value_noise(s, 50 + s) * (0.6 ** i) for i, s in enumerate([48, 24, 12, 6, 3]))
    clouds = (clouds - clouds.min()) / (clouds.max() - clouds.min())
    clouds = 0.5 + 0.5 * np.tanh((clouds - 0.5) * 8)                     # leaves against sky: sharp-ish borders
    imgs["texture"] = np.clip(np.stack([60 + 150 * clouds, 120 + 100 * clouds ** 2, 80 + 60 * (1 - clouds)], -1)
                              + rng.normal(0, 2, (h, w, 3)), 0, 255).astype(np.uint8)

    sky = np.stack([120 + 80 * yy / h, 160 + 60 * yy / h, 230 - 20 * yy / h], -1)
    hill = yy > 60 + 12 * np.sin(xx / 17) + 6 * np.sin(xx / 5.3)
    ground = np.stack([70 + 40 * tex, 120 + 50 * tex, 50 + 20 * tex], -1)
    img = np.where(hill[..., None], ground, sky)
    trunk = (abs(xx - 95) < 4) & (yy > 35) & (yy < 75)
    img[trunk] = (90, 60, 40)
    crown = ((xx - 95) ** 2 / 1.4 + (yy - 32) ** 2) < 18 ** 2
    img[crown] = np.stack([40 + 50 * tex, 110 + 60 * tex, 40 + 20 * tex], -1)[crown]
    img = cv2.GaussianBlur(img.astype(np.float32), (3, 3), 0.8)
    imgs["landscape"] = np.clip(img + rng.normal(0, 2.5, img.shape), 0, 255).astype(np.uint8)
    return imgs


def rel(a, b):
    return float((a - b).norm() / b.norm())


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--model", default=os.path.join(here, "Tests/Fixtures/sd1"))
    ap.add_argument("--out", default=os.path.join(here, "Tests/Fixtures/controlnet"))
    ap.add_argument("--xl", action="store_true", help="only the SDXL ControlNet case (added to the manifest)")
    ap.add_argument("--sdxl", default=os.path.join(here, "Tests/Fixtures/sdxl/model"))
    args = ap.parse_args()
    if args.xl:
        return make_xl(args)
    torch.set_grad_enabled(False)
    out = args.out
    os.makedirs(out, exist_ok=True)
    sys.path.insert(0, os.path.join(here, "tools"))
    import make_edit_fixtures as ef  # the edit fixtures' input image and helpers

    # ---- Canny vs OpenCV on natural-looking images -------------------------------------------------------
    rng = np.random.default_rng(7)
    os.makedirs(os.path.join(out, "canny"), exist_ok=True)
    for name, img in natural_images(rng).items():
        Image.fromarray(img).save(os.path.join(out, "canny", name + ".png"))
        e = cv2.Canny(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 100, 200)
        Image.fromarray(e).save(os.path.join(out, "canny", name + "_canny.png"))
        print(f"canny {name}: {int((e > 0).sum())} edge pixels of {e.size}")

    # ---- the ControlNets ---------------------------------------------------------------------------------
    pipe = StableDiffusionPipeline.from_pretrained(args.model, safety_checker=None,
                                                   requires_safety_checker=False).to(torch.float32)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    cn_a = make_controlnet(pipe.unet, 100)
    cn_b = make_controlnet(pipe.unet, 200)
    cn_a.half().save_pretrained(os.path.join(out, "cn_a"))
    cn_a.float()
    sd_b = {k: v.contiguous().half() for k, v in cn_b.state_dict().items()}
    save_file(controlnet_to_ldm(sd_b, dict(cn_b.config)), os.path.join(out, "cn_b.safetensors"))

    vf = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    size = pipe.unet.config.sample_size * vf
    img = ef.make_input(size, size)
    Image.fromarray(img).save(os.path.join(out, "input.png"))
    canny = cv2.Canny(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 100, 200)
    Image.fromarray(np.stack([canny] * 3, -1)).save(os.path.join(out, "input_canny.png"))
    # a user control image for generate: a scribble-like map (white strokes on black)
    yy, xx = np.mgrid[0:size, 0:size]
    ctrl = np.zeros((size, size, 3), np.uint8)
    ctrl[(abs(((xx - 24) ** 2 + (yy - 30) ** 2) ** 0.5 - 14) < 1.5)] = 255
    ctrl[(abs(xx - 46) < 1) & (yy > 10) & (yy < 54)] = 255
    Image.fromarray(ctrl).save(os.path.join(out, "control.png"))
    z0 = ef.encode_mean(pipe.vae, img)
    lat_shape = (1, 4, size // vf, size // vf)
    g = torch.Generator().manual_seed(19)
    manifest = {"steps": STEPS, "guidance": GUIDANCE, "size": size, "scheduler": "ddim", "prompt": PROMPT, "cases": {}}

    def to01(a):
        return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255

    def case_dir(name):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        return d

    def generate(controlnet, image, noise, plain=False, **kw):
        if plain:
            return pipe(prompt=PROMPT, negative_prompt="", num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                        latents=noise.clone(), output_type="latent").images
        p = StableDiffusionControlNetPipeline(**pipe.components, controlnet=controlnet)
        p.set_progress_bar_config(disable=True)
        return p(prompt=PROMPT, negative_prompt="", image=image, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                 latents=noise.clone(), output_type="latent", **kw).images

    import diffusers.pipelines.controlnet.pipeline_controlnet_img2img as ci2i
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as i2i

    def img2img(controlnet, image, noise, strength, plain=False, **kw):
        mod = i2i if plain else ci2i
        orig = mod.randn_tensor
        mod.randn_tensor = lambda shape, generator=None, device=None, dtype=None, **k: noise.clone()
        try:
            if plain:
                p = StableDiffusionImg2ImgPipeline(**pipe.components)
                p.set_progress_bar_config(disable=True)
                return p(prompt=PROMPT, negative_prompt="", image=z0, strength=strength, num_inference_steps=STEPS,
                         guidance_scale=GUIDANCE, output_type="latent").images
            p = StableDiffusionControlNetImg2ImgPipeline(**pipe.components, controlnet=controlnet)
            p.set_progress_bar_config(disable=True)
            return p(prompt=PROMPT, negative_prompt="", image=z0, control_image=image, strength=strength,
                     num_inference_steps=STEPS, guidance_scale=GUIDANCE, output_type="latent", **kw).images
        finally:
            mod.randn_tensor = orig

    def record(name, d, lat, plain, **case):
        ef.save(os.path.join(d, "latents.npy"), lat)
        ef.save(os.path.join(d, "latents_plain.npy"), plain)
        case["controlnet_moves_latents_rel_l2"] = rel(lat, plain)
        manifest["cases"][name] = case
        print(f"{name}: ControlNet moves the latents by {case['controlnet_moves_latents_rel_l2']:.3f} (relative L2)")

    # generate: cn_a (folder) with control.png
    d = case_dir("generate")
    noise = torch.randn(lat_shape, generator=g)
    ef.save(os.path.join(d, "noise.npy"), noise)
    lat = generate(cn_a, to01(ctrl), noise, controlnet_conditioning_scale=1.0)
    record("generate", d, lat, generate(None, None, noise, plain=True), method="generate",
           controlnets=["cn_a"], control=["control.png"], scales=[1.0], starts=[0.0], ends=[1.0])

    # img2img: cn_b (single file) with the input's canny map
    d = case_dir("img2img")
    noise = torch.randn(lat_shape, generator=g)
    ef.save(os.path.join(d, "noise.npy"), noise)
    canny3 = to01(np.stack([canny] * 3, -1))
    lat = img2img(cn_b, canny3, noise, 0.75, controlnet_conditioning_scale=0.8)
    record("img2img", d, lat, img2img(None, None, noise, 0.75, plain=True), method="sdedit", strength=0.75,
           controlnets=["cn_b.safetensors"], control=["canny"], scales=[0.8], starts=[0.0], ends=[1.0])

    # multi: both nets, own scales and step fractions
    d = case_dir("multi")
    noise = torch.randn(lat_shape, generator=g)
    ef.save(os.path.join(d, "noise.npy"), noise)
    multi = MultiControlNetModel([cn_a, cn_b])
    lat = generate(multi, [to01(ctrl), canny3], noise, controlnet_conditioning_scale=[0.7, 1.3],
                   control_guidance_start=[0.0, 0.25], control_guidance_end=[0.5, 1.0])
    record("multi", d, lat, generate(None, None, noise, plain=True), method="generate",
           controlnets=["cn_a", "cn_b.safetensors"], control=["control.png", "input_canny.png"], scales=[0.7, 1.3],
           starts=[0.0, 0.25], ends=[0.5, 1.0])

    # guess mode, img2img with cn_a and the tile map (the input itself)
    d = case_dir("guess")
    noise = torch.randn(lat_shape, generator=g)
    ef.save(os.path.join(d, "noise.npy"), noise)
    lat = img2img(cn_a, to01(img), noise, 0.75, controlnet_conditioning_scale=1.0, guess_mode=True)
    record("guess", d, lat, img2img(None, None, noise, 0.75, plain=True), method="sdedit", strength=0.75,
           controlnets=["cn_a"], control=["tile"], scales=[1.0], starts=[0.0], ends=[1.0], guess_mode=True)

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def make_xl(args):
    """cn_xl + the xl_generate case, added to an existing manifest."""
    from diffusers import StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline
    torch.set_grad_enabled(False)
    out = args.out
    pipe = StableDiffusionXLPipeline.from_pretrained(args.sdxl).to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    cn = make_controlnet(pipe.unet, 300)
    cn.half().save_pretrained(os.path.join(out, "cn_xl"))
    cn.float()
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    yy, xx = np.mgrid[0:size, 0:size]
    ctrl = np.zeros((size, size, 3), np.uint8)
    ctrl[(abs(((xx - 30) ** 2 + (yy - 28) ** 2) ** 0.5 - 12) < 1.5)] = 255
    Image.fromarray(ctrl).save(os.path.join(out, "control_xl.png"))
    g = torch.Generator().manual_seed(23)
    noise = torch.randn((1, 4, pipe.unet.config.sample_size, pipe.unet.config.sample_size), generator=g)
    d = os.path.join(out, "xl_generate")
    os.makedirs(d, exist_ok=True)
    save_np = lambda path, t: np.save(path, t.detach().float().numpy().astype(np.float32))  # noqa: E731
    save_np(os.path.join(d, "noise.npy"), noise)
    steps, guidance, prompt = 6, 5.0, "a blue circle on a white background"
    p = StableDiffusionXLControlNetPipeline(**{k: v for k, v in pipe.components.items()
                                               if k not in ("image_encoder", "feature_extractor")}, controlnet=cn)
    p.set_progress_bar_config(disable=True)
    img = torch.from_numpy(ctrl).permute(2, 0, 1)[None].float() / 255
    lat = p(prompt=prompt, image=img, num_inference_steps=steps, guidance_scale=guidance, height=size, width=size,
            latents=noise.clone(), controlnet_conditioning_scale=1.0, output_type="latent").images
    plain = pipe(prompt=prompt, num_inference_steps=steps, guidance_scale=guidance, height=size, width=size,
                 latents=noise.clone(), output_type="latent").images
    save_np(os.path.join(d, "latents.npy"), lat)
    save_np(os.path.join(d, "latents_plain.npy"), plain)
    mpath = os.path.join(out, "manifest.json")
    manifest = json.load(open(mpath))
    manifest["cases"]["xl_generate"] = {"method": "generate", "model": "sdxl", "scheduler": "euler", "steps": steps,
                                        "guidance": guidance, "negative_prompt": None, "controlnets": ["cn_xl"],
                                        "control": ["control_xl.png"], "scales": [1.0], "starts": [0.0], "ends": [1.0],
                                        "controlnet_moves_latents_rel_l2": rel(lat, plain)}
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"xl_generate: ControlNet moves the latents by {rel(lat, plain):.3f} (relative L2)")


if __name__ == "__main__":
    main()
