"""Measure a watermark shared by a set of pictures (multi-image method, Dekel et al., CVPR 2017).

Every picture is J_k = a*W + (1-a)*I_k with the same opacity a and colour W. Three steps:
1. The median over the set of the pictures' gradients keeps the watermark's edges and drops
   the pictures' own (they differ from picture to picture); a Poisson reconstruction of that
   median gradient field gives the matted watermark and, from it, where the watermark is.
2. Pictures whose gradients don't follow the watermark's edges are set aside: they don't carry
   it (a few such pictures in a folder are common).
3. Opacity and colour are refined jointly over the set: the recovered pictures
   I_k = (J_k - a*W)/(1-a) must be natural, i.e. neighbouring pixels agree in every picture
   except where the picture itself has an edge (a robust loss, then a redescending one that lets
   such pairs go), with a piecewise-smooth a and W.
   Where every picture shows the same thing (a studio's frame), the stamp measured beside it is
   continued a few pixels in, never stronger than beside it; and each connected part of what
   was measured is kept only if removing it makes (nearly) every picture smoother along its edges.
"""
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.ndimage as ndi
import torch

from . import deblock
from .blend import invert, stamp
from .defaults import MIN_PICTURES
from .errors import KireiError
from .jpeg_traces import looks_like_jpeg
from .profile import Profile

MIN_CONTOUR_PIXELS = 30  # smaller connected edge specks in the median are the pictures' own
BACKGROUND_SIGMA = 16.0  # pixels: wider than a stamp's strokes, narrower than the drift of a reconstruction
MAX_HOLE = 0.03  # the largest inside of a letter or logo that is filled, as a share of the picture


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


SHARED_TOL = 0.03  # spread over the whole set below which every picture shows the same thing


def repeat_weights(stack, radius=1, tol=0.012, grow=3):
    """Per picture and pixel (N x H x W), 1 / how many pictures of the set show the same thing there.

    Preview sets repeat content: a character sprite in the same place in most pictures, a shared
    background, a frame. Counted once per copy, repeated content outvotes the pictures that differ
    and looks like the stamp (which is the one thing every picture shares). A stamp is
    semi-transparent, so over different pictures it never makes them identical: pictures that are
    locally identical (mean difference below `tol` over a (2r+1)^2 window) are one witness, not many.
    The identical area is grown by `grow` pixels: an opaque sprite's outline, over backgrounds that
    differ, is the sprite's too.
    """
    n = len(stack)
    count = np.ones(stack.shape[:3], np.float32)
    for k in range(n):
        for m in range(k + 1, n):
            d = ndi.uniform_filter(np.abs(stack[k] - stack[m]).mean(-1), 2 * radius + 1, mode="nearest")
            same = ndi.maximum_filter(d < tol, 2 * grow + 1)
            count[k] += same
            count[m] += same
    # content every picture shares (a frame, a logo) is one witness even where JPEG's ringing, from
    # the different pictures beside it, keeps pairs of pictures from looking identical. The spread
    # is over what differs, each copy counted as its share of one: a majority of copies (8 pictures
    # of one sprite) must not make the few pictures that differ look shared too
    w = 1.0 / count
    mean = (w[..., None] * stack).sum(0) / w.sum(0)[..., None]
    spread = np.sqrt((w[..., None] * (stack - mean) ** 2).sum(0) / w.sum(0)[..., None]).mean(-1)
    spread = ndi.uniform_filter(spread, 2 * radius + 1, mode="nearest")
    count[:, ndi.maximum_filter(spread < SHARED_TOL, 2 * grow + 1)] = n
    return 1.0 / count


def weighted_median(values, weights):
    """The median over axis 0 of values (N x H x W x C) where each entry counts weights (N x H x W)."""
    order = np.argsort(values, axis=0)
    v = np.take_along_axis(values, order, axis=0)
    w = np.take_along_axis(np.broadcast_to(weights[..., None], values.shape), order, axis=0)
    cw = np.cumsum(w, axis=0)
    pick = (cw >= 0.5 * cw[-1:]).argmax(axis=0)[None]
    return np.take_along_axis(v, pick, axis=0)[0]


PRESENCE = 0.7  # an edge of the stamp shows in (nearly) every picture; a recurring sprite's, in some


