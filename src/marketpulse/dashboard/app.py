"""The live dashboard (Streamlit + Plotly). It reads the REST API only, through :mod:`marketpulse.dashboard.client`.

Run it with ``marketpulse dashboard`` or ``streamlit run src/marketpulse/dashboard/app.py -- --api-url URL``.
Settings, first found wins: the script arguments after ``--`` (``--api-url``, ``--api-key``, ``--symbol``,
``--refresh``), then the environment (``MARKETPULSE_API_URL``, ``MARKETPULSE_API_KEY``), then
``http://127.0.0.1:8000``. The symbol can also come from the page address (``?symbol=AAPL``).

Everything below the sidebar lives in one fragment that reruns every ``refresh`` seconds (no full-page reload).
Each section is drawn on its own: an endpoint that is missing, empty or failing shows "no data yet" (or the
error) in its section and never stops the page. The headline always states the selected symbol and its latest
price as text (``AAPL · last price 96.78``), which the browser test reads.

Timelines the API does not keep (sentiment per source, pipeline rates, fused signals on a server without
``/v1/signals/{symbol}/history``) are sampled by the page itself while it is open, in event time, and kept per
browser session.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from marketpulse.dashboard import views
from marketpulse.dashboard.client import (
    ApiClient,
    Reply,
    Snapshot,
    bars_frame,
    fetch,
    first_number,
    flatten,
    format_price,
    number,
    openapi_paths,
    quote_price,
    records_frame,
    symbols_of,
    timestamp_of,
)

MAX_SAMPLES = 2_000
_CSS = "<style>[data-testid='stMainBlockContainer'], .block-container {padding-top: 2.5rem}</style>"
_STATIC = {"displayModeBar": False}  # small charts: no Plotly toolbar over the title


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The script arguments (after ``--`` on the ``streamlit run`` line); unknown ones are ignored."""
    parser = argparse.ArgumentParser(prog="marketpulse-dashboard", add_help=False)
    parser.add_argument("--api-url", default=None)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--symbol", default=None)
    parser.add_argument("--refresh", type=float, default=2.0, help="seconds between updates")
    parser.add_argument("--bars", type=int, default=240, help="history bars on the price chart")
    args, _ = parser.parse_known_args(argv)
    return args


@st.cache_resource(show_spinner=False)
def _client(api_url: str | None, api_key: str | None) -> ApiClient:
    return ApiClient.from_env(api_url, api_key, timeout=4.0)


@contextmanager
def section(title: str | None = None) -> Iterator[None]:
    """A titled block whose failures are shown in place instead of stopping the page."""
    if title:
        st.markdown(f"#### {title}")
    try:
        yield
    except Exception as e:  # a drawing bug in one section must not take the rest of the page down
        st.warning(f"could not draw {title or 'this section'}: {type(e).__name__}: {e}")


def _data(reply: Reply) -> Any:
    """The body of a successful answer, else None."""
    return reply.data if reply.ok else None


def _no_data(reply: Reply, what: str) -> None:
    if reply.missing or reply.ok:
        st.info(f"no {what} yet")
    else:
        st.warning(f"no {what}: {reply.error}")


