# -*- coding: utf-8 -*-
"""Kirei's client: how GIMP and Krita reach the engine's worker (`python -m core serve`).

Standard library only, and runs on Python 2.7 (GIMP 2.10) as well as 3.8+ (GIMP 3, Krita):
no f-strings, no annotations. The plugins carry this very file (a symbolic link in the source
tree, copied with `cp -rL`), so it must not import anything else from `core`.

    client = Client.from_environment()      # KIREI_SERVER_URL + KIREI_TOKEN_FILE, or a local worker
    result = client.restore(pixels, width, height, channels, "uint8", scale=2, watermark="blind",
                            model="kirei-fast", progress=lambda f: ..., cancel=threading.Event())

A local worker is started on demand with the engine's Python (from settings.json, written by
install.py), recorded in the user's config folder (URL, pid, token file) and reused by later
calls until it exits after an idle period. The wire format is in docs/protocol.md.
"""
from __future__ import print_function

import errno
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

try:  # Python 3
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen
    from http.client import HTTPException
except ImportError:  # Python 2.7
    from urllib2 import HTTPError, Request, URLError, urlopen
    from httplib import HTTPException

PROTOCOL = 1
JOB_TYPE = "application/x-kirei-job"
RESULT_TYPE = "application/x-kirei-result"
DTYPES = {"uint8": 1, "uint16": 2, "float32": 4}
WATERMARK_MODES = ("blind", "profile", "none")
# the shipped models, the default (core.models.DEFAULT_MODEL) first: what the plugins offer when the
# worker doesn't list its own (GET /v1/health "models")
MODELS = ("kirei-2", "kirei-fast")
DEFAULT_IDLE_EXIT = 600
JPEG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")
MIN_PICTURES = 2  # the fewest pictures a watermark can be measured from (the worker refuses fewer)
GOOD_ESTIMATE = 8  # pictures from which a watermark is measured well, in practice


def jpeg_hint(filename):
    """What a document's file says of its pixels: True for a JPEG file; None (the worker looks at the
    pixels) for any other or none: a PNG may have been a JPEG once, an .xcf or .kra holds either."""
    return True if filename and str(filename).lower().endswith(JPEG_EXTENSIONS) else None


START_TIMEOUT = 120.0  # a first start imports torch, which can take a while on a cold disk
POLL_SECONDS = 0.5
HEALTH_TIMEOUT = 10.0
HEALTH_TRIES = 3  # a recorded worker that is alive but this slow to answer is busy, never replaced
# the longest a plugin may hold the start lock: asking the recorded worker, then starting one and asking it
START_LOCK_HELD = HEALTH_TIMEOUT * HEALTH_TRIES + START_TIMEOUT + HEALTH_TIMEOUT
START_LOCK_STALE = START_LOCK_HELD + 30.0  # a lock older than this was left by a plugin that died in it
# the config folder: written by install.py, and a worker's token
SETTINGS_FILE, TOKEN_FILE = "settings.json", "token"
# what the client keeps there beside them (install.py removes these)
WORKER_FILE, WORKER_LOG, WORKER_LOCK = "worker.json", "worker.log", "worker.lock"
RUNTIME_FILES = (WORKER_FILE, WORKER_LOG, WORKER_LOCK)


class KireiClientError(Exception):
    """A failure with a message for the user of GIMP or Krita."""


class CoreNotInstalled(KireiClientError):
    pass


class WorkerStartFailed(KireiClientError):
    pass


class WorkerGone(KireiClientError):
    pass


class WorkerNotAnswering(WorkerGone):
    """The worker took the connection but did not answer in time (busy, or its machine is loaded)."""


class WorkerBusy(KireiClientError):
    pass


class VersionMismatch(KireiClientError):
    pass


class JobFailed(KireiClientError):
    pass


class NoUsableProfile(JobFailed):
    """An estimate found no watermark, or one its checks don't trust: remove it blind instead."""


class Cancelled(KireiClientError):
    pass


class TimedOut(KireiClientError):
    pass


REPORT_HEADER = "X-Kirei-Report"  # an estimate's one-line report of what it found


