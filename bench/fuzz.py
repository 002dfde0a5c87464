"""Hostile inputs through the CLI and the web app's callbacks over HTTP: counts per category and outcome.

Usage::

    python bench/fuzz.py [--scale 1] [--only images,models] [--no-cli] [--no-http] [--limit N]

The corpus (``bench/fuzzcases.py``, >= 400 cases) is generated deterministically.  Each case goes

- through the CLI as a subprocess (``predict`` for images and models, ``evaluate`` and ``train``
  for label images), CPU time measured, stderr must be exactly one ``segapp: error:`` line on refusal;
- through a real web server process (``app.py`` on a free port, its own data directory) the way
  the browser sends it: a POST to ``/_dash-update-component`` for the callback that receives
  that input (upload, model upload, ground-truth upload, stroke saving, canvas, session start...),
  30 s timeout, the server's memory (RSS of it and its children) sampled every 20 ms.

Outcomes: ``message`` (a clear one-line refusal: CLI exit 2 with one stderr line, or a toast),
``replaced`` (a client-chosen session id was replaced by a server-issued one), ``ignored``
(HTTP 204: nothing to do), ``accepted`` (a valid input, or a damaged one that still decodes to a
valid image), ``refused-4xx`` (an HTTP 4xx for a body that is not a Dash request), and the
failures ``traceback`` (CLI traceback, "Unexpected error" toast or a traceback in the server
log), ``http-500``, ``hang`` (more than 30 CPU-seconds - of the CLI process, or of the server
while it answers - or no answer within 120 s wall: wall time alone misleads on a shared
machine), ``crash`` (a signal, or the server died) and ``messy``
(a refusal whose stderr is not exactly one line).  The ``payloads`` category then
replaces every input and state of every callback, in turn, by each of 14 odd values (None, -1, 1e30,
a 5,000-character string, lists, dicts, ...).  Before the corpus three sessions are filled
with images and strokes; afterwards they must be exactly as they were, and no client-chosen
session id may own any data.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import signal
import socket
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

import fuzzcases as F  # noqa: E402

HANG_CPU = 30.0   # a run that burns more than this many CPU seconds is a hang
TIMEOUT = 120.0   # ... and one that has not finished after this many wall seconds (the machine may be shared)
FAILURES = ("traceback", "http-500", "hang", "crash", "messy")
OUTCOMES = ("message", "replaced", "ignored", "accepted", "refused-4xx") + FAILURES
CLASSES = [{"id": 1, "name": "Background", "color": "#1f77b4"}, {"id": 2, "name": "Foreground", "color": "#d62728"}]


# -- the CLI ------------------------------------------------------------------------------------------
def classify_cli(rc: int | None, stderr: str, cpu: float = 0.0) -> str:
    """Outcome of one CLI run from its exit status, stderr and CPU seconds."""
    if rc is None or cpu > HANG_CPU:
        return "hang"
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    if rc < 0:
        return "crash"
    if rc == 0:
        return "accepted"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return "message" if rc == 2 and len(lines) == 1 and lines[0].startswith("segapp: error: ") else "messy"


def cli_commands(case, files: dict, work: Path) -> list[tuple[str, list[str]]]:
    """``[(channel, argv)]`` for one case (empty for kinds the CLI never reads)."""
    path = work / f"{case.category}-{case.name}"[:120]
    if case.kind not in ("image", "labels", "model"):
        return []
    path.write_bytes(case.data)
    out = str(work / "out")
    if case.kind == "image":
        return [("cli predict", ["predict", "--model", files["model"], "--out-dir", out, str(path)])]
    if case.kind == "model":
        return [("cli predict --model", ["predict", "--model", str(path), "--out-dir", out, files["image"]])]
    return [("cli evaluate --gt", ["evaluate", "--pred", files["labels"], "--gt", str(path)]),
            ("cli train --labels", ["train", "--image", files["image"], "--labels", str(path), "--out",
                                    str(work / "m.segapp"), "--trees", "3", "--feature-params", '{"sigmas": [1.0]}'])]


def run_cli(argv: list[str], timeout: float = TIMEOUT) -> tuple[int | None, str, float, float, float]:
    """``(exit status or None on timeout, stderr, wall s, CPU s, peak RSS MB)`` of ``python -m segapp argv``."""
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "segapp", *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=err, stdin=subprocess.DEVNULL)
    timer = threading.Timer(timeout, lambda: proc.kill())
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - t0
    err.seek(0)
    stderr = err.read().decode("utf-8", "replace")
    rc = None if elapsed >= timeout and proc.returncode == -signal.SIGKILL else proc.returncode
    return rc, stderr, elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


# -- the web app ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Requests:
    """Builds ``/_dash-update-component`` bodies from the app's callback map (like the browser does)."""

    def __init__(self, app=None):
        from segapp.config import Settings
        from segapp.ui import create_app

        if app is None:
            d = Path(tempfile.mkdtemp(prefix="segapp-fuzz-map-"))
            app = create_app(Settings(data_dir=d / "data", cache_dir=d / "cache"))
        self.app = app

    def body(self, name: str, values: dict, changed: list[str]) -> bytes:
        from segapp.ui.guard import callback_request

        return json.dumps(callback_request(self.app.callback_map, name, values, changed)).encode()


