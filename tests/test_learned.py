"""The learned models as shipped (kirei-2, the default, and kirei-fast): shapes at x1/x2/x4, tiles,
an honest receptive field, stamp removal (with a profile and blind), and safe weight loading.
(Their agreement with waifu2x, the registry and seams on large pictures: tests/test_models.py.)"""
import json
import os

import numpy as np
import pytest
import torch

from core import synth, weights_io
from core.blend import stamp
from core.errors import KireiError
from core.defaults import TTA_CPU_MAX_PIXELS
from core.learned import VIEWS, LearnedRestorer, _unview, _view, model_for
from core.pipeline import Options, auto_tta, restore_pixels
from core.profile import Profile
from core.tiling import run_tiled
from tests.conftest import picture, quantise
from tests.hardsets import as_jpeg

CPU = torch.device("cpu")
MODES = ("none", "profile", "blind")
SHIPPED = ("kirei-2", "kirei-fast")


def psnr(a, b, mask=None):
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    mse = d[mask].mean() if mask is not None else d.mean()
    return 10 * np.log10(1.0 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def scene():
    """A clean 96x128 picture, its 2x truth, the SAMPLE stamp and the stamped 8-bit picture."""
    truth = picture(192, 256, seed=31)
    from PIL import Image
    clean = np.asarray(Image.fromarray(np.uint8(truth * 255 + 0.5)).resize((96, 128), Image.BICUBIC),
                       np.float32) / 255.0
    alpha, colour = synth.text_watermark(96, 128, opacity=0.5, angle=30)
    return dict(truth=truth, clean=clean, alpha=alpha, colour=colour, stamped=quantise(stamp(clean, alpha, colour)))


def guide_of(alpha, colour):
    return np.concatenate([alpha[..., None], colour], axis=2).astype(np.float32)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_with_safetensors_and_carry_their_record(name):
    path = weights_io.weights_path(name)
    assert path.endswith(".safetensors") and os.path.exists(path)
    rec = weights_io.describe(name)
    for key in ("architecture", "config", "version", "parameters", "speed", "starting_weights", "sha256"):
        assert key in rec, key
    if "steps_done" in rec:  # trained since it was imported: the training's record too
        for key in ("fine_tuned_from", "data", "degradations", "args", "stages", "train_seconds", "validation",
                    "exported"):
            assert key in rec, key
    model = weights_io.load_model(name)
    assert (model.architecture, model.config) == (rec["architecture"], rec["config"])
    assert sum(p.numel() for p in model.parameters()) == rec["parameters"] < 3_000_000
    assert not model.training


def test_weights_of_another_architecture_are_refused(tmp_path):
    from safetensors.torch import save_file
    bad = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(1)}, str(bad), metadata={"architecture": "something-else", "config": "{}"})
    with pytest.raises(KireiError, match="architecture"):
        weights_io.load_model(str(bad))
    with pytest.raises(KireiError, match="missing"):
        weights_io.load_model(str(tmp_path / "absent.safetensors"))


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_shapes_at_every_scale_and_channel_layout(scene, scale, channels):
    px = scene["stamped"][:40, :56]
    if channels in (1, 2):
        px = px.mean(axis=2, keepdims=True)
    if channels in (2, 4):
        px = np.concatenate([px, np.linspace(0, 1, 40 * 56, dtype=np.float32).reshape(40, 56, 1)], axis=2)
    prof = Profile(scene["alpha"][:40, :56], scene["colour"][:40, :56])
    out = restore_pixels(px, prof, Options(scale=scale, method="learned", device="cpu"))
    assert out.shape == (40 * scale, 56 * scale, channels)
    assert out.dtype == np.float32 and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    if channels in (2, 4) and scale == 1:  # the picture's own alpha passes through
        np.testing.assert_allclose(out[..., -1], px[..., -1], atol=1e-6)


