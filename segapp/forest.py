"""A tree ensemble as plain arrays, and a fast, compiler-free predictor built from them.

:class:`Forest` holds a fitted random forest as a handful of NumPy arrays
(node features, thresholds, children, leaf class fractions): what the model
file stores (``classifier.npz``, read with ``allow_pickle=False`` and checked
node by node by :meth:`Forest.from_arrays`), so loading a model needs neither
scikit-learn nor skops (whose import alone pulls in torch and pytest).

Prediction runs on ONNX Runtime's ``TreeEnsembleClassifier`` kernel (native,
multi-threaded, no compiler at run time): the ONNX graph is generated in memory
from the validated arrays each time a Forest is built — nothing compiled or
executable is ever read from a file.  Without onnxruntime a vectorised NumPy
evaluator (all trees advanced one level at a time) gives the same numbers.
Thresholds are rounded *down* to float32, so float32 inputs split exactly as in
scikit-learn, which compares float32 features with float64 thresholds.

Examples
--------
>>> import numpy as np
>>> from sklearn.ensemble import RandomForestClassifier
>>> rng = np.random.default_rng(0)
>>> X = rng.random((200, 4)).astype(np.float32); y = (X[:, 0] > 0.5).astype(int) + 1
>>> clf = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
>>> forest = Forest.from_sklearn(clf)
>>> bool(np.allclose(forest.predict_proba(X), clf.predict_proba(X), atol=1e-6))
True
>>> again = Forest.from_arrays(forest.to_arrays())
>>> again.classes_.tolist(), again.n_features_in_, len(again)
([1, 2], 4, 5)
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .errors import ModelFileError

MAX_NODES = 50_000_000  # refuse absurd forests (a 2 GB model file holds far fewer)


def default_threads() -> int:
    """Threads for prediction: ``OMP_NUM_THREADS`` if set (workers cap it), else the usable CPUs."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class Forest:
    """A random forest as arrays: ``predict_proba`` = mean over trees of the leaf class fractions.

    Parameters
    ----------
    classes : (K,) int64
    n_features : int
    offsets : (T + 1,) int64
        Tree ``t`` owns nodes ``offsets[t]:offsets[t + 1]``; node 0 of a tree is its root.
    feature, left, right : (n_nodes,) int32
        Split feature and tree-local child indices (``-1`` for leaves).
    threshold : (n_nodes,) float64
        Go left when ``x[feature] <= threshold``.
    value : (n_nodes, K) float32
        Class fractions of each leaf (rows of internal nodes are ignored).
    """

    def __init__(self, classes, n_features, offsets, feature, threshold, left, right, value):
        self.classes_ = np.asarray(classes, np.int64)
        self.n_features_in_ = int(n_features)
        self.offsets = np.asarray(offsets, np.int64)
        self.feature = np.asarray(feature, np.int32)
        self.threshold = np.asarray(threshold, np.float64)
        self.left = np.asarray(left, np.int32)
        self.right = np.asarray(right, np.int32)
        self.value = np.asarray(value, np.float32)
        self.threads: int | None = None  # prediction threads (None: default_threads())
        self._session = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    # -- building -------------------------------------------------------------------
    @classmethod
    def from_sklearn(cls, clf) -> "Forest":
        """Pack a fitted scikit-learn ``RandomForestClassifier`` / ``ExtraTreesClassifier``."""
        trees = [e.tree_ for e in clf.estimators_]
        if getattr(clf, "n_outputs_", 1) != 1:
            raise ValueError("only single-output forests can be packed")
        offsets = np.cumsum([0] + [t.node_count for t in trees])
        value = np.concatenate([t.value[:, 0, :] for t in trees]).astype(np.float64)
        sums = value.sum(1, keepdims=True)
        value = np.divide(value, sums, out=np.zeros_like(value), where=sums > 0)
        feature = np.concatenate([np.where(t.children_left < 0, -1, t.feature) for t in trees])
        return cls(clf.classes_, clf.n_features_in_, offsets, feature,
                   np.concatenate([t.threshold for t in trees]),
                   np.concatenate([t.children_left for t in trees]),
                   np.concatenate([t.children_right for t in trees]), value.astype(np.float32))

    def to_arrays(self) -> dict:
        """The arrays the model file stores (``np.savez``-able, no objects)."""
        return {"classes": self.classes_, "n_features": np.array(self.n_features_in_, np.int64),
                "offsets": self.offsets, "feature": self.feature, "threshold": self.threshold,
                "left": self.left, "right": self.right, "value": self.value}

    @classmethod
    def from_arrays(cls, arrays) -> "Forest":
        """Rebuild from :meth:`to_arrays` output, checking every node (raises ModelFileError).

        Children must point forward inside their own tree (so every path ends at a
        leaf), features must exist, thresholds and leaf fractions must be finite.
        """
        try:
            a = {k: np.asarray(arrays[k]) for k in ("classes", "n_features", "offsets", "feature",
                                                    "threshold", "left", "right", "value")}
        except KeyError as e:
            raise ModelFileError(f"the classifier in the model file lacks {e}") from None
        for k, kinds in (("classes", "iu"), ("n_features", "iu"), ("offsets", "iu"), ("feature", "iu"),
                         ("left", "iu"), ("right", "iu"), ("threshold", "f"), ("value", "f")):
            if a[k].dtype.kind not in kinds:
                raise ModelFileError(f"the classifier in the model file has a bad '{k}' array ({a[k].dtype})")
        n_features, offsets, classes = int(a["n_features"]), a["offsets"].astype(np.int64), a["classes"]
        n = a["feature"].shape[0] if a["feature"].ndim == 1 else -1
        if not (n_features > 0 and classes.ndim == 1 and classes.size >= 2 and offsets.ndim == 1
                and offsets.size >= 2 and 0 < n <= MAX_NODES and offsets[0] == 0 and offsets[-1] == n
                and np.all(np.diff(offsets) > 0) and all(a[k].shape == (n,) for k in ("threshold", "left", "right"))
                and a["value"].shape == (n, classes.size)):
            raise ModelFileError("the classifier in the model file has inconsistent array shapes")
        local = np.arange(n) - np.repeat(offsets[:-1], np.diff(offsets))
        size = np.repeat(np.diff(offsets), np.diff(offsets))
        left, right, feature = a["left"].astype(np.int64), a["right"].astype(np.int64), a["feature"].astype(np.int64)
        leaf = left < 0
        ok = np.where(leaf, (right < 0) & (feature < 0),
                      (left > local) & (left < size) & (right > local) & (right < size)
                      & (feature >= 0) & (feature < n_features))
        if not ok.all() or not np.isfinite(a["threshold"][~leaf]).all():
            raise ModelFileError("the classifier in the model file has malformed trees")
        v = a["value"][leaf]
        if not np.isfinite(v).all() or (v < 0).any():
            raise ModelFileError("the classifier in the model file has invalid leaf values")
        return cls(classes, n_features, offsets, a["feature"], a["threshold"], a["left"], a["right"], a["value"])

    # -- prediction -------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, K)`` float32 of float32 features ``(N, F)``."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected (N, {self.n_features_in_}) features, got {X.shape}")
        if X.shape[0] == 0:
            return np.zeros((0, self.classes_.size), np.float32)
        from .features.classical_torch import DEVICE, cuda_present

        if cuda_present():
            return self.predict_proba_torch(X, DEVICE)
        session = self.session()
        if session is None:
            return self.predict_proba_numpy(X)
        return session.run(["probabilities"], {"X": X})[0]

    def session(self):
        """The ONNX Runtime session (built on first use), or None without onnxruntime."""
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort
                except ImportError:
                    self._session = False
                else:
                    from .onnx_forest import forest_model

                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = self.threads or default_threads()
                    opts.inter_op_num_threads = 1
                    opts.log_severity_level = 3
                    # idle threads sleep instead of spinning: on a shared or busy machine spinning
                    # workers steal the cores the other threads need (1.9 s vs 1.07 s per MP measured)
                    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    self._session = ort.InferenceSession(forest_model(self), opts,
                                                         providers=["CPUExecutionProvider"])
            return self._session or None

    def predict_proba_numpy(self, X: np.ndarray, chunk: int = 32768) -> np.ndarray:
        """The same probabilities in NumPy: every tree advances one level per step."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        thr = float32_thresholds(self.threshold)
        feature, left, right = _flat_children(self)
        is_leaf = self.left < 0
        out = np.empty((X.shape[0], self.classes_.size), np.float32)
        roots = self.offsets[:-1][None, :]
        for s in range(0, X.shape[0], chunk):
            x = X[s:s + chunk]
            rows = np.arange(x.shape[0])[:, None]
            node = np.repeat(roots, x.shape[0], 0)
            active = ~is_leaf[node]
            while active.any():
                go_left = x[rows, feature[node]] <= thr[node]
                nxt = np.where(go_left, left[node], right[node])
                node = np.where(active, nxt, node)
                active = ~is_leaf[node]
            out[s:s + chunk] = self.value[node].mean(axis=1)
        return out

    def predict_proba_torch(self, X: np.ndarray, device: str = "cuda", chunk: int = 1 << 20) -> np.ndarray:
        """The same probabilities on a torch device (the GPU path; the NumPy evaluator's algorithm)."""
        import torch

        with self._lock:
            if getattr(self, "_torch", (None,))[0] != device:
                feature, left, right = _flat_children(self)
                self._torch = (device, *(torch.as_tensor(a, device=device) for a in (
                    feature, left, right, float32_thresholds(self.threshold), self.left < 0, self.value,
                    self.offsets[:-1])))
            _, feature, left, right, thr, is_leaf, value, roots = self._torch
        out = np.empty((X.shape[0], self.classes_.size), np.float32)
        with torch.inference_mode():
            for s in range(0, X.shape[0], chunk):
                x = torch.as_tensor(np.ascontiguousarray(X[s:s + chunk], dtype=np.float32), device=device)
                node = roots[None, :].expand(x.shape[0], -1).clone()
                active = ~is_leaf[node]
                while bool(active.any()):
                    go_left = torch.gather(x, 1, feature[node]) <= thr[node]
                    node = torch.where(active, torch.where(go_left, left[node], right[node]), node)
                    active = ~is_leaf[node]
                out[s:s + chunk] = value[node].mean(dim=1).cpu().numpy()
        return out


def _flat_children(forest: Forest) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(feature, left, right)`` with forest-wide node indices (leaves: feature 0, children 0)."""
    start = forest.offsets[:-1].repeat(np.diff(forest.offsets))
    feature = np.where(forest.feature < 0, 0, forest.feature).astype(np.int64)
    left = np.where(forest.left < 0, 0, forest.left + start)
    right = np.where(forest.right < 0, 0, forest.right + start)
    return feature, left, right


def float32_thresholds(threshold: np.ndarray) -> np.ndarray:
    """Largest float32 ``t`` with ``x <= t`` iff ``x <= threshold`` for every float32 ``x``.

    Examples
    --------
    >>> t = float32_thresholds(np.array([0.1, 2.0]))
    >>> float(t[0]) <= 0.1 < float(np.nextafter(t[0], np.float32(1))), float(t[1])
    (True, 2.0)
    """
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32
