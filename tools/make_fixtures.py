#!/usr/bin/env python3
"""Builds the reference fixtures under Tests/Fixtures (developers run it; CI only reads its outputs).

    python3 tools/make_fixtures.py [--only tokenizer,sd1,sd2,schedulers,unet_lpb] [--out Tests/Fixtures]

Needs PyTorch, diffusers 0.42, transformers 5 and open_clip (for the CLIP BPE file). Deterministic: every
random draw comes from a seeded generator, so re-running gives the same files.

What it writes (layout agreed in notes/HELPERS.md):
- tokenizer_cases.json  [{"text", "ids" (77), "pad": "<|endoftext|>" | "!"}] from transformers' CLIPTokenizer
  (tokenizers backend: NFC, whitespace collapse, lower-case, CLIP split, byte-level BPE; no ftfy).
- sd1/ sd1.safetensors, sd2/ sd2.safetensors: tiny random-weight models of the real architectures, fp16
  safetensors; folder = diffusers layout (text encoder saved with the real-world `text_model.` names),
  single file = original LDM layout (model.diffusion_model.*, first_stage_model.*,
  cond_stage_model.transformer.text_model.* for SD1, cond_stage_model.model.* OpenCLIP names for SD2 with
  one extra final resblock that SD2 drops, since it uses the penultimate layer).
- ref/sd1, ref/sd2: manifest.json + float32 .npy references, computed in fp32 from the fp16-rounded weights.
- unet_lpb/unet, ref/unet_lpb: a tiny UNet with per-block layers_per_block ([2, 1, 1]) and one sample through it;
  unet_lpb/unet_ldm.safetensors: its weights in the original (LDM) layout, numbered per level.
- schedulers.json: timesteps and step() results of DDIM / DDIM inverse / Euler / DPM-Solver++ 2M for
  spacings, offsets, set_alpha_to_one and prediction types.
"""
import argparse
import json
import math
import os
import random
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_vocab import write_tokenizer_files  # noqa: E402
import ldm_names  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
torch.set_grad_enabled(False)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

# --------------------------------------------------------------------------------------------------
# Model definitions
# --------------------------------------------------------------------------------------------------

SPECS = {
    "sd1": dict(
        unet=dict(
            sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(16, 32),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            attention_head_dim=4, cross_attention_dim=32, norm_num_groups=8,
            use_linear_projection=False, upcast_attention=False,
        ),
        vae=dict(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
            block_out_channels=(8, 16, 16, 16), norm_num_groups=4, sample_size=64,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            scaling_factor=0.18215,
        ),
        text=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
            vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
            projection_dim=32, bos_token_id=0, eos_token_id=2, pad_token_id=1,
        ),
        scheduler=dict(
            num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
            timestep_spacing="leading",
        ),
        pad_token="<|endoftext|>",
        image_size=64,
    ),
    "sd2": dict(
        unet=dict(
            sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(16, 32, 32),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            attention_head_dim=[2, 4, 4], cross_attention_dim=16, norm_num_groups=8,
            use_linear_projection=True, upcast_attention=True,
        ),
        vae=dict(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
            block_out_channels=(16, 16, 32), norm_num_groups=8, sample_size=64,
            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
            scaling_factor=0.13025,
        ),
        text=dict(
            hidden_size=16, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            vocab_size=49408, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
            projection_dim=16, bos_token_id=0, eos_token_id=2, pad_token_id=1,
        ),
        scheduler=dict(
            num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="v_prediction",
            timestep_spacing="trailing",
        ),
        pad_token="!",
        image_size=64,
    ),
}

PROMPTS = ["a photo of a cat", "A painting of a RED mug on a wooden table, highly detailed!"]
GEN_PROMPT = "a red mug on a wooden table"
GEN_NEGATIVE = "blurry, low quality"
GEN_STEPS = 5
GEN_GUIDANCE = 7.5
UNET_TIMESTEP = 501


