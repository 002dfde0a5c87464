"""Downloads (segmentation, probabilities, annotations, model, ZIP), model upload, evaluation."""

from __future__ import annotations

import csv
import io as _io
import json
import time
import zipfile

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from ... import io, metrics
from ...annotation_files import annotations_document
from ...errors import SegappError
from ...limits import Limits
from ...modelfile import load_segmenter
from .. import ids
from ..guard import clean_name, decode_upload
from ..pipeline import labels_for, load_model
from ..session import key
from .batch import all_keys
from .common import callback_spec, valid_session, wire


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


@callback_spec(
    output=dict(download=Output(ids.DOWNLOAD, "data")),
    inputs=dict(seg_png=Input(ids.DL_SEG_PNG, "n_clicks"), seg_tiff=Input(ids.DL_SEG_TIFF, "n_clicks"),
                proba=Input(ids.DL_PROBA, "n_clicks"), annotations=Input(ids.DL_ANNOT, "n_clicks"),
                annotations_json=Input(ids.DL_ANNOT_JSON, "n_clicks"),
                model=Input(ids.DL_MODEL, "n_clicks"), results=Input(ids.DL_ZIP, "n_clicks")),
    state=dict(sid=State(ids.SESSION, "data"), cur=State(ids.CURRENT, "data")),
    prevent_initial_call=True,
)
def download(seg_png, seg_tiff, proba, annotations, annotations_json, model, results, sid, cur, *, services,
             trigger):
    """The file behind the download link that was clicked.

    Parameters
    ----------
    seg_png, seg_tiff, proba, annotations, annotations_json, model, results : int
        Click counts of the links (only ``trigger`` matters).
    sid, cur
        Session and the plane on screen.
    trigger : str
        The link clicked: ``ids.DL_SEG_PNG``, ``ids.DL_SEG_TIFF``, ``ids.DL_PROBA``,
        ``ids.DL_ANNOT`` (the label image), ``ids.DL_ANNOT_JSON`` (the strokes, to load again),
        ``ids.DL_MODEL`` or ``ids.DL_ZIP``.

    Returns
    -------
    dict
        ``download``: a ``dcc.Download`` payload (SegappError when there is nothing to download).
    """
    if not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    if trigger == ids.DL_MODEL:
        data, name = model_file(sess, services)
        return {"download": dcc.send_bytes(data, name)}
    if trigger == ids.DL_ZIP:
        return {"download": dcc.send_bytes(results_zip(sess), "segapp-results.zip")}
    if not cur:
        raise SegappError("add an image first")
    z = cur.get("plane", 0)
    meta = sess.meta(cur["image"])
    if meta is None:
        raise SegappError("this image is no longer in your session")
    k, stem = key(cur["image"], z), _stem(meta, z)
    if trigger in (ids.DL_ANNOT, ids.DL_ANNOT_JSON):
        if not sess.shapes(k):
            raise SegappError("nothing painted on this image yet")
        if trigger == ids.DL_ANNOT_JSON:
            doc = annotations_document(sess.shapes(k), sess.classes(), name=meta["name"], shape_hw=meta["shape"][1:3],
                                       plane=z)
            return {"download": dcc.send_bytes(json.dumps(doc, indent=1).encode(), f"{stem}_annotations.json")}
        return {"download": dcc.send_bytes(_bytes(io.write_labels, labels_for(sess, k), fmt="png"),
                                           f"{stem}_annotations.png")}
    if trigger == ids.DL_PROBA:
        probabilities = sess.proba(k)
        if probabilities is None:
            raise SegappError("no segmentation of this image yet")
        return {"download": dcc.send_bytes(_bytes(io.write_proba_tiff, probabilities), f"{stem}_proba.tif")}
    labels = sess.result(k)
    if labels is None:
        raise SegappError("no segmentation of this image yet")
    fmt = "png" if trigger == ids.DL_SEG_PNG else "tiff"
    suffix = "png" if fmt == "png" else "tif"
    return {"download": dcc.send_bytes(_bytes(io.write_labels, labels, fmt=fmt), f"{stem}_segmentation.{suffix}")}


