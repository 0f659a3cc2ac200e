"""Which ingest sources a server accepts: URL schemes, local folders, private hosts.

``POST /v1/ingest`` lets a client name what the server reads; unchecked, that reads any server file
or reaches internal services (SSRF). :func:`check_source` decides before anything is opened and
raises a :class:`PolicyError` the HTTP layer turns into a 4xx JSON error. Pure standard library:
no Ray, no PyAV, no network (host names are never resolved here).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from engine.errors import InvalidInputError

# A leading "scheme:" makes the string a URL, also without "//" (``javascript:``, ``data:``), so
# such strings are refused as schemes instead of being mistaken for relative file names.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
# Split of an authority URL for redact(), which must never fail. Userinfo runs to the last "@"
# before the query (not the first "/"), so a password with a raw "/" is hidden too.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^?#]*@)?([^?#]*)(\?[^#]*)?(#.*)?$", re.DOTALL)
# Hosts made only of these may be an IPv4 literal in a short form ("127.1", "0x7f.1", "2130706433")
# that the C resolver accepts; they are normalized with inet_aton, which does no network I/O.
_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")
_MAX_SHOWN = 200  # characters of the input quoted in an error; keeps messages one short line


@dataclass(frozen=True)
class IngestPolicy:
    """Which ingest sources a server accepts.

    Attributes:
        allowed_schemes: URL schemes a client may use, lowercase. ``file`` need not be listed:
            file URLs follow ``allowed_roots`` like plain paths.
        allowed_roots: Absolute local folders whose files (recursively) may be ingested. Empty
            means no local files at all. Relative paths are taken relative to the first root.
        allow_private_hosts: Whether URLs may name loopback, private, link-local or unspecified
            IP literals or ``localhost``. A deployment facing the internet sets ``False`` to block
            SSRF to internal services. Host names are not resolved, so a public name pointing at
            a private address still passes; an egress firewall covers that case.
        max_url_chars: Longest accepted source in characters (URLs and paths alike).
    """

    # Safe by default: no raw ``tcp`` (a port scanner's scheme) and no private or loopback hosts
    # (SSRF); a deployment that ingests from its own network opts in.
    allowed_schemes: tuple[str, ...] = ("rtsp", "rtsps", "http", "https", "udp", "srt", "rtmp")
    allowed_roots: tuple[str, ...] = ()
    allow_private_hosts: bool = False
    max_url_chars: int = 2048

    def __post_init__(self) -> None:
        # A blank or relative root would resolve against whatever folder the server started in.
        for root in self.allowed_roots:
            if not root or not Path(root).is_absolute():
                raise InvalidInputError("allowed_roots", f"root {root!r} must be an absolute path")
        if self.max_url_chars < 1:
            raise InvalidInputError("max_url_chars", f"must be positive, got {self.max_url_chars}")


class PolicyError(InvalidInputError):
    """The source is refused by the ingest policy (base of the more specific errors)."""


class ForbiddenSchemeError(PolicyError):
    """The URL scheme is not allowed, or local files are disabled (no allowed roots)."""


class PathEscapeError(PolicyError):
    """The local path lies outside every allowed root (``..``, elsewhere, or via a symlink)."""


class ForbiddenHostError(PolicyError):
    """The URL names a loopback/private/link-local/unspecified IP literal or ``localhost``."""


def redact(source: str) -> str:
    """Source with any URL userinfo replaced by ``***`` and query values masked (for logs and errors).

    Plain paths come back unchanged. A URL fragment is masked too: tokens travel there as well.
    """
    m = _URL.match(source)
    if m is None:
        return source
    scheme, userinfo, rest, query, fragment = m.groups()
    out = scheme + ("***@" if userinfo else "") + rest
    if query is not None:
        out += "?" + "&".join(p.split("=", 1)[0] + "=***" if "=" in p else p and "***" for p in query[1:].split("&"))
    if fragment is not None:
        out += "#***" if len(fragment) > 1 else "#"
    return out


# A URL inside free text (an error message): scheme://, then up to the next blank or quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*")


def redact_text(text: str) -> str:
    """``text`` with every URL in it :func:`redact`-ed: error messages quote their source (FFmpeg's
    and PyAV's do, with the password and token the client sent)."""
    return _URL_IN_TEXT.sub(lambda m: redact(m.group(0)), text)


def stream_error_for_client(error: str, source: str) -> str:
    """A stream's error as an HTTP client sees it: redacted, and one message for every way a
    network source can fail to open or read ("connection refused" vs "invalid data" vs a
    timeout would tell a client which internal ports listen; the server log keeps the detail).
    """
    if error.startswith("SourceConnectionError"):
        return f"SourceConnectionError: {redact(source)}: the stream could not be opened or read"
    return redact_text(error)


def _shown(source: str) -> str:  # the input as quoted in errors: redacted, one line, bounded
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in redact(source))
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _has_control(text: str) -> bool:
    # Cc (C0/C1, NUL, DEL) and Zl/Zp (line breaks) split log lines or cut C strings in FFmpeg.
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)


