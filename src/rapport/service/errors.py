"""Every client error is JSON `{"error": {"code", "message", ...}}` with a 4xx status and one
clear line of message; a request can never produce a 500 through bad input."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rapport.errors import RapportError

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} {ident!r}")


def _body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> JSONResponse:
        headers = {"www-authenticate": "Bearer"} if e.status == 401 else None
        return JSONResponse(_body(e.code, e.message, **e.extra), e.status, headers=headers)

    @app.exception_handler(RapportError)
    async def _input(_: Request, e: RapportError) -> JSONResponse:
        return JSONResponse(_body("invalid_request", " ".join(str(e).split())), 422)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        fields = [
            {"field": ".".join(str(p) for p in x.get("loc", ())), "message": x.get("msg")}
            for x in errors
        ]
        return JSONResponse(_body("invalid_request", message, fields=fields), 422)

    @app.exception_handler(DataError)
    async def _data(_: Request, e: DataError) -> JSONResponse:
        # The input held a value the database refuses (a NUL, an out-of-range number): the
        # validation rules should have caught it first; never a 500.
        log.warning("database refused a value", extra={"error": type(e.orig).__name__})
        return JSONResponse(_body("invalid_request", "a value is not accepted"), 422)

    @app.exception_handler(IntegrityError)
    async def _conflict(_: Request, e: IntegrityError) -> JSONResponse:
        log.warning("database constraint", extra={"error": type(e.orig).__name__})
        return JSONResponse(_body("conflict", "conflicts with the stored state; retry"), 409)

    @app.exception_handler(OperationalError)
    async def _unavailable(_: Request, e: OperationalError) -> JSONResponse:
        log.error("database unavailable", extra={"error": type(e.orig).__name__})
        return JSONResponse(
            _body("unavailable", "the database is unavailable; retry later"),
            503,
            headers={"retry-after": "5"},
        )

    @app.exception_handler(Exception)
    async def _internal(_: Request, e: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=e)
        return JSONResponse(_body("internal", "internal error; see the service log"), 500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
        }.get(e.status_code, "http_error")
        return JSONResponse(_body(code, str(e.detail)), e.status_code, headers=e.headers)
