"""The command-line contract of DESIGN.md, run as a user runs it: `python -m core ...` in a subprocess."""
import argparse
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from core.profile import Profile, load_profile, save_profile
from tests.conftest import ROOT, run_cli
from tests.test_imageio import bomb_png


def _save(arr, path):
    Image.fromarray(np.rint(arr * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def inputs(tmp_path, stamped_set):
    stamped, _ = stamped_set
    return [_save(stamped[i], tmp_path / f"pic{i}.png") for i in range(3)]


@pytest.fixture
def profile_file(tmp_path, watermark):
    alpha, color = watermark
    return save_profile(Profile(alpha, color), tmp_path / "true.png") or tmp_path / "true.png"


def _one_error_line(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.startswith("kirei: error:")]
    assert lines, stderr
    return lines


def _no_partial_files(folder):
    assert not [p for p in folder.iterdir() if p.name.startswith(".kirei-")]


def test_restore_with_profile_removes_the_watermark(tmp_path, inputs, profile_file, stamped_set):
    out = tmp_path / "out"
    r = run_cli("restore", "--scale", "2", "--profile", profile_file, "-o", out, *inputs)
    assert r.returncode == 0, r.stderr
    _, clean = stamped_set
    for i, p in enumerate(inputs):
        res = np.asarray(Image.open(out / p.name), np.float32) / 255
        assert res.shape == (320, 240, 3)
        small = np.asarray(Image.fromarray(np.rint(res * 255).astype(np.uint8)).resize((120, 160), Image.BOX),
                           np.float32) / 255
        stamped = np.asarray(Image.open(p), np.float32) / 255
        assert np.abs(small - clean[i]).mean() < 0.5 * np.abs(stamped - clean[i]).mean()
    assert str(out) in r.stdout


def test_scales_and_no_dewatermark(tmp_path, inputs):
    for scale in (1, 4):
        out = tmp_path / f"x{scale}"
        r = run_cli("restore", "--scale", scale, "--no-dewatermark", "--device", "cpu", "--tile", 64, "-o", out,
                    inputs[0])
        assert r.returncode == 0, r.stderr
        assert Image.open(out / "pic0.png").size == (120 * scale, 160 * scale)


def test_estimate_then_restore(tmp_path, stamped_set, watermark):
    stamped, _ = stamped_set
    files = [_save(s, tmp_path / f"s{i}.png") for i, s in enumerate(stamped[:12])]
    r = run_cli("estimate", "-o", tmp_path / "est.png", *files)
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "est.png") as im:
        assert im.mode in ("RGBA", "RGBA;16") or im.format == "PNG"
    prof = load_profile(tmp_path / "est.png")
    assert np.abs(prof.alpha - watermark[0]).mean() < 0.03


def test_estimate_reports_what_it_found_and_writes_a_preview(tmp_path, stamped_set):
    stamped, _ = stamped_set
    files = [_save(s, tmp_path / f"s{i}.png") for i, s in enumerate(stamped[:12])]
    r = run_cli("estimate", "--preview", "-o", tmp_path / "est.png", *files)
    assert r.returncode == 0, r.stderr
    assert "watermark on 12 of 12 pictures, at x " in r.stdout and "confidence" in r.stdout, r.stdout
    with Image.open(tmp_path / "est.preview.png") as im:
        assert im.size == (120, 160) and im.mode == "RGB"


def test_estimate_says_when_there_is_no_watermark_and_writes_nothing(tmp_path, stamped_set):
    _, clean = stamped_set
    files = [_save(np.rint(c * 255) / 255, tmp_path / f"c{i}.png") for i, c in enumerate(clean[:12])]
    r = run_cli("estimate", "--preview", "-o", tmp_path / "est.png", *files)
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("kirei: no watermark shared by the 12 pictures was found") and r.stderr.endswith(
        "; no profile written\n"), r.stderr
    assert not (tmp_path / "est.png").exists() and not (tmp_path / "est.preview.png").exists()


def test_jpeg_inputs_are_known_by_their_file_or_their_pixels(tmp_path):
    """--jpeg auto: a .jpg file, or a PNG whose pixels went through JPEG, is restored as --jpeg yes
    restores it (the model's JPEG body); a PNG that never was a JPEG, as --jpeg no. --tta auto: the
    model's 8 views for the JPEG input only."""
    from core import synth
    clean = synth.anime_picture(200, 150, seed=4).convert("RGB")
    clean.save(tmp_path / "clean.png")
    clean.save(tmp_path / "file.jpg", quality=80)
    Image.open(tmp_path / "file.jpg").save(tmp_path / "was_jpeg.png")
    outs = {}
    for said in ("auto", "yes", "no"):
        r = run_cli("restore", "--no-dewatermark", "--model", "kirei-fast", "--jpeg", said, "--device", "cpu",
                    "-o", tmp_path / said, tmp_path / "clean.png", tmp_path / "file.jpg", tmp_path / "was_jpeg.png")
        assert r.returncode == 0, r.stderr
        outs[said] = {n: np.asarray(Image.open(tmp_path / said / f"{n}.png")).astype(int)
                      for n in ("clean", "file", "was_jpeg")}
    for name in ("clean", "file", "was_jpeg"):
        assert np.abs(outs["yes"][name] - outs["no"][name]).mean() > 0.2, name  # the two bodies differ
    np.testing.assert_array_equal(outs["auto"]["clean"], outs["no"]["clean"])
    np.testing.assert_array_equal(outs["auto"]["file"], outs["yes"]["file"])
    np.testing.assert_array_equal(outs["auto"]["was_jpeg"], outs["yes"]["was_jpeg"])

    # --tta: by default on for JPEG input of this size, off otherwise; asked for, as asked
    for tta in ("yes", "no"):
        r = run_cli("restore", "--no-dewatermark", "--model", "kirei-fast", "--tta", tta, "--device", "cpu",
                    "-o", tmp_path / f"tta-{tta}", tmp_path / "clean.png", tmp_path / "file.jpg")
        assert r.returncode == 0, r.stderr
        outs[f"tta-{tta}"] = {n: np.asarray(Image.open(tmp_path / f"tta-{tta}" / f"{n}.png")).astype(int)
                              for n in ("clean", "file")}
    np.testing.assert_array_equal(outs["tta-yes"]["file"], outs["auto"]["file"])
    np.testing.assert_array_equal(outs["tta-no"]["clean"], outs["auto"]["clean"])
    assert np.abs(outs["tta-no"]["file"] - outs["auto"]["file"]).mean() > 0.05
    assert np.abs(outs["tta-yes"]["clean"] - outs["auto"]["clean"]).mean() > 0.05


def test_one_bad_input_fails_alone(tmp_path, inputs):
    (tmp_path / "junk.png").write_bytes(b"no picture here")
    data = inputs[0].read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
    out = tmp_path / "out"
    r = run_cli("restore", "--no-dewatermark", "-o", out, inputs[1], tmp_path / "missing.png",
                tmp_path / "junk.png", tmp_path / "cut.png", inputs[2])
    assert r.returncode == 1
    errs = _one_error_line(r.stderr)
    assert len(errs) == 3
    assert any("missing.png: no such file" in e for e in errs)
    assert any("junk.png" in e and "can't read" in e for e in errs)
    assert any("cut.png" in e and "truncated" in e for e in errs)
    assert sorted(p.name for p in out.iterdir()) == ["pic1.png", "pic2.png"]


def test_input_size_must_match_the_profile(tmp_path, inputs, profile_file):
    small = _save(np.zeros((50, 60, 3)), tmp_path / "small.png")
    out = tmp_path / "out"
    r = run_cli("restore", "--profile", profile_file, "-o", out, small, inputs[0])
    assert r.returncode == 1
    (err,) = _one_error_line(r.stderr)
    assert "small.png is 60x50 but the watermark profile is 120x160" in err
    assert [p.name for p in out.iterdir()] == ["pic0.png"]


def test_profile_that_is_not_rgba_png(tmp_path, inputs):
    _save(np.zeros((160, 120, 3)), tmp_path / "rgb.png")
    out = tmp_path / "out"
    r = run_cli("restore", "--profile", tmp_path / "rgb.png", "-o", out, *inputs)
    assert r.returncode == 2
    (err,) = _one_error_line(r.stderr)
    assert "the watermark profile" in err and "must be an RGBA PNG" in err
    assert not out.exists()  # a run that fails writes nothing, not even its folder


def test_unknown_and_unavailable_devices(tmp_path, inputs):
    r = run_cli("restore", "--device", "tpu", "-o", tmp_path / "out", inputs[0])
    assert r.returncode == 2 and "unknown device 'tpu'" in _one_error_line(r.stderr)[0]
    missing = "cuda" if not torch.cuda.is_available() else "mps"
    r = run_cli("restore", "--device", missing, "-o", tmp_path / "out", inputs[0])
    assert r.returncode == 2 and f"device '{missing}' is not available" in _one_error_line(r.stderr)[0]
    assert len(r.stderr.strip().splitlines()) == 1


def test_estimate_needs_two_inputs(tmp_path, inputs):
    r = run_cli("estimate", "-o", tmp_path / "p.png", inputs[0])
    assert r.returncode == 2 and "at least 2 pictures" in _one_error_line(r.stderr)[0]
    assert not (tmp_path / "p.png").exists()


def test_unwritable_output_folder(tmp_path, inputs):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    r = run_cli("restore", "-o", blocker / "out", inputs[0])
    assert r.returncode == 2 and "can't write to the output folder" in _one_error_line(r.stderr)[0]
    r = run_cli("estimate", "-o", blocker / "p.png", *inputs)
    assert r.returncode == 2 and "can't write to the output folder" in _one_error_line(r.stderr)[0]


def test_usage_errors_are_one_line(tmp_path, inputs):
    r = run_cli("restore", "--scale", "3", "-o", tmp_path / "out", inputs[0])
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "invalid choice" in r.stderr
    r = run_cli("restore", "--profile", "p.png", "--no-dewatermark", "-o", tmp_path / "out", inputs[0])
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_blind_batch_measures_the_shared_watermark(tmp_path, stamped_set):
    stamped, clean = stamped_set
    files = [_save(s, tmp_path / f"b{i}.png") for i, s in enumerate(stamped[:12])]
    out = tmp_path / "out"
    r = run_cli("restore", "--scale", "1", "-o", out, *files)
    assert r.returncode == 0, r.stderr
    res = np.asarray(Image.open(out / "b0.png"), np.float32) / 255
    assert np.abs(res - clean[0]).mean() < 0.5 * np.abs(stamped[0] - clean[0]).mean()


def test_blind_batch_without_a_watermark_says_so_and_only_upscales(tmp_path, stamped_set):
    _, clean = stamped_set
    files = [_save(np.rint(c * 255) / 255, tmp_path / f"c{i}.png") for i, c in enumerate(clean[:6])]
    r = run_cli("restore", "--method", "classic", "--scale", "1", "-o", tmp_path / "out", *files)
    assert r.returncode == 0, r.stderr
    assert "blind: no watermark shared by the 6 pictures was found (6 pictures of 120x160)" in r.stderr
    res = np.asarray(Image.open(tmp_path / "out" / "c0.png"), np.float32) / 255
    np.testing.assert_allclose(res, np.rint(clean[0] * 255) / 255, atol=1 / 255)


def test_folder_inputs_and_never_overwriting_an_input(tmp_path, inputs):
    r = run_cli("restore", "--no-dewatermark", "--scale", "1", "-o", tmp_path / "out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pic0.png", "pic1.png", "pic2.png"]
    before = inputs[0].read_bytes()
    r = run_cli("restore", "--no-dewatermark", "-o", tmp_path, inputs[0])
    assert r.returncode == 1 and "would overwrite this input" in _one_error_line(r.stderr)[0]
    assert inputs[0].read_bytes() == before


def test_blind_batch_with_a_broken_picture_still_restores_the_others(tmp_path, stamped_set):
    stamped, _ = stamped_set
    files = [_save(s, tmp_path / f"b{i}.png") for i, s in enumerate(stamped[:6])]
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])  # same header, truncated pixels
    out = tmp_path / "out"
    r = run_cli("restore", "--scale", "1", "-o", out, *files)
    assert r.returncode == 1
    (err,) = _one_error_line(r.stderr)
    assert "b0.png" in err and "truncated" in err
    assert sorted(p.name for p in out.iterdir()) == [f"b{i}.png" for i in range(1, 6)]


