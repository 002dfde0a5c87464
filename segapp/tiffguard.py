"""Decoding that cannot cost more than a file's header promised (decompression bombs).

tifffile's built-in zlib, LZMA and PackBits decoders inflate a strip completely, however
large it gets, and only then cut it to the strip's size: a 1 MB strip can become 1 GiB.
:func:`tifffile_bounded` replaces them (once per process) with decoders that stop at the size
tifffile expects for the strip (it passes it as ``out``) and charge every decoded byte to a
per-decode budget (:func:`decode_budget`), so all strips together cannot exceed it either.
:func:`tiff_page_count` counts the pages of a TIFF without parsing them (tifffile would read
every one of a million tiny pages).

Examples
--------
>>> import zlib
>>> bomb = zlib.compress(bytes(8 << 20))          # 8 MB of zeros, 8 KB compressed
>>> len(zlib_bounded(bomb, out=100))
100
>>> with decode_budget(1000):
...     zlib_bounded(bomb, out=5000)
Traceback (most recent call last):
...
segapp.tiffguard.OverBudget
"""

from __future__ import annotations

import contextvars
import lzma
import struct
import zlib
from contextlib import contextmanager


class OverBudget(Exception):
    """Decompressed segments exceed the decoded size the header promised (a decompression bomb)."""


_budget: contextvars.ContextVar = contextvars.ContextVar("segapp_decode_budget", default=None)


def _expected(out) -> int | None:
    return out if isinstance(out, int) and out > 0 else None


def _charge(n: int) -> None:
    left = _budget.get()
    if left is not None:
        left[0] -= n
        if left[0] < 0:
            raise OverBudget


def zlib_bounded(data, out=None):
    """zlib-inflate at most ``out`` bytes (tifffile's expected strip size) and charge them to the budget."""
    limit = _expected(out)
    d = zlib.decompressobj()
    res = d.decompress(bytes(data), limit or (_budget.get() or [1 << 31])[0] + 1)
    _charge(len(res))
    return res


def lzma_bounded(data, out=None):
    """LZMA-decompress at most ``out`` bytes, charged to the budget."""
    limit = _expected(out)
    res = lzma.LZMADecompressor().decompress(bytes(data), max_length=limit or (_budget.get() or [1 << 31])[0] + 1)
    _charge(len(res))
    return res


def packbits_bounded(data, out=None):
    """PackBits-decode at most ``out`` bytes (PackBits expands up to 64x), charged to the budget."""
    limit = _expected(out) or (_budget.get() or [1 << 31])[0] + 1
    data, res, i, n = bytes(data), bytearray(), 0, len(data)
    while i < n and len(res) < limit:
        h = data[i]
        i += 1
        if h < 128:
            res += data[i:i + h + 1]
            i += h + 1
        elif h > 128:
            res += data[i:i + 1] * (257 - h)
            i += 1
    _charge(len(res))
    return bytes(res[:limit])


BOUNDED: list = []  # [True] once the bounded decoders replaced tifffile's, [False] if they could not


def tifffile_bounded():
    """tifffile, imported when the first TIFF is met, with its decoders bounded (once per process)."""
    import tifffile

    if not BOUNDED:
        codecs = getattr(tifffile.TIFF.DECOMPRESSORS, "_codecs", None)
        if isinstance(codecs, dict):
            codecs.update({8: zlib_bounded, 32946: zlib_bounded, 50013: zlib_bounded, 34925: lzma_bounded,
                           32773: packbits_bounded})
        BOUNDED.append(isinstance(codecs, dict))  # False: tifffile changed; compressed TIFFs go to Pillow
    return tifffile


@contextmanager
def decode_budget(nbytes: int):
    """Within the block, decoded bytes (all strips together) may not exceed ``nbytes`` (OverBudget)."""
    token = _budget.set([int(nbytes)])
    try:
        yield
    finally:
        _budget.reset(token)


def tiff_page_count(data: bytes, limit: int) -> int:
    """Pages in the main IFD chain, counting at most ``limit + 1`` (tifffile would read them all)."""
    bo = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    fmt_off, fmt_n, head, entry = ("Q", "Q", 8, 20) if big else ("I", "H", 4, 12)
    try:
        off = struct.unpack_from(bo + fmt_off, data, 8 if big else 4)[0]
        seen, n = set(), 0
        while off and n <= limit and off not in seen and off + 8 <= len(data):
            seen.add(off)
            count = struct.unpack_from(bo + fmt_n, data, off)[0]
            nxt = off + struct.calcsize(fmt_n) + count * entry
            if nxt + head > len(data):
                break
            off = struct.unpack_from(bo + fmt_off, data, nxt)[0]
            n += 1
        return n
    except struct.error:
        return 0
