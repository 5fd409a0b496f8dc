"""Reading ncnn models (.param text + .bin weights) into Kirei's own PyTorch modules.

Only what importing waifu2x needs: the weighted layers (Convolution, Deconvolution,
InnerProduct) are read in file order and copied, shape-checked, into the matching layers of
a module we define (in its registration order). Nothing of ncnn runs at run time.

.param: magic 7767517, "layers blobs", then per layer: type name n_in n_out in... out... k=v...
.bin: per weighted layer, the weight blob (a 4-byte tag: 0 or 0x0002C056 float32, 0x01306B47
float16) then, when the layer has one, the bias (plain float32, no tag).
Layouts: Convolution [out][in][kh][kw]; Deconvolution [out][in][kh][kw] (torch keeps the
transpose, [in][out][kh][kw]); InnerProduct [out][in].
"""
import numpy as np
import torch
import torch.nn as nn

from ..digest import file_sha256

MAGIC = "7767517"
TAG_FP32 = (0, 0x0002C056)
TAG_FP16 = 0x01306B47
WEIGHTED = {"Convolution": nn.Conv2d, "Deconvolution": nn.ConvTranspose2d, "InnerProduct": nn.Linear}


def read_layers(param_path):
    """[(type, name, {key: value})] of the .param file, values as strings."""
    with open(param_path, encoding="utf-8") as fh:
        lines = [ln.split() for ln in fh if ln.strip()]
    if not lines or lines[0] != [MAGIC]:
        raise ValueError(f"{param_path} is not an ncnn text .param file")
    layers = []
    for parts in lines[2:]:
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        params = dict(kv.split("=", 1) for kv in parts[4 + n_in + n_out:])
        layers.append((kind, name, params))
    return layers


class _Reader:
    def __init__(self, path):
        with open(path, "rb") as fh:
            self.buf = fh.read()
        self.path, self.pos = path, 0

    def _need(self, nbytes):
        if self.pos + nbytes > len(self.buf):
            raise ValueError(f"{self.path}: truncated ({len(self.buf)} bytes; its layers need more)")

    def _take(self, dtype, n):
        self._need(np.dtype(dtype).itemsize * n)
        a = np.frombuffer(self.buf, dtype, n, self.pos)
        self.pos += (a.nbytes + 3) // 4 * 4
        return a.astype(np.float32)

    def weight(self, n):
        self._need(4)
        tag = int(np.frombuffer(self.buf, "<u4", 1, self.pos)[0])
        self.pos += 4
        if tag in TAG_FP32:
            return self._take("<f4", n)
        if tag == TAG_FP16:
            return self._take("<f2", n)
        raise ValueError(f"unsupported ncnn weight storage (tag {tag:#x})")

    def raw(self, n):
        return self._take("<f4", n)


def load_into(module, param_path, bin_path):
    """Copy an ncnn model's weights into `module`, whose weighted layers must match the file's
    one for one, in order, with the same shapes. Returns the sha256 of the .bin file."""
    ours = [m for m in module.modules() if isinstance(m, tuple(WEIGHTED.values()))]
    theirs = [(k, n, p) for k, n, p in read_layers(param_path) if k in WEIGHTED]
    if len(ours) != len(theirs):
        raise ValueError(f"{param_path}: {len(theirs)} weighted layers, the module has {len(ours)}")
    data = _Reader(bin_path)
    for layer, (kind, name, p) in zip(ours, theirs):
        if not isinstance(layer, WEIGHTED[kind]):
            raise ValueError(f"{name}: an ncnn {kind} where the module has {type(layer).__name__}")
        w = layer.weight
        shape = (w.shape[1], w.shape[0]) + tuple(w.shape[2:]) if kind == "Deconvolution" else tuple(w.shape)
        count, bias_key = ("2", "1") if kind == "InnerProduct" else ("6", "5")
        if int(p[count]) != w.numel() or int(p["0"]) != shape[0]:
            raise ValueError(f"{name}: {p['0']} outputs, {p[count]} weights; the module's layer is {tuple(w.shape)}")
        values = torch.from_numpy(data.weight(w.numel()).reshape(shape))
        with torch.no_grad():
            w.copy_(values.transpose(0, 1) if kind == "Deconvolution" else values)
            has_bias = p.get(bias_key, "0") != "0"
            if has_bias != (layer.bias is not None):
                raise ValueError(f"{name}: bias {'present' if has_bias else 'absent'} in the file, not in the module")
            if has_bias:
                layer.bias.copy_(torch.from_numpy(data.raw(layer.bias.numel())))
    if data.pos != len(data.buf):
        raise ValueError(f"{bin_path}: {len(data.buf) - data.pos} bytes left over after the last layer")
    return file_sha256(bin_path)
