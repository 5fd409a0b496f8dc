#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Kirei for GIMP 3: Filters > Enhance > "Kirei: Remove Watermark & Upscale..." and "Kirei: Measure Watermark...".

Restore reads the layer (and the soft selection) through GEGL, sends them to Kirei's worker through
kirei_client, and inserts the result as a new layer above the source in one undo group, after
scaling the image when the scale is above 1. The image is changed only once the worker has
succeeded, and only if the image and the layer are still as they were read (GIMP lets the user
work meanwhile); a step that fails after that takes the image back. In interactive runs a small
window shows the progress with a Cancel button; the worker call runs on a thread meanwhile.
Measure (kirei_measure.py) reads the open images of the most common size, or a folder's pictures,
has the worker measure their shared watermark and stores it as a named profile; it changes no image.
Install: plug-ins/kirei/kirei.py, executable.
"""
import os
import sys
import threading

if sys.version_info[0] < 3:  # GIMP 2.10 runs every executable it finds: its plug-in is kirei_gimp2.py
    sys.exit(0)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, GLib, GObject, Gimp  # noqa: E402

import kirei_client  # noqa: E402
from kirei_client import layer_name, what_changed  # noqa: E402
from kirei_common import (BEST_HELP, BEST_LABEL, BLURB, DEFAULT_MODE, DEFAULT_MODEL, DEFAULT_SCALE, HELP, MATTE_HELP,  # noqa: E402
                          MATTE_LABEL, MEASURE_BLURB, MEASURE_HELP, MEASURE_LABEL, MEASURE_PROC, MENU_LABEL, MENU_PATH, MODE_LABELS, MODEL_LABELS,
                          MODELS, MODES, PROC_NAME, SCALES, SOURCE_LABELS, SOURCES, UNCHANGED, Cancelled, Changes,
                          SWITCHES, PluginError, check_profile_name, check_result, check_settings, default_profile_name,
                          profile_file, region, remember_settings, remembered_settings, restore, stored_profiles)

# image precision -> (babl sample type, the worker's dtype)
_SAMPLES = {8: ("u8", "uint8"), 16: ("u16", "uint16")}


def pixel_format(image, drawable):
    """The babl format to read and write with, the worker's dtype, and the channel count."""
    precision = image.get_precision()
    name = precision.value_nick if hasattr(precision, "value_nick") else str(precision)
    bits = 8 if "u8" in name else 16 if "u16" in name else 32
    sample, dtype = _SAMPLES.get(bits, ("float", "float32"))
    grey = drawable.is_gray()
    return ("Y'A " if grey else "R'G'B'A ") + sample, dtype, 2 if grey else 4


def _choice(pairs):
    choice = Gimp.Choice.new()
    for i, (nick, label) in enumerate(pairs):
        choice.add(nick, i, label, "")
    return choice


