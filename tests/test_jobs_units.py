"""Jobs plumbing that needs no Redis: Celery settings, routing, status mapping, worker plan, failures."""

import subprocess
import sys
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from segapp.config import Settings
from segapp.errors import ConfigError, SegappError
from segapp.jobs import routing
from segapp.jobs.celery_app import JobTimeLimitExceeded, app, celery_config, make_celery
from segapp.jobs.client import error_message, job_status
from segapp.jobs.worker import run_worker, worker_plan
from segapp.store import StoreUnavailableError

# Dash keeps a process-wide list of background callbacks; every app the tests build adds its own copies,
# which Celery reports as duplicate task names when a CeleryManager registers them. Harmless here.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")

REPO = Path(__file__).resolve().parents[1]
UNREACHABLE = "redis://:pw@127.0.0.1:1/0"


def test_celery_config_is_reliable_by_default():
    s = Settings(redis_url="redis://r:6379/0", task_time_limit=600, result_expires=3600)
    c = celery_config(s)
    assert c["broker_url"] == c["result_backend"] == "redis://r:6379/0"
    assert c["task_acks_late"] and c["task_reject_on_worker_lost"] and c["worker_prefetch_multiplier"] == 1
    assert (c["task_time_limit"], c["task_soft_time_limit"], c["result_expires"]) == (600, 570, 3600)
    transport = c["broker_transport_options"]
    # the visibility timeout is a lease renewed by live workers: short (a lost worker's job restarts within
    # about a minute) and independent of the time limit; renewals come several times per lease
    assert transport["visibility_timeout"] == 60 < c["task_time_limit"] and s.heartbeat_interval <= 60 / 5
    assert transport["unacked_restore_interval"] <= 5 and transport["unacked_restore_throttle"] == 1
    assert c["worker_cancel_long_running_tasks_on_connection_loss"]  # a partitioned worker does not run on
    assert c["task_default_queue"] == "default" and c["accept_content"] == ["json"]
    assert "segapp.jobs.tasks" in c["imports"]
    quick = celery_config(Settings(redis_url="redis://r/0", visibility_timeout=5))["broker_transport_options"]
    assert quick["visibility_timeout"] == 5 and quick["unacked_restore_interval"] == 1


def test_one_shared_app_with_the_tasks_registered():
    import segapp.jobs.tasks  # noqa: F401
    import segapp.ui.remote  # noqa: F401

    assert make_celery(Settings(redis_url="redis://127.0.0.1:1/0")) is app
    assert {"segapp.predict", "segapp.probe", "segapp.session_refresh"} <= set(app.tasks)
    assert app.tasks["segapp.predict"].acks_late
    assert not app.tasks["segapp.session_refresh"].acks_late  # its caller waits for it and handles a loss


def test_routing_follows_the_gpu_workers_and_the_sessions_features(tmp_path):
    from segapp.store import LocalStore, new_session_id

    store, sid = LocalStore(tmp_path), new_session_id()
    try:
        routing.set_active_queues({"cpu@a": {"default"}})
        assert routing.queue_for("features") == "default"
        assert routing.session_queue(store, sid) == "default"  # nobody holds its features yet
        routing.remember_features(store, sid, "cpu@a")
        assert routing.session_queue(store, sid) == "segapp.node.cpu@a"  # stays where its features are
        routing.set_active_queues({"cpu@a": {"default"}, "gpu@b": {"gpu", "default"}})
        assert routing.queue_for("features") == "gpu" and routing.queue_for("predict", deep=False) == "default"
        assert routing.workers_for("gpu") == ["gpu@b"]
        # a GPU worker appeared: extraction moves there; work on what cpu@a holds stays on cpu@a
        assert routing.session_queue(store, sid) == "gpu"
        assert routing.session_queue(store, sid, kind="predict", deep=False) == "segapp.node.cpu@a"
        routing.remember_features(store, sid, "gpu@b")
        assert routing.session_queue(store, sid) == "segapp.node.gpu@b"
        routing.set_active_queues({"cpu@a": {"default"}})  # the GPU worker is gone
        assert routing.session_queue(store, sid) == "default" and routing.direct_queue_of("gpu@b") is None
    finally:
        routing.clear_cache()


class _Backend:
    def __init__(self, meta):
        self.meta = meta

    def get_task_meta(self, task_id):
        return self.meta


class _App:
    def __init__(self, meta):
        self.backend = _Backend(meta)


@pytest.mark.parametrize("meta, state, extra", [
    ({"status": "PENDING", "result": None}, "queued", {"fraction": 0.0}),
    ({"status": "STARTED", "result": {"pid": 1}}, "running", {"message": "started"}),
    ({"status": "PROGRESS", "result": {"fraction": 0.5, "message": "predicting", "attempt": 2, "retried": True,
                                        "worker": "w@h"}}, "running",
     {"fraction": 0.5, "retried": True, "attempt": 2, "worker": "w@h"}),
    ({"status": "SUCCESS", "result": {"attempt": 2, "out": "x"}}, "done", {"fraction": 1.0, "retried": True}),
    ({"status": "FAILURE", "result": JobTimeLimitExceeded("stopped after 5 s")}, "failed",
     {"error": "stopped after 5 s"}),
    ({"status": "REVOKED", "result": None}, "revoked", {}),
])
def test_job_status_for_display(meta, state, extra):
    st = job_status("id", _App(meta))
    assert st["state"] == state
    for k, v in extra.items():
        assert st[k] == v


