"""Callback logic of the web app without a browser.

Every callback body is a plain function of its named inputs (see
``segapp/ui/callbacks/common.py``); these tests call them directly with a real
LocalStore-backed ``Services`` on ``tmp_path``, synthetic images, a recorder for
the toasts and the ``trigger`` Dash would pass.  The last tests check the wiring:
every plain function is a callback of the app, and the adapter fills in
``trigger``, ``services`` and ``notify`` when Dash's HTTP endpoint calls it.
"""

from __future__ import annotations

import base64
import io as _io
import json
import re
import zipfile

import numpy as np
import pytest
import tifffile
from _images import disk
from dash import no_update
from dash.exceptions import PreventUpdate
from PIL import Image
from plotly.utils import PlotlyJSONEncoder

from segapp.annotations import shape_name, shapes_to_labels
from segapp.config import Settings
from segapp.errors import AnnotationError, ConfigError, SegappError
from segapp.segmenter import Segmenter
from segapp.store import LocalStore, new_session_id
from segapp.ui import callbacks, create_app, ids, make_services, pipeline
from segapp.ui.callbacks import annotation_io, batch, canvas, classes, files, images, objects, session, training
from segapp.ui.pipeline import is_stale
from segapp.ui.render import png_size, uri_bytes
from segapp.ui.session import key

H, W = 64, 80
CLASSES = [{"id": 1, "name": "bg", "color": "#0000ff"}, {"id": 2, "name": "fg", "color": "#ff0000"}]


# -- synthetic data --------------------------------------------------------------------------------
def _png(arr) -> bytes:
    buf = _io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _disk(h=H, w=W, seed=0) -> np.ndarray:
    """Bright disk on a dark noisy background (uint8, grey)."""
    return disk(h, w, seed)


def _disk_truth(h=H, w=W) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.where(np.hypot(yy - h / 2, xx - w / 2) < min(h, w) / 4, 2, 1).astype(np.uint8)


def _bg_stroke(h=H, w=W) -> dict:
    return {"type": "path", "path": f"M2,2L{w - 3},2L{w - 3},{h - 3}", "name": shape_name(1, 3)}


def _fg_stroke(h=H, w=W) -> dict:
    return {"type": "path", "path": f"M{w / 2 - 5},{h / 2}L{w / 2 + 5},{h / 2}", "name": shape_name(2, 3)}


class Notices(list):
    """Stands in for ``notify``: records ``(kind, message, header)`` of every toast."""

    def __call__(self, message, kind="danger", header=None):
        self.append((kind, message, header))

    def text(self) -> str:
        return " | ".join(m for _, m, _ in self)


def _text(obj) -> str:
    """Everything in Dash components (or plain data) as one JSON string, to look for text in."""
    return json.dumps(obj, cls=PlotlyJSONEncoder, ensure_ascii=False)


def _progress():
    calls = []
    return calls, calls.append


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture
def services(tmp_path):
    """What ``create_app`` gives its callbacks: a LocalStore, disk feature cache and model cache on tmp_path."""
    sv = make_services(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", max_pixels=10_000_000,
                                max_upload_mb=5))
    assert isinstance(sv.store, LocalStore)
    return sv


@pytest.fixture
def sid(services):
    """A session as callback bodies see it: the store id the browser's signed id stands for."""
    return services.session(session.start_session(None, None, services=services)["session"]).sid


def upload(services, sid, *files, version=None, notices=None):
    """``files``: ``(name, bytes)``; returns the callback's outputs."""
    notices = Notices() if notices is None else notices
    return images.upload_images([_uri(d) for _, d in files], [n for n, _ in files], sid, version,
                                services=services, notify=notices)


@pytest.fixture
def cur(services, sid):
    """The current image after uploading one disk image."""
    return upload(services, sid, ("disk.png", _png(_disk())))["current"]


def paint(services, sid, cur, *shapes, notices=None):
    return canvas.save_strokes({"shapes": list(shapes)}, sid, cur, CLASSES, True, services=services,
                               notify=Notices() if notices is None else notices)


def retrain(services, sid, cur, trigger=ids.ANNOT_VERSION, annot=None, live=True, mode="segmentation", notices=None):
    return training.retrain(annot, 1, None, live, sid, cur, mode, 2, CLASSES, services=services, trigger=trigger,
                            notify=Notices() if notices is None else notices)


@pytest.fixture
def trained(services, sid, cur):
    """Two classes painted and the (slow-path) first training done: model v1 with a result.

    Pinned to the classical filter bank: these tests check the web app's behaviour on a tiny
    synthetic disk, not the default extractor (the benchmarks measure that).
    """
    _sess(services, sid).set_settings({**_sess(services, sid).settings(), "extractor": "classical"})
    annot = paint(services, sid, cur, _bg_stroke(), _fg_stroke())["annot_version"]
    request = retrain(services, sid, cur, annot=annot)["extract_request"]
    calls, set_progress = _progress()
    out = training.extract_and_train(set_progress, request, sid, services=services, notify=Notices())
    assert out["model_version"]["v"] == 1
    return cur


def _sess(services, sid):
    return services.session(sid)


# -- session -------------------------------------------------------------------------------------
def test_session_store_roundtrip_undo_and_isolation(services, sid, cur):
    sess, iid = _sess(services, sid), cur["image"]
    k = key(iid, 0)
    assert [m["name"] for m in sess.images()] == ["disk.png"] and sess.plane(iid).shape == (H, W, 1)
    rev0 = sess.annot_rev()
    sess.set_shapes(k, [_bg_stroke()])
    sess.set_shapes(k, [_bg_stroke(), _fg_stroke()])
    assert sess.annot_rev() == rev0 + 2
    assert len(sess.undo(k)) == 1 and len(sess.redo(k)) == 2 and sess.annotated_keys() == [k]
    other = services.session(new_session_id())
    assert other.images() == [] and other.shapes(k) == []
    with pytest.raises(SegappError):
        other.stack(iid)  # another session cannot read this image even knowing its id
    with pytest.raises(KeyError):
        services.store.list("../etc", "image")  # malformed ids never reach the file system


def test_start_session_makes_an_id_only_when_the_browser_has_no_valid_one(services, sid):
    signed = services.issue_session_id(sid)
    assert len(sid) >= 32 and session.start_session(None, "../../etc", services=services)["session"] != signed
    with pytest.raises(PreventUpdate):
        session.start_session(123, signed, services=services)


