"""Validation: every record is accepted or dead-lettered with its position, field and reason.

Checks, in order (a record gets the first reason that applies):

1. parse — a row with the wrong number of fields (``bad_row``), a cell that is not a number (``bad_number``) or
   not a time (``bad_timestamp``), an empty required cell (``missing_value``);
2. ranges — ``non_positive_price``, ``negative_volume``, ``not_finite``; for bars ``high_below_low``,
   ``high_below_open_close``, ``low_above_open_close``;
3. ``outside_market_hours`` — only when ``validation.market_hours`` is on (a real exchange calendar);
4. ``stale`` — further than ``validation.stale_after_s`` behind the newest event time of the source;
5. per symbol: ``out_of_order`` (older than the newest accepted record), ``duplicate`` (bars: the same
   timestamp again; ticks: the same timestamp, price and size as the previous tick, unless the source marks its
   rows as distinct events, as LOBSTER messages are), ``outlier_jump`` (a log-return beyond ``outlier_k`` robust
   sigmas, scaled by the square root of the elapsed time, the sigma measured over price moves only since
   unchanged prints carry no scale; judged once a symbol has ``outlier_min_history`` returns; measured from the
   last *accepted* price, so one bad print does not also reject the good one after it; only a print that the
   symbol's next print reverts from (the next price is nearer the old level than this one) is rejected, so a
   real move or trend is kept; the last row of a batch has no next print and is judged alone).

The market validator works on whole columns (numpy/pandas), keeping per-symbol state across batches, so the
order of batches matters but their size does not. Counters: ``read = accepted + deadlettered``, always.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from marketpulse.config import ValidationConfig
from marketpulse.events import Article, DeadLetter, Post
from marketpulse.ingest.base import MarketBatch, RowError, TextBatch, TextKind
from marketpulse.ingest.groups import Groups
from marketpulse.ingest.timeparse import NAT, parse_one

REASONS = (
    "",
    "bad_row",
    "bad_number",
    "bad_timestamp",
    "missing_value",
    "not_finite",
    "non_positive_price",
    "negative_volume",
    "high_below_low",
    "high_below_open_close",
    "low_above_open_close",
    "outside_market_hours",
    "stale",
    "out_of_order",
    "duplicate",
    "outlier_jump",
)
_CODE = {r: i for i, r in enumerate(REASONS)}
_MAX_SIGMA_WEIGHT = 5_000


@dataclass
class Result:
    """The outcome of validating one batch. ``accepted`` is a frame (market) or a list of events (text)."""

    accepted: Any
    deadletters: list[DeadLetter]
    reasons: Counter[str] = field(default_factory=Counter)
    read: int = 0

    @property
    def n_accepted(self) -> int:
        return len(self.accepted)


def position(source: str, line: int, file: str = "") -> str:
    """``source:line``, or ``source/file:line`` for a file inside a folder source."""
    return f"{source}/{file}:{line}" if file else f"{source}:{line}"


def dead_letter(source: str, kind: str, err: RowError, fallback_ns: int = 0) -> DeadLetter:
    """The dead letter of a record that failed before validation (its time is unknown: ``fallback_ns``)."""
    return DeadLetter(
        ts=_at(fallback_ns),
        source=source,
        position=position(source, err.line, err.file),
        field=err.field,
        reason=err.reason,
        record=err.record,
        kind=kind,
        detail=err.detail,
        rejected_at=datetime.now(UTC),
    )


def _at(ns: int) -> datetime:
    """An event time for a dead letter: ``ns`` floored to the microsecond (the epoch for NAT)."""
    return datetime.fromtimestamp(0, UTC) + timedelta(microseconds=max(ns, 0) // 1000)


@functools.lru_cache(maxsize=4)
def _sessions(calendar: str) -> tuple[np.ndarray, np.ndarray]:
    import exchange_calendars as xcals

    cal = xcals.get_calendar(calendar, start="2000-01-03")
    sched = cal.schedule
    return pd.DatetimeIndex(sched["open"]).as_unit("ns").asi8, pd.DatetimeIndex(sched["close"]).as_unit("ns").asi8


def in_market_hours(ts_ns: np.ndarray, calendar: str, bar_end_labels: bool) -> np.ndarray:
    """True where the exchange is in session (a bar labelled by its end may end exactly at the close)."""
    opens, closes = _sessions(calendar)
    i = np.searchsorted(opens, ts_ns, side="left" if bar_end_labels else "right") - 1
    ok = i >= 0
    j = np.where(ok, i, 0)
    return ok & (ts_ns <= closes[j] if bar_end_labels else ts_ns < closes[j])


@dataclass
class _SymbolState:
    last_ts: int = NAT
    last_price: float = math.nan
    last_size: float = math.nan
    last_seq: int = -1
    last_seq_ts: int = NAT
    n_returns: int = 0
    sigma: float = math.nan  # robust sigma of log-returns per sqrt(second)
    dt: float = math.nan  # typical positive spacing, seconds


class MarketValidator:
    """Stateful, vectorised validation of bars or ticks from one source."""

    def __init__(self, config: ValidationConfig, kind: str) -> None:
        self.config, self.kind = config, kind
        self.state: dict[str, _SymbolState] = {}
        self.watermark = NAT
        self.newest_ns = 0  # newest accepted event time: the time of dead letters whose own time is unknown

    def validate(self, batch: MarketBatch) -> Result:
        f = batch.frame
        n = len(f)
        reason = np.zeros(n, dtype=np.int8)
        fld = np.full(n, "", dtype=object)

        def reject(mask: np.ndarray, why: str, column: str) -> None:
            m = mask & (reason == 0)
            reason[m] = _CODE[why]
            fld[m] = column

        for column in ("ts", "symbol", *[c for c in f.columns if c not in ("ts", "symbol")]):
            if column in batch.bad:
                reject(batch.bad[column], batch.bad_reason[column], column)
        ts = f["ts"].to_numpy("datetime64[ns]").view(np.int64)
        price_cols = ("open", "high", "low", "close") if self.kind == "bars" else ("price",)
        size_col = "volume" if self.kind == "bars" else "size"
        for c in (*price_cols, size_col):
            v = f[c].to_numpy(float)
            reject(np.isinf(v), "not_finite", c)
        for c in price_cols:
            reject(f[c].to_numpy(float) <= 0, "non_positive_price", c)
        reject(f[size_col].to_numpy(float) < 0, "negative_volume", size_col)
        if self.kind == "bars":
            o, h, lo, c = (f[x].to_numpy(float) for x in ("open", "high", "low", "close"))
            reject(h < lo, "high_below_low", "high")
            reject(h < np.maximum(o, c), "high_below_open_close", "high")
            reject(lo > np.minimum(o, c), "low_above_open_close", "low")
        if self.config.market_hours:
            reject(~in_market_hours(ts, self.config.calendar, self.kind == "bars"), "outside_market_hours", "ts")
        if self.config.stale_after_s is not None:
            self._check_stale(ts, reason, reject)
        self._per_symbol(f, ts, reason, fld, batch)
        return self._result(batch, reason, fld)

    def _check_stale(self, ts: np.ndarray, reason: np.ndarray, reject: Any) -> None:
        ok = reason == 0
        wm = np.where(ok, ts, NAT)
        running = np.maximum.accumulate(np.concatenate(([self.watermark], wm)))[:-1]
        assert self.config.stale_after_s is not None
        limit = running - int(self.config.stale_after_s * 1e9)
        reject((running != NAT) & (ts < limit), "stale", "ts")
        if ok.any():
            self.watermark = max(self.watermark, int(np.max(np.where(reason == 0, ts, NAT))))

    def _symbol_codes(self, f: pd.DataFrame, idx: np.ndarray) -> tuple[np.ndarray, list[_SymbolState]]:
        """Dense codes of the rows ``idx`` and the state object of each code."""
        column = f["symbol"]
        if isinstance(column.dtype, pd.CategoricalDtype):
            raw = column.cat.codes.to_numpy(np.int64)[idx]
            names = [str(c) for c in column.cat.categories]
        else:
            raw, uniques = pd.factorize(column.to_numpy(object)[idx])
            raw, names = raw.astype(np.int64), [str(u) for u in uniques]
        # dense codes over the symbols present, in O(n) (no sort)
        present = np.flatnonzero(np.bincount(raw, minlength=len(names)))
        remap = np.zeros(len(names), dtype=np.int64)
        remap[present] = np.arange(len(present))
        states = [self.state.setdefault(names[p], _SymbolState()) for p in present]
        return remap[raw], states

    def _per_symbol(
        self, f: pd.DataFrame, ts: np.ndarray, reason: np.ndarray, fld: np.ndarray, batch: MarketBatch
    ) -> None:
        idx = np.flatnonzero(reason == 0)
        if idx.size == 0:
            return
        codes, states = self._symbol_codes(f, idx)
        groups = Groups(codes, len(states))
        st_t = np.array([s.last_ts for s in states], dtype=np.int64)
        st_p = np.array([s.last_price for s in states], dtype=float)
        st_s = np.array([s.last_size for s in states], dtype=float)
        t = ts[idx]
        price = f["close" if self.kind == "bars" else "price"].to_numpy(float)[idx]
        size = f["volume" if self.kind == "bars" else "size"].to_numpy(float)[idx]

        # order: older than the newest earlier row of the symbol (or the state's)
        prev_max = groups.running_max_before(t, st_t)
        ooo = (prev_max != NAT) & (t < prev_max)
        keep = ~ooo
        # duplicates: compared with the previous in-order row of the symbol
        prev_t = groups.previous_selected(t, keep, st_t)
        dup = keep & (t == prev_t)
        if self.kind == "ticks":  # ticks may share a timestamp; an identical print is the duplicate
            prev_p = groups.previous_selected(price, keep, st_p)
            prev_s = groups.previous_selected(size, keep, st_s)
            dup &= (price == prev_p) & (size == prev_s) & (not batch.distinct)
        keep &= ~dup
        jump = self._outliers(groups, t, price, keep, states, st_t, st_p)
        accepted = keep & ~jump
        for mask, why, column in (
            (ooo, "out_of_order", "ts"),
            (dup, "duplicate", "ts"),
            (jump, "outlier_jump", "close" if self.kind == "bars" else "price"),
        ):
            reason[idx[mask]] = _CODE[why]
            fld[idx[mask]] = column
        for code, i in groups.last_selected(accepted).items():
            s = states[code]
            s.last_ts, s.last_price, s.last_size = int(t[i]), float(price[i]), float(size[i])

    def _outliers(
        self,
        groups: Groups,
        t: np.ndarray,
        price: np.ndarray,
        candidates: np.ndarray,
        states: list[_SymbolState],
        st_t: np.ndarray,
        st_p: np.ndarray,
    ) -> np.ndarray:
        """Rows (among ``candidates``) rejected as ``outlier_jump``; updates each symbol's sigma."""
        k, min_hist = self.config.outlier_k, self.config.outlier_min_history
        codes = groups.codes
        seen_before = np.array([s.n_returns for s in states])
        judged = candidates & ((seen_before[codes] + groups.count_before(candidates)) >= min_hist)
        jump = np.zeros(len(t), dtype=bool)
        state_dt = np.array([s.dt for s in states])
        st_sigma = np.array([s.sigma for s in states])
        nxt, has_next = groups.next_selected(price, candidates)
        nxt = np.where(has_next, nxt, price)
        acc = candidates.copy()
        for _ in range(4):
            prev_t = groups.previous_selected(t, acc, st_t)
            prev_p = groups.previous_selected(price, acc, st_p)
            valid = candidates & (prev_t != NAT) & np.isfinite(prev_p)
            dt = np.where(valid, (t - prev_t) / 1e9, np.nan)
            r = np.where(valid, np.log(price / np.where(valid, prev_p, 1.0)), np.nan)
            dt_med = groups.median(np.where(dt > 0, dt, np.nan))
            dt_typ = np.where(np.isnan(state_dt), dt_med, state_dt)[codes]
            dt_typ = np.where(np.isnan(dt_typ), 1.0, dt_typ)
            z = np.abs(r) / np.sqrt(np.maximum(np.nan_to_num(dt, nan=0.0), dt_typ))
            if not judged.any():
                break
            # unchanged prices (most ticks) carry no scale: a median over them would make sigma 0 and every
            # one-tick move a "jump", so the robust sigma is taken over the moves only
            batch_sigma = 1.4826 * groups.median(np.where(acc & valid & (z > 0), z, np.nan))
            sigma = np.fmax(st_sigma, batch_sigma)[codes]
            sigma = np.where(np.isnan(sigma), np.inf, np.maximum(sigma, 1e-12))
            candidate_jump = valid & judged & (z > k * sigma)
            # a new level that the next print of the symbol confirms is a real move, not a bad print
            # (the next print stays nearer the new price than the old level): only a reverting print is bad
            ref = np.where(valid, prev_p, price)
            confirmed = has_next & (np.abs(np.log(nxt / price)) <= np.abs(np.log(nxt / ref)))
            new_jump = candidate_jump & ~confirmed
            if np.array_equal(new_jump, jump):
                break
            jump = new_jump
            acc = candidates & ~jump
        good = acc & valid
        self._update_sigma(groups, good, z, dt, states)
        return jump

    @staticmethod
    def _update_sigma(
        groups: Groups, good: np.ndarray, z: np.ndarray, dt: np.ndarray, states: list[_SymbolState]
    ) -> None:
        z_med = groups.median(np.where(good & (z > 0), z, np.nan))
        dt_med = groups.median(np.where(good & (dt > 0), dt, np.nan))
        counts = np.bincount(groups.codes[good], minlength=len(states))
        for code, s in enumerate(states):
            n_new = int(counts[code])
            if n_new == 0:
                continue
            new_sigma = 1.4826 * float(z_med[code])
            w_old = min(s.n_returns, _MAX_SIGMA_WEIGHT)
            if math.isnan(s.sigma) or w_old == 0:
                s.sigma = new_sigma
            elif not math.isnan(new_sigma):
                s.sigma = (w_old * s.sigma + n_new * new_sigma) / (w_old + n_new)
            if not math.isnan(float(dt_med[code])):
                s.dt = float(dt_med[code]) if math.isnan(s.dt) else 0.9 * s.dt + 0.1 * float(dt_med[code])
            s.n_returns += n_new

    def _result(self, batch: MarketBatch, reason: np.ndarray, fld: np.ndarray) -> Result:
        f = batch.frame
        ok = reason == 0
        accepted = f[ok].copy() if not ok.all() else f.copy()
        if self.kind == "ticks":
            accepted["seq"] = self._seq(accepted)
        counts: Counter[str] = Counter()
        fallback = self.newest_ns
        letters = [dead_letter(batch.source, batch.kind, e, fallback) for e in batch.errors]
        counts.update(e.reason for e in batch.errors)
        ts = f["ts"].to_numpy("datetime64[ns]").view(np.int64)
        now = datetime.now(UTC)
        for i in np.flatnonzero(~ok):
            why, column = REASONS[reason[i]], str(fld[i])
            counts[why] += 1
            if why in ("bad_number", "bad_timestamp", "missing_value"):
                detail = f"{column}: {why.replace('_', ' ')}"
            else:
                detail = f"{column}={f[column].iloc[i]}" if column in f.columns else ""
            letters.append(
                DeadLetter(
                    ts=_at(int(ts[i]) if ts[i] != NAT else fallback),
                    source=batch.source,
                    position=f"{batch.source}:{batch.lines[i]}",
                    field=column,
                    reason=why,
                    record=batch.raw_line(int(i)),
                    kind=batch.kind,
                    detail=detail,
                    rejected_at=now,
                )
            )
        if ok.any():
            self.newest_ns = max(self.newest_ns, int(ts[ok].max()))
        return Result(accepted.reset_index(drop=True), letters, counts, batch.read)

    def _seq(self, accepted: pd.DataFrame) -> np.ndarray:
        """Number ticks sharing (symbol, ts) in source order, continuing across batches."""
        if accepted.empty:
            return np.zeros(0, dtype=np.int32)
        t = accepted["ts"].to_numpy("datetime64[ns]").view(np.int64)
        codes, states = self._symbol_codes(accepted, np.arange(len(accepted)))
        groups = Groups(codes, len(states))
        seq = groups.run_rank(t)
        last_seq = np.array([s.last_seq for s in states], dtype=np.int64)
        last_seq_ts = np.array([s.last_seq_ts for s in states], dtype=np.int64)
        # a symbol's first run (rows since its first row with no change of time) continues the previous
        # batch's numbering when it has the same timestamp
        first_run = seq == groups.count_before(np.ones(len(t), dtype=bool))
        carry = first_run & (t == last_seq_ts[codes]) & (last_seq[codes] >= 0)
        seq = np.where(carry, seq + last_seq[codes] + 1, seq)
        for code, i in groups.last_selected(np.ones(len(t), bool)).items():
            states[code].last_seq, states[code].last_seq_ts = int(seq[i]), int(t[i])
        return seq.astype(np.int32)