def test_only_the_squeeze_excited_body_asks_for_cross_faded_tiles():
    assert model_for(CPU, "kirei-fast").seam_overlap == 0  # UpConv7: convolutions only
    assert model_for(CPU, "kirei-2").seam_overlap > 0  # UpCUNet: averages over the tile


# kirei-2 at x2/x4 is not exactly tile-independent (its body's squeeze-excitation); its seams
# are measured on a large picture in tests/test_models.py
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,scale", [("kirei-fast", 1), ("kirei-fast", 2), ("kirei-fast", 4), ("kirei-2", 1)])
def test_tiles_are_exact_where_the_model_is_local(scene, name, scale, mode):
    r = LearnedRestorer(model_for(CPU, name), scale, CPU, mode)
    px = scene["stamped"]
    guide = guide_of(scene["alpha"], scene["colour"]) if mode == "profile" else None
    whole = run_tiled(r, px, tile=1000, guide=guide)
    tiled = run_tiled(r, px, tile=40, guide=guide)
    assert whole.shape == tiled.shape == (128 * scale, 96 * scale, 3)
    assert np.abs(whole - tiled).max() < 1e-4  # float rounding only: same pixels, no seams


# (model, scale, mode, how much a change beyond the receptive field may move an output pixel):
# kirei-2's body averages over the whole input (squeeze-excitation), a little and globally
@pytest.mark.parametrize("name,scale,mode,far_tol", [
    ("kirei-fast", 2, "profile", 1e-5), ("kirei-fast", 2, "blind", 1e-5), ("kirei-fast", 4, "blind", 1e-5),
    ("kirei-2", 1, "blind", 1e-5), ("kirei-2", 2, "profile", 2e-3)])
def test_receptive_field_is_what_the_tiler_is_told(scene, name, scale, mode, far_tol):
    """A change farther away than the declared receptive field changes nothing; a near one does."""
    r = LearnedRestorer(model_for(CPU, name), scale, CPU, mode)
    rf = r.receptive_field
    px = scene["stamped"].copy()
    guide = guide_of(scene["alpha"], scene["colour"]) if mode == "profile" else None
    base = r(px, guide)
    # a pixel under the stamp (x1 keeps the input's own pixel elsewhere), far enough from the right
    room = scene["alpha"][:, :px.shape[1] - rf - 2]
    y, x = np.unravel_index(np.argmax(room), room.shape)
    assert room[y, x] > 0.3
    block = (slice(scale * y, scale * y + scale), slice(scale * x, scale * x + scale))
    far = px.copy()
    far[y, x + rf + 1:] = 1.0 - far[y, x + rf + 1:]
    assert np.abs(r(far, guide)[block] - base[block]).max() < far_tol
    near = px.copy()
    near[y, x + 2] = 1.0 - near[y, x + 2]
    assert np.abs(r(near, guide)[block] - base[block]).max() > 1e-4


def test_the_eight_views_are_distinct_and_each_is_undone_exactly():
    t = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    seen = {tuple(_view(t, f, r).flatten().tolist()) for f, r in VIEWS}
    assert len(VIEWS) == len(seen) == 8
    for f, r in VIEWS:
        assert torch.equal(_unview(_view(t, f, r), f, r), t)


@pytest.mark.parametrize("name", SHIPPED)
def test_tta_brings_jpeg_input_closer_to_the_truth(scene, name):
    """JPEG hides something different in each flip and turn: the mean of the 8 is nearer the truth."""
    jpg = as_jpeg([scene["clean"]], quality=75)[0]
    out = {tta: restore_pixels(jpg, None, Options(scale=2, method="learned", device="cpu", model=name, jpeg=True,
                                                  tta=tta)) for tta in (False, True)}
    gain = psnr(out[True], scene["truth"]) - psnr(out[False], scene["truth"])
    assert gain > 0.05, gain


