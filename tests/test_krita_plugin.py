"""The Krita plugin without Krita: its logic and its docker on the Krita API stubs
(tests/krita_stubs), against a real worker. Real Krita runs tests/test_krita.py.

The stubs are built on PyQt5 (Krita 5) unless KIREI_QT=6 (PyQt6, Krita 6);
test_the_same_tests_pass_under_pyqt6 runs this file again that way, in a process of its own
(one Qt per process, as in Krita)."""
import importlib.util
import os
import re
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from core.blend import stamp
from core.pipeline import Options
from core.region import restore_region
from tests.conftest import ROOT, picture

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QT = {"5": "PyQt5", "6": "PyQt6"}.get(os.environ.get("KIREI_QT", "5"))
assert QT, "KIREI_QT must be 5 or 6"
if os.environ.get("KIREI_REQUIRE_HOSTS"):
    importlib.import_module(QT + ".QtWidgets")  # in CI these tests must run, never skip
# the PyQt wheels need the system's libGL: a bare machine has none (apt-get install libgl1)
pytest.importorskip(QT + ".QtWidgets", reason="the docker's tests need %s and libGL (pip install .[test]; "
                                              "apt-get install libgl1)" % QT, exc_type=ImportError)
sys.path[:0] = [os.path.join(ROOT, "tests", "krita_stubs"), os.path.join(ROOT, "plugins", "krita")]
_widgets = importlib.import_module(QT + ".QtWidgets")
QApplication, QLabel, QPushButton = _widgets.QApplication, _widgets.QLabel, _widgets.QPushButton

import krita  # noqa: E402  (the stubs)
from kirei import pixels  # noqa: E402
from kirei.restore import KireiError, check_target, read_region, restore_now  # noqa: E402

APP = QApplication.instance() or QApplication([])


@pytest.fixture(autouse=True)
def use_worker(worker, monkeypatch, tmp_path):
    monkeypatch.setenv("KIREI_SERVER_URL", worker.url)
    monkeypatch.setenv("KIREI_TOKEN_FILE", worker.token_file)
    monkeypatch.setenv("KIREI_CONFIG_DIR", str(tmp_path / "config"))  # the test's own stored profiles


def _doc(w=40, h=30, model="RGBA", depth="U8", seed=3):
    d = krita.Krita.instance().createDocument(w, h, "t", model, depth, "", 72.0)
    rgba = np.dstack([np.rint(picture(w, h, seed) * 255), np.full((h, w), 255)]).astype(np.uint8)
    d.nodeByName("Background").setPixelData(rgba[..., [2, 1, 0, 3]].tobytes(), 0, 0, w, h)
    return d, rgba


def _layer_rgba(node, w, h):
    return np.frombuffer(node.pixelData(0, 0, w, h), np.uint8).reshape(h, w, 4)[..., [2, 1, 0, 3]]


# ---------------------------------------------------------------- pixel layouts
def test_integer_rgba_is_bgra_in_krita():
    data, dtype, ch = pixels.to_worker(bytes([1, 2, 3, 4, 5, 6, 7, 8]), "RGBA", "U8")
    assert (data, dtype, ch) == (bytes([3, 2, 1, 4, 7, 6, 5, 8]), "uint8", 4)
    u16 = struct.pack("<8H", 1, 2, 3, 4, 500, 600, 700, 800)
    data, dtype, _ = pixels.to_worker(u16, "RGBA", "U16")
    assert struct.unpack("<8H", data) == (3, 2, 1, 4, 700, 600, 500, 800) and dtype == "uint16"
    assert pixels.from_worker(data, "RGBA", "U16") == u16


def test_float_layers_travel_as_float32():
    halves = struct.pack("<4e", 0.25, 0.5, 0.75, 1.0)
    data, dtype, _ = pixels.to_worker(halves, "RGBA", "F16")
    assert dtype == "float32" and struct.unpack("<4f", data) == (0.25, 0.5, 0.75, 1.0)
    assert pixels.from_worker(data, "RGBA", "F16") == halves
    f32 = struct.pack("<4f", 0.1, 0.2, 0.3, 1.0)
    assert pixels.to_worker(f32, "RGBA", "F32") == (f32, "float32", 4)
    assert pixels.to_worker(bytes([9, 255]), "GRAYA", "U8") == (bytes([9, 255]), "uint8", 2)


# ---------------------------------------------------------------- targets and regions
def test_wrong_targets_are_explained():
    d, _ = _doc()
    group, vector = d.createGroupLayer("g"), d.createVectorLayer("v")
    cmyk = krita.Krita.instance().createDocument(8, 8, "c", "CMYKA", "U8", "", 72.0)
    for doc, node, words in ((None, None, "Open a document"), (d, None, "Select the paint layer"),
                             (d, group, "a group"), (d, vector, "a vector layer"),
                             (cmyk, cmyk.nodeByName("Background"), "CMYKA")):
        with pytest.raises(KireiError, match=words):
            check_target(doc, node)


def test_region_is_the_selection_inside_the_layer():
    d, _ = _doc(40, 30)
    sel = krita.Selection()
    sel.select(5, 2, 8, 4, 255)
    sel.select(5, 6, 8, 1, 100)
    d.setSelection(sel)
    r = read_region(d, d.nodeByName("Background"))
    assert (r.x, r.y, r.width, r.height) == (5, 2, 8, 5)
    assert r.mask == bytes([255] * 32 + [100] * 8)
    far = krita.Selection()
    far.select(39, 29, 1, 1, 255)
    d.setSelection(far)
    small = d.createNode("small", "paintlayer")
    small.setPixelData(bytes([1, 2, 3, 255]) * 4, 0, 0, 2, 2)
    with pytest.raises(KireiError, match="selection doesn't cover"):
        read_region(d, small)


