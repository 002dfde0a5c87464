"""Glue between a session's stored work and the engine: train, predict, cache features.

UI-free (no Dash): the callbacks call these functions, and so do the background
jobs and the tests.  No numerics of its own — it only decides *what* the engine
must compute (which planes, which settings, whether the model is stale).

Feature caching across processes: Dash runs background callbacks in a child
process, so features computed there must reach the web process.
:class:`DiskFeatureCache` keeps an in-memory LRU in front of ``.npy`` files that
are memory-mapped back in.  The quick path after a stroke uses
:class:`StrictCache`, which raises :class:`FeaturesMissing` instead of computing,
so the app can hand the slow first extraction to a background job with a
progress bar and a cancel button.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import numpy as np

from ..annotations import shapes_to_labels
from ..errors import AnnotationError, SegappError
from ..features import FeatureCache
from ..features.cache import DiskFeatureCache, LRUCache  # noqa: F401  (DiskFeatureCache re-exported)
from ..segmenter import Segmenter
from .session import Session, split_key

SIGMA_LADDER = [0.3, 0.7, 1.0, 1.6, 2.5, 3.5, 5.0, 7.0, 10.0, 16.0]


class FeaturesMissing(Exception):
    """Raised by :class:`StrictCache` on a miss (deliberately not a SegappError)."""


class StrictCache:
    """View of a tile cache that raises :class:`FeaturesMissing` instead of returning None.

    Examples
    --------
    >>> StrictCache(FeatureCache()).get("other", "ex", (0, 0))
    Traceback (most recent call last):
    ...
    segapp.ui.pipeline.FeaturesMissing: other
    """

    def __init__(self, cache):
        self.cache = cache

    def get(self, digest, key, index):
        feats = self.cache.get(digest, key, index)
        if feats is None:
            raise FeaturesMissing(digest)
        return feats

    def put(self, digest, key, index, tile):
        self.cache.put(digest, key, index, tile)

    def remember(self, digest, key, index, tile):
        remember = getattr(self.cache, "remember", None)
        if remember:
            remember(digest, key, index, tile)


class ModelCache:
    """Small LRU of loaded Segmenters keyed by (session, model version)."""

    def __init__(self, size: int = 16):
        self._lru = LRUCache(size)

    def get(self, sid: str, version: int):
        return self._lru.get((sid, version))

    def put(self, sid: str, version: int, seg) -> None:
        self._lru.put((sid, version), seg)


# -- settings --------------------------------------------------------------------------
def sigmas_in(lo: float, hi: float) -> list[float]:
    """The classical extractor's scales within ``[lo, hi]`` (at least one).

    Examples
    --------
    >>> sigmas_in(1.0, 5.0)
    [1.0, 1.6, 2.5, 3.5, 5.0]
    >>> sigmas_in(20, 30)
    [16.0]
    """
    picked = [s for s in SIGMA_LADDER if lo - 1e-9 <= s <= hi + 1e-9]
    return picked or [min(SIGMA_LADDER, key=lambda s: abs(s - hi))]


def sigma_indices(sigmas) -> list[int]:
    """Positions on :data:`SIGMA_LADDER` of a ``[lo, hi]`` scale range (for the range slider)."""
    return [min(range(len(SIGMA_LADDER)), key=lambda i: abs(SIGMA_LADDER[i] - float(s))) for s in sigmas]


def segmenter_kwargs(settings: dict, classes: list[dict], extractor: dict | None = None) -> dict:
    """Segmenter keyword arguments from the settings panel (``extractor``: a saved extractor config)."""
    name = extractor or settings["extractor"]
    scales = {"sigmas": sigmas_in(*settings["sigmas"])}
    parts = str(name).split("+") if isinstance(name, str) else []
    params = scales if parts == ["classical"] else {"classical": scales} if "classical" in parts else None
    return dict(features=name, feature_params=params, n_estimators=int(settings["trees"]),
                max_depth=int(settings["depth"]), normalization={"method": settings["normalization"]},
                classes=[c for c in classes if c["id"] > 0])


def _settings_stamp(settings: dict, classes: list[dict]) -> str:
    keep = {k: settings[k] for k in ("extractor", "sigmas", "trees", "depth", "normalization", "all_images")}
    return repr(sorted(keep.items()))


# -- training data ---------------------------------------------------------------------
def labels_for(sess: Session, k: str) -> np.ndarray:
    """Painted label image of one plane (rasterised once, then stored)."""
    lab = sess.labels(k)
    if lab is None:
        iid, _ = split_key(k)
        meta = sess.meta(iid)
        if meta is None:
            raise SegappError("an annotated image is no longer in the session")
        lab = shapes_to_labels(sess.shapes(k), meta["shape"][1:3])
        sess.put_labels(k, lab)
    return lab


def training_set(sess: Session, current_key: str | None, all_images: bool):
    """``(keys, images, labels)`` of the planes to train on."""
    keys = sess.annotated_keys()
    if not all_images:
        keys = [k for k in keys if k == current_key]
    images, labels, used = [], [], []
    for k in keys:
        lab = labels_for(sess, k)
        if not lab.any():
            continue
        iid, z = split_key(k)
        images.append(sess.plane(iid, z))
        labels.append(lab)
        used.append(k)
    if not used:
        raise AnnotationError("nothing painted yet: paint a stroke for each of at least two classes")
    channels = {im.shape[-1] for im in images}
    if len(channels) > 1:
        raise AnnotationError("painted images differ in channels (grey and colour): untick "
                              "'Train on all images' or paint images of one kind")
    return used, images, labels


# -- model state -------------------------------------------------------------------------
def is_stale(sess: Session) -> bool:
    """True when the stored model does not reflect the current annotations and settings."""
    info = sess.model_info()
    if not info:
        return True
    if info.get("annot_rev") != sess.annot_rev():
        return True
    if info.get("source") == "uploaded":
        return False
    return info.get("settings") != _settings_stamp(sess.settings(), sess.classes())


def load_model(sess: Session, models: ModelCache, cache) -> Segmenter | None:
    """The session's current model (from the process LRU or the store), or None."""
    info = sess.model_info()
    if not info:
        return None
    seg = models.get(sess.sid, info["version"])
    if seg is None:
        data = sess.model_bytes()
        if data is None:
            return None
        seg = Segmenter.load(data)
        models.put(sess.sid, info["version"], seg)
    seg = copy.copy(seg)  # shares the classifier; the cache is this caller's (strict or not)
    seg.cache = cache
    return seg


