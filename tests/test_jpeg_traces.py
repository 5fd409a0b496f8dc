"""JPEG's traces in pixels: found in pictures that went through JPEG (any crop, any form of the
pixels), not in pictures that didn't."""
import io

import numpy as np
import pytest
from PIL import Image

from core import synth
from core.jpeg_traces import THRESHOLD, jpeg_score, looks_like_jpeg, went_through_jpeg


def _picture(seed):
    return synth.anime_picture(240, 320, seed=seed).convert("RGB")


def _through_jpeg(im, quality):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.mark.parametrize("seed", range(4))
def test_pictures_that_never_went_through_jpeg_show_no_traces(seed):
    im = _picture(seed)
    assert not looks_like_jpeg(np.asarray(im))
    # nor once resampled: what a bicubic downscale of a JPEG leaves is not JPEG's grid any more
    assert not looks_like_jpeg(np.asarray(im.resize((173, 231), Image.BICUBIC)))


@pytest.mark.parametrize("quality", [75, 85, 90])
@pytest.mark.parametrize("seed", range(4))
def test_jpeg_is_found_whatever_the_crop(seed, quality):
    j = _through_jpeg(_picture(seed), quality)
    # a region of a layer starts anywhere: the block grid's phase is found
    for top, left in ((0, 0), (5, 3), (7, 1)):
        assert looks_like_jpeg(j[top:, left:]), (top, left, jpeg_score(j[top:, left:]))


def test_every_form_of_the_pixels_is_read():
    j = _through_jpeg(_picture(1), 85)
    rgba = np.concatenate([j, np.full(j.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    grey = np.asarray(Image.fromarray(j).convert("L"))
    grey_jpeg = _through_jpeg(Image.fromarray(grey), 85)[..., :1]
    for form in (j.astype(np.float32) / 255, j.astype(np.uint16) * 257, rgba, grey_jpeg, grey_jpeg[..., 0]):
        assert jpeg_score(form) >= THRESHOLD, form.shape
    assert jpeg_score(grey) >= THRESHOLD  # a JPEG made grey is still a JPEG's luma


def test_a_large_picture_is_judged_where_it_has_detail():
    """A sketch on white paper: the white margins quantise to nothing; the drawing tells."""
    big = Image.new("RGB", (1200, 900), "white")
    big.paste(_picture(2), (800, 500))
    assert looks_like_jpeg(_through_jpeg(big, 85))
    assert not looks_like_jpeg(np.asarray(big))


def test_what_is_said_wins_over_the_pixels():
    clean = np.asarray(_picture(0))
    j = _through_jpeg(_picture(0), 85)
    assert went_through_jpeg(clean, True) and not went_through_jpeg(j, False)
    assert went_through_jpeg(j, None) and not went_through_jpeg(clean, None)


def test_a_smooth_gradient_is_not_a_comb():
    """Every block of a linear gradient has the same coefficients: on some comb, but on one tooth."""
    ramp = np.linspace(0.1, 0.9, 300, dtype=np.float32)
    picture = np.stack([np.add.outer(ramp, ramp[:200]) / 2] * 3, axis=-1)
    assert jpeg_score(np.rint(picture * 255).astype(np.uint8)) < THRESHOLD


def test_pictures_too_small_to_tell_are_not_jpeg():
    assert jpeg_score(np.zeros((5, 5, 3), np.uint8)) == 0.0
    assert not looks_like_jpeg(np.full((64, 64, 3), 0.5, np.float32))
