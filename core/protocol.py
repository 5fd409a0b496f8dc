"""The worker's side of the wire format (docs/protocol.md): checking and decoding job requests.

Framing (pack/unpack) is shared with the plugins' client, core/client.py. Everything a request
can get wrong ends in a BadRequest with an HTTP status and a message for the user; nothing
here may raise anything else on malformed input (the fuzz test holds it to that). A profile PNG
is only checked from its header here; it is decoded when its job runs (decode_profile), one at
a time on the worker's runner, and only the part under the job's region.
"""
import numbers
from dataclasses import dataclass

import numpy as np

from . import client, imageio
from .defaults import MAX_TILE, MIN_TILE
from .errors import KireiError
from .models import DEFAULT_MODEL
from .pipeline import SCALES, check_profile_size
from .profile import PROFILE_NAME, png_size, profile_window

DEFAULT_MAX_PIXELS = imageio.MAX_PIXELS  # largest region (and profile) a worker takes, unless told otherwise
DEFAULT_MAX_BODY_MB = 2048


class BadRequest(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class JobRequest:
    pixels: np.ndarray  # H x W x C
    mask: np.ndarray  # H x W or None
    profile_png: bytes  # the profile PNG file's bytes, or None
    offset: tuple
    scale: int
    watermark: str
    tile: int = None
    image_size: tuple = None  # (width, height) of the whole picture, when the client says (always with a profile)
    model: str = DEFAULT_MODEL  # a shipped model's name, never a path: the worker names what it has
    jpeg: bool = None  # the pixels went through JPEG, as the client knows it (the document's file); None: look
    matte: bool = False  # send back the opacity of the watermark taken off
    tta: bool = None  # the model on each tile's 8 flips and turns (True), one view (False), None: the worker decides

    def decode_profile(self):
        """The part of the watermark profile under the region (a core.profile.Profile), decoded: memory
        in proportion to the region, whatever the picture's size. A region reaching past the picture
        (a layer larger than the image) gets the part inside it; the rest carries no watermark."""
        h, w = self.pixels.shape[:2]
        (x, y), (iw, ih) = self.offset, self.image_size
        x0, y0 = min(max(x, 0), iw), min(max(y, 0), ih)
        x1, y1 = max(min(x + w, iw), x0), max(min(y + h, ih), y0)
        return profile_window(self.profile_png, x0, y0, x1 - x0, y1 - y0)


def _int(header, key, lo, hi, default=None):
    v = header.get(key, default)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= v <= hi:
        raise BadRequest(400, f"'{key}' must be a whole number from {lo} to {hi}, got {v!r}")
    return int(v)


def _choice(header, key, choices, default=None):
    v = header.get(key, default)
    if not isinstance(v, str) or v not in choices:
        raise BadRequest(400, f"'{key}' must be one of {', '.join(map(str, choices))}, got {v!r}")
    return v


def _flag(header, key, default=None):
    """true or false, or the default where the header doesn't say (None: the worker decides)."""
    v = header.get(key, default)
    if v is not default and not isinstance(v, bool):
        raise BadRequest(400, f"'{key}' must be true or false, got {v!r}")
    return v


def _model(header, models):
    """The job's model: one of `models` (the installed ones), or the default. The default is taken
    even when its weights are missing or damaged: the job then runs the classic method, as a job
    that names no model does."""
    v = header.get("model", DEFAULT_MODEL)
    if v == DEFAULT_MODEL or (isinstance(v, str) and v in models):
        return v
    shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
    raise BadRequest(400, f"no model named {shown} is installed in this worker (installed: "
                          f"{', '.join(models) or 'none'})")


def parse_job(body, max_pixels, models=()):
    """A JobRequest from a request body, or BadRequest. models: the names of the installed models."""
    try:
        header, payload = client.unpack(body)
    except ValueError as e:
        raise BadRequest(400, f"malformed request: {e}") from None
    if header.get("protocol", client.PROTOCOL) != client.PROTOCOL:
        raise BadRequest(400, f"protocol {header.get('protocol')!r} is not supported; this worker speaks "
                              f"{client.PROTOCOL}: update the plugin and the engine together (install.py)")
    w = _int(header, "width", 1, 1 << 20)
    h = _int(header, "height", 1, 1 << 20)
    _check_pixels("the region", w, h, max_pixels)
    c = _int(header, "channels", 1, 4)
    dtype = _choice(header, "dtype", tuple(client.DTYPES))
    scale = _int(header, "scale", 1, 4, 2)
    if scale not in SCALES:
        raise BadRequest(400, f"'scale' must be one of {', '.join(map(str, SCALES))}, got {scale}")
    watermark = _choice(header, "watermark", client.WATERMARK_MODES, "blind")
    model = _model(header, models)
    offset = header.get("offset", [0, 0])
    if (not isinstance(offset, list) or len(offset) != 2
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or abs(v) > 1 << 24 for v in offset)):
        raise BadRequest(400, f"'offset' must be [x, y] in whole pixels, got {offset!r}")
    tile = _int(header, "tile", MIN_TILE, MAX_TILE) if "tile" in header else None
    jpeg, matte, tta = _flag(header, "jpeg"), _flag(header, "matte", False), _flag(header, "tta")
    image_size = None
    if "image_size" in header:
        image_size = header["image_size"]
        if (not isinstance(image_size, list) or len(image_size) != 2 or any(
                isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 1 <= v <= 1 << 20
                for v in image_size)):
            raise BadRequest(400, f"'image_size' must be [width, height] in whole pixels, got {image_size!r}")
        image_size = (int(image_size[0]), int(image_size[1]))
    n_pixels = w * h * c * client.DTYPES[dtype]
    mask_dtype = _choice(header, "mask_dtype", tuple(client.DTYPES)) if "mask_dtype" in header else None
    n_mask = w * h * client.DTYPES[mask_dtype] if mask_dtype else 0
    n_profile = 0
    if watermark == "profile":
        n_profile = _int(header, "profile_bytes", 1, 1 << 30)
        if image_size is None:
            raise BadRequest(400, "'image_size' (the whole picture's [width, height]) must come with a watermark "
                                  "profile: update the plugin and the engine together (install.py)")
    expected = n_pixels + n_mask + n_profile
    if len(payload) != expected:
        raise BadRequest(400, f"the request's data is {len(payload)} bytes but its header announces {expected} "
                              f"(truncated or padded)")
    view = memoryview(payload)
    pixels = np.frombuffer(view[:n_pixels], dtype=np.dtype(dtype).newbyteorder("<")).reshape(h, w, c)
    mask = None
    if mask_dtype:
        mask = np.frombuffer(view[n_pixels:n_pixels + n_mask], dtype=np.dtype(mask_dtype).newbyteorder("<"))
        mask = mask.reshape(h, w)
    for name, arr in (("pixels", pixels), ("mask", mask)):
        if arr is not None and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise BadRequest(400, f"the {name} hold NaN or infinite values")
    offset = (int(offset[0]), int(offset[1]))
    profile_png = None
    if n_profile:
        profile_png = bytes(view[n_pixels + n_mask:])
        _check_profile_header(profile_png, image_size, max_pixels)
    return JobRequest(pixels=pixels.astype(pixels.dtype.newbyteorder("=")), mask=mask, profile_png=profile_png,
                      offset=offset, scale=scale, watermark=watermark, tile=tile, image_size=image_size,
                      model=model, jpeg=jpeg, matte=matte, tta=tta)


