#!/usr/bin/env python3
"""Put the scorer's figures into a shipped model's record (core/weights/<name>.json), where
`python -m core models` shows them.

    python ../shared/tools/score.py --restore-args "--model NAME" --json /tmp/score.json
    .venv/bin/python benchmarks/record_scores.py /tmp/score.json [--name NAME] [--extra NAME=FILE] [--update]

NAME defaults to the default model (core.models.DEFAULT_MODEL); the scorer's figures must be of
that model (score.py's own JSON does not say which model it ran, so it is the caller's word).
The record gets "scores": each of our cases' mean PSNR-Y as a number under the case's name
(clean, profile, estimate, blind, jpeg, single, unstamped: what was scored), and the scorer's
whole summary (ours and the peers) beside them. The rest of the record, its sha256 included, is kept.
--update keeps the record's figures of the cases (and summary rows) this run did not score, and
says which cases were scored when: for a change that only some cases can see (the stamp body
acts only on JPEG input).
"""
import argparse
import json
import os
import sys
from datetime import date

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.errors import KireiError  # noqa: E402
from core.models import DEFAULT_MODEL  # noqa: E402
from core.weights_io import describe, verify, weights_path, write_record  # noqa: E402

OURS = "ours:"  # the scorer's prefix for the project's own rows


def scores_from(score, name):
    """The record's "scores" from the scorer's JSON (a ValueError says what is missing)."""
    summary = score.get("summary") if isinstance(score, dict) else None
    if not isinstance(summary, dict):
        raise ValueError("it has no \"summary\": is it score.py's --json output?")
    cases = {k[len(OURS):]: row["psnr_y"] for k, row in summary.items()
             if k.startswith(OURS) and isinstance(row, dict) and isinstance(row.get("psnr_y"), (int, float))}
    if not cases:
        raise ValueError("it holds no figures of ours (no \"ours:<case>\" rows with a psnr_y)")
    rounded = {k: {m: (round(v, 4) if isinstance(v, float) else v) for m, v in row.items()}
               for k, row in summary.items()}
    return {"model": name, "date": date.today().isoformat(), "watermark": score.get("watermark"), "scale": 2,
            "pictures": len(score.get("pictures", [])), "metric": "PSNR-Y dB, mean over the pictures",
            **{case: round(v, 2) for case, v in cases.items()}, "summary": rounded}


def updated(old, new):
    """The record's scores `old` with the cases, summary rows and extras of `new` put over them;
    "scored" says on which date each case's figure was measured."""
    cases = [k for k, v in new.items() if isinstance(v, float)]
    scored = dict(old.get("scored") or {k: old.get("date") for k, v in old.items() if isinstance(v, float)})
    scored.update({k: new["date"] for k in cases})
    summary = {**(old.get("summary") or {}), **new["summary"]}
    return {**old, **new, "summary": summary, "scored": scored}


def read_json(path, then=lambda x: x):
    """then(the JSON in path), or exit with a one-line error naming the file."""
    try:
        with open(path) as fh:
            return then(json.load(fh))
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise SystemExit(f"error: {path}: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("score_json", help="the file score.py --json wrote")
    ap.add_argument("--name", default=DEFAULT_MODEL, help=f"the model scored (default {DEFAULT_MODEL})")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=FILE",
                    help="more figures to keep, e.g. other_watermark=/tmp/other.json")
    ap.add_argument("--update", action="store_true",
                    help="keep the record's figures of the cases this run did not score")
    a = ap.parse_args()
    extras = [item.partition("=") for item in a.extra]
    if any(not key or not sep or not file for key, sep, file in extras):
        ap.error("--extra takes NAME=FILE")
    try:
        verify(a.name)  # a record is only worth scores when its weights are there and whole
        record = describe(a.name)
    except (KireiError, OSError) as e:
        raise SystemExit(f"error: model {a.name!r}: {e}")
    scores = read_json(a.score_json, lambda score: scores_from(score, a.name))
    for key, _, file in extras:
        if key in scores:
            ap.error(f"--extra {key}: that name is already one of the scorer's figures")
        scores[key] = read_json(file)
    if a.update and isinstance(record.get("scores"), dict):
        scores = updated(record["scores"], scores)
    record["scores"] = scores
    write_record(a.name, record)
    figures = ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if isinstance(v, float))
    print(f"scores written into {weights_path(a.name, '.json')}: PSNR-Y {figures}")


if __name__ == "__main__":
    main()
