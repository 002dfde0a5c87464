"""JSON from untrusted sources: bounded size and nesting, finite numbers only.

Python's JSON parser recurses once per nesting level, so a document 5,000 lists deep
raises RecursionError (in a web server: an HTTP 500), and it accepts ``NaN``,
``Infinity`` and numbers of any length (``1e400`` becomes ``inf``).  :func:`too_deep`
answers "is this nested deeper than N?" without parsing (fast on megabytes of base64,
which hold no brackets), and :func:`loads` parses with all three guards.

Examples
--------
>>> too_deep(b'{"a": [[1]]}', 2), too_deep(b'{"a": [[1]]}', 3)
(True, False)
>>> too_deep(b'{"s": "[[[[[[[[["}', 2)
False
>>> loads(b'{"x": [1, 2.5]}')
{'x': [1, 2.5]}
>>> loads(b'{"x": NaN}')
Traceback (most recent call last):
...
ValueError: NaN is not a valid number
"""

from __future__ import annotations

import json
import math
import re

from .limits import MAX_JSON_DEPTH

MAX_NUMBER_CHARS = 40
_ESCAPE = re.compile(rb"\\.", re.S)
_NON_STRUCTURAL = bytes(range(256)).translate(None, b'[]{}"')  # deleted before counting


def too_deep(data: bytes | str, limit: int = MAX_JSON_DEPTH, max_structure: int = 4_000_000) -> bool:
    """True when brackets outside strings nest deeper than ``limit`` (or the document has more
    than ``max_structure`` structural characters, which no request of this app needs)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    openers = data.count(b"[") + data.count(b"{")
    if openers <= limit:
        return False
    if data.count(b"\\"):
        data = _ESCAPE.sub(b"", data)
    marks = data.translate(None, _NON_STRUCTURAL)
    if len(marks) > max_structure:
        return True
    depth = 0
    in_string = False
    for c in marks:
        if c == 34:  # '"'
            in_string = not in_string
        elif in_string:
            continue
        elif c in (91, 123):  # '[' '{'
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _no_constant(name):
    raise ValueError(f"{name} is not a valid number")


def _finite_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"number {text[:12]}... is too long")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _short_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"number {text[:12]}... is too long")
    return int(text)


def loads(data: bytes | str, *, max_bytes: int | None = None, max_depth: int = MAX_JSON_DEPTH):
    """Parse JSON refusing oversize, over-nested documents and non-finite or overlong numbers.

    Raises
    ------
    ValueError
        With a one-line reason (``json.JSONDecodeError`` is a ValueError too).
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"the document is larger than {max_bytes:,} bytes")
    if too_deep(data, max_depth):
        raise ValueError(f"the document is nested more than {max_depth} levels deep")
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode("utf-8")
    return json.loads(data, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_short_int)