def test_a_document_from_a_jpeg_file_says_so_in_its_job(monkeypatch):
    """The job of a document opened from a .jpg carries "jpeg": true (the model's JPEG body); any other
    file, or none, sends nothing and the worker looks at the pixels."""
    from kirei import kirei_client
    from kirei.restore import send
    d, _ = _doc(16, 12)
    headers = []
    monkeypatch.setattr(kirei_client, "pack", lambda header, blobs=(): headers.append(header) or b"")
    monkeypatch.setattr(kirei_client.Client, "connect", lambda self: None)

    def sent(self, *args, **kwargs):  # the job went out: no worker needed to see its header
        raise kirei_client.KireiClientError("sent")
    monkeypatch.setattr(kirei_client.Client, "_request", sent)
    for name in ("/pics/Preview.JPG", "/pics/preview.jpeg", "/pics/preview.png", "/pics/work.kra", ""):
        d.setFileName(name)
        with pytest.raises(kirei_client.KireiClientError, match="sent"):
            send(kirei_client.Client("http://127.0.0.1:9", "t"), read_region(d, d.nodeByName("Background")), 2,
                 "none", None)
    assert [h.get("jpeg") for h in headers] == [True, True, None, None, None]


def test_restore_adds_a_layer_above_and_leaves_the_source(worker):
    from kirei import kirei_client
    d, rgba = _doc(40, 30)
    src = d.nodeByName("Background")
    top = d.createNode("top", "paintlayer")
    d.rootNode().addChildNode(top, src)
    sel = krita.Selection()
    sel.select(4, 3, 20, 15, 255)
    d.setSelection(sel)
    before = src.pixelData(0, 0, 40, 30)
    layer = restore_now(kirei_client.Client.from_environment(), d, src, scale=1, watermark="none")
    assert [n.name() for n in d.rootNode().childNodes()] == ["Background", "Kirei (upscale only)", "top"]
    assert src.pixelData(0, 0, 40, 30) == before
    mask = np.zeros((15, 20), np.uint8) + 255
    want = restore_region(rgba[3:18, 4:24], offset=(4, 3), mask=mask, options=Options(scale=1))
    got = _layer_rgba(layer, 40, 30)
    np.testing.assert_array_equal(got[3:18, 4:24], want.pixels)
    assert not got[:3].any() and not got[18:].any()


def test_a_profile_for_pictures_of_another_size_is_refused(tmp_path):
    """The plugin tells the worker the document's size: a profile made for bigger pictures (which
    covers this document's pixels) is refused, and the document is left alone."""
    from core.profile import Profile, save_profile
    from kirei import kirei_client
    d, _ = _doc(40, 30)
    path = str(tmp_path / "p.png")
    save_profile(Profile(np.full((35, 50), 0.3, np.float32), np.ones((35, 50, 3), np.float32)), path)
    with pytest.raises(kirei_client.KireiClientError, match="50x35"):
        restore_now(kirei_client.Client.from_environment(), d, d.nodeByName("Background"), scale=2,
                    watermark="profile", profile=path)
    assert [n.name() for n in d.rootNode().childNodes()] == ["Background"] and (d.width(), d.height()) == (40, 30)


# ---------------------------------------------------------------- the registered plugin and its docker
def _until(done, seconds):
    """Process Qt's events until done() or `seconds` have passed; done()'s last answer."""
    deadline = time.time() + seconds
    while not done() and time.time() < deadline:
        APP.processEvents()
        time.sleep(0.01)
    APP.processEvents()
    return done()


def _wait(controller, seconds=60):
    """Until the controller's run has ended. Past `seconds` the run is cancelled and waited for (every
    docker shares the plugin's one Controller: a run left going would fail the next tests with
    "already running"), and the test fails saying so."""
    if _until(lambda: controller.running is None, seconds):
        return
    kind = controller.running[0]
    controller.cancel()
    stopped = _until(lambda: controller.running is None, 120)
    pytest.fail("the %s run was still going after %s s: cancelled%s" % (
        kind, seconds, "" if stopped else ", but it did not stop within 120 s either"))


@pytest.fixture(autouse=True)
def shared_controller():
    """The plugin's one Controller (every docker's): idle before each test, and without the test's
    client after it (the next run finds the worker from the environment again)."""
    import kirei  # noqa: F401  registers with the stub Krita, making the controller
    from kirei.docker import KireiDocker
    c = KireiDocker.controller
    assert c.running is None, "the plugin's controller is still running a %s from an earlier test" % c.running[0]
    yield c
    c.client = None


def _plugin():
    import kirei  # noqa: F401  registers with the stub Krita
    from kirei.docker import DOCKER_ID, KireiDocker
    app = krita.Krita.instance()
    assert [f.position for f in app._factories if f.id == DOCKER_ID and f.cls is KireiDocker] == [
        krita.DockWidgetFactoryBase.DockPosition.DockRight]
    ext = [e for e in app.extensions() if type(e).__name__ == "KireiExtension"][0]
    return KireiDocker, ext


