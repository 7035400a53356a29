"""The ``/ws`` endpoint: authentication, the client protocol, and one writer task per connection.

Client → server (JSON text frames)::

    {"op": "subscribe" | "unsubscribe", "symbols": ["AAPL", ...] | ["*"], "channels": ["ticks", ...]}
    {"op": "resume", "seq": N}
    {"op": "ping"}

``channels`` defaults to every channel (:data:`~marketpulse.api.messages.CHANNELS`); symbols are upper-cased.

Server → client::

    {"op": "welcome", "seq": <hub seq now>, "channels": [...], "heartbeat_s": s}      once, first
    {"seq": int, "channel": str, "symbol": str, "ts": iso, "data": {...}}            data (see messages.py)
    {"op": "ack", "ack": "subscribe"|"unsubscribe", "subscriptions": {channel: [symbols]}}
    {"op": "ack", "ack": "resume", "seq": N, "replayed": n, "gap": bool, "head": <hub seq>}
    {"op": "heartbeat", "ts": iso, "seq": <hub seq now>}                              every heartbeat_s
    {"op": "pong", "ts": iso}
    {"op": "error", "error": {"code": str, "message": str}}                          bad input: never fatal

Authentication: ``?key=`` or the ``X-API-Key`` header, checked after the handshake; a failure sends the error
message and closes with 4401 (no key), 4403 (wrong key) or 4429 (rate limited). A client too slow to keep up
(see :mod:`marketpulse.api.hub`) gets ``too_slow`` and close code 4008. Client ops are limited per connection
by a token bucket (``api.rate_per_s`` / ``api.burst``); over it, the op is refused with ``rate_limited``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import WebSocket

from marketpulse.api.deps import SYMBOL_PATTERN, ApiState
from marketpulse.api.errors import ApiError
from marketpulse.api.hub import WILDCARD, Client, Hub, encode
from marketpulse.api.messages import CHANNELS, iso

CLOSE_CODES = {401: 4401, 403: 4403, 429: 4429}
CLOSE_TOO_SLOW = 4008
MAX_BATCH = 256  # data messages sent per wake-up before control messages are looked at again
_SYMBOL = re.compile(SYMBOL_PATTERN)


def error_message(code: str, message: str) -> str:
    return encode({"op": "error", "error": {"code": code, "message": message}})


def _now() -> str:
    return iso(datetime.now(UTC))


class ProtocolError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _names(msg: dict[str, Any], field: str, default: list[str] | None) -> list[str]:
    value = msg.get(field, default)
    if value is None:
        raise ProtocolError("bad_request", f"'{field}' is required")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value) or len(value) > 1000:
        raise ProtocolError("bad_request", f"'{field}' must be a non-empty list of at most 1000 strings")
    return value


def parse_subscription(msg: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(channels, symbols)`` of a subscribe/unsubscribe message; :class:`ProtocolError` when invalid."""
    channels = _names(msg, "channels", list(CHANNELS))
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise ProtocolError("unknown_channel", f"unknown channel(s) {unknown}; allowed: {list(CHANNELS)}")
    symbols = [s if s == WILDCARD else s.upper() for s in _names(msg, "symbols", None)]
    bad = [s for s in symbols if s != WILDCARD and not _SYMBOL.match(s)]
    if bad:
        raise ProtocolError("bad_request", f"invalid symbol(s) {bad[:5]}")
    return list(dict.fromkeys(channels)), list(dict.fromkeys(symbols))


def handle_op(hub: Hub, client: Client, msg: Any) -> None:
    """Apply one decoded client message; replies go to the client's control queue."""
    q = client.queue
    if not isinstance(msg, dict):
        raise ProtocolError("bad_request", "a message must be a JSON object with an 'op'")
    op = msg.get("op")
    if op in ("subscribe", "unsubscribe"):
        channels, symbols = parse_subscription(msg)
        (hub.subscribe if op == "subscribe" else hub.unsubscribe)(client, channels, symbols)
        q.put_control(encode({"op": "ack", "ack": op, "subscriptions": client.subscriptions()}))
    elif op == "resume":
        seq = msg.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ProtocolError("bad_request", "'seq' must be a non-negative integer")
        texts, gap = hub.replay(client, seq)
        ack = {"op": "ack", "ack": "resume", "seq": seq, "replayed": len(texts), "gap": gap, "head": hub.seq}
        q.put_control(encode(ack))
        q.push_front(texts)
    elif op == "ping":
        q.put_control(encode({"op": "pong", "ts": _now()}))
    else:
        raise ProtocolError("bad_request", f"unknown op {op!r}; allowed: subscribe, unsubscribe, resume, ping")


