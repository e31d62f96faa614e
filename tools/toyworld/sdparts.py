"""Model builders, tokenizer files and data helpers shared by tools/train_*.py (PyTorch + diffusers).

All architectures are the real Stable Diffusion 1.x ones (AutoencoderKL, CLIPTextModel, UNet2DConditionModel),
only small, so that every loader that reads SD checkpoints reads these too.
"""
from __future__ import annotations

import gzip
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import world  # noqa: E402

# ---------------------------------------------------------------------------------------- configs
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8, act_fn="silu",
    sample_size=64, scaling_factor=1.0,  # scaling_factor replaced by 1/std after training
)
TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=48, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=48,
    bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
)


def unet_config(in_channels: int, blocks=(32, 64, 64), cross_dim: int = 48) -> dict:
    return dict(
        sample_size=16, in_channels=in_channels, out_channels=4, layers_per_block=1,
        block_out_channels=blocks,
        down_block_types=("CrossAttnDownBlock2D",) * len(blocks),
        up_block_types=("CrossAttnUpBlock2D",) * len(blocks),
        mid_block_type="UNetMidBlock2DCrossAttn",
        cross_attention_dim=cross_dim, attention_head_dim=4, norm_num_groups=16,
        act_fn="silu", flip_sin_to_cos=True, freq_shift=0, use_linear_projection=False,
    )


SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
    prediction_type="epsilon", trained_betas=None,
)


# ---------------------------------------------------------------------------------------- tokenizer
def write_clip_tokenizer(out_dir: str) -> str:
    """Writes the real CLIP BPE vocabulary (vocab.json, merges.txt, configs) built from open_clip's
    bpe_simple_vocab_16e6.txt.gz exactly as OpenAI's SimpleTokenizer builds it; returns out_dir."""
    import open_clip
    path = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    merges = gzip.open(path).read().decode("utf-8").split("\n")
    merges = merges[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_unicode = [chr(c) for c in cs]
    vocab = byte_unicode + [v + "</w>" for v in byte_unicode] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write(" ".join(m) + "\n")
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
                   "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}, f, indent=2)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                   "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}, f, indent=2)
    return out_dir


def load_tokenizer(tok_dir: str):
    from transformers import CLIPTokenizer
    return CLIPTokenizer(os.path.join(tok_dir, "vocab.json"), os.path.join(tok_dir, "merges.txt"),
                         pad_token="<|endoftext|>")


class TokenCache:
    """Memoises tokenisation (the toy vocabulary has only a few thousand distinct strings)."""

    def __init__(self, tok):
        self.tok, self.cache = tok, {}

    def __call__(self, texts):
        import torch
        out = []
        for t in texts:
            ids = self.cache.get(t)
            if ids is None:
                ids = self.tok(t, padding="max_length", max_length=77, truncation=True).input_ids
                self.cache[t] = ids
            out.append(ids)
        return torch.tensor(out, dtype=torch.long)


# ---------------------------------------------------------------------------------------- data
def to_tensor(imgs: np.ndarray):
    """uint8 [N,H,W,3] -> float32 torch [N,3,H,W] in [-1, 1]."""
    import torch
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _at_size(img: np.ndarray, size: int) -> np.ndarray:
    """A rendered picture at the training size (jittered scenes are drawn at 64, 96 or 128 px and resized
    with an antialiasing bilinear filter, as the library's native-resolution plan resizes such inputs)."""
    if img.shape[0] == size and img.shape[1] == size:
        return img
    from PIL import Image
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def unet_sha256(model_dir: str) -> str:
    """sha256 of a model folder's UNet weights file (unet/diffusion_pytorch_model.safetensors): which UNet a
    decoder trained with train_vae.py --edit-model belongs to."""
    import hashlib
    with open(os.path.join(model_dir, "unet", "diffusion_pytorch_model.safetensors"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def render_edits(edits, size: int = 64):
    """(source uint8 [N,H,W,3], target uint8, instructions, source captions, target captions) of `edits`."""
    src = np.empty((len(edits), size, size, 3), np.uint8)
    tgt = np.empty_like(src)
    ins, sc, tc = [], [], []
    for i, e in enumerate(edits):
        src[i] = _at_size(world.render(e.source)[0], size)
        tgt[i] = _at_size(world.render(e.target)[0], size)
        ins.append(e.instruction)
        sc.append(e.source.caption())
        tc.append(e.target.caption())
    return src, tgt, ins, sc, tc


def make_edit_dataset(seed0: int, count: int, size: int = 64):
    """Edit triplets for training: (source uint8 [N,H,W,3], target uint8, instructions, src captions,
    target captions). Seeds seed0 .. seed0+count-1 (all < world.HELDOUT_SEED_BASE)."""
    assert seed0 + count <= world.HELDOUT_SEED_BASE
    return render_edits([world.edit_for_seed(seed0 + i, world.EDIT_TYPES[i % 4], size) for i in range(count)], size)


# ---------------------------------------------------------------------------------------- training utils
def log(msg: str):
    import time
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def save_ckpt(path: str, **state):
    import torch
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_ckpt(path: str):
    import torch
    if os.path.exists(path):
        return torch.load(path, map_location="cpu", weights_only=False)
    return None
