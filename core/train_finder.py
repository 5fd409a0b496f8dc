"""`python -m core train-finder`: train the stamp finder (core/models/finder.py), resumably.

    python -m core train-finder --out checkpoints/finder --steps 20000 --time-limit 60
    python -m core train-finder --out checkpoints/finder --export      # core/weights/stamp-finder.*

Whole pictures (not patches): a crop of a training picture, a composed scene or a procedural
picture, reduced to --side px the way previews are made; in FIND_SHARE of them a random stamp
(core/watermarks.py); in MARK_SHARE, opaque marks that belong to the picture (balloons, captions,
signatures, UI frames, line art) that must not be taken for one; JPEG in JPEG_SHARE. The finder
is trained on its opacity and colour and on what exact inversion with them gives back.
"""
import json
import os
from datetime import datetime, timezone

import numpy as np
import torch

from . import __version__
from .defaults import JPEG_QUALITIES
from .degrade import PairMaker
from .models.finder import StampFinder
from .models.frontend import invert
from .train import (CHECKPOINT, Prefetcher, RunLog, _ema, _to_device, learning_rate, load_checkpoint, load_data,
                    psnr_y, save_checkpoint)
from .watermarks import picture_marks, random_watermark
from .weights_io import WEIGHTS_DIR

FIND_SHARE, MARK_SHARE, JPEG_SHARE = 0.7, 0.4, 0.3
UNDER_WEIGHT = 4.0  # the pixels under the stamp count this much more in the inversion loss
ALPHA_WEIGHT = 2.0
INVERT_WEIGHT, INVERT_MAX = 0.05, 0.8
NAME = "stamp-finder"


class FinderMaker:
    """Batches of whole stamped (or not) pictures, from PairMaker's sources and degradations."""

    def __init__(self, sources, rng, side):
        self.pairs = PairMaker(sources["pictures"], rng, scale=2, patch=side, anime=sources["anime"],
                               svg_files=sources["svg"], stamp_pool=96, stamp_canvas=side)
        self.rng, self.side = rng, side

    def refresh(self):
        self.pairs.refresh()
        c = self.side
        self.pairs.stamps[int(self.rng.integers(len(self.pairs.stamps)))] = random_watermark(c, c, self.rng)

    def sample(self, stamp=None, marks=None, jpeg=None):
        rng, p = self.rng, self.pairs
        lr = p._downscale(p._hr_crop())
        if marks if marks is not None else rng.random() < MARK_SHARE:
            lr = picture_marks(lr, rng)
        clean = lr.astype(np.float32) / 255.0
        alpha = np.zeros(clean.shape[:2], np.float32)
        colour = np.zeros_like(clean)
        if stamp if stamp is not None else rng.random() < FIND_SHARE:
            alpha, colour = p.stamps[int(rng.integers(len(p.stamps)))]
        stamped = np.clip(np.round((alpha[..., None] * colour + (1 - alpha[..., None]) * clean) * 255), 0, 255)
        stamped = stamped.astype(np.uint8)
        if jpeg if jpeg is not None else rng.random() < JPEG_SHARE:
            stamped = p._jpeg(stamped)
        return stamped.astype(np.float32) / 255.0, clean, alpha, colour

    def batch(self, n=None, samples=None):
        ss = samples or [self.sample() for _ in range(n)]
        chw = lambda i: np.ascontiguousarray(np.stack([s[i] for s in ss]).transpose(0, 3, 1, 2))
        return {"stamped": chw(0), "clean": chw(1), "alpha": np.stack([s[2] for s in ss])[:, None], "colour": chw(3)}


def loss_terms(model, b):
    a, c = model(b["stamped"])
    a, c = a.float(), c.float()
    err = (a - b["alpha"]).abs()
    under = (b["alpha"] > 0.01).float()
    # balanced: the stamp's pixels and the rest weigh alike, however small the stamp (an L1 over
    # all pixels is met by finding nothing: a first run's finder learned just that)
    loss_in = (err * under).sum() / (under.sum() + 1.0)
    loss_out = (err * (1 - under)).sum() / ((1 - under).sum() + 1.0)
    w = b["alpha"]
    loss_c = ((c - b["colour"]).abs() * w).sum() / (3 * w.sum() + 1e-6)
    # what inversion with the find gives back; its gradient grows as 1/(1-a)^2, so it is clamped
    # and weighted low, or it drowns the rest (a first run's colours collapsed under it)
    back = invert(b["stamped"], a.clamp(max=INVERT_MAX), c)
    loss_i = ((back - b["clean"]).abs() * (1 + UNDER_WEIGHT * under)).mean()
    loss = ALPHA_WEIGHT * (loss_in + loss_out) + 0.5 * loss_c + INVERT_WEIGHT * loss_i
    return loss, {"alpha_in": loss_in.item(), "alpha_out": loss_out.item(), "colour": loss_c.item(),
                  "inverted": loss_i.item()}


