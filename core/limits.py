"""What the worker (core/server.py) limits, in one place, and the guards aiohttp lacks.

- Limits: how many jobs wait, how long an unwatched job lives, how long an idle or slow
  connection is kept, how many connections are open at once, how much is logged. The defaults
  suit a desktop; KIREI_WORKER_LIMITS="lease=2,idle=1" overrides them (tests, tuning).
- ConnectionCap: aiohttp takes every connection it is offered. At the cap, the oldest connection
  that isn't in the middle of a request is closed to make room, so sockets left open by anyone
  (no token is needed to open one) can neither lock the plugins out nor use up the open-file limit.
  It also closes a connection that brings no request within `idle`: aiohttp's keep-alive time-out
  covers the wait between requests, and only its newest versions the wait before the first.
- RateLimitedLog: a flood of bad connections must not fill the disk with tracebacks.
"""
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace

from .errors import KireiError


@dataclass
class Limits:
    queue: int = 8  # jobs waiting (or being uploaded) before new ones get 429
    lease: float = 120.0  # s: a job no one asked about for this long is cancelled and dropped (clients poll 2/s)
    idle: float = 15.0  # s: a connection without a complete request for this long is closed
    min_upload_rate: float = 256 * 1024  # bytes/s: slower request bodies are cut off (408)
    connections: int = 256  # open at once (well under the usual open-file limit of 1024)
    log_burst: int = 30  # log records per log_period; the rest are counted and said once
    log_period: float = 60.0

    @classmethod
    def from_environment(cls, env=None):
        text = (os.environ if env is None else env).get("KIREI_WORKER_LIMITS", "")
        kinds = {f.name: f.type for f in fields(cls)}
        values = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            if name not in kinds:
                raise KireiError(f"KIREI_WORKER_LIMITS: unknown limit {name!r} (known: {', '.join(kinds)})")
            try:
                values[name] = (int if kinds[name] in (int, "int") else float)(value)
            except ValueError:
                raise KireiError(f"KIREI_WORKER_LIMITS: {name} must be a number, got {value!r}") from None
            if values[name] <= 0:
                raise KireiError(f"KIREI_WORKER_LIMITS: {name} must be above 0, got {value!r}")
        return cls(**values)

    def within_open_file_limit(self):
        """These limits with the connection cap at most half the process's open-file limit (raised to
        its hard limit where it can be): the rest is for the worker's own files."""
        try:
            import resource
        except ImportError:  # Windows: no such limit
            return self
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                soft = hard
            except (ValueError, OSError):
                pass
        if soft != resource.RLIM_INFINITY and self.connections > soft // 2:
            return replace(self, connections=max(soft // 2, 1))
        return self

    def upload_time(self, length):
        """Seconds allowed to receive a request body of `length` bytes."""
        return self.idle + length / self.min_upload_rate


class ConnectionCap:
    """At most `limit` connections open on an aiohttp low-level server (web.Server), none silent for
    longer than `idle` seconds before its first request.

    `connect(server)` is the asyncio protocol factory; the app's middleware marks each request's
    connection with `busy(protocol)`: a connection in the middle of a request is never closed for
    room, and one that brought a request is no longer silent. Connections accepted in one batch are
    only listed by the server a moment later, so `tend(server)` is also called periodically.
    """

    def __init__(self, limit, idle):
        self.limit, self.idle = limit, idle
        self._busy = {}
        # open connections, as the server lists them: when first seen, or None once a request came
        self._silent_since = {}

    def connect(self, server):
        self.trim(server, room=1)
        return server()

    def _open(self, server):
        return [c for c in server.connections if c.transport is not None]  # oldest first

    def trim(self, server, room=0):
        """Close the oldest idle connections until `room` more fit under the cap."""
        open_now = self._open(server)
        excess = len(open_now) + room - self.limit
        for conn in open_now:
            if excess <= 0:
                break
            if not self._busy.get(conn):
                conn.force_close()
                excess -= 1

    def tend(self, server, now):
        """Periodically, at time `now` (loop time): the cap, and close connections silent for `idle`."""
        self.trim(server)
        open_now = self._open(server)
        self._silent_since = {c: self._silent_since.get(c, now) for c in open_now}
        for conn, since in self._silent_since.items():
            if since is not None and now - since >= self.idle:
                conn.force_close()

    @contextmanager
    def busy(self, protocol):
        """Within the block, the connection is serving a request: not to be closed for room."""
        self._silent_since[protocol] = None
        self._busy[protocol] = self._busy.get(protocol, 0) + 1
        try:
            yield
        finally:
            left = self._busy.pop(protocol) - 1
            if left:
                self._busy[protocol] = left


class RateLimitedLog(logging.Filter):
    """At most `burst` records per `period` seconds; then how many were left out, once."""

    def __init__(self, burst, period):
        super().__init__()
        self.burst, self.period = burst, period
        self.window, self.count, self.dropped = time.monotonic(), 0, 0

    def filter(self, record):
        now = time.monotonic()
        if now - self.window >= self.period:
            if self.dropped:
                record.msg = f"({self.dropped} log messages left out in the last {self.period:.0f} s) {record.msg}"
            self.window, self.count, self.dropped = now, 0, 0
        self.count += 1
        if self.count > self.burst:
            self.dropped += 1
            return False
        return True
