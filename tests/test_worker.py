"""The worker and its client, for real: a `python -m core serve` process on 127.0.0.1 and the
standard-library client the plugins carry, over real sockets."""
import io
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.request
from urllib.error import HTTPError

import numpy as np
import pytest
from PIL import Image

from core import client as kc
from core import synth
from core.pipeline import Options
from core.region import restore_region
from tests.conftest import ROOT, RunningWorker, picture


def _direct(pixels, offset=(0, 0), mask=None, profile=None, scale=2):
    return restore_region(pixels, offset=offset, mask=mask, profile=profile, options=Options(scale=scale))


def _result_array(res):
    return np.frombuffer(res.pixels, dtype=np.dtype(res.dtype).newbyteorder("<")).reshape(
        res.height, res.width, res.channels)


def _raw(worker, method, path, body=None, token="right", headers=None):
    req = urllib.request.Request(worker.url + path, data=body, method=method)
    if token == "right":
        req.add_header("Authorization", "Bearer " + worker.token)
    elif token:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except HTTPError as e:
        return e.code, e.read()


def test_jobs_through_the_worker_equal_the_direct_call(worker, scene):
    stamped, profile_path, _, _ = scene
    from core.profile import load_profile
    profile = load_profile(profile_path)  # the worker sees the PNG, so compare with what the PNG holds
    c = worker.client()
    rgba = np.dstack([np.rint(stamped * 255), np.full(stamped.shape[:2], 255)]).astype(np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[5:35, 10:50] = 255
    mask[20:35, 10:20] = 128
    part = np.ascontiguousarray(rgba[10:50, 20:80])
    cases = [
        (part, dict(offset=(20, 10), mask=mask, profile=profile), dict(offset=(20, 10), mask=mask.tobytes(),
                                                                        watermark="profile", profile=profile_path,
                                                                        image_size=stamped.shape[1::-1])),
        ((stamped * 65535).astype(np.uint16), dict(scale=4), dict(scale=4, watermark="none")),
        (stamped[..., :1].astype(np.float32), dict(scale=1), dict(scale=1, watermark="none")),
    ]
    for pixels, direct_kw, client_kw in cases:
        want = _direct(pixels, **direct_kw)
        h, w, ch = pixels.shape
        got = c.restore(pixels.tobytes(), w, h, ch, pixels.dtype.name, **client_kw)
        assert got.offset == want.offset
        arr = _result_array(got)
        assert arr.dtype == want.pixels.dtype
        np.testing.assert_array_equal(arr, want.pixels)


def test_blind_mode_is_the_engines_blind_answer_and_says_what_it_found(worker):
    """Blind through the worker is the engine's blind answer, with what was found as the notice
    the plugins show; a picture the finder finds nothing in (or without a finder) is only upscaled."""
    from core.blind import find_watermark
    from core.imageio import to_float
    px = (picture(40, 32, seed=2) * 255).astype(np.uint8)
    res = worker.client().restore(px.tobytes(), 40, 32, 3, "uint8", scale=2, watermark="blind")
    found = find_watermark(to_float(px))
    assert res.notice.lower() == found.summary() + "."
    assert (res.width, res.height, res.channels) == (80, 64, 4)
    got = _result_array(res)
    np.testing.assert_array_equal(got, restore_region(px, options=Options(scale=2, blind=True)).pixels)
    if found.profile is None:
        np.testing.assert_array_equal(got, _direct(px).pixels)


def test_a_job_that_asks_for_the_matte_gets_the_opacity_taken_off(worker, scene):
    """"matte": true sends back the engine's matte after the pixels (none when nothing was taken
    off); anything but a bool is refused."""
    stamped, profile_path, _, _ = scene
    from core.profile import load_profile
    px = np.rint(stamped * 255).astype(np.uint8)
    h, w = px.shape[:2]
    c = worker.client()
    got = c.restore(px.tobytes(), w, h, 3, "uint8", scale=2, watermark="profile", profile=profile_path,
                    image_size=(w, h), matte=True)
    want = restore_region(px, profile=load_profile(profile_path), options=Options(scale=2), matte=True)
    assert got.misfit((0, 0, w, h), 2, 4, "uint8") is None
    np.testing.assert_array_equal(_result_array(got), want.pixels)
    np.testing.assert_array_equal(np.frombuffer(got.matte, np.uint8).reshape(2 * h, 2 * w), want.matte)
    plain = c.restore(px.tobytes(), w, h, 3, "uint8", scale=2, watermark="none", matte=True)
    assert plain.matte is None and len(plain.pixels) == 4 * w * h * 4
    body = kc.pack({"width": 2, "height": 2, "channels": 3, "dtype": "uint8", "matte": "yes"}, [bytes(12)])
    status, data = _raw(worker, "POST", "/v1/jobs", body, headers={"Content-Type": kc.JOB_TYPE})
    assert status == 400 and "'matte' must be true or false" in json.loads(data)["error"]


def test_a_job_asks_for_eight_views_or_one_or_lets_the_worker_decide(worker):
    """"tta": true runs the model on the 8 flips and turns (the engine's tta=True), false on one view;
    without it the worker decides as the engine does (JPEG input this small: 8 views; clean: one).
    Anything but a bool is refused."""
    px = (picture(36, 28, seed=5) * 255).astype(np.uint8)
    c = worker.client()

    def ask(**kw):
        return _result_array(c.restore(px.tobytes(), 36, 28, 3, "uint8", scale=2, watermark="none", **kw))

    def engine(**kw):
        return restore_region(px, options=Options(scale=2, **kw)).pixels

    best = ask(tta=True)
    np.testing.assert_array_equal(best, engine(tta=True))
    np.testing.assert_array_equal(ask(), engine(tta=False))
    assert np.abs(best.astype(int) - ask().astype(int)).max() > 0
    np.testing.assert_array_equal(ask(jpeg=True), engine(jpeg=True, tta=True))
    np.testing.assert_array_equal(ask(jpeg=True, tta=False), engine(jpeg=True, tta=False))
    body = kc.pack({"width": 2, "height": 2, "channels": 3, "dtype": "uint8", "tta": 1}, [bytes(12)])
    status, data = _raw(worker, "POST", "/v1/jobs", body, headers={"Content-Type": kc.JOB_TYPE})
    assert status == 400 and "'tta' must be true or false" in json.loads(data)["error"]


def test_a_job_runs_the_model_it_names(worker):
    """"model": kirei-fast runs kirei-fast (the engine's own answer with that model), not the default."""
    px = (picture(36, 28, seed=4) * 255).astype(np.uint8)
    c = worker.client()
    fast = c.restore(px.tobytes(), 36, 28, 3, "uint8", scale=2, watermark="blind", model="kirei-fast")
    assert fast.notice and (fast.width, fast.height, fast.channels) == (72, 56, 4)
    got = _result_array(fast)
    np.testing.assert_array_equal(got, restore_region(px, options=Options(scale=2, blind=True,
                                                                          model="kirei-fast")).pixels)
    default = _result_array(c.restore(px.tobytes(), 36, 28, 3, "uint8", scale=2, watermark="blind"))
    named = _result_array(c.restore(px.tobytes(), 36, 28, 3, "uint8", scale=2, watermark="blind", model="kirei-2"))
    np.testing.assert_array_equal(named, default)
    assert np.abs(got.astype(int) - default.astype(int)).mean() > 1  # another model: other pixels


def test_a_job_says_or_the_worker_sees_whether_its_pixels_went_through_jpeg(worker):
    """"jpeg": true takes the model's JPEG body, false the clean one; without the field the worker
    looks at the pixels: a JPEG's get the JPEG body, others the clean one."""
    clean = np.asarray(synth.anime_picture(200, 150, seed=4).convert("RGB"))
    buf = io.BytesIO()
    Image.fromarray(clean).save(buf, "JPEG", quality=80)
    jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    c = worker.client()

    def run(px, said):
        return _result_array(c.restore(px.tobytes(), 200, 150, 3, "uint8", scale=2, watermark="none",
                                       model="kirei-fast", jpeg=said))

    for px in (clean, jpeg):
        as_jpeg, as_clean = run(px, True), run(px, False)
        assert np.abs(as_jpeg.astype(int) - as_clean.astype(int)).mean() > 0.2  # two bodies, two answers
        np.testing.assert_array_equal(run(px, None), as_jpeg if px is jpeg else as_clean)


@pytest.mark.parametrize("model", ["kirei-x9", "", "core/weights/kirei-fast", "/tmp/kirei-fast.safetensors",
                                   "../weights/kirei-2", 2, None, ["kirei-fast"]])
def test_only_installed_models_by_name(worker, model):
    """Anything but an installed model's name (a path included) is a 400 naming the installed ones."""
    body = kc.pack({"width": 6, "height": 5, "channels": 3, "dtype": "uint8", "watermark": "none", "model": model},
                   [bytes(90)])
    status, data = _raw(worker, "POST", "/v1/jobs", body)
    error = json.loads(data)["error"]
    assert status == 400 and "\n" not in error, (status, error)
    assert "is installed in this worker (installed: kirei-2, kirei-fast)" in error, error
    with pytest.raises(kc.JobFailed, match="installed: kirei-2, kirei-fast"):
        worker.client().restore(bytes(90), 6, 5, 3, "uint8", watermark="none", model="kirei-x9")


def test_health_lists_the_models(worker):
    info = worker.client().health()
    models = {m["name"]: m["speed"] for m in info["models"]}
    assert set(models) == {"kirei-2", "kirei-fast"} and info["default_model"] == "kirei-2"
    assert models["kirei-fast"].startswith("fast") and models["kirei-2"]
    # the plugins' fallback list is the shipped models, the default first
    from core.models import DEFAULT_MODEL
    from core.weights_io import installed
    assert kc.MODELS[0] == DEFAULT_MODEL and set(kc.MODELS) == set(installed())


def test_every_endpoint_wants_the_token(worker):
    for method, path in (("GET", "/v1/health"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/x"),
                         ("GET", "/v1/jobs/x/result"), ("DELETE", "/v1/jobs/x")):
        for token in (None, "wrong-token", worker.token + "x", ""):
            status, body = _raw(worker, method, path, body=b"" if method == "POST" else None, token=token)
            assert status == 401, (method, path, token)
            assert "token" in json.loads(body)["error"]
    status, body = _raw(worker, "GET", "/v1/health")
    info = json.loads(body)
    assert status == 200 and info["protocol"] == kc.PROTOCOL and info["device"] == "cpu" and info["version"]


def _valid_body(w=6, h=5, c=3):
    px = np.arange(w * h * c, dtype=np.uint8).tobytes()
    return kc.pack({"width": w, "height": h, "channels": c, "dtype": "uint8", "offset": [0, 0], "scale": 2,
                    "watermark": "none"}, [px])


MALFORMED = [
    b"", b"\x00\x00", b"garbage", struct.pack(">I", 5) + b"{nope", struct.pack(">I", 2) + b"[]",
    kc.pack({"width": 6, "height": 5, "channels": 3, "dtype": "uint8"}, [b"\x00" * 10]),  # truncated
    _valid_body()[:-7],  # truncated
    _valid_body() + b"extra",  # padded
    kc.pack({"width": -1, "height": 5, "channels": 3, "dtype": "uint8"}),
    kc.pack({"width": 6, "height": 5, "channels": 7, "dtype": "uint8"}, [b"\x00" * 210]),
    kc.pack({"width": 6, "height": 5, "channels": 3, "dtype": "int64"}, [b"\x00" * 720]),
    kc.pack({"width": "6", "height": 5, "channels": 3, "dtype": "uint8"}, [b"\x00" * 90]),
    kc.pack({"width": 6, "height": 5, "channels": 3, "dtype": "uint8", "scale": 3}, [b"\x00" * 90]),
    kc.pack({"width": 6, "height": 5, "channels": 3, "dtype": "uint8", "offset": "here"}, [b"\x00" * 90]),
    kc.pack({"width": 6, "height": 5, "channels": 3, "dtype": "uint8", "watermark": "profile",
             "profile_bytes": 4}, [b"\x00" * 90, b"junk"]),
    kc.pack({"width": 2, "height": 1, "channels": 1, "dtype": "float32"}, [struct.pack("<2f", 0.5, float("nan"))]),
    kc.pack({"width": 6, "height": 5, "channels": 3, "dtype": "uint8", "protocol": 99}, [b"\x00" * 90]),
    kc.pack({"width": 6, "height": 5, "channels": 3, "dtype": "uint8", "mask_dtype": "uint8"}, [b"\x00" * 90]),
    kc.pack({"width": 6, "height": 5, "channels": 3, "dtype": "uint8", "jpeg": "yes"}, [b"\x00" * 90]),
]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_requests_get_a_4xx_and_the_worker_keeps_serving(worker, body):
    status, data = _raw(worker, "POST", "/v1/jobs", body)
    assert 400 <= status < 500, (status, data)
    assert json.loads(data)["error"]
    assert _raw(worker, "GET", "/v1/health")[0] == 200


def test_unknown_jobs_and_bad_waits(worker):
    assert _raw(worker, "GET", "/v1/jobs/nope")[0] == 404
    status, data = _raw(worker, "POST", "/v1/jobs", _valid_body())
    job = json.loads(data)["id"]
    assert _raw(worker, "GET", f"/v1/jobs/{job}/result?wait=soon")[0] == 400
    status, data = _raw(worker, "GET", f"/v1/jobs/{job}/result?wait=10")
    assert status == 200
    assert _raw(worker, "GET", f"/v1/jobs/{job}/result")[0] == 404  # fetched once


def test_oversized_requests(tmp_path):
    w = RunningWorker(tmp_path, "--max-pixels", "1000", "--max-body-mb", "1")
    try:
        status, data = _raw(w, "POST", "/v1/jobs", _valid_body(50, 40, 1))
        assert status == 413 and "megapixels" in json.loads(data)["error"]
        status, data = _raw(w, "POST", "/v1/jobs", b"\x00" * (2 * 2 ** 20))
        assert status == 413 and "larger than" in json.loads(data)["error"]
        assert _raw(w, "GET", "/v1/health")[0] == 200
    finally:
        w.stop()


def test_fuzzed_requests_never_break_the_worker(worker):
    """Hypothesis mutates valid requests (headers, lengths, bytes); answers are 202 or 4xx, never 5xx."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    fields = st.fixed_dictionaries({}, optional={
        "width": st.one_of(st.integers(-3, 12), st.text(max_size=3), st.none()),
        "height": st.one_of(st.integers(-3, 12), st.floats()),
        "channels": st.integers(-1, 6), "dtype": st.sampled_from(["uint8", "uint16", "float32", "x", ""]),
        "scale": st.one_of(st.integers(-1, 5), st.booleans()), "offset": st.one_of(
            st.lists(st.integers(-10, 10), max_size=3), st.text(max_size=2)),
        "watermark": st.sampled_from(["blind", "none", "profile", "?"]), "mask_dtype": st.sampled_from(["uint8", "f"]),
        "profile_bytes": st.integers(-2, 50), "tile": st.integers(0, 5000), "protocol": st.integers(0, 2),
        "model": st.one_of(st.sampled_from(["kirei-2", "kirei-fast", "kirei", ""]), st.integers(), st.none())})

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(header=fields, payload=st.binary(max_size=600), cut=st.integers(0, 40), flip=st.integers(0, 2000))
    def check(header, payload, cut, flip):
        body = bytearray(kc.pack(header, [payload]))
        if flip < len(body):
            body[flip] ^= 0xFF
        body = bytes(body[:max(len(body) - cut, 0)])
        status, data = _raw(worker, "POST", "/v1/jobs", body)
        assert status == 202 or 400 <= status < 500, (status, data)
        if status == 202:
            job = json.loads(data)["id"]
            status, data = _raw(worker, "GET", f"/v1/jobs/{job}/result?wait=20")
            assert status in (200, 422), (status, data[:200])

    check()
    assert worker.alive() and _raw(worker, "GET", "/v1/health")[0] == 200


def _big_job():
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    return dict(pixels=px.tobytes(), width=1200, height=1200, channels=3, dtype="uint8", scale=2,
                watermark="none", tile=32)


def test_cancel_mid_job(worker):
    c = worker.client()
    cancel = threading.Event()
    seen = []

    def progress(f):
        seen.append(f)
        if f > 0:
            cancel.set()

    with pytest.raises(kc.Cancelled):
        c.restore(progress=progress, cancel=cancel, **_big_job())
    assert seen and 0 < seen[-1] < 1
    info = json.loads(_raw(worker, "GET", "/v1/health")[1])
    deadline = time.time() + 10
    while info["busy"] and time.time() < deadline:  # the runner stops at its next tile
        time.sleep(0.1)
        info = json.loads(_raw(worker, "GET", "/v1/health")[1])
    assert not info["busy"]
    px = (picture(12, 10, seed=1) * 255).astype(np.uint8)
    assert c.restore(px.tobytes(), 12, 10, 3, "uint8", watermark="none").width == 24


def test_two_clients_at_once(worker):
    pics = [(picture(40, 30, seed=s) * 255).astype(np.uint8) for s in (1, 2)]
    out, errors = {}, []

    def run(i):
        try:
            r = worker.client().restore(pics[i].tobytes(), 40, 30, 3, "uint8", scale=2, watermark="none")
            out[i] = _result_array(r)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for i in range(2):
        np.testing.assert_array_equal(out[i], _direct(pics[i]).pixels)


def test_idle_exit(tmp_path):
    w = RunningWorker(tmp_path, "--idle-exit", "1")
    try:
        assert _raw(w, "GET", "/v1/health")[0] == 200
        w.proc.wait(15)
        assert w.proc.returncode == 0
    finally:
        w.stop()


# ---------------------------------------------------------------- the client's own duties
@pytest.fixture
def config(tmp_path, monkeypatch):
    """A user config folder whose settings point at this engine; every worker started from it is ended."""
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "settings.json").write_text(json.dumps({"python": sys.executable, "project": ROOT, "idle_exit": 60}))
    monkeypatch.delenv("KIREI_SERVER_URL", raising=False)
    yield folder
    for pid in _workers_of(folder):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)  # our child: reaped here
        except OSError:
            pass


def _workers_of(folder):
    """Pids of the `core serve` processes whose token file is in folder."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmd and os.path.join(str(folder), "token").encode() in cmd:
            found.append(int(name))
    return found


def _worker_pid(config):
    return json.loads((config / "worker.json").read_text())["pid"]


def test_local_worker_is_started_on_demand_and_reused(config):
    px = (picture(16, 12, seed=3) * 255).astype(np.uint8)
    first = kc.Client(config=str(config))
    r = first.restore(px.tobytes(), 16, 12, 3, "uint8", scale=2, watermark="none")
    np.testing.assert_array_equal(_result_array(r), _direct(px).pixels)
    pid = _worker_pid(config)
    second = kc.Client(config=str(config))  # another plugin call: the same worker
    second.restore(px.tobytes(), 16, 12, 3, "uint8", scale=1, watermark="none")
    assert _worker_pid(config) == pid
    assert oct(os.stat(config / "token").st_mode & 0o777) == "0o600"


def test_worker_killed_mid_job_then_a_new_one(config):
    c = kc.Client(config=str(config))
    c.connect()
    pid = _worker_pid(config)

    def progress(f):
        if f > 0:
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(kc.WorkerGone, match="stopped during the job"):
        c.restore(progress=progress, **_big_job())
    px = (picture(16, 12, seed=4) * 255).astype(np.uint8)
    r = kc.Client(config=str(config)).restore(px.tobytes(), 16, 12, 3, "uint8", scale=2, watermark="none")
    assert _worker_pid(config) != pid
    np.testing.assert_array_equal(_result_array(r), _direct(px).pixels)


def test_two_plugins_starting_at_once_get_one_worker(config):
    urls, errors = [], []

    def connect():
        try:
            c = kc.Client(config=str(config))
            c.connect()
            urls.append(c.url)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=connect) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and len(set(urls)) == 1, (urls, errors)
    assert len(_workers_of(config)) == 1
    assert not (config / "worker.lock").exists()


def test_a_slow_worker_is_waited_for_not_replaced(config, monkeypatch):
    """worker.json names a live process that takes connections but doesn't answer in time: the client
    says the worker is busy, starts no second one, and leaves worker.json alone."""
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)  # connections are taken (backlog) and never answered
    token = config / "token"
    token.write_text("t0ken")
    token.chmod(0o600)
    record = json.dumps({"url": "http://127.0.0.1:%d" % mute.getsockname()[1], "pid": os.getpid(),
                         "token_file": str(token)})
    (config / "worker.json").write_text(record)
    monkeypatch.setattr(kc, "HEALTH_TIMEOUT", 0.5, raising=False)
    try:
        with pytest.raises(kc.WorkerBusy, match="busy"):
            kc.Client(config=str(config)).connect()
    finally:
        mute.close()
    assert (config / "worker.json").read_text() == record
    assert _workers_of(config) == []


