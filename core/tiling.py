"""Run an upscaler on overlapping tiles so that any picture size fits in bounded memory.

An upscaler is any callable taking a float32 H x W x C array and returning (H*scale) x (W*scale)
x C, with two attributes: `scale` and `receptive_field` (how many input pixels on each side an
output pixel depends on). An optional guide (H x W x G, such as a watermark profile) is cut into
the same tiles and handed to the upscaler beside each one. Each tile is read with a margin of at least the receptive field and
only its centre is kept, so tiled output equals untiled output: no seams, nothing to blend.
"""
import numpy as np

from .imageio import from_float
from .interrupt import polling

DEFAULT_TILE = 512


def tile_boxes(height, width, tile):
    """(y0, y1, x0, x1) of the non-overlapping tile cores covering the picture."""
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            yield y0, min(y0 + tile, height), x0, min(x0 + tile, width)


def run_tiled(upscaler, image, tile=DEFAULT_TILE, out_dtype=np.float32, progress=None, guide=None):
    """Apply `upscaler` to `image` (float32 H x W x C) tile by tile; the result is out_dtype.

    Writing each tile's core straight into an out_dtype array keeps peak memory at the input,
    the output and one tile's work, whatever the size. progress(fraction), if given, is called
    before and after each tile and, through core.interrupt.poll(), inside them: raising there
    (a cancelled job) stops the run promptly.
    """
    h, w, c = image.shape
    s, margin = upscaler.scale, upscaler.receptive_field
    tile = max(int(tile or DEFAULT_TILE), 8)

    def call(im, box):
        return upscaler(im) if guide is None else upscaler(im, np.ascontiguousarray(guide[box]))

    report = progress or (lambda fraction: None)
    done = [0.0]
    with polling(lambda: report(done[0])):
        report(0.0)
        if h <= tile and w <= tile:
            out = from_float(call(image, (slice(None), slice(None))), out_dtype)
        else:
            out = np.empty((h * s, w * s, c), out_dtype)
            boxes = list(tile_boxes(h, w, tile))
            for i, (y0, y1, x0, x1) in enumerate(boxes):
                ry0, ry1 = max(y0 - margin, 0), min(y1 + margin, h)
                rx0, rx1 = max(x0 - margin, 0), min(x1 + margin, w)
                box = (slice(ry0, ry1), slice(rx0, rx1))
                res = call(np.ascontiguousarray(image[box]), box)
                oy, ox = (y0 - ry0) * s, (x0 - rx0) * s
                out[y0 * s:y1 * s, x0 * s:x1 * s] = from_float(
                    res[oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s], out_dtype)
                done[0] = (i + 1) / len(boxes)
                report(done[0])
        report(1.0)
    return out
