#!/usr/bin/env python3
"""`make quality`: edit-quality benchmark on held-out toy-world cases with known right answers.

    python3 tools/quality.py                         # all methods through the diffedit CLI, 200 cases/type
    python3 tools/quality.py --cases 10              # quick run
    python3 tools/quality.py --reference --methods instruct,sdedit,ddim   # the Python diffusers reference
    python3 tools/quality.py --cli .build/release/diffedit --methods instruct --types recolor
    python3 tools/quality.py --methods p2p+lb --types recolor --cases 60 --seed-base 1000005020 \
        --sd-flags="--uncond-mix 0 --new-word-weight 1" --breakdown --out ''   # a tuning sweep point
    python3 tools/quality.py --methods instruct --types recolor --phrasing heldout   # phrasings never trained on
    python3 tools/quality.py --methods p2p+lb --types recolor --steps 50 --phrasing heldout  # captions likewise
    python3 tools/quality.py --methods instruct --types recolor --scenes jitter     # the jittered generator
    python3 tools/quality.py --methods instruct --types recolor --scenes jitter --binding  # does the noun pick the object

For each edit type (recolor, reshape, background, remove) it generates --cases held-out cases (seeds at or
above world.HELDOUT_SEED_BASE, never used in training), runs each method and scores the output against the
ground truth:
- success: recolor / background / remove: the mean colour of the edited region (its core: the mask
  eroded by one pixel) is within --color-threshold (Euclidean RGB distance, 0..255 scale) of the expected
  colour (the new colour; for remove, the background underneath). reshape: template match: the pixels of
  the object's colour in the box around it overlap the new shape's template (IoU >= 0.5) better than the
  old shape's.
- bg PSNR: PSNR of the output against the input outside the edited region (dilated by two pixels).
- s/edit: wall seconds per edit (CLI: the whole process, model loading included; reference: pipeline call).
--phrasing: `canonical` (default) is the generator's own instruction, in the four templates toy-instruct was
first trained on, and its own captions ("a red circle and a blue square on a green background"); `train` draws
an instruction from tools/toyworld/phrasing.py's training templates (synonyms, politeness, typos) and a caption
pair from its training caption templates (synonyms, word order; phrasing.captions); `heldout` from its held-out
templates, never used in training.
--scenes: `plain` (default) the generator's exact look; `jitter` the jittered generator
(world.jittered_edit_for_seed: colour offsets +-15, wider sizes and positions, 64/96/128 px inputs, hard
edges, textured backgrounds), on a seed range of its own.
Methods: instruct (models/toy-instruct, the instruction as prompt); sdedit, ddim, p2p, p2p+lb
(models/toy-sd, the target caption as prompt and the source caption as source prompt; p2p runs with
--no-local-blend, p2p+lb with the automatic local blend). The table goes to stdout and --out
(docs/quality.md) together with the command that made it.
"""
import argparse
import json
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
import phrasing  # noqa: E402
import world  # noqa: E402

METHODS = ["sdedit", "ddim", "p2p", "p2p+lb", "instruct"]
TYPE_SEED = {"recolor": 0, "reshape": 1, "background": 2, "remove": 3}


# ------------------------------------------------------------------------------------------ cases
JITTER_SEED_OFFSET = 500_000  # jittered cases: seeds seed_base + type * 1e6 + 500000 + i


def make_cases(n, types, seed_base, phrasing_split="canonical", scenes="plain"):
    cases = []
    for t in types:
        for i in range(n):
            seed = seed_base + TYPE_SEED[t] * 1_000_000 + i
            if scenes == "jitter":
                seed += JITTER_SEED_OFFSET
                e = world.jittered_edit_for_seed(seed, t)
            else:
                e = world.edit_for_seed(seed, t)
            r = world.edit_arrays(e)
            ins = e.instruction
            if phrasing_split != "canonical":  # own streams: the scene does not change with the phrasing
                ins, (r["source_caption"], r["target_caption"]) = phrasing.for_case(e, seed, phrasing_split)
            cases.append({"type": t, "seed": seed, "edit": e, "instruction": ins, **r})
    return cases


