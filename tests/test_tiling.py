"""Tiled output equals untiled output, for any upscaler that declares its receptive field."""
import tracemalloc

import numpy as np
import pytest
import torch

from core.tiling import StackedGuide, run_tiled
from core.upscale import LanczosUpscaler
from tests.conftest import picture


class ConvUpscaler:
    """A small random conv net + pixel shuffle: a stand-in with the shape of a learned model."""

    def __init__(self, scale, channels=3):
        torch.manual_seed(0)
        self.scale = scale
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, channels * scale * scale, 3, padding=1), torch.nn.PixelShuffle(scale))
        self.receptive_field = 3  # three 3x3 convolutions

    @torch.no_grad()
    def __call__(self, image):
        x = torch.from_numpy(image).permute(2, 0, 1)[None]
        return torch.sigmoid(self.net(x))[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("make", [lambda s: LanczosUpscaler(s), lambda s: ConvUpscaler(s)])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_tiled_equals_untiled(make, scale):
    up = make(scale)
    image = picture(150, 110, seed=2)
    whole = up(image)
    tiled = run_tiled(up, image, tile=32)
    assert tiled.shape == whole.shape == (110 * scale, 150 * scale, 3)
    assert np.abs(tiled - np.clip(whole, 0, 1)).max() < 1 / 255


def test_rgba_tiles_too():
    rng = np.random.default_rng(0)
    image = rng.random((70, 90, 4)).astype(np.float32)
    up = LanczosUpscaler(2)
    assert np.abs(run_tiled(up, image, tile=24) - np.clip(up(image), 0, 1)).max() < 1 / 255


def test_memory_is_bounded_on_8000x8000():
    """Peak extra memory while tiling an 8000x8000 picture is a few tiles' worth, not the picture's."""
    image = np.zeros((8000, 8000, 1), np.float32)
    image[::7] = 1.0
    up = LanczosUpscaler(2)
    tracemalloc.start()
    out = run_tiled(up, image, tile=1024, out_dtype=np.uint8)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.shape == (16000, 16000, 1)
    extra = peak - out.nbytes
    assert extra < 64 * 2 ** 20, f"{extra / 2 ** 20:.0f} MiB beyond the output"
    assert out[0, 0, 0] == 255 and out[3, 5, 0] < 128


# ------------------------------------------------------------------ cross-faded tiles (seam_overlap > 0)
class OverlappedConvUpscaler(ConvUpscaler):
    """The local conv net, declaring an overlap: cross-fading must not change what it computes."""
    seam_overlap = 5


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("out_dtype", [np.uint8, np.float32])
def test_cross_faded_tiles_of_a_local_upscaler_equal_the_untiled_result(scale, out_dtype):
    """The fade weights sum to one everywhere, so tiles that agree blend into exactly the untiled
    result: odd sizes, a last row and column of tiles narrower than the overlap included."""
    up = OverlappedConvUpscaler(scale)
    image = picture(161, 97, seed=4)  # cores of 32: the last column 1 px wide, the last row 1 px tall
    whole = np.clip(up(image), 0, 1)
    tiled = run_tiled(up, image, tile=32, out_dtype=out_dtype)
    assert tiled.shape == whole.shape == (97 * scale, 161 * scale, 3) and tiled.dtype == out_dtype
    if out_dtype == np.uint8:
        want = np.rint(whole * 255).astype(np.uint8)
        diff = np.abs(tiled.astype(int) - want)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.999  # float sums can round a .5 the other way
    else:
        assert np.abs(tiled - whole).max() < 1e-5


class TileMeanUpscaler:
    """Lanczos plus an offset that follows the mean of the whole tile it is given, as waifu2x's
    squeeze-excitation makes each tile's result depend a little on all of that tile."""

    def __init__(self, scale, seam_overlap, strength=0.05):
        self.scale, self.seam_overlap, self.strength = scale, seam_overlap, strength
        self.lanczos = LanczosUpscaler(scale)
        self.receptive_field = self.lanczos.receptive_field

    def __call__(self, image):
        return self.lanczos(image) + self.strength * (image.mean() - 0.5)


def _steps(out, edge):
    """Per-column largest step between neighbouring output pixels, along x and (transposed) y,
    leaving out `edge` px at the picture's borders (Lanczos' own edge effects)."""
    dx = np.abs(np.diff(out, axis=1)).max(axis=(0, 2))[edge:-edge]
    dy = np.abs(np.diff(out, axis=0)).max(axis=(1, 2))[edge:-edge]
    return dx, dy


def test_cross_faded_tiles_of_a_tile_dependent_upscaler_show_no_edge():
    """Tiles whose results differ (by an offset) are cross-faded: the step between neighbouring
    pixels at a tile edge is no larger than inside a tile. Without the fade the edges jump."""
    h, w, s, tile = 110, 150, 2, 48
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = 0.2 + 0.3 * (x / w) + 0.3 * (y / h)  # smooth: the in-tile step is small and even
    image = np.repeat(ramp[..., None], 3, axis=2)
    edge = 8 * s

    def steps(overlap):
        out = run_tiled(TileMeanUpscaler(s, overlap), image, tile=tile)
        return _steps(out, edge)

    for d_blend, d_hard in zip(steps(8), steps(0)):
        inside = np.median(d_blend)  # most columns/rows are inside a tile, away from any fade
        assert d_blend.max() < 2 * inside, (d_blend.max(), inside)
        assert d_hard.max() > 4 * inside, (d_hard.max(), inside)  # the check sees a seam when there is one


@pytest.mark.parametrize("method", ["classic", "learned"])
def test_a_picture_reports_its_progress_tile_by_tile(method):
    """restore_picture passes progress to the tiler: one step per tile (what the command line shows
    for a picture that takes minutes), rising to 1."""
    from core import imageio
    from core.pipeline import Options, restore_picture
    pic = imageio.Picture(picture(150, 110, seed=3), bit_depth=8, format="PNG")
    seen = []
    restore_picture(pic, options=Options(scale=2, method=method, model="kirei-fast", tile=32), progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    done = sorted(set(f for f in seen if f > 0))  # after each tile: 1/n, 2/n, ... 1
    assert len(done) == (5 * 4 if method == "classic" else len(done)) > 1
    np.testing.assert_allclose(done, np.arange(1, len(done) + 1) / len(done))


def test_a_stacked_guide_is_cut_like_the_stacked_array_without_being_stacked_whole():
    """StackedGuide hands each tile the same channels as the whole stack would, but never holds
    more than a tile's worth of the stack (a profile's memory is taken once, not twice)."""
    class Guided:  # an upscaler that returns its guide, enlarged: what each tile was given
        scale, receptive_field = 2, 3

        def __call__(self, image, guide):
            return np.repeat(np.repeat(guide, 2, axis=0), 2, axis=1)

    rng = np.random.default_rng(1)
    alpha, colour = rng.random((130, 170, 1), np.float32), rng.random((130, 170, 3), np.float32)
    image = np.zeros((130, 170, 4), np.float32)

    def traced(make_guide):
        tracemalloc.start()
        out = run_tiled(Guided(), image, tile=48, guide=make_guide())
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out, peak
    whole, whole_peak = traced(lambda: np.concatenate([alpha, colour], axis=2))
    stacked, stacked_peak = traced(lambda: StackedGuide(alpha, colour))
    np.testing.assert_array_equal(stacked, whole)
    assert stacked_peak < whole_peak - 0.8 * (alpha.nbytes + colour.nbytes)  # no second whole stack