def median_gradients(stack, weights):
    """Each picture's gradients (N x H x W x 3, twice), their median over the set (each picture
    counting `weights`, N x H x W), and its strong edges: strong in the median, and present in
    at least PRESENCE of the (weighted) pictures."""
    gx, gy = _gradients(stack)
    mx, my = weighted_median(gx, weights), weighted_median(gy, weights)
    mag = np.sqrt((mx ** 2 + my ** 2).sum(-1))
    # noise floor from the set itself: most pixels carry no watermark edge (but a large stamp on a
    # small picture may have edges at more than a tenth of them: then the median's noise decides)
    floor = max(min(float(np.percentile(mag, 90)) * 2.0, max(4.0 * float(np.percentile(mag, 50)), 0.04)), 0.01)
    each = np.sqrt((gx ** 2 + gy ** 2).sum(-1))  # N x H x W
    presence = (weights * (each > 0.3 * mag)).sum(0) / weights.sum(0)
    return gx, gy, mx, my, (mag > floor) & (presence >= PRESENCE)


def carries_watermark(gx, gy, mx, my, edges):
    """Which pictures follow the watermark's edges: cosine agreement with the median, vs the set's."""
    if edges.sum() < 10:
        return np.ones(len(gx), bool)
    ref = np.concatenate([mx[edges].ravel(), my[edges].ravel()])
    scores = []
    for k in range(len(gx)):
        v = np.concatenate([gx[k][edges].ravel(), gy[k][edges].ravel()])
        scores.append(float(np.dot(v, ref) / (np.linalg.norm(v) * np.linalg.norm(ref) + 1e-12)))
    scores = np.array(scores)
    med = np.median(scores)
    return scores > min(0.5 * med, med - 0.2)


def watermark_support(mx, my, edges, witnesses):
    """Pixels that may carry the watermark: around its contours, and inside them.

    A watermark's edges are long connected contours; the pictures' own structure, where a few
    of them happen to agree, leaves scattered specks in the median, which are dropped. The
    Poisson reconstruction of the median gradients on the edges is the matted watermark; where
    it stands clearly off the background it marks the watermark too (flat insides of letters
    and logos whose outline alone wouldn't enclose them).
    """
    # where every picture shows the same thing (witnesses: how many differ; a studio's frame or
    # logo) a semi-transparent stamp can't be told from the picture: the support stops there (a
    # letter that crosses it is continued from beside it: _continued), and a frame's edges must not
    # enclose the picture as a stamp's would
    shared = witnesses < MIN_PICTURES
    edges = edges & ~_box_dilate(shared, 2)
    labels, n = ndi.label(edges, structure=np.ones((3, 3)))
    sizes = ndi.sum(edges, labels, index=np.arange(1, n + 1))
    contours = np.isin(labels, 1 + np.flatnonzero(sizes >= MIN_CONTOUR_PIXELS))
    matted = poisson_reconstruct(mx * edges[..., None], my * edges[..., None])
    # the reconstruction drifts slowly where the median kept some of the pictures' own (non-integrable)
    # edges: the watermark stands off its local background, not off one level for the whole frame
    away = (~_box_dilate(edges, 3)).astype(np.float32)
    background = (ndi.gaussian_filter(matted * away[..., None], (BACKGROUND_SIGMA, BACKGROUND_SIGMA, 0))
                  / np.maximum(ndi.gaussian_filter(away, BACKGROUND_SIGMA), 1e-3)[..., None])
    strong = np.abs(matted - background).max(-1) > 0.05
    found = _box_dilate(contours | strong, 2)
    # the insides of letters and logos are holes in their outlines; a hole the size of much of the
    # picture is not a letter but a region enclosed by the pictures' own edges where they joined up
    holes, n = ndi.label(ndi.binary_fill_holes(found) & ~found)
    sizes = ndi.sum(holes > 0, holes, index=np.arange(1, n + 1))
    small = np.isin(holes, 1 + np.flatnonzero(sizes <= MAX_HOLE * found.size))
    return _box_dilate(found | small, 2) & ~shared


def _charbonnier(x, eps=1e-3):
    """sqrt(x^2 + eps^2): a smooth |x|. (hypot: one fused operation, about a third of the
    refinement's time less than squaring, adding and taking the root.)"""
    return torch.hypot(x, torch.tensor(eps, dtype=x.dtype))


