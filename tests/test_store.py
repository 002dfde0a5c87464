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
