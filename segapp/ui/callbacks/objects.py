"""Objects: post-processing, instances of one class, measurements table, summary, histogram, CSV."""

from __future__ import annotations

import time

from dash import Input, Output, State, dcc, html, no_update
from dash.dash_table.Format import Format, Scheme
from dash.exceptions import PreventUpdate

from ... import postprocess
from ...errors import ConfigError, SegappError
from .. import ids
from ..figures import histogram
from ..session import key, split_key
from .canvas import current_payload
from .common import banner_progress, callback_spec, canvas_job, valid_session, wire

MEASURING = "Measuring objects"  # the banner label

COLUMNS = {"label": "#", "area": "area", "perimeter": "perimeter", "equivalent_diameter": "diameter",
           "eccentricity": "eccentricity", "centroid_x": "x", "centroid_y": "y", "mean_intensity": "mean intensity"}


DECIMALS = {"eccentricity": 3}  # fixed decimals of a column with fractional values (default 2)


def table_columns(rows: list[dict]) -> list[dict]:
    """Table columns with ONE fixed format per column: whole numbers when every value is whole.

    Examples
    --------
    >>> cols = table_columns([{"label": 1, "area": 403.0, "eccentricity": 0.5}, {"label": 2, "area": 2003.0,
    ...                                                                      "eccentricity": 0.25}])
    >>> [(c["id"], c["format"]["specifier"]) for c in cols]
    [('label', '.0f'), ('area', '.0f'), ('eccentricity', '.3f')]
    """
    out = []
    for c in (c for c in COLUMNS if rows and c in rows[0]):
        whole = all(float(r[c]).is_integer() for r in rows if r.get(c) is not None)
        fmt = Format(precision=0 if whole else DECIMALS.get(c, 2), scheme=Scheme.fixed).to_plotly_json()
        out.append({"name": COLUMNS[c], "id": c, "type": "numeric", "format": fmt})
    return out


def summary_cards(summary: dict, class_name: str) -> list:
    unit = summary["unit"]
    area, diam = summary["area"], summary["equivalent_diameter"]

    def card(value, label):
        return html.Div([html.Div(value, className="stat-value"), html.Div(label, className="stat-label")],
                        className="stat")

    def num(x):
        return "–" if x is None else f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return [
        html.Div(postprocess.summary_text(summary, noun=f"{class_name} object"), className="small mb-2"),
        html.Div([card(f"{summary['count']}", "objects"), card(num(area["mean"]), f"mean area ({unit}²)"),
                  card(num(area["median"]), f"median area ({unit}²)"),
                  card("–" if diam["cv"] is None else f"{100 * diam['cv']:.0f}%", "CV of diameter"),
                  card(f"{num(area['min'])}–{num(area['max'])}", f"area range ({unit}²)")], className="stats"),
    ]


SETTINGS = ("smooth", "min_size", "fill_holes", "obj_class", "split", "pixel_size", "unit")


