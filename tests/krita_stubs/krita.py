"""Stubs of Krita's Python API (the `krita` module of Krita 5.x on PyQt5, or of Krita 6 on PyQt6),
for unit tests without Krita.

Same class and method names, arguments and return types as libkis, for the parts Kirei uses,
backed by plain bytes: a node's pixels are a buffer in Krita's own layout (B,G,R,A for integer
RGBA, R,G,B,A for float, Gray,Alpha for GRAYA), document-sized at first and grown by writes
outside it, as Krita's paint devices hold pixels outside the canvas. Real Krita runs the
integration tests (tests/test_krita.py); these only let the plugin be imported and exercised.

KIREI_QT=6 builds them on PyQt6, as Krita 6 is (unset or 5: PyQt5, as Krita 5 is).
"""
import enum
import os
from typing import Dict, List, Optional

QT = os.environ.get("KIREI_QT", "5")
if QT == "6":
    from PyQt6.QtCore import QObject, QRect, pyqtSignal
    from PyQt6.QtGui import QAction
    from PyQt6.QtWidgets import QDockWidget, QMainWindow
elif QT == "5":
    from PyQt5.QtCore import QObject, QRect, pyqtSignal
    from PyQt5.QtWidgets import QAction, QDockWidget, QMainWindow
else:
    raise ImportError("KIREI_QT must be 5 or 6, not %r" % QT)

_CHANNEL_BYTES = {"U8": 1, "U16": 2, "F16": 2, "F32": 4}
_CHANNELS = {"RGBA": 4, "GRAYA": 2, "CMYKA": 5, "LABA": 4, "XYZA": 4, "YCbCrA": 4}


def _pixel_bytes(model: str, depth: str) -> int:
    return _CHANNELS[model] * _CHANNEL_BYTES[depth]


class InfoObject(QObject):
    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._props: Dict[str, object] = {}

    def setProperty(self, key: str, value: object) -> None:  # noqa: N802 (Krita's names)
        self._props[key] = value

    def property(self, key: str) -> object:
        return self._props.get(key)


class Selection(QObject):
    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._mask: Dict[tuple, int] = {}

    def select(self, x: int, y: int, w: int, h: int, value: int) -> None:
        for yy in range(y, y + h):
            for xx in range(x, x + w):
                if value:
                    self._mask[(xx, yy)] = value
                else:
                    self._mask.pop((xx, yy), None)

    def clear(self) -> None:
        self._mask.clear()

    def _bounds(self):
        if not self._mask:
            return 0, 0, 0, 0
        xs = [p[0] for p in self._mask]
        ys = [p[1] for p in self._mask]
        return min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1

    def x(self) -> int:
        return self._bounds()[0]

    def y(self) -> int:
        return self._bounds()[1]

    def width(self) -> int:
        return self._bounds()[2]

    def height(self) -> int:
        return self._bounds()[3]

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:  # noqa: N802
        return bytes(self._mask.get((xx, yy), 0) for yy in range(y, y + h) for xx in range(x, x + w))

    def duplicate(self) -> "Selection":
        s = Selection()
        s._mask = dict(self._mask)
        return s


