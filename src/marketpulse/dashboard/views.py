"""What the dashboard draws, as pure functions of API data (no Streamlit here, so every piece is unit-tested).

* :func:`overlays` — SMA / EMA / Bollinger bands computed from the bars on screen, **for display only** (the
  engine's own TA-Lib-exact indicators come from ``/v1/indicators`` and are shown as they are);
* :func:`engine_levels` — price levels implied by the engine's latest normalised features (``sma_30_gap`` is
  ``close / sma - 1``, so ``sma = close / (1 + gap)``);
* :func:`realised` — each prediction beside what happened over its horizon, read from the bars;
* :func:`sentiment_points` — one row per source of a ``/v1/sentiment`` answer, for the timeline the page samples;
* :func:`weights_frame` — fused signals (``/v1/signals/{symbol}/history`` rows) → score and one column per weight;
* :func:`pick_stats` — throughput, lag and latency figures found by name in ``/v1/stats``;
* ``*_figure`` — the Plotly figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from marketpulse.dashboard.client import flatten, items, number, records_frame, timestamp_of

UP, DOWN, FLAT, PENDING = "#26a69a", "#ef5350", "#9e9e9e", "#bdbdbd"
SOURCE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_LAYOUT: dict[str, Any] = {"margin": {"l": 10, "r": 10, "t": 36, "b": 10}, "legend": {"orientation": "h", "y": 1.08}}


# -- indicators ---------------------------------------------------------------------------------------------------
def overlays(bars: pd.DataFrame, sma: int = 20, ema: int = 12, bb: int = 20, bb_k: float = 2.0) -> pd.DataFrame:
    """``ts`` plus ``sma_<n>``, ``ema_<n>``, ``bb_upper``, ``bb_mid``, ``bb_lower`` over ``bars.close``.

    Warm-up rows are NaN (a window needs ``n`` bars; the EMA is seeded with the SMA of its first ``n`` closes, as
    TA-Lib does). Bollinger bands use the population standard deviation, as TA-Lib does."""
    close = bars["close"].astype(float).reset_index(drop=True)
    out = pd.DataFrame({"ts": bars["ts"].reset_index(drop=True)})
    out[f"sma_{sma}"] = close.rolling(sma, min_periods=sma).mean()
    out[f"ema_{ema}"] = _ema(close.to_numpy(), ema)
    mid = close.rolling(bb, min_periods=bb).mean()
    sd = close.rolling(bb, min_periods=bb).std(ddof=0)
    out["bb_mid"], out["bb_upper"], out["bb_lower"] = mid, mid + bb_k * sd, mid - bb_k * sd
    return out


def _ema(values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(values), np.nan)
    if len(values) < n:
        return out
    alpha = 2.0 / (n + 1)
    out[n - 1] = values[:n].mean()
    for i in range(n, len(values)):
        out[i] = alpha * values[i] + (1 - alpha) * out[i - 1]
    return out


_GAP_LEVELS = {
    "sma_30_gap": "SMA 30",
    "ema_12_gap": "EMA 12",
    "bb_upper": "Bollinger upper",
    "bb_lower": "Bollinger lower",
}


def engine_levels(values: Mapping[str, Any], close: float | None) -> dict[str, float]:
    """Price levels implied by the engine's ``close / level - 1`` features (empty without a close)."""
    if close is None:
        return {}
    levels = {}
    for key, label in _GAP_LEVELS.items():
        gap = number(values.get(key))
        if gap is not None and gap > -1:
            levels[label] = close / (1.0 + gap)
    return levels


def oscillators(values: Mapping[str, Any]) -> dict[str, float]:
    """RSI / stochastic / MFI on their usual 0–100 scale, from the engine's centred ``v / 100 - 0.5`` features."""
    out = {}
    for key, label in (("rsi_14", "RSI 14"), ("stoch_k", "Stoch %K"), ("stoch_d", "Stoch %D"), ("mfi_14", "MFI 14")):
        x = number(values.get(key))
        if x is not None:
            out[label] = (x + 0.5) * 100.0
    return out


