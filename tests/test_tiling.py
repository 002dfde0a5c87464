"""Tiled extraction: with the extractor's margin and alignment, tiled == untiled."""

import numpy as np
import pytest

from segapp.features import FeatureExtractor, extract_tiled, get_extractor


def rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


class StridedBlocks(FeatureExtractor):
    """Network-like toy: 4x4 block means (stride 4), a 3x3 block box filter, nearest upsampling.

    Its output depends on where the 4x4 grid starts, so tiled == untiled only when
    tile origins are multiples of ``align``.
    """

    name = "strided-toy"
    default_params = {}

    @property
    def margin(self):
        return 2 * 4 + 3

    @property
    def align(self):
        return 4

    def n_features(self, n_channels):
        return n_channels

    def compute(self, image):
        from scipy import ndimage as ndi

        h, w, c = image.shape
        hb, wb = -(-h // 4), -(-w // 4)
        pad = np.pad(image, ((0, hb * 4 - h), (0, wb * 4 - w), (0, 0)), mode="edge")
        blocks = pad.reshape(hb, 4, wb, 4, c).mean(axis=(1, 3))
        blocks = ndi.uniform_filter(blocks, size=(3, 3, 1), mode="nearest")
        return np.repeat(np.repeat(blocks, 4, 0), 4, 1)[:h, :w].astype(np.float32)


@pytest.mark.parametrize("params", [
    {},
    {"features": ["gaussian", "gradient", "log", "dog", "structure", "hessian"], "include_raw": True},
    {"sigmas": [0.7, 2.0], "features": ["structure", "dog"]},
    {"sigmas": [1.0, 20.0], "features": ["hessian"]},
])
def test_classical_tiled_equals_untiled(params):
    ex = get_extractor("classical", **params)
    img = rand((200, 170, 2))
    whole = extract_tiled(ex, img, None)
    tiled = extract_tiled(ex, img, 64)
    assert tiled.shape == whole.shape == (200, 170, ex.n_features(2))
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_classical_small_tiles_and_odd_tile_size():
    ex = get_extractor("classical", sigmas=[1.0, 3.5])  # align 2
    img = rand((90, 77, 1), seed=1)
    whole = extract_tiled(ex, img, None)
    np.testing.assert_allclose(extract_tiled(ex, img, 16), whole, atol=1e-4)
    np.testing.assert_allclose(extract_tiled(ex, img, 25), whole, atol=1e-4)  # rounded to the grid


def test_classical_combination_tiled():
    ex = get_extractor("classical+classical")
    assert ex.margin == get_extractor("classical").margin and ex.align == 4
    img = rand((100, 90, 1))
    np.testing.assert_allclose(extract_tiled(ex, img, 48), extract_tiled(ex, img, None), atol=1e-4)


def test_strided_extractor_needs_alignment():
    ex = StridedBlocks()
    img = rand((70, 93, 3), seed=2)
    whole = extract_tiled(ex, img, None)
    np.testing.assert_allclose(extract_tiled(ex, img, 24), whole, atol=1e-6)
    np.testing.assert_allclose(extract_tiled(ex, img, 30), whole, atol=1e-6)  # 30 -> 28 on the grid
    # A misaligned tiling (origins at multiples of 6) would give different features:
    misaligned = ex.compute(img[6:, 6:])
    assert not np.allclose(misaligned[:20, :20], whole[6:26, 6:26], atol=1e-6)


def test_progress_and_2d_input():
    ex = get_extractor("classical", sigmas=[1.0])
    img = rand((50, 40))
    seen = []
    out = extract_tiled(ex, img, 16, progress=seen.append)
    assert out.shape == (50, 40, ex.n_features(1))
    assert len(seen) == 4 * 3 and seen[-1] == 1.0 and seen == sorted(seen)
    seen.clear()
    extract_tiled(ex, img, None, progress=seen.append)
    assert seen == [1.0]


def test_image_smaller_than_tile_is_one_call():
    calls = []

    class Counting(StridedBlocks):
        def compute(self, image):
            calls.append(image.shape)
            return super().compute(image)

    extract_tiled(Counting(), rand((30, 20, 1)), 64)
    assert calls == [(30, 20, 1)]
