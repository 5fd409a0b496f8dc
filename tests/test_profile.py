import re

import numpy as np
import pytest
from PIL import Image

from core.errors import KireiError
from core.profile import Profile, load_profile, png_size, profile_from_png, profile_window, save_profile
from tests.test_imageio import bomb_png, no_decoding  # noqa: F401 (a fixture)


def _profile(w=30, h=20, seed=0):
    rng = np.random.default_rng(seed)
    return Profile(alpha=rng.random((h, w), np.float32) * 0.8, color=rng.random((h, w, 3), np.float32))


def test_crop_at_region_offset_matches_the_picture():
    p = _profile()
    c = p.crop(7, 5, 10, 8)
    np.testing.assert_array_equal(c.alpha, p.alpha[5:13, 7:17])
    np.testing.assert_array_equal(c.color, p.color[5:13, 7:17])


def test_crop_past_the_edges_carries_no_watermark():
    p = _profile()
    c = p.crop(-3, 15, 10, 10)  # 3 columns left of the picture, 5 rows below it
    assert c.alpha.shape == (10, 10)
    np.testing.assert_array_equal(c.alpha[:5, 3:], p.alpha[15:20, 0:7])
    assert not c.alpha[:, :3].any() and not c.alpha[5:].any()


@pytest.mark.parametrize("bits, tol", [(16, 0.5 / 65535 + 1e-7), (8, 0.5 / 255 + 1e-7)])
def test_save_and_load_round_trip(tmp_path, bits, tol):
    p = _profile()
    path = tmp_path / "p.png"
    save_profile(p, path, bit_depth=bits)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (30, 20)
    q = load_profile(path)
    assert np.abs(q.alpha - p.alpha).max() <= tol
    assert np.abs(q.color - p.color).max() <= tol


def test_profile_must_be_an_rgba_png(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    Image.new("RGBA", (4, 4)).save(tmp_path / "rgba.tif")
    for name in ("rgb.png", "rgba.tif"):
        with pytest.raises(KireiError, match="RGBA PNG"):
            load_profile(tmp_path / name)


def test_a_profile_of_another_size_is_refused_before_decoding(tmp_path, no_decoding):
    save_profile(_profile(30, 20), tmp_path / "p.png")
    data = (tmp_path / "p.png").read_bytes()
    for source, read in ((tmp_path / "p.png", load_profile), (data, profile_from_png)):
        with pytest.raises(KireiError, match="the picture is 20x30 but the watermark profile.* is 30x20"):
            read(source, size=(20, 30))  # transposed
        with pytest.raises(KireiError, match="is 30000x30000"):
            read(bomb_png() if isinstance(source, bytes) else _write(tmp_path / "bomb.png", bomb_png()), size=(30, 20))


def test_a_profile_of_the_right_size_is_read():
    p = _profile(30, 20)
    from core.profile import profile_png
    q = profile_from_png(profile_png(p), size=(30, 20))
    assert np.abs(q.alpha - p.alpha).max() < 1e-4


def test_errors_name_the_profile(tmp_path):
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    (tmp_path / "junk.png").write_bytes(b"junk")
    for name, reason in (("missing.png", "no such file"), ("junk.png", "can't read"),
                         ("bomb.png", "is 30000x30000 = 900.0 megapixels, more than Kirei reads")):
        with pytest.raises(KireiError, match=f"^the watermark profile {re.escape(str(tmp_path / name))}:? {reason}"):
            load_profile(tmp_path / name)


def _write(path, data):
    path.write_bytes(data)
    return path


def _png(rgba, bits, **options):
    """RGBA pixels (uint8 or uint16, H x W x 4) as PNG file bytes, written by pypng."""
    import io

    import png
    h, w, _ = rgba.shape
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=False, alpha=True, bitdepth=bits, **options).write(buf, rgba.reshape(h, w * 4))
    return buf.getvalue()


