"""KireiNet: joint watermark removal and super-resolution, physically grounded.

    J (stamped, low resolution) --[matte head]--> (a, W)   (or the known profile's a, W)
    I0 = (J - a*W) / max(1 - a, 0.1)                          invert the blend
    out = bicubic_up(I0) + body(I0, J, a)                     repair + upscale, as a residual

The matte head only runs in blind mode; with a known profile (or none: a = 0) it is skipped.
The body sees the inverted picture, the stamped one and the opacity, so it learns to repair what
inversion can't (quantisation and JPEG error amplified by 1/(1-a), opaque pixels) while it
upscales. Every layer is a plain convolution (dilated in the matte head): the receptive field
is finite and known, so the tiler's overlapping tiles give exactly the untiled result.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

MIN_TRANSMITTANCE = 0.1  # as core.blend: 1-a is clamped here so inversion stays bounded
ARCHITECTURE = "kirei-net-1"


def _act():
    return nn.LeakyReLU(0.1, inplace=True)


class MatteHead(nn.Module):
    """Blind estimate of the watermark's opacity and colour from the stamped picture.

    Dilated convolutions give a wide view (a stamp is recognised by its letter shapes, not one
    pixel) at full resolution, without the stride alignment that would break exact tiling.
    """

    def __init__(self, channels=32, dilations=(1, 2, 4, 8, 4, 2, 1)):
        super().__init__()
        layers = [nn.Conv2d(3, channels, 3, padding=1), _act()]
        for d in dilations:
            layers += [nn.Conv2d(channels, channels, 3, padding=d, dilation=d), _act()]
        layers += [nn.Conv2d(channels, 4, 3, padding=1)]
        self.layers = nn.Sequential(*layers)
        self.radius = 2 + sum(dilations)

    def forward(self, stamped):
        o = self.layers(stamped)
        return torch.sigmoid(o[:, :1] - 3.0), torch.sigmoid(o[:, 1:])  # starts near "no watermark"


class ResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = _act()

    def forward(self, x):
        return x + self.conv2(self.act(self.conv1(x)))


class Body(nn.Module):
    """Repairs the inverted picture and upscales it (pixel shuffle), as a residual over bicubic."""

    def __init__(self, channels=48, blocks=6, scale=2):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(7, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(channels) for _ in range(blocks)])
        self.mid = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)
        self.radius = 3 + 2 * blocks + 2  # convolutions, plus bicubic's reach
        nn.init.zeros_(self.tail.weight)  # start as plain bicubic
        nn.init.zeros_(self.tail.bias)

    def forward(self, inverted, stamped, alpha):
        f = self.head(torch.cat([inverted - 0.5, stamped - 0.5, alpha], 1))
        f = self.mid(self.blocks(F.leaky_relu(f, 0.1))) + f
        res = F.pixel_shuffle(self.tail(F.leaky_relu(f, 0.1)), self.scale)
        base = F.interpolate(inverted, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + res


class KireiNet(nn.Module):
    def __init__(self, scale=2, channels=48, blocks=6, matte_channels=32):
        super().__init__()
        self.config = dict(scale=scale, channels=channels, blocks=blocks, matte_channels=matte_channels)
        self.scale = scale
        self.matte = MatteHead(matte_channels)
        self.body = Body(channels, blocks, scale)
        # input pixels on each side that one output pixel depends on (blind mode: the widest)
        self.receptive_field = self.matte.radius + self.body.radius

    def forward(self, stamped, alpha=None, colour=None):
        """stamped: B x 3 x H x W in [0, 1]. alpha (B x 1 x H x W), colour (B x 3 x H x W): the known
        profile, or None for blind mode. Returns (restored B x 3 x sH x sW, alpha, colour)."""
        if alpha is None:
            alpha, colour = self.matte(stamped)
        inverted = invert(stamped, alpha, colour)
        return self.body(inverted, stamped, alpha), alpha, colour


def invert(stamped, alpha, colour):
    """The blend J = a*W + (1-a)*I undone, clamped to the picture's range."""
    t = torch.clamp(1.0 - alpha, min=MIN_TRANSMITTANCE)
    return torch.clamp((stamped - alpha * colour) / t, 0.0, 1.0)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
