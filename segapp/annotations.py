"""Plotly shapes -> label image, in image pixel units.

A shape is a dict as found in ``figure.layout.shapes`` or a Dash ``relayoutData`` event.  Its
class and stroke width (in IMAGE pixels, not screen pixels) travel in ``shape["name"]`` as
``"class=<id>;width=<px>"`` (see :func:`shape_name`); the plotly ``line.width`` is ignored.
Coordinates are plotly data coordinates: x = column, y = row, pixel centres at integers.

Rasterisation rules (:func:`shapes_to_labels`):

- open path ``M x,y L x,y ...`` and ``line``: a stroke, i.e. every pixel whose centre lies
  within width/2 of the polyline, plus the pixels of a 1-px Bresenham line through the
  rounded vertices (so thin strokes stay connected).  A single point paints a dot.
- closed path (subpath ending in ``Z``): the polygon filled (even-odd rule, as plotly's
  default ``fillrule``) plus its outline stroke.
- ``rect`` (x0, y0, x1, y1) and ``circle`` (the ellipse inscribed in that box): filled, grown
  by width/2 on every side (the outline stroke plotly draws; square corners for rect).
- a closed path whose name says ``outline=0`` is filled without its outline stroke: polygons along
  pixel edges then paint exactly the pixels inside (label images imported as shapes, see
  :mod:`segapp.annotation_files`).
- later shapes overwrite earlier ones; class 0 is the eraser (its pixels go back to 0).
- everything is clipped to the image.

Limits (:mod:`segapp.limits`): class ids 0..255 (label images are uint8), at most
``MAX_SHAPES`` shapes and ``MAX_POINTS`` stroked vertices per image, ``MAX_STROKE_POINTS`` per
path; fill-only shapes (never stroked) at most ``MAX_FILL_POINTS`` vertices per image and
filled polygons ``MAX_FILL_CROSSINGS`` edge/row crossings; NaN/infinite coordinates are
refused, finite ones beyond +-1e9 clamped, and a brush wider than twice the image diagonal is
narrowed to that (it paints the same pixels), so no payload makes rasterising slow.
"""
from __future__ import annotations

import copy
import math
import re

import numpy as np
from skimage.draw import line as _bresenham

from .errors import AnnotationError
from .limits import (COORD_LIMIT, MAX_CLASS_ID, MAX_FILL_CROSSINGS, MAX_FILL_PATH_CHARS, MAX_FILL_POINTS, MAX_PATH_CHARS,
                     MAX_POINTS, MAX_SHAPES, MAX_STROKE_POINTS, clamp_coordinate, max_stroke_width)
_CHUNK = 48  # long segments are rasterised in pieces so each bounding box stays small
_TOKEN = re.compile(r"\s*,?\s*(?:([MmLlHhVvZz])|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))")
_EDIT_KEY = re.compile(r"^shapes\[(\d{1,9})\](?:\.(.+))?$")
_ATTR = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")  # plotly attribute names; no dunders
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# One absolute subpath "x,y L x,y x,y ... [Z]" after its M, tokenised exactly as parse_path does
# (atomic numbers: "123" is never read as "12" "3"); such paths are parsed without a Python loop.
_N, _S = r"(?>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", r"\s*,?\s*"
_SIMPLE_SUBPATH = re.compile(rf"{_S}{_N}{_S}{_N}(?:{_S}(?:L{_S})?{_N}{_S}{_N})*{_S}(Z?){_S}")


def shape_name(class_id: int, width: float) -> str:
    """The ``name`` of a shape that paints class ``class_id`` with a ``width``-pixel brush.

    Examples
    --------
    >>> shape_name(2, 5)
    'class=2;width=5'
    >>> parse_shape_name(shape_name(1, 2.5))
    (1, 2.5)
    """
    w = float(width)
    return f"class={int(class_id)};width={int(w) if w.is_integer() else repr(w)}"


