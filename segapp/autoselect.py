"""``features="auto"``: choose the extractor by cross-validation on the painted pixels.

With two or more painted images the folds are the images (leave one image out):
a model trained on the other images must classify the held-out image's painted
pixels, which is what transfer to new images asks of it.  With one painted
image, the painted pixels are grouped into square blocks and folds hold out
whole blocks, so neighbouring pixels (nearly identical) never sit on both sides
of a split.  Each available candidate (:func:`candidates`, read from the
extractors' traits) is scored by macro F1 on the held-out pixels; the cheapest
candidate (``relative_cost``) within ``tolerance`` of the best wins.

Examples
--------
>>> blocks = spatial_blocks(np.array([[0, 0, 0], [0, 5, 40], [1, 70, 3]]), block=32)
>>> blocks.tolist()
[0, 1, 2]
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from .errors import SegappError
from .features import get_extractor
from .features.base import registered, traits


def candidates() -> list[str]:
    """``auto``'s candidates, cheapest first: every registered extractor whose class says
    ``auto_candidate`` and is available here, and each GPU-worthy one combined with each
    cheaper filter bank (``"classical+effnet-lite0"``).

    Examples
    --------
    >>> candidates()[0]
    'classical'
    """
    singles = [n for n, c in registered().items() if c.auto_candidate and c.availability()[0]]
    combos = [f"{a}+{b}" for a in singles for b in singles
              if not registered()[a].gpu_worthy and registered()[b].gpu_worthy]
    return sorted(singles + combos, key=lambda n: (traits(n)["relative_cost"], n))


def spatial_blocks(where: np.ndarray, block: int) -> np.ndarray:
    """Group id per labelled pixel from ``where`` rows ``(image, row, col)``.

    Pixels of the same image falling into the same ``block``×``block`` square
    share a group; groups are numbered 0..G-1 in order of first appearance.
    """
    keys = where[:, 0].astype(np.int64) * 1_000_003**2 + (where[:, 1] // block) * 1_000_003 + where[:, 2] // block
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse]


def _folds(groups: np.ndarray, y: np.ndarray, n_folds: int, rng) -> list[np.ndarray]:
    """Assign whole groups to folds at random; returns the fold id of each sample."""
    ids = np.unique(groups)
    fold_of_group = rng.permutation(ids.size) % n_folds
    return fold_of_group[np.searchsorted(ids, groups)]


def blocked_cv_score(X, y, groups, make_clf, n_folds: int = 3, seed: int = 0, fold=None) -> float | None:
    """Macro-F1 of ``make_clf(n_train)`` over folds of whole spatial blocks (or the given ``fold`` ids).

    Returns None when no fold has both classes to train on.
    """
    if fold is None:
        fold = _folds(groups, y, n_folds, np.random.default_rng(seed))
    n_folds = int(fold.max()) + 1
    pred = np.zeros_like(y)
    scored = np.zeros(y.size, bool)
    for k in range(n_folds):
        test, train = fold == k, fold != k
        if np.unique(y[train]).size < 2 or not test.any():
            continue
        pred[test] = make_clf(int(train.sum())).fit(X[train], y[train]).predict(X[test])
        scored |= test
    if scored.sum() == 0:
        return None
    return float(f1_score(y[scored], pred[scored], average="macro"))


def choose_extractor(seg, images, labels, names=None, tolerance: float = 0.03,
                     max_samples: int = 20_000):
    """Pick the extractor for ``seg`` on the painted pixels of ``images``.

    Returns
    -------
    extractor : FeatureExtractor
    report : dict
        ``{"chosen", "reason", "scores": {name: macro-F1 or None}, "skipped": {name: why},
        "folds": "images" | "blocks"}``.
    """
    rng = np.random.default_rng(seg.random_state)
    names = list(names) if names is not None else candidates()
    scores, skipped, built = {}, {}, {}
    h = max(im.shape[0] for im in images)
    block = int(np.clip(h // 8, 16, 64))
    painted = [i for i, lab in enumerate(labels) if np.any(lab)]
    by_image = len(painted) >= 2
    subset = None
    for name in names:
        try:
            ex = get_extractor(name)
            ok, why = all_available(ex)
            if not ok:
                skipped[name] = why
                continue
            X, y, where = seg._training_set(images, labels, ex)
        except SegappError as e:
            skipped[name] = str(e)
            continue
        if subset is None:
            subset = np.sort(rng.permutation(y.size)[:max_samples])
        built[name] = ex
        w = where[subset]
        if by_image:
            fold = np.searchsorted(np.unique(w[:, 0]), w[:, 0])
            scores[name] = blocked_cv_score(X[subset], y[subset], None, seg._new_classifier, fold=fold)
            continue
        groups = spatial_blocks(w, block)
        if np.unique(groups).size < 3:
            skipped[name] = "too few painted regions for cross-validation"
            continue
        scores[name] = blocked_cv_score(X[subset], y[subset], groups, seg._new_classifier, seed=seg.random_state)
    folds = "images" if by_image else "blocks"
    valid = {n: s for n, s in scores.items() if s is not None}
    if not valid:
        fallback = next(iter(built), names[0] if names else "classical")
        report = {"chosen": fallback, "scores": scores, "skipped": skipped, "block": block, "folds": folds,
                  "reason": "painted regions too few to cross-validate; using the cheapest candidate"}
        return built.get(fallback) or get_extractor(fallback), report
    best = max(valid.values())
    chosen = min((n for n, s in valid.items() if s >= best - tolerance), key=lambda n: traits(n)["relative_cost"])
    how = f"leave-one-image-out ({len(painted)} images)" if by_image else "blocked 3-fold"
    report = {"chosen": chosen, "scores": scores, "skipped": skipped, "block": block, "folds": folds,
              "reason": f"{how} CV macro-F1 {valid[chosen]:.3f} (best {best:.3f}); "
                        f"cheapest within {tolerance} of the best"}
    return built[chosen], report


def all_available(extractor) -> tuple[bool, str]:
    """Availability of an extractor or of every part of a combination."""
    for part in getattr(extractor, "parts", [extractor]):
        ok, why = type(part).availability()
        if not ok:
            return False, why
    return True, ""