def test_learned_is_the_default_method_and_classic_stays_available(tmp_path, inputs, profile_file):
    outs = {}
    for name, extra in (("default", []), ("learned", ["--method", "learned"]), ("classic", ["--method", "classic"])):
        r = run_cli("restore", "--profile", profile_file, *extra, "-o", tmp_path / name, inputs[0])
        assert r.returncode == 0, r.stderr
        outs[name] = np.asarray(Image.open(tmp_path / name / "pic0.png"))
    np.testing.assert_array_equal(outs["default"], outs["learned"])
    assert np.abs(outs["learned"].astype(int) - outs["classic"].astype(int)).mean() > 0.5
    r = run_cli("restore", "--method", "magic", "-o", tmp_path / "x", inputs[0])
    assert r.returncode == 2 and "invalid choice: 'magic'" in _one_error_line(r.stderr)[0]


# ------------------------------------------------------------------ no input is ever overwritten
def test_outputs_are_checked_against_every_input_before_anything_is_written(tmp_path):
    d = tmp_path / "D"
    d.mkdir()
    rgb = np.zeros((20, 30, 3))
    for name in ("a.jpg", "a.png", "b.png"):
        _save(rgb + (0.5 if name == "a.jpg" else 0.2), d / name)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    r = run_cli("restore", "--no-dewatermark", "--method", "classic", "--scale", "1", "-o", d, d)
    assert r.returncode == 1
    errs = _one_error_line(r.stderr)
    assert len(errs) == 3 and all("would overwrite" in e for e in errs)
    assert any("a.jpg" in e and f"the input {d / 'a.png'}" in e for e in errs)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    r = run_cli("restore", "--no-dewatermark", "--method", "classic", "--scale", "1", "-o", d,
                d / "a.jpg", d / "a.png")
    assert r.returncode == 1 and len(_one_error_line(r.stderr)) == 2
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    (tmp_path / "link").symlink_to(d)  # the same folder by another path
    r = run_cli("restore", "--no-dewatermark", "--method", "classic", "--scale", "1", "-o", tmp_path / "link",
                d / "b.png")
    assert r.returncode == 1 and "would overwrite this input" in _one_error_line(r.stderr)[0]
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_an_output_never_overwrites_the_profile(tmp_path, inputs, profile_file):
    d = tmp_path / "D"
    d.mkdir()
    (d / "wm.png").write_bytes(profile_file.read_bytes())
    Image.open(inputs[0]).save(d / "wm.jpg")
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    r = run_cli("restore", "--profile", d / "wm.png", "--method", "classic", "--scale", "1", "-o", d, d / "wm.jpg")
    assert r.returncode == 1
    (err,) = _one_error_line(r.stderr)
    assert f"its output {d / 'wm.png'} would overwrite the watermark profile {d / 'wm.png'}" in err, err
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


