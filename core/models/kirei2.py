"""kirei-2 (and kirei-fast): the front-end at the picture's resolution, then a waifu2x body.

    J --[matte head, blind mode only]--> (a, W)      or the known profile's (a, W), or a = 0
    I = front-end(J, a, W)                           the clean small picture: the x1 result
    x2 = body(I); x4 = body(body(I))                 UpCUNet (kirei-2) or UpConv7 (kirei-fast)

JPEG input takes the body trained on JPEG noise (waifu2x's noise1 weights to start from) for
the first x2 when the model has one; a second x2 pass always takes the clean body.
"""
import math

import torch
import torch.nn as nn

from .frontend import FrontEnd
from .matte import MatteHead
from .upconv7 import UpConv7
from .upcunet import UpCUNet

BODIES = {"upcunet": UpCUNet, "upconv7": UpConv7}
MODES = ("profile", "blind", "none")
ARCHITECTURE = "kirei-2"
# input px of overlap across which neighbouring tiles are cross-faded, for bodies whose
# squeeze-excitation makes each tile's result depend on the whole tile
SEAM_OVERLAP = 16


class Kirei2(nn.Module):
    architecture = ARCHITECTURE
    scale = 2  # of one pass of the body
    modes = MODES

    def __init__(self, body="upcunet", jpeg_body=True, front_channels=64, matte_channels=32):
        super().__init__()
        if body not in BODIES:
            raise ValueError(f"unknown body {body!r}: one of {', '.join(BODIES)}")
        self.config = dict(body=body, jpeg_body=jpeg_body, front_channels=front_channels,
                           matte_channels=matte_channels)
        self.matte = MatteHead(matte_channels)
        self.front = FrontEnd(front_channels)
        self.body = BODIES[body]()
        self.body_jpeg = BODIES[body]() if jpeg_body else None
        self.seam_overlap = SEAM_OVERLAP if self.body.squeeze_excite else 0

    def receptive_field(self, mode, scale):
        """Input px on each side that one output pixel depends on (squeeze-excitation aside)."""
        rf = self.front.radius + (self.matte.radius if mode == "blind" else 0)
        if scale >= 2:
            rf += self.body.pad
        if scale == 4:
            rf += math.ceil(self.body.pad / 2)
        return rf

    def estimate(self, stamped, alpha=None, colour=None, mode="profile"):
        """(a, W) for the mode: the given profile, the matte head's estimate, or nothing stamped."""
        if mode == "blind":
            return self.matte(stamped)
        if mode == "none" or alpha is None:
            return torch.zeros_like(stamped[:, :1]), torch.zeros_like(stamped)
        return alpha, colour

    def forward(self, stamped, alpha=None, colour=None, mode="profile", scale=2, jpeg=False):
        """stamped: N x 3 x H x W in [0, 1] -> (N x 3 x sH x sW restored, opacity used)."""
        alpha, colour = self.estimate(stamped, alpha, colour, mode)
        out = self.front(stamped, alpha, colour)
        if scale >= 2:
            body = self.body_jpeg if jpeg and self.body_jpeg is not None else self.body
            out = body(out)
        if scale == 4:
            out = self.body(out.clamp(0, 1))
        return out, alpha



def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
