"""The canvas: build the figure for an image, save strokes, undo/redo, overlays (with Patch)."""

from __future__ import annotations

from dash import ClientsideFunction, Input, Output, Patch, State, html, no_update
from dash.exceptions import PreventUpdate

import time

from ... import io
from ...annotations import apply_relayout, count_points, parse_shape_name, shapes_to_labels, split_valid
from ...errors import AnnotationError, SegappError
from ...limits import MAX_POINTS
from ...viewport import display_step, downscale
from .. import ids
from .. import overlay_tiles as OT
from ..figures import base_image_uri, canvas_figure, empty_figure, style_shapes
from ..pipeline import load_model
from ..remote import fill_rest
from ..session import key, split_key
from .common import callback_spec, valid_session, wire

HIDDEN, SHOWN = {"display": "none"}, {}
FILL_BUDGET_S = 1.0  # seconds of tile prediction per request of the background chain


def display_uri(sess, iid: str, z: int) -> str:
    """PNG data URI of a plane as shown, at its display step (made once per plane, then read from the store)."""
    k = key(iid, z)
    cached = sess.display(k)
    if cached:
        return cached.decode()
    plane = sess.plane(iid, z)
    step = display_step(*plane.shape[:2])
    uri = base_image_uri(downscale(io.to_display_rgb(plane), step))
    sess.put_display(k, uri.encode())
    return uri


def tile_payload(sess, services, k: str, out: dict, mode: str, proba_class, classes, view,
                 reset: bool = False) -> tuple[dict, dict]:
    """``(overlay, tile_queue)`` store data after :func:`~segapp.ui.pipeline.refresh` predicted tiles."""
    seg = load_model(sess, services.models, services.feature_cache, k)
    if seg is None:
        return no_update, no_update
    version = out["version"]
    tiles = OT.overlays(sess, seg, k, out["done"], mode, proba_class, classes, view)
    overlay = {"key": k, "version": version, "tiles": tiles, "clear": mode == "none"}
    return overlay, _queue(k, version, out["todo"])


def _queue(k: str, version, todo: list) -> dict | None:
    return {"key": k, "version": version, "n": len(todo), "t": time.time()} if todo else None


def tile_status(todo: int, total: int | None = None):
    """The on-canvas note while the rest of the image arrives (hidden when nothing is left)."""
    if not todo:
        return [], {"display": "none"}
    total = max(total or todo, todo)
    done = 100 * (1 - todo / total) if total else 0
    return [html.Span(f"Refining the rest of the image: {todo} tile{'s' if todo > 1 else ''} to go"),
            html.Span(html.Span(className="ts-fill", style={"width": f"{done:.0f}%"}), className="ts-bar")], {}
def canvas_info(meta: dict, z: int) -> list:
    nz, h, w, c = meta["shape"]
    plane = f" · plane {z + 1}/{nz}" if nz > 1 else ""
    return [html.Span(meta["name"], className="ci-name"),
            html.Span(f"{w}×{h} px · {c} channel{'s' if c > 1 else ''} · {meta['dtype']}{plane}",
                      className="ci-meta")]


def _shapes_patch(shapes: list[dict], classes: list[dict], show) -> Patch:
    """A figure Patch that replaces only the strokes."""
    patch = Patch()
    patch["layout"]["shapes"] = style_shapes(shapes, classes, show)
    return patch


