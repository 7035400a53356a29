"""The replay clock: speed parsing and pacing, checked on a fake monotonic clock (no wall-clock timing)."""

from __future__ import annotations

import threading
import types

import pytest

from marketpulse import clock as clock_module
from marketpulse.clock import ReplayClock, parse_speed

S = 1_000_000_000  # ns per second
T0 = 1_600_000_000 * S  # an event time to start from


# -- parse_speed --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max", "max"),
        ("MAX", "max"),
        ("  Max ", "max"),
        ("60", 60.0),
        ("0.5", 0.5),
        (" 1800 ", 1800.0),
        ("1e3", 1000.0),
        (2, 2.0),
        (0.25, 0.25),
    ],
)
def test_parse_speed_accepts(text: str | float, expected: float | str) -> None:
    got = parse_speed(text)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    "text", ["0", "-1", "-0.5", 0, -3.0, "fast", "", "   ", "60x", "nan", "inf", "-inf", "maximum"]
)
def test_parse_speed_refuses(text: str | float) -> None:
    with pytest.raises(ValueError) as err:
        parse_speed(text)
    message = str(err.value)
    assert "positive number" in message
    assert "'max'" in message
    assert repr(text) in message


# -- a fake monotonic clock and a stop event that records its waits ---------------------------------------


class FakeTime:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


