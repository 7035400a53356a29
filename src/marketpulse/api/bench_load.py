"""Load generators of ``marketpulse bench api`` (client side, 127.0.0.1 only, bounded in count and time).

* :func:`rest_load` — open-loop HTTP/1.1 GETs at a fixed rate over a pool of keep-alive connections; each latency is
  measured from the request's *scheduled* time, so a stalled server is not hidden (no coordinated omission).
* :func:`ws_fanout` — many WebSocket clients; each message's latency is receipt wall time minus its ``ts`` (the
  publisher's wall time at publish: both ends on one host).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import numpy as np


def percentiles(samples_s: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max in milliseconds (None without samples)."""
    if not samples_s:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(samples_s) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


class _Http:
    """One keep-alive HTTP/1.1 connection (responses must carry Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Http:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, request: bytes) -> int:
        self.writer.write(request)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def rest_load(
    port: int, paths: list[str], headers: dict[str, str], rate: float, seconds: float, warmup_s: float = 1.0
) -> dict[str, Any]:
    """GET ``paths`` round-robin at ``rate``/s for ``warmup_s + seconds``; figures cover the last ``seconds``."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    requests = [f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode() for p in paths]
    pool: asyncio.Queue[_Http] = asyncio.Queue()
    for _ in range(min(64, max(4, int(rate) // 10))):
        pool.put_nowait(await _Http.open(port))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    clock = time.perf_counter  # not loop.time(): uvloop's has millisecond resolution
    warm = int(rate * warmup_s)

    async def one(i: int, scheduled: float) -> None:
        conn = await pool.get()
        try:
            status = await conn.get(requests[i % len(requests)])
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            status = -1
            conn.close()
            conn = await _Http.open(port)
        pool.put_nowait(conn)
        if i >= warm:
            latencies.append(clock() - scheduled)
            statuses[status] += 1

    total = warm + int(rate * seconds)
    start = clock() + 0.05
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = clock() - (start + warm / rate)
    while not pool.empty():
        pool.get_nowait().close()
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return {
        "requests": len(latencies),
        "ok": ok,
        "statuses": {str(s): n for s, n in sorted(statuses.items())},
        "achieved_per_s": round(len(latencies) / elapsed, 1),
        **percentiles(latencies),
    }


async def ws_fanout(
    url: str,
    clients: int,
    subscribe: str | None,
    expected: int,
    go: Callable[[], Awaitable[dict[str, Any]]],
    timeout_s: float,
) -> dict[str, Any]:
    """Connect ``clients`` (sending ``subscribe`` and awaiting its ack when given), then run ``go`` (the publisher)
    and collect the data messages (``expected`` per client at most) until done or ``timeout_s``."""
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    received = [0]
    ready = asyncio.Semaphore(0)
    opening = asyncio.Semaphore(50)
    finished = asyncio.Event()
    failures: Counter[str] = Counter()

    async def client() -> None:
        try:
            async with opening:
                ws = await connect(
                    url, proxy=None, compression=None, open_timeout=60, ping_interval=None, max_queue=None
                )
            async with ws:
                if subscribe is not None:
                    await ws.send(subscribe)
                    while json.loads(await ws.recv()).get("op") != "ack":
                        pass
                ready.release()
                got = 0
                while got < expected and not finished.is_set():
                    msg = json.loads(await ws.recv())
                    if "channel" in msg:
                        latencies.append(time.time() - datetime.fromisoformat(msg["ts"]).timestamp())
                        got += 1
                        received[0] += 1
        except Exception as e:  # counted and reported: one failing client must not end the run
            failures[type(e).__name__] += 1
            ready.release()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    for _ in range(clients):
        await ready.acquire()
    started = time.perf_counter()
    stats = await go()
    with_timeout = asyncio.gather(*tasks)
    try:
        await asyncio.wait_for(asyncio.shield(with_timeout), timeout=timeout_s)
    except TimeoutError:
        finished.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "expected": expected * clients,
        "delivered": received[0],
        "delivered_per_s": round(received[0] / elapsed, 1),
        "client_failures": dict(failures),
        "server": stats,
        **percentiles(latencies),
    }