class EstimatedProfile(bytes):
    """An estimate's result: the profile's PNG file bytes, and the worker's report on it."""

    def __new__(cls, data, report=""):
        obj = bytes.__new__(cls, data)
        obj.report = report
        return obj


# ------------------------------------------------------------------ framing
def pack(header, blobs=()):
    """A message: 4-byte big-endian header length, the header as UTF-8 JSON, then the blobs."""
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    return b"".join([struct.pack(">I", len(head)), head] + [bytes(b) for b in blobs])


def unpack(body, max_header=65536):
    """(header dict, payload bytes) of a message; ValueError with the reason when malformed."""
    if len(body) < 4:
        raise ValueError("the body is too short to hold a header")
    (n,) = struct.unpack(">I", body[:4])
    if n > max_header or n > len(body) - 4:
        raise ValueError("the header length (%d bytes) doesn't fit the body (%d bytes)" % (n, len(body)))
    try:
        header = json.loads(body[4:4 + n].decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RuntimeError):  # RuntimeError: nested too deep to parse
        raise ValueError("the header is not valid JSON")
    if not isinstance(header, dict):
        raise ValueError("the header must be a JSON object")
    return header, body[4 + n:]


# ------------------------------------------------------------------ places
def user_config_base(env=None, platform=None, home=None):
    """Where applications keep their settings: %APPDATA%, ~/Library/Application Support, $XDG_CONFIG_HOME."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    home = home or os.path.expanduser("~")
    if platform == "win32":
        return env.get("APPDATA") or os.path.join(home, "AppData", "Roaming")
    if platform == "darwin":
        return os.path.join(home, "Library", "Application Support")
    return env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")


def config_dir(env=None, platform=None, home=None):
    """The user's Kirei config folder (KIREI_CONFIG_DIR overrides it)."""
    env = os.environ if env is None else env
    return env.get("KIREI_CONFIG_DIR") or os.path.join(user_config_base(env, platform, home), "kirei")


def layer_name(scale, mode):
    """The new layer's name in GIMP and Krita: what was done ("Kirei x2", "Kirei x2 (profile)", ...)."""
    done = {"blind": "", "profile": " (profile)", "none": " (upscale only)"}[mode]
    return "Kirei x%d%s" % (scale, done) if scale > 1 else "Kirei" + (done or " (watermark removed)")


MATTE_NAME = "Kirei: watermark taken off"  # the new layer's mask in Krita (a node has a name there)


def what_changed(still_open, layer_there, size, size_then, same_colours=True, names=("image", "layer", "image")):
    """Why a result can't go where it belongs any more, for the plugin's user (None when it can): the
    document was closed, the layer deleted or converted, or the canvas's (width, height) isn't
    size_then. names: the host's words for the document, the layer and the canvas."""
    document, layer, canvas = names
    if not still_open:
        return "The %s was closed during the run" % document
    if not layer_there:
        return "The %s was deleted during the run" % layer
    if not same_colours:
        return "The layer's colour space was changed during the run"
    if tuple(size) != tuple(size_then):
        return "The %s was resized during the run (%dx%d, now %dx%d)" % ((canvas,) + tuple(size_then) + tuple(size))
    return None


def _read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (IOError, OSError, ValueError):
        return None


def make_private_dir(folder):
    """Create the folder (and its parents) if needed; a folder made here is its owner's only (0700)."""
    if not os.path.isdir(folder):
        try:
            os.makedirs(folder, 0o700)
        except OSError as e:
            if e.errno != errno.EEXIST:  # made at the same time by another process: fine
                raise


def _write_file(path, data):
    """Write bytes to path atomically: the file is whole or not there (a temporary beside it, renamed)."""
    make_private_dir(os.path.dirname(path))
    tmp = path + ".%d.tmp" % os.getpid()
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        if hasattr(os, "replace"):
            os.replace(tmp, path)
        else:  # Python 2.7: rename replaces on POSIX; on Windows the old file must go first
            if sys.platform == "win32" and os.path.exists(path):
                os.remove(path)
            os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, data):
    """Write data as JSON to path atomically (see _write_file)."""
    _write_file(path, json.dumps(data, sort_keys=True).encode("utf-8"))


