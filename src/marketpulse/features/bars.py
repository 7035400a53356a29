"""Bars in event time: ticks → time bars and bars → coarser bars, per symbol, closed by a watermark.

Pure stage functions over columnar micro-batches of many symbols with an explicit, picklable :class:`BarState`
(DESIGN §4): the local engine calls them in a loop, a Spark job inside ``applyInPandasWithState``.

**Buckets and labels.** ``interval_s`` divides a day. Intraday buckets are aligned to the UTC epoch (so to every
whole hour and minute in New York too) and half-open for ticks: a tick at ``ts`` is in ``[k·I, (k+1)·I)``. A bar
is labelled by its **end** ``(k+1)·I``, like every bar in the system, so it only holds data before its label.
``interval_s=86_400`` means a daily bar per **exchange session** (``calendar``, XNYS: America/New_York): a row
belongs to the first session whose 16:00 local close (the label, as ingest labels daily bars) is after it
(ticks) or not before it (bars, whose ``ts`` is already an end), so pre-market belongs to its day, post-market
and weekends to the next session, across DST changes. Resampling assumes ``interval_s`` is a multiple of the
input bars' interval: an input bar is placed by its end label.

**Watermark (global per state, i.e. per source stream).** ``W = max event time seen by the state, over all
symbols − allowed_lateness_s``; it never moves back. A bar closes (is emitted) once ``W ≥`` its end. Global,
not per symbol, because a market feed advances in one event time: with a per-symbol watermark an illiquid
symbol's bar would stay open until its next trade (the last minute of a day until the next morning), stalling
its indicators and every cross-sectional feature, whereas with a global one every symbol's bar closes when the
market has moved ``allowed_lateness_s`` past its end. The cost — a symbol whose ticks lag the others by more
than the allowed lateness has late ticks — is visible (returned and counted, below), and the lateness is the
knob for the skew the feed has. A stream that is *not* merged in time (file after file per symbol) should
either be merged (the replay clock does) or get one ``BarState`` per symbol, which is a per-symbol watermark.
An engine may also pass an external ``watermark``: the upstream watermark *after* the batch (the ``state.watermark``
of the stage that made the input bars, or Spark's, lateness already subtracted). Rows of the batch are not judged
against it; it closes bars at the end of the call and judges later rows; the larger watermark wins. Chained
stages close at once that way; without it a coarse bar closes one input bar later (an input bar labelled ``t``
holds data before ``t``, so it moves the clock to ``t − 1 ns`` only).

**Determinism.** The watermark is advanced row by row in stream order (a running maximum), not once per batch,
so which rows are late depends only on the stream, never on how it is cut into micro-batches. Open is the
price of the earliest row in event time (ties: the first to arrive), close the latest (ties: the last to
arrive); high/low are exact; volume and the VWAP numerator are summed in fixed point on 64-bit integers (the
integer part, and the fraction in units of 2⁻⁵² as two limbs), which is exact for every value ≥ 1 (a double
has no bits below 2⁻⁵² there; smaller values are rounded to 2⁻⁵²) and so free of summation order, then rounded
once to a double; one row may not exceed 2⁴⁰. The same stream in any split gives identical bars, bit for bit,
once :func:`flush` ran. Each call emits its bars ordered by ``(ts, symbol)``.

**Late rows** (for a bar whose end the watermark had passed when they arrived — emitted, or an empty bucket)
are never dropped silently: each call returns them in ``late`` (input columns + ``bar_ts`` + ``revised``), for
the engine to dead-letter with reason ``late``, and ``state.n_late`` counts them. With ``revise_window_s > 0``
a late row whose bar exists and ended less than ``revise_window_s`` before the watermark at its arrival is
folded in and the bar is emitted again with ``revision`` = number of late rows folded into it so far (revision
``r`` of a bar has the same content in every split; a call emits only the newest revision of a bar); such rows
are still returned, with ``revised=True``, and counted in ``state.n_revised``. Invariant: the volume of the
newest revision of every bar plus that of late rows with ``revised=False`` equals the input volume.

**Gaps.** An empty interval gives no bar. With ``fill_gaps=True`` a symbol gets, after its first bar, a flat
bar (open = high = low = close = vwap = its previous on-time close, volume 0, trades 0) for every empty interval
up to the watermark — for every known symbol, since the watermark is global, and through nights and weekends
(no calendar for intraday bars) — and :func:`flush` fills the gaps before the bars it closes. ``vwap`` of a
bar without volume is its close.

``resample_bars`` expects final bars (``revision`` 0): a row with ``revision > 0`` cannot be undone from min/max
aggregates and is returned in ``late`` (``revised=False``). Missing ``trades`` counts 0; a missing/NaN ``vwap``
is taken as the close.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from marketpulse.ingest.market import DAILY_CLOSE

NS_PER_S = 1_000_000_000
DAY_S = 86_400
BAR_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume", "trades", "vwap", "revision")

_MAX_ROW = float(2**40)  # per row |volume| and |price × volume|: integer-part sums cannot overflow
_FRAC = float(2**52)  # fractions in units of 2^-52, kept as two 26-bit limbs
_LIMB = 26
_LIMB_MASK = np.int64(2**_LIMB - 1)
_NO_TIME = int(np.iinfo(np.int64).min)
# a partial bar: key (code, end); first/last row in event time (ts, arrival seq); fixed-point sums as hi/lo pairs
_FIELDS = ("code", "end", "fts", "fseq", "open", "lts", "lseq", "close", "high", "low")
_SUMS = ("vi", "vfh", "vfl", "pi", "pfh", "pfl", "trades", "rev", "touch")
_INT = frozenset({"code", "end", "fts", "fseq", "lts", "lseq", *_SUMS})
Table = dict[str, np.ndarray]


@dataclass(eq=False)
class BarState:
    """Everything a bar stage carries between micro-batches; plain data, checkpointable with :mod:`pickle`.

    The configuration (interval, calendar, fill_gaps, revise window) is fixed by the first call: a state
    belongs to one stage, and a later call with another configuration raises ``ValueError``.
    """

    config: tuple[Any, ...] | None = None
    symbols: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    max_ts: int = _NO_TIME  # newest event time seen (ns)
    watermark: int = _NO_TIME  # bars ending at or before it are closed (ns); never moves back
    seq: int = 0  # rows seen: the arrival number of the next row
    open: Table = field(default_factory=lambda: _empty())
    closed: Table = field(default_factory=lambda: _empty())  # kept for revisions
    last_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # fill_gaps: last bucket emitted
    last_close: np.ndarray = field(default_factory=lambda: np.zeros(0))  # fill_gaps: last on-time close
    n_rows: int = 0
    n_late: int = 0
    n_revised: int = 0
    n_bars: int = 0
    n_filled: int = 0


class BarsOut(NamedTuple):
    """Output of one call: bars closed (or revised) by it, late input rows, and the updated state."""

    bars: pd.DataFrame
    late: pd.DataFrame
    state: BarState


# --- tables of partial bars --------------------------------------------------------------------------------


def _empty(n: int = 0) -> Table:
    return {k: np.zeros(n, np.int64 if k in _INT else np.float64) for k in (*_FIELDS, *_SUMS)}


def _take(tab: Table, idx: np.ndarray) -> Table:
    return {k: v[idx] for k, v in tab.items()}


def _concat(*tabs: Table) -> Table:
    return {k: np.concatenate([t[k] for t in tabs]) for k in tabs[0]}


def _combine(tab: Table) -> Table:
    """Merge partial bars with the same ``(code, end)`` (an exact, order-free merge); sorted by key."""
    n = len(tab["code"])
    if n == 0:
        return tab
    s = _take(tab, np.lexsort((tab["fseq"], tab["fts"], tab["end"], tab["code"])))
    new = np.ones(n, dtype=bool)
    new[1:] = (s["code"][1:] != s["code"][:-1]) | (s["end"][1:] != s["end"][:-1])
    if new.all():
        return s
    starts = np.flatnonzero(new)
    out = {k: s[k][starts] for k in ("code", "end", "fts", "fseq", "open")}
    last = np.lexsort((s["lseq"], s["lts"], np.cumsum(new)))[np.append(starts[1:], n) - 1]
    out.update(lts=s["lts"][last], lseq=s["lseq"][last], close=s["close"][last])
    out["high"] = np.maximum.reduceat(s["high"], starts)
    out["low"] = np.minimum.reduceat(s["low"], starts)
    for k in _SUMS:
        out[k] = np.add.reduceat(s[k], starts)
    return out


def _fixed(x: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x`` as integer part and two 26-bit limbs of its fraction in units of 2^-52, all int64: exact for
    ``|x| ≥ 1`` (a double has no bits below 2^-52 there), so sums are exact and independent of order."""
    if x.size and not np.all(np.abs(x) < _MAX_ROW):
        raise ValueError(f"{what} must be finite and below {_MAX_ROW:.3g} per row for exact sums")
    whole = np.floor(x)
    frac = np.rint((x - whole) * _FRAC).astype(np.int64)
    return whole.astype(np.int64), frac >> _LIMB, frac & _LIMB_MASK