def randomize(module, seed):
    """Random init at a scale that keeps activations O(1) (default inits of small models give outputs ~0)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(module.named_parameters()):
        leaf = name.split(".")[-2] if "." in name else name
        is_norm = any(k in name for k in ("norm", "layer_norm", "ln_")) and p.dim() == 1
        if p.dim() >= 2 and "embedding" in name:
            v = torch.randn(p.shape, generator=g) * 0.5
        elif p.dim() >= 2:
            fan_in = p[0].numel()
            v = torch.randn(p.shape, generator=g) * (1.0 / math.sqrt(fan_in))
        elif is_norm and name.endswith("weight"):
            v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
        else:  # biases, norm biases
            v = 0.1 * torch.randn(p.shape, generator=g)
        del leaf
        p.copy_(v.half().float())  # fp16-rounded, so fp32 references match fp16 files exactly
    return module


def f16_state(sd):
    return {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}


def save_st(tensors, path, metadata=None):
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata or {"format": "pt"})


def npy(path, arr, dtype=np.float32):
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    np.save(path, np.ascontiguousarray(arr.astype(dtype)))


# --------------------------------------------------------------------------------------------------
# diffusers -> original (LDM / OpenCLIP) names
# --------------------------------------------------------------------------------------------------

unet_to_ldm = ldm_names.unet_to_ldm
vae_to_ldm = ldm_names.vae_to_ldm


def clip_to_ldm(sd, n_positions=77):
    return ldm_names.clip_to_ldm(sd, torch.arange(n_positions, dtype=torch.int64)[None])


def openclip_to_ldm(sd, n_layers, extra_layer, text_projection):
    """SD2: cond_stage_model.model.* OpenCLIP names; q/k/v fused into in_proj; plus one extra final resblock
    (unused: SD2 takes the penultimate layer's output, then ln_final) and text_projection (unused)."""
    p = "cond_stage_model.model."
    out = {
        p + "token_embedding.weight": sd["embeddings.token_embedding.weight"],
        p + "positional_embedding": sd["embeddings.position_embedding.weight"],
        p + "ln_final.weight": sd["final_layer_norm.weight"],
        p + "ln_final.bias": sd["final_layer_norm.bias"],
        p + "text_projection": text_projection,
    }
    layers = [{k[len(f"encoder.layers.{i}."):]: v for k, v in sd.items() if k.startswith(f"encoder.layers.{i}.")}
              for i in range(n_layers)] + [extra_layer]
    for i, l in enumerate(layers):
        r = f"{p}transformer.resblocks.{i}."
        out[r + "attn.in_proj_weight"] = torch.cat([l["self_attn.q_proj.weight"], l["self_attn.k_proj.weight"], l["self_attn.v_proj.weight"]], 0)
        out[r + "attn.in_proj_bias"] = torch.cat([l["self_attn.q_proj.bias"], l["self_attn.k_proj.bias"], l["self_attn.v_proj.bias"]], 0)
        out[r + "attn.out_proj.weight"] = l["self_attn.out_proj.weight"]
        out[r + "attn.out_proj.bias"] = l["self_attn.out_proj.bias"]
        for a, b in (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
            out[r + b + ".weight"] = l[a + ".weight"]
            out[r + b + ".bias"] = l[a + ".bias"]
    return out


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------

def write_tokenizer_folder(folder, pad_token):
    write_tokenizer_files(folder)
    special = {
        "bos_token": {"content": "<|startoftext|>", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
        "eos_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
        "pad_token": pad_token,
        "unk_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
    }
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    config = {
        "add_prefix_space": False, "bos_token": "<|startoftext|>", "do_lower_case": True,
        "eos_token": "<|endoftext|>", "errors": "replace", "model_max_length": 77,
        "pad_token": pad_token, "tokenizer_class": "CLIPTokenizer", "unk_token": "<|endoftext|>",
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)


def load_tokenizer(folder):
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(folder)
    return tok


def tokenizer_strings():
    rng = random.Random(1234)
    fixed = [
        "", " ", "   ", "\t\n", "a", "A", "a photo of a cat", "A photo of a CAT", "a  photo\tof\n\na   cat  ",
        "  leading and trailing spaces  ", "The quick brown fox jumps over the lazy dog.",
        "Hello, world!", "hello,world!!!", "what?!?!", "...", "--", "a-b-c", "e-mail", "x=y+z*2", "100%",
        "$5.99", "3.14159", "1234567890", "12 34", "1st 2nd 3rd 4th", "year 2023", "0", "007",
        "don't", "DON'T", "I'm", "you're", "we've", "she'll", "he'd", "it's", "it's'", "'s", "'tis",
        "rock'n'roll", "o'clock", "cats'", "''", "'''s", "l'amour", "y'all'd've", "don’t (curly)",
        "\"quoted\"", "(parens) [brackets] {braces}", "<tag>", "a|b", "back\\slash", "a/b", "@user #tag",
        "café", "CAFÉ", "cafe\u0301", "naïve résumé", "Straße", "ẞ", "İstanbul", "ΟΔΟΣ", "Σίσυφος",
        "Москва", "ПРИВЕТ мир", "ǅ", "ﬁnance", "ℌ", "½ ² ③ Ⅻ", "٣٤٥", "१२३", "x²", "µ", "Å Å",
        "日本語のテキスト", "中文字符", "한국어 텍스트", "東京タワー", "ｆｕｌｌｗｉｄｔｈ", "ｱｲｳ",
        "🙂", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "I ❤ NY", "★☆", "→ ← ↑", "∑∫√", "😀😃😄😁", "a🙂b",
        "مرحبا بالعالم", "שלום", "ไทย", "हिन्दी", "tiếng Việt", "ελληνικά",
        "a\u00a0b", "a\u3000b", "a\u200bb", "a\u2028b", "a\ufeffb", "a\u0085b", "tab\tsep", "new\nline", "cr\rlf\r\n",
        "\x00nul", "\x1f", "a\u0301", "\u0301", "e\u0300\u0301",
        "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b", "<|ENDOFTEXT|>", "<|startoftext|>x<|endoftext|>y",
        "<|endoftext|<|endoftext|>", "&amp; &lt;", "&quot;html&quot;",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababab", "lolololol", "zzzz", "ssssss",
        "supercalifragilisticexpialidocious", "antidisestablishmentarianism", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "masterpiece, best quality, 8k, ultra detailed, (red:1.2) dress", "[cat|dog] (((masterpiece)))",
        "photo of a mug, trending on artstation, octane render, unreal engine",
        "a red mug -> a blue mug", "CamelCaseWords and snake_case_words", "URL: https://example.com/a?b=c&d=e",
        "C++ and C# and F#", "user@example.com", "#ff0000", "1,000,000", "10:30pm", "2023-11-28",
    ]
    long_texts = [
        " ".join(["word"] * 100),
        "a photo of " + ", ".join(f"object {i}" for i in range(60)),
        "🙂" * 80,
        "".join(chr(0x4E00 + (i * 37) % 2000) for i in range(120)),
        " ".join(f"tok{i}" for i in range(90)),
        "x " * 74 + "y",
        "x " * 75 + "y",
        "x " * 76 + "y",
        "x " * 200,
        "an extremely long prompt, " * 20,
    ]
    words = ["cat", "dog", "Mug", "BLUE", "red", "table", "wooden", "photo", "painting", "of", "a", "the", "in",
             "on", "with", "sunset", "city", "night", "portrait", "highly", "detailed", "café", "naïve", "東京",
             "🙂", "don't", "it's", "3d", "8k", "4K", "v2.1", "x", "über", "smörgåsbord", "façade", "jalapeño",
             "Zoë", "coöperate", "São", "Paulo", "Kraków", "Dvořák", "Ørsted", "Æsir", "ĳ", "ŉ"]
    pool = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"-_()[]{}<>/\\|@#$%^&*+=~`")
            + list("àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßĀāĂăĄąĆćĈĉ") + list("αβγδεζηθΑΒΓΔ") + list("абвгдАБВГД")
            + list("日本語中文한국") + ["🙂", "👍", "🏽", "\u200d", "\u0301", "\u00a0", "\t", "\n", "  "])
    generated = []
    for i in range(140):
        k = rng.randint(1, 12)
        sep = rng.choice([" ", " ", " ", ", ", "  ", "\t", "-", ""])
        generated.append(sep.join(rng.choice(words) for _ in range(k)))
    for i in range(110):
        k = rng.randint(1, 30)
        generated.append("".join(rng.choice(pool) for _ in range(k)))
    return fixed + long_texts + generated


def make_tokenizer_cases(out_dir):
    from transformers import CLIPTokenizer
    sd1_tok_dir = os.path.join(out_dir, "sd1", "tokenizer")
    write_tokenizer_folder(sd1_tok_dir, "<|endoftext|>")
    tok = CLIPTokenizer.from_pretrained(sd1_tok_dir)
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407], tok("a photo of a cat").input_ids
    tok2 = CLIPTokenizer.from_pretrained(sd1_tok_dir, pad_token="!")
    assert tok.pad_token_id == 49407 and tok2.pad_token_id == 0
    cases = []
    strings = tokenizer_strings()
    for s in strings:
        ids = tok(s, padding="max_length", max_length=77, truncation=True).input_ids
        assert len(ids) == 77
        cases.append({"text": s, "pad": "<|endoftext|>", "ids": ids})
    for s in strings[:40:2] + strings[-20:]:
        ids = tok2(s, padding="max_length", max_length=77, truncation=True).input_ids
        cases.append({"text": s, "pad": "!", "ids": ids})
    with open(os.path.join(out_dir, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=True) for c in cases) + "\n]\n")
    n_long = sum(1 for c in cases if len(tok(c["text"]).input_ids) > 77)
    print(f"tokenizer_cases.json: {len(cases)} cases ({n_long} truncated); transformers CLIPTokenizer "
          f"(backend {type(tok).__mro__[1].__name__})")


