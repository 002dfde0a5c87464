"""Factory for Dash's background-callback manager."""

from __future__ import annotations

from ..config import Settings, get_settings


def make_background_manager(settings: Settings | None = None, *, check: bool = True):
    """``DiskcacheManager`` (embedded) or ``CeleryManager`` (``REDIS_URL`` set).

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
        from dash import CeleryManager

        from ..store import check_redis
        from .celery_app import make_celery

        if check:
            check_redis(settings.redis_url)
        return CeleryManager(make_celery(settings), expire=settings.result_expires)
    import diskcache
    from dash import DiskcacheManager

    return DiskcacheManager(diskcache.Cache(str(settings.cache_dir)), expire=24 * 3600)
