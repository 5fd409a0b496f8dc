"""Blind removal of one picture's watermark (core/blind.py): only what the check trusts is removed;
with nothing trusted, the picture comes out exactly as the clean upscale (do no harm); the user
is told which. The finder's output is given here (monkeypatched) so that the check itself is
tested, whatever the shipped finder has learned; the shipped finder's own behaviour is tested
where its weights are installed."""
import numpy as np
import pytest
from PIL import ImageDraw

from core import blind, synth
from core.blend import stamp
from core.pipeline import Options, restore_pixels
from core.profile import Profile
from core.region import restore_region
from tests.conftest import quantise


@pytest.fixture(scope="module")
def pictures():
    """A clean 160x120 picture with its own black caption, the SAMPLE stamp, the stamped picture,
    and a false find: the caption's band, as a white stamp of opacity 0.4."""
    im = synth.anime_picture(160, 120, seed=4)
    ImageDraw.Draw(im).text((8, 98), "HELLO THERE", fill=(0, 0, 0), font=synth._font(16))
    clean = np.asarray(im, np.float32) / 255.0
    alpha, colour = synth.text_watermark(160, 120, opacity=0.5, angle=20)
    caption = np.zeros((120, 160), np.float32)
    caption[96:118, 4:152] = 0.4  # a band around the caption (below the stamp), taken for a light stamp
    return dict(clean=clean, alpha=alpha, colour=colour, stamped=quantise(stamp(clean, alpha, colour)),
                caption=caption)


def finder_says(monkeypatch, alpha, colour):
    """The finder, replaced by one that answers (alpha, colour) at the picture's own size."""
    monkeypatch.setattr(blind, "available", lambda: True)
    monkeypatch.setattr(blind, "_find", lambda rgb, device: (rgb, alpha, colour))


def cpu(**kw):
    return Options(method="learned", device="cpu", **kw)


def test_a_true_stamp_found_is_removed_as_a_profile_would_be(monkeypatch, pictures):
    finder_says(monkeypatch, pictures["alpha"], pictures["colour"])
    heard = []
    out = restore_pixels(pictures["stamped"], None, cpu(scale=1, blind=True), report=heard.append)
    found = heard[0].profile
    assert heard[0].summary().startswith("removed a watermark covering ")
    np.testing.assert_allclose(found.alpha, pictures["alpha"], atol=0.01)  # all of it (the faintest edge aside)
    np.testing.assert_array_equal(out, restore_pixels(pictures["stamped"], found, cpu(scale=1)))


def test_the_pictures_own_caption_taken_for_a_stamp_is_left_alone(monkeypatch, pictures):
    """The finder takes the caption's band for a white stamp: 'removing' it darkens the band and
    leaves its edges as a step, so the check refuses it, and the picture comes out as the clean upscale."""
    finder_says(monkeypatch, pictures["caption"], np.ones(pictures["clean"].shape, np.float32))
    heard = []
    out = restore_pixels(pictures["clean"], None, cpu(scale=2, blind=True), report=heard.append)
    np.testing.assert_array_equal(out, restore_pixels(pictures["clean"], None, cpu(scale=2)))
    assert heard[0].profile is None and heard[0].summary() == "no watermark found"


def test_of_a_stamp_and_a_false_find_only_the_stamp_is_removed(monkeypatch, pictures):
    both = np.maximum(pictures["alpha"], pictures["caption"])
    colour = np.where(pictures["caption"][..., None] > 0, 1.0, pictures["colour"]).astype(np.float32)
    finder_says(monkeypatch, both, colour)
    found = blind.find_watermark(pictures["stamped"])
    assert found.profile is not None
    kept = found.profile.alpha > 0
    assert kept[pictures["alpha"] > 0.2].mean() > 0.95  # the stamp
    assert not kept[pictures["caption"] > 0].any()  # not the caption


def test_without_the_finder_nothing_is_removed_and_the_user_is_told(monkeypatch, pictures):
    monkeypatch.setattr(blind, "available", lambda: False)
    found = blind.find_watermark(pictures["stamped"])
    assert found.profile is None and found.summary() == "no watermark found (the stamp finder is not installed)"


