"""Shipped weights: core/weights/<name>.safetensors plus <name>.json (architecture, arguments,
provenance, training record, scorer figures, and the sha256 of the .safetensors file). The
safetensors' metadata holds the architecture and its config, so a file builds its own model.
Loaded with safetensors: never unpickled; checked whole (sha256, finite values) before use.
"""
import functools
import json
import os

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .digest import RECORD_EXT, WEIGHTS_EXT, file_sha256, sha256_problem
from .errors import KireiError
from .models import DEFAULT_MODEL, RESTORERS, build

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
REMEDY = "reinstall Kirei (or `git checkout core/weights`) or use --method classic"


def weights_path(name, ext=WEIGHTS_EXT):
    """core/weights/<name><ext> for a shipped name; a path (with or without .safetensors) as given."""
    base = name[:-len(WEIGHTS_EXT)] if name.endswith(WEIGHTS_EXT) else name
    if os.path.sep not in base and "/" not in base:
        base = os.path.join(WEIGHTS_DIR, base)
    return base + ext


def save_weights(model, name, record):
    """Write the weights and their record, which gets the file's sha256 (checked on every load)."""
    path = weights_path(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, path, metadata={"architecture": model.architecture, "config": json.dumps(model.config)})
    os.chmod(path, 0o644)  # shipped with the project: readable by everyone, like the code
    write_record(name, dict(record, sha256=file_sha256(path)))
    return path


def write_record(name, record):
    with open(weights_path(name, RECORD_EXT), "w") as fh:
        json.dump(record, fh, indent=1)
        fh.write("\n")


def load_state(path):
    if not os.path.exists(path):
        raise KireiError(f"no weights at {path}")
    return load_file(path)


def describe(name=DEFAULT_MODEL):
    """The JSON record shipped beside the weights."""
    with open(weights_path(name, RECORD_EXT)) as fh:
        return json.load(fh)


def verify(name=DEFAULT_MODEL):
    """The weights' path once they are known to be whole: present, of this Kirei's architecture,
    matching the sha256 their record holds, all values finite. Otherwise a KireiError saying what
    is wrong. Each version of the file is checked once per process."""
    path = weights_path(name)
    try:
        st = os.stat(path)
    except OSError:
        if os.path.sep not in name and "/" not in name and not name.endswith(WEIGHTS_EXT) and name != DEFAULT_MODEL:
            raise KireiError(f"no model named {name!r} is installed (installed: {', '.join(_restorers()) or 'none'})"
                             ) from None
        raise KireiError(f"the model's weights are missing ({path}); {REMEDY}") from None
    problem = _problem(path, st.st_size, st.st_mtime_ns)
    if problem:
        raise KireiError(f"the model's weights {path} {problem}; {REMEDY}")
    return path


def available(name=DEFAULT_MODEL):
    """Whether the weights are there and whole (see verify)."""
    try:
        verify(name)
    except KireiError:
        return False
    return True


@functools.lru_cache(maxsize=16)
def _problem(path, size, mtime_ns):
    """What is wrong with this version (size, mtime) of a weights file, or None."""
    problem = sha256_problem(path)
    if problem:
        return problem
    try:
        model = _read_model(path)
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        return f"can't be used ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    if not all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()):
        return "hold NaN or infinite values"
    return None


def _read_model(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    model = build(meta.get("architecture"), json.loads(meta["config"]))
    model.load_state_dict(load_file(path))
    return model


def load_model(name=DEFAULT_MODEL, restorer=True):
    """The model with the named shipped weights (or a .safetensors path), checked (see verify), in
    eval mode; restorer: it must be one that restores pictures (not the stamp finder)."""
    model = _read_model(verify(name))
    if restorer and model.architecture not in RESTORERS:
        raise KireiError(f"{name!r} doesn't restore pictures (models that do: {', '.join(_restorers()) or 'none'})")
    return model.eval()


def _restorers():
    """The names of the shipped weights of restoring models (core/models RESTORERS)."""
    names = sorted(f[:-len(WEIGHTS_EXT)] for f in os.listdir(WEIGHTS_DIR) if f.endswith(WEIGHTS_EXT))
    return [n for n in names if os.path.exists(weights_path(n, RECORD_EXT)) and
            describe(n).get("architecture") in RESTORERS]


def installed():
    """{name: record} of the restoring models in core/weights whose weights are there and whole."""
    return {n: describe(n) for n in _restorers() if available(n)}