class _FakeWorker:
    """A stand-in worker on 127.0.0.1 that takes a job, then leaves the first poll for its result
    unanswered (a busy worker, or a loaded machine) and answers the next ones."""

    def __init__(self):
        import http.server
        self.polls, self.release = [], threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, status, body, kind="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/health":
                    return self._send(200, json.dumps({"protocol": kc.PROTOCOL, "device": "cpu"}).encode())
                fake.polls.append(self.path)
                if len(fake.polls) == 1:
                    fake.release.wait(120)  # silent until the test ends
                    return
                header = {"width": 1, "height": 1, "channels": 1, "dtype": "uint8", "offset": [0, 0]}
                self._send(200, kc.pack(header, [b"\x07"]), kc.RESULT_TYPE)

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self._send(202, json.dumps({"id": "j1"}).encode())

            def do_DELETE(self):
                self._send(200, b"{}")

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(30)


def test_a_poll_left_unanswered_is_asked_again_and_the_worker_kept(config):
    """A worker that took the job but is slow to answer a poll is alive: the client asks again (the
    job's own timeout and cancel still apply), and never forgets it (that would start a second worker)."""
    fake = _FakeWorker()
    try:
        token = config / "token"
        token.write_text("t0ken")
        record = json.dumps({"url": fake.url, "pid": os.getpid(), "token_file": str(token)})
        (config / "worker.json").write_text(record)
        res = kc.Client(config=str(config), timeout=0.5).restore(b"\0", 1, 1, 1, "uint8", watermark="none",
                                                                 timeout=300)
        assert res.pixels == b"\x07" and len(fake.polls) >= 2  # the first was never answered
        assert (config / "worker.json").read_text() == record
    finally:
        fake.stop()


