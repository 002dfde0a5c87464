import json

import numpy as np
import pytest

from segapp.errors import ImageReadError
from segapp.metrics import confusion, evaluate, mean_iou, object_f1, per_class_scores

GT = np.array([[1, 1, 1, 2],
               [1, 2, 2, 2],
               [3, 3, 2, 2]])
PRED = np.array([[1, 1, 2, 2],
                 [1, 1, 2, 2],
                 [3, 2, 2, 3]])


def test_confusion_by_hand():
    cm = confusion(PRED, GT)
    # rows = gt 1, 2, 3; cols = pred 1, 2, 3
    assert cm.tolist() == [[3, 1, 0],
                           [1, 4, 1],
                           [0, 1, 1]]
    assert cm.dtype == np.int64 and cm.sum() == GT.size


def test_confusion_labels_ignore_mask():
    assert confusion(PRED, GT, labels=[1, 2, 3, 4]).shape == (4, 4)
    assert confusion(PRED, GT, labels=[2, 1]).tolist() == [[3, 1], [1, 4]]   # sorted; class 3 pixels dropped
    assert confusion(PRED, GT, ignore=3).tolist() == [[3, 1, 0], [1, 4, 1], [0, 0, 0]]
    mask = np.zeros(GT.shape, bool)
    mask[0] = True
    assert confusion(PRED, GT, mask=mask).tolist() == [[2, 1], [0, 1]]


def test_confusion_matches_sklearn_on_random_and_odd_ids():
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    gt, pred = rng.integers(0, 5, (50, 40)), rng.integers(0, 5, (50, 40))
    expected = confusion_matrix(gt.ravel(), pred.ravel())
    np.testing.assert_array_equal(confusion(pred, gt), expected)
    ids = np.array([-7, 3, 100, 5_000_000, 9])   # negative and huge ids take the slow path
    np.testing.assert_array_equal(confusion(ids[pred], ids[gt]),
                                  confusion_matrix(ids[gt].ravel(), ids[pred].ravel()))


def test_per_class_exact_values():
    s = per_class_scores(PRED, GT)
    assert set(s) == {1, 2, 3}
    assert s[1] == {"iou": 3 / 5, "f1": 6 / 8, "precision": 3 / 4, "recall": 3 / 4, "support": 4}
    assert s[2]["iou"] == pytest.approx(4 / 8) and s[2]["f1"] == pytest.approx(8 / 12)
    assert s[2]["precision"] == pytest.approx(4 / 6) and s[2]["recall"] == pytest.approx(4 / 6)
    assert s[3]["iou"] == pytest.approx(1 / 3) and s[3]["support"] == 2
    assert mean_iou(PRED, GT) == pytest.approx(np.mean([3 / 5, 4 / 8, 1 / 3]))


def test_absent_classes_are_omitted_not_nan():
    s = per_class_scores(PRED, GT, labels=[1, 2, 3, 7])
    assert 7 not in s
    only_pred = per_class_scores([[1, 4]], [[1, 1]])
    assert only_pred[4] == {"iou": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0, "support": 0}
    assert only_pred[1]["precision"] == 1.0 and only_pred[1]["recall"] == 0.5


def test_evaluate_is_json_ready():
    r = evaluate(PRED, GT)
    json.dumps(r, allow_nan=False)
    assert r["classes"] == [1, 2, 3] and r["n_pixels"] == 12
    assert r["confusion"] == confusion(PRED, GT).tolist()
    assert r["pixel_accuracy"] == pytest.approx(8 / 12)
    assert r["miou"] == pytest.approx(mean_iou(PRED, GT))
    assert r["mean_f1"] == pytest.approx(np.mean([0.75, 8 / 12, 0.5]))
    assert r["per_class"]["1"]["iou"] == pytest.approx(0.6)


def test_evaluate_ignore_mask_and_empty():
    r = evaluate(PRED, GT, ignore=3)
    assert r["n_pixels"] == 10 and r["classes"] == [1, 2, 3]
    r = evaluate(PRED, GT, mask=np.zeros(GT.shape, bool))
    json.dumps(r, allow_nan=False)
    assert r == {"classes": [], "per_class": {}, "miou": None, "mean_f1": None,
                 "pixel_accuracy": None, "n_pixels": 0, "confusion": []}
    assert np.isnan(mean_iou(np.zeros((0, 0), int), np.zeros((0, 0), int)))


def test_shape_mismatch_is_one_line_image_read_error():
    with pytest.raises(ImageReadError) as e:
        evaluate(np.zeros((4, 5), int), np.zeros((5, 4), int))
    assert "\n" not in str(e.value) and "(4, 5)" in str(e.value)
    with pytest.raises(ImageReadError):
        confusion(np.zeros((4, 5), int), np.zeros((4, 5), int), mask=np.ones((3, 3), bool))
    with pytest.raises(ImageReadError):
        evaluate(np.full((2, 2), 0.5), np.zeros((2, 2), int))


