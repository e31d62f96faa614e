"""Runs inside real Krita (kritarunner, no display) from Tests/hosts/test_krita.sh:

    QT_QPA_PLATFORM=offscreen PYTHONPATH=Tests/hosts:examples/krita:python kritarunner -s krita_check -f main

Makes documents holding the committed scene (Tests/hosts/scene.png) with a rectangular selection,
runs the docker's edit action (diffedit_krita.editing.EditController: QThread worker, the docker's
code path) and the docker widget itself, and writes what it found to $DIFFEDIT_KRITA_RESULT (JSON):
one entry per case with "ok" and a message. The shell script turns that into pass/fail.
Environment: DIFFEDIT_TEST_MODEL (default Tests/Fixtures/sd1), DIFFEDIT_TOY_MODEL (recolour check).
"""
import json
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCENE = os.path.join(HERE, "scene.png")
SEL = (12, 12, 40, 40)
MODEL = os.environ.get("DIFFEDIT_TEST_MODEL", os.path.join(ROOT, "Tests", "Fixtures", "sd1"))
CN = os.path.join(ROOT, "Tests", "Fixtures", "controlnet", "cn_b.safetensors")

sys.path.insert(0, HERE)
import pngcheck  # noqa: E402  (the stdlib PNG reader)

results = []


def record(name, ok, msg):
    results.append({"case": name, "ok": bool(ok), "message": msg})


def scene_bgra():
    w, h, ch, rows = pngcheck.read_png(SCENE)
    out = bytearray()
    for row in rows:
        for x in range(w):
            p = row[x * ch:(x + 1) * ch]
            r, g, b = (p[0], p[0], p[0]) if ch <= 2 else (p[0], p[1], p[2])
            a = p[-1] if ch in (2, 4) else 255
            out += bytes((b, g, r, a))
    return w, h, out


def make_doc(model="RGBA", depth="U8", alpha_strip=False, selection=True, rect=SEL):
    from krita import Krita, Selection
    w, h, px = scene_bgra()
    doc = Krita.instance().createDocument(w, h, "diffedit-test", model, depth, "", 72.0)
    node = doc.createNode("scene", "paintlayer")
    doc.rootNode().addChildNode(node, None)
    if (model, depth) == ("RGBA", "U8"):
        if alpha_strip:  # a fully transparent and a half transparent strip through the selection
            for y in range(20, 28):
                for x in range(w):
                    px[(y * w + x) * 4 + 3] = 0 if y < 24 else 128
        node.setPixelData(bytes(px), 0, 0, w, h)
    else:  # paint through an RGBA layer converted to the document's colour space
        node.setColorSpace("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc")
        node.setPixelData(bytes(px), 0, 0, w, h)
        node.setColorSpace(model, depth, "")
    if selection:
        s = Selection()
        s.select(*rect, 255)
        doc.setSelection(s)
    return doc, node


def bgra_of(node, w, h):
    if (node.colorModel(), node.colorDepth()) == ("RGBA", "U8"):
        return bytes(node.pixelData(0, 0, w, h))
    copy = node.duplicate()
    copy.setColorSpace("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc")
    return bytes(copy.pixelData(0, 0, w, h))


def compare(src, new, w, h, rect=SEL):
    """(outside_changed, alpha_changed, inside_changed) pixel counts."""
    x0, y0, rw, rh = rect
    out = alpha = inside = 0
    for y in range(h):
        for x in range(w):
            i = (y * w + x) * 4
            a, b = src[i:i + 4], new[i:i + 4]
            ins = x0 <= x < x0 + rw and y0 <= y < y0 + rh
            if a[3] != b[3]:
                alpha += 1
            if not ins and a != b:
                out += 1
            if ins and a[:3] != b[:3]:
                inside += 1
    return out, alpha, inside


