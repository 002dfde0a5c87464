"""Training: live retrain after each stroke, the Train button, background feature extraction, settings.

Quick path (features cached): a plain callback fits and predicts in the web
process and returns the new overlay PNG, which the browser patches into the figure.
Slow path (first extraction for an image/extractor): the quick path meets
:class:`~segapp.ui.pipeline.FeaturesMissing` and hands over to a background
callback with a progress bar and a Cancel button.
"""

from __future__ import annotations

import time

from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from ...errors import AnnotationError, ConfigError, SegappError
from ...io import NORMALIZE_METHODS
from .. import ids
from ..layout import model_summary, train_hint
from ..pipeline import SIGMA_LADDER, FeaturesMissing, StrictCache, refresh
from ..session import key
from .canvas import tile_payload
from .common import background_job, callback_spec, valid_session, wire
from .session import extractor_options

STALE_JOB_S = 600  # an "extracting" marker older than this is from a job that died


def _current_key(cur) -> str | None:
    return key(cur["image"], cur.get("plane", 0)) if cur and cur.get("image") else None


def _version(sess) -> dict:
    return {"v": sess.model_info().get("version"), "t": time.time()}


def _retrain_out(train_info, model_version=no_update, extract_request=no_update, overlay=no_update,
                 tile_queue=no_update) -> dict:
    return {"model_version": model_version, "train_info": train_info, "extract_request": extract_request,
            "overlay": overlay, "tile_queue": tile_queue}


@callback_spec(
    output=dict(model_version=Output(ids.MODEL_VERSION, "data"), train_info=Output(ids.TRAIN_INFO, "children"),
                extract_request=Output(ids.EXTRACT_REQUEST, "data"),
                overlay=Output(ids.OVERLAY, "data", allow_duplicate=True),
                tile_queue=Output(ids.TILE_QUEUE, "data", allow_duplicate=True)),
    inputs=dict(annot_version=Input(ids.ANNOT_VERSION, "data"), n_train=Input(ids.TRAIN, "n_clicks"),
                request=Input(ids.TRAIN_REQUEST, "data")),
    state=dict(live=State(ids.LIVE, "value"), sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data"),
               mode=State(ids.OVERLAY_MODE, "value"), proba_class=State(ids.PROBA_CLASS, "value"),
               classes=State(ids.CLASSES, "data"), view=State(ids.VIEW, "data")),
    prevent_initial_call=True,
)
def retrain(annot_version, n_train, request, live, sid, cur, mode, proba_class, classes, view=None, *, services,
            trigger):
    """Retrain (live or on demand) and predict the current plane from cached features (the quick path).

    Parameters
    ----------
    annot_version : dict or None
        ``{"rev", "key"}`` from a stroke; an outdated ``rev`` is skipped (a newer stroke follows).
    n_train : int
        Clicks of the Train button.
    request : dict or None
        A retrain/predict request from the settings or the canvas.
    live : bool
        Live update: retrain after every stroke.
    sid, cur, mode, proba_class, classes
        Session, current plane, overlay mode and probability class, classes (for the overlay).
    view : dict or None
        The visible region (``{"x0", "x1", "y0", "y1", "px"}``): its tiles are predicted first.
    trigger : str
        ``ids.ANNOT_VERSION``, ``ids.TRAIN`` (forces a retrain) or ``ids.TRAIN_REQUEST``.

    Returns
    -------
    dict
        ``model_version`` (``{"v", "t", "rendered": True}`` after a new result), ``train_info``,
        ``extract_request`` (set when features must be computed first: the background job
        :func:`extract_and_train` takes over), ``overlay`` (the tiles in view, see
        :func:`~segapp.ui.callbacks.canvas.tile_payload`) and ``tile_queue`` (the rest, for
        :func:`~segapp.ui.callbacks.canvas.fill_tiles`).
    """
    if not valid_session(sid):
        raise PreventUpdate
    force = trigger == ids.TRAIN
    k = _current_key(cur)
    sess = services.session(sid)
    if trigger == ids.ANNOT_VERSION and not live:
        return _retrain_out(train_hint("Strokes saved. Press Train (or switch on Live update)."))
    with services.lock(sid):
        if trigger == ids.ANNOT_VERSION and annot_version and annot_version.get("rev") != sess.annot_rev():
            raise PreventUpdate  # a newer stroke is on its way: let that one train (debounce)
        try:
            out = refresh(sess, StrictCache(services.feature_cache), services.models, k,
                          retrain=bool(live) or force, force=force, save_in_thread=True, view=view)
        except FeaturesMissing:
            running = sess.store.get_json(sid, "state", "extracting")
            if running and time.time() - running["t"] < STALE_JOB_S and not force:
                return _retrain_out(train_hint("Still extracting features; your new strokes are used when "
                                               "it finishes."))
            request = {"force": force, "retrain": bool(live) or force, "key": k, "t": time.time(), "view": view}
            return _retrain_out(train_hint("Computing features for the painted and visible tiles, once: later "
                                           "strokes there reuse them."),
                                extract_request=request)
        except AnnotationError as e:
            if force:
                raise
            return _retrain_out(train_hint(str(e)))
    if not (out["trained"] or out["predicted"]):
        return _retrain_out(model_summary(sess.model_info()))
    overlay, queue = tile_payload(sess, services, k, out, mode, proba_class, classes or sess.classes(), view,
                                  reset=out["trained"])
    return _retrain_out(model_summary(sess.model_info()), model_version={**_version(sess), "rendered": True},
                        overlay=overlay, tile_queue=queue)


