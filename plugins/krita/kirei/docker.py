"""The "Kirei" docker: the controls, the worker's status, progress, Cancel, and what happened."""
import os

from krita import DockWidget, Krita

from . import kirei_client as kc
from .controller import (MODES, PICTURE_FILTER, default_profile_name, is_profile_name, masks_supported,
                         offered_models, pictures_from_documents, pictures_from_folder)
from .qt import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QInputDialog, QLabel, QLineEdit, QMenu,
                 QMessageBox, QProgressBar, QPushButton, Qt, QVBoxLayout, QWidget, pyqtSlot)

DOCKER_ID = "kirei_docker"
MODE_LABELS = {"blind": "Remove it (blind)", "profile": "Remove it with a profile", "none": "Don't remove (upscale only)"}
CHOOSE_FILE = "Choose a file..."  # the profile list's last entry (its data: "", which no name or path is)
TOOLTIP_ROLE = Qt.ItemDataRole.ToolTipRole
YES, NO = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No


class KireiDocker(DockWidget):
    controller = None  # set by the plugin's __init__ before Krita creates the docker

    def __init__(self):
        super().__init__()
        self.setWindowTitle("Kirei")
        c = self.controller
        body = QWidget(self)
        form = QFormLayout()
        self.scale = QComboBox(body)
        self.scale.setObjectName("kirei_scale")
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
        self.mode.setObjectName("kirei_mode")
        for m in MODES:
            self.mode.addItem(MODE_LABELS[m], m)
        self.mode.setCurrentIndex(MODES.index(c.mode))
        self.mode.currentIndexChanged.connect(self._mode_changed)
        form.addRow("Watermark", self.mode)
        self.profile = QComboBox(body)  # the stored profiles by name, a chosen file, "Choose a file..."
        self.profile.setObjectName("kirei_profile")
        self.profile.setToolTip("The profiles stored by name (Estimate profile..., or `python -m core estimate "
                                "--save NAME`), or a profile PNG file")
        self._list_profiles()
        self.profile.activated.connect(self._profile_chosen)  # a user's choice (also of the entry shown)
        form.addRow("Profile", self.profile)
        self.estimate = QPushButton("Estimate profile...", body)
        self.estimate.setObjectName("kirei_estimate")
        menu = QMenu(self.estimate)
        menu.addAction("From the open documents", self._estimate_from_documents)
        menu.addAction("From a folder of pictures...", self._estimate_from_folder)
        self.estimate.setMenu(menu)
        form.addRow("", self.estimate)
        self.matte = QCheckBox("Add the found watermark as a mask", body)
        self.matte.setObjectName("kirei_matte")
        self.matte.setToolTip("Give the new layer a transparency mask (hidden, so the picture is the same): the "
                              "opacity of the watermark that was taken off, found blind or the profile's")
        self.matte.setChecked(c.matte)
        self.matte.toggled.connect(lambda on: c.set_setting("matte", on))
        if not masks_supported():
            self.matte.setEnabled(False)
            self.matte.setToolTip("Needs Krita 5.2 or later: this Krita gives plugins no way to fill a mask")
        form.addRow("", self.matte)
        self.best = QCheckBox("Best quality (about 8x slower)", body)
        self.best.setObjectName("kirei_best")
        self.best.setToolTip("Run the model on the picture's 8 flips and turns and average them: cleaner lines and "
                             "flats, for about 8 times the time. Without it Kirei does this only for JPEG pictures, "
                             "where it is quick.")
        self.best.setChecked(c.best)
        self.best.toggled.connect(lambda on: c.set_setting("best", on))
        form.addRow("", self.best)

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

    def showEvent(self, event):
        self._list_profiles()  # profiles stored meanwhile (by the command line, another window) show up
        super().showEvent(event)

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

    def _profile_changed(self, value):
        self._list_profiles()
        self.mode.setCurrentIndex(MODES.index("profile"))

    def _list_profiles(self):
        """Offer the stored profiles, the chosen file (if one is), then "Choose a file...". The saved
        choice is shown; with none saved the first stored profile is, and saved: what is shown is what is sent."""
        saved = self.controller.profile
        names = kc.profile_names()
        self.profile.blockSignals(True)
        self.profile.clear()
        for name in names:
            record = kc.profile_record(name)
            self.profile.addItem(name, name)
            self.profile.setItemData(self.profile.count() - 1, record.get("report") or name, TOOLTIP_ROLE)
        if saved and saved not in names:  # a file, or a name removed since (Restore says so)
            label = (saved + " (not stored)") if is_profile_name(saved) else os.path.basename(saved)
            self.profile.addItem(label, saved)
            self.profile.setItemData(self.profile.count() - 1, saved, TOOLTIP_ROLE)
        self.profile.addItem(CHOOSE_FILE, "")
        if not saved and names:
            saved = names[0]
            self.controller.set_setting("profile", saved)
        self.profile.setCurrentIndex(self.profile.findData(saved) if saved else self.profile.count() - 1)
        self.profile.blockSignals(False)

    def _profile_chosen(self, index):
        value = self.profile.itemData(index)
        if not value:
            value = self._choose_profile_file()
        if value:
            self.controller.set_setting("profile", value)
        self._list_profiles()  # shows the choice, or the one before when the file dialog was cancelled

    def _choose_profile_file(self):
        saved = self.controller.profile
        path, _ = QFileDialog.getOpenFileName(self, "Watermark profile", "" if is_profile_name(saved) else
                                              os.path.dirname(saved), "RGBA PNG (*.png)")
        return path

    def _estimate_from_documents(self):
        docs = Krita.instance().documents()
        source = next((d.fileName() for d in docs if d.fileName()), "")
        self._estimate(pictures_from_documents(docs), source,
                       "Open at least 2 pictures of the same size that carry the watermark.")

    def _estimate_from_folder(self):
        folder = QFileDialog.getExistingDirectory(self, "Folder of pictures that carry the watermark")
        if folder:
            self._estimate(pictures_from_folder(folder), folder, "The folder needs at least 2 pictures of one size "
                           "(%s)." % ", ".join(PICTURE_FILTER))

    def _estimate(self, pictures, source, too_few):
        if len(pictures) < 2:
            self._message(too_few, True)
            return
        name, replace = self._ask_profile_name(default_profile_name(source, kc.profile_names()))
        if name:
            self.controller.estimate(pictures, name, replace)

    def _ask_profile_name(self, default):
        """(name, replace) for the profile to store, or (None, False) when the user cancels. A name
        that isn't valid is asked again, saying why; a name in use is replaced only when the user says so."""
        name, why = default, ""
        while True:
            name, ok = QInputDialog.getText(self, "Store the watermark profile", why + "Store the measured profile "
                                            "as (letters, digits, '-' and '_'):", QLineEdit.EchoMode.Normal, name)
            if not ok:
                return None, False
            name = name.strip()
            problem = kc.profile_name_problem(name)
            if problem:
                why = problem[0].upper() + problem[1:] + ".\n\n"
                continue
            if not os.path.isfile(kc.profile_path(name)):
                return name, False
            made = kc.profile_record(name).get("made", "")[:10]
            answer = QMessageBox.question(
                self, "Replace the stored profile?", "A profile called '%s' is already stored%s. Replace it?"
                % (name, " (made %s)" % made if made else ""), YES | NO, NO)
            if answer == YES:
                return name, True
            why = "'%s' is already stored: choose another name.\n\n" % name