def edit_case(name, settings, rect=SEL, **doc_kw):
    from diffedit_krita.editing import EditController
    doc, node = make_doc(rect=rect, **doc_kw)
    w, h = doc.width(), doc.height()
    before = bgra_of(node, w, h)
    ctl = EditController()
    steps = []
    ctl.progress.connect(lambda s, n: steps.append((s, n)))
    new = ctl.run_blocking(doc, node, settings)
    kids = [c.name() for c in node.parentNode().childNodes()]
    pos_src, pos_new = kids.index(node.name()), kids.index(new.name())
    after_src = bgra_of(node, w, h)
    res = bgra_of(new, w, h)
    out, alpha, inside = compare(before, res, w, h, rect)
    problems = []
    if new.type() != "paintlayer":
        problems.append(f"new node is a {new.type()}")
    if pos_new != pos_src + 1:
        problems.append(f"new layer at {pos_new}, source at {pos_src}: not just above ({kids})")
    if after_src != before:
        problems.append("the source layer changed")
    if out:
        problems.append(f"{out} pixels outside the selection changed")
    if alpha:
        problems.append(f"alpha changed at {alpha} pixels")
    if inside == 0:
        problems.append("no pixel inside the selection changed")
    if not steps:
        problems.append("no progress was reported")
    record(name, not problems, "; ".join(problems) or
           f"new paint layer '{new.name()}' above the source, outside identical, alpha kept, "
           f"{inside}/{rect[2] * rect[3]} inside changed, {len(steps)} progress reports")
    doc.close()
    return res


def error_case(name, settings, expect, node_override=False, **doc_kw):
    from diffedit_krita.editing import EditController, EditError
    doc, node = make_doc(**doc_kw)
    n_before = len(doc.rootNode().childNodes())
    try:
        EditController().run_blocking(doc, None if node_override else node, settings)
        record(name, False, "no error")
    except EditError as e:
        msg = str(e)
        n_after = len(doc.rootNode().childNodes())
        ok = expect in msg and n_after == n_before
        record(name, ok, msg if ok else f"message {msg!r} (expected {expect!r}), nodes {n_before}->{n_after}")
    doc.close()


def default_case():
    """model path "" = the embedded default model: an edit when the library finds it, else its message."""
    from diffedit_krita.editing import EditSettings, de
    try:
        de.Model(None).free()
        available = True
    except de.DiffEditError:
        available = False
    st = EditSettings(prompt="a blue circle", method="auto", steps=4, seed=1, model_path="")
    if available:
        edit_case("default-model", st)
    else:
        error_case("default-model", st, "default model")


def cancel_case():
    """Cancel from the UI thread while the worker runs (as the docker's Cancel button does)."""
    from PyQt5.QtCore import QEventLoop, QTimer
    from diffedit_krita.editing import EditController, EditSettings
    doc, node = make_doc()
    n_before = len(doc.rootNode().childNodes())
    ctl = EditController()
    got = {}
    loop = QEventLoop()
    ctl.progress.connect(lambda s, n: ctl.cancel())
    ctl.finished.connect(lambda n: (got.setdefault("node", n), loop.quit()))
    ctl.failed.connect(lambda m: (got.setdefault("error", m), loop.quit()))
    started = ctl.start(doc, node, EditSettings(prompt="a blue circle", method="sdedit", strength=1.0, steps=20,
                                                model_path=MODEL))
    QTimer.singleShot(120000, loop.quit)
    if started and not got:
        loop.exec_()
    n_after = len(doc.rootNode().childNodes())
    ok = "cancelled" in got.get("error", "") and n_after == n_before
    record("cancel", ok, f"{got} nodes {n_before}->{n_after}")
    doc.close()


def lora_case(S):
    """A LoRA file + strength (Tests/Fixtures/lora, made for the sd1 fixture model): the edit differs from the
    same edit without it, which comes back bit for bit once the LoRA is cleared; a bad LoRA names its key."""
    lora_dir = os.path.join(ROOT, "Tests", "Fixtures", "lora")
    if os.path.realpath(MODEL) != os.path.realpath(os.path.join(ROOT, "Tests", "Fixtures", "sd1")):
        record("lora", True, f"skipped: the LoRA fixtures are made for Tests/Fixtures/sd1, not {MODEL}")
        return
    plain = edit_case("lora-base", S(prompt="a blue circle"))
    fused = edit_case("lora", S(prompt="a blue circle", lora_path=os.path.join(lora_dir, "kohya.safetensors"),
                                lora_scale=0.7))
    again = edit_case("lora-cleared", S(prompt="a blue circle"))
    diff = sum(1 for i in range(0, len(plain), 4) if plain[i:i + 3] != fused[i:i + 3])
    record("lora-differs", diff > 0.05 * len(plain) / 4, f"{diff} pixels differ from the edit without the LoRA")
    record("lora-cleared-same", again == plain, "without the LoRA again: the same bytes as before it"
           if again == plain else "differs from the edit before the LoRA")
    error_case("lora-unknown-key", S(prompt="x", lora_path=os.path.join(lora_dir, "unknown_key.safetensors")),
               "lora_unet_down_blocks_7_attentions_0_proj_in")
    error_case("lora-missing", S(prompt="x", lora_path="/no/such/lora.safetensors"), "does not exist")


