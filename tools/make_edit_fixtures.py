#!/usr/bin/env python3
"""Reference outputs of the editing methods (issue 4), for the Swift parity tests.

Developers run it (CI does not: it needs PyTorch + diffusers):
    python3 tools/make_edit_fixtures.py [--model Tests/Fixtures/sd1] [--out Tests/Fixtures/edit]

Everything is seeded; noise is drawn here and saved, so Swift runs from the same noise.
All methods use DDIM (eta 0) built from the checkpoint's scheduler config, as diffedit's editor does.

Cases (out/<case>/, described in out/manifest.json):
  sdedit        StableDiffusionImg2ImgPipeline with the VAE posterior mean patched in and the saved noise.
  ddim          DDIMInverseScheduler with the source prompt at guidance 1, then DDIMScheduler with the target
                prompt under CFG (uncond = negative prompt, "" by default). inverted.npy = x_T.
  p2p_*         tools/p2p_reference.py (word swap + local blend, refinement, re-weighting) on inverted
                latents; uncond = source prompt (negative-prompt inversion).
  instruct      StableDiffusionInstructPix2PixPipeline on an 8-input-channel UNet made here
                (out/instruct/model: unet/ new, the other parts linked to the sd1 fixture).
Files: input.png (uint8 RGB), noise.npy [1,4,h,w], latents.npy (final latents before decoding),
image.npy [1,3,H,W] in [0,1], and for p2p mask.npy [1,1,h,w] (LocalBlend mask at the last step).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p_reference as p2p  # noqa: E402

from diffusers import (AutoencoderKL, DDIMInverseScheduler, DDIMScheduler, StableDiffusionImg2ImgPipeline,  # noqa: E402
                       StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline, UNet2DConditionModel)
from diffusers.models.attention_processor import AttnProcessor  # noqa: E402

STEPS = 8
GUIDANCE = 7.5


def make_input(w, h):
    """White background, a red disc on the left, a green square on the right (uint8 RGB)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.full((h, w, 3), 245, dtype=np.uint8)
    img[..., 2] = (200 + 40 * yy / max(h - 1, 1)).astype(np.uint8)
    disc = (xx - 0.32 * w) ** 2 + (yy - 0.5 * h) ** 2 <= (0.2 * min(w, h)) ** 2
    img[disc] = (220, 30, 40)
    sq = (abs(xx - 0.72 * w) <= 0.13 * w) & (abs(yy - 0.45 * h) <= 0.13 * h)
    img[sq] = (40, 170, 60)
    return img


def to_tensor(img):
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255 * 2 - 1      # [1,3,H,W] in [-1,1]


def save(path, t):
    np.save(path, t.detach().float().cpu().numpy().astype(np.float32))


@torch.no_grad()
def encode_mean(vae, img):
    return vae.encode(to_tensor(img)).latent_dist.mean * vae.config.scaling_factor


