# diffedit — top-level Makefile. Target names are stable (CI and the README use them):
#   make / make lib     build/lib/libdiffedit.so.0 (+ libdiffedit.so link): SONAME libdiffedit.so.0,
#                       Swift runtime linked in statically, only diff_edit_* exported (abi/diffedit.map)
#   make cli            build/bin/diffedit (static Swift stdlib)
#   make install        PREFIX=/usr/local: lib/, include/diffedit.h, lib/pkgconfig/diffedit.pc,
#                       bin/diffedit, share/diffedit/models/ (the default model), and the host plug-ins
#                       (install-plugins): lib/frei0r-1/diffedit.so, lib/gimp/2.0/plug-ins/diffedit/diffedit,
#                       share/krita/pykrita/diffedit_krita*, the Python binding in lib/python3.X/site-packages;
#                       each finds PREFIX/lib/libdiffedit.so.0 by a relative rpath / path, no variables needed
#   make test-install   installs into a temporary PREFIX and runs each installed piece with no path variables
#   make examples       examples/c/edit_image against the INSTALLED header + pkg-config (build/stage)
#   make test           swift test + C ABI tests + exported-symbol check
#   make test-cabi      C ABI tests only (Tests/CABI, against the installed header in build/stage)
#   make valgrind-cabi  the C ABI tests under valgrind (no invalid accesses, no leaks after free)
#   make test-cabi-asan the C ABI tests built with AddressSanitizer + UBSan (the test programs and every buffer
#                       they hand the library; the library itself is the release build)
#   make fuzz           the libFuzzer harnesses (Tests/Fuzz, scripts/fuzz.sh: safetensors header, configs and the
#                       model-size estimate, single-file detection, tokenizer, PNG/JPEG decoder), each for
#                       FUZZ_SECONDS (default 60); make fuzz-ci: each for 5 s on an -Onone build (CI)
#   make check-symbols  nm -D of the built library vs abi/symbols.txt
#   make check-header   the installed header compiles as C99 -pedantic and as C++11
#   make frei0r         build/frei0r-1/diffedit.so, the FFmpeg frei0r filter (examples/ffmpeg)
#   make test-frei0r    ffmpeg + the frei0r plug-in on a toy clip (needs ffmpeg, frei0r-plugins-dev)
#   make bench          diffedit bench per --weights-dtype on a random SD 1.5 fp16 folder, beside PyTorch fp32 / bf16
#   make quality        tools/quality.py (edit quality on the toy world)
#   make pictures       the README's before/after pictures (tools/readme_pictures.py, needs Pillow)
#   make cuda           build/lib/libdiffedit_cuda.so, the CUDA provider (scripts/build_cuda.sh; nvcc from the
#                       toolkit or PyPI). CUDA_WERROR=1: warnings are errors; CUDA_OPTIONAL=1: no nvcc is not an error
#   make clean
#
# Variables: SWIFT, CC, PREFIX, DESTDIR, SCRATCH (SwiftPM scratch path), CONFIG (release|debug),
# CABI_MODEL (model the C ABI success-path tests load), JOBS, BENCH_ARGS, QUALITY_ARGS.

SWIFT     ?= swift
CC        ?= cc
PREFIX    ?= /usr/local
DESTDIR   ?=
CONFIG    ?= release
SCRATCH   ?= .build
PYTHON    ?= python3
VALGRIND  ?= valgrind
JOBS      ?=
VERSION   := 0.1.0
SOVERSION := 0

BUILD     := build
LIBDIR    := $(BUILD)/lib
BINDIR    := $(BUILD)/bin
STAGE     := $(CURDIR)/$(BUILD)/stage
TESTBIN   := $(BUILD)/tests
LIBNAME   := libdiffedit.so
LIBSO     := $(LIBNAME).$(SOVERSION)

SWIFT_JOBS   := $(if $(JOBS),-j $(JOBS),)
SWIFT_COMMON := -c $(CONFIG) --scratch-path $(SCRATCH) $(SWIFT_JOBS) -Xswiftc -static-stdlib
# The library: version script (only diff_edit_*), SONAME, no undefined symbols left.
LIB_LDFLAGS  := -Xlinker --version-script=$(CURDIR)/abi/diffedit.map -Xlinker -soname=$(LIBSO) \
                -Xlinker --no-undefined

