"""Lost-worker recovery with the default settings: ``kill -9`` a worker mid-job, time until the job is done.

Usage::

    python bench/recovery.py [--size 3000] [--channels 3] [--repeats 1]

Starts a private ``redis-server`` and two worker nodes with the *default*
reliability settings (no ``SEGAPP_VISIBILITY_TIMEOUT``: the 60 s lease renewed by
each worker's heartbeat), queues one ``--size``² image (9 MP by default) through
``predict_via_queue`` (what ``segapp predict --queue`` runs), and once a worker is
running it kills that worker's whole process group (main and pool processes,
``SIGKILL``).  It reports, per round: seconds from the kill until the job is
done on the other worker, how long the job itself takes there, the attempt
number, and whether the output equals a local ``predict`` of the same image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def make_case(d: Path, size: int, channels: int) -> tuple[Path, Path]:
    from PIL import Image
    from skimage import data, transform

    from segapp.segmenter import Segmenter

    src = data.astronaut() if channels == 3 else data.camera()
    img = (transform.resize(src, (size, size), order=1, preserve_range=True)).astype(np.uint8)
    Image.fromarray(img).save(d / "big.png")
    small = img[::8, ::8]
    grey = small if small.ndim == 2 else small.mean(-1)
    lab = np.zeros(grey.shape, np.uint8)
    rng = np.random.default_rng(0)
    keep = rng.random(grey.shape) < 0.05
    lab[(grey < np.percentile(grey, 30)) & keep] = 1
    lab[(grey > np.percentile(grey, 70)) & keep] = 2
    Segmenter().fit(small, lab).save(d / "model.segapp")
    return d / "model.segapp", d / "big.png"


def one_round(app, settings, model: Path, image: Path, out: Path, workers: dict) -> dict:
    from segapp.jobs.client import job_statuses, predict_via_queue

    done, facts, errors = {}, {}, []

    def run():
        try:
            predict_via_queue(model, [image], out, settings=settings, queue="recovery", warn=lambda t: None,
                              on_done=lambda p, r: facts.update(r))
        except Exception as e:  # reported below
            errors.append(e)
        done["t"] = time.monotonic()

    t = threading.Thread(target=run)
    t.start()
    victim, t_kill = None, None
    while victim is None and t.is_alive():
        ids = [k.decode().removeprefix("celery-task-meta-") for k in app.backend.client.keys("celery-task-meta-*")]
        for st in job_statuses(ids, app).values():
            if st["state"] == "running" and st["worker"] in workers and st["fraction"] > 0.05:
                victim = st["worker"]
        time.sleep(0.05)
    if victim:
        os.killpg(workers[victim].pid, signal.SIGKILL)
        t_kill = time.monotonic()
        workers[victim].wait()
    t.join()
    if errors:
        raise errors[0]
    return {"victim": victim, "kill_to_done": done["t"] - t_kill if t_kill else None, **facts}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=3000)
    p.add_argument("--channels", type=int, default=3, choices=[1, 3])
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args(argv)

    from scale import start_redis, start_workers, stop_workers

    from segapp import io
    from segapp.cli import main as cli
    from segapp.config import Settings
    from segapp.jobs.celery_app import make_celery
    from segapp.jobs.heartbeat import live_workers

    tmp = Path(tempfile.mkdtemp(prefix="segapp-recovery-"))
    model, image = make_case(tmp, a.size, a.channels)
    t0 = time.perf_counter()
    assert cli(["predict", "--model", str(model), "--out-dir", str(tmp / "local"), str(image)]) == 0
    local_s = time.perf_counter() - t0
    redis_proc, url = start_redis(tmp)
    settings = Settings(redis_url=url)  # default lease, time limit, everything
    app = make_celery(settings)
    print(f"# {a.size}x{a.size}x{a.channels} image ({a.size * a.size / 1e6:.0f} MP), default settings: lease "
          f"{settings.effective_visibility_timeout} s renewed every {settings.heartbeat_interval:.0f} s; "
          f"local predict {local_s:.1f} s; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    rows, procs = [], []
    try:
        for r in range(a.repeats):
            procs = start_workers(2, settings, tmp, queues="recovery", threads=1)
            time.sleep(1.0)  # first heartbeats
            live = live_workers(app.backend.client)
            names = {}
            for pr in procs:  # map node names to processes through the pid each worker announces
                for node, facts in live.items():
                    if facts.get("pid") == pr.pid:
                        names[node] = pr
            res = one_round(app, settings, model, image, tmp / f"q{r}", names)
            same = np.array_equal(io.read_labels(tmp / f"q{r}" / "big.png"), io.read_labels(tmp / "local" / "big.png"))
            rows.append((res, same))
            print(f"round {r + 1}: killed {res['victim']}; done {res['kill_to_done']:.1f} s after the kill on "
                  f"{res['worker']} (attempt {res['attempt']}, job {res['seconds']:.1f} s); same as local: {same}",
                  flush=True)
            stop_workers(procs)
            procs = []
    finally:
        stop_workers(procs)
        redis_proc.terminate()
        redis_proc.wait()
    print("\n| round | kill → done s | job s on the other worker | attempt | output == local |")
    print("|---|---|---|---|---|")
    for i, (res, same) in enumerate(rows):
        print(f"| {i + 1} | {res['kill_to_done']:.1f} | {res['seconds']:.1f} | {res['attempt']} | {same} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
