"""The Celery application: Redis broker + result backend, reliability settings, worker hooks.

One process-wide app (:data:`app`, also what ``celery -A segapp.jobs.celery_app``
finds) so that the tasks of :mod:`segapp.jobs.tasks` and the Dash background
callbacks registered by ``CeleryManager`` land on the same registry in the web
server and in the workers.

Reliability, in short:

- ``acks_late`` + ``reject_on_worker_lost``: a job is acknowledged only when it
  finished; if its pool process dies it is requeued at once.  If the whole
  worker vanishes (``kill -9``, lost machine) its jobs go to another worker
  after ``visibility_timeout`` seconds — a *lease* that every live worker
  renews for the jobs it holds (:mod:`segapp.jobs.heartbeat`), so a job that
  runs for an hour is never handed out twice while a dead worker's job
  restarts within about a minute.  :class:`SegappTask` counts attempts, so
  the page can say "retried", and gives up after ``max_redeliveries`` losses
  (a job that kills its worker every time must not loop forever).
- a soft time limit a little before the hard one raises
  :class:`JobTimeLimitExceeded` inside the job, whose message says which limit
  and which variable to change;
- results and progress expire after ``result_expires`` seconds.

Examples
--------
>>> from segapp.config import Settings
>>> conf = celery_config(Settings(redis_url="redis://localhost:6379/0", task_time_limit=60))
>>> conf["task_acks_late"], conf["task_reject_on_worker_lost"], conf["task_soft_time_limit"]
(True, True, 54)
>>> conf["broker_transport_options"]["visibility_timeout"]  # the lease, renewed by live workers
60
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import signal
import threading
import time

from celery import Celery, Task, signals
from celery.exceptions import SoftTimeLimitExceeded

from ..config import Settings, get_settings
from ..errors import SegappError

log = logging.getLogger("segapp.jobs")

DEFAULT_QUEUE = "default"
GPU_QUEUE = "gpu"
# Message priorities (Redis transport: 0 is taken first): someone waits for a stroke's retrain,
# a background extraction shows a progress bar, a command-line batch can wait longest.
PRIORITY_INTERACTIVE, PRIORITY_BACKGROUND, PRIORITY_BATCH = 0, 6, 9
# segapp.ui.remote: the web app's session work that runs where a session's features are (UI-free, no Dash)
TASK_MODULES = ("segapp.jobs.tasks", "segapp.ui.remote")


class JobTimeLimitExceeded(SoftTimeLimitExceeded, SegappError):
    """A job ran past its time limit; ``str()`` is a one-line explanation."""

    def __init__(self, message: str = "the job ran past its time limit (SEGAPP_TASK_TIME_LIMIT) and was stopped"):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"JobTimeLimitExceeded({self.message!r})"


class JobLostError(SegappError):
    """A job was interrupted by worker losses more often than allowed."""


def celery_config(settings: Settings) -> dict:
    """Celery settings for a deployment (see the module docstring for the reasoning)."""
    vt = settings.effective_visibility_timeout
    transport = {
        "visibility_timeout": vt,
        # every worker sweeps for expired leases this often (one ZRANGE BYSCORE: cheap)
        "unacked_restore_interval": max(1, min(5, int(vt // 6))),
        "unacked_restore_throttle": 1,
        # a worker killed while it held the sweep's mutex delays the others' sweeps by at most this
        "unacked_mutex_expire": max(5, min(30, vt)),
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 25,
    }
    return dict(
        broker_url=settings.redis_url,
        result_backend=settings.redis_url,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": vt},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        redis_socket_connect_timeout=5,
        redis_socket_keepalive=True,
        redis_backend_health_check_interval=25,
        result_backend_always_retry=True,
        result_backend_max_retries=10,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=DEFAULT_QUEUE,
        task_create_missing_queues=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_track_started=True,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=settings.soft_time_limit,
        result_expires=settings.result_expires,
        result_extended=True,
        worker_prefetch_multiplier=1,
        worker_deduplicate_successful_tasks=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        imports=TASK_MODULES,
    )


class SegappTask(Task):
    """Base class of every task of the app (Dash background callbacks included).

    Counts attempts in Redis (``attempt`` > 1 means the job was redelivered after
    a worker was lost) and offers :meth:`progress`.
    """

    _last_progress = 0.0
    throws = (SegappError,)  # user errors: reported as failures, logged without a traceback

    def __call__(self, *args, **kwargs):
        if self.request.id and not self.request.called_directly and not self.request.is_eager:
            self.request.segapp_attempt = attempt = self._count_attempt()
            limit = self.app.conf.get("segapp_max_redeliveries", 3)
            if attempt > 1:
                log.warning("job %s (%s) is on attempt %d after a worker was lost", self.request.id, self.name, attempt)
                if attempt > limit + 1:
                    raise JobLostError(f"gave up after the worker running this job was lost {attempt - 1} times "
                                       "(is it running out of memory?)")
                self.progress(0.0, "restarted after a worker was lost", force=True)
        return super().__call__(*args, **kwargs)

    def _count_attempt(self) -> int:
        try:
            client = self.app.backend.client
            key = f"segapp:job:{self.request.id}:attempts"
            pipe = client.pipeline()
            pipe.incr(key)
            pipe.expire(key, int(self.app.conf.result_expires or 86400))
            return int(pipe.execute()[0])
        except Exception:  # attempt counting is informative only; never fail a job over it
            return 2 if (self.request.delivery_info or {}).get("redelivered") else 1

    @property
    def attempt(self) -> int:
        """1 for the first execution, 2+ after redeliveries."""
        return int(getattr(self.request, "segapp_attempt", None) or 1)

    def progress(self, fraction: float, message: str = "", *, force: bool = False, every: float = 0.25) -> None:
        """Report progress (state ``PROGRESS``); calls closer than ``every`` seconds are dropped."""
        now = time.monotonic()
        if not self.request.id or self.request.called_directly or (not force and now - self._last_progress < every):
            return
        self._last_progress = now
        self.update_state(state="PROGRESS", meta={
            "fraction": float(min(max(fraction, 0.0), 1.0)), "message": message, "attempt": self.attempt,
            "retried": self.attempt > 1, "worker": self.request.hostname, "pid": os.getpid()})


def make_celery(settings: Settings | None = None) -> Celery:
    """The process-wide Celery app, configured for ``settings`` (default: the environment).

    Reconfigures the shared app when called with settings for another Redis, so
    that tasks registered on it (ours and Dash's) stay in one registry.
    """
    settings = settings or get_settings()
    global _configured_for
    key = (settings.redis_url, settings.task_time_limit, settings.result_expires,
           settings.effective_visibility_timeout, settings.max_redeliveries)
    if _configured_for != key:
        app.conf.update(celery_config(settings), segapp_max_redeliveries=settings.max_redeliveries)
        if _configured_for is not None:  # drop connections and caches made for the previous Redis
            app._pool = None
            app._backend_cache = None
            app._local = threading.local()
            app.__dict__.pop("amqp", None)
        _configured_for = key
    app.segapp_settings = settings  # what the tasks of this process use (store, cache dir, max pixels)
    return app


app = Celery("segapp", task_cls=SegappTask, set_as_current=True)
_configured_for = None
_main_pid = os.getpid()
_heartbeat = None


def _env_settings() -> Settings | None:
    try:
        return get_settings()
    except SegappError as e:  # reported when something actually needs the app
        log.error("segapp settings: %s", e)
        return None


if (_s := _env_settings()) is not None:
    make_celery(_s)


# -- worker hooks -----------------------------------------------------------------------------
def register_web_callbacks(module: str | None = None) -> int:
    """Import the web app module so its background callbacks are registered as tasks.

    Dash registers a background callback as a Celery task named after a hash of
    its source when the callback is defined *and* a ``CeleryManager`` exists for
    this app; the worker must therefore import the module that defines them.
    Returns the number of registered callback tasks (0 when the module is absent).
    """
    module = module or getattr(app, "segapp_settings", Settings()).app_module
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        log.warning("web app module %r not found: this worker runs segapp jobs but not the web app's "
                    "background callbacks (set SEGAPP_APP_MODULE or start the worker next to app.py)", module)
        return 0
    importlib.import_module(module)  # an import error must stop the worker, not surface as 'unregistered task'
    from dash import CeleryManager
    from dash.background_callback.managers import BaseBackgroundCallbackManager as Base

    if Base.functions and not any(isinstance(m, CeleryManager) and m.handle is app for m in Base.managers):
        from .manager import routed_celery_manager

        routed_celery_manager(app, getattr(app, "segapp_settings", None) or get_settings())
    n = sum(1 for name in app.tasks if name.startswith("background_callback_"))
    log.info("registered %d background callback(s) from %s", n, module)
    return n


def limit_threads(threads: int | None) -> None:
    """Cap the threads one worker process uses (BLAS/OpenMP, joblib, torch)."""
    if not threads:
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LOKY_MAX_CPU_COUNT"):
        os.environ[var] = str(threads)
    try:
        import joblib
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        # Pool processes are daemonic: joblib's default (loky) backend would refuse to
        # parallelise (and warn on every job); threads are what scikit-learn uses anyway.
        joblib.parallel_config(backend="threading")
    except ImportError:  # pragma: no cover - both come with scikit-learn
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


@signals.worker_ready.connect
def _on_worker_ready(sender=None, **kwargs):
    """Start renewing the leases of this worker's jobs and announcing it (see :mod:`.heartbeat`)."""
    global _heartbeat
    from .heartbeat import Heartbeat, direct_queue, unacked_index_key

    settings = getattr(app, "segapp_settings", None) or get_settings()
    node = sender.hostname
    try:
        queues = sorted(q.name for q in sender.task_consumer.queues)
    except AttributeError:
        queues = list(settings.queues)
    info = {"queues": queues, "direct": direct_queue(node), "gpu": GPU_QUEUE in queues,
            "cuda": bool(os.environ.get("SEGAPP_WORKER_CUDA") == "1"), "cache_dir": str(settings.cache_dir)}
    if not settings.redis_url:
        log.warning("no REDIS_URL: leases of this worker's jobs are not renewed")
        return
    import redis

    # its own client with short timeouts: a renewal stuck for minutes would let live leases expire
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5,
                                  health_check_interval=30)
    _heartbeat = Heartbeat(client, node, info, interval=settings.heartbeat_interval,
                           index_key=unacked_index_key(app)).start()
    log.info("heartbeat every %.1f s (job lease %d s); direct queue %s", settings.heartbeat_interval,
             settings.effective_visibility_timeout, info["direct"])


