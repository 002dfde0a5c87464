"""The Segmenter: per-pixel features + a class-balanced random forest.

One :class:`Segmenter` carries everything needed to reproduce a prediction —
extractor config, classifier, classes (ids, names, colours) and normalisation —
and saves to one file that cannot execute code on load (see :mod:`segapp.modelfile`).

Examples
--------
>>> import numpy as np
>>> from skimage import data
>>> img = data.coins()
>>> labels = np.zeros(img.shape, np.uint8)
>>> labels[10:14, 10:200] = 1            # background squiggle
>>> labels[125:130, 40:60] = 2           # a coin
>>> seg = Segmenter(features="classical", feature_params={"sigmas": [1.0, 4.0]}, n_estimators=10)
>>> seg = seg.fit(img, labels)
>>> seg.predict(img).shape == img.shape
True
>>> [c["id"] for c in seg.classes]
[1, 2]
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from . import io
from .errors import AnnotationError, ConfigError
from .features import FeatureCache, extract_tiled, get_extractor
from .features.base import CombinedExtractor, FeatureExtractor
from .limits import MAX_CLASS_ID

DEFAULT_NORMALIZATION = {"method": "percentile", "low": 1.0, "high": 99.8}
DEFAULT_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                  "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
AUTO_CANDIDATES = ("classical", "effnet-lite0", "classical+effnet-lite0")
MAX_TRAIN_SAMPLES = 200_000   # labelled pixels kept for training (stratified subsample)
CACHE_MAX_PIXELS = 4_200_000  # larger images are predicted tile by tile, never cached whole
PREDICT_TILE = 1024            # tile for feature extraction of cached images
TILED_PREDICT_TILE = 512       # tile for large images: features + prediction per tile, bounded memory

_shared_cache = FeatureCache()


def default_class(class_id: int) -> dict:
    """Name and colour for a class id that has no explicit metadata."""
    return {"id": int(class_id), "name": f"Class {class_id}",
            "color": DEFAULT_COLORS[(int(class_id) - 1) % len(DEFAULT_COLORS)]}


def as_hwc(image: np.ndarray) -> np.ndarray:
    """View a 2-D or (H, W, C) image as (H, W, C)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image[..., None]
    if image.ndim != 3:
        raise ConfigError(f"expected a 2-D image or (H, W, C) array, got shape {image.shape}")
    return image


