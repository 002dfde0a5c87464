"""Helpers shared by the callback modules: messages to the user, session lookup."""

from __future__ import annotations

import logging
import re

from dash import Patch, ctx, set_props

from ...errors import SegappError
from .. import ids
from ..layout import toast

log = logging.getLogger("segapp.ui")
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


def valid_session(sid) -> bool:
    return isinstance(sid, str) and bool(_SESSION_RE.match(sid))


def notify(message: str, kind: str = "danger", header: str | None = None) -> None:
    """Show a toast (from any callback, without declaring an output)."""
    patch = Patch()
    patch.append(toast(message, kind, header))
    set_props(ids.NOTICES, {"children": patch})


def on_error(err: Exception):
    """App-wide callback error handler: a toast instead of a stack trace; outputs unchanged.

    User errors (:class:`SegappError`) show their one-line message; anything
    else is logged with its traceback and shown as an unexpected error.
    """
    if isinstance(err, SegappError):
        notify(str(err), "warning" if "cancel" in str(err).lower() else "danger", "Could not do that")
    else:
        log.error("callback failed", exc_info=err)
        notify(f"Unexpected error ({type(err).__name__}: {err}). Your work is kept; details are in the server log.",
               "danger")
    return None


def clicked() -> bool:
    """True when the triggering input is a real click (pattern-matching buttons re-render with 0)."""
    return any(t.get("value") for t in ctx.triggered)


def bump(version) -> int:
    return (version or 0) + 1 if isinstance(version, int) else 1