def read_token(path):
    """The token in the file: printable ASCII (it travels in an HTTP header), whitespace stripped."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read().strip()
    except (IOError, OSError) as e:
        raise KireiClientError("can't read the worker's token file %s (%s)" % (path, e))
    if not raw:
        raise KireiClientError("the worker's token file %s is empty" % path)
    try:
        token = str(raw.decode("ascii"))
    except UnicodeDecodeError:
        token = None
    if token is None or any(not 33 <= ord(ch) <= 126 for ch in token):
        raise KireiClientError("the worker's token file %s holds characters other than ASCII letters, digits and "
                               "punctuation: write a plain ASCII token there (or delete it to get a new one)" % path)
    return token


# ------------------------------------------------------------------ named profiles
# A watermark profile kept by name in the config folder, so that the command line (estimate --save,
# restore --profile NAME, profiles list) and both plugins find the same ones: profiles/NAME.png is
# the profile, profiles/NAME.json a record of how it was made (optional; keys: "made" ISO 8601 date,
# "size" [w, h], "by" what made it, "report" the estimate's one-line report, "pictures" how many it was
# measured from, "bbox" [x0, y0, x1, y1] of the stamp, "mean_opacity").
PROFILES_DIR = "profiles"
PROFILE_NAME_MAX = 64
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
# names Windows keeps for devices, whatever the extension: a file can't be called so there
_RESERVED_NAMES = frozenset(["con", "prn", "aux", "nul"] + ["com%d" % i for i in range(1, 10)]
                            + ["lpt%d" % i for i in range(1, 10)])


def profile_name_problem(name):
    """Why `name` can't name a stored profile, or None when it can. A name is 1 to 64 ASCII letters,
    digits, '-' and '_', starting with a letter or digit: a valid file name on every system, never a
    path, and never mistaken for an option on a command line."""
    rule = "a profile name is 1 to %d letters, digits, '-' or '_', starting with a letter or digit" % PROFILE_NAME_MAX
    if not name or len(name) > PROFILE_NAME_MAX or not set(name) <= _NAME_CHARS or name[0] in "-_":
        return "%s: '%s' is not one" % (rule, name)
    if name.lower() in _RESERVED_NAMES:
        return "'%s' can't name a profile: Windows keeps that name for a device" % (name,)
    return None


def profiles_dir(config=None):
    return os.path.join(config or config_dir(), PROFILES_DIR)


def profile_path(name, config=None, ext=".png"):
    """Where the profile called `name` is kept (ext ".json": its record); a KireiClientError for a bad name."""
    problem = profile_name_problem(name)
    if problem:
        raise KireiClientError(problem)
    return os.path.join(profiles_dir(config), name + ext)


def stored_or_file(value, config=None):
    """The profile file `value` stands for, as `restore --profile NAME|FILE` reads it: the file it
    names when there is one (or when it can't be a stored profile's name: then whatever reads it says
    what is wrong), else the stored profile of that name; None for a name that nothing is stored under."""
    if not value or os.path.lexists(value) or profile_name_problem(value):
        return value
    path = profile_path(value, config)
    return path if os.path.isfile(path) else None


def profile_names(config=None):
    """The stored profiles' names, sorted case-insensitively ([] when there are none)."""
    try:
        files = os.listdir(profiles_dir(config))
    except OSError:
        return []
    names = [f[:-4] for f in files if f.endswith(".png") and profile_name_problem(f[:-4]) is None]
    return sorted(names, key=lambda n: (n.lower(), n))


def profile_record(name, config=None):
    """What the record of a stored profile says ({} when it has none, or one that can't be read)."""
    rec = _read_json(profile_path(name, config, ".json"))
    return rec if isinstance(rec, dict) else {}


def store_profile(name, data, record=None, config=None):
    """Keep a profile's PNG file bytes under `name`, replacing any profile of that name, with its
    record (a dict, see above) when given. Returns the profile's path."""
    path = profile_path(name, config)
    _write_file(path, bytes(data))
    if record is not None:
        write_json(profile_path(name, config, ".json"), record)
    else:
        _remove_if_there(profile_path(name, config, ".json"))  # a replaced profile's record isn't this one's
    return path


