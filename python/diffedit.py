"""diffedit — a small ctypes binding over libdiffedit's stable C ABI (include/diffedit.h, ABI version 1).

Usable on its own: copy this one file next to libdiffedit.so.0 (or point DIFFEDIT_LIBRARY at it).
numpy is optional: images may be numpy arrays [H, W, C] / [H, W] of uint8, or any object with the
buffer protocol (bytes, bytearray, memoryview, array.array) together with width/height/format.

    import diffedit
    with diffedit.Model("") as model, model.context() as ctx:     # "" = the embedded default model
        out = ctx.edit_image(pixels, "make the circle blue", width=64, height=64,
                             format=diffedit.PixelFormat.RGB8, method="instruct")

Errors: every failing call raises DiffEditError (a subclass per status, e.g. InvalidArgumentError,
DiffEditIOError, CancelledError) whose .status is the diff_edit_status and whose .message is the
library's diff_edit_last_error text.

Library lookup order (find_library): the `path` argument, $DIFFEDIT_LIBRARY, libdiffedit.so.0 /
libdiffedit.so next to this module, two folders up (PREFIX/lib when `make install` put this file in
PREFIX/lib/python3.X/site-packages), <repo>/build/lib/ (when this file is <repo>/python/diffedit.py),
then the system loader (ldconfig paths, LD_LIBRARY_PATH).

Threads: ctypes releases the GIL during library calls, so an edit on a worker thread leaves other
Python threads (a UI) running. Callbacks run on the thread that made the call. A Context runs one
call at a time (a second concurrent call raises BusyError); Context.cancel() is safe from any thread.
"""
from __future__ import annotations

import ctypes
import enum
import math
import os
import threading
from typing import Callable, Optional, Sequence

__all__ = [
    "ABI_VERSION", "MAX_DIMENSION", "MAX_STEPS", "MAX_GUIDANCE", "MAX_LOOKAHEAD",
    "Status", "PixelFormat", "Method", "LogLevel",
    "Buffer", "ModelParams", "Params",
    "DiffEditError", "CancelledError", "InvalidArgumentError", "UnsupportedError", "OutOfMemoryError",
    "BackendError", "DiffEditIOError", "ModelError", "BusyError",
    "find_library", "load_library", "lib",
    "abi_version", "version", "status_string", "last_error",
    "model_params_default", "params_default", "Model", "Context", "make_buffer", "bytes_per_pixel",
]

ABI_VERSION = 1
MAX_DIMENSION = 16384
MAX_STEPS = 1000
MAX_GUIDANCE = 100.0
MAX_LOOKAHEAD = 15


# ------------------------------------------------------------------------------------------------
# Enums (values as in diffedit.h; never reused)
# ------------------------------------------------------------------------------------------------

class Status(enum.IntEnum):
    OK = 0
    CANCELLED = 1
    ERR_INVALID_ARGUMENT = -1
    ERR_UNSUPPORTED = -2
    ERR_OUT_OF_MEMORY = -3
    ERR_BACKEND = -4
    ERR_IO = -5
    ERR_MODEL = -6
    ERR_BUSY = -7
    AGAIN = 2  # streams: no edited frame is ready yet (not a failure)


class PixelFormat(enum.IntEnum):
    RGB8 = 0
    RGBA8 = 1
    BGR8 = 2
    BGRA8 = 3
    GRAY8 = 4


class Method(enum.IntEnum):
    AUTO = 0
    SDEDIT = 1
    DDIM = 2
    P2P = 3
    INSTRUCT = 4
    INPAINT = 5


class LogLevel(enum.IntEnum):
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


_BPP = {PixelFormat.RGB8: 3, PixelFormat.RGBA8: 4, PixelFormat.BGR8: 3, PixelFormat.BGRA8: 4,
        PixelFormat.GRAY8: 1}


def bytes_per_pixel(fmt) -> int:
    """Bytes per pixel of a PixelFormat (3, 4, 3, 4, 1)."""
    return _BPP[PixelFormat(fmt)]


def _method(m) -> int:
    """A Method from a Method, an int or a name ("auto", "sdedit", "ddim", "p2p", "instruct", "inpaint").
    Unknown ints pass through unchanged so that the library itself reports them."""
    if isinstance(m, str):
        try:
            return int(Method[m.strip().upper()])
        except KeyError:
            raise InvalidArgumentError(
                Status.ERR_INVALID_ARGUMENT,
                f"method {m!r} is not one of auto, sdedit, ddim, p2p, instruct, inpaint") from None
    return int(m)


# ------------------------------------------------------------------------------------------------
# Structs (layouts as in diffedit.h)
# ------------------------------------------------------------------------------------------------

PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32,
                               ctypes.c_uint32, ctypes.c_uint32)
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)