# px: pixels this far apart along a row or column are compared too. Each such pair holds the same
# opacity and colour to another picture of the set's noise: the public set's profile from JPEGs,
# with 2, is 0.05 dB nearer the true one at x2 (3: 0.01 more, for half as many pairs again)
PAIR_REACH = 2


def _neighbour_pairs(support):
    """Index pairs (p, q) of pixels up to PAIR_REACH apart along a row or a column, over a flattened
    H x W grid, that touch the support."""
    h, w = support.shape
    idx = np.arange(h * w).reshape(h, w)
    pairs = []
    for d in range(1, PAIR_REACH + 1):
        for p, q in ((idx[:, d:], idx[:, :-d]), (idx[d:, :], idx[:-d, :])):
            p, q = p.ravel(), q.ravel()
            touch = support.ravel()[p] | support.ravel()[q]
            pairs.append(np.stack([p[touch], q[touch]]))
    return torch.from_numpy(np.concatenate(pairs, axis=1))


SMOOTH_A, SMOOTH_W, SPARSE = 0.04, 0.03, 0.001
# A stamp's opacity and colour change at its own edges, which the median gradients find; elsewhere
# they are smoothed this many times more strongly, so that the pictures' own edges, where few
# pictures differ, don't print into them
OFF_EDGE_SMOOTHING = 11.0
COARSE_LEVELS = 1  # the fields also get corrections from grids 2x (4x, ...) coarser: see _refine


def _pair_residuals(jp, jq, ap, aq, wp, wq):
    """How far neighbours p, q of each recovered picture disagree, in J's units (N x 3 x pairs).

    With s = 1-a and r = J - a*W = s*I, neighbours agree when r_p = (s_p/s_q) r_q. Taken in J's
    units (not I's), inside a region of constant opacity it doesn't depend on s at all, so nothing
    pulls the opacity down or up there; the watermark's edges, seen through many different
    pictures, fix it.
    """
    sp, sq = 1.0 - ap, 1.0 - aq
    return (jp - ap * wp) - sp / sq * (jq - aq * wq)


def _objective(jp, jq, ap, aq, wp, wq, weight, smooth, penalty=_charbonnier):
    """Robust disagreement of neighbouring pixels in the recovered pictures (_pair_residuals, each
    counted by `penalty`), plus regularisers."""
    per = penalty(_pair_residuals(jp, jq, ap, aq, wp, wq))
    # each picture's pairs count its repeat weight (a sprite shown in 8 pictures is one witness)
    # both directions: rq - (sq/sp) rp = -(sq/sp) (rp - (sp/sq) rq), so one residual, weighted, is both
    loss = (per * weight).sum(dim=(0, 1)).mul(1.0 + (1.0 - aq) / (1.0 - ap)).sum() / (weight.sum() * per.shape[1])
    # piecewise-smooth opacity and colour (colour only matters where there is opacity), each pair
    # as strongly as `smooth` says
    loss = (loss + SMOOTH_A * (smooth * _charbonnier(ap - aq)).mean()
            + SMOOTH_W * (smooth * ap * _charbonnier(wp - wq)).mean())
    return loss + SPARSE * (ap.mean() + aq.mean())  # no evidence -> no watermark


# The robust loss's second pass: a pair where a picture has an edge of its own (a residual far
# above the noise) should stop pulling at the stamp, where |x| still pulls with constant force.
# A redescending (Cauchy) loss does that, started from the convex one's minimum (its own would be
# a poor start); its scale follows the set's noise, REDESCEND_SCALE times the median residual
# (JPEG's leftovers after cleaning), never below REDESCEND_FLOOR, about 8-bit rounding's reach
# between two pixels (flat drawn pictures have a median of 0: a smaller scale takes the faint
# stamp's own edges for outliers). Public set, diagonal stamp, x2: from PNGs 39.21 -> 39.41 dB
# (the true profile gives 39.48), from JPEGs 36.26 -> 36.34 (one view).
REDESCEND_SCALE, REDESCEND_FLOOR = 4.0, 0.005
# ... only where at least this many pictures differ (repeat_weights): where fewer do (a shared
# background, with a character over it in one or two pictures), theirs are the only evidence that
# the shared content's edges are not the stamp's, and a redescending loss would drop them as
# outliers (hard sets: a speck of 82 px and 0.1-0.4 dB lost; with 6, a sprite shown in 8 of 12
# pictures, 5 witnesses, loses the pass's gain)
REDESCEND_WITNESSES = 3
REDESCEND_SHARE = 0.5  # its steps, as a share of the first pass's
REDESCEND_LR = 0.05


