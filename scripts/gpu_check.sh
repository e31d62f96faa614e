#!/usr/bin/env bash
# gpu_check.sh — the CUDA provider on a machine with an NVIDIA GPU, in one go (sized for < 5 minutes).
#
# Two halves, because the GPU machine is assumed to have no Swift toolchain:
#   scripts/gpu_check.sh --prepare   (where Swift is) make cli (static Swift stdlib) and build/tests/op_check
#                                    (C: registry + CPU provider + static OpenBLAS); copy the tree, build/bin and
#                                    build/tests to the GPU machine.
#   scripts/gpu_check.sh             (on the GPU machine) builds the provider with its nvcc (scripts/build_cuda.sh;
#                                    CUDA 13 toolkit, or the PyPI nvidia-* packages; cuDNN may sit in site-packages
#                                    nvidia/cudnn), then prints and writes to docs/performance.md (GPU section):
#     1. every op against the CPU provider (relative L2 error: 1e-2 fp16 paths, 1e-5 f32) build/tests/op_check
#     2. the pipeline image CUDA vs CPU (PSNR, >= 35 dB), same seed                     diffedit generate
#     3. the UNet step at 512x512 (64x64 latents), batch 2                               diffedit bench --sizes 64
#     4. a 50-step prompt-to-prompt edit, wall time                                      diffedit edit --method p2p
#     5. diffusers fp16 UNet step on the same GPU, and the ratio diffedit / diffusers   (torch + diffusers; a wheel
#        can be brought along: DIFFUSERS_WHEEL=/path/diffusers-0.42.1-py3-none-any.whl)
# Environment: MODEL (a diffusers folder or .safetensors for 2 and 4; default Tests/Fixtures/sd1, tiny random),
#   EDIT_SIZE (default 512 with a real MODEL, else 64), SKIP_BUILD=1 (use build/lib/libdiffedit_cuda.so as is),
#   NO_DOC=1 (do not touch docs/performance.md). Exit status: 0 all checks passed, 1 a check failed, 2 setup failed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUTDIR=${OUTDIR:-build/gpu_check}
mkdir -p "$OUTDIR" build/tests
say() { echo "gpu_check: $*"; }

build_op_check() {
  local cc=${CC:-cc}
  local blas="/usr/lib/x86_64-linux-gnu/libopenblas.a"
  local libs=()
  if [ -f "$blas" ]; then libs=("$blas"); else libs=(-lopenblas); fi  # static: op_check then needs only libc
  $cc -std=gnu11 -O2 -march=x86-64-v3 -fno-math-errno -ICSources/CDiffKernels/include \
    CSources/cuda/tools/op_check.c CSources/CDiffKernels/registry.c CSources/CDiffKernels/cpu_*.c \
    -o build/tests/op_check "${libs[@]}" -lpthread -ldl -lm
}

case "${1:-}" in
  ""|--prepare) ;;
  *) echo "usage: scripts/gpu_check.sh [--prepare]" >&2; exit 2 ;;
esac
if [ "${1:-}" = "--prepare" ]; then
  make cli || exit 2
  build_op_check || { say "op_check did not build"; exit 2; }
  say "prepared build/bin/diffedit and build/tests/op_check; copy the tree with build/bin and build/tests to the GPU machine"
  exit 0
fi

status=0
fail() { say "FAIL: $*"; status=1; }
card=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
[ -n "$card" ] || card="unknown (nvidia-smi missing)"
say "card: $card"

# ---- provider ----
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  t0=$(date +%s)
  CUDA_NVCC_THREADS=${CUDA_NVCC_THREADS:-0} scripts/build_cuda.sh || { say "the provider did not build"; exit 2; }
  say "provider built in $(( $(date +%s) - t0 )) s"
fi
export DIFFEDIT_BACKEND_PATH="$ROOT/build/lib"
[ -x build/tests/op_check ] || build_op_check || { say "no build/tests/op_check (run --prepare where a C compiler and OpenBLAS are)"; exit 2; }
[ -x build/bin/diffedit ] || { say "no build/bin/diffedit (run scripts/gpu_check.sh --prepare where Swift is, copy build/bin)"; exit 2; }

# ---- 1. ops ----
build/tests/op_check | tee "$OUTDIR/ops.txt"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || fail "op_check exit $rc"

# ---- 2. pipeline PSNR ----
MODEL=${MODEL:-Tests/Fixtures/sd1}
if [ "$MODEL" = Tests/Fixtures/sd1 ]; then SIZE=${EDIT_SIZE:-64}; else SIZE=${EDIT_SIZE:-512}; fi
gen() { build/bin/diffedit generate --model "$MODEL" --prompt "a red cube on a wooden table" --seed 7 --steps 20 \
          --width "$SIZE" --height "$SIZE" --quiet --backend "$1" --output "$OUTDIR/gen_$1.png"; }
