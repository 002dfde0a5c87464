"""Settings from the environment: defaults, validation, masking and the ``config`` printout."""

from pathlib import Path

import pytest

from segapp.config import ENV_VARS, Settings, describe, get_settings, mask_url, parse_queues
from segapp.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "deployment.md"


def test_defaults_are_embedded_and_match_the_dataclass():
    s = Settings.from_env({})
    assert not s.distributed and s.redis_url is None
    assert (s.host, s.port, s.queues, s.max_pixels, s.max_upload_mb) == ("127.0.0.1", 8050, ("default",), 10**8, 200)
    assert s.session_ttl == 7 * 24 * 3600 and s.task_time_limit == 1800 and s.result_expires == 86400
    assert s.soft_time_limit < s.task_time_limit and s.heartbeat_interval < s.effective_visibility_timeout == 60
    assert s.worker_concurrency is None and s.worker_threads is None and s.app_module == "app"


def test_every_variable_is_read():
    env = {"HOST": "0.0.0.0", "PORT": "9001", "REDIS_URL": "redis://:pw@redis:6379/2", "SEGAPP_DATA_DIR": "/d",
           "SEGAPP_CACHE_DIR": "/c", "SEGAPP_MAX_PIXELS": "1e6", "SEGAPP_MAX_UPLOAD_MB": "10",
           "SEGAPP_SESSION_TTL": "60", "SEGAPP_QUEUES": "gpu, default,gpu", "SEGAPP_TASK_TIME_LIMIT": "100",
           "SEGAPP_WEIGHTS_DIR": "/w", "SEGAPP_SECRET_KEY": "s3cret", "SEGAPP_RESULT_EXPIRES": "120",
           "SEGAPP_VISIBILITY_TIMEOUT": "30", "SEGAPP_WORKER_CONCURRENCY": "3", "SEGAPP_WORKER_THREADS": "2",
           "SEGAPP_MAX_REDELIVERIES": "0", "SEGAPP_APP_MODULE": "mypkg.web", "SEGAPP_MAX_IMAGE_MB": "64",
           "SEGAPP_MAX_PLANES": "7", "SEGAPP_MAX_CHANNELS": "4", "SEGAPP_MAX_MODEL_MB": "9",
           "SEGAPP_MAX_JOBS": "4", "SEGAPP_FEATURE_MEMORY_MB": "256"}
    assert set(env) == set(ENV_VARS.values())
    s = Settings.from_env(env)
    assert s.distributed and s.port == 9001 and s.host == "0.0.0.0" and s.max_pixels == 10**6
    assert s.queues == ("gpu", "default") and s.data_dir == Path("/d") and s.weights_dir == Path("/w")
    assert (s.session_ttl, s.task_time_limit, s.result_expires, s.visibility_timeout) == (60, 100, 120, 30)
    assert (s.worker_concurrency, s.worker_threads, s.max_redeliveries) == (3, 2, 0)
    assert s.secret_key == "s3cret" and s.app_module == "mypkg.web" and s.effective_visibility_timeout == 30
    assert (s.max_image_mb, s.max_planes, s.max_channels, s.max_model_mb) == (64, 7, 4, 9)
    assert (s.max_jobs, s.job_slots, s.feature_memory_mb) == (4, 4, 256)


@pytest.mark.parametrize("env, fragment", [
    ({"PORT": "http"}, "PORT must be a number"),
    ({"PORT": "0"}, "PORT must be at least 1"),
    ({"SEGAPP_SESSION_TTL": "-5"}, "SEGAPP_SESSION_TTL"),
    ({"REDIS_URL": "http://:pw@host"}, "REDIS_URL must start with redis://"),
    ({"SEGAPP_QUEUES": "gpu,bad queue"}, "invalid queue name"),
    ({"SEGAPP_APP_MODULE": "my-app"}, "SEGAPP_APP_MODULE"),
    ({"SEGAPP_WORKER_CONCURRENCY": "0"}, "SEGAPP_WORKER_CONCURRENCY"),
])
def test_bad_values_raise_one_line_config_errors(env, fragment):
    with pytest.raises(ConfigError) as e:
        Settings.from_env(env)
    assert fragment in str(e.value) and "\n" not in str(e.value)
    assert "pw" not in str(e.value)  # a password is never echoed back


def test_masked_hides_secrets_and_describe_shows_sources(monkeypatch):
    env = {"REDIS_URL": "redis://user:hunter2@r:6379/0", "SEGAPP_SECRET_KEY": "topsecret", "PORT": "8123"}
    s = Settings.from_env(env)
    m = s.masked()
    assert m["redis_url"] == "redis://user:***@r:6379/0" and m["secret_key"] == "***"
    assert m["mode"].startswith("distributed")
    text = describe(s, env=env)
    assert "hunter2" not in text and "topsecret" not in text
    lines = {ln.split()[0]: ln for ln in text.splitlines()}
    assert lines["port"].split()[1:] == ["8123", "PORT"]
    assert lines["host"].split()[-1] == "default" and "redis://user:***@r:6379/0" in lines["redis_url"]
    assert set(ENV_VARS) <= set(lines)
    monkeypatch.setenv("PORT", "8124")
    assert get_settings().port == 8124


def test_helpers():
    assert parse_queues(" a ,b,a ") == ("a", "b") and parse_queues(None) == ("default",)
    assert mask_url(None) is None and mask_url("redis://host:6379/0") == "redis://host:6379/0"
    assert Settings(task_time_limit=1).soft_time_limit == 1


def test_every_variable_is_documented_for_operators():
    text = DOCS.read_text()
    for var in ENV_VARS.values():
        assert f"`{var}`" in text, f"{var} missing from docs/deployment.md"
    s = Settings()
    for value in (s.port, s.max_pixels, s.max_upload_mb, s.session_ttl, s.task_time_limit, s.result_expires):
        assert str(value) in text
