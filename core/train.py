"""`python -m core train`: fine-tune kirei-2 (or kirei-fast), in stages, resumably, and export.

    python -m core train --out runs/k2 --stage front --steps 4000        # front-end + matte head, body frozen
    python -m core train --out runs/k2 --stage joint --steps 2000        # then the body too, slowly
    python -m core train --out runs/k2 --stage jpeg --steps 3000         # or: the JPEG body alone, on JPEGs
    python -m core train --out runs/k2 --stage stamp --steps 600         # the stamp body, under the stamp of JPEGs
    python -m core train --out runs/k2 --export kirei-2                  # core/weights/kirei-2.{safetensors,json}
    python -m core train --out runs/mine --images ~/my-art --init kirei-2   # fine-tune on your own pictures

Starts from a shipped model (--init: the imported waifu2x bodies and whatever was trained
before). Stage "front" trains at low resolution only, where the front-end's job is (its target
is the clean small picture), so it is cheap on a CPU; stage "joint" runs the body and
compares the x2 result with the truth. Seeded: the same command gives the same weights. Run
the same command again to resume from the checkpoint (weights, optimiser, step); a resumed run
draws fresh batches from the generator state saved with it, not the very batches an unbroken
run would have drawn (the batch maker works ahead in a thread). An exponential moving average of the weights is validated and exported.
Every --log-every steps a JSON line goes to OUT/log.jsonl; every --val-every steps the held-out
PSNR-Y (x1 against the clean small picture; in the joint stage x2 too).
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
from .degrade import PairMaker, load_rgb, load_rgba, picture_files, provenance, split_holdout
from .devices import resolve_device
from .errors import KireiError
from .scenes import SVG_SIDES, resvg, svg_files
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .models import build
from .train_options import DEFAULT_ANIME, DEFAULT_DATA, DEFAULT_SVG, PROJECT
from .models.frontend import invert
from .models.kirei2 import count_parameters
from .weights_io import describe, load_model, save_weights, weights_path

CHECKPOINT = "checkpoint.pt"
WM_WEIGHT = 4.0  # extra weight of the pixels under the stamp, where the hard part is
EMA_DECAY = 0.999
# the stages that train neither the matte head nor (front) the bodies see no blind samples: a known
# profile (exact or as `estimate` measures it) or nothing stamped. "front": JPEG half the time,
# where inversion amplifies JPEG's noise and a measured profile is furthest off; "jpeg": JPEG only
# "stamp": JPEGs with a profile only, judged only where the stamp body takes over
STAGE_SAMPLES = {"front": {"jpeg_share": 0.5, "mode_weights": (0.85, 0.0, 0.15)},
                 "jpeg": {"jpeg_share": 1.0, "mode_weights": (0.8, 0.0, 0.2)},
                 "stamp": {"jpeg_share": 1.0, "mode_weights": (1.0, 0.0, 0.0)}}


# ---------------------------------------------------------------- data
def load_pictures(folders, rgba=False):
    pics, names = [], []
    for folder in folders:
        if not os.path.isdir(folder):
            raise KireiError(f"training data folder {folder} does not exist")
        for f in picture_files(folder):
            pics.append(load_rgba(f) if rgba else load_rgb(f))
            names.append(f)
    return pics, names


def _extra_folders(given, default, data_given):
    """An extra source's folders: the ones given ('none': none), else its default folder where it
    is, unless --data chose the data."""
    if given:
        return [] if given == ["none"] else [f for f in given if f != "none"]
    return [default] if not data_given and os.path.isdir(default) else []


def load_data(args):
    """(training sources for PairMaker, held-out pictures, the record's "data"): each source's
    files split as the pictures always were (every 12th held out), with counts and licences
    from each folder's MANIFEST.csv."""
    folders = args.data or ([DEFAULT_DATA] if os.path.isdir(DEFAULT_DATA) else [])
    folders += args.images or []
    anime_folders = _extra_folders(args.anime, DEFAULT_ANIME, args.data)
    svg_folders = _extra_folders(args.svg, DEFAULT_SVG, args.data)
    svgs = {d: svg_files(d) for d in svg_folders}
    if svg_folders:
        resvg()  # missing: say so now, before pictures and the model load
    sources, held, record = {}, {}, {}
    for key, dirs in (("pictures", folders), ("anime", anime_folders), ("svg", svg_folders)):
        items, names, described = [], [], []
        for d in dirs:
            got, got_names = (svgs[d], svgs[d]) if key == "svg" else load_pictures([d], rgba=key == "anime")
            items, names = items + got, names + got_names
            described.append({"folder": os.path.relpath(d, PROJECT), "files": len(got_names),
                              **provenance(d, got_names)})
        train, held_out = split_holdout(list(range(len(names))))
        sources[key], held[key] = [items[i] for i in train], [items[i] for i in held_out]
        record[key] = {"training": len(train), "held_out": len(held_out), "folders": described}
    return sources, held["pictures"], record


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
def _given_profile(model, b):
    """(a, W) each sample is restored with: the profile it was given, or the matte head's guess
    (blind samples), and the matte head's own (a, W) for its loss."""
    a_blind, c_blind = model.matte(b["stamped"])
    k = b["known"]
    return k * b["profile_alpha"] + (1 - k) * a_blind, k * b["profile_colour"] + (1 - k) * c_blind, a_blind, c_blind


def _upscale(model, clean, jpeg):
    """The body's x2 of each sample: the JPEG body for samples that went through JPEG."""
    if model.body_jpeg is None or not jpeg.any():
        return model.body(clean)
    out = torch.empty(clean.shape[:2] + (clean.shape[2] * 2, clean.shape[3] * 2), device=clean.device,
                      dtype=clean.dtype)
    parts = [(model.body, ~jpeg), (model.body_jpeg, jpeg)]
    for body, which in parts:
        if which.any():
            y = body(clean[which])
            out = out.to(y.dtype)
            out[which] = y
    return out


def _pixel_loss(model, out, b):
    """L1 against the truth of out's size, weighted up under the stamp."""
    under = (b["alpha"] > 0.01).float()
    truth = b["clean"]
    if out.shape[-1] != truth.shape[-1]:
        under = F.interpolate(under, scale_factor=model.scale, mode="nearest")
        truth = b["truth"]
    return ((out.float() - truth).abs() * (1 + WM_WEIGHT * under)).mean()


@torch.no_grad()
def _front_as_is(model, b):
    """The front-end's picture with the given profile, the front-end as it is, in the stages that
    don't train it (in eval mode: an untrained one is exact inversion, without computing its
    unused features)."""
    model.front.eval()
    clean = model.front(b["stamped"], b["profile_alpha"], b["profile_colour"])
    model.front.train()
    return clean


def _jpeg_loss(model, b):
    """Stage "jpeg": the JPEG body's x2 of the front-end's picture."""
    pixel = _pixel_loss(model, model.body_jpeg(_front_as_is(model, b)), b)
    return pixel, {"pixel": pixel.item()}


def _stamp_loss(model, b):
    """Stage "stamp": the x2 of the front-end's picture as the model makes it from a JPEG (the
    stamp body under the stamp, the frozen JPEG body elsewhere: models/kirei2.py), judged only
    where the stamp body has a share, by that share."""
    clean = _front_as_is(model, b)
    with torch.no_grad():
        share = model.stamp_share(b["profile_alpha"])
    out = model.jpeg_x2(clean, b["profile_alpha"])
    pixel = ((out.float() - b["truth"]).abs() * share).sum() / (3 * share.sum()).clamp(min=1.0)
    return pixel, {"pixel": pixel.item()}


def loss_terms(model, b, stage):
    """The loss of a batch: the front-end's clean small picture against the truth at low
    resolution (stage "front", the profile given) or the body's x2 against the high-resolution
    truth ("joint"), weighted up under the stamp; in "joint" plus the blind matte head's own loss.
    Stage "jpeg": the JPEG body's x2 alone; "stamp": the stamp body's, under the stamp."""
    if stage == "jpeg":
        return _jpeg_loss(model, b)
    if stage == "stamp":
        return _stamp_loss(model, b)
    if stage == "front":
        pixel = _pixel_loss(model, model.front(b["stamped"], b["profile_alpha"], b["profile_colour"]), b)
        return pixel, {"pixel": pixel.item()}
    alpha, colour, a_blind, c_blind = _given_profile(model, b)
    clean = model.front(b["stamped"], alpha, colour)
    out = _upscale(model, clean, b["jpeg"])
    pixel = _pixel_loss(model, out, b)
    err_a = a_blind.float() - b["alpha"]
    # squared error: L1 alone lets the head sit at "no stamp anywhere" (the median) while it
    # can't yet tell stamp from picture; the mean keeps a gradient towards telling them apart
    matte_a = err_a.abs().mean() + 10.0 * (err_a ** 2).mean()
    w = b["alpha"]
    matte_c = ((c_blind.float() - b["colour"]).abs() * w).sum() / (3 * w.sum() + 1e-6)
    return pixel + 2.0 * matte_a + 0.5 * matte_c, {"pixel": pixel.item(), "alpha": err_a.abs().mean().item(),
                                                  "colour": matte_c.item()}


def param_groups(model, stage, lr, body_lr):
    """What trains in each stage: the front-end alone ("front"); in "joint" the matte head and the
    bodies too, the bodies slowly, so that they stay at least as good as the waifu2x weights they
    start from; in "jpeg" the JPEG body alone, as slowly; in "stamp" the stamp body alone (added,
    as a copy of the JPEG body, where the model has none yet), as slowly."""
    if stage in ("jpeg", "stamp"):
        if model.body_jpeg is None:
            raise KireiError(f"stage {stage}: this model has no JPEG body to train")
        model.requires_grad_(False)
        body = model.body_jpeg if stage == "jpeg" else model.add_stamp_body()
        body.requires_grad_(True)
        return [{"params": list(body.parameters()), "base_lr": lr * body_lr}]
    heads = (model.front, model.matte) if stage == "joint" else (model.front,)
    model.matte.requires_grad_(stage == "joint")
    groups = [{"params": [p for m in heads for p in m.parameters()], "base_lr": lr}]
    bodies = [p for m in (model.body, model.body_jpeg) if m is not None for p in m.parameters()]
    for p in bodies:
        p.requires_grad_(stage == "joint")
    if stage == "joint":
        groups.append({"params": bodies, "base_lr": lr * body_lr})
    return groups


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


def make_validation(pictures, seed, scale, n=96, patch=96):
    """Held-out samples: half given their true profile, half the profile as `estimate` would
    measure it; in each half, every other sample through JPEG."""
    maker = PairMaker(pictures, np.random.default_rng(seed), scale=scale, patch=patch, synth_share=0.25,
                      synth_pool=8, stamp_pool=16, stamp_canvas=192)
    samples = [maker.sample(mode="profile", measured=i >= n // 2, jpeg=i % 2 == 1) for i in range(n)]
    batch = maker.batch(samples=samples)
    batch["measured"] = np.arange(n) >= n // 2
    return batch


@torch.no_grad()
def validate(model, val, device, stage):
    """PSNR-Y of the x1 result (the front-end) against the clean small picture, and in the joint
    stage of the x2 result against the truth: clean input; the true profile (PNG and JPEG input);
    a measured profile (PNG and JPEG, also under the stamp alone: "_in"); blind. "inverted" is
    exact inversion with the same profile, what the front-end must beat."""
    model.eval()
    b = _to_device(val, device)
    jpg, measured = b["jpeg"], b["measured"]
    png, exact = ~jpg, ~measured
    cases = {"clean": ("none", b["clean"], png & exact), "profile": ("profile", b["stamped"], png & exact),
             "jpeg": ("profile", b["stamped"], jpg & exact), "measured": ("profile", b["stamped"], png & measured),
             "measured_jpeg": ("profile", b["stamped"], jpg & measured), "blind": ("blind", b["stamped"], png & exact)}
    under = b["alpha"][:, 0] > 0.01
    inverted = invert(b["stamped"], b["profile_alpha"], b["profile_colour"])
    res = {}
    for name, (mode, x, which) in cases.items():
        for scale in ((1,) if stage == "front" else (1, 2)):
            outs = torch.cat([model(x[which][i:i + 8], b["profile_alpha"][which][i:i + 8],
                                    b["profile_colour"][which][i:i + 8], mode=mode, scale=scale,
                                    jpeg=bool(jpg[which][0]))[0] for i in range(0, int(which.sum()), 8)])
            truth = (b["clean"] if scale == 1 else b["truth"])[which]
            res[f"{name}_x{scale}"] = round(psnr_y(outs, truth, shave=4 // (3 - scale)), 3)
            if name.startswith("measured") or name == "jpeg":  # under the stamp alone
                mask = under[which].double()
                if scale == 2:
                    mask = F.interpolate(mask[:, None], scale_factor=2, mode="nearest")[:, 0]
                res[f"{name}_in_x{scale}"] = round(psnr_y(outs, truth, mask, shave=2 * scale), 3)
        if mode == "profile":
            res[f"inverted_{name}_x1"] = round(psnr_y(inverted[which], b["clean"][which], shave=2), 3)
            if name.startswith("measured"):
                res[f"inverted_{name}_in_x1"] = round(psnr_y(inverted[which], b["clean"][which],
                                                             under[which].double(), shave=2), 3)
    model.train()
    return res


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(path, model, ema, opt, step, rng, record):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
                "record": json.dumps(record)}, tmp)
    os.replace(tmp, path)


class RunLog:
    """A training loop's bookkeeping, shared by `train` and `train-finder`: the mean losses every
    --log-every steps, validations and checkpoints every --val-every / --save-every steps, at the
    end and at the time limit, all into OUT/log.jsonl (and printed)."""

    def __init__(self, args, record, tag=None):
        self.args, self.record, self.tag = args, record, tag or {}
        self.fh = open(os.path.join(args.out, "log.jsonl"), "a")
        self.t_start = self.t_last = time.time()
        self.before = record["train_seconds"]
        self.sums, self.n = {}, 0

    def _write(self, obj, label=None):
        self.fh.write(json.dumps(obj) + "\n")
        self.fh.flush()
        print(*([label] if label else []), json.dumps(obj.get("validation", obj) if label else obj), flush=True)

    def after_step(self, step, lr, parts, validate, save):
        """Log, validate (validate() -> dict) and save (save(record)) as due; True: stop (time limit)."""
        self.n += 1
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        a = self.args
        if step % a.log_every == 0:
            now = time.time()
            self._write({**self.tag, "step": step, "lr": round(lr, 7),
                         **{k: round(v / self.n, 5) for k, v in self.sums.items()},
                         "sec_per_step": round((now - self.t_last) / self.n, 4)})
            self.sums, self.n, self.t_last = {}, 0, now
        done = step >= a.steps
        out_of_time = bool(a.time_limit) and time.time() - self.t_start > a.time_limit * 60
        if step % a.val_every == 0 or done or out_of_time:
            v = {**self.tag, "step": step, **validate()}
            self.record["validation"].append(v)
            self._write({"validation": v}, "validation")
        if step % a.save_every == 0 or done or out_of_time:
            self.record["train_seconds"] = round(self.before + time.time() - self.t_start, 1)
            save(self.record)
        if out_of_time:
            print(f"time limit reached at step {step}; run again to resume")
        return out_of_time

    def close(self):
        self.fh.close()


def load_checkpoint(path):
    # weights_only: a checkpoint is never unpickled as arbitrary objects
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_run(model, ema, ck):
    """The checkpoint's weights into model and ema; a stamp body just added (stage "stamp" after
    another stage) starts again as a copy of the checkpoint's JPEG body."""
    fresh = model.body_stamp is not None and not any(k.startswith("body_stamp.") for k in ck["model"])
    for target, state in ((model, ck["model"]), (ema, ck["ema"])):
        target.load_state_dict(state, strict=not fresh)
    if fresh:
        for m in (model, ema.module):
            m.body_stamp.load_state_dict(m.body_jpeg.state_dict())


def _ema(model):
    """An exponential moving average of the weights: what is validated and exported."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(EMA_DECAY), use_buffers=True)


def export(out_dir, name):
    ck = load_checkpoint(os.path.join(out_dir, CHECKPOINT))
    record = json.loads(ck["record"])
    model = build(record["architecture"], record["config"])
    ema = _ema(model)
    ema.load_state_dict(ck["ema"])
    record["steps_done"] = ck["step"]
    record["exported"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = save_weights(ema.module, name, record)
    print(f"exported step {ck['step']} (EMA weights) to {path}")
    return 0


# ---------------------------------------------------------------- main
def main(args):
    if args.export:
        return export(args.out, args.export)
    device = resolve_device(args.device)
    torch.set_num_threads(os.cpu_count() or 1)
    sources, held_pics, data_record = load_data(args)
    train_pics = sources["pictures"]
    data_record.update({
        "synth": "core/synth.py anime_picture (procedural)",
        "scene": "a sprite (an anime picture, or an SVG render with transparency) over a background crop "
                 "(a picture, else procedural), at a random scale, an outline point at a random spot",
        "svg_rendering": f"resvg-py, {SVG_SIDES[0]}-{SVG_SIDES[1]} px wide (log-uniform), shown on white",
        "watermarks": "core/watermarks.py random_watermark (text/logos, fonts, opacity 0.2-0.8)"})
    os.makedirs(args.out, exist_ok=True)
    ck_path = os.path.join(args.out, CHECKPOINT)

    torch.manual_seed(args.seed)
    start = load_model(args.init)  # the shipped model (or a file) this run fine-tunes
    model = start.to(device).train()
    if args.stage == "stamp":
        model.add_stamp_body()  # before the EMA copy and the checkpoint: both hold it
    base = describe(args.init) if os.path.exists(weights_path(args.init, ".json")) else {}
    ema = _ema(model)
    rng = np.random.default_rng(args.seed)
    record = {"architecture": model.architecture, "config": model.config, "version": __version__,
              "parameters": count_parameters(model), "speed": base.get("speed"),
              "starting_weights": base.get("starting_weights", {"file": args.init}),
              "fine_tuned_from": f"{args.init} (sha256 {base.get('sha256', '?')})",
              "data": data_record,
              "degradations": "crop -> downscale (bicubic 50%, lanczos, box, bilinear, hamming) -> stamp -> "
                              f"JPEG q{args.jpeg_quality[0]}-{args.jpeg_quality[1]} 40% (4:2:0 {args.jpeg_420:.0%} of the time; "
                              "stages jpeg and stamp: all)",
              "stages": [], "args": {k: v for k, v in vars(args).items() if k not in ("func", "command")},
              "device": str(device), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "train_seconds": 0.0, "validation": []}
    opt = torch.optim.Adam(param_groups(model, args.stage, args.lr, args.body_lr), lr=args.lr, betas=(0.9, 0.99))
    step = 0
    if os.path.exists(ck_path):
        ck = load_checkpoint(ck_path)
        _load_run(model, ema, ck)
        old = json.loads(ck["record"])
        if old["stages"] and old["stages"][-1]["stage"] == args.stage:
            opt.load_state_dict(ck["optimizer"])  # same stage: resume it; a new stage starts its own schedule
            step = ck["step"]
            rng.bit_generator.state = json.loads(ck["rng"])
            torch.set_rng_state(ck["torch_rng"])
        args_now = record["args"]
        record = old
        record["args"] = args_now  # the latest invocation's (the schedule follows its --steps)
        record["config"] = model.config  # a later stage may have added a body
        record.setdefault("resumed_at_steps", []).append(step)
        print(f"resumed from {ck_path} at step {step} of stage {args.stage}")
    if not record["stages"] or record["stages"][-1]["stage"] != args.stage or step == 0:
        record["stages"].append({"stage": args.stage, "steps": args.steps, "lr": args.lr, "body_lr": args.body_lr,
                                 "batch": args.batch, "patch": args.patch,
                                 **({"samples": STAGE_SAMPLES[args.stage]} if args.stage in STAGE_SAMPLES else {})})
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    val = make_validation(held_pics or train_pics, args.seed + 1, model.scale)
    maker = PairMaker(train_pics, rng, scale=model.scale, patch=args.patch, anime=sources["anime"],
                      svg_files=sources["svg"], jpeg_qualities=tuple(args.jpeg_quality), subsampled_share=args.jpeg_420,
                      **STAGE_SAMPLES.get(args.stage, {}))
    data_record["shares"] = {k: round(v, 3) for k, v in maker.shares.items()}  # a resumed run keeps its record's
    feed = Prefetcher(maker, args.batch)
    bf16 = not args.no_bf16
    runlog = RunLog(args, record, {"stage": args.stage})
    try:
        while step < args.steps:
            b = _to_device(feed.next(), device)
            if device.type == "cpu":
                b = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in b.items()}
            for g in opt.param_groups:
                g["lr"] = learning_rate(step, args.steps, g["base_lr"])
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, parts = loss_terms(model, b, args.stage)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
            opt.step()
            ema.update_parameters(model)
            step += 1
            if runlog.after_step(step, opt.param_groups[0]["lr"], parts,
                                 lambda: validate(ema.module, val, device, args.stage),
                                 lambda rec: save_checkpoint(ck_path, model, ema, opt, step, rng, rec)):
                break
    finally:
        feed.close()
        runlog.close()
    return 0
