"""The one error shape of the REST API (docs/api.md).

Every 4xx and 5xx answer of the API is ``{"detail": {"code": CODE, "message": TEXT, ...}}``:
``code`` is stable, for programs; ``message`` is for people and may change. A validation
error (422) also carries ``fields``, the fields at fault. Some codes add their own keys
beside these (for example a list of what is missing); clients ignore keys they do not know.

Routes raise :class:`ApiError`; a plain ``HTTPException`` (from a dependency, from Starlette's
router for an unknown path or method) gets the default code of its status. FastAPI's own
request-validation answer is replaced by :func:`validation_error`, so a bad body, query or
path gives the same shape as every other refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException

from monitor.core.errors import ErrorCode, Unavailable
from monitor.pipeline.health import Stage

log = logging.getLogger("vigil")


# The code an HTTPException without one gets from its status.
DEFAULT_CODES: Final[Mapping[int, ErrorCode]] = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    422: ErrorCode.INVALID_REQUEST,
    429: ErrorCode.TOO_MANY_LOGINS,
    500: ErrorCode.INTERNAL_ERROR,
    503: ErrorCode.UNAVAILABLE,
}

# A request with hundreds of bad fields gets the first ones: enough to fix, bounded in size.
MAX_FIELDS: Final = 20


class FieldError(BaseModel):
    """One field at fault: where it is (``["body", "data", "moaas"]``), why, and the kind."""

    loc: list[str | int]
    message: str
    type: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable machine code (docs/api.md lists them).")
    message: str = Field(description="What went wrong, for people; the wording may change.")


class ValidationDetail(ErrorDetail):
    code: Literal["invalid_request"]
    fields: list[FieldError] = Field(description="The fields at fault, at most 20.")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the API."""

    detail: ErrorDetail


class ValidationErrorBody(BaseModel):
    """A 422 answer: the request is well-formed HTTP but a field is not acceptable."""

    detail: ValidationDetail


