"""Bars stage: exact OHLCV, end labels, global watermark, lateness, late ticks kept, split invariance, gaps,
resampling (intraday and by New York session across DST), no look-ahead, checkpointing."""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse.features.bars import BAR_COLUMNS, BarsOut, BarState, flush, resample_bars, ticks_to_bars

S = 1_000_000_000
T0 = pd.Timestamp("2024-03-05 14:30", tz="UTC")  # a Tuesday, 09:30 New York
T0_NS = T0.value


def ticks(rows: Sequence[tuple[str, float, float, float]]) -> pd.DataFrame:
    """Rows ``(symbol, seconds after T0, price, size)`` in arrival order."""
    return pd.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "ts": pd.to_datetime([T0_NS + round(r[1] * S) for r in rows], utc=True),
            "price": [float(r[2]) for r in rows],
            "size": [float(r[3]) for r in rows],
        }
    )


def random_ticks(
    seed: int, n: int = 3_000, symbols: int = 5, span_s: int = 900, jitter_s: float = 0.0, grid_ms: int = 50
) -> pd.DataFrame:
    """A stream over ``span_s`` seconds on a coarse time grid (ties are common); with ``jitter_s`` rows arrive
    out of event order by up to that much."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, span_s * 1000 // grid_ms, n)) * grid_ms * 1_000_000
    if jitter_s:
        t = t[np.argsort(t + rng.uniform(0, jitter_s * S, n), kind="stable")]
    names = np.array([f"S{i}" for i in range(symbols)], dtype=object)
    return pd.DataFrame(
        {
            "symbol": names[rng.integers(0, symbols, n)],
            "ts": pd.to_datetime(T0_NS + t, utc=True),
            "price": np.round(100 + np.cumsum(rng.normal(0, 0.05, n)), 2),
            "size": rng.integers(1, 500, n).astype(float),
        }
    )


def run(
    frame: pd.DataFrame, interval_s: int, lateness_s: float = 0.0, cuts: Sequence[int] = (), **kw: Any
) -> tuple[pd.DataFrame, pd.DataFrame, BarState]:
    """Feed ``frame`` in micro-batches cut at ``cuts``, then flush: all bars and all late rows, concatenated."""
    state = BarState()
    bounds = [0, *sorted(set(cuts)), len(frame)]
    bars, late = [], []
    for lo, hi in itertools.pairwise(bounds):
        out = ticks_to_bars(frame.iloc[lo:hi], state, interval_s, lateness_s, **kw)
        bars.append(out.bars)
        late.append(out.late)
    bars.append(flush(state))
    return pd.concat(bars, ignore_index=True), pd.concat(late, ignore_index=True), state


def reference(frame: pd.DataFrame, interval_s: int) -> pd.DataFrame:
    """Straightforward pandas: order by event time (ties in arrival order), group by (symbol, bucket end)."""
    f = frame.assign(arrival=np.arange(len(frame))).sort_values(["ts", "arrival"], kind="stable")
    t = f["ts"].to_numpy("datetime64[ns]").view(np.int64)
    f = f.assign(end=(t // (interval_s * S) + 1) * interval_s * S, pv=f["price"] * f["size"])
    g = f.groupby(["symbol", "end"], sort=True).agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
        trades=("price", "size"),
        pv=("pv", "sum"),
    )
    g = g.reset_index()
    g["vwap"] = g.pop("pv") / g["volume"]
    g.insert(1, "ts", pd.to_datetime(g.pop("end"), utc=True))
    return g.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def newest_revisions(bars: pd.DataFrame) -> pd.DataFrame:
    """The newest revision of every bar, ordered like emitted bars (ts, symbol)."""
    final = bars.sort_values("revision", kind="stable").groupby(["symbol", "ts"]).tail(1)
    return final.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


# --- exactness and labels ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("interval_s", "jitter_s"), [(1, 0.0), (60, 0.0), (60, 20.0), (300, 45.0)])
def test_ohlcv_exact_against_pandas_reference(interval_s: int, jitter_s: float) -> None:
    frame = random_ticks(seed=interval_s, jitter_s=jitter_s)
    bars, late, _ = run(frame, interval_s, lateness_s=jitter_s + 1, cuts=[500, 1_700, 1_701])
    assert late.empty
    ref = reference(frame, interval_s)
    assert list(bars.columns) == list(BAR_COLUMNS)
    got = bars.drop(columns="revision")
    pd.testing.assert_frame_equal(got.drop(columns="vwap"), ref.drop(columns="vwap"), check_dtype=False)
    np.testing.assert_allclose(got["vwap"], ref["vwap"], rtol=1e-12)
    assert (bars["revision"] == 0).all()


def test_bars_are_labelled_by_their_end_and_intervals_are_half_open() -> None:
    frame = ticks([("A", 0.5, 10, 1), ("A", 59.999, 11, 1), ("A", 60.0, 12, 1), ("A", 200, 13, 1)])
    bars, _, _ = run(frame, 60)
    assert list(bars["ts"]) == [T0 + pd.Timedelta(seconds=s) for s in (60, 120, 240)]
    assert list(bars["open"]) == [10, 12, 13] and list(bars["close"]) == [11, 12, 13]


def test_a_bar_closes_when_the_global_watermark_passes_its_end() -> None:
    state = BarState()
    assert ticks_to_bars(ticks([("ILLIQ", 10, 5, 100)]), state, 60).bars.empty
    assert ticks_to_bars(ticks([("BUSY", 59.9, 50, 1)]), state, 60).bars.empty  # watermark 59.9 < end 60
    out = ticks_to_bars(ticks([("BUSY", 60.0, 51, 1)]), state, 60)  # the market moved on: ILLIQ closes too
    assert list(out.bars["symbol"]) == ["BUSY", "ILLIQ"]
    assert (out.bars["ts"] == T0 + pd.Timedelta(seconds=60)).all()
    assert state.watermark == T0_NS + 60 * S
    assert list(flush(state)["symbol"]) == ["BUSY"]


def test_allowed_lateness_delays_closing_and_keeps_ticks_inside_it() -> None:
    state = BarState()
    out = ticks_to_bars(ticks([("A", 10, 5, 100), ("B", 64, 6, 1)]), state, 60, allowed_lateness_s=5)
    assert out.bars.empty  # watermark 64 - 5 = 59 < 60
    out = ticks_to_bars(ticks([("A", 30, 7, 50), ("B", 65, 6, 1)]), state, 60, allowed_lateness_s=5)
    assert out.late.empty  # A@30 arrived while the watermark was 59: in time
    (bar,) = out.bars.itertuples()
    assert (bar.symbol, bar.open, bar.close, bar.volume, bar.trades) == ("A", 5, 7, 150, 2)
    out = ticks_to_bars(ticks([("A", 40, 8, 10)]), state, 60, allowed_lateness_s=5)
    assert out.bars.empty and len(out.late) == 1 and state.n_late == 1


def test_late_ticks_are_returned_counted_and_volume_is_conserved() -> None:
    frame = random_ticks(seed=3, n=4_000, jitter_s=30.0)
    bars, late, state = run(frame, 60, lateness_s=5.0, cuts=[1_000, 2_500])
    assert len(late) > 20 and state.n_late == len(late) and state.n_rows == len(frame)
    assert set(late.columns) >= {"symbol", "ts", "price", "size", "bar_ts", "revised"}
    assert not late["revised"].any()
    assert (late["bar_ts"] > late["ts"]).all() and (late["bar_ts"] - late["ts"] <= pd.Timedelta(seconds=60)).all()
    assert bars["volume"].sum() + late["size"].sum() == frame["size"].sum()
    assert bars["trades"].sum() + len(late) == len(frame)
    # what is in the bars is exactly the on-time ticks
    on_time = frame.merge(late[["symbol", "ts", "price", "size"]], how="left", indicator=True)
    ref = reference(frame[(on_time["_merge"] == "left_only").to_numpy()], 60)
    pd.testing.assert_frame_equal(bars.drop(columns=["vwap", "revision"]), ref.drop(columns="vwap"), check_dtype=False)


def test_late_ticks_can_revise_their_bar() -> None:
    state = BarState()
    kw: dict[str, Any] = {"revise_window_s": 600}
    out = ticks_to_bars(ticks([("A", 10, 5, 100), ("A", 70, 6, 1)]), state, 60, 0, **kw)
    assert list(out.bars["revision"]) == [0]
    out = ticks_to_bars(ticks([("A", 5, 4, 10), ("A", 50, 9, 10), ("A", 130, 6, 1)]), state, 60, 0, **kw)
    first = out.bars[out.bars["ts"] == T0 + pd.Timedelta(seconds=60)].iloc[0]
    assert (first.open, first.high, first.low, first.close, first.volume, first.trades, first.revision) == (
        4, 9, 4, 9, 120, 3, 2)  # fmt: skip
    assert list(out.late["revised"]) == [True, True] and state.n_revised == 2 and state.n_late == 2
    out = ticks_to_bars(ticks([("A", 20, 1, 1), ("A", 75, 2, 1)]), state, 60, 0, **kw)
    assert list(out.bars["revision"]) == [3, 1]
    # outside the window, or for a bucket without a bar: late, not revised
    state2 = BarState()
    ticks_to_bars(ticks([("A", 10, 5, 100), ("A", 1000, 6, 1)]), state2, 60, 0, revise_window_s=120)
    out = ticks_to_bars(ticks([("A", 20, 1, 1), ("A", 950, 1, 1), ("A", 300, 1, 1)]), state2, 60, 0,
                        revise_window_s=120)  # fmt: skip
    assert list(out.late["revised"]) == [False, False, False] and out.bars.empty


def test_revisions_conserve_volume() -> None:
    frame = random_ticks(seed=4, n=3_000, jitter_s=40.0)
    bars, late, _ = run(frame, 60, lateness_s=5.0, cuts=[700, 2_000], revise_window_s=15)
    assert late["revised"].any() and not late["revised"].all()
    final = newest_revisions(bars)
    assert final["volume"].sum() + late.loc[~late["revised"], "size"].sum() == frame["size"].sum()


# --- determinism ---------------------------------------------------------------------------------------------

CONFIGS: list[dict[str, Any]] = [{}, {"fill_gaps": True}, {"revise_window_s": 90.0}]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    cuts=st.lists(st.integers(0, 1_200), max_size=10),
    config=st.sampled_from(range(len(CONFIGS))),
    interval_s=st.sampled_from([1, 15, 60]),
)
def test_any_split_into_micro_batches_gives_identical_bars(
    seed: int, cuts: list[int], config: int, interval_s: int
) -> None:
    frame = random_ticks(seed, n=1_200, symbols=4, span_s=400, jitter_s=8.0)
    kw = CONFIGS[config]
    whole_bars, whole_late, whole = run(frame, interval_s, 3.0, **kw)
    bars, late, state = run(frame, interval_s, 3.0, cuts=cuts, **kw)
    if "revise_window_s" in kw:  # which intermediate revisions are published depends on the split
        whole_bars, bars = newest_revisions(whole_bars), newest_revisions(bars)
    pd.testing.assert_frame_equal(bars, whole_bars, check_exact=True)
    pd.testing.assert_frame_equal(late, whole_late, check_exact=True)
    assert (state.n_late, state.n_bars - state.n_filled) == (whole.n_late, whole.n_bars - whole.n_filled) or kw


def test_fractional_sizes_sum_identically_in_any_split() -> None:
    frame = random_ticks(seed=9, n=2_000)
    frame["size"] = np.random.default_rng(1).uniform(0.001, 3.0, len(frame))
    frame["price"] = np.random.default_rng(2).uniform(0.0001, 5000.0, len(frame))
    a, _, _ = run(frame, 60)
    b, _, _ = run(frame, 60, cuts=list(range(0, 2_000, 37)))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    ref = reference(frame, 60)
    np.testing.assert_allclose(a["volume"], ref["volume"], rtol=1e-12)
    np.testing.assert_allclose(a["vwap"], ref["vwap"], rtol=1e-10)


# --- gaps ----------------------------------------------------------------------------------------------------


def test_empty_intervals_give_no_bar_by_default() -> None:
    frame = ticks([("A", 10, 5, 1), ("A", 250, 6, 1), ("B", 400, 7, 1)])
    bars, _, _ = run(frame, 60)
    assert [(r.symbol, (r.ts - T0).seconds) for r in bars.itertuples()] == [("A", 60), ("A", 300), ("B", 420)]


def test_fill_gaps_emits_flat_bars_at_the_previous_close_up_to_the_watermark() -> None:
    frame = ticks([("A", 10, 5, 1), ("A", 20, 5.5, 3), ("A", 250, 6, 1), ("B", 400, 7, 1)])
    bars, _, state = run(frame, 60, fill_gaps=True)
    a = bars[bars["symbol"] == "A"]
    assert [(r.ts - T0).seconds for r in a.itertuples()] == [60, 120, 180, 240, 300, 360]
    fillers = a[a["volume"] == 0]
    assert list(fillers["ts"].map(lambda t: (t - T0).seconds)) == [120, 180, 240, 360]
    assert (fillers[["open", "high", "low", "close", "vwap"]].to_numpy() == [[5.5] * 5] * 3 + [[6.0] * 5]).all()
    assert (fillers["trades"] == 0).all()
    assert list(bars.loc[bars["symbol"] == "B", "ts"]) == [T0 + pd.Timedelta(seconds=420)]  # no fill before
    assert state.n_filled == 4


# --- resampling ----------------------------------------------------------------------------------------------


def resample_stream(
    frame: pd.DataFrame, fine_s: int, coarse_s: int, cuts: Sequence[int] = (), chain: bool = False
) -> pd.DataFrame:
    """ticks → fine bars → coarse bars, streamed micro-batch by micro-batch, then both flushed; with ``chain``
    the coarse stage is handed the fine stage's watermark."""
    fine, coarse = BarState(), BarState()
    bounds = [0, *sorted(set(cuts)), len(frame)]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        bars = ticks_to_bars(frame.iloc[lo:hi], fine, fine_s).bars
        result = resample_bars(bars, coarse, coarse_s, watermark=fine.watermark if chain else None)
        assert result.late.empty
        out.append(result.bars)
    out.append(resample_bars(flush(fine), coarse, coarse_s).bars)
    out.append(flush(coarse))
    return pd.concat(out, ignore_index=True)


