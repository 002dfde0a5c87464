"""Factory for Dash's background-callback manager, and a Celery manager that routes each job.

Dash's ``CeleryManager`` sends every background callback to the default
queue.  :class:`RoutedCeleryManager` lets a callback say where its job should
run: a callback function with a ``job_queue`` attribute (``job_queue(settings,
args) -> queue name or None``, ``args`` = the callback's named inputs) has its
jobs sent to that queue — the web app uses it to send a session's feature
extraction to the worker that holds the session's features, else to a GPU
worker, else to any CPU worker (:func:`segapp.ui.remote.job_queue`).  Background
jobs go with a lower priority than the quick retrains that follow strokes, so a
worker busy with first extractions takes the waiting retrains first.
"""

from __future__ import annotations

import logging
import os
import stat

from ..config import Settings, get_settings

log = logging.getLogger("segapp.jobs")


def routed_celery_manager(celery_app, settings: Settings, expire=None):
    """A :class:`RoutedCeleryManager` (built here so that importing this module does not import Dash)."""
    from dash import CeleryManager

    class RoutedCeleryManager(CeleryManager):
        """``CeleryManager`` that sends a job to the queue its callback function names (``fn.job_queue``)."""

        def __init__(self, celery_app, settings, expire=None):
            self.settings, self._routes = settings, {}  # before super(): it registers the known callbacks
            super().__init__(celery_app, expire=expire)

        def make_job_fn(self, fn, progress, key=None):
            job_fn = super().make_job_fn(fn, progress, key)
            self._routes[job_fn.name] = getattr(fn, "job_queue", None)
            return job_fn

        def call_job_fn(self, key, job_fn, args, context):
            route, queue = self._routes.get(job_fn.name), None
            if route is not None:
                try:
                    queue = route(self.settings, args)
                except Exception:  # routing must never cost the job: default queue
                    log.warning("routing %s failed; sending it to the default queue", job_fn.name, exc_info=True)
            from .celery_app import PRIORITY_BACKGROUND

            # after the strokes' quick retrains (priority 0) waiting on the same worker
            return job_fn.apply_async(args=(key, self._make_progress_key(key), args, context),
                                      priority=PRIORITY_BACKGROUND, **({"queue": queue} if queue else {})).task_id

    return RoutedCeleryManager(celery_app, settings, expire=expire)


def make_background_manager(settings: Settings | None = None, *, check: bool = True):
    """``DiskcacheManager`` (embedded) or a routed ``CeleryManager`` (``REDIS_URL`` set).

    Parameters
    ----------
    settings : Settings, optional
        Defaults to the process settings from the environment.
    check : bool
        In distributed mode, ping Redis first so that an unreachable Redis is
        reported at start, in one line, instead of on the first background job.

    Raises
    ------
    segapp.store.StoreUnavailableError
        Redis is configured but does not answer; the message names the URL
        (password masked) and says how to fall back to embedded mode.

    Examples
    --------
    >>> import tempfile
    >>> from segapp.config import Settings
    >>> m = make_background_manager(Settings(cache_dir=tempfile.mkdtemp()))
    >>> type(m).__name__
    'DiskcacheManager'
    >>> make_background_manager(Settings(redis_url="redis://127.0.0.1:1/0"))
    Traceback (most recent call last):
    ...
    segapp.store.StoreUnavailableError: cannot reach Redis at redis://127.0.0.1:1/0 (...); ...
    """
    settings = settings or get_settings()
    if settings.distributed:
        from ..store import check_redis
        from .celery_app import make_celery

        if check:
            check_redis(settings.redis_url)
        return routed_celery_manager(make_celery(settings), settings, expire=settings.result_expires)
    import diskcache
    from dash import DiskcacheManager

    close_sockets_in_forked_jobs()
    return DiskcacheManager(diskcache.Cache(str(settings.cache_dir)), expire=24 * 3600)


_fork_hook = []


def close_sockets_in_forked_jobs() -> None:
    """Make background jobs forked from this web process close the sockets they inherit (once per process).

    Dash's ``DiskcacheManager`` forks a process per job; the child inherits the
    server's listening socket and the open client connections.  A keep-alive
    connection the server closes then stays open in the job process for as
    long as the job runs, and the browser's next request on it waits for an
    answer that never comes (seen under load: a request hanging 120 s while a
    first extraction ran).  The job itself needs no socket in embedded mode.
    """
    if not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_close_inherited_sockets)
        _fork_hook.append(True)


def _close_inherited_sockets() -> None:
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: leave them
        return
    for fd in fds:
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:
            continue
