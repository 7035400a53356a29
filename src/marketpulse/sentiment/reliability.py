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

The offline learner on real data is :mod:`marketpulse.sentiment.reliability_report`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.events import SentimentScore

DAY_S = 86_400.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS = 1_000_000_000


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


__all__ = [
    "ReliabilityConfig",
    "ReliabilityState",
    "SourceReliability",
    "SourceStats",
]
