"""Headless Chromium for browser tests, driven by a tiny Chrome DevTools Protocol client (over ``websockets``).

Why not the one-shot CLI (``chromium --headless --virtual-time-budget=30000 --dump-dom URL`` / ``--screenshot``):
Streamlit sends the page over a WebSocket after the HTML loads, and the one-shot run does not wait for it — with a
30 s virtual time budget it still returns the bare HTML shell ("<title>Streamlit</title>", no app text) after about
two seconds (checked with Debian's Chromium 156). :class:`CdpBrowser` starts the same headless Chromium with the
same flags plus ``--remote-debugging-port=0``, navigates, waits until the page really shows a text, then takes the
screenshot (``Page.captureScreenshot``) and the DOM from the live page.

Every Chromium started here gets a new ``--user-data-dir`` and is stopped by its PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def stop_pid(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM the process by PID, SIGKILL after ``timeout``; reaped either way."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


class CdpBrowser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, width: int = 1400, height: int = 1000, log_path: Path | None = None) -> None:
        self.width, self.height = width, height
        self.profile = Path(tempfile.mkdtemp(prefix="mp-chromium-"))
        self.log_path = log_path or self.profile / "chromium.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._ws: Any = None
        self._next_id = 0

    def start(self, timeout: float = 30.0) -> Self:
        from websockets.sync.client import connect

        exe = chromium_path()
        assert exe, "chromium not found"
        cmd = [
            exe,
            *FLAGS,
            f"--user-data-dir={self.profile}",
            f"--window-size={self.width},{self.height}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not open its DevTools port:\n{self._log_tail()}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        page_ws = None
        while page_ws is None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                targets = json.loads(response.read())
            page_ws = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
            if page_ws is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("chromium has no page target")
                time.sleep(0.1)
        # entered by hand: websockets >= 16 wants connect() used as a context manager; it is left in stop()
        self._ws = connect(page_ws, max_size=None, open_timeout=timeout).__enter__()
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )
        return self

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """One command; events received meanwhile are dropped. RuntimeError on a protocol error."""
        assert self._ws is not None, "browser not started"
        self._next_id += 1
        wanted = self._next_id
        self._ws.send(json.dumps({"id": wanted, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML") or "")

    def wait_for(self, check: Callable[[CdpBrowser], bool], timeout: float, poll_s: float = 0.25) -> bool:
        """Poll ``check(self)`` until it is true (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self):
                return True
            time.sleep(poll_s)
        return False

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def stop(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):  # the browser may already be gone
                self._ws.__exit__(None, None, None)
            self._ws = None
        if self.proc is not None:
            stop_pid(self.proc)
            self.proc = None
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
