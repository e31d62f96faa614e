#!/usr/bin/env python3
"""Train the toy AutoencoderKL (SD architecture, 3 levels = 4x down, 4 latent channels) on toy-world images.

    nice -n 10 python3 tools/train_vae.py --work /work/toytrain --minutes 12

Trains on random 32x32 crops first (4x cheaper per image; the model is convolutional apart from the
mid-block attention), then on whole 64x64 images for the last quarter of the budget. Seeded and resumable: the state is saved to WORK/vae.ckpt every --save-every steps and at the end; rerunning
continues from it (until --steps or the time budget is used). At the end it measures reconstruction PSNR on
held-out scenes, computes scaling_factor = 1 / std(latents) and writes WORK/vae/ (diffusers folder, fp32).

--decoder-only fine-tunes the decoder of WORK/vae with the encoder frozen (UNets trained on its latents stay
valid) and writes WORK/vae_dec, which train_export.py prefers; --layers-per-block N first deepens the VAE
with identity resnets (the same function, so still the same latents) to give the decoder more capacity.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "toyworld"))
import sdparts  # noqa: E402
import world  # noqa: E402


def jittered_64(e_scene):
    """A jittered scene (64, 96 or 128 px) as the model sees it: resized to 64 px (bicubic), as the
    native-resolution plan does for larger inputs."""
    im = world.render(e_scene)[0]
    if im.shape[0] != 64:
        im = np.asarray(Image.fromarray(im).resize((64, 64), Image.BICUBIC))
    return im


def batch(rng, n, crop=0, jitter_frac=0.0):
    """n toy-world images (uint8 -> [-1,1]); with crop > 0, one random crop x crop window of each; a share
    jitter_frac drawn from the jittered generator (world.jittered_edit_for_seed, resized to 64 px)."""
    imgs = []
    for _ in range(n):
        seed = int(rng.integers(0, world.HELDOUT_SEED_BASE // 2))
        jit = jitter_frac > 0 and rng.random() < jitter_frac
        e = world.jittered_edit_for_seed(seed) if jit else world.edit_for_seed(seed)
        sc = e.target if rng.random() < 0.5 else e.source
        im = jittered_64(sc) if jit else world.render(sc)[0]
        if crop:
            y, x = rng.integers(0, im.shape[0] - crop + 1, 2)
            im = im[y:y + crop, x:x + crop]
        imgs.append(im)
    return sdparts.to_tensor(np.stack(imgs))


def heldout(n=64, jitter=False):
    if jitter:
        imgs = [jittered_64(world.jittered_edit_for_seed(world.HELDOUT_SEED_BASE + 600_000 + i).source)
                for i in range(n)]
    else:
        imgs = [world.render(world.edit_for_seed(world.HELDOUT_SEED_BASE + 500_000 + i).source)[0] for i in range(n)]
    return sdparts.to_tensor(np.stack(imgs))


def psnr(a, b):
    mse = ((a - b) / 2).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return (10 * torch.log10(1 / mse)).mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/work/toytrain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget for this run")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=32, help="train on random crops (the VAE is convolutional)")
    ap.add_argument("--full-frac", type=float, default=0.25,
                    help="last fraction of the budget trains on whole 64x64 images (batch/4)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--kl", type=float, default=1e-6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save-every", type=int, default=50)
    ap.add_argument("--decoder-only", action="store_true",
                    help="fine-tune only the decoder of WORK/vae on whole images (latent space and "
                         "scaling_factor unchanged, so UNets trained on WORK/vae stay valid); writes WORK/vae_dec")
    ap.add_argument("--jitter-frac", type=float, default=0.0,
                    help="--decoder-only: share of each batch from the jittered generator (colour offsets, hard "
                         "edges, gradient/grain backgrounds, 96/128 px inputs resized to 64)")
    ap.add_argument("--layers-per-block", type=int, default=0,
                    help="--decoder-only: deepen WORK/vae to this layers_per_block before fine-tuning. The added "
                         "encoder resnets are exact identities (conv2 zero) and stay frozen, so the latents, "
                         "scaling_factor and every UNet trained on WORK/vae are unchanged; the decoder gets "
                         "layers_per_block + 1 resnets per level, the added ones starting as identities")
    a = ap.parse_args()
    if a.layers_per_block and not a.decoder_only:
        ap.error("--layers-per-block deepens WORK/vae for a --decoder-only fine-tune; add --decoder-only")
    if a.decoder_only:
        return decoder_only(a)
    torch.set_num_threads(a.threads)
    os.makedirs(a.work, exist_ok=True)
    from diffusers import AutoencoderKL
    torch.manual_seed(a.seed)
    vae = AutoencoderKL(**sdparts.VAE_CONFIG)
    opt = torch.optim.AdamW(vae.parameters(), lr=a.lr, weight_decay=0.0)
    ck_path = os.path.join(a.work, "vae.ckpt")
    step, rng = 0, np.random.default_rng(a.seed)
    ck = sdparts.load_ckpt(ck_path)
    if ck:
        vae.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, rng = ck["step"], ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        sdparts.log(f"resumed at step {step}")
    n_params = sum(p.numel() for p in vae.parameters())
    sdparts.log(f"vae params {n_params}")
    t0, run = time.time(), 0.0
    vae.train()
    while step < a.steps and time.time() - t0 < a.minutes * 60:
        full = (time.time() - t0) > (1 - a.full_frac) * a.minutes * 60
        x = batch(rng, max(2, a.batch // 4), 0) if full else batch(rng, a.batch, a.crop)
        # cosine-ish decay over the planned budget
        for g in opt.param_groups:
            g["lr"] = a.lr * (0.1 + 0.9 * max(0.0, 1 - (time.time() - t0) / (a.minutes * 60)))
        post = vae.encode(x).latent_dist
        y = vae.decode(post.sample()).sample
        rec = (y - x).abs().mean() + (y - x).pow(2).mean()
        loss = rec + a.kl * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        run = loss.item() if run == 0 else 0.95 * run + 0.05 * loss.item()
        if step % 10 == 0:
            sdparts.log(f"step {step} loss {loss.item():.4f} ema {run:.4f}")
        if step % a.save_every == 0:
            sdparts.save_ckpt(ck_path, model=vae.state_dict(), opt=opt.state_dict(), step=step, rng=rng,
                              torch_rng=torch.get_rng_state())
    sdparts.save_ckpt(ck_path, model=vae.state_dict(), opt=opt.state_dict(), step=step, rng=rng,
                      torch_rng=torch.get_rng_state())
    vae.eval()
    with torch.no_grad():
        x = heldout(64)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.mode()).sample.clamp(-1, 1)
        p = psnr(rec, x)
        zs = torch.cat([vae.encode(batch(np.random.default_rng(123), 64)).latent_dist.sample() for _ in range(2)])
        std = zs.std().item()
    vae.register_to_config(scaling_factor=float(1.0 / std))
    vae.save_pretrained(os.path.join(a.work, "vae"))
    sdparts.log(f"final: steps {step} heldout reconstruction PSNR {p:.2f} dB, latent std {std:.4f}, "
                f"scaling_factor {1 / std:.5f}")


def deepen(vae, layers):
    """vae with layers_per_block = layers (> its own), computing the same function: every resnet it lacks is
    added after the existing ones of its block with conv2 zero (ResnetBlock2D returns x + conv2(...), so
    such a block is the identity). Checked: latents and decodes within f32 rounding of the old ones."""
    from diffusers import AutoencoderKL
    old = vae.config.layers_per_block
    if layers < old:
        raise SystemExit(f"--layers-per-block {layers} is below WORK/vae's {old}")
    cfg = {k: v for k, v in vae.config.items() if not k.startswith("_")}
    cfg["layers_per_block"] = layers
    new = AutoencoderKL(**cfg)
    missing, unexpected = new.load_state_dict(vae.state_dict(), strict=False)
    assert not unexpected, unexpected
    added = sorted({k.rsplit(".", 2)[0] for k in missing})  # "<block>.conv1.weight" -> "<block>"
    assert all(".resnets." in b for b in added), missing
    with torch.no_grad():
        for name in added:
            block = new.get_submodule(name)
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()
        x = heldout(8, jitter=True)
        z = vae.encode(x).latent_dist.mode()
        same = (new.encode(x).latent_dist.mode() - z).abs().max().item()
        dsame = (new.decode(z).sample - vae.decode(z).sample).abs().max().item()
    assert same < 1e-4 and dsame < 1e-4, (same, dsame)  # f32 rounding (conv algorithm choice) only
    sdparts.log(f"deepened the VAE from layers_per_block {old} to {layers}: {len(added)} identity resnets added "
                f"({sum(p.numel() for p in new.parameters()) - sum(p.numel() for p in vae.parameters())} "
                f"parameters); latents max diff {same:.1e}, decode max diff {dsame:.1e}")
    return new


def decoder_only(a):
    torch.set_num_threads(a.threads)
    from diffusers import AutoencoderKL
    torch.manual_seed(a.seed + 1)
    vae = AutoencoderKL.from_pretrained(os.path.join(a.work, "vae"))
    ck_name = "vae_dec.ckpt"
    if a.layers_per_block and a.layers_per_block != vae.config.layers_per_block:
        vae = deepen(vae, a.layers_per_block)
        ck_name = f"vae_dec_l{a.layers_per_block}.ckpt"
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    lr = a.lr * 0.25
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    ck_path = os.path.join(a.work, ck_name)
    step, rng = 0, np.random.default_rng(a.seed + 1)
    ck = sdparts.load_ckpt(ck_path)
    if ck:
        vae.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, rng = ck["step"], ck["rng"]
        sdparts.log(f"resumed decoder fine-tuning at step {step}")
    xh, xj = heldout(64), heldout(64, jitter=True)
    with torch.no_grad():
        zh, zj = vae.encode(xh).latent_dist.mode(), vae.encode(xj).latent_dist.mode()
        sdparts.log(f"decoder fine-tuning: start held-out PSNR {psnr(vae.decode(zh).sample.clamp(-1, 1), xh):.2f} dB, "
                    f"jittered {psnr(vae.decode(zj).sample.clamp(-1, 1), xj):.2f} dB")
    t0, run = time.time(), 0.0
    bs = max(2, a.batch // 2)
    while step < a.steps and time.time() - t0 < a.minutes * 60:
        for g in opt.param_groups:
            g["lr"] = lr * (0.1 + 0.9 * max(0.0, 1 - (time.time() - t0) / (a.minutes * 60)))
        x = batch(rng, bs, 0, a.jitter_frac)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mode()
        y = vae.decode(z).sample
        loss = (y - x).abs().mean() + (y - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        run = loss.item() if run == 0 else 0.95 * run + 0.05 * loss.item()
        if step % 10 == 0:
            sdparts.log(f"dec step {step} loss {loss.item():.4f} ema {run:.4f}")
        if step % a.save_every == 0:
            sdparts.save_ckpt(ck_path, model=vae.state_dict(), opt=opt.state_dict(), step=step, rng=rng)
    sdparts.save_ckpt(ck_path, model=vae.state_dict(), opt=opt.state_dict(), step=step, rng=rng)
    with torch.no_grad():
        p = psnr(vae.decode(zh).sample.clamp(-1, 1), xh)
        pj = psnr(vae.decode(zj).sample.clamp(-1, 1), xj)
    vae.save_pretrained(os.path.join(a.work, "vae_dec"))
    sdparts.log(f"final: decoder steps {step} held-out reconstruction PSNR {p:.2f} dB, jittered {pj:.2f} dB "
                f"(scaling_factor {vae.config.scaling_factor:.5f} unchanged)")


if __name__ == "__main__":
    main()
