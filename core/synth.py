"""Procedural anime-style pictures and synthetic watermarks, made by the project's own code.

Used for the bundled sample, for tests, and (later) as training data: line art with outlines
of varying width, flat colours, cel shading, gradients, hair-like strokes and text. Pictures
are drawn at 2x and downsampled so that edges are anti-aliased like real art.
"""
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

WATERMARK_WORDS = ("SAMPLE", "PREVIEW", "SAMPLE", "DRAFT", "COPYRIGHT", "見本")


def _font(size):
    return ImageFont.load_default(size=size)


def _random_colour(rng, lo=40, hi=255):
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _darker(colour, factor):
    return tuple(int(c * factor) for c in colour)


def _background(rng, w, h):
    """A vertical or diagonal two-colour gradient, or plain paper white."""
    if rng.random() < 0.3:
        return Image.new("RGB", (w, h), (255, 255, 255))
    c0 = np.array(_random_colour(rng, 120), np.float32)
    c1 = np.array(_random_colour(rng, 120), np.float32)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    t = (x * math.cos(angle) + y * math.sin(angle))
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    rgb = c0 * (1 - t[..., None]) + c1 * t[..., None]
    return Image.fromarray(rgb.astype(np.uint8))


def _blob(rng, cx, cy, r, n=9):
    """A closed, irregular polygon around (cx, cy): a body, a face, a cloud."""
    pts = []
    for i in range(n):
        ang = 2 * math.pi * i / n + rng.uniform(-0.2, 0.2)
        rr = r * rng.uniform(0.7, 1.15)
        pts.append((cx + rr * math.cos(ang), cy + rr * math.sin(ang)))
    return pts


def _shape_with_cel_shading(draw, rng, w, h, scale):
    cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
    r = rng.uniform(0.08, 0.35) * min(w, h)
    fill = _random_colour(rng)
    outline = _darker(fill, rng.uniform(0.05, 0.35))
    width = int(rng.integers(1, 5) * scale)
    pts = _blob(rng, cx, cy, r)
    if rng.random() < 0.4:
        draw.ellipse([cx - r, cy - r * 1.2, cx + r, cy + r * 1.2], fill=fill, outline=outline, width=width)
    else:
        draw.polygon(pts, fill=fill, outline=outline, width=width)
    # cel shading: a flat darker crescent inside the shape, no outline
    shade = _darker(fill, rng.uniform(0.6, 0.85))
    dx, dy = rng.uniform(-0.4, 0.4) * r, rng.uniform(0.2, 0.5) * r
    inner = [(x + dx * 0.5, y + dy * 0.5) for x, y in _blob(rng, cx + dx, cy + dy, r * 0.5)]
    draw.polygon(inner, fill=shade)
    # a specular highlight
    if rng.random() < 0.5:
        hr = r * 0.12
        hx, hy = cx - r * 0.35, cy - r * 0.35
        draw.ellipse([hx - hr, hy - hr * 0.6, hx + hr, hy + hr * 0.6], fill=(255, 255, 255))


def _hair_strokes(draw, rng, w, h, scale):
    """Bundles of tapered curved strokes, like anime hair."""
    colour = _random_colour(rng, 20, 200)
    x0, y0 = rng.uniform(0, w), rng.uniform(0, h * 0.6)
    for _ in range(int(rng.integers(4, 12))):
        length = rng.uniform(0.2, 0.6) * h
        bend = rng.uniform(-0.5, 0.5)
        sx = x0 + rng.uniform(-0.1, 0.1) * w
        pts = []
        for i in range(16):
            t = i / 15
            pts.append((sx + bend * length * t * t + rng.uniform(-1, 1), y0 + length * t))
        for i in range(len(pts) - 1):
            width = max(1, int((1 - i / len(pts)) * 4 * scale))
            draw.line([pts[i], pts[i + 1]], fill=colour, width=width)


def _eye(draw, rng, w, h, scale):
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    r = rng.uniform(0.03, 0.07) * min(w, h)
    iris = _random_colour(rng, 20, 220)
    draw.ellipse([cx - r, cy - r * 1.4, cx + r, cy + r * 1.4], fill=(250, 250, 250), outline=(20, 10, 10),
                 width=int(2 * scale))
    draw.ellipse([cx - r * 0.7, cy - r, cx + r * 0.7, cy + r], fill=iris)
    draw.ellipse([cx - r * 0.3, cy - r * 0.45, cx + r * 0.3, cy + r * 0.45], fill=_darker(iris, 0.3))
    draw.ellipse([cx - r * 0.5, cy - r * 0.8, cx - r * 0.1, cy - r * 0.4], fill=(255, 255, 255))
    draw.line([(cx - r * 1.3, cy - r * 1.5), (cx + r * 1.3, cy - r * 1.7)], fill=(20, 10, 10), width=int(3 * scale))


