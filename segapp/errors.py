"""User-facing error types.

Every error a *user* can cause (a bad file, an empty annotation, missing weights)
is raised as a subclass of :class:`SegappError` with a one-line message.  The CLI
prints that line and exits non-zero; the web app shows it in an alert.  Anything
else is a bug and keeps its traceback.
"""


class SegappError(Exception):
    """Base class for errors caused by user input; ``str(err)`` is one line."""


class ImageReadError(SegappError):
    """An image or label file could not be read (empty, truncated, wrong type, too large)."""


class AnnotationError(SegappError):
    """Annotations are unusable (no painted pixels, fewer than two classes, bad shape)."""


class WeightsMissingError(SegappError):
    """Pretrained weights for a feature extractor are not available on this machine."""


class ModelFileError(SegappError):
    """A model file is foreign, tampered with, or from an incompatible version."""


class ConfigError(SegappError):
    """An option or setting has an invalid value."""
