"""The docker's edit action, usable without the docker (scripts, tests under kritarunner).

Flow (EditController):
    prepare(doc, node, settings)   UI thread: checks the input, reads the layer (8-bit BGRA; other
                                   colour spaces are read from a converted copy) and the selection
    compute(job)                   worker QThread: loads the model (cached) and runs diff_edit_image;
                                   ctypes releases the GIL, so Krita's UI stays responsive
    apply(doc, node, job)          UI thread: a new paint layer just above the source holding the
                                   result (outside the selection: the layer's own pixels)
Errors are EditError (our checks) or diffedit.DiffEditError (the library's diff_edit_last_error
message); the controller reports both through its `failed` signal as one readable message.
"""
import os
import sys
import threading

try:
    from PyQt5.QtCore import QEventLoop, QObject, QThread, pyqtSignal, pyqtSlot
except ImportError:  # pragma: no cover - only inside Krita
    QObject = object
    QThread = QEventLoop = pyqtSignal = pyqtSlot = None

METHODS = ("auto", "sdedit", "ddim", "p2p", "instruct", "inpaint")
CONTROLS = ("canny", "tile", "inpaint")   # ControlNet preprocessors (the CLI's --control)
WORK_PROFILE = "sRGB-elle-V2-srgbtrc.icc"