def test_docker_restores_the_active_layer(tmp_path):
    KireiDocker, ext = _plugin()
    app = krita.Krita.instance()
    app.app_data = str(tmp_path)
    ext.setup()
    assert (tmp_path / "actions" / "kirei.action").exists()
    docker = KireiDocker()
    assert docker.windowTitle() == "Kirei"
    d, rgba = _doc(32, 24, seed=5)
    d.setActiveNode(d.nodeByName("Background"))
    app.setActiveDocument(d)
    docker.scale.setCurrentIndex(1)  # 2x
    docker.mode.setCurrentIndex(2)  # don't remove
    docker.findChild(QPushButton, "kirei_restore_button").click()
    assert docker.cancel_button.isEnabled()
    _wait(docker.controller)
    label = docker.findChild(QLabel, "kirei_message").text()
    assert "Done in" in label, label
    assert (d.width(), d.height()) == (64, 48)
    layer = d.nodeByName("Kirei x2 (upscale only)")
    want = restore_region(rgba, options=Options(scale=2)).pixels
    np.testing.assert_array_equal(_layer_rgba(layer, 64, 48), want)
    assert docker.bar.value() == 1000 and docker.restore_button.isEnabled()

    # the action runs the same thing; on a group layer it explains and changes nothing
    window = krita.Window()
    ext.createActions(window)
    group = d.createGroupLayer("g")
    d.rootNode().addChildNode(group, None)
    d.setActiveNode(group)
    nodes = [n.name() for n in d.rootNode().childNodes()]
    app.action("kirei_restore").trigger()
    _wait(docker.controller)
    assert "a group" in docker.findChild(QLabel, "kirei_message").text()
    assert [n.name() for n in d.rootNode().childNodes()] == nodes


def test_docker_lists_the_workers_models_and_sends_the_one_chosen(monkeypatch):
    """The Model list comes from the worker's health answer; the choice is saved and goes in the job's
    header, and the worker runs that model."""
    from kirei import kirei_client
    from kirei.controller import offered_models
    KireiDocker, _ = _plugin()
    app = krita.Krita.instance()
    app.writeSetting("kirei", "model", "kirei-2")
    docker = KireiDocker()
    assert [docker.model.itemData(i) for i in range(docker.model.count())] == ["kirei-2", "kirei-fast"]
    assert _until(lambda: "(fast" in docker.model.itemText(1), 60), docker.model.itemText(1)  # the worker's words
    assert docker.model.currentData() == "kirei-2"
    headers = []
    real_pack = kirei_client.pack
    monkeypatch.setattr(kirei_client, "pack", lambda header, blobs=(): headers.append(header) or real_pack(header, blobs))
    try:
        docker.model.setCurrentIndex(docker.model.findData("kirei-fast"))
        assert app.readSetting("kirei", "model", "") == "kirei-fast"
        d, rgba = _doc(32, 24, seed=8)
        d.setActiveNode(d.nodeByName("Background"))
        app.setActiveDocument(d)
        app.writeSetting("kirei", "scale", "2")
        app.writeSetting("kirei", "mode", "none")
        assert docker.controller.restore()
        _wait(docker.controller)
        assert "Done in" in docker.findChild(QLabel, "kirei_message").text()
        assert [h.get("model") for h in headers] == ["kirei-fast"]
        got = _layer_rgba(d.nodeByName("Kirei x2 (upscale only)"), 64, 48)
        np.testing.assert_array_equal(got, restore_region(rgba, options=Options(scale=2, model="kirei-fast")).pixels)
        assert not np.array_equal(got, restore_region(rgba, options=Options(scale=2)).pixels)
        # a saved model the worker doesn't have gives way to its default, shown and saved
        docker._list_models(offered_models({"models": [{"name": "kirei-2", "speed": "slow"}],
                                            "default_model": "kirei-2"}))
        assert docker.model.count() == 1 and app.readSetting("kirei", "model", "") == "kirei-2"
    finally:
        app.writeSetting("kirei", "model", "kirei-2")


def _headers_of_a_run(monkeypatch, seed):
    """The docker class, the Krita app and the list that will hold each request's header, with a
    small document active and the watermark mode "none"."""
    from kirei import kirei_client
    KireiDocker, _ = _plugin()
    app = krita.Krita.instance()
    headers = []
    real_pack = kirei_client.pack
    monkeypatch.setattr(kirei_client, "pack", lambda header, blobs=(): headers.append(header) or real_pack(header, blobs))
    d, _ = _doc(32, 24, seed=seed)
    d.setActiveNode(d.nodeByName("Background"))
    app.setActiveDocument(d)
    app.writeSetting("kirei", "mode", "none")
    return KireiDocker, app, headers


def test_the_mask_check_box_is_saved_and_asks_the_worker_where_krita_can_make_masks(monkeypatch):
    """Krita 5.2+ (Document.createTransparencyMask): the box is offered, its state saved and sent
    in the job's header; Krita 5.1 (the stubs, like it, have no such call): the box is greyed out
    and nothing is asked, whatever was saved."""
    KireiDocker, app, headers = _headers_of_a_run(monkeypatch, 9)
    try:
        app.writeSetting("kirei", "matte", "True")
        docker = KireiDocker()
        assert not docker.matte.isEnabled() and not docker.controller.matte
        monkeypatch.setattr(krita.Document, "createTransparencyMask", lambda self, name: None, raising=False)
        docker = KireiDocker()
        assert docker.matte.isEnabled() and docker.matte.isChecked()
        docker.matte.setChecked(False)
        assert app.readSetting("kirei", "matte", "") == "False"
        docker.matte.setChecked(True)
        assert app.readSetting("kirei", "matte", "") == "True"
        assert docker.controller.restore()
        _wait(docker.controller)
        assert "Done in" in docker.findChild(QLabel, "kirei_message").text()
        assert [h.get("matte") for h in headers if "width" in h] == [True]
    finally:
        app.writeSetting("kirei", "matte", "False")


