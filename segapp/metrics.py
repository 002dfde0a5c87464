"""Agreement between a prediction and ground truth: confusion, IoU / F1, object F1.

Semantic metrics compare two class-id images pixel by pixel; :func:`object_f1`
compares two *instance* label images object by object.  Class ids are used as
they are (0 is a class like any other unless passed as ``ignore``).  Classes
absent from both images are left out of every result instead of showing NaN.

Examples
--------
>>> import numpy as np
>>> gt = np.array([[1, 1, 2, 2]])
>>> pred = np.array([[1, 2, 2, 2]])
>>> r = evaluate(pred, gt)
>>> r["per_class"]["1"]["iou"], r["per_class"]["2"]["iou"], r["pixel_accuracy"]
(0.5, 0.6666666666666666, 0.75)
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .errors import ImageReadError

__all__ = ["confusion", "per_class_scores", "mean_iou", "evaluate", "object_f1", "interpret_mask"]


def _as_labels(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ImageReadError(f"{what} must hold integer class ids, got non-integer values")
        return a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise ImageReadError(f"{what} must be an integer label image, got dtype {a.dtype}")
    return a


def _check_pair(pred, gt, mask=None):
    pred, gt = _as_labels(pred, "prediction"), _as_labels(gt, "ground truth")
    if pred.shape != gt.shape:
        raise ImageReadError(f"prediction shape {pred.shape} does not match ground truth shape {gt.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != gt.shape:
            raise ImageReadError(f"mask shape {mask.shape} does not match ground truth shape {gt.shape}")
        mask = mask.astype(bool)
    return pred, gt, mask


def _valid(gt: np.ndarray, ignore, mask) -> np.ndarray | None:
    """Boolean selection of the pixels that count (None = all of them)."""
    keep = None if mask is None else mask.ravel()
    if ignore is not None:
        ign = np.atleast_1d(np.asarray(ignore))
        drop = np.isin(gt.ravel(), ign)
        keep = ~drop if keep is None else keep & ~drop
    return keep


def _present(*arrays: np.ndarray) -> np.ndarray:
    """Sorted union of the values in the arrays (fast path for small non-negative ids)."""
    arrays = [a for a in arrays if a.size]
    if not arrays:
        return np.zeros(0, np.int64)
    lo = min(int(a.min()) for a in arrays)
    hi = max(int(a.max()) for a in arrays)
    if lo >= 0 and hi < (1 << 20):
        seen = np.zeros(hi + 1, bool)
        for a in arrays:
            seen[a] = True
        return np.flatnonzero(seen).astype(np.int64)
    return np.unique(np.concatenate([np.unique(a) for a in arrays])).astype(np.int64)


def _index(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each value in sorted ``labels`` and whether it is in there at all."""
    pos = np.searchsorted(labels, values)
    pos = np.minimum(pos, max(len(labels) - 1, 0))
    found = labels[pos] == values if len(labels) else np.zeros(values.shape, bool)
    return pos, found


def confusion(pred, gt, labels: Sequence[int] | None = None, ignore=None, mask=None) -> np.ndarray:
    """Pixel confusion matrix, rows = ground-truth class, columns = predicted class.

    Parameters
    ----------
    pred, gt : array of int
        Class-id images of the same shape.
    labels : sequence of int, optional
        Class ids of the rows/columns (sorted ascending).  Default: union of
        the ids in ``pred`` and ``gt`` (after ``ignore``/``mask``).  Pixels whose
        gt or pred id is not listed are not counted.
    ignore : int or sequence of int, optional
        Ground-truth ids to leave out (e.g. ``0`` for unlabelled pixels).
    mask : array of bool, optional
        Only pixels where ``mask`` is True count.

    Returns
    -------
    (K, K) ndarray of int64

    Raises
    ------
    ImageReadError
        If shapes differ or the images do not hold integer ids.

    Examples
    --------
    >>> confusion([[1, 2, 2]], [[1, 1, 2]])
    array([[1, 1],
           [0, 1]])
    """
    pred, gt, mask = _check_pair(pred, gt, mask)
    keep = _valid(gt, ignore, mask)
    p, g = pred.ravel(), gt.ravel()
    if keep is not None:
        p, g = p[keep], g[keep]
    labels = _present(p, g) if labels is None else np.unique(np.asarray(labels, np.int64))
    k = len(labels)
    if k and labels[-1] - labels[0] + 1 == k:               # contiguous ids: offsets are indices
        gi, pi = g.astype(np.int64) - labels[0], p.astype(np.int64) - labels[0]
        ok = (gi < k) & (pi < k) & (gi >= 0) & (pi >= 0)
    else:
        gi, gok = _index(g.astype(np.int64), labels)
        pi, pok = _index(p.astype(np.int64), labels)
        ok = gok & pok
    if not ok.all():
        gi, pi = gi[ok], pi[ok]
    return np.bincount(gi * k + pi, minlength=k * k).reshape(k, k).astype(np.int64)


