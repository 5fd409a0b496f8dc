"""Watermark profiles: a watermark's opacity and colour at every pixel of the pictures it is on.

On disk a profile is an RGBA PNG the size of the pictures (RGB = colour W, A = opacity a), 8 or
16 bit, so that users can open it and touch it up in GIMP or Krita.
"""
import os
from dataclasses import dataclass

import numpy as np

from . import imageio
from .errors import KireiError
from .pipeline import check_profile_size


@dataclass
class Profile:
    alpha: np.ndarray  # H x W float32, opacity in [0, 1]
    color: np.ndarray  # H x W x 3 float32, colour in [0, 1]

    @property
    def size(self):
        """(width, height), as pictures' sizes are said."""
        return self.alpha.shape[1], self.alpha.shape[0]

    def crop(self, x, y, width, height):
        """The part of the profile under a region at offset (x, y) of the picture.

        Parts of the region outside the profile carry no watermark (opacity 0).
        """
        alpha = np.zeros((height, width), np.float32)
        color = np.zeros((height, width, 3), np.float32)
        ph, pw = self.alpha.shape
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + width, pw), min(y + height, ph)
        if x1 > x0 and y1 > y0:
            alpha[y0 - y:y1 - y, x0 - x:x1 - x] = self.alpha[y0:y1, x0:x1]
            color[y0 - y:y1 - y, x0 - x:x1 - x] = self.color[y0:y1, x0:x1]
        return Profile(alpha, color)

    def is_empty(self):
        return not np.any(self.alpha > 0)


def load_profile(path, size=None):
    """Read a profile PNG; a clear KireiError, naming the profile, if it isn't an RGBA PNG or,
    when size = (width, height) is given, if it is another size (refused before decoding it)."""
    return _read(path, size, f"the watermark profile {os.fspath(path)}")


def profile_from_png(data, size=None):
    """A profile from a PNG file's bytes (as the worker receives it); see load_profile."""
    return _read(data, size, "the watermark profile")


def _read(source, size, name):
    if size is not None:
        check_profile_size(imageio.read_size(source, name), *size, profile_name=name)
    pic = imageio.load_picture(source, name=name)
    if pic.format != "PNG" or pic.channels != 4:
        raise KireiError(f"{name}: a watermark profile must be an RGBA PNG "
                         f"(RGB = colour, A = opacity), this is a {pic.describe()}")
    px = pic.pixels
    return Profile(alpha=np.ascontiguousarray(px[..., 3]), color=np.ascontiguousarray(px[..., :3]))


def _as_picture(profile, bit_depth=16):
    rgba = np.dstack([profile.color, profile.alpha[..., None]]).astype(np.float32)
    return imageio.Picture(rgba, bit_depth=bit_depth, format="PNG")


def profile_png(profile):
    """The profile as 16-bit RGBA PNG file bytes (what the worker sends back from an estimate)."""
    return imageio.png_bytes(_as_picture(profile))


def save_profile(profile, path, bit_depth=16):
    """Write a profile as an RGBA PNG (16 bit by default: opacity steps finer than 1/255)."""
    imageio.save_picture(_as_picture(profile, bit_depth), path)
