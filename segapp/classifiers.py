"""Pixel classifiers by name: what the Segmenter trains on the painted pixels.

Each kind maps plain JSON parameters to an estimator with ``fit(X, y)``,
``predict_proba(X)`` and ``classes_``.  Defaults come from :mod:`segapp.defaults`.
Only kinds the model file can store safely are registered here; the accuracy
benchmark registers gradient-boosting kinds of its own (``bench/classifier_kinds.py``)
to compare against them.

Examples
--------
>>> import numpy as np
>>> X = np.r_[np.zeros((20, 2)), np.ones((20, 2))].astype(np.float32); y = np.r_[[1] * 20, [2] * 20]
>>> clf = build("random-forest", {"n_estimators": 5}, n_samples=40, random_state=0).fit(X, y)
>>> clf.predict_proba(np.ones((1, 2), np.float32)).round(1).tolist(), clf.classes_.tolist()
([[0.0, 1.0]], [1, 2])
"""

from __future__ import annotations

from .errors import ConfigError


def _random_forest(p, n_samples, seed):
    from sklearn.ensemble import RandomForestClassifier

    per_tree = min(n_samples, max(20, int(round(p.get("max_samples", 1.0) * n_samples))))
    depth = p.get("max_depth")
    return RandomForestClassifier(
        n_estimators=int(p.get("n_estimators", 32)), max_depth=None if not depth else int(depth),
        max_samples=per_tree, max_features=p.get("max_features", "sqrt"),
        min_samples_leaf=int(p.get("min_samples_leaf", 1)), class_weight=p.get("class_weight"),
        n_jobs=-1, random_state=seed)


def _extra_trees(p, n_samples, seed):
    from sklearn.ensemble import ExtraTreesClassifier

    per_tree = min(n_samples, max(20, int(round(p.get("max_samples", 1.0) * n_samples))))
    depth = p.get("max_depth")
    return ExtraTreesClassifier(
        n_estimators=int(p.get("n_estimators", 32)), max_depth=None if not depth else int(depth),
        bootstrap=per_tree < n_samples, max_samples=per_tree if per_tree < n_samples else None,
        min_samples_leaf=int(p.get("min_samples_leaf", 1)), class_weight=p.get("class_weight"),
        n_jobs=-1, random_state=seed)


#: Kinds a model file can store (forests: packed as plain arrays or read by skops with trusted types).
BUILDERS = {"random-forest": _random_forest, "extra-trees": _extra_trees}


def build(kind: str, params: dict, n_samples: int, random_state: int = 0):
    """A fresh, untrained classifier of ``kind`` for ``n_samples`` training pixels."""
    if kind not in BUILDERS:
        raise ConfigError(f"unknown classifier '{kind}'; choose one of {', '.join(BUILDERS)}")
    return BUILDERS[kind](dict(params or {}), int(n_samples), random_state)
