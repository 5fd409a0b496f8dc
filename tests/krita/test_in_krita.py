"""Runs INSIDE real Krita (kritarunner): the plugin on real documents against a real worker.

Started by tests/test_krita.py, which wrote the inputs to $KIREI_KRITA_IO (case.json, raw pixel
files, a profile PNG) and compares what these tests write back there with the engine's own
answer. Pixels are handed to Krita in its own byte order (B,G,R,A for integer RGBA), converted
here by the test itself, not by the plugin.
"""
import json
import os

import pytest
from krita import Krita, Selection

from kirei import kirei_client as kc
from kirei.restore import KireiError, masks_supported, restore_now

IO = os.environ.get("KIREI_KRITA_IO", "")


def _bgra(data, width):
    """RGBA <-> BGRA for `width`-byte channels, written plainly (independent of the plugin)."""
    out = bytearray(data)
    px = 4 * width
    for i in range(0, len(data), px):
        out[i:i + width], out[i + 2 * width:i + 3 * width] = data[i + 2 * width:i + 3 * width], data[i:i + width]
    return bytes(out)


def _doc(w, h, depth="U8", model="RGBA"):
    d = Krita.instance().createDocument(w, h, "kirei-test", model, depth, "", 72.0)
    d.setBatchmode(True)
    return d


def _cases():
    with open(os.path.join(IO, "cases.json")) as fh:
        return json.load(fh)


@pytest.fixture
def client():
    return kc.Client.from_environment()


@pytest.mark.parametrize("name", [c["name"] for c in _cases()] if IO else [])
def test_restore_case(name, client):
    case = [c for c in _cases() if c["name"] == name][0]
    w, h, depth = case["width"], case["height"], case["depth"]
    width = {"U8": 1, "U16": 2}[depth]
    doc = _doc(w, h, depth)
    try:
        src = doc.nodeByName("Background")
        with open(os.path.join(IO, case["pixels"]), "rb") as fh:
            rgba = fh.read()
        src.setPixelData(_bgra(rgba, width), 0, 0, w, h)
        twin = src.duplicate()  # scaled along with the document: what the source must still equal
        twin.setName("twin")
        twin.setVisible(False)
        doc.rootNode().addChildNode(twin, None)
        if case.get("selection"):
            sel = Selection()
            for x, y, sw, sh, v in case["selection"]:
                sel.select(x, y, sw, sh, v)
            doc.setSelection(sel)
        before = bytes(src.pixelData(0, 0, w, h))
        profile = os.path.join(IO, case["profile"]) if case.get("profile") else None
        seen = []
        layer = restore_now(client, doc, src, scale=case["scale"], watermark=case["watermark"], profile=profile,
                            progress=seen.append, matte=bool(case.get("matte")) and masks_supported(),
                            best=bool(case.get("tta")))
        s = case["scale"]
        assert (doc.width(), doc.height()) == (w * s, h * s)
        names = [n.name() for n in doc.rootNode().childNodes()]
        assert names.index(layer.name()) == names.index("Background") + 1, names  # right above the source
        out = bytes(layer.pixelData(0, 0, w * s, h * s))
        with open(os.path.join(IO, name + ".out"), "wb") as fh:
            fh.write(_bgra(out, width))
        after = bytes(src.pixelData(0, 0, w * s, h * s))
        if s == 1:
            assert after == before
        else:
            assert after == bytes(twin.pixelData(0, 0, w * s, h * s))
        masks = [n for n in layer.childNodes() if n.type() == "transparencymask"]
        if masks:
            with open(os.path.join(IO, name + ".matte"), "wb") as fh:
                fh.write(bytes(masks[0].selection().pixelData(0, 0, w * s, h * s)))
        with open(os.path.join(IO, name + ".json"), "w") as fh:
            json.dump({"layer": layer.name(), "type": layer.type(), "depth": layer.colorDepth(),
                       "progress_calls": len(seen), "masks": [[m.name(), m.visible()] for m in masks]}, fh)
    finally:
        doc.close()


def _unchanged(doc, run):
    """Run something that must fail, and check the document is exactly as it was."""
    nodes = [(n.name(), n.type()) for n in doc.rootNode().childNodes()]
    size = (doc.width(), doc.height())
    pixels = bytes(doc.nodeByName("Background").pixelData(0, 0, doc.width(), doc.height()))
    with pytest.raises((KireiError, kc.KireiClientError)) as err:
        run()
    assert [(n.name(), n.type()) for n in doc.rootNode().childNodes()] == nodes
    assert (doc.width(), doc.height()) == size
    assert bytes(doc.nodeByName("Background").pixelData(0, 0, size[0], size[1])) == pixels
    return str(err.value)