class Server:
    """``app.py`` in a subprocess on a free port, with its own data and cache directories."""

    def __init__(self, work: Path, env_extra: dict | None = None):
        self.work = work
        self.data = work / "server-data"
        self.log_path = work / "server.log"
        self.env = {**os.environ, "PORT": str(free_port()), "HOST": "127.0.0.1", "SEGAPP_DATA_DIR": str(self.data),
                    "SEGAPP_CACHE_DIR": str(work / "server-cache"), **(env_extra or {})}
        self.proc = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def start(self):
        import requests

        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.3)
        raise RuntimeError("the server did not start in 120 s")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class MemoryWatch:
    """Peak RSS (MB) of a process and its children, sampled every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.02):
        import psutil

        self.proc, self.every, self.peak, self._stop = psutil.Process(pid), every, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def rss(self) -> float:
        import psutil

        total = 0
        try:
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            return 0.0
        return total / 2**20

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.every)

    def reset(self) -> float:
        self.peak = self.rss()
        return self.peak

    def cpu(self) -> float:
        """CPU seconds used so far by the process and its children."""
        import psutil

        total = 0.0
        try:
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    t = p.cpu_times()
                    total += t.user + t.system
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        return total

    def stop(self):
        self._stop.set()
        self.thread.join(1)


def toasts(resp: dict | None) -> list[tuple[str, str]]:
    """``[(header or icon, text)]`` of the toasts a callback response adds to the page."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "Toast" or node.get("namespace") == "dash_bootstrap_components" and \
                    node.get("type") == "Toast":
                props = node.get("props", {})
                found.append((str(props.get("header") or props.get("icon") or ""), _plain(props.get("children"))))
                return
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk((resp or {}).get("sideUpdate"))
    return found


def _plain(children) -> str:
    if isinstance(children, str):
        return children
    if isinstance(children, list):
        return " ".join(_plain(c) for c in children)
    if isinstance(children, dict):
        return _plain(children.get("props", {}).get("children"))
    return "" if children is None else str(children)


def classify_http(status, resp, new_tracebacks: int) -> tuple[str, str]:
    """``(outcome, detail)`` of one POST."""
    if status == "timeout":
        return "hang", ""
    if status == "down":
        return "crash", ""
    if new_tracebacks:
        return "traceback", "traceback in the server log"
    if status >= 500:
        return "http-500", ""
    if 400 <= status < 500:
        return "refused-4xx", str(status)
    if status == 204:
        return "ignored", ""
    shown = toasts(resp)
    if any(text.startswith("Unexpected error") for _, text in shown):
        return "traceback", next(t for _, t in shown if t.startswith("Unexpected error"))[:160]
    if any(head not in ("", "success", "info") and "loaded" not in head.lower() for head, _ in shown):
        return "message", "; ".join(t for _, t in shown)[:160]
    return "accepted", "; ".join(t for _, t in shown)[:160]


