#!/usr/bin/env python3
"""Install Kirei: the engine, its worker's settings, and the plugins for GIMP and Krita.

    python3 install.py                  # everything: engine, settings, plugins, then a self-check
    python3 install.py --dry-run        # print every file it would write; write nothing
    python3 install.py --check          # diagnose a broken install, with the fix for each fault
    python3 install.py --uninstall      # remove exactly what it installed
    python3 install.py --package        # a zip for Krita's Tools > Scripts > Import Python Plugin from File

The engine is a virtual environment inside this folder (.venv) with the dependencies from
pyproject.toml; torch is the CUDA build where an NVIDIA GPU is present (Linux, Windows), the
default build on Apple silicon (MPS), the CPU build otherwise (--torch overrides). pip's dry run
says first what it will download and how much. Where PyTorch's own index can't be reached, pip
would take PyPI's torch instead (on Linux the CUDA build: gigabytes): that is said, with its size,
and asked first when it isn't the build chosen (--torch pypi takes it without asking). Once
installed, torch itself is asked which build it is, and that is said. GIMP's (2.10, 3.x) and
Krita's profile folders are found on Linux (including Flatpak and Snap), macOS and Windows;
--gimp-dir / --krita-dir name others; it ends by saying where Kirei appears in each. Running it
again changes nothing. The self-check and --check stop the worker they start (a worker already
running is left alone). Standard library only, so that it runs on any Python 3 before anything
is installed.
"""
import argparse
import ast
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
import urllib.parse
import urllib.request
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


# ---------------------------------------------------------------- which torch build
# pip never says which torch it took: a CPU index it can't reach is skipped with a warning, and
# PyPI's torch (on Linux, the CUDA build with NVIDIA's libraries: gigabytes) is taken instead. So
# each install is first a dry run whose report says what pip would take, and the result is
# asked afterwards which build it is.
PYPI_CHOICE = "pypi"  # --torch pypi: whatever PyPI has for this machine, without asking PyTorch's index
TORCH_CHOICES = ("auto", "cpu", "cuda", "mps", PYPI_CHOICE)
CUDA_LIBS = ("nvidia-", "cuda-")  # the packages of NVIDIA's libraries that PyPI's CUDA build pulls in
TORCH_PROBE = ("import json, torch\n"
               "mps = getattr(torch.backends, 'mps', None)\n"
               "print(json.dumps({'version': torch.__version__, 'cuda': torch.version.cuda,\n"
               "                  'hip': getattr(torch.version, 'hip', None), 'gpu': torch.cuda.is_available(),\n"
               "                  'mps': bool(mps and mps.is_available()),\n"
               "                  'mps_built': bool(mps and mps.is_built())}))")


def human_bytes(n):
    """Sizes as pip prints them (powers of 1000)."""
    for unit, step in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= step:
            return f"{n / step:.1f} {unit}"
    return f"{n} bytes"


class Plan:
    """What pip's dry run (--report) would install: torch's version, each package with its size."""

    def __init__(self, report, size_of):
        items = [(i["metadata"]["name"], i["metadata"]["version"], i["download_info"]["url"])
                 for i in report.get("install", [])]
        self.torch, self.torch_url = next(((v, u) for n, v, u in items if n.lower() == "torch"), (None, None))
        self.names = [n for n, _, _ in items]
        sizes = [size_of(url) for _, _, url in items]
        self.bytes = sum(s for s in sizes if s is not None)
        self.unsized = sum(s is None for s in sizes)
        self.cuda_libs = sum(n.lower().startswith(CUDA_LIBS) for n in self.names)

    def build(self):
        """cpu, cuda, rocm: from the version's local label (2.5.1+cpu, +cu126, +rocm6.2) or, on PyPI,
        which labels nothing, from NVIDIA's libraries coming along; "default" when neither tells."""
        label = (self.torch or "").partition("+")[2]
        if label:
            return "cuda" if label.startswith("cu") else "rocm" if label.startswith("rocm") else label
        return "cuda" if self.cuda_libs else "default"

    def describe(self):
        what = f"torch {self.torch}" if self.torch else "no torch"
        if self.cuda_libs:
            what += f" with NVIDIA's CUDA libraries ({self.cuda_libs} packages)"
        size = human_bytes(self.bytes) if not self.unsized else (
            f"at least {human_bytes(self.bytes)} ({self.unsized} of the {len(self.names)} sizes unknown)")
        return f"{what}, {len(self.names)} packages in all: {size} to download"