def test_bool_and_integral_float_inputs():
    assert evaluate(np.array([[True, False]]), np.array([[1.0, 0.0]]))["pixel_accuracy"] == 1.0


def _square(img, r, c, s, v):
    img[r:r + s, c:c + s] = v


def test_object_f1_missing_and_spurious():
    gt = np.zeros((40, 40), int)
    _square(gt, 2, 2, 8, 1)
    _square(gt, 20, 20, 8, 2)
    _square(gt, 2, 25, 8, 3)          # missed by pred
    pred = np.zeros_like(gt)
    _square(pred, 3, 2, 8, 10)        # IoU 56/72 with gt 1
    _square(pred, 20, 21, 8, 4)       # IoU 56/72 with gt 2
    _square(pred, 30, 2, 6, 7)        # spurious
    r = object_f1(pred, gt)
    assert (r["tp"], r["fp"], r["fn"], r["n_pred"], r["n_gt"]) == (2, 1, 1, 3, 3)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)
    assert r["mean_matched_iou"] == pytest.approx(56 / 72)


def test_object_f1_threshold_is_strict_and_matching_one_to_one():
    gt = np.zeros((4, 8), int)
    gt[:, :4] = 1
    pred = np.zeros_like(gt)
    pred[:, :2] = 1                   # IoU 0.5 exactly with gt 1
    pred[:, 2:4] = 2                  # IoU 0.5 too
    assert object_f1(pred, gt)["tp"] == 0
    r = object_f1(pred, gt, iou_threshold=0.3)   # both qualify, only one may match
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 0)


def test_object_f1_merged_prediction_and_empty():
    gt = np.zeros((10, 10), int)
    gt[:, :5], gt[:, 5:] = 1, 2
    merged = np.ones_like(gt)
    assert object_f1(merged, gt)["tp"] == 0
    empty = np.zeros_like(gt)
    assert object_f1(empty, empty) == {"tp": 0, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0,
                                       "f1": 1.0, "n_pred": 0, "n_gt": 0, "mean_matched_iou": None}
    r = object_f1(empty, gt)
    assert (r["fn"], r["precision"], r["recall"], r["f1"]) == (2, 0.0, 0.0, 0.0)
    assert object_f1(gt * 7, gt)["f1"] == 1.0    # ids need not agree


# -- ground truth in the forms people have (interpret_mask) ---------------------------------------------
from segapp.metrics import interpret_mask  # noqa: E402

TWO = [{"id": 1, "name": "Background", "color": "#1f77b4"}, {"id": 2, "name": "Nucleus", "color": "#d62728"}]


@pytest.mark.parametrize("fg", [1, 255, 65535, 2])
def test_binary_masks_read_as_background_and_foreground(fg):
    mask = np.array([[0, fg], [fg, 0]])
    labels, how = interpret_mask(mask, TWO)
    assert labels.tolist() == [[1, 2], [2, 1]] and how.startswith("binary mask: 0 → Background")
    r = evaluate(np.array([[1, 2], [2, 1]]), labels, ignore=0)
    assert r["miou"] == 1.0 and sorted(r["per_class"]) == ["1", "2"]  # no "class 255" row, not 0 %


def test_class_ids_instances_and_colours():
    labels, how = interpret_mask(np.array([[0, 1, 2, 2]]), TWO)
    assert labels.tolist() == [[0, 1, 2, 2]] and how == "class ids (0 not scored)"
    labels, how = interpret_mask(np.array([[0, 1, 2, 3, 4]]), TWO)  # an instance mask: 4 objects
    assert labels.tolist() == [[1, 2, 2, 2, 2]] and how.startswith("instance mask (4 objects)")
    rgb = np.array([[[214, 39, 40], [31, 119, 180], [0, 0, 0], [220, 45, 35]]])  # last: a JPEG's near-red
    labels, how = interpret_mask(rgb, TWO)
    assert labels.tolist() == [[2, 1, 0, 2]] and "black not scored" in how


def test_masks_that_cannot_be_read_say_what_is_expected():
    three = TWO + [{"id": 3, "name": "Stroma", "color": "#2ca02c"}]
    with pytest.raises(ImageReadError, match="class ids 1, 2, 3 .0 = not scored."):
        interpret_mask(np.array([[0, 255]]), three)
    with pytest.raises(ImageReadError, match="#00ff00 in the mask are none of the classes' colours"):
        interpret_mask(np.array([[[0, 255, 0], [214, 39, 40]]]), TWO)
    with pytest.raises(ImageReadError, match="no classes"):
        interpret_mask(np.array([[0, 1]]), [])
