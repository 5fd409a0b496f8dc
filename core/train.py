"""`python -m core train`: train KireiNet, resumably, and export shipped weights.

    python -m core train --out runs/x2 --steps 30000            # CPU or CUDA, bf16 autocast
    python -m core train --out runs/x2 --steps 30000            # again: resumes from the checkpoint
    python -m core train --out runs/x2 --export kirei-x2        # core/weights/kirei-x2.{safetensors,json}

Reproducible: one seed drives the initial weights and the data generator, and a checkpoint
holds the generator's state, so a resumed run continues the same stream. Every --log-every steps
a JSON line with the loss goes to OUT/log.jsonl; every --val-every steps a validation score
(PSNR-Y at the model's scale, on held-out pictures, in the clean, profile and blind modes).
"""
import json
import math
import os
import queue
import threading
import time
from datetime import datetime, timezone

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .degrade import PairMaker, load_rgb, picture_files, split_holdout
from .devices import resolve_device
from .errors import KireiError
from .net import ARCHITECTURE, KireiNet, count_parameters, invert
from .weights_io import save_weights

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(PROJECT, "..", "shared", "data", "train")
CHECKPOINT = "checkpoint.pt"
WM_WEIGHT = 4.0  # extra weight of the pixels under the stamp, where the hard part is


def add_arguments(p):
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoint.pt and log.jsonl")
    p.add_argument("--data", action="append", metavar="DIR",
                   help=f"folder of clean training pictures (repeatable; default {os.path.normpath(DEFAULT_DATA)})")
    p.add_argument("--images", action="append", metavar="DIR", help="your own folder of clean pictures, added")
    p.add_argument("--steps", type=int, default=30000, help="total optimiser steps (the schedule's length)")
    p.add_argument("--time-limit", type=float, default=0, metavar="MIN",
                   help="stop (with a checkpoint) after this many minutes; run again to resume")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=48, help="low-resolution patch side")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--scale", type=int, choices=(2,), default=2,
                   help="the network's scale (x4 runs it twice, x1 reduces its x2)")
    p.add_argument("--channels", type=int, default=48)
    p.add_argument("--blocks", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-bf16", action="store_true", help="train in float32 (default: bf16 autocast)")
    p.add_argument("--init", metavar="W.safetensors", help="start from these weights (fine-tuning)")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--export", metavar="NAME", help="only export OUT's checkpoint to core/weights/NAME.*")


# ---------------------------------------------------------------- data
def load_pictures(folders):
    pics, names = [], []
    for folder in folders:
        if not os.path.isdir(folder):
            raise KireiError(f"training data folder {folder} does not exist")
        for f in picture_files(folder):
            pics.append(load_rgb(f))
            names.append(f)
    return pics, names


def _to_device(batch, device):
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}


class Prefetcher:
    """Makes the next batches in a thread while the current one trains (PIL and numpy let go of
    the GIL for most of the work)."""

    def __init__(self, maker, batch, refresh_every=4):
        self.maker, self.size, self.refresh_every = maker, batch, refresh_every
        self.q = queue.Queue(maxsize=3)
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        while not self.stop:
            b = self.maker.batch(self.size)
            n += 1
            if n % self.refresh_every == 0:
                self.maker.refresh()
            self.q.put(b)

    def next(self):
        return self.q.get()

    def close(self):
        self.stop = True
        try:
            self.q.get_nowait()
        except queue.Empty:
            pass
        self.thread.join(timeout=10)


# ---------------------------------------------------------------- model step
def forward_mixed(model, b):
    """Forward a batch whose samples mix blind and known-profile modes (b["known"] says which)."""
    a_blind, c_blind = model.matte(b["stamped"])
    k = b["known"]
    alpha = k * b["profile_alpha"] + (1 - k) * a_blind
    colour = k * b["profile_colour"] + (1 - k) * c_blind
    out = model.body(invert(b["stamped"], alpha, colour), b["stamped"], alpha)
    return out, a_blind, c_blind


