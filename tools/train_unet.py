#!/usr/bin/env python3
"""Train a toy UNet2DConditionModel jointly with the toy CLIP text encoder, on VAE latents of toy-world data.

    # InstructPix2Pix UNet (8 input channels: noisy latents + source-image latents), instructions as text
    nice -n 10 python3 tools/train_unet.py --mode instruct --work /work/toytrain --minutes 40
    # text-to-image UNet (4 input channels), captions as text; starts its text encoder from the instruct one
    nice -n 10 python3 tools/train_unet.py --mode t2i --work /work/toytrain --minutes 20
    # toy-sd's text encoder alone on freely worded captions (phrasing.captions), the shipped UNet frozen
    # (toy-sd phase 3's recipe; --te-anchor keeps the generator's captions where the p2p settings were tuned)
    nice -n 10 python3 tools/train_unet.py --mode t2i --name t2i_te1 --init models/toy-sd --freeze-unet \
        --phrasing varied --te-anchor 1 --prediction v_prediction --data 12000 --batch 32 --lr 1e-3 --threads 2 \
        --minutes 38
    # a UNet grown to 2 transformer layers per attention block from a 1-layer checkpoint (the added layers start
    # as the identity; toy-instruct phase 15 in docs/quality.md, not shipped)
    python3 tools/train_unet.py --mode instruct --name instruct_v18 --init /work/toytrain/instruct_v16.ckpt \
        --transformer-layers 2 --new-lr-mult 10 ...
    # the shipped UNet grown to 2 resnet + attention pairs at its 16 x 16 level (layers_per_block [2, 1, 1]; the
    # added pairs start as the identity, ahead of the old ones; toy-instruct phases 28-30 in docs/quality.md)
    python3 tools/train_unet.py --mode instruct --name gr_a --init models/toy-instruct --layers-per-block 2,1,1 \
        --new-lr-mult 10 ...

Needs WORK/vae (tools/train_vae.py) and WORK/tokenizer (written here when missing). On a fresh machine, WORK
for fine-tuning the shipped model is its own folder's parts (the encoder of models/toy-instruct/vae is the one
every UNet phase was trained on; docs/quality.md 2026-12-05 23:40):
    mkdir -p /work/toytrain && cp -r models/toy-instruct/vae models/toy-instruct/tokenizer /work/toytrain/
The latent caches (WORK/latents_*.pt) are then rendered on first use (6000 + 4000 pairs + 5000 + 8000 jittered
pairs: 6 minutes on two cores). Epsilon prediction on the
SD1 scaled_linear schedule (1000 steps). Instruct mode drops the text (5%), the image (5%) or both (5%) as in
InstructPix2Pix so both classifier-free guidances work; t2i mode drops the caption 10%.
Seeded and resumable: WORK/<mode>.ckpt holds model (and its UNet config), text encoder, optimiser, step and RNG
states; rerunning continues. Prints the loss curve (EMA) and at the end a held-out denoising loss; writes WORK/<mode>/{unet,text_encoder}.
"""
import argparse
import math
import os
import re
import sys
import time
import types

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "toyworld"))
import phrasing  # noqa: E402
import sdparts  # noqa: E402
import world  # noqa: E402


@torch.no_grad()
def encode_all(vae, imgs, chunk=256):
    out = []
    for i in range(0, len(imgs), chunk):
        out.append(vae.encode(sdparts.to_tensor(imgs[i:i + chunk])).latent_dist.mode())
    return torch.cat(out)


def load_data(work, vae, mode, count, seed0):
    """Cached VAE posterior means (unscaled) of sources and targets + texts."""
    path = os.path.join(work, f"latents_{count}_{seed0}.pt")
    lock = path + ".lock"
    while os.path.exists(lock) and not os.path.exists(path):  # another run is encoding the same data
        time.sleep(5)
    if os.path.exists(path):
        return torch.load(path, weights_only=False)
    open(lock, "w").close()
    sdparts.log(f"rendering {count} edit triplets (seeds {seed0}..{seed0 + count - 1})")
    src, tgt, ins, sc, tc = sdparts.make_edit_dataset(seed0, count)
    sdparts.log("encoding with the VAE")
    d = {"src": encode_all(vae, src), "tgt": encode_all(vae, tgt), "ins": ins, "sc": sc, "tc": tc,
         "types": [world.EDIT_TYPES[i % 4] for i in range(count)]}
    save_cache(d, path)
    if os.path.exists(lock):
        os.remove(lock)
    return d


def load_pair_data(work, vae, count):
    """Cached latents of `count` two-object scenes edited twice, once per object (world.edit_pair_for_seed,
    seeds PAIR_SEED0..): 3 in 4 scenes recolour, 1 in 4 remove. Same keys as load_data."""
    path = os.path.join(work, f"latents_pairs_{count}.pt")
    if os.path.exists(path):
        return torch.load(path, weights_only=False)
    sdparts.log(f"rendering {count} two-object scenes x 2 edits (seeds {PAIR_SEED0}..{PAIR_SEED0 + count - 1})")
    edits = [e for i in range(count)
             for e in world.edit_pair_for_seed(PAIR_SEED0 + i, "remove" if i % 4 == 3 else "recolor")]
    src, tgt, ins, sc, tc = sdparts.render_edits(edits)
    sdparts.log("encoding with the VAE")
    d = {"src": encode_all(vae, src), "tgt": encode_all(vae, tgt), "ins": ins, "sc": sc, "tc": tc,
         "types": [e.edit_type for e in edits]}
    save_cache(d, path)
    return d


def plain_edits(count):
    """The world.Edit of each plain training triplet (deterministic from its seed; no rendering)."""
    return [world.edit_for_seed(i, world.EDIT_TYPES[i % 4]) for i in range(count)]


def pair_edits(count):
    return [e for i in range(count)
            for e in world.edit_pair_for_seed(PAIR_SEED0 + i, "remove" if i % 4 == 3 else "recolor")]


def jitter_edits(count, pairs):
    """Edits of jittered scenes (world.random_scene(jitter=True): colour offsets, 64-128 px, hard edges,
    textured backgrounds): `count` triplets (the four types in turn) then `pairs` two-object scenes edited
    once per object (3 in 4 recolour, 1 in 4 remove)."""
    es = [world.jittered_edit_for_seed(JITTER_SEED0 + i, world.EDIT_TYPES[i % 4]) for i in range(count)]
    es += [e for i in range(pairs)
           for e in world.jittered_edit_pair_for_seed(JITTER_PAIR_SEED0 + i, "remove" if i % 4 == 3 else "recolor")]
    return es


def load_jitter_data(work, vae, count, pairs):
    """Cached latents of jitter_edits(count, pairs), rendered at their own size and resized to 64 px."""
    path = os.path.join(work, f"latents_jitter_{count}_{pairs}.pt")
    edits = jitter_edits(count, pairs)
    if os.path.exists(path):
        d = torch.load(path, weights_only=False)
    else:
        sdparts.log(f"rendering {count} jittered triplets + {pairs} jittered two-object scenes x 2")
        src, tgt, ins, sc, tc = sdparts.render_edits(edits)
        sdparts.log("encoding with the VAE")
        d = {"src": encode_all(vae, src), "tgt": encode_all(vae, tgt), "ins": ins, "sc": sc, "tc": tc,
             "types": [e.edit_type for e in edits]}
        save_cache(d, path)
    return d, edits


