"""Callbacks, grouped by feature; each module has ``register(app, services)``."""

from __future__ import annotations

from . import batch, canvas, classes, files, images, objects, session, training
from .common import on_error  # noqa: F401  (passed to dash.Dash by create_app)


def register_all(app, services) -> None:
    for module in (session, images, canvas, classes, training, objects, batch, files):
        module.register(app, services)
