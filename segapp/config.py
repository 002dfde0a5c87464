"""Deployment settings from environment variables, with documented defaults.

==============================  ============================  ==========================================
variable                        default                       meaning
==============================  ============================  ==========================================
``HOST``                        ``127.0.0.1``                 address the web server binds to
``PORT``                        ``8050``                      port of the web server
``REDIS_URL``                   unset                         Celery broker + result backend and session
                                                              store; unset = embedded diskcache mode
``SEGAPP_DATA_DIR``             ``./.segapp/data``            session store directory (embedded mode)
``SEGAPP_CACHE_DIR``            ``./.segapp/cache``           diskcache + feature cache directory (shared
                                                              by the web server and the workers)
``SEGAPP_MAX_PIXELS``           ``100000000``                 largest accepted image (pixels, all planes)
``SEGAPP_MAX_IMAGE_MB``         ``1024``                      largest decoded image (pixels x channels x
                                                              planes x bytes per sample)
``SEGAPP_MAX_PLANES``           ``1000``                      most planes (pages, z, t) of one image
``SEGAPP_MAX_CHANNELS``         ``16``                        most channels of one image
``SEGAPP_MAX_UPLOAD_MB``        ``200``                       largest accepted upload
``SEGAPP_MAX_MODEL_MB``         ``256``                       largest accepted model file
``SEGAPP_SESSION_TTL``          ``604800``                    seconds a session's data lives after its
                                                              last write
``SEGAPP_QUEUES``               ``default``                   queues a worker consumes (``gpu,default``)
``SEGAPP_TASK_TIME_LIMIT``      ``1800``                      hard time limit of one job, seconds (a soft
                                                              limit a little earlier stops it cleanly)
``SEGAPP_WEIGHTS_DIR``          ``~/.cache/segapp/weights``   where local backbone weights are looked up
``SEGAPP_SECRET_KEY``           a key kept in the store       signs session ids (and is the Flask
                                                              secret); unset: a random key created
                                                              once in the session store
``SEGAPP_RESULT_EXPIRES``       ``86400``                     seconds job results and progress are kept
``SEGAPP_VISIBILITY_TIMEOUT``   ``60``                        lease of a job on its worker, renewed by
                                                              the worker's heartbeat: a vanished worker's
                                                              jobs go to another worker after this long
``SEGAPP_WORKER_CONCURRENCY``   CPUs (1 on a GPU queue)       worker processes per worker
``SEGAPP_WORKER_THREADS``       CPUs / concurrency            threads each worker process may use
``SEGAPP_MAX_REDELIVERIES``     ``3``                         worker losses after which a job gives up
``SEGAPP_APP_MODULE``           ``app``                       module workers import to register the web
                                                              app's background callbacks
``SEGAPP_MAX_JOBS``             CPUs                          background jobs (first extraction, apply to
                                                              all) running at once on one host in embedded
                                                              mode; the others wait their turn
``SEGAPP_FEATURE_MEMORY_MB``    ``1024``                      in-memory front of the feature cache, per
                                                              process (the rest stays on disk)
==============================  ============================  ==========================================

Examples
--------
>>> cfg = Settings.from_env({"PORT": "9000", "REDIS_URL": "redis://:pw@r:6379/0"})
>>> cfg.port, cfg.distributed
(9000, True)
>>> cfg.masked()["redis_url"]
'redis://:***@r:6379/0'
>>> cfg.effective_visibility_timeout, cfg.heartbeat_interval
(60, 10.0)
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import ConfigError

#: Environment variable of each setting (the documented interface; tests check docs and compose against it).
ENV_VARS = {
    "host": "HOST", "port": "PORT", "redis_url": "REDIS_URL", "data_dir": "SEGAPP_DATA_DIR",
    "cache_dir": "SEGAPP_CACHE_DIR", "max_pixels": "SEGAPP_MAX_PIXELS", "max_image_mb": "SEGAPP_MAX_IMAGE_MB",
    "max_planes": "SEGAPP_MAX_PLANES", "max_channels": "SEGAPP_MAX_CHANNELS", "max_upload_mb": "SEGAPP_MAX_UPLOAD_MB",
    "max_model_mb": "SEGAPP_MAX_MODEL_MB",
    "session_ttl": "SEGAPP_SESSION_TTL", "queues": "SEGAPP_QUEUES", "task_time_limit": "SEGAPP_TASK_TIME_LIMIT",
    "weights_dir": "SEGAPP_WEIGHTS_DIR", "secret_key": "SEGAPP_SECRET_KEY",
    "result_expires": "SEGAPP_RESULT_EXPIRES", "visibility_timeout": "SEGAPP_VISIBILITY_TIMEOUT",
    "worker_concurrency": "SEGAPP_WORKER_CONCURRENCY", "worker_threads": "SEGAPP_WORKER_THREADS",
    "max_redeliveries": "SEGAPP_MAX_REDELIVERIES", "app_module": "SEGAPP_APP_MODULE",
    "max_jobs": "SEGAPP_MAX_JOBS", "feature_memory_mb": "SEGAPP_FEATURE_MEMORY_MB",
}
DEFAULT_LEASE_S = 60  # default SEGAPP_VISIBILITY_TIMEOUT: a lost worker's job restarts within about a minute
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _int(env, name, default, minimum=1):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def parse_queues(raw: str | None, name: str = "SEGAPP_QUEUES") -> tuple[str, ...]:
    """Comma-separated queue names -> tuple (``("default",)`` when empty).

    Examples
    --------
    >>> parse_queues("gpu, default")
    ('gpu', 'default')
    >>> parse_queues("")
    ('default',)
    """
    queues = tuple(dict.fromkeys(q.strip() for q in (raw or "").split(",") if q.strip()))
    for q in queues:
        if not _NAME.match(q):
            raise ConfigError(f"{name}: invalid queue name {q!r}")
    return queues or ("default",)


def mask_url(url: str | None) -> str | None:
    """Hide the password of a URL.

    Examples
    --------
    >>> mask_url("redis://user:secret@host:6379/0")
    'redis://user:***@host:6379/0'
    >>> mask_url("rediss://:secret@host/1")
    'rediss://:***@host/1'
    """
    if not url:
        return url
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


@dataclass(frozen=True)
class Settings:
    """Effective settings of one process (web server, worker or CLI)."""

    host: str = "127.0.0.1"
    port: int = 8050
    redis_url: str | None = None
    data_dir: Path = Path(".segapp/data")
    cache_dir: Path = Path(".segapp/cache")
    max_pixels: int = 100_000_000
    max_image_mb: int = 1024
    max_planes: int = 1000
    max_channels: int = 16
    max_upload_mb: int = 200
    max_model_mb: int = 256
    session_ttl: int = 7 * 24 * 3600
    queues: tuple[str, ...] = ("default",)
    task_time_limit: int = 1800
    weights_dir: Path = Path("~/.cache/segapp/weights").expanduser()
    secret_key: str | None = field(default=None, repr=False)
    result_expires: int = 24 * 3600
    visibility_timeout: int | None = None
    worker_concurrency: int | None = None
    worker_threads: int | None = None
    max_redeliveries: int = 3
    app_module: str = "app"
    max_jobs: int | None = None
    feature_memory_mb: int = 1024

    @property
    def job_slots(self) -> int:
        """Background jobs that may run at once on one host in embedded mode (default: one per CPU).

        Examples
        --------
        >>> Settings(max_jobs=3).job_slots
        3
        """
        if self.max_jobs:
            return self.max_jobs
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    @property
    def distributed(self) -> bool:
        """True when jobs run on Celery workers (``REDIS_URL`` set)."""
        return bool(self.redis_url)

    @property
    def soft_time_limit(self) -> int:
        """Seconds after which a job is asked to stop (a little before the hard limit).

        Examples
        --------
        >>> Settings(task_time_limit=1800).soft_time_limit, Settings(task_time_limit=10).soft_time_limit
        (1770, 9)
        """
        return max(1, self.task_time_limit - min(30, max(1, self.task_time_limit // 10)))

    @property
    def effective_visibility_timeout(self) -> int:
        """Seconds a job held by a worker that stopped renewing its lease waits before redelivery.

        Not a limit on how long a job may run: every worker renews the leases of the
        jobs it holds every :attr:`heartbeat_interval` seconds (see
        :mod:`segapp.jobs.heartbeat`), so only a vanished worker's jobs expire.
        """
        return self.visibility_timeout or DEFAULT_LEASE_S

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between two lease renewals / worker announcements (a sixth of the lease).

        Examples
        --------
        >>> Settings().heartbeat_interval, Settings(visibility_timeout=3).heartbeat_interval
        (10.0, 0.5)
        """
        return max(0.5, self.effective_visibility_timeout / 6)

    @classmethod
    def from_env(cls, env=None) -> "Settings":
        """Read settings from ``env`` (default ``os.environ``); bad values raise ConfigError."""
        env = os.environ if env is None else env
        kwargs = dict(
            host=env.get("HOST", "127.0.0.1") or "127.0.0.1",
            port=_int(env, "PORT", 8050),
            redis_url=(env.get("REDIS_URL") or "").strip() or None,
            data_dir=Path(env.get("SEGAPP_DATA_DIR") or ".segapp/data"),
            cache_dir=Path(env.get("SEGAPP_CACHE_DIR") or ".segapp/cache"),
            max_pixels=_int(env, "SEGAPP_MAX_PIXELS", 100_000_000),
            max_image_mb=_int(env, "SEGAPP_MAX_IMAGE_MB", 1024),
            max_planes=_int(env, "SEGAPP_MAX_PLANES", 1000),
            max_channels=_int(env, "SEGAPP_MAX_CHANNELS", 16),
            max_upload_mb=_int(env, "SEGAPP_MAX_UPLOAD_MB", 200),
            max_model_mb=_int(env, "SEGAPP_MAX_MODEL_MB", 256),
            session_ttl=_int(env, "SEGAPP_SESSION_TTL", 7 * 24 * 3600),
            queues=parse_queues(env.get("SEGAPP_QUEUES", "default")),
            task_time_limit=_int(env, "SEGAPP_TASK_TIME_LIMIT", 1800),
            weights_dir=Path(env.get("SEGAPP_WEIGHTS_DIR") or "~/.cache/segapp/weights").expanduser(),
            result_expires=_int(env, "SEGAPP_RESULT_EXPIRES", 24 * 3600),
            visibility_timeout=_int(env, "SEGAPP_VISIBILITY_TIMEOUT", None),
            worker_concurrency=_int(env, "SEGAPP_WORKER_CONCURRENCY", None),
            worker_threads=_int(env, "SEGAPP_WORKER_THREADS", None),
            max_redeliveries=_int(env, "SEGAPP_MAX_REDELIVERIES", 3, minimum=0),
            app_module=(env.get("SEGAPP_APP_MODULE") or "app").strip(),
            max_jobs=_int(env, "SEGAPP_MAX_JOBS", None),
            feature_memory_mb=_int(env, "SEGAPP_FEATURE_MEMORY_MB", 1024, minimum=0),
        )
        if env.get("SEGAPP_SECRET_KEY"):
            kwargs["secret_key"] = env["SEGAPP_SECRET_KEY"]
        url = kwargs["redis_url"]
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {mask_url(url)!r}")
        if not _MODULE.match(kwargs["app_module"]):
            raise ConfigError(f"SEGAPP_APP_MODULE must be a dotted module name, got {kwargs['app_module']!r}")
        return cls(**kwargs)

    def masked(self) -> dict:
        """Settings as a dict with passwords and secrets masked (for printing)."""
        d = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        d["queues"] = ",".join(self.queues)
        d["secret_key"] = "***"
        d["redis_url"] = mask_url(self.redis_url)
        d["mode"] = "distributed (Celery + Redis)" if self.distributed else "embedded (diskcache)"
        return d


