#!/usr/bin/env python3
"""Runs the real ffmpeg with the diffedit frei0r plug-in on a short toy clip and checks the result.

    python3 examples/ffmpeg/check_frei0r.py --plugin-dir build/frei0r-1 --model Tests/Fixtures/sd1

Checks: the output has as many frames as the input, the same size; the edit happened (frames differ
from the input); flicker (mean absolute change between consecutive output frames over pixels whose
source neighbourhood does not change) is under --flicker-bar; a bad method name and a numeric parameter
that does not parse make ffmpeg exit non-zero with a message naming the parameter. With --controlnet (a
ControlNet for --model): the same edit with it (canny maps per frame) differs from the edit without it, and an
unknown control name and a missing ControlNet file are errors naming the parameter.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(d):
    names = sorted(n for n in os.listdir(d) if n.startswith("frame_") and n.endswith(".png"))
    return [np.asarray(Image.open(os.path.join(d, n)).convert("RGB")).astype(float) for n in names]


def flicker(src, out, margin=4):
    tot, n = 0.0, 0
    for t in range(1, len(src)):
        moving = np.any(src[t] != src[t - 1], axis=2)
        grown = moving.copy()
        for dy in range(-margin, margin + 1):
            for dx in range(-margin, margin + 1):
                grown |= np.roll(np.roll(moving, dy, 0), dx, 1)
        d = np.abs(out[t] - out[t - 1])[~grown]
        tot += d.sum()
        n += d.size
    return tot / max(n, 1)


def ffmpeg(plugin_dir, clip, out, params):
    os.makedirs(out, exist_ok=True)
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-framerate", "8", "-i", os.path.join(clip, "frame_%02d.png"),
           "-vf", f"frei0r=filter_name=diffedit:filter_params={params}", os.path.join(out, "frame_%02d.png")]
    env = dict(os.environ, FREI0R_PATH=os.path.abspath(plugin_dir))
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plugin-dir", default=os.path.join(ROOT, "build", "frei0r-1"))
    ap.add_argument("--clip", default=os.path.join(ROOT, "Tests", "Fixtures", "video", "toyclip"))
    ap.add_argument("--model", default="", help="model path ('' = the default model)")
    ap.add_argument("--prompt", default="a blue ring and a purple circle on a green and yellow background")
    ap.add_argument("--source-prompt", default="an orange ring and a purple circle on a green and yellow background")
    ap.add_argument("--method", default="sdedit")
    ap.add_argument("--strength", default="0.6")
    ap.add_argument("--steps", default="6")
    ap.add_argument("--lookahead", default="0")
    ap.add_argument("--flicker-bar", type=float, default=3.0)
    ap.add_argument("--controlnet", default="", help="a ControlNet for --model: also check the controlnet parameters")
    a = ap.parse_args()
    failures = 0

    def check(ok, what):
        nonlocal failures
        print(("ok   " if ok else "FAIL ") + what)
        failures += 0 if ok else 1

    src = load(a.clip)
    with tempfile.TemporaryDirectory() as tmp:
        params = "|".join([a.prompt, a.source_prompt, a.method, a.strength, "0", a.steps, "7", a.model, a.lookahead])
        r = ffmpeg(a.plugin_dir, a.clip, os.path.join(tmp, "out"), params)
        check(r.returncode == 0, f"ffmpeg with the frei0r plug-in exits 0 ({r.stderr.strip()[-300:]})")
        out = load(os.path.join(tmp, "out")) if r.returncode == 0 else []
        check(len(out) == len(src), f"{len(out)} frames out for {len(src)} in")
        if out:
            check(all(o.shape == src[0].shape for o in out), f"frame size {out[0].shape[1]}x{out[0].shape[0]}")
            lag = int(a.lookahead)
            diffs = [float(np.abs(o - s).mean()) for o, s in zip(out[lag:], src)]
            check(min(diffs) > 1.0, f"every edited frame differs from its input (mean abs diff min {min(diffs):.2f})")
            fl = flicker(src[: len(out) - lag], out[lag:])
            check(fl <= a.flicker_bar, f"flicker {fl:.2f} <= {a.flicker_bar}")
        if a.controlnet and out:
            cparams = params + "|" + "|".join([a.controlnet, "canny", "1"])
            r = ffmpeg(a.plugin_dir, a.clip, os.path.join(tmp, "cn"), cparams)
            check(r.returncode == 0, f"ffmpeg with a ControlNet exits 0 ({r.stderr.strip()[-300:]})")
            cn = load(os.path.join(tmp, "cn")) if r.returncode == 0 else []
            check(len(cn) == len(src), f"ControlNet: {len(cn)} frames out for {len(src)} in")
            if cn:
                moved = min(float(np.abs(c - o).mean()) for c, o in zip(cn, out))
                check(moved > 0.5, f"ControlNet: every frame differs from the edit without it (min mean abs diff {moved:.2f})")
            r = ffmpeg(a.plugin_dir, a.clip, os.path.join(tmp, "cnbad"), params + "|" + "|".join([a.controlnet, "sobel", "1"]))
            check(r.returncode != 0 and "preprocessor" in r.stderr and "sobel" in r.stderr,
                  f"unknown control: exit {r.returncode}, {r.stderr.strip()[-200:]!r}")
            r = ffmpeg(a.plugin_dir, a.clip, os.path.join(tmp, "cnmissing"), params + "|/no/such/cn.safetensors|canny|1")
            check(r.returncode != 0 and "controlnet" in r.stderr,
                  f"missing ControlNet: exit {r.returncode}, {r.stderr.strip()[-200:]!r}")
        bad = "|".join([a.prompt, "", "nope", a.strength, "0", a.steps, "7", a.model, "0"])
        r = ffmpeg(a.plugin_dir, a.clip, os.path.join(tmp, "bad1"), bad)
        check(r.returncode != 0 and "parameter method" in r.stderr, f"bad method: exit {r.returncode}, {r.stderr.strip()[-200:]!r}")
        bad = "|".join([a.prompt, "", a.method, "strong"])
        r = ffmpeg(a.plugin_dir, a.clip, os.path.join(tmp, "bad2"), bad)
        check(r.returncode != 0 and "strong" in r.stderr, f"unparsable strength: exit {r.returncode}, {r.stderr.strip()[-200:]!r}")
        bad = "|".join(["", "", a.method, a.strength, "0", a.steps, "7", a.model, "0"])
        r = ffmpeg(a.plugin_dir, a.clip, os.path.join(tmp, "bad3"), bad)
        check(r.returncode != 0 and "prompt" in r.stderr, f"empty prompt: exit {r.returncode}, {r.stderr.strip()[-200:]!r}")
    print("check_frei0r: " + ("all checks passed" if failures == 0 else f"{failures} checks failed"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
