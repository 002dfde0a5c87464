"""Plotly shapes -> label image: pixel-exact rules, errors, relayout edits."""
import json
import time

import numpy as np
import pytest

from segapp.annotations import (apply_relayout, parse_path, parse_shape_name, shape_name,
                                shapes_to_labels)
from segapp.errors import AnnotationError


def path(d, cls=1, width=1):
    return {"type": "path", "path": d, "name": shape_name(cls, width)}


def box(kind, x0, y0, x1, y1, cls=1, width=1):
    return {"type": kind, "x0": x0, "y0": y0, "x1": x1, "y1": y1, "name": shape_name(cls, width)}


def brute_stroke(points, width, hw):
    """Reference: pixel centres within width/2 of the polyline."""
    yy, xx = np.mgrid[:hw[0], :hw[1]].astype(float)
    d = np.full(hw, np.inf)
    pts = np.asarray(points, float)
    for a, b in zip(pts[:-1], pts[1:]):
        ab = b - a
        t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / (ab @ ab), 0, 1)
        d = np.minimum(d, np.hypot(xx - a[0] - t * ab[0], yy - a[1] - t * ab[1]))
    return d, d <= width / 2 + 1e-9


def test_shape_name_round_trip_and_errors():
    assert shape_name(3, 5) == "class=3;width=5"
    assert parse_shape_name(shape_name(7, 0.123456789)) == (7, 0.123456789)
    assert parse_shape_name(" width = 2 ; class = 4 ; color=#f00") == (4, 2.0)
    for bad in (None, "", "width=3", "class=x", "class=-1", "class=70000", "class=1;width=0",
                "class=1;width=nan", "class=1;width=abc"):
        with pytest.raises(AnnotationError):
            parse_shape_name(bad)


def test_horizontal_stroke_width3_covers_exactly_three_rows():
    lab = shapes_to_labels([path("M2,5L12,5", width=3)], (11, 15))
    expected = np.zeros((11, 15), np.uint8)
    expected[4:7, 1:14] = 1  # rows 4..6; round caps reach columns 1 and 13 (1 + 1 <= 1.5**2)
    np.testing.assert_array_equal(lab, expected)
    _, ref = brute_stroke([(2, 5), (12, 5)], 3, (11, 15))
    np.testing.assert_array_equal(lab, ref)


def test_width1_stroke_is_the_row_and_width_default():
    lab = shapes_to_labels([path("M0,3 L9,3", width=1)], (6, 10))
    assert np.nonzero(lab)[0].tolist() == [3] * 10
    no_width = {"type": "path", "path": "M0,3L9,3", "name": "class=2"}
    assert np.unique(np.nonzero(shapes_to_labels([no_width], (8, 10), default_width=5))[0]).tolist() \
        == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("pts", [[(0, 0), (19, 6)], [(1, 18), (17, 0)], [(0.4, 2.2), (15.6, 11.7)],
                                 [(3, 3), (3.2, 17)]])
def test_thin_strokes_are_8_connected_and_contain_the_distance_set(pts):
    from scipy import ndimage
    d = "M" + "L".join(f"{x},{y}" for x, y in pts)
    for width in (0.2, 1):
        lab = shapes_to_labels([path(d, width=width)], (20, 20))
        _, n = ndimage.label(lab, structure=np.ones((3, 3)))
        assert n == 1
        _, ref = brute_stroke(pts, width, (20, 20))
        assert not (ref & (lab == 0)).any()


def test_polyline_matches_distance_reference_and_plotly_path_variants():
    pts = [(2.5, 3.1), (20.2, 8.7), (9.9, 17.3), (30, 18)]
    _, ref = brute_stroke(pts, 4.4, (24, 34))
    for d in ("M2.5,3.1L20.2,8.7L9.9,17.3L30,18", "M 2.5 3.1 L 20.2 8.7 9.9 17.3 30 18",
              "M2.5,3.1 L20.2,8.7 L9.9,17.3 L30,18 ", "m2.5,3.1 l17.7,5.6 l-10.3,8.6 L30,18"):
        lab = shapes_to_labels([path(d, width=4.4)], (24, 34)).astype(bool)
        d_ref, _ = brute_stroke(pts, 4.4, (24, 34))
        assert not (ref & ~lab).any()
        assert (d_ref[lab & ~ref] <= 1.0).all()  # extras only from the 1-px Bresenham line


def test_single_point_is_a_dot():
    lab = shapes_to_labels([path("M5,5", width=3)], (11, 11))
    yy, xx = np.mgrid[:11, :11]
    np.testing.assert_array_equal(lab, ((yy - 5) ** 2 + (xx - 5) ** 2 <= 2.25).astype(np.uint8))


