"""Krita's pixel layouts <-> the worker's, in plain Python (Krita's Python may have no numpy).

Krita's `pixelData` for integer RGBA depths is B,G,R,A; for float depths R,G,B,A; GRAYA is
Gray,Alpha at every depth. The worker takes and returns R,G,B,A (or Gray,Alpha) as uint8,
uint16 or float32, little-endian. F16 travels as float32 and comes back to half floats here.
"""
import array
import struct
import sys

# Krita colour depth -> (bytes per channel, the worker's dtype)
DEPTHS = {"U8": (1, "uint8"), "U16": (2, "uint16"), "F16": (2, "float32"), "F32": (4, "float32")}
MODELS = {"RGBA": 4, "GRAYA": 2}
_LITTLE = sys.byteorder == "little"


def _swap_red_blue(data, width):
    """B,G,R,A <-> R,G,B,A for channels `width` bytes wide (an involution)."""
    out = bytearray(data)
    step = 4 * width
    for b in range(width):
        out[b::step] = data[2 * width + b::step]
        out[2 * width + b::step] = data[b::step]
    return bytes(out)


def _halves_to_floats(data):
    n = len(data) // 2
    return array.array("f", struct.unpack("<%de" % n, data))


def _floats_to_halves(values):
    return struct.pack("<%de" % len(values), *values)


def _little(arr):
    if not _LITTLE:
        arr.byteswap()
    return arr.tobytes()


def to_worker(data, model, depth):
    """Krita pixelData (bytes) -> (bytes, dtype, channels) for the worker."""
    if model not in MODELS or depth not in DEPTHS:
        raise ValueError("unsupported colour space %s/%s" % (model, depth))
    data = bytes(data)
    width, dtype = DEPTHS[depth]
    if model == "RGBA" and depth in ("U8", "U16"):
        data = _swap_red_blue(data, width)
    if depth == "F16":
        data = _little(_halves_to_floats(data))
    return data, dtype, MODELS[model]


def from_worker(data, model, depth):
    """The worker's result pixels (bytes, in the dtype to_worker chose) -> Krita pixelData bytes."""
    width, _ = DEPTHS[depth]
    if depth == "F16":
        floats = array.array("f")
        floats.frombytes(data)
        if not _LITTLE:
            floats.byteswap()
        data = _floats_to_halves(floats)
    if model == "RGBA" and depth in ("U8", "U16"):
        data = _swap_red_blue(data, width)
    return bytes(data)
