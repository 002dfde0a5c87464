"""Image I/O: round trips, label rules, normalisation and every bad-input message."""
import io
import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage import data as skdata

from segapp import io as sio
from segapp.errors import ConfigError, ImageReadError


def png_bytes(arr_or_image, **kw):
    im = arr_or_image if isinstance(arr_or_image, Image.Image) else Image.fromarray(arr_or_image)
    buf = io.BytesIO()
    im.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def tiff_bytes(arr, **kw):
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def huge_png(w, h):
    def chunk(tag, payload):
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def huge_tiff(w, h):
    """A header-only 8-bit TIFF claiming w x h pixels (no pixel data at all)."""
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, w * h)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags) + b"\0" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd


# -- round trips ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["camera", "astronaut", "coins"])
def test_skimage_images_round_trip_through_png(tmp_path, name):
    img = getattr(skdata, name)()
    path = tmp_path / f"{name}.png"
    Image.fromarray(img).save(path)
    out = sio.read_image(path)
    assert out.dtype == np.uint8 and out.shape == img.shape[:2] + (img.shape[2] if img.ndim == 3 else 1,)
    np.testing.assert_array_equal(out.reshape(img.shape), img)


def test_tiff_16bit_float_and_stack_round_trips(tmp_path):
    a16 = (np.arange(20 * 30).reshape(20, 30) * 97 % 65536).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", a16)
    out = sio.read_image(tmp_path / "a.tif")
    assert out.dtype == np.uint16 and np.array_equal(out[..., 0], a16)
    f = np.random.default_rng(0).normal(size=(8, 9)).astype(np.float32)
    np.testing.assert_array_equal(sio.read_image(tiff_bytes(f))[..., 0], f)
    assert sio.read_image(tiff_bytes(f.astype(np.float64))).dtype == np.float32
    stack = np.stack([np.full((6, 7), z, np.uint16) for z in range(5)])
    s = sio.read_stack(tiff_bytes(stack, photometric="minisblack"))
    assert s.shape == (5, 6, 7, 1) and s[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]
    assert sio.read_image(tiff_bytes(stack, photometric="minisblack"), plane=3)[0, 0, 0] == 3
    pages = io.BytesIO()
    with tifffile.TiffWriter(pages) as tw:  # separate pages, not one shaped series
        for z in range(3):
            tw.write(np.full((4, 4), z, np.uint8), photometric="minisblack", metadata=None)
    assert sio.read_stack(pages.getvalue())[:, 0, 0, 0].tolist() == [0, 1, 2]
    zcyx = sio.read_stack(tiff_bytes(np.zeros((2, 3, 4, 5), np.float32), imagej=True,
                                     metadata={"axes": "ZCYX"}))
    assert zcyx.shape == (2, 4, 5, 3)


def test_rgb_rgba_palette_bilevel_jpeg_cmyk():
    rgb = skdata.astronaut()[:32, :40]
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(sio.read_image(png_bytes(rgba)), rgb)
    np.testing.assert_array_equal(sio.read_image(tiff_bytes(rgba)), rgb)
    pal = Image.fromarray(rgb).quantize(8)
    np.testing.assert_array_equal(sio.read_image(png_bytes(pal)), np.asarray(pal.convert("RGB")))
    la = Image.fromarray(rgba[..., ::2]).convert("LA")
    assert sio.read_image(png_bytes(la)).shape == (32, 40, 1)
    bits = np.zeros((4, 5), bool)
    bits[1, 2] = True
    assert sio.read_image(png_bytes(Image.fromarray(bits)))[..., 0].tolist() == (bits * 255).tolist()
    jpg = sio.read_image(png_bytes(rgb, format="JPEG", quality=95))
    assert jpg.shape == rgb.shape and np.abs(jpg.astype(int) - rgb).mean() < 6
    # decision: CMYK (and YCbCr) JPEGs are converted to RGB rather than rejected
    cmyk = sio.read_image(png_bytes(Image.new("CMYK", (5, 4), (0, 255, 255, 0)), format="JPEG"))
    assert cmyk.shape == (4, 5, 3) and cmyk[0, 0].tolist() == [255, 0, 0]
    lzw = png_bytes(Image.fromarray(rgb), format="TIFF", compression="tiff_lzw")  # needs Pillow
    np.testing.assert_array_equal(sio.read_image(lzw), rgb)


