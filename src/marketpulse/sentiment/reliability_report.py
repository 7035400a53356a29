"""Offline learner of source reliability: :func:`learn_reliability` runs the estimator on real data — StockNet
tweets (``stocknet_tweets``, 2014–2015) and StockEmotions' StockTwits posts (``stocktwits``, 2020) — scored by any
:class:`~marketpulse.sentiment.base.SentimentModel` (the lexicon model by default), against next-day *Adj Close*
returns, and reports per source the Spearman IC, its t-stat and p-value, the sign hit rate and ``n`` on a train
period and on a later, disjoint test period, the learned weights, and whether reliability weighting improves the
combined score's IC on the test period over equal weights.

The online estimator it drives is :class:`~marketpulse.sentiment.reliability.SourceReliability`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from marketpulse.errors import ConfigError
from marketpulse.sentiment.base import SentimentModel
from marketpulse.sentiment.reliability import (
    _NS,
    ReliabilityConfig,
    SourceReliability,
    SourceStats,
    _dt,
)

STOCKNET_SOURCE = "stocknet_tweets"
STOCKTWITS_SOURCE = "stocktwits"
DEFAULT_SPLITS: dict[str, str] = {STOCKNET_SOURCE: "2015-08-01", STOCKTWITS_SOURCE: "2020-09-01"}
"""First day of each source's test period (train: pairs realised before it; test: pairs whose posts are all on or
after it; pairs straddling it are left out). StockNet: the paper's train end, so test = its dev + test months."""
CLOSE_UTC_S = 21 * 3_600
"""Daily returns are taken as realised at 21:00 UTC of their trading day: after the 16:00 New York close in both
EST and EDT."""


@dataclass
class _Dataset:
    """One source's posts (``symbol, date, text``) and the daily Adj Close of its symbols (``date, adj_close``)."""

    source: str
    path: Path
    posts: pd.DataFrame
    prices: dict[str, pd.DataFrame]
    split: pd.Timestamp
    info: dict[str, Any]


def _load_stocknet(path: Path, tickers: Sequence[str] | None, split: pd.Timestamp) -> _Dataset:
    from marketpulse.predict.stocknet import load_stocknet

    data = load_stocknet(path, tickers)
    if data.tweets is None:
        raise ConfigError(f"StockNet folder {path} has no tweet/preprocessed folder: no tweets to learn from")
    prices = {t: p[["date", "adj_close"]] for t, p in data.prices.items()}
    info = {"posts_read": len(data.tweets), "tickers": len(data.tickers)}
    return _Dataset(STOCKNET_SOURCE, path, data.tweets[["symbol", "date", "text"]], prices, split, info)


def _load_stockemotions(path: Path, tickers: Sequence[str] | None, split: pd.Timestamp, text_column: str) -> _Dataset:
    tweet_dir, price_dir = path / "tweet", path / "price"
    files = sorted(tweet_dir.glob("*.csv")) if tweet_dir.is_dir() else []
    if not files or not price_dir.is_dir():
        raise ConfigError(f"{path} is not a StockEmotions folder (expected tweet/*.csv and price/<TICKER>.csv)")
    frames = []
    for f in files:
        try:
            frame = pd.read_csv(f, dtype=str, keep_default_na=False)
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"StockEmotions file {f} cannot be read: {e}") from None
        missing = {"date", "ticker", text_column} - set(frame.columns)
        if missing:
            raise ConfigError(f"StockEmotions file {f} lacks column(s) {', '.join(sorted(missing))}")
        frames.append(frame[["ticker", "date", text_column]])
    raw = pd.concat(frames, ignore_index=True)
    symbol = raw["ticker"].str.strip().str.upper().str.replace(".", "-", regex=False)
    date = pd.to_datetime(raw["date"], format="%Y-%m-%d", errors="coerce")
    posts = pd.DataFrame({"symbol": symbol, "date": date, "text": raw[text_column]})
    bad_date = int(posts["date"].isna().sum())
    posts = posts[posts["date"].notna()]
    if tickers is not None:
        posts = posts[posts["symbol"].isin(set(tickers))]
    prices: dict[str, pd.DataFrame] = {}
    for sym in sorted(posts["symbol"].unique()):
        file = price_dir / f"{sym}.csv"
        if file.is_file():
            frame = pd.read_csv(file, na_values=["null"])
            p = pd.DataFrame(
                {
                    "date": pd.to_datetime(frame["Date"], format="%Y-%m-%d", errors="coerce"),
                    "adj_close": pd.to_numeric(frame["Adj Close"], errors="coerce"),
                }
            )
            p = p[p.notna().all(axis=1) & (p["adj_close"] > 0)].drop_duplicates("date", keep="last")
            prices[sym] = p.sort_values("date", ignore_index=True)
    no_price = ~posts["symbol"].isin(set(prices))
    info = {
        "files": [f.name for f in files],
        "posts_read": len(raw),
        "posts_bad_date": bad_date,
        "posts_without_prices": int(no_price.sum()),
        "text_column": text_column,
        "tickers": len(prices),
    }
    return _Dataset(STOCKTWITS_SOURCE, path, posts[~no_price].reset_index(drop=True), prices, split, info)


