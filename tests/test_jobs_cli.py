"""The command line against real workers: ``segapp worker`` and ``segapp predict --queue``; ``segapp config``."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from segapp import io
from segapp.segmenter import Segmenter

# Dash keeps a process-wide list of background callbacks; every app the tests build adds its own copies,
# which Celery reports as duplicate task names when a CeleryManager registers them. Harmless here.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")

REPO = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SEGAPP_QUEUES")}
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


def test_config_command_masks_secrets():
    r = subprocess.run([sys.executable, "-m", "segapp", "config"], cwd=REPO, capture_output=True, text=True,
                       env=_env(REDIS_URL="redis://admin:hunter2@db:6379/0", SEGAPP_SECRET_KEY="topsecret"),
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "hunter2" not in r.stdout and "topsecret" not in r.stdout
    assert "redis://admin:***@db:6379/0" in r.stdout and "distributed" in r.stdout


@pytest.fixture(scope="module")
def cli_worker(jobs_settings, tmp_path_factory):
    """``python -m segapp worker --queues cli-q`` (the command line, not the test factory)."""
    from segapp.jobs.celery_app import make_celery

    d = tmp_path_factory.mktemp("cli-worker")
    env = _env(REDIS_URL=jobs_settings.redis_url, SEGAPP_APP_MODULE="segapp_tests_no_web_app",
               SEGAPP_WORKER_THREADS="1", SEGAPP_CACHE_DIR=str(jobs_settings.cache_dir))
    log = open(d / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "segapp", "worker", "--queues", "cli-q", "--concurrency", "1"],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        app = make_celery(jobs_settings)
        deadline = time.monotonic() + 120
        while not any("cli-q" in {q["name"] for q in qs}
                      for qs in (app.control.inspect(timeout=0.5).active_queues() or {}).values()):
            assert worker.poll() is None and time.monotonic() < deadline, (d / "worker.log").read_text()
        yield env
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _model_and_image(d, size=None):
    img = data.coins()[:80, :100]
    lab = np.zeros(img.shape, np.uint8)
    lab[3:6, 5:95], lab[50:54, 30:50] = 1, 2
    Segmenter(features="classical", feature_params={"sigmas": [1.0]}, n_estimators=4).fit(img, lab) \
        .save(d / "m.segapp")
    if size:
        img = np.tile(data.coins(), (size // 303 + 1, size // 384 + 1))[:size, :size]
    Image.fromarray(img).save(d / "img.png")
    return img


@pytest.mark.redis
def test_cli_worker_and_queued_predict(cli_worker, tmp_path):
    img = _model_and_image(tmp_path)
    r = subprocess.run([sys.executable, "-m", "segapp", "predict", "--queue", "cli-q", "--model",
                        str(tmp_path / "m.segapp"), "--out-dir", str(tmp_path / "out"), "--proba",
                        str(tmp_path / "img.png")], cwd=REPO, env=cli_worker, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(tmp_path / "out" / "img.png"), str(tmp_path / "out" / "img_proba.tif")]
    assert io.read_labels(tmp_path / "out" / "img.png").shape == img.shape


@pytest.mark.redis
def test_ctrl_c_revokes_the_jobs_and_removes_the_batch(cli_worker, jobs_settings, redis_server, tmp_path):
    from segapp.jobs.celery_app import make_celery
    from segapp.jobs.client import job_status

    _model_and_image(tmp_path, size=2500)  # 6 MP: several seconds of work on one thread
    client = redis_server.client()
    before = set(client.keys("segapp:{*"))
    p = subprocess.Popen([sys.executable, "-m", "segapp", "predict", "--queue", "cli-q", "--model",
                          str(tmp_path / "m.segapp"), "--out-dir", str(tmp_path / "out"), str(tmp_path / "img.png")],
                         cwd=REPO, env=cli_worker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    app, running, deadline = make_celery(jobs_settings), None, time.monotonic() + 120
    while running is None and time.monotonic() < deadline and p.poll() is None:
        for key in client.keys("celery-task-meta-*"):
            st = job_status(key.decode().removeprefix("celery-task-meta-"), app)
            if st["state"] == "running" and st["worker"] and st["worker"].startswith("cpu-"):
                running = st
        time.sleep(0.05)
    assert running, "the job never started"
    assert set(client.keys("segapp:{*")) > before  # the batch session exists while it runs
    p.send_signal(signal.SIGINT)  # what Ctrl-C does
    _, err = p.communicate(timeout=120)  # (a few seconds, cleanup included: timed in bench, not asserted here)
    assert p.returncode == 130 and err.strip() == "segapp: interrupted"
    assert set(client.keys("segapp:{*")) == before  # the batch session is gone
    deadline = time.monotonic() + 10
    while (st := job_status(running["id"], app))["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert st["state"] == "revoked"  # and the worker stopped it instead of finishing it
    assert not (tmp_path / "out" / "img.png").exists()
    assert set(client.keys("segapp:{*")) == before  # nothing written back by the stopped job
