"""Multi-image watermark estimation recovers the opacity and colour of a shared stamp."""
import numpy as np
import pytest

from core.estimate import estimate_profile, poisson_reconstruct
from core.errors import KireiError


def _errors(profile, alpha, color):
    inside = alpha > 0.1
    a_mae = float(np.abs(profile.alpha - alpha).mean())
    c_mae = float(np.abs(profile.color - color)[inside].mean())
    return a_mae, c_mae


def test_recovers_opacity_and_colour_from_20_pictures(stamped_set, watermark):
    stamped, _ = stamped_set
    profile, kept = estimate_profile(stamped)
    a_mae, c_mae = _errors(profile, *watermark)
    assert kept.all()
    assert a_mae < 0.02, a_mae
    assert c_mae < 0.05, c_mae


def test_robust_to_pictures_without_the_watermark(stamped_set, watermark):
    stamped, clean = stamped_set
    mixed = list(stamped[:17]) + [np.rint(c * 255) / 255 for c in clean[17:]]
    profile, kept = estimate_profile(mixed)
    a_mae, c_mae = _errors(profile, *watermark)
    assert a_mae < 0.02, a_mae
    assert c_mae < 0.05, c_mae
    assert not kept[17:].any(), "the 3 unstamped pictures should be set aside"
    assert kept[:17].all()


def test_poisson_reconstruction_inverts_gradients():
    rng = np.random.default_rng(1)
    field = rng.random((17, 23, 2))
    gx = np.zeros_like(field)
    gy = np.zeros_like(field)
    gx[:, :-1] = field[:, 1:] - field[:, :-1]
    gy[:-1] = field[1:] - field[:-1]
    back = poisson_reconstruct(gx, gy)
    np.testing.assert_allclose(back - back.mean((0, 1)), field - field.mean((0, 1)), atol=1e-9)


def test_needs_two_pictures_of_one_size(stamped_set):
    stamped, _ = stamped_set
    with pytest.raises(KireiError, match="at least 2"):
        estimate_profile(stamped[:1])
    with pytest.raises(KireiError, match="same size"):
        estimate_profile([stamped[0], stamped[1][:-1]])
