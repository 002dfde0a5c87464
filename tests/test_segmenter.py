"""Segmenter: fit/predict on synthetic and scikit-image images, caching, auto selection."""

import numpy as np
import pytest
from skimage import data

from segapp.errors import AnnotationError, ConfigError
from segapp.features import FeatureCache
from segapp.segmenter import Segmenter

FAST = {"sigmas": [1.0, 3.0]}


def two_texture_image(seed=0, shape=(96, 128)):
    """Left half smooth and dark, right half noisy and bright, as uint16."""
    rng = np.random.default_rng(seed)
    img = np.full(shape, 1000.0)
    img[:, shape[1] // 2:] = 3000 + rng.normal(0, 400, (shape[0], shape[1] - shape[1] // 2))
    return np.clip(img + rng.normal(0, 30, shape), 0, 65535).astype(np.uint16)


def scribbles(shape):
    lab = np.zeros(shape, np.uint8)
    lab[10:13, 5:40] = 1
    lab[60:63, 80:120] = 2
    return lab


def test_fit_predict_two_textures():
    img = two_texture_image()
    seg = Segmenter(features="classical", feature_params=FAST, n_estimators=10).fit(img, scribbles(img.shape))
    pred = seg.predict(img)
    assert pred.shape == img.shape and pred.dtype == np.uint8
    truth = np.where(np.arange(img.shape[1]) < img.shape[1] // 2, 1, 2)[None, :].repeat(img.shape[0], 0)
    assert (pred == truth).mean() > 0.95
    proba = seg.predict_proba(img)
    assert proba.shape == img.shape + (2,) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(-1), 1, atol=1e-5)
    unc = seg.uncertainty(proba=proba)
    assert unc.shape == img.shape and 0 <= unc.min() and unc.max() <= 1


def test_normalisation_transfers_between_brightness_levels():
    img = two_texture_image(0)
    seg = Segmenter(features="classical", feature_params=FAST, n_estimators=10).fit(img, scribbles(img.shape))
    brighter = np.clip(img.astype(np.float64) * 3 + 2000, 0, 65535).astype(np.uint16)
    assert (seg.predict(brighter) == seg.predict(img)).mean() > 0.95


def test_fit_many_images_and_class_metadata():
    imgs = [two_texture_image(s) for s in range(2)]
    labs = [scribbles(imgs[0].shape), np.zeros(imgs[0].shape, np.uint8)]
    labs[1][80:83, 70:100] = 3
    seg = Segmenter(features="classical", feature_params=FAST, n_estimators=5, classes=[{"id": 3, "name": "noise", "color": "#00ff00"}])
    seg.fit(imgs, labs)
    assert [c["id"] for c in seg.classes] == [1, 2, 3]
    assert seg.classes[2]["name"] == "noise" and seg.classes[0]["name"] == "Class 1"
    assert seg.training_info["n_images"] == 2
    assert set(np.unique(seg.predict(imgs[1]))) <= {1, 2, 3}


def test_feature_cache_reused_on_retrain():
    cache = FeatureCache()
    img = two_texture_image()
    seg = Segmenter(features="classical", feature_params=FAST, n_estimators=5, cache=cache)
    seg.fit(img, scribbles(img.shape))
    assert len(cache) == 1  # one tile holds this small image
    tiles = seg.feature_tiles(img)
    seg.fit(img, scribbles(img.shape) * 1)
    seg.predict(img)
    assert tiles.n_computed == 0 and len(cache) == 1  # retrain and predict: no re-extraction


def test_empty_and_single_class_annotations_are_clear_errors():
    img = two_texture_image()
    seg = Segmenter(features="classical", feature_params=FAST, n_estimators=5)
    with pytest.raises(AnnotationError, match="no annotations"):
        seg.fit(img, np.zeros(img.shape, np.uint8))
    one = np.zeros(img.shape, np.uint8)
    one[5, 5] = 2
    with pytest.raises(AnnotationError, match="only class 2"):
        seg.fit(img, one)
    with pytest.raises(AnnotationError, match="not trained"):
        seg.predict(img)
    with pytest.raises(AnnotationError, match="shape"):
        seg.fit(img, np.ones((3, 3), np.uint8))


def test_channel_mismatch_is_clear():
    img = two_texture_image()
    seg = Segmenter(features="classical", feature_params=FAST, n_estimators=5).fit(img, scribbles(img.shape))
    with pytest.raises(ConfigError, match="1-channel"):
        seg.predict(np.stack([img] * 3, -1))


def test_rgb_skimage_image():
    img = data.astronaut()[::4, ::4]
    lab = np.zeros(img.shape[:2], np.uint8)
    lab[5:8, 5:40] = 1       # background
    lab[60:64, 40:60] = 2    # face / suit region
    seg = Segmenter(features="classical", feature_params=FAST, n_estimators=10).fit(img, lab)
    pred = seg.predict(img)
    assert pred[6, 20] == 1 and pred[62, 50] == 2


def test_tiled_prediction_equals_untiled():
    img = two_texture_image(shape=(150, 170))
    seg = Segmenter(features="classical", feature_params=FAST, n_estimators=5, cache=FeatureCache(0))
    seg.fit(img, scribbles(img.shape))
    whole = seg.predict_proba(img, tiles=seg.feature_tiles(img, tile=1024))
    tiled = seg.feature_tiles(img, tile=64)
    assert len(tiled.grid) == 9
    np.testing.assert_allclose(seg.predict_proba(img, tiles=tiled), whole, atol=1e-5)
    assert (seg.predict(img) == seg.classes_[np.argmax(whole, -1)]).all()


def test_auto_records_choice_and_reason():
    img = data.coins()[::2, ::2]
    lab = np.zeros(img.shape, np.uint8)
    lab[2:5, 5:150] = 1
    lab[100:103, 5:150] = 1
    lab[60:64, 20:28] = 2
    lab[40:44, 95:103] = 2
    lab[100:140:10, 140:145] = 1
    seg = Segmenter(features="auto", n_estimators=5).fit(img, lab)
    rep = seg.auto_report
    assert rep["chosen"] == seg.extractor.name
    assert rep["chosen"] in ("classical", "effnet-lite0", "classical+effnet-lite0")
    assert rep["reason"]
    assert set(rep["scores"]) | set(rep["skipped"]) == {"classical", "effnet-lite0", "classical+effnet-lite0"}


def test_spatial_blocks_keep_neighbours_together():
    from segapp.autoselect import spatial_blocks

    where = np.array([[0, 1, 1], [0, 2, 2], [0, 40, 40], [1, 1, 1]])
    g = spatial_blocks(where, block=16)
    assert g[0] == g[1] and len({g[0], g[2], g[3]}) == 3


def test_auto_with_two_painted_images_holds_out_whole_images():
    imgs = [two_texture_image(s) for s in range(2)]
    labs = [scribbles(imgs[0].shape), scribbles(imgs[0].shape)]
    seg = Segmenter(features="auto", n_estimators=5).fit(imgs, labs)
    assert seg.auto_report["folds"] == "images"
    assert "leave-one-image-out" in seg.auto_report["reason"]
    one = Segmenter(features="auto", n_estimators=5).fit(imgs[:1], labs[:1])
    assert one.auto_report["folds"] == "blocks"


def test_config_round_trip_and_classifier_kinds():
    seg = Segmenter(features="classical", feature_params=FAST, classifier="extra-trees", n_estimators=7, max_depth=0)
    cfg = seg.get_config()
    assert cfg["classifier"] == "extra-trees" and cfg["classifier_params"]["n_estimators"] == 7
    assert cfg["classifier_params"]["max_depth"] is None            # 0 = unlimited
    again = Segmenter.from_config(cfg)
    assert again.get_config() == cfg
    img = two_texture_image()
    fitted = again.fit(img, scribbles(img.shape))
    assert type(fitted.classifier_).__name__ == "ExtraTreesClassifier"
    with pytest.raises(ConfigError, match="unknown classifier"):
        Segmenter(classifier="magic")


def test_defaults_come_from_segapp_defaults(monkeypatch):
    from segapp import defaults

    seg = Segmenter()
    assert seg.features_spec == defaults.EXTRACTOR and seg.classifier == defaults.CLASSIFIER
    assert seg.normalization == defaults.NORMALIZATION
    assert seg.classifier_params == defaults.classifier_params()


def test_the_default_model_trains_predicts_and_rejects_flat_params():
    from segapp import defaults

    img = data.astronaut()[::8, ::8]
    lab = np.zeros(img.shape[:2], np.uint8)
    lab[2:5, 2:30] = 1
    lab[30:33, 22:30] = 2
    seg = Segmenter(n_estimators=5).fit(img, lab)
    assert seg.extractor.name == defaults.EXTRACTOR
    assert seg.predict(img).shape == img.shape[:2]
    if "+" in defaults.EXTRACTOR:
        flat = Segmenter(feature_params={"sigmas": [1.0]})          # goes to the part that has sigmas
        assert flat.extractor.parts[0].params["sigmas"] == [1.0]
        with pytest.raises(ConfigError, match="ambiguous or unknown"):
            Segmenter(feature_params={"scales": [1], "sigmas": [1.0]}, features="classical+effnet-lite0+effnet-lite1")
