"""core/allocator.py: with freed memory kept, reallocating a block of megabytes again and again no
longer faults its pages in each time (the kernel time that halved CPU restores). Each case runs
in its own process: malloc's settings are the whole process's and can't be undone."""
import subprocess
import sys

import pytest

from core.allocator import has_glibc_malloc
from tests.conftest import ROOT

glibc_only = pytest.mark.skipif(not has_glibc_malloc(), reason="glibc only")


def run_python(script, *args):
    """stdout of `python -c script args` run from the project root (a process of its own)."""
    p = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout

CHURN = """
import resource, sys
import numpy as np
if sys.argv[1] == "kept":
    from core.allocator import keep_freed_memory
    assert keep_freed_memory()
np.ones(8 << 20)  # a first block of 64 MB, touched
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(8 << 20)  # allocated, every page written, freed
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode):
    return int(run_python(CHURN, mode))


@glibc_only
def test_kept_memory_is_reused_without_faulting_its_pages_in_again():
    default, kept = page_faults("default"), page_faults("kept")
    # given back, each block is faulted in anew (16,384 pages of 4 KiB, or 32 huge pages, each time)
    assert default > 20 * 32
    assert kept < default / 20


def test_elsewhere_nothing_is_changed(monkeypatch):
    from core import allocator
    allocator._glibc.cache_clear()  # this process may have looked glibc up already
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    try:
        assert allocator.keep_freed_memory() is False
    finally:
        allocator._glibc.cache_clear()


GIVE_BACK = """
import sys
import numpy as np
from core.allocator import give_back_memory, keep_freed_memory
assert keep_freed_memory()

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2 ** 20

base = rss_mb()
blocks = [np.ones(1 << 17) for _ in range(400)]  # 400 blocks of 1 MB, touched
del blocks[::2]  # every other one freed: holes in the heap, which trimming its top can't return
kept = rss_mb()
give_back_memory()
print(base, kept, rss_mb())
"""


@glibc_only
def test_what_was_kept_is_given_back_between_jobs():
    base, kept, after = (float(v) for v in run_python(GIVE_BACK).split())
    assert kept - base > 350  # the freed half is still held...
    assert after - base < 250  # ...until given back: the 200 MB still in use stay
