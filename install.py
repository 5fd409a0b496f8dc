#!/usr/bin/env python3
"""Install Kirei: the engine, its worker's settings, and the plugins for GIMP and Krita.

    python3 install.py                  # everything: engine, settings, plugins, then a self-check
    python3 install.py --dry-run        # print every file it would write; write nothing
    python3 install.py --check          # diagnose a broken install, with the fix for each fault
    python3 install.py --uninstall      # remove exactly what it installed
    python3 install.py --package        # a zip for Krita's Tools > Scripts > Import Python Plugin from File

The engine is a virtual environment inside this folder (.venv) with the dependencies from
pyproject.toml; torch is the CUDA build where an NVIDIA GPU is present (Linux, Windows), the
default build on Apple silicon (MPS), the CPU build otherwise (--torch overrides). GIMP's (2.10,
3.x) and Krita's profile folders are found on Linux (including Flatpak and Snap), macOS and
Windows; --gimp-dir / --krita-dir name others. Running it again changes nothing. The self-check
and --check stop the worker they start (a worker already running is left alone). Standard
library only, so that it runs on any Python 3 before anything is installed.
"""
import argparse
import glob
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
import venv
import zipfile

PROJECT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(PROJECT, ".venv")
STAMP = os.path.join(VENV, ".kirei-installed")
MIN_PYTHON = (3, 10)
GIMP_SRC = os.path.join(PROJECT, "plugins", "gimp", "kirei")
KRITA_SRC = os.path.join(PROJECT, "plugins", "krita")
EXECUTABLES = ("kirei.py", "kirei_gimp2.py")  # GIMP runs plug-ins as programs
TORCH_INDEX = {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": "https://download.pytorch.org/whl/cu126"}
KRITA_ENABLE = "enable_kirei=true"
APP_NAMES = {"gimp": "GIMP", "krita": "Krita"}  # by the kind recorded for each plugin folder

sys.path.insert(0, PROJECT)
from core import client  # noqa: E402  standard library only, like this script (the plugins carry it)
from core.digest import RECORD_EXT, WEIGHTS_EXT, file_sha256, sha256_problem  # noqa: E402  standard library only


# ---------------------------------------------------------------- the engine
def venv_python():
    if os.name == "nt":
        return os.path.join(VENV, "Scripts", "python.exe")
    return os.path.join(VENV, "bin", "python")


def _pyproject_digest():
    return file_sha256(os.path.join(PROJECT, "pyproject.toml"))


def _installed():
    """(pyproject digest, extras) that .venv was last set up for, or (None, set())."""
    try:
        with open(STAMP) as fh:
            digest, _, extras = fh.read().partition(" ")
        return digest, set(filter(None, extras.split(",")))
    except OSError:
        return None, set()


def choose_torch(requested="auto"):
    """(build, why): which torch build suits this machine."""
    if requested != "auto":
        return requested, "asked for with --torch"
    system = platform.system()
    if system == "Darwin":
        if platform.machine() == "arm64":
            return "mps", "Apple silicon: the default build uses its GPU through MPS"
        return "cpu", "an Intel Mac: CPU"
    if shutil.which("nvidia-smi") or os.path.exists("/proc/driver/nvidia/version"):
        return "cuda", "an NVIDIA GPU is present"
    return "cpu", "no NVIDIA GPU found"


def _torch_present(python):
    return subprocess.call([python, "-c", "import torch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def _install_torch(python, build, log):
    """torch before the rest, from the build's own index when reachable; else whatever pip finds."""
    spec = os.environ.get("KIREI_TORCH_SPEC", "torch>=2.4")
    pip = [python, "-m", "pip", "install", "--quiet", spec]
    if build in TORCH_INDEX and "KIREI_TORCH_SPEC" not in os.environ:
        if subprocess.call(pip + ["--index-url", TORCH_INDEX[build], "--extra-index-url",
                                  "https://pypi.org/simple"], stderr=subprocess.DEVNULL) == 0:
            return
        log(f"the {build} index of PyTorch can't be reached; installing torch from the default index")
    if subprocess.call(pip) != 0:
        sys.exit("install: pip failed to install torch (see above); nothing else was changed")


def ensure_core_env(extras=(), quiet=False, torch="auto"):
    """Create .venv and install the engine's dependencies, unless it already holds what is wanted.

    Returns the environment's Python.
    """
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"Kirei needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; this is {sys.version.split()[0]}")
    log = (lambda *a: None) if quiet else (lambda *a: print("install:", *a, flush=True))
    if not os.path.exists(venv_python()):
        log(f"creating the engine's environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest, have = _installed()
    if digest == _pyproject_digest() and set(extras) <= have:
        return venv_python()
    if not _torch_present(venv_python()):
        build, why = choose_torch(torch)
        log(f"torch: the {build} build ({why}; --torch cpu|cuda|mps chooses another); this downloads it")
        _install_torch(venv_python(), build, log)
    want = sorted(set(extras) | (have if digest == _pyproject_digest() else set()))
    spec = "." + (f"[{','.join(want)}]" if want else "")
    log(f"installing the engine's dependencies ({spec})")
    cmd = [venv_python(), "-m", "pip", "install", "--quiet", "--editable", spec]
    if subprocess.call(cmd, cwd=PROJECT) != 0:
        sys.exit("install: pip failed (see above); nothing else was changed")
    with open(STAMP, "w") as fh:
        fh.write(f"{_pyproject_digest()} {','.join(want)}")
    return venv_python()


# ---------------------------------------------------------------- where things go
class Places:
    """The user's folders, for the platform (KIREI_INSTALL_PLATFORM overrides it, for tests)."""

    def __init__(self, env=None):
        self.env = dict(os.environ if env is None else env)
        self.platform = self.env.get("KIREI_INSTALL_PLATFORM") or sys.platform
        if self.platform.startswith("linux"):
            self.platform = "linux"
        self.home = self.env.get("HOME") or self.env.get("USERPROFILE") or os.path.expanduser("~")

    def _config_base(self):
        return client.user_config_base(self.env, self.platform, self.home)

    def config_dir(self):
        """Kirei's own folder: settings.json, token, what was installed (where the plugins' client looks)."""
        return client.config_dir(self.env, self.platform, self.home)

    def gimp_candidates(self):
        """Base folders that hold GIMP's per-version profile folders (GIMP/2.10, GIMP/3.0, ...)."""
        if self.platform in ("win32", "darwin"):
            return [os.path.join(self._config_base(), "GIMP")]
        return [os.path.join(self._config_base(), "GIMP"),
                os.path.join(self.home, ".var", "app", "org.gimp.GIMP", "config", "GIMP"),  # Flatpak
                os.path.join(self.home, "snap", "gimp", "current", ".config", "GIMP")]  # Snap

    def gimp_dirs(self):
        found = []
        for base in self.gimp_candidates():
            for version in sorted(glob.glob(os.path.join(base, "[23].*"))):
                name = os.path.basename(version)
                if os.path.isdir(version) and (name == "2.10" or name.startswith("3.")):
                    found.append(version)
        return found

    def krita_candidates(self):
        """(resource folder, kritarc) of each way Krita may be installed, the usual one first."""
        if self.platform == "win32":
            local = self.env.get("LOCALAPPDATA") or os.path.join(self.home, "AppData", "Local")
            return [(os.path.join(self._config_base(), "krita"), os.path.join(local, "kritarc"))]
        if self.platform == "darwin":
            return [(os.path.join(self._config_base(), "krita"),
                     os.path.join(self.home, "Library", "Preferences", "kritarc"))]
        data = self.env.get("XDG_DATA_HOME") or os.path.join(self.home, ".local", "share")
        flat = os.path.join(self.home, ".var", "app", "org.kde.krita")
        snap = os.path.join(self.home, "snap", "krita", "current")
        return [(os.path.join(data, "krita"), os.path.join(self._config_base(), "kritarc")),
                (os.path.join(flat, "data", "krita"), os.path.join(flat, "config", "kritarc")),
                (os.path.join(snap, ".local", "share", "krita"), os.path.join(snap, ".config", "kritarc"))]

    def krita_dirs(self):
        """(resource folder, kritarc) pairs of Krita installations that have run once."""
        return [p for p in self.krita_candidates() if os.path.isdir(p[0])]

    def kritarc_of(self, folder):
        """The kritarc of the Krita that uses this resource folder, when it is one install.py knows;
        else None: a folder given with --krita-dir may belong to any Krita (portable, custom resource
        folder), and enabling the plugin in another Krita's kritarc would be wrong."""
        same = os.path.normcase(os.path.realpath(folder))
        for d, kritarc in self.krita_candidates():
            if os.path.normcase(os.path.realpath(d)) == same:
                return kritarc
        return None


# ---------------------------------------------------------------- the plan
def _files(src_dir):
    """(relative path, source path) of a plugin folder's files, links followed, caches skipped."""
    out = []
    for root, dirs, files in os.walk(src_dir, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in sorted(files):
            if not f.endswith((".pyc", ".pyo")):
                path = os.path.join(root, f)
                out.append((os.path.relpath(path, src_dir), os.path.realpath(path)))
    return sorted(out)


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def plan(places, gimp_dirs, krita_dirs, python):
    """Everything to write: [(path, bytes, mode, (kind, plugin folder) or None for Kirei's own settings)],
    and the kritarc files to enable the plugin in (None for a Krita folder whose kritarc isn't known)."""
    writes = []
    for d in gimp_dirs:
        for rel, src in _files(GIMP_SRC):
            mode = 0o755 if os.path.basename(rel) in EXECUTABLES else 0o644
            writes.append((os.path.join(d, "plug-ins", "kirei", rel), _read(src), mode, ("gimp", d)))
    kritarcs = []
    for d, kritarc in krita_dirs:
        for rel, src in _files(os.path.join(KRITA_SRC, "kirei")):
            writes.append((os.path.join(d, "pykrita", "kirei", rel), _read(src), 0o644, ("krita", d)))
        writes.append((os.path.join(d, "pykrita", "kirei.desktop"), _read(os.path.join(KRITA_SRC, "kirei.desktop")),
                       0o644, ("krita", d)))
        writes.append((os.path.join(d, "actions", "kirei.action"),
                       _read(os.path.join(KRITA_SRC, "kirei", "kirei.action")), 0o644, ("krita", d)))
        if kritarc:
            kritarcs.append(kritarc)
    config = places.config_dir()
    settings = json.dumps({"python": python, "project": PROJECT}, indent=1).encode()
    writes.append((os.path.join(config, client.SETTINGS_FILE), settings, 0o644, None))
    return writes, kritarcs


def _enable_in_kritarc(text):
    """kritarc's text with [python] enable_kirei=true (Krita loads no plugin that isn't enabled)."""
    lines = text.splitlines()
    if KRITA_ENABLE in lines:
        return text
    lines = [ln for ln in lines if not ln.startswith("enable_kirei=")]
    if "[python]" not in lines:
        lines += ([""] if lines else []) + ["[python]"]
    lines.insert(lines.index("[python]") + 1, KRITA_ENABLE)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- doing it
def _manifest_path(places):
    return os.path.join(places.config_dir(), "installed.json")


def _load_manifest(places):
    """The install record: files and folders made (for --uninstall), kritarc edits, and each plugin
    folder's kind and files with their sha256 (for --check)."""
    try:
        with open(_manifest_path(places)) as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        manifest = {}
    for key, empty in (("files", []), ("dirs", []), ("kritarc", {}), ("plugins", {})):
        manifest.setdefault(key, empty)
    return manifest


def _makedirs(path, made, dry, mode=0o777):
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for d in reversed(missing):
        if not dry:
            os.mkdir(d, mode)
        made.append(d)


PRIVATE = 0o700  # Kirei's config folder holds the worker's token: the user's alone


def install(places, gimp_dirs, krita_dirs, python, dry=False, say=print):
    writes, kritarcs = plan(places, gimp_dirs, krita_dirs, python)
    manifest = _load_manifest(places)
    made, changed = [], 0
    for path, data, mode, owner in writes:
        same = os.path.isfile(path) and _read(path) == data
        if same and (os.name == "nt" or os.stat(path).st_mode & 0o777 == mode):
            continue
        changed += 1
        say(("would write " if dry else "writing ") + path)
        if dry:
            continue
        _makedirs(os.path.dirname(path), made, dry, 0o777 if owner else PRIVATE)
        with open(path, "wb") as fh:
            fh.write(data)
        os.chmod(path, mode)
    token = os.path.join(places.config_dir(), client.TOKEN_FILE)
    if not os.path.exists(token):
        changed += 1
        say(("would write " if dry else "writing ") + token + " (mode 0600)")
        if not dry:
            _makedirs(os.path.dirname(token), made, dry, PRIVATE)
            import secrets
            fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
    for kritarc in kritarcs:
        old = open(kritarc).read() if os.path.exists(kritarc) else None
        new = _enable_in_kritarc(old or "")
        if new == old:
            continue
        changed += 1
        say(("would enable" if dry else "enabling") + f" the Kirei plugin in {kritarc}")
        if not dry:
            # keep the original to put back on --uninstall (if Krita hasn't rewritten it since)
            manifest["kritarc"].setdefault(kritarc, {"original": old, "written": new})
            _makedirs(os.path.dirname(kritarc), made, dry)
            with open(kritarc, "w") as fh:
                fh.write(new)
    if not dry:
        _record(places, manifest, writes, made, token)
    return changed


def _record(places, manifest, writes, made, token):
    """Add this run's files to the install record; written only when that changes it. Each plugin
    folder installed into now gets the sha256 map of this run's files only (a file an older version
    had is no longer checked); "files" keeps every file ever written, for --uninstall."""
    before = json.dumps(manifest, sort_keys=True)
    manifest["files"] = sorted(set(manifest["files"]) | {w[0] for w in writes} | {token})
    manifest["dirs"] = sorted(set(manifest["dirs"]) | set(made))
    plugins = {}
    for path, data, _, owner in writes:
        if owner:
            kind, folder = owner
            plugins.setdefault(folder, {"kind": kind, "sha256": {}})["sha256"][path] = hashlib.sha256(data).hexdigest()
    manifest["plugins"].update(plugins)
    if json.dumps(manifest, sort_keys=True) != before:
        with open(_manifest_path(places), "w") as fh:
            json.dump(manifest, fh, indent=1)


# ---------------------------------------------------------------- the local worker
STOP_WAIT = 30  # seconds a worker gets to exit after SIGTERM (it cancels its jobs first), then SIGKILL
CHECK_TIMEOUT = 300  # seconds for a worker to start and answer (a first start imports torch from a cold disk)
SELF_CHECK_TIMEOUT = 600  # ... and to restore the sample on a slow CPU


def _worker_file(places):
    return os.path.join(places.config_dir(), client.WORKER_FILE)


def _command_line(pid):
    """A live process's command line, its arguments joined by spaces; None when it is gone or a zombie,
    and on Windows (where the standard library can't read it)."""
    if os.name == "nt":
        return None
    try:
        if os.path.isdir("/proc/self"):
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rpartition(")")[2].split()[0] == "Z":
                    return None
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
        p = subprocess.run(["ps", "-ww", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True)
    except (OSError, IndexError):
        return None
    state, _, command = p.stdout.strip().partition(" ")
    return command if p.returncode == 0 and not state.startswith("Z") else None


def _is_worker(pid, token_file):
    command = _command_line(pid)
    return bool(command and " serve " in command and token_file in command)


def _recorded_worker(places):
    """(pid, token file) that worker.json records, whether or not that process still runs; else None."""
    try:
        with open(_worker_file(places)) as fh:
            rec = json.load(fh)
        return int(rec["pid"]), rec["token_file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _running_worker(places):
    """The recorded local worker (see _recorded_worker) while that process still is that worker (a pid
    may have been reused since it exited); else None, and always None on Windows (see _command_line)."""
    worker = _recorded_worker(places)
    return worker if worker and _is_worker(*worker) else None


def _stop_worker(places, started=None):
    """Stop a local worker and wait until it is gone; its record goes with it. By default the one
    worker.json records, checked to still be it; `started`: one recorded while we watched, so known
    to be ours even where its command line can't be read (Windows)."""
    worker = started or _running_worker(places)
    if worker is None or (os.name != "nt" and not _is_worker(*worker)):
        return
    if os.name == "nt":  # the worker and anything it started; taskkill returns once they have ended
        subprocess.run(["taskkill", "/PID", str(worker[0]), "/T", "/F"], capture_output=True)
    else:
        for sig, wait in ((signal.SIGTERM, STOP_WAIT), (signal.SIGKILL, 10)):
            try:
                os.kill(worker[0], sig)
            except OSError:
                break
            deadline = time.monotonic() + wait
            while _is_worker(*worker) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _is_worker(*worker):
                break
    if _recorded_worker(places) == worker:
        try:
            os.remove(_worker_file(places))
        except OSError:
            pass


def _through_worker(python, places, code, timeout):
    """Run code in the engine's Python with the plugins' own client, as GIMP and Krita do: (ok, its
    last line of output or why it failed). A worker the client had to start for it (a new one in
    worker.json) is stopped after; one that was already running (the user's) is reused and left running."""
    env = dict(places.env, KIREI_CONFIG_DIR=places.config_dir())
    env.pop("KIREI_SERVER_URL", None)
    before = _recorded_worker(places)
    try:
        p = subprocess.run([python, "-c", code, PROJECT], capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout} s"
    finally:
        now = _recorded_worker(places)
        if now not in (None, before):
            _stop_worker(places, started=now)
    if p.returncode != 0:
        return False, (p.stderr.strip().splitlines() or ["no output"])[-1]
    return True, p.stdout.strip()


# ---------------------------------------------------------------- undoing and checking it
def uninstall(places, say=print):
    path = _manifest_path(places)
    if not os.path.exists(path):
        say("nothing to uninstall: no record of an installation in " + places.config_dir())
        return 0
    manifest = _load_manifest(places)
    _stop_worker(places)
    runtime = [os.path.join(places.config_dir(), f) for f in client.RUNTIME_FILES]
    for f in manifest["files"] + runtime + [path]:
        if os.path.exists(f):
            os.remove(f)
            say("removed " + f)
    for kritarc, rec in manifest["kritarc"].items():
        if not os.path.exists(kritarc):
            continue
        text = open(kritarc).read()
        if text == rec["written"]:  # untouched since: put the original back exactly
            original = rec["original"]
        else:  # Krita rewrote it meanwhile: take out only our line
            original = "".join(ln + "\n" for ln in text.splitlines() if ln != KRITA_ENABLE)
        if original is None:
            os.remove(kritarc)
        else:
            with open(kritarc, "w") as fh:
                fh.write(original)
        say("disabled the Kirei plugin in " + kritarc)
    for d in sorted(manifest["dirs"], key=len, reverse=True):
        for cache in glob.glob(os.path.join(d, "__pycache__")):
            shutil.rmtree(cache, ignore_errors=True)
        if os.path.isdir(d) and not os.listdir(d):
            os.rmdir(d)
    say("Kirei is uninstalled (the engine stays in this folder's .venv: delete the folder to remove it)")
    return 0


def _install_command(places, kind, folder):
    """The command that installs the plugin into folder again."""
    found = places.gimp_dirs() if kind == "gimp" else [d for d, _ in places.krita_dirs()]
    quoted = subprocess.list2cmdline([folder]) if os.name == "nt" else shlex.quote(folder)
    return "python3 install.py" + ("" if folder in found else f" --{kind}-dir {quoted}")


def file_faults(places, manifest):
    """Each installed plugin file that is missing, or isn't the file that was installed, with its fix."""
    faults = []
    for folder, rec in sorted(manifest["plugins"].items()):
        if not os.path.isdir(folder):  # the application's profile went (GIMP 2.10 removed, say): one line
            faults.append(f"the {APP_NAMES[rec['kind']]} folder {folder} that Kirei was installed into is gone: "
                          "if that was on purpose, `python3 install.py --uninstall` and then `python3 install.py` "
                          "forget it")
            continue
        fix = f"run `{_install_command(places, rec['kind'], folder)}` to put it back"
        for path, digest in sorted(rec["sha256"].items()):
            if not os.path.isfile(path):
                faults.append(f"{path} is missing: {fix}")
            elif file_sha256(path) != digest:
                faults.append(f"{path} is not the file that was installed (changed or damaged): {fix}")
    return faults


def weights_faults(project):
    """Each shipped model (core/weights/NAME.json + NAME.safetensors) whose weights are missing or not
    the ones its record's sha256 names. Checked without torch (core/digest.py), which install.py runs without."""
    faults = []
    for record in sorted(glob.glob(os.path.join(project, "core", "weights", "*" + RECORD_EXT))):
        weights = record[:-len(RECORD_EXT)] + WEIGHTS_EXT
        problem = sha256_problem(weights)
        if problem:
            faults.append(f"the model's weights {weights} {problem}: get them again from the Kirei download "
                          f"(in a git clone: git -C {project} checkout -- core/weights)")
    return faults


def check(places, gimp_dirs, krita_dirs, start_worker=True, say=print):
    """Every fault found, each with its fix; 0 when there is none."""
    faults = []
    settings_path = os.path.join(places.config_dir(), client.SETTINGS_FILE)
    try:
        settings = json.load(open(settings_path))
    except (OSError, ValueError):
        settings = None
        faults.append(f"no worker settings ({settings_path}): run `python3 install.py`")
    python = (settings or {}).get("python")
    if settings and not (python and os.path.exists(python)):
        faults.append(f"the engine's Python {python} is missing: run `python3 install.py` to recreate it")
    elif settings and not _torch_present(python):
        faults.append("the engine's environment can't import torch: run `python3 install.py`")
    token = os.path.join(places.config_dir(), client.TOKEN_FILE)
    if not os.path.exists(token):
        faults.append(f"no worker token ({token}): run `python3 install.py`")
    elif os.name != "nt" and os.stat(token).st_mode & 0o077:
        faults.append(f"the worker token {token} can be read by others: chmod 600 {token}")
    recorded = _load_manifest(places)
    faults += file_faults(places, recorded)
    for d in gimp_dirs:
        for name in EXECUTABLES:
            p = os.path.join(d, "plug-ins", "kirei", name)
            if not os.path.exists(p):
                if d not in recorded["plugins"]:  # else reported above, file by file
                    faults.append(f"the GIMP plug-in is missing from {d}: run `python3 install.py`")
                break
            if os.name != "nt" and not os.access(p, os.X_OK):
                faults.append(f"{p} is not executable, so GIMP won't run it: chmod +x {p}")
    for d, kritarc in krita_dirs:
        if d not in recorded["plugins"] and not os.path.exists(os.path.join(d, "pykrita", "kirei", "__init__.py")):
            faults.append(f"the Krita plugin is missing from {d}: run `python3 install.py`")
        if kritarc and (not os.path.exists(kritarc) or KRITA_ENABLE not in open(kritarc).read().splitlines()):
            faults.append(f"the Krita plugin is not enabled in {kritarc}: enable Kirei in Settings > Configure "
                          f"Krita > Python Plugin Manager (or run `python3 install.py`), then restart Krita")
    faults += weights_faults((settings or {}).get("project") or PROJECT)
    if start_worker and python and os.path.exists(python) and not faults:
        problem = _worker_problem(python, places)
        if problem:
            faults.append(f"the worker won't start: {problem}; see {places.config_dir()}/worker.log")
    for f in faults:
        say("fault: " + f)
    if not faults:
        say("no faults found")
    return len(faults)


def _worker_problem(python, places):
    """None if a worker starts and answers; else why not (through the plugins' own client)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from core import client; "
            "print(client.Client().health()['device_name'])")
    ok, text = _through_worker(python, places, code, CHECK_TIMEOUT)
    return None if ok else text


SELF_CHECK = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from core import client, imageio
pic = imageio.load_picture(sys.argv[1] + "/samples/sample.png")
px = imageio.to_dtype(pic.pixels, np.uint8)
h, w, c = px.shape
t = time.time()
c_ = client.Client()
res = c_.restore(px.tobytes(), w, h, c, "uint8", scale=2, watermark="profile",
                 profile=sys.argv[1] + "/samples/sample-profile.png", image_size=(w, h))
print("%dx%d -> %dx%d through the worker (%s) in %.1f s" % (w, h, res.width, res.height,
      c_.health()["device_name"], time.time() - t))
"""


def self_check(python, places, say=print):
    """A real restore of the bundled sample through the worker, as the plugins do it."""
    ok, text = _through_worker(python, places, SELF_CHECK, SELF_CHECK_TIMEOUT)
    say(("self-check: " if ok else "self-check FAILED: ") + text)
    return 0 if ok else 1


def package(path, say=print):
    """A zip for Krita's Tools > Scripts > Import Python Plugin from File: kirei.desktop, kirei/, kirei.action."""
    tmp = path + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(os.path.join(KRITA_SRC, "kirei.desktop"), "kirei.desktop")
        z.writestr("kirei/", "")  # Krita's importer finds the module by its folder entry
        for rel, src in _files(os.path.join(KRITA_SRC, "kirei")):
            z.write(src, "kirei/" + rel.replace(os.sep, "/"))
    os.replace(tmp, path)
    say(f"Krita plugin package: {path} (Tools > Scripts > Import Python Plugin from File)")
    return 0


# ---------------------------------------------------------------- the command
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gimp-dir", action="append", default=[], metavar="DIR",
                    help="a GIMP profile folder to install into (DIR/plug-ins), instead of the found ones")
    ap.add_argument("--krita-dir", action="append", default=[], metavar="DIR",
                    help="a Krita resource folder to install into (DIR/pykrita), instead of the found ones; the "
                         "plugin is enabled only in the kritarc of a folder install.py knows (else enable it in "
                         "Krita's Python Plugin Manager)")
    ap.add_argument("--torch", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="which torch build")
    ap.add_argument("--engine-python", metavar="PY", help="use this existing engine Python instead of .venv")
    action = ap.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="print every file it would write, write nothing")
    action.add_argument("--uninstall", action="store_true", help="remove what install.py installed")
    action.add_argument("--check", action="store_true", help="diagnose the installation")
    action.add_argument("--package", nargs="?", const=os.path.join(PROJECT, "kirei-krita.zip"), metavar="ZIP",
                        help="write the Krita plugin zip (default kirei-krita.zip)")
    ap.add_argument("--no-self-check", action="store_true", help="skip the final restore through the worker")
    a = ap.parse_args(argv)
    places = Places()
    if a.package:
        return package(a.package)
    if a.uninstall:
        return uninstall(places)
    gimp_dirs = a.gimp_dir or places.gimp_dirs()
    krita_dirs = [(d, places.kritarc_of(d)) for d in a.krita_dir] or places.krita_dirs()
    if a.check:
        return 1 if check(places, gimp_dirs, krita_dirs) else 0
    if a.dry_run:
        python = a.engine_python or venv_python()
        print(f"would set up the engine in {VENV}" if not os.path.exists(python) else f"engine: {python}")
    else:
        python = a.engine_python or ensure_core_env(torch=a.torch)
    print("GIMP profiles: " + (", ".join(gimp_dirs) or "none found (run GIMP once, or give --gimp-dir)"))
    print("Krita: " + (", ".join(d for d, _ in krita_dirs) or "none found (run Krita once, or give --krita-dir)"))
    changed = install(places, gimp_dirs, krita_dirs, os.path.abspath(python), dry=a.dry_run)
    for d in (d for d, kritarc in krita_dirs if not kritarc):
        print(f"Krita: {d} is not a Krita folder install.py knows, so no kritarc was touched: enable Kirei in "
              "Settings > Configure Krita > Python Plugin Manager of the Krita that uses it")
    if a.dry_run:
        print(f"dry run: {changed} change(s) planned, nothing written")
        return 0
    print(f"{changed} change(s)" if changed else "already installed: nothing changed")
    if krita_dirs:
        print("Krita: restart it; the docker is Settings > Dockers > Kirei")
    if a.no_self_check:
        return 0
    return self_check(python, places)


if __name__ == "__main__":
    sys.exit(main())