@callback_spec(
    output=dict(request=Output(ids.MEASURE_REQUEST, "data")),
    inputs=dict(n_clicks=Input(ids.MEASURE, "n_clicks"), model_version=Input(ids.MODEL_VERSION, "data"),
                smooth=Input(ids.SMOOTH, "value"), min_size=Input(ids.MIN_SIZE, "value"),
                fill_holes=Input(ids.FILL_HOLES, "value"), obj_class=Input(ids.OBJ_CLASS, "value"),
                split=Input(ids.SPLIT, "value"), pixel_size=Input(ids.PIXEL_SIZE, "value"),
                unit=Input(ids.PIXEL_UNIT, "value")),
    state=dict(sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data"), mode=State(ids.OVERLAY_MODE, "value")),
    prevent_initial_call=True,
)
def request_measure(n_clicks, model_version, smooth, min_size, fill_holes, obj_class, split, pixel_size, unit,
                    sid, cur, mode, *, services, trigger):
    """Measure on a click; re-measure live when an object setting changes for a plane that was measured
    before or whose objects are on screen, and when a new model arrives while the objects are on screen.

    Parameters
    ----------
    n_clicks : int
        Clicks of Measure.
    model_version : dict or None
        A new model or result (re-measures only while ``mode`` is ``"objects"``).
    smooth, min_size, fill_holes, obj_class, split, pixel_size, unit
        The object settings (see :func:`measure_objects`).
    sid, cur, mode
        Session, the plane on screen, the overlay mode.
    trigger : str
        Which input changed.

    Returns
    -------
    dict
        ``request``: ``{"key", <settings>, "t"}`` for :func:`measure_objects` (PreventUpdate when a
        setting changed but nothing was measured here yet). User errors (no result, bad settings)
        raise SegappError on a click, and on a live change only for a bad setting.
    """
    clicked = trigger == ids.MEASURE
    if not cur or not valid_session(sid):
        if clicked:
            raise SegappError("add an image first")
        raise PreventUpdate
    sess = services.session(sid)
    k = key(cur["image"], cur.get("plane", 0))
    if not clicked:  # live: the objects on screen, or measured here before, follow settings and new models
        measured = (sess.store.get_json(sid, "state", "objects") or {}).get("key") == k
        if trigger == ids.MODEL_VERSION and mode != "objects" or not (measured or mode == "objects"):
            raise PreventUpdate
    if sess.result(k) is None:
        if not clicked:
            raise PreventUpdate
        raise SegappError("nothing to measure yet: paint two classes (or load a model) to segment this image")
    if obj_class is None:
        raise ConfigError("choose the class whose objects to measure")
    if min_size is not None and float(min_size) < 0:
        raise ConfigError("minimum object size must not be negative")
    if pixel_size is not None and float(pixel_size) < 0:
        raise ConfigError("pixel size must be positive (or empty for pixels)")
    values = dict(smooth=int(smooth or 0), min_size=int(min_size or 0), fill_holes=bool(fill_holes),
                  obj_class=int(obj_class), split=bool(split), pixel_size=float(pixel_size) if pixel_size else None,
                  unit=(unit or "µm").strip() or "µm")
    return {"request": {"key": k, **values, "t": time.time()}}


@callback_spec(
    output=dict(rows=Output(ids.OBJ_TABLE, "data"), columns=Output(ids.OBJ_TABLE, "columns"),
                summary=Output(ids.OBJ_SUMMARY, "children"), histogram=Output(ids.OBJ_HIST, "figure"),
                overlay_mode=Output(ids.OVERLAY_MODE, "value"),
                overlay=Output(ids.OVERLAY, "data", allow_duplicate=True)),
    inputs=dict(request=Input(ids.MEASURE_REQUEST, "data")),
    state=dict(sid=State(ids.SESSION, "data"), classes=State(ids.CLASSES, "data"),
               mode=State(ids.OVERLAY_MODE, "value")),
    **canvas_job(MEASURING, disable=(ids.MEASURE,), interval=250),
)
def measure_objects(set_progress, request, sid, classes, mode, *, services, notify):
    """Clean a plane's segmentation, find the objects of one class and measure them (background job).

    Parameters
    ----------
    set_progress : callable
        Dash's progress setter (the canvas banner).
    request : dict
        From :func:`request_measure`: ``key`` (the plane) and the settings ``smooth``,
        ``min_size``, ``fill_holes`` (post-processing), ``obj_class`` (whose objects),
        ``split`` (split touching objects), ``pixel_size`` and ``unit`` (areas in pixels without a size).
    sid, classes, mode
        Session, the classes (for the class name; the server's when None), the overlay mode.

    Returns
    -------
    dict
        ``rows`` and ``columns`` of the table, ``summary`` cards, area ``histogram``,
        ``overlay_mode`` (switched to ``objects``) and ``overlay`` (the objects, when the mode
        already was ``objects``).
    """
    if not request or not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    k, r = request["key"], request
    result = sess.result(k)
    if result is None:
        raise PreventUpdate
    report = banner_progress(set_progress, MEASURING)
    report(0.05, "cleaning the segmentation")
    cleaned = postprocess.clean_labels(result, smooth=r["smooth"], min_size=r["min_size"], fill_holes=r["fill_holes"])
    report(0.35, "finding objects")
    inst = postprocess.instances(cleaned == r["obj_class"], split_touching=r["split"], min_size=r["min_size"])
    report(0.7, "measuring")
    iid, z = split_key(k)
    rows = postprocess.measure(inst, intensity=sess.plane(iid, z), pixel_size=r["pixel_size"], unit=r["unit"])
    summary = postprocess.summarize(rows)
    sess.store.put_array(sess.sid, "objects", k, inst)
    sess.store.put_json(sess.sid, "state", "objects", {"key": k, "rows": rows})
    name = next((c["name"] for c in (classes or sess.classes()) if c["id"] == r["obj_class"]),
                f"class {r['obj_class']}")
    if not rows:
        notify(f"No {name} objects found (after removing objects smaller than {r['min_size']} px).", "info")
    fig = histogram([row["area"] for row in rows], f"area ({summary['unit']}²)", f"{name}: object areas")
    overlay = current_payload(sess, services, k, "objects", None, classes, None)[0] if mode == "objects" else no_update
    return {"rows": rows, "columns": table_columns(rows), "summary": summary_cards(summary, name),
            "histogram": fig, "overlay_mode": "objects" if mode != "objects" else no_update, "overlay": overlay}


@callback_spec(output=dict(download=Output(ids.DOWNLOAD, "data", allow_duplicate=True)),
               inputs=dict(n_clicks=Input(ids.OBJ_CSV, "n_clicks")),
               state=dict(sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data")), prevent_initial_call=True)
def objects_csv(n_clicks, sid, cur, *, services):
    """The last measurements as ``<image>_objects.csv``.

    Returns
    -------
    dict
        ``download``: a ``dcc.Download`` payload (SegappError before anything was measured).
    """
    sess = services.session(sid)
    doc = sess.store.get_json(sess.sid, "state", "objects")
    if not doc or not cur:
        raise SegappError("measure objects first")
    meta = sess.meta(doc["key"].rpartition("_")[0])
    stem = (meta["name"].rsplit(".", 1)[0] if meta else "image")
    return {"download": dcc.send_string(postprocess.to_csv(doc["rows"]), f"{stem}_objects.csv")}


def register(app, services):
    wire(app, services, request_measure, measure_objects, objects_csv)
