"""The worker: `python -m core serve`, the engine behind GIMP and Krita, over HTTP (aiohttp).

Its first line of output is the URL it listens on; nothing else goes to stdout after that
(the client closes the pipe). Every endpoint wants `Authorization: Bearer <token>`. Jobs run
one at a time on a single runner thread (one device; each model a job names is loaded once and
kept warm), the rest wait in a queue; each can be followed, cancelled, and its result fetched
once; a job no client asks about any more is cancelled and dropped. With --idle-exit the worker
stops by itself after that many seconds without requests or jobs. Nothing slow or large happens
on the event loop: bodies are parsed on a thread and profiles decoded on the runner. What it limits is in core/limits.py.
The protocol is described in docs/protocol.md.
"""
import asyncio
import functools
import hmac
import ipaddress
import logging
import os
import secrets
import signal
import socket
import sys
import stat
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor

from aiohttp import HttpVersion11, web

from . import __version__, client
from .allocator import give_back_memory
from .devices import resolve_device
from .errors import KireiError
from .pipeline import METHODS, Options, default_method
from .estimate import estimate_profile
from .jpeg_traces import went_through_jpeg
from .limits import ConnectionCap, Limits, RateLimitedLog
from .models import DEFAULT_MODEL
from .profile import profile_png
from .protocol import (DEFAULT_MAX_BODY_MB, DEFAULT_MAX_PIXELS, BadRequest, EstimateRequest, pack_result,
                       parse_estimate, parse_job)
from .region import restore_region

log = logging.getLogger("kirei.worker")

MAX_WAIT = 30.0  # longest a result request is held open (well under Limits.lease)
BLIND_NOTICE = ("blind removal needs the learned model, whose weights are missing or damaged in this install "
                "(see worker.log): "
                "the picture was upscaled only. Choose a watermark profile to remove a known watermark.")


class Cancelled(Exception):
    pass


class Job:
    def __init__(self, request):
        self.id = uuid.uuid4().hex
        self.request = request
        self.state = "queued"  # queued -> running -> done | failed | cancelled
        self.progress = 0.0
        self.error = None
        self.fallback = None  # a failed estimate: what the plugin does instead ("blind")
        self.report = None  # a done estimate: its one-line report
        self.result = None
        self.content_type = client.RESULT_TYPE
        self.cancel = threading.Event()
        self.finished = asyncio.Event()
        self.seen = time.monotonic()  # when a client last asked about it: its lease
        self.watchers = 0  # result requests waiting on it now

    def status(self, position=None):
        s = {"id": self.id, "state": self.state, "progress": round(self.progress, 4)}
        if self.error:
            s["error"] = self.error
        if position is not None:
            s["position"] = position
        return s


