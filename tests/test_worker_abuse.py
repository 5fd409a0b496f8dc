"""The worker under abuse, for real: a `python -m core serve` process and raw sockets.

What a careless or hostile client can do (issue 11): malformed headers and bodies, bad bytes in
the token, compressed or oversized or slow bodies, idle sockets by the hundred, a full queue,
jobs nobody fetches, a profile that is a decompression bomb. Every answer is a 4xx with a
message, never a 5xx; the worker stays up, responsive, and its memory flat.
"""
import http.client
import io
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from contextlib import contextmanager
from urllib.parse import urlsplit

import numpy as np
import png
import pytest

from core import client as kc
from tests.conftest import ROOT, RunningWorker


# ---------------------------------------------------------------- helpers
def _address(worker):
    u = urlsplit(worker.url)
    return u.hostname, u.port


def _request(worker, method, path, body=None, headers=None, token="right", timeout=60):
    """(status, body) over http.client; header values may be bytes (sent as they are)."""
    conn = http.client.HTTPConnection(*_address(worker), timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        all_headers = dict(headers or {})
        if token == "right":
            all_headers.setdefault("Authorization", "Bearer " + worker.token)
        if body is not None:
            all_headers.setdefault("Content-Length", str(len(body)))
        for k, v in all_headers.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _first_line(sock, timeout=60):
    """The first line the server sends on a raw socket ('' if it closes without a word)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[0].decode("latin-1")


def _raw_headers(worker, lines):
    host, port = _address(worker)
    return ("\r\n".join(lines + [f"Host: {host}:{port}", "", ""])).encode("latin-1")


def _job_body(w=6, h=5, c=3, dtype="uint8", pixels=None, **header):
    if pixels is None:
        pixels = np.arange(w * h * c, dtype=np.uint8).astype(dtype).tobytes()
    blobs = [pixels] + ([header.pop("profile")] if "profile" in header else [])
    if len(blobs) > 1:
        header.update(watermark="profile", profile_bytes=len(blobs[1]))
    return kc.pack(dict({"width": w, "height": h, "channels": c, "dtype": dtype, "scale": 2, "watermark": "none"},
                        **header), blobs)


def _blocker_body():
    """A job that keeps the runner busy for minutes (it is always cancelled)."""
    px = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    return _job_body(1200, 1200, 3, pixels=px.tobytes(), tile=64)


def _submit(worker, body):
    status, data = _request(worker, "POST", "/v1/jobs", body)
    assert status == 202, (status, data)
    return json.loads(data)["id"]


def _health(worker):
    status, data = _request(worker, "GET", "/v1/health")
    assert status == 200, (status, data)
    return json.loads(data)


def _wait_for(predicate, what, deadline=90):
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, f"never happened: {what}"
        time.sleep(0.1)


def _rss(pid):
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))


def _peak_rss(pid):
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))


def _sockets(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def _png_header_only(width, height):
    """A PNG that claims width x height RGBA and holds almost nothing: a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _profile_png(width, height, corrupt=False):
    from core.profile import Profile, profile_png
    alpha = np.zeros((height, width), np.float32)
    alpha[1:-1, 1:-1] = 0.3
    data = profile_png(Profile(alpha, np.ones((height, width, 3), np.float32)))
    if corrupt:  # header intact, compressed pixels broken
        at = data.index(b"IDAT") + 8
        data = data[:at] + bytes(b ^ 0x5A for b in data[at:at + 40]) + data[at + 40:]
    return data


def _big_profile_png(width, height, marked):
    """An 8-bit RGBA profile PNG of width x height, written row by row (little memory here), with a
    watermark only in the rectangle marked = (x, y, w, h)."""
    x, y, w, h = marked
    blank = bytearray(width * 4)
    stamped = bytearray(blank)
    stamped[x * 4:(x + w) * 4] = bytes([255, 255, 255, 80]) * w
    buf = io.BytesIO()
    png.Writer(width, height, greyscale=False, alpha=True, bitdepth=8).write(
        buf, (stamped if y <= i < y + h else blank for i in range(height)))
    return buf.getvalue()


def _result(worker, job):
    """(status, body) of a job's result once it has ended."""
    while True:
        status, data = _request(worker, "GET", f"/v1/jobs/{job}/result?wait=10")
        if status != 202:
            return status, data


@contextmanager
def _serving(args, log, **popen):
    """A `core serve` process with these arguments (its stderr in `log`): yields (process, URL); ended after."""
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "core", "serve", *map(str, args)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=fh, **popen)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)  # a worker that never starts fails, not hangs
        url = proc.stdout.readline().decode().strip() if ready else ""
        assert url.startswith("http://"), open(log).read()[-2000:]
        yield proc, url
    finally:
        proc.kill()
        proc.wait(30)
        proc.stdout.close()


