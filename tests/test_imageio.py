"""Pictures come back from the engine in the mode and depth they went in, upright, ICC kept;
sizes are read from headers, and what can't or mustn't be read is refused before decoding."""
import os
import struct
import tracemalloc
import zlib

import numpy as np
import png
import pytest
from PIL import Image, ImageCms

from core import imageio
from core.errors import KireiError
from core.pipeline import Options, restore_picture
from tests.conftest import picture


def png_file(width, height, bit_depth=1, colour_type=0, raw=None):
    """PNG bytes of width x height, all zero, built row by row: a 30000 x 30000 picture is ~100 KB
    and takes no memory to make. `raw`, when given, is the (inflated) data to store instead."""
    z = zlib.compressobj(9)
    if raw is None:
        planes = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
        row = b"\0" * (1 + (width * planes * bit_depth + 7) // 8)
        idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    else:
        idat = z.compress(raw) + z.flush()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def bomb_png(width=30000, height=30000):
    """A decompression bomb: ~100 KB on disk, width x height pixels once decoded."""
    return png_file(width, height)


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


@pytest.fixture
def no_decoding(monkeypatch):
    """Any attempt to decode pixels fails the test: what is checked must be checked from the header."""
    from PIL import ImageFile

    def refuse(*a, **k):
        raise AssertionError("pixels were decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(png.Reader, "read", refuse)


def test_read_size_reads_the_header_only(tmp_path, no_decoding):
    arr = np.zeros((20, 40, 3), np.uint8)
    for ext in ("png", "jpg"):
        im = Image.fromarray(arr)
        exif = im.getexif()
        exif[0x0112] = 6  # shown rotated: 20 wide, 40 high
        im.save(tmp_path / f"in.{ext}", exif=exif)
        assert imageio.read_size(tmp_path / f"in.{ext}") == (20, 40)
    assert imageio.read_size(bomb_png()) == (30000, 30000)
    (tmp_path / "junk.png").write_bytes(b"junk")
    for bad, reason in (("junk.png", "can't read"), ("missing.png", "no such file"), (".", "is a folder")):
        with pytest.raises(KireiError, match=reason):
            imageio.read_size(tmp_path / bad)


def test_pictures_larger_than_the_limit_are_refused_before_decoding(tmp_path, no_decoding):
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    with pytest.raises(KireiError, match=r"bomb.png is 30000x30000 = 900.0 megapixels, more than Kirei reads \(100\)"):
        imageio.load_picture(tmp_path / "bomb.png")
    with pytest.raises(KireiError, match=r"the picture is 300x200 = 0.1 megapixels, more than Kirei reads \(0.05\)"):
        imageio.load_picture(png_file(300, 200), max_pixels=50_000)


def test_a_picture_up_to_the_limit_is_read():
    assert imageio.MAX_PIXELS >= 8000 * 8000  # a user's large picture is not a bomb
    pic = imageio.load_picture(png_file(300, 200), max_pixels=300 * 200)
    assert pic.size == (300, 200) and not pic.pixels.any()


def test_a_16_bit_png_hiding_gigabytes_is_refused_without_inflating_them():
    small = png_file(10, 10, bit_depth=16, raw=b"\0" * (64 << 20))  # 64 MB of rows for a 10x10 picture
    tracemalloc.start()
    try:
        with pytest.raises(KireiError, match="inflates to more than its size holds"):
            imageio.load_picture(small)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_non_regular_files_are_refused_without_reading_them(tmp_path):
    with pytest.raises(KireiError, match="/dev/zero: not a regular file"):
        imageio.load_picture("/dev/zero")
    os.mkfifo(tmp_path / "fifo.png")  # opening it to read would wait for a writer forever
    for read in (imageio.load_picture, imageio.read_size):
        with pytest.raises(KireiError, match="fifo.png: not a regular file"):
            read(tmp_path / "fifo.png")


def test_pictures_are_read_where_os_has_no_o_nonblock_and_in_binary_where_it_has_o_binary(tmp_path, monkeypatch):
    """Windows: no O_NONBLOCK (os.open would raise AttributeError), and O_BINARY or text mode."""
    path = tmp_path / "p.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(path)
    binary = 1 << 30  # a flag bit no platform's os.open means, standing in for Windows' O_BINARY
    flags, real_open = [], os.open

    def spy(file, flag, *args, **kw):
        flags.append(flag)
        return real_open(file, flag & ~binary, *args, **kw)
    monkeypatch.delattr(os, "O_NONBLOCK")
    monkeypatch.setattr(os, "O_BINARY", binary, raising=False)
    monkeypatch.setattr(os, "open", spy)
    assert imageio.read_size(path) == (4, 4)
    assert imageio.load_picture(path).pixels.shape == (4, 4, 3)
    assert flags and all(f & binary for f in flags)


def test_floats_far_out_of_range_are_clipped_and_nan_refused():
    huge = np.array([[[3.4e38, -3.4e38, 0.5]]], np.float32)
    np.testing.assert_array_equal(imageio.to_float(huge), [[[1.0, 0.0, 0.5]]])
    np.testing.assert_array_equal(imageio.to_float(np.array([[1e300]])), [[[1.0]]])  # float64 beyond float32
    for bad in (np.nan, np.inf):
        with pytest.raises(KireiError, match="NaN or infinite"):
            imageio.to_float(np.array([[0.5, bad]], np.float32))


@pytest.mark.parametrize("method", ["classic", "learned"])
def test_huge_finite_floats_never_come_back_as_nan(method):
    px = np.full((24, 32, 3), 3.4e38, np.float32)
    px[::2] = -3.4e38
    from core.pipeline import restore_pixels
    out = restore_pixels(px, None, Options(scale=2, method=method, device="cpu"))
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_a_float_tiff_holding_nan_is_one_clear_error(tmp_path):
    arr = np.full((4, 6), 0.5, np.float32)
    arr[1, 2] = np.nan
    Image.fromarray(arr, "F").save(tmp_path / "nan.tif")
    with pytest.raises(KireiError, match="nan.tif: the pixels hold NaN or infinite values"):
        imageio.load_picture(tmp_path / "nan.tif")
