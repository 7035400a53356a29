"""Servers measured by ``marketpulse bench api``, each run in a process of its own:

``python -m marketpulse.api.bench_targets KIND KEYS_FILE`` with KIND one of

* ``app`` — the MarketPulse API (uvicorn, the same settings as ``marketpulse run``) over memory stores filled by the
  real pipeline + local engine on the bundled sample; a publisher thread puts ticks on its memory bus;
* ``rest-ref`` — a bare Starlette endpoint returning a constant JSON body, on the same uvicorn settings;
* ``ws-ref`` — a raw ``websockets`` server broadcasting the same-shaped messages.

Protocol on stdin/stdout (one line each): the target prints ``ready <port>``; the driver sends ``go <rate> <seconds>``
and the target publishes ``rate`` tick messages per second (event time = wall clock at publish) for ``seconds``,
then prints ``done <json stats>``; ``stats`` prints ``stats <json>`` (garbage-collection pauses since the last
report, hub counters); ``quit`` (or end of stdin) stops it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH_SYMBOLS = ["MSFT", "AAPL"]


def _message(seq: int, symbol: str, ts_ns: int, price: float) -> str:
    from marketpulse.api.hub import encode
    from marketpulse.api.messages import iso_ns

    data = {"price": price, "size": 1.0, "synthetic": False, "count": 1}
    return encode({"seq": seq, "channel": "ticks", "symbol": symbol, "ts": iso_ns(ts_ns), "data": data})


def _paced(rate: float, seconds: float, emit: Any) -> int:
    """Call ``emit(i)`` ``rate`` times per second for ``seconds`` (open loop); returns the calls made."""
    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        emit(i)
    return n


def _ready(port: int) -> None:
    sys.stdout.write(f"ready {port}\n")
    sys.stdout.flush()


def _pause_figures(pauses: list[float]) -> dict[str, float]:
    return {
        "count": len(pauses),
        "total_ms": round(sum(pauses) * 1e3, 1),
        "max_ms": round(max(pauses, default=0) * 1e3, 1),
    }


class _GcWatch:
    """Garbage-collection pauses per generation since the last report (count, total and longest, ms)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._t0 = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._t0)

    def report(self) -> dict[str, Any]:
        out = {
            f"gen{g}": {
                "count": len(p),
                "total_ms": round(sum(p) * 1e3, 1),
                "max_ms": round(max(p, default=0) * 1e3, 1),
            }
            for g, p in self.pauses.items()
        }
        for p in self.pauses.values():
            p.clear()
        return out


GC = _GcWatch()


def _control(run: Any, stats: Any) -> None:
    """Read ``go``/``stats``/``quit`` lines from stdin (see the module docstring)."""
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            return
        if parts[0] == "go":
            sent = run(float(parts[1]), float(parts[2]))
            sys.stdout.write(f"done {json.dumps({'published': sent, **stats()})}\n")
        elif parts[0] == "stats":
            sys.stdout.write(f"stats {json.dumps(stats())}\n")
        sys.stdout.flush()


def _app(keys_file: Path) -> None:
    from marketpulse.api import ApiConfig, ApiContext, create_app
    from marketpulse.api.app import app_state
    from marketpulse.api.server import ApiServer
    from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
    from marketpulse.config import load_settings
    from marketpulse.demo import demo_sources
    from marketpulse.engine.local import LocalEngine
    from marketpulse.events import TickBatch
    from marketpulse.pipeline import Pipeline
    from marketpulse.store.memory import MemoryHistoryStore, MemoryOnlineStore

    bus = MemoryBus(MemoryBusConfig(capacity=1_000_000))
    pipeline = Pipeline(load_settings(data_dir=keys_file.parent), bus, MemoryOnlineStore(), MemoryHistoryStore())
    engine = LocalEngine(bus, pipeline.online, pipeline.history)
    pipeline.replay(demo_sources(BENCH_SYMBOLS, ticks_per_day=20), after_emit=engine.drain)
    engine.drain()
    engine.finish()
    engine.drain()
    gc.collect()
    gc.freeze()  # the replay's objects are long-lived: keep them out of every later collection (as serve does)
    config = ApiConfig(port=0, keys_file=keys_file, ws_queue=1000, heartbeat_s=30.0)
    app = create_app(ApiContext(pipeline.online, pipeline.history, bus, config, data_dir=keys_file.parent))
    hub = app_state(app).hub

    def publish(i: int) -> None:
        now = time.time_ns()
        batch = TickBatch.from_arrays("MSFT", np.array([now]), np.array([100.0 + i % 7]), np.array([1.0]))
        bus.publish_event("market.ticks", batch)

    with ApiServer(app, "127.0.0.1", 0) as server:
        _ready(server.port)
        _control(lambda rate, seconds: _paced(rate, seconds, publish), lambda: {**hub.stats(), "gc": GC.report()})
    engine.close()
    pipeline.close()


def _rest_ref() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from marketpulse.api.server import ApiServer

    body = {"symbol": "MSFT", "ts": "2014-07-31T20:00:00Z", "price": 43.16, "size": 1.0, "synthetic": True}

    async def constant(request: Any) -> JSONResponse:
        return JSONResponse(body)

    app = Starlette(routes=[Route("/{path:path}", constant)])
    with ApiServer(app, "127.0.0.1", 0) as server:
        _ready(server.port)
        _control(lambda rate, seconds: 0, lambda: {"gc": GC.report()})


def _ws_ref() -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            async for _ in ws:  # any message is acknowledged (as the API does); everyone gets everything
                await ws.send('{"op": "ack", "ack": "subscribe"}')
        finally:
            clients.discard(ws)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            _ready(port)

            def run(rate: float, seconds: float) -> int:
                def emit(i: int) -> None:
                    text = _message(i + 1, "MSFT", time.time_ns(), 100.0 + i % 7)
                    loop.call_soon_threadsafe(broadcast, set(clients), text)

                return _paced(rate, seconds, emit)

            await asyncio.to_thread(_control, run, lambda: {"clients": len(clients), "gc": GC.report()})

    asyncio.run(main())


def main(argv: list[str]) -> None:
    kind, keys_file = argv[0], Path(argv[1])
    if kind == "app":
        _app(keys_file)
    elif kind == "rest-ref":
        _rest_ref()
    elif kind == "ws-ref":
        _ws_ref()
    else:
        raise SystemExit(f"unknown bench target {kind!r}")


if __name__ == "__main__":
    threading.current_thread().name = "bench-target"
    main(sys.argv[1:])
