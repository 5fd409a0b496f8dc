#!/usr/bin/env python3
"""CPU speed and memory of `restore` for each shipped model, side by side with bicubic and the
waifu2x peers, in one run.

    .venv/bin/python benchmarks/cpu_restore.py [--repeat 3] [--threads 2] [--no-speed]
                                               [--memory-size 4000 | 6000x4000] [--memory-modes upscale,blind | --no-memory]
                                               [--json out.json] [--default-malloc]

Speed: wall time to restore the 14 evaluation pictures (233x330, stamped) at x2, in-process,
uint8 in and out, for each model (kirei-2, kirei-fast): learned with the true profile and
learned blind; kirei-2 with the profile on JPEG input (its JPEG body, run on each tile's 8 flips
and turns as JPEG input is by default: TTA; the same pixels, taken as JPEG); then classical with the profile, Pillow's bicubic, waifu2x upconv_7 and waifu2x
CUNet (../shared/peers, whole picture as one tile), all with the same torch thread count.
Each method runs once per round, --repeat rounds, and keeps its best round: these machines are
shared, and interleaving lets a change of load hit every method alike. Ratios are what to
compare; the targets are kirei-2 (profile) / CUNet <= 1.15, kirei-fast (profile) / upconv_7 <= 1.1
and kirei-2 blind (the stamp finder, its check, then the restore) / kirei-2 with a profile <= 1.3.
Memory: peak RSS of a `python -m core restore --scale 2 --model M` process (the same thread
count) on a --memory-size picture (4000x4000 by default; WxH for another shape) that carries a
SAMPLE stamp, one process per model and mode: upscale only (--no-dewatermark) and blind (the
default mode: the stamp finder and its check run too).
Like `python -m core`, this process keeps the memory torch frees for reuse (core/allocator.py),
for every method; --default-malloc leaves glibc's malloc as it is here (the memory processes
are `python -m core` and always keep it).
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]

from peers import load_peers, to_tensor, to_uint8  # noqa: E402

from core import imageio, synth  # noqa: E402
from core.allocator import keep_freed_memory  # noqa: E402
from core.blend import stamp  # noqa: E402
from core.pipeline import Options, restore_pixels  # noqa: E402
from core.profile import Profile  # noqa: E402

MODELS = ("kirei-2", "kirei-fast")
# (ours, peer, most ours may take): the speed targets
TARGETS = (("kirei-2 (learned, profile)", "waifu2x CUNet", 1.15),
           ("kirei-fast (learned, profile)", "waifu2x upconv_7", 1.1),
           ("kirei-2 (learned, blind)", "kirei-2 (learned, profile)", 1.3))


def eval_pictures():
    wm = np.load(os.path.join(SHARED, "data", "watermarks", "diag_a045_outline.npz"))
    alpha, color = wm["alpha"].astype(np.float32), wm["color"].astype(np.float32)
    pics = []
    for f in sorted(glob.glob(os.path.join(SHARED, "data", "eval", "*.png"))):
        im = Image.open(f).convert("RGB").resize((233, 330), Image.BICUBIC)
        pics.append(np.rint(stamp(np.asarray(im, np.float32) / 255, alpha, color) * 255).astype(np.uint8))
    return pics, Profile(alpha, color)


def methods(pics, profile):
    """{name: function restoring all the pictures once}, in the order they are printed."""
    def ours(prof, opts):
        return lambda: [restore_pixels(imageio.to_float(p), prof, opts, out_dtype=np.uint8) for p in pics]

    def peer(model):
        return lambda: [to_uint8(model.upscale(to_tensor(p))) for p in pics]

    runs = {}
    for m in MODELS:
        runs[f"{m} (learned, profile)"] = ours(profile, Options(scale=2, method="learned", device="cpu", model=m))
        runs[f"{m} (learned, blind)"] = ours(None, Options(scale=2, method="learned", device="cpu", model=m,
                                                            blind=True))
    runs["kirei-2 (profile, JPEG input)"] = ours(profile, Options(scale=2, method="learned", device="cpu",
                                                                model="kirei-2", jpeg=True))
    runs["classic (profile)"] = ours(profile, Options(scale=2, method="classic"))
    w, h = pics[0].shape[1] * 2, pics[0].shape[0] * 2
    runs["Pillow bicubic"] = lambda: [np.asarray(Image.fromarray(p).resize((w, h), Image.BICUBIC)) for p in pics]
    runs.update({name: peer(model) for name, model in load_peers("cpu").items()})
    return runs


def interleaved_best(runs, rounds):
    """{name: best seconds}, {name: every round's seconds}; one warm-up call each (model loads)."""
    for fn in runs.values():
        fn()
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}, times


def peak_rss_of_restore(picture, model, threads, blind, scale=2):
    """(peak RSS in GiB, seconds) of one `core restore` process (blind: the default mode, the stamp
    finder too; else --no-dewatermark), read from its own rusage (wait4), so one run's figure is not another's."""
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryFile() as err:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        t = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "core", "restore", "--scale", str(scale)]
                             + ([] if blind else ["--no-dewatermark"])
                             + ["--model", model, "--device", "cpu", "-o", out, picture],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        if p.returncode != 0:
            err.seek(0)
            raise SystemExit(f"`core restore --model {model}` failed ({p.returncode}): "
                             f"{err.read().decode(errors='replace').strip()[-500:]}")
    return usage.ru_maxrss / 2 ** 20, dt  # ru_maxrss is in KiB on Linux


MEMORY_MODES = {"upscale": False, "blind": True}  # --no-dewatermark, and the default mode


