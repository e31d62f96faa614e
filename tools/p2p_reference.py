#!/usr/bin/env python3
"""A short PyTorch reference of Prompt-to-Prompt (Hertz et al., ICLR 2023) on top of diffusers.

It follows the paper's released controllers (google/prompt-to-prompt: AttentionReplace, AttentionRefine,
AttentionReweight, LocalBlend, the sequence aligner) with the conventions diffedit uses, so that the Swift
implementation (Sources/DiffEdit/Editing/P2PController.swift) can be matched number for number:

- words are the prompt split on whitespace; a word's tokens are the CLIP tokens of that word alone
  (equal to the paper's get_word_inds for ordinary words);
- word swap (same number of words) uses the paper's replacement mapper, otherwise the refinement
  mapper (Needleman-Wunsch over token ids, gap 0, match 1, mismatch -1); `reweight` wraps either;
- cross-attention editing for steps < int(cross_replace_steps * (steps + 1)), self-attention map injection
  for steps < int(self_replace_steps * steps) in self-attention layers of height <= the LocalBlend
  resolution (the paper: <= 16x16 at 64x64 latents);
- LocalBlend: cross-attention maps of the conditional half, *after* editing, summed over steps, from all
  down/up cross-attention layers whose height is the one closest to latent_height / 4 (ties: larger),
  summed over the blend words' tokens, averaged over layers and heads, 3x3 max-pooled, nearest-resized to
  the latent size, scaled to [0, 1] by its min and max (the paper: divided by the max), > threshold (0.3); union of source and target masks; applied
  after each scheduler step once more than int(0.2 * steps) steps have run:
  x_tgt <- x_src + mask * (x_tgt - x_src);
- batch order [uncond_src, uncond_tgt, cond_src, cond_tgt]; controllers edit the conditional half only;
- negative-prompt inversion (Miyake et al. 2023): the uncond embedding is the source prompt's.
"""
import numpy as np
import torch
import torch.nn.functional as F

MAX_LEN = 77
BLEND_THRESHOLD = 0.3
BLEND_START = 0.2


# ----------------------------------------------------------------------------------------------------
# token bookkeeping

def word_token_counts(tokenizer, prompt):
    return [len(tokenizer(w, add_special_tokens=False).input_ids) for w in prompt.split()]


def word_inds(tokenizer, prompt, word_index):
    counts = word_token_counts(tokenizer, prompt)
    start = 1 + sum(counts[:word_index])
    return list(range(start, min(start + counts[word_index], MAX_LEN - 1)))


def inds_of_words(tokenizer, prompt, words):
    out = []
    for i, w in enumerate(prompt.split()):
        if w in words:
            out += word_inds(tokenizer, prompt, i)
    return out


def replacement_mapper(tokenizer, x, y):
    wx, wy = x.split(), y.split()
    assert len(wx) == len(wy)
    inds_replace = [i for i in range(len(wy)) if wy[i] != wx[i]]
    src = [word_inds(tokenizer, x, i) for i in inds_replace]
    tgt = [word_inds(tokenizer, y, i) for i in inds_replace]
    mapper = np.zeros((MAX_LEN, MAX_LEN), dtype=np.float32)
    i = j = cur = 0
    while i < MAX_LEN and j < MAX_LEN:
        if cur < len(src) and len(src[cur]) > 0 and src[cur][0] == i:
            s, t = src[cur], tgt[cur]
            if len(s) == len(t):
                mapper[s, t] = 1
            else:
                for it in t:
                    mapper[s, it] = 1.0 / len(t)
            cur += 1
            i += len(s)
            j += len(t)
        elif cur < len(src):
            mapper[i, j] = 1
            i += 1
            j += 1
        else:
            mapper[j, j] = 1
            i += 1
            j += 1
    return torch.from_numpy(mapper)


def global_align(x, y):
    nx, ny = len(x), len(y)
    m = np.zeros((nx + 1, ny + 1), dtype=np.int64)
    tb = np.zeros((nx + 1, ny + 1), dtype=np.int64)
    tb[0, 1:] = 1
    tb[1:, 0] = 2
    tb[0, 0] = 4
    for i in range(1, nx + 1):
        for j in range(1, ny + 1):
            left = m[i, j - 1]
            up = m[i - 1, j]
            diag = m[i - 1, j - 1] + (1 if x[i - 1] == y[j - 1] else -1)
            m[i, j] = max(left, up, diag)
            if m[i, j] == left:
                tb[i, j] = 1
            elif m[i, j] == up:
                tb[i, j] = 2
            else:
                tb[i, j] = 3
    i, j = nx, ny
    mapper = []
    while i > 0 or j > 0:
        if tb[i, j] == 3:
            i -= 1
            j -= 1
            mapper.append((j, i))
        elif tb[i, j] == 1:
            j -= 1
            mapper.append((j, -1))
        elif tb[i, j] == 2:
            i -= 1
        else:
            break
    mapper.reverse()
    return mapper