class TextValidator:
    """Validation of posts and news records, one record at a time (text volumes are modest)."""

    def __init__(self, config: ValidationConfig, kind: TextKind) -> None:
        self.config, self.kind = config, kind
        self.seen: set[str] = set()
        self.watermark: datetime | None = None

    def validate(self, batch: TextBatch) -> Result:
        counts: Counter[str] = Counter(e.reason for e in batch.errors)
        fallback = int(self.watermark.timestamp() * 1e9) if self.watermark else 0
        letters = [dead_letter(batch.source, batch.kind, e, fallback) for e in batch.errors]
        accepted: list[Post] = []
        cls = Article if self.kind == "news" else Post
        for line, rec in batch.records:
            file = rec.pop("_file", "")
            event_or_error = self._one(rec, cls)
            if isinstance(event_or_error, tuple):
                column, why, detail = event_or_error
                counts[why] += 1
                letters.append(
                    DeadLetter(
                        ts=parse_one(rec.get("created_at"), self.config.naive_timezone) or self.watermark or _at(0),
                        rejected_at=datetime.now(UTC),
                        source=batch.source,
                        position=position(batch.source, line, file),
                        field=column,
                        reason=why,
                        record=_render(rec),
                        kind=batch.kind,
                        detail=detail,
                    )
                )
            else:
                accepted.append(event_or_error)
        return Result(accepted, letters, counts, batch.read)

    def _one(self, rec: dict[str, Any], cls: type[Post]) -> Post | tuple[str, str, str]:
        for name in ("id", "created_at", "text", "source"):
            value = rec.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                return name, "missing_value", ""
        if not isinstance(rec["text"], str):
            return "text", "bad_type", f"expected a string, got {type(rec['text']).__name__}"
        for name in ("text", "title", "author", "id", "url"):  # a lone surrogate (e.g. JSON "\ud800") is no text
            value = rec.get(name)
            if isinstance(value, str) and not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return name, "bad_encoding", "not encodable as UTF-8 (lone surrogate)"
        ts = parse_one(rec["created_at"], self.config.naive_timezone)
        if ts is None:
            return "created_at", "bad_timestamp", f"created_at={rec['created_at']!r}"
        engagement = rec.get("engagement")
        if engagement is not None:
            try:
                engagement = float(engagement)
            except (TypeError, ValueError):
                return "engagement", "bad_number", f"engagement={engagement!r}"
            if not math.isfinite(engagement) or engagement < 0:
                return "engagement", "bad_number", f"engagement={engagement!r}"
        symbols = rec.get("symbols") or ()
        if isinstance(symbols, str):
            symbols = [s for s in symbols.replace(";", ",").split(",") if s.strip()]
        if not isinstance(symbols, list | tuple) or not all(isinstance(s, str) for s in symbols):
            return "symbols", "bad_type", "expected a list of tickers"
        post_id = f"{rec['source']}:{rec['id']}"
        if post_id in self.seen:
            return "id", "duplicate", f"id={rec['id']!r}"
        behind = (self.watermark - ts).total_seconds() if self.watermark is not None else 0.0
        if self.config.stale_after_s is not None and behind > self.config.stale_after_s:
            return "created_at", "stale", f"{behind:.0f}s behind"
        self.seen.add(post_id)
        self.watermark = ts if self.watermark is None else max(self.watermark, ts)
        return cls(
            ts=ts,
            id=str(rec["id"]),
            text=rec["text"],
            source=str(rec["source"]),
            author=None if rec.get("author") is None else str(rec["author"]),
            symbols=tuple(dict.fromkeys(s.strip().lstrip("$").upper() for s in symbols if s.strip())),
            engagement=engagement,
            url=rec.get("url"),
            title=rec.get("title"),
        )


def _render(rec: dict[str, Any]) -> str:
    import json

    return json.dumps(rec, default=str, ensure_ascii=False)