def _polarity(model: SentimentModel, texts: Sequence[str], batch: int = 4096) -> npt.NDArray[np.float64]:
    """Each text's polarity; unique texts are scored once, in batches."""
    unique = list(dict.fromkeys(texts))
    scores: dict[str, float] = {}
    for i in range(0, len(unique), batch):
        chunk = unique[i : i + batch]
        for text, s in zip(chunk, model.score(chunk), strict=True):
            scores[text] = float(s.polarity)
    return np.fromiter((scores[t] for t in texts), dtype=np.float64, count=len(texts))


def _returns(ds: _Dataset) -> pd.DataFrame:
    """Next-day returns ``symbol, ts, start, ret`` around the posts' dates (``ts``/``start``: ns at 21:00 UTC)."""
    lo = ds.posts["date"].min() - pd.Timedelta(days=10)
    hi = ds.posts["date"].max() + pd.Timedelta(days=10)
    out = []
    for sym, p in ds.prices.items():
        adj = p["adj_close"].to_numpy(np.float64)
        days = p["date"].to_numpy("datetime64[ns]").astype(np.int64)
        close = days + CLOSE_UTC_S * _NS
        ret = adj[1:] / adj[:-1] - 1.0
        keep = (days[1:] >= lo.value) & (days[1:] <= hi.value)
        out.append(pd.DataFrame({"symbol": sym, "ts": close[1:][keep], "start": close[:-1][keep], "ret": ret[keep]}))
    if not out:
        return pd.DataFrame({"symbol": [], "ts": [], "start": [], "ret": []})
    return pd.concat(out, ignore_index=True)


def _excess(ds: _Dataset, returns: pd.DataFrame) -> pd.Series:
    """``ret`` minus the equal-weighted mean return of the dataset's symbols realised the same day, keyed like
    ``returns`` by ``(symbol, ts)``."""
    mean = returns.groupby("ts")["ret"].transform("mean")
    return pd.Series((returns["ret"] - mean).to_numpy(), index=pd.MultiIndex.from_frame(returns[["symbol", "ts"]]))


def _t_two_sided(t: float, df: float) -> float:
    """Two-sided p-value of Student's t: ``I_{df/(df+t²)}(df/2, 1/2)`` (regularised incomplete beta)."""
    if not math.isfinite(t):
        return 0.0
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta ``I_x(a, b)`` (continued fraction, modified Lentz; Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return math.exp(ln_front) * f / a


def _spearman(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    if len(x) < 3:
        return math.nan
    rx = pd.Series(x).rank(method="average").to_numpy()
    ry = pd.Series(y).rank(method="average").to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _ic_test(r: float, n: int) -> tuple[float | None, float | None]:
    """t-stat ``r √((n-2)/(1-r²))`` and two-sided p-value (independent pairs assumed)."""
    if not math.isfinite(r) or n < 3:
        return None, None
    t = r * math.sqrt((n - 2) / max(1.0 - r * r, 1e-300))
    return t, _t_two_sided(t, n - 2)


def _num(v: float | None, digits: int = 6) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), digits)


def _day(ts: pd.Timestamp) -> str:
    return str(ts.date())


