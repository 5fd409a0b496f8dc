"""Test-only Krita plugin: once the main window is up, drive the Kirei docker like a user would
(a document, the docker's settings, its Restore button; then Estimate profile... > From the open
documents, answering its name dialog), then write result.json and a grab of the window into
$KIREI_GUITEST_OUT and quit Krita. Installed only by tests/test_krita.py."""
import json
import os
import time
import traceback

from krita import Extension, Krita

from kirei.qt import QtCore, QtWidgets  # the binding this Krita runs on: PyQt5 (Krita 5) or PyQt6 (Krita 6)

QTimer = QtCore.QTimer
QApplication, QComboBox, QDockWidget, QInputDialog, QLabel, QPushButton = (
    QtWidgets.QApplication, QtWidgets.QComboBox, QtWidgets.QDockWidget, QtWidgets.QInputDialog, QtWidgets.QLabel,
    QtWidgets.QPushButton)

OUT = os.environ.get("KIREI_GUITEST_OUT")


class Driver(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self.res = {}

    def setup(self):
        if OUT:
            # a new user's, before the docker reads it: the profile chosen in an earlier run (Krita's settings
            # are kept warm) isn't stored in this run's config folder
            Krita.instance().writeSetting("kirei", "profile", "")
            Krita.instance().notifier().windowCreated.connect(lambda: QTimer.singleShot(1500, self.start))

    def createActions(self, window):
        pass

    def write(self):
        with open(os.path.join(OUT, "result.json"), "w") as fh:
            json.dump(self.res, fh, indent=1)

    def fail(self):
        self.res["traceback"] = traceback.format_exc()
        self.write()
        QTimer.singleShot(100, QApplication.instance().quit)

    def start(self):
        try:
            k = Krita.instance()
            self.res["krita_version"] = k.version()
            win = k.activeWindow()
            doc = k.createDocument(96, 64, "kirei-gui", "RGBA", "U8", "", 72.0)
            with open(os.path.join(OUT, "input.raw"), "rb") as fh:  # B,G,R,A already
                self.input = fh.read()
            doc.nodeByName("Background").setPixelData(self.input, 0, 0, 96, 64)
            win.addView(doc)
            k.setActiveDocument(doc)
            doc.refreshProjection()
            self.doc, self.t0 = doc, time.time()
            self.when_shown()
        except Exception:
            self.fail()

    def when_shown(self):
        """Waits, as a user would, for the new view to show the layer as selected (Krita 5.2 selects it
        a moment after the view opens; 5.1 and 5.3 at once), then uses the docker."""
        try:
            if self.doc.activeNode() is None and time.time() - self.t0 < 10:
                QTimer.singleShot(100, self.when_shown)
                return
            self.res["layer_selected_after_s"] = round(time.time() - self.t0, 1)
            self.click()
        except Exception:
            self.fail()

    def click(self):
        try:
            k, win, doc = Krita.instance(), Krita.instance().activeWindow(), self.doc
            docks = [d for d in win.qwindow().findChildren(QDockWidget) if d.objectName() == "kirei_docker"]
            self.res["docker_found"] = bool(docks)
            dock = docks[0]
            dock.setVisible(True)
            dock.raise_()
            self.res["docker_title"] = dock.windowTitle()
            self.res["action_found"] = k.action("kirei_restore") is not None
            scale, mode = dock.findChild(QComboBox, "kirei_scale"), dock.findChild(QComboBox, "kirei_mode")
            scale.setCurrentIndex(1)  # 2x
            mode.setCurrentIndex(0)  # blind
            button = dock.findChild(QPushButton, "kirei_restore_button")
            self.doc, self.dock, self.t0 = doc, dock, time.time()
            button.click()
            self.res["clicked"] = True
            QTimer.singleShot(200, self.wait)
        except Exception:
            self.fail()

    def wait(self):
        try:
            from kirei.docker import KireiDocker
            busy = KireiDocker.controller.running is not None
            if busy and time.time() - self.t0 < 150:
                QTimer.singleShot(200, self.wait)
                return
            names = [n.name() for n in self.doc.rootNode().childNodes()]
            self.res["layers"] = names
            self.res["size"] = [self.doc.width(), self.doc.height()]
            label = self.dock.findChild(QLabel, "kirei_message")
            self.res["message"] = label.text() if label else None
            layer = self.doc.nodeByName(names[-1])
            with open(os.path.join(OUT, "new_layer.raw"), "wb") as fh:
                fh.write(bytes(layer.pixelData(0, 0, self.doc.width(), self.doc.height())))
            QApplication.processEvents()
            QTimer.singleShot(800, self.grab)
        except Exception:
            self.fail()

    def undo(self):
        """Undo until the document is back as it was: how many steps it takes, and what is left."""
        k = Krita.instance()
        steps = 0
        while steps < 4 and (self.doc.width() != 96 or len(self.doc.rootNode().childNodes()) != 1):
            k.action("edit_undo").trigger()
            self.doc.waitForDone()
            QApplication.processEvents()
            steps += 1
        self.res["undo_steps"] = steps
        self.res["after_undo"] = {"size": [self.doc.width(), self.doc.height()],
                                  "layers": [n.name() for n in self.doc.rootNode().childNodes()],
                                  "pixels_equal": bytes(self.doc.nodeByName("Background").pixelData(0, 0, 96, 64))
                                  == self.input}

    def grab(self):
        try:
            qwin = Krita.instance().activeWindow().qwindow()
            self.res["grab_saved"] = qwin.grab().save(os.path.join(OUT, "krita-window.png"))
            self.undo()
            self.estimate()
        except Exception:
            self.fail()

    def entries(self):
        combo = self.dock.findChild(QComboBox, "kirei_profile")
        return [combo.itemText(i) for i in range(combo.count())], combo.currentText()

    def estimate(self):
        """Estimate profile... > From the open documents (the stamped pictures of $KIREI_GUITEST_OUT/named),
        accepting the name the dialog offers."""
        k = Krita.instance()
        with open(os.path.join(OUT, "named.json")) as fh:
            spec = json.load(fh)
        w, h = spec["width"], spec["height"]
        self.named, self.stamped, self.t0 = {"listed_before": self.entries()[0]}, [], time.time()
        for i in range(spec["stamped"]):
            d = k.createDocument(w, h, "stamped", "RGBA", "U8", "", 72.0)
            with open(os.path.join(OUT, "stamped_%d.raw" % i), "rb") as fh:  # B,G,R,A already
                d.nodeByName("Background").setPixelData(fh.read(), 0, 0, w, h)
            d.setFileName(os.path.join(OUT, "gui_studio-%02d.png" % (i + 1)))
            d.refreshProjection()
            d.waitForDone()
            self.stamped.append(d)
        QTimer.singleShot(300, self.answer)  # the dialog is modal: answered from its own event loop
        button = self.dock.findChild(QPushButton, "kirei_estimate")
        button.menu().actions()[0].trigger()  # "From the open documents": returns once the dialog is answered
        self.t0 = time.time()  # the estimate's start
        QTimer.singleShot(200, self.estimated)

    def answer(self):
        try:
            dialog = QApplication.activeModalWidget()
            if not isinstance(dialog, QInputDialog):
                if time.time() - self.t0 < 20:
                    QTimer.singleShot(200, self.answer)
                return
            self.named["offered"] = dialog.textValue()
            dialog.accept()
        except Exception:
            self.fail()

    def estimated(self):
        try:
            from kirei.docker import KireiDocker
            if KireiDocker.controller.running is not None and time.time() - self.t0 < 150:
                QTimer.singleShot(200, self.estimated)
                return
            label = self.dock.findChild(QLabel, "kirei_message")
            self.named["message"] = label.text()
            self.named["listed"], self.named["current"] = self.entries()
            self.named["mode"] = self.dock.findChild(QComboBox, "kirei_mode").currentData()
            self.res["named"] = self.named
            self.write()
            for d in self.stamped + [self.doc]:
                d.setModified(False)
                d.close()
            Krita.instance().action("file_quit").trigger()
        except Exception:
            self.fail()


Krita.instance().addExtension(Driver(Krita.instance()))
