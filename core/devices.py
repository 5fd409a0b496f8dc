"""Choosing the torch device: auto picks CUDA, then Apple's MPS, then the CPU."""
import torch

from .defaults import DEVICES
from .errors import KireiError


def _mps_available():
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(name):
    """A torch.device for a user's choice, or a KireiError saying why it can't be had."""
    name = (name or "auto").lower()
    if name not in DEVICES:
        raise KireiError(f"unknown device '{name}': choose one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise KireiError(f"device 'cuda' is not available: torch {torch.__version__} ({build}) finds no "
                         f"CUDA GPU; use --device cpu or auto")
    if name == "mps" and not _mps_available():
        raise KireiError("device 'mps' is not available: it needs Apple silicon and a torch built with MPS; "
                         "use --device cpu or auto")
    return torch.device(name)