@pytest.mark.parametrize("chain", [False, True])
@pytest.mark.parametrize(("fine_s", "coarse_s"), [(60, 300), (1, 60), (300, 3_600)])
def test_resampled_bars_equal_bars_made_directly(fine_s: int, coarse_s: int, chain: bool) -> None:
    frame = random_ticks(seed=fine_s, n=5_000, span_s=7_200)
    direct, _, _ = run(frame, coarse_s)
    via = resample_stream(frame, fine_s, coarse_s, cuts=[1_000, 3_333], chain=chain)
    cols = ["symbol", "ts", "open", "high", "low", "close", "volume", "trades", "revision"]
    pd.testing.assert_frame_equal(via[cols], direct[cols], check_exact=True)
    np.testing.assert_allclose(via["vwap"], direct["vwap"], rtol=1e-12)


def test_daily_bars_group_by_new_york_session_across_dst() -> None:
    ny = "America/New_York"
    # Fri 2024-03-08 (EST, UTC-5), then DST starts Sun 03-10; Mon 2024-03-11 (EDT, UTC-4)
    minutes = [pd.Timestamp(f"2024-03-0{d} 09:30", tz=ny) + pd.Timedelta(minutes=m) for d in (7, 8) for m in range(390)]
    minutes += [pd.Timestamp("2024-03-11 09:30", tz=ny) + pd.Timedelta(minutes=m) for m in range(390)]
    extra = [
        pd.Timestamp("2024-03-08 07:00", tz=ny),  # pre-market: Friday's session
        pd.Timestamp("2024-03-08 17:30", tz=ny),  # post-market: after Friday's 16:00 label, so Monday's
        pd.Timestamp("2024-03-09 12:00", tz=ny),  # Saturday: Monday's
    ]
    times = sorted(minutes + extra)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "symbol": "AAPL",
            "ts": pd.DatetimeIndex(times).tz_convert("UTC") + pd.Timedelta(seconds=1),
            "price": np.round(180 + np.cumsum(rng.normal(0, 0.1, len(times))), 2),
            "size": rng.integers(1, 1_000, len(times)).astype(float),
        }
    )
    daily = resample_stream(frame, 60, 86_400, cuts=[100, 900])
    labels = [pd.Timestamp(f"2024-03-{d} 16:00", tz=ny).tz_convert("UTC") for d in ("07", "08", "11")]
    assert list(daily["ts"]) == labels
    assert [t.hour for t in daily["ts"]] == [21, 21, 20]  # 16:00 New York: EST then EDT
    assert list(daily["trades"]) == [390, 391, 392]
    session = pd.DatetimeIndex(times).tz_convert(ny)
    session_of = np.select(
        [session <= pd.Timestamp("2024-03-07 16:00", tz=ny), session <= pd.Timestamp("2024-03-08 16:00", tz=ny)],
        [0, 1],
        2,
    )
    for i, row in enumerate(daily.itertuples()):
        part = frame[session_of == i]
        assert (row.open, row.close) == (part["price"].iloc[0], part["price"].iloc[-1])
        assert (row.high, row.low, row.volume) == (part["price"].max(), part["price"].min(), part["size"].sum())
    direct, _, _ = run(frame, 86_400)  # ticks straight to session bars agree
    pd.testing.assert_frame_equal(direct.drop(columns="vwap"), daily.drop(columns="vwap"), check_exact=True)