@callback_spec(
    output=dict(figure=Output(ids.GRAPH, "figure"), hint_style=Output(ids.EMPTY_HINT, "style"),
                info=Output(ids.CANVAS_INFO, "children"),
                train_request=Output(ids.TRAIN_REQUEST, "data", allow_duplicate=True)),
    inputs=dict(cur=Input(ids.CURRENT, "data")),
    state=dict(sid=State(ids.SESSION, "data"), classes=State(ids.CLASSES, "data"),
               active=State(ids.ACTIVE_CLASS, "data"), width=State(ids.STROKE_WIDTH, "value"),
               mode=State(ids.OVERLAY_MODE, "value"), proba_class=State(ids.PROBA_CLASS, "value"),
               opacity=State(ids.OPACITY, "value"), show=State(ids.SHOW_ANNOT, "value"),
               scale=State(ids.SCALE, "data")),
    prevent_initial_call=True,
)
def build_canvas(cur, sid, classes, active, width, mode, proba_class, opacity, show, scale, *, services):
    """A full figure, sent once per image plane; everything later is a Patch.

    Parameters
    ----------
    cur : dict or None
        ``{"image", "plane"}`` to show.
    sid : str
    classes : list of dict or None
        The browser's copy of the classes (the server's when None).
    active, width, mode, proba_class, opacity, show, scale
        Active class, brush width, overlay mode, class of the probability view,
        overlay opacity, strokes shown, screen pixels per image pixel.
    services : Services

    Returns
    -------
    dict
        ``figure``, ``hint_style`` (the empty-canvas hint), ``info`` (name and size line) and
        ``train_request``: a predict request when the plane's result is older than the model.
    """
    if not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    meta = sess.meta(cur["image"]) if cur else None
    if meta is None:
        return {"figure": empty_figure(), "hint_style": SHOWN, "info": [], "train_request": no_update}
    z = int(cur.get("plane", 0))
    k = key(meta["id"], z)
    classes = classes or sess.classes()
    h, w = meta["shape"][1:3]
    info = sess.model_info()
    seg = load_model(sess, services.models, services.feature_cache, k) if info else None
    shown = OT.current_overlays(sess, seg, k, info["version"], mode, proba_class, classes, None) if seg else []
    fig = canvas_figure(display_uri(sess, meta["id"], z), (h, w), shapes=sess.shapes(k),
                        classes=classes, active=active, width=width, revision=k, overlay_tiles=shown,
                        opacity=opacity, show_shapes=show, scale=scale, step=display_step(h, w))
    need = bool(info) and sess.result_version(k) != info.get("version")
    return {"figure": fig, "hint_style": HIDDEN, "info": canvas_info(meta, z),
            "train_request": {"reason": "predict", "key": k} if need else no_update}


@callback_spec(
    output=dict(annot_version=Output(ids.ANNOT_VERSION, "data"),
                figure=Output(ids.GRAPH, "figure", allow_duplicate=True)),
    inputs=dict(relayout=Input(ids.GRAPH, "relayoutData")),
    state=dict(sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data"), classes=State(ids.CLASSES, "data"),
               show=State(ids.SHOW_ANNOT, "value")),
    prevent_initial_call=True,
)
def save_strokes(relayout, sid, cur, classes, show, *, services, notify):
    """A drawn stroke: store the strokes (with their rasterised labels) for this plane.

    Strokes are not editable (figures.style_shape); a relayout that edits one
    (``shapes[i].*``) changes nothing and the stored strokes are sent back.

    Parameters
    ----------
    relayout : dict
        Plotly's ``relayoutData`` (``{"shapes": [...]}`` or ``{"shapes[i].path": ...}``).

    Returns
    -------
    dict
        ``annot_version``: ``{"rev", "key"}`` (triggers retraining); ``figure``: a Patch of the strokes.
        Shapes that cannot be drawn (bad class or width, coordinates out of range, too many points)
        are left out, removed from the canvas and named in a toast; a malformed event raises
        AnnotationError (a toast) and changes nothing.
    """
    if not relayout or not cur or not any(isinstance(k, str) and k.startswith("shapes") for k in relayout) \
            or not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    k = key(cur["image"], cur.get("plane", 0))
    meta = sess.meta(cur["image"])
    if meta is None:
        raise PreventUpdate
    old = sess.shapes(k)
    if "shapes" not in relayout:  # an edit of a stroke ("shapes[i].path"): strokes are not editable; put it back
        return {"annot_version": no_update, "figure": _shapes_patch(old, classes, show)}
    shapes, bad = split_valid(apply_relayout(old, relayout))
    if count_points(shapes) > MAX_POINTS:
        raise AnnotationError(f"this image's strokes would have more than {MAX_POINTS:,} points; "
                              "clear some strokes first")
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        notify(f"{len(bad)} stroke(s) not saved: {bad[0]}{more}", "warning", "Stroke refused")
    if shapes == old:
        return {"annot_version": no_update, "figure": _shapes_patch(shapes, classes, show)}
    base = sess.labels(k) if len(shapes) > len(old) and shapes[:len(old)] == old else None
    if base is not None and base.shape == tuple(meta["shape"][1:3]) and base.dtype == "uint8":
        labels = shapes_to_labels(shapes[len(old):], meta["shape"][1:3], out=base.copy())  # only the new strokes
    else:
        labels = shapes_to_labels(shapes, meta["shape"][1:3])
    sess.set_shapes(k, shapes, labels)
    return {"annot_version": {"rev": sess.annot_rev(), "key": k}, "figure": _shapes_patch(shapes, classes, show)}


