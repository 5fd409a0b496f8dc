"""The Qt binding Krita runs on, and the Qt names the plugin uses: every module here takes them from
this one. Krita 6 (Qt 6) runs Python plugins under PyQt6, Krita 5 under PyQt5.

The binding is read off Krita's own API classes (libkis's Krita derives from its binding's QObject),
never found by trying imports: on a system with both bindings installed, Krita 5 must get PyQt5
(a second Qt in one process fails in obscure ways), whatever else Python can import.

Qt 6's differences are met by writing what both bindings take: enums in their scoped form
(QImage.Format.Format_RGBA8888, DockWidgetFactoryBase.DockPosition.DockRight: PyQt6 has no other,
PyQt5 5.11+ takes both), QImage.sizeInBytes (byteCount is gone in Qt 6), no exec_() (the plugin's
only modal dialogs are Qt's static ones: QFileDialog.get*, QInputDialog.getText, QMessageBox.question,
named alike in both), and no QAction by name (it moved to QtGui in Qt 6; Krita's
Window.createAction makes the plugin's one action).
"""
from krita import Krita


def host_binding(krita_class=Krita):
    """'PyQt5' or 'PyQt6': the binding `krita_class` (Krita's API class) is built on."""
    for cls in krita_class.__mro__:
        top = cls.__module__.split(".")[0]
        if top in ("PyQt5", "PyQt6"):
            return top
    raise ImportError("Kirei: Krita's Python API is built on neither PyQt5 nor PyQt6 (%s)" %
                      ", ".join(c.__module__ for c in krita_class.__mro__))


BINDING = host_binding()
if BINDING == "PyQt6":
    from PyQt6 import QtCore, QtGui, QtWidgets
else:
    from PyQt5 import QtCore, QtGui, QtWidgets

Qt, QObject, pyqtSignal, pyqtSlot = QtCore.Qt, QtCore.QObject, QtCore.pyqtSignal, QtCore.pyqtSlot
QImage = QtGui.QImage
QComboBox, QFileDialog, QFormLayout, QHBoxLayout = (QtWidgets.QComboBox, QtWidgets.QFileDialog,
                                                    QtWidgets.QFormLayout, QtWidgets.QHBoxLayout)
QLabel, QLineEdit, QMenu, QProgressBar = QtWidgets.QLabel, QtWidgets.QLineEdit, QtWidgets.QMenu, QtWidgets.QProgressBar
QCheckBox, QInputDialog, QMessageBox = QtWidgets.QCheckBox, QtWidgets.QInputDialog, QtWidgets.QMessageBox
QPushButton, QVBoxLayout, QWidget = QtWidgets.QPushButton, QtWidgets.QVBoxLayout, QtWidgets.QWidget
