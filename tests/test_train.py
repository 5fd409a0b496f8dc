"""`python -m core train`: a tiny real run, through the command line: seeded, resumable,
logged, validated, exported as safetensors + JSON that the engine loads."""
import json
import os

import numpy as np
import pytest
from safetensors.torch import load_file

from core import synth, weights_io
from tests.conftest import run_cli

TINY = ["--channels", "8", "--blocks", "1", "--batch", "4", "--patch", "24", "--val-every", "2", "--save-every", "2",
        "--log-every", "1", "--no-bf16", "--device", "cpu"]


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


def test_train_resume_and_export(tmp_path, data):
    out = str(tmp_path / "run")
    train(out, data, 2)
    p = train(out, data, 4)
    assert "resumed from" in p.stdout and "at step 2" in p.stdout
    lines = [json.loads(x) for x in open(os.path.join(out, "log.jsonl"))]
    steps = [x["step"] for x in lines if "step" in x]
    assert steps == [1, 2, 3, 4]
    vals = [x["validation"] for x in lines if "validation" in x]
    assert [v["step"] for v in vals] == [2, 4]
    assert all(np.isfinite(v[k]) for v in vals for k in ("clean", "profile", "blind", "bicubic"))
    assert all(np.isfinite(x["pixel"]) and x["pixel"] > 0 for x in lines if "pixel" in x)

    name = str(tmp_path / "weights" / "tiny")
    p = run_cli("train", "--out", out, "--export", name)
    assert p.returncode == 0, p.stderr
    model = weights_io.load_model(name)
    assert model.config == {"scale": 2, "channels": 8, "blocks": 1, "matte_channels": 32}
    rec = weights_io.describe(name)
    assert rec["steps_done"] == 4 and rec["args"]["steps"] == 4 and len(rec["validation"]) == 2


def test_same_seed_same_weights(tmp_path, data):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train(a, data, 2, "--seed", "3")
    train(b, data, 2, "--seed", "3")
    for x in (a, b):
        assert run_cli("train", "--out", x, "--export", os.path.join(x, "w")).returncode == 0
    wa, wb = load_file(os.path.join(a, "w.safetensors")), load_file(os.path.join(b, "w.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k].numpy(), wb[k].numpy(), err_msg=k)


def test_missing_data_folder_is_a_clear_error(tmp_path):
    p = run_cli("train", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "nope"), "--steps", "1", *TINY)
    assert p.returncode == 2
    assert "kirei: error: training data folder" in p.stderr and "does not exist" in p.stderr