def _cauchy(scale):
    return lambda x: scale * torch.log1p((x / scale) ** 2)


MAX_OPACITY = 0.95  # measured opacity stays below this: inverting divides by 1 - a
REFINE_STEPS = 300  # of the convex pass (then REDESCEND_SHARE of it): 400 or 800 gave the same profile, 200 a worse one


def _refine(stack, weights, support, edges, steps, max_lr=0.3, progress=None, ceiling=None, start=None):
    """Joint robust refinement of opacity and colour over the set (step 3 of the module doc).

    Only the support's pixels are unknowns (opacity is 0 elsewhere), and only the neighbour
    pairs that touch them are evaluated: the cost follows the watermark's area, not the picture's.
    Pairs that touch the stamp's edges (H x W bool) are smoothed less (OFF_EDGE_SMOOTHING).
    Two passes: `steps` with the convex robust loss, then REDESCEND_SHARE as many with the
    redescending one, where enough pictures differ (REDESCEND_*).

    Each field is a per-pixel part plus bilinear corrections from coarser grids: under strong
    smoothing, Adam's per-pixel steps spread a correction across a letter only slowly; the
    coarse grids move a whole area at once (a preconditioner: the same minimum, reached sooner).
    ceiling: the highest opacity each pixel may take (H x W; MAX_OPACITY where None).
    start: (opacity H x W, colour H x W x 3) measured before, to go on from.
    """
    torch.manual_seed(0)
    n, h, w, _ = stack.shape
    inside = torch.from_numpy(np.flatnonzero(support))
    pairs = _neighbour_pairs(support)
    slot = torch.full((h * w,), len(inside), dtype=torch.long)  # pixels outside -> a fixed zero slot
    slot[inside] = torch.arange(len(inside))
    sp_, sq_ = slot[pairs[0]], slot[pairs[1]]
    j = torch.from_numpy(stack.reshape(n, h * w, 3)).permute(0, 2, 1)  # N,3,HW
    jp, jq = j[:, :, pairs[0]], j[:, :, pairs[1]]
    wk = torch.from_numpy(weights.reshape(n, h * w))
    weight = torch.minimum(wk[:, pairs[0]], wk[:, pairs[1]])[:, None, :]  # N,1,pairs
    e = torch.from_numpy(edges.ravel())
    smooth = torch.where(e[pairs[0]] | e[pairs[1]], 1.0, OFF_EDGE_SMOOTHING)
    top = (torch.full((len(inside),), MAX_OPACITY) if ceiling is None
           else torch.from_numpy(ceiling.ravel()[inside.numpy()].astype(np.float32)))
    ua = torch.full((len(inside),), -2.0)
    uw = torch.zeros((3, len(inside)))
    if start is not None:  # go on from the fields measured before, where they had opacity
        a0 = torch.from_numpy(start[0].ravel()[inside.numpy()])
        w0 = torch.from_numpy(start[1].reshape(-1, 3)[inside.numpy()].T)
        was = a0 > 0
        ua[was] = torch.logit((a0 / top).clamp(1e-3, 1 - 1e-3))[was]
        uw[:, was] = torch.logit(w0.clamp(1e-3, 1 - 1e-3))[:, was]
    ua.requires_grad_(True)
    uw.requires_grad_(True)
    coarse = [torch.zeros((1, 4, -(-h // 2 ** k), -(-w // 2 ** k)), requires_grad=True)
              for k in range(1, COARSE_LEVELS + 1)]

    def fields():
        # a = top*sigmoid(ua + coarse) on the support, 0 outside; W = sigmoid(uw + coarse)
        va, vw = ua, uw
        for c in coarse:
            up = torch.nn.functional.interpolate(c, size=(h, w), mode="bilinear", align_corners=False)
            up = up.reshape(4, h * w)[:, inside]  # opacity, then colour, on the support
            va, vw = va + up[0], vw + up[1:]
        a = torch.cat([top * torch.sigmoid(va), torch.zeros(1)])
        wc = torch.cat([torch.sigmoid(vw), torch.ones(3, 1)], dim=1)
        return a, wc

    def descend(opt, sched, n, penalty, done):
        for step in range(n):
            a, wc = fields()
            loss = _objective(jp, jq, a[sp_], a[sq_], wc[:, sp_], wc[:, sq_], weight, smooth, penalty)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if progress and (done + step) % 20 == 19:
                progress((done + step + 1) / (steps + second))

    second = max(int(steps * REDESCEND_SHARE), 1)
    params = [ua, uw] + coarse
    opt = torch.optim.Adam(params, lr=max_lr)
    descend(opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps, pct_start=0.15),
            steps, _charbonnier, 0)
    with torch.no_grad():
        a, wc = fields()
        scale = REDESCEND_SCALE * float(_pair_residuals(jp, jq, a[sp_], a[sq_], wc[:, sp_], wc[:, sq_]).abs().median())
    wit = torch.from_numpy(weights.sum(0).ravel())
    many = torch.minimum(wit[pairs[0]], wit[pairs[1]]) >= REDESCEND_WITNESSES
    cauchy = _cauchy(max(scale, REDESCEND_FLOOR))
    lr = min(REDESCEND_LR, max_lr)
    opt = torch.optim.Adam(params, lr=lr)
    descend(opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=second, pct_start=0.15),
            second, lambda x: torch.where(many, cauchy(x), _charbonnier(x)), steps)
    with torch.no_grad():
        a, wc = fields()
    alpha = np.zeros(h * w, np.float32)
    color = np.ones((h * w, 3), np.float32)
    alpha[inside.numpy()] = a[:-1].numpy()
    color[inside.numpy()] = wc[:, :-1].T.numpy()
    return alpha.reshape(h, w), color.reshape(h, w, 3)


# what makes a measured profile implausible (module doc of `Estimate`)
FOUND_OPACITY = 0.05  # opacity from which a pixel counts as stamped
FOUND_AREA = 0.003  # less of the picture than this is specks of the pictures' own edges, not a stamp
MAX_AREA = 0.5  # studios' stamps cover a band of the picture, not most of it
OPAQUE, MAX_OPAQUE_AREA = 0.85, 0.02  # a stamp lets the picture through; a sprite taken for one doesn't
MIN_AGREEMENT = 0.75  # the share of the pictures that removing it must make more natural
MIN_GAIN = 0.03  # how much smoother (median over the pictures) the stamp's edges must become: else none was found
CLEAR_GAIN = 0.1  # below this median gain a find is faint: it must also hold on pictures it wasn't measured from
# a picture set aside whose gain, with the profile measured without it, is above this carries the
# stamp after all: JPEG's cleaning blurs a faint stamp's edges, so that removing it, even with the
# true profile, leaves them up to 0.24 rougher; a picture without the stamp gets its ghost (-0.4 to
# -1.2 on the hard sets' JPEGs)
CARRIES_AFTER_ALL = -0.25


def stamp_extent(alpha):
    """Where a profile's stamp is, as estimate reports it: ((x0, y0, x1, y1) of the pixels with opacity
    >= FOUND_OPACITY, x1 and y1 exclusive, their mean opacity); (None, 0.0) where there are none."""
    ys, xs = np.nonzero(alpha >= FOUND_OPACITY)
    if not len(xs):
        return None, 0.0
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), float(alpha[ys, xs].mean())


