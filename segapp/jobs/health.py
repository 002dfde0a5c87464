"""Container health checks: ``python -m segapp.jobs.health web|worker|redis``.

- ``web``: the web server answers HTTP on ``127.0.0.1:$PORT``;
- ``worker``: a Celery worker on this host answers a broadcast ping;
- ``redis``: Redis at ``REDIS_URL`` answers.

Exit status 0 when healthy, 1 with a one-line reason otherwise.
"""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request

from ..config import get_settings
from ..errors import SegappError


def check_web(settings, timeout: float = 5.0) -> str:
    """Raise SegappError unless the web server on this host answers below HTTP 500."""
    url = f"http://127.0.0.1:{settings.port}/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return f"web: HTTP {r.status} from {url}"
    except urllib.error.HTTPError as e:
        if e.code < 500:
            return f"web: HTTP {e.code} from {url}"
        raise SegappError(f"web: HTTP {e.code} from {url}") from None
    except (urllib.error.URLError, OSError) as e:
        raise SegappError(f"web: no answer from {url} ({getattr(e, 'reason', e)})") from None


def check_worker(settings, timeout: float = 5.0) -> str:
    """Raise SegappError unless a worker whose node name ends with ``@<this host>`` answers a ping."""
    from ..store import check_redis
    from .celery_app import make_celery

    check_redis(settings.redis_url)
    host = socket.gethostname()
    replies = make_celery(settings).control.ping(timeout=timeout) or []
    mine = [name for r in replies for name in r if name.endswith("@" + host)]
    if not mine:
        raise SegappError(f"worker: no Celery worker on {host} answered within {timeout:g} s")
    return f"worker: {', '.join(mine)} answered"


def main(argv=None) -> int:
    """Run one check; prints one line, returns 0 (healthy) or 1."""
    argv = sys.argv[1:] if argv is None else argv
    what = argv[0] if argv else "web"
    try:
        settings = get_settings()
        if what == "web":
            text = check_web(settings)
        elif what == "worker":
            text = check_worker(settings)
        elif what == "redis":
            from ..store import check_redis

            check_redis(settings.redis_url or "redis://localhost:6379/0")
            text = "redis: ok"
        else:
            raise SegappError(f"unknown check {what!r}; use web, worker or redis")
    except SegappError as e:
        print(f"unhealthy: {e}")
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
