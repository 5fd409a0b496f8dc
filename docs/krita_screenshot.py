"""Krita plugin used only by docs/screenshots.py: once the main window is up, open the sample, show
the Kirei docker, restore with it as a user would (2x, with the stored profile when the docker offers
one), then save a grab of the main window and result.json into $KIREI_SHOT_OUT and quit Krita.

Installed as pykrita/kirei_screenshot/__init__.py into a throwaway Krita profile. It takes whatever
the docker looks like when it runs: a control it can't find is noted in result.json, not fatal.
"""
import json
import os
import time
import traceback

from krita import Extension, Krita

from kirei.qt import QtCore, QtGui, QtWidgets  # the binding this Krita runs on (PyQt5 or PyQt6)

QTimer = QtCore.QTimer
QApplication, QComboBox, QDockWidget, QLabel, QPushButton = (QtWidgets.QApplication, QtWidgets.QComboBox,
                                                             QtWidgets.QDockWidget, QtWidgets.QLabel,
                                                             QtWidgets.QPushButton)
OUT = os.environ.get("KIREI_SHOT_OUT")
RESTORE_TIMEOUT_S = 300


class Shooter(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self.res = {"notes": []}

    def setup(self):
        if OUT:
            Krita.instance().notifier().windowCreated.connect(lambda: QTimer.singleShot(1500, self.guarded(self.open)))

    def createActions(self, window):
        pass

    def guarded(self, step):
        """`step` with any exception written to result.json, after which Krita quits."""
        def run():
            try:
                step()
            except Exception:
                self.res["traceback"] = traceback.format_exc()
                self.write()
                QTimer.singleShot(100, QApplication.instance().quit)
        return run

    def later(self, ms, step):
        QTimer.singleShot(ms, self.guarded(step))

    def write(self):
        with open(os.path.join(OUT, "result.json"), "w") as fh:
            json.dump(self.res, fh, indent=1)

    def open(self):
        k = Krita.instance()
        self.res["krita_version"] = k.version()
        win = k.activeWindow()
        w, h = (int(v) for v in os.environ.get("KIREI_SHOT_SIZE", "1280x800").split("x"))
        win.qwindow().setGeometry(0, 0, w, h)  # no window manager under Xvfb: Krita's size is ours to set
        self.doc = k.openDocument(os.environ["KIREI_SHOT_PICTURE"])
        win.addView(self.doc)
        k.setActiveDocument(self.doc)
        self.t0 = time.time()
        self.later(100, self.when_shown)

    def when_shown(self):
        """The docker works on the active layer, which a new view selects a moment after it opens."""
        if self.doc.activeNode() is None and time.time() - self.t0 < 20:
            return self.later(100, self.when_shown)
        qwin = Krita.instance().activeWindow().qwindow()
        docks = [d for d in qwin.findChildren(QDockWidget) if d.objectName() == "kirei_docker"]
        if not docks:
            raise RuntimeError("the Kirei docker isn't there: did the kirei plugin load? (see krita.log)")
        self.dock = dock = docks[0]
        dock.setVisible(True)
        dock.raise_()
        self.choose("kirei_scale", 2)
        profiles = self.dock.findChild(QComboBox, "kirei_profile")
        if profiles is not None and profiles.findData(os.environ.get("KIREI_SHOT_PROFILE")) >= 0:
            self.choose("kirei_mode", "profile")
            self.choose("kirei_profile", os.environ["KIREI_SHOT_PROFILE"])
        button = dock.findChild(QPushButton, "kirei_restore_button")
        if button is None:
            raise RuntimeError("the docker has no button named kirei_restore_button")
        self.layers = len(self.doc.rootNode().childNodes())
        self.button, self.t0 = button, time.time()
        button.click()
        self.later(500, self.wait)

    def choose(self, name, data):
        """Select the entry of the docker's combo box `name` whose data is `data`, as a user would."""
        box = self.dock.findChild(QComboBox, name)
        i = box.findData(data) if box is not None else -1
        if i < 0:
            self.res["notes"].append("no %r entry in the docker's %s" % (data, name))
            return
        box.setCurrentIndex(i)
        box.activated.emit(i)  # what a user's pick also sends

    def wait(self):
        done = len(self.doc.rootNode().childNodes()) > self.layers and self.button.isEnabled()
        if not done and time.time() - self.t0 < RESTORE_TIMEOUT_S:
            return self.later(300, self.wait)
        label = self.dock.findChild(QLabel, "kirei_message")
        self.res["message"] = label.text() if label is not None else None
        self.res["layers"] = [n.name() for n in self.doc.rootNode().childNodes()]
        self.res["restored"] = done
        view = Krita.instance().activeWindow().activeView()
        view.canvas().setZoomLevel(float(os.environ.get("KIREI_SHOT_ZOOM", "1")))
        qwin = Krita.instance().activeWindow().qwindow()  # the pointer off the canvas: no brush outline in the shot
        QtGui.QCursor.setPos(qwin.mapToGlobal(QtCore.QPoint(qwin.width() - 2, 2)))
        self.later(1500, self.grab)

    def grab(self):
        qwin = Krita.instance().activeWindow().qwindow()
        self.res["grab_saved"] = qwin.grab().save(os.path.join(OUT, "krita-window.png"))
        self.write()
        self.doc.setModified(False)
        self.doc.close()
        Krita.instance().action("file_quit").trigger()


Krita.instance().addExtension(Shooter(Krita.instance()))
