#!/usr/bin/env python3
"""Issue 23's new-user check: recolour edits on scenes drawn here with PIL (not tools/toyworld's renderer) and
instructions in phrasings written here, in neither of tools/toyworld/phrasing.py's sets (checked at start).

    python3 tools/user_check.py [--cli build/bin/diffedit] [--model models/toy-instruct ...] [--cases 100]

Scenes: 64, 96 or 128 px; one object (a third of the cases) or two of different shapes (circle, square,
triangle: PIL ellipse / rectangle / polygon), half-sizes 11-30% of the side (the generator: 17-27%, jittered
13-32%), anywhere that keeps them apart (the toy world: two objects have half-sizes of at most 20% and sit in
opposite halves; "large" in the breakdown: above 20%);
object and background colours from the toy world's eight with +-25 per channel (the generator jitters +-15),
objects and the new colour never a background colour (as in the toy world);
a plain, two-tone or gradient background; half drawn at 4x and downsampled (anti-aliased), half hard-edged.
Instructions: `--phrasing free` (default) draws one of FREE's templates, `train` the training form "make the
{o} {c}"; the object is named by its shape, and in a share of two-object cases by colour and shape ("the red
circle"). The edit runs through the CLI with the model's own defaults (`diffedit edit --model M --seed S`).

Scored like tools/quality.py: success when the mean colour of the object's core (its mask eroded by one pixel,
at 64 px; scaled with the side) lies within 60 of the new colour's RGB, bg PSNR outside the object's mask
dilated by two pixels. Prints success, median bg PSNR and the 1- / 2-object split per model. Deterministic in
--seed-base; CI does not run it (the CLI edits take minutes).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tools", "toyworld"))
import phrasing  # noqa: E402
import world  # noqa: E402
from quality import dilate, erode, psnr  # noqa: E402

# Written for this check; none is a template of phrasing.TRAIN or phrasing.HELDOUT (asserted in main).
FREE = [
    "i'd love a {c} {o}", "the {o} would look better in {c}", "swap the {o}'s colour for {c}",
    "what if the {o} were {c}", "try {c} on the {o}", "recolour just the {o}, {c}", "make the {o} a {c} shade",
    "{o}: {c}", "paint over the {o} with {c}", "the {o} in {c} would be great", "give me a {c} {o}",
    "can we have the {o} {c}", "i think the {o} should turn {c}", "colour in the {o} with {c}",
    "let's make the {o} {c}", "the {o} in {c}, thanks", "turn that {o} over to {c}", "{c} would suit the {o}",
    "could you change the {o} so that it's {c}", "make the {o} appear {c}",
]
SHAPES = ["circle", "square", "triangle"]
BACKGROUNDS = ["white", "black", "blue", "yellow", "green", "purple", "orange", "red"]


def jitter(rng, name, amount=25):
    c = np.array(world.COLORS[name]) + rng.integers(-amount, amount + 1, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def draw_shape(d, shape, cx, cy, r):
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "square":
        d.rectangle([cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85], fill=255)
    else:
        d.polygon([(cx, cy - r), (cx + r * 0.95, cy + r * 0.75), (cx - r * 0.95, cy + r * 0.75)], fill=255)


def make_case(seed, phrasing_mode):
    rng = np.random.default_rng([seed, 23])
    size = int(rng.choice([64, 96, 128]))
    aa = bool(rng.integers(0, 2))
    k = 4 if aa else 1
    n_obj = 1 if rng.random() < 1 / 3 else 2
    bg_name = str(rng.choice(BACKGROUNDS))
    kind = str(rng.choice(["plain", "plain", "two-tone", "gradient"]))
    # background at the drawing scale
    S = size * k
    img = np.zeros((S, S, 3), np.float32)
    img[:] = jitter(rng, bg_name)
    other = None
    if kind == "two-tone":
        other = str(rng.choice([b for b in BACKGROUNDS if b != bg_name]))
        if rng.integers(0, 2):
            img[:, S // 2:] = jitter(rng, other)
        else:
            img[S // 2:, :] = jitter(rng, other)
    elif kind == "gradient":
        ramp = np.linspace(-30, 30, S, dtype=np.float32)[:, None, None]
        img = np.clip(img + (ramp if rng.integers(0, 2) else ramp.transpose(1, 0, 2)), 0, 255)
    shapes = list(rng.choice(SHAPES, n_obj, replace=False))
    used = {bg_name, other}  # objects differ from every background colour, as in the toy world
    objs, masks = [], []
    for i, shape in enumerate(shapes):
        colour = str(rng.choice([c for c in world.COLOR_NAMES if c not in used]))
        used.add(colour)
        for attempt in range(400):
            hi = 0.30 - 0.19 * attempt / 400  # half-size 11-30% of the side, smaller when two do not fit
            r = rng.uniform(0.11, hi) * size
            cx, cy = rng.uniform(r + 2, size - r - 2, 2)
            if all(np.hypot(cx - o[2], cy - o[3]) > r + o[4] + 4 for o in objs):
                break
        m = Image.new("L", (S, S), 0)
        draw_shape(ImageDraw.Draw(m), shape, cx * k, cy * k, r * k)
        a = np.asarray(m, np.float32)[..., None] / 255.0
        img = img * (1 - a) + np.array(jitter(rng, colour), np.float32) * a
        objs.append((shape, colour, cx, cy, r))
        masks.append(np.asarray(m.resize((size, size), Image.BOX)) >= 128)
    pic = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    if aa:
        pic = pic.resize((size, size), Image.LANCZOS)
    t = int(rng.integers(0, n_obj))
    shape, colour = objs[t][0], objs[t][1]
    new = str(rng.choice([c for c in world.COLOR_NAMES if c not in (colour, bg_name, other)]))
    name = f"{colour} {shape}" if n_obj == 2 and rng.random() < 0.3 else shape
    template = "make the {o} {c}" if phrasing_mode == "train" else str(rng.choice(FREE))
    return {"seed": seed, "image": np.asarray(pic), "mask": masks[t], "n_obj": n_obj, "size": size, "bg": kind,
            "edges": "aa" if aa else "hard", "objsize": "large" if objs[t][4] > 0.2 * size else "small",
            "instruction": template.format(o=name, c=new), "new": new}


def score(case, out):
    m = case["mask"]
    scale = max(1, case["size"] // 64)
    core = erode(m, scale)
    if not core.any():
        core = m
    mean = out.astype(np.float32)[core].mean(axis=0)
    ok = float(np.linalg.norm(mean - np.array(world.COLORS[case["new"]], np.float32))) < 60
    return ok, psnr(out, case["image"], ~dilate(m, 2 * scale))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "bin", "diffedit"))
    ap.add_argument("--model", action="append", help="instruct model folder(s); default models/toy-instruct")
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--phrasing", default="free,train", help="free, train or both (comma-separated)")
    ap.add_argument("--seed-base", type=int, default=2_300_000_000)
    ap.add_argument("--seed", type=int, default=0, help="the CLI's noise seed")
    ap.add_argument("--show", type=int, default=0, help="print the first N failures")
    ap.add_argument("--save", default="", help="keep the inputs and outputs in this folder")
    a = ap.parse_args()
    known = {t for split in (phrasing.TRAIN, phrasing.HELDOUT) for ts in split.values() for t in ts}
    clash = [t for t in FREE if t in known]
    assert not clash, f"templates already in phrasing.py: {clash}"
    models = a.model or [os.path.join(ROOT, "models", "toy-instruct")]
    for mode in a.phrasing.split(","):
        cases = [make_case(a.seed_base + i, mode) for i in range(a.cases)]
        for model in models:
            res = []
            with tempfile.TemporaryDirectory() as tmp:
                if a.save:
                    tmp = os.path.join(a.save, mode, os.path.basename(os.path.normpath(model)))
                    os.makedirs(tmp, exist_ok=True)
                for c in cases:
                    src, dst = os.path.join(tmp, f"{c['seed']}.png"), os.path.join(tmp, f"{c['seed']}_out.png")
                    Image.fromarray(c["image"]).save(src)
                    subprocess.run([a.cli, "edit", "--model", model, "--input", src, "--output", dst,
                                    "--prompt", c["instruction"], "--seed", str(a.seed)],
                                   check=True, capture_output=True)
                    out = np.asarray(Image.open(dst).convert("RGB"))
                    assert out.shape == c["image"].shape, (out.shape, c["image"].shape)
                    res.append(score(c, out))
            ok = [r[0] for r in res]
            one = [r[0] for r, c in zip(res, cases) if c["n_obj"] == 1]
            print(f"{mode:5s} {model}: "
                  f"success {100 * np.mean(ok):5.1f}% ({sum(ok)}/{len(ok)})  bg PSNR median "
                  f"{np.median([r[1] for r in res]):.1f} dB  1-object {sum(one)}/{len(one)}  "
                  f"2-object {sum(ok) - sum(one)}/{len(ok) - len(one)}", flush=True)
            split = []
            for key in ("size", "bg", "edges", "objsize"):
                for v in sorted({c[key] for c in cases}, key=str):
                    sel = [r[0] for r, c in zip(res, cases) if c[key] == v]
                    split.append(f"{v}{'px' if key == 'size' else ''} {sum(sel)}/{len(sel)}")
            print("    " + "  ".join(split))
            shown = 0
            for r, c in zip(res, cases):
                if not r[0] and shown < a.show:
                    print(f"    miss seed {c['seed']} ({c['size']} px, {c['n_obj']} objects): {c['instruction']!r}")
                    shown += 1


if __name__ == "__main__":
    main()
