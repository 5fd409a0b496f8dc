"""The GIMP 2.10 (gimpfu) plug-in's logic on the gimpfu stand-in (tests/gimp2/gimpfu.py), against a
real worker, under this Python 3 and under a real Python 2.7 (the Debian 11 chroot that .ci/run
builds). Its results must equal the engine's own answer."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np

from core.blend import stamp
from core.pipeline import Options
from core.profile import Profile, load_profile, save_profile
from core.region import restore_region
from tests.conftest import ROOT, picture

W, H = 48, 40


def _write(folder, seen_as):
    """The job file for check_gimp2_plugin.py; paths as the running Python sees `folder` (`seen_as`)."""
    alpha = np.zeros((H, W), np.float32)
    alpha[8:30, 4:44] = 0.4
    color = np.empty((H, W, 3), np.float32)
    color[:] = (0.9, 0.5, 0.2)
    save_profile(Profile(alpha, color), os.path.join(folder, "profile.png"))
    os.makedirs(os.path.join(folder, "config", "profiles"))
    shutil.copy(os.path.join(folder, "profile.png"), os.path.join(folder, "config", "profiles", "studio.png"))
    rgb = np.rint(stamp(picture(W, H, seed=51), alpha, color) * 255).astype(np.uint8)
    grey = np.rint(rgb.mean(axis=2)).astype(np.uint8)
    rgb.tofile(os.path.join(folder, "rgb.raw"))
    grey.tofile(os.path.join(folder, "grey.raw"))
    cases = [
        {"name": "rgb_whole_x2", "bpp": 3, "pixels": seen_as + "/rgb.raw", "scale_index": 1, "mode_index": 2},
        {"name": "rgb_selection_profile_x2", "bpp": 3, "pixels": seen_as + "/rgb.raw", "scale_index": 1,
         "mode_index": 1, "profile": seen_as + "/profile.png", "selection": [6, 4, 30, 24], "soft": [6, 24, 30, 4]},
        {"name": "grey_profile_x1", "bpp": 1, "pixels": seen_as + "/grey.raw", "scale_index": 0, "mode_index": 1,
         "profile": seen_as + "/profile.png"},
        # the stored profile "studio" (the same file, stored by name in the config folder) wins over the file
        {"name": "rgb_stored_profile_x1", "bpp": 3, "pixels": seen_as + "/rgb.raw", "scale_index": 0, "mode_index": 1,
         "profile": seen_as + "/not-there.png", "stored": "studio"},
        {"name": "rgb_blind_x2_fast", "bpp": 3, "pixels": seen_as + "/rgb.raw", "scale_index": 1, "mode_index": 0,
         "model_index": 1},
        # "Best quality": the model on 8 views
        {"name": "rgb_whole_x2_best", "bpp": 3, "pixels": seen_as + "/rgb.raw", "scale_index": 1, "mode_index": 2,
         "model_index": 1, "best": True},
        # an image opened from a JPEG file: its job says so, and the model's JPEG body runs
        {"name": "rgb_from_a_jpeg_file_x2", "bpp": 3, "pixels": seen_as + "/rgb.raw", "scale_index": 1,
         "mode_index": 2, "model_index": 1, "filename": "/pictures/preview.JPG"},
    ]
    with open(os.path.join(folder, "job.json"), "w") as fh:
        json.dump({"width": W, "height": H, "cases": cases}, fh)
    for name in ("kirei_gimp2.py", "kirei_common.py", "kirei_client.py"):
        shutil.copy(os.path.join(ROOT, "plugins", "gimp", "kirei", name), os.path.join(folder, name))
    for name in ("gimpfu.py", "check_gimp2_plugin.py"):
        shutil.copy(os.path.join(ROOT, "tests", "gimp2", name), os.path.join(folder, name))
    return {"rgb.raw": rgb, "grey.raw": grey[..., None]}, cases


def _check(output, folder, sources, cases):
    res = json.loads(output.strip().splitlines()[-1])
    reg = res["registered"]
    assert reg["menu"] == "<Image>/Filters/Enhance" and reg["label"] == "Kirei: Remove Watermark & Upscale..."
    assert reg["types"] == "RGB*, GRAY*"
    assert reg["params"] == ["image", "drawable", "scale", "watermark", "profile", "model", "stored", "best"]
    assert reg["stored_label"] == "Stored profile, by name (instead of the file): studio"  # read from the store
    assert reg["models"] == ["kirei-2 (best)", "kirei-fast (for slow machines)"]
    assert reg["best"] == ["Best quality (8 views: about 8x slower)", False]  # off unless asked for
    profile = load_profile(os.path.join(folder, "profile.png"))
    for case in cases:
        got = res["cases"][case["name"]]
        src = sources[case["pixels"].rsplit("/", 1)[1]]
        src = np.dstack([src, np.full(src.shape[:2], 255, np.uint8)])  # the plug-in sends alpha too
        s = (1, 2, 4)[case["scale_index"]]
        model = ("kirei-2", "kirei-fast")[case.get("model_index", 0)]
        mask, (x, y, x1, y1) = None, (0, 0, W, H)
        if case.get("selection"):
            full = np.zeros((H, W), np.uint8)
            sx, sy, sw, sh = case["selection"]
            full[sy:sy + sh, sx:sx + sw] = 255
            sx, sy, sw, sh = case["soft"]
            full[sy:sy + sh, sx:sx + sw] = 128
            ys, xs = np.nonzero(full)
            x, y, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            mask = full[y:y1, x:x1]

        def engine(model, jpeg="filename" in case, tta=case.get("best") or None):
            return restore_region(src[y:y1, x:x1], offset=(int(x), int(y)), mask=mask,
                                  profile=profile if case["mode_index"] == 1 else None,
                                  options=Options(scale=s, blind=case["mode_index"] == 0, model=model, jpeg=jpeg,
                                                  tta=tta))
        want = engine(model)
        assert got["sha256"] == hashlib.sha256(want.pixels.tobytes()).hexdigest(), case["name"]
        if model != "kirei-2":  # the chosen model ran, not the default
            assert got["sha256"] != hashlib.sha256(engine("kirei-2").pixels.tobytes()).hexdigest(), case["name"]
        if case.get("best"):  # 8 views, not one
            assert got["sha256"] != hashlib.sha256(engine(model, tta=False).pixels.tobytes()).hexdigest()
        if "filename" in case:  # the JPEG body ran, not the clean one
            assert got["sha256"] != hashlib.sha256(engine(model, jpeg=False).pixels.tobytes()).hexdigest()
        assert got["offsets"] == list(want.offset) and got["size"] == [want.pixels.shape[1], want.pixels.shape[0]]
        assert got["layers"][0].startswith("Kirei") and got["layers"][1] == "Background"
        assert got["source_unchanged"] and got["undo_balanced"] and got["image_size"] == [W * s, H * s]
    assert "profile" in res["error"] and res["error_left_image"]
    # the plug-in tells the worker the image's size, so a profile of another size is refused
    assert f"{W}x{H}" in res["wrong_size_profile"] and "8x8" in res["wrong_size_profile"], res["wrong_size_profile"]
    assert res["wrong_size_profile_left_image"]
    changed = res["changed"]  # the image changed during the run: left as the user left it
    assert changed["deleted"]["error"] == "The layer was deleted during the run: the image is unchanged."
    assert changed["deleted"]["layers"] == [] and changed["deleted"]["size"] == [8, 8]
    assert changed["resized"]["error"].startswith("The image was resized during the run (8x8, now 10x8)")
    assert changed["resized"]["layers"] == ["Background"] and changed["resized"]["size"] == [10, 8]
    assert changed["closed"]["error"].startswith("The image was closed during the run")
    # GIMP refuses the new layer after the scaling: the image is put back (nearest-neighbour: exactly)
    refused = changed["refused"]
    assert "invalid ID" in refused["error"] and "put back as it was" in refused["error"], refused
    assert refused["layers"] == ["Background"] and refused["size"] == [8, 8] and refused["pixels_kept"]
    assert all(c["undo_balanced"] for c in changed.values())
    assert any("profile" in m for m in res["messages"])
    assert res["no_such_stored"] == ("No profile file nobody, nor a stored profile of that name (stored: studio).")
    assert res["no_such_stored_left_image"]
    return res


def test_gimp2_plugin_on_python3(worker, tmp_path):
    sources, cases = _write(str(tmp_path), str(tmp_path))
    env = dict(os.environ, KIREI_SERVER_URL=worker.url, KIREI_TOKEN_FILE=worker.token_file,
               KIREI_CONFIG_DIR=str(tmp_path / "config"))
    p = subprocess.run([sys.executable, str(tmp_path / "check_gimp2_plugin.py"), str(tmp_path), str(tmp_path),
                        str(tmp_path / "job.json")], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert _check(p.stdout, str(tmp_path), sources, cases)["python"].startswith("3.")


def test_gimp2_plugin_on_real_python27(worker, python27):
    sources, cases = _write(python27.host, python27.inner)
    shutil.copy(worker.token_file, os.path.join(python27.host, "token"))
    inner = python27.inner
    p = python27.run([inner + "/check_gimp2_plugin.py", inner, inner, inner + "/job.json"],
                     {"KIREI_SERVER_URL": worker.url, "KIREI_TOKEN_FILE": inner + "/token",
                      "KIREI_CONFIG_DIR": inner + "/config"})
    assert p.returncode == 0, p.stderr[-3000:]
    assert _check(p.stdout, python27.host, sources, cases)["python"].startswith("2.7")
