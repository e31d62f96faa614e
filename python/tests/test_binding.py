"""pytest for python/diffedit.py: every function of diffedit.h through the binding, and every error
surfacing as a Python exception that carries the library's diff_edit_last_error message and status.

Run: make test-python   (or: DIFFEDIT_LIBRARY=build/lib/libdiffedit.so.0 python3 -m pytest python/tests)
Model: $DIFFEDIT_TEST_MODEL, default Tests/Fixtures/sd1 (tiny random-weight SD1 fixture: edits are
noise, so these tests check plumbing, masks, alpha, determinism and errors — not edit quality).
"""
import array
import ctypes
import json
import math
import os
import sys
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))

import diffedit as d  # noqa: E402

try:
    import numpy as np
except ImportError:  # the binding works without numpy; the numpy tests are then skipped
    np = None

MODEL = os.environ.get("DIFFEDIT_TEST_MODEL", os.path.join(ROOT, "Tests", "Fixtures", "sd1"))
needs_numpy = pytest.mark.skipif(np is None, reason="numpy not installed")


@pytest.fixture(scope="module")
def model():
    m = d.Model(MODEL, backend="cpu")
    yield m
    m.free()


@pytest.fixture()
def ctx(model):
    c = model.context()
    yield c
    c.free()


def rgb(w=16, h=12, seed=1):
    """A deterministic tightly-packed RGB8 image as a bytearray."""
    return bytearray(((x * 7 + y * 13 + c * 50 + seed) % 256) for y in range(h) for x in range(w) for c in range(3))


def expect(exc_type, status, *needles):
    """Context manager: the call raises exc_type with .status == status and a message containing
    every needle; the message is also the one diff_edit_last_error reports."""
    return _Expect(exc_type, status, needles)


class _Expect:
    def __init__(self, t, s, needles):
        self.t, self.s, self.needles = t, s, needles

    def __enter__(self):
        self.cm = pytest.raises(self.t)
        self.info = self.cm.__enter__()
        return self.info

    def __exit__(self, *exc):
        r = self.cm.__exit__(*exc)
        e = self.info.value
        assert isinstance(e, d.DiffEditError)
        assert e.status == self.s
        assert e.message, "empty error message"
        for n in self.needles:
            assert n in e.message, f"{n!r} not in {e.message!r}"
        assert e.message in str(e)
        return r


# ------------------------------------------------------------------------------------------------
# Versions, enums, defaults, library lookup
# ------------------------------------------------------------------------------------------------

def test_versions():
    assert d.abi_version() == d.ABI_VERSION == 1
    v = d.version()
    assert isinstance(v, str) and v.count(".") == 2 and all(p.isdigit() for p in v.split("."))


def test_status_strings():
    names = {s: d.status_string(s) for s in d.Status}
    assert names[d.Status.OK] and names[d.Status.ERR_INVALID_ARGUMENT] == "invalid argument"
    assert names[d.Status.ERR_BUSY] == "busy"
    assert len(set(names.values())) == len(names)
    assert d.status_string(12345) == "unknown status"


def test_enum_values_match_header():
    header = open(os.path.join(ROOT, "include", "diffedit.h")).read()
    for prefix, enum_cls in (("DIFF_EDIT_", d.Status), ("DIFF_EDIT_", d.PixelFormat),
                             ("DIFF_EDIT_METHOD_", d.Method)):
        for member in enum_cls:
            needle = f"{prefix}{member.name} = {int(member)}"
            assert needle in header, needle


def test_every_header_function_is_declared():
    """Every DIFF_EDIT_API function of include/diffedit.h has its argtypes declared by the binding."""
    import re
    header = open(os.path.join(ROOT, "include", "diffedit.h")).read()
    names = set(re.findall(r"DIFF_EDIT_API[^;(]*?\b(diff_edit_\w+)\s*\(", header))
    assert len(names) >= 18, names
    L = d.lib()
    missing = sorted(n for n in names if getattr(L, n).argtypes is None)
    assert not missing, f"not wrapped: {missing}"
    # and the Python API reaches each of them
    src = open(d.__file__).read()
    unused = sorted(n for n in names if not re.search(r"(?:\bL|lib\(\))\.%s\(" % n, src))
    assert not unused, f"declared but never called by the binding: {unused}"


def test_defaults_and_struct_sizes():
    mp = d.model_params_default()
    assert mp.struct_size == ctypes.sizeof(d.ModelParams)  # our layout has the C size
    assert mp.path is None and mp.backend == b"auto" and mp.device == 0 and mp.n_threads == 0
    assert mp.max_memory == 0 and mp.weights_dtype is None
    p = d.params_default()
    assert p.struct_size == ctypes.sizeof(d.Params)
    assert p.method == d.Method.AUTO and p.prompt == b"" and p.source_prompt is None
    assert (p.guidance, p.image_guidance, p.strength, p.steps, p.seed) == (0, 0, 0, 0, 0)
    assert not p.mask and not p.mask_out and not p.progress
    # NULL is ignored (no crash)
    d.lib().diff_edit_params_default(None)
    d.lib().diff_edit_model_params_default(None)


