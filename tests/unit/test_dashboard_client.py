"""The dashboard's API client against a fake transport: auth header, paths, params, and never raising."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

httpx = pytest.importorskip("httpx")

from marketpulse.dashboard.client import (  # noqa: E402
    API_KEY_HEADER,
    SENTIMENT_HISTORY,
    SIGNAL_HISTORY,
    ApiClient,
    bars_frame,
    error_message,
    fetch,
    flatten,
    format_price,
    items,
    number,
    openapi_paths,
    quote_price,
    records_frame,
    symbols_of,
    to_timestamp,
)

Handler = Callable[["httpx.Request"], "httpx.Response"]


def _client(handler: Handler, key: str | None = "k-123") -> ApiClient:
    return ApiClient("http://api.test/", key, transport=httpx.MockTransport(handler))


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def test_sends_the_key_and_builds_paths_and_params() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _json(200, {"ok": True})

    with _client(handler) as client:
        assert client.base_url == "http://api.test"
        client.quote("aapl")
        client.latest_bar("MSFT", 60)
        client.bars("BRK.B", start="2014-05-01T00:00:00Z", limit=50)
        client.indicators("GOOG", 300)
        client.sentiment("FB")
        client.prediction_history("AMZN", limit=10)
        client.signal("BAC")
        client.signal_history("BAC", limit=7)
        client.alerts(limit=5)
        client.stats()
        client.bars("X/Y")
    paths = [r.url.raw_path.decode().split("?")[0] for r in seen]
    assert paths == [
        "/v1/quotes/aapl",
        "/v1/bars/MSFT/latest",
        "/v1/bars/BRK.B",
        "/v1/indicators/GOOG",
        "/v1/sentiment/FB",
        "/v1/predictions/AMZN/history",
        "/v1/signals/BAC",
        "/v1/signals/BAC/history",
        "/v1/alerts",
        "/v1/stats",
        "/v1/bars/X%2FY",  # a symbol can never escape its path segment
    ]
    assert all(r.headers[API_KEY_HEADER] == "k-123" for r in seen)
    assert dict(seen[1].url.params) == {"interval": "60"}
    assert dict(seen[2].url.params) == {"start": "2014-05-01T00:00:00Z", "limit": "50"}  # None params left out
    assert dict(seen[7].url.params) == {"limit": "7"}
    assert dict(seen[8].url.params) == {"limit": "5"}


def test_no_key_no_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _json(200, {"status": "ok"})

    reply = _client(handler, key=None).health()
    assert reply.ok and reply.dict() == {"status": "ok"}
    assert API_KEY_HEADER not in seen[0].headers


def test_datetime_params_become_utc_iso() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _json(200, {"bars": []})

    start = pd.Timestamp("2014-05-01 10:00", tz="America/New_York").to_pydatetime()
    _client(handler).bars("AAPL", start=start)
    assert seen[0].url.params["start"] == "2014-05-01T14:00:00Z"


def test_error_body_becomes_a_message_and_404_is_missing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/signals"):
            return _json(404, {"error": {"code": "not_found", "message": "no fused signal for AAPL yet"}})
        return _json(403, {"error": {"code": "invalid_api_key", "message": "the API key is not valid"}})

    client = _client(handler)
    signal = client.signal("AAPL")
    assert signal.missing and not signal.ok and signal.reachable
    assert signal.error == "404 not_found: no fused signal for AAPL yet"
    assert signal.dict() == {}
    denied = client.stats()
    assert denied.status == 403 and not denied.missing
    assert denied.error == "403 invalid_api_key: the API key is not valid"


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("bad")],
)
def test_transport_failures_never_raise(failure: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    reply = _client(handler).quote("AAPL")
    assert reply.status is None and not reply.ok and not reply.reachable and not reply.missing
    assert reply.error and ("unreachable" in reply.error or "timeout" in reply.error)
    assert reply.dict() == {}


def test_non_json_bodies_never_raise() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(200, content=b"<html>proxy page</html>")
        return httpx.Response(502, content=b"Bad Gateway")

    client = _client(handler)
    health = client.health()
    assert not health.ok and health.status == 200 and "not JSON" in (health.error or "")
    bad = client.stats()
    assert bad.status == 502 and bad.error == "HTTP 502"
    empty = _client(lambda r: httpx.Response(204)).health()
    assert empty.ok and empty.data is None and empty.dict() == {}


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPULSE_API_URL", "http://env.test:9000/")
    monkeypatch.setenv("MARKETPULSE_API_KEY", "from-env")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _json(200, {})

    transport = httpx.MockTransport(handler)
    ApiClient.from_env(transport=transport).health()
    ApiClient.from_env("http://arg.test", "from-arg", transport=transport).health()
    assert str(seen[0].url) == "http://env.test:9000/health" and seen[0].headers[API_KEY_HEADER] == "from-env"
    assert str(seen[1].url) == "http://arg.test/health" and seen[1].headers[API_KEY_HEADER] == "from-arg"
    monkeypatch.delenv("MARKETPULSE_API_URL")
    assert ApiClient.from_env().base_url == "http://127.0.0.1:8000"


# -- parsing helpers -----------------------------------------------------------------------------------------------
def test_error_message_shapes() -> None:
    assert error_message(401, {"error": {"code": "missing_api_key", "message": "need a key"}}) == (
        "401 missing_api_key: need a key"
    )
    assert error_message(422, {"detail": "bad"}) == "422: bad"
    assert error_message(500, None) == "HTTP 500"
    assert error_message(429, {"error": "slow down"}) == "429: slow down"


def test_symbols_and_items_are_tolerant() -> None:
    assert symbols_of({"symbols": ["MSFT", "AAPL"], "count": 2}) == ["AAPL", "MSFT"]
    assert symbols_of(["GOOG", {"symbol": "FB"}, 3, None]) == ["FB", "GOOG"]
    assert symbols_of({"nothing": 1}) == [] and symbols_of(None) == []
    assert items({"bars": [{"a": 1}, 2]}, "bars") == [{"a": 1}]
    assert items([{"a": 1}]) == [{"a": 1}]
    assert items({"items": [{"b": 2}]}) == [{"b": 2}]
    assert items({"count": 0}) == [] and items("text") == []


def test_timestamps_and_numbers() -> None:
    want = pd.Timestamp("2014-05-01T14:30:00Z")
    assert to_timestamp("2014-05-01T14:30:00Z") == want
    assert to_timestamp("2014-05-01T10:30:00-04:00") == want
    assert to_timestamp("2014-05-01T14:30:00") == want  # naive = UTC
    for unit, scale in (("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        assert to_timestamp(int(want.value / 1e9 * scale)) == want, unit
    assert to_timestamp("not a time") is None and to_timestamp(None) is None and to_timestamp(True) is None
    assert to_timestamp(float("nan")) is None
    assert number("1.5") == 1.5 and number(float("nan")) is None and number(float("inf")) is None
    assert number(None) is None and number("x") is None and number(True) is None


def test_quote_price_and_format() -> None:
    assert quote_price({"symbol": "AAPL", "price": 96.78123, "size": 100}) == 96.78123
    assert quote_price({"quote": {"last": "12.5"}}) == 12.5
    assert quote_price({"price": None, "close": 3}) == 3.0
    assert quote_price({"price": None}) is None
    assert format_price(96.78123) == "96.78" and format_price(1234.5) == "1,234.50"
    assert format_price(0.012345) == "0.01235" and format_price(None) == "n/a"


def test_bars_frame() -> None:
    data = {
        "symbol": "AAPL",
        "bars": [
            {"ts": "2014-05-02T20:00:00Z", "open": 2, "high": 3, "low": 1, "close": 2.5, "volume": 10},
            {"ts": "2014-05-01T20:00:00Z", "open": 1, "high": None, "low": None, "close": 1.5, "volume": None},
            {"ts": "garbage", "close": 9},
            {"ts": "2014-05-05T20:00:00Z", "close": None},
            {"timestamp": 1399406400000, "o": 3, "h": 4, "l": 2, "c": 3.5, "v": 7},
        ],
    }
    frame = bars_frame(data)
    assert list(frame.columns) == ["ts", "open", "high", "low", "close", "volume"]
    assert frame["close"].tolist() == [1.5, 2.5, 3.5]  # sorted by time, unreadable rows dropped
    assert frame.loc[0, "high"] == 1.5 and frame.loc[0, "volume"] == 0.0  # gaps filled from close / zero
    assert str(frame["ts"].dt.tz) == "UTC"
    assert bars_frame(None).empty and bars_frame({"bars": []}).empty


def test_records_frame_and_flatten() -> None:
    frame = records_frame(
        {"alerts": [{"ts": "2014-05-02T00:00:00Z", "rule": "b"}, {"ts": "2014-05-01T00:00:00Z", "rule": "a"}]},
        "alerts",
    )
    assert frame["rule"].tolist() == ["a", "b"]
    assert records_frame({"alerts": []}, "alerts").empty
    flat = flatten({"pipeline": {"rates": {"ticks_per_s": 5.0}, "list": [1, 2]}, "api": [{"n": 1}]})
    assert flat == {"pipeline.rates.ticks_per_s": 5.0, "pipeline.list": [1, 2], "api.0.n": 1}


def test_fetch_asks_optional_endpoints_only_when_listed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/openapi.json":
            listed = {"/v1/sentiment/{symbol}/history": {}, "/v1/signals/{symbol}/history": {}, "/health": {}}
            return _json(200, {"paths": listed})
        return _json(404, {"error": {"code": "not_found", "message": "nothing"}})

    client = _client(handler)
    snap = fetch(client, "AAPL", 100)
    assert snap.sentiment_history is None and "/v1/sentiment/AAPL/history" not in seen
    assert snap.signals is None and "/v1/signals/AAPL/history" not in seen
    assert snap.quote.missing and snap.stats.missing
    paths = openapi_paths(client.openapi().data)
    assert SENTIMENT_HISTORY in paths and SIGNAL_HISTORY in paths
    listed = fetch(client, "AAPL", 100, paths)
    assert listed.sentiment_history is not None and listed.signals is not None and listed.signals.missing
    assert "/v1/sentiment/AAPL/history" in seen and "/v1/signals/AAPL/history" in seen
    assert openapi_paths(["not", "openapi"]) == frozenset()
