"""The learned method (`--method learned`, the default): a registered model run tile by tile.

The model does the stamp removal and x1/x2/x4 itself (see core.models); this module keeps one
warm copy per (model, device), feeds it tiles as tensors, and handles what is not the model's:
grey pictures go through as RGB and come back as luma, a picture's alpha channel is resampled
classically, and x1 keeps the input's own pixels wherever nothing is stamped.
"""
import threading

import numpy as np
import torch
import torch.nn.functional as F

from .blend import luma
from .interrupt import poll
from .models import DEFAULT_MODEL
from .upscale import LanczosUpscaler
from .weights_io import load_model

_models = {}
_lock = threading.Lock()
# a tile's 8 flips and quarter turns, (dims flipped, transposed), the tile as it is first: with TTA
# the model runs on all of them and the results are averaged (see restore_rgb)
VIEWS = [(flips, turn) for turn in (False, True) for flips in ((), (3,), (2,), (2, 3))]
X1_MASK_THRESHOLD = 0.01  # opacity above which x1 takes the model's pixel rather than the input's


def model_for(device, name=DEFAULT_MODEL, restorer=True):
    """The named model on `device`, loaded once per process (the worker keeps it warm); restorer:
    see weights_io.load_model."""
    key = (name, str(device), restorer)  # the finder asked for as a restorer is refused, not served from here
    with _lock:
        if key not in _models:
            m = load_model(name, restorer).to(device)
            if device.type != "cpu":
                m = m.to(memory_format=torch.channels_last)
            for layer in m.modules():  # a cancel is seen before every convolution, not per picture
                if isinstance(layer, torch.nn.Conv2d):
                    layer.register_forward_pre_hook(lambda *_: poll())
            _models[key] = m
        return _models[key]


def _view(t, flips, turn):
    t = t.flip(flips) if flips else t
    return t.transpose(2, 3) if turn else t


def _unview(t, flips, turn):
    t = t.transpose(2, 3) if turn else t
    return t.flip(flips) if flips else t


class LearnedRestorer:
    """A tiler-compatible upscaler: (image, guide) -> image x scale.

    mode: "profile" (guide = H x W x 4: opacity, then colour), "blind" (the model finds the
    stamp) or "none" (upscale only). jpeg: the input was JPEG-compressed (the model may have a
    body for that).
    """

    def __init__(self, model, scale, device, mode, jpeg=False, tta=False):
        if mode not in model.modes:
            raise ValueError(f"this model takes {', '.join(model.modes)}, not {mode!r}")
        self.model, self.scale, self.device, self.mode, self.jpeg = model, int(scale), device, mode, jpeg
        self.views = VIEWS if tta else VIEWS[:1]
        # x1 may keep a neighbour's input pixel (the keep mask is grown by one)
        self.receptive_field = model.receptive_field(mode, self.scale) + (1 if self.scale == 1 else 0)
        self.seam_overlap = model.seam_overlap

    def _tensor(self, hwc):
        t = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))[None].to(self.device)
        return t.contiguous(memory_format=torch.channels_last) if self.device.type != "cpu" else t

    @torch.no_grad()
    def restore_rgb(self, rgb, guide=None):
        """H x W x 3 float32 -> (H*scale) x (W*scale) x 3 float32."""
        x = self._tensor(rgb)
        alpha = colour = None
        if self.mode == "profile":
            g = self._tensor(guide)
            alpha, colour = g[:, :1], g[:, 1:4]
        use_amp = self.device.type == "cuda"
        amp = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        out = used = None
        for flips, turn in self.views:  # TTA: the mean over the views (one, by default)
            xv, av, cv = (None if t is None else _view(t, flips, turn) for t in (x, alpha, colour))
            with torch.autocast(self.device.type, dtype=amp, enabled=use_amp):
                o, u = self.model(xv, av, cv, mode=self.mode, scale=self.scale, jpeg=self.jpeg)
            o, u = _unview(o.float(), flips, turn), _unview(u.float(), flips, turn)
            out, used = (o, u) if out is None else (out + o, torch.maximum(used, u))
        out = (out / len(self.views)).clamp(0, 1)
        if self.scale == 1 and not self.jpeg:
            # keep the input exactly where nothing is stamped (grown by a pixel, for soft edges)
            keep = (F.max_pool2d(used.float(), 3, stride=1, padding=1) <= X1_MASK_THRESHOLD).float()
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
