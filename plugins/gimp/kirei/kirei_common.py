# -*- coding: utf-8 -*-
"""What the GIMP 3 and GIMP 2.10 plug-ins share: the procedures' names and menus, their settings
(remembered between runs in Kirei's config folder), the stored profiles offered, which part of a
layer to send, the checks before the image changes and the undoing of a half-done change (the
checks' words are kirei_client's, shared with Krita). Python 2.7 and 3; no GIMP import."""
from __future__ import division

import os
import re

import kirei_client
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
# "Kirei: Measure Watermark...": a profile measured from pictures that carry the same stamp, stored by name
MEASURE_PROC = "python-fu-kirei-measure"
MEASURE_LABEL = "Kirei: Measure Watermark..."
MEASURE_BLURB = "Measure the watermark shared by pictures and store it as a named profile (Kirei)"
MEASURE_HELP = ("Measures the watermark stamped on the open images of the most common size (or on the pictures "
                "of a folder), through Kirei's worker, and stores it by name in Kirei's config folder, where "
                "`python -m core profiles list` shows it. It becomes the restore dialog's profile. At least %d "
                "pictures of one size are needed; %d or more measure it well. No image is changed."
                % (kirei_client.MIN_PICTURES, kirei_client.GOOD_ESTIMATE))
SOURCES = ("images", "folder")
SOURCE_LABELS = ("The open images (of the most common size)", "The pictures of a folder")
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".tif", ".tiff", ".bmp")
DEFAULT_SCALE = 2
DEFAULT_MODE = "blind"
DEFAULT_MODEL = MODELS[0]
MATTE_LABEL = "Add the found watermark as a layer mas_k"
MATTE_HELP = ("Give the new layer a mask: the opacity of the watermark that was taken off (found blind, or the "
              "profile's). The mask is turned off, so the picture is the same; Alt-click it to see it.")
BEST_LABEL = "_Best quality (8 views: about 8x slower)"
BEST_HELP = ("Run the model on the picture's 8 flips and turns and average them: cleaner lines and flats, for "
             "about 8 times the time. Without it Kirei does this only for JPEG pictures, where it is quick.")
SWITCHES = ("matte", "best-quality")  # the restore dialog's check boxes, remembered as "True" / "False"


UNCHANGED = ": the image is unchanged."


class PluginError(Exception):
    """A message for the user: the run stops and the image is left as it was."""


class Cancelled(PluginError):
    """The user cancelled the run."""


def check_settings(scale, mode, profile, model=DEFAULT_MODEL):
    """A PluginError for settings a run can't use (profile: a file or a stored profile's name)."""
    if scale not in SCALES:
        raise PluginError("The scale must be 1, 2 or 4, not %s." % scale)
    if mode not in MODES:
        raise PluginError("Unknown watermark mode %r: choose blind, profile or none." % (mode,))
    if mode == "profile" and not profile:
        raise PluginError("Choose the watermark profile: a stored one (Filters > Enhance > %s) or an RGBA PNG "
                          "file from `python -m core estimate`." % MEASURE_LABEL)
    if model not in MODELS:
        raise PluginError("Unknown model %r: choose %s." % (model, " or ".join(MODELS)))


# ------------------------------------------------------------------ stored profiles
def profile_file(value, config=None):
    """The profile file a run reads: `value` when it names a file (or can't be a profile's name: the
    worker's client says what is wrong with it), else the stored profile of that name, as the command
    line's `restore --profile NAME|FILE`. A PluginError naming the stored ones when neither exists."""
    path = kirei_client.stored_or_file(value, config)
    if path is None:
        names = kirei_client.profile_names(config)
        raise PluginError("No profile file %s, nor a stored profile of that name (%s)." % (
            value, "stored: " + ", ".join(names) if names else "none is stored yet: " + MEASURE_LABEL + " stores one"))
    return path


def stored_profiles(config=None):
    """[(name, label)] of the stored profiles, for a profile choice: the label says the size it is for."""
    out = []
    for name in kirei_client.profile_names(config):
        size = kirei_client.profile_record(name, config).get("size")
        out.append((name, "%s (%dx%d)" % (name, size[0], size[1]) if _is_size(size) else name))
    return out


def _is_size(size):
    return isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)


def default_profile_name(filename):
    """A valid profile name from a picture's file name ("Studio Preview 01.jpg" -> "Studio-Preview-01"):
    what the Measure dialog proposes; "watermark" when nothing is left of it."""
    base = os.path.splitext(os.path.basename(filename or ""))[0]
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", base).lstrip("-_")[:kirei_client.PROFILE_NAME_MAX].rstrip("-_")
    if not name:
        return "watermark"
    if kirei_client.profile_name_problem(name):  # a name Windows keeps for a device
        name = name[:kirei_client.PROFILE_NAME_MAX - 8] + "-profile"
    return name