def test_find_library_order(monkeypatch):
    monkeypatch.setenv("DIFFEDIT_LIBRARY", "/some/where/libdiffedit.so.0")
    assert d.find_library() == "/some/where/libdiffedit.so.0"
    assert d.find_library("/explicit.so") == "/explicit.so"
    monkeypatch.delenv("DIFFEDIT_LIBRARY")
    assert os.path.basename(d.find_library()).startswith("libdiffedit.so")


def test_last_error_thread_and_context(model):
    with pytest.raises(d.DiffEditIOError):
        d.Model("/nonexistent/model/dir")
    assert "/nonexistent/model/dir" in d.last_error()
    # per thread: another thread has its own (different) last error
    seen = []
    t = threading.Thread(target=lambda: seen.append(d.last_error()))
    t.start(); t.join()
    assert seen and "/nonexistent/model/dir" not in seen[0]
    c = model.context()
    assert c.last_error() == "" and d.last_error(c) == ""
    with pytest.raises(d.InvalidArgumentError):
        c.edit_image(rgb(), "x", width=16, height=12, format=d.PixelFormat.RGB8, strength=math.nan)
    assert "strength" in c.last_error() and d.last_error(c) == c.last_error()
    c.free()
    assert c.last_error() == ""


# ------------------------------------------------------------------------------------------------
# Models and contexts
# ------------------------------------------------------------------------------------------------

def test_model_load_log_and_free():
    lines = []
    m = d.Model(MODEL, backend="cpu", n_threads=1, log=lambda level, msg: lines.append((level, msg)))
    assert m.handle
    assert lines and all(isinstance(l, int) and isinstance(s, str) for l, s in lines)
    c = m.context()
    m.free()
    m.free()  # idempotent
    assert m.handle is None
    # the context keeps the weights alive
    out = c.edit_image(rgb(), "a red circle", width=16, height=12, format=d.PixelFormat.RGB8, steps=2)
    assert len(out) == 16 * 12 * 3
    c.free()
    c.free()
    assert c.handle is None


def test_model_load_errors(tmp_path):
    with expect(d.DiffEditIOError, d.Status.ERR_IO, "/nonexistent/model"):
        d.Model("/nonexistent/model")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model_index.json").write_text("{not json")
    with expect(d.ModelError, d.Status.ERR_MODEL, "model_index.json"):
        d.Model(str(bad))
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "backend"):
        d.Model(MODEL, backend="quantum")
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "n_threads"):
        d.Model(MODEL, n_threads=-1)
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "device"):
        d.Model(MODEL, device=-2)
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "weights_dtype"):
        d.Model(MODEL, weights_dtype="fp8")
    d.Model(MODEL, weights_dtype="q8_0")   # loads
    # the weights' estimated size above max_memory: refused before any tensor is read (issue 21)
    with expect(d.OutOfMemoryError, d.Status.ERR_OUT_OF_MEMORY, "max_memory, 1000 bytes"):
        d.Model(MODEL, backend="cpu", max_memory=1000)
    d.Model(MODEL, backend="cpu", max_memory=1 << 30).free()


def test_model_load_cuda_unusable_or_works():
    try:
        m = d.Model(MODEL, backend="cuda")
    except d.BackendError as e:
        assert e.status == d.Status.ERR_BACKEND and "cuda" in e.message.lower()
    else:
        m.free()


def test_model_params_struct_size_rules():
    L = d.lib()
    out = ctypes.c_void_p(1)
    mp = d.model_params_default()
    mp.path = MODEL.encode()
    mp.struct_size = 0
    assert L.diff_edit_model_load(ctypes.byref(mp), ctypes.byref(out)) == d.Status.ERR_INVALID_ARGUMENT
    assert out.value is None and "struct_size" in d.last_error()

    class Bigger(ctypes.Structure):
        _fields_ = [("p", d.ModelParams), ("extra", ctypes.c_uint64)]
    big = Bigger()
    big.p = d.model_params_default()
    big.p.path = MODEL.encode()
    big.p.backend = b"cpu"
    big.p.struct_size = ctypes.sizeof(Bigger)
    big.extra = 7
    st = L.diff_edit_model_load(ctypes.cast(ctypes.byref(big), ctypes.POINTER(d.ModelParams)), ctypes.byref(out))
    assert st == d.Status.ERR_UNSUPPORTED and "struct_size" in d.last_error()
    big.extra = 0  # an all-zero unknown tail is accepted
    st = L.diff_edit_model_load(ctypes.cast(ctypes.byref(big), ctypes.POINTER(d.ModelParams)), ctypes.byref(out))
    assert st == d.Status.OK and out.value
    L.diff_edit_model_free(out)
    # the binding raises with the message when given such params
    mp.struct_size = 0
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "struct_size"):
        d.Model(params=mp)


