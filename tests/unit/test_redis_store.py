"""Redis-specific checks of :class:`RedisOnlineStore` against the real server (the contract is in tests/contract).

Tests that need the server call :func:`realservices.require_redis` (skipped with the reason when it is not up;
failed under ``CI=true``); the error-path tests need only the ``redis`` package.
"""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from marketpulse.errors import MissingDependencyError, StoreError
from marketpulse.store import build_online_store
from marketpulse.store.memory import MemoryOnlineStore
from marketpulse.store.redis import RedisOnlineStore, RedisOnlineStoreConfig, redact_url
from realservices import require_redis


def _redis() -> Any:
    return pytest.importorskip("redis", reason="the redis package (marketpulse[redis]) is not installed")


def _delete_prefix(client: Any, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def url() -> str:
    _redis()
    return require_redis()


@pytest.fixture
def raw(url: str) -> Iterator[Any]:
    """A plain client on the test server, for looking at keys behind the store's back."""
    with _redis().Redis.from_url(url) as client:
        yield client


@pytest.fixture
def prefixes(raw: Any) -> Iterator[list[str]]:
    """Fresh key prefixes, deleted after the test."""
    made: list[str] = []
    yield made
    for p in made:
        _delete_prefix(raw, p)


@pytest.fixture
def make(url: str, prefixes: list[str]) -> Iterator[Any]:
    """``make(**config)``: a store on the test server under a fresh prefix, closed after the test."""
    stores: list[RedisOnlineStore] = []

    def _make(**kw: Any) -> RedisOnlineStore:
        prefix = f"test-{uuid.uuid4().hex}"
        prefixes.append(prefix)
        store = RedisOnlineStore(RedisOnlineStoreConfig(url=url, key_prefix=prefix, **kw))
        stores.append(store)
        return store

    yield _make
    for s in stores:
        s.close()


@pytest.fixture
def store(make: Any) -> RedisOnlineStore:
    store: RedisOnlineStore = make()
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_gone(store: RedisOnlineStore, kind: str, symbol: str) -> None:
    deadline = time.monotonic() + 10
    while store.get(kind, symbol) is not None:
        assert time.monotonic() < deadline, "entry did not expire"
        time.sleep(0.01)


# --------------------------------------------------------------------------------------------------------
# key layout and encoding
# --------------------------------------------------------------------------------------------------------


def test_key_layout_value_string_with_ttl_and_index_zset(store: RedisOnlineStore, raw: Any) -> None:
    p = store.config.key_prefix
    before_ms = time.time() * 1000
    store.put("quote", "AAPL", {"p": 1.5}, ttl_s=100)
    after_ms = time.time() * 1000
    assert store.value_key("quote", "AAPL") == f"{p}:quote:AAPL"
    assert store.index_key("quote") == f"{p}:quote"
    assert sorted(raw.keys(f"{p}:*")) == [f"{p}:quote".encode(), f"{p}:quote:AAPL".encode()]
    assert raw.type(f"{p}:quote:AAPL") == b"string"
    assert raw.type(f"{p}:quote") == b"zset"
    assert msgspec.msgpack.decode(raw.get(f"{p}:quote:AAPL")) == {"p": 1.5}
    assert 0 < raw.pttl(f"{p}:quote:AAPL") <= 100_000
    score = raw.zscore(f"{p}:quote", "AAPL")
    assert before_ms + 100_000 <= score <= after_ms + 100_000  # the expiry deadline, Unix ms


def test_no_expiry_clears_an_earlier_ttl(make: Any, raw: Any) -> None:
    store = make(ttl_s=0)
    p = store.config.key_prefix
    store.put("q", "A", {}, ttl_s=100)
    store.put("q", "A", {})  # default: never expires
    assert raw.pttl(f"{p}:q:A") == -1
    assert raw.zscore(f"{p}:q", "A") == math.inf
    store.put("q", "B", {}, ttl_s=-1)
    store.put("q", "C", {}, ttl_s=1e30)  # beyond what Redis can express: never
    assert raw.pttl(f"{p}:q:B") == -1
    assert raw.pttl(f"{p}:q:C") == -1
    store.put("q", "D", {}, ttl_s=0.0001)  # rounded up to 1 ms, not refused
    wait_gone(store, "q", "D")
    assert store.symbols("q") == ["A", "B", "C"]


def test_default_ttl_from_config(make: Any, raw: Any) -> None:
    store = make(ttl_s=30)
    store.put("q", "A", {})
    assert 25_000 < raw.pttl(store.value_key("q", "A")) <= 30_000


def test_kinds_and_symbols_with_colons_do_not_collide(store: RedisOnlineStore, raw: Any) -> None:
    store.put("a:b", "c", {"v": 1})
    store.put("a", "b:c", {"v": 2})
    store.put("a", "b", {"v": 3})
    store.put("a%3Ab", "c", {"v": 4})
    assert store.get("a:b", "c") == {"v": 1}
    assert store.get("a", "b:c") == {"v": 2}
    assert store.get("a%3Ab", "c") == {"v": 4}
    assert store.symbols("a") == ["b", "b:c"]
    assert store.symbols("a:b") == ["c"]
    assert store.symbols("a%3Ab") == ["c"]
    p = store.config.key_prefix
    assert raw.exists(f"{p}:a%3Ab:c", f"{p}:a:b:c", f"{p}:a%253Ab:c") == 3


def test_unicode_and_empty_names(store: RedisOnlineStore) -> None:
    store.put("", "", {"v": 0})
    store.put("quote", "ÆØÅ", {"v": "é"})
    assert store.get("", "") == {"v": 0}
    assert store.symbols("") == [""]
    assert store.get_many("quote", ["ÆØÅ"]) == {"ÆØÅ": {"v": "é"}}
    assert store.symbols("quote") == ["ÆØÅ"]


def test_special_floats_round_trip_as_in_the_memory_store(store: RedisOnlineStore, raw: Any) -> None:
    value = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "nz": -0.0, "tiny": 5e-324, "t": (1, 2)}
    memory = MemoryOnlineStore()
    memory.put("q", "A", value)
    store.put("q", "A", value)
    got, want = store.get("q", "A"), memory.get("q", "A")
    assert got is not None and want is not None
    assert math.isnan(got["nan"]) and math.isnan(want["nan"])
    assert msgspec.msgpack.encode(got) == msgspec.msgpack.encode(want)  # bit for bit the same
    assert math.copysign(1.0, got["nz"]) == -1.0
    assert got["t"] == [1, 2]
    assert raw.get(store.value_key("q", "A")) == msgspec.msgpack.encode(value)  # compact: plain MessagePack


