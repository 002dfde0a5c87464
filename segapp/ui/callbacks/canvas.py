"""The canvas: build the figure for an image, save strokes, undo/redo, overlays (with Patch)."""

from __future__ import annotations

from dash import ClientsideFunction, Input, Output, Patch, State, html, no_update
from dash.exceptions import PreventUpdate

from ... import io
from ...annotations import apply_relayout, count_points, parse_shape_name, shapes_to_labels, split_valid
from ...errors import AnnotationError, SegappError
from ...limits import MAX_POINTS
from ...segmenter import uncertainty
from .. import ids
from ..figures import base_image_uri, canvas_figure, empty_figure, style_shapes
from ..render import heatmap_png_uri, instances_png_uri, labels_png_uri
from ..session import key
from .common import callback_spec, valid_session, wire

HIDDEN, SHOWN = {"display": "none"}, {}


def display_uri(sess, iid: str, z: int) -> str:
    """PNG data URI of a plane as shown (made once per plane, then read from the store)."""
    k = key(iid, z)
    cached = sess.display(k)
    if cached:
        return cached.decode()
    uri = base_image_uri(io.to_display_rgb(sess.plane(iid, z)))
    sess.put_display(k, uri.encode())
    return uri


def overlay_uri(sess, k: str, mode: str, proba_class, classes: list[dict]) -> str | None:
    """The overlay to show for plane ``k`` in ``mode``, or None (nothing predicted / overlay off)."""
    if mode == "none":
        return None
    if mode == "objects":
        inst = sess.store.get_array(sess.sid, "objects", k)
        return None if inst is None else instances_png_uri(inst)
    if mode == "segmentation":
        labels = sess.result(k)
        return None if labels is None else labels_png_uri(labels, {c["id"]: c["color"] for c in classes})
    proba = sess.proba(k)
    if proba is None:
        return None
    if mode == "uncertainty":
        return heatmap_png_uri(uncertainty(proba), "inferno")
    order = sess.result_classes(k)
    cid = proba_class if proba_class in order else (order[-1] if order else None)
    return None if cid is None else heatmap_png_uri(proba[..., order.index(cid)], "viridis")


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
    fig = canvas_figure(display_uri(sess, meta["id"], z), meta["shape"][1:3], shapes=sess.shapes(k),
                        classes=classes, active=active, width=width, revision=k,
                        overlay_uri=overlay_uri(sess, k, mode, proba_class, classes), opacity=opacity,
                        show_shapes=show, scale=scale)
    info = sess.model_info()
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
    """A drawn, edited or erased shape: store it (with its rasterised labels) for this plane.

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
    if not relayout or not cur or not any(isinstance(k, str) and k.startswith("shapes") for k in relayout):
        raise PreventUpdate
    sess = services.session(sid)
    k = key(cur["image"], cur.get("plane", 0))
    meta = sess.meta(cur["image"])
    if meta is None:
        raise PreventUpdate
    old = sess.shapes(k)
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
    else:
        keep = [] if trigger == ids.CLEAR_ALL else [s for s in before if _class_of(s) != active]
        sess.set_shapes(k, keep)
        shapes = keep
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
    output=dict(overlay=Output(ids.OVERLAY, "data"), proba_style=Output(ids.PROBA_CLASS, "style")),
    inputs=dict(model_version=Input(ids.MODEL_VERSION, "data"), mode=Input(ids.OVERLAY_MODE, "value"),
                proba_class=Input(ids.PROBA_CLASS, "value"), classes=Input(ids.CLASSES, "data")),
    state=dict(sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data")),
    prevent_initial_call=True,
)
def show_overlay(model_version, mode, proba_class, classes, sid, cur, *, services, trigger):
    """The overlay PNG for the plane on screen (the browser patches it into the figure).

    Parameters
    ----------
    model_version : dict or None
        ``{"v", "rendered"}``; ``rendered`` means the overlay was already sent with the new model.
    mode : str
        ``segmentation``, ``probability``, ``uncertainty``, ``objects`` or ``none``.
    trigger : str
        The id of the input that changed.

    Returns
    -------
    dict
        ``overlay``: ``{"key", "uri"}`` for the plane (``no_update`` when already rendered);
        ``proba_style``: the class chooser is shown only for the probability view.
    """
    style = {} if mode == "probability" else {"display": "none"}
    rendered = trigger == ids.MODEL_VERSION and (model_version or {}).get("rendered")
    if not cur or not valid_session(sid) or rendered:
        return {"overlay": no_update, "proba_style": style}
    sess = services.session(sid)
    k = key(cur["image"], cur.get("plane", 0))
    return {"overlay": {"key": k, "uri": overlay_uri(sess, k, mode, proba_class, classes)}, "proba_style": style}


def register(app, services):
    wire(app, services, build_canvas, save_strokes, edit_history, restyle_strokes, show_overlay)
    # the overlay reaches the figure only if that plane is still the one on screen (no race on image switches)
    app.clientside_callback(ClientsideFunction("segapp", "overlay"), Output(ids.GRAPH, "figure", allow_duplicate=True),
                            Input(ids.OVERLAY, "data"), State(ids.GRAPH, "id"), prevent_initial_call=True)

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

