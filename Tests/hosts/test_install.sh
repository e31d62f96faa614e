#!/usr/bin/env bash
# Tests/hosts/test_install.sh — `make install PREFIX=tmp` (without the CLI) and every installed piece run from the installed tree
# with no path variables (LD_LIBRARY_PATH, DIFFEDIT_LIBRARY, DIFFEDIT_DEFAULT_MODEL, PYTHONPATH unset): each
# finds PREFIX/lib/libdiffedit.so.0 by a relative rpath or its own location, and the default model in
# PREFIX/share/diffedit/models (issue 21).
#   C        examples/c/edit_image built against the installed pkg-config file (pkg-config --with-path), rpath
#            from the .pc's libdir; edits a PNG with the default model
#   frei0r   ffmpeg loads PREFIX/lib/frei0r-1/diffedit.so and edits a 3-frame clip (skipped without ffmpeg)
#   Python   PREFIX/lib/python3.X/site-packages/diffedit.py loads PREFIX/lib's library and edits
#   GIMP     PREFIX/lib/gimp/2.0/plug-ins/diffedit/diffedit starts (the loader resolves libdiffedit from its
#            rpath) and ldd names PREFIX/lib's library
#   Krita    PREFIX/share/krita/pykrita/diffedit_krita/config.py's LIBRARY is PREFIX/lib/libdiffedit.so.0
# Then the tree is moved elsewhere and the Python and C checks run again (relative paths, not absolute).
# KEEP=1 keeps the temp folder. Exit status 0 = all checks passed.
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
TMP="$(mktemp -d)"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$TMP"' EXIT
P="$TMP/prefix"
fails=0
check() { if eval "$2"; then echo "test_install: ok   $1"; else echo "test_install: FAIL $1" >&2; fails=$((fails + 1)); fi; }
clean_env() { env -u LD_LIBRARY_PATH -u DIFFEDIT_LIBRARY -u DIFFEDIT_DEFAULT_MODEL -u DIFFEDIT_MODEL_DIR -u PYTHONPATH \
              -u FREI0R_PATH -u PKG_CONFIG_PATH "$@"; }

# `make install` minus install-cli (the release CLI build is the slow part in CI, and no check here uses it)
make -s install-lib install-plugins PREFIX="$P" >"$TMP/install.log" 2>&1 || { tail -30 "$TMP/install.log" >&2; echo "test_install: make install failed" >&2; exit 1; }
python3 -c 'from PIL import Image; Image.new("RGB", (40, 24), (200, 30, 30)).save("'"$TMP"'/in.png")' 2>/dev/null \
  || cp Tests/hosts/scene.png "$TMP/in.png"

# the libdiffedit.so.0 the dynamic loader picks for $1, as a real path
resolves_to_prefix() { # $1 = binary, $2 = prefix
  local got
  got="$(clean_env ldd "$1" | sed -n 's/.*libdiffedit\.so\.0 => \(.*\) (0x.*/\1/p')"
  [ -n "$got" ] && [ "$(realpath "$got")" = "$(realpath "$2/lib/libdiffedit.so.0")" ]
}
c_check() {   # $1 = prefix
  local pc="pkg-config --with-path=$1/lib/pkgconfig"
  clean_env cc -std=c99 -O1 $($pc --cflags diffedit libpng) examples/c/edit_image.c -o "$TMP/edit_image" \
    $($pc --libs diffedit libpng) -Wl,-rpath,"$($pc --variable=libdir diffedit)" &&
  rm -f "$TMP/out.png" && clean_env "$TMP/edit_image" "$TMP/in.png" "$TMP/out.png" "make it blue" --steps 2 >"$TMP/c.log" 2>&1 &&
  [ -s "$TMP/out.png" ] && ! grep -q "$ROOT/build" "$TMP/c.log"
}
py_check() {  # $1 = prefix
  local site
  site="$(python3 -c 'import sys, sysconfig; p = sys.argv[1]; print(sysconfig.get_path("purelib", "posix_prefix", vars={"base": p, "platbase": p}))' "$1")"
  clean_env python3 - "$site" "$1" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import diffedit as d
lib = d.find_library()
assert os.path.realpath(lib) == os.path.realpath(os.path.join(sys.argv[2], "lib", "libdiffedit.so.0")), lib
with d.Model(backend="cpu") as m, m.context() as c:   # the default model, installed with the library
    img = bytes(40 * 24 * 3)
    out = c.edit_image(img, "make it blue", width=40, height=24, format=d.PixelFormat.RGB8, steps=2)
    assert len(out) == len(img)
print("python: edited with", lib)
PY
}