def _sample(key: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append rows to a per-session sample list (bounded) and return it."""
    samples: list[dict[str, Any]] = st.session_state.setdefault(key, [])
    samples.extend(rows)
    del samples[:-MAX_SAMPLES]
    return samples


# -- sections ---------------------------------------------------------------------------------------------------
@st.cache_data(ttl=60, show_spinner=False)
def _api_paths(api_url: str | None, api_key: str | None) -> frozenset[str]:
    """The endpoints this API server has (from its OpenAPI document; empty when it does not publish one)."""
    return openapi_paths(_client(api_url, api_key).openapi().dict())


def headline(snap: Snapshot, symbol: str) -> float | None:
    """Symbol, latest price (as text) and the tick's time; returns the price."""
    quote = snap.quote.dict()
    price = quote_price(quote)
    if price is None:
        st.subheader(f"{symbol} · last price: no data yet")
        if not snap.quote.ok and not snap.quote.missing:
            st.caption(f"quote unavailable: {snap.quote.error}")
        return None
    st.subheader(f"{symbol} · last price {format_price(price)}")
    ts = timestamp_of(quote)
    size = number(quote.get("size"))
    details = [f"API price {price!r}"]
    if ts is not None:
        details.append(f"tick at {ts:%Y-%m-%d %H:%M:%S} UTC")
    if size is not None:
        details.append(f"size {size:,.0f}")
    if quote.get("synthetic"):
        details.append("synthetic tick (demo)")
    st.caption(" · ".join(details))
    return price


def metrics_row(snap: Snapshot, price: float | None) -> None:
    bar, prediction = snap.latest_bar.dict(), snap.prediction.dict()
    sentiment, signal = snap.sentiment.dict(), snap.signal.dict()
    cols = st.columns(5)
    previous = _previous_close(snap)
    delta = f"{price / previous - 1:+.2%} vs last stored bar" if price is not None and previous else None
    cols[0].metric("last price", format_price(price) if price is not None else "no data yet", delta)
    close = number(bar.get("close"))
    cols[1].metric("1-min bar close", format_price(close) if close is not None else "no data yet")
    p_up = number(prediction.get("p_up"))
    model = prediction.get("model")
    horizon = number(prediction.get("horizon_s"))
    about = f"model {model or '?'}" + (f", horizon {horizon:g}s" if horizon is not None else "")
    cols[2].metric("p(up)", f"{p_up:.1%}" if p_up is not None else "no data yet", help=about if model else None)
    polarity = number(sentiment.get("polarity"))
    cols[3].metric("sentiment polarity", f"{polarity:+.3f}" if polarity is not None else "no data yet")
    score = number(signal.get("score"))
    cols[4].metric("fused signal", f"{score:+.3f}" if score is not None else "none yet")


def _previous_close(snap: Snapshot) -> float | None:
    """The close of the newest stored bar before the quote's time (the previous session for daily bars)."""
    bars = bars_frame(snap.bars.data if snap.bars.ok else None)
    at = timestamp_of(snap.quote.dict())
    if at is not None:
        bars = bars[bars["ts"] < at]
    return None if bars.empty else float(bars["close"].iloc[-1])


def price_section(snap: Snapshot, symbol: str) -> None:
    bars = bars_frame(snap.bars.data if snap.bars.ok else None)
    indicators = snap.indicators.dict()
    values = indicators.get("values")
    values = values if isinstance(values, dict) else {}
    chart, side = st.columns([3, 1])
    with chart:
        if bars.empty:
            _no_data(snap.bars, "bars")
        else:
            st.plotly_chart(views.price_figure(bars, symbol), key="price")
            st.caption(
                f"{len(bars)} bars from the history store; SMA 20, EMA 12 and Bollinger 20,2 computed here from "
                "these bars, for display only"
            )
    with side:
        st.markdown("**engine indicators** (latest 1-min feature vector)")
        if not values:
            _no_data(snap.indicators, "indicators")
            return
        close = first_number(snap.latest_bar.dict(), ("close",))
        lines = [f"{label}: `{format_price(x)}`" for label, x in views.engine_levels(values, close).items()]
        lines += [f"{label}: `{x:.1f}`" for label, x in views.oscillators(values).items()]
        st.markdown("  \n".join(lines) or "no levels yet (warming up)")
        ts = timestamp_of(indicators)
        schema = str(indicators.get("schema_hash") or indicators.get("schema") or "")[:12]
        if ts is not None:
            st.caption(f"at {ts:%Y-%m-%d %H:%M} UTC" + (f" · schema {schema}" if schema else ""))
        with st.expander("feature vector"):
            table = pd.DataFrame({"feature": list(values), "value": [number(v) for v in values.values()]})
            st.dataframe(table, hide_index=True)


def sentiment_section(snap: Snapshot, symbol: str) -> None:
    samples = _sample(f"sentiment:{symbol}", views.sentiment_points(snap.sentiment.dict()))
    history = snap.sentiment_history.data if snap.sentiment_history is not None and snap.sentiment_history.ok else None
    frame = views.sentiment_frame(history, samples)
    if frame.empty:
        _no_data(snap.sentiment, "sentiment")
        return
    st.plotly_chart(views.sentiment_figure(frame), key="sentiment", config=_STATIC)
    latest = frame.groupby("source").tail(1)
    parts = [
        f"{source} {x:+.3f}"
        for source, value in zip(latest["source"], latest["polarity"], strict=True)
        if (x := number(value)) is not None
    ]
    origin = "from the API's history" if history is not None else "sampled by this page while open"
    st.caption("latest polarity: " + " · ".join(parts) + f" ({origin}, in event time)")


def _seen_prices(snap: Snapshot, symbol: str) -> pd.DataFrame:
    """Stored bars plus every quote and 1-min close this page has seen (``ts``, ``close``), to judge predictions
    whose horizon is shorter than the stored bars."""
    points = []
    for reply, field in ((snap.quote, "price"), (snap.latest_bar, "close")):
        body = reply.dict()
        ts, x = timestamp_of(body), number(body.get(field))
        if ts is not None and x is not None:
            points.append({"ts": ts, "close": x})
    seen = pd.DataFrame(_sample(f"prices:{symbol}", points), columns=["ts", "close"])
    bars = bars_frame(_data(snap.bars))[["ts", "close"]]
    frames = [f for f in (bars, seen) if not f.empty]
    if not frames:
        return bars
    prices = pd.concat(frames, ignore_index=True)
    prices["ts"] = pd.to_datetime(prices["ts"], utc=True)
    return prices.sort_values("ts", kind="stable").drop_duplicates("ts", keep="last").reset_index(drop=True)


def prediction_section(snap: Snapshot, symbol: str) -> None:
    prices = _seen_prices(snap, symbol)
    preds = records_frame(snap.predictions.data, "predictions") if snap.predictions.ok else pd.DataFrame()
    if preds.empty or "p_up" not in preds:
        _no_data(snap.predictions, "predictions")
        st.caption("predictions appear once a price model is registered (`marketpulse train price …`)")
        return
    preds["p_up"] = pd.to_numeric(preds["p_up"], errors="coerce")
    frame = views.realised(preds, prices)
    st.plotly_chart(views.prediction_figure(frame), key="predictions", config=_STATIC)
    resolved = frame["hit"].dropna()
    hit_rate = f"{resolved.astype(float).mean():.1%} of {len(resolved)} resolved" if len(resolved) else "none resolved"
    pending = int((frame["outcome"] == "pending").sum())
    st.caption(
        f"direction hit rate {hit_rate} · {pending} pending · {len(frame)} predictions · outcomes from the stored "
        "bars and the prices this page has seen"
    )


def signal_section(snap: Snapshot, symbol: str) -> None:
    signal = snap.signal.dict()
    score = number(signal.get("score"))
    if score is None:
        if snap.signal.ok or snap.signal.missing:
            st.info("no fused signal yet")
        else:
            st.warning(f"no fused signal: {snap.signal.error}")
        return
    ts = timestamp_of(signal)
    st.markdown(f"score **{score:+.3f}**" + (f" at {ts:%Y-%m-%d %H:%M:%S} UTC" if ts is not None else ""))
    weights = signal.get("weights")
    components = signal.get("components")
    weights = weights if isinstance(weights, dict) else {}
    components = components if isinstance(components, dict) else {}
    if weights or components:
        st.plotly_chart(views.weights_figure(weights, components), key="weights", config=_STATIC)
    weight_history(snap, symbol, signal)


def weight_history(snap: Snapshot, symbol: str, signal: dict[str, Any]) -> None:
    """The fusion's weights and the fused score over time: the API's signal history when it has rows, else the
    latest signals this page has seen while open."""
    st.markdown("**weight history**")
    reply = snap.signals
    frame = views.weights_frame(reply.data if reply is not None and reply.ok else None)
    origin = "from the API's history"
    samples = _sample(f"signals:{symbol}", [signal])
    if frame.empty:
        frame, origin = views.weights_frame(samples), "sampled by this page while open"
    if frame.empty:
        st.info("no signal history yet")
        return
    st.plotly_chart(views.weights_history_figure(frame), key="weights_history", config=_STATIC)
    failed = f" · history unavailable: {reply.error}" if reply is not None and not (reply.ok or reply.missing) else ""
    count = f"{len(frame)} signal" + ("s" if len(frame) != 1 else "")
    st.caption(f"{count} ({origin}, in event time){failed}")


def alerts_section(snap: Snapshot) -> None:
    frame = records_frame(snap.alerts.data, "alerts") if snap.alerts.ok else pd.DataFrame()
    if frame.empty:
        _no_data(snap.alerts, "alerts")
        return
    frame = frame.sort_values("ts", ascending=False)

    def column(name: str) -> list[str]:
        return [str(v) if v is not None and not pd.isna(v) else "" for v in frame.get(name, [None] * len(frame))]

    table = pd.DataFrame(
        {
            "time (UTC)": frame["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"),
            "severity": column("severity"),
            "rule": column("rule"),
            "symbol": column("symbol"),
            "message": column("message"),
        }
    )
    st.dataframe(table, hide_index=True, height=260)


def health_section(snap: Snapshot, base_url: str) -> None:
    stats = snap.stats.dict()
    up = "up" if snap.health.ok else f"DOWN ({snap.health.error or 'no answer'})"
    ts = _event_time(stats)
    st.markdown(f"API **{up}** · `{base_url}`" + (f" · event time {ts:%Y-%m-%d %H:%M} UTC" if ts is not None else ""))
    if not stats:
        _no_data(snap.stats, "pipeline stats")
        return
    samples: list[tuple[float, dict[str, float]]] = st.session_state.setdefault("stats:counters", [])
    samples.append((time.time(), views.counters_of(stats)))
    del samples[:-MAX_SAMPLES]
    rates = views.counter_rates(samples)
    groups = views.pick_stats(stats)
    throughput = rates or {views.short_label(k): v for k, v in groups["throughput"].items()}
    rows = (
        ("throughput", throughput),
        ("lag", {views.short_label(k): v for k, v in groups["lag"].items()}),
        ("latency", {views.short_label(k): v for k, v in groups["latency"].items()}),
    )
    for name, figures in rows:
        shown = list(figures.items())[:3]
        if not shown:
            st.caption(f"{name}: no data yet" if name != "lag" else "lag: not reported by /v1/stats")
            continue
        for col, (label, x) in zip(st.columns(len(shown)), shown, strict=True):
            col.metric(label, f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}")
    if rates:
        history = _sample("stats:rates", [{"ts": pd.Timestamp.now(tz="UTC"), **rates}])
        shown_rates = [label for label, _ in rows[0][1].items()][:3]
        frame = pd.DataFrame(history)[["ts", *[c for c in shown_rates if c != "event time ×"]]]
        st.plotly_chart(views.series_figure(frame, "throughput per second"), key="throughput", config=_STATIC)
    with st.expander("all pipeline figures"):
        flat = flatten(stats)
        st.dataframe(pd.DataFrame({"figure": list(flat), "value": [str(v) for v in flat.values()]}), hide_index=True)


def _event_time(stats: dict[str, Any]) -> pd.Timestamp | None:
    pipeline = stats.get("pipeline")
    if isinstance(pipeline, dict):
        for key in ("event_time_ns", "event_time", "event_ts", "watermark"):
            if key in pipeline:
                return timestamp_of({"ts": pipeline[key]})
    return None


# -- page -------------------------------------------------------------------------------------------------------
def live(client: ApiClient, symbol: str, n_bars: int, had_symbols: bool, paths: frozenset[str]) -> None:
    """The refreshed part of the page."""
    if not had_symbols and symbols_of(_data(client.symbols())):
        st.rerun()  # the first symbols arrived: rebuild the picker
    snap = fetch(client, symbol, n_bars, paths)
    price = None
    with section():
        price = headline(snap, symbol)
    with section():
        metrics_row(snap, price)
    with section("Price, indicators and volume"):
        price_section(snap, symbol)
    left, right = st.columns(2)
    with left, section("Sentiment by source"):
        sentiment_section(snap, symbol)
    with right, section("Predictions against what happened"):
        prediction_section(snap, symbol)
    a, b, c = st.columns(3)
    with a, section("Fused signal"):
        signal_section(snap, symbol)
    with b, section("Alerts"):
        alerts_section(snap)
    with c, section("System health"):
        health_section(snap, client.base_url)
    st.caption(f"updated {pd.Timestamp.now(tz='UTC'):%H:%M:%S} UTC")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    st.set_page_config(page_title="MarketPulse", page_icon="📈", layout="wide")
    st.markdown(_CSS, unsafe_allow_html=True)
    client = _client(args.api_url, args.api_key)
    symbols = symbols_of(_data(client.symbols()))
    wanted = str(st.query_params.get("symbol") or args.symbol or "").upper()
    with st.sidebar:
        st.title("MarketPulse")
        if symbols:
            index = symbols.index(wanted) if wanted in symbols else 0
            symbol = st.selectbox("symbol", symbols, index=index)
        else:
            st.info("no symbols yet: waiting for the pipeline")
            symbol = st.text_input("symbol", value=wanted or "AAPL").strip().upper()
        refresh = st.slider("refresh every (s)", 1.0, 30.0, float(max(1.0, min(args.refresh, 30.0))), 1.0)
        n_bars = st.slider("bars on the chart", 20, 2_000, max(20, min(args.bars, 2_000)), 20)
        st.caption(f"API `{client.base_url}`")
    if symbol and st.query_params.get("symbol") != symbol:
        st.query_params["symbol"] = symbol
    st.title("MarketPulse · live")
    fragment: Callable[..., None] = st.fragment(run_every=timedelta(seconds=refresh))(live)
    fragment(client, symbol, n_bars, bool(symbols), _api_paths(args.api_url, args.api_key))


if __name__ == "__main__":
    main()
