"""The session store on a local directory and on Redis: isolation, expiry, large values, failures."""

import time

import numpy as np
import pytest

from segapp.errors import SegappError
from segapp.store import (LocalStore, RedisStore, StoreUnavailableError, check_redis, new_session_id, open_store,
                          store_for)


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "store", ttl=3600)
    server = request.getfixturevalue("redis_server")
    return RedisStore(server.url, ttl=3600)


def test_roundtrip_list_delete_and_typed_helpers(store):
    sid = new_session_id()
    store.put(sid, "image", "a", b"\x00\x01raw")
    store.put_json(sid, "state", "classes", [{"id": 1}])
    store.put_array(sid, "labels", "a_0", np.eye(3, dtype=np.uint16))
    store.put(sid, "image", "b", b"")
    assert store.get(sid, "image", "a") == b"\x00\x01raw" and store.get(sid, "image", "b") == b""
    assert store.get_json(sid, "state", "classes") == [{"id": 1}]
    lab = store.get_array(sid, "labels", "a_0")
    assert lab.dtype == np.uint16 and (lab == np.eye(3)).all()
    assert store.list(sid, "image") == ["a", "b"]
    store.put(sid, "image", "a", b"newer")  # rewriting moves it to the end (last write order)
    assert store.list(sid, "image") == ["b", "a"]
    store.delete(sid, "image", "a")
    store.delete(sid, "image", "never-there")
    assert store.get(sid, "image", "a") is None and store.list(sid, "image") == ["b"]
    assert store.get_json(sid, "state", "missing", default={}) == {}


def test_sessions_are_isolated_and_ids_validated(store):
    a, b = new_session_id(), new_session_id()
    store.put(a, "model", "current", b"A")
    store.put(b, "model", "current", b"B")
    assert store.get(a, "model", "current") == b"A" and store.get(b, "model", "current") == b"B"
    store.drop_session(a)
    assert store.get(a, "model", "current") is None and store.list(a, "model") == []
    assert store.get(b, "model", "current") == b"B"
    for bad in ["short", "../" + a, a + "*", "", None, a[:20] + ":x" + a[22:]]:
        with pytest.raises(KeyError):
            store.get(bad, "model", "current")
    for kind, item in [("model", "../etc"), ("model", ".hidden"), ("mo:del", "x"), ("model", "a*b"),
                       ("model", "x#0")]:
        with pytest.raises(KeyError):
            store.put(a, kind, item, b"x")
    # an item may be called like an internal key and still not collide with it
    store.put(b, "model", "__index__", b"i")
    assert store.list(b, "model") == ["current", "__index__"]


def test_large_image_roundtrip(store):
    sid = new_session_id()
    big = np.random.default_rng(0).integers(0, 65535, size=(1, 2500, 3000, 3), dtype=np.uint16)  # 45 MB
    store.put_array(sid, "image", "big", big)
    back = store.get_array(sid, "image", "big")
    assert back.dtype == big.dtype and back.shape == big.shape and np.array_equal(back, big)
    store.drop_session(sid)


@pytest.mark.redis
def test_redis_chunked_values_overwrite_and_cleanup(redis_server):
    store = RedisStore(redis_server.url, ttl=3600, chunk_bytes=1000)
    client = redis_server.client()
    sid = new_session_id()
    data = bytes(range(256)) * 20  # 5 chunks
    store.put(sid, "upload", "f", data)
    assert store.get(sid, "upload", "f") == data
    n_keys = len(client.keys(f"segapp:{{{sid}}}:*"))
    store.put(sid, "upload", "f", data[::-1])  # new chunks replace the old ones
    assert store.get(sid, "upload", "f") == data[::-1]
    assert len(client.keys(f"segapp:{{{sid}}}:*")) == n_keys
    store.put(sid, "upload", "f", b"small")  # chunked -> inline drops the chunks
    assert store.get(sid, "upload", "f") == b"small"
    assert not [k for k in client.keys(f"segapp:{{{sid}}}:*") if b"upload:f#" in k]
    store.put(sid, "upload", "g", data)
    store.delete(sid, "upload", "g")
    assert not [k for k in client.keys(f"segapp:{{{sid}}}:*") if b"upload:g" in k]
    store.drop_session(sid)
    assert client.keys(f"segapp:{{{sid}}}:*") == []


@pytest.mark.redis
def test_redis_session_expires_after_last_write_as_a_whole(redis_server):
    store = RedisStore(redis_server.url, ttl=2)
    client = redis_server.client()
    old, other = new_session_id(), new_session_id()
    store.put_array(old, "image", "img", np.zeros((4, 4)))
    store.put(other, "image", "x", b"1")
    time.sleep(1.3)
    store.put_json(old, "annot", "img_0", {"shapes": []})  # activity keeps the whole session alive
    assert 1500 < client.pttl(f"segapp:{{{old}}}:image:img") <= 2000
    time.sleep(1.0)
    assert store.get_array(old, "image", "img") is not None  # would have expired without the refresh
    assert store.get(other, "image", "x") is None and store.list(other, "image") == []
    time.sleep(2.3)
    assert store.get_array(old, "image", "img") is None and store.list(old, "annot") == []
    assert client.keys(f"segapp:{{{old}}}:*") == []  # nothing is left behind


def test_unreachable_redis_gives_one_line_with_fallback_advice():
    with pytest.raises(StoreUnavailableError) as e:
        check_redis("redis://:secret@127.0.0.1:1/0", timeout=0.5)
    msg = str(e.value)
    assert isinstance(e.value, SegappError) and "\n" not in msg and "secret" not in msg
    assert "127.0.0.1:1" in msg and "unset REDIS_URL" in msg
    store = RedisStore("redis://127.0.0.1:1/0", ttl=10)
    with pytest.raises(StoreUnavailableError, match="cannot reach Redis"):
        store.put(new_session_id(), "image", "a", b"x")


