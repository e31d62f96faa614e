#!/usr/bin/env python3
"""Where does toy-instruct's two-object binding get lost? One forward pass per timestep, no sampling.

    python3 tools/binding_probe.py WORK/instruct_v27.ckpt [more checkpoints or exported folders] [--scenes 120]
        [--oracle-mask | --feature-probe | --input-probe]

On `--scenes` held-out two-object scenes (world.edit_pair_for_seed, seeds HELDOUT_SEED_BASE + 900000..), each
edited twice (a recolour of each object, the generator's wording), it prints per shape pair:
- attn: the cross-attention routing, mean over layers and heads: of the attention mass the pixels give to the
  tokens from the noun on (the ones that know which object is meant), the share of the named object's pixels
  against the other object's, in(named) / (in(named) + in(other)). 0.5 = the noun does not steer where the
  instruction is read; 1.0 = only the named object reads it.
- out: the single-step output: the change of the conditional x0 prediction against the source latent,
  mean |x0 - source| over the named object's latent pixels against the other object's, same form. x_t is the
  source latent noised with one noise per scene (both rows of a scene see the same x_t), so only the
  instruction differs between the two rows.
--oracle-mask: cut the attention from pixels outside the named object (the ground-truth edited region) to the
tokens from the noun on (renormalised): if `out` then rises to near 1, the wrong object's change came through
the cross-attention; if not, it reaches the other object by another path (self-attention, convolutions).
Needs PyTorch + diffusers (like the other tools/ training scripts) and WORK's vae/ and tokenizer/.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "toyworld"))
import sdparts  # noqa: E402
import train_unet  # noqa: E402
import world  # noqa: E402


class OracleMaskedCrossAttn(train_unet.RecordingCrossAttn):
    """Cross-attention with the mass from pixels outside `region` to tokens >= `first` removed (renormalised)."""

    def __init__(self, region, first):
        super().__init__()
        self.region, self.first = region, first

    def reweight(self, P):  # (b, heads, pixels, tokens)
        m = train_unet.pooled_region(self.region, P.shape[2])                      # (b, pixels)
        content = (torch.arange(P.shape[3])[None] >= self.first[:, None]).float()  # (b, tokens)
        P = P * (1 - (1 - m)[:, None, :, None] * content[:, None, None, :])
        return P / P.sum(-1, keepdim=True)


def share(x, region, other):
    """Mean of x (rows, 1, H, W) over `region` against over `other`: a / (a + b) per row."""
    a = train_unet.mean_over(x.flatten(1), region.flatten(1))
    b = train_unet.mean_over(x.flatten(1), other.flatten(1))
    return a / (a + b + 1e-8)


def pair_groups(values, edits):
    """{'circle/cup': [the values of the rows whose scene holds those two shapes], ...}, sorted by pair."""
    groups = {}
    for v, e in zip(values, edits):
        groups.setdefault("/".join(sorted(o.shape for o in e.source.objects)), []).append(v)
    return sorted(groups.items())


def by_pair(values, edits):
    """'circle/cup 0.62 ...': the mean of `values` (a tensor, one per row) per shape pair."""
    return " ".join(f"{k} {np.mean(x):.2f}" for k, x in pair_groups(values.tolist(), edits))


def load_models(path):
    """(what, unet, text encoder) of a training checkpoint or an exported folder (e.g. models/toy-instruct)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    if os.path.isdir(path):
        unet, te = train_unet.folder_models(path)
        return f"{path} (folder)", unet.eval(), te.eval()
    ck = sdparts.load_ckpt(path)
    if ck is None:
        raise SystemExit(f"binding_probe: {path}: no such checkpoint or folder")
    unet = UNet2DConditionModel(**ck.get("unet_config", sdparts.unet_config(8)))
    unet.load_state_dict(ck["unet"])
    te = CLIPTextModel(CLIPTextConfig(**sdparts.TEXT_CONFIG))
    te.load_state_dict(ck["te"])
    return f"{path} (step {ck['step']})", unet.eval(), te.eval()


