"""The WebSocket hub without a server: routing by subscription, bounded queues, slow clients, resume; and the
bus record → message expansion."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

pytest.importorskip("fastapi")

from marketpulse.api.hub import Hub
from marketpulse.api.messages import MAX_BAR_ROWS, Outgoing, expand
from marketpulse.api.ws import ProtocolError, handle_op
from marketpulse.bus.base import ALERTS, FEATURES_MARKET, MARKET_BARS, MARKET_TICKS, SENTIMENT_SCORES, SOCIAL_POSTS
from marketpulse.events import Alert, BarBatch, FeatureBatch, Post, SentimentScore, TickBatch, encode

TS = "2024-01-02T03:04:05Z"


def out(channel: str, symbol: str, n: int = 0) -> Outgoing:
    return Outgoing(channel, symbol, TS, {"n": n})


def texts(client: object) -> list[dict[str, object]]:
    return [json.loads(t) for t in client.queue.data]  # type: ignore[attr-defined]


def test_messages_reach_matching_subscriptions_only() -> None:
    hub = Hub(None)
    one, wild, alerts = hub.connect(), hub.connect(), hub.connect()
    hub.subscribe(one, ["ticks"], ["AAPL"])
    hub.subscribe(wild, ["ticks", "bars"], ["*"])
    hub.subscribe(alerts, ["alerts"], ["MSFT"])
    hub.publish([out("ticks", "AAPL"), out("ticks", "MSFT"), out("bars", "AAPL"), out("alerts", "")])
    assert [(m["channel"], m["symbol"]) for m in texts(one)] == [("ticks", "AAPL")]
    assert [m["seq"] for m in texts(wild)] == [1, 2, 3]
    assert [(m["channel"], m["symbol"]) for m in texts(alerts)] == [("alerts", "")]  # symbol-less alert: everyone
    assert set(texts(one)[0]) == {"seq", "channel", "symbol", "ts", "data"}


def test_unsubscribe_and_disconnect_stop_delivery() -> None:
    hub = Hub(None)
    client = hub.connect()
    hub.subscribe(client, ["ticks", "bars"], ["*", "AAPL"])
    hub.unsubscribe(client, ["ticks"], ["*"])
    assert client.subscriptions() == {"bars": ["*"]}
    hub.publish([out("ticks", "AAPL")])
    assert not client.queue.data
    hub.disconnect(client)
    hub.publish([out("bars", "AAPL")])
    assert not client.queue.data and client.queue.closed and not hub.clients


def test_a_full_queue_drops_and_a_client_that_stays_behind_is_kicked() -> None:
    hub = Hub(None, queue_size=3, drop_limit=4)
    slow, fast = hub.connect(), hub.connect()
    for c in (slow, fast):
        hub.subscribe(c, ["ticks"], ["*"])
    kicked: list[int] = []
    slow.on_kick = lambda: kicked.append(slow.id)
    for i in range(5):
        hub.publish([out("ticks", "A", i)])
        fast.queue.data.clear()  # the fast client keeps up
    assert (slow.dropped, hub.counters["dropped"], kicked) == (2, 2, [])
    slow.behind = 0  # its queue ran empty once: only drops after that count
    hub.publish([out("ticks", "A", i) for i in range(4)])
    assert kicked == [slow.id] and hub.counters["slow_disconnects"] == 1 and slow.kicked
    hub.publish([out("ticks", "A")])
    assert slow.dropped == 6 and fast.dropped == 2  # nothing more is offered to a kicked client


def test_resume_replays_what_was_missed_and_reports_a_gap() -> None:
    hub = Hub(None, ring_size=5)
    hub.publish([out("ticks", s) for s in ("A", "B", "A", "C", "A", "A", "B")])  # seq 1..7, ring keeps 3..7
    client = hub.connect()
    hub.subscribe(client, ["ticks"], ["A"])
    replay, gap = hub.replay(client, 4)
    assert [json.loads(t)["seq"] for t in replay] == [5, 6] and not gap
    replay, gap = hub.replay(client, 0)
    assert [json.loads(t)["seq"] for t in replay] == [3, 5, 6] and gap
    hub.publish([out("ticks", "A")])  # seq 8 is given live: a later resume does not repeat it
    assert [json.loads(t)["seq"] for t in hub.replay(client, 4)[0]] == [5, 6]
    assert hub.replay(client, 8) == ([], False)


def test_protocol_ops_ack_and_refuse_bad_input() -> None:
    hub = Hub(None)
    client = hub.connect()
    handle_op(hub, client, {"op": "subscribe", "symbols": ["aapl", "*"]})
    ack = json.loads(client.queue.control.popleft())
    assert ack["ack"] == "subscribe" and ack["subscriptions"]["ticks"] == ["*"]
    for bad in ({"op": "subscribe"}, {"op": "subscribe", "symbols": "AAPL"}, {"op": "x"}, [], {"op": "resume"}):
        with pytest.raises(ProtocolError):
            handle_op(hub, client, bad)
    with pytest.raises(ProtocolError) as e:
        handle_op(hub, client, {"op": "unsubscribe", "symbols": ["*"], "channels": ["news"]})
    assert e.value.code == "unknown_channel"


def test_expand_turns_bus_records_into_channel_messages() -> None:
    ts = np.arange(3) * 60_000_000_000 + 1_700_000_000_000_000_000
    ticks = expand(MARKET_TICKS, encode(TickBatch.from_arrays("AAPL", ts, [1.0, 2.0, 3.0], [1, 1, 5], synthetic=True)))
    assert [(m.channel, m.symbol, m.data["price"], m.data["count"]) for m in ticks] == [("ticks", "AAPL", 3.0, 3)]
    long = np.arange(MAX_BAR_ROWS + 5) * 60_000_000_000
    vals = np.ones(len(long))
    bars = expand(MARKET_BARS, encode(BarBatch.from_arrays("AAPL", long, vals, vals, vals, vals * np.nan, vals)))
    assert len(bars) == MAX_BAR_ROWS and bars[-1].data["close"] is None and bars[0].ts.endswith("Z")
    feats = expand(
        FEATURES_MARKET, encode(FeatureBatch.from_arrays("AAPL", ts[:1], ("a", "b"), [[0.5, math.nan]], "h1"))
    )
    assert feats[0].data == {"schema": "h1", "values": {"a": 0.5, "b": None}}
    when = datetime(2024, 1, 2, tzinfo=UTC)
    score = SentimentScore(ts=when, symbol="AAPL", source="all", model="m", polarity=0.2, intensity=0.3)
    assert expand(SENTIMENT_SCORES, encode(score))[0].data["aggregate"] is True
    alert = expand(ALERTS, encode(Alert(ts=when, rule="r", severity="info", message="m")))[0]
    assert (alert.channel, alert.symbol, alert.ts) == ("alerts", "", "2024-01-02T00:00:00Z")
    post = Post(ts=when, id="1", text="t", source="twitter")
    assert expand(SOCIAL_POSTS, encode(post)) == []
