"""install.py in temporary homes laid out like Linux (with Flatpak and Snap), macOS and Windows
profiles: what it installs, that a second run changes nothing, --dry-run, --uninstall, --check,
and the Krita zip imported by real Krita's own importer."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT

KRITARUNNER = shutil.which("kritarunner")

LAYOUTS = {
    "linux": {"gimp": [".config/GIMP/2.10", ".config/GIMP/3.0", ".var/app/org.gimp.GIMP/config/GIMP/3.0"],
              "krita": [(".local/share/krita", ".config/kritarc"),
                        ("snap/krita/current/.local/share/krita", "snap/krita/current/.config/kritarc")],
              "config": ".config/kirei"},
    "darwin": {"gimp": ["Library/Application Support/GIMP/3.0"],
               "krita": [("Library/Application Support/krita", "Library/Preferences/kritarc")],
               "config": "Library/Application Support/kirei"},
    "win32": {"gimp": ["AppData/Roaming/GIMP/2.10", "AppData/Roaming/GIMP/3.0"],
              "krita": [("AppData/Roaming/krita", "AppData/Local/kritarc")],
              "config": "AppData/Roaming/kirei"},
}


def _home(tmp_path, layout):
    home = tmp_path / "home"
    for d in LAYOUTS[layout]["gimp"]:
        (home / d).mkdir(parents=True)
        (home / d / "gimprc").write_text("(theme \"Dark\")\n")
    for d, rc in LAYOUTS[layout]["krita"]:
        (home / d).mkdir(parents=True)
        (home / rc).parent.mkdir(parents=True, exist_ok=True)
        (home / rc).write_text("[General]\nsomeSetting=1\n\n[python]\nenable_other=true\n")
    return home


def _env(home, layout):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KIREI_"))}
    env.update(HOME=str(home), KIREI_INSTALL_PLATFORM=layout)
    if layout == "win32":
        env.update(APPDATA=str(home / "AppData" / "Roaming"), LOCALAPPDATA=str(home / "AppData" / "Local"))
    return env


def _install(env, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--engine-python", sys.executable,
                           "--no-self-check", *args], env=env, capture_output=True, text=True, timeout=300)


def _snapshot(root):
    """Every file and folder under root: content hash and permission bits."""
    snap = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            snap[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = None
        for f in files:
            p = os.path.join(dirpath, f)
            snap[os.path.relpath(p, root)] = (hashlib.sha256(open(p, "rb").read()).hexdigest(),
                                              os.stat(p).st_mode & 0o777)
    return snap


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_install_again_and_uninstall(tmp_path, layout):
    home = _home(tmp_path, layout)
    env = _env(home, layout)
    before = _snapshot(home)
    r = _install(env)
    assert r.returncode == 0, r.stderr
    for d in LAYOUTS[layout]["gimp"]:
        plug = home / d / "plug-ins" / "kirei"
        assert os.access(plug / "kirei.py", os.X_OK) and os.access(plug / "kirei_gimp2.py", os.X_OK)
        client = plug / "kirei_client.py"
        assert not client.is_symlink() and client.read_bytes() == open(os.path.join(ROOT, "core", "client.py"),
                                                                         "rb").read()
    for d, rc in LAYOUTS[layout]["krita"]:
        assert (home / d / "pykrita" / "kirei" / "__init__.py").exists()
        assert (home / d / "pykrita" / "kirei.desktop").exists() and (home / d / "actions" / "kirei.action").exists()
        text = (home / rc).read_text()
        assert "enable_kirei=true" in text and "someSetting=1" in text and "enable_other=true" in text
    config = home / LAYOUTS[layout]["config"]
    settings = json.loads((config / "settings.json").read_text())
    assert settings == {"python": sys.executable, "project": ROOT}
    assert oct((config / "token").stat().st_mode & 0o777) == "0o600"

    installed = _snapshot(home)
    r = _install(env)
    assert r.returncode == 0 and "nothing changed" in r.stdout, r.stdout
    assert _snapshot(home) == installed

    r = subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--uninstall"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _snapshot(home) == before


def test_dry_run_writes_nothing(tmp_path):
    home = _home(tmp_path, "linux")
    before = _snapshot(home)
    r = _install(_env(home, "linux"), "--dry-run")
    assert r.returncode == 0, r.stderr
    planned = [ln for ln in r.stdout.splitlines() if ln.startswith("would ")]
    assert any(ln.endswith("plug-ins/kirei/kirei.py") for ln in planned)
    assert any("pykrita/kirei/__init__.py" in ln for ln in planned)
    assert any("enable the Kirei plugin" in ln for ln in planned)
    assert _snapshot(home) == before


def test_explicit_folders(tmp_path):
    home = _home(tmp_path, "linux")
    gimp, krita = tmp_path / "portable-gimp", tmp_path / "portable-krita"
    r = _install(_env(home, "linux"), "--gimp-dir", str(gimp), "--krita-dir", str(krita))
    assert r.returncode == 0, r.stderr
    assert (gimp / "plug-ins" / "kirei" / "kirei.py").exists() and (krita / "pykrita" / "kirei.desktop").exists()
    assert not (home / ".config" / "GIMP" / "3.0" / "plug-ins").exists()  # only where it was told


def test_check_finds_each_planted_fault(tmp_path):
    home = _home(tmp_path, "linux")
    env = _env(home, "linux")
    assert _install(env).returncode == 0
    check = [sys.executable, os.path.join(ROOT, "install.py"), "--check"]
    r = subprocess.run(check, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "no faults found" in r.stdout, r.stdout + r.stderr
    plug = home / ".config" / "GIMP" / "3.0" / "plug-ins" / "kirei" / "kirei.py"
    plug.chmod(0o644)
    rc = home / ".config" / "kritarc"
    rc.write_text(rc.read_text().replace("enable_kirei=true\n", ""))
    config = home / ".config" / "kirei"
    (config / "token").chmod(0o644)
    settings = json.loads((config / "settings.json").read_text())
    r = subprocess.run(check, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout
    assert r.returncode == 1
    assert f"{plug} is not executable" in out and f"chmod +x {plug}" in out
    assert "not enabled in " + str(rc) in out and "Python Plugin Manager" in out
    assert "can be read by others" in out and "chmod 600" in out
    settings["python"] = str(tmp_path / "gone" / "python")
    (config / "settings.json").write_text(json.dumps(settings))
    r = subprocess.run(check, env=env, capture_output=True, text=True, timeout=300)
    assert "engine's Python" in r.stdout and "is missing" in r.stdout
    (config / "settings.json").unlink()
    r = subprocess.run(check, env=env, capture_output=True, text=True, timeout=300)
    assert "no worker settings" in r.stdout


def test_check_finds_a_worker_that_wont_start(tmp_path):
    home = _home(tmp_path, "linux")
    env = _env(home, "linux")
    fake = tmp_path / "python"  # imports torch fine, but the worker dies at once
    fake.write_text(f"#!/bin/sh\ncase \"$*\" in *serve*) echo 'worker exploded' >&2; exit 3;; esac\n"
                    f"exec {sys.executable} \"$@\"\n")
    fake.chmod(0o755)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--engine-python", str(fake),
                        "--no-self-check"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--check"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "the worker won't start" in r.stdout and "worker exploded" in r.stdout, r.stdout


def test_package_imports_into_real_krita(tmp_path):
    zpath = tmp_path / "kirei-krita.zip"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--package", str(zpath)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    names = zipfile.ZipFile(zpath).namelist()
    assert {"kirei.desktop", "kirei/__init__.py", "kirei/kirei_client.py", "kirei/kirei.action"} <= set(names)
    importer = "/usr/share/krita/pykrita/plugin_importer/plugin_importer.py"
    if not (KRITARUNNER and os.path.exists(importer)):
        assert not os.environ.get("KIREI_REQUIRE_HOSTS"), "CI must provide Krita"
        pytest.skip("Krita is not installed")
    from tests.test_krita import krita_env
    resources = tmp_path / "resources"
    resources.mkdir()
    (tmp_path / "kr_import.py").write_text(f'''
import os, sys, json
def main(args):
    out = {{}}
    try:
        from plugin_importer.plugin_importer import PluginImporter
        out["imported"] = [p["name"] for p in PluginImporter({str(zpath)!r}, {str(resources)!r},
                                                             lambda p: True).import_all()]
        sys.path.insert(0, {str(resources / "pykrita")!r})
        import kirei
        from krita import Krita
        out["extension"] = any(type(e).__name__ == "KireiExtension" for e in Krita.instance().extensions())
    except BaseException as e:
        import traceback; out["error"] = traceback.format_exc()
    json.dump(out, open({str(tmp_path / "import.json")!r}, "w"))
    sys.stdout.flush(); os._exit(0)
''')
    env = krita_env(str(tmp_path), {"QT_QPA_PLATFORM": "offscreen",
                                    "PYTHONPATH": f"{tmp_path}:/usr/share/krita/pykrita"})
    subprocess.run(["timeout", "300", KRITARUNNER, "-s", "kr_import", "-f", "main"], env=env, cwd=str(tmp_path),
                   capture_output=True, text=True)
    res = json.load(open(tmp_path / "import.json"))
    assert "error" not in res, res["error"]
    assert res["imported"] == ["kirei"] and res["extension"]
    assert (resources / "pykrita" / "kirei.desktop").exists() and (resources / "actions" / "kirei.action").exists()
