"""Downloads (segmentation, probabilities, annotations, model, ZIP), model upload, evaluation."""

from __future__ import annotations

import csv
import io as _io
import time
import zipfile

import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from ... import io, metrics
from ...errors import ModelFileError, SegappError
from ...segmenter import Segmenter
from .. import ids
from ..pipeline import labels_for, load_model
from ..render import uri_bytes
from ..session import key
from .batch import all_keys
from .common import notify, valid_session


def _stem(meta: dict | None, z: int = 0) -> str:
    stem = (meta["name"].rsplit(".", 1)[0] if meta else "image") or "image"
    return stem + (f"_z{z}" if meta and meta["shape"][0] > 1 else "")


def _bytes(write, *args, **kw) -> bytes:
    buf = _io.BytesIO()
    write(buf, *args, **kw)
    return buf.getvalue()


def model_file(sess, services) -> tuple[bytes, str]:
    """The session's model as a .segapp file, with the class names and colours as they are now."""
    seg = load_model(sess, services.models, services.feature_cache)
    if seg is None:
        raise SegappError("no model yet: paint two classes and train first")
    seg.class_meta = {c["id"]: dict(c) for c in sess.classes() if c["id"] > 0}
    return seg.save(), f"segapp-model-v{sess.model_info()['version']}.segapp"


def results_zip(sess) -> bytes:
    """Every stored segmentation as ``<stem>.png`` (class ids) plus ``classes.csv``."""
    buf = _io.BytesIO()
    n = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for meta, z, k in all_keys(sess):
            labels = sess.result(k)
            if labels is not None:
                zf.writestr(f"{_stem(meta, z)}.png", _bytes(io.write_labels, labels, fmt="png"))
                n += 1
        out = _io.StringIO()
        w = csv.writer(out)
        w.writerow(["id", "name", "color"])
        for c in sess.classes():
            w.writerow([c["id"], c["name"], c["color"]])
        zf.writestr("classes.csv", out.getvalue())
    if n == 0:
        raise SegappError("no results yet: segment an image or use 'Apply model to all images'")
    return buf.getvalue()


