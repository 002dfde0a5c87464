import csv
import io
import json
import math

import numpy as np
import pytest

from segapp.errors import ConfigError, ImageReadError
from segapp.postprocess import (clean_labels, instances, measure, smooth_proba, summarize,
                                summary_text, to_csv)


def discs(shape, centres, r):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.any([(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r for cy, cx in centres], axis=0)


# ---------------------------------------------------------------- instances

def test_touching_discs_split_by_watershed():
    mask = discs((60, 90), [(30, 28), (30, 58)], 16)          # overlap: one connected blob
    split = instances(mask)
    assert split.dtype == np.int32 and split.max() == 2
    assert set(np.unique(split)) == {0, 1, 2}
    a1, a2 = np.bincount(split.ravel())[1:]
    assert abs(a1 - a2) <= 0.05 * a1                           # cut in the middle
    assert ((split > 0) == mask).all()
    joined = instances(mask, split_touching=False)
    assert joined.max() == 1 and ((joined > 0) == mask).all()


def test_separate_and_touching_objects_and_min_size():
    mask = discs((60, 140), [(30, 28), (30, 58), (30, 110)], 16)
    mask[2:4, 2:4] = True                                      # 4-pixel speck
    assert instances(mask, min_size=0).max() == 4
    assert instances(mask).max() == 3                          # default: specks << a typical object go
    assert instances(mask, min_size=10).max() == 3
    assert instances(mask, split_touching=False, min_size=10).max() == 2
    assert instances(mask, min_distance=40, min_size=0).max() == 3   # too far apart to count as two centres


def test_instances_empty_and_label_input():
    out = instances(np.zeros((10, 10), bool))
    assert out.dtype == np.int32 and out.max() == 0
    labels = np.ones((20, 20), np.uint8)
    labels[5:10, 5:10] = 2
    assert instances(labels == 2).max() == 1
    with pytest.raises(ImageReadError):
        instances(np.zeros((2, 3, 4)))


def test_coins_counts_are_plausible():
    from skimage import data, filters, segmentation

    coins = data.coins()
    mask = clean_labels(coins > filters.threshold_otsu(coins), min_size=64, fill_holes=True)
    joined = instances(mask, split_touching=False, min_size=200)
    split = instances(mask, min_size=200, min_distance=10)
    assert 20 <= joined.max() <= 32 and joined.max() <= split.max() <= 40
    inner = segmentation.clear_border(split)                   # 24 coins; a few touch the bright top band
    assert 16 <= len(np.unique(inner)) - 1 <= 26


# ---------------------------------------------------------------- clean_labels

def test_fill_holes_per_class():
    lab = np.ones((30, 30), np.uint8)
    lab[5:25, 5:25] = 2
    lab[10:13, 10:13] = 1                                      # 9-pixel hole of background
    lab[15:22, 15:22] = 3                                      # 49-pixel "hole" of another class
    out = clean_labels(lab, fill_holes=True)
    assert (out[5:25, 5:25] == 2).all() and (out[lab == 1][:10] == 1).all()
    out = clean_labels(lab, fill_holes=20)                     # only holes up to 20 pixels
    assert (out[10:13, 10:13] == 2).all() and (out[15:22, 15:22] == 3).all()
    out = clean_labels(lab, fill_holes=True, classes=[3])     # class 2 has the holes, not 3
    np.testing.assert_array_equal(out, lab)


def test_fill_holes_default_keeps_objects_in_background():
    lab = np.ones((30, 30), np.uint8)
    lab[:, 20:] = 3                                            # a second class on the border
    lab[8:14, 8:14] = 2                                        # object enclosed by background
    out = clean_labels(lab, fill_holes=True)
    np.testing.assert_array_equal(out, lab)
    ring = np.ones((30, 30), np.uint8)
    ring[2:28, 2:28] = 2
    ring[4:26, 4:26] = 1                                       # a ring: its inside is a hole of 2
    filled = clean_labels(ring, fill_holes=True)               # 1 owns the border: background
    assert (filled[2:28, 2:28] == 2).all() and (filled[0] == 1).all()


def test_small_objects_merge_into_neighbour_not_zero():
    lab = np.ones((20, 30), np.uint8)
    lab[:, 15:] = 2
    lab[5:7, 5:7] = 3                                          # small speck in class 1
    lab[10:13, 14:17] = 3                                      # straddles 1|2, more of 2 around it
    lab[16, 16] = 1                                            # single pixel of 1 inside 2
    out = clean_labels(lab, min_size=10)
    assert 0 not in out and 3 not in out
    assert (out[5:7, 5:7] == 1).all() and out[16, 16] == 2
    assert (out[10:13, 14:17] == 2).all()                      # more border contact with 2
    assert out.dtype == np.uint8
    kept = clean_labels(lab, min_size=10, classes=[1])         # only class 1 specks act
    assert kept[16, 16] == 2 and (kept[5:7, 5:7] == 3).all()


def test_small_objects_next_to_each_other_and_unlabelled():
    lab = np.ones((10, 10), np.int32)
    lab[4, 4], lab[4, 5] = 2, 3                                # two specks touching only each other + 1
    lab[0:2, 8:10] = 0                                         # unlabelled corner is left alone
    out = clean_labels(lab, min_size=3)
    assert out[4, 4] == 1 and out[4, 5] == 1 and (out[0:2, 8:10] == 0).all()
    checker = (np.indices((6, 6)).sum(axis=0) % 2 + 1).astype(np.uint8)
    np.testing.assert_array_equal(clean_labels(checker, min_size=5), checker)  # no settled neighbour


def test_majority_smoothing():
    lab = np.ones((20, 20), np.uint8)
    lab[:, 10:] = 2
    noisy = lab.copy()
    noisy[5, 3], noisy[12, 15] = 2, 1
    np.testing.assert_array_equal(clean_labels(noisy, smooth=1), lab)
    np.testing.assert_array_equal(clean_labels(lab, smooth=3), lab)   # straight edge stays
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    mask[0, 0] = True
    out = clean_labels(mask, smooth=1)
    assert out.dtype == bool and not out[0, 0] and out[10, 10]


def test_clean_labels_validation_and_noop():
    lab = np.arange(12, dtype=np.uint16).reshape(3, 4)
    np.testing.assert_array_equal(clean_labels(lab), lab)
    with pytest.raises(ConfigError):
        clean_labels(lab, min_size=-1)
    with pytest.raises(ImageReadError):
        clean_labels(lab.astype(float))
    assert clean_labels(np.zeros((0, 0), np.uint8), smooth=1, min_size=3, fill_holes=True).shape == (0, 0)


def test_smooth_proba():
    p = np.zeros((9, 9, 3), np.float32)
    p[..., 0] = 0.8
    p[..., 1] = 0.2
    p[4, 4] = [0.1, 0.2, 0.7]
    s = smooth_proba(p, 1.5)
    assert s.shape == p.shape and s.dtype == np.float32
    np.testing.assert_allclose(s.sum(axis=2), 1, atol=1e-5)
    assert (s.argmax(axis=2) == 0).all()
    np.testing.assert_array_equal(smooth_proba(p, 0), p)


# ---------------------------------------------------------------- measure / summarize

def square_labels():
    lab = np.zeros((30, 30), np.int32)
    lab[5:15, 5:15] = 1                                        # 10 x 10 square
    lab[20:24, 10:28] = 2                                      # 4 x 18 bar
    return lab


def test_measure_known_square_and_scaling():
    rows = measure(square_labels())
    sq = rows[0]
    assert [r["label"] for r in rows] == [1, 2]
    assert sq["area"] == 100 and 36 <= sq["perimeter"] <= 40
    assert sq["equivalent_diameter"] == pytest.approx(math.sqrt(400 / math.pi))
    assert sq["eccentricity"] == pytest.approx(0, abs=1e-9) and rows[1]["eccentricity"] > 0.9
    assert (sq["centroid_x"], sq["centroid_y"], sq["unit"]) == (9.5, 9.5, "px")
    um = measure(square_labels(), pixel_size=0.5, unit="nm")[0]
    assert um["area"] == pytest.approx(25) and um["perimeter"] == pytest.approx(sq["perimeter"] / 2)
    assert um["equivalent_diameter"] == pytest.approx(sq["equivalent_diameter"] / 2)
    assert um["centroid_x"] == pytest.approx(4.75) and um["unit"] == "nm"
    assert um["eccentricity"] == sq["eccentricity"]


def test_measure_intensity_and_errors():
    lab = square_labels()
    grey = np.zeros(lab.shape)
    grey[lab == 1], grey[lab == 2] = 10, 30
    assert [r["mean_intensity"] for r in measure(lab, grey)] == [10, 30]
    rgb = np.stack([grey, 2 * grey, np.zeros_like(grey)], axis=-1)
    r = measure(lab, rgb)[1]
    assert (r["mean_intensity_0"], r["mean_intensity_1"], r["mean_intensity_2"]) == (30, 60, 0)
    assert r["mean_intensity"] == pytest.approx(30)
    assert measure(np.zeros((5, 5), int)) == []
    with pytest.raises(ImageReadError):
        measure(lab, grey[:10])
    for bad in (0, -1, "x", float("nan")):
        with pytest.raises(ConfigError):
            measure(lab, pixel_size=bad)


def test_summarize_stats_and_text():
    rows = measure(square_labels(), pixel_size=2.0)
    s = summarize(rows)
    assert s["count"] == 2 and s["unit"] == "µm"
    assert s["area"]["mean"] == pytest.approx((400 + 288) / 2)
    assert s["area"]["median"] == pytest.approx(344)
    assert (s["area"]["min"], s["area"]["max"]) == (288, 400)
    assert s["area"]["cv"] == pytest.approx(np.std([400, 288], ddof=1) / 344)
    assert s == summarize(measure(square_labels()), pixel_size=2.0)
    json.dumps(s, allow_nan=False)
    d = s["equivalent_diameter"]["mean"]
    assert summary_text(s, "nucleus", "nuclei").startswith(f"2 nuclei, mean size {d:.1f} µm (median")
    with pytest.raises(ConfigError):
        summarize(rows, pixel_size=2.0)                        # already in µm


def test_summarize_empty_and_single():
    s = summarize([])
    json.dumps(s, allow_nan=False)
    assert s["count"] == 0 and all(v is None for v in s["area"].values())
    assert summary_text(s) == "0 objects"
    one = summarize(measure(square_labels() == 1))
    assert one["area"]["cv"] == 0.0 and summary_text(one) == "1 object, size 11.3 px"


def test_to_csv_round_trip():
    rows = measure(square_labels(), pixel_size=0.5)
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(parsed) == 2 and parsed[0]["label"] == "1" and float(parsed[0]["area"]) == 25
    assert parsed[1]["unit"] == "µm"
    assert to_csv([]).startswith("label,area,perimeter")


def test_default_splitting_follows_object_size_and_keeps_lumpy_objects_whole():
    # one lumpy object (a disc with a bump) must stay one; two touching discs must split;
    # the same scene at twice the size gives the same counts (seeds scale with the objects)
    for f in (1, 2):
        yy, xx = np.mgrid[:80 * f, :200 * f]
        lumpy = (np.hypot(yy - 40 * f, xx - 40 * f) < 20 * f) | (np.hypot(yy - 40 * f, xx - 58 * f) < 9 * f)
        pair = discs((80 * f, 200 * f), [(40 * f, 120 * f), (40 * f, 150 * f)], 16 * f)
        mask = lumpy | pair
        assert instances(mask).max() == 3
        assert instances(mask, split_touching=False).max() == 2
        assert instances(mask, min_distance=5, depth=0).max() >= 3   # no depth test: never fewer cuts
        assert instances(mask, min_distance=60 * f).max() == 2      # seeds too far apart to split the pair


def test_object_scale_is_the_typical_radius():
    from segapp.postprocess import object_scale

    mask = discs((100, 200), [(50, 30), (50, 100), (50, 170)], 12)
    assert abs(object_scale(mask) - 12) <= 1
    assert object_scale(np.zeros((5, 5), bool)) == 0.0
