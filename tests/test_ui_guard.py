"""The web app's front door: every payload checked, server-issued session ids, nothing lost.

Requests go through Dash's real endpoint with Flask's test client (like the browser sends them);
a few checks call the plain callback functions directly.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from segapp.config import Settings
from segapp.limits import MAX_HISTORY_BYTES
from segapp.store import LocalStore, sign_session_id, verify_session_id
from segapp.ui import create_app
from segapp.ui.session import Session, key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import fuzz  # noqa: E402
import fuzzcases as F  # noqa: E402

CLASSES = fuzz.CLASSES


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", max_upload_mb=2))


@pytest.fixture
def web(app):
    return fuzz.WebTarget(app=app)


def call(web, name, values, changed):
    status, resp = web.call(name, values, changed)
    assert status in (200, 204), status
    return status, resp


def toast_text(resp) -> str:
    return " | ".join(t for _, t in fuzz.toasts(resp))


def store(web) -> LocalStore:
    return LocalStore(web.store_dir())


def test_deep_and_oversize_requests_get_a_message_not_a_500_or_413(web):
    deep = F.raw_cases()[0].data  # relayoutData nested 5,000 lists deep
    status, resp = web.post_raw(deep)
    assert status == 200 and "nested more than 64 levels" in toast_text(resp)
    status, resp = web.post_raw(b'{"x": "' + b"A" * (7 << 20) + b'"}')
    assert status == 200 and "more than this server accepts in one go (2 MB per file)" in toast_text(resp)
    for body in (b'{"x": 1}', b"[1, 2]", b'{"output": "nope.data", "outputs": {}, "inputs": []}',
                 web.requests.body("start_session", {}, [])[:-2] + b', "inputs": []}'):
        status, _ = web.post_raw(body)
        assert status == 400  # not a callback request of this page: refused, never a 500


def test_uploads_are_all_or_report(web):
    sess = fuzz.new_session(web, 1, strokes=False)
    good = F.uri(F.png(F.sample_image()))
    b64 = good.split(",", 1)[1]
    contents = [good, "data:image/png;base64," + b64[:-3], "data:image/png,\u00e9\u4e2d", 12345, {"a": 1}, good]
    names = ["a.png", "padding.png", "ascii.png", "int.png", "dict.png"]  # the last file has no name
    status, resp = call(web, "upload_images", {"upload-images.contents": contents, "upload-images.filename": names,
                                               "session-id.data": sess["sid"]}, ["upload-images.contents"])
    text = toast_text(resp)
    for fragment in ("padding.png: the upload is damaged", "ascii.png: the upload is not base64-encoded",
                     "int.png: the upload is not a file (got int)", "dict.png: the upload is not a file (got dict)",
                     "4 file(s) not added", "Added 2 image(s)"):
        assert fragment in text or fragment in json.dumps(resp), fragment
    s = Session(store(web), verify_session_id(sess["sid"], web.app.server.extensions["segapp"].signing_key()))
    assert [m["name"] for m in s.images()] == ["base-1.png", "a.png", "file 6"]
    assert resp["response"]["current-image"]["data"]["image"] == s.images()[-1]["id"]  # the UI follows


def test_tampered_store_values_get_a_message_and_cross_no_session(web):
    mine, other = fuzz.new_session(web, 1), fuzz.new_session(web, 2)
    base = {"session-id.data": mine["sid"], "classes.data": CLASSES, "active-class.data": 1, "stroke-width.value": 5,
            "overlay-mode.value": "segmentation", "overlay-opacity.value": 0.5, "show-annotations.value": True,
            "canvas-scale.data": 1.0}
    for cur in ({"image": "../" + other["sid"][:32] + "/image/x", "plane": 0}, {"image": 5}, "abc",
                {"image": mine["cur"]["image"], "plane": -1}, {"image": mine["cur"]["image"], "plane": "x"}):
        _, resp = call(web, "build_canvas", {**base, "current-image.data": cur}, ["current-image.data"])
        assert "invalid image reference" in toast_text(resp)
    before = fuzz.snapshot(web, other)
    for name, extra in (("build_canvas", {}), ("delete_image", {"delete-image.n_clicks": 1, "images-version.data": 1}),
                        ("save_strokes", {"canvas.relayoutData": {"shapes": [F._path("M1,1L9,9")]}})):
        status, resp = call(web, name, {**base, **extra, "current-image.data": other["cur"]}, ["current-image.data"])
        assert "Unexpected error" not in toast_text(resp)
    assert fuzz.snapshot(web, other) == before  # another session's image: never shown, edited nor deleted
    for values, fragment in (({"classes.data": [{"id": 1, "name": "x", "color": "red;background:url(x)"}]}, "class list"),
                             ({"stroke-width.value": 10**9}, "value for stroke-width"),
                             ({"canvas-scale.data": "x"}, "zoom")):
        _, resp = call(web, "build_canvas", {**base, "current-image.data": mine["cur"], **values}, ["current-image.data"])
        assert fragment in toast_text(resp)
    settings = {"extractor.value": "classical", "sigma-range.value": [0, 3], "trees.value": 10**9, "depth.value": 10,
                "normalization.value": "percentile", "train-all-images.value": True, "live-update.value": True,
                "session-id.data": mine["sid"]}
    for bad in ({"trees.value": 10**9}, {"sigma-range.value": [0, 99]}, {"normalization.value": "evil"},
                {"depth.value": -3}):
        _, resp = call(web, "change_settings", {**settings, "trees.value": 50, **bad}, ["trees.value"])
        assert "The page sent an invalid value" in toast_text(resp)


def test_invalid_shapes_are_reported_and_later_saves_stay_small(web):
    sess = fuzz.new_session(web, 1, strokes=False)
    s = Session(store(web), sess["sid"].split(".")[0])
    k = key(sess["cur"]["image"], 0)
    state = {"session-id.data": sess["sid"], "current-image.data": sess["cur"], "classes.data": CLASSES,
             "show-annotations.value": True}
    ten = [F._path("M2,2L40,2", cls, w) for cls, w in (("-1", 3), ("70000", 3), ("1", "-5"), ("1", "0"), ("1", "nan"),
                                                        ("x", 3), ("300", 3), ("1", "abc"), ("", 3), ("1", "inf"))]
    _, resp = call(web, "save_strokes", {**state, "canvas.relayoutData": {"shapes": [F._path("M2,9L40,9"), *ten]}},
                   ["canvas.relayoutData"])
    assert "10 stroke(s) not saved" in toast_text(resp) and len(s.shapes(k)) == 1
    big = F._path("M0,0L" + "L".join(f"{i % 60},{i % 40}" for i in range(9_000)))
    shapes = [F._path("M2,9L40,9"), big]
    call(web, "save_strokes", {**state, "canvas.relayoutData": {"shapes": shapes}}, ["canvas.relayoutData"])
    for i in range(60):  # every later stroke adds one small history step, never another copy of the big one
        shapes = shapes + [F._path(f"M{i % 50},30L{i % 50 + 5},30", 2)]
        call(web, "save_strokes", {**state, "canvas.relayoutData": {"shapes": shapes}}, ["canvas.relayoutData"])
    doc = store(web).get_json(s.sid, "annot", k)
    assert len(json.dumps(doc["undo"][-1])) < 300 and len(json.dumps(doc)) < MAX_HISTORY_BYTES
    from segapp.annotations import shapes_to_labels

    assert (s.labels(k) == shapes_to_labels(s.shapes(k), (48, 64))).all()  # painted stroke by stroke == at once
    for _ in range(3):
        s.undo(k)
    assert len(s.shapes(k)) == len(shapes) - 3 and s.redo(k)[-1] == shapes[-3]


def test_a_model_with_a_bad_colour_can_never_be_loaded(web):
    sess = fuzz.new_session(web, 1)
    s = Session(store(web), sess["sid"].split(".")[0])
    before = s.classes()
    for edit in (F._set(("classes", 0, "color"), "#zzzzzz"), F._set(("classes", 0, "color"), "red;background:url(x)")):
        _, resp = call(web, "upload_model", {"model-upload.contents": F.uri(F.with_manifest(edit)),
                                             "model-upload.filename": "m.segapp", "session-id.data": sess["sid"]},
                       ["model-upload.contents"])
        assert "must be #rrggbb" in toast_text(resp) and s.classes() == before and not s.model_info()
    _, resp = call(web, "upload_model", {"model-upload.contents": F.uri(F.good_model()), "model-upload.filename":
                                         "good.segapp", "session-id.data": sess["sid"]}, ["model-upload.contents"])
    assert s.model_info()["source"] == "uploaded"


def test_session_ids_are_issued_by_the_server(web, app, tmp_path):
    services = app.server.extensions["segapp"]
    for chosen in ("a" * 20, "b" * 64, "x" * 32 + "." + "A" * 43, 123, {"a": 1}, "../etc/passwd"):
        _, resp = call(web, "start_session", {"session-id.data": chosen, "session-id.modified_timestamp": -1},
                       ["session-id.modified_timestamp"])  # what the browser sends on page load
        issued = resp["response"]["session-id"]["data"]
        assert issued != chosen and verify_session_id(issued, services.signing_key())
        call(web, "upload_images", {"upload-images.contents": [F.uri(F.png(F.sample_image()))],
                                    "upload-images.filename": ["x.png"], "session-id.data": chosen},
             ["upload-images.contents"])
    assert [p.name for p in web.store_dir().iterdir() if not p.name.startswith(".")] == []  # nothing stored
    legacy = "L" * 32  # a session made before ids were signed keeps its work
    Session(store(web), legacy).add_image("old.png", np.zeros((1, 4, 4, 1), np.uint8), b"")
    _, resp = call(web, "start_session", {"session-id.data": legacy}, ["session-id.modified_timestamp"])
    assert resp["response"]["session-id"]["data"] == sign_session_id(legacy, services.signing_key())
    same_dir = create_app(Settings(data_dir=web.store_dir(), cache_dir=tmp_path / "c2"))
    assert same_dir.server.extensions["segapp"].signing_key() == services.signing_key()  # restarts, workers agree
    keyed = [create_app(Settings(data_dir=tmp_path / d, cache_dir=tmp_path / "c3", secret_key="s3cret"))
             for d in ("h1", "h2")]
    assert len({a.server.extensions["segapp"].signing_key() for a in keyed}) == 1  # hosts sharing SEGAPP_SECRET_KEY


def test_the_session_id_never_reaches_an_info_log_line(app, caplog):
    """A real HTTP server in this process (werkzeug logs every request at INFO): no line names the session."""
    import threading

    import requests
    from werkzeug.serving import make_server

    caplog.set_level(logging.INFO)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        class Remote(fuzz.WebTarget):
            def post_raw(self, body, timeout=fuzz.TIMEOUT):
                r = requests.post(f"http://127.0.0.1:{server.server_port}/_dash-update-component", data=body,
                                  headers={"Content-Type": "application/json"}, timeout=60)
                return r.status_code, (r.json() if r.status_code == 200 else None)
        remote = Remote(app=app)
        sess = fuzz.new_session(remote, 1)
        remote.call("upload_images", {"upload-images.contents": ["data:image/png;base64,AAA"],
                                      "upload-images.filename": ["bad.png"], "session-id.data": sess["sid"]},
                    ["upload-images.contents"])
    finally:
        server.shutdown()
    bare = sess["sid"].split(".")[0]
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any("_dash-update-component" in ln for ln in lines)  # requests are logged ...
    assert not [ln for ln in lines if bare in ln]  # ... without the session


def test_a_tampered_upload_value_never_breaks_the_session(web):
    sess = fuzz.new_session(web, 1)
    before = fuzz.snapshot(web, sess)
    for contents in ("abc", None, [None], [[1]], "data:image/png;base64," + base64.b64encode(b"x" * 10).decode()):
        call(web, "upload_images", {"upload-images.contents": contents, "upload-images.filename": "f.png",
                                    "session-id.data": sess["sid"]}, ["upload-images.contents"])
        call(web, "evaluate", {"gt-upload.contents": contents, "gt-upload.filename": "g.png",
                               "session-id.data": sess["sid"], "current-image.data": sess["cur"],
                               "classes.data": CLASSES}, ["gt-upload.contents"])
    assert fuzz.snapshot(web, sess) == before
