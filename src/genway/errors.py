"""One error base class that carries its HTTP status, and the handlers that render it.

Every error body is `{"detail": ..., "status_code": N}` (Codegen's shape); validation errors keep
their list of field errors in `detail`. Nothing else ever reaches a client: no stack traces.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from genway.db import is_database_unavailable

log = structlog.get_logger("genway.errors")


class GenwayError(Exception):
    """A domain error: raised by services, rendered once by `genway_error_handler`."""

    status_code: int = 400
    detail: Any = "Bad request"
    # The unit of work is rolled back when a request fails, unless the error says that what
    # was written before it must stay (a revocation that is the error's very point).
    keeps_writes: bool = False

    def __init__(
        self,
        detail: Any = None,
        *,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if detail is not None:
            self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers
        self.extra = extra or {}
        super().__init__(self.detail)


class NotFound(GenwayError):
    status_code = 404
    detail = "Not found"


class Unauthorized(GenwayError):
    status_code = 401
    detail = "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(GenwayError):
    status_code = 403
    detail = "You do not have permission to do this"


class Conflict(GenwayError):
    status_code = 409
    detail = "Conflict"


class PayloadTooLarge(GenwayError):
    status_code = 413
    detail = "Request body too large"


class TooManyRequests(GenwayError):
    status_code = 429
    detail = "Rate limit exceeded"


class InvalidInput(GenwayError):
    status_code = 422
    detail = "Invalid input"


class ErrorBody(BaseModel):
    """Every error answer: `detail` (a sentence, or for 422 the list of invalid fields),
    `message` (always a sentence) and `status_code`; some errors add fields (a 429's `limit`,
    `window_s` and `scope`, a merge conflict's `conflicts`)."""

    model_config = ConfigDict(extra="allow")

    detail: Any
    message: str
    status_code: int


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# The errors any operation may answer, documented once for the whole API.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _documented("The request cannot be served as sent"),
    401: _documented("Missing, invalid, expired or revoked credentials"),
    403: _documented("The caller's role (or the organization's state) does not allow this"),
    404: _documented("No such resource in the caller's organizations"),
    409: _documented("The resource's current state does not allow this"),
    413: _documented("The body or a file is larger than allowed"),
    415: _documented("An upload that is not multipart/form-data, or a file type not accepted"),
    422: _documented(
        "Invalid input: `detail` lists the invalid fields (`type`, `loc`, `msg`), or says in a "
        "sentence what is wrong"
    ),
    429: _documented("A rate limit or quota is reached; `Retry-After` says when to retry"),
    503: _documented("A dependency (an engine, the database) is unavailable; retry later"),
}


def error_body(
    status_code: int, detail: Any, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`detail` (FastAPI's field: a sentence, or the list of invalid fields) and `message`
    (always a sentence: what Codegen's clients read)."""
    return {
        **(extra or {}),
        "detail": detail,
        "message": _message(detail),
        "status_code": status_code,
    }


def _message(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for error in detail:
            if isinstance(error, dict) and "msg" in error:
                where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
                parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
            else:
                parts.append(str(error))
        return "; ".join(parts)
    return str(detail)


async def genway_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GenwayError)
    return JSONResponse(
        error_body(exc.status_code, exc.detail, exc.extra),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return JSONResponse(
        error_body(exc.status_code, exc.detail),
        status_code=exc.status_code,
        headers=headers,
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's own 405 names only those of
    the first route whose path matched)."""
    methods: set[str] = set()
    scope = {**request.scope, "method": "GET"}
    for route in request.app.router.routes:
        match, _child = route.matches(scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _clean_validation_error(error: dict[str, Any]) -> dict[str, Any]:
    # `input` may echo secrets (passwords) and `ctx`/`url` are noise for clients.
    cleaned = {key: error[key] for key in ("type", "loc", "msg") if key in error}
    encoded: dict[str, Any] = jsonable_encoder(cleaned)
    return encoded


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [_clean_validation_error(dict(err)) for err in exc.errors()]
    return JSONResponse(error_body(422, detail), status_code=422)


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # Out of connections, database restarting, network blip: the client should retry, and a
    # 503 says so where a 500 would say the request itself was at fault. (asyncpg reports a
    # server shutting down or starting up as a plain DBAPIError: its SQLSTATE tells.)
    if not is_database_unavailable(exc):
        return await unhandled_error_handler(request, exc)
    log.error(
        "database_unavailable",
        path=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        error=f"{type(exc).__name__}: {str(exc)[:300]}",
    )
    return JSONResponse(
        error_body(503, "The database is temporarily unavailable; retry shortly"),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled_error",
        path=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        exc_info=exc,
    )
    return JSONResponse(error_body(500, "Internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GenwayError, genway_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for unavailable in (DBAPIError, PoolTimeout, ConnectionError):
        app.add_exception_handler(unavailable, database_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
