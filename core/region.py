"""The region API for the plugins: restore part of a layer and composite it through a selection.

A plugin hands over the pixels of a region of the user's layer (often the selection's bounding
box, or the whole layer), where that region sits in the picture, and an optional soft selection
mask. Only the selection's bounding box is restored, read with a margin of context around it so
that its edges look like the rest; the result is transparent outside the selection and partly
transparent where the selection is soft, ready to be pasted as a new layer at `offset`.
"""
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import imageio
from .errors import KireiError
from .profile import Profile
from .pipeline import Options, context_pixels, find_blind, restore_pixels

DEFAULT_MARGIN = 16  # context pixels read around the selection (input resolution)


@dataclass
class RegionResult:
    pixels: np.ndarray  # (h*scale) x (w*scale) x C with alpha last, dtype of the input
    offset: tuple  # (x, y) of the result's top-left corner in the scaled picture
    bbox: tuple  # (x0, y0, x1, y1) of the restored part, in the region's own input pixels
    # asked for (matte=True): the opacity of the watermark taken off, at the result's size, uint8
    # (255: opaque); None when nothing was taken off
    matte: np.ndarray = None


def selection_bbox(mask):
    """(x0, y0, x1, y1) of the mask's non-zero part; a KireiError when nothing is selected."""
    ys, xs = np.nonzero(mask > 0)
    if len(ys) == 0:
        raise KireiError("the selection is empty: select the part to restore, or select nothing for all of it")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _with_alpha(pixels):
    """Grey -> grey+alpha, RGB -> RGBA (opaque); pictures with alpha unchanged."""
    if pixels.shape[2] in (2, 4):
        return pixels
    return np.concatenate([pixels, np.ones(pixels.shape[:2] + (1,), pixels.dtype)], axis=2)


def _resize_mask(mask, width, height, resample=Image.NEAREST):
    # nearest (a selection): each input pixel's selection covers exactly its scale x scale block, no leaks
    if mask.shape == (height, width):
        return mask
    return np.asarray(Image.fromarray(mask, "F").resize((width, height), resample))


def _matte(profile, x, y, width, height, scale):
    """The opacity taken off a part of the picture, at the result's size (bilinear: the stamp's
    soft edges as the model saw them), as uint8; None where there is none."""
    if profile is None:
        return None
    alpha = profile.crop(x, y, width, height).alpha
    if not np.any(alpha > 0):
        return None
    big = _resize_mask(np.ascontiguousarray(alpha), width * scale, height * scale, Image.BILINEAR)
    return np.clip(np.round(big * 255.0), 0, 255).astype(np.uint8)


def restore_region(pixels, offset=(0, 0), mask=None, profile=None, options=Options(), margin=DEFAULT_MARGIN,
                   progress=None, report=None, matte=False):
    """Restore a region of a layer; see the module doc.

    pixels: H x W x C (uint8, uint16 or float; C = 1..4, alpha last when 2 or 4).
    offset: (x, y) of the region in the picture, to align the watermark profile.
    mask: H x W soft selection (float in [0, 1], or uint8/uint16), or None for all of it.
    profile: a Profile of the whole picture, or None (no watermark removal, or in blind mode the
    one found in the whole region given, not only in the selection: see pipeline.find_blind, and
    report).
    matte: also return the opacity of the watermark taken off (RegionResult.matte), for the
    plugins to show as a layer mask.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4) or min(pixels.shape[:2]) < 1:
        raise KireiError(f"the region must be H x W x C with 1 to 4 channels, got shape {pixels.shape}")
    h, w = pixels.shape[:2]
    if mask is not None:
        mask = imageio.to_float(mask)[..., 0]
        if mask.shape != (h, w):
            raise KireiError(f"the selection mask is {mask.shape[1]}x{mask.shape[0]}, the region {w}x{h}")
        x0, y0, x1, y1 = selection_bbox(mask)
    else:
        x0, y0, x1, y1 = 0, 0, w, h
    if options.blind and profile is None:
        whole, options = find_blind(_with_alpha(imageio.to_float(pixels)), None, options, report)
        profile = None if whole is None else Profile(whole.alpha, whole.color, origin=tuple(offset))
    # context: the bounding box grown by the margin (at least what the method reads around a
    # pixel, so that the part restores as it would inside the whole), kept inside the region
    margin = max(margin, context_pixels(options, profile))
    cx0, cy0 = max(x0 - margin, 0), max(y0 - margin, 0)
    cx1, cy1 = min(x1 + margin, w), min(y1 + margin, h)
    crop = imageio.to_float(pixels[cy0:cy1, cx0:cx1])
    prof = None
    if profile is not None:
        prof = profile.crop(offset[0] + cx0, offset[1] + cy0, cx1 - cx0, cy1 - cy0)
    restored = restore_pixels(_with_alpha(crop), prof, options, progress=progress)
    s = options.scale
    out = restored[(y0 - cy0) * s:(y1 - cy0) * s, (x0 - cx0) * s:(x1 - cx0) * s].copy()
    if mask is not None:
        sel = _resize_mask(np.ascontiguousarray(mask[y0:y1, x0:x1]), (x1 - x0) * s, (y1 - y0) * s)
        out[..., -1] *= np.clip(sel, 0.0, 1.0)
    dtype = pixels.dtype if pixels.dtype in (np.uint8, np.uint16) else np.float32
    taken_off = _matte(profile, offset[0] + x0, offset[1] + y0, x1 - x0, y1 - y0, s) if matte else None
    return RegionResult(pixels=imageio.from_float(out, dtype), offset=((offset[0] + x0) * s, (offset[1] + y0) * s),
                        bbox=(x0, y0, x1, y1), matte=taken_off)
