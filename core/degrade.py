"""Training pairs in the scene's order: clean high-resolution crop -> downscale (random filter)
-> stamp a watermark at low resolution -> sometimes JPEG.

Sources (SOURCE_SHARES): real painted pictures (../shared/data/train, a user's --images folder),
anime-style pictures with transparency (../shared/data/train_anime, shown on white), SVGs
rendered at random sizes (../shared/data/train_svg), composed scenes (a sprite over a
background, core/scenes.py) and the project's own procedural anime pictures (core/synth.py);
sources that aren't there leave their share to the others. Every sample comes in one of three modes, as
users run the model: with a known profile (as `estimate` measures it, errors and all, or exact), blind (the
network finds the stamp itself; sometimes there is none), or upscale-only (no watermark).
"""
import csv
import io
import os
from collections import Counter
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .defaults import JPEG_420_SHARE, JPEG_QUALITIES
from .scenes import Sprite, SvgPool, log_uniform, on_white, scene_crop
from .synth import anime_picture
from .watermarks import measured_profile, random_watermark

# the scorer's and most studios' previews are bicubic reductions: that filter comes most often
DOWNSCALE_FILTERS = ((Image.BICUBIC, 0.5), (Image.LANCZOS, 0.15), (Image.BOX, 0.15),
                     (Image.BILINEAR, 0.1), (Image.HAMMING, 0.1))
MODES = ("profile", "blind", "none")
MODE_WEIGHTS = (0.45, 0.4, 0.15)
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# shares of the crops; the order is the order of the draw (synthetic first: a maker with only
# pictures and procedural ones draws exactly as it did before the other sources came)
SOURCE_SHARES = {"synth": 0.15, "pictures": 0.35, "anime": 0.15, "svg": 0.20, "scene": 0.15}
SCENE_PICTURE_BACKGROUND = 0.75  # else a procedural one (gradients, flat shapes)
SCENE_ANIME_SPRITE = 0.3  # else an SVG render