def _binding():
    """python/diffedit.py: the copy bundled next to this package (make krita), one on sys.path, or
    the repository's python/ folder (examples/krita/diffedit_krita -> ../../../python)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        from . import config  # written by `make krita`: LIBRARY = path of libdiffedit.so.0
        if getattr(config, "LIBRARY", None) and not os.environ.get("DIFFEDIT_LIBRARY"):
            os.environ["DIFFEDIT_LIBRARY"] = config.LIBRARY
    except ImportError:
        pass
    try:
        from . import diffedit as de
        return de
    except ImportError:
        pass
    try:
        import diffedit as de
        return de
    except ImportError:
        sys.path.insert(0, os.path.normpath(os.path.join(here, "..", "..", "..", "python")))
        import diffedit as de
        return de


de = _binding()


class EditError(Exception):
    """A problem with the input, reported to the user as is."""


class EditSettings:
    """What the docker collects."""

    def __init__(self, prompt="", method="auto", strength=0.0, source_prompt="", guidance=0.0, steps=0,
                 seed=0, model_path="", lora_path="", lora_scale=1.0, controlnet_path="", control="canny",
                 control_scale=1.0):
        self.prompt = prompt
        self.method = method
        self.strength = strength
        self.source_prompt = source_prompt
        self.guidance = guidance
        self.steps = steps
        self.seed = seed
        self.model_path = model_path
        self.lora_path = lora_path      # a LoRA .safetensors fused into the model; "" = none
        self.lora_scale = lora_scale    # its strength (diffusers' fuse_lora lora_scale), as the CLI: 1
        self.controlnet_path = controlnet_path   # "" = no ControlNet (defaults as the CLI's)
        self.control = control
        self.control_scale = control_scale


class EditJob:
    """Everything the worker thread needs (plain bytes; no Krita objects are touched off the UI thread)."""

    def __init__(self, settings, width, height, pixels, mask, source_name, full=None, rect=None):
        self.settings = settings
        self.width = width
        self.height = height
        self.pixels = pixels        # bytearray, BGRA8, width * height * 4 (the region the library sees)
        self.mask = mask            # bytearray GRAY8 or None (no selection)
        self.rect = rect or (0, 0, width, height)   # that region in the document (x, y, w, h)
        self.full = full if full is not None else pixels  # the whole layer, BGRA8
        self.doc_size = (width, height) if rect is None else None  # set by prepare for a crop
        self.source_name = source_name
        self.result = None          # bytearray BGRA8 after compute
        self.provenance = ""        # the XMP record of the edit (diff_edit_last_provenance)
        self.context = None         # the running diffedit.Context (for cancel)


# ------------------------------------------------------------------------------------------------
# Reading and writing layers
# ------------------------------------------------------------------------------------------------

def _read_bgra(node, w, h):
    """The layer's pixels over the document as BGRA8 (Krita's RGBA/U8 memory order)."""
    model, depth = node.colorModel(), node.colorDepth()
    if (model, depth) == ("RGBA", "U8"):
        return bytearray(bytes(node.pixelData(0, 0, w, h)))
    if (model, depth) == ("GRAYA", "U8"):
        ga = bytes(node.pixelData(0, 0, w, h))
        out = bytearray(w * h * 4)
        g = ga[0::2]
        out[0::4], out[1::4], out[2::4], out[3::4] = g, g, g, ga[1::2]
        return out
    # Any other colour space or depth: read a converted copy (the layer itself is not changed).
    copy = node.duplicate()
    if copy is None or not copy.setColorSpace("RGBA", "U8", WORK_PROFILE):
        raise EditError(f"Diffusion Edit cannot read a {model}/{depth} layer; convert it to 8-bit RGB "
                        f"(Layer > Convert > Convert Layer Color Space) and try again.")
    data = bytearray(bytes(copy.pixelData(0, 0, w, h)))
    if len(data) != w * h * 4:
        raise EditError(f"Diffusion Edit cannot read a {model}/{depth} layer; convert it to 8-bit RGB "
                        f"(Layer > Convert > Convert Layer Color Space) and try again.")
    return data


def prepare(doc, node, settings):
    """Checks the input and reads the layer and the selection (UI thread). Returns an EditJob."""
    if doc is None:
        raise EditError("Diffusion Edit: there is no open document.")
    if node is None:
        raise EditError("Diffusion Edit: there is no active layer; select a paint layer in the Layers docker.")
    if node.type() not in ("paintlayer", "grouplayer", "clonelayer", "filelayer", "vectorlayer", "filllayer"):
        raise EditError(f"Diffusion Edit works on a layer; the active node is a {node.type()}. "
                        "Select a paint layer in the Layers docker.")
    if not (settings.prompt or "").strip():
        raise EditError("Diffusion Edit: the prompt is empty. Describe the result you want (or, for the "
                        "instruct method, the instruction, e.g. \"make the circle blue\").")
    if str(settings.method).lower() not in METHODS:
        raise EditError(f"Diffusion Edit: unknown method \"{settings.method}\"; use one of {', '.join(METHODS)}.")
    if settings.model_path and not os.path.exists(settings.model_path):
        raise EditError(f"Diffusion Edit: the model path \"{settings.model_path}\" does not exist. Give a "
                        "diffusers folder or a .safetensors file, or leave it empty for the embedded model.")
    lora = (settings.lora_path or "").strip()
    if lora and not os.path.isfile(lora):
        raise EditError(f"Diffusion Edit: the LoRA file \"{lora}\" does not exist. Give a LoRA .safetensors "
                        "(diffusers/PEFT or kohya) or leave it empty.")
    if settings.controlnet_path and not os.path.exists(settings.controlnet_path):
        raise EditError(f"Diffusion Edit: the ControlNet path \"{settings.controlnet_path}\" does not exist. Give a "
                        "diffusers ControlNetModel folder or a control_*.safetensors file, or leave it empty.")
    if settings.controlnet_path and str(settings.control).lower() not in CONTROLS:
        raise EditError(f"Diffusion Edit: unknown control \"{settings.control}\"; use one of {', '.join(CONTROLS)}.")
    w, h = doc.width(), doc.height()
    if w <= 0 or h <= 0:
        raise EditError("Diffusion Edit: the document is empty.")
    pixels = _read_bgra(node, w, h)
    mask = None
    sel = doc.selection()
    if sel is not None and sel.width() > 0 and sel.height() > 0:
        mask = bytearray(bytes(sel.pixelData(0, 0, w, h)))
        if len(mask) != w * h:
            raise EditError("Diffusion Edit: could not read the selection.")
        if mask.count(0) == len(mask):
            raise EditError("Diffusion Edit: the selection does not cover any pixel of the document.")
    elif sel is not None:
        raise EditError("Diffusion Edit: the selection is empty; select an area (or Select > Deselect) first.")
    if mask is None:
        return EditJob(settings, w, h, pixels, None, node.name())
    # The library sees the selection's bounding box plus half its size on each side (at least 16
    # pixels) as context, so a small selection in a large document keeps its resolution.
    x0, y0, x1, y1 = _bbox(mask, w, h)
    mx, my = max(16, (x1 - x0) // 2), max(16, (y1 - y0) // 2)
    cx, cy = max(0, x0 - mx), max(0, y0 - my)
    cw, ch = min(w, x1 + mx) - cx, min(h, y1 + my) - cy
    crop_px = bytearray().join(pixels[((cy + y) * w + cx) * 4:((cy + y) * w + cx + cw) * 4] for y in range(ch))
    crop_mask = bytearray().join(mask[(cy + y) * w + cx:(cy + y) * w + cx + cw] for y in range(ch))
    job = EditJob(settings, cw, ch, crop_px, crop_mask, node.name(), full=pixels, rect=(cx, cy, cw, ch))
    job.doc_size = (w, h)
    return job


def _bbox(mask, w, h):
    """(x0, y0, x1, y1), end-exclusive, of the non-zero bytes of a w x h GRAY8 mask (not all zero)."""
    x0, y0, x1, y1 = w, h, 0, 0
    for y in range(h):
        row = mask[y * w:(y + 1) * w]
        lead = len(row) - len(row.lstrip(b"\x00"))
        if lead == w:
            continue
        y0, y1 = min(y0, y), y + 1
        x0 = min(x0, lead)
        x1 = max(x1, len(row.rstrip(b"\x00")))
    return x0, y0, x1, y1


# ------------------------------------------------------------------------------------------------
# The library call (worker thread)
# ------------------------------------------------------------------------------------------------

class ModelCache:
    """Keeps the last model loaded (loading takes a while) with the LoRA set fused into it; thread-safe.
    A new LoRA or strength is fused into the loaded model (diff_edit_model_set_loras), not reloaded.
    Also keeps the last ControlNet loaded for that model."""

    def __init__(self):
        self._lock = threading.Lock()
        self._path = None
        self._model = None
        self._loras = ()
        self._cn_path = None
        self._cn = None

    def get(self, path, loras=()):
        loras = tuple(loras)
        with self._lock:
            if self._model is None or self._path != path:
                if self._cn is not None:
                    self._cn.free()
                    self._cn, self._cn_path = None, None
                if self._model is not None:
                    self._model.free()
                    self._model = None
                self._model = de.Model(path or None)
                self._path = path
                self._loras = ()
            if loras != self._loras:
                self._loras = None          # unknown until set_loras succeeds (it leaves the old set on failure)
                self._model.set_loras(loras)
                self._loras = loras
            return self._model

    def controlnet(self, model, path):
        """The ControlNet at `path` for `model` (the one `get` returned)."""
        with self._lock:
            if self._cn is None or self._cn_path != path:
                if self._cn is not None:
                    self._cn.free()
                    self._cn = None
                self._cn = model.load_controlnet(path)
                self._cn_path = path
            return self._cn


MODELS = ModelCache()


def compute(job, progress=None, on_context=None):
    """Runs the edit; sets and returns job.result. Raises diffedit.DiffEditError (CancelledError when
    cancelled). progress(step, steps) is called on this thread; on_context(ctx) receives the context so
    that another thread can cancel it."""
    s = job.settings
    lora = (getattr(s, "lora_path", "") or "").strip()
    model = MODELS.get(s.model_path, [(lora, float(getattr(s, "lora_scale", 1.0)))] if lora else [])
    controls = None
    if getattr(s, "controlnet_path", ""):
        net = MODELS.controlnet(model, s.controlnet_path)
        controls = [de.Control(net, str(s.control).lower(), scale=float(s.control_scale))]
    with model.context() as ctx:
        job.context = ctx
        if on_context:
            on_context(ctx)
        try:
            job.result = ctx.edit_image(
                job.pixels, s.prompt, width=job.width, height=job.height, format=de.PixelFormat.BGRA8,
                method=str(s.method).lower(), source_prompt=(s.source_prompt or None), strength=float(s.strength),
                guidance=float(s.guidance), steps=int(s.steps), seed=int(s.seed), mask=job.mask, controls=controls,
                progress=(lambda st, n, f, fs: progress(st, n)) if progress else None)
            job.provenance = ctx.last_provenance() if hasattr(ctx, "last_provenance") else ""
        finally:
            job.context = None
    return job.result


def apply(doc, node, job):
    """A new paint layer just above `node` with the result (UI thread). Returns the new node."""
    name = f"{s_short(job.settings.prompt)} (diffusion edit)"
    new = doc.createNode(name, "paintlayer")
    if (new.colorModel(), new.colorDepth()) != ("RGBA", "U8"):
        new.setColorSpace("RGBA", "U8", WORK_PROFILE)
    parent = node.parentNode() or doc.rootNode()
    parent.addChildNode(new, node)
    full = bytearray(job.full)
    cx, cy, cw, ch = job.rect
    fw, fh = job.doc_size
    for y in range(ch):
        full[((cy + y) * fw + cx) * 4:((cy + y) * fw + cx + cw) * 4] = job.result[y * cw * 4:(y + 1) * cw * 4]
    new.setPixelData(bytes(full), 0, 0, fw, fh)
    attach_provenance(doc, getattr(job, "provenance", ""))
    doc.refreshProjection()
    return new


IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
DIFFEDIT_NS = "urn:diffedit:xmp:1.0:"


def provenance_line(packet):
    """One line from the library's XMP record: the IPTC digital source type and what made the edit."""
    import xml.etree.ElementTree as ET
    start, end = packet.find("<x:xmpmeta"), packet.rfind("</x:xmpmeta>")
    root = ET.fromstring(packet[start:end + len("</x:xmpmeta>")])
    desc = next(e for e in root.iter() if e.tag.endswith("}Description"))
    vals = {}
    for e in desc:
        ns, _, local = e.tag[1:].partition("}")
        if ns in (IPTC_EXT, DIFFEDIT_NS):
            vals[local] = e.text or ""
    return (f"AI-edited with {vals.get('Software', 'diffedit')} (model {vals.get('Model', '?')}, "
            f"method {vals.get('Method', '?')}, prompt \"{vals.get('Prompt', '')}\", seed {vals.get('Seed', '?')}): "
            f"IPTC digital source type {vals.get('DigitalSourceType', '')}"), vals.get("DigitalSourceType", "")


