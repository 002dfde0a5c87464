"""Background jobs: the Dash background-callback manager factory, the Celery app, tasks and clients.

Embedded mode (no ``REDIS_URL``) uses Dash's ``DiskcacheManager``; distributed
mode uses a ``CeleryManager`` backed by Redis that routes each job, with Celery workers.

- :mod:`.manager` — :func:`make_background_manager` (importable without Celery), the routed Celery manager;
- :mod:`.celery_app` — the shared Celery app, its reliability settings and worker hooks;
- :mod:`.heartbeat` — workers renew their jobs' leases and announce themselves (queues, GPU, direct queue);
- :mod:`.tasks` — batch prediction and a probe, on ids in the store (the web app's session
  work is :mod:`segapp.ui.remote`);
- :mod:`.routing` — ``gpu`` vs ``default`` from the running workers, and the worker holding a session's features;
- :mod:`.client` — :func:`~.client.predict_via_queue` (CLI), :func:`~.client.job_status`,
  :func:`~.client.wait_for` and :func:`~.client.current_job` (web app);
- :mod:`.worker` — :func:`~.worker.run_worker` (``python -m segapp worker``);
- :mod:`.health` — container health checks; :mod:`.gunicorn_conf` — the web server's settings.
"""

from .manager import make_background_manager  # noqa: F401
