"""The Krita plugin in real Krita 5.1 (this machine's Debian 12), 5.2, 5.3 and 6.0 (Qt 6, PyQt6; in
Debian 13, 14 and experimental chroots that .ci/host_chroots.sh builds): pytest inside kritarunner
(headless) drives it on real documents against a real worker, and a full Krita under Xvfb loads the
installed plugin and restores from the docker's button. The pixels Krita ends up with are compared
here with the engine's answer.

Krita 5.1 needs Debian's krita and python3-pyqt5 (and xvfb for the GUI test), which .ci/run
installs; the others need their chroot. Elsewhere these tests are skipped and say so.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from core.blend import stamp
from core.client import MATTE_NAME
from core.pipeline import Options
from core.profile import Profile, load_profile, save_profile
from core.region import restore_region
from tests.conftest import (CI_CACHE, IN_CHROOT, ROOT, RunningWorker, display_report, host_chroot, picture,
                            virtual_display)

# Krita version -> its Debian chroot (.ci/host_chroots.sh; None: this machine's Krita)
KRITAS = {"5.1": None, "5.2": "trixie", "5.3": "forky", "6.0": "krita6"}


def _need(tool, what):
    if not tool:
        assert not os.environ.get("KIREI_REQUIRE_HOSTS"), f"CI must provide {what}"
        pytest.skip(f"{what} is not installed (apt-get install krita python3-pyqt5 xvfb)")


def krita_env(tmp, extra=None, profile="krita-profile"):
    """Isolated XDG folders for Krita; its resource database is kept warm in the cache when possible."""
    profile = os.path.join(CI_CACHE, profile) if os.access(os.path.dirname(CI_CACHE) or "/", os.W_OK) else tmp
    env = dict(os.environ)
    for k in ("config", "data", "cache", "runtime"):
        os.makedirs(os.path.join(profile, k), exist_ok=True)
    os.chmod(os.path.join(profile, "runtime"), 0o700)
    env.update(XDG_CONFIG_HOME=os.path.join(profile, "config"), XDG_DATA_HOME=os.path.join(profile, "data"),
               XDG_CACHE_HOME=os.path.join(profile, "cache"), XDG_RUNTIME_DIR=os.path.join(profile, "runtime"))
    # Krita's embedded Python takes its prefix from the first python3 on PATH: make it Debian's,
    # whose dist-packages hold PyQt5 (a pyenv or venv python3 first on PATH hides them)
    env["PATH"] = os.pathsep.join(["/usr/bin", "/bin", env.get("PATH", "")])
    env.update(extra or {})
    return env


class KritaHost:
    """A real Krita of a given version: this machine's, or the one in a Debian chroot. Its profile
    (resource database, settings, user plugins) is its own, kept warm in the CI cache."""

    def __init__(self, version, tmp, program, gui=False):
        self.version, self.chroot_name, self.tmp = version, KRITAS[version], tmp
        if self.chroot_name is None:
            _need(shutil.which(program) and (not gui or shutil.which("Xvfb")),
                  f"Krita ({program})" + (" and Xvfb" if gui else ""))
            self.chroot = None
        else:  # its X server is this machine's Xvfb, whose socket the chroot is lent
            _need(not gui or shutil.which("Xvfb"), "Xvfb")
            self.chroot = host_chroot(self.chroot_name, "/usr/bin/" + program, f"Krita {version}")
        self.profile = "krita-profile" + (f"-{self.chroot_name}" if self.chroot_name else "")

    def env(self, extra):
        """Krita's environment: its profile's XDG folders and EXTRA (all that gets into a chroot)."""
        env = krita_env(self.tmp, extra, self.profile)
        env["PASS_ENV"] = " ".join(["XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR", *extra])
        self.folders = [os.path.dirname(env["XDG_CONFIG_HOME"]), self.tmp]
        return env

    def command(self, args, folders=(), cwd=None):
        """ARGS as run in this Krita; in a chroot, FOLDERS, the profile's and the test's appear
        inside at the same paths."""
        if self.chroot is None:
            return list(args)
        binds = [a for f in dict.fromkeys([*self.folders, *folders]) for a in ("--bind", f)]
        return [IN_CHROOT, self.chroot, *binds, *(["--cd", cwd] if cwd else []), *args]


def _install(src, dst):
    """A copy of a plugin folder as `cp -rL` makes it (kirei_client.py is a link into core/)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=False)


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
         "watermark": "profile", "profile": "profile.png", "selection": [[8, 6, 40, 24, 255], [8, 30, 40, 8, 128]],
         "matte": True},
        {"name": "u8_profile_x4", "pixels": "rgba8.raw", "depth": "U8", "scale": 4, "watermark": "profile",
         "profile": "profile.png"},
        {"name": "u16_profile_x1", "pixels": "rgba16.raw", "depth": "U16", "scale": 1, "watermark": "profile",
         "profile": "profile.png"},
        {"name": "u16_selection_x2", "pixels": "rgba16.raw", "depth": "U16", "scale": 2, "watermark": "none",
         "selection": [[20, 10, 30, 20, 255]], "tta": True},  # "Best quality": the model on 8 views
    ]
    for c in cases:
        c.update(width=w, height=h)
    with open(os.path.join(io, "cases.json"), "w") as fh:
        json.dump(cases, fh)
    return cases, {"rgba8.raw": rgba8, "rgba16.raw": rgba16}