def test_null_arguments_raw():
    L = d.lib()
    out = ctypes.c_void_p()
    assert L.diff_edit_model_load(None, ctypes.byref(out)) == d.Status.ERR_INVALID_ARGUMENT
    assert d.last_error()
    assert L.diff_edit_ctx_create(None, ctypes.byref(out)) == d.Status.ERR_INVALID_ARGUMENT
    assert "model" in d.last_error()
    assert L.diff_edit_image(None, None, None, None) == d.Status.ERR_INVALID_ARGUMENT
    assert "ctx" in d.last_error()
    assert L.diff_edit_video(None, None, None, 0, None) == d.Status.ERR_INVALID_ARGUMENT
    L.diff_edit_cancel(None)
    L.diff_edit_ctx_free(None)
    L.diff_edit_model_free(None)
    assert L.diff_edit_last_error(None) is not None


def test_context_on_freed_model():
    m = d.Model(MODEL, backend="cpu")
    m.free()
    with pytest.raises(d.InvalidArgumentError):
        m.context()


# ------------------------------------------------------------------------------------------------
# diff_edit_image: buffers of every kind
# ------------------------------------------------------------------------------------------------

def test_edit_bytes_bytearray_memoryview_array(ctx):
    img = rgb()
    ref = ctx.edit_image(bytes(img), "a blue square", width=16, height=12, format=d.PixelFormat.RGB8,
                         steps=3, seed=5)
    assert isinstance(ref, bytearray) and len(ref) == len(img)
    for src in (img, memoryview(img), array.array("B", img)):
        out = ctx.edit_image(src, "a blue square", width=16, height=12, format=d.PixelFormat.RGB8,
                             steps=3, seed=5)
        assert out == ref  # same seed, same input: bit-identical
    other = ctx.edit_image(img, "a blue square", width=16, height=12, format=d.PixelFormat.RGB8,
                           steps=3, seed=6)
    assert other != ref


def test_edit_padded_stride_and_output_in_place(ctx):
    w, h, stride = 10, 6, 40
    buf = bytearray(b"\xab" * (stride * h))
    for y in range(h):
        buf[y * stride:y * stride + w * 3] = bytes((x + y) % 256 for x in range(w * 3))
    out = bytearray(b"\xcd" * (stride * h))
    r = ctx.edit_image(buf, "x", width=w, height=h, format=d.PixelFormat.RGB8, stride=stride, steps=2,
                       output=out, output_format=d.PixelFormat.RGB8, output_stride=stride)
    assert r is out
    # the stride padding of the output is never written
    for y in range(h):
        assert out[y * stride + w * 3:(y + 1) * stride] == b"\xcd" * (stride - w * 3)


def test_edit_output_formats_gray(ctx):
    img = rgb()
    gray = ctx.edit_image(img, "x", width=16, height=12, format=d.PixelFormat.RGB8,
                          output_format=d.PixelFormat.GRAY8, steps=2)
    assert len(gray) == 16 * 12
    bgr = ctx.edit_image(img, "x", width=16, height=12, format=d.PixelFormat.BGR8, steps=2)
    assert len(bgr) == 16 * 12 * 3


@needs_numpy
def test_edit_numpy_rgba_alpha_and_mask(ctx):
    h, w = 24, 20
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[4:16, 6:14] = 255
    out, used = ctx.edit_image(img, "a green triangle", mask=mask, steps=3, seed=2, want_mask=True)
    assert isinstance(out, np.ndarray) and out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out[..., 3], img[..., 3])            # alpha passes through
    keep = mask == 0
    assert np.array_equal(out[keep], img[keep])                 # outside the mask: unchanged
    assert (out[~keep][:, :3] != img[~keep][:, :3]).any()       # inside: edited
    assert used.shape == (h, w) and used.dtype == np.uint8
    # the mask the method used: full inside the selection (its edge may be softened), empty away from it
    assert used[5:15, 7:13].min() == 255 and used[mask == 0].max() < 128
    assert used[:3].max() == 0 and used[18:].max() == 0 and used[:, 16:].max() == 0


@needs_numpy
def test_edit_numpy_non_contiguous_and_gray(ctx):
    img = np.ascontiguousarray(np.arange(32 * 32 * 3, dtype=np.uint32).reshape(32, 32, 3) % 251).astype(np.uint8)
    view = img[::2, ::2]  # not contiguous: copied
    out = ctx.edit_image(view, "x", steps=2)
    assert out.shape == (16, 16, 3)
    g = np.full((16, 16), 128, np.uint8)
    og = ctx.edit_image(g, "x", steps=2)
    assert og.shape == (16, 16)


