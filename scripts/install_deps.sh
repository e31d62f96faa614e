#!/usr/bin/env bash
# Installs what diffedit's build and tests need on Debian 12 (run as root or with sudo available).
#   scripts/install_deps.sh          build + all tests (C ABI, Python binding, FFmpeg, GIMP, Krita)
#   scripts/install_deps.sh --build  only what building the library and CLI needs
#   scripts/install_deps.sh --cuda   also the CUDA compilers/libraries from PyPI (~2 GB) for `make cuda`
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
build_pkgs="libopenblas-dev libpng-dev libjpeg-dev pkg-config"
test_pkgs="g++ valgrind ffmpeg frei0r-plugins-dev gimp libgimp2.0-dev krita xvfb xauth"
mode="${1:-all}"
pkgs="$build_pkgs"
[ "$mode" = "--build" ] || pkgs="$pkgs $test_pkgs"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq $pkgs >/dev/null
if [ "$mode" != "--build" ]; then
  # the Python binding's tests (python3 from PATH, as the Makefile uses)
  python3 -m pip install -q pytest numpy pillow
fi
if [ "$mode" = "--cuda" ]; then
  python3 -m pip install -q nvidia-cuda-nvcc nvidia-cuda-cccl nvidia-cuda-runtime nvidia-cublas nvidia-cudnn-cu13
fi
echo "install_deps: done ($mode)"