def roughness_map(x):
    """Gradient magnitude of a picture (H x W x 3), per pixel: natural pictures are smooth almost
    everywhere; a stamp's edges, or a wrong profile's ghosts, add roughness."""
    gx, gy = _gradients(x)
    return np.sqrt((gx ** 2 + gy ** 2).sum(-1) + 1e-6)


def _roughness(x, region):
    return float(roughness_map(x)[region].mean())


def stamp_edges(alpha):
    """Where a profile's opacity changes (H x W bool): where removing it is judged."""
    ga, gb = _gradients(alpha[..., None])
    return _box_dilate(np.hypot(ga[..., 0], gb[..., 0]) > 0.02, 1)


@dataclass
class Estimate:
    """What estimation found, and whether it can be trusted.

    A profile is implausible when it covers most of the frame, is nearly opaque over an area
    (repeated opaque content taken for a stamp), or when removing it makes the pictures rougher
    than they are stamped in more than a quarter of them (the check of agreement between the
    pictures: a right profile makes every picture that carries the stamp more natural).
    """
    profile: Profile
    carries: np.ndarray  # bool per picture: it carries the stamp (measured from it, or CARRIES_AFTER_ALL)
    gains: np.ndarray  # per picture measured from: how much smoother removal made it (relative; > 0 better)
    problem: str = ""  # why the profile must not be used; "" when it is plausible
    held_out: float = None  # for a faint find, held_out_gain; None: not needed

    @property
    def found(self):
        """Something that looks like a stamp: enough of it, and removing it clearly smooths its edges
        in most pictures (what the pictures' own edges, taken for a stamp where there is none, don't),
        and, if faint, also in pictures it wasn't measured from."""
        return (len(self.gains) > 0 and float(np.median(self.gains)) >= MIN_GAIN
                and (self.held_out is None or self.held_out > 0))

    @property
    def usable(self):
        return self.found and not self.problem

    @property
    def confidence(self):
        """0..1: the share of pictures that removal made more natural, times how clearly (a 20%
        smoother stamp region is clear)."""
        if not self.found or not len(self.gains):
            return 0.0
        return float(np.mean(self.gains > 0) * np.clip(np.median(self.gains) / 0.2, 0.0, 1.0))

    @property
    def bbox(self):
        return stamp_extent(self.profile.alpha)[0]

    @property
    def mean_opacity(self):
        return stamp_extent(self.profile.alpha)[1] if self.found else 0.0

    def summary(self):
        """One line for the user."""
        n = len(self.carries)
        if not self.found:
            if self.held_out is not None and self.held_out <= 0:
                why = " (a faint one, measured from half of them, made the others rougher)"
            else:
                why = f" (what looked like one {self.problem})" if self.problem else ""
            return f"no watermark shared by the {n} pictures was found{why}"
        x0, y0, x1, y1 = self.bbox
        line = (f"watermark on {int(self.carries.sum())} of {n} pictures, at x {x0}-{x1}, y {y0}-{y1} "
                f"({100 * (self.profile.alpha >= FOUND_OPACITY).mean():.0f}% of the picture), mean opacity "
                f"{self.mean_opacity:.2f}, confidence {self.confidence:.2f}")
        return line + (f"; implausible: it {self.problem}" if self.problem else "")


