#!/usr/bin/env python3
"""Draw docs/sample-before-after.png from the bundled sample with the engine's default method.

    .venv/bin/python docs/make_before_after.py

Panels, all 466x660: the stamped sample (233x330, shown at 2x with nearest neighbours),
restored blind (one picture: the stamp finder and its check; the panel says what was found),
restored with the sample's profile, and the clean truth.
"""
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core import imageio  # noqa: E402
from core.pipeline import Options, restore_pixels  # noqa: E402
from core.profile import load_profile  # noqa: E402


def main():
    samples = os.path.join(ROOT, "samples")
    stamped = imageio.load_picture(os.path.join(samples, "sample.png")).pixels
    profile = load_profile(os.path.join(samples, "sample-profile.png"))
    panels = [("stamped input (233x330)", Image.fromarray(imageio.from_float(stamped, np.uint8)).resize(
        (466, 660), Image.NEAREST))]
    for label, prof, blind in (("blind", None, True), ("with the profile", profile, False)):
        heard = []
        out = restore_pixels(stamped, prof, Options(scale=2, device="cpu", blind=blind), out_dtype=np.uint8,
                             report=heard.append)
        said = f": {heard[0].summary()}" if heard else ""  # what blind removal found, as the user is told
        panels.append((f"Kirei x2, {label}{said}", Image.fromarray(out)))
    panels.append(("clean truth", Image.open(os.path.join(samples, "sample-truth.png")).convert("RGB")))
    sheet = Image.new("RGB", (466 * len(panels) + 8 * (len(panels) - 1), 660 + 24), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate(panels):
        x = i * (466 + 8)
        sheet.paste(im, (x, 24))
        draw.text((x + 4, 4), label, fill=(0, 0, 0), font_size=16)
    out = os.path.join(ROOT, "docs", "sample-before-after.png")
    sheet.save(out, optimize=True)
    print(out)


if __name__ == "__main__":
    main()
