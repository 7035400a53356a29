"""Source reliability: how well each source's sentiment has anticipated the next period's return, learned in event
time without look-ahead, and the weight it earns in the cross-source sentiment.

**Online estimator** (:class:`SourceReliability`, River style over an explicit :class:`ReliabilityState`):

- ``update(event)`` / ``update_value(source, symbol, ts, polarity, weight)`` adds one scored post to the period
  *bucket* of its time: bucket ``k`` is ``[offset_s + k * interval_s, offset_s + (k + 1) * interval_s)`` seconds
  since the epoch (UTC days by default; set ``interval_s`` to the bar interval for bars). A bucket's sentiment is the
  ``weight``-weighted mean polarity of its posts.
- ``update_return(symbol, ts, ret, start=None)`` reports the return of ``symbol`` realised at ``ts`` over the period
  that began at ``start`` (default: the previous return's ``ts`` of that symbol, or one interval before ``ts``). It
  *pairs* the return with each source's posts of that symbol in the buckets ``[bucket(start⁻), bucket(ts⁻))`` (their
  weighted mean polarity), where ``x⁻`` is the instant just before ``x`` (so a bar ending exactly on a boundary
  belongs to the bucket it closes). For daily closes that is the posts dated on the previous trading day and the
  non-trading days after it, never those of the return's own day — StockNet's alignment; for bars, the posts of the
  bar before the return's bar. A pair is *realised* at ``ts``.
  Posts in buckets before ``bucket(start⁻)`` no longer pair with anything and are dropped (``state.unpaired``); a post
  arriving after its bucket was paired is dropped too (``state.late``). Returns of a symbol must come in time order
  (an older one is ignored and counted in ``state.stale_returns``); posts and different symbols may interleave freely.
- ``get(source, at_ts)`` / ``weight(source, at_ts)`` / ``weights(at_ts)`` use only the pairs realised at or before
  ``at_ts`` (``None``: all) — the no-look-ahead rule; everything learned is a function of those pairs alone.

**The information coefficient** of a source over its pairs ``i`` (sentiment ``x_i``, return ``y_i``, realised at
``t_i``; ``t_last`` the newest): decay weights ``w_i = 2 ** (-(t_last - t_i) / half_life_s)``; ``method="spearman"``
(default) is the ``w``-weighted Pearson correlation of the ``w``-weighted mid-ranks of ``x`` and of ``y`` (rank of a
value = weight of the smaller values + half the weight of its ties, so the ranks are robust to fat-tailed returns and
ties in polarity); ``method="pearson"`` correlates the raw values. A constant ``x`` or ``y`` gives IC 0. Pairs of all
symbols are pooled (one pair = one symbol and one period, whatever its number of posts). The effective number of
pairs is Kish's ``n_eff = (Σw)² / Σw²``. Weights relative to the newest pair (not to ``at_ts``) keep ``IC`` and
``n_eff`` free of the wall-clock gap since then: a source's reliability changes only when one of its pairs is realised.

**Shrinkage and weight** (a normal–normal Bayes estimate): ``IC ~ N(ρ, 1 / n_eff)`` around the true ``ρ`` with prior
``ρ ~ N(0, τ²)``, so the posterior mean is ``shrunk = IC · n_eff / (n_eff + n0)`` with ``n0 = prior_pairs = 1 / τ²``
(default 400, i.e. τ = 0.05: true daily ICs are a few hundredths). The reliability weight is::

    weight = floor + max(0, shrunk)

``floor`` (default 0.01) is the weight of a source without evidence (a new source, or one whose IC is ≤ 0): it is
never ignored entirely, and a source with a shrunk IC of 0.04 counts five times as much as a new one. The
:class:`~marketpulse.sentiment.aggregate.SentimentAggregator` multiplies its configured source weights by it.

**Memory.** Per source at most ``max_pairs`` pairs, and none older than ``horizon_half_lives`` half-lives behind the
source's newest pair (their weight is below ``2 ** -horizon``): ``get`` is exact for any ``at_ts`` not older than
that horizon. Per (symbol, source) at most ``max_pending`` buckets wait for a return. The state is plain data
(picklable); the per-source cache of the last answer is dropped when pickling.

**Offline learner** :func:`learn_reliability` runs the estimator on real data — StockNet tweets (``stocknet_tweets``,
2014–2015) and StockEmotions' StockTwits posts (``stocktwits``, 2020) — scored by any
:class:`~marketpulse.sentiment.base.SentimentModel` (the lexicon model by default), against next-day *Adj Close*
returns, and reports per source the Spearman IC, its t-stat and p-value, the sign hit rate and ``n`` on a train
period and on a later, disjoint test period, the learned weights, and whether reliability weighting improves the
combined score's IC on the test period over equal weights.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.errors import ConfigError
from marketpulse.events import SentimentScore
from marketpulse.sentiment.base import SentimentModel

DAY_S = 86_400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS = 1_000_000_000
STOCKNET_SOURCE = "stocknet_tweets"
STOCKTWITS_SOURCE = "stocktwits"
DEFAULT_SPLITS: dict[str, str] = {STOCKNET_SOURCE: "2015-08-01", STOCKTWITS_SOURCE: "2020-09-01"}
"""First day of each source's test period (train: pairs realised before it; test: pairs whose posts are all on or
after it; pairs straddling it are left out). StockNet: the paper's train end, so test = its dev + test months."""
CLOSE_UTC_S = 21 * 3_600
"""Daily returns are taken as realised at 21:00 UTC of their trading day: after the 16:00 New York close in both
EST and EDT."""