# ------------------------------------------------------------------------------------------------
# diff_edit_image: errors
# ------------------------------------------------------------------------------------------------

IMG_KW = dict(width=16, height=12, format=d.PixelFormat.RGB8)


@pytest.mark.parametrize("kw,exc,status,needle", [
    (dict(strength=math.nan), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "strength"),
    (dict(strength=1.5), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "strength"),
    (dict(guidance=-1.0), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "guidance"),
    (dict(guidance=math.inf), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "guidance"),
    (dict(image_guidance=1000.0), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "image_guidance"),
    (dict(steps=5000), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "steps"),
    (dict(method=99), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "method"),
    (dict(method="p2p"), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "source_prompt"),
    (dict(method=d.Method.DDIM), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "source_prompt"),
    (dict(method="instruct"), d.UnsupportedError, d.Status.ERR_UNSUPPORTED, "instruct"),
    (dict(prompt=b"\xff\xfe"), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "prompt"),
    (dict(source_prompt=b"\xc3", method="p2p"), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT,
     "source_prompt"),
    (dict(stride=5), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "stride"),
    (dict(format=99), d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "format"),
])
def test_edit_errors(ctx, kw, exc, status, needle):
    args = dict(IMG_KW, prompt="a red circle", steps=2)
    args.update(kw)
    prompt = args.pop("prompt")
    with expect(exc, status, needle) as info:
        ctx.edit_image(rgb(), prompt, **args)
    assert ctx.last_error() == info.value.message
    # the context stays usable
    assert len(ctx.edit_image(rgb(), "x", steps=2, **IMG_KW)) == 16 * 12 * 3


def test_edit_error_sizes(ctx):
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "width"):
        ctx.edit_image(bytearray(3), "x", width=0, height=1, format=d.PixelFormat.RGB8)
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "mask"):
        _raw_mask_mismatch(ctx)
    # binding-side checks name the buffer
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "needs"):
        ctx.edit_image(bytearray(10), "x", **IMG_KW)
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "method"):
        ctx.edit_image(rgb(), "x", method="bogus", **IMG_KW)
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "read-only"):
        ctx.edit_image(rgb(), "x", output=bytes(16 * 12 * 3), **IMG_KW)


def _raw_mask_mismatch(ctx):
    # a 2-D (shaped) mask keeps its own size, so the library reports the mismatch
    mask = memoryview(bytearray(4 * 4)).cast("B", (4, 4))
    return ctx.edit_image(rgb(), "x", mask=mask, steps=1, **IMG_KW)


def test_edit_raw_output_size_and_struct_size(ctx):
    L = d.lib()
    src = (ctypes.c_ubyte * (16 * 12 * 3))(*rgb())
    dst = (ctypes.c_ubyte * (8 * 8 * 3))()
    bin_ = d.Buffer(16, 12, 48, d.PixelFormat.RGB8, ctypes.addressof(src))
    bout = d.Buffer(8, 8, 24, d.PixelFormat.RGB8, ctypes.addressof(dst))
    p = d.params_default()
    st = L.diff_edit_image(ctx.handle, ctypes.byref(p), ctypes.byref(bin_), ctypes.byref(bout))
    assert st == d.Status.ERR_INVALID_ARGUMENT and "output" in ctx.last_error()
    bout = d.Buffer(16, 12, 48, d.PixelFormat.RGB8, None)
    st = L.diff_edit_image(ctx.handle, ctypes.byref(p), ctypes.byref(bin_), ctypes.byref(bout))
    assert st == d.Status.ERR_INVALID_ARGUMENT and "data" in ctx.last_error()
    p.struct_size = 0
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "struct_size"):
        ctx.edit_image(rgb(), None, params=p, **IMG_KW)
    p = d.params_default()
    p.prompt = None
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "prompt"):
        ctx.edit_image(rgb(), None, params=p, **IMG_KW)


def test_edit_on_freed_context(model):
    c = model.context()
    c.free()
    with pytest.raises(d.InvalidArgumentError):
        c.edit_image(rgb(), "x", **IMG_KW)


# ------------------------------------------------------------------------------------------------
# Progress, cancel, busy
# ------------------------------------------------------------------------------------------------

def test_progress_reports_steps(ctx):
    calls = []
    ctx.edit_image(rgb(), "x", steps=4, strength=1.0, method="sdedit",
                   progress=lambda s, n, f, fs: calls.append((s, n, f, fs)), **IMG_KW)
    assert calls and [c[0] for c in calls] == list(range(1, len(calls) + 1))
    assert all(c[1] == len(calls) and c[2] == 0 and c[3] == 1 for c in calls)