def _scores_from_confusion(cm: np.ndarray, labels: Iterable[int]) -> dict:
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    out = {}
    for i, c in enumerate(labels):
        if support[i] == 0 and predicted[i] == 0:
            continue                       # absent from both: omitted, not NaN
        fp, fn = predicted[i] - tp[i], support[i] - tp[i]
        out[int(c)] = {
            "iou": float(tp[i] / (tp[i] + fp + fn)),
            "f1": float(2 * tp[i] / (2 * tp[i] + fp + fn)),
            "precision": float(tp[i] / predicted[i]) if predicted[i] else 0.0,
            "recall": float(tp[i] / support[i]) if support[i] else 0.0,
            "support": int(support[i]),
        }
    return out


def per_class_scores(pred, gt, labels=None, ignore=None, mask=None) -> dict:
    """IoU, F1, precision, recall and support (gt pixel count) for each class.

    Parameters are as for :func:`confusion`.  Classes absent from both images
    are omitted; precision (recall) of a class never predicted (never in gt)
    is 0.0.

    Returns
    -------
    dict
        ``{class_id: {"iou", "f1", "precision", "recall", "support"}}``

    Examples
    --------
    >>> s = per_class_scores([[1, 2, 2]], [[1, 1, 2]])
    >>> s[2]
    {'iou': 0.5, 'f1': 0.6666666666666666, 'precision': 0.5, 'recall': 1.0, 'support': 1}
    """
    pred, gt, mask = _check_pair(pred, gt, mask)
    if labels is None:
        keep = _valid(gt, ignore, mask)
        p, g = (pred.ravel(), gt.ravel()) if keep is None else (pred.ravel()[keep], gt.ravel()[keep])
        labels = _present(p, g)
    labels = np.unique(np.asarray(labels, np.int64))
    return _scores_from_confusion(confusion(pred, gt, labels, ignore, mask), labels)


def mean_iou(pred, gt, labels=None, ignore=None, mask=None) -> float:
    """Mean IoU over the classes present in ``pred`` or ``gt`` (NaN if none).

    Examples
    --------
    >>> round(mean_iou([[1, 2, 2]], [[1, 1, 2]]), 3)
    0.5
    """
    s = per_class_scores(pred, gt, labels, ignore, mask)
    return float(np.mean([v["iou"] for v in s.values()])) if s else float("nan")


def evaluate(pred, gt, mask=None, ignore=None) -> dict:
    """All semantic metrics as a JSON-ready dict (what ``python -m segapp evaluate`` prints).

    Parameters
    ----------
    pred, gt : array of int
        Predicted and ground-truth class-id images of the same shape.
    mask : array of bool, optional
        Only pixels where ``mask`` is True count.
    ignore : int or sequence of int, optional
        Ground-truth ids to leave out (e.g. ``0`` = unlabelled).

    Returns
    -------
    dict
        ``classes`` (ids in confusion order), ``per_class`` (``{"<id>": {iou,
        f1, precision, recall, support}}``), ``miou``, ``mean_f1``,
        ``pixel_accuracy``, ``n_pixels`` and ``confusion`` (list of lists, rows
        = gt, columns = pred).  Means and accuracy are None when no pixel counts.

    Raises
    ------
    ImageReadError
        If the shapes differ (one-line message).

    Examples
    --------
    >>> r = evaluate([[1, 2, 2, 3]], [[1, 1, 2, 2]])
    >>> r["classes"], r["confusion"], r["pixel_accuracy"]
    ([1, 2, 3], [[1, 1, 0], [0, 1, 1], [0, 0, 0]], 0.5)
    >>> r["per_class"]["3"]["iou"]
    0.0
    """
    pred, gt, mask = _check_pair(pred, gt, mask)
    keep = _valid(gt, ignore, mask)
    p, g = (pred.ravel(), gt.ravel()) if keep is None else (pred.ravel()[keep], gt.ravel()[keep])
    labels = _present(p, g)
    cm = confusion(p, g, labels)
    scores = _scores_from_confusion(cm, labels)
    n = int(cm.sum())
    return {
        "classes": [int(c) for c in labels],
        "per_class": {str(c): v for c, v in scores.items()},
        "miou": float(np.mean([v["iou"] for v in scores.values()])) if scores else None,
        "mean_f1": float(np.mean([v["f1"] for v in scores.values()])) if scores else None,
        "pixel_accuracy": float(np.trace(cm) / n) if n else None,
        "n_pixels": n,
        "confusion": cm.tolist(),
    }