def test_rect_filled_and_grown_by_half_width():
    lab = shapes_to_labels([box("rect", 5, 1, 2, 4)], (7, 8))  # corners in any order
    expected = np.zeros((7, 8), np.uint8)
    expected[1:5, 2:6] = 1
    np.testing.assert_array_equal(lab, expected)
    lab3 = shapes_to_labels([box("rect", 2, 1, 5, 4, width=3)], (7, 8))
    expected[0:6, 1:7] = 1
    np.testing.assert_array_equal(lab3, expected)


def test_circle_is_inscribed_ellipse_grown_by_half_width():
    lab = shapes_to_labels([box("circle", 2, 2, 8, 8)], (11, 11))
    yy, xx = np.mgrid[:11, :11]
    np.testing.assert_array_equal(lab, ((yy - 5) ** 2 + (xx - 5) ** 2 <= 3.5 ** 2).astype(np.uint8))
    ell = shapes_to_labels([box("circle", 1, 3, 13, 7, cls=2)], (11, 15))
    yy, xx = np.mgrid[:11, :15]
    ref = ((xx - 7) / 6.5) ** 2 + ((yy - 5) / 2.5) ** 2 <= 1
    np.testing.assert_array_equal(ell, ref * 2)


def test_closed_triangle_fill_plus_outline():
    lab = shapes_to_labels([path("M1,1L1,7L7,7Z")], (9, 9))
    rr, cc = np.mgrid[:9, :9]
    np.testing.assert_array_equal(lab, ((cc >= 1) & (cc <= rr) & (rr <= 7)).astype(np.uint8))


def test_closed_path_even_odd_and_multiple_subpaths():
    square = "M1,1L11,1L11,11L1,11Z"
    lab = shapes_to_labels([path(square + " M4,4L8,4L8,8L4,8Z")], (13, 13))
    assert lab[2, 2] == 1 and lab[6, 6] == 0 and lab[4, 6] == 1  # hole inside, its outline painted
    two = shapes_to_labels([path("M0,0L3,0L3,3Z M6,6 L9,9")], (10, 10))
    assert two[1, 2] == 1 and two[7, 7] == 1 and two[2, 1] == 0


def test_line_shape_is_a_stroke():
    lab = shapes_to_labels([box("line", 1, 2, 8, 2, width=1)], (5, 10))
    assert np.argwhere(lab).tolist() == [[2, c] for c in range(1, 9)]


def test_later_shapes_overwrite_and_class0_erases():
    shapes = [box("rect", 0, 0, 9, 9, cls=1), box("rect", 3, 3, 6, 6, cls=2),
              path("M0,0L9,0", cls=0)]
    lab = shapes_to_labels(shapes, (10, 10))
    assert lab[5, 5] == 2 and lab[1, 1] == 1 and (lab[0] == 0).all()
    swapped = shapes_to_labels([shapes[1], shapes[0]], (10, 10))
    assert (swapped[1:] == 1).all()


def test_clipping_to_the_image():
    lab = shapes_to_labels([path("M-5,2L20,2"), box("rect", -10, 6, 100, 100, cls=2),
                            path("M-1e12,0L-1e12,1"), box("circle", 30, 30, 40, 40)], (8, 6))
    assert (lab[2] == 1).all() and (lab[6:] == 2).all() and lab.sum() == 6 + 2 * 12
    assert shapes_to_labels([box("rect", 20, 20, 30, 30)], (5, 5)).sum() == 0


def test_dtype_and_empty():
    assert shapes_to_labels([], (3, 4)).dtype == np.uint8 and not shapes_to_labels(None, (3, 4)).any()
    assert shapes_to_labels([box("rect", 0, 0, 1, 1, cls=255)], (3, 4))[0, 0] == 255
    with pytest.raises(AnnotationError, match="outside 0..255"):  # label images are uint8 end to end
        shapes_to_labels([box("rect", 0, 0, 1, 1, cls=300)], (3, 4))


@pytest.mark.parametrize("shape, msg", [
    ({"type": "path", "path": "M0,0L3,3"}, "no class"),
    ({"type": "path", "path": "M0,0C1,1 2,2 3,3", "name": "class=1"}, "unsupported path command 'C'"),
    ({"type": "path", "path": "L1,1", "name": "class=1"}, "must start with M"),
    ({"type": "path", "path": "M0,0L1", "name": "class=1"}, "lacks coordinates"),
    ({"type": "rect", "x0": 0, "y0": "a", "x1": 1, "y1": 1, "name": "class=1"}, "needs numeric"),
    ({"type": "rect", "x0": 0, "y0": float("nan"), "x1": 1, "y1": 1, "name": "class=1"}, "non-finite"),
    ({"type": "star", "name": "class=1"}, "unsupported type 'star'"),
    ("not a dict", "not an object"),
])
def test_bad_shapes_raise_annotation_error(shape, msg):
    with pytest.raises(AnnotationError, match=msg) as info:
        shapes_to_labels([path("M0,0"), shape], (5, 5))
    assert "\n" not in str(info.value) and "shape 1" in str(info.value)