def test_the_best_quality_box_is_saved_and_asks_the_worker_for_eight_views(monkeypatch):
    """Checked, the box is saved and the job's header asks for "tta": true; unchecked, the header
    says nothing and the worker decides."""
    KireiDocker, app, headers = _headers_of_a_run(monkeypatch, 10)
    try:
        docker = KireiDocker()
        assert not docker.best.isChecked() and not docker.controller.best
        for on in (True, False):
            docker.best.setChecked(on)
            assert app.readSetting("kirei", "best", "") == str(on) and docker.controller.best is on
            assert docker.controller.restore()
            _wait(docker.controller)
            assert "Done in" in docker.findChild(QLabel, "kirei_message").text()
        assert [h.get("tta") for h in headers if "width" in h] == [True, None]
        docker.best.setChecked(True)
        assert KireiDocker().best.isChecked()  # the saved state, in the next docker
    finally:
        app.writeSetting("kirei", "best", "False")


def test_offered_models():
    from kirei.controller import offered_models
    assert offered_models() == offered_models({"version": "old"}) == [
        ("kirei-2", "kirei-2 (best)"), ("kirei-fast", "kirei-fast (for slow machines)")]
    listed = {"models": [{"name": "kirei-fast", "speed": "fast"}, {"name": "kirei-2", "speed": ""}, "odd"],
              "default_model": "kirei-2"}
    assert offered_models(listed) == [("kirei-2", "kirei-2"), ("kirei-fast", "kirei-fast (fast)")]


def test_docker_cancel_leaves_the_document_untouched():
    KireiDocker, _ = _plugin()
    docker = KireiDocker()
    app = krita.Krita.instance()
    d, _ = _doc(200, 150, seed=6)
    d.setActiveNode(d.nodeByName("Background"))
    app.setActiveDocument(d)
    app.writeSetting("kirei", "scale", "4")
    app.writeSetting("kirei", "mode", "none")
    c = docker.controller
    assert c.restore()
    docker.cancel_button.click()  # while the worker has the job
    _wait(c)
    assert "Cancelled" in docker.findChild(QLabel, "kirei_message").text()
    assert [n.name() for n in d.rootNode().childNodes()] == ["Background"]
    assert (d.width(), d.height()) == (200, 150)


class Dialogs:
    """Answers the modal dialogs the docker opens, in turn, as a user would: a str is typed into a
    QInputDialog and accepted, None cancels it, "yes"/"no" click a QMessageBox's button. `shown`: each
    dialog's text, `left`: the answers no dialog asked for."""

    def __init__(self, *answers):
        from kirei.qt import QtCore
        self.left, self.shown = list(answers), []
        self.timer = QtCore.QTimer()
        self.timer.timeout.connect(self._answer)

    def __enter__(self):
        self.timer.start(20)
        return self

    def __exit__(self, *exc):
        self.timer.stop()

    def _answer(self):
        w = APP.activeModalWidget()
        if w is None or not w.isVisible() or not self.left:
            return
        answer = self.left.pop(0)
        if isinstance(w, _widgets.QInputDialog):
            self.shown.append((w.labelText(), w.textValue()))
            if answer is None:
                w.reject()
            else:
                w.setTextValue(answer)
                w.accept()
        else:
            self.shown.append(w.text())
            buttons = _widgets.QMessageBox.StandardButton
            w.button(buttons.Yes if answer == "yes" else buttons.No).click()


def _stamped_documents(watermark, n=8, name="/pics/studio_a-0001.png"):
    """n open documents (only these) of the same 120x160 stamped picture series; the first from file `name`."""
    alpha, color = watermark
    for doc in list(krita.Krita.instance().documents()):
        doc.close()
    docs = []
    for seed in range(n):
        d = krita.Krita.instance().createDocument(120, 160, "s", "RGBA", "U8", "", 72.0)
        px = np.rint(stamp(picture(120, 160, seed + 40), alpha, color) * 255).astype(np.uint8)
        rgba = np.dstack([px, np.full((160, 120), 255, np.uint8)])
        d.nodeByName("Background").setPixelData(rgba[..., [2, 1, 0, 3]].tobytes(), 0, 0, 120, 160)
        d.setFileName(name.replace("0001", "%04d" % (seed + 1)))
        docs.append((d, rgba))
    return docs


