"""What "Kirei: Restore" does to a Krita document, apart from any widget.

read_region() takes what the worker needs from the document (the layer's pixels inside the
canvas and the selection, in the worker's layout); apply_result() adds the restored pixels as a
new paint layer above the source, after scaling the document when the scale is above 1. The
document is touched only by apply_result(), after the worker has succeeded: a failed or
cancelled run leaves it exactly as it was. Only the GUI thread may call either.
"""
from .kirei_client import layer_name
from .pixels import DEPTHS, MODELS, from_worker, to_worker


class KireiError(Exception):
    """Something the user can fix, said in the docker."""


class Region(object):
    def __init__(self, x, y, width, height, pixels, dtype, channels, mask, model, depth):
        self.x, self.y, self.width, self.height = x, y, width, height
        self.pixels, self.dtype, self.channels, self.mask = pixels, dtype, channels, mask
        self.model, self.depth = model, depth


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
    return Region(x, y, w, h, pixels, dtype, channels, mask, node.colorModel(), node.colorDepth())


def apply_result(doc, node, region, result, scale, name):
    """Scale the document (scale > 1), then add the result as a new paint layer above `node`."""
    if scale > 1:
        doc.scaleImage(doc.width() * scale, doc.height() * scale, int(doc.xRes()), int(doc.yRes()), "Bicubic")
        doc.waitForDone()
    layer = doc.createNode(name, "paintlayer")
    if (layer.colorModel(), layer.colorDepth()) != (region.model, region.depth):
        layer.setColorSpace(region.model, region.depth, node.colorProfile())
    ox, oy = result.offset
    layer.setPixelData(from_worker(result.pixels, region.model, region.depth), ox, oy, result.width, result.height)
    node.parentNode().addChildNode(layer, node)
    doc.refreshProjection()
    return layer


def restore_now(client, doc, node, scale=2, watermark="blind", profile=None, progress=None, cancel=None):
    """The whole run, synchronously (scripts and tests; the docker runs the middle step off the GUI thread)."""
    region = read_region(doc, node)
    result = send(client, region, scale, watermark, profile, progress, cancel)
    return apply_result(doc, node, region, result, scale, layer_name(scale, watermark))


def send(client, region, scale, watermark, profile, progress=None, cancel=None):
    """The worker's part: may run on any thread, touches no Krita object."""
    return client.restore(region.pixels, region.width, region.height, region.channels, region.dtype,
                          offset=(region.x, region.y), mask=region.mask, scale=scale, watermark=watermark,
                          profile=profile, progress=progress, cancel=cancel)
