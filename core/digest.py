"""sha256 of a file, in blocks, and whether a weights file is the one its record names. Standard
library only: install.py (no torch) checks the shipped files with it as the engine checks its weights."""
import hashlib
import json
import os

WEIGHTS_EXT, RECORD_EXT = ".safetensors", ".json"  # core/weights/NAME.safetensors and its record NAME.json


def file_sha256(path, block=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def record_path(weights):
    """NAME.json, the record beside the weights NAME.safetensors."""
    base = weights[:-len(WEIGHTS_EXT)] if weights.endswith(WEIGHTS_EXT) else weights
    return base + RECORD_EXT


def sha256_problem(weights):
    """What is wrong with a weights file by its record's sha256, worded to follow "the model's weights
    PATH": missing, damaged, or the record unreadable. None when it matches, or when there is no
    record or it names no sha256 (then nothing can be said)."""
    record = record_path(weights)
    try:
        with open(record) as fh:
            want = json.load(fh).get("sha256")
    except FileNotFoundError:
        want = None
    except (OSError, ValueError, AttributeError) as e:
        return f"have an unreadable record {record} ({e})"
    if not os.path.isfile(weights):
        return "are missing"
    if want and file_sha256(weights) != want:
        return f"are damaged (not the sha256 in {record}: truncated or altered)"
    return None