class ApiError(HTTPException):
    """An error answer with its stable code; extra keyword arguments join the detail."""

    def __init__(
        self,
        status_code: int,
        code: ErrorCode | str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        detail = {"code": str(code), "message": message, **extra}
        super().__init__(status_code, headers=dict(headers) if headers else None)
        # Starlette types detail as text; http_error() below knows it may be the envelope.
        self.detail = detail  # type: ignore[assignment]


def field(loc: Sequence[str | int], message: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": list(loc), "message": message, "type": kind}


def invalid(loc: Sequence[str | int], message: str, kind: str = "value_error") -> ApiError:
    """A 422 for a field a route checks itself (a timestamp it parses, a time in the future)."""
    where = ".".join(str(p) for p in loc[1:]) or str(loc[0])
    return ApiError(
        422,
        ErrorCode.INVALID_REQUEST,
        f"{where}: {message}",
        fields=[field(loc, message, kind)],
    )


def _fields(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        loc = [p if isinstance(p, int) else str(p) for p in e.get("loc", ())]
        kind = str(e.get("type", "value_error"))
        # Pydantic's message never echoes the input (which may be huge or hostile); keep it so.
        message = str(e.get("msg", "not valid"))
        if kind == "json_invalid":
            # loc is ("body", character offset): say what was wrong with the JSON instead.
            reason = (e.get("ctx") or {}).get("error")
            loc, message = ["body"], f"not valid JSON: {reason}" if reason else "not valid JSON"
        out.append(field(loc, message, kind))
        if len(out) == MAX_FIELDS:
            break
    return out


def validation_error(exc: RequestValidationError) -> JSONResponse:
    fields = _fields(exc.errors())
    if fields:
        first = fields[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or str(first["loc"][0])
        message = f"{where}: {first['message']}" if where else first["message"]
        more = len(exc.errors()) - 1
        if more > 0:
            message += f" (and {more} more)"
    else:
        message = "the request is not valid"
    body = {
        "detail": {"code": ErrorCode.INVALID_REQUEST.value, "message": message, "fields": fields}
    }
    return JSONResponse(body, status_code=422)


def http_error(exc: HTTPException) -> JSONResponse:
    status = exc.status_code
    default = DEFAULT_CODES.get(status)
    code = default.value if default else ("internal_error" if status >= 500 else "error")
    if isinstance(exc.detail, Mapping) and "code" in exc.detail:
        detail: dict[str, Any] = dict(exc.detail)
        detail.setdefault("message", code.replace("_", " "))
    else:
        text = exc.detail if isinstance(exc.detail, str) and exc.detail else None
        detail = {"code": code, "message": text or HTTPStatus(status).phrase.lower()}
    if status == 422 and "fields" not in detail:
        detail["fields"] = []
    return JSONResponse({"detail": detail}, status_code=status, headers=exc.headers)


def install(app: FastAPI) -> None:
    """Route every error of ``app`` through the one shape."""

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return http_error(exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_error(exc)

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # A command a stage could not make durable (docs/reliability.md): nothing was stored.
        return unavailable(str(exc))

    async def on_database(request: Request, exc: Exception) -> JSONResponse:
        # A command whose write the database refused (read-only, gone, locked): nothing was
        # stored, the caller may try again. Counted on /health like every failure.
        assert isinstance(exc, DBAPIError)
        if isinstance(exc, IntegrityError):
            if is_unique_violation(exc):
                # A change that lost a race to one stored at the same moment, on a guard the
                # use case did not name (its own guards answer their own 409): nothing of it
                # was stored, and the state it was judged on is gone.
                log.warning("a request lost a race on a unique constraint: %s", exc.orig)
                return http_error(
                    ApiError(
                        409,
                        ErrorCode.CONFLICT,
                        "a change made at the same moment came first; reload and try again",
                    )
                )
            return await on_crash(request, exc)
        monitor = getattr(request.app.state, "monitor", None)
        if monitor is not None:
            monitor.health.failed(Stage.DATABASE, monitor.clock(), type(exc.orig).__name__)
        log.error("a request's database call failed: %s", type(exc.orig).__name__)
        return unavailable("storage is unavailable; nothing was stored")

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback and re-raises after this answer; the client gets the
        # shape, never a stack trace.
        body = {"detail": {"code": ErrorCode.INTERNAL_ERROR.value, "message": "internal error"}}
        return JSONResponse(body, status_code=500)

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Unavailable, on_unavailable)
    app.add_exception_handler(DBAPIError, on_database)
    app.add_exception_handler(Exception, on_crash)


def is_unique_violation(exc: IntegrityError) -> bool:
    """A unique or primary key refused the write (psycopg's UniqueViolation, SQLite's
    "UNIQUE constraint failed"), not a foreign key or a NOT NULL."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":
        return True
    return "UNIQUE constraint failed" in str(orig)


def unavailable(message: str) -> JSONResponse:
    body = {"detail": {"code": ErrorCode.UNAVAILABLE.value, "message": message}}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


def responses(*statuses: int, json_route: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries declaring the error shape for these statuses.

    FastAPI files a response model under the route's own media type; a route that answers
    HTML or CSV still refuses in JSON, so it gets the schema by reference instead (the
    JSON routes register the components)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = ValidationErrorBody if status == 422 else ErrorBody
        entry: dict[str, Any] = {"description": RESPONSE_TEXT.get(status, "Error")}
        if json_route:
            entry["model"] = model
        else:
            ref = {"$ref": f"#/components/schemas/{model.__name__}"}
            entry["content"] = {"application/json": {"schema": ref}}
        out[status] = entry
    return out


# What any route behind a login can answer: every route checks its input (NUL at least) and
# needs storage. Routers declare these; routes add their own (403, 404, 409, 429).
COMMON: Final = (401, 422, 503)

RESPONSE_TEXT: Final[Mapping[int, str]] = {
    401: "Not authenticated: no token, an unknown or expired one (`unauthenticated`).",
    403: "The user's role does not allow this (`forbidden`).",
    404: "No such resource (`not_found`).",
    409: "The request conflicts with the current state; `code` says which rule.",
    422: "A field of the body, query or path is not acceptable (`invalid_request`, `fields`).",
    429: "Too many failed logins; wait a minute (`too_many_logins`).",
    503: "The monitor cannot take this now, e.g. storage is failing (`unavailable`).",
}
