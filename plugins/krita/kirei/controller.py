"""The plugin's state and its runs, shared by the docker and the Tools > Scripts action.

The worker is called on a background thread; results come back to the GUI thread through Qt
signals, and only the GUI thread touches Krita (restore.apply_result).
"""
import os
import re
import threading
import time
from datetime import datetime

from krita import Krita

from . import kirei_client as kc
from .kirei_client import layer_name
from .pixels import to_worker
from .qt import QImage, QObject, pyqtSignal
from .restore import KireiError, apply_result, masks_supported, read_region, send

SETTINGS_GROUP = "kirei"
MODES = ("blind", "profile", "none")
PICTURE_FILTER = ("*.png", "*.jpg", "*.jpeg", "*.webp", "*.bmp", "*.tif", "*.tiff")


class Controller(QObject):
    busy = pyqtSignal(bool)
    progress = pyqtSignal(float)
    message = pyqtSignal(str, bool)  # text, is_error
    worker_status = pyqtSignal(str)
    models_listed = pyqtSignal(object)  # [(name, label)], the worker's default first: what it can run
    profile_changed = pyqtSignal(str)
    mode_changed = pyqtSignal(str)  # the controller chose another watermark mode (an estimate fell back)
    _done = pyqtSignal(object, object)  # (what finished, its outcome), from the worker thread

    def __init__(self):
        super().__init__()
        self.client = None
        self.running = None  # (kind, cancel event, started, context)
        self.last_seconds = None
        self._done.connect(self._finish)

    # ------------------------------------------------------------ settings
    def setting(self, key, default):
        return Krita.instance().readSetting(SETTINGS_GROUP, key, str(default))

    def set_setting(self, key, value):
        Krita.instance().writeSetting(SETTINGS_GROUP, key, str(value))

    @property
    def scale(self):
        v = self.setting("scale", 2)
        return int(v) if v in ("1", "2", "4") else 2

    @property
    def mode(self):
        v = self.setting("mode", "blind")
        return v if v in MODES else "blind"

    @property
    def profile(self):
        """The profile setting: a stored profile's name (kirei_client's named profiles) or a file's path."""
        return self.setting("profile", "")

    def profile_file(self):
        """The file the profile setting stands for; a KireiError saying what to do when there is none."""
        value = self.profile
        if not value:
            raise KireiError("Choose a watermark profile (or another watermark mode).")
        path = kc.stored_or_file(value)
        if path is None:
            raise KireiError("There is no stored profile called '%s' (any more): choose another, or estimate "
                             "one." % value)
        if not os.path.isfile(path):
            raise KireiError("The watermark profile file %s is not there: choose another." % value)
        return path

    @property
    def model(self):
        """The learned model's name (the worker checks it against what it has)."""
        return self.setting("model", kc.MODELS[0]) or kc.MODELS[0]

    @property
    def matte(self):
        """Whether the watermark taken off is added to the new layer as a (hidden) transparency mask
        (where this Krita can make one)."""
        return self.setting("matte", False) == "True" and masks_supported()

    @property
    def best(self):
        """Whether the model runs on 8 views of each tile (best quality, about 8x the time); else the
        worker decides (8 views for JPEG input where that is quick)."""
        return self.setting("best", False) == "True"

    # ------------------------------------------------------------ the worker
    def _client(self):
        """The client of the next run. GUI thread only: no other thread touches self.client."""
        if self.client is None:
            self.client = kc.Client.from_environment()
        return self.client

    def refresh_status(self):
        """Say which worker serves us, and the models it has, without starting one just to ask."""
        try:
            client = self._client()
        except kc.KireiClientError as e:
            self.worker_status.emit("Worker: %s" % e)
            return

        def ask():
            line, info = status_line(client)
            self.worker_status.emit(line)
            if info is not None:
                self.models_listed.emit(offered_models(info))
        threading.Thread(target=ask, daemon=True).start()

    # ------------------------------------------------------------ runs
    def restore(self, doc=None, node=None):
        """Restore the active layer with the current settings (returns at once; the run goes on)."""
        if self.running:
            self.message.emit("Kirei is already running; cancel it first.", True)
            return False
        k = Krita.instance()
        doc = doc or k.activeDocument()
        node = node or (doc.activeNode() if doc is not None else None)
        scale, mode, model, matte, best = self.scale, self.mode, self.model, self.matte, self.best
        try:
            profile = self.profile_file() if mode == "profile" else None
            region = read_region(doc, node)
            client = self._client()
        except (KireiError, kc.KireiClientError) as e:
            self.message.emit(str(e), True)
            return False
        context = (doc, node, region, scale, mode)
        self._start("restore", context, lambda cancel: send(client, region, scale, mode, profile,
                                                            self.progress.emit, cancel, model, matte, best))
        return True

    def estimate(self, pictures, name, replace=False):
        """Measure the watermark shared by pictures ((bytes, w, h, channels, dtype) each, one size) and
        store the profile as `name` (a stored one of that name only when `replace`), then use it."""
        if self.running:
            self.message.emit("Kirei is already running; cancel it first.", True)
            return False
        try:
            problem = kc.profile_name_problem(name)
            if problem:
                raise KireiError(problem[0].upper() + problem[1:] + ".")
            if not replace and os.path.isfile(kc.profile_path(name)):
                raise KireiError("A profile called '%s' is already stored: choose another name, or replace it."
                                 % name)
            client = self._client()
        except (KireiError, kc.KireiClientError) as e:
            self.message.emit(str(e), True)
            return False
        context = (name, (pictures[0][1], pictures[0][2]), len(pictures))
        self._start("estimate", context, lambda cancel: client.estimate(
            pictures, progress=self.progress.emit, cancel=cancel))
        return True

    def _start(self, kind, context, work):
        cancel = threading.Event()
        self.running = (kind, cancel, time.time(), context)
        self.busy.emit(True)
        self.progress.emit(0.0)
        self.message.emit("Restoring..." if kind == "restore" else "Measuring the watermark...", False)

        def run():
            try:
                outcome = work(cancel)
            except kc.Cancelled:
                outcome = kc.Cancelled("Cancelled: the document is unchanged.")
            except kc.KireiClientError as e:
                outcome = e
            except Exception as e:  # a bug must reach the user, not vanish with the thread
                outcome = kc.KireiClientError("Unexpected error: %s: %s" % (type(e).__name__, e))
            self._done.emit(kind, outcome)

        threading.Thread(target=run, daemon=True).start()

    def cancel(self):
        if self.running:
            self.running[1].set()

    def _finish(self, kind, outcome):
        """On the GUI thread (a Qt slot): apply a result, or say why there is none. Never raises:
        whatever happens, the docker leaves "Restoring..." and says it."""
        # the run stays "running" until its result is in the document: applying waits for Krita
        # (doc.waitForDone), whose event loop may deliver a second click or a poll meanwhile
        _, _, started, context = self.running
        try:
            if isinstance(outcome, kc.NoUsableProfile):  # the estimate's checks refused: go on blind
                self.set_setting("mode", "blind")
                self.mode_changed.emit("blind")
                self.message.emit("%s. Nothing was stored as '%s'." % (outcome, context[0]), True)
                return
            if isinstance(outcome, Exception):
                if isinstance(outcome, (kc.CoreNotInstalled, kc.WorkerStartFailed, kc.WorkerGone)):
                    self.client = None  # the next run looks for (or starts) a worker afresh
                self.message.emit(str(outcome) + ("" if isinstance(outcome, kc.Cancelled) else
                                                  " The document is unchanged."), True)
                return
            if kind == "restore":
                doc, node, region, scale, mode = context
                apply_result(doc, node, region, outcome, scale, layer_name(scale, mode))
                done = "Done"
            else:
                name, size, inputs = context
                report = getattr(outcome, "report", "")
                try:
                    kc.store_profile(name, outcome, estimate_record(report, size, inputs))
                except (IOError, OSError) as e:
                    raise KireiError("Can't store the profile in %s (%s)." % (kc.profiles_dir(), e))
                self.set_setting("profile", name)
                self.set_setting("mode", "profile")
                self.profile_changed.emit(name)
                done = "Profile stored as '%s' (%s)" % (name, report or "measured")
            self.last_seconds = time.time() - started
            self.progress.emit(1.0)
            notice = getattr(outcome, "notice", None)
            self.message.emit("%s in %.1f s.%s" % (done, self.last_seconds, " " + notice if notice else ""), False)
        except (KireiError, IOError, OSError) as e:
            self.message.emit(str(e), True)
        except Exception as e:  # noqa: BLE001  a bug must reach the user, not escape the slot
            self.message.emit("Unexpected error: %s: %s" % (type(e).__name__, e), True)
        finally:
            self.running = None
            self.busy.emit(False)