class Node(QObject):
    def __init__(self, doc: "Document", name: str, kind: str, model: str, depth: str) -> None:
        super().__init__()
        self._doc, self._name, self._type = doc, name, kind
        self._model, self._depth, self._profile = model, depth, "sRGB-elle-V2-srgbtrc.icc"
        self._parent: Optional[Node] = None
        self._children: List[Node] = []
        self._visible = True
        self._w, self._h = doc.width(), doc.height()  # the buffer's extent, from (0, 0)
        self._data = bytearray(self._w * self._h * _pixel_bytes(model, depth))

    def name(self) -> str:
        return self._name

    def setName(self, name: str) -> None:  # noqa: N802
        self._name = name

    def type(self) -> str:
        return self._type

    def colorModel(self) -> str:  # noqa: N802
        return self._model

    def colorDepth(self) -> str:  # noqa: N802
        return self._depth

    def colorProfile(self) -> str:  # noqa: N802
        return self._profile

    def setColorSpace(self, model: str, depth: str, profile: str) -> bool:  # noqa: N802
        self._model, self._depth, self._profile = model, depth, profile
        self._data = bytearray(self._w * self._h * _pixel_bytes(model, depth))
        return True

    def visible(self) -> bool:
        return self._visible

    def setVisible(self, visible: bool) -> None:  # noqa: N802
        self._visible = visible

    def parentNode(self) -> Optional["Node"]:  # noqa: N802
        return self._parent

    def childNodes(self) -> List["Node"]:  # noqa: N802
        return list(self._children)

    def addChildNode(self, child: "Node", above: Optional["Node"]) -> bool:  # noqa: N802
        if child._parent is not None:
            child._parent._children.remove(child)
        i = self._children.index(above) + 1 if above in self._children else len(self._children)
        self._children.insert(i, child)
        child._parent = self
        return True

    def remove(self) -> bool:
        if self._parent is None:
            return False
        self._parent._children.remove(self)
        self._parent = None
        return True

    def duplicate(self) -> "Node":
        n = Node(self._doc, self._name, self._type, self._model, self._depth)
        n._w, n._h, n._data = self._w, self._h, bytearray(self._data)
        return n

    def _bpp(self) -> int:
        return _pixel_bytes(self._model, self._depth)

    def bounds(self) -> QRect:
        """The exact bounds of what is painted (pixels that aren't all zero), like libkis."""
        w, h, bpp = self._w, self._h, self._bpp()
        xs, ys = [], []
        for y in range(h):
            row = self._data[y * w * bpp:(y + 1) * w * bpp]
            for x in range(w):
                if any(row[x * bpp:(x + 1) * bpp]):
                    xs.append(x)
                    ys.append(y)
        if not xs:
            return QRect()
        return QRect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:  # noqa: N802
        dw, dh, bpp = self._w, self._h, self._bpp()
        out = bytearray(w * h * bpp)
        for yy in range(max(y, 0), min(y + h, dh)):
            x0, x1 = max(x, 0), min(x + w, dw)
            if x1 > x0:
                src = self._data[(yy * dw + x0) * bpp:(yy * dw + x1) * bpp]
                at = ((yy - y) * w + (x0 - x)) * bpp
                out[at:at + len(src)] = src
        return bytes(out)

    def setPixelData(self, value: bytes, x: int, y: int, w: int, h: int) -> bool:  # noqa: N802
        if self._type != "paintlayer":
            return False
        if len(value) < w * h * self._bpp():
            return False
        self._grow(x + w, y + h)
        dw, dh, bpp = self._w, self._h, self._bpp()
        for yy in range(max(y, 0), min(y + h, dh)):
            x0, x1 = max(x, 0), min(x + w, dw)
            if x1 > x0:
                at = ((yy - y) * w + (x0 - x)) * bpp
                self._data[(yy * dw + x0) * bpp:(yy * dw + x1) * bpp] = value[at:at + (x1 - x0) * bpp]
        return True

    def _grow(self, w: int, h: int) -> None:
        """Extend the buffer to cover (0, 0, w, h) at least."""
        if w <= self._w and h <= self._h:
            return
        nw, nh, bpp = max(w, self._w), max(h, self._h), self._bpp()
        data = bytearray(nw * nh * bpp)
        for y in range(self._h):
            data[y * nw * bpp:(y * nw + self._w) * bpp] = self._data[y * self._w * bpp:(y + 1) * self._w * bpp]
        self._w, self._h, self._data = nw, nh, data

    def _rescale(self, old_w: int, old_h: int, new_w: int, new_h: int) -> None:
        """Nearest-neighbour, standing in for Krita's resampling (any would do for the stubs)."""
        bpp = self._bpp()
        old = self.pixelData(0, 0, old_w, old_h)  # what lies outside the canvas is left out, for simplicity
        self._w, self._h = new_w, new_h
        self._data = bytearray(new_w * new_h * bpp)
        for y in range(new_h):
            sy = y * old_h // new_h
            for x in range(new_w):
                sx = x * old_w // new_w
                self._data[(y * new_w + x) * bpp:(y * new_w + x + 1) * bpp] = old[(sy * old_w + sx) * bpp:
                                                                                  (sy * old_w + sx + 1) * bpp]
        for c in self._children:
            c._rescale(old_w, old_h, new_w, new_h)