class KireiPlugIn(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROC_NAME, MEASURE_PROC]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        flags = GObject.ParamFlags.READWRITE
        if name == MEASURE_PROC:
            proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run_measure, None)
            proc.set_image_types("*")
            mask = Gimp.ProcedureSensitivityMask  # any time, an image open or not (a folder needs none)
            proc.set_sensitivity_mask(mask.DRAWABLE | mask.DRAWABLES | mask.NO_DRAWABLES | mask.NO_IMAGE)
            proc.set_menu_label(MEASURE_LABEL)
            proc.add_menu_path(MENU_PATH)
            proc.set_documentation(MEASURE_BLURB, MEASURE_HELP, name)
            proc.set_attribution("Kirei", "Kirei contributors (MIT)", "2026")
            proc.add_choice_argument("source", "_Measure from", "Which pictures carry the watermark",
                                     _choice(list(zip(SOURCES, SOURCE_LABELS))), SOURCES[0], flags)
            proc.add_file_argument("folder", "_Folder", "The folder of pictures (Measure from: a folder)",
                                   Gimp.FileChooserAction.SELECT_FOLDER, True, None, flags)
            proc.add_string_argument("name", "_Name", "The profile's name: letters, digits, '-' and '_'", "", flags)
            proc.add_boolean_argument("replace", "_Replace a profile of that name", "Replace a stored profile of "
                                      "that name (without it, a name in use is refused)", False, flags)
            return proc
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.set_menu_label(MENU_LABEL)
        proc.add_menu_path(MENU_PATH)
        proc.set_documentation(BLURB, HELP, name)
        proc.set_attribution("Kirei", "Kirei contributors (MIT)", "2026")
        proc.add_choice_argument("scale", "_Scale", "Upscaling factor", _choice(
            [(str(s), "%dx" % s) for s in SCALES]), str(DEFAULT_SCALE), flags)
        proc.add_choice_argument("watermark", "_Watermark", "What to do with the watermark",
                                 _choice(list(zip(MODES, MODE_LABELS))), DEFAULT_MODE, flags)
        proc.add_string_argument("profile", "_Profile", "Watermark profile: a stored profile's name (%s), or an "
                                 "RGBA PNG file the size of the image" % MEASURE_LABEL, "", flags)
        proc.add_choice_argument("model", "_Model", "The learned model: kirei-2 is the best, kirei-fast quicker",
                                 _choice(list(zip(MODELS, MODEL_LABELS))), DEFAULT_MODEL, flags)
        proc.add_boolean_argument("matte", MATTE_LABEL, MATTE_HELP, False, flags)
        proc.add_boolean_argument("best-quality", BEST_LABEL, BEST_HELP, False, flags)
        return proc

    def run(self, procedure, run_mode, image, drawables, config, data):
        if len(drawables) != 1:
            return fail(procedure, "Select exactly one layer to restore.", Gimp.PDBStatusType.CALLING_ERROR)
        drawable = drawables[0]
        if run_mode == Gimp.RunMode.INTERACTIVE and not restore_dialog(procedure, config):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        try:
            scale = int(config.get_property("scale"))
            mode = config.get_property("watermark")
            profile = config.get_property("profile") or None
            model, matte = config.get_property("model"), config.get_property("matte")
            best = config.get_property("best-quality")
            check_settings(scale, mode, profile, model)
            profile = profile_file(profile) if mode == "profile" else None
            if not isinstance(drawable, Gimp.Layer) or drawable.is_group():
                raise PluginError("Kirei works on layers; select a layer (not a mask, channel or group).")
            restore_image(image, drawable, scale, mode, profile,
                          wait_with_progress if run_mode == Gimp.RunMode.NONINTERACTIVE else wait_in_window, model,
                          matte, best)
        except Cancelled:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        except PluginError as e:
            return fail(procedure, str(e))
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())

    def run_measure(self, procedure, run_mode, image, drawables, config, data):
        import kirei_measure
        interactive = run_mode == Gimp.RunMode.INTERACTIVE
        if interactive:  # a fresh name each time, never a remembered Replace
            source = image.get_file() if image is not None else None
            config.set_property("name", default_profile_name(source.get_path() if source is not None else None))
            config.set_property("replace", False)
            if not measure_dialog(procedure, config):
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        try:
            name, replace = config.get_property("name"), config.get_property("replace")
            check_profile_name(name, replace)
            if config.get_property("source") == "folder":
                folder = config.get_property("folder")
                pictures, _ = kirei_measure.pictures_from_folder(folder.get_path() if folder is not None else None)
            else:
                pictures, _ = kirei_measure.pictures_from_images(Gimp.get_images())
            text = "Measuring the watermark on %d pictures... No image is changed." % len(pictures)
            wait = ((lambda work: wait_in_window(Run(work), text)) if interactive else
                    (lambda work: wait_with_progress(Run(work))))
            path, report = kirei_measure.measure(name, pictures, wait, replace)
        except Cancelled:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        except (PluginError, kirei_client.KireiClientError, IOError, OSError) as e:
            return fail(procedure, str(e))
        Gimp.message("Kirei: the watermark profile '%s' is stored (%s; %s) and is now the restore dialog's profile."
                     % (name, report or "measured", path))
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def fail(procedure, message, status=Gimp.PDBStatusType.EXECUTION_ERROR):
    """Say why in GIMP's message, and return the failure to GIMP."""
    Gimp.message("Kirei: " + message)
    return procedure.new_return_values(status, GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0))


