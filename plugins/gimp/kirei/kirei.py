#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Kirei for GIMP 3: Filters > Enhance > "Kirei: Remove Watermark & Upscale...".

Reads the layer (and the soft selection) through GEGL, sends them to Kirei's worker through
kirei_client, and inserts the result as a new layer above the source in one undo group, after
scaling the image when the scale is above 1. The image is changed only once the worker has
succeeded: an error leaves it exactly as it was. Install: plug-ins/kirei/kirei.py, executable.
"""
import os
import sys

if sys.version_info[0] < 3:  # GIMP 2.10 runs every executable it finds: its plug-in is kirei_gimp2.py
    sys.exit(0)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gi  # noqa: E402

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, GLib, GObject, Gimp  # noqa: E402

import kirei_client  # noqa: E402
from kirei_client import layer_name  # noqa: E402
from kirei_common import (BLURB, DEFAULT_MODE, DEFAULT_SCALE, HELP, MENU_LABEL, MENU_PATH, MODE_LABELS,  # noqa: E402
                          MODES, PROC_NAME, SCALES, PluginError, check_settings, region, restore)

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
        return [PROC_NAME]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.set_menu_label(MENU_LABEL)
        proc.add_menu_path(MENU_PATH)
        proc.set_documentation(BLURB, HELP, name)
        proc.set_attribution("Kirei", "Kirei contributors (MIT)", "2026")
        flags = GObject.ParamFlags.READWRITE
        proc.add_choice_argument("scale", "_Scale", "Upscaling factor", _choice(
            [(str(s), "%dx" % s) for s in SCALES]), str(DEFAULT_SCALE), flags)
        proc.add_choice_argument("watermark", "_Watermark", "What to do with the watermark",
                                 _choice(list(zip(MODES, MODE_LABELS))), DEFAULT_MODE, flags)
        proc.add_string_argument("profile", "_Profile", "Watermark profile: an RGBA PNG the size of the image",
                                 "", flags)
        return proc

    def run(self, procedure, run_mode, image, drawables, config, data):
        if len(drawables) != 1:
            return self._fail(procedure, "Select exactly one layer to restore.", Gimp.PDBStatusType.CALLING_ERROR)
        drawable = drawables[0]
        if run_mode == Gimp.RunMode.INTERACTIVE and not self._dialog(procedure, config):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        try:
            scale = int(config.get_property("scale"))
            mode = config.get_property("watermark")
            profile = config.get_property("profile") or None
            check_settings(scale, mode, profile)
            if not isinstance(drawable, Gimp.Layer) or drawable.is_group():
                raise PluginError("Kirei works on layers; select a layer (not a mask, channel or group).")
            self._restore(image, drawable, scale, mode, profile)
        except PluginError as e:
            return self._fail(procedure, str(e))
        return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())

    def _fail(self, procedure, message, status=Gimp.PDBStatusType.EXECUTION_ERROR):
        Gimp.message("Kirei: " + message)
        return procedure.new_return_values(status, GLib.Error.new_literal(Gimp.PlugIn.error_quark(), message, 0))

    def _dialog(self, procedure, config):
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi, Gtk
        GimpUi.init("kirei")
        dialog = GimpUi.ProcedureDialog.new(procedure, config, "Kirei")
        dialog.fill(None)
        try:
            info = kirei_client.Client.from_environment().health()
            where = "this computer" if not os.environ.get("KIREI_SERVER_URL") else os.environ["KIREI_SERVER_URL"]
            text = "Worker: %s on %s" % (info.get("device_name", info.get("device")), where)
        except kirei_client.KireiClientError as e:
            text = "Worker: %s" % e
        label = Gtk.Label(label=text)
        label.set_line_wrap(True)
        dialog.get_content_area().pack_start(label, False, False, 6)
        label.show()
        ok = dialog.run()
        dialog.destroy()
        return ok

    def _restore(self, image, drawable, scale, mode, profile):
        fmt, dtype, channels = pixel_format(image, drawable)
        ok, lx, ly = drawable.get_offsets()
        lw, lh = drawable.get_width(), drawable.get_height()
        selection = None
        if not Gimp.Selection.is_empty(image):
            _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
            selection = (x1, y1, x2, y2) if non_empty else None
        rx, ry, rw, rh = region(lx, ly, lw, lh, selection)
        rect = Gegl.Rectangle.new(rx, ry, rw, rh)
        pixels = bytes(drawable.get_buffer().get(rect, 1.0, fmt, Gegl.AbyssPolicy.NONE))
        mask = None
        if selection is not None:
            image_rect = Gegl.Rectangle.new(lx + rx, ly + ry, rw, rh)
            mask = bytes(image.get_selection().get_buffer().get(image_rect, 1.0, "Y u8", Gegl.AbyssPolicy.NONE))
        Gimp.progress_init("Kirei: restoring...")
        client = kirei_client.Client.from_environment()
        result = restore(client, pixels, rw, rh, channels, dtype, (lx + rx, ly + ry), mask, scale, mode, profile,
                         progress=Gimp.progress_update)
        # the worker succeeded: only now is the image changed, in one undo group
        image.undo_group_start()
        try:
            if scale > 1:
                image.scale(image.get_width() * scale, image.get_height() * scale)
            kind = Gimp.ImageType.GRAYA_IMAGE if channels == 2 else Gimp.ImageType.RGBA_IMAGE
            layer = Gimp.Layer.new(image, layer_name(scale, mode), result.width, result.height, kind, 100.0,
                                   Gimp.LayerMode.NORMAL)
            image.insert_layer(layer, drawable.get_parent(), image.get_item_position(drawable))
            layer.set_offsets(result.offset[0], result.offset[1])
            buf = layer.get_buffer()
            buf.set(Gegl.Rectangle.new(0, 0, result.width, result.height), fmt, result.pixels)
            buf.flush()
            layer.update(0, 0, result.width, result.height)
        finally:
            image.undo_group_end()
        Gimp.progress_end()
        if result.notice:
            Gimp.message("Kirei: " + result.notice)
        Gimp.displays_flush()


if __name__ == "__main__":
    Gimp.main(KireiPlugIn.__gtype__, sys.argv)
