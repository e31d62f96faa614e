#!/usr/bin/env python3
"""A tiny random SDXL checkpoint and diffusers reference outputs (issue 20), for the Swift parity tests.

Developers run it (CI does not: it needs PyTorch + diffusers):
    python3 tools/make_sdxl_fixtures.py [--sd1 Tests/Fixtures/sd1] [--out Tests/Fixtures/sdxl]

The model (out/model, a diffusers folder, StableDiffusionXLPipeline layout): an unusual but valid SDXL:
  text_encoder   CLIP ViT-L-style CLIPTextModel, hidden 32 (the sd1 fixture's encoder, real-world
                 `text_model.` naming, legacy eos_token_id 2: pooled by argmax)
  text_encoder_2 CLIPTextModelWithProjection, hidden 40, 5 heads (odd), gelu, projection 24, eos 49407
                 (pooled at the first eos), tokenizer_2 padding with "!" as SDXL's OpenCLIP tokenizer does
  unet           addition_embed_type text_time (add_embedding), cross_attention_dim 32 + 40 = 72,
                 transformer_layers_per_block [1, 2] (depth lists), 3 heads, linear projections, a first
                 level without attention as SDXL's
  vae            the sd1 fixture's weights with SDXL's scaling factor 0.13025
  scheduler      EulerDiscreteScheduler as SDXL base ships it
out/model.safetensors: the same model in the original single-file layout (conditioner.embedders.0.transformer.*,
conditioner.embedders.1.model.* in OpenCLIP naming, model.diffusion_model.* with label_emb, first_stage_model.*),
configs in the metadata as tools/to_single_file.py writes them.

Cases (out/<case>/, out/manifest.json): generate (StableDiffusionXLPipeline, Euler, no negative prompt: zero
negative conditioning), generate_neg (a negative prompt), img2img (StableDiffusionXLImg2ImgPipeline, DDIM,
strength 0.6; posterior mean, saved noise). Files: noise.npy, latents.npy, image.npy, input.png; prompt.npy /
pooled.npy (the conditioning of the prompt: [1, 77, 72], [1, 24]).
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_edit_fixtures import decode, make_input, save  # noqa: E402

import diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_img2img as xli  # noqa: E402
from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline,  # noqa: E402
                       StableDiffusionXLPipeline, UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer  # noqa: E402

STEPS = 6
GUIDANCE = 5.0


def make_model(sd1, out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(2024)
    # text encoder 1: the sd1 fixture's (hidden 32)
    for part in ("text_encoder", "tokenizer"):
        dst = os.path.join(out, part)
        if os.path.lexists(dst):
            os.remove(dst) if os.path.islink(dst) else shutil.rmtree(dst)
        os.symlink(os.path.relpath(os.path.join(sd1, part), out), dst)
    # text encoder 2: CLIPTextModelWithProjection, hidden 40, 5 heads, projection 24
    cfg2 = CLIPTextConfig(vocab_size=49408, hidden_size=40, intermediate_size=72, num_hidden_layers=2,
                          num_attention_heads=5, max_position_embeddings=77, hidden_act="gelu", projection_dim=24,
                          pad_token_id=1, bos_token_id=49406, eos_token_id=49407)
    te2 = CLIPTextModelWithProjection(cfg2)
    with torch.no_grad():
        for p in te2.parameters():
            p.normal_(0, 0.05 if p.ndim > 1 else 0.02)
        for n, p in te2.named_parameters():
            if "layer_norm" in n and n.endswith("weight"):
                p.add_(1.0)
    te2.to(torch.float16).save_pretrained(os.path.join(out, "text_encoder_2"))
    tok = CLIPTokenizer.from_pretrained(os.path.join(sd1, "tokenizer"))
    # tokenizer_2: the same BPE files (links), padding with "!" (id 0) as SDXL's tokenizer_2
    t2 = os.path.join(out, "tokenizer_2")
    if os.path.lexists(t2):
        shutil.rmtree(t2)
    os.makedirs(t2)
    for f in ("vocab.json", "merges.txt"):
        os.symlink(os.path.relpath(os.path.join(sd1, "tokenizer", f), t2), os.path.join(t2, f))
    special = json.load(open(os.path.join(sd1, "tokenizer", "special_tokens_map.json")))
    special["pad_token"] = "!"
    json.dump(special, open(os.path.join(t2, "special_tokens_map.json"), "w"), indent=2)
    tcfg = json.load(open(os.path.join(sd1, "tokenizer", "tokenizer_config.json")))
    tcfg["pad_token"] = "!"
    json.dump(tcfg, open(os.path.join(t2, "tokenizer_config.json"), "w"), indent=2)
    tok2 = CLIPTokenizer.from_pretrained(t2)
    assert tok2.pad_token == "!" and tok2.pad_token_id == 0, (tok2.pad_token, tok2.pad_token_id)
    # UNet
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 24), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8, cross_attention_dim=72, attention_head_dim=(1, 3), transformer_layers_per_block=(1, 2),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24 + 6 * 8)
    with torch.no_grad():
        for n, p in unet.named_parameters():
            if n.endswith("weight") and p.ndim > 1:
                p.mul_(1.5)
        # the added-condition path must matter: a clearly non-zero add_embedding
        unet.add_embedding.linear_1.weight.normal_(0, 0.3)
        unet.add_embedding.linear_2.weight.normal_(0, 0.3)
    unet.to(torch.float16).save_pretrained(os.path.join(out, "unet"))
    # VAE: the sd1 fixture's weights, SDXL's scaling factor
    vae = AutoencoderKL.from_pretrained(os.path.join(sd1, "vae"))
    vae.register_to_config(scaling_factor=0.13025)
    vae.to(torch.float16).save_pretrained(os.path.join(out, "vae"))
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading",
                                   prediction_type="epsilon", interpolation_type="linear", use_karras_sigmas=False)
    sched.save_pretrained(os.path.join(out, "scheduler"))
    json.dump({"_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.42.1",
               "force_zeros_for_empty_prompt": True,
               "text_encoder": ["transformers", "CLIPTextModel"],
               "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
               "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
               "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
               "scheduler": ["diffusers", "EulerDiscreteScheduler"]},
              open(os.path.join(out, "model_index.json"), "w"), indent=2)
    return tok, tok2


# ---- the original single-file layout (sgm / SDXL base checkpoints) -----------------------------------------

def read_st(path):
    from safetensors.numpy import load_file
    return load_file(path)


def openclip_names(sd, prefix):
    """transformers CLIPTextModelWithProjection -> open_clip text tower names under `prefix` (the layout of
    conditioner.embedders.1.model.* in SDXL single files): q/k/v fused into in_proj, text_projection [D, P]."""
    out = {}
    out[prefix + "token_embedding.weight"] = sd["text_model.embeddings.token_embedding.weight"]
    out[prefix + "positional_embedding"] = sd["text_model.embeddings.position_embedding.weight"]
    out[prefix + "ln_final.weight"] = sd["text_model.final_layer_norm.weight"]
    out[prefix + "ln_final.bias"] = sd["text_model.final_layer_norm.bias"]
    out[prefix + "text_projection"] = np.ascontiguousarray(sd["text_projection.weight"].T)
    i = 0
    while f"text_model.encoder.layers.{i}.self_attn.q_proj.weight" in sd:
        s, d = f"text_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[d + f"attn.in_proj_{kind}"] = np.concatenate(
                [sd[s + f"self_attn.{x}_proj.{kind}"] for x in ("q", "k", "v")], axis=0)
            out[d + f"attn.out_proj.{kind}"] = sd[s + f"self_attn.out_proj.{kind}"]
            out[d + f"ln_1.{kind}"] = sd[s + f"layer_norm1.{kind}"]
            out[d + f"ln_2.{kind}"] = sd[s + f"layer_norm2.{kind}"]
            out[d + f"mlp.c_fc.{kind}"] = sd[s + f"mlp.fc1.{kind}"]
            out[d + f"mlp.c_proj.{kind}"] = sd[s + f"mlp.fc2.{kind}"]
        i += 1
    return out


def write_single_file(model, path):
    import ldm_names
    import to_single_file as tsf
    unet = read_st(os.path.join(model, "unet/diffusion_pytorch_model.safetensors"))
    vae = read_st(os.path.join(model, "vae/diffusion_pytorch_model.safetensors"))
    te1 = read_st(os.path.join(model, "text_encoder/model.safetensors"))
    te2 = read_st(os.path.join(model, "text_encoder_2/model.safetensors"))
    ucfg = json.load(open(os.path.join(model, "unet/config.json")))
    vcfg = json.load(open(os.path.join(model, "vae/config.json")))
    tensors = ldm_names.unet_to_ldm({k: v for k, v in unet.items() if not k.startswith("add_embedding.")}, ucfg)
    for k, v in unet.items():
        if k.startswith("add_embedding."):
            lin = {"linear_1": "0.0", "linear_2": "0.2"}[k.split(".")[1]]
            tensors[f"model.diffusion_model.label_emb.{lin}.{k.split('.')[2]}"] = v
    tensors.update(ldm_names.vae_to_ldm(vae, vcfg))
    for k, v in te1.items():
        if k.endswith("position_ids"):
            continue
        name = k if k.startswith("text_model.") else "text_model." + k
        tensors["conditioner.embedders.0.transformer." + name] = v
    tensors.update(openclip_names(te2, "conditioner.embedders.1.model."))
    meta = {"format": "pt", "diffedit.unet_config": json.dumps(ucfg), "diffedit.vae_config": json.dumps(vcfg),
            "diffedit.text_config": open(os.path.join(model, "text_encoder/config.json")).read(),
            "diffedit.text_config_2": open(os.path.join(model, "text_encoder_2/config.json")).read(),
            "diffedit.scheduler_config": open(os.path.join(model, "scheduler/scheduler_config.json")).read()}
    tsf.write_safetensors(tensors, path, meta)
    print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path) / 1e6:.2f} MB")


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--sd1", default=os.path.join(here, "Tests/Fixtures/sd1"))
    ap.add_argument("--out", default=os.path.join(here, "Tests/Fixtures/sdxl"))
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    mdir = os.path.join(args.out, "model")
    make_model(args.sd1, mdir)
    write_single_file(mdir, os.path.join(args.out, "model.safetensors"))

    pipe = StableDiffusionXLPipeline.from_pretrained(mdir).to(torch.float32)
    pipe.set_progress_bar_config(disable=True)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    lat_shape = (1, 4, pipe.unet.config.sample_size, pipe.unet.config.sample_size)
    g = torch.Generator().manual_seed(11)
    manifest = {"steps": STEPS, "guidance": GUIDANCE, "size": size, "cases": {}}
    prompt = "a blue circle on a white background"

    pe, npe, pp, npp = pipe.encode_prompt(prompt, do_classifier_free_guidance=True)
    d0 = os.path.join(args.out, "conditioning")
    os.makedirs(d0, exist_ok=True)
    save(os.path.join(d0, "prompt.npy"), pe)
    save(os.path.join(d0, "pooled.npy"), pp)
    pe2, _, pp2, _ = pipe.encode_prompt("blurry", do_classifier_free_guidance=False)
    save(os.path.join(d0, "negative.npy"), pe2)
    save(os.path.join(d0, "negative_pooled.npy"), pp2)
    manifest["conditioning"] = {"prompt": prompt, "negative": "blurry"}

    for name, neg in (("generate", None), ("generate_neg", "blurry")):
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        noise = torch.randn(lat_shape, generator=g)
        save(os.path.join(d, "noise.npy"), noise)
        out = pipe(prompt=prompt, negative_prompt=neg, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                   height=size, width=size, latents=noise.clone(), output_type="latent").images
        save(os.path.join(d, "latents.npy"), out)
        save(os.path.join(d, "image.npy"), decode(pipe.vae, out))
        manifest["cases"][name] = {"method": "generate", "prompt": prompt, "negative_prompt": neg,
                                   "scheduler": "euler"}
    # Euler ancestral: one generator seeded 5 draws the initial latents and every step's noise
    from diffusers import EulerAncestralDiscreteScheduler
    d = os.path.join(args.out, "generate_euler_a")
    os.makedirs(d, exist_ok=True)
    euler = pipe.scheduler
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(euler.config)
    out = pipe(prompt=prompt, num_inference_steps=STEPS, guidance_scale=GUIDANCE, height=size, width=size,
               generator=torch.Generator().manual_seed(5), output_type="latent").images
    pipe.scheduler = euler
    save(os.path.join(d, "latents.npy"), out)
    save(os.path.join(d, "image.npy"), decode(pipe.vae, out))
    manifest["cases"]["generate_euler_a"] = {"method": "generate", "prompt": prompt, "negative_prompt": None,
                                             "scheduler": "euler-a", "seed": 5}
    # how much the added (pooled + time ids) conditioning matters: the same generate with add_embedding zeroed
    d = os.path.join(args.out, "generate")
    w1 = pipe.unet.add_embedding.linear_2.weight.clone()
    pipe.unet.add_embedding.linear_2.weight.zero_()
    alt = pipe(prompt=prompt, num_inference_steps=STEPS, guidance_scale=GUIDANCE, height=size, width=size,
               latents=torch.from_numpy(np.load(os.path.join(d, "noise.npy"))), output_type="latent").images
    pipe.unet.add_embedding.linear_2.weight.copy_(w1)
    ref = torch.from_numpy(np.load(os.path.join(d, "latents.npy")))
    manifest["cases"]["generate"]["no_added_cond_rel_change"] = float((alt - ref).norm() / ref.norm())

    # img2img with DDIM (as diffedit's sdedit), the posterior mean and the saved noise
    d = os.path.join(args.out, "img2img")
    os.makedirs(d, exist_ok=True)
    img = make_input(size, size)
    Image.fromarray(img).save(os.path.join(d, "input.png"))
    noise = torch.randn(lat_shape, generator=g)
    save(os.path.join(d, "noise.npy"), noise)
    i2i = StableDiffusionXLImg2ImgPipeline(**pipe.components)
    i2i.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    i2i.set_progress_bar_config(disable=True)
    orig_r, orig_n = xli.retrieve_latents, xli.randn_tensor
    xli.retrieve_latents = lambda enc, generator=None, sample_mode="sample": orig_r(enc, sample_mode="argmax")
    xli.randn_tensor = lambda shape, generator=None, device=None, dtype=None, **kw: noise.clone()
    out = i2i(prompt=prompt, image=Image.fromarray(img), strength=0.6, num_inference_steps=STEPS,
              guidance_scale=GUIDANCE, output_type="latent").images
    xli.retrieve_latents, xli.randn_tensor = orig_r, orig_n
    save(os.path.join(d, "latents.npy"), out)
    save(os.path.join(d, "image.npy"), decode(pipe.vae, out))
    manifest["cases"]["img2img"] = {"method": "sdedit", "prompt": prompt, "negative_prompt": None, "strength": 0.6}
    # inpaint and instruct: the same model with a 9- / 8-input-channel UNet (random, seeded; other parts linked)
    import diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_inpaint as xinp
    from diffusers import StableDiffusionXLInpaintPipeline, StableDiffusionXLInstructPix2PixPipeline
    from make_inpaint_fixtures import make_mask
    for name, ch in (("inpaint", 9), ("instruct", 8)):
        vdir = os.path.join(args.out, name + "_model")
        os.makedirs(vdir, exist_ok=True)
        for part in ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "vae", "scheduler"):
            link = os.path.join(vdir, part)
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(os.path.join("..", "model", part), link)
        cfg = dict(UNet2DConditionModel.load_config(os.path.join(mdir, "unet")))
        cfg["in_channels"] = ch
        torch.manual_seed(100 + ch)
        u = UNet2DConditionModel.from_config(cfg)
        with torch.no_grad():
            for n, p in u.named_parameters():
                if n.endswith("weight") and p.ndim > 1:
                    p.mul_(1.5)
            u.add_embedding.linear_1.weight.normal_(0, 0.3)
            u.conv_in.weight[:, 4:] *= 4
        u.to(torch.float16).save_pretrained(os.path.join(vdir, "unet"))
        idx = json.load(open(os.path.join(mdir, "model_index.json")))
        idx["_class_name"] = "StableDiffusionXLInpaintPipeline" if ch == 9 else "StableDiffusionXLInstructPix2PixPipeline"
        json.dump(idx, open(os.path.join(vdir, "model_index.json"), "w"), indent=2)
    img = make_input(size, size)
    mask = make_mask(size, size)
    # inpaint: StableDiffusionXLInpaintPipeline, DDIM, strength 1 (pure noise) -- its own default is 0.9999
    d = os.path.join(args.out, "xl_inpaint")
    os.makedirs(d, exist_ok=True)
    Image.fromarray(img).save(os.path.join(d, "input.png"))
    Image.fromarray(mask, mode="L").save(os.path.join(d, "mask.png"))
    noise = torch.randn(lat_shape, generator=g)
    save(os.path.join(d, "noise.npy"), noise)
    ip = StableDiffusionXLInpaintPipeline.from_pretrained(os.path.join(args.out, "inpaint_model")).to(torch.float32)
    ip.scheduler = DDIMScheduler.from_config(ip.scheduler.config)
    ip.set_progress_bar_config(disable=True)
    orig_r, orig_n = xinp.retrieve_latents, xinp.randn_tensor
    xinp.retrieve_latents = lambda enc, generator=None, sample_mode="sample": orig_r(enc, sample_mode="argmax")
    xinp.randn_tensor = lambda shape, generator=None, device=None, dtype=None, **kw: noise.clone()
    out = ip(prompt=prompt, image=Image.fromarray(img), mask_image=Image.fromarray(mask, mode="L"), strength=1.0,
             num_inference_steps=STEPS, guidance_scale=GUIDANCE, height=size, width=size, output_type="latent").images
    xinp.retrieve_latents, xinp.randn_tensor = orig_r, orig_n
    save(os.path.join(d, "latents.npy"), out)
    save(os.path.join(d, "image.npy"), decode(ip.vae, out))
    manifest["cases"]["xl_inpaint"] = {"method": "inpaint", "prompt": prompt, "negative_prompt": None, "strength": 1.0,
                                       "model": "inpaint_model"}
    # instruct: StableDiffusionXLInstructPix2PixPipeline, DDIM, the saved noise as latents
    d = os.path.join(args.out, "xl_instruct")
    os.makedirs(d, exist_ok=True)
    Image.fromarray(img).save(os.path.join(d, "input.png"))
    noise = torch.randn(lat_shape, generator=g)
    save(os.path.join(d, "noise.npy"), noise)
    xp = StableDiffusionXLInstructPix2PixPipeline.from_pretrained(os.path.join(args.out, "instruct_model")).to(torch.float32)
    xp.scheduler = DDIMScheduler.from_config(xp.scheduler.config)
    xp.set_progress_bar_config(disable=True)
    out = xp(prompt="make the circle blue", image=Image.fromarray(img), num_inference_steps=STEPS, guidance_scale=GUIDANCE,
             image_guidance_scale=1.5, height=size, width=size, latents=noise.clone(), output_type="latent").images
    save(os.path.join(d, "latents.npy"), out)
    save(os.path.join(d, "image.npy"), decode(xp.vae, out))
    manifest["cases"]["xl_instruct"] = {"method": "instruct", "prompt": "make the circle blue", "negative_prompt": None,
                                        "image_guidance": 1.5, "model": "instruct_model"}
    # CosXL-Edit: the instruct UNet with an EDM schedule (EDMEulerScheduler, v-prediction, sigma_data 1) and
    # is_cosxl_edit (image latents scaled by the VAE factor), through StableDiffusionXLInstructPix2PixPipeline
    from diffusers import EDMEulerScheduler
    cdir = os.path.join(args.out, "cosxl_model")
    os.makedirs(cdir, exist_ok=True)
    for part in ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "vae"):
        link = os.path.join(cdir, part)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join("..", "model", part), link)
    link = os.path.join(cdir, "unet")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.join("..", "instruct_model", "unet"), link)
    EDMEulerScheduler(sigma_min=0.002, sigma_max=120.0, sigma_data=1.0, sigma_schedule="exponential",
                      prediction_type="v_prediction").save_pretrained(os.path.join(cdir, "scheduler"))
    idx = json.load(open(os.path.join(args.out, "instruct_model", "model_index.json")))
    idx["is_cosxl_edit"] = True
    idx["scheduler"] = ["diffusers", "EDMEulerScheduler"]
    json.dump(idx, open(os.path.join(cdir, "model_index.json"), "w"), indent=2)
    d = os.path.join(args.out, "xl_cosxl")
    os.makedirs(d, exist_ok=True)
    Image.fromarray(img).save(os.path.join(d, "input.png"))
    noise = torch.randn(lat_shape, generator=g)
    save(os.path.join(d, "noise.npy"), noise)
    cp = StableDiffusionXLInstructPix2PixPipeline.from_pretrained(cdir).to(torch.float32)
    assert cp.is_cosxl_edit and isinstance(cp.scheduler, EDMEulerScheduler)
    cp.set_progress_bar_config(disable=True)
    out = cp(prompt="make the circle blue", image=Image.fromarray(img), num_inference_steps=STEPS, guidance_scale=GUIDANCE,
             image_guidance_scale=1.5, height=size, width=size, latents=noise.clone(), output_type="latent").images
    save(os.path.join(d, "latents.npy"), out)
    save(os.path.join(d, "image.npy"), decode(cp.vae, out))
    manifest["cases"]["xl_cosxl"] = {"method": "instruct", "prompt": "make the circle blue", "negative_prompt": None,
                                     "image_guidance": 1.5, "model": "cosxl_model"}

    # ddim on SDXL: DDIM inversion with the source prompt at guidance 1, then DDIM sampling under CFG with zero
    # negative conditioning, every UNet call with its pooled embeds + time ids (diffedit's ddim method)
    from diffusers import DDIMInverseScheduler
    d = os.path.join(args.out, "xl_ddim")
    os.makedirs(d, exist_ok=True)
    Image.fromarray(img).save(os.path.join(d, "input.png"))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255 * 2 - 1
    z0 = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
    src, _, src_pooled, _ = pipe.encode_prompt("a red circle", do_classifier_free_guidance=False)
    tgt, neg, tgt_pooled, neg_pooled = pipe.encode_prompt("a blue circle", do_classifier_free_guidance=True)
    tid = torch.tensor([[float(size), size, 0, 0, size, size]])
    inv = DDIMInverseScheduler.from_config(pipe.scheduler.config)
    inv.set_timesteps(STEPS)
    lat = z0
    for t in inv.timesteps:
        eps = pipe.unet(lat, t, encoder_hidden_states=src, added_cond_kwargs={"text_embeds": src_pooled, "time_ids": tid}).sample
        lat = inv.step(eps, t, lat).prev_sample
    sch = DDIMScheduler.from_config(pipe.scheduler.config)
    sch.set_timesteps(STEPS)
    for t in sch.timesteps:
        eps = pipe.unet(torch.cat([lat, lat]), t, encoder_hidden_states=torch.cat([neg, tgt]),
                        added_cond_kwargs={"text_embeds": torch.cat([neg_pooled, tgt_pooled]), "time_ids": tid.repeat(2, 1)}).sample
        eu, ec = eps.chunk(2)
        lat = sch.step(eu + GUIDANCE * (ec - eu), t, lat).prev_sample
    save(os.path.join(d, "latents.npy"), lat)
    save(os.path.join(d, "image.npy"), decode(pipe.vae, lat))
    manifest["cases"]["xl_ddim"] = {"method": "ddim", "prompt": "a blue circle", "source_prompt": "a red circle",
                                    "negative_prompt": None}
    json.dump(manifest, open(os.path.join(args.out, "manifest.json"), "w"), indent=2)
    print("wrote", args.out, json.dumps(manifest["cases"]["generate"]))


if __name__ == "__main__":
    main()
