"""What the command line offers, and its defaults: importable without torch, numpy or scipy, so
that `python -m core` checks its arguments (and prints --help) at once, before any of them loads.
Each is defined here only (those the plugins share too, in core/client.py), and the modules that
use them import them from here."""
from .client import GOOD_ESTIMATE, MIN_PICTURES  # noqa: F401

SCALES = (1, 2, 4)
METHODS = ("learned", "classic")
DEVICES = ("auto", "cpu", "cuda", "mps")
# tile side in input pixels: bounds the memory one picture takes (kirei-2 on the CPU: 1.5 GiB at 384,
# 2.3 GiB at 512, for the same speed; a 6000x4000 picture blind needs the smaller tile to stay under 4 GiB)
DEFAULT_TILE = 384
# averaging the model over a tile's 8 flips and turns (waifu2x's "TTA") gains 0.2-0.5 dB (each view
# errs differently) for 8x the model's time: by default for JPEG input only (clean input keeps
# waifu2x's speed), and on the CPU only up to this many pixels (previews are ~0.1 MP)
TTA_CPU_MAX_PIXELS = 1_000_000
MIN_TILE, MAX_TILE = 16, 4096  # the tile sides a command or a job may ask for
JPEG_420_SHARE = 0.5  # training: the share of JPEG samples with 4:2:0 chroma (encoders' default), the rest 4:4:4
JPEG_QUALITIES = (60, 95)  # training: the range (inclusive) of JPEG qualities samples are saved at
