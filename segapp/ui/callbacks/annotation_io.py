"""Annotations as files in the web app: load a JSON annotations file or a label image onto the image on screen.

(Downloading them is in :mod:`.files`: "Annotations JSON" and "Annotations PNG".)
"""

from __future__ import annotations

from dash import Input, Output, Patch, State
from dash.exceptions import PreventUpdate

from ... import annotation_files, io
from ...annotations import parse_shape_name
from ...errors import AnnotationError, SegappError
from .. import ids
from ..figures import style_shapes
from ...limits import Limits
from ..guard import clean_name, decode_upload
from ..session import key, next_class
from .common import callback_spec, valid_session, wire


@callback_spec(
    output=dict(classes=Output(ids.CLASSES, "data", allow_duplicate=True),
                annot_version=Output(ids.ANNOT_VERSION, "data", allow_duplicate=True),
                figure=Output(ids.GRAPH, "figure", allow_duplicate=True),
                upload_contents=Output(ids.ANNOT_UPLOAD, "contents")),
    inputs=dict(contents=Input(ids.ANNOT_UPLOAD, "contents")),
    state=dict(filename=State(ids.ANNOT_UPLOAD, "filename"), sid=State(ids.SESSION, "data"),
               cur=State(ids.CURRENT, "data"), show=State(ids.SHOW_ANNOT, "value")),
    prevent_initial_call=True,
)
def upload_annotations(contents, filename, sid, cur, show, *, services, notify):
    """Load annotations onto the image on screen: a JSON file from "Annotations JSON", or a label image.

    The plane's strokes are replaced (undoable with Undo); classes the file names that the
    session lacks are added.  A file made for an image of another size is refused.

    Parameters
    ----------
    contents : str
        The file as a data URI.
    filename : str
    sid, cur, show
        Session, the plane on screen, whether strokes are shown.

    Returns
    -------
    dict
        ``classes`` (with the file's classes added), ``annot_version`` (retrains), ``figure``
        (a Patch of the strokes) and ``upload_contents`` (None, so the same file can be loaded again).
    """
    if not contents or not valid_session(sid):
        raise PreventUpdate
    if not cur or not cur.get("image"):
        raise SegappError("add the image first, then load its annotations onto it")
    sess = services.session(sid)
    meta = sess.meta(cur["image"])
    if meta is None:
        raise SegappError("this image is no longer in your session")
    name, hw = clean_name(filename, "annotations"), meta["shape"][1:3]
    limits = Limits.from_settings(services.settings)
    data = decode_upload(contents, name, limits.max_upload_bytes)
    if annotation_files.is_annotations_json(data):
        doc = annotation_files.read_annotations(data, name=name)
        if (doc["image"]["height"], doc["image"]["width"]) != tuple(hw):
            raise AnnotationError(f"{name} was made for a {doc['image']['width']}×{doc['image']['height']} image "
                                  f"({doc['image'].get('name', '?')}); {meta['name']} is {hw[1]}×{hw[0]}")
        shapes, named = doc["shapes"], doc["classes"]
    else:
        labels = io.read_labels(data, name=name, limits=limits)
        if labels.shape != tuple(hw):
            raise AnnotationError(f"{name} is {labels.shape[1]}×{labels.shape[0]}; {meta['name']} is {hw[1]}×{hw[0]}")
        shapes, named = annotation_files.labels_to_shapes(labels), []
    classes = merge_classes(sess.classes(), named, used=_class_ids(shapes))
    sess.set_classes(classes)
    k = key(meta["id"], cur.get("plane", 0))
    sess.set_shapes(k, shapes)
    notify(f"Loaded {len(shapes)} stroke(s) from {name} onto {meta['name']}. Undo brings back the strokes it "
           "replaced.", "success", "Annotations loaded")
    figure = Patch()
    figure["layout"]["shapes"] = style_shapes(shapes, classes, show)
    return {"classes": classes, "annot_version": {"rev": sess.annot_rev(), "key": k}, "figure": figure,
            "upload_contents": None}


def _class_ids(shapes: list[dict]) -> set[int]:
    return {parse_shape_name(s.get("name"))[0] for s in shapes} - {0}


def merge_classes(classes: list[dict], named: list[dict], used: set[int]) -> list[dict]:
    """The session's classes plus those a loaded file names or uses (its names and colours for new ids).

    Examples
    --------
    >>> mine = [{"id": 1, "name": "bg", "color": "#000000"}]
    >>> [c["name"] for c in merge_classes(mine, [{"id": 2, "name": "cell", "color": "#ff0000"}], {1, 2, 5})]
    ['bg', 'cell', 'Class 5']
    """
    out = {c["id"]: dict(c) for c in classes}
    for c in named:
        if c["id"] not in out:
            out[c["id"]] = {"id": c["id"], "name": c["name"], "color": c.get("color") or next_class(
                list(out.values()))["color"]}
    for cid in sorted(used - set(out)):
        new = next_class(list(out.values()))
        out[cid] = {**new, "id": cid, "name": f"Class {cid}"}
    return sorted(out.values(), key=lambda c: c["id"])


def register(app, services):
    wire(app, services, upload_annotations)