def get_settings() -> Settings:
    """Settings of this process from the environment."""
    return Settings.from_env()


def describe(settings: Settings | None = None, env=None) -> str:
    """The effective settings as printable text, secrets masked (``python -m segapp config``).

    Each line shows the setting, its value and where it came from (the
    environment variable, or ``default``).

    Examples
    --------
    >>> text = describe(Settings.from_env({"PORT": "9000"}), env={"PORT": "9000"})
    >>> print(text.splitlines()[0])
    mode                 embedded (diskcache)
    >>> [ln for ln in text.splitlines() if ln.startswith("port")]
    ['port                 9000                                      PORT']
    """
    env = os.environ if env is None else env
    settings = settings or Settings.from_env(env)
    values = settings.masked()
    lines = [f"{'mode':<20} {values.pop('mode')}"]
    for f in fields(Settings):
        var = ENV_VARS[f.name]
        value = values[f.name]
        shown = "(auto)" if value is None else str(value)
        if f.name == "redis_url" and value is None:
            shown = "(unset: embedded mode)"
        elif f.name == "visibility_timeout" and value is None:
            shown = f"{settings.effective_visibility_timeout} (auto)"
        source = var if env.get(var) else "default"
        lines.append(f"{f.name:<20} {shown:<41} {source}")
    lines.append(f"{'soft_time_limit':<20} {settings.soft_time_limit:<41} derived")
    return "\n".join(lines)
