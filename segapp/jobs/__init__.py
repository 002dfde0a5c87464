"""Background jobs: the Dash background-callback manager factory, the Celery app, tasks and clients.

Embedded mode (no ``REDIS_URL``) uses Dash's ``DiskcacheManager``; distributed
mode uses ``CeleryManager`` backed by Redis, with Celery workers.

- :mod:`.manager` — :func:`make_background_manager` (importable without Celery);
- :mod:`.celery_app` — the shared Celery app, its reliability settings and worker hooks;
- :mod:`.tasks` — feature extraction, training, prediction and a probe, on ids in the store;
- :mod:`.routing` — ``gpu`` vs ``default`` queue from the running workers;
- :mod:`.client` — :func:`~.client.predict_via_queue` (CLI), :func:`~.client.job_status`,
  :func:`~.client.extract_features_remote` and :func:`~.client.current_job` (web app);
- :mod:`.worker` — :func:`~.worker.run_worker` (``python -m segapp worker``);
- :mod:`.health` — container health checks; :mod:`.gunicorn_conf` — the web server's settings.
"""

from .manager import make_background_manager  # noqa: F401
