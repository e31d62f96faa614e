#!/bin/sh
# examples/krita/bundle.sh OUT_DIR LIBRARY — assembles the installable Krita plug-in:
#   OUT_DIR/diffedit_krita.desktop
#   OUT_DIR/diffedit_krita/{__init__,editing,docker}.py, Manual.html
#   OUT_DIR/diffedit_krita/diffedit.py   (copy of python/diffedit.py, the ctypes binding)
#   OUT_DIR/diffedit_krita/config.py     (LIBRARY = the absolute path of libdiffedit.so.0)
# Install: copy OUT_DIR's contents into Krita's pykrita folder (~/.local/share/krita/pykrita/), then
# enable "Diffusion Edit" in Settings > Configure Krita > Python Plugin Manager and restart Krita.
set -eu
out="$1"; lib="$2"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
case "$lib" in /*) ;; *) lib="$(pwd)/$lib";; esac
rm -rf "$out/diffedit_krita"
mkdir -p "$out/diffedit_krita"
cp "$here/diffedit_krita.desktop" "$out/"
cp "$here/diffedit_krita/__init__.py" "$here/diffedit_krita/editing.py" "$here/diffedit_krita/docker.py" \
   "$here/diffedit_krita/Manual.html" "$out/diffedit_krita/"
cp "$root/python/diffedit.py" "$out/diffedit_krita/diffedit.py"
printf '# written by examples/krita/bundle.sh\nLIBRARY = %s\n' "$(printf '%s' "$lib" | python3 -c 'import sys; print(repr(sys.stdin.read()))')" \
  > "$out/diffedit_krita/config.py"
echo "Krita plug-in in $out (library $lib): copy its contents to ~/.local/share/krita/pykrita/"
