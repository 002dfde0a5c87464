"""Cost limits on images: decoded bytes, pixels, planes, channels, pages and decompression bombs.

Every file here is crafted in the test and small; each limit is exercised by a file that
would cost far more than it weighs, and the refusal is checked to come before the cost.
"""

import io
import struct
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from segapp import io as sio
from segapp.config import Settings
from segapp.errors import ImageReadError
from segapp.limits import Limits, check_image_cost, default_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import fuzzcases as F  # noqa: E402


def tiff(arr, **kw):
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def peak_mb(fn) -> float:
    """Peak traced allocation (MB) while ``fn`` runs (numpy and zlib buffers are traced)."""
    tracemalloc.start()
    try:
        fn()
    except ImageReadError:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def test_limits_come_from_the_settings_and_the_environment(monkeypatch):
    lim = Limits.from_settings(Settings(max_image_mb=5, max_channels=2, max_planes=3, max_model_mb=1))
    assert (lim.max_image_bytes, lim.max_channels, lim.max_planes, lim.max_model_bytes) == (5 << 20, 2, 3, 1 << 20)
    monkeypatch.setenv("SEGAPP_MAX_CHANNELS", "3")
    assert default_limits().max_channels == 3
    with pytest.raises(ImageReadError, match="4 channels; at most 3 are accepted"):
        sio.read_image(tiff(np.zeros((4, 4, 4), np.uint8), photometric="minisblack", planarconfig="contig"))


@pytest.mark.parametrize("shape, dtype, limits, message", [
    ((200, 300, 17), np.uint8, Limits(), "17 channels; at most 16"),
    ((5, 6, 7), np.uint8, Limits(max_planes=4), "5 planes; at most 4"),
    ((1000, 1000, 2), np.uint8, Limits(max_image_bytes=1 << 20), "decodes to 1.9 MB, more than the 1.0 MB"),
    ((300, 400), np.float64, Limits(max_image_bytes=512 << 10), "decodes to 937.5 KB"),
    ((300, 400), np.uint8, Limits(max_pixels=100_000), "120,000 pixels exceeds the limit of 100,000"),
])
def test_decoded_size_is_checked_from_the_header_before_decoding(shape, dtype, limits, message):
    contig = "contig" if len(shape) == 3 and shape[-1] in (2, 17) else None  # channels last, not pages
    data = tiff(np.zeros(shape, dtype), photometric="minisblack", planarconfig=contig, compression="zlib")
    assert len(data) < 40_000  # the file is small; what it decodes to is not
    with pytest.raises(ImageReadError, match=message) as e:
        sio.read_stack(data, limits=limits, name="big.tif")
    assert "\n" not in str(e.value) and str(e.value).startswith("cannot read 'big.tif': ")
    assert peak_mb(lambda: sio.read_stack(data, limits=limits)) < 2  # refused before decoding


def test_png_header_counts_channels_and_bit_depth():
    rgba16 = F.png_raw(2000, 2000, depth=16, ctype=6)  # 2000 x 2000 x 4 x 2 bytes = 30.5 MB
    with pytest.raises(ImageReadError, match="2000 x 2000 x 4 channel\\(s\\) decodes to 30.5 MB"):
        sio.read_image(rgba16, limits=Limits(max_image_bytes=16 << 20))
    with pytest.raises(ImageReadError, match="100000 x 100000 = 10,000,000,000 pixels"):
        sio.read_image(F.png_raw(100_000, 100_000))


def test_a_strip_cannot_inflate_past_its_declared_size():
    bomb = F.deflate_bomb(64 << 20)  # 64 MB of zeros in one 100 x 100 strip (~65 KB on disk)
    data = F.tiff_raw(F.strip_tags(100, 100, compression=8, nbytes=len(bomb)), bomb)
    assert len(data) < 100_000
    assert peak_mb(lambda: sio.read_image(data)) < 8  # tifffile alone inflates all 64 MB first
    assert sio.read_image(data).shape == (100, 100, 1)  # the image it declares is valid and small
    packbits = F.tiff_raw(F.strip_tags(100, 100, compression=32773, nbytes=2 * 65536), b"\x81\x00" * 65536)
    assert peak_mb(lambda: sio.read_image(packbits)) < 8
    header = F.tiff_raw(F.strip_tags(16_384, 16_384, compression=8, nbytes=len(bomb)), bomb)
    with pytest.raises(ImageReadError, match="too large"):
        sio.read_image(header)


