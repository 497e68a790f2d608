"""Every error answered as ``{"error": {"code", "message", "details"?}}`` with the status from
:data:`processgpt.domain.errors.ERROR_STATUS`, and the same answers declared in the OpenAPI
document (:func:`responses`)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from processgpt.api.openapi import VALIDATION_DESCRIPTION
from processgpt.db.database import is_transient
from processgpt.domain.errors import (
    ERROR_STATUS,
    DatabaseUnavailable,
    ProcessGPTError,
    TooManyPending,
)
from processgpt.protocols.views import ErrorBody

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    code: str,
    message: str,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse(
        {"error": error}, status_code=status or ERROR_STATUS.get(code, 500), headers=headers
    )


def describe_validation(errors: list[Any]) -> str:
    """The first problem of a pydantic validation, as ``where: what`` (never the input)."""
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))


def _malformed(errors: list[Any]) -> bool:
    return any(e.get("type") in ("json_invalid", "json_type") for e in errors)


def unavailable(exc: DatabaseUnavailable) -> JSONResponse:
    return error_response(exc.code, exc.message, headers={"Retry-After": str(exc.retry_after)})


def install(app: FastAPI) -> None:
    @app.exception_handler(ProcessGPTError)
    async def _domain(request: Request, exc: ProcessGPTError) -> JSONResponse:
        if isinstance(exc, DatabaseUnavailable):
            log.warning("database unavailable path=%s error=%s", request.url.path, _cause(exc))
            return unavailable(exc)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyPending) else None
        return error_response(exc.code, exc.message, headers=headers, details=exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if _malformed(errors):
            return error_response("malformed_json", "the request body is not valid JSON")
        return error_response("invalid_input", describe_validation(errors))

    @app.exception_handler(ValidationError)
    async def _model(_request: Request, exc: ValidationError) -> JSONResponse:
        return error_response("invalid_input", describe_validation(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
            # FastAPI could not decode the body: not UTF-8 (a UnicodeDecodeError) or nested
            # deeper than the decoder goes (a RecursionError).
            return error_response(
                "malformed_json", "the request body is not valid JSON (UTF-8, not too deep)"
            )
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(code, str(exc.detail), status=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):  # a driver error that escaped the db layer's translation
            log.warning(
                "database unavailable path=%s error=%s", request.url.path, type(exc).__name__
            )
            return unavailable(DatabaseUnavailable())
        log.error(
            "unhandled error path=%s error=%s", request.url.path, type(exc).__name__, exc_info=exc
        )
        return error_response("internal_error", "internal error", status=500)


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__
    return type(cause).__name__ if cause is not None else type(exc).__name__


# -- the OpenAPI side ---------------------------------------------------------------------

_DESCRIPTIONS: dict[int, str] = {
    400: "`malformed_json`: the body is not valid JSON (or not UTF-8, or nested too deep).",
    401: "`unauthorized`: no valid API key or token.",
    403: "`forbidden`: the credential's role does not allow this.",
    404: "Not found for the caller's tenant (`task_not_found`, `process_not_found`, …).",
    409: "The current state does not allow it (`invalid_state`, `name_taken`, …).",
    413: "`payload_too_large`: the body (or a field) is over its limit.",
    422: VALIDATION_DESCRIPTION,
    429: "`too_many_pending`: the tenant's backlog is full; retry after `Retry-After` s.",
    503: "`database_unavailable`: retry after `Retry-After` seconds; nothing changed.",
}

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}

AUTHENTICATED = (401, 503)
"""Every authenticated operation may answer these."""
WITH_BODY = (400, 413, 422)
"""Every operation that reads a JSON body may answer these."""


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of these error statuses (body: :class:`ErrorBody`)."""
    entries: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        entries[status] = entry
    return entries