def test_tta_keeps_tiles_exact_where_the_model_is_local(scene):
    r = LearnedRestorer(model_for(CPU, "kirei-fast"), 2, CPU, "profile", jpeg=True, tta=True)
    guide = guide_of(scene["alpha"], scene["colour"])
    whole = run_tiled(r, scene["stamped"], tile=1000, guide=guide)
    tiled = run_tiled(r, scene["stamped"], tile=40, guide=guide)
    one = run_tiled(LearnedRestorer(model_for(CPU, "kirei-fast"), 2, CPU, "profile", jpeg=True), scene["stamped"],
                    tile=1000, guide=guide)
    assert np.abs(whole - tiled).max() < 1e-4
    assert np.abs(whole - one).mean() > 1e-4  # the views did run


def test_tta_is_on_by_default_for_jpeg_previews_only():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    small, large = 330 * 233, TTA_CPU_MAX_PIXELS + 1
    assert auto_tta(Options(jpeg=True), small, cpu) and auto_tta(Options(jpeg=True), large, gpu)
    assert not auto_tta(Options(jpeg=True), large, cpu)  # 8x the time of a large picture on a CPU
    assert not auto_tta(Options(jpeg=False), small, gpu)
    assert auto_tta(Options(jpeg=False, tta=True), large, cpu)
    assert not auto_tta(Options(jpeg=True, tta=False), small, gpu)


def test_x1_removes_the_stamp_with_a_profile_and_keeps_the_rest(scene):
    prof = Profile(scene["alpha"], scene["colour"])
    out = restore_pixels(scene["stamped"], prof, Options(scale=1, method="learned", device="cpu"))
    under = scene["alpha"] > 0.01
    before = psnr(scene["stamped"], scene["clean"], under)
    after = psnr(out, scene["clean"], under)
    assert after > before + 12, (before, after)
    far = ~np.asarray(torch.nn.functional.max_pool2d(torch.from_numpy(under[None].astype(np.float32)), 7, 1, 3)[0],
                      bool)
    np.testing.assert_array_equal(out[far], scene["stamped"][far])  # untouched where nothing is stamped


def test_x2_beats_bicubic_on_clean_input_and_removes_the_stamp(scene):
    import torch.nn.functional as F
    bicubic = F.interpolate(torch.from_numpy(scene["clean"]).permute(2, 0, 1)[None], scale_factor=2,
                            mode="bicubic", align_corners=False)[0].permute(1, 2, 0).clamp(0, 1).numpy()
    clean = restore_pixels(scene["clean"], None, Options(scale=2, method="learned", device="cpu"))
    assert psnr(clean, scene["truth"]) > psnr(bicubic, scene["truth"]) + 0.5
    prof = Profile(scene["alpha"], scene["colour"])
    removed = restore_pixels(scene["stamped"], prof, Options(scale=2, method="learned", device="cpu"))
    assert psnr(removed, scene["truth"]) > psnr(clean, scene["truth"]) - 1.5


def test_upscale_only_mode_leaves_a_stamp_in_place(scene):
    """--no-dewatermark must not remove anything: the stamp is still there, upscaled."""
    out = restore_pixels(scene["stamped"], None, Options(scale=1, method="learned", device="cpu"))
    np.testing.assert_array_equal(out, scene["stamped"])


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_record_says_where_the_weights_came_from(name):
    with open(weights_io.weights_path(name, ".json")) as fh:
        rec = json.load(fh)
    start = rec["starting_weights"]
    for part in ("body", "body_jpeg"):
        assert start[part]["file"].endswith(".bin") and len(start[part]["sha256"]) == 64
    notice = os.path.join(weights_io.WEIGHTS_DIR, "NOTICE-waifu2x.txt")
    assert "MIT" in start["licence"] and os.path.basename(notice) in start["licence"]
    with open(notice) as fh:
        assert "Permission is hereby granted" in fh.read()  # the MIT licence's text travels with them


# ------------------------------------------------------------------ integrity of the weights
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_record_holds_the_weights_sha256(name):
    rec = weights_io.describe(name)
    assert rec["sha256"] == weights_io.file_sha256(weights_io.weights_path(name))
    assert weights_io.verify(name) == weights_io.weights_path(name)