def _check_pixels(name, width, height, max_pixels):
    try:
        imageio.check_pixels(name, width, height, max_pixels)
    except KireiError as e:
        raise BadRequest(413, str(e)) from None


def _check_profile_header(png, image_size, max_pixels):
    """Refuse, from its header alone, a profile that isn't the picture's size (image_size), is too
    large to read through, or can't be read by rows."""
    try:
        pw, ph = png_size(png)
    except KireiError as e:
        raise BadRequest(400, str(e)) from None
    _check_pixels(PROFILE_NAME, pw, ph, max_pixels)
    try:
        check_profile_size((pw, ph), *image_size, profile_name=PROFILE_NAME)
    except KireiError as e:
        raise BadRequest(400, str(e)) from None


@dataclass
class EstimateRequest:
    pictures: list  # float32 H x W x 3 arrays, all one size


def parse_estimate(body, max_pixels):
    """An EstimateRequest: header {"pictures": [{"width", "height", "channels", "dtype"}, ...]} + the pixels."""
    try:
        header, payload = client.unpack(body)
    except ValueError as e:
        raise BadRequest(400, f"malformed request: {e}") from None
    items = header.get("pictures")
    if not isinstance(items, list) or not 2 <= len(items) <= 200:
        raise BadRequest(400, "'pictures' must list 2 to 200 pictures that carry the same watermark")
    pictures, at = [], 0
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadRequest(400, f"picture {i}: must be an object")
        w, h = _int(item, "width", 1, 1 << 16), _int(item, "height", 1, 1 << 16)
        c, dtype = _int(item, "channels", 1, 4), _choice(item, "dtype", tuple(client.DTYPES))
        if w * h * len(items) > max_pixels:
            raise BadRequest(413, f"{len(items)} pictures of {w}x{h} are more than this worker takes")
        n = w * h * c * client.DTYPES[dtype]
        if at + n > len(payload):
            raise BadRequest(400, "the request's data is shorter than its header announces (truncated)")
        arr = np.frombuffer(payload, dtype=np.dtype(dtype).newbyteorder("<"), count=w * h * c, offset=at)
        px = imageio.to_float(arr.reshape(h, w, c).astype(arr.dtype.newbyteorder("=")))
        if not np.isfinite(px).all():
            raise BadRequest(400, f"picture {i}: holds NaN or infinite values")
        pictures.append(px[..., :3] if c >= 3 else np.repeat(px[..., :1], 3, axis=2))
        at += n
    if at != len(payload):
        raise BadRequest(400, "the request's data is longer than its header announces (padded)")
    return EstimateRequest(pictures)


def pack_result(result, notice=None):
    """The response body for a finished job (a core.region.RegionResult)."""
    px = np.ascontiguousarray(result.pixels)
    le = px.astype(px.dtype.newbyteorder("<"), copy=False)
    header = {"width": px.shape[1], "height": px.shape[0], "channels": px.shape[2], "dtype": px.dtype.name,
              "offset": list(result.offset), "bbox": list(result.bbox)}
    if notice:
        header["notice"] = notice
    blobs = [le.tobytes()]
    if result.matte is not None:  # width x height bytes, after the pixels
        header["matte_dtype"] = "uint8"
        blobs.append(np.ascontiguousarray(result.matte, np.uint8).tobytes())
    return client.pack(header, blobs)
