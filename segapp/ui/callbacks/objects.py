"""Objects: post-processing, instances of one class, measurements table, summary, histogram, CSV."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html
from dash.dash_table.Format import Format, Scheme

from ... import postprocess
from ...errors import ConfigError, SegappError
from .. import ids
from ..figures import histogram
from ..session import key
from .common import callback_spec, wire

COLUMNS = {"label": "#", "area": "area", "perimeter": "perimeter", "equivalent_diameter": "diameter",
           "eccentricity": "eccentricity", "centroid_x": "x", "centroid_y": "y", "mean_intensity": "mean intensity"}


def table_columns(rows: list[dict]) -> list[dict]:
    present = [c for c in COLUMNS if rows and c in rows[0]]
    fmt = Format(precision=4, scheme=Scheme.decimal_or_exponent)
    whole = Format(precision=0, scheme=Scheme.fixed)
    return [{"name": COLUMNS[c], "id": c, "type": "numeric", "format": whole if c == "label" else fmt}
            for c in present]


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


@callback_spec(
    output=dict(rows=Output(ids.OBJ_TABLE, "data"), columns=Output(ids.OBJ_TABLE, "columns"),
                summary=Output(ids.OBJ_SUMMARY, "children"), histogram=Output(ids.OBJ_HIST, "figure"),
                overlay_mode=Output(ids.OVERLAY_MODE, "value")),
    inputs=dict(n_clicks=Input(ids.MEASURE, "n_clicks")),
    state=dict(sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data"), classes=State(ids.CLASSES, "data"),
               smooth=State(ids.SMOOTH, "value"), min_size=State(ids.MIN_SIZE, "value"),
               fill_holes=State(ids.FILL_HOLES, "value"), obj_class=State(ids.OBJ_CLASS, "value"),
               split=State(ids.SPLIT, "value"), pixel_size=State(ids.PIXEL_SIZE, "value"),
               unit=State(ids.PIXEL_UNIT, "value")),
    prevent_initial_call=True,
)
def measure_objects(n_clicks, sid, cur, classes, smooth, min_size, fill_holes, obj_class, split, pixel_size, unit,
                    *, services, notify):
    """Clean the current plane's segmentation, find the objects of one class and measure them.

    Parameters
    ----------
    n_clicks : int
        Clicks of Measure.
    sid, cur, classes
        Session, the plane on screen, the classes (for the class name).
    smooth, min_size, fill_holes
        Post-processing: smoothing radius, smallest object (px), fill holes.
    obj_class : int
        The class whose objects are measured.
    split : bool
        Split touching objects.
    pixel_size, unit
        Physical pixel size and its unit (areas in pixels without a size).

    Returns
    -------
    dict
        ``rows`` and ``columns`` of the table, ``summary`` cards, area ``histogram`` and
        ``overlay_mode`` (switched to ``objects``). User errors raise SegappError.
    """
    if not cur:
        raise SegappError("add an image first")
    sess = services.session(sid)
    k = key(cur["image"], cur.get("plane", 0))
    result = sess.result(k)
    if result is None:
        raise SegappError("nothing to measure yet: paint two classes (or load a model) to segment this image")
    if obj_class is None:
        raise ConfigError("choose the class whose objects to measure")
    min_size = int(min_size or 0)
    if min_size < 0:
        raise ConfigError("minimum object size must not be negative")
    cleaned = postprocess.clean_labels(result, smooth=int(smooth or 0), min_size=min_size,
                                       fill_holes=bool(fill_holes))
    inst = postprocess.instances(cleaned == obj_class, split_touching=bool(split), min_size=min_size)
    rows = postprocess.measure(inst, intensity=sess.plane(cur["image"], cur.get("plane", 0)),
                               pixel_size=pixel_size or None, unit=(unit or "µm").strip() or "µm")
    summary = postprocess.summarize(rows)
    sess.store.put_array(sess.sid, "objects", k, inst)
    sess.store.put_json(sess.sid, "state", "objects", {"key": k, "rows": rows})
    name = next((c["name"] for c in classes if c["id"] == obj_class), f"class {obj_class}")
    if not rows:
        notify(f"No {name} objects found (after removing objects smaller than {min_size} px).", "info")
    fig = histogram([r["area"] for r in rows], f"area ({summary['unit']}²)", f"{name}: object areas")
    return {"rows": rows, "columns": table_columns(rows), "summary": summary_cards(summary, name),
            "histogram": fig, "overlay_mode": "objects"}


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
    wire(app, services, measure_objects, objects_csv)
