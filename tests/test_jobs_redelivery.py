"""Worker loss: a job whose worker dies is redelivered and completes; the page can tell it was retried."""

import os
import signal
import time

import numpy as np
import pytest

from segapp.store import new_session_id, store_for

# Dash keeps a process-wide list of background callbacks; every app the tests build adds its own copies,
# which Celery reports as duplicate task names when a CeleryManager registers them. Harmless here.
pytestmark = [pytest.mark.redis, pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")]
SHORT_LEASE = {"SEGAPP_VISIBILITY_TIMEOUT": "3"}  # production default: 60 s, renewed every 10 s


def _wait(app, task_id, pred, timeout=120.0, what="condition"):
    from segapp.jobs.client import job_status

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = job_status(task_id, app)
        if pred(st):
            return st
        if st["state"] == "failed":
            pytest.fail(f"job failed: {st['error']}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; last status {st}")


def test_a_live_job_outlives_its_lease_and_a_killed_workers_job_moves_on(celery_workers, jobs_settings):
    """The visibility timeout is a lease: live workers renew it, a killed worker's jobs go elsewhere."""
    from segapp.jobs import heartbeat
    from segapp.jobs.celery_app import make_celery

    app = make_celery(jobs_settings)
    store, sid = store_for(jobs_settings), new_session_id()
    store.put_json(sid, "annot", "img_0", {"shapes": [{"type": "path", "path": "M0,0L5,5"}]})
    store.put_array(sid, "labels", "img_0", np.eye(5, dtype=np.uint8))
    a, b = celery_workers("lease-a", env=SHORT_LEASE), celery_workers("lease-b", env=SHORT_LEASE)
    live = heartbeat.live_workers(app.backend.client)
    assert {a.hostname, b.hostname} <= set(live)
    assert live[a.hostname]["direct"] == heartbeat.direct_queue(a.hostname)

    # 1. a job more than twice as long as the lease, with an idle second worker: it runs once
    r = app.send_task("segapp.probe", kwargs={"seconds": 7.0, "steps": 14})
    holder = _wait(app, r.id, lambda s: s["state"] == "running", what="the long job to start")["worker"]
    final = _wait(app, r.id, lambda s: s["state"] == "done", what="the long job to finish")
    assert final["result"]["worker"] == holder and final["result"]["attempt"] == 1 and not final["retried"]
    # every execution counts itself when it starts: a copy redelivered after 3 s would have counted by now
    assert int(app.backend.client.get(f"segapp:job:{r.id}:attempts")) == 1

    # 2. kill -9 the worker holding a job: the other worker finishes it once the lease runs out
    r = app.send_task("segapp.probe", kwargs={"seconds": 2.5, "steps": 10})
    st = _wait(app, r.id, lambda s: s["state"] == "running", what="the job to start")
    victim, survivor = (a, b) if st["worker"] == a.hostname else (b, a)
    assert st["attempt"] == 1
    victim.kill()  # main and pool processes: nobody acknowledges the message or renews its lease
    final = _wait(app, r.id, lambda s: s["state"] == "done", what="the redelivered job to finish")
    assert final["result"]["worker"] == survivor.hostname
    assert final["result"]["attempt"] == 2 and final["retried"] is True
    # the session's annotations are untouched by the lost job; the dead worker drops out of the registry
    assert store.get_json(sid, "annot", "img_0")["shapes"][0]["path"] == "M0,0L5,5"
    assert (store.get_array(sid, "labels", "img_0") == np.eye(5)).all()
    assert victim.hostname not in heartbeat.live_workers(app.backend.client)
    store.drop_session(sid)


def test_killed_pool_process_job_is_requeued_at_once(celery_workers, jobs_settings):
    """``reject_on_worker_lost``: when only the pool process dies, the job is requeued immediately."""
    from segapp.jobs.celery_app import make_celery

    app = make_celery(jobs_settings)
    w = celery_workers("pool")  # default 60 s lease: redelivery here cannot come from its expiry
    r = app.send_task("segapp.probe", kwargs={"seconds": 2.0, "steps": 10})
    st = _wait(app, r.id, lambda s: s["state"] == "running" and s.get("pid"), what="the job to start")
    os.kill(st["pid"], signal.SIGKILL)
    final = _wait(app, r.id, lambda s: s["state"] == "done", what="the requeued job to finish")
    assert final["result"]["worker"] == w.hostname and final["result"]["pid"] != st["pid"]
    assert final["result"]["attempt"] == 2 and final["retried"] is True


def test_a_job_that_keeps_killing_workers_gives_up(celery_workers, jobs_settings):
    from segapp.jobs.celery_app import make_celery

    app = make_celery(jobs_settings)
    celery_workers("fragile", env={"SEGAPP_MAX_REDELIVERIES": "1"})
    r = app.send_task("segapp.probe", kwargs={"seconds": 3.0, "steps": 10})
    for attempt in (1, 2):
        st = _wait(app, r.id, lambda s: s["state"] == "running" and s["attempt"] == attempt and s.get("pid"),
                   what=f"attempt {attempt}")
        os.kill(st["pid"], signal.SIGKILL)
    from segapp.jobs.client import job_status

    deadline = time.monotonic() + 120
    while (st := job_status(r.id, app))["state"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert st["state"] == "failed" and "gave up" in st["error"] and "\n" not in st["error"]