# -- predictions against what happened ----------------------------------------------------------------------------
def realised(predictions: pd.DataFrame, bars: pd.DataFrame, default_horizon_s: int = 60) -> pd.DataFrame:
    """Each prediction with ``realised_return`` and ``outcome`` (``up``/``down``/``flat``/``pending``/``unknown``).

    ``bars`` is any price series (``ts``, ``close``): bars, or bars merged with sampled quotes. The return is
    ``close(ts + horizon) / close(ts) - 1`` with the last point at or before each time. ``pending``: the horizon
    has not passed in the prices yet; ``unknown``: no point within one horizon before either time, or both times
    share a point (prices too coarse for the horizon). ``hit`` is True/False for resolved up/down outcomes."""
    if predictions.empty:
        return predictions.assign(realised_return=[], outcome=[], hit=[])
    preds = predictions.copy()
    p_up = pd.to_numeric(preds["p_up"], errors="coerce") if "p_up" in preds else pd.Series(np.nan, index=preds.index)
    preds["p_up"] = p_up
    h = pd.Series(default_horizon_s, index=preds.index, dtype=float)
    if "horizon_s" in preds:
        h = pd.to_numeric(preds["horizon_s"], errors="coerce").fillna(default_horizon_s).astype(float)
    preds["target_ts"] = preds["ts"] + pd.to_timedelta(h, unit="s")
    if bars.empty:
        return preds.assign(realised_return=np.nan, outcome="unknown", hit=None)
    b = bars[["ts", "close"]].sort_values("ts")
    t_bar = b["ts"].to_numpy("datetime64[ns]").view(np.int64)
    close = b["close"].to_numpy(float)
    i0 = np.searchsorted(t_bar, preds["ts"].to_numpy("datetime64[ns]").view(np.int64), side="right") - 1
    target = preds["target_ts"].to_numpy("datetime64[ns]").view(np.int64)
    i1 = np.searchsorted(t_bar, target, side="right") - 1
    ret: list[float] = []
    outcome: list[str] = []
    hit: list[bool | None] = []
    h_ns = (h.to_numpy(float) * 1e9).astype(np.int64)
    for a, z, tgt, h_i, p in zip(i0, i1, target, h_ns, preds["p_up"].to_numpy(float), strict=True):
        stale = a < 0 or z <= a or t_bar[a] < tgt - 2 * h_i or t_bar[z] < tgt - h_i
        if tgt > t_bar[-1] or stale:
            ret.append(np.nan)
            outcome.append("pending" if tgt > t_bar[-1] else "unknown")
            hit.append(None)
            continue
        r = float(close[z] / close[a] - 1.0)
        side = "up" if r > 0 else "down" if r < 0 else "flat"
        ret.append(r)
        outcome.append(side)
        hit.append(None if side == "flat" or np.isnan(p) else bool((p > 0.5) == (side == "up")))
    return preds.assign(realised_return=ret, outcome=outcome, hit=pd.Series(hit, index=preds.index, dtype=object))