def test_resample_refuses_revisions_into_late() -> None:
    state = BarState()
    bars = pd.DataFrame(
        {
            "symbol": ["A", "A"],
            "ts": pd.to_datetime([T0_NS + 60 * S, T0_NS + 60 * S], utc=True),
            "open": [1.0, 1.0],
            "high": [2.0, 3.0],
            "low": [1.0, 1.0],
            "close": [2.0, 3.0],
            "volume": [10.0, 11.0],
            "revision": [0, 1],
        }
    )
    out = resample_bars(bars, state, 300)
    assert len(out.late) == 1 and out.late["revision"].iloc[0] == 1
    (bar,) = flush(state).itertuples()
    assert (bar.high, bar.volume, bar.trades) == (2.0, 10.0, 0)


# --- honesty and operations ----------------------------------------------------------------------------------


def test_perturbing_ticks_after_t_never_changes_bars_emitted_up_to_t() -> None:
    frame = random_ticks(seed=11, n=4_000, span_s=1_200, jitter_s=3.0)
    cut = T0 + pd.Timedelta(seconds=600)
    rng = np.random.default_rng(5)
    future = (frame["ts"] > cut).to_numpy()
    changed = frame.copy()
    changed.loc[future, "price"] = changed.loc[future, "price"] * rng.uniform(0.5, 2.0, future.sum())
    changed.loc[future, "size"] = rng.integers(1, 10_000, future.sum()).astype(float)
    changed = changed.drop(index=frame.index[future][::3]).reset_index(drop=True)
    for lateness in (0.0, 5.0):
        a, _, _ = run(frame, 60, lateness, cuts=[1_000, 2_000, 3_000])
        b, _, _ = run(changed, 60, lateness, cuts=[900, 2_500])
        a, b = a[a["ts"] <= cut].reset_index(drop=True), b[b["ts"] <= cut].reset_index(drop=True)
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.parametrize("kw", CONFIGS)
def test_state_pickles_and_restores_mid_stream(kw: dict[str, Any]) -> None:
    frame = random_ticks(seed=12, n=2_000, jitter_s=10.0)
    expected, expected_late, _ = run(frame, 60, 4.0, cuts=[800], **kw)
    state = BarState()
    first = ticks_to_bars(frame.iloc[:800], state, 60, 4.0, **kw)
    restored = pickle.loads(pickle.dumps(state))
    del state
    second = ticks_to_bars(frame.iloc[800:], restored, 60, 4.0, **kw)
    bars = pd.concat([first.bars, second.bars, flush(restored)], ignore_index=True)
    pd.testing.assert_frame_equal(bars, expected, check_exact=True)
    pd.testing.assert_frame_equal(pd.concat([first.late, second.late], ignore_index=True), expected_late)