def test_restore_session_brings_back_classes_image_and_settings(services, sid, cur):
    with pytest.raises(PreventUpdate):  # stored; live update off, so no retrain
        training.change_settings("classical", [1, 4], 50, 0, "minmax", False, False, sid, services=services,
                                 trigger=ids.TREES)
    classes.edit_classes(1, None, None, None, 1, sid, None, services=services, trigger=ids.CLASS_ADD,
                         notify=Notices())
    session.remember_current(cur, sid, services=services)
    out = session.restore_session(sid, 4, services=services)
    assert out["current"] == {"image": cur["image"], "plane": 0} and out["images_version"] == 5
    assert [c["id"] for c in out["classes"]] == [1, 2, 3]
    assert (out["extractor"], out["sigmas"], out["trees"], out["depth"], out["normalization"], out["all_images"]) == \
        ("classical", [1, 4], 50, 0, "minmax", False)
    fresh = session.restore_session(new_session_id(), None, services=services)  # a new browser: defaults
    assert fresh["current"] is None and fresh["trees"] == 32 and len(fresh["classes"]) == 2
    with pytest.raises(PreventUpdate):
        session.restore_session("bad id", None, services=services)


def test_extractor_help_says_what_auto_does_and_hides_scales_for_networks(services, sid):
    auto = session.extractor_help("auto", sid, services=services)
    assert "Compares classical" in auto["help"] and auto["sigma_style"] == {"display": "none"}
    assert session.extractor_help("classical", sid, services=services)["sigma_style"] == {}


# -- images ----------------------------------------------------------------------------------------
def test_upload_valid_and_broken_files_adds_the_good_one_and_names_the_bad_one(services, sid):
    notices = Notices()
    out = upload(services, sid, ("disk.png", _png(_disk())), ("notes.png", b"not an image"), version=2,
                 notices=notices)
    assert out["images_version"] == 3 and out["upload_contents"] is None
    assert [m["name"] for m in _sess(services, sid).images()] == ["disk.png"]
    assert out["current"] == {"image": _sess(services, sid).images()[0]["id"], "plane": 0}
    assert notices == [("danger", notices[0][1], "1 file(s) not added")]
    assert "notes.png" in notices[0][1] and "not a recognised image" in notices[0][1]
    assert "\n" not in notices[0][1]  # one line

    notices = Notices()
    out = upload(services, sid, ("big.png", b"\0" * (6 * 1024 * 1024)), notices=notices)  # over max_upload_mb
    assert out == {"current": no_update, "images_version": no_update, "upload_contents": None}
    assert "MB" in notices.text() and len(_sess(services, sid).images()) == 1
    with pytest.raises(PreventUpdate):
        upload(services, "bad", ("disk.png", _png(_disk())))


def test_thumbnails_select_planes_and_delete(services, sid, cur):
    stack = np.stack([_disk(seed=z) for z in range(3)])
    buf = _io.BytesIO()
    tifffile.imwrite(buf, stack, photometric="minisblack")
    notices = Notices()
    out = images.upload_images([_uri(buf.getvalue(), "image/tiff")], ["stack.tif"], sid, 1, services=services,
                               notify=notices)
    tif = out["current"]
    slider = images.plane_slider(tif, sid, services=services)  # numbered 1..3, as the header says "plane 1/3"
    assert slider == {"style": {}, "max": 3, "value": 1, "marks": {1: "1", 2: "2", 3: "3"}}
    assert images.plane_slider({**tif, "plane": 1}, sid, services=services)["value"] == 2
    assert images.plane_slider(cur, sid, services=services)["style"] == {"display": "none"}
    assert images.choose_plane(3, tif) == {"current": {"image": tif["image"], "plane": 2}}
    with pytest.raises(PreventUpdate):
        images.choose_plane(1, tif)
    shown = images.show_thumbnails(2, tif, sid, services=services)
    assert "disk.png" in _text(shown["thumbs"]) and "stack.tif" in _text(shown["thumbs"])
    assert shown["remove_style"] == {} and "stack.tif" in shown["remove_title"]
    other = images.show_thumbnails(1, None, new_session_id(), services=services)
    assert "disk.png" not in _text(other["thumbs"]) and "No images yet" in _text(other["thumbs"])  # isolated
    assert other["remove_style"] == {"display": "none"}  # no "Remove image" without an image

    trig = ids.thumb(cur["image"])
    assert images.select_image([1, 0], [], tif, trigger=trig, clicked=True) == {"current": {**cur, "plane": 0}}
    for kwargs in (dict(trigger=trig, clicked=False), dict(trigger=ids.thumb(tif["image"]), clicked=True)):
        with pytest.raises(PreventUpdate):  # a re-render, or the image already shown
            images.select_image([0, 0], [], tif, **kwargs)

    out = images.delete_image(1, tif, sid, 3, services=services)
    assert out["current"] == {"image": cur["image"], "plane": 0} and out["images_version"] == 4
    assert "Removed stack.tif" in _text(out["notices"]) and "restore-image" in _text(out["notices"])  # Undo
    assert [m["name"] for m in _sess(services, sid).images()] == ["disk.png"]


def test_add_sample_and_refuse_unknown_ones(services, sid):
    out = images.add_sample(1, "coins", sid, None, services=services)
    assert _sess(services, sid).meta(out["current"]["image"])["name"] == "coins.png" and out["images_version"] == 1
    with pytest.raises(SegappError, match="unknown sample"):
        images.add_sample(1, "../../secret", sid, None, services=services)


# -- canvas ----------------------------------------------------------------------------------------
def test_build_canvas_full_figure_then_empty_state(services, sid, cur):
    out = canvas.build_canvas(cur, sid, None, 1, 5, "segmentation", None, 0.5, True, None, services=services)
    fig = out["figure"].to_plotly_json() if hasattr(out["figure"], "to_plotly_json") else out["figure"]
    assert [t["type"] for t in fig["data"]] == ["image"] and fig["layout"]["dragmode"] == "drawopenpath"
    assert len(fig["layout"]["images"]) == 1 and fig["layout"]["images"][0]["visible"] is False  # no model yet
    assert out["hint_style"] == {"display": "none"} and out["train_request"] is no_update
    assert "disk.png" in _text(out["info"])
    empty = canvas.build_canvas(None, sid, None, 1, 5, "segmentation", None, 0.5, True, None, services=services)
    assert empty["hint_style"] == {} and empty["info"] == []