def train(sess: Session, cache, models: ModelCache, current_key: str | None, *, force: bool = False,
          progress=None, save_in_thread: bool = False) -> tuple[Segmenter, int]:
    """Fit a Segmenter on the session's annotations, store it; returns ``(seg, version)``.

    With ``extractor == "auto"`` the choice made by the last forced training is
    reused for live retraining (cross-validating on every stroke would be slow).
    """
    settings, classes, info = sess.settings(), sess.classes(), sess.model_info()
    keys, images, labels = training_set(sess, current_key, settings["all_images"])
    extractor = None
    if settings["extractor"] == "auto" and not force and info.get("auto", {}).get("config") and \
            info.get("settings") == _settings_stamp(settings, classes):
        extractor = info["auto"]["config"]  # exactly the extractor auto chose (cached features match)
    seg = Segmenter(**segmenter_kwargs(settings, classes, extractor), cache=cache)
    if progress and seg.extractor is not None:  # progress of the (slow) first extraction, per image:
        for i, (img, lab) in enumerate(zip(images, labels)):  # only the tiles under the paint (fit needs no
            tiles = seg.feature_tiles(img)                      # more); the rest is extracted viewport-first
            painted = np.unique(tiles.grid.of_pixels(*np.nonzero(lab))).tolist()
            tiles.compute([divmod(t, tiles.grid.shape[1]) for t in painted], progress=lambda f, i=i: progress(
                0.8 * (i + f) / len(images), f"features {i + 1}/{len(images)}"))
    seg.fit(images, labels)
    auto = info.get("auto") if extractor else (seg.auto_report and {
        "chosen": seg.auto_report["chosen"], "reason": seg.auto_report["reason"], "config": seg.extractor.config()})
    doc = {"source": "trained", "annot_rev": sess.annot_rev(), "settings": _settings_stamp(settings, classes),
           "extractor": seg.extractor.name, "auto": auto, "keys": keys, **seg.training_info}
    if save_in_thread:  # the overlay need not wait for the model file (~0.1 s); readers wait for it
        version = sess.put_model(None, doc)
        threading.Thread(target=lambda: sess.put_model_file(version, seg.save()), daemon=True).start()
    else:
        version = sess.put_model(seg.save(), doc)
    models.put(sess.sid, version, seg)
    return seg, version


