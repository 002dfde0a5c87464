"""Gradient-boosting classifier kinds for the accuracy benchmark only (not savable in a model file).

``import classifier_kinds`` adds ``hist-gradient-boosting``, ``lightgbm``, ``xgboost`` and
``catboost`` to :data:`segapp.classifiers.BUILDERS` when their packages import, so that
``bench/accuracy.py --variant NAME='{"classifier": "lightgbm"}'`` can measure them next to
the forest.  LightGBM runs single-threaded by default: on a shared 2-core machine its
OpenMP threads on a few thousand samples were 10x slower than one thread.
"""

from __future__ import annotations

from segapp import classifiers, defaults

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
        class_weight=p.get("class_weight"), n_jobs=int(p.get("n_jobs", 1)), random_state=seed, verbose=-1)


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



def register() -> list[str]:
    """Register every kind whose package imports; returns their names."""
    found = []
    for kind, module, fn in (("hist-gradient-boosting", "sklearn", _hist_gradient_boosting),
                             ("lightgbm", "lightgbm", _lightgbm), ("xgboost", "xgboost", _xgboost),
                             ("catboost", "catboost", _catboost)):
        try:
            __import__(module)
        except ImportError:
            continue
        classifiers.BUILDERS[kind] = (lambda f, k: (lambda p, n, s: _Relabelled(f(p, n, s)) if k == "xgboost"
                                                    else f(p, n, s)))(fn, kind)
        found.append(kind)
    return found


register()
