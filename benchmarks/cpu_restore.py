#!/usr/bin/env python3
"""CPU speed and memory of `restore`, side by side with bicubic and the waifu2x peer, in one run.

    .venv/bin/python benchmarks/cpu_restore.py [--repeat 3] [--json out.json]

Speed: wall time to restore the 14 evaluation pictures (233x330, stamped) at x2, in-process,
for ours (learned model with the true profile, learned blind, classical with the profile),
Pillow's bicubic, and waifu2x upconv_7 (../shared/peers), all with the same torch thread count. Ratios are what to compare: these machines are shared.
Memory: peak RSS of a `python -m core restore --scale 2` process on a 4000x4000 picture.
"""
import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path.insert(0, ROOT)

from core import imageio  # noqa: E402
from core.blend import stamp  # noqa: E402
from core.pipeline import Options, restore_pixels  # noqa: E402
from core.profile import Profile  # noqa: E402


def eval_pictures():
    wm = np.load(os.path.join(SHARED, "data", "watermarks", "diag_a045_outline.npz"))
    alpha, color = wm["alpha"].astype(np.float32), wm["color"].astype(np.float32)
    pics = []
    for f in sorted(glob.glob(os.path.join(SHARED, "data", "eval", "*.png"))):
        im = Image.open(f).convert("RGB").resize((233, 330), Image.BICUBIC)
        pics.append(np.rint(stamp(np.asarray(im, np.float32) / 255, alpha, color) * 255).astype(np.uint8))
    return pics, Profile(alpha, color)


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def peak_rss_of_restore(size=4000, scale=2):
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        big = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(big).resize((size, size), Image.BICUBIC).save(os.path.join(tmp, "big.png"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "core", "restore", "--scale", str(scale), "--no-dewatermark",
                        "-o", os.path.join(tmp, "out"), os.path.join(tmp, "big.png")], cwd=ROOT, check=True,
                       capture_output=True)
        dt = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss is in KiB on Linux; the children's figure is the largest child so far
    return max(peak, before) / 2 ** 20, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pics, profile = eval_pictures()
    rows = {}
    rows["bicubic"] = best_of(lambda: [Image.fromarray(p).resize((466, 660), Image.BICUBIC) for p in pics], a.repeat)
    for name, prof, opts in (("ours (learned, profile)", profile, Options(scale=2, method="learned", device="cpu")),
                             ("ours (learned, blind)", None, Options(scale=2, method="learned", device="cpu",
                                                                     blind=True)),
                             ("ours (classic, profile)", profile, Options(scale=2, method="classic"))):
        restore_pixels(imageio.to_float(pics[0]), prof, opts)  # load the model once, outside the timing
        rows[name] = best_of(
            lambda: [restore_pixels(imageio.to_float(p), prof, opts, out_dtype=np.uint8) for p in pics], a.repeat)
    peer = os.path.join(SHARED, "peers", "waifu2x")
    if os.path.isdir(peer):
        sys.path.insert(0, peer)
        import waifu2x_upconv7 as w2x
        model = w2x.load(os.path.join(peer, "upconv_7_art_scale2.0x_model.bin"))
        rows["waifu2x upconv_7"] = best_of(
            lambda: [model.upscale(w2x.pil_to_tensor(Image.fromarray(p))) for p in pics], a.repeat)
    rss, rss_time = peak_rss_of_restore()
    ref = rows.get("waifu2x upconv_7")
    print(f"{len(pics)} pictures 233x330 -> 466x660, {a.threads} torch threads, best of {a.repeat}")
    print(f"{'method':28s} {'seconds':>8s} {'/waifu2x':>9s} {'/bicubic':>9s}")
    for name, t in rows.items():
        rw = f"{t / ref:9.3f}" if ref else " " * 9
        print(f"{name:28s} {t:8.3f} {rw} {t / rows['bicubic']:9.1f}")
    print(f"peak RSS of `core restore --scale 2` on 4000x4000: {rss:.2f} GiB ({rss_time:.1f} s)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"seconds": rows, "threads": a.threads, "peak_rss_gib_4000": rss}, fh, indent=1)


if __name__ == "__main__":
    main()
