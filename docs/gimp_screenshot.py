# Run by docs/screenshots.py inside a real GIMP 3 (its GUI, started with
#   --batch-interpreter=python-fu-eval -b "exec(open('<this file>').read())"):
# opens the picture $KIREI_SHOT_PICTURE in a window, waits until the file $KIREI_SHOT_GO exists (the
# script outside places the window meanwhile), then runs the Kirei procedure interactively: its
# dialog opens and stays open until GIMP is ended. Progress is printed as "KIREI-SHOT: ..." lines.
import os
import time

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp, Gio  # noqa: E402

PROC = "python-fu-kirei-restore"

image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(os.environ["KIREI_SHOT_PICTURE"]))
Gimp.Display.new(image)
Gimp.displays_flush()
print("KIREI-SHOT: image shown", flush=True)
procedure = Gimp.get_pdb().lookup_procedure(PROC)
if procedure is None:
    raise SystemExit("KIREI-SHOT: GIMP has no procedure %s: the Kirei plug-in did not register" % PROC)
deadline = time.time() + 120
while not os.path.exists(os.environ["KIREI_SHOT_GO"]) and time.time() < deadline:
    time.sleep(0.1)
config = procedure.create_config()
config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
config.set_property("image", image)
config.set_core_object_array("drawables", image.get_layers())
print("KIREI-SHOT: opening the dialog", flush=True)
procedure.run(config)  # returns when the dialog is closed (here: never, GIMP is ended first)
