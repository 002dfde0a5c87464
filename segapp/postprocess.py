"""Clean up a prediction, split it into objects, and measure them.

Two ways to smooth: :func:`smooth_proba` blurs per-class probability maps
(use it when you have ``predict_proba`` output: confident pixels win), while
``clean_labels(smooth=r)`` takes a majority vote over a disk (use it when you
only have a label image).  :func:`clean_labels` also merges small objects into
their neighbours and fills holes; :func:`instances` turns a foreground mask
into numbered objects; :func:`measure`, :func:`summarize` and
:func:`summary_text` report sizes, in physical units given a pixel size.
"""

from __future__ import annotations

import csv
import io as _io
import math

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import label as _cc, regionprops_table
from skimage.morphology import disk, h_maxima
from skimage.segmentation import relabel_sequential, watershed

from .errors import ConfigError, ImageReadError

__all__ = ["clean_labels", "smooth_proba", "instances", "measure", "summarize", "summary_text", "to_csv"]

_EIGHT = np.ones((3, 3), bool)
MEASURE_COLUMNS = ["label", "area", "perimeter", "eccentricity", "equivalent_diameter",
                   "centroid_x", "centroid_y", "unit"]   # + mean_intensity[_<c>] before unit


def _as_2d(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ImageReadError(f"{what} must be a 2-D image, got shape {a.shape}")
    return a


def smooth_proba(proba, sigma: float) -> np.ndarray:
    """Gaussian-smooth per-class probability maps and renormalise them.

    ``proba`` is (H, W, K) (e.g. ``Segmenter.predict_proba``), ``sigma`` the
    Gaussian standard deviation in pixels (0 = unchanged).  Returns (H, W, K)
    float32 summing to 1 over the last axis; ``argmax(axis=2)`` gives labels.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.zeros((5, 5, 2), np.float32); p[..., 0] = 1; p[2, 2] = [0.4, 0.6]
    >>> int(smooth_proba(p, 1.0)[2, 2].argmax())    # lone pixel outvoted
    0
    """
    proba = np.asarray(proba, np.float32)
    if proba.ndim != 3:
        raise ImageReadError(f"probabilities must be (H, W, K), got shape {proba.shape}")
    if sigma <= 0:
        return proba.copy()
    out = ndi.gaussian_filter(proba, sigma=(sigma, sigma, 0), mode="nearest")
    total = out.sum(axis=2, keepdims=True)
    np.divide(out, total, out=out, where=total > 0)
    return out


def _majority(labels: np.ndarray, radius: int) -> np.ndarray:
    """Most frequent label in a disk around each pixel; ties keep the pixel's own label."""
    fp = disk(radius).astype(np.float32)
    best_n = np.full(labels.shape, -1.0, np.float32)
    best = labels.copy()
    for c in np.unique(labels):
        own = labels == c
        n = ndi.correlate(own.astype(np.float32), fp, mode="constant") + 0.5 * own
        better = n > best_n
        best[better], best_n[better] = c, n[better]
    return best


def _merge_small(labels: np.ndarray, min_size: int, classes) -> np.ndarray:
    """Give every small connected region of ``classes`` the majority class around it."""
    regions = _cc(labels, background=np.iinfo(labels.dtype).min, connectivity=2)  # one id per region
    area = np.bincount(regions.ravel())
    region_class = np.zeros(len(area), labels.dtype)
    region_class[regions.ravel()] = labels.ravel()
    small = (area < min_size) & np.isin(region_class, classes)
    small[0] = False
    out = labels.copy()
    pending = small[regions]
    cls_ids = np.unique(region_class[1:])
    cls_idx = np.searchsorted(cls_ids, labels)
    h, w = labels.shape
    compact = np.cumsum(small) - 1                          # small region id -> row of `votes`
    k = len(cls_ids)
    while pending.any():
        votes = np.zeros(int(small.sum()) * k, np.int64)
        for dy, dx in [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b]:
            ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
            xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
            sel = pending[yd, xd] & ~pending[ys, xs]          # pending pixel next to a settled one
            flat = compact[regions[yd, xd][sel]] * k + cls_idx[ys, xs][sel]
            votes += np.bincount(flat, minlength=votes.size)
        votes = votes.reshape(-1, k)
        decided = np.zeros(len(area), bool)
        decided[small] = votes.sum(axis=1) > 0
        if not decided.any():
            break                                           # nothing settled nearby: keep as is
        settle = pending & decided[regions]
        new_idx = votes.argmax(axis=1)[compact[regions[settle]]]
        cls_idx[settle] = new_idx
        out[settle] = cls_ids[new_idx]
        pending &= ~settle
    return out


def _fill(labels: np.ndarray, fill_holes, classes) -> np.ndarray:
    out = labels.copy()
    for c in classes:
        own = out == c
        holes = ndi.binary_fill_holes(own) & ~own
        if fill_holes is not True:                          # an int: largest hole to fill
            hl, _ = ndi.label(holes)
            holes &= (np.bincount(hl.ravel()) <= int(fill_holes))[hl]
        out[holes] = c
    return out


def clean_labels(labels, *, smooth: int = 0, min_size: int = 0, fill_holes=False, classes=None):
    """Smooth a class-id image, merge small objects into neighbours, fill holes.

    Steps run in that order.  Connected regions use 8-connectivity.

    Parameters
    ----------
    labels : (H, W) array of int or bool
        Class ids (0 = unlabelled is treated as a value like the others, but
        is never in the default ``classes``).
    smooth : int
        Radius in pixels of a majority (mode) filter over a disk; 0 = off.
    min_size : int
        Regions of a class in ``classes`` with fewer pixels are relabelled to
        the class most common along their border (never left as 0).
    fill_holes : bool or int
        Fill enclosed holes of each class in ``classes``; an int fills only
        holes up to that many pixels.  With ``classes=None`` the value most
        common along the image border is taken to be the background and its
        "holes" (the objects) are left alone; pass ``classes`` to choose.
    classes : sequence of int, optional
        Class ids that ``min_size`` and ``fill_holes`` act on.  Default: all
        non-zero ids present (minus the background, for ``fill_holes``).

    Returns
    -------
    ndarray of the same shape and dtype as ``labels``.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.ones((5, 7), np.uint8); lab[1:4, 1:5] = 2; lab[2, 2:4] = 1; lab[0, 6] = 3
    >>> clean_labels(lab, min_size=2, fill_holes=True)
    array([[1, 1, 1, 1, 1, 1, 1],
           [1, 2, 2, 2, 2, 1, 1],
           [1, 2, 2, 2, 2, 1, 1],
           [1, 2, 2, 2, 2, 1, 1],
           [1, 1, 1, 1, 1, 1, 1]], dtype=uint8)
    """
    labels = _as_2d(labels, "labels")
    dtype = labels.dtype
    if dtype.kind not in "biu":
        raise ImageReadError(f"labels must be an integer image, got dtype {dtype}")
    if smooth < 0 or min_size < 0 or (fill_holes is not True and fill_holes is not False and fill_holes < 0):
        raise ConfigError("smooth, min_size and fill_holes must not be negative")
    out = labels.astype(np.int64)
    if smooth:
        out = _majority(out, int(smooth))
    ids = np.unique(out)
    chosen = ids[ids != 0] if classes is None else np.asarray(list(classes), np.int64)
    if min_size > 1 and out.size:
        out = _merge_small(out, int(min_size), chosen)
    if fill_holes is not False and out.size:
        targets = chosen
        if classes is None:                                 # background: commonest on the border
            edge = np.concatenate([out[0], out[-1], out[1:-1, 0], out[1:-1, -1]])
            values, counts = np.unique(edge, return_counts=True)
            targets = np.setdiff1d(chosen, [values[counts.argmax()]])
        out = _fill(out, fill_holes, targets)
    return out.astype(dtype)


def object_scale(mask, comps=None, dist=None) -> float:
    """Typical object radius in pixels: the area-weighted median, over connected components, of
    their largest distance to the background (a clump of touching objects has about one object's
    radius; specks of noise carry almost no area, so they do not drag the scale down).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:50, :50]
    >>> round(object_scale(np.hypot(yy - 25, xx - 25) < 10))
    10
    """
    mask = _as_2d(mask, "mask") != 0
    if comps is None:
        comps, _ = ndi.label(mask, structure=_EIGHT)
    if dist is None:
        dist = ndi.distance_transform_edt(mask)
    n = int(comps.max())
    if n == 0:
        return 0.0
    idx = np.arange(1, n + 1)
    peak = np.asarray(ndi.maximum(dist, comps, index=idx), float)
    area = np.bincount(comps.ravel(), minlength=n + 1)[1:].astype(float)
    order = np.argsort(peak)                      # area-weighted median: specks weigh nothing
    cum = np.cumsum(area[order])
    return float(peak[order][np.searchsorted(cum, cum[-1] / 2)])


def _markers(dist, comps, min_distance, depth) -> np.ndarray:
    """Seeds: distance-transform peaks rising ``depth`` above the saddle to a higher peak
    (h-maxima), at least ``min_distance`` apart (higher peaks win); labelled 1..N."""
    from scipy.spatial import cKDTree

    peaks = h_maxima(dist, depth) if depth > 0 else dist == ndi.maximum_filter(dist, 3)
    regions, n = ndi.label(peaks & (comps > 0), structure=_EIGHT)
    markers = np.zeros(dist.shape, np.int32)
    if n == 0:
        return markers
    centres = np.array(ndi.maximum_position(dist, regions, index=np.arange(1, n + 1)))
    order = np.argsort(-dist[tuple(centres.T)], kind="stable")
    centres = centres[order]
    keep = np.ones(len(centres), bool)
    tree = cKDTree(centres)
    for i, j in sorted(tree.query_pairs(min_distance - 1e-9)):   # i < j: i is the higher peak
        if keep[i] and comps[tuple(centres[i])] == comps[tuple(centres[j])]:
            keep[j] = False
    centres = centres[keep]
    markers[tuple(centres.T)] = np.arange(1, len(centres) + 1)
    return markers


def instances(mask, *, split_touching=None, min_distance=None, min_size=None,
              depth=None) -> np.ndarray:
    """Number the objects of a foreground mask, splitting touching ones.

    Parameters
    ----------
    mask : (H, W) array
        Foreground where non-zero (e.g. ``labels == 2``).
    split_touching : bool, optional
        Split connected components (8-connectivity) by a watershed on the
        inverted distance transform; False = connected components.  Default:
        ``segapp.defaults.OBJECTS``.
    min_distance : float, optional
        Smallest distance in pixels between two seeds.  Default: half the
        typical object radius (:func:`object_scale`), so it follows the objects.
    min_size : int, optional
        Objects with fewer pixels (after splitting) are dropped.  Default: a
        fraction (``segapp.defaults.OBJECTS["min_area"]``) of the typical object's
        area, pi * :func:`object_scale` ** 2 — noise specks, not small objects.
    depth : float, optional
        A distance-transform peak seeds its own object only if it rises this
        many pixels above the saddle joining it to a higher peak (a neck at
        least this much narrower than the object).  Default: a fraction of the
        typical object radius (``segapp.defaults.OBJECTS["depth"]``), so that
        uneven outlines of one object are not cut.

    Returns
    -------
    (H, W) int32 labels, 0 = background, objects numbered 1..N.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:40, :60]
    >>> two = (np.hypot(yy - 20, xx - 20) < 12) | (np.hypot(yy - 20, xx - 38) < 12)
    >>> int(instances(two).max()), int(instances(two, split_touching=False).max())
    (2, 1)
    """
    from . import defaults

    opts = defaults.OBJECTS
    split_touching = opts["split_touching"] if split_touching is None else split_touching
    mask = _as_2d(mask, "mask") != 0
    comps, n = ndi.label(mask, structure=_EIGHT)
    if split_touching and n:
        dist = ndi.distance_transform_edt(mask)
        scale = object_scale(mask, comps, dist)
        if min_distance is None:
            min_distance = max(1.0, opts["min_distance"] * scale)
        if depth is None:
            depth = opts["depth"] * scale
        markers = _markers(dist, comps, min_distance, depth)
        out = watershed(-dist, markers, mask=mask, connectivity=2)
        missed = mask & (out == 0)                        # components that got no seed
        if missed.any():
            extra, _ = ndi.label(missed, structure=_EIGHT)
            out[missed] = extra[missed] + out.max()
    else:
        out = comps
    if min_size is None:                                  # a fraction of the typical object's area
        scale = object_scale(mask, comps) if n else 0.0
        min_size = opts["min_area"] * np.pi * scale ** 2
    if min_size > 1:
        area = np.bincount(out.ravel())
        out = np.where(area[out] < min_size, 0, out)
    return relabel_sequential(out.astype(np.int32))[0]


def _check_pixel_size(pixel_size):
    if pixel_size is None:
        return None
    try:
        s = float(pixel_size)
    except (TypeError, ValueError):
        s = math.nan
    if not (math.isfinite(s) and s > 0):
        raise ConfigError(f"pixel_size must be one positive number, got {pixel_size!r}")
    return s


def measure(instances, intensity=None, pixel_size=None, unit: str = "µm") -> list[dict]:
    """Per-object measurements, one dict per object.

    Parameters
    ----------
    instances : (H, W) array of int
        Instance labels (0 = background), e.g. from :func:`instances`.
    intensity : (H, W) or (H, W, C) array, optional
        Adds ``mean_intensity``; with C > 1 channels also ``mean_intensity_<c>``
        per channel (``mean_intensity`` is then their mean).
    pixel_size : float, optional
        Pixel side length in ``unit``; areas become unit², lengths unit.
    unit : str
        Name of the physical unit; rows carry ``unit`` ("px" without pixel_size).

    Returns
    -------
    list of dict
        Keys ``label, area, perimeter, eccentricity, equivalent_diameter,
        centroid_x, centroid_y, unit`` (+ intensity).  Perimeter is skimage's
        estimate through boundary pixel centres (a 10 x 10 square gives 36).

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((20, 20), int); lab[5:15, 5:15] = 1
    >>> r = measure(lab, pixel_size=0.5)[0]
    >>> r["area"], r["perimeter"], r["centroid_x"], r["unit"]
    (25.0, 18.0, 4.75, 'µm')
    """
    lab, s = _as_2d(instances, "instances"), _check_pixel_size(pixel_size)
    if lab.dtype.kind not in "biu":
        raise ImageReadError(f"instances must be an integer label image, got dtype {lab.dtype}")
    props = ["label", "area", "perimeter", "eccentricity", "equivalent_diameter_area", "centroid"]
    img = None
    if intensity is not None:
        img = np.asarray(intensity, np.float64)
        if img.shape[:2] != lab.shape or img.ndim not in (2, 3):
            raise ImageReadError(f"intensity shape {img.shape} does not match instances shape {lab.shape}")
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        props.append("intensity_mean")
    t = regionprops_table(lab.astype(np.int32), intensity_image=img, properties=props)
    k = 1.0 if s is None else s
    cols = {"label": t["label"], "area": t["area"] * k * k, "perimeter": t["perimeter"] * k,
            "eccentricity": t["eccentricity"], "equivalent_diameter": t["equivalent_diameter_area"] * k,
            "centroid_x": t["centroid-1"] * k, "centroid_y": t["centroid-0"] * k}
    if img is not None and img.ndim == 2:
        cols["mean_intensity"] = t["intensity_mean"]
    elif img is not None:
        per = {f"mean_intensity_{c}": t[f"intensity_mean-{c}"] for c in range(img.shape[2])}
        cols["mean_intensity"] = np.mean(list(per.values()), axis=0)
        cols.update(per)
    unit = "px" if s is None else unit
    return [{**{key: v[i].item() for key, v in cols.items()}, "unit": unit} for i in range(len(t["label"]))]


def _stats(values: np.ndarray) -> dict:
    if len(values) == 0:
        return dict.fromkeys(["mean", "median", "std", "cv", "min", "max"])
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": mean, "median": float(np.median(values)), "std": std,
            "cv": std / mean if mean else None, "min": float(values.min()), "max": float(values.max())}