class Buffer(ctypes.Structure):
    """diff_edit_buffer: a caller-owned interleaved 8-bit image."""
    _fields_ = [("width", ctypes.c_uint32), ("height", ctypes.c_uint32), ("stride", ctypes.c_uint32),
                ("format", ctypes.c_int), ("data", ctypes.c_void_p)]


class ModelParams(ctypes.Structure):
    """diff_edit_model_params (extensible: struct_size first)."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("path", ctypes.c_char_p), ("backend", ctypes.c_char_p),
                ("device", ctypes.c_int32), ("n_threads", ctypes.c_int32), ("log", LOG_FN),
                ("log_user", ctypes.c_void_p), ("max_memory", ctypes.c_uint64),
                ("weights_dtype", ctypes.c_char_p)]


class ControlStruct(ctypes.Structure):
    """diff_edit_control (extensible: struct_size first): one ControlNet of a call."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("net", ctypes.c_void_p), ("preprocessor", ctypes.c_char_p),
                ("image", ctypes.POINTER(Buffer)), ("scale", ctypes.c_float), ("start", ctypes.c_float),
                ("end", ctypes.c_float)]


class Params(ctypes.Structure):
    """diff_edit_params (extensible: struct_size first)."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("method", ctypes.c_int), ("prompt", ctypes.c_char_p),
                ("source_prompt", ctypes.c_char_p), ("negative_prompt", ctypes.c_char_p),
                ("guidance", ctypes.c_float), ("image_guidance", ctypes.c_float),
                ("strength", ctypes.c_float), ("steps", ctypes.c_uint32), ("seed", ctypes.c_uint64),
                ("mask", ctypes.POINTER(Buffer)), ("mask_out", ctypes.POINTER(Buffer)),
                ("progress", PROGRESS_FN), ("progress_user", ctypes.c_void_p),
                ("watermark", ctypes.c_uint32),
                ("n_controls", ctypes.c_uint32), ("controls", ctypes.POINTER(ControlStruct))]


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------

class Lora(ctypes.Structure):
    """diff_edit_lora."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("path", ctypes.c_char_p), ("scale", ctypes.c_float)]


class DiffEditError(Exception):
    """A failed libdiffedit call. .status: the Status; .message: diff_edit_last_error's text."""

    def __init__(self, status, message: str):
        try:
            status = Status(status)
        except ValueError:
            pass
        self.status = status
        self.message = message
        name = status.name if isinstance(status, Status) else str(status)
        super().__init__(f"{message} [{name}]" if message else f"[{name}]")


class CancelledError(DiffEditError):
    """DIFF_EDIT_CANCELLED: stopped by Context.cancel() or a progress callback returning False."""


class InvalidArgumentError(DiffEditError, ValueError):
    """DIFF_EDIT_ERR_INVALID_ARGUMENT."""


class UnsupportedError(DiffEditError):
    """DIFF_EDIT_ERR_UNSUPPORTED."""


class OutOfMemoryError(DiffEditError, MemoryError):
    """DIFF_EDIT_ERR_OUT_OF_MEMORY."""


class BackendError(DiffEditError):
    """DIFF_EDIT_ERR_BACKEND."""


class DiffEditIOError(DiffEditError, OSError):
    """DIFF_EDIT_ERR_IO: a file could not be found or read."""

    def __str__(self):  # OSError's own __str__ would drop the message
        return DiffEditError.__str__(self)


class ModelError(DiffEditError):
    """DIFF_EDIT_ERR_MODEL: malformed or inconsistent model files."""


class BusyError(DiffEditError):
    """DIFF_EDIT_ERR_BUSY: the context is running another call."""


_ERRORS = {Status.CANCELLED: CancelledError, Status.ERR_INVALID_ARGUMENT: InvalidArgumentError,
           Status.ERR_UNSUPPORTED: UnsupportedError, Status.ERR_OUT_OF_MEMORY: OutOfMemoryError,
           Status.ERR_BACKEND: BackendError, Status.ERR_IO: DiffEditIOError, Status.ERR_MODEL: ModelError,
           Status.ERR_BUSY: BusyError}


def _error(status: int, message: str) -> DiffEditError:
    try:
        cls = _ERRORS.get(Status(status), DiffEditError)
    except ValueError:
        cls = DiffEditError
    return cls(status, message)


# ------------------------------------------------------------------------------------------------
# Loading the library
# ------------------------------------------------------------------------------------------------

_HERE = os.path.dirname(os.path.abspath(__file__))
_NAMES = ("libdiffedit.so.0", "libdiffedit.so")


def find_library(path: Optional[str] = None) -> str:
    """The path (or loader name) of libdiffedit to load; see the module docstring for the order."""
    if path:
        return path
    env = os.environ.get("DIFFEDIT_LIBRARY")
    if env:
        return env
    # next to this module; PREFIX/lib when installed as PREFIX/lib/python3.X/site-packages/diffedit.py (make
    # install); <repo>/build/lib for python/diffedit.py in a checkout
    for d in (_HERE, os.path.dirname(os.path.dirname(_HERE)), os.path.join(os.path.dirname(_HERE), "build", "lib")):
        for n in _NAMES:
            p = os.path.join(d, n)
            if os.path.exists(p):
                return p
    return _NAMES[0]  # the system loader's search path


