#!/usr/bin/env python2
# -*- coding: utf-8 -*-
"""Kirei for GIMP 2.10 (gimpfu, Python 2.7): Filters > Enhance > "Kirei: Remove Watermark & Upscale...".

The same behaviour as the GIMP 3 plug-in (kirei.py, beside this file), through the PDB and pixel
regions: the layer (and the selection) go to Kirei's worker through kirei_client, and the result
becomes a new layer above the source, in one undo group, after scaling the image when the scale
is above 1. Nothing is changed before the worker has succeeded, nor if the image or the layer
changed meanwhile; a step that fails takes the image back. GIMP 2.10's pixel regions are 8-bit:
high bit depth images are restored at 8 bits.
Install: copy the kirei folder (links followed) into GIMP 2.10's plug-ins folder.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gimpfu import (GRAYA_IMAGE, NORMAL_MODE, PF_DRAWABLE, PF_FILE, PF_IMAGE, PF_OPTION, PF_STRING, PF_TOGGLE,  # noqa: E402
                    RGBA_IMAGE, gimp, main, pdb, register)

import kirei_client  # noqa: E402
from kirei_client import layer_name, what_changed  # noqa: E402
from kirei_common import (BEST_LABEL, BLURB, DEFAULT_MODE, DEFAULT_MODEL, DEFAULT_SCALE, HELP, MENU_LABEL, MENU_PATH,  # noqa: E402
                          MODE_LABELS, MODEL_LABELS, MODELS, MODES, PROC_NAME, SCALES, UNCHANGED, Changes, PluginError,
                          check_result, check_settings, profile_file, region, restore, stored_profiles)


def _read(drawable, x, y, w, h):
    return bytes(drawable.get_pixel_rgn(x, y, w, h, False, False)[x:x + w, y:y + h])


def _with_alpha(data, bpp):
    """RGB -> RGBA, grey -> grey+alpha (opaque): the worker's results always carry alpha."""
    if bpp in (2, 4):
        return data, bpp
    out = bytearray(len(data) // bpp * (bpp + 1))
    for c in range(bpp):
        out[c::bpp + 1] = data[c::bpp]
    out[bpp::bpp + 1] = b"\xff" * (len(data) // bpp)
    return bytes(out), bpp + 1


def _layer_there(image, drawable):
    """Whether the layer is still in the image's layer tree (GIMP keeps a deleted layer for its undo)."""
    if not pdb.gimp_item_is_valid(drawable):
        return False
    try:
        pdb.gimp_image_get_item_position(image, drawable)  # fails for a layer outside the image's tree
    except RuntimeError:
        return False
    return True


def _what_changed(image, drawable, size_then):
    if not pdb.gimp_image_is_valid(image):
        return what_changed(False, False, (0, 0), size_then)
    return what_changed(True, _layer_there(image, drawable), (image.width, image.height), size_then)


def kirei_restore(image, drawable, scale_index=SCALES.index(DEFAULT_SCALE), mode_index=MODES.index(DEFAULT_MODE),
                  profile="", model_index=MODELS.index(DEFAULT_MODEL), stored="", best=False):
    try:
        scale, mode, model = SCALES[scale_index], MODES[mode_index], MODELS[model_index]
        profile = (stored or "").strip() or profile  # a stored profile's name wins over the file
        check_settings(scale, mode, profile, model)
        profile = profile_file(profile) if mode == "profile" else None
        if not pdb.gimp_item_is_layer(drawable) or pdb.gimp_item_is_group(drawable):
            raise PluginError("Kirei works on layers; select a layer (not a mask, channel or group).")
        lx, ly = drawable.offsets
        size_then = (image.width, image.height)
        selection = None
        non_empty, x1, y1, x2, y2 = pdb.gimp_selection_bounds(image)
        if non_empty:
            selection = (x1, y1, x2, y2)
        rx, ry, rw, rh = region(lx, ly, drawable.width, drawable.height, selection)
        pixels, channels = _with_alpha(_read(drawable, rx, ry, rw, rh), drawable.bpp)
        mask = _read(image.selection, lx + rx, ly + ry, rw, rh) if selection else None
        gimp.progress_init("Kirei: restoring...")
        result = restore(kirei_client.Client.from_environment(), pixels, rw, rh, channels, "uint8",
                         (lx + rx, ly + ry), mask, scale, mode, profile, size_then, progress=gimp.progress_update,
                         model=model, jpeg=kirei_client.jpeg_hint(image.filename), best=bool(best))
        _apply(image, drawable, size_then, (lx + rx, ly + ry, rw, rh), result, scale, mode, channels)
    except PluginError as e:
        gimp.message("Kirei: %s" % e)
        raise RuntimeError(str(e))
    finally:
        pdb.gimp_progress_end()
    if result.notice:
        gimp.message("Kirei: %s" % result.notice)
    gimp.displays_flush()


def _apply(image, drawable, size_then, rect, result, scale, mode, channels):
    """The worker succeeded: change the image, in one undo group, if it is still as it was read."""
    why = _what_changed(image, drawable, size_then)
    if why:
        raise PluginError(why + UNCHANGED)
    check_result(result, rect, scale, channels, "uint8")
    w, h = size_then
    pdb.gimp_image_undo_group_start(image)
    try:
        with Changes() as changes:
            if scale > 1:
                pdb.gimp_image_scale(image, w * scale, h * scale)
                changes.done(lambda: pdb.gimp_image_scale(image, w, h))
                why = _what_changed(image, drawable, (w * scale, h * scale))  # the user may act meanwhile
                if why:
                    raise PluginError(why + ".")
            kind = RGBA_IMAGE if result.channels == 4 else GRAYA_IMAGE
            layer = gimp.Layer(image, layer_name(scale, mode), result.width, result.height, kind, 100, NORMAL_MODE)
            position = pdb.gimp_image_get_item_position(image, drawable)
            pdb.gimp_image_insert_layer(image, layer, drawable.parent, position)
            changes.done(lambda: pdb.gimp_image_remove_layer(image, layer))
            layer.set_offsets(result.offset[0], result.offset[1])
            rgn = layer.get_pixel_rgn(0, 0, result.width, result.height, True, False)
            rgn[0:result.width, 0:result.height] = result.pixels
            layer.flush()
            layer.update(0, 0, result.width, result.height)
    finally:
        pdb.gimp_image_undo_group_end(image)


register(
    PROC_NAME, BLURB, HELP, "Kirei contributors", "MIT", "2026", MENU_LABEL, "RGB*, GRAY*",
    [
        (PF_IMAGE, "image", "Input image", None),
        (PF_DRAWABLE, "drawable", "Input layer", None),
        (PF_OPTION, "scale", "Scale", SCALES.index(DEFAULT_SCALE), ["%dx" % s for s in SCALES]),
        (PF_OPTION, "watermark", "Watermark", MODES.index(DEFAULT_MODE), list(MODE_LABELS)),
        (PF_FILE, "profile", "Profile (RGBA PNG)", ""),
        # last, so that scripts calling the procedure keep their arguments' places
        (PF_OPTION, "model", "Model", MODELS.index(DEFAULT_MODEL), list(MODEL_LABELS)),
        # gimpfu's choices are numbers, remembered as such: a list of names would shift under a remembered
        # number as profiles come and go, so the name is typed; the label lists them (read at each run)
        (PF_STRING, "stored", "Stored profile, by name (instead of the file): %s" % (
            ", ".join(name for name, _ in stored_profiles()) or "none yet (python -m core estimate --save NAME)"), ""),
        (PF_TOGGLE, "best", BEST_LABEL.replace("_", ""), False),
    ],
    [],
    kirei_restore,
    menu=MENU_PATH,
)

if __name__ == "__main__":
    main()
