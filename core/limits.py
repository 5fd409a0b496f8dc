"""What the worker (core/server.py) limits, in one place, and the two guards aiohttp lacks.

- Limits: how many jobs wait, how long an unwatched job lives, how long an idle or slow
  connection is kept, how many connections are open at once, how much is logged. The defaults
  suit a desktop; KIREI_WORKER_LIMITS="lease=2,idle=1" overrides them (tests, tuning).
- ConnectionCap: aiohttp takes every connection it is offered. At the cap, the oldest connection
  that isn't in the middle of a request is closed to make room, so sockets left open by anyone
  (no token is needed to open one) can neither lock the plugins out nor use up the open-file limit.
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
    """At most `limit` connections open on an aiohttp low-level server (web.Server).

    `connect(server)` is the asyncio protocol factory; the app's middleware marks connections in
    the middle of a request with `busy(protocol)`: those are never closed for room. Connections
    accepted in one batch are only listed by the server a moment later, so `trim` is also called
    periodically.
    """

    def __init__(self, limit):
        self.limit = limit
        self._busy = {}

    def connect(self, server):
        self.trim(server, room=1)
        return server()

    def trim(self, server, room=0):
        """Close the oldest idle connections until `room` more fit under the cap."""
        open_now = [c for c in server.connections if c.transport is not None]
        excess = len(open_now) + room - self.limit
        for conn in open_now:  # oldest first
            if excess <= 0:
                break
            if not self._busy.get(conn):
                conn.force_close()
                excess -= 1

    @contextmanager
    def busy(self, protocol):
        """Within the block, the connection is serving a request: not to be closed for room."""
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
