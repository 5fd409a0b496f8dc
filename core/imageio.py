"""Reading and writing pictures: modes, bit depth, EXIF orientation, ICC profiles.

Inside the engine a picture is float32 H x W x C in [0, 1] with C = 1 (grey), 2 (grey + alpha),
3 (RGB) or 4 (RGBA), plus the bit depth it came in (8, 16, or 32 for float) so that the result
is written back the same way. Pillow reads and writes 8-bit files and float TIFFs; 16-bit PNGs
(which Pillow reduces to 8 bit in colour) go through pypng. A picture's size is read from its
header and checked (MAX_PIXELS, or a caller's smaller bound) before anything is decoded.
"""
import io
import os
import stat
import struct
import tempfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import png
from PIL import Image

from .errors import KireiError

MAX_PIXELS = 100_000_000  # the largest picture Kirei reads (e.g. 10000 x 10000), unless told a smaller bound
# Kirei checks every picture's size itself, from its header and before decoding, against a bound that
# may be smaller than any process-wide one (a profile must be its job's size). Pillow's own global
# guard would raise before the size can even be read and reported, so it is off here.
Image.MAX_IMAGE_PIXELS = None
# what reading a malformed file can raise, from Pillow, pypng or zlib under them
_READ_ERRORS = (OSError, EOFError, SyntaxError, ValueError, struct.error, zlib.error, png.Error,
                Image.DecompressionBombError, Image.DecompressionBombWarning)
# Pillow's modes, mapped to (channels, bit depth) and the mode to convert to before reading.
_MODES = {
    "1": ("L", 1, 8), "L": ("L", 1, 8), "P": (None, None, 8), "PA": ("RGBA", 4, 8),
    "LA": ("LA", 2, 8), "La": ("LA", 2, 8), "RGB": ("RGB", 3, 8), "RGBA": ("RGBA", 4, 8),
    "RGBa": ("RGBA", 4, 8), "RGBX": ("RGB", 3, 8), "CMYK": ("RGB", 3, 8), "YCbCr": ("RGB", 3, 8),
    "LAB": ("RGB", 3, 8), "HSV": ("RGB", 3, 8),
    "I;16": ("I;16", 1, 16), "I;16B": ("I;16", 1, 16), "I;16L": ("I;16", 1, 16), "I": ("I", 1, 16),
    "F": ("F", 1, 32),
}
_NAMES = {1: "greyscale", 2: "greyscale+alpha", 3: "RGB", 4: "RGBA"}


@dataclass
class Picture:
    pixels: np.ndarray  # H x W x C: float32 in [0, 1], or uint8/uint16 ready to write
    bit_depth: int = 8  # 8, 16 or 32 (float)
    icc_profile: bytes = None
    format: str = None  # "PNG", "JPEG", ... as read; None for pictures made in memory
    info: dict = field(default_factory=dict)

    @property
    def channels(self):
        return self.pixels.shape[2]

    @property
    def has_alpha(self):
        return self.channels in (2, 4)

    @property
    def size(self):
        return self.pixels.shape[1], self.pixels.shape[0]

    def describe(self):
        depth = "float" if self.bit_depth == 32 else f"{self.bit_depth}-bit"
        return f"{depth} {_NAMES[self.channels]} {self.format or 'picture'}"


def to_float(array):
    """uint8 / uint16 / float arrays to float32 in [0, 1] (H x W x C).

    Finite floats out of range are clipped (3.4e38 would overflow the arithmetic into NaN);
    NaN or infinite values are refused: the engine never works on, or returns, NaN pixels.
    """
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise KireiError("the pixels hold NaN or infinite values")
        return np.clip(a, 0.0, 1.0).astype(np.float32)  # clipped before the cast: float64 could overflow it
    raise KireiError(f"unsupported pixel type {a.dtype}: use 8- or 16-bit integers or floats")


