"""The waifu2x peers in ../shared/peers (upconv_7 and CUNet, art, 2x, no denoise), loaded the
same way by every benchmark: each is an nn.Module with upscale(N x 3 x H x W in [0, 1]) -> 2x,
run on the whole picture as one tile, as the peers' own command lines do.
"""
import importlib.util
import os

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS_DIR = os.path.join(os.path.dirname(ROOT), "shared", "peers")
# name -> (folder, module file, how that module loads the 2x art model with no denoise)
PEERS = {
    "waifu2x upconv_7": ("waifu2x", "waifu2x_upconv7.py",
                         lambda mod, folder: mod.load(os.path.join(folder, "upconv_7_art_scale2.0x_model.bin"))),
    "waifu2x CUNet": ("waifu2x_cunet", "waifu2x_cunet.py", lambda mod, folder: mod.load("scale2x")),
}


def _module(folder, file):
    # loaded from its file: the peers' folders are not packages, and each keeps its own helpers
    spec = importlib.util.spec_from_file_location(os.path.splitext(file)[0], os.path.join(folder, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_peers(device="cpu"):
    """{name: model in eval mode on device} for the peers that are there (an absent one is skipped)."""
    models = {}
    for name, (sub, file, load) in PEERS.items():
        folder = os.path.join(PEERS_DIR, sub)
        if os.path.isfile(os.path.join(folder, file)):
            models[name] = load(_module(folder, file), folder).eval().to(device)
    return models


def to_tensor(pixels_u8, device="cpu"):
    """H x W x 3 uint8 -> 1 x 3 x H x W float32 in [0, 1], as the peers take it."""
    return torch.from_numpy(np.ascontiguousarray(pixels_u8.transpose(2, 0, 1)))[None].to(device).float() / 255


def to_uint8(t):
    """The peer's output -> H x W x 3 uint8 (round half up, as the peers' own writers do)."""
    return np.floor(t[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
