#!/usr/bin/env python3
"""Writes Tests/Fixtures/vae_tiling/: a tiny random-weight AutoencoderKL whose tiles are small enough that the
fixture's inputs really are tiled, and diffusers' outputs with and without `vae.enable_tiling()`.

VAE: block_out_channels (8, 16) (factor 2), layers_per_block 1, groups 4, mid-block attention, sample_size 16:
diffusers' tile_sample_min_size 16 px, tile_latent_min_size 8, overlap 0.25 (decode: tiles every 6 latents,
blend 4 px, keep 12 px; encode: tiles every 12 px, blend 2 latents, keep 6). f32 weights.

Files (float32 .npy):
  vae/config.json, vae/diffusion_pytorch_model.safetensors
  latents.npy       [2, 4, 12, 20]  random normal (a batch of 2: the tiles carry the whole batch)
  decoded_tiled.npy [2, 3, 24, 40]  vae.enable_tiling(); vae.decode(latents).sample   (2 x 4 tiles, last column 2 latents)
  decoded_whole.npy [2, 3, 24, 40]  the same without tiling
  image.npy         [1, 3, 24, 40]  uniform in [-1, 1]
  mean_tiled.npy    [1, 4, 12, 20]  vae.enable_tiling(); vae.encode(image).latent_dist.mean   (2 x 4 tiles)
  mean_whole.npy    [1, 4, 12, 20]  the same without tiling
  manifest.json     what made them (versions, tile sizes)

usage: python3 tools/make_vae_tiling_fixtures.py [OUT_DIR]   (default Tests/Fixtures/vae_tiling)
"""
import json
import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKL


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "Tests", "Fixtures", "vae_tiling")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(7)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=16,
                        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=4).eval()
    # torch's default init leaves the conv outputs small; widen the weights a little so that every tile's
    # GroupNorm statistics (which tiling changes) move the output visibly
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("bias") and "norm" not in name:
                p.normal_(0, 0.1)
    vae.save_pretrained(os.path.join(out, "vae"), safe_serialization=True)
    assert vae.tile_sample_min_size == 16 and vae.tile_latent_min_size == 8

    g = torch.Generator().manual_seed(11)
    latents = torch.randn(2, 4, 12, 20, generator=g)
    image = torch.rand(1, 3, 24, 40, generator=g) * 2 - 1

    with torch.no_grad():
        vae.disable_tiling()
        decoded_whole = vae.decode(latents).sample
        mean_whole = vae.encode(image).latent_dist.mean
        vae.enable_tiling()
        decoded_tiled = vae.decode(latents).sample
        mean_tiled = vae.encode(image).latent_dist.mean

    def save(name, t):
        np.save(os.path.join(out, name + ".npy"), t.detach().numpy().astype(np.float32))

    save("latents", latents)
    save("decoded_tiled", decoded_tiled)
    save("decoded_whole", decoded_whole)
    save("image", image)
    save("mean_tiled", mean_tiled)
    save("mean_whole", mean_whole)

    def rel(a, b):
        return float((a - b).abs().max() / b.abs().max())

    manifest = {
        "script": "tools/make_vae_tiling_fixtures.py",
        "torch": torch.__version__,
        "diffusers": __import__("diffusers").__version__,
        "tile_sample_min_size": vae.tile_sample_min_size,
        "tile_latent_min_size": vae.tile_latent_min_size,
        "tile_overlap_factor": vae.tile_overlap_factor,
        "decode_tiled_vs_whole_rel": rel(decoded_tiled, decoded_whole),
        "encode_tiled_vs_whole_rel": rel(mean_tiled, mean_whole),
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print(json.dumps(manifest, indent=2))
    print("wrote", out)


if __name__ == "__main__":
    main()