def status_line(client):
    """(One line on the worker that serves `client`, its health answer or None) (any thread); never
    starts a worker to ask."""
    try:
        info = client.probe()
        if info is None:
            return "Worker: local, starts when needed", None
        where = "local" if client.local else "remote, " + client.url
        return "Worker: %s (%s)" % (info.get("device_name", info.get("device")), where), info
    except kc.KireiClientError as e:
        return "Worker: %s" % e, None
    except Exception as e:  # noqa: BLE001  a stale or odd worker.json: say it, never crash the thread
        return "Worker: unknown (%s: %s)" % (type(e).__name__, e), None


MODEL_LABELS = {"kirei-2": "kirei-2 (best)", "kirei-fast": "kirei-fast (for slow machines)"}


def offered_models(info=None):
    """[(name, label)] for the Model list, the default first: the models a worker's health answer
    lists (labelled with their speed), else (no answer, or an older worker) the shipped ones."""
    listed = [m for m in (info or {}).get("models") or () if isinstance(m, dict) and isinstance(m.get("name"), str)]
    if not listed:
        return [(name, MODEL_LABELS.get(name, name)) for name in kc.MODELS]
    default = (info or {}).get("default_model")
    listed.sort(key=lambda m: m["name"] != default)  # stable: the worker's order otherwise
    return [(m["name"], "%s (%s)" % (m["name"], m["speed"]) if m.get("speed") else m["name"]) for m in listed]


