"""Profiles stored by name: the store in core/client.py (shared with the plugins), and the command
line's round trip: estimate --save NAME, restore --profile NAME, profiles list|show|remove."""
import os

import numpy as np
import pytest
from PIL import Image

from core import client
from core.profile import load_profile
from tests.conftest import ROOT, run_cli


# ------------------------------------------------------------------ the store (core/client.py)
@pytest.mark.parametrize("name", ["studio", "Studio_2024", "a", "x-y_z9", "9lives", "s" * 64])
def test_good_names(name, tmp_path):
    assert client.profile_name_problem(name) is None
    assert client.profile_path(name, str(tmp_path)) == os.path.join(str(tmp_path), "profiles", name + ".png")


@pytest.mark.parametrize("name", ["", "a/b", "../x", "..", "-x", "_x", ".hidden", "x.png", "two words", "s" * 65,
                                  "naïve", "a\\b", "CON", "lpt1", "Nul"])
def test_bad_names_are_refused_with_the_rule(name, tmp_path):
    problem = client.profile_name_problem(name)
    assert problem and ("letters, digits" in problem or "Windows keeps" in problem), problem
    with pytest.raises(client.KireiClientError):
        client.profile_path(name, str(tmp_path))


def test_store_list_record_replace_remove(tmp_path):
    config = str(tmp_path)
    assert client.profile_names(config) == []
    path = client.store_profile("studio", b"png bytes", {"made": "2026-12-06T10:00:00", "size": [4, 3]}, config)
    assert open(path, "rb").read() == b"png bytes"
    client.store_profile("Another", b"other", None, config)
    folder = client.profiles_dir(config)
    for stray in ("notes.txt", "bad name.png", "studio.png.123.tmp", ".hidden.png"):  # not profiles
        open(os.path.join(folder, stray), "w").close()
    assert client.profile_names(config) == ["Another", "studio"]  # sorted whatever the case
    assert client.profile_record("studio", config) == {"made": "2026-12-06T10:00:00", "size": [4, 3]}
    assert client.profile_record("Another", config) == {}
    client.store_profile("studio", b"new", None, config)  # replaced: the old record isn't this one's
    assert open(path, "rb").read() == b"new" and client.profile_record("studio", config) == {}
    assert not [f for f in os.listdir(folder) if f.endswith(".tmp") and f != "studio.png.123.tmp"]
    client.remove_profile("studio", config)
    assert client.profile_names(config) == ["Another"]
    with pytest.raises(client.KireiClientError, match="no stored profile called 'studio'"):
        client.remove_profile("studio", config)


def test_the_store_is_in_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KIREI_CONFIG_DIR", str(tmp_path / "cfg"))
    assert client.profiles_dir() == str(tmp_path / "cfg" / "profiles")
    client.store_profile("x", b"1")
    assert os.listdir(str(tmp_path / "cfg" / "profiles")) == ["x.png"]


# ------------------------------------------------------------------ the command line
def _save(arr, path):
    Image.fromarray(np.rint(arr * 255).astype(np.uint8)).save(path)
    return path


