"""Prior (label-shift) correction: direction, off == plain fit, composition, model file round trip."""

import io
import json
import zipfile

import numpy as np
import pytest

from segapp import classifiers, defaults, prior
from segapp.errors import AnnotationError, ConfigError
from segapp.features import FeatureCache
from segapp.segmenter import Segmenter

FEATURES = dict(features="classical", feature_params={"sigmas": [1.0, 3.0]})


@pytest.fixture(scope="module")
def rare_class():
    """Three small noisy discs (3 % of the image) painted as much as a patch of background."""
    rng = np.random.default_rng(0)
    truth = np.zeros((160, 160), np.uint8)
    yy, xx = np.ogrid[:160, :160]
    for cy, cx in [(35, 35), (120, 50), (80, 125)]:
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 < 11 ** 2] = 1
    img = (rng.normal(0, 1, truth.shape) + 1.2 * truth).astype(np.float32)
    lab = np.zeros_like(truth)
    lab[5:20, 70:110] = 1
    lab[(truth == 1) & (rng.random(truth.shape) < 0.5)] = 2
    return img, lab, truth


def scale(seg) -> dict:
    """``{class id: factor}`` of a trained segmenter's prior correction."""
    return {int(c): float(w) for c, w in zip(seg.classes_, seg.prior_scale_)}


def fitted(img, lab, **kw):
    return Segmenter(**FEATURES, cache=FeatureCache(), **kw).fit(img, lab)


def test_correction_lowers_the_over_painted_class_and_its_area(rare_class):
    img, lab, truth = rare_class
    painted_share = (lab == 2).sum() / (lab > 0).sum()
    assert painted_share > 5 * truth.mean()                  # the rare class is over-painted
    off = fitted(img, lab, prior_correction=0)
    half, full = fitted(img, lab, prior_correction=0.5), fitted(img, lab, prior_correction=1.0)
    w_half, w_full = scale(half), scale(full)
    assert w_half[2] < 1 < w_half[1]
    assert w_full[2] < w_half[2] and w_full[1] > w_half[1]   # alpha scales the correction
    assert "prior_correction" not in off.training_info and off.prior_scale_ is None
    np.testing.assert_array_equal(half.classifier_.predict_proba(np.ones((3, off.training_info["n_features"]))),   # the same forest:
                                  off.classifier_.predict_proba(np.ones((3, off.training_info["n_features"]))))   # only probabilities move
    areas = [(s.predict(img) == 2).mean() for s in (off, half, full)]
    assert areas[0] > areas[1] > areas[2]
    assert abs(areas[2] - truth.mean()) < abs(areas[0] - truth.mean())


def test_off_is_the_plain_fit_bit_for_bit(rare_class):
    img, lab, _ = rare_class
    seg = fitted(img, lab, prior_correction=0)
    X, y, _ = seg._training_set([img], [lab], seg.extractor)
    plain = classifiers.build(seg.classifier, seg.classifier_params, y.size, seg.random_state).fit(X, y)
    rows = seg.feature_tiles(img).full().reshape(-1, X.shape[1])
    np.testing.assert_array_equal(seg.classifier_.predict_proba(rows), plain.predict_proba(rows))
    for alpha in (None, 0.0):
        again = fitted(img, lab, prior_correction=alpha)
        np.testing.assert_array_equal(again.predict_proba(img), seg.predict_proba(img))


def test_correction_is_deterministic_and_composes_with_balanced(rare_class):
    img, lab, _ = rare_class
    a, b = fitted(img, lab, prior_correction=0.5), fitted(img, lab, prior_correction=0.5)
    np.testing.assert_array_equal(a.predict_proba(img), b.predict_proba(img))
    bal = fitted(img, lab, prior_correction=0.5, class_weight="balanced")
    w = scale(bal)
    assert w[2] < 1 < w[1]
    assert bal.class_weight == "balanced"
    bal_off = fitted(img, lab, prior_correction=0, class_weight="balanced")
    assert (bal.predict(img) == 2).mean() < (bal_off.predict(img) == 2).mean()
    # balanced training acts as equal shares: the factors are relative to 1/K, not to the painted shares
    y = np.array([1] * 80 + [2] * 20)
    even = np.r_[np.tile([[0.9, 0.1]], (50, 1)), np.tile([[0.1, 0.9]], (50, 1))]
    classes = np.array([1, 2])
    assert prior.correction_scale(even, y, classes, 1.0).tolist() == pytest.approx([0.625, 2.5])
    assert prior.correction_scale(even, y, classes, 1.0, "balanced").tolist() == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("kind", sorted(classifiers.BUILDERS))
