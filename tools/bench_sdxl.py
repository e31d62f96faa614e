#!/usr/bin/env python3
"""SDXL at full size on this machine (issue 20): a random-weight SDXL base checkpoint in fp16 (the published
architecture: 2.6 G UNet parameters, CLIP ViT-L + OpenCLIP ViT-bigG, the SDXL VAE), then whole-process
`diffedit generate` runs per weights dtype and diffusers' StableDiffusionXLPipeline beside them in the same run:
seconds per denoising step (batch 2, CFG), whole-process seconds and peak RSS (/usr/bin/time -v).

usage: python3 tools/bench_sdxl.py [--model DIR] [--sizes 512,1024] [--steps 2] [--dtypes auto,q8_0]
                                   [--diffedit build/bin/diffedit] [--no-torch] [--tiny]
The model is written once (about 7 GB on disk, DIR default build/bench-sdxl-fp16). Weights are torch's default
initialisation under a fixed seed: the numbers mean nothing, the shapes and the file layout are a published
fp16 SDXL folder's. `--tiny` makes the same layout with small widths (checks the plumbing in seconds).
Run it on an otherwise idle machine (2 cores: anything beside it halves it).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_model(out, tiny):
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float16)          # build in fp16: the fp32 UNet alone would be 10 GB
    os.makedirs(out, exist_ok=True)
    if tiny:
        ch, tl, heads, d1, d2, l1, l2, h2, td = (32, 64, 64), (1, 1, 2), (1, 2, 2), 32, 64, 2, 2, 2, 8
    else:
        ch, tl, heads, d1, d2, l1, l2, h2, td = (320, 640, 1280), (1, 2, 10), (5, 10, 20), 768, 1280, 12, 32, 20, 256
    unet = UNet2DConditionModel(
        sample_size=16 if tiny else 128, block_out_channels=ch, layers_per_block=1 if tiny else 2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=heads,
        transformer_layers_per_block=tl, cross_attention_dim=d1 + d2, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=td, projection_class_embeddings_input_dim=d2 + 6 * td,
        norm_num_groups=8 if tiny else 32)
    unet.save_pretrained(os.path.join(out, "unet"))
    del unet
    vae = AutoencoderKL(block_out_channels=(16, 32) if tiny else (128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * (2 if tiny else 4),
                        up_block_types=("UpDecoderBlock2D",) * (2 if tiny else 4), layers_per_block=1 if tiny else 2,
                        latent_channels=4, norm_num_groups=8 if tiny else 32, sample_size=1024, scaling_factor=0.13025)
    vae.save_pretrained(os.path.join(out, "vae"))
    del vae
    CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=d1, intermediate_size=4 * d1, num_hidden_layers=l1,
                                 num_attention_heads=max(1, d1 // 64), max_position_embeddings=77,
                                 hidden_act="quick_gelu", projection_dim=d1)).save_pretrained(os.path.join(out, "text_encoder"))
    CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=49408, hidden_size=d2, intermediate_size=4 * d2,
                                               num_hidden_layers=l2, num_attention_heads=h2, max_position_embeddings=77,
                                               hidden_act="gelu", projection_dim=d2)).save_pretrained(
        os.path.join(out, "text_encoder_2"))
    EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                           timestep_spacing="leading").save_pretrained(os.path.join(out, "scheduler"))
    tok = os.path.join(ROOT, "Tests", "Fixtures", "sd1", "tokenizer")
    shutil.copytree(tok, os.path.join(out, "tokenizer"), dirs_exist_ok=True)
    shutil.copytree(tok, os.path.join(out, "tokenizer_2"), dirs_exist_ok=True)
    for f in ("special_tokens_map.json", "tokenizer_config.json"):
        p = os.path.join(out, "tokenizer_2", f)
        d = json.load(open(p))
        d["pad_token"] = "!"
        json.dump(d, open(p, "w"), indent=2)
    json.dump({"_class_name": "StableDiffusionXLPipeline", "force_zeros_for_empty_prompt": True,
               "text_encoder": ["transformers", "CLIPTextModel"],
               "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
               "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
               "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
               "scheduler": ["diffusers", "EulerDiscreteScheduler"]},
              open(os.path.join(out, "model_index.json"), "w"), indent=2)
    print("wrote", out, flush=True)


TORCH_RUN = r'''
import sys, time, torch
from diffusers import StableDiffusionXLPipeline
model, size, steps, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(int(sys.argv[5]))
t0 = time.time()
pipe = StableDiffusionXLPipeline.from_pretrained(model, torch_dtype=torch.float32 if dtype == "fp32" else torch.bfloat16)
pipe.set_progress_bar_config(disable=True)
t1 = time.time()
steps_t = []
def cb(p, i, t, kw):
    steps_t.append(time.time())
    return kw
with torch.no_grad():
    pipe("a photo of a cat", num_inference_steps=steps, guidance_scale=5.0, height=size, width=size,
         generator=torch.Generator().manual_seed(0), callback_on_step_end=cb, output_type="np")
t2 = time.time()
per = (steps_t[-1] - steps_t[0]) / (len(steps_t) - 1) if len(steps_t) > 1 else (t2 - t1) / steps
print(f"RESULT load={t1 - t0:.2f} total={t2 - t0:.2f} step={per:.3f}")
'''


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v: (wall seconds, peak RSS GiB, stdout+stderr)."""
    t0 = time.time()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    if p.returncode != 0:
        print(p.stdout[-2000:], p.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"bench_sdxl: {' '.join(cmd[:3])} ... failed ({p.returncode})")
    return wall, (int(rss.group(1)) / 2 ** 20 if rss else float("nan")), p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "build", "bench-sdxl-fp16"))
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--dtypes", default="auto,q8_0")
    ap.add_argument("--diffedit", default=os.path.join(ROOT, "build", "bin", "diffedit"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.model, "model_index.json")):
        make_model(a.model, a.tiny)
    rows = []
    sizes = [int(s) for s in a.sizes.split(",")]
    for size in sizes:
        for dt in [d for d in a.dtypes.split(",") if d]:
            cmd = [a.diffedit, "generate", "--model", a.model, "--prompt", "a photo of a cat", "--width", str(size),
                   "--height", str(size), "--steps", str(a.steps), "--guidance", "5", "--output", "/tmp/bench_sdxl.png",
                   "--threads", str(a.threads)]
            if dt != "default":
                cmd += ["--weights-dtype", dt]
            wall, rss, out = timed(cmd)
            rates = re.findall(r"([\d.]+) it/s", out)                 # the progress bar's rate over the steps
            step = 1 / float(rates[-1]) if rates and float(rates[-1]) > 0 else float("nan")
            rows.append(("diffedit", dt, size, wall, rss, step))
            print(f"diffedit {dt:>6} {size:>5} px: {wall:7.1f} s whole process, {step:.2f} s/step, "
                  f"peak RSS {rss:5.2f} GiB", flush=True)
        if not a.no_torch:
            for mode in ("fp32", "bf16"):
                wall, rss, out = timed([sys.executable, "-c", TORCH_RUN, a.model, str(size), str(a.steps), mode,
                                        str(a.threads)])
                m = re.search(r"RESULT load=([\d.]+) total=([\d.]+) step=([\d.]+)", out)
                step = float(m.group(3)) if m else float("nan")
                rows.append(("diffusers", mode, size, wall, rss, step))
                print(f"diffusers {mode:>5} {size:>5} px: {wall:7.1f} s whole process, {step:.2f} s/step, "
                      f"peak RSS {rss:5.2f} GiB", flush=True)
    print("\n| runner | weights | size | whole process (s) | peak RSS (GiB) | s/step |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.2f} | {'' if r[5] is None else f'{r[5]:.2f}'} |")


if __name__ == "__main__":
    main()