class ReliabilityConfig(BaseModel):
    """Buckets, decay, IC method and shrinkage of :class:`SourceReliability` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(DAY_S, gt=0, description="length of a sentiment period (bucket), seconds")
    offset_s: float = Field(0.0, description="bucket boundaries are offset_s + k * interval_s since the epoch")
    method: Literal["spearman", "pearson"] = Field("spearman", description="weighted rank or raw correlation")
    half_life_s: float = Field(90 * DAY_S, gt=0, description="a pair's weight halves every half_life_s seconds")
    prior_pairs: float = Field(400.0, ge=0, description="n0 = 1/tau^2 of the shrinkage IC * n/(n + n0)")
    floor: float = Field(0.01, gt=0, description="weight of a source without evidence; added to max(0, shrunk IC)")
    horizon_half_lives: float | None = Field(20.0, gt=0, description="pairs older than this many half-lives go")
    max_pairs: int = Field(100_000, gt=0, description="at most this many pairs kept per source")
    max_pending: int = Field(64, gt=0, description="at most this many buckets wait for a return per symbol/source")


@dataclass(frozen=True)
class SourceStats:
    """What a source's pairs realised by ``at_ts`` say (``n = 0``: none yet; ``weight`` is then the floor)."""

    source: str
    n: int
    n_eff: float
    ic: float
    shrunk_ic: float
    weight: float
    hit_rate: float | None
    """Decay-weighted share of pairs with ``sign(sentiment) == sign(return)`` (both non-zero); ``None`` if none."""
    last: datetime | None
    """Realisation time of the newest pair used."""


@dataclass
class _Pairs:
    """A source's realised pairs, sorted by realisation time (ns)."""

    ts: list[int] = field(default_factory=list)
    first: list[int] = field(default_factory=list)
    """Start (ns) of the earliest bucket holding a post of the pair."""
    symbol: list[str] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    posts: list[int] = field(default_factory=list)
    version: int = 0

    def add(self, ts: int, first: int, symbol: str, x: float, y: float, posts: int) -> None:
        at = bisect.bisect_right(self.ts, ts)
        self.ts.insert(at, ts)
        self.first.insert(at, first)
        self.symbol.insert(at, symbol)
        self.x.insert(at, x)
        self.y.insert(at, y)
        self.posts.insert(at, posts)
        self.version += 1

    def drop_before(self, cut: int, cap: int) -> None:
        drop = max(bisect.bisect_left(self.ts, cut), len(self.ts) - cap)
        if drop > 0:
            for col in (self.ts, self.first, self.symbol, self.x, self.y, self.posts):
                del col[:drop]
            self.version += 1


@dataclass
class ReliabilityState:
    """The estimator's state: pending buckets ``symbol → source → bucket → [Σ w·polarity, Σ w, posts]``, the last
    return per symbol (time in ns and its bucket), the realised pairs per source and counters of dropped inputs."""

    pending: dict[str, dict[str, dict[int, list[float]]]] = field(default_factory=dict)
    last_return: dict[str, tuple[int, int]] = field(default_factory=dict)
    pairs: dict[str, _Pairs] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)
    late: int = 0
    unpaired: int = 0
    stale_returns: int = 0


