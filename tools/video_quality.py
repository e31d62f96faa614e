#!/usr/bin/env python3
"""Video edit quality on toy-world clips: flicker and per-frame edit success, per-frame vs consistent.

    python3 tools/video_quality.py                      # 8 clips x 8 frames, sdedit, through the CLI
    python3 tools/video_quality.py --clips 20 --methods sdedit,ddim,p2p --ablations
    python3 tools/video_quality.py --cli .build/release/diffedit --model models/toy-sd --out docs/video_quality.md

Clips come from tools/toyworld (world.random_clip: one or two objects moving in straight lines over a
static background; held-out seeds at or above world.HELDOUT_SEED_BASE). The edit recolours the first
object (target caption = the caption with its colour replaced; instruct: "make the <shape> <colour>").
Each clip is edited with `diffedit video` twice with the same seed: --per-frame (every frame edited on
its own) and the consistent method (default), plus, with --ablations, the consistent method with parts
switched off. Metrics, averaged over clips:
- flicker: mean absolute change (0..255, per channel) between consecutive edited frames over pixels
  whose source value does not change between the two frames, nor within --margin pixels of them;
- object colour flicker: mean change (Euclidean RGB) of the edited object's mean colour between
  consecutive frames (temporal consistency of the edit itself, which pixel fusion does not touch);
- success: the fraction of frames whose edited object (its mask eroded by one pixel) has a mean colour
  within --color-threshold (Euclidean RGB) of the target colour (as tools/quality.py);
- bg PSNR: PSNR of the edited frames against the source outside every object (masks dilated by 2);
- s/frame: wall seconds per frame (the whole CLI process, model loading included).
The goal (issue 7): consistent flicker <= 50% of per-frame at equal or better success.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "toyworld"))
import world  # noqa: E402

SEED_OFFSET = 7_000_000  # clips use held-out seeds HELDOUT_SEED_BASE + SEED_OFFSET + i

MODES = {
    "per-frame": ["--per-frame"],
    "consistent": [],
}
ABLATIONS = {
    "consistent + token matching": ["--token-matching"],
    "consistent, no pixel fusion": ["--no-pixel-fusion"],
    "consistent, no pixel fusion, + token matching": ["--no-pixel-fusion", "--token-matching"],
    "cross-frame attention only": ["--no-pixel-fusion", "--propagation", "0"],
    "pixel fusion only": ["--no-cross-frame", "--propagation", "0"],
}


def erode(m, k=1):
    out = m.copy()
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            out &= np.roll(np.roll(m, dy, 0), dx, 1)
    return out


def dilate(m, k=1):
    out = m.copy()
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            out |= np.roll(np.roll(m, dy, 0), dx, 1)
    return out


def make_clip(i, frames, size):
    seed = world.HELDOUT_SEED_BASE + SEED_OFFSET + i
    rng = np.random.default_rng(seed)
    c = world.random_clip(rng, frames, size)
    obj = c["scene"].objects[0]
    choices = [n for n in world.COLOR_NAMES if n != obj.color and n not in c["scene"].background.colors]
    target = choices[int(rng.integers(len(choices)))]
    edited = world._copy(c["scene"])
    edited.objects[0].color = target
    return {"seed": seed, "frames": c["frames"], "masks": [m[0] for m in c["masks"]],
            "all_masks": c["masks"], "source_caption": c["caption"], "target_caption": edited.caption(),
            "instruction": f"make the {obj.shape} {target}", "target_rgb": np.array(world.COLORS[target], float)}


def flicker(src, out, margin):
    total, n = 0.0, 0
    for t in range(1, len(src)):
        moving = np.any(src[t] != src[t - 1], axis=2)
        static = ~dilate(moving, margin)
        if static.sum() == 0:
            continue
        d = np.abs(out[t].astype(float) - out[t - 1].astype(float))[static]
        total += d.sum()
        n += d.size
    return total / max(n, 1)


def object_flicker(clip, out):
    """Mean change of the edited object's mean colour (Euclidean RGB) between consecutive frames."""
    vals, prev = [], None
    for t, o in enumerate(out):
        core = erode(clip["masks"][t], 1)
        cur = o[core].astype(float).mean(axis=0) if core.sum() else None
        if cur is not None and prev is not None:
            vals.append(float(np.linalg.norm(cur - prev)))
        prev = cur
    return float(np.mean(vals)) if vals else 0.0


def success(clip, out, thr):
    ok = 0
    for t, o in enumerate(out):
        core = erode(clip["masks"][t], 1)
        if core.sum() == 0:
            continue
        mean = o[core].astype(float).mean(axis=0)
        ok += np.linalg.norm(mean - clip["target_rgb"]) < thr
    return ok / len(out)


def bg_psnr(clip, out):
    vals = []
    for t, o in enumerate(out):
        fg = np.zeros(clip["masks"][t].shape, bool)
        for m in clip["all_masks"][t]:
            fg |= m
        bg = ~dilate(fg, 2)
        mse = ((o.astype(float) - clip["frames"][t].astype(float)) ** 2)[bg].mean()
        vals.append(99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse))
    return float(np.mean(vals))