def remove_profile(name, config=None):
    """Delete the profile called `name` and its record; a KireiClientError when there is none."""
    path = profile_path(name, config)
    if not os.path.isfile(path):
        raise KireiClientError("there is no stored profile called '%s'" % (name,))
    os.remove(path)
    _remove_if_there(profile_path(name, config, ".json"))


def _remove_if_there(path):
    try:
        os.remove(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


# ------------------------------------------------------------------ results
class Result(object):
    """A restored region: raw pixels (H x W x C, little-endian, alpha last) and where they go; and,
    when asked for, the matte: H x W bytes, the opacity of the watermark taken off (None when
    nothing was)."""

    def __init__(self, header, payload):
        self.width = int(header["width"])
        self.height = int(header["height"])
        self.channels = int(header["channels"])
        self.dtype = header["dtype"]
        self.offset = tuple(header["offset"])
        self.notice = header.get("notice")
        self.pixels, self.matte = payload, None
        if header.get("matte_dtype") == "uint8":
            split = len(payload) - self.width * self.height
            self.pixels, self.matte = payload[:max(split, 0)], payload[max(split, 0):]

    def misfit(self, rect, scale, channels, dtype):
        """Why these pixels aren't what a plugin asked for (None when they are): other channels or
        sample type than it sent, a wrong length, or a place outside rect = (x, y, w, h), the region
        it sent, scaled by `scale`."""
        x, y, w, h = [v * scale for v in rect]
        ox, oy = self.offset
        size = self.width * self.height * channels * DTYPES.get(dtype, 0)
        if (self.channels, self.dtype, len(self.pixels)) != (channels, dtype, size) \
                or (self.matte is not None and len(self.matte) != self.width * self.height) \
                or not (x <= ox and y <= oy and ox + self.width <= x + w and oy + self.height <= y + h):
            return "The worker's answer doesn't fit the layer (%dx%d at %d,%d)" % (self.width, self.height, ox, oy)
        return None


def _pid_alive(pid):
    if not pid:
        return False
    if sys.platform == "win32":
        return True  # no cheap check; the health request decides
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ the client
class Client(object):
    def __init__(self, url=None, token=None, config=None, timeout=30.0):
        """With url and token: talk to that worker. Without: start or reuse a local worker."""
        self.url = url.rstrip("/") if url else None
        self.token = token
        self.config = config or config_dir()
        self.timeout = timeout
        self.local = url is None
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, **kw):
        """KIREI_SERVER_URL and KIREI_TOKEN_FILE name a running worker (local or remote); else local."""
        url = os.environ.get("KIREI_SERVER_URL")
        if url:
            token_file = os.environ.get("KIREI_TOKEN_FILE")
            if not token_file:
                raise KireiClientError("KIREI_SERVER_URL is set but KIREI_TOKEN_FILE is not: "
                                       "set it to the file holding that worker's token")
            return cls(url=url, token=read_token(token_file), **kw)
        return cls(**kw)

    # -------------------------------------------------------------- plumbing
    def _request(self, method, path, body=None, content_type=None, timeout=None):
        """(status, headers, body bytes). HTTP errors are returned, not raised; lost connections raise."""
        req = Request(self.url + path, data=body)
        req.get_method = lambda: method
        req.add_header("Authorization", "Bearer " + self.token)
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            resp = urlopen(req, timeout=timeout or self.timeout)
            try:
                return resp.getcode(), resp.info(), resp.read()
            finally:
                resp.close()
        except HTTPError as e:
            data = e.read()
            e.close()
            return e.code, e.info(), data
        except (URLError, HTTPException, socket.error, socket.timeout) as e:
            if isinstance(e, socket.timeout) or isinstance(getattr(e, "reason", None), socket.timeout):
                raise WorkerNotAnswering("the Kirei worker at %s did not answer in time" % self.url)
            raise WorkerGone("the Kirei worker at %s can't be reached (%s)" % (self.url, _reason(e)))

    def _json(self, status, data):
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return {"error": "the worker answered %d with something that isn't JSON" % status}

    def _checked(self, status, data):
        info = self._json(status, data)
        if status == 401:
            raise KireiClientError("the Kirei worker refused the token: it belongs to another worker "
                                   "(check KIREI_TOKEN_FILE, or run install.py again)")
        if status >= 400:
            raise JobFailed(info.get("error") or "the worker answered %d" % status)
        return info

    # -------------------------------------------------------------- workers
    def connect(self):
        """Make sure there is a worker to talk to; returns its health report."""
        with self._lock:
            if not self.local:
                return self._health()
            if self.url:
                try:
                    return self._health()
                except WorkerGone:
                    self.url = None
            return self._reuse_or_start()

    def probe(self):
        """The serving worker's health report, or None when no local worker is running. Unlike
        connect() it never starts one: for status displays, which must not start a worker to ask.
        It asks through a copy of this client, so a run going on in another thread keeps its worker."""
        other = Client(config=self.config, timeout=self.timeout)
        other.url, other.token, other.local = self.url, self.token, self.local
        return other._health() if not other.local else other._reuse()

    def _health(self):
        status, _, data = self._request("GET", "/v1/health", timeout=HEALTH_TIMEOUT)
        info = self._checked(status, data)
        if info.get("protocol") != PROTOCOL:
            raise VersionMismatch("the Kirei worker speaks protocol %s (version %s), this plugin protocol %s: "
                                  "run install.py again so that both are the same version"
                                  % (info.get("protocol"), info.get("version"), PROTOCOL))
        return info

    def _worker_file(self):
        return os.path.join(self.config, WORKER_FILE)

    def _reuse_or_start(self):
        info = self._reuse()
        if info is not None:
            return info
        with _StartLock(os.path.join(self.config, WORKER_LOCK), self._reuse) as lock:
            if lock.found is not None:  # another plugin started one meanwhile
                return lock.found
            return self._start()

    def _reuse(self):
        """The recorded worker's health report, or None when there is no usable recorded worker.

        A worker whose process is alive but which doesn't answer in time is busy (or its machine
        is): it is waited for, then reported, never replaced by a second worker.
        """
        rec = _read_json(self._worker_file())
        if not rec or not _pid_alive(rec.get("pid")):
            return None
        try:
            self.url, self.token = rec["url"], read_token(rec["token_file"])
        except (KireiClientError, KeyError, TypeError):
            self.url = None
            return None
        for _ in range(HEALTH_TRIES):
            try:
                return self._health()
            except WorkerNotAnswering:
                continue
            except KireiClientError:  # gone, or not ours (another token or version): start a new one
                self.url = None
                return None
        raise WorkerBusy("the Kirei worker (process %s) is running but did not answer for %d s: it may be busy "
                         "or the computer overloaded; try again in a moment"
                         % (rec.get("pid"), HEALTH_TIMEOUT * HEALTH_TRIES))

    def _start(self):
        settings = _read_json(os.path.join(self.config, SETTINGS_FILE))
        if not settings or not settings.get("python") or not os.path.exists(settings["python"]):
            raise CoreNotInstalled("Kirei's engine is not installed (no settings in %s): run `python3 install.py` "
                                   "in the Kirei folder" % self.config)
        token_file = os.path.join(self.config, TOKEN_FILE)
        log_path = os.path.join(self.config, WORKER_LOG)
        make_private_dir(self.config)
        cmd = [settings["python"], "-m", "core", "serve", "--port", "0", "--token-file", token_file,
               "--idle-exit", str(settings.get("idle_exit", DEFAULT_IDLE_EXIT))]
        kw = {}
        if sys.platform == "win32":
            kw["creationflags"] = 0x00000008 | 0x00000200  # DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP
        elif sys.version_info[0] >= 3:
            kw["start_new_session"] = True  # the worker outlives the plugin's process and its signals
        else:
            kw["preexec_fn"] = os.setsid
        with open(log_path, "wb") as log:  # this worker's log only
            try:
                proc = subprocess.Popen(cmd, cwd=settings.get("project"), stdout=subprocess.PIPE, stderr=log,
                                        stdin=subprocess.PIPE, close_fds=sys.platform != "win32", **kw)
            except OSError as e:
                raise WorkerStartFailed("the Kirei worker could not be started (%s)" % e)
        line = _first_line(proc, START_TIMEOUT)
        proc.stdout.close()
        proc.stdin.close()
        if not line.startswith("http"):
            if proc.poll() is None:
                proc.kill()
            raise WorkerStartFailed("the Kirei worker failed to start: %s (log: %s)" % (_log_tail(log_path), log_path))
        self.url, self.token = line.strip(), read_token(token_file)
        write_json(self._worker_file(), {"url": self.url, "pid": proc.pid, "token_file": token_file})
        return self._health()

    # -------------------------------------------------------------- jobs
    def health(self):
        return self.connect()

    def restore(self, pixels, width, height, channels, dtype, offset=(0, 0), mask=None, mask_dtype="uint8",
                scale=2, watermark="blind", profile=None, tile=None, progress=None, cancel=None, timeout=None,
                image_size=None, model=None, jpeg=None, matte=False, tta=None):
        """Restore a region; see docs/protocol.md for the meaning of each field.

        pixels: bytes, H x W x C little-endian of dtype ("uint8", "uint16", "float32"), alpha last.
        mask: bytes, H x W of mask_dtype (soft selection), or None. profile: path of a profile PNG.
        image_size: (width, height) of the whole picture (document, image): a profile of another size
        is refused at once. Required with a profile (the worker reads only the region's part of it).
        model: the learned model's name (one the worker lists in its health answer), or None for its default.
        jpeg: whether the pixels went through JPEG (jpeg_hint of the document's file), None: the worker looks.
        matte: also ask for the opacity of the watermark taken off (Result.matte).
        tta: True for the best pictures (the model on each tile's 8 flips and turns, averaged: about 8x the
        time), False for one view, None: the worker decides (8 views for JPEG input where that is quick).
        progress(fraction) is called as the job advances; setting the `cancel` event cancels it.
        Returns a Result; raises a KireiClientError subclass with a message for the user.
        """
        if watermark not in WATERMARK_MODES:
            raise KireiClientError("unknown watermark mode %r" % (watermark,))
        if watermark == "profile" and not profile:
            raise KireiClientError("choose a watermark profile file, or another watermark mode")
        header = {"width": width, "height": height, "channels": channels, "dtype": dtype,
                  "offset": list(offset), "scale": scale, "watermark": watermark, "protocol": PROTOCOL}
        blobs = [pixels]
        if mask is not None:
            header["mask_dtype"] = mask_dtype
            blobs.append(mask)
        if watermark == "profile":
            try:
                with open(profile, "rb") as fh:
                    data = fh.read()
            except (IOError, OSError) as e:
                raise KireiClientError("can't read the watermark profile %s (%s)" % (profile, e))
            header["profile_bytes"] = len(data)
            blobs.append(data)
        if tile:
            header["tile"] = tile
        if image_size:
            header["image_size"] = [int(image_size[0]), int(image_size[1])]
        if model:
            header["model"] = model
        if jpeg is not None:
            header["jpeg"] = bool(jpeg)
        if matte:
            header["matte"] = True
        if tta is not None:
            header["tta"] = bool(tta)
        body = pack(header, blobs)
        self.connect()
        status, _, data = self._request("POST", "/v1/jobs", body, JOB_TYPE, timeout=max(self.timeout, 60))
        job = self._checked(status, data)
        return self._wait(job["id"], progress, cancel, timeout)

    def estimate(self, pictures, progress=None, cancel=None, timeout=None):
        """Measure the watermark shared by pictures; returns the profile as PNG file bytes.

        pictures: a list of (pixels, width, height, channels, dtype), all of one size, as in restore().
        """
        header = {"pictures": [{"width": w, "height": h, "channels": c, "dtype": d}
                               for _, w, h, c, d in pictures], "protocol": PROTOCOL}
        body = pack(header, [p[0] for p in pictures])
        self.connect()
        status, _, data = self._request("POST", "/v1/estimate", body, JOB_TYPE, timeout=max(self.timeout, 60))
        job = self._checked(status, data)
        return self._wait(job["id"], progress, cancel, timeout)

    def _wait(self, job_id, progress, cancel, timeout):
        deadline = time.time() + timeout if timeout else None
        path = "/v1/jobs/%s/result?wait=%s" % (job_id, POLL_SECONDS)
        while True:
            if cancel is not None and cancel.is_set():
                self.cancel(job_id)
                raise Cancelled("cancelled")
            if deadline and time.time() > deadline:
                self.cancel(job_id)
                raise TimedOut("the Kirei worker took longer than %s s; the job was cancelled" % timeout)
            try:
                status, headers, data = self._request("GET", path, timeout=self.timeout + POLL_SECONDS)
            except WorkerNotAnswering:
                continue  # alive but slow (busy, or a loaded machine): ask again; the timeout and cancel still apply
            except WorkerGone as e:
                self._forget_worker()
                raise WorkerGone("the Kirei worker stopped during the job (%s); the next run starts a new one"
                                 % e)
            if status == 200:
                if RESULT_TYPE not in (headers.get("Content-Type") or ""):
                    return EstimatedProfile(data, headers.get(REPORT_HEADER) or "")
                header, payload = unpack(data)
                return Result(header, payload)
            info = self._json(status, data)
            if status == 202:
                if progress is not None:
                    progress(float(info.get("progress", 0.0)))
                continue
            if info.get("state") == "cancelled":
                raise Cancelled("cancelled")
            if info.get("fallback") == "blind":
                raise NoUsableProfile(info.get("error") or "no usable watermark profile was found")
            self._checked(status, data)
            raise JobFailed(info.get("error") or "the job failed (%d)" % status)

    def cancel(self, job_id):
        try:
            self._request("DELETE", "/v1/jobs/%s" % job_id, timeout=10)
        except WorkerGone:
            pass

    def _forget_worker(self):
        """This client's worker can't be reached: the next run looks for one afresh. Its record goes
        only if it still names that worker and the process is gone (never a live worker's record, nor
        that of a worker another plugin has started since)."""
        if self.local:
            url, self.url = self.url, None
            rec = _read_json(self._worker_file())
            if rec and rec.get("url") == url and not _pid_alive(rec.get("pid")):
                try:
                    os.remove(self._worker_file())
                except OSError:
                    pass


