"""``create_app``: the FastAPI application of the serving API (REST under ``/v1``, WebSocket at ``/ws``).

Contract:

* :func:`create_app` raises :class:`~marketpulse.api.auth.ApiSecurityError` before anything runs when
  ``config.production`` is set and the configuration is unsafe (see :func:`~marketpulse.api.auth.check_production`).
* The WebSocket hub's bus consumer starts with the app's lifespan (startup) and stops at shutdown; run the app
  under a server that runs the lifespan (uvicorn does, see :mod:`marketpulse.api.server`).
* Every 4xx/5xx has the body ``{"error": {"code": str, "message": str}}`` (see :mod:`marketpulse.api.errors`).
* OpenAPI at ``/openapi.json``, Swagger UI at ``/docs``. ``/health`` and ``/ready`` need no key; everything under
  ``/v1`` and ``/ws`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketpulse import __version__
from marketpulse.api.auth import check_production
from marketpulse.api.deps import ApiContext, ApiState
from marketpulse.api.errors import install_handlers
from marketpulse.api.hub import Hub
from marketpulse.api.routes import market, signals, system
from marketpulse.api.ws import websocket_endpoint

DESCRIPTION = """Latest state and history of the MarketPulse pipeline (quotes, bars, indicators, sentiment,
predictions, fused signals, alerts) and a WebSocket stream at `/ws`. Send your key in the `X-API-Key` header
(`?key=` on the WebSocket). Errors always have the body `{"error": {"code": ..., "message": ...}}`."""


class _CountRequests:
    """Pure ASGI middleware counting HTTP responses by status class into ``counts``."""

    def __init__(self, app: ASGIApp, counts: dict[str, int]) -> None:
        self.app, self.counts = app, counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counts = self.counts

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                counts["total"] += 1
                klass = f"{message['status'] // 100}xx"
                counts[klass] = counts.get(klass, 0) + 1
            await send(message)

        await self.app(scope, receive, counting_send)


def create_app(context: ApiContext) -> FastAPI:
    """The application over ``context`` (see the module docstring)."""
    config = context.config
    state_keys = context.keys
    assert state_keys is not None
    check_production(config, state_keys)
    hub = Hub(
        context.bus,
        group=config.ws_group,
        queue_size=config.ws_queue,
        drop_limit=config.ws_drop_limit,
        ring_size=config.ws_ring,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await asyncio.to_thread(hub.stop)

    app = FastAPI(
        title="MarketPulse API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    state = ApiState(context, hub)
    app.state.api = state
    install_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(config.cors_origins),
        allow_methods=["GET", "OPTIONS"],
        allow_headers=["X-API-Key", "Content-Type"],
        expose_headers=["Retry-After"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(_CountRequests, counts=state.requests)
    for router in (system.public, system.router, market.router, signals.router):
        app.include_router(router)
    app.add_api_websocket_route("/ws", websocket_endpoint)
    return app


def app_state(app: Any) -> ApiState:
    """The :class:`ApiState` of an app made by :func:`create_app` (hub, counters, limiter)."""
    state: ApiState = app.state.api
    return state


__all__ = ["ApiContext", "app_state", "create_app"]
