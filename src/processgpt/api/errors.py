"""Every error answered as ``{"error": {"code", "message"}}`` with the status from
:data:`processgpt.domain.errors.ERROR_STATUS`."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from processgpt.domain.errors import ERROR_STATUS, ProcessGPTError, TooManyPending

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    code: str, message: str, status: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status or ERROR_STATUS.get(code, 500),
        headers=headers,
    )


def _describe(errors: list[Any]) -> str:
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))


def install(app: FastAPI) -> None:
    @app.exception_handler(ProcessGPTError)
    async def _domain(_request: Request, exc: ProcessGPTError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyPending) else None
        return error_response(exc.code, exc.message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response("malformed_json", "the request body is not valid JSON")
        return error_response("invalid_input", _describe(errors))

    @app.exception_handler(ValidationError)
    async def _model(_request: Request, exc: ValidationError) -> JSONResponse:
        return error_response("invalid_input", _describe(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(code, str(exc.detail), status=exc.status_code)

    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    async def _text(_request: Request, _exc: Exception) -> JSONResponse:
        # Postgres refuses NUL (and invalid UTF-8) in text columns; only caller text gets here.
        return error_response("invalid_input", "text may not contain NUL characters")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error path=%s error=%s", request.url.path, type(exc).__name__, exc_info=exc
        )
        return error_response("internal_error", "internal error", status=500)