# C ABI tests: strict C99 against the installed header and pkg-config file.
CABI_CFLAGS  := -std=c99 -Wall -Wextra -Werror -O1 -g
STAGE_PC     := PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config
CABI_MODEL   ?= $(CURDIR)/Tests/Fixtures/sd1
CABI_INSTRUCT_MODEL ?= $(CURDIR)/Tests/Fixtures/edit/instruct/model
CABI_INPAINT_MODEL ?= $(CURDIR)/Tests/Fixtures/edit/inpaint/model
CABI_CONTROLNET ?= $(CURDIR)/Tests/Fixtures/controlnet
CABI_ARGS    = $(if $(wildcard $(CABI_INSTRUCT_MODEL)/model_index.json),--instruct $(CABI_INSTRUCT_MODEL),) \
               $(if $(wildcard $(CABI_INPAINT_MODEL)/model_index.json),--inpaint $(CABI_INPAINT_MODEL),) \
               $(if $(filter $(CURDIR)/Tests/Fixtures/sd1,$(CABI_MODEL)),--lora $(CURDIR)/Tests/Fixtures/lora,) \
               $(if $(wildcard $(CABI_CONTROLNET)/manifest.json),--controlnet $(CABI_CONTROLNET),) $(CABI_MODEL)
VALGRIND_FLAGS := --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
                  --errors-for-leak-kinds=definite,indirect --track-origins=yes \
                  --suppressions=$(CURDIR)/Tests/CABI/valgrind.supp

.PHONY: test-all all lib cli install install-lib install-cli install-plugins test-install stage examples test swift-test test-cabi test-opcheck \
        valgrind-cabi test-cabi-asan fuzz fuzz-ci check-symbols check-header bench bench-edit quality pictures cuda clean frei0r test-frei0r \
        cuda-emu test-cuda-emu test-cuda-emu-full

all: lib

# ---------------------------------------------------------------------------------------------------
# Library
# ---------------------------------------------------------------------------------------------------
lib:
	$(SWIFT) build $(SWIFT_COMMON) --product diffeditc $(LIB_LDFLAGS)
	@mkdir -p $(LIBDIR)
	@bin=$$($(SWIFT) build $(SWIFT_COMMON) --show-bin-path) && \
	  cp -f "$$bin/libdiffeditc.so" $(LIBDIR)/$(LIBSO).tmp && mv -f $(LIBDIR)/$(LIBSO).tmp $(LIBDIR)/$(LIBSO)
	@ln -sf $(LIBSO) $(LIBDIR)/$(LIBNAME)
	@soname=$$(readelf -d $(LIBDIR)/$(LIBSO) | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'); \
	  if [ "$$soname" != "$(LIBSO)" ]; then echo "make lib: SONAME is '$$soname', expected $(LIBSO)" >&2; exit 1; fi
	@if readelf -d $(LIBDIR)/$(LIBSO) | grep -q 'libswiftCore'; then \
	  echo "make lib: $(LIBSO) still needs the shared Swift runtime" >&2; exit 1; fi
	@echo "built $(LIBDIR)/$(LIBSO) (SONAME $(LIBSO))"

check-symbols: lib
	scripts/check_symbols.sh $(LIBDIR)/$(LIBSO) abi/symbols.txt

# ---------------------------------------------------------------------------------------------------
# Command-line tool
# ---------------------------------------------------------------------------------------------------
cli:
	$(SWIFT) build $(SWIFT_COMMON) --product diffedit
	@mkdir -p $(BINDIR)
	@bin=$$($(SWIFT) build $(SWIFT_COMMON) --show-bin-path) && cp -f "$$bin/diffedit" $(BINDIR)/diffedit
	@echo "built $(BINDIR)/diffedit"

# ---------------------------------------------------------------------------------------------------
# Install
# ---------------------------------------------------------------------------------------------------
install: install-lib install-cli install-plugins

# Library, header, pkg-config file and the default model (PREFIX/share/diffedit/models/, where the
# library looks for it relative to its own location: <libdir>/../share/diffedit/models/toy-instruct).
install-lib: lib
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/share/diffedit/models
	@# installed without DWARF (valgrind 3.19 cannot read the DWARF 5 the Swift toolchain emits); symbols stay
	strip --strip-debug -o $(DESTDIR)$(PREFIX)/lib/$(LIBSO).tmp $(LIBDIR)/$(LIBSO)
	chmod 755 $(DESTDIR)$(PREFIX)/lib/$(LIBSO).tmp && mv -f $(DESTDIR)$(PREFIX)/lib/$(LIBSO).tmp $(DESTDIR)$(PREFIX)/lib/$(LIBSO)
	ln -sf $(LIBSO) $(DESTDIR)$(PREFIX)/lib/$(LIBNAME)
	install -m 644 include/diffedit.h $(DESTDIR)$(PREFIX)/include/diffedit.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' diffedit.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/diffedit.pc
	@if [ -n "$$(ls -A models 2>/dev/null | grep -v '^\.')" ]; then \
	  cp -R models/. $(DESTDIR)$(PREFIX)/share/diffedit/models/; \
	else echo "install: models/ is empty: no default model installed"; fi
	@# the CUDA provider (make cuda), when built, goes next to the library where the loader looks for it
	@if [ -f $(LIBDIR)/libdiffedit_cuda.so ]; then install -m 755 $(LIBDIR)/libdiffedit_cuda.so $(DESTDIR)$(PREFIX)/lib/; fi

install-cli: cli
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BINDIR)/diffedit $(DESTDIR)$(PREFIX)/bin/diffedit