def test_categorical_symbols_give_the_same_bars() -> None:
    frame = random_ticks(seed=13, n=2_000, jitter_s=5.0)
    a, la, _ = run(frame, 60, 2.0, cuts=[300])
    cat = frame.assign(symbol=pd.Categorical(frame["symbol"], categories=["S4", "S3", "S2", "S1", "S0", "ZZ"]))
    b, lb, _ = run(cat, 60, 2.0, cuts=[300])
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert len(la) == len(lb)


def test_an_external_watermark_closes_bars_after_the_batch() -> None:
    state = BarState()
    ticks_to_bars(ticks([("A", 10, 5, 1)]), state, 60)
    out = ticks_to_bars(ticks([("B", 1, 5, 1)]), state, 60, watermark=T0 + pd.Timedelta(seconds=60))
    assert list(out.bars["symbol"]) == ["A", "B"] and out.late.empty  # the batch is not judged against it
    out = ticks_to_bars(ticks([("B", 2, 5, 1)]), state, 60)
    assert out.bars.empty and len(out.late) == 1  # but later rows are
    state = BarState()
    ticks_to_bars(ticks([("A", 10, 5, 1)]), state, 60)
    out = ticks_to_bars(ticks([]).astype({"symbol": object}), state, 60, watermark=T0 + pd.Timedelta(seconds=60))
    assert list(out.bars["symbol"]) == ["A"]  # an empty batch with a watermark closes bars too


