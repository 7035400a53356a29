"""Redis online store on redis-py.

Key layout (``P`` is ``key_prefix``, ``K`` the kind with ``%`` and ``:`` percent-escaped, ``S`` the symbol)::

    P:K:S   string      the value, MessagePack-encoded, with ``PX`` = the entry's TTL (none: never expires)
    P:K     sorted set  the index of ``symbols(K)``: member ``S``, score = expiry deadline in Unix ms (``inf``: none)

Why a string key per entry and not one hash per kind: Redis expires keys, not hash fields (``HEXPIRE`` is
Redis 7.4+), and the server expiring the value itself is what makes ``get`` exact without a clock of our own.
Because ``K`` cannot contain ``:``, an index key (one ``:`` after ``P``) never collides with a value key (two or
more), whatever the symbols are. A ``key_prefix`` must not be another store's prefix followed by ``:``.

Writes (``put``/``put_many``/``delete``) are one ``MULTI``/``EXEC`` round trip, so the value and its index entry
change together even with concurrent writers. ``get_many`` is one ``MGET``. ``symbols`` reads the index and
checks every member with pipelined ``EXISTS`` (so an expired, evicted or foreign-deleted entry is never listed),
then drops the dead members with ``WATCH`` on their keys, so a concurrent ``put`` reviving one is never lost.
Writes also sweep index members whose deadline passed more than :attr:`RedisOnlineStore.sweep_grace_s` ago
(a race-free ``ZREMRANGEBYSCORE``: a concurrent put raises the score), which keeps the index bounded for a
writer that never calls ``symbols``; the grace absorbs clock skew between writers' clocks and the server's.

Values are encoded with msgspec MessagePack, exactly as :class:`~marketpulse.store.memory.MemoryOnlineStore`
does, so both stores return the same thing: floats round-trip bit-exactly — ``NaN`` comes back as a float NaN
(never ``None`` nor an error), ``±inf`` and ``-0.0`` as themselves; tuples come back as lists.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.errors import MissingDependencyError, StoreError
from marketpulse.store.base import OnlineStore, decode_online_value, encode_online_value

if TYPE_CHECKING:
    import redis


class RedisOnlineStoreConfig(BaseModel):
    """``online_store.type: redis`` — latest values in Redis, with TTL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["redis"] = "redis"
    url: str = Field("redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL (password in the URL)")
    ttl_s: float = Field(86_400.0, description="default time-to-live of an entry (<= 0: never expires)")
    key_prefix: str = Field("mp", description="prefix of every key, so several deployments can share a server")
    socket_timeout_s: float = Field(5.0, gt=0)


#: a TTL longer than this (about 3,000 years) is "never expires" (Redis refuses deadlines past int64 ms)
_MAX_TTL_MS = 10**14


def import_redis() -> Any:
    """The ``redis`` package, or :class:`MissingDependencyError` with the ``pip install`` to run."""
    try:
        import redis
    except ImportError:
        raise MissingDependencyError("redis", "redis") from None
    return redis


def redact_url(url: str) -> str:
    """``url`` with its password (in the userinfo or a ``password=`` query option) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, sep, password = userinfo.partition(":")
            if sep and password:
                netloc = f"{user}:***@{host}"
            elif not sep and parts.scheme in ("redis", "rediss") and user:
                netloc = f"***@{host}"  # redis://secret@host: a lone userinfo is the password
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(k.lower() == "password" for k, _ in pairs):
                query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*")
        scheme = f"{parts.scheme}://" if parts.scheme else ""
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        return f"{scheme}{netloc}{parts.path}" + (f"?{query}" if query else "") + fragment
    except ValueError:
        return "<unparsable Redis URL>"


def _describe_client(client: Any) -> str:
    """Where an injected client points, as a password-free ``redis://`` or ``unix://`` URL."""
    try:
        kw = client.connection_pool.connection_kwargs
    except AttributeError:
        return "<injected Redis client>"
    if kw.get("path"):
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _escape_kind(kind: str) -> str:
    return kind.replace("%", "%25").replace(":", "%3A")


