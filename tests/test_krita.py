"""The Krita plugin in real Krita: pytest inside kritarunner (headless) drives it on real documents
against a real worker, and a full Krita under Xvfb loads the installed plugin and restores from
the docker's button. The pixels Krita ends up with are compared here with the engine's answer.

Needs Debian's krita and python3-pyqt5 (and xvfb for the GUI test), which .ci/run installs;
elsewhere these tests are skipped and say so.
"""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from core.blend import stamp
from core.pipeline import Options
from core.profile import Profile, load_profile, save_profile
from core.region import restore_region
from tests.conftest import ROOT, RunningWorker, picture

KRITARUNNER = shutil.which("kritarunner")
CACHE = os.environ.get("KIREI_CI_CACHE", "/var/cache/kirei-ci")


def _need(tool, what):
    if not tool:
        assert not os.environ.get("KIREI_REQUIRE_HOSTS"), f"CI must provide {what}"
        pytest.skip(f"{what} is not installed (apt-get install krita python3-pyqt5 xvfb)")


def krita_env(tmp, extra=None):
    """Isolated XDG folders for Krita; its resource database is kept warm in the cache when possible."""
    profile = os.path.join(CACHE, "krita-profile") if os.access(os.path.dirname(CACHE) or "/", os.W_OK) else tmp
    env = dict(os.environ)
    for k in ("config", "data", "cache", "runtime"):
        os.makedirs(os.path.join(profile, k), exist_ok=True)
    os.chmod(os.path.join(profile, "runtime"), 0o700)
    env.update(XDG_CONFIG_HOME=os.path.join(profile, "config"), XDG_DATA_HOME=os.path.join(profile, "data"),
               XDG_CACHE_HOME=os.path.join(profile, "cache"), XDG_RUNTIME_DIR=os.path.join(profile, "runtime"))
    env.update(extra or {})
    return env


@pytest.fixture(scope="module")
def krita_worker(tmp_path_factory):
    w = RunningWorker(tmp_path_factory.mktemp("krita-worker"))
    yield w
    w.stop()


def _write_cases(io):
    """Inputs for tests/krita/test_in_krita.py: RGBA pixels (8 and 16 bit), selections, a profile."""
    w, h = 64, 48
    alpha = np.zeros((h, w), np.float32)
    alpha[12:36, 6:58] = 0.45
    color = np.empty((h, w, 3), np.float32)
    color[:] = (1.0, 0.55, 0.1)  # not grey: a red/blue mix-up anywhere would show
    save_profile(Profile(alpha, color), os.path.join(io, "profile.png"))
    clean = picture(w, h, seed=21)
    stamped = stamp(clean, alpha, color)
    rgba8 = np.dstack([np.rint(stamped * 255), np.full((h, w), 255)]).astype(np.uint8)
    rgba8[40:, :10, 3] = 0  # a transparent corner
    rgba16 = np.dstack([np.rint(stamped * 65535), np.full((h, w), 65535)]).astype(np.uint16)
    rgba8.tofile(os.path.join(io, "rgba8.raw"))
    rgba16.tofile(os.path.join(io, "rgba16.raw"))
    cases = [
        {"name": "u8_whole_x2", "pixels": "rgba8.raw", "depth": "U8", "scale": 2, "watermark": "none"},
        {"name": "u8_selection_profile_x2", "pixels": "rgba8.raw", "depth": "U8", "scale": 2,
         "watermark": "profile", "profile": "profile.png", "selection": [[8, 6, 40, 24, 255], [8, 30, 40, 8, 128]]},
        {"name": "u8_profile_x4", "pixels": "rgba8.raw", "depth": "U8", "scale": 4, "watermark": "profile",
         "profile": "profile.png"},
        {"name": "u16_profile_x1", "pixels": "rgba16.raw", "depth": "U16", "scale": 1, "watermark": "profile",
         "profile": "profile.png"},
        {"name": "u16_selection_x2", "pixels": "rgba16.raw", "depth": "U16", "scale": 2, "watermark": "none",
         "selection": [[20, 10, 30, 20, 255]]},
    ]
    for c in cases:
        c.update(width=w, height=h)
    with open(os.path.join(io, "cases.json"), "w") as fh:
        json.dump(cases, fh)
    return cases, {"rgba8.raw": rgba8, "rgba16.raw": rgba16}


def _expected(case, src, io):
    """The engine's own answer for a case, placed on a transparent canvas of the scaled document."""
    s, w, h = case["scale"], case["width"], case["height"]
    mask, (x, y, x1, y1) = None, (0, 0, w, h)
    if case.get("selection"):
        mask = np.zeros((h, w), np.uint8)
        for sx, sy, sw, sh, v in case["selection"]:
            mask[sy:sy + sh, sx:sx + sw] = v
        ys, xs = np.nonzero(mask)
        x, y, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        mask = mask[y:y1, x:x1]
    profile = load_profile(os.path.join(io, case["profile"])) if case.get("profile") else None
    res = restore_region(src[y:y1, x:x1], offset=(int(x), int(y)), mask=mask, profile=profile,
                         options=Options(scale=s))
    canvas = np.zeros((h * s, w * s, 4), src.dtype)
    ox, oy = res.offset
    canvas[oy:oy + res.pixels.shape[0], ox:ox + res.pixels.shape[1]] = res.pixels
    return canvas


def test_plugin_in_kritarunner(krita_worker, tmp_path):
    _need(KRITARUNNER, "Krita (kritarunner)")
    io = str(tmp_path)
    cases, sources = _write_cases(io)
    env = krita_env(io, {
        "QT_QPA_PLATFORM": "offscreen", "KIREI_KRITA_IO": io, "KIREI_SERVER_URL": krita_worker.url,
        "KIREI_TOKEN_FILE": krita_worker.token_file,
        "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "plugins", "krita"), os.path.join(ROOT, "tests", "krita")])})
    here = os.path.join(ROOT, "tests", "krita")
    p = subprocess.run(["timeout", "600", KRITARUNNER, "-s", "kr_pytest", "-f", "main", "--", "-q", "-rA",
                        "--confcutdir", here, "--rootdir", here, "-c", os.devnull,
                        os.path.join(ROOT, "tests", "krita", "test_in_krita.py")],
                       env=env, capture_output=True, text=True, cwd=io)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert f"{len(cases) + 1} passed" in out, out[-3000:]
    for case in cases:
        src = sources[case["pixels"]]
        s = case["scale"]
        got = np.fromfile(os.path.join(io, case["name"] + ".out"), src.dtype).reshape(
            case["height"] * s, case["width"] * s, 4)
        want = _expected(case, src, io)
        np.testing.assert_array_equal(got, want, err_msg=case["name"])
        info = json.load(open(os.path.join(io, case["name"] + ".json")))
        assert info["type"] == "paintlayer" and info["layer"].startswith("Kirei")
        assert info["depth"] == case["depth"]
