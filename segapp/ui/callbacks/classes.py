"""Classes: add, rename, recolour, delete; choose the active class (click or keys 1–9)."""

from __future__ import annotations

import re

from dash import ALL, Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from ...annotations import parse_shape_name
from ...errors import SegappError
from .. import ids
from ..layout import class_items
from ..session import next_class
from .common import bump, callback_spec, wire

MAX_CLASSES = 20


@callback_spec(
    output=dict(class_list=Output(ids.CLASS_LIST, "children"), name=Output(ids.CLASS_NAME, "value"),
                color=Output(ids.CLASS_COLOR, "value"), proba_options=Output(ids.PROBA_CLASS, "options"),
                proba_class=Output(ids.PROBA_CLASS, "value"), obj_options=Output(ids.OBJ_CLASS, "options"),
                obj_class=Output(ids.OBJ_CLASS, "value")),
    inputs=dict(classes=Input(ids.CLASSES, "data"), active=Input(ids.ACTIVE_CLASS, "data")),
    state=dict(proba_class=State(ids.PROBA_CLASS, "value"), obj_class=State(ids.OBJ_CLASS, "value")),
)
def show_classes(classes, active, proba_class, obj_class):
    """The class list, the active class's name and colour, and the class choosers that depend on them.

    Parameters
    ----------
    classes : list of dict or None
        ``[{"id", "name", "color"}]``.
    active : int
        The class being painted (0: eraser).
    proba_class, obj_class : int or None
        The classes chosen for the probability view and for object measurements
        (kept while they exist, else the last class).

    Returns
    -------
    dict
        ``class_list``, ``name``, ``color``, ``proba_options``, ``proba_class``, ``obj_options``, ``obj_class``.

    Examples
    --------
    >>> out = show_classes([{"id": 1, "name": "bg", "color": "#000000"}], 1, 7, None)
    >>> out["name"], out["proba_class"], out["obj_options"]
    ('bg', 1, [{'label': 'bg', 'value': 1}])
    """
    classes = classes or []
    cur = next((c for c in classes if c["id"] == active), None)
    opts = [{"label": c["name"], "value": c["id"]} for c in classes]
    valid = {c["id"] for c in classes}
    fallback = classes[-1]["id"] if classes else None
    return {"class_list": class_items(classes, active), "name": cur["name"] if cur else "",
            "color": cur["color"] if cur else "#ffffff", "proba_options": opts,
            "proba_class": proba_class if proba_class in valid else fallback, "obj_options": opts,
            "obj_class": obj_class if obj_class in valid else fallback}


@callback_spec(output=dict(active=Output(ids.ACTIVE_CLASS, "data")),
               inputs=dict(clicks=Input(ids.class_select(ALL), "n_clicks")),
               state=dict(active=State(ids.ACTIVE_CLASS, "data")), prevent_initial_call=True)
def choose_class(clicks, active, *, trigger, clicked):
    """Make the clicked class the active one (``trigger``: ``{"type": "class-select", "id": class id}``).

    Examples
    --------
    >>> choose_class([0, 1], 1, trigger={"type": "class-select", "id": 2}, clicked=True)
    {'active': 2}
    """
    if not clicked or not isinstance(trigger, dict):
        raise PreventUpdate
    cid = trigger["id"]
    return {"active": no_update if cid == active else cid}


@callback_spec(
    output=dict(classes=Output(ids.CLASSES, "data", allow_duplicate=True),
                active=Output(ids.ACTIVE_CLASS, "data", allow_duplicate=True),
                annot_version=Output(ids.ANNOT_VERSION, "data", allow_duplicate=True)),
    inputs=dict(add=Input(ids.CLASS_ADD, "n_clicks"), delete=Input(ids.CLASS_DELETE, "n_clicks"),
                name=Input(ids.CLASS_NAME, "value"), color=Input(ids.CLASS_COLOR, "value")),
    state=dict(active=State(ids.ACTIVE_CLASS, "data"), sid=State(ids.SESSION, "data"),
               annot_version=State(ids.ANNOT_VERSION, "data")),
    prevent_initial_call=True,
)
def edit_classes(add, delete, name, color, active, sid, annot_version, *, services, trigger, notify):
    """Add a class, delete the active one (with its strokes), rename or recolour it.

    Parameters
    ----------
    add, delete : int
        Click counts of the Add and Delete buttons.
    name, color : str
        The active class's name and colour fields.
    active : int
    sid : str
    annot_version : dict or None
        Bumped when deleting a class removed strokes (so the model retrains).
    trigger : str
        Which of the four inputs changed.

    Returns
    -------
    dict
        ``classes`` (the new list), ``active`` (the class now active) and ``annot_version``.
    """
    sess = services.session(sid)
    classes = sess.classes()
    if trigger == ids.CLASS_ADD:
        if len(classes) >= MAX_CLASSES:
            notify(f"At most {MAX_CLASSES} classes.", "warning")
            raise PreventUpdate
        new = next_class(classes)
        classes.append(new)
        sess.set_classes(classes)
        return {"classes": classes, "active": new["id"], "annot_version": no_update}
    cur = next((c for c in classes if c["id"] == active), None)
    if cur is None:
        raise PreventUpdate
    if trigger == ids.CLASS_DELETE:
        if len(classes) <= 2:
            notify("Keep at least two classes: a segmentation needs two.", "warning")
            raise PreventUpdate
        removed = sess.remove_class_shapes(cur["id"], parse_shape_name)
        classes = [c for c in classes if c["id"] != cur["id"]]
        sess.set_classes(classes)
        notify(f"Deleted class {cur['name']}" + (f" and its {removed} stroke(s)" if removed else "") + ".", "info")
        rev = ({"rev": sess.annot_rev(), "key": None, "n": bump((annot_version or {}).get("n"))}
               if removed else no_update)
        return {"classes": classes, "active": classes[0]["id"], "annot_version": rev}
    if trigger == ids.CLASS_NAME:
        name = re.sub(r"[\x00-\x1f\x7f]", "", name if isinstance(name, str) else "").strip()[:40]
        if not name or name == cur["name"]:
            raise PreventUpdate
        cur["name"] = name
    elif trigger == ids.CLASS_COLOR:
        if not color or color.lower() == cur["color"].lower():
            raise PreventUpdate
        if not isinstance(color, str) or not re.match(r"^#[0-9a-fA-F]{6}$", color):
            raise SegappError(f"a class colour must look like #1f77b4, got {str(color)[:20]!r}")
        cur["color"] = color.lower()
    sess.set_classes(classes)
    return {"classes": classes, "active": no_update, "annot_version": no_update}


def register(app, services):
    wire(app, services, show_classes, choose_class, edit_classes)
