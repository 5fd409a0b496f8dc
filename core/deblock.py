"""JPEG's blocks and ringing taken off pictures at their own size, before a watermark is measured.

Each JPEG of a set carries its own quantisation noise, and around the stamp's letters a ringing
that is much the same in every picture: measured from the JPEGs as they are, the profile takes
the ringing for part of the stamp and the noise for its texture (public set, q85: opacity error
0.0053, the x2 result 1.0 dB behind the true profile). The model's JPEG body cleans both while it
upscales; the clean x2 picture reduced back by 2x2 averaging is the picture without them (opacity
error 0.0031, 0.45 dB behind). The stamp is part of the picture to the body, so it stays. As for
any JPEG input, the body runs on the 8 flips and turns of previews (pipeline.auto_tta): less of
JPEG's noise is left to the measurement (the public jpeg case +0.04 dB, for about 5 s a picture
of 233x330 instead of under 1 on 2 CPU cores).
"""
import numpy as np

DEBLOCKER = "kirei-2"  # CUNet noise1: the public jpeg case 0.03-0.06 dB nearer the true profile than kirei-fast's body, 2.4x slower


def available():
    from .weights_io import available as installed
    return installed(DEBLOCKER)


def deblocked(pictures, device="cpu", progress=None):
    """The pictures (H x W x C float32 in [0, 1]) without JPEG's blocks and ringing, same size."""
    from .pipeline import Options, restore_pixels
    options = Options(scale=2, method="learned", device=device, model=DEBLOCKER, jpeg=True)
    out = []
    for i, p in enumerate(pictures):
        big = restore_pixels(p, None, options)
        h, w = p.shape[:2]
        out.append(big.reshape(h, 2, w, 2, -1).mean(axis=(1, 3)).astype(np.float32))
        if progress:
            progress((i + 1) / len(pictures))
    return out
