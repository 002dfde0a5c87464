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
from . import classifiers, defaults, io, prior
from .errors import AnnotationError, ConfigError
from .features import FeatureCache, get_extractor
from .features.base import CombinedExtractor, FeatureExtractor
from .limits import MAX_CLASS_ID
from .features.tiles import TILE, CombinedTiles, TiledFeatures, TileGrid

DEFAULT_NORMALIZATION = defaults.NORMALIZATION   # kept for importers; segapp.defaults is the source
DEFAULT_COLORS = defaults.PALETTE
_UNSET = object()
MAX_TRAIN_SAMPLES = 200_000   # labelled pixels kept for training (stratified subsample)

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
    prior_correction : float in [0, 1], optional
        Label-shift correction (:mod:`segapp.prior`): after the fit, a fixed random
        sample of at most ``prior.SAMPLE_ROWS`` unpainted pixels of the painted images
        (on an image of more than ``prior.MAX_TILES`` feature tiles, only in the tiles
        under the paint) is predicted, and from then on each class's probability is multiplied by
        ``(predicted share / training share) ** prior_correction`` (then renormalised),
        so classes painted more than they occur are not over-predicted.  0 (or None)
        = off.  Default from :mod:`segapp.defaults`; the strength lives in
        ``classifier_params`` and the factors (``prior_scale_``) in the model file.
        With ``class_weight="balanced"`` the training share is equal for every class.
        The sample's features come through the tile cache that prediction reads, so
        no feature is computed twice.
    normalization : dict, optional
        ``{"method": "percentile"|"minmax"|"dtype"|"none", "low": .., "high": ..}``
        applied to each image before feature extraction.
    classes : list of dict, optional
        ``{"id", "name", "color"}`` for each class id; missing ones get defaults.
    cache : FeatureCache, optional
        Feature cache; a process-wide one by default.
    random_state : int
    """

    def __init__(self, features=None, feature_params=None, classifier: str | None = None,
                 classifier_params: dict | None = None, normalization=None, classes=None,
                 cache: FeatureCache | None = None, random_state: int = 0, *, n_estimators: int | None = None,
                 max_depth: int | None = None, max_samples: float | None = None, class_weight=_UNSET,
                 prior_correction=_UNSET):
        features = defaults.EXTRACTOR if features is None else features
        if features == defaults.EXTRACTOR:
            feature_params = defaults.extractor_params(feature_params)
        self.features_spec = features
        self.feature_params = dict(feature_params or {})
        self.classifier = classifier or defaults.CLASSIFIER
        if self.classifier not in classifiers.BUILDERS:
            raise ConfigError(f"unknown classifier '{self.classifier}'; choose one of {', '.join(classifiers.BUILDERS)}")
        params = {**defaults.classifier_params(self.classifier), **(classifier_params or {})}
        for name, value in (("n_estimators", n_estimators), ("max_depth", max_depth), ("max_samples", max_samples)):
            if value is not None:
                params[name] = value
        if class_weight is not _UNSET:
            params["class_weight"] = class_weight
        if prior_correction is not _UNSET:
            params["prior_correction"] = prior_correction
        if "prior_correction" in params:
            params["prior_correction"] = prior.check_alpha(params["prior_correction"])
        if "max_samples" in params and not 0 < float(params["max_samples"]) <= 1:
            raise ConfigError(f"max_samples must be a fraction in (0, 1], got {params['max_samples']}")
        if params.get("class_weight") not in (None, "balanced"):
            raise ConfigError(f"class_weight must be None or 'balanced', got {params['class_weight']!r}")
        if params.get("max_depth") == 0:
            params["max_depth"] = None
        self.classifier_params = params
        self.normalization = {**defaults.NORMALIZATION, **(normalization or {})}
        self.class_meta = {int(c["id"]): dict(c) for c in (classes or [])}
        self.cache = _shared_cache if cache is None else cache
        self.random_state = random_state
        self.classifier_ = None  # the fitted scikit-learn estimator (None for a model loaded from a file)
        self.predictor_ = None  # what predicts: a packed Forest, or the classifier itself
        self.prior_scale_: np.ndarray | None = None  # per-class factors of the prior correction (None = off)
        self.auto_report: dict | None = None
        self.n_channels_: int | None = None
        self.training_info: dict = {}
        self.tile = TILE  # feature tile side (does not change results: tiled == untiled)
        self.extractor = None if features == "auto" else get_extractor(features, **self.feature_params)

    # legacy names of the classifier parameters (the forest's), read by the CLI, UI and model file
    n_estimators = property(lambda self: self.classifier_params.get("n_estimators"))
    max_depth = property(lambda self: self.classifier_params.get("max_depth"))
    max_samples = property(lambda self: self.classifier_params.get("max_samples"))
    class_weight = property(lambda self: self.classifier_params.get("class_weight"))
    prior_correction = property(lambda self: self.classifier_params.get("prior_correction") or 0.0)

    def get_config(self) -> dict:
        """Everything that determines what :meth:`fit` learns, as plain JSON (see :meth:`from_config`)."""
        feats = "auto" if self.features_spec == "auto" and self.auto_report is None else \
            (self.extractor.config() if self.extractor is not None else self.features_spec)
        return {"features": feats, "classifier": self.classifier,
                "classifier_params": dict(self.classifier_params), "normalization": dict(self.normalization),
                "random_state": self.random_state}

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> "Segmenter":
        """A new, untrained Segmenter from :meth:`get_config` output (``kwargs``: classes, cache)."""
        return cls(features=config["features"], classifier=config.get("classifier"),
                   classifier_params=config.get("classifier_params"), normalization=config.get("normalization"),
                   random_state=config.get("random_state", 0), **kwargs)

    # -- features ------------------------------------------------------------
    def normalize(self, image: np.ndarray) -> np.ndarray:
        """Normalised float32 (H, W, C) image as the extractor sees it."""
        n = self.normalization
        return io.normalize(as_hwc(image), method=n["method"], low=n.get("low", 1.0), high=n.get("high", 99.8))

    def _norm_key(self) -> str:
        n = self.normalization
        return f"{n['method']}:{n.get('low')}:{n.get('high')}"

    def feature_tiles(self, image: np.ndarray, extractor: FeatureExtractor | None = None,
                      digest: str | None = None, tile: int | None = None):
        """The tiled, cached features of ``image`` (:class:`~segapp.features.tiles.TiledFeatures`).

        Nothing is computed until a tile is asked for; the image is normalised at
        most once, and only if some tile is not cached yet.
        """
        extractor = extractor or self.extractor
        if extractor is None:
            raise ConfigError("features='auto' is resolved by fit(); train the segmenter first")
        image = as_hwc(image)
        digest = digest or io.image_digest(image)
        memo: list = []

        def normalised():
            if not memo:
                memo.append(self.normalize(image))
            return memo[0]

        def tiles(ex):
            return TiledFeatures(ex, normalised, digest, self.cache, key=ex.key() + "|" + self._norm_key(),
                                 shape=image.shape[:2], tile=tile or self.tile, n_channels=image.shape[2])

        if isinstance(extractor, CombinedExtractor):  # parts cached on their own, so combos reuse them
            grid = TileGrid(image.shape[:2], tile or self.tile, extractor.margin, extractor.align)
            return CombinedTiles([tiles(p) for p in extractor.parts], grid)
        return tiles(extractor)

    def features(self, image: np.ndarray, extractor: FeatureExtractor | None = None,
                 progress: Callable[[float], None] | None = None) -> np.ndarray:
        """Feature stack ``(H, W, F)`` float32 of ``image``, tiles from the cache when possible."""
        tiles = self.feature_tiles(image, extractor)
        tiles.compute(progress=progress)
        return tiles.full()

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
            xs.append(self.feature_tiles(img, extractor).at(rr, cc))  # only the tiles under the paint
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

    def _new_classifier(self, n_samples: int, **overrides):
        """An untrained classifier for ``n_samples`` painted pixels (``overrides``: parameters)."""
        return classifiers.build(self.classifier, {**self.classifier_params, **overrides}, n_samples,
                                 self.random_state)

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
        self.predictor_ = make_predictor(clf)
        self.prior_scale_ = None   # the sample is predicted uncorrected
        correction = self._prior_correction(clf, images, labels, y[idx]) if self.prior_correction else None
        self.prior_scale_ = None if correction is None else correction["scale"]
        self.n_channels_ = channels.pop()
        self.training_info = {"n_pixels": int(y.size), "n_used": int(idx.size), "n_features": int(X.shape[1]),
                              "n_images": sum(1 for lab in labels if np.any(lab)),
                              "fit_seconds": round(time.perf_counter() - t0, 3)}
        if correction is not None:   # plain values (the model file's manifest keeps them)
            self.training_info.update({"prior_correction": self.prior_correction,
                                       "prior_sampled": correction["n_sampled"],
                                       "prior_scale": [round(float(w), 4) for w in correction["scale"]]})
        if progress:
            progress(1.0)
        return self

    def _prior_correction(self, clf, images, labels, y) -> dict | None:
        """Class factors from ``clf``'s predictions on a fixed sample of unpainted pixels (features
        through the tile cache, as prediction reads them; on an image of more than
        ``prior.MAX_TILES`` tiles, from the painted tiles only);
        None if no pixel is unpainted."""
        labels = [np.asarray(lab) for lab in labels]
        tiles = [self.feature_tiles(img, self.extractor) for img in images]
        regions = [prior.tile_region(t.grid, lab, prior.MAX_TILES, self.random_state) for t, lab in zip(tiles, labels)]
        picks = prior.sample_unpainted(labels, prior.SAMPLE_ROWS, self.random_state, regions)
        rows = [t.at(rr, cc) for t, (rr, cc) in zip(tiles, picks) if rr.size]
        if not rows:
            return None
        X = np.concatenate(rows)
        proba = self._proba_rows(X)
        scale = prior.correction_scale(proba, y, clf.classes_, self.prior_correction, self.class_weight)
        return {"scale": scale, "n_sampled": int(X.shape[0])}

    # -- prediction ----------------------------------------------------------
    @property
    def classes(self) -> list[dict]:
        """``[{"id", "name", "color"}]`` of the trained classes (or the declared ones)."""
        ids = self.classes_ if self.predictor_ is not None else sorted(self.class_meta)
        return [{**default_class(i), **self.class_meta.get(int(i), {}), "id": int(i)} for i in ids]

    @property
    def classes_(self) -> np.ndarray:
        self._check_fitted()
        return self.predictor_.classes_

    def _check_fitted(self):
        if self.predictor_ is None:
            raise AnnotationError("the model is not trained yet: paint two classes and train")

    def _check_channels(self, image):
        if self.n_channels_ is not None and image.shape[2] != self.n_channels_:
            raise ConfigError(f"the model was trained on {self.n_channels_}-channel images; "
                              f"this image has {image.shape[2]} channel(s)")

    def _proba_rows(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], len(self.classes_)), np.float32)
        step = 262_144
        for s in range(0, X.shape[0], step):
            out[s:s + step] = self.predictor_.predict_proba(X[s:s + step])
        return prior.rescale(out, self.prior_scale_)

    def predict_proba(self, image: np.ndarray, progress: Callable[[float], None] | None = None,
                      tiles=None) -> np.ndarray:
        """Per-class probabilities ``(H, W, K)`` float32, K = ``len(self.classes)``.

        Features and probabilities are computed tile by tile (memory stays
        bounded for any image size); cached tiles are not recomputed.
        """
        self._check_fitted()
        image = as_hwc(image)
        self._check_channels(image)
        tiles = tiles or self.feature_tiles(image)
        h, w = image.shape[:2]
        out = np.empty((h, w, len(self.classes_)), np.float32)
        boxes = [tiles.grid.box(i) for i in tiles.grid]
        for n, (y0, y1, x0, x1) in enumerate(boxes):
            out[y0:y1, x0:x1] = self.proba_of(tiles.region(y0, y1, x0, x1))
            if progress:
                progress((n + 1) / len(boxes))
        return out

    def proba_of(self, features: np.ndarray) -> np.ndarray:
        """Probabilities ``(..., K)`` float32 of a feature array ``(..., F)``."""
        flat = features.reshape(-1, features.shape[-1])
        return self._proba_rows(flat).reshape(*features.shape[:-1], -1)

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


def make_predictor(clf):
    """The fast predictor of a fitted classifier: a packed :class:`~segapp.forest.Forest` for
    scikit-learn tree forests (ONNX Runtime), else the classifier itself."""
    from .forest import Forest

    try:
        return Forest.from_sklearn(clf)
    except (AttributeError, ValueError):
        return clf


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
