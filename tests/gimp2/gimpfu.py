# -*- coding: utf-8 -*-
"""A gimpfu stand-in: the names the GIMP 2.10 plug-in uses, backed by plain pixel buffers, so that
its logic runs under Python 3 and a real Python 2.7 without GIMP (tests/test_gimp2.py).

Images, layers and the selection keep their pixels in bytearrays (8-bit, like GIMP 2.10's pixel
regions), exposed as numpy arrays (`Drawable.array`) where numpy is importable. Only what the
plug-in and its tests touch is here; behaviour follows GIMP 2.10's PDB.
"""
from __future__ import division

# ---------------------------------------------------------------- constants (gimpenums)
PF_INT8, PF_INT16, PF_INT32, PF_INT, PF_FLOAT, PF_STRING, PF_VALUE = range(7)
PF_COLOR, PF_ITEM, PF_DISPLAY, PF_IMAGE, PF_LAYER, PF_CHANNEL, PF_DRAWABLE, PF_VECTORS = range(7, 15)
PF_TOGGLE, PF_BOOL, PF_SLIDER, PF_SPINNER, PF_ADJUSTMENT, PF_FONT, PF_FILE, PF_BRUSH, PF_PATTERN = range(15, 24)
PF_GRADIENT, PF_RADIO, PF_TEXT, PF_PALETTE, PF_FILENAME, PF_DIRNAME, PF_OPTION = range(24, 31)
RGB, GRAY, INDEXED = 0, 1, 2
RGB_IMAGE, RGBA_IMAGE, GRAY_IMAGE, GRAYA_IMAGE, INDEXED_IMAGE, INDEXEDA_IMAGE = range(6)
NORMAL_MODE = 0
CHANNEL_OP_ADD, CHANNEL_OP_SUBTRACT, CHANNEL_OP_REPLACE, CHANNEL_OP_INTERSECT = range(4)
_BPP = {RGB_IMAGE: 3, RGBA_IMAGE: 4, GRAY_IMAGE: 1, GRAYA_IMAGE: 2}

registered = {}  # procedure name -> everything register() was given


def register(proc_name, blurb, help, author, copyright, date, label, imagetypes, params, results, function,
             menu=None, domain=None, on_query=None, on_run=None):
    registered[proc_name] = dict(blurb=blurb, help=help, author=author, label=label, imagetypes=imagetypes,
                                 params=params, results=results, function=function, menu=menu)


def main():
    pass


# ---------------------------------------------------------------- pixels
class PixelRgn(object):
    """drawable.get_pixel_rgn(x, y, w, h, dirty, shadow): rgn[x1:x2, y1:y2] reads/writes bytes."""

    def __init__(self, drawable, x, y, w, h, dirty, shadow):
        self.drawable, self.x, self.y, self.w, self.h, self.bpp = drawable, x, y, w, h, drawable.bpp

    def _rows(self, key):
        xs, ys = key
        x1, x2 = xs.start, xs.stop
        y1, y2 = ys.start, ys.stop
        if not (self.x <= x1 <= x2 <= self.x + self.w and self.y <= y1 <= y2 <= self.y + self.h):
            raise IndexError("slice outside the pixel region")
        return x1, x2, y1, y2

    def __getitem__(self, key):
        x1, x2, y1, y2 = self._rows(key)
        d, b = self.drawable, self.bpp
        return bytes(b"".join(bytes(d._data[(y * d.width + x1) * b:(y * d.width + x2) * b]) for y in range(y1, y2)))

    def __setitem__(self, key, value):
        x1, x2, y1, y2 = self._rows(key)
        d, b, n = self.drawable, self.bpp, (x2 - x1) * self.bpp
        if len(value) != n * (y2 - y1):
            raise TypeError("wrong amount of pixel data")
        for i, y in enumerate(range(y1, y2)):
            d._data[(y * d.width + x1) * b:(y * d.width + x2) * b] = value[i * n:(i + 1) * n]


