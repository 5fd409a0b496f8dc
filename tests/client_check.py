# -*- coding: utf-8 -*-
"""The client's checks that run under any Python, 2.7 included (no pytest, standard library only).

    KIREI_SERVER_URL=... KIREI_TOKEN_FILE=... python2.7 client_check.py CLIENT_DIR PICTURE.json

CLIENT_DIR holds kirei_client.py; PICTURE.json describes a picture and what to send. Prints one
JSON line: the sha256 of each result's pixels, their size and offset, and what each check saw;
tests/test_client_py27.py compares it with the engine's direct answer.
"""
from __future__ import print_function

import hashlib
import json
import sys
import threading


def main():
    sys.path.insert(0, sys.argv[1])
    import kirei_client as kc

    with open(sys.argv[2]) as fh:
        job = json.load(fh)
    with open(job["pixels_file"], "rb") as fh:
        pixels = fh.read()
    mask = None
    if job.get("mask_file"):
        with open(job["mask_file"], "rb") as fh:
            mask = fh.read()
    out = {"python": sys.version.split()[0]}
    client = kc.Client.from_environment()
    out["protocol"] = client.health()["protocol"]
    seen = []
    res = client.restore(pixels, job["width"], job["height"], job["channels"], job["dtype"], offset=job["offset"],
                         mask=mask, scale=job["scale"], watermark=job["watermark"], profile=job.get("profile"),
                         image_size=job.get("image_size"), progress=seen.append, matte=job.get("matte", False))
    out["result"] = {"sha256": hashlib.sha256(res.pixels).hexdigest(), "size": [res.width, res.height],
                     "channels": res.channels, "dtype": res.dtype, "offset": list(res.offset),
                     "matte_sha256": hashlib.sha256(res.matte).hexdigest() if res.matte is not None else None}
    out["progress_calls"] = len(seen)
    # a cancelled job raises Cancelled
    cancel = threading.Event()
    cancel.set()
    try:
        client.restore(pixels, job["width"], job["height"], job["channels"], job["dtype"], cancel=cancel,
                       watermark="none")
        out["cancel"] = "not cancelled"
    except kc.Cancelled:
        out["cancel"] = "Cancelled"
    # a wrong token is refused with a message, not a traceback
    bad = kc.Client(url=client.url, token="wrong")
    try:
        bad.health()
        out["wrong_token"] = "accepted"
    except kc.KireiClientError as e:
        out["wrong_token"] = type(e).__name__ + ": " + str(e)
    # malformed input is refused by the worker with its reason
    try:
        client.restore(pixels[:-1], job["width"], job["height"], job["channels"], job["dtype"], watermark="none")
        out["truncated"] = "accepted"
    except kc.JobFailed as e:
        out["truncated"] = str(e)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
