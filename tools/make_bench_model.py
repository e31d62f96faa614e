#!/usr/bin/env python3
"""Writes a full-size SD 1.5 diffusers folder with random weights in fp16 (about 2 GB), for `make bench`:
UNet2DConditionModel / AutoencoderKL / CLIPTextModel with the SD 1.5 configurations, the CLIP tokenizer files of
Tests/Fixtures/sd1/tokenizer (the real 49408-token vocabulary), a DDIM scheduler. Weights are torch's default
initialisation under a fixed seed: the numbers mean nothing, the shapes and the file layout are those of a
published fp16 checkpoint (`*.safetensors` in unet/, vae/, text_encoder/).

usage: python3 tools/make_bench_model.py [--tiny] OUT_DIR
  --tiny: the same layout with small widths (a check of the script and of the benchmark plumbing)
"""
import os
import shutil
import sys


def main():
    args = sys.argv[1:]
    tiny = "--tiny" in args
    args = [a for a in args if a != "--tiny"]
    if len(args) != 1:
        sys.exit(__doc__)
    out = args[0]
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    os.makedirs(out, exist_ok=True)
    # diffusers' defaults are SD 1.5's UNet (320/640/1280/1280, 8 heads, cross-attention 768)
    d = 32 if tiny else 768
    if tiny:
        unet = UNet2DConditionModel(sample_size=8, cross_attention_dim=d, block_out_channels=(32, 64), layers_per_block=1,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=4,
                                    norm_num_groups=8)
    else:
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=d)
    unet.to(torch.float16).save_pretrained(os.path.join(out, "unet"))
    del unet
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=512,
                        block_out_channels=(16, 32) if tiny else (128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * (2 if tiny else 4),
                        up_block_types=("UpDecoderBlock2D",) * (2 if tiny else 4),
                        layers_per_block=1 if tiny else 2, norm_num_groups=8 if tiny else 32)
    vae.to(torch.float16).save_pretrained(os.path.join(out, "vae"))
    del vae
    te = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=d, intermediate_size=4 * d,
                                      num_hidden_layers=2 if tiny else 12, num_attention_heads=4 if tiny else 12,
                                      max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=d))
    te.to(torch.float16).save_pretrained(os.path.join(out, "text_encoder"))
    del te
    DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                  set_alpha_to_one=False, steps_offset=1).save_pretrained(os.path.join(out, "scheduler"))
    here = os.path.dirname(os.path.abspath(__file__))
    tok = os.path.join(here, "..", "Tests", "Fixtures", "sd1", "tokenizer")
    shutil.copytree(tok, os.path.join(out, "tokenizer"), dirs_exist_ok=True)
    shutil.copy(os.path.join(tok, "..", "model_index.json"), os.path.join(out, "model_index.json"))
    print("wrote", out)


if __name__ == "__main__":
    main()
