"""One error shape for every 4xx/5xx: `{"detail": str, "code": str}`.

Platform calls (signalling, media) fail in a few well-known ways; `platform_errors` maps them to
HTTP explicitly around each such call, instead of a global LookupError handler that would also
turn our own KeyError bugs into innocent-looking 404s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    423: "locked",
    429: "too_many_requests",
    500: "internal_error",
    502: "device_error",
    503: "unavailable",
    504: "device_timeout",
}


class ApiError(Exception):
    """Raised by routers for an error answer with a specific machine-readable code."""

    def __init__(self, status: int, detail: str, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _CODES.get(status, "error")
        self.headers = headers


def error_body(status: int, detail: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, "code": code or _CODES.get(status, "error"), **extra}


def _is_a(exc: BaseException, name: str) -> bool:
    """Match platform exceptions by class name (gb28181.errors.DeviceOffline, GbError ...), so the
    API does not import the signalling package and keeps working with stand-in services."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _is_device_offline(exc: BaseException) -> bool:
    return _is_a(exc, "DeviceOffline")


@contextmanager
def platform_errors(target: str = "") -> Iterator[None]:
    """Map exceptions of a platform call (gb, media) to ApiError.

    LookupError -> 404 (409 when it is DeviceOffline), TimeoutError -> 504 naming the target,
    other RuntimeError and GbError -> 502, ValueError -> 422 (the device or service refused an argument).
    """
    try:
        yield
    except ApiError:
        raise
    except LookupError as exc:
        if _is_device_offline(exc):
            raise ApiError(409, str(exc) or f"device offline: {target}", "device_offline") from exc
        raise ApiError(404, str(exc) or f"not found: {target}", "not_found") from exc
    except TimeoutError as exc:
        msg = f"no answer from {target}" if target else "no answer from device"
        raise ApiError(504, f"{msg}: {exc}" if str(exc) else msg, "device_timeout") from exc
    except ValueError as exc:
        raise ApiError(422, str(exc) or "invalid value", "validation_error") from exc
    except Exception as exc:
        if isinstance(exc, RuntimeError) or _is_a(exc, "GbError"):
            raise ApiError(502, str(exc) or f"device error: {target}", "device_error") from exc
        raise


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors: list[dict[str, Any]] = []
    parts: list[str] = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())]
        where = ".".join(loc) if loc else "request"
        msg = str(err.get("msg", "invalid"))
        parts.append(f"{where}: {msg}")
        errors.append({"loc": loc, "msg": msg, "type": str(err.get("type", ""))})
    return ("; ".join(parts) or "invalid request"), errors


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers producing the common error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.status, exc.detail, exc.code), exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse(error_body(exc.status_code, detail), exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_detail(exc)
        return JSONResponse(error_body(422, detail, "validation_error", errors=errors), 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal error"), 500)
