"""Packed forest: ONNX Runtime and NumPy predictions equal scikit-learn's predict_proba."""

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from segapp.forest import Forest
from segapp.segmenter import make_predictor


def data(n=3000, f=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, f)).astype(np.float32)
    X[:, 3] = np.round(X[:, 3] * 8) / 8  # few distinct values: samples sit exactly on thresholds
    y = 1 + (X[:, 0] + X[:, 3] > 1).astype(int) + 2 * (X[:, 5] > 0.7)
    return X, y * 3  # class ids 3, 6, 9, 12: not 0..K-1


@pytest.mark.parametrize("clf", [
    RandomForestClassifier(n_estimators=12, max_depth=10, max_samples=0.05, random_state=0),
    RandomForestClassifier(n_estimators=6, max_depth=None, class_weight="balanced", random_state=1),
    ExtraTreesClassifier(n_estimators=8, max_depth=6, random_state=2),
])
def test_onnx_and_numpy_match_sklearn(clf):
    X, y = data()
    clf.fit(X, y)
    forest = make_predictor(clf)
    assert isinstance(forest, Forest) and forest.session() is not None
    test, _ = data(seed=5)
    test = np.concatenate([test, X[:500]])  # training samples: some equal to thresholds' neighbours
    want = clf.predict_proba(test)
    np.testing.assert_allclose(forest.predict_proba(test), want, atol=1e-6)
    np.testing.assert_allclose(forest.predict_proba_numpy(test), want, atol=1e-6)
    np.testing.assert_allclose(forest.predict_proba_torch(test, "cpu", chunk=1000), want, atol=1e-6)  # GPU path
    assert (forest.classes_[forest.predict_proba(test).argmax(1)] == clf.predict(test)).all()


def test_round_trip_through_arrays_and_wrong_width():
    X, y = data(500)
    forest = Forest.from_sklearn(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y))
    again = Forest.from_arrays(forest.to_arrays())
    np.testing.assert_array_equal(again.predict_proba(X), forest.predict_proba(X))
    assert again.predict_proba(X[:0]).shape == (0, 4)
    with pytest.raises(ValueError, match="expected"):
        again.predict_proba(X[:, :5])


def test_non_forest_classifier_predicts_itself():
    from sklearn.linear_model import LogisticRegression

    X, y = data(300)
    clf = LogisticRegression(max_iter=200).fit(X, y)
    assert make_predictor(clf) is clf