@callback_spec(
    output=dict(model_version=Output(ids.MODEL_VERSION, "data", allow_duplicate=True),
                train_info=Output(ids.TRAIN_INFO, "children", allow_duplicate=True)),
    inputs=dict(request=Input(ids.EXTRACT_REQUEST, "data")), state=dict(sid=State(ids.SESSION, "data")),
    **background_job(progress=[Output(ids.PROGRESS, "value"), Output(ids.PROGRESS_LABEL, "children")],
                     row=ids.PROGRESS_ROW, cancel=ids.CANCEL, disable=(ids.TRAIN, ids.APPLY_ALL), interval=250),
)
def extract_and_train(set_progress, request, sid, *, services, notify):
    """First extraction for an image (background job, cancellable, with progress); then train and predict.

    Parameters
    ----------
    set_progress : callable
        ``set_progress((percent, label))`` moves the progress bar.
    request : dict
        ``{"force", "retrain", "key", "t"}`` from :func:`retrain`.
    sid : str

    Returns
    -------
    dict
        ``model_version`` (``{"v", "t"}``; ``no_update`` when training failed) and ``train_info``.
    """
    if not request or not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    set_progress((3, "Extracting features…"))

    def progress(fraction, text="working"):
        set_progress((max(3, int(100 * fraction)), f"{text} · {100 * fraction:.0f}%"))

    sess.store.put_json(sid, "state", "extracting", {"t": time.time()})
    try:
        force = bool(request.get("force"))
        for _ in range(3):  # strokes painted while this ran are trained on right away (features now cached)
            rev = sess.annot_rev()
            try:
                refresh(sess, services.feature_cache, services.models, request.get("key"),
                        retrain=request.get("retrain", True), force=force, progress=progress,
                        view=request.get("view"))
            except AnnotationError:
                if sess.annot_rev() == rev:
                    raise
                continue
            if sess.annot_rev() == rev:
                break
            force = False
    except AnnotationError as e:  # live update before two classes are painted: a hint, not an error
        if request.get("force"):
            notify(str(e), "warning", "Cannot train yet")
        return {"model_version": no_update, "train_info": train_hint(str(e))}
    except SegappError as e:  # shown here: errors from a child process lose their type
        notify(str(e), "danger", "Training failed")
        return {"model_version": no_update, "train_info": train_hint(str(e))}
    finally:
        sess.store.delete(sid, "state", "extracting")
    return {"model_version": _version(sess), "train_info": model_summary(sess.model_info())}


@callback_spec(output=dict(train_info=Output(ids.TRAIN_INFO, "children", allow_duplicate=True)),
               inputs=dict(n_clicks=Input(ids.CANCEL, "n_clicks")), state=dict(sid=State(ids.SESSION, "data")),
               prevent_initial_call=True)
