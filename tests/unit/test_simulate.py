"""Tests of the tick simulator and of ticks bridged inside real daily bars."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketpulse.datasets.bundled import DEMO_SYMBOLS, sample_path
from marketpulse.ingest.simulate import (
    Regimes,
    bridge_ticks,
    intraday_profile,
    simulate_tick_csv_bytes,
    simulate_ticks,
)

NY = "America/New_York"
START = pd.Timestamp("2024-03-04 09:30", tz=NY)  # a Monday


def _local_minutes(ts: pd.Series) -> pd.Series:
    local = ts.dt.tz_convert(NY)
    return local.dt.hour * 60 + local.dt.minute + local.dt.second / 60 + local.dt.microsecond / 60e6


# --------------------------------------------------------------------------------------------- simulate_ticks


@pytest.fixture(scope="module")
def many_ticks() -> pd.DataFrame:
    return simulate_ticks(["AAA", "BBB", "CCC"], START, 150_000, seed=11)


def test_columns_and_dtypes(many_ticks: pd.DataFrame) -> None:
    assert list(many_ticks.columns) == ["timestamp", "symbol", "price", "size"]
    assert str(many_ticks["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(many_ticks["symbol"].dtype, pd.StringDtype)
    assert many_ticks["price"].dtype == np.float64
    assert many_ticks["size"].dtype == np.float64
    assert len(many_ticks) == 150_000


def test_same_seed_same_ticks_other_seed_other_ticks() -> None:
    a = simulate_ticks(["X", "Y"], START, 5_000, seed=3)
    b = simulate_ticks(["X", "Y"], START, 5_000, seed=3)
    c = simulate_ticks(["X", "Y"], START, 5_000, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a["price"].equals(c["price"])
    assert not a["timestamp"].equals(c["timestamp"])


def test_prices_positive_in_cents_and_sizes_whole_shares(many_ticks: pd.DataFrame) -> None:
    price = many_ticks["price"].to_numpy()
    assert (price > 0).all()
    np.testing.assert_allclose(price * 100, np.round(price * 100), atol=1e-6)
    size = many_ticks["size"].to_numpy()
    assert (size >= 1).all()
    assert (size == np.round(size)).all()


def test_prices_stay_positive_under_wild_volatility() -> None:
    ticks = simulate_ticks(["Z"], START, 20_000, seed=5, s0=1.0, sigma=3.0, jump_intensity=5.0, jump_sigma=0.5)
    assert (ticks["price"] >= 0.01).all()


def test_time_ordered_interleaved_and_inside_weekday_sessions(many_ticks: pd.DataFrame) -> None:
    ts = many_ticks["timestamp"]
    assert ts.is_monotonic_increasing
    assert ts.iloc[0] >= START
    minutes = _local_minutes(ts)
    assert (minutes >= 9 * 60 + 30).all() and (minutes < 16 * 60).all()
    assert (ts.dt.tz_convert(NY).dt.day_of_week < 5).all()
    symbols = many_ticks["symbol"].to_numpy()
    assert set(symbols) == {"AAA", "BBB", "CCC"}
    assert (symbols[1:] != symbols[:-1]).mean() > 0.5  # interleaved, not one block per symbol


def test_start_on_a_weekend_or_after_close_moves_to_next_session() -> None:
    saturday = pd.Timestamp("2024-03-09 11:00", tz=NY)
    first = simulate_ticks(["A"], saturday, 10, seed=1)["timestamp"].iloc[0].tz_convert(NY)
    assert first.date() == pd.Timestamp("2024-03-11").date()  # Monday
    evening = pd.Timestamp("2024-03-05 18:00", tz="UTC").tz_convert("Asia/Tokyo")  # 13:00 in New York
    first = simulate_ticks(["A"], evening, 10, seed=1)["timestamp"].iloc[0]
    assert first >= evening
    late = pd.Timestamp("2024-03-05 16:30", tz=NY)
    first = simulate_ticks(["A"], late, 10, seed=1)["timestamp"].iloc[0].tz_convert(NY)
    assert first.date() == pd.Timestamp("2024-03-06").date()


@pytest.mark.parametrize("seed", range(20))
def test_no_tick_before_a_mid_session_start(seed: int) -> None:
    start = pd.Timestamp("2024-03-05 11:17:03.123456789", tz=NY)
    ticks = simulate_ticks(["A", "B"], start, 50, seed=seed, ticks_per_day=1e7)
    assert ticks["timestamp"].iloc[0] >= start
    assert ticks["timestamp"].iloc[0] - start < pd.Timedelta(seconds=1)


def test_tick_intensity_is_u_shaped(many_ticks: pd.DataFrame) -> None:
    minutes = _local_minutes(many_ticks["timestamp"])
    first = ((minutes >= 570) & (minutes < 600)).sum()
    midday = ((minutes >= 720) & (minutes < 750)).sum()
    last = ((minutes >= 930) & (minutes < 960)).sum()
    assert first > 1.5 * midday
    assert last > 1.5 * midday


def test_sizes_are_larger_at_open_and_close(many_ticks: pd.DataFrame) -> None:
    minutes = _local_minutes(many_ticks["timestamp"])
    size = many_ticks["size"]
    midday = size[(minutes >= 720) & (minutes < 750)].mean()
    assert size[minutes < 600].mean() > 1.3 * midday
    assert size[minutes >= 930].mean() > 1.3 * midday


def test_intraday_profile_has_mean_one_and_u_shape() -> None:
    u = np.linspace(0, 1, 100_001)
    profile = intraday_profile(u)
    assert profile.mean() == pytest.approx(1.0, abs=1e-3)
    assert profile[0] > 2 * profile[50_000] and profile[-1] > 2 * profile[50_000]


def test_zero_volatility_no_jumps_keeps_the_price() -> None:
    ticks = simulate_ticks(["A", "B"], START, 2_000, seed=2, mu=0.0, sigma=0.0, jump_intensity=0.0)
    assert (ticks["price"] == 100.0).all()


@pytest.mark.parametrize("multiplier", [1.0, 2.0])
def test_realised_volatility_matches_sigma_times_regime(multiplier: float) -> None:
    ticks = simulate_ticks(
        ["A"], START, 100_000, seed=8, s0=10_000.0, sigma=0.2, jump_intensity=0.0,
        regimes=Regimes(low=multiplier, high=multiplier, switch_prob=0.0),
    )  # fmt: skip
    days = ticks["timestamp"].dt.tz_convert(NY).dt.date.nunique()
    log_ret = np.diff(np.log(ticks["price"].to_numpy()))
    realised = np.sqrt((log_ret**2).sum() / days * 252)
    assert realised == pytest.approx(0.2 * multiplier, rel=0.1)


def test_regime_switching_changes_volatility_over_time() -> None:
    def run(regimes: Regimes) -> pd.DataFrame:
        return simulate_ticks(["A"], START, 50_000, seed=9, s0=10_000.0, jump_intensity=0.0, regimes=regimes)

    calm, switching = run(Regimes(1.0, 1.0, 0.0)), run(Regimes(0.2, 3.0, 0.02))

    def hourly_vol_dispersion(ticks: pd.DataFrame) -> float:
        lr = pd.Series(np.diff(np.log(ticks["price"].to_numpy())), index=ticks["timestamp"].iloc[1:])
        per_hour = (lr**2).groupby(lr.index.floor("h")).sum()
        return float(per_hour.std() / per_hour.mean())

    assert hourly_vol_dispersion(switching) > 1.5 * hourly_vol_dispersion(calm)


def test_jumps_add_large_moves() -> None:
    def run(intensity: float) -> pd.DataFrame:
        return simulate_ticks(
            ["A"], START, 50_000, seed=4, s0=10_000.0, sigma=0.05, jump_intensity=intensity, jump_sigma=0.05
        )

    plain, jumpy = run(0.0), run(2.0)
    big = 0.02
    assert (np.abs(np.diff(np.log(plain["price"]))) > big).sum() == 0
    assert (np.abs(np.diff(np.log(jumpy["price"]))) > big).sum() >= 2


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="naive"):
        simulate_ticks(["A"], pd.Timestamp("2024-03-04 10:00"), 10, seed=1)
    with pytest.raises(ValueError, match="duplicate"):
        simulate_ticks(["A", "A"], START, 10, seed=1)
    with pytest.raises(ValueError):
        simulate_ticks([], START, 10, seed=1)
    with pytest.raises(ValueError):
        simulate_ticks(["A"], START, 10, seed=1, sigma=-0.1)


def test_zero_ticks_gives_an_empty_typed_frame() -> None:
    empty = simulate_ticks(["A"], START, 0, seed=1)
    assert empty.empty
    assert list(empty.columns) == ["timestamp", "symbol", "price", "size"]
    assert str(empty["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_csv_bytes_match_the_frame_and_parse() -> None:
    payload = simulate_tick_csv_bytes(20_000, ["AAPL", "MSFT", "BAC"], 5)
    lines = payload.split(b"\n")
    assert lines[0] == b"timestamp,symbol,price,size"
    assert lines[-1] == b""  # newline-terminated
    assert len(lines) == 20_000 + 2
    assert lines[1].split(b",")[0].endswith(b"Z") and b"T" in lines[1]
    parsed = pd.read_csv(io.BytesIO(payload))
    ref = simulate_ticks(["AAPL", "MSFT", "BAC"], pd.Timestamp("2024-01-02 09:30", tz=NY), 20_000, seed=5)
    assert (pd.to_datetime(parsed["timestamp"], utc=True).to_numpy() == ref["timestamp"].to_numpy()).all()
    assert (parsed["symbol"].to_numpy() == ref["symbol"].to_numpy()).all()
    assert (parsed["price"].to_numpy() == ref["price"].to_numpy()).all()
    assert (parsed["size"].to_numpy() == ref["size"].to_numpy()).all()
    assert payload == simulate_tick_csv_bytes(20_000, ["AAPL", "MSFT", "BAC"], 5)


# ---------------------------------------------------------------------------------------------- bridge_ticks


def _sample_bars(symbols: tuple[str, ...] = DEMO_SYMBOLS) -> pd.DataFrame:
    frames = []
    for symbol in symbols:
        raw = pd.read_csv(sample_path() / "stocknet" / "price" / "raw" / f"{symbol}.csv.gz")
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": pd.to_datetime(raw["Date"]),
                    "symbol": symbol,
                    "open": raw["Open"],
                    "high": raw["High"],
                    "low": raw["Low"],
                    "close": raw["Close"],
                    "volume": raw["Volume"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _bars(rows: list[tuple[str, float, float, float, float, float]], symbol: str = "T") -> pd.DataFrame:
    return pd.DataFrame(
        [(pd.Timestamp(d), symbol, o, h, lo, c, v) for d, o, h, lo, c, v in rows],
        columns=["timestamp", "symbol", "open", "high", "low", "close", "volume"],
    )


def _check_invariants(bars: pd.DataFrame, ticks: pd.DataFrame, n: int, tz: str = NY) -> None:
    """Every guarantee of bridge_ticks, per (symbol, day)."""
    assert list(ticks.columns) == ["timestamp", "symbol", "price", "size", "synthetic"]
    assert str(ticks["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert ticks["synthetic"].dtype == bool and ticks["synthetic"].all()
    assert ticks["timestamp"].is_monotonic_increasing
    assert len(ticks) == n * len(bars)
    local = ticks["timestamp"].dt.tz_convert(tz)
    keyed = ticks.assign(date=local.dt.strftime("%Y-%m-%d"), minutes=_local_minutes(ticks["timestamp"]))
    for (symbol, day), group in keyed.groupby(["symbol", "date"], sort=False):
        bar = bars[(bars["symbol"] == symbol) & (bars["timestamp"].dt.strftime("%Y-%m-%d") == day)]
        assert len(bar) == 1 and len(group) == n
        o, h, lo, c, v = (float(bar[col].iloc[0]) for col in ("open", "high", "low", "close", "volume"))
        price = group["price"].to_numpy()
        assert price[0] == o and price[-1] == c
        assert price.max() == h and price.min() == lo
        if h > lo:
            assert (price == h).sum() == max(1, int(o == h) + int(c == h))
            assert (price == lo).sum() == max(1, int(o == lo) + int(c == lo))
            # shrunk, not clipped: no ticks piled up on the float just inside an extreme
            if np.nextafter(h, lo) > np.nextafter(lo, h):
                assert not np.isin(price, [np.nextafter(h, lo), np.nextafter(lo, h)]).any()
        size = group["size"].to_numpy()
        assert (size >= 0).all() and (size == np.round(size)).all()
        assert size.sum() == round(v)
        minutes = group["minutes"].to_numpy()
        assert minutes[0] == 9 * 60 + 30 and minutes[-1] == 16 * 60
        assert (np.diff(minutes) > 0).all()


@pytest.fixture(scope="module")
def real_bars() -> pd.DataFrame:
    return _sample_bars()


def test_bridge_reproduces_real_stocknet_bars_exactly(real_bars: pd.DataFrame) -> None:
    ticks = bridge_ticks(real_bars, seed=1)
    _check_invariants(real_bars, ticks, 390)


def test_bridge_is_deterministic_and_per_symbol_independent(real_bars: pd.DataFrame) -> None:
    a = bridge_ticks(real_bars, seed=7, ticks_per_day=50)
    pd.testing.assert_frame_equal(a, bridge_ticks(real_bars, seed=7, ticks_per_day=50))
    assert not a["price"].equals(bridge_ticks(real_bars, seed=8, ticks_per_day=50)["price"])
    alone = bridge_ticks(real_bars[real_bars["symbol"] == "MSFT"], seed=7, ticks_per_day=50)
    within = a[a["symbol"] == "MSFT"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, within)


def test_bridge_path_moves_like_a_random_walk(real_bars: pd.DataFrame) -> None:
    ticks = bridge_ticks(real_bars[real_bars["symbol"] == "AAPL"], seed=2)
    price = ticks["price"].to_numpy().reshape(-1, 390)
    width = price.max(axis=1) - price.min(axis=1)
    step = np.diff(price, axis=1).std(axis=1)
    # not a straight line between anchors: noise of the order of range / sqrt(n) ...
    assert np.median(step / width * np.sqrt(389)) > 0.3
    # ... in every segment, including the one between the two extremes (no near-straight line there)
    natural = 0.5 * width / np.sqrt(389)
    between = []
    for row, unit in zip(price, natural, strict=True):
        a, b = sorted((int(np.argmax(row)), int(np.argmin(row))))
        if b - a >= 10:
            between.append(np.diff(row[a : b + 1]).std() / unit)
    assert len(between) > 20
    assert np.median(between) > 0.6


def test_bridge_volume_profile_is_u_shaped(real_bars: pd.DataFrame) -> None:
    ticks = bridge_ticks(real_bars, seed=3)
    minutes = _local_minutes(ticks["timestamp"])
    share = ticks["size"] / ticks.groupby(["symbol", ticks["timestamp"].dt.date])["size"].transform("sum")
    midday = share[(minutes >= 720) & (minutes < 750)].mean()
    assert share[minutes < 600].mean() > 1.5 * midday
    assert share[minutes >= 930].mean() > 1.5 * midday


def test_bridge_session_is_dst_correct() -> None:
    bars = _bars([("2014-07-15", 10, 11, 9, 10.5, 1000), ("2014-01-15", 10, 11, 9, 10.5, 1000)])
    ticks = bridge_ticks(bars, seed=1, ticks_per_day=10)
    utc = ticks["timestamp"].dt.strftime("%Y-%m-%d %H:%M")
    assert utc.iloc[0] == "2014-01-15 14:30" and utc.iloc[9] == "2014-01-15 21:00"
    assert utc.iloc[10] == "2014-07-15 13:30" and utc.iloc[19] == "2014-07-15 20:00"


def test_bridge_accepts_tz_aware_dates_and_other_sessions() -> None:
    naive = _bars([("2015-03-02", 10, 11, 9, 10.5, 1000)])
    aware = naive.assign(timestamp=naive["timestamp"].dt.tz_localize(NY))
    pd.testing.assert_frame_equal(bridge_ticks(naive, seed=1), bridge_ticks(aware, seed=1))
    london = bridge_ticks(naive, seed=1, ticks_per_day=6, tz="Europe/London", open_time="08:00", close_time="16:30")
    assert london["timestamp"].iloc[0] == pd.Timestamp("2015-03-02 08:00", tz="UTC")
    assert london["timestamp"].iloc[-1] == pd.Timestamp("2015-03-02 16:30", tz="UTC")


DEGENERATE = [
    pytest.param((10.0, 10.0, 10.0, 10.0), id="flat"),
    pytest.param((10.0, 10.0, 9.0, 9.5), id="open-is-high"),
    pytest.param((9.0, 10.0, 9.0, 9.5), id="open-is-low"),
    pytest.param((9.5, 10.0, 9.0, 10.0), id="close-is-high"),
    pytest.param((9.5, 10.0, 9.0, 9.0), id="close-is-low"),
    pytest.param((10.0, 10.0, 9.0, 9.0), id="open-high-close-low"),
    pytest.param((9.0, 10.0, 9.0, 10.0), id="open-low-close-high"),
    pytest.param((10.0, 10.0, 9.0, 10.0), id="open-close-high"),
    pytest.param((9.0, 10.0, 9.0, 9.0), id="open-close-low"),
    pytest.param((9.5, 9.51, 9.5, 9.51), id="one-cent-range"),
]


@pytest.mark.parametrize("ohlc", DEGENERATE)
@pytest.mark.parametrize("n", [4, 5, 390])
def test_bridge_degenerate_bars(ohlc: tuple[float, float, float, float], n: int) -> None:
    o, h, lo, c = ohlc
    bars = _bars([("2015-06-01", o, h, lo, c, 12_345), ("2015-06-02", 9.5, 10.0, 9.0, 9.7, 0)])
    _check_invariants(bars, bridge_ticks(bars, seed=4, ticks_per_day=n), n)


def test_bridge_rejects_bad_input() -> None:
    good = _bars([("2015-06-01", 10, 11, 9, 10.5, 100)])
    with pytest.raises(ValueError, match="inconsistent"):
        bridge_ticks(_bars([("2015-06-01", 8.0, 11, 9, 10.5, 100)]), seed=1)
    with pytest.raises(ValueError, match="inconsistent"):
        bridge_ticks(_bars([("2015-06-01", 10, 11, 9, 10.5, -1)]), seed=1)
    with pytest.raises(ValueError, match="NaN"):
        bridge_ticks(_bars([("2015-06-01", 10, float("nan"), 9, 10.5, 100)]), seed=1)
    with pytest.raises(ValueError, match="duplicate"):
        bridge_ticks(pd.concat([good, good]), seed=1)
    with pytest.raises(ValueError, match="at least 4"):
        bridge_ticks(good, seed=1, ticks_per_day=3)
    with pytest.raises(ValueError, match="column"):
        bridge_ticks(good.drop(columns="volume"), seed=1)


@st.composite
def ohlcv(draw: st.DrawFn) -> tuple[float, float, float, float, float]:
    decimals = draw(st.integers(0, 6))
    scale = 10.0**decimals
    low = draw(st.integers(1, 10**7))
    width = draw(st.one_of(st.just(0), st.integers(0, 10**5)))
    high = low + width
    pick = st.one_of(st.just(low), st.just(high), st.integers(low, high))
    o, c = draw(pick), draw(pick)
    volume = draw(st.one_of(st.just(0.0), st.integers(0, 10**10).map(float), st.floats(0, 1e9)))
    return o / scale, high / scale, low / scale, c / scale, volume


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days=st.lists(ohlcv(), min_size=1, max_size=6), n=st.integers(4, 60), seed=st.integers(0, 2**32 - 1))
def test_bridge_invariants_hold_for_any_valid_bars(
    days: list[tuple[float, float, float, float, float]], n: int, seed: int
) -> None:
    dates = pd.bdate_range("2015-01-02", periods=len(days))
    bars = _bars([(str(d.date()), *day) for d, day in zip(dates, days, strict=True)])
    _check_invariants(bars, bridge_ticks(bars, seed=seed, ticks_per_day=n), n)
