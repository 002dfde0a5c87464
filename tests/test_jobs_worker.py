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
from segapp.store import new_item_id, new_session_id, store_for

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


def test_feature_extraction_goes_to_the_gpu_queue_and_lands_in_the_shared_cache(worker, jobs_settings):
    from segapp.jobs import routing
    from segapp.jobs.celery_app import make_celery
    from segapp.ui.pipeline import DiskFeatureCache, StrictCache

    app = make_celery(jobs_settings)
    routing.clear_cache()
    assert routing.queue_for("features", app=app) == "gpu"  # found by inspecting the running workers
    assert routing.queue_for("predict", deep=False, app=app) == "default"
    store, sid, iid = store_for(jobs_settings), new_session_id(), new_item_id()
    img = data.camera()[::8, ::8]
    store.put_array(sid, "image", iid, img[None, :, :, None])
    r = app.send_task("segapp.extract_features", args=(sid, iid), kwargs={
        "features": "classical", "feature_params": {"sigmas": [1.0, 2.0]}})
    final, _ = _wait(r.id, app)
    assert final["state"] == "done", final["error"]
    assert final["result"]["queue"] == "gpu" and final["result"]["device"] == "cpu"
    # the web process finds the worker's features without computing them
    seg = Segmenter(features="classical", feature_params={"sigmas": [1.0, 2.0]},
                    cache=StrictCache(DiskFeatureCache(Path(jobs_settings.cache_dir) / "features")))
    assert list(seg.features(img[:, :, None]).shape) == final["result"]["shape"]
    store.drop_session(sid)


def test_training_and_prediction_jobs_on_a_web_session(worker, jobs_settings):
    from segapp.jobs.celery_app import make_celery

    app = make_celery(jobs_settings)
    store, sid = store_for(jobs_settings), new_session_id()
    img = data.coins()[:96, :120]
    lab = _labels(img)
    store.put_array(sid, "image", "img1", img[None, :, :, None])
    store.put_array(sid, "labels", "img1_0", lab)
    r = app.send_task("segapp.train", args=(sid, [{"image": "img1", "plane": 0, "labels": "img1_0"}]),
                      kwargs={"segmenter": SEG_KW, "out_model": "v1"})
    final, _ = _wait(r.id, app)
    assert final["state"] == "done", final["error"]
    assert [c["id"] for c in final["result"]["classes"]] == [1, 2] and store.get(sid, "model", "v1")
    r = app.send_task("segapp.predict", args=(sid, "v1", "img1"),
                      kwargs={"source": "image", "proba": True, "out": "img1_0", "cache_features": True})
    final, _ = _wait(r.id, app)
    assert final["state"] == "done", final["error"]
    local = Segmenter(**SEG_KW).fit(img, lab)
    np.testing.assert_array_equal(store.get_array(sid, "batch-labels", "img1_0"), local.predict(img))
    assert store.get_array(sid, "batch-proba", "img1_0").shape == img.shape + (2,)
    np.testing.assert_array_equal(store.get_array(sid, "labels", "img1_0"), lab)  # annotations untouched
    store.drop_session(sid)


def test_web_app_can_hand_feature_extraction_to_the_gpu_worker(worker, jobs_settings):
    from segapp.jobs import routing
    from segapp.jobs.client import current_job, extract_features_remote
    from segapp.ui.pipeline import DiskFeatureCache, StrictCache

    routing.clear_cache()
    store, sid = store_for(jobs_settings), new_session_id()
    img = data.coins()[::4, ::4]
    store.put_array(sid, "image", "i1", np.stack([img, img[::-1]])[..., None])
    kw = {"features": "classical", "feature_params": {"sigmas": [1.5]}, "normalization": {"method": "minmax"}}
    seen = []
    assert current_job() is None
    assert extract_features_remote(sid, [("i1", 0), ("i1", 1)], kw, settings=jobs_settings,
                                   progress=lambda f, text: seen.append(text)) is True
    cache = StrictCache(DiskFeatureCache(Path(jobs_settings.cache_dir) / "features"))
    for plane in (img, img[::-1]):  # both planes are in the shared cache now
        Segmenter(**kw, cache=cache).features(plane)
    routing.set_active_queues({"cpu@x": {"default"}})  # no GPU worker: the caller computes locally
    assert extract_features_remote(sid, [("i1", 0)], kw, settings=jobs_settings) is False
    routing.clear_cache()
    store.drop_session(sid)


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
