#!/usr/bin/env python3
"""Writes Tests/Fixtures/quality: held-out toy-world recolour edits with their known right answers, for
DefaultModelQualityTests (issue 5: "10 recolour edits, at least 8 succeed").

    python3 tools/make_quality_fixtures.py [--cases 10]

Per case: case_NN.png (the 64x64 source), case_NN_region.png (the edited region: white = may change) and an
entry in cases.json (instruction, a held-out phrasing of it (issue 23), the captions and a held-out wording
of them (toy-sd's p2p), expected RGB, seed). Seeds come from a held-out range of their own
(world.HELDOUT_SEED_BASE + 5 000 000 + i), disjoint from training data and from tools/quality.py's cases.
Needs numpy and Pillow only (no PyTorch).
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "toyworld"))
import phrasing  # noqa: E402
import world  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "Fixtures", "quality"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    cases = []
    for i in range(a.cases):
        seed = world.HELDOUT_SEED_BASE + 5_000_000 + i
        e = world.edit_for_seed(seed, "recolor")
        r = world.edit_arrays(e)
        name = f"case_{i:02d}"
        Image.fromarray(r["source"]).save(os.path.join(a.out, name + ".png"), optimize=True)
        Image.fromarray((r["region"] * 255).astype(np.uint8)).save(os.path.join(a.out, name + "_region.png"),
                                                                   optimize=True)
        # a phrasing from the held-out templates (tools/toyworld/phrasing.py) and a held-out wording of its caption
        # pair (toy-sd's p2p), as tools/quality.py --phrasing heldout
        held, (held_src, held_tgt) = phrasing.for_case(e, seed, "heldout")
        cases.append({"name": name, "seed": seed, "instruction": e.instruction, "heldout_instruction": held,
                      "expected_rgb": [float(x) for x in r["expected_rgb"]],
                      "source_caption": r["source_caption"], "target_caption": r["target_caption"],
                      "heldout_source_caption": held_src, "heldout_target_caption": held_tgt})
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump({"generator": "tools/make_quality_fixtures.py", "edit_type": "recolor",
                   "success": "mean colour of the region eroded by 1 px within 60 (RGB distance) of expected_rgb",
                   "background": "PSNR outside the region dilated by 2 px, against the source",
                   "cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} cases to {a.out}")


if __name__ == "__main__":
    main()
