"""Scale-out benchmark: batch prediction through Celery workers vs in-process prediction.

Usage::

    python bench/scale.py [--images 40] [--size 1000] [--features classical] [--trees N]
                          [--workers 1 2] [--repeats 3] [--gpu-compare]

It starts a private ``redis-server`` (must be on the PATH) and worker nodes
(``python -m segapp.jobs.worker``, one pool process each, capped to one thread:
``SEGAPP_WORKER_THREADS=1``, ``OMP_NUM_THREADS=1``; one queue per configuration,
warmed up so imports and model loading are not timed), then in each of
``--repeats`` interleaved rounds

1. predicts ``--images`` one-megapixel PNGs in this process with one thread,
   doing what ``python -m segapp predict`` does (the baseline);
2. the same split over two processes side by side without any queue (what the
   machine itself offers two single-thread processes);
3. predicts the same batch with ``predict_via_queue`` on 1, then 2 worker processes.

It prints the best and median time of each, images/s, megapixels/s, the speed-up
of 2 workers over 1, how busy the workers were (near 100 % = the queue keeps
them fed), the per-image overhead of the queue path vs in-process prediction,
and CPU milliseconds per image of the client, Redis and the workers (from
``/proc``: unlike wall time, hardly moved by other load on a shared machine).
A 2-vs-1 CPU-bound calibration per round shows how much parallelism the machine
offered at that moment (other load on a shared machine caps the speed-up).
``--gpu-compare`` (on a machine with CUDA) adds one GPU worker on the same batch
(use ``--features effnet-lite0`` there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# one thread per process everywhere (before numpy is imported): workers and baseline compare fairly
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LOKY_MAX_CPU_COUNT"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_batch(directory: Path, n: int, size: int, features: str, trees: int | None, params: dict | None) -> Path:
    """``n`` distinct ``size``² grey PNGs (crops of scikit-image samples) and a model trained on one."""
    from PIL import Image
    from skimage import data, transform

    from segapp.segmenter import Segmenter

    sources = [data.camera(), data.coins(), data.moon(), data.page(), (data.astronaut()[..., 1])]
    rng = np.random.default_rng(0)
    for i in range(n):
        src = transform.resize(sources[i % len(sources)], (size + 64, size + 64), order=1, preserve_range=True)
        y, x = rng.integers(0, 64, 2)
        img = np.clip(src[y:y + size, x:x + size] + rng.normal(0, 4, (size, size)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(directory / f"img{i:03d}.png")
    first = np.asarray(Image.open(directory / "img000.png"))
    lab = np.zeros(first.shape, np.uint8)
    lab[first < np.percentile(first, 20)] = 1
    lab[first > np.percentile(first, 80)] = 2
    keep = rng.random(first.shape) < 0.02  # ~2 % of the pixels painted
    lab[~keep] = 0
    model = directory / "model.segapp"
    kwargs = {"n_estimators": trees} if trees else {}  # default: the Segmenter's own forest settings
    Segmenter(features=features, feature_params=params, **kwargs).fit(first, lab).save(model)
    return model


def start_redis(workdir: Path):
    exe = shutil.which("redis-server")
    if exe is None:
        sys.exit("bench/scale.py needs redis-server on the PATH (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis

    for _ in range(100):
        try:
            if redis.Redis(port=port).ping():
                return proc, f"redis://127.0.0.1:{port}/0"
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)
    sys.exit("redis-server did not start")


def start_workers(n: int, settings, logdir: Path, queues: str = "default", threads: int = 1) -> list:
    """``n`` worker nodes with one pool process each; waits until all answer."""
    from segapp.jobs.celery_app import make_celery

    env = {**os.environ, "REDIS_URL": settings.redis_url, "SEGAPP_WORKER_THREADS": str(threads),
           "SEGAPP_APP_MODULE": "segapp_bench_no_web_app", "PYTHONPATH": str(ROOT),
           "SEGAPP_CACHE_DIR": str(logdir / "cache")}
    procs, names = [], []
    for i in range(n):
        name = f"{queues}-{i}-{os.getpid()}@{socket.gethostname()}"
        log = open(logdir / f"worker{i}-{time.time_ns()}.log", "wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "segapp.jobs.worker", "--queues", queues,
                                       "--concurrency", "1", "--hostname", name], cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))
        names.append(name)
    app = make_celery(settings)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        replies = app.control.ping(destination=names, timeout=1.0) or []
        if len(replies) == n:
            return procs
    sys.exit("workers did not start; see " + str(logdir))


def stop_workers(procs) -> None:
    import signal

    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def cpu_seconds(pids) -> float:
    """User + system CPU seconds used so far by processes ``pids`` and their live children (Linux ``/proc``)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    seen = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
    return total