def make_validation(sources, seed, side, n=64):
    maker = FinderMaker(sources, np.random.default_rng(seed), side)
    return maker.batch(samples=[maker.sample(stamp=i % 4 != 3, marks=i % 2 == 0, jpeg=i % 8 >= 6) for i in range(n)])


@torch.no_grad()
def validate(model, val):
    """Opacity error; PSNR-Y after exact inversion with what was found, under the stamp and over
    stamped pictures as a whole, beside the stamped input; and on the pictures without a stamp,
    the share of pixels the finder marks (>= 0.05) and the PSNR-Y of inverting them (the harm)."""
    model.eval()
    b = _to_device(val, "cpu")
    a, c = model(b["stamped"])
    back = invert(b["stamped"], a, c)
    on = b["alpha"].flatten(1).amax(1) > 0
    under = (b["alpha"] > 0.01).double()[:, 0]
    res = {"alpha_mae": round(float((a - b["alpha"]).abs().mean()), 4),
           "stamped_in": round(psnr_y(b["stamped"][on], b["clean"][on], under[on]), 3),
           "found_in": round(psnr_y(back[on], b["clean"][on], under[on]), 3),
           "found_all": round(psnr_y(back[on], b["clean"][on]), 3),
           "unstamped_marked": round(float((a[~on] >= 0.05).float().mean()), 4),
           "unstamped_psnr": round(psnr_y(back[~on], b["clean"][~on]), 3)}
    model.train()
    return res


def export(out_dir):
    from .weights_io import save_weights
    ck = load_checkpoint(os.path.join(out_dir, CHECKPOINT))
    record = json.loads(ck["record"])
    model = StampFinder(**record["config"])
    ema = _ema(model)
    ema.load_state_dict(ck["ema"])
    record.update(steps_done=ck["step"], exported=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = save_weights(ema.module, NAME, record)
    print(f"exported step {ck['step']} (EMA weights) to {path}")
    return 0


def main(args):
    if args.export:
        return export(args.out)
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(args.seed)
    sources, held, data_record = load_data(args)
    os.makedirs(args.out, exist_ok=True)
    ck_path = os.path.join(args.out, CHECKPOINT)
    model = StampFinder(args.channels).train()
    ema = _ema(model)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    rng = np.random.default_rng(args.seed)
    record = {"architecture": "stamp-finder", "config": model.config, "version": __version__,
              "parameters": sum(p.numel() for p in model.parameters()), "data": data_record,
              "samples": f"whole {args.side} px pictures; stamps {FIND_SHARE:.0%} (core/watermarks.py random_watermark), "
                         f"the picture's own marks {MARK_SHARE:.0%} (picture_marks), "
                         f"JPEG q{JPEG_QUALITIES[0]}-{JPEG_QUALITIES[1]} {JPEG_SHARE:.0%}",
              "args": {k: v for k, v in vars(args).items() if k not in ("func", "command")},
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "train_seconds": 0.0,
              "validation": []}
    step = 0
    if os.path.exists(ck_path):
        ck = load_checkpoint(ck_path)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        step = ck["step"]
        rng.bit_generator.state = json.loads(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        record = json.loads(ck["record"])
        print(f"resumed from {ck_path} at step {step}")
    model = model.to(memory_format=torch.channels_last)
    val_sources = dict(sources, pictures=held or sources["pictures"])
    val = make_validation(val_sources, args.seed + 1, args.side)
    feed = Prefetcher(FinderMaker(sources, rng, args.side), args.batch)
    runlog = RunLog(args, record)
    try:
        while step < args.steps:
            b = _to_device(feed.next(), "cpu")
            for g in opt.param_groups:
                g["lr"] = learning_rate(step, args.steps, args.lr)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.no_bf16):
                loss, parts = loss_terms(model, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ema.update_parameters(model)
            step += 1
            if runlog.after_step(step, opt.param_groups[0]["lr"], parts, lambda: validate(ema.module, val),
                                 lambda rec: save_checkpoint(ck_path, model, ema, opt, step, rng, rec)):
                break
    finally:
        feed.close()
        runlog.close()
    return 0