@torch.no_grad()
def decode(vae, lat):
    return (vae.decode(lat / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)


@torch.no_grad()
def embed(pipe, text):
    ids = pipe.tokenizer(text, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    return pipe.text_encoder(ids)[0]


@torch.no_grad()
def invert(pipe, z0, src_emb, steps, trajectory=False):
    """DDIM inversion: x_T, or with trajectory=True the list [x_0, x_t1, ..., x_T]."""
    inv = DDIMInverseScheduler.from_config(pipe.scheduler.config)
    inv.set_timesteps(steps)
    lat = z0
    traj = [z0]
    for t in inv.timesteps:
        eps = pipe.unet(lat, t, encoder_hidden_states=src_emb).sample
        lat = inv.step(eps, t, lat).prev_sample
        traj.append(lat)
    return traj if trajectory else lat


@torch.no_grad()
def ddim_sample(pipe, lat, uncond, cond, steps, g):
    sch = DDIMScheduler.from_config(pipe.scheduler.config)
    sch.set_timesteps(steps)
    for t in sch.timesteps:
        eps = pipe.unet(torch.cat([lat, lat]), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
        eu, ec = eps.chunk(2)
        lat = sch.step(eu + g * (ec - eu), t, lat).prev_sample
    return lat


@torch.no_grad()
def p2p_edit(pipe, zT, src_emb, tgt_emb, steps, g, ctrl, traj=None):
    """traj (the inversion's [x_0 .. x_T]): direct inversion (Ju et al. 2024) -- after each step the source
    branch is set back on the trajectory and the target moves by the same correction (diffedit's variant)."""
    sch = DDIMScheduler.from_config(pipe.scheduler.config)
    sch.set_timesteps(steps)
    lat = torch.cat([zT, zT])
    ehs = torch.cat([src_emb, src_emb, src_emb, tgt_emb])                  # NPI: uncond = source prompt
    for i, t in enumerate(sch.timesteps):
        ctrl.step = i
        eps = pipe.unet(torch.cat([lat, lat]), t, encoder_hidden_states=ehs).sample
        eu, ec = eps.chunk(2)
        lat = sch.step(eu + g * (ec - eu), t, lat).prev_sample
        if traj is not None:
            d = traj[len(sch.timesteps) - 1 - i] - lat[:1]
            lat = lat + d
        lat = ctrl.blend(lat)
    return lat


def make_variant_model(sd1, out, in_channels, class_name, seed, tweak=None):
    """The sd1 fixture with a random (seeded) UNet of `in_channels` inputs, saved in fp16 as published checkpoints
    are; the other parts are links to the fixture. `tweak(unet)` may adjust the weights before saving."""
    os.makedirs(out, exist_ok=True)
    cfg = dict(UNet2DConditionModel.load_config(os.path.join(sd1, "unet")))
    cfg["in_channels"] = in_channels
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(cfg)
    if tweak is not None:
        with torch.no_grad():
            tweak(unet)
    unet.to(torch.float16).save_pretrained(os.path.join(out, "unet"))
    for part in ("vae", "text_encoder", "tokenizer", "scheduler"):
        link = os.path.join(out, part)
        if not os.path.lexists(link):
            os.symlink(os.path.relpath(os.path.join(sd1, part), out), link)
    idx = json.load(open(os.path.join(sd1, "model_index.json")))
    idx["_class_name"] = class_name
    json.dump(idx, open(os.path.join(out, "model_index.json"), "w"), indent=2)


def make_instruct_model(sd1, out):
    """An InstructPix2Pix-shaped checkpoint: the sd1 fixture with an 8-input-channel UNet (random, seeded)."""
    make_variant_model(sd1, out, 8, "StableDiffusionInstructPix2PixPipeline", 1234)


ALIGNMENT_CASES = [
    ("a red circle on a white background", "a blue circle on a white background", {}),
    ("a cat sitting on a chair", "a lion sitting on a chair", {}),
    ("a photo of a dog", "a photo of a watercolour dog", {}),
    ("a red circle", "a big red circle next to a tiny green square", {"green": 2.0}),
    ("a cat, riding a bicycle!", "a zebra, riding a motorbike!", {"riding": 0.5}),
    ("a red circle on a white background", "a red circle on a white background", {"red": 3.0}),
]


def write_alignment(model, path):
    """Token alignment of tools/p2p_reference.py for a few prompt pairs (Swift: PromptAlignment)."""
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(os.path.join(model, "tokenizer"))
    out = []
    for src, tgt, rw in ALIGNMENT_CASES:
        c = {"source": src, "target": tgt, "reweight": rw}
        c["is_replace"] = len(src.split()) == len(tgt.split())
        if c["is_replace"]:
            m = p2p.replacement_mapper(tok, src, tgt).numpy()
            nz = np.nonzero(m)
            c["replace_nonzero"] = [[int(i), int(j), float(m[i, j])] for i, j in zip(*nz)]
        else:
            mp, al = p2p.refinement_mapper(tok, src, tgt)
            c["refine_mapper"] = [int(x) for x in mp]
            c["refine_alphas"] = [float(x) for x in al]
        a, b = p2p.blend_words(src, tgt, rw)
        c["blend_source"] = p2p.inds_of_words(tok, src, a)
        c["blend_target"] = p2p.inds_of_words(tok, tgt, b)
        if rw:
            eq = torch.ones(p2p.MAX_LEN)
            for i, w in enumerate(tgt.split()):
                if w in rw:
                    eq[p2p.word_inds(tok, tgt, i)] = rw[w]
            c["equalizer"] = [float(x) for x in eq]
        out.append(c)
    json.dump(out, open(path, "w"), indent=1)


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--model", default=os.path.join(here, "Tests/Fixtures/sd1"))
    ap.add_argument("--out", default=os.path.join(here, "Tests/Fixtures/edit"))
    ap.add_argument("--only-alignment", action="store_true", help="write alignment.json only")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    os.makedirs(args.out, exist_ok=True)
    write_alignment(args.model, os.path.join(args.out, "alignment.json"))
    if args.only_alignment:
        return

    pipe = StableDiffusionPipeline.from_pretrained(args.model, safety_checker=None,
                                                   requires_safety_checker=False).to(torch.float32)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    vf = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    size = pipe.unet.config.sample_size * vf
    lh = lw = pipe.unet.config.sample_size
    img = make_input(size, size)
    z0 = encode_mean(pipe.vae, img)
    g = torch.Generator().manual_seed(42)
    manifest = {"steps": STEPS, "guidance": GUIDANCE, "size": size, "scheduler": "ddim", "cases": {}}

    def case_dir(name):
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        Image.fromarray(img).save(os.path.join(d, "input.png"))
        return d

    # ---- sdedit: diffusers img2img with the posterior mean and the saved noise -------------------------
    d = case_dir("sdedit")
    noise = torch.randn(z0.shape, generator=g)
    save(os.path.join(d, "noise.npy"), noise)
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as i2i
    orig_randn = i2i.randn_tensor
    i2i.randn_tensor = lambda shape, generator=None, device=None, dtype=None, **kw: noise.clone()
    img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
    img2img.set_progress_bar_config(disable=True)
    case = {"prompt": "a blue circle on a white background", "negative_prompt": "", "strength": 0.75}
    out = img2img(prompt=case["prompt"], negative_prompt=case["negative_prompt"], image=z0,
                  strength=case["strength"], num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                  output_type="latent").images
    i2i.randn_tensor = orig_randn
    save(os.path.join(d, "latents.npy"), out)
    save(os.path.join(d, "image.npy"), decode(pipe.vae, out))
    manifest["cases"]["sdedit"] = {**case, "method": "sdedit"}

    # ---- ddim: inversion (source prompt, guidance 1) + CFG sampling -------------------------------------
    d = case_dir("ddim")
    case = {"source_prompt": "a red circle on a white background", "prompt": "a blue circle on a white background",
            "negative_prompt": ""}
    src = embed(pipe, case["source_prompt"])
    zT = invert(pipe, z0, src, STEPS)
    save(os.path.join(d, "inverted.npy"), zT)
    lat = ddim_sample(pipe, zT, embed(pipe, ""), embed(pipe, case["prompt"]), STEPS, GUIDANCE)
    save(os.path.join(d, "latents.npy"), lat)
    save(os.path.join(d, "image.npy"), decode(pipe.vae, lat))
    save(os.path.join(d, "encoded.npy"), z0)
    manifest["cases"]["ddim"] = {**case, "method": "ddim"}

    # ---- p2p -------------------------------------------------------------------------------------------
    bh = p2p.cross_heights(pipe.unet, (lh, lw))
    p2p_cases = {
        "p2p_swap": {"source_prompt": "a red circle on a white background",
                     "prompt": "a blue circle on a white background", "reweight": {}},
        "p2p_refine": {"source_prompt": "a red circle on a white background",
                       "prompt": "a big red circle on a white background", "reweight": {}},
        "p2p_reweight": {"source_prompt": "a red circle on a white background",
                         "prompt": "a red circle on a white background", "reweight": {"red": 3.0}},
        # direct inversion, no LocalBlend dilation, the toy model's attention-control fractions
        "p2p_direct": {"source_prompt": "a red circle on a white background",
                       "prompt": "a blue circle on a white background", "reweight": {},
                       "direct_inversion": True, "blend_dilation": 0, "cross_replace_steps": 1.0,
                       "self_replace_steps": 0.8},
    }
    for name, case in p2p_cases.items():
        case = {"method": "p2p", "cross_replace_steps": 0.8, "self_replace_steps": 0.4, "local_blend": True, **case}
        direct = case.get("direct_inversion", False)
        d = case_dir(name)
        src = embed(pipe, case["source_prompt"])
        tgt = embed(pipe, case["prompt"])
        pipe.unet.set_attn_processor(AttnProcessor())
        traj = invert(pipe, z0, src, STEPS, trajectory=True)
        zT = traj[-1]
        ctrl = p2p.P2PController(pipe.tokenizer, case["source_prompt"], case["prompt"], STEPS,
                                 cross_replace=case["cross_replace_steps"], self_replace=case["self_replace_steps"],
                                 reweight=case["reweight"], local_blend=True, blend_height=bh, latent_hw=(lh, lw),
                                 blend_dilation=case.get("blend_dilation", 1))
        p2p.install(pipe.unet, ctrl, (lh, lw))
        lat = p2p_edit(pipe, zT, src, tgt, STEPS, GUIDANCE, ctrl, traj=traj if direct else None)
        pipe.unet.set_attn_processor(AttnProcessor())
        save(os.path.join(d, "inverted.npy"), zT)
        save(os.path.join(d, "latents.npy"), lat[1:])
        save(os.path.join(d, "source_latents.npy"), lat[:1])
        save(os.path.join(d, "image.npy"), decode(pipe.vae, lat[1:]))
        if ctrl.last_mask is not None:
            save(os.path.join(d, "mask.npy"), ctrl.last_mask)
        case["blend_height"] = bh
        case["is_replace"] = ctrl.is_replace
        case["has_mask"] = ctrl.last_mask is not None
        manifest["cases"][name] = case

    # ---- instruct ----------------------------------------------------------------------------------------
    d = case_dir("instruct")
    mdir = os.path.join(args.out, "instruct", "model")
    make_instruct_model(args.model, mdir)
    ip = StableDiffusionInstructPix2PixPipeline.from_pretrained(mdir, safety_checker=None,
                                                                requires_safety_checker=False).to(torch.float32)
    ip.scheduler = DDIMScheduler.from_config(ip.scheduler.config)
    ip.set_progress_bar_config(disable=True)
    noise = torch.randn(z0.shape, generator=g)
    save(os.path.join(d, "noise.npy"), noise)
    case = {"prompt": "make the circle blue", "negative_prompt": "", "image_guidance": 1.5, "model": "instruct/model"}
    out = ip(prompt=case["prompt"], negative_prompt=case["negative_prompt"], image=Image.fromarray(img),
             num_inference_steps=STEPS, guidance_scale=GUIDANCE, image_guidance_scale=case["image_guidance"],
             latents=noise.clone(), output_type="latent").images
    save(os.path.join(d, "latents.npy"), out)
    save(os.path.join(d, "image.npy"), decode(ip.vae, out))
    manifest["cases"]["instruct"] = {**case, "method": "instruct"}

    json.dump(manifest, open(os.path.join(args.out, "manifest.json"), "w"), indent=2)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
