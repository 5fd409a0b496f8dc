"""One picture in, one restored picture out: watermark removal, then upscaling.

Works on float32 H x W x C pixels (C = 1..4, alpha last when present); the command line and
the region API for the plugins both come through here.
"""
from dataclasses import dataclass, field, replace

import numpy as np

from . import imageio
from .blend import luma
from .defaults import DEFAULT_TILE, METHODS, SCALES, TTA_CPU_MAX_PIXELS
from .dewatermark import remove_with_profile
from .errors import KireiError
from .models import DEFAULT_MODEL
from .tiling import StackedGuide, run_tiled
from .upscale import LanczosUpscaler

SMALLEST_TILE = 64  # out of memory: tiles are halved down to this before giving up


def default_method(model=DEFAULT_MODEL):
    """The learned model when its weights are installed, else the classical method."""
    from .weights_io import available
    return "learned" if available(model) else "classic"


@dataclass
class Options:
    scale: int = 2
    method: str = field(default_factory=default_method)
    device: str = "auto"
    tile: int = DEFAULT_TILE
    blind: bool = False  # no profile given: find the watermark and remove it (learned method only; core/blind.py)
    model: str = DEFAULT_MODEL  # a shipped model's name (core/weights) or a .safetensors path
    jpeg: bool = False  # the picture was JPEG-compressed: the model's JPEG body, if it has one
    tta: bool = None  # run the model on the tile's 8 flips and turns and average; None: auto_tta decides


def colour_channels(channels):
    """How many of a picture's channels are colour (the rest, if any, is its alpha)."""
    return {1: 1, 2: 1, 3: 3, 4: 3}[channels]


def profile_for(profile, channels):
    """(alpha, watermark colour) of a profile, the colour reduced to grey for grey pictures."""
    if colour_channels(channels) == 1:
        return profile.alpha, luma(profile.color)[..., None]
    return profile.alpha, profile.color


def check_profile_size(profile_size, width, height, name="the picture", profile_name="the watermark profile"):
    """The one check that a profile of profile_size = (width, height) fits a width x height picture."""
    if tuple(profile_size) != (width, height):
        raise KireiError(f"{name} is {width}x{height} but {profile_name} is "
                         f"{profile_size[0]}x{profile_size[1]}: a profile belongs to pictures of its own size "
                         "(resized, it leaves the stamp's edges behind); measure one from pictures of this size")


def remove_watermark(pixels, profile):
    """The picture without the watermark described by `profile` (same shape; alpha untouched)."""
    if profile is None or profile.is_empty():
        return pixels
    nc = colour_channels(pixels.shape[2])
    alpha, colour = profile_for(profile, pixels.shape[2])
    out = pixels.copy()
    out[..., :nc] = remove_with_profile(pixels[..., :nc], alpha, colour)
    return out


def find_blind(pixels, profile, options, report=None):
    """(profile, options) to restore with: in blind mode (no profile, the learned method) the
    watermark the stamp finder finds and trusts in these pixels, or none (core/blind.py), and
    options no longer blind; otherwise as given. report(Found), if given, hears what was found."""
    if not options.blind or profile is not None or options.method != "learned":
        return profile, options
    from .blind import find_watermark
    from .devices import resolve_device
    found = find_watermark(imageio.to_float(pixels), resolve_device(options.device))
    if report:
        report(found)
    return found.profile, replace(options, blind=False)


def restore_pixels(pixels, profile=None, options=None, out_dtype=np.float32, progress=None, report=None):
    """Remove the watermark (when a profile is given, or found in blind mode) and upscale; returns
    out_dtype pixels. progress(fraction), if given, is called as the tiles are done (see
    tiling.run_tiled); report, see find_blind."""
    options = options or Options()  # made per call: its default method asks whether weights are installed
    if options.scale not in SCALES:
        raise KireiError(f"scale must be one of {', '.join(map(str, SCALES))}, not {options.scale}")
    if options.method not in METHODS:
        raise KireiError(f"unknown method '{options.method}': choose one of {', '.join(METHODS)}")
    pixels = imageio.to_float(pixels)
    if profile is not None:
        check_profile_size(profile.size, pixels.shape[1], pixels.shape[0])
    profile, options = find_blind(pixels, profile, options, report)
    if options.method == "classic":
        clean = remove_watermark(pixels, profile)
        return run_tiled(LanczosUpscaler(options.scale), clean, tile=options.tile, out_dtype=out_dtype,
                         progress=progress)
    return _restore_learned(pixels, profile, options, out_dtype, progress)


def _learned_mode(profile, options):
    # blind mode finds a profile first (find_blind); its context is a profile's
    return "profile" if options.blind or (profile is not None and not profile.is_empty()) else "none"


def auto_tta(options, pixel_count, device):
    """Whether the model runs on each tile's 8 flips and turns (learned.VIEWS): as asked, or by default for JPEG input
    on a GPU, and on the CPU up to TTA_CPU_MAX_PIXELS."""
    if options.tta is not None:
        return options.tta
    return options.jpeg and (device.type != "cpu" or pixel_count <= TTA_CPU_MAX_PIXELS)


def _learned_restorer(options, mode, pixel_count=0):
    from .devices import resolve_device
    from .learned import LearnedRestorer, model_for
    device = resolve_device(options.device)
    return LearnedRestorer(model_for(device, options.model), options.scale, device, mode, jpeg=options.jpeg,
                           tta=auto_tta(options, pixel_count, device))


def context_pixels(options, profile=None):
    """Input pixels on each side that one result pixel depends on: a region read with this much
    context around it restores exactly as it would inside the whole picture."""
    if options.method == "classic":
        return LanczosUpscaler.receptive_field
    return _learned_restorer(options, _learned_mode(profile, options)).receptive_field


def _restore_learned(pixels, profile, options, out_dtype, progress):
    import torch
    mode = _learned_mode(profile, options)
    guide = None
    if mode == "profile":
        alpha, colour = profile_for(profile, pixels.shape[2])  # grey pictures: grey colour
        guide = StackedGuide(*(np.asarray(part, np.float32) for part in (alpha[..., None], colour)))
    restorer = _learned_restorer(options, mode, pixels.shape[0] * pixels.shape[1])
    tile = options.tile if options.scale < 4 else max(options.tile // 2, SMALLEST_TILE)  # x4: 4x the work per px
    while True:
        try:
            return run_tiled(restorer, pixels, tile=tile, out_dtype=out_dtype, progress=progress, guide=guide)
        except torch.cuda.OutOfMemoryError:
            if tile // 2 < SMALLEST_TILE:
                raise MemoryError("out of GPU memory even with small tiles") from None
            tile //= 2
            torch.cuda.empty_cache()


def restore_picture(picture, profile=None, options=None, progress=None, report=None):
    """A restored imageio.Picture: same mode and bit depth, size x scale, ICC profile kept."""
    out = restore_pixels(picture.pixels, profile, options,
                         out_dtype=imageio.dtype_for_bit_depth(picture.bit_depth), progress=progress, report=report)
    return imageio.Picture(out, bit_depth=picture.bit_depth, icc_profile=picture.icc_profile, format="PNG")