_lib = None
_lib_lock = threading.Lock()


def _declare(L):
    c = ctypes
    L.diff_edit_abi_version.restype, L.diff_edit_abi_version.argtypes = c.c_uint32, []
    L.diff_edit_version.restype, L.diff_edit_version.argtypes = c.c_char_p, []
    L.diff_edit_status_string.restype, L.diff_edit_status_string.argtypes = c.c_char_p, [c.c_int]
    L.diff_edit_last_error.restype, L.diff_edit_last_error.argtypes = c.c_char_p, [c.c_void_p]
    L.diff_edit_model_params_default.restype = None
    L.diff_edit_model_params_default.argtypes = [c.POINTER(ModelParams)]
    L.diff_edit_model_load.restype = c.c_int
    L.diff_edit_model_load.argtypes = [c.POINTER(ModelParams), c.POINTER(c.c_void_p)]
    L.diff_edit_model_free.restype, L.diff_edit_model_free.argtypes = None, [c.c_void_p]
    L.diff_edit_lora_default.restype, L.diff_edit_lora_default.argtypes = None, [c.POINTER(Lora)]
    L.diff_edit_model_set_loras.restype = c.c_int
    L.diff_edit_model_set_loras.argtypes = [c.c_void_p, c.POINTER(Lora), c.c_uint32]
    L.diff_edit_ctx_create.restype = c.c_int
    L.diff_edit_ctx_create.argtypes = [c.c_void_p, c.POINTER(c.c_void_p)]
    L.diff_edit_ctx_free.restype, L.diff_edit_ctx_free.argtypes = None, [c.c_void_p]
    L.diff_edit_params_default.restype, L.diff_edit_params_default.argtypes = None, [c.POINTER(Params)]
    L.diff_edit_image.restype = c.c_int
    L.diff_edit_image.argtypes = [c.c_void_p, c.POINTER(Params), c.POINTER(Buffer), c.POINTER(Buffer)]
    L.diff_edit_video.restype = c.c_int
    L.diff_edit_video.argtypes = [c.c_void_p, c.POINTER(Params), c.POINTER(Buffer), c.c_uint32,
                                  c.POINTER(Buffer)]
    L.diff_edit_cancel.restype, L.diff_edit_cancel.argtypes = None, [c.c_void_p]
    L.diff_edit_last_provenance.restype, L.diff_edit_last_provenance.argtypes = c.c_char_p, [c.c_void_p]
    L.diff_edit_stream_set_lookahead.restype = c.c_int
    L.diff_edit_stream_set_lookahead.argtypes = [c.c_void_p, c.c_uint32]
    L.diff_edit_stream_begin.restype = c.c_int
    L.diff_edit_stream_begin.argtypes = [c.c_void_p, c.POINTER(Params), c.c_uint32, c.c_uint32, c.c_int]
    L.diff_edit_stream_push.restype = c.c_int
    L.diff_edit_stream_push.argtypes = [c.c_void_p, c.POINTER(Buffer)]
    L.diff_edit_stream_pull.restype = c.c_int
    L.diff_edit_stream_pull.argtypes = [c.c_void_p, c.POINTER(Buffer)]
    L.diff_edit_stream_end.restype = c.c_int
    L.diff_edit_stream_end.argtypes = [c.c_void_p]
    L.diff_edit_control_default.restype = None
    L.diff_edit_control_default.argtypes = [c.POINTER(ControlStruct)]
    L.diff_edit_controlnet_load.restype = c.c_int
    L.diff_edit_controlnet_load.argtypes = [c.c_void_p, c.c_char_p, c.POINTER(c.c_void_p)]
    L.diff_edit_controlnet_free.restype, L.diff_edit_controlnet_free.argtypes = None, [c.c_void_p]
    L.diff_edit_control_map.restype = c.c_int
    L.diff_edit_control_map.argtypes = [c.c_char_p, c.POINTER(Buffer), c.POINTER(Buffer), c.POINTER(Buffer)]


