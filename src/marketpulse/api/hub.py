"""The WebSocket hub: ONE bus consumer thread fans messages out to per-client bounded queues.

Guarantees:

* **The pipeline is never blocked.** The consumer thread (group ``api.ws_group``) polls the output topics
  (:data:`~marketpulse.api.messages.TOPICS`), decodes, commits right away and hands the messages to the event loop
  with ``call_soon_threadsafe``; it never waits for a client. Records already on the bus when the hub starts are
  skipped (``skipped_backlog``): the hub streams what happens from now on.
* **Bounded memory.** Each client has a queue of at most ``queue_size`` data messages; when it is full the message
  is dropped for that client (``dropped``). A client whose drops since its queue last ran empty reach
  ``drop_limit`` is disconnected (``slow_disconnects``). At most ``max_pending`` polled batches wait for the event
  loop and at most :data:`MAX_BACKLOG` messages wait to be fanned out (``overflow`` counts the messages dropped
  past either). Messages are fanned out :data:`CHUNK` per loop turn so that client writers run in between.
* **Order and resume.** Every message gets the next ``seq`` (one counter per hub, delivery order) and is kept in a
  ring of the last ``ring_size`` messages; :meth:`Hub.replay` returns what a client missed after a ``seq``.

Everything but :meth:`Hub.stop`, :meth:`Hub.stats` and the consumer thread runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from marketpulse.api.messages import TOPICS, Outgoing, expand
from marketpulse.bus.base import Bus
from marketpulse.errors import CodecError, MarketPulseError

log = logging.getLogger(__name__)
_ENC = msgspec.json.Encoder()
WILDCARD = "*"
CHUNK = 64  # messages published per event-loop turn
MAX_BACKLOG = 100_000  # messages handed over but not yet fanned out; more are dropped (counted as overflow)


def encode(payload: dict[str, Any]) -> str:
    """JSON text of a message (non-finite floats become ``null``)."""
    return _ENC.encode(payload).decode()


class ClientQueue:
    """Control messages (unbounded, sent first) and data messages (bounded); event-loop thread only."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.control: deque[str] = deque()
        self.data: deque[str] = deque()
        self.wake = asyncio.Event()
        self.closed = False

    def offer(self, text: str) -> bool:
        if len(self.data) >= self.maxsize:
            return False
        self.data.append(text)
        self.wake.set()
        return True

    def put_control(self, text: str) -> None:
        self.control.append(text)
        self.wake.set()

    def push_front(self, texts: list[str]) -> None:
        """Put ``texts`` (in order) before every queued data message, past the bound (a resume replay)."""
        self.data.extendleft(reversed(texts))
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class Client:
    """One WebSocket connection as the hub sees it: its queue, subscriptions and counters."""

    def __init__(self, client_id: int, queue: ClientQueue) -> None:
        self.id = client_id
        self.queue = queue
        self.wild: set[str] = set()  # channels subscribed for every symbol
        self.pairs: dict[str, set[str]] = {}  # channel -> symbols
        self.dropped = 0
        self.behind = 0  # drops since the queue last ran empty
        self.first_live_seq: int | None = None
        self.kicked = False
        self.on_kick: Callable[[], None] = queue.close

    def subscriptions(self) -> dict[str, list[str]]:
        out = {ch: sorted(syms) for ch, syms in self.pairs.items() if syms}
        for ch in self.wild:
            out[ch] = [WILDCARD]
        return dict(sorted(out.items()))

    def wants(self, channel: str, symbol: str) -> bool:
        if channel in self.wild or symbol in self.pairs.get(channel, ()):
            return True
        return not symbol and bool(self.pairs.get(channel))


