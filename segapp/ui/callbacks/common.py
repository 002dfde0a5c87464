"""Helpers shared by the callback modules: the plain-function callback pattern, messages, session ids.

The pattern
-----------
A callback body is a module-level plain function of its named inputs and
states; it returns a dict of its named outputs.  :func:`callback_spec` attaches
Dash's flexible-signature arguments (``output=dict(...)``, ``inputs=dict(...)``,
``state=dict(...)``, ``background=...``) to the function without changing it,
and each module's ``register(app, services)`` calls :func:`wire`, which hands
every function to ``app.callback`` through a tiny adapter.  The adapter fills in
the keyword-only parameters a function declares that Dash cannot provide:

``services``  the process's :class:`~segapp.ui.session.Services`
``trigger``   ``ctx.triggered_id`` (which input fired; a dict for pattern-matching ids)
``clicked``   True when the trigger is a real click (pattern-matching buttons re-render with 0)
``notify``    :func:`notify`, which shows a toast (tests pass a recorder instead)

Background callbacks take Dash's ``set_progress`` as their first positional
parameter.  A test calls the function directly with all of these.

Examples
--------
>>> from dash import Input, Output
>>> @callback_spec(output=dict(text=Output("out", "children")), inputs=dict(n=Input("btn", "n_clicks")))
... def count(n, *, trigger):
...     return {"text": f"{n} clicks on {trigger}"}
>>> count(3, trigger="btn")
{'text': '3 clicks on btn'}
>>> sorted(count.dash_spec)
['inputs', 'output']
"""

from __future__ import annotations

import functools
import inspect
import logging
import re

from dash import Input, Output, Patch, ctx, set_props

from ...errors import SegappError
from .. import ids
from ..layout import toast

log = logging.getLogger("segapp.ui")
SHOW, HIDE = {}, {"display": "none"}
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}(\.[A-Za-z0-9_-]{43})?$")


def valid_session(sid) -> bool:
    """True for a well-formed session id: a store id, or the signed form the browser holds.

    Whether a signed id is genuine is checked where it enters (the callback adapter turns the
    browser's id into the store id, or None) and by ``Services.session``.

    Examples
    --------
    >>> valid_session("a" * 32), valid_session("../etc"), valid_session(None)
    (True, False, False)
    """
    return isinstance(sid, str) and bool(_SESSION_RE.match(sid))


def notify(message: str, kind: str = "danger", header: str | None = None) -> None:
    """Show a toast (from any callback, without declaring an output)."""
    patch = Patch()
    patch.append(toast(message, kind, header))
    set_props(ids.NOTICES, {"children": patch})


def on_error(err: Exception):
    """App-wide callback error handler: a toast instead of a stack trace; outputs unchanged.

    User errors (:class:`SegappError`) show their one-line message; anything
    else is logged with its traceback and shown as an unexpected error.
    """
    if isinstance(err, SegappError):
        notify(str(err), "warning" if "cancel" in str(err).lower() else "danger", "Could not do that")
    else:
        log.error("callback failed", exc_info=err)
        notify(f"Unexpected error ({type(err).__name__}: {err}). Your work is kept; details are in the server log.",
               "danger")
    return None


def bump(version) -> int:
    """The next value of a version counter kept in a ``dcc.Store`` (1 when unset or malformed).

    Examples
    --------
    >>> bump(None), bump(4), bump("x")
    (1, 5, 1)
    """
    return (version or 0) + 1 if isinstance(version, int) else 1


# -- the plain-function callback pattern ----------------------------------------------------------
def callback_spec(**spec):
    """Decorator: record ``app.callback`` keyword arguments on a plain function (returned unchanged).

    Parameters
    ----------
    **spec
        Exactly what ``app.callback`` takes, with the flexible signatures:
        ``output=dict(name=Output(...))``, ``inputs=dict(name=Input(...))``,
        ``state=dict(name=State(...))``, plus ``prevent_initial_call``, ``background`` etc.
        The input and state names are the function's parameter names; the output
        names are the keys of the dict the function returns.
    """
    def attach(fn):
        fn.dash_spec = spec
        return fn
    return attach


JOB_PROGRESS = [Output(ids.JOB_BAR, "value"), Output(ids.JOB_LABEL, "children"), Output(ids.JOB_FRACTION, "children")]


