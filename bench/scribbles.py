"""Scribble simulator: strokes drawn from a ground-truth mask at a given pixel density.

Like Convpaint's evaluation, a simulated user paints short strokes well inside
each class region until a target fraction of the image's pixels is labelled,
split evenly between classes (people paint every class, not in proportion to
its area).  Strokes never cross a class boundary, so the labels are correct.

Examples
--------
>>> import numpy as np
>>> gt = np.ones((100, 100), np.uint8); gt[:, 50:] = 2
>>> lab = simulate_scribbles(gt, 0.01, seed=0)
>>> 50 <= np.count_nonzero(lab) <= 200 and set(np.unique(lab)) == {0, 1, 2}
True
>>> bool(np.all((lab == 0) | (lab == gt)))
True
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line


def _stroke(inside: np.ndarray, rng, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """One random-walk polyline of 1-px width inside ``inside`` (bool)."""
    ys, xs = np.nonzero(inside)
    i = rng.integers(ys.size)
    y, x = float(ys[i]), float(xs[i])
    angle = rng.uniform(0, 2 * np.pi)
    rr, cc = [int(y)], [int(x)]
    length = 0
    while length < max_len:
        angle += rng.normal(0, 0.35)
        ny, nx = y + 3 * np.sin(angle), x + 3 * np.cos(angle)
        iy, ix = int(round(ny)), int(round(nx))
        if not (0 <= iy < inside.shape[0] and 0 <= ix < inside.shape[1]) or not inside[iy, ix]:
            break
        r, c = line(int(round(y)), int(round(x)), iy, ix)
        rr.extend(r[1:]), cc.extend(c[1:])
        y, x, length = ny, nx, length + 3
    return np.array(rr), np.array(cc)


def simulate_scribbles(gt: np.ndarray, density: float, seed: int = 0, width: int = 3,
                       max_len: int = 60, valid: np.ndarray | None = None) -> np.ndarray:
    """Label image with about ``density`` of the pixels painted, from ``gt`` classes 1..K.

    Parameters
    ----------
    gt : ndarray of int
        Ground truth, classes 1..K (0 is never painted).
    density : float
        Fraction of all pixels to paint (0.01 = 1 %).
    width : int
        Stroke width in pixels.
    valid : ndarray of bool, optional
        Only paint here (e.g. DRIVE's field of view).
    """
    rng = np.random.default_rng(seed)
    classes = [c for c in np.unique(gt) if c != 0]
    budget = max(1, int(density * gt.size / len(classes)))
    out = np.zeros(gt.shape, np.uint8)
    pen = ndi.generate_binary_structure(2, 1) if width <= 3 else np.ones((width, width), bool)
    for c in classes:
        region = gt == c
        if valid is not None:
            region &= valid
        inside = ndi.binary_erosion(region, iterations=max(1, width // 2 + 1))
        if not inside.any():
            inside = region
        if not inside.any():
            continue
        painted = np.zeros(gt.shape, bool)
        for _ in range(10_000):
            if painted.sum() >= budget:
                break
            rr, cc = _stroke(inside, rng, max_len)
            stroke = np.zeros(gt.shape, bool)
            stroke[rr, cc] = True
            if width > 1:
                stroke = ndi.binary_dilation(stroke, pen)
            painted |= stroke & region
        out[painted] = c
    return out
