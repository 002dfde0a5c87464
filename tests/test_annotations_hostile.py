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
