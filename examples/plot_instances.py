"""
Counting and measuring objects
==============================

Pixel classification gives an object mask; ``segapp.postprocess`` cleans it,
splits touching objects with a distance-transform watershed and measures each
one — the "N nuclei, mean size X µm" panel of a plate reader, here for coins.

Run: ``python examples/plot_instances.py [--out DIR]``
"""

import argparse
from pathlib import Path

import numpy as np
from skimage import data

from _panel import save_panel
from segapp import postprocess
from segapp.segmenter import Segmenter


def main(out: Path) -> Path:
    image = data.coins()
    scribbles = np.zeros(image.shape, np.uint8)
    scribbles[5:9, 10:370] = 1
    scribbles[290:294, 10:370] = 1
    scribbles[120:124, 60:80] = 2
    scribbles[225:229, 150:200] = 1    # background between the rows
    scribbles[185:189, 195:215] = 2    # and two more coins
    scribbles[45:49, 145:160] = 2
    seg = Segmenter(features="classical").fit(image, scribbles)
    labels = postprocess.clean_labels(seg.predict(image), smooth=2, min_size=50, fill_holes=True)
    coins = postprocess.instances(labels == 2, min_distance=20, min_size=100)
    rows = postprocess.measure(coins, intensity=image, pixel_size=0.1, unit="mm")
    summary = postprocess.summarize(rows, unit="mm")
    print(postprocess.summary_text(summary, noun="coin"))
    colors = {1: "#000000", 2: "#d62728"}
    return save_panel(out / "instances_coins.png", image, scribbles, labels, colors)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("."))
    print(main(ap.parse_args().out))
