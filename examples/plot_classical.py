"""
Coins with the classical filter bank
====================================

Two scribbles — background and coin — are enough for the ilastik-style filter
bank (Gaussian, gradient, Hessian eigenvalues at sigmas 0.3-10) and a random
forest to separate every coin from the background.

Run: ``python examples/plot_classical.py [--out DIR]``
"""

import argparse
from pathlib import Path

import numpy as np
from skimage import data

from _panel import save_panel
from segapp.segmenter import Segmenter


def main(out: Path) -> Path:
    image = data.coins()
    scribbles = np.zeros(image.shape, np.uint8)
    scribbles[5:9, 10:370] = 1        # background band at the top
    scribbles[290:294, 10:370] = 1    # and at the bottom
    scribbles[120:124, 60:80] = 2     # inside two coins
    scribbles[225:229, 150:200] = 1    # background between the rows
    scribbles[185:189, 195:215] = 2    # and two more coins
    scribbles[45:49, 145:160] = 2
    seg = Segmenter(features="classical").fit(image, scribbles)
    result = seg.predict(image)
    print(f"coins: {100 * np.mean(result == 2):.1f}% of pixels, "
          f"{seg.training_info['n_features']} features")
    colors = {c["id"]: c["color"] for c in seg.classes}
    return save_panel(out / "classical_coins.png", image, scribbles, result, colors)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("."))
    print(main(ap.parse_args().out))
