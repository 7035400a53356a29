"""The dashboard in a real browser, over a real API fed by a real replay.

1. A live stack (:mod:`e2e.stack`): the bundled demo (AAPL, MSFT) replayed through ``Pipeline`` + ``LocalEngine``
   into a memory online store and a SQLite history store — warm (a month at full speed), then live at 300× — and
   served by the real API (uvicorn on 127.0.0.1).
2. The dashboard: ``streamlit run`` headless on 127.0.0.1, started and stopped by PID through
   :mod:`marketpulse.dashboard.launch`.
3. Debian's Chromium (installed by ``scripts/services/install-chromium.sh`` when missing), headless, driven over
   the DevTools protocol (:mod:`e2e.browser`): Streamlit renders over a WebSocket after load, which the one-shot
   ``--dump-dom`` does not wait for.

While the replay runs, the page must refresh by itself (the tick time it shows advances, without navigation).
Then the replay is held, and the page must show the symbol with exactly the latest price the API reports. The screenshot
(``tests/e2e/out/dashboard.png``, 1400×1000) must have at least 500 distinct colours. Every process started here is
stopped by its PID, also on failure.
"""

from __future__ import annotations

import re
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

for _module in ("streamlit", "plotly", "httpx", "websockets", "PIL", "fastapi", "uvicorn"):
    pytest.importorskip(_module, reason=f"{_module} is not installed (pip install -e '.[dashboard]')")
pytest.importorskip("marketpulse.api.server", reason="the serving API (marketpulse.api) is not available")

from PIL import Image  # noqa: E402

from e2e.browser import CdpBrowser, chromium_path  # noqa: E402
from e2e.stack import LiveStack  # noqa: E402
from marketpulse.dashboard.client import format_price  # noqa: E402
from marketpulse.dashboard.launch import start_dashboard  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "out"
INSTALL = ROOT / "scripts" / "services" / "install-chromium.sh"
SYMBOL = "AAPL"
HEADLINE = re.compile(rf"{SYMBOL} · last price ([0-9][0-9,]*\.[0-9]+)")
EXACT = re.compile(r"API price ([0-9.eE+-]+)")
TICK = re.compile(r"tick at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC")
UPDATED = re.compile(r"updated (\d\d:\d\d:\d\d) UTC")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def _ensure_chromium() -> None:
    if chromium_path():
        return
    proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0 or not chromium_path():
        pytest.skip(f"Chromium is missing and could not be installed: {proc.stderr.strip()[-300:]}")


def _rendered(browser: CdpBrowser) -> bool:
    """The headline is there, both top charts are drawn, and no element is stale (mid-rerun)."""
    ready = browser.evaluate(
        "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2"
        " && document.querySelectorAll('[data-stale=\"true\"]').length === 0"
    )
    return bool(ready) and HEADLINE.search(browser.text()) is not None


def _match(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1) if found else None


def test_dashboard_shows_the_live_pipeline_in_chromium(tmp_path: Path) -> None:
    _ensure_chromium()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("dashboard*"):
        old.unlink()
    started = time.monotonic()
    with ExitStack() as cleanup:
        stack = LiveStack(tmp_path / "data", symbols=(SYMBOL, "MSFT"))
        cleanup.callback(stack.stop)
        stack.start()
        warm_s = time.monotonic() - started

        dash = start_dashboard(
            stack.url, stack.api_key, port=0, symbol=SYMBOL, refresh_s=2.0, log_path=OUT / "streamlit.log"
        )
        cleanup.callback(dash.stop)

        browser = CdpBrowser(1400, 1000, log_path=tmp_path / "chromium.log")
        cleanup.callback(browser.stop)
        browser.start()
        browser.navigate(f"{dash.url}/?symbol={SYMBOL}")
        assert browser.wait_for(_rendered, timeout=90), (
            f"the page never rendered; text:\n{browser.text()[:2000]}\nstreamlit log:\n{dash.log_tail()}"
        )
        first = browser.text()

        # live: the page refreshes by itself while the replay runs
        assert stack.replaying, "the replay should still be running"
        first_tick, first_update = _match(TICK, first), _match(UPDATED, first)
        assert first_tick and first_update, first[:2000]
        assert browser.wait_for(
            lambda b: (t := b.text()) != "" and _match(TICK, t) not in (None, first_tick), timeout=30
        ), "the tick time on the page did not advance while the replay ran"

        # held: the page must converge on exactly the API's latest price
        assert stack.clock.pause(), "the replay could not be held"
        with stack.client() as api:
            quote = api.get(f"/v1/quotes/{SYMBOL}").json()
            assert api.get(f"/v1/quotes/{SYMBOL}").json() == quote  # the stores are still
            signal_status = api.get(f"/v1/signals/{SYMBOL}").status_code
        price = float(quote["price"])
        shown = format_price(price)

        def converged(b: CdpBrowser) -> bool:
            text = b.text()
            return _rendered(b) and _match(HEADLINE, text) == shown and _match(EXACT, text) == repr(price)

        assert browser.wait_for(converged, timeout=30), (
            f"the page does not show the API's price {price!r} ({shown}); text:\n{browser.text()[:1500]}"
        )
        time.sleep(1.0)  # let the last Plotly transitions settle before the picture
        assert browser.wait_for(_rendered, timeout=10)
        shot = browser.screenshot(OUT / "dashboard.png")
        dom = browser.dom()
        text = browser.text()
        scrolled = browser.evaluate(
            "(() => { const h = document.getElementById('fused-signal'); if (h) h.scrollIntoView(); return !!h; })()"
        )
        time.sleep(1.0)
        fusion_shot = browser.screenshot(OUT / "dashboard-fusion.png")
        (OUT / "dashboard.html").write_text(dom)
        (OUT / "dashboard.txt").write_text(text)

    elapsed = time.monotonic() - started
    print(f"warm-up {warm_s:.1f}s, whole test {elapsed:.1f}s; quote {quote}")

    assert shot.is_file() and shot.stat().st_size > 10_000
    with Image.open(shot) as image:
        assert image.size == (1400, 1000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24)
    assert colours is not None and len(colours) >= 500, f"only {len(colours or [])} colours in {shot}"
    assert SYMBOL in dom and f"{SYMBOL} · last price {shown}" in dom
    assert f"API price {price!r}" in dom
    for section in ("Price, indicators and volume", "Sentiment by source", "System health", "Fused signal"):
        assert section in text, section
    # the bundled model predicts and the engine fuses: the signal, its weights and their history are drawn
    assert signal_status == 200 and "weight history" in text and "no fused signal yet" not in text
    assert scrolled and fusion_shot.is_file() and fusion_shot.stat().st_size > 10_000
    assert "Traceback" not in text and "could not draw" not in text