def _ns(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {ts!r} has no time zone (event time is timezone-aware)")
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1_000


def _dt(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def _weighted_ranks(v: npt.NDArray[np.float64], w: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Weighted mid-ranks: weight of the strictly smaller values + half the weight of the equal ones."""
    values, inverse = np.unique(v, return_inverse=True)
    group = np.bincount(inverse, weights=w, minlength=len(values))
    below = np.cumsum(group) - group
    ranks: npt.NDArray[np.float64] = (below + 0.5 * group)[inverse]
    return ranks


def _weighted_corr(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], w: npt.NDArray[np.float64]) -> float:
    """``w``-weighted Pearson correlation (0 when either side is constant). Element-wise sums, not BLAS ``@``: a
    threaded BLAS dot on a loaded machine was 100x slower here."""
    total = float(w.sum())
    if not total > 0 or len(x) < 2:
        return 0.0
    dx = x - float((w * x).sum()) / total
    dy = y - float((w * y).sum()) / total
    vx, vy = float((w * dx * dx).sum()), float((w * dy * dy).sum())
    if not (vx > 1e-300 and vy > 1e-300):
        return 0.0
    return float(np.clip(float((w * dx * dy).sum()) / math.sqrt(vx * vy), -1.0, 1.0))


class SourceReliability:
    """Per-source information coefficient of sentiment vs the next period's return, learned online in event time
    (see the module docstring for the pairing, the IC, the shrinkage and the weight formula)."""

    def __init__(self, config: ReliabilityConfig | None = None, state: ReliabilityState | None = None) -> None:
        self.config = config or ReliabilityConfig()
        self.state = state if state is not None else ReliabilityState()
        self._interval = round(self.config.interval_s * _NS)
        self._offset = round(self.config.offset_s * _NS)
        self._cache: dict[str, tuple[int, int, int, SourceStats]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    # -- inputs ---------------------------------------------------------------------------------------------------

    def bucket(self, ts: datetime) -> int:
        """The period index of ``ts``."""
        return self._bucket(_ns(ts))

    def _bucket(self, ns: int) -> int:
        return (ns - self._offset) // self._interval

    def update(self, event: SentimentScore, weight: float = 1.0) -> None:
        """Add one scored post (``event.source``/``symbol``/``ts``/``polarity``), weighted by ``weight``."""
        self.update_value(event.source, event.symbol, event.ts, event.polarity, weight)

    def update_value(self, source: str, symbol: str, ts: datetime, polarity: float, weight: float = 1.0) -> None:
        """Add one post's polarity; a non-finite polarity is ignored, a non-finite or non-positive weight counts 1."""
        self._add(source, symbol, _ns(ts), float(polarity), float(weight))

    def _add(self, source: str, symbol: str, ns: int, polarity: float, weight: float) -> None:
        if not math.isfinite(polarity):
            return
        w = weight if math.isfinite(weight) and weight > 0 else 1.0
        st = self.state
        st.sources.add(source)
        b = self._bucket(ns)
        last = st.last_return.get(symbol)
        if last is not None and b < last[1]:
            st.late += 1  # its bucket was already paired (or passed) by a realised return
            return
        buckets = st.pending.setdefault(symbol, {}).setdefault(source, {})
        acc = buckets.get(b)
        if acc is None:
            if len(buckets) >= self.config.max_pending:
                oldest = min(buckets)
                if oldest > b:
                    st.unpaired += 1
                    return
                st.unpaired += int(buckets.pop(oldest)[2])
            acc = buckets[b] = [0.0, 0.0, 0.0]
        acc[0] += w * polarity
        acc[1] += w
        acc[2] += 1

    def update_return(self, symbol: str, ts: datetime, ret: float, start: datetime | None = None) -> int:
        """Report ``symbol``'s return realised at ``ts`` over the period from ``start``; returns the number of pairs
        realised (one per source with posts in the buckets ``[bucket(start⁻), bucket(ts⁻))``, ``x⁻`` = just before
        ``x``)."""
        return self._return(symbol, _ns(ts), float(ret), None if start is None else _ns(start))

    def _return(self, symbol: str, ns: int, ret: float, start_ns: int | None) -> int:
        st = self.state
        last = st.last_return.get(symbol)
        if last is not None and ns <= last[0]:
            st.stale_returns += 1
            return 0
        b = self._bucket(ns - 1)  # the bucket the return's period ends in
        if start_ns is not None:
            b0 = self._bucket(start_ns - 1)
        elif last is not None:
            b0 = last[1]
        else:
            b0 = b - 1
        st.last_return[symbol] = (ns, b)
        by_source = st.pending.get(symbol)
        if not by_source:
            return 0
        made = 0
        cfg = self.config
        for source in list(by_source):
            buckets = by_source[source]
            sw = sws = 0.0
            posts = 0
            first: int | None = None
            for k in sorted(buckets):
                if k >= b:
                    break
                acc = buckets.pop(k)
                if k < b0:
                    st.unpaired += int(acc[2])
                    continue
                sws, sw, posts = sws + acc[0], sw + acc[1], posts + int(acc[2])
                first = k if first is None else first
            if not buckets:
                del by_source[source]
            if first is None or not math.isfinite(ret) or not sw > 0:
                continue
            pairs = st.pairs.setdefault(source, _Pairs())
            pairs.add(ns, first * self._interval + self._offset, symbol, sws / sw, ret, posts)
            if cfg.horizon_half_lives is not None:
                cut = pairs.ts[-1] - int(cfg.horizon_half_lives * cfg.half_life_s * _NS)
            else:
                cut = pairs.ts[0]
            pairs.drop_before(cut, cfg.max_pairs)
            made += 1
        if not by_source:
            del st.pending[symbol]
        return made

    # -- answers --------------------------------------------------------------------------------------------------

    def sources(self) -> list[str]:
        """Every source seen (posts or pairs), sorted."""
        return sorted(self.state.sources | set(self.state.pairs))

    def get(self, source: str, at_ts: datetime | None = None) -> SourceStats:
        """``source``'s stats from its pairs realised at or before ``at_ts`` (``None``: all of them)."""
        pairs = self.state.pairs.get(source)
        if pairs is None or not pairs.ts:
            return self._empty(source)
        k = len(pairs.ts) if at_ts is None else bisect.bisect_right(pairs.ts, _ns(at_ts))
        if k == 0:
            return self._empty(source)
        hit = self._cache.get(source)
        if hit is not None and hit[0] == id(pairs) and hit[1] == pairs.version and hit[2] == k:
            return hit[3]
        stats = self._stats(source, pairs, k)
        self._cache[source] = (id(pairs), pairs.version, k, stats)
        return stats

    def weight(self, source: str, at_ts: datetime | None = None) -> float:
        """``floor + max(0, shrunk IC)`` of ``source`` at ``at_ts`` (the floor for a source without pairs)."""
        return self.get(source, at_ts).weight

    def weights(self, at_ts: datetime | None = None) -> dict[str, float]:
        """The weight of every source seen, from the pairs realised at or before ``at_ts``."""
        return {s: self.weight(s, at_ts) for s in self.sources()}

    def pairs(self, source: str) -> pd.DataFrame:
        """``source``'s kept pairs: ``ts`` (realised), ``first`` (earliest post bucket start), ``symbol``,
        ``sentiment``, ``ret``, ``posts`` — ordered by ``ts``."""
        p = self.state.pairs.get(source, _Pairs())
        return pd.DataFrame(
            {
                "ts": pd.to_datetime(np.asarray(p.ts, dtype=np.int64), utc=True),
                "first": pd.to_datetime(np.asarray(p.first, dtype=np.int64), utc=True),
                "symbol": pd.Series(p.symbol, dtype=object),
                "sentiment": np.asarray(p.x, dtype=np.float64),
                "ret": np.asarray(p.y, dtype=np.float64),
                "posts": np.asarray(p.posts, dtype=np.int64),
            }
        )

    def _empty(self, source: str) -> SourceStats:
        return SourceStats(source, 0, 0.0, 0.0, 0.0, self.config.floor, None, None)

    def _stats(self, source: str, pairs: _Pairs, k: int) -> SourceStats:
        cfg = self.config
        t = np.asarray(pairs.ts[:k], dtype=np.float64)
        x = np.asarray(pairs.x[:k], dtype=np.float64)
        y = np.asarray(pairs.y[:k], dtype=np.float64)
        w = np.exp2(-(t[-1] - t) / (cfg.half_life_s * _NS))
        if cfg.method == "spearman":
            ic = _weighted_corr(_weighted_ranks(x, w), _weighted_ranks(y, w), w)
        else:
            ic = _weighted_corr(x, y, w)
        n_eff = float(w.sum()) ** 2 / float((w * w).sum())
        shrunk = ic * n_eff / (n_eff + cfg.prior_pairs)
        signed = (x != 0) & (y != 0)
        hit = (
            float(w[signed][np.sign(x[signed]) == np.sign(y[signed])].sum()) / float(w[signed].sum())
            if signed.any()
            else None
        )
        return SourceStats(source, k, n_eff, ic, shrunk, cfg.floor + max(0.0, shrunk), hit, _dt(pairs.ts[k - 1]))


# -- offline learner on real data --------------------------------------------------------------------------------


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
    "DEFAULT_SPLITS",
    "STOCKNET_SOURCE",
    "STOCKTWITS_SOURCE",
    "ReliabilityConfig",
    "ReliabilityState",
    "SourceReliability",
    "SourceStats",
    "learn_reliability",
]