def refinement_mapper(tokenizer, x, y):
    xs = tokenizer(x).input_ids[:MAX_LEN]
    ys = tokenizer(y).input_ids[:MAX_LEN]
    base = global_align(xs, ys)
    alphas = torch.ones(MAX_LEN)
    mapper = torch.zeros(MAX_LEN, dtype=torch.int64)
    for k, (_, xi) in enumerate(base):
        alphas[k] = 0.0 if xi == -1 else 1.0
        mapper[k] = xi if xi >= 0 else MAX_LEN - 1
    for k in range(len(base), MAX_LEN):
        mapper[k] = k
    return mapper, alphas


def blend_words(source, target, reweight):
    ws, wt = source.split(), target.split()
    a = [w for w in ws if w not in wt]
    b = [w for w in wt if w not in ws]
    if not a and not b:
        a = [w for w in ws if w in reweight]
        b = [w for w in wt if w in reweight]
    return a, b


# ----------------------------------------------------------------------------------------------------
# the controller

class P2PController:
    def __init__(self, tokenizer, source, target, steps, cross_replace=0.8, self_replace=0.4,
                 reweight=None, local_blend=True, blend_height=None, latent_hw=None, blend_dilation=1,
                 blend_threshold=BLEND_THRESHOLD):
        reweight = reweight or {}
        self.blend_dilation = blend_dilation    # max-pool radius (the paper's 3x3 = 1)
        self.blend_threshold = blend_threshold
        self.steps = steps
        self.step = 0
        self.is_replace = len(source.split()) == len(target.split())
        if self.is_replace:
            self.mapper = replacement_mapper(tokenizer, source, target)
        else:
            self.mapper, self.alphas = refinement_mapper(tokenizer, source, target)
        self.equalizer = None
        if reweight:
            eq = torch.ones(MAX_LEN)
            for i, w in enumerate(target.split()):
                if w in reweight:
                    eq[word_inds(tokenizer, target, i)] = reweight[w]
            self.equalizer = eq
        self.cross_end = int(cross_replace * (steps + 1))
        self.self_end = int(self_replace * steps)
        self.blend_height = blend_height
        self.latent_hw = latent_hw
        self.local_blend = local_blend
        a, b = blend_words(source, target, reweight)
        self.alpha_src = torch.zeros(MAX_LEN)
        self.alpha_tgt = torch.zeros(MAX_LEN)
        self.alpha_src[inds_of_words(tokenizer, source, a)] = 1
        self.alpha_tgt[inds_of_words(tokenizer, target, b)] = 1
        if not (a or b):
            self.local_blend = False
        self.store = {}       # site name -> summed maps [2, heads, Lq, 77] (cond half)
        self.blend_calls = 0
        self.last_mask = None

    # probs [4*heads, Lq, Lk] from diffusers' get_attention_scores
    def cross(self, name, place, h, w, probs):
        heads = probs.shape[0] // 4
        p = probs.reshape(4, heads, *probs.shape[1:])
        if self.step < self.cross_end:
            base, rep = p[2], p[3]
            if self.is_replace:
                new = torch.einsum("hpw,wn->hpn", base, self.mapper)
            else:
                new = base[:, :, self.mapper] * self.alphas + rep * (1 - self.alphas)
            if self.equalizer is not None:
                new = new * self.equalizer
            p[3] = new
        if place != "mid" and self.local_blend:
            cond = p[2:4].clone()
            if name in self.store:
                self.store[name] = self.store[name] + cond
            else:
                self.store[name] = cond
        return p.reshape(probs.shape)

    def self_map_source(self, h):
        return self.step < self.self_end and h <= self.blend_height

    def blend(self, lat):
        """lat [2, 4, h, w] = [source, target]."""
        self.blend_calls += 1
        if not self.local_blend or self.blend_calls <= int(BLEND_START * self.steps):
            return lat
        maps = []
        for name, m in self.store.items():
            hh = int(round((m.shape[2] * self.latent_hw[0] / self.latent_hw[1]) ** 0.5))
            if hh != self.blend_height:
                continue
            ww = m.shape[2] // hh
            maps.append(m.reshape(2, m.shape[1], hh, ww, MAX_LEN))
        maps = torch.cat(maps, dim=1)                                    # [2, L*heads, hh, ww, 77]
        alpha = torch.stack([self.alpha_src, self.alpha_tgt])[:, None, None, None, :]
        m = (maps * alpha).sum(-1).mean(1, keepdim=True)                  # [2, 1, hh, ww]
        k = self.blend_dilation
        if k > 0:
            m = F.max_pool2d(m, (2 * k + 1, 2 * k + 1), (1, 1), padding=(k, k))
        m = F.interpolate(m, size=lat.shape[2:])                          # nearest
        # scaled by the map's range ((m - min) / (max - min)); the paper divides by the max only, the same
        # for maps with a ~0 floor; a flat map selects everything
        mx = m.amax(dim=(2, 3), keepdim=True)
        mn = m.amin(dim=(2, 3), keepdim=True)
        rng = mx - mn
        flat = rng <= 1e-6 * mx
        m = (m - mn) / torch.where(flat, torch.ones_like(rng), rng)
        mask = ((m > self.blend_threshold) | flat) & (mx > 0)
        mask = (mask[:1] | mask[1:]).float()                              # [1, 1, h, w]
        self.last_mask = mask
        out = lat.clone()
        out[1:] = lat[:1] + mask * (lat[1:] - lat[:1])
        return out


