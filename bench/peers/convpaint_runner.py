"""Run napari-convpaint 1.2.0 on a batch of jobs; executed by ``.venv-peers/bin/python``, never by segapp.

Usage (``bench/peers/convpaint.py`` calls it; ``make bench-peers`` creates the venv)::

    QT_QPA_PLATFORM=offscreen .venv-peers/bin/python bench/peers/convpaint_runner.py IN.npz OUT.npz

``IN.npz`` holds ``image_<i>`` arrays ((H, W) grey or (H, W, 3) RGB, raw dtype),
``labels_<k>`` scribble images (0 = unlabelled, 1..K) and ``jobs``, a JSON
string: a list of ``{"id", "config", "train": [[image, labels], ...], "test":
[image, ...]}``.  ``config`` is ``"catboost"`` — convpaint's default CPU model,
``ConvpaintModel(fe_name="gaussian_features")`` with its default CatBoost
classifier — or ``"rf"``, the same features with its random-forest option
(``train(..., use_rf=True)``).  RGB images are declared ``channel_mode="rgb"``
and passed channels first, as convpaint's napari widget does for RGB layers.

``OUT.npz`` gets ``pred_<job>_<n>`` (uint8 class ids, one per test image) and
``timing``, a JSON string ``{job: seconds for train + segment}``.
"""

import json
import sys
import time
import warnings

import numpy as np


def _as_convpaint(image: np.ndarray) -> np.ndarray:
    """(H, W) stays; (H, W, C) becomes channels-first (C, H, W)."""
    return image if image.ndim == 2 else np.moveaxis(image, -1, 0)


def run_job(job: dict, data) -> tuple[list[np.ndarray], float]:
    from napari_convpaint.convpaint_model import ConvpaintModel

    train_images = [data[f"image_{i}"] for i, _ in job["train"]]
    rgb = train_images[0].ndim == 3
    kwargs = {"channel_mode": "rgb"} if rgb and train_images[0].shape[-1] == 3 else \
        {"channel_mode": "multi"} if rgb else {}
    model = ConvpaintModel(fe_name="gaussian_features", **kwargs)
    t0 = time.perf_counter()
    model.train([_as_convpaint(im) for im in train_images],
                [data[f"labels_{k}"].astype(np.int32) for _, k in job["train"]],
                use_rf=job["config"] == "rf")
    preds = [np.asarray(model.segment(_as_convpaint(data[f"image_{i}"])), np.uint8) for i in job["test"]]
    return preds, time.perf_counter() - t0


def main(argv) -> int:
    src, dst = argv
    warnings.simplefilter("ignore")
    data = np.load(src)
    jobs = json.loads(str(data["jobs"]))
    out, timing = {}, {}
    for job in jobs:
        if job["config"] not in ("catboost", "rf"):
            raise SystemExit(f"unknown convpaint config {job['config']!r}")
        preds, seconds = run_job(job, data)
        for n, p in enumerate(preds):
            out[f"pred_{job['id']}_{n}"] = p
        timing[job["id"]] = seconds
        print(f"convpaint {job['config']} job {job['id']}: {seconds:.1f} s", file=sys.stderr, flush=True)
    np.savez_compressed(dst, timing=json.dumps(timing), **out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
