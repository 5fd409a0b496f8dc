"""The plugin's state and its runs, shared by the docker and the Tools > Scripts action.

The worker is called on a background thread; results come back to the GUI thread through Qt
signals, and only the GUI thread touches Krita (restore.apply_result).
"""
import os
import threading
import time

from krita import Krita

from . import kirei_client as kc
from .kirei_client import layer_name
from .pixels import to_worker
from .qt import QImage, QObject, pyqtSignal
from .restore import KireiError, apply_result, read_region, send

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
        return self.setting("profile", "")

    @property
    def model(self):
        """The learned model's name (the worker checks it against what it has)."""
        return self.setting("model", kc.MODELS[0]) or kc.MODELS[0]

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
        scale, mode, profile, model = self.scale, self.mode, self.profile, self.model
        try:
            if mode == "profile" and not (profile and os.path.isfile(profile)):
                raise KireiError("Choose the watermark profile file (or another watermark mode).")
            region = read_region(doc, node)
            client = self._client()
        except (KireiError, kc.KireiClientError) as e:
            self.message.emit(str(e), True)
            return False
        context = (doc, node, region, scale, mode)
        self._start("restore", context, lambda cancel: send(client, region, scale, mode, profile,
                                                            self.progress.emit, cancel, model))
        return True

    def estimate(self, pictures, save_to):
        """Measure the watermark shared by pictures ((bytes, w, h, channels, dtype) each); save the profile."""
        if self.running:
            self.message.emit("Kirei is already running; cancel it first.", True)
            return False
        try:
            client = self._client()
        except kc.KireiClientError as e:
            self.message.emit(str(e), True)
            return False
        self._start("estimate", save_to, lambda cancel: client.estimate(
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
                self.message.emit(str(outcome) + ".", True)
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
                with open(context, "wb") as fh:
                    fh.write(outcome)
                self.set_setting("profile", context)
                self.set_setting("mode", "profile")
                self.profile_changed.emit(context)
                done = "Profile saved to %s (%s)" % (context, getattr(outcome, "report", "") or "measured")
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
