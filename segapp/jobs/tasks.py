"""Celery tasks: batch prediction on images kept in the store, and a diagnostic probe.

(The web app's own jobs — first extraction, retrain + predict where a session's
features are — are its background callbacks and :mod:`segapp.ui.remote`.)

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

import numpy as np

from .. import io
from ..errors import SegappError
from ..features.cache import LRUCache
from ..store import StoreUnavailableError, store_for
from .celery_app import app

RETRY = dict(autoretry_for=(StoreUnavailableError,), retry_backoff=2, retry_backoff_max=60, max_retries=5)
MODEL_CACHE_SIZE = 4

_lock = threading.Lock()
_state: dict = {"store": None, "models": LRUCache(MODEL_CACHE_SIZE)}


def _settings():
    from ..config import get_settings

    return getattr(app, "segapp_settings", None) or get_settings()


def worker_store():
    """The session store of this worker process (created once)."""
    with _lock:
        if _state["store"] is None:
            _state["store"] = store_for(_settings())
        return _state["store"]


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
            model_digest: str | None = None) -> dict:
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
    seg.cache = FeatureCache()  # this job's own, as in a local predict: the same computation, then dropped
    p = seg.predict_proba(img, progress=lambda f: self.progress(0.95 * f, "predicting"))
    labels = seg.predict(img, proba=p)
    out = out or image
    if not store.list(session, "model"):  # the batch was abandoned (Ctrl-C) while this ran: write nothing
        raise SegappError(f"{name or image}: the batch was cancelled")
    store.put_array(session, "batch-labels", out, labels)
    if proba:
        store.put_array(session, "batch-proba", out, p.astype(np.float32, copy=False))
    return _job_info(self, t0, out=out, shape=list(labels.shape), proba=bool(proba),
                     classes=[int(c) for c in seg.classes_])


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
