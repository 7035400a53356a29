"""The serving API against a REAL uvicorn server on 127.0.0.1 (a free port), with real ``httpx`` and ``websockets``
clients. The stores are filled by the real pipeline and local engine replaying the bundled sample (one symbol), so
the API serves exactly what ``marketpulse run`` would. Live WebSocket messages are published on the bus with the
pipeline's own bus stage (:func:`~marketpulse.pipeline.publish_market`) or ``Bus.publish_event``.

Timeouts below only bound a failing test; nothing asserts on wall-clock durations.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")
pytest.importorskip("httpx")

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from marketpulse.api import ApiConfig, ApiContext, create_app
from marketpulse.api.app import app_state
from marketpulse.api.auth import create_key
from marketpulse.api.hub import Hub
from marketpulse.api.server import ApiServer
from marketpulse.bus.base import ALERTS, SIGNALS_FUSED
from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.config import load_settings
from marketpulse.demo import demo_sources
from marketpulse.engine.local import LocalEngine
from marketpulse.errors import StoreError
from marketpulse.events import Alert, Prediction, SentimentScore, Signal
from marketpulse.features.market import NAMES, schema_hash
from marketpulse.pipeline import Pipeline, publish_market
from marketpulse.sentiment.aggregate import AggregateConfig
from marketpulse.store.memory import MemoryOnlineStore
from marketpulse.store.sqlite import SqliteHistoryStore

ORIGIN = "http://dashboard.test"
SYMBOL = "MSFT"


@dataclass
class Served:
    url: str
    key: str
    limited_key: str
    bus: MemoryBus
    pipeline: Pipeline
    hub: Hub
    server: ApiServer

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"X-API-Key": key if key is not None else self.key, **kwargs.pop("headers", {})}
        return httpx.get(self.url + path, headers=headers, timeout=30, **kwargs)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition``; fail naming ``what`` when it never holds (a guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("api")
    keys = data_dir / "api_keys.json"
    key = create_key(keys, "test", rate_per_s=10_000, burst=10_000)
    limited = create_key(keys, "limited", rate_per_s=0.001, burst=2)
    settings = load_settings(data_dir=data_dir)
    bus = MemoryBus(MemoryBusConfig(capacity=1_000_000))
    pipeline = Pipeline(settings, bus, MemoryOnlineStore(), SqliteHistoryStore(data_dir=data_dir))
    engine = LocalEngine(bus, pipeline.online, pipeline.history)
    pipeline.replay(demo_sources([SYMBOL], ticks_per_day=20), after_emit=engine.drain)
    engine.drain()
    engine.finish()
    engine.drain()
    config = ApiConfig(port=0, heartbeat_s=0.5, cors_origins=[ORIGIN])
    context = ApiContext(
        pipeline.online,
        pipeline.history,
        bus,
        config,
        stats=lambda: {"pipeline": pipeline.counters.as_dict(), "engine": engine.counters.as_dict()},
        data_dir=data_dir,
    )
    app = create_app(context)
    server = ApiServer(app, "127.0.0.1", 0).start()
    try:
        yield Served(server.url, key, limited, bus, pipeline, app_state(app).hub, server)
    finally:
        server.stop()
        engine.close()
        pipeline.close()


# -- REST ------------------------------------------------------------------------------------------------------


def test_health_and_ready_need_no_key(served: Served) -> None:
    assert httpx.get(served.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(served.url + "/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"online_store": "ok", "history_store": "ok", "bus": "ok"}
    assert httpx.get(served.url + "/docs").status_code == 200
    assert "/v1/quotes/{symbol}" in httpx.get(served.url + "/openapi.json").json()["paths"]


def test_symbols_quote_and_latest_bars_come_from_the_replay(served: Served) -> None:
    online = served.pipeline.online
    assert SYMBOL in served.get("/v1/symbols").json()["symbols"]
    quote = served.get(f"/v1/quotes/{SYMBOL.lower()}").json()
    tick = online.get("ticks", SYMBOL)
    assert tick is not None
    assert quote["symbol"] == SYMBOL and quote["price"] == tick["price"] and quote["synthetic"] is True
    assert pd.Timestamp(quote["ts"]).value == tick["ts"]
    minute = served.get(f"/v1/bars/{SYMBOL}/latest").json()
    assert minute["interval"] == "60" and minute["interval_s"] == 60
    assert minute["close"] == online.get("bars_60s", SYMBOL)["close"]  # type: ignore[index]
    daily = served.get(f"/v1/bars/{SYMBOL}/latest", params={"interval": "source"}).json()
    assert daily["interval"] == "source" and daily["close"] == online.get("bars", SYMBOL)["close"]  # type: ignore[index]
    missing = served.get(f"/v1/bars/{SYMBOL}/latest", params={"interval": "300"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_bar_history_is_sorted_filtered_and_limited(served: Served) -> None:
    stored = served.pipeline.history.read_frame("bars", SYMBOL)
    body = served.get(f"/v1/bars/{SYMBOL}").json()
    ts = [pd.Timestamp(b["ts"]) for b in body["bars"]]
    assert body["count"] == len(stored) > 10 and ts == sorted(ts) and not body["truncated"]
    assert [b["close"] for b in body["bars"]] == stored["close"].tolist()
    start, end = stored["ts"].iloc[3], stored["ts"].iloc[8]
    iso = served.get(f"/v1/bars/{SYMBOL}", params={"start": start.isoformat(), "end": end.isoformat()}).json()
    ms = served.get(
        f"/v1/bars/{SYMBOL}", params={"start": str(start.value // 10**6), "end": str(end.value // 10**6)}
    ).json()
    assert iso["count"] == ms["count"] == 5 and iso["bars"] == ms["bars"]
    limited = served.get(f"/v1/bars/{SYMBOL}", params={"limit": 4}).json()
    assert limited["truncated"] and limited["bars"] == body["bars"][-4:]
    bad = served.get(f"/v1/bars/{SYMBOL}", params={"start": "yesterday-ish"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    backwards = served.get(f"/v1/bars/{SYMBOL}", params={"start": str(end.value // 10**6), "end": "0"})
    assert backwards.status_code == 200 and backwards.json()["count"] == 0  # an empty range, not an error


def test_indicators_carry_names_and_the_schema_hash(served: Served) -> None:
    body = served.get(f"/v1/indicators/{SYMBOL}", params={"interval": 60}).json()
    assert body["schema_hash"] == schema_hash() and body["names"] == list(NAMES)
    assert body["interval_s"] == 60 and set(body["values"]) == set(NAMES)
    stored = served.pipeline.online.get("features_60s", SYMBOL)
    assert stored is not None
    assert all(body["values"][n] == (None if stored[n] is None else stored[n]) for n in NAMES)


def test_sentiment_is_combined_and_per_source(served: Served) -> None:
    body = served.get(f"/v1/sentiment/{SYMBOL}").json()
    combined = served.pipeline.online.get("sentiment", SYMBOL)
    assert combined is not None and body["polarity"] == combined["polarity"]
    assert body["sources"] and all(s["count"] > 0 for s in body["sources"])
    assert {s["source"] for s in body["sources"]} <= {"twitter", "stocktwits", "reddit", "news"}


def test_predictions_latest_and_history(served: Served) -> None:
    none_yet = served.get(f"/v1/predictions/{SYMBOL}")
    assert none_yet.status_code == 404 and none_yet.json()["error"]["code"] == "not_found"
    base = datetime(2014, 7, 31, 15, tzinfo=UTC)
    events = [
        Prediction(ts=base + timedelta(minutes=i), symbol=SYMBOL, model="lstm", horizon_s=300, p_up=0.5 + i / 100)
        for i in range(5)
    ]
    served.pipeline.history.write_events("predictions", events)
    last = events[-1]
    served.pipeline.online.put(  # the engine's online value of a prediction
        "predictions",
        SYMBOL,
        {
            "ts": int(pd.Timestamp(last.ts).value),
            "p_up": last.p_up,
            "expected_move": 0.0,
            "confidence": 0.08,
            "horizon_s": 300,
            "model": "lstm@1",
        },
    )
    latest = served.get(f"/v1/predictions/{SYMBOL}").json()
    assert latest["p_up"] == pytest.approx(0.54) and latest["p_down"] == pytest.approx(0.46)
    history = served.get(
        f"/v1/predictions/{SYMBOL}/history", params={"start": (base + timedelta(minutes=1)).isoformat()}
    )
    rows = history.json()["predictions"]
    assert [r["p_up"] for r in rows] == pytest.approx([0.51, 0.52, 0.53, 0.54])


def test_signals_404_until_fused_then_alerts(served: Served) -> None:
    missing = served.get(f"/v1/signals/{SYMBOL}")
    assert missing.status_code == 404 and missing.json() == {
        "error": {"code": "not_found", "message": f"no fused signal for {SYMBOL} yet"}
    }
    ts = datetime(2014, 7, 31, 16, tzinfo=UTC)
    value = {
        "ts": int(pd.Timestamp(ts).value),
        "score": 0.25,
        "components": {"price": 0.4, "sentiment": -0.1},
        "weights": {"price": 0.7, "sentiment": 0.3},
    }
    served.pipeline.online.put("signals", SYMBOL, value)
    signal = served.get(f"/v1/signals/{SYMBOL}").json()
    assert signal["score"] == 0.25 and signal["weights"] == {"price": 0.7, "sentiment": 0.3}
    alerts = [
        Alert(ts=ts, rule="spread", severity="warning", message="wide", symbol=SYMBOL),
        Alert(ts=ts + timedelta(minutes=1), rule="lag", severity="critical", message="bus lag"),
    ]
    served.pipeline.history.write_events("alerts", alerts)
    body = served.get("/v1/alerts", params={"since": ts.isoformat()}).json()
    assert [a["rule"] for a in body["alerts"]] == ["spread", "lag"] and body["alerts"][1]["symbol"] is None
    newest = served.get("/v1/alerts", params={"since": ts.isoformat(), "limit": 1}).json()
    assert newest["truncated"] and [a["rule"] for a in newest["alerts"]] == ["lag"]


def test_signal_history_is_the_weight_history(served: Served) -> None:
    """Stored Signal events come back oldest first in ``start <= ts < end`` with the weights each was made with
    (an input missing from one signal stays missing; stacking coefficients pass through unclipped)."""
    base = datetime(2014, 8, 1, 15, tzinfo=UTC)
    weights = [
        {"price": 0.5, "sentiment": 0.5},
        {"price": 0.6, "sentiment": 0.4},
        {"price": 1.0},
        {"price": 1.7, "sentiment": -0.3},
        {"price": 0.8, "sentiment": 0.2},
    ]
    events = [
        Signal(ts=base + timedelta(minutes=i), symbol=SYMBOL, score=0.1 * i, components={"price": 0.55}, weights=w)
        for i, w in enumerate(weights)
    ]
    served.pipeline.history.write_events("signals", events[::-1])  # stored out of order
    path = f"/v1/signals/{SYMBOL}/history"
    window = {"start": (base + timedelta(minutes=1)).isoformat(), "end": (base + timedelta(minutes=4)).isoformat()}
    body = served.get(path, params=window).json()
    assert body["symbol"] == SYMBOL and body["count"] == 3 and body["truncated"] is False
    rows = body["signals"]
    assert [r["ts"] for r in rows] == [
        (base + timedelta(minutes=i)).isoformat().replace("+00:00", "Z") for i in (1, 2, 3)
    ]
    assert [r["weights"] for r in rows] == weights[1:4]
    assert [r["score"] for r in rows] == pytest.approx([0.1, 0.2, 0.3])
    assert rows[0]["components"] == {"price": 0.55} and rows[0]["symbol"] == SYMBOL
    limited = served.get(path, params={"start": base.isoformat(), "limit": 2}).json()
    assert limited["truncated"] and limited["count"] == 2
    assert [r["weights"] for r in limited["signals"]] == weights[3:]
    empty = served.get(path, params={"start": "2030-01-01"})
    assert empty.status_code == 200 and empty.json()["signals"] == [] and empty.json()["count"] == 0
    unknown = served.get("/v1/signals/ZZZZ/history")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_symbol"
    bad = served.get(path, params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    schema = httpx.get(served.url + "/openapi.json").json()
    assert "SignalHistory" in json.dumps(schema["paths"]["/v1/signals/{symbol}/history"]["get"]["responses"]["200"])


def _decayed_mean(posts: list[tuple[datetime, float]], at: datetime, config: AggregateConfig) -> tuple[float, int]:
    """The reference, written out: the ``2 ** (-age / half_life_s)``-weighted mean polarity of the posts in
    ``(at - window_s, at]`` and their number (each post weighs 1 before decay)."""
    inside = [(t, p) for t, p in posts if timedelta(0) <= at - t < timedelta(seconds=config.window_s)]
    weights = [2 ** (-(at - t).total_seconds() / config.half_life_s) for t, _ in inside]
    return sum(w * p for w, (_, p) in zip(weights, inside, strict=True)) / sum(weights), len(inside)


def test_sentiment_history_replays_the_stored_post_scores(served: Served) -> None:
    """Stored per-post scores of two sources over two hours come back as one row per source and one ``all`` row
    at every ``step_s`` grid time that has posts in the window, each equal to the decayed window mean of the
    posts written here (and ``all`` to the configured source mix); points after ``start`` see the posts of the
    window before it; ``limit`` keeps the newest rows."""
    config = AggregateConfig()
    base = datetime(2020, 3, 2, 10, tzinfo=UTC)  # after the bundled sample: no other posts in these windows
    posts = {
        "news": [(base + timedelta(minutes=7 + 30 * i), p) for i, p in enumerate([0.5, -0.2, 0.8, 0.1])],
        "reddit": [(base + timedelta(minutes=20), -0.4), (base + timedelta(minutes=80), 0.6)],
    }
    events = [
        SentimentScore(
            ts=t,
            symbol=SYMBOL,
            source=source,
            model="lexicon",
            polarity=p,
            intensity=abs(p),
            probs={"negative": max(-p, 0.0), "neutral": 1 - abs(p), "positive": max(p, 0.0)},
            ref_id=f"{source}-{i}",
        )
        for source, rows in posts.items()
        for i, (t, p) in enumerate(rows)
    ]
    served.pipeline.history.write_events("sentiment", events[::-1])  # stored out of order
    path = f"/v1/sentiment/{SYMBOL}/history"
    span = {"start": base.isoformat(), "end": (base + timedelta(hours=2)).isoformat(), "step_s": 600}
    body = served.get(path, params=span).json()
    rows = body["sentiment"]
    assert body["symbol"] == SYMBOL and body["step_s"] == 600 and body["window_s"] == config.window_s
    assert body["count"] == len(rows) == 26 and body["truncated"] is False
    # the grid: every 10 min from the first post's (10:10) to the newest post's (11:30, not after 11:37)
    grid = [base + timedelta(minutes=10 * k) for k in range(1, 10)]
    stamp = {t.isoformat().replace("+00:00", "Z"): t for t in grid}
    assert sorted(stamp) == sorted({r["ts"] for r in rows})
    assert [(r["ts"], r["source"]) for r in rows] == sorted((r["ts"], r["source"]) for r in rows)
    assert [r["source"] for r in rows[:5]] == ["all", "news", "all", "news", "reddit"]  # reddit from 10:20
    assert rows[0]["polarity"] == pytest.approx(0.5) and rows[1]["polarity"] == pytest.approx(0.5)  # one post
    for at_text, at in stamp.items():
        here = {r["source"]: r for r in rows if r["ts"] == at_text}
        means = {s: _decayed_mean(p, at, config) for s, p in posts.items() if min(t for t, _ in p) <= at}
        assert set(here) == {"all", *means}
        for source, (mean, count) in means.items():
            assert here[source]["polarity"] == pytest.approx(mean) and here[source]["count"] == count
        weights = {s: config.source_weights[s] for s in means}
        mix = sum(weights[s] * means[s][0] for s in means) / sum(weights.values())
        assert here["all"]["polarity"] == pytest.approx(mix)
        assert here["all"]["count"] == sum(count for _, count in means.values())
        assert set(here["all"]["probs"]) == {"negative", "neutral", "positive"} and here["all"]["dispersion"] >= 0
    later = {**span, "start": (base + timedelta(hours=1)).isoformat()}  # the window before start still counts
    assert served.get(path, params=later).json()["sentiment"] == [r for r in rows if r["ts"] >= "2020-03-02T11:00"]
    limited = served.get(path, params={**span, "limit": 4}).json()
    assert limited["truncated"] and limited["count"] == 4 and limited["sentiment"] == rows[-4:]
    newest = served.get(path, params={"step_s": 600, "limit": 26}).json()  # no range: the newest rows
    assert newest["sentiment"] == rows and newest["truncated"]  # the sample's older posts match too
    for params in ({"start": "2030-01-01"}, {"start": span["end"], "end": span["start"]}):
        empty = served.get(path, params=params)
        assert empty.status_code == 200 and empty.json()["sentiment"] == [] and empty.json()["count"] == 0
    unknown = served.get("/v1/sentiment/ZZZZ/history")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_symbol"
    for step in (5, 86_401, "x"):
        bad = served.get(path, params={"step_s": step})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    operation = httpx.get(served.url + "/openapi.json").json()["paths"]["/v1/sentiment/{symbol}/history"]["get"]
    assert "SentimentHistory" in json.dumps(operation["responses"]["200"])
    assert {p["name"] for p in operation["parameters"]} >= {"start", "end", "limit", "step_s"}


def test_unknown_symbol_and_unknown_path_have_the_error_body(served: Served) -> None:
    for path in ("/v1/quotes/ZZZZ", "/v1/sentiment/ZZZZ", "/v1/bars/ZZZZ", "/v1/signals/ZZZZ"):
        r = served.get(path)
        assert r.status_code == 404 and r.json() == {
            "error": {"code": "unknown_symbol", "message": "unknown symbol 'ZZZZ'"}
        }
    nowhere = served.get("/v1/nowhere")
    assert nowhere.status_code == 404 and set(nowhere.json()["error"]) == {"code", "message"}


def test_stats_report_pipeline_and_api(served: Served) -> None:
    body = served.get("/v1/stats").json()
    assert body["pipeline"]["pipeline"]["accepted"] > 0 and body["pipeline"]["engine"]["feature_rows"] > 0
    assert body["api"]["requests"]["total"] > 0 and "slow_disconnects" in body["api"]["websocket"]


def test_auth_errors_401_403_429(served: Served) -> None:
    r = httpx.get(served.url + "/v1/symbols")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = served.get("/v1/symbols", key="mpk_00000000_wrong")
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_api_key"
    codes = [served.get("/v1/symbols", key=served.limited_key).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = served.get("/v1/symbols", key=served.limited_key)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1


def test_cors_allows_the_configured_origin_only(served: Served) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-api-key",
    }
    ok = httpx.options(served.url + "/v1/symbols", headers=preflight)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
    assert "x-api-key" in ok.headers["access-control-allow-headers"].lower()
    denied = httpx.options(served.url + "/v1/symbols", headers={**preflight, "Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in denied.headers
    simple = served.get("/v1/symbols", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    unauthorised = httpx.get(served.url + "/v1/symbols", headers={"Origin": ORIGIN})
    assert unauthorised.status_code == 401 and unauthorised.headers["access-control-allow-origin"] == ORIGIN


# -- WebSocket -------------------------------------------------------------------------------------------------


async def recv(ws: ClientConnection, match: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> dict[str, Any]:
    """The next message ``match`` accepts (others, e.g. heartbeats, are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            msg: dict[str, Any] = json.loads(await ws.recv())
            if match(msg):
                return msg


def is_data(msg: dict[str, Any]) -> bool:
    return "channel" in msg


def op(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("op") == name


def ticks(symbols: list[str], price: float) -> pd.DataFrame:
    now = pd.Timestamp.now(tz="UTC")
    return pd.DataFrame(
        {"symbol": symbols, "ts": [now] * len(symbols), "price": [price] * len(symbols), "size": [1.0] * len(symbols)}
    )


def ws_connect(served: Served, key: str | None = None, **kwargs: Any) -> Any:
    query = "" if key == "" else f"?key={key or served.key}"
    return connect(served.ws_url + query, proxy=None, compression=None, **kwargs)


def test_ws_subscribe_receive_live_messages_and_unsubscribe(served: Served) -> None:
    async def scenario() -> None:
        async with ws_connect(served) as ws:
            welcome = await recv(ws, op("welcome"))
            assert "ticks" in welcome["channels"] and welcome["heartbeat_s"] == 0.5
            await ws.send(json.dumps({"op": "subscribe", "symbols": ["msft"], "channels": ["ticks", "signals"]}))
            ack = await recv(ws, op("ack"))
            assert ack["subscriptions"] == {"signals": [SYMBOL], "ticks": [SYMBOL]}
            publish_market(served.bus, ticks(["AAPL", SYMBOL], 123.5), "ticks")
            msg = await recv(ws, is_data)
            assert (msg["channel"], msg["symbol"], msg["data"]["price"]) == ("ticks", SYMBOL, 123.5)
            assert set(msg) == {"seq", "channel", "symbol", "ts", "data"} and msg["ts"].endswith("Z")
            signal = Signal(ts=datetime.now(UTC), symbol=SYMBOL, score=0.3, weights={"price": 0.6, "sentiment": 0.4})
            served.bus.publish_event(SIGNALS_FUSED, signal)
            got = await recv(ws, is_data)
            assert got["channel"] == "signals" and got["data"]["weights"] == {"price": 0.6, "sentiment": 0.4}
            assert got["seq"] > msg["seq"]
            await ws.send(json.dumps({"op": "unsubscribe", "symbols": ["*"], "channels": ["ticks"]}))
            assert (await recv(ws, op("ack")))["subscriptions"] == {"signals": [SYMBOL]}
            seq = served.hub.seq
            publish_market(served.bus, ticks([SYMBOL], 99.0), "ticks")
            await asyncio.to_thread(wait_until, lambda: served.hub.seq > seq, "the hub to take the tick")
            served.bus.publish_event(SIGNALS_FUSED, signal)
            after = await recv(ws, is_data)
            assert after["channel"] == "signals"  # the unsubscribed tick never came

    asyncio.run(scenario())


def test_ws_heartbeat_ping_and_bad_input_never_crash(served: Served) -> None:
    async def scenario() -> None:
        async with ws_connect(served) as ws:
            beat = await recv(ws, op("heartbeat"))
            assert beat["ts"].endswith("Z") and isinstance(beat["seq"], int)
            for bad, code in (
                ("not json", "invalid_json"),
                ("[1, 2]", "bad_request"),
                ('{"op": "dance"}', "bad_request"),
                ('{"op": "subscribe", "symbols": ["AAPL"], "channels": ["weather"]}', "unknown_channel"),
                ('{"op": "subscribe", "symbols": []}', "bad_request"),
                ('{"op": "subscribe", "symbols": ["no spaces allowed"]}', "bad_request"),
                ('{"op": "resume", "seq": -1}', "bad_request"),
            ):
                await ws.send(bad)
                assert (await recv(ws, op("error")))["error"]["code"] == code
            await ws.send(b"\x00binary")
            assert (await recv(ws, op("error")))["error"]["code"] == "bad_request"
            await ws.send(json.dumps({"op": "ping"}))
            assert (await recv(ws, op("pong")))["ts"].endswith("Z")

    asyncio.run(scenario())


def test_ws_resume_replays_missed_messages_in_order(served: Served) -> None:
    async def scenario() -> None:
        async with ws_connect(served) as first:
            await recv(first, op("welcome"))
            await first.send(json.dumps({"op": "subscribe", "symbols": ["*"], "channels": ["ticks"]}))
            await recv(first, op("ack"))
            publish_market(served.bus, ticks(["AAA", "BBB", "CCC"], 10.0), "ticks")
            seen = [await recv(first, is_data) for _ in range(3)]
        seqs = [m["seq"] for m in seen]
        assert seqs == sorted(seqs) and {m["symbol"] for m in seen} == {"AAA", "BBB", "CCC"}
        async with ws_connect(served) as again:
            await recv(again, op("welcome"))
            await again.send(json.dumps({"op": "subscribe", "symbols": ["*"], "channels": ["ticks"]}))
            await recv(again, op("ack"))
            await again.send(json.dumps({"op": "resume", "seq": seqs[0]}))
            ack = await recv(again, op("ack"))
            assert ack["ack"] == "resume" and ack["replayed"] >= 2 and ack["gap"] is False
            replayed = [await recv(again, is_data) for _ in range(ack["replayed"])]
            assert [m["seq"] for m in replayed][:2] == seqs[1:] and replayed[:2] == seen[1:]

    asyncio.run(scenario())


def test_ws_auth_failures_close_with_the_error(served: Served) -> None:
    async def attempt(key: str) -> tuple[dict[str, Any], int | None]:
        async with ws_connect(served, key=key) as ws:
            msg = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            return msg, closed.value.rcvd.code if closed.value.rcvd else None

    missing, code = asyncio.run(attempt(""))
    assert missing["error"]["code"] == "missing_api_key" and code == 4401
    wrong, code = asyncio.run(attempt("mpk_00000000_nope"))
    assert wrong["error"]["code"] == "invalid_api_key" and code == 4403


def _slow_socket(url: str) -> socket.socket:
    """A client socket with a tiny receive buffer, so a client that does not read backs up quickly."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    return sock


def test_ws_slow_client_is_dropped_without_blocking_anyone(tmp_path: Path) -> None:
    """A client that never reads fills its queue, its messages are dropped (counted) and it is disconnected, while
    a reading client gets every message and the publisher (the pipeline) never waits for either."""
    key = create_key(tmp_path / "api_keys.json", "t")
    bus = MemoryBus(MemoryBusConfig(capacity=256, partitions=1))
    online, history = MemoryOnlineStore(), SqliteHistoryStore(data_dir=tmp_path)
    online.put("ticks", "SLOW", {"ts": 0, "price": 1.0})
    config = ApiConfig(port=0, ws_queue=100, ws_drop_limit=200, ws_ring=100)
    app = create_app(ApiContext(online, history, bus, config, data_dir=tmp_path))
    hub = app_state(app).hub
    rounds, per_round, size = 16, 50, 32_000  # ~4x what a non-reading client can take before it is dropped

    async def scenario(url: str) -> list[int]:
        ws_url = url.replace("http://", "ws://") + f"/ws?key={key}"
        subscribe = json.dumps({"op": "subscribe", "symbols": ["*"], "channels": ["alerts"]})
        async with (
            connect(ws_url, proxy=None, compression=None, max_size=None) as fast,
            connect(
                ws_url,
                proxy=None,
                compression=None,
                max_queue=1,
                max_size=None,
                sock=_slow_socket(url),
                close_timeout=0.5,
            ) as slow,
        ):
            for ws in (fast, slow):
                await recv(ws, op("welcome"))
                await ws.send(subscribe)
                await recv(ws, op("ack"))
            got: list[int] = []
            for r in range(rounds):  # lockstep: the fast client reads each round before the next is published
                for i in range(per_round):
                    text = os.urandom(size // 2).hex()
                    served_alert = Alert(
                        ts=datetime.now(UTC), rule=f"r{r}-{i}", severity="info", message=text, symbol="SLOW"
                    )
                    bus.publish_event(ALERTS, served_alert)
                for _ in range(per_round):
                    got.append((await recv(fast, is_data, timeout=60))["seq"])
            await asyncio.to_thread(wait_until, lambda: hub.counters["slow_disconnects"] == 1, "the slow client to go")
            with pytest.raises(ConnectionClosed) as closed:  # what was buffered, then the close (or a drop)
                while True:
                    await slow.recv()
            assert closed.value.rcvd is None or closed.value.rcvd.code == 4008
            return got

    with ApiServer(app, "127.0.0.1", 0) as server:
        got = asyncio.run(scenario(server.url))
        stats = hub.stats()
    assert got == list(range(got[0], got[0] + rounds * per_round))  # nothing lost, in order
    assert stats["slow_disconnects"] == 1 and stats["dropped"] >= config.ws_drop_limit
    assert stats["overflow"] == 0
    assert bus.end_offsets(ALERTS)[0] == rounds * per_round  # every publish went through
    history.close()


class _DownStore(MemoryOnlineStore):
    """An online store whose backend is unreachable (as a Redis that went away)."""

    def get(self, kind: str, symbol: str) -> dict[str, Any] | None:
        raise StoreError("connection refused")

    def symbols(self, kind: str) -> list[str]:
        raise StoreError("connection refused")


def test_unreachable_store_gives_503_with_the_error_body(tmp_path: Path) -> None:
    key = create_key(tmp_path / "api_keys.json", "t")
    history = SqliteHistoryStore(data_dir=tmp_path)
    app = create_app(ApiContext(_DownStore(), history, None, ApiConfig(port=0), data_dir=tmp_path))
    with ApiServer(app, "127.0.0.1", 0) as server:
        ready = httpx.get(server.url + "/ready")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
        assert "online_store" in ready.json()["error"]["message"]
        quote = httpx.get(server.url + "/v1/quotes/MSFT", headers={"X-API-Key": key})
        assert quote.status_code == 503 and quote.json()["error"]["code"] == "store_unavailable"
        assert httpx.get(server.url + "/health").status_code == 200
    history.close()