def erode(m, k=1):
    m = m.copy()
    for _ in range(k):
        p = np.pad(m, 1, constant_values=False)
        m = m & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m


def dilate(m, k=1):
    m = m.copy()
    for _ in range(k):
        p = np.pad(m, 1, constant_values=False)
        m = m | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return m


def core_of(m):
    """A region's core: the mask eroded by one pixel (the mask itself when that leaves nothing)."""
    c = erode(m, 1)
    return c if c.any() else m


def psnr(a, b, mask):
    if not mask.any():
        return float("nan")
    d = (a.astype(np.float64) - b.astype(np.float64))[mask]
    mse = (d ** 2).mean()
    return 99.0 if mse < 1e-10 else float(10 * np.log10(255.0 ** 2 / mse))


def score(case, out, thr):
    """Returns (success: bool, background PSNR)."""
    src, region = case["source"], case["region"]
    keep = ~dilate(region, 2)
    bg = psnr(out, src, keep)
    e = case["edit"]
    if case["type"] == "reshape":
        k = e.obj_index
        col = np.array(world.COLORS[e.target.objects[k].color], np.float32)
        new_m = case["target_masks"][k]
        old_m = case["source_masks"][k]
        box = dilate(new_m | old_m, 3)
        got = (np.linalg.norm(out.astype(np.float32) - col, axis=-1) < thr) & box
        iou = lambda a, b: (a & b).sum() / max(1, (a | b).sum())  # noqa: E731
        ok = iou(got, new_m) >= 0.5 and iou(got, new_m) > iou(got, old_m)
        return bool(ok), bg
    mean = out.astype(np.float32)[core_of(region)].mean(axis=0)
    ok = np.linalg.norm(mean - case["expected_rgb"]) < thr
    return bool(ok), bg


def describe_failure(case, out, method="instruct"):
    """One line on a failed case: what was asked (the instruction, or the caption pair for toy-sd methods) and
    what each object's core became (mean RGB, source RGB in brackets), so a wrong-object, both-objects or
    missing edit can be told apart."""
    e = case["edit"]
    asked = (repr(case["instruction"]) if method == "instruct"
             else f"{case['source_caption']!r} -> {case['target_caption']!r}")
    parts = [f"{case['type']} seed {case['seed']} {e.source.size}px {len(e.source.objects)}-object "
             f"{asked} want {tuple(int(x) for x in case['expected_rgb'])}"]
    for k, m in enumerate(case["source_masks"]):
        core = core_of(m)
        got = out.astype(np.float32)[core].mean(axis=0)
        was = case["source"].astype(np.float32)[core].mean(axis=0)
        tag = "edited" if k == e.obj_index else "other"
        parts.append(f"{tag} {e.source.objects[k].shape}: {tuple(int(x) for x in got)} "
                     f"(was {tuple(int(x) for x in was)})")
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------ runners
class CLIRunner:
    def __init__(self, cli, models, steps, extra):
        self.cli, self.models, self.steps, self.extra = cli, models, steps, extra

    def check(self):
        if not os.path.exists(self.cli):
            return f"diffedit CLI not found at {self.cli} (build it: swift build -c release, or pass --cli PATH)"
        try:
            r = subprocess.run([self.cli, "edit", "--help"], capture_output=True, text=True, timeout=60)
        except Exception as ex:  # noqa: BLE001
            return f"{self.cli} edit --help failed: {ex}"
        text = (r.stdout + r.stderr)
        if r.returncode != 0 or "not yet available" in text:
            return f"`{self.cli} edit` is not available in this build: {text.strip()[:300]}"
        return None

    def run(self, method, case, tmp, seed):
        inp = os.path.join(tmp, f"{case['type']}_{case['seed']}_in.png")
        out = os.path.join(tmp, f"{case['type']}_{case['seed']}_{method}.png")
        Image.fromarray(case["source"]).save(inp)
        e = case["edit"]
        if method == "instruct":
            args = ["--model", self.models["instruct"], "--method", "instruct", "--prompt", case["instruction"]]
        else:
            m = "p2p" if method.startswith("p2p") else method
            args = ["--model", self.models["sd"], "--method", m, "--prompt", case["target_caption"],
                    "--source-prompt", case["source_caption"]]
            if method == "p2p":
                args.append("--no-local-blend")
        cmd = [self.cli, "edit", "--input", inp, "--output", out, "--seed", str(seed), "--steps",
               str(self.steps)] + args + self.extra.get(method, [])
        t = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.time() - t
        if r.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[:400]}")
        return np.asarray(Image.open(out).convert("RGB")), dt


