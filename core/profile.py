"""Watermark profiles: a watermark's opacity and colour at every pixel of the pictures it is on.

On disk a profile is an RGBA PNG the size of the pictures (RGB = colour W, A = opacity a), 8 or
16 bit, so that users can open it and touch it up in GIMP or Krita. The worker decodes only the
window of it under a job's region (profile_window), so that a job's memory is bounded by the job.
"""
import os
import struct
import zlib
from collections import deque
from dataclasses import dataclass

import numpy as np
import png

from . import imageio
from .errors import KireiError
from .pipeline import check_profile_size

PROFILE_NAME = "the watermark profile"
_RGBA_ONLY = "a watermark profile must be an RGBA PNG (RGB = colour, A = opacity)"
# what pypng can raise on a malformed PNG (IndexError: a pixel naming a colour its palette lacks)
_PNG_ERRORS = (png.Error, zlib.error, EOFError, ValueError, IndexError, struct.error)


@dataclass
class Profile:
    alpha: np.ndarray  # H x W float32, opacity in [0, 1]
    color: np.ndarray  # H x W x 3 float32, colour in [0, 1]
    origin: tuple = (0, 0)  # (x, y) of its top-left pixel in the picture: not (0, 0) for a window of one

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
        ox, oy = self.origin
        x0, y0 = max(x, ox), max(y, oy)
        x1, y1 = min(x + width, ox + pw), min(y + height, oy + ph)
        if x1 > x0 and y1 > y0:
            alpha[y0 - y:y1 - y, x0 - x:x1 - x] = self.alpha[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
            color[y0 - y:y1 - y, x0 - x:x1 - x] = self.color[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        return Profile(alpha, color, (x, y))

    def is_empty(self):
        return not np.any(self.alpha > 0)


def load_profile(path, size=None):
    """Read a profile PNG; a clear KireiError, naming the profile, if it isn't an RGBA PNG or,
    when size = (width, height) is given, if it is another size (refused before decoding it)."""
    return _read(path, size, f"{PROFILE_NAME} {os.fspath(path)}")


def profile_from_png(data, size=None):
    """A whole profile from a PNG file's bytes (an estimate's result); see load_profile."""
    return _read(data, size, PROFILE_NAME)


def _read(source, size, name):
    if size is not None:
        check_profile_size(imageio.read_size(source, name), *size, profile_name=name)
    pic = imageio.load_picture(source, name=name)
    if pic.format != "PNG" or pic.channels != 4:
        raise KireiError(f"{name}: {_RGBA_ONLY}, this is a {pic.describe()}")
    return _profile(pic.pixels)


def _profile(rgba, origin=(0, 0)):
    return Profile(alpha=np.ascontiguousarray(rgba[..., 3]), color=np.ascontiguousarray(rgba[..., :3]),
                   origin=origin)


class _RowReader(png.Reader):
    """pypng's reader, fed each IDAT chunk in small pieces: it inflates a chunk whole, and one chunk
    can hold the whole picture (or, in a bomb, far more); zlib inflates a piece 1032 times at most."""
    PIECE = 1024

    def __init__(self, data):
        super().__init__(bytes=data)
        self._pieces = deque()

    def chunk(self, lenient=False):
        if self._pieces:
            return b"IDAT", self._pieces.popleft()
        kind, data = super().chunk(lenient=lenient)
        if kind == b"IDAT" and len(data) > self.PIECE:
            view = memoryview(data)
            self._pieces.extend(view[at:at + self.PIECE] for at in range(self.PIECE, len(data), self.PIECE))
            data = view[:self.PIECE]
        return kind, data


def _rows(data):
    """A profile PNG's (width, height, rows, bit depth), from its header: its rows are read as they are
    iterated. A KireiError, naming the profile, for a PNG that isn't RGBA or can't be read by rows."""
    try:
        width, height, rows, info = _RowReader(data).asDirect()
    except _PNG_ERRORS as e:
        raise KireiError(f"{PROFILE_NAME}: can't read the picture ({e})") from None
    if info["planes"] != 4:
        raise KireiError(f"{PROFILE_NAME}: {_RGBA_ONLY}, this PNG has {info['planes']} channels")
    if info["interlace"]:
        raise KireiError(f"{PROFILE_NAME} is an interlaced PNG: save it without interlacing")
    return width, height, rows, info["bitdepth"]


def png_size(data):
    """A profile PNG's (width, height), from its header alone; a KireiError, naming the profile, for
    anything profile_window can't read."""
    return _rows(data)[:2]


def profile_window(data, x, y, width, height):
    """The part of a profile PNG (file bytes) at (x, y), width x height, inside the picture, decoded
    row by row: what is kept, and the memory it takes, is the window's whatever the picture's size.
    A Profile with origin (x, y); a KireiError, naming the profile, for a broken or truncated PNG."""
    pw, ph, rows, bit_depth = _rows(data)
    if x < 0 or y < 0 or x + width > pw or y + height > ph:
        raise ValueError(f"window {width}x{height} at ({x}, {y}) outside the {pw}x{ph} profile")
    out = np.zeros((height, width, 4), np.float32)
    got = 0
    try:
        for i, row in enumerate(rows if width and height else ()):  # rows below the window are never read
            if i >= y:
                out[i - y] = np.asarray(row[x * 4:(x + width) * 4]).reshape(width, 4)
                got += 1
                if got == height:
                    break
    except _PNG_ERRORS as e:
        raise KireiError(f"{PROFILE_NAME}: can't read the picture ({e})") from None
    if got < (height if width else 0):
        raise KireiError(f"{PROFILE_NAME}: can't read the picture (the file is truncated)")
    out /= 2 ** bit_depth - 1
    return _profile(out, (x, y))


def _as_picture(profile, bit_depth=16):
    rgba = np.dstack([profile.color, profile.alpha[..., None]]).astype(np.float32)
    return imageio.Picture(rgba, bit_depth=bit_depth, format="PNG")


def profile_png(profile):
    """The profile as 16-bit RGBA PNG file bytes (what the worker sends back from an estimate)."""
    return imageio.png_bytes(_as_picture(profile))


def save_profile(profile, path, bit_depth=16):
    """Write a profile as an RGBA PNG (16 bit by default: opacity steps finer than 1/255)."""
    imageio.save_picture(_as_picture(profile, bit_depth), path)