def test_a_failure_inside_the_start_lock_leaves_no_lock(tmp_path):
    """find() (the recorded worker's health) can fail once the lock is ours: the lock goes with it."""
    path = tmp_path / "worker.lock"

    def busy():
        raise kc.WorkerBusy("busy")
    with pytest.raises(kc.WorkerBusy):
        with kc._StartLock(str(path), busy):
            pass
    assert not path.exists()


def test_a_start_lock_is_stale_only_past_the_longest_start(tmp_path):
    """A plugin may hold the lock while it asks the recorded worker (HEALTH_TRIES slow answers) and
    then starts one: its lock isn't taken over while that can still be going on."""
    path = tmp_path / "worker.lock"
    path.write_text(str(os.getpid()))
    lock = kc._StartLock(str(path), lambda: None)
    longest = kc.HEALTH_TIMEOUT * (kc.HEALTH_TRIES + 1) + kc.START_TIMEOUT
    now = time.time()
    os.utime(path, (now - longest, now - longest))
    assert not lock._stale()
    os.utime(path, (now - longest - 60, now - longest - 60))
    assert lock._stale()


def test_probe_leaves_the_client_of_a_run_alone(tmp_path, monkeypatch):
    """The docker's status thread probes the client a run is using: a failed probe must not take the
    run's worker away (its url set to None mid-job)."""
    monkeypatch.delenv("KIREI_SERVER_URL", raising=False)
    (tmp_path / "worker.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": os.getpid(),
                                                      "token_file": str(tmp_path / "no-token")}))
    c = kc.Client(config=str(tmp_path))
    c.url, c.token = "http://127.0.0.1:1234", "t"
    assert c.probe() is None
    assert (c.url, c.token) == ("http://127.0.0.1:1234", "t")