def check_profile_name(name, replace, config=None):
    """A PluginError for a name that can't be stored under: not a valid name, or one in use (unless
    replace). Checked before measuring, so that a refusal costs nothing."""
    problem = kirei_client.profile_name_problem(name)
    if problem:
        raise PluginError(problem[0].upper() + problem[1:] + ".")
    if not replace and os.path.exists(kirei_client.profile_path(name, config)):
        made = kirei_client.profile_record(name, config).get("made", "")
        raise PluginError("A profile called '%s' is already stored%s: tick Replace to replace it, or choose "
                          "another name." % (name, " (made %s)" % made[:10] if made else ""))


def one_size(pictures):
    """The pictures of the most common size ((w, h) second and third of each), the first seen on a tie:
    a profile belongs to one size."""
    sizes = {}
    for p in pictures:
        sizes.setdefault((p[1], p[2]), []).append(p)
    best = None
    for p in pictures:
        group = sizes[(p[1], p[2])]
        if best is None or len(group) > len(best):
            best = group
    return best or []


def store_measured(name, data, size, pictures, by):
    """Store an estimate's profile (kirei_client.EstimatedProfile) under `name`, with its record, and make it
    the restore dialog's profile. Returns the stored file's path."""
    import datetime
    record = {"made": datetime.datetime.now().replace(microsecond=0).isoformat(), "size": [int(size[0]), int(size[1])],
              "by": by, "report": getattr(data, "report", "") or "", "inputs": pictures}
    path = kirei_client.store_profile(name, data, record)
    remember_settings(profile=name, watermark="profile")
    return path


# ------------------------------------------------------------------ remembered settings
# The restore dialog's last settings, kept in Kirei's config folder rather than by GIMP's own "last
# values": the Measure procedure (another procedure, another process) must be able to make its
# profile the dialog's, and GIMP gives no procedure a way to set another's remembered values.
SETTINGS_FILE = "gimp.json"
_TEXT = (str, type(u""))  # json's strings: unicode on Python 2.7


def remembered_settings(config=None):
    """{"scale": "2", "watermark": ..., "model": ..., "profile": ..., "matte": bool, "best-quality": bool}: those of the last
    settings that still make sense (a model no longer shipped, a removed profile are left out)."""
    try:
        import json
        with open(os.path.join(config or kirei_client.config_dir(), SETTINGS_FILE)) as fh:
            saved = json.load(fh)
    except (IOError, OSError, ValueError):
        return {}
    if not isinstance(saved, dict):
        return {}
    valid = {"scale": [str(s) for s in SCALES], "watermark": MODES, "model": MODELS}
    out = dict((k, v) for k, v in saved.items() if k in valid and v in valid[k])
    out.update((k, saved[k] == "True") for k in SWITCHES if saved.get(k) in ("True", "False"))
    profile = saved.get("profile")
    if isinstance(profile, _TEXT) and profile:
        try:
            if os.path.isfile(profile_file(profile, config)):
                out["profile"] = profile
        except (PluginError, kirei_client.KireiClientError):
            pass
    return out


def remember_settings(config=None, **settings):
    """Keep these settings (scale, watermark, model, profile, SWITCHES) for the restore dialog's next run."""
    folder = config or kirei_client.config_dir()
    saved = remembered_settings(folder)
    saved.update((k, str(v)) for k, v in settings.items() if v is not None)
    kirei_client.write_json(os.path.join(folder, SETTINGS_FILE), saved)  # whole or not there


# ------------------------------------------------------------------ restoring
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
            progress=None, cancel=None, model=None, jpeg=None, matte=False, best=False):
    """Send a region to the worker (image_size: the whole image's, against which the worker checks the
    profile; model: the learned model's name, None for the worker's default; jpeg: what the image's
    file says of its pixels, kirei_client.jpeg_hint; matte: ask for the watermark taken off, as a
    mask; best: the model on 8 views, else as the worker decides); the client's errors become
    PluginErrors with their message."""
    from kirei_client import Cancelled as ClientCancelled, KireiClientError
    try:
        return client.restore(pixels, width, height, channels, dtype, offset=offset, mask=mask, scale=scale,
                              watermark=mode, profile=profile if mode == "profile" else None,
                              image_size=image_size, progress=progress, cancel=cancel, model=model, jpeg=jpeg,
                              matte=matte, tta=True if best else None)
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