@callback_spec(
    output=dict(classes=Output(ids.CLASSES, "data", allow_duplicate=True),
                train_request=Output(ids.TRAIN_REQUEST, "data", allow_duplicate=True),
                upload_contents=Output(ids.MODEL_UPLOAD, "contents"),
                model_version=Output(ids.MODEL_VERSION, "data", allow_duplicate=True)),
    inputs=dict(contents=Input(ids.MODEL_UPLOAD, "contents")),
    state=dict(filename=State(ids.MODEL_UPLOAD, "filename"), sid=State(ids.SESSION, "data")),
    prevent_initial_call=True,
)
def upload_model(contents, filename, sid, *, services, notify):
    """Load a .segapp file (refusing foreign or tampered ones) and apply it to the current image.

    Parameters
    ----------
    contents : str
        The file as a data URI.
    filename : str
    sid : str

    Returns
    -------
    dict
        ``classes`` (the session's merged with the model's), ``train_request`` (predict now),
        ``upload_contents`` (None, so the same file can be chosen again) and ``model_version``;
        after a refused file only ``upload_contents`` changes (and a toast says why).
    """
    if not contents or not valid_session(sid):
        raise PreventUpdate
    filename = clean_name(filename, "model file")
    limits = Limits.from_settings(services.settings)
    try:  # a refused file changes nothing in the session
        data = decode_upload(contents, filename, limits.max_model_bytes)
        seg = load_segmenter(data, limits=limits)
    except SegappError as e:
        notify(str(e) if str(e).startswith(filename) else f"{filename}: {e}", "danger", "Model file refused")
        return {"classes": no_update, "train_request": no_update, "upload_contents": None, "model_version": no_update}
    sess = services.session(sid)
    classes = {c["id"]: c for c in sess.classes()}
    for c in seg.classes:
        classes[c["id"]] = {"id": c["id"], "name": c["name"], "color": c["color"]}
    merged = sorted(classes.values(), key=lambda c: c["id"])
    sess.set_classes(merged)
    features = seg.extractor.name if seg.extractor is not None else "?"
    version = sess.put_model(data, {"source": "uploaded", "name": filename, "annot_rev": sess.annot_rev(),
                                    "extractor": features, "channels": seg.n_channels_})
    services.models.put(sess.sid, version, seg)
    notify(f"Loaded {filename}: {len(seg.classes)} classes, features {features}. "
           "Painting now retrains from your strokes.", "success", "Model loaded")
    return {"classes": merged, "train_request": {"reason": "predict", "t": time.time()}, "upload_contents": None,
            "model_version": {"v": version, "t": time.time()}}


@callback_spec(
    output=dict(result=Output(ids.EVAL_RESULT, "children"), upload_contents=Output(ids.GT_UPLOAD, "contents")),
    inputs=dict(contents=Input(ids.GT_UPLOAD, "contents")),
    state=dict(filename=State(ids.GT_UPLOAD, "filename"), sid=State(ids.SESSION, "data"),
               cur=State(ids.CURRENT, "data"), classes=State(ids.CLASSES, "data")),
    prevent_initial_call=True,
)
def evaluate(contents, filename, sid, cur, classes, *, services):
    """Compare the current plane's segmentation with an uploaded ground-truth label image.

    Parameters
    ----------
    contents : str
        The label image as a data URI.
    filename : str
    sid, cur, classes
        Session, the plane on screen, the classes (for the table's names).

    Returns
    -------
    dict
        ``result``: badges and a per-class table (IoU, F1, precision, recall);
        ``upload_contents``: None. SegappError when there is no result or the sizes differ.
    """
    if not contents:
        raise PreventUpdate
    if not cur:
        raise SegappError("add and segment an image first")
    if not valid_session(sid):
        raise PreventUpdate
    sess = services.session(sid)
    k = key(cur["image"], cur.get("plane", 0))
    pred = sess.result(k)
    if pred is None:
        raise SegappError("segment this image first (paint two classes or load a model)")
    filename = clean_name(filename, "labels")
    limits = Limits.from_settings(services.settings)
    raw = io.read_mask(decode_upload(contents, filename, limits.max_upload_bytes), name=filename, limits=limits)
    if raw.shape[:2] != pred.shape:
        raise SegappError(f"{filename} is {raw.shape[1]}×{raw.shape[0]} but the image is "
                          f"{pred.shape[1]}×{pred.shape[0]}")
    known = {c["id"]: c for c in classes or sess.classes()}
    scored = [known.get(cid, {"id": cid}) for cid in sess.result_classes(k)] or list(known.values())
    gt, how = metrics.interpret_mask(raw, scored)
    res = metrics.evaluate(pred, gt, ignore=0)
    return {"result": evaluation_table(res, list(known.values()), filename, how), "upload_contents": None}


def register(app, services):
    wire(app, services, download, upload_model, evaluate)


def evaluation_table(res: dict, classes: list[dict], name: str, how: str = ""):
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
        html.Div(f"Read {name} as a {how}." if how and not how.startswith("class") else
                 f"Read {name} as {how}." if how else "", className="small text-muted mt-1 eval-how"),
        dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, class_name="mt-2 eval-table"),
    ])
