"""Cooperative interruption: long computations call poll() often, and a caller can make it raise.

A worker's job is cancelled by its progress callback raising (core/server.py). Between tiles
the tiler reports progress itself; inside one tile (a whole small picture is one tile, and a
network pass over it can take seconds on a busy CPU) the models call poll() before each layer,
so a cancel takes effect within one layer's time instead of after the whole picture. The poll
function is thread-local: other threads (and calls made outside polling()) are not affected.
"""
import threading
from contextlib import contextmanager

_state = threading.local()


def poll():
    """Raise whatever the current polling() function raises (e.g. a job's Cancelled); else nothing."""
    fn = getattr(_state, "fn", None)
    if fn is not None:
        fn()


@contextmanager
def polling(fn):
    """Within the block, poll() on this thread calls fn (None: poll() does nothing)."""
    previous = getattr(_state, "fn", None)
    _state.fn = fn
    try:
        yield
    finally:
        _state.fn = previous
