"""Jobs on real Celery workers: batch prediction == local, progress, time limits, GPU routing, training."""

import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage import data

from segapp import io
from segapp.errors import SegappError
from segapp.segmenter import Segmenter
from segapp.store import new_session_id

# Dash keeps a process-wide list of background callbacks; every app the tests build adds its own copies,
# which Celery reports as duplicate task names when a CeleryManager registers them. Harmless here.
pytestmark = [pytest.mark.redis, pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")]
SEG_KW = dict(features="classical", feature_params={"sigmas": [1.0, 2.0]}, n_estimators=5)


def _labels(img):
    lab = np.zeros(img.shape[:2], np.uint8)
    lab[4:7, 4:-4] = 1
    lab[-30:-26, 20:40] = 2
    return lab


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A trained model file and three small images (PNG 8-bit, TIFF 16-bit, PNG)."""
    d = tmp_path_factory.mktemp("batch")
    coins = data.coins()
    Segmenter(**SEG_KW).fit(coins[:96, :120], _labels(coins[:96, :120])).save(d / "model.segapp")
    Image.fromarray(coins[100:196, 50:170]).save(d / "a.png")
    tifffile.imwrite(d / "b.tif", (coins[150:230, 200:300].astype(np.uint16) * 250))
    Image.fromarray(coins[200:264, :64]).save(d / "c.png")
    return d, [d / "a.png", d / "b.tif", d / "c.png"]


@pytest.fixture(scope="module")
def worker(module_worker_factory):
    """One prefork worker consuming ``gpu,default`` (it plays the GPU worker for routing)."""
    from segapp.jobs import routing

    w = module_worker_factory.start("shared", queues="gpu,default")
    routing.clear_cache()
    yield w
    routing.clear_cache()


def _wait(task_id, app, until=("done", "failed", "revoked"), timeout=120.0):
    from segapp.jobs.client import job_status

    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = job_status(task_id, app)
        seen.append(st)
        if st["state"] in until:
            return st, seen
        time.sleep(0.05)
    pytest.fail(f"job {task_id} still {seen[-1]['state']} after {timeout:g} s")


def _session_keys(client):
    return {k for k in client.keys("segapp:{*")}


def test_batch_prediction_through_a_worker_matches_local_prediction(batch, worker, jobs_settings, redis_server,
                                                                    tmp_path):
    from segapp.cli import main
    from segapp.jobs.client import predict_via_queue

    d, images = batch
    before = _session_keys(redis_server.client())
    fractions, notes = [], []
    written = predict_via_queue(d / "model.segapp", images, tmp_path / "queue", proba=True, settings=jobs_settings,
                                progress=fractions.append, warn=notes.append)
    assert [p.name for p in written] == ["a.png", "a_proba.tif", "b.png", "b_proba.tif", "c.png", "c_proba.tif"]
    assert fractions[-1] == 1.0 and all(x <= y + 1e-9 for x, y in zip(fractions, fractions[1:]))
    assert notes == []  # a worker was listening, nothing was retried
    assert _session_keys(redis_server.client()) == before  # the batch session was removed

    assert main(["predict", "--model", str(d / "model.segapp"), "--out-dir", str(tmp_path / "local"), "--proba",
                 *map(str, images)]) == 0
    for p in written:
        local = tmp_path / "local" / p.name
        if p.name.endswith("_proba.tif"):
            q, ref = io.read_image(p), io.read_image(local)
            assert q.dtype == ref.dtype == np.float32
            # same features and forest; only the order in which tree votes are summed may differ
            np.testing.assert_allclose(q, ref, rtol=0, atol=1e-6)
        else:
            np.testing.assert_array_equal(io.read_labels(p), io.read_labels(local))


def test_unreadable_image_fails_with_its_name_in_one_line(batch, worker, jobs_settings, redis_server, tmp_path):
    from segapp.jobs.client import predict_via_queue

    d, images = batch
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    before = _session_keys(redis_server.client())
    with pytest.raises(SegappError) as e:
        predict_via_queue(d / "model.segapp", [images[0], bad], tmp_path / "out", settings=jobs_settings)
    assert "broken.png" in str(e.value) and "\n" not in str(e.value)
    assert _session_keys(redis_server.client()) == before
    with pytest.raises(SegappError):  # a foreign model file is refused before anything is queued
        predict_via_queue(images[0], images, tmp_path / "out", settings=jobs_settings)


def test_progress_is_reported_and_the_job_knows_where_it_ran(worker, jobs_settings):
    from segapp.jobs.celery_app import make_celery

    app = make_celery(jobs_settings)
    r = app.send_task("segapp.probe", kwargs={"seconds": 1.5, "steps": 5})
    final, seen = _wait(r.id, app)
    running = [s for s in seen if s["state"] == "running" and 0 < s["fraction"] < 1]
    assert running and running[0]["message"].startswith("step") and running[0]["worker"] == worker.hostname
    assert final["state"] == "done" and final["result"]["worker"] == worker.hostname
    assert final["result"]["attempt"] == 1 and final["retried"] is False


def test_interactive_jobs_go_before_background_and_batch_jobs(worker, jobs_settings):
    from segapp.jobs.celery_app import PRIORITY_BACKGROUND, PRIORITY_BATCH, PRIORITY_INTERACTIVE, make_celery

    app = make_celery(jobs_settings)
    busy = app.send_task("segapp.probe", kwargs={"seconds": 1.5, "steps": 3})  # the worker's only process
    _wait(busy.id, app, until=("running",))
    order = [("batch", PRIORITY_BATCH), ("background", PRIORITY_BACKGROUND), ("stroke", PRIORITY_INTERACTIVE)]
    jobs = {name: app.send_task("segapp.probe", kwargs={"seconds": 0}, priority=p) for name, p in order}
    done = {name: _wait(r.id, app)[0] for name, r in jobs.items()}
    started = sorted(done, key=lambda name: app.backend.get_task_meta(jobs[name].id)["date_done"])
    assert started == ["stroke", "background", "batch"]  # sent last, taken first


def test_a_job_past_its_time_limit_fails_with_a_clear_message(worker, jobs_settings):
    from segapp.jobs.celery_app import make_celery

    app = make_celery(jobs_settings)
    t0 = time.monotonic()
    r = app.send_task("segapp.probe", kwargs={"seconds": 30, "steps": 60}, soft_time_limit=1, time_limit=4)
    final, _ = _wait(r.id, app, timeout=60)
    assert final["state"] == "failed" and time.monotonic() - t0 < 30
    assert "time limit" in final["error"] and "SEGAPP_TASK_TIME_LIMIT" in final["error"]
    assert "\n" not in final["error"] and "SoftTimeLimitExceeded" not in final["error"]
    # the worker is still there for the next job
    r2 = app.send_task("segapp.probe", kwargs={"seconds": 0})
    assert _wait(r2.id, app)[0]["state"] == "done"


def _stroke(class_id, path):
    from segapp.annotations import shape_name

    return {"type": "path", "path": path, "name": shape_name(class_id, 3), "line": {"width": 3}}


def _paint(sess, k, shapes):
    from segapp.annotations import shapes_to_labels

    sess.set_shapes(k, shapes, shapes_to_labels(shapes, sess.meta(k.rpartition("_")[0])["shape"][1:3]))


def _painted_session(store, sid, img):
    from segapp.ui.session import Session, key

    sess = Session(store, sid)
    iid = sess.add_image("coins.png", img[None, :, :, None], thumbnail=b"png")
    _paint(sess, key(iid, 0), [_stroke(1, "M4,5L116,5"), _stroke(2, "M20,68L40,68")])
    return sess, key(iid, 0)


def test_session_work_runs_where_its_features_are_with_separate_caches(worker, jobs_settings, tmp_path):
    """Web process and worker share Redis only: the features stay on the worker, the result travels."""
    from dataclasses import replace

    from segapp.jobs import routing
    from segapp.jobs.celery_app import make_celery
    from segapp.jobs.client import wait_for
    from segapp.ui import make_services
    from segapp.ui.pipeline import FeaturesMissing
    from segapp.ui.remote import TASK, job_queue, quick_refresh

    routing.clear_cache()
    web = make_services(replace(jobs_settings, cache_dir=tmp_path / "web-cache"))  # not the worker's cache
    app = make_celery(jobs_settings)
    img = data.coins()[:96, :120]
    sess, k = _painted_session(web.store, new_session_id(), img)
    with pytest.raises(FeaturesMissing):  # nobody holds this session's features yet
        quick_refresh(web, sess, k, retrain=True)
    queue = job_queue(web, sess.sid)
    assert queue == "gpu"  # first extraction: to the GPU worker (the test worker consumes gpu)
    # what the web app's background extraction does there: compute, train, predict, remember the worker
    first = wait_for(app.send_task(TASK, args=(sess.sid, k), kwargs={"retrain": True, "strict": False},
                                   queue=queue).id, app, timeout=120)
    assert first["trained"] and first["worker"] == worker.hostname
    assert routing.features_worker(web.store, sess.sid) == worker.hostname
    assert job_queue(web, sess.sid) == f"segapp.node.{worker.hostname}"  # later jobs: that worker only

    # a new stroke: the quick path retrains on the worker, from its cached features
    _paint(sess, k, sess.shapes(k) + [_stroke(2, "M60,51L100,51")])
    out = quick_refresh(web, sess, k, retrain=True)
    assert out["trained"] and out["predicted"] and out["worker"] == worker.hostname
    assert out["version"] == sess.model_info()["version"] > first["version"]
    assert sess.result(k).shape == img.shape and sess.result_version(k) == out["version"]
    assert not any((tmp_path / "web-cache").rglob("*.npy"))  # the web process never held a feature
    assert any(Path(jobs_settings.cache_dir).rglob("*.npy"))

    assert sess.model_bytes()  # the worker saved the model file (after answering)
    routing.remember_features(web.store, sess.sid, "gone@elsewhere")  # that worker vanished
    with pytest.raises(FeaturesMissing):
        quick_refresh(web, sess, k, retrain=True, force=True)
    sess.store.drop_session(sess.sid)
    routing.clear_cache()


def test_no_worker_on_the_queue_is_reported_and_an_abort_cleans_up(batch, worker, jobs_settings, redis_server,
                                                                    tmp_path, monkeypatch):
    from segapp.jobs import client

    class Abort(Exception):
        pass

    def warn(text):
        notes.append(text)
        raise Abort  # what Ctrl-C does to the client

    d, images = batch
    notes = []
    monkeypatch.setattr(client, "NO_WORKER_NOTICE_S", 0.3)
    before = _session_keys(redis_server.client())
    with pytest.raises(Abort):
        client.predict_via_queue(d / "model.segapp", images, tmp_path / "out", settings=jobs_settings,
                                 queue="nobody-listens", warn=warn)
    assert notes and "no worker answered for queue 'nobody-listens'" in notes[0]
    assert "python -m segapp worker --queues nobody-listens" in notes[0]
    assert _session_keys(redis_server.client()) == before  # uploads removed, jobs revoked
    assert not list((tmp_path / "out").glob("*.png"))