class Document(QObject):
    def __init__(self, w: int, h: int, name: str, model: str, depth: str, profile: str, res: float) -> None:
        super().__init__()
        self._w, self._h, self._name = w, h, name
        self._model, self._depth, self._res = model, depth, res
        self._selection: Optional[Selection] = None
        self._root = Node(self, "root", "grouplayer", model, depth)
        self._root.addChildNode(Node(self, "Background", "paintlayer", model, depth), None)
        self._active: Optional[Node] = None
        self._modified = False
        self._file = ""
        self.closed = False

    def fileName(self) -> str:  # noqa: N802
        return self._file

    def setFileName(self, name: str) -> None:  # noqa: N802
        self._file = name

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def colorModel(self) -> str:  # noqa: N802
        return self._model

    def colorDepth(self) -> str:  # noqa: N802
        return self._depth

    def xRes(self) -> float:  # noqa: N802
        return self._res

    def yRes(self) -> float:  # noqa: N802
        return self._res

    def resolution(self) -> int:
        return int(self._res)

    def rootNode(self) -> Node:  # noqa: N802
        return self._root

    def topLevelNodes(self) -> List[Node]:  # noqa: N802
        return self._root.childNodes()

    def nodeByName(self, name: str) -> Optional[Node]:  # noqa: N802
        stack = [self._root]
        while stack:
            n = stack.pop()
            if n.name() == name:
                return n
            stack.extend(n.childNodes())
        return None

    def createNode(self, name: str, kind: str) -> Node:  # noqa: N802
        return Node(self, name, kind, self._model, self._depth)

    def createGroupLayer(self, name: str) -> Node:  # noqa: N802
        return Node(self, name, "grouplayer", self._model, self._depth)

    def createVectorLayer(self, name: str) -> Node:  # noqa: N802
        return Node(self, name, "vectorlayer", self._model, self._depth)

    def activeNode(self) -> Optional[Node]:  # noqa: N802
        return self._active

    def setActiveNode(self, node: Node) -> None:  # noqa: N802
        self._active = node

    def selection(self) -> Optional[Selection]:
        return self._selection.duplicate() if self._selection and self._selection.width() else None

    def setSelection(self, sel: Selection) -> None:  # noqa: N802
        self._selection = sel.duplicate()

    def scaleImage(self, w: int, h: int, xres: int, yres: int, strategy: str) -> bool:  # noqa: N802
        self._root._rescale(self._w, self._h, w, h)
        if self._selection is not None:  # nearest-neighbour too
            old = self._selection._mask
            self._selection._mask = {(x, y): old[(x * self._w // w, y * self._h // h)]
                                     for y in range(h) for x in range(w) if (x * self._w // w, y * self._h // h) in old}
        self._w, self._h = w, h
        self._modified = True
        return True

    def resizeImage(self, x: int, y: int, w: int, h: int) -> bool:  # noqa: N802
        """The canvas becomes (x, y, w, h); the stubs only take x = y = 0 (layers keep their pixels)."""
        assert (x, y) == (0, 0), "the stubs resize from the top-left corner only"
        self._w, self._h = w, h
        self._modified = True
        return True

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:  # noqa: N802
        """The projection; the stubs show the bottom layer (enough for tests of reading pictures)."""
        return self._root.childNodes()[0].pixelData(x, y, w, h)

    def refreshProjection(self) -> None:  # noqa: N802
        self._modified = True

    def waitForDone(self) -> None:  # noqa: N802
        pass

    def setBatchmode(self, value: bool) -> None:  # noqa: N802
        pass

    def modified(self) -> bool:
        return self._modified

    def setModified(self, value: bool) -> None:  # noqa: N802
        self._modified = value

    def close(self) -> bool:
        self.closed = True
        Krita.instance()._documents.remove(self)
        return True


class DockWidgetFactoryBase:
    class DockPosition(enum.IntEnum):
        DockTornOff, DockTop, DockBottom, DockRight, DockLeft, DockMinimized = range(6)


if QT == "5":  # PyQt5's enums are class attributes too; PyQt6's only the scoped ones
    for _p in DockWidgetFactoryBase.DockPosition:
        setattr(DockWidgetFactoryBase, _p.name, _p)


class DockWidget(QDockWidget):
    def canvasChanged(self, canvas: object) -> None:  # noqa: N802
        raise NotImplementedError


class DockWidgetFactory:
    def __init__(self, id: str, position: DockWidgetFactoryBase.DockPosition, cls: type) -> None:  # noqa: A002
        if QT == "6" and not isinstance(position, DockWidgetFactoryBase.DockPosition):
            raise TypeError("DockWidgetFactory(): argument 2 has unexpected type '%s'" % type(position).__name__)
        self.id, self.position, self.cls = id, position, cls


class Extension(QObject):
    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)

    def setup(self) -> None:
        raise NotImplementedError

    def createActions(self, window: "Window") -> None:  # noqa: N802
        raise NotImplementedError


class Window(QObject):
    def __init__(self) -> None:
        super().__init__()
        self._qwindow = QMainWindow()

    def qwindow(self) -> QMainWindow:
        return self._qwindow

    def createAction(self, id: str, text: str = "", menuLocation: str = "tools/scripts") -> QAction:  # noqa
        a = QAction(text, self._qwindow)
        a.setObjectName(id)
        Krita.instance()._actions[id] = a
        return a


class Notifier(QObject):
    windowCreated = pyqtSignal()


class Krita(QObject):
    _instance: Optional["Krita"] = None

    def __init__(self) -> None:
        super().__init__()
        self._documents: List[Document] = []
        self._active: Optional[Document] = None
        self._settings: Dict[tuple, str] = {}
        self._extensions: List[Extension] = []
        self._factories: List[DockWidgetFactory] = []
        self._actions: Dict[str, QAction] = {}
        self._notifier = Notifier()
        self.app_data = ""

    @classmethod
    def instance(cls) -> "Krita":
        if cls._instance is None:
            cls._instance = Krita()
        return cls._instance

    def version(self) -> str:
        return "6.0.0 (stub)" if QT == "6" else "5.2.0 (stub)"

    def createDocument(self, w: int, h: int, name: str, model: str, depth: str, profile: str,  # noqa: N802
                       res: float) -> Document:
        d = Document(w, h, name, model, depth, profile, res)
        self._documents.append(d)
        return d

    def documents(self) -> List[Document]:
        return list(self._documents)

    def activeDocument(self) -> Optional[Document]:  # noqa: N802
        return self._active

    def setActiveDocument(self, doc: Optional[Document]) -> None:  # noqa: N802
        self._active = doc

    def readSetting(self, group: str, name: str, default: str) -> str:  # noqa: N802
        return self._settings.get((group, name), default)

    def writeSetting(self, group: str, name: str, value: str) -> None:  # noqa: N802
        self._settings[(group, name)] = value

    def addExtension(self, ext: Extension) -> None:  # noqa: N802
        self._extensions.append(ext)

    def extensions(self) -> List[Extension]:
        return list(self._extensions)

    def addDockWidgetFactory(self, factory: DockWidgetFactory) -> None:  # noqa: N802
        self._factories.append(factory)

    def action(self, name: str) -> Optional[QAction]:
        return self._actions.get(name)

    def notifier(self) -> Notifier:
        return self._notifier

    def getAppDataLocation(self) -> str:  # noqa: N802
        return self.app_data

    def setBatchmode(self, value: bool) -> None:  # noqa: N802
        pass

    def activeWindow(self) -> Optional[Window]:  # noqa: N802
        return None