class Worker:
    """The worker's state: its jobs, the queue and the runner, and when it was last used."""

    def __init__(self, token, device, max_pixels, idle_exit, limits=Limits(), models=None):
        self.token = token.encode()
        self.models = dict(models or {})  # {name: record} of the installed models, read once (installed_models)
        self.device = device
        self.max_pixels = max_pixels
        self.idle_exit = idle_exit
        self.limits = limits
        self.jobs = {}
        self.queue = []  # waiting jobs, in order
        self.uploading = 0  # job requests being received or parsed: they count against the queue
        self.wakeup = asyncio.Event()
        self.running = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kirei-job")
        self.parser = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kirei-parse")
        self.last_activity = time.monotonic()
        self.stop = asyncio.Event()

    def touch(self):
        self.last_activity = time.monotonic()

    def authorized(self, header):
        """Whether an Authorization header carries the token (any bytes at all may come in it)."""
        given = header[7:].strip() if header.startswith("Bearer ") else ""
        return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), self.token)

    def has_room(self):
        return len(self.queue) + self.uploading < self.limits.queue

    # ------------------------------------------------------------ running jobs
    async def run_jobs(self):
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.wakeup.clear()
                await self.wakeup.wait()
            job = self.queue.pop(0)
            if job.cancel.is_set():
                continue
            job.state = "running"
            self.running = job
            await loop.run_in_executor(self.executor, self._run, job)
            self.running = None
            if job.cancel.is_set():  # cancelled or dropped while it ran, maybe as it ended: nothing to keep
                job.state, job.result = "cancelled", None
            job.finished.set()
            self.touch()

    def _run(self, job):
        """On the runner thread: one job, start to end; never raises."""
        r = job.request

        def progress(fraction):
            if job.cancel.is_set():
                raise Cancelled()
            job.progress = fraction

        try:
            progress(0.0)
            if isinstance(r, EstimateRequest):
                found = estimate_profile(r.pictures, progress=progress, device=self.device.type)
                if not found.usable:  # the plugin falls back to blind removal
                    job.fallback = "blind"
                    line = found.summary()
                    raise KireiError(line[0].upper() + line[1:] + (
                        ". No profile was made; Kirei will remove the watermark blind" if found.found else
                        "; Kirei will remove any watermark blind"))
                job.result, job.content_type = profile_png(found.profile), "image/png"
                job.report = found.summary()
                job.progress, job.state = 1.0, "done"
                return
            method = default_method(r.model)  # classic when this model's weights are missing or damaged
            jpeg = method == "learned" and went_through_jpeg(r.pixels, r.jpeg)
            found = []
            result = restore_region(r.pixels, offset=r.offset, mask=r.mask,
                                    profile=r.decode_profile() if r.watermark == "profile" else None,
                                    options=Options(scale=r.scale, method=method, device=self.device.type,
                                                    tile=r.tile or Options.tile, blind=r.watermark == "blind",
                                                    model=r.model, jpeg=jpeg, tta=r.tta),
                                    progress=progress, report=found.append, matte=r.matte)
            notice = BLIND_NOTICE if r.watermark == "blind" and method == "classic" else None
            if found:  # blind: what was found, as a sentence the plugins show
                said = found[0].summary()
                notice = said[0].upper() + said[1:] + "."
            job.result = pack_result(result, notice)
            job.progress, job.state = 1.0, "done"
        except Cancelled:
            job.state = "cancelled"
        except KireiError as e:
            job.state, job.error = "failed", str(e)
        except MemoryError:
            job.state, job.error = "failed", "the worker ran out of memory: try a smaller selection or scale"
        except Exception as e:  # a bug: report it, keep serving
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            job.state, job.error = "failed", f"internal error in the worker ({type(e).__name__}: {e})"
        finally:
            job.request = None  # free the pixels
            give_back_memory()  # what malloc kept for this job's reuse (core/allocator.py)

    def cancel(self, job):
        """Stop a job and free what it holds at once: its request, and its result if it had ended."""
        job.cancel.set()
        job.request = None  # a running job's runner still holds it until the job stops (at its next poll)
        if job in self.queue:
            self.queue.remove(job)
        if job.state != "running":  # a running one is marked when it stops (run_jobs)
            job.state, job.result = "cancelled", None
            job.finished.set()

    def drop(self, job):
        """Cancel a job and forget it, result and all."""
        self.cancel(job)
        self.jobs.pop(job.id, None)

    def position(self, job):
        return self.queue.index(job) + 1 if job in self.queue else None

    # ------------------------------------------------------------ housekeeping
    async def housekeeping(self, tend_connections):
        while True:
            await asyncio.sleep(0.25)
            tend_connections()
            now = time.monotonic()
            for job in list(self.jobs.values()):
                if not job.watchers and now - job.seen > self.limits.lease:
                    log.info("job %s (%s): no client asked about it for %.0f s: dropped", job.id, job.state,
                             self.limits.lease)
                    self.drop(job)
            idle = self.running is None and not self.queue
            if self.idle_exit and idle and now - self.last_activity > self.idle_exit:
                log.info("idle for %.0f s: exiting", self.idle_exit)
                self.stop.set()
                return


# ---------------------------------------------------------------- handlers
def _error(status, message, **extra):
    return web.json_response({"error": message, **extra}, status=status)