# The host plug-ins, built against the staged library (same SONAME) with rpaths relative to where they are
# installed ($$ORIGIN: lib/frei0r-1/.. and lib/gimp/2.0/plug-ins/diffedit/../../../..), so an installed tree
# works without LD_LIBRARY_PATH or DIFFEDIT_LIBRARY. A plug-in whose SDK is missing (frei0r.h,
# libgimp2.0-dev) is skipped with a note. Python: PREFIX/lib/python3.X/site-packages/diffedit.py, which
# finds PREFIX/lib/libdiffedit.so.0 from its own location; Krita: config.py holds the library's path
# relative to the plug-in.
PLUGIN_BUILD := $(BUILD)/install-plugins
PYTHON_SITE   = $$($(PYTHON) -c 'import sys, sysconfig; p = sys.argv[1]; print(sysconfig.get_path("purelib", "posix_prefix", vars={"base": p, "platbase": p}))' '$(PREFIX)')
install-plugins: stage
	@mkdir -p $(PLUGIN_BUILD)
	@if echo '#include <frei0r.h>' | $(CC) -E -x c - >/dev/null 2>&1; then \
	  set -x; $(CC) -std=c99 -Wall -Wextra -Werror -O2 -fPIC -shared $$($(STAGE_PC) --cflags diffedit) \
	    examples/ffmpeg/diffedit_frei0r.c -o $(PLUGIN_BUILD)/diffedit.so $$($(STAGE_PC) --libs diffedit) \
	    '-Wl,-rpath,$$ORIGIN/..' && \
	  install -d $(DESTDIR)$(PREFIX)/lib/frei0r-1 && \
	  install -m 755 $(PLUGIN_BUILD)/diffedit.so $(DESTDIR)$(PREFIX)/lib/frei0r-1/diffedit.so; \
	else echo "install: frei0r.h not found (frei0r-plugins-dev): frei0r plug-in not installed"; fi
	@if $(STAGE_PC) --exists gimpui-2.0 gimp-2.0 2>/dev/null; then \
	  set -x; $(CC) -std=gnu99 -O2 -Wall -Wextra -Werror -Wno-deprecated-declarations \
	    $$($(STAGE_PC) --cflags gimpui-2.0 gimp-2.0 diffedit) examples/gimp/diffedit_gimp.c -o $(PLUGIN_BUILD)/diffedit \
	    $$($(STAGE_PC) --libs gimpui-2.0 gimp-2.0 diffedit) '-Wl,-rpath,$$ORIGIN/../../../..' && \
	  install -d $(DESTDIR)$(PREFIX)/lib/gimp/2.0/plug-ins/diffedit && \
	  install -m 755 $(PLUGIN_BUILD)/diffedit $(DESTDIR)$(PREFIX)/lib/gimp/2.0/plug-ins/diffedit/diffedit; \
	else echo "install: libgimp2.0-dev not found: GIMP plug-in not installed"; fi
	examples/krita/bundle.sh $(PLUGIN_BUILD)/krita $(PREFIX)/lib/$(LIBSO) --relative-to $(PREFIX)/share/krita/pykrita
	install -d $(DESTDIR)$(PREFIX)/share/krita/pykrita/diffedit_krita
	install -m 644 $(PLUGIN_BUILD)/krita/diffedit_krita.desktop $(DESTDIR)$(PREFIX)/share/krita/pykrita/
	install -m 644 $(PLUGIN_BUILD)/krita/diffedit_krita/* $(DESTDIR)$(PREFIX)/share/krita/pykrita/diffedit_krita/
	site=$(PYTHON_SITE) && install -d "$(DESTDIR)$$site" && install -m 644 python/diffedit.py "$(DESTDIR)$$site/diffedit.py"

test-install:
	Tests/hosts/test_install.sh

# The library installed into build/stage, which the C tests and examples build against.
stage:
	$(MAKE) install-lib PREFIX=$(STAGE) DESTDIR=

# ---------------------------------------------------------------------------------------------------
# C examples and tests (against the installed header + pkg-config file)
# ---------------------------------------------------------------------------------------------------
examples: stage
	@mkdir -p $(BINDIR)
	$(CC) -std=c99 -Wall -Wextra -Werror -O2 $$($(STAGE_PC) --cflags diffedit libpng) \
	  examples/c/edit_image.c -o $(BINDIR)/edit_image \
	  $$($(STAGE_PC) --libs diffedit libpng) -Wl,-rpath,$(STAGE)/lib
	@echo "built $(BINDIR)/edit_image (run: $(BINDIR)/edit_image in.png out.png \"prompt\" [model])"

$(TESTBIN)/test_cabi: Tests/CABI/test_cabi.c stage
	@mkdir -p $(TESTBIN)
	$(CC) $(CABI_CFLAGS) $$($(STAGE_PC) --cflags diffedit) Tests/CABI/test_cabi.c -o $@ \
	  $$($(STAGE_PC) --libs diffedit) -lpthread -Wl,-rpath,$(STAGE)/lib

# The installed header also compiles as strict C99 with -pedantic and as C++ (extern "C").
check-header: stage
	echo '#include <diffedit.h>' | $(CC) -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c \
	  $$($(STAGE_PC) --cflags diffedit) -
	@if command -v $(CXX) >/dev/null 2>&1; then \
	  echo '#include <diffedit.h>' | $(CXX) -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -x c++ \
	    $$($(STAGE_PC) --cflags diffedit) - && echo "check-header: diffedit.h compiles as C99 and C++11"; fi

$(TESTBIN)/test_stream: Tests/CABI/test_stream.c stage
	@mkdir -p $(TESTBIN)
	$(CC) $(CABI_CFLAGS) $$($(STAGE_PC) --cflags diffedit) Tests/CABI/test_stream.c -o $@ \
	  $$($(STAGE_PC) --libs diffedit) -Wl,-rpath,$(STAGE)/lib

test-cabi: $(TESTBIN)/test_cabi $(TESTBIN)/test_stream check-header
	$(TESTBIN)/test_cabi $(CABI_ARGS)
	$(TESTBIN)/test_stream $(CABI_MODEL)
	@echo "test-cabi: again with the CPU provider in staged mode (the device-resident code paths)"
	DIFFEDIT_CPU_STAGED=1 $(TESTBIN)/test_cabi $(CABI_ARGS)

# scripts/gpu_check.sh's op checker (CUDA vs CPU provider, per op, weights as host pointers and as constants);
# here its --self-test puts a second CPU provider, in staged mode, in CUDA's place, so the checker itself (its
# constants, lincomb and device-resident chain with zero host operands) is tested without a GPU.
$(TESTBIN)/op_check: CSources/cuda/tools/op_check.c CSources/CDiffKernels/registry.c $(wildcard CSources/CDiffKernels/cpu_*.c) CSources/CDiffKernels/include/de_backend.h
	@mkdir -p $(TESTBIN)
	$(CC) -std=gnu11 -O2 -Wall -fno-math-errno -ICSources/CDiffKernels/include CSources/cuda/tools/op_check.c \
	  CSources/CDiffKernels/registry.c CSources/CDiffKernels/cpu_*.c -o $@ -lopenblas -lpthread -ldl -lm

# bf16 compute of the CPU provider (cpu_bf16.c) against double references, every kernel this CPU has
$(TESTBIN)/bf16_check: Tests/OpCheck/bf16_check.c CSources/CDiffKernels/registry.c $(wildcard CSources/CDiffKernels/cpu_*.c) CSources/CDiffKernels/include/de_backend.h CSources/CDiffKernels/cpu_internal.h
	@mkdir -p $(TESTBIN)
	$(CC) -std=gnu11 -O2 -Wall -fno-math-errno -ICSources/CDiffKernels/include Tests/OpCheck/bf16_check.c \
	  CSources/CDiffKernels/registry.c CSources/CDiffKernels/cpu_*.c -o $@ -lopenblas -lpthread -ldl -lm

test-opcheck: $(TESTBIN)/op_check $(TESTBIN)/bf16_check
	$(TESTBIN)/op_check --self-test
	$(TESTBIN)/bf16_check

# The CUDA emulation build (tests only; docs/cuda_emulation.md): the provider's .cu files compiled as host C++
# against CSources/cuda/emu (kernels as fibers, cuBLAS/cuBLASLt/cuDNN stand-ins). The loader takes it through
# DIFFEDIT_BACKEND_PATH; it starts only with DIFFEDIT_CUDA_EMU=1. Never installed (it is not in build/lib).
CXX       ?= c++
EMU_DIR   := $(BUILD)/cuda-emu
EMU_LIB   := $(EMU_DIR)/libdiffedit_cuda_emu.so
EMU_FLAGS := -std=c++17 -O2 -g -fPIC -fvisibility=hidden -Wall -Werror -Wno-unknown-pragmas -DDE_CUDA_EMU \
             -ICSources/cuda/emu/include -ICSources/CDiffKernels/include
EMU_SRCS  := $(wildcard CSources/cuda/*.cu) $(wildcard CSources/cuda/emu/*.cpp)
EMU_OBJS  := $(patsubst CSources/cuda/%,$(EMU_DIR)/%.o,$(EMU_SRCS))
EMU_ENV   := DIFFEDIT_CUDA_EMU=1 DIFFEDIT_BACKEND_PATH=$(CURDIR)/$(EMU_LIB)
$(EMU_DIR)/%.cu.o: CSources/cuda/%.cu CSources/cuda/cuda_internal.h $(wildcard CSources/cuda/emu/include/*.h) CSources/CDiffKernels/include/de_backend.h
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_FLAGS) -x c++ -c $< -o $@
$(EMU_DIR)/emu/%.cpp.o: CSources/cuda/emu/%.cpp $(wildcard CSources/cuda/emu/include/*.h)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_FLAGS) -c $< -o $@
$(EMU_LIB): $(EMU_OBJS)
	$(CXX) -shared -o $@ $(EMU_OBJS) -lpthread -ldl
cuda-emu: $(EMU_LIB)

# op_check on the emulated provider (small shapes of every SD 1.5 kind, injected failures, no emulator
# violations), then the whole pipeline on it against the CPU provider (CUDAEmulatorPipelineTests, >= 35 dB).
test-cuda-emu: $(EMU_LIB) $(TESTBIN)/op_check
	$(EMU_ENV) $(TESTBIN)/op_check --emu
	$(EMU_ENV) $(SWIFT) test --scratch-path $(SCRATCH)-test $(SWIFT_JOBS) --filter CUDAEmulatorPipelineTests

# op_check on the emulated provider at the SD 1.5 shapes (not in CI: a few minutes)
test-cuda-emu-full: $(EMU_LIB) $(TESTBIN)/op_check
	$(EMU_ENV) $(TESTBIN)/op_check --emu --full

# FFmpeg frei0r plug-in over the streaming API (needs frei0r.h: Debian frei0r-plugins-dev), into a
# frei0r-1 folder: FREI0R_PATH=build/frei0r-1 ffmpeg -i in.mp4 -vf "frei0r=filter_name=diffedit:filter_params=PROMPT|..." out.mp4
FREI0R_DIR ?= $(BUILD)/frei0r-1
frei0r: stage
	@mkdir -p $(FREI0R_DIR)
	$(CC) -std=c99 -Wall -Wextra -Werror -O2 -fPIC -shared $$($(STAGE_PC) --cflags diffedit) \
	  examples/ffmpeg/diffedit_frei0r.c -o $(FREI0R_DIR)/diffedit.so $$($(STAGE_PC) --libs diffedit) -Wl,-rpath,$(STAGE)/lib
	@echo "built $(FREI0R_DIR)/diffedit.so (check: python3 examples/ffmpeg/check_frei0r.py --model MODEL)"

# The real ffmpeg with the plug-in on Tests/Fixtures/video/toyclip: frame count, size, edit, flicker, bad params.
test-frei0r: frei0r
	$(PYTHON) examples/ffmpeg/check_frei0r.py --plugin-dir $(FREI0R_DIR) --model $(CABI_MODEL) \
	  $(if $(wildcard $(CABI_CONTROLNET)/cn_b.safetensors),--controlnet $(CABI_CONTROLNET)/cn_b.safetensors,)

# The C ABI tests with ASan + UBSan in the test programs (a buffer the test hands the library that is too small,
# a use after diff_edit_*_free, undefined behaviour in the callbacks). Leak checking stays with valgrind-cabi:
# the statically linked Swift runtime keeps its caches.
ASAN_CFLAGS := -std=c99 -Wall -Wextra -Werror -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer
ASAN_ENV    := ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
$(TESTBIN)/asan/%: Tests/CABI/%.c stage
	@mkdir -p $(TESTBIN)/asan
	$(CC) $(ASAN_CFLAGS) $$($(STAGE_PC) --cflags diffedit) $< -o $@ $$($(STAGE_PC) --libs diffedit) -lpthread \
	  -Wl,-rpath,$(STAGE)/lib

test-cabi-asan: $(TESTBIN)/asan/test_cabi $(TESTBIN)/asan/test_stream
	$(ASAN_ENV) $(TESTBIN)/asan/test_cabi $(CABI_ARGS)
	$(ASAN_ENV) $(TESTBIN)/asan/test_stream $(CABI_MODEL)

FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh run $(FUZZ_SECONDS)

fuzz-ci:
	FUZZ_SWIFT_OPT=-Onone scripts/fuzz.sh run 5

valgrind-cabi: $(TESTBIN)/test_cabi $(TESTBIN)/test_stream
	$(VALGRIND) $(VALGRIND_FLAGS) $(TESTBIN)/test_cabi --valgrind $(CABI_ARGS)
	$(VALGRIND) $(VALGRIND_FLAGS) $(TESTBIN)/test_stream --valgrind $(CABI_MODEL)

swift-test:
	$(SWIFT) test --scratch-path $(SCRATCH)-test $(SWIFT_JOBS)

test: swift-test test-cabi test-opcheck check-symbols

# Everything CI runs (needs the packages of scripts/install_deps.sh): the core tests, the Python binding,
# FFmpeg with the frei0r plug-in, GIMP and Krita headless (recolour checks required: the toy model ships).
test-all: test test-cuda-emu test-python test-frei0r test-cabi-asan fuzz-ci test-install
	DIFFEDIT_REQUIRE_TOY_MODEL=1 $(MAKE) test-hosts

# ---------------------------------------------------------------------------------------------------
# Benchmarks, quality, CUDA
# ---------------------------------------------------------------------------------------------------
# Both sides write/read the same results file, so bench_torch.py prints the ratio of the same run.
# With torch + diffusers (the default here): tools/make_bench_model.py writes a random-weight SD 1.5 fp16 folder
# once (BENCH_MODEL, ~2 GB), then for each weights dtype (BENCH_DTYPES; one process each, so each peak RSS is its
# own) diffedit times the UNet at 64x64 latents (batch 2) and whole generates at BENCH_GENERATE px (BENCH_STEPS
# DDIM steps, CFG 7.5), PyTorch does the same in fp32 and bf16 autocast, and a table puts them side by side.
# Without torch: the UNet alone with random weights made in memory, per weights dtype.
# BENCH_ARGS (e.g. --repeat 2) go to every run. A BENCH_DTYPES entry DTYPE:COMPUTE sets --compute (f32, bf16, i16, or
# auto, the default: bf16 terms on AMX CPUs, cpu_bf16.c); the column is "diffedit DTYPE+auto-bf16" (or +bf16) when
# bf16 compute ran, "diffedit DTYPE+i16" when the VNNI kernel did (cpu_i16.c), "diffedit DTYPE" when the GEMMs
# stayed f32.
BENCH_RESULTS  := $(CURDIR)/$(BUILD)/bench-results.txt
BENCH_MODEL    ?= $(BUILD)/bench-sd15-fp16
BENCH_DTYPES   ?= auto auto:f32 auto:bf16 auto:i16 f32 bf16 q8_0
BENCH_SIZES    ?= 64
BENCH_GENERATE ?= 256,512
BENCH_STEPS    ?= 10
# per row, one more process per size here: load + one whole generate, nothing else (its peak RSS is the issue's
# "whole generate" measure: the main run's peak also covers the UNet timing); BENCH_RSS_SIZES= skips them
BENCH_RSS_SIZES ?= 512
bench: cli
	@rm -f $(BENCH_RESULTS)
	@if $(PYTHON) -c 'import torch, diffusers' >/dev/null 2>&1; then \
	  [ -f $(BENCH_MODEL)/model_index.json ] || $(PYTHON) tools/make_bench_model.py $(BENCH_MODEL) || exit 1; \
	  for e in $(BENCH_DTYPES); do d=$${e%%:*}; c=auto; case $$e in *:*) c=$${e#*:};; esac; \
	    $(BINDIR)/diffedit bench --model $(BENCH_MODEL) --weights-dtype $$d --compute $$c --sizes $(BENCH_SIZES) --generate $(BENCH_GENERATE) \
	      --steps $(BENCH_STEPS) --results $(BENCH_RESULTS) --append $(BENCH_ARGS) || exit 1; \
	    for s in $(BENCH_RSS_SIZES); do \
	      $(BINDIR)/diffedit bench --model $(BENCH_MODEL) --weights-dtype $$d --compute $$c --sizes none --no-warmup --generate $$s \
	        --steps $(BENCH_STEPS) --results $(BENCH_RESULTS) --append || exit 1; \
	    done; \
	  done; \
	  for m in fp32 bf16; do \
	    $(PYTHON) scripts/bench_torch.py --model $(BENCH_MODEL) --mode $$m --sizes $(BENCH_SIZES) --generate $(BENCH_GENERATE) \
	      --steps $(BENCH_STEPS) --swift-results $(BENCH_RESULTS) --append-results $(BENCH_ARGS) || exit 1; \
	  done; \
	  $(PYTHON) scripts/bench_torch.py --table --swift-results $(BENCH_RESULTS); \
	else \
	  echo "bench: torch/diffusers not importable: UNet with random weights made in memory, no PyTorch reference"; \
	  for e in $(BENCH_DTYPES); do d=$${e%%:*}; c=auto; case $$e in *:*) c=$${e#*:};; esac; \
	    $(BINDIR)/diffedit bench --weights-dtype $$d --compute $$c --sizes $(BENCH_SIZES) --results $(BENCH_RESULTS) --append $(BENCH_ARGS) || exit 1; \
	  done; \
	fi

# SDXL at full size (issue 20): tools/bench_sdxl.py writes a random-weight fp16 SDXL base folder once
# (BENCH_SDXL_MODEL, ~7 GB), then times whole-process `diffedit generate` per weights dtype (s/step from the
# progress bar, peak RSS from /usr/bin/time -v) beside diffusers' StableDiffusionXLPipeline fp32 / bf16.
BENCH_SDXL_MODEL ?= $(BUILD)/bench-sdxl-fp16
bench-sdxl: cli
	$(PYTHON) tools/bench_sdxl.py --model $(BENCH_SDXL_MODEL) --diffedit $(BINDIR)/diffedit $(BENCH_SDXL_ARGS)

# Seconds per edit for each method on the full SD 1.5 architecture (random weights), beside the same
# algorithms in PyTorch (tools/p2p_reference.py --bench), with the ratio. The papers' setting is the
# default (512 px, 50 and 20 steps: long on a 2-core CPU); e.g. make bench-edit EDIT_SIZE=256 EDIT_STEPS=20.
EDIT_METHODS ?= sdedit,sdedit_cn,ddim,p2p,instruct
EDIT_SIZE    ?= 512
EDIT_STEPS   ?= 50,20
bench-edit: cli
	$(BINDIR)/diffedit edit --bench $(EDIT_METHODS) --bench-size $(EDIT_SIZE) --steps $(EDIT_STEPS) | tee $(BUILD)/bench-edit.txt
	@if $(PYTHON) -c 'import torch, diffusers' >/dev/null 2>&1; then \
	  $(PYTHON) tools/p2p_reference.py --bench $(EDIT_METHODS) --size $(EDIT_SIZE) --steps $(EDIT_STEPS) --swift-results $(BUILD)/bench-edit.txt; \
	else echo "bench-edit: torch/diffusers not importable: no PyTorch reference"; fi

# QUALITY_ARGS (e.g. --cases 50 --types recolor) go to tools/quality.py.
quality: cli
	@if [ -f tools/quality.py ]; then $(PYTHON) tools/quality.py --cli $(CURDIR)/$(BINDIR)/diffedit $(QUALITY_ARGS); \
	else echo "quality: tools/quality.py is missing (it comes with the toy model): nothing to score"; fi

# The README's before/after pictures (docs/images/before_after.png), made by the CLI with the default model.
pictures: cli
	$(PYTHON) tools/readme_pictures.py --cli $(CURDIR)/$(BINDIR)/diffedit

cuda:
	CUDA_WERROR=$(CUDA_WERROR) CUDA_OPTIONAL=$(CUDA_OPTIONAL) PYTHON=$(PYTHON) scripts/build_cuda.sh

clean:
	rm -rf $(BUILD)
	$(SWIFT) package clean --scratch-path $(SCRATCH) 2>/dev/null || true

# ---------------------------------------------------------------------------------------------------
# Host plug-ins and the Python binding (examples/gimp, examples/krita, python/, Tests/hosts)
#   make gimp           build/gimp/diffedit: the GIMP 2.10 plug-in (libgimp2.0-dev), rpath HOST_LIBDIR
#   make install-gimp   into GIMP_PLUGIN_DIR (default: the user's ~/.config/GIMP/2.10/plug-ins/diffedit)
#   make krita          build/krita/: the Krita plug-in + binding (copy into ~/.local/share/krita/pykrita/)
#   make test-python    pytest python/tests (the ctypes binding; python3-pytest)
#   make test-hosts     Tests/hosts/test_gimp.sh + test_krita.sh in real GIMP/Krita, headless
# HOST_LIBDIR: the libdiffedit the plug-ins and tests use (default: build/stage, made by `make stage`;
# e.g. HOST_LIBDIR=/usr/local/lib after make install).
# ---------------------------------------------------------------------------------------------------
GIMP_PLUGIN_DIR ?= $(HOME)/.config/GIMP/2.10/plug-ins/diffedit
HOST_LIBDIR     ?= $(STAGE)/lib
HOST_DEPS       := $(if $(filter $(STAGE)/lib,$(HOST_LIBDIR)),stage,)
HOST_PC         := PKG_CONFIG_PATH=$(HOST_LIBDIR)/pkgconfig pkg-config

.PHONY: gimp install-gimp krita test-python test-hosts bench-sdxl

gimp: $(HOST_DEPS)
	@mkdir -p $(BUILD)/gimp
	$(CC) -std=gnu99 -O2 -Wall -Wextra -Werror -Wno-deprecated-declarations \
	  $$($(HOST_PC) --cflags gimpui-2.0 gimp-2.0 diffedit) examples/gimp/diffedit_gimp.c -o $(BUILD)/gimp/diffedit \
	  $$($(HOST_PC) --libs gimpui-2.0 gimp-2.0 diffedit) -Wl,-rpath,$(HOST_LIBDIR)

install-gimp: gimp
	install -d "$(DESTDIR)$(GIMP_PLUGIN_DIR)"
	install -m 755 $(BUILD)/gimp/diffedit "$(DESTDIR)$(GIMP_PLUGIN_DIR)/diffedit"

krita: $(HOST_DEPS)
	examples/krita/bundle.sh $(BUILD)/krita $(HOST_LIBDIR)/$(LIBSO)

test-python: $(HOST_DEPS)
	DIFFEDIT_LIBRARY=$(HOST_LIBDIR)/$(LIBSO) $(PYTHON) -m pytest -q python/tests

test-hosts: gimp krita
	@st=0; Tests/hosts/test_gimp.sh $(BUILD)/gimp/diffedit || st=1; \
	  KRITA_PLUGIN_DIR=$(CURDIR)/$(BUILD)/krita Tests/hosts/test_krita.sh || st=1; exit $$st
