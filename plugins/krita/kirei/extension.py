"""The Tools > Scripts > "Kirei: Restore" action (default shortcut in kirei.action)."""
import os
import shutil

from krita import Extension, Krita

ACTION_ID = "kirei_restore"


class KireiExtension(Extension):
    controller = None  # set by the plugin's __init__

    def setup(self):
        _install_action_file()

    def createActions(self, window):
        action = window.createAction(ACTION_ID, "Kirei: Restore", "tools/scripts")
        action.triggered.connect(lambda: self.controller.restore())


def _install_action_file():
    """Krita reads default shortcuts from <resources>/actions/*.action (at its next start)."""
    try:
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kirei.action")
        folder = os.path.join(Krita.instance().getAppDataLocation(), "actions")
        dest = os.path.join(folder, "kirei.action")
        if not os.path.exists(dest):
            os.makedirs(folder, exist_ok=True)
            shutil.copyfile(src, dest)
    except OSError:
        pass  # a read-only resource folder: the action still works, without its default shortcut
