"""Training: live retrain after each stroke, the Train button, background feature extraction, settings.

Quick path (features cached): a plain callback fits and predicts where the
features are — in the web process (embedded mode) or on the worker that holds
them (distributed mode, :mod:`segapp.ui.remote`) — and returns the new overlay
PNG, which the browser patches into the figure.
Slow path (first extraction for an image/extractor): the quick path meets
:class:`~segapp.ui.pipeline.FeaturesMissing` and hands over to a background
callback with a progress bar and a Cancel button (on a GPU worker when one runs).
Training of one session is serialised across processes and hosts by the
session lock; a stroke that finds it taken is trained on by the holder.
"""

from __future__ import annotations

import time

from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from ...errors import AnnotationError, ConfigError, SegappError
from ...io import NORMALIZE_METHODS
from .. import ids
from ..layout import model_summary, train_hint
from ..pipeline import (SIGMA_LADDER, FeaturesMissing, OnlyOtherKindPainted, channels_of, fits,
                        forget_unpainted_model, kind, kind_message, refresh)
from ..remote import features_job_queue, here_holds_features, quick_refresh
from ..session import key
from .batch import APPLYING
from .canvas import tile_payload
from .common import banner_progress, callback_spec, canvas_job, valid_session, wire
from .objects import MEASURING
from .session import extractor_options

STALE_JOB_S = 600  # an "extracting" marker older than this is from a job that died
EXTRACTING = "Computing features"  # the banner label of the first extraction (the Cancel toast keys on it)
CANCELLED = {  # banner label (its start) -> what the Cancel toast says
    EXTRACTING: "Feature extraction cancelled. Your strokes are kept; press Train to start again.",
    APPLYING: "Stopped applying the model. The images done so far keep their results.",
    MEASURING: "Measuring cancelled. The last measurements stay in the table.",
}
QUICK_LOCK_WAIT_S = 2.0  # a stroke waits this long for the session's training lock, then leaves it to the holder
JOB_LOCK_WAIT_S = 300.0  # a background job waits this long for it
CATCH_UP = 3  # trainings one holder of the lock runs at most to take in strokes that arrived meanwhile


def _current_key(cur) -> str | None:
    return key(cur["image"], cur.get("plane", 0)) if cur and cur.get("image") else None


def _version(sess) -> dict:
    return {"v": sess.model_info().get("version"), "t": time.time()}


def _retrain_out(train_info, model_version=no_update, extract_request=no_update, overlay=no_update,
                 tile_queue=no_update) -> dict:
    return {"model_version": model_version, "train_info": train_info, "extract_request": extract_request,
            "overlay": overlay, "tile_queue": tile_queue}


