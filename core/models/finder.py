"""The stamp finder: a watermark's opacity and colour found in ONE picture, seeing all of it.

A stamp is recognised by its whole shape (letters 60-100 px tall on a preview, one colour and
one opacity pattern across them), which the matte head's 24 px view can't take in. The finder is
a U-Net over the whole picture, reduced so that its longer side is at most VIEW px (previews are
seen at their own size); its deepest level sees the picture whole and adds a global summary (the
stamp's colour and opacity are the same everywhere). It returns opacity and colour at its input
size; core/blind.py brings them to the picture's size and decides whether to trust them.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

VIEW = 512  # px: pictures with a longer side are reduced to this before the finder sees them
DEPTH = 4  # levels; the input is padded to a multiple of 2**(DEPTH-1)


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))


class StampFinder(nn.Module):
    architecture = "stamp-finder"

    def __init__(self, channels=16):
        super().__init__()
        ch = [channels * 2 ** k for k in range(DEPTH)]
        self.config = dict(channels=channels)
        self.enc = nn.ModuleList([_block(3, ch[0])] + [_block(ch[k - 1], ch[k]) for k in range(1, DEPTH)])
        self.down = nn.ModuleList([nn.Conv2d(ch[k], ch[k], 2, stride=2) for k in range(DEPTH - 1)])
        self.glob = nn.Linear(ch[-1], ch[-1])  # the whole picture's summary, added everywhere
        self.dec = nn.ModuleList([_block(ch[k + 1] + ch[k], ch[k]) for k in range(DEPTH - 1)])
        self.out = nn.Conv2d(ch[0], 4, 3, padding=1)

    def forward(self, x):
        """N x 3 x H x W in [0, 1] -> (opacity N x 1 x H x W, colour N x 3 x H x W)."""
        h, w = x.shape[-2:]
        m = 2 ** (DEPTH - 1)
        x = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate")
        skips = []
        for k, enc in enumerate(self.enc):
            x = enc(x)
            if k < DEPTH - 1:
                skips.append(x)
                x = F.leaky_relu(self.down[k](x), 0.1)
        x = x + self.glob(x.mean((2, 3)))[..., None, None]
        for k in reversed(range(DEPTH - 1)):
            x = F.interpolate(x, size=skips[k].shape[-2:], mode="bilinear", align_corners=False)
            x = self.dec[k](torch.cat([x, skips[k]], 1))
        o = self.out(x)[..., :h, :w]
        return torch.sigmoid(o[:, :1] - 2.0), torch.sigmoid(o[:, 1:])  # starts near "no watermark"


def view_size(width, height, view=VIEW):
    """(w, h) the finder sees a picture at: its own size up to `view` px on the longer side."""
    s = min(1.0, view / max(width, height))
    return max(1, round(width * s)), max(1, round(height * s))
