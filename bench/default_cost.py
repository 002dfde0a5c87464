"""Cost of the default extractor in the stroke loop: filter bank vs filter bank + EfficientNet-Lite0.

Usage: ``python bench/default_cost.py`` — a 1 MP RGB image, ~1 % scribbles; prints the first
feature extraction and the median of 5 retrain + predict rounds with cached features, same run.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import time, numpy as np
from skimage import data, transform
from segapp.segmenter import Segmenter
from segapp.features import FeatureCache
img = (transform.resize(data.astronaut(), (1024, 1024), preserve_range=True)).astype(np.uint8)
lab = np.zeros(img.shape[:2], np.uint8)
rng = np.random.default_rng(0)
for c in (1, 2):
    for _ in range(40):
        y, x = rng.integers(0, 1000, 2); lab[y:y+3, x:x+40] = c
res = {}
for name in ("classical", "classical+effnet-lite0"):
    cache = FeatureCache(max_bytes=4 * 1024**3)
    seg = Segmenter(features=name, cache=cache)
    t = time.perf_counter(); seg.features(img); first = time.perf_counter() - t
    times = []
    for _ in range(5):
        t = time.perf_counter(); seg.fit(img, lab); seg.predict(img); times.append(time.perf_counter() - t)
    res[name] = (first, float(np.median(times)), seg.features(img).shape[-1])
    print(name, "features %.2f s, retrain+predict median of 5 %.2f s, %d features" % res[name], flush=True)
print("ratio combo/classical: features %.2fx, stroke %.2fx" % (res["classical+effnet-lite0"][0] / res["classical"][0], res["classical+effnet-lite0"][1] / res["classical"][1]))