def _tell_kind(sess, before: dict, notify) -> None:
    """A toast when the model switched to another kind of image (grey vs colour) than the one before."""
    info = sess.model_info()
    message = kind_message(info)
    if message and info.get("channels") != before.get("channels"):
        notify(message, "info", "One model per kind of image")


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
            trigger, notify):
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
    if trigger == ids.ANNOT_VERSION and forget_unpainted_model(sess):  # e.g. Clear all: no strokes, no model
        return _retrain_out(train_hint("Nothing is painted, so there is no model. Undo (Ctrl+Z) brings the "
                                       "strokes back."), model_version={**_version(sess), "rendered": True},
                            overlay={"key": k, "version": 0, "tiles": [], "clear": True} if k else no_update)
    if trigger == ids.ANNOT_VERSION and not live:
        return _retrain_out(train_hint("Strokes saved. Press Train (or switch on Live update)."))
    before = sess.model_info()
    lock = services.lock(sid)
    if not lock.acquire(timeout=QUICK_LOCK_WAIT_S):  # another stroke, a job or a web process is training it
        return _retrain_out(train_hint("Training on your earlier strokes; the newest ones follow."))
    try:
        if trigger == ids.ANNOT_VERSION and annot_version and annot_version.get("rev") != sess.annot_rev():
            raise PreventUpdate  # a newer stroke is on its way: let that one train (debounce)
        out = {"trained": False, "predicted": False, "version": None, "done": [], "todo": []}
        for _ in range(CATCH_UP):  # strokes whose own requests found the lock taken are trained on here
            rev = sess.annot_rev()
            try:
                step = quick_refresh(services, sess, k, retrain=bool(live) or force, force=force, view=view)
            except FeaturesMissing:
                running = sess.store.get_json(sid, "state", "extracting")
                if running and time.time() - running["t"] < STALE_JOB_S and not force:
                    return _retrain_out(train_hint("Still extracting features; your new strokes are used when "
                                                   "it finishes."))
                request = {"force": force, "retrain": bool(live) or force, "key": k, "t": time.time(),
                           "view": view}
                return _retrain_out(train_hint("Computing features for the painted and visible tiles, once: "
                                               "later strokes there reuse them."), extract_request=request)
            except OnlyOtherKindPainted as e:  # said where the user looks, not only in the sidebar
                notify(str(e), "warning", "Paint this kind of image")
                return _retrain_out(train_hint(str(e)))
            except AnnotationError as e:
                if force:
                    raise
                return _retrain_out(train_hint(str(e)))
            trained = out["trained"] or step["trained"]
            out = {**(step if step["predicted"] else out), "version": step["version"], "trained": trained,
                   "predicted": out["predicted"] or step["predicted"]}  # the newest prediction is shown
            force = False
            if not live or sess.annot_rev() == rev:
                break
    finally:
        lock.release()
    _tell_kind(sess, before, notify)
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
    **canvas_job(EXTRACTING, disable=(ids.TRAIN, ids.APPLY_ALL), interval=250),
)
def extract_and_train(set_progress, request, sid, *, services, notify):
    """First extraction for an image (background job, cancellable, with progress); then train and predict.

    Parameters
    ----------
    set_progress : callable
        Dash's progress setter (the canvas banner, through :func:`~.common.banner_progress`).
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
    report = banner_progress(set_progress, EXTRACTING)
    report(0.0, "waiting for a free job slot")
    last = [0.0]

    def progress(fraction, detail=""):  # at most 5 updates a second: each one is a write to the job store
        now = time.monotonic()
        if now - last[0] >= 0.2 or fraction >= 1:
            last[0] = now
            report(fraction, detail)

    sess.store.put_json(sid, "state", "extracting", {"t": time.time()})
    before = sess.model_info()
    try:
        force = bool(request.get("force"))
        with services.job_slot(wait=JOB_LOCK_WAIT_S), services.lock(sid, wait=JOB_LOCK_WAIT_S):
            report(0.0)
            for _ in range(CATCH_UP):  # strokes painted while this ran are trained on right away (features cached)
                rev = sess.annot_rev()
                try:
                    refresh(sess, services.feature_cache, services.models, request.get("key"),
                            retrain=request.get("retrain", True), force=force, progress=progress,
                            view=request.get("view"))
                except AnnotationError:
                    if sess.annot_rev() == rev:
                        raise
                    continue
                finally:
                    here_holds_features(services, sid)  # distributed: later strokes come to this worker
                if sess.annot_rev() == rev:
                    break
                force = False
    except AnnotationError as e:  # live update before two classes are painted: a hint, not an error
        if request.get("force") or isinstance(e, OnlyOtherKindPainted):
            notify(str(e), "warning", "Cannot train yet")
        return {"model_version": no_update, "train_info": train_hint(str(e))}
    except SegappError as e:  # shown here: errors from a child process lose their type
        notify(str(e), "danger", "Training failed")
        return {"model_version": no_update, "train_info": train_hint(str(e))}
    finally:
        sess.store.delete(sid, "state", "extracting")
    _tell_kind(sess, before, notify)  # the job's only toast (Dash keeps the last set_props of a job)
    return {"model_version": _version(sess), "train_info": model_summary(sess.model_info())}


extract_and_train.job_queue = features_job_queue  # distributed: where the session's features are, or a GPU


@callback_spec(output=dict(train_info=Output(ids.TRAIN_INFO, "children", allow_duplicate=True)),
               inputs=dict(n_clicks=Input(ids.JOB_CANCEL, "n_clicks")),
               state=dict(label=State(ids.JOB_LABEL, "children"), sid=State(ids.SESSION, "data")),
               prevent_initial_call=True)
def cancelled(n_clicks, label, sid, *, services, notify):
    """The banner's Cancel button (Dash stops the job): say what stopped and how to start again.

    Parameters
    ----------
    n_clicks : int
    label : str or None
        The banner's label: what was running (e.g. ``"Computing features · image 1/2"``).
    sid : str

    Returns
    -------
    dict
        ``train_info``: a hint after a cancelled extraction (``no_update`` for other jobs).
    """
    label = str(label or "")
    if valid_session(sid):
        services.store.delete(sid, "state", "extracting")
    what = next((text for start, text in CANCELLED.items() if label.startswith(start)), None)
    notify(what or f"Cancelled{': ' + label if label else ''}. Nothing you did is lost.", "warning", "Cancelled")
    if not label.startswith(EXTRACTING):
        return {"train_info": no_update}
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
    if extractor not in offered or normalization not in NORMALIZE_METHODS:
        raise ConfigError("the settings panel sent a value it does not offer; reload the page")
    sess = services.session(sid)
    if not isinstance(sigmas, (list, tuple)) or len(sigmas) != 2 or \
            not all(isinstance(i, (int, float)) and 0 <= i < len(SIGMA_LADDER) for i in sigmas):
        scales = sess.settings()["sigmas"]  # no (or a malformed) slider value: keep the stored scales
    else:
        scales = [SIGMA_LADDER[int(i)] for i in sigmas]
    new = {"extractor": extractor, "sigmas": scales, "trees": int(trees),
           "depth": int(depth), "normalization": normalization, "all_images": bool(all_images)}
    changed = new != {k: sess.settings().get(k) for k in new}
    if changed:
        sess.set_settings(new)
    if not live or not (changed or trigger == ids.LIVE):
        raise PreventUpdate
    return {"train_request": {"reason": "settings", "t": time.time()}}


@callback_spec(output=dict(status=Output(ids.STATUS, "children"), model_info=Output(ids.MODEL_INFO, "children")),
               inputs=dict(model_version=Input(ids.MODEL_VERSION, "data"), sid=Input(ids.SESSION, "data"),
                           images_version=Input(ids.IMAGES_VERSION, "data"), cur=Input(ids.CURRENT, "data")))
def status(model_version, sid, images_version, cur, *, services):
    """The header's status line and the model panel's one-line description.

    Returns
    -------
    dict
        ``status`` (images, model version, features; which kind of image the model is for
        when grey and colour images are painted) and ``model_info``.
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
    for_kind = ""
    if info.get("other_kinds") or not fits(info, channels_of(sess, _current_key(cur))):
        for_kind = f" · for {kind(info.get('channels'))} images"
    return {"status": f"{imgs} · model v{info['version']} · {info.get('extractor', '?')}{for_kind}",
            "model_info": f"Model v{info['version']} ({src}), features: {info.get('extractor', '?')}{for_kind}."}


def register(app, services):
    wire(app, services, retrain, extract_and_train, cancelled, change_settings, status)
