"""The watermark's image formation model and its inverse.

A stamped picture is J = a*W + (1-a)*I: I the clean picture, W the watermark's colour and
a its opacity, per pixel. Arrays are float32 in [0, 1], H x W x C (alpha H x W).
"""
import numpy as np

# Below this transmittance (1-a) the inversion amplifies quantisation error more than 10x;
# such pixels are treated as opaque and filled from their surroundings instead.
MIN_TRANSMITTANCE = 0.1


def stamp(image, alpha, color):
    """Blend the watermark (alpha H x W, color H x W x C) onto an image (H x W x C)."""
    a = alpha[..., None]
    return a * color + (1.0 - a) * image


def invert(stamped, alpha, color, min_transmittance=MIN_TRANSMITTANCE):
    """Undo stamp(): I = (J - a*W) / (1-a), with 1-a clamped at min_transmittance."""
    a = alpha[..., None]
    return (stamped - a * color) / np.maximum(1.0 - a, min_transmittance)


def luma(rgb):
    """BT.601 luma of RGB values in [0, 1] (used to apply a colour watermark to grey pictures)."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