class ReferenceRunner:
    """The same edits with PyTorch + diffusers (instruct, sdedit, ddim; p2p has no diffusers pipeline)."""

    def __init__(self, models, steps, params):
        import torch
        self.torch, self.models, self.steps, self.p = torch, models, steps, params
        torch.set_num_threads(params.get("threads", 2))
        self.pipes = {}

    def check(self):
        return None

    def pipe(self, kind):
        if kind not in self.pipes:
            from diffusers import (StableDiffusionImg2ImgPipeline, StableDiffusionInstructPix2PixPipeline,
                                   StableDiffusionPipeline)
            cls = {"instruct": StableDiffusionInstructPix2PixPipeline, "sdedit": StableDiffusionImg2ImgPipeline,
                   "sd": StableDiffusionPipeline}[kind]
            path = self.models["instruct" if kind == "instruct" else "sd"]
            p = cls.from_pretrained(path, torch_dtype=self.torch.float32, safety_checker=None,
                                    requires_safety_checker=False)
            p.set_progress_bar_config(disable=True)
            self.pipes[kind] = p
        return self.pipes[kind]

    def run(self, method, case, tmp, seed):
        torch = self.torch
        e = case["edit"]
        img = Image.fromarray(case["source"])
        g = torch.Generator().manual_seed(seed)
        t = time.time()
        if method == "instruct":
            out = self.pipe("instruct")(case["instruction"], image=img, num_inference_steps=self.steps,
                                        guidance_scale=self.p["instruct_guidance"], image_guidance_scale=self.p["image_guidance"],
                                        generator=g).images[0]
        elif method == "sdedit":
            out = self.pipe("sdedit")(case["target_caption"], image=img, strength=self.p["strength"],
                                      num_inference_steps=self.steps, guidance_scale=self.p["guidance"],
                                      generator=g).images[0]
        elif method == "ddim":
            out = self.ddim(case, img)
        else:
            raise NotImplementedError(f"{method}: no diffusers reference (run it through the CLI)")
        dt = time.time() - t
        return np.asarray(out.convert("RGB")), dt

    def ddim(self, case, img):
        """DDIM inversion with the source caption at guidance 1, then DDIM sampling with the target caption."""
        torch = self.torch
        from diffusers import DDIMInverseScheduler, DDIMScheduler
        p = self.pipe("sd")
        p.scheduler = DDIMScheduler.from_config(p.scheduler.config)
        inv = DDIMInverseScheduler.from_config(p.scheduler.config)
        x = torch.from_numpy(case["source"]).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.no_grad():
            z = p.vae.encode(x).latent_dist.mode() * p.vae.config.scaling_factor
            emb = p.encode_prompt(case["source_caption"], "cpu", 1, False)[0]
            inv.set_timesteps(self.steps)
            for t in inv.timesteps:
                eps = p.unet(z, t, emb).sample
                z = inv.step(eps, t, z).prev_sample
        return p(case["target_caption"], latents=z, num_inference_steps=self.steps,
                 guidance_scale=self.p["guidance"]).images[0]


