"""One picture, no profile: find its watermark, check it, or leave the picture alone.

The stamp finder (core/models/finder.py) looks at the whole picture and says where a stamp's
opacity and colour are. Each connected part of what it found is then checked the way a measured
profile is (core/estimate.py): removing a stamp makes the picture smoother along the stamp's own
edges, while "removing" the picture's own text or line art makes them rougher. Only the parts
that pass are removed; with none, the picture is upscaled as it is and the user is told that no
watermark was found. So a picture without a stamp comes out as the clean upscale does.

Finding and checking happen at the finder's view (the picture reduced to VIEW px at most):
cheap and bounded for any size; the opacity and colour found are then brought to full size.
"""
from dataclasses import dataclass

import numpy as np

from .blend import invert
from .estimate import FOUND_AREA, FOUND_OPACITY, judged_parts, roughness_map, stamp_edges
from .profile import Profile

FINDER = "stamp-finder"  # core/weights/stamp-finder.safetensors
MIN_PART_GAIN = 0.4  # how much smoother a part's edges must get: one picture has no set to confirm it, and
# at 0.1-0.3 the finder's false finds on clean previews passed (0.4: none of the 14 public ones)
MAX_PART_CLIPPED, CLIP_MARGIN = 0.1, 0.03  # share of a part's pixels its removal may push out of range


@dataclass
class Found:
    profile: Profile = None  # what to remove; None: nothing (the picture is only upscaled)
    share: float = 0.0  # of the picture the removed stamp covers
    note: str = ""  # why nothing is removed, when nothing is

    def summary(self):
        """One line for the user."""
        if self.profile is None:
            return "no watermark found" + (f" ({self.note})" if self.note else "")
        return f"removed a watermark covering {100 * self.share:.0f}% of the picture"


def available():
    from .weights_io import available as installed
    return installed(FINDER)


def find_watermark(pixels, device="cpu"):
    """Found for one picture (H x W x C float32 in [0, 1], C = 1..4, alpha last when 2 or 4)."""
    if not available():
        return Found(note="the stamp finder is not installed")
    rgb = _rgb(pixels)
    view, alpha, colour = _find(rgb, device)
    kept = _checked(view, alpha, colour)
    if kept.mean() < FOUND_AREA:
        return Found()
    alpha = np.where(kept, alpha, 0.0).astype(np.float32)
    h, w = rgb.shape[:2]
    if alpha.shape != (h, w):
        alpha, colour = _resize(alpha[..., None], w, h)[..., 0], _resize(colour, w, h)
    alpha = np.clip(alpha, 0.0, 1.0)
    alpha[alpha < 0.01] = 0.0
    return Found(Profile(alpha=alpha, color=np.clip(colour, 0.0, 1.0).astype(np.float32)),
                 share=float((alpha >= FOUND_OPACITY).mean()))


def _rgb(pixels):
    c = pixels.shape[2]
    return np.repeat(pixels[..., :1], 3, axis=2) if c in (1, 2) else pixels[..., :3]


def _find(rgb, device):
    """(the picture at the finder's view, opacity, colour there)."""
    import torch
    import torch.nn.functional as F
    from .learned import model_for
    from .models.finder import view_size
    finder = model_for(torch.device(device), FINDER, restorer=False)
    h, w = rgb.shape[:2]
    vw, vh = view_size(w, h)
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()
    if (vw, vh) != (w, h):
        x = F.interpolate(x, size=(vh, vw), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    with torch.no_grad():
        a, c = finder(x.to(device))
    view = x[0].permute(1, 2, 0).numpy()
    return view, a[0, 0].float().cpu().numpy(), c[0].float().permute(1, 2, 0).cpu().numpy()


def _checked(view, alpha, colour):
    """The parts of what was found whose removal makes the picture more natural (bool mask).

    Each connected part (a letter, a logo, a false find) is judged on its own, so that the
    picture's own text or frame taken for a stamp beside a real one is not taken away with it.
    Parts too small to judge go with the judged parts beside them (estimate.judged_parts)."""
    rough = roughness_map(view)

    def natural(box, core, part):
        a = np.where(part, alpha[box], 0.0)
        edges = stamp_edges(a)
        back = invert(view[box], a, colour[box])
        # a true stamp inverts into the picture's range; the picture's own light text or balloon
        # taken for one is "removed" from white to beyond white
        clipped = ((back < -CLIP_MARGIN) | (back > 1 + CLIP_MARGIN)).any(-1)[part].mean()
        after = roughness_map(np.clip(back, 0.0, 1.0))
        return clipped <= MAX_PART_CLIPPED and \
            1.0 - after[edges].sum() / max(rough[box][edges].sum(), 1e-6) >= MIN_PART_GAIN
    return judged_parts(alpha, natural)


def _resize(x, width, height):
    import torch
    import torch.nn.functional as F
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
