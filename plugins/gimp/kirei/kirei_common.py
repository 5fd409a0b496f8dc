# -*- coding: utf-8 -*-
"""What the GIMP 3 and GIMP 2.10 plug-ins share: the procedure's name and menu, its settings,
which part of a layer to send, and the new layer's name. Python 2.7 and 3; no GIMP import."""
from __future__ import division

PROC_NAME = "python-fu-kirei-restore"
MENU_PATH = "<Image>/Filters/Enhance"
MENU_LABEL = "Kirei: Remove Watermark & Upscale..."
BLURB = "Remove a stamped watermark and upscale the layer into a new layer (Kirei)"
HELP = ("Restores the active layer, or the part of it inside the selection: removes the watermark "
        "(blind, or with a profile measured by `python -m core estimate`) and upscales it 1x, 2x or 4x. "
        "The result is a new layer above the source; the image is scaled first when the scale is above 1.")
SCALES = (1, 2, 4)
MODES = ("blind", "profile", "none")
MODE_LABELS = ("Remove it (blind)", "Remove it with a profile", "Don't remove (upscale only)")
DEFAULT_SCALE = 2
DEFAULT_MODE = "blind"


class PluginError(Exception):
    """A message for the user: the run stops and the image is left as it was."""


def check_settings(scale, mode, profile):
    if scale not in SCALES:
        raise PluginError("The scale must be 1, 2 or 4, not %s." % scale)
    if mode not in MODES:
        raise PluginError("Unknown watermark mode %r: choose blind, profile or none." % (mode,))
    if mode == "profile" and not profile:
        raise PluginError("Choose the watermark profile file (an RGBA PNG from `python -m core estimate`).")


def region(layer_x, layer_y, layer_w, layer_h, selection=None):
    """The part of a layer to send, in the layer's own coordinates, as (x, y, w, h).

    selection: the selection's bounds in image coordinates (x1, y1, x2, y2), or None for the
    whole layer. A PluginError when the selection misses the layer.
    """
    if selection is None:
        return 0, 0, layer_w, layer_h
    x1, y1, x2, y2 = selection
    x0, y0 = max(x1 - layer_x, 0), max(y1 - layer_y, 0)
    x3, y3 = min(x2 - layer_x, layer_w), min(y2 - layer_y, layer_h)
    if x3 <= x0 or y3 <= y0:
        raise PluginError("The selection doesn't cover any of this layer.")
    return x0, y0, x3 - x0, y3 - y0


def restore(client, pixels, width, height, channels, dtype, offset, mask, scale, mode, profile, progress=None):
    """Send a region to the worker; the client's errors become PluginErrors with their message."""
    from kirei_client import KireiClientError
    try:
        return client.restore(pixels, width, height, channels, dtype, offset=offset, mask=mask, scale=scale,
                              watermark=mode, profile=profile if mode == "profile" else None, progress=progress)
    except KireiClientError as e:
        raise PluginError(str(e))