def docker_case():
    """The docker widget itself: fields filled in, its edit action run (the active node is None under
    kritarunner, so it must report that in a message box — captured here — without crashing)."""
    from PyQt5.QtWidgets import QMessageBox
    import diffedit_krita.docker as dk
    shown = []
    orig = QMessageBox.warning
    QMessageBox.warning = staticmethod(lambda parent, title, text, *a: shown.append((title, text)))
    try:
        d = dk.DiffEditDocker()
        d.prompt.setText("")
        d.edit()
        d.prompt.setText("a blue circle")
        d.model.setText(MODEL)
        d.lora.setText("/some/style.safetensors")
        d.lora_scale.setValue(0.6)
        st = d.settings()
        record("docker-lora-fields", (st.lora_path, round(st.lora_scale, 2)) == ("/some/style.safetensors", 0.6),
               f"settings() gave {st.lora_path!r} x {st.lora_scale}")
        d.edit()
        ok = (len(shown) == 2 and shown[0][0] == "Diffusion Edit" and
              ("no open document" in shown[0][1] or "no active layer" in shown[0][1] or "prompt is empty" in shown[0][1]))
        record("docker", ok, f"message boxes: {shown}")
    finally:
        QMessageBox.warning = orig


COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def png_texts(path):
    """{keyword: text} of a PNG's tEXt/zTXt/iTXt chunks."""
    import struct
    import zlib
    data, pos, out = open(path, "rb").read(), 8, {}
    while pos + 12 <= len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        key, _, rest = body.partition(b"\0")
        if kind == b"tEXt":
            out[key.decode("latin-1")] = rest.decode("latin-1")
        elif kind == b"zTXt":
            out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            text = rest[2:].split(b"\0", 2)[2]
            out[key.decode("latin-1")] = (zlib.decompress(text) if rest[0] else text).decode("utf-8")
    return out


def provenance_case(tmp):
    """After an edit the document information carries the record (Krita's API has no XMP): the exported PNG's
    Description and the exported JPEG's XMP dc:description name the IPTC digital source type; an export of
    the same document before the edit does not."""
    import xml.etree.ElementTree as ET
    from krita import InfoObject
    from diffedit_krita.editing import EditController, EditSettings
    doc, node = make_doc()
    doc.setBatchmode(True)
    png_opts = InfoObject()
    png_opts.setProperty("storeMetaData", True)
    before = os.path.join(tmp, "prov_before.png")
    doc.exportImage(before, png_opts)
    EditController().run_blocking(doc, node, EditSettings(prompt="a blue circle", method="sdedit", steps=2, seed=1,
                                                          model_path=MODEL))
    png, jpg = os.path.join(tmp, "prov_after.png"), os.path.join(tmp, "prov_after.jpg")
    doc.exportImage(png, png_opts)
    jpg_opts = InfoObject()
    jpg_opts.setProperty("storeMetaData", True)
    jpg_opts.setProperty("xmp", True)
    jpg_opts.setProperty("quality", 90)
    doc.exportImage(jpg, jpg_opts)
    doc.close()
    problems = []
    if COMPOSITE in " ".join(png_texts(before).values()):
        problems.append("the export before the edit already names the source type")
    desc = png_texts(png).get("Description", "")
    if COMPOSITE not in desc:
        problems.append(f"exported PNG Description lacks {COMPOSITE}: {desc!r}")
    data = open(jpg, "rb").read()
    i, j = data.find(b"<x:xmpmeta"), data.find(b"</x:xmpmeta>")
    if i < 0 or j < 0:
        problems.append("exported JPEG has no XMP")
    else:
        root = ET.fromstring(data[i:j + len(b"</x:xmpmeta>")])
        texts = [v for e in root.iter() for k, v in list(e.attrib.items()) + [("", e.text or "")] if COMPOSITE in v]
        if not texts:
            problems.append("exported JPEG's XMP does not name the source type")
    record("provenance", not problems, "; ".join(problems) or f"PNG Description and JPEG XMP carry {COMPOSITE}")