@callback_spec(
    output=dict(annot_version=Output(ids.ANNOT_VERSION, "data", allow_duplicate=True),
                figure=Output(ids.GRAPH, "figure", allow_duplicate=True)),
    inputs=dict(undo=Input(ids.UNDO, "n_clicks"), redo=Input(ids.REDO, "n_clicks"),
                clear_class=Input(ids.CLEAR_CLASS, "n_clicks"), clear_all=Input(ids.CLEAR_ALL, "n_clicks")),
    state=dict(sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data"), classes=State(ids.CLASSES, "data"),
               active=State(ids.ACTIVE_CLASS, "data"), show=State(ids.SHOW_ANNOT, "value")),
    prevent_initial_call=True,
)
def edit_history(undo, redo, clear_class, clear_all, sid, cur, classes, active, show, *, services, trigger):
    """Undo, redo, clear the active class's strokes or clear all strokes of the current plane.

    Parameters
    ----------
    undo, redo, clear_class, clear_all : int
        Click counts (only ``trigger`` matters).
    trigger : str
        The id of the button pressed (``ids.UNDO``, ``ids.REDO``, ``ids.CLEAR_CLASS``, ``ids.CLEAR_ALL``).

    Returns
    -------
    dict
        ``annot_version`` and ``figure`` (a Patch of the strokes), as :func:`save_strokes`;
        PreventUpdate when nothing changed.
    """
    if not cur:
        raise PreventUpdate
    sess = services.session(sid)
    k = key(cur["image"], cur.get("plane", 0))
    before = sess.shapes(k)
    if trigger == ids.UNDO:
        shapes = sess.undo(k)
    elif trigger == ids.REDO:
        shapes = sess.redo(k)
    elif trigger in (ids.CLEAR_CLASS, ids.CLEAR_ALL):
        shapes = [] if trigger == ids.CLEAR_ALL else [s for s in before if _class_of(s) != active]
        sess.set_shapes(k, shapes)
    else:  # not one of the four buttons: change nothing
        raise PreventUpdate
    if shapes == before:
        raise PreventUpdate
    return {"annot_version": {"rev": sess.annot_rev(), "key": k}, "figure": _shapes_patch(shapes, classes, show)}