def test_cancel_from_progress(ctx):
    with expect(d.CancelledError, d.Status.CANCELLED, "cancel"):
        ctx.edit_image(rgb(), "x", steps=4, progress=lambda *a: False, **IMG_KW)
    # cancel via the API from inside the callback
    with expect(d.CancelledError, d.Status.CANCELLED):
        ctx.edit_image(rgb(), "x", steps=4, progress=lambda *a: ctx.cancel(), **IMG_KW)
    # usable afterwards, and a cancel with no call running does nothing
    ctx.cancel()
    assert len(ctx.edit_image(rgb(), "x", steps=2, **IMG_KW)) == 16 * 12 * 3


def test_exception_in_progress_cancels_and_propagates(ctx):
    def boom(*a):
        raise KeyError("from the callback")
    with pytest.raises(KeyError, match="from the callback"):
        ctx.edit_image(rgb(), "x", steps=3, progress=boom, **IMG_KW)
    assert len(ctx.edit_image(rgb(), "x", steps=2, **IMG_KW)) == 16 * 12 * 3


def test_cancel_from_other_thread_and_busy(ctx):
    started, release = threading.Event(), threading.Event()
    result = {}

    def slow_progress(*a):
        started.set()
        release.wait(10)
        return True

    def worker():
        try:
            ctx.edit_image(rgb(), "x", steps=6, strength=1.0, method="sdedit", progress=slow_progress, **IMG_KW)
            result["status"] = d.Status.OK
        except d.DiffEditError as e:
            result["status"] = e.status
            result["message"] = e.message

    t = threading.Thread(target=worker)
    t.start()
    assert started.wait(20)
    # a second call on the busy context fails at once with BUSY and its message
    with expect(d.BusyError, d.Status.ERR_BUSY):
        ctx.edit_image(rgb(), "x", steps=1, **IMG_KW)
    ctx.cancel()
    release.set()
    t.join(30)
    assert result["status"] == d.Status.CANCELLED and "cancel" in result["message"]
    assert len(ctx.edit_image(rgb(), "x", steps=2, **IMG_KW)) == 16 * 12 * 3


def test_two_contexts_in_parallel(model):
    outs = {}

    def run(i):
        with model.context() as c:
            outs[i] = c.edit_image(rgb(), "a yellow star", steps=2, seed=9, **IMG_KW)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    [t.start() for t in ts]
    [t.join(60) for t in ts]
    assert outs[0] == outs[1]


# ------------------------------------------------------------------------------------------------
# diff_edit_video
# ------------------------------------------------------------------------------------------------

def test_edit_video(ctx):
    frames = [rgb(seed=1), rgb(seed=2), rgb(seed=3)]
    seen = []
    outs = ctx.edit_video(frames, "a red circle", steps=2, seed=4,
                          progress=lambda s, n, f, fs: seen.append((f, fs)), **IMG_KW)
    assert len(outs) == 3 and all(len(o) == 16 * 12 * 3 for o in outs)
    assert seen and all(0 <= f < 3 and fs == 3 for f, fs in seen)
    assert outs != [frames[0], frames[1], frames[2]]
    again = ctx.edit_video(frames, "a red circle", steps=2, seed=4, **IMG_KW)
    assert again == outs  # deterministic
    # with a mask: frame by frame with diff_edit_image semantics and one seed (header)
    mask = bytearray(16 * 12)
    for y in range(3, 9):
        for x in range(4, 12):
            mask[y * 16 + x] = 255
    masked = ctx.edit_video(frames, "a red circle", steps=2, seed=4, mask=mask, **IMG_KW)
    one = ctx.edit_image(frames[1], "a red circle", steps=2, seed=4, mask=mask, **IMG_KW)
    assert masked[1] == one


def test_stream(ctx):
    frames = [rgb(seed=i) for i in range(5)]
    reference = ctx.edit_video(frames, "a red circle", steps=2, seed=4, **IMG_KW)
    # pull before any stream: an error with the library's message
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT):
        ctx.stream_pull()
    ctx.stream_set_lookahead(3)
    calls = []
    ctx.stream_begin("a red circle", 16, 12, d.PixelFormat.RGB8, steps=2, seed=4,
                     progress=lambda *a: calls.append(a))
    assert ctx.stream_pull() is None  # AGAIN before the first push
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT):
        ctx.stream_begin("x", 16, 12, d.PixelFormat.RGB8)  # a stream is already open
    assert d.lib().diff_edit_stream_push(ctx.handle, None) == d.Status.ERR_INVALID_ARGUMENT  # NULL frame
    assert "frame" in ctx.last_error() or "frame" in d.last_error()
    got = []
    for f in frames:
        ctx.stream_push(f)
        while (o := ctx.stream_pull()) is not None:
            got.append(o)
    ctx.stream_end()
    while True:
        try:
            o = ctx.stream_pull()
        except d.InvalidArgumentError as e:  # ended and drained: the stream is closed
            assert e.message
            break
        if o is None:
            break
        got.append(o)
    assert len(got) == 5 and calls
    assert got == reference  # streaming with the default lookahead = diff_edit_video