def worker_line():
    """One line on the worker that will run the job, for the dialogs."""
    try:
        info = kirei_client.Client.from_environment().health()
        where = "this computer" if not os.environ.get("KIREI_SERVER_URL") else os.environ["KIREI_SERVER_URL"]
        return "Worker: %s on %s" % (info.get("device_name", info.get("device")), where)
    except kirei_client.KireiClientError as e:
        return "Worker: %s" % e


A_FILE = ""  # the profile choice's id for "a file", beside the stored profiles' names


class ProfileChooser(object):
    """The restore dialog's profile: a stored profile (by name), or a file chosen with GTK's chooser."""

    def __init__(self, current):
        from gi.repository import Gtk
        self.box = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=6)
        self.names = Gtk.ComboBoxText()
        self.names.set_name("kirei-profile")  # how tests find it
        stored = stored_profiles()
        for name, label in stored:
            self.names.append(name, label)
        self.names.append(A_FILE, "A profile file...")
        self.file = Gtk.FileChooserButton(title="Watermark profile (RGBA PNG)", action=Gtk.FileChooserAction.OPEN)
        png = Gtk.FileFilter()
        png.set_name("RGBA PNG")
        png.add_pattern("*.png")
        png.add_pattern("*.PNG")
        self.file.add_filter(png)
        names = [n for n, _ in stored]
        if current in names:
            self.names.set_active_id(current)
        elif current or not names:
            self.names.set_active_id(A_FILE)
            if current:
                self.file.set_filename(current)
        else:
            self.names.set_active(0)
        self.names.connect("changed", lambda _: self._sync())
        self._sync()
        self.box.pack_start(Gtk.Label(label="Profile"), False, False, 0)
        self.box.pack_start(self.names, False, False, 0)
        self.box.pack_start(self.file, True, True, 0)

    def _sync(self):
        self.file.set_sensitive(self.names.get_active_id() == A_FILE)

    def value(self):
        """A stored profile's name, or the chosen file's path ("" when none)."""
        chosen = self.names.get_active_id()
        return chosen if chosen != A_FILE else self.file.get_filename() or ""


def measure_dialog(procedure, config):
    """The Measure dialog: True once the user pressed OK."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi, Gtk
    GimpUi.init("kirei")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Kirei: Measure Watermark")
    dialog.fill(["source", "folder", "name", "replace"])
    label = Gtk.Label(label="%s\nStored profiles: %s" % (
        worker_line(), ", ".join(n for n, _ in stored_profiles()) or "none yet"))
    label.set_line_wrap(True)
    dialog.get_content_area().pack_start(label, False, False, 6)
    label.show()
    ok = dialog.run()
    dialog.destroy()
    return ok


def restore_dialog(procedure, config):
    """The restore dialog, with the last settings (Kirei's own, see kirei_common.remembered_settings):
    True once the user pressed OK, the settings then in `config` and remembered for the next run."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi, Gtk
    GimpUi.init("kirei")
    for key, value in remembered_settings().items():
        config.set_property(key, value)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "Kirei")
    dialog.fill(["scale", "watermark", "model", "matte", "best-quality"])
    profiles = ProfileChooser(config.get_property("profile"))
    label = Gtk.Label(label=worker_line())
    label.set_line_wrap(True)
    for widget in (profiles.box, label):
        dialog.get_content_area().pack_start(widget, False, False, 6)
        widget.show_all()
    ok = dialog.run()
    if ok:
        config.set_property("profile", profiles.value())
        remember_settings(**dict((k, config.get_property(k)) for k in ("scale", "watermark", "model", "profile")
                                 + SWITCHES))
    dialog.destroy()
    return ok