def load_rgba(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def load_rgb(path):
    """An RGB uint8 array of a picture, transparency composited on white (as art is shown)."""
    return on_white(load_rgba(path))


def picture_files(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(PICTURE_EXTENSIONS) and not f.startswith("."))


def split_holdout(files, every=12):
    """(training files, held-out validation files): every `every`-th picture is held out."""
    return [f for i, f in enumerate(files) if i % every != every // 2], files[every // 2::every]


def provenance(folder, paths):
    """{"licences": {licence: n}, "sets": {set: n}} of the files, from folder/MANIFEST.csv (a row
    per file: set,file,...,license,...); files it doesn't list count as "unknown"."""
    rows = {}
    if os.path.exists(os.path.join(folder, "MANIFEST.csv")):
        with open(os.path.join(folder, "MANIFEST.csv"), newline="", encoding="utf-8") as fh:
            rows = {os.path.normpath(r["file"]): r for r in csv.DictReader(fh)}
    licences, sets = Counter(), Counter()
    for p in paths:
        r = rows.get(os.path.normpath(os.path.relpath(p, folder)), {})
        licences[r.get("license") or "unknown"] += 1
        sets[r.get("set") or "unknown"] += 1
    return {"licences": dict(licences.most_common()), "sets": dict(sets.most_common())}


def source_shares(available, shares=None, synth_share=None):
    """{source: share} over the available sources (synth always is), summing to 1; synth_share,
    when given, fixes the procedural share and scales the others to the rest."""
    s = dict(SOURCE_SHARES if shares is None else shares)
    s = {k: v for k, v in s.items() if v > 0 and (k == "synth" or k in available)}
    rest = sum(v for k, v in s.items() if k != "synth")
    if synth_share is not None and rest:
        s = {k: synth_share if k == "synth" else v * (1 - synth_share) / rest for k, v in s.items()}
    if not rest:  # procedural pictures alone
        return {"synth": 1.0}
    total = sum(s.values())
    return {k: v / total for k, v in s.items()}


@dataclass
class Sample:
    stamped: np.ndarray  # P x P x 3 float32, the low-resolution input
    profile_alpha: np.ndarray  # P x P, what the model is told (zeros in blind mode)
    profile_colour: np.ndarray  # P x P x 3
    known: float  # 1: the profile is given (or there is none), 0: blind
    truth: np.ndarray  # sP x sP x 3 float32, the clean high-resolution picture
    alpha: np.ndarray  # P x P, the stamp's true opacity
    colour: np.ndarray  # P x P x 3, its true colour
    clean: np.ndarray  # P x P x 3, the low-resolution picture before stamping
    jpeg: bool = False  # the stamped picture went through JPEG


class PairMaker:
    """Makes training samples from a seeded generator; pools of pictures and stamps are refreshed
    slowly so that each one is used for many crops (drawing them is the slow part)."""

    def __init__(self, pictures, rng, scale=2, patch=48, synth_share=None, synth_pool=48,
                 stamp_pool=160, stamp_canvas=192, jpeg_share=0.4, anime=(), svg_files=(), svg_pool=32,
                 shares=None, mode_weights=MODE_WEIGHTS, jpeg_qualities=JPEG_QUALITIES,
                 subsampled_share=JPEG_420_SHARE):
        self.pictures = pictures  # list of H x W x 3 uint8 arrays
        self.rng = rng
        self.scale, self.patch = scale, patch
        self.jpeg_share, self.mode_weights, self.jpeg_qualities = jpeg_share, mode_weights, jpeg_qualities
        self.subsampled_share = subsampled_share
        self.stamp_canvas = stamp_canvas
        self.synth = [self._new_synth() for _ in range(synth_pool)]
        self.stamps = [random_watermark(stamp_canvas, stamp_canvas, rng) for _ in range(stamp_pool)]
        self.anime = [Sprite.of(a) for a in anime]  # H x W x 4 uint8 arrays: pictures and sprites
        self.svg = SvgPool(svg_files, rng, svg_pool, min_side=patch * scale) if len(svg_files) else None
        available = {k for k, there in (("pictures", pictures), ("anime", self.anime), ("svg", self.svg)) if there}
        if self.svg or any(len(s.edges) for s in self.anime):
            available.add("scene")
        self.shares = source_shares(available, shares, synth_share)

    def _new_synth(self):
        return np.asarray(anime_picture(384, 384, seed=int(self.rng.integers(2 ** 31))))

    def refresh(self):
        """Replace one synthetic picture and one stamp (call every few steps)."""
        self.synth[int(self.rng.integers(len(self.synth)))] = self._new_synth()
        c = self.stamp_canvas
        self.stamps[int(self.rng.integers(len(self.stamps)))] = random_watermark(c, c, self.rng)
        if self.svg:
            self.svg.refresh()

    def _source(self):
        u, top = self.rng.random(), 0.0
        for name, share in self.shares.items():
            top += share
            if u < top:
                return name
        return name

    def _crop(self, source, size):
        """A size x size RGB crop of a random picture of the source, at a random zoom (the crop
        covers size / zoom of the picture's pixels, reduced with Lanczos: a sharp truth)."""
        rng = self.rng
        if source == "synth":
            src, zoom = self.synth[int(rng.integers(len(self.synth)))], rng.uniform(0.7, 1.0)
        elif source == "pictures":
            src, zoom = self.pictures[int(rng.integers(len(self.pictures)))], rng.uniform(0.3, 1.0)
        elif source == "anime":  # up to 2048 px: from a close-up of the line art to most of the figure
            src, zoom = self.anime[int(rng.integers(len(self.anime)))].rgba, log_uniform(rng, 0.12, 1.0)
        else:  # svg: rendered at a random size already
            src, zoom = self.svg.pick().rgba, rng.uniform(0.5, 1.0)
        h, w = src.shape[:2]
        side = min(int(round(size / zoom)), h, w)
        # flat art on white is mostly empty: a few tries for a crop that holds some drawing
        for _ in range(1 if source in ("synth", "pictures") else 5):
            y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
            a = src[y:y + side, x:x + side]
            if a.shape[2] == 3 or on_white(a[::4, ::4]).std() > 6:
                break
        crop = Image.fromarray(a)
        if side != size:
            crop = crop.resize((size, size), Image.LANCZOS)  # RGBA: premultiplied, so white can come after
        return on_white(np.asarray(crop)) if a.shape[2] == 4 else np.asarray(crop)

    def _scene(self, size):
        """A background crop with a sprite over it: an anime picture or an SVG render with
        transparency, at a random scale (anime pictures are large: mostly reduced)."""
        rng = self.rng
        use_pictures = self.pictures and rng.random() < SCENE_PICTURE_BACKGROUND
        background = self._crop("pictures" if use_pictures else "synth", size)
        anime = [s for s in self.anime if len(s.edges)]
        sprite = self.svg.pick(sprites_only=True) if self.svg else None
        if anime and (sprite is None or rng.random() < SCENE_ANIME_SPRITE):
            return scene_crop(background, anime[int(rng.integers(len(anime)))], log_uniform(rng, 0.08, 0.6), rng)
        if sprite is None:  # no render in the pool has transparency just now
            return background
        return scene_crop(background, sprite, rng.uniform(0.4, 1.0), rng)

    def _hr_crop(self):
        rng, size = self.rng, self.patch * self.scale
        source = self._source()
        a = self._scene(size) if source == "scene" else self._crop(source, size)
        if rng.random() < 0.5:
            a = a[:, ::-1]
        return np.ascontiguousarray(np.rot90(a, int(rng.integers(4))))

    def _downscale(self, hr):
        filters, weights = zip(*DOWNSCALE_FILTERS)
        f = filters[int(self.rng.choice(len(filters), p=weights))]
        return np.asarray(Image.fromarray(hr).resize((self.patch, self.patch), f))

    def _stamp_crop(self):
        """A patch-sized piece of a random stamp, most often one that holds some of it."""
        p, c = self.patch, self.stamp_canvas
        alpha, colour = self.stamps[int(self.rng.integers(len(self.stamps)))]
        for _ in range(6):
            y, x = int(self.rng.integers(c - p + 1)), int(self.rng.integers(c - p + 1))
            a = alpha[y:y + p, x:x + p]
            if (a > 0.05).mean() > 0.03:
                break
        return a, colour[y:y + p, x:x + p]

    def _jpeg(self, u8):
        buf = io.BytesIO()
        q = int(self.rng.integers(self.jpeg_qualities[0], self.jpeg_qualities[1] + 1))
        Image.fromarray(u8).save(buf, "JPEG", quality=q, subsampling=2 if self.rng.random() < self.subsampled_share else 0)
        return np.asarray(Image.open(buf).convert("RGB"))

    def sample(self, mode=None, measured=None, jpeg=None):
        """One Sample. measured: the profile given is as `estimate` measures it (True), exact
        (False), or either (None: measured 70% of the time)."""
        rng, p = self.rng, self.patch
        mode = mode or MODES[int(rng.choice(len(MODES), p=self.mode_weights))]
        hr = self._hr_crop()
        lr = self._downscale(hr).astype(np.float32) / 255.0  # 8-bit, like every preview
        zero_a, zero_c = np.zeros((p, p), np.float32), np.zeros((p, p, 3), np.float32)
        alpha, colour = zero_a, zero_c
        if mode == "profile" or (mode == "blind" and rng.random() < 0.9):
            alpha, colour = self._stamp_crop()
        stamped = alpha[..., None] * colour + (1 - alpha[..., None]) * lr
        stamped = np.clip(np.round(stamped * 255), 0, 255).astype(np.uint8)
        jpeg = rng.random() < self.jpeg_share if jpeg is None else jpeg
        if jpeg:
            stamped = self._jpeg(stamped)
        if mode == "profile":
            measured = rng.random() < 0.7 if measured is None else measured
            other = self._downscale(self._hr_crop()).astype(np.float32).mean(-1) / 255.0  # its edges leak in
            given = measured_profile(alpha, colour, rng, other) if measured else (alpha, colour)
        else:
            given = (zero_a, zero_c)
        return Sample(stamped.astype(np.float32) / 255.0, given[0], given[1], 0.0 if mode == "blind" else 1.0,
                      hr.astype(np.float32) / 255.0, alpha, colour, lr, jpeg)

    def batch(self, n=None, samples=None):
        """A dict of float32 torch-ready arrays (N x C x H x W) for n new samples (or the given ones)."""
        ss = samples or [self.sample() for _ in range(n)]
        chw = lambda a: np.ascontiguousarray(np.stack(a).transpose(0, 3, 1, 2))
        return {"stamped": chw([s.stamped for s in ss]),
                "profile_alpha": np.stack([s.profile_alpha for s in ss])[:, None],
                "profile_colour": chw([s.profile_colour for s in ss]),
                "known": np.array([s.known for s in ss], np.float32)[:, None, None, None],
                "truth": chw([s.truth for s in ss]),
                "alpha": np.stack([s.alpha for s in ss])[:, None],
                "colour": chw([s.colour for s in ss]),
                "clean": chw([s.clean for s in ss]),
                "jpeg": np.array([s.jpeg for s in ss], bool)}