def from_float(array, dtype):
    """float pixels back to dtype (uint8, uint16: rounded and clipped; floats: clipped to [0, 1])."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.clip(np.rint(array * 65535.0), 0, 65535).astype(np.uint16)
    return np.clip(array, 0.0, 1.0).astype(dtype)


def to_dtype(array, dtype):
    """Pixels (any supported dtype) as dtype: unchanged when they already are."""
    if array.dtype == np.dtype(dtype):
        return array
    return from_float(to_float(array), dtype)


def dtype_for_bit_depth(bit_depth):
    return {8: np.uint8, 16: np.uint16, 32: np.float32}[bit_depth]


# EXIF orientation (1..8) as numpy operations on H x W x C arrays.
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 1)[::-1],
    8: lambda a: np.rot90(a, 1),
}


_TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height


def _read_png16(reader):
    width, height, rows, info = reader.asDirect()
    planes = info["planes"]
    arr = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(height, width, planes)
    return arr


def _name(source, name):
    if name:
        return name
    return "the picture" if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)


def _read_flags():
    # Windows has no O_NONBLOCK (nor FIFOs to hang on), and opens in text mode without O_BINARY
    return os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


@contextmanager
def _opened(source, name):
    """The picture file as a binary file object. A path is opened without blocking and refused
    unless it is a regular file: reading a FIFO or a device would hang or never end."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(source)
        return
    try:
        fd = os.open(os.fspath(source), _read_flags())
    except FileNotFoundError:
        raise KireiError(f"{name}: no such file") from None
    except OSError as e:
        raise KireiError(f"{name}: can't read the picture ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise KireiError(f"{name}: " + ("is a folder, not a picture" if stat.S_ISDIR(mode) else "not a regular file"))
    with os.fdopen(fd, "rb") as fh:
        yield fh


@contextmanager
def _header(source, name):
    """Pillow's image with only its header read (nothing decoded yet); read errors as KireiError."""
    with _opened(source, name) as fh:
        try:
            with Image.open(fh) as im:
                yield im, fh
        except _READ_ERRORS as e:
            raise KireiError(f"{name}: can't read the picture ({_reason(e)})") from None


def _orientation(im):
    # the EXIF Pillow read with the header: PngImageFile.getexif would decode the whole picture
    # looking for an eXIf chunk after the pixels
    return Image.Image.getexif(im).get(0x0112, 1)


def read_size(source, name=None):
    """A picture's (width, height), upright (EXIF orientation applied), from its header only:
    cheap for any picture, however large. A KireiError for anything unreadable."""
    name = _name(source, name)
    with _header(source, name) as (im, _):
        w, h = im.size
        return (h, w) if _orientation(im) in _TRANSPOSED else (w, h)


def check_pixels(name, width, height, max_pixels=MAX_PIXELS):
    """Refuse a picture of width x height larger than max_pixels, before it is decoded."""
    if width * height > max_pixels:
        raise KireiError(f"{name} is {width}x{height} = {width * height / 1e6:.1f} megapixels, "
                         f"more than Kirei reads ({max_pixels / 1e6:g})")


def load_picture(source, max_pixels=None, name=None):
    """Read a picture from a path (or from a file's bytes); a KireiError with the reason for anything
    missing, unreadable, truncated or larger than max_pixels (default MAX_PIXELS), which is
    refused from its header, before any memory is spent decoding it. `name` is how errors call it."""
    name = _name(source, name)
    with _header(source, name) as (im, fh):
        check_pixels(name, *im.size, MAX_PIXELS if max_pixels is None else max_pixels)
        fmt, icc, orientation = im.format, im.info.get("icc_profile"), _orientation(im)
        reader = _png_reader(fh) if fmt == "PNG" else None
        if reader is not None and reader.bitdepth == 16:
            _check_inflated_size(fh, reader)
            arr, bit_depth = _read_png16(reader), 16
        else:
            arr, bit_depth = _pillow_to_array(im)
    try:
        pixels = to_float(arr)
    except KireiError as e:  # a float TIFF holding NaN
        raise KireiError(f"{name}: {e}") from None
    if orientation in _ORIENT:
        pixels = np.ascontiguousarray(_ORIENT[orientation](pixels))
    return Picture(pixels, bit_depth=bit_depth, icc_profile=icc, format=fmt)


def _reason(e):
    text = str(e) or type(e).__name__
    if "truncated" in text:
        return "the file is truncated"
    if "cannot identify" in text:
        return "not a picture file Pillow can read"
    return text


def _png_reader(fh):
    """A pypng reader past the PNG's header (16-bit PNGs are read by pypng: Pillow reduces them)."""
    fh.seek(0)
    reader = png.Reader(file=fh)
    reader.preamble()
    return reader


def _check_inflated_size(fh, reader):
    """pypng inflates each compressed chunk whole, so a small picture could hide gigabytes: refuse
    data that inflates to more than the header's size holds (one filter byte per row of each of
    the up to 7 interlace passes, at most 2 per picture row)."""
    limit = reader.height * (reader.width * reader.planes * 2 + 2) + 8
    inflater, total = zlib.decompressobj(), 0
    at = fh.tell()
    fh.seek(0)
    for kind, data in png.Reader(file=fh).chunks():
        if kind != b"IDAT":
            continue
        while data:
            total += len(inflater.decompress(data, 1 << 20))
            data = inflater.unconsumed_tail
            if total > limit:
                raise png.FormatError("its compressed data inflates to more than its size holds")
    fh.seek(at)


def _pillow_to_array(im):
    target, _, bit_depth = _MODES.get(im.mode, ("RGBA", 4, 8))
    if im.mode == "P" or target is None:
        target = "RGBA" if "transparency" in im.info else "RGB"
    if im.mode in ("I", "I;16", "I;16B", "I;16L"):
        arr = np.asarray(im.convert("I")).astype(np.int64)
        return np.clip(arr, 0, 65535).astype(np.uint16), 16
    if im.mode == "F":
        return np.asarray(im, np.float32), 32
    if im.mode != target:
        im = im.convert(target)
    return np.asarray(im), bit_depth


def _atomic_target(path):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".kirei-", suffix=".part", dir=folder)
    os.close(fd)
    # mkstemp makes the file private (0600); a written picture gets the usual umask permissions
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def save_picture(picture, path):
    """Write a picture as PNG (8 or 16 bit; float pictures as 16 bit), atomically.

    The file appears complete or not at all: a failure leaves nothing half-written.
    """
    path = os.fspath(path)
    tmp = _atomic_target(path)
    try:
        with open(tmp, "wb") as fh:
            write_png(picture, fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def png_bytes(picture):
    """The picture as PNG file bytes (see save_picture)."""
    buf = io.BytesIO()
    write_png(picture, buf)
    return buf.getvalue()


def write_png(picture, fh):
    """Write a picture as PNG to a binary file object: 8-bit by Pillow, 16-bit by pypng; ICC kept."""
    px = picture.pixels
    if picture.bit_depth == 8:
        arr = to_dtype(px, np.uint8)
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[px.shape[2]]
        im = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
        kw = {"icc_profile": picture.icc_profile} if picture.icc_profile else {}
        im.save(fh, format="PNG", **kw)
        return
    arr = to_dtype(px, np.uint16)
    h, w, c = arr.shape
    writer = png.Writer(width=w, height=h, greyscale=c < 3, alpha=c in (2, 4), bitdepth=16)
    rows = arr.reshape(h, w * c)
    if not picture.icc_profile:
        writer.write(fh, rows)
        return
    # pypng writes no iCCP chunk itself: write the PNG, then insert the chunk after IHDR
    buf = io.BytesIO()
    writer.write(buf, rows)
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    chunks.insert(1, (b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(picture.icc_profile)))
    png.write_chunks(fh, chunks)
