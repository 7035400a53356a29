"""``/health`` and ``/ready`` (no key) and ``/v1/stats``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter

from marketpulse.api.deps import GUARDS, State
from marketpulse.api.errors import ApiError, responses
from marketpulse.api.models import Health, Ready, Stats
from marketpulse.api.routes.common import jsonable

log = logging.getLogger(__name__)
public = APIRouter(tags=["system"])
router = APIRouter(prefix="/v1", tags=["system"], dependencies=GUARDS, responses=responses(401, 403, 429))
PROBE = "__marketpulse_ready__"


@public.get("/health", response_model=Health, summary="Liveness: the process answers")
def health() -> Health:
    return Health()


@public.get("/ready", response_model=Ready, responses=responses(503), summary="Readiness: the stores answer")
def ready(state: State) -> Ready:
    """200 when the online and history stores answer a read; 503 ``not_ready`` naming the one that does not."""
    ctx = state.context
    checks: dict[str, str] = {}
    probes = (
        ("online_store", lambda: ctx.online.get("ticks", PROBE)),
        ("history_store", lambda: ctx.history.read_events("alerts", PROBE)),
    )
    for name, probe in probes:
        try:
            probe()
        except Exception as e:  # any failure means not ready; the reason goes to the body
            log.warning("readiness: %s unreachable: %s", name, e)
            raise ApiError(503, "not_ready", f"{name} unreachable: {e}") from e
        checks[name] = "ok"
    hub_error = state.hub.error
    checks["bus"] = "absent" if ctx.bus is None else ("ok" if hub_error is None else f"degraded: {hub_error}")
    return Ready(checks=checks)


@router.get("/stats", response_model=Stats, summary="Pipeline and API figures")
def stats(state: State) -> Stats:
    try:
        pipeline: dict[str, Any] = jsonable(state.context.stats())
    except Exception as e:  # a failing provider must not break the endpoint
        log.warning("stats provider failed: %s", e)
        pipeline = {"error": f"stats provider failed: {e}"}
    api = {"requests": dict(state.requests), "websocket": jsonable(state.hub.stats())}
    return Stats(pipeline=pipeline, api=api)
