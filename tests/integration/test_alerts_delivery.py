"""Alert delivery end to end against a real local HTTP receiver and a real local SMTP server (127.0.0.1 only).

Behaviour is asserted through counters and events; waits use generous timeouts and never assert durations.
"""

from __future__ import annotations

import email
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from marketpulse.events import Alert
from marketpulse.monitoring import (
    AlertManager,
    AlertsConfig,
    DispatchConfig,
    Dispatcher,
    EmailNotifierConfig,
    LogNotifierConfig,
    PipelineLagConfig,
    RetryConfig,
    WebhookNotifierConfig,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TS = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
WAIT_S = 30.0


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a real HTTP receiver -------------------------------------------------------------------------------------------


class Receiver:
    """ThreadingHTTPServer on 127.0.0.1 recording POSTs; can fail the first N, or hang until released."""

    def __init__(self, port: int = 0, fail_first: int = 0, hang: bool = False) -> None:
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.entered = threading.Event()  # a request reached the handler
        self.release = threading.Event()  # let hanging requests finish
        if not hang:
            self.release.set()
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    receiver.requests += 1
                    fail = receiver.requests <= receiver.fail_first
                receiver.entered.set()
                receiver.release.wait(WAIT_S)
                if fail:
                    self.send_response(500)
                else:
                    with lock:
                        receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT_S)


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(**kwargs: Any) -> Receiver:
        r = Receiver(**kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


# -- a real SMTP server ---------------------------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.rcpt: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        self.rcpt.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def fast_retry(attempts: int = 4) -> DispatchConfig:
    return DispatchConfig(queue_size=100, retry=RetryConfig(attempts=attempts, base_delay_s=0.05, max_delay_s=0.2))


def alert(symbol: str = "AAPL", rule: str = "price_move") -> Alert:
    return Alert(ts=TS, rule=rule, severity="critical", message=f"{symbol} moved +5.00% in one bar", symbol=symbol)


# -- tests ----------------------------------------------------------------------------------------------------------


def test_each_alert_arrives_once_per_cooldown_by_webhook_email_and_log(
    receivers: Callable[..., Receiver], smtp: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    box, port = smtp
    receiver = receivers()
    cfg = AlertsConfig(
        notifiers=[
            LogNotifierConfig(),
            WebhookNotifierConfig(url=receiver.url),
            EmailNotifierConfig(port=port, recipients=["ops@example.test"]),
        ],
        dispatch=fast_retry(),
    )
    caplog.set_level(logging.INFO, logger="marketpulse.alerts")
    manager = AlertManager.from_config(cfg)
    for _ in range(5):  # the same alert, again and again inside its cool-down
        manager.emit([alert()])
    manager.emit([alert("MSFT")])
    assert manager.close(timeout=WAIT_S)

    assert sorted(b["symbol"] for b in receiver.bodies) == ["AAPL", "MSFT"]
    assert receiver.requests == 2
    body = next(b for b in receiver.bodies if b["symbol"] == "AAPL")
    assert body["type"] == "Alert" and body["rule"] == "price_move" and body["severity"] == "critical"
    assert body["message"] == "AAPL moved +5.00% in one bar"
    assert datetime.fromisoformat(body["ts"].replace("Z", "+00:00")) == TS

    subjects = sorted(m["Subject"] for m in box.messages)
    assert subjects == ["[marketpulse] CRITICAL price_move AAPL", "[marketpulse] CRITICAL price_move MSFT"]
    assert box.rcpt == [["ops@example.test"], ["ops@example.test"]]
    text = next(m for m in box.messages if "AAPL" in m["Subject"]).get_payload()
    assert "AAPL moved +5.00% in one bar" in text and "price_move" in text

    assert [r.getMessage() for r in caplog.records if r.name == "marketpulse.alerts"].count(
        "alert price_move [critical] AAPL: AAPL moved +5.00% in one bar"
    ) == 1
    stats = manager.stats()
    assert stats["suppressed"] == 4 and stats["sent"] == 2 and stats["submitted"] == 2
    assert stats["delivered"] == {"log": 2, "webhook": 2, "email": 2}
    assert (stats["retried"], stats["failed"], stats["dropped"]) == (0, 0, 0)


def test_rule_alerts_go_through_cooldown_to_the_receiver(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers()
    cfg = AlertsConfig(
        pipeline_lag=PipelineLagConfig(max_lag_s=5, cooldown_s=300),
        notifiers=[WebhookNotifierConfig(url=receiver.url)],
        dispatch=fast_retry(),
    )
    with AlertManager.from_config(cfg) as manager:
        for second in range(0, 120, 10):
            manager.observe_lag(TS.replace(second=0, minute=second // 60), 42.0, stage="ingest")
    assert receiver.requests == 1
    assert receiver.bodies[0]["rule"] == "pipeline_lag" and "ingest lag 42.0s" in receiver.bodies[0]["message"]


def test_receiver_failing_first_times_is_retried_with_backoff_then_delivered(
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers(fail_first=2)
    dispatcher = Dispatcher.from_configs([WebhookNotifierConfig(url=receiver.url)], fast_retry(attempts=4))
    assert dispatcher.submit(alert())
    assert wait_for(lambda: dispatcher.stats()["delivered"] == {"webhook": 1})
    assert dispatcher.close(timeout=WAIT_S)
    assert receiver.requests == 3 and len(receiver.bodies) == 1
    assert (dispatcher.retried, dispatcher.failed, dispatcher.dropped) == (2, 0, 0)


def test_receiver_down_is_given_up_after_attempts_without_affecting_email(smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    closed = free_port()  # nothing listens there
    dispatcher = Dispatcher.from_configs(
        [WebhookNotifierConfig(url=f"http://127.0.0.1:{closed}/x"), EmailNotifierConfig(port=port, recipients=["a@b"])],
        fast_retry(attempts=3),
    )
    dispatcher.submit(alert())
    assert dispatcher.close(timeout=WAIT_S)
    stats = dispatcher.stats()
    assert stats["delivered"] == {"webhook": 0, "email": 1}
    assert (stats["retried"], stats["failed"]) == (2, 1)
    assert len(box.messages) == 1


def test_receiver_that_comes_back_gets_the_alert(receivers: Callable[..., Receiver]) -> None:
    port = free_port()
    config = DispatchConfig(retry=RetryConfig(attempts=50, base_delay_s=0.05, max_delay_s=0.2))
    dispatcher = Dispatcher.from_configs([WebhookNotifierConfig(url=f"http://127.0.0.1:{port}/x")], config)
    dispatcher.submit(alert())
    assert wait_for(lambda: dispatcher.retried >= 1)  # it failed at least once while down
    receiver = receivers(port=port)
    assert wait_for(lambda: len(receiver.bodies) == 1)
    assert dispatcher.close(timeout=WAIT_S)
    assert dispatcher.stats()["delivered"] == {"webhook": 1} and dispatcher.failed == 0
    assert receiver.bodies[0]["symbol"] == "AAPL"


def test_submit_never_blocks_while_the_receiver_hangs(receivers: Callable[..., Receiver]) -> None:
    receiver = receivers(hang=True)
    config = DispatchConfig(queue_size=2, retry=RetryConfig(attempts=1))
    dispatcher = Dispatcher.from_configs([WebhookNotifierConfig(url=receiver.url, timeout_s=WAIT_S)], config)
    assert dispatcher.submit(alert("A"))
    assert receiver.entered.wait(WAIT_S)  # the worker is now stuck inside the first POST
    results: list[bool] = []
    submitter = threading.Thread(
        target=lambda: results.extend(dispatcher.submit(alert(s)) for s in "BCDEF"), daemon=True
    )
    submitter.start()
    submitter.join(WAIT_S)
    assert not submitter.is_alive()  # every submit returned although the receiver still hangs
    assert not receiver.release.is_set()
    assert results == [True, True, False, False, False]  # two queued, three dropped
    stats = dispatcher.stats()
    assert (stats["submitted"], stats["dropped"], stats["pending"]) == (6, 3, 2)
    assert stats["delivered"] == {"webhook": 0}

    receiver.release.set()
    assert dispatcher.close(timeout=WAIT_S)
    assert sorted(b["symbol"] for b in receiver.bodies) == ["A", "B", "C"]
    assert dispatcher.stats()["delivered"] == {"webhook": 3} and dispatcher.failed == 0
