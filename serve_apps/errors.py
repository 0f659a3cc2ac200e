"""Every failure of a request becomes a 4xx/5xx JSON error, never a stack trace.

Errors raised in another deployment arrive wrapped (``RayTaskError`` is an instance of the
original class, but its text carries the remote traceback): :func:`status_for` unwraps them and
answers with the original, one-line message.
"""

from __future__ import annotations

import logging
import uuid

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError

from engine.omni.chat import SegmentNotFoundError
from engine.errors import InvalidInputError, MediaError, OmniAlignError
from serve_apps.ingest_policy import ForbiddenHostError, PathEscapeError, PolicyError
from serve_apps.adapters.routing import UnknownAdapterError
from serve_apps.protocol import error_body

log = logging.getLogger("omnialign.serve")


class BodyTooLargeError(HTTPException):
    """The request body is over the configured limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


def unwrap(exc: BaseException) -> BaseException:
    """The original exception of a remote (deployment/task) failure."""
    while isinstance(exc, RayTaskError) and getattr(exc, "cause", None) is not None:
        exc = exc.cause
    return exc


def _validation_message(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def status_for(exc: BaseException) -> tuple[int, str, dict]:
    """(HTTP status, one-line message, extra headers) for an exception."""
    exc = unwrap(exc)
    # Starlette's class, which FastAPI's subclasses: unknown routes (404), wrong methods (405)
    # and multipart parse errors (400) come as Starlette's own.
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), dict(exc.headers or {})
    if isinstance(exc, (RequestValidationError, ValidationError)):  # ValidationError: a body checked in the handler
        return 400, _validation_message(exc), {}
    if isinstance(exc, BackPressureError):
        return 503, "server overloaded: too many queued requests, retry later", {"Retry-After": "1"}
    if isinstance(exc, (SegmentNotFoundError, UnknownAdapterError)):
        return 404, str(exc), {}
    if isinstance(exc, (PathEscapeError, ForbiddenHostError)):
        return 403, str(exc), {}
    if isinstance(exc, (PolicyError, InvalidInputError, MediaError)):
        return 400, str(exc), {}
    if isinstance(exc, OmniAlignError):
        return 500, str(exc), {}
    incident = uuid.uuid4().hex[:12]
    log.error("internal error %s: %s", incident, type(exc).__name__, exc_info=exc)
    return 500, f"internal error (incident {incident})", {}


def error_response(exc: BaseException) -> JSONResponse:
    status, message, headers = status_for(exc)
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)
