"""What "Kirei: Restore" does to a Krita document, apart from any widget.

read_region() takes what the worker needs from the document (the layer's pixels inside the
canvas and the selection, in the worker's layout); apply_result() adds the restored pixels as a
new paint layer above the source, after scaling the document when the scale is above 1. The
document is touched only by apply_result(), after the worker has succeeded, and only once it has
checked that the document, the layer and the canvas are still as read_region() found them: a
failed or cancelled run leaves the document as it was. Only the GUI thread may call either.
"""
from krita import Document, Krita, Selection

from .kirei_client import MATTE_NAME, jpeg_hint, layer_name, what_changed
from .pixels import DEPTHS, MODELS, from_worker, to_worker


class KireiError(Exception):
    """Something the user can fix, said in the docker."""


UNCHANGED = ": the document is unchanged."


class Region(object):
    def __init__(self, x, y, width, height, pixels, dtype, channels, mask, model, depth, canvas, jpeg=None):
        self.x, self.y, self.width, self.height = x, y, width, height
        self.pixels, self.dtype, self.channels, self.mask = pixels, dtype, channels, mask
        self.model, self.depth = model, depth
        self.canvas = canvas  # the document's (width, height) when the region was read
        self.jpeg = jpeg  # what the document's file says of the pixels (kirei_client.jpeg_hint)


def check_target(doc, node):
    """The paint layer to restore, or a KireiError saying why there is none."""
    if doc is None:
        raise KireiError("Open a document first.")
    if node is None:
        raise KireiError("Select the paint layer to restore.")
    kind = node.type()
    if kind != "paintlayer":
        what = {"grouplayer": "a group", "vectorlayer": "a vector layer", "filelayer": "a file layer",
                "clonelayer": "a clone layer", "filllayer": "a fill layer"}.get(kind, "a " + kind)
        raise KireiError("Kirei works on paint layers, and %s is selected. Select a paint layer "
                         "(or convert this one with Layer > Convert)." % what)
    model, depth = node.colorModel(), node.colorDepth()
    if model not in MODELS:
        raise KireiError("Kirei works on RGB and grayscale layers; this one is %s. Convert it with "
                         "Image > Convert Image Color Space." % model)
    if depth not in DEPTHS:
        raise KireiError("Kirei doesn't handle %s layers." % depth)
    return node


