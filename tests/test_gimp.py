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
from tests.conftest import IN_CHROOT, ROOT, RunningWorker, host_chroot, picture, quantise, run_cli, virtual_display

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
        {"name": "rgba8_whole_x2", "input": "rgba8.png", "format": "R'G'B'A u8", "scale": 2, "watermark": "none",
         "tta": True},  # "Best quality": the model on 8 views
        {"name": "rgba8_selection_profile_x2", "input": "rgba8.png", "format": "R'G'B'A u8", "scale": 2,
         "watermark": "profile", "profile": "profile.png", "selection": [8, 6, 40, 30], "soft": [8, 30, 40, 6],
         "matte": True},
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
                          options=Options(scale=s, tta=case.get("tta")), matte=bool(case.get("matte")))


def _write_named_sets(work, watermark):
    """The pictures the named-profile tests measure in GIMP: /project/stamped (10 carrying the stamp, and
    one of another size that Measure must leave out), /project/clean (8 carrying none); returns the
    stamped ones' files."""
    alpha, color = watermark
    os.makedirs(os.path.join(work, "stamped"))
    os.makedirs(os.path.join(work, "clean"))
    files = []
    for i in range(10):
        clean = picture(120, 160, seed=60 + i)
        files.append(os.path.join(work, "stamped", "studio-%02d.png" % i))
        Image.fromarray(np.rint(quantise(stamp(clean, alpha, color)) * 255).astype(np.uint8)).save(files[-1])
    Image.fromarray(np.rint(picture(100, 80, seed=70) * 255).astype(np.uint8)).save(
        os.path.join(work, "stamped", "z-other-size.png"))
    for i in range(8):
        Image.fromarray(np.rint(picture(120, 160, seed=80 + i) * 255).astype(np.uint8)).save(
            os.path.join(work, "clean", "clean-%02d.png" % i))
    return files


@pytest.mark.parametrize("version", GIMPS)
def test_plugin_in_real_gimp3(version, tmp_path, monkeypatch, watermark):
    chroot = host_chroot(GIMPS[version], "/usr/bin/gimp-console", f"GIMP {version}")
    work = str(tmp_path)
    cases, sources = _write_cases(work)
    # install the plug-in as a user would: cp -rL plugins/gimp/kirei <profile>/plug-ins/
    plugins = os.path.join(work, "gimp3-home", "plug-ins")
    os.makedirs(plugins)
    shutil.copytree(os.path.join(ROOT, "plugins", "gimp", "kirei"), os.path.join(plugins, "kirei"), symlinks=False)
    for f in ("test_in_gimp.py", "gimp_pytest.py"):
        shutil.copy(os.path.join(ROOT, "tests", "gimp", f), work)
    # named profiles: Kirei's config folder is shared by the command line here and GIMP there
    config = os.path.join(work, "config")
    monkeypatch.setenv("KIREI_CONFIG_DIR", config)
    stamped = _write_named_sets(work, watermark)
    r = run_cli("estimate", "--save", "cli-studio", *stamped[:8])
    assert r.returncode == 0, r.stderr
    worker = RunningWorker(tmp_path / "worker-files")
    # the plug-in's window (Cancel) is tested where there is an X server
    with virtual_display() as display:
        try:
            shutil.copy(worker.token_file, os.path.join(work, "token"))
            env = dict(os.environ, PASS_ENV="GIMP3_DIRECTORY KIREI_SERVER_URL KIREI_TOKEN_FILE PYTEST_ARGS DISPLAY "
                       "KIREI_CONFIG_DIR", KIREI_CONFIG_DIR="/project/config",
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
    assert f"{len(cases) + 14 + 2 * bool(display)} passed" in out, out[-3000:]
    for case in cases:
        src = sources[case["input"]]
        want = _expected(case, src, work)
        info = json.load(open(os.path.join(work, case["name"] + ".json")))
        assert info["offset"] == list(want.offset), case["name"]
        h, w = want.pixels.shape[:2]
        assert info["size"] == [w, h], case["name"]
        got = np.fromfile(os.path.join(work, case["name"] + ".out"), src.dtype).reshape(want.pixels.shape)
        np.testing.assert_array_equal(got, want.pixels, err_msg=case["name"])
        if case.get("tta"):  # the setting reached the worker: one view would differ
            assert (_expected(dict(case, tta=False), src, work).pixels != got).any(), case["name"]
        if case.get("matte"):  # the watermark taken off, as the new layer's mask (turned off)
            got = np.fromfile(os.path.join(work, case["name"] + ".matte"), np.uint8).reshape(h, w)
            np.testing.assert_array_equal(got, want.matte, err_msg=case["name"])

    # the named profiles: measured in GIMP (from the open images, from a folder), listed by the command
    # line; the restore by name equals the engine's with that stored file
    r = run_cli("profiles", "list")
    assert r.returncode == 0, r.stderr
    listed = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert set(listed) == {"cli-studio", "folder-studio", "gimp-studio"}, r.stdout  # nothing from the refusals
    assert "120x160" in listed["gimp-studio"] and "120x160" in listed["folder-studio"], r.stdout
    stored = load_profile(os.path.join(config, "profiles", "gimp-studio.png"))
    assert np.abs(stored.alpha - watermark[0]).mean() < 0.03
    r = run_cli("profiles", "show", "gimp-studio")
    assert r.returncode == 0 and f"by:      GIMP {version}" in r.stdout, r.stdout
    src = np.asarray(Image.open(stamped[0]).convert("RGBA"))
    want = restore_region(src, profile=stored, options=Options(scale=1))
    got = np.fromfile(os.path.join(work, "named.out"), np.uint8).reshape(want.pixels.shape)
    np.testing.assert_array_equal(got, want.pixels)