def load_library(path: Optional[str] = None):
    """Loads libdiffedit (once per process; a `path` given later replaces nothing) and returns the
    ctypes.CDLL with every function of diffedit.h declared. Raises OSError naming what was tried."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        name = find_library(path)
        try:
            L = ctypes.CDLL(name)
        except OSError as e:
            raise OSError(f"diffedit: cannot load the library {name!r} ({e}); set DIFFEDIT_LIBRARY to "
                          f"the path of libdiffedit.so.0") from e
        _declare(L)
        got = L.diff_edit_abi_version()
        if got != ABI_VERSION:
            raise OSError(f"diffedit: {name} has ABI version {got}, this binding needs {ABI_VERSION}")
        _lib = L
        return L


def lib():
    """The loaded ctypes.CDLL (loading it on first use)."""
    return _lib if _lib is not None else load_library()


def _s(b) -> str:
    return b.decode("utf-8", "replace") if b is not None else ""


def _enc(s: Optional[str], what: str):
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a str, bytes or None, not {type(s).__name__}")
    return s.encode("utf-8", "surrogateescape")


# ------------------------------------------------------------------------------------------------
# Plain functions
# ------------------------------------------------------------------------------------------------

def abi_version() -> int:
    """diff_edit_abi_version()."""
    return lib().diff_edit_abi_version()


def version() -> str:
    """diff_edit_version(), e.g. "0.1.0"."""
    return _s(lib().diff_edit_version())


def status_string(status) -> str:
    """diff_edit_status_string(status), e.g. "invalid argument"."""
    return _s(lib().diff_edit_status_string(int(status)))


def last_error(ctx: "Optional[Context]" = None) -> str:
    """diff_edit_last_error(ctx): the context's last failure, or the calling thread's with None."""
    handle = ctx._handle if isinstance(ctx, Context) else ctx
    return _s(lib().diff_edit_last_error(handle))


def model_params_default() -> ModelParams:
    """diff_edit_model_params_default() into a new ModelParams."""
    p = ModelParams()
    lib().diff_edit_model_params_default(ctypes.byref(p))
    return p


def params_default() -> Params:
    """diff_edit_params_default() into a new Params."""
    p = Params()
    lib().diff_edit_params_default(ctypes.byref(p))
    return p


def _check(status: int, ctx_handle=None):
    if status != Status.OK:
        # BUSY is recorded only for the calling thread (the running call owns the context).
        use_ctx = ctx_handle is not None and status != Status.ERR_BUSY
        msg = _s(lib().diff_edit_last_error(ctx_handle if use_ctx else None))
        raise _error(status, msg)


# ------------------------------------------------------------------------------------------------
# Pixel buffers
# ------------------------------------------------------------------------------------------------

def _is_numpy(obj) -> bool:
    return type(obj).__module__ == "numpy" and hasattr(obj, "__array_interface__")


class _Pixels:
    """Keeps a buffer's memory alive and describes it as a diff_edit_buffer."""

    def __init__(self, obj, width=None, height=None, fmt=None, stride=None, what="image", writable=False):
        self.obj = obj
        mv = memoryview(obj)
        shape = mv.shape or (mv.nbytes,)
        if fmt is None:
            if mv.ndim == 3 and shape[2] in (1, 3, 4):
                fmt = {1: PixelFormat.GRAY8, 3: PixelFormat.RGB8, 4: PixelFormat.RGBA8}[shape[2]]
            elif mv.ndim == 2:
                fmt = PixelFormat.GRAY8
            else:
                raise InvalidArgumentError(
                    Status.ERR_INVALID_ARGUMENT,
                    f"{what}: give format= (a PixelFormat) for a buffer of shape {tuple(shape)}")
        if mv.ndim >= 2:
            height = shape[0] if height is None else height
            width = shape[1] if width is None else width
        if width is None or height is None:
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT,
                                       f"{what}: give width= and height= for a flat buffer")
        if not mv.c_contiguous:
            if writable:
                raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT,
                                           f"{what}: an output buffer must be C-contiguous")
            mv = memoryview(mv.tobytes())
        if mv.itemsize != 1 or mv.ndim != 1:
            mv = mv.cast("B")
        bpp = _BPP.get(fmt, 0) if isinstance(fmt, PixelFormat) or fmt in _BPP else 0
        self.width, self.height = int(width), int(height)
        self.format = int(fmt)
        self.stride = int(stride) if stride is not None else self.width * bpp
        if mv.readonly:
            if writable:
                raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT, f"{what}: the buffer is read-only")
            self.cbuf = (ctypes.c_ubyte * mv.nbytes).from_buffer_copy(mv) if mv.nbytes else None
        else:
            self.cbuf = (ctypes.c_ubyte * mv.nbytes).from_buffer(mv) if mv.nbytes else None
        self.nbytes = mv.nbytes
        need = self.stride * (self.height - 1) + self.width * bpp if self.height and bpp else 0
        if bpp and self.nbytes < need:
            raise InvalidArgumentError(
                Status.ERR_INVALID_ARGUMENT,
                f"{what}: the buffer holds {self.nbytes} bytes, a {self.width}x{self.height} "
                f"{PixelFormat(fmt).name} image with stride {self.stride} needs {need}")
        self.struct = Buffer(self.width, self.height, self.stride, self.format,
                             ctypes.addressof(self.cbuf) if self.cbuf is not None else None)


