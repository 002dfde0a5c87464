"""Annotations as files: the strokes of one image plane as JSON, and label images as strokes.

A user saves their annotations and comes back to them: the web app downloads a plane's
strokes as a JSON document (and its label image as a PNG) and loads either back onto the
same image; ``segapp train --labels`` accepts either too.

The JSON document (``format: "segapp-annotations"``, version 1)::

    {"format": "segapp-annotations", "version": 1,
     "image": {"name": "cells.tif", "width": 640, "height": 480, "plane": 0},
     "classes": [{"id": 1, "name": "Background", "color": "#1f77b4"}, ...],
     "shapes": [{"type": "path", "path": "M2,3L40,5", "name": "class=1;width=5"}, ...]}

Shapes are Plotly shapes in image pixel units (see :mod:`segapp.annotations`); only the keys
that decide which pixels they paint are kept.  A label image becomes exact shapes with
:func:`labels_to_shapes` (one filled, outline-free polygon per connected region, along
pixel edges), so ``shapes_to_labels(labels_to_shapes(L), L.shape)`` gives ``L`` back.

Examples
--------
>>> import json
>>> import numpy as np
>>> from .annotations import shapes_to_labels
>>> lab = np.zeros((6, 7), np.uint8); lab[1:4, 1:3] = 1; lab[2:5, 4:7] = 2; lab[3, 5] = 0
>>> shapes = labels_to_shapes(lab)
>>> [s["name"] for s in shapes]
['class=1;width=1;outline=0', 'class=2;width=1;outline=0']
>>> bool((shapes_to_labels(shapes, lab.shape) == lab).all())
True
>>> doc = annotations_document(shapes, [{"id": 1, "name": "a", "color": "#ff0000"}], name="x.png", shape_hw=(6, 7))
>>> parsed = read_annotations(json.dumps(doc).encode())
>>> parsed["image"]["width"], len(parsed["shapes"])
(7, 2)
"""

from __future__ import annotations

import re

import numpy as np
from scipy import ndimage

from . import jsonguard
from .annotations import clean_shape, parse_shape_name, shape_name, shapes_to_labels
from .errors import AnnotationError
from .limits import default_limits

FORMAT = "segapp-annotations"
VERSION = 1
MAX_SHAPES = 2_000  # more separate regions than this make the canvas slow: train with the label image instead
_KEEP = ("type", "name", "path", "x0", "y0", "x1", "y1")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


