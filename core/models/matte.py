"""The blind matte head: the watermark's opacity and colour estimated from one stamped picture.

Dilated convolutions give a wide view (a stamp is recognised by its strokes, not by one pixel)
at full resolution, without the stride alignment that would break exact tiling.
"""
import torch
import torch.nn as nn

DILATIONS = (1, 2, 4, 8, 4, 2, 1)


def dilated_layers(cin, channels, dilations):
    """A 3x3 convolution to `channels`, then one dilated 3x3 per dilation, each with leaky ReLU:
    a wide view at full resolution (no strides, so tiles stay exact)."""
    layers = [nn.Conv2d(cin, channels, 3, padding=1), nn.LeakyReLU(0.1, inplace=True)]
    for d in dilations:
        layers += [nn.Conv2d(channels, channels, 3, padding=d, dilation=d), nn.LeakyReLU(0.1, inplace=True)]
    return layers


class MatteHead(nn.Module):
    def __init__(self, channels=32, dilations=DILATIONS):
        super().__init__()
        self.layers = nn.Sequential(*dilated_layers(3, channels, dilations), nn.Conv2d(channels, 4, 3, padding=1))
        self.radius = 2 + sum(dilations)  # input px each side that one output depends on

    def forward(self, stamped):
        o = self.layers(stamped)
        return torch.sigmoid(o[:, :1] - 3.0), torch.sigmoid(o[:, 1:])  # starts near "no watermark"
