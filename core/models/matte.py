"""The blind matte head: the watermark's opacity and colour estimated from one stamped picture.

Dilated convolutions give a wide view (a stamp is recognised by its strokes, not by one pixel)
at full resolution, without the stride alignment that would break exact tiling.
"""
import torch
import torch.nn as nn

DILATIONS = (1, 2, 4, 8, 4, 2, 1)


class MatteHead(nn.Module):
    def __init__(self, channels=32, dilations=DILATIONS):
        super().__init__()
        layers = [nn.Conv2d(3, channels, 3, padding=1), nn.LeakyReLU(0.1, inplace=True)]
        for d in dilations:
            layers += [nn.Conv2d(channels, channels, 3, padding=d, dilation=d), nn.LeakyReLU(0.1, inplace=True)]
        layers += [nn.Conv2d(channels, 4, 3, padding=1)]
        self.layers = nn.Sequential(*layers)
        self.radius = 2 + sum(dilations)  # input px each side that one output depends on

    def forward(self, stamped):
        o = self.layers(stamped)
        return torch.sigmoid(o[:, :1] - 3.0), torch.sigmoid(o[:, 1:])  # starts near "no watermark"
