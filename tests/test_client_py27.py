"""The plugins' client under a real Python 2.7 (GIMP 2.10's) and the engine's Python 3, against a
real worker: results equal the engine's direct answer bit for bit.

Python 2.7 comes from a Debian 11 chroot that .ci/run builds and caches; where there is none
(a developer's machine), that case is skipped and says how to get one.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np

from core.pipeline import Options
from core.profile import load_profile
from core.region import restore_region
from tests.conftest import ROOT


def _job_files(folder, scene, inside=""):
    """Write the job's inputs into `folder`; paths in the JSON are as seen from `inside` + folder."""
    stamped, profile_path, _, _ = scene
    px = np.dstack([np.rint(stamped * 255), np.full(stamped.shape[:2], 255)]).astype(np.uint8)
    part = np.ascontiguousarray(px[10:50, 20:80])
    mask = np.zeros((40, 60), np.uint8)
    mask[4:36, 8:52] = 255
    shutil.copy(profile_path, os.path.join(folder, "profile.png"))
    open(os.path.join(folder, "pixels.bin"), "wb").write(part.tobytes())
    open(os.path.join(folder, "mask.bin"), "wb").write(mask.tobytes())
    shutil.copy(os.path.join(ROOT, "core", "client.py"), os.path.join(folder, "kirei_client.py"))
    shutil.copy(os.path.join(ROOT, "tests", "client_check.py"), os.path.join(folder, "client_check.py"))
    seen = inside + folder
    job = {"pixels_file": seen + "/pixels.bin", "mask_file": seen + "/mask.bin", "profile": seen + "/profile.png",
           "width": 60, "height": 40, "channels": 4, "dtype": "uint8", "offset": [20, 10], "scale": 2,
           "watermark": "profile", "image_size": [stamped.shape[1], stamped.shape[0]], "matte": True}
    json.dump(job, open(os.path.join(folder, "job.json"), "w"))
    want = restore_region(part, offset=(20, 10), mask=mask, profile=load_profile(profile_path),
                          options=Options(scale=2), matte=True)
    return want


def _check(out, want):
    res = json.loads(out.strip().splitlines()[-1])
    assert res["result"]["sha256"] == hashlib.sha256(want.pixels.tobytes()).hexdigest()
    assert res["result"]["offset"] == list(want.offset)
    assert res["result"]["size"] == [want.pixels.shape[1], want.pixels.shape[0]]
    assert res["result"]["matte_sha256"] == hashlib.sha256(want.matte.tobytes()).hexdigest()
    assert res["cancel"] == "Cancelled"
    assert res["wrong_token"].startswith("KireiClientError") and "token" in res["wrong_token"]
    assert "truncated" in res["truncated"]
    return res


def test_client_on_python3(worker, scene, tmp_path):
    want = _job_files(str(tmp_path), scene)
    env = dict(os.environ, KIREI_SERVER_URL=worker.url, KIREI_TOKEN_FILE=worker.token_file)
    p = subprocess.run([sys.executable, str(tmp_path / "client_check.py"), str(tmp_path), str(tmp_path / "job.json")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert _check(p.stdout, want)["python"].startswith("3.")


def test_client_on_real_python27(worker, scene, python27):
    want = _job_files(python27.host, scene)
    job = json.load(open(os.path.join(python27.host, "job.json")))
    for k in ("pixels_file", "mask_file", "profile"):  # paths as Python 2.7 sees them
        job[k] = job[k].replace(python27.host, python27.inner, 1)
    json.dump(job, open(os.path.join(python27.host, "job.json"), "w"))
    shutil.copy(worker.token_file, os.path.join(python27.host, "token"))
    inner = python27.inner
    p = python27.run([inner + "/client_check.py", inner, inner + "/job.json"],
                     {"KIREI_SERVER_URL": worker.url, "KIREI_TOKEN_FILE": inner + "/token"})
    assert p.returncode == 0, p.stderr
    assert _check(p.stdout, want)["python"].startswith("2.7")