def test_a_state_belongs_to_one_configuration() -> None:
    state = BarState()
    ticks_to_bars(ticks([("A", 10, 5, 1)]), state, 60)
    with pytest.raises(ValueError, match="belongs to a stage"):
        ticks_to_bars(ticks([("A", 11, 5, 1)]), state, 300)
    with pytest.raises(ValueError, match="divide a day"):
        ticks_to_bars(ticks([("A", 11, 5, 1)]), BarState(), 7)
    with pytest.raises(ValueError, match="tz-aware"):
        ticks_to_bars(ticks([("A", 11, 5, 1)]).assign(ts=pd.Timestamp("2024-01-02")), BarState(), 60)
    with pytest.raises(ValueError, match=">= 0"):
        ticks_to_bars(ticks([("A", 11, 5, 1)]), BarState(), 60, -1.0)
    with pytest.raises(ValueError, match="NaT"):
        ticks_to_bars(
            ticks([("A", 11, 5, 1)]).assign(ts=pd.Series([pd.NaT], dtype="datetime64[ns, UTC]")), BarState(), 60
        )


def test_output_types() -> None:
    out = ticks_to_bars(ticks([("A", 10, 5, 1), ("A", 70, 5, 1)]), BarState(), 60)
    assert isinstance(out, BarsOut)
    assert str(out.bars["ts"].dtype) == "datetime64[ns, UTC]"
    assert out.bars["trades"].dtype == np.int64 and out.bars["revision"].dtype == np.int64


def test_bench_bars_reports_figures() -> None:
    from marketpulse.bench_bars import bench_bars

    figures = bench_bars(n=60_000, symbols=10, repeat=1)
    assert figures["bars"] == figures["reference_bars"] > 0 and figures["late"] == 0
    assert figures["bars_ticks_per_s"] > 0 and figures["ratio_vs_pandas_groupby"] > 0
