"""Classes: add, rename, recolour, delete; choose the active class (click or keys 1–9)."""

from __future__ import annotations

from dash import ALL, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from ...annotations import parse_shape_name
from .. import ids
from ..layout import class_items
from ..session import next_class
from .common import bump, clicked, notify

MAX_CLASSES = 20


def register(app, services):
    @app.callback(Output(ids.CLASS_LIST, "children"), Output(ids.CLASS_NAME, "value"), Output(ids.CLASS_COLOR, "value"),
                  Output(ids.PROBA_CLASS, "options"), Output(ids.PROBA_CLASS, "value"),
                  Output(ids.OBJ_CLASS, "options"), Output(ids.OBJ_CLASS, "value"),
                  Input(ids.CLASSES, "data"), Input(ids.ACTIVE_CLASS, "data"),
                  State(ids.PROBA_CLASS, "value"), State(ids.OBJ_CLASS, "value"))
    def show_classes(classes, active, proba_class, obj_class):
        classes = classes or []
        cur = next((c for c in classes if c["id"] == active), None)
        opts = [{"label": c["name"], "value": c["id"]} for c in classes]
        valid = {c["id"] for c in classes}
        proba_class = proba_class if proba_class in valid else (classes[-1]["id"] if classes else None)
        obj_class = obj_class if obj_class in valid else (classes[-1]["id"] if classes else None)
        return (class_items(classes, active), cur["name"] if cur else "", cur["color"] if cur else "#ffffff",
                opts, proba_class, opts, obj_class)

    @app.callback(Output(ids.ACTIVE_CLASS, "data"), Input(ids.class_select(ALL), "n_clicks"),
                  State(ids.ACTIVE_CLASS, "data"), prevent_initial_call=True)
    def choose_class(_clicks, active):
        if not clicked() or not isinstance(ctx.triggered_id, dict):
            raise PreventUpdate
        cid = ctx.triggered_id["id"]
        return no_update if cid == active else cid

    @app.callback(Output(ids.CLASSES, "data", allow_duplicate=True),
                  Output(ids.ACTIVE_CLASS, "data", allow_duplicate=True),
                  Output(ids.ANNOT_VERSION, "data", allow_duplicate=True),
                  Input(ids.CLASS_ADD, "n_clicks"), Input(ids.CLASS_DELETE, "n_clicks"),
                  Input(ids.CLASS_NAME, "value"), Input(ids.CLASS_COLOR, "value"),
                  State(ids.ACTIVE_CLASS, "data"), State(ids.SESSION, "data"), State(ids.ANNOT_VERSION, "data"),
                  prevent_initial_call=True)
    def edit_classes(_add, _delete, name, color, active, sid, annot):
        sess = services.session(sid)
        classes = sess.classes()
        trig = ctx.triggered_id
        if trig == ids.CLASS_ADD:
            if len(classes) >= MAX_CLASSES:
                notify(f"At most {MAX_CLASSES} classes.", "warning")
                raise PreventUpdate
            new = next_class(classes)
            classes.append(new)
            sess.set_classes(classes)
            return classes, new["id"], no_update
        cur = next((c for c in classes if c["id"] == active), None)
        if cur is None:
            raise PreventUpdate
        if trig == ids.CLASS_DELETE:
            if len(classes) <= 2:
                notify("Keep at least two classes: a segmentation needs two.", "warning")
                raise PreventUpdate
            removed = sess.remove_class_shapes(cur["id"], parse_shape_name)
            classes = [c for c in classes if c["id"] != cur["id"]]
            sess.set_classes(classes)
            notify(f"Deleted class {cur['name']}" + (f" and its {removed} stroke(s)" if removed else "") + ".", "info")
            rev = {"rev": sess.annot_rev(), "key": None, "n": bump((annot or {}).get("n"))} if removed else no_update
            return classes, classes[0]["id"], rev
        if trig == ids.CLASS_NAME:
            name = (name or "").strip()[:40]
            if not name or name == cur["name"]:
                raise PreventUpdate
            cur["name"] = name
        elif trig == ids.CLASS_COLOR:
            if not color or color.lower() == cur["color"].lower():
                raise PreventUpdate
            cur["color"] = color
        sess.set_classes(classes)
        return classes, no_update, no_update