# -- label image -> shapes ------------------------------------------------------------------------
def _rings(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Closed rings of grid corners ``(row, col)`` along the pixel edges of ``mask``'s boundary.

    Every corner of the boundary graph has an even degree, so walking unused edges always
    closes a ring; how rings are joined at diagonal touches does not matter for an even-odd
    fill (it only depends on the set of edges).
    """
    p = np.pad(mask.astype(bool), 1)
    top = p[1:, 1:-1] != p[:-1, 1:-1]   # (H+1, W): edge from corner (i, j) to (i, j+1)
    left = p[1:-1, 1:] != p[1:-1, :-1]  # (H, W+1): edge from corner (i, j) to (i+1, j)
    adj: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for (i, j), (a, b) in [(ij, (0, 1)) for ij in zip(*np.nonzero(top))] + \
                          [(ij, (1, 0)) for ij in zip(*np.nonzero(left))]:
        u, v = (int(i), int(j)), (int(i) + a, int(j) + b)
        adj.setdefault(u, []).append(v)
        adj.setdefault(v, []).append(u)
    rings = []
    while adj:
        start = cur = next(iter(adj))
        ring = [start]
        while True:
            nxt = adj[cur].pop()
            adj[nxt].remove(cur)
            for corner in (cur, nxt):
                if not adj[corner]:
                    del adj[corner]
            cur = nxt
            if cur == start:
                break
            ring.append(cur)
        rings.append(_corners_only(ring))
    return rings


def _corners_only(ring: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop the corners where the ring goes straight on."""
    n = len(ring)
    keep = [ring[k] for k in range(n)
            if not (ring[k - 1][0] == ring[k][0] == ring[(k + 1) % n][0]
                    or ring[k - 1][1] == ring[k][1] == ring[(k + 1) % n][1])]
    return keep or ring


def _path(rings: list[list[tuple[int, int]]], dy: int, dx: int) -> str:
    def pt(i, j):
        return f"{j + dx - 0.5:g},{i + dy - 0.5:g}"
    return "".join("M" + "L".join(pt(i, j) for i, j in ring) + "Z" for ring in rings)


def labels_to_shapes(labels, *, max_shapes: int = MAX_SHAPES) -> list[dict]:
    """Shapes that paint exactly ``labels`` (2-D class ids, 0 = unlabelled).

    One closed, outline-free path per 8-connected region of a class (holes as inner
    rings); a label image without unlabelled pixels starts with one rectangle of its
    most common class so that class need not be traced.  Raises AnnotationError when
    more than ``max_shapes`` shapes would be needed.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or lab.dtype.kind not in "biu":
        raise AnnotationError(f"labels must be a 2-D integer image, got {lab.dtype} {lab.shape}")
    values, counts = np.unique(lab, return_counts=True)
    shapes, base = [], None
    if lab.size and values[0] != 0:  # dense: the most common class as one rectangle underneath
        base = int(values[counts.argmax()])
        h, w = lab.shape
        shapes.append({"type": "rect", "x0": 0, "y0": 0, "x1": w - 1, "y1": h - 1,
                       "name": f"{shape_name(base, 1)};outline=0"})
    for value in (int(v) for v in values if v != 0 and v != base):
        regions, n = ndimage.label(lab == value, structure=np.ones((3, 3), bool))
        if len(shapes) + n > max_shapes:
            raise AnnotationError(f"this label image has more than {max_shapes} separate regions to show as "
                                  "strokes; train with it on the command line (segapp train --labels)")
        for k, box in enumerate(ndimage.find_objects(regions), start=1):
            rings = _rings(regions[box] == k)
            shapes.append({"type": "path", "path": _path(rings, box[0].start, box[1].start),
                           "name": f"{shape_name(value, 1)};outline=0"})
    return shapes


# -- the JSON document ------------------------------------------------------------------------------
def annotations_document(shapes, classes, *, name: str, shape_hw, plane: int = 0) -> dict:
    """The JSON-ready annotations of one image plane (see the module docstring)."""
    h, w = int(shape_hw[0]), int(shape_hw[1])
    return {"format": FORMAT, "version": VERSION,
            "image": {"name": str(name), "width": w, "height": h, "plane": int(plane)},
            "classes": [{"id": int(c["id"]), "name": str(c["name"]), "color": str(c["color"])}
                        for c in classes if int(c["id"]) > 0],
            "shapes": [{k: s[k] for k in _KEEP if k in s} for s in shapes]}


def read_annotations(data: bytes, *, name: str = "annotations") -> dict:
    """Parse and check a JSON annotations document; returns it with ``shapes`` and ``classes`` cleaned.

    Every shape must carry a class (``class=<id>;width=<px>``) and rasterise at the
    document's image size; anything else raises AnnotationError with one line naming ``name``.
    """
    try:
        doc = jsonguard.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{name} is not a JSON annotations file ({e.__class__.__name__})") from None
    except ValueError as e:  # also: nested too deep, non-finite or overlong numbers
        raise AnnotationError(f"{name} is not a JSON annotations file ({str(e)[:120]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise AnnotationError(f"{name} is not a segapp annotations file (no \"format\": \"{FORMAT}\")")
    if not isinstance(doc.get("version"), int) or doc["version"] > VERSION:
        raise AnnotationError(f"{name} has annotations format version {doc.get('version')!r}; this segapp reads "
                              f"up to {VERSION}")
    image, shapes, classes = doc.get("image"), doc.get("shapes"), doc.get("classes", [])
    try:
        w, h = int(image["width"]), int(image["height"])
    except (TypeError, KeyError, ValueError):
        raise AnnotationError(f"{name} does not say the image size (image.width, image.height)") from None
    max_pixels = default_limits().max_pixels
    if not (0 < w and 0 < h and w * h <= max_pixels):
        raise AnnotationError(f"{name} says the image is {w}×{h}; images of 1 to {max_pixels:,} pixels are read")
    if not isinstance(shapes, list) or not all(isinstance(s, dict) for s in shapes):
        raise AnnotationError(f"{name}: \"shapes\" must be a list of shapes")
    if not isinstance(classes, list) or not all(isinstance(c, dict) for c in classes):
        raise AnnotationError(f"{name}: \"classes\" must be a list of classes")
    shapes = [{k: s[k] for k in _KEEP if k in s} for s in shapes]
    try:
        for s in shapes:
            parse_shape_name(s.get("name"))
        shapes_to_labels(shapes, (h, w))
    except AnnotationError as e:
        raise AnnotationError(f"{name}: {e}") from None
    shapes = [clean_shape(s) for s in shapes]  # checked: now only plotly's plain keys are kept
    clean = []
    for c in classes:
        try:
            cid = int(c["id"])
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(f"{name}: a class has no integer id") from None
        if cid > 0:
            color = str(c.get("color", ""))
            clean.append({"id": cid, "name": str(c.get("name") or f"Class {cid}")[:40],
                          "color": color if _COLOR.match(color) else None})
    return {**doc, "image": {**image, "width": w, "height": h}, "shapes": shapes, "classes": clean}


def is_annotations_json(data: bytes) -> bool:
    """True when ``data`` looks like JSON (rather than a label image).

    Examples
    --------
    >>> is_annotations_json(b' {"format": 1}'), is_annotations_json(b"\\x89PNG")
    (True, False)
    """
    return data.lstrip()[:1] in (b"{", b"[") or data[:3] == b"\xef\xbb\xbf"


def labels_from_annotations(data: bytes, shape_hw, *, name: str = "annotations") -> tuple[np.ndarray, list[dict]]:
    """The label image (at ``shape_hw``) and the classes of a JSON annotations document.

    Raises AnnotationError when the document was made for an image of another size.
    """
    doc = read_annotations(data, name=name)
    h, w = int(shape_hw[0]), int(shape_hw[1])
    if (doc["image"]["height"], doc["image"]["width"]) != (h, w):
        raise AnnotationError(f"{name} was made for a {doc['image']['width']}×{doc['image']['height']} image "
                              f"({doc['image'].get('name', '?')}); this image is {w}×{h}")
    return shapes_to_labels(doc["shapes"], (h, w)), doc["classes"]
