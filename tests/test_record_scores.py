"""benchmarks/record_scores.py: the scorer's figures into a model's record, whole or updated."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module():
    spec = importlib.util.spec_from_file_location("record_scores", os.path.join(ROOT, "benchmarks", "record_scores.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _score(cases):
    return {"watermark": "w.npz", "pictures": ["a", "b"],
            "summary": {**{f"ours:{c}": {"psnr_y": v, "ssim_y": 0.9} for c, v in cases.items()},
                        "cunet(clean)": {"psnr_y": 39.48}}}


def test_an_update_keeps_the_cases_it_did_not_score_and_says_when_each_was():
    rs = _module()
    old = rs.scores_from(_score({"clean": 39.481, "jpeg": 36.221}), "kirei-2")
    old["date"] = "2026-12-06"
    old["other_watermark"] = {"jpeg": 36.35}
    new = rs.scores_from(_score({"jpeg": 36.401}), "kirei-2")
    new["date"] = "2026-12-07"
    got = rs.updated(old, new)
    assert got["clean"] == 39.48 and got["jpeg"] == 36.4
    assert got["scored"] == {"clean": "2026-12-06", "jpeg": "2026-12-07"}
    assert got["summary"]["ours:clean"]["psnr_y"] == 39.481 and got["summary"]["ours:jpeg"]["psnr_y"] == 36.401
    assert got["other_watermark"] == {"jpeg": 36.35} and got["date"] == "2026-12-07"
    again = rs.updated(got, rs.scores_from(_score({"clean": 39.5}), "kirei-2") | {"date": "2026-12-08"})
    assert again["scored"] == {"clean": "2026-12-08", "jpeg": "2026-12-07"}