def feature_probe(path, edits, zs, region, empty):
    """--feature-probe (see its help)."""
    what, unet, te = load_models(path)
    names, holder = train_unet.attn2_inputs(unet)
    feats = holder.feats = {}
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # the empty text: after the first cross-attention a feature could carry the noun (= the label)
        unet(torch.cat([torch.randn(zs.shape, generator=g), zs], 1), torch.full((len(edits),), 950),
             te(empty).last_hidden_state)
    # one sample per object: the row's named object (each scene's two rows name its two objects)
    labels, train = object_labels(edits)
    print(f"{what}: shape from image features, x_t = noise, t = 950; test accuracy by layer")
    best = None
    for k in names:
        h = feats[k]                                         # (rows, pixels, channels)
        m = train_unet.pooled_region(region, h.shape[1])     # (rows, pixels)
        x = (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
        acc, pred = fit_linear(x, labels, train)
        print(f"  {k}: {acc:.2f}")
        if best is None or acc > best[0]:
            best = (acc, k, pred)
    acc, k, pred = best
    print(f"  best {k}, test objects right by the scene's shape pair: {right_by_pair(edits, pred, labels, train)}")


def object_labels(edits):
    """(shape index of each row's named object, train split: 2 of every 3 scenes; a scene's two rows together)."""
    labels = torch.tensor([world.SHAPES.index(e.source.objects[e.obj_index].shape) for e in edits])
    return labels, (torch.arange(len(edits)) // 2) % 3 != 2


def fit_linear(x, labels, train):
    """A linear classifier of `labels` from x (rows, features), standardised, fitted on the `train` rows:
    (test accuracy on the rest, predictions for every row)."""
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    w = torch.zeros(x.shape[1], len(world.SHAPES), requires_grad=True)
    b = torch.zeros(len(world.SHAPES), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(x[train] @ w + b, labels[train]) + 1e-3 * (w ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = (x @ w + b).detach().argmax(1)
    return (pred[~train] == labels[~train]).float().mean().item(), pred


def right_by_pair(edits, pred, labels, train):
    """'circle/cup 8/16 ...': per shape pair of the scene, test objects classified right / all."""
    test = (~train).nonzero().flatten().tolist()
    right = [bool(pred[i] == labels[i]) for i in test]
    return " ".join(f"{p} {sum(v)}/{len(v)}" for p, v in pair_groups(right, [edits[i] for i in test]))


def input_probe(edits, zs, images, region):
    """--input-probe (see its help)."""
    labels, train = object_labels(edits)
    m = region[:, 0]                                                          # (rows, H, W) latent pixels
    H = m.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(H).float(), indexing="ij")
    n = m.sum((1, 2)).clamp(min=1)
    cy, cx = ((m * yy).sum((1, 2)) / n).round().long(), ((m * xx).sum((1, 2)) / n).round().long()
    win = 3  # a 7 x 7 latent window (28 px) around the named object's centre
    zp = torch.nn.functional.pad(zs, (win, win, win, win))
    ip = torch.nn.functional.pad(images, (4 * win, 4 * win, 4 * win, 4 * win))
    rows = [("mean latent over the object's pixels (4 numbers)", (zs * region).sum((2, 3)) / n[:, None])]
    rows.append(("7 x 7 latent window (196 numbers)",
                 torch.stack([zp[r, :, cy[r]:cy[r] + 2 * win + 1, cx[r]:cx[r] + 2 * win + 1].flatten()
                              for r in range(len(edits))])))
    rows.append(("the same 28 x 28 px of the image, 2x2-pooled (588 numbers)",
                 torch.stack([torch.nn.functional.avg_pool2d(
                     ip[r, :, 4 * cy[r]:4 * cy[r] + 28, 4 * cx[r]:4 * cx[r] + 28], 2).flatten()
                     for r in range(len(edits))])))
    print("what the source itself tells: shape of the named object, linear classifier, test accuracy")
    for what, x in rows:
        acc, pred = fit_linear(x, labels, train)
        print(f"  {what}: {acc:.2f}; {right_by_pair(edits, pred, labels, train)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", help="training checkpoints (WORK/NAME.ckpt) or exported folders")
    ap.add_argument("--work", default="/work/toytrain")
    ap.add_argument("--scenes", type=int, default=120)
    ap.add_argument("--timesteps", default="300,700,900")
    ap.add_argument("--oracle-mask", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--feature-probe", action="store_true",
                    help="instead: can the UNet's image features tell the shapes apart at the sampler's start? "
                         "The input of every cross-attention layer (the pixels' queries come from it), averaged "
                         "over each object's pixels at x_t = pure noise, t = 950, the empty text, fitted by a linear classifier "
                         "of the shape on 2/3 of the scenes, scored on the rest: accuracy per layer and, for the "
                         "best layer, per shape pair the share of test objects of the two shapes told apart")
    ap.add_argument("--input-probe", action="store_true",
                    help="instead (no checkpoint needed: give any): the same classifier on what the UNet is given, "
                         "the source latent (mean over the object; a 7 x 7 latent window around its centre) and, "
                         "for reference, the same window of the image: how much shape there is to find")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from diffusers import AutoencoderKL, DDPMScheduler

    vae = AutoencoderKL.from_pretrained(os.path.join(a.work, "vae")).eval()
    sf = vae.config.scaling_factor
    tok = sdparts.TokenCache(sdparts.load_tokenizer(os.path.join(a.work, "tokenizer")))
    edits = [e for i in range(a.scenes)
             for e in world.edit_pair_for_seed(world.HELDOUT_SEED_BASE + 900_000 + i, "recolor")]
    with torch.no_grad():
        zs = train_unet.encode_all(vae, np.stack([world.render(e.source)[0] for e in edits]))
        zt = train_unet.encode_all(vae, np.stack([world.render(e.target)[0] for e in edits]))
    region = train_unet.edited_region(zs, zt)                                 # the named object, latent pixels
    other = region.view(-1, 2, *region.shape[1:]).flip(1).reshape(region.shape)  # the partner row's object
    ins = [e.instruction for e in edits]
    ids = tok(ins)
    first = torch.tensor([train_unet.noun_position(tok, ids[r].tolist(), train_unet.shape_label_word(e, ins[r])[1])
                          for r, e in enumerate(edits)])
    if (first < 0).any():
        raise SystemExit("binding_probe: an instruction without its shape word (world's wording changed?)")
    sched = DDPMScheduler(**{k: v for k, v in sdparts.SCHEDULER_CONFIG.items()
                             if k not in ("set_alpha_to_one", "steps_offset")})
    if a.input_probe:
        images = torch.from_numpy(np.stack([world.render(e.source)[0] for e in edits])).permute(0, 3, 1, 2).float()
        input_probe(edits, zs, images / 255.0, region)
        return
    if a.feature_probe:
        for path in a.checkpoints:
            feature_probe(path, edits, zs, region, tok([""] * len(edits)))
        return
    for path in a.checkpoints:
        what, unet, te = load_models(path)
        rec = train_unet.RecordingCrossAttn()
        proc = OracleMaskedCrossAttn(region, first) if a.oracle_mask else rec
        unet.set_attn_processor({k: (proc if ".attn2." in k else v) for k, v in unet.attn_processors.items()})
        print(what + (", oracle mask" if a.oracle_mask else ""))
        with torch.no_grad():
            ehs = te(ids).last_hidden_state
            for tt in (int(x) for x in a.timesteps.split(",")):
                g = torch.Generator().manual_seed(0)
                noise = torch.randn((len(edits) // 2, *zs.shape[1:]), generator=g).repeat_interleave(2, 0)
                tv = torch.full((len(edits),), tt)
                xt = sched.add_noise(zs * sf, noise, tv)
                rec.maps = []
                v = unet(torch.cat([xt, zs], 1), tv, ehs).sample
                ac = sched.alphas_cumprod[tt]
                x0 = (ac.sqrt() * xt - (1 - ac).sqrt() * v) / sf
                out = share((x0 - zs).abs().mean(1, keepdim=True), region, other)
                print(f"  t={tt} out  all {out.mean():.2f}  {by_pair(out, edits)}")
                if rec.maps:
                    att = []
                    for P in rec.maps:  # (rows, heads, pixels, tokens)
                        mass = train_unet.noun_on_mass(P, first)
                        a1 = train_unet.mean_over(mass, train_unet.pooled_region(region, P.shape[2]))
                        a2 = train_unet.mean_over(mass, train_unet.pooled_region(other, P.shape[2]))
                        att.append(a1 / (a1 + a2 + 1e-8))
                    att = torch.stack(att).mean(0)
                    print(f"  t={tt} attn all {att.mean():.2f}  {by_pair(att, edits)}")
                rec.maps = None


if __name__ == "__main__":
    main()
