"""ASGI middleware of the HTTP ingress: API keys, the request-size limit (pure ASGI: it also
bounds chunked bodies) and the JSON catch-all."""

from __future__ import annotations

from fastapi import HTTPException

from serve_apps.auth import allows, is_loopback, required_scope, scope_of
from serve_apps.config import AuthConfig, LimitsConfig
from serve_apps.errors import BodyTooLargeError, error_response

_LIMITS = [LimitsConfig()]
_AUTH = [AuthConfig()]


def set_limits(limits: LimitsConfig, auth: AuthConfig | None = None) -> None:
    """Sets the limits and API keys of this process (called by the ingress replica at start).

    Module state behind a function: Serve pickles the ingress class by value, so state it
    touched directly would be a copy the middleware (module code) never sees.
    """
    _LIMITS[0] = limits
    _AUTH[0] = auth or AuthConfig()


class ApiKeyMiddleware:
    """Checks ``Authorization: Bearer`` against the configured keys and their scope.

    No key configured: only loopback clients are served (the CLI also binds to loopback then;
    this covers ``serve deploy`` with a public ``http_options.host``). A missing or unknown key
    is a 401 with ``WWW-Authenticate: Bearer``; a ``user`` key on an admin route a 403.
    """

    def __init__(self, asgi_app) -> None:
        self.app = asgi_app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        auth = _AUTH[0]
        needed = required_scope(scope.get("path", ""), auth.open_paths)
        if not auth.key_sha256:
            if needed is not None and not is_loopback((scope.get("client") or (None,))[0]):
                response = error_response(HTTPException(403, "no API key is configured on this server: it answers "
                                                             "loopback clients only"))
                return await response(scope, receive, send)
            return await self.app(scope, receive, send)
        if needed is not None:
            header = dict(scope.get("headers") or ()).get(b"authorization")
            granted = scope_of(header.decode("latin-1") if header else None, auth.key_sha256)
            if granted is None:
                response = error_response(HTTPException(401, "a valid API key is required (Authorization: Bearer KEY)",
                                                        headers={"WWW-Authenticate": "Bearer"}))
                return await response(scope, receive, send)
            if not allows(granted, needed):
                response = error_response(HTTPException(403, f"this API key's scope ({granted}) does not allow "
                                                             f"{scope.get('path')}; it needs {needed}"))
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413 before they are buffered.

    ``/v1/ingest`` (file uploads) has its own, larger limit. A declared ``Content-Length`` is
    checked first; bodies without one are counted as they arrive.
    """

    def __init__(self, asgi_app) -> None:
        self.app = asgi_app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limits = _LIMITS[0]
        limit = limits.max_upload_bytes if scope.get("path") == "/v1/ingest" else limits.max_body_bytes
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            response = error_response(BodyTooLargeError(limit) if length.isdigit()
                                      else HTTPException(400, "invalid Content-Length"))
            return await response(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLargeError(limit)
            return message

        await self.app(scope, limited_receive, send)


class CatchAllMiddleware:
    """Any exception not handled by the app's handlers becomes a JSON 5xx (never a traceback).

    Starlette's own catch-all (``ServerErrorMiddleware``) answers and then re-raises, and a
    re-raised exception makes Serve's proxy replace the answer with its own plain-text error;
    here the exception ends with the JSON response. Exceptions after the response started can
    only be logged (the status line is gone).
    """

    def __init__(self, asgi_app, on_error) -> None:
        self.app = asgi_app
        self.on_error = on_error

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response = self.on_error(scope, exc)
            await response(scope, receive, send)