@signals.worker_shutdown.connect
def _on_worker_shutdown(**kwargs):
    if _heartbeat is not None:
        _heartbeat.stop(forget=True)


@signals.worker_init.connect
def _on_worker_init(sender=None, **kwargs):
    global _main_pid
    _main_pid = os.getpid()
    importlib.import_module("segapp.segmenter")  # imported once here, shared by the forked pool processes
    register_web_callbacks()
    if getattr(sender, "pool_cls", None) and "solo" in str(sender.pool_cls).lower():
        limit_threads(_threads_from_env())


@signals.worker_process_init.connect
def _on_worker_process_init(**kwargs):
    limit_threads(_threads_from_env())


def _threads_from_env() -> int | None:
    raw = os.environ.get("SEGAPP_WORKER_THREADS")
    return int(raw) if raw and raw.isdigit() else None


@signals.task_prerun.connect
def _on_task_prerun(task=None, **kwargs):
    # In a pool process, make the soft time limit raise an exception with a clear message.
    if os.getpid() != _main_pid and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, _soft_timeout_handler)


def _soft_timeout_handler(signum, frame):
    from celery import current_task

    limits = getattr(getattr(current_task, "request", None), "timelimit", None) or (None, None)
    hard = limits[0] or app.conf.task_time_limit
    soft = limits[1] or app.conf.task_soft_time_limit or hard
    raise JobTimeLimitExceeded(f"the job ran past its time limit and was stopped after {soft} s "
                               f"(SEGAPP_TASK_TIME_LIMIT={hard}); raise the limit, or use smaller images "
                               "or a lighter extractor")
