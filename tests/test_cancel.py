"""The worker's runner is free again soon after a cancel, on a busy machine too: a cancel takes
effect inside a tile, not only between tiles (a small picture is one tile, and a cancelled job
that ran on to its end kept the runner busy for the next user's job), and torch's threads don't
spin while the CPU is shared."""
import json
import os
import time

import numpy as np
import pytest

from core.client import Client
from core.interrupt import poll, polling
from core.pipeline import Options, restore_pixels
from tests.conftest import picture


class Stop(Exception):
    pass


def test_poll_calls_the_current_function_on_this_thread_only():
    import threading
    calls = []
    poll()  # outside polling(): nothing happens
    with polling(lambda: calls.append(threading.get_ident())):
        poll()
        t = threading.Thread(target=poll)
        t.start()
        t.join()
        with polling(None):
            poll()
        poll()
    poll()
    assert calls == [threading.get_ident()] * 2


@pytest.mark.parametrize("method", ["learned", "classic"])
def test_progress_is_polled_inside_a_single_tile(method):
    px = picture(40, 30, seed=2)
    seen = []
    restore_pixels(px, options=Options(scale=4, method=method, tile=512), progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    if method == "learned":  # before every layer of both x2 passes, within the one tile
        assert len(seen) > 20, len(seen)


def test_raising_in_progress_stops_a_single_tile_run_midway():
    calls = []

    def progress(fraction):
        calls.append(fraction)
        if len(calls) == 5:
            raise Stop()

    with pytest.raises(Stop):
        restore_pixels(picture(40, 30, seed=2), options=Options(scale=4, method="learned"), progress=progress)
    assert len(calls) == 5 and all(f == 0.0 for f in calls)


def _until(condition, what, seconds=300):
    """Wait for condition() (a guard against hanging CI, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still waiting, after {seconds} s, for {what}"
        time.sleep(0.02)


def _state(worker, job_id):
    c = Client(url=worker.url, token=worker.token)
    status, _, data = c._request("GET", "/v1/jobs/%s" % job_id)
    assert status == 200, data
    return json.loads(data)


def test_a_cancelled_single_tile_job_stops_running(worker):
    """The job is one tile (a 4x pass over 300x300): cancelled while running, it ends 'cancelled',
    and the runner is free for the next job."""
    from core.client import JOB_TYPE, pack
    c = Client(url=worker.url, token=worker.token)
    px = (picture(300, 300, seed=4) * 255).astype(np.uint8)
    body = pack({"width": 300, "height": 300, "channels": 3, "dtype": "uint8", "scale": 4, "watermark": "none",
                 "tile": 4096}, [px.tobytes()])
    status, _, data = c._request("POST", "/v1/jobs", body, JOB_TYPE)
    assert status == 202, data
    job = json.loads(data)["id"]
    _until(lambda: _state(worker, job)["state"] != "queued", "the job to start")
    status, _, _ = c._request("DELETE", "/v1/jobs/%s" % job)
    assert status == 200
    _until(lambda: _state(worker, job)["state"] != "running", "the cancelled job to stop")
    state = _state(worker, job)
    assert state["state"] == "cancelled", state  # not run on to "done"
    small = (picture(12, 10, seed=1) * 255).astype(np.uint8)
    assert c.restore(small.tobytes(), 12, 10, 3, "uint8", watermark="none").width == 24


def test_the_engine_makes_torch_wait_without_spinning():
    """OpenMP threads spinning on a busy CPU made a small estimate take minutes: the engine asks
    for sleeping waits before torch starts, unless the user chose otherwise."""
    import subprocess
    import sys
    from tests.conftest import ROOT
    code = "import core, os, torch; torch.ones(1); print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "PASSIVE", out.stderr
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "ACTIVE", out.stderr
