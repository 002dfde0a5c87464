"""Which queue a job goes to: ``gpu`` for feature-heavy work when a GPU worker listens, else ``default``.

The workers' queues are found with Celery's ``inspect().active_queues()`` (a
broadcast that waits up to a second for replies) and cached for ``ttl``
seconds per process, so routing costs nothing on the hot path.

Examples
--------
>>> from segapp.jobs.routing import queue_for, set_active_queues
>>> set_active_queues({"cpu@a": {"default"}})
>>> queue_for("features")
'default'
>>> set_active_queues({"cpu@a": {"default"}, "gpu@b": {"gpu", "default"}})
>>> queue_for("features"), queue_for("predict", deep=False)
('gpu', 'default')
>>> clear_cache()
"""

from __future__ import annotations

import threading
import time

from .celery_app import DEFAULT_QUEUE, GPU_QUEUE

CACHE_SECONDS = 30.0
_lock = threading.Lock()
_cache: dict = {"at": -1e18, "queues": {}}


def active_queues(app=None, *, ttl: float = CACHE_SECONDS, timeout: float = 1.0, refresh: bool = False) -> dict:
    """``{worker name: set of queue names}`` of the running workers (cached ``ttl`` seconds).

    An empty dict means no worker replied within ``timeout`` (none running,
    or all too busy to answer: prefork workers answer while busy, ``solo`` ones do not).
    """
    with _lock:
        if not refresh and time.monotonic() - _cache["at"] < ttl:
            return _cache["queues"]
    if app is None:
        from .celery_app import make_celery

        app = make_celery()
    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # broker hiccup: route conservatively, ask again next time
        replies = {}
    queues = {worker: {q.get("name") for q in (qs or [])} for worker, qs in replies.items()}
    set_active_queues(queues)
    return queues


def set_active_queues(queues: dict) -> None:
    """Replace the cached view of the workers' queues (used by tests and after inspection)."""
    with _lock:
        _cache["queues"] = {w: set(q) for w, q in queues.items()}
        _cache["at"] = time.monotonic()


def clear_cache() -> None:
    """Forget the cached view so the next call inspects the workers again."""
    with _lock:
        _cache["queues"], _cache["at"] = {}, -1e18


def gpu_workers_available(app=None) -> bool:
    """True when at least one running worker consumes the ``gpu`` queue."""
    return any(GPU_QUEUE in qs for qs in active_queues(app).values())


def workers_for(queue: str, app=None) -> list[str]:
    """Names of the running workers that consume ``queue``."""
    return sorted(w for w, qs in active_queues(app).items() if queue in qs)


def queue_for(kind: str, *, deep: bool = True, app=None) -> str:
    """Queue for a job of ``kind`` (``"features"``, ``"predict"``, ``"train"``).

    Feature extraction — and prediction/training with a network extractor
    (``deep=True``) — goes to ``gpu`` when a GPU worker is running; everything
    else goes to ``default`` (which GPU workers also consume).
    """
    if kind in ("features", "predict", "train") and deep and gpu_workers_available(app):
        return GPU_QUEUE
    return DEFAULT_QUEUE


def is_deep(extractor) -> bool:
    """True when an extractor (or any part of an ``a+b`` combination) is worth a GPU.

    Reads the extractor classes' ``gpu_worthy`` trait (:func:`segapp.features.base.traits`);
    an unknown name counts as GPU-worthy, so it goes where the heavy work goes.

    Examples
    --------
    >>> is_deep("classical"), is_deep("classical+effnet-lite0"), is_deep("vgg16")
    (False, True, True)
    """
    from ..errors import ConfigError
    from ..features.base import traits

    try:
        return bool(traits(extractor)["gpu_worthy"])
    except ConfigError:
        return True
