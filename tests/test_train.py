"""`python -m core train`: tiny real runs through the command line, starting from kirei-fast (the
cheaper body): seeded, staged (front, then joint), resumable, logged, validated, exported as
safetensors + JSON that the engine loads."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

from core import synth, weights_io
from core.pipeline import Options, restore_pixels
from core.train import CHECKPOINT
from tests.conftest import run_cli

INIT = "kirei-fast"
TINY = ["--batch", "2", "--patch", "64", "--val-every", "2", "--save-every", "2", "--log-every", "1", "--no-bf16",
        "--device", "cpu", "--init", INIT]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("pictures")
    for seed in range(3):
        synth.anime_picture(160, 128, seed=seed).save(str(d / f"p{seed}.png"))
    return str(d)


def train(out, data, steps, *extra):
    p = run_cli("train", "--out", out, "--data", data, "--steps", steps, *TINY, *extra)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def model_state(run_dir, checkpoint=CHECKPOINT):
    return torch.load(os.path.join(run_dir, checkpoint), map_location="cpu", weights_only=True)["model"]


def log_of(run_dir):
    with open(os.path.join(run_dir, "log.jsonl")) as fh:
        return [json.loads(x) for x in fh]


@pytest.fixture(scope="module")
def front_run(tmp_path_factory, data):
    """Stage front: 2 steps, then resumed to 4; the checkpoint after each kept aside."""
    out = str(tmp_path_factory.mktemp("run") / "front")
    train(out, data, 2)
    shutil.copy(os.path.join(out, CHECKPOINT), os.path.join(out, "after2.pt"))
    resumed = train(out, data, 4)
    shutil.copy(os.path.join(out, CHECKPOINT), os.path.join(out, "after4.pt"))
    return out, resumed


def test_the_front_stage_resumes_logs_validates_and_leaves_the_body_alone(front_run):
    out, resumed = front_run
    assert f"resumed from {os.path.join(out, CHECKPOINT)} at step 2 of stage front" in resumed.stdout
    lines = log_of(out)
    assert [x["step"] for x in lines if "step" in x] == [1, 2, 3, 4]
    vals = [x["validation"] for x in lines if "validation" in x]
    assert [(v["stage"], v["step"]) for v in vals] == [("front", 2), ("front", 4)]
    for v in vals:  # the front stage validates at low resolution only
        assert {"clean_x1", "profile_x1", "jpeg_x1", "measured_x1", "measured_jpeg_x1", "measured_in_x1", "blind_x1",
                "inverted_profile_x1", "inverted_measured_x1", "inverted_measured_in_x1"} <= set(v)
        assert not any(k.endswith("_x2") for k in v) and all(np.isfinite(v[k]) for k in v if k.endswith("_x1"))
    assert all(np.isfinite(x["pixel"]) and x["pixel"] > 0 for x in lines if "pixel" in x)
    start, now = weights_io.load_model(INIT).state_dict(), model_state(out)
    bodies = [k for k in start if k.startswith(("body.", "body_jpeg."))]
    assert bodies and all(torch.equal(now[k], start[k]) for k in bodies)  # frozen in this stage
    assert not torch.equal(now["front.tail.weight"], start["front.tail.weight"])  # what it trains


def after_the_front_stage(tmp_path, front_run, data, stage):
    """A copy of the front run, 2 steps of `stage` more: (run folder, the stage's validation,
    weights before, after)."""
    out = str(tmp_path / "run")
    shutil.copytree(front_run[0], out)
    p = train(out, data, 2, "--stage", stage)
    assert f"at step 0 of stage {stage}" in p.stdout
    [v] = [x["validation"] for x in log_of(out) if "validation" in x and x["validation"]["stage"] == stage]
    return out, v, model_state(out, "after4.pt"), model_state(out)


def test_the_jpeg_stage_trains_the_jpeg_body_alone_on_jpeg_input(tmp_path, front_run, data):
    out, v, before, after = after_the_front_stage(tmp_path, front_run, data, "jpeg")
    assert all(np.isfinite(v[k]) for k in ("jpeg_x2", "measured_jpeg_x2", "clean_x2"))
    jpeg = [k for k in before if k.startswith("body_jpeg.")]
    others = [k for k in before if not k.startswith("body_jpeg.")]
    assert jpeg and any(not torch.equal(after[k], before[k]) for k in jpeg)  # what it trains
    assert others and all(torch.equal(after[k], before[k]) for k in others)  # the rest as it was
    stage = json.loads(torch.load(os.path.join(out, CHECKPOINT), weights_only=True)["record"])["stages"][-1]
    assert stage["stage"] == "jpeg" and stage["samples"]["jpeg_share"] == 1.0


def test_the_joint_stage_continues_the_run_and_exports_a_model_the_engine_loads(tmp_path, front_run, data):
    out = str(tmp_path / "run")
    shutil.copytree(front_run[0], out)
    p = train(out, data, 2, "--stage", "joint")
    assert "at step 0 of stage joint" in p.stdout  # a new stage: its own schedule, from the front stage's weights
    lines = log_of(out)
    assert [(x["stage"], x["step"]) for x in lines if "step" in x][-2:] == [("joint", 1), ("joint", 2)]
    [joint] = [x["validation"] for x in lines if "validation" in x and x["validation"]["stage"] == "joint"]
    assert all(np.isfinite(joint[k]) for k in ("clean_x2", "profile_x2", "jpeg_x2", "blind_x2"))
    before, after = model_state(out, "after4.pt"), model_state(out)
    assert not torch.equal(after["body.up.weight"], before["body.up.weight"])  # the body trains now, slowly

    name = str(tmp_path / "weights" / "tiny")
    p = run_cli("train", "--out", out, "--export", name)
    assert p.returncode == 0, p.stderr
    model = weights_io.load_model(name)
    assert model.config == weights_io.describe(INIT)["config"]
    rec = weights_io.describe(name)
    assert rec["steps_done"] == 2 and rec["args"]["stage"] == "joint"
    assert [s["stage"] for s in rec["stages"]] == ["front", "joint"]
    assert rec["fine_tuned_from"].startswith(f"{INIT} (sha256 {weights_io.describe(INIT)['sha256']}")
    assert rec["starting_weights"] == weights_io.describe(INIT)["starting_weights"]  # provenance carried on
    px = synth.anime_picture(40, 32, seed=1)
    restored = restore_pixels(np.asarray(px), None, Options(scale=2, method="learned", device="cpu",
                                                          model=name + ".safetensors"))
    assert restored.shape == (64, 80, 3) and np.isfinite(restored).all()


def test_same_seed_same_weights(tmp_path, front_run, data):
    again = str(tmp_path / "again")
    train(again, data, 2)  # the seed (0) of the first two steps of front_run
    first, second = model_state(front_run[0], "after2.pt"), model_state(again)
    assert first.keys() == second.keys()
    for k in first:
        assert torch.equal(first[k], second[k]), k


def test_missing_data_folder_is_a_clear_error(tmp_path):
    p = run_cli("train", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "nope"), "--steps", "1", *TINY)
    assert p.returncode == 2
    assert "kirei: error: training data folder" in p.stderr and "does not exist" in p.stderr


def test_the_stamp_finder_trains_seeded_and_resumes(tmp_path, data):
    """`train-finder`: two 4-step runs with one seed end with the same weights; a 2-step run
    resumes to 4, logged and validated throughout (the shipped finder's export is not touched)."""
    finder = ["--data", data, "--batch", "2", "--side", "64", "--log-every", "1", "--val-every", "2",
              "--save-every", "2", "--no-bf16"]
    split, whole, again = (str(tmp_path / n) for n in ("split", "whole", "again"))
    said = []
    for out, steps in ((split, "2"), (split, "4"), (whole, "4"), (again, "4")):
        p = run_cli("train-finder", "--out", out, "--steps", steps, *finder)
        assert p.returncode == 0, p.stderr[-3000:]
        said.append(p.stdout)
    assert f"resumed from {os.path.join(split, CHECKPOINT)} at step 2" in said[1]
    lines = log_of(split)
    assert [x["step"] for x in lines if "step" in x] == [1, 2, 3, 4]
    assert [x["validation"]["step"] for x in lines if "validation" in x] == [2, 4]
    assert {"alpha_mae", "found_in", "unstamped_psnr"} <= set(lines[-1]["validation"])
    a, b = model_state(whole), model_state(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_jpeg_quality_range_is_checked_and_drawn_from():
    import argparse
    import io

    from PIL import Image

    from core.degrade import PairMaker
    from core.train_options import quality_range
    assert quality_range("75-95") == (75, 95) and quality_range("85-85") == (85, 85)
    for bad in ("95-75", "0-50", "75", "a-b", "50-101"):
        with pytest.raises(argparse.ArgumentTypeError):
            quality_range(bad)
    picture = np.asarray(synth.anime_picture(48, 48, seed=2))
    maker = PairMaker([], np.random.default_rng(0), patch=48, jpeg_qualities=(85, 85))

    def saved(subsampling):
        buf = io.BytesIO()
        Image.fromarray(picture).save(buf, "JPEG", quality=85, subsampling=subsampling)
        return np.asarray(Image.open(buf).convert("RGB"))
    got = maker._jpeg(picture)
    assert any(np.array_equal(got, saved(sub)) for sub in (0, 2))  # q85, whichever chroma subsampling
    assert not np.array_equal(saved(0), saved(2))
    for share, sub in ((1.0, 2), (0.0, 0)):  # --jpeg-420: the share of 4:2:0 chroma
        maker = PairMaker([], np.random.default_rng(0), patch=48, jpeg_qualities=(85, 85), subsampled_share=share)
        assert all(np.array_equal(maker._jpeg(picture), saved(sub)) for _ in range(4))


def test_the_share_of_subsampled_jpegs_is_checked():
    import argparse

    from core.train_options import share
    assert share("1") == 1.0 and share("0.25") == 0.25
    for bad in ("1.5", "-0.1", "half"):
        with pytest.raises(argparse.ArgumentTypeError):
            share(bad)


def test_the_stamp_stage_adds_and_trains_a_stamp_body_alone_and_exports_it(tmp_path, front_run, data):
    """Stage stamp after stage front: the stamp body is added as a copy of the JPEG body (the
    checkpoint had none), trained on JPEGs under the stamp, and exported with the model."""
    out, v, before, after = after_the_front_stage(tmp_path, front_run, data, "stamp")
    assert all(np.isfinite(v[k]) for k in ("jpeg_in_x2", "measured_jpeg_in_x2", "clean_x2"))
    stamp = [k for k in after if k.startswith("body_stamp.")]
    assert stamp and not any(k.startswith("body_stamp.") for k in before)
    # it started as the JPEG body and moved; nothing else did
    assert any(not torch.equal(after[k], before["body_jpeg." + k[len("body_stamp."):]]) for k in stamp)
    assert all(torch.equal(after[k], before[k]) for k in before)
    stage = json.loads(torch.load(os.path.join(out, CHECKPOINT), weights_only=True)["record"])["stages"][-1]
    assert stage["stage"] == "stamp" and stage["samples"]["jpeg_share"] == 1.0
    name = str(tmp_path / "weights" / "tiny")
    assert run_cli("train", "--out", out, "--export", name).returncode == 0
    model = weights_io.load_model(name)
    assert model.config["stamp_body"] and model.body_stamp is not None