# ------------------------------------------------------------------ bad input fails alone, in one line
@pytest.fixture
def bomb(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())  # 30000 x 30000 once decoded; ~100 KB here
    return path


def test_a_decompression_bomb_fails_alone_in_one_line(tmp_path, inputs, bomb):
    out = tmp_path / "out"
    r = run_cli("restore", "--method", "classic", "--scale", "1", "-o", out, inputs[0], bomb, inputs[1])
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    (err,) = _one_error_line(r.stderr)
    assert "bomb.png is 30000x30000 = 900.0 megapixels, more than Kirei reads" in err
    assert sorted(p.name for p in out.iterdir()) == ["pic0.png", "pic1.png"]
    r = run_cli("estimate", "-o", tmp_path / "p.png", inputs[0], bomb)  # left out, so too few to measure
    assert r.returncode == 2 and "Traceback" not in r.stderr
    left_out, too_few = _one_error_line(r.stderr)
    assert "bomb.png is 30000x30000" in left_out and "(left out)" in left_out
    assert "needs at least 2 pictures" in too_few


def test_a_bad_profile_is_one_line_that_names_the_profile(tmp_path, inputs, bomb):
    (tmp_path / "junk.png").write_bytes(b"junk")
    out = tmp_path / "out"
    for profile, reason in ((bomb, " is 30000x30000 = 900.0 megapixels"), (tmp_path / "missing.png", ": no such file"),
                            (tmp_path / "junk.png", ": can't read")):
        r = run_cli("restore", "--profile", profile, "-o", out, inputs[0])
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert f"kirei: error: the watermark profile {profile}{reason}" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not out.exists()