def register(app, services):
    @app.callback(
        Output(ids.DOWNLOAD, "data"),
        Input(ids.DL_SEG_PNG, "n_clicks"), Input(ids.DL_SEG_TIFF, "n_clicks"), Input(ids.DL_PROBA, "n_clicks"),
        Input(ids.DL_ANNOT, "n_clicks"), Input(ids.DL_MODEL, "n_clicks"), Input(ids.DL_ZIP, "n_clicks"),
        State(ids.SESSION, "data"), State(ids.CURRENT, "data"), prevent_initial_call=True,
    )
    def download(*args):
        sid, cur = args[-2], args[-1]
        sess = services.session(sid)
        which = ctx.triggered_id
        if which == ids.DL_MODEL:
            data, name = model_file(sess, services)
            return dcc.send_bytes(data, name)
        if which == ids.DL_ZIP:
            return dcc.send_bytes(results_zip(sess), "segapp-results.zip")
        if not cur:
            raise SegappError("add an image first")
        z = cur.get("plane", 0)
        k, stem = key(cur["image"], z), _stem(sess.meta(cur["image"]), z)
        if which == ids.DL_ANNOT:
            if not sess.shapes(k):
                raise SegappError("nothing painted on this image yet")
            return dcc.send_bytes(_bytes(io.write_labels, labels_for(sess, k), fmt="png"), f"{stem}_annotations.png")
        if which == ids.DL_PROBA:
            proba = sess.proba(k)
            if proba is None:
                raise SegappError("no segmentation of this image yet")
            return dcc.send_bytes(_bytes(io.write_proba_tiff, proba), f"{stem}_proba.tif")
        labels = sess.result(k)
        if labels is None:
            raise SegappError("no segmentation of this image yet")
        fmt = "png" if which == ids.DL_SEG_PNG else "tiff"
        suffix = "png" if fmt == "png" else "tif"
        return dcc.send_bytes(_bytes(io.write_labels, labels, fmt=fmt), f"{stem}_segmentation.{suffix}")

    @app.callback(
        Output(ids.CLASSES, "data", allow_duplicate=True), Output(ids.TRAIN_REQUEST, "data", allow_duplicate=True),
        Output(ids.MODEL_UPLOAD, "contents"), Output(ids.MODEL_VERSION, "data", allow_duplicate=True),
        Input(ids.MODEL_UPLOAD, "contents"), State(ids.MODEL_UPLOAD, "filename"), State(ids.SESSION, "data"),
        prevent_initial_call=True,
    )
    def upload_model(contents, name, sid):
        """Load a .segapp file (refusing foreign or tampered ones) and apply it to the current image."""
        if not contents or not valid_session(sid):
            raise PreventUpdate
        data = uri_bytes(contents)
        try:
            seg = Segmenter.load(data)
        except ModelFileError as e:
            notify(f"{name}: {e}", "danger", "Model file refused")
            return no_update, no_update, None, no_update
        sess = services.session(sid)
        classes = {c["id"]: c for c in sess.classes()}
        for c in seg.classes:
            classes[c["id"]] = {"id": c["id"], "name": c["name"], "color": c["color"]}
        merged = sorted(classes.values(), key=lambda c: c["id"])
        sess.set_classes(merged)
        version = sess.put_model(data, {"source": "uploaded", "name": name, "annot_rev": sess.annot_rev(),
                                        "extractor": seg.extractor.name if seg.extractor else "?"})
        services.models.put(sess.sid, version, seg)
        notify(f"Loaded {name}: {len(seg.classes)} classes, features {seg.extractor.name}. "
               "Painting now retrains from your strokes.", "success", "Model loaded")
        return merged, {"reason": "predict", "t": time.time()}, None, {"v": version, "t": time.time()}

    @app.callback(Output(ids.EVAL_RESULT, "children"), Output(ids.GT_UPLOAD, "contents"),
                  Input(ids.GT_UPLOAD, "contents"), State(ids.GT_UPLOAD, "filename"), State(ids.SESSION, "data"),
                  State(ids.CURRENT, "data"), State(ids.CLASSES, "data"), prevent_initial_call=True)
    def evaluate(contents, name, sid, cur, classes):
        if not contents:
            raise PreventUpdate
        if not cur:
            raise SegappError("add and segment an image first")
        sess = services.session(sid)
        pred = sess.result(key(cur["image"], cur.get("plane", 0)))
        if pred is None:
            raise SegappError("segment this image first (paint two classes or load a model)")
        gt = io.read_labels(uri_bytes(contents), name=name)
        if gt.shape != pred.shape:
            raise SegappError(f"{name} is {gt.shape[1]}×{gt.shape[0]} but the image is "
                              f"{pred.shape[1]}×{pred.shape[0]}")
        res = metrics.evaluate(pred, gt, ignore=0)
        return evaluation_table(res, classes, name), None


def evaluation_table(res: dict, classes: list[dict], name: str):
    names = {c["id"]: c["name"] for c in classes}

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f}%"
    rows = [html.Tr([html.Td(names.get(int(cid), f"class {cid}")), html.Td(pct(v["iou"])), html.Td(pct(v["f1"])),
                     html.Td(pct(v.get("precision"))), html.Td(pct(v.get("recall"))),
                     html.Td(f"{v.get('support', 0):,}")]) for cid, v in res["per_class"].items()]
    head = html.Thead(html.Tr([html.Th(h) for h in ("class", "IoU", "F1", "precision", "recall", "GT pixels")]))
    return html.Div([
        html.Div([html.Span(f"mean IoU {pct(res['miou'])}", className="badge bg-primary me-2"),
                  html.Span(f"mean F1 {pct(res['mean_f1'])}", className="badge bg-secondary me-2"),
                  html.Span(f"pixel accuracy {pct(res['pixel_accuracy'])}", className="badge bg-light text-dark"),
                  html.Span(f" vs {name} ({res['n_pixels']:,} labelled px)", className="small text-muted ms-2")]),
        dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, class_name="mt-2 eval-table"),
    ])
