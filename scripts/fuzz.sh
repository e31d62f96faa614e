#!/usr/bin/env bash
# libFuzzer harnesses (Tests/Fuzz) for the parsers that read untrusted bytes:
#   safetensors  the .safetensors header parser and tensor reads (SafetensorsFile)
#   config       the JSON config decoders and limits, the scheduler's betas, the model-size and working-set estimates
#   singlefile   single-file checkpoint architecture detection from tensor shapes (SingleFileCheckpoint)
#   tokenizer    the CLIP tokenizer on arbitrary prompt bytes
#   image        the PNG/JPEG decoder (CSources/CImageCodec), in C with ASan + UBSan
# The Swift harnesses link the DiffEdit module compiled here with -sanitize=fuzzer,address (Swift has no UBSan:
# it traps on overflow and bounds itself; a trap is a crash to libFuzzer). The C code they reach
# (CImageCodec, CClipBPE) is compiled with -fsanitize=fuzzer-no-link,address,undefined; the CPU kernels
# (CDiffKernels) are compiled plainly (no parser reaches their arithmetic).
#
#   scripts/fuzz.sh build                       build build/fuzz/fuzz_<name> (incremental: only when sources changed)
#   scripts/fuzz.sh run SECONDS [NAME...]       run each harness (default: all) for SECONDS on a copy of its seed corpus
#   scripts/fuzz.sh runs N [NAME...]            run each harness for N inputs (-runs=N)
# A crash leaves build/fuzz/<name>/crash-* and makes the script fail. Seeds: Tests/Fuzz/corpus/<name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SWIFTC=${SWIFTC:-swiftc}
CLANG=${FUZZ_CC:-clang}
# -O (default) for long runs; CI uses FUZZ_SWIFT_OPT=-Onone: a quarter of the build time (28 s vs 2 min of CPU
# for the DiffEdit module), fewer inputs a second. Each setting has its own build folder.
SWIFT_OPT=${FUZZ_SWIFT_OPT:--O}
OUT=$ROOT/build/fuzz$([ "$SWIFT_OPT" = -O ] || echo "$SWIFT_OPT" | tr -d ' ')
NAMES=(safetensors config singlefile tokenizer image)
export SWIFT_BACKTRACE=enable=no           # the Swift backtracer confuses ASan's report on a trap
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

SAN_C="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
PNG_CFLAGS=$(pkg-config --cflags libpng)
BLAS_CFLAGS=$(pkg-config --cflags openblas)
BLAS_LIBS=$(pkg-config --libs openblas)

# newer(target, sources...): true when target is missing or older than any source
newer() { local t=$1; shift; [ -e "$t" ] || return 0; [ -n "$(find "$@" -type f -newer "$t" -print -quit 2>/dev/null)" ]; }

