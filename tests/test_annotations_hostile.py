"""Strokes and relayout events from an untrusted browser: bounded, clipped, refused in one line."""

import numpy as np
import pytest

from segapp.annotations import apply_relayout, check_shape, count_points, shapes_to_labels, split_valid
from segapp.errors import AnnotationError
from segapp.limits import MAX_POINTS, MAX_SHAPES, MAX_STROKE_POINTS


def path(d, cls=1, width=3):
    return {"type": "path", "path": d, "name": f"class={cls};width={width}"}


@pytest.mark.parametrize("d, message", [
    ("M0,0L1e309,5", "out of range"), ("M0,0L-1e309,5", "out of range"),
    ("M0,0L" + "9" * 400 + ",5", "out of range"), ("M0,0LNaN,5", "unsupported path command 'N'"),
    ("M0,0L" + "L".join(f"{i % 60},{i % 40}" for i in range(MAX_STROKE_POINTS + 1)), "more than 10,000 points"),
    ("M0,0" + " " * 500_000 + "L1,1", "characters long"),
])
def test_unusable_coordinates_are_refused_in_one_line(d, message):
    with pytest.raises(AnnotationError, match=message) as e:
        shapes_to_labels([path(d)], (30, 40))
    assert str(e.value).startswith("shape 0: ") and "\n" not in str(e.value)


def test_huge_finite_coordinates_and_widths_are_clipped_to_the_image():
    lab = shapes_to_labels([path("M-1e300,5L1e300,5", 1, "1e300")], (30, 40))  # used to spin forever
    assert (lab == 1).all()  # a brush wider than the image paints all of it
    lab = shapes_to_labels([path("M-1e308,5L1e308,5", 2, 3)], (30, 40))
    assert (lab[4:7] == 2).all() and lab.sum() == 3 * 40 * 2
    box = {"type": "rect", "x0": -1e308, "y0": -1e308, "x1": 1e308, "y1": 1e308, "name": "class=3"}
    assert (shapes_to_labels([box], (30, 40)) == 3).all()


@pytest.mark.parametrize("shape, message", [
    (path("M2,2L9,2", 1, "-5"), "not a positive number"), (path("M2,2L9,2", 1, "0"), "not a positive number"),
    (path("M2,2L9,2", 1, "nan"), "not a positive number"), (path("M2,2L9,2", "-1"), "outside 0..255"),
    (path("M2,2L9,2", "70000"), "outside 0..255"), (path("M2,2L9,2", "256"), "outside 0..255"),
    ({"type": "path", "path": [1, 2], "name": "class=1"}, "path must be text"),
    ({"type": "path", "path": "M0,0", "name": {"class": 1}}, "shape name must be text"),
    ({"type": "rect", "x0": 10**400, "y0": 0, "x1": 1, "y1": 1, "name": "class=1"}, "needs numeric"),
    ({"type": 123, "name": "class=1"}, "unsupported type '123'"),
])
def test_invalid_shapes_are_named(shape, message):
    ok, bad = split_valid([path("M2,2L9,2"), shape])
    assert len(ok) == 1 and len(bad) == 1 and message in bad[0] and bad[0].startswith("shape 1")
    with pytest.raises(AnnotationError, match=message):
        check_shape(shape, 1)