# ------------------------------------------------------------------------------------------ main
def binding_check(cases, runner, method, tmp, seed, thr):
    """Does the instruction's noun pick the object? For each two-object recolour case: the generator's plainest
    wording, "make the {shape} {new}", once naming each object, with one new colour that neither object nor the
    background has (the case's own when it qualifies). Each run's outcome: "own" (the named object took the new
    colour, the other did not), "other", "both" or "neither"; a case is "bound" when both runs are "own", "one
    object" when both runs recolour the same object whatever its noun (the noun is ignored: a one-instruction
    table scores such a scene right only when its instruction happens to name that object), "swapped" when
    each run recolours the other object. Returns [(case, (outcome for object 0, outcome for object 1))]."""
    out = []
    for c in cases:
        e = c["edit"]
        objs = e.source.objects
        if c["type"] != "recolor" or len(objs) != 2:
            continue
        taken = {o.color for o in objs} | set(e.source.background.colors)
        new = e.target_color if e.target_color not in taken else next(x for x in world.COLOR_NAMES if x not in taken)
        col = np.array(world.COLORS[new], np.float32)
        cores = [core_of(m) for m in c["source_masks"]]
        res = []
        for k in (0, 1):
            run = dict(c, instruction=f"make the {objs[k].shape} {new}", seed=f"{c['seed']}b{k}")
            img, _ = runner.run(method, run, tmp, seed)
            hit = [bool(np.linalg.norm(img.astype(np.float32)[m].mean(axis=0) - col) < thr) for m in cores]
            res.append({(True, False): "own", (False, True): "other", (True, True): "both",
                        (False, False): "neither"}[(hit[k], hit[1 - k])])
        out.append((c, tuple(res)))
    return out


def binding_kind(res):
    return {("own", "own"): "bound", ("own", "other"): "one object", ("other", "own"): "one object",
            ("other", "other"): "swapped"}.get(res, "partial")


