"""Running the API: uvicorn in a background thread (:class:`ApiServer`, for the embedded ``marketpulse run``),
:func:`start_embedded` (wires a running pipeline + engine to it), and :func:`serve_forever` (standalone
``marketpulse serve``: the API over the configured backends, in the foreground until stopped).

Contract of :class:`ApiServer`: :meth:`~ApiServer.start` binds the socket first (so the port is known, 0 picks a
free one), then returns once uvicorn has started (the app's lifespan ran: the hub consumes the bus), or raises
:class:`ApiServerError` naming the cause (port in use, startup failure). :meth:`~ApiServer.stop` asks uvicorn to
exit, waits for the thread (open WebSockets are closed) and is idempotent.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from marketpulse.api.app import create_app
from marketpulse.api.auth import issue_dev_key, keys_path, read_keys
from marketpulse.api.config import ApiConfig
from marketpulse.api.deps import ApiContext
from marketpulse.errors import MarketPulseError

log = logging.getLogger(__name__)
USER_TIMEOUT_MS = 30_000


class ApiServerError(MarketPulseError):
    """The API server could not start."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port); :class:`ApiServerError` when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise ApiServerError(f"cannot listen on {host}:{port}: {e.strerror or e} (choose another api.port)") from e
    if hasattr(socket, "TCP_USER_TIMEOUT"):  # inherited by accepted sockets: a peer that stops reading (zero
        # window) is cut after this long instead of holding its buffers forever
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, log_level: str = "warning") -> uvicorn.Config:
    """The uvicorn settings used everywhere (small WebSocket frames, no access log, quick graceful shutdown)."""
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        ws_max_size=64 * 1024,
        ws_per_message_deflate=False,  # compressing every message once per client costs more than it saves
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=2,
        lifespan="on",
        server_header=False,
    )


class ApiServer:
    """uvicorn serving ``app`` from a daemon thread, bound to ``host:port`` (see the module docstring)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
        self.app, self.host, self.requested_port = app, host, port
        self.server = uvicorn.Server(uvicorn_config(app, log_level))
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            raise ApiServerError("the API server is not started")
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self._sock] if self._sock else None)
        except BaseException as e:  # reported by start()
            self._error = e

    def start(self, timeout: float = 30.0) -> ApiServer:
        self._sock = bind(self.host, self.requested_port)
        self._thread = threading.Thread(target=self._run, name="marketpulse-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ApiServerError(f"the API server did not start: {self._error or 'startup failed or timed out'}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> ApiServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pipeline_stats(pipeline: Any, engine: Any = None, min_interval_s: float = 1.0) -> Callable[[], dict[str, Any]]:
    """A stats provider over a :class:`~marketpulse.pipeline.Pipeline` (and a local engine): counters, records/s,
    engine latencies. Cached for ``min_interval_s`` (the engine's percentiles are not free); tolerant of the
    counters changing under it (it is called from the API's threads)."""
    cache: dict[str, Any] = {}
    at = [-1e9]

    def provide() -> dict[str, Any]:
        if time.monotonic() - at[0] < min_interval_s and cache:
            return cache
        for _ in range(3):
            try:
                c = pipeline.counters
                out: dict[str, Any] = {"pipeline": c.as_dict(), "records_per_s": round(c.read / c.seconds, 1)}
                if c.event_ts_ns:
                    out["event_time_ns"] = c.event_ts_ns
                if engine is not None:
                    out["engine"] = engine.counters.as_dict()
                if hasattr(pipeline.bus, "stats"):
                    out["bus"] = pipeline.bus.stats()
                break
            except RuntimeError:  # a counter dict changed size while read: try again
                continue
        else:
            return cache
        cache.clear()
        cache.update(out)
        at[0] = time.monotonic()
        return cache

    return provide


def start_embedded(settings: Any, pipeline: Any, engine: Any = None, port: int | None = None) -> tuple[ApiServer, str]:
    """Serve a running pipeline on 127.0.0.1 (``settings.api.port`` unless ``port``): returns the started server and
    a fresh development key (print it). Raises :class:`ApiServerError` / ``ApiSecurityError`` on failure."""
    config: ApiConfig = getattr(settings, "api", None) or ApiConfig()
    data_dir = Path(settings.data_dir)
    dev_key = "" if config.production else issue_dev_key(keys_path(config, data_dir))
    context = ApiContext(
        pipeline.online,
        pipeline.history,
        pipeline.bus,
        config,
        stats=pipeline_stats(pipeline, engine),
        data_dir=data_dir,
    )
    server = ApiServer(create_app(context), "127.0.0.1", config.port if port is None else port)
    return server.start(), dev_key


def serve_forever(
    settings: Any,
    stop: threading.Event,
    host: str | None = None,
    port: int | None = None,
    on_ready: Callable[[str, str | None], object] | None = None,
) -> None:
    """Standalone API over the configured backends until ``stop`` is set.

    With Kafka/Redis it sees what other processes produce; with the embedded SQLite history it serves history (a
    memory bus and memory online store are empty in a process of their own). ``on_ready(url, dev_key)`` runs once
    the server listens; ``dev_key`` is a new development key, issued only outside production when no key is
    configured at all (else None). Raises :class:`ApiServerError` when the server cannot start or dies."""
    from marketpulse.bus import build_bus
    from marketpulse.store import build_history_store, build_online_store

    config: ApiConfig = getattr(settings, "api", None) or ApiConfig()
    data_dir = Path(settings.data_dir)
    path = keys_path(config, data_dir)
    dev_key = None
    if not config.production and not read_keys(path) and config.bootstrap_key is None:
        dev_key = issue_dev_key(path)
    bus = build_bus(settings.bus)
    online = build_online_store(settings.online_store)
    history = build_history_store(settings.history_store, data_dir)
    try:
        stats: Callable[[], dict[str, Any]] = (lambda: {"bus": bus.stats()}) if hasattr(bus, "stats") else dict
        context = ApiContext(online, history, bus, config, stats=stats, data_dir=data_dir)
        server = ApiServer(create_app(context), host or config.host, config.port if port is None else port)
        with server:
            if on_ready is not None:
                on_ready(server.url, dev_key)
            while not stop.wait(0.5):
                if not server.alive:
                    raise ApiServerError("the API server stopped unexpectedly")
    finally:
        bus.close()
        online.close()
        history.close()


__all__ = ["ApiServer", "ApiServerError", "bind", "pipeline_stats", "serve_forever", "start_embedded"]