def save_cache(d, path):
    """Writes a latent cache atomically (a killed run never leaves a half-written file behind)."""
    torch.save(d, path + ".tmp")
    os.replace(path + ".tmp", path)


PAIR_SEED0 = 50_000_000  # below world.HELDOUT_SEED_BASE, far from the plain triplets' seeds 0..data
JITTER_SEED0 = 60_000_000       # jittered triplets
JITTER_PAIR_SEED0 = 70_000_000  # jittered two-object scenes


def noise_pool(tok_dir, common=15000):
    """Filler words for --noise-words: the tokenizer's whole-word entries among its `common` most frequent
    (CLIP's BPE vocabulary is in merge order), 3-10 ASCII letters, minus every word the toy world or a
    template (training or held-out) uses."""
    import json
    with open(os.path.join(tok_dir, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    words = [w[:-4] for w, i in sorted(vocab.items(), key=lambda kv: kv[1])
             if i < common and w.endswith("</w>") and w[:-4].isascii() and 3 <= len(w) - 4 <= 10]
    pool = phrasing.noise_pool(words)
    sdparts.log(f"unknown-word noise: {len(pool)} filler words")
    return pool


def rephrase(edit, rng, pool, noise_share):
    """A training phrasing of `edit`, with unknown-word noise in `noise_share` of them."""
    text = phrasing.instruction(edit, rng)
    if pool and rng.random() < noise_share:
        text = phrasing.add_noise_words(text, edit.edit_type, rng, pool)
    return text


def shape_label_word(edit, text):
    """--shape-probe's label of a row and the word it rests on: (index in world.SHAPES of the object a recolour
    or remove edit names, the shape word or synonym `text` names it by), or (-1, None) when there is none
    (background, reshape (two shapes), colour-only "the red one", a typo in the noun)."""
    if edit.edit_type not in ("recolor", "remove"):
        return -1, None
    shape = edit.source.objects[edit.obj_index].shape
    words = " " + "".join(ch if ch.isalpha() else " " for ch in text.lower()) + " "
    for w in phrasing.SHAPE_WORDS[shape]:
        if f" {w} " in words:
            return world.SHAPES.index(shape), w
    return -1, None


_WORD_IDS = {}  # shape word -> its token ids (no bos / eos)


def noun_position(tok, ids, word):
    """Index in `ids` (one row of token ids) of the last token of `word`'s first occurrence, or -1."""
    if word not in _WORD_IDS:
        _WORD_IDS[word] = tok.tok(word, add_special_tokens=False).input_ids
    w = _WORD_IDS[word]
    for i in range(len(ids) - len(w) + 1):
        if ids[i:i + len(w)] == w:
            return i + len(w) - 1
    return -1


def edited_region(src, tgt):
    """The latent pixels an edit changes: |target - source| latent mean over channels > 0.5, (rows, 1, H, W) 0/1."""
    return ((tgt - src).abs().mean(1, keepdim=True) > 0.5).float()


def pooled_region(region, pixels):
    """`region` (rows, 1, H, W) max-pooled to a layer's `pixels` (the count of a grid H/f x W/f), flattened."""
    H, W = region.shape[-2:]
    f = round(math.sqrt(H * W / pixels))
    return torch.nn.functional.adaptive_max_pool2d(region, (H // f, W // f)).flatten(1)


def noun_on_mass(P, first):
    """Attention mass (mean over heads) each pixel gives to the tokens at positions >= `first` (rows,):
    P (rows, heads, pixels, tokens) -> (rows, pixels)."""
    P = P.mean(1)
    return (P * (torch.arange(P.shape[2])[None, :] >= first[:, None]).float()[:, None, :]).sum(-1)


def mean_over(x, m):
    """Mean of x (rows, pixels) over the pixels where m (rows, pixels) is 1, per row (0 where m is empty)."""
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


class RecordingCrossAttn:
    """The UNet's cross-attention (attn2) computed explicitly, the same sums as diffusers' AttnProcessor; while
    `maps` is a list, each call appends its attention probabilities, (batch, heads, pixels, tokens) (--attn-bind).
    Subclasses may change the probabilities before they are used (`reweight`)."""

    def __init__(self):
        self.maps = None

    def reweight(self, probs):
        """probs (batch, heads, pixels, tokens) -> the probabilities to use."""
        return probs

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        assert hidden_states.ndim == 3 and encoder_hidden_states is not None and attention_mask is None
        assert attn.spatial_norm is None and attn.group_norm is None and not attn.norm_cross
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))          # (B*heads, pixels, d)
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))  # (B*heads, tokens, d)
        v = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(q, k, None)                 # (B*heads, pixels, tokens)
        b = hidden_states.shape[0]
        probs = self.reweight(probs.view(b, attn.heads, *probs.shape[1:]))
        if self.maps is not None:
            self.maps.append(probs)
        probs = probs.reshape(b * attn.heads, *probs.shape[2:])
        h = attn.to_out[1](attn.to_out[0](attn.batch_to_head_dim(torch.bmm(probs, v))))
        if attn.residual_connection:
            h = h + hidden_states
        return h / attn.rescale_output_factor


def attn_bind_loss(maps, region, first, other=None):
    """--attn-bind: -log(in / (in + out)), the mean over rows and cross-attention layers, where in / out are the
    mean attention mass (over heads) that the pixels inside / outside the edited `region` (rows, 1, H, W latent
    pixels, 0/1) give to the tokens at positions >= `first` (rows,), the noun's last token on. With `other`
    (rows, 1, H, W: the object the row does not name, where known, else all 0), rows that have one add
    -log(in / (in + in_other)): the other object, not only the background, must read less."""
    terms = []
    has_other = None if other is None else other.flatten(1).sum(1) > 0
    for P in maps:  # (rows, heads, pixels, tokens)
        mass = noun_on_mass(P, first)                                                         # (rows, pixels)
        m = pooled_region(region, P.shape[2])                                                 # (rows, pixels)
        inside, outside = mean_over(mass, m), mean_over(mass, 1 - m)
        term = -torch.log(inside / (inside + outside + 1e-8) + 1e-8)
        if has_other is not None and has_other.any():
            o = pooled_region(other, P.shape[2]) * (1 - m)  # where the two overlap, the pixel is the named one's
            in_o = mean_over(mass, o)
            term = term + has_other.float() * -torch.log(inside / (inside + in_o + 1e-8) + 1e-8)
        terms.append(term)
    return torch.stack(terms).mean()