def test_bad_values_and_ttl_are_refused_and_nothing_is_written(store: RedisOnlineStore, raw: Any) -> None:
    with pytest.raises(StoreError, match="quote/AAPL"):
        store.put("quote", "AAPL", {"x": object()})
    with pytest.raises(StoreError, match="must be a dict"):
        store.put("quote", "AAPL", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="quote/BAD"):
        store.put_many("quote", {"OK": {"v": 1}, "BAD": {"x": 2**70}})
    with pytest.raises(StoreError, match="NaN"):
        store.put("quote", "AAPL", {}, ttl_s=math.nan)
    assert raw.keys(f"{store.config.key_prefix}:*") == []


def test_a_foreign_value_is_a_store_error(store: RedisOnlineStore, raw: Any) -> None:
    raw.set(store.value_key("q", "A"), b"\xc1")  # a byte MessagePack never uses
    raw.set(store.value_key("q", "B"), msgspec.msgpack.encode([1, 2]))
    with pytest.raises(StoreError, match="MessagePack"):
        store.get("q", "A")
    with pytest.raises(StoreError, match="dict"):
        store.get_many("q", ["B"])
    raw.lpush(store.index_key("w"), "x")  # the index key holds the wrong type
    with pytest.raises(StoreError, match=r"failed to list w: WRONGTYPE"):
        store.symbols("w")


# --------------------------------------------------------------------------------------------------------
# prefixes
# --------------------------------------------------------------------------------------------------------


def test_prefix_isolation(make: Any, raw: Any) -> None:
    a, b = make(), make()
    a.put("quote", "AAPL", {"s": "a"})
    b.put("quote", "AAPL", {"s": "b"})
    b.put_many("quote", {"MSFT": {}, "TSLA": {}})
    assert a.get("quote", "AAPL") == {"s": "a"}
    assert b.get("quote", "AAPL") == {"s": "b"}
    assert a.symbols("quote") == ["AAPL"]
    assert b.symbols("quote") == ["AAPL", "MSFT", "TSLA"]
    b.delete("quote", "AAPL")
    assert a.get("quote", "AAPL") == {"s": "a"}
    assert a.get_many("quote", ["MSFT"]) == {"MSFT": None}
    assert all(k.startswith(f"{a.config.key_prefix}:".encode()) for k in raw.keys(f"{a.config.key_prefix}:*"))
    assert len(raw.keys(f"{b.config.key_prefix}:*")) == 3  # MSFT, TSLA and the index


