"""API keys of the HTTP service, OpenAI style: ``Authorization: Bearer <key>``.

Two scopes: ``user`` (completions, chat, search, models, stream status) and ``admin`` (all of
that, plus adapters and ingest, which write to the server's disk and store). Keys come from a
file (one ``KEY SCOPE`` per line) and/or an environment variable (``KEY:SCOPE,KEY:SCOPE``), read
where the application is built; only their SHA-256 digests travel in the application's
arguments, so a Serve config dump or the dashboard never shows a key. A server with no key
configured is open, and the CLI then binds it to loopback only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from engine.errors import InvalidInputError

SCOPES = ("user", "admin")
#: Path prefixes that need the ``admin`` scope (any method).
ADMIN_PREFIXES = ("/v1/adapters", "/v1/ingest")


def digest(key: str) -> str:
    """The SHA-256 hex digest a key is known by."""
    return hashlib.sha256(key.encode()).hexdigest()


def _entry(key: str, scope: str, where: str) -> tuple[str, str]:
    if scope not in SCOPES:
        raise InvalidInputError(where, f"scope {scope!r} must be one of {SCOPES}")
    # Short keys are guessable; OpenAI's are ~50 characters.
    if len(key) < 16 or any(c.isspace() for c in key):
        raise InvalidInputError(where, "an API key needs at least 16 characters and no blanks")
    return digest(key), scope


def load_keys(keys_file: str = "", keys_env: str = "") -> tuple[tuple[str, str], ...]:
    """``(sha256, scope)`` of every key in ``keys_file`` and in the variable ``keys_env``.

    Raises:
        InvalidInputError: An unreadable file, a malformed line (never quoting the key), an
            unknown scope or a weak key.
    """
    out: list[tuple[str, str]] = []
    if keys_file:
        try:
            lines = Path(keys_file).read_text().splitlines()
        except OSError as exc:
            raise InvalidInputError("auth.keys_file", f"cannot read {keys_file}: {exc.strerror}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise InvalidInputError(f"{keys_file}:{n}", "expected 'KEY SCOPE'")
            out.append(_entry(parts[0], parts[1], f"{keys_file}:{n}"))
    raw = os.environ.get(keys_env, "") if keys_env else ""
    for n, item in enumerate(x.strip() for x in raw.split(",")):
        if item:
            key, sep, scope = item.rpartition(":")
            if not sep:
                raise InvalidInputError(f"${keys_env}[{n}]", "expected KEY:SCOPE")
            out.append(_entry(key, scope, f"${keys_env}[{n}]"))
    return tuple(dict.fromkeys(out))


def required_scope(path: str, open_paths: tuple[str, ...]) -> str | None:
    """The scope a request path needs (None: open to anyone)."""
    if path in open_paths:
        return None
    if any(path == p or path.startswith(p + "/") for p in ADMIN_PREFIXES):
        return "admin"
    return "user"


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer KEY`` header value, or None."""
    kind, _, token = (authorization or "").partition(" ")
    return token.strip() if kind.lower() == "bearer" and token.strip() else None


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine's loopback."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except (TypeError, ValueError):  # no address, or a name: not provably local
        return False


def scope_of(authorization: str | None, keys: tuple[tuple[str, str], ...]) -> str | None:
    """The scope of the request's bearer key, or None for a missing or unknown one.

    Every configured digest is compared in constant time, so the answer's timing does not tell
    how much of a guess matched.
    """
    token = bearer_token(authorization)
    if token is None:
        return None
    got = digest(token)
    found = None
    for want, scope in keys:
        if hmac.compare_digest(got, want):
            found = scope
    return found


def allows(granted: str | None, needed: str) -> bool:
    """Whether a key of scope ``granted`` may do what ``needed`` asks (admin includes user)."""
    return granted == "admin" or granted == needed
