"""Objects: post-processing, instances of one class, measurements table, summary, histogram, CSV."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html
from dash.dash_table.Format import Format, Scheme

from ... import postprocess
from ...errors import ConfigError, SegappError
from .. import ids
from ..figures import histogram
from ..session import key
from .common import notify

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


def register(app, services):
    @app.callback(
        Output(ids.OBJ_TABLE, "data"), Output(ids.OBJ_TABLE, "columns"), Output(ids.OBJ_SUMMARY, "children"),
        Output(ids.OBJ_HIST, "figure"), Output(ids.OVERLAY_MODE, "value"),
        Input(ids.MEASURE, "n_clicks"),
        State(ids.SESSION, "data"), State(ids.CURRENT, "data"), State(ids.CLASSES, "data"),
        State(ids.SMOOTH, "value"), State(ids.MIN_SIZE, "value"), State(ids.FILL_HOLES, "value"),
        State(ids.OBJ_CLASS, "value"), State(ids.SPLIT, "value"), State(ids.PIXEL_SIZE, "value"),
        State(ids.PIXEL_UNIT, "value"), prevent_initial_call=True,
    )
    def measure_objects(_n, sid, cur, classes, smooth, min_size, fill, obj_class, split, pixel_size, unit):
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
        cleaned = postprocess.clean_labels(result, smooth=int(smooth or 0), min_size=min_size, fill_holes=bool(fill))
        inst = postprocess.instances(cleaned == obj_class, split_touching=bool(split), min_size=min_size)
        rows = postprocess.measure(inst, intensity=sess.plane(cur["image"], cur.get("plane", 0)),
                                   pixel_size=pixel_size or None, unit=(unit or "µm").strip() or "µm")
        summary = postprocess.summarize(rows)
        sess.store.put_array(sess.sid, "objects", k, inst)
        sess.store.put_json(sess.sid, "state", "objects", {"key": k, "rows": rows})
        name = next((c["name"] for c in classes if c["id"] == obj_class), f"class {obj_class}")
        if not rows:
            notify(f"No {name} objects found (after removing objects smaller than {min_size} px).", "info")
        u = summary["unit"]
        fig = histogram([r["area"] for r in rows], f"area ({u}²)", f"{name}: object areas")
        return rows, table_columns(rows), summary_cards(summary, name), fig, "objects"

    @app.callback(Output(ids.DOWNLOAD, "data", allow_duplicate=True), Input(ids.OBJ_CSV, "n_clicks"),
                  State(ids.SESSION, "data"), State(ids.CURRENT, "data"), prevent_initial_call=True)
    def objects_csv(_n, sid, cur):
        sess = services.session(sid)
        doc = sess.store.get_json(sess.sid, "state", "objects")
        if not doc or not cur:
            raise SegappError("measure objects first")
        meta = sess.meta(doc["key"].rpartition("_")[0])
        stem = (meta["name"].rsplit(".", 1)[0] if meta else "image")
        return dcc.send_string(postprocess.to_csv(doc["rows"]), f"{stem}_objects.csv")

