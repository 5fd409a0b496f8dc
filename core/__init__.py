"""Kirei engine: removes a stamped watermark and super-resolves anime pictures.

Plain Python + torch/numpy/pillow; imports nothing from GIMP or Krita.
"""
__version__ = "0.1.0"