def index_trouble(stderr, index):
    """Why pip couldn't reach the index, in a few words, from pip's own warnings; None if it says nothing."""
    path = urllib.parse.urlparse(index).path.rstrip("/")
    text = " ".join(ln for ln in stderr.splitlines() if index in ln or (path and path + "/" in ln))
    for words, why in ((("Name or service not known", "getaddrinfo failed", "Failed to resolve",
                         "Temporary failure in name resolution", "nodename nor servname"), "its name doesn't resolve"),
                       (("timed out", "ConnectTimeout"), "it doesn't answer"),
                       (("CERTIFICATE_VERIFY_FAILED", "SSLError"), "its certificate isn't trusted here"),
                       (("ProxyError",), "the proxy refuses it"),
                       (("refused",), "the connection is refused"),
                       (("NewConnectionError", "connection broken", "Max retries"), "pip can't connect to it")):
        if any(w in text for w in words):
            return why
    return None


def index_problem(build, index, plan, stderr):
    """None when pip's dry run with the build's index (plan, and pip's stderr) takes that build (from the
    index, or from a copy pip's own settings name); else why not, in a few words."""
    if plan and plan.torch:
        domain = ".".join(urllib.parse.urlparse(index).hostname.split(".")[-2:])
        host = urllib.parse.urlparse(plan.torch_url).hostname or ""
        if plan.build() == build or host == domain or host.endswith("." + domain):
            return None
    trouble = index_trouble(stderr, index)
    if trouble:
        return f"can't be reached ({trouble})"
    if plan and plan.torch:
        return f"was passed over: pip would take torch {plan.torch} from another index its own settings name"
    return "has no torch for this machine and Python"


def fallback_message(build, index, problem, plan):
    """(what to tell, what to do: "go", "ask" or "stop") when the chosen build's index gives no torch
    (problem: index_problem's words) and pip would take plan (its dry run without that index) instead.
    Asked first when that brings NVIDIA's libraries though the CUDA build wasn't chosen (gigabytes)."""
    host = urllib.parse.urlparse(index).hostname
    told = f"PyTorch's index of the {build} build ({index}) {problem}.\n"
    if plan is None or plan.torch is None:
        return told + "Without it pip finds no torch for this machine either.", "stop"
    told += f"Without it pip would take torch from PyPI (and any index pip's own settings add): {plan.describe()}."
    if not plan.cuda_libs or build == "cuda":
        return told, "go"
    return told + (f"\nTo get the {build} build, run install.py again once {host} can be reached (another "
                   f"network, a proxy); `python3 install.py --torch {PYPI_CHOICE}` takes PyPI's build; "
                   f"--torch {'|'.join(TORCH_CHOICES[1:])} chooses the build."), "ask"


def _size_of(url):
    """A package file's size in bytes: a local file's, or what the server says; None when it can't tell."""
    parts = urllib.parse.urlparse(url)
    if parts.scheme == "file":
        try:
            return os.path.getsize(urllib.request.url2pathname(parts.path))
        except OSError:
            return None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=20) as r:
            return int(r.headers["Content-Length"])
    except (OSError, ValueError, TypeError):
        return None