# --------------------------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------------------------


def counting_client(url: str) -> tuple[Any, list[int]]:
    """A client whose connections count their socket writes (one per round trip: a pipeline is one write)."""
    redis = _redis()
    sends = [0]

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        sends[0] += 1
        redis.Connection.send_packed_command(self, command, check_health)

    counting = type("CountingConnection", (redis.Connection,), {"send_packed_command": send_packed_command})
    pool = redis.ConnectionPool.from_url(url, connection_class=counting)
    return redis.Redis(connection_pool=pool), sends


def test_put_many_and_get_many_are_one_round_trip_each(url: str, prefixes: list[str]) -> None:
    client, sends = counting_client(url)
    prefix = f"test-{uuid.uuid4().hex}"
    prefixes.append(prefix)
    store = RedisOnlineStore(RedisOnlineStoreConfig(key_prefix=prefix), client=client)
    client.ping()  # connect (the handshake is not the store's)
    values = {f"S{i:04d}": {"p": float(i), "v": i} for i in range(1000)}

    sends[0] = 0
    store.put_many("quote", values, ttl_s=60)
    assert sends[0] == 1
    sends[0] = 0
    got = store.get_many("quote", [*values, "NOPE"])
    assert sends[0] == 1
    assert got == {**values, "NOPE": None}
    sends[0] = 0
    store.put("quote", "X", {})
    assert sends[0] == 1
    sends[0] = 0
    assert len(store.symbols("quote")) == 1001
    assert sends[0] == 2  # the index, then every member's EXISTS in one pipeline
    sends[0] = 0
    store.put_many("quote", {})
    assert store.get_many("quote", []) == {}
    assert sends[0] == 0
    store.close()
    assert client.ping()  # an injected client is left to its owner
    client.close()


# --------------------------------------------------------------------------------------------------------
# the symbols index
# --------------------------------------------------------------------------------------------------------


def test_expired_members_leave_the_index_on_symbols(store: RedisOnlineStore, raw: Any) -> None:
    store.put_many("quote", {"AAPL": {}, "MSFT": {}}, ttl_s=0.05)
    store.put("quote", "TSLA", {}, ttl_s=3600)
    index = store.index_key("quote")
    wait_gone(store, "quote", "AAPL")
    wait_gone(store, "quote", "MSFT")
    assert raw.zcard(index) == 3  # still there: expiry is lazy
    assert store.symbols("quote") == ["TSLA"]
    assert raw.zrange(index, 0, -1) == [b"TSLA"]


def test_entries_gone_behind_the_stores_back_are_not_listed(store: RedisOnlineStore, raw: Any) -> None:
    store.put_many("quote", {"AAPL": {}, "MSFT": {}}, ttl_s=0)
    raw.delete(store.value_key("quote", "AAPL"))  # evicted (maxmemory) or deleted by someone else
    assert store.symbols("quote") == ["MSFT"]
    assert raw.zrange(store.index_key("quote"), 0, -1) == [b"MSFT"]


def test_writes_sweep_long_expired_members_without_symbols(store: RedisOnlineStore, raw: Any) -> None:
    store.sweep_grace_s = 0.0
    store.put_many("q", {f"S{i}": {} for i in range(50)}, ttl_s=0.02)
    store.put("q", "LIVE", {}, ttl_s=0)
    index = store.index_key("q")
    deadline = time.monotonic() + 10
    while raw.zcard(index) > 1:
        assert time.monotonic() < deadline, "expired members were not swept"
        time.sleep(0.02)
        store.put("other", "X", {}, ttl_s=0)
        store.put("q", "LIVE", {}, ttl_s=0)
    assert raw.zrange(index, 0, -1) == [b"LIVE"]


def test_the_sweep_keeps_members_within_the_grace(store: RedisOnlineStore, raw: Any) -> None:
    store.put("q", "A", {}, ttl_s=0.02)
    wait_gone(store, "q", "A")
    store.put("q", "B", {})
    assert raw.zscore(store.index_key("q"), "A") is not None  # default grace: 60 s of clock skew


class Interloper:
    """Wraps the store's pipeline and runs ``act`` right after the store calls ``hook`` on it."""

    def __init__(self, pipe: Any, hook: str, act: Any) -> None:
        self._pipe, self._hook, self._act = pipe, hook, act

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._pipe, name)
        if name != self._hook:
            return attr

        def hooked(*args: Any, **kw: Any) -> Any:
            result = attr(*args, **kw)
            self._act()
            return result

        return hooked

    def __enter__(self) -> Interloper:
        self._pipe.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pipe.__exit__(*exc)