def test_a_region_is_searched_whole_and_its_selection_restored(monkeypatch, pictures):
    """The finder sees all the pixels the plugin sent, not only the selection, and the profile it
    found lines up with the selection's place in them."""
    finder_says(monkeypatch, pictures["alpha"], pictures["colour"])
    mask = np.zeros(pictures["alpha"].shape, np.float32)
    mask[30:90, 40:120] = 1.0
    px = np.uint8(np.round(pictures["stamped"] * 255))
    got = restore_region(px, offset=(5, 7), mask=mask, options=cpu(scale=2, blind=True))
    found = blind.find_watermark(px.astype(np.float32) / 255).profile
    want = restore_region(px, offset=(5, 7), mask=mask, options=cpu(scale=2),
                          profile=Profile(found.alpha, found.color, origin=(5, 7)))
    np.testing.assert_array_equal(got.pixels, want.pixels)
    assert got.offset == want.offset


def test_grey_pictures_are_searched_as_grey_rgb(monkeypatch, pictures):
    seen = []
    monkeypatch.setattr(blind, "available", lambda: True)
    monkeypatch.setattr(blind, "_find", lambda rgb, device: (seen.append(rgb) or rgb, rgb[..., 0] * 0, rgb))
    grey = pictures["stamped"][..., :1]
    assert blind.find_watermark(grey).profile is None
    np.testing.assert_array_equal(seen[0], np.repeat(grey, 3, axis=2))


@pytest.mark.skipif(not blind.available(), reason="the stamp finder's weights are not installed")
def test_the_shipped_finder_does_no_harm_to_a_picture_without_a_stamp():
    clean = np.asarray(synth.anime_picture(233, 330, seed=12), np.float32) / 255.0
    found = blind.find_watermark(clean)
    if found.profile is not None:  # a find that passed the check must be small and faint
        assert found.share < 0.02
    out = restore_pixels(clean, None, cpu(scale=2, blind=True))
    plain = restore_pixels(clean, None, cpu(scale=2))
    assert 10 * np.log10(1 / max(np.mean((out - plain) ** 2), 1e-12)) > 40


@pytest.mark.skipif(not blind.available(), reason="the stamp finder's weights are not installed")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_shipped_finder_leaves_the_pictures_own_text_and_line_art(seed):
    """Pictures with their own balloons, captions, signatures, frames and strokes (drawn at 2x,
    then reduced as previews are), no stamp: restored blind at x2, within 1 dB of the clean upscale."""
    from PIL import Image
    from core.watermarks import picture_marks
    hr = picture_marks(np.asarray(synth.anime_picture(466, 660, seed=seed).convert("RGB")), np.random.default_rng(seed))
    lr = np.asarray(Image.fromarray(hr).resize((233, 330), Image.BICUBIC), np.float32) / 255.0
    truth = hr.astype(np.float32) / 255.0

    def psnr_y(x):
        y = lambda v: 65.481 * v[..., 0] + 128.553 * v[..., 1] + 24.966 * v[..., 2]
        return 10 * np.log10(255.0 ** 2 / np.mean((y(x) - y(truth)) ** 2))
    blind_x2 = psnr_y(restore_pixels(lr, None, cpu(scale=2, blind=True)))
    plain_x2 = psnr_y(restore_pixels(lr, None, cpu(scale=2)))
    assert blind_x2 > plain_x2 - 1.0, (blind_x2, plain_x2)


@pytest.mark.skipif(not blind.available(), reason="the stamp finder's weights are not installed")
def test_the_finder_is_not_offered_as_a_model_to_restore_with():
    from core import weights_io
    from core.errors import KireiError
    assert blind.FINDER not in weights_io.installed()
    with pytest.raises(KireiError, match="'stamp-finder' doesn't restore pictures"):
        restore_pixels(np.zeros((16, 16, 3), np.float32), None, cpu(scale=2, model=blind.FINDER))


def test_the_matte_asked_for_is_what_was_found_and_none_when_nothing_was(monkeypatch, pictures):
    px = np.uint8(np.round(pictures["stamped"] * 255))
    finder_says(monkeypatch, pictures["alpha"], pictures["colour"])
    res = restore_region(px, options=cpu(scale=2, blind=True), matte=True)
    found = blind.find_watermark(px.astype(np.float32) / 255).profile
    assert res.matte.shape == (240, 320)
    half = res.matte[::2, ::2].astype(np.float32) / 255  # the matte at the picture's pixels
    assert np.abs(half - found.alpha)[found.alpha > 0].mean() < 0.05
    finder_says(monkeypatch, pictures["caption"], np.ones(pictures["clean"].shape, np.float32))
    assert restore_region(np.uint8(np.round(pictures["clean"] * 255)), options=cpu(scale=2, blind=True),
                          matte=True).matte is None  # the false find refused: nothing taken off
