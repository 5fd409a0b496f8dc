"""Random synthetic watermarks for training: text and logo stamps as (alpha, colour) profiles.

Studios' stamps vary in wording, font, size, angle, opacity, colour, outline and placement;
the model has to have seen that variety to remove one it has never met (blind mode). Each
stamp is drawn at 4x and reduced with a box filter, so its edges are soft like a real one.
"""
import glob
import math
import os

import numpy as np
import scipy.ndimage as ndi
from PIL import Image, ImageDraw, ImageFont

WORDS = ("SAMPLE", "SAMPLE", "SAMPLE", "PREVIEW", "DRAFT", "COPYRIGHT", "NOT FOR SALE", "WATERMARK",
         "見本", "サンプル", "© STUDIO", "DEMO", "PROOF", "sample", "Sample Image")
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts"),
             os.path.expanduser("~/Library/Fonts"), "/Library/Fonts", "C:\\Windows\\Fonts")
SUPERSAMPLE = 4

_fonts = None


def font_files():
    """TrueType/OpenType fonts on this machine (none is fine: Pillow's own font is used then)."""
    global _fonts
    if _fonts is None:
        found = []
        for d in FONT_DIRS:
            for ext in ("ttf", "otf", "TTF", "OTF"):
                found += glob.glob(os.path.join(d, "**", "*." + ext), recursive=True)
        _fonts = sorted(set(found))
    return _fonts


def _font(rng, size):
    files = font_files()
    if files and rng.random() < 0.85:
        try:
            return ImageFont.truetype(files[int(rng.integers(len(files)))], size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


def _text_layer(rng, canvas, text, size, outline):
    """Masks (fill, fill+outline) of one line of text, rotated, at a random place on the canvas."""
    font = _font(rng, size)
    box = font.getbbox(text, stroke_width=outline)
    tw, th = box[2] - box[0] + 2 * outline + 2, box[3] - box[1] + 2 * outline + 2
    full = Image.new("L", (tw, th), 0)
    inner = Image.new("L", (tw, th), 0)
    origin = (outline + 1 - box[0], outline + 1 - box[1])
    ImageDraw.Draw(full).text(origin, text, font=font, fill=255, stroke_width=outline, stroke_fill=255)
    ImageDraw.Draw(inner).text(origin, text, font=font, fill=255)
    angle = rng.choice([0.0, rng.uniform(-50, 50), rng.uniform(-90, 90)])
    cx = canvas[0] * rng.uniform(0.2, 0.8)
    cy = canvas[1] * rng.uniform(0.2, 0.8)
    out = []
    for m in (inner, full):
        m = m.rotate(angle, resample=Image.BICUBIC, expand=True)
        c = Image.new("L", canvas, 0)
        c.paste(m, (int(cx - m.width / 2), int(cy - m.height / 2)))
        out.append(c)
    return out


def _logo_layer(rng, canvas, size, outline):
    """A simple logo: a ring, star, rounded box or circled letter, filled or hollow."""
    inner = Image.new("L", canvas, 0)
    full = Image.new("L", canvas, 0)
    cx, cy = canvas[0] * rng.uniform(0.15, 0.85), canvas[1] * rng.uniform(0.15, 0.85)
    r = size * rng.uniform(0.5, 1.2)
    kind = rng.integers(4)
    for draw, grow in ((ImageDraw.Draw(full), outline), (ImageDraw.Draw(inner), 0)):
        rr = r + grow
        if kind == 0:
            draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], outline=255, width=int(r * 0.25) + 2 * grow)
        elif kind == 1:
            pts = [(cx + (rr if i % 2 == 0 else rr * 0.45) * math.cos(math.pi * i / 5 - math.pi / 2),
                    cy + (rr if i % 2 == 0 else rr * 0.45) * math.sin(math.pi * i / 5 - math.pi / 2))
                   for i in range(10)]
            draw.polygon(pts, fill=255)
        elif kind == 2:
            draw.rounded_rectangle([cx - rr * 1.6, cy - rr * 0.7, cx + rr * 1.6, cy + rr * 0.7], radius=rr * 0.3,
                                   outline=255, width=int(r * 0.15) + 2 * grow)
        else:
            draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=255)
    if kind == 3:  # a letter cut out of the disc
        letter = Image.new("L", canvas, 0)
        font = _font(rng, int(r * 1.3))
        ImageDraw.Draw(letter).text((cx, cy), chr(int(rng.integers(65, 91))), font=font, fill=255, anchor="mm")
        cut = np.asarray(letter)
        inner = Image.fromarray(np.where(cut > 0, 0, np.asarray(inner)).astype(np.uint8))
    return inner, full


def _reduce(mask, size):
    return np.asarray(mask.resize(size, Image.BOX), np.float32) / 255.0


