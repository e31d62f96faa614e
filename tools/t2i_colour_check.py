"""Does a text-to-image toy model draw the colour its caption names? (developer diagnostic, PyTorch + diffusers)

Generates single-object captions on a plain background ("a green star on a yellow background"; every
colour, shape and background in turn, background never the object's colour) from seeded Gaussian noise
with diffusers' StableDiffusionPipeline + DDIM, then scores each image: the object is the set of pixels
farther than 100 (RGB distance, 0-255) from the named background colour, and the image counts as right
when that set has >= 20 pixels and its mean colour lies within 60 of the named object colour (the same
distance tools/quality.py uses for recolour success).

This separates "the model does not know the colour" from "the editing method does not get it there":
session 6 measured models/toy-sd at 88/96 here while p2p + LocalBlend recolours 73.5% (docs/quality.md).

    python3 tools/t2i_colour_check.py --model models/toy-sd --count 96
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "toyworld"))
import world  # noqa: E402


def captions(count):
    """[(caption, object colour, background colour)]; the caption is world.Scene's own."""
    names, out = world.COLOR_NAMES, []
    for i in range(count):
        col = names[i % len(names)]
        bg = names[(i * 3 + 1) % len(names)]
        if bg == col:
            bg = names[(i * 3 + 2) % len(names)]
        shape = world.SHAPES[(i // len(names)) % len(world.SHAPES)]
        scene = world.Scene(objects=[world.Obj(shape, col, 0, 0, 0)], background=world.Background([bg]))
        out.append((scene.caption(), col, bg))
    return out


def score(img, col, bg, min_pixels=20, dist=60.0, bg_dist=100.0):
    """img float [H, W, 3] in 0..255 -> (right colour?, mean object colour or None)."""
    obj = np.linalg.norm(img - np.array(world.COLORS[bg], np.float32), axis=-1) > bg_dist
    if obj.sum() < min_pixels:
        return False, None
    mean = img[obj].mean(0)
    return bool(np.linalg.norm(mean - np.array(world.COLORS[col], np.float32)) < dist), mean


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(HERE, "..", "models", "toy-sd"))
    ap.add_argument("--count", type=int, default=96)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.count < 1 or a.batch < 1 or a.steps < 1:
        ap.error("--count, --batch and --steps must be >= 1")
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    torch.set_num_threads(a.threads)
    pipe = StableDiffusionPipeline.from_pretrained(a.model, torch_dtype=torch.float32, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    caps = captions(a.count)
    per_colour = {c: [0, 0] for c in world.COLOR_NAMES}
    for b in range(0, a.count, a.batch):
        chunk = caps[b:b + a.batch]
        ims = pipe([c for c, _, _ in chunk], num_inference_steps=a.steps, guidance_scale=a.guidance,
                   generator=torch.Generator().manual_seed(b), output_type="np", height=size, width=size).images
        for (cap, col, bg), im in zip(chunk, ims):
            ok, _ = score(im.astype(np.float32) * 255, col, bg)
            per_colour[col][0] += ok
            per_colour[col][1] += 1
    right = sum(v[0] for v in per_colour.values())
    print(f"{a.model}: object colour right in {right}/{a.count} "
          f"({a.steps} steps, guidance {a.guidance}, {size}x{size})")
    print("  " + ", ".join(f"{c} {v[0]}/{v[1]}" for c, v in per_colour.items() if v[1]))


if __name__ == "__main__":
    main()
