"""Peers of ``bench/accuracy.py``: the scikit-image pipeline (in-process) and napari-convpaint
1.2.0 (in its own venv, ``.venv-peers``, created by ``make bench-peers``)."""