def test_every_classifier_kind_is_corrected(rare_class, kind):
    img, lab, _ = rare_class
    seg = Segmenter(**FEATURES, classifier=kind, prior_correction=0.5, n_estimators=8, cache=FeatureCache())
    seg.fit(img, lab)
    assert scale(seg)[2] < 1 and seg.training_info["prior_sampled"] > 0
    proba = seg.predict_proba(img)
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-5)


def test_nothing_unpainted_or_one_class():
    rng = np.random.default_rng(2)
    img = rng.random((24, 24)).astype(np.float32)
    lab = np.ones((24, 24), np.uint8)
    lab[:, 12:] = 2                                          # every pixel painted: nothing to estimate
    seg = fitted(img, lab, prior_correction=0.5)
    assert "prior_correction" not in seg.training_info
    assert seg.predict(img).shape == img.shape
    with pytest.raises(AnnotationError, match="two classes"):
        fitted(img, np.ones((24, 24), np.uint8), prior_correction=0.5)
    w = prior.correction_scale(np.ones((5, 1)), np.ones(4), np.array([1]), 0.5)
    assert w.tolist() == [1.0]                               # a single class: no-op


def test_unpainted_sample_is_bounded_and_shared_among_painted_images():
    a = np.zeros((300, 300), np.uint8)
    a[:30] = 1
    b = np.zeros((100, 100), np.uint8)
    b[0, 0] = 2
    empty = np.zeros((50, 50), np.uint8)
    picks = prior.sample_unpainted([a, b, empty], n_rows=1000, seed=3)
    sizes = [rr.size for rr, _ in picks]
    assert sizes[2] == 0 and 990 <= sum(sizes) <= 1010 and sizes[0] > 5 * sizes[1]
    for lab, (rr, cc) in zip([a, b], picks):
        assert (lab[rr, cc] == 0).all() and np.unique(rr * 1000 + cc).size == rr.size
    again = prior.sample_unpainted([a, b, empty], n_rows=1000, seed=3)
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(picks, again))
    dense = np.ones((20, 20), np.uint8)
    dense[3, 4] = 0                                          # almost all painted: takes what is left
    (rr, cc), = prior.sample_unpainted([dense], n_rows=1000)
    assert list(zip(rr, cc)) == [(3, 4)]


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", [0.5]])
def test_bad_strength_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="prior_correction"):
        Segmenter(**FEATURES, prior_correction=bad)


def test_defaults_and_config_round_trip():
    seg = Segmenter()
    assert seg.prior_correction == defaults.classifier_params()["prior_correction"] > 0
    again = Segmenter.from_config(Segmenter(**FEATURES, prior_correction=0.25).get_config())
    assert again.prior_correction == 0.25
    kinds = seg.extractor.parts[0].params["features"]
    assert kinds == defaults.EXTRACTOR_PARAMS["classical"]["features"]
    slider = Segmenter(features=defaults.EXTRACTOR, feature_params={"classical": {"sigmas": [1.0, 2.0]}})
    assert slider.extractor.parts[0].params["features"] == kinds      # scales merge over the default kinds
    assert slider.extractor.parts[0].params["sigmas"] == [1.0, 2.0]


def test_model_file_round_trip_keeps_the_strength_and_factors(rare_class):
    img, lab, _ = rare_class
    seg = fitted(img, lab, prior_correction=0.3)
    again = Segmenter.load(seg.save())
    assert again.prior_correction == 0.3
    np.testing.assert_array_equal(again.prior_scale_, seg.prior_scale_)
    np.testing.assert_allclose(again.predict_proba(img), seg.predict_proba(img), atol=1e-6)
    np.testing.assert_array_equal(again.predict(img), seg.predict(img))
    retrained = Segmenter.from_config(again.get_config(), cache=FeatureCache()).fit(img, lab)
    np.testing.assert_array_equal(retrained.predict_proba(img), seg.predict_proba(img))