def make_app(worker, max_body, cap):
    limits = worker.limits
    parse_jobs = functools.partial(parse_job, models=tuple(worker.models))

    def refusal(request):
        """The answer to a request the worker won't take, decided from its headers alone; else None."""
        if not worker.authorized(request.headers.get("Authorization", "")):
            return _error(401, "missing or wrong bearer token")
        if request.method != "POST":
            return None
        if request.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
            return _error(415, "compressed request bodies are not accepted: send the data as it is "
                               "(no Content-Encoding)")
        if request.content_length is None and request.body_exists:
            return _error(411, "a request body must come with its length (Content-Length), not in chunks")
        if (request.content_length or 0) > max_body:
            return _error(413, f"the request is larger than this worker takes ({max_body // 2 ** 20} MiB)")
        return None

    async def expect(request):
        """`Expect: 100-continue` is only answered once the headers are found acceptable."""
        refused = refusal(request)
        if refused is not None:
            return refused
        if request.headers.get("Expect", "").lower() != "100-continue":
            return _error(417, "only 'Expect: 100-continue' is understood")
        if request.version == HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the response proper hasn't started
        return None

    @web.middleware
    async def guard(request, handler):
        with cap.busy(request.protocol):
            refused = refusal(request)
            if refused is not None:
                return refused
            worker.touch()
            try:
                return await handler(request)
            except web.HTTPRequestEntityTooLarge:
                return _error(413, f"the request is larger than this worker takes ({max_body // 2 ** 20} MiB)")
            except web.HTTPException as e:
                if e.status >= 400:
                    return _error(e.status, e.reason)
                raise

    async def health(request):
        learned = bool(worker.models) or default_method() == "learned"
        return web.json_response({
            "version": __version__, "protocol": client.PROTOCOL, "device": worker.device.type,
            "device_name": _device_name(worker.device), "busy": worker.running is not None,
            "queued": len(worker.queue), "held": len(worker.jobs), "max_queue": limits.queue, "max_pixels": worker.max_pixels,
            "max_body": max_body, "lease": limits.lease,
            "methods": [m for m in METHODS if m == "classic" or learned],
            # what a job's "model" may name, for the plugins' lists
            "models": [{"name": n, "speed": str(rec.get("speed", ""))} for n, rec in worker.models.items()],
            "default_model": DEFAULT_MODEL})

    async def submit(request, parse=parse_jobs):
        if not worker.has_room():
            return _error(429, f"the worker is busy: {limits.queue} jobs are waiting, as many as it keeps; "
                               "try again in a moment")
        worker.uploading += 1
        try:
            try:
                body = await asyncio.wait_for(request.read(), limits.upload_time(request.content_length or 0))
            except asyncio.TimeoutError:
                return _error(408, "the request's data came too slowly; try again")
            loop = asyncio.get_running_loop()
            req = await loop.run_in_executor(worker.parser, parse, body, worker.max_pixels)
        except BadRequest as e:
            return _error(e.status, e.message)
        finally:
            worker.uploading -= 1
        job = Job(req)
        worker.jobs[job.id] = job
        worker.queue.append(job)
        worker.wakeup.set()
        return web.json_response(job.status(worker.position(job)), status=202)

    def no_such_job():
        return web.HTTPNotFound(reason="no such job (a result is kept until it is fetched, once; a job is "
                                       f"dropped when no client asked about it for {limits.lease:.0f} s)")

    def find(request):
        job = worker.jobs.get(request.match_info["id"])
        if job is None:
            raise no_such_job()
        job.seen = time.monotonic()
        return job

    async def status(request):
        job = find(request)
        return web.json_response(job.status(worker.position(job)))

    async def result(request):
        job = find(request)
        try:
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_WAIT)
        except ValueError:
            return _error(400, "'wait' must be a number of seconds")
        if not job.finished.is_set() and wait > 0:
            job.watchers += 1
            try:
                await asyncio.wait_for(job.finished.wait(), wait)
            except asyncio.TimeoutError:
                pass
            finally:
                job.watchers -= 1
                job.seen = time.monotonic()
        if job.state in ("done", "failed") and worker.jobs.pop(job.id, None) is None:
            raise no_such_job()  # another request fetched it meanwhile: a result is fetched once
        if job.state == "done":
            return web.Response(body=job.result, content_type=job.content_type,
                                headers={client.REPORT_HEADER: job.report} if job.report else None)
        if job.state == "failed":
            return _error(422, job.error, state="failed", **({"fallback": job.fallback} if job.fallback else {}))
        if job.state == "cancelled":
            return _error(410, "the job was cancelled", state="cancelled")
        return web.json_response(job.status(worker.position(job)), status=202)

    async def cancel(request):
        job = find(request)
        worker.cancel(job)
        return web.json_response(job.status())

    async def estimate(request):
        return await submit(request, parse_estimate)

    async def unknown(request):  # here rather than aiohttp's own 404/405, so that `expect` guards them too
        return _error(404, f"no such endpoint: {request.method} {request.path}")

    app = web.Application(middlewares=[guard], client_max_size=max_body)
    for method, path, handler in (("GET", "/v1/health", health), ("POST", "/v1/jobs", submit),
                                  ("POST", "/v1/estimate", estimate),
                                  ("GET", "/v1/jobs/{id}", status), ("GET", "/v1/jobs/{id}/result", result),
                                  ("DELETE", "/v1/jobs/{id}", cancel), ("*", "/{path:.*}", unknown)):
        app.router.add_route(method, path, handler, expect_handler=expect)
    return app


def _device_name(device):
    if device.type == "cuda":
        import torch
        return torch.cuda.get_device_name(device)
    return {"cpu": "CPU", "mps": "Apple GPU (MPS)"}.get(device.type, device.type)


