"""Which queue a job goes to: where the hardware is, and where a session's features are.

- Feature extraction — and prediction/training with a network extractor — goes
  to ``gpu`` when a GPU worker is running, else to ``default`` (which GPU
  workers also consume): :func:`queue_for`.
- Work on a web session whose features a worker already holds goes to that
  worker's own queue (:func:`segapp.jobs.heartbeat.direct_queue`), so features
  never travel between hosts, only the small results do: :func:`session_queue`,
  :func:`remember_features`.

The running workers are read from the registry their heartbeats keep in Redis
(:func:`segapp.jobs.heartbeat.live_workers`: one sorted-set range and one hash
read) and cached for ``ttl`` seconds per process, so routing costs nothing on
the hot path and does not depend on busy workers answering a broadcast.

Examples
--------
>>> from segapp.jobs.routing import queue_for, set_active_queues
>>> set_active_queues({"cpu@a": {"default"}})
>>> queue_for("features")
'default'
>>> set_active_queues({"cpu@a": {"default"}, "gpu@b": {"gpu", "default"}})
>>> queue_for("features"), queue_for("predict", deep=False)
('gpu', 'default')
>>> direct_queue_of("gpu@b"), direct_queue_of("gone@c")
('segapp.node.gpu@b', None)
>>> clear_cache()
"""

from __future__ import annotations

import threading
import time

from .celery_app import DEFAULT_QUEUE, GPU_QUEUE
from .heartbeat import direct_queue, live_workers

CACHE_SECONDS = 5.0
FEATURES_AT = "features-at"  # state item of a web session: the worker that holds its features
_lock = threading.Lock()
_cache: dict = {"at": -1e18, "workers": {}}


def workers(app=None, *, ttl: float = CACHE_SECONDS, refresh: bool = False) -> dict:
    """``{worker node: facts}`` of the running workers (``queues``, ``direct``, ``gpu``...), cached ``ttl`` s."""
    with _lock:
        if not refresh and time.monotonic() - _cache["at"] < ttl:
            return _cache["workers"]
    if app is None:  # the process's app as configured (make_celery() would reconfigure it from the environment)
        from .celery_app import app
    try:
        found = live_workers(app.backend.client)
    except Exception:  # Redis hiccup or no Redis backend: route conservatively, ask again next time
        found = {}
    with _lock:
        _cache["workers"], _cache["at"] = found, time.monotonic()
    return found


def active_queues(app=None, *, ttl: float = CACHE_SECONDS, refresh: bool = False, **_ignored) -> dict:
    """``{worker node: set of queue names}`` of the running workers (cached ``ttl`` seconds)."""
    return {w: set(f.get("queues", ())) for w, f in workers(app, ttl=ttl, refresh=refresh).items()}


def set_active_queues(queues: dict) -> None:
    """Replace the cached view of the workers with ``{node: queues}`` (tests; no Redis involved)."""
    with _lock:
        _cache["workers"] = {w: {"queues": sorted(q), "direct": direct_queue(w), "gpu": GPU_QUEUE in q}
                             for w, q in queues.items()}
        _cache["at"] = time.monotonic()


def clear_cache() -> None:
    """Forget the cached view so the next call reads the registry again."""
    with _lock:
        _cache["workers"], _cache["at"] = {}, -1e18


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


def direct_queue_of(node: str | None, app=None) -> str | None:
    """The direct queue of ``node`` if that worker is running, else None."""
    facts = workers(app).get(node) if node else None
    return facts.get("direct") or direct_queue(node) if facts else None


def remember_features(store, sid: str, node: str | None) -> None:
    """Record that worker ``node`` holds the features of session ``sid`` (expires with the session)."""
    if node:
        store.put_json(sid, "state", FEATURES_AT, {"worker": node, "t": time.time()})


def features_worker(store, sid: str) -> str | None:
    """The worker recorded as holding the features of session ``sid`` (alive or not)."""
    doc = store.get_json(sid, "state", FEATURES_AT)
    return doc.get("worker") if isinstance(doc, dict) else None


def session_queue(store, sid: str, *, kind: str = "features", deep: bool = True, app=None) -> str:
    """Queue for a job on web session ``sid``.

    The direct queue of the running worker that holds the session's features
    (all of a session's features stay on one worker); otherwise — nobody holds
    them, that worker is gone, or features that need a GPU sit on a CPU worker
    while a GPU worker runs — :func:`queue_for`, and the worker that takes the
    job records itself with :func:`remember_features`.
    """
    node = features_worker(store, sid)
    facts = workers(app).get(node) if node else None
    if facts and not (deep and kind == "features" and not facts.get("gpu") and gpu_workers_available(app)):
        return facts.get("direct") or direct_queue(node)
    return queue_for(kind, deep=deep, app=app)


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
