"""The Streamlit page against fake APIs (Streamlit's AppTest, no browser): full data, a dead API, nothing yet, and
answers of the wrong shape. The page must never raise and must always say what it has."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
httpx = pytest.importorskip("httpx")

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from marketpulse.dashboard import app as app_module  # noqa: E402
from marketpulse.dashboard.client import ApiClient  # noqa: E402

APP = Path(app_module.__file__)
T0 = "2014-06-02T14:30:00Z"


def _bars(n: int = 30) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        day = f"2014-05-{1 + i:02d}T20:00:00Z" if i < 31 else T0
        close = 90 + i * 0.1
        out.append(
            {"ts": day, "open": close - 0.2, "high": close + 0.5, "low": close - 0.5, "close": close, "volume": 1e6}
        )
    return out


FULL: dict[str, Any] = {
    "/health": {"status": "ok"},
    "/openapi.json": {"paths": {"/v1/quotes/{symbol}": {}}},
    "/v1/symbols": {"symbols": ["AAPL", "MSFT"], "count": 2},
    "/v1/quotes/AAPL": {"symbol": "AAPL", "ts": T0, "price": 96.78123, "size": 100.0, "synthetic": True},
    "/v1/bars/AAPL/latest": {
        "symbol": "AAPL",
        "interval": "60",
        "interval_s": 60,
        "ts": T0,
        "open": 96.7,
        "high": 96.9,
        "low": 96.6,
        "close": 96.8,
        "volume": 1000.0,
    },
    "/v1/bars/AAPL": {"symbol": "AAPL", "count": 30, "truncated": False, "bars": _bars()},
    "/v1/indicators/AAPL": {
        "symbol": "AAPL",
        "interval_s": 60,
        "ts": T0,
        "schema_hash": "abc123",
        "names": ["rsi_14", "sma_30_gap", "bb_upper"],
        "values": {"rsi_14": 0.1, "sma_30_gap": 0.01, "bb_upper": -0.02, "macd_hist": None},
    },
    "/v1/sentiment/AAPL": {
        "symbol": "AAPL",
        "ts": T0,
        "polarity": 0.2,
        "intensity": 0.4,
        "probs": {},
        "sources": [
            {"source": "twitter", "polarity": 0.3, "intensity": 0.5, "probs": {}, "count": 12, "dispersion": 0.1},
            {"source": "news", "polarity": -0.1, "intensity": 0.2, "probs": {}, "count": 2, "dispersion": 0.0},
        ],
    },
    "/v1/predictions/AAPL": {"symbol": "AAPL", "ts": T0, "p_up": 0.61, "horizon_s": 86400, "model": "lstm-v1"},
    "/v1/predictions/AAPL/history": {
        "symbol": "AAPL",
        "count": 3,
        "truncated": False,
        "predictions": [
            {"ts": "2014-05-05T20:00:00Z", "p_up": 0.7, "horizon_s": 86400},
            {"ts": "2014-05-06T20:00:00Z", "p_up": 0.3, "horizon_s": 86400},
            {"ts": T0, "p_up": 0.61, "horizon_s": 86400},
        ],
    },
    "/v1/signals/AAPL": {
        "symbol": "AAPL",
        "ts": T0,
        "score": 0.42,
        "components": {"price": 0.5, "sentiment": 0.2},
        "weights": {"price": 0.7, "sentiment": 0.3},
    },
    "/v1/alerts": {
        "count": 1,
        "truncated": False,
        "alerts": [{"ts": T0, "rule": "price_jump", "severity": "warning", "message": "AAPL +3%", "symbol": "AAPL"}],
    },
    "/v1/stats": {
        "pipeline": {
            "pipeline": {"read": 10, "published": 5, "stored": 4},
            "records_per_s": 100.0,
            "event_time_ns": 1401719400000000000,
            "engine": {"ticks": 10, "feature_rows": 8, "latency_ms_p50": 3.5, "latency_ms_p99": 9.0},
        },
        "api": {"requests": {"total": 3}},
    },
}


def _handler(routes: dict[str, Any]) -> Callable[[Any], Any]:
    def handle(request: Any) -> Any:
        path = request.url.path
        if path not in routes:
            body = {"error": {"code": "not_found", "message": f"nothing at {path}"}}
            return httpx.Response(404, content=json.dumps(body).encode())
        answer = routes[path]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, content=json.dumps(answer).encode(), headers={"content-type": "application/json"})

    return handle


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any], None]]:
    """``fake_api(routes_or_handler)``: the page's client then talks to it instead of the network."""
    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.delenv("MARKETPULSE_API_URL", raising=False)
    monkeypatch.delenv("MARKETPULSE_API_KEY", raising=False)

    def use(routes: Any) -> None:
        handler = routes if callable(routes) else _handler(routes)

        def from_env(cls: type[ApiClient], base_url: str | None = None, api_key: str | None = None, **kw: Any) -> Any:
            return ApiClient("http://fake.api", "k", transport=httpx.MockTransport(handler))

        monkeypatch.setattr(ApiClient, "from_env", classmethod(from_env))

    yield use
    st.cache_resource.clear()
    st.cache_data.clear()


