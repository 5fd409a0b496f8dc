"""Measure a watermark shared by a set of pictures (multi-image method, Dekel et al., CVPR 2017).

Every picture is J_k = a*W + (1-a)*I_k with the same opacity a and colour W. Three steps:
1. The median over the set of the pictures' gradients keeps the watermark's edges and drops
   the pictures' own (they differ from picture to picture); a Poisson reconstruction of that
   median gradient field gives the matted watermark and, from it, where the watermark is.
2. Pictures whose gradients don't follow the watermark's edges are set aside: they don't carry
   it (a few such pictures in a folder are common).
3. Opacity and colour are refined jointly over the set: the recovered pictures
   I_k = (J_k - a*W)/(1-a) must be natural, i.e. neighbouring pixels agree in every picture
   except where the picture itself has an edge (a robust loss), with a piecewise-smooth a and W.
"""
import numpy as np
import scipy.fft
import torch

from .errors import KireiError
from .profile import Profile

MIN_PICTURES = 2


def _gradients(x):
    """Forward differences along x and y, zero on the last column/row. x: (..., H, W, C)."""
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[..., :, :-1, :] = x[..., :, 1:, :] - x[..., :, :-1, :]
    gy[..., :-1, :, :] = x[..., 1:, :, :] - x[..., :-1, :, :]
    return gx, gy


def poisson_reconstruct(gx, gy):
    """The field whose forward differences best match (gx, gy) (H x W x C), with Neumann boundaries.

    Solved exactly with the discrete cosine transform: the Laplacian is diagonal in that basis.
    The constant of integration is left at zero mean.
    """
    h, w = gx.shape[:2]
    div = np.zeros_like(gx)
    div[:, 0] += gx[:, 0]
    div[:, 1:] += gx[:, 1:] - gx[:, :-1]
    div[0, :] += gy[0, :]
    div[1:, :] += gy[1:, :] - gy[:-1, :]
    d = scipy.fft.dctn(div, type=2, axes=(0, 1), norm="ortho")
    ky = 2.0 * np.cos(np.pi * np.arange(h) / h) - 2.0
    kx = 2.0 * np.cos(np.pi * np.arange(w) / w) - 2.0
    denom = (ky[:, None] + kx[None, :])[..., None]
    denom[0, 0] = 1.0
    d = d / denom
    d[0, 0] = 0.0
    return scipy.fft.idctn(d, type=2, axes=(0, 1), norm="ortho")


def _box_dilate(mask, radius):
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    t = torch.nn.functional.max_pool2d(t, 2 * radius + 1, stride=1, padding=radius)
    return t[0, 0].numpy() > 0


def watermark_edges(stack):
    """Median gradients over the set (H x W x 3 each) and an edge map of where they are strong."""
    gx, gy = _gradients(stack)
    mx, my = np.median(gx, axis=0), np.median(gy, axis=0)
    mag = np.sqrt((mx ** 2 + my ** 2).sum(-1))
    # noise floor from the pictures themselves: most pixels carry no watermark edge
    floor = max(float(np.percentile(mag, 90)) * 2.0, 0.01)
    return mx, my, mag > floor


def carries_watermark(stack, edges):
    """Which pictures follow the watermark's edges (robust z-score of their agreement)."""
    gx, gy = _gradients(stack)
    mx, my = np.median(gx, axis=0), np.median(gy, axis=0)
    if edges.sum() < 10:
        return np.ones(len(stack), bool)
    ref = np.concatenate([mx[edges].ravel(), my[edges].ravel()])
    scores = []
    for k in range(len(stack)):
        v = np.concatenate([gx[k][edges].ravel(), gy[k][edges].ravel()])
        scores.append(float(np.dot(v, ref) / (np.linalg.norm(v) * np.linalg.norm(ref) + 1e-12)))
    scores = np.array(scores)
    med = np.median(scores)
    return scores > min(0.5 * med, med - 0.2)


def _support(edges, shape):
    """Pixels that may carry the watermark: its edges, dilated, with the holes inside letters filled."""
    near = _box_dilate(edges, 3)
    # fill enclosed holes: flood the background from the border through pixels not near an edge
    import scipy.ndimage as ndi
    filled = ndi.binary_fill_holes(near)
    return _box_dilate(filled, 2)


def _refine(stack, support, steps, device="cpu"):
    """Joint robust refinement of opacity and colour over the set (step 3 of the module doc)."""
    torch.manual_seed(0)
    j = torch.from_numpy(stack).permute(0, 3, 1, 2).to(device)  # N,3,H,W
    m = torch.from_numpy(support.astype(np.float32)).to(device)[None, None]
    h, w = support.shape
    # parameters: a = 0.95*sigmoid(ua) inside the support, 0 outside; W = sigmoid(uw)
    ua = torch.full((1, 1, h, w), -2.0, device=device, requires_grad=True)
    uw = torch.zeros((1, 3, h, w), device=device, requires_grad=True)
    opt = torch.optim.Adam([ua, uw], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.15, total_steps=steps, pct_start=0.15)
    eps = 1e-3

    def fields():
        a = 0.95 * torch.sigmoid(ua) * m
        wc = torch.sigmoid(uw)
        return a, wc

    def charb(x):
        return torch.sqrt(x * x + eps * eps)

    for step in range(steps):
        a, wc = fields()
        s = 1.0 - a
        r = j - a * wc  # = s * I
        loss = 0.0
        for dim in (2, 3):
            n = r.shape[dim] - 1
            rp, rq = r.narrow(dim, 1, n), r.narrow(dim, 0, n)
            sp, sq = s.narrow(dim, 1, n), s.narrow(dim, 0, n)
            # residuals in J-space, both directions: unbiased in s inside flat-opacity regions
            loss = loss + charb(rp - sp / sq * rq).mean() + charb(rq - sq / sp * rp).mean()
        tv = (charb(a[..., 1:, :] - a[..., :-1, :]).mean() + charb(a[..., :, 1:] - a[..., :, :-1]).mean())
        tvw = ((a[..., 1:, :] * charb(wc[..., 1:, :] - wc[..., :-1, :])).mean()
               + (a[..., :, 1:] * charb(wc[..., :, 1:] - wc[..., :, :-1])).mean())
        total = loss + 0.02 * tv + 0.01 * tvw + 0.002 * a.mean()
        opt.zero_grad()
        total.backward()
        opt.step()
        sched.step()
    a, wc = fields()
    return a[0, 0].detach().cpu().numpy(), wc[0].permute(1, 2, 0).detach().cpu().numpy()


def estimate_profile(pictures, steps=400):
    """A watermark Profile from a list of RGB float32 pictures (H x W x 3, all the same size)."""
    if len(pictures) < MIN_PICTURES:
        raise KireiError(f"estimating a watermark needs at least {MIN_PICTURES} pictures that carry it, "
                         f"got {len(pictures)}")
    shapes = {p.shape[:2] for p in pictures}
    if len(shapes) != 1:
        raise KireiError("the pictures to estimate from must all have the same size, got "
                         + ", ".join(f"{w}x{h}" for h, w in sorted(shapes)))
    stack = np.stack([p[..., :3] for p in pictures]).astype(np.float32)
    _, _, edges = watermark_edges(stack)
    keep = carries_watermark(stack, edges)
    if keep.sum() >= MIN_PICTURES and not keep.all():
        stack = stack[keep]
        _, _, edges = watermark_edges(stack)
    support = _support(edges, stack.shape[1:3])
    alpha, color = _refine(stack, support, steps)
    alpha[alpha < 0.01] = 0.0
    return Profile(alpha=alpha.astype(np.float32), color=color.astype(np.float32)), keep
