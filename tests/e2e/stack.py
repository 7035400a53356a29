"""A live MarketPulse for browser tests: a real replay of the bundled demo through ``Pipeline`` + ``LocalEngine``
(memory bus, memory online store, SQLite history) in a background thread, served by the real API (uvicorn on
127.0.0.1, :class:`marketpulse.api.server.ApiServer`).

The replay is **warm, then live**: event time before ``live_from`` is replayed as fast as possible (so the
stores hold weeks of bars, features and sentiment within seconds), the rest at ``speed``× real time, so quotes
keep changing while the browser looks at the page. :meth:`LiveStack.stop` ends the replay and the server (also
when called from a failing test); it is idempotent.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.clock import ReplayClock
from marketpulse.config import load_settings
from marketpulse.demo import demo_sources
from marketpulse.engine.local import LocalEngine
from marketpulse.pipeline import Pipeline
from marketpulse.store.memory import MemoryOnlineStore
from marketpulse.store.sqlite import SqliteHistoryStore, SqliteHistoryStoreConfig

API_KEY = "e2e-dashboard-key-0123456789abcdef"


class WarmThenLive(ReplayClock):
    """No waiting before ``live_from_ns``; paced at ``speed`` after it. One emission per ``slice_s`` of event time."""

    def __init__(self, live_from_ns: int, speed: float, stop: threading.Event, slice_s: float = 600.0) -> None:
        super().__init__(speed, max_gap_s=1.0, stop=stop)
        self.live_from_ns = live_from_ns
        self.slice_s = slice_s
        self.live = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self.held = threading.Event()  # set while the replay waits in pause(): nothing is being emitted

    def wait_until(self, ts_ns: int) -> bool:
        if not self._resume.is_set():
            self.held.set()
            while not self._resume.wait(0.05):
                if self.stop.is_set():
                    return False
            self.held.clear()
        if ts_ns < self.live_from_ns:
            self.event_now_ns = ts_ns
            return not self.stop.is_set()
        self.live.set()
        return super().wait_until(ts_ns)

    def pause(self, timeout: float = 30.0) -> bool:
        """Hold the replay before its next emission; True once it is held (the stores then stay as they are)."""
        self._resume.clear()
        return self.held.wait(timeout)

    def resume(self) -> None:
        self._resume.set()

    def slice_ns(self, wall_tick_s: float = 0.1) -> int | None:
        return int(self.slice_s * 1e9)


@dataclass
class LiveStack:
    data_dir: Path
    symbols: tuple[str, ...] = ("AAPL", "MSFT")
    live_from: str = "2014-06-02T13:30:00Z"
    speed: float = 300.0
    api_key: str = API_KEY
    url: str = ""
    error: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self.pipeline: Pipeline | None = None
        self.engine: LocalEngine | None = None
        self.clock = WarmThenLive(pd.Timestamp(self.live_from).value, self.speed, self._stop)

    def start(self, timeout: float = 120.0) -> LiveStack:
        """Start the API, then the replay; return once the replay has reached its live phase."""
        from marketpulse.api import ApiConfig, ApiContext, create_app
        from marketpulse.api.server import ApiServer, pipeline_stats

        settings = load_settings(data_dir=self.data_dir)
        history = SqliteHistoryStore(SqliteHistoryStoreConfig(), data_dir=self.data_dir)
        bus = MemoryBus(MemoryBusConfig(capacity=2_000_000, partitions=4))
        self.pipeline = Pipeline(settings, bus, MemoryOnlineStore(), history)
        from marketpulse.predict.online import build_predictor

        # as `marketpulse run`: no registered model under this data dir, so the bundled demo model predicts
        self.engine = LocalEngine(bus, self.pipeline.online, history, predictor=build_predictor(settings))
        config = ApiConfig(bootstrap_key=self.api_key, port=0)  # type: ignore[arg-type]
        context = ApiContext(
            self.pipeline.online,
            history,
            None,  # no WebSocket hub: the dashboard reads REST only (and the hub would compete for the GIL)
            config,
            stats=pipeline_stats(self.pipeline, self.engine),
            data_dir=self.data_dir,
        )
        self._server = ApiServer(create_app(context), "127.0.0.1", 0).start()
        self.url = self._server.url
        self._thread = threading.Thread(target=self._replay, name="e2e-replay", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.clock.live.wait(0.2):
            if self.error:
                raise RuntimeError(f"replay failed: {self.error[0]}")
            if not self._thread.is_alive():
                raise RuntimeError("replay ended before its live phase")
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay did not reach {self.live_from} within {timeout:g}s")
        return self

    def _replay(self) -> None:
        assert self.pipeline is not None and self.engine is not None
        try:
            self.pipeline.replay(demo_sources(list(self.symbols)), self.clock, after_emit=self.engine.drain)
            self.engine.drain()
        except Exception:
            self.error.append(traceback.format_exc())

    @property
    def replaying(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.api_key}, timeout=10.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
