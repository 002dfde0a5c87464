"""segapp — interactive pixel-classification segmentation.

The engine (this package minus ``ui`` and ``jobs``) is importable without Dash,
Celery or Redis.
"""

__version__ = "0.1.0"
