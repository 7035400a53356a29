"""``marketpulse dashboard``: the Streamlit dashboard in the foreground until Ctrl-C (register :func:`dashboard` on
the main Typer app: ``app.command("dashboard")(dashboard)``).

It only starts the page: the API it reads must be running (``marketpulse run`` or ``marketpulse serve``). Exit
codes: 0 after Ctrl-C / SIGTERM, 1 when the dashboard cannot start or dies (the reason and the log's tail on
stderr), 2 for a missing dependency (with the ``pip install`` to run).
"""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from marketpulse.dashboard import API_KEY_ENV, API_URL_ENV, DEFAULT_API_URL
from marketpulse.errors import MissingDependencyError


def dashboard(
    api_url: Annotated[
        str, typer.Option("--api-url", envvar=API_URL_ENV, help="base URL of the MarketPulse API")
    ] = DEFAULT_API_URL,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar=API_KEY_ENV, help="API key (X-API-Key); passed to the page via env"),
    ] = None,
    port: Annotated[int, typer.Option(help="port of the dashboard (0: any free port)")] = 8501,
    address: Annotated[str, typer.Option(help="interface to bind (0.0.0.0 in a container)")] = "127.0.0.1",
    symbol: Annotated[str | None, typer.Option(help="symbol shown first")] = None,
    refresh: Annotated[float, typer.Option(help="seconds between page updates", min=1.0, max=30.0)] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON line (url, pid) once it answers")] = False,
) -> None:
    """Serve the live dashboard (Streamlit, headless) until Ctrl-C; it reads the REST API only."""
    from marketpulse.dashboard.launch import DashboardError, start_dashboard

    try:
        running = start_dashboard(
            api_url, api_key, port=port, address=address, symbol=symbol, refresh_s=refresh, wait_s=90.0
        )
    except MissingDependencyError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    except DashboardError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, _on_signal)
    try:
        if as_json:
            typer.echo(json.dumps({"command": "dashboard", "url": running.url, "pid": running.pid, "api": api_url}))
        else:
            typer.echo(f"dashboard: {running.url} (reading {api_url}; Ctrl-C to stop)")
        while not stop.wait(0.5):
            if not running.alive():
                typer.echo(f"error: the dashboard stopped (code {running.proc.returncode}):", err=True)
                typer.echo(running.log_tail(), err=True)
                raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
        signal.signal(signal.SIGTERM, previous)


__all__ = ["dashboard"]