def _period_stats(frame: pd.DataFrame) -> dict[str, Any]:
    """IC (Spearman, Pearson), t-stat, p-value, hit rate and counts of one source's pairs in one period."""
    n = len(frame)
    out: dict[str, Any] = {"n": n, "posts": int(frame["posts"].sum()) if n else 0}
    out["symbols"] = int(frame["symbol"].nunique()) if n else 0
    if n:
        out["sentiment_from"], out["sentiment_to"] = _day(frame["first"].min()), _day(frame["first"].max())
        out["realised_from"], out["realised_to"] = _day(frame["ts"].min()), _day(frame["ts"].max())
    x = frame["sentiment"].to_numpy(np.float64)
    y = frame["ret"].to_numpy(np.float64)
    ic = _spearman(x, y)
    t, p = _ic_test(ic, n)
    pearson = float(np.corrcoef(x, y)[0, 1]) if n >= 3 and x.std() > 0 and y.std() > 0 else math.nan
    signed = (x != 0) & (y != 0)
    n_hit = int(signed.sum())
    hits = int((np.sign(x[signed]) == np.sign(y[signed])).sum())
    ex = frame["excess"].to_numpy(np.float64)
    ok = np.isfinite(ex)
    out.update(
        ic=_num(ic),
        t_stat=_num(t, 4),
        p_value=_num(p, 6),
        ic_pearson=_num(pearson),
        ic_excess=_num(_spearman(x[ok], ex[ok])),
        hit_rate=_num(hits / n_hit if n_hit else math.nan, 4),
        n_hit=n_hit,
        hit_rate_p_value=_num(_binomial_p(hits, n_hit), 6),
        up_share=_num(float((y[signed] > 0).mean()) if n_hit else math.nan, 4),
        zero_sentiment_share=_num(float((x == 0).mean()) if n else math.nan, 4),
    )
    return out


def _binomial_p(k: int, n: int) -> float:
    """Two-sided p-value of ``k`` hits in ``n`` fair coin flips, normal approximation with continuity correction."""
    if n == 0:
        return math.nan
    z = (abs(k - n / 2) - 0.5) / math.sqrt(n / 4)
    return math.erfc(max(z, 0.0) / math.sqrt(2))


def _stats_json(s: SourceStats) -> dict[str, Any]:
    return {
        "n": s.n,
        "n_eff": _num(s.n_eff, 2),
        "ic": _num(s.ic),
        "shrunk_ic": _num(s.shrunk_ic),
        "weight": _num(s.weight),
        "hit_rate": _num(s.hit_rate, 4),
        "last": None if s.last is None else s.last.isoformat(),
    }