def test_error_messages_are_one_line():
    assert isinstance(JobTimeLimitExceeded("x"), SoftTimeLimitExceeded)
    assert isinstance(JobTimeLimitExceeded("x"), SegappError) and str(JobTimeLimitExceeded("x")) == "x"
    assert error_message({"result": {"exc_type": "WorkerLostError", "exc_message": []}}).startswith("the worker")
    assert error_message({"result": {"exc_type": "ImageReadError", "exc_message": ["a.png:\n bad"]}}) == "a.png: bad"


def test_worker_plan_shares_the_cpus():
    s = Settings()
    assert worker_plan(["default"], None, s, cpus=4) == {"queues": ["default"], "concurrency": 4, "threads": 1}
    assert worker_plan(["gpu"], None, s, cpus=4)["concurrency"] == 1
    assert worker_plan(None, None, Settings(worker_concurrency=2, worker_threads=3), cpus=4)["threads"] == 3
    with pytest.raises(ConfigError):
        worker_plan(["bad queue"], None, s)
    with pytest.raises(ConfigError):
        worker_plan(None, 0, s)


def test_worker_needs_a_reachable_redis():
    with pytest.raises(ConfigError, match="REDIS_URL"):
        run_worker(["default"], 1, Settings())
    with pytest.raises(StoreUnavailableError, match="unset REDIS_URL"):
        run_worker(["default"], 1, Settings(redis_url=UNREACHABLE))


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, env_extra, timeout=120):
    import os

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(env_extra, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args", [["-m", "segapp", "worker"], ["-m", "segapp.jobs.worker", "--concurrency", "1"],
                                  ["-m", "segapp", "predict", "--queue", "--model", "m.segapp", "--out-dir", "o",
                                   "x.png"]])
def test_commands_say_in_one_line_that_redis_is_unreachable(args):
    r = _run(args, {"REDIS_URL": UNREACHABLE})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach Redis at redis://:***@127.0.0.1:1/0" in lines[0]
    assert "unset REDIS_URL" in lines[0] and "pw@" not in r.stderr


def test_web_server_says_in_one_line_that_redis_is_unreachable():
    r = _run(["-m", "gunicorn", "-c", "python:segapp.jobs.gunicorn_conf", "app:server"],
             {"REDIS_URL": UNREACHABLE, "PORT": str(_free_port())})
    assert r.returncode != 0
    assert "segapp: error: cannot reach Redis" in r.stderr and "Traceback" not in r.stderr


def test_worker_without_redis_url_says_so():
    r = _run(["-m", "segapp", "worker"], {})
    assert r.returncode == 2 and "needs REDIS_URL" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_health_check_reports_unhealthy_in_one_line(capsys):
    from segapp.jobs import health

    assert health.main(["web"]) in (0, 1)
    capsys.readouterr()
    import os

    os.environ["REDIS_URL"] = UNREACHABLE
    try:
        assert health.main(["redis"]) == 1 and health.main(["worker"]) == 1
    finally:
        del os.environ["REDIS_URL"]
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and all(line.startswith("unhealthy: ") for line in out)


@pytest.mark.redis
def test_heartbeat_renews_leases_announces_and_rescues_a_vanished_workers_queue(redis_server):
    from segapp.jobs.heartbeat import WORKERS_KEY, Heartbeat, direct_queue, live_workers

    client = redis_server.client()
    client.delete("unacked_index-test", "default", direct_queue("gone@b"), WORKERS_KEY)
    client.zadd("unacked_index-test", {"held": 100.0, "other": 100.0})
    beat = Heartbeat(client, "live@a", {"queues": ["default"], "direct": direct_queue("live@a")}, interval=1.0,
                     index_key="unacked_index-test", tags=lambda: ["held", "acked-meanwhile"])
    gone = Heartbeat(client, "gone@b", {"queues": ["gpu"], "direct": direct_queue("gone@b")}, interval=1.0,
                     index_key="unacked_index-test", tags=lambda: [])
    gone.beat(now=1000.0)
    client.lpush(direct_queue("gone@b"), b"job-1", b"job-2")  # sent to gone@b while it was dying
    client.lpush(direct_queue("gone@b") + "\x06\x166", b"background-job")  # priority 6 has its own list
    assert set(live_workers(client, now=1001.0)) == {"gone@b"}
    assert beat.beat(now=1004.0) == 1  # only the lease it holds that still exists is renewed...
    assert client.zscore("unacked_index-test", "held") == 1004.0
    assert client.zscore("unacked_index-test", "other") == 100.0  # ...others' leases run out
    assert client.zscore("unacked_index-test", "acked-meanwhile") is None  # never re-created (XX)
    assert set(live_workers(client, now=1004.5)) == {"live@a"}  # gone@b's announcement expired at 1003
    assert client.lrange("default", 0, -1) == [b"job-2", b"job-1"]  # oldest first again on the default queue
    assert client.lrange("default\x06\x166", 0, -1) == [b"background-job"]  # same priority there
    assert client.llen(direct_queue("gone@b")) == 0
    beat.stop(forget=True)  # a clean shutdown ends the announcement at once
    assert "live@a" not in live_workers(client)
    client.delete("unacked_index-test", "default", "default\x06\x166", WORKERS_KEY)


def test_embedded_background_jobs_do_not_keep_the_servers_connections_open(tmp_path):
    """A job forked from the web process closes inherited sockets (else keep-alive requests hang)."""
    import os
    import socket

    from segapp.jobs.manager import make_background_manager

    make_background_manager(Settings(cache_dir=tmp_path))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    pid = os.fork()
    if pid == 0:  # the "job": the listening socket must be gone
        try:
            os.fstat(server.fileno())
            os._exit(1)
        except OSError:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    os.fstat(server.fileno())  # still open in the server itself
    server.close()