def test_old_manifest_without_the_field_loads_as_off(rare_class):
    img, lab, _ = rare_class
    old_style = fitted(img, lab, prior_correction=0, classifier_params={"max_features": "sqrt"})

    def strip(manifest):                                   # a format-2 file, written before these existed
        for key in ("prior_correction", "max_features"):
            del manifest["classifier"]["params"][key]
        del manifest["classifier"]["prior_scale"]
        manifest["format_version"] = 2
        del manifest["checksum"]

    data = edit_manifest(old_style.save(), strip)
    again = Segmenter.load(data)
    assert again.prior_correction == 0 and again.classifier_params["max_features"] == "sqrt"
    np.testing.assert_array_equal(again.predict(img), old_style.predict(img))
    retrained = Segmenter.from_config(again.get_config(), cache=FeatureCache()).fit(img, lab)
    np.testing.assert_array_equal(retrained.predict_proba(img), old_style.predict_proba(img))


def edit_manifest(data: bytes, edit) -> bytes:
    """A copy of a model file whose manifest went through ``edit(dict)``, its checksum recomputed."""
    from segapp.modelcheck import manifest_checksum

    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    manifest = json.loads(src.read("manifest.json"))
    edit(manifest)
    if "checksum" in manifest:
        manifest["checksum"] = manifest_checksum(manifest)
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest))
        for name in src.namelist():
            if name != "manifest.json":
                z.writestr(name, src.read(name))
    return out.getvalue()


@pytest.mark.parametrize("bad", [[1.0], [1.0, 1.0, 1.0], [1.0, -2.0], [1.0, 0.0], [True, 1.0], "x", {"a": 1}])
def test_malformed_saved_factors_are_refused(rare_class, bad):
    from segapp.errors import ModelFileError

    img, lab, _ = rare_class
    data = edit_manifest(fitted(img, lab, prior_correction=0.5).save(),
                         lambda m: m["classifier"].__setitem__("prior_scale", bad))
    with pytest.raises(ModelFileError, match="prior correction"):
        Segmenter.load(data)


def test_sample_on_a_large_image_stays_in_the_painted_tiles():
    from segapp.features.tiles import TileGrid

    lab = np.zeros((400, 400), np.uint8)
    lab[10:12, 10:90] = 1
    lab[300:302, 310:390] = 2
    grid = TileGrid(lab.shape, 100, 0, 1)                  # 16 tiles, paint in 2 of them
    region = prior.tile_region(grid, lab, max_tiles=4, seed=0)
    assert region.sum() == 2 * 100 * 100 and region[10, 10] and region[300, 310]  # no tile the fit does not need
    assert np.array_equal(region, prior.tile_region(grid, lab, max_tiles=4, seed=0))
    (rr, cc), = prior.sample_unpainted([lab], n_rows=2000, seed=0, regions=[region])
    assert rr.size == 2000 and region[rr, cc].all() and (lab[rr, cc] == 0).all()
    assert prior.tile_region(grid, lab, max_tiles=16) is None          # small enough: everywhere
    many = lab.copy()
    many[::100, ::100] = 1                                   # paint in every tile: all of them, no more
    assert prior.tile_region(grid, many, max_tiles=4).all()


def test_web_app_settings_reach_the_segmenter_with_the_default_kinds_and_correction():
    from segapp.ui.pipeline import segmenter_kwargs
    from segapp.ui.session import DEFAULT_SETTINGS

    seg = Segmenter(**segmenter_kwargs(DEFAULT_SETTINGS, [{"id": 1, "name": "a", "color": "#000000"}]))
    classical = seg.extractor.parts[0].params
    assert classical["features"] == defaults.EXTRACTOR_PARAMS["classical"]["features"]
    assert [min(classical["sigmas"]), max(classical["sigmas"])] == DEFAULT_SETTINGS["sigmas"]
    assert seg.prior_correction == defaults.classifier_params()["prior_correction"]
    assert seg.classifier_params["max_features"] == defaults.classifier_params()["max_features"]