def test_stream_errors(ctx):
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT):
        ctx.stream_set_lookahead(d.MAX_LOOKAHEAD + 1)
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT):
        ctx.stream_push(rgb(), stride=48)  # no stream begun
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT):
        ctx.stream_end()  # no stream
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT):
        ctx.stream_begin("x", 0, 12, d.PixelFormat.RGB8)
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT):
        ctx.stream_begin("x", 16, 12, d.PixelFormat.GRAY8)
    p = d.params_default()
    mask = (ctypes.c_ubyte * (16 * 12))()
    mb = d.Buffer(16, 12, 16, d.PixelFormat.GRAY8, ctypes.addressof(mask))
    p.mask = ctypes.pointer(mb)
    with expect(d.UnsupportedError, d.Status.ERR_UNSUPPORTED):
        ctx.stream_begin(None, 16, 12, d.PixelFormat.RGB8, params=p)
    ctx.stream_set_lookahead(0)
    ctx.stream_begin("x", 16, 12, d.PixelFormat.RGB8, steps=2)
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT):
        ctx.stream_push(bytearray(8 * 8 * 3), stride=24)  # another size
    ctx.stream_end()
    # a cancel during a push breaks the stream; ending it closes it; the context stays usable
    ctx.stream_begin("x", 16, 12, d.PixelFormat.RGB8, steps=3, progress=lambda *a: False)
    with expect(d.CancelledError, d.Status.CANCELLED):
        ctx.stream_push(rgb())
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT):
        ctx.stream_push(rgb())  # a broken stream
    ctx.stream_end()
    assert len(ctx.edit_image(rgb(), "x", steps=2, **IMG_KW)) == 16 * 12 * 3


@needs_numpy
def test_edit_video_errors(ctx):
    a = np.zeros((12, 16, 3), np.uint8)
    b = np.zeros((8, 8, 3), np.uint8)
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "frames_in[1]"):
        ctx.edit_video([a, b], "x", steps=1)
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "n_frames"):
        ctx.edit_video([], "x")
    with expect(d.CancelledError, d.Status.CANCELLED):
        ctx.edit_video([a, a], "x", steps=2, progress=lambda *x: False)


def test_works_without_numpy(tmp_path):
    """The binding imports and edits with numpy unavailable (bytes in, bytearray out)."""
    import subprocess
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        f"sys.path.insert(0, {os.path.dirname(HERE)!r})\n"
        "import diffedit as d\n"
        f"m = d.Model({MODEL!r}, backend='cpu'); c = m.context()\n"
        "img = bytes(range(48)) * 16\n"
        "out = c.edit_image(img, 'x', width=16, height=16, format=d.PixelFormat.RGB8, steps=2)\n"
        "assert isinstance(out, bytearray) and len(out) == 768\n"
        "try:\n"
        "    c.edit_image(img, 'x', width=16, height=16, format=d.PixelFormat.RGB8, strength=float('nan'))\n"
        "except d.InvalidArgumentError as e:\n"
        "    print('OK', e.message)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, DIFFEDIT_LIBRARY=d.find_library()))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK params->strength is NaN"), r.stdout


def test_edit_rgba_mask_mask_out_plain_buffers(ctx):
    """Alpha, mask and mask_out with plain buffers (runs without numpy too)."""
    w, h = 20, 24
    img = bytearray(((x * 11 + y * 5 + c * 60) % 256) for y in range(h) for x in range(w) for c in range(4))
    mask = bytearray(w * h)
    for y in range(4, 16):
        for x in range(6, 14):
            mask[y * w + x] = 255
    out, used = ctx.edit_image(img, "a green triangle", width=w, height=h, format=d.PixelFormat.RGBA8,
                               mask=mask, steps=3, seed=2, want_mask=True)
    assert len(out) == w * h * 4 and len(used) == w * h
    inside_changed = 0
    for i in range(w * h):
        px_in, px_out = img[i * 4:i * 4 + 4], out[i * 4:i * 4 + 4]
        assert px_in[3] == px_out[3]              # alpha passes through
        if mask[i] == 0:
            assert px_in == px_out                # outside the mask: unchanged
        elif px_in[:3] != px_out[:3]:
            inside_changed += 1
    assert inside_changed > 0
    assert used[10 * w + 10] == 255 and used[0] == 0 and used[w * h - 1] == 0


# ------------------------------------------------------------------------------------------------
# LoRA (diff_edit_model_set_loras) with Tests/Fixtures/lora (made for the sd1 fixture model)
# ------------------------------------------------------------------------------------------------