def test_sources_path_bytes_fileobj_and_16bit_png(tmp_path):
    g16 = (np.arange(12).reshape(3, 4) * 5000).astype(np.uint16)
    p = tmp_path / "g16.png"
    p.write_bytes(png_bytes(g16))
    for src in (p, str(p), p.read_bytes(), io.BytesIO(p.read_bytes())):
        out = sio.read_image(src)
        assert out.dtype == np.uint16 and out[..., 0].tolist() == g16.tolist()
    with open(p, "rb") as fh:
        assert sio.read_image(fh).shape == (3, 4, 1)


# -- labels --------------------------------------------------------------------
def test_labels_round_trip_png_and_tiff(tmp_path):
    small = np.array([[0, 1, 2], [3, 0, 255]])
    sio.write_labels(tmp_path / "s.png", small)
    with Image.open(tmp_path / "s.png") as im:
        assert im.mode == "L"
    big = np.array([[0, 1], [256, 65535]])
    sio.write_labels(tmp_path / "b.png", big)
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode.startswith("I;16")
    huge = np.array([[0, 70000]])
    sio.write_labels(tmp_path / "h.tif", huge)  # fmt follows the suffix
    for path, arr in (("s.png", small), ("b.png", big), ("h.tif", huge)):
        out = sio.read_labels(tmp_path / path)
        assert out.dtype == np.int32 and out.tolist() == arr.tolist()
    with pytest.raises(ValueError, match="fmt='tiff'"):
        sio.write_labels(tmp_path / "h.png", huge)
    with pytest.raises(ValueError):
        sio.write_labels(tmp_path / "x.png", np.array([[0.5]]))


