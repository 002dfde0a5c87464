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
FAST_REDELIVERY = {"SEGAPP_VISIBILITY_TIMEOUT": "5"}  # production default: time limit + 10 min


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


def test_killed_worker_job_is_redelivered_to_a_second_worker(celery_workers, jobs_settings):
    from segapp.jobs.celery_app import make_celery

    app = make_celery(jobs_settings)
    store, sid = store_for(jobs_settings), new_session_id()
    store.put_json(sid, "annot", "img_0", {"shapes": [{"type": "path", "path": "M0,0L5,5"}]})
    store.put_array(sid, "labels", "img_0", np.eye(5, dtype=np.uint8))

    first = celery_workers("first", env=FAST_REDELIVERY)
    r = app.send_task("segapp.probe", kwargs={"seconds": 2.5, "steps": 10})
    st = _wait(app, r.id, lambda s: s["state"] == "running", what="the job to start")
    assert st["worker"] == first.hostname and st["attempt"] == 1
    first.kill()  # kill -9 the whole worker mid-job: nobody acknowledges the message

    second = celery_workers("second", env=FAST_REDELIVERY)
    final = _wait(app, r.id, lambda s: s["state"] == "done", what="the redelivered job to finish")
    assert final["result"]["worker"] == second.hostname
    assert final["result"]["attempt"] == 2 and final["retried"] is True
    # the session's annotations are untouched by the lost job
    assert store.get_json(sid, "annot", "img_0")["shapes"][0]["path"] == "M0,0L5,5"
    assert (store.get_array(sid, "labels", "img_0") == np.eye(5)).all()
    store.drop_session(sid)


def test_killed_pool_process_job_is_requeued_at_once(celery_workers, jobs_settings):
    """``reject_on_worker_lost``: when only the pool process dies, the job is requeued immediately."""
    from segapp.jobs.celery_app import make_celery

    app = make_celery(jobs_settings)
    w = celery_workers("pool")  # default visibility timeout: redelivery here cannot come from the timeout
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