LORA_DIR = os.path.join(ROOT, "Tests", "Fixtures", "lora")
needs_lora = pytest.mark.skipif(os.path.realpath(MODEL) != os.path.realpath(os.path.join(ROOT, "Tests", "Fixtures", "sd1")),
                                reason="the LoRA fixtures are made for Tests/Fixtures/sd1")


@needs_lora
def test_set_loras_image_video_and_errors():
    m = d.Model(MODEL, backend="cpu")
    c = m.context()
    try:
        img = rgb(seed=9)
        kw = dict(steps=2, seed=3, **IMG_KW)
        base = c.edit_image(img, "a red circle", **kw)
        kohya = os.path.join(LORA_DIR, "kohya.safetensors")
        # bad input: status, a message naming the file / key / tensor / field; the model stays the base one
        with expect(d.DiffEditIOError, d.Status.ERR_IO, "no_such_lora.safetensors"):
            m.set_loras([os.path.join(LORA_DIR, "no_such_lora.safetensors")])
        with expect(d.ModelError, d.Status.ERR_MODEL, "lora_unet_down_blocks_7_attentions_0_proj_in"):
            m.set_loras([os.path.join(LORA_DIR, "unknown_key.safetensors")])
        with expect(d.ModelError, d.Status.ERR_MODEL, "attn1.to_q.lora_A.weight", "[4, 32]"):
            m.set_loras([(os.path.join(LORA_DIR, "sd2_arch.safetensors"), 0.5)])
        with expect(d.UnsupportedError, d.Status.ERR_UNSUPPORTED, "hada_w1_a"):
            m.set_loras([os.path.join(LORA_DIR, "loha.safetensors")])
        for bad in (math.nan, math.inf):
            with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "loras[0].scale"):
                m.set_loras([(kohya, bad)])
        assert c.edit_image(img, "a red circle", **kw) == base
        # fused (kohya and PEFT files together), then another scale, then removed
        m.set_loras([(kohya, 0.7), os.path.join(LORA_DIR, "peft.safetensors")])
        fused = c.edit_image(img, "a red circle", **kw)
        assert fused != base
        video = c.edit_video([img, rgb(seed=10)], "a red circle", **kw)
        m.set_loras([(kohya, 0.2)])
        assert c.edit_image(img, "a red circle", **kw) not in (base, fused)
        m.set_loras([(kohya, 0.7), os.path.join(LORA_DIR, "peft.safetensors")])
        assert c.edit_image(img, "a red circle", **kw) == fused
        assert c.edit_video([img, rgb(seed=10)], "a red circle", **kw) == video
        # BUSY while a stream is open on a context of the model
        c.stream_begin("a red circle", 16, 12, d.PixelFormat.RGB8, steps=2, seed=3)
        with expect(d.BusyError, d.Status.ERR_BUSY, "stream"):
            m.set_loras([])
        c.stream_end()
        while True:
            try:
                if c.stream_pull() is None:
                    break
            except d.InvalidArgumentError:
                break
        m.set_loras([])
        assert c.edit_image(img, "a red circle", **kw) == base
        assert c.edit_video([img, rgb(seed=10)], "a red circle", **kw) != video
    finally:
        c.free()
        m.free()


def test_inpaint_checkpoint_auto_and_errors():
    """An inpainting checkpoint (9-channel UNet): Method.INPAINT / auto repaint the mask, outside it the input's
    bytes; without a mask an error that names it; another method is unsupported."""
    path = os.path.join(ROOT, "Tests", "Fixtures", "edit", "inpaint", "model")
    if not os.path.isdir(path):
        pytest.skip("no inpainting fixture")
    m = d.Model(path, backend="cpu")
    c = m.context()
    try:
        w, h = 24, 16
        img = rgb(w, h)
        mask = bytearray(w * h)
        for y in range(4, 12):
            for x in range(6, 15):
                mask[y * w + x] = 255
        kw = dict(width=w, height=h, format=d.PixelFormat.RGB8, steps=2, seed=3)
        a = c.edit_image(img, "a blue circle", method=d.Method.INPAINT, mask=mask, **kw)
        b = c.edit_image(img, "a blue circle", method="auto", mask=mask, **kw)
        assert a == b
        changed = 0
        for i in range(w * h):
            same = a[i * 3:i * 3 + 3] == img[i * 3:i * 3 + 3]
            if mask[i] == 0:
                assert same, f"pixel {i} outside the mask changed"
            else:
                changed += not same
        assert changed > 20
        with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "params->mask", "inpaint"):
            c.edit_image(img, "a blue circle", method="inpaint", **kw)
        with expect(d.UnsupportedError, d.Status.ERR_UNSUPPORTED, "DIFF_EDIT_METHOD_SDEDIT"):
            c.edit_image(img, "a blue circle", method="sdedit", mask=mask, **kw)
    finally:
        c.free()
        m.free()


