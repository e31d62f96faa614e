#!/usr/bin/env bash
# build_cuda.sh — builds the CUDA provider CSources/cuda/*.cu into build/lib/libdiffedit_cuda.so.
#
# nvcc is looked for in: $NVCC, $CUDA_HOME/bin, PATH, /usr/local/cuda/bin, and the PyPI CUDA packages in the
# site-packages of $PYTHON (default python3):
#   pip install nvidia-cuda-nvcc nvidia-cuda-cccl nvidia-cuda-runtime nvidia-cublas nvidia-cudnn-cu13
# which put nvcc, headers and libraries under nvidia/cu13/{bin,include,lib} and cuDNN under nvidia/cudnn.
# cuDNN: $CUDNN_HOME, the toolkit, /usr/include, or site-packages nvidia/cudnn.
#
# Environment: CUDA_WERROR=1 (warnings are errors), CUDA_ARCHS="80 90" (SASS for each, PTX for the last),
#   CUDA_OPTIONAL=1 (exit 0 with a message when nvcc is missing: for CI legs without CUDA),
#   CUDA_NVCC_THREADS=N (nvcc --threads: the architectures in parallel; 0 = all cores),
#   OUT (default build/lib), OBJ (default build/cuda-obj), PYTHON.
# libdiffedit.so never links any of this: the core loads the result with dlopen at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/lib}
OBJ=${OBJ:-build/cuda-obj}
PYTHON=${PYTHON:-python3}
ARCHS=${CUDA_ARCHS:-"80 90"}

say() { echo "build_cuda: $*" >&2; }

site=""
if command -v "$PYTHON" >/dev/null 2>&1; then
  site=$("$PYTHON" - <<'PY' 2>/dev/null || true
import os, site, sys
cands = []
try: cands += site.getsitepackages()
except Exception: pass
try: cands.append(site.getusersitepackages())
except Exception: pass
for p in cands:
    if os.path.isdir(os.path.join(p, "nvidia")):
        print(os.path.join(p, "nvidia")); break
PY
)
fi

nvcc=""
for cand in "${NVCC:-}" "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" "$(command -v nvcc 2>/dev/null || true)" \
            /usr/local/cuda/bin/nvcc "${site:+$site/cu13/bin/nvcc}" "${site:+$site/cu12/bin/nvcc}"; do
  if [ -n "$cand" ] && [ -x "$cand" ]; then nvcc=$cand; break; fi
done
if [ -z "$nvcc" ]; then
  say "nvcc not found (looked at \$NVCC, \$CUDA_HOME/bin, PATH, /usr/local/cuda/bin${site:+, $site/cu13/bin})."
  say "install it with: $PYTHON -m pip install nvidia-cuda-nvcc nvidia-cuda-cccl nvidia-cuda-runtime nvidia-cublas nvidia-cudnn-cu13"
  if [ "${CUDA_OPTIONAL:-0}" = 1 ]; then say "CUDA_OPTIONAL=1: skipping the CUDA provider"; exit 0; fi
  exit 2
fi
toolkit=$(cd "$(dirname "$nvcc")/.." && pwd)
say "nvcc: $nvcc ($("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"

# include and library folders
incs=("-I$toolkit/include")
[ -d "$toolkit/include/cccl" ] && incs+=("-I$toolkit/include/cccl")
libdirs=()
for d in "$toolkit/lib64" "$toolkit/lib" "$toolkit/targets/x86_64-linux/lib"; do [ -d "$d" ] && libdirs+=("$d"); done
cudnn_inc=""
for d in "${CUDNN_HOME:+$CUDNN_HOME/include}" "$toolkit/include" /usr/include /usr/include/x86_64-linux-gnu "${site:+$site/cudnn/include}"; do
  if [ -n "$d" ] && [ -f "$d/cudnn.h" ]; then cudnn_inc=$d; break; fi