gen cpu || fail "generate on cpu"
t0=$(date +%s.%N); gen cuda || fail "generate on cuda"; t1=$(date +%s.%N)
psnr=$(python3 - "$OUTDIR/gen_cpu.png" "$OUTDIR/gen_cuda.png" <<'PY'
import math, struct, sys, zlib
def png(path):  # 8-bit, non-interlaced RGB/RGBA/gray PNG -> (w, h, channels, bytes)
    d = open(path, "rb").read(); pos = 8; idat = b""; w = h = ch = 0
    while pos < len(d):
        n, t = struct.unpack(">I4s", d[pos:pos + 8]); body = d[pos + 8:pos + 8 + n]; pos += 12 + n
        if t == b"IHDR": w, h, depth, ctype = struct.unpack(">IIBB", body[:10]); ch = {0: 1, 2: 3, 6: 4, 4: 2}[ctype]
        elif t == b"IDAT": idat += body
    raw = zlib.decompress(idat); stride = w * ch; out = bytearray(); prev = bytearray(stride); i = 0
    for _ in range(h):
        f = raw[i]; row = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
        for x in range(stride):
            a = row[x - ch] if x >= ch else 0; b = prev[x]; c = prev[x - ch] if x >= ch else 0
            if f == 1: row[x] = (row[x] + a) & 255
            elif f == 2: row[x] = (row[x] + b) & 255
            elif f == 3: row[x] = (row[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += row; prev = row
    return w, h, ch, out
a = png(sys.argv[1]); b = png(sys.argv[2])
if a[:3] != b[:3]: print("nan"); sys.exit()
mse = sum((x - y) ** 2 for x, y in zip(a[3], b[3])) / len(a[3])
print("inf" if mse == 0 else "%.2f" % (10 * math.log10(255 ** 2 / mse)))
PY
)
psnr=${psnr:-nan}
gen_s=$(python3 -c "print('%.2f' % ($t1 - $t0))")
say "pipeline PSNR cuda vs cpu: $psnr dB ($MODEL, ${SIZE}x${SIZE}, 20 steps; cuda generate ${gen_s} s)"
python3 -c "import sys; p='$psnr'; sys.exit(0 if p == 'inf' or (p != 'nan' and float(p) >= 35) else 1)" || fail "PSNR $psnr < 35 dB"

# ---- 3. UNet step, 512x512, batch 2 ----
build/bin/diffedit bench --backend cuda --sizes 64 --repeat 3 --results "$OUTDIR/bench.txt" | tee "$OUTDIR/bench_out.txt" || fail "bench"
unet_s=$(sed -n 's/^bench unet latent=64 .*seconds=\([0-9.]*\).*/\1/p' "$OUTDIR/bench.txt" | tail -1)
say "diffedit UNet step (64x64 latents, batch 2, cuda): ${unet_s:-?} s"
# the same with every op staged through host memory (DIFFEDIT_CUDA_RESIDENT=0): what residency buys
DIFFEDIT_CUDA_RESIDENT=0 build/bin/diffedit bench --backend cuda --sizes 64 --repeat 2 --results "$OUTDIR/bench_host.txt" \
  > "$OUTDIR/bench_host_out.txt" 2>&1 || say "bench with DIFFEDIT_CUDA_RESIDENT=0 failed"
host_s=$(sed -n 's/^bench unet latent=64 .*seconds=\([0-9.]*\).*/\1/p' "$OUTDIR/bench_host.txt" 2>/dev/null | tail -1)
say "diffedit UNet step with host-staged ops (DIFFEDIT_CUDA_RESIDENT=0): ${host_s:-?} s"
# and with the weights left in host memory (no constants: every op copies its weights in): what constants buy
DIFFEDIT_CUDA_WEIGHT_CACHE=0 build/bin/diffedit bench --backend cuda --sizes 64 --repeat 2 --results "$OUTDIR/bench_noconst.txt" \
  > "$OUTDIR/bench_noconst_out.txt" 2>&1 || say "bench with DIFFEDIT_CUDA_WEIGHT_CACHE=0 failed"
noconst_s=$(sed -n 's/^bench unet latent=64 .*seconds=\([0-9.]*\).*/\1/p' "$OUTDIR/bench_noconst.txt" 2>/dev/null | tail -1)
say "diffedit UNet step with weights copied per op (DIFFEDIT_CUDA_WEIGHT_CACHE=0): ${noconst_s:-?} s"

# ---- 4. 50-step p2p edit ----
t0=$(date +%s.%N)
build/bin/diffedit edit --model "$MODEL" --input "$OUTDIR/gen_cpu.png" --method p2p --source-prompt "a red cube on a wooden table" \
  --prompt "a blue cube on a wooden table" --steps 50 --seed 7 --quiet --backend cuda --output "$OUTDIR/p2p_cuda.png" || fail "p2p edit"
t1=$(date +%s.%N)
p2p_s=$(python3 -c "print('%.2f' % ($t1 - $t0))")
say "50-step p2p edit (${SIZE}x${SIZE}, $MODEL, cuda, incl. model load): ${p2p_s} s"

# ---- 5. diffusers fp16 on the same GPU ----
if ! python3 -c "import diffusers" 2>/dev/null && [ -n "${DIFFUSERS_WHEEL:-}" ]; then
  python3 -m pip install --no-deps --quiet "$DIFFUSERS_WHEEL" || say "could not install $DIFFUSERS_WHEEL"
fi
torch_s=$(python3 - <<'PY' 2>"$OUTDIR/diffusers.err"
import time, torch
from diffusers import UNet2DConditionModel
assert torch.cuda.is_available()
unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).to("cuda", torch.float16).eval()  # SD 1.5 config
x = torch.randn(2, 4, 64, 64, device="cuda", dtype=torch.float16)
e = torch.randn(2, 77, 768, device="cuda", dtype=torch.float16)
t = torch.tensor([500, 500], device="cuda")
with torch.no_grad():
    for _ in range(3): unet(x, t, e)
    torch.cuda.synchronize(); n = 20; t0 = time.time()
    for _ in range(n): unet(x, t, e)
    torch.cuda.synchronize()
print("%.5f" % ((time.time() - t0) / n))
PY
)
if [ -n "$torch_s" ]; then
  ratio=$(python3 -c "print('%.2f' % (${unet_s:-0} / $torch_s))" 2>/dev/null || echo "?")
  say "diffusers fp16 UNet step: $torch_s s; ratio diffedit / diffusers = $ratio (goal <= 0.6)"
else
  ratio="n/a"; torch_s="n/a (diffusers or CUDA torch missing: $(tail -1 "$OUTDIR/diffusers.err"))"
  say "diffusers fp16: $torch_s"
fi

# ---- docs/performance.md ----
if [ "${NO_DOC:-0}" != 1 ]; then
  doc=docs/performance.md
  [ -f "$doc" ] || printf '# Performance\n' > "$doc"
  grep -q '<!-- gpu-check:begin -->' "$doc" || printf '\n<!-- gpu-check:begin -->\n<!-- gpu-check:end -->\n' >> "$doc"
  {
    echo "### Latest scripts/gpu_check.sh run ($(date -u +%Y-%m-%d), $card)"
    echo
    echo "| check | result |"
    echo "|---|---|"
    echo "| ops vs CPU (rel. L2 error, tol 1e-2) | $(grep -c ' PASS' "$OUTDIR/ops.txt") pass, $(grep -c ' FAIL' "$OUTDIR/ops.txt") fail; worst $(sed -n 's/.*relerr=\([^ ]*\).*/\1/p' "$OUTDIR/ops.txt" | sort -g | tail -1) |"
    echo "| pipeline PSNR CUDA vs CPU ($MODEL, ${SIZE}x${SIZE}, 20 steps) | $psnr dB |"
    echo "| UNet step, SD 1.5, 64x64 latents, batch 2 | ${unet_s:-?} s |"
    echo "| diffusers fp16 UNet step, same GPU | $torch_s s |"
    echo "| ratio diffedit / diffusers (goal <= 0.6) | $ratio |"
    echo "| 50-step p2p edit (${SIZE}x${SIZE}, $MODEL, incl. load) | $p2p_s s |"
    echo
    echo '```'
    cat "$OUTDIR/ops.txt"
    echo '```'
  } > "$OUTDIR/section.md"
  python3 - "$doc" "$OUTDIR/section.md" <<'PY'
import sys
doc, sec = sys.argv[1], open(sys.argv[2]).read()
s = open(doc).read()
a = s.index("<!-- gpu-check:begin -->") + len("<!-- gpu-check:begin -->")
b = s.index("<!-- gpu-check:end -->")
open(doc, "w").write(s[:a] + "\n" + sec + s[b:])
PY
  say "wrote the results into $doc"
fi
[ "$status" = 0 ] && say "all checks passed" || say "some checks failed"
exit $status