# --------------------------------------------------------------------------------------------------
# Models + references
# --------------------------------------------------------------------------------------------------

def build_models(kind, seed):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel
    spec = SPECS[kind]
    torch.manual_seed(seed)
    unet = randomize(UNet2DConditionModel(**spec["unet"]).eval(), seed + 1)
    vae = randomize(AutoencoderKL(**spec["vae"]).eval(), seed + 2)
    text_cfg = CLIPTextConfig(**spec["text"])
    text = randomize(CLIPTextModel(text_cfg).eval(), seed + 3)
    sched = DDIMScheduler(**spec["scheduler"])
    return unet, vae, text, sched


def save_folder(kind, folder, unet, vae, text, sched):
    spec = SPECS[kind]
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    for name, model in (("unet", unet), ("vae", vae)):
        d = os.path.join(folder, name)
        os.makedirs(d)
        model.save_config(d)
        save_st(f16_state(model.state_dict()), os.path.join(d, "diffusion_pytorch_model.safetensors"))
    d = os.path.join(folder, "text_encoder")
    os.makedirs(d)
    text.config.dtype = "float16"
    text.config.save_pretrained(d)
    # the real-world naming (text_model.*), which transformers 5 no longer writes itself
    save_st(f16_state({"text_model." + k: v for k, v in text.state_dict().items()}), os.path.join(d, "model.safetensors"))
    sched.save_config(os.path.join(folder, "scheduler"))
    write_tokenizer_folder(os.path.join(folder, "tokenizer"), spec["pad_token"])
    model_index = {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(model_index, f, indent=2)


def save_single_file(kind, path, unet, vae, text, seed):
    spec = SPECS[kind]
    tensors = {}
    tensors.update(unet_to_ldm(unet.state_dict(), spec["unet"]))
    tensors.update(vae_to_ldm(vae.state_dict(), spec["vae"]))
    tsd = text.state_dict()
    if kind == "sd1":
        tensors.update(clip_to_ldm(tsd))
    else:
        from transformers import CLIPTextConfig, CLIPTextModel
        cfg = dict(spec["text"])
        cfg["num_hidden_layers"] = 1
        extra = randomize(CLIPTextModel(CLIPTextConfig(**cfg)).eval(), seed + 9).state_dict()
        extra_layer = {k[len("encoder.layers.0."):]: v for k, v in extra.items() if k.startswith("encoder.layers.0.")}
        g = torch.Generator().manual_seed(seed + 10)
        D = spec["text"]["hidden_size"]
        proj = (torch.randn(D, D, generator=g) / math.sqrt(D)).half().float()
        tensors.update(openclip_to_ldm(tsd, spec["text"]["num_hidden_layers"], extra_layer, proj))
    tensors = {k: (v if v.dtype == torch.int64 else v.to(torch.float16)) for k, v in tensors.items()}
    save_st(tensors, path)
    return len(tensors)


def test_image(size, seed):
    """A smooth deterministic test picture in [-1, 1]: gradients, a disc and a square, plus mild noise."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    r = 0.2 + 0.6 * x
    gch = 0.3 + 0.5 * y
    b = 0.5 + 0.3 * torch.sin(6 * x + 3 * y)
    disc = ((x - 0.35) ** 2 + (y - 0.4) ** 2 < 0.04).float()
    sq = ((x > 0.55) & (x < 0.85) & (y > 0.55) & (y < 0.85)).float()
    r = r * (1 - disc) + 0.9 * disc
    gch = gch * (1 - sq) + 0.1 * sq
    b = b * (1 - disc) + 0.1 * disc
    img = torch.stack([r, gch, b])[None] + 0.03 * torch.randn(1, 3, size, size, generator=g)
    return (img.clamp(0, 1) * 2 - 1).float()


def make_references(kind, out_dir, unet, vae, text, sched, seed):
    from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                           StableDiffusionPipeline)
    from transformers import CLIPTokenizer
    spec = SPECS[kind]
    ref = os.path.join(out_dir, "ref", kind)
    if os.path.exists(ref):
        shutil.rmtree(ref)
    os.makedirs(ref)
    tok = CLIPTokenizer.from_pretrained(os.path.join(out_dir, kind, "tokenizer"))
    assert tok.pad_token == spec["pad_token"], (tok.pad_token, spec["pad_token"])
    vae_factor = 2 ** (len(spec["vae"]["block_out_channels"]) - 1)
    H = W = spec["image_size"]
    h, w = H // vae_factor, W // vae_factor
    D = spec["text"]["hidden_size"]
    g = torch.Generator().manual_seed(seed + 100)
    manifest = {
        "model": kind, "folder": kind, "single_file": f"{kind}.safetensors",
        "note": "float32 .npy references computed in fp32 from the fp16-rounded weights stored in the fixtures",
        "vae_scale_factor": vae_factor, "vae_scaling_factor": spec["vae"]["scaling_factor"],
        "pad_token": spec["pad_token"], "pad_token_id": tok.pad_token_id,
        "prediction_type": spec["scheduler"]["prediction_type"],
        "timestep_spacing": spec["scheduler"]["timestep_spacing"],
    }
    stats = {}

    # text
    ids = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    emb = text(ids)[0]
    npy(os.path.join(ref, "input_ids.npy"), ids, np.int64)
    npy(os.path.join(ref, "text_embeds.npy"), emb)
    manifest["text"] = {"prompts": PROMPTS, "input_ids": "input_ids.npy", "text_embeds": "text_embeds.npy",
                        "shape": list(emb.shape), "what": "text_encoder(input_ids)[0] = last_hidden_state (after final_layer_norm)"}
    stats["text_embeds"] = emb

    # unet
    sample = torch.randn(2, 4, h, w, generator=g)
    ehs = torch.randn(2, 77, D, generator=g)
    uout = unet(sample, UNET_TIMESTEP, encoder_hidden_states=ehs).sample
    npy(os.path.join(ref, "unet_sample.npy"), sample)
    npy(os.path.join(ref, "unet_ehs.npy"), ehs)
    npy(os.path.join(ref, "unet_out.npy"), uout)
    manifest["unet"] = {"sample": "unet_sample.npy", "timestep": UNET_TIMESTEP, "encoder_hidden_states": "unet_ehs.npy",
                        "out": "unet_out.npy", "what": "unet(sample, timestep, encoder_hidden_states).sample"}
    stats["unet_out"] = uout

    # vae
    img = test_image(H, seed + 200)
    post = vae.encode(img).latent_dist
    lat = torch.randn(1, 4, h, w, generator=g)
    dec = vae.decode(lat).sample
    npy(os.path.join(ref, "vae_image.npy"), img)
    npy(os.path.join(ref, "vae_mean.npy"), post.mean)
    npy(os.path.join(ref, "vae_logvar.npy"), post.logvar)
    npy(os.path.join(ref, "vae_latents.npy"), lat)
    npy(os.path.join(ref, "vae_decoded.npy"), dec)
    manifest["vae"] = {"image": "vae_image.npy", "mean": "vae_mean.npy", "logvar": "vae_logvar.npy",
                       "latents": "vae_latents.npy", "decoded": "vae_decoded.npy",
                       "what": "mean/logvar = vae.encode(image).latent_dist (unscaled, no scaling_factor); "
                               "decoded = vae.decode(latents).sample (latents fed as they are, raw output not clamped)"}
    stats["vae_mean"] = post.mean
    stats["vae_decoded"] = dec

    # generations
    noise = torch.randn(1, 4, h, w, generator=g)
    base_cfg = dict(sched.config)
    makers = {
        "ddim": lambda: DDIMScheduler.from_config(base_cfg),
        "euler": lambda: EulerDiscreteScheduler.from_config(base_cfg),
        "dpmpp-2m": lambda: DPMSolverMultistepScheduler.from_config(base_cfg),
    }
    for name, make in makers.items():
        s = make()
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=s,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        lat_out = pipe(GEN_PROMPT, negative_prompt=GEN_NEGATIVE, num_inference_steps=GEN_STEPS,
                       guidance_scale=GEN_GUIDANCE, height=H, width=W, latents=noise.clone(), output_type="latent").images
        image = vae.decode(lat_out / vae.config.scaling_factor).sample
        image = (image / 2 + 0.5).clamp(0, 1)
        # same as the pipeline's own decode path (output_type="np"), checked:
        img_np = pipe(GEN_PROMPT, negative_prompt=GEN_NEGATIVE, num_inference_steps=GEN_STEPS,
                      guidance_scale=GEN_GUIDANCE, height=H, width=W, latents=noise.clone(), output_type="np").images
        assert np.abs(img_np.transpose(0, 3, 1, 2) - image.numpy()).max() < 1e-5
        sub = os.path.join(ref, f"generate_{name}")
        os.makedirs(sub)
        npy(os.path.join(sub, "noise.npy"), noise)
        npy(os.path.join(sub, "latents.npy"), lat_out)
        npy(os.path.join(sub, "image.npy"), image)
        cfg = {k: v for k, v in dict(s.config).items() if not k.startswith("_")}
        cfg = json.loads(json.dumps(cfg, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))
        manifest[f"generate_{name}"] = {
            "prompt": GEN_PROMPT, "negative_prompt": GEN_NEGATIVE, "steps": GEN_STEPS, "guidance": GEN_GUIDANCE,
            "width": W, "height": H, "noise": f"generate_{name}/noise.npy", "latents": f"generate_{name}/latents.npy",
            "image": f"generate_{name}/image.npy", "scheduler_class": type(s).__name__, "scheduler_config": cfg,
            "timesteps": [int(t) for t in s.timesteps],
            "what": "StableDiffusionPipeline(latents=noise) -> final latents before VAE decode; "
                    "image = (vae.decode(latents / scaling_factor) / 2 + 0.5).clamp(0, 1), [1,3,H,W]",
        }
        stats[f"{name}_latents"] = lat_out
        stats[f"{name}_image"] = image
    with open(os.path.join(ref, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    for k, v in stats.items():
        print(f"  {kind} {k}: shape {list(v.shape)} mean {v.mean():+.4f} std {v.std():.4f} absmax {v.abs().max():.4f}")
    return manifest


def verify_single_file(kind, out_dir, unet, vae, text, seed):
    """Reconverts the single file with diffusers' own converters and checks the weights are identical."""
    from safetensors.torch import load_file
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint, convert_open_clip_checkpoint)
    spec = SPECS[kind]
    ckpt = load_file(os.path.join(out_dir, f"{kind}.safetensors"))
    ckpt32 = {k: (v.float() if v.is_floating_point() else v) for k, v in ckpt.items()}
    u = convert_ldm_unet_checkpoint(ckpt32, dict(unet.config))
    v = convert_ldm_vae_checkpoint(ckpt32, dict(vae.config))

    def same(a, b, what):
        assert set(a) == set(b), (what, sorted(set(a) ^ set(b))[:10])
        for k in a:
            assert torch.equal(a[k].float(), b[k].float()), (what, k)
    same(u, unet.state_dict(), "unet")
    same(v, vae.state_dict(), "vae")
    if kind == "sd1":
        t = convert_ldm_clip_checkpoint(ckpt32)
        t = {k[len("text_model."):]: x for k, x in t.items() if not k.endswith("position_ids")}
    else:
        t = convert_open_clip_checkpoint(text, ckpt32)
        t = {k[len("text_model."):] if k.startswith("text_model.") else k: x for k, x in t.items()}
        t.pop("text_projection.weight", None)
        # diffusers only knows to drop the real SD2's resblocks.23; our extra final block is index n_layers
        extra = f"encoder.layers.{spec['text']['num_hidden_layers']}."
        assert any(k.startswith(extra) for k in t), "the extra (dropped) resblock is missing"
        t = {k: x for k, x in t.items() if not k.startswith(extra)}
    same(t, text.state_dict(), "text")
    print(f"  {kind}.safetensors: diffusers' converters give back the folder's weights exactly")


