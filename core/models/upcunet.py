"""UpCUNet: waifu2x's "cunet" 2x architecture (nagadomi), as Kirei's own PyTorch definition.

Two cascaded U-Nets. The first upsamples (its last layer is a 4x4 stride-2 transposed
convolution); the second refines the 2x result, and its output is added to the first's.
Every convolution is unpadded, so the network eats a border: `forward` pads the input by
PAD px with edge replication (as waifu2x does) and returns exactly 2x the input size.
Squeeze-excitation blocks scale channels by an average over the whole input, so a picture
restored in tiles differs slightly from one restored whole (see core.tiling's blending).

The weights come from waifu2x's MIT-licensed art models (core/models/import_waifu2x.py).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

PAD = 18  # input px consumed on each side (36 output px)
SLOPE = 0.1


def _lrelu(x):
    return F.leaky_relu(x, SLOPE, inplace=True)


def _crop(x, n):
    return x[..., n:-n, n:-n]


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduction=8):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x):
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return x * s[:, :, None, None]


class DoubleConv(nn.Module):
    """Two unpadded 3x3 convolutions with leaky ReLU, optionally squeeze-excited."""

    def __init__(self, cin, mid, cout, se):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 3)
        self.conv2 = nn.Conv2d(mid, cout, 3)
        self.se = SqueezeExcite(cout) if se else None

    def forward(self, x):
        x = _lrelu(self.conv2(_lrelu(self.conv1(x))))
        return self.se(x) if self.se is not None else x


class UNet1(nn.Module):
    """Depth-1 U-Net ending in the x2 transposed convolution."""

    def __init__(self):
        super().__init__()
        self.conv1 = DoubleConv(3, 32, 64, se=False)
        self.down1 = nn.Conv2d(64, 64, 2, stride=2)
        self.conv2 = DoubleConv(64, 128, 64, se=True)
        self.up2 = nn.ConvTranspose2d(64, 64, 2, stride=2)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.bottom = nn.ConvTranspose2d(64, 3, 4, stride=2, padding=3)

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = _lrelu(self.up2(self.conv2(_lrelu(self.down1(x1)))))
        x3 = _lrelu(self.conv3(_crop(x1, 4) + x2))
        return self.bottom(x3)


class UNet2(nn.Module):
    """Depth-2 U-Net at the output resolution, a residual refinement."""

    def __init__(self):
        super().__init__()
        self.conv1 = DoubleConv(3, 32, 64, se=False)
        self.down1 = nn.Conv2d(64, 64, 2, stride=2)
        self.conv2 = DoubleConv(64, 64, 128, se=True)
        self.down2 = nn.Conv2d(128, 128, 2, stride=2)
        self.conv3 = DoubleConv(128, 256, 128, se=True)
        self.up3 = nn.ConvTranspose2d(128, 128, 2, stride=2)
        self.conv4 = DoubleConv(128, 64, 64, se=True)
        self.up4 = nn.ConvTranspose2d(64, 64, 2, stride=2)
        self.conv5 = nn.Conv2d(64, 64, 3)
        self.bottom = nn.Conv2d(64, 3, 3)

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = self.conv2(_lrelu(self.down1(x1)))
        x3 = _lrelu(self.up3(self.conv3(_lrelu(self.down2(x2)))))
        x4 = _lrelu(self.up4(self.conv4(_crop(x2, 4) + x3)))
        x5 = _lrelu(self.conv5(_crop(x1, 16) + x4))
        return self.bottom(x5)


class UpCUNet(nn.Module):
    scale = 2
    pad = PAD
    squeeze_excite = True  # tiles change the result slightly: blend them

    def __init__(self):
        super().__init__()
        self.unet1 = UNet1()
        self.unet2 = UNet2()

    def forward(self, x):
        """x: N x 3 x H x W in [0, 1] -> N x 3 x 2H x 2W (not clamped)."""
        h, w = x.shape[-2:]
        # even sides after padding: the U-Nets halve the picture twice
        x = F.pad(x, (PAD, PAD + w % 2, PAD, PAD + h % 2), mode="replicate")
        z1 = self.unet1(x)
        z = _crop(z1, 20) + self.unet2(z1)
        return z[..., :2 * h, :2 * w]
