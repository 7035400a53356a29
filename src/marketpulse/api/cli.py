"""Typer commands of the API, registered by :mod:`marketpulse.cli`: ``serve`` (standalone API), ``keys``
(``create`` / ``list`` / ``revoke`` API keys) and ``bench api``.

Settings come from the main CLI's global options (``--config``, ``--data-dir``) through
:data:`marketpulse.cli.state`, imported lazily (that module imports this one). Known failures print one line on
stderr and exit 1 (2 for configuration errors).
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from marketpulse.api.config import ApiConfig
from marketpulse.errors import ConfigError, MarketPulseError

keys_app = typer.Typer(no_args_is_help=True, help="API keys (stored hashed under the data dir).")


def _settings() -> Any:
    from marketpulse.cli import state

    return state.settings()


def _api_config(settings: Any) -> ApiConfig:
    config: ApiConfig = getattr(settings, "api", None) or ApiConfig()
    return config


def _fail(error: MarketPulseError) -> None:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(2 if isinstance(error, ConfigError) else 1)


def serve(
    host: Annotated[str | None, typer.Option("--host", help="interface (default api.host, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port (default api.port)")] = None,
) -> None:
    """The API (REST + WebSocket) over the configured stores and bus, until Ctrl-C."""
    from marketpulse.api.server import serve_forever

    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)

    def ready(url: str, dev_key: str | None) -> None:
        typer.echo(f"MarketPulse API on {url} (docs: {url}/docs) — Ctrl-C to stop", err=True)
        if dev_key:
            typer.echo(f"development API key (shown once): {dev_key}", err=True)

    try:
        serve_forever(_settings(), stop, host, port, on_ready=ready)
    except MarketPulseError as e:
        _fail(e)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="who or what uses the key")],
    rate: Annotated[float | None, typer.Option("--rate", help="requests/s (default api.rate_per_s)")] = None,
    burst: Annotated[int | None, typer.Option("--burst", help="bucket size (default api.burst)")] = None,
) -> None:
    """Create a key and print it once (only its salted hash is stored)."""
    from marketpulse.api.auth import create_key, keys_path

    try:
        settings = _settings()
        path = keys_path(_api_config(settings), Path(settings.data_dir))
        typer.echo(create_key(path, name, rate_per_s=rate, burst=burst))
    except MarketPulseError as e:
        _fail(e)


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The stored keys (ids, names, limits; never the keys)."""
    from marketpulse.api.auth import keys_path, read_keys

    try:
        settings = _settings()
        records = read_keys(keys_path(_api_config(settings), Path(settings.data_dir)))
    except MarketPulseError as e:
        _fail(e)
        return
    rows = [{k: v for k, v in r.__dict__.items() if k not in ("salt", "sha256")} for r in records]
    typer.echo(json.dumps(rows) if as_json else "\n".join(f"{r['id']}  {r['name']}" for r in rows) or "(no keys)")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id (8 hex digits after mpk_)")]) -> None:
    """Remove a key; a running server stops accepting it within seconds."""
    from marketpulse.api.auth import keys_path, revoke_key

    try:
        settings = _settings()
        found = revoke_key(keys_path(_api_config(settings), Path(settings.data_dir)), key_id)
    except MarketPulseError as e:
        _fail(e)
        return
    if not found:
        typer.echo(f"error: no key with id {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


def bench_api(
    rate: Annotated[int, typer.Option(help="REST requests per second (paced, open loop)")] = 1000,
    seconds: Annotated[float, typer.Option(help="REST measurement per server, seconds")] = 10.0,
    clients: Annotated[int, typer.Option(help="WebSocket clients")] = 500,
    ws_rate: Annotated[int, typer.Option(help="WebSocket messages published per second")] = 20,
    ws_seconds: Annotated[float, typer.Option(help="WebSocket measurement per server, seconds")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """REST p50/p99 at a paced rate and WebSocket fan-out to many clients, each beside a bare reference server."""
    from marketpulse.api.bench import bench_api as run_bench

    report = run_bench(rate=rate, seconds=seconds, clients=clients, ws_rate=ws_rate, ws_seconds=ws_seconds)
    if as_json:
        typer.echo(json.dumps(report, default=str))
    else:
        for key, value in report.items():
            typer.echo(f"{key}: {value}")


__all__ = ["bench_api", "keys_app", "serve"]
