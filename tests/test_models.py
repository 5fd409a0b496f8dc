"""core.models: waifu2x's weights, imported into our own definitions, compute what waifu2x computes;
bad ncnn files are refused clearly; the registry and the command line know the shipped models;
both models run every mode on every kind of picture; kirei-2's cross-faded tiles show no seam; a
region restores as it would inside the whole picture."""
import glob
import importlib.util
import os
import re
import struct
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from core import weights_io
from core.defaults import DEFAULT_TILE
from core.digest import file_sha256
from core.models import ARCHITECTURES, DEFAULT_MODEL, build
from core.models.import_waifu2x import SOURCES, import_model
from core.models.ncnn import load_into
from core.pipeline import Options, restore_pixels
from core.profile import Profile
from core.region import restore_region
from core.synth import anime_picture, text_watermark
from tests.conftest import ROOT, run_cli

SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
PEERS = os.path.join(SHARED, "peers")
SHIPPED = ("kirei-2", "kirei-fast")
CPU = torch.device("cpu")


def psnr(a, b, peak=1.0):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(peak ** 2 / max(mse, 1e-20))


def options(name, scale=2, **kw):
    return Options(scale=scale, method="learned", device="cpu", model=name, **kw)


def _load_file(name, path):
    """A module from a file (the peers and the scorer live outside the project)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))  # their own helpers sit beside them (ncnn_torch.py)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(os.path.dirname(path))
    return module


def _needs_peers():
    if not os.path.isdir(PEERS):
        pytest.skip(f"no {PEERS}: waifu2x's ncnn models and their runners (the shared peers) are not here")


# ------------------------------------------------------------------ the importer against waifu2x
# (peer runner file, how to load the variant: clean 2x, or the JPEG body's noise1)
PEER_RUNNERS = {
    "kirei-2": ("waifu2x_cunet/waifu2x_cunet.py", lambda m, jpeg: m.load("noise1" if jpeg else "scale2x")),
    "kirei-fast": ("waifu2x/waifu2x_upconv7.py", lambda m, jpeg: m.load(os.path.join(
        PEERS, "waifu2x", f"upconv_7_art_{'noise1_' if jpeg else ''}scale2.0x_model.bin"))),
}


@pytest.fixture(scope="module")
def eval_picture():
    """A real picture of the eval set, reduced to the project's 233x330 as the scorer does it."""
    _needs_peers()
    files = sorted(glob.glob(os.path.join(SHARED, "data", "eval", "*.png")))
    if not files:
        pytest.skip(f"no pictures in {SHARED}/data/eval")
    score = _load_file("kirei_shared_score", os.path.join(SHARED, "tools", "score.py"))
    with Image.open(files[0]) as im:
        return score.fit_hr(im).resize(score.LR_SIZE, Image.BICUBIC)


@pytest.mark.parametrize("jpeg", [False, True], ids=["clean", "jpeg-body"])
@pytest.mark.parametrize("name", SHIPPED)
def test_imported_bodies_compute_what_waifu2x_computes(eval_picture, name, jpeg):
    runner, load = PEER_RUNNERS[name]
    peer = _load_file(f"kirei_peer_{name.replace('-', '_')}", os.path.join(PEERS, runner))
    model, _ = import_model(name, PEERS)
    x = peer.pil_to_tensor(eval_picture)
    with torch.no_grad():
        ours, used = model(x, mode="none", scale=2, jpeg=jpeg)
        theirs = load(peer, jpeg).upscale(x)
    assert ours.shape == theirs.shape == (1, 3, 660, 466) and not used.any()
    a = np.asarray(peer.tensor_to_pil(ours.clamp(0, 1)), np.int16)
    b = np.asarray(peer.tensor_to_pil(theirs), np.int16)
    close = np.abs(a - b) <= 1  # 8-bit levels
    assert close.mean() > 0.9999, f"{(~close).sum()} of {close.size} values differ by more than one level"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_bodies_are_the_imported_waifu2x_ones(name):
    _needs_peers()
    rec = weights_io.describe(name)
    body, folder, _, _ = SOURCES[name]
    assert rec["config"]["body"] == body
    for part in ("body", "body_jpeg"):  # the record names the very files the bodies came from
        source = rec["starting_weights"][part]
        assert file_sha256(os.path.join(PEERS, folder, source["file"])) == source["sha256"], part
    trained = {s["stage"] for s in rec.get("stages", [])}
    if trained & {"joint", "jpeg"}:
        pytest.skip(f"{name}'s bodies were trained after their import ({', '.join(sorted(trained))})")
    imported, _ = import_model(name, PEERS)
    shipped = weights_io.load_model(name)
    want = imported.state_dict()
    bodies = [k for k in want if k.startswith(("body.", "body_jpeg."))]
    assert bodies
    for key in bodies:  # stage "stamp" trains a third body (body_stamp) and leaves these as imported
        assert torch.equal(shipped.state_dict()[key], want[key]), key
    if "front" not in trained:  # untrained front-end: its last layer is zero, so x1 is exact inversion
        assert not shipped.front.tail.weight.any() and not shipped.front.tail.bias.any()