def _unfixed(tab: Table, p: str) -> np.ndarray:
    return tab[p + "i"] + (tab[p + "fh"] * 2.0**-_LIMB + tab[p + "fl"] * (1.0 / _FRAC))


def _partials(
    code: np.ndarray,
    t: np.ndarray,
    end: np.ndarray,
    seq: np.ndarray,
    cols: dict[str, np.ndarray],
    n_codes: int,
    late: bool = False,
) -> Table:
    """Rows (in arrival order) → one partial bar per ``(code, end)``, without a Python loop per row.

    ``cols``: ``open, high, low, close, volume, pv`` and optionally ``trades`` (default 1 per row). ``late``
    rows count in ``rev`` (revision = late rows folded in) and mark their bar as touched.
    """
    n = len(t)
    if n == 0:
        return _empty()
    # a stable sort of small codes is a radix sort (O(n)) and keeps arrival order inside a symbol
    order = np.argsort(code.astype(np.uint16) if n_codes <= 65_535 else code, kind="stable")
    cs, ts = code[order], t[order]
    same = cs[1:] == cs[:-1]
    if not np.all(~same | (ts[1:] >= ts[:-1])):  # a symbol's rows out of event order: sort by (code, ts)
        order = np.lexsort((t, code))
        cs, ts = code[order], t[order]
        same = cs[1:] == cs[:-1]
    es = end[order]
    new = np.ones(n, dtype=bool)
    new[1:] = ~same | (es[1:] != es[:-1])
    starts = np.flatnonzero(new)
    first, last = order[starts], order[np.append(starts[1:], n) - 1]
    tab = {
        "code": cs[starts],
        "end": es[starts],
        "fts": ts[starts],
        "fseq": seq[first],
        "open": cols["open"][first],
        "lts": t[last],
        "lseq": seq[last],
        "close": cols["close"][last],
    }
    gathered: dict[int, np.ndarray] = {}

    def sorted_col(name: str) -> np.ndarray:
        col = cols[name]
        if id(col) not in gathered:
            gathered[id(col)] = col[order]
        return gathered[id(col)]

    tab["high"] = np.maximum.reduceat(sorted_col("high"), starts)
    tab["low"] = np.minimum.reduceat(sorted_col("low"), starts)
    for p, (whole, fh, fl) in (("v", _fixed(cols["volume"], "volume")), ("p", _fixed(cols["pv"], "price × size"))):
        tab[p + "i"] = np.add.reduceat(whole[order], starts)
        tab[p + "fh"] = np.add.reduceat(fh[order], starts)
        tab[p + "fl"] = np.add.reduceat(fl[order], starts)
    rows = np.diff(np.append(starts, n))
    trades = cols.get("trades")
    tab["trades"] = rows if trades is None else np.add.reduceat(trades[order], starts)
    tab["rev"] = rows if late else np.zeros(len(starts), np.int64)
    tab["touch"] = tab["rev"].copy()
    return tab