class WebTarget:
    """POSTs callback requests to a server (``post_raw``), in-process (Flask test client) or over HTTP."""

    def __init__(self, server: Server | None = None, app=None):
        self.server, self.app = server, app
        self.requests = Requests(app)
        if app is not None:
            self.client = app.server.test_client()

    def post_raw(self, body: bytes, timeout: float = TIMEOUT):
        if self.app is not None:
            r = self.client.post("/_dash-update-component", data=body, content_type="application/json")
            return r.status_code, (r.get_json(silent=True) if r.status_code == 200 else None)
        import requests

        try:
            r = requests.post(self.server.url + "/_dash-update-component", data=body, timeout=timeout,
                              headers={"Content-Type": "application/json"})
        except requests.Timeout:
            return "timeout", None
        except requests.ConnectionError:
            return ("down", None) if not self.server.alive() else (413, None)
        try:
            return r.status_code, (r.json() if r.status_code == 200 else None)
        except ValueError:
            return r.status_code, None

    def call(self, name: str, values: dict, changed: list[str], timeout: float = TIMEOUT):
        return self.post_raw(self.requests.body(name, values, changed), timeout)

    def store_dir(self) -> Path:
        return Path(self.server.data if self.server else self.app.server.extensions["segapp"].settings.data_dir)


def _bare(sid: str) -> str:
    return sid.split(".", 1)[0]


def new_session(target: WebTarget, seed: int, strokes: bool = True) -> dict:
    """A session with one image (and two strokes): ``{"sid", "cur"}``."""
    _, resp = target.call("start_session", {"session-id.data": None}, ["session-id.modified_timestamp"])
    sid = resp["response"]["session-id"]["data"]
    img = F.sample_image()
    img = np.roll(img, seed * 7, axis=1)
    _, resp = target.call("upload_images", {"upload-images.contents": [F.uri(F.png(img))],
                                            "upload-images.filename": [f"base-{seed}.png"], "session-id.data": sid},
                          ["upload-images.contents"])
    cur = resp["response"]["current-image"]["data"]
    if strokes:
        shapes = [F._path("M2,2L40,2"), F._path(f"M{20 + seed},20L{30 + seed},20", 2)]
        target.call("save_strokes", {"canvas.relayoutData": {"shapes": shapes}, "session-id.data": sid,
                                     "current-image.data": cur, "classes.data": CLASSES,
                                     "show-annotations.value": True}, ["canvas.relayoutData"])
    return {"sid": sid, "cur": cur}


def snapshot(target: WebTarget, sess: dict) -> dict:
    """What must survive: the session's images (pixels) and strokes, read from the server's store."""
    from segapp.store import LocalStore
    from segapp.ui.session import Session, key

    s = Session(LocalStore(target.store_dir()), _bare(sess["sid"]))
    return {"images": {m["id"]: s.stack(m["id"]).tobytes() for m in s.images()},
            "shapes": {m["id"]: s.shapes(key(m["id"], 0)) for m in s.images()}}


