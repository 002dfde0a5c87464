"""Celery tasks: feature extraction, training and prediction on images kept in the session store.

Arguments and results are small JSON documents (session id, item ids, options).
Images, label images, models and results travel through the session store
(Redis in distributed mode), never through the broker.  Layout inside a session::

    image/<id>          (Z, H, W, C) array (web uploads, see segapp.ui.session)
    upload/<id>         raw image file bytes (CLI batches; decoded on the worker like a local read)
    labels/<key>        painted label image of one plane
    model/<id>          .segapp model file
    batch-labels/<id>   predicted class ids          batch-proba/<id>   probabilities (H, W, K) float32

Every task reports progress (state ``PROGRESS`` with ``fraction``, ``message``,
``attempt``, ``retried``, ``worker``; see :func:`segapp.jobs.client.job_status`),
is acknowledged only when done (a lost worker means redelivery), and retries a
few times when the store is briefly unreachable.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np

from .. import io
from ..errors import SegappError
from ..features.cache import LRUCache
from ..store import StoreUnavailableError, store_for
from .celery_app import app

RETRY = dict(autoretry_for=(StoreUnavailableError,), retry_backoff=2, retry_backoff_max=60, max_retries=5)
MODEL_CACHE_SIZE = 4

_lock = threading.Lock()
_state: dict = {"store": None, "features": None, "models": LRUCache(MODEL_CACHE_SIZE)}


def _settings():
    from ..config import get_settings

    return getattr(app, "segapp_settings", None) or get_settings()


def worker_store():
    """The session store of this worker process (created once)."""
    with _lock:
        if _state["store"] is None:
            _state["store"] = store_for(_settings())
        return _state["store"]


def feature_cache():
    """On-disk feature cache under ``SEGAPP_CACHE_DIR/features`` shared with the web server.

    Features extracted by a (GPU) worker are found there by later training and
    prediction, in any process that mounts the same directory.
    """
    with _lock:
        if _state["features"] is None:
            directory = Path(_settings().cache_dir) / "features"
            from ..features.cache import DiskFeatureCache

            _state["features"] = DiskFeatureCache(directory)
        return _state["features"]


def load_model(store, session: str, model: str, digest: str | None = None):
    """The Segmenter stored as ``model/<model>``; deserialised once per distinct file per process.

    With ``digest`` (SHA-256 of the file, as the submitter computed it) a model
    already loaded in this process is used without fetching the file again.
    """
    from ..segmenter import Segmenter

    models = _state["models"]
    seg = models.get(digest) if digest is not None else None
    if seg is not None:
        return seg
    data = store.get(session, "model", model)
    if data is None:
        raise SegappError(f"model {model!r} is not in the store (expired or never uploaded)")
    digest = hashlib.sha256(data).hexdigest()
    seg = models.get(digest)
    if seg is None:
        seg = Segmenter.load(data)
        models.put(digest, seg)
    return seg


def load_image(store, session: str, image: str, *, source: str = "upload", plane: int = 0,
               name: str | None = None) -> np.ndarray:
    """One plane ``(H, W, C)`` of a stored image (file bytes for ``upload``, an array for ``image``)."""
    label = name or image
    if source == "upload":
        data = store.get(session, "upload", image)
        if data is None:
            raise SegappError(f"{label}: the image is no longer in the store (expired?)")
        return io.read_image(data, max_pixels=_settings().max_pixels, plane=plane, name=label)
    if source == "image":
        stack = store.get_array(session, "image", image)
        if stack is None:
            raise SegappError(f"{label}: the image is no longer in the session; upload it again")
        if not -len(stack) <= plane < len(stack):
            raise SegappError(f"{label}: plane {plane} does not exist (the image has {len(stack)})")
        return stack[plane]
    raise SegappError(f"unknown image source {source!r}; use 'upload' or 'image'")


def _job_info(task, t0: float, **extra) -> dict:
    return {"seconds": round(time.perf_counter() - t0, 4), "worker": task.request.hostname,
            "attempt": task.attempt, "pid": os.getpid(),
            "queue": (task.request.delivery_info or {}).get("routing_key"), **extra}


@app.task(bind=True, name="segapp.predict", **RETRY)
def predict(self, session: str, model: str, image: str, *, source: str = "upload", plane: int = 0,
            name: str | None = None, proba: bool = False, out: str | None = None,
            cache_features: bool = False, model_digest: str | None = None) -> dict:
    """Predict one stored image with a stored model; results go to ``batch-labels/<out>`` (+ ``batch-proba``).

    Parameters
    ----------
    session, model, image : str
        Session id, model item and image item in the store.
    source : {"upload", "image"}
        Image stored as file bytes (decoded here with :func:`segapp.io.read_image`) or as an array.
    plane : int
        Plane of a stack.
    name : str, optional
        File name used in error messages.
    proba : bool
        Also store the probabilities (float32).
    out : str, optional
        Output item (default: ``image``).
    cache_features : bool
        Keep the features in the shared feature cache (web sessions); batches skip it.
    model_digest : str, optional
        SHA-256 of the model file: lets a worker reuse the model it already loaded
        without fetching it (only pass it for immutable model items).

    Returns
    -------
    dict
        ``out``, ``shape``, ``classes``, ``proba`` and job facts (``seconds``, ``worker``, ``attempt``...).
    """
    from ..features import FeatureCache

    t0 = time.perf_counter()
    store = worker_store()
    seg = load_model(store, session, model, model_digest)
    img = load_image(store, session, image, source=source, plane=plane, name=name)
    seg.cache = feature_cache() if cache_features else FeatureCache(max_bytes=0)
    p = seg.predict_proba(img, progress=lambda f: self.progress(0.95 * f, "predicting"))
    labels = seg.predict(img, proba=p)
    out = out or image
    store.put_array(session, "batch-labels", out, labels)
    if proba:
        store.put_array(session, "batch-proba", out, p.astype(np.float32, copy=False))
    return _job_info(self, t0, out=out, shape=list(labels.shape), proba=bool(proba),
                     classes=[int(c) for c in seg.classes_])


@app.task(bind=True, name="segapp.extract_features", **RETRY)
def extract_features(self, session: str, image: str, *, features="classical", feature_params=None,
                     normalization=None, source: str = "image", plane: int = 0, name: str | None = None) -> dict:
    """Compute the features of a stored image plane into the shared feature cache.

    Routed to the ``gpu`` queue when a GPU worker is running (see :mod:`segapp.jobs.routing`).
    Later training or prediction with the same extractor and normalisation, in
    any process sharing ``SEGAPP_CACHE_DIR``, finds them there.

    Returns
    -------
    dict
        ``shape`` of the feature stack, ``extractor`` key, ``device`` and job facts.
    """
    from ..segmenter import Segmenter

    t0 = time.perf_counter()
    img = load_image(worker_store(), session, image, source=source, plane=plane, name=name)
    seg = Segmenter(features=features, feature_params=feature_params, normalization=normalization,
                    cache=feature_cache())
    self.progress(0.0, "extracting features", force=True)
    tiles = seg.feature_tiles(img)  # tile by tile into the cache; the whole stack is never assembled
    tiles.compute(progress=lambda f: self.progress(f, "extracting features"))
    self.progress(1.0, "done", force=True)
    return _job_info(self, t0, shape=list(tiles.shape), extractor=seg.extractor.key(), device=_device(seg))


@app.task(bind=True, name="segapp.train", **RETRY)
def train(self, session: str, planes: list, *, segmenter: dict, out_model: str = "current",
          source: str = "image") -> dict:
    """Fit a Segmenter on stored images and label images; store the model as ``model/<out_model>``.

    Parameters
    ----------
    session : str
    planes : list of dict
        ``{"image": item, "plane": z, "labels": labels item}`` per painted plane.
    segmenter : dict
        Keyword arguments of :class:`segapp.segmenter.Segmenter` (JSON-able).
    out_model : str
    source : {"image", "upload"}

    Returns
    -------
    dict
        ``model``, ``classes``, ``extractor``, the training info and job facts.
    """
    from ..segmenter import Segmenter

    t0 = time.perf_counter()
    store = worker_store()
    images, labels = [], []
    for p in planes:
        images.append(load_image(store, session, p["image"], source=source, plane=int(p.get("plane", 0))))
        lab = store.get_array(session, "labels", p["labels"])
        if lab is None:
            raise SegappError(f"label image {p['labels']!r} is not in the session")
        labels.append(lab)
    seg = Segmenter(**segmenter, cache=feature_cache())
    if seg.extractor is not None:  # the slow part: report it per image
        for i, img in enumerate(images):
            seg.feature_tiles(img).compute(progress=lambda f, i=i: self.progress(
                (i + f) / (len(images) + 1), f"features {i + 1}/{len(images)}"))
    self.progress(len(images) / (len(images) + 1), "fitting", force=True)
    seg.fit(images, labels)
    data = seg.save()
    store.put(session, "model", out_model, data)
    self.progress(1.0, "done", force=True)
    return _job_info(self, t0, model=out_model, classes=seg.classes, extractor=seg.extractor.name,
                     bytes=len(data), **seg.training_info)


@app.task(bind=True, name="segapp.probe")
def probe(self, seconds: float = 0.0, steps: int = 10) -> dict:
    """Diagnostic job: sleep ``seconds`` in ``steps`` with progress; reports where it ran.

    Useful to check a deployment end to end (``segapp.jobs.health``) and in the tests.
    """
    t0 = time.perf_counter()
    steps = max(1, int(steps))
    for i in range(steps):
        time.sleep(float(seconds) / steps)
        self.progress((i + 1) / steps, f"step {i + 1}/{steps}", force=True)
    return _job_info(self, t0)


def _device(seg) -> str:
    from .routing import is_deep

    if not is_deep(seg.extractor.name):
        return "cpu"
    from ..features.deep import resolve_device

    return resolve_device("auto")
