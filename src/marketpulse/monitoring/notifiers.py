"""Alert notifiers (log, webhook, e-mail) and the background :class:`Dispatcher` that feeds them.

Contracts:

* :meth:`Notifier.send` delivers one alert synchronously or raises :class:`NotifierError` (``retryable`` tells
  whether trying again can help: a refused connection or an HTTP 5xx can, an HTTP 400 cannot).
* :class:`Dispatcher` never blocks the caller: :meth:`Dispatcher.submit` puts the alert on one **bounded queue per
  notifier** and returns at once; a full queue drops the alert for that notifier and counts it (``dropped``).
  Each notifier has its own worker thread, so a receiver that hangs or is down delays only itself.
  A failed send is retried with exponential back-off (``base_delay_s * 2**(attempt-1)``, capped at
  ``max_delay_s``) up to ``attempts`` tries in all, then given up and counted (``failed``); a non-retryable
  error is given up at once. :meth:`Dispatcher.close` stops accepting, drains the queues for up to ``timeout``
  seconds, then cuts pending back-off waits short (what is left is counted ``failed``/``dropped``).
* Counters (:meth:`Dispatcher.stats`): ``submitted``, ``delivered`` (per notifier), ``retried``, ``failed``,
  ``dropped``; the alert manager adds ``suppressed``.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Annotated, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from marketpulse.errors import MarketPulseError
from marketpulse.events import Alert

log = logging.getLogger(__name__)

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_SEVERITY_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


class NotifierError(MarketPulseError):
    """One delivery failed; ``retryable`` is False when trying again cannot help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogNotifierConfig(_Section):
    """``type: log`` — write each alert to Python logging."""

    type: Literal["log"] = "log"
    logger: str = Field("marketpulse.alerts", description="logger name")
    level: Literal["severity", "debug", "info", "warning", "error"] = Field(
        "severity", description="log level; 'severity' maps info/warning/critical to the same levels"
    )


class WebhookNotifierConfig(_Section):
    """``type: webhook`` — HTTP POST of the alert as JSON (the event's wire form, ``"type": "Alert"``)."""

    type: Literal["webhook"] = "webhook"
    url: str = Field(..., pattern=r"^https?://", description="http(s) URL receiving the POST")
    timeout_s: float = Field(5.0, gt=0, description="connect + read timeout of one POST")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers (e.g. a token)")


class EmailNotifierConfig(_Section):
    """``type: email`` — a plain-text e-mail over SMTP; the subject names severity, rule and symbol."""

    type: Literal["email"] = "email"
    host: str = Field("127.0.0.1", description="SMTP server host")
    port: int = Field(25, gt=0, lt=65536, description="SMTP server port")
    security: Literal["none", "starttls", "ssl"] = Field("none", description="transport security")
    username: str | None = Field(None, description="SMTP login (none: no AUTH)")
    password: SecretStr | None = Field(None, description="SMTP password")
    sender: str = Field("marketpulse@localhost", description="From address")
    recipients: list[str] = Field(..., min_length=1, description="To addresses")
    subject_prefix: str = Field("[marketpulse]", description="put before every subject")
    timeout_s: float = Field(10.0, gt=0, description="SMTP socket timeout")


NotifierConfig = Annotated[LogNotifierConfig | WebhookNotifierConfig | EmailNotifierConfig, Field(discriminator="type")]


class RetryConfig(_Section):
    """Exponential back-off of a failing notifier."""

    attempts: int = Field(5, ge=1, description="tries in all (1: no retry)")
    base_delay_s: float = Field(0.5, ge=0, description="wait after the first failure; doubles each time")
    max_delay_s: float = Field(30.0, ge=0, description="cap of one wait")


class DispatchConfig(_Section):
    """The background delivery: one bounded queue and one worker per notifier."""

    queue_size: int = Field(1000, gt=0, description="alerts waiting per notifier before new ones are dropped")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="back-off of failing deliveries")