def run_local(model: Path, images: list[Path], out: Path, start=None, cpu: list | None = None, ready=None) -> float:
    """What ``python -m segapp predict`` does, timed, in this process with one thread.

    With ``start`` (an event) the clock starts when it is set, after the warm-up;
    ``cpu`` receives the CPU seconds of the timed part.
    """
    import joblib

    from segapp import io
    from segapp.segmenter import Segmenter

    joblib.parallel_config(backend="threading")
    seg = Segmenter.load(model)
    seg.predict_proba(io.read_image(images[0])[:64, :64])  # warm-up (imports, first allocation)
    out.mkdir(parents=True, exist_ok=True)
    if ready is not None:
        ready.put(os.getpid())
    if start is not None:
        start.wait()
    t0, c0 = time.perf_counter(), time.process_time()
    for p in images:
        image = io.read_image(p)
        proba = seg.predict_proba(image)
        seg.cache.clear()
        io.write_labels(out / f"{p.stem}.png", seg.predict(image, proba=proba))
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return time.perf_counter() - t0


def _local_share(model, images, out, ready, start, done) -> None:
    cpu: list = []
    run_local(model, images, out, start, cpu=cpu, ready=ready)
    done.put(cpu[0])


def run_local_parallel(model: Path, images: list[Path], out: Path, n: int = 2, cpu: list | None = None) -> float:
    """``n`` in-process predictions side by side (spawned processes, no queue): the machine's ceiling.

    The clock starts once every process has imported and warmed up; ``cpu``
    receives the CPU seconds of their timed parts, summed.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready, start, done = ctx.Queue(), ctx.Event(), ctx.Queue()
    ps = [ctx.Process(target=_local_share, args=(model, images[i::n], out / str(i), ready, start, done))
          for i in range(n)]
    for p in ps:
        p.start()
    for _ in ps:
        ready.get(timeout=600)
    t0 = time.perf_counter()
    start.set()
    used = sum(done.get() for _ in ps)
    wall = time.perf_counter() - t0
    for p in ps:
        p.join()
    if cpu is not None:
        cpu.append(used)
    return wall


def run_queue(model: Path, images: list[Path], out: Path, settings, queue: str, cpu_of: dict | None = None):
    """Wall seconds of one batch through ``queue``, the workers' busy fraction and mean job seconds.

    ``cpu_of``: ``{"redis": [pid], "workers": [pids]}``; then a fourth value is returned,
    CPU seconds per image of the client (this process), Redis and the workers.
    """
    from segapp.jobs.client import predict_via_queue

    jobs = []
    before = {k: cpu_seconds(v) for k, v in (cpu_of or {}).items()}
    t0, c0 = time.perf_counter(), time.process_time()
    predict_via_queue(model, images, out, settings=settings, queue=queue, warn=print,
                      on_done=lambda path, result: jobs.append(result))
    wall = time.perf_counter() - t0
    cpu = {"client": time.process_time() - c0, **{k: cpu_seconds(v) - before[k] for k, v in (cpu_of or {}).items()}}
    busy = sum(j["seconds"] for j in jobs) / (wall * len({j["worker"] for j in jobs}))
    out = (wall, busy, sum(j["seconds"] for j in jobs) / len(jobs))
    return out + ({k: v / len(images) for k, v in cpu.items()},) if cpu_of is not None else out


def _burn(seconds: float, start, out) -> None:
    start.wait()
    end, x = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        x += 1
    out.put(x)


def calibrate(seconds: float = 2.0) -> float:
    """Work done by 2 CPU-bound processes relative to 1: the parallelism this machine offers right now.

    Uses fresh (spawned) processes: forking this process, which holds Redis and
    Celery connections and their threads, could deadlock the child.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")

    def count(n):
        start, out = ctx.Event(), ctx.Queue()
        ps = [ctx.Process(target=_burn, args=(seconds, start, out)) for _ in range(n)]
        for p in ps:
            p.start()
        time.sleep(1.0)  # let them import and wait at the start line
        start.set()
        total = sum(out.get() for _ in ps)
        for p in ps:
            p.join()
        return total

    return count(2) / count(1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=40)
    p.add_argument("--size", type=int, default=1000, help="image side in pixels (1000 = one megapixel)")
    p.add_argument("--features", default="classical")
    p.add_argument("--sigmas", type=float, nargs="*", help="classical sigmas (default: the extractor's)")
    p.add_argument("--trees", type=int, help="random-forest size (default: the Segmenter default)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the best of each is reported")
    p.add_argument("--gpu-compare", action="store_true", help="add one GPU worker (queue gpu, all CPU threads)")
    a = p.parse_args(argv)

    from segapp.config import Settings
    from segapp.jobs.celery_app import make_celery

    tmp = Path(tempfile.mkdtemp(prefix="segapp-scale-"))
    params = {"sigmas": a.sigmas} if a.sigmas else None
    print(f"# {a.images} images of {a.size}x{a.size}, features={a.features}{' ' + str(params) if params else ''}, "
          f"{a.trees or 'default'} trees; {os.cpu_count()} CPUs; best of {a.repeats} interleaved rounds", flush=True)
    model = make_batch(tmp, a.images, a.size, a.features, a.trees, params)
    images = sorted(tmp.glob("img*.png"))
    mp = a.images * a.size * a.size / 1e6
    redis_proc, url = start_redis(tmp)
    settings = Settings(redis_url=url, task_time_limit=3600)
    make_celery(settings)
    runs: dict[str, list] = {"in-process, 1 thread": []}
    cpu: dict[str, list] = {}
    procs, by_n = [], {}
    try:
        for n in a.workers:  # one queue per configuration; idle workers block in Redis, using no CPU
            by_n[n] = start_workers(n, settings, tmp, queues=f"bench{n}")
            procs += by_n[n]
            run_queue(model, images[:2 * n], tmp / "warmup", settings, f"bench{n}")  # imports, model load
        if a.gpu_compare:
            procs += start_workers(1, settings, tmp, queues="gpu", threads=os.cpu_count() or 1)
            run_queue(model, images[:2], tmp / "warmup", settings, "gpu")
        for r in range(a.repeats):
            ceiling = calibrate()
            local_cpu: list = []
            runs["in-process, 1 thread"].append((run_local(model, images, tmp / "local", cpu=local_cpu), None, None,
                                                 ceiling))
            cpu.setdefault("in-process, 1 thread", []).append({"client": local_cpu[0] / len(images)})
            if 2 in a.workers:
                par_cpu: list = []
                runs.setdefault("in-process, 2 processes (no queue)", []).append(
                    (run_local_parallel(model, images, tmp / "local2", cpu=par_cpu), None, None, ceiling))
                cpu.setdefault("in-process, 2 processes (no queue)", []).append({"client": par_cpu[0] / len(images)})
            for n in a.workers:
                label = f"queue, {n} worker process{'es' if n > 1 else ''}"
                *res, per_image = run_queue(model, images, tmp / f"q{n}", settings, f"bench{n}", cpu_of={
                    "redis": [redis_proc.pid], "workers": [w.pid for w in by_n[n]]})
                runs.setdefault(label, []).append((*res, ceiling))
                cpu.setdefault(label, []).append(per_image)
            if a.gpu_compare:
                runs.setdefault("queue, 1 GPU worker", []).append(
                    (*run_queue(model, images, tmp / "gpu", settings, "gpu"), ceiling))
            print(f"round {r + 1}: " + ", ".join(f"{k}: {v[-1][0]:.1f} s" for k, v in runs.items())
                  + f" (2-vs-1 CPU calibration {ceiling:.2f}x)", flush=True)
    finally:
        stop_workers(procs)
        redis_proc.terminate()
        redis_proc.wait()
    best = {k: min(v, key=lambda x: x[0]) for k, v in runs.items()}
    one = best.get("queue, 1 worker process")
    print("\n| run | best s | median s | images/s (best) | MP/s (best) | speed-up vs 1 process | workers busy | s/job |")
    print("|---|---|---|---|---|---|---|---|")
    for label, (t, busy, job, _) in best.items():
        med = statistics.median(x[0] for x in runs[label])
        base = one[0] if one and label.startswith("queue") else best["in-process, 1 thread"][0]
        speed = f"{base / t:.2f}x" if label != "in-process, 1 thread" else ""
        extra = f"{100 * busy:.0f} % | {job:.3f}" if busy is not None else " | "
        print(f"| {label} | {t:.1f} | {med:.1f} | {a.images / t:.2f} | {mp / t:.2f} | {speed} | {extra} |")
    local = best["in-process, 1 thread"][0]
    if one:
        print(f"\nqueue-path overhead per image vs in-process (best runs, 1 process, 1 thread each): "
              f"{100 * (one[0] - local) / local:+.1f} % ({(one[0] - local) / a.images * 1000:+.0f} ms/image)")
    print(f"2-vs-1 CPU-bound calibration per round: {', '.join(f'{x[3]:.2f}x' for x in runs['in-process, 1 thread'])}"
          " (the most a 2-process run could gain at that moment)")
    two, ceiling2 = best.get("queue, 2 worker processes"), best.get("in-process, 2 processes (no queue)")
    if two and ceiling2:
        print(f"queue with 2 workers vs 2 processes without a queue (best runs): {ceiling2[0] / two[0]:.2f} "
              "(1.00 = the queue costs nothing at this parallelism)")
    # CPU per image (median over rounds): robust where other load makes wall-clock noisy
    print("\n| CPU ms per image (median of rounds) | client / in-process | Redis | workers | total | vs in-process |")
    print("|---|---|---|---|---|---|")
    base_cpu = statistics.median(c["client"] for c in cpu["in-process, 1 thread"])
    for label, rows in cpu.items():
        med = {k: statistics.median(r.get(k, 0.0) for r in rows) for k in ("client", "redis", "workers")}
        total = sum(med.values())
        vs = f"{100 * (total - base_cpu) / base_cpu:+.1f} %" if label != "in-process, 1 thread" else "(base)"
        print(f"| {label} | {1000 * med['client']:.0f} | {1000 * med['redis']:.0f} | {1000 * med['workers']:.0f} | "
              f"{1000 * total:.0f} | {vs} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
