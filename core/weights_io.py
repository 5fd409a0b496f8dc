"""Shipped weights: core/weights/<name>.safetensors plus <name>.json (architecture, arguments,
scale, version, training record, scorer figures). Loaded with safetensors: never unpickled.
"""
import json
import os

from safetensors.torch import load_file, save_file

from .errors import KireiError
from .net import ARCHITECTURE, KireiNet

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
DEFAULT_MODEL = "kirei-x2"


def weights_path(name, ext=".safetensors"):
    """core/weights/<name><ext> for a shipped name; a path (with or without .safetensors) as given."""
    base = name[:-len(".safetensors")] if name.endswith(".safetensors") else name
    if os.path.sep not in base and "/" not in base:
        base = os.path.join(WEIGHTS_DIR, base)
    return base + ext


def save_weights(model, name, record):
    path = weights_path(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, path, metadata={"architecture": ARCHITECTURE, "config": json.dumps(model.config)})
    os.chmod(path, 0o644)  # shipped with the project: readable by everyone, like the code
    with open(weights_path(name, ".json"), "w") as fh:
        json.dump(record, fh, indent=1)
        fh.write("\n")
    return path


def load_state(path):
    if not os.path.exists(path):
        raise KireiError(f"no weights at {path}")
    return load_file(path)


def describe(name=DEFAULT_MODEL):
    """The JSON record shipped beside the weights."""
    with open(weights_path(name, ".json")) as fh:
        return json.load(fh)


def available(name=DEFAULT_MODEL):
    return os.path.exists(weights_path(name))


def load_model(name=DEFAULT_MODEL):
    """A KireiNet with the named shipped weights (or a .safetensors path), in eval mode."""
    path = weights_path(name)
    if not os.path.exists(path):
        raise KireiError(f"the model's weights are missing ({path}); reinstall Kirei or use --method classic")
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    if meta.get("architecture") != ARCHITECTURE:
        raise KireiError(f"{path}: architecture {meta.get('architecture')!r}, this Kirei runs {ARCHITECTURE!r}")
    model = KireiNet(**json.loads(meta["config"]))
    model.load_state_dict(load_file(path))
    return model.eval()