build() {
    mkdir -p "$OUT/obj" "$OUT/modules" "$OUT/swift"
    # module maps for the C targets (SwiftPM makes these for its own build)
    for t in CDiffKernels CImageCodec CClipBPE; do
        mkdir -p "$OUT/modules/$t"
        printf 'module %s {\n    umbrella "%s"\n    export *\n}\n' "$t" "$ROOT/CSources/$t/include" > "$OUT/modules/$t/module.modulemap.tmp"
        cmp -s "$OUT/modules/$t/module.modulemap.tmp" "$OUT/modules/$t/module.modulemap" 2>/dev/null \
            && rm "$OUT/modules/$t/module.modulemap.tmp" || mv "$OUT/modules/$t/module.modulemap.tmp" "$OUT/modules/$t/module.modulemap"
    done
    local objs=()
    for src in CSources/CImageCodec/image_codec.c CSources/CImageCodec/image_xmp.c CSources/CClipBPE/de_clip_bpe.c; do
        local o="$OUT/obj/$(basename "$src" .c).o"
        if newer "$o" "$src" "$(dirname "$src")/include"; then
            echo "fuzz: cc $src (ASan+UBSan)"
            $CLANG -O1 -g $SAN_C $PNG_CFLAGS -I"$(dirname "$src")/include" -c "$src" -o "$o"
        fi
        objs+=("$o")
    done
    for src in CSources/CDiffKernels/*.c; do
        local o="$OUT/obj/kernels_$(basename "$src" .c).o"
        if newer "$o" "$src" CSources/CDiffKernels/include CSources/CDiffKernels/cpu_internal.h; then
            echo "fuzz: cc $src"
            $CLANG -O2 -march=x86-64-v3 -fno-math-errno $BLAS_CFLAGS -ICSources/CDiffKernels/include -c "$src" -o "$o"
        fi
        objs+=("$o")
    done
    local lib="$OUT/swift/libDiffEdit.a"
    if newer "$lib" Sources/DiffEdit "$OUT"/modules/*/module.modulemap; then
        echo "fuzz: swiftc DiffEdit (-sanitize=fuzzer,address)"
        (cd "$OUT/swift" && $SWIFTC -module-name DiffEdit -package-name diffedit -parse-as-library $SWIFT_OPT -g -suppress-warnings \
            -sanitize=fuzzer,address -emit-module -emit-library -static -o "$lib" \
            -I "$OUT/modules" -I "$ROOT/CSources/CPNG" -I "$ROOT/CSources/CJPEG" -I "$ROOT/CSources/COpenBLAS" \
            -Xcc -I/usr/include/libpng16 -Xcc $(echo "$BLAS_CFLAGS" | sed 's/^-I/-I/') \
            $(find "$ROOT/Sources/DiffEdit" -name '*.swift' | sort))
    fi
    for name in "${NAMES[@]}"; do
        local bin="$OUT/fuzz_$name"
        if [ "$name" = image ]; then
            if newer "$bin" Tests/Fuzz/fuzz_image.c "$OUT/obj/image_codec.o" "$OUT/obj/image_xmp.o"; then
                echo "fuzz: cc fuzz_image"
                $CLANG -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                    -ICSources/CImageCodec/include Tests/Fuzz/fuzz_image.c "$OUT/obj/image_codec.o" "$OUT/obj/image_xmp.o" -o "$bin" -lpng16 -ljpeg -lz -lm
            fi
            continue
        fi
        if newer "$bin" "Tests/Fuzz/fuzz_$name.swift" Tests/Fuzz/FuzzFile.swift "$lib"; then
            echo "fuzz: swiftc fuzz_$name"
            $SWIFTC -package-name diffedit -parse-as-library $SWIFT_OPT -g -sanitize=fuzzer,address \
                -I "$OUT/swift" -I "$OUT/modules" -I "$ROOT/CSources/CPNG" -I "$ROOT/CSources/CJPEG" -I "$ROOT/CSources/COpenBLAS" \
                -Xcc -I/usr/include/libpng16 -Xcc $BLAS_CFLAGS \
                "Tests/Fuzz/fuzz_$name.swift" Tests/Fuzz/FuzzFile.swift -o "$bin" \
                "$lib" "${objs[@]}" $BLAS_LIBS -lpng16 -ljpeg -lz -lpthread -ldl -lm 2> >(grep -v 'Cannot export local symbol' >&2)
        fi
    done
}

# run_one NAME ARGS...: fuzz NAME on a scratch copy of its seeds (new inputs do not touch the committed corpus)
run_one() {
    local name=$1; shift
    local work="$OUT/$name"
    rm -rf "$work/corpus"; mkdir -p "$work/corpus"
    cp Tests/Fuzz/corpus/"$name"/* "$work/corpus/" 2>/dev/null || true
    local dict=()
    [ -f "Tests/Fuzz/$name.dict" ] && dict=(-dict="$ROOT/Tests/Fuzz/$name.dict")
    echo "fuzz: $name $*"
    if ! (cd "$work" && "$OUT/fuzz_$name" "${dict[@]}" -max_len=65536 -rss_limit_mb=4096 -timeout=20 \
            -print_final_stats=1 "$@" corpus > "$work/log.txt" 2>&1); then
        tail -60 "$work/log.txt" >&2
        echo "fuzz: $name FAILED (log: $work/log.txt, reproducer: $work/crash-* / leak-* / timeout-*)" >&2
        return 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/log.txt" | tr '\n' ' '; echo
}

cmd=${1:-}; shift || true
case "$cmd" in
    build) build ;;
    run|runs)
        [ $# -ge 1 ] || { echo "usage: $0 $cmd N [NAME...]" >&2; exit 2; }
        n=$1; shift
        [ $# -gt 0 ] && NAMES=("$@")
        build
        st=0
        for name in "${NAMES[@]}"; do
            if [ "$cmd" = run ]; then run_one "$name" -max_total_time="$n" || st=1
            else run_one "$name" -runs="$n" || st=1; fi
        done
        exit $st ;;
    *) echo "usage: $0 build | run SECONDS [NAME...] | runs N [NAME...]" >&2; exit 2 ;;
esac
