"""Feature tiles: computed once, kept on disk, tiled == untiled, float16 costs nothing."""

import numpy as np
import pytest

from segapp.features import FeatureCache, get_extractor
from segapp.features.cache import DiskFeatureCache, TileCache
from segapp.features.classical import ClassicalFeatures
from segapp.features.tiles import TiledFeatures, TileGrid
from segapp.segmenter import Segmenter

FAST = {"sigmas": [1.0, 3.0]}


def textured(shape=(150, 170), seed=0):
    rng = np.random.default_rng(seed)
    img = np.full(shape, 60.0)
    img[:, shape[1] // 2:] = 160 + rng.normal(0, 25, (shape[0], shape[1] - shape[1] // 2))
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img[(yy - 40) ** 2 + (xx - 40) ** 2 < 15 ** 2] = 200
    return np.clip(img + rng.normal(0, 5, shape), 0, 255).astype(np.uint8)


def painted(shape):
    lab = np.zeros(shape, np.uint8)
    lab[10:13, 5:60] = 1
    lab[100:103, 100:160] = 2
    lab[38:42, 35:45] = 2
    return lab


@pytest.fixture
def counted(monkeypatch):
    """Every call of the classical extractor's compute(), with the shape it got."""
    calls = []
    real = ClassicalFeatures.compute

    def compute(self, image):
        calls.append(image.shape)
        return real(self, image)

    monkeypatch.setattr(ClassicalFeatures, "compute", compute)
    return calls


def test_grid_covers_image_once():
    g = TileGrid((1000, 700), 256, margin=30, align=4)
    cover = np.zeros((1000, 700), int)
    for index in g:
        y0, y1, x0, x1 = g.box(index)
        cover[y0:y1, x0:x1] += 1
        cy0, cy1, cx0, cx1 = g.context(index)
        assert cy0 <= y0 and cy1 >= y1 and cy0 % 4 == 0 and cx0 % 4 == 0
    assert (cover == 1).all() and len(g) == 4 * 3
    assert g.touching(0, 1000, 0, 700) == list(g)
    assert g.touching(300, 301, 600, 650) == [(1, 2)]


def test_both_caches_speak_the_tile_interface(tmp_path):
    assert isinstance(FeatureCache(), TileCache) and isinstance(DiskFeatureCache(tmp_path), TileCache)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_cached_tiles_are_never_recomputed_across_strokes_and_processes(tmp_path, counted, alpha):
    img, lab = textured(), painted((150, 170))
    disk = DiskFeatureCache(tmp_path / "features")
    seg = Segmenter(features="classical", feature_params=FAST, n_estimators=5, cache=disk, prior_correction=alpha)
    seg.tile = 64
    tiles = seg.feature_tiles(img)
    assert len(tiles.grid) == 9
    seg.fit(img, lab)
    painted_tiles = set(np.unique(tiles.grid.of_pixels(*np.nonzero(lab))).tolist())
    # training touches only the tiles under the paint (the prior correction's sample of unpainted
    # pixels stays in them on an image of more than prior.MAX_TILES tiles)
    assert len(counted) == len(painted_tiles) < 9
    seg.predict_proba(img, tiles=tiles)
    assert len(counted) == 9  # prediction adds the others, once each
    for k in range(3):  # later strokes: retrain + predict, nothing extracted again
        lab2 = lab.copy()
        lab2[120:123, 10 + 20 * k:30 + 20 * k] = 1
        seg.fit(img, lab2)
        seg.predict_proba(img)
    assert len(counted) == 9
    # another process (a fresh cache object on the same directory, empty memory front) reads the disk
    other = Segmenter(features="classical", feature_params=FAST, n_estimators=5, prior_correction=alpha,
                      cache=DiskFeatureCache(tmp_path / "features"))
    other.tile = 64
    other.fit(img, lab)
    again = other.feature_tiles(img)
    other.predict_proba(img, tiles=again)
    assert len(counted) == 9 and again.n_computed == 0
    assert len(list((tmp_path / "features").glob("*/*/*.npy"))) == 9


def test_tiled_prediction_equals_untiled_through_the_disk_cache(tmp_path):
    img, lab = textured(), painted((150, 170))
    seg = Segmenter(features="classical", feature_params=FAST, n_estimators=8, cache=DiskFeatureCache(tmp_path / "a"))
    seg.fit(img, lab)
    untiled = seg.predict_proba(img, tiles=seg.feature_tiles(img, tile=1024))
    seg.cache = DiskFeatureCache(tmp_path / "b")
    tiled = seg.predict_proba(img, tiles=seg.feature_tiles(img, tile=48))
    # float16 storage rounds each tile the same way wherever it was cut
    assert (np.argmax(tiled, -1) == np.argmax(untiled, -1)).mean() > 0.999
    np.testing.assert_allclose(tiled, untiled, atol=0.05)


def test_region_with_step_is_strided_full_stack():
    ex = get_extractor("classical", sigmas=[1.0, 2.0])
    img = np.random.default_rng(1).random((70, 90, 2), dtype=np.float32)
    tf = TiledFeatures(ex, img, "d", FeatureCache(), tile=32)
    full = ex.compute(img)
    np.testing.assert_allclose(tf.region(5, 66, 7, 88, step=3), full[5:66:3, 7:88:3], atol=1e-5)
    rr, cc = np.array([0, 69, 33, 40]), np.array([0, 89, 64, 1])
    np.testing.assert_allclose(tf.at(rr, cc), full[rr, cc], atol=1e-5)


def test_combined_extractor_reuses_its_parts_tiles(counted):
    cache = FeatureCache()
    img, lab = textured((80, 90)), painted((80, 90))[:80, :90]
    lab[60:63, 50:80] = 2
    Segmenter(features="classical", feature_params=FAST, n_estimators=3, cache=cache).fit(img, lab)
    n = len(counted)
    assert n == 1
    combo = Segmenter(features={"parts": [{"name": "classical", "params": FAST},
                                          {"name": "classical", "params": {"sigmas": [2.0]}}]},
                      n_estimators=3, cache=cache)
    combo.fit(img, lab)
    assert len(counted) == n + 1  # only the new part was extracted
    assert combo.predict(img).shape == img.shape


def test_float16_disk_tiles_predict_like_float32(tmp_path):
    from skimage import data

    img = data.astronaut()[::2, ::2]
    lab = np.zeros(img.shape[:2], np.uint8)
    lab[10:14, 10:200] = 1
    lab[150:154, 100:160] = 2
    lab[60:64, 200:240] = 2
    f32 = Segmenter(features="classical", n_estimators=16, cache=DiskFeatureCache(tmp_path / "32", dtype=np.float32)).fit(img, lab)
    f16 = Segmenter(features="classical", n_estimators=16, cache=DiskFeatureCache(tmp_path / "16")).fit(img, lab)
    agree = (f32.predict(img) == f16.predict(img)).mean()
    assert agree > 0.99
    assert next((tmp_path / "16").glob("*/*/*.npy")).stat().st_size < \
        0.6 * next((tmp_path / "32").glob("*/*/*.npy")).stat().st_size


def test_band_by_band_probabilities_equal_one_region_and_combined_parts_fill_their_columns(tmp_path):
    """Overlay tiles are classified in row bands straight from the float16 tiles: the same numbers."""
    from segapp.ui import overlay_tiles as OT

    rng = np.random.default_rng(0)
    img = (rng.random((150, 130)) * 60).astype(np.uint8)
    img[40:110, 30:100] += 150
    lab = np.zeros(img.shape, np.uint8)
    lab[5:8, 5:120], lab[70:73, 40:90] = 1, 2
    seg = Segmenter(features="classical+effnet-lite0", n_estimators=8,
                    cache=DiskFeatureCache(tmp_path / "c", max_memory_bytes=0))  # every tile a float16 map
    seg.fit([img], [lab])
    tiles = seg.feature_tiles(img)
    whole = seg.proba_of(np.concatenate([p.region(0, 150, 0, 130) for p in tiles.parts], axis=-1))
    old = OT.BAND_PIXELS
    try:
        OT.BAND_PIXELS = 997  # many bands, not aligned to rows or tiles
        for step in (1, 2, 3):
            np.testing.assert_array_equal(OT.tile_proba(seg, tiles, (0, 150, 0, 130), step), whole[::step, ::step])
    finally:
        OT.BAND_PIXELS = old
