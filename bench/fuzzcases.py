"""The hostile-input corpus: every malformed file and payload segapp must answer calmly.

``corpus(scale)`` returns a list of :class:`Case`; every case is deterministic (seeded).
``bench/fuzz.py`` runs them through the CLI and the web app's callbacks over HTTP, and
``tests/test_fuzz_sample.py`` runs a fixed sample of them in-process in CI.

Kinds of case (``Case.kind``) and where they go:

========  ============================================================================
image     bytes of an image file: ``segapp predict`` and the image upload callback
labels    bytes of a label image: ``segapp evaluate --gt``, ``segapp train --labels``, GT upload
model     bytes of a model file: ``segapp predict --model`` and the model upload callback
upload    the raw ``contents`` value dcc.Upload would send (any JSON): image upload callback
shapes    a list of plotly shapes: the stroke-saving callback (and ``shapes_to_labels``)
relayout  a raw relayoutData value: the stroke-saving callback
session   a session-id store value: several callbacks
current   a current-image store value: canvas and stroke callbacks
raw       a raw HTTP request body for /_dash-update-component
========  ============================================================================

``scale`` shrinks the bombs (1.0 = a decompression bomb inflates to 1 GiB; the CI sample
uses 1/64 with correspondingly lower limits).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

GIB = 1 << 30


@dataclass
class Case:
    category: str   # images | uploads | models | labels | strokes | relayout | sessions
    name: str
    kind: str       # see the module docstring
    data: object
    expect: str = "refuse"   # refuse | accept | either (a note for the report, not a pass criterion)
    meta: dict = field(default_factory=dict)


# -- building blocks ----------------------------------------------------------------------------
def png(arr, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    im = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    im.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def tiff(arr, **kw) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def chunk(tag: bytes, payload: bytes, crc: int | None = None) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + \
        struct.pack(">I", zlib.crc32(tag + payload) if crc is None else crc)


def png_raw(w, h, depth=8, ctype=0, idat: bytes | None = None, extra: bytes = b"", ihdr_crc=None) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w & 0xFFFFFFFF, h & 0xFFFFFFFF, depth, ctype, 0, 0, 0)
    body = chunk(b"IHDR", ihdr, ihdr_crc) + extra
    if idat is not None:
        body += chunk(b"IDAT", idat)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


def tiff_raw(tags, payload: bytes = b"", big_endian=False, next_ifd: int = 0) -> bytes:
    """A one-IFD classic TIFF; ``tags`` = [(tag, type, count, value)]; value 'DATA' = payload offset."""
    bo = ">" if big_endian else "<"
    n = len(tags)
    data_off = 8 + 2 + n * 12 + 4
    ents = []
    for tag, typ, count, value in sorted(tags):
        value = data_off if value == "DATA" else value
        if typ == 3 and count == 1:
            ents.append(struct.pack(bo + "HHIHH", tag, typ, count, value & 0xFFFF, 0))
        else:
            ents.append(struct.pack(bo + "HHII", tag, typ, count & 0xFFFFFFFF, value & 0xFFFFFFFF))
    head = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(bo + "I", 8)
    return head + struct.pack(bo + "H", n) + b"".join(ents) + struct.pack(bo + "I", next_ifd) + payload


def strip_tags(w, h, spp=1, bps=8, compression=1, nbytes=None, extra=()):
    return [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, bps), (259, 3, 1, compression), (262, 3, 1, 1),
            (273, 4, 1, "DATA"), (277, 3, 1, spp), (278, 4, 1, h),
            (279, 4, 1, w * h * spp * max(1, bps // 8) if nbytes is None else nbytes), *extra]


@lru_cache(maxsize=4)
def deflate_bomb(size: int, raw: bool = False) -> bytes:
    """zlib (or raw deflate) stream of ``size`` zero bytes (about size/1000 long)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15 if raw else 15)
    block = b"\0" * (1 << 20)
    parts = [c.compress(block) for _ in range(size >> 20)]
    parts.append(c.compress(b"\0" * (size & ((1 << 20) - 1))))
    parts.append(c.flush())
    return b"".join(parts)


def flips(data: bytes, n: int, seed: int, count: int = 1) -> list[bytes]:
    """``n`` copies of ``data`` with ``count`` random bytes XOR-flipped each (seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        b = bytearray(data)
        for pos in rng.integers(0, len(b), count):
            b[pos] ^= int(rng.integers(1, 256))
        out.append(bytes(b))
    return out


def uri(data: bytes, mime="image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def sample_image(h=48, w=64, channels=1, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:h, :w]
    img = 40 + 20 * rng.random((h, w))
    img[np.hypot(yy - h / 2, xx - w / 2) < min(h, w) / 4] += 150
    img = img.astype(dtype)
    return np.repeat(img[..., None], channels, -1) if channels > 1 else img


def sample_labels(h=48, w=64) -> np.ndarray:
    lab = np.zeros((h, w), np.uint8)
    lab[2:5, 2:w - 2] = 1
    lab[h // 2 - 1:h // 2 + 2, w // 2 - 4:w // 2 + 4] = 2
    return lab


@lru_cache(maxsize=1)
def good_model() -> bytes:
    from segapp.segmenter import Segmenter

    return _good_segmenter().save()


@lru_cache(maxsize=1)
def _good_segmenter():
    from segapp.segmenter import Segmenter

    seg = Segmenter(features="classical", feature_params={"sigmas": [1.0]}, n_estimators=3, max_depth=4,
                    normalization={"method": "percentile"})
    return seg.fit(sample_image(), sample_labels())


@lru_cache(maxsize=1)
def good_skops_model() -> bytes:
    """The good model in format 1 (``classifier.skops``), whose loader is skops with trusted types."""
    import skops.io as sio

    return with_classifier(sio.dumps(_good_segmenter().classifier_))


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def rezip(parts: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, b in parts.items():
            z.writestr(name, b)
    return buf.getvalue()


def with_manifest(edit, rehash: bool = True, raw: bytes | None = None) -> bytes:
    """The good model with its manifest edited by ``edit(dict)`` (checksum recomputed unless not ``rehash``)."""
    from segapp.modelcheck import manifest_checksum

    parts = members(good_model())
    m = json.loads(parts["manifest.json"])
    if edit is not None:
        edit(m)
    if rehash:
        m["checksum"] = manifest_checksum(m) if _jsonable(m) else "0" * 64
    parts["manifest.json"] = raw if raw is not None else json.dumps(m).encode()
    return rezip(parts)


def _jsonable(m) -> bool:
    try:
        json.dumps(m, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False


def with_classifier(blob: bytes, rehash: bool = True, member: str = "classifier.skops") -> bytes:
    """The good model with ``blob`` as its classifier member (skops: format 1; npz: format 3)."""
    from segapp.modelcheck import manifest_checksum

    parts = members(good_model())
    m = json.loads(parts["manifest.json"])
    parts.pop("classifier.npz", None)
    if member == "classifier.skops":
        m["format_version"] = 1
    if rehash:
        m["sha256"] = {member: hashlib.sha256(blob).hexdigest()}
        m["checksum"] = manifest_checksum(m)
    else:
        m["sha256"] = {member: m["sha256"].get(member, "0" * 64)}
    parts["manifest.json"], parts[member] = json.dumps(m).encode(), blob
    return rezip(parts)


def npz_arrays(data: bytes | None = None) -> dict:
    with np.load(io.BytesIO(members(data or good_model())["classifier.npz"]), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def with_arrays(edit) -> bytes:
    """The good model with its packed forest's arrays edited by ``edit(dict)`` (hashes recomputed)."""
    arrays = npz_arrays()
    edit(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return with_classifier(buf.getvalue(), member="classifier.npz")


def raw_zip(entries: list[tuple[str, bytes, int, int | None]]) -> bytes:
    """A zip written by hand: (name, stored bytes, compression method, declared uncompressed size)."""
    out, central = io.BytesIO(), []
    for name, payload, method, declared in entries:
        nb = name.encode()
        off = out.tell()
        size = len(payload) if declared is None else declared
        crc = zlib.crc32(payload) if method == 0 else 0
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(payload), size,
                              len(nb), 0) + nb + payload)
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc,
                                   len(payload), size, len(nb), 0, 0, 0, 0, 0, off) + nb)
    cd_off = out.tell()
    cd = b"".join(central)
    out.write(cd)
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central), len(cd), cd_off, 0))
    return out.getvalue()