@pytest.fixture
def limited(tmp_path, monkeypatch):
    """Start workers with KIREI_WORKER_LIMITS set; all are ended after the test."""
    started = []

    def start(limits, *args):
        monkeypatch.setenv("KIREI_WORKER_LIMITS", limits)
        w = RunningWorker(tmp_path / f"w{len(started)}", *args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


# ---------------------------------------------------------------- section 3: never a 5xx
def test_deeply_nested_header_is_a_400(worker):
    body = struct.pack(">I", 5000) + b"[" * 5000
    status, data = _request(worker, "POST", "/v1/jobs", body)
    assert status == 400 and "not valid JSON" in json.loads(data)["error"]
    with pytest.raises(ValueError):
        kc.unpack(body)


def test_bad_bytes_in_the_authorization_header_are_a_401(worker):
    for value in (b"Bearer \xe9", b"Bearer \xff\xfe" + worker.token.encode(), b"\xe9\xe9", b"Bearer \xed\xa0\x80"):
        status, data = _request(worker, "GET", "/v1/health", headers={"Authorization": value})
        assert status == 401, (value, status, data)
        assert "token" in json.loads(data)["error"]


def test_a_token_file_with_other_than_ascii_is_refused_in_one_line(tmp_path):
    token = tmp_path / "token"
    token.write_text("t\u00f6k\u00e9n-secret\n", encoding="utf-8")
    token.chmod(0o600)
    p = subprocess.run([sys.executable, "-m", "core", "serve", "--token-file", str(token)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "ASCII" in p.stderr and "Traceback" not in p.stderr, p.stderr
    with pytest.raises(kc.KireiClientError, match="ASCII"):
        kc.read_token(str(token))


def test_two_clients_fetching_one_result_at_once(worker):
    """Both wait on the job; when it ends, one gets the result and the other a 404, not a 500."""
    blocker = _submit(worker, _blocker_body())
    job = _submit(worker, _job_body())
    answers = []

    def fetch():
        answers.append(_request(worker, "GET", f"/v1/jobs/{job}/result?wait=30"))

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    _wait_for(lambda: _health(worker)["busy"], "the blocker runs")
    time.sleep(0.5)  # let both result requests reach their wait (the test holds either way)
    assert _request(worker, "DELETE", f"/v1/jobs/{blocker}")[0] == 200
    for t in threads:
        t.join(120)
    assert sorted(status for status, _ in answers) == [200, 404], answers


def test_a_decompression_bomb_profile_is_refused_from_its_header(worker):
    bomb = _png_header_only(30000, 30000)
    status, data = _request(worker, "POST", "/v1/jobs", _job_body(profile=bomb, image_size=[30000, 30000]))
    assert status == 413, (status, data)
    assert "30000x30000" in json.loads(data)["error"]


# ---------------------------------------------------------------- section 5 (worker side): bad input
def test_a_profile_of_another_size_is_refused(worker):
    region = dict(w=60, h=40)
    for size, header, reason in (((40, 60), {"image_size": [60, 40]}, "60x40 but the watermark profile is 40x60"),
                                 ((20, 20), {"image_size": [60, 40]}, "60x40 but the watermark profile is 20x20"),
                                 ((60, 40), {}, "'image_size'.* must come with a watermark profile")):
        status, data = _request(worker, "POST", "/v1/jobs", _job_body(
            **region, c=3, profile=_profile_png(*size), **header))
        assert status == 400, (size, header, status, data)
        assert re.search(reason, json.loads(data)["error"]), data
    status, data = _request(worker, "POST", "/v1/jobs", _job_body(**region, profile=_profile_png(60, 40),
                                                                  image_size=[60, 40]))
    assert status == 202, data
    job = json.loads(data)["id"]
    assert _request(worker, "GET", f"/v1/jobs/{job}/result?wait=30")[0] in (200, 202)
    _request(worker, "DELETE", f"/v1/jobs/{job}")


def test_the_client_sends_the_pictures_size(worker, tmp_path):
    path = tmp_path / "profile.png"
    path.write_bytes(_profile_png(40, 60))  # transposed
    px = np.zeros((40, 60, 3), np.uint8)
    with pytest.raises(kc.JobFailed, match="60x40 but the watermark profile is 40x60"):
        worker.client().restore(px.tobytes(), 60, 40, 3, "uint8", watermark="profile", profile=str(path),
                                image_size=(60, 40))


def test_the_profile_is_decoded_by_the_runner_not_the_request(worker):
    """A profile whose header is right is taken at once (its pixels are decoded when the job runs,
    off the event loop): broken pixels fail the job with the reason."""
    status, data = _request(worker, "POST", "/v1/jobs", _job_body(
        60, 40, profile=_profile_png(60, 40, corrupt=True), image_size=[60, 40]))
    assert status == 202, data
    job = json.loads(data)["id"]
    deadline = time.monotonic() + 120
    while True:
        status, data = _request(worker, "GET", f"/v1/jobs/{job}/result?wait=5")
        if status != 202 or time.monotonic() > deadline:
            break
    assert status == 422, (status, data)
    assert "watermark profile" in json.loads(data)["error"]


def test_a_small_job_decodes_only_its_part_of_a_big_profile(limited):
    """Memory in proportion to the job: a 300x300 region of an 8000x8000 picture decodes 300x300 of
    its profile, not the whole (1 GB as floats)."""
    w = limited("")
    region, offset, size = (300, 300), (4000, 200), (8000, 8000)
    small = _job_body(*region, profile=_big_profile_png(*region, (0, 0, *region)), image_size=list(region), scale=1)
    assert _result(w, _submit(w, small))[0] == 200  # the engine's first allocations (the model) done
    before = _peak_rss(w.proc.pid)
    big = _job_body(*region, profile=_big_profile_png(*size, (*offset, *region)), image_size=list(size),
                    offset=list(offset), scale=1)
    status, data = _result(w, _submit(w, big))
    assert status == 200, data
    assert _peak_rss(w.proc.pid) - before < 150 * 2 ** 20


def test_a_region_too_large_is_one_check_and_one_message(limited):
    w = limited("", "--max-pixels", "1000")
    status, data = _request(w, "POST", "/v1/jobs", _job_body(50, 40))
    assert status == 413
    assert json.loads(data)["error"] == "the region is 50x40 = 0.0 megapixels, more than Kirei reads (0.001)"


def test_huge_finite_floats_never_come_back_as_nan(worker):
    px = np.full((5, 6, 3), 3.4e38, np.float32)
    px[0, 0] = -3.4e38
    res = worker.client().restore(px.tobytes(), 6, 5, 3, "float32", scale=1, watermark="none")
    out = np.frombuffer(res.pixels, "<f4")
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


# ---------------------------------------------------------------- section 4: bodies
def test_compressed_chunked_and_oversized_bodies_are_refused_before_reading(tmp_path):
    w = RunningWorker(tmp_path, "--max-body-mb", "1")
    try:
        body = zlib.compress(_job_body())
        status, data = _request(w, "POST", "/v1/jobs", body, headers={"Content-Encoding": "gzip"})
        assert status == 415 and "compressed" in json.loads(data)["error"]
        with socket.create_connection(_address(w)) as s:  # declares 3 GiB, sends nothing: 413 at once
            s.sendall(_raw_headers(w, ["POST /v1/jobs HTTP/1.1", f"Authorization: Bearer {w.token}",
                                       "Content-Length: 3221225472"]))
            assert " 413 " in _first_line(s)
        with socket.create_connection(_address(w)) as s:
            s.sendall(_raw_headers(w, ["POST /v1/jobs HTTP/1.1", f"Authorization: Bearer {w.token}",
                                       "Transfer-Encoding: chunked"]))
            assert " 411 " in _first_line(s)
        assert w.alive()
    finally:
        w.stop()


def test_expect_100_continue_only_after_the_token(worker):
    for token, want in (("wrong", " 401 "), (worker.token, " 100 ")):
        with socket.create_connection(_address(worker)) as s:
            s.sendall(_raw_headers(worker, ["POST /v1/jobs HTTP/1.1", f"Authorization: Bearer {token}",
                                            "Content-Length: 100", "Expect: 100-continue"]))
            assert want in _first_line(s), token


# ---------------------------------------------------------------- section 4: connections, queue, leases
def test_idle_and_slow_connections_are_closed(limited):
    w = limited("idle=1")
    host_port = _address(w)
    idle = [socket.create_connection(host_port) for _ in range(5)]
    slow = socket.create_connection(host_port)
    slow.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    body = socket.create_connection(host_port)  # a body that never comes
    body.sendall(_raw_headers(w, ["POST /v1/jobs HTTP/1.1", f"Authorization: Bearer {w.token}",
                                  "Content-Length: 1000"]) + b"\0" * 10)
    try:
        for s in idle + [slow]:
            assert _first_line(s) == ""  # closed by the worker without a word
        assert " 408 " in _first_line(body)
    finally:
        for s in idle + [slow, body]:
            s.close()


def test_silent_connections_are_closed_whatever_aiohttp_does():
    """The worker's own time-out for a connection that never brings a request (aiohttp's keep-alive
    timer covers that wait only in its newest versions)."""
    from types import SimpleNamespace

    from core.limits import ConnectionCap

    class Connection:
        def __init__(self):
            self.transport = object()

        def force_close(self):
            self.transport = None

    cap = ConnectionCap(limit=10, idle=15)
    server = SimpleNamespace(connections=[Connection(), Connection()])
    silent, served = server.connections
    cap.tend(server, now=100.0)
    with cap.busy(served):
        pass
    later = Connection()
    server.connections.append(later)
    cap.tend(server, now=114.0)
    assert all(c.transport for c in server.connections)
    cap.tend(server, now=115.0)
    assert silent.transport is None and served.transport and later.transport
    cap.tend(server, now=129.0)
    assert later.transport is None and served.transport


def test_the_connection_cap_makes_room_but_never_cuts_a_request(limited):
    """Idle sockets far beyond the cap (and never timed out here): the oldest idle ones are closed,
    a plugin still gets through, and a connection in the middle of a request is kept."""
    w = limited("idle=600,connections=20")
    host_port = _address(w)
    body = _job_body()
    uploading = socket.create_connection(host_port)  # the oldest connection, its body half sent
    uploading.sendall(_raw_headers(w, ["POST /v1/jobs HTTP/1.1", f"Authorization: Bearer {w.token}",
                                       f"Content-Length: {len(body)}"]) + body[:10])
    assert _health(w)["protocol"] == kc.PROTOCOL  # a round trip: the worker is on the upload
    crowd = []
    try:
        crowd += [socket.create_connection(host_port, timeout=60) for _ in range(60)]
        # a plugin gets through; and, accepted after the crowd, it means the worker has taken them all
        assert _health(w)["protocol"] == kc.PROTOCOL
        # the cap; the listener, the loop's own pair, one in the making
        _wait_for(lambda: _sockets(w.proc.pid) <= 20 + 4, "connections beyond the cap closed")
        uploading.sendall(body[10:])
        assert " 202 " in _first_line(uploading)
    finally:
        for s in crowd + [uploading]:
            s.close()


def test_the_queue_is_bounded(limited):
    w = limited("queue=2")
    blocker = _submit(w, _blocker_body())
    _wait_for(lambda: _health(w)["busy"], "the blocker runs")
    waiting = [_submit(w, _job_body()) for _ in range(2)]
    status, data = _request(w, "POST", "/v1/jobs", _job_body())
    assert status == 429 and "busy" in json.loads(data)["error"]
    for job in waiting + [blocker]:
        _request(w, "DELETE", f"/v1/jobs/{job}")


def test_a_cancelled_job_frees_its_request_at_once(limited):
    w = limited("")
    blocker = _submit(w, _blocker_body())
    _wait_for(lambda: _health(w)["busy"], "the blocker runs")
    size = 200 * 2 ** 20
    big = _submit(w, _job_body(10240, size // (10240 * 4), 4, pixels=bytes(size)))
    held = _rss(w.proc.pid)
    assert _request(w, "DELETE", f"/v1/jobs/{big}")[0] == 200
    assert _rss(w.proc.pid) < held - size // 2
    _request(w, "DELETE", f"/v1/jobs/{blocker}")


def test_cancelling_a_finished_job_drops_its_result(worker):
    job = _submit(worker, _job_body())
    _wait_for(lambda: json.loads(_request(worker, "GET", f"/v1/jobs/{job}")[1])["state"] == "done", "the job ran")
    status, data = _request(worker, "DELETE", f"/v1/jobs/{job}")
    assert status == 200 and json.loads(data)["state"] == "cancelled", data
    assert _request(worker, "GET", f"/v1/jobs/{job}/result")[0] == 410


def test_a_job_cancelled_as_it_ends_keeps_no_result():
    """The client's cancel comes while the runner finishes the job: its result isn't kept either."""
    import asyncio
    from types import SimpleNamespace

    from core.server import Job, Worker

    def finish_anyway(job):  # the runner's last step, with the cancel arriving meanwhile
        job.cancel.set()
        job.result, job.state = b"pixels", "done"

    async def scenario():
        worker = Worker("token", SimpleNamespace(type="cpu"), 1000, 0)
        worker._run = finish_anyway
        job = Job(None)
        worker.jobs[job.id] = job
        worker.queue.append(job)
        runner = asyncio.create_task(worker.run_jobs())
        worker.wakeup.set()
        await asyncio.wait_for(job.finished.wait(), 60)
        runner.cancel()
        worker.executor.shutdown()
        worker.parser.shutdown()
        return job

    job = asyncio.run(scenario())
    assert job.state == "cancelled" and job.result is None


def test_jobs_no_client_asks_about_are_cancelled_and_dropped(limited):
    w = limited("lease=2")
    done = _submit(w, _job_body())  # finished, never fetched
    _wait_for(lambda: not _health(w)["busy"] and not _health(w)["queued"], "the small job ran")
    _submit(w, _blocker_body())  # its client went away
    _wait_for(lambda: _health(w)["held"] == 0, "both jobs dropped")
    _wait_for(lambda: not _health(w)["busy"], "the dropped job stopped (at its next poll)")
    assert _request(w, "GET", f"/v1/jobs/{done}/result")[0] == 404


def test_a_flood_of_connections_neither_locks_out_nor_fills_the_log(tmp_path):
    """With a low open-file limit, hundreds of idle sockets that the idle time-out won't close: the
    connection cap keeps the worker below the limit (no accept errors) and its log stays small."""
    import resource

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    log, token, crowd = tmp_path / "worker.log", tmp_path / "token", []
    env = dict(os.environ, KIREI_WORKER_LIMITS="idle=600")  # only the cap can make room
    with _serving(["--token-file", token], log, preexec_fn=low_limit, env=env) as (proc, url):
        w = type("W", (), {"url": url, "token": token.read_text().strip()})
        try:
            for _ in range(400):
                crowd.append(socket.create_connection(_address(w), timeout=60))
            time.sleep(1)  # the worker's accept loop gets to them all (the test holds either way)
            assert _health(w)["protocol"] == kc.PROTOCOL
            assert proc.poll() is None
            assert log.stat().st_size < 20000, log.read_text()[-2000:]
        finally:
            for s in crowd:
                s.close()


def test_the_log_is_rate_limited(monkeypatch):
    import logging

    from core import limits
    now = [0.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    keep = limits.RateLimitedLog(burst=3, period=60)
    records = [logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %d", (i,), None) for i in range(11)]
    assert [keep.filter(r) for r in records[:10]] == [True] * 3 + [False] * 7
    now[0] = 61.0
    assert keep.filter(records[10]) and records[10].getMessage() == "(7 log messages left out in the last 60 s) boom 10"


def test_limits_from_the_environment():
    from core.errors import KireiError
    from core.limits import Limits
    assert Limits.from_environment({"KIREI_WORKER_LIMITS": "queue=3, lease=2.5"}) == Limits(queue=3, lease=2.5)
    for bad in ("nope=1", "queue=x", "idle=0"):
        with pytest.raises(KireiError, match="KIREI_WORKER_LIMITS"):
            Limits.from_environment({"KIREI_WORKER_LIMITS": bad})


# ---------------------------------------------------------------- section 7: token, host, clients
def test_token_files_and_folders_are_private(tmp_path):
    folder = tmp_path / "new" / "kirei"
    token = str(folder / "token")
    with _serving(["--token-file", token], tmp_path / "worker.log"):  # makes the folder and the token
        pass
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
    assert oct(os.stat(token).st_mode & 0o777) == "0o600"
    os.chmod(token, 0o644)
    p = subprocess.run([sys.executable, "-m", "core", "serve", "--token-file", token], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "chmod 600" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_all_interfaces_gives_a_usable_url_and_a_warning(tmp_path):
    w = RunningWorker(tmp_path, "--host", "0.0.0.0")
    try:
        assert "0.0.0.0" not in w.url
        assert _health(w)["protocol"] == kc.PROTOCOL
        _wait_for(lambda: "plain HTTP" in open(w.log_path).read(), "the warning", deadline=30)
    finally:
        w.stop()


# ---------------------------------------------------------------- the fuzz run
def _mutations(rng, token):
    """Malformed requests: (method, path, headers, body). Deterministic for a given rng."""
    valid = _job_body()
    paths = ["/v1/jobs", "/v1/estimate", "/v1/health", "/v1/jobs/x/result", "/v1/jobs/" + "a" * 300, "/",
             "/v1/jobs/%00", "/v1/jobs/..%2f..%2fetc", "/v1/jobs/1/result?wait=nan", "/v1/jobs/1/result?wait=1e999"]
    auths = [b"Bearer " + token.encode(), b"Bearer \xe9", b"Bearer", b"", b"Basic Zm9vOmJhcg==",
             b"Bearer " + token.encode() + b"\xff", b"Bearer " + b"A" * 6000]
    while True:
        kind = rng.integers(0, 6)
        method = "POST" if rng.random() < 0.6 else ["GET", "DELETE", "PUT", "PATCH"][rng.integers(0, 4)]
        # most carry the right token, so that what follows reaches the parsers and handlers
        headers = {"Authorization": auths[rng.integers(0, len(auths))] if rng.random() < 0.25 else auths[0]}
        body = bytearray(valid)
        if kind == 0:  # flipped bytes
            for _ in range(rng.integers(1, 8)):
                body[rng.integers(0, len(body))] ^= int(rng.integers(1, 256))
        elif kind == 1:  # cut or padded
            body = body[:rng.integers(0, len(body))] if rng.random() < 0.5 else body + bytes(rng.integers(1, 50))
        elif kind == 2:  # deep or huge JSON headers
            text = rng.choice([b"[" * 5000, b"{\"a\":" * 3000, b"1" * 5000, b"\"" + b"\\u" * 100 + b"\""])
            body = bytearray(struct.pack(">I", len(text)) + text)
        elif kind == 3:  # header fields of the wrong kind
            field = rng.choice(["width", "height", "offset", "image_size", "profile_bytes", "scale", "tile"])
            value = [None, -1, 2 ** 70, 3.5, "x", [1, 2, 3], {"a": 1}, [2 ** 40, 1], True][rng.integers(0, 9)]
            header, payload = kc.unpack(valid)
            header[field] = value
            body = bytearray(kc.pack(header, [payload]))
        elif kind == 4:  # exotic HTTP headers
            headers[rng.choice(["Content-Encoding", "Expect", "Content-Type", "X-" + "a" * 100])] = rng.choice(
                [b"gzip", b"deflate, br", b"100-continue", b"\xff\xfe", b"x" * 7000])
        else:  # random bytes
            body = bytearray(rng.bytes(int(rng.integers(0, 300))))
        path = "/v1/jobs" if kind < 4 and method == "POST" and rng.random() < 0.8 else paths[rng.integers(0, len(paths))]
        yield method, path, headers, bytes(body) if method in ("POST", "PUT", "PATCH") else None


def test_fuzz_run_no_5xx_worker_alive_memory_flat(limited):
    w = limited("")
    rng = np.random.default_rng(11)
    requests = _mutations(rng, w.token)
    statuses = {}

    def run(n):
        for _ in range(n):
            method, path, headers, body = next(requests)
            try:
                status, _ = _request(w, method, path, body, headers=headers, token=None, timeout=60)
            except (http.client.HTTPException, ConnectionError):
                status = "closed"  # the worker may refuse a malformed request by closing
            statuses[status] = statuses.get(status, 0) + 1
            assert status == "closed" or status < 500, (method, path, headers, body[:200] if body else body)

    run(300)  # warm up: first allocations, caches
    before = _rss(w.proc.pid)
    run(2000)
    after = _rss(w.proc.pid)
    assert w.alive() and _health(w)["protocol"] == kc.PROTOCOL
    assert after - before < 30 * 2 ** 20, (before, after, statuses)
    assert sum(statuses.values()) == 2300 and statuses.get("closed", 0) < 100, statuses