def test_the_decode_budget_stops_many_strips_together():
    """Each strip within its declared size, but all of them together past twice the byte limit."""
    rows, width = 64, 1024
    strip = zlib.compress(b"\0" * rows * width)
    n = 64
    offsets_at = 8 + 2 + 11 * 12 + 4
    counts_at = offsets_at + 4 * n
    data_at = counts_at + 4 * n
    tags = [(256, 4, 1, width), (257, 4, 1, rows * n), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1),
            (273, 4, n, offsets_at), (277, 3, 1, 1), (278, 4, 1, rows), (279, 4, n, counts_at),
            (284, 3, 1, 1), (339, 3, 1, 1)]
    arrays = struct.pack(f"<{n}I", *[data_at + i * len(strip) for i in range(n)]) + \
        struct.pack(f"<{n}I", *[len(strip)] * n)
    data = F.tiff_raw(tags, arrays + strip * n)
    assert sio.read_image(data).shape == (rows * n, width, 1)
    with pytest.raises(ImageReadError, match="too large|decompression bomb"):
        sio.read_image(data, limits=Limits(max_image_bytes=1 << 20))


def test_pages_are_counted_without_parsing_them_all():
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        for _ in range(40):
            tw.write(np.zeros((1, 1), np.uint8), photometric="minisblack", metadata=None)
    with pytest.raises(ImageReadError, match="more than 20 pages"):
        sio.read_stack(buf.getvalue(), limits=Limits(max_planes=5, max_channels=4))
    loop = F.tiff_raw(F.strip_tags(8, 8), b"\0" * 64, next_ifd=8)  # an IFD chain that points to itself
    assert sio.read_stack(loop).shape == (1, 8, 8, 1)


def test_file_size_and_foreign_formats():
    small = Limits(max_upload_bytes=1 << 20, max_image_bytes=1 << 20)
    with pytest.raises(ImageReadError, match="larger than 17.0 MB"):  # a file is never much larger than its pixels
        sio.read_image(b"\0" * (small.max_file_bytes + 1), limits=small)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"  # Pillow would run Ghostscript on it
    with pytest.raises(ImageReadError, match="not a recognised image format"):
        sio.read_image(eps)


def test_check_image_cost_names_the_limit():
    with pytest.raises(ImageReadError, match="SEGAPP_MAX_IMAGE_MB"):
        check_image_cost("x", 3000, 3000, 1, 16, 8)
    with pytest.raises(ImageReadError, match="image has no pixels"):
        check_image_cost("x", 0, 10)
    check_image_cost("x", 3000, 3000, 1, 3, 1)  # a 27 MB RGB image is fine


def test_display_conversion_works_in_bands_and_matches_the_whole_image_formula(monkeypatch):
    """A large image is shown without full-size float copies; the picture is the same as before."""
    from segapp.viewport import downscale

    rng = np.random.default_rng(0)
    images = (rng.integers(0, 4000, (213, 171), dtype=np.uint16), rng.random((90, 61, 3)).astype(np.float32) * 1e3,
              rng.integers(0, 255, (64, 65, 2), dtype=np.uint8), np.array([[np.nan, 1, np.inf, -np.inf]], np.float32))
    for a in images:
        for method in sio.DISPLAY_METHODS:
            monkeypatch.setattr(sio, "_DISPLAY_BAND", 1 << 30)  # one band: the whole-image formula
            whole = sio.to_display_rgb(a, method=method)
            monkeypatch.setattr(sio, "_DISPLAY_BAND", 997)  # many bands, not aligned to anything
            assert (sio.to_display_rgb(a, method=method) == whole).all(), (a.dtype, method)
            lo, hi = sio.display_range(a, method)  # ONE range for all channels
            with np.errstate(invalid="ignore"):
                ref = (a.astype(np.float64) - lo) * (255 / (hi - lo))
            ref = np.rint(np.clip(np.nan_to_num(ref, nan=0, posinf=255, neginf=0), 0, 255)).astype(np.uint8)
            ref = ref[..., None] if ref.ndim == 2 else ref
            ref = np.repeat(ref, 3, -1) if ref.shape[-1] == 1 else ref[..., [0, 1, 0]] if ref.shape[-1] == 2 else ref
            assert (np.abs(whole.astype(int) - ref) <= 1).all(), (a.dtype, method)  # float32 vs float64 rounding
    rgb = rng.integers(0, 255, (301, 157, 3), dtype=np.uint8)
    for step in (2, 3, 5):
        h, w = rgb.shape[:2]
        hh, ww = -(-h // step) * step, -(-w // step) * step
        pad = np.pad(rgb, ((0, hh - h), (0, ww - w), (0, 0)), mode="edge").astype(np.float32)
        ref = np.rint(pad.reshape(hh // step, step, ww // step, step, 3).mean(axis=(1, 3))).astype(np.uint8)
        assert (downscale(rgb, step) == ref).all()


def test_display_conversion_of_a_large_image_needs_no_float_copy_of_it():
    big = np.zeros((3000, 3000, 3), np.uint16)  # 54 MB; a float32 copy of it alone would be 108 MB
    tracemalloc.start()
    sio.to_display_rgb(big)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert peak < 80, peak  # the uint8 output (27 MB), the statistics' sample and one band
