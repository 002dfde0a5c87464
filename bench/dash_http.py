"""A browser tab of a Dash app over plain HTTP: what dash-renderer sends, without a browser.

:class:`DashPage` loads the page like a browser does (``/`` for the page config
and its signed ``end_id``, ``/_dash-layout``, ``/_dash-dependencies``), runs the
initial callbacks, and then, for every property a user changes
(:meth:`DashPage.set`), posts the server-side callbacks that property triggers
to ``/_dash-update-component`` and follows the cascade of outputs that trigger
further callbacks.  Background callbacks are polled with their signed
``cacheKey``/``job`` handles until they answer, as the renderer does.

Simplifications (documented, deliberate): callbacks fire one after another
(the renderer runs independent ones side by side), clientside callbacks and
pattern-matching (``ALL``/``MATCH``) callbacks are not run, and ``Patch``
outputs are stored as received, not applied.  Every request is reported to
``on_request(label, seconds, status)`` so a load test can time each kind.

Used by ``bench/load.py`` and the end-to-end tests of the distributed web app.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque

import requests

_CONFIG = re.compile(r'<script id="_dash-config" type="application/json"[^>]*>(.*?)</script>', re.S)


class DashError(RuntimeError):
    """A callback answered with an HTTP error (the message has the status and the start of the body)."""


def _outputs(spec: str) -> list[tuple[str, str]]:
    """``"..a.b...c.d@h.."`` → ``[("a", "b"), ("c", "d@h")]`` (a single output has no dots around it)."""
    parts = spec[2:-2].split("...") if spec.startswith("..") else [spec]
    return [tuple(p.rsplit(".", 1)) for p in parts]


def _plain(prop: str) -> str:
    return prop.split("@", 1)[0]


class DashPage:
    """One page load of a Dash app.

    Parameters
    ----------
    base : str
        The app's URL, e.g. ``http://127.0.0.1:8050/``.
    http : requests.Session, optional
        One per page (keep-alive); a new one by default.
    timeout : float
        Seconds one request may take; a background callback may take ``job_timeout``.
    on_request : callable, optional
        ``on_request(label, seconds, status)`` for every HTTP request made
        (``label`` names the callback: its first input and first output).
    """

    def __init__(self, base: str, http: requests.Session | None = None, *, timeout: float = 120.0,
                 job_timeout: float = 600.0, on_request=None):
        self.base = base.rstrip("/") + "/"
        self.http = http or requests.Session()
        self.timeout, self.job_timeout = timeout, job_timeout
        self.on_request = on_request or (lambda label, seconds, status: None)
        html = self._get("", "page").text
        found = _CONFIG.search(html)
        self.config = json.loads(found.group(1)) if found else {}
        self.props: dict[tuple[str, str], object] = {}
        self.side_updates: list[dict] = []  # every set_props the server sent (toasts, ...), in order
        self._collect(self._get("_dash-layout", "layout").json())
        self.callbacks = [c for c in self._get("_dash-dependencies", "dependencies").json()
                          if not c.get("clientside_function") and self._plain_ids(c)]
        for c in self.callbacks:
            c["_outs"] = _outputs(c["output"])
            c["_label"] = f"{c['inputs'][0]['id']}.{c['inputs'][0]['property']} -> " \
                          f"{c['_outs'][0][0]}.{_plain(c['_outs'][0][1])}"

    # -- plumbing ---------------------------------------------------------------------------
    def _get(self, path: str, label: str):
        t0 = time.perf_counter()
        r = self.http.get(self.base + path, timeout=self.timeout)
        self.on_request(label, time.perf_counter() - t0, r.status_code)
        if r.status_code >= 400:
            raise DashError(f"GET /{path}: HTTP {r.status_code}: {r.text[:300]}")
        return r

    @staticmethod
    def _plain_ids(cb) -> bool:
        ids = [d["id"] for d in cb["inputs"] + cb.get("state", [])] + [o for o, _ in _outputs(cb["output"])]
        return all(isinstance(i, str) and not i.startswith("{") for i in ids)

    def _collect(self, node) -> None:
        if isinstance(node, list):
            for n in node:
                self._collect(n)
        elif isinstance(node, dict) and "props" in node:
            props = node["props"]
            if isinstance(props.get("id"), str):
                for k, v in props.items():
                    if k != "children" or not isinstance(v, (dict, list)):
                        self.props[(props["id"], k)] = v
            for v in props.values():
                if isinstance(v, (dict, list)):
                    self._collect(v)

    def value(self, cid: str, prop: str):
        """The current value of a property as this page knows it."""
        return self.props.get((cid, prop))

    # -- callbacks --------------------------------------------------------------------------
    def load(self) -> None:
        """Run the callbacks a page load runs (those without ``prevent_initial_call``) and their cascades."""
        initial = [c for c in self.callbacks if not c.get("prevent_initial_call")]
        produced = {(o, _plain(p)) for c in initial for o, p in c["_outs"]}
        first = [c for c in initial if not any((d["id"], d["property"]) in produced for d in c["inputs"])]
        later = [c for c in initial if c not in first]
        self._run(deque((c, [f"{c['inputs'][0]['id']}.{c['inputs'][0]['property']}"]) for c in first + later))

    def set(self, cid: str, prop: str, value) -> dict:
        """A user changes ``cid.prop`` to ``value``: run what it triggers; returns every property that changed."""
        self.props[(cid, prop)] = value
        return self._run(self._triggered({(cid, prop)}))

    def _triggered(self, changed: set) -> deque:
        todo = deque()
        for c in self.callbacks:
            hit = [f"{d['id']}.{d['property']}" for d in c["inputs"] if (d["id"], d["property"]) in changed]
            if hit:
                todo.append((c, hit))
        return todo

    def _run(self, todo: deque) -> dict:
        changes: dict = {}
        rounds = 0
        while todo:
            rounds += 1
            if rounds > 500:
                raise DashError("callback cascade did not settle after 500 callbacks")
            cb, hit = todo.popleft()
            out = self._call(cb, hit)
            changes.update(out)
            pending = {id(c) for c, _ in todo}
            for c, h in self._triggered(set(out)):
                if id(c) not in pending:
                    todo.append((c, h))
        return changes

    def _body(self, cb, hit) -> dict:
        def vals(deps):
            return [{"id": d["id"], "property": d["property"], "value": self.props.get((d["id"], d["property"]))}
                    for d in deps]

        outs = [{"id": o, "property": p} for o, p in cb["_outs"]]
        return {"output": cb["output"], "outputs": outs if cb["output"].startswith("..") else outs[0],
                "inputs": vals(cb["inputs"]), "state": vals(cb.get("state", [])), "changedPropIds": hit}

    def _post(self, cb, body, args: dict) -> requests.Response:
        params = {"endId": self.config.get("end_id"), **args} if self.config.get("end_id") else args
        label = cb["_label"] + (" (poll)" if "job" in args else "")
        t0 = time.perf_counter()
        try:
            r = self.http.post(self.base + "_dash-update-component", params=params, json=body, timeout=self.timeout)
        except requests.RequestException:
            self.on_request(label, time.perf_counter() - t0, 599)  # no answer (timeout, connection lost)
            raise
        self.on_request(label, time.perf_counter() - t0, r.status_code)
        if r.status_code >= 400:
            raise DashError(f"{cb['_label']}: HTTP {r.status_code}: {r.text[:300]}")
        return r

    def _call(self, cb, hit) -> dict:
        body = self._body(cb, hit)
        r = self._post(cb, body, {})
        if r.status_code == 204:
            return {}
        data = r.json()
        if cb.get("background") and "cacheKey" in data:
            data = self._follow_job(cb, body, data)
            if data is None:
                return {}
        changed = {}
        for cid, props in (data.get("response") or {}).items():
            for prop, value in props.items():
                self.props[(cid, _plain(prop))] = value
                changed[(cid, _plain(prop))] = value
        for cid, props in (data.get("sideUpdate") or {}).items():
            self.side_updates.append({cid: props})
            for prop, value in props.items():
                self.props[(cid, prop)] = value
                changed[(cid, prop)] = value
        return changed

    def _follow_job(self, cb, body, handles) -> dict | None:
        """Poll a background callback until it answers (``None``: it ended without output)."""
        args = {"cacheKey": handles["cacheKey"], "job": handles["job"]}
        empty = {**body, "inputs": [{**d, "value": None} for d in body["inputs"]],
                 "state": [{**d, "value": None} for d in body["state"]]}
        interval = (cb.get("background") or {}).get("interval", 1000) / 1000
        deadline = time.monotonic() + self.job_timeout
        while time.monotonic() < deadline:
            time.sleep(interval)
            r = self._post(cb, empty, args)
            if r.status_code == 204:
                return None
            data = r.json()
            if "response" in data:
                return data
            for cid, props in (data.get("sideUpdate") or {}).items():  # set_props while it runs (toasts)
                self.side_updates.append({cid: props})
                for prop, value in props.items():
                    self.props[(cid, prop)] = value
            for key, value in (data.get("progress") or {}).items():
                cid, prop = key.rsplit(".", 1)
                self.props[(cid, prop)] = value
        raise DashError(f"{cb['_label']}: background job gave no answer within {self.job_timeout:g} s")
