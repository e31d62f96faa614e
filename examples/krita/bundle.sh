#!/bin/sh
# examples/krita/bundle.sh OUT_DIR LIBRARY — assembles the installable Krita plug-in:
#   OUT_DIR/diffedit_krita.desktop
#   OUT_DIR/diffedit_krita/{__init__,editing,docker}.py, Manual.html
#   OUT_DIR/diffedit_krita/diffedit.py   (copy of python/diffedit.py, the ctypes binding)
#   OUT_DIR/diffedit_krita/config.py     (LIBRARY = the absolute path of libdiffedit.so.0)
# Install: copy OUT_DIR's contents into Krita's pykrita folder (~/.local/share/krita/pykrita/), then
# enable "Diffusion Edit" in Settings > Configure Krita > Python Plugin Manager and restart Krita.
#   bundle.sh OUT_DIR LIBRARY --relative-to PYKRITA_DIR: config.py finds LIBRARY relative to where the plug-in
#   will be installed (PYKRITA_DIR/diffedit_krita), not by an absolute path (make install; the tree may move)
set -eu
out="$1"; lib="$2"; rel_to="${4:-}"
[ "${3:-}" = "--relative-to" ] || rel_to=""
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
case "$lib" in /*) ;; *) lib="$(pwd)/$lib";; esac
rm -rf "$out/diffedit_krita"
mkdir -p "$out/diffedit_krita"
cp "$here/diffedit_krita.desktop" "$out/"
cp "$here/diffedit_krita/__init__.py" "$here/diffedit_krita/editing.py" "$here/diffedit_krita/docker.py" \
   "$here/diffedit_krita/Manual.html" "$out/diffedit_krita/"
cp "$root/python/diffedit.py" "$out/diffedit_krita/diffedit.py"
if [ -n "$rel_to" ]; then
  rel="$(python3 -c 'import os, sys; print(repr(os.path.relpath(sys.argv[1], os.path.join(sys.argv[2], "diffedit_krita"))))' "$lib" "$rel_to")"
  printf '# written by examples/krita/bundle.sh (make install): the library relative to this folder\nimport os\nLIBRARY = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), %s))\n' "$rel" \
    > "$out/diffedit_krita/config.py"
else
  printf '# written by examples/krita/bundle.sh\nLIBRARY = %s\n' "$(printf '%s' "$lib" | python3 -c 'import sys; print(repr(sys.stdin.read()))')" \
    > "$out/diffedit_krita/config.py"
fi
echo "Krita plug-in in $out (library $lib): copy its contents to ~/.local/share/krita/pykrita/"