def test_parse_path_relative_and_after_close():
    (a, ca), (b, cb) = parse_path("M1,1 l2,0 v2 z L5,5")
    assert ca and a.tolist() == [[1, 1], [3, 1], [3, 3]]
    assert not cb and b.tolist() == [[1, 1], [5, 5]]


def test_large_image_strokes_are_fast():
    t = np.linspace(0, 1, 400)
    d = "M" + "L".join(f"{200 + 3600 * s:.2f},{2048 + 1500 * np.sin(12 * s):.2f}" for s in t)
    ang = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    lasso = "M" + "L".join(f"{2048 + 1800 * np.cos(a):.1f},{2048 + 1800 * np.sin(a):.1f}" for a in ang) + "Z"
    start = time.perf_counter()
    lab = shapes_to_labels([path(d, width=9), path("M0,0L4095,4095", cls=2, width=5),
                            path(lasso, cls=3, width=3)], (4096, 4096))
    assert time.perf_counter() - start < 3  # ~0.2 s on one core
    assert lab[2048, 2048] == 3 and lab[2048, 300] == 3 and lab[100, 100] == 2 and lab[4000, 100] == 0


def test_apply_relayout():
    old = [path("M0,0L1,1"), box("rect", 0, 0, 2, 2, cls=2)]
    snapshot = [dict(s) for s in old]
    new_shape = path("M3,3L4,4", cls=3)
    assert apply_relayout(old, {"shapes": old + [new_shape]})[-1] == new_shape
    edited = apply_relayout(old, {"shapes[1].x0": 1.5, "shapes[1].y1": 4, "shapes[0].path": "M5,5L6,6",
                                  "shapes[0].line.width": 2, "xaxis.range[0]": 0, "dragmode": "pan"})
    assert edited[1]["x0"] == 1.5 and edited[1]["y1"] == 4 and edited[0]["path"] == "M5,5L6,6"
    assert edited[0]["line"] == {"width": 2}
    assert old == snapshot and edited is not old
    assert apply_relayout(old, {"xaxis.autorange": True}) == old
    assert apply_relayout(old, None) == old
    assert apply_relayout(old, {"shapes[0]": None}) == old[1:]
    assert apply_relayout(old, {"shapes[0]": new_shape})[0] == new_shape
    assert apply_relayout(old, {"shapes": []}) == []
    with pytest.raises(AnnotationError, match="shape 5"):
        apply_relayout(old, {"shapes[5].x0": 1})


# -- annotations as files: label image <-> exact shapes, the JSON document ------------------------------
from segapp.annotation_files import (annotations_document, labels_from_annotations, labels_to_shapes,  # noqa: E402
                                     read_annotations)


@pytest.mark.parametrize("seed", range(12))
def test_label_images_become_shapes_that_paint_exactly_them(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 30, 2)
    lab = rng.integers(0, 4, (h, w)).astype(np.uint8)
    if seed % 3 == 0:
        lab[lab == 0] = 2  # dense: the most common class becomes one rectangle underneath
    if seed % 4 == 1:
        lab = np.kron(lab, np.ones((3, 3), np.uint8))  # blobs with holes and diagonal touches
    shapes = labels_to_shapes(lab, max_shapes=10 ** 6)
    assert (shapes_to_labels(shapes, lab.shape) == lab).all()


def test_too_many_regions_are_refused_with_the_way_out():
    lab = np.zeros((40, 40), np.uint8)
    lab[::2, ::2] = 1  # 400 separate dots
    with pytest.raises(AnnotationError, match="segapp train --labels"):
        labels_to_shapes(lab, max_shapes=100)


def test_annotations_json_round_trip_and_refusals():
    shapes = [path("M2,2L20,2", 1, 3), path("M10,10L12,14", 2, 5)]
    doc = annotations_document([{**s, "editable": True, "line": {"color": "red"}} for s in shapes],
                               [{"id": 1, "name": "bg", "color": "#112233"}], name="a.png", shape_hw=(16, 24))
    assert doc["shapes"] == shapes and doc["image"] == {"name": "a.png", "width": 24, "height": 16, "plane": 0}
    data = json.dumps(doc).encode()
    labels, classes = labels_from_annotations(data, (16, 24))
    assert (labels == shapes_to_labels(shapes, (16, 24))).all() and classes[0]["name"] == "bg"
    with pytest.raises(AnnotationError, match="made for a 24×16 image"):
        labels_from_annotations(data, (20, 20))
    for bad, match in ((b"not json", "not a JSON"), (b'{"format": "x"}', "not a segapp annotations"),
                       (json.dumps({**doc, "version": 99}).encode(), "version 99"),
                       (json.dumps({**doc, "shapes": [{"type": "path", "path": "M0,0L1,1"}]}).encode(), "no class")):
        with pytest.raises(AnnotationError, match=match):
            read_annotations(bad, name="f.json")
