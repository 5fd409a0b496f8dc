#!/usr/bin/env python3
"""GPU speed: milliseconds per megapixel of input at x2 and x4 on a 1920x1080 picture, half
precision (bf16 where the GPU has it, else fp16), beside waifu2x upconv_7 on the same device.

    .venv/bin/python benchmarks/gpu_speed.py [--device cuda] [--size 1920x1080] [--json out.json]

Times the whole in-process restore (tiling, transfers, conversions included) after a warm-up,
best of --repeat, with torch.cuda.synchronize around each run. Runs on the CPU too
(--device cpu --size 480x270) so that it can be checked on any machine.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(os.path.dirname(ROOT), "shared", "peers", "waifu2x")
sys.path.insert(0, ROOT)

from core import synth  # noqa: E402
from core.pipeline import Options, restore_pixels  # noqa: E402


def timed(fn, device, repeat):
    fn()  # warm-up: model load, kernel selection
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--json")
    a = ap.parse_args()
    device = torch.device(a.device)
    w, h = map(int, a.size.split("x"))
    px = np.asarray(synth.anime_picture(w, h, seed=5), np.float32) / 255.0
    mp = w * h / 1e6
    rows = {}
    for scale in (2, 4):
        opts = Options(scale=scale, method="learned", device=a.device, tile=a.tile)
        rows[f"ours x{scale}"] = timed(lambda: restore_pixels(px, None, opts, out_dtype=np.uint8), device,
                                       a.repeat) * 1000 / mp
    if os.path.isdir(PEER):
        sys.path.insert(0, PEER)
        import waifu2x_upconv7 as w2x
        model = w2x.load(os.path.join(PEER, "upconv_7_art_scale2.0x_model.bin")).to(device)
        half = torch.float16 if device.type == "cuda" else torch.float32
        x = torch.from_numpy(px).permute(2, 0, 1)[None].to(device)

        def peer(times):
            y = x
            with torch.autocast(device.type, dtype=half, enabled=device.type == "cuda"):
                for _ in range(times):
                    y = model.upscale(y)
            return y.float().cpu()
        rows["waifu2x upconv_7 x2"] = timed(lambda: peer(1), device, a.repeat) * 1000 / mp
        rows["waifu2x upconv_7 x4 (2 passes)"] = timed(lambda: peer(2), device, a.repeat) * 1000 / mp
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{w}x{h} input on {name}, best of {a.repeat}: milliseconds per megapixel of input")
    for k, v in rows.items():
        print(f"{k:32s} {v:10.1f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"device": name, "size": [w, h], "ms_per_mp": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
