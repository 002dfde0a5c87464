"""Gunicorn settings for the web server: ``gunicorn -c python:segapp.jobs.gunicorn_conf app:server``.

Binds ``HOST:PORT`` from the segapp settings; ``WEB_CONCURRENCY`` worker
processes (default 2) with 4 threads each, so Dash's polling of background
callbacks never queues behind a slow request.  In distributed mode the master
checks Redis before starting and exits with one line when it is unreachable.
"""

import os
import sys

from segapp.config import get_settings

_settings = get_settings()

bind = f"{_settings.host}:{_settings.port}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    """Fail fast, in one line, when Redis is configured but unreachable."""
    if _settings.distributed:
        from segapp.errors import SegappError
        from segapp.store import check_redis

        try:
            check_redis(_settings.redis_url)
        except SegappError as e:
            print(f"segapp: error: {e}", file=sys.stderr)
            sys.exit(2)