def test_estimate_stores_a_named_profile_that_a_restore_uses(watermark, monkeypatch):
    """Estimate profile... > From the open documents: asks a name (the documents' series by default),
    stores the profile by that name with its record, and selects it; Restore then sends that profile."""
    from core.profile import load_profile
    from kirei import kirei_client
    KireiDocker, _ = _plugin()
    app = krita.Krita.instance()
    app.writeSetting("kirei", "profile", "")
    app.writeSetting("kirei", "mode", "blind")
    docker = KireiDocker()
    docs = _stamped_documents(watermark)
    with Dialogs("studio_a") as dialogs:  # the default, accepted
        docker._estimate_from_documents()
    assert len(dialogs.shown) == 1 and dialogs.shown[0][1] == "studio_a", dialogs.shown
    _wait(docker.controller, 120)
    message = docker.findChild(QLabel, "kirei_message").text()
    assert "Profile stored as 'studio_a'" in message, message
    assert kirei_client.profile_names() == ["studio_a"]
    path = kirei_client.profile_path("studio_a")
    assert np.abs(load_profile(path).alpha - watermark[0]).mean() < 0.03
    record = kirei_client.profile_record("studio_a")
    assert record["size"] == [120, 160] and record["inputs"] == 8 and record["by"].startswith("Kirei in Krita ")
    assert record["report"] in message and record["report"].startswith("watermark on 8 of 8 pictures")
    assert record["made"][:4] == time.strftime("%Y")
    assert docker.controller.mode == "profile" and docker.mode.currentData() == "profile"
    assert docker.controller.profile == "studio_a" and docker.profile.currentText() == "studio_a"
    assert [docker.profile.itemText(i) for i in range(docker.profile.count())] == ["studio_a", "Choose a file..."]

    # Restore with it: the name is resolved to the stored file, which goes in the job
    headers = []
    real_pack = kirei_client.pack
    monkeypatch.setattr(kirei_client, "pack",
                        lambda header, blobs=(): headers.append(header) or real_pack(header, blobs))
    d, rgba = docs[2]
    src = d.nodeByName("Background")
    before = src.pixelData(0, 0, 120, 160)
    d.setActiveNode(src)
    app.setActiveDocument(d)
    docker.scale.setCurrentIndex(0)  # 1x
    docker.restore_button.click()
    _wait(docker.controller)
    assert "Done in" in docker.findChild(QLabel, "kirei_message").text()
    assert [h["watermark"] for h in headers] == ["profile"]
    assert headers[0]["profile_bytes"] == os.path.getsize(path)
    assert [n.name() for n in d.rootNode().childNodes()] == ["Background", "Kirei (profile)"]
    assert src.pixelData(0, 0, 120, 160) == before
    want = restore_region(rgba, profile=load_profile(path), options=Options(scale=1)).pixels
    np.testing.assert_array_equal(_layer_rgba(d.nodeByName("Kirei (profile)"), 120, 160), want)


def test_the_name_asked_refuses_a_bad_one_and_replaces_only_when_told():
    from kirei import kirei_client
    KireiDocker, _ = _plugin()
    docker = KireiDocker()
    kirei_client.store_profile("studio_a", b"old", {"made": "2026-11-02T10:00:00+00:00"})
    with Dialogs("../evil", "studio_a", "no", "studio_a", "yes") as dialogs:
        assert docker._ask_profile_name("studio_a-2") == ("studio_a", True)
    first, bad, _, again, _ = dialogs.shown
    assert first == ("Store the measured profile as (letters, digits, '-' and '_'):", "studio_a-2")
    assert bad[0].startswith("A profile name is 1 to 64 letters") and "'../evil' is not one" in bad[0]
    assert "A profile called 'studio_a' is already stored (made 2026-11-02). Replace it?" == dialogs.shown[2]
    assert again[0].startswith("'studio_a' is already stored: choose another name.")
    with Dialogs("studio_b") as dialogs:
        assert docker._ask_profile_name("x") == ("studio_b", False)
    with Dialogs(None) as dialogs:
        assert docker._ask_profile_name("x") == (None, False)
    assert dialogs.shown and not dialogs.left
    # the controller refuses them too, before any measuring
    c, pics = docker.controller, [(b"\0" * 16, 2, 2, 4, "uint8")] * 2
    assert not c.estimate(pics, "a/b") and "'a/b' is not one" in docker.findChild(QLabel, "kirei_message").text()
    assert not c.estimate(pics, "studio_a")
    assert "already stored" in docker.findChild(QLabel, "kirei_message").text() and c.running is None
    assert open(kirei_client.profile_path("studio_a"), "rb").read() == b"old"


def test_default_profile_names():
    from kirei.controller import default_profile_name
    assert default_profile_name("/pics/studio_a-0012.jpg") == "studio_a"
    assert default_profile_name("/pics/Studio A (preview) 3.png") == "Studio-A-preview"
    assert default_profile_name("/pics/previews/") == "previews"
    assert default_profile_name("/pics/0012.jpg") == "0012"
    assert default_profile_name("/pics/\u6a23\u672c.png") == default_profile_name("") == "watermark"
    assert default_profile_name("/pics/con.png") == "watermark"  # Windows keeps it
    assert default_profile_name("/pics/studio_a-1.jpg", ["studio_a", "Studio_A-2"]) == "studio_a-3"
    assert default_profile_name("/x/" + "a" * 80 + ".png", ["a" * 64]) == "a" * 62 + "-2"


def test_the_record_says_what_made_the_profile():
    from kirei.controller import estimate_record
    report = ("watermark on 7 of 8 pictures, at x 4-120, y 33-160 (21% of the picture), mean opacity 0.36, "
              "confidence 0.91")
    rec = estimate_record(report, (120, 160), 8)
    assert (rec["report"], rec["size"], rec["inputs"]) == (report, [120, 160], 8)
    assert rec["by"].startswith("Kirei in Krita ") and rec["made"][:4].isdigit()


