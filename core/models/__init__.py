"""Kirei's models: architectures by name, and the shipped models that use them.

A model is an nn.Module that declares what the rest of Kirei needs and nothing more:
  architecture, config     how to build it again (stored in its safetensors' metadata)
  scale                    of one pass (2); x4 and x1 are the model's own business
  modes                    what it takes: "profile" (a, W given), "blind" (it finds the stamp), "none"
  receptive_field(mode, scale)   input px each side one output pixel depends on
  seam_overlap             input px over which neighbouring tiles must be cross-faded (0: tiles are exact)
  forward(stamped, alpha, colour, mode=, scale=, jpeg=) -> (restored, opacity used)
The tiler, the region code, the command line and the worker ask these, never the layers.
Shipped models are core/weights/NAME.safetensors with NAME.json (see core.weights_io).
"""
DEFAULT_MODEL = "kirei-2"
# architecture name -> module defining it (imported when first built: torch is not needed before)
ARCHITECTURES = {"kirei-2": "kirei2:Kirei2", "stamp-finder": "finder:StampFinder"}
RESTORERS = {"kirei-2"}  # the architectures that restore pictures (--model); the stamp finder serves blind removal


def build(architecture, config):
    """A fresh model of a registered architecture (a ValueError naming what is known otherwise)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {architecture!r}, this Kirei runs {', '.join(sorted(ARCHITECTURES))}")
    import importlib
    module, cls = ARCHITECTURES[architecture].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(**config)
