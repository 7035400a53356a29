"""Validation: every record accepted or dead-lettered with its position, field and reason; counters always add up."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from marketpulse.config import ValidationConfig
from marketpulse.events import Article, Post
from marketpulse.ingest import open_source
from marketpulse.ingest.base import MarketBatch, TextBatch
from marketpulse.ingest.market import CsvMarketSource, FrameMarketSource
from marketpulse.ingest.social import JsonlTextSource
from marketpulse.ingest.validate import MarketValidator, Result, TextValidator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BAR_COLS = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
TICK_COLS = ["timestamp", "symbol", "price", "size"]
NO_OUTLIERS = 10**9  # outlier_min_history that is never reached


def config(**kw: Any) -> ValidationConfig:
    return ValidationConfig(**kw)


class Tally:
    """Validates batches in order and checks ``read == accepted + deadlettered`` after each one and overall."""

    def __init__(self, validator: MarketValidator | TextValidator) -> None:
        self.validator = validator
        self.results: list[Result] = []

    def run(self, batches: Sequence[MarketBatch | TextBatch]) -> Tally:
        for batch in batches:
            result = self.validator.validate(batch)  # type: ignore[arg-type]
            assert_accounted(result, batch.read)
            self.results.append(result)
        return self

    @property
    def read(self) -> int:
        return sum(r.read for r in self.results)

    @property
    def accepted(self) -> Any:
        frames = [r.accepted for r in self.results]
        if frames and isinstance(frames[0], pd.DataFrame):
            return pd.concat([f.assign(symbol=f["symbol"].astype(str)) for f in frames], ignore_index=True)
        return [e for f in frames for e in f]

    @property
    def letters(self) -> list[Any]:
        return [d for r in self.results for d in r.deadletters]

    @property
    def reasons(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for r in self.results:
            out.update(r.reasons)
        return out

    def by_line(self) -> dict[int, tuple[str, str]]:
        """Dead letters as ``line -> (reason, field)``."""
        return {int(d.position.rsplit(":", 1)[1]): (d.reason, d.field) for d in self.letters}


def assert_accounted(result: Result, read: int | None = None) -> None:
    """The counting identity every validation keeps."""
    assert result.read == result.n_accepted + len(result.deadletters)
    assert sum(result.reasons.values()) == len(result.deadletters)
    assert Counter(d.reason for d in result.deadletters) == result.reasons
    if read is not None:
        assert result.read == read


def frame_batches(kind: str, rows: list[tuple[Any, ...]], batch_rows: int = 65_536) -> list[MarketBatch]:
    frame = pd.DataFrame(rows, columns=BAR_COLS if kind == "bars" else TICK_COLS)
    return list(FrameMarketSource("mem", kind, frame, batch_rows=batch_rows).batches())  # type: ignore[arg-type]


def csv_batches(tmp_path: Path, kind: str, text: str) -> list[MarketBatch]:
    path = tmp_path / f"{kind}.csv"
    path.write_text(text)
    return list(CsvMarketSource(path, kind).batches())  # type: ignore[arg-type]


def validate(kind: str, batches: list[MarketBatch], **kw: Any) -> Tally:
    return Tally(MarketValidator(config(**kw), kind)).run(batches)


def bar(
    ts: str, o: float = 100.0, h: float = 101.0, lo: float = 99.0, c: float = 100.5, v: float = 10.0, sym: str = "X"
):
    return (ts, sym, o, h, lo, c, v)


def tick(ts: str, p: float = 100.0, s: float = 10.0, sym: str = "X") -> tuple[Any, ...]:
    return (ts, sym, p, s)


# -- each reason, bars -----------------------------------------------------------------------------------------


def test_broken_bars_fixture_gets_one_reason_per_row() -> None:
    """The file documented in tests/fixtures/README.md, line by line."""
    src = open_source(FIXTURES / "bars_broken.csv", "bars")
    t = Tally(MarketValidator(config(), "bars")).run(list(src.batches()))  # type: ignore[arg-type]
    assert t.read == 13
    assert len(t.accepted) == 3
    assert t.accepted["close"].tolist() == [100.5, 101.1, 101.7]
    assert t.by_line() == {
        3: ("bad_number", "low"),
        4: ("non_positive_price", "open"),
        5: ("high_below_low", "high"),
        6: ("bad_timestamp", "ts"),
        7: ("duplicate", "ts"),
        10: ("out_of_order", "ts"),
        11: ("bad_row", "*"),
        12: ("missing_value", "symbol"),
        13: ("negative_volume", "volume"),
        14: ("missing_value", "close"),
    }
    letters = {int(d.position.rsplit(":", 1)[1]): d for d in t.letters}
    assert letters[3].record == "2024-01-02 14:32:00,AAPL,100.5,101.0,abc,100.7,1200"
    assert letters[3].position.endswith("bars_broken.csv:3")
    assert letters[11].detail == "expected 7 fields, got 6"
    assert all(d.kind == "bars" and d.source.endswith("bars_broken.csv") for d in t.letters)


@pytest.mark.parametrize(
    ("row", "reason", "field"),
    [
        ("2024-01-02 14:32:00,X,100,101,99,inf,10", "not_finite", "close"),
        ("2024-01-02 14:32:00,X,100,101,99,100,inf", "not_finite", "volume"),
        ("2024-01-02 14:32:00,X,0,101,99,100,10", "non_positive_price", "open"),
        ("2024-01-02 14:32:00,X,100,101,-99,100,10", "non_positive_price", "low"),
        ("2024-01-02 14:32:00,X,100,101,99,100,-1", "negative_volume", "volume"),
        ("2024-01-02 14:32:00,X,100,98,99,98.5,10", "high_below_low", "high"),
        ("2024-01-02 14:32:00,X,100,100.2,99,100.5,10", "high_below_open_close", "high"),
        ("2024-01-02 14:32:00,X,100,101,100.2,100.5,10", "low_above_open_close", "low"),
        ("2024-01-02 14:32:00,X,100,101,,100.5,10", "missing_value", "low"),
        ("2024-01-02 14:32:00,X,100,1O1,99,100.5,10", "bad_number", "high"),
        ("2024-13-02 14:32:00,X,100,101,99,100.5,10", "bad_timestamp", "ts"),
        ("2024-01-02 14:32:00,X,100,101,99,100.5", "bad_row", "*"),
        ("2024-01-02 14:31:00,X,100,101,99,100.5,10", "duplicate", "ts"),
        ("2024-01-02 14:30:00,X,100,101,99,100.5,10", "out_of_order", "ts"),
    ],
)
def test_bar_reasons(tmp_path: Path, row: str, reason: str, field: str) -> None:
    first, last = "2024-01-02 14:31:00,X,100,101,99,100.5,10", "2024-01-02 14:33:00,X,100,101,99,100,5"
    text = f"{','.join(BAR_COLS)}\n{first}\n{row}\n{last}\n"
    t = validate("bars", csv_batches(tmp_path, "bars", text))
    assert t.read == 3
    assert t.by_line() == {3: (reason, field)}
    assert len(t.accepted) == 2


# -- each reason, ticks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason", "field"),
    [
        ("2024-01-02T14:30:01Z,X,inf,1", "not_finite", "price"),
        ("2024-01-02T14:30:01Z,X,0,1", "non_positive_price", "price"),
        ("2024-01-02T14:30:01Z,X,-3,1", "non_positive_price", "price"),
        ("2024-01-02T14:30:01Z,X,100,-1", "negative_volume", "size"),
        ("2024-01-02T14:30:01Z,X,,1", "missing_value", "price"),
        ("2024-01-02T14:30:01Z,X,1e,1", "bad_number", "price"),
        ("2024-01-02T14:30:01Z,,100,1", "missing_value", "symbol"),
        ("yesterday,X,100,1", "bad_timestamp", "ts"),
        ("2024-01-02T14:30:01Z,X,100", "bad_row", "*"),
        ("2024-01-02T14:30:00Z,X,100,10", "duplicate", "ts"),  # same time, price and size as the previous tick
        ("2024-01-02T14:29:59Z,X,100,10", "out_of_order", "ts"),
    ],
)
def test_tick_reasons(tmp_path: Path, row: str, reason: str, field: str) -> None:
    text = f"{','.join(TICK_COLS)}\n2024-01-02T14:30:00Z,X,100,10\n{row}\n2024-01-02T14:30:02Z,X,100.01,5\n"
    t = validate("ticks", csv_batches(tmp_path, "ticks", text))
    assert t.read == 3
    assert t.by_line() == {3: (reason, field)}


def test_ticks_sharing_a_timestamp_are_not_duplicates_unless_identical() -> None:
    rows = [
        tick("2024-01-02T14:30:00Z", 100.0, 10),
        tick("2024-01-02T14:30:00Z", 100.0, 20),  # other size: a second trade
        tick("2024-01-02T14:30:00Z", 100.01, 20),  # other price: a third trade
        tick("2024-01-02T14:30:00Z", 100.01, 20),  # identical to the previous one: duplicate
        tick("2024-01-02T14:30:00Z", 100.0, 10),  # identical to an earlier but not the previous tick: kept
    ]
    t = validate("ticks", frame_batches("ticks", rows))
    assert t.by_line() == {4: ("duplicate", "ts")}
    assert t.accepted["seq"].tolist() == [0, 1, 2, 3]


def test_nanosecond_times_are_compared_exactly() -> None:
    """int64 ns near 2024 are beyond float64 precision: 1 ns apart is in order and not a duplicate."""
    base = pd.Timestamp("2024-01-02 14:30:00.123456789", tz="UTC")
    rows = [
        tick(base, 100.0, 1),
        tick(base + pd.Timedelta(1, "ns"), 100.0, 1),
        tick(base + pd.Timedelta(2, "ns"), 100.0, 1),
        tick(base + pd.Timedelta(1, "ns"), 100.0, 2),  # 1 ns older than the newest: out of order
    ]
    frame = pd.DataFrame(rows, columns=TICK_COLS)
    t = validate("ticks", list(FrameMarketSource("mem", "ticks", frame).batches()))
    assert t.by_line() == {4: ("out_of_order", "ts")}
    assert t.accepted["ts"].tolist() == [r[0] for r in rows[:3]]


# -- precedence --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason", "field"),
    [
        ("nope,,abc,-1,5,0,-3", "bad_timestamp", "ts"),  # parse failures first, ts before the rest
        ("2024-01-02 14:32:00,,abc,-1,5,0,-3", "missing_value", "symbol"),
        ("2024-01-02 14:32:00,X,abc,-1,5,0,-3", "bad_number", "open"),
        ("2024-01-02 14:32:00,X,100,inf,-5,0,-3", "not_finite", "high"),  # not_finite before ranges
        ("2024-01-02 14:32:00,X,100,101,-5,0,-3", "non_positive_price", "low"),  # first price column that fails
        ("2024-01-02 14:32:00,X,100,98,99,102,-3", "negative_volume", "volume"),  # volume before OHLC shape
        ("2024-01-02 14:32:00,X,100,98,99,102,3", "high_below_low", "high"),
        ("2024-01-02 14:30:00,X,100,98,99,102,3", "high_below_low", "high"),  # range before order
        ("2024-01-02 14:31:00,X,100,98,99,102,3", "high_below_low", "high"),  # range before duplicate
    ],
)
def test_one_reason_per_row_first_wins(tmp_path: Path, row: str, reason: str, field: str) -> None:
    text = f"{','.join(BAR_COLS)}\n2024-01-02 14:31:00,X,100,101,99,100.5,10\n{row}\n"
    t = validate("bars", csv_batches(tmp_path, "bars", text))
    assert t.by_line() == {3: (reason, field)}
    assert len(t.letters) == 1


def test_stale_comes_before_order_and_hours_before_stale() -> None:
    rows = [
        bar("2024-01-02T15:00:00Z"),
        bar("2024-01-02T15:10:00Z"),
        bar("2024-01-02T15:05:00Z"),  # 5 min behind: out of order, not stale (limit 6 min)
        bar("2024-01-02T15:02:00Z"),  # 8 min behind: stale (also out of order)
        bar("2024-01-02T03:00:00Z"),  # outside market hours (also stale and out of order)
    ]
    t = validate("bars", frame_batches("bars", rows), stale_after_s=360, market_hours=True)
    assert t.by_line() == {
        3: ("out_of_order", "ts"),
        4: ("stale", "ts"),
        5: ("outside_market_hours", "ts"),
    }


# -- state across batches ---------------------------------------------------------------------------------------


def _messy_bars() -> list[tuple[Any, ...]]:
    rows = []
    minutes = [0, 1, 2, 2, 1, 3, 5, 4, 6, 6, 7, 9, 8, 10, 10, 11]
    for i, m in enumerate(minutes):
        for sym in ("AAA", "BBB"):
            ts = f"2024-01-02T15:{m + (i % 3 == 0 and sym == 'BBB'):02d}:00Z"
            rows.append(bar(ts, c=100 + i / 10, h=102, lo=98, sym=sym))
    return rows


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 5, 7, 16])
def test_order_and_duplicate_state_carries_across_batches(batch_rows: int) -> None:
    rows = _messy_bars()
    one = validate("bars", frame_batches("bars", rows), outlier_min_history=NO_OUTLIERS)
    split = validate("bars", frame_batches("bars", rows, batch_rows), outlier_min_history=NO_OUTLIERS)
    assert len(split.results) > 1
    assert one.reasons["out_of_order"] > 0 and one.reasons["duplicate"] > 0
    assert split.by_line() == one.by_line()
    pd.testing.assert_frame_equal(split.accepted, one.accepted)
    assert split.read == one.read == len(rows)


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 4])
def test_tick_seq_continues_across_batches(batch_rows: int) -> None:
    rows = [
        tick("2024-01-02T14:30:00Z", 100.0, 1),
        tick("2024-01-02T14:30:00Z", 100.0, 2, sym="Y"),
        tick("2024-01-02T14:30:00Z", 100.0, 3),
        tick("2024-01-02T14:30:00Z", 100.0, 4),
        tick("2024-01-02T14:30:00Z", 100.0, 4),  # duplicate of the previous X tick: no seq consumed
        tick("2024-01-02T14:30:00Z", 100.0, 5, sym="Y"),
        tick("2024-01-02T14:30:01Z", 100.0, 6),
        tick("2024-01-02T14:30:01Z", 100.0, 7),
        tick("2024-01-02T14:30:00Z", 100.0, 8, sym="Y"),
    ]
    t = validate("ticks", frame_batches("ticks", rows, batch_rows))
    assert t.by_line() == {5: ("duplicate", "ts")}
    got = list(zip(t.accepted["symbol"], t.accepted["size"], t.accepted["seq"], strict=True))
    assert got == [
        ("X", 1, 0),
        ("Y", 2, 0),
        ("X", 3, 1),
        ("X", 4, 2),
        ("Y", 5, 1),
        ("X", 6, 0),
        ("X", 7, 1),
        ("Y", 8, 2),
    ]


def test_fixture_ticks_seq() -> None:
    src = open_source(FIXTURES / "ticks_good.csv", "ticks")
    t = Tally(MarketValidator(config(), "ticks")).run(list(src.batches()))  # type: ignore[arg-type]
    assert t.letters == []
    assert list(zip(t.accepted["symbol"], t.accepted["seq"], strict=True)) == [
        ("MSFT", 0),
        ("MSFT", 1),
        ("AAPL", 0),
        ("MSFT", 0),
        ("AAPL", 0),
        ("AAPL", 1),
        ("MSFT", 0),
        ("AAPL", 0),
    ]


# -- outliers ----------------------------------------------------------------------------------------------------


def _walk(n: int = 120, seed: int = 3, sigma: float = 0.001) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))


def _price_bars(prices: Sequence[float], sym: str = "X") -> list[tuple[Any, ...]]:
    start = pd.Timestamp("2024-01-02 14:31", tz="UTC")
    return [(start + pd.Timedelta(minutes=i), sym, p, p, p, p, 100.0) for i, p in enumerate(prices)]


def test_a_lone_bad_print_is_rejected_and_the_next_accepted() -> None:
    prices = _walk()
    prices[80] *= 1.25
    t = validate("bars", frame_batches("bars", _price_bars(prices)))
    assert t.by_line() == {81: ("outlier_jump", "close")}  # row 80 is position 81 (1-based)
    assert len(t.accepted) == len(prices) - 1


def test_a_bad_print_followed_by_a_bad_print_in_the_other_direction() -> None:
    prices = _walk()
    prices[60] *= 0.7
    prices[90] *= 1.4
    t = validate("bars", frame_batches("bars", _price_bars(prices)))
    assert t.by_line() == {61: ("outlier_jump", "close"), 91: ("outlier_jump", "close")}


def test_a_level_shift_is_kept() -> None:
    prices = _walk()
    prices[70:] *= 1.25  # a real repricing that stays
    t = validate("bars", frame_batches("bars", _price_bars(prices)))
    assert t.letters == []


def test_a_trend_is_kept() -> None:
    prices = _walk()
    prices[60:80] *= np.exp(0.02 * np.arange(1, 21))  # 20 bars of +2 %: each step far beyond 12 sigma
    prices[80:] *= np.exp(0.02 * 20)
    t = validate("bars", frame_batches("bars", _price_bars(prices)))
    assert t.letters == []


def test_nothing_is_judged_before_min_history() -> None:
    prices = _walk(60)
    prices[10] *= 1.5
    t = validate("bars", frame_batches("bars", _price_bars(prices)), outlier_min_history=30)
    assert t.letters == []
    prices[40] *= 1.5
    t = validate("bars", frame_batches("bars", _price_bars(prices)), outlier_min_history=30)
    assert t.by_line() == {41: ("outlier_jump", "close")}


def test_outlier_history_carries_across_batches() -> None:
    prices = _walk()
    prices[80] *= 1.25
    t = validate("bars", frame_batches("bars", _price_bars(prices), batch_rows=50))
    assert t.by_line() == {81: ("outlier_jump", "close")}


def test_outliers_are_judged_per_symbol() -> None:
    a, b = _walk(seed=1), _walk(seed=2) * 3
    b[70] *= 0.75
    rows = [r for pair in zip(_price_bars(a, "AAA"), _price_bars(b, "BBB"), strict=True) for r in pair]
    t = validate("bars", frame_batches("bars", rows))
    assert [(d.reason, d.record.split(",")[1]) for d in t.letters] == [("outlier_jump", "BBB")]


def test_one_tick_bounces_are_not_outliers() -> None:
    """Most ticks trade at an unchanged price: the robust scale must not collapse to zero."""
    rng = np.random.default_rng(5)
    prices = 224.00 + 0.01 * rng.choice([0, 0, 0, 0, 0, -1, 1], size=400)  # bid/ask bounce around 224
    start = pd.Timestamp("2012-06-21 13:30", tz="UTC")
    rows = [(start + pd.Timedelta(milliseconds=37 * i), "AMZN", p, 100.0 + i) for i, p in enumerate(prices)]
    t = validate("ticks", frame_batches("ticks", rows))
    assert t.letters == []
    rows[300] = (rows[300][0], "AMZN", 250.0, 100.0)  # a genuinely bad print is still caught
    t = validate("ticks", frame_batches("ticks", rows))
    assert t.by_line() == {301: ("outlier_jump", "price")}


# -- stale ----------------------------------------------------------------------------------------------------------


def test_stale_against_the_newest_event_time_of_the_source() -> None:
    rows = [
        bar("2024-01-02T15:00:00Z", sym="A"),
        bar("2024-01-02T15:10:00Z", sym="B"),
        bar("2024-01-02T15:04:00Z", sym="A"),  # 6 min behind B: within the limit (new for A)
        bar("2024-01-02T15:03:59Z", sym="C"),  # 6 min 1 s behind: stale, whatever the symbol
    ]
    t = validate("bars", frame_batches("bars", rows, batch_rows=2), stale_after_s=360)
    assert t.by_line() == {4: ("stale", "ts")}
    assert validate("bars", frame_batches("bars", rows)).letters == []  # off by default


def test_stale_watermark_ignores_rejected_rows() -> None:
    rows = [
        bar("2024-01-02T15:00:00Z"),
        bar("2024-01-02T18:00:00Z", lo=-1),  # rejected: must not move the watermark
        bar("2024-01-02T15:01:00Z"),
    ]
    t = validate("bars", frame_batches("bars", rows, batch_rows=1), stale_after_s=360)
    assert t.by_line() == {2: ("non_positive_price", "low")}


# -- market hours ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "ok"),
    [
        ("2024-01-02T15:00:00Z", True),  # Tuesday, in session
        ("2024-01-06T15:00:00Z", False),  # Saturday
        ("2024-01-02T03:00:00Z", False),  # night
        ("2024-01-15T15:00:00Z", False),  # Martin Luther King Jr. Day: closed
        ("2024-01-02T14:30:00Z", False),  # a bar ending at the open covers pre-market
        ("2024-01-02T14:31:00Z", True),  # the first regular bar
        ("2024-01-02T21:00:00Z", True),  # bar-end label exactly at the close
        ("2024-01-02T21:01:00Z", False),
        ("2024-07-01T20:00:00Z", True),  # close in EDT
        ("2024-07-01T20:01:00Z", False),
        ("2024-11-29T18:00:00Z", True),  # day after Thanksgiving: early close at 13:00 ET
        ("2024-11-29T18:01:00Z", False),
    ],
)
def test_market_hours_for_bars(ts: str, ok: bool) -> None:
    t = validate("bars", frame_batches("bars", [bar(ts)]), market_hours=True, calendar="XNYS")
    assert len(t.accepted) == int(ok)
    assert t.by_line() == ({} if ok else {1: ("outside_market_hours", "ts")})


@pytest.mark.parametrize(
    ("ts", "ok"),
    [
        ("2024-01-02T14:30:00Z", True),  # a trade at the open
        ("2024-01-02T14:29:59.999Z", False),
        ("2024-01-02T20:59:59.999Z", True),
        ("2024-01-02T21:00:00Z", False),  # a trade stamped at the close is after the session
    ],
)
def test_market_hours_for_ticks(ts: str, ok: bool) -> None:
    t = validate("ticks", frame_batches("ticks", [tick(ts)]), market_hours=True)
    assert t.by_line() == ({} if ok else {1: ("outside_market_hours", "ts")})


def test_market_hours_off_by_default() -> None:
    t = validate("bars", frame_batches("bars", [bar("2024-01-06T15:00:00Z")]))
    assert t.letters == []


# -- text ------------------------------------------------------------------------------------------------------------


def text_batch(records: list[dict[str, Any]], kind: str = "posts") -> TextBatch:
    return TextBatch("feed.jsonl", kind, [(i, dict(r)) for i, r in enumerate(records, start=1)], [])  # type: ignore[arg-type]


GOOD = {"id": "1", "created_at": "2024-01-02T14:30:00Z", "text": "hello $AAPL", "source": "x"}


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"id": None}, "missing_value", "id"),
        ({"id": "  "}, "missing_value", "id"),
        ({"created_at": ""}, "missing_value", "created_at"),
        ({"text": ""}, "missing_value", "text"),
        ({"source": None}, "missing_value", "source"),
        ({"text": ["tokens", "list"]}, "bad_type", "text"),
        ({"created_at": "31/31/2024"}, "bad_timestamp", "created_at"),
        ({"engagement": "many"}, "bad_number", "engagement"),
        ({"engagement": -1}, "bad_number", "engagement"),
        ({"engagement": "nan"}, "bad_number", "engagement"),
        ({"symbols": [1, 2]}, "bad_type", "symbols"),
        ({"symbols": {"a": 1}}, "bad_type", "symbols"),
        ({"id": "0"}, "duplicate", "id"),
    ],
)
def test_text_reasons(change: dict[str, Any], reason: str, field: str) -> None:
    first = {**GOOD, "id": "0"}
    t = Tally(TextValidator(config(), "posts")).run([text_batch([first, {**GOOD, **change}])])
    assert t.by_line() == {2: (reason, field)}
    (letter,) = t.letters
    assert letter.position == "feed.jsonl:2"
    assert letter.kind == "posts"
    assert json.loads(letter.record)["source"] == ({**GOOD, **change})["source"]


def test_text_accepted_fields() -> None:
    rec = {
        **GOOD,
        "created_at": "2024-01-02 09:30:00",
        "symbols": "$aapl; msft,AAPL",
        "engagement": "7",
        "author": 42,
        "url": "u",
    }
    t = Tally(TextValidator(config(naive_timezone="America/New_York"), "posts")).run([text_batch([rec])])
    (post,) = t.accepted
    assert isinstance(post, Post) and not isinstance(post, Article)
    assert post.ts == pd.Timestamp("2024-01-02 14:30", tz="UTC").to_pydatetime()
    assert post.symbols == ("AAPL", "MSFT")
    assert post.engagement == 7.0
    assert post.author == "42"
    assert post.key == "AAPL"


def test_text_duplicates_are_per_source_and_across_batches() -> None:
    v = TextValidator(config(), "posts")
    t = Tally(v).run(
        [
            text_batch([GOOD, {**GOOD, "source": "y"}]),
            text_batch([{**GOOD, "text": "edited"}, {**GOOD, "id": "2"}]),
        ]
    )
    assert [(d.position, d.reason) for d in t.letters] == [("feed.jsonl:1", "duplicate")]
    assert len(t.accepted) == 3


def test_text_stale() -> None:
    recs = [
        {**GOOD, "id": "1", "created_at": "2024-01-02T15:00:00Z"},
        {**GOOD, "id": "2", "created_at": "2024-01-02T14:55:00Z"},  # 5 min behind: kept
        {**GOOD, "id": "3", "created_at": "2024-01-02T14:49:00Z"},  # 11 min behind: stale
    ]
    t = Tally(TextValidator(config(stale_after_s=600), "posts")).run([text_batch(recs)])
    assert t.by_line() == {3: ("stale", "created_at")}


def test_news_records_become_articles() -> None:
    t = Tally(TextValidator(config(), "news")).run([text_batch([{**GOOD, "title": "T"}], "news")])
    (article,) = t.accepted
    assert isinstance(article, Article)
    assert article.title == "T"


def test_posts_fixture() -> None:
    """tests/fixtures/posts.jsonl, as documented in tests/fixtures/README.md."""
    src = open_source(FIXTURES / "posts.jsonl", "posts")
    t = Tally(TextValidator(config(), "posts")).run(list(src.batches()))  # type: ignore[arg-type]
    assert t.read == 9
    assert t.by_line() == {
        3: ("bad_json", "*"),
        4: ("missing_value", "text"),
        5: ("bad_timestamp", "created_at"),
        6: ("duplicate", "id"),
        8: ("bad_number", "engagement"),
    }
    assert [(p.source, p.id) for p in t.accepted] == [
        ("twitter", "p1"),
        ("twitter", "p2"),
        ("reddit", "p7"),
        ("stocktwits", "p1"),
    ]
    p2 = t.accepted[1]
    assert p2.ts == pd.Timestamp("2024-01-02 14:31", tz="UTC").to_pydatetime()
    assert p2.symbols == ("MSFT",) and p2.engagement == 3.0
    assert t.accepted[2].symbols == ("AAPL", "MSFT")
    assert t.accepted[2].ts == pd.Timestamp("2024-01-02 14:37", tz="UTC").to_pydatetime()


def test_news_fixture() -> None:
    src = open_source(FIXTURES / "news.jsonl", "news")
    t = Tally(TextValidator(config(), "news")).run(list(src.batches()))  # type: ignore[arg-type]
    assert t.read == 3 and t.letters == []
    assert [a.symbols for a in t.accepted] == [("AAPL",), ("MSFT",), ()]
    assert all(isinstance(a, Article) and a.title for a in t.accepted)


def test_jsonl_line_that_is_not_utf8_is_one_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    good = json.dumps(GOOD).encode()
    path.write_bytes(good + b"\n" + b'{"id": "\xff\xfe"}\n' + json.dumps({**GOOD, "id": "2"}).encode() + b"\n[1, 2]\n")
    t = Tally(TextValidator(config(), "posts")).run(list(JsonlTextSource(path).batches()))
    assert t.by_line() == {2: ("bad_row", "*"), 4: ("bad_row", "*")}
    assert len(t.accepted) == 2


def test_stockemotions_and_benzinga_sources(tmp_path: Path) -> None:
    emo = tmp_path / "emo.csv"
    emo.write_text(
        "id,date,ticker,emo_label,senti_label,original,processed\n"
        '1,2020-01-02,AMZN,excitement,bullish,"multi\nline post",x\n'
        "2,,TSLA,panic,bearish,no date,x\n"
        "3,2020-01-03,,belief,bullish,no ticker,x\n"
    )
    t = Tally(TextValidator(config(), "posts")).run(list(open_source(emo, "posts").batches()))  # type: ignore[arg-type]
    assert [(p.id, p.symbols, p.source) for p in t.accepted] == [
        ("1", ("AMZN",), "stocktwits"),
        ("3", (), "stocktwits"),
    ]
    # date-only posts are stamped at the end of their US/Eastern day
    assert t.accepted[0].ts == pd.Timestamp("2020-01-03 04:59:59", tz="UTC").to_pydatetime()
    assert [(d.reason, d.field) for d in t.letters] == [("missing_value", "created_at")]

    bz = tmp_path / "bz.csv"
    bz.write_text(
        "id,title,date,stock\n"
        "1,Later headline,2019-12-27 11:27:00-05:00,A\n"
        "2,Earlier headline,2019-12-20 11:59:00-05:00,A\n"
        "3,Too,many,fields,here\n"
        "4,Bad date,someday,A\n"
    )
    t = Tally(TextValidator(config(), "news")).run(list(open_source(bz, "news").batches()))  # type: ignore[arg-type]
    assert [a.title for a in t.accepted] == ["Earlier headline", "Later headline"]  # oldest first
    assert t.by_line() == {4: ("bad_row", "*"), 5: ("bad_timestamp", "created_at")}


def test_stocknet_folder_tweets_merged_by_time(tmp_path: Path) -> None:
    import gzip

    base = tmp_path / "tweet" / "preprocessed"
    base.mkdir(parents=True)
    aapl = [
        {"text": ["$", "aapl", "up"], "created_at": "Wed Jan 01 18:08:47 +0000 2014", "user_id_str": "1"},
        {"text": ["late"], "created_at": "Thu Jan 02 09:00:00 +0000 2014", "user_id_str": "2"},
    ]
    (base / "AAPL.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in aapl).encode()))
    (base / "FB").mkdir()
    (base / "FB" / "2014-01-01").write_text(
        json.dumps({"text": ["fb"], "created_at": "Wed Jan 01 03:59:03 +0000 2014", "user_id_str": "3"})
        + "\nnot json\n"
    )
    src = open_source(tmp_path, "posts")
    t = Tally(TextValidator(config(), "posts")).run(list(src.batches()))  # type: ignore[arg-type]
    assert [p.symbols for p in t.accepted] == [("FB",), ("AAPL",), ("AAPL",)]
    assert t.accepted[1].text == "$ aapl up"
    assert [(d.position, d.reason) for d in t.letters] == [
        (f"{tmp_path}/tweet/preprocessed/FB/2014-01-01:2", "bad_row")
    ]
    only_fb = open_source(tmp_path, "posts", symbol="FB")
    assert sum(b.read for b in only_fb.batches()) == 2  # type: ignore[union-attr]


def test_text_with_a_lone_surrogate_is_dead_lettered_as_bad_encoding(tmp_path: Path) -> None:
    from marketpulse.ingest.social import JsonlTextSource

    path = tmp_path / "posts.jsonl"
    path.write_text(
        '{"id": "1", "created_at": "2024-01-02T15:00:00Z", "text": "fine $AAPL", "source": "x"}\n'
        '{"id": "2", "created_at": "2024-01-02T15:00:01Z", "text": "bad \\ud800 text", "source": "x"}\n'
    )
    validator = TextValidator(ValidationConfig(), "posts")
    results = [validator.validate(b) for b in JsonlTextSource(path).batches()]
    accepted = [p for r in results for p in r.accepted]
    letters = [d for r in results for d in r.deadletters]
    assert [p.id for p in accepted] == ["1"]
    assert [(d.field, d.reason, d.position) for d in letters] == [("text", "bad_encoding", f"{path}:2")]
