"""One error body for every 4xx/5xx: ``{"error": {"code": str, "message": str}}``.

:class:`ApiError` is raised by routes and dependencies; :func:`install_handlers` maps it, Starlette's
``HTTPException`` (404 for unknown paths, 405...), request validation errors (422), store failures (503) and any
other exception (500, message withheld, logged) to that body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from marketpulse.errors import StoreError

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(Exception):
    """An error response: HTTP ``status``, a stable machine ``code`` and a one-line ``message``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _where(loc: Any) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "request"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, code, message, getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = [f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
    return error_response(422, "validation_error", "; ".join(parts) or "invalid request")


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("store failure on %s: %s", request.url.path, exc)
    return error_response(503, "store_unavailable", f"store unavailable: {exc}")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return error_response(500, "internal_error", "internal error (logged on the server)")


def install_handlers(app: FastAPI) -> None:
    """Map every failure to :class:`ErrorBody` (see the module docstring)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(Exception, _unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring :class:`ErrorBody` for ``statuses`` (422 always: replaces FastAPI's)."""
    wanted = sorted({*statuses, 422})
    return {s: {"model": ErrorBody, "description": _CODES.get(s, "error")} for s in wanted}


__all__ = ["ApiError", "ErrorBody", "ErrorDetail", "error_response", "install_handlers", "responses"]