@pytest.mark.parametrize("hook", ["watch", "multi"])
def test_a_member_revived_during_the_cleanup_is_not_dropped(
    store: RedisOnlineStore, raw: Any, monkeypatch: pytest.MonkeyPatch, hook: str
) -> None:
    """The cleanup WATCHes the dead keys and re-checks them: a put landing after the first EXISTS — before
    the re-check (``watch``) or between it and EXEC (``multi``, aborting the transaction) — keeps its member."""
    index = store.index_key("q")
    store.put("q", "A", {"v": 1}, ttl_s=0)
    store._drop_dead(index, [store.value_key("q", "A")], ["A"])  # a stale "dead" verdict: A is kept
    assert raw.zrange(index, 0, -1) == [b"A"]

    raw.delete(store.value_key("q", "A"))  # A looks dead to the EXISTS of symbols() ...
    real_pipeline = store._client.pipeline

    def revive() -> None:  # ... and another writer puts it again during the cleanup
        raw.set(store.value_key("q", "A"), msgspec.msgpack.encode({"v": 2}))

    def pipeline(transaction: bool = True) -> Any:
        pipe = real_pipeline(transaction=transaction)
        return Interloper(pipe, hook, revive) if transaction else pipe

    monkeypatch.setattr(store._client, "pipeline", pipeline)
    assert store.symbols("q") == []  # the verdict of its EXISTS
    monkeypatch.undo()
    assert raw.zrange(index, 0, -1) == [b"A"]
    assert store.symbols("q") == ["A"]
    assert store.get("q", "A") == {"v": 2}


# --------------------------------------------------------------------------------------------------------
# errors and lifecycle
# --------------------------------------------------------------------------------------------------------


def test_unreachable_server_is_a_one_line_store_error_without_the_password() -> None:
    _redis()
    port = free_port()
    url = f"redis://alice:s3cret-pw@127.0.0.1:{port}/0"
    store = RedisOnlineStore(RedisOnlineStoreConfig(url=url, socket_timeout_s=1.0))
    for call in (
        lambda: store.put("quote", "AAPL", {}),
        lambda: store.put_many("quote", {"AAPL": {}}),
        lambda: store.get("quote", "AAPL"),
        lambda: store.get_many("quote", ["AAPL"]),
        lambda: store.symbols("quote"),
        lambda: store.delete("quote", "AAPL"),
    ):
        with pytest.raises(StoreError) as info:
            call()
        message = str(info.value)
        assert "s3cret" not in message
        assert f"redis://alice:***@127.0.0.1:{port}/0 is unreachable" in message
        assert "\n" not in message
        assert isinstance(info.value.__cause__, _redis().exceptions.ConnectionError)
    store.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://alice:pw@h:1/0", "redis://alice:***@h:1/0"),
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("rediss://pw@h:1", "rediss://***@h:1"),
        ("redis://h:1/2", "redis://h:1/2"),
        ("unix:///tmp/r.sock?db=1&password=pw", "unix:///tmp/r.sock?db=1&password=***"),
        ("redis://h:1/0?password=p%40w", "redis://h:1/0?password=***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_bad_url_is_a_store_error() -> None:
    _redis()
    with pytest.raises(StoreError, match="bad Redis URL"):
        RedisOnlineStore(RedisOnlineStoreConfig(url="http://:pw@host/0"))


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError
    with pytest.raises(MissingDependencyError) as info:
        RedisOnlineStore()
    assert str(info.value) == "redis is not installed: run `pip install 'marketpulse[redis]'`"
    assert (info.value.package, info.value.extra) == ("redis", "redis")


def test_config_module_imports_without_the_redis_package() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import marketpulse.config, marketpulse.store.redis\n"
        "from marketpulse.store import build_online_store\n"
        "from marketpulse.store.redis import RedisOnlineStoreConfig\n"
        "try:\n    build_online_store(RedisOnlineStoreConfig())\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "MissingDependencyError redis is not installed: run `pip install 'marketpulse[redis]'`"


def test_build_online_store_makes_a_redis_store(url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    with build_online_store(RedisOnlineStoreConfig(url=url, key_prefix=prefix)) as store:
        assert isinstance(store, RedisOnlineStore)
        assert store.get("quote", "AAPL") is None
        assert store.symbols("quote") == []


def test_closed_store_refuses_work_and_close_is_idempotent(store: RedisOnlineStore) -> None:
    store.put("q", "A", {})
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get("q", "A")
