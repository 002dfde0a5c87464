"""Label-shift ("prior") correction: scribbles do not paint classes in the proportions they cover.

A user paints a thin vessel or a few small nuclei about as much as the large
background, so the painted pixels over-represent rare classes and a classifier
trained on them over-predicts those classes everywhere else.  The correction
fits once, predicts a fixed random sample of the *unpainted* pixels of the
painted images, takes the fraction of that sample each class wins as an
estimate of the class's true share, and refits with each class's pixels
weighted by ``(estimated share / painted share) ** alpha``.  ``alpha = 1`` is
the full correction of a plain label shift; ``alpha = 0.5`` (the default, see
:mod:`segapp.defaults`) goes half way in log space, which was the plateau on
the benchmark suite (``bench/explore.py``, ``bench/accuracy.py``): the first fit
is itself biased, so trusting its estimate fully overshoots.

The weights multiply whatever ``class_weight`` the classifier already applies
(``"balanced"`` then acts on top of them, inside the classifier).

Examples
--------
>>> import numpy as np
>>> y = np.array([1] * 50 + [2] * 50)                 # painted half and half
>>> proba = np.tile([[0.9, 0.1]], (90, 1))            # ... but class 1 wins 90 % of the rest
>>> proba = np.r_[proba, np.tile([[0.2, 0.8]], (10, 1))]
>>> w = correction_weights(proba, y, np.array([1, 2]), alpha=1.0)
>>> {int(c): round(v, 2) for c, v in w.items()}
{1: 1.8, 2: 0.2}
>>> correction_weights(proba, y, np.array([1, 2]), alpha=0.0)
{1: 1.0, 2: 1.0}
"""

from __future__ import annotations

import inspect

import numpy as np

from .errors import ConfigError

#: Unpainted pixels predicted to estimate the class shares (all painted images together).
SAMPLE_ROWS = 30_000
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


def correction_weights(proba: np.ndarray, y: np.ndarray, classes: np.ndarray, alpha: float) -> dict:
    """Per-class weights ``{class id: (estimated share / painted share) ** alpha}``.

    Parameters
    ----------
    proba : ndarray (N, K)
        Probabilities of the unpainted sample, columns in the order of ``classes``.
    y : ndarray (M,)
        Class ids of the painted pixels the classifier was trained on.
    classes : ndarray (K,)
        The classifier's ``classes_``.
    alpha : float
        Strength in [0, 1]; 0 gives weight 1 for every class.
    """
    classes = np.asarray(classes)
    if proba.shape[0] == 0 or classes.size < 2 or alpha == 0:
        return {int(c): 1.0 for c in classes}
    painted = np.array([(y == c).mean() for c in classes])
    estimated = np.bincount(np.argmax(proba, axis=1), minlength=classes.size) / proba.shape[0]
    ratio = np.maximum(estimated, MIN_SHARE) / np.maximum(painted, MIN_SHARE)
    return {int(c): float(w) for c, w in zip(classes, ratio ** alpha)}


def sample_unpainted(labels: list[np.ndarray], n_rows: int = SAMPLE_ROWS,
                     seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row/column indices of a fixed random sample of unpainted pixels, per label image.

    The ``n_rows`` are shared among the images in proportion to their unpainted
    pixels; only images with some paint take part.  Images painted everywhere
    give empty samples.

    Examples
    --------
    >>> lab = np.zeros((100, 100), np.uint8); lab[:10] = 1
    >>> (rr, cc), = sample_unpainted([lab], n_rows=500)
    >>> rr.size, bool((lab[rr, cc] == 0).all())
    (500, True)
    """
    rng = np.random.default_rng(seed)
    free = [int(lab.size - np.count_nonzero(lab)) if np.any(lab) else 0 for lab in labels]
    total = sum(free)
    out = []
    for lab, n_free in zip(labels, free):
        want = 0 if total == 0 else min(n_free, int(round(n_rows * n_free / total)))
        flat = np.asarray(lab).reshape(-1)
        if want == 0:
            pick = np.zeros(0, np.int64)
        elif n_free > 4 * want:   # mostly unpainted (the usual case): draw, keep the unpainted ones
            draw = rng.choice(flat.size, size=min(flat.size, 2 * want + 64), replace=False)
            pick = draw[flat[draw] == 0][:want]
            if pick.size < want:
                pick = rng.choice(np.flatnonzero(flat == 0), size=want, replace=False)
        else:
            pick = rng.choice(np.flatnonzero(flat == 0), size=want, replace=False)
        pick = np.sort(pick)
        out.append(np.unravel_index(pick, lab.shape))
    return out


def fit_weighted(clf, X: np.ndarray, y: np.ndarray, weights: dict):
    """``clf.fit`` with each row weighted by its class's weight (``sample_weight``).

    Raises ConfigError for a classifier whose ``fit`` takes no ``sample_weight``.
    """
    if "sample_weight" not in inspect.signature(clf.fit).parameters:
        raise ConfigError(f"{type(clf).__name__} takes no sample weights; set prior_correction=0 for it")
    lut = np.array([weights[int(c)] for c in np.unique(y)])
    return clf.fit(X, y, sample_weight=lut[np.searchsorted(np.unique(y), y)])
