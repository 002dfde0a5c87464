"""Many images: apply the model to every image (background job with progress) and a results gallery."""

from __future__ import annotations

import time

from dash import Input, Output, State
from dash.exceptions import PreventUpdate

from ... import io
from ...errors import SegappError
from .. import ids
from ..layout import gallery_items
from ..pipeline import load_model, predict
from ..render import png_uri, thumbnail_with_overlay
from ..session import key
from .common import background_job, callback_spec, valid_session, wire


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
        items.append({"item": meta["id"], "name": meta["name"] + plane, "src": src,
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
    **background_job(progress=[Output(ids.APPLY_PROGRESS, "value"), Output(ids.APPLY_PROGRESS, "label")],
                     row=ids.APPLY_ROW, cancel=ids.APPLY_CANCEL, disable=(ids.APPLY_ALL, ids.TRAIN), interval=400),
)
def apply_all(set_progress, n_clicks, sid, *, services, notify):
    """Predict every plane of every image with the current model (skipping up-to-date results).

    Parameters
    ----------
    set_progress : callable
        ``set_progress((percent, label))`` moves the progress bar.
    n_clicks : int
    sid : str

    Returns
    -------
    dict
        ``gallery`` (every result) and ``model_version`` (``{"v", "t"}``: the overlay refreshes);
        PreventUpdate (after a toast) when there is no model.
    """
    sess = services.session(sid)
    try:
        seg = load_model(sess, services.models, services.feature_cache)
        if seg is None:
            raise SegappError("no model yet: paint two classes and train, or load a model file")
        version = sess.model_info()["version"]
        todo = all_keys(sess)
        for i, (meta, z, k) in enumerate(todo):
            set_progress((int(100 * i / len(todo)) or 2, f"{i + 1}/{len(todo)} {meta['name']}"))
            if sess.result_version(k) != version:
                predict(sess, seg, k, version)
    except SegappError as e:
        notify(str(e), "danger", "Could not apply the model")
        raise PreventUpdate
    notify(f"Segmented {len(todo)} image plane(s) with model v{version}. Download them as a ZIP.", "success")
    return {"gallery": gallery(sess), "model_version": {"v": version, "t": time.time()}}


def register(app, services):
    wire(app, services, show_gallery, apply_all)