def stamped_picture(width, height, seed=3):
    """A width x height uint8 picture carrying a SAMPLE stamp: the project's procedural anime
    picture and the stamp, drawn at a quarter of the size and enlarged (drawing at the full size
    of a large picture takes minutes). Seed 3: at 6000x4000 the finder finds and keeps some of
    the stamp, so that the blind figure includes removing it."""
    small = synth.anime_picture(max(width // 4, 8), max(height // 4, 8), seed=seed)
    clean = np.asarray(small.resize((width, height), Image.BICUBIC), np.float32) / 255
    alpha, colour = synth.text_watermark(max(width // 4, 8), max(height // 4, 8))
    alpha = np.asarray(Image.fromarray(alpha).resize((width, height), Image.BILINEAR))
    colour = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(colour[..., k])).resize(
        (width, height), Image.BILINEAR)) for k in range(3)], axis=2)
    return np.rint(stamp(clean, alpha, colour) * 255).astype(np.uint8)


def memory(size, threads, modes=tuple(MEMORY_MODES), models=MODELS):
    """{"model mode": {"peak_rss_gib", "seconds"}} on a size = (width, height) stamped picture."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.png")
        Image.fromarray(stamped_picture(*size)).save(path)
        figures = {}
        for m in models:
            for mode in modes:
                rss, dt = peak_rss_of_restore(path, m, threads, MEMORY_MODES[mode])
                figures[f"{m} {mode}"] = {"peak_rss_gib": rss, "seconds": dt}
    return figures


def picture_size(text):
    """(width, height) from "N" (a square) or "WxH"."""
    try:
        w, h = (text.lower().split("x") + [text])[:2]
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a side (4000) or WxH (6000x4000), not {text!r}") from None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each method keeps its best (default 3)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--memory-size", type=picture_size, default=(4000, 4000), metavar="N|WxH",
                    help="the picture of the memory figure: a square's side or WxH (default 4000)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory figure")
    ap.add_argument("--memory-modes", default=",".join(MEMORY_MODES),
                    help=f"modes whose memory is measured, of {', '.join(MEMORY_MODES)} (default all)")
    ap.add_argument("--memory-models", default=",".join(MODELS),
                    help=f"models whose memory is measured, of {', '.join(MODELS)} (default all)")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed figures")
    ap.add_argument("--json", help="write all figures here")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's malloc as it is in this process (what the engine did before core/allocator.py)")
    a = ap.parse_args()
    if a.repeat < 1 or a.threads < 1 or min(a.memory_size) < 16:
        ap.error("--repeat and --threads must be at least 1, --memory-size at least 16")
    modes = tuple(m for m in a.memory_modes.split(",") if m)
    if not modes or set(modes) - set(MEMORY_MODES):
        ap.error(f"--memory-modes takes {', '.join(MEMORY_MODES)}, got {a.memory_modes!r}")
    models = tuple(m for m in a.memory_models.split(",") if m)
    if not models or set(models) - set(MODELS):
        ap.error(f"--memory-models takes {', '.join(MODELS)}, got {a.memory_models!r}")
    torch.set_num_threads(a.threads)
    if not a.default_malloc:
        keep_freed_memory()  # as `python -m core` does; the peers' runners here get it too
    figures = {"threads": a.threads, "glibc_malloc": "default" if a.default_malloc else "kept"}
    if not a.no_speed:
        figures.update(speed(a.repeat))
    if not a.no_memory:
        mem = memory(a.memory_size, a.threads, modes, models)
        for run, f in mem.items():
            model, mode = run.split()
            print(f"peak RSS of `core restore --scale 2{' --no-dewatermark' if mode == 'upscale' else ''} "
                  f"--model {model}` on {a.memory_size[0]}x{a.memory_size[1]}: {f['peak_rss_gib']:.2f} GiB "
                  f"({f['seconds']:.1f} s)")
        figures["memory"] = {"size": list(a.memory_size), "runs": mem}
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(figures, fh, indent=1)


def speed(repeat):
    """Times every method (interleaved rounds), prints them with their ratios; returns the figures."""
    pics, profile = eval_pictures()
    if not pics:
        raise SystemExit(f"no evaluation pictures in {os.path.join(SHARED, 'data', 'eval')}")
    best, rounds = interleaved_best(methods(pics, profile), repeat)
    h, w = pics[0].shape[:2]
    print(f"{len(pics)} pictures {w}x{h} -> {2 * w}x{2 * h}, {torch.get_num_threads()} torch threads, "
          f"best of {repeat} interleaved rounds")
    refs = [r for r in ("waifu2x CUNet", "waifu2x upconv_7") if r in best]
    print(f"{'method':30s} {'seconds':>8s} " + " ".join(f"{'/' + r.split()[-1]:>9s}" for r in refs)
          + f" {'/bicubic':>9s}")
    for name, t in best.items():
        print(f"{name:30s} {t:8.3f} " + " ".join(f"{t / best[r]:9.3f}" for r in refs)
              + f" {t / best['Pillow bicubic']:9.1f}")
    ratios = {}
    for ours, peer, target in TARGETS:
        if peer in best:
            r = ratios[f"{ours} / {peer}"] = best[ours] / best[peer]
            print(f"ratio {ours} / {peer}: {r:.3f} (target <= {target}: {'met' if r <= target else 'NOT met'})")
        else:
            print(f"ratio {ours} / {peer}: peer not found in {os.path.join(SHARED, 'peers')}")
    return {"pictures": len(pics), "size": [w, h], "rounds": repeat, "seconds": best, "seconds_per_round": rounds,
            "ratios": ratios, "targets": {f"{o} / {p}": t for o, p, t in TARGETS}}


if __name__ == "__main__":
    main()