# -- sentiment ----------------------------------------------------------------------------------------------------
def sentiment_points(reply: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows ``ts, source, polarity, intensity, count`` of one ``/v1/sentiment`` answer: ``combined`` plus one per
    source (a source without its own time takes the answer's)."""
    ts = timestamp_of(reply)
    rows = []
    if ts is not None and number(reply.get("polarity")) is not None:
        rows.append(
            {
                "ts": ts,
                "source": "combined",
                "polarity": number(reply.get("polarity")),
                "intensity": number(reply.get("intensity")),
                "count": number(reply.get("count")),
            }
        )
    sources = reply.get("sources")
    if isinstance(sources, Mapping):  # {"twitter": {...}} as well as [{"source": "twitter", ...}]
        sources = [{"source": k, **v} for k, v in sources.items() if isinstance(v, Mapping)]
    for s in sources if isinstance(sources, list) else []:
        if not isinstance(s, Mapping) or number(s.get("polarity")) is None:
            continue
        when = timestamp_of(s) or ts
        if when is None:
            continue
        rows.append(
            {
                "ts": when,
                "source": str(s.get("source") or "?"),
                "polarity": number(s.get("polarity")),
                "intensity": number(s.get("intensity")),
                "count": number(s.get("count")),
            }
        )
    return rows


def sentiment_frame(history: Any, samples: list[dict[str, Any]]) -> pd.DataFrame:
    """The timeline: rows of a history endpoint answer when there is one, else the samples the page collected.
    The API's combined rows (source ``all``) are named ``combined``, as the samples name them."""
    frame = records_frame(history, "sentiment", "history", "scores") if history is not None else pd.DataFrame()
    if not frame.empty and "polarity" in frame:
        frame["source"] = frame["source"].replace({"all": "combined"}) if "source" in frame else "combined"
        return frame
    if not samples:
        return pd.DataFrame(columns=["ts", "source", "polarity", "intensity", "count"])
    frame = pd.DataFrame(samples).drop_duplicates(["ts", "source"], keep="last")
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


# -- fused signals ------------------------------------------------------------------------------------------------
WEIGHT_PREFIX = "weight."
"""Column prefix of :func:`weights_frame`: ``weight.price`` is the fusion's weight of the ``price`` input."""


def weights_frame(data: Any) -> pd.DataFrame:
    """Signals (a ``/v1/signals/{symbol}/history`` answer, a list of signal objects, or one signal) → ``ts``,
    ``score`` and one ``weight.<input>`` column per input seen in any row, sorted by ``ts`` (one row per time, the
    last wins). A row without some input has NaN there; rows without a readable time are dropped; weights are
    taken as they come (Hedge weights sum to 1, stacking coefficients may be negative or above 1)."""
    rows: list[dict[str, Any]] = []
    signals = [data] if isinstance(data, Mapping) and "weights" in data else items(data, "signals")
    for signal in signals:
        ts = timestamp_of(signal)
        if ts is None:
            continue
        weights = signal.get("weights")
        row: dict[str, Any] = {"ts": ts, "score": number(signal.get("score"))}
        if isinstance(weights, Mapping):
            row.update({f"{WEIGHT_PREFIX}{name}": number(w) for name, w in weights.items()})
        rows.append(row)
    names = sorted({c for r in rows for c in r if c.startswith(WEIGHT_PREFIX)})
    frame = pd.DataFrame(rows, columns=["ts", "score", *names])
    if frame.empty:
        return frame
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame[["score", *names]] = frame[["score", *names]].astype(float)
    frame = frame.sort_values("ts", kind="stable").drop_duplicates("ts", keep="last")
    return frame.reset_index(drop=True)


# -- system health ------------------------------------------------------------------------------------------------
def pick_stats(stats: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Numeric leaves of ``/v1/stats`` grouped as ``throughput`` (``*per_s*``, ``*rate*``, ``*throughput*``), ``lag``
    and ``latency`` (``*latency*``, ``*_ms*``, ``*p50*``/``*p99*``), keyed by their dotted path."""
    groups: dict[str, dict[str, float]] = {"throughput": {}, "lag": {}, "latency": {}}
    for path, value in flatten(dict(stats)).items():
        x = number(value)
        if x is None:
            continue
        name = path.lower()
        if "lag" in name:
            groups["lag"][path] = x
        elif "latency" in name or "_ms" in name or "p50" in name or "p99" in name or "p95" in name:
            groups["latency"][path] = x
        elif "per_s" in name or "rate" in name or "throughput" in name or name.endswith("_s_1"):
            groups["throughput"][path] = x
    return groups


COUNTERS: tuple[tuple[str, str], ...] = (
    ("engine.ticks", "ticks/s"),
    ("engine.feature_rows", "features/s"),
    ("engine.sentiment_scores", "scores/s"),
    ("engine.predictions", "predictions/s"),
    ("pipeline.published", "published/s"),
    ("pipeline.stored", "stored/s"),
)
"""Counters (matched as a suffix of the dotted path in ``/v1/stats``) turned into rates, and their labels."""
EVENT_TIME_KEYS = ("event_time_ns", "event_ts_ns")


def counters_of(stats: Mapping[str, Any]) -> dict[str, float]:
    """The numeric leaves of ``/v1/stats`` that :func:`counter_rates` reads (counters and event time)."""
    out = {}
    for path, value in flatten(dict(stats)).items():
        x = number(value)
        if x is None:
            continue
        if any(path.endswith(suffix) for suffix, _ in COUNTERS) or path.rsplit(".", 1)[-1] in EVENT_TIME_KEYS:
            out[path] = x
    return out


def counter_rates(samples: list[tuple[float, dict[str, float]]], window_s: float = 10.0) -> dict[str, float]:
    """Rates per second over the last ``window_s`` of ``(wall seconds, counters)`` samples, labelled as in
    :data:`COUNTERS`; ``event time ×`` is how fast event time advanced against wall time. Empty with fewer than
    two samples; a counter that went down (a restart) is left out."""
    if len(samples) < 2:
        return {}
    t1, last = samples[-1]
    t0, first = next(((t, c) for t, c in samples if t1 - t <= window_s and t < t1), samples[-2])
    dt = t1 - t0
    if dt <= 0:
        return {}
    rates = {}
    for suffix, label in COUNTERS:
        for path, x1 in last.items():
            if path.endswith(suffix) and path in first and x1 >= first[path]:
                rates[label] = (x1 - first[path]) / dt
                break
    for path, x1 in last.items():
        if path.rsplit(".", 1)[-1] in EVENT_TIME_KEYS and path in first and x1 >= first[path]:
            rates["event time ×"] = (x1 - first[path]) / 1e9 / dt
            break
    return rates


def short_label(path: str) -> str:
    """``pipeline.engine.latency_ms_p50`` → ``engine latency ms p50``."""
    parts = [p for p in path.split(".") if p not in ("pipeline", "stats")]
    return " ".join(parts[-2:]).replace("_", " ")


# -- figures ------------------------------------------------------------------------------------------------------
def price_figure(bars: pd.DataFrame, symbol: str, levels: Mapping[str, float] | None = None) -> go.Figure:
    """Candlesticks with SMA / EMA / Bollinger overlays (client-side, display only) and volume below."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.03)
    fig.add_trace(
        go.Candlestick(
            x=bars["ts"],
            open=bars["open"],
            high=bars["high"],
            low=bars["low"],
            close=bars["close"],
            name=symbol,
            increasing_line_color=UP,
            decreasing_line_color=DOWN,
        ),
        row=1,
        col=1,
    )
    ov = overlays(bars)
    fig.add_trace(go.Scatter(x=ov["ts"], y=ov["bb_upper"], name="BB 20,2", line={"width": 1, "color": "#90a4ae"}))
    fig.add_trace(
        go.Scatter(
            x=ov["ts"],
            y=ov["bb_lower"],
            name="BB lower",
            line={"width": 1, "color": "#90a4ae"},
            fill="tonexty",
            fillcolor="rgba(144,164,174,0.15)",
            showlegend=False,
        )
    )
    fig.add_trace(go.Scatter(x=ov["ts"], y=ov["sma_20"], name="SMA 20", line={"width": 1.5, "color": "#fb8c00"}))
    fig.add_trace(go.Scatter(x=ov["ts"], y=ov["ema_12"], name="EMA 12", line={"width": 1.5, "color": "#5e35b1"}))
    for label, level in (levels or {}).items():
        fig.add_hline(y=level, line_dash="dot", line_width=1, annotation_text=f"engine {label}", row=1, col=1)
    colours = np.where(bars["close"] >= bars["open"], UP, DOWN)
    fig.add_trace(go.Bar(x=bars["ts"], y=bars["volume"], name="volume", marker_color=colours), row=2, col=1)
    fig.update_layout(height=460, xaxis_rangeslider_visible=False, **_LAYOUT)
    weekdays_only = len(bars) > 0 and not bars["ts"].dt.day_of_week.isin([5, 6]).any()
    if weekdays_only:
        fig.update_xaxes(rangebreaks=[{"bounds": ["sat", "mon"]}])  # no empty weekends between daily candles
    if len(bars) > 1:  # room for the first and last candle (outside a hidden weekend, or it would collapse)
        step = bars["ts"].diff().median()
        lo, hi = bars["ts"].iloc[0] - step, bars["ts"].iloc[-1] + step
        while weekdays_only and lo.day_of_week >= 5:
            lo -= pd.Timedelta(days=1)
        while weekdays_only and hi.day_of_week >= 5:
            hi += pd.Timedelta(days=1)
        fig.update_xaxes(range=[lo, hi])
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="volume", row=2, col=1)
    return fig


def sentiment_figure(frame: pd.DataFrame) -> go.Figure:
    """Polarity over event time, one line per source (``combined`` thicker); marker size follows intensity."""
    fig = go.Figure()
    for i, (source, rows) in enumerate(frame.groupby("source", sort=True)):
        intensity = (
            pd.to_numeric(rows["intensity"], errors="coerce").fillna(0.0).to_numpy(float)
            if "intensity" in rows
            else np.zeros(len(rows))
        )
        fig.add_trace(
            go.Scatter(
                x=rows["ts"],
                y=rows["polarity"],
                name=str(source),
                mode="lines+markers",
                line={"width": 3 if source == "combined" else 1.5, "color": SOURCE_COLOURS[i % len(SOURCE_COLOURS)]},
                marker={"size": 4 + 10 * np.clip(intensity, 0, 1)},
            )
        )
    fig.add_hline(y=0, line_width=1, line_color="#9e9e9e")
    fig.update_layout(height=300, yaxis={"range": [-1.05, 1.05], "title": "polarity"}, **_LAYOUT)
    if len(frame) and frame["ts"].nunique() == 1:  # one moment so far: show an hour around it, not nanoseconds
        at = frame["ts"].iloc[0]
        fig.update_xaxes(range=[at - pd.Timedelta(minutes=30), at + pd.Timedelta(minutes=30)])
    return fig


def prediction_figure(frame: pd.DataFrame) -> go.Figure:
    """``p(up)`` over time; markers coloured by what happened over the horizon; realised return on the right axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    colour_of = {"up": UP, "down": DOWN, "flat": FLAT}
    colours = [colour_of.get(o, PENDING) for o in frame["outcome"]]
    fig.add_trace(
        go.Scatter(
            x=frame["ts"],
            y=frame["p_up"],
            name="p(up)",
            mode="lines+markers",
            line={"color": "#1e88e5"},
            marker={"color": colours, "size": 8, "line": {"width": 0}},
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Bar(x=frame["ts"], y=frame["realised_return"], name="realised return", marker_color=colours, opacity=0.4),
        secondary_y=True,
    )
    fig.add_hline(y=0.5, line_dash="dot", line_width=1, line_color="#9e9e9e")
    fig.update_layout(height=300, **_LAYOUT)
    fig.update_yaxes(title_text="p(up)", range=[0, 1], secondary_y=False)
    fig.update_yaxes(title_text="realised return", tickformat=".2%", secondary_y=True)
    return fig


def weights_figure(weights: Mapping[str, Any], components: Mapping[str, Any]) -> go.Figure:
    """Ensemble weights and each component's value, side by side."""
    names = sorted(set(weights) | set(components))
    fig = go.Figure()
    fig.add_trace(go.Bar(x=names, y=[number(weights.get(n)) for n in names], name="weight", marker_color="#5e35b1"))
    fig.add_trace(
        go.Bar(x=names, y=[number(components.get(n)) for n in names], name="component", marker_color="#fb8c00")
    )
    fig.update_layout(height=260, barmode="group", **_LAYOUT)
    return fig


def weights_history_figure(frame: pd.DataFrame) -> go.Figure:
    """The fusion's weight of each input over time (top, one line per ``weight.<input>`` column of
    :func:`weights_frame`; a gap where a signal lacks the input) and the fused score in [-1, 1] below.
    An empty frame gives an empty chart saying "no signals yet"."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.06)
    weights = [c for c in frame.columns if str(c).startswith(WEIGHT_PREFIX)]
    for i, col in enumerate(weights):
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.notna().any():
            fig.add_trace(
                go.Scatter(
                    x=frame["ts"],
                    y=values,
                    name=str(col)[len(WEIGHT_PREFIX) :],
                    mode="lines+markers",
                    line={"width": 2, "color": SOURCE_COLOURS[i % len(SOURCE_COLOURS)]},
                    marker={"size": 4},
                ),
                row=1,
                col=1,
            )
    if "score" in frame and pd.to_numeric(frame["score"], errors="coerce").notna().any():
        fig.add_trace(
            go.Scatter(
                x=frame["ts"],
                y=pd.to_numeric(frame["score"], errors="coerce"),
                name="fused score",
                mode="lines+markers",
                line={"width": 1.5, "color": "#424242"},
                marker={"size": 4},
            ),
            row=2,
            col=1,
        )
    fig.add_hline(y=0, line_width=1, line_color="#9e9e9e", row=2, col=1)
    # the legend sits above the plot however many rows it wraps to (inside, it hid weights near 1)
    above = {"orientation": "h", "yanchor": "bottom", "y": 1.02}
    fig.update_layout(height=360, **{**_LAYOUT, "legend": above, "margin": {**_LAYOUT["margin"], "t": 60}})
    fig.update_yaxes(title_text="weight", row=1, col=1)
    fig.update_yaxes(title_text="score", range=[-1.05, 1.05], row=2, col=1)
    if not fig.data:  # a blank panel that says so, not two empty axes
        empty = go.Figure()
        empty.add_annotation(text="no signals yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        empty.update_layout(height=340, xaxis={"visible": False}, yaxis={"visible": False}, **_LAYOUT)
        return empty
    if frame["ts"].nunique() == 1:  # one signal so far: show an hour around it, not nanoseconds
        at = frame["ts"].iloc[0]
        fig.update_xaxes(range=[at - pd.Timedelta(minutes=30), at + pd.Timedelta(minutes=30)])
    return fig


def series_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Small line chart of sampled figures (``ts`` + one column per series), legend below."""
    fig = go.Figure()
    for col in frame.columns:
        if col != "ts":
            fig.add_trace(go.Scatter(x=frame["ts"], y=frame[col], name=short_label(col), mode="lines"))
    layout = {**_LAYOUT, "legend": {"orientation": "h", "y": -0.25}}
    fig.update_layout(height=240, title={"text": title, "font": {"size": 13}}, **layout)
    return fig
