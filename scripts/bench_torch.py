#!/usr/bin/env python3
"""PyTorch + diffusers reference for `diffedit bench`: the SD 1.5 UNet forward (UNet2DConditionModel with
the SD 1.5 config, random weights, fp32), batch 2 as classifier-free guidance runs it, at 32x32 and 64x64
latents, under torch.no_grad with 2 threads. Prints seconds per forward and peak RSS in the same line format
as `diffedit bench`; with --swift-results FILE (default $DIFFEDIT_BENCH_RESULTS, else ${TMPDIR:-/tmp}/diffedit-bench-<uid>.txt, where
`diffedit bench` writes its results), it also prints the ratio swift / torch (<= 1.0 means diffedit is at
least as fast). Results older than 3 hours are ignored.

usage: python3 scripts/bench_torch.py [--sizes 32,64] [--threads 2] [--repeat 1] [--swift-results FILE]

With --model DIR (the fp16 folder of tools/make_bench_model.py) and --mode fp32|bf16: the pipeline is loaded with
StableDiffusionPipeline.from_pretrained (fp32 weights; bf16 = torch.autocast("cpu", dtype=torch.bfloat16) around
the forwards), its UNet timed as above, and --generate 256,512 times whole generates (DDIM, --steps, CFG 7.5).
Lines carry mode=M; one process per mode, so that each peak RSS is its own. --table prints the side-by-side table
of every "dtype=" (diffedit) and "mode=" (torch) line in the results file, then exits.
"""
import argparse
import os
import resource
import sys
import time


