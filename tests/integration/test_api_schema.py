"""Schemathesis against the API's own OpenAPI schema, over a REAL uvicorn server on 127.0.0.1: generated requests
for every operation never get a 5xx, and every response (errors included) conforms to the schema.

The stores are filled by the real pipeline + local engine on a short replay of the bundled sample.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("schemathesis")

from collections.abc import Iterator
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

from marketpulse.api import ApiConfig, ApiContext, create_app
from marketpulse.api.auth import create_key
from marketpulse.api.server import ApiServer
from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.config import load_settings
from marketpulse.demo import demo_sources
from marketpulse.engine.local import LocalEngine
from marketpulse.pipeline import Pipeline
from marketpulse.store.memory import MemoryOnlineStore
from marketpulse.store.sqlite import SqliteHistoryStore

SYMBOL = "MSFT"
KEY: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("api_schema")
    KEY["key"] = create_key(data_dir / "api_keys.json", "schemathesis", rate_per_s=100_000, burst=100_000)
    bus = MemoryBus(MemoryBusConfig(capacity=1_000_000))
    pipeline = Pipeline(
        load_settings(data_dir=data_dir), bus, MemoryOnlineStore(), SqliteHistoryStore(data_dir=data_dir)
    )
    engine = LocalEngine(bus, pipeline.online, pipeline.history)
    pipeline.replay(demo_sources([SYMBOL], ticks_per_day=10), after_emit=engine.drain)
    engine.drain()
    engine.finish()
    engine.drain()
    context = ApiContext(pipeline.online, pipeline.history, bus, ApiConfig(port=0), data_dir=data_dir)
    with ApiServer(create_app(context), "127.0.0.1", 0) as server:
        yield server.url
    engine.close()
    pipeline.close()


def _schema() -> Any:
    """The OpenAPI document of the app (it does not depend on the data: built from an empty context)."""
    from marketpulse.api.auth import KeyRing
    from marketpulse.store.memory import MemoryHistoryStore

    app = create_app(ApiContext(MemoryOnlineStore(), MemoryHistoryStore(), None, keys=KeyRing(None)))
    return schemathesis.openapi.from_dict(app.openapi())


schema = _schema()  # loaded at import: schemathesis' lazy fixture loader does not work with pytest 9


def _negative(case: Any, location: ParameterLocation) -> bool:
    info = case.meta.components.get(location) if case.meta is not None else None
    return info is not None and info.mode.is_negative


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_and_never_fails(case: Any, api_url: str) -> None:
    """Positive and negative cases. The key is sent unless the case is about a bad header; half of the valid
    generated symbols become a known one so the 200 paths are exercised, not only the 404s."""
    symbol = (case.path_parameters or {}).get("symbol")
    if symbol is not None and not _negative(case, ParameterLocation.PATH) and len(str(symbol)) % 2 == 0:
        case.path_parameters["symbol"] = SYMBOL
    headers = {} if _negative(case, ParameterLocation.HEADER) else {"X-API-Key": KEY["key"]}
    case.call_and_validate(base_url=api_url, headers=headers)