def skops_blob(schema: dict, arrays: dict[str, bytes] | None = None) -> bytes:
    parts = {"schema.json": json.dumps(schema).encode(), **(arrays or {})}
    return rezip(parts, zipfile.ZIP_STORED)


def _node(loader, module, cls, **extra):
    return {"__class__": cls, "__module__": module, "__loader__": loader, "__id__": 1, **extra}


def crafted_forest(edit) -> bytes:
    """The good model's forest re-serialised after ``edit(forest)`` (skops, hashes recomputed)."""
    import skops.io as sio

    from segapp.modelfile import TRUSTED_TYPES

    clf = sio.loads(members(good_skops_model())["classifier.skops"], trusted=TRUSTED_TYPES)
    edit(clf)
    return with_classifier(sio.dumps(clf))


def tree_edit(field_name, value, node=0, tree=0):
    def edit(clf):
        t = clf.estimators_[tree].tree_
        state = t.__getstate__()
        nodes = state["nodes"].copy()
        nodes[field_name][node] = value
        state["nodes"] = nodes
        t.__setstate__(state)
    return edit


# -- images -------------------------------------------------------------------------------------
def image_cases(scale: float = 1.0) -> list[Case]:
    from PIL import Image

    bomb = int(GIB * scale)
    img = sample_image()
    good_png, good_tif = png(img), tiff(img)
    good_jpg = png(sample_image(channels=3), format="JPEG")
    rgb = sample_image(channels=3)
    c: list[Case] = []
    recovers = {"tif-spp-zero", "tif-ifd-loop", "tif-ifd-past-end", "tif-tile-2g", "tif-palette-no-map",
                "tif-imagej-1e6-images"}  # tifffile reads past the damage: a valid small image is fine

    def add(name, data, expect="refuse", **meta):
        c.append(Case("images", name, "image", data, "either" if name in recovers else expect, meta))

    # the existing bad-input cases (tests/test_io.py)
    add("empty", b"")
    add("text", b"just some text\n")
    add("pdf", b"%PDF-1.7\n%\xe2\xe3\n1 0 obj")
    add("cut-png", good_png[: len(good_png) // 2])
    add("header-png", good_png[:20])
    add("cut-jpg", good_jpg[: len(good_jpg) // 2])
    add("cut-tif", good_tif[: len(good_tif) // 2])
    add("header-tif", good_tif[:12])
    add("complex-tif", tiff(np.zeros((4, 4), np.complex64)))
    # decompression bombs and dimension bombs
    for w, h in ((100_000, 100_000), (65_535, 65_535), (1, 2**31 - 1), (2**31 - 1, 1), (20_000, 20_000),
                 (10_001, 10_000), (2**32 - 1, 2**32 - 1), (0, 10), (10, 0)):
        add(f"png-header-{w}x{h}", png_raw(w, h))
    side = int(math.sqrt(2e8 * scale)) if scale < 1 else 14_143
    add(f"png-zero-bomb-{side}", png_raw(side, side, idat=zlib.compress(b"\0" * (side + 1) * 64)))
    add("png-bomb-10000-rgba16", png_raw(10_000, 10_000, 16, 6))
    # tiny files that decode to exactly what the limits allow: accepted, and the server must still cope
    at = 10_000 if scale >= 1 else 1_000
    add(f"png-zeros-{at}-at-pixel-limit", png_raw(at, at, idat=zlib.compress(b"\0" * (at + 1) * at, 9)), "accept")
    side = 8192 if scale >= 1 else 512
    add(f"tif-zeros-{side}x{side}x16-at-byte-limit", tiff(np.zeros((side, side, 16), np.uint8), compression="zlib",
                                                          photometric="minisblack", planarconfig="contig"), "accept")
    add("png-idat-inflates-past-image", png_raw(64, 48, idat=deflate_bomb(bomb)), "either")
    add("png-ztxt-bomb", png_raw(64, 48, idat=zlib.compress(b"\0" * (65 * 48)),
                                 extra=chunk(b"zTXt", b"k\0\0" + deflate_bomb(bomb)[2:])), "either")
    add("png-iccp-bomb", png_raw(64, 48, idat=zlib.compress(b"\0" * (65 * 48)),
                                 extra=chunk(b"iCCP", b"p\0\0" + deflate_bomb(bomb))), "either")
    for depth, ctype in ((3, 0), (8, 5), (16, 3), (1, 2), (8, 7), (0, 0), (255, 255)):
        add(f"png-bad-depth-{depth}-type-{ctype}", png_raw(8, 8, depth, ctype, idat=zlib.compress(b"\0" * 200)))
    add("png-bad-ihdr-crc", png_raw(8, 8, idat=zlib.compress(b"\0" * 72), ihdr_crc=0))
    add("png-chunk-length-4g", b"\x89PNG\r\n\x1a\n" + b"\xff\xff\xff\xffIHDR" + b"\0" * 20)
    add("png-no-idat", png_raw(8, 8))
    add("png-idat-garbage", png_raw(8, 8, idat=b"garbage" * 10))
    add("png-many-chunks", png_raw(8, 8, idat=zlib.compress(b"\0" * 72), extra=chunk(b"tEXt", b"k\0v") * 20_000),
        "either")
    add("png-16bit-gray", png(np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 20), "accept")
    add("png-palette", png(Image.fromarray(rgb).quantize(16)), "accept")
    add("png-rgba", png(np.dstack([rgb, rgb[..., :1]])), "accept")
    add("png-1bit", png(Image.fromarray(img > 100)), "accept")
    add("jpeg-cmyk", png(Image.new("CMYK", (16, 12), (0, 255, 255, 0)), format="JPEG"), "accept")
    add("jpeg-sof-65500", b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xdc\xff\xdc\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
        + b"\xff\xd9")
    add("jpeg-sof-zero", b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x00\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01")
    add("gif-header-65535", b"GIF89a\xff\xff\xff\xff\x00\x00\x00;")
    add("bmp-header-huge", b"BM" + struct.pack("<IHHI", 1000, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 60000,
                                                                                         60000, 1, 24, 0, 0, 0, 0, 0, 0))
    add("bmp-negative-size", b"BM" + struct.pack("<IHHI", 1000, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, -5, -5,
                                                                                           1, 24, 0, 0, 0, 0, 0, 0))
    add("gif-ok", png(Image.fromarray(img), format="GIF"), "accept")
    add("bmp-ok", png(Image.fromarray(rgb), format="BMP"), "accept")
    add("webp-ok", png(Image.fromarray(rgb), format="WEBP"), "accept")
    add("eps-ghostscript", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(x) print\n")
    add("psd-header", b"8BPS\x00\x01" + b"\0" * 6 + struct.pack(">HIIHH", 3, 30000, 30000, 8, 3) + b"\0" * 40)
    add("ico", png(Image.fromarray(rgb[:16, :16]), format="ICO"))
    add("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="99999" height="99999"></svg>')
    add("html", b"<html><script>alert(1)</script></html>")
    add("zip", rezip({"a.png": good_png}))
    add("model-as-image", good_model())
    add("xml-billion-laughs", b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&" + bytes([97 + i]) + b";") * 10) for i in range(8))
        + b"]><l>&i;</l>")
    # crafted TIFF headers
    add("tif-header-50000", tiff_raw(strip_tags(50_000, 50_000)))
    add("tif-strip-past-end", tiff_raw(strip_tags(64, 48), b"\0" * 100))
    add("tif-bytecount-4g", tiff_raw(strip_tags(64, 48, nbytes=0xFFFFFFF0), b"\0" * 3072))
    add("tif-200-channels-3000", tiff(np.zeros((3000, 3000, 200), np.uint8) if scale >= 1 else
                                      np.zeros((300, 300, 200), np.uint8), photometric="minisblack",
                                      planarconfig="contig", compression="zlib"))
    add("tif-17-channels", tiff(np.zeros((8, 8, 17), np.uint8), photometric="minisblack", planarconfig="contig"))
    add("tif-16-channels", tiff(np.zeros((8, 8, 16), np.uint8), photometric="minisblack", planarconfig="contig"),
        "accept")
    add("tif-spp-65535", tiff_raw(strip_tags(10, 10, spp=65535, nbytes=100), b"\0" * 100))
    add("tif-spp-zero", tiff_raw(strip_tags(10, 10, spp=0, nbytes=100), b"\0" * 100))
    for bps in (0, 3, 12, 24, 64, 128, 65535):
        add(f"tif-bps-{bps}", tiff_raw(strip_tags(8, 8, bps=bps, nbytes=64), b"\0" * 64))
    for comp in (5, 7, 2, 9999, 34925, 32773, 50000, 34887):
        add(f"tif-compression-{comp}", tiff_raw(strip_tags(8, 8, compression=comp, nbytes=64), b"\0" * 64))
    add("tif-deflate-strip-bomb", tiff_raw(strip_tags(100, 100, compression=8, nbytes=len(deflate_bomb(bomb))),
                                           deflate_bomb(bomb)), "either")
    add("tif-deflate-header-bomb", tiff_raw(strip_tags(16_384, 16_384 * 4 if scale >= 1 else 4096, compression=8,
                                                       nbytes=len(deflate_bomb(bomb))), deflate_bomb(bomb)))
    add("tif-packbits-bomb", tiff_raw(strip_tags(100, 100, compression=32773, nbytes=2 * (1 << 16)),
                                      b"\x81\x00" * (1 << 16)), "either")
    lz = __import__("lzma").compress(b"\0" * (bomb // 4))
    add("tif-lzma-bomb", tiff_raw(strip_tags(100, 100, compression=34925, nbytes=len(lz)), lz), "either")
    add("tif-zlib-garbage", tiff_raw(strip_tags(8, 8, compression=8, nbytes=64), b"\x78\x9c" + b"\xff" * 62))
    add("tif-ifd-loop", tiff_raw(strip_tags(8, 8), b"\0" * 64, next_ifd=8))
    add("tif-ifd-past-end", tiff_raw(strip_tags(8, 8), b"\0" * 64, next_ifd=0xFFFFFF00))
    add("tif-tagcount-huge", b"II*\x00\x08\x00\x00\x00\xff\xff" + b"\0" * 64)
    add("tif-first-ifd-past-end", b"II*\x00\xff\xff\xff\x7f")
    add("tif-strip-offsets-count-huge", tiff_raw([(256, 4, 1, 8), (257, 4, 1, 8), (258, 3, 1, 8),
                                                  (262, 3, 1, 1), (273, 4, 2**30, "DATA"), (279, 4, 2**30, "DATA")],
                                                 b"\0" * 64))
    add("tif-tile-2g", tiff_raw([(256, 4, 1, 8), (257, 4, 1, 8), (258, 3, 1, 8), (262, 3, 1, 1),
                                 (322, 4, 1, 2**31 - 16), (323, 4, 1, 2**31 - 16), (324, 4, 1, "DATA"),
                                 (325, 4, 1, 64)], b"\0" * 64))
    add("tif-palette-no-map", tiff_raw([*strip_tags(8, 8)[:4], (262, 3, 1, 3), *strip_tags(8, 8)[5:]], b"\0" * 64))
    add("bigtiff-header", b"II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00" + b"\xff" * 16)
    add("tif-imagej-1e6-images", tiff(np.zeros((2, 8, 8), np.uint8), photometric="minisblack", metadata=None,
                                      description="ImageJ=1.11a\nimages=1000000\nslices=1000000\n"))
    add("tif-ome-huge-xml", tiff(np.zeros((8, 8), np.uint8), description='<?xml version="1.0"?><OME>'
                                 + "<x/>" * 200_000 + "</OME>"), "either")
    add("tif-float64", tiff(np.random.default_rng(0).random((16, 16))), "accept")
    add("tif-int32-negative", tiff(-np.arange(256, dtype=np.int32).reshape(16, 16)), "accept")
    add("tif-bool", tiff(np.eye(16, dtype=bool)), "accept")
    add("tif-nan-inf", tiff(np.array([[np.nan, np.inf], [-np.inf, 1]], np.float32)), "accept")
    add("tif-1001-planes", tiff(np.zeros((1001, 2, 2), np.uint8), photometric="minisblack"))
    pages = io.BytesIO()
    import tifffile
    with tifffile.TiffWriter(pages) as tw:
        for _ in range(16_001 if scale >= 1 else 2_000):
            tw.write(np.zeros((1, 1), np.uint8), photometric="minisblack", metadata=None)
    add("tif-16001-pages" if scale >= 1 else "tif-2000-pages", pages.getvalue(), "refuse" if scale >= 1 else "either")
    mixed = io.BytesIO()
    with tifffile.TiffWriter(mixed) as tw:
        tw.write(np.zeros((4, 4), np.uint8), metadata=None)
        tw.write(np.zeros((9, 3), np.uint16), metadata=None)
    add("tif-mixed-pages", mixed.getvalue(), "either")
    add("tif-lzw-pillow", png(Image.fromarray(rgb), format="TIFF", compression="tiff_lzw"), "accept")
    add("tif-jpeg-pillow", png(Image.fromarray(rgb), format="TIFF", compression="jpeg"), "accept")
    # random damage to valid files (seeded)
    for base, label in ((good_png, "png"), (good_jpg, "jpg"), (good_tif, "tif"),
                        (tiff(img, compression="zlib"), "tif-zlib")):
        for i, b in enumerate(flips(base, 12, seed=zlib.crc32(label.encode()), count=2)):
            add(f"flip-{label}-{i}", b, "either")
        for frac in (0.05, 0.3, 0.7, 0.95):
            add(f"cut-{label}-{int(frac * 100)}", base[: int(len(base) * frac)], "either")
    for i, b in enumerate(flips(good_tif[:16], 10, seed=11, count=2)):  # damaged headers in front of valid data
        add(f"flip-tif-header-{i}", b + good_tif[16:], "either")
    return c


# -- model files --------------------------------------------------------------------------------
def _set(path, value):
    """An edit that sets manifest[path...] = value (path: tuple of keys/indices)."""
    def edit(m):
        target = m
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value
    return edit


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def model_cases(scale: float = 1.0) -> list[Case]:
    import pickle

    bomb = int(GIB * scale)
    good = good_model()
    parts = members(good)
    c: list[Case] = []

    def add(name, data, expect="refuse"):
        c.append(Case("models", name, "model", data, expect))

    add("good-model", good, "accept")
    # not models at all
    add("empty", b"")
    add("text", b"hello world")
    add("png", png(sample_image()))
    add("pickle-proto2", pickle.dumps({"a": 1}, protocol=2))
    add("pickle-proto0", pickle.dumps({"a": 1}, protocol=0))
    add("pickle-reduce-os-system", b"cos\nsystem\n(S'touch /tmp/segapp-pwned'\ntR.")
    add("zip-foreign", rezip({"readme.txt": b"hi"}))
    add("zip-only-manifest", rezip({"manifest.json": parts["manifest.json"]}))
    add("zip-extra-member", rezip({**parts, "evil.py": b"import os"}))
    add("zip-path-traversal-member", rezip({**parts, "../../evil": b"x"}))
    add("zip-duplicate-manifest", raw_zip([("manifest.json", parts["manifest.json"], 0, None),
                                           ("manifest.json", b"{}", 0, None),
                                           ("classifier.npz", parts["classifier.npz"], 0, None)]))
    add("zip-stored", rezip(parts, zipfile.ZIP_STORED), "accept")
    add("zip-bzip2", rezip(parts, zipfile.ZIP_BZIP2))
    add("zip-lzma", rezip(parts, zipfile.ZIP_LZMA))
    add("zip64-eocd", good[:-22] + b"PK\x05\x06" + b"\0" * 4 + b"\xff\xff" * 2 + b"\xff" * 8 + b"\0\0")
    add("zip-no-eocd", good[:-22])
    add("zip-truncated-half", good[: len(good) // 2])
    # zip bombs
    add("bomb-manifest-1g", raw_zip([("manifest.json", deflate_bomb(bomb, raw=True), 8, bomb),
                                     ("classifier.npz", parts["classifier.npz"], 0, None)]))
    add("bomb-classifier-1g", raw_zip([("manifest.json", parts["manifest.json"], 0, None),
                                       ("classifier.npz", deflate_bomb(bomb, raw=True), 8, bomb)]))
    add("bomb-manifest-lying-size", raw_zip([("manifest.json", deflate_bomb(bomb, raw=True), 8, 1000),
                                             ("classifier.npz", parts["classifier.npz"], 0, None)]))
    add("bomb-classifier-lying-size", raw_zip([("manifest.json", parts["manifest.json"], 0, None),
                                               ("classifier.npz", deflate_bomb(bomb, raw=True), 8, 4096)]))
    many = raw_zip([(f"m{i}.npy", b"", 0, None) for i in range(65_000 if scale >= 1 else 30_000)])
    add("zip-65k-members", many)
    inner_bomb = raw_zip([("schema.json", deflate_bomb(bomb, raw=True), 8, bomb)])
    add("bomb-inside-skops", with_classifier(inner_bomb))
    add("bomb-inside-skops-lying", with_classifier(raw_zip([("schema.json", deflate_bomb(bomb, raw=True), 8,
                                                             200)])))
    add("skops-100k-members", with_classifier(raw_zip([("schema.json", b"{}", 0, None)] +
                                                      [(f"{i}.npy", b"", 0, None) for i in range(30_000)])))
    # skops payloads that would run code or build foreign objects
    for loader, module, cls in (("ObjectNode", "subprocess", "Popen"), ("ObjectNode", "os", "system"),
                                ("ConstructorFromReduceNode", "builtins", "eval"),
                                ("MethodNode", "builtins", "exec"), ("FunctionNode", "os", "system"),
                                ("FunctionNode", "builtins", "__import__"), ("TypeNode", "builtins", "eval"),
                                ("OperatorFuncNode", "operator", "attrgetter"), ("PartialNode", "functools", "partial"),
                                ("ObjectNode", "sklearn.pipeline", "Pipeline"),
                                ("ReduceNode", "posix", "system"), ("ObjectNode", "numpy", "load")):
        schema = _node(loader, module, cls, content=_node("DictNode", "builtins", "dict", content={},
                                                          key_types=_node("ListNode", "builtins", "list", content=[])))
        schema["protocol"] = 2
        add(f"skops-{loader}-{module}.{cls}", with_classifier(skops_blob(schema)))
    nested = members(good_skops_model())["classifier.skops"]
    sch = json.loads(members(nested)["schema.json"])
    sch["content"]["content"]["estimator"] = _node("FunctionNode", "os", "system")
    add("skops-forest-with-hidden-function", with_classifier(rezip({**members(nested),
                                                                     "schema.json": json.dumps(sch).encode()},
                                                                    zipfile.ZIP_STORED)))
    add("skops-schema-not-json", with_classifier(rezip({"schema.json": b"{x"}, zipfile.ZIP_STORED)))
    add("skops-schema-deep", with_classifier(rezip({"schema.json": _nested(100_000).encode()}, zipfile.ZIP_STORED)))
    add("skops-empty-zip", with_classifier(rezip({})))
    add("skops-not-zip", with_classifier(b"not a zip"))
    add("skops-object-array", with_classifier(skops_blob(_node("NdArrayNode", "numpy", "ndarray", type="numpy",
                                                               file="a.npy"), {"a.npy": _npy_object()})))
    sk_pipeline = __import__("skops.io", fromlist=["dumps"]).dumps(
        __import__("sklearn.pipeline", fromlist=["Pipeline"]).Pipeline([("s", __import__(
            "sklearn.preprocessing", fromlist=["StandardScaler"]).StandardScaler())]))
    add("skops-real-pipeline", with_classifier(sk_pipeline))
    add("skops-logistic-regression", with_classifier(__import__("skops.io", fromlist=["dumps"]).dumps(
        __import__("sklearn.linear_model", fromlist=["LogisticRegression"]).LogisticRegression())))
    # manifests: edited without updating the checksum, then with it (then only the schema stands guard)
    add("manifest-edited-no-rehash", with_manifest(_set(("n_features",), 3), rehash=False))
    add("manifest-checksum-missing", with_manifest(lambda m: m.pop("checksum", None), rehash=False))
    add("classifier-edited-no-rehash", with_classifier(parts["classifier.npz"][:-10] + b"0123456789", rehash=False,
                                                       member="classifier.npz"))
    add("good-skops-model", good_skops_model(), "accept")
    add("both-classifier-members", rezip({**parts, "classifier.skops": members(good_skops_model())["classifier.skops"]}))
    edits = {
        "n_channels-1e30": _set(("n_channels",), 10**30), "n_channels-neg": _set(("n_channels",), -1),
        "n_channels-str": _set(("n_channels",), "3"), "n_channels-float": _set(("n_channels",), 1.5),
        "n_channels-bool": _set(("n_channels",), True), "n_channels-17": _set(("n_channels",), 17),
        "n_channels-2": _set(("n_channels",), 2), "n_features-3": _set(("n_features",), 3),
        "n_features-1e9": _set(("n_features",), 10**9),
        "sigmas-1e300": _set(("extractor", "params", "sigmas"), [1e300]),
        "sigmas-1e6": _set(("extractor", "params", "sigmas"), [1e6]),
        "sigmas-empty": _set(("extractor", "params", "sigmas"), []),
        "sigmas-str": _set(("extractor", "params", "sigmas"), "abc"),
        "sigmas-neg": _set(("extractor", "params", "sigmas"), [-1.0]),
        "sigmas-zero": _set(("extractor", "params", "sigmas"), [0]),
        "sigmas-10k": _set(("extractor", "params", "sigmas"), [1.0 + i * 1e-4 for i in range(10_000)]),
        "sigmas-dict": _set(("extractor", "params", "sigmas"), {"a": 1}),
        "sigmas-nested": _set(("extractor", "params", "sigmas"), [[1.0]]),
        "features-unknown": _set(("extractor", "params", "features"), ["evil"]),
        "features-int": _set(("extractor", "params", "features"), 5),
        "params-list": _set(("extractor", "params"), [1, 2]),
        "params-unknown": _set(("extractor", "params", "device"), "cuda"),
        "params-code": _set(("extractor", "params", "__class__"), "os.system"),
        "extractor-unknown": _set(("extractor", "name"), "evil"),
        "extractor-none": _set(("extractor",), None),
        "extractor-str": _set(("extractor",), "classical"),
        "effnet-scales-100000": _set(("extractor",), {"name": "effnet-lite0",
                                                      "params": {"scales": [100000], "out_indices": [0]}}),
        "effnet-scales-many": _set(("extractor",), {"name": "effnet-lite0", "params": {"scales": list(range(1, 9)) * 4}}),
        "effnet-out-99": _set(("extractor",), {"name": "effnet-lite0", "params": {"out_indices": [99]}}),
        "effnet-out-neg": _set(("extractor",), {"name": "effnet-lite0", "params": {"out_indices": [-1]}}),
        "effnet-device-cuda": _set(("extractor",), {"name": "effnet-lite0", "params": {"device": "cuda"}}),
        "effnet-device-evil": _set(("extractor",), {"name": "effnet-lite0", "params": {"device": "evil:0"}}),
        "timm-giant": _set(("extractor",), {"name": "timm", "params": {"model": "vit_giant_patch14_dinov2"}}),
        "timm-path": _set(("extractor",), {"name": "timm", "params": {"model": "../../etc/passwd"}}),
        "vgg-layers-dict": _set(("extractor",), {"name": "vgg16", "params": {"layers": [{"a": 1}]}}),
        "combo-10-parts": _set(("extractor",), {"name": "x", "parts": [{"name": "classical"}] * 10}),
        "combo-nested": _set(("extractor",), {"name": "x", "parts": [{"name": "y", "parts": [{"name": "classical"}] * 2}] * 2}),
        "combo-parts-str": _set(("extractor",), {"name": "x", "parts": "classical"}),
        "class-color-zzzzzz": _set(("classes", 0, "color"), "#zzzzzz"),
        "class-color-css-injection": _set(("classes", 0, "color"), "red;background:url(https://evil/x)"),
        "class-color-short": _set(("classes", 0, "color"), "#fff"),
        "class-color-int": _set(("classes", 0, "color"), 255),
        "class-id-0": _set(("classes", 0, "id"), 0), "class-id-256": _set(("classes", 1, "id"), 256),
        "class-id-70000": _set(("classes", 1, "id"), 70000), "class-id-neg": _set(("classes", 0, "id"), -1),
        "class-id-str": _set(("classes", 0, "id"), "1"), "class-id-dup": _set(("classes", 1, "id"), 1),
        "class-id-float": _set(("classes", 0, "id"), 1.0), "class-id-3": _set(("classes", 1, "id"), 3),
        "class-name-10k": _set(("classes", 0, "name"), "x" * 10_000),
        "class-name-control": _set(("classes", 0, "name"), "bad\x00name\nline"),
        "class-name-html": _set(("classes", 0, "name"), "<script>alert(1)</script>"),
        "class-name-int": _set(("classes", 0, "name"), 5),
        "classes-empty": _set(("classes",), []), "classes-one": lambda m: m["classes"].pop(),
        "classes-300": _set(("classes",), [{"id": i, "name": f"c{i}", "color": "#000000"} for i in range(1, 301)]),
        "classes-dict": _set(("classes",), {"1": "a"}), "classes-str-items": _set(("classes",), ["a", "b"]),
        "norm-method-evil": _set(("normalization", "method"), "evil"),
        "norm-low-str": _set(("normalization", "low"), "abc"),
        "norm-low-gt-high": _set(("normalization", "low"), 99.9),
        "norm-high-1e9": _set(("normalization", "high"), 1e9), "norm-none": _set(("normalization",), None),
        "trees-str": _set(("classifier", "n_estimators"), "xxxxxxxxxx"),
        "trees-1e9": _set(("classifier", "n_estimators"), 10**9),
        "depth-neg": _set(("classifier", "max_depth"), -1),
        "class-weight-evil": _set(("classifier", "class_weight"), "weird"),
        "classifier-type-evil": _set(("classifier", "type"), "os.system"),
        "max-samples-0": _set(("classifier", "max_samples"), 0),
        "format-version-99": _set(("format_version",), 99), "format-version-str": _set(("format_version",), "2"),
        "format-version-0": _set(("format_version",), 0), "format-other": _set(("format",), "evil"),
        "sha-missing": lambda m: m.pop("sha256"), "sha-int": _set(("sha256",), 5),
        "versions-huge": _set(("versions",), {str(i): "x" * 100 for i in range(100)}),
        "auto-report-list": _set(("auto_report",), [1, 2]),
        "auto-report-chosen-huge": _set(("auto_report",), {"chosen": "x" * 10_000, "reason": "r"}),
        "training-nested": _set(("training",), {"a": {"b": {"c": 1}}}),
        "created-int": _set(("created",), 12345),
    }
    harmless = {"class-name-html"}  # shown as text (escaped), never as markup: accepting it is fine
    for name, edit in edits.items():
        add(f"manifest-{name}", with_manifest(edit), "either" if name in harmless else "refuse")
    add("manifest-infinity", with_manifest(None, raw=parts["manifest.json"].replace(
        b'"n_channels": 1', b'"n_channels": Infinity')))
    add("manifest-nan", with_manifest(None, raw=parts["manifest.json"].replace(b'"low": 1.0', b'"low": NaN')))
    add("manifest-400-digits", with_manifest(None, raw=parts["manifest.json"].replace(
        b'"n_channels": 1', b'"n_channels": ' + b"9" * 400)))
    add("manifest-1e400", with_manifest(None, raw=parts["manifest.json"].replace(b'"low": 1.0', b'"low": 1e400')))
    add("manifest-nested-100k", with_manifest(None, raw=parts["manifest.json"][:-1] + b',"x":' +
                                              _nested(100_000).encode() + b"}"))
    add("manifest-not-json", with_manifest(None, raw=b"{not json"))
    add("manifest-array", with_manifest(None, raw=b"[1, 2, 3]"))
    add("manifest-latin1", with_manifest(None, raw=b'{"format": "\xe9"}'))
    add("manifest-bom", with_manifest(None, raw=b"\xef\xbb\xbf" + parts["manifest.json"]))
    add("manifest-duplicate-keys", with_manifest(None, raw=parts["manifest.json"][:-1] + b',"n_channels": 99}'))
    add("manifest-2mb", with_manifest(None, raw=parts["manifest.json"][:-1] + b',"pad":"' + b"x" * (2 << 20) + b'"}'))
    # crafted forests (hashes recomputed: only the structure checks stand between them and predict)
    # the packed forest (classifier.npz): arrays only, but their structure and headers are the attack surface
    add("npz-child-self-loop", with_arrays(lambda a: a["left"].__setitem__(0, 0)))
    add("npz-shared-subtree", with_arrays(_shared_subtree))
    add("npz-chain-depth-300", with_arrays(_deep_chain(300)))
    add("npz-chain-depth-200", with_arrays(_deep_chain(200)), "accept")
    add("npz-feature-1e6", with_arrays(lambda a: a["feature"].__setitem__(0, 10**6)))
    add("npz-offsets-negative", with_arrays(lambda a: a.__setitem__("offsets", -a["offsets"])))
    add("npz-offsets-float", with_arrays(lambda a: a.__setitem__("offsets", a["offsets"].astype(float))))
    add("npz-1001-trees", with_arrays(_many_trees(1001)))
    add("npz-classes-300", with_arrays(lambda a: a.__setitem__("classes", np.array([1, 300]))))
    add("npz-n-features-array", with_arrays(lambda a: a.__setitem__("n_features", np.arange(3))))
    add("npz-value-nan", with_arrays(lambda a: a["value"].__setitem__((-1, 0), np.nan)))
    add("npz-missing-offsets", with_arrays(lambda a: a.pop("offsets")))
    add("npz-extra-array", with_arrays(lambda a: a.__setitem__("evil", np.zeros(3))))
    add("npz-object-array", with_classifier(rezip({**members(members(good)["classifier.npz"]),
                                                   "classes.npy": _npy_object()}, zipfile.ZIP_STORED),
                                            member="classifier.npz"))
    add("npz-header-claims-1e9", with_classifier(rezip({**members(members(good)["classifier.npz"]),
                                                        "left.npy": _npy_lying_header(10**9)}, zipfile.ZIP_STORED),
                                                 member="classifier.npz"))
    add("npz-member-bomb", with_classifier(raw_zip([(f"{n}.npy", members(members(good)["classifier.npz"])[f"{n}.npy"],
                                                     0, None) for n in ("classes", "n_features", "offsets", "feature",
                                                                        "threshold", "left", "right")]
                                                   + [("value.npy", deflate_bomb(bomb, raw=True), 8, bomb)]),
                                           member="classifier.npz"))
    add("npz-not-zip", with_classifier(b"not an npz", member="classifier.npz"))
    add("forest-child-self-loop", crafted_forest(tree_edit("left_child", 0)))
    add("forest-child-backwards", crafted_forest(_cycle_edit()))
    add("forest-feature-1e6", crafted_forest(tree_edit("feature", 10**6)))
    add("forest-feature-neg", crafted_forest(tree_edit("feature", -5)))
    add("forest-threshold-nan", crafted_forest(tree_edit("threshold", float("nan"))))
    add("forest-child-past-end", crafted_forest(tree_edit("right_child", 10**6)))
    add("forest-zero-trees", crafted_forest(lambda clf: setattr(clf, "estimators_", [])))
    add("forest-n-jobs-verbose", crafted_forest(lambda clf: (setattr(clf, "n_jobs", 10**6),
                                                             setattr(clf, "verbose", 100))), "accept")
    add("forest-classes-float", crafted_forest(lambda clf: setattr(clf, "classes_", clf.classes_.astype(float))))
    add("forest-n-classes-mismatch", crafted_forest(lambda clf: setattr(clf, "n_classes_", 7)))
    add("forest-n-features-mismatch", crafted_forest(lambda clf: setattr(clf, "n_features_in_", 7)))
    add("forest-values-nan", crafted_forest(_values_edit(float("nan"))))
    add("forest-values-neg", crafted_forest(_values_edit(-1.0)))
    add("forest-tree-replaced", crafted_forest(lambda clf: clf.estimators_.__setitem__(0, "not a tree")))
    # random damage (seeded): flipped bytes and truncations of a valid model
    for i, b in enumerate(flips(good, 30, seed=5)):
        add(f"flip-{i}", b, "either")
    for frac in (0.1, 0.5, 0.9, 0.99):
        add(f"cut-{int(frac * 100)}", good[: int(len(good) * frac)])
    return c


def _npy_lying_header(n: int) -> bytes:
    """A .npy whose header claims ``n`` int64 values, followed by 8 bytes of data."""
    buf = io.BytesIO()
    np.save(buf, np.zeros(1, np.int64))
    return buf.getvalue().replace(b"(1,)", f"({n},)".encode().ljust(4))


def _shared_subtree(a):
    """Node 0's right child becomes its left child too (a node with two parents)."""
    inner = np.flatnonzero(a["left"] >= 0)
    a["right"][inner[0]] = a["left"][inner[0]]


def _deep_chain(depth: int):
    """One tree that is a chain ``depth`` splits long (each split: a leaf and the rest of the chain)."""
    def edit(a):
        k = a["value"].shape[1]
        n = 2 * depth + 1
        left = np.full(n, -1, np.int32)
        right = np.full(n, -1, np.int32)
        left[:depth] = np.arange(1, depth + 1)            # chain nodes 0..depth-1, end leaf = depth
        right[:depth] = np.arange(depth + 1, 2 * depth + 1)  # side leaves
        feature = np.where(left >= 0, 0, -1).astype(np.int32)
        a.update(offsets=np.array([0, n], np.int64), left=left, right=right, feature=feature,
                 threshold=np.where(left >= 0, 0.5, -2.0), value=np.full((n, k), 1.0 / k, np.float32))
    return edit


def _many_trees(t: int):
    def edit(a):
        k = a["value"].shape[1]
        a.update(offsets=np.arange(t + 1, dtype=np.int64), left=np.full(t, -1, np.int32),
                 right=np.full(t, -1, np.int32), feature=np.full(t, -1, np.int32), threshold=np.full(t, -2.0),
                 value=np.full((t, k), 1.0 / k, np.float32))
    return edit


def _npy_object() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _cycle_edit():
    """Node 1's children point back to node 0 (a cycle: traversal would never end)."""
    def edit(clf):
        t = clf.estimators_[0].tree_
        state = t.__getstate__()
        nodes = state["nodes"].copy()
        inner = np.flatnonzero(nodes["left_child"] >= 0)
        if len(inner) > 1:
            nodes["left_child"][inner[1]] = 0
        else:
            nodes["left_child"][inner[0]] = inner[0]
        state["nodes"] = nodes
        t.__setstate__(state)
    return edit


def _values_edit(v):
    def edit(clf):
        t = clf.estimators_[0].tree_
        state = t.__getstate__()
        values = state["values"].copy()
        values[0, 0, 0] = v
        state["values"] = values
        t.__setstate__(state)
    return edit


# -- label images -------------------------------------------------------------------------------
def label_cases(scale: float = 1.0) -> list[Case]:
    from PIL import Image

    lab = sample_labels()
    c: list[Case] = []

    def add(name, data, expect="refuse"):
        c.append(Case("labels", name, "labels", data, expect))

    add("good-labels", png(lab), "accept")
    add("float-labels", tiff(lab.astype(np.float32) + 0.5))
    add("negative", tiff(lab.astype(np.int16) - 1))
    add("rgb-differing", png(np.dstack([lab, lab * 2, lab])))
    add("rgb-equal", png(np.dstack([lab] * 3)), "accept")
    add("three-planes", tiff(np.stack([lab] * 3), photometric="minisblack"))
    add("class-300", tiff(lab.astype(np.uint16) * 150))
    add("class-70000", tiff(lab.astype(np.uint32) * 35000))
    add("class-255", png(lab * 127), "accept")
    add("instance-mask-1000", tiff((np.arange(lab.size).reshape(lab.shape) % 1000 + 1).astype(np.uint16)))
    add("int32-max", tiff(np.full(lab.shape, 2**31 - 1, np.int32)))
    add("uint64-huge", tiff(np.full(lab.shape, 2**63, np.uint64)))
    add("shape-mismatch", png(np.zeros((10, 10), np.uint8) + 1))
    add("all-zero", png(np.zeros_like(lab)))
    add("one-class", png((lab > 0).astype(np.uint8)))
    add("1bit", png(Image.fromarray(lab > 0)), "either")
    add("palette", png(Image.fromarray(lab, mode="P")), "accept")
    add("16bit", png(lab.astype(np.uint16)), "accept")
    add("bool-tif", tiff(lab > 0), "either")
    add("complex", tiff(lab.astype(np.complex64)))
    add("nan-float", tiff(np.full(lab.shape, np.nan, np.float32)))
    add("empty", b"")
    add("text", b"labels")
    add("bomb-header", png_raw(100_000, 100_000))
    add("bomb-tif", tiff_raw(strip_tags(50_000, 50_000)))
    add("cut-png", png(lab)[:40])
    add("jpeg-labels", png(np.dstack([lab * 100] * 3), format="JPEG"), "either")
    add("rgba-labels", png(np.dstack([lab, lab, lab, lab * 0 + 255])), "accept")
    add("la-labels", png(Image.fromarray(np.dstack([lab, lab * 0 + 255]), "LA")), "accept")
    add("gray-0-255-mask", png((lab > 0).astype(np.uint8) * 255), "either")
    for i, b in enumerate(flips(png(lab), 6, seed=3, count=2)):
        add(f"flip-{i}", b, "either")
    return c


# -- upload strings (the contents value of dcc.Upload) ------------------------------------------
def upload_cases(scale: float = 1.0) -> list[Case]:
    good = png(sample_image())
    b64 = base64.b64encode(good).decode()
    c: list[Case] = []

    def add(name, data, expect="refuse", names=None):
        c.append(Case("uploads", name, "upload", data, expect, {"names": names}))

    add("good", [uri(good)], "accept", ["a.png"])
    add("bad-padding", ["data:image/png;base64," + b64[:-3]])
    add("bad-padding-extra", ["data:image/png;base64," + b64 + "==="], "either")
    add("non-ascii-after-comma", ["data:image/png,\u00e9\u00e8\u4e2d\u6587"])
    add("raw-binary-latin1", ["data:image/png," + good.decode("latin-1")])
    add("no-comma", ["data:image/png;base64"])
    add("no-data-prefix", [b64], "either")
    add("empty-payload", ["data:image/png;base64,"])
    add("empty-string", [""])
    add("int", 12345)
    add("dict", {"a": 1})
    add("list-of-int", [1, 2, 3])
    add("list-with-none", [None, uri(good)], "either", ["a.png", "b.png"])
    add("list-of-dict", [{"x": 1}])
    add("nested-list", [[uri(good)]])
    add("whitespace-in-b64", ["data:image/png;base64," + " \n".join(b64[i:i + 60] for i in range(0, len(b64), 60))],
        "either")
    add("urlsafe-b64", ["data:image/png;base64," + base64.urlsafe_b64encode(good).decode()], "either")
    add("batch-valid-broken-valid", [uri(good), "data:image/png;base64,AAAA", uri(good)], "either",
        ["a.png", "broken.png", "c.png"])
    add("names-shorter", [uri(good), uri(good)], "either", ["only-one.png"])
    add("names-not-strings", [uri(good)], "either", [123])
    add("name-path-traversal", [uri(good)], "either", ["../../etc/passwd.png"])
    add("name-huge", [uri(good)], "either", ["x" * 10_000])
    add("name-control-chars", [uri(good)], "either", ["a\x00b\nc.png"])
    add("html-mime", ["data:text/html;base64," + base64.b64encode(b"<script>alert(1)</script>").decode()])
    add("many-files-200", [uri(good)] * 200, "either", [f"{i}.png" for i in range(200)])
    add("oversize-just-over-limit", ["data:image/png;base64," + "A" * int((6 << 20) * 4 / 3)], "refuse")
    return c


# -- strokes (plotly shapes) ---------------------------------------------------------------------
def _path(d, cls=1, width=3):
    return {"type": "path", "path": d, "name": f"class={cls};width={width}"}


def stroke_cases(scale: float = 1.0) -> list[Case]:
    c: list[Case] = []

    def add(name, shapes, expect="refuse"):
        c.append(Case("strokes", name, "shapes", shapes, expect))

    add("good", [_path("M2,2L40,2"), _path("M20,20L30,20", 2)], "accept")
    add("huge-coords-width-1e300", [_path("M-1e300,5L1e300,5", 1, "1e300")], "either")
    add("coord-1e309", [_path("M0,0L1e309,5")])
    add("coord-neg-1e309", [_path("M0,0L-1e309,5")])
    add("coord-1e308", [_path("M-1e308,5L1e308,5")], "either")
    add("coord-400-digits", [_path("M0,0L" + "9" * 400 + ",5")])
    add("coord-nan-text", [_path("M0,0LNaN,5")])
    add("coord-inf-text", [_path("M0,0Linf,5")])
    add("points-100k", [_path("M0,0L" + "L".join(f"{i % 60},{i % 40}" for i in range(100_000)))])
    add("points-12k", [_path("M0,0L" + "L".join(f"{i % 60},{i % 40}" for i in range(12_000)))])
    add("points-9k", [_path("M0,0L" + "L".join(f"{i % 60},{i % 40}" for i in range(9_000)), 1, 2)], "accept")
    add("path-1mb", [_path("M0,0" + " " * (1 << 20) + "L1,1")])
    add("path-list", [{"type": "path", "path": [1, 2], "name": "class=1"}])
    add("path-dict", [{"type": "path", "path": {"a": 1}, "name": "class=1"}])
    add("path-int", [{"type": "path", "path": 5, "name": "class=1"}])
    add("path-empty", [_path("")], "either")
    add("path-only-m", [_path("M")])
    add("path-only-z", [_path("Z")], "either")
    add("path-curves", [_path("M0,0C1,1 2,2 3,3")])
    add("path-arc", [_path("M0,0A5,5 0 0 1 10,10")])
    add("path-unicode", [_path("M0,0L\u0661\u0662,5")])
    add("path-many-subpaths", [_path("".join(f"M{i % 60},{i % 40}Z" for i in range(3000)))], "either")
    add("polygon-9k", [_path("M" + "L".join(f"{30 + 20 * math.cos(t):.2f},{20 + 15 * math.sin(t):.2f}"
                                            for t in np.linspace(0, 6.28, 9000)) + "Z")], "accept")
    for w in ("-5", "0", "nan", "abc", "inf", "1e-300", "1e400", "", "1e30"):
        add(f"width-{w or 'empty'}", [_path("M2,2L40,2", 1, w)], "either" if w in ("1e-300", "1e30") else "refuse")
    for cls in ("-1", "70000", "256", "x", "", "1.5", "0", "255", "9" * 30):
        add(f"class-{cls or 'empty'}", [_path("M2,2L40,2", cls)], "accept" if cls in ("0", "255") else "refuse")
    add("no-name", [{"type": "path", "path": "M0,0L5,5"}])
    add("name-dict", [{"type": "path", "path": "M0,0L5,5", "name": {"class": 1}}])
    add("name-10k", [{"type": "path", "path": "M0,0L5,5", "name": "class=1;" + "x" * 10_000}])
    add("type-star", [{"type": "star", "name": "class=1"}])
    add("type-none", [{"type": None, "x0": 0, "y0": 0, "x1": 3, "y1": 3, "name": "class=1"}], "either")
    add("type-int", [{"type": 123, "name": "class=1"}])
    add("rect-string-coords", [{"type": "rect", "x0": "a", "y0": 0, "x1": 3, "y1": 3, "name": "class=1"}])
    add("rect-400-digit-int", [{"type": "rect", "x0": 10**400, "y0": 0, "x1": 3, "y1": 3, "name": "class=1"}])
    add("rect-huge", [{"type": "rect", "x0": -1e308, "y0": -1e308, "x1": 1e308, "y1": 1e308, "name": "class=1"}],
        "either")
    add("circle-huge-width", [{"type": "circle", "x0": 0, "y0": 0, "x1": 10, "y1": 10, "name": "class=1;width=1e300"}],
        "either")
    add("circle-nan", [{"type": "circle", "x0": float("nan"), "y0": 0, "x1": 10, "y1": 10, "name": "class=1"}])
    add("line-missing-coords", [{"type": "line", "x0": 0, "name": "class=1"}])
    add("line-list-coords", [{"type": "line", "x0": [1], "y0": 0, "x1": 3, "y1": 3, "name": "class=1"}])
    add("shapes-2001", [_path(f"M{i % 60},{i % 40}L{i % 60 + 1},{i % 40}") for i in range(2001)])
    add("shapes-2000", [_path(f"M{i % 60},{i % 40}L{i % 60 + 1},{i % 40}") for i in range(2000)], "accept")
    add("shape-not-dict", ["not a shape"])
    add("shape-none", [None])
    add("shape-list", [[1, 2, 3]])
    add("mixed-valid-invalid", [_path("M2,2L40,2"), _path("M2,2L40,2", "-1"), _path("M2,9L40,9", 2, "nan"),
                                _path("M2,9L40,9", 2)], "either")
    add("ten-invalid", [_path("M2,2L40,2", cls, w) for cls, w in (("-1", 3), ("70000", 3), ("1", "-5"), ("1", "0"),
                                                                 ("1", "nan"), ("x", 3), ("300", 3), ("1", "abc"),
                                                                 ("", 3), ("1", "inf"))])
    add("eraser-only", [_path("M2,2L40,2", 0)], "accept")
    add("deeply-nested-line-attr", [{**_path("M2,2L9,2"), "line": {"a": {"b": {"c": {"d": [[[[1]]]]}}}}}], "either")
    add("extra-keys-injection", [{**_path("M2,2L9,2"), "__proto__": {"x": 1}, "constructor": "x"}], "either")
    return c


# -- relayoutData payloads -----------------------------------------------------------------------
def relayout_cases(scale: float = 1.0) -> list[Case]:
    good = _path("M2,2L40,2")
    c: list[Case] = []

    def add(name, data, expect="refuse"):
        c.append(Case("relayout", name, "relayout", data, expect))

    add("good", {"shapes": [good]}, "accept")
    for name, value in (("abc", "abc"), ("dict", {"a": 1}), ("ints", [1, 2]), ("null", None), ("int", 5),
                        ("list-of-lists", [[good]]), ("list-with-null", [good, None])):
        add(f"shapes-{name}", {"shapes": value})
    add("relayout-list", ["shapes", "x"])
    add("relayout-str", "shapes")
    add("relayout-int", 7)
    add("shapes0-evil", {"shapes[0]": "evil"})
    add("shapes0-name-x", {"shapes[0].name.x": 1})
    add("shapes0-path-x", {"shapes[0].path.x": 1})
    add("shapes-huge-index", {"shapes[99999999999].x0": 1})
    add("shapes-neg-index", {"shapes[-1].x0": 1})
    add("shapes-bad-attr", {"shapes[0].__class__": 1})
    add("shapes-deep-attr", {"shapes[0].a.b.c.d.e.f": 1})
    add("shapes-malformed-key", {"shapes[0": 1})
    add("shapes-index-text", {"shapes[a].x0": 1})
    add("shapes0-none-delete", {"shapes[0]": None}, "either")
    add("shapes0-edit-width", {"shapes[0].name": "class=1;width=-5"})
    add("shapes0-edit-path-bomb", {"shapes[0].path": "M0,0L1e309,1"})
    add("zoom-only", {"xaxis.range[0]": 1, "xaxis.range[1]": 5}, "either")
    add("autosize", {"autosize": True}, "either")
    add("shapes-2001", {"shapes": [good] * 2001})
    add("shapes-nested-60", {"shapes": [{**good, "line": json.loads(_nested(55))}]}, "either")
    add("dragmode-evil", {"dragmode": {"$gt": 1}}, "either")
    return c


# -- session ids and current-image values ---------------------------------------------------------
def session_cases(scale: float = 1.0) -> list[Case]:
    c: list[Case] = []

    def add(name, data, expect="refuse", kind="session"):
        c.append(Case("sessions", name, kind, data, expect))

    for name, sid in (("a20", "a" * 20), ("a64", "a" * 64), ("b32", "b" * 32), ("dotdot", "../x" * 8),
                      ("empty", ""), ("none", None), ("int", 123), ("dict", {"a": 1}), ("list", ["x"]),
                      ("65chars", "x" * 65), ("1000chars", "y" * 1000), ("unicode", "é" * 30),
                      ("signed-other-key", "c" * 32 + "." + "A" * 43), ("sig-only", "." + "A" * 43),
                      ("sql", "' OR 1=1 --" * 3), ("null-byte", "a" * 25 + "\x00" + "b" * 10),
                      ("newline-log-injection", "a" * 24 + "\nINFO fake log line")):
        add(f"sid-{name}", sid)
    for name, cur in (("dotdot", {"image": "../" + "a" * 32 + "/image/x", "plane": 0}),
                      ("other-id", {"image": "0123456789abcdef", "plane": 0}),
                      ("plane-neg", {"image": "SELF", "plane": -1}), ("plane-huge", {"image": "SELF", "plane": 10**12}),
                      ("plane-str", {"image": "SELF", "plane": "x"}), ("plane-nan", {"image": "SELF", "plane": "NaN"}),
                      ("plane-float", {"image": "SELF", "plane": 0.5}), ("image-int", {"image": 5, "plane": 0}),
                      ("image-dict", {"image": {"a": 1}, "plane": 0}), ("str", "abc"), ("list", [1]),
                      ("image-none", {"image": None, "plane": 0}), ("image-huge", {"image": "x" * 10_000, "plane": 0}),
                      ("missing-image", {"plane": 0}), ("slash", {"image": "a/b", "plane": 0})):
        add(f"current-{name}", cur, "refuse", kind="current")
    return c


def raw_cases(scale: float = 1.0) -> list[Case]:
    """Request bodies that must not reach Dash's JSON parser (nesting) or that exceed the size limit."""
    c = []
    deep = '{"output":"x.y","outputs":{"id":"x","property":"y"},"inputs":[{"id":"canvas","property":' \
           '"relayoutData","value":{"shapes":' + _nested(5000) + '}}],"changedPropIds":["canvas.relayoutData"]}'
    c.append(Case("relayout", "http-nested-5000", "raw", deep.encode()))
    c.append(Case("relayout", "http-nested-100k", "raw", ('{"a":' + _nested(100_000) + "}").encode()))
    c.append(Case("relayout", "http-not-json", "raw", b"{not json"))
    c.append(Case("relayout", "http-empty", "raw", b""))
    c.append(Case("uploads", "http-300mb-upload", "raw-upload", int(300 * (1 << 20) * scale)))
    return c


def corpus(scale: float = 1.0) -> list[Case]:
    """Every case of every category."""
    return (image_cases(scale) + upload_cases(scale) + model_cases(scale) + label_cases(scale) + stroke_cases(scale)
            + relayout_cases(scale) + session_cases(scale) + raw_cases(scale))
