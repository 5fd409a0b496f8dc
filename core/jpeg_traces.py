"""Whether a picture was JPEG-compressed, from its pixels alone.

A layer in GIMP or Krita, or a PNG saved from a JPEG, doesn't say that its pixels went through
JPEG; the models' JPEG bodies clean what JPEG leaves (blocks, ringing) and should be used then.
JPEG quantises each 8x8 block's DCT coefficients of luma to multiples of a step per frequency, so
after decoding, a low frequency's coefficients cluster at multiples of one step; a picture that
never went through JPEG has no such comb. The block grid's phase is unknown for a crop or a
region (it is the source file's origin), so every phase is tried.
"""
import numpy as np
import scipy.fft

from .blend import luma

# low frequencies: coarsely quantised at the qualities previews use, and non-zero in most blocks
FREQUENCIES = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2), (0, 3), (3, 0))
STEPS = np.arange(3, 48)  # quantisation steps looked for (quality ~95 has steps of 2-3: JPEG's traces are mild there)
NEAR = 0.75  # a coefficient this close to a multiple of the step is on the comb (decoding rounds to 8 bits)
MIN_COEFFICIENT = 2.0  # smaller ones sit at 0, a multiple of every step: they tell nothing
MIN_TEETH, TOOTH = 4, 3  # a comb needs this many multiples of its step holding this many coefficients each
MIN_COUNT = 64  # coefficients a frequency needs to count: fewer, and chance combs score high
THRESHOLD = 3.5  # z-score; pictures that never went through JPEG stay below ~2.7
SAMPLE = 256  # side of the square examined (the most detailed one): enough blocks, bounded time on any picture


def _comb_score(coefficients):
    """How far above chance (z-score) the coefficients sit on the best comb of STEPS.

    A comb counts only with coefficients on several of its teeth: a smooth gradient gives many
    blocks one same coefficient, which sits on some comb by itself; JPEG fills many teeth.
    """
    c = coefficients[np.abs(coefficients) > MIN_COEFFICIENT]
    n = len(c)
    if n < MIN_COUNT:
        return None
    q = STEPS[None, :].astype(np.float32)
    tooth = np.round(c[:, None] / q)
    on = np.abs(c[:, None] - q * tooth) < NEAR
    p = np.minimum(2 * NEAR / STEPS, 0.5)  # chance of landing near a multiple of q
    z = (on.sum(0) - n * p) / np.sqrt(n * p * (1 - p))
    for i in np.argsort(z)[::-1][:3]:
        teeth, counts = np.unique(tooth[on[:, i], i], return_counts=True)
        if (counts >= TOOTH).sum() >= MIN_TEETH:
            return float(z[i])
    return 0.0


def _busiest_window(y, cell=32):
    """(top, left) of the SAMPLE-sided window with the most detail: flat areas (a sketch's white
    paper) quantise to nothing and tell nothing."""
    h, w = y.shape
    if h <= SAMPLE and w <= SAMPLE:
        return 0, 0
    ch, cw = h // cell, w // cell
    g = np.abs(np.diff(y, axis=1))[:ch * cell, :cw * cell - 1]
    g = np.pad(g, ((0, 0), (0, 1))).reshape(ch, cell, cw, cell).sum((1, 3))
    n = SAMPLE // cell
    sums = np.cumsum(np.cumsum(np.pad(g, ((1, 0), (1, 0))), 0), 1)
    kh, kw = min(n, ch), min(n, cw)
    win = sums[kh:, kw:] - sums[:-kh, kw:] - sums[kh:, :-kw] + sums[:-kh, :-kw]
    i, j = np.unravel_index(np.argmax(win), win.shape)
    return int(i) * cell, int(j) * cell


def jpeg_score(pixels):
    """The strongest evidence of JPEG quantisation over the 64 block phases (a z-score; higher = surer).

    pixels: H x W x C (C = 1..4), floats in 0..1 or 8/16-bit integers.
    """
    x = np.asarray(pixels)
    if x.dtype.kind in "ui":
        x = x.astype(np.float32) / np.iinfo(x.dtype).max
    x = x.astype(np.float32) * 255.0
    if x.ndim == 3:  # luma, as JPEG codes it (BT.601 weights); grey pictures are their own
        x = x[..., 0] if x.shape[2] < 3 else luma(x[..., :3])
    top, left = _busiest_window(x)
    y = x[top:top + SAMPLE + 7, left:left + SAMPLE + 7] - 128.0
    best = 0.0
    for oy in range(8):
        for ox in range(8):
            part = y[oy:, ox:]
            bh, bw = part.shape[0] // 8, part.shape[1] // 8
            if bh * bw == 0:
                return 0.0
            blocks = part[:bh * 8, :bw * 8].reshape(bh, 8, bw, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
            d = scipy.fft.dctn(blocks, axes=(1, 2), norm="ortho")
            scores = [s for s in (_comb_score(d[:, u, v]) for u, v in FREQUENCIES) if s is not None]
            if scores:
                best = max(best, float(np.median(scores)))
    return best


def looks_like_jpeg(pixels):
    """True when the pixels carry JPEG's quantisation (quality up to ~90; milder JPEG passes as clean)."""
    return jpeg_score(pixels) >= THRESHOLD


def went_through_jpeg(pixels, said=None):
    """What the restorer assumes: `said` (True/False) by whoever knows (the file's format, the
    user, a plugin that knows the document's file), else what the pixels show."""
    return looks_like_jpeg(pixels) if said is None else bool(said)