def _run(query: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    if query:
        at.query_params["symbol"] = query
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _text(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.subheader, *at.caption, *at.info, *at.warning, *at.title)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def test_full_api(fake_api: Callable[[Any], None]) -> None:
    fake_api(FULL)
    at = _run("AAPL")
    text = _text(at)
    assert "AAPL · last price 96.78" in text
    assert "API price 96.78123" in text
    assert "p(up) 61.0%" in text and "fused signal +0.420" in text
    assert "score **+0.420**" in text
    assert "SMA 30: `95.84`" in text  # 96.8 / 1.01, the engine's level from its normalised feature
    assert "could not draw" not in text and "no data" not in text.replace("no data yet", "")
    assert len(at.warning) == 0, [w.value for w in at.warning]
    assert at.selectbox[0].value == "AAPL" and list(at.selectbox[0].options) == ["AAPL", "MSFT"]
    assert len(at.get("plotly_chart")) >= 5  # price, sentiment, predictions, weights and their history (throughput
    # needs 2 samples)
    assert len(at.dataframe) >= 1  # the alerts feed


SIGNAL_HISTORY = {
    "symbol": "AAPL",
    "count": 3,
    "truncated": False,
    "signals": [
        {"symbol": "AAPL", "ts": "2014-06-02T14:28:00Z", "score": 0.1, "weights": {"price": 0.5, "sentiment": 0.5}},
        {"symbol": "AAPL", "ts": "2014-06-02T14:29:00Z", "score": 0.3, "weights": {"price": 0.8}},
        {"symbol": "AAPL", "ts": T0, "score": 0.42, "weights": {"price": 0.7, "sentiment": 0.3}},
    ],
}


def _chart(at: AppTest, key: str) -> dict[str, Any] | None:
    """The Plotly figure drawn under ``key`` (its JSON spec), or None."""
    for chart in at.get("plotly_chart"):
        if chart.proto.id.endswith(f"-{key}"):
            spec: dict[str, Any] = json.loads(chart.proto.spec)
            return spec
    return None


def _values(y: Any) -> list[float | None]:
    """A trace's ``y`` as numbers (Plotly sends numpy arrays as ``{"dtype", "bdata"}``); NaN → None."""
    if isinstance(y, dict):
        y = np.frombuffer(base64.b64decode(y["bdata"]), dtype=np.dtype(y["dtype"])).tolist()
    return [None if v is None or v != v else float(v) for v in y]


def test_weight_history_from_the_api(fake_api: Callable[[Any], None]) -> None:
    routes = dict(FULL)
    routes["/openapi.json"] = {"paths": {"/v1/quotes/{symbol}": {}, "/v1/signals/{symbol}/history": {}}}
    routes["/v1/signals/AAPL/history"] = SIGNAL_HISTORY
    fake_api(routes)
    at = _run("AAPL")
    text = _text(at)
    assert "**weight history**" in text and "3 signals (from the API's history, in event time)" in text
    spec = _chart(at, "weights_history")
    assert spec is not None and _chart(at, "weights") is not None  # the latest weights' bar chart stays
    lines = {t["name"]: t for t in spec["data"]}
    assert set(lines) == {"price", "sentiment", "fused score"}
    assert _values(lines["price"]["y"]) == [0.5, 0.8, 0.7]
    assert _values(lines["fused score"]["y"]) == [0.1, 0.3, 0.42]
    assert _values(lines["sentiment"]["y"]) == [0.5, None, 0.3]  # a gap where the input is missing, not a zero
    assert "could not draw" not in text and len(at.warning) == 0


@pytest.mark.parametrize(
    ("history", "caption"),
    [
        (None, "1 signal (sampled by this page while open"),  # an API without the endpoint
        ({"signals": "not a list"}, "1 signal (sampled by this page while open"),
        (httpx.Response(500, content=b"boom"), "history unavailable: HTTP 500"),
    ],
)
def test_weight_history_falls_back_to_the_latest_signal(
    fake_api: Callable[[Any], None], history: Any, caption: str
) -> None:
    routes = dict(FULL)
    if history is not None:
        routes["/openapi.json"] = {"paths": {"/v1/signals/{symbol}/history": {}}}
        routes["/v1/signals/AAPL/history"] = history
    fake_api(routes)
    at = _run("AAPL")
    text = _text(at)
    assert caption in text and "could not draw" not in text
    spec = _chart(at, "weights_history")
    assert spec is not None and {t["name"] for t in spec["data"]} == {"price", "sentiment", "fused score"}


def test_symbol_from_query_and_picker(fake_api: Callable[[Any], None]) -> None:
    routes = dict(FULL)
    routes["/v1/quotes/MSFT"] = {"symbol": "MSFT", "ts": T0, "price": 40.5, "size": 1.0}
    fake_api(routes)
    at = _run("msft")
    assert "MSFT · last price 40.50" in _text(at)
    assert at.selectbox[0].value == "MSFT"


def test_api_down(fake_api: Callable[[Any], None]) -> None:
    fake_api(lambda request: (_ for _ in ()).throw(httpx.ConnectError("connection refused")))
    at = _run()
    text = _text(at)
    assert "no symbols yet" in text
    assert "AAPL · last price: no data yet" in text  # the default symbol, said plainly
    assert "API unreachable" in text
    assert "could not draw" not in text


def test_nothing_yet(fake_api: Callable[[Any], None]) -> None:
    fake_api({"/health": {"status": "ok"}, "/v1/symbols": {"symbols": ["AAPL"], "count": 1}})
    at = _run()
    text = _text(at)
    assert "AAPL · last price: no data yet" in text
    for what in ("no bars yet", "no indicators yet", "no sentiment yet", "no predictions yet"):
        assert what in text, what
    assert "no fused signal yet" in text and "no alerts yet" in text and "no pipeline stats yet" in text
    assert "could not draw" not in text and len(at.warning) == 0


def test_answers_of_the_wrong_shape(fake_api: Callable[[Any], None]) -> None:
    weird: dict[str, Any] = {
        "/health": httpx.Response(200, content=b"not json"),
        "/v1/symbols": ["AAPL", 7, {"symbol": "MSFT"}],
        "/v1/quotes/AAPL": {"quote": {"last": "12.5", "timestamp": 1401719400000}},
        "/v1/bars/AAPL/latest": {"close": "NaN"},
        "/v1/bars/AAPL": {"bars": [{"ts": "garbage", "close": 1}, {"t": 1401719400, "c": 2.0}, "x"]},
        "/v1/indicators/AAPL": {"values": ["not", "a", "dict"]},
        "/v1/sentiment/AAPL": {"ts": T0, "polarity": "high", "sources": {"twitter": {"polarity": 0.1}}},
        "/v1/predictions/AAPL/history": {"predictions": [{"ts": T0}, {"p_up": 0.5}]},
        "/v1/signals/AAPL": {"score": None, "weights": [1, 2]},
        "/v1/alerts": {"alerts": [{"ts": T0}, {"message": "no time"}]},
        "/v1/stats": {"pipeline": "down", "api": None},
        "/openapi.json": ["no", "paths"],
    }
    fake_api(weird)
    at = _run("AAPL")
    text = _text(at)
    assert "AAPL · last price 12.50" in text
    assert "could not draw" not in text, text
