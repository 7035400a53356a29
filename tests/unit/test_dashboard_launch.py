"""Starting and stopping the dashboard: the command line, a real headless start and stop by PID, failures, and the
``dashboard`` command function (foreground until SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from marketpulse.dashboard import launch
from marketpulse.errors import MissingDependencyError


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0): look at its state
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] == "Z"


def test_command_line_is_headless_local_and_has_no_secret() -> None:
    cmd = launch.streamlit_command(8765, api_url="http://127.0.0.1:8000", symbol="AAPL", refresh_s=3)
    line = " ".join(cmd)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"] and cmd[4].endswith("dashboard/app.py")
    for flag in ("--server.headless true", "--browser.gatherUsageStats false", "--server.address 127.0.0.1"):
        assert flag in line
    assert "--server.port 8765" in line
    assert line.endswith("-- --api-url http://127.0.0.1:8000 --symbol AAPL --refresh 3")
    assert "key" not in line.lower()


def test_missing_dependency_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = launch.importlib.util.find_spec
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name: None if name == "plotly" else real(name))
    with pytest.raises(MissingDependencyError, match=r"pip install 'marketpulse\[dashboard\]'"):
        launch.start_dashboard("http://127.0.0.1:9")


def test_start_and_stop_by_pid(tmp_path: Path) -> None:
    pytest.importorskip("streamlit")
    dash = launch.start_dashboard("http://127.0.0.1:9", "secret-key", port=0, log_path=tmp_path / "st.log")
    try:
        assert dash.alive() and dash.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{dash.url}/_stcore/health", timeout=5) as response:
            assert response.status == 200
        assert "secret-key" not in " ".join(map(str, dash.proc.args))  # type: ignore[arg-type]
    finally:
        code = dash.stop()
    assert code is not None and _gone(dash.pid)
    assert dash.stop() == code  # idempotent


def test_a_server_that_exits_is_reported_with_its_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("streamlit")
    monkeypatch.setattr(launch, "APP_PATH", tmp_path / "missing_app.py")
    monkeypatch.setattr(
        launch,
        "streamlit_command",
        lambda port, **kw: [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
    )
    with pytest.raises(launch.DashboardError, match=r"exited with code 3:\s+boom"):
        launch.start_dashboard(port=0, log_path=tmp_path / "st.log", wait_s=20)


def test_dashboard_command_runs_until_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("streamlit")
    script = tmp_path / "cli.py"
    script.write_text(
        textwrap.dedent(
            """
            import typer
            from marketpulse.dashboard.cli import dashboard
            app = typer.Typer()
            app.command("dashboard")(dashboard)
            app.command("other")(lambda: None)
            app()
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE")}
    env["MARKETPULSE_API_KEY"] = "from-env"
    proc = subprocess.Popen(
        [sys.executable, str(script), "dashboard", "--api-url", "http://127.0.0.1:9", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    child_pid = None
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        report = json.loads(line)
        assert report["command"] == "dashboard" and report["api"] == "http://127.0.0.1:9"
        child_pid = report["pid"]
        with urllib.request.urlopen(f"{report['url']}/_stcore/health", timeout=5) as response:
            assert response.status == 200
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
        deadline = time.monotonic() + 10
        while not _gone(child_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(child_pid), "the Streamlit child outlived the command"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if child_pid is not None and not _gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)