def loss_terms(model, b):
    out, a_blind, c_blind = forward_mixed(model, b)
    out = out.float()
    s = model.scale
    under = F.interpolate((b["alpha"] > 0.01).float(), scale_factor=s, mode="nearest")
    pixel = ((out - b["truth"]).abs() * (1 + WM_WEIGHT * under)).mean()
    err_a = a_blind.float() - b["alpha"]
    # squared error: L1 alone lets the head sit at "no stamp anywhere" (the median) while it
    # can't yet tell stamp from picture; the mean keeps a gradient towards telling them apart
    matte_a = err_a.abs().mean() + 10.0 * (err_a ** 2).mean()
    w = b["alpha"]
    matte_c = ((c_blind.float() - b["colour"]).abs() * w).sum() / (3 * w.sum() + 1e-6)
    return pixel + 2.0 * matte_a + 0.5 * matte_c, {"pixel": pixel.item(), "alpha": err_a.abs().mean().item(),
                                                  "colour": matte_c.item()}


def learning_rate(step, total, base):
    warm = 200
    if step < warm:
        return base * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    return 1e-2 * base + (base - 1e-2 * base) * 0.5 * (1 + math.cos(math.pi * t))


# ---------------------------------------------------------------- validation
def luma(x):
    return 16.0 + 65.481 * x[:, 0] + 128.553 * x[:, 1] + 24.966 * x[:, 2]


def psnr_y(out, truth, mask=None, shave=4):
    sl = (slice(None), slice(shave, -shave), slice(shave, -shave))
    d = (luma(out.clamp(0, 1).double()) - luma(truth.double()))[sl] ** 2
    if mask is not None:
        m = mask[sl]
        per = (d * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1)
    else:
        per = d.flatten(1).mean(1)
    return float((10 * torch.log10(255.0 ** 2 / per.clamp(min=1e-10))).mean())


def make_validation(pictures, seed, scale, n=32, patch=96):
    maker = PairMaker(pictures, np.random.default_rng(seed), scale=scale, patch=patch, synth_share=0.25,
                      synth_pool=8, stamp_pool=16, stamp_canvas=192, jpeg_share=0.0)
    samples = [maker.sample(mode="profile", jitter=False) for _ in range(n)]
    b = maker.batch(samples=samples)
    b["clean"] = np.ascontiguousarray(np.stack([s.clean for s in samples]).transpose(0, 3, 1, 2))
    return b


@torch.no_grad()
def validate(model, val, device):
    model.eval()
    b = _to_device(val, device)
    zero_a, zero_c = torch.zeros_like(b["alpha"]), torch.zeros_like(b["colour"])
    under = F.interpolate((b["alpha"] > 0.01).float(), scale_factor=model.scale, mode="nearest")[:, 0]
    res = {}
    for name, args in (("clean", (b["clean"], zero_a, zero_c)),
                       ("profile", (b["stamped"], b["alpha"], b["colour"])),
                       ("blind", (b["stamped"], None, None))):
        out = torch.cat([model(args[0][i:i + 8], *(a[i:i + 8] if a is not None else None for a in args[1:]))[0]
                         for i in range(0, len(args[0]), 8)])
        res[name] = round(psnr_y(out, b["truth"]), 3)
        if name == "blind":
            res["blind_in_wm"] = round(psnr_y(out, b["truth"], under), 3)
    base = F.interpolate(b["clean"], scale_factor=model.scale, mode="bicubic", align_corners=False)
    res["bicubic"] = round(psnr_y(base, b["truth"]), 3)
    model.train()
    return res


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(path, model, opt, step, rng, record):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
                "record": json.dumps(record)}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path):
    # weights_only: a checkpoint is never unpickled as arbitrary objects
    return torch.load(path, map_location="cpu", weights_only=True)