def summarize(rows: list[dict], pixel_size=None, unit: str = "µm") -> dict:
    """Count and size statistics of measured objects (a plate reader's summary panel).

    ``rows`` come from :func:`measure`.  ``pixel_size`` (with ``unit``)
    converts rows measured in pixels; rows already in physical units are not
    converted twice (ConfigError).

    Returns
    -------
    dict
        ``count``, ``unit`` and, for ``area`` (unit²) and ``equivalent_diameter``
        (unit), ``{mean, median, std, cv, min, max}`` (sample std; cv = std /
        mean).  With no objects every statistic is None.

    Examples
    --------
    >>> rows = [{"area": 100.0, "equivalent_diameter": 11.0, "unit": "px"},
    ...         {"area": 300.0, "equivalent_diameter": 19.0, "unit": "px"}]
    >>> s = summarize(rows, pixel_size=0.5)
    >>> s["count"], s["area"]["mean"], s["equivalent_diameter"]["median"], s["unit"]
    (2, 50.0, 7.5, 'µm')
    """
    s = _check_pixel_size(pixel_size)
    row_unit = rows[0].get("unit", "px") if rows else "px"
    if s is not None and row_unit != "px":
        raise ConfigError(f"rows are already in {row_unit}: "
                          "pass pixel_size to measure() or to summarize(), not both")
    k = 1.0 if s is None else s
    area = np.array([r["area"] for r in rows], float) * k * k
    diam = np.array([r["equivalent_diameter"] for r in rows], float) * k
    return {"count": len(rows), "unit": unit if s is not None else row_unit,
            "area": _stats(area), "equivalent_diameter": _stats(diam)}