def test_docker_lists_the_stored_profiles_and_remembers_a_name_or_a_file(tmp_path, monkeypatch):
    from kirei import kirei_client
    KireiDocker, _ = _plugin()
    app = krita.Krita.instance()
    app.writeSetting("kirei", "profile", "")
    docker = KireiDocker()

    def entries():
        return [(docker.profile.itemText(i), docker.profile.itemData(i)) for i in range(docker.profile.count())]
    assert entries() == [("Choose a file...", "")] and docker.controller.profile == ""
    kirei_client.store_profile("b-studio", b"png", {"report": "watermark on 3 of 3 pictures"})
    kirei_client.store_profile("A_studio", b"png")
    docker.show()  # shown again: the list is read afresh
    assert _until(lambda: docker.profile.count() == 3, 5)
    docker.hide()
    assert entries() == [("A_studio", "A_studio"), ("b-studio", "b-studio"), ("Choose a file...", "")]
    assert docker.controller.profile == "A_studio" == docker.profile.currentData()  # shown is what is sent
    assert docker.profile.itemData(1, _tooltip_role()) == "watermark on 3 of 3 pictures"
    docker.profile.activated.emit(1)  # the user picks b-studio
    assert app.readSetting("kirei", "profile", "") == "b-studio"
    chosen = str(tmp_path / "wm.png")
    monkeypatch.setattr(docker, "_choose_profile_file", lambda: chosen)
    docker.profile.activated.emit(2)  # Choose a file...
    assert app.readSetting("kirei", "profile", "") == chosen
    assert entries()[2:] == [("wm.png", chosen), ("Choose a file...", "")] and docker.profile.currentIndex() == 2
    monkeypatch.setattr(docker, "_choose_profile_file", lambda: "")  # the file dialog cancelled
    docker.profile.activated.emit(3)
    assert app.readSetting("kirei", "profile", "") == chosen and docker.profile.currentData() == chosen
    # a docker made later shows the saved choice; a name removed meanwhile is shown so, and Restore says why
    app.writeSetting("kirei", "profile", "b-studio")
    kirei_client.remove_profile("b-studio")
    later = KireiDocker()
    assert later.profile.currentText() == "b-studio (not stored)"
    d, _ = _doc(16, 12)
    d.setActiveNode(d.nodeByName("Background"))
    app.setActiveDocument(d)
    app.writeSetting("kirei", "mode", "profile")
    assert not later.controller.restore()
    assert "no stored profile called 'b-studio'" in later.findChild(QLabel, "kirei_message").text()
    app.writeSetting("kirei", "profile", chosen)  # a file that isn't there
    assert not later.controller.restore()
    assert "wm.png is not there" in later.findChild(QLabel, "kirei_message").text()
    assert [n.name() for n in d.rootNode().childNodes()] == ["Background"]


def _tooltip_role():
    from kirei.qt import Qt
    return Qt.ItemDataRole.ToolTipRole


def test_an_estimate_without_a_watermark_falls_back_to_blind(tmp_path):
    """Documents that share no stamp: no profile is saved, the docker says why and goes on blind."""
    KireiDocker, _ = _plugin()
    from kirei.controller import pictures_from_documents
    docker = KireiDocker()
    for doc in list(krita.Krita.instance().documents()):
        doc.close()
    for seed in range(6):
        d = krita.Krita.instance().createDocument(120, 160, "c", "RGBA", "U8", "", 72.0)
        px = np.rint(picture(120, 160, seed + 60) * 255).astype(np.uint8)
        rgba = np.dstack([px, np.full((160, 120), 255, np.uint8)])
        d.nodeByName("Background").setPixelData(rgba[..., [2, 1, 0, 3]].tobytes(), 0, 0, 120, 160)
    docker.controller.set_setting("mode", "profile")
    docker.mode.setCurrentIndex(1)
    assert docker.controller.estimate(pictures_from_documents(krita.Krita.instance().documents()), "clean")
    _wait(docker.controller, 120)
    from kirei import kirei_client
    assert kirei_client.profile_names() == [] and not os.path.exists(kirei_client.profiles_dir())
    assert docker.controller.mode == "blind" and docker.mode.currentData() == "blind"
    message = docker.findChild(QLabel, "kirei_message").text()
    assert "No watermark shared by the 6 pictures was found" in message and "Nothing was stored as 'clean'" in message


def test_docker_says_when_the_engine_is_not_installed(tmp_path, monkeypatch):
    KireiDocker, _ = _plugin()
    docker = KireiDocker()
    monkeypatch.delenv("KIREI_SERVER_URL")
    monkeypatch.setenv("KIREI_CONFIG_DIR", str(tmp_path))  # no settings.json: install.py never ran
    c = docker.controller
    c.client = None
    app = krita.Krita.instance()
    d, _ = _doc(16, 12)
    d.setActiveNode(d.nodeByName("Background"))
    app.setActiveDocument(d)
    app.writeSetting("kirei", "mode", "none")
    assert c.restore()
    _wait(c)
    text = docker.findChild(QLabel, "kirei_message").text()
    assert "install.py" in text and "unchanged" in text, text
    assert [n.name() for n in d.rootNode().childNodes()] == ["Background"]


