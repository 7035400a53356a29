"""The serving API: REST (``/v1``) and WebSocket (``/ws``) over the online and history stores and the bus.

``pip install 'marketpulse[api]'``. Build the app with :func:`create_app` over an :class:`ApiContext`; run it with
:class:`~marketpulse.api.server.ApiServer` (embedded, a background thread) or :func:`~marketpulse.api.server.serve`.
Importing this package (e.g. for :class:`ApiConfig`, part of the settings) needs no FastAPI: the app modules load on
first use.
"""

from __future__ import annotations

from typing import Any

from marketpulse.api.config import ApiConfig

__all__ = ["ApiConfig", "ApiContext", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from marketpulse.api.app import create_app

        return create_app
    if name == "ApiContext":
        from marketpulse.api.deps import ApiContext

        return ApiContext
    raise AttributeError(name)