@pytest.mark.parametrize("bits", [8, 16])
def test_a_window_is_the_whole_profile_cropped(bits):
    rng = np.random.default_rng(bits)
    rgba = rng.integers(0, 2 ** bits, (20, 30, 4)).astype(np.uint8 if bits == 8 else np.uint16)
    data = _png(rgba, bits)
    whole = profile_from_png(data)
    for x, y, w, h in ((0, 0, 30, 20), (7, 5, 10, 8), (29, 19, 1, 1), (3, 4, 0, 0)):
        part = profile_window(data, x, y, w, h)
        assert part.origin == (x, y) and part.size == (w, h)
        np.testing.assert_array_equal(part.alpha, whole.alpha[y:y + h, x:x + w])
        np.testing.assert_array_equal(part.color, whole.color[y:y + h, x:x + w])
        # a window crops as the whole does, in the picture's coordinates, past its edges too
        for region in ((x, y, w, h), (x - 2, y - 3, w + 4, h + 5)):
            np.testing.assert_array_equal(part.crop(*region).alpha,
                                          whole.crop(*region).alpha * _inside(region, (x, y, w, h)))


def _inside(region, window):
    """1 where the region's pixels fall in the window, else 0."""
    x, y, w, h = region
    wx, wy, ww, wh = window
    ys, xs = np.mgrid[y:y + h, x:x + w]
    return ((xs >= wx) & (xs < wx + ww) & (ys >= wy) & (ys < wy + wh)).astype(np.float32)


def test_a_region_restores_the_same_from_a_window_of_the_profile():
    from core.region import restore_region
    from core.pipeline import Options
    from tests.conftest import picture
    p = _profile(60, 40, seed=3)
    data = _png(np.dstack([p.color, p.alpha[..., None]]).__mul__(65535).round().astype(np.uint16), 16)
    whole = profile_from_png(data)
    px = (picture(60, 40, 1)[10:35, 20:50] * 255).astype(np.uint8)
    mask = np.zeros((25, 30), np.uint8)
    mask[5:20, 8:25] = 255
    want = restore_region(px, offset=(20, 10), mask=mask, profile=whole, options=Options(scale=2))
    got = restore_region(px, offset=(20, 10), mask=mask, profile=profile_window(data, 20, 10, 30, 25),
                         options=Options(scale=2))
    np.testing.assert_array_equal(got.pixels, want.pixels)
    assert got.offset == want.offset


def test_a_window_takes_the_memory_of_the_window_not_the_picture():
    """An 8000x8000 profile (1 GB as floats; its pixels in one IDAT chunk, 256 MB inflated) read for a
    64x64 window."""
    import io
    import tracemalloc

    import png
    width = height = 8000
    row = bytearray(width * 4)
    buf = io.BytesIO()
    png.Writer(width, height, greyscale=False, alpha=True, bitdepth=8, chunk_limit=2 ** 30).write(
        buf, (row for _ in range(height)))
    tracemalloc.start()
    try:
        part = profile_window(buf.getvalue(), 5000, 3000, 64, 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert part.size == (64, 64) and not part.alpha.any()
    assert peak < 16 * 2 ** 20, peak


def test_what_a_window_cant_read_is_one_line_naming_the_profile():
    rgba = np.full((6, 8, 4), 200, np.uint8)
    good = _png(rgba, 8)
    rgb = _png_rgb(rgba[..., :3])
    cut = good[:good.index(b"IDAT") + 10]
    for data, reason in ((b"junk", "can't read the picture"), (rgb, "must be an RGBA PNG"),
                         (_png(rgba, 8, interlace=True), "interlaced PNG: save it without interlacing"),
                         (cut, "can't read the picture")):
        with pytest.raises(KireiError, match=f"^the watermark profile:? .*{re.escape(reason)}"):
            profile_window(data, 0, 0, 8, 6)
    assert png_size(good) == (8, 6)


def _png_rgb(rgb):
    import io
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG")
    return buf.getvalue()