def http_calls(case, ctx: dict) -> list[tuple[str, str, dict, list[str]]]:
    """``[(channel, callback, values, changed)]`` for one case."""
    victim, state = ctx["victim"], {"classes.data": CLASSES, "show-annotations.value": True}
    sid, cur = victim["sid"], victim["cur"]
    k = case.kind
    if k == "image":
        return [("http upload image", "upload_images", {"upload-images.contents": [F.uri(case.data)],
                 "upload-images.filename": [case.name + ".png"], "session-id.data": sid}, ["upload-images.contents"])]
    if k == "model":
        return [("http upload model", "upload_model", {"model-upload.contents": F.uri(case.data,
                 "application/octet-stream"), "model-upload.filename": case.name + ".segapp",
                 "session-id.data": ctx["model_victim"]["sid"]}, ["model-upload.contents"])]
    if k == "labels":
        ev = ctx["eval_victim"]
        return [("http upload ground truth", "evaluate", {"gt-upload.contents": F.uri(case.data),
                 "gt-upload.filename": case.name + ".png", "session-id.data": ev["sid"],
                 "current-image.data": ev["cur"], "classes.data": CLASSES}, ["gt-upload.contents"])]
    if k == "upload":
        names = case.meta.get("names") or ["x.png"]
        return [("http upload image", "upload_images", {"upload-images.contents": case.data,
                 "upload-images.filename": names, "session-id.data": sid}, ["upload-images.contents"])]
    if k in ("shapes", "relayout"):
        relayout = {"shapes": case.data} if k == "shapes" else case.data
        return [("http save strokes", "save_strokes", {**state, "canvas.relayoutData": relayout,
                 "session-id.data": sid, "current-image.data": cur}, ["canvas.relayoutData"])]
    if k == "session":
        good = [F.uri(F.png(F.sample_image()))]
        return [("http start session", "start_session", {"session-id.data": case.data},
                 ["session-id.modified_timestamp"]),
                ("http thumbnails", "show_thumbnails", {"session-id.data": case.data, "current-image.data": None},
                 ["images-version.data"]),
                ("http upload image", "upload_images", {"upload-images.contents": good,
                 "upload-images.filename": ["chosen.png"], "session-id.data": case.data}, ["upload-images.contents"])]
    if k == "current":
        value = json.loads(json.dumps(case.data).replace('"SELF"', json.dumps(cur["image"])))
        if case.name == "current-other-id":  # another session's image: must be neither shown, edited nor deleted
            value = {"image": ctx["baseline"][0]["cur"]["image"], "plane": 0}
        common = {**state, "session-id.data": sid, "current-image.data": value}
        return [("http canvas", "build_canvas", {**common, "active-class.data": 1, "stroke-width.value": 5,
                 "overlay-mode.value": "segmentation", "overlay-opacity.value": 0.5, "canvas-scale.data": 1.0},
                 ["current-image.data"]),
                ("http save strokes", "save_strokes", {**common, "canvas.relayoutData":
                 {"shapes": [F._path("M2,2L9,2")]}}, ["canvas.relayoutData"]),
                ("http delete image", "delete_image", {**common, "delete-image.n_clicks": 1,
                 "images-version.data": 1}, ["delete-image.n_clicks"])]
    return []


def run_http_case(target: WebTarget, case, ctx: dict, watch: MemoryWatch | None) -> list[dict]:
    results = []
    if case.kind == "raw":
        calls = [("http raw body", None, case.data, None)]
    elif case.kind == "raw-upload":
        payload = '{"output":"x","outputs":{},"inputs":[{"id":"upload-images","property":"contents","value":["data:' \
                  'image/png;base64,' + "A" * case.data + '"]}],"changedPropIds":[]}'
        calls = [("http upload image", None, payload.encode(), None)]
    else:
        calls = http_calls(case, ctx)
    for channel, name, values, changed in calls:
        before = target.server.log_text().count("Traceback") if target.server else 0
        if watch:
            base, cpu0 = watch.reset(), watch.cpu()
        t0 = time.perf_counter()
        status, resp = target.post_raw(values) if name is None else target.call(name, values, changed)
        elapsed = time.perf_counter() - t0
        cpu = watch.cpu() - cpu0 if watch else 0.0
        after = target.server.log_text().count("Traceback") if target.server else 0
        outcome, detail = classify_http("timeout" if cpu > HANG_CPU else status, resp, after - before)
        if case.kind == "session" and name == "start_session" and outcome == "accepted":
            new = (resp or {}).get("response", {}).get("session-id", {}).get("data")
            outcome = "replaced" if isinstance(new, str) and new != case.data and "." in new else "accepted"
        shown = ((resp or {}).get("response", {}).get("current-image") or {}).get("data")
        if name == "upload_images" and isinstance(shown, dict):  # the browser then draws the new image
            calls.append(("http canvas after upload", "build_canvas", {
                "session-id.data": values["session-id.data"], "current-image.data": shown, "classes.data": CLASSES,
                "active-class.data": 1, "stroke-width.value": 5, "overlay-mode.value": "segmentation",
                "overlay-opacity.value": 0.5, "show-annotations.value": True, "canvas-scale.data": 1.0},
                ["current-image.data"]))
        results.append({"category": case.category, "case": case.name, "channel": channel, "outcome": outcome,
                        "detail": detail, "seconds": round(elapsed, 2), "cpu": round(cpu, 2), "expect": case.expect,
                        "peak_mb": round(watch.peak, 1) if watch else None,
                        "delta_mb": round(watch.peak - base, 1) if watch else None})
        if status == "down":
            target.server.stop()
            target.server.start()
            watch and watch.stop()
            if watch:
                ctx["watch"] = MemoryWatch(target.server.proc.pid)
    return results


