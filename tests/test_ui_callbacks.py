"""Callback-level tests of the web app (no browser): the session store, shapes -> labels ->
train -> overlay, and real callbacks called through Dash's HTTP endpoint with Flask's test client."""

from __future__ import annotations

import io as _io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from segapp.annotations import shape_name
from segapp.config import Settings
from segapp.errors import AnnotationError
from segapp.segmenter import Segmenter
from segapp.store import LocalStore, new_session_id
from segapp.ui import create_app
from segapp.ui.callbacks.files import model_file, results_zip
from segapp.ui.callbacks.images import add_image
from segapp.ui.callbacks.canvas import overlay_uri
from segapp.ui.pipeline import DiskFeatureCache, FeaturesMissing, ModelCache, StrictCache, refresh, is_stale
from segapp.ui.render import png_size, uri_bytes
from segapp.ui.session import Services, Session, key


def _png(arr) -> bytes:
    buf = _io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _image(h=64, w=80) -> np.ndarray:
    """Bright disk on a dark noisy background (uint8, grey)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    img = 40 + 20 * rng.random((h, w))
    img[np.hypot(yy - h / 2, xx - w / 2) < min(h, w) / 4] += 150
    return img.astype(np.uint8)


def _strokes(h=64, w=80) -> list[dict]:
    bg = {"type": "path", "path": f"M2,2L{w - 3},2L{w - 3},{h - 3}", "name": shape_name(1, 3)}
    fg = {"type": "path", "path": f"M{w / 2 - 5},{h / 2}L{w / 2 + 5},{h / 2}", "name": shape_name(2, 3)}
    return [bg, fg]


@pytest.fixture
def services(tmp_path):
    s = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", max_pixels=10_000_000, max_upload_mb=5)
    sv = Services(settings=s, store=LocalStore(s.data_dir), feature_cache=DiskFeatureCache(tmp_path / "feat"))
    sv.models = ModelCache()
    return sv


def _session_with_image(services):
    sess = services.session(new_session_id())
    iid = add_image(sess, "disk.png", _png(_image()), services.settings)
    return sess, iid


def test_session_store_roundtrip_undo_and_isolation(services):
    sess, iid = _session_with_image(services)
    k = key(iid, 0)
    assert [m["name"] for m in sess.images()] == ["disk.png"]
    assert sess.plane(iid).shape == (64, 80, 1)
    rev0 = sess.annot_rev()
    sess.set_shapes(k, _strokes()[:1])
    sess.set_shapes(k, _strokes())
    assert sess.annot_rev() == rev0 + 2
    assert len(sess.undo(k)) == 1 and len(sess.redo(k)) == 2 and sess.annotated_keys() == [k]
    other = services.session(new_session_id())
    assert other.images() == [] and other.shapes(k) == [] and other.stack is not None
    with pytest.raises(Exception):
        other.stack(iid)  # another session cannot read this image even knowing its id
    with pytest.raises(KeyError):
        services.store.list("../etc", "image")  # malformed ids never reach the file system


def test_bad_and_too_large_uploads_are_refused_with_one_line(services):
    sess = services.session(new_session_id())
    with pytest.raises(Exception, match="not a recognised image"):
        add_image(sess, "x.png", b"not an image", services.settings)
    with pytest.raises(Exception, match="MB"):
        add_image(sess, "big.png", b"\0" * (6 * 1024 * 1024), services.settings)
    assert sess.images() == []


def test_shapes_to_labels_train_overlay_and_model_file(services):
    sess, iid = _session_with_image(services)
    k = key(iid, 0)
    sess.set_shapes(k, _strokes()[:1])
    strict = StrictCache(services.feature_cache)
    with pytest.raises(FeaturesMissing):  # first stroke: features must be extracted (background job)
        refresh(sess, strict, services.models, k, retrain=True)
    with pytest.raises(AnnotationError, match="two classes|only class"):
        refresh(sess, services.feature_cache, services.models, k, retrain=True)
    sess.set_shapes(k, _strokes())
    out = refresh(sess, strict, services.models, k, retrain=True)  # features now cached: quick path
    assert out == {"trained": True, "predicted": True, "version": 1}
    assert not is_stale(sess)
    labels = sess.result(k)
    assert labels.shape == (64, 80) and labels[32, 40] == 2 and labels[5, 5] == 1
    classes = sess.classes()
    uri = overlay_uri(sess, k, "segmentation", None, classes)
    assert png_size(uri) == (80, 64)
    ov = np.asarray(Image.open(_io.BytesIO(uri_bytes(uri))))
    assert (ov == labels).all()  # palette PNG: pixel value = class id
    for mode in ("probability", "uncertainty"):
        assert png_size(overlay_uri(sess, k, mode, 2, classes)) == (80, 64)
    assert overlay_uri(sess, k, "none", None, classes) is None
    data, name = model_file(sess, services)
    assert name.endswith(".segapp")
    again = Segmenter.load(data)
    assert (again.predict(sess.plane(iid)) == labels).all()
    with zipfile.ZipFile(_io.BytesIO(results_zip(sess))) as zf:
        assert sorted(zf.namelist()) == ["classes.csv", "disk.png"]


# -- real callbacks through Dash's endpoint -------------------------------------------------
def _outputs(key_: str) -> list[dict]:
    parts = key_[2:-2].split("...") if key_.startswith("..") else [key_]
    return [dict(zip(("id", "property"), p.rsplit(".", 1))) for p in parts]


def call(app, client, name: str, values: dict, changed: list[str]):
    """POST one callback like the browser does; ``values`` maps 'id.prop' to its value."""
    key_, spec = next((k, v) for k, v in app.callback_map.items()
                      if getattr(v.get("callback"), "__name__", "") == name)
    outs = _outputs(key_)

    def deps(items):
        return [{**d, "value": values.get(f"{d['id']}.{d['property']}")} for d in items]
    body = {"output": key_, "outputs": outs if key_.startswith("..") else outs[0],
            "inputs": deps(spec["inputs"]), "state": deps(spec["state"]), "changedPropIds": changed}
    r = client.post("/_dash-update-component", json=body)
    return r.status_code, (r.get_json() if r.status_code == 200 else None)


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))


def test_callbacks_session_upload_strokes_and_overlay_patch(app, tmp_path):
    client = app.server.test_client()
    status, resp = call(app, client, "start_session", {"session-id.data": None}, ["session-id.modified_timestamp"])
    sid = resp["response"]["session-id"]["data"]
    assert status == 200 and len(sid) >= 32
    upload = "data:image/png;base64," + __import__("base64").b64encode(_png(_image())).decode()
    status, resp = call(app, client, "upload_images",
                        {"upload-images.contents": [upload], "upload-images.filename": ["disk.png"],
                         "session-id.data": sid}, ["upload-images.contents"])
    cur = resp["response"]["current-image"]["data"]
    status, resp = call(app, client, "build_canvas",
                        {"current-image.data": cur, "session-id.data": sid, "classes.data": None,
                         "active-class.data": 1, "stroke-width.value": 3, "overlay-mode.value": "segmentation",
                         "overlay-opacity.value": 0.5, "show-annotations.value": True}, ["current-image.data"])
    fig = resp["response"]["canvas"]["figure"]
    assert [t["type"] for t in fig["data"]] == ["image", "image"] and fig["layout"]["dragmode"] == "drawopenpath"
    base_bytes = len(json.dumps(fig))
    classes = [{"id": 1, "name": "bg", "color": "#0000ff"}, {"id": 2, "name": "fg", "color": "#ff0000"}]
    status, resp = call(app, client, "save_strokes",
                        {"canvas.relayoutData": {"shapes": _strokes()}, "session-id.data": sid,
                         "current-image.data": cur, "classes.data": classes, "show-annotations.value": True},
                        ["canvas.relayoutData"])
    annot = resp["response"]["annot-version"]["data"]
    values = {"annot-version.data": annot, "live-update.value": True, "session-id.data": sid,
              "current-image.data": cur}
    status, resp = call(app, client, "retrain", values, ["annot-version.data"])
    assert "extract-request" in resp["response"]  # features not cached yet -> background job
    sess = Session(LocalStore(tmp_path / "data"), sid)
    services = app.server.extensions["segapp"]
    refresh(sess, services.feature_cache, services.models, key(cur["image"], 0), retrain=True)  # = the job
    status, resp = call(app, client, "show_overlay",
                        {"overlay-mode.value": "segmentation", "classes.data": classes, "session-id.data": sid,
                         "current-image.data": cur, "model-version.data": {"v": 1}}, ["model-version.data"])
    overlay = resp["response"]["overlay-data"]["data"]  # the browser patches it into the figure
    assert overlay["key"] == key(cur["image"], 0) and png_size(overlay["uri"]) == (80, 64)
    assert len(json.dumps(resp)) < base_bytes
    # a different session sees nothing of this one
    status, resp = call(app, client, "show_thumbnails",
                        {"session-id.data": new_session_id(), "current-image.data": None}, ["images-version.data"])
    assert "disk.png" not in json.dumps(resp)

