"""Runs INSIDE real GIMP 3 (pytest in the python-fu-eval process): the Kirei plug-in, installed in
GIMP3_DIRECTORY as users install it, run through the PDB against a real worker on the host.

tests/test_gimp.py wrote cases.json and the input files into /project; these tests write the new
layers' pixels back there, and the host compares them with the engine's own answer.
"""
import json
import os

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
    assert proc.create_config().get_property("model") == "kirei-2"  # the default model, kirei-fast on request


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
        settings = {"scale": str(case["scale"]), "watermark": case["watermark"], "matte": bool(case.get("matte")),
                    "best-quality": bool(case.get("tta"))}
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
        mask = new.get_mask()
        if case.get("matte"):  # the watermark taken off, as a mask that leaves the picture as it is
            assert mask is not None and not new.get_apply_mask()
            with open("/project/%s.matte" % case["name"], "wb") as fh:
                fh.write(_read(mask, "Y u8"))
        else:
            assert mask is None
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


# ---------------------------------------------------------------- the plug-in's run, driven from here
# (the procedure runs in its own process: to act while the worker runs, these tests import the
# plug-in's module and call its run with a `wait` that does what a user could do meanwhile)
def _plugin():
    import sys
    folder = "/project/gimp3-home/plug-ins/kirei"
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import kirei
    return kirei


def _load():
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path("/project/" + CASES[0]["input"]))


def test_cancel_leaves_the_image_as_it_was():
    plugin = _plugin()
    image = _load()
    try:
        before = _state(image)

        def cancel(run):  # what the window's Cancel button does
            run.cancel()
            return plugin.wait_with_progress(run)
        with pytest.raises(plugin.Cancelled, match="Cancelled: the image is unchanged"):
            plugin.restore_image(image, image.get_layers()[0], 4, "none", None, wait=cancel)
        assert _state(image) == before
    finally:
        image.delete()


@pytest.mark.parametrize("change, words, size, layers", [
    (lambda image: image.remove_layer(image.get_layers()[0]), "layer was deleted during the run", (64, 48), 0),
    (lambda image: image.resize(70, 48, 0, 0), "image was resized during the run", (70, 48), 1),
], ids=["layer-deleted", "image-resized"])
def test_an_image_changed_during_the_run_is_left_as_the_user_left_it(change, words, size, layers):
    plugin = _plugin()
    image = _load()
    try:
        def meanwhile(run):
            change(image)
            return plugin.wait_with_progress(run)
        with pytest.raises(plugin.PluginError, match=words + ".*: the image is unchanged"):
            plugin.restore_image(image, image.get_layers()[0], 2, "none", None, wait=meanwhile)
        assert (image.get_width(), image.get_height(), len(image.get_layers())) == size + (layers,)
    finally:
        image.delete()


def test_a_failure_after_the_scaling_puts_the_image_back(monkeypatch):
    plugin = _plugin()
    image = _load()
    try:
        before = _state(image)
        real, calls = plugin._what_changed, []

        def after_the_scaling(*args):  # the second look, once the image is scaled, finds a change
            calls.append(args)
            return real(*args) if len(calls) == 1 else "Something changed"
        monkeypatch.setattr(plugin, "_what_changed", after_the_scaling)
        with pytest.raises(plugin.PluginError, match="Something changed. The image was put back as it was"):
            plugin.restore_image(image, image.get_layers()[0], 2, "none", None)
        assert len(calls) == 2
        names, w, h, _ = _state(image)
        assert (names, w, h) == before[:3]  # the pixels are resampled twice: Edit > Undo gives them back
    finally:
        image.delete()


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X server (tests/test_gimp.py starts Xvfb)")
def test_the_window_s_cancel_button_stops_the_run(monkeypatch):
    gi.require_version("Gtk", "3.0")
    from gi.repository import GLib, Gtk
    plugin = _plugin()
    image = _load()
    try:
        before = _state(image)

        def send(job, client, scale, mode, profile, progress=None, cancel=None, model=None, matte=False,
                 best=False):  # waits for Cancel
            progress(0.5)
            cancel.wait()
            raise plugin.Cancelled("Cancelled" + plugin.UNCHANGED)
        monkeypatch.setattr(plugin.Job, "send", send)
        shown = []

        def press_cancel():  # as a user would, once the window is up
            for window in Gtk.Window.list_toplevels():
                if window.get_title() == "Kirei" and window.get_visible():
                    shown.append(window.get_title())
                    window.get_widget_for_response(Gtk.ResponseType.CANCEL).clicked()
                    return False
            return True
        GLib.timeout_add(50, press_cancel)
        timers, add = [], GLib.timeout_add
        monkeypatch.setattr(plugin.GLib, "timeout_add", lambda *a: timers.append(add(*a)) or timers[-1])
        with pytest.raises(plugin.Cancelled):
            plugin.restore_image(image, image.get_layers()[0], 2, "none", None, wait=plugin.wait_in_window)
        assert shown and _state(image) == before
        # the window's timer went with it: it would otherwise fire on the destroyed window's widgets
        assert timers and all(GLib.MainContext.default().find_source_by_id(t) is None for t in timers)
    finally:
        image.delete()