def _mask_pixels(mask, src: "_Pixels") -> "_Pixels":
    """A GRAY8 mask: a 2-D array keeps its own size (the library reports a mismatch); a flat
    buffer takes the image's size."""
    shaped = memoryview(mask).ndim >= 2
    return _Pixels(mask, None if shaped else src.width, None if shaped else src.height,
                   PixelFormat.GRAY8, None, "mask")


def make_buffer(width: int, height: int, fmt=PixelFormat.RGB8, like=None):
    """A zeroed output image: a numpy array [H, W, C] (or [H, W] for GRAY8) when `like` is a numpy
    array, else a bytearray of height rows of width * bpp bytes."""
    bpp = bytes_per_pixel(fmt)
    if like is not None and _is_numpy(like):
        import numpy as np
        shape = (height, width) if bpp == 1 and like.ndim == 2 else (height, width, bpp)
        return np.zeros(shape, dtype=np.uint8)
    return bytearray(width * height * bpp)


# ------------------------------------------------------------------------------------------------
# Model and Context
# ------------------------------------------------------------------------------------------------

class Model:
    """A loaded model (diff_edit_model_load / diff_edit_model_free). Shareable between contexts.

    path: a diffusers folder or single-file .safetensors; None or "" = the embedded default model.
    backend: "auto", "cpu" or "cuda". log: optional callable(level: int, message: str).
    max_memory: bytes for the weights, the ControlNets loaded for the model and each request's working set (0 =
    the available memory); over it the load, load_controlnet or the request raises OutOfMemoryError
    (DIFF_EDIT_ERR_OUT_OF_MEMORY) with the numbers, and the model stays usable.
    weights_dtype: "auto" (None), "f32", "f16", "bf16" or "q8_0" (how weights stay in memory on the CPU)."""

    def __init__(self, path: Optional[str] = None, backend: Optional[str] = "auto", device: int = 0,
                 n_threads: int = 0, log: Optional[Callable[[int, str], None]] = None,
                 params: Optional[ModelParams] = None, max_memory: int = 0, weights_dtype: Optional[str] = None):
        L = lib()
        self._handle = None
        if params is None:
            params = model_params_default()
            params.path = _enc(path, "path")
            params.backend = _enc(backend, "backend")
            params.device = device
            params.n_threads = n_threads
            params.max_memory = max_memory
            params.weights_dtype = _enc(weights_dtype, "weights_dtype")
        self._log_cb = None
        if log is not None:
            def _log(_user, level, message, _log=log):
                try:
                    _log(int(level), _s(message))
                except Exception:  # never let a Python error cross into the library
                    pass
            self._log_cb = LOG_FN(_log)
            params.log = self._log_cb
        out = ctypes.c_void_p()
        _check(L.diff_edit_model_load(ctypes.byref(params), ctypes.byref(out)))
        self._handle = out.value

    @property
    def handle(self):
        return self._handle

    def context(self) -> "Context":
        """A new Context over this model."""
        return Context(self)

    def set_loras(self, loras=()):
        """diff_edit_model_set_loras: replaces the LoRA files fused into the weights. `loras`: an iterable
        of paths (scale 1), (path, scale) pairs or Lora structs; empty removes every LoRA. Raises as the
        library reports (BusyError while a context of the model runs or has a stream open)."""
        items = []
        for i, x in enumerate(loras):
            lo = Lora()
            lib().diff_edit_lora_default(ctypes.byref(lo))
            if isinstance(x, Lora):
                lo = x
            elif isinstance(x, (str, bytes, os.PathLike)):
                lo.path = _enc(os.fspath(x), f"loras[{i}]")
            else:
                path, scale = x
                lo.path = _enc(os.fspath(path), f"loras[{i}]")
                lo.scale = float(scale)
            items.append(lo)
        arr = (Lora * len(items))(*items) if items else None
        _check(lib().diff_edit_model_set_loras(self._handle, arr, len(items)))

    def load_controlnet(self, path: str) -> "ControlNet":
        """diff_edit_controlnet_load: a ControlNet for this model (diffusers ControlNetModel folder or
        a single .safetensors, e.g. control_v11p_sd15_canny.safetensors). OutOfMemoryError when its weights,
        estimated from its config, do not fit in what max_memory leaves."""
        return ControlNet(self, path)

    def free(self):
        """diff_edit_model_free; contexts keep the weights alive. Idempotent."""
        if self._handle:
            lib().diff_edit_model_free(self._handle)
            self._handle = None

    close = free

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()

    def __del__(self):
        try:
            self.free()
        except Exception:
            pass