def _character(draw, rng, w, h, scale):
    """An anime-style bust: shoulders, neck, face, big eyes, blush, and hair with bangs."""
    cx = rng.uniform(0.35, 0.65) * w
    r = rng.uniform(0.16, 0.24) * min(w, h)  # face radius
    cy = rng.uniform(0.3, 0.5) * h
    line = (int(rng.integers(20, 60)), int(rng.integers(10, 40)), int(rng.integers(10, 40)))
    lw = max(1, int(rng.integers(1, 3) * scale))
    skin = (255, int(rng.integers(215, 235)), int(rng.integers(195, 215)))
    hair = _random_colour(rng, 30, 230)
    cloth = _random_colour(rng, 40, 230)
    # shoulders and neck
    draw.polygon([(cx - 2.2 * r, h), (cx - 1.6 * r, cy + 1.6 * r), (cx + 1.6 * r, cy + 1.6 * r), (cx + 2.2 * r, h)],
                 fill=cloth, outline=line, width=lw)
    draw.polygon([(cx - 1.6 * r, cy + 1.6 * r), (cx, cy + 2.2 * r), (cx + 1.6 * r, cy + 1.6 * r)],
                 fill=_darker(cloth, 0.75))
    draw.rectangle([cx - 0.3 * r, cy + 0.7 * r, cx + 0.3 * r, cy + 1.7 * r], fill=_darker(skin, 0.9))
    # hair behind the head
    draw.ellipse([cx - 1.3 * r, cy - 1.25 * r, cx + 1.3 * r, cy + 1.5 * r], fill=_darker(hair, 0.8), outline=line,
                 width=lw)
    # face: round at the top, pointed chin
    face = [(cx + r * math.cos(a), cy + r * 0.95 * math.sin(a)) for a in np.linspace(math.pi, 2 * math.pi, 12)]
    face += [(cx + r, cy), (cx + 0.75 * r, cy + 0.7 * r), (cx, cy + 1.05 * r), (cx - 0.75 * r, cy + 0.7 * r),
             (cx - r, cy)]
    draw.polygon(face, fill=skin, outline=line, width=lw)
    # eyes
    er = 0.22 * r
    iris = _random_colour(rng, 20, 220)
    for side in (-1, 1):
        ex, ey = cx + side * 0.42 * r, cy + 0.15 * r
        draw.ellipse([ex - er, ey - er * 1.3, ex + er, ey + er * 1.3], fill=(252, 252, 252))
        draw.ellipse([ex - er * 0.8, ey - er * 1.1, ex + er * 0.8, ey + er * 1.3], fill=iris)
        draw.ellipse([ex - er * 0.4, ey - er * 0.4, ex + er * 0.4, ey + er * 0.7], fill=_darker(iris, 0.35))
        draw.ellipse([ex - er * 0.55, ey - er * 0.9, ex - er * 0.1, ey - er * 0.35], fill=(255, 255, 255))
        draw.line([(ex - er * 1.2, ey - er * 1.2), (ex + er * 1.1, ey - er * 1.45)], fill=line, width=2 * lw)
        draw.ellipse([ex - er * 0.9, ey + er * 1.6, ex + er * 0.5, ey + er * 2.0], fill=(250, 170, 170))
    draw.line([(cx - 0.1 * r, cy + 0.72 * r), (cx + 0.1 * r, cy + 0.74 * r)], fill=line, width=lw)
    # bangs: a fringe of pointed locks over the forehead, with a cel-shaded band
    top = cy - 1.05 * r
    locks = int(rng.integers(5, 9))
    pts = [(cx - 1.15 * r, cy + 0.2 * r), (cx - 1.1 * r, top + 0.2 * r), (cx, top - 0.1 * r),
           (cx + 1.1 * r, top + 0.2 * r), (cx + 1.15 * r, cy + 0.2 * r)]
    for i in range(locks, -1, -1):
        t = i / locks
        x = cx - 1.05 * r + 2.1 * r * t
        pts.append((x, cy - rng.uniform(0.0, 0.35) * r if i % 2 else top + 0.35 * r))
    draw.polygon(pts, fill=hair, outline=line, width=lw)
    draw.arc([cx - 0.8 * r, top + 0.05 * r, cx + 0.8 * r, top + 0.6 * r], 200, 340, fill=_darker(hair, 1.25),
             width=int(3 * scale))


