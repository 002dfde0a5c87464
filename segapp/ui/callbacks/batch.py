"""Many images: apply the model to every image (background job with progress) and a results gallery."""

from __future__ import annotations

import time

from dash import Input, Output, State
from dash.exceptions import PreventUpdate

from ... import io
from ...errors import SegappError
from .. import ids
from ..layout import gallery_items
from ..pipeline import channels_of, fits, kind, load_model, predict
from ..remote import features_job_queue, here_holds_features
from ..render import png_uri, thumbnail_with_overlay
from ..session import key
from .common import banner_progress, callback_spec, canvas_job, valid_session, wire


APPLYING = "Applying the model"  # the banner label


def all_keys(sess) -> list[tuple[dict, int, str]]:
    """``(meta, plane, key)`` for every plane of every image in the session."""
    return [(m, z, key(m["id"], z)) for m in sess.images() for z in range(m["shape"][0])]


def gallery_thumb(sess, meta: dict, z: int, k: str, classes: list[dict]) -> str | None:
    """Thumbnail of a plane with its segmentation (cached per result version)."""
    version = sess.result_version(k)
    labels = sess.result(k)
    if labels is None:
        return None
    name = f"{k}.v{version}"
    data = sess.store.get(sess.sid, "gthumb", name)
    if data is None:
        rgb = io.to_display_rgb(sess.plane(meta["id"], z))
        data = thumbnail_with_overlay(rgb, labels, {c["id"]: c["color"] for c in classes})
        sess.store.put(sess.sid, "gthumb", name, data)
    return png_uri(data)


def gallery(sess) -> list:
    classes, info = sess.classes(), sess.model_info()
    items = []
    for meta, z, k in all_keys(sess):
        src = gallery_thumb(sess, meta, z, k, classes)
        if src is None:
            continue
        stale = sess.result_version(k) != info.get("version")
        plane = f" · plane {z + 1}" if meta["shape"][0] > 1 else ""
        items.append({"item": k, "name": meta["name"] + plane, "src": src,
                      "text": f"model v{sess.result_version(k)}" + (" (older model)" if stale else "")})
    return gallery_items(items)


@callback_spec(output=dict(gallery=Output(ids.GALLERY, "children")),
               inputs=dict(tab=Input("results-tabs", "active_tab")), state=dict(sid=State(ids.SESSION, "data")))
def show_gallery(tab, sid, *, services):
    """The results gallery, rendered when its tab opens.

    Returns
    -------
    dict
        ``gallery``: one card per segmented plane.
    """
    if tab != "gallery" or not valid_session(sid):
        raise PreventUpdate
    return {"gallery": gallery(services.session(sid))}


@callback_spec(
    output=dict(gallery=Output(ids.GALLERY, "children", allow_duplicate=True),
                model_version=Output(ids.MODEL_VERSION, "data", allow_duplicate=True)),
    inputs=dict(n_clicks=Input(ids.APPLY_ALL, "n_clicks")), state=dict(sid=State(ids.SESSION, "data")),
    **canvas_job(APPLYING, disable=(ids.APPLY_ALL, ids.TRAIN), interval=400),
)
def apply_all(set_progress, n_clicks, sid, *, services, notify):
    """Predict every plane of every image with the current model (skipping up-to-date results).

    Parameters
    ----------
    set_progress : callable
        Dash's progress setter (the canvas banner, through :func:`~.common.banner_progress`).
    n_clicks : int
    sid : str

    Returns
    -------
    dict
        ``gallery`` (every result) and ``model_version`` (``{"v", "t"}``: the overlay refreshes);
        PreventUpdate (after a toast) when there is no model.
    """
    sess = services.session(sid)
    banner_progress(set_progress, APPLYING)(0, "waiting for a free job slot")
    try:
        with services.job_slot(wait=600):
            return _apply_all(set_progress, sess, services, notify)
    except SegappError as e:
        notify(str(e), "danger", "Could not apply the model")
        raise PreventUpdate


def _apply_all(set_progress, sess, services, notify) -> dict:
    seg = load_model(sess, services.models, services.feature_cache)
    if seg is None:
        raise SegappError("no model yet: paint two classes and train, or load a model file")
    version = sess.model_info()["version"]
    info = sess.model_info()
    planes = all_keys(sess)
    todo = [(meta, z, k) for meta, z, k in planes if fits(info, channels_of(sess, k))]
    if not todo:
        raise SegappError(f"the model is for {kind(info.get('channels'))} images and this session has none; "
                          "paint one of these images to train a model for them")
    report = banner_progress(set_progress, APPLYING)
    for i, (meta, z, k) in enumerate(todo):
        name = meta["name"] + (f" · plane {z + 1}" if meta["shape"][0] > 1 else "")
        report(i / len(todo), name, count=(i + 1, len(todo)))
        if sess.result_version(k) != version:
            predict(sess, seg, k, version,
                    progress=lambda f, i=i, name=name: report((i + f) / len(todo), name, count=(i + 1, len(todo))))
    here_holds_features(services, sess.sid)  # distributed: this worker now has the features of every image
    skipped = len(planes) - len(todo)
    other = (f" {skipped} plane(s) of other images were left out: this model is for {kind(info.get('channels'))} "
             "images (show one of the others and paint it to give it its own model).") if skipped else ""
    notify(f"Segmented {len(todo)} image plane(s) with model v{version}. Download them as a ZIP.{other}",
           "warning" if skipped else "success")
    return {"gallery": gallery(sess), "model_version": {"v": version, "t": time.time()}}


apply_all.job_queue = features_job_queue  # distributed: where the session's features are, or a GPU


def register(app, services):
    wire(app, services, show_gallery, apply_all)
