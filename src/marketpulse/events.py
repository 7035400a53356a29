"""The event model and its versioned wire codec.

Every event carries its **event time** ``ts`` (tz-aware, normalised to UTC, from the source) and an **ingest
stamp** ``ingest_ns`` (``time.monotonic_ns()`` when it entered the system) so latency is measured, never guessed.

Wire format: an envelope ``[version, event]`` where ``event`` is a tagged struct (``"type": "Tick"``), encoded
as MessagePack (compact, the default on the bus) or JSON (human-readable). Decoding checks the version and
raises :class:`~marketpulse.errors.CodecError` for bytes that are not a known event of a known version.

The hot path does not create one Python object per tick: :class:`TickBatch` and :class:`BarBatch` carry one
symbol's rows as little-endian numpy buffers (one message per symbol per micro-batch, order kept).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeAlias

import msgspec
import numpy as np
import pandas as pd

from marketpulse.errors import CodecError

WIRE_VERSION = 1
Format: TypeAlias = Literal["msgpack", "json"]

UtcDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_ns() -> int:
    """The ingest stamp: monotonic nanoseconds (comparable within one host only)."""
    return time.monotonic_ns()


def utc(ts: datetime) -> datetime:
    """Normalise an aware datetime to UTC; refuse a naive one (ambiguous by construction)."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"naive datetime {ts!r}: event times must be timezone-aware")
    return ts.astimezone(UTC)