def parse_shape_name(name) -> tuple[int, float | None]:
    """Read ``(class_id, width)`` from ``"class=<id>;width=<px>"``; width is None when absent.

    Keys are separated by ``;`` (spaces allowed) and unknown keys are ignored.  A missing or
    invalid class, or a width that is not a positive number, raises AnnotationError.

    Examples
    --------
    >>> parse_shape_name("class=3; width=7")
    (3, 7.0)
    >>> parse_shape_name("class=1")
    (1, None)
    """
    if name is not None and not isinstance(name, str):
        raise AnnotationError(f"shape name must be text, got {type(name).__name__}")
    if name and len(name) > 200:
        raise AnnotationError("shape name is too long (expected 'class=<id>;width=<px>')")
    fields = {}
    for part in str(name or "").split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    if "class" not in fields:
        raise AnnotationError(f"shape has no class (name {name!r}; expected 'class=<id>;width=<px>')")
    try:
        class_id = int(fields["class"]) if len(fields["class"]) <= 12 else None
    except ValueError:
        class_id = None
    if class_id is None:
        raise AnnotationError(f"shape class {fields['class'][:20]!r} is not an integer")
    if not 0 <= class_id <= MAX_CLASS_ID:
        raise AnnotationError(f"shape class {class_id} is outside 0..{MAX_CLASS_ID}")
    if "width" not in fields:
        return class_id, None
    try:
        width = float(fields["width"]) if len(fields["width"]) <= 40 else float("nan")
    except ValueError:
        width = float("nan")
    if not (math.isfinite(width) and width > 0):
        raise AnnotationError(f"shape width {fields['width'][:20]!r} is not a positive number")
    return class_id, width


def parse_path(path: str, *, fill_only: bool = False) -> list[tuple[np.ndarray, bool]]:
    """Split an SVG path (M, L, H, V, Z; absolute or relative) into ``(points, closed)`` subpaths.

    ``points`` is an ``(N, 2)`` float array of (x, y).  Curves and arcs raise AnnotationError,
    as does a path longer than the limits (larger ones for a ``fill_only`` path, which is
    never stroked).

    Examples
    --------
    >>> [(p.tolist(), closed) for p, closed in parse_path("M1,2L3,4 5 6Z")]
    [([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], True)]
    >>> parse_path("M 0 0 h 2 v 3")[0][0].tolist()
    [[0.0, 0.0], [2.0, 0.0], [2.0, 3.0]]
    """
    if path is not None and not isinstance(path, str):
        raise AnnotationError(f"path must be text, got {type(path).__name__}")
    max_chars, max_points = (MAX_FILL_PATH_CHARS, MAX_FILL_POINTS) if fill_only else (MAX_PATH_CHARS, MAX_STROKE_POINTS)
    if path and len(path) > max_chars:
        raise AnnotationError(f"path is {len(path):,} characters long; at most {max_chars:,} are drawn")
    text = str(path or "").strip().rstrip(", \t\r\n")  # trailing separators mean nothing
    simple = _parse_simple(text, max_points, fill_only)
    if simple is not None:
        return simple
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            bad = text[pos:].lstrip(" ,")[:1]
            raise AnnotationError(f"unsupported path command {bad!r} (only M, L, H, V and Z are drawn)")
        if m.group(1):
            tokens.append(m.group(1))
        else:
            value = float(m.group(2))
            if not math.isfinite(value):
                raise AnnotationError(f"path has a coordinate out of range ({m.group(2)[:20]})")
            tokens.append(clamp_coordinate(value))
        pos = m.end()
    if sum(1 for t in tokens if not isinstance(t, str)) > 2 * max_points:
        raise AnnotationError(f"path has more than {max_points:,} points; "
                              + ("split the label image" if fill_only else "draw shorter strokes"))
    subpaths, points, cmd = [], [], None
    cur = start = (0.0, 0.0)
    i, started = 0, False
    while i < len(tokens):
        if isinstance(tokens[i], str):
            cmd = tokens[i]
            i += 1
            if cmd in "Zz":
                if points:
                    subpaths.append((np.array(points), True))
                points, cur, cmd = [], start, None
            continue
        if cmd is None or (cmd not in "Mm" and not started):
            raise AnnotationError(f"path {text[:40]!r} must start with M")
        started = True
        need = 1 if cmd in "HhVv" else 2
        args = tokens[i:i + need]
        if len(args) < need or any(isinstance(a, str) for a in args):
            raise AnnotationError(f"path {text[:40]!r}: command {cmd} lacks coordinates")
        i += need
        rel = cmd.islower()
        x, y = cur
        args = [clamp_coordinate(a) for a in args]
        if cmd in "Hh":
            x = args[0] + (x if rel else 0)
        elif cmd in "Vv":
            y = args[0] + (y if rel else 0)
        else:
            x, y = (args[0] + x, args[1] + y) if rel else (args[0], args[1])
        x, y = clamp_coordinate(x), clamp_coordinate(y)
        if cmd in "Mm":
            if points:
                subpaths.append((np.array(points), False))
            points, start = [], (x, y)
            cmd = "l" if rel else "L"  # further pairs after M are implicit line-tos
        elif not points:
            points = [cur]  # drawing after Z continues from the closed subpath's start
        points.append((x, y))
        cur = (x, y)
    if points:
        subpaths.append((np.array(points), False))
    return subpaths