def test_the_plugins_checks_of_a_result_and_of_what_changed():
    """One check of a result's fit and one wording of what changed during a run, for every plugin."""
    res = kc.Result({"width": 4, "height": 2, "channels": 2, "dtype": "uint16", "offset": [2, 2]}, b"\0" * 32)
    assert res.misfit((1, 1, 2, 1), 2, 2, "uint16") is None
    for rect, channels, dtype in (((1, 1, 1, 1), 2, "uint16"), ((2, 1, 2, 1), 2, "uint16"),
                                  ((1, 1, 2, 1), 4, "uint16"), ((1, 1, 2, 1), 2, "uint8")):
        assert "doesn't fit the layer (4x2 at 2,2)" in res.misfit(rect, 2, channels, dtype)
    res.pixels = res.pixels[:-1]
    assert res.misfit((1, 1, 2, 1), 2, 2, "uint16")
    krita = ("document", 'layer "Paint"', "canvas")
    assert kc.what_changed(True, True, (4, 3), (4, 3)) is None
    assert kc.what_changed(False, False, (0, 0), (4, 3), names=krita) == "The document was closed during the run"
    assert kc.what_changed(True, False, (4, 3), (4, 3), names=krita) == 'The layer "Paint" was deleted during the run'
    assert "colour space" in kc.what_changed(True, True, (4, 3), (4, 3), same_colours=False)
    assert kc.what_changed(True, True, (5, 3), (4, 3)) == "The image was resized during the run (4x3, now 5x3)"