class Event(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of every event: event time and ingest stamp."""

    ts: UtcDatetime
    ingest_ns: int = 0

    def __post_init__(self) -> None:
        if self.ts.utcoffset() != UTC.utcoffset(None):  # naive (None) or another offset
            msgspec.structs.force_setattr(self, "ts", utc(self.ts))

    @property
    def key(self) -> str | None:
        """Partition key on the bus (the symbol where there is one)."""
        return getattr(self, "symbol", None)


class Tick(Event, frozen=True, kw_only=True):
    """One trade (or a synthetic price point, marked ``synthetic``)."""

    symbol: str
    price: float
    size: float = 0.0
    synthetic: bool = False


class Bar(Event, frozen=True, kw_only=True):
    """OHLCV over ``interval_s`` seconds; ``ts`` is the bar's end (label) time."""

    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    interval_s: int = 60


class Post(Event, frozen=True, kw_only=True):
    """A social post (X/Twitter, Reddit, StockTwits...); ``ts`` is when it was posted (available)."""

    id: str
    text: str
    source: str
    author: str | None = None
    symbols: tuple[str, ...] = ()
    engagement: float | None = None
    url: str | None = None
    title: str | None = None

    @property
    def key(self) -> str | None:
        return self.symbols[0] if self.symbols else None


class Article(Post, frozen=True, kw_only=True):
    """A news article or headline; same fields as a post, ``title`` usually set."""


class SentimentScore(Event, frozen=True, kw_only=True):
    """Sentiment of one text (or an aggregate) for one symbol: polarity in [-1, 1], intensity in [0, 1]."""

    symbol: str
    source: str
    model: str
    polarity: float
    intensity: float
    probs: dict[str, float] = msgspec.field(default_factory=dict)
    ref_id: str | None = None


class Prediction(Event, frozen=True, kw_only=True):
    """Probability that ``symbol`` moves up over ``horizon_s`` seconds after ``ts``; ``expected_move`` the
    probability-weighted log return (from the model's typical move), ``confidence`` ``|p_up − p_down|``,
    ``version`` the registered model version (``name@n``) that produced it."""

    symbol: str
    model: str
    horizon_s: int
    p_up: float
    p_down: float | None = None
    expected_move: float = 0.0
    confidence: float = 0.0
    version: str = ""


class Signal(Event, frozen=True, kw_only=True):
    """The fused signal in [-1, 1] with the components and weights that made it."""

    symbol: str
    score: float
    components: dict[str, float] = msgspec.field(default_factory=dict)
    weights: dict[str, float] = msgspec.field(default_factory=dict)


class Alert(Event, frozen=True, kw_only=True):
    """A rule fired."""

    rule: str
    severity: Literal["info", "warning", "critical"]
    message: str
    symbol: str | None = None


class DeadLetter(Event, frozen=True, kw_only=True):
    """A rejected record: where it came from (``source`` and ``position`` such as ``file.csv:17``), which field,
    why, and the raw record so nothing is lost.

    ``ts`` is the record's own event time when it could be read, else the newest event time the source had
    reached before it (the epoch when none): both repeat exactly when a file is replayed again, so a replay
    stores its dead letters once (key: ``ts`` + ``id``). ``id`` is ``position#reason``; ``rejected_at`` is the
    wall-clock moment of the rejection.
    """

    source: str
    position: str
    field: str
    reason: str
    record: str
    kind: str = ""
    detail: str = ""
    id: str = ""
    rejected_at: UtcDatetime | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.id:
            msgspec.structs.force_setattr(self, "id", f"{self.position}#{self.reason}")


def _newest(ts_ns: np.ndarray) -> datetime:
    """The newest time of a batch, floored to the microsecond (never later than any tick in it)."""
    return _EPOCH + timedelta(microseconds=int(ts_ns.max()) // 1000)


def _buf(values: Any, dtype: str) -> bytes:
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


class TickBatch(Event, frozen=True, kw_only=True):
    """One symbol's ticks of one micro-batch, columnar (int64 ns UTC, float64, float64; little-endian).

    ``ts`` is the newest event time in the batch; ``ingest_ns`` when the batch entered.
    """

    symbol: str
    ts_ns: bytes
    price: bytes
    size: bytes
    synthetic: bool = False
    seq: bytes = b""

    @property
    def key(self) -> str | None:
        return self.symbol

    def __len__(self) -> int:
        return len(self.ts_ns) // 8

    @classmethod
    def from_arrays(
        cls,
        symbol: str,
        ts_ns: Any,
        price: Any,
        size: Any,
        *,
        seq: Any = None,
        synthetic: bool = False,
        ingest_ns: int = 0,
    ) -> TickBatch:
        ts_arr = np.ascontiguousarray(ts_ns, dtype="<i8")
        if ts_arr.size == 0:
            raise ValueError("a TickBatch holds at least one tick")
        return cls(
            symbol=symbol,
            ts=_newest(ts_arr),
            ts_ns=ts_arr.tobytes(),
            price=_buf(price, "<f8"),
            size=_buf(size, "<f8"),
            seq=b"" if seq is None else _buf(seq, "<i4"),
            synthetic=synthetic,
            ingest_ns=ingest_ns,
        )

    def to_frame(self) -> pd.DataFrame:
        n = len(self)
        return pd.DataFrame(
            {
                "symbol": [self.symbol] * n,
                "ts": pd.to_datetime(np.frombuffer(self.ts_ns, "<i8"), utc=True),
                "price": np.frombuffer(self.price, "<f8"),
                "size": np.frombuffer(self.size, "<f8"),
                "seq": np.frombuffer(self.seq, "<i4") if self.seq else np.zeros(n, "<i4"),
            }
        )


class BarBatch(Event, frozen=True, kw_only=True):
    """One symbol's bars of one micro-batch, columnar (see :class:`TickBatch`)."""

    symbol: str
    ts_ns: bytes
    open: bytes
    high: bytes
    low: bytes
    close: bytes
    volume: bytes
    interval_s: int = 60

    @property
    def key(self) -> str | None:
        return self.symbol

    def __len__(self) -> int:
        return len(self.ts_ns) // 8

    @classmethod
    def from_arrays(
        cls,
        symbol: str,
        ts_ns: Any,
        o: Any,
        h: Any,
        lo: Any,
        c: Any,
        v: Any,
        *,
        interval_s: int = 60,
        ingest_ns: int = 0,
    ) -> BarBatch:
        ts_arr = np.ascontiguousarray(ts_ns, dtype="<i8")
        if ts_arr.size == 0:
            raise ValueError("a BarBatch holds at least one bar")
        return cls(
            symbol=symbol,
            ts=_newest(ts_arr),
            ts_ns=ts_arr.tobytes(),
            open=_buf(o, "<f8"),
            high=_buf(h, "<f8"),
            low=_buf(lo, "<f8"),
            close=_buf(c, "<f8"),
            volume=_buf(v, "<f8"),
            interval_s=interval_s,
            ingest_ns=ingest_ns,
        )

    def to_frame(self) -> pd.DataFrame:
        n = len(self)
        return pd.DataFrame(
            {
                "symbol": [self.symbol] * n,
                "ts": pd.to_datetime(np.frombuffer(self.ts_ns, "<i8"), utc=True),
                **{c: np.frombuffer(getattr(self, c), "<f8") for c in ("open", "high", "low", "close", "volume")},
            }
        )


class FeatureBatch(Event, frozen=True, kw_only=True):
    """One symbol's model feature vectors of one micro-batch: ``values`` is a row-major float64 matrix
    (rows × ``len(names)``, little-endian), one row per ``ts_ns``; ``schema`` is the feature-schema hash that
    models store, so a model never reads vectors of another definition."""

    symbol: str
    ts_ns: bytes
    names: tuple[str, ...]
    values: bytes
    schema: str

    @property
    def key(self) -> str | None:
        return self.symbol

    def __len__(self) -> int:
        return len(self.ts_ns) // 8

    @classmethod
    def from_arrays(
        cls, symbol: str, ts_ns: Any, names: tuple[str, ...], values: Any, schema: str, *, ingest_ns: int = 0
    ) -> FeatureBatch:
        ts_arr = np.ascontiguousarray(ts_ns, dtype="<i8")
        matrix = np.ascontiguousarray(values, dtype="<f8")
        if ts_arr.size == 0 or matrix.shape != (ts_arr.size, len(names)):
            raise ValueError(f"a FeatureBatch needs rows × {len(names)} values for {ts_arr.size} rows")
        return cls(
            symbol=symbol,
            ts=_newest(ts_arr),
            ts_ns=ts_arr.tobytes(),
            names=tuple(names),
            values=matrix.tobytes(),
            schema=schema,
            ingest_ns=ingest_ns,
        )

    def matrix(self) -> np.ndarray:
        return np.frombuffer(self.values, "<f8").reshape(len(self), len(self.names))

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.matrix(), columns=list(self.names))
        frame.insert(0, "ts", pd.to_datetime(np.frombuffer(self.ts_ns, "<i8"), utc=True))
        frame.insert(0, "symbol", self.symbol)
        return frame


AnyEvent: TypeAlias = (
    Tick
    | Bar
    | Post
    | Article
    | SentimentScore
    | Prediction
    | Signal
    | Alert
    | DeadLetter
    | TickBatch
    | BarBatch
    | FeatureBatch
)
EVENT_TYPES: tuple[type[Event], ...] = (
    Tick,
    Bar,
    Post,
    Article,
    SentimentScore,
    Prediction,
    Signal,
    Alert,
    DeadLetter,
    TickBatch,
    BarBatch,
    FeatureBatch,
)


class _Envelope(msgspec.Struct, array_like=True, frozen=True):
    v: int
    e: AnyEvent


_MP_ENC = msgspec.msgpack.Encoder()
_JS_ENC = msgspec.json.Encoder()
_MP_DEC = msgspec.msgpack.Decoder(_Envelope)
_JS_DEC = msgspec.json.Decoder(_Envelope)
_VERSION_PROBE_MP = msgspec.msgpack.Decoder(tuple[int, Any])
_VERSION_PROBE_JS = msgspec.json.Decoder(tuple[int, Any])


def encode(event: Event, fmt: Format = "msgpack") -> bytes:
    """Encode one event with its wire version."""
    env = _Envelope(WIRE_VERSION, event)  # type: ignore[arg-type]
    return _MP_ENC.encode(env) if fmt == "msgpack" else _JS_ENC.encode(env)


def decode(data: bytes, fmt: Format = "msgpack") -> AnyEvent:
    """Decode bytes produced by :func:`encode`; :class:`CodecError` names what is wrong."""
    try:
        env = (_MP_DEC if fmt == "msgpack" else _JS_DEC).decode(data)
    except msgspec.ValidationError as e:
        try:
            version = (_VERSION_PROBE_MP if fmt == "msgpack" else _VERSION_PROBE_JS).decode(data)[0]
        except msgspec.DecodeError:
            version = WIRE_VERSION
        if version != WIRE_VERSION:
            raise CodecError(f"unsupported wire version {version} (this build reads {WIRE_VERSION})") from e
        raise CodecError(f"invalid event: {e}") from e
    except msgspec.DecodeError as e:
        raise CodecError(f"not a {fmt} event envelope: {e}") from e
    if env.v != WIRE_VERSION:
        raise CodecError(f"unsupported wire version {env.v} (this build reads {WIRE_VERSION})")
    return env.e


def schema_header(event: Event) -> str:
    """The value of the ``schema`` header put on every bus message: ``marketpulse.<Type>/v<version>``."""
    return f"marketpulse.{type(event).__name__}/v{WIRE_VERSION}"
