# -*- coding: utf-8 -*-
"""GIMP 3's "Kirei: Measure Watermark...": the pictures that carry the stamp (the open images of the
most common size, or a folder's pictures, read through GIMP), measured by Kirei's worker and stored as
a named profile that becomes the restore dialog's (kirei_common.store_measured). Reads images only:
each is read from a duplicate (a folder's from an image loaded for it), deleted afterwards."""
import os

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

import kirei_client  # noqa: E402
from kirei_common import (MEASURE_LABEL, PICTURE_EXTENSIONS, Cancelled, PluginError,  # noqa: E402
                          check_profile_name, one_size, store_measured)

# image precision -> (babl sample type, the worker's dtype), as the restore reads layers
_SAMPLES = {"u8": "uint8", "u16": "uint16"}


def _sample(image):
    precision = image.get_precision()
    name = precision.value_nick if hasattr(precision, "value_nick") else str(precision)
    for sample, dtype in _SAMPLES.items():
        if sample in name:
            return sample, dtype
    return "float", "float32"


def read_picture(image, own=False):
    """(pixels, width, height, 4, dtype) of what the image shows (its visible layers merged), as RGBA;
    None for an image with nothing visible. own: the image is this run's, merged in place and deleted."""
    work = image if own else image.duplicate()
    try:
        w, h = work.get_width(), work.get_height()
        try:
            layer = work.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
        except Exception:  # noqa: BLE001  GIMP says so when no layer is visible
            return None
        if layer is None:
            return None
        sample, dtype = _sample(work)
        _, x, y = layer.get_offsets()
        pixels = layer.get_buffer().get(Gegl.Rectangle.new(-x, -y, w, h), 1.0, "R'G'B'A " + sample,
                                        Gegl.AbyssPolicy.NONE)
        return (bytes(pixels), w, h, 4, dtype)
    finally:
        work.delete()


def pictures_from_images(images):
    """The open images of the most common size, read; their file names, in the same order."""
    read = []
    for image in images:
        picture = read_picture(image)
        if picture is not None:
            source = image.get_file()
            read.append(picture + (source.get_path() if source is not None else None,))
    kept = one_size(read)
    return [p[:5] for p in kept], [p[5] for p in kept]


def pictures_from_folder(folder):
    """The pictures of a folder (not its subfolders) that GIMP can open, of the most common size."""
    if not folder or not os.path.isdir(folder):
        raise PluginError("Choose the folder of pictures that carry the watermark.")
    read = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.lower().endswith(PICTURE_EXTENSIONS) or not os.path.isfile(path):
            continue
        try:
            image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
        except Exception:  # noqa: BLE001  a file GIMP can't open is left out, as the command line does
            continue
        if image is not None:
            picture = read_picture(image, own=True)
            if picture is not None:
                read.append(picture + (path,))
    kept = one_size(read)
    return [p[:5] for p in kept], [p[5] for p in kept]


def measure(name, pictures, wait, replace=False):
    """Have the worker measure the watermark on `pictures` and store it as `name`; wait(work) runs
    work(cancel, progress) and returns its outcome (kirei.py waits on a thread). Returns (the stored
    file's path, the worker's report). A PluginError (a Cancelled one when cancelled) when nothing was
    stored: too few pictures, a bad or used name, a refusal of the estimate's checks, a worker's failure."""
    check_profile_name(name, replace)
    if len(pictures) < kirei_client.MIN_PICTURES:
        raise PluginError("Measuring a watermark needs at least %d pictures of one size that carry it "
                          "(%d or more measure it well); no profile was stored."
                          % (kirei_client.MIN_PICTURES, kirei_client.GOOD_ESTIMATE))
    Gimp.progress_init("Kirei: measuring the watermark...")
    try:
        client = kirei_client.Client.from_environment()
        data = wait(lambda cancel, progress: client.estimate(pictures, progress=progress, cancel=cancel))
    except kirei_client.Cancelled:
        raise Cancelled("Cancelled: no profile was stored.")
    except kirei_client.NoUsableProfile as e:
        raise PluginError("%s: no profile was stored. Restore these pictures blind, or measure from others."
                          % str(e).rstrip("."))
    except kirei_client.KireiClientError as e:
        raise PluginError("%s. No profile was stored." % str(e).rstrip("."))
    finally:
        Gimp.progress_end()
    size = pictures[0][1:3]
    path = store_measured(name, data, size, len(pictures), "GIMP %s, %s" % (Gimp.version(), MEASURE_LABEL))
    return path, getattr(data, "report", "")