@pytest.mark.skipif(not IO, reason="run by tests/test_krita.py")
def test_wrong_layers_and_cancel_leave_the_document_untouched(client):
    import threading
    doc = _doc(40, 30)
    try:
        doc.nodeByName("Background").setPixelData(bytes([10, 20, 30, 255]) * 1200, 0, 0, 40, 30)
        group = doc.createGroupLayer("a group")
        doc.rootNode().addChildNode(group, None)
        vector = doc.createVectorLayer("shapes")
        doc.rootNode().addChildNode(vector, None)
        assert "group" in _unchanged(doc, lambda: restore_now(client, doc, group))
        assert "vector layer" in _unchanged(doc, lambda: restore_now(client, doc, vector))
        assert "Select the paint layer" in _unchanged(doc, lambda: restore_now(client, doc, None))
        assert "Open a document" in str(pytest.raises(KireiError, restore_now, client, None, None).value)
        cancel = threading.Event()
        cancel.set()
        bg = doc.nodeByName("Background")
        assert "cancelled" in _unchanged(doc, lambda: restore_now(client, doc, bg, scale=2, cancel=cancel))
        if not masks_supported():  # Krita 5.1: a mask asked for is refused before the worker is asked
            assert "Krita 5.2 or later" in _unchanged(doc, lambda: restore_now(client, doc, bg, matte=True))
        empty = Selection()
        empty.select(0, 0, 5, 5, 255)
        doc.setSelection(empty)
        far = doc.createNode("far", "paintlayer")
        doc.rootNode().addChildNode(far, None)
        far.setPixelData(bytes([1, 2, 3, 255]) * 25, 30, 20, 5, 5)
        assert "selection" in _unchanged(doc, lambda: restore_now(client, doc, far))
    finally:
        doc.close()


class _During(object):
    """The real client, and something the user does to the document while the worker runs."""

    def __init__(self, client, change):
        self.client, self.change = client, change

    def restore(self, *args, **kw):
        self.change()
        return self.client.restore(*args, **kw)


def _layers(doc):
    return [n.name() for n in doc.rootNode().childNodes()]


@pytest.mark.skipif(not IO, reason="run by tests/test_krita.py")
@pytest.mark.parametrize("change, words, size, layers", [
    (lambda d: d.nodeByName("Background").remove(), "was deleted during the run", (40, 30), []),
    (lambda d: d.resizeImage(0, 0, 50, 30), "canvas was resized during the run", (50, 30), ["Background"]),
], ids=["layer-deleted", "canvas-resized"])
def test_a_document_changed_during_the_run_is_left_as_the_user_left_it(client, change, words, size, layers):
    doc = _doc(40, 30)
    try:
        bg = doc.nodeByName("Background")
        bg.setPixelData(bytes([10, 20, 30, 255]) * 1200, 0, 0, 40, 30)
        with pytest.raises(KireiError, match=words):
            restore_now(_During(client, lambda: (change(doc), doc.waitForDone())), doc, bg, scale=2, watermark="none")
        assert ((doc.width(), doc.height()), _layers(doc)) == (size, layers)
    finally:
        doc.close()


@pytest.mark.skipif(not IO, reason="run by tests/test_krita.py")
def test_a_failure_after_the_scaling_puts_the_document_back(client, monkeypatch):
    from kirei import restore
    doc = _doc(40, 30)
    try:
        bg = doc.nodeByName("Background")
        bg.setPixelData(bytes([10, 20, 30, 255]) * 1200, 0, 0, 40, 30)
        real, calls = restore._what_changed, []

        def after_the_scaling(*args):  # the second look, once the document is scaled, finds a change
            calls.append(args)
            return real(*args) if len(calls) == 1 else "Something changed"
        monkeypatch.setattr(restore, "_what_changed", after_the_scaling)
        with pytest.raises(KireiError, match="Something changed. The document was scaled back"):
            restore_now(client, doc, bg, scale=2, watermark="none")
        assert len(calls) == 2
        assert ((doc.width(), doc.height()), _layers(doc)) == ((40, 30), ["Background"])
        assert bytes(bg.pixelData(0, 0, 40, 30)) == bytes([10, 20, 30, 255]) * 1200  # one colour resamples exactly
    finally:
        doc.close()