def test_core_not_installed(tmp_path, monkeypatch):
    monkeypatch.delenv("KIREI_SERVER_URL", raising=False)
    with pytest.raises(kc.CoreNotInstalled, match="install.py"):
        kc.Client(config=str(tmp_path)).connect()


def test_worker_that_fails_to_start_says_why(tmp_path, monkeypatch):
    monkeypatch.delenv("KIREI_SERVER_URL", raising=False)
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ImportError: No module named torch' >&2\nexit 1\n")
    fake.chmod(0o755)
    (tmp_path / "settings.json").write_text(json.dumps({"python": str(fake), "project": str(tmp_path)}))
    with pytest.raises(kc.WorkerStartFailed, match="No module named torch"):
        kc.Client(config=str(tmp_path)).connect()


def test_environment_names_a_running_worker(worker, tmp_path, monkeypatch):
    monkeypatch.setenv("KIREI_SERVER_URL", worker.url)
    monkeypatch.setenv("KIREI_TOKEN_FILE", worker.token_file)
    c = kc.Client.from_environment(config=str(tmp_path))
    assert c.health()["protocol"] == kc.PROTOCOL
    assert not (tmp_path / "worker.json").exists()  # nothing started
    monkeypatch.delenv("KIREI_TOKEN_FILE")
    with pytest.raises(kc.KireiClientError, match="KIREI_TOKEN_FILE"):
        kc.Client.from_environment()
    (tmp_path / "wrong").write_text("not-the-token")
    c = kc.Client(url=worker.url, token="not-the-token")
    with pytest.raises(kc.KireiClientError, match="refused the token"):
        c.health()