# ------------------------------------------------------------------------------------------------
# ControlNet (issue 19)
# ------------------------------------------------------------------------------------------------

CN_DIR = os.path.join(ROOT, "Tests", "Fixtures", "controlnet")


def test_controlnet_edit_and_errors(model, ctx):
    w, h = 24, 16
    img = rgb(w, h, seed=5)
    kw = dict(width=w, height=h, format=d.PixelFormat.RGB8, method="sdedit", strength=0.8, steps=3, seed=7)
    plain = ctx.edit_image(img, "a blue circle", **kw)
    with model.load_controlnet(os.path.join(CN_DIR, "cn_b.safetensors")) as cn, \
            model.load_controlnet(os.path.join(CN_DIR, "cn_a")) as cn_a:
        got = ctx.edit_image(img, "a blue circle", controls=[d.Control(cn, "canny", scale=0.8),
                                                             d.Control(cn_a, image=rgb(w, h, seed=9), width=w, height=h,
                                                                       format=d.PixelFormat.RGB8, start=0.25)], **kw)
        assert got != plain
        off = ctx.edit_image(img, "a blue circle", controls=[d.Control(cn, "tile", scale=0.0)], **kw)
        assert off == plain
        with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "params->controls[0].preprocessor", "sobel"):
            ctx.edit_image(img, "a blue circle", controls=[d.Control(cn, "sobel")], **kw)
        with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "params->controls[0].scale"):
            ctx.edit_image(img, "a blue circle", controls=[d.Control(cn, "canny", scale=math.nan)], **kw)
        with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "params->controls[0].image"):
            ctx.edit_image(img, "a blue circle", controls=[d.Control(cn, image=rgb(8, 8), width=8, height=8,
                                                                     format=d.PixelFormat.RGB8)], **kw)
    with expect(d.DiffEditIOError, d.Status.ERR_IO, "nope.safetensors"):
        model.load_controlnet(os.path.join(CN_DIR, "nope.safetensors"))


def test_control_map():
    w, h = 24, 16
    img = bytearray(255 if x >= w // 2 else 0 for y in range(h) for x in range(w) for c in range(3))
    m = d.control_map("canny", img, width=w, height=h, format=d.PixelFormat.RGB8)
    assert set(m) == {0, 255} and m.count(255) > 0
    assert d.control_map("tile", img, width=w, height=h, format=d.PixelFormat.RGB8) == img
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "preprocessor"):
        d.control_map("sobel", img, width=w, height=h, format=d.PixelFormat.RGB8)


def test_provenance_and_watermark(ctx):
    """diff_edit_last_provenance: "" before any call and after a failed one; after an edit, an XMP packet
    that parses, with the exact IPTC URI and the call's values. watermark=1 marks a 256x256 output
    (read back by the library's own decoder: `diffedit info --provenance`); watermark=0 leaves it alone."""
    import xml.etree.ElementTree as ET
    assert ctx.last_provenance() == ""
    w = h = 256
    img = bytearray(((x + 2 * y + 40 * c) % 256) for y in range(h) for x in range(w) for c in range(3))
    out0 = ctx.edit_image(img, "a red cup", width=w, height=h, format=d.PixelFormat.RGB8, method="sdedit",
                          steps=2, seed=9, strength=0.5)
    packet = ctx.last_provenance()
    root = ET.fromstring(packet.split("?>", 1)[1].rsplit("<?xpacket", 1)[0])
    ns = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
          "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/", "de": "urn:diffedit:xmp:1.0:"}
    desc = root.find("rdf:RDF/rdf:Description", ns)
    assert desc.find("Iptc4xmpExt:DigitalSourceType", ns).text == \
        "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
    vals = {e.tag.split("}")[1]: e.text for e in desc}
    assert vals["Command"] == "edit" and vals["Method"] == "sdedit" and vals["Prompt"] == "a red cup"
    assert vals["Seed"] == "9" and vals["Steps"] == "2" and vals["Strength"] == "0.5"
    assert vals["Model"] == os.path.basename(MODEL.rstrip("/")) and len(vals["ModelSHA256"]) == 64
    assert vals["Watermark"] == "none"
    out1 = ctx.edit_image(img, "a red cup", width=w, height=h, format=d.PixelFormat.RGB8, method="sdedit",
                          steps=2, seed=9, strength=0.5, watermark=True)
    assert out1 != out0
    assert "dwtDctSvd" in ctx.last_provenance()
    with expect(d.InvalidArgumentError, d.Status.ERR_INVALID_ARGUMENT, "strength"):
        ctx.edit_image(img, "x", width=w, height=h, format=d.PixelFormat.RGB8, strength=2.0)
    assert ctx.last_provenance() == ""