# ---------------------------------------------------------------- named profiles (Measure Watermark)
# /project/stamped: 10 pictures carrying one stamp and one of another size; /project/clean: 8 without
# one; the config folder (KIREI_CONFIG_DIR) holds "cli-studio", stored by `estimate --save` on the host.
MEASURE = "python-fu-kirei-measure"
CONFIG = os.environ.get("KIREI_CONFIG_DIR", "")


def _folder_files(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".png"))


def _open_all(folder):
    return [Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(f)) for f in _folder_files(folder)]


def _measure(**settings):
    proc = Gimp.get_pdb().lookup_procedure(MEASURE)
    assert proc is not None, "the Measure procedure is not registered"
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    for k, v in settings.items():
        cfg.set_property(k, v)
    return proc.run(cfg)


def _stored(name):
    return os.path.join(CONFIG, "profiles", name + ".png")


def _record(name):
    with open(os.path.join(CONFIG, "profiles", name + ".json")) as fh:
        return json.load(fh)


def test_measure_is_registered_beside_the_restore():
    proc = Gimp.get_pdb().lookup_procedure(MEASURE)
    assert proc is not None
    assert "<Image>/Filters/Enhance" in list(proc.get_menu_paths())
    assert proc.get_menu_label() == "Kirei: Measure Watermark..."


def test_measure_the_open_images_then_restore_with_the_profile_by_name():
    plugin = _plugin()
    images = _open_all("/project/stamped")
    try:
        assert len({(i.get_width(), i.get_height()) for i in images}) == 2  # the odd one is left out
        before = [_state(i) for i in images]
        result = _measure(source="images", name="gimp-studio")
        assert result.index(0) == Gimp.PDBStatusType.SUCCESS, result.index(1)
        assert [_state(i) for i in images] == before and all(i.is_valid() for i in images)
        assert os.path.isfile(_stored("gimp-studio"))
        record = _record("gimp-studio")
        assert record["inputs"] == 10 and record["size"] == [120, 160], record
        assert "watermark on" in record["report"], record
        assert plugin.remembered_settings()["profile"] == "gimp-studio"  # the restore dialog's profile now

        image = images[0]
        src = image.get_layers()[0]
        pixels = _read(src, "R'G'B'A u8")
        result = _run(image, src, scale="1", watermark="profile", profile="gimp-studio")
        assert result.index(0) == Gimp.PDBStatusType.SUCCESS, result.index(1)
        layers = image.get_layers()
        assert [l.get_name() for l in layers] == ["Kirei (profile)", src.get_name()]
        assert _read(src, "R'G'B'A u8") == pixels
        with open("/project/named.out", "wb") as fh:
            fh.write(_read(layers[0], "R'G'B'A u8"))
    finally:
        for image in images:
            image.delete()


def test_measure_a_folder():
    result = _measure(source="folder", folder=Gio.File.new_for_path("/project/stamped"), name="folder-studio")
    assert result.index(0) == Gimp.PDBStatusType.SUCCESS, result.index(1)
    assert _record("folder-studio")["inputs"] == 10


