"""Training: live retrain after each stroke, the Train button, background feature extraction, settings.

Quick path (features cached): a plain callback fits and predicts in the web
process and returns the new overlay PNG, which the browser patches into the figure.
Slow path (first extraction for an image/extractor): the quick path meets
:class:`~segapp.ui.pipeline.FeaturesMissing` and hands over to a background
callback with a progress bar and a Cancel button.
"""

from __future__ import annotations

import time

from dash import Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from ...errors import AnnotationError, ConfigError, SegappError
from .. import ids
from ..layout import model_summary, train_hint
from ..pipeline import SIGMA_LADDER, FeaturesMissing, StrictCache, refresh
from ..session import key
from .canvas import overlay_uri
from .common import notify, valid_session

SHOW, HIDE = {}, {"display": "none"}
STALE_JOB_S = 600  # an "extracting" marker older than this is from a job that died


def _current_key(cur) -> str | None:
    return key(cur["image"], cur.get("plane", 0)) if cur and cur.get("image") else None


def _version(sess) -> dict:
    return {"v": sess.model_info().get("version"), "t": time.time()}


def register(app, services):
    @app.callback(
        Output(ids.MODEL_VERSION, "data"), Output(ids.TRAIN_INFO, "children"), Output(ids.EXTRACT_REQUEST, "data"),
        Output(ids.OVERLAY, "data", allow_duplicate=True),
        Input(ids.ANNOT_VERSION, "data"), Input(ids.TRAIN, "n_clicks"), Input(ids.TRAIN_REQUEST, "data"),
        State(ids.LIVE, "value"), State(ids.SESSION, "data"), State(ids.CURRENT, "data"),
        State(ids.OVERLAY_MODE, "value"), State(ids.PROBA_CLASS, "value"), State(ids.CLASSES, "data"),
        prevent_initial_call=True,
    )
    def retrain(annot, _train, request, live, sid, cur, mode, proba_class, classes):
        """Retrain (live or on demand) and predict the current plane from cached features."""
        if not valid_session(sid):
            raise PreventUpdate
        trig = ctx.triggered_id
        force = trig == ids.TRAIN
        request = request or {}
        k = _current_key(cur)
        sess = services.session(sid)
        if trig == ids.ANNOT_VERSION and not live:
            return no_update, train_hint("Strokes saved. Press Train (or switch on Live update)."), no_update, no_update
        with services.lock(sid):
            if trig == ids.ANNOT_VERSION and annot and annot.get("rev") != sess.annot_rev():
                raise PreventUpdate  # a newer stroke is on its way: let that one train (debounce)
            try:
                out = refresh(sess, StrictCache(services.feature_cache), services.models, k,
                              retrain=bool(live) or force, force=force, save_in_thread=True)
            except FeaturesMissing:
                running = sess.store.get_json(sid, "state", "extracting")
                if running and time.time() - running["t"] < STALE_JOB_S and not force:
                    return no_update, train_hint("Still extracting features; your new strokes are used when "
                                                 "it finishes."), no_update, no_update
                request = {"force": force, "retrain": bool(live) or force, "key": k, "t": time.time()}
                return no_update, train_hint("Computing features once for this image; later strokes reuse "
                                             "them."), request, no_update
            except AnnotationError as e:
                if force:
                    raise
                return no_update, train_hint(str(e)), no_update, no_update
        if not (out["trained"] or out["predicted"]):
            return no_update, model_summary(sess.model_info()), no_update, no_update
        overlay = {"key": k, "uri": overlay_uri(sess, k, mode, proba_class, classes or sess.classes())}
        return {**_version(sess), "rendered": True}, model_summary(sess.model_info()), no_update, overlay

    @app.callback(
        Output(ids.MODEL_VERSION, "data", allow_duplicate=True),
        Output(ids.TRAIN_INFO, "children", allow_duplicate=True),
        Input(ids.EXTRACT_REQUEST, "data"), State(ids.SESSION, "data"),
        background=True, interval=250, prevent_initial_call=True,
        progress=[Output(ids.PROGRESS, "value"), Output(ids.PROGRESS_LABEL, "children")],
        progress_default=[0, ""],
        running=[(Output(ids.PROGRESS_ROW, "style"), SHOW, HIDE), (Output(ids.TRAIN, "disabled"), True, False),
                 (Output(ids.APPLY_ALL, "disabled"), True, False)],
        cancel=[Input(ids.CANCEL, "n_clicks")],
    )
    def extract_and_train(set_progress, request, sid):
        """First extraction for an image: progress bar, cancellable; then train and predict."""
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
                            retrain=request.get("retrain", True), force=force, progress=progress)
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
            return no_update, train_hint(str(e))
        except SegappError as e:  # shown here: errors from a child process lose their type
            notify(str(e), "danger", "Training failed")
            return no_update, train_hint(str(e))
        finally:
            sess.store.delete(sid, "state", "extracting")
        return _version(sess), model_summary(sess.model_info())

    @app.callback(Output(ids.TRAIN_INFO, "children", allow_duplicate=True), Input(ids.CANCEL, "n_clicks"),
                  State(ids.SESSION, "data"), prevent_initial_call=True)
    def cancelled(_n, sid):
        if valid_session(sid):
            services.store.delete(sid, "state", "extracting")
        notify("Feature extraction cancelled. Your strokes are kept; press Train to start again.", "warning",
               "Cancelled")
        return train_hint("Cancelled. Press Train to extract features again.")

    @app.callback(
        Output(ids.TRAIN_REQUEST, "data", allow_duplicate=True),
        Input(ids.EXTRACTOR, "value"), Input(ids.SIGMAS, "value"), Input(ids.TREES, "value"), Input(ids.DEPTH, "value"),
        Input(ids.NORMALIZATION, "value"), Input(ids.ALL_IMAGES, "value"), Input(ids.LIVE, "value"),
        State(ids.SESSION, "data"), prevent_initial_call=True,
    )
    def change_settings(extractor, sigmas, trees, depth, norm, all_images, live, sid):
        if not valid_session(sid) or extractor is None:
            raise PreventUpdate
        if trees is None or not 5 <= int(trees) <= 500:
            raise ConfigError("trees must be between 5 and 500")
        if depth is None or not 0 <= int(depth) <= 64:
            raise ConfigError("max depth must be between 0 (no limit) and 64")
        sess = services.session(sid)
        new = {"extractor": extractor, "sigmas": [SIGMA_LADDER[int(i)] for i in sigmas], "trees": int(trees),
               "depth": int(depth), "normalization": norm, "all_images": bool(all_images)}
        changed = new != {k: sess.settings().get(k) for k in new}
        if changed:
            sess.set_settings(new)
        if not live or not (changed or ctx.triggered_id == ids.LIVE):
            raise PreventUpdate
        return {"reason": "settings", "t": time.time()}

    @app.callback(Output(ids.STATUS, "children"), Output(ids.MODEL_INFO, "children"),
                  Input(ids.MODEL_VERSION, "data"), Input(ids.SESSION, "data"), Input(ids.IMAGES_VERSION, "data"))
    def status(_mv, sid, _iv):
        if not valid_session(sid):
            raise PreventUpdate
        sess = services.session(sid)
        info, n = sess.model_info(), len(sess.images())
        imgs = f"{n} image{'s' if n != 1 else ''}"
        if not info:
            return f"{imgs} · no model yet", "No model yet: paint two classes, or load a model file."
        src = f"loaded from {info.get('name', 'file')}" if info.get("source") == "uploaded" else "trained here"
        return (f"{imgs} · model v{info['version']} · {info.get('extractor', '?')}",
                f"Model v{info['version']} ({src}), features: {info.get('extractor', '?')}.")
