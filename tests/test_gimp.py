"""The GIMP 3 plug-in in real GIMP 3.0 and 3.2 (Debian 13 and 14 chroots that .ci/host_chroots.sh
builds and caches): installed as a user installs it, registered in the menu, run in batch through a
real worker on 127.0.0.1, with pytest running inside GIMP. The new layers' pixels are compared here
with the engine's own answer. Skipped (saying how to get it) where there is no such chroot."""
import json
import os
import shutil
import subprocess

import numpy as np
import png
import pytest
from PIL import Image

from core.blend import stamp
from core.pipeline import Options
from core.profile import Profile, load_profile, save_profile
from core.region import restore_region
from tests.conftest import IN_CHROOT, ROOT, RunningWorker, host_chroot, picture, virtual_display

GIMPS = {"3.0": "trixie", "3.2": "forky"}  # GIMP version -> its Debian chroot (.ci/host_chroots.sh)


def _write_cases(work):
    w, h = 64, 48
    alpha = np.zeros((h, w), np.float32)
    alpha[10:38, 4:60] = 0.45
    color = np.empty((h, w, 3), np.float32)
    color[:] = (1.0, 0.6, 0.15)
    save_profile(Profile(alpha, color), os.path.join(work, "profile.png"))
    Image.new("RGB", (w, h)).save(os.path.join(work, "not-rgba.png"))
    stamped = stamp(picture(w, h, seed=31), alpha, color)
    rgba8 = np.dstack([np.rint(stamped * 255), np.full((h, w), 255)]).astype(np.uint8)
    rgba8[:6, :6, 3] = 0
    Image.fromarray(rgba8, "RGBA").save(os.path.join(work, "rgba8.png"))
    rgb16 = np.rint(stamped * 65535).astype(np.uint16)
    png.from_array(rgb16.reshape(h, w * 3), "RGB;16").save(os.path.join(work, "rgb16.png"))
    grey = np.rint(stamped.mean(axis=2) * 255).astype(np.uint8)
    Image.fromarray(grey, "L").save(os.path.join(work, "grey8.png"))
    cases = [
        {"name": "rgba8_whole_x2", "input": "rgba8.png", "format": "R'G'B'A u8", "scale": 2, "watermark": "none"},
        {"name": "rgba8_selection_profile_x2", "input": "rgba8.png", "format": "R'G'B'A u8", "scale": 2,
         "watermark": "profile", "profile": "profile.png", "selection": [8, 6, 40, 30], "soft": [8, 30, 40, 6]},
        {"name": "rgb16_profile_x1", "input": "rgb16.png", "format": "R'G'B'A u16", "scale": 1,
         "watermark": "profile", "profile": "profile.png"},
        {"name": "grey8_x4", "input": "grey8.png", "format": "Y'A u8", "scale": 4, "watermark": "none"},
    ]
    for c in cases:
        c.update(width=w, height=h)
    json.dump(cases, open(os.path.join(work, "cases.json"), "w"))
    sources = {"rgba8.png": rgba8, "rgb16.png": np.dstack([rgb16, np.full((h, w), 65535, np.uint16)]),
               "grey8.png": np.dstack([grey, np.full((h, w), 255, np.uint8)])}
    return cases, sources


def _expected(case, src, work):
    s, w, h = case["scale"], case["width"], case["height"]
    mask, (x, y, x1, y1) = None, (0, 0, w, h)
    if case.get("selection"):
        full = np.fromfile(os.path.join(work, case["name"] + ".mask"), np.uint8).reshape(h, w)
        ys, xs = np.nonzero(full)
        x, y, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        mask = full[y:y1, x:x1]
    profile = load_profile(os.path.join(work, case["profile"])) if case.get("profile") else None
    return restore_region(src[y:y1, x:x1], offset=(int(x), int(y)), mask=mask, profile=profile,
                          options=Options(scale=s))


@pytest.mark.parametrize("version", GIMPS)
def test_plugin_in_real_gimp3(version, tmp_path):
    chroot = host_chroot(GIMPS[version], "/usr/bin/gimp-console", f"GIMP {version}")
    work = str(tmp_path)
    cases, sources = _write_cases(work)
    # install the plug-in as a user would: cp -rL plugins/gimp/kirei <profile>/plug-ins/
    plugins = os.path.join(work, "gimp3-home", "plug-ins")
    os.makedirs(plugins)
    shutil.copytree(os.path.join(ROOT, "plugins", "gimp", "kirei"), os.path.join(plugins, "kirei"), symlinks=False)
    for f in ("test_in_gimp.py", "gimp_pytest.py"):
        shutil.copy(os.path.join(ROOT, "tests", "gimp", f), work)
    worker = RunningWorker(tmp_path / "worker-files")
    # the plug-in's window (Cancel) is tested where there is an X server
    with virtual_display() as display:
        try:
            shutil.copy(worker.token_file, os.path.join(work, "token"))
            env = dict(os.environ, PASS_ENV="GIMP3_DIRECTORY KIREI_SERVER_URL KIREI_TOKEN_FILE PYTEST_ARGS DISPLAY",
                       GIMP3_DIRECTORY="/project/gimp3-home", KIREI_SERVER_URL=worker.url,
                       KIREI_TOKEN_FILE="/project/token", PYTEST_ARGS="-q -rA /project/test_in_gimp.py",
                       DISPLAY=display)
            p = subprocess.run(["timeout", "600", IN_CHROOT, chroot, "--bind", work + ":/project", "--cd", "/project",
                                "gimp-console", "-i", "--batch-interpreter=python-fu-eval", "-b",
                                "exec(open('/project/gimp_pytest.py').read())", "--quit"],
                               env=env, capture_output=True, text=True)
        finally:
            worker.stop()
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert f"in GIMP {version}." in out, out[-3000:]  # the GIMP this test is for
    assert f"{len(cases) + 7 + bool(display)} passed" in out, out[-3000:]
    for case in cases:
        src = sources[case["input"]]
        want = _expected(case, src, work)
        info = json.load(open(os.path.join(work, case["name"] + ".json")))
        assert info["offset"] == list(want.offset), case["name"]
        h, w = want.pixels.shape[:2]
        assert info["size"] == [w, h], case["name"]
        got = np.fromfile(os.path.join(work, case["name"] + ".out"), src.dtype).reshape(want.pixels.shape)
        np.testing.assert_array_equal(got, want.pixels, err_msg=case["name"])