# ---------------------------------------------------------------- tokens and sockets
def load_or_create_token(path):
    """The token in `path`; a new random one (file mode 0600, in a folder made 0700) when there is none.
    A token file that other users can read is refused: whoever reads it can use the worker."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        client.make_private_dir(os.path.dirname(path))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
        except FileExistsError:
            pass  # another worker made it first: use theirs
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise KireiError(f"can't read the worker's token file {path} ({e.strerror or e})") from None
    if os.name != "nt" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KireiError(f"the worker's token file {path} can be read by other users (mode {mode & 0o777:o}): "
                         f"run `chmod 600 {path}`")
    try:
        return client.read_token(path)
    except client.KireiClientError as e:
        raise KireiError(str(e)) from None


def bind(host, port):
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    if os.name != "nt":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(info[4])
    except OSError as e:
        sock.close()
        raise KireiError(f"can't listen on {host}:{port} ({e.strerror or e})") from None
    sock.listen(64)
    return sock


def _network_address(family):
    """This machine's address on its network (a UDP socket's route; nothing is sent), else loopback's."""
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 9) if family == socket.AF_INET else ("fd00::1", 9))
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1" if family == socket.AF_INET else "::1"
    finally:
        probe.close()


def url_of(sock):
    """The URL to reach the worker at: on a wildcard address (0.0.0.0, ::), this machine's network address."""
    host, port = sock.getsockname()[:2]
    if ipaddress.ip_address(host.split("%")[0]).is_unspecified:
        host = _network_address(sock.family)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _warn_if_exposed(sock):
    host = sock.getsockname()[0]
    if not ipaddress.ip_address(host.split("%")[0]).is_loopback:
        log.warning("listening on %s, reachable from other machines: requests, pictures and the token travel as "
                    "plain HTTP, unencrypted. Use it only on a network you trust, or reach it through an SSH "
                    "tunnel (ssh -L) and listen on 127.0.0.1.", host)


async def _serve(sock, worker, max_body):
    cap = ConnectionCap(worker.limits.connections, worker.limits.idle)
    # keepalive_timeout: a connection idle (or sending its next request's headers slowly) after a request
    runner = web.AppRunner(make_app(worker, max_body, cap), access_log=None, handle_signals=False,
                           keepalive_timeout=worker.limits.idle, auto_decompress=False)
    await runner.setup()
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: cap.connect(runner.server), sock=sock)
    if os.name != "nt":
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop.set)
    tasks = [asyncio.create_task(worker.run_jobs()),
             asyncio.create_task(worker.housekeeping(lambda: cap.tend(runner.server, loop.time())))]
    # the URL is the first line of output: the client waits for it
    print(url_of(sock), flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # nobody reads stdout any more: nothing may block on it
    _warn_if_exposed(sock)
    await worker.stop.wait()
    for job in worker.jobs.values():
        job.cancel.set()  # a running job stops at its next poll
    for t in tasks:
        t.cancel()
    listener.close()
    await runner.cleanup()
    worker.executor.shutdown(wait=False, cancel_futures=True)
    worker.parser.shutdown(wait=False, cancel_futures=True)


def _say_if_the_model_is_unusable(model=DEFAULT_MODEL):
    """Why a model isn't offered (missing or damaged weights), once, in worker.log."""
    from .weights_io import verify
    try:
        verify(model)
    except KireiError as e:
        log.warning("%s: %s", e, "blind jobs are upscaled only" if model == DEFAULT_MODEL else
                    f"jobs can't choose {model}")


def installed_models():
    """{name: record} of the models a job may name, read once when the worker starts (hashing them
    all again for every request would be slow; install.py stops the worker before it changes them).
    Why the default model can't be used, if it can't, goes to worker.log."""
    from .weights_io import installed
    _say_if_the_model_is_unusable()
    try:
        return installed()
    except (OSError, ValueError) as e:  # a record that can't be read: the default (or classic) still serves
        log.warning("the installed models can't be listed (%s): jobs get the default model", e)
        return {}


def serve(host="127.0.0.1", port=0, token_file=None, idle_exit=0, device="auto", max_pixels=DEFAULT_MAX_PIXELS,
          max_body_mb=DEFAULT_MAX_BODY_MB):
    limits = Limits.from_environment().within_open_file_limit()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # a flood of bad connections must not fill the disk
        handler.addFilter(RateLimitedLog(limits.log_burst, limits.log_period))
    token = load_or_create_token(token_file or os.path.join(client.config_dir(), client.TOKEN_FILE))
    dev = resolve_device(device)
    models = installed_models()
    sock = bind(host, port)

    async def main():
        worker = Worker(token, dev, max_pixels, idle_exit, limits, models)
        await _serve(sock, worker, max_body_mb * 2 ** 20)

    asyncio.run(main())
    return 0