def _overlap(pred: np.ndarray, gt: np.ndarray):
    """Sparse IoU between every overlapping (gt, pred) instance pair via a contingency table."""
    g_ids, g_inv = np.unique(gt.ravel(), return_inverse=True)
    p_ids, p_inv = np.unique(pred.ravel(), return_inverse=True)
    g_area = np.bincount(g_inv, minlength=len(g_ids))
    p_area = np.bincount(p_inv, minlength=len(p_ids))
    both = (gt.ravel() != 0) & (pred.ravel() != 0)
    pairs, inter = np.unique(g_inv[both].astype(np.int64) * len(p_ids) + p_inv[both], return_counts=True)
    gi, pi = pairs // len(p_ids), pairs % len(p_ids)
    iou = inter / (g_area[gi] + p_area[pi] - inter)
    return gi, pi, iou, int(np.count_nonzero(g_ids)), int(np.count_nonzero(p_ids))


def object_f1(pred_instances, gt_instances, iou_threshold: float = 0.5) -> dict:
    """Object-level detection scores with one-to-one matching on IoU.

    A predicted and a ground-truth object match when their IoU exceeds
    ``iou_threshold``.  For thresholds >= 0.5 such matches are unique by
    construction; below 0.5 pairs are matched greedily by decreasing IoU.

    Parameters
    ----------
    pred_instances, gt_instances : array of int
        Instance label images (0 = background, 1..N objects), same shape.
    iou_threshold : float
        Minimum IoU (exclusive) for a match.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1``,
        ``n_pred``, ``n_gt`` and ``mean_matched_iou`` (None without matches).
        With nothing to find and nothing found, precision = recall = f1 = 1.0.

    Examples
    --------
    >>> import numpy as np
    >>> gt = np.zeros((10, 10), int); gt[1:4, 1:4] = 1; gt[6:9, 6:9] = 2
    >>> pred = np.zeros((10, 10), int); pred[1:4, 1:4] = 5; pred[6:9, 0:3] = 7
    >>> r = object_f1(pred, gt)
    >>> r["tp"], r["fp"], r["fn"], r["f1"]
    (1, 1, 1, 0.5)
    """
    pred, gt, _ = _check_pair(pred_instances, gt_instances)
    gi, pi, iou, n_gt, n_pred = _overlap(pred, gt)
    valid = iou > iou_threshold
    gi, pi, iou = gi[valid], pi[valid], iou[valid]
    if iou_threshold < 0.5 and len(iou):
        used_g, used_p, keep = set(), set(), []
        for k in np.argsort(-iou, kind="stable"):
            if gi[k] not in used_g and pi[k] not in used_p:
                used_g.add(gi[k]); used_p.add(pi[k]); keep.append(k)
        gi, pi, iou = gi[keep], pi[keep], iou[keep]
    tp = int(len(iou))
    fp, fn = n_pred - tp, n_gt - tp
    precision = tp / n_pred if n_pred else (1.0 if n_gt == 0 else 0.0)
    recall = tp / n_gt if n_gt else (1.0 if n_pred == 0 else 0.0)
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": float(precision), "recall": float(recall),
            "f1": float(f1), "n_pred": n_pred, "n_gt": n_gt,
            "mean_matched_iou": float(iou.mean()) if tp else None}


# -- ground-truth masks in the forms people have ---------------------------------------------------
def _hex(color: str) -> tuple[int, int, int]:
    c = str(color).lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _name(c: dict) -> str:
    return str(c.get("name") or f"class {c['id']}")


