"""Pictures come back from the engine in the mode and depth they went in, upright, ICC kept."""
import numpy as np
import png
import pytest
from PIL import Image, ImageCms

from core import imageio
from core.errors import KireiError
from core.pipeline import Options, restore_picture
from tests.conftest import picture


def _restore_file(src, dst, scale=2):
    pic = imageio.load_picture(src)
    imageio.save_picture(restore_picture(pic, None, Options(scale=scale)), dst)
    return imageio.load_picture(dst)


def test_rgba_round_trip_keeps_and_scales_alpha(tmp_path):
    rgb = (picture(40, 30, seed=0) * 255).astype(np.uint8)
    alpha = np.zeros((30, 40), np.uint8)
    alpha[5:25, 10:30] = 255
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "in.png")
    out = _restore_file(tmp_path / "in.png", tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "RGBA" and im.size == (80, 60)
    a = out.pixels[..., 3]
    assert np.all(a[16:44, 26:54] == 1.0) and np.all(a[:3] == 0.0)
    # the premultiplied resampling keeps hidden colours out of the visible edge
    assert np.abs(out.pixels[12:48, 22:58, :3] - _restore_rgb(rgb)[12:48, 22:58]).mean() < 0.06


def _restore_rgb(rgb):
    return imageio.to_float(restore_picture(imageio.Picture(imageio.to_float(rgb)), None, Options(scale=2)).pixels)


def test_16bit_rgb_round_trip(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 48 * 3).reshape(48, 64, 3).astype(np.uint16)
    png.from_array(ramp.reshape(48, 64 * 3), "RGB;16").save(str(tmp_path / "in.png"))
    pic = imageio.load_picture(tmp_path / "in.png")
    assert pic.bit_depth == 16 and pic.channels == 3
    np.testing.assert_array_equal(imageio.from_float(pic.pixels, np.uint16), ramp)
    _restore_file(tmp_path / "in.png", tmp_path / "out.png", scale=1)
    back = png.Reader(filename=str(tmp_path / "out.png")).asDirect()
    assert back[3]["bitdepth"] == 16 and back[3]["planes"] == 3
    got = np.vstack([np.asarray(r, np.uint16) for r in back[2]]).reshape(48, 64, 3)
    np.testing.assert_array_equal(got, ramp)  # x1 without a watermark is lossless at 16 bit


def test_16bit_rgba_and_grey_alpha(tmp_path):
    rng = np.random.default_rng(0)
    for mode, c in (("RGBA;16", 4), ("LA;16", 2)):
        arr = rng.integers(0, 65536, (20, 30, c)).astype(np.uint16)
        png.from_array(arr.reshape(20, 30 * c), mode).save(str(tmp_path / "in.png"))
        out = _restore_file(tmp_path / "in.png", tmp_path / "out.png")
        assert out.bit_depth == 16 and out.pixels.shape == (40, 60, c)


@pytest.mark.parametrize("mode, bits", [("L", 8), ("I;16", 16)])
def test_greyscale_round_trip(tmp_path, mode, bits):
    grey = picture(40, 30, seed=4)[..., 1]
    arr = (grey * (255 if bits == 8 else 65535)).astype(np.uint8 if bits == 8 else np.uint16)
    Image.fromarray(arr).save(tmp_path / "in.png")
    out = _restore_file(tmp_path / "in.png", tmp_path / "out.png", scale=4)
    assert out.channels == 1 and out.bit_depth == bits and out.pixels.shape == (120, 160, 1)
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == ("L" if bits == 8 else "I;16")


def test_float_tiff_is_read_and_written_as_16_bit(tmp_path):
    arr = np.linspace(0, 1, 30 * 20, dtype=np.float32).reshape(20, 30)
    Image.fromarray(arr, "F").save(tmp_path / "in.tif")
    pic = imageio.load_picture(tmp_path / "in.tif")
    assert pic.bit_depth == 32
    out = _restore_file(tmp_path / "in.tif", tmp_path / "out.png", scale=1)
    assert out.bit_depth == 16
    assert np.abs(out.pixels[..., 0] - arr).max() < 1e-4


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = 255  # white on the left
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # stored rotated: shown rotated 90 degrees clockwise
    im.save(tmp_path / "in.jpg", exif=exif, quality=95)
    pic = imageio.load_picture(tmp_path / "in.jpg")
    assert pic.size == (20, 40)
    assert pic.pixels[:8, :, 0].mean() > 0.9 and pic.pixels[12:, :, 0].mean() < 0.1  # now white on top


def test_icc_profile_is_kept(tmp_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray((picture(20, 10, 0) * 255).astype(np.uint8)).save(tmp_path / "in.png", icc_profile=icc)
    _restore_file(tmp_path / "in.png", tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as im:
        assert im.info.get("icc_profile") == icc
    # and at 16 bit too
    arr = (picture(20, 10, 0) * 65535).astype(np.uint16)
    pic = imageio.Picture(imageio.to_float(arr), bit_depth=16, icc_profile=icc)
    imageio.save_picture(pic, tmp_path / "out16.png")
    with Image.open(tmp_path / "out16.png") as im:
        assert im.info.get("icc_profile") == icc
    assert imageio.load_picture(tmp_path / "out16.png").bit_depth == 16


def test_truncated_and_garbage_files_are_clear_errors(tmp_path):
    Image.fromarray((picture(64, 64, 0) * 255).astype(np.uint8)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not a picture at all")
    with pytest.raises(KireiError, match="truncated"):
        imageio.load_picture(tmp_path / "cut.png")
    with pytest.raises(KireiError, match="can't read"):
        imageio.load_picture(tmp_path / "junk.png")
    with pytest.raises(KireiError, match="no such file"):
        imageio.load_picture(tmp_path / "missing.png")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OSError):
        imageio.save_picture(imageio.Picture(np.zeros((4, 4, 3), np.float32)), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []
