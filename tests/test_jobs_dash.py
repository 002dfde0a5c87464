"""Dash background callbacks through CeleryManager: a worker runs them and the page updates."""

import importlib
import sys
import textwrap

import pytest

# Dash keeps a process-wide list of background callbacks; every app the tests build adds its own copies,
# which Celery reports as duplicate task names when a CeleryManager registers them. Harmless here.
pytestmark = [pytest.mark.redis, pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")]

APP_MODULE = "segapp_bgtest_app"
APP_SOURCE = '''
"""A tiny Dash app with one background callback (written by tests/test_jobs_dash.py)."""
import os
import time

from dash import Dash, Input, Output, html

from segapp.config import get_settings
from segapp.jobs.manager import make_background_manager

app = Dash(__name__, background_callback_manager=make_background_manager(get_settings()))
app.layout = html.Div([html.Button("Run", id="run"), html.Div("idle", id="out"), html.Div("", id="progress")])


@app.callback(Output("out", "children"), Input("run", "n_clicks"), background=True, prevent_initial_call=True,
              progress=[Output("progress", "children")], interval=200)
def work(set_progress, n_clicks):
    from segapp.jobs.client import current_job

    job = current_job()
    set_progress(f"step 1 on {job['worker']}")
    time.sleep(0.5)
    return f"done {n_clicks} by {job['worker']} attempt {job['attempt']} pid {os.getpid()}"
'''


@pytest.fixture
def bg_app(tmp_path, monkeypatch, jobs_settings):
    (tmp_path / f"{APP_MODULE}.py").write_text(textwrap.dedent(APP_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("REDIS_URL", jobs_settings.redis_url)
    sys.modules.pop(APP_MODULE, None)
    yield importlib.import_module(APP_MODULE), tmp_path
    sys.modules.pop(APP_MODULE, None)


@pytest.mark.browser
def test_background_callback_runs_on_a_celery_worker_and_updates_the_page(dash_duo, bg_app, celery_workers):
    module, path = bg_app
    import os

    from dash import CeleryManager

    assert isinstance(module.app._background_manager, CeleryManager)
    worker = celery_workers("dash", env={"SEGAPP_APP_MODULE": APP_MODULE,
                                         "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])})
    assert "registered 1 background callback(s)" in worker.log()
    dash_duo.start_server(module.app)
    dash_duo.wait_for_text_to_equal("#out", "idle")
    dash_duo.find_element("#run").click()
    dash_duo.wait_for_contains_text("#out", f"done 1 by {worker.hostname} attempt 1", timeout=90)
    assert f"pid {os.getpid()}" not in dash_duo.find_element("#out").text  # it ran in the worker
    dash_duo.find_element("#run").click()  # and again: the worker keeps serving the callback
    dash_duo.wait_for_contains_text("#out", f"done 2 by {worker.hostname}", timeout=90)


def test_worker_registers_the_web_apps_background_callbacks(celery_workers, jobs_settings):
    """A worker started next to app.py knows every background callback of the real web app."""
    from dash.background_callback.managers import BaseBackgroundCallbackManager as Base

    from segapp.jobs.celery_app import make_celery
    from segapp.ui import create_app

    n0 = len(Base.functions)
    create_app(jobs_settings)
    expected = {f"background_callback_{key}" for key, _fn, _progress in Base.functions[n0:]}
    assert expected, "the web app defines no background callbacks"
    worker = celery_workers("web", env={"SEGAPP_APP_MODULE": "app"})
    registered = make_celery(jobs_settings).control.inspect(destination=[worker.hostname], timeout=5).registered()
    assert expected <= set(registered[worker.hostname])