def export(out_dir, name):
    ck = load_checkpoint(os.path.join(out_dir, CHECKPOINT))
    record = json.loads(ck["record"])
    model = KireiNet(**record["config"])
    model.load_state_dict(ck["model"])
    record["steps_done"] = ck["step"]
    record["exported"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = save_weights(model, name, record)
    print(f"exported step {ck['step']} to {path}")
    return 0


# ---------------------------------------------------------------- main
def main(args):
    if args.export:
        return export(args.out, args.export)
    device = resolve_device(args.device)
    torch.set_num_threads(os.cpu_count() or 1)
    folders = args.data or ([DEFAULT_DATA] if os.path.isdir(DEFAULT_DATA) else [])
    folders += args.images or []
    pictures, names = load_pictures(folders)
    train_idx, held_idx = split_holdout(list(range(len(names))))
    train_pics, held_pics = [pictures[i] for i in train_idx], [pictures[i] for i in held_idx]
    os.makedirs(args.out, exist_ok=True)
    ck_path = os.path.join(args.out, CHECKPOINT)
    config = dict(scale=args.scale, channels=args.channels, blocks=args.blocks, matte_channels=32)

    torch.manual_seed(args.seed)
    model = KireiNet(**config).to(device)
    if args.init:
        from .weights_io import load_state
        model.load_state_dict(load_state(args.init))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    rng = np.random.default_rng(args.seed)
    record = {"architecture": ARCHITECTURE, "config": config, "version": __version__,
              "parameters": count_parameters(model),
              "data": {"folders": [os.path.relpath(f, PROJECT) for f in folders], "pictures": len(train_pics),
                       "held_out": len(held_pics), "synthetic": "core/synth.py anime_picture, 35% of crops",
                       "watermarks": "core/watermarks.py random_watermark (text/logos, fonts, opacity 0.2-0.8)"},
              "degradations": "crop -> downscale (bicubic 50%, lanczos, box, bilinear, hamming) -> stamp -> "
                              "JPEG q60-95 40% (4:2:0 half the time)",
              "args": {k: v for k, v in vars(args).items() if k not in ("func", "command")},
              "device": str(device), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "train_seconds": 0.0, "validation": []}
    step = 0
    if os.path.exists(ck_path):
        ck = load_checkpoint(ck_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step = ck["step"]
        rng.bit_generator.state = json.loads(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        args_now = record["args"]
        record = json.loads(ck["record"])
        record["args"] = args_now  # the latest invocation's (the schedule follows its --steps)
        record.setdefault("resumed_at_steps", []).append(step)
        print(f"resumed from {ck_path} at step {step}")
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    val = make_validation(held_pics or train_pics, args.seed + 1, args.scale)
    maker = PairMaker(train_pics, rng, scale=args.scale, patch=args.patch)
    feed = Prefetcher(maker, args.batch)
    bf16 = not args.no_bf16
    log = open(os.path.join(args.out, "log.jsonl"), "a")
    t_start, t_last = time.time(), time.time()
    trained_before = record["train_seconds"]
    sums, n = {}, 0
    try:
        model.train()
        while step < args.steps:
            b = _to_device(feed.next(), device)
            if device.type == "cpu":
                b = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in b.items()}
            for g in opt.param_groups:
                g["lr"] = learning_rate(step, args.steps, args.lr)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, parts = loss_terms(model, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            n += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            if step % args.log_every == 0:
                now = time.time()
                line = {"step": step, "lr": round(opt.param_groups[0]["lr"], 7),
                        **{k: round(v / n, 5) for k, v in sums.items()},
                        "sec_per_step": round((now - t_last) / n, 4)}
                log.write(json.dumps(line) + "\n")
                log.flush()
                print(json.dumps(line), flush=True)
                sums, n, t_last = {}, 0, now
            done = step >= args.steps
            out_of_time = args.time_limit and time.time() - t_start > args.time_limit * 60
            if step % args.val_every == 0 or done or out_of_time:
                v = {"step": step, **validate(model, val, device)}
                record["validation"].append(v)
                log.write(json.dumps({"validation": v}) + "\n")
                log.flush()
                print("validation", json.dumps(v), flush=True)
            if step % args.save_every == 0 or done or out_of_time:
                record["train_seconds"] = round(trained_before + time.time() - t_start, 1)
                save_checkpoint(ck_path, model, opt, step, rng, record)
            if out_of_time:
                print(f"time limit reached at step {step}; run again to resume")
                break
    finally:
        feed.close()
        log.close()
    return 0