def _intersect(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def read_region(doc, node):
    """The layer's part inside the canvas (and inside the selection's bounds, if any), ready to send."""
    check_target(doc, node)
    b = node.bounds()
    rect = _intersect((b.x(), b.y(), b.width(), b.height()), (0, 0, doc.width(), doc.height()))
    if rect is None:
        raise KireiError("The layer is empty inside the canvas: nothing to restore.")
    sel = doc.selection()
    if sel is not None and sel.width() > 0 and sel.height() > 0:
        rect = _intersect(rect, (sel.x(), sel.y(), sel.width(), sel.height()))
        if rect is None:
            raise KireiError("The selection doesn't cover any of this layer.")
    else:
        sel = None
    x, y, w, h = rect
    pixels, dtype, channels = to_worker(node.pixelData(x, y, w, h), node.colorModel(), node.colorDepth())
    mask = None
    if sel is not None:
        mask = bytes(sel.pixelData(x, y, w, h))
        if not any(bytearray(mask)):
            raise KireiError("The selection doesn't cover any of this layer.")
    return Region(x, y, w, h, pixels, dtype, channels, mask, node.colorModel(), node.colorDepth(),
                  (doc.width(), doc.height()), jpeg_hint(doc.fileName()))


def _in_document(doc, node):
    """Whether `node` is still in `doc`'s layer tree (a deleted layer, or one in a deleted group, isn't)."""
    top = node
    while top.parentNode() is not None:
        top = top.parentNode()
    return top == doc.rootNode()


def _what_changed(doc, node, region, canvas):
    """Why the result can't go where it belongs any more (None when it can): the document was
    closed, the layer deleted or converted, or the canvas isn't `canvas` (width, height)."""
    if doc not in Krita.instance().documents():  # nothing more of it may be asked
        return what_changed(False, False, (0, 0), canvas, names=("document", "layer", "canvas"))
    there = _in_document(doc, node)
    same = there and (node.colorModel(), node.colorDepth()) == (region.model, region.depth)
    return what_changed(True, there, (doc.width(), doc.height()), canvas, same,
                        ("document", "layer \"%s\"" % node.name(), "canvas"))


def _new_layer(doc, node, region, result, name):
    """The result as a paint layer that isn't in the document yet (a layer outside the tree is
    left alone by a scaling, and Krita's layers hold pixels outside the canvas)."""
    layer = doc.createNode(name, "paintlayer")
    if (layer.colorModel(), layer.colorDepth()) != (region.model, region.depth):
        layer.setColorSpace(region.model, region.depth, node.colorProfile())
    ox, oy = result.offset
    # Krita 5.2 answers False when it refuses; 5.1 answers nothing
    if layer.setPixelData(from_worker(result.pixels, region.model, region.depth), ox, oy, result.width,
                          result.height) is False:
        raise KireiError("Krita refused the restored pixels" + UNCHANGED)
    if result.matte:
        _add_matte(doc, layer, result)
    return layer


def masks_supported():
    """Whether this Krita makes transparency masks with pixels for plugins: 5.2 and later (5.1's
    createNode makes a mask without pixels, and nothing to give it some)."""
    return hasattr(Document, "createTransparencyMask")


def _add_matte(doc, layer, result):
    """The watermark taken off as the new layer's transparency mask, hidden: the picture stays as
    restored (showing the mask hides the layer where nothing was taken off)."""
    matte = Selection()
    ox, oy = result.offset
    matte.setPixelData(result.matte, ox, oy, result.width, result.height)
    mask = doc.createTransparencyMask(MATTE_NAME)
    mask.setSelection(matte)
    if layer.addChildNode(mask, None) is False:
        raise KireiError("Krita refused the watermark's mask" + UNCHANGED)
    mask.setVisible(False)


def _scale(doc, width, height, xres, yres):
    doc.scaleImage(width, height, xres, yres, "Bicubic")
    doc.waitForDone()
    if (doc.width(), doc.height()) != (width, height):
        raise KireiError("Krita didn't scale the document to %dx%d." % (width, height))


def _put_back(doc, layer, region, res):
    """Undo what apply_result did: remove the new layer, scale the document back. The words for the user."""
    try:
        if layer.parentNode() is not None:
            layer.remove()
        if (doc.width(), doc.height()) != region.canvas:
            _scale(doc, region.canvas[0], region.canvas[1], res[0], res[1])
            doc.refreshProjection()
            return "The document was scaled back to its size (Edit > Undo restores its exact pixels)."
        doc.refreshProjection()
        return "The document is unchanged."
    except Exception as e:  # noqa: BLE001  say what is left rather than hide the first failure
        return "Putting the document back failed too (%s): use Edit > Undo." % e


def apply_result(doc, node, region, result, scale, name):
    """Scale the document (scale > 1), then add the result as a new paint layer above `node`.

    Everything that can be checked is checked before the document changes; if a step fails
    after that, what was done is undone and a KireiError says so."""
    why = _what_changed(doc, node, region, region.canvas)
    if why:
        raise KireiError(why + UNCHANGED)
    why = result.misfit((region.x, region.y, region.width, region.height), scale, region.channels, region.dtype)
    if why:
        raise KireiError(why + UNCHANGED)
    layer = _new_layer(doc, node, region, result, name)
    res = (int(doc.xRes()), int(doc.yRes()))
    try:
        if scale > 1:
            scaled = (region.canvas[0] * scale, region.canvas[1] * scale)
            _scale(doc, scaled[0], scaled[1], res[0], res[1])
            why = _what_changed(doc, node, region, scaled)  # waiting for Krita may have let the user act
            if why:
                raise KireiError(why + ".")
        if node.parentNode().addChildNode(layer, node) is False:
            raise KireiError("Krita refused to add the new layer.")
    except Exception as e:
        why = str(e) if isinstance(e, KireiError) else "Unexpected error: %s: %s." % (type(e).__name__, e)
        raise KireiError("%s %s" % (why, _put_back(doc, layer, region, res)))
    doc.refreshProjection()
    return layer


def restore_now(client, doc, node, scale=2, watermark="blind", profile=None, progress=None, cancel=None, model=None,
                matte=False, best=False):
    """The whole run, synchronously (scripts and tests; the docker runs the middle step off the GUI thread)."""
    region = read_region(doc, node)
    result = send(client, region, scale, watermark, profile, progress, cancel, model, matte, best)
    return apply_result(doc, node, region, result, scale, layer_name(scale, watermark))


def send(client, region, scale, watermark, profile, progress=None, cancel=None, model=None, matte=False, best=False):
    """The worker's part: may run on any thread, touches no Krita object. model: None for the worker's
    default; matte: ask for the watermark taken off, which apply_result adds as a mask; best: the model
    on 8 views (best quality, about 8x slower), else as the worker decides."""
    if matte and not masks_supported():
        raise KireiError("Adding the watermark taken off as a mask needs Krita 5.2 or later" + UNCHANGED)
    return client.restore(region.pixels, region.width, region.height, region.channels, region.dtype,
                          offset=(region.x, region.y), mask=region.mask, scale=scale, watermark=watermark,
                          profile=profile, image_size=region.canvas, progress=progress, cancel=cancel,
                          model=model, jpeg=region.jpeg, matte=matte, tta=True if best else None)
