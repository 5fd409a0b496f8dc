#!/usr/bin/env python3
"""Everyday commands for people working on Kirei; each sets up what it needs first.

    python3 dev.py sample        # set up the engine, restore the bundled sample (x2), print where it is
    python3 dev.py test [ARGS]   # set up the engine with test tools, run the whole test suite (pytest ARGS)
    python3 dev.py make-sample   # redraw the bundled sample from the project's own generator
"""
import os
import subprocess
import sys

from install import PROJECT, ensure_core_env

SAMPLES = os.path.join(PROJECT, "samples")


def sample():
    py = ensure_core_env()
    out = os.path.join(PROJECT, "out")
    cmd = [py, "-m", "core", "restore", "--scale", "2", "--profile", os.path.join(SAMPLES, "sample-profile.png"),
           "-o", out, os.path.join(SAMPLES, "sample.png")]
    rc = subprocess.call(cmd, cwd=PROJECT)
    if rc == 0:
        print(f"restored: {os.path.join(out, 'sample.png')} (466x660, from samples/sample.png, 233x330)")
    return rc


def test(args):
    py = ensure_core_env(extras=("test",))
    return subprocess.call([py, "-m", "pytest", *args], cwd=PROJECT)


def make_sample():
    py = ensure_core_env()
    return subprocess.call([py, "-c", f"from core.synth import make_sample; make_sample({SAMPLES!r})"], cwd=PROJECT)


def main(argv):
    if not argv or argv[0] not in ("sample", "test", "make-sample"):
        print(__doc__.strip())
        return 2
    if argv[0] == "sample":
        return sample()
    if argv[0] == "test":
        return test(argv[1:])
    return make_sample()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
