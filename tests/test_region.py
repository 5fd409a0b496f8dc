"""The region API composites through the selection and aligns the profile at the region's offset."""
import numpy as np
import pytest

from core.blend import stamp
from core.errors import KireiError
from core.pipeline import Options, restore_pixels
from core.profile import Profile
from core.region import restore_region
from tests.conftest import picture


def _scaled(x, s):
    return np.repeat(np.repeat(x, s, axis=0), s, axis=1)


@pytest.mark.parametrize("scale", [1, 2])
def test_outside_the_selection_nothing_changes(scale):
    rgb = (picture(64, 48, seed=3) * 255).round().astype(np.uint8)
    mask = np.zeros((48, 64), np.float32)
    mask[10:30, 20:50] = 1.0
    mask[30:34, 20:50] = 0.5  # a soft edge
    res = restore_region(rgb, mask=mask, options=Options(scale=scale))
    x0, y0 = res.offset
    assert (x0, y0) == (20 * scale, 10 * scale)
    assert res.pixels.shape == (24 * scale, 30 * scale, 4) and res.pixels.dtype == np.uint8
    # compositing the new layer over the (scaled) picture: only the selection may change
    layer_alpha = np.zeros((48 * scale, 64 * scale), np.float32)
    layer_alpha[y0:y0 + res.pixels.shape[0], x0:x0 + res.pixels.shape[1]] = res.pixels[..., 3] / 255.0
    outside = _scaled(mask, scale) == 0
    assert not layer_alpha[outside].any()
    assert np.all(layer_alpha[_scaled(mask, scale) == 1] == 1.0)
    soft = layer_alpha[_scaled(mask, scale) == 0.5]
    assert np.all(np.abs(soft - 0.5) <= 1 / 255)


def _psnr(a, b):
    return 10 * np.log10(1.0 / max(float(np.mean((np.asarray(a, np.float64) - b) ** 2)), 1e-20))


@pytest.mark.parametrize("method,model", [("classic", "kirei-2"), ("learned", "kirei-fast"), ("learned", "kirei-2")])
def test_region_equals_the_same_part_of_the_whole_picture(method, model):
    """Restoring a region with a profile aligned at its offset gives what restoring everything
    gives: the same pixels where the method is local; for kirei-2, whose body's squeeze-excitation
    averages over all it is given, nearly (a region on the real picture: tests/test_models.py)."""
    w, h = 80, 60
    rng = np.random.default_rng(0)
    alpha = np.zeros((h, w), np.float32)
    alpha[15:45, 10:70] = rng.uniform(0.2, 0.6, (30, 60)).astype(np.float32)
    color = np.ones((h, w, 3), np.float32)
    prof = Profile(alpha, color)
    clean = picture(w, h, seed=5)
    stamped = stamp(clean, alpha, color)
    opts = Options(scale=2, method=method, model=model, device="cpu")
    whole = restore_pixels(stamped, prof, opts)
    # the plugin sends only the layer's part at (x=4, y=2), 76x58, with a selection well inside it
    x, y = 4, 2
    part = stamped[y:, x:]
    mask = np.zeros(part.shape[:2], np.float32)
    mask[20:38, 20:56] = 1
    res = restore_region(part, offset=(x, y), mask=mask, profile=prof, options=opts, margin=8)
    ox, oy = res.offset
    assert (ox, oy) == ((x + 20) * 2, (y + 20) * 2)
    got = res.pixels[..., :3]
    want = whole[oy:oy + got.shape[0], ox:ox + got.shape[1]]
    if method == "classic" or model == "kirei-fast":
        assert np.abs(got - want).max() < 1e-4
    else:
        assert _psnr(got, want) > 45  # measured: 63 dB
    # and the watermark is gone: close to the clean picture, far from the stamped one
    cut = (slice(oy, oy + got.shape[0]), slice(ox, ox + got.shape[1]))
    clean_up = restore_pixels(clean, None, opts)[cut]
    stamped_up = restore_pixels(stamped, None, opts)[cut]
    assert np.abs(got - clean_up).mean() < 0.15 * np.abs(stamped_up - clean_up).mean()


def test_greyscale_16bit_region_keeps_its_type():
    grey = (picture(32, 32, seed=1)[..., :1] * 65535).astype(np.uint16)
    res = restore_region(grey, options=Options(scale=2))
    assert res.pixels.shape == (64, 64, 2) and res.pixels.dtype == np.uint16
    assert np.all(res.pixels[..., 1] == 65535)


def test_empty_selection_is_a_clear_error():
    with pytest.raises(KireiError, match="selection is empty"):
        restore_region(np.zeros((8, 8, 3), np.uint8), mask=np.zeros((8, 8), np.float32))


def test_the_matte_is_the_opacity_taken_off_under_the_restored_part_at_its_size():
    """Asked for, the matte is the profile's opacity under the restored part (the selection's box),
    bilinear at the result's size: what the plugins show as a layer mask. Nothing taken off
    (no profile, or none under the part): no matte; not asked for: none either."""
    w, h, s = 80, 60, 2
    alpha = np.zeros((h, w), np.float32)
    alpha[20:40, 30:70] = 0.5
    prof = Profile(alpha, np.ones((h, w, 3), np.float32))
    part = (stamp(picture(w, h, seed=6), alpha, prof.color) * 255).round().astype(np.uint8)[2:, 4:]
    mask = np.zeros(part.shape[:2], np.float32)
    mask[10:50, 20:60] = 1.0
    opts = Options(scale=s, method="classic")
    res = restore_region(part, offset=(4, 2), mask=mask, profile=prof, options=opts, matte=True)
    assert res.matte.dtype == np.uint8 and res.matte.shape == res.pixels.shape[:2]
    # the box is part[10:50, 20:60], the picture's [12:52, 24:64]: the stamp's rows 20..40 are
    # its rows 8..28, its columns 30..64 its columns 6..40 (x2: 16..56 and 12..80)
    assert np.all(res.matte[18:54, 14:78] == 128)  # 0.5, away from the interpolated edges
    assert not res.matte[:14].any() and not res.matte[58:].any() and not res.matte[:, :10].any()
    assert restore_region(part, offset=(4, 2), mask=mask, profile=prof, options=opts).matte is None
    assert restore_region(part, offset=(4, 2), mask=mask, options=opts, matte=True).matte is None
    corner = np.zeros(part.shape[:2], np.float32)
    corner[:8, :8] = 1.0  # a part the stamp doesn't reach
    assert restore_region(part, offset=(4, 2), mask=corner, profile=prof, options=opts, matte=True).matte is None