def removal_gains(stack, profile):
    """Per picture (N x H x W x 3): how much smoother removing the profile makes it along the
    profile's edges, relative (> 0: smoother; a picture without the stamp gets its ghost: < 0).

    A stamp's inside is judged by its edges: within it, a right profile restores the picture's
    contrast (rougher than stamped where the stamp dimmed it); across its edges it removes a step.
    """
    a = profile.alpha
    region = stamp_edges(a)
    if not region.any():  # nothing to remove changes nothing
        return np.zeros(len(stack))
    return np.array([1.0 - _roughness(np.clip(invert(j, a, profile.color), 0, 1), region) / _roughness(j, region)
                     for j in stack])


def check_estimate(stack, profile, carries, gains=None, held_out=None):
    """The Estimate of a measured profile over the pictures it was measured from (N x H x W x 3);
    gains: removal_gains of the carrying pictures, if already known; held_out: see Estimate."""
    a = profile.alpha
    on = a >= FOUND_OPACITY
    if on.mean() < FOUND_AREA:
        return Estimate(profile, carries, np.zeros(0))
    gains = removal_gains(stack[carries], profile) if gains is None else gains
    problem = ""  # what is wrong with it, said of "it"
    if on.mean() > MAX_AREA:
        problem = f"covers {100 * on.mean():.0f}% of the picture"
    elif (a >= OPAQUE).mean() > MAX_OPAQUE_AREA:
        problem = f"is nearly opaque over {100 * (a >= OPAQUE).mean():.0f}% of the picture"
    elif np.mean(gains > 0) < MIN_AGREEMENT and np.median(gains) >= MIN_GAIN:  # (else: none found)
        problem = f"makes {int((gains <= 0).sum())} of the {len(gains)} pictures that carry it less natural when removed"
    return Estimate(profile, carries, gains, problem, held_out)