def predict(sess: Session, seg: Segmenter, k: str, version: int, progress=None) -> np.ndarray:
    """Predict one whole plane with ``seg`` and store labels + probabilities; returns the labels."""
    iid, z = split_key(k)
    image = sess.plane(iid, z)
    proba = seg.predict_proba(image, progress=progress)
    labels = seg.predict(image, proba=proba)
    sess.put_result(k, labels, proba, version, [c["id"] for c in seg.classes])
    return labels


def refresh(sess: Session, cache, models: ModelCache, current_key: str | None, *, retrain: bool,
            force: bool = False, progress=None, save_in_thread: bool = False, view: dict | None = None) -> dict:
    """Bring the model (if ``retrain`` and stale, or ``force``) up to date and predict what is in view.

    The tiles of the current plane inside ``view`` (the browser's visible
    region; None = the whole image) are predicted now, at the resolution shown
    (:mod:`segapp.ui.overlay_tiles`); what is left is returned as ``todo`` for
    the browser to ask for next.  An image that fits the display is done in
    one go, its full result stored as before.

    Returns ``{"trained", "predicted", "version", "done", "todo"}``.
    Raises AnnotationError when training is needed but the paint is insufficient,
    FeaturesMissing when ``cache`` is strict and features must be extracted first.
    """
    from . import overlay_tiles as OT

    trained = predicted = False
    done, todo = [], []
    if force or (retrain and is_stale(sess)):
        seg, version = train(sess, cache, models, current_key, force=force, progress=progress,
                             save_in_thread=save_in_thread)
        trained = True
    else:
        seg = load_model(sess, models, cache)
        version = sess.model_info().get("version")
    if seg is not None and current_key is not None and sess.meta(split_key(current_key)[0]) is not None:
        todo = OT.plan(sess, seg, current_key, version, view)
        if todo:
            n_first = first_batch(sess, current_key, todo, view)
            step = (lambda f: progress(0.8 + 0.2 * f, "predicting the visible tiles")) if progress else None
            done, rest = OT.run_plan(sess, seg, current_key, version, todo[:n_first], budget_s=float("inf"),
                                     progress=step)
            todo = rest + todo[n_first:]
            predicted = True
    return {"trained": trained, "predicted": predicted, "version": version, "done": done, "todo": todo}


def first_batch(sess: Session, k: str, todo: list, view: dict | None) -> int:
    """How many plan entries to predict before answering: the tiles in view (all of a small image)."""
    from ..viewport import display_step

    from . import overlay_tiles as OT

    h, w = sess.meta(split_key(k)[0])["shape"][1:3]
    if display_step(h, w) == 1 and h * w <= 4 * 1024 * 1024:
        return len(todo)  # up to 4 tiles at full resolution: the whole result now, as before
    grid = OT.TileGrid((h, w), OT.TILE)
    n_visible = len(OT.tile_order(grid, view)[0])
    return max(1, min(n_visible, len(todo)))
