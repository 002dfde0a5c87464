"""Deployment settings from environment variables, with documented defaults.

=====================  ================================  ==========================================
variable               default                           meaning
=====================  ================================  ==========================================
``HOST``               ``127.0.0.1``                     address the web server binds to
``PORT``               ``8050``                          port of the web server
``REDIS_URL``          unset                             Celery broker + result backend and session
                                                         store; unset = embedded diskcache mode
``SEGAPP_DATA_DIR``    ``./.segapp/data``                session store directory (embedded mode)
``SEGAPP_CACHE_DIR``   ``./.segapp/cache``               diskcache directory for background jobs
``SEGAPP_MAX_PIXELS``  ``100000000``                     largest accepted image (pixels per plane)
``SEGAPP_MAX_UPLOAD_MB`` ``200``                         largest accepted upload
``SEGAPP_SESSION_TTL`` ``604800``                        seconds a session's data lives after last write
``SEGAPP_QUEUES``      ``default``                       queues a worker consumes (``gpu,default``)
``SEGAPP_TASK_TIME_LIMIT`` ``1800``                      hard time limit of one job, seconds
``SEGAPP_WEIGHTS_DIR`` ``~/.cache/segapp/weights``       where local backbone weights are looked up
``SEGAPP_SECRET_KEY``  random per process                Flask secret (set it when running >1 web
                                                         process)
=====================  ================================  ==========================================

Examples
--------
>>> cfg = Settings.from_env({"PORT": "9000", "REDIS_URL": "redis://:pw@r:6379/0"})
>>> cfg.port, cfg.distributed
(9000, True)
>>> cfg.masked()["redis_url"]
'redis://:***@r:6379/0'
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import ConfigError


def _int(env, name, default, minimum=1) -> int:
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


@dataclass(frozen=True)
class Settings:
    """Effective settings of one process (web server, worker or CLI)."""

    host: str = "127.0.0.1"
    port: int = 8050
    redis_url: str | None = None
    data_dir: Path = Path(".segapp/data")
    cache_dir: Path = Path(".segapp/cache")
    max_pixels: int = 100_000_000
    max_upload_mb: int = 200
    session_ttl: int = 7 * 24 * 3600
    queues: tuple[str, ...] = ("default",)
    task_time_limit: int = 1800
    weights_dir: Path = Path("~/.cache/segapp/weights").expanduser()
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)

    @property
    def distributed(self) -> bool:
        """True when jobs run on Celery workers (``REDIS_URL`` set)."""
        return bool(self.redis_url)

    @classmethod
    def from_env(cls, env=None) -> "Settings":
        """Read settings from ``env`` (default ``os.environ``); bad values raise ConfigError."""
        env = os.environ if env is None else env
        queues = tuple(q.strip() for q in env.get("SEGAPP_QUEUES", "default").split(",") if q.strip())
        for q in queues:
            if not re.match(r"^[A-Za-z0-9_.-]+$", q):
                raise ConfigError(f"SEGAPP_QUEUES: invalid queue name {q!r}")
        kwargs = dict(
            host=env.get("HOST", "127.0.0.1") or "127.0.0.1",
            port=_int(env, "PORT", 8050),
            redis_url=env.get("REDIS_URL") or None,
            data_dir=Path(env.get("SEGAPP_DATA_DIR") or ".segapp/data"),
            cache_dir=Path(env.get("SEGAPP_CACHE_DIR") or ".segapp/cache"),
            max_pixels=_int(env, "SEGAPP_MAX_PIXELS", 100_000_000),
            max_upload_mb=_int(env, "SEGAPP_MAX_UPLOAD_MB", 200),
            session_ttl=_int(env, "SEGAPP_SESSION_TTL", 7 * 24 * 3600),
            queues=queues or ("default",),
            task_time_limit=_int(env, "SEGAPP_TASK_TIME_LIMIT", 1800),
            weights_dir=Path(env.get("SEGAPP_WEIGHTS_DIR") or "~/.cache/segapp/weights").expanduser(),
        )
        if env.get("SEGAPP_SECRET_KEY"):
            kwargs["secret_key"] = env["SEGAPP_SECRET_KEY"]
        if kwargs["redis_url"] and not kwargs["redis_url"].startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {kwargs['redis_url']!r}")
        return cls(**kwargs)

    def masked(self) -> dict:
        """Settings as a dict with passwords and secrets masked (for printing)."""
        d = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        d["queues"] = ",".join(self.queues)
        d["secret_key"] = "***"
        if self.redis_url:
            d["redis_url"] = re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", self.redis_url)
        d["mode"] = "distributed (Celery + Redis)" if self.distributed else "embedded (diskcache)"
        return d


def get_settings() -> Settings:
    """Settings of this process from the environment."""
    return Settings.from_env()