def _pip_plan(python, spec, index_args):
    """(Plan or None, pip's stderr): pip's dry run of installing spec (pip 22.2+)."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor
    fd, report = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        p = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", report,
                            "--retries", "1", "--timeout", "20", spec, *index_args],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            return None, p.stderr
        with open(report) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None, ""
    finally:
        os.remove(report)
    urls = [i["download_info"]["url"] for i in data.get("install", [])]
    with ThreadPoolExecutor(8) as pool:
        sizes = dict(zip(urls, pool.map(_size_of, urls)))
    return Plan(data, sizes.get), p.stderr


def describe_torch(probe):
    """The installed torch (the probe's answer, TORCH_PROBE), said plainly: (build, sentence)."""
    if probe.get("cuda"):
        build, what = "cuda", f"the CUDA {probe['cuda']} build"
        where = ("it uses the NVIDIA GPU" if probe.get("gpu") else
                 "no NVIDIA GPU can be used here, so it runs on the CPU")
    elif probe.get("hip"):
        build, what = "rocm", f"the ROCm {probe['hip']} build"
        where = "it uses the AMD GPU" if probe.get("gpu") else "no AMD GPU can be used here, so it runs on the CPU"
    elif probe.get("mps_built"):
        build, what = "mps", "the build for Apple silicon"
        where = "it uses the GPU through MPS" if probe.get("mps") else "MPS can't be used here, so it runs on the CPU"
    else:
        build, what, where = "cpu", "the CPU build", "it runs on the CPU"
    return build, f"torch {probe['version']}, {what}: {where}"


def installed_message(probe, wanted, env_bytes):
    """What to tell after torch was installed: which build it is, how much room the environment takes,
    and when it isn't the build chosen, that and how to change it."""
    if probe is None:
        return "torch was installed but can't be imported (see above)"
    build, said = describe_torch(probe)
    said += f"; the engine's environment takes {human_bytes(env_bytes)}"
    if wanted in ("cpu", "cuda", "mps") and build != wanted:
        said += (f". That is not the {wanted} build chosen: pip took it from elsewhere (its own settings, or "
                 f"PyPI); delete {VENV} and run `python3 install.py --torch {wanted}` again to change it")
    return said


def _probe_torch(python):
    p = subprocess.run([python, "-c", TORCH_PROBE], capture_output=True, text=True)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None
    except (ValueError, IndexError):
        return None


def _tree_bytes(path):
    """Room a folder takes on disk (as du counts it)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(root, f))
            total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return total


def _pip_version(python):
    p = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True)
    try:
        return tuple(int(x) for x in p.stdout.split()[1].split(".")[:2])
    except (IndexError, ValueError):
        return (0, 0)


def _ask_on_terminal():
    """A way to ask the user yes or no, when there is a terminal to ask on; else None."""
    if not sys.stdin.isatty():
        return None
    return lambda question: input(question).strip().lower() in ("y", "yes")


def _install_torch(python, build, log, ask=None):
    """torch before the rest, and what it is: the chosen build from its own index when pip's dry run takes
    it there; else, said first with its size, what pip takes without that index (see fallback_message;
    where that asks and no one can answer, install stops). Returns the dry run's Plan (None if none)."""
    if _pip_version(python) < (22, 2):  # older pips can't say what they would install (--dry-run --report)
        log("upgrading the environment's pip first (22.2 or newer can say what it would download)")
        subprocess.call([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    spec = os.environ.get("KIREI_TORCH_SPEC", "torch>=2.4")  # CI: a local CPU wheel, from pip's own settings
    index = None if "KIREI_TORCH_SPEC" in os.environ else TORCH_INDEX.get(build)
    args = ["--index-url", index] if index else []
    plan, stderr = _pip_plan(python, spec, args)
    if index:
        problem = index_problem(build, index, plan, stderr)
        if problem:
            args = []
            plan, _ = _pip_plan(python, spec, args)
            told, action = fallback_message(build, index, problem, plan)
            for line in told.splitlines():  # even when quiet: it is about gigabytes, or a failure
                print("install:", line, flush=True)
            if action == "stop":
                sys.exit("install: no torch to install; nothing else was changed")
            if action == "ask" and not (ask and ask(f"Download PyPI's build now ({human_bytes(plan.bytes)})? [y/N] ")):
                sys.exit(f"install: stopped before downloading torch; `python3 install.py --torch {PYPI_CHOICE}` "
                         "takes PyPI's build")
        elif index_trouble(stderr, index):  # the build is here without the index (a copy pip's settings name):
            args = []  # don't wait on the index again; the pin below keeps that build
    if plan and plan.torch:
        log(f"torch: downloading {plan.describe()}")
        spec = f"torch=={plan.torch}"  # what was said is what is installed
    if subprocess.call([python, "-m", "pip", "install", "--quiet", spec, *args]) != 0:
        sys.exit("install: pip failed to install torch (see above); nothing else was changed")
    return plan


def ensure_core_env(extras=(), quiet=False, torch="auto", ask=None):
    """Create .venv and install the engine's dependencies, unless it already holds what is wanted.
    ask: how to ask the user yes or no (default: on the terminal, when there is one).

    Returns the environment's Python.
    """
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"Kirei needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; this is {sys.version.split()[0]}")
    log = (lambda *a: None) if quiet else (lambda *a: print("install:", *a, flush=True))
    if not os.path.exists(venv_python()):
        log(f"creating the engine's environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    elif torch != "auto" and _torch_present(venv_python()):  # --torch changes nothing where torch is: say so
        probe = _probe_torch(venv_python())
        if probe and torch != PYPI_CHOICE and describe_torch(probe)[0] != torch:
            log(f"{describe_torch(probe)[1]}; it stays: --torch chooses the build of a new environment "
                f"(delete {VENV} and run again)")
    digest, have = _installed()
    if digest == _pyproject_digest() and set(extras) <= have:
        return venv_python()
    installed = None
    if not _torch_present(venv_python()):
        installed, why = choose_torch(torch)
        name = "PyPI's build" if installed == PYPI_CHOICE else f"the {installed} build"
        log(f"torch: {name} ({why}; --torch {'|'.join(TORCH_CHOICES[1:])} chooses another)")
        _install_torch(venv_python(), installed, log, _ask_on_terminal() if ask is None else ask)
    want = sorted(set(extras) | (have if digest == _pyproject_digest() else set()))
    spec = "." + (f"[{','.join(want)}]" if want else "")
    log(f"installing the engine's dependencies ({spec})")
    cmd = [venv_python(), "-m", "pip", "install", "--quiet", "--editable", spec]
    if subprocess.call(cmd, cwd=PROJECT) != 0:
        sys.exit("install: pip failed (see above); nothing else was changed")
    with open(STAMP, "w") as fh:
        fh.write(f"{_pyproject_digest()} {','.join(want)}")
    if installed:
        log(installed_message(_probe_torch(venv_python()), installed, _tree_bytes(VENV)))
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


# ---------------------------------------------------------------- where the plugins appear
GIMP_PLUGINS = (("3", "kirei.py"), ("2.10", "kirei_gimp2.py"))  # GIMP's version -> the plug-in it runs


def _string_constants(tree):
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for t in node.targets if isinstance(t, ast.Name)}


def gimp_menu_entries(path):
    """[(menu path, label)] of the procedures a GIMP plug-in registers, read from its source, so that what
    install.py says follows the plug-in: GIMP 3's set_menu_label() and add_menu_path() (each label goes
    with the menu paths added after it, else the nearest one), GIMP 2.10's register(..., label, ...,
    menu=). Names are looked up in the file and the modules beside it (kirei_common.py)."""
    def parse(p):
        with open(p, encoding="utf-8") as fh:
            return ast.parse(fh.read())
    names = {}
    for other in sorted(glob.glob(os.path.join(os.path.dirname(path), "*.py"))):
        names.update(_string_constants(parse(other)))
    tree = parse(path)
    names.update(_string_constants(tree))

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return names.get(node.id) if isinstance(node, ast.Name) else None

    calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset))
    method = [(getattr(c.func, "attr", None), value(c.args[0]) if c.args else None) for c in calls]
    labels = [(i, v) for i, (m, v) in enumerate(method) if m == "set_menu_label" and v]
    paths = [(i, v) for i, (m, v) in enumerate(method) if m == "add_menu_path" and v]
    entries = []
    for k, (i, label) in enumerate(labels):
        until = labels[k + 1][0] if k + 1 < len(labels) else len(method)
        mine = ([p for j, p in paths if i < j < until] or [p for j, p in paths if j > i][:1]
                or [p for _, p in paths][-1:])
        entries += [(p, label) for p in mine]
    for c in calls:
        if getattr(c.func, "id", None) == "register":
            kw = {k.arg: k.value for k in c.keywords}
            label = value(kw["label"]) if "label" in kw else value(c.args[6]) if len(c.args) > 6 else None
            menu = value(kw["menu"]) if "menu" in kw else value(c.args[11]) if len(c.args) > 11 else None
            if label and not menu and label.startswith("<"):  # the old style: the menu path in the label
                menu, _, label = label.rpartition("/")
            if label and menu:
                entries.append((menu, label))
    return entries


