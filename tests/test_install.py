"""install.py in temporary homes laid out like Linux (with Flatpak and Snap), macOS and Windows
profiles: what it installs, that a second run changes nothing, --dry-run, --uninstall, --check
(every installed file and the weights against their records), --krita-dir, that no worker is left
running by any of it (a worker the user had is left alone), and the Krita zip imported by real
Krita's own importer."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest

import install
from core.models import DEFAULT_MODEL
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


def _ours(tmp_path):
    """{pid: command line} of live processes (not zombies) whose command line names this test's folder:
    workers started for its temporary home's config, whoever started them."""
    mine, found = str(tmp_path) + os.sep, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                command = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if mine in command and state != "Z":
            found[int(pid)] = command
    return found


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _end(pid):
    """Kill a process and wait until it is gone: reaped when it is pytest's (the subreaper of what the
    tests start, on Linux); else until it is a zombie or no more."""
    _kill(pid)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        deadline = time.monotonic() + 60
        while install._command_line(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_process_left(tmp_path):
    """No test here may leave a process behind (install.py's self-check and --check start workers)."""
    yield
    if not os.path.isdir("/proc/self"):
        return
    left = _ours(tmp_path)
    for pid in left:
        _kill(pid)
    assert not left, f"processes left running: {left}"


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


def _kirei_common():
    """The GIMP plug-ins' shared module (its menu path and label)."""
    sys.path.insert(0, install.GIMP_SRC)
    try:
        import kirei_common
    finally:
        sys.path.remove(install.GIMP_SRC)
    return kirei_common


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_install_again_and_uninstall(tmp_path, layout):
    home = _home(tmp_path, layout)
    env = _env(home, layout)
    before = _snapshot(home)
    r = _install(env)
    assert r.returncode == 0, r.stderr
    versions = {"3" if d.endswith("3.0") else "2.10" for d in LAYOUTS[layout]["gimp"]}
    said = [ln for ln in r.stdout.splitlines() if ln.startswith("GIMP ") and "restart it" in ln]
    assert {v for ln in said for v in ln.partition(":")[0][5:].split(" and ")} == versions, r.stdout
    assert all("Filters > Enhance > " + _kirei_common().MENU_LABEL in ln for ln in said), said
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
    assert oct(config.stat().st_mode & 0o777) == "0o700"  # it holds the token

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


def _check(env, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--check", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_check_reports_each_missing_or_changed_file(tmp_path):
    home = _home(tmp_path, "linux")
    env = _env(home, "linux")
    portable = tmp_path / "portable-gimp"
    assert _install(env).returncode == 0 and _install(env, "--gimp-dir", str(portable)).returncode == 0
    gone = home / ".config" / "GIMP" / "3.0" / "plug-ins" / "kirei" / "kirei_client.py"
    gone.unlink()
    changed = home / ".local" / "share" / "krita" / "pykrita" / "kirei" / "__init__.py"
    changed.write_text(changed.read_text() + "\n# edited\n")
    portable_gone = portable / "plug-ins" / "kirei" / "kirei_gimp2.py"
    portable_gone.unlink()
    r = _check(env)
    faults = [ln for ln in r.stdout.splitlines() if ln.startswith("fault: ")]
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"fault: {gone} is missing: run `python3 install.py` to put it back" in faults
    assert (f"fault: {changed} is not the file that was installed (changed or damaged): "
            "run `python3 install.py` to put it back") in faults
    assert (f"fault: {portable_gone} is missing: run `python3 install.py --gimp-dir {portable}` "
            "to put it back") in faults
    assert len(faults) == 3, faults
    assert _install(env).returncode == 0 and _install(env, "--gimp-dir", str(portable)).returncode == 0
    places = install.Places(env)
    assert install.file_faults(places, install._load_manifest(places)) == []
    shutil.rmtree(portable)  # that GIMP went: one line, not one per file
    assert install.file_faults(places, install._load_manifest(places)) == [
        f"the GIMP folder {portable} that Kirei was installed into is gone: if that was on purpose, "
        "`python3 install.py --uninstall` and then `python3 install.py` forget it"]


def test_a_file_a_later_version_drops_is_no_longer_checked(tmp_path, monkeypatch):
    home = _home(tmp_path, "linux")
    places = install.Places(_env(home, "linux"))
    src, gimp = tmp_path / "src", tmp_path / "gimp"
    src.mkdir()
    for name in install.EXECUTABLES + ("old.py",):
        (src / name).write_text(f"# {name}\n")
    monkeypatch.setattr(install, "GIMP_SRC", str(src))
    quiet = dict(say=lambda *a: None)
    install.install(places, [str(gimp)], [], sys.executable, **quiet)
    (src / "old.py").unlink()  # the next version has no old.py
    install.install(places, [str(gimp)], [], sys.executable, **quiet)
    manifest = install._load_manifest(places)
    folder = gimp / "plug-ins" / "kirei"
    assert sorted(manifest["plugins"][str(gimp)]["sha256"]) == [str(folder / n) for n in sorted(install.EXECUTABLES)]
    (folder / "old.py").unlink()  # the user tidies up
    assert install.file_faults(places, manifest) == []
    assert str(folder / "old.py") in manifest["files"]  # still removed by --uninstall were it there


def _weights(folder, data, digest, name=DEFAULT_MODEL):
    """A fake shipped model folder/core/weights/name.*: the bytes `data` and a record naming `digest`."""
    weights = folder / "core" / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    (weights / (name + ".safetensors")).write_bytes(data)
    record = {"architecture": "kirei-2"} if digest is None else {"architecture": "kirei-2", "sha256": digest}
    (weights / (name + ".json")).write_text(json.dumps(record))
    return weights / (name + ".safetensors")


def test_check_verifies_the_weights(tmp_path):
    assert install.weights_faults(ROOT) == []  # the shipped ones
    project = tmp_path / "project"
    data = os.urandom(4096)
    weights = _weights(project, data, hashlib.sha256(data).hexdigest())
    assert install.weights_faults(str(project)) == []
    weights.write_bytes(data[:1000])  # truncated
    [fault] = install.weights_faults(str(project))
    assert f"{weights} are damaged (not the sha256 in " in fault and "checkout -- core/weights" in fault
    weights.unlink()
    [fault] = install.weights_faults(str(project))
    assert f"{weights} are missing" in fault
    _weights(project, data[:1000], None)
    assert install.weights_faults(str(project)) == []  # a record without a sha256 can't say (as on load)
    fast = _weights(project, data, hashlib.sha256(data).hexdigest(), name="kirei-fast")
    assert install.weights_faults(str(project)) == []
    fast.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # every model's record is checked, not only the default's
    [fault] = install.weights_faults(str(project))
    assert f"{fast} are damaged (not the sha256 in " in fault
    fast.unlink()
    fast.with_suffix(".json").unlink()

    # through --check, for the engine named in the worker's settings
    home = _home(tmp_path, "linux")
    env = _env(home, "linux")
    assert _install(env).returncode == 0
    _weights(project, data[:1000] + b"\0" * 3096, hashlib.sha256(data).hexdigest())  # a damaged block
    settings = home / ".config" / "kirei" / "settings.json"
    settings.write_text(json.dumps(dict(json.loads(settings.read_text()), project=str(project))))
    r = _check(env)
    assert r.returncode == 1 and f"fault: the model's weights {weights} are damaged" in r.stdout, r.stdout


def test_install_and_the_engine_judge_the_weights_alike(tmp_path):
    """One check of the weights against their record (core/digest.py), for install.py and the engine."""
    from core import weights_io
    from core.errors import KireiError
    project = tmp_path / "project"
    data = os.urandom(4096)
    weights = _weights(project, data, hashlib.sha256(data).hexdigest())
    record = weights.with_suffix(".json")
    for version, damage in enumerate((lambda: weights.write_bytes(data[:1000]),
                                      lambda: (weights.write_bytes(data), record.write_text("{")))):
        damage()
        os.utime(weights, ns=(version + 1, version + 1))  # another version of the file for the engine
        [fault] = install.weights_faults(str(project))
        with pytest.raises(KireiError) as engine:
            weights_io.verify(str(weights))
        said = f"the model's weights {weights} "
        assert fault.startswith(said) and str(engine.value).startswith(said)
        assert fault[len(said):].partition(": get them")[0] == str(engine.value)[len(said):].partition("; ")[0]


@pytest.mark.skipif(os.name == "nt", reason="POSIX processes")
@pytest.mark.parametrize("proc", [True, False], ids=["proc", "ps"])
def test_command_line_of_a_process(monkeypatch, proc):
    """What tells install.py that a recorded pid is still its worker: /proc on Linux, ps elsewhere."""
    if not proc:
        if not shutil.which("ps"):
            pytest.skip("no ps on this machine (a minimal Linux): install.py reads /proc here")
        isdir = os.path.isdir
        monkeypatch.setattr(install.os.path, "isdir", lambda p: p != "/proc/self" and isdir(p))
    child = subprocess.Popen([sys.executable, "-c", "import time; print(1, flush=True); time.sleep(600)", "marker"],
                             stdout=subprocess.PIPE)
    try:
        child.stdout.readline()  # it runs (its exec is over, so its command line is the new one)
        assert install._command_line(child.pid).split()[-1] == "marker"
    finally:
        child.kill()
        child.stdout.close()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # it has exited, and is a zombie until waited for
    assert install._command_line(child.pid) is None  # already gone for install.py
    child.wait()
    assert install._command_line(child.pid) is None


def _worker_pid(home):
    return json.loads((home / ".config" / "kirei" / "worker.json").read_text())["pid"]


@pytest.fixture
def users_worker(tmp_path):
    """A worker the user already has running for the temporary home (started by the plugins' client)."""
    started = []

    def start(env):
        code = "import sys; sys.path.insert(0, sys.argv[1]); from core import client; client.Client().health()"
        subprocess.run([sys.executable, "-c", code, ROOT], env=env, check=True, timeout=300)
        started.append(_worker_pid(tmp_path / "home"))
        return started[-1]
    yield start
    for pid in started:
        _end(pid)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_self_check_and_check_stop_only_the_worker_they_start(tmp_path, users_worker):
    home = _home(tmp_path, "linux")
    env = _env(home, "linux")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--engine-python", sys.executable],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "self-check: 233x330 -> 466x660 through the worker" in r.stdout, r.stdout + r.stderr
    assert _ours(tmp_path) == {}
    r = _check(env)
    assert r.returncode == 0 and "no faults found" in r.stdout, r.stdout + r.stderr
    assert _ours(tmp_path) == {}
    assert not (home / ".config" / "kirei" / "worker.json").exists()

    pid = users_worker(env)
    r = _check(env)
    assert r.returncode == 0 and "no faults found" in r.stdout, r.stdout + r.stderr
    assert list(_ours(tmp_path)) == [pid] and _worker_pid(home) == pid  # reused, and left running


class _WindowsOs:
    """install.py's view of os on Windows: os.name "nt" (so no command line of a process can be read)."""
    name = "nt"

    def __getattr__(self, attr):
        return getattr(os, attr)


@pytest.fixture
def sleepers():
    """Start stand-in worker processes; each is killed and waited for at the end."""
    started = []

    def start():
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]))
        return started[-1]
    yield start
    for p in started:
        p.kill()
        p.wait()