def run_cli(a, clip, method, extra, tmp, tag):
    inp = os.path.join(tmp, f"clip{clip['seed']}")
    if not os.path.isdir(inp):
        os.makedirs(inp)
        for t, f in enumerate(clip["frames"]):
            Image.fromarray(f).save(os.path.join(inp, f"frame_{t:03d}.png"))
    out = os.path.join(tmp, f"out{clip['seed']}_{method}_{tag}")
    if method == "instruct":
        args = ["--method", "instruct", "--prompt", clip["instruction"]]
        if a.instruct_model:
            args += ["--model", a.instruct_model]
    else:
        args = ["--method", method, "--prompt", clip["target_caption"], "--source-prompt", clip["source_caption"]]
        if a.model:
            args += ["--model", a.model]
    cmd = [a.cli, "video", "--input", inp, "--output", out, "--seed", str(a.seed), "--steps", str(a.steps),
           "--strength", str(a.strength), "--keyframe-interval", str(a.keyframe_interval), "--quiet"] + args + extra
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.time() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[:500]}")
    names = sorted(n for n in os.listdir(out) if n.endswith(".png"))
    frames = [np.asarray(Image.open(os.path.join(out, n)).convert("RGB")) for n in names]
    if len(frames) != len(clip["frames"]):
        raise RuntimeError(f"{out}: {len(frames)} frames for {len(clip['frames'])} in")
    return frames, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default=os.environ.get("DIFFEDIT", os.path.join(ROOT, "build", "bin", "diffedit")))
    ap.add_argument("--model", default=None, help="text-to-image model (default: the CLI's default model)")
    ap.add_argument("--instruct-model", default=None)
    ap.add_argument("--methods", default="sdedit")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--strength", type=float, default=0.6)
    ap.add_argument("--keyframe-interval", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--margin", type=int, default=4)
    ap.add_argument("--color-threshold", type=float, default=60.0)
    ap.add_argument("--ablations", action="store_true")
    ap.add_argument("--out", default=None, help="write the table (markdown) here, e.g. docs/video_quality.md")
    a = ap.parse_args()
    if not os.path.exists(a.cli):
        sys.exit(f"video_quality: diffedit CLI not found at {a.cli} (make cli, or --cli PATH)")
    modes = dict(MODES)
    if a.ablations:
        modes.update(ABLATIONS)
    clips = [make_clip(i, a.frames, a.size) for i in range(a.clips)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in a.methods.split(","):
            for tag, (mode, extra) in enumerate(modes.items()):
                fl, ofl, sc, bg, secs = [], [], [], [], 0.0
                for clip in clips:
                    out, dt = run_cli(a, clip, method, extra, tmp, tag)
                    fl.append(flicker(clip["frames"], out, a.margin))
                    ofl.append(object_flicker(clip, out))
                    sc.append(success(clip, out, a.color_threshold))
                    bg.append(bg_psnr(clip, out))
                    secs += dt
                row = (method, mode, float(np.mean(fl)), 100 * float(np.mean(sc)), float(np.mean(bg)),
                       secs / (a.clips * a.frames), float(np.mean(ofl)))
                rows.append(row)
                print(f"{method:8s} {mode:46s} flicker {row[2]:6.2f}  object flicker {row[6]:6.2f}  success {row[3]:5.1f}%  "
                      f"bg PSNR {row[4]:5.1f} dB  {row[5]:5.2f} s/frame", flush=True)
    table = ["| method | mode | flicker (0-255) | flicker vs per-frame | object colour flicker | success (frames) | bg PSNR (dB) | s/frame |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = next(x for x in rows if x[0] == r[0] and x[1] == "per-frame")
        ratio = r[2] / base[2] if base[2] > 0 else float("nan")
        table.append(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {100 * ratio:.0f}% | {r[6]:.2f} | {r[3]:.1f}% | {r[4]:.1f} | {r[5]:.2f} |")
    cmd = "python3 tools/video_quality.py " + shlex.join(sys.argv[1:])
    text = "\n".join(table)
    print()
    print(text)
    if a.out:
        block = (f"Made by `{cmd}`: {a.clips} held-out clips of {a.frames} frames ({a.size}x{a.size}), "
                 f"{a.steps} steps, strength {a.strength}, keyframe interval {a.keyframe_interval}, seed {a.seed}, "
                 f"static margin {a.margin} px, colour threshold {a.color_threshold}.\n\n" + text + "\n")
        begin, end = "<!-- video-quality:begin -->", "<!-- video-quality:end -->"
        old = open(a.out).read() if os.path.exists(a.out) else ""
        if begin in old and end in old:
            # replace the marked section only (docs/video_quality.md keeps its method description)
            new = old[:old.index(begin) + len(begin)] + "\n" + block + old[old.index(end):]
        else:
            new = ("# Video edit quality (toy world)\n\nMetrics: see tools/video_quality.py. Goal (issue 7): "
                   "consistent flicker <= 50% of per-frame at equal or better success.\n\n"
                   f"{begin}\n{block}{end}\n")
        with open(a.out, "w") as f:
            f.write(new)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
