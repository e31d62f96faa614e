#!/usr/bin/env python3
"""The library's pixel policy, measured through the CLI (issue "One editing engine").

1. Masked image edit: examples/images/red_circle.png (64x64) with a mask whose right half is black (keep),
   "make the circle blue" with the default model; also a 96x64 version with --full-resolution. Reports how
   many of the kept pixels changed and by how much (the policy: none, by 0 levels).
2. Consistent video: 16 frames of 96x96, a red circle over a panning striped background, "make the circle
   blue", default (consistent) mode and --per-frame. Reports the mean error against the input outside the
   circle (dilated) and the mean frame-to-frame change there (flicker), next to the input's own.

    python3 tools/pixel_policy_check.py --cli build/bin/diffedit
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")


def masked_image(cli, tmp, full_resolution):
    src = np.array(Image.open(os.path.join(ROOT, "examples/images/red_circle.png")).convert("RGB"))
    if full_resolution:   # 96x64: the 64x64 picture with 32 more columns of its right edge
        src = np.concatenate([src, np.repeat(src[:, -1:], 32, axis=1)], axis=1)
    h, w = src.shape[:2]
    mask = np.full((h, w), 255, np.uint8)
    mask[:, w // 2:] = 0
    inp, mp, out = (os.path.join(tmp, n) for n in ("in.png", "mask.png", "out.png"))
    Image.fromarray(src).save(inp)
    Image.fromarray(mask).save(mp)
    cmd = [cli, "edit", "--input", inp, "--mask", mp, "--prompt", "make the circle blue", "--output", out, "--quiet"]
    if full_resolution:
        cmd.append("--full-resolution")
    run(cmd)
    got = np.array(Image.open(out).convert("RGB")).astype(int)
    keep = mask == 0
    diff = np.abs(got - src.astype(int)).max(axis=2)[keep]
    changed = int((diff > 0).sum())
    name = f"{w}x{h}" + (" --full-resolution" if full_resolution else "")
    print(f"masked edit {name}: {changed} of {int(keep.sum())} kept pixels changed (max {int(diff.max())} levels)")
    return changed


def clip(n=16, size=96):
    frames, masks = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for f in range(n):
        stripes = ((xx + f) // 12) % 2
        img = np.where(stripes[..., None] == 1, np.array([235, 235, 235]), np.array([120, 150, 200])).astype(np.uint8)
        cx, cy, r = size // 2, size // 2, size // 5
        disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        img[disk] = (220, 30, 30)
        frames.append(img)
        grown = (xx - cx) ** 2 + (yy - cy) ** 2 <= (r + size // 8) ** 2
        masks.append(~grown)
    return frames, masks


def video(cli, tmp, per_frame):
    frames, outside = clip()
    ind, outd = os.path.join(tmp, "vin"), os.path.join(tmp, "vout" + ("pf" if per_frame else ""))
    os.makedirs(ind, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(ind, f"frame_{i:05d}.png"))
    cmd = [cli, "video", "--input", ind, "--output", outd, "--prompt", "make the circle blue", "--quiet"]
    if per_frame:
        cmd.append("--per-frame")
    run(cmd)
    outs = [np.array(Image.open(os.path.join(outd, f"frame_{i:05d}.png")).convert("RGB")).astype(float)
            for i in range(len(frames))]
    err = np.mean([np.abs(o - f.astype(float))[m].mean() for o, f, m in zip(outs, frames, outside)])
    m = outside[0]
    flick = np.mean([np.abs(outs[i] - outs[i - 1])[m].mean() for i in range(1, len(outs))])
    flick_in = np.mean([np.abs(frames[i].astype(float) - frames[i - 1])[m].mean() for i in range(1, len(frames))])
    mode = "--per-frame" if per_frame else "consistent"
    print(f"video {mode}: mean error outside the circle {err:.1f} levels; flicker {flick:.1f} (input's own {flick_in:.1f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=os.path.join(ROOT, "build/bin/diffedit"))
    ap.add_argument("--no-video", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        masked_image(a.cli, tmp, False)
        masked_image(a.cli, tmp, True)
        if not a.no_video:
            video(a.cli, tmp, False)
            video(a.cli, tmp, True)


if __name__ == "__main__":
    main()
