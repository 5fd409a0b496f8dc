"""Run an upscaler on overlapping tiles so that any picture size fits in bounded memory.

An upscaler is any callable taking a float32 H x W x C array and returning (H*scale) x (W*scale)
x C, with attributes `scale`, `receptive_field` (how many input pixels on each side an output
pixel depends on) and optionally `seam_overlap`. An optional guide (H x W x G, such as a
watermark profile, or a StackedGuide of such parts) is cut into the same tiles and handed to the
upscaler beside each one.

Each tile is read with a margin of at least the receptive field. For upscalers made of local
operations only (seam_overlap 0) just the tile's core is kept, so tiled output equals untiled
output: no seams, nothing to blend. Upscalers with global operations inside a tile (waifu2x's
squeeze-excitation averages over it) give slightly different results in neighbouring tiles;
each tile then reaches seam_overlap px past its core, and neighbours are cross-faded across
the 2 x seam_overlap px centred on their shared edge (weights that sum to one everywhere), so
no edge shows. The grid is anchored at the picture's origin.
"""
import numpy as np

from .defaults import DEFAULT_TILE
from .imageio import from_float
from .interrupt import polling


class StackedGuide:
    """A guide made of parts (H x W x n each) stacked channel-wise one tile at a time: stacked
    whole, a profile's opacity and colour would take their memory a second time."""

    def __init__(self, *parts):
        self.parts = parts

    def __getitem__(self, box):
        return np.concatenate([p[box] for p in self.parts], axis=2)


def tile_boxes(height, width, tile):
    """(y0, y1, x0, x1) of the non-overlapping tile cores covering the picture."""
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            yield y0, min(y0 + tile, height), x0, min(x0 + tile, width)


def _ramp(n0, n1, lo, hi, total, overlap):
    """Weights along one axis for a tile whose core is [lo, hi) and which covers [n0, n1):
    rising across [lo - overlap, lo + overlap) and falling across [hi - overlap, hi + overlap),
    except at the picture's edges."""
    pos = np.arange(n0, n1, dtype=np.float32) + 0.5
    w = np.ones(n1 - n0, np.float32)
    if lo > 0:
        w = np.minimum(w, np.clip((pos - (lo - overlap)) / (2 * overlap), 0, 1))
    if hi < total:
        w = np.minimum(w, np.clip(((hi + overlap) - pos) / (2 * overlap), 0, 1))
    return w


def run_tiled(upscaler, image, tile=DEFAULT_TILE, out_dtype=np.float32, progress=None, guide=None):
    """Apply `upscaler` to `image` (float32 H x W x C) tile by tile; the result is out_dtype.

    Peak memory stays at the input, the output and one tile's work (with blending, plus one
    float32 band of tiles), whatever the size. progress(fraction), if given, is called before and
    after each tile and, through core.interrupt.poll(), inside them: raising there (a cancelled
    job) stops the run promptly.
    """
    h, w, c = image.shape
    s, margin = upscaler.scale, upscaler.receptive_field
    overlap = int(getattr(upscaler, "seam_overlap", 0) or 0)
    tile = max(int(tile or DEFAULT_TILE), 8, 2 * overlap)

    def call(y0, y1, x0, x1):
        """The upscaled tile covering input [y0, y1) x [x0, x1), read with its margin."""
        ry0, ry1, rx0, rx1 = max(y0 - margin, 0), min(y1 + margin, h), max(x0 - margin, 0), min(x1 + margin, w)
        box = (slice(ry0, ry1), slice(rx0, rx1))
        im = np.ascontiguousarray(image[box])
        res = upscaler(im) if guide is None else upscaler(im, np.ascontiguousarray(guide[box]))
        oy, ox = (y0 - ry0) * s, (x0 - rx0) * s
        return res[oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]

    report = progress or (lambda fraction: None)
    done = [0.0]
    with polling(lambda: report(done[0])):
        report(0.0)
        if h <= tile and w <= tile:
            out = from_float(call(0, h, 0, w), out_dtype)
        else:
            out = np.empty((h * s, w * s, c), out_dtype)
            boxes = list(tile_boxes(h, w, tile))
            rows = sorted({b[0] for b in boxes})
            band = None  # (first output row, float32 rows) still to receive the next row's share
            for i, (y0, y1, x0, x1) in enumerate(boxes):
                if not overlap:
                    out[y0 * s:y1 * s, x0 * s:x1 * s] = from_float(call(y0, y1, x0, x1), out_dtype)
                else:
                    band = _blend_tile(out, band, call, (y0, y1, x0, x1), (h, w), s, overlap, out_dtype,
                                       last_in_row=(x1 == w), last_row=(y0 == rows[-1]))
                done[0] = (i + 1) / len(boxes)
                report(done[0])
        report(1.0)
    return out


def _blend_tile(out, band, call, core, size, s, overlap, out_dtype, last_in_row, last_row):
    """Add one tile's weighted share into the current band of rows; write the rows that no
    later tile reaches into `out`. Returns the band."""
    (y0, y1, x0, x1), (h, w) = core, size
    ty0, ty1 = max(y0 - overlap, 0), min(y1 + overlap, h)
    tx0, tx1 = max(x0 - overlap, 0), min(x1 + overlap, w)
    res = call(ty0, ty1, tx0, tx1)
    wy = np.repeat(_ramp(ty0, ty1, y0, y1, h, overlap), s)
    wx = np.repeat(_ramp(tx0, tx1, x0, x1, w, overlap), s)
    if band is None or band[0] != ty0 * s or band[1].shape[0] < (ty1 - ty0) * s:
        top = band  # rows carried from the previous band, shared with this one
        band = (ty0 * s, np.zeros(((ty1 - ty0) * s, w * s, out.shape[2]), np.float32))
        if top is not None:
            shared = top[1][ty0 * s - top[0]:]
            band[1][:shared.shape[0]] += shared
    rows = band[1][:(ty1 - ty0) * s]
    rows[:, tx0 * s:tx1 * s] += res * (wy[:, None, None] * wx[None, :, None])
    if last_in_row:
        # what the next row of tiles will still add to starts `overlap` above this core's end
        keep_from = h * s if last_row else (y1 - overlap) * s
        n = keep_from - band[0]
        out[band[0]:keep_from] = from_float(band[1][:n], out_dtype)
        band = (keep_from, band[1][n:])
    return band
