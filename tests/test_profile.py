import re

import numpy as np
import pytest
from PIL import Image

from core.errors import KireiError
from core.profile import Profile, load_profile, profile_from_png, save_profile
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
