#!/usr/bin/env python3
"""Put the scorer's figures into the shipped weights' record (core/weights/<name>.json).

    python ../shared/tools/score.py --json /tmp/score.json
    .venv/bin/python benchmarks/record_scores.py /tmp/score.json [--name kirei-x2] [--extra blind_single.json]
"""
import argparse
import json
import os
import sys
from datetime import date

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.weights_io import DEFAULT_MODEL, describe, weights_path, write_record  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("score_json", help="the file score.py --json wrote")
    ap.add_argument("--name", default=DEFAULT_MODEL)
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=FILE",
                    help="more figures to keep, e.g. blind_single=/tmp/blind.json")
    a = ap.parse_args()
    with open(a.score_json) as fh:
        score = json.load(fh)
    record = describe(a.name)  # kept whole: its sha256 still describes the weights
    record["scores"] = {"date": date.today().isoformat(), "watermark": score.get("watermark"),
                        "scale": 2, "pictures": len(score.get("pictures", [])),
                        "summary": {k: {m: (round(v, 4) if isinstance(v, float) else v) for m, v in row.items()}
                                    for k, row in score["summary"].items()}}
    for item in a.extra:
        key, _, file = item.partition("=")
        with open(file) as fh:
            record["scores"][key] = json.load(fh)
    write_record(a.name, record)
    print(f"scores written into {weights_path(a.name, '.json')}")


if __name__ == "__main__":
    main()
