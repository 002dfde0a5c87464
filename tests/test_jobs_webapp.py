"""The web app in distributed mode, driven over HTTP like a browser: where its jobs run, what crosses hosts.

One web server and two workers — one consuming only ``gpu``, one only ``default`` —
each with its OWN cache directory (as on three hosts that share nothing but Redis).
"""

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from skimage import data

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from dash_http import DashPage  # noqa: E402

pytestmark = [pytest.mark.redis, pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web_server(jobs_settings, tmp_path):
    """``python app.py`` with REDIS_URL, its own cache directory; yields (url, cache dir)."""
    port, cache = _free_port(), tmp_path / "web-cache"
    env = {**os.environ, "REDIS_URL": jobs_settings.redis_url, "PORT": str(port), "SEGAPP_CACHE_DIR": str(cache),
           "SEGAPP_DATA_DIR": str(tmp_path / "web-data"), "SEGAPP_SECRET_KEY": "test-secret",
           "PYTHONPATH": str(REPO)}
    log = tmp_path / "web.log"
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            requests.get(url, timeout=2)
            break
        except requests.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
    yield url, cache
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def _upload(page, img) -> None:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    page.props[("upload-images", "filename")] = "coins.png"
    page.set("upload-images", "contents", "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())


def _stroke(page, shapes) -> dict:
    return page.set("canvas", "relayoutData", {"shapes": shapes})


def _shape(cid, path):
    from segapp.annotations import shape_name

    return {"type": "path", "path": path, "name": shape_name(cid, 4), "line": {"width": 4}}


def _features_in(d: Path) -> int:
    return sum(1 for _ in d.rglob("*.npy"))


def test_web_app_jobs_run_where_the_hardware_and_the_features_are(web_server, celery_workers, jobs_settings,
                                                                  tmp_path):
    from segapp.jobs import routing
    from segapp.jobs.celery_app import make_celery
    from segapp.store import store_for

    url, web_cache = web_server
    caches = {name: tmp_path / f"{name}-cache" for name in ("gpu", "cpu")}
    gpu = celery_workers("gpu", queues="gpu", env={"SEGAPP_APP_MODULE": "app", "SEGAPP_CACHE_DIR": str(caches["gpu"])})
    cpu = celery_workers("cpu", queues="default",
                         env={"SEGAPP_APP_MODULE": "app", "SEGAPP_CACHE_DIR": str(caches["cpu"])})
    assert "registered" in gpu.log() and "background callback" in gpu.log()
    store, app = store_for(jobs_settings), make_celery(jobs_settings)

    requests_made = []
    page = DashPage(url, on_request=lambda label, seconds, status: requests_made.append(label))
    page.load()
    sid = page.value("session-id", "data").rsplit(".", 1)[0]  # the browser holds "<store id>.<signature>"
    assert sid
    img = data.coins()[:160, :200]
    _upload(page, img)
    shapes = [_shape(1, "M5,6L190,6"), _shape(2, "M40,110L90,110")]
    _stroke(page, shapes)  # first training: features are missing -> background extraction job
    assert any(label.startswith("extract-request.data") for label in requests_made)
    info = store.get_json(sid, "state", "model")
    assert info and info["version"] >= 1, page.value("train-info", "children")
    assert routing.features_worker(store, sid) == gpu.hostname  # the extraction ran on the GPU worker
    overlay = page.value("overlay-data", "data") or {}
    assert overlay["tiles"] and all(t["uri"].startswith("data:image/png") for t in overlay["tiles"])
    assert _features_in(caches["gpu"]) > 0
    assert _features_in(caches["cpu"]) == 0 and _features_in(web_cache) == 0

    # a stroke: retrain + predict on the GPU worker from its cached features; only the overlay comes back
    before, requests_made[:] = info["version"], []
    _stroke(page, shapes + [_shape(2, "M120,140L180,140")])
    assert not any(label.startswith("extract-request.data") for label in requests_made)  # the quick path
    assert store.get_json(sid, "state", "model")["version"] > before
    assert page.value("model-version", "data").get("rendered") is True
    assert _features_in(caches["cpu"]) == 0 and _features_in(web_cache) == 0

    # the GPU worker goes away: the next extraction runs on the CPU worker, which then holds the features
    gpu.stop()
    routing.clear_cache()
    deadline = time.monotonic() + 30
    while gpu.hostname in routing.workers(app, refresh=True) and time.monotonic() < deadline:
        time.sleep(0.2)
    _stroke(page, shapes + [_shape(2, "M120,140L180,140"), _shape(1, "M5,150L60,150")])
    assert routing.features_worker(store, sid) == cpu.hostname
    assert _features_in(caches["cpu"]) > 0 and _features_in(web_cache) == 0
    assert store.get_json(sid, "state", "model")["version"] > before + 1
    labels = store.get_array(sid, "result", page.value("current-image", "data")["image"] + "_0")
    assert labels.shape == img.shape and set(np.unique(labels)) <= {1, 2}
