"""Label-shift ("prior") correction: scribbles do not paint classes in the proportions they cover.

A user paints a thin vessel or a few small nuclei about as much as the large
background, so the painted pixels over-represent rare classes and a classifier
trained on them over-predicts those classes everywhere else.  The correction
predicts a fixed random sample of the *unpainted* pixels of the painted images,
takes the fraction of that sample each class wins as an estimate of the class's
true share, and from then on multiplies each class's probability by
``(estimated share / training share) ** alpha`` (rows renormalised to sum to 1).
``alpha = 1`` is the full Bayes correction of a plain label shift (Saerens et al.
2002, with a one-step estimate); ``alpha = 0.5`` (the default, see
:mod:`segapp.defaults`) goes half way in log space: the estimate comes from the
biased classifier itself, so trusting it fully overshoots.  On the benchmark
suite (``bench/explore.py``) alpha 0.3-1.0 all helped, 0.5-0.7 most; rescaling
the probabilities scored higher than refitting with class weights and costs no
second fit.

The *training share* is the share the classifier was trained with: the painted
share, or equal shares when it weights classes ``"balanced"`` (so the two compose:
balanced training, then the correction towards the estimated shares).

Examples
--------
>>> import numpy as np
>>> y = np.array([1] * 50 + [2] * 50)                 # painted half and half
>>> proba = np.tile([[0.9, 0.1]], (90, 1))            # ... but class 1 wins 90 % of the rest
>>> proba = np.r_[proba, np.tile([[0.2, 0.8]], (10, 1))]
>>> correction_scale(proba, y, np.array([1, 2]), alpha=1.0).round(2).tolist()
[1.8, 0.2]
>>> rescale(np.array([[0.5, 0.5]]), np.array([1.8, 0.2])).round(2).tolist()
[[0.9, 0.1]]
>>> correction_scale(proba, y, np.array([1, 2]), alpha=0.0).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

#: Unpainted pixels predicted to estimate the class shares (all painted images together).
SAMPLE_ROWS = 30_000
#: An image of at most this many feature tiles (4 MP at the default 1024-px tile) is sampled
#: everywhere; on a larger one the sample stays in the tiles under the paint, whose features the fit
#: computes anyway: each other tile would cost the first stroke ~14 s (1024 px with its context, the
#: default features, 2 CPUs), i.e. ~40 s of a 60 s first overlay on a 9 MP image with 3 random ones.
MAX_TILES = 4
#: Smallest share a class is estimated at (a class the first fit never predicts keeps some weight).
MIN_SHARE = 1e-3


def check_alpha(alpha) -> float:
    """``alpha`` as a float in [0, 1] (None = 0, off); anything else raises ConfigError."""
    if alpha is None or alpha is False:
        return 0.0
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"prior_correction must be a number in [0, 1], got {alpha!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"prior_correction must be a number in [0, 1] (0 = off), got {alpha!r}")
    return value


def correction_scale(proba: np.ndarray, y: np.ndarray, classes: np.ndarray, alpha: float,
                     class_weight=None) -> np.ndarray:
    """Per-class factors ``(estimated share / training share) ** alpha``, in the order of ``classes``.

    Parameters
    ----------
    proba : ndarray (N, K)
        Probabilities of the unpainted sample, columns in the order of ``classes``.
    y : ndarray (M,)
        Class ids of the painted pixels the classifier was trained on.
    classes : ndarray (K,)
        The classifier's ``classes_``.
    alpha : float
        Strength in [0, 1]; 0 gives 1 for every class.
    class_weight : None or "balanced"
        The classifier's; ``"balanced"`` trains as if every class had an equal share.
    """
    classes = np.asarray(classes)
    if proba.shape[0] == 0 or classes.size < 2 or alpha == 0:
        return np.ones(classes.size)
    if class_weight == "balanced":
        trained = np.full(classes.size, 1.0 / classes.size)
    else:
        trained = np.array([(y == c).mean() for c in classes])
    estimated = np.bincount(np.argmax(proba, axis=1), minlength=classes.size) / proba.shape[0]
    return (np.maximum(estimated, MIN_SHARE) / np.maximum(trained, MIN_SHARE)) ** alpha


def rescale(proba: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """``proba * scale`` with rows renormalised to sum to 1 (in place for float arrays; None = as is)."""
    if scale is None:
        return proba
    proba *= scale.astype(proba.dtype)
    proba /= np.maximum(proba.sum(axis=-1, keepdims=True), np.finfo(proba.dtype).tiny)
    return proba


def check_scale(scale, n_classes: int) -> np.ndarray:
    """A saved scale as a float64 array of ``n_classes`` finite positive numbers, else ValueError."""
    arr = np.asarray(scale, dtype=np.float64)
    if arr.shape != (n_classes,) or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValueError(f"prior scale must be {n_classes} finite positive numbers")
    return arr


def sample_unpainted(labels: list[np.ndarray], n_rows: int = SAMPLE_ROWS, seed: int = 0,
                     regions: list[np.ndarray | None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row/column indices of a fixed random sample of unpainted pixels, per label image.

    The ``n_rows`` are shared among the images in proportion to their available
    pixels (unpainted, and inside ``regions[i]`` when given: a boolean mask, None =
    everywhere); only images with some paint take part.  Images painted everywhere
    give empty samples.

    Examples
    --------
    >>> lab = np.zeros((100, 100), np.uint8); lab[:10] = 1
    >>> (rr, cc), = sample_unpainted([lab], n_rows=500)
    >>> rr.size, bool((lab[rr, cc] == 0).all())
    (500, True)
    """
    rng = np.random.default_rng(seed)
    regions = regions or [None] * len(labels)
    avail = [(np.asarray(lab) == 0) & (True if reg is None else reg) if np.any(lab) else None
             for lab, reg in zip(labels, regions)]
    free = [0 if a is None else int(np.count_nonzero(a)) for a in avail]
    total = sum(free)
    out = []
    for lab, reg, a, n_free in zip(labels, regions, avail, free):
        want = 0 if total == 0 else min(n_free, int(round(n_rows * n_free / total)))
        if want == 0:
            pick = np.zeros(0, np.int64)
        else:
            flat = a.reshape(-1)
            if n_free > 4 * want:   # mostly available (the usual case): draw, keep the available ones
                draw = 2 * want if reg is None else int(2 * want * flat.size / n_free)
                draw = rng.choice(flat.size, size=min(flat.size, draw + 64), replace=False)
                pick = draw[flat[draw]][:want]
                if pick.size < want:
                    pick = rng.choice(np.flatnonzero(flat), size=want, replace=False)
            else:
                pick = rng.choice(np.flatnonzero(flat), size=want, replace=False)
        out.append(np.unravel_index(np.sort(pick), np.shape(lab)))
    return out


def tile_region(grid, lab: np.ndarray, max_tiles: int = MAX_TILES, seed: int = 0) -> np.ndarray | None:
    """Boolean mask of the tiles of ``grid`` the sample may use: those under the paint (None: the
    grid has at most ``max_tiles`` tiles, use the whole image).  ``seed`` is kept for callers.

    Examples
    --------
    >>> from segapp.features.tiles import TileGrid
    >>> lab = np.zeros((100, 100), np.uint8); lab[5, 5] = 1
    >>> region = tile_region(TileGrid((100, 100), 25, 0, 1), lab, max_tiles=3)
    >>> int(region.sum()), bool(region[5, 5])
    (625, True)
    """
    tiles = list(grid)
    if len(tiles) <= max_tiles:
        return None
    painted = set(np.unique(grid.of_pixels(*np.nonzero(lab))).tolist())
    region = np.zeros(np.shape(lab), bool)
    for t in painted:
        y0, y1, x0, x1 = grid.box(tiles[t])
        region[y0:y1, x0:x1] = True
    return region