class RecordingStop(threading.Event):
    """A stop flag whose ``wait`` never blocks: it records the delay and advances the fake clock by it."""

    def __init__(self, fake: FakeTime, set_during_wait: bool = False) -> None:
        super().__init__()
        self.fake = fake
        self.set_during_wait = set_during_wait
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None, "the clock must never wait without a timeout"
        self.waits.append(timeout)
        self.fake.now += timeout
        if self.set_during_wait:
            self.set()
        return self.is_set()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """Replace the clock module's ``time`` (only there) by a fake whose monotonic clock we drive."""
    fake = FakeTime()
    monkeypatch.setattr(clock_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


# -- max ----------------------------------------------------------------------------------------------------


def test_max_never_waits(fake: FakeTime) -> None:
    stop = RecordingStop(fake)
    clock = ReplayClock("max", stop=stop)
    assert not clock.paced
    for ts in (T0, T0 + 3600 * S, T0 + 86_400 * S, T0 - S):
        assert clock.wait_until(ts) is True
    assert stop.waits == []
    assert fake.now == 1000.0
    assert clock.event_now_ns == T0 + 86_400 * S  # the newest event time seen


def test_max_reports_stop() -> None:
    stop = threading.Event()
    stop.set()
    assert ReplayClock("max", stop=stop).wait_until(T0) is False


# -- paced --------------------------------------------------------------------------------------------------


def test_first_event_starts_the_clock_without_waiting(fake: FakeTime) -> None:
    stop = RecordingStop(fake)
    clock = ReplayClock(60.0, stop=stop)
    assert clock.paced
    assert clock.wait_until(T0) is True
    assert stop.waits == []
    assert clock.event_now_ns == T0


def test_speed_60_turns_a_minute_of_event_time_into_a_second(fake: FakeTime) -> None:
    stop = RecordingStop(fake)
    clock = ReplayClock(60.0, stop=stop)
    clock.wait_until(T0)
    assert clock.wait_until(T0 + 60 * S) is True
    assert stop.waits == pytest.approx([1.0])
    assert clock.wait_until(T0 + 180 * S) is True  # two more minutes: two more seconds
    assert stop.waits == pytest.approx([1.0, 2.0])
    assert fake.now == pytest.approx(1003.0)


def test_slow_motion(fake: FakeTime) -> None:
    stop = RecordingStop(fake)
    clock = ReplayClock(0.5, stop=stop)
    clock.wait_until(T0)
    clock.wait_until(T0 + 3 * S)
    assert stop.waits == pytest.approx([6.0])


def test_delays_account_for_time_already_spent(fake: FakeTime) -> None:
    """The schedule is absolute: work done between events shortens the next wait, it does not add to it."""
    stop = RecordingStop(fake)
    clock = ReplayClock(10.0, stop=stop)
    clock.wait_until(T0)
    fake.now += 0.3  # processing took 0.3 s of wall time
    clock.wait_until(T0 + 10 * S)  # due 1 s after the start
    assert stop.waits == pytest.approx([0.7])


def test_an_event_already_due_does_not_wait(fake: FakeTime) -> None:
    stop = RecordingStop(fake)
    clock = ReplayClock(60.0, stop=stop)
    clock.wait_until(T0)
    fake.now += 5.0  # we are behind schedule
    assert clock.wait_until(T0 + 60 * S) is True  # was due at +1 s
    assert clock.wait_until(T0 + 60 * S) is True  # same time again
    assert clock.wait_until(T0 - 60 * S) is True  # a late (out-of-order) event
    assert stop.waits == []
    assert clock.event_now_ns == T0 + 60 * S  # event time never goes backwards


def test_max_gap_caps_a_long_gap_and_keeps_the_pace_after_it(fake: FakeTime) -> None:
    stop = RecordingStop(fake)
    clock = ReplayClock(60.0, max_gap_s=2.0, stop=stop)
    clock.wait_until(T0)
    clock.wait_until(T0 + 60 * S)  # 1 s: under the cap
    clock.wait_until(T0 + 60 * S + 16 * 3600 * S)  # a night: 960 s at 60x, capped to 2 s
    clock.wait_until(T0 + 60 * S + 16 * 3600 * S + 60 * S)  # then the normal pace again: 1 s
    assert stop.waits == pytest.approx([1.0, 2.0, 1.0])
    assert fake.now == pytest.approx(1004.0)


def test_without_max_gap_a_long_gap_is_waited_in_full(fake: FakeTime) -> None:
    stop = RecordingStop(fake)
    clock = ReplayClock(60.0, stop=stop)
    clock.wait_until(T0)
    clock.wait_until(T0 + 16 * 3600 * S)
    assert stop.waits == pytest.approx([960.0])


def test_stop_set_before_returns_false_and_does_not_wait(fake: FakeTime) -> None:
    stop = RecordingStop(fake)
    stop.set()
    clock = ReplayClock(60.0, stop=stop)
    assert clock.wait_until(T0) is False  # first event
    assert clock.wait_until(T0 - S) is False  # already due: no wait, still stopped
    assert clock.wait_until(T0 + 60 * S) is False  # a wait that is interrupted at once


def test_stop_set_during_a_wait_returns_false(fake: FakeTime) -> None:
    stop = RecordingStop(fake, set_during_wait=True)
    clock = ReplayClock(60.0, stop=stop)
    assert clock.wait_until(T0) is True
    assert clock.wait_until(T0 + 60 * S) is False
    assert stop.waits == pytest.approx([1.0])


def test_a_real_stop_event_interrupts_a_long_wait() -> None:
    """With the real clock: a set flag makes a 30 s wait return at once (no timing asserted)."""
    stop = threading.Event()
    clock = ReplayClock(1.0, stop=stop)
    assert clock.wait_until(T0) is True
    stop.set()
    assert clock.wait_until(T0 + 30 * S) is False


def test_default_stop_flag_is_a_fresh_event() -> None:
    a, b = ReplayClock(60.0), ReplayClock(60.0)
    assert isinstance(a.stop, threading.Event)
    assert a.stop is not b.stop
    assert not a.stop.is_set()


# -- slice_ns -----------------------------------------------------------------------------------------------


def test_slice_ns() -> None:
    assert ReplayClock("max").slice_ns() is None
    assert ReplayClock(60.0).slice_ns() == 6 * S  # 0.1 s of wall time at 60x: 6 s of event time
    assert ReplayClock(60.0).slice_ns(wall_tick_s=1.0) == 60 * S
    assert ReplayClock(1.0).slice_ns(0.5) == S // 2
    assert ReplayClock(1e-12).slice_ns() == 1  # never zero: time always advances