# --- the time grid -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _session_ends(calendar: str) -> np.ndarray:
    """UTC ns of 16:00 (calendar time zone) on every session date of ``calendar``, ascending."""
    import exchange_calendars as xcals

    with warnings.catch_warnings():  # the library's own pandas deprecations
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar(calendar, start="2000-01-03")
    days = pd.DatetimeIndex(cal.sessions).tz_localize(None).tz_localize(cal.tz)
    return np.asarray((days + DAILY_CLOSE).tz_convert("UTC").as_unit("ns").asi8, dtype=np.int64)


class _Grid:
    """Bucket ends: multiples of the interval, or session closes; ``index`` ↔ ``end`` both ways, ascending."""

    def __init__(self, interval_s: int, calendar: str) -> None:
        if interval_s <= 0 or DAY_S % interval_s:
            raise ValueError(f"interval_s must divide a day (86400 s), got {interval_s}")
        self.step = interval_s * NS_PER_S
        self.sessions = _session_ends(calendar) if interval_s == DAY_S else None

    def end(self, t: np.ndarray, bars: bool) -> np.ndarray:
        """Bucket end of rows at ``t``: ticks ``[start, end)``, bars (labelled by their end) ``(start, end]``."""
        if self.sessions is None:
            return ((t - 1) // self.step + 1) * self.step if bars else (t // self.step + 1) * self.step
        i = np.searchsorted(self.sessions, t, side="left" if bars else "right")
        if i.size and (i.max() >= len(self.sessions) or i.min() == 0):
            raise ValueError("event times outside the exchange calendar's sessions")
        return self.sessions[i]

    def index(self, end: np.ndarray) -> np.ndarray:
        if self.sessions is None:
            return end // self.step
        return np.searchsorted(self.sessions, end).astype(np.int64)

    def end_of(self, idx: np.ndarray) -> np.ndarray:
        return idx * self.step if self.sessions is None else self.sessions[idx]

    def last_index(self, wm: int) -> int:
        """Index of the last bucket ending at or before ``wm``."""
        if self.sessions is None:
            return wm // self.step
        return int(np.searchsorted(self.sessions, wm, side="right")) - 1


# --- the stage -----------------------------------------------------------------------------------------------


def ticks_to_bars(
    ticks: pd.DataFrame,
    state: BarState,
    interval_s: int,
    allowed_lateness_s: float = 0.0,
    *,
    fill_gaps: bool = False,
    revise_window_s: float = 0.0,
    calendar: str = "XNYS",
    watermark: pd.Timestamp | int | None = None,
) -> BarsOut:
    """Ticks (``symbol, ts, price, size``; any symbols, any order) → bars closed by the watermark.

    Updates ``state`` in place (and returns it). Raises ``ValueError`` for a configuration other than the
    state's, an interval that does not divide a day, a negative lateness or window, a naive or NaT time, a
    row without a symbol or an oversized row (``KeyError`` for a missing column).
    """
    price = ticks["price"].to_numpy(np.float64)
    size = ticks["size"].to_numpy(np.float64)
    cols = {"open": price, "high": price, "low": price, "close": price, "volume": size, "pv": price * size}
    return _stage(ticks, state, ("ticks", interval_s, calendar, fill_gaps, revise_window_s), cols,
                  allowed_lateness_s, watermark)  # fmt: skip


def resample_bars(
    bars: pd.DataFrame,
    state: BarState,
    interval_s: int,
    allowed_lateness_s: float = 0.0,
    *,
    fill_gaps: bool = False,
    revise_window_s: float = 0.0,
    calendar: str = "XNYS",
    watermark: pd.Timestamp | int | None = None,
) -> BarsOut:
    """Bars (``symbol, ts`` = end label, ``open, high, low, close, volume`` [, ``trades, vwap, revision``]) →
    coarser bars (``interval_s`` a multiple of theirs; 86 400 = exchange sessions), same contract as
    :func:`ticks_to_bars`. Exact OHLC, volume and trades; vwap = volume-weighted mean of the input vwaps."""
    close = bars["close"].to_numpy(np.float64)
    volume = bars["volume"].to_numpy(np.float64)
    vwap = bars["vwap"].to_numpy(np.float64) if "vwap" in bars else close
    vwap = np.where(np.isnan(vwap), close, vwap)
    cols = {
        "open": bars["open"].to_numpy(np.float64),
        "high": bars["high"].to_numpy(np.float64),
        "low": bars["low"].to_numpy(np.float64),
        "close": close,
        "volume": volume,
        "pv": vwap * volume,
        "trades": bars["trades"].to_numpy(np.int64) if "trades" in bars else np.zeros(len(bars), np.int64),
    }
    revised = bars["revision"].to_numpy(np.int64) > 0 if "revision" in bars else None
    return _stage(bars, state, ("bars", interval_s, calendar, fill_gaps, revise_window_s), cols,
                  allowed_lateness_s, watermark, force_late=revised)  # fmt: skip


def flush(state: BarState) -> pd.DataFrame:
    """End of stream: close every open bar (and, with ``fill_gaps``, the gaps before them); later rows for
    buckets up to the last one closed here are late."""
    if state.config is None or len(state.open["code"]) == 0:
        return _frame(state, _empty())
    _, interval_s, calendar, fill_gaps, _ = state.config
    grid = _Grid(interval_s, calendar)
    closing = state.open
    state.open = _empty()
    wm = int(closing["end"].max())
    emit = _close(state, grid, closing, closing, None, fill_gaps)
    state.watermark = max(state.watermark, wm)
    state.max_ts = max(state.max_ts, wm)
    return _frame(state, emit)


def _stage(
    frame: pd.DataFrame,
    state: BarState,
    config: tuple[Any, ...],
    cols: dict[str, np.ndarray],
    allowed_lateness_s: float,
    watermark: pd.Timestamp | int | None,
    force_late: np.ndarray | None = None,
) -> BarsOut:
    if state.config is None:
        state.config = config
    elif state.config != config:
        raise ValueError(f"this BarState belongs to a stage configured as {state.config}, not {config}")
    kind, interval_s, calendar, fill_gaps, revise_window_s = config
    if not (allowed_lateness_s >= 0 and revise_window_s >= 0):
        raise ValueError("allowed_lateness_s and revise_window_s must be >= 0")
    grid = _Grid(interval_s, calendar)
    n = len(frame)
    if not isinstance(frame["ts"].dtype, pd.DatetimeTZDtype):
        raise ValueError(f"ts must be a tz-aware datetime column, got {frame['ts'].dtype}")
    t = frame["ts"].to_numpy("datetime64[ns]").view(np.int64)
    if (t == _NO_TIME).any():
        raise ValueError("a row without an event time (NaT)")
    code = _codes(state, frame["symbol"])
    end = grid.end(t, bars=kind == "bars")
    seq = np.arange(state.seq, state.seq + n, dtype=np.int64)
    state.seq += n
    state.n_rows += n

    # the watermark before each row, advanced row by row (split-invariant), never moving back; a bar labelled
    # t holds data before t, so it moves the clock to t - 1 ns (bars sharing a label are all on time)
    lateness = round(allowed_lateness_s * NS_PER_S)
    clock = t - 1 if kind == "bars" else t
    running = np.maximum(np.maximum.accumulate(clock), state.max_ts) if n else np.zeros(0, np.int64)
    wm_rows = np.maximum(running - lateness, state.watermark)
    late = end <= wm_rows
    if force_late is not None:
        late |= force_late
    if n:
        state.max_ts = int(running[-1])
        state.watermark = int(wm_rows[-1])
    if watermark is not None:  # the upstream watermark after this batch: closes bars, judges later rows
        state.watermark = max(state.watermark, _ns(watermark))
    wm = state.watermark

    ok = ~late
    if ok.all():
        part = _partials(code, t, end, seq, cols, len(state.symbols))
    else:
        i = np.flatnonzero(ok)
        part = _partials(code[i], t[i], end[i], seq[i], {k: v[i] for k, v in cols.items()}, len(state.symbols))
    tab = _combine(_concat(state.open, part)) if len(state.open["code"]) else part
    closing = tab["end"] <= wm
    closed_now = _take(tab, np.flatnonzero(closing))
    state.open = _take(tab, np.flatnonzero(~closing))

    late_idx = np.flatnonzero(late)
    revised = np.zeros(len(late_idx), dtype=bool)
    late_rows = np.zeros(0, np.int64) if revise_window_s > 0 else None
    if revise_window_s > 0 and len(late_idx):
        window = round(revise_window_s * NS_PER_S)
        fresh = end[late_idx] > wm_rows[late_idx] - window
        if force_late is not None:
            fresh &= ~force_late[late_idx]
        candidate = late_idx[fresh]
        pool = _concat(state.closed, closed_now)
        known = _keys(grid, pool["code"], pool["end"], len(state.symbols))
        hit = np.isin(_keys(grid, code[candidate], end[candidate], len(state.symbols)), known)
        late_rows = candidate[hit]
        revised = np.isin(late_idx, late_rows)
    emit = _close(state, grid, closed_now, _revise(state, closed_now, late_rows, code, t, end, seq, cols),
                  wm, fill_gaps)  # fmt: skip
    if revise_window_s > 0:
        keep = state.closed["end"] > wm - round(revise_window_s * NS_PER_S)
        state.closed = _take(state.closed, np.flatnonzero(keep))
    state.n_late += len(late_idx)
    state.n_revised += int(revised.sum())
    bar_ts = end[late_idx]
    return BarsOut(_frame(state, emit), _late_frame(frame, late_idx, bar_ts, revised), state)


def _revise(
    state: BarState,
    closed_now: Table,
    late_rows: np.ndarray | None,
    code: np.ndarray,
    t: np.ndarray,
    end: np.ndarray,
    seq: np.ndarray,
    cols: dict[str, np.ndarray],
) -> Table:
    """Bars to emit: those closed now, and (revisions on) retained bars with late rows folded in."""
    if late_rows is None:
        return closed_now
    now = dict(closed_now, touch=np.ones(len(closed_now["code"]), np.int64))
    parts = [state.closed, now]
    if len(late_rows):
        sub = {k: v[late_rows] for k, v in cols.items()}
        parts.append(_partials(code[late_rows], t[late_rows], end[late_rows], seq[late_rows], sub,
                               len(state.symbols), late=True))  # fmt: skip
    merged = _combine(_concat(*parts))
    touched = merged["touch"] > 0
    merged["touch"] = np.zeros(len(touched), np.int64)
    state.closed = merged
    return _take(merged, np.flatnonzero(touched))


def _close(state: BarState, grid: _Grid, on_time: Table, emit: Table, wm: int | None, fill_gaps: bool) -> Table:
    """Bookkeeping of closed bars (``on_time``: closed from on-time rows only) and gap fillers, if on."""
    state.n_bars += len(emit["code"])
    if not fill_gaps:
        return emit
    n_codes = len(state.symbols)
    if len(state.last_idx) < n_codes:
        grow = n_codes - len(state.last_idx)
        state.last_idx = np.append(state.last_idx, np.full(grow, -1, np.int64))
        state.last_close = np.append(state.last_close, np.full(grow, np.nan))
    order = np.lexsort((on_time["end"], on_time["code"]))
    c, idx, close = on_time["code"][order], grid.index(on_time["end"][order]), on_time["close"][order]
    first = np.ones(len(c), dtype=bool)
    first[1:] = c[1:] != c[:-1]
    prev_idx = np.where(first, state.last_idx[c], np.roll(idx, 1))
    prev_close = np.where(first, state.last_close[c], np.roll(close, 1))
    gap_code, gap_from, gap_px = [c], [prev_idx + 1], [prev_close]
    gap_len = [np.where(prev_idx >= 0, idx - prev_idx - 1, 0)]
    last = np.flatnonzero(np.append(first[1:], True)) if len(c) else np.zeros(0, np.int64)
    state.last_idx[c[last]] = idx[last]
    state.last_close[c[last]] = close[last]
    if wm is not None:  # tails: every symbol with a bar, up to the watermark
        w = grid.last_index(wm)
        known = np.flatnonzero((state.last_idx >= 0) & (state.last_idx < w))
        gap_code.append(known)
        gap_from.append(state.last_idx[known] + 1)
        gap_len.append(w - state.last_idx[known])
        gap_px.append(state.last_close[known])
        state.last_idx[known] = w
    lens = np.concatenate(gap_len)
    total = int(lens.sum())
    if total == 0:
        return emit
    starts = np.concatenate(gap_from)
    offsets = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    px = np.repeat(np.concatenate(gap_px), lens)
    fill = _empty(total)
    fill["code"] = np.repeat(np.concatenate(gap_code), lens)
    fill["end"] = grid.end_of(np.repeat(starts, lens) + offsets)
    for k in ("open", "high", "low", "close"):
        fill[k] = px
    state.n_filled += total
    state.n_bars += total
    return _concat(emit, fill)


def _keys(grid: _Grid, code: np.ndarray, end: np.ndarray, n_codes: int) -> np.ndarray:
    return grid.index(end) * max(n_codes, 1) + code


def _ns(ts: pd.Timestamp | int) -> int:
    return int(ts) if isinstance(ts, int | np.integer) else int(pd.Timestamp(ts).as_unit("ns").value)


def _codes(state: BarState, symbol: pd.Series) -> np.ndarray:
    """State codes of the rows' symbols (new symbols get the next codes, in order of first appearance)."""
    if isinstance(symbol.dtype, pd.CategoricalDtype):
        raw = symbol.cat.codes.to_numpy(np.int64)
        names = [str(c) for c in symbol.cat.categories]
        names_in_order = names
        if raw.size and raw.min() >= 0 and any(name not in state.codes for name in names):
            uniq, first = np.unique(raw, return_index=True)  # new symbols: numbered in order of appearance
            names_in_order = [names[uniq[i]] for i in np.argsort(first)]
    else:
        raw, uniques = pd.factorize(symbol, sort=False)
        raw = np.asarray(raw, dtype=np.int64)
        names = names_in_order = [str(u) for u in uniques]
    if raw.size and raw.min() < 0:
        raise ValueError("a row without a symbol")
    for name in names_in_order:
        if name not in state.codes:
            state.codes[name] = len(state.symbols)
            state.symbols.append(name)
    remap = np.array([state.codes.get(name, -1) for name in names], dtype=np.int64)
    return remap[raw]


def _frame(state: BarState, tab: Table) -> pd.DataFrame:
    names = np.asarray(state.symbols, dtype=object)
    rank = np.argsort(np.argsort(names, kind="stable"), kind="stable") if len(names) else np.zeros(0, np.int64)
    order = np.lexsort((tab["code"], rank[tab["code"]], tab["end"])) if len(tab["code"]) else np.zeros(0, np.int64)
    s = _take(tab, order)
    volume = _unfixed(s, "v")
    pv = _unfixed(s, "p")
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(volume > 0, pv / volume, s["close"])
    return pd.DataFrame(
        {
            "symbol": pd.Series(names[s["code"]], dtype=str),
            "ts": pd.DatetimeIndex(s["end"].view("datetime64[ns]")).tz_localize("UTC"),
            "open": s["open"],
            "high": s["high"],
            "low": s["low"],
            "close": s["close"],
            "volume": volume,
            "trades": s["trades"],
            "vwap": vwap,
            "revision": s["rev"],
        }
    )


def _late_frame(frame: pd.DataFrame, idx: np.ndarray, bar_ts: Any, revised: Any) -> pd.DataFrame:
    late = frame.iloc[idx].reset_index(drop=True)
    late["bar_ts"] = pd.DatetimeIndex(np.asarray(bar_ts, np.int64).view("datetime64[ns]")).tz_localize("UTC")
    late["revised"] = np.asarray(revised, dtype=bool)
    return late
