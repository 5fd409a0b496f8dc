"""Multi-image watermark estimation recovers the opacity and colour of a shared stamp."""
import numpy as np
import pytest

from core.estimate import estimate_profile, poisson_reconstruct, repeat_weights, weighted_median
from core.errors import KireiError
from tests.hardsets import hard_set


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


def test_a_weighted_median_counts_each_picture_its_weight():
    values = np.array([1.0, 2.0, 3.0, 10.0, 11.0])[:, None, None, None] * np.ones((5, 2, 3, 1))
    assert np.all(weighted_median(values, np.ones((5, 2, 3))) == 3.0)
    # three copies of one picture count as one witness: the others' median wins
    w = np.ones((5, 2, 3))
    values[2:] = 10.0
    w[2:] = 1 / 3
    assert np.all(weighted_median(values, w) == 2.0)


def test_repeated_content_counts_once(stamped_set):
    stamped, _ = stamped_set
    copies = [stamped[0]] * 3 + list(stamped[1:4])
    w = repeat_weights(np.stack(copies).astype(np.float32))
    np.testing.assert_allclose(w[:3].mean(), 1 / 3, atol=0.02)
    assert w[3:].mean() > 0.9


def _restore_gap(hs, profile, kept):
    """dB by which exact inversion with the estimate is worse than doing nothing, and than the truth."""
    from core.pipeline import remove_watermark
    from core.profile import Profile

    def db(pics):
        return np.mean([10 * np.log10(1 / np.mean((np.clip(p, 0, 1) - c) ** 2)) for p, c in zip(pics, hs.clean)])
    est = db([remove_watermark(p, profile) if k else p for p, k in zip(hs.stamped, kept)])
    true = db([remove_watermark(p, Profile(alpha=hs.alpha, color=hs.color)) if k else p
               for p, k in zip(hs.stamped, hs.carries)])
    return est - db(hs.stamped), true - est


@pytest.mark.parametrize("kind", ["sprite", "frame"])
def test_content_that_recurs_is_not_taken_for_the_stamp(kind):
    """A character sprite in the same place in 8 of 12 pictures, or a studio's opaque frame on all
    of them, repeats like a stamp but is opaque: the profile covers about the stamp's area, every
    stamped picture is kept, and removing with it makes the pictures much better, not worse."""
    hs = hard_set(kind, "white-outline", size=(117, 165))
    profile, kept = estimate_profile(hs.stamped)
    area, true_area = (profile.alpha > 0.05).mean(), (hs.alpha > 0.05).mean()
    assert area < 1.4 * true_area, (area, true_area)
    assert kept.all()
    better, behind = _restore_gap(hs, profile, kept)
    assert better > 8, better
