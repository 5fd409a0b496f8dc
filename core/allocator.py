"""Keep the memory torch frees for reuse (glibc's malloc): the CPU paths ran half in the kernel.

On the CPU, torch allocates and frees tensors of megabytes at every layer of a tile and every step
of estimation. glibc hands such blocks straight back to the system (mmap'd blocks, and the heap's
top trimmed) and each page touched again costs a fault: a x2 restore of a 466x660 picture spent
half its CPU time in the kernel. With freed blocks kept in the heap they are reused: that restore
took 3.5 s instead of 5.4, estimation from 20 pictures 8.3 s instead of 13.8 (2026-12-07, 2 cores),
for more peak memory (1.98 GB instead of 1.73 there; a blind 6000x4000 x2 restore 3.76 GiB instead
of 3.13: README, Speed and memory). `python -m core` sets this for every command
(the worker included); the benchmarks too, to measure what users get. What is kept would stay
with a long-lived worker after a big job: it gives it back after each job (give_back_memory).
Where malloc isn't glibc's (macOS, Windows, musl) nothing is changed.
"""
import ctypes
import functools
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 1 << 30  # bytes: blocks below this come from the heap and are reused when freed
TRIM_THRESHOLD = 256 << 20  # bytes: free memory at the heap's top kept before it is given back


@functools.lru_cache(maxsize=None)
def _glibc():
    """glibc as a ctypes library, or None where malloc is another's."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's name on every Linux (find_library would run ldconfig)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def has_glibc_malloc():
    """Whether this process's malloc is glibc's, which these settings are for."""
    return _glibc() is not None


def keep_freed_memory():
    """Set glibc's malloc to keep freed blocks (see the module doc); True where it was set."""
    libc = _glibc()
    if not libc:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def give_back_memory():
    """Return the free memory malloc keeps to the system (between a worker's jobs)."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)
