# exec'ed by python-fu-eval inside gimp-console-3.0 (see tests/test_gimp.py):
#   gimp-console-3.0 -i --batch-interpreter=python-fu-eval -b "exec(open('/project/gimp_pytest.py').read())" --quit
# pytest runs in the python-fu-eval plug-in's process, which talks to GIMP through libgimp.
# Raising makes gimp-console exit with status 64, so failures reach the host.
import os
import sys

import pytest
from gi.repository import Gimp

print("pytest in GIMP %s" % Gimp.version())
if not getattr(sys, "argv", None):
    sys.argv = ["python-eval"]
_rc = pytest.main(os.environ["PYTEST_ARGS"].split() + ["-p", "no:cacheprovider"])
sys.stdout.flush()
if _rc != 0:
    raise RuntimeError("pytest inside GIMP failed with exit code %d" % _rc)