def _is_private_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
    except ValueError:
        if not _NUMERIC_HOST.match(host):
            return False
        try:
            ip = ipaddress.ip_address(socket.inet_aton(host))
        except OSError:
            return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified


def _check_path(raw: str, source: str, policy: IngestPolicy) -> str:
    shown = _shown(source)
    if not policy.allowed_roots:
        raise ForbiddenSchemeError(shown, "local files are not accepted by this server (no allowed roots)")
    # Any ".." is refused, even one that would stay inside a root: the rule is easy to state,
    # cannot be fooled by symlinked parents ("a/link/../x"), and no client needs it.
    if ".." in PurePosixPath(raw).parts:
        raise PathEscapeError(shown, "path must not contain '..' components")
    if _has_control(raw):  # a file URL's %00 or %0a decodes to a control character
        raise PolicyError(shown, "path contains control characters")
    try:
        roots = [Path(r).resolve(strict=False) for r in policy.allowed_roots]
        # Relative paths go against the first root: a stable meaning, whatever the server's cwd.
        target = (Path(raw) if Path(raw).is_absolute() else roots[0] / raw).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: symlink loop (Python 3.11 pathlib)
        raise PolicyError(shown, f"path cannot be resolved: {exc}") from None
    # resolve() follows every symlink on the path, so any link leaving the roots lands outside.
    # Whether the file exists is left to the media reader (it reports "not found" properly).
    if not any(target.is_relative_to(root) for root in roots):
        raise PathEscapeError(shown, "path is outside the allowed folders")
    return str(target)


def check_source(source: str, policy: IngestPolicy) -> str:
    """Checks an ingest source against ``policy`` and returns what the media reader should open.

    A string starting with ``scheme:`` is a URL (so ``javascript:`` and ``data:`` count too);
    write a relative file name containing a colon as ``./name``. ``file`` URLs (no host, or
    ``localhost``) and plain paths are local paths: checked against ``policy.allowed_roots``.

    Args:
        source: Path or URL as given by the client.
        policy: The server's policy.

    Returns:
        For URLs the URL unchanged; for local paths the resolved absolute path. The resolved path
        is what should be opened: it narrows (but cannot close) the race with a symlink swapped
        after the check, so roots should not be writable by untrusted users.

    Raises:
        ForbiddenSchemeError: Scheme not allowed, or a local path while no roots are configured.
        PathEscapeError: Local path outside every root.
        ForbiddenHostError: Private host while ``policy.allow_private_hosts`` is false.
        PolicyError: Empty, too long, control characters, surrounding whitespace, malformed URL
            or URL without a host. Messages quote the input via :func:`redact`.
    """
    if not isinstance(source, str) or not source:
        raise PolicyError(repr(source)[:_MAX_SHOWN], "source must be a non-empty string")
    shown = _shown(source)
    if len(source) > policy.max_url_chars:
        raise PolicyError(shown, f"source is {len(source)} characters long; the limit is {policy.max_url_chars}")
    if _has_control(source):
        raise PolicyError(shown, "source contains control characters (NUL, newline, ...)")
    if source != source.strip():
        raise PolicyError(shown, "source has leading or trailing whitespace")
    if not _SCHEME.match(source):
        return _check_path(source, source, policy)
    try:
        parts = urlsplit(source)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:  # exc text may echo a port that is really part of a password
        raise PolicyError(shown, "malformed URL (bad port or IPv6 brackets)") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not policy.allowed_roots:
            raise ForbiddenSchemeError(shown, "file URLs are not accepted by this server (no allowed roots)")
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise PolicyError(shown, "file URL must be file:///absolute/path without host, query or fragment")
        return _check_path(unquote(parts.path), source, policy)
    if scheme not in {s.lower() for s in policy.allowed_schemes}:
        raise ForbiddenSchemeError(shown, f"URL scheme {scheme!r} is not allowed; use one of {', '.join(policy.allowed_schemes)}")
    if not parts.hostname or any(c.isspace() for c in parts.hostname):
        raise PolicyError(shown, "URL has no host (or one with spaces)")
    if not policy.allow_private_hosts and _is_private_host(parts.hostname):
        raise ForbiddenHostError(shown, f"host {parts.hostname!r} is loopback/private/link-local; not allowed here")
    return source