def test_a_profile_stored_by_the_command_line_is_offered_and_used():
    plugin = _plugin()
    assert "cli-studio" in [name for name, _ in plugin.stored_profiles()]
    assert ("cli-studio", "cli-studio (120x160)") in plugin.stored_profiles()
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(_folder_files("/project/stamped")[1]))
    try:
        src = image.get_layers()[0]
        pixels = _read(src, "R'G'B'A u8")
        result = _run(image, src, scale="1", watermark="profile", profile="cli-studio")
        assert result.index(0) == Gimp.PDBStatusType.SUCCESS, result.index(1)
        assert image.get_layers()[0].get_name() == "Kirei (profile)" and _read(src, "R'G'B'A u8") == pixels
        result = _run(image, src, scale="1", watermark="profile", profile="no-such-profile")
        assert result.index(0) != Gimp.PDBStatusType.SUCCESS
        assert "nor a stored profile of that name (stored: cli-studio" in str(result.index(1))
        assert len(image.get_layers()) == 2
    finally:
        image.delete()


def test_a_refused_estimate_stores_nothing_and_changes_no_image():
    plugin = _plugin()
    remembered = plugin.remembered_settings()
    images = _open_all("/project/clean")
    try:
        before = [_state(i) for i in images]
        result = _measure(source="images", name="clean")
        assert result.index(0) != Gimp.PDBStatusType.SUCCESS
        assert "no profile was stored" in str(result.index(1)), result.index(1)
        assert "watermark" in str(result.index(1))
        assert not os.path.exists(_stored("clean"))
        assert [_state(i) for i in images] == before
        assert plugin.remembered_settings() == remembered
    finally:
        for image in images:
            image.delete()


@pytest.mark.parametrize("settings, words", [
    ({"name": "bad name"}, "A profile name is 1 to 64 letters, digits"),
    ({"name": "cli-studio"}, "A profile called 'cli-studio' is already stored (made "),
])
def test_a_bad_or_used_name_is_refused_before_measuring(settings, words):
    stored = open(_stored("cli-studio"), "rb").read()
    names = sorted(os.listdir(os.path.join(CONFIG, "profiles")))
    result = _measure(source="folder", folder=Gio.File.new_for_path("/project/stamped"), **settings)
    assert result.index(0) != Gimp.PDBStatusType.SUCCESS
    assert words in str(result.index(1)), result.index(1)
    assert open(_stored("cli-studio"), "rb").read() == stored
    assert sorted(os.listdir(os.path.join(CONFIG, "profiles"))) == names


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X server (tests/test_gimp.py starts Xvfb)")
def test_the_dialog_offers_the_stored_profiles_and_remembers_the_settings():
    gi.require_version("Gtk", "3.0")
    from gi.repository import GLib, Gtk
    plugin = _plugin()

    def find(widget, name):
        if widget.get_name() == name:
            return widget
        for child in (widget.get_children() if isinstance(widget, Gtk.Container) else []):
            found = find(child, name)
            if found is not None:
                return found
        return None

    def answer(act):  # once the dialog is up, act on it as a user would
        seen = []

        def look():
            for window in Gtk.Window.list_toplevels():
                combo = find(window, "kirei-profile") if window.get_visible() else None
                if combo is not None:
                    seen.append(([row[1] for row in combo.get_model()], combo.get_active_id()))
                    window.response(act(combo))
                    return False
            return True
        GLib.timeout_add(50, look)
        return seen

    config = _proc().create_config()

    def choose(combo):
        combo.set_active_id("cli-studio")
        config.set_property("scale", "1")  # what the Scale widget does
        config.set_property("matte", True)  # and the check boxes
        config.set_property("best-quality", True)
        return Gtk.ResponseType.OK
    seen = answer(choose)
    assert plugin.restore_dialog(_proc(), config)
    ids, _ = seen[0]
    assert {"cli-studio", "gimp-studio"} <= set(ids) and ids[-1] == ""  # the stored ones, then "a file"
    assert config.get_property("profile") == "cli-studio"
    assert plugin.remembered_settings()["profile"] == "cli-studio"
    assert plugin.remembered_settings()["matte"] is True
    assert plugin.remembered_settings()["best-quality"] is True

    again = _proc().create_config()
    assert again.get_property("scale") == "2"
    seen = answer(lambda combo: Gtk.ResponseType.CANCEL)
    assert not plugin.restore_dialog(_proc(), again)
    assert seen[0][1] == "cli-studio" and again.get_property("scale") == "1"  # the last settings
    assert again.get_property("matte") is True and again.get_property("best-quality") is True
