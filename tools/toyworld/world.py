"""Toy world of coloured shapes: deterministic scenes, captions, masks, edit triplets and clips.

Everything here is numpy + PIL only and fully determined by an integer seed, so that the training
scripts (tools/train_*.py), the quality benchmark (tools/quality.py) and the Swift tests agree on
what a scene and its correct edit look like.

Conventions
- Images are uint8 arrays [H, W, 3] (default 64x64); masks are bool arrays [H, W].
- Shapes are drawn at 4x supersampling and box-filtered down, so edges are anti-aliased; a pixel
  belongs to an object's mask when at least half of it is covered.
- Seed ranges: training uses seeds < HELDOUT_SEED_BASE; held-out evaluation (make quality, tests)
  uses seeds >= HELDOUT_SEED_BASE, so the two never overlap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict

import numpy as np
from PIL import Image, ImageDraw

HELDOUT_SEED_BASE = 1_000_000_000  # seeds at or above this are never used for training

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 170, 60),
    "blue": (30, 70, 220),
    "yellow": (240, 215, 30),
    "orange": (245, 135, 20),
    "purple": (140, 50, 180),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}
COLOR_NAMES = list(COLORS)
SHAPES = ["circle", "square", "triangle", "star", "ring", "cup"]
EDIT_TYPES = ["recolor", "reshape", "background", "remove"]
SS = 4  # supersampling factor


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


@dataclass
class Obj:
    shape: str
    color: str
    cx: float  # centre, pixels (final resolution)
    cy: float
    r: float   # half size, pixels
    angle: float = 0.0  # degrees, for square/triangle/star

    def phrase(self) -> str:
        return f"{self.color} {self.shape}"


@dataclass
class Background:
    colors: list  # one or two colour names
    split: str = "none"  # "none", "vertical" (left/right), "horizontal" (top/bottom)

    def phrase(self) -> str:
        if len(self.colors) == 1:
            return f"{article(self.colors[0])} {self.colors[0]} background"
        return f"{article(self.colors[0])} {self.colors[0]} and {self.colors[1]} background"


@dataclass
class Style:
    """How a jittered scene departs from the generator's exact look (random_scene(jitter=True)): per-channel
    colour offsets (-15..15) of each object and of the background, hard (aliased) edges, and a background
    texture: None, ("gradient", angle degrees, amplitude) brightness ramp, or ("noise", seed, sigma)."""
    obj_jitter: list = field(default_factory=list)   # [[dr, dg, db] per object]
    bg_jitter: list = field(default_factory=lambda: [0, 0, 0])
    hard: bool = False
    texture: tuple | None = None


@dataclass
class Scene:
    objects: list
    background: Background
    size: int = 64
    style: Style | None = None  # None: the exact generator look (every seed below draws it the same way)

    def caption(self) -> str:
        objs = " and ".join(f"{article(o.color)} {o.phrase()}" for o in self.objects)
        return f"{objs} on {self.background.phrase()}"

    def to_dict(self) -> dict:
        d = {"objects": [asdict(o) for o in self.objects], "background": asdict(self.background),
             "size": self.size, "caption": self.caption()}
        if self.style is not None:
            d["style"] = asdict(self.style)
        return d


# ----------------------------------------------------------------------------------------------
# Drawing

def _shape_coverage(o: Obj, size: int, ss: int = SS) -> np.ndarray:
    """Float coverage in [0, 1] of one object, [size, size] (ss = 1: hard, aliased edges)."""
    SS = ss  # noqa: N806
    S = size * SS
    im = Image.new("L", (S, S), 0)
    d = ImageDraw.Draw(im)
    cx, cy, r = o.cx * SS, o.cy * SS, o.r * SS
    a = math.radians(o.angle)

    def poly(points):
        d.polygon([(cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a))
                   for x, y in points], fill=255)

    if o.shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif o.shape == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ri = r * 0.55
        d.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    elif o.shape == "square":
        s = r * 0.85
        poly([(-s, -s), (s, -s), (s, s), (-s, s)])
    elif o.shape == "triangle":
        poly([(r * math.cos(t), r * math.sin(t)) for t in
              (-math.pi / 2, -math.pi / 2 + 2 * math.pi / 3, -math.pi / 2 + 4 * math.pi / 3)])
    elif o.shape == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.45
            t = -math.pi / 2 + k * math.pi / 5
            pts.append((rr * math.cos(t), rr * math.sin(t)))
        poly(pts)
    elif o.shape == "cup":
        # mug: a body (rectangle, slightly tapered) and a handle (ring segment) on the right
        w, h = r * 0.62, r * 0.8
        bx = cx - r * 0.2
        d.polygon([(bx - w, cy - h), (bx + w, cy - h), (bx + w * 0.85, cy + h), (bx - w * 0.85, cy + h)],
                  fill=255)
        hr = r * 0.42
        hx = bx + w * 0.92
        d.ellipse([hx - hr, cy - hr, hx + hr, cy + hr], fill=255)
        hi = hr * 0.5
        d.ellipse([hx - hi, cy - hi, hx + hi, cy + hi], fill=0)
        d.polygon([(bx - w, cy - h), (bx + w, cy - h), (bx + w * 0.85, cy + h), (bx - w * 0.85, cy + h)],
                  fill=255)
    else:
        raise ValueError(f"unknown shape {o.shape!r}")
    a = np.asarray(im, dtype=np.float32) / 255.0
    return a.reshape(size, SS, size, SS).mean(axis=(1, 3))


def _background(bg: Background, size: int, style: Style | None = None) -> np.ndarray:
    img = np.empty((size, size, 3), np.float32)
    img[:] = COLORS[bg.colors[0]]
    if len(bg.colors) == 2:
        c2 = np.array(COLORS[bg.colors[1]], np.float32)
        if bg.split == "vertical":
            img[:, size // 2:] = c2
        else:
            img[size // 2:, :] = c2
    if style is not None:
        img += np.array(style.bg_jitter, np.float32)
        if style.texture is not None:
            kind, a, b = style.texture
            if kind == "gradient":  # a brightness ramp across the picture, +-b at the corners
                yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1) - 0.5
                t = math.cos(math.radians(a)) * xx + math.sin(math.radians(a)) * yy
                img += (2 * b * t)[..., None]
            elif kind == "noise":  # fine grain, the same for source and target (seeded)
                img += np.random.default_rng(int(a)).normal(0, b, (size, size, 1)).astype(np.float32)
            else:
                raise ValueError(f"unknown texture {kind!r}")
    return np.clip(img, 0, 255)


def render(scene: Scene) -> tuple[np.ndarray, list]:
    """Returns (image uint8 [H,W,3], list of per-object bool masks [H,W]). Later objects are on top."""
    size = scene.size
    st = scene.style
    img = _background(scene.background, size, st)
    masks = []
    covs = []
    for k, o in enumerate(scene.objects):
        cov = _shape_coverage(o, size, 1 if st is not None and st.hard else SS)
        covs.append(cov)
        col = np.array(COLORS[o.color], np.float32)
        if st is not None and k < len(st.obj_jitter):
            col = np.clip(col + np.array(st.obj_jitter[k], np.float32), 0, 255)
        img = img * (1 - cov[..., None]) + col * cov[..., None]
    for i, cov in enumerate(covs):
        m = cov >= 0.5
        for later in covs[i + 1:]:
            m &= later < 0.5
        masks.append(m)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), masks


# ----------------------------------------------------------------------------------------------
# Random scenes

def random_scene(rng: np.random.Generator, size: int = 64, n_objects: int | None = None,
                 jitter: bool = False) -> Scene:
    """A random scene. jitter=True (a different generator, for robustness training and the quality
    benchmark's jittered mode): sizes and positions from a wider range, and a Style (colour offsets of
    +-15 per channel, hard edges in 30%, a gradient or grain texture on the background in 25%). With
    jitter=False the draws are exactly those of every earlier version (seeds keep their scenes)."""
    if n_objects is None:
        n_objects = 1 if rng.random() < 0.5 else 2
    if rng.random() < 0.7:
        bg = Background([str(rng.choice(COLOR_NAMES))])
    else:
        c1, c2 = rng.choice(COLOR_NAMES, 2, replace=False)
        bg = Background([str(c1), str(c2)], split=str(rng.choice(["vertical", "horizontal"])))
    shapes = rng.choice(SHAPES, n_objects, replace=False)
    objs = []
    horiz = bool(rng.random() < 0.5)  # two objects: left/right halves (True) or top/bottom
    for k in range(n_objects):
        # object colour differs from every background colour
        color = str(rng.choice([c for c in COLOR_NAMES if c not in bg.colors]))
        if n_objects == 1:
            r = rng.uniform(*((0.13, 0.32) if jitter else (0.17, 0.27))) * size
            cx = rng.uniform(r + 2, size - r - 2)
            cy = rng.uniform(r + 2, size - r - 2)
        else:
            r = rng.uniform(*((0.10, 0.20) if jitter else (0.12, 0.18))) * size
            # left / right halves (or top / bottom) so the two never overlap
            half = size / 2
            lo, hi = (r + 1, half - r - 1) if k == 0 else (half + r + 1, size - r - 1)
            main = rng.uniform(lo, hi)
            other = rng.uniform(r + 2, size - r - 2)
            cx, cy = (main, other) if horiz else (other, main)
        angle = float(rng.uniform(-15, 15)) if shapes[k] in ("square", "triangle", "star") else 0.0
        objs.append(Obj(str(shapes[k]), color, float(cx), float(cy), float(r), angle))
    if not jitter:
        return Scene(objs, bg, size)
    j = lambda: [int(v) for v in rng.integers(-15, 16, 3)]  # noqa: E731
    style = Style([j() for _ in objs], j(), bool(rng.random() < 0.3))
    u = rng.random()
    if u < 0.125:
        style.texture = ("gradient", float(rng.uniform(0, 360)), float(rng.uniform(8, 20)))
    elif u < 0.25:
        style.texture = ("noise", int(rng.integers(1 << 30)), float(rng.uniform(2, 6)))
    return Scene(objs, bg, size, style)


@dataclass
class Edit:
    edit_type: str
    instruction: str
    source: Scene
    target: Scene
    obj_index: int | None      # which object is edited (None for background)
    target_color: str | None   # expected colour of the edited region (recolor/background/remove)
    target_shape: str | None   # expected shape (reshape)
    extra: dict = field(default_factory=dict)


def _copy(scene: Scene) -> Scene:
    st = scene.style
    if st is not None:
        st = Style([list(x) for x in st.obj_jitter], list(st.bg_jitter), st.hard, st.texture)
    return Scene([Obj(**asdict(o)) for o in scene.objects], Background(list(scene.background.colors),
                                                                        scene.background.split), scene.size, st)


def random_edit(rng: np.random.Generator, scene: Scene, edit_type: str | None = None) -> Edit:
    if edit_type is None:
        edit_type = str(rng.choice(EDIT_TYPES))
    tgt = _copy(scene)
    k = int(rng.integers(len(scene.objects)))
    o = tgt.objects[k]
    bgc = scene.background.colors
    others = [x.color for i, x in enumerate(scene.objects) if i != k]
    if edit_type == "recolor":
        new = str(rng.choice([c for c in COLOR_NAMES if c != o.color and c not in bgc]))
        ins = str(rng.choice([f"make the {o.shape} {new}", f"turn the {o.shape} {new}",
                              f"change the {o.shape} to {new}", f"make the {o.color} {o.shape} {new}"]))
        o.color = new
        if tgt.style is not None:  # the new colour is the world's own (what "blue" means)
            tgt.style.obj_jitter[k] = [0, 0, 0]
        return Edit(edit_type, ins, scene, tgt, k, new, o.shape)
    if edit_type == "reshape":
        used = [x.shape for x in scene.objects]
        new = str(rng.choice([s for s in SHAPES if s not in used]))
        ins = str(rng.choice([f"turn the {o.shape} into a {new}", f"make the {o.shape} a {new}",
                              f"change the {o.shape} to a {new}", f"replace the {o.shape} with a {new}"]))
        old = o.shape
        o.shape = new
        o.angle = float(rng.uniform(-15, 15)) if new in ("square", "triangle", "star") else 0.0
        return Edit(edit_type, ins, scene, tgt, k, o.color, new, {"old_shape": old})
    if edit_type == "background":
        used = [x.color for x in scene.objects]
        new = str(rng.choice([c for c in COLOR_NAMES if c not in used and [c] != bgc]))
        ins = str(rng.choice([f"make the background {new}", f"change the background to {new}",
                              f"turn the background {new}", f"paint the background {new}"]))
        tgt.background = Background([new])
        if tgt.style is not None:  # a plain background of the world's colour
            tgt.style.bg_jitter, tgt.style.texture = [0, 0, 0], None
        return Edit(edit_type, ins, scene, tgt, None, new, None)
    if edit_type == "remove":
        ins = str(rng.choice([f"remove the {o.shape}", f"delete the {o.shape}", f"take away the {o.shape}",
                              f"remove the {o.color} {o.shape}"]))
        del tgt.objects[k]
        if tgt.style is not None:
            del tgt.style.obj_jitter[k]
        return Edit(edit_type, ins, scene, tgt, k, None, None)
    raise ValueError(f"unknown edit type {edit_type!r}")


def edit_pair_for_seed(seed: int, edit_type: str = "recolor", size: int = 64) -> tuple[Edit, Edit]:
    """Two edits of the same two-object scene, one per object (training data for binding the instruction's
    noun to the right object: the same picture, two instructions, two different right answers)."""
    if edit_type not in ("recolor", "remove", "reshape"):
        raise ValueError(f"edit_pair_for_seed: {edit_type!r} does not edit one object")
    rng = np.random.default_rng(seed)
    scene = random_scene(rng, size, n_objects=2)
    pair = []
    for k in (0, 1):
        while True:  # random_edit picks the object itself: draw until it picks object k (seeded, so repeatable)
            e = random_edit(rng, scene, edit_type)
            if e.obj_index == k:
                break
        pair.append(e)
    return pair[0], pair[1]


def edit_arrays(e: Edit) -> dict:
    """Renders an edit: source/target images, the edited-region mask and the expected region colour."""
    src, src_masks = render(e.source)
    tgt, tgt_masks = render(e.target)
    size = e.source.size
    if e.edit_type == "background":
        region = ~np.any(np.stack(src_masks), axis=0)
    elif e.edit_type == "remove":
        region = src_masks[e.obj_index]
    elif e.edit_type == "reshape":
        region = src_masks[e.obj_index] | tgt_masks[e.obj_index]
    else:
        region = src_masks[e.obj_index] | tgt_masks[e.obj_index]
    # expected colour inside the region's core (for remove: whatever background is underneath)
    if e.edit_type == "remove":
        bg = _background(e.source.background, size, e.source.style)
        exp = bg[region].mean(axis=0) if region.any() else np.zeros(3)
    elif e.target_color is not None:
        exp = np.array(COLORS[e.target_color], np.float32)
    else:
        exp = np.zeros(3)
    return {"source": src, "target": tgt, "region": region, "source_masks": src_masks,
            "target_masks": tgt_masks, "expected_rgb": exp.astype(np.float32),
            "source_caption": e.source.caption(), "target_caption": e.target.caption()}


def edit_for_seed(seed: int, edit_type: str | None = None, size: int = 64) -> Edit:
    rng = np.random.default_rng(seed)
    return random_edit(rng, random_scene(rng, size), edit_type)


JITTER_SIZES = (64, 96, 128)


def jittered_edit_for_seed(seed: int, edit_type: str | None = None) -> Edit:
    """An edit of a jittered scene (random_scene(jitter=True)) drawn at 64, 96 or 128 px."""
    rng = np.random.default_rng(seed)
    size = int(rng.choice(JITTER_SIZES))
    return random_edit(rng, random_scene(rng, size, jitter=True), edit_type)


def jittered_edit_pair_for_seed(seed: int, edit_type: str = "recolor") -> tuple[Edit, Edit]:
    """edit_pair_for_seed on a jittered two-object scene (64, 96 or 128 px)."""
    rng = np.random.default_rng(seed)
    size = int(rng.choice(JITTER_SIZES))
    scene = random_scene(rng, size, n_objects=2, jitter=True)
    pair = []
    for k in (0, 1):
        while True:
            e = random_edit(rng, scene, edit_type)
            if e.obj_index == k:
                break
        pair.append(e)
    return pair[0], pair[1]


# ----------------------------------------------------------------------------------------------
# Clips

def random_clip(rng: np.random.Generator, frames: int = 16, size: int = 64) -> dict:
    """16 frames of one or two objects moving in straight lines (bouncing off the borders).

    Returns dict(scene=first-frame Scene, frames=[uint8 HxWx3], masks=[[bool HxW] per object],
    caption, velocities)."""
    scene = random_scene(rng, size)
    vel = []
    for o in scene.objects:
        speed = rng.uniform(0.6, 1.6)
        t = rng.uniform(0, 2 * math.pi)
        vel.append((speed * math.cos(t), speed * math.sin(t)))
    imgs, masks, states = [], [], []
    for f in range(frames):
        sc = _copy(scene)
        for o, (vx, vy) in zip(sc.objects, vel):
            lo, hi = o.r + 1, size - o.r - 1
            o.cx = _bounce(o.cx + vx * f, lo, hi)
            o.cy = _bounce(o.cy + vy * f, lo, hi)
            if o.shape in ("square", "triangle", "star"):
                o.angle = o.angle + 2.0 * f
        im, ms = render(sc)
        imgs.append(im)
        masks.append(ms)
        states.append(sc.to_dict())
    return {"scene": scene, "frames": imgs, "masks": masks, "caption": scene.caption(),
            "velocities": vel, "states": states}


def _bounce(x: float, lo: float, hi: float) -> float:
    span = hi - lo
    if span <= 0:
        return lo
    y = (x - lo) % (2 * span)
    return lo + (y if y <= span else 2 * span - y)