class ControlNet:
    """A loaded ControlNet (diff_edit_controlnet_load / diff_edit_controlnet_free), for one model."""

    def __init__(self, model: "Model", path: str):
        if not isinstance(model, Model) or not model._handle:
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT, "model is freed or not a diffedit.Model")
        self._handle = None
        out = ctypes.c_void_p()
        _check(lib().diff_edit_controlnet_load(model._handle, _enc(path, "path"), ctypes.byref(out)))
        self._handle = out.value

    @property
    def handle(self):
        return self._handle

    def free(self):
        """diff_edit_controlnet_free. Idempotent. Not while a call that uses it is running."""
        if self._handle:
            lib().diff_edit_controlnet_free(self._handle)
            self._handle = None

    close = free

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()

    def __del__(self):
        try:
            self.free()
        except Exception:
            pass


class Control:
    """One ControlNet of a call: `net` with its input, a `preprocessor` ("canny", "tile", "inpaint")
    or a control `image` (numpy [H, W, C] uint8 or a buffer with width/height/format, the input's
    size), and its scale and [start, end] fraction of the steps."""

    def __init__(self, net: ControlNet, preprocessor: Optional[str] = None, image=None, *, scale: float = 1.0,
                 start: float = 0.0, end: float = 1.0, width=None, height=None, format=None, stride=None):
        self.net, self.preprocessor, self.image = net, preprocessor, image
        self.scale, self.start, self.end = scale, start, end
        self.geometry = (width, height, format, stride)


def _controls(controls, p, keep):
    """Fills p.n_controls / p.controls from a list of Control."""
    if not controls:
        return
    arr = (ControlStruct * len(controls))()
    for i, c in enumerate(controls):
        if not isinstance(c, Control):
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT, f"controls[{i}] is not a diffedit.Control")
        lib().diff_edit_control_default(ctypes.byref(arr[i]))
        arr[i].net = c.net.handle if isinstance(c.net, ControlNet) else None
        if c.preprocessor is not None:
            keep.append(_enc(c.preprocessor, f"controls[{i}].preprocessor"))
            arr[i].preprocessor = keep[-1]
        if c.image is not None:
            w, h, f, s = c.geometry
            px = _Pixels(c.image, w, h, f, s, f"controls[{i}].image")
            keep.append(px)
            arr[i].image = ctypes.pointer(px.struct)
        arr[i].scale, arr[i].start, arr[i].end = float(c.scale), float(c.start), float(c.end)
    keep.append(arr)
    p.n_controls = len(controls)
    p.controls = ctypes.cast(arr, ctypes.POINTER(ControlStruct))


def control_map(preprocessor: str, image, *, mask=None, width=None, height=None, format=None, stride=None):
    """diff_edit_control_map: the control map a preprocessor makes of `image` (same kind and size as
    `image`: a numpy array or a bytearray)."""
    src = _Pixels(image, width, height, format, stride, "input")
    out = make_buffer(src.width, src.height, src.format, like=image)
    dst = _Pixels(out, src.width, src.height, src.format, None, "output", writable=True)
    m = _mask_pixels(mask, src) if mask is not None else None
    _check(lib().diff_edit_control_map(_enc(preprocessor, "preprocessor"), ctypes.byref(src.struct),
                                       ctypes.byref(m.struct) if m else None, ctypes.byref(dst.struct)))
    return out