def test_on_windows_the_worker_started_for_a_check_is_stopped(tmp_path, monkeypatch, sleepers):
    places = install.Places(_env(_home(tmp_path, "linux"), "linux"))
    os.makedirs(places.config_dir())
    record = install._worker_file(places)
    killed, run = [], subprocess.run

    def taskkill(args, *a, **kw):  # what taskkill /PID N /T /F does, here
        if args[0] != "taskkill":
            return run(args, *a, **kw)
        killed.append(args)
        os.kill(int(args[2]), signal.SIGKILL)
        return subprocess.CompletedProcess(args, 0, "", "")
    monkeypatch.setattr(install, "os", _WindowsOs())
    monkeypatch.setattr(subprocess, "run", taskkill)

    def client_starts(pid):  # the client's code as it records a worker it started
        return f"open({record!r}, 'w').write({json.dumps({'pid': pid, 'token_file': 't'})!r})"

    users = sleepers()  # a worker the user had: reused, left running, still recorded
    with open(record, "w") as fh:
        json.dump({"pid": users.pid, "token_file": "t"}, fh)
    assert install._through_worker(sys.executable, places, "print('reused')", 60) == (True, "reused")
    assert killed == [] and users.poll() is None and json.loads(open(record).read())["pid"] == users.pid

    ours = sleepers()  # the client starts one (the user's record had gone stale, say)
    assert install._through_worker(sys.executable, places, client_starts(ours.pid), 60)[0]
    assert killed == [["taskkill", "/PID", str(ours.pid), "/T", "/F"]]
    assert ours.wait(timeout=60) == -signal.SIGKILL and not os.path.exists(record)
    assert users.poll() is None


