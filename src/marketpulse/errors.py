"""The error root of MarketPulse and the typed exceptions used for flow control.

Every exception raised on purpose by the package derives from :class:`MarketPulseError`, so a caller
(the CLI above all) can tell "a known failure with a one-line cause" from a bug.
"""

from __future__ import annotations


class MarketPulseError(Exception):
    """Root of every deliberate MarketPulse error; ``str(err)`` is a one-line cause for the user."""


class ConfigError(MarketPulseError):
    """A configuration key is unknown or holds a value outside the allowed ones."""


class SourceError(MarketPulseError):
    """A source cannot be read at all (missing file, unknown format, no usable header).

    Raised before any record is emitted. A *record* that is bad never raises: it is dead-lettered.
    """


class MissingDependencyError(MarketPulseError):
    """An optional extra is not installed; the message carries the exact ``pip install`` to run."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: run `pip install 'marketpulse[{extra}]'`")
        self.package = package
        self.extra = extra


class BusError(MarketPulseError):
    """Root of bus failures."""


class BackpressureError(BusError):
    """The bus is full for this partition; retry after ``retry_after`` seconds.

    Raised by ``publish`` when a bounded topic cannot take more records because a consumer group lags
    behind. Nothing was written for the record that raised (earlier records of the same batch were).
    """

    def __init__(self, topic: str, partition: int, retry_after: float) -> None:
        super().__init__(
            f"topic {topic!r} partition {partition} is full (a consumer group lags); retry in {retry_after:.3f}s"
        )
        self.topic = topic
        self.partition = partition
        self.retry_after = retry_after


class StoreError(MarketPulseError):
    """Root of store failures."""


class CodecError(MarketPulseError):
    """Bytes that do not decode into a known event type or version."""
