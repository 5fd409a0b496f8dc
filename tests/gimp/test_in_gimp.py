"""Runs INSIDE real GIMP 3 (pytest in the python-fu-eval process): the Kirei plug-in, installed in
GIMP3_DIRECTORY as users install it, run through the PDB against a real worker on the host.

tests/test_gimp.py wrote cases.json and the input files into /project; these tests write the new
layers' pixels back there, and the host compares them with the engine's own answer.
"""
import json

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402
import pytest  # noqa: E402

PROC = "python-fu-kirei-restore"
CASES = json.load(open("/project/cases.json"))


def _proc():
    proc = Gimp.get_pdb().lookup_procedure(PROC)
    assert proc is not None, "the Kirei plug-in is not registered (plug-ins/kirei/kirei.py, executable?)"
    return proc


def _run(image, layer, **settings):
    cfg = _proc().create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [layer])
    for k, v in settings.items():
        cfg.set_property(k, v)
    return _proc().run(cfg)


def _read(drawable, fmt, x=0, y=0, w=None, h=None):
    w = drawable.get_width() if w is None else w
    h = drawable.get_height() if h is None else h
    return bytes(drawable.get_buffer().get(Gegl.Rectangle.new(x, y, w, h), 1.0, fmt, Gegl.AbyssPolicy.NONE))


def test_registered_in_the_enhance_menu():
    proc = _proc()
    assert "<Image>/Filters/Enhance" in list(proc.get_menu_paths())
    assert proc.get_menu_label() == "Kirei: Remove Watermark & Upscale..."


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_restore(case):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path("/project/" + case["input"]))
    try:
        src = image.get_layers()[0]
        fmt = case["format"]
        twin = src.copy()  # scaled along with the image: what the source must still equal
        image.insert_layer(twin, None, 1)
        twin.set_visible(False)
        if case.get("selection"):
            x, y, w, h = case["selection"]
            image.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)
            sx, sy, sw, sh = case["soft"]  # a band selected at half strength
            sel = image.get_selection()
            buf = sel.get_buffer()
            buf.set(Gegl.Rectangle.new(sx, sy, sw, sh), "Y u8", bytes([128]) * (sw * sh))
            buf.flush()
            sel.update(sx, sy, sw, sh)
            with open("/project/%s.mask" % case["name"], "wb") as fh:
                fh.write(_read(sel, "Y u8"))
        before = _read(src, fmt)
        settings = {"scale": str(case["scale"]), "watermark": case["watermark"]}
        if case.get("profile"):
            settings["profile"] = "/project/" + case["profile"]
        result = _run(image, src, **settings)
        assert result.index(0) == Gimp.PDBStatusType.SUCCESS, result.index(1)
        layers = image.get_layers()
        names = [l.get_name() for l in layers]
        new = layers[names.index(src.get_name()) - 1]  # right above the source
        assert new.get_name().startswith("Kirei")
        s = case["scale"]
        assert (image.get_width(), image.get_height()) == (case["width"] * s, case["height"] * s)
        if s == 1:
            assert _read(src, fmt) == before
        else:
            assert _read(src, fmt) == _read(twin, fmt)
        _, ox, oy = new.get_offsets()
        with open("/project/%s.out" % case["name"], "wb") as fh:
            fh.write(_read(new, fmt))
        with open("/project/%s.json" % case["name"], "w") as fh:
            json.dump({"name": new.get_name(), "offset": [ox, oy], "size": [new.get_width(), new.get_height()]}, fh)
    finally:
        image.delete()


def _state(image):
    layer = image.get_layers()[0]
    return ([l.get_name() for l in image.get_layers()], image.get_width(), image.get_height(),
            _read(layer, "R'G'B'A u8"))


@pytest.mark.parametrize("settings, words", [
    ({"watermark": "profile"}, "profile"),
    ({"watermark": "profile", "profile": "/project/not-rgba.png"}, "RGBA PNG"),
])
def test_errors_leave_the_image_as_it_was(settings, words):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path("/project/" + CASES[0]["input"]))
    try:
        before = _state(image)
        result = _run(image, image.get_layers()[0], scale="2", **settings)
        assert result.index(0) != Gimp.PDBStatusType.SUCCESS
        assert words in str(result.index(1))
        assert _state(image) == before
    finally:
        image.delete()
