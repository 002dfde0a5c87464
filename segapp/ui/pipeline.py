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


class OnlyOtherKindPainted(AnnotationError):
    """Training for the image on screen found strokes only on images of another kind (channel layout)."""


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


def kind(channels: int | None) -> str:
    """What users call images with ``channels`` channels.

    Examples
    --------
    >>> kind(1), kind(3), kind(2)
    ('grey', 'colour', '2-channel')
    """
    return {1: "grey", 3: "colour"}.get(channels, f"{channels}-channel")


def channels_of(sess: Session, k: str | None) -> int | None:
    """Channel count of the image behind plane key ``k`` (None when there is no such image)."""
    meta = sess.meta(split_key(k)[0]) if k else None
    return int(meta["shape"][3]) if meta else None


def training_set(sess: Session, current_key: str | None, all_images: bool):
    """``(keys, images, labels)`` of the planes to train on.

    A model learns from one kind of image (one channel layout): with grey and colour
    images both painted, the model follows the kind of the image on screen and
    learns from the painted images of that kind; the other kind keeps its strokes and
    gets its own model when one of its images is shown (see :func:`other_kinds`).
    """
    keys = sess.annotated_keys()
    if not all_images:
        keys = [k for k in keys if k == current_key]
    want = channels_of(sess, current_key)
    images, labels, used, elsewhere = [], [], [], 0
    for k in keys:
        lab = labels_for(sess, k)
        if not lab.any():
            continue
        iid, z = split_key(k)
        image = sess.plane(iid, z)
        if want is None:
            want = image.shape[-1]
        if image.shape[-1] != want:
            elsewhere += 1
            continue
        images.append(image)
        labels.append(lab)
        used.append(k)
    if not used:
        if elsewhere:
            raise OnlyOtherKindPainted(f"nothing painted on {kind(want)} images yet: paint two classes on this one "
                                  f"(a model learns from one kind of image; your strokes on {elsewhere} "
                                  f"other image(s) are kept for theirs)")
        raise AnnotationError("nothing painted yet: paint a stroke for each of at least two classes")
    return used, images, labels


def other_kinds(sess: Session, channels: int) -> int:
    """How many painted planes are of another kind (channel layout) than ``channels``."""
    return sum(1 for k in sess.annotated_keys() if channels_of(sess, k) not in (None, channels))


def kind_message(info: dict) -> str | None:
    """What to tell the user when a model learnt from one kind of image while another kind is painted too.

    Examples
    --------
    >>> kind_message({"channels": 1, "other_kinds": 3}).split(":")[0]
    'This model learns from your grey images only'
    >>> kind_message({"channels": 3, "other_kinds": 0}) is None
    True
    """
    if not info.get("other_kinds"):
        return None
    return (f"This model learns from your {kind(info.get('channels'))} images only: a model learns from one kind "
            f"of image. Your strokes on {info['other_kinds']} image(s) of another kind are kept; showing one of "
            "them trains a model for that kind.")


def warm_features(seg: Segmenter, images: list, progress) -> None:
    """For ``features="auto"``: extract every available candidate's parts (into ``seg``'s cache) with progress.

    Auto's choice needs them all, so its slow part shows its progress too (a fixed
    extractor's first extraction has its own, per painted tile, in :func:`train`).
    ``progress(fraction, detail)``.
    """
    from ..autoselect import all_available, candidates
    from ..features import get_extractor

    found = {}
    for name in candidates():
        ex = get_extractor(name)
        if all_available(ex)[0]:
            for part in getattr(ex, "parts", [ex]):
                found.setdefault(part.key(), (part.name, part))
    steps = len(found) * len(images) + 1  # the last step: auto's cross-validation and the fit
    for j, (name, extractor) in enumerate(found.values()):
        for i, img in enumerate(images):
            n = j * len(images) + i
            detail = f"auto: {name} · image {i + 1}/{len(images)}"
            seg.features(img, extractor, progress=lambda f, n=n, d=detail: progress((n + f) / steps, d))
    progress((steps - 1) / steps, "auto: comparing extractors")


# -- model state -------------------------------------------------------------------------
def is_stale(sess: Session, current_key: str | None = None) -> bool:
    """True when the stored model does not reflect the annotations, the settings, or the kind of image on screen.

    A trained model of another channel layout than the image behind ``current_key``
    is stale for it (one model per kind of image, see :func:`training_set`).
    """
    info = sess.model_info()
    if not info:
        return True
    if info.get("annot_rev") != sess.annot_rev():
        return True
    if info.get("source") == "uploaded":
        return False
    if not fits(info, channels_of(sess, current_key)):
        return True
    return info.get("settings") != _settings_stamp(sess.settings(), sess.classes())


def fits(info: dict, channels: int | None) -> bool:
    """Whether a model (its ``info``) can segment images of ``channels`` channels (unknown: yes).

    Examples
    --------
    >>> fits({"channels": 3}, 1), fits({"channels": 3}, 3), fits({}, 1), fits({"channels": 1}, None)
    (False, True, True, True)
    """
    return channels is None or info.get("channels") in (None, channels)


def forget_unpainted_model(sess: Session) -> bool:
    """Drop a trained model and its results once nothing is painted any more (after Clear all, say).

    The overlay and the header then stop showing a model of strokes that no longer exist;
    Undo brings the strokes back and they retrain.  Uploaded models are kept.  Returns
    True when the model was dropped.
    """
    info = sess.model_info()
    if not info or info.get("source") == "uploaded" or sess.annotated_keys():
        return False
    sess.clear_model()
    return True


