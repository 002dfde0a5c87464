"""Pixel classifiers by name: what the Segmenter trains on the painted pixels.

Each kind maps plain JSON parameters to an estimator with ``fit(X, y)``,
``predict_proba(X)`` and ``classes_``.  Defaults come from :mod:`segapp.defaults`.

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


def _hist_gradient_boosting(p, n_samples, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=int(p.get("n_estimators", 100)), learning_rate=float(p.get("learning_rate", 0.1)),
        max_depth=p.get("max_depth") or None, max_leaf_nodes=int(p.get("num_leaves", 31)),
        l2_regularization=float(p.get("l2", 0.0)), class_weight=p.get("class_weight"),
        early_stopping=False, random_state=seed)


def _lightgbm(p, n_samples, seed):
    import lightgbm

    return lightgbm.LGBMClassifier(
        n_estimators=int(p.get("n_estimators", 100)), learning_rate=float(p.get("learning_rate", 0.1)),
        max_depth=int(p.get("max_depth") or -1), num_leaves=int(p.get("num_leaves", 31)),
        min_child_samples=int(p.get("min_child_samples", 20)), subsample=float(p.get("subsample", 1.0)),
        subsample_freq=1 if p.get("subsample", 1.0) < 1 else 0,
        colsample_bytree=float(p.get("colsample", 1.0)), reg_lambda=float(p.get("l2", 0.0)),
        class_weight=p.get("class_weight"), n_jobs=int(p.get("n_jobs", 0)), random_state=seed, verbose=-1)


def _xgboost(p, n_samples, seed):
    import xgboost

    return xgboost.XGBClassifier(
        n_estimators=int(p.get("n_estimators", 100)), learning_rate=float(p.get("learning_rate", 0.1)),
        max_depth=int(p.get("max_depth") or 6), subsample=float(p.get("subsample", 1.0)),
        colsample_bytree=float(p.get("colsample", 1.0)), reg_lambda=float(p.get("l2", 1.0)),
        tree_method="hist", random_state=seed)


def _catboost(p, n_samples, seed):
    import catboost

    return catboost.CatBoostClassifier(
        iterations=int(p.get("n_estimators", 100)), learning_rate=float(p.get("learning_rate", 0.1)),
        depth=int(p.get("max_depth") or 5), verbose=0, allow_writing_files=False, random_seed=seed)


BUILDERS = {"random-forest": _random_forest, "extra-trees": _extra_trees,
            "hist-gradient-boosting": _hist_gradient_boosting, "lightgbm": _lightgbm,
            "xgboost": _xgboost, "catboost": _catboost}


class _Relabelled:
    """Wrap estimators that need classes 0..K-1 (xgboost) so ``classes_`` are the painted ids."""

    def __init__(self, est):
        self.est = est

    def fit(self, X, y):
        import numpy as np

        self.classes_, yi = np.unique(y, return_inverse=True)
        self.est.fit(X, yi)
        return self

    def predict_proba(self, X):
        return self.est.predict_proba(X)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]


def build(kind: str, params: dict, n_samples: int, random_state: int = 0):
    """A fresh, untrained classifier of ``kind`` for ``n_samples`` training pixels."""
    if kind not in BUILDERS:
        raise ConfigError(f"unknown classifier '{kind}'; choose one of {', '.join(BUILDERS)}")
    est = BUILDERS[kind](dict(params or {}), int(n_samples), random_state)
    return _Relabelled(est) if kind == "xgboost" else est
