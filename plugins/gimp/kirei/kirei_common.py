# -*- coding: utf-8 -*-
"""What the GIMP 3 and GIMP 2.10 plug-ins share: the procedure's name and menu, its settings,
which part of a layer to send, the checks before the image changes and the undoing of a half-done
change (the checks' words are kirei_client's, shared with Krita). Python 2.7 and 3; no GIMP import."""
from __future__ import division

from kirei_client import MODELS  # the learned models' names, the default first

PROC_NAME = "python-fu-kirei-restore"
MENU_PATH = "<Image>/Filters/Enhance"
MENU_LABEL = "Kirei: Remove Watermark & Upscale..."
BLURB = "Remove a stamped watermark and upscale the layer into a new layer (Kirei)"
HELP = ("Restores the active layer, or the part of it inside the selection: removes the watermark "
        "(blind, or with a profile measured by `python -m core estimate`) and upscales it 1x, 2x or 4x, "
        "with the learned model chosen (kirei-2, the best, or kirei-fast, for slow machines). "
        "The result is a new layer above the source; the image is scaled first when the scale is above 1.")
SCALES = (1, 2, 4)
MODES = ("blind", "profile", "none")
MODE_LABELS = ("Remove it (blind)", "Remove it with a profile", "Don't remove (upscale only)")
MODEL_LABELS = tuple({"kirei-2": "kirei-2 (best)", "kirei-fast": "kirei-fast (for slow machines)"}.get(m, m)
                     for m in MODELS)
DEFAULT_SCALE = 2
DEFAULT_MODE = "blind"
DEFAULT_MODEL = MODELS[0]


UNCHANGED = ": the image is unchanged."


class PluginError(Exception):
    """A message for the user: the run stops and the image is left as it was."""


class Cancelled(PluginError):
    """The user cancelled the run."""


def check_settings(scale, mode, profile, model=DEFAULT_MODEL):
    if scale not in SCALES:
        raise PluginError("The scale must be 1, 2 or 4, not %s." % scale)
    if mode not in MODES:
        raise PluginError("Unknown watermark mode %r: choose blind, profile or none." % (mode,))
    if mode == "profile" and not profile:
        raise PluginError("Choose the watermark profile file (an RGBA PNG from `python -m core estimate`).")
    if model not in MODELS:
        raise PluginError("Unknown model %r: choose %s." % (model, " or ".join(MODELS)))


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


def restore(client, pixels, width, height, channels, dtype, offset, mask, scale, mode, profile, image_size,
            progress=None, cancel=None, model=None, jpeg=None):
    """Send a region to the worker (image_size: the whole image's, against which the worker checks the
    profile; model: the learned model's name, None for the worker's default; jpeg: what the image's
    file says of its pixels, kirei_client.jpeg_hint); the client's errors become PluginErrors with
    their message."""
    from kirei_client import Cancelled as ClientCancelled, KireiClientError
    try:
        return client.restore(pixels, width, height, channels, dtype, offset=offset, mask=mask, scale=scale,
                              watermark=mode, profile=profile if mode == "profile" else None,
                              image_size=image_size, progress=progress, cancel=cancel, model=model, jpeg=jpeg)
    except ClientCancelled:
        raise Cancelled("Cancelled" + UNCHANGED)
    except KireiClientError as e:
        raise PluginError(str(e))


def check_result(result, rect, scale, channels, dtype):
    """A PluginError unless the worker's pixels are what was asked for, inside the scaled region
    rect = (x, y, w, h) in image coordinates (kirei_client.Result.misfit)."""
    why = result.misfit(rect, scale, channels, dtype)
    if why:
        raise PluginError(why + UNCHANGED)


class Changes(object):
    """The changes made to the image so far, each with its undoing, so that a step that fails
    takes the image back as it was (scaling back can't give the exact pixels again; the undo
    group the run made can):

        changes = Changes()
        with changes:  # a failure inside: what was done is undone, and a PluginError says so
            scale(); changes.done(scale_back)
    """

    def __init__(self):
        self._undo = []

    def done(self, undo):
        self._undo.append(undo)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None or not isinstance(error, Exception):
            return False
        why = str(error) if isinstance(error, PluginError) else "Unexpected error: %s: %s." % (kind.__name__, error)
        raise PluginError("%s %s" % (why, self._put_back()))

    def _put_back(self):
        if not self._undo:
            return "The image is unchanged."
        try:
            while self._undo:
                self._undo.pop()()
        except Exception as e:  # noqa: BLE001  say what is left rather than hide the first failure
            return "Putting the image back failed too (%s): use Edit > Undo." % e
        return "The image was put back as it was (Edit > Undo gives back its exact pixels)."
