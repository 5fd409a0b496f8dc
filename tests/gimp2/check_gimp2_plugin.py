# -*- coding: utf-8 -*-
"""The GIMP 2.10 plug-in's checks, on the gimpfu stand-in, under any Python (2.7 included).

    KIREI_SERVER_URL=... KIREI_TOKEN_FILE=... python check_gimp2_plugin.py PLUGIN_DIR SHIM_DIR JOB.json

Prints one JSON line: what registered, and for each case the new layer (name, offsets, size,
sha256 of its pixels) and whether the source and the undo groups were left right;
tests/test_gimp2.py compares it with the engine's own answer.
"""
from __future__ import print_function

import hashlib
import json
import sys


def main():
    plugin_dir, shim_dir, job_file = sys.argv[1:4]
    sys.path[:0] = [shim_dir, plugin_dir]
    import gimpfu
    import kirei_gimp2  # noqa: F401  (registers through the stand-in)
    with open(job_file) as fh:
        job = json.load(fh)
    out = {"python": sys.version.split()[0]}
    proc = gimpfu.registered["python-fu-kirei-restore"]
    params = dict((p[1], p) for p in proc["params"])
    out["registered"] = {"menu": proc["menu"], "label": proc["label"], "types": proc["imagetypes"],
                         "params": [p[1] for p in proc["params"]], "models": params["model"][4],
                         "stored_label": params["stored"][2], "best": params["best"][2:]}
    run = proc["function"]
    out["cases"] = {}
    for case in job["cases"]:
        kind = {3: gimpfu.RGB_IMAGE, 1: gimpfu.GRAY_IMAGE}[case["bpp"]]
        w, h = job["width"], job["height"]
        image = gimpfu.Image(w, h, gimpfu.RGB if case["bpp"] == 3 else gimpfu.GRAY)
        src = gimpfu.Layer(image, "Background", w, h, kind)
        with open(case["pixels"], "rb") as fh:
            src.get_pixel_rgn(0, 0, w, h)[0:w, 0:h] = fh.read()
        twin = gimpfu.Layer(image, "twin", w, h, kind)
        twin._data[:] = src._data
        image.layers = [src, twin]
        image.filename = case.get("filename")
        if case.get("selection"):
            x, y, sw, sh = case["selection"]
            gimpfu.pdb.gimp_image_select_rectangle(image, gimpfu.CHANNEL_OP_REPLACE, x, y, sw, sh)
            x, y, sw, sh = case["soft"]
            for yy in range(y, y + sh):
                image.selection._data[yy * w + x:yy * w + x + sw] = b"\x80" * sw
        before = bytes(src._data)
        run(image, src, case["scale_index"], case["mode_index"], case.get("profile", ""), case.get("model_index", 0),
            case.get("stored", ""), case.get("best", False))
        new = image.layers[0]
        out["cases"][case["name"]] = {
            "layers": [l.name for l in image.layers], "offsets": list(new.offsets), "size": [new.width, new.height],
            "bpp": new.bpp, "sha256": hashlib.sha256(bytes(new._data)).hexdigest(),
            "source_unchanged": (bytes(src._data) == before) if case["scale_index"] == 0
            else bytes(src._data) == bytes(twin._data),
            "undo_balanced": image.undo_depth == 0 and image.undo_groups == 1,
            "image_size": [image.width, image.height]}
    # an error: nothing changes, the user is told, GIMP gets a failure
    image = gimpfu.Image(8, 8)
    layer = gimpfu.Layer(image, "Background", 8, 8, gimpfu.RGB_IMAGE)
    image.layers = [layer]
    try:
        run(image, layer, 1, 1, "")
        out["error"] = "no error"
    except RuntimeError as e:
        out["error"] = str(e)
    out["error_left_image"] = [l.name for l in image.layers] == ["Background"] and image.width == 8 \
        and image.undo_groups == 0
    # a profile made for pictures of another size (it covers this small image): the worker refuses it
    try:
        run(image, layer, 1, 1, [c["profile"] for c in job["cases"] if c.get("profile")][0])
        out["wrong_size_profile"] = "no error"
    except RuntimeError as e:
        out["wrong_size_profile"] = str(e)
    out["wrong_size_profile_left_image"] = [l.name for l in image.layers] == ["Background"] and image.width == 8
    # a stored profile's name that isn't stored: the user is told which are
    try:
        run(image, layer, 1, 1, "", 0, "nobody")
        out["no_such_stored"] = "no error"
    except RuntimeError as e:
        out["no_such_stored"] = str(e)
    out["no_such_stored_left_image"] = [l.name for l in image.layers] == ["Background"] and image.width == 8
    out["changed"] = changed_during_the_run(gimpfu, run)
    out["messages"] = gimpfu.gimp.messages
    print(json.dumps(out, sort_keys=True))


def changed_during_the_run(gimpfu, run):
    """What the user does while the worker runs (and a GIMP that refuses the new layer after the
    scaling): for each, the error and the image as the run left it."""
    import kirei_gimp2

    def refuse(image, layer, parent, position):
        raise RuntimeError("Procedure 'gimp-image-insert-layer' has been called with an invalid ID")

    pdb, real = gimpfu.pdb, kirei_gimp2.restore
    changes = {
        "deleted": lambda image: image.layers.remove(image.layers[0]),
        "resized": lambda image: pdb.gimp_image_resize(image, 10, 8, 0, 0),
        "closed": lambda image: setattr(image, "valid", False),
        "refused": lambda image: setattr(pdb, "gimp_image_insert_layer", refuse),
    }
    out = {}
    for name, change in sorted(changes.items()):
        image = gimpfu.Image(8, 8)
        layer = gimpfu.Layer(image, "Background", 8, 8, gimpfu.RGB_IMAGE)
        layer._data[:] = bytearray(range(192))
        image.layers = [layer]
        kirei_gimp2.restore = lambda *args, **kw: (change(image), real(*args, **kw))[1]
        try:
            run(image, layer, 1, 2, "")
            error = "no error"
        except RuntimeError as e:
            error = str(e)
        finally:
            kirei_gimp2.restore = real
            pdb.__dict__.pop("gimp_image_insert_layer", None)
        out[name] = {"error": error, "size": [image.width, image.height], "layers": [l.name for l in image.layers],
                     "pixels_kept": bytes(layer._data) == bytes(bytearray(range(192))),
                     "undo_balanced": image.undo_depth == 0}
    return out


if __name__ == "__main__":
    main()