def test_version_mismatch(tmp_path):
    """A worker of another protocol version (a stand-in server here) is refused with a clear reason."""
    import http.server

    class Old(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"version": "0.0.1", "protocol": kc.PROTOCOL + 1}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Old)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        c = kc.Client(url=f"http://127.0.0.1:{srv.server_address[1]}", token="t")
        with pytest.raises(kc.VersionMismatch, match="install.py"):
            c.health()
    finally:
        srv.shutdown()


def test_gone_worker_is_reported(worker, tmp_path):
    w = RunningWorker(tmp_path)
    c = w.client()
    c.health()
    w.stop()
    with pytest.raises(kc.WorkerGone):
        c.health()


@pytest.mark.parametrize("host", ["gimp", "krita"])
def test_installed_copy_of_the_plugin_carries_a_working_client(host, worker, tmp_path):
    """`cp -rL plugins/<host>/kirei` gives a folder whose client imports and works on its own."""
    import shutil
    import subprocess
    import sys
    dest = tmp_path / "kirei"
    shutil.copytree(os.path.join(ROOT, "plugins", host, "kirei"), dest, symlinks=False)
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    code = ("import sys; sys.path[:0] = [sys.argv[1]]; import kirei_client as k; "
            "assert k.__file__.startswith(sys.argv[1]); print(k.Client.from_environment().health()['protocol'])")
    env = dict(os.environ, KIREI_SERVER_URL=worker.url, KIREI_TOKEN_FILE=worker.token_file)
    # -I: isolated, so nothing of the project (or its core package) can be imported by accident
    p = subprocess.run([sys.executable, "-I", "-c", code, str(dest)], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(kc.PROTOCOL)


def test_estimate_through_the_worker(worker, stamped_set, watermark):
    from core.profile import profile_from_png
    stamped, _ = stamped_set
    pics = [np.rint(s * 255).astype(np.uint8) for s in stamped[:12]]
    seen = []
    data = worker.client().estimate([(p.tobytes(), 120, 160, 3, "uint8") for p in pics], progress=seen.append)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data.report.startswith("watermark on 12 of 12 pictures, at x "), data.report
    prof = profile_from_png(data)
    assert np.abs(prof.alpha - watermark[0]).mean() < 0.03
    assert seen
    status, body = _raw(worker, "POST", "/v1/estimate", kc.pack({"pictures": [{"width": 2}]}))
    assert status == 400 and "2 to 200" in json.loads(body)["error"]


def test_an_estimate_that_finds_no_watermark_tells_the_plugin_to_go_on_blind(worker, stamped_set):
    _, clean = stamped_set
    pics = [np.rint(c * 255).astype(np.uint8) for c in clean[:8]]
    with pytest.raises(kc.NoUsableProfile, match="No watermark shared by the 8 pictures was found.*; Kirei will remove any watermark blind"):
        worker.client().estimate([(p.tobytes(), 120, 160, 3, "uint8") for p in pics])


def _memory_mb(pid):
    """(resident now, resident at its peak) of a process, in MB (Linux)."""
    with open(f"/proc/{pid}/status") as fh:
        fields = dict(line.split(":", 1) for line in fh)
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_warm_worker_gives_back_the_memory_of_a_big_job(tmp_path):
    """The worker keeps the memory torch frees for reuse while a job runs (core/allocator.py); once
    it ends, what the job took goes back to the system, so a warm worker idles small."""
    w = RunningWorker(tmp_path / "worker")
    try:
        c = w.client()
        small = (picture(64, 48, seed=1) * 255).astype(np.uint8)
        c.restore(small.tobytes(), 64, 48, 3, "uint8", scale=2, watermark="none", model="kirei-fast")
        before, _ = _memory_mb(w.proc.pid)  # the model loaded, warm
        big = np.ascontiguousarray(np.tile(small, (16, 12, 1)))  # 768 x 768
        res = c.restore(big.tobytes(), 768, 768, 3, "uint8", scale=2, watermark="none", model="kirei-fast")
        assert (res.width, res.height) == (1536, 1536)
        after, peak = _memory_mb(w.proc.pid)
        assert peak - before > 300, (before, peak)  # the job took hundreds of MB...
        assert after - before < 0.3 * (peak - before), (before, after, peak)  # ...and gave most back
    finally:
        w.stop()