def _error(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("kirei: error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.fixture
def config(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    monkeypatch.setenv("KIREI_CONFIG_DIR", str(folder))  # the CLI's subprocesses inherit it
    return folder


def test_named_profile_round_trip(tmp_path, config, stamped_set, watermark):
    stamped, _ = stamped_set
    files = [_save(s, tmp_path / f"s{i}.png") for i, s in enumerate(stamped[:12])]
    r = run_cli("estimate", "--save", "studio", *files)
    assert r.returncode == 0, r.stderr
    stored = config / "profiles" / "studio.png"
    assert "profile stored as 'studio' (120x160" in r.stdout and str(stored) in r.stdout, r.stdout
    assert np.abs(load_profile(stored).alpha - watermark[0]).mean() < 0.03

    r = run_cli("profiles", "list")
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    assert line.startswith("studio  120x160  stamp x ") and "mean opacity 0." in line, line
    r = run_cli("profiles", "show", "studio")
    assert r.returncode == 0, r.stderr
    assert f"path:    {stored}" in r.stdout and "size:    120x160" in r.stdout
    assert "from:    12 pictures that carry the stamp, of 12 read" in r.stdout
    assert "found:   watermark on 12 of 12 pictures" in r.stdout, r.stdout

    # a name in use: refused before measuring, unless --replace; -o as well writes both
    before = stored.read_bytes()
    r = run_cli("estimate", "--save", "studio", *files)
    assert r.returncode == 2 and "a profile called 'studio' is already stored (made " in _error(r)
    assert "--replace" in _error(r) and "measuring" not in r.stderr and stored.read_bytes() == before
    r = run_cli("estimate", "--save", "studio", "--replace", "-o", tmp_path / "copy.png", *files[:10])
    assert r.returncode == 0, r.stderr
    assert "profile replaced as 'studio'" in r.stdout and (tmp_path / "copy.png").read_bytes() == stored.read_bytes()
    assert "from:    10 pictures" in run_cli("profiles", "show", "studio").stdout

    # restore by name = restore by the file
    outs = {}
    for how, given in (("name", "studio"), ("path", stored)):
        r = run_cli("restore", "--profile", given, "--method", "classic", "--scale", "1", "-o", tmp_path / how,
                    files[0])
        assert r.returncode == 0, r.stderr
        outs[how] = (tmp_path / how / "s0.png").read_bytes()
    assert outs["name"] == outs["path"]

    # pictures of another size: refused, naming the stored profile
    small = _save(np.zeros((50, 60, 3)), tmp_path / "small.png")
    r = run_cli("restore", "--profile", "studio", "-o", tmp_path / "small", small)
    assert r.returncode == 1
    assert "small.png is 60x50 but the stored profile 'studio' is 120x160" in _error(r), r.stderr

    r = run_cli("profiles", "remove", "studio")
    assert r.returncode == 0 and "removed the profile 'studio'" in r.stdout
    assert not stored.exists() and not (config / "profiles" / "studio.json").exists()
    r = run_cli("profiles", "list")
    assert r.returncode == 0 and r.stdout.startswith("no profile is stored yet")
    r = run_cli("profiles", "remove", "studio")
    assert r.returncode == 2 and "there is no stored profile called 'studio' (no profile is stored yet" in _error(r)


def test_a_profile_stored_without_a_record_is_listed_with_its_stamp(tmp_path, config, watermark):
    """A profile put in the folder by hand (or stored by a plugin whose record doesn't say where the
    stamp is): list and show read the stamp from the profile itself."""
    from core.estimate import stamp_extent
    from core.profile import Profile, save_profile
    alpha, color = watermark
    save_profile(Profile(alpha, color), tmp_path / "p.png")
    client.store_profile("byhand", (tmp_path / "p.png").read_bytes(), {"size": [120, 160]}, config=str(config))
    box, opacity = stamp_extent(load_profile(config / "profiles" / "byhand.png").alpha)
    said = f"stamp x {box[0]}-{box[2]}, y {box[1]}-{box[3]}, mean opacity {opacity:.2f}"
    r = run_cli("profiles", "list")
    assert r.returncode == 0 and r.stdout.startswith("byhand  120x160  " + said), r.stdout
    r = run_cli("profiles", "show", "byhand")
    assert r.returncode == 0 and said[6:] in r.stdout, r.stdout


def test_restore_profile_a_file_wins_and_neither_is_named_clearly(tmp_path, config, monkeypatch, stamped_set,
                                                                   watermark):
    from core.profile import Profile, profile_png, save_profile
    stamped, _ = stamped_set
    picture = _save(stamped[0], tmp_path / "p.png")
    alpha, colour = watermark
    client.store_profile("studio", profile_png(Profile(alpha * 0, colour)))  # stored: no watermark at all
    save_profile(Profile(alpha, colour), tmp_path / "studio")  # a file called like it: the true one
    monkeypatch.setenv("PYTHONPATH", ROOT)
    r = run_cli("restore", "--profile", "studio", "--method", "classic", "--scale", "1", "-o", tmp_path / "out",
                picture, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = np.asarray(Image.open(tmp_path / "out" / "p.png"), np.float32) / 255
    assert np.abs(res - stamped[0]).mean() > 0.01  # the file's watermark was removed, not the empty stored one

    r = run_cli("restore", "--profile", "studo", "-o", tmp_path / "out2", picture, cwd=tmp_path)
    assert r.returncode == 2
    assert "--profile studo: no such file, nor a stored profile of that name (stored profiles: studio)" in _error(r)
    assert not (tmp_path / "out2").exists()


def test_estimate_arguments_are_checked_before_measuring(tmp_path, config, stamped_set):
    stamped, _ = stamped_set
    files = [_save(s, tmp_path / f"s{i}.png") for i, s in enumerate(stamped[:3])]
    r = run_cli("estimate", *files)
    assert r.returncode == 2 and "-o P.png (a file), --save NAME (stored by name), or both" in _error(r)
    r = run_cli("estimate", "--save", "../evil", *files)
    assert r.returncode == 2 and "argument --save: a profile name is 1 to 64 letters" in _error(r)
    r = run_cli("estimate", "--save", "ok", "--preview", *files)
    assert r.returncode == 2 and "--preview writes beside the -o file" in _error(r)
    assert not config.exists()


_STORE_ON_PY27 = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import kirei_client as kc
config = sys.argv[2]
out = {"python": sys.version.split()[0], "bad": kc.profile_name_problem(u"a/b") is not None}
kc.store_profile(u"studio", b"\\x89PNG fake", {"made": "2026-12-06T10:00:00"}, config)
kc.store_profile("other", b"x", None, config)
out["names"] = kc.profile_names(config)
out["record"] = kc.profile_record("studio", config)
out["path"] = kc.profile_path("studio", config)
kc.remove_profile("other", config)
out["after"] = kc.profile_names(config)
try:
    kc.remove_profile(u"other", config)
except kc.KireiClientError as e:
    out["error"] = str(e)
print(json.dumps(out))
"""


def test_the_store_runs_on_python27(python27):
    """GIMP 2.10's Python 2.7 runs the same store (core/client.py, carried as kirei_client.py)."""
    import json
    import shutil
    shutil.copy(os.path.join(ROOT, "core", "client.py"), os.path.join(python27.host, "kirei_client.py"))
    with open(os.path.join(python27.host, "check.py"), "w") as fh:
        fh.write(_STORE_ON_PY27)
    inner = python27.inner
    p = python27.run([inner + "/check.py", inner, inner + "/cfg"], {})
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["python"].startswith("2.7") and out["bad"]
    assert out["names"] == ["other", "studio"] and out["after"] == ["studio"]
    assert out["record"] == {"made": "2026-12-06T10:00:00"} and out["path"] == inner + "/cfg/profiles/studio.png"
    assert out["error"] == "there is no stored profile called 'other'"
    with open(os.path.join(python27.host, "cfg", "profiles", "studio.png"), "rb") as fh:
        assert fh.read() == b"\x89PNG fake"