done
if [ -z "$cudnn_inc" ]; then
  say "cudnn.h not found (\$CUDNN_HOME, the toolkit, /usr/include${site:+, $site/cudnn/include}); pip install nvidia-cudnn-cu13"
  if [ "${CUDA_OPTIONAL:-0}" = 1 ]; then say "CUDA_OPTIONAL=1: skipping the CUDA provider"; exit 0; fi
  exit 2
fi
incs+=("-I$cudnn_inc")
cudnn_lib=$(cd "$cudnn_inc/.." && pwd)
for d in "${CUDNN_HOME:+$CUDNN_HOME/lib64}" "${CUDNN_HOME:+$CUDNN_HOME/lib}" "$cudnn_lib/lib" "$cudnn_lib/lib64" /usr/lib/x86_64-linux-gnu; do
  [ -n "$d" ] && [ -d "$d" ] && libdirs+=("$d")
done

# The pip wheels ship only versioned sonames (libcublas.so.13): link through a folder of plain names.
linkdir="$OBJ/link"
mkdir -p "$linkdir" "$OUT"
for lib in cublas cublasLt cudnn; do
  found=""
  for d in "${libdirs[@]}"; do
    f=$(ls "$d/lib$lib.so" 2>/dev/null || ls "$d"/lib$lib.so.[0-9]* 2>/dev/null | sort -V | tail -1 || true)
    if [ -n "$f" ] && [ -e "$f" ]; then found=$f; break; fi
  done
  if [ -z "$found" ]; then say "lib$lib.so not found in: ${libdirs[*]}"; exit 2; fi
  ln -sf "$(cd "$(dirname "$found")" && pwd)/$(basename "$found")" "$linkdir/lib$lib.so"
done

gencode=()
last=""
for a in $ARCHS; do gencode+=("-gencode" "arch=compute_$a,code=sm_$a"); last=$a; done
gencode+=("-gencode" "arch=compute_$last,code=compute_$last")

flags=(-O3 -std=c++17 --use_fast_math -Xcompiler -fPIC,-fvisibility=hidden -ICSources/CDiffKernels/include -ICSources/cuda "${incs[@]}")
# --use_fast_math keeps expf/erff accurate to a few ulp (good enough against a 1e-2 tolerance) and speeds up exp2f.
if [ "${CUDA_WERROR:-0}" = 1 ]; then flags+=(-Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror); fi

[ -n "${CUDA_NVCC_THREADS:-}" ] && flags+=(--threads "$CUDA_NVCC_THREADS")
# incremental: an object is rebuilt when its source, a header or the flags changed
stamp="$OBJ/flags.txt"
sig="$nvcc ${flags[*]} ${gencode[*]}"
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sig" ] || rm -f "$OBJ"/*.o
objs=()
for src in CSources/cuda/*.cu; do
  o="$OBJ/$(basename "${src%.cu}").o"
  if [ -f "$o" ] && [ -z "$(find "$src" CSources/cuda/*.h CSources/CDiffKernels/include/de_backend.h -newer "$o" 2>/dev/null)" ]; then
    objs+=("$o"); continue
  fi
  say "nvcc $src"
  "$nvcc" "${flags[@]}" "${gencode[@]}" -c "$src" -o "$o.tmp" && mv -f "$o.tmp" "$o" || exit 1
  objs+=("$o")
done
echo "$sig" > "$stamp"
rpath='$ORIGIN'
for d in "${libdirs[@]}"; do rpath="$rpath:$d"; done
"$nvcc" -shared -cudart static "${gencode[@]}" "${objs[@]}" -o "$OUT/libdiffedit_cuda.so.tmp" \
  -L"$linkdir" -lcublasLt -lcublas -lcudnn -Xlinker -rpath="$rpath" -Xlinker --no-undefined -lpthread -ldl -lrt
mv -f "$OUT/libdiffedit_cuda.so.tmp" "$OUT/libdiffedit_cuda.so"
exported=$(nm -D --defined-only "$OUT/libdiffedit_cuda.so" | awk '$2 ~ /^[TW]$/ {print $3}' | grep -c '^de_backend' || true)
say "built $OUT/libdiffedit_cuda.so (sm: $ARCHS, PTX: compute_$last; $exported de_backend_* exports)"