def _parse_simple(text: str, max_points: int, fill_only: bool):
    """:func:`parse_path` of a path of absolute M/L/Z commands (what plotly draws and label
    images become) with array arithmetic; None when the path is anything else (or odd)."""
    if not text.startswith("M"):
        return None
    parts = text[1:].split("M")
    matches = [_SIMPLE_SUBPATH.fullmatch(part) for part in parts]
    if not all(matches):
        return None
    per_part = [_NUMBER.findall(part) for part in parts]  # each subpath tokenised once
    if sum(map(len, per_part)) > 2 * max_points:
        raise AnnotationError(f"path has more than {max_points:,} points; "
                              + ("split the label image" if fill_only else "draw shorter strokes"))
    xy = np.array([v for values in per_part for v in values], dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(xy).all():
        return None  # the token loop names the coordinate
    np.clip(xy, -COORD_LIMIT, COORD_LIMIT, out=xy)
    ends = np.cumsum([len(values) // 2 for values in per_part])
    return [(xy[end - len(values) // 2:end], m.group(1) == "Z") for values, end, m in zip(per_part, ends, matches)]


def _clip_segment(p0, p1, box):
    """Liang-Barsky: the part of segment p0-p1 inside box (xmin, ymin, xmax, ymax), or None."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0 - box[0]), (dx, box[2] - x0), (-dy, y0 - box[1]), (dy, box[3] - y0)):
        if p == 0:
            if q < 0:
                return None
        elif p < 0:
            t0 = max(t0, q / p)
        else:
            t1 = min(t1, q / p)
    if t0 > t1:
        return None
    return (x0 + t0 * dx, y0 + t0 * dy), (x0 + t1 * dx, y0 + t1 * dy)


def _span(lo: float, hi: float, n: int) -> tuple[int, int]:
    """Integer pixel centres in [lo, hi], clipped to 0..n-1 (may be empty: a > b)."""
    return max(0, math.ceil(lo - 1e-9)), min(n - 1, math.floor(hi + 1e-9))


def _capsule(out, a, b, r, value) -> None:
    """Pixels whose centre is within r of segment a-b, computed in its bounding box only."""
    (x0, y0), (x1, y1) = a, b
    c0, c1 = _span(min(x0, x1) - r, max(x0, x1) + r, out.shape[1])
    r0, r1 = _span(min(y0, y1) - r, max(y0, y1) + r, out.shape[0])
    if c0 > c1 or r0 > r1:
        return
    xs = np.arange(c0, c1 + 1, dtype=np.float64)[None, :] - x0
    ys = np.arange(r0, r1 + 1, dtype=np.float64)[:, None] - y0
    dx, dy = x1 - x0, y1 - y0
    l2 = dx * dx + dy * dy
    t = np.clip((xs * dx + ys * dy) / l2, 0, 1) if l2 > 0 else 0.0
    d2 = (xs - t * dx) ** 2 + (ys - t * dy) ** 2
    out[r0:r1 + 1, c0:c1 + 1][d2 <= r * r * (1 + 1e-9) + 1e-12] = value


def _stroke(out, points, r, value) -> None:
    h, w = out.shape
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) == 1:
        pts = np.vstack([pts, pts])
    box = (-r - 2, -r - 2, w + r + 1, h + r + 1)
    for p0, p1 in zip(pts[:-1], pts[1:]):
        seg = _clip_segment(p0, p1, box)
        if seg is None:
            continue
        a, b = np.asarray(seg[0]), np.asarray(seg[1])
        n = max(1, math.ceil(np.hypot(*(b - a)) / _CHUNK))
        for k in range(n):
            _capsule(out, a + (b - a) * k / n, a + (b - a) * (k + 1) / n, r, value)
        (ca, ra), (cb, rb) = np.floor(a + 0.5).astype(int), np.floor(b + 0.5).astype(int)
        rr, cc = _bresenham(ra, ca, rb, cb)
        keep = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        out[rr[keep], cc[keep]] = value


def _rings_of(subpaths) -> list:
    """The closed subpaths of a parsed path that enclose an area (what is filled)."""
    return [pts for pts, closed in subpaths if closed and len(pts) >= 3]


def _crossings(rings, h: int):
    """Edges of ``rings`` as ``(x, y, x2, y2)`` arrays, the first row each crosses and how many.

    Row ``r`` (pixel centres at integers) is crossed by an edge when ``min(y) <= r < max(y)``;
    only rows ``0..h-1`` count, so a clamped far-away coordinate costs nothing.
    """
    if not rings:
        z = np.zeros(0)
        return (z, z, z, z), np.zeros(0, np.int64), np.zeros(0, np.int64)
    x, y = np.concatenate([np.asarray(r, dtype=np.float64) for r in rings]).T
    x2, y2 = np.concatenate([np.roll(np.asarray(r, dtype=np.float64), -1, axis=0) for r in rings]).T
    lo = np.clip(np.ceil(np.minimum(y, y2)), 0, h).astype(np.int64)
    hi = np.clip(np.ceil(np.maximum(y, y2)), 0, h).astype(np.int64)
    return (x, y, x2, y2), lo, np.maximum(hi - lo, 0)  # horizontal edges cross nothing


def _fill_polygon(out, rings, value) -> None:
    """Even-odd scanline fill of pixel centres inside closed rings.

    Work and memory grow with the edge/row crossings (what the polygon's outline costs),
    never with rows x edges: a label-image region with 100,000 vertices fills in milliseconds.
    """
    h, w = out.shape
    (x, y, x2, y2), lo, n = _crossings(rings, h)
    keep = n > 0
    x, y, x2, y2, lo, n = x[keep], y[keep], x2[keep], y2[keep], lo[keep], n[keep]
    if not len(n):
        return
    x_lo = int(np.clip(np.floor(min(x.min(), x2.min())), 0, w))  # only the columns the polygon spans
    x_hi = int(np.clip(np.ceil(max(x.max(), x2.max())) + 1, x_lo, w))
    span = x_hi - x_lo
    rows_per_block = max(1, 4_000_000 // (span + 1))  # bounds the difference image of one block
    for b0 in range(int(lo.min()), int((lo + n).max()), rows_per_block):
        b1 = b0 + rows_per_block
        e = np.flatnonzero((lo < b1) & (lo + n > b0))
        s = np.maximum(lo[e], b0)
        cnt = np.minimum(lo[e] + n[e], b1) - s
        idx = np.repeat(np.arange(len(e)), cnt)
        row = s[idx] + np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        e = e[idx]
        xi = x[e] + (row - y[e]) * (x2[e] - x[e]) / (y2[e] - y[e])
        order = np.lexsort((xi, row))  # by row, then x: each row holds an even number of crossings
        ri, xi = row[order] - b0, xi[order]
        c0 = np.clip(np.ceil(xi[0::2] - 1e-9), x_lo, x_hi).astype(np.intp) - x_lo
        c1 = np.clip(np.floor(xi[1::2] + 1e-9) + 1, x_lo, x_hi).astype(np.intp) - x_lo
        ok = c1 > c0
        nrows = min(b1, h) - b0
        diff = np.zeros((nrows, span + 1), np.int32)
        np.add.at(diff, (ri[0::2][ok], c0[ok]), 1)
        np.add.at(diff, (ri[0::2][ok], c1[ok]), -1)
        out[b0:b0 + nrows, x_lo:x_hi][np.cumsum(diff[:, :span], axis=1, dtype=np.int32) > 0] = value


def _coords(shape, keys, i) -> list[float]:
    try:
        vals = [float(shape[k]) for k in keys]
    except (KeyError, TypeError, ValueError, OverflowError):
        raise AnnotationError(f"shape {i} ({str(shape.get('type'))[:20]}) needs numeric "
                              f"{', '.join(keys)}") from None
    if not all(map(math.isfinite, vals)):
        raise AnnotationError(f"shape {i} ({str(shape.get('type'))[:20]}) has non-finite coordinates")
    return [clamp_coordinate(v) for v in vals]


def _has_outline(shape) -> bool:
    """False for a shape named with ``outline=0`` (filled regions imported from a label image)."""
    return "outline=0" not in str(shape.get("name") or "").replace(" ", "")


def _geometry(shape: dict, i: int):
    """``(kind, geometry, n_points)``: parsed subpaths of a path, ``x0, y0, x1, y1`` of the others."""
    kind = shape.get("type") or ("path" if "path" in shape else "rect")
    if kind == "path":
        subpaths = parse_path(shape.get("path"), fill_only=not _has_outline(shape))
        return kind, subpaths, sum(len(p) for p, _ in subpaths)
    if kind in ("line", "rect", "circle"):
        return kind, _coords(shape, ("x0", "y0", "x1", "y1"), i), 2
    raise AnnotationError(f"shape {i} has unsupported type {str(kind)[:20]!r} (use path, rect, circle or line)")


def check_shape(shape, i: int = 0, *, default_width: float = 3) -> tuple[int, float, str, object, int]:
    """Validate one shape: ``(class_id, width, kind, geometry, n_points)``, or AnnotationError.

    Examples
    --------
    >>> check_shape({"type": "path", "path": "M0,0L4,0", "name": "class=2;width=5"})[:3]
    (2, 5.0, 'path')
    >>> check_shape({"type": "path", "path": "M0,0L1e309,0", "name": "class=2"})
    Traceback (most recent call last):
    ...
    segapp.errors.AnnotationError: shape 0: path has a coordinate out of range (1e309)
    """
    if not isinstance(shape, dict):
        raise AnnotationError(f"shape {i} is not an object")
    try:
        class_id, width = parse_shape_name(shape.get("name"))
        kind, geom, n = _geometry(shape, i)
    except AnnotationError as exc:
        if str(exc).startswith(f"shape {i} "):
            raise
        raise AnnotationError(f"shape {i}: {exc}") from None
    return class_id, default_width if width is None else width, kind, geom, n


_SCALAR_KEYS = {"type", "name", "path", "x0", "y0", "x1", "y1", "xref", "yref", "layer", "editable", "opacity",
                "fillrule", "fillcolor", "visible", "xsizemode", "ysizemode"}
_LINE_KEYS = {"color", "width", "dash"}


def _plain(value, max_len: int = 100) -> bool:
    if isinstance(value, str):
        return len(value) <= max_len
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (bool, int))


def clean_shape(shape: dict) -> dict:
    """A copy of a (checked) shape with only plotly's plain shape keys: nothing nested or odd is stored.

    Examples
    --------
    >>> clean_shape({"type": "path", "path": "M0,0", "name": "class=1", "line": {"width": 2, "x": [[1]]},
    ...              "__proto__": {"a": 1}, "opacity": float("nan")})
    {'type': 'path', 'path': 'M0,0', 'name': 'class=1', 'line': {'width': 2}}
    """
    path_chars = MAX_PATH_CHARS if _has_outline(shape) else MAX_FILL_PATH_CHARS
    out = {k: v for k, v in shape.items() if k in _SCALAR_KEYS and _plain(v, path_chars if k == "path" else 200)}
    line = shape.get("line")
    if isinstance(line, dict):
        line = {k: v for k, v in line.items() if k in _LINE_KEYS and _plain(v, 50)}
        if line:
            out["line"] = line
    return out


def split_valid(shapes, *, default_width: float = 3) -> tuple[list[dict], list[str]]:
    """``(usable shapes, cleaned; one message per unusable shape)``: for callers that keep what they can.

    Examples
    --------
    >>> ok, bad = split_valid([{"path": "M0,0L1,1", "name": "class=1"}, {"path": "M0,0", "name": "class=-1"}])
    >>> len(ok), bad
    (1, ['shape 1: shape class -1 is outside 0..255'])
    """
    ok, bad = [], []
    for i, shape in enumerate(shapes if isinstance(shapes, list) else []):
        try:
            check_shape(shape, i, default_width=default_width)
            ok.append(clean_shape(shape))
        except AnnotationError as exc:
            bad.append(str(exc))
    return ok, bad


def _draw(out, kind: str, geom, value, r, outline: bool = True) -> None:
    h, w = out.shape
    if kind == "path":
        rings = _rings_of(geom)
        if rings:  # even-odd across all closed subpaths: an inner ring is a hole
            _fill_polygon(out, rings, value)
        if not outline:  # fill-only: its open subpaths paint nothing
            return
        for pts, closed in geom:
            _stroke(out, np.vstack([pts, pts[:1]]) if closed else pts, r, value)
        return
    x0, y0, x1, y1 = geom
    if kind == "line":
        _stroke(out, [(x0, y0), (x1, y1)], r, value)
    elif kind == "rect":
        c0, c1 = _span(min(x0, x1) - r, max(x0, x1) + r, w)
        r0, r1 = _span(min(y0, y1) - r, max(y0, y1) + r, h)
        out[r0:r1 + 1, c0:c1 + 1] = value
    else:  # circle
        cx, cy, ax, ay = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2 + r, abs(y1 - y0) / 2 + r
        c0, c1 = _span(cx - ax, cx + ax, w)
        r0, r1 = _span(cy - ay, cy + ay, h)
        if c0 > c1 or r0 > r1:
            return
        xs = (np.arange(c0, c1 + 1) - cx)[None, :] / ax
        ys = (np.arange(r0, r1 + 1) - cy)[:, None] / ay
        out[r0:r1 + 1, c0:c1 + 1][xs * xs + ys * ys <= 1 + 1e-9] = value


def count_points(shapes) -> int:
    """Vertices that are stroked in a shapes list, counted without parsing (for the per-image limit).

    Fill-only shapes (``outline=0``, label images imported as shapes) are not counted:
    they have their own bound (:data:`segapp.limits.MAX_FILL_POINTS`).

    Examples
    --------
    >>> count_points([{"path": "M0,0L1,1L2,2"}, {"type": "rect"}, {"path": "M0,0L9,0L9,9Z", "name": "outline=0"}])
    5
    """
    n = 0
    for shape in shapes if isinstance(shapes, (list, tuple)) else []:
        if not isinstance(shape, dict) or not _has_outline(shape):
            continue
        path = shape.get("path")
        n += len(_NUMBER.findall(path)) // 2 if isinstance(path, str) else 2
    return n


def shapes_to_labels(shapes, shape_hw, *, default_width: float = 3, out: np.ndarray | None = None) -> np.ndarray:
    """Rasterise plotly shapes into a label image (0 = unlabelled), following the module rules.

    Parameters
    ----------
    shapes : list of dict
        Each with ``name`` = ``"class=<id>;width=<px>"`` (:func:`shape_name`).
    shape_hw : tuple
        ``(H, W)`` of the image (extra trailing entries are ignored).
    default_width : float
        Stroke width in image pixels for shapes whose name has no width.
    out : ndarray, optional
        A uint8 ``(H, W)`` label image to paint onto (in place) instead of a blank one: adding
        strokes to stored labels rasterises only the new strokes.

    Returns
    -------
    ndarray, (H, W), uint8

    Raises
    ------
    AnnotationError
        A shape is malformed (see :func:`check_shape`), or there are more shapes or points
        than the limits allow.

    Examples
    --------
    >>> s = {"type": "path", "path": "M1,2L5,2", "name": shape_name(1, 3)}
    >>> shapes_to_labels([s], (5, 7))
    array([[0, 0, 0, 0, 0, 0, 0],
           [1, 1, 1, 1, 1, 1, 1],
           [1, 1, 1, 1, 1, 1, 1],
           [1, 1, 1, 1, 1, 1, 1],
           [0, 0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    h, w = int(shape_hw[0]), int(shape_hw[1])
    if h <= 0 or w <= 0:
        raise AnnotationError(f"image shape must be positive, got {h} x {w}")
    shapes = [] if shapes is None else shapes
    if not isinstance(shapes, (list, tuple)):
        raise AnnotationError(f"shapes must be a list, got {type(shapes).__name__}")
    if len(shapes) > MAX_SHAPES:
        raise AnnotationError(f"{len(shapes):,} shapes on one image; at most {MAX_SHAPES:,} (clear some strokes)")
    parsed = [check_shape(shape, i, default_width=default_width) for i, shape in enumerate(shapes)]
    outlined = [_has_outline(shape) for shape in shapes]
    points = sum(p[4] for p, o in zip(parsed, outlined) if o)
    if points > MAX_POINTS:
        raise AnnotationError(f"the strokes on this image have {points:,} points; at most {MAX_POINTS:,}")
    filled = sum(p[4] for p, o in zip(parsed, outlined) if not o)
    if filled > MAX_FILL_POINTS:
        raise AnnotationError(f"the filled regions on this image have {filled:,} points; at most "
                              f"{MAX_FILL_POINTS:,} (train with the label image instead: segapp train --labels)")
    crossings = sum(_crossings(_rings_of(p[3]), h)[2].sum() for p in parsed if p[2] == "path")
    if crossings > MAX_FILL_CROSSINGS:
        raise AnnotationError(f"the filled shapes on this image cross its rows {crossings:,} times; at most "
                              f"{MAX_FILL_CROSSINGS:,} (simplify or split them)")
    if out is None:
        out = np.zeros((h, w), np.uint8)
    elif out.shape != (h, w) or out.dtype != np.uint8:
        raise ValueError(f"out must be a uint8 array of shape {(h, w)}, got {out.dtype} {out.shape}")
    r_max = max_stroke_width((h, w)) / 2
    for outline, (class_id, width, kind, geom, _) in zip(outlined, parsed):
        _draw(out, kind, geom, class_id, min(float(width) / 2, r_max), outline)
    return out


def apply_relayout(shapes, relayout_data) -> list[dict]:
    """The shapes list after a Dash ``relayoutData`` event; inputs are not modified.

    A ``"shapes"`` key replaces the whole list; ``"shapes[i].key"`` (dotted for nested keys,
    e.g. ``"shapes[0].line.width"``) edits one shape; ``"shapes[i]"`` replaces it, or deletes
    it when the value is None.  Other keys (zoom, pan, dragmode, ...) are ignored.

    Raises
    ------
    AnnotationError
        The event is malformed: not an object, ``shapes`` not a list of objects, an edit of a
        shape that does not exist, of a key that is not a name, or below a value that is not an
        object, or more shapes than :data:`segapp.limits.MAX_SHAPES`.

    Examples
    --------
    >>> old = [{"type": "rect", "x0": 0, "y0": 0, "x1": 2, "y1": 2, "name": "class=1"}]
    >>> new = apply_relayout(old, {"shapes[0].x1": 5, "xaxis.range[0]": 3})
    >>> new[0]["x1"], old[0]["x1"]
    (5, 2)
    >>> apply_relayout(old, {"shapes": "abc"})
    Traceback (most recent call last):
    ...
    segapp.errors.AnnotationError: the drawing event is malformed: 'shapes' must be a list of shapes, got str
    """
    data = {} if relayout_data is None else relayout_data
    if not isinstance(data, dict):
        raise AnnotationError(f"the drawing event is malformed: expected an object, got {type(data).__name__}")
    if "shapes" in data:
        base = data["shapes"]
        if not isinstance(base, list) or not all(isinstance(x, dict) for x in base):
            what = type(base).__name__ if not isinstance(base, list) else "a list holding non-shapes"
            raise AnnotationError(f"the drawing event is malformed: 'shapes' must be a list of shapes, got {what}")
    else:
        base = shapes or []
    if len(base) > MAX_SHAPES:
        raise AnnotationError(f"{len(base):,} shapes on one image; at most {MAX_SHAPES:,} (clear some strokes)")
    result = copy.deepcopy(list(base))
    deleted = set()
    for key, value in data.items():
        m = _EDIT_KEY.match(key) if isinstance(key, str) else None
        if not m:
            if isinstance(key, str) and key.startswith("shapes") and key != "shapes":
                raise AnnotationError(f"the drawing event is malformed: unknown key {key[:40]!r}")
            continue
        i, attr = int(m.group(1)), m.group(2)
        if i >= len(result):
            raise AnnotationError(f"relayout edits shape {i} but only {len(result)} shapes exist")
        if attr is None:
            if value is None:
                deleted.add(i)
            elif isinstance(value, dict):
                result[i] = copy.deepcopy(value)
            else:
                raise AnnotationError(f"the drawing event is malformed: shape {i} must be an object, "
                                      f"got {type(value).__name__}")
            continue
        *parents, leaf = attr.split(".")
        if len(parents) > 3 or not all(_ATTR.match(p) for p in (*parents, leaf)):
            raise AnnotationError(f"the drawing event is malformed: cannot edit {key[:40]!r}")
        target = result[i]
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise AnnotationError(f"the drawing event is malformed: {key[:40]!r} edits inside a "
                                      f"{type(target).__name__}")
        target[leaf] = copy.deepcopy(value)
    return [s for i, s in enumerate(result) if i not in deleted]