def interpret_mask(mask, classes) -> tuple[np.ndarray, str]:
    """A ground-truth mask as class ids (0 = not scored), from any of the forms people have.

    Parameters
    ----------
    mask : array
        ``(H, W)`` values or ``(H, W, 3)`` colours, as :func:`segapp.io.read_mask` returns them.
    classes : list of dict
        The segmentation's classes, ``{"id", "name", "color"}`` (name and colour optional), ids 1..K.

    Returns
    -------
    labels : ndarray of int32, (H, W)
        Class ids; 0 where the mask says nothing (not scored).
    how : str
        One line saying how the mask was read (shown next to the scores).

    The forms, tried in this order:

    1. **binary**, with two classes: exactly two values ``{0, v}`` (0/1, 0/255, 0/65535, ...) ->
       0 is the first class (background), ``v`` the second;
    2. **class ids**: values within ``{0} ∪ ids`` (0 = unlabelled, not scored);
    3. **instances**, with two classes: 0 and more than two object ids -> background / objects;
    4. **colour-coded** ``(H, W, 3)``: each colour one class's colour (nearest within a JPEG's
       tolerance); black, unless a class is black, is unlabelled.

    Anything else raises ImageReadError saying exactly what is expected.

    Examples
    --------
    >>> import numpy as np
    >>> classes = [{"id": 1, "name": "Background", "color": "#1f77b4"}, {"id": 2, "name": "Nucleus",
    ...                                                                  "color": "#d62728"}]
    >>> labels, how = interpret_mask(np.array([[0, 255], [255, 0]]), classes)
    >>> labels.tolist(), how
    ([[1, 2], [2, 1]], 'binary mask: 0 → Background, 255 → Nucleus')
    >>> interpret_mask(np.array([[0, 1, 2]]), classes)[0].tolist()
    [[0, 1, 2]]
    >>> interpret_mask(np.array([[[214, 39, 40], [31, 119, 180], [0, 0, 0]]]), classes)
    (array([[2, 1, 0]], dtype=int32), 'colour-coded mask: Background, Nucleus by their colours (black not scored)')
    >>> interpret_mask(np.array([[0, 7, 9]]), classes + [{"id": 3}])
    Traceback (most recent call last):
    ...
    segapp.errors.ImageReadError: ground truth values 0, 7, 9 are not class ids 1..3: save it with the class ids 1, 2, 3 (0 = not scored), or in the classes' colours
    """
    m = np.asarray(mask)
    classes = [c for c in classes if int(c["id"]) > 0]
    if not classes:
        raise ImageReadError("no classes to score against: segment the image first")
    ids = [int(c["id"]) for c in classes]
    if m.ndim == 3:
        return _colour_mask(m, classes)
    if m.ndim != 2:
        raise ImageReadError(f"a ground-truth mask must be a 2-D image, got shape {m.shape}")
    m = m.astype(np.int64, copy=False)
    values = np.unique(m)
    shown = ", ".join(str(int(v)) for v in values[:6]) + (", …" if values.size > 6 else "")
    if len(ids) == 2 and values.size == 2 and values[0] == 0:
        labels = np.where(m == 0, ids[0], ids[1]).astype(np.int32)
        return labels, f"binary mask: 0 → {_name(classes[0])}, {int(values[1])} → {_name(classes[1])}"
    if set(values.tolist()) <= {0, *ids}:
        return m.astype(np.int32), "class ids" + (" (0 not scored)" if values[0] == 0 else "")
    if len(ids) == 2 and values[0] == 0 and values.size > 3:
        labels = np.where(m == 0, ids[0], ids[1]).astype(np.int32)
        return labels, (f"instance mask ({values.size - 1} objects): 0 → {_name(classes[0])}, "
                        f"objects → {_name(classes[1])}")
    raise ImageReadError(
        f"ground truth values {shown} are not class ids {min(ids)}..{max(ids)}: save it with the class ids "
        f"{', '.join(map(str, ids))} (0 = not scored)" + (", as a 0/255 binary mask" if len(ids) == 2 else "")
        + ", or in the classes' colours")


def _colour_mask(m: np.ndarray, classes: list[dict]) -> tuple[np.ndarray, str]:
    """Colour-coded mask -> class ids by the nearest class colour (see :func:`interpret_mask`)."""
    with_colour = [c for c in classes if c.get("color")]
    if not with_colour:
        raise ImageReadError("this mask is in colour but the classes have no colours: save it with the class ids")
    palette = np.array([_hex(c["color"]) for c in with_colour], np.int64)
    ids = np.array([int(c["id"]) for c in with_colour], np.int32)
    black_is_class = bool((palette == 0).all(1).any())
    colours, inverse = np.unique(m.reshape(-1, 3).astype(np.int64), axis=0, return_inverse=True)
    dist = np.abs(colours[:, None, :] - palette[None, :, :]).max(-1)   # (n colours, n classes), 0..255
    nearest, gap = dist.argmin(1), dist.min(1)
    value = ids[nearest]
    black = (colours == 0).all(1)
    if not black_is_class:
        value[black] = 0
    bad = (gap > 48) & ~(black & ~black_is_class)
    if bad.any():
        listed = ", ".join("#%02x%02x%02x" % tuple(int(x) for x in colours[i]) for i in np.flatnonzero(bad)[:3])
        known = ", ".join(f"{_name(c)} {c['color']}" for c in with_colour)
        raise ImageReadError(f"colours {listed} in the mask are none of the classes' colours ({known}); "
                             "save the ground truth in those colours or as class ids")
    labels = value[inverse.reshape(-1)].reshape(m.shape[:2]).astype(np.int32)
    note = " (black not scored)" if black.any() and not black_is_class else ""
    names = ", ".join(_name(c) for c in with_colour if int(c["id"]) in set(labels.ravel().tolist()))
    return labels, f"colour-coded mask: {names} by their colours{note}"