def _fmt(x: float) -> str:
    a = abs(x)
    return f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 1 else f"{x:.3g}"


def summary_text(summary: dict, noun: str = "object", plural: str | None = None) -> str:
    """One line such as ``"146 nuclei, mean size 14.9 µm (median 14.7 µm, CV 12%)"``.

    Size is the equivalent diameter (diameter of the disk of the same area).

    Examples
    --------
    >>> rows = [{"area": 100.0, "equivalent_diameter": 11.0, "unit": "px"},
    ...         {"area": 300.0, "equivalent_diameter": 19.0, "unit": "px"}]
    >>> summary_text(summarize(rows, pixel_size=0.5), noun="nucleus", plural="nuclei")
    '2 nuclei, mean size 7.50 µm (median 7.50 µm, CV 38%)'
    >>> summary_text(summarize([]))
    '0 objects'
    """
    n, unit = summary["count"], summary["unit"]
    words = noun if n == 1 else (plural or noun + "s")
    if n == 0:
        return f"0 {words}"
    d = summary["equivalent_diameter"]
    if n == 1:
        return f"1 {words}, size {_fmt(d['mean'])} {unit}"
    cv = "" if d["cv"] is None else f", CV {100 * d['cv']:.0f}%"
    return f"{n} {words}, mean size {_fmt(d['mean'])} {unit} (median {_fmt(d['median'])} {unit}{cv})"


def to_csv(rows: list[dict]) -> str:
    """Rows as CSV text with a header line (measurement columns only when empty).

    Examples
    --------
    >>> print(to_csv([{"label": 1, "area": 12.5, "unit": "px"}]), end="")
    label,area,unit
    1,12.5,px
    """
    cols = list(dict.fromkeys(k for r in rows for k in r)) if rows else MEASURE_COLUMNS
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()
