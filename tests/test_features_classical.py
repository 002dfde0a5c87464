"""The ``classical`` filter bank: shapes, analytic values, configuration, segmentation sanity."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from segapp.errors import ConfigError
from segapp.features import get_extractor
from segapp.features.classical import KINDS, ClassicalFeatures

ALL = list(KINDS)


def rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def by_name(ex, feats, n_channels):
    return dict(zip(ex.feature_names(n_channels), np.moveaxis(feats, -1, 0)))


@pytest.mark.parametrize("n_channels", [1, 3, 4])
def test_shape_dtype_count_names(n_channels):
    ex = get_extractor("classical")
    feats = ex.compute(rand((37, 53, n_channels)))
    assert feats.shape == (37, 53, ex.n_features(n_channels))
    assert feats.dtype == np.float32 and feats.flags.c_contiguous
    assert np.isfinite(feats).all()
    names = ex.feature_names(n_channels)
    assert len(names) == feats.shape[-1] == 25 * n_channels
    assert len(set(names)) == len(names)


def test_all_kinds_and_raw_count():
    ex = get_extractor("classical", features=ALL, include_raw=True)
    feats = ex.compute(rand((20, 30, 3)))
    # per channel: raw + 7 gaussians + 6 derivative sigmas x (gradient, log, dog, 2 structure, 2 hessian)
    assert ex.n_features(3) == feats.shape[-1] == 3 * (1 + 7 + 6 * 7)
    assert np.isfinite(feats).all()
    raw = by_name(ex, feats, 3)["raw_c2"]
    np.testing.assert_array_equal(raw, rand((20, 30, 3))[..., 2])


def test_2d_input_equals_single_channel():
    ex = get_extractor("classical", sigmas=[1.0, 4.0])
    img = rand((30, 25))
    np.testing.assert_array_equal(ex.compute(img), ex.compute(img[..., None]))


def test_tiny_images():
    ex = get_extractor("classical", features=ALL)
    for shape in [(1, 1, 1), (1, 7, 2), (3, 2, 1)]:
        feats = ex.compute(rand(shape))
        assert feats.shape == shape[:2] + (ex.n_features(shape[2]),) and np.isfinite(feats).all()


def test_gaussian_matches_scipy_at_full_resolution():
    ex = get_extractor("classical", sigmas=[0.3, 0.7, 1.6], features=["gaussian"])
    img = rand((40, 50, 1))
    feats = ex.compute(img)
    for i, s in enumerate(ex.params["sigmas"]):
        ref = ndi.gaussian_filter(img[..., 0], s, mode="nearest", truncate=3.5)
        np.testing.assert_allclose(feats[..., i], ref, atol=1e-5)


def test_pyramid_scales_approximate_exact_gaussian():
    from skimage import data

    img = data.camera()[::2, ::2].astype(np.float32)[..., None] / 255
    ex = get_extractor("classical", sigmas=[3.5, 5.0, 10.0], features=["gaussian"])
    feats = ex.compute(img)
    for i, s in enumerate(ex.params["sigmas"]):
        ref = ndi.gaussian_filter(img[..., 0], s, mode="nearest", truncate=3.5)
        assert np.abs(feats[..., i] - ref)[40:-40, 40:-40].max() < 0.03


def test_constant_image():
    ex = get_extractor("classical", features=ALL)
    feats = ex.compute(np.full((50, 60, 1), 0.7, np.float32))
    named = by_name(ex, feats, 1)
    for name, f in named.items():
        expected = 0.7 if name.startswith("gaussian") else 0.0
        np.testing.assert_allclose(f, expected, atol=1e-5, err_msg=name)


def test_linear_ramp():
    """G(ramp) = ramp, |grad| = slope, second derivatives and DoG vanish, structure = (slope^2, 0)."""
    a, b = 0.03, -0.04  # slope 0.05 per pixel
    yy, xx = np.mgrid[0:200, 0:220].astype(np.float32)
    img = (a * xx + b * yy + 10)[..., None]
    ex = get_extractor("classical", features=ALL)
    named = by_name(ex, ex.compute(img), 1)
    core = (slice(80, -80), slice(80, -80))  # beyond the largest sigma's reach of the border
    for name, f in named.items():
        f = f[core]
        if name.startswith("gaussian"):
            np.testing.assert_allclose(f, img[..., 0][core], atol=1e-3, err_msg=name)
        elif name.startswith("gradient"):
            np.testing.assert_allclose(f, 0.05, atol=1e-4, err_msg=name)
        elif name.startswith("structure_eig1"):
            np.testing.assert_allclose(f, 0.05**2, atol=1e-5, err_msg=name)
        else:  # log, dog, hessian, structure_eig2
            np.testing.assert_allclose(f, 0.0, atol=2e-4, err_msg=name)


def test_quadratic_hessian():
    """I = x^2 / 2: Hessian eigenvalues (1, 0) and LoG 1 at every scale."""
    yy, xx = np.mgrid[0:200, 0:200].astype(np.float32)
    img = ((xx - 100) ** 2 / 2)[..., None] / 100
    ex = get_extractor("classical", features=["log", "hessian"])
    named = by_name(ex, ex.compute(img), 1)
    core = (slice(80, -80), slice(80, -80))
    for s in [0.7, 1.6, 3.5, 10]:
        np.testing.assert_allclose(named[f"hessian_eig1_s{s:g}_c0"][core], 0.01, atol=1e-4)
        np.testing.assert_allclose(named[f"hessian_eig2_s{s:g}_c0"][core], 0.0, atol=1e-4)
        np.testing.assert_allclose(named[f"log_s{s:g}_c0"][core], 0.01, atol=1e-4)


def test_eigenvalues_ordered():
    ex = get_extractor("classical", features=["structure", "hessian"])
    named = by_name(ex, ex.compute(rand((40, 40, 1))), 1)
    for kind in ("structure", "hessian"):
        for s in [0.7, 3.5, 10]:
            e1, e2 = named[f"{kind}_eig1_s{s:g}_c0"], named[f"{kind}_eig2_s{s:g}_c0"]
            assert (e1 >= e2 - 1e-7).all()
    assert (named["structure_eig2_s1_c0"] >= -1e-7).all()  # positive semi-definite


def test_config_round_trip_and_normalisation():
    ex = get_extractor("classical", sigmas=[4, 1, 2, 2], features=["hessian", "gaussian"], include_raw=1)
    assert ex.params == {"sigmas": [1.0, 2.0, 4.0], "features": ["gaussian", "hessian"], "include_raw": True}
    again = get_extractor(ex.config())
    assert isinstance(again, ClassicalFeatures) and again.key() == ex.key()
    img = rand((30, 40, 2))
    np.testing.assert_array_equal(again.compute(img), ex.compute(img))


def test_margin_and_align():
    small = get_extractor("classical", sigmas=[0.7, 1.0, 3.0])
    assert small.align == 1 and small.margin >= int(3.5 * 3.0 + 0.5) + 1
    default = get_extractor("classical")
    assert default.align == 4  # sigma 10 is computed on a 4x coarser grid
    assert get_extractor("classical", features=ALL).margin > default.margin


@pytest.mark.parametrize("params", [
    {"sigmas": []}, {"sigmas": [-1.0]}, {"sigmas": ["a"]}, {"sigmas": 3}, {"sigmas": [1, float("nan")]},
    {"features": ["sobel"]}, {"features": 3}, {"sigmas": [0.3], "features": ["hessian"]}, {"colour": True},
])
def test_bad_params(params):
    with pytest.raises(ConfigError):
        get_extractor("classical", **params)


def test_segments_coins():
    """A random forest on two scribbled lines separates coins from background."""
    from skimage import data, filters, segmentation
    from sklearn.ensemble import RandomForestClassifier

    coins = data.coins()
    markers = np.zeros_like(coins)
    markers[coins < 30], markers[coins > 150] = 1, 2
    ref = ndi.binary_fill_holes(segmentation.watershed(filters.sobel(coins), markers) == 2)
    inner_fg, inner_bg = ndi.binary_erosion(ref, iterations=3), ndi.binary_erosion(~ref, iterations=3)
    scribble = np.zeros(coins.shape, np.uint8)
    for r in (50, 200):  # two horizontal strokes, labelled coin (2) / background (1)
        scribble[r : r + 2][inner_fg[r : r + 2]] = 2
        scribble[r : r + 2][inner_bg[r : r + 2]] = 1
    feats = get_extractor("classical").compute(coins[..., None] / np.float32(255))
    rf = RandomForestClassifier(30, random_state=0).fit(feats[scribble > 0], scribble[scribble > 0])
    pred = rf.predict(feats.reshape(-1, feats.shape[-1])).reshape(coins.shape) == 2
    iou = (pred & ref).sum() / (pred | ref).sum()
    assert iou > 0.75, iou


# -- the torch implementation (CUDA when present; tested here on CPU torch) ---------------------------
@pytest.mark.parametrize("params", [
    {},
    {"features": ["gaussian", "gradient", "log", "dog", "structure", "hessian"], "include_raw": True},
    {"sigmas": [0.3, 1.6, 20.0], "features": ["structure", "dog", "gaussian"]},
])
def test_torch_filter_bank_matches_numpy(params):
    from segapp.features import classical_torch

    ex = ClassicalFeatures(**params)
    img = np.random.default_rng(3).random((97, 130, 3), dtype=np.float32)
    img[30:60, 40:90] += 2.0  # edges, so derivatives are far from zero
    want = ex.compute_numpy(img)
    got = classical_torch.compute(ex, img, "cpu")
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-4)


def test_compute_routes_to_torch_when_a_gpu_is_present(monkeypatch):
    from segapp.features import classical_torch

    seen = []
    real = classical_torch.compute
    monkeypatch.setattr(classical_torch, "cuda_present", lambda: True)
    monkeypatch.setattr(classical_torch, "DEVICE", "cpu")
    monkeypatch.setattr(classical_torch, "compute", lambda ex, im, dev: seen.append(dev) or real(ex, im, dev))
    ex = ClassicalFeatures(sigmas=[1.0, 4.0])
    img = np.random.default_rng(0).random((40, 30, 1), dtype=np.float32)
    np.testing.assert_allclose(ex.compute(img), ex.compute_numpy(img), atol=1e-4)
    assert seen == ["cpu"]
