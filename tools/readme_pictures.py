#!/usr/bin/env python3
"""Before/after pictures for the README, produced by the project's own CLI and default model.

    python3 tools/readme_pictures.py [--cli build/bin/diffedit] [--out docs/images/before_after.png]

For each image in examples/images/captions.json it runs
    diffedit edit --input examples/images/NAME --prompt "<example_edit>" --output ...
(no --model: the embedded default, models/toy-instruct; default seed and settings) and writes a grid:
one row per example, before | after, 4x enlarged (nearest neighbour), with the instruction under it.
Needs Pillow.
"""
import argparse
import json
import os
import subprocess
import tempfile

from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "bin", "diffedit"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "images", "before_after.png"))
    ap.add_argument("--scale", type=int, default=4)
    a = ap.parse_args()
    ex = os.path.join(ROOT, "examples", "images")
    with open(os.path.join(ex, "captions.json")) as f:
        cases = json.load(f)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, c in cases.items():
            out = os.path.join(tmp, name)
            cmd = [a.cli, "edit", "--input", os.path.join(ex, name), "--prompt", c["example_edit"], "--output", out]
            subprocess.run(cmd, check=True, capture_output=True)
            print(" ".join(cmd[1:]).replace(ROOT + "/", ""))
            rows.append((Image.open(os.path.join(ex, name)).convert("RGB"), Image.open(out).convert("RGB"),
                         c["example_edit"]))
    s, pad, label = a.scale, 8, 18
    w = max(r[0].width for r in rows) * s
    h = max(r[0].height for r in rows) * s
    grid = Image.new("RGB", (2 * w + 3 * pad, len(rows) * (h + label + pad) + pad + label), "white")
    d = ImageDraw.Draw(grid)
    d.text((pad, 2), "before", fill="black")
    d.text((2 * pad + w, 2), "after: diffedit edit --prompt ...", fill="black")
    for i, (before, after, text) in enumerate(rows):
        y = label + pad + i * (h + label + pad)
        grid.paste(before.resize((before.width * s, before.height * s), Image.NEAREST), (pad, y))
        grid.paste(after.resize((after.width * s, after.height * s), Image.NEAREST), (2 * pad + w, y))
        d.text((pad, y + h + 3), f'"{text}"', fill="black")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    grid.save(a.out, optimize=True)
    print(f"wrote {a.out} ({grid.width}x{grid.height})")


if __name__ == "__main__":
    main()