def learn_reliability(
    stocknet: Path | None = None,
    stockemotions: Path | None = None,
    *,
    model: SentimentModel | None = None,
    stocknet_tickers: Sequence[str] | None = None,
    stockemotions_tickers: Sequence[str] | None = None,
    splits: Mapping[str, str] | None = None,
    config: ReliabilityConfig | None = None,
    text_column: str = "original",
) -> dict[str, Any]:
    """Learn and evaluate source reliability on StockNet tweets and StockEmotions posts; a JSON-able report.

    ``stocknet`` / ``stockemotions``: the dataset folders (at least one). ``model``: any SentimentModel (default the
    lexicon model). ``*_tickers``: a subset of symbols. ``splits``: first day of each source's test period (default
    :data:`DEFAULT_SPLITS`). ``config``: the online estimator's (default :class:`ReliabilityConfig` but keeping every
    pair, so the report sees them all). ``text_column``: StockEmotions text (``original`` post, or ``processed``).

    Method: every post is scored, dated at 00:00 UTC of its date, and fed with every next-day *Adj Close* return
    (realised at 21:00 UTC of its trading day, :data:`CLOSE_UTC_S`) to one :class:`SourceReliability`, in event
    order. The pairs it realises are split per source: *train* = realised before the source's split day, *test* =
    every post of the pair dated on or after it; pairs straddling the split are left out (``embargo``). Per source
    and period: pooled Spearman IC (all symbols and days), its t-stat and two-sided p-value (pairs taken as
    independent — same-day pairs share market moves, so this overstates significance), Pearson IC, the Spearman IC
    against the return in excess of the same-day mean return of the dataset's symbols, the sign hit rate (pairs with
    non-zero sentiment and return) with a binomial p-value, and the share of up moves among them. ``learned``: the
    estimator's stats at the split (train pairs only) and at the end. ``combined_test``: on every test
    (symbol, return) with a pair of any source, the Spearman IC of the equal-weight mean of the sources' sentiment,
    of the reliability-weighted mean with weights frozen at each source's split, and with online weights
    ``weights(at = 00:00 UTC of the return's day)``; with no (symbol, day) covered by two sources, weighting cannot
    change the combined score (``multi_source = 0``) and ``improved`` is ``None``.
    """
    started = time.perf_counter()
    if stocknet is None and stockemotions is None:
        raise ConfigError("learn_reliability needs a StockNet folder, a StockEmotions folder or both")
    cut = {**DEFAULT_SPLITS, **(splits or {})}
    try:
        split_day = {k: pd.Timestamp(v) for k, v in cut.items()}
    except ValueError as e:
        raise ConfigError(f"split days must be YYYY-MM-DD: {e}") from None
    cfg = config or ReliabilityConfig(horizon_half_lives=None, max_pairs=10_000_000)
    datasets: list[_Dataset] = []
    if stocknet is not None:
        datasets.append(_load_stocknet(Path(stocknet), stocknet_tickers, split_day[STOCKNET_SOURCE]))
    if stockemotions is not None:
        datasets.append(
            _load_stockemotions(Path(stockemotions), stockemotions_tickers, split_day[STOCKTWITS_SOURCE], text_column)
        )
    if model is None:
        from marketpulse.sentiment import build_sentiment_model

        model = build_sentiment_model("lexicon")
    loaded = time.perf_counter()

    streams: list[pd.DataFrame] = []
    returns_by: dict[str, pd.DataFrame] = {}
    for ds in datasets:
        if ds.posts.empty:
            raise ConfigError(f"{ds.source}: no posts with prices under {ds.path}")
        pol = _polarity(model, ds.posts["text"].tolist())
        day_ns = ds.posts["date"].to_numpy("datetime64[ns]").astype(np.int64)
        streams.append(
            pd.DataFrame({"ts": day_ns, "kind": 0, "source": ds.source, "symbol": ds.posts["symbol"], "value": pol})
        )
        rets = _returns(ds)
        returns_by[ds.source] = rets
        streams.append(
            pd.DataFrame(
                {"ts": rets["ts"], "kind": 1, "source": "", "symbol": rets["symbol"], "value": rets["ret"]}
            ).assign(start=rets["start"])
        )
    scored = time.perf_counter()
    events = pd.concat(streams, ignore_index=True).sort_values(["ts", "kind"], kind="stable", ignore_index=True)
    events["start"] = events["start"].fillna(0).astype(np.int64)
    rel = SourceReliability(cfg)
    for ts, kind, source, symbol, value, start in zip(
        events["ts"].tolist(),
        events["kind"].tolist(),
        events["source"].tolist(),
        events["symbol"].tolist(),
        events["value"].tolist(),
        events["start"].tolist(),
        strict=True,
    ):
        if kind == 0:
            rel._add(source, symbol, ts, value, 1.0)
        else:
            rel._return(symbol, ts, value, start)
    streamed = time.perf_counter()

    sources: dict[str, Any] = {}
    test_pairs: dict[str, pd.DataFrame] = {}
    frozen: dict[str, float] = {}
    for ds in datasets:
        pairs = rel.pairs(ds.source)
        excess = _excess(ds, returns_by[ds.source])
        key = pd.MultiIndex.from_arrays([pairs["symbol"], pairs["ts"].astype("int64").to_numpy()])
        pairs["excess"] = excess.reindex(key).to_numpy()
        split_utc = ds.split.tz_localize(UTC)
        train = pairs[pairs["ts"] < split_utc]
        test = pairs[pairs["first"] >= split_utc]
        at_split = rel.get(ds.source, split_utc.to_pydatetime())
        frozen[ds.source] = at_split.weight
        test_pairs[ds.source] = test
        sources[ds.source] = {
            "dataset": str(ds.path),
            **ds.info,
            "posts_paired": int(pairs["posts"].sum()),
            "split": _day(ds.split),
            "train": _period_stats(train),
            "test": _period_stats(test),
            "embargo": len(pairs) - len(train) - len(test),
            "learned": {"at_split": _stats_json(at_split), "at_end": _stats_json(rel.get(ds.source))},
        }
    report: dict[str, Any] = {
        "model": model.name,
        "sources": sources,
        "combined_test": _combined(rel, test_pairs, frozen),
        "config": cfg.model_dump(),
        "inputs_dropped": {
            "late_posts": rel.state.late,
            "unpaired_posts": rel.state.unpaired,
            "stale_returns": rel.state.stale_returns,
        },
        "alignment": (
            "posts dated d (and the non-trading days after d) vs the Adj Close return from trading day d to the next "
            "trading day; pairs pooled over symbols and days"
        ),
        "seconds": {
            "load": round(loaded - started, 3),
            "score": round(scored - loaded, 3),
            "stream": round(streamed - scored, 3),
            "total": round(time.perf_counter() - started, 3),
        },
    }
    return report