def _until(done, seconds):
    """Run Krita's event loop (the controller's results come back through it) until done() or `seconds`."""
    import time

    from kirei.qt import QtWidgets
    deadline = time.time() + seconds
    while not done() and time.time() < deadline:
        QtWidgets.QApplication.processEvents()
        time.sleep(0.02)
    QtWidgets.QApplication.processEvents()
    return done()


def _documents(prefix, count, w, h):
    """Documents holding $KIREI_KRITA_IO/named/PREFIX_I.raw (RGBA), as if opened from PREFIX_I.png."""
    docs = []
    for i in range(count):
        d = _doc(w, h)
        with open(os.path.join(IO, "named", "%s_%d.raw" % (prefix, i)), "rb") as fh:
            d.nodeByName("Background").setPixelData(_bgra(fh.read(), 1), 0, 0, w, h)
        d.setFileName(os.path.join(IO, "named", "%s_%d.png" % (prefix, i)))
        d.refreshProjection()
        d.waitForDone()
        docs.append(d)
    return docs


@pytest.mark.skipif(not IO, reason="run by tests/test_krita.py")
def test_named_profile_round_trip():
    """The docker's estimate from open documents stores the profile by name in the config folder
    ($KIREI_CONFIG_DIR, where the command line had stored one already) and selects it; the docker
    lists both; a restore with the name adds the layer and leaves the source alone; an estimate its
    checks refuse stores nothing. tests/test_krita.py checks the rest with `python -m core profiles`."""
    from kirei.controller import pictures_from_documents
    from kirei.docker import KireiDocker
    with open(os.path.join(IO, "named", "named.json")) as fh:
        spec = json.load(fh)
    w, h, name = spec["width"], spec["height"], spec["name"]
    k, c = Krita.instance(), KireiDocker.controller
    messages = []
    c.message.connect(lambda text, error: messages.append((text, error)))
    out = {"stored_before": kc.profile_names()}
    docs = _documents("stamped", spec["stamped"], w, h)
    try:
        docker = KireiDocker()
        out["listed_before"] = [docker.profile.itemText(i) for i in range(docker.profile.count())]
        assert c.estimate(pictures_from_documents(docs), name)
        assert _until(lambda: c.running is None, 300), "the estimate did not finish"
        out["estimate_message"] = messages[-1]
        out["stored"] = kc.profile_names()
        out["listed"] = [docker.profile.itemText(i) for i in range(docker.profile.count())]
        out["selected"] = [c.profile, c.mode, docker.profile.currentText()]

        src = docs[1].nodeByName("Background")
        before = bytes(src.pixelData(0, 0, w, h))
        k.writeSetting("kirei", "scale", "1")
        assert c.restore(docs[1], src)
        assert _until(lambda: c.running is None, 300), "the restore did not finish"
        out["restore_message"] = messages[-1]
        out["layers"] = _layers(docs[1])
        out["source_untouched"] = bytes(src.pixelData(0, 0, w, h)) == before
        with open(os.path.join(IO, "named", "restored.raw"), "wb") as fh:
            fh.write(_bgra(bytes(docs[1].nodeByName(out["layers"][-1]).pixelData(0, 0, w, h)), 1))
    finally:
        for d in docs:
            d.close()
    clean = _documents("clean", spec["clean"], w, h)
    try:
        assert c.estimate(pictures_from_documents(clean), "nothing-here")
        assert _until(lambda: c.running is None, 300), "the estimate did not finish"
        out["refused_message"] = messages[-1]
        out["stored_after_refused"] = kc.profile_names()
        out["mode_after_refused"] = c.mode
    finally:
        for d in clean:
            d.close()
    with open(os.path.join(IO, "named", "result.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    # what only Krita sees is checked here too, so that pytest in Krita names what failed
    assert out["estimate_message"][1] is False and "Profile stored as '%s'" % name in out["estimate_message"][0], out
    assert name in out["stored"] and name in out["listed"] and spec["cli_name"] in out["listed_before"], out
    assert out["selected"] == [name, "profile", name], out
    assert out["layers"] == ["Background", "Kirei (profile)"] and out["source_untouched"], out
    assert out["refused_message"][1] is True and "Nothing was stored as 'nothing-here'" in out["refused_message"][0]
    assert out["stored_after_refused"] == out["stored"] and out["mode_after_refused"] == "blind", out