def _expected(case, src, io):
    """The engine's own answer for a case, placed on a transparent canvas of the scaled document, and
    the engine's RegionResult (its matte, when the case asks for one)."""
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
                         options=Options(scale=s, tta=case.get("tta")), matte=bool(case.get("matte")))
    canvas = np.zeros((h * s, w * s, 4), src.dtype)
    ox, oy = res.offset
    canvas[oy:oy + res.pixels.shape[0], ox:ox + res.pixels.shape[1]] = res.pixels
    return canvas, res


NAMED = {"name": "krita-studio", "cli_name": "cli-studio", "width": 120, "height": 160, "stamped": 6, "clean": 6}


@pytest.fixture(scope="module")
def cli_profiles(tmp_path_factory, watermark):
    """A config folder where `python -m core estimate --save` has stored a profile by name."""
    from core.imageio import Picture, save_picture
    alpha, color = watermark
    folder = tmp_path_factory.mktemp("cli-profiles")
    paths = []
    for i in range(6):
        paths.append(str(folder / f"cli_{i}.png"))
        px = np.rint(stamp(picture(120, 160, seed=70 + i), alpha, color) * 255).astype(np.uint8)
        save_picture(Picture(px, bit_depth=8, format="PNG"), paths[-1])
    config = str(folder / "config")
    p = _cli(config, "estimate", "--save", NAMED["cli_name"], *paths)
    assert p.returncode == 0 and f"stored as '{NAMED['cli_name']}'" in p.stdout, p.stdout + p.stderr
    return config


def _cli(config, *args):
    """`python -m core ARGS` with Kirei's config folder at CONFIG."""
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, KIREI_CONFIG_DIR=config))


def _write_named(io, config, watermark):
    """Inputs for test_in_krita.py's named-profile round trip: stamped and clean pictures (RGBA raw), and
    a config folder holding the command line's stored profile."""
    alpha, color = watermark
    folder = os.path.join(io, "named")
    os.makedirs(folder)
    w, h = NAMED["width"], NAMED["height"]
    pictures = {}
    for kind, seeds in (("stamped", range(40, 40 + NAMED["stamped"])), ("clean", range(60, 60 + NAMED["clean"]))):
        for i, seed in enumerate(seeds):
            rgb = picture(w, h, seed)
            rgb = stamp(rgb, alpha, color) if kind == "stamped" else rgb
            rgba = np.dstack([np.rint(rgb * 255), np.full((h, w), 255)]).astype(np.uint8)
            rgba.tofile(os.path.join(folder, f"{kind}_{i}.raw"))
            pictures[kind, i] = rgba
    with open(os.path.join(folder, "named.json"), "w") as fh:
        json.dump(NAMED, fh)
    mine = os.path.join(io, "config")
    shutil.copytree(config, mine)
    return mine, pictures


def _check_named(io, config, pictures):
    """What the Krita run left: the command line lists the profile the docker stored, which restores as
    the engine does with it; the refused estimate stored nothing."""
    res = json.load(open(os.path.join(io, "named", "result.json")))
    name = NAMED["name"]
    assert res["stored_before"] == [NAMED["cli_name"]] and res["stored"] == [NAMED["cli_name"], name], res
    p = _cli(config, "profiles", "list")
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {ln.split()[0]: ln for ln in p.stdout.splitlines() if ln.strip()}
    assert sorted(rows) == [NAMED["cli_name"], name], p.stdout
    stamp_words = r"stamp x \d+-\d+, y \d+-\d+, mean opacity 0\.\d\d"  # the record the docker wrote
    assert "120x160" in rows[name] and re.search(stamp_words, rows[name]), p.stdout
    p = _cli(config, "profiles", "show", name)
    assert p.returncode == 0 and "Kirei in Krita" in p.stdout, p.stdout + p.stderr
    profile = load_profile(os.path.join(config, "profiles", name + ".png"))
    got = np.fromfile(os.path.join(io, "named", "restored.raw"), np.uint8).reshape(NAMED["height"], NAMED["width"], 4)
    want = restore_region(pictures["stamped", 1], profile=profile, options=Options(scale=1)).pixels
    np.testing.assert_array_equal(got, want)
    assert not os.path.exists(os.path.join(config, "profiles", "nothing-here.png"))