def test_shape_and_point_counts_per_image_are_bounded():
    many = [path(f"M{i % 40},1L{i % 40},2") for i in range(MAX_SHAPES + 1)]
    with pytest.raises(AnnotationError, match="2,001 shapes on one image; at most 2,000"):
        shapes_to_labels(many, (30, 40))
    heavy = [path("M0,0L" + "L".join(f"{j % 40},{j % 30}" for j in range(9_999))) for _ in range(MAX_POINTS // 9_999 + 1)]
    assert count_points(heavy) > MAX_POINTS
    with pytest.raises(AnnotationError, match="points; at most 50,000"):
        shapes_to_labels(heavy, (30, 40))


def test_painting_onto_stored_labels_equals_painting_everything():
    a, b = path("M2,2L30,2"), path("M5,10L25,20", 2, 4)
    full = shapes_to_labels([a, b], (30, 40))
    assert (shapes_to_labels([b], (30, 40), out=shapes_to_labels([a], (30, 40))) == full).all()
    with pytest.raises(ValueError, match="uint8"):
        shapes_to_labels([b], (30, 40), out=np.zeros((30, 40), np.int32))


@pytest.mark.parametrize("relayout, message", [
    ({"shapes": "abc"}, "must be a list of shapes, got str"), ({"shapes": {"a": 1}}, "got dict"),
    ({"shapes": [1, 2]}, "a list holding non-shapes"), ({"shapes": None}, "got NoneType"),
    (["shapes", "x"], "expected an object, got list"), ({"shapes[0]": "evil"}, "shape 0 must be an object"),
    ({"shapes[0].name.x": 1}, "edits inside a str"), ({"shapes[0].__class__": 1}, "cannot edit"),
    ({"shapes[0].a.b.c.d.e": 1}, "cannot edit"), ({"shapes[99999999999].x0": 1}, "unknown key"),
    ({"shapes[-1].x0": 1}, "unknown key"), ({"shapes[7].x0": 1}, "only 1 shapes exist"),
    ({"shapes": [path("M0,0L1,1")] * (MAX_SHAPES + 1)}, "at most 2,000"),
])
def test_malformed_relayout_events_are_refused(relayout, message):
    with pytest.raises(AnnotationError, match=message) as e:
        apply_relayout([path("M1,1L5,5")], relayout)
    assert "\n" not in str(e.value)


def test_well_formed_relayout_edits_still_work():
    old = [path("M1,1L5,5")]
    assert apply_relayout(old, {"shapes[0].line.width": 2})[0]["line"] == {"width": 2}
    assert apply_relayout(old, {"shapes[0]": None}) == []
    assert apply_relayout(old, {"xaxis.range[0]": 1, "dragmode": "pan"}) == old


# -- label images imported as shapes (fill-only, ``outline=0``): real label images are large polygons ---------
def _vessels(h=1200, w=1100):
    """A vessel-map-like label image: one connected region of jagged bands (an outline of
    ~4 vertices per row per band, like a real vessel or membrane map) plus blobs."""
    lab = np.ones((h, w), np.uint8)
    rows = np.arange(h)
    for offset in (0, 200, 400, 600):
        for k in range(3):
            lab[rows, offset + 5 + rows % 2 + k] = 2  # a step in every row, like a jagged vessel
    lab[:3, :] = 2  # joins the bands into one region
    yy, xx = np.mgrid[:h, :w]
    for cy, cx in ((300, 900), (900, 950), (1100, 100)):
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 < 40 ** 2] = 3
    return lab


def test_a_large_label_image_imported_as_shapes_paints_exactly_itself():
    from segapp.annotation_files import labels_to_shapes
    from segapp.limits import MAX_FILL_POINTS

    lab = _vessels()
    shapes = labels_to_shapes(lab)
    assert max(s.get("path", "").count("L") for s in shapes) > MAX_STROKE_POINTS  # more than a stroke may have
    ok, bad = split_valid(shapes)
    assert bad == [] and [s["path"] for s in ok if "path" in s] == [s["path"] for s in shapes if "path" in s]
    assert count_points(shapes) == 0  # fill-only shapes never count against the strokes' limit
    assert (shapes_to_labels(ok, lab.shape) == lab).all()
    huge = {"type": "path", "name": "class=2;width=1;outline=0",
            "path": "M0,0L" + "L".join(f"{i % 50},{i % 7}" for i in range(MAX_FILL_POINTS + 1)) + "Z"}
    with pytest.raises(AnnotationError, match="more than 2,000,000 points; split the label image"):
        shapes_to_labels([huge], lab.shape)


def test_fill_only_shapes_are_never_stroked_and_fills_are_bounded_by_crossings():
    from segapp.limits import MAX_FILL_CROSSINGS

    open_path = {"type": "path", "path": "M0,5L39,5", "name": "class=1;width=9;outline=0"}
    assert shapes_to_labels([open_path], (30, 40)).sum() == 0  # an open fill-only path encloses nothing
    zigzag = "M0,0L" + "L".join(f"{i % 40},{(i % 2) * 1e9}" for i in range(MAX_FILL_CROSSINGS // 20_000 + 2)) + "Z"
    with pytest.raises(AnnotationError, match="cross its rows"):  # each edge spans every row of the image
        shapes_to_labels([path(zigzag)], (20_000, 40))