def attach_provenance(doc, packet):
    """Krita's scripting API has no XMP: the record goes into the document information (Document >
    Document Information: the abstract gets the provenance line, the keywords the IPTC digital source type
    URI), which Krita writes into exported files when "Store Document metadata" is on (PNG: the Description
    text chunk; JPEG: XMP dc:description)."""
    import re
    from xml.sax.saxutils import escape
    if not packet:
        return
    try:
        line, uri = provenance_line(packet)
    except Exception as e:  # a record the plug-in cannot read is reported, never fatal to the edit
        print(f"diffedit: provenance record not attached: {e}", file=sys.stderr)
        return
    info = doc.documentInfo()

    def extend(xml, tag, text, sep):
        m = re.search(rf"<{tag}>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</{tag}>|<{tag}/>", xml, re.S)
        if not m:
            return xml
        old = m.group(1) or ""
        if text in old:
            return xml
        new = (old + sep if old.strip() else "") + text
        return xml[:m.start()] + f"<{tag}>{escape(new)}</{tag}>" + xml[m.end():]

    info = extend(info, "abstract", line, "\n")
    info = extend(info, "keyword", uri, ", ")
    doc.setDocumentInfo(info)


def s_short(text, n=48):
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "…"


def describe(error):
    """One readable message for an exception from prepare/compute/apply."""
    if isinstance(error, de.DiffEditError):
        if isinstance(error, de.CancelledError):
            return "Diffusion Edit was cancelled."
        return f"Diffusion Edit failed ({de.status_string(error.status)}): {error.message}"
    if isinstance(error, OSError) and "libdiffedit" in str(error):
        return f"Diffusion Edit cannot load libdiffedit: {error}"
    return str(error) if isinstance(error, EditError) else f"Diffusion Edit failed: {error!r}"


