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


class RunningWorker:
    """A real `python -m core serve` process on 127.0.0.1, and what a client needs to reach it."""

    def __init__(self, folder, *args):
        import select
        os.makedirs(str(folder), exist_ok=True)
        self.token_file = os.path.join(str(folder), "token")
        self.log_path = os.path.join(str(folder), "worker.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--token-file", self.token_file,
                                          *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"worker didn't start: {line!r} {open(self.log_path).read()[-2000:]}")
        self.url = line.strip()
        with open(self.token_file) as fh:
            self.token = fh.read().strip()

    def client(self, **kw):
        from core.client import Client
        return Client(url=self.url, token=self.token, **kw)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = RunningWorker(tmp_path_factory.mktemp("worker"))
    yield w
    w.stop()