def _combined(rel: SourceReliability, test: Mapping[str, pd.DataFrame], frozen: Mapping[str, float]) -> dict[str, Any]:
    """Spearman IC of the combined test score: equal weights vs frozen and online reliability weights."""
    frames = [f.assign(source=s)[["symbol", "ts", "source", "sentiment", "ret"]] for s, f in test.items() if len(f)]
    if not frames:
        return {"n": 0, "multi_source": 0, "improved": None, "note": "no test pairs"}
    long = pd.concat(frames, ignore_index=True)
    wide = long.pivot_table(index=["symbol", "ts"], columns="source", values="sentiment", aggfunc="first")
    ret = long.groupby(["symbol", "ts"])["ret"].first().reindex(wide.index).to_numpy(np.float64)
    x = wide.to_numpy(np.float64)
    have = np.isfinite(x)
    x0 = np.where(have, x, 0.0)
    cols = list(wide.columns)

    def mix(w: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        w = w * have
        w = w / w.sum(axis=1, keepdims=True)  # a lone source gets exactly 1: its value passes through unchanged
        mixed: npt.NDArray[np.float64] = (x0 * w).sum(axis=1)
        return mixed

    equal = mix(np.ones_like(x0))
    fixed = mix(np.broadcast_to(np.array([frozen[c] for c in cols]), x0.shape))
    ts_ns = wide.index.get_level_values("ts").astype("int64").to_numpy()
    at_ns = (ts_ns - rel._offset) // rel._interval * rel._interval + rel._offset  # start of the return's bucket
    memo: dict[int, list[float]] = {}
    online_w = np.zeros_like(x0)
    for i, ns in enumerate(at_ns.tolist()):
        row = memo.get(ns)
        if row is None:
            at = _dt(ns)
            row = memo[ns] = [rel.weight(c, at) for c in cols]
        online_w[i] = row
    online = mix(online_w)
    multi = int((have.sum(axis=1) > 1).sum())
    ic_eq, ic_fixed, ic_online = _spearman(equal, ret), _spearman(fixed, ret), _spearman(online, ret)
    out: dict[str, Any] = {
        "n": len(ret),
        "multi_source": multi,
        "ic_equal": _num(ic_eq),
        "ic_reliability_frozen": _num(ic_fixed),
        "ic_reliability_online": _num(ic_online),
        "delta_frozen": _num(ic_fixed - ic_eq),
        "delta_online": _num(ic_online - ic_eq),
        "frozen_weights": {c: _num(frozen[c]) for c in cols},
    }
    if multi == 0:
        out["improved"] = None
        out["note"] = (
            "no (symbol, day) of the test periods has sentiment from more than one source (the datasets cover "
            "different years), so any source weighting gives the same combined score"
        )
    else:
        out["improved"] = bool(ic_fixed > ic_eq)
        out["improved_online"] = bool(ic_online > ic_eq)
        out["multi_source_ic"] = {
            name: _num(_spearman(v[have.sum(axis=1) > 1], ret[have.sum(axis=1) > 1]))
            for name, v in (("equal", equal), ("frozen", fixed), ("online", online))
        }
    return out


__all__ = [
    "CLOSE_UTC_S",
    "DEFAULT_SPLITS",
    "STOCKNET_SOURCE",
    "STOCKTWITS_SOURCE",
    "learn_reliability",
]