def _text(draw, rng, w, h, scale):
    size = int(rng.uniform(0.04, 0.1) * h)
    word = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(3, 9))))
    draw.text((rng.uniform(0, 0.7) * w, rng.uniform(0, 0.9) * h), word, font=_font(max(size, 6)),
              fill=_random_colour(rng, 0, 255))


def anime_picture(width, height, seed=0):
    """An RGB anime-style picture (PIL.Image) drawn from a seeded random generator."""
    rng = np.random.default_rng(seed)
    s = 2  # draw at 2x, then downsample: anti-aliased edges, like real art
    w, h = width * s, height * s
    im = _background(rng, w, h)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 7))):
        _shape_with_cel_shading(draw, rng, w, h, s)
    for _ in range(int(rng.integers(1, 3))):
        _hair_strokes(draw, rng, w, h, s)
    if rng.random() < 0.6:
        _character(draw, rng, w, h, s)
    else:
        for _ in range(int(rng.integers(1, 3))):
            _eye(draw, rng, w, h, s)
    if rng.random() < 0.5:
        _text(draw, rng, w, h, s)
    im = im.resize((width, height), Image.LANCZOS)
    return im


def text_watermark(width, height, text="SAMPLE", opacity=0.45, angle=30.0, fill=(255, 255, 255),
                   outline=(40, 40, 40), outline_opacity=0.35, outline_width=2, size=None):
    """A "SAMPLE"-style stamp as (alpha H x W, color H x W x 3), float32 in [0, 1].

    The text is drawn at 4x with an outline and rotated, then reduced, so its edges are soft
    like a real studio stamp.
    """
    s = 4
    size = size or int(min(width, height) * 0.28)
    font = _font(size * s)
    pad = outline_width * s
    box = font.getbbox(text, stroke_width=pad)
    tw, th = box[2] - box[0] + 2 * pad, box[3] - box[1] + 2 * pad
    # two masks: the whole glyph with its outline, and the fill alone
    full = Image.new("L", (tw, th), 0)
    ImageDraw.Draw(full).text((pad - box[0], pad - box[1]), text, font=font, fill=255, stroke_width=pad,
                              stroke_fill=255)
    inner = Image.new("L", (tw, th), 0)
    ImageDraw.Draw(inner).text((pad - box[0], pad - box[1]), text, font=font, fill=255)
    canvas = (width * s, height * s)
    layers = []
    for m in (full, inner):
        m = m.rotate(angle, resample=Image.BICUBIC, expand=True)
        c = Image.new("L", canvas, 0)
        c.paste(m, ((canvas[0] - m.width) // 2, (canvas[1] - m.height) // 2))
        layers.append(np.asarray(c.resize((width, height), Image.BOX), np.float32) / 255.0)
    full_m, inner_m = layers
    ring = np.clip(full_m - inner_m, 0, 1)
    alpha = inner_m * opacity + ring * outline_opacity
    fill_c, out_c = np.array(fill, np.float32) / 255, np.array(outline, np.float32) / 255
    w_fill = inner_m * opacity
    w_ring = ring * outline_opacity
    color = (w_fill[..., None] * fill_c + w_ring[..., None] * out_c) / np.maximum(alpha, 1e-6)[..., None]
    color[alpha <= 0] = fill_c
    return alpha.astype(np.float32), np.clip(color, 0, 1).astype(np.float32)


def soften(image, radius):
    """Gaussian blur of a PIL image (a cheap 'not stamped' variation for tests)."""
    return image.filter(ImageFilter.GaussianBlur(radius))


def make_sample(folder, seed=9):
    """Write the bundled sample: a 233x330 preview stamped with SAMPLE, its profile, and the truth.

    sample.png (stamped, 8-bit, like a studio's preview), sample-profile.png (the stamp's exact
    profile) and sample-truth.png (the clean picture at 466x660, for before/after comparisons).
    """
    import os

    from .blend import stamp
    from .imageio import Picture, save_picture
    from .profile import Profile, save_profile

    os.makedirs(folder, exist_ok=True)
    truth = anime_picture(466, 660, seed=seed)
    small = np.asarray(truth.resize((233, 330), Image.BICUBIC), np.float32) / 255.0
    alpha, color = text_watermark(233, 330, text="SAMPLE", opacity=0.45, angle=35)
    save_picture(Picture(stamp(small, alpha, color)), os.path.join(folder, "sample.png"))
    save_profile(Profile(alpha, color), os.path.join(folder, "sample-profile.png"))
    truth.save(os.path.join(folder, "sample-truth.png"))
