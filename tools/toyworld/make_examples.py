#!/usr/bin/env python3
"""Writes the committed example inputs examples/images/*.png (64x64 toy-world scenes) and their captions.

    python3 tools/toyworld/make_examples.py
"""
import json
import os
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from world import Background, Obj, Scene, render  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXAMPLES = {
    "red_circle": (Scene([Obj("circle", "red", 32, 32, 15)], Background(["white"])), "make the circle blue"),
    "cup_and_star": (Scene([Obj("cup", "green", 17, 33, 10.5), Obj("star", "yellow", 47, 31, 10.5, 5.0)],
                           Background(["blue"])), "make the cup orange"),
    "purple_square": (Scene([Obj("square", "purple", 31, 33, 15, -8.0)], Background(["yellow", "white"], "horizontal")),
                      "make the background green"),
    "black_ring": (Scene([Obj("ring", "black", 33, 31, 16)], Background(["orange"])), "make the ring white"),
}


def main():
    out = os.path.join(ROOT, "examples", "images")
    os.makedirs(out, exist_ok=True)
    meta = {}
    for name, (scene, edit) in EXAMPLES.items():
        img, _ = render(scene)
        Image.fromarray(img).save(os.path.join(out, name + ".png"), optimize=True)
        meta[name + ".png"] = {"caption": scene.caption(), "example_edit": edit}
    with open(os.path.join(out, "captions.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
