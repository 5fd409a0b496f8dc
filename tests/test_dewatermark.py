"""Classical removal with a known profile: exact inversion where light passes, a fill where it doesn't."""
import numpy as np

from core.blend import stamp
from core.dewatermark import fill_from_surroundings, remove_with_profile, trust
from tests.conftest import picture


def test_opaque_pixels_are_filled_from_their_surroundings():
    clean = np.zeros((60, 80, 3), np.float32)
    clean[:, :40] = (0.9, 0.2, 0.1)  # two flat halves: the fill must follow each side's colour
    clean[:, 40:] = (0.1, 0.3, 0.8)
    alpha = np.zeros((60, 80), np.float32)
    alpha[20:40, 10:30] = 1.0  # opaque: nothing of the picture gets through
    alpha[20:40, 50:70] = 0.97
    color = np.ones((60, 80, 3), np.float32)
    stamped = np.rint(stamp(clean, alpha, color) * 255) / 255
    out = remove_with_profile(stamped, alpha, color)
    for x0, x1 in ((10, 30), (50, 70)):
        err = np.abs(out[20:40, x0:x1] - clean[20:40, x0:x1])
        assert err.mean() < 0.01 and err.max() < 0.06, (err.mean(), err.max())
    assert np.abs(out - clean).mean() < 0.005


def test_semi_transparent_watermark_is_inverted_exactly():
    clean = picture(50, 40, seed=4)
    alpha = np.full((40, 50), 0.5, np.float32)
    color = np.full((40, 50, 3), (1.0, 0.8, 0.2), np.float32)
    out = remove_with_profile(stamp(clean, alpha, color), alpha, color)
    np.testing.assert_allclose(out, clean, atol=1e-5)


def test_trust_and_fill_helpers():
    assert trust(np.array([0.0, 0.5, 0.95, 1.0], np.float32)).tolist() == [1.0, 1.0, 0.0, 0.0]
    img = np.zeros((10, 10, 1), np.float32)
    img[:, :5] = 1.0
    weight = np.ones((10, 10), np.float32)
    weight[4:6, 2:4] = 0.0
    filled = fill_from_surroundings(img, weight)
    assert np.all(filled[4:6, 2:4] > 0.9) and np.all(filled[weight > 0] == img[weight > 0])
