"""Session work where the features are: the web app's quick path on the worker that holds them.

Features are large (a 1-megapixel image has ~300 MB of float32 features) and
live in the feature cache of the process that computed them.  In embedded
mode that is a child of the web server on the same disk.  In distributed mode
it is whichever Celery worker ran the first extraction — on another host,
maybe with a GPU — so instead of moving features to the web server, the work
moves to them: after a stroke the web process sends one small job to that
worker's own queue (:func:`segapp.jobs.heartbeat.direct_queue`), the worker
retrains and predicts from its cache and stores the result in the session
store, and the web process renders the overlay from it.  Only the result
travels (labels and float16 probabilities), and nothing needs a shared disk.

UI-free (no Dash): the callbacks call :func:`quick_refresh`, route their
background jobs with :func:`features_job_queue` and record where features
were computed with :func:`here_holds_features`; the task :func:`session_refresh` runs on the workers (it is
in :data:`segapp.jobs.celery_app.TASK_MODULES`).
"""

from __future__ import annotations

import time

from ..errors import AnnotationError, SegappError
from ..jobs.celery_app import app as celery_app
from .pipeline import FeaturesMissing, StrictCache, refresh

QUICK_TIMEOUT_S = 120.0  # longest wait for the features worker's answer (a cached 25 MP retrain fits in it)
TASK = "segapp.session_refresh"


def quick_refresh(services, sess, key: str | None, *, retrain: bool, force: bool = False,
                  view: dict | None = None) -> dict:
    """Retrain (if stale, or ``force``) and predict plane ``key`` from *cached* features, where they are.

    Embedded mode: here.  Distributed mode: on the live worker that holds the
    session's features, waiting for its answer.  The caller holds the session
    lock (:meth:`~segapp.ui.session.Services.lock`).

    Returns
    -------
    dict
        ``{"trained", "predicted", "version", "done", "todo"}`` as
        :func:`~segapp.ui.pipeline.refresh` (plus ``worker`` in distributed mode);
        ``view`` is the visible region whose tiles are predicted first.

    Raises
    ------
    FeaturesMissing
        The features must be extracted first (no live worker holds them, or it
        evicted them): hand over to the background extraction.
    AnnotationError, SegappError
        Not enough paint / the job failed (one line).
    """
    if not services.settings.distributed:
        return refresh(sess, StrictCache(services.feature_cache), services.models, key, retrain=retrain,
                       force=force, save_in_thread=True, view=view, preview=not force)
    from ..jobs.celery_app import make_celery
    from ..jobs.client import wait_for
    from ..jobs.routing import direct_queue_of, features_worker

    app = make_celery(services.settings)
    queue = direct_queue_of(features_worker(services.store, sess.sid), app)
    if queue is None:
        raise FeaturesMissing(sess.sid)
    job = app.send_task(TASK, args=(sess.sid, key), kwargs={"retrain": bool(retrain), "force": bool(force),
                                                            "view": view, "preview": not force},
                        queue=queue, expires=QUICK_TIMEOUT_S)
    out = wait_for(job.id, app, timeout=QUICK_TIMEOUT_S,
                   what="the worker holding this session's features")
    if out.get("missing"):
        raise FeaturesMissing(sess.sid)
    if out.get("error"):
        raise (AnnotationError if out.get("kind") == "annotation" else SegappError)(out["error"])
    return out


def job_queue(services, sid) -> str | None:
    """Queue for a background job of session ``sid`` that extracts features (None: the default route).

    The live worker that already holds the session's features, else — when the
    session's extractor is GPU-worthy (a network: its ``gpu_worthy`` trait) — a
    GPU worker when one runs, else any CPU worker (see
    :func:`segapp.jobs.routing.session_queue`).
    """
    if not services.settings.distributed or not isinstance(sid, str):
        return None
    from ..jobs.celery_app import make_celery
    from ..jobs.routing import is_deep, session_queue

    try:
        sess = services.session(sid)  # the browser's signed id, verified: its store id routes the job
        deep = is_deep(sess.settings().get("extractor"))  # the extractor's gpu_worthy trait
        return session_queue(services.store, sess.sid, kind="features", deep=deep, app=make_celery(services.settings))
    except (KeyError, SegappError):  # malformed id (refused by the job itself) or Redis hiccup
        return None


def features_job_queue(settings, args) -> str | None:
    """``job_queue`` of a background callback (``fn.job_queue``, read by the routed Celery manager).

    ``args``: the callback's named inputs; its ``sid`` names the session.
    """
    from . import make_services

    sid = args.get("sid") if isinstance(args, dict) else None
    return job_queue(make_services(settings), sid)


