"""
Letting segapp choose the features
==================================

``features="auto"`` scores ``classical``, ``effnet-lite0`` and their
combination by cross-validation on the painted pixels, holding out whole
spatial blocks so that neighbouring pixels never sit on both sides of a split,
and keeps the cheapest candidate within 0.03 macro-F1 of the best.

Run: ``python examples/plot_auto.py [--out DIR]``
"""

import argparse
import json
from pathlib import Path

import numpy as np
from skimage import data

from _panel import save_panel
from segapp.segmenter import Segmenter


def main(out: Path) -> Path:
    image = data.retina()[::4, ::4]
    scribbles = np.zeros(image.shape[:2], np.uint8)
    scribbles[10:14, 10:80] = 1                  # black surround
    scribbles[200:204, 100:160] = 2              # retina tissue
    scribbles[220:224, 150:220] = 2
    scribbles[95:99, 130:170] = 2
    scribbles[100:104, 250:310] = 2
    scribbles[250:254, 200:260] = 2
    scribbles[60:64, 180:240] = 2
    scribbles[152:160, 56:66] = 3                # optic disc
    scribbles[146:150, 58:64] = 3
    scribbles[30:200:40, 5:9] = 1
    seg = Segmenter(features="auto").fit(image, scribbles)
    print(json.dumps({k: seg.auto_report[k] for k in ("chosen", "reason", "scores")}, indent=1))
    colors = {c["id"]: c["color"] for c in seg.classes}
    return save_panel(out / "auto_retina.png", image, scribbles, seg.predict(image), colors)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("."))
    print(main(ap.parse_args().out))