def test_a_fifo_input_is_refused_without_waiting_for_it(tmp_path, inputs):
    os.mkfifo(tmp_path / "fifo.png")  # opened to read, it would wait for a writer forever
    out = tmp_path / "out"
    r = run_cli("restore", "--method", "classic", "--scale", "1", "-o", out, tmp_path / "fifo.png", inputs[0],
                timeout=300)
    assert r.returncode == 1
    (err,) = _one_error_line(r.stderr)
    assert "fifo.png: not a regular file" in err
    assert [p.name for p in out.iterdir()] == ["pic0.png"]
    r = run_cli("estimate", "-o", tmp_path / "p.png", tmp_path / "fifo.png", inputs[0], timeout=300)
    assert r.returncode == 2 and "fifo.png: not a regular file" in _one_error_line(r.stderr)[0]


def test_a_failed_run_leaves_no_output_folder(tmp_path, inputs):
    (tmp_path / "junk.png").write_bytes(b"junk")
    out = tmp_path / "new" / "out"
    r = run_cli("restore", "--method", "classic", "-o", out, tmp_path / "junk.png")
    assert r.returncode == 1 and "junk.png" in _one_error_line(r.stderr)[0]
    assert not (tmp_path / "new").exists()
    r = run_cli("estimate", "-o", out / "p.png", tmp_path / "junk.png", tmp_path / "junk.png")
    assert r.returncode == 2 and "none of the inputs could be read" in r.stderr
    assert not (tmp_path / "new").exists()