check "C example, default model" 'c_check "$P"'
check "Python binding" 'py_check "$P"'
if command -v ffmpeg >/dev/null 2>&1 && [ -f "$P/lib/frei0r-1/diffedit.so" ]; then
  check "frei0r plug-in in ffmpeg" 'clean_env FREI0R_PATH="$P/lib/frei0r-1" ffmpeg -v error -y -f lavfi -i color=c=red:s=32x32:d=0.12:r=25 \
      -vf "frei0r=filter_name=diffedit:filter_params=make it blue||auto|0|0|2|7||0" "$TMP/f_%02d.png" && [ -s "$TMP/f_01.png" ]'
  check "frei0r plug-in's libdiffedit is PREFIX/lib's" 'resolves_to_prefix "$P/lib/frei0r-1/diffedit.so" "$P"'
else
  echo "test_install: skip frei0r (no ffmpeg or no plug-in installed)"
fi
G="$P/lib/gimp/2.0/plug-ins/diffedit/diffedit"
if [ -f "$G" ]; then
  check "GIMP plug-in's libdiffedit is PREFIX/lib's" 'resolves_to_prefix "$G" "$P"'
  check "GIMP plug-in starts (no loader error)" '! clean_env "$G" 2>&1 | grep -q "error while loading shared libraries"'
else
  echo "test_install: skip GIMP (plug-in not installed: libgimp2.0-dev missing)"
fi
check "Krita plug-in's LIBRARY is PREFIX/lib's" 'clean_env python3 -c "import runpy, os, sys; L = runpy.run_path(sys.argv[1])[\"LIBRARY\"]; sys.exit(0 if os.path.realpath(L) == os.path.realpath(sys.argv[2]) and os.path.exists(L) else 1)" \
    "$P/share/krita/pykrita/diffedit_krita/config.py" "$P/lib/libdiffedit.so.0"'
check "Krita plug-in files" '[ -f "$P/share/krita/pykrita/diffedit_krita.desktop" ] && [ -f "$P/share/krita/pykrita/diffedit_krita/diffedit.py" ]'

# relocated: nothing in the tree may hold an absolute path to where it was installed
mv "$P" "$TMP/moved"
check "Python binding after moving the tree" 'py_check "$TMP/moved"'
M="$TMP/moved"
[ -f "$M/lib/frei0r-1/diffedit.so" ] && check "frei0r plug-in after moving the tree" 'resolves_to_prefix "$M/lib/frei0r-1/diffedit.so" "$M"'
[ -f "$M/lib/gimp/2.0/plug-ins/diffedit/diffedit" ] && check "GIMP plug-in after moving the tree" 'resolves_to_prefix "$M/lib/gimp/2.0/plug-ins/diffedit/diffedit" "$M"'
check "Krita plug-in after moving the tree" 'clean_env python3 -c "import runpy, os, sys; L = runpy.run_path(sys.argv[1])[\"LIBRARY\"]; sys.exit(0 if os.path.exists(L) and L.startswith(sys.argv[2]) else 1)" \
    "$TMP/moved/share/krita/pykrita/diffedit_krita/config.py" "$TMP/moved"'
[ "$fails" = 0 ] && echo "test_install: all checks passed" || echo "test_install: $fails checks failed" >&2
exit $(( fails > 0 ))
