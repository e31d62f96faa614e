#!/usr/bin/env python3
"""Write toy-world scenes, edit triplets and clips to a folder.

    python3 tools/toyworld/generate.py --seed 1000000000 --count 20 --out /tmp/toy
    python3 tools/toyworld/generate.py --seed 7 --count 4 --clips --out /tmp/toyclips

Edits (default): for case i (seed = --seed + i) writes
    DIR/NNNNN_source.png   input image (RGB, 64x64 unless --size)
    DIR/NNNNN_target.png   ground-truth edited image
    DIR/NNNNN_region.png   edited-region mask (255 = edited, 0 = keep)
    DIR/NNNNN_obj<k>.png   per-object masks of the source scene
and one JSON line per case in DIR/cases.jsonl: id, seed, edit_type, instruction, source_caption,
target_caption, expected_rgb (mean colour the edited region should have), target_color, target_shape,
source scene description.
--type restricts to one edit type (recolor, reshape, background, remove); otherwise cycled.
Clips (--clips): DIR/clipNNNNN/frame_FF.png + mask_FF_<k>.png and DIR/clips.jsonl.
Seeds >= 1000000000 are held out (never used for training).
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import world  # noqa: E402


def save(path, arr):
    if arr.dtype == bool:
        arr = (arr.astype(np.uint8) * 255)
    Image.fromarray(arr).save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--type", choices=world.EDIT_TYPES, default=None)
    ap.add_argument("--clips", action="store_true", help="write 16-frame clips instead of edits")
    ap.add_argument("--frames", type=int, default=16)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.clips:
        with open(os.path.join(a.out, "clips.jsonl"), "w") as f:
            for i in range(a.count):
                seed = a.seed + i
                c = world.random_clip(np.random.default_rng(seed), a.frames, a.size)
                d = os.path.join(a.out, f"clip{i:05d}")
                os.makedirs(d, exist_ok=True)
                for t, (im, ms) in enumerate(zip(c["frames"], c["masks"])):
                    save(os.path.join(d, f"frame_{t:02d}.png"), im)
                    for k, m in enumerate(ms):
                        save(os.path.join(d, f"mask_{t:02d}_{k}.png"), m)
                f.write(json.dumps({"id": i, "seed": seed, "dir": f"clip{i:05d}", "caption": c["caption"],
                                    "frames": a.frames, "velocities": c["velocities"],
                                    "states": c["states"]}) + "\n")
        print(f"wrote {a.count} clips to {a.out}")
        return
    with open(os.path.join(a.out, "cases.jsonl"), "w") as f:
        for i in range(a.count):
            seed = a.seed + i
            et = a.type or world.EDIT_TYPES[i % len(world.EDIT_TYPES)]
            e = world.edit_for_seed(seed, et, a.size)
            r = world.edit_arrays(e)
            p = os.path.join(a.out, f"{i:05d}")
            save(p + "_source.png", r["source"])
            save(p + "_target.png", r["target"])
            save(p + "_region.png", r["region"])
            for k, m in enumerate(r["source_masks"]):
                save(p + f"_obj{k}.png", m)
            f.write(json.dumps({
                "id": i, "seed": seed, "edit_type": e.edit_type, "instruction": e.instruction,
                "source_caption": r["source_caption"], "target_caption": r["target_caption"],
                "expected_rgb": [float(x) for x in r["expected_rgb"]], "target_color": e.target_color,
                "target_shape": e.target_shape, "obj_index": e.obj_index,
                "source": e.source.to_dict(), "files": {"source": f"{i:05d}_source.png",
                                                        "target": f"{i:05d}_target.png",
                                                        "region": f"{i:05d}_region.png"}}) + "\n")
    print(f"wrote {a.count} edit cases to {a.out}")


if __name__ == "__main__":
    main()