WEIRD = [None, -1, 10**30, 1e308, "x" * 5000, [1, 2], {"a": 1}, True, "../x", [], {}, "", 0.5, [[[]]]]
SKIP = ("extract_and_train", "apply_all", "measure_objects")  # background jobs: they run through the job protocol


def payload_calls(target: WebTarget, ctx: dict, every: int = 1) -> list[tuple[str, str, dict, list[str]]]:
    """Every input and state of every (non-background) callback, in turn replaced by each of :data:`WEIRD`,
    the others holding values the page would send: ``[(case name, callback, values, changed)]``."""
    v = ctx["victim"]
    plausible = {"session-id.data": v["sid"], "current-image.data": v["cur"], "classes.data": CLASSES,
                 "active-class.data": 1, "stroke-width.value": 5, "overlay-mode.value": "segmentation",
                 "overlay-opacity.value": 0.5, "show-annotations.value": True, "canvas-scale.data": 1.0,
                 "images-version.data": 1, "extractor.value": "classical", "sigma-range.value": [0, 3],
                 "trees.value": 50, "depth.value": 10, "normalization.value": "percentile",
                 "train-all-images.value": True, "live-update.value": True}
    calls, n = [], 0
    for spec in target.requests.app.callback_map.values():
        name = getattr(spec.get("callback"), "__name__", "")
        if not name or spec.get("background") or name in SKIP or name in ("delete_image",):
            continue
        first = spec["inputs"][0]
        changed = [f"{first['id']}.{first['property']}"] if isinstance(first["id"], str) else []
        for dep in spec["inputs"] + spec["state"]:
            if not isinstance(dep["id"], str):
                continue
            for i, weird in enumerate(WEIRD):
                n += 1
                if n % every == 0:
                    calls.append((f"{name}:{dep['id']}.{dep['property']}={i}", name,
                                  {**plausible, f"{dep['id']}.{dep['property']}": weird}, changed))
    return calls


def run_payloads(target: WebTarget, ctx: dict, watch, every: int = 1) -> list[dict]:
    """The ``payloads`` category: :func:`payload_calls` over the callback endpoint."""
    results = []
    for case, name, values, changed in payload_calls(target, ctx, every):
        before = target.server.log_text().count("Traceback") if target.server else 0
        cpu0 = watch.cpu() if watch else 0.0
        base = watch.reset() if watch else 0.0
        t0 = time.perf_counter()
        status, resp = target.call(name, values, changed)
        cpu = watch.cpu() - cpu0 if watch else 0.0
        after = target.server.log_text().count("Traceback") if target.server else 0
        outcome, detail = classify_http("timeout" if cpu > HANG_CPU else status, resp, after - before)
        results.append({"category": "payloads", "case": case, "channel": f"http {name}", "outcome": outcome,
                        "detail": detail, "seconds": round(time.perf_counter() - t0, 2), "cpu": round(cpu, 2),
                        "expect": "either", "peak_mb": round(watch.peak, 1) if watch else None,
                        "delta_mb": round(watch.peak - base, 1) if watch else None})
    return results


def prepare(target: WebTarget) -> dict:
    """Sessions the corpus aims at, and three bystander sessions that must come through unchanged."""
    from segapp.store import LocalStore
    from segapp.ui.session import Session, key

    ctx = {"victim": new_session(target, 1), "model_victim": new_session(target, 2),
           "eval_victim": new_session(target, 3, strokes=False),
           "baseline": [new_session(target, 10 + i) for i in range(3)]}
    ev = ctx["eval_victim"]
    s = Session(LocalStore(target.store_dir()), _bare(ev["sid"]))
    labels = F.sample_labels()
    s.put_result(key(ev["cur"]["image"], 0), np.where(labels == 2, 2, 1).astype(np.uint8),
                 np.zeros(labels.shape + (2,), np.float32), 1, [1, 2])
    ctx["before"] = [snapshot(target, b) for b in ctx["baseline"]]
    return ctx


