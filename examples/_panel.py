"""Tiny helper for the gallery: image | scribbles | result side by side, saved as PNG."""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from segapp import io  # noqa: E402


def colorize(labels, colors, base=None, alpha=0.5):
    """Class ids -> RGB, blended over ``base`` (uint8 RGB) where labels > 0."""
    lut = np.zeros((int(labels.max()) + 1, 3), np.uint8)
    for i, c in colors.items():
        if i < lut.shape[0]:
            lut[i] = [int(c[k:k + 2], 16) for k in (1, 3, 5)]
    rgb = lut[labels]
    if base is None:
        return rgb
    out = base.astype(np.float32)
    m = labels > 0
    out[m] = (1 - alpha) * out[m] + alpha * rgb[m]
    return out.astype(np.uint8)


def save_panel(path, image, scribbles, result, colors):
    """Write ``image | scribbles over image | result over image`` to ``path``."""
    base = io.to_display_rgb(image if image.ndim == 3 else image[..., None])
    tiles = [base, colorize(scribbles, colors, base, 0.9), colorize(result, colors, base, 0.45)]
    Image.fromarray(np.concatenate(tiles, axis=1)).save(path)
    return path