class Context:
    """An editing session (diff_edit_ctx_create / diff_edit_ctx_free). One call at a time."""

    def __init__(self, model: Model):
        if not isinstance(model, Model) or not model._handle:
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT, "model is freed or not a diffedit.Model")
        self._model = model  # keeps the log callback alive as long as the context
        self._handle = None
        self._stream = None  # the open stream's callback and geometry
        out = ctypes.c_void_p()
        _check(lib().diff_edit_ctx_create(model._handle, ctypes.byref(out)))
        self._handle = out.value

    @property
    def handle(self):
        return self._handle

    def last_error(self) -> str:
        """diff_edit_last_error(ctx)."""
        return _s(lib().diff_edit_last_error(self._handle)) if self._handle else ""

    def cancel(self):
        """diff_edit_cancel: asks the running call to stop (safe from any thread)."""
        if self._handle:
            lib().diff_edit_cancel(self._handle)

    def free(self):
        """diff_edit_ctx_free. Idempotent. Not while a call on it is running."""
        if self._handle:
            lib().diff_edit_ctx_free(self._handle)
            self._handle = None

    close = free

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()

    def __del__(self):
        try:
            self.free()
        except Exception:
            pass

    # -- parameters -------------------------------------------------------------------------------

    def _params(self, prompt, method, source_prompt, negative_prompt, guidance, image_guidance, strength,
                steps, seed, progress, keep, watermark=False):
        if prompt is None:
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT, "prompt is None (use \"\" for none)")
        p = params_default()
        p.method = _method(method)
        keep.extend([_enc(prompt, "prompt"), _enc(source_prompt, "source_prompt"),
                     _enc(negative_prompt, "negative_prompt")])
        p.prompt, p.source_prompt, p.negative_prompt = keep[-3], keep[-2], keep[-1]
        p.guidance = float(guidance)
        p.image_guidance = float(image_guidance)
        p.strength = float(strength)
        if steps < 0 or seed < 0:
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT,
                                       ("steps" if steps < 0 else "seed") + " must not be negative")
        p.steps = int(steps)
        p.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        p.watermark = 1 if watermark else 0
        errors = []
        if progress is not None:
            def _progress(_user, step, steps_, frame, frames, _cb=progress):
                try:
                    r = _cb(int(step), int(steps_), int(frame), int(frames))
                    return r is None or bool(r)
                except BaseException as e:  # cancel and re-raise after the call
                    errors.append(e)
                    return False
            cb = PROGRESS_FN(_progress)
            keep.append(cb)
            p.progress = cb
        return p, errors

    def _run(self, fn, errors):
        if not self._handle:
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT, "the context is freed")
        status = fn()
        if errors:
            e = errors[0]
            errors.clear()
            raise e
        _check(status, self._handle)

    # -- editing ----------------------------------------------------------------------------------

    def edit_image(self, image, prompt: str, *, width=None, height=None, format=None, stride=None,
                   method="auto", source_prompt=None, negative_prompt=None, guidance=0.0,
                   image_guidance=0.0, strength=0.0, steps=0, seed=0, mask=None, want_mask=False,
                   progress=None, output=None, output_format=None, output_stride=None,
                   params: Optional[Params] = None, controls: Optional[Sequence["Control"]] = None,
                   watermark=False):
        """diff_edit_image. Returns the edited image (a numpy array when `image` is one, else a
        bytearray of tightly packed rows), or (image, mask) with want_mask=True.

        image: numpy [H, W, C]/[H, W] uint8 or a buffer (give width, height, format; stride
        defaults to width * bpp). mask: GRAY8 of the same size (255 = edit, 0 = keep), numpy [H, W]
        or a buffer. progress: callable(step, steps, frame, frames) -> False to cancel (None/True
        continue); an exception in it cancels the call and is re-raised. output: an optional
        caller-allocated writable buffer (written in place and returned; output_stride = its bytes
        per row, default width * bpp; padding past a row is never written). params: a raw Params to
        send instead of the keyword arguments (its pixel pointers are filled in here). controls: a list of
        diffedit.Control (ControlNets with their inputs). watermark: embed
        the invisible watermark (params->watermark; images of 256 px and more a side). The provenance
        record of the call: last_provenance()."""
        keep = []
        src = _Pixels(image, width, height, format, stride, "image")
        ofmt = src.format if output_format is None else int(output_format)
        if output is None:
            output = make_buffer(src.width, src.height, ofmt if ofmt in _BPP else PixelFormat.RGB8, like=image)
        dst = _Pixels(output, src.width, src.height, ofmt, output_stride, "output", writable=True)
        if params is None:
            p, errors = self._params(prompt, method, source_prompt, negative_prompt, guidance, image_guidance,
                                     strength, steps, seed, progress, keep, watermark)
        else:
            p, errors = params, []
        _controls(controls, p, keep)
        m = mo = mask_out = None
        if mask is not None:
            m = _mask_pixels(mask, src)
            p.mask = ctypes.pointer(m.struct)
        if want_mask:
            mask_out = make_buffer(src.width, src.height, PixelFormat.GRAY8,
                                   like=image if _is_numpy(image) and getattr(image, "ndim", 0) else None)
            if _is_numpy(mask_out) and mask_out.ndim == 3:
                mask_out = mask_out.reshape(src.height, src.width)
            mo = _Pixels(mask_out, src.width, src.height, PixelFormat.GRAY8, None, "mask_out", writable=True)
            p.mask_out = ctypes.pointer(mo.struct)
        self._run(lambda: lib().diff_edit_image(self._handle, ctypes.byref(p), ctypes.byref(src.struct),
                                                ctypes.byref(dst.struct)), errors)
        return (output, mask_out) if want_mask else output

    def edit_video(self, frames: Sequence, prompt: str, *, width=None, height=None, format=None,
                   stride=None, method="auto", source_prompt=None, negative_prompt=None, guidance=0.0,
                   image_guidance=0.0, strength=0.0, steps=0, seed=0, mask=None, progress=None,
                   output_format=None, controls: Optional[Sequence["Control"]] = None,
                   watermark=False):
        """diff_edit_video over a list of frames (each as for edit_image). Returns a list of frames."""
        frames = list(frames)
        if not frames:
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT, "frames is empty (n_frames 0)")
        keep = []
        ins = [_Pixels(f, width, height, format, stride, f"frames_in[{i}]") for i, f in enumerate(frames)]
        outs_obj, outs = [], []
        for i, (f, s) in enumerate(zip(frames, ins)):
            ofmt = s.format if output_format is None else int(output_format)
            o = make_buffer(s.width, s.height, ofmt if ofmt in _BPP else PixelFormat.RGB8, like=f)
            outs_obj.append(o)
            outs.append(_Pixels(o, s.width, s.height, ofmt, None, f"frames_out[{i}]", writable=True))
        p, errors = self._params(prompt, method, source_prompt, negative_prompt, guidance, image_guidance,
                                 strength, steps, seed, progress, keep, watermark)
        if mask is not None:
            m = _mask_pixels(mask, ins[0])
            keep.append(m)
            p.mask = ctypes.pointer(m.struct)
        _controls(controls, p, keep)
        arr_in = (Buffer * len(ins))(*[s.struct for s in ins])
        arr_out = (Buffer * len(outs))(*[s.struct for s in outs])
        self._run(lambda: lib().diff_edit_video(self._handle, ctypes.byref(p), arr_in, len(ins), arr_out),
                  errors)
        return outs_obj

    def last_provenance(self) -> str:
        """diff_edit_last_provenance: the XMP packet (str) recording the last successful edit_image,
        edit_video or stream_begin on this context ("" when none): IPTC DigitalSourceType
        compositeWithTrainedAlgorithmicMedia, model name and weights SHA-256, method, prompts, seed,
        steps, guidance, strength, watermark. Attach it to the file you save (PNG iTXt
        "XML:com.adobe.xmp", JPEG APP1). The first call on a model hashes its weights (cached)."""
        if not self._handle:
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT, "the context is freed")
        return lib().diff_edit_last_provenance(self._handle).decode("utf-8")

    # -- streaming video ------------------------------------------------------------------------

    def stream_set_lookahead(self, frames: int):
        """diff_edit_stream_set_lookahead: the lookahead (0..MAX_LOOKAHEAD, default 3) of the next stream."""
        if frames < 0:
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT, f"frames ({frames}) is negative")
        self._run(lambda: lib().diff_edit_stream_set_lookahead(self._handle, int(frames)), [])

    def stream_begin(self, prompt: str, width: int, height: int, format=PixelFormat.RGB8, *, method="auto",
                     source_prompt=None, negative_prompt=None, guidance=0.0, image_guidance=0.0, strength=0.0,
                     steps=0, seed=0, progress=None, params: Optional[Params] = None, watermark=False):
        """diff_edit_stream_begin: a stream of width x height frames in `format` (RGB8, RGBA8, BGR8,
        BGRA8). The progress callback (if any) is kept for the stream's later pushes and end."""
        keep = []
        if params is None:
            p, errors = self._params(prompt, method, source_prompt, negative_prompt, guidance, image_guidance,
                                     strength, steps, seed, progress, keep, watermark)
        else:
            p, errors = params, []
        self._run(lambda: lib().diff_edit_stream_begin(self._handle, ctypes.byref(p), int(width), int(height),
                                                       int(format)), errors)
        self._stream = {"keep": keep, "errors": errors, "width": int(width), "height": int(height),
                        "format": int(format)}

    def _stream_errors(self):
        return self._stream["errors"] if getattr(self, "_stream", None) else []

    def stream_push(self, frame, *, stride=None):
        """diff_edit_stream_push: the next frame (a buffer or numpy array of the stream's size and
        format). Edits a window when the frame completes one."""
        st = getattr(self, "_stream", None) or {}
        px = _Pixels(frame, st.get("width") if memoryview(frame).ndim < 2 else None,
                     st.get("height") if memoryview(frame).ndim < 2 else None,
                     st.get("format", PixelFormat.RGB8), stride, "frame")
        errors = self._stream_errors()
        self._run(lambda: lib().diff_edit_stream_push(self._handle, ctypes.byref(px.struct)), errors)

    def stream_pull(self, output=None, *, output_stride=None, like=None):
        """diff_edit_stream_pull: the next edited frame (into `output` when given, else a new
        bytearray, or numpy array when `like` is one), or None when none is ready (DIFF_EDIT_AGAIN)."""
        st = getattr(self, "_stream", None) or {}
        w, h, fmt = st.get("width", 1), st.get("height", 1), st.get("format", PixelFormat.RGB8)
        if output is None:
            output = make_buffer(w, h, fmt if fmt in _BPP else PixelFormat.RGB8, like=like)
        px = _Pixels(output, w, h, fmt, output_stride, "output", writable=True)
        if not self._handle:
            raise InvalidArgumentError(Status.ERR_INVALID_ARGUMENT, "the context is freed")
        status = lib().diff_edit_stream_pull(self._handle, ctypes.byref(px.struct))
        if status == Status.AGAIN:
            return None
        _check(status, self._handle)
        return output

    def stream_end(self):
        """diff_edit_stream_end: edits the frames still waiting; pull them afterwards."""
        errors = self._stream_errors()
        self._run(lambda: lib().diff_edit_stream_end(self._handle), errors)