def check_sessions(target: WebTarget, ctx: dict, corpus) -> dict:
    """Bystander sessions unchanged; no data stored under any client-chosen id."""
    lost = sum(1 for b, snap in zip(ctx["baseline"], ctx["before"]) if snapshot(target, b) != snap)
    from segapp.store import _SESSION_RE

    chosen = {_bare(c.data) for c in corpus if c.kind == "session" and isinstance(c.data, str)}
    root = target.store_dir()
    owned = sorted(sid for sid in chosen if _SESSION_RE.match(sid) and (root / sid).exists())
    broken = []
    for name in ("victim", "model_victim", "eval_victim"):  # the sessions that took every hostile input still work
        sess = ctx[name]
        state = {"session-id.data": sess["sid"], "current-image.data": sess["cur"], "classes.data": CLASSES,
                 "show-annotations.value": True}
        checks = [target.call("save_strokes", {**state, "canvas.relayoutData": {"shapes": [F._path("M2,40L30,40")]}},
                              ["canvas.relayoutData"]),
                  target.call("build_canvas", {**state, "active-class.data": 1, "stroke-width.value": 5,
                                               "overlay-mode.value": "segmentation", "overlay-opacity.value": 0.5,
                                               "canvas-scale.data": 1.0}, ["current-image.data"])]
        if any(classify_http(st, r, 0)[0] != "accepted" for st, r in checks):
            broken.append(name)
    issued = [_bare(b["sid"]) for b in (*ctx["baseline"], ctx["victim"], ctx["model_victim"], ctx["eval_victim"])]
    log = target.server.log_text() if target.server else ""
    return {"bystander_sessions": len(ctx["baseline"]), "lost_or_changed": lost, "targeted_sessions_broken": broken,
            "chosen_ids_with_data": owned,
            "session_ids_in_server_log": sum(log.count(sid) for sid in issued)}