def random_watermark(width, height, rng):
    """(alpha H x W, colour H x W x 3) float32 of a random stamp covering a picture of this size.

    Opacity of the fill 0.2-0.8, an outline (darker or lighter) most of the time, one to a few
    text lines or logos, tiled repeats sometimes.
    """
    s = SUPERSAMPLE
    canvas = (width * s, height * s)
    fill_a = rng.uniform(0.2, 0.8)
    fill_c = np.array(rng.choice([[1, 1, 1], [0.75, 0.75, 0.75], [0, 0, 0], [0.3, 0.3, 0.3],
                                  list(rng.uniform(0, 1, 3))]), np.float32)
    has_outline = rng.random() < 0.7
    out_a = rng.uniform(0.15, 0.6) if has_outline else 0.0
    out_c = np.array(rng.choice([[0.1, 0.1, 0.1], [0.2, 0.2, 0.2], [1, 1, 1], list(rng.uniform(0, 1, 3))]),
                     np.float32)
    outline = int(rng.integers(1, 4) * s) if has_outline else 0
    size = int(min(width, height) * rng.uniform(0.08, 0.3) * s)
    inner_acc = np.zeros((height, width), np.float32)
    full_acc = np.zeros((height, width), np.float32)
    n = int(rng.choice([1, 1, 1, 2, 3, 6]))
    for _ in range(n):
        if rng.random() < 0.8:
            text = str(rng.choice(WORDS))
            inner, full = _text_layer(rng, canvas, text, max(size // max(1, n // 3), 8 * s), outline)
        else:
            inner, full = _logo_layer(rng, canvas, size // 2, outline)
        inner_acc = np.maximum(inner_acc, _reduce(inner, (width, height)))
        full_acc = np.maximum(full_acc, _reduce(full, (width, height)))
    ring = np.clip(full_acc - inner_acc, 0, 1)
    w_fill, w_ring = inner_acc * fill_a, ring * out_a
    alpha = w_fill + w_ring
    colour = (w_fill[..., None] * fill_c + w_ring[..., None] * out_c) / np.maximum(alpha, 1e-6)[..., None]
    colour[alpha <= 1e-6] = fill_c
    return alpha.astype(np.float32), np.clip(colour, 0, 1).astype(np.float32)


def measured_profile(alpha, colour, rng, clutter):
    """A profile as `estimate` measures it from a real set of pictures (the errors the front-end
    learns to repair): opacity a few per cent off overall; its edges spread over a pixel or so;
    the pictures' own edges leaking into it where few pictures differ (`clutter`: another
    picture's brightness, H x W); a slow drift; colour off, most where opacity is low. How much of
    each varies from sample to sample, from none to about twice what the evaluation set shows
    (opacity RMSE 0.03 inside the letters, 0.05 along their edges).
    """
    hard = rng.uniform(0.0, 1.0)
    a = alpha
    if rng.random() < 0.5:
        a = ndi.gaussian_filter(a, rng.uniform(0.3, 1.0))
    a = a * rng.uniform(0.93, 1.07)
    near = ndi.maximum_filter(alpha > 0.02, 7).astype(np.float32)
    edges = clutter - ndi.gaussian_filter(clutter, 1.5)
    a = a + hard * rng.uniform(0.0, 0.06) * near * edges / (edges.std() + 1e-6)
    drift = ndi.gaussian_filter(rng.normal(0.0, 1.0, alpha.shape), 6.0)
    a = a + hard * rng.uniform(0.0, 0.03) * near * drift / (drift.std() + 1e-6)
    a = a + rng.normal(0.0, 0.006, alpha.shape) * (alpha > 0)
    off = ndi.gaussian_filter(rng.normal(0.0, 1.0, colour.shape), (6.0, 6.0, 0))
    c = (colour + rng.normal(0.0, 0.02, 3) + hard * rng.uniform(0.0, 0.06) * off / (off.std() + 1e-6)
         * (1.0 - np.clip(alpha, 0, 1))[..., None])
    return np.clip(a, 0, 1).astype(np.float32), np.clip(c, 0, 1).astype(np.float32)


PICTURE_WORDS = ("SAMPLE", "Hello!", "ね、聞いて", "…!?", "BANG", "Chapter 1", "© 2026", "sign", "OK", "見本",
                 "START", "Menu", "LOAD", "ドキドキ")


def picture_marks(rgb_u8, rng):
    """The picture with marks that belong to it drawn in, opaque: speech balloons with text,
    captions, signatures, UI frames and buttons. The finder must leave these alone (even the word
    SAMPLE, when the picture itself says it)."""
    im = Image.fromarray(rgb_u8)
    w, h = im.size
    s = SUPERSAMPLE
    big = im.resize((w * s, h * s), Image.BICUBIC)
    draw = ImageDraw.Draw(big)
    ink = lambda: tuple(int(v) for v in (rng.integers(0, 60, 3) if rng.random() < 0.6 else rng.integers(0, 256, 3)))
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(4)
        size = int(min(w, h) * rng.uniform(0.06, 0.2) * s)
        x, y = rng.uniform(0.05, 0.7) * w * s, rng.uniform(0.05, 0.8) * h * s
        text = str(rng.choice(PICTURE_WORDS))
        font = _font(rng, max(size // 2, 6 * s))
        if kind == 0:  # a speech balloon
            box = font.getbbox(text)
            pad = size // 3
            draw.ellipse([x - pad, y - pad, x + box[2] + pad, y + box[3] + pad], fill=(255, 255, 255),
                         outline=(0, 0, 0), width=max(s, size // 12))
            draw.text((x, y), text, font=font, fill=ink())
        elif kind == 1:  # a caption or signature, maybe outlined
            draw.text((x, y), text, font=font, fill=ink(), stroke_width=int(rng.integers(0, 3)) * s,
                      stroke_fill=ink())
        elif kind == 2:  # a UI frame or button
            x1, y1 = x + rng.uniform(0.2, 0.6) * w * s, y + rng.uniform(0.08, 0.3) * h * s
            draw.rounded_rectangle([x, y, x1, y1], radius=size // 4, fill=ink() if rng.random() < 0.5 else None,
                                   outline=ink(), width=max(s, size // 8))
            draw.text((x + size // 3, y + size // 4), text, font=font, fill=ink())
        else:  # line art: a few strokes
            pts = [(x + rng.uniform(-1, 1) * size * 3, y + rng.uniform(-1, 1) * size * 3) for _ in range(4)]
            draw.line(pts, fill=ink(), width=max(s, int(size * rng.uniform(0.03, 0.15))), joint="curve")
    return np.asarray(big.resize((w, h), Image.BOX))