def make_model(kind, out_dir, seed):
    unet, vae, text, sched = build_models(kind, seed)
    save_folder(kind, os.path.join(out_dir, kind), unet, vae, text, sched)
    n = save_single_file(kind, os.path.join(out_dir, f"{kind}.safetensors"), unet, vae, text, seed)
    print(f"{kind}: folder + single file ({n} tensors)")
    try:
        verify_single_file(kind, out_dir, unet, vae, text, seed)
    except Exception as e:  # report, but the references do not depend on it
        print(f"  WARNING: single-file check failed: {type(e).__name__}: {e}")
    make_references(kind, out_dir, unet, vae, text, sched, seed)


# --------------------------------------------------------------------------------------------------
# Schedulers
# --------------------------------------------------------------------------------------------------

def make_schedulers(out_dir):
    from diffusers import DDIMInverseScheduler, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
    base = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False)
    g = torch.Generator().manual_seed(777)
    shape = [1, 4, 2, 2]
    steps = 10
    x0 = torch.randn(shape, generator=g)
    outputs = [torch.randn(shape, generator=g) for _ in range(steps)]
    cases = []

    def r(t):
        return [round(float(v), 7) for v in t.flatten()]

    for cls_name, cls in (("ddim", DDIMScheduler), ("ddim_inverse", DDIMInverseScheduler),
                          ("euler", EulerDiscreteScheduler), ("dpmpp-2m", DPMSolverMultistepScheduler)):
        for spacing in ("leading", "trailing", "linspace"):
            for offset in (0, 1):
                for alpha_one in ((False, True) if cls_name.startswith("ddim") else (None,)):
                    for pred in ("epsilon", "v_prediction"):
                        cfg = dict(base, timestep_spacing=spacing, steps_offset=offset, prediction_type=pred)
                        if alpha_one is not None:
                            cfg["set_alpha_to_one"] = alpha_one
                        if cls_name == "dpmpp-2m":
                            cfg.update(algorithm_type="dpmsolver++", solver_order=2)
                        s = cls.from_config(cfg)
                        try:
                            s.set_timesteps(steps)
                        except ValueError as e:  # e.g. DDIMInverseScheduler refuses "linspace"
                            cases.append({"scheduler": cls_name, "class": cls.__name__, "config": cfg,
                                          "num_inference_steps": steps, "error": str(e)})
                            continue
                        x = x0 * s.init_noise_sigma
                        scaled, prev = [], []
                        for i, t in enumerate(s.timesteps):
                            xi = s.scale_model_input(x, t)
                            scaled.append(r(xi))
                            x = s.step(outputs[i], t, x).prev_sample
                            prev.append(r(x))
                        case = {"scheduler": cls_name, "class": cls.__name__, "config": cfg,
                                "num_inference_steps": steps, "timesteps": [int(t) if float(t).is_integer() else float(t) for t in s.timesteps],
                                "init_noise_sigma": float(s.init_noise_sigma), "scaled_inputs": scaled, "prev_samples": prev}
                        if hasattr(s, "sigmas"):
                            case["sigmas"] = [round(float(v), 7) for v in s.sigmas]
                        cases.append(case)
    doc = {
        "what": "diffusers 0.42.1; config = what Class.from_config got (keys the class does not know are ignored, the rest default). For each case: s = Class.from_config(config); s.set_timesteps(num_inference_steps); x = sample * init_noise_sigma; "
                "for i, t in enumerate(timesteps): scaled_inputs[i] = s.scale_model_input(x, t); "
                "x = s.step(model_outputs[i], t, x).prev_sample; prev_samples[i] = x. Tensors flattened, shape in 'shape'. "
                "A case with 'error' is one diffusers refuses in set_timesteps (the message is diffusers').",
        "shape": shape, "sample": r(x0), "model_outputs": [r(o) for o in outputs], "cases": cases,
    }
    with open(os.path.join(out_dir, "schedulers.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    print(f"schedulers.json: {len(cases)} cases")


UNET_LPB = dict(  # per-block layers_per_block (diffusers accepts a list): two resnets at 16 x 16, one below
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=[2, 1, 1],
    block_out_channels=(8, 16, 16),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=[1, 4, 4], cross_attention_dim=12, norm_num_groups=4,
    transformer_layers_per_block=[1, 2, 1],
)


def make_unet_lpb(out_dir, seed=3000):
    """unet_lpb/unet + ref/unet_lpb: a UNet whose blocks have different resnet counts (layers_per_block
    [2, 1, 1], so the up blocks have 2, 2, 3), one sample through it. A reader that used one count for every
    block would build other layers or pop the wrong skips."""
    from diffusers import UNet2DConditionModel
    folder, ref = os.path.join(out_dir, "unet_lpb", "unet"), os.path.join(out_dir, "ref", "unet_lpb")
    for d in (folder, ref):
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
    unet = UNet2DConditionModel(**UNET_LPB).eval()
    with torch.no_grad():
        randomize(unet, seed)
    unet.save_pretrained(folder, safe_serialization=False)  # config.json; the weights go in as fp16 below
    os.remove(os.path.join(folder, "diffusion_pytorch_model.bin"))
    weights = f16_state(unet.state_dict())
    save_st(weights, os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    # the same weights in the original layout (model.diffusion_model.*; the UNet only): per-level numbering,
    # input_blocks 1, 2 | 3 (down) | 4 | 5 (down) | 6, output_blocks 0-1 | 2-3 | 4-6
    save_st(unet_to_ldm(weights, UNET_LPB), os.path.join(out_dir, "unet_lpb", "unet_ldm.safetensors"))
    g = torch.Generator().manual_seed(seed + 1)
    sample = torch.randn(1, 4, 12, 8, generator=g)  # not square: height and width kept apart
    ehs = torch.randn(1, 7, UNET_LPB["cross_attention_dim"], generator=g)
    with torch.no_grad():
        out = unet(sample, UNET_TIMESTEP, encoder_hidden_states=ehs).sample
    npy(os.path.join(ref, "unet_sample.npy"), sample)
    npy(os.path.join(ref, "unet_ehs.npy"), ehs)
    npy(os.path.join(ref, "unet_out.npy"), out)
    with open(os.path.join(ref, "manifest.json"), "w") as f:
        json.dump({"model": "unet_lpb", "unet": {"timestep": UNET_TIMESTEP, "config": UNET_LPB,
                                                 "what": "unet(sample, timestep, encoder_hidden_states).sample"}},
                  f, indent=1)
    print(f"unet_lpb: {sum(p.numel() for p in unet.parameters())} parameters, out max |x| {out.abs().max():.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "Fixtures"))
    ap.add_argument("--only", default="tokenizer,sd1,sd2,schedulers,unet_lpb")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    parts = args.only.split(",")
    if "tokenizer" in parts:
        make_tokenizer_cases(args.out)
    if "sd1" in parts:
        make_model("sd1", args.out, 1000)
    if "sd2" in parts:
        make_model("sd2", args.out, 2000)
    if "schedulers" in parts:
        make_schedulers(args.out)
    if "unet_lpb" in parts:
        make_unet_lpb(args.out)
    total = 0
    for dp, _, fs in os.walk(args.out):
        if os.path.relpath(dp, args.out).split(os.sep)[0] == "bad":
            continue
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    print(f"Tests/Fixtures total (without bad/): {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