def test_check_says_when_the_worker_does_not_answer(tmp_path, monkeypatch):
    home = _home(tmp_path, "linux")
    env = _env(home, "linux")
    silent = tmp_path / "python"  # imports torch fine, then never answers
    silent.write_text(f"#!/bin/sh\ncase \"$*\" in *'import torch'*) exec {sys.executable} \"$@\";; esac\n"
                      "exec sleep 600\n")
    silent.chmod(0o755)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--engine-python", str(silent),
                        "--no-self-check"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    monkeypatch.setattr(install, "CHECK_TIMEOUT", 1)
    said = []
    places = install.Places(env)
    assert install.check(places, [], [], say=said.append) == 1
    assert said == ["fault: the worker won't start: no answer within 1 s; see "
                    f"{places.config_dir()}/worker.log"]


def test_krita_dir_leaves_other_kritarcs_alone(tmp_path):
    home = _home(tmp_path, "linux")
    env = _env(home, "linux")
    before = _snapshot(home)
    portable = tmp_path / "portable-krita"
    gimp = tmp_path / "portable-gimp"
    args = ("--krita-dir", str(portable), "--gimp-dir", str(gimp))
    r = _install(env, "--dry-run", *args)
    assert r.returncode == 0 and "enable the Kirei plugin" not in r.stdout, r.stdout
    assert f"Krita: {portable} is not a Krita folder install.py knows" in r.stdout
    r = _install(env, *args)
    assert r.returncode == 0 and "Python Plugin Manager" in r.stdout, r.stdout + r.stderr
    assert (portable / "pykrita" / "kirei" / "__init__.py").exists()
    home_rc, snap_rc = ".config/kritarc", "snap/krita/current/.config/kritarc"
    assert _snapshot(home)[home_rc] == before[home_rc] and _snapshot(home)[snap_rc] == before[snap_rc]
    r = _check(env, *args)
    assert r.returncode == 0 and "no faults found" in r.stdout, r.stdout + r.stderr
    assert _snapshot(home)[home_rc] == before[home_rc]

    # a Krita folder install.py knows (here Snap's) is enabled in that Krita's own kritarc only
    snap = home / "snap" / "krita" / "current" / ".local" / "share" / "krita"
    r = _install(env, "--krita-dir", str(snap), "--gimp-dir", str(gimp))
    assert r.returncode == 0 and f"enabling the Kirei plugin in {home / snap_rc}" in r.stdout, r.stdout
    assert "enable_kirei=true" in (home / snap_rc).read_text()
    assert _snapshot(home)[home_rc] == before[home_rc]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--uninstall"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and _snapshot(home) == before, r.stdout + r.stderr