def test_save_strokes_stores_shapes_and_rasterised_labels(services, sid, cur):
    sess, k = _sess(services, sid), key(cur["image"], 0)
    notices = Notices()
    out = paint(services, sid, cur, _bg_stroke(), _fg_stroke(),
                {"type": "path", "path": "M1,1L5,5", "name": "not-a-stroke"}, notices=notices)  # no class: left out
    assert out["annot_version"] == {"rev": sess.annot_rev(), "key": k}
    assert notices[0][0] == "warning" and "1 stroke(s) not saved: shape 2: shape has no class" in notices[0][1]
    assert [s["name"] for s in sess.shapes(k)] == [shape_name(1, 3), shape_name(2, 3)]
    labels = sess.labels(k)
    assert labels.shape == (H, W) and labels[2, 40] == 1 and labels[H // 2, W // 2] == 2 and labels[30, 10] == 0
    styled = out["figure"].to_plotly_json()["operations"][0]
    assert styled["location"] == ["layout", "shapes"] and len(styled["params"]["value"]) == 2
    edit = canvas.save_strokes({"shapes[1].path": f"M10,{H / 2}L20,{H / 2}"}, sid, cur, CLASSES, True,
                               services=services, notify=Notices())  # an edit of one stroke: strokes are labels, never edited
    assert edit["annot_version"] is no_update and sess.annot_rev() == out["annot_version"]["rev"]
    assert sess.labels(k)[H // 2, 15] == 0 and sess.labels(k)[H // 2, W // 2] == 2
    restored = edit["figure"].to_plotly_json()["operations"][0]["params"]["value"]
    assert [s["path"] for s in restored] == [s["path"] for s in sess.shapes(k)]
    assert all(s["editable"] is False for s in restored)
    for relayout in (None, {"xaxis.range[0]": 3}):  # zoom and pan are not strokes
        with pytest.raises(PreventUpdate):
            canvas.save_strokes(relayout, sid, cur, CLASSES, True, services=services, notify=Notices())


def test_undo_redo_clear_class_and_clear_all(services, sid, cur):
    sess, k = _sess(services, sid), key(cur["image"], 0)
    paint(services, sid, cur, _bg_stroke())
    paint(services, sid, cur, _bg_stroke(), _fg_stroke())

    def edit(trigger, active=2):
        return canvas.edit_history(1, 1, 1, 1, sid, cur, CLASSES, active, True, services=services, trigger=trigger)

    assert edit(ids.UNDO)["annot_version"]["key"] == k and len(sess.shapes(k)) == 1
    assert len(edit(ids.REDO)["figure"].to_plotly_json()["operations"][0]["params"]["value"]) == 2
    with pytest.raises(PreventUpdate):
        edit(ids.REDO)  # nothing to redo: nothing changes
    edit(ids.CLEAR_CLASS, active=2)
    assert [s["name"] for s in sess.shapes(k)] == [shape_name(1, 3)]
    edit(ids.CLEAR_ALL)
    assert sess.shapes(k) == [] and sess.labels(k) is None
    edit(ids.UNDO)
    assert len(sess.shapes(k)) == 1
    with pytest.raises(PreventUpdate):
        canvas.edit_history(1, 0, 0, 0, sid, None, CLASSES, 1, True, services=services, trigger=ids.UNDO)


def test_restyle_strokes_hides_and_recolours(services, sid, cur):
    paint(services, sid, cur, _bg_stroke())
    recoloured = [{**CLASSES[0], "color": "#00ff00"}, CLASSES[1]]
    shapes = canvas.restyle_strokes(False, recoloured, sid, cur, services=services)["figure"]
    value = shapes.to_plotly_json()["operations"][0]["params"]["value"]
    assert value[0]["visible"] is False and value[0]["line"]["color"].lower().startswith("#00ff00")


# -- training ------------------------------------------------------------------------------------------
def test_retrain_hands_over_to_the_background_job_then_takes_the_quick_path(services, sid, cur):
    sess, k = _sess(services, sid), key(cur["image"], 0)
    annot = paint(services, sid, cur, _bg_stroke())["annot_version"]
    off = retrain(services, sid, cur, annot=annot, live=False)
    assert "Press Train" in _text(off["train_info"]) and off["extract_request"] is no_update

    out = retrain(services, sid, cur, annot=annot)  # features not cached: FeaturesMissing -> the background job
    request = out["extract_request"]
    assert request["key"] == k and request["retrain"] is True and request["force"] is False
    assert out["model_version"] is no_update and "Computing features" in _text(out["train_info"])

    calls, set_progress = _progress()
    notices = Notices()
    job = training.extract_and_train(set_progress, request, sid, services=services, notify=notices)
    assert calls[:2] == [(2, "Computing features · waiting for a free job slot", "0 %"),
                         (2, "Computing features", "0 %")] and len(calls) > 2  # the canvas banner
    assert all(len(c) == 3 and 0 <= c[0] <= 100 for c in calls) and any("image 1/1" in c[1] for c in calls)
    assert job["model_version"] is no_update and "two classes" in _text(job["train_info"])
    assert notices == []  # a live update with one class painted is a hint, not an error
    assert sess.store.get_json(sid, "state", "extracting") is None

    annot = paint(services, sid, cur, _bg_stroke(), _fg_stroke())["annot_version"]
    quick = retrain(services, sid, cur, annot=annot)  # features cached now: fit and predict right here
    assert quick["extract_request"] is no_update and quick["model_version"]["rendered"] is True
    assert quick["model_version"]["v"] == 1 and quick["overlay"]["key"] == k
    [tile] = quick["overlay"]["tiles"]  # a small image: one tile, at full resolution, nothing left to do
    assert png_size(tile["uri"]) == (W, H) and (tile["v"], tile["s"]) == (1, 1) and not is_stale(sess)
    assert quick["tile_queue"] is None
    labels = sess.result(k)
    assert labels[H // 2, W // 2] == 2 and labels[3, 3] == 1

    with pytest.raises(PreventUpdate):  # an older stroke's request: a newer one trains (debounce)
        retrain(services, sid, cur, annot={"rev": annot["rev"] - 1, "key": k})
    unchanged = retrain(services, sid, cur, trigger=ids.TRAIN_REQUEST)
    assert unchanged["model_version"] is no_update and "Model v1" in _text(unchanged["train_info"])
    forced = retrain(services, sid, cur, trigger=ids.TRAIN, live=False)
    assert forced["model_version"]["v"] == 2


def test_train_button_with_one_class_raises_the_user_error(services, sid, cur):
    paint(services, sid, cur, _bg_stroke())
    training.extract_and_train(lambda p: None, {"key": key(cur["image"], 0)}, sid, services=services,
                               notify=Notices())  # features cached
    with pytest.raises(AnnotationError):
        retrain(services, sid, cur, trigger=ids.TRAIN)
    notices = Notices()
    out = training.extract_and_train(lambda p: None, {"key": key(cur["image"], 0), "force": True}, sid,
                                     services=services, notify=notices)
    assert out["model_version"] is no_update and notices[0][0] == "warning" and notices[0][2] == "Cannot train yet"


def test_a_running_extraction_makes_later_strokes_wait(services, sid, cur):
    paint(services, sid, cur, _bg_stroke())
    _sess(services, sid).store.put_json(sid, "state", "extracting", {"t": __import__("time").time()})
    out = retrain(services, sid, cur)
    assert out["extract_request"] is no_update and "Still extracting" in _text(out["train_info"])
    notices = Notices()
    hint = training.cancelled(1, "Computing features · image 1/1", sid, services=services, notify=notices)
    assert "Cancelled" in _text(hint["train_info"]) and notices[0][2] == "Cancelled"
    assert "Feature extraction cancelled" in notices[0][1]
    assert _sess(services, sid).store.get_json(sid, "state", "extracting") is None
    other = training.cancelled(1, "Applying the model · a.png", sid, services=services, notify=notices)
    assert other["train_info"] is no_update and "Stopped applying the model" in notices[1][1]
    training.cancelled(1, None, sid, services=services, notify=notices)  # the banner had no label yet
    assert notices[2][1] == "Cancelled. Nothing you did is lost."


def test_change_settings_validates_stores_and_asks_for_a_retrain(services, sid):
    def change(trees=32, depth=10, live=True, trigger=ids.TREES, extractor="classical"):
        return training.change_settings(extractor, [0, 8], trees, depth, "percentile", True, live, sid,
                                        services=services, trigger=trigger)

    for bad in (dict(trees=3), dict(trees=None), dict(depth=65)):
        with pytest.raises(ConfigError):
            change(**bad)
    assert change(trees=64)["train_request"]["reason"] == "settings"
    assert _sess(services, sid).settings()["trees"] == 64 and _sess(services, sid).settings()["sigmas"] == [0.3, 10.0]
    with pytest.raises(PreventUpdate):
        change(trees=64)  # nothing changed
    assert change(trees=64, trigger=ids.LIVE)["train_request"]["reason"] == "settings"  # live switched on
    with pytest.raises(PreventUpdate):
        change(trees=100, live=False)  # stored, but no retrain without live update
    assert _sess(services, sid).settings()["trees"] == 100


def test_status_line_before_and_after_a_model(services, sid, cur):
    before = training.status(None, sid, 1, cur, services=services)
    assert before["status"] == "1 image · no model yet"
    paint(services, sid, cur, _bg_stroke(), _fg_stroke())
    training.extract_and_train(lambda p: None, {"key": key(cur["image"], 0)}, sid, services=services,
                               notify=Notices())
    after = training.status({"v": 1}, sid, 1, cur, services=services)
    from segapp import defaults
    assert after["status"] == f"1 image · model v1 · {defaults.EXTRACTOR}" and "trained here" in after["model_info"]


# -- overlays ----------------------------------------------------------------------------------------
def test_show_overlay_for_each_mode(services, sid, trained):
    k = key(trained["image"], 0)

    def show(mode, trigger=ids.OVERLAY_MODE, mv=None):
        return canvas.show_overlay(mv, mode, 2, CLASSES, sid, trained, services=services, trigger=trigger)

    def uri(out):
        [tile] = out["overlay"]["tiles"]
        return tile["uri"]

    seg = show("segmentation")
    assert seg["overlay"]["key"] == k and seg["proba_style"] == {"display": "none"}
    ov = np.asarray(Image.open(_io.BytesIO(uri_bytes(uri(seg)))))
    assert (ov == _sess(services, sid).result(k)).all()  # palette PNG: pixel value = class id
    assert show("probability")["proba_style"] == {} and png_size(uri(show("probability"))) == (W, H)
    assert png_size(uri(show("uncertainty"))) == (W, H)
    assert show("none")["overlay"]["clear"] is True
    assert show("objects")["overlay"]["tiles"] == []  # nothing measured yet
    assert show("segmentation", ids.MODEL_VERSION, {"v": 1, "rendered": True})["overlay"] is no_update
    assert show("segmentation", ids.MODEL_VERSION, {"v": 1})["overlay"]["key"] == k


def test_build_canvas_asks_to_predict_a_plane_older_than_the_model(services, sid, trained):
    other = upload(services, sid, ("second.png", _png(_disk(seed=3))))["current"]
    out = canvas.build_canvas(other, sid, CLASSES, 1, 5, "segmentation", None, 0.5, True, None, services=services)
    assert out["train_request"] == {"reason": "predict", "key": key(other["image"], 0)}
    same = canvas.build_canvas(trained, sid, CLASSES, 1, 5, "segmentation", None, 0.5, True, None, services=services)
    assert same["train_request"] is no_update


# -- classes ---------------------------------------------------------------------------------------------
def test_class_add_rename_recolour_and_delete(services, sid, cur):
    sess = _sess(services, sid)
    notices = Notices()

    def edit(trigger, active, name=None, color=None, annot=None):
        return classes.edit_classes(1, 1, name, color, active, sid, annot, services=services, trigger=trigger,
                                    notify=notices)

    with pytest.raises(PreventUpdate):
        edit(ids.CLASS_DELETE, 2)  # two classes are the minimum
    assert notices[-1][0] == "warning" and "at least two" in notices[-1][1]
    added = edit(ids.CLASS_ADD, 1)
    assert added["active"] == 3 and [c["name"] for c in added["classes"]] == ["Background", "Foreground", "Class 3"]
    assert edit(ids.CLASS_NAME, 3, name="  Nuclei  ")["classes"][2]["name"] == "Nuclei"
    for trigger, kw in ((ids.CLASS_NAME, dict(name="Nuclei")), (ids.CLASS_NAME, dict(name="   ")),
                        (ids.CLASS_COLOR, dict(color=sess.classes()[2]["color"].upper()))):
        with pytest.raises(PreventUpdate):  # unchanged or empty
            edit(trigger, 3, **kw)
    assert edit(ids.CLASS_COLOR, 3, color="#123456")["classes"][2]["color"] == "#123456"

    third = {"type": "path", "path": "M10,10L20,20", "name": shape_name(3, 3)}
    paint(services, sid, cur, _bg_stroke(), third)
    gone = edit(ids.CLASS_DELETE, 3, annot={"rev": 1, "n": 4})
    assert [c["id"] for c in gone["classes"]] == [1, 2] and gone["active"] == 1
    assert gone["annot_version"] == {"rev": sess.annot_rev(), "key": None, "n": 5}
    assert notices[-1] == ("info", "Deleted class Nuclei and its 1 stroke(s).", None)
    assert [s["name"] for s in sess.shapes(key(cur["image"], 0))] == [shape_name(1, 3)]
    for _ in range(18):
        edit(ids.CLASS_ADD, 1)
    with pytest.raises(PreventUpdate):
        edit(ids.CLASS_ADD, 1)
    assert notices[-1] == ("warning", "At most 20 classes.", None) and len(sess.classes()) == 20


def test_show_and_choose_classes(services):
    three = CLASSES + [{"id": 3, "name": "x", "color": "#00ff00"}]
    out = classes.show_classes(three, 2, 1, 9)
    assert (out["name"], out["color"], out["proba_class"], out["obj_class"]) == ("fg", "#ff0000", 1, 3)
    assert classes.show_classes(None, 0, None, None)["color"] == "#ffffff"
    pick = ids.class_select(3)
    assert classes.choose_class([0, 0, 1], 1, trigger=pick, clicked=True) == {"active": 3}
    assert classes.choose_class([0, 0, 1], 3, trigger=pick, clicked=True) == {"active": no_update}
    with pytest.raises(PreventUpdate):
        classes.choose_class([0, 0, 0], 1, trigger=pick, clicked=False)


# -- batch ---------------------------------------------------------------------------------------------------
def test_apply_all_segments_every_image_and_fills_the_gallery(services, sid, trained):
    sess = _sess(services, sid)
    second = upload(services, sid, ("second.png", _png(_disk(seed=5))))["current"]
    calls, set_progress = _progress()
    notices = Notices()
    out = batch.apply_all(set_progress, 1, sid, services=services, notify=notices)
    assert calls[:2] == [(2, "Applying the model · waiting for a free job slot", "0 %"),
                         (2, "Applying the model · disk.png", "1/2")]  # the canvas banner: label, fraction
    assert (50, "Applying the model · second.png", "2/2") in calls and calls[-1][2] == "2/2"
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)  # never goes backwards
    assert sess.result(key(second["image"], 0))[H // 2, W // 2] == 2 and out["model_version"]["v"] == 1
    assert notices == [("success", "Segmented 2 image plane(s) with model v1. Download them as a ZIP.", None)]
    cards = _text(out["gallery"])
    assert "disk.png" in cards and "second.png" in cards and "model v1" in cards
    assert _text(batch.show_gallery("gallery", sid, services=services)["gallery"]) == cards
    with pytest.raises(PreventUpdate):
        batch.show_gallery("objects", sid, services=services)


def test_apply_all_without_a_model_says_so(services, sid, cur):
    notices = Notices()
    with pytest.raises(PreventUpdate):
        batch.apply_all(lambda p: None, 1, sid, services=services, notify=notices)
    assert notices[0][0] == "danger" and notices[0][1].startswith("no model yet")


# -- objects -----------------------------------------------------------------------------------------------
def _measure_request(services, sid, cur, trigger=ids.MEASURE, obj_class=2, min_size=5, pixel_size=None, mode="x"):
    return objects.request_measure(1, None, 0, min_size, True, obj_class, False, pixel_size, "µm", sid, cur, mode,
                                   services=services, trigger=trigger)


def test_measure_objects_and_download_the_table(services, sid, trained):
    notices = Notices()

    def measure(mode="segmentation", classes=CLASSES, **kwargs):
        request = _measure_request(services, sid, trained, **kwargs)["request"]
        calls, set_progress = _progress()
        out = objects.measure_objects(set_progress, request, sid, classes, mode, services=services, notify=notices)
        assert calls[0][1].startswith("Measuring objects") and len(calls) == 3  # on the canvas banner
        return out

    out = measure(pixel_size=0.5)
    assert len(out["rows"]) == 1 and out["overlay_mode"] == "objects" and notices == []
    assert out["overlay"] is no_update  # switching the mode to objects brings the overlay
    area_px = np.pi * (min(H, W) / 4) ** 2
    assert abs(out["rows"][0]["area"] / (0.25 * area_px) - 1) < 0.2
    assert [c["id"] for c in out["columns"]][:2] == ["label", "area"] and "µm²" in _text(out["summary"])
    overlay = canvas.show_overlay(None, "objects", 2, CLASSES, sid, trained, services=services,
                                  trigger=ids.OVERLAY_MODE)["overlay"]
    assert png_size(overlay["tiles"][0]["uri"]) == (W, H)
    csv = objects.objects_csv(1, sid, trained, services=services)["download"]
    assert csv["filename"] == "disk_objects.csv" and csv["content"].splitlines()[0].startswith("label,area")
    again = measure(mode="objects", classes=None)  # objects on screen already: the new overlay comes with it
    assert again["overlay_mode"] is no_update and png_size(again["overlay"]["tiles"][0]["uri"]) == (W, H)
    assert again["histogram"].layout.title.text == "Foreground: object areas"  # server's class names (None)

    empty = measure(min_size=10 ** 6)
    assert empty["rows"] == [] and "No fg objects found" in notices.text()
    assert "#ffffff" in _text(empty["histogram"])  # the light "no objects" panel, not a dark block
    for kwargs, match in ((dict(obj_class=None), "choose the class"), (dict(min_size=-1), "negative")):
        with pytest.raises(ConfigError, match=match):
            _measure_request(services, sid, trained, **kwargs)


def test_object_settings_apply_live_once_a_plane_was_measured(services, sid, trained):
    for trigger in (ids.SMOOTH, ids.MIN_SIZE, ids.MODEL_VERSION):
        with pytest.raises(PreventUpdate):  # nothing measured here yet: a setting change does nothing
            _measure_request(services, sid, trained, trigger=trigger)
    for trigger in (ids.MIN_SIZE, ids.MODEL_VERSION):  # unless the objects view is on screen
        assert _measure_request(services, sid, trained, trigger=trigger, mode="objects")["request"]
    request = _measure_request(services, sid, trained)["request"]
    objects.measure_objects(lambda p: None, request, sid, CLASSES, "objects", services=services, notify=Notices())
    live = _measure_request(services, sid, trained, trigger=ids.MIN_SIZE, min_size=50)["request"]
    assert live["min_size"] == 50 and live["key"] == key(trained["image"], 0)
    with pytest.raises(PreventUpdate):  # a new model re-measures only while the objects are on screen
        _measure_request(services, sid, trained, trigger=ids.MODEL_VERSION, mode="segmentation")
    assert _measure_request(services, sid, trained, trigger=ids.MODEL_VERSION, mode="objects")["request"]


def test_area_column_has_one_format():
    cols = objects.table_columns([{"label": 1, "area": 403.0, "perimeter": 70.5}, {"label": 2, "area": 2003.0,
                                                                                "perimeter": 170.25}])
    assert {c["id"]: c["format"]["specifier"] for c in cols} == {"label": ".0f", "area": ".0f", "perimeter": ".2f"}


def test_measure_and_csv_before_anything_is_segmented(services, sid, cur):
    with pytest.raises(SegappError, match="nothing to measure yet"):
        _measure_request(services, sid, cur)
    with pytest.raises(SegappError, match="add an image first"):
        _measure_request(services, sid, None)
    with pytest.raises(SegappError, match="measure objects first"):
        objects.objects_csv(1, sid, cur, services=services)


# -- files: downloads, model upload, evaluation ---------------------------------------------------------------
def _download(services, sid, cur, trigger):
    payload = files.download(1, 1, 1, 1, 1, 1, 1, sid, cur, services=services, trigger=trigger)["download"]
    return payload["filename"], base64.b64decode(payload["content"])


def test_downloads_of_results_annotations_model_and_zip(services, sid, trained):
    sess, k = _sess(services, sid), key(trained["image"], 0)
    name, data = _download(services, sid, trained, ids.DL_SEG_PNG)
    assert name == "disk_segmentation.png" and (np.asarray(Image.open(_io.BytesIO(data))) == sess.result(k)).all()
    name, data = _download(services, sid, trained, ids.DL_SEG_TIFF)
    assert name == "disk_segmentation.tif" and (tifffile.imread(_io.BytesIO(data)) == sess.result(k)).all()
    name, data = _download(services, sid, trained, ids.DL_PROBA)
    proba = tifffile.imread(_io.BytesIO(data))  # one page per class
    assert name == "disk_proba.tif" and proba.shape == (2, H, W) and np.allclose(proba.sum(0), 1, atol=0.01)
    name, data = _download(services, sid, trained, ids.DL_ANNOT)
    assert name == "disk_annotations.png" and (np.asarray(Image.open(_io.BytesIO(data))) == sess.labels(k)).all()
    name, data = _download(services, sid, trained, ids.DL_MODEL)
    assert name == "segapp-model-v1.segapp"
    assert (Segmenter.load(data).predict(sess.plane(trained["image"])) == sess.result(k)).all()
    name, data = _download(services, sid, trained, ids.DL_ZIP)
    with zipfile.ZipFile(_io.BytesIO(data)) as zf:
        assert name == "segapp-results.zip" and sorted(zf.namelist()) == ["classes.csv", "disk.png"]
        assert zf.read("classes.csv").decode().splitlines()[1] == "1,Background,#1f77b4"


def test_downloads_before_there_is_anything_to_download(services, sid, cur):
    for trigger, match in ((ids.DL_MODEL, "no model yet"), (ids.DL_ZIP, "no results yet"),
                           (ids.DL_ANNOT, "nothing painted"), (ids.DL_PROBA, "no segmentation"),
                           (ids.DL_SEG_PNG, "no segmentation")):
        with pytest.raises(SegappError, match=match):
            _download(services, sid, cur, trigger)
    with pytest.raises(SegappError, match="add an image first"):
        _download(services, sid, None, ids.DL_SEG_TIFF)


def test_upload_a_model_into_another_session_and_refuse_a_tampered_one(services, sid, trained):
    classes.edit_classes(1, None, "Nuclei", None, 2, sid, None, services=services, trigger=ids.CLASS_NAME,
                         notify=Notices())
    name, model = _download(services, sid, trained, ids.DL_MODEL)
    other = services.session(session.start_session(None, None, services=services)["session"]).sid
    cur = upload(services, other, ("again.png", _png(_disk(seed=7))))["current"]
    notices = Notices()
    out = files.upload_model(_uri(model, "application/octet-stream"), name, other, services=services, notify=notices)
    assert [c["name"] for c in out["classes"]] == ["Background", "Nuclei"] and out["upload_contents"] is None
    assert out["model_version"]["v"] == 1 and out["train_request"]["reason"] == "predict"
    assert notices[0][0] == "success" and notices[0][1].startswith(f"Loaded {name}: 2 classes, features classical")
    assert _sess(services, other).model_info()["source"] == "uploaded"
    request = retrain(services, other, cur, trigger=ids.TRAIN_REQUEST)["extract_request"]  # new image: features
    job = training.extract_and_train(lambda p: None, request, other, services=services, notify=notices)
    assert job["model_version"]["v"] == 1 and _sess(services, other).model_info()["version"] == 1  # not retrained
    labels = _sess(services, other).result(key(cur["image"], 0))
    assert labels[H // 2, W // 2] == 2 and labels[3, 3] == 1  # predicted with the loaded model

    bad = bytearray(model)
    bad[len(bad) // 2] ^= 0xFF
    notices = Notices()
    refused = files.upload_model(_uri(bytes(bad)), "evil.segapp", other, services=services, notify=notices)
    assert refused == {"classes": no_update, "train_request": no_update, "upload_contents": None,
                       "model_version": no_update}
    assert notices[0][2] == "Model file refused" and notices[0][1].startswith("evil.segapp: ")
    assert _sess(services, other).model_info()["version"] == 1  # the loaded model is kept
    with pytest.raises(PreventUpdate):
        files.upload_model(None, None, other, services=services, notify=notices)


def test_evaluate_against_ground_truth(services, sid, trained):
    out = files.evaluate(_uri(_png(_disk_truth())), "truth.png", sid, trained, CLASSES, services=services)
    text = _text(out["result"])
    assert out["upload_contents"] is None and "fg" in text and "truth.png" in text and "GT pixels" in text
    assert float(re.search(r"mean IoU ([0-9.]+)%", text).group(1)) > 90  # the disk is segmented well
    with pytest.raises(SegappError, match="truth.png is 40×30 but the image is 80×64"):
        files.evaluate(_uri(_png(_disk_truth(30, 40))), "truth.png", sid, trained, CLASSES, services=services)
    with pytest.raises(SegappError, match="segment this image first"):
        other = upload(services, sid, ("second.png", _png(_disk(seed=9))))["current"]
        files.evaluate(_uri(_png(_disk_truth())), "truth.png", sid, other, CLASSES, services=services)
    with pytest.raises(PreventUpdate):
        files.evaluate(None, None, sid, trained, CLASSES, services=services)


# -- issue 9: what a new user ran into ---------------------------------------------------------------------------
def _rgb(seed=0) -> np.ndarray:
    """A pink-and-purple H&E-like colour image with the disk in purple."""
    grey = _disk(seed=seed).astype(float) / 255
    return np.stack([230 - 90 * grey, 150 - 100 * grey, 200 - 30 * grey], -1).astype(np.uint8)


def test_live_training_after_choosing_auto(services, sid, trained):
    sess, cur = _sess(services, sid), trained
    assert sess.model_info()["auto"] is None  # a classical model: its "auto" is None
    request = training.change_settings("auto", [0, 8], 32, 10, "percentile", True, True, sid, services=services,
                                       trigger=ids.EXTRACTOR)["train_request"]
    out = training.retrain(None, 1, request, True, sid, cur, "segmentation", 2, CLASSES, services=services,
                           trigger=ids.TRAIN_REQUEST, notify=Notices())  # was AttributeError on None.get
    assert out["extract_request"]["retrain"] is True
    calls, set_progress = _progress()
    job = training.extract_and_train(set_progress, out["extract_request"], sid, services=services, notify=Notices())
    chosen = sess.model_info()["auto"]
    assert job["model_version"]["v"] == 2 and chosen["chosen"] and chosen["config"]
    assert any("auto:" in c[1] for c in calls)  # auto's slow part shows its progress too
    annot = paint(services, sid, cur, _bg_stroke(), _fg_stroke(), {**_fg_stroke(), "path": "M30,30L35,35"})
    quick = retrain(services, sid, cur, annot=annot["annot_version"])  # live stroke: reuses auto's choice
    assert quick["model_version"]["v"] == 3 and quick["extract_request"] is no_update
    assert sess.model_info()["auto"] == chosen


def test_clear_all_drops_the_model_and_its_overlay_undo_brings_them_back(services, sid, trained):
    sess, k = _sess(services, sid), key(trained["image"], 0)
    out = canvas.edit_history(1, 1, 1, 1, sid, trained, CLASSES, 1, True, services=services, trigger=ids.CLEAR_ALL)
    cleared = retrain(services, sid, trained, annot=out["annot_version"])
    assert cleared["overlay"] == {"key": k, "version": 0, "tiles": [], "clear": True}
    assert cleared["model_version"]["v"] is None
    assert "no model" in _text(cleared["train_info"]) and sess.model_info() == {} and sess.result(k) is None
    assert training.status(cleared["model_version"], sid, 1, trained, services=services)["status"].endswith(
        "no model yet")
    undo = canvas.edit_history(2, 1, 1, 1, sid, trained, CLASSES, 1, True, services=services, trigger=ids.UNDO)
    back = retrain(services, sid, trained, annot=undo["annot_version"])
    assert back["model_version"]["v"] == 2 and back["overlay"]["tiles"]  # versions never repeat (model cache keys)


def test_edit_history_with_an_unknown_trigger_changes_nothing(services, sid, cur):
    paint(services, sid, cur, _bg_stroke())
    with pytest.raises(PreventUpdate):
        canvas.edit_history(1, 1, 1, 1, sid, cur, CLASSES, 1, True, services=services, trigger="something-else")
    assert len(_sess(services, sid).shapes(key(cur["image"], 0))) == 1


def test_remove_image_is_undoable(services, sid, trained):
    sess = _sess(services, sid)
    second = upload(services, sid, ("second.png", _png(_disk(seed=3))))["current"]
    out = images.delete_image(1, trained, sid, 2, services=services)
    assert out["current"] == second and sess.meta(trained["image"]) is None
    assert "Removed disk.png and its 2 strokes" in _text(out["notices"]) and out["annot_version"]["key"] is None
    assert key(trained["image"], 0) not in sess.annotated_keys()  # training no longer sees its strokes
    restored = images.restore_image([1], sid, 3, services=services, trigger=ids.restore_image(trained["image"]),
                                    clicked=True, notify=Notices())
    assert restored["current"] == {"image": trained["image"], "plane": 0} and restored["toasts_open"] == [False]
    assert len(sess.shapes(key(trained["image"], 0))) == 2 and sess.result(key(trained["image"], 0)) is not None
    images.delete_image(1, trained, sid, 4, services=services)
    images.delete_image(1, second, sid, 5, services=services)  # the next removal deletes the first for good
    notices = Notices()
    gone = images.restore_image([1, 0], sid, 6, services=services, trigger=ids.restore_image(trained["image"]),
                                clicked=True, notify=notices)
    assert gone["current"] is no_update and "cannot be brought back" in notices.text()
    for bad_sid in (None, "../x"):  # the session id is checked before anything is touched
        with pytest.raises(PreventUpdate):
            images.delete_image(1, second, bad_sid, 1, services=services)
        with pytest.raises(PreventUpdate):
            images.add_sample(1, "coins", bad_sid, None, services=services)


def test_grey_and_colour_images_each_get_a_model_and_the_user_is_told(services, sid, trained):
    sess = _sess(services, sid)
    colour = upload(services, sid, ("he.png", _png(_rgb())))["current"]
    notices = Notices()
    first = retrain(services, sid, colour, trigger=ids.TRAIN_REQUEST, notices=notices)  # nothing painted on colour
    assert "nothing painted on colour images yet" in _text(first["train_info"])
    assert notices[0][2] == "Paint this kind of image"  # a toast, where the user looks
    annot = paint(services, sid, colour, _bg_stroke(), _fg_stroke())["annot_version"]
    request = retrain(services, sid, colour, annot=annot)["extract_request"]
    job_notes = Notices()
    training.extract_and_train(lambda p: None, request, sid, services=services, notify=job_notes)
    info = sess.model_info()
    assert info["channels"] == 3 and info["other_kinds"] == 1 and sess.result(key(colour["image"], 0)) is not None
    assert job_notes[0][2] == "One model per kind of image" and "colour images only" in job_notes[0][1]
    assert "for colour images" in training.status(None, sid, 2, colour, services=services)["status"]
    grey_key = key(trained["image"], 0)
    assert pipeline.load_model(sess, services.models, services.feature_cache, grey_key) is None  # never predicts it
    assert canvas.current_payload(sess, services, grey_key, "segmentation", 2, CLASSES) == (
        {"key": grey_key, "tiles": [], "clear": True}, None)  # no tiles of the colour model over the grey image
    applied = Notices()
    batch.apply_all(lambda p: None, 1, sid, services=services, notify=applied)
    assert applied[0][0] == "warning" and "1 plane(s) of other images were left out" in applied[0][1]
    assert sess.result_version(grey_key) != 2 and sess.result_version(key(colour["image"], 0)) == 2
    back = retrain(services, sid, trained, trigger=ids.TRAIN_REQUEST, notices=notices)  # the grey one again
    assert back["model_version"]["v"] == 3 and sess.model_info()["channels"] == 1 and back["overlay"]["tiles"]


def test_annotations_download_as_json_and_load_back_onto_the_image(services, sid, trained):
    sess, k = _sess(services, sid), key(trained["image"], 0)
    name, data = _download(services, sid, trained, ids.DL_ANNOT_JSON)
    doc = json.loads(data)
    assert name == "disk_annotations.json" and doc["format"] == "segapp-annotations" and len(doc["shapes"]) == 2
    before = sess.labels(k).copy()
    canvas.edit_history(1, 1, 1, 1, sid, trained, CLASSES, 1, True, services=services, trigger=ids.CLEAR_ALL)
    notices = Notices()
    out = annotation_io.upload_annotations(_uri(data, "application/json"), name, sid, trained, True,
                                           services=services, notify=notices)
    assert (shapes_to_labels(sess.shapes(k), (H, W)) == before).all() and out["annot_version"]["key"] == k
    assert notices[0][2] == "Annotations loaded" and out["upload_contents"] is None
    _, png = _download(services, sid, trained, ids.DL_ANNOT)  # the label image loads back too, pixel-exact
    label3 = before.copy()
    label3[:4, :4] = 3
    annotation_io.upload_annotations(_uri(_png(label3)), "labels.png", sid, trained, True, services=services,
                                     notify=notices)
    assert (shapes_to_labels(sess.shapes(k), (H, W)) == label3).all()
    assert [c["id"] for c in sess.classes()] == [1, 2, 3]  # a class the file uses is added
    with pytest.raises(AnnotationError, match="made for a 80×64 image"):
        other = upload(services, sid, ("small.png", _png(_disk(30, 40))))["current"]
        annotation_io.upload_annotations(_uri(data), name, sid, other, True, services=services, notify=notices)


def test_evaluate_with_an_ordinary_0_255_mask(services, sid, trained):
    mask = np.where(_disk_truth() == 2, 255, 0).astype(np.uint8)
    out = files.evaluate(_uri(_png(mask)), "mask.png", sid, trained, CLASSES, services=services)
    text = _text(out["result"])
    assert float(re.search(r"mean IoU ([0-9.]+)%", text).group(1)) > 90 and "class 255" not in text
    assert "binary mask: 0 → bg, 255 → fg" in text


def test_gallery_cards_open_their_plane(services, sid, trained):
    stack = np.stack([_disk(seed=z) for z in range(3)])
    buf = _io.BytesIO()
    tifffile.imwrite(buf, stack, photometric="minisblack")
    tif = upload(services, sid, ("stack.tif", buf.getvalue()))["current"]
    batch.apply_all(lambda p: None, 1, sid, services=services, notify=Notices())
    cards = _text(batch.gallery(_sess(services, sid)))
    assert f'"item": "{tif["image"]}_2"' in cards  # the card of plane 3 names plane 3
    chosen = images.select_image([], [1], None, trigger=ids.gallery_item(f"{tif['image']}_2"), clicked=True)
    assert chosen == {"current": {"image": tif["image"], "plane": 2}}


def test_uploaded_model_without_extractor_and_settings_without_sigmas(services, sid, trained, monkeypatch):
    name, model = _download(services, sid, trained, ids.DL_MODEL)
    real_load = files.load_segmenter

    def load_without_extractor(data, **kw):
        seg = real_load(data, **kw)
        seg.extractor = None
        return seg
    monkeypatch.setattr(files, "load_segmenter", load_without_extractor)
    notices = Notices()
    files.upload_model(_uri(model), name, sid, services=services, notify=notices)
    assert "features ?" in notices[0][1]
    out = training.change_settings("classical", None, 40, 10, "percentile", True, True, sid, services=services,
                                   trigger=ids.TREES)  # sigmas None used to be an "Unexpected error"
    assert out["train_request"]["reason"] == "settings" and _sess(services, sid).settings()["sigmas"] == [0.3, 10.0]


# -- wiring: every plain function is a callback, and the adapter fills in Dash's context ------------------------
MODULES = (session, images, canvas, classes, training, objects, batch, files, annotation_io)


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))


def test_every_plain_callback_function_is_wired_once(app):
    plain = {f"{m.__name__}.{name}" for m in MODULES for name, fn in vars(m).items()
             if callable(fn) and hasattr(fn, "dash_spec") and fn.__module__ == m.__name__}
    wired = [f"{cb['callback'].__module__}.{cb['callback'].__name__}" for cb in app.callback_map.values()
             if "callback" in cb]
    assert len(plain) == 36 and sorted(wired) == sorted(plain)
    assert callbacks.register_all.__module__ == "segapp.ui.callbacks"


def post(app, client, name: str, values: dict, changed: list[str]):
    """POST one callback like the browser does; ``values`` maps 'id.prop' to its value."""
    from segapp.ui.guard import callback_request

    r = client.post("/_dash-update-component", json=callback_request(app.callback_map, name, values, changed))
    assert r.status_code in (200, 204), r.data[:300]
    return r.get_json() if r.status_code == 200 else None


def test_dash_endpoint_passes_services_trigger_and_notify_to_the_plain_functions(app):
    client = app.server.test_client()
    sid = post(app, client, "start_session", {"session-id.data": None},
               ["session-id.modified_timestamp"])["response"]["session-id"]["data"]
    resp = post(app, client, "upload_images",
                {"upload-images.contents": [_uri(_png(_disk())), _uri(b"junk")],
                 "upload-images.filename": ["disk.png", "junk.png"], "session-id.data": sid},
                ["upload-images.contents"])
    cur = resp["response"]["current-image"]["data"]
    assert resp["response"]["images-version"]["data"] == 1 and resp["response"]["upload-images"]["contents"] is None
    assert "junk.png" in _text(resp["sideUpdate"])  # notify -> set_props -> the toast container
    state = {"session-id.data": sid, "current-image.data": cur, "classes.data": CLASSES,
             "show-annotations.value": True, "active-class.data": 2}
    post(app, client, "save_strokes", {**state, "canvas.relayoutData": {"shapes": [_bg_stroke(), _fg_stroke()]}},
         ["canvas.relayoutData"])
    resp = post(app, client, "edit_history", {**state, "clear-class.n_clicks": 1}, ["clear-class.n_clicks"])
    sess = app.server.extensions["segapp"].session(sid)
    assert [s["name"] for s in sess.shapes(key(cur["image"], 0))] == [shape_name(1, 3)]  # trigger = clear-class
    assert resp["response"]["annot-version"]["data"]["rev"] == sess.annot_rev()
    resp = post(app, client, "edit_history", {**state, "undo.n_clicks": 1}, ["undo.n_clicks"])
    assert len(sess.shapes(key(cur["image"], 0))) == 2
    other = post(app, client, "show_thumbnails", {"session-id.data": new_session_id(), "current-image.data": None},
                 ["images-version.data"])
    assert "disk.png" not in _text(other)