# -- report -----------------------------------------------------------------------------------------------------
def table(results: list[dict], title: str) -> str:
    counts = collections.defaultdict(collections.Counter)
    for r in results:
        counts[r["category"]][r["outcome"]] += 1
    cols = [o for o in OUTCOMES if any(c[o] for c in counts.values())] or ["message"]
    for f in FAILURES:
        if f not in cols:
            cols.append(f)
    width = max([len(c) for c in counts] + [8])
    lines = [title, f"{'category':<{width}} " + " ".join(f"{c:>11}" for c in cols) + f" {'runs':>6}"]
    total = collections.Counter()
    for cat in sorted(counts):
        total.update(counts[cat])
        lines.append(f"{cat:<{width}} " + " ".join(f"{counts[cat][c]:>11}" for c in cols)
                     + f" {sum(counts[cat].values()):>6}")
    lines.append(f"{'total':<{width}} " + " ".join(f"{total[c]:>11}" for c in cols) + f" {sum(total.values()):>6}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="bomb size (1 = inflates to 1 GiB)")
    p.add_argument("--only", help="comma-separated categories")
    p.add_argument("--limit", type=int, help="at most N cases per category (quick look)")
    p.add_argument("--no-cli", action="store_true")
    p.add_argument("--no-http", action="store_true")
    p.add_argument("--jobs", type=int, default=2, help="CLI runs in parallel")
    p.add_argument("--json", help="write every result to this file")
    args = p.parse_args(argv)
    t0 = time.time()
    corpus = F.corpus(args.scale)
    if args.only:
        corpus = [c for c in corpus if c.category in args.only.split(",")]
    if args.limit:
        seen = collections.Counter()
        corpus = [c for c in corpus if (seen.update([c.category]) or seen[c.category] <= args.limit)]
    print(f"{len(corpus)} cases: " + ", ".join(f"{k} {v}" for k, v in
                                              sorted(collections.Counter(c.category for c in corpus).items())),
          f"(generated in {time.time() - t0:.0f} s; load {os.getloadavg()[0]:.1f})", flush=True)
    work = Path(tempfile.mkdtemp(prefix="segapp-fuzz-"))
    results, report = [], {}
    if not args.no_cli:
        files = {"image": str(work / "good.png"), "labels": str(work / "good_labels.png"),
                 "model": str(work / "good.segapp")}
        Path(files["image"]).write_bytes(F.png(F.sample_image()))
        Path(files["labels"]).write_bytes(F.png(np.where(F.sample_labels() == 2, 2, 1).astype(np.uint8)))
        Path(files["model"]).write_bytes(F.good_model())
        jobs = [(c, ch, argv) for c in corpus for ch, argv in cli_commands(c, files, work)]
        peak_cli = 0.0

        def one(job):
            c, ch, argv = job
            rc, err, sec, cpu, mb = run_cli(argv)
            return {"category": c.category, "case": c.name, "channel": ch, "outcome": classify_cli(rc, err, cpu),
                    "detail": err.strip()[-200:], "seconds": round(sec, 2), "cpu": round(cpu, 2), "expect": c.expect,
                    "peak_mb": mb}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(args.jobs) as pool:
            for r in pool.map(one, jobs):
                results.append(r)
                peak_cli = max(peak_cli, r["peak_mb"])
        report["cli_peak_mb"] = round(peak_cli)
        print(f"CLI: {len(jobs)} runs in {time.time() - t0:.0f} s", flush=True)
    if not args.no_http:
        server = Server(work)
        try:
            target = WebTarget(server)
            ctx = prepare(target)
            ctx["watch"] = MemoryWatch(server.proc.pid)
            idle = ctx["watch"].reset()
            peak = (0.0, "")
            for c in corpus:
                for r in run_http_case(target, c, ctx, ctx["watch"]):
                    results.append(r)
                    if r["peak_mb"] and r["peak_mb"] > peak[0]:
                        peak = (r["peak_mb"], f"{r['category']}/{r['case']}")
            if not args.only or "payloads" in args.only.split(","):
                for r in run_payloads(target, ctx, ctx["watch"]):
                    results.append(r)
                    if r["peak_mb"] and r["peak_mb"] > peak[0]:
                        peak = (r["peak_mb"], f"{r['category']}/{r['case']}")
            ctx["watch"].stop()
            report.update({"server_idle_mb": round(idle), "server_peak_mb": round(peak[0]), "peak_case": peak[1]},
                          **check_sessions(target, ctx, corpus))
        finally:
            server.stop()
    cli = [r for r in results if r["channel"].startswith("cli")]
    web = [r for r in results if r["channel"].startswith("http")]
    print()
    if cli:
        print(table(cli, "CLI (subprocess): runs per category and outcome"), "\n")
    if web:
        print(table(web, "Web app (callbacks over HTTP, real server): runs per category and outcome"), "\n")
    print(table(results, "All runs"), "\n")
    for k, v in report.items():
        print(f"{k:>24}: {v}")
    bad = [r for r in results if r["outcome"] in FAILURES]
    slow = sorted(results, key=lambda r: -r.get("cpu", 0))[:5]
    print(f"{'failures':>24}: {len(bad)}")
    for r in bad[:40]:
        print(f"   {r['outcome']:>9} {r['channel']:<26} {r['category']}/{r['case']}: {r['detail'][:150]}")
    print(f"{'most CPU':>24}: " + ", ".join(f"{r['channel']} {r['category']}/{r['case']} {r['cpu']} s "
                                             f"({r['seconds']} s wall)" for r in slow))
    if web:
        big = sorted(web, key=lambda r: -(r["delta_mb"] or 0))[:5]
        print(f"{'largest memory rises':>24}: " + ", ".join(f"{r['category']}/{r['case']} +{r['delta_mb']} MB"
                                                          for r in big))
    print(f"{'cases':>24}: {len(corpus)} ({len(results)} runs) in {time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "report": report}, indent=1))
    ok = not bad and not report.get("lost_or_changed") and not report.get("chosen_ids_with_data") \
        and not report.get("targeted_sessions_broken") \
        and not report.get("session_ids_in_server_log")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
