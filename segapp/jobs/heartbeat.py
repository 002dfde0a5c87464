"""Worker heartbeat: renew the leases of the jobs a worker holds, and announce the worker.

Why: with Redis as the broker, a job taken by a worker stays in Kombu's
``unacked`` hash until the worker acknowledges it (``acks_late``: when it
finishes).  Kombu hands it to another worker once its entry in
``unacked_index`` (a sorted set scored by delivery time) is older than the
transport's ``visibility_timeout``.  A single timeout cannot be both short
(a killed worker's job should restart within a minute) and longer than the
longest job (a live job must never run twice).  So the timeout is a *lease*:

- every worker's main process runs :class:`Heartbeat`, a thread that every
  ``interval`` seconds re-scores the ``unacked_index`` entries of the jobs it
  holds (``ZADD … XX``: never re-creates an entry that was just acknowledged);
- Kombu's own sweep (``restore_visible``, every few seconds in every worker)
  then restores only entries nobody renewed for ``lease`` seconds — the jobs of
  a worker that was killed, lost its machine or its network.  A worker that
  loses its Redis connection cancels its jobs itself
  (``worker_cancel_long_running_tasks_on_connection_loss``), so a job is not
  run twice when the lease of a partitioned worker expires.

The same beat announces the worker in ``segapp:workers`` (node name → time the
announcement expires) and ``segapp:workers:info`` (its queues, its direct queue,
GPU or not), which routing reads instead of broadcasting ``inspect`` (busy
workers answer a broadcast late; a registry entry is always there), and moves
jobs left in the direct queue of a worker whose announcement expired to
``default`` (:meth:`Heartbeat.rescue`).

Examples
--------
>>> direct_queue("cpu-12@host-a")
'segapp.node.cpu-12@host-a'
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

log = logging.getLogger("segapp.jobs")

WORKERS_KEY = "segapp:workers"            # sorted set: node name -> time its announcement expires
WORKERS_INFO_KEY = "segapp:workers:info"  # hash: node name -> JSON facts (queues, direct queue, gpu...)
FORGET_AFTER_S = 3600                     # entries of workers gone this long are removed
RESCUE_QUEUE = "default"                  # where jobs left in a vanished worker's direct queue go (all consume it)


def _priority_lists(src: str, dst: str) -> list[tuple[str, str]]:
    """The Redis lists of two queues, priority by priority (Kombu keeps one list per priority step)."""
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    return [(src, dst) if p == 0 else (f"{src}{Channel.sep}{p}", f"{dst}{Channel.sep}{p}") for p in PRIORITY_STEPS]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def direct_queue(node: str) -> str:
    """The queue only worker ``node`` consumes (jobs that must run where a session's features are)."""
    return f"segapp.node.{node}"


def held_delivery_tags() -> list[str]:
    """Delivery tags of the messages this worker process holds (reserved or running)."""
    from celery.worker import state

    for _ in range(5):  # the consumer thread may add a request while we copy the sets
        try:
            requests = list(state.reserved_requests) + list(state.active_requests)
            break
        except RuntimeError:
            time.sleep(0.01)
    else:
        return []
    tags = {getattr(getattr(r, "message", None), "delivery_tag", None) for r in requests}
    return sorted(t for t in tags if t)


def unacked_index_key(app) -> str:
    """Name of Kombu's ``unacked_index`` sorted set for this app's broker options."""
    opts = app.conf.broker_transport_options or {}
    return (opts.get("global_keyprefix") or "") + opts.get("unacked_index_key", "unacked_index")


class Heartbeat:
    """Lease renewal and announcement of one worker (runs in its main process).

    Parameters
    ----------
    client : redis.Redis
        Client of the broker's Redis.
    node : str
        Celery node name of the worker.
    info : dict
        Facts announced with it (``queues``, ``direct``, ``gpu``...).
    interval : float
        Seconds between beats.
    index_key : str
        Kombu's ``unacked_index`` key.
    tags : callable
        Returns the delivery tags to renew (default :func:`held_delivery_tags`).
    """

    def __init__(self, client, node: str, info: dict, *, interval: float, index_key: str = "unacked_index",
                 tags=held_delivery_tags):
        self.client, self.node, self.interval = client, node, float(interval)
        self.info = {**info, "node": node, "pid": os.getpid(), "host": socket.gethostname()}
        self.index_key, self._tags = index_key, tags
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None

    def beat(self, now: float | None = None) -> int:
        """Renew the leases and the announcement once; returns the number of leases renewed."""
        now = time.time() if now is None else now
        tags = self._tags()
        pipe = self.client.pipeline(transaction=False)
        for tag in tags:
            pipe.zadd(self.index_key, {tag: now}, xx=True, ch=True)
        pipe.zadd(WORKERS_KEY, {self.node: now + 3 * self.interval})
        pipe.hset(WORKERS_INFO_KEY, self.node, json.dumps({**self.info, "beat": now}))
        pipe.zrangebyscore(WORKERS_KEY, "-inf", now - FORGET_AFTER_S)
        pipe.zrangebyscore(WORKERS_KEY, now - FORGET_AFTER_S, now)
        replies = pipe.execute()
        gone, dead = replies[-2], replies[-1]
        if gone:
            self.client.zrem(WORKERS_KEY, *gone)
            self.client.hdel(WORKERS_INFO_KEY, *gone)
        if dead:
            self.rescue(dead)
        return sum(int(r) for r in replies[:len(tags)])  # XX CH: 1 per lease that existed

    def rescue(self, dead: list, limit: int = 1000) -> int:
        """Move the jobs waiting in the direct queues of vanished workers to ``default``; returns how many.

        A job sent to the worker that held a session's features (its direct queue)
        while that worker was dying would otherwise wait for ever; on ``default``
        another worker runs it (a quick retrain then reports the features missing
        and the web app extracts them again, with a progress bar).
        """
        infos = self.client.hmget(WORKERS_INFO_KEY, dead)
        total = 0
        for node, raw in zip(dead, infos):
            try:
                queue = json.loads(raw)["direct"] if raw else direct_queue(_text(node))
            except (ValueError, KeyError, TypeError):
                queue = direct_queue(_text(node))
            moved = 0
            for src, dst in _priority_lists(queue, RESCUE_QUEUE):
                while total + moved < limit and self.client.rpoplpush(src, dst) is not None:
                    moved += 1
            if moved:
                log.warning("moved %d job(s) waiting for vanished worker %s to the %r queue", moved, _text(node),
                            RESCUE_QUEUE)
            total += moved
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
                if self._failing_since is not None:
                    log.warning("heartbeat of %s restored", self.node)
                self._failing_since = None
            except Exception as e:  # Redis away: keep trying; Celery itself cancels jobs on connection loss
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning("heartbeat of %s failed (%s); leases of its jobs are not renewed", self.node, e)
            self._stop.wait(self.interval)

    def start(self) -> "Heartbeat":
        """Beat now, then every ``interval`` seconds in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="segapp-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self, forget: bool = True) -> None:
        """Stop beating; with ``forget`` end the announcement now (a clean shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if forget:
            try:  # expired now (not removed): the others move what still waits in its direct queue
                self.client.zadd(WORKERS_KEY, {self.node: time.time() - 1})
            except Exception:  # shutting down without Redis: the entry expires by itself
                pass


def live_workers(client, now: float | None = None) -> dict[str, dict]:
    """``{node: facts}`` of the workers whose announcement has not expired.

    Examples
    --------
    >>> class Fake:  # what a Redis client answers when no worker ever announced itself
    ...     def zrangebyscore(self, *a): return []
    >>> live_workers(Fake())
    {}
    """
    now = time.time() if now is None else now
    nodes = [n.decode() if isinstance(n, bytes) else n for n in client.zrangebyscore(WORKERS_KEY, now, "+inf")]
    if not nodes:
        return {}
    out = {}
    for node, raw in zip(nodes, client.hmget(WORKERS_INFO_KEY, nodes)):
        if raw:
            try:
                out[node] = json.loads(raw)
            except ValueError:
                continue
    return out
