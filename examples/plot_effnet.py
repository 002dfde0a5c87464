"""
Stained tissue with pretrained EfficientNet-Lite0 features
==========================================================

The bundled ImageNet EfficientNet-Lite0 turns each pixel into 80 learned
features (three early stages, upsampled to pixel resolution). On an
immunohistochemistry slide three classes — DAB-stained, haematoxylin nuclei
and background — come apart from a few strokes.

Run: ``python examples/plot_effnet.py [--out DIR]``
"""

import argparse
from pathlib import Path

import numpy as np
from skimage import data

from _panel import save_panel
from segapp.segmenter import Segmenter


def main(out: Path) -> Path:
    image = data.immunohistochemistry()[::2, ::2]
    scribbles = np.zeros(image.shape[:2], np.uint8)
    scribbles[40:43, 30:90] = 1       # stained gland epithelium
    scribbles[190:193, 140:190] = 1
    scribbles[200:203, 10:40] = 1
    scribbles[60:63, 225:250] = 2     # stroma between the glands
    scribbles[140:143, 95:120] = 2
    scribbles[230:233, 220:250] = 2
    seg = Segmenter(features="effnet-lite0",
                    classes=[{"id": 1, "name": "gland", "color": "#8c510a"},
                             {"id": 2, "name": "stroma", "color": "#2166ac"}]).fit(image, scribbles)
    result = seg.predict(image)
    for c in seg.classes:
        print(f"{c['name']:<11} {100 * np.mean(result == c['id']):5.1f}%")
    colors = {c["id"]: c["color"] for c in seg.classes}
    return save_panel(out / "effnet_ihc.png", image, scribbles, result, colors)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("."))
    print(main(ap.parse_args().out))
