"""The canvas: build the figure for an image, save strokes, undo/redo, overlays (with Patch)."""

from __future__ import annotations

from dash import ClientsideFunction, Input, Output, Patch, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from ... import io
from ...annotations import apply_relayout, parse_shape_name, shapes_to_labels
from ...errors import SegappError
from ...segmenter import uncertainty
from .. import ids
from ..figures import base_image_uri, canvas_figure, empty_figure, style_shapes
from ..render import heatmap_png_uri, instances_png_uri, labels_png_uri
from ..session import key
from .common import valid_session

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


def register(app, services):
    @app.callback(
        Output(ids.GRAPH, "figure"), Output(ids.EMPTY_HINT, "style"), Output(ids.CANVAS_INFO, "children"),
        Output(ids.TRAIN_REQUEST, "data", allow_duplicate=True),
        Input(ids.CURRENT, "data"),
        State(ids.SESSION, "data"), State(ids.CLASSES, "data"), State(ids.ACTIVE_CLASS, "data"),
        State(ids.STROKE_WIDTH, "value"), State(ids.OVERLAY_MODE, "value"), State(ids.PROBA_CLASS, "value"),
        State(ids.OPACITY, "value"), State(ids.SHOW_ANNOT, "value"), State(ids.SCALE, "data"),
        prevent_initial_call=True,
    )
    def build_canvas(cur, sid, classes, active, width, mode, proba_class, opacity, show, scale):
        """A full figure, sent once per image plane; everything later is a Patch."""
        if not valid_session(sid):
            raise PreventUpdate
        sess = services.session(sid)
        meta = sess.meta(cur["image"]) if cur else None
        if meta is None:
            return empty_figure(), SHOWN, [], no_update
        z = int(cur.get("plane", 0))
        k = key(meta["id"], z)
        classes = classes or sess.classes()
        fig = canvas_figure(display_uri(sess, meta["id"], z), meta["shape"][1:3], shapes=sess.shapes(k),
                            classes=classes, active=active, width=width, revision=k,
                            overlay_uri=overlay_uri(sess, k, mode, proba_class, classes), opacity=opacity,
                            show_shapes=show, scale=scale)
        info = sess.model_info()
        need = bool(info) and sess.result_version(k) != info.get("version")
        return fig, HIDDEN, canvas_info(meta, z), ({"reason": "predict", "key": k} if need else no_update)

    @app.callback(
        Output(ids.ANNOT_VERSION, "data"), Output(ids.GRAPH, "figure", allow_duplicate=True),
        Input(ids.GRAPH, "relayoutData"),
        State(ids.SESSION, "data"), State(ids.CURRENT, "data"), State(ids.CLASSES, "data"),
        State(ids.SHOW_ANNOT, "value"), prevent_initial_call=True,
    )
    def save_strokes(relayout, sid, cur, classes, show):
        """A drawn, edited or erased shape: store it (with its rasterised labels) for this plane."""
        if not relayout or not cur or not any(k.startswith("shapes") for k in relayout):
            raise PreventUpdate
        sess = services.session(sid)
        k = key(cur["image"], cur.get("plane", 0))
        meta = sess.meta(cur["image"])
        if meta is None:
            raise PreventUpdate
        shapes = apply_relayout(sess.shapes(k), relayout)
        shapes = [s for s in shapes if _has_class(s)]
        sess.set_shapes(k, shapes, shapes_to_labels(shapes, meta["shape"][1:3]))
        patch = Patch()
        patch["layout"]["shapes"] = style_shapes(shapes, classes, show)
        return {"rev": sess.annot_rev(), "key": k}, patch

    @app.callback(
        Output(ids.ANNOT_VERSION, "data", allow_duplicate=True), Output(ids.GRAPH, "figure", allow_duplicate=True),
        Input(ids.UNDO, "n_clicks"), Input(ids.REDO, "n_clicks"), Input(ids.CLEAR_CLASS, "n_clicks"),
        Input(ids.CLEAR_ALL, "n_clicks"),
        State(ids.SESSION, "data"), State(ids.CURRENT, "data"), State(ids.CLASSES, "data"),
        State(ids.ACTIVE_CLASS, "data"), State(ids.SHOW_ANNOT, "value"), prevent_initial_call=True,
    )
    def edit_history(_u, _r, _cc, _ca, sid, cur, classes, active, show):
        if not cur:
            raise PreventUpdate
        sess = services.session(sid)
        k = key(cur["image"], cur.get("plane", 0))
        before = sess.shapes(k)
        if ctx.triggered_id == ids.UNDO:
            shapes = sess.undo(k)
        elif ctx.triggered_id == ids.REDO:
            shapes = sess.redo(k)
        else:
            keep = [] if ctx.triggered_id == ids.CLEAR_ALL else [s for s in before if _class_of(s) != active]
            sess.set_shapes(k, keep)
            shapes = keep
        if shapes == before:
            raise PreventUpdate
        patch = Patch()
        patch["layout"]["shapes"] = style_shapes(shapes, classes, show)
        return {"rev": sess.annot_rev(), "key": k}, patch

    @app.callback(Output(ids.GRAPH, "figure", allow_duplicate=True), Input(ids.SHOW_ANNOT, "value"),
                  Input(ids.CLASSES, "data"), State(ids.SESSION, "data"), State(ids.CURRENT, "data"),
                  prevent_initial_call=True)
    def restyle_strokes(show, classes, sid, cur):
        """Show/hide strokes, or recolour them after a class colour changed."""
        if not cur or not valid_session(sid):
            raise PreventUpdate
        sess = services.session(sid)
        patch = Patch()
        patch["layout"]["shapes"] = style_shapes(sess.shapes(key(cur["image"], cur.get("plane", 0))), classes, show)
        return patch

    @app.callback(Output(ids.OVERLAY, "data"), Output(ids.PROBA_CLASS, "style"),
                  Input(ids.MODEL_VERSION, "data"), Input(ids.OVERLAY_MODE, "value"), Input(ids.PROBA_CLASS, "value"),
                  Input(ids.CLASSES, "data"),
                  State(ids.SESSION, "data"), State(ids.CURRENT, "data"), prevent_initial_call=True)
    def show_overlay(mv, mode, proba_class, classes, sid, cur):
        """The overlay PNG for the plane on screen (the browser patches it into the figure)."""
        style = {} if mode == "probability" else {"display": "none"}
        if not cur or not valid_session(sid) or (ctx.triggered_id == ids.MODEL_VERSION and (mv or {}).get("rendered")):
            return no_update, style
        sess = services.session(sid)
        k = key(cur["image"], cur.get("plane", 0))
        return {"key": k, "uri": overlay_uri(sess, k, mode, proba_class, classes)}, style

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


def _has_class(shape: dict) -> bool:
    return _class_of(shape) is not None
