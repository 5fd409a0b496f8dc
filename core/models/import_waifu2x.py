"""Build kirei-2 / kirei-fast starting weights from waifu2x's MIT-licensed ncnn models.

    python -m core.models.import_waifu2x --peers ../shared/peers            # both, into core/weights
    python -m core.models.import_waifu2x --peers ../shared/peers --only kirei-2 --out-dir /tmp/w

The bodies are waifu2x's "art" 2x models (no denoise, and noise level 1 for JPEG input) read
into our own UpCUNet / UpConv7 definitions; the front-end starts as exact inversion (its last
layer is zero); the blind matte head is taken from --matte (a Kirei safetensors file holding
matte.* tensors; by default the model being replaced), else left untrained. The record says
where every tensor came from, with the sha256 of each source file; the licences go to
core/weights/NOTICE-waifu2x.txt.
"""
import argparse
import os
import sys

import torch
from safetensors.torch import load_file

from .. import __version__
from ..weights_io import WEIGHTS_DIR, save_weights, weights_path
from .kirei2 import Kirei2, count_parameters
from .ncnn import load_into

# model name -> (body, peers subfolder, ncnn stem of the clean body, of the JPEG body)
SOURCES = {
    "kirei-2": ("upcunet", "waifu2x_cunet", "scale2.0x_model", "noise1_scale2.0x_model"),
    "kirei-fast": ("upconv7", "waifu2x", "upconv_7_art_scale2.0x_model", "upconv_7_art_noise1_scale2.0x_model"),
}
UPSTREAM = {
    "upcunet": "nihui/waifu2x-ncnn-vulkan 64914665c45893135c9e50c1c296170a121b9f77 models/models-cunet "
               "(nagadomi/waifu2x models/cunet/art, via lltcggie/waifu2x-caffe)",
    "upconv7": "nihui/waifu2x-ncnn-vulkan 64914665c45893135c9e50c1c296170a121b9f77 "
               "models/models-upconv_7_anime_style_art_rgb (nagadomi/waifu2x models/upconv_7/art)",
}
LICENCE = "MIT (nagadomi/waifu2x; lltcggie/waifu2x-caffe; nihui/waifu2x-ncnn-vulkan): core/weights/NOTICE-waifu2x.txt"
NOTICE = "NOTICE-waifu2x.txt"
SPEED = {"upcunet": "slow: best pictures", "upconv7": "fast: about 0.4x kirei-2's time"}


def import_model(name, peers, matte=None, seed=0):
    """(model, record) for a shipped model name, its bodies read from the peers folder."""
    body, folder, clean, jpeg = SOURCES[name]
    torch.manual_seed(seed)  # the front-end's hidden layers start random (its output layer at zero)
    model = Kirei2(body=body, jpeg_body=True)
    sources = {}
    for part, stem in (("body", clean), ("body_jpeg", jpeg)):
        base = os.path.join(peers, folder, stem)
        param = base + ".param"
        if not os.path.exists(param):  # waifu2x's noise variants share the clean model's graph
            param = os.path.join(peers, folder, clean + ".param")
        sources[part] = {"file": os.path.basename(base) + ".bin", "sha256": load_into(getattr(model, part), param,
                                                                                      base + ".bin")}
    matte_from = None
    if matte and os.path.exists(matte):
        state = {k[len("matte."):]: v for k, v in load_file(matte).items() if k.startswith("matte.")}
        model.matte.load_state_dict(state)
        matte_from = os.path.basename(matte)
    record = {
        "architecture": model.architecture, "config": model.config, "version": __version__,
        "parameters": count_parameters(model), "speed": SPEED[body],
        "starting_weights": {"upstream": UPSTREAM[body], "licence": LICENCE, **sources},
        "front_end": "untrained: exact inversion of the blend",
        "matte": f"from {matte_from}" if matte_from else "untrained",
    }
    return model.eval(), record


def write_notice(peers, out_dir):
    """The MIT licences of everything the bodies come from, shipped beside the weights."""
    parts = ["Kirei's kirei-2 and kirei-fast bodies start from waifu2x's art models (nagadomi/waifu2x),\n"
             "as converted by lltcggie/waifu2x-caffe and nihui/waifu2x-ncnn-vulkan. Their licences:\n"]
    seen = set()
    for _, folder, _, _ in SOURCES.values():
        for f in sorted(os.listdir(os.path.join(peers, folder))):
            if f.startswith("LICENSE") and f not in seen:
                seen.add(f)
                with open(os.path.join(peers, folder, f), encoding="utf-8") as fh:
                    parts.append(f"\n==== {f[len('LICENSE.'):-len('.txt')]} ====\n\n{fh.read().strip()}\n")
    with open(os.path.join(out_dir, NOTICE), "w", encoding="utf-8") as fh:
        fh.write("".join(parts))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m core.models.import_waifu2x", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", required=True, help="folder holding waifu2x_cunet/ and waifu2x/ (ncnn files)")
    ap.add_argument("--only", choices=sorted(SOURCES), action="append", help="import only this model")
    ap.add_argument("--out-dir", default=WEIGHTS_DIR)
    ap.add_argument("--matte", default=None, help="safetensors to take the blind matte head from "
                                                  "(default: the model being replaced, if any)")
    a = ap.parse_args(argv)
    os.makedirs(a.out_dir, exist_ok=True)
    for name in a.only or sorted(SOURCES):
        target = os.path.join(a.out_dir, name)
        model, record = import_model(name, a.peers, a.matte or weights_path(target))
        path = save_weights(model, target, record)
        print(f"{path}: {record['parameters']:,} parameters, matte {record['matte']}")
    write_notice(a.peers, a.out_dir)


if __name__ == "__main__":
    sys.exit(main())