# ------------------------------------------------------------------------------------------------
# Off the UI thread: QThread worker + controller
# ------------------------------------------------------------------------------------------------

if QThread is not None:
    class _Worker(QObject):
        progress = pyqtSignal(int, int)
        done = pyqtSignal(object)   # None on success, else the exception

        def __init__(self, job, controller):
            super().__init__()
            self.job = job
            self.controller = controller

        @pyqtSlot()
        def run(self):
            try:
                compute(self.job, progress=lambda st, n: self.progress.emit(st, n),
                        on_context=self.controller._set_context)
                self.done.emit(None)
            except BaseException as e:  # reported on the UI thread
                self.done.emit(e)

    class EditController(QObject):
        """The docker's edit action. start() returns at once; the edit runs on a QThread and ends in
        `finished(new_node)` or `failed(message)`. cancel() stops it (diff_edit_cancel)."""
        progress = pyqtSignal(int, int)
        finished = pyqtSignal(object)
        failed = pyqtSignal(str)

        def __init__(self, parent=None):
            super().__init__(parent)
            self._thread = None
            self._worker = None
            self._ctx = None
            self._cancelled = False
            self._lock = threading.Lock()
            self._doc = self._node = self._job = None

        def busy(self):
            return self._thread is not None

        def _set_context(self, ctx):
            with self._lock:
                self._ctx = ctx
                if self._cancelled:
                    ctx.cancel()

        def cancel(self):
            with self._lock:
                self._cancelled = True
                if self._ctx is not None:
                    self._ctx.cancel()

        def start(self, doc, node, settings):
            """Returns True when the edit started; on bad input emits failed(message), returns False."""
            if self.busy():
                self.failed.emit("Diffusion Edit is already running; wait for it or cancel it.")
                return False
            try:
                job = prepare(doc, node, settings)
            except Exception as e:
                self.failed.emit(describe(e))
                return False
            self._doc, self._node, self._job = doc, node, job
            self._cancelled = False
            self._thread = QThread()
            self._worker = _Worker(job, self)
            self._worker.moveToThread(self._thread)
            self._worker.progress.connect(self.progress)
            self._worker.done.connect(self._done)
            self._thread.started.connect(self._worker.run)
            self._thread.start()
            return True

        @pyqtSlot(object)
        def _done(self, error):
            self._thread.quit()
            self._thread.wait()
            self._thread = self._worker = None
            with self._lock:
                self._ctx = None
            doc, node, job = self._doc, self._node, self._job
            self._doc = self._node = self._job = None
            if error is not None:
                self.failed.emit(describe(error))
                return
            try:
                new = apply(doc, node, job)
            except Exception as e:
                self.failed.emit(describe(e))
                return
            self.finished.emit(new)

        def run_blocking(self, doc, node, settings, timeout_ms=600000):
            """start() and wait in a local event loop. Returns the new node; raises EditError with
            the message on failure (for scripts and tests)."""
            result = {}
            loop = QEventLoop()

            def ok(n):
                result["node"] = n
                loop.quit()

            def bad(msg):
                result["error"] = msg
                loop.quit()
            self.finished.connect(ok)
            self.failed.connect(bad)
            try:
                if self.start(doc, node, settings):
                    from PyQt5.QtCore import QTimer
                    QTimer.singleShot(timeout_ms, loop.quit)
                    if not result:
                        loop.exec_()
            finally:
                self.finished.disconnect(ok)
                self.failed.disconnect(bad)
            if "error" in result:
                raise EditError(result["error"])
            if "node" not in result:
                self.cancel()
                raise EditError("Diffusion Edit timed out.")
            return result["node"]
