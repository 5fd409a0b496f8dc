"""Hard sets for watermark estimation, made from the project's own pictures (core/synth.py).

Real preview sets are not independent pictures: the same character sprite recurs in the same
place with different faces, backgrounds are shared, a logo or frame sits in the same corner of
every picture, and some pictures carry no stamp. Each set here is one of those situations;
`STAMPS` are the stamps put on them. Used by the estimation tests and benchmarks/estimation.py.
"""
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from core import synth
from core.blend import stamp

SIZE = (233, 330)  # (width, height) of a studio's small preview, as the public scorer uses
COUNT = 12
KINDS = ("sprite", "shared-background", "frame", "some-unstamped", "visual-novel")


@dataclass
class HardSet:
    kind: str
    truth: list  # the clean pictures at twice the size, H x W x 3 float32 in [0, 1]
    clean: list  # the same at the set's size (PIL bicubic, as previews are made)
    stamped: list  # the same, stamped where carries[k] (8-bit values, as a saved preview)
    carries: np.ndarray  # bool per picture: the stamp is on it
    alpha: np.ndarray  # the true stamp
    color: np.ndarray


def stamps(width=SIZE[0], height=SIZE[1]):
    """Three stamps of the kinds studios use: white with a dark outline, flat grey, white without outline."""
    return {
        "white-outline": synth.text_watermark(width, height, "SAMPLE", opacity=0.45, angle=30.0),
        "grey-flat": synth.text_watermark(width, height, "PREVIEW", opacity=0.35, angle=-20.0,
                                          fill=(128, 128, 128), outline_opacity=0.0, outline_width=1),
        "white-bold": synth.text_watermark(width, height, "見本", opacity=0.6, angle=0.0, fill=(250, 250, 250),
                                           outline=(90, 90, 90), outline_opacity=0.3, outline_width=3),
    }


def _rgb(im):
    return np.asarray(im.convert("RGB"), np.float32) / 255.0


def _sprite(width, height, seed, face):
    """An opaque character bust on a transparent layer: the body from `seed`, the face from `face`."""
    s = 2
    layer = Image.new("RGBA", (width * s, height * s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    synth._character(draw, np.random.default_rng(seed), width * s, height * s, s)
    # another expression: eyes and mouth redrawn over the same face
    rng = np.random.default_rng(1000 + face)
    box = layer.getbbox()
    cx, cy = (box[0] + box[2]) / 2, box[1] + (box[3] - box[1]) * 0.42
    r = (box[2] - box[0]) * 0.09
    iris = tuple(int(v) for v in rng.integers(20, 220, 3)) + (255,)
    for side in (-1, 1):
        ex = cx + side * 1.9 * r
        if face % 2:
            draw.arc([ex - r, cy - r, ex + r, cy + r], 200, 340, fill=(30, 20, 20, 255), width=3 * s)
        else:
            draw.ellipse([ex - 0.7 * r, cy - r, ex + 0.7 * r, cy + r], fill=iris)
    draw.arc([cx - r, cy + 1.2 * r, cx + r, cy + 2.4 * r], 20, 160, fill=(120, 30, 40, 255), width=2 * s)
    return layer.resize((width, height), Image.LANCZOS)


def _background(width, height, seed):
    return synth.anime_picture(width, height, seed).convert("RGBA")


def _frame(width, height):
    """A studio's frame and corner logo, opaque, the same on every picture."""
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    draw.rectangle([0, 0, width - 1, height - 1], outline=(40, 30, 60, 255), width=5)
    draw.rounded_rectangle([width - 78, height - 34, width - 10, height - 10], 6, fill=(240, 200, 60, 255),
                           outline=(60, 40, 10, 255), width=2)
    draw.text((width - 70, height - 30), "STUDIO", fill=(60, 40, 10, 255), font=synth._font(14))
    return layer


def _compose(kind, width, height, seed):
    """The clean pictures of a set, and which of them carry the stamp."""
    rng = np.random.default_rng(seed)
    carries = np.ones(COUNT, bool)
    pics = []
    if kind == "sprite":  # the reported case: one character, same place, 8 of 12; the rest backgrounds
        bodies = [_sprite(width, height, seed + 1, f) for f in range(8)]
        for k in range(COUNT):
            bg = _background(width, height, seed * 100 + k)
            pics.append(Image.alpha_composite(bg, bodies[k]) if k < 8 else bg)
    elif kind == "shared-background":  # one background, a different character each time, here or there
        bg = _background(width, height, seed * 100)
        for k in range(COUNT):
            sprite = _sprite(width, height, seed * 100 + k + 1, k)
            moved = Image.new("RGBA", (width, height), (0, 0, 0, 0))
            moved.paste(sprite, (int(rng.integers(-width // 4, width // 4)), int(rng.integers(0, height // 6))))
            pics.append(Image.alpha_composite(bg, moved))
    elif kind == "frame":
        frame = _frame(width, height)
        pics = [Image.alpha_composite(_background(width, height, seed * 100 + k), frame) for k in range(COUNT)]
    elif kind == "some-unstamped":
        pics = [_background(width, height, seed * 100 + k) for k in range(COUNT)]
        carries[rng.choice(COUNT, 3, replace=False)] = False
    elif kind == "visual-novel":  # two bodies with changing faces over three shared rooms, and two CGs
        rooms = [_background(width, height, seed * 100 + r) for r in range(3)]
        for k in range(COUNT - 2):
            sprite = _sprite(width, height, seed + 1 + k % 2, k)
            pics.append(Image.alpha_composite(rooms[k % 3], sprite))
        pics += [_background(width, height, seed * 100 + 50 + k) for k in range(2)]
        carries[-1] = False
    else:
        raise ValueError(f"unknown kind of set {kind!r}; kinds: {', '.join(KINDS)}")
    return [_rgb(p) for p in pics], carries


def hard_set(kind, stamp_name="white-outline", seed=0, size=SIZE):
    """One hard set: `kind` of KINDS, stamped with `stamp_name` of `stamps()`. Drawn at twice the
    size (the truth a x2 restore is measured against), then reduced."""
    width, height = size
    alpha, color = stamps(width, height)[stamp_name]
    big, carries = _compose(kind, 2 * width, 2 * height, seed)
    clean = [_rgb(Image.fromarray(np.round(b * 255).astype(np.uint8)).resize(size, Image.BICUBIC)) for b in big]
    stamped = [np.round(stamp(c, alpha, color) * 255) / 255 if on else c for c, on in zip(clean, carries)]
    return HardSet(kind, big, clean, [s.astype(np.float32) for s in stamped], carries, alpha, color)


def as_jpeg(pictures, quality=85):
    """The pictures after a JPEG round trip (what a downloaded preview is)."""
    import io
    out = []
    for p in pictures:
        buf = io.BytesIO()
        Image.fromarray(np.clip(np.round(p * 255), 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
        out.append(_rgb(Image.open(io.BytesIO(buf.getvalue()))))
    return out