def test_labels_accepted_forms():
    lab = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    pal = Image.fromarray(lab, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    assert sio.read_labels(png_bytes(pal)).tolist() == lab.tolist()  # palette indices, not colours
    assert sio.read_labels(png_bytes(np.dstack([lab] * 3))).tolist() == lab.tolist()
    assert sio.read_labels(png_bytes(np.dstack([lab] * 3 + [lab * 0 + 255]))).tolist() == lab.tolist()
    assert sio.read_labels(png_bytes(Image.fromarray(lab.astype(bool)))).tolist() == (lab > 0).tolist()
    assert sio.read_labels(tiff_bytes(lab.astype(np.int32) * 1000)).max() == 2000
    assert sio.read_labels(tiff_bytes(lab[None].astype(np.uint16), photometric="minisblack")).shape == (2, 3)


@pytest.mark.parametrize("payload, msg", [
    (lambda: png_bytes(np.dstack([np.eye(3, dtype=np.uint8)] * 2 + [np.zeros((3, 3), np.uint8)])),
     "differing channels"),
    (lambda: tiff_bytes(np.array([[0, -1]], np.int16)), "non-negative, found -1"),
    (lambda: tiff_bytes(np.array([[0.0, 1.5]], np.float32)), "must be integers, got float32"),
    (lambda: tiff_bytes(np.zeros((3, 4, 4), np.uint8), photometric="minisblack"), "got 3 planes"),
])
def test_bad_labels(payload, msg):
    with pytest.raises(ImageReadError, match=msg) as info:
        sio.read_labels(payload(), name="lab.png")
    assert str(info.value).startswith("cannot read 'lab.png': ")


# -- bad input -----------------------------------------------------------------
def _bad_files():
    good_png = png_bytes(skdata.camera()[:64, :64])
    good_jpg = png_bytes(skdata.camera()[:64, :64], format="JPEG")
    good_tif = tiff_bytes(skdata.camera()[:64, :64])
    return {
        "empty.png": (b"", "the file is empty"),
        "notes.txt": (b"just some text\n", "not a recognised image format"),
        "paper.pdf": (b"%PDF-1.7\n%\xe2\xe3\n1 0 obj", "a PDF document, not an image"),
        "cut.png": (good_png[: len(good_png) // 2], "truncated or corrupt PNG"),
        "header.png": (good_png[:20], "truncated or corrupt PNG"),
        "cut.jpg": (good_jpg[: len(good_jpg) // 2], "truncated or corrupt JPEG"),
        "cut.tif": (good_tif[: len(good_tif) // 2], "truncated TIFF"),
        "header.tif": (good_tif[:12], "truncated or corrupt TIFF"),
        "bomb.png": (huge_png(100_000, 100_000), "too large: 100000 x 100000"),
        "bomb.tif": (huge_tiff(50_000, 50_000), "too large: 50000 x 50000"),
        "complex.tif": (tiff_bytes(np.zeros((4, 4), np.complex64)), "unsupported pixel type"),
    }


@pytest.mark.parametrize("fname", ["empty.png", "notes.txt", "paper.pdf", "cut.png", "header.png",
                                   "cut.jpg", "cut.tif", "header.tif", "bomb.png", "bomb.tif",
                                   "complex.tif"])
def test_bad_images_raise_one_line_errors_naming_the_file(tmp_path, fname):
    payload, msg = _bad_files()[fname]
    path = tmp_path / fname
    path.write_bytes(payload)
    for reader in (sio.read_image, sio.read_stack, sio.read_labels):
        with pytest.raises(ImageReadError, match=msg) as info:
            reader(path)
        text = str(info.value)
        assert text.startswith(f"cannot read {fname!r}: ") and "\n" not in text
    with pytest.raises(ImageReadError, match=f"'{fname}'"):
        sio.read_image(payload, name=fname)


def test_pixel_limit_from_header_and_pillow_bomb_error():
    for payload in (png_bytes(np.zeros((20, 30), np.uint8)), tiff_bytes(np.zeros((20, 30), np.uint8)),
                    png_bytes(np.zeros((20, 30, 3), np.uint8), format="JPEG")):
        with pytest.raises(ImageReadError, match="30 x 20 = 600 pixels exceeds the limit of 599"):
            sio.read_image(payload, max_pixels=599)
        assert sio.read_image(payload, max_pixels=600).shape[:2] == (20, 30)
    stack = tiff_bytes(np.zeros((4, 10, 10), np.uint8), photometric="minisblack")
    with pytest.raises(ImageReadError, match="10 x 10 x 4 planes"):
        sio.read_stack(stack, max_pixels=399)
    # a limit above Pillow's own: its DecompressionBombError still becomes our error
    with pytest.raises(ImageReadError, match="too large"):
        sio.read_image(huge_png(100_000, 100_000), max_pixels=10**12)


def test_missing_file_text_mode_and_missing_plane(tmp_path):
    with pytest.raises(ImageReadError, match="'nope.png': no such file"):
        sio.read_image(tmp_path / "nope.png")
    (tmp_path / "t.png").write_bytes(png_bytes(np.zeros((2, 2), np.uint8)))
    with open(tmp_path / "t.png") as fh, pytest.raises(ImageReadError, match="text mode"):
        sio.read_image(fh)
    with pytest.raises(ImageReadError, match="plane 1 does not exist"):
        sio.read_image(tmp_path / "t.png", plane=1)


# -- proba, normalisation, display, digest ------------------------------------
def test_write_proba_tiff(tmp_path):
    p = np.random.default_rng(1).random((6, 7, 3)).astype(np.float32)
    sio.write_proba_tiff(tmp_path / "p.tif", p)
    with tifffile.TiffFile(tmp_path / "p.tif") as tf:
        assert len(tf.pages) == 3 and tf.pages[0].shape == (6, 7) and tf.pages[0].dtype == np.float32
    np.testing.assert_array_equal(sio.read_image(tmp_path / "p.tif"), p)
    sio.write_proba_tiff(tmp_path / "q.tif", p, dtype="uint8")
    np.testing.assert_allclose(sio.read_image(tmp_path / "q.tif") / 255, p, atol=0.5 / 255 + 1e-6)


def test_normalize_is_invariant_to_brightness_and_contrast():
    img = skdata.camera().astype(np.float32)
    a = sio.normalize(img)
    b = sio.normalize((img * 37.0 + 1000).astype(np.uint16))
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert a.dtype == np.float32 and a.shape == img.shape
    rgb = skdata.astronaut()
    scaled = rgb.astype(np.float32) * np.array([0.5, 2.0, 3.0]) + np.array([10, -5, 100])
    np.testing.assert_allclose(sio.normalize(rgb), sio.normalize(scaled), atol=1e-4)
    lo, hi = np.percentile(a, [1, 99.8])
    assert abs(lo) < 1e-6 and abs(hi - 1) < 1e-6


def test_normalize_methods_and_degenerate_inputs():
    u16 = np.array([[0, 65535]], np.uint16)
    assert sio.normalize(u16, "dtype").tolist() == [[0.0, 1.0]]
    assert sio.normalize(u16, "none").tolist() == [[0.0, 65535.0]]
    assert sio.normalize(np.array([[2.0, 4.0, 6.0]]), "minmax").tolist() == [[0.0, 0.5, 1.0]]
    for const in (np.zeros((5, 5, 2), np.uint8), np.full((3, 3), 7.5, np.float32), np.zeros((0, 3))):
        for method in sio.NORMALIZE_METHODS:
            out = sio.normalize(const, method)
            assert np.isfinite(out).all() and out.shape == const.shape
    sparse = np.zeros((100, 100))
    sparse[0, 0] = 5
    assert sio.normalize(sparse).max() == 1.0  # flat percentiles fall back to min/max
    bad = np.array([[np.nan, 1.0, np.inf, 3.0, -np.inf]], np.float32)
    out = sio.normalize(bad, "minmax")
    assert np.isfinite(out).all() and out[0, 1] == 0 and out[0, 3] == 1
    assert sio.normalize(np.array([[-3e38, 3e38]], np.float32), "minmax").tolist() == [[0.0, 1.0]]
    assert sio.normalize(sparse * 100, clip=True).max() <= 1
    with pytest.raises(ConfigError):
        sio.normalize(u16, "zscore")
    with pytest.raises(ConfigError):
        sio.normalize(u16, low=50, high=10)


def test_to_display_rgb():
    for img in (skdata.camera(), skdata.astronaut(), (skdata.coins() * 200).astype(np.uint16),
                np.random.default_rng(0).random((9, 8, 2)), np.zeros((5, 4, 4), np.float32),
                np.ones((3, 3), bool)):
        out = sio.to_display_rgb(img)
        assert out.dtype == np.uint8 and out.shape == img.shape[:2] + (3,)
    gray = sio.to_display_rgb(skdata.camera())
    assert (gray[..., 0] == gray[..., 2]).all() and gray.min() == 0 and gray.max() == 255
    np.testing.assert_array_equal(sio.to_display_rgb(skdata.astronaut(), method="dtype"), skdata.astronaut())
    with pytest.raises(ConfigError):
        sio.to_display_rgb(np.zeros((2, 2, 2, 2)))


def test_image_digest():
    img = skdata.camera()
    assert sio.image_digest(img) == sio.image_digest(img.copy())
    assert sio.image_digest(img[::2]) == sio.image_digest(np.ascontiguousarray(img[::2]))
    assert sio.image_digest(img.astype(">u2")) == sio.image_digest(img.astype(np.uint16))
    changed = img.copy()
    changed[5, 5] ^= 1
    assert sio.image_digest(changed) != sio.image_digest(img)
    assert sio.image_digest(img.reshape(-1)) != sio.image_digest(img)
    assert len(sio.image_digest(np.zeros(0))) == 32


def test_standardize_maps_mean_and_two_sd():
    from segapp.io import normalize

    rng = np.random.default_rng(1)
    img = rng.normal(1000, 50, (64, 64, 2))
    img[..., 1] = img[..., 1] * 3 + 7
    out = normalize(img, "standardize")
    np.testing.assert_allclose(out.mean(axis=(0, 1)), 0.5, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1)), 0.25, atol=1e-4)
    np.testing.assert_allclose(out[..., 0], normalize(img[..., 0] * 0.5 + 3, "standardize"), atol=1e-5)
    assert np.all(normalize(np.full((4, 4), 9), "standardize") == 0)


def test_a_corrupt_file_message_names_no_python_object():
    with pytest.raises(ImageReadError) as e:
        sio.read_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, name="bad.png")
    assert "truncated or corrupt PNG" in str(e.value) and " at 0x" not in str(e.value), str(e.value)
