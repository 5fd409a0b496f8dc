"""The "Kirei" docker: the controls, the worker's status, progress, Cancel, and what happened."""
import os

from krita import DockWidget, Krita

from .controller import MODES, PICTURE_FILTER, offered_models, pictures_from_documents, pictures_from_folder
from .qt import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QMenu, QProgressBar, QPushButton,
                 QToolButton, QVBoxLayout, QWidget, pyqtSlot)

DOCKER_ID = "kirei_docker"
MODE_LABELS = {"blind": "Remove it (blind)", "profile": "Remove it with a profile", "none": "Don't remove (upscale only)"}


class KireiDocker(DockWidget):
    controller = None  # set by the plugin's __init__ before Krita creates the docker

    def __init__(self):
        super().__init__()
        self.setWindowTitle("Kirei")
        c = self.controller
        body = QWidget(self)
        form = QFormLayout()
        self.scale = QComboBox(body)
        for s in (1, 2, 4):
            self.scale.addItem("%dx" % s, s)
        self.scale.setCurrentIndex((1, 2, 4).index(c.scale))
        self.scale.currentIndexChanged.connect(lambda i: c.set_setting("scale", self.scale.itemData(i)))
        form.addRow("Scale", self.scale)
        self.model = QComboBox(body)
        self.model.setToolTip("kirei-2 gives the best pictures; kirei-fast is quicker on slow machines")
        self._list_models(offered_models())  # the worker's own list replaces it once it answers
        self.model.currentIndexChanged.connect(lambda i: c.set_setting("model", self.model.itemData(i)))
        form.addRow("Model", self.model)
        self.mode = QComboBox(body)
        for m in MODES:
            self.mode.addItem(MODE_LABELS[m], m)
        self.mode.setCurrentIndex(MODES.index(c.mode))
        self.mode.currentIndexChanged.connect(self._mode_changed)
        form.addRow("Watermark", self.mode)
        self.profile = QLineEdit(c.profile, body)
        self.profile.setPlaceholderText("watermark profile (RGBA PNG)")
        self.profile.editingFinished.connect(lambda: c.set_setting("profile", self.profile.text()))
        browse = QToolButton(body)
        browse.setText("...")
        browse.clicked.connect(self._browse_profile)
        row = QHBoxLayout()
        row.addWidget(self.profile)
        row.addWidget(browse)
        form.addRow("Profile", row)
        self.estimate = QPushButton("Estimate profile...", body)
        menu = QMenu(self.estimate)
        menu.addAction("From the open documents", self._estimate_from_documents)
        menu.addAction("From a folder of pictures...", self._estimate_from_folder)
        self.estimate.setMenu(menu)
        form.addRow("", self.estimate)

        self.restore_button = QPushButton("Restore", body)
        self.restore_button.setObjectName("kirei_restore_button")
        self.restore_button.clicked.connect(lambda: c.restore())
        self.cancel_button = QPushButton("Cancel", body)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(c.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.cancel_button)
        self.bar = QProgressBar(body)
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.status = QLabel("Worker: ...", body)
        self.status.setWordWrap(True)
        self.info = QLabel("Select a paint layer (and a region, if you like), then Restore.", body)
        self.info.setObjectName("kirei_message")
        self.info.setWordWrap(True)

        layout = QVBoxLayout(body)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.info)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setWidget(body)

        c.busy.connect(self._busy)
        c.progress.connect(lambda f: self.bar.setValue(int(f * 1000)))
        c.message.connect(self._message)
        c.worker_status.connect(self.status.setText)
        c.profile_changed.connect(self._profile_changed)
        c.mode_changed.connect(lambda mode: self.mode.setCurrentIndex(MODES.index(mode)))
        c.models_listed.connect(self._list_models)
        self._mode_changed(self.mode.currentIndex())
        c.refresh_status()

    def canvasChanged(self, canvas):
        pass  # the docker works on whatever document is active when Restore is pressed

    # ------------------------------------------------------------ reactions
    def _mode_changed(self, index):
        mode = self.mode.itemData(index)
        self.controller.set_setting("mode", mode)
        self.profile.setEnabled(mode == "profile")

    @pyqtSlot(object)  # a slot: the list comes from the status thread, and is shown on the GUI thread
    def _list_models(self, models):
        """Offer `models` [(name, label)], keeping the saved choice if it is offered, else the first
        (the worker's default), which is saved then: what is shown is what is sent."""
        saved = self.controller.model
        self.model.blockSignals(True)
        self.model.clear()
        for name, label in models:
            self.model.addItem(label, name)
        self.model.setCurrentIndex(max(self.model.findData(saved), 0))
        self.model.blockSignals(False)
        if self.model.count() and self.model.currentData() != saved:
            self.controller.set_setting("model", self.model.currentData())

    def _busy(self, busy):
        self.restore_button.setEnabled(not busy)
        self.estimate.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        if not busy:
            self.controller.refresh_status()

    def _message(self, text, is_error):
        self.info.setText(text)
        self.info.setStyleSheet("color: #c33;" if is_error else "")

    def _profile_changed(self, path):
        self.profile.setText(path)
        self.mode.setCurrentIndex(MODES.index("profile"))

    def _browse_profile(self):
        path, _ = QFileDialog.getOpenFileName(self, "Watermark profile", os.path.dirname(self.profile.text()),
                                              "RGBA PNG (*.png)")
        if path:
            self.controller.set_setting("profile", path)
            self._profile_changed(path)

    def _save_profile_as(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save the watermark profile", "watermark-profile.png",
                                              "RGBA PNG (*.png)")
        return path

    def _estimate_from_documents(self):
        pictures = pictures_from_documents(Krita.instance().documents())
        self._estimate(pictures, "Open at least 2 pictures of the same size that carry the watermark.")

    def _estimate_from_folder(self):
        folder = QFileDialog.getExistingDirectory(self, "Folder of pictures that carry the watermark")
        if folder:
            self._estimate(pictures_from_folder(folder), "The folder needs at least 2 pictures of one size (%s)."
                           % ", ".join(PICTURE_FILTER))

    def _estimate(self, pictures, too_few):
        if len(pictures) < 2:
            self._message(too_few, True)
            return
        path = self._save_profile_as()
        if path:
            self.controller.estimate(pictures, path)