def test_pictures_from_a_folder(tmp_path):
    from PIL import Image

    from kirei.controller import pictures_from_folder
    rgb = (picture(33, 21, seed=9) * 255).astype(np.uint8)  # odd width: rows with padding in QImage
    for i in range(3):
        Image.fromarray(np.roll(rgb, i, axis=1)).save(tmp_path / f"p{i}.png")
    Image.fromarray(rgb[:10]).save(tmp_path / "other-size.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    pics = pictures_from_folder(str(tmp_path))
    assert len(pics) == 3
    data, w, h, c, dtype = pics[0]
    assert (w, h, c, dtype) == (33, 21, 4, "uint8")
    got = np.frombuffer(data, np.uint8).reshape(21, 33, 4)
    np.testing.assert_array_equal(got[..., :3], rgb)
    assert (got[..., 3] == 255).all()


# ---------------------------------------------------------------- the worker's status, asked from a thread
def _signal(signal, action, seconds=60):
    """The first value `signal` carries after action() (Qt delivers it while we process events)."""
    seen = []
    signal.connect(seen.append)
    action()
    assert _until(lambda: seen, seconds), "no signal within %d s" % seconds
    return seen[0]


@pytest.mark.parametrize("pid", ["dead", "alive"])
def test_status_never_starts_a_worker(tmp_path, monkeypatch, pid):
    """worker.json left by a worker that is gone (dead pid, or a live pid that isn't a worker):
    the docker's status line says so and starts nothing."""
    import json
    import subprocess

    from kirei.controller import Controller
    monkeypatch.delenv("KIREI_SERVER_URL")
    monkeypatch.setenv("KIREI_CONFIG_DIR", str(tmp_path))
    started = tmp_path / "started"
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\ntouch '%s'\n" % started)
    python.chmod(0o755)
    (tmp_path / "settings.json").write_text(json.dumps({"python": str(python)}))
    (tmp_path / "token").write_text("t")
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "worker.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "token_file": str(tmp_path / "token"),
                                                      "pid": gone.pid if pid == "dead" else os.getpid()}))
    c = Controller()
    text = _signal(c.worker_status, c.refresh_status)
    assert "starts when needed" in text, text  # the next run starts one
    assert not started.exists(), "asking for the status started a worker"


def test_status_thread_leaves_the_controllers_client_alone(monkeypatch):
    """Only the GUI thread makes or drops the controller's client: a status query still in flight
    can't put back a client the GUI thread has just dropped."""
    import threading

    from kirei import kirei_client as kc
    from kirei.controller import Controller
    threads = []
    real = kc.Client.from_environment
    monkeypatch.setattr(kc.Client, "from_environment",
                        classmethod(lambda cls, **kw: threads.append(threading.current_thread()) or real(**kw)))
    c = Controller()
    assert "Worker:" in _signal(c.worker_status, c.refresh_status)
    assert threads and all(t is threading.main_thread() for t in threads)


# ---------------------------------------------------------------- a document changed during the run
class FakeWorker:
    """Answers like the worker (a nearest-neighbour upscale of the region), after calling `during`
    (what the user did to the document while the worker ran)."""
    local, url = False, "fake"

    def __init__(self, during=None):
        self.during = during

    def health(self):
        return {"device_name": "fake"}

    def restore(self, pixels, width, height, channels, dtype, offset=(0, 0), scale=2, **kw):
        from kirei import kirei_client as kc
        if self.during:
            self.during()
        px = np.frombuffer(pixels, np.uint8).reshape(height, width, channels).repeat(scale, 0).repeat(scale, 1)
        return kc.Result({"width": width * scale, "height": height * scale, "channels": channels, "dtype": dtype,
                          "offset": [offset[0] * scale, offset[1] * scale]}, px.tobytes())


def _state(d):
    return (d.width(), d.height(), [n.name() for n in d.rootNode().childNodes()],
            d.nodeByName("Background").pixelData(0, 0, d.width(), d.height()) if d.nodeByName("Background") else None)


@pytest.mark.parametrize("change, words", [
    (lambda d: d.nodeByName("Background").remove(), 'layer "Background" was deleted'),
    (lambda d: d.resizeImage(0, 0, 50, 30), "canvas was resized"),
    (lambda d: d.close(), "document was closed"),
], ids=["layer-deleted", "canvas-resized", "document-closed"])
def test_a_document_changed_during_the_run_is_left_alone(change, words):
    d, _ = _doc(40, 30)
    src = d.nodeByName("Background")
    after = []
    with pytest.raises(KireiError, match=words) as err:
        restore_now(FakeWorker(lambda: (change(d), after.append(_state(d)))), d, src, scale=2, watermark="none")
    assert _state(d) == after[0]  # as the user left it: not scaled, no new layer
    assert "unchanged" in str(err.value)


def test_a_failure_after_the_scaling_puts_the_document_back(monkeypatch):
    d, _ = _doc(40, 30)
    src = d.nodeByName("Background")
    before = _state(d)
    real = krita.Node.addChildNode
    monkeypatch.setattr(krita.Node, "addChildNode", lambda self, child, above: (
        False if child.name().startswith("Kirei") else real(self, child, above)))
    with pytest.raises(KireiError, match="refused to add the new layer. The document was scaled back"):
        restore_now(FakeWorker(), d, src, scale=2, watermark="none")
    assert _state(d) == before
    monkeypatch.setattr(krita.Node, "addChildNode", lambda self, child, above: 1 / 0)
    with pytest.raises(KireiError, match="Unexpected error: ZeroDivisionError.*scaled back"):
        restore_now(FakeWorker(), d, src, scale=4, watermark="none")
    assert _state(d) == before


def test_a_wrong_answer_changes_nothing():
    d, _ = _doc(40, 30)
    before = _state(d)

    class Short(FakeWorker):
        def restore(self, *a, **kw):
            r = FakeWorker.restore(self, *a, **kw)
            r.pixels = r.pixels[:-1]
            return r
    with pytest.raises(KireiError, match="doesn't fit the layer.*unchanged"):
        restore_now(Short(), d, d.nodeByName("Background"), scale=2, watermark="none")
    assert _state(d) == before


