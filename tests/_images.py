"""Synthetic images shared by the web-app tests (callback and browser tests)."""

from __future__ import annotations

import numpy as np


def disk(h: int, w: int, seed: int = 0, base: float = 40, noise: float = 20) -> np.ndarray:
    """A bright disk (radius a quarter of the short side) on a dark noisy background, uint8 grey.

    Examples
    --------
    >>> img = disk(20, 30)
    >>> img.shape, img.dtype, bool(img[10, 15] > 150 > img[0, 0])
    ((20, 30), dtype('uint8'), True)
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = base + noise * rng.random((h, w))
    img[np.hypot(yy - h / 2, xx - w / 2) < min(h, w) / 4] += 150
    return img.astype(np.uint8)