def test_open_store_picks_backend(tmp_path):
    from segapp.config import Settings

    assert isinstance(open_store(None, tmp_path), LocalStore)
    assert isinstance(store_for(Settings(data_dir=tmp_path / "d")), LocalStore)
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisStore)  # lazy: no connection yet


# -- cross-process primitives: counters, versioned writes, locks (the web app's gunicorn workers,
#    its background jobs and Celery workers share sessions; a threading.Lock would not do) ----------
def _spec(store):
    return ("redis", store.url) if isinstance(store, RedisStore) else ("local", str(store.root))


def _reopen(spec):
    kind, where = spec
    return RedisStore(where, ttl=3600) if kind == "redis" else LocalStore(where, ttl=3600)


def _count_up(spec, sid, n, out):
    store = _reopen(spec)
    out.put([store.incr(sid, "rev") for _ in range(n)])


def _publish_models(spec, sid, n, start):
    from segapp.ui.session import Session

    sess = Session(_reopen(spec), sid)
    start.wait()
    for _ in range(n):
        sess.put_model(None, {"source": "trained"})


def _hold_lock(spec, sid, held, release, lease):
    lock = _reopen(spec).lock(sid, "train", lease=lease)
    assert lock.acquire()
    held.set()
    release.wait(30)
    lock.release()


def _spawn():
    import multiprocessing as mp

    return mp.get_context("spawn")


def test_counters_are_atomic_across_processes(store):
    ctx, sid = _spawn(), new_session_id()
    out = ctx.Queue()
    procs = [ctx.Process(target=_count_up, args=(_spec(store), sid, 150, out)) for _ in range(2)]
    for p in procs:
        p.start()
    seen = out.get(timeout=60) + out.get(timeout=60)
    for p in procs:
        p.join(30)
    assert sorted(seen) == list(range(1, 301))  # no two increments returned the same value
    assert store.counter(sid, "rev") == 300 and store.counter(sid, "never") == 0
    store.drop_session(sid)
    assert store.counter(sid, "rev") == 0  # counters go with their session


def test_a_versioned_write_never_replaces_a_newer_version(store):
    sid = new_session_id()
    assert store.put_if_newer(sid, "state", "model", 3, b'{"version": 3}')
    assert not store.put_if_newer(sid, "state", "model", 2, b'{"version": 2}')  # older, finishing late
    assert not store.put_if_newer(sid, "state", "model", 3, b'{"version": 3, "again": 1}')
    assert store.get_json(sid, "state", "model") == {"version": 3}
    assert store.put_if_newer(sid, "state", "model", 4, b'{"version": 4}')
    assert store.list(sid, "state") == ["model"] and store.get_json(sid, "state", "model") == {"version": 4}
    with pytest.raises(KeyError):
        store.put_if_newer(sid, "state", "../x", 5, b"{}")
    store.drop_session(sid)


def test_model_versions_never_go_backwards_with_two_processes(store):
    from segapp.ui.session import Session

    ctx, sid = _spawn(), new_session_id()
    start = ctx.Event()
    procs = [ctx.Process(target=_publish_models, args=(_spec(store), sid, 60, start)) for _ in range(2)]
    for p in procs:
        p.start()
    sess, seen = Session(store, sid), []
    start.set()
    while any(p.is_alive() for p in procs):
        seen.append(sess.model_info().get("version", 0))
    for p in procs:
        p.join(30)
    seen.append(sess.model_info()["version"])
    assert all(a <= b for a, b in zip(seen, seen[1:])), "a model version went backwards"
    assert seen[-1] == 120 and len(set(seen)) > 2  # the newest of 120 models is the current one


def _holder(store, lease):
    """Another process holding the session lock ``train`` (``release.set()`` lets it go)."""
    ctx, sid = _spawn(), new_session_id()
    held, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(_spec(store), sid, held, release, lease))
    p.start()
    assert held.wait(60)
    return p, sid, release


def test_session_lock_excludes_other_processes(store):
    from segapp.store import LockTimeout

    p, sid, release = _holder(store, 30.0)
    assert store.lock(sid, "train").acquire(timeout=0) is False
    assert store.lock(sid, "other").acquire(timeout=0) is True  # locks are per name...
    assert store.lock(new_session_id(), "train").acquire(timeout=0) is True  # ...and per session
    with pytest.raises(LockTimeout, match="still running"):
        with store.lock(sid, "train", wait=0.2):
            pass
    release.set()
    p.join(30)
    lock = store.lock(sid, "train")
    assert lock.acquire(timeout=10)
    lock.release()


def test_a_dead_holders_lock_is_freed(store):
    import os
    import signal

    p, sid, _ = _holder(store, 1.0)
    time.sleep(1.5)  # past the 1 s lease: the live holder keeps renewing it
    assert store.lock(sid, "train").acquire(timeout=0) is False
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    lock = store.lock(sid, "train")
    assert lock.acquire(timeout=5)  # file locks die with the process, Redis leases expire
    lock.release()


def test_every_process_of_a_deployment_signs_with_one_key(redis_server, tmp_path):
    from segapp.errors import ConfigError
    from segapp.store import check_signing_key

    for store in (RedisStore(redis_server.url, ttl=3600, prefix="keycheck"), LocalStore(tmp_path)):
        check_signing_key(store, b"a" * 32)
        check_signing_key(store, b"a" * 32)  # a second web process or worker with the same key
        with pytest.raises(ConfigError, match="SEGAPP_SECRET_KEY differs"):
            check_signing_key(store, b"b" * 32)  # a worker started without the deployment's key
