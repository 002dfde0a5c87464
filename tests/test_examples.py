"""The gallery examples run and write their figures (they are documentation that must not rot)."""

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(path.parent))
    module = runpy.run_path(str(path))
    out = module["main"](tmp_path)
    panel = np.array(Image.open(out))
    assert panel.ndim == 3 and panel.shape[1] >= 3 * 100
    sys.modules.pop("_panel", None)


def test_there_is_an_example_per_feature():
    assert {p.stem for p in EXAMPLES} >= {"plot_classical", "plot_effnet", "plot_auto", "plot_instances"}
