"""Datasets of the prediction layer: labels, windows, look-ahead, walk-forward purge/embargo, StockNet alignment
and bad folders, intraday bars.

StockNet is tested on small folders in the StockNet layout written into ``tmp_path`` (hand-placed tweets on a
weekday and on a weekend, a ``null`` price row, gzipped and plain files); the real folder is covered by
``tests/integration/test_predict_stocknet_data.py``.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketpulse.errors import ConfigError
from marketpulse.features.market import schema_hash
from marketpulse.predict.base import Samples
from marketpulse.predict.dataset import feature_windows, label_moves, temporal_split, walk_forward
from marketpulse.predict.intraday import lobster_samples, spy_samples
from marketpulse.predict.stocknet import (
    LAG,
    PRICE_FEATURES,
    TEXT_FEATURES,
    load_stocknet,
    stocknet_labels,
    stocknet_samples,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SPY = SHARED / "spy_1min_2011" / "SPY_1min_2011-01.csv"
DAY = np.int64(86_400 * 10**9)


def ns(day: str) -> int:
    return int(pd.Timestamp(day).value)


# ------------------------------------------------------------------------------------------------ labels


def test_label_moves_hand_built() -> None:
    close = np.array([1.0, math.e, math.e, 1.0, 1.0])  # log returns over 1 step: +1, 0, -1, 0
    assert label_moves(close, 1).tolist() == [1, -1, 0, -1, -1]
    assert label_moves(close, 1, flat=True).tolist() == [1, 2, 0, 2, -1]
    assert label_moves(close, 1, up=0.5, down=0.5, flat=True).tolist() == [1, 2, 0, 2, -1]
    assert label_moves(close, 1, up=1.5, down=0.5, flat=True).tolist() == [2, 2, 0, 2, -1]  # +1 is not > 1.5
    assert label_moves(close, 2).tolist() == [1, 0, 0, -1, -1]  # +1, -1, -1; last two unknown
    assert label_moves(close, 5).tolist() == [-1] * 5
    # a return exactly on a threshold is not beyond it (strict > up, < -down)
    assert label_moves(np.array([1.0, 2.0, 1.0]), 1, up=math.log(2.0), down=math.log(2.0), flat=True).tolist() == [
        2,
        2,
        -1,
    ]
    assert label_moves(np.array([1.0, np.nan, 2.0, 0.0, 1.0]), 1).tolist() == [-1, -1, -1, -1, -1]
    with pytest.raises(ConfigError):
        label_moves(close, 0)


def test_stocknet_thresholds_inclusive_exclusive() -> None:
    moves = np.array([-0.02, -0.006, -0.005, -0.0049, 0.0, 0.005, 0.0055, 0.00551, 0.03, np.nan])
    assert stocknet_labels(moves).tolist() == [0, 0, 0, -1, -1, -1, -1, 1, 1, -1]
    # computed from decimal prices, the boundary moves carry float noise: still -0.5 % → down, +0.55 % dropped
    assert 201.1 / 200.0 - 1.0 > 0.0055 and 99.5 / 100.0 - 1.0 < -0.005  # the noise the rounding absorbs
    assert stocknet_labels(np.array([99.5 / 100.0 - 1.0, 201.1 / 200.0 - 1.0])).tolist() == [0, -1]


# ------------------------------------------------------------------------------------------ feature windows


def _feature_frame(seed: int = 0, n: int = 120) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames, closes = [], []
    for k, sym in enumerate(("AAA", "BBB")):
        ts = pd.date_range("2024-01-02 14:31", periods=n, freq="1min") + pd.Timedelta(seconds=k)  # interleaved times
        f = pd.DataFrame(
            {"symbol": sym, "ts": ts, "sym_id": float(k), "f1": rng.normal(size=n), "f2": rng.normal(size=n)}
        )
        f.loc[:9, "f1"] = np.nan  # warm-up
        f.loc[50, "f2"] = np.nan  # a hole in the middle
        frames.append(f)
        closes.append(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))))
    frame = pd.concat(frames, ignore_index=True).sort_values("ts", kind="stable")
    close = np.concatenate(closes)[frame.index.to_numpy()]
    return frame.reset_index(drop=True), close


def test_feature_windows_shape_order_and_contents() -> None:
    frame, close = _feature_frame()
    s = feature_windows(frame, close, window=4, horizon=3)
    assert s.feature_names == ("sym_id", "f1", "f2") and s.X.shape[1:] == (4, 3) and s.classes == 2
    assert s.schema == schema_hash() and s.info["horizon_ns"] == 3 * 60 * 10**9
    assert np.all(np.diff(s.ts) >= 0) and np.isfinite(s.X).all()
    for i in range(len(s)):  # windows never cross symbols; the last row is the sample's own bar
        assert (s.X[i, :, 0] == (0.0 if s.symbol[i] == "AAA" else 1.0)).all()
        rows = frame.index[frame["symbol"] == s.symbol[i]]
        pos = int(np.flatnonzero(frame.loc[rows, "ts"].to_numpy("datetime64[ns]").view(np.int64) == s.ts[i])[0])
        own = frame.loc[rows[pos - 3 : pos + 1], ["sym_id", "f1", "f2"]].to_numpy(np.float32)
        np.testing.assert_array_equal(s.X[i], own)
        c = close[rows]
        assert s.y[i] == int(c[pos + 3] > c[pos])
        assert s.prev[i] == (int(c[pos] > c[pos - 3]) if pos >= 3 else -1)
    # rows 0..9 NaN (first window: rows 10..13), row 50 NaN (windows ending at 50..53 skipped), last 3 unlabelled
    per_symbol = 120 - 13 - 4 - 3
    assert len(s) == 2 * per_symbol


def test_feature_windows_no_look_ahead() -> None:
    frame, close = _feature_frame(seed=1)
    a = feature_windows(frame, close, window=5, horizon=2)
    rng = np.random.default_rng(7)
    t = np.sort(frame["ts"].to_numpy("datetime64[ns]").view(np.int64))[len(frame) // 2]
    future = frame["ts"].to_numpy("datetime64[ns]").view(np.int64) > t
    frame2, close2 = frame.copy(), close.copy()
    frame2.loc[future, ["f1", "f2"]] = rng.normal(size=(int(future.sum()), 2)) * 10
    close2[future] = close2[future] * np.exp(rng.normal(0, 0.05, int(future.sum())))
    b = feature_windows(frame2, close2, window=5, horizon=2)
    keys_b = {(int(ts), str(sym)): i for i, (ts, sym) in enumerate(zip(b.ts, b.symbol, strict=True))}
    compared = 0
    for i in np.flatnonzero(a.ts <= t):
        j = keys_b.get((int(a.ts[i]), str(a.symbol[i])))
        if j is None:  # only possible when the label (after t) fell on a zero move: never with random prices
            continue
        np.testing.assert_array_equal(a.X[i], b.X[j])
        assert a.prev[i] == b.prev[j]
        compared += 1
    assert compared >= 0.9 * int((a.ts <= t).sum()) > 20
    assert not np.array_equal(a.X[a.ts > t], b.X[b.ts > t])  # the perturbation did reach later samples


def test_feature_windows_max_span_and_duplicates() -> None:
    frame, close = _feature_frame(seed=2, n=60)
    drop = frame.index[(frame["symbol"] == "AAA")][30]  # a missing minute for AAA
    frame, close = frame.drop(index=drop).reset_index(drop=True), np.delete(close, drop)
    s = feature_windows(frame, close, window=3, horizon=2, max_span_ns=2 * 60 * 10**9)
    aaa = frame[frame["symbol"] == "AAA"]["ts"].to_numpy("datetime64[ns]").view(np.int64)
    for ts in s.ts[s.symbol == "AAA"]:
        k = int(np.searchsorted(aaa, ts))
        assert aaa[k + 2] - aaa[k] == 2 * 60 * 10**9  # no label spans the gap
    dup = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    with pytest.raises(ConfigError, match="duplicate"):
        feature_windows(dup, np.r_[close, close[5]], window=3, horizon=2)


# ------------------------------------------------------------------------------------------- walk-forward


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    times=st.lists(st.integers(0, 300), min_size=12, max_size=200),
    folds=st.integers(1, 6),
    horizon=st.integers(0, 30),
    embargo=st.integers(0, 30),
    min_train=st.sampled_from([0.1, 0.2, 0.5]),
    seed=st.integers(0, 1000),
)
def test_walk_forward_purge_and_embargo(
    times: list[int], folds: int, horizon: int, embargo: int, min_train: float, seed: int
) -> None:
    ts = np.random.default_rng(seed).permutation(np.array(times, dtype=np.int64))  # any order, with ties
    try:
        splits = walk_forward(ts, folds, horizon, embargo, min_train)
    except ConfigError:
        return  # too few samples / distinct times for any fold with a training set
    assert 1 <= len(splits) <= folds
    seen_test: set[int] = set()
    last_end = -1
    for train, test in splits:
        assert len(train) and len(test)
        t0 = int(ts[test].min())
        assert t0 > last_end  # folds are consecutive in time and disjoint
        last_end = int(ts[test].max())
        assert not seen_test & set(test.tolist())
        seen_test |= set(test.tolist())
        # the property: no training label period (ts, ts + horizon] reaches the test fold, nor the embargo
        assert (ts[train] + horizon < t0).all()
        assert (ts[train] < t0 - embargo).all()
        # ...and nothing else is dropped: every earlier sample outside purge/embargo trains
        expected = np.flatnonzero((ts < t0) & (ts + horizon < t0) & (ts < t0 - embargo))
        assert sorted(train.tolist()) == expected.tolist()
        assert not (set(ts[test].tolist()) & set(ts[np.setdiff1d(np.arange(len(ts)), test)].tolist()) & {t0})


def test_walk_forward_hand_example() -> None:
    ts = np.arange(10, dtype=np.int64) * 10  # 0, 10, ..., 90
    splits = walk_forward(ts, folds=2, horizon_ns=15, embargo_ns=25, min_train=0.4)  # test blocks 40.. and 70..
    (tr1, te1), (tr2, te2) = splits
    assert te1.tolist() == [4, 5, 6] and te2.tolist() == [7, 8, 9]
    assert tr1.tolist() == [0, 1]  # 20 purged (20 + 15 >= 40), 20 and 30 embargoed (>= 40 - 25)
    assert tr2.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError):
        walk_forward(ts, folds=0, horizon_ns=1)


def test_temporal_split() -> None:
    frame, close = _feature_frame(seed=3)
    s = feature_windows(frame, close, window=3, horizon=1)
    cut = str(np.datetime64(int(np.median(s.ts)), "ns"))
    parts = temporal_split(s, {"a": ("2024-01-01", cut), "b": (cut, "2024-01-03")})
    assert len(parts["a"]) + len(parts["b"]) == len(s)
    assert parts["a"].ts.max() < parts["b"].ts.min() and parts["b"].info["split"] == "b"
    with pytest.raises(ConfigError, match="overlap"):
        temporal_split(s, {"a": ("2024-01-01", "2024-01-03"), "b": ("2024-01-02", "2024-01-04")})
    with pytest.raises(ConfigError):
        temporal_split(s, {"a": ("2024-01-03", "2024-01-01")})


# ------------------------------------------------------------------------------------ StockNet (tmp folders)

WED, SAT = "2014-07-16", "2014-07-19"  # trading days around them: Mon 14 .. Fri 18, Mon 21, Tue 22


def _prices(seed: int, days: pd.DatetimeIndex) -> pd.DataFrame:
    """Daily prices whose every move is beyond the thresholds (+-0.8..2 %), Close != Adj Close."""
    rng = np.random.default_rng(seed)
    moves = rng.uniform(0.008, 0.02, len(days)) * rng.choice([-1.0, 1.0], len(days))
    adj = 50.0 * np.cumprod(1.0 + moves)
    close = adj * 1.03
    open_ = close * (1 + rng.normal(0, 0.004, len(days)))
    return pd.DataFrame(
        {
            "Date": days.strftime("%Y-%m-%d"),
            "Open": open_.round(6),
            "High": (np.maximum(open_, close) * 1.01).round(6),
            "Low": (np.minimum(open_, close) * 0.99).round(6),
            "Close": close.round(6),
            "Adj Close": adj.round(6),
            "Volume": rng.integers(1_000, 100_000, len(days)),
        }
    )


TWEETS = {
    "AAA": [
        ("2014-06-20", ["$", "aapl", "great", "profit", "beat"]),
        ("2014-06-21", ["weekend", "$", "aapl", "crash", "fears"]),  # Saturday
        ("2014-07-04", ["holiday", "$", "aapl", "love", "it"]),  # Independence Day: no trading
        ("2014-07-10", ["$", "aapl", "lawsuit", "loss"]),
        ("2014-07-10", ["$", "aapl", "excellent", "growth"]),
        ("2014-07-28", ["$", "aapl", "strong", "buy"]),
    ],
    "BBB": [("2014-07-08", ["$", "bbb", "terrible", "fraud"]), ("2014-07-23", ["$", "bbb", "upgrade"])],
    "CCC": [(WED, ["$", "ccc", "wednesday", "news"]), (SAT, ["$", "ccc", "saturday", "news"])],
}


def _days() -> pd.DatetimeIndex:
    days = pd.bdate_range("2014-06-02", "2014-08-29")
    return days[days != pd.Timestamp("2014-07-04")]


def make_stocknet(
    root: Path, gz: bool | None = None, day_files: bool = False, tweets: dict[str, list] | None = None
) -> Path:
    """A StockNet-layout folder: AAA plain, BBB gzipped (``gz`` forces one), CCC plain with no table row."""
    (root / "price" / "raw").mkdir(parents=True)
    tdir = root / "tweet" / "preprocessed"
    tdir.mkdir(parents=True)
    (root / "StockTable.tsv").write_text("Sector\tSymbol\tCompany\nTech\t$AAA\tA Inc\nTech\t$BBB\tB Inc\n")
    for k, ticker in enumerate(("AAA", "BBB", "CCC")):
        zipped = (ticker == "BBB") if gz is None else gz
        csv = _prices(k, _days()).to_csv(index=False).encode()
        if ticker == "BBB":
            csv = csv.replace(b"2014-07-01,", b"2014-07-01,null,null,null,null,null,null\n2014-07-01-dropped,", 1)
            csv = b"\n".join(line for line in csv.split(b"\n") if not line.startswith(b"2014-07-01-dropped"))
        (root / "price" / "raw" / f"{ticker}.csv{'.gz' if zipped else ''}").write_bytes(
            gzip.compress(csv) if zipped else csv
        )
        rows = (tweets if tweets is not None else TWEETS).get(ticker, [])
        if day_files:
            for date in sorted({d for d, _ in rows}):
                (tdir / ticker).mkdir(exist_ok=True)
                lines = [json.dumps({"text": t, "created_at": "x", "user_id_str": "1"}) for d, t in rows if d == date]
                (tdir / ticker / date).write_text("\n".join(lines) + "\n")
            continue
        body = "".join(
            json.dumps({"date": d, "text": t, "created_at": "Wed Jan 01 03:59:03 +0000 2014", "user_id_str": "1"})
            + "\n"
            for d, t in rows
        ).encode()
        (tdir / f"{ticker}.jsonl{'.gz' if zipped else ''}").write_bytes(gzip.compress(body) if zipped else body)
    return root


@pytest.fixture
def stocknet_dir(tmp_path: Path) -> Path:
    return make_stocknet(tmp_path / "sn")


def _sample(s: Samples, symbol: str, day: str) -> int:
    hit = np.flatnonzero((s.symbol == symbol) & (s.ts == ns(day)))
    assert len(hit) == 1, f"no sample for {symbol} {day}"
    return int(hit[0])


def test_stocknet_load_and_samples(stocknet_dir: Path) -> None:
    data = load_stocknet(stocknet_dir)
    assert data.tickers == ("AAA", "BBB", "CCC")
    assert pd.Timestamp("2014-07-01") not in set(data.prices["BBB"]["date"])  # the null row is skipped
    assert len(data.prices["BBB"]) == len(_days()) - 1 and data.table["symbol"].tolist() == ["AAA", "BBB"]
    s = stocknet_samples(data, "all")
    assert s.feature_names == (*PRICE_FEATURES, *TEXT_FEATURES) and s.X.shape[1:] == (LAG, 12)
    assert s.X.dtype == np.float32 and s.ts.dtype == np.int64 and np.isfinite(s.X).all()
    assert list(zip(s.ts.tolist(), s.symbol.tolist(), strict=True)) == sorted(
        zip(s.ts.tolist(), s.symbol.tolist(), strict=True)
    )
    assert (s.ts % DAY == 0).all() and s.info["horizon_ns"] == DAY
    # every day is beyond the thresholds: 10 warm-up days lost per ticker (5 for rvol_5's returns, 5 for the lag)
    assert len(s) == 3 * (len(_days()) - 10) - 1
    prices = stocknet_samples(data, "all", text=False)
    assert prices.X.shape[2] == len(PRICE_FEATURES) and prices.schema != s.schema
    np.testing.assert_array_equal(prices.X, s.X[:, :, : len(PRICE_FEATURES)])
    assert len(stocknet_samples(data, "train")) == len(s) and len(stocknet_samples(data, "test")) == 0

    # hand-computed features and labels of AAA's target 2014-07-22: lag days Jul 15..21, prev = Jul 21's move
    p = data.prices["AAA"].set_index("date")
    adj = p["adj_close"]
    i = _sample(s, "AAA", "2014-07-22")
    d = list(adj.index).index(pd.Timestamp("2014-07-22"))
    move = adj.iloc[d] / adj.iloc[d - 1] - 1
    assert s.y[i] == (1 if move > 0 else 0)
    prev_move = adj.iloc[d - 1] / adj.iloc[d - 2] - 1
    assert s.prev[i] == (1 if prev_move > 0 else 0)
    signs = (adj / adj.shift(1) - 1 > 0).astype(int)  # every move is beyond a threshold: the label is its sign
    for k in np.flatnonzero(s.symbol == "AAA"):
        day = pd.Timestamp(int(s.ts[k]))
        assert s.y[k] == signs[day] and s.prev[k] == signs.iloc[list(adj.index).index(day) - 1]
    assert (s.prev != s.y).any()
    lag_moves = (adj.iloc[d - 5 : d].to_numpy() / adj.iloc[d - 6 : d - 1].to_numpy()) - 1
    np.testing.assert_allclose(s.X[i, :, 0], lag_moves, rtol=1e-5)
    row = p.iloc[d - 1]  # the last lag day, Jul 21
    factor = row["adj_close"] / row["close"]
    np.testing.assert_allclose(s.X[i, -1, 1], row["open"] * factor / adj.iloc[d - 2] - 1, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(s.X[i, -1, 4], row["close"] / row["open"] - 1, rtol=1e-4, atol=1e-7)
    vol = p["volume"].to_numpy(float)
    np.testing.assert_allclose(s.X[i, -1, 5], math.log1p(vol[d - 1]) - math.log1p(vol[d - 2]), rtol=1e-5)
    r = np.log(adj.to_numpy()[d - 5 : d] / adj.to_numpy()[d - 6 : d - 1])
    np.testing.assert_allclose(s.X[i, -1, 6], math.sqrt(float(np.mean(r**2))), rtol=1e-5)


def test_stocknet_tweet_alignment(stocknet_dir: Path) -> None:
    s = stocknet_samples(load_stocknet(stocknet_dir), "all")
    count = s.feature_names.index("tweets_log1p")
    one = math.log1p(1)

    def counts(day: str) -> list[float]:
        return [round(float(v), 6) for v in s.X[_sample(s, "CCC", day), :, count]]

    assert counts("2014-07-15") == [0.0] * 5
    assert counts(WED) == [0.0] * 5  # the tweet dated on the target day itself is not used for it
    assert counts("2014-07-17") == [0.0, 0.0, 0.0, 0.0, round(one, 6)]  # ...but by the next target (slot Wed)
    # the Saturday tweet belongs to Friday the 18th's slot: Monday's window (lag days Jul 14..18) sees it
    assert counts("2014-07-21") == [0.0, 0.0, round(one, 6), 0.0, round(one, 6)]
    assert counts("2014-07-22") == [0.0, round(one, 6), 0.0, round(one, 6), 0.0]  # lag days Jul 15..21
    assert counts("2014-07-23") == [round(one, 6), 0.0, round(one, 6), 0.0, 0.0]
    # AAA: two tweets on Thu Jul 10; the holiday tweet (Jul 4) goes to Thu Jul 3; the weekend one to Fri Jun 20
    a = s.X[_sample(s, "AAA", "2014-07-11"), -1, count]
    assert round(float(a), 6) == round(math.log1p(2), 6)
    assert round(float(s.X[_sample(s, "AAA", "2014-07-07"), -1, count]), 6) == round(one, 6)  # Thu Jul 3's
    assert round(float(s.X[_sample(s, "AAA", "2014-07-08"), -1, count]), 6) == 0.0
    assert round(float(s.X[_sample(s, "AAA", "2014-06-24"), -1, count]), 6) == 0.0
    assert round(float(s.X[_sample(s, "AAA", "2014-06-23"), -1, count]), 6) == round(math.log1p(2), 6)
    # sentiment means: one negative and one positive tweet on Jul 10, shares of 0.5 each
    i = _sample(s, "AAA", "2014-07-11")
    pos, neg = s.feature_names.index("positive_share"), s.feature_names.index("negative_share")
    assert s.X[i, -1, pos] == pytest.approx(0.5) and s.X[i, -1, neg] == pytest.approx(0.5)
    assert s.info["with_tweets"] > 0


def test_stocknet_no_look_ahead(tmp_path: Path) -> None:
    base = make_stocknet(tmp_path / "a")
    a = stocknet_samples(load_stocknet(base), "all")
    t = pd.Timestamp(WED)
    changed = tmp_path / "b"
    shutil.copytree(base, changed)
    rng = np.random.default_rng(3)
    for file in (changed / "price" / "raw").iterdir():
        raw = gzip.decompress(file.read_bytes()) if file.name.endswith(".gz") else file.read_bytes()
        frame = pd.read_csv(pd.io.common.BytesIO(raw), na_values=["null"])
        later = pd.to_datetime(frame["Date"], errors="coerce") > t
        for col in ("Open", "High", "Low", "Close", "Adj Close"):
            frame.loc[later, col] = frame.loc[later, col] * rng.uniform(0.8, 1.2, int(later.sum()))
        frame.loc[later, "Volume"] = rng.integers(1, 10**7, int(later.sum()))
        out = frame.to_csv(index=False).encode()
        file.write_bytes(gzip.compress(out) if file.name.endswith(".gz") else out)
    future = {
        sym: [(d, txt) for d, txt in rows if pd.Timestamp(d) <= t]
        + [(str((t + pd.Timedelta(days=k)).date()), ["$", "x", "disaster", "fraud", "crash"]) for k in range(1, 9)]
        for sym, rows in TWEETS.items()
    }
    shutil.rmtree(changed / "tweet")
    make_tweets = make_stocknet(tmp_path / "c", tweets=future)
    shutil.copytree(make_tweets / "tweet", changed / "tweet")
    b = stocknet_samples(load_stocknet(changed), "all")
    cut = ns(WED)
    ka, kb = a.ts <= cut, b.ts <= cut
    assert ka.sum() == kb.sum() > 30
    np.testing.assert_array_equal(a.ts[ka], b.ts[kb])
    np.testing.assert_array_equal(a.symbol[ka], b.symbol[kb])
    np.testing.assert_array_equal(a.X[ka], b.X[kb])
    np.testing.assert_array_equal(a.prev[ka], b.prev[kb])
    np.testing.assert_array_equal(a.y[ka], b.y[kb])
    assert not np.array_equal(a.X[~ka][:10], b.X[~kb][:10])  # later samples did change


def test_stocknet_layouts_agree(tmp_path: Path) -> None:
    plain = stocknet_samples(load_stocknet(make_stocknet(tmp_path / "plain", gz=False)), "all")
    zipped = stocknet_samples(load_stocknet(make_stocknet(tmp_path / "gz", gz=True)), "all")
    days = stocknet_samples(load_stocknet(make_stocknet(tmp_path / "days", gz=False, day_files=True)), "all")
    for other in (zipped, days):
        np.testing.assert_array_equal(plain.X, other.X)
        np.testing.assert_array_equal(plain.y, other.y)
    sub = stocknet_samples(load_stocknet(tmp_path / "plain", ["CCC"]), "all")
    assert set(sub.symbol.tolist()) == {"CCC"}


def _one_line(err: pytest.ExceptionInfo[ConfigError]) -> str:
    text = str(err.value)
    assert text and "\n" not in text
    return text


def test_stocknet_bad_folders(tmp_path: Path, stocknet_dir: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_stocknet(tmp_path / "nowhere")
    assert "does not exist" in _one_line(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as e:
        load_stocknet(tmp_path / "empty")
    assert "price/raw" in _one_line(e)
    (tmp_path / "empty" / "price" / "raw").mkdir(parents=True)
    with pytest.raises(ConfigError) as e:
        load_stocknet(tmp_path / "empty")
    assert "no price files" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        load_stocknet(stocknet_dir, ["AAA", "ZZZ"])
    assert "'ZZZ'" in _one_line(e) and "3 tickers available" in str(e.value)
    with pytest.raises(ConfigError) as e:
        stocknet_samples(load_stocknet(stocknet_dir), "holdout")
    assert "holdout" in _one_line(e)

    no_adj = stocknet_dir / "price" / "raw" / "AAA.csv"
    no_adj.write_text(pd.read_csv(no_adj).drop(columns="Adj Close").to_csv(index=False))
    with pytest.raises(ConfigError) as e:
        load_stocknet(stocknet_dir)
    assert "AAA.csv" in _one_line(e) and "'Adj Close'" in str(e.value)
    no_adj.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n2014-01-02,null,null,null,null,null,null\n")
    with pytest.raises(ConfigError) as e:
        load_stocknet(stocknet_dir, ["AAA"])
    assert "AAA.csv" in _one_line(e) and "no usable rows" in str(e.value)


def test_stocknet_tweets_missing_or_empty(tmp_path: Path) -> None:
    root = make_stocknet(tmp_path / "sn", tweets={"AAA": [], "BBB": [], "CCC": []})  # empty (and gzipped) files
    data = load_stocknet(root)
    with pytest.raises(ConfigError) as e:
        stocknet_samples(data, "all")
    assert "no tweets" in _one_line(e)
    assert len(stocknet_samples(data, "all", text=False)) > 0
    shutil.rmtree(root / "tweet")
    data = load_stocknet(root)
    assert data.tweets is None
    with pytest.raises(ConfigError) as e:
        stocknet_samples(data, "train", text=True)
    assert "no tweets" in _one_line(e)
    # one ticker without tweets is fine: its text features are zero
    root2 = make_stocknet(tmp_path / "sn2", tweets={"AAA": TWEETS["AAA"]})
    s = stocknet_samples(load_stocknet(root2), "all")
    assert (s.X[s.symbol == "BBB"][:, :, len(PRICE_FEATURES) :] == 0).all()
    (root2 / "tweet" / "preprocessed" / "CCC.jsonl").write_text('{"date": "2014-07-01", "text": ["ok"]}\nnot json\n')
    with pytest.raises(ConfigError) as e:
        load_stocknet(root2)
    assert "CCC.jsonl line 2" in _one_line(e)


# ------------------------------------------------------------------------------------------------- intraday


def _lobster_folder(root: Path) -> Path:
    bars_dir = root / "derived_1min_bars"
    bars_dir.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for sym in ("AMZN", "GOOG"):
        start = pd.date_range("2012-06-21 09:30", periods=200, freq="1min")
        start = start.delete(120)  # a minute without executions
        close = 200 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(start))))
        frame = pd.DataFrame(
            {
                "timestamp_et": start.strftime("%Y-%m-%d %H:%M:%S"),
                "open": close,
                "high": close * 1.001,
                "low": close * 0.999,
                "close": close,
                "volume": rng.integers(100, 5000, len(start)),
                "n_executions": 10,
            }
        )
        frame.to_csv(bars_dir / f"{sym}_2012-06-21_1min.csv", index=False)
    return root


def test_lobster_samples_bar_end_and_spans(tmp_path: Path) -> None:
    root = _lobster_folder(tmp_path / "lob")
    s = lobster_samples(root, window=10, horizon=3)
    assert s.schema == schema_hash() and s.X.shape[1:] == (10, len(s.feature_names)) and np.isfinite(s.X).all()
    assert set(s.symbol.tolist()) == {"AMZN", "GOOG"} and s.info["horizon_ns"] == 3 * 60 * 10**9
    assert len(lobster_samples(root / "derived_1min_bars", window=10, horizon=3)) == len(s)
    for sym in ("AMZN", "GOOG"):
        bars = pd.read_csv(root / "derived_1min_bars" / f"{sym}_2012-06-21_1min.csv")
        # 09:30 ET bar start = 13:31 UTC bar end (EDT)
        end = (pd.to_datetime(bars["timestamp_et"]) + pd.Timedelta(hours=4, minutes=1)).to_numpy("datetime64[ns]")
        close = pd.Series(bars["close"].to_numpy(), index=end.view(np.int64))
        for ts, y in zip(s.ts[s.symbol == sym], s.y[s.symbol == sym], strict=True):
            later = int(ts) + 3 * 60 * 10**9
            assert later in close.index  # the label spans exactly 3 minutes (never the missing one)
            assert y == int(close[later] > close[int(ts)])
    with pytest.raises(ConfigError) as e:
        lobster_samples(tmp_path)
    assert "derived_1min_bars" in _one_line(e)


@pytest.fixture(scope="module")
def spy() -> Path:
    if not SPY.is_file():
        pytest.skip(f"SPY 1-minute bars not found at {SPY} (../shared/data next to the checkout)")
    return SPY


def test_spy_samples_regular_hours(spy: Path) -> None:
    s = spy_samples(spy, window=30, horizon=5)
    local = pd.DatetimeIndex(s.ts.view("datetime64[ns]")).tz_localize("UTC").tz_convert("America/New_York")
    minute = local.hour * 60 + local.minute
    assert minute.min() >= 9 * 60 + 31 and minute.max() <= 16 * 60 - 5  # labels end by the 16:00 bar
    assert s.X.shape[1] == 30 and np.isfinite(s.X).all() and set(np.unique(s.y)) == {0, 1}
    assert 0.4 < s.balance()["up"] < 0.6
    bars = pd.read_csv(spy)
    close = pd.Series(
        bars["close"].to_numpy(), index=pd.to_datetime(bars["timestamp_utc"]).to_numpy("datetime64[ns]").view(np.int64)
    )
    for i in range(0, len(s), 97):
        assert s.y[i] == int(close[int(s.ts[i]) + 5 * 60 * 10**9] > close[int(s.ts[i])])
    np.testing.assert_array_equal(spy_samples(spy.parent, window=30, horizon=5).X, s.X)  # the folder works too
    with pytest.raises(ConfigError) as e:
        spy_samples(spy.parent / "missing.csv")
    assert "does not exist" in _one_line(e)