def here_holds_features(services, sid: str) -> None:
    """Record that the worker running this code now holds session ``sid``'s features (distributed mode)."""
    from ..jobs.client import current_job
    from ..jobs.routing import remember_features

    job = current_job()
    if services.settings.distributed and job:
        remember_features(services.store, sid, job["worker"])


@celery_app.task(bind=True, name=TASK, acks_late=False)
def session_refresh(self, sid: str, key: str | None, *, retrain: bool, force: bool = False,
                    strict: bool = True, view: dict | None = None, preview: bool = False) -> dict:
    """On the worker holding ``sid``'s features: :func:`~segapp.ui.pipeline.refresh`, result into the store.

    Acknowledged on receipt (``acks_late=False``): the web process waiting for it
    handles a lost worker itself, and a redelivered copy would come too late.

    Parameters
    ----------
    sid, key : str
        Session and plane (``<image id>_<plane>``).
    retrain, force : bool
        As :func:`~segapp.ui.pipeline.refresh`.
    strict : bool
        Only use cached features (``{"missing": True}`` otherwise); ``False``
        extracts what is missing and records this worker as holding them.
    view : dict, optional
        The visible region: its tiles are predicted first (the rest: :func:`session_fill`).
    preview : bool
        A stroke's quick answer: a large view comes as a coarse preview first.

    Returns
    -------
    dict
        ``trained``, ``predicted``, ``version``, ``worker``, ``seconds``; or ``missing``;
        or ``error`` and ``kind`` (``annotation``: not enough paint).
    """
    from . import make_services

    t0 = time.perf_counter()
    services = make_services(getattr(celery_app, "segapp_settings", None) or services_settings())
    sess = services.session(sid)
    cache = StrictCache(services.feature_cache) if strict else services.feature_cache
    try:
        out = refresh(sess, cache, services.models, key, retrain=retrain, force=force, save_in_thread=True,
                      view=view, preview=preview)
    except FeaturesMissing:
        return {"missing": True, "worker": self.request.hostname}
    except AnnotationError as e:
        return {"error": str(e), "kind": "annotation"}
    except SegappError as e:
        return {"error": str(e), "kind": "error"}
    if not strict:
        here_holds_features(services, sid)
    return {**out, "worker": self.request.hostname, "seconds": round(time.perf_counter() - t0, 4)}


FILL_TASK = "segapp.session_fill"
FILL_RESEND_S = 2.0  # the browser asks every few hundred ms; the features worker needs telling once
_fill_sent: dict = {}


def fill_rest(services, sess, seg, key: str, version: int, view: dict | None) -> None:
    """Predict the tiles of plane ``key`` not in view yet, in the background, where the features are.

    Embedded mode: a thread of this process
    (:func:`~segapp.ui.overlay_tiles.ensure_worker`).  Distributed mode: the same
    thread on the worker holding the session's features (:func:`session_fill`);
    it stores each tile in the session store, where this process reads them.
    Nothing happens when that worker is gone (the next stroke extracts again).
    """
    if not services.settings.distributed:
        from . import overlay_tiles as OT

        OT.ensure_worker(sess, seg, key, version, view)
        return
    import json as _json

    from ..jobs.celery_app import PRIORITY_INTERACTIVE, make_celery
    from ..jobs.routing import direct_queue_of, features_worker

    memo = (sess.sid, key, version, _json.dumps(view, sort_keys=True))
    now = time.monotonic()
    if now - _fill_sent.get(memo, -1e18) < FILL_RESEND_S:
        return
    if len(_fill_sent) > 10_000:
        _fill_sent.clear()
    _fill_sent[memo] = now
    app = make_celery(services.settings)
    queue = direct_queue_of(features_worker(services.store, sess.sid), app)
    if queue is not None:
        app.send_task(FILL_TASK, args=(sess.sid, key, int(version), view), queue=queue, expires=30,
                      priority=PRIORITY_INTERACTIVE, ignore_result=True)


@celery_app.task(name=FILL_TASK, acks_late=False, ignore_result=True)
def session_fill(sid: str, key: str, version: int, view: dict | None = None) -> None:
    """On the features worker: start (once) the thread that predicts the rest of plane ``key``."""
    from . import make_services
    from . import overlay_tiles as OT
    from .pipeline import load_model

    services = make_services(getattr(celery_app, "segapp_settings", None) or services_settings())
    sess = services.session(sid)
    if sess.model_info().get("version") != version:
        return  # a newer model: its own chain runs
    seg = load_model(sess, services.models, services.feature_cache)
    if seg is not None:
        OT.ensure_worker(sess, seg, key, version, view)


def services_settings():
    from ..config import get_settings

    return get_settings()