def model_hint(path, key):
    """A model's recommended setting from its diffedit.json (None when absent)."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f).get(key)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=200, help="cases per edit type (>= 200 for the table)")
    ap.add_argument("--types", default=",".join(world.EDIT_TYPES))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--cli", default=os.path.join(ROOT, ".build", "release", "diffedit"))
    ap.add_argument("--reference", action="store_true", help="use PyTorch + diffusers instead of the CLI")
    ap.add_argument("--instruct-model", default=os.path.join(ROOT, "models", "toy-instruct"))
    ap.add_argument("--sd-model", default=os.path.join(ROOT, "models", "toy-sd"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--image-guidance", type=float, default=1.5)
    ap.add_argument("--instruct-guidance", type=float, default=None,
                    help="text guidance for instruct (default: the instruct model's diffedit.json, else --guidance)")
    ap.add_argument("--sd-guidance", type=float, default=None,
                    help="text guidance for sdedit/ddim/p2p (default: the sd model's diffedit.json, else --guidance)")
    ap.add_argument("--strength", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0, help="noise seed for every edit")
    ap.add_argument("--seed-base", type=int, default=world.HELDOUT_SEED_BASE)
    ap.add_argument("--color-threshold", type=float, default=60.0)
    ap.add_argument("--phrasing", choices=["canonical", "train", "heldout"], default="canonical",
                    help="how the instruction (instruct) and the captions (toy-sd methods) are worded (see above)")
    ap.add_argument("--scenes", choices=["plain", "jitter"], default="plain", help="scene generator (see above)")
    ap.add_argument("--show-instructions", type=int, default=0, help="print the first N instructions per type")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sd-flags", default="",
                    help="extra diffedit CLI flags for sdedit/ddim/p2p/p2p+lb, e.g. --sd-flags=\"--uncond-mix 0 "
                         "--no-blend-next-word\" (CLI runs only; write it with '=', or argparse takes a lone "
                         "--flag value for an option of its own)")
    ap.add_argument("--failures", action="store_true",
                    help="print every failed case: seed, size, objects, instruction, and the mean colour of the "
                         "edited object and of the other objects (recolour / remove: tells a wrong-object edit "
                         "from a missing one)")
    ap.add_argument("--binding", action="store_true",
                    help="instead of the table: on the two-object recolour cases, edit each scene twice, naming "
                         "each object in turn (\"make the {shape} {new}\"), and count the scenes where the noun "
                         "picks the object (bound), where both instructions recolour the same object (the noun is "
                         "ignored), swapped and partial; per shape pair. --methods instruct, --types recolor")
    ap.add_argument("--breakdown", action="store_true",
                    help="also print success per target colour and for one- / two-object scenes")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "quality.md"),
                    help="markdown file for the table ('' = don't write)")
    ap.add_argument("--save-images", default="", help="folder to keep a contact sheet per method/type")
    a = ap.parse_args()
    assert a.seed_base >= world.HELDOUT_SEED_BASE, "held-out seeds only"
    types = [t for t in a.types.split(",") if t]
    methods = [m for m in a.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            sys.exit(f"quality.py: unknown method {m!r} (one of {', '.join(METHODS)})")
    if a.binding and (methods != ["instruct"] or types != ["recolor"]):
        sys.exit("quality.py: --binding checks instruct recolour: give --methods instruct --types recolor")
    models = {"instruct": a.instruct_model, "sd": a.sd_model}
    if a.instruct_guidance is None:  # the instruct model's recommendation (what `diffedit edit` uses by default)
        hints = os.path.join(a.instruct_model, "diffedit.json")
        a.instruct_guidance = model_hint(hints, "guidance") or a.guidance
    if a.sd_guidance is None:
        a.sd_guidance = model_hint(os.path.join(a.sd_model, "diffedit.json"), "guidance") or a.guidance
    if a.reference and a.sd_flags:
        sys.exit("quality.py: --sd-flags are diffedit CLI flags; they do not apply to --reference")
    if a.reference:
        runner = ReferenceRunner(models, a.steps, {"guidance": a.sd_guidance, "image_guidance": a.image_guidance,
                                                   "instruct_guidance": a.instruct_guidance,
                                                   "strength": a.strength, "threads": a.threads})
    else:
        extra = {m: ["--guidance", str(a.sd_guidance)] for m in METHODS}
        extra["instruct"] = ["--guidance", str(a.instruct_guidance), "--image-guidance", str(a.image_guidance)]
        extra["sdedit"] += ["--strength", str(a.strength)]
        for m in METHODS:
            if m != "instruct":
                extra[m] += shlex.split(a.sd_flags)
        runner = CLIRunner(a.cli, models, a.steps, extra)
    problem = runner.check()
    if problem:
        print(f"quality.py: {problem}", file=sys.stderr)
        print("quality.py: nothing measured. For the Python diffusers reference numbers run with --reference.",
              file=sys.stderr)
        sys.exit(2)
    cases = make_cases(a.cases, types, a.seed_base, a.phrasing, a.scenes)
    if a.binding:
        with tempfile.TemporaryDirectory() as tmp:
            res = binding_check(cases, runner, "instruct", tmp, a.seed, a.color_threshold)
        kinds, pairs = {}, {}
        for c, r in res:
            k = binding_kind(r)
            kinds[k] = kinds.get(k, 0) + 1
            pair = " / ".join(sorted(o.shape for o in c["edit"].source.objects))
            v = pairs.setdefault(pair, [0, 0])
            v[0] += int(k == "bound")
            v[1] += 1
            if a.failures and k != "bound":
                print(f"    {k}: seed {c['seed']} {c['edit'].source.size}px {pair}: {r[0]}, {r[1]}", flush=True)
        n = len(res)
        print(f"binding, {a.scenes} scenes: {n} two-object recolour cases (of {len(cases)}), noise seed {a.seed}: "
              + ", ".join(f"{k} {v} ({100.0 * v / max(n, 1):.1f}%)" for k, v in sorted(kinds.items())))
        ring = [sum(pairs[p][i] for p in pairs if ("ring" in p) == w) for w in (True, False) for i in (0, 1)]
        print(f"    bound with a ring in the scene {ring[0]}/{ring[1]}, without {ring[2]}/{ring[3]}")
        print("    bound by shape pair: " + "  ".join(f"{p} {v[0]}/{v[1]}" for p, v in sorted(pairs.items())))
        return
    if a.show_instructions:
        for t in types:
            for c in [c for c in cases if c["type"] == t][:a.show_instructions]:
                print(f"  {t} {c['seed']} {c['edit'].source.size}px: {c['instruction']!r} | "
                      f"{c['source_caption']!r} -> {c['target_caption']!r}")
    rows = []
    breakdown = {}  # (method, type) -> {target colour or "N-object": [successes, cases]}
    bg_by = {}  # jittered scenes: (method, type) -> {"64px" / "flat" / "gradient" / "noise" / "hard" / "aa": [bg PSNR]}
    with tempfile.TemporaryDirectory() as tmp:
        for m in methods:
            need = models["instruct" if m == "instruct" else "sd"]
            if not os.path.exists(os.path.join(need, "model_index.json")):
                print(f"quality.py: {m}: model folder {need} missing, skipped", file=sys.stderr)
                continue
            for t in types:
                res, times, sheet = [], [], []
                err = None
                for c in [c for c in cases if c["type"] == t]:
                    try:
                        out, dt = runner.run(m, c, tmp, a.seed)
                    except NotImplementedError as ex:
                        err = str(ex)
                        break
                    ok, bg = score(c, out, a.color_threshold)
                    res.append((ok, bg))
                    if a.failures and not ok:
                        print("    FAIL " + describe_failure(c, out, m), flush=True)
                    if a.breakdown:
                        e = c["edit"]
                        col = e.target_color or "-"
                        objs = f"{len(e.source.objects)}-object"
                        for key in (col, objs):
                            n_ok = breakdown.setdefault((m, t), {}).setdefault(key, [0, 0])
                            n_ok[0] += int(ok)
                            n_ok[1] += 1
                        st = e.source.style
                        if st is not None and np.isfinite(bg):
                            tex = st.texture[0] if st.texture else "flat"
                            for key in (f"{e.source.size}px", tex, "hard" if st.hard else "aa"):
                                bg_by.setdefault((m, t), {}).setdefault(key, []).append(bg)
                    times.append(dt)
                    if a.save_images and len(sheet) < 16:
                        sheet.append(np.concatenate([c["source"], out, c["target"]], 1))
                if err:
                    print(f"quality.py: {err}", file=sys.stderr)
                    break
                if a.save_images and sheet:
                    os.makedirs(a.save_images, exist_ok=True)
                    Image.fromarray(np.concatenate(sheet, 0)).save(os.path.join(a.save_images, f"{m}_{t}.png"))
                succ = 100.0 * np.mean([r[0] for r in res])
                bgs = np.array([r[1] for r in res])
                bgs = bgs[np.isfinite(bgs)]
                row = (m, t, len(res), succ, float(np.median(bgs)) if len(bgs) else float("nan"),
                       float(np.mean(bgs)) if len(bgs) else float("nan"), float(np.mean(times)))
                rows.append(row)
                print(f"{m:9s} {t:10s} n={row[2]:4d} success {row[3]:5.1f}%  bg PSNR median {row[4]:5.1f} dB "
                      f"mean {row[5]:5.1f} dB  {row[6]:.2f} s/edit", flush=True)
                if a.breakdown and (m, t) in breakdown:
                    print("    " + "  ".join(f"{key} {v[0]}/{v[1]}" for key, v in sorted(breakdown[(m, t)].items())),
                          flush=True)
                if a.breakdown and (m, t) in bg_by:
                    print("    bg PSNR median: " + "  ".join(f"{key} {np.median(v):.1f} dB (n={len(v)})"
                                                         for key, v in sorted(bg_by[(m, t)].items())), flush=True)
    cmd = "python3 tools/quality.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    table = ["| method | edit | cases | success | bg PSNR median (dB) | bg PSNR mean (dB) | s/edit |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f}% | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.2f} |")
    print("\n".join(table))
    if a.out and rows:
        backend = "Python diffusers reference (--reference)" if a.reference else f"diffedit CLI ({a.cli})"
        section = [f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {backend}", "",
                   "```", cmd.strip(), "```", "",
                   f"steps {a.steps}, guidance {a.sd_guidance} (instruct {a.instruct_guidance}), image guidance {a.image_guidance}, sdedit strength "
                   f"{a.strength}, colour threshold {a.color_threshold}, noise seed {a.seed}, held-out seeds from "
                   f"{a.seed_base}, phrasing {a.phrasing}, scenes {a.scenes}.", ""] + table + [""]
        head = "# Edit quality on the toy world\n\n"
        old = open(a.out).read() if os.path.exists(a.out) else head
        marker = "<!-- results: newest first -->\n"
        if marker not in old:
            old = old.rstrip() + "\n\n" + marker
        pre, post = old.split(marker, 1)
        with open(a.out, "w") as f:
            f.write(pre + marker + "\n".join(section) + "\n" + post)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