@callback_spec(output=dict(figure=Output(ids.GRAPH, "figure", allow_duplicate=True)),
               inputs=dict(show=Input(ids.SHOW_ANNOT, "value"), classes=Input(ids.CLASSES, "data")),
               state=dict(sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data")), prevent_initial_call=True)
def restyle_strokes(show, classes, sid, cur, *, services):
    """Show/hide strokes, or recolour them after a class colour changed.

    Returns
    -------
    dict
        ``figure``: a Patch of the strokes.
    """
    if not cur or not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    return {"figure": _shapes_patch(sess.shapes(key(cur["image"], cur.get("plane", 0))), classes, show)}


@callback_spec(
    output=dict(overlay=Output(ids.OVERLAY, "data"), proba_style=Output(ids.PROBA_CLASS, "style"),
                tile_queue=Output(ids.TILE_QUEUE, "data", allow_duplicate=True)),
    inputs=dict(model_version=Input(ids.MODEL_VERSION, "data"), mode=Input(ids.OVERLAY_MODE, "value"),
                proba_class=Input(ids.PROBA_CLASS, "value"), classes=Input(ids.CLASSES, "data")),
    state=dict(sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data"), view=State(ids.VIEW, "data")),
    prevent_initial_call=True,
)
def show_overlay(model_version, mode, proba_class, classes, sid, cur, view=None, *, services, trigger):
    """The overlay tiles already predicted for the plane on screen (the browser patches them in).

    Parameters
    ----------
    model_version : dict or None
        ``{"v", "rendered"}``; ``rendered`` means the overlay was already sent with the new model.
    mode : str
        ``segmentation``, ``probability``, ``uncertainty``, ``objects`` or ``none``.
    view : dict or None
        The visible region.
    trigger : str
        The id of the input that changed.

    Returns
    -------
    dict
        ``overlay``: ``{"key", "version", "tiles", "clear"}`` (``no_update`` when already rendered);
        ``proba_style``: the class chooser is shown only for the probability view;
        ``tile_queue``: tiles still to predict for this model (after a background extraction).
    """
    style = {} if mode == "probability" else {"display": "none"}
    rendered = trigger == ids.MODEL_VERSION and (model_version or {}).get("rendered")
    if not cur or not valid_session(sid) or rendered:
        return {"overlay": no_update, "proba_style": style, "tile_queue": no_update}
    sess = services.session(sid)
    k = key(cur["image"], cur.get("plane", 0))
    overlay, seg = current_payload(sess, services, k, mode, proba_class, classes, view)
    if seg is None:
        return {"overlay": overlay, "proba_style": style, "tile_queue": no_update}
    version = overlay["version"]
    queue = _queue(k, version, OT.plan(sess, seg, k, version, view)) if trigger == ids.MODEL_VERSION else no_update
    return {"overlay": overlay, "proba_style": style, "tile_queue": queue}


def current_payload(sess, services, k: str, mode: str, proba_class, classes, view=None):
    """``(overlay, seg)``: the OVERLAY store data of every tile already predicted for plane ``k`` in ``mode``
    (``clear`` without a model), and the model (None without one)."""
    seg = load_model(sess, services.models, services.feature_cache, k)
    if seg is None or sess.meta(split_key(k)[0]) is None:
        return {"key": k, "tiles": [], "clear": True}, None
    version = sess.model_info()["version"]
    tiles = OT.current_overlays(sess, seg, k, version, mode, proba_class, classes, view)
    return {"key": k, "version": version, "tiles": tiles, "clear": mode == "none"}, seg


@callback_spec(
    output=dict(overlay=Output(ids.OVERLAY, "data", allow_duplicate=True),
                tile_queue=Output(ids.TILE_QUEUE, "data", allow_duplicate=True),
                status=Output(ids.TILE_STATUS, "children"), status_style=Output(ids.TILE_STATUS, "style")),
    inputs=dict(tick=Input(ids.TILE_TIMER, "n_intervals")),
    state=dict(queue=State(ids.TILE_QUEUE, "data"), sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data"),
               view=State(ids.VIEW, "data"), mode=State(ids.OVERLAY_MODE, "value"),
               proba_class=State(ids.PROBA_CLASS, "value"), classes=State(ids.CLASSES, "data"),
               seen=State(ids.TILE_SEEN, "data")),
    prevent_initial_call=True,
)
def fill_tiles(tick, queue, sid, cur, view, mode, proba_class, classes, seen=None, *, services):
    """The rest of the image after the visible tiles: one short request per batch of tiles.

    A timer ticks while ``tile_queue`` holds work (a clientside callback switches
    it on and off).  The first tick starts a worker thread
    (:func:`~segapp.ui.overlay_tiles.ensure_worker`) that predicts the rest tile
    by tile, the visible ones first as the view is now; every tick returns, at
    once, the overlays of the predicted tiles the browser does not show yet
    (``seen``), so a tick's answer is never outrun by the next tick.  A newer
    model or another image ends the work.

    Returns
    -------
    dict
        ``overlay`` (new tiles), ``tile_queue`` (the next batch, or None when done),
        ``status`` / ``status_style``: the on-canvas "refining" note.
    """
    done_out = {"overlay": no_update, "tile_queue": None, "status": [], "status_style": {"display": "none"}}
    if not queue or not cur or not valid_session(sid):
        return done_out
    sess = services.session(sid)
    k = key(cur["image"], cur.get("plane", 0))
    info = sess.model_info()
    if queue.get("key") != k or info.get("version") != queue.get("version") or sess.meta(cur["image"]) is None:
        raise PreventUpdate  # a newer model or another plane: its own chain runs
    seg = load_model(sess, services.models, services.feature_cache, k)
    if seg is None:
        return done_out
    version = info["version"]
    todo = OT.plan(sess, seg, k, version, view)
    if todo:  # the work runs in a thread where the features are (here, or their worker): ticks stay quick
        fill_rest(services, sess, seg, k, version, view)
    shown = set((seen or {}).get("tiles", [])) if (seen or {}).get("key") == k and \
        (seen or {}).get("v") == version else set()
    tiles = OT.current_overlays(sess, seg, k, version, mode, proba_class, classes or sess.classes(), view, shown)
    total = max(queue.get("total") or 0, len(todo))
    status, style = tile_status(len(todo), total)
    nxt = _queue(k, version, todo)
    if nxt:
        nxt["total"] = total
    return {"overlay": {"key": k, "version": version, "tiles": tiles, "clear": False} if tiles else no_update,
            "tile_queue": nxt, "status": status, "status_style": style}


@callback_spec(
    output=dict(tile_queue=Output(ids.TILE_QUEUE, "data", allow_duplicate=True)),
    inputs=dict(view=Input(ids.VIEW, "data")),
    state=dict(sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data"), queue=State(ids.TILE_QUEUE, "data")),
    prevent_initial_call=True,
)
def view_changed(view, sid, cur, queue, *, services):
    """Zoom or pan: if newly visible tiles lack an overlay at the shown resolution, start a chain for them.

    Returns
    -------
    dict
        ``tile_queue``: a new chain (``no_update`` when one is running or nothing is missing).
    """
    if not cur or not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    k = key(cur["image"], cur.get("plane", 0))
    info = sess.model_info()
    if queue and queue.get("key") == k and queue.get("version") == info.get("version") and \
            time.time() - queue.get("t", 0) < 30:
        raise PreventUpdate  # a chain for this model is running; it re-plans for the new view itself
    seg = load_model(sess, services.models, services.feature_cache, k) if info else None
    if seg is None or sess.meta(cur["image"]) is None:
        raise PreventUpdate
    todo = OT.plan(sess, seg, k, info["version"], view)
    if not todo:
        raise PreventUpdate
    return {"tile_queue": _queue(k, info["version"], todo)}


def register(app, services):
    wire(app, services, build_canvas, save_strokes, edit_history, restyle_strokes, show_overlay, fill_tiles,
         view_changed)
    app.clientside_callback("function (q) { return !q; }", Output(ids.TILE_TIMER, "disabled"),
                            Input(ids.TILE_QUEUE, "data"), prevent_initial_call=True)
    app.clientside_callback(ClientsideFunction("segapp", "view"), Output(ids.VIEW, "data"),
                            Input(ids.GRAPH, "relayoutData"), Input(ids.CANVAS_INFO, "children"),
                            State(ids.GRAPH, "id"), prevent_initial_call=True)
    # the overlay reaches the figure only if that plane is still the one on screen (no race on image switches)
    app.clientside_callback(ClientsideFunction("segapp", "overlay"), Output(ids.GRAPH, "figure", allow_duplicate=True),
                            Output(ids.TILE_SEEN, "data"), Input(ids.OVERLAY, "data"), State(ids.GRAPH, "id"),
                            prevent_initial_call=True)

    app.clientside_callback(ClientsideFunction("segapp", "opacity"), Output(ids.GRAPH, "figure", allow_duplicate=True),
                            Input(ids.OPACITY, "value"), prevent_initial_call=True)
    app.clientside_callback(
        ClientsideFunction("segapp", "brush"),
        Output(ids.GRAPH, "figure", allow_duplicate=True), Output(ids.SCALE, "data"),
        Input(ids.GRAPH, "relayoutData"), Input(ids.ACTIVE_CLASS, "data"), Input(ids.STROKE_WIDTH, "value"),
        Input(ids.CLASSES, "data"), Input(ids.CANVAS_INFO, "children"), State(ids.GRAPH, "id"),
        prevent_initial_call=True)


def _class_of(shape: dict):
    try:
        return parse_shape_name(shape.get("name"))[0]
    except SegappError:
        return None