def main(*args):
    out_path = os.environ.get("DIFFEDIT_KRITA_RESULT", "/tmp/diffedit_krita_result.json")
    try:
        from diffedit_krita.editing import EditSettings, de
        record("binding", True, f"{de.__file__}, library {de.find_library()}, version {de.version()}")
        S = lambda **kw: EditSettings(**dict(dict(method="sdedit", steps=4, seed=1, model_path=MODEL), **kw))  # noqa: E731
        for name, fn in [
            ("rgb", lambda: edit_case("rgb", S(prompt="a blue circle"))),
            ("alpha", lambda: edit_case("alpha", S(prompt="a green circle", strength=0.5), alpha_strip=True)),
            ("smallsel", lambda: edit_case("smallsel", S(prompt="a blue circle", strength=1.0), rect=(40, 6, 10, 8))),
            ("gray", lambda: edit_case("gray", S(prompt="a white circle"), model="GRAYA")),
            ("rgb16", lambda: edit_case("rgb16", S(prompt="a blue circle"), depth="U16")),
            ("empty-prompt", lambda: error_case("empty-prompt", S(prompt="  "), "the prompt is empty")),
            ("no-model", lambda: error_case("no-model", S(prompt="x", model_path="/no/such/model"), "does not exist")),
            ("p2p-no-source", lambda: error_case("p2p-no-source", S(prompt="x", method="p2p"), "source_prompt")),
            ("bad-steps", lambda: error_case("bad-steps", S(prompt="x", steps=5000), "steps")),
            ("instruct-unsupported", lambda: error_case("instruct-unsupported", S(prompt="x", method="instruct"),
                                                        "instruct")),
            ("no-active-layer", lambda: error_case("no-active-layer", S(prompt="x"), "no active layer",
                                                   node_override=True)),
            ("lora", lambda: lora_case(S)),
            # an inpainting checkpoint with no other setting: method auto repaints the selection
            ("inpaint", lambda: edit_case("inpaint", S(prompt="a blue circle", method="auto", model_path=os.path.join(
                ROOT, "Tests", "Fixtures", "edit", "inpaint", "model")))),
            ("controlnet", lambda: edit_case("controlnet", S(prompt="a blue circle", controlnet_path=CN,
                                                             control="canny", control_scale=1.0))),
            ("controlnet-missing", lambda: error_case("controlnet-missing", S(prompt="x", controlnet_path="/no/cn"),
                                                      "ControlNet path")),
            ("controlnet-control", lambda: error_case("controlnet-control", S(prompt="x", controlnet_path=CN,
                                                                              control="sobel"), "unknown control")),
            ("default-model", default_case),
            ("cancel", cancel_case),
            ("docker", docker_case),
            ("provenance", lambda: provenance_case(os.path.dirname(out_path))),
        ]:
            try:
                fn()
            except Exception:
                record(name, False, traceback.format_exc())
        toy = os.environ.get("DIFFEDIT_TOY_MODEL", "")
        if toy:
            instruct = '"in_channels": 8' in open(os.path.join(toy, "unet", "config.json")).read().replace(
                '"in_channels":8', '"in_channels": 8')
            st = (EditSettings(prompt="make the circle blue", method="instruct", seed=0, model_path=toy) if instruct
                  else EditSettings(prompt="a blue circle on a white background", method="sdedit", strength=0.75,
                                    seed=0, model_path=toy))
            try:
                res = edit_case("recolour", st)
                acc, k = [0, 0, 0], 0
                for y in range(64):
                    for x in range(64):
                        if (x + 0.5 - 32) ** 2 + (y + 0.5 - 32) ** 2 <= 144:
                            i = (y * 64 + x) * 4
                            b, g, r = res[i], res[i + 1], res[i + 2]
                            acc[0] += r; acc[1] += g; acc[2] += b; k += 1  # noqa: E702
                m = [a / k for a in acc]
                record("recolour-blue", m[2] > max(m[0], m[1]) + 20, f"mean RGB in the circle {[round(v) for v in m]}")
            except Exception:
                record("recolour", False, traceback.format_exc())
    except Exception:
        record("setup", False, traceback.format_exc())
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)
