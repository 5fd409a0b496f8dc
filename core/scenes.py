"""Picture sources for training beyond painted pictures: SVGs rendered at random sizes (flat
colours and line art: emoji sets, avatar styles) and composed scenes, a sprite over a
background, as visual novels show their characters.

SVGs are rendered with resvg-py, a training-only extra, imported only when SVGs are used.
Rendering is the slow part (20-70 ms a file), so renders live in a pool that is refreshed
slowly, like PairMaker's procedural pictures; a scene is composed per crop (cheap).
"""
import io
import math
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import binary_erosion

from .errors import KireiError

INSTALL_HINT = "python3 -c \"from install import ensure_core_env; ensure_core_env(extras=('train',))\""
SVG_SIDES = (128, 768)  # rendered sizes (log-uniform): the same drawing at many line widths
EDGE_POINTS = 256  # outline points kept per sprite: where a scene puts the sprite's edge


def resvg():
    """The resvg_py module, or a clear error saying how to install it."""
    try:
        import resvg_py
    except ImportError:
        raise KireiError(f"SVG training data needs the resvg-py package; install it with {INSTALL_HINT} "
                         f"(or train without SVGs: --svg none)") from None
    return resvg_py


def svg_files(folder):
    """The .svg files under folder (sorted; the LICENSES folder and hidden files left out)."""
    if not os.path.isdir(folder):
        raise KireiError(f"SVG folder {folder} does not exist")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "LICENSES" and not d.startswith("."))
        found += [os.path.join(root, f) for f in files if f.lower().endswith(".svg") and not f.startswith(".")]
    if not found:
        raise KireiError(f"no .svg files in {folder}")
    return sorted(found)


def render_svg(path, width):
    """An RGBA uint8 array of the SVG rendered `width` pixels wide (height by its aspect),
    transparent where the drawing has no background."""
    try:
        # system fonts skipped: faster, and a render must not depend on the machine's fonts
        png = resvg().svg_to_bytes(svg_path=path, width=int(width), skip_system_fonts=True)
    except ValueError as e:
        raise KireiError(f"can't render {path}: {e}") from None
    with Image.open(io.BytesIO(bytes(png))) as im:
        return np.asarray(im.convert("RGBA"))


def on_white(rgba):
    """RGB uint8: an RGBA array composited on white (as art with transparency is shown)."""
    a = rgba[..., 3:].astype(np.float32) / 255.0
    return np.round(rgba[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)


def over(background, rgba, y, x):
    """A copy of the RGB background with the RGBA sprite's top-left corner put at (y, x)
    (either may be negative or beyond the edge: only the overlap is drawn)."""
    out = background.copy()
    h, w = background.shape[:2]
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + rgba.shape[0], h), min(x + rgba.shape[1], w)
    if y0 >= y1 or x0 >= x1:
        return out
    s = rgba[y0 - y:y1 - y, x0 - x:x1 - x]
    a = s[..., 3:].astype(np.float32) / 255.0
    out[y0:y1, x0:x1] = np.round(s[..., :3] * a + out[y0:y1, x0:x1] * (1 - a)).astype(np.uint8)
    return out


@dataclass
class Sprite:
    rgba: np.ndarray  # H x W x 4 uint8
    edges: np.ndarray  # K x 2 (y, x) points on its outline; none when it is opaque everywhere

    @classmethod
    def of(cls, rgba):
        m = rgba[..., 3] >= 128
        # border_value=1: the picture's own border is no outline (an opaque render has none)
        ys, xs = np.nonzero(m & ~binary_erosion(m, border_value=1))
        step = max(1, len(ys) // EDGE_POINTS)
        return cls(rgba, np.stack([ys[::step], xs[::step]], 1))


def scene_crop(background, sprite, scale, rng):
    """The square RGB background crop with the sprite drawn over it at `scale` (output pixels per
    sprite pixel), placed so that a random point of its outline lands at a random spot: the
    crop holds the sprite's edge over the background, where lines meet painted texture."""
    side = background.shape[0]
    ey, ex = sprite.edges[int(rng.integers(len(sprite.edges)))]
    ty, tx = rng.integers(side, size=2)
    r = max(1, int(round(side / scale)))  # the sprite's region that covers the crop, in its pixels
    y0, x0 = int(round(ey - ty / scale)), int(round(ex - tx / scale))
    region = Image.fromarray(sprite.rgba).crop((x0, y0, x0 + r, y0 + r))  # transparent outside
    if r != side:
        # Pillow resizes RGBA premultiplied; reducing_gap: a fast box step first for large reductions
        region = region.resize((side, side), Image.LANCZOS, reducing_gap=3.0)
    return over(background, np.asarray(region), 0, 0)


def log_uniform(rng, lo, hi):
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


class SvgPool:
    """Renders of random SVGs at random sizes, with their transparency; one is replaced at each
    refresh()."""

    def __init__(self, files, rng, size=32, min_side=128):
        if not files:
            raise KireiError("no SVG files to render")
        resvg()  # fail before anything is rendered, with the install hint
        self.files, self.rng = list(files), rng
        lo = max(SVG_SIDES[0], min_side)  # never smaller than a crop: the truth stays sharp
        self.sides = (lo, max(SVG_SIDES[1], 2 * lo))
        self.items = [self._render() for _ in range(size)]

    def _render(self):
        path = self.files[int(self.rng.integers(len(self.files)))]
        return Sprite.of(render_svg(path, round(log_uniform(self.rng, *self.sides))))

    def refresh(self):
        self.items[int(self.rng.integers(len(self.items)))] = self._render()

    def pick(self, sprites_only=False):
        """A random render; with sprites_only, one with a transparent background (None if none)."""
        items = [s for s in self.items if len(s.edges)] if sprites_only else self.items
        return items[int(self.rng.integers(len(items)))] if items else None