def parse_results(path):
    out = {}
    if not path or not os.path.isfile(path) or time.time() - os.path.getmtime(path) > 3 * 3600:
        return out
    with open(path) as fh:
        for line in fh:
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if line.startswith("bench unet") and "latent" in f and "seconds" in f:
                out[int(f["latent"])] = float(f["seconds"])
            elif line.startswith("bench peak_rss_bytes") and "peak_rss_bytes" in f:
                out["rss"] = int(f["peak_rss_bytes"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-warmup", action="store_true")
    default_results = os.environ.get("DIFFEDIT_BENCH_RESULTS") or os.path.join(
        os.environ.get("TMPDIR") or "/tmp", "diffedit-bench-%d.txt" % os.getuid())
    ap.add_argument("--swift-results", default=default_results)
    ap.add_argument("--model", default=None)
    ap.add_argument("--mode", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--generate", default="")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--append-results", action="store_true", help="append this run's lines to --swift-results")
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    if a.table:
        return table(a.swift_results)
    if a.model:
        return model_bench(a)

    import torch
    from diffusers import UNet2DConditionModel

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.time()
    # diffusers' defaults are the SD 1.5 UNet (block_out_channels 320/640/1280/1280, 8 heads, cross-attention 768).
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).eval()
    n = sum(p.numel() for p in unet.parameters())
    print("bench torch %s: SD 1.5 UNet, %.1fM parameters (random), %d threads, made in %.1f s"
          % (torch.__version__, n / 1e6, a.threads, time.time() - t0))
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    ehs = torch.randn(2, 77, 768)
    res = {}
    with torch.no_grad():
        if not a.no_warmup and sizes:
            unet(torch.randn(2, 4, sizes[0], sizes[0]), 500, encoder_hidden_states=ehs)
        for s in sizes:
            x = torch.randn(2, 4, s, s)
            best = float("inf")
            for _ in range(a.repeat):
                t0 = time.time()
                y = unet(x, 500, encoder_hidden_states=ehs).sample
                best = min(best, time.time() - t0)
            assert tuple(y.shape) == (2, 4, s, s)
            res[s] = best
            print("bench torch unet latent=%d batch=2 seconds=%.3f" % (s, best))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("bench torch peak_rss_bytes=%d   (%.2f GB)" % (rss, rss / 2 ** 30))

    swift = parse_results(a.swift_results)
    if swift:
        for s in sizes:
            if s in swift:
                print("bench ratio unet latent=%d swift=%.3f s torch=%.3f s ratio=%.2f"
                      % (s, swift[s], res[s], swift[s] / res[s]))
        if "rss" in swift:
            print("bench peak RSS: swift %.2f GB, torch %.2f GB" % (swift["rss"] / 2 ** 30, rss / 2 ** 30))
    elif a.swift_results:
        print("bench: no diffedit results in %s (run `diffedit bench --results FILE` first)" % a.swift_results)
    return 0


def model_bench(a):
    import contextlib
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    torch.set_num_threads(a.threads)
    t0 = time.time()
    try:  # diffusers 0.42 names it dtype; older releases torch_dtype
        pipe = StableDiffusionPipeline.from_pretrained(a.model, dtype=torch.float32, safety_checker=None,
                                                       requires_safety_checker=False)
    except TypeError:
        pipe = StableDiffusionPipeline.from_pretrained(a.model, torch_dtype=torch.float32, safety_checker=None,
                                                       requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("bench torch %s: model %s, mode %s, %d threads, loaded in %.1f s, RSS %.2f GB"
          % (torch.__version__, a.model, a.mode, a.threads, time.time() - t0, rss / 2 ** 30))
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.mode == "bf16" else contextlib.nullcontext
    lines = []
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    ehs = torch.randn(2, 77, pipe.unet.config.cross_attention_dim)
    with torch.no_grad():
        if not a.no_warmup and sizes:
            with ctx():
                pipe.unet(torch.randn(2, 4, sizes[0], sizes[0]), 500, encoder_hidden_states=ehs)
        for s in sizes:
            x = torch.randn(2, 4, s, s)
            best = float("inf")
            for _ in range(a.repeat):
                t0 = time.time()
                with ctx():
                    pipe.unet(x, 500, encoder_hidden_states=ehs)
                best = min(best, time.time() - t0)
            lines.append("bench torch unet latent=%d batch=2 mode=%s seconds=%.3f" % (s, a.mode, best))
            print(lines[-1])
        for g in [int(v) for v in a.generate.split(",") if v.strip()]:
            best = float("inf")
            for _ in range(a.repeat):
                t0 = time.time()
                with ctx():
                    pipe("a photograph of a red mug on a wooden table", height=g, width=g, num_inference_steps=a.steps,
                         guidance_scale=7.5, generator=torch.Generator().manual_seed(0))
                best = min(best, time.time() - t0)
            lines.append("bench torch generate size=%d steps=%d mode=%s seconds=%.3f" % (g, a.steps, a.mode, best))
            print(lines[-1])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    lines.append("bench torch peak_rss_bytes=%d mode=%s" % (rss, a.mode))
    print(lines[-1] + "   (%.2f GB)" % (rss / 2 ** 30))
    if a.append_results and a.swift_results:
        with open(a.swift_results, "a") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


def table(path):
    """Side-by-side: one column per diffedit weights dtype and per torch mode."""
    if not path or not os.path.isfile(path):
        print("bench: no results file %s" % path)
        return 1
    cols, rows = [], {}
    with open(path) as fh:
        for line in fh:
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            who = ("diffedit " + f["dtype"]) if "dtype" in f else ("torch " + f["mode"]) if "mode" in f else None
            if who is None:
                continue
            if who not in cols:
                cols.append(who)
            if " unet " in line:
                key, val = "s / UNet step, latent %s, batch 2" % f["latent"], "%.2f" % float(f["seconds"])
            elif " generate " in line:
                key, val = "generate %s px, %s steps (s)" % (f["size"], f["steps"]), "%.1f" % float(f["seconds"])
            elif "generate_peak_rss_bytes" in f:
                key = "peak RSS, %s px generate alone (GB)" % f["size"]
                val = "%.2f" % (int(f["generate_peak_rss_bytes"]) / 2 ** 30)
            elif "peak_rss_bytes" in f:
                key, val = "peak RSS (GB)", "%.2f" % (int(f["peak_rss_bytes"]) / 2 ** 30)
            else:
                continue
            rows.setdefault(key, {})[who] = val
    w = max([len(k) for k in rows] + [10])
    print("| " + "what".ljust(w) + " | " + " | ".join(cols) + " |")
    print("|" + "-" * (w + 2) + "|" + "|".join("-" * (len(c) + 2) for c in cols) + "|")
    for k, v in rows.items():
        print("| " + k.ljust(w) + " | " + " | ".join(v.get(c, "").rjust(len(c)) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
