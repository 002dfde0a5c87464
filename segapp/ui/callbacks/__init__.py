"""Callbacks, grouped by feature; each module has ``register(app, services)``.

Every callback body is a plain module-level function of its named inputs that
returns a dict of its named outputs; ``register`` only wires those functions to
Dash (see :mod:`segapp.ui.callbacks.common` for the pattern).
"""

from __future__ import annotations

from . import annotation_io, batch, canvas, classes, files, images, objects, session, training
from .common import on_error  # noqa: F401  (passed to dash.Dash by create_app)


def register_all(app, services) -> None:
    """Wire every callback module's plain functions (and clientside callbacks) to ``app``."""
    for module in (session, images, canvas, classes, training, objects, batch, files, annotation_io):
        module.register(app, services)
