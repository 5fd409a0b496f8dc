"""The learned method (`--method learned`, the default): KireiNet run tile by tile.

The network works at x2 on RGB. x4 runs it twice (the second pass only upscales); x1 reduces
the x2 result and keeps the input's own pixels wherever there is no watermark. Grey pictures
go through as RGB and come back as luma; a picture's alpha channel is resampled classically.
"""
import math
import threading

import numpy as np
import torch
import torch.nn.functional as F

from .blend import luma
from .interrupt import poll
from .upscale import LanczosUpscaler
from .weights_io import DEFAULT_MODEL, load_model

_models = {}
_lock = threading.Lock()
X1_MASK_THRESHOLD = 0.01  # opacity above which x1 takes the network's pixel rather than the input's


def model_for(device, name=DEFAULT_MODEL):
    """The named model on `device`, loaded once per process (the worker keeps it warm)."""
    key = (name, str(device))
    with _lock:
        if key not in _models:
            m = load_model(name).to(device)
            if device.type != "cpu":
                m = m.to(memory_format=torch.channels_last)
            for layer in m.modules():  # a cancel is seen before every convolution, not per picture
                if isinstance(layer, torch.nn.Conv2d):
                    layer.register_forward_pre_hook(lambda *_: poll())
            _models[key] = m
        return _models[key]


class LearnedRestorer:
    """A tiler-compatible upscaler: (image, guide) -> image x scale.

    mode: "profile" (guide = H x W x 4: opacity, then colour), "blind" (the network finds the
    stamp) or "none" (upscale only).
    """

    def __init__(self, model, scale, device, mode):
        self.model, self.scale, self.device, self.mode = model, int(scale), device, mode
        body = model.body.radius
        rf = model.receptive_field if mode == "blind" else body
        if self.scale == 4:
            rf += math.ceil(body / 2) + 1
        elif self.scale == 1:
            rf += 2
        self.receptive_field = rf

    # ------------------------------------------------------------ tensors
    def _tensor(self, hwc):
        t = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))[None].to(self.device)
        return t.contiguous(memory_format=torch.channels_last) if self.device.type != "cpu" else t

    def _run(self, rgb, alpha=None, colour=None):
        """One pass of the network at x2 (B x 3 x H x W tensors) -> (out, alpha used)."""
        use_amp = self.device.type == "cuda"
        amp = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        with torch.autocast(self.device.type, dtype=amp, enabled=use_amp):
            out, a, _ = self.model(rgb, alpha, colour)
        return out.float().clamp(0, 1), a.float()

    @torch.no_grad()
    def restore_rgb(self, rgb, guide=None):
        """H x W x 3 float32 -> (H*scale) x (W*scale) x 3 float32."""
        x = self._tensor(rgb)
        if self.mode == "profile":
            g = self._tensor(guide)
            alpha, colour = g[:, :1], g[:, 1:4]
        elif self.mode == "none":
            alpha, colour = torch.zeros_like(x[:, :1]), torch.zeros_like(x)
        else:
            alpha = colour = None
        out, used = self._run(x, alpha, colour)
        if self.scale == 4:
            out, _ = self._run(out, torch.zeros_like(out[:, :1]), torch.zeros_like(out))
        elif self.scale == 1:
            out = F.avg_pool2d(out, 2)
            # keep the input exactly where nothing is stamped (grown by a pixel, for soft edges)
            keep = (F.max_pool2d(used, 3, stride=1, padding=1) <= X1_MASK_THRESHOLD).float()
            out = keep * x + (1 - keep) * out
        return out[0].permute(1, 2, 0).cpu().numpy()

    def __call__(self, image, guide=None):
        c = image.shape[2]
        grey = c in (1, 2)
        nc = 1 if grey else 3
        rgb = np.repeat(image[..., :1], 3, axis=2) if grey else image[..., :3]
        if guide is not None and grey:
            guide = np.concatenate([guide[..., :1], np.repeat(guide[..., 1:2], 3, axis=2)], axis=2)
        out = self.restore_rgb(np.ascontiguousarray(rgb, dtype=np.float32), guide)
        colour = luma(out)[..., None] if grey else out
        if c == nc:
            return colour.astype(np.float32)
        # the picture's own alpha: resampled classically, colour kept where it is transparent
        a = image[..., nc:]
        a_up = LanczosUpscaler(self.scale)(a) if self.scale != 1 else a
        return np.concatenate([colour, np.clip(a_up, 0, 1)], axis=2).astype(np.float32)
