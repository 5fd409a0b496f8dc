"""The worker: `python -m core serve`, the engine behind GIMP and Krita, over HTTP (aiohttp).

Its first line of output is the URL it listens on; nothing else goes to stdout after that
(the client closes the pipe). Every endpoint wants `Authorization: Bearer <token>`. Jobs run
one at a time on a single runner thread (one model, one device), the rest wait in a queue;
each can be followed, cancelled, and its result fetched once. With --idle-exit the worker
stops by itself after that many seconds without requests or jobs. The protocol is described
in docs/protocol.md.
"""
import asyncio
import hmac
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from . import __version__, client
from .devices import resolve_device
from .errors import KireiError
from .pipeline import METHODS, Options, default_method
from .estimate import estimate_profile
from .profile import profile_png
from .protocol import (DEFAULT_MAX_BODY_MB, DEFAULT_MAX_PIXELS, BadRequest, EstimateRequest, pack_result,
                       parse_estimate, parse_job)
from .region import restore_region

log = logging.getLogger("kirei.worker")

MAX_WAIT = 30.0  # longest a result request is held open
KEEP_FINISHED = 600.0  # unfetched results are dropped after this many seconds
BLIND_NOTICE = ("blind removal needs the learned model, whose weights are missing from this install: "
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
        self.result = None
        self.content_type = client.RESULT_TYPE
        self.cancel = threading.Event()
        self.finished = asyncio.Event()
        self.finished_at = None

    def status(self, position=None):
        s = {"id": self.id, "state": self.state, "progress": round(self.progress, 4)}
        if self.error:
            s["error"] = self.error
        if position is not None:
            s["position"] = position
        return s


class Worker:
    """The worker's state: its jobs, the queue and the runner, and when it was last used."""

    def __init__(self, token, device, max_pixels, idle_exit):
        self.token = token.encode()
        self.device = device
        self.max_pixels = max_pixels
        self.idle_exit = idle_exit
        self.jobs = {}
        self.queue = []  # waiting jobs, in order
        self.wakeup = asyncio.Event()
        self.running = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kirei-job")
        self.last_activity = time.monotonic()
        self.stop = asyncio.Event()

    def touch(self):
        self.last_activity = time.monotonic()

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
            job.finished_at = time.monotonic()
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
                profile, kept = estimate_profile(r.pictures, progress=progress)
                if kept.sum() < 2 or profile.is_empty():
                    raise KireiError("no watermark shared by these pictures was found")
                job.result, job.content_type = profile_png(profile), "image/png"
                job.progress, job.state = 1.0, "done"
                return
            result = restore_region(r.pixels, offset=r.offset, mask=r.mask,
                                    profile=r.profile if r.watermark == "profile" else None,
                                    options=Options(scale=r.scale, device=self.device.type,
                                                    tile=r.tile or Options.tile, blind=r.watermark == "blind"),
                                    progress=progress)
            notice = BLIND_NOTICE if r.watermark == "blind" and default_method() == "classic" else None
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

    def cancel(self, job):
        job.cancel.set()
        if job.state == "queued":
            if job in self.queue:
                self.queue.remove(job)
            job.state = "cancelled"
            job.finished_at = time.monotonic()
            job.finished.set()

    def position(self, job):
        return self.queue.index(job) + 1 if job in self.queue else None

    # ------------------------------------------------------------ housekeeping
    async def housekeeping(self):
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for job in list(self.jobs.values()):
                if job.finished_at and now - job.finished_at > KEEP_FINISHED:
                    del self.jobs[job.id]
            idle = self.running is None and not self.queue
            if self.idle_exit and idle and now - self.last_activity > self.idle_exit:
                log.info("idle for %.0f s: exiting", self.idle_exit)
                self.stop.set()
                return


# ---------------------------------------------------------------- handlers
def _error(status, message, **extra):
    return web.json_response({"error": message, **extra}, status=status)


def make_app(worker, max_body):
    @web.middleware
    async def guard(request, handler):
        auth = request.headers.get("Authorization", "")
        given = auth[7:].strip().encode() if auth.startswith("Bearer ") else b""
        if not hmac.compare_digest(given, worker.token):
            return _error(401, "missing or wrong bearer token")
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
        return web.json_response({
            "version": __version__, "protocol": client.PROTOCOL, "device": worker.device.type,
            "device_name": _device_name(worker.device), "busy": worker.running is not None,
            "queued": len(worker.queue), "max_pixels": worker.max_pixels, "max_body": max_body,
            "methods": [m for m in METHODS if m == "classic" or default_method() == "learned"]})

    async def submit(request, parse=parse_job):
        body = await request.read()
        try:
            req = parse(body, worker.max_pixels)
        except BadRequest as e:
            return _error(e.status, e.message)
        job = Job(req)
        worker.jobs[job.id] = job
        worker.queue.append(job)
        worker.wakeup.set()
        return web.json_response(job.status(worker.position(job)), status=202)

    def find(request):
        job = worker.jobs.get(request.match_info["id"])
        if job is None:
            raise web.HTTPNotFound(reason="no such job (finished results are kept until fetched, "
                                          f"at most {KEEP_FINISHED:.0f} s)")
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
            try:
                await asyncio.wait_for(job.finished.wait(), wait)
            except asyncio.TimeoutError:
                pass
        if job.state == "done":
            del worker.jobs[job.id]  # fetched once
            return web.Response(body=job.result, content_type=job.content_type)
        if job.state == "failed":
            del worker.jobs[job.id]
            return _error(422, job.error, state="failed")
        if job.state == "cancelled":
            return _error(410, "the job was cancelled", state="cancelled")
        return web.json_response(job.status(worker.position(job)), status=202)

    async def cancel(request):
        job = find(request)
        worker.cancel(job)
        return web.json_response(job.status())

    app = web.Application(middlewares=[guard], client_max_size=max_body)
    app.router.add_get("/v1/health", health)
    app.router.add_post("/v1/jobs", submit)
    app.router.add_post("/v1/estimate", lambda request: submit(request, parse_estimate))
    app.router.add_get("/v1/jobs/{id}", status)
    app.router.add_get("/v1/jobs/{id}/result", result)
    app.router.add_delete("/v1/jobs/{id}", cancel)
    return app


def _device_name(device):
    if device.type == "cuda":
        import torch
        return torch.cuda.get_device_name(device)
    return {"cpu": "CPU", "mps": "Apple GPU (MPS)"}.get(device.type, device.type)


# ---------------------------------------------------------------- tokens and sockets
def load_or_create_token(path):
    """The token in `path`; a new random one (file mode 0600) when the file doesn't exist."""
    path = os.path.abspath(path)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
        except FileExistsError:
            pass  # another worker made it first: use theirs
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


def url_of(sock):
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve(sock, worker, max_body):
    app = make_app(worker, max_body)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    loop = asyncio.get_running_loop()
    if os.name != "nt":
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop.set)
    tasks = [asyncio.create_task(worker.run_jobs()), asyncio.create_task(worker.housekeeping())]
    # the URL is the first line of output: the client waits for it
    print(url_of(sock), flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # nobody reads stdout any more: nothing may block on it
    await worker.stop.wait()
    for job in worker.jobs.values():
        job.cancel.set()  # a running job stops at its next tile
    for t in tasks:
        t.cancel()
    await runner.cleanup()
    worker.executor.shutdown(wait=False, cancel_futures=True)


def serve(host="127.0.0.1", port=0, token_file=None, idle_exit=0, device="auto", max_pixels=DEFAULT_MAX_PIXELS,
          max_body_mb=DEFAULT_MAX_BODY_MB):
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    token = load_or_create_token(token_file or os.path.join(client.config_dir(), "token"))
    dev = resolve_device(device)
    sock = bind(host, port)

    async def main():
        worker = Worker(token, dev, max_pixels, idle_exit)
        await _serve(sock, worker, max_body_mb * 2 ** 20)

    asyncio.run(main())
    return 0