# ------------------------------------------------------------------ ncnn files
class Tiny(torch.nn.Module):
    """One layer of each kind the reader copies."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.up = torch.nn.ConvTranspose2d(4, 3, 4, stride=2, padding=3)
        self.fc = torch.nn.Linear(3, 2)


def _write_ncnn(folder, model, fp16=False, drop_layer=False):
    """An ncnn .param/.bin pair holding `model`'s weights, written from the format's description
    (core/models/ncnn.py's docstring); returns (param, bin) paths."""
    layers = [("Convolution", "conv", model.conv, model.conv.weight),
              ("Deconvolution", "up", model.up, model.up.weight.transpose(0, 1)),  # ncnn: [out][in][kh][kw]
              ("InnerProduct", "fc", model.fc, model.fc.weight)]
    if drop_layer:
        layers = layers[:-1]
    lines, blob, prev = [], b"", "data"
    for kind, name, layer, w in layers:
        bias_key, count_key = ("1", "2") if kind == "InnerProduct" else ("5", "6")
        lines.append(f"{kind} {name} 1 1 {prev} {name}_out 0={w.shape[0]} {bias_key}=1 {count_key}={w.numel()}")
        prev = f"{name}_out"
        values = w.detach().numpy().ravel()
        if fp16:
            data = values.astype("<f2").tobytes()
            blob += struct.pack("<I", 0x01306B47) + data + b"\0" * (-len(data) % 4)
        else:
            blob += struct.pack("<I", 0) + values.astype("<f4").tobytes()
        blob += layer.bias.detach().numpy().astype("<f4").tobytes()
    param, bin_ = os.path.join(folder, "m.param"), os.path.join(folder, "m.bin")
    with open(param, "w") as fh:
        header = f"7767517\n{len(lines) + 1} {len(lines) + 1}\nInput data 0 1 data 0=8 1=8 2=3\n"
        fh.write(header + "\n".join(lines) + "\n")
    with open(bin_, "wb") as fh:
        fh.write(blob)
    return param, bin_


@pytest.mark.parametrize("fp16", [False, True])
def test_an_ncnn_model_is_read_layer_for_layer(tmp_path, fp16):
    torch.manual_seed(1)
    source = Tiny()
    param, bin_ = _write_ncnn(str(tmp_path), source, fp16=fp16)
    target = Tiny()
    assert load_into(target, param, bin_) == file_sha256(bin_)
    for key, want in source.state_dict().items():
        want = want.half().float() if fp16 and key.endswith("weight") else want
        assert torch.equal(target.state_dict()[key], want), key


def test_bad_ncnn_files_are_refused_clearly(tmp_path):
    torch.manual_seed(1)
    param, bin_ = _write_ncnn(str(tmp_path), Tiny())
    data = open(bin_, "rb").read()
    with open(bin_, "wb") as fh:
        fh.write(data + b"\0" * 8)
    with pytest.raises(ValueError, match=re.escape(f"{bin_}: 8 bytes left over after the last layer")):
        load_into(Tiny(), param, bin_)
    short_param, _ = _write_ncnn(str(tmp_path), Tiny(), drop_layer=True)  # a layer fewer than the module
    with pytest.raises(ValueError, match=re.escape(f"{short_param}: 2 weighted layers, the module has 3")):
        load_into(Tiny(), short_param, bin_)
    with open(param, "w") as fh:
        fh.write("not ncnn\n")
    with pytest.raises(ValueError, match="is not an ncnn text .param file"):
        load_into(Tiny(), param, bin_)


@pytest.mark.parametrize("keep", [0, 2, 60, -4])
def test_a_truncated_ncnn_bin_is_refused_naming_the_file(tmp_path, keep):
    torch.manual_seed(1)
    param, bin_ = _write_ncnn(str(tmp_path), Tiny())
    data = open(bin_, "rb").read()
    with open(bin_, "wb") as fh:
        fh.write(data[:keep])
    with pytest.raises(ValueError, match=re.escape(f"{bin_}: truncated")):
        load_into(Tiny(), param, bin_)


# ------------------------------------------------------------------ the registry
def test_an_unknown_architecture_or_body_is_a_clear_error():
    with pytest.raises(ValueError, match="architecture 'nope', this Kirei runs ") as e:
        build("nope", {})
    assert "kirei-2" in ARCHITECTURES and all(a in str(e.value) for a in ARCHITECTURES)
    with pytest.raises(ValueError, match="unknown body 'nope': one of upcunet, upconv7"):
        build("kirei-2", {"body": "nope"})


def test_both_shipped_models_are_installed_and_listed():
    installed = weights_io.installed()
    assert set(SHIPPED) <= set(installed) and DEFAULT_MODEL == "kirei-2"
    assert installed["kirei-2"]["config"]["body"] == "upcunet"
    assert installed["kirei-fast"]["config"]["body"] == "upconv7"
    r = run_cli("models")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for name in SHIPPED:
        said = f"{name}{' (default)' if name == DEFAULT_MODEL else ''}: {installed[name]['parameters'] / 1e6:.1f}M " \
               f"parameters, {installed[name]['speed']}"
        assert any(ln.startswith(said) for ln in lines), (said, r.stdout)


def test_restoring_with_a_model_that_is_not_installed_is_one_line(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    r = run_cli("restore", "--model", "nope", "-o", tmp_path / "out", tmp_path / "p.png")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "kirei: error: no model named 'nope' is installed (installed: kirei-2, kirei-fast)"], r.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ every mode, every kind of picture
LAYOUTS = ("rgb", "rgba", "grey", "rgb16")


def _picture(layout, h=40, w=52):
    rgb = np.asarray(anime_picture(w, h, seed=3))
    if layout == "rgb16":
        return rgb.astype(np.uint16) * 257 + np.uint16(100)  # 16-bit values that 8 bits can't hold
    if layout == "grey":
        return rgb[..., :1].copy()
    if layout == "rgba":
        return np.concatenate([rgb, np.linspace(0, 255, h * w).reshape(h, w, 1).astype(np.uint8)], axis=2)
    return rgb


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("name", SHIPPED)
def test_every_mode_on_every_kind_of_picture(name, scale, layout):
    px = _picture(layout)
    h, w, c = px.shape
    alpha, colour = text_watermark(w, h, opacity=0.5)
    alpha[:, w // 2:] = 0  # the right half is not stamped
    profile = Profile(alpha, colour)
    runs = {"none": (None, options(name, scale)), "profile": (profile, options(name, scale)),
            "blind": (None, options(name, scale, blind=True))}
    for mode, (prof, opts) in runs.items():
        out = restore_pixels(px, prof, opts, out_dtype=px.dtype)
        assert out.shape == (h * scale, w * scale, c) and out.dtype == px.dtype, mode
        if c in (2, 4) and scale == 1:
            np.testing.assert_array_equal(out[..., -1], px[..., -1])  # the picture's own alpha
        if scale == 1 and mode == "none":  # x1, nothing stamped: the input's own pixels
            np.testing.assert_array_equal(out, px)
        if scale == 1 and mode == "profile":  # ... and wherever the stamp is not, even near it
            far = slice(w // 2 + 1, None)
            np.testing.assert_array_equal(out[:, far], px[:, far])
            assert (out[:, :w // 2] != px[:, :w // 2]).any()  # under the stamp something was done


# ------------------------------------------------------------------ kirei-2's tiles
def test_kirei2_tiles_show_no_seam():
    """The default tiles (384 px), cross-faded, against the picture restored in one piece: near
    that result everywhere, and no farther from it along the tiles' edges than elsewhere (a fade
    whose weights don't sum to one, or a tile put in the wrong place, shows there). A 2000x700
    strip: 6 x 2 tiles; one piece of it takes about 9 GB (of 2000x2000, about 25 GB)."""
    h, w, s, tile = 700, 2000, 2, DEFAULT_TILE
    px = np.asarray(anime_picture(w, h, seed=7))
    opts = options("kirei-2")
    assert opts.tile == tile
    tiled = restore_pixels(px, None, opts, out_dtype=np.uint8).astype(np.float64)
    whole = restore_pixels(px, None, options("kirei-2", tile=max(h, w)), out_dtype=np.uint8).astype(np.float64)
    assert tiled.shape == whole.shape == (h * s, w * s, 3)
    assert psnr(tiled, whole, 255) > 45  # measured: 53.2 dB (384 px tiles; 55.7 at 512)
    band = 16  # output px each side of an edge between tiles
    near = np.zeros((h * s, w * s), bool)
    for edge in range(tile * s, w * s, tile * s):
        near[:, edge - band:edge + band] = True
    for edge in range(tile * s, h * s, tile * s):
        near[edge - band:edge + band] = True
    diff = np.abs(tiled - whole).mean(axis=2)
    assert diff[near].mean() <= 2 * diff[~near].mean(), (diff[near].mean(), diff[~near].mean())  # measured: 1.0x


# ------------------------------------------------------------------ a region against the whole picture
@pytest.fixture(scope="module")
def scene():
    """A 233x330 picture (the project's size) reduced from its 2x truth."""
    truth = anime_picture(466, 660, seed=21)
    small = np.asarray(truth.resize((233, 330), Image.BICUBIC), np.float32) / 255.0
    return small, np.asarray(truth, np.float32) / 255.0


@pytest.mark.parametrize("name", SHIPPED)
def test_a_region_restores_as_it_does_inside_the_whole_picture(scene, name):
    small, truth = scene
    s = 2
    whole = restore_pixels(small, None, options(name))
    mask = np.zeros(small.shape[:2], np.float32)
    mask[100:220, 60:160] = 1
    res = restore_region(small, mask=mask, options=options(name))
    ox, oy = res.offset
    assert (ox, oy) == (60 * s, 100 * s)
    got = res.pixels[..., :3]
    cut = (slice(oy, oy + got.shape[0]), slice(ox, ox + got.shape[1]))
    assert got.shape == (120 * s, 100 * s, 3)
    if weights_io.load_model(name).seam_overlap == 0:  # kirei-fast: convolutions only, the same pixels
        assert np.abs(got - whole[cut]).max() < 1e-4
    else:  # kirei-2: squeeze-excitation sees less of the picture; as good, and close
        assert psnr(got, whole[cut]) > 45  # measured: 57.3 dB
        assert abs(psnr(got, truth[cut]) - psnr(whole[cut], truth[cut])) < 0.1  # measured: 0.03 dB


def test_an_untrained_front_end_is_exact_inversion_and_still_learns():
    """A zero last layer adds nothing: at run time the repair net is skipped and the answer is the
    same; in training it runs, so the zero layer gets a gradient and can learn."""
    from core.models.frontend import FrontEnd, invert
    torch.manual_seed(0)
    front = FrontEnd(channels=8)
    j, a, w = torch.rand(1, 3, 24, 20), 0.5 * torch.rand(1, 1, 24, 20), torch.rand(1, 3, 24, 20)
    assert not front.repairs()
    front.eval()
    torch.testing.assert_close(front(j, a, w), invert(j, a, w), rtol=0, atol=0)
    front.train()
    out = front(j, a, w)
    torch.testing.assert_close(out, invert(j, a, w), rtol=0, atol=0)
    out.sum().backward()
    assert front.tail.weight.grad is not None and front.tail.weight.grad.abs().sum() > 0
    with torch.no_grad():
        front.tail.bias.fill_(0.01)
    front.eval()
    assert front.repairs() and not torch.equal(front(j, a, w), invert(j, a, w))


def test_the_front_end_repairs_only_near_the_stamp():
    """A trained repair may change the picture only within GATE_REACH px of the profile's opacity:
    what carries no stamp reaches the body exactly as it came."""
    import torch.nn.functional as F
    from core.models.frontend import GATE_REACH, FrontEnd, invert
    torch.manual_seed(0)
    front = FrontEnd(channels=8)
    with torch.no_grad():
        front.tail.weight.normal_(0, 0.1)
        front.tail.bias.fill_(0.05)
    front.eval()
    j, w = torch.rand(1, 3, 40, 36), torch.rand(1, 3, 40, 36)
    a = torch.zeros(1, 1, 40, 36)
    a[..., 15:22, 10:20] = 0.4
    changed = (front(j, a, w) - invert(j, a, w)).abs().amax(1, keepdim=True) > 0
    near = F.max_pool2d((a > 0).float(), 2 * GATE_REACH + 1, stride=1, padding=GATE_REACH) > 0
    assert changed.any() and not (changed & ~near).any()
    assert changed[..., 15 - GATE_REACH, 12] and not changed[..., 15 - GATE_REACH - 1, 12]


def test_the_stamp_body_takes_over_from_the_jpeg_body_only_near_the_stamp():
    """A stamp body (trained for inverted JPEG under a stamp) makes the x2 picture within
    STAMP_REACH px of the profile's opacity, fading out over one more pixel; elsewhere the picture
    is the JPEG body's, exactly; a picture with nothing stamped never runs the stamp body."""
    from core.models.kirei2 import STAMP_REACH, Kirei2
    torch.manual_seed(0)
    model = Kirei2(body="upconv7").eval()
    plain = Kirei2(body="upconv7").eval()
    plain.load_state_dict(model.state_dict())
    stamp = model.add_stamp_body()
    assert model.config["stamp_body"] and model.add_stamp_body() is stamp  # added once
    with torch.no_grad():
        for p in stamp.parameters():
            p.add_(0.05 * torch.randn_like(p))  # as if trained: not the JPEG body any more
    j, w = torch.rand(1, 3, 40, 36), torch.rand(1, 3, 40, 36)
    a = torch.zeros(1, 1, 40, 36)
    a[..., 15:22, 10:20] = 0.4
    with torch.no_grad():
        got = model(j, a, w, jpeg=True)[0]
        jpeg_only = plain(j, a, w, jpeg=True)[0]
        png = model(j, a, w, jpeg=False)[0]
        nothing = model(j, torch.zeros_like(a), w, jpeg=True)[0]
    changed = (got - jpeg_only).abs().amax(1)[0] > 1e-6
    rows = changed.any(1).nonzero()[:, 0]
    # x2 rows of the stamp (30..43), grown by STAMP_REACH input px, then one more for the fade
    assert rows.min() >= 2 * (15 - STAMP_REACH - 1) - 1 and rows.max() <= 2 * (22 + STAMP_REACH + 1)
    assert changed[2 * 15:2 * 22, 2 * 10:2 * 20].all()
    assert torch.equal(png, plain(j, a, w, jpeg=False)[0])  # PNG input: the clean body, as before
    assert torch.equal(nothing, plain(j, torch.zeros_like(a), w, jpeg=True)[0])


def test_a_model_with_a_stamp_body_is_saved_and_built_again(tmp_path):
    from core.models.kirei2 import Kirei2
    from core.weights_io import load_model, save_weights
    torch.manual_seed(0)
    model = Kirei2(body="upconv7")
    model.add_stamp_body()
    path = save_weights(model, str(tmp_path / "m"), {"note": "test"})
    again = load_model(path)
    assert again.config["stamp_body"] and again.body_stamp is not None
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="JPEG body"):
        Kirei2(body="upconv7", jpeg_body=False, stamp_body=True)
