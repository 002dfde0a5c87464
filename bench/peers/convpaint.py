"""napari-convpaint 1.2.0 as a peer: batch the cases of a dataset into one run of
``convpaint_runner.py`` under ``.venv-peers/bin/python``; predictions are cached on disk.

Two configurations (see ``convpaint_runner.py``): ``convpaint`` — its default CPU
model, Gaussian features + CatBoost — and ``convpaint-rf``, its random-forest option.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-peers" / "bin" / "python"
RUNNER = Path(__file__).with_name("convpaint_runner.py")
CONFIGS = {"convpaint": "catboost", "convpaint-rf": "rf"}
VERSION = "napari-convpaint==1.2.0"


def available() -> tuple[bool, str]:
    if PYTHON.exists():
        return True, ""
    return False, f"{PYTHON} not found: run `make bench-peers` first"


def _digest(*arrays) -> str:
    h = hashlib.sha1(VERSION.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def job_key(peer: str, case, items) -> str:
    arrays = [items[n].image for n in case.train] + [case.labels[n] for n in case.train] + \
             [items[n].image for n in case.test]
    return f"{peer}-{_digest(*arrays)}"


def run(peer_cases: list[tuple[str, object]], items: dict, cache_dir: Path) -> dict:
    """Predictions ``{(peer, case.key, test name): (pred, seconds)}`` for ``(peer, case)`` pairs.

    Cached jobs are read from ``cache_dir``; the others run in one subprocess.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    results, todo = {}, []
    for peer, case in peer_cases:
        key = job_key(peer, case, items)
        path = cache_dir / f"{key}.npz"
        if path.exists():
            with np.load(path) as z:
                secs = float(z["seconds"])
                for n, name in enumerate(case.test):
                    results[(peer, case.key, name)] = (z[f"pred_{n}"], secs)
        else:
            todo.append((peer, case, key, path))
    if not todo:
        return results
    ok, why = available()
    if not ok:
        raise RuntimeError(why)
    names = sorted({n for _, c, _, _ in todo for n in c.train + c.test})
    index = {n: i for i, n in enumerate(names)}
    arrays, jobs = {f"image_{index[n]}": items[n].image for n in names}, []
    for j, (peer, case, key, _) in enumerate(todo):
        train = []
        for n in case.train:
            arrays[f"labels_{j}_{index[n]}"] = case.labels[n]
            train.append([index[n], f"{j}_{index[n]}"])
        jobs.append({"id": str(j), "config": CONFIGS[peer], "train": train, "test": [index[n] for n in case.test]})
    with tempfile.TemporaryDirectory(prefix="segapp-peers-") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, jobs=json.dumps(jobs), **arrays)
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        proc = subprocess.run([str(PYTHON), str(RUNNER), str(src), str(dst)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"convpaint runner failed: {proc.stderr.strip().splitlines()[-1:]}")
        with np.load(dst) as out:
            timing = json.loads(str(out["timing"]))
            for j, (peer, case, key, path) in enumerate(todo):
                preds = {f"pred_{n}": out[f"pred_{j}_{n}"] for n in range(len(case.test))}
                np.savez_compressed(path, seconds=timing[str(j)], **preds)
                for n, name in enumerate(case.test):
                    results[(peer, case.key, name)] = (preds[f"pred_{n}"], timing[str(j)])
    return results
