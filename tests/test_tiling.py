"""Tiled output equals untiled output, for any upscaler that declares its receptive field."""
import tracemalloc

import numpy as np
import pytest
import torch

from core.tiling import run_tiled
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
