"""``marketpulse bench api``: REST latency at a paced rate and WebSocket fan-out, each beside a reference measured
in the same run, against real servers on 127.0.0.1 (one process per server, see :mod:`.bench_targets`; the load
runs in this process, see :mod:`.bench_load`).

* REST: ``rate`` GETs/s (open loop, keep-alive) for ``seconds`` over the latest-state endpoints (quote, latest bar,
  indicators) of the API with a valid key — beside a bare Starlette endpoint returning a constant on the same
  uvicorn settings. Target: p99 ≤ 20 ms.
* WebSocket: ``clients`` clients subscribed to ``ticks``; the server publishes ``ws_rate`` ticks/s on its bus for
  ``ws_seconds``; delivered messages/s and receipt − event-time latency — beside a raw ``websockets`` broadcast of
  the same messages. Target: p99 ≤ 100 ms.

Client and servers share the machine's cores, so the figures include the load generator's own CPU use; the
reference pays the same. Nothing is retried or trimmed: failures are counted in the report.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from marketpulse.api.auth import create_key
from marketpulse.api.bench_load import rest_load, ws_fanout
from marketpulse.errors import MarketPulseError

REST_P99_TARGET_MS = 20.0
WS_P99_TARGET_MS = 100.0
PATHS = ["/v1/quotes/MSFT", "/v1/bars/MSFT/latest?interval=60", "/v1/indicators/MSFT?interval=60"]
SUBSCRIBE = json.dumps({"op": "subscribe", "symbols": ["*"], "channels": ["ticks"]})


class _Target:
    """A bench server process (see :mod:`.bench_targets`), stopped on exit (by its own handle, never by name)."""

    def __init__(self, kind: str, keys_file: Path, log: IO[str]) -> None:
        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marketpulse.api.bench_targets", kind, str(keys_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.port = int(self._expect("ready", 300.0)[0])

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def _expect(self, word: str, timeout: float) -> list[str]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty as e:
            raise MarketPulseError(f"bench target {self.kind} did not answer {word!r} in {timeout:.0f}s") from e
        parts = line.split(maxsplit=1)
        if not parts or parts[0] != word:
            raise MarketPulseError(f"bench target {self.kind} failed (expected {word!r}, got {line.strip()!r})")
        return parts[1:]

    def go(self, rate: float, seconds: float) -> Callable[[], Awaitable[dict[str, Any]]]:
        async def run() -> dict[str, Any]:
            assert self.proc.stdin is not None
            self.proc.stdin.write(f"go {rate} {seconds}\n")
            self.proc.stdin.flush()
            rest = await asyncio.to_thread(self._expect, "done", seconds + 60.0)
            stats: dict[str, Any] = json.loads(rest[0])
            return stats

        return run

    def stats(self) -> dict[str, Any]:
        """The target's counters and GC pauses since the last report."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        stats: dict[str, Any] = json.loads(self._expect("stats", 60.0)[0])
        return stats

    def __enter__(self) -> _Target:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def _run(coro: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        result: dict[str, Any] = runner.run(coro)  # type: ignore[arg-type]
        return result


def _ws(target: _Target, url: str, subscribe: str | None, clients: int, rate: float, seconds: float) -> dict[str, Any]:
    expected = int(rate * seconds)
    return _run(ws_fanout(url, clients, subscribe, expected, target.go(rate, seconds), timeout_s=seconds + 30.0))


def bench_api(
    rate: int = 1000, seconds: float = 10.0, clients: int = 500, ws_rate: int = 20, ws_seconds: float = 10.0
) -> dict[str, Any]:
    """Run both benchmarks (see the module docstring); returns one JSON-able report."""
    with tempfile.TemporaryDirectory(prefix="marketpulse-bench-api-") as tmp:
        keys = Path(tmp) / "api_keys.json"
        key = create_key(keys, "bench", rate_per_s=1e9, burst=10**9)
        with open(Path(tmp) / "targets.log", "w", encoding="utf-8") as log:
            with _Target("app", keys, log) as app:
                app.stats()  # start the GC report after startup
                rest_app = _run(rest_load(app.port, PATHS, {"X-API-Key": key}, rate, seconds))
                rest_app["server"] = app.stats()
                url = f"ws://127.0.0.1:{app.port}/ws?key={key}"
                ws_app = _ws(app, url, SUBSCRIBE, clients, ws_rate, ws_seconds)
            with _Target("rest-ref", keys, log) as ref:
                ref.stats()
                rest_ref = _run(rest_load(ref.port, PATHS, {}, rate, seconds))
                rest_ref["server"] = ref.stats()
            with _Target("ws-ref", keys, log) as ref:
                ws_ref = _ws(ref, f"ws://127.0.0.1:{ref.port}/", SUBSCRIBE, clients, ws_rate, ws_seconds)
    rest_ok = rest_app["p99_ms"] is not None and rest_app["p99_ms"] <= REST_P99_TARGET_MS
    ws_ok = ws_app["p99_ms"] is not None and ws_app["p99_ms"] <= WS_P99_TARGET_MS
    return {
        "command": "bench api",
        "cpus": os.cpu_count(),
        "rest": {
            "rate_per_s": rate,
            "seconds": seconds,
            "paths": PATHS,
            "api": rest_app,
            "reference_bare_starlette": rest_ref,
            "target_p99_ms": REST_P99_TARGET_MS,
            "meets_target": rest_ok and rest_app["ok"] == rest_app["requests"],
        },
        "ws": {
            "clients": clients,
            "published_per_s": ws_rate,
            "seconds": ws_seconds,
            "api": ws_app,
            "reference_raw_websockets_broadcast": ws_ref,
            "target_p99_ms": WS_P99_TARGET_MS,
            "meets_target": ws_ok and ws_app["delivered"] == ws_app["expected"],
        },
    }


__all__ = ["PATHS", "REST_P99_TARGET_MS", "WS_P99_TARGET_MS", "bench_api"]
