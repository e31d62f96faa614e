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
--edit-model DIR also trains the decoder on the latents DIR's UNet really produces for edits (decoded
against the generator's target image): a decoder trained on encoder latents alone renders the objects of a
UNet-made edit worse the better it reconstructs (see docs/quality.md, phase 13). Such a decoder belongs to
that UNet: WORK/NAME/edit_model.json records the UNet's sha256 and train_export.py warns when it exports the
decoder with another UNet.

    python3 tools/train_vae.py --decoder-only --from-vae vae_dec_p12 --out-name vae_dec_g1 \
        --edit-model /path/to/instruct-folder --edit-cases 4000 --minutes 30 --lr 1e-3 --jitter-frac 0.5 --threads 2
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "toyworld"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # quality.py (scoring on tuning seeds)
import sdparts  # noqa: E402
import world  # noqa: E402


def jittered_64(e_scene):
    """A jittered scene (64, 96 or 128 px) as the model sees it: resized to 64 px (bicubic), as the
    native-resolution plan does for larger inputs."""
    return at_64(world.render(e_scene)[0])


def at_64(im):
    """im resized to 64 px (bicubic) when it is larger."""
    return im if im.shape[0] == 64 else np.asarray(Image.fromarray(im).resize((64, 64), Image.BICUBIC))


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
    ap.add_argument("--from-vae", default="vae",
                    help="--decoder-only: the VAE folder (in WORK, or a path) to start from; its encoder must be "
                         "WORK/vae's (checked), so the latent space stays the one the UNets were trained on")
    ap.add_argument("--out-name", default="vae_dec",
                    help="--decoder-only: writes WORK/NAME and resumes from WORK/NAME.ckpt")
    ap.add_argument("--edit-model", default="",
                    help="--decoder-only: an instruct model folder. Its UNet edits --edit-cases training scenes "
                         "(the CLI's sampler settings, training phrasings); a share --edit-frac of each batch "
                         "decodes those edited latents against the generator's target image, so the decoder "
                         "learns the latents the UNet really makes, not only the encoder's. Ship the result "
                         "with that UNet. Monitored on tuning seeds (quality.py scoring) every --val-every steps")
    ap.add_argument("--edit-cases", type=int, default=4000)
    ap.add_argument("--edit-frac", type=float, default=0.5)
    ap.add_argument("--edit-jitter-frac", type=float, default=0.5,
                    help="share of the edited-latent pairs drawn from jittered scenes (half of the cases are)")
    ap.add_argument("--val-every", type=int, default=1000)
    a = ap.parse_args()
    if (a.edit_model or a.from_vae != "vae" or a.out_name != "vae_dec") and not a.decoder_only:
        ap.error("--from-vae, --out-name and --edit-model are --decoder-only options; add --decoder-only")
    if a.edit_model and a.edit_cases < 8:
        ap.error("--edit-cases: at least 8 (each edit type plain and jittered)")
    if a.edit_model and not os.path.exists(os.path.join(a.edit_model, "unet", "diffusion_pytorch_model.safetensors")):
        ap.error(f"--edit-model {a.edit_model}: no unet/diffusion_pytorch_model.safetensors there")
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
    vae = AutoencoderKL.from_pretrained(os.path.join(a.work, a.from_vae))
    if a.from_vae != "vae":
        base = AutoencoderKL.from_pretrained(os.path.join(a.work, "vae"))
        b = base.state_dict()
        for k, v in vae.state_dict().items():
            if k.startswith(("encoder.", "quant_conv.")) and (k not in b or not torch.equal(v, b[k])):
                raise SystemExit(f"--from-vae {a.from_vae}: encoder tensor {k} differs from WORK/vae's")
        if vae.config.scaling_factor != base.config.scaling_factor:
            raise SystemExit(f"--from-vae {a.from_vae}: scaling_factor differs from WORK/vae's")
    ck_name = a.out_name + ".ckpt"
    if a.layers_per_block and a.layers_per_block != vae.config.layers_per_block:
        vae = deepen(vae, a.layers_per_block)
        if a.out_name == "vae_dec":
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
    gen = val = None
    if a.edit_model:
        gen = edited_latents(a, a.edit_cases, "train")
        val = edited_latents(a, 48, "tune")
        sdparts.log("tuning seeds at the start: " + val_report(vae, val))
    t0, run = time.time(), 0.0
    bs = max(2, a.batch // 2)
    while step < a.steps and time.time() - t0 < a.minutes * 60:
        for g in opt.param_groups:
            g["lr"] = lr * (0.1 + 0.9 * max(0.0, 1 - (time.time() - t0) / (a.minutes * 60)))
        n_gen = int(round(bs * a.edit_frac)) if gen else 0
        x = batch(rng, bs - n_gen, 0, a.jitter_frac)
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mode()
        if n_gen:
            jit = rng.random(n_gen) < a.edit_jitter_frac
            pool = [gen["plain"], gen["jitter"]]
            pick = torch.from_numpy(np.array([pool[int(j)][rng.integers(0, len(pool[int(j)]))] for j in jit], dtype=np.int64))
            z = torch.cat([z, gen["z"][pick]])
            x = torch.cat([x, sdparts.to_tensor(gen["target"][pick.numpy()])])
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
        if val and step % a.val_every == 0:
            sdparts.log(f"tuning seeds at step {step}: " + val_report(vae, val))
    sdparts.save_ckpt(ck_path, model=vae.state_dict(), opt=opt.state_dict(), step=step, rng=rng)
    with torch.no_grad():
        p = psnr(vae.decode(zh).sample.clamp(-1, 1), xh)
        pj = psnr(vae.decode(zj).sample.clamp(-1, 1), xj)
    vae.save_pretrained(os.path.join(a.work, a.out_name))
    if a.edit_model:  # the decoder belongs to that UNet: train_export.py checks the UNet it ships with it
        import json
        with open(os.path.join(a.work, a.out_name, "edit_model.json"), "w") as f:
            json.dump({"edit_model": os.path.abspath(a.edit_model), "unet_sha256": sdparts.unet_sha256(a.edit_model)}, f, indent=1)
    if val:
        sdparts.log(f"tuning seeds at the end (step {step}): " + val_report(vae, val))
    sdparts.log(f"final: decoder steps {step} held-out reconstruction PSNR {p:.2f} dB, jittered {pj:.2f} dB "
                f"(scaling_factor {vae.config.scaling_factor:.5f} unchanged); wrote WORK/{a.out_name}")


VAL_TYPES = [("background", "plain"), ("recolor", "plain"), ("recolor", "jitter")]


def edited_latents(a, n, split):
    """The latents a.edit_model's UNet makes (before decoding, divided by scaling_factor) for n edits, with
    the CLI's default sampler (the model's diffedit.json guidance and steps, image guidance 1.5, DDIM, seed 0
    per batch) through the diffusers pipeline. split "train": training seeds (below HELDOUT_SEED_BASE / 2,
    the four edit types, half from the jittered generator, training phrasings); returns {"z", "target"
    (uint8, 64 px)}. split "tune": quality.py's cases on tuning seeds (HELDOUT_SEED_BASE + 5000, outside its
    tables' 0..199) for VAL_TYPES, n each; returns {"z", "cases", "keys" (each case's VAL_TYPES entry)}.
    Cached in WORK by model, split and n."""
    import json
    import quality
    import phrasing
    name = os.path.basename(os.path.normpath(a.edit_model))
    # keyed by the UNet's content too: a UNet retrained into the same folder must not reuse stale latents
    tag = f"{name}_{sdparts.unet_sha256(a.edit_model)[:12]}"
    cache = os.path.join(a.work, f"edited_{tag}_{split}_{n}.pt")
    hp = os.path.join(a.edit_model, "diffedit.json")
    hint = json.load(open(hp)) if os.path.exists(hp) else {}
    if split == "train":
        rng = np.random.default_rng([a.seed, 77])
        items, jits = [], []
        for i in range(n):
            seed = int(rng.integers(0, world.HELDOUT_SEED_BASE // 2))
            t = world.EDIT_TYPES[i % 4]
            jit = (i // 4) % 2 == 1  # each type: half plain, half jittered
            e = world.jittered_edit_for_seed(seed, t) if jit else world.edit_for_seed(seed, t)
            src = jittered_64(e.source) if jit else world.render(e.source)[0]
            tgt = jittered_64(e.target) if jit else world.render(e.target)[0]
            items.append((src, phrasing.instruction(e, np.random.default_rng([seed, 1]), "train"), tgt))
            jits.append(jit)
    else:
        cases, keys = [], []
        for t, scenes in VAL_TYPES:
            cases += quality.make_cases(n, [t], world.HELDOUT_SEED_BASE + 5000, "canonical", scenes)
            keys += [(t, scenes)] * n
        items = [(c["source"], c["instruction"], None) for c in cases]
    if os.path.exists(cache):
        z = torch.load(cache)
    else:
        from diffusers import StableDiffusionInstructPix2PixPipeline
        pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            a.edit_model, torch_dtype=torch.float32, safety_checker=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        sf = pipe.vae.config.scaling_factor
        zs, t0 = [], time.time()
        for b0 in range(0, len(items), 16):
            chunk = items[b0:b0 + 16]
            imgs = [Image.fromarray(at_64(s)) for s, _, _ in chunk]
            out = pipe([ins for _, ins, _ in chunk], image=imgs, num_inference_steps=hint.get("steps", 20),
                       guidance_scale=hint.get("guidance", 4.0), image_guidance_scale=1.5,
                       generator=torch.Generator().manual_seed(b0), output_type="latent").images
            zs.append(out / sf)
            if b0 % 320 == 0:
                sdparts.log(f"edited latents ({split}): {b0 + len(chunk)}/{len(items)} in {time.time() - t0:.0f} s")
        z = torch.cat(zs)
        torch.save(z, cache)
    if split == "train":
        jits = np.array(jits)
        return {"z": z, "target": np.stack([t for _, _, t in items]),
                "plain": np.flatnonzero(~jits), "jitter": np.flatnonzero(jits)}
    return {"z": z, "cases": cases, "keys": keys}


def val_report(vae, val):
    """quality.py's success and median bg PSNR per VAL_TYPES entry for the decoded tuning latents (inputs
    above 64 px: the 64 px decode resized back with bicubic; the CLI resamples with its own triangle filter and
    keeps untouched pixels, so its jittered bg PSNR comes out higher: a monitor, not the table)."""
    import quality
    with torch.no_grad():
        x = vae.decode(val["z"]).sample.clamp(-1, 1)
    outs = ((x + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    res = {}
    for c, key, o in zip(val["cases"], val["keys"], outs):
        size = c["source"].shape[0]
        if size != 64:
            o = np.asarray(Image.fromarray(o).resize((size, size), Image.BICUBIC))
        res.setdefault(key, []).append(quality.score(c, o, 60.0))
    return ", ".join(f"{t}/{s} {100 * np.mean([ok for ok, _ in r]):.1f}% / {np.median([b for _, b in r]):.2f} dB"
                     for (t, s), r in res.items())


if __name__ == "__main__":
    main()
