"""The front-end: the stamp taken off at the picture's own resolution.

    I0 = (J - a*W) / max(1 - a, MIN_TRANSMITTANCE)      exact inversion of the blend
    I  = I0 + near(a) * repair(I0, J, a, gain)          what inversion can't do

Inversion multiplies the picture's own error (8-bit quantisation, JPEG blocks) by
gain = 1/(1-a), and nearly opaque pixels carry almost nothing of the picture: the repair
network sees the inverted and the stamped picture, the opacity and the gain, and learns to
clean the first and fill in the second. It acts only near the stamp (GATE_REACH px around any
opacity): everywhere else the picture goes to the body exactly as it came, so the repair can't
harm what has no stamp (a measured profile's errors reach a pixel or two past its edge). Its
last layer starts at zero, so an untrained front-end is exact inversion. Its output is the clean
low-resolution picture: the x1 result, and what the upscaling body sees.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..blend import MIN_TRANSMITTANCE
from .matte import DILATIONS, dilated_layers

GATE_REACH = 4  # px around the profile's opacity where the repair may act


def invert(stamped, alpha, colour):
    """J = a*W + (1-a)*I undone (tensors), 1-a clamped so the result stays bounded, then clipped."""
    t = torch.clamp(1.0 - alpha, min=MIN_TRANSMITTANCE)
    return torch.clamp((stamped - alpha * colour) / t, 0.0, 1.0)


class FrontEnd(nn.Module):
    def __init__(self, channels=64, dilations=DILATIONS):
        super().__init__()
        self.features = nn.Sequential(*dilated_layers(8, channels, dilations))
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # untrained: exact inversion
        nn.init.zeros_(self.tail.bias)
        self.radius = 2 + sum(dilations) + GATE_REACH

    def repairs(self):
        """Whether the repair net adds anything: a zero last layer (untrained) adds exactly
        nothing, and then its features aren't computed at run time (on a light body they cost a
        fifth of the time); in training they always are, or a zero layer would never learn."""
        return bool(self.tail.weight.any() or self.tail.bias.any())

    def forward(self, stamped, alpha, colour):
        inverted = invert(stamped, alpha, colour)
        if not self.training and not self.repairs():
            return inverted
        gain = 1.0 / torch.clamp(1.0 - alpha, min=MIN_TRANSMITTANCE) - 1.0  # 0 where nothing is stamped
        x = torch.cat([inverted - 0.5, stamped - 0.5, alpha, gain / 9.0], 1)
        near = F.max_pool2d((alpha > 0.01).to(inverted.dtype), 2 * GATE_REACH + 1, stride=1, padding=GATE_REACH)
        return inverted + near * self.tail(self.features(x))