def is_profile_name(value):
    """Whether a profile setting is a stored profile's name rather than a file's path (a path has a
    separator or an extension, which no name has)."""
    return kc.profile_name_problem(value) is None


def default_profile_name(source, taken=()):
    """A valid name not in `taken`, for a profile measured from pictures like `source` (a file or folder
    path; a series' number is dropped: "studio_a-0012.jpg" -> "studio_a"), else "watermark"."""
    base = os.path.splitext(os.path.basename((source or "").rstrip("/\\")))[0]
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-_")
    base = re.sub(r"[-_]*\d+$", "", base) or base  # a series' number, unless the name is only one
    name = base[:kc.PROFILE_NAME_MAX].rstrip("-_") or "watermark"
    if not is_profile_name(name):  # a name Windows keeps for a device
        name = "watermark"
    taken = set(t.lower() for t in taken)  # never one differing only in case: a file of that name on macOS, Windows
    n, candidate = 2, name
    while candidate.lower() in taken:
        suffix = "-%d" % n
        candidate, n = name[:kc.PROFILE_NAME_MAX - len(suffix)] + suffix, n + 1
    return candidate


def estimate_record(report, size, inputs):
    """A stored profile's record (kirei_client's named profiles) for an estimate made here. Where the
    stamp is, `profiles list` reads from the profile itself."""
    return {"made": datetime.now().astimezone().isoformat(timespec="seconds"), "size": list(size),
            "by": "Kirei in Krita %s" % Krita.instance().version(), "report": report, "inputs": inputs}


def pictures_from_documents(docs):
    """The open documents' merged pictures, in the worker's layout."""
    out = []
    for d in docs:
        if d.colorModel() not in ("RGBA", "GRAYA"):
            continue
        w, h = d.width(), d.height()
        data, dtype, channels = to_worker(d.pixelData(0, 0, w, h), d.colorModel(), d.colorDepth())
        out.append((data, w, h, channels, dtype))
    return _one_size(out)


def pictures_from_folder(folder):
    out = []
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(tuple(p[1:] for p in PICTURE_FILTER)):
            continue
        img = QImage(os.path.join(folder, name))
        if img.isNull():
            continue
        img = img.convertToFormat(QImage.Format.Format_RGBA8888)
        ptr = img.constBits()
        ptr.setsize(img.sizeInBytes())
        row = img.width() * 4
        data = bytes(ptr)
        if img.bytesPerLine() != row:  # drop the scanlines' padding
            data = b"".join(data[y * img.bytesPerLine():y * img.bytesPerLine() + row] for y in range(img.height()))
        out.append((data, img.width(), img.height(), 4, "uint8"))
    return _one_size(out)


def _one_size(pictures):
    """The pictures of the most common size (a profile belongs to one size)."""
    sizes = {}
    for p in pictures:
        sizes.setdefault((p[1], p[2]), []).append(p)
    if not sizes:
        return []
    return max(sizes.values(), key=len)
