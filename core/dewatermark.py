"""Classical watermark removal with a known profile (`--method classic`).

Where the watermark lets light through (opacity < 1) the blend is inverted exactly. Where it
is (nearly) opaque, inversion would amplify quantisation and JPEG error without bound, so the
picture is filled in from its surroundings there, and the two are cross-faded by how much
light the watermark lets through.
"""
import numpy as np
import scipy.ndimage as ndi

from .blend import MIN_TRANSMITTANCE, invert

# transmittance (1-a) at and above which the inversion is trusted fully
TRUSTED_TRANSMITTANCE = 0.3


def trust(alpha):
    """How far the inverted value can be trusted, per pixel: 0 (opaque) .. 1."""
    t = (1.0 - alpha - MIN_TRANSMITTANCE) / (TRUSTED_TRANSMITTANCE - MIN_TRANSMITTANCE)
    return np.clip(t, 0.0, 1.0).astype(np.float32)


def fill_from_surroundings(image, weight, max_sigma=64.0):
    """Normalised convolution fill: each pixel gets the weighted mean of trusted pixels nearby.

    Scales grow until every pixel has support, and finer scales win where they have it, so
    fills follow nearby colours rather than the picture's average.
    """
    out = image.copy()
    todo = weight < 1.0
    if not todo.any():
        return out
    filled = np.zeros(weight.shape, bool)
    sigma = 1.0
    while sigma <= max_sigma:
        w = ndi.gaussian_filter(weight, sigma)
        ok = (w > 0.05) & todo & ~filled
        if ok.any():
            for ch in range(image.shape[2]):
                num = ndi.gaussian_filter(image[..., ch] * weight, sigma)
                out[..., ch][ok] = num[ok] / w[ok]
            filled |= ok
        if filled[todo].all():
            break
        sigma *= 2.0
    return out


def remove_with_profile(colour, alpha, watermark):
    """Remove a known watermark from colour pixels (H x W x C, C = 1 or 3).

    alpha: H x W opacity; watermark: H x W x C colour (already reduced to grey for grey pictures).
    """
    if not np.any(alpha > 0):
        return colour
    inverted = np.clip(invert(colour, alpha, watermark), 0.0, 1.0)
    t = trust(alpha)
    if np.all(t >= 1.0):
        return inverted
    filled = fill_from_surroundings(inverted, t)
    return (t[..., None] * inverted + (1.0 - t[..., None]) * filled).astype(np.float32)