class Hub:
    """See the module docstring. ``bus=None``: no consumer thread (messages come from :meth:`publish` only)."""

    def __init__(
        self,
        bus: Bus | None,
        *,
        group: str = "marketpulse-api",
        queue_size: int = 1000,
        drop_limit: int = 5000,
        ring_size: int = 10_000,
        max_pending: int = 1000,
    ) -> None:
        self.bus, self.group = bus, group
        self.queue_size, self.drop_limit, self.max_pending = queue_size, drop_limit, max_pending
        self.ring: deque[tuple[int, str, str, str]] = deque(maxlen=ring_size)  # seq, channel, symbol, text
        self.seq = 0
        self.clients: dict[int, Client] = {}
        self._wild: dict[str, set[Client]] = {}
        self._pairs: dict[tuple[str, str], set[Client]] = {}
        self._ids = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._backlog: deque[Outgoing] = deque()  # handed over, not yet published (event-loop thread)
        self._draining = False
        self._handed = 0  # batches handed to the loop (written by the consumer thread only)
        self._taken = 0  # batches the loop took (written by the loop only)
        self.error: str | None = None
        self.counters = dict.fromkeys(
            (
                "consumed",
                "messages",
                "delivered",
                "dropped",
                "slow_disconnects",
                "undecodable",
                "skipped_backlog",
                "overflow",
                "connections",
            ),
            0,
        )

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to ``loop`` and start the consumer thread (when there is a bus). Call once."""
        self._loop = loop
        if self.bus is not None:
            self._thread = threading.Thread(target=self._consume, name="marketpulse-api-hub", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the consumer thread (blocking, up to ``timeout``) and close every client queue."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for client in list(self.clients.values()):
            client.queue.close()

    def _consume(self) -> None:
        assert self.bus is not None
        try:
            consumer = self.bus.consumer(self.group, TOPICS)
            skip = {(t, p): end for t in TOPICS for p, end in self.bus.end_offsets(t).items()}
        except MarketPulseError as e:
            self.error = f"hub cannot subscribe: {e}"
            log.error("%s", self.error)
            return
        try:
            while not self._stop.is_set():
                batch = consumer.poll(2000, timeout=0.2)
                if not batch:
                    continue
                out: list[Outgoing] = []
                for m in batch:
                    if m.offset < skip.get((m.topic, m.partition), 0):
                        self.counters["skipped_backlog"] += 1
                        continue
                    try:
                        out.extend(expand(m.topic, m.value))
                    except CodecError:
                        self.counters["undecodable"] += 1
                consumer.commit(batch)
                self.counters["consumed"] += len(batch)
                if out:
                    self._hand_over(out)
        except MarketPulseError as e:  # the bus was closed under us (end of run) or failed
            if not self._stop.is_set():
                self.error = f"hub consumer stopped: {e}"
                log.warning("%s", self.error)
        finally:
            with contextlib.suppress(MarketPulseError):
                consumer.close()

    def _hand_over(self, out: list[Outgoing]) -> None:
        if self._handed - self._taken >= self.max_pending or self._loop is None:
            self.counters["overflow"] += len(out)
            return
        try:
            self._loop.call_soon_threadsafe(self._deliver_batch, out)
        except RuntimeError:  # the loop is closed: nobody to deliver to
            return
        self._handed += 1

    def _deliver_batch(self, out: list[Outgoing]) -> None:
        self._taken += 1
        if len(self._backlog) >= MAX_BACKLOG:
            self.counters["overflow"] += len(out)
            return
        self._backlog.extend(out)
        if not self._draining:
            self._draining = True
            self._drain()

    def _drain(self) -> None:
        """Publish the backlog :data:`CHUNK` messages at a time, yielding to the loop in between (the writers
        then send what was queued, so a burst larger than a client's queue does not overflow a fast client)."""
        chunk = [self._backlog.popleft() for _ in range(min(CHUNK, len(self._backlog)))]
        self.publish(chunk)
        if self._backlog and self._loop is not None:
            self._loop.call_soon(self._drain)
        else:
            self._draining = False

    # -- clients ------------------------------------------------------------------------------------------------
    def connect(self) -> Client:
        self._ids += 1
        client = Client(self._ids, ClientQueue(self.queue_size))
        self.clients[client.id] = client
        self.counters["connections"] += 1
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.pop(client.id, None)
        for ch in client.wild:
            self._wild.get(ch, set()).discard(client)
        for ch, syms in client.pairs.items():
            for s in syms:
                self._pairs.get((ch, s), set()).discard(client)
        client.queue.close()

    def subscribe(self, client: Client, channels: Iterable[str], symbols: Iterable[str]) -> None:
        symbols = list(symbols)
        for ch in channels:
            if WILDCARD in symbols:
                client.wild.add(ch)
                self._wild.setdefault(ch, set()).add(client)
            for s in symbols:
                if s != WILDCARD:
                    client.pairs.setdefault(ch, set()).add(s)
                    self._pairs.setdefault((ch, s), set()).add(client)

    def unsubscribe(self, client: Client, channels: Iterable[str], symbols: Iterable[str]) -> None:
        """``symbols == ['*']`` removes every subscription of ``channels``."""
        symbols = list(symbols)
        for ch in channels:
            if WILDCARD in symbols:
                client.wild.discard(ch)
                self._wild.get(ch, set()).discard(client)
                symbols_of = client.pairs.pop(ch, set())
            else:
                symbols_of = set(symbols) & client.pairs.get(ch, set())
                client.pairs.get(ch, set()).difference_update(symbols_of)
            for s in symbols_of:
                self._pairs.get((ch, s), set()).discard(client)

    # -- fan-out --------------------------------------------------------------------------------------------
    def publish(self, out: Iterable[Outgoing]) -> None:
        """Number, encode, remember and fan out messages (event-loop thread)."""
        for o in out:
            self.seq += 1
            text = encode({"seq": self.seq, "channel": o.channel, "symbol": o.symbol, "ts": o.ts, "data": o.data})
            self.ring.append((self.seq, o.channel, o.symbol, text))
            self.counters["messages"] += 1
            if o.symbol:
                targets = self._wild.get(o.channel, set()) | self._pairs.get((o.channel, o.symbol), set())
            else:  # a message without a symbol (an alert) goes to every subscriber of its channel
                targets = {c for c in self.clients.values() if c.wants(o.channel, "")}
            for client in targets:
                self._offer(client, text)

    def _offer(self, client: Client, text: str) -> None:
        if client.kicked:
            return
        if client.queue.offer(text):
            if client.first_live_seq is None:
                client.first_live_seq = self.seq
            self.counters["delivered"] += 1
            return
        client.dropped += 1
        client.behind += 1
        self.counters["dropped"] += 1
        if client.behind >= self.drop_limit:
            client.kicked = True
            self.counters["slow_disconnects"] += 1
            client.on_kick()

    def replay(self, client: Client, after: int) -> tuple[list[str], bool]:
        """Buffered messages with ``seq > after`` the client wants and was not yet given (below its first live
        message), oldest first; and whether some were already evicted from the ring (a gap)."""
        upto = client.first_live_seq if client.first_live_seq is not None else self.seq + 1
        gap = bool(self.ring) and after + 1 < self.ring[0][0] and after < self.seq
        texts = [t for s, ch, sym, t in self.ring if after < s < upto and client.wants(ch, sym)]
        return texts, gap

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "clients": len(self.clients),
            "seq": self.seq,
            "ring": len(self.ring),
            "consumer_alive": bool(self._thread and self._thread.is_alive()),
            "error": self.error,
        }


__all__ = ["WILDCARD", "Client", "ClientQueue", "Hub", "encode"]
