"""Start and stop the Streamlit dashboard as a headless subprocess on 127.0.0.1.

Contract: :func:`start_dashboard` returns once the server answers its health check (``/_stcore/health``), or
raises :class:`DashboardError` — with the tail of the server's log — after stopping the process it started, when
the server exits or does not answer within ``wait_s``. :meth:`DashboardProcess.stop` stops that process by its
PID (SIGTERM, then SIGKILL after ``timeout``) and is safe to call twice. The API key goes to the child through
its environment (``MARKETPULSE_API_KEY``), never on its command line.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from marketpulse.dashboard import API_KEY_ENV, API_URL_ENV
from marketpulse.errors import MarketPulseError, MissingDependencyError

APP_PATH = Path(__file__).with_name("app.py")


class DashboardError(MarketPulseError):
    """The dashboard could not be started (missing dependency, server exited or never answered)."""


@dataclass
class DashboardProcess:
    """A running Streamlit server started by :func:`start_dashboard`."""

    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM by PID, SIGKILL after ``timeout``; returns the exit code (None if it could not be reaped)."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    return None
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def require_streamlit() -> None:
    """:class:`~marketpulse.errors.MissingDependencyError` (with the ``pip install`` to run) when Streamlit, Plotly
    or httpx is missing."""
    for module in ("streamlit", "plotly", "httpx"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, "dashboard")


def streamlit_command(
    port: int,
    *,
    address: str = "127.0.0.1",
    api_url: str | None = None,
    symbol: str | None = None,
    refresh_s: float | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The ``python -m streamlit run app.py …`` line (no secrets in it)."""
    cmd = [
        python,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--theme.base",
        "light",
        "--",
    ]
    if api_url:
        cmd += ["--api-url", api_url]
    if symbol:
        cmd += ["--symbol", symbol]
    if refresh_s:
        cmd += ["--refresh", f"{refresh_s:g}"]
    return cmd


def start_dashboard(
    api_url: str | None = None,
    api_key: str | None = None,
    *,
    port: int = 0,
    address: str = "127.0.0.1",
    symbol: str | None = None,
    refresh_s: float | None = None,
    wait_s: float = 60.0,
    log_path: Path | None = None,
) -> DashboardProcess:
    """Start Streamlit headless on ``address:port`` (0: a free port) and wait until it answers."""
    require_streamlit()
    port = port or free_port(address)
    env = dict(os.environ)
    if api_url:
        env[API_URL_ENV] = api_url
    if api_key:
        env[API_KEY_ENV] = api_key
    env.setdefault("PYTHONUNBUFFERED", "1")
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="marketpulse-dashboard-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    cmd = streamlit_command(port, address=address, api_url=api_url, symbol=symbol, refresh_s=refresh_s)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    except OSError as e:
        log.close()
        raise DashboardError(f"cannot start streamlit: {e}") from e
    host = "127.0.0.1" if address in ("0.0.0.0", "") else address
    running = DashboardProcess(proc, f"http://{host}:{port}", port, log_path, log)
    try:
        wait_ready(running, wait_s)
    except BaseException:
        running.stop()
        raise
    return running


def wait_ready(dashboard: DashboardProcess, wait_s: float) -> None:
    """Poll ``/_stcore/health`` until it answers; :class:`DashboardError` if the process exits or time runs out."""
    deadline = time.monotonic() + wait_s
    while True:
        if not dashboard.alive():
            raise DashboardError(f"streamlit exited with code {dashboard.proc.returncode}:\n{dashboard.log_tail()}")
        try:
            with urllib.request.urlopen(f"{dashboard.url}/_stcore/health", timeout=2.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise DashboardError(f"streamlit did not answer within {wait_s:g}s:\n{dashboard.log_tail()}")
        time.sleep(0.2)


__all__ = ["DashboardError", "DashboardProcess", "free_port", "start_dashboard", "streamlit_command"]
