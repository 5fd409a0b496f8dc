#!/usr/bin/env python3
"""What going through the worker costs: a warm 233x330 x2 job through the client and a real
`python -m core serve` process, against the same job as a direct call, side by side in one run.

    .venv/bin/python benchmarks/worker_overhead.py [--runs 30]

Reports the median of each and their difference (the protocol's overhead: framing, HTTP on
127.0.0.1, the queue, polling for the result).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core import imageio  # noqa: E402
from core.pipeline import Options  # noqa: E402
from core.profile import load_profile  # noqa: E402
from core.region import restore_region  # noqa: E402
from tests.conftest import RunningWorker  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    sample = os.path.join(ROOT, "samples", "sample.png")
    profile_path = os.path.join(ROOT, "samples", "sample-profile.png")
    px = imageio.to_dtype(imageio.load_picture(sample).pixels, np.uint8)
    profile = load_profile(profile_path)
    h, w, c = px.shape
    with tempfile.TemporaryDirectory() as tmp:
        worker = RunningWorker(tmp)
        try:
            client = worker.client()
            direct, through = [], []
            for i in range(a.runs + 3):  # the first runs warm both up
                t = time.perf_counter()
                want = restore_region(px, profile=profile, options=Options(scale=2))
                d = time.perf_counter() - t
                t = time.perf_counter()
                got = client.restore(px.tobytes(), w, h, c, "uint8", scale=2, watermark="profile",
                                     profile=profile_path)
                g = time.perf_counter() - t
                if i >= 3:
                    direct.append(d)
                    through.append(g)
            assert got.pixels == want.pixels.tobytes()
        finally:
            worker.stop()
    md, mg = statistics.median(direct), statistics.median(through)
    print(f"233x330 x2 with a profile, {a.runs} warm runs, medians:")
    print(f"  direct call        {md * 1000:7.1f} ms")
    print(f"  through the worker {mg * 1000:7.1f} ms")
    print(f"  overhead           {(mg - md) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
