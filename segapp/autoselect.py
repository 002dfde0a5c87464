"""``features="auto"``: choose the extractor by spatially blocked cross-validation.

The painted pixels are grouped into square blocks; folds hold out whole blocks,
so neighbouring pixels (which are nearly identical) never sit on both sides of
a split.  Each available candidate extractor is scored by macro F1 on the
held-out blocks; the cheapest candidate within ``tolerance`` of the best wins.

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

CANDIDATES = ("classical", "effnet-lite0", "classical+effnet-lite0")
COST = {"classical": 1, "effnet-lite0": 2, "classical+effnet-lite0": 3}


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


def blocked_cv_score(X, y, groups, make_clf, n_folds: int = 3, seed: int = 0) -> float | None:
    """Macro-F1 of ``make_clf(n_train)`` over folds of whole spatial blocks.

    Returns None when no fold has both classes to train on.
    """
    rng = np.random.default_rng(seed)
    fold = _folds(groups, y, n_folds, rng)
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


def choose_extractor(seg, images, labels, candidates=CANDIDATES, tolerance: float = 0.03,
                     max_samples: int = 20_000):
    """Pick the extractor for ``seg`` on the painted pixels of ``images``.

    Returns
    -------
    extractor : FeatureExtractor
    report : dict
        ``{"chosen", "reason", "scores": {name: macro-F1 or None}, "skipped": {name: why}}``.
    """
    rng = np.random.default_rng(seg.random_state)
    scores, skipped, feats_cache = {}, {}, {}
    h = max(im.shape[0] for im in images)
    block = int(np.clip(h // 8, 16, 64))
    subset = None
    for name in candidates:
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
        feats_cache[name] = ex
        groups = spatial_blocks(where[subset], block)
        if np.unique(groups).size < 3:
            skipped[name] = "too few painted regions for cross-validation"
            continue
        scores[name] = blocked_cv_score(X[subset], y[subset], groups,
                                        lambda n: seg._new_classifier(n, n_estimators=25), seed=seg.random_state)
    valid = {n: s for n, s in scores.items() if s is not None}
    if not valid:
        fallback = next(iter(feats_cache), "classical")
        report = {"chosen": fallback, "scores": scores, "skipped": skipped, "block": block,
                  "reason": "painted regions too few to cross-validate; using the default"}
        return get_extractor(fallback), report
    best = max(valid.values())
    chosen = min((n for n, s in valid.items() if s >= best - tolerance), key=lambda n: COST.get(n, 9))
    report = {"chosen": chosen, "scores": scores, "skipped": skipped, "block": block,
              "reason": f"blocked {3}-fold CV macro-F1 {valid[chosen]:.3f} (best {best:.3f}); "
                        f"cheapest within {tolerance} of the best"}
    return feats_cache[chosen], report


def all_available(extractor) -> tuple[bool, str]:
    """Availability of an extractor or of every part of a combination."""
    for part in getattr(extractor, "parts", [extractor]):
        ok, why = type(part).availability()
        if not ok:
            return False, why
    return True, ""