def canvas_job(label: str, *, disable: tuple[str, ...] = (), interval: int = 300) -> dict:
    """The :func:`callback_spec` arguments of a cancellable background job shown on the canvas banner.

    Every long job (first feature extraction, auto's choice, batch apply, measuring)
    uses the ONE banner over the canvas (:func:`segapp.ui.layout.job_banner`) and its
    one Cancel button; the function's ``set_progress`` is fed through :func:`banner_progress`.

    Parameters
    ----------
    label : str
        What the banner says from the moment the job starts (progress adds the details).
    disable : tuple of str
        Ids of the buttons disabled while the job runs.
    interval : int
        How often (ms) the browser polls for progress.

    Examples
    --------
    >>> spec = canvas_job("Measuring", disable=("go",), interval=250)
    >>> spec["background"], len(spec["running"]), spec["progress_default"], spec["cancel"][0].component_id
    (True, 3, [0, '', ''], 'job-cancel')
    """
    return dict(background=True, interval=interval, prevent_initial_call=True, progress=JOB_PROGRESS,
                progress_default=[0, "", ""],
                running=[(Output(ids.JOB_BANNER, "style"), SHOW, HIDE), (Output(ids.JOB_LABEL, "children"), label, "")]
                + [(Output(b, "disabled"), True, False) for b in disable],
                cancel=[Input(ids.JOB_CANCEL, "n_clicks")])


def banner_progress(set_progress, label: str):
    """A progress reporter ``report(fraction, detail="", count=None)`` that writes the canvas banner.

    Parameters
    ----------
    set_progress : callable
        Dash's ``set_progress`` of a :func:`canvas_job` callback (tests pass ``list.append``).
    label : str
        What runs, e.g. ``"Extracting features"``.

    Returns
    -------
    callable
        ``report(fraction)`` (0..1; usable as an engine ``progress=`` callback), with an optional
        ``detail`` appended to the label and ``count=(done, total)`` shown instead of the percentage.

    Examples
    --------
    >>> seen = []
    >>> report = banner_progress(seen.append, "Applying the model")
    >>> report(0.5, "b.png", count=(2, 4)); report(0.256)
    >>> seen
    [(50, 'Applying the model · b.png', '2/4'), (26, 'Applying the model', '26 %')]
    """
    def report(fraction: float, detail: str = "", count: tuple[int, int] | None = None) -> None:
        pct = int(round(100 * min(max(float(fraction), 0.0), 1.0)))
        text = f"{count[0]}/{count[1]}" if count else f"{pct} %"
        set_progress((max(pct, 2), f"{label} · {detail}" if detail else label, text))
    return report


def _triggered_by_click() -> bool:
    return any(t.get("value") for t in ctx.triggered)


REQUEST_CONTEXT = {  # keyword-only parameters the adapter reads from Dash's context on every call
    "trigger": lambda: ctx.triggered_id,
    "clicked": _triggered_by_click,
}


def adapt(fn, services, constraints: dict | None = None):
    """The Dash callback for plain function ``fn``: Dash's arguments plus the context ``fn`` asks for.

    Every named input is first checked (:func:`segapp.ui.guard.payload_checks`): the browser's
    session id becomes the store id it was signed for (None if this server did not sign it),
    and malformed values raise a one-line SegappError (a toast) before ``fn`` runs.
    ``functools.wraps`` keeps ``fn``'s name and source, which Dash hashes to key
    background callbacks (the same in the web process and in Celery workers).
    """
    from ..guard import payload_checks

    wanted = set(inspect.signature(fn).parameters)
    fixed = {name: value for name, value in (("services", services), ("notify", notify)) if name in wanted}
    late = {name: get for name, get in REQUEST_CONTEXT.items() if name in wanted}
    checks = payload_checks(fn, constraints or {}, services.signing_key)

    @functools.wraps(fn)
    def dash_callback(*args, **kwargs):
        kwargs = {k: (checks[k](v) if k in checks else v) for k, v in kwargs.items()}
        return fn(*args, **kwargs, **fixed, **{name: get() for name, get in late.items()})
    return dash_callback


def wire(app, services, *functions) -> None:
    """Register each plain function (decorated with :func:`callback_spec`) as a callback of ``app``."""
    from ..guard import layout_constraints

    constraints = getattr(app, "_segapp_constraints", None)
    if constraints is None:
        constraints = app._segapp_constraints = layout_constraints(app.layout) if app.layout is not None else {}
    for fn in functions:
        app.callback(**fn.dash_spec)(adapt(fn, services, constraints))
