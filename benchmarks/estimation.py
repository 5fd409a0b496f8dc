#!/usr/bin/env python3
"""Watermark estimation on the hard sets (tests/hardsets.py): how much worse the estimated profile
restores than the true one, and how long estimating takes.

    .venv/bin/python benchmarks/estimation.py [--kinds sprite,frame] [--stamps grey-flat] [--jpeg]
    .venv/bin/python benchmarks/estimation.py --speed [--against REV] [--default-malloc]

For each set: estimate the profile from the stamped pictures; restore each picture x2 with it (the
default model; only where the estimator says the picture carries the stamp) and with the true
profile (only where it truly does), without TTA; PSNR-Y of both against the clean pictures drawn at 2x. The gap
is true minus estimated (the target: at most 0.5 dB). "nothing" is a x2 restore that removes
nothing: a profile that scores below it makes the pictures worse.

--speed times estimation alone on 20 pictures of 233x330 (the target: at most 10 s on 2 CPU cores),
beside the estimator of git revision REV, run the same way in the same process.
"""
import argparse
import os
import sys
import time
from dataclasses import replace

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.allocator import keep_freed_memory  # noqa: E402
from core.estimate import estimate_profile  # noqa: E402
from core.pipeline import Options, restore_pixels  # noqa: E402
from core.profile import Profile  # noqa: E402
from core.train import psnr_y  # noqa: E402
from tests.hardsets import KINDS, as_jpeg, hard_set, stamps  # noqa: E402


def set_psnr_y(pictures, truth):
    """Mean PSNR-Y over the set of the 8-bit results (core.train's measure, as the scorer's)."""
    def batch(pics):
        return torch.from_numpy(np.stack(pics)).permute(0, 3, 1, 2)
    return psnr_y(batch([np.round(np.clip(p, 0, 1) * 255) / 255 for p in pictures]), batch(truth))


def restore_set(pictures, profile, carries, options):
    return [restore_pixels(p, profile if on else None, options) for p, on in zip(pictures, carries)]


def evaluate(kind, stamp_name, jpeg=False, seed=0, model=None):
    """Figures for one set: dB with the true and the estimated profile, doing nothing, seconds."""
    hs = hard_set(kind, stamp_name, seed)
    # restored without TTA (core/pipeline.auto_tta): it raises the true and the estimated profile's
    # results alike, and would make the JPEG sets take 8x as long; estimation's own cleaning keeps it
    options = Options(scale=2, jpeg=jpeg, tta=False, **({"model": model} if model else {}))
    none = np.zeros(len(hs.clean), bool)
    pictures = as_jpeg(hs.stamped) if jpeg else hs.stamped
    true = Profile(alpha=hs.alpha, color=hs.color)
    t0 = time.perf_counter()
    found = estimate_profile(pictures)
    seconds = time.perf_counter() - t0
    if found.usable:
        estimated = set_psnr_y(restore_set(pictures, found.profile, found.carries, options), hs.truth)
    else:  # what the product does then: each picture restored blind, on its own
        estimated = set_psnr_y(restore_set(pictures, None, none, replace(options, blind=True)), hs.truth)
    nothing = set_psnr_y(restore_set(pictures, None, none, options), hs.truth)
    res = {"set": f"{kind}/{stamp_name}{'/jpeg' if jpeg else ''}",
           "true": set_psnr_y(restore_set(pictures, true, hs.carries, options), hs.truth),
           "estimated": estimated, "nothing": nothing, "seconds": seconds,
           "carries": f"{int(found.carries.sum())}/{int(hs.carries.sum())}",
           "refused": "" if found.usable else found.summary()}
    est = found.profile
    if found.found:
        res["area"] = float((est.alpha > 0.05).mean())
        res["true_area"] = float((hs.alpha > 0.05).mean())
    return res


def speed(against=None, runs=5):
    """Seconds (median of runs) to estimate from 20 stamped 233x330 pictures, now and at `against`,
    in interleaved rounds (a shared machine's load then weighs on both alike)."""
    from core import synth
    from core.blend import stamp
    alpha, color = stamps()["white-outline"]
    pictures = [np.round(stamp(np.asarray(synth.anime_picture(233, 330, seed).convert("RGB"), np.float32) / 255,
                               alpha, color) * 255).astype(np.float32) / 255 for seed in range(20)]
    estimators = {"now": estimate_profile}
    if against:
        estimators[against] = _estimator_at(against)
    took = {name: [] for name in estimators}
    for _ in range(runs):
        for name, estimate in estimators.items():
            t0 = time.perf_counter()
            estimate(pictures)
            took[name].append(time.perf_counter() - t0)
    for name, times in took.items():
        print(f"{name}: {np.median(times):.1f} s to estimate from 20 pictures of 233x330 "
              f"(runs: {', '.join(f'{t:.1f}' for t in times)}; torch threads {torch.get_num_threads()})", flush=True)


def _estimator_at(rev):
    """estimate_profile as core/estimate.py was at git revision rev (its relative imports: today's core)."""
    import importlib.util
    import subprocess
    import tempfile
    source = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:core/estimate.py"], check=True,
                            capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(source)
    spec = importlib.util.spec_from_file_location("core.estimate_at_rev", fh.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.unlink(fh.name)
    return module.estimate_profile


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--stamps", default=",".join(stamps()))
    ap.add_argument("--jpeg", action="store_true", help="also each set saved as JPEG q85")
    ap.add_argument("--model", default=None, help="the model that restores (default: the default model)")
    ap.add_argument("--speed", action="store_true", help="time estimation alone on 20 pictures of 233x330")
    ap.add_argument("--against", metavar="REV", help="with --speed: also the estimator of this git revision")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's malloc as it is (what the engine did before core/allocator.py)")
    a = ap.parse_args()
    if not a.default_malloc:
        keep_freed_memory()  # as `python -m core` does
    if a.speed:
        return speed(a.against)
    rows = []
    print(f"{'set':40s} {'true':>7s} {'est.':>7s} {'gap':>6s} {'nothing':>7s} {'area':>11s} {'carries':>7s} {'s':>5s}")
    for kind in a.kinds.split(","):
        for name in a.stamps.split(","):
            for jpeg in ((False, True) if a.jpeg else (False,)):
                r = evaluate(kind, name, jpeg, model=a.model)
                rows.append(r)
                area = f"{r.get('area', 0):.3f}/{r['true_area']:.3f}" if "area" in r else "none"
                print(f"{r['set']:40s} {r['true']:7.2f} {r['estimated']:7.2f} {r['true'] - r['estimated']:6.2f} "
                      f"{r['nothing']:7.2f} {area:>11s} {r['carries']:>7s} {r['seconds']:5.1f}"
                      + (f"  refused -> blind: {r['refused']}" if r["refused"] else ""), flush=True)
    gaps = [r["true"] - r["estimated"] for r in rows]
    print(f"mean gap {np.mean(gaps):.2f} dB, worst {max(gaps):.2f} dB; within 0.5 dB: "
          f"{sum(g <= 0.5 for g in gaps)}/{len(gaps)}; worse than nothing: "
          f"{sum(r['estimated'] < r['nothing'] for r in rows)}; refused: {sum(bool(r['refused']) for r in rows)}")


if __name__ == "__main__":
    main()