class _StartLock(object):
    """Only one plugin at a time starts a local worker: a lock file made with O_EXCL, holding the pid.

    While another holds it, find() is polled for the worker that one is starting (`found`); a
    lock whose holder died, or older than any holder can keep it (START_LOCK_STALE), is stale and
    taken over.
    """

    def __init__(self, path, find):
        self.path, self.find, self.found, self.owned = path, find, None, False

    def __enter__(self):
        deadline = time.time() + START_LOCK_STALE + 10  # past it, a lock left by a dead plugin is seen stale
        make_private_dir(os.path.dirname(self.path))
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise WorkerStartFailed("can't create the lock file %s (%s)" % (self.path, e))
            else:
                self.owned = True
                os.write(fd, str(os.getpid()).encode("ascii"))
                os.close(fd)
                try:
                    self.found = self.find()  # one may have been recorded just before the lock was ours
                except BaseException:  # __exit__ won't run: the lock must not outlive this failure
                    self._remove()
                    raise
                return self
            self.found = self.find()
            if self.found is not None:
                return self
            if self._stale():
                self._remove()
            elif time.time() > deadline:
                raise WorkerStartFailed("another Kirei worker has been starting for over %d s (lock file %s): "
                                        "see its log, worker.log, in the same folder" % (START_LOCK_STALE, self.path))
            else:
                time.sleep(0.25)

    def _stale(self):
        try:
            with open(self.path) as fh:
                pid = int(fh.read().strip() or 0)
            age = time.time() - os.path.getmtime(self.path)
        except (IOError, OSError, ValueError):
            return False  # just made and not yet written, or just removed
        return age > START_LOCK_STALE or (pid and sys.platform != "win32" and not _pid_alive(pid))

    def _remove(self):
        try:
            os.remove(self.path)
        except OSError:
            pass

    def __exit__(self, *exc):
        if self.owned:
            self._remove()


def _reason(e):
    reason = getattr(e, "reason", None) or e
    return str(reason) or type(e).__name__


def _first_line(proc, timeout):
    """The worker's first line of output (its URL), or '' if it exits or stays silent too long."""
    box = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()))
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    line = box[0] if box else b""
    return line.decode("utf-8", "replace") if isinstance(line, bytes) else line


def _log_tail(path, lines=3):
    try:
        with open(path, "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return "no log"
    tail = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(tail) if tail else "it printed nothing"
