"""``marketpulse services up|down|status [redis|kafka|connect]`` — local services without Docker.

Registered in the main CLI with ``app.add_typer(services_app, name="services")``; the global ``--config`` and
``--data-dir`` of the main app are honoured (read from the root context). Runnable alone too:
``python -m marketpulse.services.cli status --json``.

Exit codes: 0 done; 1 a service failed (the others of the same command still get their turn on ``down``);
2 a bad service name or a broken configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from marketpulse.config import Settings, load_settings
from marketpulse.errors import ConfigError, MarketPulseError
from marketpulse.services import SERVICES, Service, Transition, get_services

services_app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Kafka (KRaft), Kafka Connect and Redis on 127.0.0.1, without Docker (see docs/services.md).",
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

Names = Annotated[
    list[str] | None,
    typer.Argument(metavar="SERVICE", help=f"{', '.join(SERVICES)} (default: all)", show_default=False),
]


def _settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root().params
    config = root.get("config")
    data_dir = root.get("data_dir")
    return load_settings(Path(config) if config else None, Path(data_dir) if data_dir else None)


def _services(ctx: typer.Context, names: list[str] | None) -> list[Service]:
    unknown = [n for n in names or [] if n not in SERVICES]
    if unknown:
        err.print(f"[bold red]error:[/] unknown service {unknown[0]!r}; allowed: {', '.join(SERVICES)}")
        raise typer.Exit(2)
    try:
        settings = _settings(ctx)
    except ConfigError as e:
        err.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from e
    return get_services(settings, names, progress=lambda message: err.print(f"[dim]{message}[/]"))


def _where(t: Transition) -> str:
    st = t.status
    ports = ", ".join(f"{k} 127.0.0.1:{p}" for k, p in st.ports.items())
    pid = f"pid {st.pid}, " if st.pid else ""
    return f"({pid}{ports})"


@services_app.command()
def up(ctx: typer.Context, names: Names = None) -> None:
    """Start the services (order: redis, kafka, connect); already running ones are kept."""
    for svc in _services(ctx, names):
        try:
            t = svc.up()
        except MarketPulseError as e:
            err.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(1) from e
        for note in t.notes:
            err.print(f"[dim]{svc.name}: {note}[/]")
        if t.action == "external":
            out.print(f"{svc.name}: [yellow]external[/] {_where(t)} — not started by marketpulse; kept as is")
            continue
        took = f" in {t.seconds:.1f} s" if t.action == "started" else ""
        color = "green" if t.action == "started" else "cyan"
        out.print(f"{svc.name}: [{color}]{t.action}[/]{took} {_where(t)} — log {t.status.log}")


@services_app.command()
def down(ctx: typer.Context, names: Names = None) -> None:
    """Stop what `up` started (order: connect, kafka, redis); others are left alone."""
    failed = False
    for svc in reversed(_services(ctx, names)):
        try:
            t = svc.down()
        except MarketPulseError as e:
            err.print(f"[bold red]error:[/] {e}")
            failed = True
            continue
        if t.action in ("stopped", "killed"):
            out.print(f"{svc.name}: [green]{t.action}[/] in {t.seconds:.1f} s")
        elif t.action == "stale removed":
            out.print(f"{svc.name}: not running; {'; '.join(t.notes)}: removed")
        elif t.status.state == "external":
            out.print(f"{svc.name}: not started by marketpulse; left alone ({t.status.detail})")
        else:
            out.print(f"{svc.name}: not running")
    if failed:
        raise typer.Exit(1)


@services_app.command()
def status(
    ctx: typer.Context,
    names: Names = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Each service's state: running (PID, ports), stopped, stale PID file, or external (port held by another)."""
    states = [svc.status() for svc in _services(ctx, names)]
    if as_json:
        typer.echo(json.dumps({"services": [s.as_dict() for s in states]}))
        return
    table = Table(title="marketpulse services")
    for column in ("service", "state", "pid", "ports"):
        table.add_column(column, no_wrap=True)
    table.add_column("log / detail", overflow="fold")
    colors = {"running": "green", "stopped": "dim", "stale": "yellow", "external": "yellow"}
    for s in states:
        ports = "\n".join(f"{k} {p}" for k, p in s.ports.items())
        table.add_row(
            s.name,
            f"[{colors[s.state]}]{s.state}[/]",
            str(s.pid or ""),
            ports,
            s.detail or (str(s.log) if s.state == "running" else ""),
        )
    out.print(table)


if __name__ == "__main__":
    services_app()