class Segmenter:
    """Pixel classifier: features from a registered extractor, a random forest on top.

    Parameters
    ----------
    features : str or dict
        Extractor name (``"classical"``, ``"effnet-lite0"``, ``"classical+effnet-lite0"``, ...),
        a saved extractor config, or ``"auto"`` to choose by spatially blocked
        cross-validation on the painted pixels at :meth:`fit` time.
    feature_params : dict, optional
        Parameters for a single named extractor (e.g. ``{"sigmas": [1, 2, 4]}``).
    n_estimators, max_depth : int
        Random-forest size.
    max_samples : float
        Fraction of the painted pixels each tree is trained on (at least 20).
        Strong bagging regularises: neighbouring painted pixels are nearly
        duplicates, and 5 % per tree beat full bootstraps on every benchmark
        dataset at 0.25-1 % scribbles (``bench/accuracy.py``).
    class_weight : None or "balanced"
        ``"balanced"`` reweights classes to equal total weight. Off by default:
        on the benchmarks it over-predicted thin minority classes (DRIVE vessels,
        -0.04 mIoU in transfer); turn it on when one class was painted far more.
    normalization : dict, optional
        ``{"method": "percentile"|"minmax"|"dtype"|"none", "low": .., "high": ..}``
        applied to each image before feature extraction.
    classes : list of dict, optional
        ``{"id", "name", "color"}`` for each class id; missing ones get defaults.
    cache : FeatureCache, optional
        Feature cache; a process-wide one by default.
    random_state : int
    """

    def __init__(self, features="classical", feature_params=None, n_estimators: int = 32,
                 max_depth: int | None = 10, max_samples: float = 0.05, class_weight: str | None = None,
                 normalization=None, classes=None, cache: FeatureCache | None = None, random_state: int = 0):
        self.features_spec = features
        self.feature_params = dict(feature_params or {})
        self.n_estimators = int(n_estimators)
        self.max_depth = None if max_depth in (None, 0) else int(max_depth)
        if not 0 < float(max_samples) <= 1:
            raise ConfigError(f"max_samples must be a fraction in (0, 1], got {max_samples}")
        if class_weight not in (None, "balanced"):
            raise ConfigError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        self.max_samples = float(max_samples)
        self.class_weight = class_weight
        self.normalization = {**DEFAULT_NORMALIZATION, **(normalization or {})}
        self.class_meta = {int(c["id"]): dict(c) for c in (classes or [])}
        self.cache = _shared_cache if cache is None else cache
        self.random_state = random_state
        self.classifier_: RandomForestClassifier | None = None
        self.auto_report: dict | None = None
        self.n_channels_: int | None = None
        self.training_info: dict = {}
        self.extractor = None if features == "auto" else get_extractor(features, **self.feature_params)

    # -- features ------------------------------------------------------------
    def normalize(self, image: np.ndarray) -> np.ndarray:
        """Normalised float32 (H, W, C) image as the extractor sees it."""
        n = self.normalization
        return io.normalize(as_hwc(image), method=n["method"], low=n.get("low", 1.0), high=n.get("high", 99.8))

    def _norm_key(self) -> str:
        n = self.normalization
        return f"{n['method']}:{n.get('low')}:{n.get('high')}"

    def _cached(self, extractor: FeatureExtractor, image, digest, progress=None) -> np.ndarray:
        if isinstance(extractor, CombinedExtractor):  # cache parts so combos reuse them
            return np.concatenate([self._cached(p, image, digest, progress) for p in extractor.parts], -1)
        key = extractor.key() + "|" + self._norm_key()
        feats = self.cache.get(digest, key)
        if feats is None:
            feats = extract_tiled(extractor, self.normalize(image), tile_size=PREDICT_TILE, progress=progress)
            if feats.shape[0] * feats.shape[1] <= CACHE_MAX_PIXELS:
                self.cache.put(digest, key, feats)
        return feats

    def features(self, image: np.ndarray, extractor: FeatureExtractor | None = None,
                 progress: Callable[[float], None] | None = None) -> np.ndarray:
        """Feature stack ``(H, W, F)`` of ``image``, from the cache when possible."""
        extractor = extractor or self.extractor
        if extractor is None:
            raise ConfigError("features='auto' is resolved by fit(); train the segmenter first")
        image = as_hwc(image)
        return self._cached(extractor, image, io.image_digest(image), progress)

    # -- training ------------------------------------------------------------
    def _training_set(self, images, labels, extractor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stack the labelled pixels of all images: X (N, F), y (N,), image-local coords (N, 3)."""
        xs, ys, where = [], [], []
        for i, (img, lab) in enumerate(zip(images, labels)):
            lab = np.asarray(lab)
            if lab.shape != img.shape[:2]:
                raise AnnotationError(f"labels of image {i + 1} have shape {lab.shape}, image has {img.shape[:2]}")
            rr, cc = np.nonzero(lab)
            if rr.size == 0:
                continue
            feats = self.features(img, extractor)
            xs.append(feats[rr, cc])
            ys.append(lab[rr, cc].astype(np.int64))
            where.append(np.stack([np.full(rr.size, i), rr, cc], 1))
        if not ys:
            raise AnnotationError("no annotations: paint at least one stroke for each of two classes")
        y = np.concatenate(ys)
        if y.min() < 0 or y.max() > MAX_CLASS_ID:
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            raise AnnotationError(f"class id {bad} in the labels: class ids must be 1..{MAX_CLASS_ID} "
                                  "(0 = unlabelled); is this an instance mask?")
        if np.unique(y).size < 2:
            raise AnnotationError(f"only class {int(y[0])} is painted: paint at least two classes")
        return np.concatenate(xs), y, np.concatenate(where)

    def _subsample(self, y: np.ndarray) -> np.ndarray:
        """Indices of at most MAX_TRAIN_SAMPLES pixels, every class kept."""
        if y.size <= MAX_TRAIN_SAMPLES:
            return np.arange(y.size)
        rng = np.random.default_rng(self.random_state)
        classes = np.unique(y)
        per_class = MAX_TRAIN_SAMPLES // classes.size
        keep = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in classes]
        return np.sort(np.concatenate(keep))

    def _new_classifier(self, n_samples: int, n_estimators=None) -> RandomForestClassifier:
        per_tree = min(n_samples, max(20, int(round(self.max_samples * n_samples))))
        return RandomForestClassifier(
            n_estimators=n_estimators or self.n_estimators, max_depth=self.max_depth, max_samples=per_tree,
            class_weight=self.class_weight, n_jobs=-1, random_state=self.random_state)

    def fit(self, images, labels, progress: Callable[[float], None] | None = None) -> "Segmenter":
        """Train on one or many (image, labels) pairs.

        Parameters
        ----------
        images : ndarray or sequence of ndarray
            ``(H, W)`` or ``(H, W, C)`` images in their raw dtype; all with the same C.
        labels : ndarray or sequence of ndarray
            ``(H, W)`` integer label images, 0 = unlabelled, 1..K = class.

        Raises
        ------
        AnnotationError
            Nothing painted, a single class, or labels not matching their image.
        """
        images, labels = _as_list(images), _as_list(labels)
        if len(images) != len(labels):
            raise AnnotationError(f"{len(images)} images but {len(labels)} label images")
        images = [as_hwc(im) for im in images]
        channels = {im.shape[2] for im in images}
        if len(channels) != 1:
            raise ConfigError(f"all training images need the same number of channels, got {sorted(channels)}")
        if self.features_spec == "auto":
            from .autoselect import choose_extractor

            self.extractor, self.auto_report = choose_extractor(self, images, labels)
        t0 = time.perf_counter()
        X, y, _ = self._training_set(images, labels, self.extractor)
        idx = self._subsample(y)
        clf = self._new_classifier(idx.size).fit(X[idx], y[idx])
        self.classifier_ = clf
        self.n_channels_ = channels.pop()
        self.training_info = {"n_pixels": int(y.size), "n_used": int(idx.size), "n_features": int(X.shape[1]),
                              "n_images": sum(1 for lab in labels if np.any(lab)),
                              "fit_seconds": round(time.perf_counter() - t0, 3)}
        if progress:
            progress(1.0)
        return self

    # -- prediction ----------------------------------------------------------
    @property
    def classes(self) -> list[dict]:
        """``[{"id", "name", "color"}]`` of the trained classes (or the declared ones)."""
        ids = self.classes_ if self.classifier_ is not None else sorted(self.class_meta)
        return [{**default_class(i), **self.class_meta.get(int(i), {}), "id": int(i)} for i in ids]

    @property
    def classes_(self) -> np.ndarray:
        self._check_fitted()
        return self.classifier_.classes_

    def _check_fitted(self):
        if self.classifier_ is None:
            raise AnnotationError("the model is not trained yet: paint two classes and train")

    def _check_channels(self, image):
        if self.n_channels_ is not None and image.shape[2] != self.n_channels_:
            raise ConfigError(f"the model was trained on {self.n_channels_}-channel images; "
                              f"this image has {image.shape[2]} channel(s)")

    def _proba_rows(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], len(self.classifier_.classes_)), np.float32)
        step = 262_144
        for s in range(0, X.shape[0], step):
            out[s:s + step] = self.classifier_.predict_proba(X[s:s + step])
        return out

    def predict_proba(self, image: np.ndarray, progress: Callable[[float], None] | None = None) -> np.ndarray:
        """Per-class probabilities ``(H, W, K)`` float32, K = ``len(self.classes)``."""
        self._check_fitted()
        image = as_hwc(image)
        self._check_channels(image)
        h, w = image.shape[:2]
        if h * w <= CACHE_MAX_PIXELS:
            feats = self.features(image, progress=progress)
            return self._proba_rows(feats.reshape(h * w, -1)).reshape(h, w, -1)
        return self._predict_tiled(image, progress)

    def _predict_tiled(self, image, progress=None) -> np.ndarray:
        """Large images: features and probabilities tile by tile (bounded memory)."""
        norm = self.normalize(image)
        ex, t = self.extractor, TILED_PREDICT_TILE
        m = int(np.ceil(ex.margin / ex.align) * ex.align)
        h, w = image.shape[:2]
        out = np.empty((h, w, len(self.classifier_.classes_)), np.float32)
        starts = [(y, x) for y in range(0, h, t) for x in range(0, w, t)]
        for n, (y0, x0) in enumerate(starts):
            y1, x1 = min(y0 + t, h), min(x0 + t, w)
            py0, px0, py1, px1 = max(0, y0 - m), max(0, x0 - m), min(h, y1 + m), min(w, x1 + m)
            feats = ex.compute(np.ascontiguousarray(norm[py0:py1, px0:px1]))
            core = feats[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
            del feats
            out[y0:y1, x0:x1] = self._proba_rows(core.reshape(-1, core.shape[-1])).reshape(y1 - y0, x1 - x0, -1)
            if progress:
                progress((n + 1) / len(starts))
        return out

    def predict(self, image: np.ndarray, proba: np.ndarray | None = None) -> np.ndarray:
        """Class ids ``(H, W)`` (uint8, or uint16 beyond 255 classes)."""
        proba = self.predict_proba(image) if proba is None else proba
        ids = self.classes_
        dtype = np.uint8 if ids.max() < 256 else np.uint16
        return ids.astype(dtype)[np.argmax(proba, axis=-1)]

    def uncertainty(self, image: np.ndarray | None = None, proba: np.ndarray | None = None) -> np.ndarray:
        """:func:`uncertainty` of ``proba``, or of this model's probabilities for ``image``."""
        return uncertainty(self.predict_proba(image) if proba is None else proba)

    # -- persistence -----------------------------------------------------------
    def save(self, path=None) -> bytes:
        """Write the model file (see :mod:`segapp.modelfile`); returns its bytes."""
        from .modelfile import dump_segmenter

        data = dump_segmenter(self)
        if path is not None:
            with open(path, "wb") as f:
                f.write(data)
        return data

    @classmethod
    def load(cls, source) -> "Segmenter":
        """Read a model file (path or bytes); foreign or tampered files raise ModelFileError."""
        from .modelfile import load_segmenter

        return load_segmenter(source, cls)


def uncertainty(proba: np.ndarray) -> np.ndarray:
    """``1 - (p_top1 - p_top2)`` per pixel: high where the classifier hesitates.

    Examples
    --------
    >>> import numpy as np
    >>> uncertainty(np.array([[[0.9, 0.1], [0.5, 0.5]]])).tolist() == [[np.float32(0.2), 1.0]]
    True
    """
    if proba.shape[-1] < 2:
        return np.zeros(proba.shape[:-1], np.float32)
    top2 = np.partition(proba, -2, axis=-1)[..., -2:]
    return (1.0 - (top2[..., 1] - top2[..., 0])).astype(np.float32)


def _as_list(x) -> list:
    if isinstance(x, np.ndarray):
        return [x]
    if isinstance(x, Sequence):
        return list(x)
    return [np.asarray(x)]