@pytest.mark.parametrize("version", KRITAS)
def test_plugin_in_kritarunner(version, krita_worker, cli_profiles, watermark, tmp_path):
    krita = KritaHost(version, str(tmp_path), "kritarunner")
    io = str(tmp_path)
    cases, sources = _write_cases(io)
    config, named = _write_named(io, cli_profiles, watermark)
    py = os.path.join(io, "py")  # the plugin and the tests, as Krita's Python finds them
    _install(os.path.join(ROOT, "plugins", "krita", "kirei"), os.path.join(py, "kirei"))
    here = os.path.join(py, "tests")
    _install(os.path.join(ROOT, "tests", "krita"), here)
    token = shutil.copy(krita_worker.token_file, io)
    env = krita.env({"QT_QPA_PLATFORM": "offscreen", "KIREI_KRITA_IO": io, "KIREI_SERVER_URL": krita_worker.url,
                     "KIREI_TOKEN_FILE": token, "KIREI_CONFIG_DIR": config, "PYTHONPATH": os.pathsep.join([py, here])})
    p = subprocess.run(["timeout", "600", *krita.command(
        ["kritarunner", "-s", "kr_pytest", "-f", "main", "--", "-q", "-rA", "--confcutdir", here, "--rootdir", here,
         "-c", os.devnull, os.path.join(here, "test_in_krita.py")], cwd=io)],
        env=env, capture_output=True, text=True, cwd=io)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    assert f"in Krita {version}." in out, out[-3000:]  # the Krita this test is for
    assert f"{len(cases) + 5} passed" in out, out[-3000:]
    _check_named(io, config, named)
    for case in cases:
        src = sources[case["pixels"]]
        s = case["scale"]
        got = np.fromfile(os.path.join(io, case["name"] + ".out"), src.dtype).reshape(
            case["height"] * s, case["width"] * s, 4)
        want, res = _expected(case, src, io)
        np.testing.assert_array_equal(got, want, err_msg=case["name"])
        if case.get("tta"):  # the setting reached the worker: one view would differ
            assert (_expected(dict(case, tta=False), src, io)[0] != got).any(), case["name"]
        info = json.load(open(os.path.join(io, case["name"] + ".json")))
        assert info["type"] == "paintlayer" and info["layer"].startswith("Kirei")
        assert info["depth"] == case["depth"]
        matte = case.get("matte") and version != "5.1"  # 5.1 can't give a plugin's mask pixels: refused there
        assert info["masks"] == ([[MATTE_NAME, False]] if matte else []), case["name"]
        if matte:  # the watermark taken off, as the new layer's hidden transparency mask
            got = np.fromfile(os.path.join(io, case["name"] + ".matte"), np.uint8).reshape(
                case["height"] * s, case["width"] * s)
            (ox, oy), (rh, rw) = res.offset, res.matte.shape
            np.testing.assert_array_equal(got[oy:oy + rh, ox:ox + rw], res.matte, err_msg=case["name"])


def _enable_plugins(config_home, names):
    """kritarc [python] enable_NAME=true for each plugin (Krita loads no plugin that isn't enabled)."""
    rc = os.path.join(config_home, "kritarc")
    lines = open(rc).read().splitlines() if os.path.exists(rc) else []
    lines = [ln for ln in lines if not any(ln.startswith(f"enable_{n}=") for n in names)]
    if "[python]" not in lines:
        lines += ["", "[python]"]
    i = lines.index("[python]") + 1
    lines[i:i] = [f"enable_{n}=true" for n in names]
    with open(rc, "w") as fh:
        fh.write("\n".join(lines) + "\n")


