"""Kirei engine: removes a stamped watermark and super-resolves anime pictures.

Plain Python + torch/numpy/pillow; imports nothing from GIMP or Krita.
"""
import os

__version__ = "0.1.0"

# The engine shares the CPU with GIMP or Krita (and a CI machine with everything else). OpenMP's
# default lets torch's threads spin while they wait for each other; with the cores busy, a spinning
# thread steals the time slice its partner needs: the same estimate took 10x the CPU time (101 s
# against 14 s on a loaded 2-core machine). Sleeping waits cost little when the CPU is free.
# Set before torch is imported (it is read once, when OpenMP starts); a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