class Job(object):
    """What was read from the image for the worker, and the image's size then."""

    def __init__(self, image, drawable):
        self.fmt, self.dtype, self.channels = pixel_format(image, drawable)
        ok, lx, ly = drawable.get_offsets()
        selection = None
        if not Gimp.Selection.is_empty(image):
            _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
            selection = (x1, y1, x2, y2) if non_empty else None
        rx, ry, self.width, self.height = region(lx, ly, drawable.get_width(), drawable.get_height(), selection)
        rect = Gegl.Rectangle.new(rx, ry, self.width, self.height)
        self.pixels = bytes(drawable.get_buffer().get(rect, 1.0, self.fmt, Gegl.AbyssPolicy.NONE))
        self.offset = (lx + rx, ly + ry)
        self.mask = None
        if selection is not None:
            image_rect = Gegl.Rectangle.new(lx + rx, ly + ry, self.width, self.height)
            self.mask = bytes(image.get_selection().get_buffer().get(image_rect, 1.0, "Y u8", Gegl.AbyssPolicy.NONE))
        self.size = (image.get_width(), image.get_height())
        source = image.get_file()  # the file it was opened from (a Gio.File), or None for a new image
        self.jpeg = kirei_client.jpeg_hint(source.get_path() if source is not None else None)

    def send(self, client, scale, mode, profile, progress=None, cancel=None, model=None, matte=False, best=False):
        """The worker's part: may run on any thread, touches nothing of GIMP's."""
        return restore(client, self.pixels, self.width, self.height, self.channels, self.dtype, self.offset,
                       self.mask, scale, mode, profile, self.size, progress=progress, cancel=cancel, model=model,
                       jpeg=self.jpeg, matte=matte, best=best)


def _layer_there(image, drawable):
    """Whether the layer is still in the image's layer tree (GIMP keeps a deleted layer for its undo)."""
    todo, wanted = list(image.get_layers()), drawable.get_id()
    while todo:
        layer = todo.pop()
        if layer.get_id() == wanted:
            return True
        if layer.is_group():
            todo.extend(layer.get_children())
    return False


def _what_changed(image, drawable, size):
    if not image.is_valid():
        return what_changed(False, False, (0, 0), size)
    return what_changed(True, drawable.is_valid() and _layer_there(image, drawable),
                        (image.get_width(), image.get_height()), size)


def apply_result(image, drawable, job, result, scale, mode):
    """The worker succeeded: add its result as a new layer above `drawable`, after scaling the
    image (scale > 1), in one undo group; only if the image is still as `job` read it."""
    why = _what_changed(image, drawable, job.size)
    if why:
        raise PluginError(why + UNCHANGED)
    check_result(result, job.offset + (job.width, job.height), scale, job.channels, job.dtype)
    w, h = job.size
    image.undo_group_start()
    try:
        with Changes() as changes:
            if scale > 1:
                if not image.scale(w * scale, h * scale):
                    raise PluginError("GIMP didn't scale the image to %dx%d." % (w * scale, h * scale))
                changes.done(lambda: image.scale(w, h))
                why = _what_changed(image, drawable, (w * scale, h * scale))  # the user may act meanwhile
                if why:
                    raise PluginError(why + ".")
            kind = Gimp.ImageType.GRAYA_IMAGE if job.channels == 2 else Gimp.ImageType.RGBA_IMAGE
            layer = Gimp.Layer.new(image, layer_name(scale, mode), result.width, result.height, kind, 100.0,
                                   Gimp.LayerMode.NORMAL)
            if not image.insert_layer(layer, drawable.get_parent(), image.get_item_position(drawable)):
                layer.delete()
                raise PluginError("GIMP refused the new layer.")
            changes.done(lambda: image.remove_layer(layer))
            layer.set_offsets(result.offset[0], result.offset[1])
            buf = layer.get_buffer()
            buf.set(Gegl.Rectangle.new(0, 0, result.width, result.height), job.fmt, result.pixels)
            buf.flush()
            layer.update(0, 0, result.width, result.height)
            if result.matte:
                _add_matte(layer, result)
    finally:
        image.undo_group_end()
    return layer