class Notifier(ABC):
    """Delivers one alert; raises :class:`NotifierError` on failure."""

    name: str = "notifier"

    @abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver ``alert`` now (called from a dispatcher worker thread)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; idempotent."""


class LogNotifier(Notifier):
    def __init__(self, config: LogNotifierConfig | None = None) -> None:
        self.config = config or LogNotifierConfig()
        self.name = "log"
        self._log = logging.getLogger(self.config.logger)

    def send(self, alert: Alert) -> None:
        cfg = self.config
        level = _SEVERITY_LEVEL[alert.severity] if cfg.level == "severity" else _LEVELS[cfg.level]
        self._log.log(level, "alert %s [%s] %s: %s", alert.rule, alert.severity, alert.symbol or "-", alert.message)


class WebhookNotifier(Notifier):
    def __init__(self, config: WebhookNotifierConfig) -> None:
        self.config = config
        self.name = "webhook"

    def send(self, alert: Alert) -> None:
        cfg = self.config
        headers = {"Content-Type": "application/json", "User-Agent": "marketpulse-alerts", **cfg.headers}
        request = urllib.request.Request(cfg.url, data=msgspec.json.encode(alert), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=cfg.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as e:
            retryable = e.code >= 500 or e.code in (408, 429)
            raise NotifierError(f"webhook {cfg.url} answered HTTP {e.code}", retryable=retryable) from e
        except (urllib.error.URLError, OSError) as e:  # refused, unreachable, timed out
            reason = getattr(e, "reason", e)
            raise NotifierError(f"webhook {cfg.url} unreachable: {reason}") from e


def email_subject(alert: Alert, prefix: str = "[marketpulse]") -> str:
    """``<prefix> <SEVERITY> <rule> <symbol or ->``."""
    return f"{prefix} {alert.severity.upper()} {alert.rule} {alert.symbol or '-'}".strip()


class EmailNotifier(Notifier):
    def __init__(self, config: EmailNotifierConfig) -> None:
        self.config = config
        self.name = "email"

    def send(self, alert: Alert) -> None:
        cfg = self.config
        msg = EmailMessage()
        msg["Subject"] = email_subject(alert, cfg.subject_prefix)
        msg["From"] = cfg.sender
        msg["To"] = ", ".join(cfg.recipients)
        msg.set_content(
            f"{alert.message}\n\nrule: {alert.rule}\nseverity: {alert.severity}\n"
            f"symbol: {alert.symbol or '-'}\nevent time: {alert.ts.isoformat()}\n"
        )
        smtp_cls = smtplib.SMTP_SSL if cfg.security == "ssl" else smtplib.SMTP
        try:
            with smtp_cls(cfg.host, cfg.port, timeout=cfg.timeout_s) as smtp:
                if cfg.security == "starttls":
                    smtp.starttls()
                if cfg.username is not None:
                    smtp.login(cfg.username, cfg.password.get_secret_value() if cfg.password else "")
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as e:
            raise NotifierError(f"SMTP {cfg.host}:{cfg.port} refused the login", retryable=False) from e
        except (smtplib.SMTPException, OSError) as e:
            raise NotifierError(f"SMTP {cfg.host}:{cfg.port} failed: {e}") from e


def build_notifier(config: NotifierConfig) -> Notifier:
    """The notifier of one config entry."""
    if isinstance(config, WebhookNotifierConfig):
        return WebhookNotifier(config)
    if isinstance(config, EmailNotifierConfig):
        return EmailNotifier(config)
    return LogNotifier(config)


class _Lane:
    """One notifier, its bounded queue and its worker thread."""

    def __init__(self, notifier: Notifier, queue_size: int) -> None:
        self.notifier = notifier
        self.queue: queue.Queue[Alert] = queue.Queue(maxsize=queue_size)
        self.delivered = 0
        self.thread: threading.Thread | None = None


class Dispatcher:
    """Delivers alerts to notifiers off the caller's thread (see the module docstring for the contract)."""

    def __init__(self, notifiers: Sequence[Notifier], config: DispatchConfig | None = None) -> None:
        self.config = config or DispatchConfig()
        self._lanes = [_Lane(n, self.config.queue_size) for n in notifiers]
        self._lock = threading.Lock()
        self._closing = threading.Event()  # no new alerts; workers exit once their queue is empty
        self._abort = threading.Event()  # cut back-off waits short
        self.submitted = self.retried = self.failed = self.dropped = 0
        for i, lane in enumerate(self._lanes):
            lane.thread = threading.Thread(
                target=self._work, args=(lane,), name=f"alerts-{lane.notifier.name}-{i}", daemon=True
            )
            lane.thread.start()

    @classmethod
    def from_configs(cls, notifiers: Sequence[NotifierConfig], config: DispatchConfig | None = None) -> Dispatcher:
        return cls([build_notifier(c) for c in notifiers], config)

    @property
    def notifiers(self) -> list[Notifier]:
        return [lane.notifier for lane in self._lanes]

    def submit(self, alert: Alert) -> bool:
        """Queue ``alert`` for every notifier without blocking; False when some queue was full (or closed)."""
        accepted = True
        with self._lock:  # close() sets _closing under this lock: nothing is queued after the workers stop
            self.submitted += 1
            for lane in self._lanes:
                try:
                    if self._closing.is_set():
                        raise queue.Full
                    lane.queue.put_nowait(alert)
                except queue.Full:
                    accepted = False
                    self.dropped += 1
                    log.warning(
                        "alerts to %s full or closed: dropped %s %s", lane.notifier.name, alert.rule, alert.symbol
                    )
        return accepted

    def pending(self) -> int:
        """Alerts queued and not yet taken by a worker, over all notifiers."""
        return sum(lane.queue.qsize() for lane in self._lanes)

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "submitted": self.submitted,
                "delivered": {lane.notifier.name: lane.delivered for lane in self._lanes},
                "retried": self.retried,
                "failed": self.failed,
                "dropped": self.dropped,
                "pending": self.pending(),
            }

    def close(self, timeout: float = 10.0) -> bool:
        """Stop accepting, deliver what is queued within ``timeout`` seconds, stop the workers.

        Returns True when every queue was drained and every worker stopped in time. Idempotent.
        """
        with self._lock:
            self._closing.set()
        end = time.monotonic() + max(timeout, 0.0)
        for lane in self._lanes:
            assert lane.thread is not None
            lane.thread.join(max(0.0, end - time.monotonic()))
        drained = all(lane.thread is not None and not lane.thread.is_alive() for lane in self._lanes)
        if not drained:
            self._abort.set()  # waits end now; the send in flight ends at its own timeout
        for lane in self._lanes:
            lane.notifier.close()
        return drained

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def _work(self, lane: _Lane) -> None:
        while True:
            try:
                alert = lane.queue.get(timeout=0.05)
            except queue.Empty:
                if self._closing.is_set():
                    return
                continue
            if self._abort.is_set():
                self._count("dropped")
                continue
            if self._deliver(lane.notifier, alert):
                with self._lock:
                    lane.delivered += 1

    def _deliver(self, notifier: Notifier, alert: Alert) -> bool:
        retry = self.config.retry
        for attempt in range(1, retry.attempts + 1):
            try:
                notifier.send(alert)
                return True
            except Exception as e:  # a bug in one notifier must not kill its worker
                retryable = not isinstance(e, NotifierError) or e.retryable
                if attempt == retry.attempts or not retryable or self._abort.is_set():
                    self._count("failed")
                    log.error("alert %s %s not delivered by %s: %s", alert.rule, alert.symbol, notifier.name, e)
                    return False
                self._count("retried")
                delay = min(retry.max_delay_s, retry.base_delay_s * 2 ** (attempt - 1))
                log.warning(
                    "%s failed (try %d of %d), retry in %.2fs: %s", notifier.name, attempt, retry.attempts, delay, e
                )
                self._abort.wait(delay)
        return False  # pragma: no cover - the loop always returns