def cancelled(n_clicks, sid, *, services, notify):
    """The Cancel button: forget the running extraction and say how to start again.

    Returns
    -------
    dict
        ``train_info``: a hint.
    """
    if valid_session(sid):
        services.store.delete(sid, "state", "extracting")
    notify("Feature extraction cancelled. Your strokes are kept; press Train to start again.", "warning",
           "Cancelled")
    return {"train_info": train_hint("Cancelled. Press Train to extract features again.")}


@callback_spec(
    output=dict(train_request=Output(ids.TRAIN_REQUEST, "data", allow_duplicate=True)),
    inputs=dict(extractor=Input(ids.EXTRACTOR, "value"), sigmas=Input(ids.SIGMAS, "value"),
                trees=Input(ids.TREES, "value"), depth=Input(ids.DEPTH, "value"),
                normalization=Input(ids.NORMALIZATION, "value"), all_images=Input(ids.ALL_IMAGES, "value"),
                live=Input(ids.LIVE, "value")),
    state=dict(sid=State(ids.SESSION, "data")),
    prevent_initial_call=True,
)
def change_settings(extractor, sigmas, trees, depth, normalization, all_images, live, sid, *, services, trigger):
    """Store the Features & classifier settings; with live update on, ask for a retrain.

    Parameters
    ----------
    extractor : str
    sigmas : list of int
        Range-slider positions on :data:`~segapp.ui.pipeline.SIGMA_LADDER`.
    trees, depth : int
        Forest size (5–500) and maximum depth (0: no limit, up to 64); ConfigError outside.
    normalization : str
    all_images, live : bool
    trigger : str
        Which control changed (switching live update on retrains even without a change).

    Returns
    -------
    dict
        ``train_request``: ``{"reason": "settings", "t"}`` (PreventUpdate when nothing is to be done).
    """
    if not valid_session(sid) or extractor is None:
        raise PreventUpdate
    if trees is None or not 5 <= int(trees) <= 500:
        raise ConfigError("trees must be between 5 and 500")
    if depth is None or not 0 <= int(depth) <= 64:
        raise ConfigError("max depth must be between 0 (no limit) and 64")
    offered = {o["value"] for o in extractor_options()[0] if not o.get("disabled")}
    if extractor not in offered or normalization not in NORMALIZE_METHODS or not isinstance(sigmas, list) \
            or not all(isinstance(i, int) and 0 <= i < len(SIGMA_LADDER) for i in sigmas) or not sigmas:
        raise ConfigError("the settings panel sent a value it does not offer; reload the page")
    sess = services.session(sid)
    new = {"extractor": extractor, "sigmas": [SIGMA_LADDER[int(i)] for i in sigmas], "trees": int(trees),
           "depth": int(depth), "normalization": normalization, "all_images": bool(all_images)}
    changed = new != {k: sess.settings().get(k) for k in new}
    if changed:
        sess.set_settings(new)
    if not live or not (changed or trigger == ids.LIVE):
        raise PreventUpdate
    return {"train_request": {"reason": "settings", "t": time.time()}}


@callback_spec(output=dict(status=Output(ids.STATUS, "children"), model_info=Output(ids.MODEL_INFO, "children")),
               inputs=dict(model_version=Input(ids.MODEL_VERSION, "data"), sid=Input(ids.SESSION, "data"),
                           images_version=Input(ids.IMAGES_VERSION, "data")))
def status(model_version, sid, images_version, *, services):
    """The header's status line and the model panel's one-line description.

    Returns
    -------
    dict
        ``status`` (images, model version, features) and ``model_info``.
    """
    if not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    info, n = sess.model_info(), len(sess.images())
    imgs = f"{n} image{'s' if n != 1 else ''}"
    if not info:
        return {"status": f"{imgs} · no model yet",
                "model_info": "No model yet: paint two classes, or load a model file."}
    src = f"loaded from {info.get('name', 'file')}" if info.get("source") == "uploaded" else "trained here"
    return {"status": f"{imgs} · model v{info['version']} · {info.get('extractor', '?')}",
            "model_info": f"Model v{info['version']} ({src}), features: {info.get('extractor', '?')}."}


def register(app, services):
    wire(app, services, retrain, extract_and_train, cancelled, change_settings, status)