@pytest.mark.parametrize("version", KRITAS)
def test_plugin_in_krita_gui(version, krita_worker, cli_profiles, watermark, tmp_path):
    """A full Krita under Xvfb loads the installed plugin (copied as `cp -rL` would), shows the
    docker, and restores from its Restore button; the window is saved as a screenshot. Then its
    Estimate profile... > From the open documents asks a name (offering the documents' series) and
    stores the profile by it, listed beside the one the command line stored."""
    krita = KritaHost(version, str(tmp_path), "krita", gui=True)
    out = os.path.join(ROOT, "test-output", "krita-gui-" + version)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    token = shutil.copy(krita_worker.token_file, str(tmp_path))
    config = os.path.join(str(tmp_path), "config")
    shutil.copytree(cli_profiles, config)
    alpha, color = watermark
    for i in range(NAMED["stamped"]):  # Krita's B,G,R,A
        rgb = np.rint(stamp(picture(NAMED["width"], NAMED["height"], 40 + i), alpha, color) * 255)
        np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 255)]).astype(np.uint8).tofile(
            os.path.join(out, f"stamped_{i}.raw"))
    with open(os.path.join(out, "named.json"), "w") as fh:
        json.dump(NAMED, fh)
    env = krita.env({"KIREI_GUITEST_OUT": out, "KIREI_SERVER_URL": krita_worker.url, "KIREI_TOKEN_FILE": token,
                     "KIREI_CONFIG_DIR": config, "DISPLAY": ""})
    env.pop("QT_QPA_PLATFORM", None)
    pykrita = os.path.join(env["XDG_DATA_HOME"], "krita", "pykrita")
    _install(os.path.join(ROOT, "plugins", "krita", "kirei"), os.path.join(pykrita, "kirei"))
    shutil.copy(os.path.join(ROOT, "plugins", "krita", "kirei.desktop"), pykrita)
    _install(os.path.join(ROOT, "tests", "krita", "kirei_guitest"), os.path.join(pykrita, "kirei_guitest"))
    shutil.copy(os.path.join(ROOT, "tests", "krita", "kirei_guitest.desktop"), pykrita)
    _enable_plugins(env["XDG_CONFIG_HOME"], ["kirei", "kirei_guitest"])
    rgba = (picture(96, 64, seed=8) * 255).astype(np.uint8)
    rgba = np.dstack([rgba, np.full((64, 96), 255, np.uint8)])
    rgba[..., [2, 1, 0, 3]].tofile(os.path.join(out, "input.raw"))  # Krita's B,G,R,A

    with virtual_display("1600x1000x24") as display:
        env["DISPLAY"] = display
        with open(os.path.join(out, "krita.log"), "wb") as log:
            proc = subprocess.Popen(krita.command(["krita", "--nosplash"], [out]), env=env, stdout=log,
                                    stderr=log)
        try:
            proc.wait(300)  # the guitest plugin quits Krita when it is done
        except subprocess.TimeoutExpired:
            pass
        finally:
            if proc.poll() is None:
                proc.terminate()  # in a chroot, the wrapper passes it on to Krita, then unmounts
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        x_server = display_report(display=display)
    result = os.path.join(out, "result.json")
    assert os.path.exists(result), (open(os.path.join(out, "krita.log"), errors="replace").read()[-3000:]
                                    + "\n" + x_server)
    res = json.load(open(result))
    assert "traceback" not in res, res["traceback"]
    assert res["krita_version"].startswith(version + "."), res["krita_version"]  # the Krita this test is for
    assert res["docker_found"] and res["docker_title"] == "Kirei" and res["action_found"]
    assert res["size"] == [192, 128]
    assert res["layers"][-1].startswith("Kirei x2"), res["layers"]
    assert res["grab_saved"] and os.path.getsize(os.path.join(out, "krita-window.png")) > 10000
    assert "Done in" in res["message"] or "upscaled only" in res["message"], res["message"]
    from core.blind import find_watermark
    from core.imageio import to_float
    said = find_watermark(to_float(rgba)).summary()  # what blind removal found, in the docker's status
    assert (said[0].upper() + said[1:] + ".") in res["message"], res["message"]
    got = np.fromfile(os.path.join(out, "new_layer.raw"), np.uint8).reshape(128, 192, 4)[..., [2, 1, 0, 3]]
    want = restore_region(rgba, options=Options(scale=2, blind=True)).pixels  # the docker ran blind
    np.testing.assert_array_equal(got, want)
    # Edit > Undo takes the document back exactly: the scaling and the new layer
    assert res["after_undo"] == {"size": [96, 64], "layers": ["Background"], "pixels_equal": True}, res
    print("undo steps for a x2 restore:", res["undo_steps"])
    named = res["named"]
    assert named["listed_before"] == [NAMED["cli_name"], "Choose a file..."], named  # the command line's profile
    assert named["offered"] == "gui_studio" and "Profile stored as 'gui_studio'" in named["message"], named
    assert (named["listed"], named["current"], named["mode"]) == (
        [NAMED["cli_name"], "gui_studio", "Choose a file..."], "gui_studio", "profile"), named
    p = _cli(config, "profiles", "list")
    assert sorted(ln.split()[0] for ln in p.stdout.splitlines() if ln.strip()) == [NAMED["cli_name"], "gui_studio"], (
        p.stdout + p.stderr)
