#!/usr/bin/env python3
"""GPU speed: milliseconds per megapixel of input at x2 and x4 on a 1920x1080 picture, half
precision (bf16 where the GPU has it, else fp16), for each model (kirei-2, kirei-fast) beside
waifu2x CUNet and waifu2x upconv_7 on the same device.

    .venv/bin/python benchmarks/gpu_speed.py [--device cuda] [--size 1920x1080] [--repeat 5] [--json out.json]

Ours: the whole in-process restore, no watermark (upscale only: the body's speed, the front-end
included), tiling, transfers and conversions included, uint8 out. The peers: the whole picture
as one tile under the same autocast, x4 as two passes, transfers and uint8 conversion included.
Each is timed after a warm-up, best of --repeat, with torch.cuda.synchronize around each run.
Runs on the CPU too (--device cpu --size 240x136, float32) so that it can be checked on any machine.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.path.dirname(os.path.abspath(__file__))]

from peers import load_peers, to_tensor, to_uint8  # noqa: E402

from core import synth  # noqa: E402
from core.pipeline import Options, restore_pixels  # noqa: E402

MODELS = ("kirei-2", "kirei-fast")


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
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--size", default="1920x1080", metavar="WxH")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tile", type=int, default=1024, help="ours: tile side at x2 (x4 takes half)")
    ap.add_argument("--json")
    a = ap.parse_args()
    try:
        w, h = map(int, a.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size is WxH, e.g. 1920x1080, not {a.size!r}")
    device = torch.device(a.device)
    if w < 16 or h < 16 or a.repeat < 1:
        ap.error("--size must be at least 16x16 and --repeat at least 1")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("no CUDA device here: try --device cpu --size 240x136")
    u8 = np.asarray(synth.anime_picture(w, h, seed=5), np.uint8)
    px = u8.astype(np.float32) / 255.0
    mp = w * h / 1e6
    rows = {}
    for model in MODELS:
        for scale in (2, 4):
            opts = Options(scale=scale, method="learned", device=a.device, tile=a.tile, model=model)
            rows[f"{model} x{scale}"] = timed(lambda: restore_pixels(px, None, opts, out_dtype=np.uint8), device,
                                              a.repeat) * 1000 / mp
    cuda = device.type == "cuda"
    # the autocast dtype ours takes (core.learned): bf16 where the GPU has it, else fp16
    half = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    for name, peer in load_peers(device).items():
        def run(passes, peer=peer):
            with torch.no_grad(), torch.autocast(device.type, dtype=half, enabled=cuda):
                y = to_tensor(u8, device)
                for _ in range(passes):
                    y = peer.upscale(y)
            return to_uint8(y)
        rows[f"{name} x2"] = timed(lambda: run(1), device, a.repeat) * 1000 / mp
        rows[f"{name} x4 (2 passes)"] = timed(lambda: run(2), device, a.repeat) * 1000 / mp
    gpu = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"{w}x{h} input on {gpu} ({str(half).replace('torch.', '')}), best of {a.repeat}: "
          f"milliseconds per megapixel of input")
    for k, v in rows.items():
        print(f"{k:34s} {v:10.1f}")
    for ours, peer in (("kirei-2", "waifu2x CUNet"), ("kirei-fast", "waifu2x upconv_7")):
        for s in (2, 4):
            ref = rows.get(f"{peer} x{s}" + (" (2 passes)" if s == 4 else ""))
            if ref:
                print(f"ratio {ours} x{s} / {peer} x{s}: {rows[f'{ours} x{s}'] / ref:.3f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"device": gpu, "dtype": str(half), "size": [w, h], "ms_per_mp": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
