"""Run pytest inside real Krita's embedded Python and leave with pytest's exit code.

    QT_QPA_PLATFORM=offscreen PYTHONPATH=plugins/krita:tests/krita kritarunner -s kr_pytest -f main -- ARGS

kritarunner always exits 0 on its own, hence os._exit.
"""
import os
import sys


def main(args):
    rc = 99
    try:
        if not getattr(sys, "argv", None):
            sys.argv = ["kritarunner"]
        import pytest
        from krita import Krita
        Krita.instance().setBatchmode(True)
        print("pytest in Krita %s" % Krita.instance().version())
        rc = int(pytest.main(list(args) + ["-p", "no:cacheprovider"]))
    except BaseException:  # SystemExit included
        import traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