async def _reader(ws: WebSocket, state: ApiState, client: Client) -> None:
    cfg = state.config
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        try:
            if text is None:
                raise ProtocolError("bad_request", "send JSON text frames")
            if state.limiter.take(f"ws:{client.id}", cfg.rate_per_s, cfg.burst) > 0:
                raise ProtocolError("rate_limited", "too many messages on this connection; slow down")
            try:
                msg = json.loads(text)
            except ValueError as e:
                raise ProtocolError("invalid_json", f"not JSON: {e}") from e
            handle_op(state.hub, client, msg)
        except ProtocolError as e:
            client.queue.put_control(error_message(e.code, str(e)))


async def _writer(ws: WebSocket, hub: Hub, client: Client, heartbeat_s: float) -> None:
    q = client.queue
    loop = asyncio.get_running_loop()
    next_beat = loop.time() + heartbeat_s
    while not q.closed:
        if not q.control and not q.data:
            client.behind = 0  # caught up: a slow client is judged on drops since its queue last ran empty
            q.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_beat - loop.time())):
                    await q.wake.wait()
            if q.closed:
                return
        if loop.time() >= next_beat:
            await ws.send_text(encode({"op": "heartbeat", "ts": _now(), "seq": hub.seq}))
            next_beat = loop.time() + heartbeat_s
        while q.control:
            await ws.send_text(q.control.popleft())
        for _ in range(MAX_BATCH):
            if not q.data or q.closed:
                break
            await ws.send_text(q.data.popleft())


async def _close(ws: WebSocket, code: int, reason: str = "") -> None:
    with contextlib.suppress(Exception):  # the peer may be gone already
        async with asyncio.timeout(1.0):
            await ws.close(code, reason)


async def websocket_endpoint(ws: WebSocket) -> None:
    """The ``/ws`` handler (see the module docstring)."""
    state: ApiState = ws.app.state.api
    hub = state.hub
    await ws.accept()
    try:
        state.authorize(ws.query_params.get("key") or ws.headers.get("x-api-key"))
    except ApiError as e:
        with contextlib.suppress(Exception):
            await ws.send_text(error_message(e.code, e.message))
        await _close(ws, CLOSE_CODES.get(e.status, 4400), e.code)
        return
    client = hub.connect()
    welcome = {"op": "welcome", "seq": hub.seq, "channels": list(CHANNELS), "heartbeat_s": state.config.heartbeat_s}
    client.queue.put_control(encode(welcome))
    writer = asyncio.create_task(_writer(ws, hub, client, state.config.heartbeat_s))
    reader = asyncio.create_task(_reader(ws, state, client))

    def kick() -> None:
        client.queue.close()
        writer.cancel()  # it may be stuck sending to a peer that does not read

    client.on_kick = kick
    try:
        await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (writer, reader):
            task.cancel()
        await asyncio.gather(writer, reader, return_exceptions=True)  # peer gone, cancelled: all end the same
        hub.disconnect(client)
    if client.kicked:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await ws.send_text(error_message("too_slow", f"disconnected after {client.dropped} dropped messages"))
        await _close(ws, CLOSE_TOO_SLOW, "too slow")
    elif not (reader.done() and not reader.cancelled() and reader.exception() is None):
        await _close(ws, 1000)  # server side ended (shutdown, send failure); the peer did not say goodbye


__all__ = ["CLOSE_CODES", "CLOSE_TOO_SLOW", "ProtocolError", "handle_op", "parse_subscription", "websocket_endpoint"]