def shape_cover(edit, grid=16):
    """--shape-map's label map of a row: the share of each latent pixel (grid x grid, the 64 px image's latents)
    that each shape of world.SHAPES covers in the edit's source scene (renderer masks, later objects on top),
    (len(SHAPES), grid, grid) float; scenes drawn at 96 or 128 px are pooled the same way."""
    _, masks = world.render(edit.source)
    size = edit.source.size
    out = np.zeros((len(world.SHAPES), grid, grid), np.float32)
    f = size // grid
    for o, m in zip(edit.source.objects, masks):
        out[world.SHAPES.index(o.shape)] += m[:grid * f, :grid * f].reshape(grid, f, grid, f).mean((1, 3))
    return out


def attn2_inputs(unet, key=lambda name: name):
    """Hooks every cross-attention layer (attn2) of `unet`; returns (their names, a holder): while holder.feats is
    a dict, each call stores its input (batch, pixels, channels), what its queries are made from, under
    key(name). Used by ShapeMapHeads and binding_probe.py --feature-probe."""
    holder = types.SimpleNamespace(feats=None)
    names = [n for n, _ in unet.named_modules() if n.endswith(".attn2")]

    def grabber(k):
        def grab(module, args, kwargs):
            if holder.feats is not None:
                holder.feats[k] = args[0] if args else kwargs["hidden_states"]
        return grab
    for n in names:
        unet.get_submodule(n).register_forward_pre_hook(grabber(key(n)), with_kwargs=True)
    return names, holder


class ShapeMapHeads(torch.nn.Module):
    """--shape-map: one linear classifier per cross-attention layer, from the layer's input (what its queries are
    made from) to a shape per pixel. Trained beside the UNet, never exported: it only makes the image features
    tell shapes apart where cross-attention can read them."""

    def __init__(self, unet):
        super().__init__()
        def key(name):  # ModuleDict keys cannot hold dots
            return name.replace(".", "_")
        # holder.feats: set to {} before a forward whose features the heads read, back to None after
        names, self.holder = attn2_inputs(unet, key)
        self.heads = torch.nn.ModuleDict({key(n): torch.nn.Linear(unet.get_submodule(n).to_q.in_features,
                                                                  len(world.SHAPES)) for n in names})

    def loss(self, feats, cover, min_share=0.25):
        """Mean over layers of the cross-entropy of each head's logits, from `feats` ({head: (rows, pixels,
        channels)}), against the shape shares `cover` (rows, S, 16, 16) pooled to the layer's grid, at the pixels
        objects cover by >= min_share (the shares renormalised); returns (loss, accuracy of the argmax against the
        largest share at those pixels), (None, None) when no pixel qualifies."""
        terms, hits, n = [], 0, 0
        for key, x in feats.items():  # x (rows, pixels, channels)
            head = self.heads[key]
            side = round(math.sqrt(x.shape[1]))
            c = torch.nn.functional.adaptive_avg_pool2d(cover, (side, side)).flatten(2).transpose(1, 2)
            share = c.sum(-1)                                         # (rows, pixels)
            keep = share >= min_share
            if not keep.any():
                continue
            logp = torch.log_softmax(head(x[keep]), -1)
            tgt = c[keep] / share[keep][:, None]
            terms.append(-(tgt * logp).sum(-1).mean())
            hits += (logp.argmax(-1) == tgt.argmax(-1)).sum().item()
            n += int(keep.sum())
        if not terms:
            return None, None
        return torch.stack(terms).mean(), hits / n


def folder_models(path):
    """(UNet, text encoder) of an exported diffusers folder (e.g. the shipped models/toy-instruct, whose fp16
    weights are widened to f32)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel
    return (UNet2DConditionModel.from_pretrained(os.path.join(path, "unet")).float(),
            CLIPTextModel.from_pretrained(os.path.join(path, "text_encoder")).float())


def ema_update(prev, x):
    """A running mean for the log: x itself the first time (prev None), then 0.97 prev + 0.03 x."""
    return x if prev is None else 0.97 * prev + 0.03 * x


def per_level(v, levels):
    """A diffusers per-block config value (an int, or a one-entry list, for every block, or a list) as a list of
    ints, `levels` of them unless `v` is a longer list (the caller checks the count)."""
    v = [int(x) for x in ([v] if isinstance(v, int) else v)]
    return v * levels if len(v) == 1 else v


def load_init(path):
    """The --init weights, read once: dict(unet=, te= state dicts, layers= transformer layers per attention
    block, lpb= resnets per down block (a list), what= a description). `path` is a training checkpoint or an
    exported diffusers folder (e.g. the shipped models/toy-instruct, whose fp16 weights are widened to f32 for
    training); checkpoints from before --transformer-layers have 1 layer, from before --layers-per-block 1
    resnet per block."""
    if os.path.isdir(path):
        u, te = folder_models(path)
        return dict(unet=u.state_dict(), layers=int(u.config.transformer_layers_per_block), te=te.state_dict(),
                    lpb=per_level(u.config.layers_per_block, len(u.config.block_out_channels)),
                    what=f"the folder {path}")
    ick = sdparts.load_ckpt(path)
    if ick is None:
        raise SystemExit(f"--init {path}: no such checkpoint or folder")
    ucfg = ick.get("unet_config", {})
    return dict(unet=ick["unet"], te=ick["te"], probe=ick.get("probe"),
                layers=int(ucfg.get("transformer_layers_per_block", 1)),
                lpb=per_level(ucfg.get("layers_per_block", 1), len(ucfg.get("block_out_channels", (32, 64, 64)))),
                what=f"{path} (step {ick['step']}, {ick.get('prediction', 'epsilon')})")


def init_from(src, unet, te):
    """Starts the weights from load_init's `src`. When `unet` has more transformer layers per attention block
    (--transformer-layers) or more resnets per block (--layers-per-block) than the source, the source's layers
    keep their weights and each added layer starts as the identity (grow_resnets, grow_transformer_layers);
    returns the names of the added parameters (empty when nothing was added)."""
    te.load_state_dict(src["te"])
    sd, new_res, shortcuts = grow_resnets(unet.config, src["unet"], src["lpb"])
    missing, unexpected = unet.load_state_dict(sd, strict=False)
    if unexpected:
        raise SystemExit(f"--init: the source has tensors this UNet lacks, e.g. {unexpected[0]} "
                         f"(more layers than --transformer-layers / --layers-per-block?)")
    added_block = re.compile(r"\.transformer_blocks\.([1-9][0-9]*)\.")
    in_new = [k for k in missing if any(k.startswith(p) for p in new_res)]
    rest = [k for k in missing if k not in in_new]  # added transformer layers, or not the same layout
    bad = [k for k in rest if not added_block.search(k)]
    if bad:
        raise SystemExit(f"--init: the source lacks {bad[0]} ({len(bad)} tensors): not the same UNet layout")
    params = dict(unet.named_parameters())
    with torch.no_grad():
        grow_transformer_layers(params, rest)
        grow_resnet_identity(params, in_new, shortcuts)
    added = [k for k in params if k in missing]
    sdparts.log(f"weights initialised from {src['what']}" +
                (f"; {len(added)} tensors of added layers start as the identity" if added else ""))
    return added


def grow_resnets(cfg, sd, src_lpb):
    """Renames state dict `sd` (a UNet with `src_lpb[i]` resnets in down block i) for a UNet of config `cfg`,
    which may have more resnets per block. Down block i gets its d new resnet + attention pairs first, ahead of
    the source's (so every cross-attention after them reads features of a wider receptive field); started as
    the identity (grow_resnet_identity: conv2 and the attention's proj_out zero), the first d skips it emits
    equal its input. The mirrored up block pops skips in reverse: its first src_lpb[i] resnets meet the
    source's skips as before, the d new ones meet the new skips and start as h -> h (conv2 zero, the 1x1
    shortcut over [h ++ skip] = [I, 0]), and the source's last resnet, moved behind them, meets the block's
    input as before. So the grown UNet computes what the source did. Needs in == out channels at a grown
    level. Returns (renamed state dict, prefixes of the added modules, (up resnet prefix, channels) of the
    shortcuts to set)."""
    levels = len(cfg.block_out_channels)
    lpb = per_level(cfg.layers_per_block, levels)
    ren, prefixes, shortcuts = {}, [], []
    for i in range(levels):
        d = lpb[i] - src_lpb[i]
        if d < 0:
            raise SystemExit(f"--layers-per-block: block {i} has {lpb[i]} resnets, fewer than --init's {src_lpb[i]}")
        if d == 0:
            continue
        c_in = cfg.block_out_channels[i - 1] if i else cfg.block_out_channels[0]
        if c_in != cfg.block_out_channels[i]:
            raise SystemExit(f"--layers-per-block: block {i} changes the channels ({c_in} -> "
                             f"{cfg.block_out_channels[i]}), so an added resnet cannot start as the identity")
        u = levels - 1 - i
        for part in ("resnets", "attentions"):
            for k in range(src_lpb[i]):
                ren[f"down_blocks.{i}.{part}.{k}."] = f"down_blocks.{i}.{part}.{k + d}."
            ren[f"up_blocks.{u}.{part}.{src_lpb[i]}."] = f"up_blocks.{u}.{part}.{src_lpb[i] + d}."
        for k in range(d):
            prefixes += [f"down_blocks.{i}.resnets.{k}.", f"down_blocks.{i}.attentions.{k}.",
                         f"up_blocks.{u}.resnets.{src_lpb[i] + k}.", f"up_blocks.{u}.attentions.{src_lpb[i] + k}."]
            shortcuts.append((f"up_blocks.{u}.resnets.{src_lpb[i] + k}.", cfg.block_out_channels[i]))

    def rename(key):
        for a, b in ren.items():
            if key.startswith(a):
                return b + key[len(a):]
        return key
    return {rename(k): v for k, v in sd.items()}, prefixes, shortcuts


def grow_resnet_identity(params, added, shortcuts):
    """Makes the resnet + attention pairs grow_resnets added (parameter names `added`) the identity: conv2
    and proj_out zero, each added up resnet's shortcut [I, 0] (h passes, the skip does not, yet)."""
    for k in added:
        if re.search(r"\.(resnets\.[0-9]+\.conv2|proj_out)\.(weight|bias)$", k):
            params[k].zero_()
    for pre, c in shortcuts:
        w = params[pre + "conv_shortcut.weight"]
        w.zero_()
        w[:, :c, 0, 0] = torch.eye(c)
        params[pre + "conv_shortcut.bias"].zero_()


