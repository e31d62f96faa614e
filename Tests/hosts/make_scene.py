#!/usr/bin/env python3
"""Writes Tests/hosts/scene.png, the committed test image of the GIMP and Krita host checks:
a toy-world scene (tools/toyworld/world.py), a red circle on a white background, 64x64, RGB.

    python3 Tests/hosts/make_scene.py
The host checks select the rectangle SELECTION (x, y, w, h) around the circle and ask for it blue."""
import os
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "toyworld"))
from world import Background, Obj, Scene, render  # noqa: E402

SELECTION = (12, 12, 40, 40)  # x, y, width, height: holds the whole circle (centre 32,32, radius 15)


def main():
    img, _ = render(Scene([Obj("circle", "red", 32, 32, 15)], Background(["white"])))
    Image.fromarray(img).save(os.path.join(ROOT, "Tests", "hosts", "scene.png"), optimize=True)
    print("wrote Tests/hosts/scene.png", img.shape, "selection", SELECTION)


if __name__ == "__main__":
    main()