def preview(profile, square=8):
    """The profile over a grey checkerboard (H x W x 3): how a user sees what was measured."""
    h, w = profile.alpha.shape
    yy, xx = np.mgrid[:h, :w]
    board = np.where((yy // square + xx // square) % 2, 0.6, 0.4).astype(np.float32)
    return stamp(np.repeat(board[..., None], 3, -1), profile.alpha, profile.color)


def estimate_profile(pictures, steps=REFINE_STEPS, progress=None, jpeg=None, device="cpu"):
    """The Estimate (profile, which pictures carry it, checks) from RGB float32 pictures (H x W x 3, one size).

    jpeg: whether the pictures went through JPEG (None: JPEG's traces in the first two decide);
    JPEGs are measured after their blocks and ringing are cleaned (core/deblock.py), when the
    model that does it is installed. progress, if given, is called with the fraction done.
    """
    if len(pictures) < MIN_PICTURES:
        raise KireiError(f"estimating a watermark needs at least {MIN_PICTURES} pictures that carry it, "
                         f"got {len(pictures)}")
    shapes = {p.shape[:2] for p in pictures}
    if len(shapes) != 1:
        raise KireiError("the pictures to estimate from must all have the same size, got "
                         + ", ".join(f"{w}x{h}" for h, w in sorted(shapes)))
    part = (lambda lo, hi: (lambda f: progress(lo + (hi - lo) * f))) if progress else (lambda lo, hi: None)
    pictures = [p[..., :3] for p in pictures]
    if jpeg is None:
        jpeg = all(looks_like_jpeg(p) for p in pictures[:2])
    start = 0.0
    if jpeg and deblock.available():
        start = 0.4
        pictures = deblock.deblocked(pictures, device, part(0.0, start))
    stack = np.stack(pictures).astype(np.float32)
    weights = repeat_weights(stack)
    keep = carries_watermark(*median_gradients(stack, weights))
    if keep.sum() < MIN_PICTURES:
        keep[:] = True
    profile = _measure(stack[keep], steps, part(start, start + 0.6 * (1 - start)))
    gains = removal_gains(stack, profile)
    # a picture that removal makes rougher along the stamp's edges doesn't carry it (a faint stamp's
    # edges may not have told at first): measure again without it
    aside = keep & (gains <= 0)
    if aside.any() and np.median(gains[keep]) >= MIN_GAIN and (keep & ~aside).sum() >= MIN_PICTURES:
        keep &= ~aside
        profile = _measure(stack[keep], steps, part(start + 0.6 * (1 - start), 1.0))
        gains = removal_gains(stack, profile)
    held_out = None
    if MIN_GAIN <= np.median(gains[keep]) < CLEAR_GAIN and keep.sum() >= 2 * MIN_PICTURES:
        held_out = held_out_gain(stack[keep], steps)
    found = check_estimate(stack, profile, keep, gains[keep], held_out)
    found.carries = keep | (gains > CARRIES_AFTER_ALL)  # judged by the pictures it was measured from
    return found


def held_out_gain(stack, steps):
    """Median gain (removal_gains) on every other picture of the profile measured from the rest.
    A stamp measured from some pictures smooths the others too; a profile made of some pictures'
    own edges, which a faint find can be, makes the others rougher."""
    return float(np.median(removal_gains(stack[1::2], _measure(stack[0::2], steps, None))))


def _measure(stack, steps, progress):
    """The profile measured from pictures that all carry it (N x H x W x 3)."""
    weights = repeat_weights(stack)
    witnesses = weights.sum(0)
    grads = median_gradients(stack, weights)
    support = watermark_support(*grads[2:], witnesses=witnesses)
    edges = grads[4]
    del grads
    alpha, color = _refine(stack, weights, support, edges, steps, progress=progress)
    more, ceiling = _continued(alpha, support, witnesses)
    if more.any():  # measured again with the stamp going on into what every picture shares
        alpha, color = _refine(stack, weights, support | more, edges, max(steps // 4, 1), max_lr=0.1,
                               ceiling=ceiling, start=(alpha, color))
    alpha = _agreed(stack, weights, alpha, color)
    alpha[alpha < 0.01] = 0.0
    return Profile(alpha=alpha.astype(np.float32), color=color.astype(np.float32))


CONTINUED_REACH = 5  # px: how far a measured stamp goes on into content that every picture shares


def _continued(alpha, support, witnesses):
    """Where a stamp measured beside content that every picture shares goes on into it (H x W
    bool), and the highest opacity it may have there (H x W): that of the nearest measured pixel.

    A frame or logo shared by all pictures is one witness: a stamp's letter that crosses it
    can't be measured there, and left out it stays printed on every picture. The set's
    naturalness objective still holds there (for that one picture), but alone it would also
    "remove" the frame's own edges: so the letter is only continued from where it was measured,
    never stronger, and not where nothing beside was stamped.
    """
    more = (witnesses < MIN_PICTURES) & _box_dilate(support, CONTINUED_REACH) & ~support
    if not more.any():
        return more, None
    _, (iy, ix) = ndi.distance_transform_edt(~support, return_indices=True)
    return more, np.where(support, MAX_OPACITY, alpha[iy, ix])


def stamp_parts(alpha, soft_edge=2):
    """Each connected part of a stamp with opacity >= FOUND_OPACITY (a letter, a logo, a false
    find): (its box, grown by soft_edge px; the part's mask in the box; the same grown by its
    soft edge, where the opacity fades out below FOUND_OPACITY)."""
    labels, _ = ndi.label(alpha >= FOUND_OPACITY, structure=np.ones((3, 3)))
    for k, box in enumerate(ndi.find_objects(labels), start=1):
        box = tuple(slice(max(b.start - soft_edge, 0), b.stop + soft_edge) for b in box)
        part = labels[box] == k
        yield box, part, ndi.binary_dilation(part, iterations=soft_edge)


MIN_PART_PIXELS = 24  # parts of a stamp smaller than this are too small to judge alone (a dot, a speck)
SMALL_PART_REACH = 4  # px: how near a judged part a small one must be to go with it


def judged_parts(alpha, judge):
    """Where the parts of a stamp (stamp_parts) that `judge(box, core, part)` keeps lie (H x W bool).

    Parts smaller than MIN_PART_PIXELS are not judged alone: a few pixels' removal can't say
    whether they are a stamp's. They go with the judged parts beside them (an i's dot with its
    stroke); alone, they are specks of the pictures' own edges that too few pictures told apart.
    """
    kept = np.zeros(alpha.shape, bool)
    small = np.zeros(alpha.shape, bool)
    for box, core, part in stamp_parts(alpha):
        if core.sum() < MIN_PART_PIXELS:
            small[box] |= core
        elif judge(box, core, part):
            kept[box] |= part
    return kept | (small & ndi.binary_dilation(kept, iterations=SMALL_PART_REACH))


# px: a part of the stamp that lies this near the picture's edge only is not one: there each pixel
# has neighbours on one side only, and the naturalness of the recovered pictures can't tell a stamp
# from the pictures' own edge along the border (an outline that most of them end on)
BORDER = 3


def _agreed(stack, weights, alpha, color):
    """alpha without the parts that the pictures don't agree on.

    A stamp's part, removed, makes every picture that carries the stamp smoother along its edges.
    Where few pictures differ (a shared background with one character over it), a part can be
    made of the shared content's own edges: removing it smooths the copies of the background
    but prints a ghost on the other pictures. Each group of copies votes once (weights); a part
    stays where MIN_AGREEMENT of the votes of the pictures that carry the stamp are for it.
    """
    carrying = removal_gains(stack, Profile(alpha=alpha, color=color)) > 0
    if carrying.sum() >= MIN_PICTURES:  # pictures without the stamp would vote against every part
        stack, weights = stack[carrying], weights[carrying]
    inner = np.zeros(alpha.shape, bool)
    inner[BORDER:-BORDER, BORDER:-BORDER] = True

    def agreed(box, core, part):
        if not inner[box][core].any():
            return False  # a thin band along the picture's edge: see BORDER
        a = np.where(part, alpha[box], 0.0)
        if not stamp_edges(a).any():
            return False
        gains = removal_gains(stack[(slice(None),) + box], Profile(alpha=a, color=color[box]))
        votes = weights[(slice(None),) + box][:, part].mean(1)
        return (votes * (gains > 0)).sum() >= MIN_AGREEMENT * votes.sum()
    return np.where(judged_parts(alpha, agreed), alpha, 0.0)
