"""kirei-2 (and kirei-fast): the front-end at the picture's resolution, then a waifu2x body.

    J --[matte head, blind mode only]--> (a, W)      or the known profile's (a, W), or a = 0
    I = front-end(J, a, W)                           the clean small picture: the x1 result
    x2 = body(I); x4 = body(body(I))                 UpCUNet (kirei-2) or UpConv7 (kirei-fast)

JPEG input takes the body trained on JPEG noise (waifu2x's noise1 weights to start from) for
the first x2 when the model has one; a second x2 pass always takes the clean body. Under the
stamp, inversion has multiplied JPEG's noise and ringing by 1/(1-a): a model may carry a third
body fine-tuned for that (`body_stamp`, trained by `train --stage stamp`), which takes over from
the JPEG body within STAMP_REACH px of the profile's opacity and nowhere else, so that what
carries no stamp comes out exactly as the JPEG body makes it.
"""
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

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
# input px around the profile's opacity where the stamp body takes over (then fades out over one
# more): beside the stamp nothing is amplified, and the JPEG body does better there (public set,
# x2: 3 px cost the pixels within 8 output px of the stamp 0.24 dB, 0 px gained 0.01)
STAMP_REACH = 0


class Kirei2(nn.Module):
    architecture = ARCHITECTURE
    scale = 2  # of one pass of the body
    modes = MODES

    def __init__(self, body="upcunet", jpeg_body=True, front_channels=64, matte_channels=32, stamp_body=False):
        super().__init__()
        if body not in BODIES:
            raise ValueError(f"unknown body {body!r}: one of {', '.join(BODIES)}")
        if stamp_body and not jpeg_body:
            raise ValueError("a stamp body takes over from the JPEG body: the model needs one")
        self.config = dict(body=body, jpeg_body=jpeg_body, front_channels=front_channels,
                           matte_channels=matte_channels)
        if stamp_body:  # said only when there is one: models saved before it existed keep their config
            self.config["stamp_body"] = True
        self.matte = MatteHead(matte_channels)
        self.front = FrontEnd(front_channels)
        self.body = BODIES[body]()
        self.body_jpeg = BODIES[body]() if jpeg_body else None
        self.body_stamp = BODIES[body]() if stamp_body else None
        self.seam_overlap = SEAM_OVERLAP if self.body.squeeze_excite else 0

    def add_stamp_body(self):
        """Give the model a stamp body that starts as a copy of its JPEG body (see the module doc)."""
        if self.body_jpeg is None:
            raise ValueError("a stamp body takes over from the JPEG body: this model has none")
        if self.body_stamp is None:
            self.body_stamp = copy.deepcopy(self.body_jpeg)
            self.config["stamp_body"] = True
        return self.body_stamp

    def stamp_share(self, alpha):
        """N x 1 x 2H x 2W: how much of the x2 picture the stamp body makes (1 within STAMP_REACH
        px of any opacity, fading to 0 over the next pixel, 0 beyond)."""
        near = F.max_pool2d((alpha > 0.01).float(), 2 * STAMP_REACH + 1, stride=1, padding=STAMP_REACH)
        soft = F.avg_pool2d(F.pad(near, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return F.interpolate(torch.maximum(near, soft), scale_factor=self.scale, mode="bilinear",
                             align_corners=False)

    def jpeg_x2(self, clean, alpha):
        """The JPEG body's x2 of the front-end's picture, the stamp body's near the stamp."""
        out = self.body_jpeg(clean)
        if self.body_stamp is None or not bool((alpha > 0.01).any()):
            return out
        share = self.stamp_share(alpha).to(out.dtype)
        return out + share * (self.body_stamp(clean) - out)

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
            out = self.jpeg_x2(out, alpha) if jpeg and self.body_jpeg is not None else self.body(out)
        if scale == 4:
            out = self.body(out.clamp(0, 1))
        return out, alpha



def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