class Drawable(object):
    def __init__(self, image, name, width, height, bpp):
        self.image, self.name, self.width, self.height, self.bpp = image, name, width, height, bpp
        self.offsets = (0, 0)
        self.parent = None
        self._data = bytearray(width * height * bpp)

    @property
    def has_alpha(self):
        return self.bpp in (2, 4)

    @property
    def array(self):
        """The pixels as a writable numpy view (H x W x bpp), where numpy is importable."""
        import numpy
        return numpy.frombuffer(self._data, numpy.uint8).reshape(self.height, self.width, self.bpp)

    def get_pixel_rgn(self, x, y, w, h, dirty=True, shadow=False):
        return PixelRgn(self, x, y, w, h, dirty, shadow)

    def set_offsets(self, x, y):
        self.offsets = (x, y)

    def flush(self):
        pass

    def update(self, x, y, w, h):
        pass

    def _scale(self, num_x, den_x, num_y, den_y):
        """Nearest-neighbour stand-in for GIMP's resampling, by num/den on each axis."""
        w, h, b = self.width * num_x // den_x, self.height * num_y // den_y, self.bpp
        old, ow = self._data, self.width
        self._data = bytearray(w * h * b)
        for y in range(h):
            for x in range(w):
                s = ((y * den_y // num_y) * ow + x * den_x // num_x) * b
                self._data[(y * w + x) * b:(y * w + x + 1) * b] = old[s:s + b]
        self.width, self.height = w, h
        self.offsets = (self.offsets[0] * num_x // den_x, self.offsets[1] * num_y // den_y)


class Layer(Drawable):
    def __init__(self, image, name, width, height, type, opacity=100, mode=NORMAL_MODE):
        Drawable.__init__(self, image, name, width, height, _BPP[type])
        self.opacity, self.mode = opacity, mode


class Image(object):
    def __init__(self, width, height, type=RGB):
        self.width, self.height, self.base_type = width, height, type
        self.layers = []  # top first, as in GIMP
        self.selection = Drawable(self, "Selection Mask", width, height, 1)
        self.undo_depth = 0
        self.undo_groups = 0
        self.valid = True  # False once closed
        self.filename = None  # the file it was opened from or saved to


def _fails(what):
    """A failed PDB call, as gimpfu reports it."""
    raise RuntimeError("Procedure '%s' returned no return values" % what)


# ---------------------------------------------------------------- gimp and pdb
class _Gimp(object):
    Layer = Layer
    Image = Image

    def __init__(self):
        self.messages, self.progress = [], []

    def message(self, text):
        self.messages.append(text)

    def progress_init(self, text=None):
        self.progress.append(("init", text))

    def progress_update(self, fraction):
        self.progress.append(("update", fraction))

    def displays_flush(self):
        pass


class _Pdb(object):
    def gimp_item_is_layer(self, item):
        return isinstance(item, Layer)

    def gimp_item_is_group(self, item):
        return False

    def gimp_selection_bounds(self, image):
        s = image.selection
        xs, ys = [], []
        for y in range(s.height):
            for x in range(s.width):
                if s._data[y * s.width + x]:
                    xs.append(x)
                    ys.append(y)
        if not xs:
            return 0, 0, 0, image.width, image.height
        return 1, min(xs), min(ys), max(xs) + 1, max(ys) + 1

    def gimp_image_select_rectangle(self, image, operation, x, y, width, height):
        s = image.selection
        if operation == CHANNEL_OP_REPLACE:
            s._data[:] = bytearray(len(s._data))
        for yy in range(y, y + height):
            s._data[yy * s.width + x:yy * s.width + x + width] = b"\xff" * width

    def gimp_selection_none(self, image):
        image.selection._data[:] = bytearray(len(image.selection._data))

    def gimp_image_undo_group_start(self, image):
        image.undo_depth += 1

    def gimp_image_undo_group_end(self, image):
        image.undo_depth -= 1
        image.undo_groups += 1

    def gimp_image_scale(self, image, width, height):
        for layer in image.layers + [image.selection]:
            layer._scale(width, image.width, height, image.height)
        image.width, image.height = width, height

    def gimp_image_is_valid(self, image):
        return image.valid

    def gimp_item_is_valid(self, item):
        return item.image.valid

    def gimp_image_get_item_position(self, image, item):
        if item not in image.layers:  # GIMP: the item is not attached to this image
            _fails("gimp-image-get-item-position")
        return image.layers.index(item)

    def gimp_image_remove_layer(self, image, layer):
        if layer not in image.layers:
            _fails("gimp-image-remove-layer")
        image.layers.remove(layer)

    def gimp_image_resize(self, image, width, height, offx, offy):
        """The canvas only, from the top-left corner (what the tests need)."""
        image.width, image.height = width, height

    def gimp_image_insert_layer(self, image, layer, parent, position):
        image.layers.insert(position, layer)

    def gimp_progress_end(self):
        gimp.progress.append(("end", None))

    def gimp_message(self, text):
        gimp.message(text)


gimp = _Gimp()
pdb = _Pdb()
