#!/usr/bin/env python3
"""Set up Kirei on this machine: the engine's Python environment (a virtual environment inside
the project, .venv) with its dependencies from pyproject.toml, and the worker's settings in the
user's config folder (which Python runs the engine), where the plugins' client finds them.

    python3 install.py            # set up (or update) the engine and the worker's settings

Standard library only, so that it runs on any Python 3 before anything is installed.
Installing the plugins into GIMP's and Krita's profile folders lands with the plugins.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import venv

PROJECT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(PROJECT, ".venv")
STAMP = os.path.join(VENV, ".kirei-installed")
MIN_PYTHON = (3, 10)


def venv_python():
    if os.name == "nt":
        return os.path.join(VENV, "Scripts", "python.exe")
    return os.path.join(VENV, "bin", "python")


def _pyproject_digest():
    with open(os.path.join(PROJECT, "pyproject.toml"), "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _installed():
    """(pyproject digest, extras) that .venv was last set up for, or (None, set())."""
    try:
        with open(STAMP) as fh:
            digest, _, extras = fh.read().partition(" ")
        return digest, set(filter(None, extras.split(",")))
    except OSError:
        return None, set()


def ensure_core_env(extras=(), quiet=False):
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
    want = sorted(set(extras) | (have if digest == _pyproject_digest() else set()))
    spec = "." + (f"[{','.join(want)}]" if want else "")
    log(f"installing the engine's dependencies ({spec}); the first time this downloads torch")
    cmd = [venv_python(), "-m", "pip", "install", "--quiet", "--editable", spec]
    if subprocess.call(cmd, cwd=PROJECT) != 0:
        sys.exit("install: pip failed (see above); nothing else was changed")
    with open(STAMP, "w") as fh:
        fh.write(f"{_pyproject_digest()} {','.join(want)}")
    return venv_python()


def write_worker_settings(python):
    """settings.json in the user's config folder: how the plugins start the engine's worker."""
    sys.path.insert(0, PROJECT)
    from core.client import config_dir  # standard library only, like this script
    folder = config_dir()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "settings.json")
    settings = {"python": python, "project": PROJECT}
    try:
        with open(path) as fh:
            old = json.load(fh)
    except (OSError, ValueError):
        old = {}
    if {k: old.get(k) for k in settings} != settings:
        old.update(settings)
        with open(path, "w") as fh:
            json.dump(old, fh, indent=1)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args(argv)
    py = ensure_core_env()
    settings = write_worker_settings(py)
    print(f"Kirei's engine is ready: {py} -m core --help")
    print(f"worker settings: {settings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
