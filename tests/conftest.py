import os
import subprocess
import sys

import numpy as np
import pytest

from core import synth
from core.blend import stamp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def picture(width, height, seed):
    """A synthetic anime-style RGB picture, float32 in [0, 1]."""
    return np.asarray(synth.anime_picture(width, height, seed=seed), np.float32) / 255.0


def quantise(x):
    return np.rint(np.clip(x, 0, 1) * 255) / 255.0


@pytest.fixture(scope="session")
def watermark():
    """(alpha, color) of a SAMPLE stamp on 120x160 pictures."""
    return synth.text_watermark(120, 160, opacity=0.5, angle=35)


@pytest.fixture(scope="session")
def stamped_set(watermark):
    """20 stamped 120x160 pictures (8-bit values), and the clean ones."""
    alpha, color = watermark
    clean = [picture(120, 160, seed) for seed in range(20)]
    return [quantise(stamp(c, alpha, color)) for c in clean], clean


def run_cli(*args, cwd=ROOT, timeout=600):
    """`python -m core ARGS` in a real subprocess; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