# ---------------------------------------------------------------- the torch build (no network: a fake pip)
FAKE_PYTHON = r'''#!{python}
"""The engine's Python as install.py drives it, with a pip that answers from the scenario's JSON."""
import json, os, sys
sc = json.load(open(os.environ["FAKE_SCENARIO"]))
args = sys.argv[1:]
with open(sc["calls"], "a") as fh:
    fh.write(json.dumps(args) + "\n")
if args[:1] == ["-c"]:
    if args[1] == "import torch":
        sys.exit(0 if os.path.exists(sc["torch_marker"]) else 1)
    print(json.dumps(sc["probe"]))
    sys.exit(0)
if args[:3] == ["-m", "pip", "--version"]:
    print("pip %s from /fake (python 3)" % sc.get("pip", "23.2.1"))
    sys.exit(0)
if "--dry-run" in args:
    index = args[args.index("--index-url") + 1] if "--index-url" in args else None
    answer = sc["indexes"][index or "default"]
    if answer is None:  # pip's own words when the index's host doesn't resolve
        sys.stderr.write("WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError("
                         "...: Failed to establish a new connection: [Errno -2] Name or service not known')': "
                         "/%s/torch/\nERROR: No matching distribution found for torch>=2.4\n"
                         % (index or "").split("/", 3)[-1])
        sys.exit(1)
    if index and sc.get("index_warns"):  # unreachable, but pip's own settings name a copy of the build
        sys.stderr.write("WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError("
                         "...: [Errno -2] Name or service not known')': /%s/torch/\n" % index.split("/", 3)[-1])
    report = {{"install": [{{"metadata": {{"name": n, "version": v}}, "download_info": {{"url": u}}}}
                          for n, v, u in answer]}}
    json.dump(report, open(args[args.index("--report") + 1], "w"))
    sys.exit(0)
if args[:3] == ["-m", "pip", "install"] and "--editable" not in args and "--upgrade" not in args:
    open(sc["torch_marker"], "w").close()
sys.exit(0)
'''
CPU_INDEX = install.TORCH_INDEX["cpu"]


