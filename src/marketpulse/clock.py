"""The replay clock: event time drives wall time at ``speed``× (or as fast as possible with ``max``).

``wait_until(ts_ns)`` sleeps until the wall clock reaches the moment that corresponds to event time ``ts_ns``.
Event times are never changed: only the pacing is. Gaps longer than ``max_gap_s`` of wall time (nights,
weekends in a replay) are skipped, so a demo stays lively. Waiting can be interrupted through ``stop``.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Literal

Speed = float | Literal["max"]


def parse_speed(text: str | float) -> Speed:
    """``"max"`` or a positive number (``"60"``, ``"0.5"``); ValueError with the allowed forms otherwise."""
    if isinstance(text, str) and text.strip().lower() == "max":
        return "max"
    try:
        value = float(text)
    except (TypeError, ValueError) as e:
        raise ValueError(f"speed must be a positive number or 'max', got {text!r}") from e
    if not 0 < value < math.inf:  # NaN and inf too (inf would be 'max' under another name)
        raise ValueError(f"speed must be a positive number or 'max', got {text!r}")
    return value


class ReplayClock:
    """Maps event time to wall time at a fixed speed, starting at the first event it is asked about."""

    def __init__(self, speed: Speed = "max", max_gap_s: float | None = None, stop: threading.Event | None = None):
        self.speed = speed
        self.max_gap_s = max_gap_s
        self.stop = stop or threading.Event()
        self._origin_event: int | None = None
        self._origin_wall = 0.0
        self.event_now_ns: int | None = None

    @property
    def paced(self) -> bool:
        return self.speed != "max"

    def wait_until(self, ts_ns: int) -> bool:
        """Block until event time ``ts_ns`` is due; False when stopped meanwhile."""
        if self.event_now_ns is None or ts_ns > self.event_now_ns:
            self.event_now_ns = ts_ns
        if self.speed == "max":
            return not self.stop.is_set()
        if self._origin_event is None:
            self._origin_event, self._origin_wall = ts_ns, time.monotonic()
            return not self.stop.is_set()
        due = self._origin_wall + (ts_ns - self._origin_event) / 1e9 / self.speed
        delay = due - time.monotonic()
        if self.max_gap_s is not None and delay > self.max_gap_s:
            # skip the idle part of a long gap: shift the origin so the event is due in max_gap_s
            self._origin_wall -= delay - self.max_gap_s
            delay = self.max_gap_s
        if delay > 0:
            return not self.stop.wait(delay)
        return not self.stop.is_set()

    def slice_ns(self, wall_tick_s: float = 0.1) -> int | None:
        """Event-time width of one emission at this speed (None at ``max``: whole batches)."""
        return None if self.speed == "max" else max(1, int(self.speed * wall_tick_s * 1e9))