def _docker_run(c, d, before_finish=None, worker=None, seconds=60):
    """Restore the active layer of `d` through the controller with a fake worker (the shared_controller
    fixture drops it after the test)."""
    krita.Krita.instance().setActiveDocument(d)
    d.setActiveNode(d.nodeByName("Background"))
    krita.Krita.instance().writeSetting("kirei", "mode", "none")
    krita.Krita.instance().writeSetting("kirei", "scale", "2")
    c.client = worker or FakeWorker()
    assert c.restore()
    if before_finish:
        before_finish()  # the result waits in Qt's queue until _wait processes events
    _wait(c, seconds)


def test_a_run_past_its_wait_is_cancelled_and_fails_the_test():
    """A run still going at _wait's deadline is cancelled and waited for, so that the next docker
    test finds the shared controller idle, and the test fails saying so (never passes on silently)."""
    from kirei import kirei_client as kc

    class Stuck(FakeWorker):
        def restore(self, *a, **kw):  # answers only a cancel
            kw["cancel"].wait(120)
            raise kc.Cancelled("cancelled")
    KireiDocker, _ = _plugin()
    docker = KireiDocker()
    c = docker.controller
    d, _ = _doc(16, 12)
    with pytest.raises(pytest.fail.Exception, match="restore run was still going after 0.2 s: cancelled$"):
        _docker_run(c, d, worker=Stuck(), seconds=0.2)
    assert c.running is None
    assert "Cancelled" in docker.findChild(QLabel, "kirei_message").text()


def test_a_run_stays_running_until_its_result_is_in_the_document(monkeypatch):
    """Applying a result waits for Krita (doc.waitForDone), whose event loop can deliver a poll or a
    second click: the run must still count as running there, and a second restore be refused."""
    KireiDocker, _ = _plugin()
    docker = KireiDocker()
    c = docker.controller
    d, _ = _doc(40, 30)
    seen = []

    def wait_for_done():  # what Krita's event loop may run while the document scales
        seen.append((c.running is not None, c.restore(), d.rootNode().childNodes()[-1].name()))
    monkeypatch.setattr(d, "waitForDone", wait_for_done)
    _docker_run(c, d)
    assert seen and seen[0] == (True, False, "Background"), seen
    assert [n.name() for n in d.rootNode().childNodes()][-1].startswith("Kirei x2")
    assert c.running is None and docker.restore_button.isEnabled()


def test_docker_says_what_changed_and_never_stays_busy(monkeypatch):
    KireiDocker, _ = _plugin()
    docker = KireiDocker()
    c = docker.controller
    d, _ = _doc(40, 30)
    _docker_run(c, d, lambda: d.nodeByName("Background").remove())
    assert "was deleted during the run" in docker.findChild(QLabel, "kirei_message").text()
    assert (d.width(), d.height(), d.rootNode().childNodes()) == (40, 30, [])
    assert c.running is None and docker.restore_button.isEnabled() and not docker.cancel_button.isEnabled()
    # a bug anywhere in the slot is said in the docker, which is ready for the next run
    import kirei.controller
    monkeypatch.setattr(kirei.controller, "apply_result", lambda *a: {}["boom"])
    d, _ = _doc(40, 30)
    _docker_run(c, d)
    assert "Unexpected error: KeyError" in docker.findChild(QLabel, "kirei_message").text()
    assert c.running is None and docker.restore_button.isEnabled() and not docker.cancel_button.isEnabled()


# ---------------------------------------------------------------- Krita 5 (PyQt5) and Krita 6 (PyQt6)
def test_the_plugin_takes_qt_from_the_host():
    """kirei.qt picks the binding Krita's API is built on (here the stubs'), and only that one is loaded."""
    from kirei import qt
    assert qt.BINDING == QT and qt.host_binding(krita.Krita) == QT
    assert qt.QObject is importlib.import_module(QT + ".QtCore").QObject and qt.QLabel is QLabel
    other = {"PyQt5": "PyQt6", "PyQt6": "PyQt5"}[QT]
    assert not [m for m in sys.modules if m.split(".")[0] == other]
    with pytest.raises(ImportError, match="neither PyQt5 nor PyQt6"):
        qt.host_binding(type("NotKrita", (object,), {}))


def test_the_same_tests_pass_under_pyqt6():
    """Krita 6 runs Python plugins under PyQt6: every test of this file, on stubs built on PyQt6."""
    if QT == "PyQt6":
        pytest.skip("this is the PyQt6 run")
    if importlib.util.find_spec("PyQt6") is None:  # found, not imported: one Qt per process
        assert not os.environ.get("KIREI_REQUIRE_HOSTS"), "CI must test the docker under PyQt6 (pip install .[test])"
        pytest.skip("PyQt6 is not installed (pip install .[test])")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-o", "addopts=",
                        os.path.abspath(__file__)], cwd=ROOT, env=dict(os.environ, KIREI_QT="6"),
                       capture_output=True, text=True, timeout=900)
    out = p.stdout + p.stderr
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    skipped = re.search(r"(\d+) skipped", summary)
    if p.returncode == 0 and not re.search(r"\d+ passed", summary) and not os.environ.get("KIREI_REQUIRE_HOSTS"):
        pytest.skip("PyQt6 is installed but doesn't load here: " + out[-500:])
    assert p.returncode == 0, out[-6000:]
    assert re.search(r"\d+ passed", summary) and skipped and skipped.group(1) == "1", out[-3000:]  # only this test