def _wheel(tmp_path, name, size):
    """A package file of `size` bytes (sparse: no room taken) and its file:// URL."""
    path = tmp_path / "wheels" / name
    path.parent.mkdir(exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path.as_uri()


@pytest.fixture
def fake_engine(tmp_path, monkeypatch):
    """(python, scenario(**answers), calls()): a fake engine Python whose pip answers dry runs from the
    scenario (indexes: {index URL or "default": [(name, version, url)] or None for unreachable}),
    records every call, and 'installs' torch (then `import torch` works; the probe answers `probe`)."""
    python = tmp_path / "engine" / "python"
    python.parent.mkdir()
    python.write_text(FAKE_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    calls, marker, scenario_file = tmp_path / "calls.jsonl", tmp_path / "torch-installed", tmp_path / "scenario.json"
    monkeypatch.setenv("FAKE_SCENARIO", str(scenario_file))
    monkeypatch.delenv("KIREI_TORCH_SPEC", raising=False)
    cpu = [("torch", "2.13.0+cpu", _wheel(tmp_path, "torch-cpu.whl", 191_000_000)),
           ("sympy", "1.14.0", _wheel(tmp_path, "sympy.whl", 6_300_000))]
    pypi_cuda = [("torch", "2.14.1", _wheel(tmp_path, "torch.whl", 880_000_000)),
                 ("nvidia-cudnn-cu13", "9.24", _wheel(tmp_path, "cudnn.whl", 1_100_000_000)),
                 ("nvidia-cublas", "13.1", _wheel(tmp_path, "cublas.whl", 1_000_000_000))]

    def scenario(indexes=None, probe=None, **more):
        sc = {"calls": str(calls), "torch_marker": str(marker), "indexes": indexes or {CPU_INDEX: cpu},
              "probe": probe or {"version": "2.13.0+cpu", "cuda": None, "hip": None, "gpu": False, "mps": False,
                                 "mps_built": False}, **more}
        scenario_file.write_text(json.dumps(sc))

    def recorded():
        return [json.loads(ln) for ln in calls.read_text().splitlines()] if calls.exists() else []
    scenario.cpu, scenario.pypi_cuda = cpu, pypi_cuda
    return str(python), scenario, recorded


def _installs(calls):
    """The real (not dry-run) pip installs of torch among the recorded calls."""
    return [c for c in calls if c[:3] == ["-m", "pip", "install"] and "--dry-run" not in c
            and "--editable" not in c and "--upgrade" not in c]


def test_the_chosen_build_comes_from_its_index_with_its_size_said(fake_engine, capsys):
    python, scenario, calls = fake_engine
    scenario()
    said = []
    plan = install._install_torch(python, "cpu", said.append, ask=lambda q: pytest.fail("nothing to ask"))
    assert plan.torch == "2.13.0+cpu" and plan.build() == "cpu"
    assert said == ["torch: downloading torch 2.13.0+cpu, 2 packages in all: 197.3 MB to download"]
    [pip] = _installs(calls())
    assert pip[pip.index("--index-url") + 1] == CPU_INDEX and "--extra-index-url" not in pip  # PyPI can't slip in
    assert "torch==2.13.0+cpu" in pip  # what was said is what is installed
    assert "PyPI" not in capsys.readouterr().out


def test_a_copy_of_the_build_found_without_the_index_is_installed_without_waiting_on_it(fake_engine, capsys):
    python, scenario, calls = fake_engine
    scenario(index_warns=True)  # the index can't be reached, yet pip's settings (find-links) hold the CPU build
    said = []
    install._install_torch(python, "cpu", said.append, ask=lambda q: pytest.fail("nothing to ask"))
    assert said == ["torch: downloading torch 2.13.0+cpu, 2 packages in all: 197.3 MB to download"]
    [pip] = _installs(calls())
    assert "--index-url" not in pip and "torch==2.13.0+cpu" in pip  # pinned: PyPI's newer build can't slip in
    assert capsys.readouterr().out == ""


def test_an_unreachable_index_is_said_with_the_size_of_what_pip_takes_instead(fake_engine, capsys):
    python, scenario, calls = fake_engine
    scenario(indexes={CPU_INDEX: None, "default": scenario.pypi_cuda})
    asked = []
    with pytest.raises(SystemExit) as stop:  # the user says no
        install._install_torch(python, "cpu", lambda *a: None, ask=lambda q: asked.append(q) or False)
    out = capsys.readouterr().out
    assert f"PyTorch's index of the cpu build ({CPU_INDEX}) can't be reached (its name doesn't resolve)" in out
    assert ("pip would take torch from PyPI (and any index pip's own settings add): torch 2.14.1 with NVIDIA's "
            "CUDA libraries (2 packages), 3 packages in all: "
            "3.0 GB to download") in out
    assert "once download.pytorch.org can be reached" in out and "`python3 install.py --torch pypi`" in out
    assert asked == ["Download PyPI's build now (3.0 GB)? [y/N] "]
    assert "--torch pypi" in str(stop.value) and _installs(calls()) == []  # nothing downloaded

    scenario(indexes={CPU_INDEX: None, "default": scenario.pypi_cuda})
    with pytest.raises(SystemExit):  # no terminal to ask on: stop, never download gigabytes unasked
        install._install_torch(python, "cpu", lambda *a: None, ask=None)
    assert _installs(calls()) == []

    plan = install._install_torch(python, "cpu", lambda *a: None, ask=lambda q: True)  # yes
    assert plan.build() == "cuda"
    [pip] = _installs(calls())
    assert "--index-url" not in pip and "torch==2.14.1" in pip


@pytest.mark.parametrize("build, pypi", [("cuda", "pypi_cuda"), ("cpu", "small")], ids=["cuda-wanted", "pypi-is-small"])
def test_a_fallback_that_is_what_was_wanted_goes_on_after_saying_so(fake_engine, capsys, build, pypi):
    python, scenario, calls = fake_engine
    index = install.TORCH_INDEX[build]
    default = scenario.pypi_cuda if pypi == "pypi_cuda" else [("torch", "2.14.1", scenario.cpu[0][2])]
    scenario(indexes={index: None, "default": default})
    install._install_torch(python, build, lambda *a: None, ask=lambda q: pytest.fail("asked"))
    assert f"PyTorch's index of the {build} build ({index}) can't be reached" in capsys.readouterr().out
    [pip] = _installs(calls())
    assert "--index-url" not in pip


def test_no_torch_anywhere_stops_with_a_reason(fake_engine, capsys):
    python, scenario, calls = fake_engine
    scenario(indexes={CPU_INDEX: None, "default": None})
    with pytest.raises(SystemExit) as stop:
        install._install_torch(python, "cpu", lambda *a: None, ask=lambda q: True)
    assert "no torch to install" in str(stop.value) and "pip finds no torch" in capsys.readouterr().out
    assert _installs(calls()) == []


def test_an_old_pip_is_upgraded_so_that_it_can_say_what_it_takes(fake_engine):
    python, scenario, calls = fake_engine
    scenario(pip="22.0.2")
    said = []
    install._install_torch(python, "cpu", said.append)
    upgrade = ["-m", "pip", "install", "--quiet", "--upgrade", "pip"]
    assert upgrade in calls() and calls().index(upgrade) < calls().index(_installs(calls())[0])
    assert said[0].startswith("upgrading the environment's pip")
    scenario(pip="23.2.1")
    calls_before = len(calls())
    install._install_torch(python, "cpu", said.append)
    assert upgrade not in calls()[calls_before:]


def test_kirei_torch_spec_uses_pips_own_settings(fake_engine, monkeypatch):
    python, scenario, calls = fake_engine
    scenario(indexes={"default": scenario.cpu})
    monkeypatch.setenv("KIREI_TORCH_SPEC", "torch==2.13.0")
    install._install_torch(python, "cpu", lambda *a: None)
    [pip] = _installs(calls())
    assert "torch==2.13.0+cpu" in pip and "--index-url" not in pip
    assert ["torch==2.13.0"] == [a for c in calls() if "--dry-run" in c for a in c if a.startswith("torch")]


@pytest.mark.parametrize("stderr, said", [
    ("WARNING: Retrying ... NewConnectionError(... [Errno -2] Name or service not known)': /whl/cpu/torch/",
     "can't be reached (its name doesn't resolve)"),
    ("WARNING: Retrying ... ConnectTimeoutError(... 'Connection to download.pytorch.org timed out.')': /whl/cpu/x/",
     "can't be reached (it doesn't answer)"),
    (f"Could not fetch URL {CPU_INDEX}/torch/: ... SSLError(... CERTIFICATE_VERIFY_FAILED ...)",
     "can't be reached (its certificate isn't trusted here)"),
    ("WARNING: Retrying ... NewConnectionError(... Name or service not known)': /simple/torch/",  # another index
     "has no torch for this machine and Python"),
    ("ERROR: No matching distribution found for torch>=2.4", "has no torch for this machine and Python"),
])
def test_index_problem_in_pips_words(stderr, said):
    assert install.index_problem("cpu", CPU_INDEX, None, stderr) == said


def test_index_problem_judges_what_pip_would_take():
    def plan(version, url, *more):
        return install.Plan({"install": [{"metadata": {"name": n, "version": v}, "download_info": {"url": u}}
                                         for n, v, u in [("torch", version, url), *more]]}, lambda u: 1)
    assert install.index_problem("cpu", CPU_INDEX, plan("2.13.0+cpu", "file:///opt/wheels/t.whl"), "") is None
    assert install.index_problem("cpu", CPU_INDEX, plan("2.5.1", "https://download.pytorch.org/whl/cpu/t.whl"),
                                 "") is None  # macOS wheels carry no label: the index's own is fine
    other = plan("2.14.1", "https://files.pythonhosted.org/t.whl", ("nvidia-cublas", "13", "https://x/c.whl"))
    assert install.index_problem("cpu", CPU_INDEX, other, "").startswith(
        "was passed over: pip would take torch 2.14.1 from another index")
    cu = install.TORCH_INDEX["cuda"]
    assert install.index_problem("cuda", cu, plan("2.13.0+cu126", "https://download-r2.pytorch.org/t.whl"), "") is None


@pytest.mark.parametrize("version, libs, build", [("2.13.0+cpu", 0, "cpu"), ("2.13.0+cu126", 0, "cuda"),
                                                  ("2.5.1+rocm6.2", 0, "rocm"), ("2.14.1", 2, "cuda"),
                                                  ("2.14.1", 0, "default")])
def test_plan_build_and_size(version, libs, build):
    items = [("torch", version, "a")] + [(f"nvidia-lib{i}", "1", f"n{i}") for i in range(libs)] + [("sympy", "1", "s")]
    sizes = {"a": 190_000_000, "s": None, **{f"n{i}": 1_000_000_000 for i in range(libs)}}
    plan = install.Plan({"install": [{"metadata": {"name": n, "version": v}, "download_info": {"url": u}}
                                     for n, v, u in items]}, sizes.get)
    assert plan.build() == build and plan.cuda_libs == libs and plan.unsized == 1
    assert plan.bytes == 190_000_000 + libs * 1_000_000_000
    assert plan.describe().endswith(f"at least {install.human_bytes(plan.bytes)} (1 of the {len(items)} sizes "
                                    "unknown) to download")


@pytest.mark.parametrize("probe, build, said", [
    ({"version": "2.13.0+cpu"}, "cpu", "torch 2.13.0+cpu, the CPU build: it runs on the CPU"),
    ({"version": "2.14.1", "cuda": "13.0", "gpu": False}, "cuda",
     "torch 2.14.1, the CUDA 13.0 build: no NVIDIA GPU can be used here, so it runs on the CPU"),
    ({"version": "2.14.1", "cuda": "12.6", "gpu": True}, "cuda",
     "torch 2.14.1, the CUDA 12.6 build: it uses the NVIDIA GPU"),
    ({"version": "2.5.1+rocm6.2", "hip": "6.2.4", "gpu": True}, "rocm",
     "torch 2.5.1+rocm6.2, the ROCm 6.2.4 build: it uses the AMD GPU"),
    ({"version": "2.9.0", "mps_built": True, "mps": True}, "mps",
     "torch 2.9.0, the build for Apple silicon: it uses the GPU through MPS"),
    ({"version": "2.9.0", "mps_built": True, "mps": False}, "mps",
     "torch 2.9.0, the build for Apple silicon: MPS can't be used here, so it runs on the CPU"),
])
def test_the_installed_build_said_plainly(probe, build, said):
    assert install.describe_torch(probe) == (build, said)


def test_installed_message_says_when_it_is_not_the_build_chosen():
    cuda = {"version": "2.14.1", "cuda": "13.0", "gpu": False}
    text = install.installed_message(cuda, "cpu", 5_600_000_000)
    assert text.startswith("torch 2.14.1, the CUDA 13.0 build: no NVIDIA GPU can be used here")
    assert "the engine's environment takes 5.6 GB" in text
    assert "That is not the cpu build chosen" in text and "--torch cpu" in text
    assert "not the" not in install.installed_message(cuda, "cuda", 5_600_000_000)
    assert "not the" not in install.installed_message(cuda, "pypi", 5_600_000_000)
    assert "can't be imported" in install.installed_message(None, "cpu", 0)


def test_a_new_environment_says_which_build_it_got(fake_engine, tmp_path, monkeypatch, capsys):
    """ensure_core_env end to end on the fake engine: torch from the index, the dependencies, then what
    torch itself says it is, and how much room the environment takes."""
    python, scenario, calls = fake_engine
    scenario()
    venv_dir = os.path.dirname(python)
    monkeypatch.setattr(install, "VENV", venv_dir)
    monkeypatch.setattr(install, "STAMP", os.path.join(venv_dir, ".kirei-installed"))
    monkeypatch.setattr(install, "venv_python", lambda: python)
    monkeypatch.setattr(install, "choose_torch", lambda requested: ("cpu", "no NVIDIA GPU found"))
    assert install.ensure_core_env(ask=lambda q: pytest.fail("asked")) == python
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "install: torch: the cpu build (no NVIDIA GPU found; --torch cpu|cuda|mps|pypi chooses another)"
    assert out[-1].startswith("install: torch 2.13.0+cpu, the CPU build: it runs on the CPU; the engine's "
                              "environment takes ")
    assert any("--editable" in c for c in calls())

    # torch is there now: an explicit --torch of another build says that it stays, and changes nothing
    n = len(calls())
    install.ensure_core_env(torch="cuda")
    out = capsys.readouterr().out
    assert "the CPU build: it runs on the CPU; it stays: --torch chooses the build of a new environment" in out
    assert _installs(calls()[n:]) == []
    install.ensure_core_env(torch="cpu")
    assert "it stays" not in capsys.readouterr().out


# ---------------------------------------------------------------- where the plugins appear in GIMP
def test_gimp_menu_entries_follow_the_plug_ins_sources(tmp_path):
    """Read from the sources: labels and paths through the shared module's names, both plug-in styles."""
    (tmp_path / "common.py").write_text('MENU = "<Image>/Filters/Enhance"\nRESTORE = "Kirei: Restore..."\n')
    (tmp_path / "gimp3.py").write_text(
        "from common import MENU, RESTORE\nMEASURE = 'Kirei: Measure...'\n"
        "def create(name):\n"
        "    proc = make(name)\n"
        "    if name == 'restore':\n"
        "        proc.set_menu_label(RESTORE)\n"
        "    else:\n"
        "        proc.set_menu_label(MEASURE)\n"
        "    proc.add_menu_path(MENU)\n"
        "    other.set_menu_label('Kirei: Batch')\n"
        "    other.add_menu_path('<Image>/File')\n"
        "    other.add_menu_path('<Image>/Filters/Batch')\n")
    assert install.gimp_menu_entries(str(tmp_path / "gimp3.py")) == [
        ("<Image>/Filters/Enhance", "Kirei: Restore..."), ("<Image>/Filters/Enhance", "Kirei: Measure..."),
        ("<Image>/File", "Kirei: Batch"), ("<Image>/Filters/Batch", "Kirei: Batch")]
    (tmp_path / "gimp2.py").write_text(
        "from common import *\n"
        "register('a', 'b', 'c', 'd', 'e', 'f', RESTORE, 'RGB*', [], [], run, menu=MENU)\n"
        "register('a', 'b', 'c', 'd', 'e', 'f', '<Image>/Filters/Misc/Kirei old', 'RGB*', [], [], run)\n")
    assert install.gimp_menu_entries(str(tmp_path / "gimp2.py")) == [
        ("<Image>/Filters/Enhance", "Kirei: Restore..."), ("<Image>/Filters/Misc", "Kirei old")]
    assert install.menu_words("<Image>/Filters/Enhance", "Kirei: Restore...") == "Filters > Enhance > Kirei: Restore..."


def test_gimp_menu_entries_of_the_real_plug_ins():
    kirei_common = _kirei_common()
    restore = (kirei_common.MENU_PATH, kirei_common.MENU_LABEL)
    measure = ("<Image>/Filters/Enhance", "Kirei: Measure Watermark...")  # GIMP 3 only
    assert sorted(install.gimp_menu_entries(os.path.join(install.GIMP_SRC, "kirei.py"))) == [measure, restore]
    assert install.gimp_menu_entries(os.path.join(install.GIMP_SRC, "kirei_gimp2.py")) == [restore]
    assert [v for v, _ in install.GIMP_PLUGINS] == ["3", "2.10"]  # the two checked above


def test_gimp_where_names_each_gimp_version_installed_into():
    entries = {"3": [("<Image>/Filters/Enhance", "K: Restore"), ("<Image>/Filters/Enhance", "K: Measure")],
               "2.10": [("<Image>/Filters/Enhance", "K: Restore")]}
    gimp3 = ("GIMP 3: restart it; Kirei's menu entries are Filters > Enhance > K: Restore and "
             "Filters > Enhance > K: Measure")
    assert install.gimp_where(["/h/GIMP/3.0"], entries) == [gimp3]
    assert install.gimp_where(["/h/GIMP/2.10", "/h/GIMP/3.2"], entries) == [
        gimp3, "GIMP 2.10: restart it; Kirei's menu entry is Filters > Enhance > K: Restore"]
    same = {"3": entries["2.10"], "2.10": entries["2.10"]}
    assert install.gimp_where(["/portable-gimp"], same) == [  # a folder of unknown version: either
        "GIMP 3 and 2.10: restart it; Kirei's menu entry is Filters > Enhance > K: Restore"]
    assert install.gimp_where(["/h/GIMP/2.10"], {"3": []}) == ["GIMP 2.10: restart it; no menu entry was found in "
                                                               "the plug-in"]