def test_an_output_of_the_wrong_kind_is_a_clear_line(tmp_path, inputs):
    r = run_cli("restore", "-o", inputs[1], inputs[0])
    assert r.returncode == 2
    assert f"can't write to the output folder {inputs[1]}: it is a file, not a folder" in _one_error_line(r.stderr)[0]
    r = run_cli("estimate", "-o", tmp_path, *inputs)
    assert r.returncode == 2 and f"-o {tmp_path} is a folder: name the profile file" in _one_error_line(r.stderr)[0]


def test_damaged_weights_are_never_used(tmp_path, monkeypatch, capsys):
    from core import weights_io
    from core.cli import choose_method
    from core.errors import KireiError
    from core.models import DEFAULT_MODEL
    assert choose_method(None) == "learned"
    for name in (DEFAULT_MODEL, "kirei-fast"):  # core/weights/kirei-2.* and kirei-fast.*, both damaged
        for ext in (".safetensors", ".json"):
            data = open(weights_io.weights_path(name, ext), "rb").read()
            (tmp_path / (name + ext)).write_bytes(data[:len(data) // 2] if ext == ".safetensors" else data)
    monkeypatch.setattr(weights_io, "WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(KireiError, match="are damaged .*sha256"):
        choose_method("learned")
    assert choose_method(None) == "classic"
    assert f"warning: the model's weights {tmp_path / DEFAULT_MODEL}.safetensors" in capsys.readouterr().err
    with pytest.raises(KireiError, match="are damaged .*sha256"):  # named on purpose: no quiet fallback
        choose_method(None, "kirei-fast")
    os.remove(tmp_path / (DEFAULT_MODEL + ".safetensors"))  # not installed: the documented fallback, quietly
    assert choose_method(None) == "classic" and capsys.readouterr().err == ""
    with pytest.raises(KireiError, match="missing"):
        choose_method("learned")
    os.remove(tmp_path / "kirei-fast.safetensors")  # another model, named but not installed: an error
    with pytest.raises(KireiError, match="no model named 'kirei-fast' is installed"):
        choose_method(None, "kirei-fast")
    assert choose_method("classic") == "classic"


# ------------------------------------------------------------------ a helpful command line
_PARSE_ONLY = """
import sys
from core.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "numpy", "scipy", "PIL") if m in sys.modules)
print("exit", code, "heavy", ",".join(heavy) or "none")
"""


@pytest.mark.parametrize("args, says", [
    (["restore", "--scale", "3", "x.png", "-o", "out"], "argument --scale: invalid choice: 3"),
    (["restore", "--device", "tpu", "x.png", "-o", "out"], "unknown device 'tpu': choose one of auto, cpu"),
    (["restore", "--tile", "8", "x.png", "-o", "out"], "--tile must be at least 16, not 8"),
    (["restore", "--jpeg", "maybe", "x.png", "-o", "out"], "invalid choice: 'maybe'"),
    (["restore", "x.png"], "the following arguments are required: -o/--output"),
    (["estimate", "--save", "../x", "a.png", "b.png"], "a profile name is 1 to 64 letters"),
    (["profiles", "show", "a/b"], "a profile name is"),
    (["profiles", "rename"], "invalid choice: 'rename'"),
    (["upscale"], "invalid choice: 'upscale'"),
    (["--help"], ""), (["restore", "--help"], ""), (["profiles", "--help"], ""),
])
def test_arguments_are_checked_before_the_engine_loads(args, says):
    """Bad arguments are refused (and help printed) without importing torch, numpy or scipy: at
    once, instead of after the seconds torch takes to load."""
    r = subprocess.run([sys.executable, "-c", _PARSE_ONLY, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.stdout.splitlines()[-1] == f"exit {2 if says else 0} heavy none", r.stdout + r.stderr
    if says:
        (line,) = r.stderr.splitlines()
        assert line.startswith("kirei: error: ") and says in line, line


def _subcommands(parser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_option_has_help_and_shows_its_default():
    from core.cli import _Help, build_parser
    commands = _subcommands(build_parser())
    for name in ("restore", "estimate", "train", "serve"):
        formatter = _Help(f"python -m core {name}")
        for action in commands[name]._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            text = formatter._expand_help(action)
            assert text.strip(), f"{name} {action.option_strings[0]} has no help"
            if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings != ["-h", "--help"]:
                assert "default" in text and str(action.default) in text, f"{name} {action.option_strings}: {text}"


def test_help_says_what_restore_and_estimate_do_without_being_told():
    from core.cli import BLIND_BATCH_MIN, GOOD_ESTIMATE
    from core.defaults import MIN_PICTURES
    r = run_cli("restore", "--help")
    text = " ".join(r.stdout.split())
    assert r.returncode == 0 and "Without, it is removed blind" in text
    assert f"pictures of one size, {BLIND_BATCH_MIN} or more of them, are taken to share their watermark" in text
    assert "--scale {1,2,4} how many times larger (default: 2)" in text
    r = run_cli("estimate", "--help")
    text = " ".join(r.stdout.split())
    assert f"It needs at least {MIN_PICTURES} pictures of the same size" in text
    assert f"{GOOD_ESTIMATE} or more measure it well" in text


def test_a_large_picture_shows_its_progress_tile_by_tile(tmp_path):
    """Restoring one large picture moves a bar per tile (on a terminal: tqdm shows nothing in a pipe)."""
    import fcntl
    import pty
    import re
    import struct
    import termios
    _save(np.asarray(Image.new("RGB", (256, 192), (200, 120, 40)), np.float32) / 255, tmp_path / "big.png")
    try:
        main_fd, term = pty.openpty()
    except OSError as e:  # a bare chroot without /dev/pts (CI's fresh-machine step): no terminal to show it on
        pytest.skip(f"no pseudo-terminal to show a progress bar on: {e}")
    fcntl.ioctl(term, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's width (0: no bar)
    env = dict(os.environ, TQDM_MININTERVAL="0")  # every step drawn, however fast the tiles go
    proc = subprocess.Popen([sys.executable, "-m", "core", "restore", "--method", "classic", "--no-dewatermark",
                             "--scale", "2", "--tile", "32", "-o", str(tmp_path / "out"), str(tmp_path / "big.png")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=term, env=env)
    os.close(term)
    shown = b""
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(main_fd)
    assert proc.wait(timeout=300) == 0
    proc.stdout.close()
    steps = {int(p) for p in re.findall(rb"big\.png:\s+(\d+)%", shown)}
    # 48 tiles: the bar moves through the picture, not just from nothing to done
    assert len({s for s in steps if 0 < s < 100}) >= 8 and max(steps) >= 50, shown[-2000:]