def _copy_shipped(folder, name=weights_io.DEFAULT_MODEL):
    """The shipped model `name`'s weights and record, copied to folder/name.*; returns the path
    to load them by."""
    base = str(folder / name)
    for ext in (".safetensors", ".json"):
        with open(weights_io.weights_path(name, ext), "rb") as src, open(base + ext, "wb") as dst:
            dst.write(src.read())
    return base


def _refused(name, reason):
    assert not weights_io.available(name)
    for use in (weights_io.verify, weights_io.load_model):
        with pytest.raises(KireiError, match=reason):
            use(name)


def test_truncated_or_altered_weights_are_refused(tmp_path):
    name = _copy_shipped(tmp_path)
    assert weights_io.available(name)
    path = weights_io.weights_path(name)
    data = open(path, "rb").read()
    with open(path, "wb") as fh:
        fh.write(data[:len(data) // 2])
    _refused(name, "damaged .*sha256")
    with open(path, "wb") as fh:
        fh.write(data[:-4] + b"\0\0\0\0")  # same size, one value changed
    os.utime(path, ns=(1, 1))  # another version of the file, even where mtime is coarse
    _refused(name, "damaged .*sha256")
    os.remove(path)
    _refused(name, "missing")


def test_weights_with_nan_values_are_refused_even_with_a_matching_record(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    name = _copy_shipped(tmp_path)
    path = weights_io.weights_path(name)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    state = load_file(path)
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key][0] = float("nan")
    save_file(state, path, metadata=meta)
    rec = weights_io.describe(name)
    weights_io.write_record(name, dict(rec, sha256=weights_io.file_sha256(path)))
    _refused(name, "NaN or infinite")


def test_export_records_the_sha256_and_it_is_checked_once_per_version(tmp_path, monkeypatch):
    from core.models import build
    name = str(tmp_path / "tiny")
    small = build("kirei-2", {"body": "upconv7", "front_channels": 8, "jpeg_body": False, "matte_channels": 8})
    path = weights_io.save_weights(small, name, {"note": 1})
    rec = weights_io.describe(name)
    assert rec["note"] == 1 and rec["sha256"] == weights_io.file_sha256(path)
    from core import digest
    hashed = []
    real = digest.file_sha256
    monkeypatch.setattr(digest, "file_sha256", lambda p: hashed.append(p) or real(p))
    for _ in range(3):
        assert weights_io.available(name)
    back = weights_io.load_model(name)  # the file builds its own model: architecture and config inside
    assert hashed == [path]
    assert back.config == small.config and back.body_jpeg is None
    want = small.state_dict()
    assert back.state_dict().keys() == want.keys()
    for key, value in back.state_dict().items():
        assert torch.equal(value, want[key]), key
    os.utime(path, ns=(2, 2))
    assert weights_io.available(name) and hashed == [path, path]


def test_damaged_default_weights_are_not_advertised(tmp_path, monkeypatch):
    from core.pipeline import default_method
    assert default_method() == "learned"
    name = _copy_shipped(tmp_path)
    with open(weights_io.weights_path(name), "r+b") as fh:
        fh.truncate(1000)
    monkeypatch.setattr(weights_io, "WEIGHTS_DIR", str(tmp_path))
    assert default_method() == "classic"


def test_the_worker_logs_why_the_model_is_not_offered(tmp_path, monkeypatch, caplog):
    """Its blind notice sends the user to worker.log: the reason must be there."""
    from core.server import _say_if_the_model_is_unusable
    name = _copy_shipped(tmp_path)
    with open(weights_io.weights_path(name), "r+b") as fh:
        fh.truncate(1000)
    monkeypatch.setattr(weights_io, "WEIGHTS_DIR", str(tmp_path))
    with caplog.at_level("WARNING", logger="kirei.worker"):
        _say_if_the_model_is_unusable()
    assert "damaged" in caplog.text or "sha256" in caplog.text, caplog.text
    assert "upscaled only" in caplog.text