def _add_matte(layer, result):
    """The watermark taken off as the new layer's mask, turned off: the picture stays as restored."""
    mask = layer.create_mask(Gimp.AddMaskType.WHITE)
    if not layer.add_mask(mask):
        raise PluginError("GIMP refused the layer mask.")
    buf = mask.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, result.width, result.height), "Y u8", result.matte)
    buf.flush()
    mask.update(0, 0, result.width, result.height)
    layer.set_apply_mask(False)


class Run(object):
    """work(cancel, progress) on a thread, so that GIMP's side stays responsive; cancel() asks it
    to stop (the worker cancels the job). Only the thread that made it may read its outcome."""

    def __init__(self, work):
        self.progress = 0.0
        self._cancel = threading.Event()
        self._outcome = None
        self._thread = threading.Thread(target=self._run, args=(work,))
        self._thread.daemon = True
        self._thread.start()

    def _run(self, work):
        try:
            self._outcome = (True, work(self._cancel, self._progress))
        except BaseException as e:  # noqa: BLE001  handed to the GIMP side by outcome()
            self._outcome = (False, e)

    def _progress(self, fraction):
        self.progress = fraction

    def cancel(self):
        self._cancel.set()

    def cancelled(self):
        return self._cancel.is_set()

    def running(self):
        return self._thread.is_alive()

    def outcome(self, poll=None):
        """The work's result (or its exception, raised), once it has ended; poll() runs meanwhile."""
        while self._thread.is_alive():
            if poll is not None:
                poll()
            self._thread.join(0.05)
        ok, value = self._outcome
        if not ok:
            raise value
        return value


def wait_in_window(run, text="Restoring... The image changes only when this is done."):
    """A small window with the progress and a Cancel button while `run` goes on (interactive runs)."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi, Gtk
    GimpUi.init(PROC_NAME)
    dialog = GimpUi.Dialog(title="Kirei", role=PROC_NAME)
    dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
    label = Gtk.Label(label=text)
    bar = Gtk.ProgressBar()
    box = dialog.get_content_area()
    for widget in (label, bar):
        box.pack_start(widget, False, False, 6)
    dialog.show_all()
    timer = []  # the poll's source while it is attached: removed with the window, never fired after it

    def poll():
        bar.set_fraction(run.progress)
        if not run.running():
            dialog.response(Gtk.ResponseType.OK)
            del timer[:]  # returning False removes it
            return False
        return True
    timer.append(GLib.timeout_add(100, poll))
    try:
        if dialog.run() != Gtk.ResponseType.OK:  # Cancel, or the window closed
            run.cancel()
            label.set_text("Cancelling...")
        return run.outcome(poll=lambda: Gtk.main_iteration_do(False))
    finally:
        for source in timer:
            GLib.source_remove(source)
        dialog.destroy()


def wait_with_progress(run):
    """GIMP's own progress bar while `run` goes on (non-interactive runs)."""
    return run.outcome(poll=lambda: Gimp.progress_update(run.progress))


def restore_image(image, drawable, scale, mode, profile, wait=wait_with_progress, model=None, matte=False,
                  best=False):
    """The whole run: read, send (wait(run) waits for it), and change the image. A PluginError
    (a cancel included: kirei_client.Cancelled's message) leaves the image as it was. model: the
    learned model's name, None for the worker's default; matte: the watermark taken off becomes
    the new layer's mask (turned off); best: the model on 8 views (best quality, about 8x slower)."""
    job = Job(image, drawable)
    Gimp.progress_init("Kirei: restoring...")
    try:
        client = kirei_client.Client.from_environment()
        result = wait(Run(lambda cancel, progress: job.send(client, scale, mode, profile, progress, cancel,
                                                            model, matte, best)))
        layer = apply_result(image, drawable, job, result, scale, mode)
    except kirei_client.KireiClientError as e:
        raise PluginError(str(e))
    finally:
        Gimp.progress_end()
    if result.notice:
        Gimp.message("Kirei: " + result.notice)
    Gimp.displays_flush()
    return layer


if __name__ == "__main__":
    Gimp.main(KireiPlugIn.__gtype__, sys.argv)
