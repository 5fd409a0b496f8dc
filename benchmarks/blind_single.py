#!/usr/bin/env python3
"""Blind removal one picture at a time: the network alone finds and removes the stamp.

    .venv/bin/python benchmarks/blind_single.py [--model NAME] [--watermark NPZ] [--json out.json]

The scorer's `blind` case hands `core restore` all 14 pictures at once, and the engine then
measures the shared watermark from the batch (the better answer when a user has a set). This
benchmark gives each picture alone, as a user restoring a single picture in GIMP or Krita
would, and scores it with the scorer's own case builder and metrics (../shared/tools/score.py).
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path[:0] = [ROOT, os.path.join(SHARED, "tools")]

import score  # noqa: E402  (the public scorer)

from core import imageio  # noqa: E402
from core.models import DEFAULT_MODEL  # noqa: E402
from core.pipeline import Options, restore_pixels  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--watermark", default=os.path.join(SHARED, "data", "watermarks", "diag_a045_outline.npz"))
    ap.add_argument("--model", default=DEFAULT_MODEL, help=f"a shipped model (default {DEFAULT_MODEL})")
    ap.add_argument("--json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="blind_single_")
    stems, d, mask, away = score.build_cases(os.path.join(SHARED, "data", "eval"), a.watermark, work)
    opts = Options(scale=2, method="learned", device="cpu", blind=True, model=a.model)
    rows = []
    for s in stems:
        px = imageio.load_picture(os.path.join(d["wm"], s + ".png")).pixels
        out = restore_pixels(px, None, opts, out_dtype=np.uint8)
        path = os.path.join(work, s + ".png")
        Image.fromarray(out).save(path)
        rows.append(score.measure(path, os.path.join(d["hr"], s + ".png"), mask, away))
    m = {k: float(np.mean([r[k] for r in rows if r[k] is not None]))
         for k in ("psnr_y", "ssim_y", "psnr_y_wm", "psnr_y_away")}
    print(f"{a.model}, blind, one picture at a time ({len(stems)} pictures, {os.path.basename(a.watermark)}): "
          f"PSNR-Y {m['psnr_y']:.2f} dB, SSIM-Y {m['ssim_y']:.4f}, PSNR-Y in watermark {m['psnr_y_wm']:.2f} dB, "
          f"away from it {m['psnr_y_away']:.2f} dB")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(m, fh, indent=1)


if __name__ == "__main__":
    main()
