#!/usr/bin/env python3
"""PyTorch + diffusers reference for `diffedit bench`: the SD 1.5 UNet forward (UNet2DConditionModel with
the SD 1.5 config, random weights, fp32), batch 2 as classifier-free guidance runs it, at 32x32 and 64x64
latents, under torch.no_grad with 2 threads. Prints seconds per forward and peak RSS in the same line format
as `diffedit bench`; with --swift-results FILE (default $DIFFEDIT_BENCH_RESULTS, else ${TMPDIR:-/tmp}/diffedit-bench-<uid>.txt, where
`diffedit bench` writes its results), it also prints the ratio swift / torch (<= 1.0 means diffedit is at
least as fast). Results older than 3 hours are ignored.

usage: python3 scripts/bench_torch.py [--sizes 32,64] [--threads 2] [--repeat 1] [--swift-results FILE]
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
    a = ap.parse_args()

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


if __name__ == "__main__":
    sys.exit(main())