class RedisOnlineStore(OnlineStore):
    """Latest value per ``(kind, symbol)`` in Redis, expiring server-side (see the module doc for the layout).

    ``client`` injects a ready ``redis.Redis`` (then ``config.url`` is not used and :meth:`close` leaves the
    client open: its owner closes it). Thread-safe: redis-py clients share a connection pool between threads.
    Every Redis failure raises :class:`StoreError` with a one-line cause naming the server without its password.
    """

    #: how long after its deadline an index member may be dropped without checking its key (clock-skew margin)
    sweep_grace_s: float = 60.0

    def __init__(self, config: RedisOnlineStoreConfig | None = None, client: redis.Redis | None = None) -> None:
        self.config = config or RedisOnlineStoreConfig()
        self._redis = import_redis()
        self._prefix = self.config.key_prefix
        self._owns_client = client is None
        if client is None:
            retry = self._redis.retry.Retry(self._redis.backoff.ExponentialWithJitterBackoff(base=0.05, cap=0.5), 1)
            self.where = redact_url(self.config.url)
            try:
                client = self._redis.Redis.from_url(
                    self.config.url,
                    socket_timeout=self.config.socket_timeout_s,
                    socket_connect_timeout=self.config.socket_timeout_s,
                    retry=retry,
                    health_check_interval=30,
                )
            except (ValueError, TypeError) as e:
                raise StoreError(f"bad Redis URL {self.where}: {_one_line(e)}") from e
        else:
            self.where = _describe_client(client)
        self._client: Any = client
        self._closed = False
        self._close_lock = threading.Lock()

    # ---- keys and codec ---------------------------------------------------------------------------------

    def index_key(self, kind: str) -> str:
        """The sorted set listing the symbols of ``kind``."""
        return f"{self._prefix}:{_escape_kind(kind)}"

    def value_key(self, kind: str, symbol: str) -> str:
        """The string key holding the value of ``(kind, symbol)``."""
        return f"{self._prefix}:{_escape_kind(kind)}:{symbol}"

    def _decode(self, kind: str, symbol: str, blob: bytes | None) -> dict[str, Any] | None:
        if blob is None:
            return None
        try:
            value = decode_online_value(blob)
        except msgspec.DecodeError as e:
            raise StoreError(
                f"Redis key {self.value_key(kind, symbol)!r} at {self.where} does not hold a MessagePack value: {e}"
            ) from e
        if not isinstance(value, dict):
            raise StoreError(f"Redis key {self.value_key(kind, symbol)!r} at {self.where} does not hold a dict")
        return value

    def _ttl_ms(self, ttl_s: float | None) -> int | None:
        """Milliseconds to live (rounded up, at least 1), or None for no expiry."""
        ttl = self.config.ttl_s if ttl_s is None else ttl_s
        if math.isnan(ttl):
            raise StoreError("ttl_s must be a number of seconds, not NaN")
        if ttl <= 0:
            return None
        ms = ttl * 1000.0
        return None if ms >= _MAX_TTL_MS else max(1, math.ceil(ms))

    # ---- errors -----------------------------------------------------------------------------------------

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        if self._closed:
            raise StoreError(f"the Redis online store ({self.where}) is closed; cannot {what}")
        exc = self._redis.exceptions
        try:
            yield
        except exc.AuthenticationError as e:
            raise StoreError(f"Redis at {self.where} refused the credentials ({what}): {_one_line(e)}") from e
        except (exc.ConnectionError, exc.TimeoutError) as e:
            raise StoreError(f"Redis at {self.where} is unreachable ({what}): {_one_line(e)}") from e
        except exc.RedisError as e:
            raise StoreError(f"Redis at {self.where} failed to {what}: {_one_line(e)}") from e

    # ---- writes -----------------------------------------------------------------------------------------

    def _write(self, kind: str, blobs: list[tuple[str, bytes]], ttl_s: float | None) -> None:
        ttl_ms = self._ttl_ms(ttl_s)
        if not blobs:
            return
        now_ms = time.time() * 1000.0
        deadline = math.inf if ttl_ms is None else now_ms + ttl_ms
        index = self.index_key(kind)
        with self._call(f"write {kind}"):
            pipe = self._client.pipeline(transaction=True)
            for symbol, blob in blobs:
                pipe.set(self.value_key(kind, symbol), blob, px=ttl_ms)
            pipe.zadd(index, {symbol: deadline for symbol, _ in blobs})
            pipe.zremrangebyscore(index, "-inf", f"({now_ms - self.sweep_grace_s * 1000.0:.0f}")
            pipe.execute()

    def put(self, kind: str, symbol: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        self._write(kind, [(symbol, encode_online_value(kind, symbol, value))], ttl_s)

    def put_many(self, kind: str, values: dict[str, dict[str, Any]], ttl_s: float | None = None) -> None:
        """All values in one ``MULTI``/``EXEC`` round trip (all encoded first: a bad value writes nothing)."""
        self._write(
            kind, [(symbol, encode_online_value(kind, symbol, value)) for symbol, value in values.items()], ttl_s
        )

    def delete(self, kind: str, symbol: str) -> None:
        with self._call(f"delete {kind}/{symbol}"):
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(self.value_key(kind, symbol))
            pipe.zrem(self.index_key(kind), symbol)
            pipe.execute()

    # ---- reads ------------------------------------------------------------------------------------------

    def get(self, kind: str, symbol: str) -> dict[str, Any] | None:
        with self._call(f"read {kind}/{symbol}"):
            blob = self._client.get(self.value_key(kind, symbol))
        return self._decode(kind, symbol, blob)

    def get_many(self, kind: str, symbols: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """One ``MGET`` round trip."""
        symbols = list(dict.fromkeys(symbols))
        if not symbols:
            return {}
        with self._call(f"read {kind}"):
            blobs = self._client.mget([self.value_key(kind, s) for s in symbols])
        return {s: self._decode(kind, s, b) for s, b in zip(symbols, blobs, strict=True)}

    def symbols(self, kind: str) -> list[str]:
        index = self.index_key(kind)
        with self._call(f"list {kind}"):
            members = [m.decode("utf-8") for m in self._client.zrange(index, 0, -1)]
            if not members:
                return []
            pipe = self._client.pipeline(transaction=False)
            for s in members:
                pipe.exists(self.value_key(kind, s))
            alive = pipe.execute()
            dead = [s for s, n in zip(members, alive, strict=True) if not n]
            if dead:
                self._drop_dead(index, [self.value_key(kind, s) for s in dead], dead)
        return sorted(s for s, n in zip(members, alive, strict=True) if n)

    def _drop_dead(self, index: str, keys: list[str], members: list[str]) -> None:
        """Remove index members whose keys are gone — unless one is written meanwhile (then retry later)."""
        with self._client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(*keys)
                if pipe.exists(*keys):
                    return  # revived since we looked: leave them all to a later call
                pipe.multi()
                pipe.zrem(index, *members)
                pipe.execute()
            except self._redis.exceptions.WatchError:
                pass  # a key was written after WATCH: its put re-added the member; nothing to drop now

    # ---- lifecycle --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect (only a client this store made; an injected one is its owner's). Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self.where!r}, key_prefix={self._prefix!r})"