def load_model(sess: Session, models: ModelCache, cache, key: str | None = None) -> Segmenter | None:
    """The session's current model (from the process LRU or the store), or None.

    With a plane ``key``: None also when the model is for the other kind of image
    (another channel layout, :func:`fits`), so nothing predicts that plane with it.
    """
    info = sess.model_info()
    if not info or (key is not None and not fits(info, channels_of(sess, key))):
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
    last_auto = info.get("auto") or {}  # None when the last model was not trained with auto
    if settings["extractor"] == "auto" and not force and last_auto.get("config") and \
            info.get("settings") == _settings_stamp(settings, classes):
        extractor = last_auto["config"]  # exactly the extractor auto chose (cached features match)
    seg = Segmenter(**segmenter_kwargs(settings, classes, extractor), cache=cache)
    if progress and seg.extractor is not None:  # progress of the (slow) first extraction, per image:
        for i, (img, lab) in enumerate(zip(images, labels)):  # only the tiles under the paint (fit needs no
            tiles = seg.feature_tiles(img)                      # more); the rest is extracted viewport-first
            painted = np.unique(tiles.grid.of_pixels(*np.nonzero(lab))).tolist()
            tiles.compute([divmod(t, tiles.grid.shape[1]) for t in painted], progress=lambda f, i=i: progress(
                0.8 * (i + f) / len(images), f"image {i + 1}/{len(images)}"))
    elif progress:  # auto: extract each candidate's parts with progress (its choice needs them all)
        warm_features(seg, images, progress)
    seg.fit(images, labels)
    auto = info.get("auto") if extractor else (seg.auto_report and {
        "chosen": seg.auto_report["chosen"], "reason": seg.auto_report["reason"], "config": seg.extractor.config()})
    channels = int(images[0].shape[-1])
    doc = {"source": "trained", "annot_rev": sess.annot_rev(), "settings": _settings_stamp(settings, classes),
           "extractor": seg.extractor.name, "auto": auto, "keys": keys, "channels": channels,
           "other_kinds": other_kinds(sess, channels) if settings["all_images"] else 0, **seg.training_info}
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
            force: bool = False, progress=None, save_in_thread: bool = False, view: dict | None = None,
            preview: bool = False) -> dict:
    """Bring the model (if ``retrain`` and stale, or ``force``) up to date and predict what is in view.

    The tiles of the current plane inside ``view`` (the browser's visible
    region; None = the whole image) are predicted now, at the resolution shown
    (:mod:`segapp.ui.overlay_tiles`); what is left is returned as ``todo`` for
    the browser to ask for next.  An image that fits the display is done in
    one go, its full result stored as before — unless ``preview`` (a stroke's
    quick answer) and the view holds more than ``overlay_tiles.PREVIEW_PIXELS``:
    then only a coarser preview of the view is predicted now and the rest follows.

    Returns ``{"trained", "predicted", "version", "done", "todo"}``.
    Raises AnnotationError when training is needed but the paint is insufficient,
    FeaturesMissing when ``cache`` is strict and features must be extracted first.
    """
    from . import overlay_tiles as OT

    trained = predicted = False
    done, todo = [], []
    if force or (retrain and is_stale(sess, current_key)):
        seg, version = train(sess, cache, models, current_key, force=force, progress=progress,
                             save_in_thread=save_in_thread)
        trained = True
    else:
        seg = load_model(sess, models, cache)
        version = sess.model_info().get("version")
        if not fits(sess.model_info(), channels_of(sess, current_key)):
            seg = None  # a model of the other kind of image: nothing to predict here until it retrains
    if seg is not None and current_key is not None and sess.meta(split_key(current_key)[0]) is not None:
        todo = OT.plan(sess, seg, current_key, version, view, preview=preview)
        if todo:
            n_first = first_batch(sess, current_key, todo, view, preview=preview)
            step = (lambda f: progress(0.8 + 0.2 * f, "predicting the visible tiles")) if progress else None
            done, rest = OT.run_plan(sess, seg, current_key, version, todo[:n_first], budget_s=float("inf"),
                                     progress=step)
            todo = rest + todo[n_first:]
            predicted = True
    return {"trained": trained, "predicted": predicted, "version": version, "done": done, "todo": todo}


def first_batch(sess: Session, k: str, todo: list, view: dict | None, *, preview: bool = False) -> int:
    """How many plan entries to predict before answering: the coarse preview of the view when the
    plan starts with one, else the tiles in view (all of a small image)."""
    from ..viewport import display_step, view_step

    from . import overlay_tiles as OT

    h, w = sess.meta(split_key(k)[0])["shape"][1:3]
    grid = OT.TileGrid((h, w), OT.TILE)
    visible = set(OT.tile_order(grid, view)[0])
    step = view_step(view, display_step(h, w))
    if preview:  # the plan's leading entries coarser than the view, in view, are the preview (see OT.plan)
        n = next((i for i, (s, ty, tx) in enumerate(todo) if s <= step or (ty, tx) not in visible), len(todo))
        if n:
            return n
    if display_step(h, w) == 1 and h * w <= 4 * 1024 * 1024:
        return len(todo)  # up to 4 tiles at full resolution: the whole result now, as before
    n_visible = len(visible)
    return max(1, min(n_visible, len(todo)))