class P2PAttnProcessor:
    """diffusers attention processor that materialises the probabilities and calls the controller."""

    def __init__(self, controller, name, latent_hw):
        self.c = controller
        self.name = name
        self.place = "down" if name.startswith("down") else ("mid" if name.startswith("mid") else "up")
        self.latent_hw = latent_hw

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        is_cross = encoder_hidden_states is not None
        b, lq, _ = hidden_states.shape
        q = attn.to_q(hidden_states)
        ctx = encoder_hidden_states if is_cross else hidden_states
        k = attn.to_k(ctx)
        v = attn.to_v(ctx)
        q = attn.head_to_batch_dim(q)
        k = attn.head_to_batch_dim(k)
        v = attn.head_to_batch_dim(v)
        probs = attn.get_attention_scores(q, k, None)                    # [B*heads, Lq, Lk]
        lh, lw = self.latent_hw
        h = int(round((lq * lh / lw) ** 0.5))
        w = lq // h
        if is_cross:
            probs = self.c.cross(self.name, self.place, h, w, probs)
        elif self.c.self_map_source(h):
            heads = attn.heads
            p = probs.reshape(b, heads, lq, lq).clone()
            p[3] = p[2]
            probs = p.reshape(b * heads, lq, lq)
        out = torch.bmm(probs, v)
        out = attn.batch_to_head_dim(out)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        return out


def cross_heights(unet, latent_hw):
    """Heights of the down/up cross-attention layers and the LocalBlend height."""
    lh = latent_hw[0]
    hs = []
    f = 1
    for i, t in enumerate(unet.config.down_block_types):
        if "CrossAttn" in t:
            hs.append(lh // f)
        if i < len(unet.config.down_block_types) - 1:
            f *= 2
    # the paper's maps are 16x16 (latent / 4 at 512 px); small latents keep maps of at least
    # min(16, latent): at 4x4 the 3x3 max pool would spread any word's mask over the whole image
    target = max(lh / 4, min(16, lh))
    best = sorted(set(hs), key=lambda x: (abs(x - target), -x))[0]
    return best


def install(unet, controller, latent_hw):
    procs = {}
    for name in unet.attn_processors.keys():
        procs[name] = P2PAttnProcessor(controller, name, latent_hw)
    unet.set_attn_processor(procs)


# ----------------------------------------------------------------------------------------------------
# benchmark: the same edits in PyTorch (diffusers pipelines / this reference) on a random full SD 1.5

def _random_sd15(instruct, tokenizer_dir):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, in_channels=8 if instruct else 4, cross_attention_dim=768)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=512)
    te = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                      num_attention_heads=12, hidden_act="quick_gelu", projection_dim=768))
    tok = CLIPTokenizer.from_pretrained(tokenizer_dir)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    return dict(unet=unet.eval(), vae=vae.eval(), text_encoder=te.eval(), tokenizer=tok, scheduler=sched,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)


