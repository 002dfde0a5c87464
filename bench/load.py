"""Load: concurrent browser-like sessions against gunicorn + Celery + Redis on this machine (loopback only).

Usage::

    python bench/load.py [--sessions 10] [--duration 60] [--size 512] [--strokes 10]
                         [--web 2] [--workers 1] [--concurrency 2] [--embedded]

Starts a private ``redis-server``, ``--workers`` Celery worker nodes
(``python -m segapp worker``, ``--concurrency`` pool processes each, one thread
per process) and gunicorn (``--web`` processes × 4 threads) on free loopback
ports, each with its own cache directory (nothing is shared but Redis).  With
``--embedded`` there is no Redis and no worker: gunicorn alone, background
jobs in its child processes.

Then ``--sessions`` sessions run side by side, each as a browser would
(:class:`bench/dash_http.DashPage`: page load, the callbacks it triggers,
background jobs polled): upload one ``--size``² image (its own), paint
``--strokes`` strokes spread over ``--duration`` seconds (live update: every
stroke retrains and brings an overlay), switch the overlay to probability and
back, press Train once.  Bounded: each session does exactly that; the run stops
at ``--duration`` + 120 s whatever happens.

Printed: requests and errors (HTTP errors, exceptions, error toasts) per
request kind, p50 / p95 / max latency per kind, the time from the first
stroke to the first overlay (the first extraction, a background job), peak
memory (RSS and PSS summed over every process of the deployment, per
service), and a check that nothing was lost: every session still has its
image and exactly the strokes its page shows, read back from the store.
Sessions that reach the time bound stop painting (counted); the servers stop
only after their last requests finished.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

INTERACTIVE = ("page", "upload", "canvas", "stroke", "retrain", "overlay", "train", "status", "other")


def kind_of(label: str) -> str:
    """Request kind of a :class:`DashPage` request label (first input -> first output)."""
    if label in ("page", "layout", "dependencies"):
        return "page"
    if label.endswith("(poll)"):
        return "job poll"
    src, _, dst = label.partition(" -> ")
    if src.startswith("upload-images."):
        return "upload"
    if src.startswith("canvas.relayoutData"):
        return "stroke"
    if src.startswith("extract-request.") or src.startswith("apply-all."):
        return "job start"
    if src.startswith("annot-version.") or src.startswith("train-request."):
        return "retrain"
    if src.startswith("train.n_clicks"):
        return "train"
    if dst.startswith("overlay-data.") or src.startswith("overlay-mode."):
        return "overlay"
    if dst.startswith("canvas.figure"):
        return "canvas"
    if dst.startswith("status-text."):
        return "status"
    return "other"


# -- processes ----------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return out


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) bytes of one process (0, 0 when it is gone)."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


class MemorySampler(threading.Thread):
    """Samples RSS and PSS of process trees every ``every`` seconds; keeps the peaks."""

    def __init__(self, groups: dict, every: float = 0.5):
        super().__init__(daemon=True)
        self.groups, self.every = groups, every
        self.peak = {g: (0, 0) for g in groups}
        self.peak_total = (0, 0)
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            total_rss = total_pss = 0
            for g, roots in self.groups.items():
                rss = pss = 0
                for root in roots:
                    for p in _tree(root):
                        r, s = _memory(p)
                        rss, pss = rss + r, pss + s
                self.peak[g] = (max(self.peak[g][0], rss), max(self.peak[g][1], pss))
                total_rss, total_pss = total_rss + rss, total_pss + pss
            self.peak_total = (max(self.peak_total[0], total_rss), max(self.peak_total[1], total_pss))
            self._halt.wait(self.every)

    def stop(self):
        self._halt.set()
        if self.is_alive():
            self.join(5)


def start(cmd, env, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_http(url: str, proc, log: Path, timeout: float = 180.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the web server did not start; see {log}")
            time.sleep(0.3)


# -- one session ----------------------------------------------------------------------------------
def session_image(i: int, size: int) -> bytes:
    from PIL import Image
    from skimage import data, transform

    sources = [data.camera(), data.coins(), data.moon(), data.page(), data.astronaut()[..., 1]]
    src = transform.resize(sources[i % len(sources)], (size + 32, size + 32), preserve_range=True)
    y, x = (7 * i) % 32, (13 * i) % 32
    img = np.clip(src[y:y + size, x:x + size], 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def stroke(i: int, size: int) -> dict:
    from segapp.annotations import shape_name

    cid = 1 + i % 2
    y = int((0.1 + 0.8 * ((i * 37) % 100) / 100) * size)
    x0, x1 = int(0.05 * size), int((0.3 + 0.6 * ((i * 53) % 100) / 100) * size)
    return {"type": "path", "path": f"M{x0},{y}L{(x0 + x1) // 2},{y + 3}L{x1},{y}", "name": shape_name(cid, 5),
            "line": {"width": 5}}


def _toasts(node, out):
    if isinstance(node, dict):
        props = node.get("props") if isinstance(node.get("props"), dict) else None
        if node.get("type") == "Toast" and props:
            out.append((props.get("icon"), str(props.get("children"))))
        for v in node.values():
            _toasts(v, out)
    elif isinstance(node, list):
        for v in node:
            _toasts(v, out)
    return out


def run_session(i: int, url: str, a, t_start: float, deadline: float, records: list, report: dict) -> None:
    from dash_http import DashPage

    lock = threading.Lock()

    def on_request(label, seconds, status):
        with lock:
            records.append((kind_of(label), seconds, status, i))

    shapes, facts, t_first = [], {"errors": [], "strokes": 0}, None
    report[i] = facts
    try:
        page = DashPage(url, on_request=on_request, timeout=120, job_timeout=max(60.0, deadline - time.monotonic()))
        page.load()
        facts["sid"] = page.value("session-id", "data").split(".", 1)[0]  # the store id (the page holds it signed)
        if a.extractor:
            page.set("extractor", "value", a.extractor)
        page.props[("upload-images", "filename")] = f"session{i}.png"
        page.set("upload-images", "contents",
                 "data:image/png;base64," + base64.b64encode(session_image(i, a.size)).decode())
        facts["image"] = (page.value("current-image", "data") or {}).get("image")
        step = a.duration / (a.strokes + 1)
        for s in range(a.strokes):
            time.sleep(max(0.0, t_start + (s + 1) * step + 0.37 * i % step - time.monotonic()))
            if time.monotonic() > deadline:  # bounded in time: no new action, in-flight ones finish
                facts["late"] = True
                break
            shapes.append(stroke(s + 11 * i, a.size))
            t_first = t_first or time.monotonic()
            facts["shapes"] = list(shapes)  # what the page shows: the server must keep exactly this
            page.set("canvas", "relayoutData", {"shapes": list(shapes)})
            facts["strokes"] += 1
            overlay = page.value("overlay-data", "data") or {}
            if "first_overlay_s" not in facts and (overlay.get("uri") or overlay.get("tiles")):
                facts["first_overlay_s"] = time.monotonic() - t_first
            if s == a.strokes // 2:
                page.set("overlay-mode", "value", "probability")
            if s == a.strokes // 2 + 1:
                page.set("overlay-mode", "value", "segmentation")
            if s == a.strokes - 3:
                page.set("train", "n_clicks", 1)
        facts["toasts"] = [t for upd in page.side_updates for t in _toasts(upd, [])]
    except Exception as e:  # counted as an error of this session
        facts["errors"].append(f"{type(e).__name__}: {e}")


# -- the run --------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--strokes", type=int, default=10)
    p.add_argument("--web", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--workers", type=int, default=1, help="Celery worker nodes")
    p.add_argument("--concurrency", type=int, default=2, help="pool processes per worker node")
    p.add_argument("--embedded", action="store_true", help="no Redis/Celery: gunicorn alone")
    p.add_argument("--keep", action="store_true", help="keep the logs and data directory (printed)")
    p.add_argument("--extractor", help="features the sessions choose (default: the app's default)")
    a = p.parse_args(argv)

    from scale import start_redis, stop_workers as stop

    from segapp.store import open_store
    from segapp.ui.session import Session, key

    tmp = Path(tempfile.mkdtemp(prefix="segapp-load-"))
    port = _free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "SEGAPP_SECRET_KEY": "load-" + os.urandom(8).hex(),
           "PYTHONPATH": str(ROOT), "WEB_CONCURRENCY": str(a.web), "SEGAPP_DATA_DIR": str(tmp / "data"),
           "SEGAPP_WORKER_THREADS": "1"}
    env.pop("REDIS_URL", None)
    procs, groups, redis_proc = [], {}, None
    if not a.embedded:
        redis_proc, env["REDIS_URL"] = start_redis(tmp)
        groups["redis"] = [redis_proc.pid]
        for w in range(a.workers):
            wp = start([sys.executable, "-m", "segapp", "worker", "--queues", "default", "--concurrency",
                        str(a.concurrency)], {**env, "SEGAPP_CACHE_DIR": str(tmp / f"worker{w}-cache")},
                       tmp / f"worker{w}.log")
            procs.append(wp)
            groups.setdefault("workers", []).append(wp.pid)
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    web = start([gunicorn, "-c", "python:segapp.jobs.gunicorn_conf", "app:server"],
                {**env, "SEGAPP_CACHE_DIR": str(tmp / "web-cache")}, tmp / "web.log")
    procs.append(web)
    groups["web"] = [web.pid]
    url = f"http://127.0.0.1:{port}/"
    sampler = MemorySampler(groups)
    records, report = [], {}
    try:
        wait_http(url, web, tmp / "web.log")
        if not a.embedded:  # the workers announce themselves once they can take jobs
            import redis

            from segapp.jobs.heartbeat import live_workers

            client, deadline = redis.Redis.from_url(env["REDIS_URL"]), time.monotonic() + 180
            while len(live_workers(client)) < a.workers:
                if time.monotonic() > deadline:
                    sys.exit(f"workers did not start; see {tmp}")
                time.sleep(0.5)
        sampler.start()
        load0 = os.getloadavg()[0]
        t_start = time.monotonic()
        deadline = t_start + a.duration + 120
        threads = [threading.Thread(target=run_session, args=(i, url, a, t_start, deadline, records, report))
                   for i in range(a.sessions)]
        for t in threads:
            t.start()
        for t in threads:  # after the deadline no session starts an action; in-flight requests may finish
            t.join(max(0.0, deadline + 150 - time.monotonic()))
        wall = time.monotonic() - t_start
        hung = sum(t.is_alive() for t in threads)
        late = sum(1 for f in report.values() if f.get("late"))
        sampler.stop()
        # nothing lost: every session's image and strokes, read back from the store
        store = open_store(env.get("REDIS_URL"), tmp / "data")
        lost = []
        for i, facts in sorted(report.items()):
            if not facts.get("sid"):
                lost.append(f"session {i}: never started")
                continue
            sess = Session(store, facts["sid"])
            images = sess.images()
            if len(images) != 1 or images[0]["shape"][1:3] != [a.size, a.size]:
                lost.append(f"session {i}: images {[(m['name'], m['shape']) for m in images]}")
                continue
            k = key(images[0]["id"], 0)
            if sess.shapes(k) != facts.get("shapes", []):  # exactly what the page shows, stroke for stroke
                lost.append(f"session {i}: {len(sess.shapes(k))} strokes stored, "
                            f"{len(facts.get('shapes', []))} on the page")
    finally:
        stop(procs)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
        sampler.stop()

    mode = "embedded (gunicorn only)" if a.embedded else \
        f"gunicorn {a.web}x4 threads + {a.workers} worker(s) x {a.concurrency} processes + Redis"
    print(f"# {a.sessions} sessions x {a.duration:g} s, {a.size}^2 image, {a.strokes} strokes, 1 Train each; {mode}; "
          f"{os.cpu_count()} CPUs; load average at start {load0:.1f}; wall {wall:.1f} s")
    by_kind: dict[str, list] = {}
    for kind, seconds, status, _ in records:
        by_kind.setdefault(kind, []).append((seconds, status))
    print("\n| request kind | requests | errors | p50 s | p95 s | max s |")
    print("|---|---|---|---|---|---|")
    for kind in sorted(by_kind, key=lambda k: (k not in INTERACTIVE, k)):
        rows = by_kind[kind]
        secs = sorted(s for s, _ in rows)
        errors = sum(1 for _, st in rows if st >= 400)
        p95 = secs[min(len(secs) - 1, int(round(0.95 * (len(secs) - 1))))]
        print(f"| {kind} | {len(rows)} | {errors} | {statistics.median(secs):.3f} | {p95:.3f} | {secs[-1]:.3f} |")
    errors = [(i, e) for i, f in report.items() for e in f["errors"]]
    toasts = [(i, t) for i, f in report.items() for t in f.get("toasts", []) if t[0] == "danger"]
    http_errors = sum(1 for _, _, st, _ in records if st >= 400)
    first = [f["first_overlay_s"] for f in report.values() if "first_overlay_s" in f]
    print(f"\nrequests: {len(records)}; HTTP errors: {http_errors}; session errors: {len(errors)}; "
          f"error toasts: {len(toasts)}; sessions that reached the time bound before their last stroke: {late}; "
          f"still running after it: {hung}")
    for i, e in errors[:10]:
        print(f"  session {i}: {e}")
    for i, t in toasts[:10]:
        print(f"  session {i} toast: {t[1][:200]}")
    if first:
        print(f"first stroke -> first overlay (first extraction, a background job): median {statistics.median(first):.1f} s, "
              f"max {max(first):.1f} s over {len(first)} sessions")
    print("peak memory (sum over processes): " + ", ".join(
        f"{g} RSS {r / 2**30:.2f} GB / PSS {s / 2**30:.2f} GB" for g, (r, s) in sampler.peak.items())
          + f"; all: RSS {sampler.peak_total[0] / 2**30:.2f} GB / PSS {sampler.peak_total[1] / 2**30:.2f} GB")
    print(f"nothing lost: {'yes' if not lost else 'NO'}" + "".join(f"\n  {x}" for x in lost))
    if a.keep:
        print(f"logs and data kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if not (lost or errors or http_errors or toasts or hung) else 1


if __name__ == "__main__":
    raise SystemExit(main())
