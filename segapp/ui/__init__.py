"""The Dash web app: layout, callbacks and figure helpers (thin: the engine does the numerics).

``create_app(settings)`` builds a ready-to-serve :class:`dash.Dash`; ``app.py``
at the repository root calls it and exposes ``server`` for gunicorn.
``make_services(settings)`` builds the per-process infrastructure the callbacks
take as ``services`` (tests call the plain callback functions with one).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"  # package data: found wherever segapp is installed
log = logging.getLogger("segapp.ui")


_services: dict = {}


def make_services(settings):
    """The per-process :class:`~segapp.ui.session.Services` for ``settings``: store, feature and model caches.

    One per process and deployment (store, data and cache directories): the web
    app's callbacks, its background jobs and the jobs of
    :mod:`segapp.ui.remote` running in one Celery worker process share one
    feature cache and one model cache instead of keeping copies.

    Parameters
    ----------
    settings : segapp.config.Settings

    Returns
    -------
    Services
        A local-directory store (or Redis when ``settings.redis_url`` is set), a
        disk feature cache under ``settings.cache_dir`` and an empty model cache.

    Examples
    --------
    >>> import tempfile
    >>> from segapp.config import Settings
    >>> d = tempfile.mkdtemp()
    >>> services = make_services(Settings(data_dir=d + "/data", cache_dir=d + "/cache"))
    >>> type(services.store).__name__, services.session("a" * 32).images()
    ('LocalStore', [])
    """
    from ..store import open_store
    from .pipeline import DiskFeatureCache, ModelCache
    from .session import Services

    where = dataclasses.replace(settings, secret_key="")  # the same deployment, whichever secret
    services = _services.get(where)
    if services is None:
        store = open_store(settings.redis_url, settings.data_dir, settings.session_ttl)
        services = Services(settings=settings, store=store, feature_cache=DiskFeatureCache(
            Path(settings.cache_dir) / "features", max_memory_bytes=settings.feature_memory_mb * 1024**2))
        services.models = ModelCache()
        _services[where] = services
    return services


# Imported by background jobs and helper threads only when first needed (slow imports: skops pulls in torch).
JOB_MODULES = ("segapp.modelfile", "skops.io", "segapp.autoselect", "segapp.postprocess", "sklearn.metrics",
               "torch", "timm")


def import_job_modules(names=JOB_MODULES) -> list[str]:
    """Import, in the main thread before serving, what background jobs and helper threads import lazily.

    Dash forks a process for each background job.  A fork while another thread is in the
    middle of importing a module leaves that module's import lock held in the child, which
    then hangs for ever on its first import of the module (seen: the model-saving thread
    importing skops while choosing ``auto`` forked the extraction job).  Returns the modules
    that could not be imported (optional ones, e.g. without timm).

    Examples
    --------
    >>> import_job_modules(("json", "no_such_module_here"))
    ['no_such_module_here']
    """
    import importlib

    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def create_app(settings=None):
    """Build the app for ``settings`` (default: from the environment).

    Examples
    --------
    >>> import tempfile
    >>> from segapp.config import Settings
    >>> d = tempfile.mkdtemp()
    >>> app = create_app(Settings(data_dir=d + "/data", cache_dir=d + "/cache"))
    >>> app.title
    'segapp'
    """
    import dash

    from ..config import get_settings
    from ..jobs.manager import make_background_manager
    from .callbacks import on_error, register_all
    from . import guard
    from .callbacks.session import extractor_options
    from ..store import check_signing_key
    from .layout import build_layout

    settings = settings or get_settings()
    import_job_modules()
    services = make_services(settings)
    check_signing_key(services.store, services.signing_key())  # the same key as the deployment's workers
    if hasattr(services.store, "purge_expired"):  # local directory: drop sessions idle for longer than the TTL
        services.store.purge_expired()
    app = dash.Dash(
        __name__, title="segapp", update_title=None, assets_folder=str(ASSETS),
        background_callback_manager=make_background_manager(settings),
        suppress_callback_exceptions=True, serve_locally=True, on_error=on_error,
    )
    app.server.secret_key = settings.secret_key or services.signing_key().hex()
    # uploads arrive base64-encoded inside JSON: ~4/3 of the file plus slack
    app.server.config["MAX_CONTENT_LENGTH"] = int(settings.max_upload_mb * 1024 * 1024 * 1.4) + 4 * 1024 * 1024
    app.server.config["SEGAPP_MAX_UPLOAD_MB"] = settings.max_upload_mb
    guard.install(app)  # size and nesting of every callback request, before Dash parses it
    app.server.extensions["segapp"] = services  # per-process infrastructure, reachable from tests and jobs
    app.layout = build_layout(settings, extractor_options()[0])
    register_all(app, services)
    return app