@torch.no_grad()
def _bench_one(method, parts, size, steps):
    import time
    from diffusers import (DDIMInverseScheduler, DDIMScheduler, StableDiffusionImg2ImgPipeline,
                           StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline)
    from diffusers.models.attention_processor import AttnProcessor2_0
    from PIL import Image
    x = np.linspace(0, 255, size).astype(np.uint8)
    img = Image.fromarray(np.stack([np.tile(x, (size, 1)), np.tile(x[:, None], (1, size)),
                                    np.full((size, size), 128, np.uint8)], -1))
    src, tgt = "a red mug on a wooden table", "a blue mug on a wooden table"
    t0 = time.time()
    if method == "sdedit":
        p = StableDiffusionImg2ImgPipeline(**parts)
        p.set_progress_bar_config(disable=True)
        p(prompt=tgt, image=img, strength=0.8, num_inference_steps=steps, guidance_scale=7.5, output_type="np")
    elif method == "sdedit_cn":
        # sdedit with one ControlNet of SD 1.5's size (diffusers' defaults, random weights; control = the input)
        from diffusers import ControlNetModel, StableDiffusionControlNetImg2ImgPipeline
        torch.manual_seed(3)
        net = ControlNetModel(cross_attention_dim=768).eval()
        t0 = time.time()
        p = StableDiffusionControlNetImg2ImgPipeline(**parts, controlnet=net)
        p.set_progress_bar_config(disable=True)
        p(prompt=tgt, image=img, control_image=img, strength=0.8, num_inference_steps=steps, guidance_scale=7.5,
          output_type="np")
    elif method == "instruct":
        p = StableDiffusionInstructPix2PixPipeline(**parts)
        p.set_progress_bar_config(disable=True)
        p(prompt="make the mug blue", image=img, num_inference_steps=steps, guidance_scale=7.5,
          image_guidance_scale=1.5, output_type="np")
    else:
        p = StableDiffusionPipeline(**parts)
        unet, vae = p.unet, p.vae
        unet.set_attn_processor(AttnProcessor2_0())

        def emb(t):
            ids = p.tokenizer(t, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
            return p.text_encoder(ids)[0]
        im = torch.from_numpy(np.asarray(img)).permute(2, 0, 1)[None].float() / 127.5 - 1
        z0 = vae.encode(im).latent_dist.mean * vae.config.scaling_factor
        e_src, e_tgt = emb(src), emb(tgt)
        inv = DDIMInverseScheduler.from_config(p.scheduler.config)
        inv.set_timesteps(steps)
        lat = z0
        for t in inv.timesteps:
            lat = inv.step(unet(lat, t, encoder_hidden_states=e_src).sample, t, lat).prev_sample
        sch = DDIMScheduler.from_config(p.scheduler.config)
        sch.set_timesteps(steps)
        if method == "ddim":
            ehs = torch.cat([emb(""), e_tgt])
            for t in sch.timesteps:
                eu, ec = unet(torch.cat([lat, lat]), t, encoder_hidden_states=ehs).sample.chunk(2)
                lat = sch.step(eu + 7.5 * (ec - eu), t, lat).prev_sample
        else:
            lh = z0.shape[2]
            ctrl = P2PController(p.tokenizer, src, tgt, steps, blend_height=cross_heights(unet, (lh, z0.shape[3])),
                                 latent_hw=(lh, z0.shape[3]))
            install(unet, ctrl, (lh, z0.shape[3]))
            lat = torch.cat([lat, lat])
            ehs = torch.cat([e_src, e_src, e_src, e_tgt])
            for i, t in enumerate(sch.timesteps):
                ctrl.step = i
                eu, ec = unet(torch.cat([lat, lat]), t, encoder_hidden_states=ehs).sample.chunk(2)
                lat = ctrl.blend(sch.step(eu + 7.5 * (ec - eu), t, lat).prev_sample)
            unet.set_attn_processor(AttnProcessor2_0())
            lat = lat[1:]
        vae.decode(lat / vae.config.scaling_factor)
    return time.time() - t0


def bench_main(argv=None):
    import argparse
    import os
    import re
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description="Seconds per edit in PyTorch (random SD 1.5), and the ratio to "
                                             "diffedit's `diffedit edit --bench` lines when given.")
    ap.add_argument("--bench", default="sdedit,sdedit_cn,ddim,p2p,instruct")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", default="50,20")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--swift-results", help="file with 'bench edit method=M size=S steps=N seconds=T' lines")
    ap.add_argument("--tokenizer", default=os.path.join(here, "Tests/Fixtures/sd1/tokenizer"))
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    swift = {}
    if a.swift_results:
        for line in open(a.swift_results):
            m = re.match(r"bench edit method=(\w+) size=(\d+) steps=(\d+) seconds=([\d.]+)", line.strip())
            if m:
                swift[(m[1], int(m[2]), int(m[3]))] = float(m[4])
    methods = a.bench.split(",")
    steps = [int(s) for s in a.steps.split(",")]
    for instruct in (False, True):
        group = [m for m in methods if (m == "instruct") == instruct]
        if not group:
            continue
        parts = _random_sd15(instruct, a.tokenizer)
        for m in group:
            for n in steps:
                s = _bench_one(m, parts, a.size, n)
                line = f"bench edit torch method={m} size={a.size} steps={n} seconds={s:.3f}"
                if (m, a.size, n) in swift:
                    line += f"   diffedit {swift[(m, a.size, n)]:.3f} s, ratio {swift[(m, a.size, n)] / s:.2f}"
                print(line, flush=True)


if __name__ == "__main__":
    bench_main()
