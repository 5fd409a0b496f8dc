"""`python -m core train`'s options and their defaults: light (no torch), so that the command line
checks them, and prints --help, before the training code loads."""
import argparse
import os

from .defaults import DEVICES, JPEG_420_SHARE, JPEG_QUALITIES
from .models import DEFAULT_MODEL

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(PROJECT, "..", "shared", "data", "train")
# with the default data (no --data) these come too, where they are
DEFAULT_ANIME = os.path.join(PROJECT, "..", "shared", "data", "train_anime")
DEFAULT_SVG = os.path.join(PROJECT, "..", "shared", "data", "train_svg")
STAGES = ("front", "joint", "jpeg", "stamp")


def add_arguments(p):
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoint.pt and log.jsonl")
    p.add_argument("--data", action="append", metavar="DIR",
                   help="folder of clean training pictures, replacing the default ones (repeatable; default "
                        f"{os.path.normpath(DEFAULT_DATA)})")
    p.add_argument("--images", action="append", metavar="DIR",
                   help="your own folder of clean pictures, added to the others (repeatable)")
    p.add_argument("--anime", action="append", metavar="DIR",
                   help="folder of anime-style pictures with transparency: crops on white and sprites of composed "
                        f"scenes (repeatable; 'none' for none; default {os.path.normpath(DEFAULT_ANIME)} without --data)")
    p.add_argument("--svg", action="append", metavar="DIR",
                   help="folder of flat / line-art SVGs, rendered at random sizes (needs resvg-py; repeatable; "
                        f"'none' for none; default {os.path.normpath(DEFAULT_SVG)} without --data)")
    p.add_argument("--steps", type=int, default=30000, help="total optimiser steps (the schedule's length)")
    p.add_argument("--time-limit", type=float, default=0, metavar="MIN",
                   help="stop (with a checkpoint) after this many minutes; run again to resume; 0: no limit")
    p.add_argument("--stage", choices=STAGES, default="front",
                   help="front: the front-end alone, at low resolution, the body frozen, on profiles as given "
                        "and as `estimate` measures them, PNG and JPEG; joint: then the matte head and the body "
                        "too, at --body-lr times the learning rate; "
                        "jpeg: the JPEG body alone, on JPEG input only, at --body-lr times the learning rate; "
                        "stamp: a body for JPEGs under the stamp alone (a copy of the JPEG body to start), as slowly")
    default_qualities = "%d-%d" % JPEG_QUALITIES  # a string default goes through quality_range too
    p.add_argument("--jpeg-quality", type=quality_range, default=default_qualities, metavar="LO-HI",
                   help=f"the JPEG qualities samples are saved at (default {default_qualities})")
    p.add_argument("--jpeg-420", type=share, default=JPEG_420_SHARE, metavar="SHARE",
                   help="the share of JPEG samples with 4:2:0 chroma, encoders' default (the rest 4:4:4; default %(default)s)")
    p.add_argument("--batch", type=int, default=32, help="patches per optimiser step")
    p.add_argument("--patch", type=int, default=64, help="low-resolution patch side")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (one-cycle schedule)")
    p.add_argument("--body-lr", type=float, default=0.02, help="the body's learning rate, relative (joint stage)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the initialisation: runs repeat")
    p.add_argument("--device", choices=DEVICES, default="auto", help="where to train; auto: a GPU if there is one")
    p.add_argument("--no-bf16", action="store_true", help="train in float32 (without it: bf16 autocast)")
    p.add_argument("--init", default=DEFAULT_MODEL, metavar="MODEL",
                   help="the model to start from: a shipped one (kirei-2, kirei-fast) or a .safetensors file")
    p.add_argument("--log-every", type=int, default=50, metavar="STEPS", help="log the training loss this often")
    p.add_argument("--val-every", type=int, default=1000, metavar="STEPS",
                   help="measure on the held-out pictures this often")
    p.add_argument("--save-every", type=int, default=500, metavar="STEPS", help="write the checkpoint this often")
    p.add_argument("--export", metavar="NAME", help="only export OUT's checkpoint to core/weights/NAME.*")


def share(text):
    """A float in [0, 1]."""
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, not {text!r}")
    return v


def quality_range(text):
    """(lo, hi) from "LO-HI", 1 <= LO <= HI <= 100."""
    try:
        lo, hi = (int(v) for v in text.split("-"))
    except ValueError:
        lo = hi = 0
    if not 1 <= lo <= hi <= 100:
        raise argparse.ArgumentTypeError(f"a range of JPEG qualities such as 75-95, not {text!r}")
    return lo, hi


def add_finder_arguments(p):
    """`python -m core train-finder`'s options: the data options of `train`, and the finder's own."""
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoint.pt and log.jsonl")
    for name in ("--data", "--images", "--anime", "--svg"):
        p.add_argument(name, action="append", metavar="DIR", help=f"as for `train` {name}")
    p.add_argument("--steps", type=int, default=20000, help="total optimiser steps (the schedule's length)")
    p.add_argument("--time-limit", type=float, default=0, metavar="MIN",
                   help="stop (with a checkpoint) after this many minutes; run again to resume; 0: no limit")
    p.add_argument("--batch", type=int, default=12, help="pictures per optimiser step")
    p.add_argument("--side", type=int, default=192, help="side of the (square) training pictures, px")
    p.add_argument("--channels", type=int, default=24, help="the finder's first level's channels (a new run)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the initialisation: runs repeat")
    p.add_argument("--no-bf16", action="store_true", help="train in float32 (without it: bf16 autocast)")
    p.add_argument("--log-every", type=int, default=50, metavar="STEPS", help="log the training loss this often")
    p.add_argument("--val-every", type=int, default=500, metavar="STEPS",
                   help="measure on the held-out pictures this often")
    p.add_argument("--save-every", type=int, default=250, metavar="STEPS", help="write the checkpoint this often")
    p.add_argument("--export", action="store_true", help="only export OUT's checkpoint to core/weights/stamp-finder.*")