def grow_transformer_layers(params, added):
    """Makes the transformer blocks --transformer-layers added (parameter names `added`) the identity. A
    diffusers BasicTransformerBlock is residual in all three parts (h += attn1(norm(h)); h += attn2(norm(h),
    text); h += ff(norm(h))), so an added block whose three output projections are zero is the identity: the
    grown UNet computes exactly what the source did, and training then gives the new self/cross-attention and
    feed-forward layers their use."""
    for k in added:
        if re.search(r"\.(attn1\.to_out\.0|attn2\.to_out\.0|ff\.net\.2)\.(weight|bias)$", k):
            params[k].zero_()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["instruct", "t2i"], required=True)
    ap.add_argument("--work", default="/work/toytrain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget for this run")
    ap.add_argument("--total-minutes", type=float, default=None,
                    help="LR schedule length (default: --minutes); keep it fixed when resuming")
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--data", type=int, default=8000, help="number of training triplets (shared by both modes)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save-every", type=int, default=25)
    ap.add_argument("--prediction", choices=["epsilon", "v_prediction"], default="epsilon",
                    help="training target (written to the exported scheduler config's prediction_type)")
    ap.add_argument("--name", default=None, help="checkpoint / output name in WORK (default: the mode)")
    ap.add_argument("--init", default=None,
                    help="start the weights from this checkpoint (e.g. an epsilon run before a v_prediction "
                         "fine-tune); ignored when WORK/<name>.ckpt exists")
    ap.add_argument("--pairs", type=int, default=0,
                    help="instruct: add this many two-object scenes edited once per object (binding data)")
    ap.add_argument("--pair-frac", type=float, default=0.5, help="share of each batch drawn from the pair data")
    ap.add_argument("--phrasing", choices=["canonical", "varied"], default="canonical",
                    help="'varied' rephrases a share of the texts at every step (tools/toyworld/phrasing.py): "
                         "instruct: the instructions (training templates, synonyms, typos); t2i: the captions "
                         "(phrasing.captions: training caption templates, synonyms, word order)")
    ap.add_argument("--phrasing-frac", type=float, default=0.7,
                    help="with --phrasing varied: share of rows rephrased (the rest keep the generator's wording)")
    ap.add_argument("--noise-words", type=float, default=0.0,
                    help="with --phrasing varied: share of the rephrased rows given unknown-word noise "
                         "(phrasing.add_noise_words: filler words from the tokenizer's common words, never a "
                         "template's or a held-out template's word)")
    ap.add_argument("--jitter", type=int, default=0, help="instruct: add this many jittered-scene triplets")
    ap.add_argument("--jitter-pairs", type=int, default=0,
                    help="instruct: add this many jittered two-object scenes edited once per object")
    ap.add_argument("--jitter-frac", type=float, default=0.3, help="share of each batch drawn from the jittered data")
    ap.add_argument("--type-weights", default="recolor=0.5,reshape=0.15,background=0.2,remove=0.15",
                    help="instruct: sampling weight of each edit type inside the plain and jittered groups")
    ap.add_argument("--edit-weight", type=float, default=0.0,
                    help="instruct: weight the loss by 1 + K on the latent pixels the edit changes (|target - source| "
                         "latent mean > 0.5, dilated by one latent pixel), so which object changes (binding) counts "
                         "more than the unchanged rest; 0 = plain MSE")
    ap.add_argument("--flip-frac", type=float, default=0.0,
                    help="instruct: mirror a row's source and target latents up-down and (independently) left-right "
                         "with this probability each, except reshape rows (whose target shapes must stay upright): "
                         "the same scene with its objects in other places, against binding by position")
    ap.add_argument("--pair-together", action="store_true",
                    help="instruct: a drawn two-object pair row brings its partner (the same scene, the other "
                         "object's edit) into the batch with the same noise, timestep and dropout, so the only "
                         "difference the loss sees between the two rows is the instruction (binding)")
    ap.add_argument("--t-high", type=float, default=0.0,
                    help="draw this share of the timesteps from [500, 1000) instead of [0, 1000): the steps at "
                         "which a sampler decides which object changes (below, the noisy latent shows it)")
    ap.add_argument("--shape-probe", type=float, default=0.0,
                    help="instruct: add K x a cross-entropy that tells the named object's shape from the text "
                         "encoder's pooled (end-of-text) state, through a cosine classifier of fixed scale trained "
                         "alongside (so the states must turn apart, not just differ a little). Rows whose text "
                         "names one object by a shape word (recolour, remove); 0 = off")
    ap.add_argument("--shape-probe-token", action="store_true",
                    help="with --shape-probe: apply the same classifier to the noun's own (last) token state as "
                         "well, where the UNet's cross-attention finds the word")
    ap.add_argument("--kv-lr-mult", type=float, default=1.0,
                    help="learning-rate multiplier for the UNet's cross-attention key and value projections "
                         "(attn2.to_k, attn2.to_v): the part that maps the text states to what each pixel reads")
    ap.add_argument("--attn-bind", type=float, default=0.0,
                    help="instruct: add K x a cross-attention routing loss on rows that name one object by a shape "
                         "word (recolour, remove): in every cross-attention layer, the attention mass (mean over "
                         "heads) that a pixel gives to the tokens from the noun on (the ones that know which object "
                         "is meant) should be larger inside the edited region than outside: -log(in / (in + out)) "
                         "of the mean masses; with --pair-together, a row whose partner is in the batch adds "
                         "-log(in / (in + in_other)) against the partner's object (the other object, not only the "
                         "background, must read less); 0 = off")
    ap.add_argument("--attn-bind-from-noise", action="store_true",
                    help="with --attn-bind: take the attention from a second forward of the same rows at the "
                         "sampler's start (pure noise, the source as the image condition, t in [900, 1000)) "
                         "instead of the training forward, whose noised target shows the edited region at low "
                         "and middle t (the attention can find the region there without reading the noun)")
    ap.add_argument("--shape-map", type=float, default=0.0,
                    help="instruct: add K x an auxiliary per-pixel shape loss (ShapeMapHeads): a linear head per "
                         "cross-attention layer classifies, at every latent pixel an object covers, that object's "
                         "shape from the layer's input (labels from the renderer's masks of the source scene; "
                         "recolour and background rows whose image condition is kept and whose timestep is >= "
                         "--shape-map-tmin, where the noised target hardly shows the shapes and the source must). "
                         "The heads are saved in the checkpoint, never exported; 0 = off")
    ap.add_argument("--shape-map-tmin", type=int, default=700,
                    help="with --shape-map: the lowest timestep whose rows it reads")
    ap.add_argument("--shape-map-lr-mult", type=float, default=10.0,
                    help="with --shape-map: learning-rate multiplier of its heads")
    ap.add_argument("--te-lr-mult", type=float, default=1.0,
                    help="learning-rate multiplier for the text encoder (new words need to move further)")
    ap.add_argument("--freeze-unet", action="store_true",
                    help="train the text encoder only (the UNet keeps --init's weights): teaches new wordings "
                         "without moving what the UNet draws for the old ones")
    ap.add_argument("--transformer-layers", type=int, default=None,
                    help="transformer layers per attention block of the UNet (default: --init's, else 1). More "
                         "than --init has grows it: the added layers start as the identity (the grown UNet "
                         "computes what --init did) and train at --new-lr-mult x the learning rate")
    ap.add_argument("--layers-per-block", default=None,
                    help="resnets (each with its attention) per down block, one number or one per block, e.g. "
                         "2,1,1 (default: --init's, else 1; the up blocks have one more). More than --init has "
                         "grows it: each added pair starts as the identity (grow_resnets) and trains at "
                         "--new-lr-mult x the learning rate. Blocks whose first resnet changes the channel "
                         "count cannot grow")
    ap.add_argument("--new-lr-mult", type=float, default=5.0,
                    help="learning-rate multiplier for the layers --transformer-layers and --layers-per-block add")
    ap.add_argument("--te-anchor", type=float, default=0.0,
                    help="add K x the MSE between the text encoder's hidden states of the batch's generator "
                         "texts (canonical wording) and those of the --init text encoder, so the wording the "
                         "model was tuned on keeps its embedding; 0 = off")
    a = ap.parse_args()
    if a.flip_frac and a.mode != "instruct":
        ap.error("--flip-frac mirrors instruct rows; --mode t2i does not use it")
    if not 0.0 <= a.t_high <= 1.0:
        ap.error("--t-high is a share in [0, 1]")
    if a.shape_probe and (a.mode != "instruct" or a.phrasing == "canonical"):
        ap.error("--shape-probe needs --mode instruct and --phrasing varied (it reads each row's edit)")
    if a.shape_probe_token and not a.shape_probe:
        ap.error("--shape-probe-token goes with --shape-probe K")
    if a.attn_bind and (a.mode != "instruct" or a.phrasing == "canonical"):
        ap.error("--attn-bind needs --mode instruct and --phrasing varied (it reads each row's edit)")
    if a.shape_map and a.mode != "instruct":
        ap.error("--shape-map reads instruct rows' source scenes; --mode t2i has none")
    if a.shape_map and a.flip_frac:
        ap.error("--shape-map's labels are of the unflipped scenes: not with --flip-frac")
    if a.attn_bind_from_noise and not a.attn_bind:
        ap.error("--attn-bind-from-noise goes with --attn-bind K")
    if a.attn_bind and a.flip_frac:
        ap.error("--attn-bind reads the edited region from the unflipped latents: not with --flip-frac")
    if a.pair_together and a.mode != "instruct":
        ap.error("--pair-together pairs instruct rows; --mode t2i has none")
    if a.edit_weight and a.mode != "instruct":
        ap.error("--edit-weight weights the instruct loss by the edited region; --mode t2i has no edit")
    if a.noise_words and a.phrasing != "varied":
        ap.error("--noise-words acts on the rephrased rows: it needs --phrasing varied")
    if (a.pairs or a.jitter or a.jitter_pairs or a.noise_words) and a.mode != "instruct":
        ap.error("--pairs, --jitter, --jitter-pairs and --noise-words are instruct training data; --mode t2i does not use them")
    if a.transformer_layers is not None and a.transformer_layers < 1:
        ap.error("--transformer-layers must be >= 1")
    if a.layers_per_block is not None:
        try:
            a.layers_per_block = [int(x) for x in a.layers_per_block.split(",")]
        except ValueError:
            ap.error(f"--layers-per-block {a.layers_per_block!r}: give numbers, e.g. 2 or 2,1,1")
        if min(a.layers_per_block) < 1:
            ap.error("--layers-per-block: every block needs >= 1 resnet")
    if (a.freeze_unet or a.te_anchor) and not a.init:
        ap.error("--freeze-unet and --te-anchor keep what --init trained: give --init")
    name = a.name or a.mode
    torch.set_num_threads(a.threads)
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok_dir = os.path.join(a.work, "tokenizer")
    if not os.path.exists(os.path.join(tok_dir, "vocab.json")):
        sdparts.write_clip_tokenizer(tok_dir)
    tok = sdparts.TokenCache(sdparts.load_tokenizer(tok_dir))
    pool = noise_pool(tok_dir) if a.noise_words else None
    vae = AutoencoderKL.from_pretrained(os.path.join(a.work, "vae")).eval()
    sf = vae.config.scaling_factor
    seed0 = 0  # both modes train on the same rendered triplets (t2i on their source and target images)
    data = load_data(a.work, vae, a.mode, a.data, seed0)
    N = len(data["ins"])
    n_plain = N
    n_pair_rows = 0
    need_edits = a.phrasing != "canonical" or bool(a.shape_map)
    edits = plain_edits(a.data) if need_edits else None
    if a.pairs:
        pd = load_pair_data(a.work, vae, a.pairs)
        n_pair_rows = len(pd["ins"])
        data = {"src": torch.cat([data["src"], pd["src"]]), "tgt": torch.cat([data["tgt"], pd["tgt"]]),
                **{k: data[k] + pd[k] for k in ("ins", "sc", "tc", "types")}}
        N = len(data["ins"])
        if need_edits:
            edits += pair_edits(a.pairs)
    n_jit_rows = 0
    if a.jitter or a.jitter_pairs:
        jd, jedits = load_jitter_data(a.work, vae, a.jitter, a.jitter_pairs)
        n_jit_rows = len(jd["ins"])
        data = {"src": torch.cat([data["src"], jd["src"]]), "tgt": torch.cat([data["tgt"], jd["tgt"]]),
                **{k: data[k] + jd[k] for k in ("ins", "sc", "tc", "types")}}
        N = len(data["ins"])
        if need_edits:
            edits += jedits
    if need_edits:
        assert len(edits) == N and all(e.instruction == t for e, t in zip(edits, data["ins"])), \
            "edit metadata out of step with the cached latents"

    src = load_init(a.init) if a.init else None
    torch.manual_seed(a.seed)
    in_ch = 8 if a.mode == "instruct" else 4
    ck_path = os.path.join(a.work, f"{name}.ckpt")
    ck = sdparts.load_ckpt(ck_path)
    if ck and "unet_config" in ck:
        ucfg = ck["unet_config"]
        if a.transformer_layers is not None and a.transformer_layers != ucfg["transformer_layers_per_block"]:
            ap.error(f"--transformer-layers {a.transformer_layers}: {ck_path} was trained with "
                     f"{ucfg['transformer_layers_per_block']} (start a new --name to grow it)")
        nl = len(ucfg["block_out_channels"])
        if a.layers_per_block is not None and per_level(ucfg["layers_per_block"], nl) != \
                per_level(a.layers_per_block, nl):
            ap.error(f"--layers-per-block: {ck_path} was trained with {ucfg['layers_per_block']} (start a new --name "
                     f"to grow it)")
    else:
        layers = a.transformer_layers or (src["layers"] if src else 1)
        ucfg = dict(sdparts.unet_config(in_ch), transformer_layers_per_block=layers)
        levels = len(ucfg["block_out_channels"])
        lpb = per_level(a.layers_per_block or (src["lpb"] if src else 1), levels)
        if len(lpb) != levels:
            ap.error(f"--layers-per-block: {len(lpb)} numbers for {levels} blocks")
        ucfg["layers_per_block"] = lpb[0] if len(set(lpb)) == 1 else lpb
    unet = UNet2DConditionModel(**ucfg)
    te = CLIPTextModel(CLIPTextConfig(**sdparts.TEXT_CONFIG))
    if a.mode == "t2i" and os.path.exists(os.path.join(a.work, "instruct", "text_encoder")):
        te = CLIPTextModel.from_pretrained(os.path.join(a.work, "instruct", "text_encoder"))
        sdparts.log("text encoder initialised from the instruct model's")
    sched = DDPMScheduler(**{k: v for k, v in sdparts.SCHEDULER_CONFIG.items()
                             if k not in ("set_alpha_to_one", "steps_offset")})
    if a.freeze_unet:
        unet.requires_grad_(False)
    added = set(ck.get("added_params", [])) if ck else set()
    if src and not ck:
        added = set(init_from(src, unet, te))
    named = list(unet.named_parameters())
    kv = {k for k, _ in named if ".attn2.to_k." in k or ".attn2.to_v." in k} if a.kv_lr_mult != 1.0 else set()
    groups = ([] if a.freeze_unet else
              [{"params": [p for k, p in named if k not in added and k not in kv], "mult": 1.0}] +
              ([{"params": [p for k, p in named if k in added], "mult": a.new_lr_mult}] if added else []) +
              ([{"params": [p for k, p in named if k in kv and k not in added], "mult": a.kv_lr_mult}]
               if kv else [])) + \
        [{"params": list(te.parameters()), "mult": a.te_lr_mult}]
    recorder = None
    if a.attn_bind:
        recorder = RecordingCrossAttn()
        unet.set_attn_processor({k: (recorder if ".attn2." in k else v) for k, v in unet.attn_processors.items()})
    probe = None
    if a.shape_probe:  # one unit vector per shape; logits = 10 x cosine(pooled state, unit)
        probe = torch.nn.Parameter(torch.randn(len(world.SHAPES), te.config.hidden_size) * 0.1)
        if src is not None and src.get("probe") is not None and not ck:
            probe.data.copy_(src["probe"])  # --init's probe goes on with the text encoder it was trained with
            sdparts.log("shape probe initialised from --init's")
        groups.append({"params": [probe], "mult": 20.0})
    smap = None
    if a.shape_map:
        smap = ShapeMapHeads(unet)
        groups.append({"params": list(smap.parameters()), "mult": a.shape_map_lr_mult})
        covers = {}  # row -> shape_cover, rendered when a row is first drawn

        def cover_of(i):
            if i not in covers:
                covers[i] = torch.from_numpy(shape_cover(edits[i])).half()
            return covers[i].float()
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=a.lr, weight_decay=1e-4)
    step, rng, elapsed0 = 0, np.random.default_rng(a.seed + 1), 0.0
    te0 = None
    if a.te_anchor:  # the --init text encoder, frozen (a resumed run takes it from --init too)
        te0 = CLIPTextModel(CLIPTextConfig(**sdparts.TEXT_CONFIG))
        UNet2DConditionModel(**ucfg)  # unused: its random init keeps the torch RNG stream, so recipes reproduce
        te0.load_state_dict(src["te"])
        te0.requires_grad_(False).eval()
    if ck:
        unet.load_state_dict(ck["unet"])
        te.load_state_dict(ck["te"])
        if probe is not None:
            if ck.get("probe") is None:
                ap.error(f"--shape-probe: {ck_path} was trained without it (start a new --name)")
            probe.data.copy_(ck["probe"])
        if smap is not None:
            if ck.get("shape_heads") is None:
                ap.error(f"--shape-map: {ck_path} was trained without it (start a new --name)")
            smap.load_state_dict(ck["shape_heads"])
        opt.load_state_dict(ck["opt"])
        step, rng, elapsed0 = ck["step"], ck["rng"], ck.get("elapsed", 0.0)
        torch.set_rng_state(ck["torch_rng"])
        sdparts.log(f"resumed at step {step} ({elapsed0 / 60:.1f} min trained)")
    sdparts.log(f"unet params {sum(p.numel() for p in unet.parameters())}, "
                f"text encoder params {sum(p.numel() for p in te.parameters())}, data {N}")
    total = (a.total_minutes or a.minutes) * 60
    empty = tok([""])
    # edit-type weights (--type-weights; recolour is the headline edit)
    tw = {}
    for item in a.type_weights.split(","):
        k, _, v = item.partition("=")
        if k.strip() not in ("recolor", "reshape", "background", "remove") or not v:
            ap.error(f"--type-weights: '{item}' is not TYPE=WEIGHT with TYPE one of recolor, reshape, background, remove")
        tw[k.strip()] = float(v)
    w = np.array([tw.get(t, 0.0) for t in data["types"]])
    # groups of rows: plain triplets, pairs, jittered (triplets + pairs); plain and jittered keep their type
    # mix inside; the pairs are uniform; each group gets its share of the batch
    j_frac = a.jitter_frac if n_jit_rows else 0.0
    p_frac = a.pair_frac if n_pair_rows else 0.0
    groups = [(0, n_plain, 1 - p_frac - j_frac), (n_plain, n_plain + n_pair_rows, p_frac),
              (n_plain + n_pair_rows, N, j_frac)]
    assert groups[0][2] > 0, "--pair-frac + --jitter-frac must leave a share for the plain triplets"
    if n_pair_rows:
        w[n_plain:n_plain + n_pair_rows] = 1.0
    for lo, hi, share in groups:
        if hi > lo:
            w[lo:hi] *= share / w[lo:hi].sum()
    w = w / w.sum()

    # pair rows (plain pairs, then the jittered pairs after the jittered triplets) lie in twos: rows lo + 2k and
    # lo + 2k + 1 edit the same scene, one object each
    pair_ranges = [(n_plain, n_plain + n_pair_rows), (n_plain + n_pair_rows + a.jitter, N)]

    def partner(i):
        for lo, hi in pair_ranges:
            if lo <= i < hi:
                return lo + ((i - lo) ^ 1)
        return None

    def draw_batch():
        """Row indices of a batch and, per row, the batch position whose noise, timestep and dropout it takes
        (--pair-together: a partner row takes its pair's; None when every row has its own)."""
        if not a.pair_together:
            return torch.from_numpy(rng.choice(N, a.batch, p=w)), None
        rows, same = [], []
        while len(rows) < a.batch:
            for i in rng.choice(N, a.batch, p=w).tolist():
                j = partner(i)
                if j is None:
                    same.append(len(rows))
                    rows.append(i)
                elif len(rows) + 2 <= a.batch:
                    same += [len(rows)] * 2
                    rows += [i, j]
                if len(rows) == a.batch:
                    break
        return torch.tensor(rows), torch.tensor(same)

    def save(elapsed):
        sdparts.save_ckpt(ck_path, unet=unet.state_dict(), te=te.state_dict(), opt=opt.state_dict(), step=step,
                          rng=rng, torch_rng=torch.get_rng_state(), elapsed=elapsed, prediction=a.prediction,
                          mode=a.mode, unet_config=ucfg, added_params=sorted(added),
                          probe=None if probe is None else probe.detach().clone(),
                          shape_heads=None if smap is None else smap.state_dict())

    t0, ema = time.time(), 0.0
    probe_ce = bind_ema = smap_ema = smap_acc = None
    unet.train()
    te.train()
    while step < a.steps and time.time() - t0 < a.minutes * 60:
        elapsed = elapsed0 + time.time() - t0
        frac = min(1.0, elapsed / total)
        warm = min(1.0, (step + 1) / 50)
        for g in opt.param_groups:
            g["lr"] = g.get("mult", 1.0) * a.lr * warm * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac)))
        idx, same = draw_batch()
        if a.mode == "instruct":
            texts = canon = [data["ins"][i] for i in idx]
            if a.phrasing == "varied":
                texts = [rephrase(edits[i], rng, pool, a.noise_words) if rng.random() < a.phrasing_frac else t
                         for i, t in zip(idx.tolist(), texts)]
            x0 = data["tgt"][idx] * sf
            cond = data["src"][idx].clone()  # unscaled, as StableDiffusionInstructPix2PixPipeline feeds it
            if a.flip_frac:  # mirror source and target together (not reshape rows: their shapes are drawn)
                for r, i in enumerate(idx.tolist()):
                    dims = [d for d in (-2, -1) if rng.random() < a.flip_frac]
                    if dims and data["types"][i] != "reshape":
                        x0[r], cond[r] = x0[r].flip(dims), cond[r].flip(dims)
        else:
            use_t = rng.random(a.batch) < 0.5
            texts = canon = [data["tc"][i] if u else data["sc"][i] for i, u in zip(idx.tolist(), use_t)]
            if a.phrasing == "varied":
                texts = [phrasing.captions(edits[i], rng)[int(u)] if rng.random() < a.phrasing_frac else t
                         for i, u, t in zip(idx.tolist(), use_t, texts)]
            x0 = torch.where(torch.from_numpy(use_t)[:, None, None, None], data["tgt"][idx], data["src"][idx]) * sf
        ids = tok(texts)
        p = rng.random(a.batch)
        if same is not None:
            p = p[same.numpy()]
        if a.mode == "instruct":
            drop_txt = p < 0.10             # 0.00-0.05 text only, 0.05-0.10 both
            drop_img = (p >= 0.05) & (p < 0.15)
            cond[torch.from_numpy(drop_img)] = 0
        else:
            drop_txt = p < 0.10
        ids[torch.from_numpy(drop_txt)] = empty[0]
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (a.batch,))
        if a.t_high:
            hi = torch.from_numpy(rng.random(a.batch) < a.t_high)
            t[hi] = torch.randint(500, 1000, (int(hi.sum()),))
        if same is not None:
            noise, t = noise[same], t[same]
        xt = sched.add_noise(x0, noise, t)
        inp = torch.cat([xt, cond], 1) if a.mode == "instruct" else xt
        te_out = te(ids)
        ehs = te_out.last_hidden_state
        if recorder is not None and not a.attn_bind_from_noise:
            recorder.maps = []
        if smap is not None:
            smap.holder.feats = {}
        pred = unet(inp, t, ehs).sample
        if smap is not None:  # this forward's features only (--attn-bind-from-noise runs another)
            smap_feats, smap.holder.feats = smap.holder.feats, None
        target = noise if a.prediction == "epsilon" else sched.get_velocity(x0, noise, t)
        if a.edit_weight:  # instruct only (checked above)
            changed = torch.nn.functional.max_pool2d(edited_region(data["src"][idx], data["tgt"][idx]), 3,
                                                     stride=1, padding=1)
            wmap = 1 + a.edit_weight * changed
            loss = (wmap * (pred - target) ** 2).mean() / wmap.mean()
        else:
            loss = torch.nn.functional.mse_loss(pred, target)
        if probe is not None or recorder is not None:  # each row's named shape and the word naming it
            lw = [shape_label_word(edits[i], x) for i, x in zip(idx.tolist(), texts)]
        if probe is not None:
            lab = torch.tensor([x[0] for x in lw])
            keep = (lab >= 0) & ~torch.from_numpy(drop_txt)
            if keep.any():
                feats, labs = [te_out.pooler_output[keep]], [lab[keep]]
                if a.shape_probe_token:
                    rows = [(r, noun_position(tok, ids[r].tolist(), lw[r][1])) for r in range(len(lw)) if keep[r]]
                    rows = [(r, q) for r, q in rows if q >= 0]
                    if rows:
                        feats.append(ehs[[r for r, _ in rows], [q for _, q in rows]])
                        labs.append(lab[[r for r, _ in rows]])
                f = torch.nn.functional.normalize(torch.cat(feats), dim=-1)
                logits = 10.0 * f @ torch.nn.functional.normalize(probe, dim=-1).T
                ce = torch.nn.functional.cross_entropy(logits, torch.cat(labs))
                loss = loss + a.shape_probe * ce
                probe_ce = ema_update(probe_ce, ce.item())
        if recorder is not None:
            maps, recorder.maps = recorder.maps, None
            rows = [(r, noun_position(tok, ids[r].tolist(), w)) for r, (lab, w) in enumerate(lw)
                    if lab >= 0 and not drop_txt[r]]
            regions = edited_region(data["src"][idx], data["tgt"][idx])  # the batch's rows
            rows = [(r, q) for r, q in rows if q >= 0 and regions[r].any()]
            if rows:
                sel, first = torch.tensor([r for r, _ in rows]), torch.tensor([q for _, q in rows])
                other = None
                if same is not None:  # --pair-together: a pair's partner row is in the batch; its region is
                    # the object this row does not name (all 0 for a row without a partner)
                    other = torch.zeros_like(regions[sel])
                    for n, r in enumerate(sel.tolist()):
                        mates = (same == same[r]).nonzero().flatten().tolist()
                        if len(mates) == 2:
                            other[n] = regions[mates[0] if mates[1] == r else mates[1]]
                if a.attn_bind_from_noise:
                    # the sampler's first steps: pure noise, the source as the image condition, t in [900, 1000)
                    recorder.maps = []
                    unet(torch.cat([torch.randn_like(x0[sel]), data["src"][idx[sel]]], 1),
                         torch.randint(900, 1000, (len(sel),)), ehs[sel])
                    maps, recorder.maps = recorder.maps, None
                else:
                    maps = [P[sel] for P in maps]
                bl = attn_bind_loss(maps, regions[sel], first, other)
                loss = loss + a.attn_bind * bl
                bind_ema = ema_update(bind_ema, bl.item())
        if smap is not None:
            sel = [r for r, i in enumerate(idx.tolist()) if data["types"][i] in ("recolor", "background")
                   and not drop_img[r] and t[r] >= a.shape_map_tmin]
            if sel:
                sm, acc = smap.loss({k: f[sel] for k, f in smap_feats.items()},
                                    torch.stack([cover_of(idx[r].item()) for r in sel]))
                if sm is not None:
                    loss = loss + a.shape_map * sm
                    smap_ema = ema_update(smap_ema, sm.item())
                    smap_acc = ema_update(smap_acc, acc)
        if te0 is not None:
            # canon: the batch's texts in the generator's wording, taken before rephrasing
            cids = tok(canon)
            with torch.no_grad():
                ref = te0(cids).last_hidden_state
            loss = loss + a.te_anchor * torch.nn.functional.mse_loss(te(cids).last_hidden_state, ref)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema == 0 else 0.97 * ema + 0.03 * loss.item()
        if step % 10 == 0:
            sdparts.log(f"step {step} loss {loss.item():.4f} ema {ema:.4f} lr {opt.param_groups[0]['lr']:.2e}"
                        + (f" shape-probe ce ema {probe_ce:.3f}" if probe_ce is not None else "")
                        + (f" attn-bind ema {bind_ema:.3f}" if bind_ema is not None else "")
                        + (f" shape-map ce ema {smap_ema:.3f} acc {smap_acc:.2f}" if smap_ema is not None else ""))
        if step % a.save_every == 0:
            save(elapsed0 + time.time() - t0)
    save(elapsed0 + time.time() - t0)
    # held-out denoising loss at fixed timesteps (seeded, held-out scenes)
    unet.eval()
    te.eval()
    with torch.no_grad():
        src, tgt, ins, sc, tc = [], [], [], [], []
        for i in range(64):
            e = world.edit_for_seed(world.HELDOUT_SEED_BASE + 700_000 + i, world.EDIT_TYPES[i % 4])
            src.append(world.render(e.source)[0])
            tgt.append(world.render(e.target)[0])
            ins.append(e.instruction)
            tc.append(e.target.caption())
        zs, zt = encode_all(vae, np.stack(src)), encode_all(vae, np.stack(tgt)) * sf
        g = torch.Generator().manual_seed(0)
        losses = []
        for tt in (100, 300, 500, 700, 900):
            noise = torch.randn(zt.shape, generator=g)
            tv = torch.full((64,), tt)
            xt = sched.add_noise(zt, noise, tv)
            inp = torch.cat([xt, zs], 1) if a.mode == "instruct" else xt
            ehs = te(tok(ins if a.mode == "instruct" else tc)).last_hidden_state
            target = noise if a.prediction == "epsilon" else sched.get_velocity(zt, noise, tv)
            losses.append(torch.nn.functional.mse_loss(unet(inp, tv, ehs).sample, target).item())
    out = os.path.join(a.work, name)
    unet.save_pretrained(os.path.join(out, "unet"))
    te.save_pretrained(os.path.join(out, "text_encoder"))
    with open(os.path.join(out, "prediction_type"), "w") as f:
        f.write(a.prediction + "\n")
    sdparts.log(f"final: steps {step}, train loss ema {ema:.4f}, held-out {a.prediction}-MSE at t=100/300/500/700/900: "
                + " ".join(f"{x:.4f}" for x in losses) + f" (mean {np.mean(losses):.4f})")


if __name__ == "__main__":
    main()
