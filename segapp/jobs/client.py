"""Submitting jobs to the workers and following them: batch prediction for the CLI, job status for the UI.

:func:`predict_via_queue` is what ``python -m segapp predict --queue`` runs: the
model and the image files go into the store under a fresh, unguessable batch
session; one ``segapp.predict`` job per image is queued (a bounded window at a
time, so a batch of thousands does not fill Redis); results are fetched as they
finish and written exactly like a local ``predict`` (``DIR/<stem>.png`` and,
with ``proba``, ``DIR/<stem>_proba.tif``).  The batch session is removed at the
end; on Ctrl-C or an error the outstanding jobs are revoked.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from ..config import Settings, get_settings
from ..errors import ConfigError, SegappError
from ..store import check_redis, new_item_id, new_session_id, store_for

NO_WORKER_NOTICE_S = 10.0  # nothing started after this long: check whether any worker listens
POLL_OLDEST = 8  # pending jobs whose status one poll reads


def connect(settings: Settings | None = None, *, what: str = "this command"):
    """The Celery app and store for ``settings``, after checking that Redis answers.

    Raises
    ------
    ConfigError
        ``REDIS_URL`` is not set.
    StoreUnavailableError
        Redis does not answer (one-line message naming the URL and the fallback).
    """
    settings = settings or get_settings()
    if not settings.distributed:
        raise ConfigError(f"{what} needs REDIS_URL (the Redis the workers use), "
                          "e.g. REDIS_URL=redis://localhost:6379/0; without it, predict here instead")
    check_redis(settings.redis_url)
    from .celery_app import make_celery

    return make_celery(settings), store_for(settings)


def error_message(meta: dict) -> str:
    """One line describing why a job failed, from its result-backend entry.

    Examples
    --------
    >>> error_message({"result": {"exc_type": "TimeLimitExceeded", "exc_message": [60]}})
    'the job ran past its time limit of 60 s and was stopped (raise SEGAPP_TASK_TIME_LIMIT)'
    >>> from billiard.exceptions import TimeLimitExceeded
    >>> error_message({"result": TimeLimitExceeded(30)})
    'the job ran past its time limit of 30 s and was stopped (raise SEGAPP_TASK_TIME_LIMIT)'
    >>> error_message({"result": ValueError("bad thing\\nmore")})
    'bad thing more'
    """
    exc = meta.get("result")
    if isinstance(exc, dict):
        kind, args = exc.get("exc_type", "error"), exc.get("exc_message") or []
        args = args if isinstance(args, (list, tuple)) else [args]
        text = " ".join(str(a) for a in args)
    else:
        kind, text = type(exc).__name__, str(exc) if exc is not None else ""
    if kind in ("TimeLimitExceeded", "SoftTimeLimitExceeded"):
        found = re.search(r"\d+(\.\d+)?", text)
        limit = found.group(0) if found else "?"
        return f"the job ran past its time limit of {limit} s and was stopped (raise SEGAPP_TASK_TIME_LIMIT)"
    if kind == "WorkerLostError":
        return "the worker running this job was lost and the job could not be redelivered"
    text = " ".join(text.split())
    return text or kind


def job_status(task_id: str, app=None) -> dict:
    """A job's state for display.

    Returns
    -------
    dict
        ``state`` (``queued``, ``running``, ``retrying``, ``done``, ``failed``, ``revoked``),
        ``fraction`` (0..1), ``message``, ``attempt``, ``retried`` (redelivered after a
        worker was lost), ``worker`` and ``pid`` (where it runs), ``result`` (when done)
        and ``error`` (one line, when failed).
    """
    if app is None:
        from .celery_app import make_celery

        app = make_celery()
    return status_from_meta(task_id, app.backend.get_task_meta(task_id))


def job_statuses(task_ids: Sequence[str], app) -> dict:
    """:func:`job_status` of many jobs with one Redis round trip (``{task id: status}``)."""
    backend, ids = app.backend, list(task_ids)
    if not ids:
        return {}
    if hasattr(backend, "mget") and hasattr(backend, "get_key_for_task"):
        raw = backend.mget([backend.get_key_for_task(t) for t in ids])
        metas = [backend.decode_result(r) if r else {"status": "PENDING", "result": None} for r in raw]
    else:
        metas = [backend.get_task_meta(t) for t in ids]
    return {t: status_from_meta(t, m) for t, m in zip(ids, metas)}


def status_from_meta(task_id: str, meta: dict) -> dict:
    """The display status (see :func:`job_status`) of one result-backend entry."""
    status, info = meta.get("status", "PENDING"), meta.get("result")
    out = {"id": task_id, "state": "queued", "fraction": 0.0, "message": "waiting for a worker",
           "attempt": 1, "retried": False, "worker": meta.get("worker"), "pid": None, "result": None,
           "error": None}
    if isinstance(info, dict) and status in ("PROGRESS", "STARTED", "SUCCESS"):
        out.update({k: info[k] for k in ("fraction", "message", "attempt", "retried", "worker", "pid") if k in info})
    if status in ("STARTED", "PROGRESS"):
        out["state"] = "running"
        if status == "STARTED":
            out["message"] = "started"
            if isinstance(info, dict) and info.get("hostname"):
                out["worker"] = info["hostname"]
    elif status == "RETRY":
        out.update(state="retrying", message="retrying after a transient error")
    elif status == "SUCCESS":
        out.update(state="done", fraction=1.0, message="done", result=info)
        if isinstance(info, dict):
            out["retried"] = int(info.get("attempt", 1)) > 1
    elif status == "FAILURE":
        out.update(state="failed", error=error_message(meta), message="failed")
    elif status == "REVOKED":
        out.update(state="revoked", message="cancelled")
    return out


def wait_for(task_id: str, app, *, timeout: float, what: str = "the job") -> dict:
    """The result of job ``task_id``, polled from the result backend (thread-safe, no pub/sub).

    Polls every 5 ms at first, backing off to 50 ms, so a short job answers
    within a few milliseconds of finishing.  The result is removed from the
    backend once read.

    Raises
    ------
    SegappError
        The job failed or was revoked (one line), or gave no answer within
        ``timeout`` seconds (it is then revoked).
    """
    deadline, interval = time.monotonic() + timeout, 0.005
    backend = app.backend
    while True:
        meta = backend.get_task_meta(task_id)
        status = meta.get("status")
        if status == "SUCCESS":
            backend.forget(task_id)
            return meta.get("result") or {}
        if status in ("FAILURE", "REVOKED"):
            backend.forget(task_id)
            raise SegappError(error_message(meta) if status == "FAILURE" else f"{what}: the job was cancelled")
        if time.monotonic() > deadline:
            app.control.revoke(task_id)
            raise SegappError(f"{what} did not answer within {timeout:g} s; try again")
        time.sleep(interval)
        interval = min(0.05, interval * 1.5)


def _warn(text: str) -> None:
    print(f"segapp: {text}", file=sys.stderr)


def predict_via_queue(model_path, images: Sequence, out_dir, proba: bool = False, queue: str | None = None,
                      settings: Settings | None = None, progress: Callable[[float], None] | None = None, *,
                      window: int = 32, poll: float = 0.1, warn: Callable[[str], None] = _warn,
                      on_done: Callable[[Path, dict], None] | None = None) -> list[Path]:
    """Predict image files on the Celery workers and write the same files as a local ``predict``.

    Parameters
    ----------
    model_path : path
        A ``.segapp`` model file (validated here before anything is queued).
    images : sequence of paths
        Image files (any format :func:`segapp.io.read_image` reads).
    out_dir : path
        Output directory: ``<stem>.png`` class ids, and ``<stem>_proba.tif`` with ``proba``.
    proba : bool
    queue : str, optional
        Queue to submit to; default ``gpu`` for network extractors when a GPU worker
        is running, else ``default``.
    settings : Settings, optional
        Needs ``redis_url``; default from the environment.
    progress : callable, optional
        Called with the overall fraction done (0..1).
    window : int
        Most images in the store/queue at once.
    poll : float
        Seconds between status checks.
    warn : callable
        Receives one-line notices (no worker listening, a job was retried).
    on_done : callable, optional
        ``on_done(image path, job result)`` as each image finishes (worker, seconds, attempt...).

    Returns
    -------
    list of Path
        Written files in input order (``<stem>.png`` then ``<stem>_proba.tif`` per image).

    Raises
    ------
    SegappError
        Bad model file, an image a worker could not read (message names the file), a job
        past its time limit, Redis unreachable, ``REDIS_URL`` unset.
    """
    from .. import io
    from ..segmenter import Segmenter
    from .celery_app import PRIORITY_BATCH
    from .routing import active_queues, is_deep, queue_for, workers_for

    settings = settings or get_settings()
    app, store = connect(settings, what="predict --queue")
    model_bytes = Path(model_path).read_bytes()
    digest = hashlib.sha256(model_bytes).hexdigest()
    seg = Segmenter.load(model_bytes)  # ModelFileError now rather than on every worker
    paths = [Path(p) for p in images]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(2, "No such file", str(p))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    queue = queue or queue_for("predict", deep=is_deep(seg.extractor.name), app=app)

    sid, model_item = new_session_id(), "model"
    written: dict[int, list[Path]] = {}
    pending: dict[str, int] = {}  # task id -> image index
    partial: dict[str, float] = {}
    retried: set[int] = set()
    nxt, started, t_submit = 0, False, time.monotonic()
    try:
        store.put(sid, "model", model_item, model_bytes)
        while nxt < len(paths) or pending:
            while nxt < len(paths) and len(pending) < window:
                item = new_item_id()
                store.put(sid, "upload", item, paths[nxt].read_bytes())
                r = app.send_task("segapp.predict", args=(sid, model_item, item), queue=queue,
                                  priority=PRIORITY_BATCH, kwargs=dict(
                    source="upload", name=paths[nxt].name, proba=bool(proba), out=item, model_digest=digest))
                pending[r.id] = nxt
                nxt += 1
            time.sleep(poll)
            # jobs start and finish roughly in submission order: the oldest few are the ones to ask about
            # (asking about all 32 on every poll cost the client ~10 ms of CPU per image)
            statuses = job_statuses(list(pending)[:POLL_OLDEST], app)
            started = started or any(st["state"] != "queued" for st in statuses.values())
            if not started and time.monotonic() - t_submit > NO_WORKER_NOTICE_S:
                started = True  # say it once, and only when nothing moves
                if not workers_for(queue, app=app) and not (active_queues(app, refresh=True)
                                                            and workers_for(queue, app=app)):
                    warn(f"no worker answered for queue {queue!r}; jobs wait until one starts "
                         f"(python -m segapp worker --queues {queue})")
            for tid, st in statuses.items():
                i = pending[tid]
                if st["retried"] and i not in retried:
                    retried.add(i)
                    warn(f"{paths[i].name}: a worker was lost; the job was redelivered ({st['worker'] or 'requeued'})")
                if st["state"] in ("failed", "revoked"):
                    del pending[tid]
                    why = st["error"] if st["state"] == "failed" else "the job was cancelled on the workers"
                    raise SegappError(why if paths[i].name in why else f"{paths[i]}: {why}")
                if st["state"] != "done":
                    partial[tid] = st["fraction"]
                    continue
                item = st["result"]["out"]
                labels = store.get_array(sid, "batch-labels", item)
                if labels is None:
                    raise SegappError(f"{paths[i]}: the result expired from the store before it was fetched")
                stem = paths[i].stem
                files = [out / f"{stem}.png"]
                io.write_labels(files[0], labels)
                if proba:
                    files.append(out / f"{stem}_proba.tif")
                    io.write_proba_tiff(files[1], store.get_array(sid, "batch-proba", item))
                for kind in ("upload", "batch-labels", "batch-proba"):
                    store.delete(sid, kind, item)
                app.backend.forget(tid)
                if on_done:
                    on_done(paths[i], st["result"])
                written[i] = files
                del pending[tid]
                partial.pop(tid, None)
            if progress:
                progress((len(written) + sum(partial.values())) / max(1, len(paths)))
    finally:
        abandon_batch(app, settings, sid, list(pending))
    if progress:
        progress(1.0)
    return [f for i in range(len(paths)) for f in written[i]]


def abandon_batch(app, settings: Settings, sid: str, task_ids: list[str], *, wait: float = 3.0) -> None:
    """Delete a batch session and stop its outstanding jobs (revoked; running ones terminated).

    Runs at the end of every batch and on Ctrl-C or an error, within a few
    seconds: it uses fresh connections (an interrupted one may be mid-command),
    and after revoking it waits up to ``wait`` seconds for running jobs to stop
    before deleting the session again, so that a job that was just writing its
    result leaves nothing behind.
    """
    fresh = store_for(settings)
    if task_ids:
        try:
            with app.connection_for_write() as conn:
                app.control.revoke(task_ids, terminate=True, signal="SIGTERM", connection=conn)
        except Exception as e:  # the broker is gone: the jobs fail on the deleted session instead
            _warn(f"could not revoke {len(task_ids)} job(s) ({e}); they stop when they find the batch deleted")
    fresh.drop_session(sid)
    if not task_ids:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if not any(st["state"] == "running" for st in job_statuses(task_ids, app).values()):
                break
        except Exception:
            break
        time.sleep(0.1)
    fresh.drop_session(sid)


def current_job() -> dict | None:
    """Facts about the Celery job this code runs in (``None`` outside a worker).

    For Dash background callbacks on Celery: ``{"attempt": 2, "retried": True,
    "worker": "cpu-12@host"}`` after a worker was lost, so the page can say
    "restarted after a worker was lost".
    """
    from celery import current_task

    task = current_task
    if not task or not getattr(task.request, "id", None) or task.request.called_directly:
        return None
    attempt = int(getattr(task.request, "segapp_attempt", None) or 1)
    return {"attempt": attempt, "retried": attempt > 1, "worker": task.request.hostname, "id": task.request.id}