def menu_words(menu, label):
    """("<Image>/Filters/Enhance", "Kirei: ...") -> "Filters > Enhance > Kirei: ..." as a user reads menus."""
    parts = [p for p in menu.split("/") if p and not p.startswith("<")]
    return " > ".join(parts + [label])


def gimp_where(gimp_dirs, entries):
    """Lines saying where Kirei appears in the GIMPs installed into; entries: {GIMP version: [(menu path,
    label)]} (GIMP_PLUGINS' versions). A folder's version is its name (2.10, 3.0, ...); a folder named
    otherwise (--gimp-dir) may be either."""
    versions = set()
    for d in gimp_dirs:
        name = os.path.basename(os.path.normpath(d))
        known = {v for v, _ in GIMP_PLUGINS if name == v or name.startswith(v + ".")}
        versions |= known or {v for v, _ in GIMP_PLUGINS}
    said = {}
    for v, _ in GIMP_PLUGINS:
        if v in versions:
            words = [menu_words(*e) for e in entries.get(v, [])]
            said[v] = ("no menu entry was found in the plug-in" if not words else
                       f"Kirei's menu entry is {words[0]}" if len(words) == 1 else
                       f"Kirei's menu entries are {', '.join(words[:-1])} and {words[-1]}")
    groups = {}
    for v, text in said.items():  # versions that say the same, said once
        groups.setdefault(text, []).append(v)
    return [f"GIMP {' and '.join(vs)}: restart it; {text}" for text, vs in groups.items()]


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
    ap.add_argument("--torch", choices=TORCH_CHOICES, default="auto",
                    help="which torch build a new engine environment gets (default: auto, see above); pypi: "
                         "PyPI's, without asking PyTorch's own index (on Linux that is the CUDA build, gigabytes)")
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
    if gimp_dirs:
        entries = {v: gimp_menu_entries(os.path.join(GIMP_SRC, f)) for v, f in GIMP_PLUGINS}
        print("\n".join(gimp_where(gimp_dirs, entries)))
    if krita_dirs:
        print("Krita: restart it; the docker is Settings > Dockers > Kirei")
    if a.no_self_check:
        return 0
    return self_check(python, places)


if __name__ == "__main__":
    sys.exit(main())
